"""Numbers written with MNIST digits, the pieces the reader cuts them into, and training on those pieces."""

import math
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lenet5 import LeNet5, load_model, workers, writing
from lenet5.data import MNISTData, to_float
from lenet5.model import RUBBISH
from lenet5.recipes import MODERN
from lenet5.training import Trainer, evaluate
from lenet5.writing import GAPS, compose, labelled_pieces, number_pieces

CPU = torch.device("cpu")


def test_a_written_number_holds_each_digit_within_its_span(mnist):
    rng = np.random.default_rng(0)
    number = compose([mnist.test.images[i].numpy() for i in range(4)], GAPS["separated"], rng)
    ink = number.picture < 128
    spans = number.spans
    assert len(spans) == 4 and all(x1 < next_x0 for (_, x1), (next_x0, _) in zip(spans, spans[1:]))
    within = np.zeros(ink.shape[1], dtype=bool)
    for x0, x1 in spans:
        assert ink[:, x0:x1].sum() > 100  # every digit is drawn where its span says
        within[x0 - 3 : x1 + 3] = True  # a coarser pen spreads the ink by up to 2 pixels
    assert not ink[:, ~within].any()


def test_the_pieces_of_numbers_are_labelled_with_their_digit_or_as_wrong_cuts(mnist):
    pieces = number_pieces(mnist.train.head(2_000), 60, seed=0, progress=False)
    assert pieces.images.dtype == torch.uint8 and pieces.images.shape[1:] == (28, 28)
    digits = pieces.labels != RUBBISH
    assert 0.2 < digits.float().mean() < 0.8  # whole digits and wrong cuts, both in numbers
    assert set(pieces.labels[digits].tolist()) == set(range(10))
    # The labels are right: the bundled network, never shown these numbers, reads the whole-digit pieces as
    # their label, and is far less sure of the wrong cuts.
    with torch.no_grad():
        probs = torch.softmax(load_model()(to_float(pieces.images)), dim=1)
    assert (probs[digits].argmax(1) == pieces.labels[digits]).float().mean() > 0.9
    assert probs[~digits].max(1).values.mean() < probs[digits].max(1).values.mean() - 0.05


def test_cutting_in_several_processes_gives_the_same_pieces(mnist, monkeypatch):
    monkeypatch.setattr(writing, "CUT_BLOCK", 16)  # several blocks, each drawn after the last was cut
    alone = number_pieces(mnist.train.head(2_000), 40, seed=3, progress=False)
    shared = number_pieces(mnist.train.head(2_000), 40, seed=3, progress=False, workers=2)
    assert len(alone) > 40
    assert torch.equal(alone.images, shared.images) and torch.equal(alone.labels, shared.labels)
    # Spawned workers import PyTorch afresh, seconds each: a few numbers are cut in this process.
    assert writing.workers_for(112, cores=2) == 1 and writing.workers_for(8_000, cores=2) == 2
    assert writing.workers_for(8_000, cores=1) == 1


def noted(folder: str, presses: int, task: int) -> None:
    """A cutting task that leaves a mark and takes a while; the first one presses Ctrl-C in the parent,
    `presses` times, half a second apart."""
    (Path(folder) / str(task)).touch()
    for press in range(presses if task == 0 else 0):
        if press:
            time.sleep(0.5)
        os.kill(os.getppid(), signal.SIGINT)
    time.sleep(0.3)


@pytest.mark.slow
@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_while_cutting_skips_the_queued_cuts_and_the_workers_end_by_themselves(tmp_path, presses):
    # The pool is closed and joined, never terminated (Pool.terminate can wait forever for its task
    # handler, CPython #96995), so the cuts queued behind a Ctrl-C must be skipped: a join would run them
    # all. A second Ctrl-C, pressed while the workers finish their cuts in hand, must not cut the join short.
    with pytest.raises(KeyboardInterrupt):
        with workers.worker_map(2) as cut:
            list(cut(noted, [str(tmp_path)] * 40, [presses] * 40, range(40)))
    assert 1 <= len(list(tmp_path.iterdir())) <= 8
    assert not multiprocessing.active_children()


def test_two_digits_run_together_are_a_wrong_cut_and_each_digit_alone_is_itself(mnist):
    rng = np.random.default_rng(3)
    images, labels = mnist.train.images.numpy(), mnist.train.labels.tolist()
    pairs = [(i, i + 1) for i in range(0, 40, 2) if labels[i] != 1 and labels[i + 1] != 1]  # 1s are too narrow to judge
    wrong = whole = 0
    for a, b in pairs:
        fields, targets = labelled_pieces(compose([images[a], images[b]], GAPS["touching"], rng), [labels[a], labels[b]])
        wrong += RUBBISH in targets
        whole += labels[a] in targets and labels[b] in targets
    assert wrong == len(pairs) and whole >= 0.8 * len(pairs)


def test_a_wrong_cut_is_taught_as_no_digit_by_either_network():
    logits = torch.tensor([[0.0] * 10, [8.0] + [0.0] * 9])  # no idea; sure it is a 0
    rubbish = torch.tensor([RUBBISH, RUBBISH])
    modern = LeNet5()
    losses = [float(modern.loss(row[None], rubbish[:1])) for row in logits]
    assert losses[0] == pytest.approx(math.log(10)) and losses[1] > losses[0] + 2  # doubt is the right answer
    assert float(modern.loss(logits, torch.tensor([0, 0]))) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0]))))  # digits as before
    lecun = LeNet5(variant="lecun1998")  # the paper's rubbish class: the eleventh, at logit -j
    scores = torch.cat([logits, torch.full((2, 1), -10.0)], dim=1)
    assert float(lecun.loss(logits, rubbish)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(scores, torch.tensor([10, 10]))))


@pytest.mark.slow
def test_training_on_pieces_of_numbers_makes_the_network_doubt_wrong_cuts(mnist):
    data = MNISTData(train=mnist.train.head(6_400), val=mnist.val.head(1_000), test=mnist.test.head(1_000))
    recipe = MODERN.but(epochs=2, batch_size=128, ema_decay=0, augment=False, pieces=0)
    plain = Trainer(recipe, data, CPU).run(progress=False).model
    trainer = Trainer(recipe.but(pieces=400), data, CPU)
    assert len(trainer.train_split) > len(data.train) and (trainer.train_split.labels == RUBBISH).any()
    taught = trainer.run(progress=False)
    assert 0.9 < taught.history[-1].train_acc <= 1  # measured on the digits: a wrong cut has no right answer
    unseen = number_pieces(data.val, 100, seed=1, progress=False)  # numbers of digits neither network saw
    wrong_cuts = to_float(unseen.images[unseen.labels == RUBBISH])
    with torch.no_grad():
        sure = [torch.softmax(m(wrong_cuts), dim=1).max(1).values.mean() for m in (plain, taught.model)]
    assert sure[1] < 0.7 * sure[0]
    assert evaluate(taught.model, data.val).accuracy > 0.9


def test_a_negative_count_of_pieces_is_rejected():
    with pytest.raises(ValueError, match="pieces must be 0"):
        MODERN.but(pieces=-1)
