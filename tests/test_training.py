import math
import time
import warnings

import numpy as np
import pytest
import torch

from lenet5 import recipes, training
from lenet5.checkpoint import is_finished, load_checkpoint
from lenet5.budget import (MUON_BELOW_EPOCHS, MUON_LR, plan, plan_pieces, plan_run, replan, seconds_per_step,
                           validation_seconds, with_muon)
from lenet5.data import MNIST_FILES, MNISTData, affine_grid, load_mnist, random_affine, to_float, window_extreme
from lenet5.recipes import MODERN, describe, recipe, resolve_device, training_dtype
from lenet5.training import Evaluation, Trainer, evaluate

CPU = torch.device("cpu")


def digits_only(**changes):
    """The modern recipe on single digits (no pieces of numbers: cutting them costs a minute), changed."""
    return MODERN.but(**{"pieces": 0, **changes})


def small(mnist: MNISTData, train: int, val: int) -> MNISTData:
    return MNISTData(train=mnist.train.head(train), val=mnist.val.head(val), test=mnist.test.head(val))


@pytest.mark.slow
def test_a_short_run_clearly_learns(mnist):
    # 200 steps of 128 digits; the held-out digits were never trained on.
    data = small(mnist, train=25_600, val=2_000)
    result = Trainer(digits_only(epochs=1, batch_size=128), data, CPU).run(progress=False)
    assert evaluate(result.model, data.val).accuracy > 0.9
    assert result.history[0].val_acc == pytest.approx(evaluate(result.model, data.val).accuracy)


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.1), ("muon", 1.5e-2)])
def test_resume_continues_exactly_where_it_stopped(mnist, tmp_path, optimizer, lr):
    data = small(mnist, train=2_048, val=256)
    config = digits_only(epochs=3, batch_size=128, optimizer=optimizer, lr=lr)
    straight = Trainer(config, data, CPU).run(tmp_path / "straight.pt", progress=False)

    interrupted = Trainer(config, data, CPU)
    interrupted.run(tmp_path / "resumed.pt", progress=False, until_epoch=1)
    del interrupted  # everything the second half needs must come from the file
    resumed = Trainer.from_state(load_checkpoint(tmp_path / "resumed.pt", CPU), data, CPU).run(
        tmp_path / "resumed.pt", progress=False
    )
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert [h.val_acc for h in straight.history] == [h.val_acc for h in resumed.history]
    assert len(resumed.history) == 3


def test_resume_trains_on_the_pieces_the_checkpoint_kept(mnist, tmp_path, monkeypatch):
    # Cutting the recipe's 8,000 numbers takes a minute or two: a resumed run must not do it again.
    data = small(mnist, train=2_048, val=256)
    config = digits_only(epochs=2, batch_size=128, pieces=30, augment=False, ema_decay=0)
    straight = Trainer(config, data, CPU).run(progress=False)
    interrupted = Trainer(config, data, CPU)
    interrupted.run(tmp_path / "run.pt", progress=False, until_epoch=1)
    cut = interrupted.train_split
    del interrupted

    def cut_again(*args, **kwargs):
        raise AssertionError("the numbers were cut again")

    monkeypatch.setattr(training, "number_pieces", cut_again)
    resumed = Trainer.from_state(load_checkpoint(tmp_path / "run.pt", CPU), data, CPU)
    assert len(resumed.train_split) > len(data.train)
    assert torch.equal(resumed.train_split.images, cut.images) and torch.equal(resumed.train_split.labels, cut.labels)
    resumed.run(tmp_path / "run.pt", progress=False)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_checkpoint_problems_are_reported_clearly(mnist, tmp_path):
    with pytest.raises(ValueError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt", CPU)
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "garbage.pt", CPU)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a lenet5 training checkpoint"):
        load_checkpoint(tmp_path / "other.pt", CPU)
    data = small(mnist, train=256, val=64)
    Trainer(digits_only(epochs=1, batch_size=128), data, CPU).run(tmp_path / "done.pt", progress=False)
    assert is_finished(load_checkpoint(tmp_path / "done.pt", CPU))  # --resume saves it (train.py)
    assert not list(tmp_path.glob("*.partial"))  # checkpoints are written whole or not at all
    for damaged in ({"x": 1}, "pieces", {"images": torch.zeros(3, 28, 28), "labels": torch.zeros(3, dtype=torch.long)}):
        torch.save({**torch.load(tmp_path / "done.pt", weights_only=True), "pieces": damaged}, tmp_path / "damaged.pt")
        with pytest.raises(ValueError, match="the pieces of numbers in .* are damaged"):
            load_checkpoint(tmp_path / "damaged.pt", CPU)


def test_a_checkpoint_that_cannot_be_written_is_one_error_and_the_last_one_survives(mnist, tmp_path):
    data = small(mnist, train=256, val=64)
    trainer = Trainer(digits_only(epochs=2, batch_size=128), data, CPU)
    trainer.run(tmp_path / "run.pt", progress=False, until_epoch=1)
    good = (tmp_path / "run.pt").read_bytes()
    (tmp_path / "run.pt.partial").mkdir()  # where the next checkpoint would be written cannot take a file
    with pytest.raises(ValueError, match="cannot write the checkpoint .*the last good checkpoint is kept"):
        trainer.run(tmp_path / "run.pt", progress=False)
    assert (tmp_path / "run.pt").read_bytes() == good


@pytest.mark.parametrize(
    "field, value",
    [("epochs", 0), ("batch_size", 0), ("lr", -1.0), ("ema_decay", 1.0), ("label_smoothing", 1.5),
     ("optimizer", "lbfgs"), ("schedule", "cosine"), ("patience", -1), ("variant", "lenet4")],
)
def test_bad_training_settings_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        digits_only(**{field: value})
    with pytest.raises(ValueError, match="val_size must be above 0"):
        digits_only(patience=2, val_size=0)
    with pytest.raises(ValueError, match="MAP criterion"):
        recipe("lecun1998", label_smoothing=0.1)


def test_each_preset_is_complete_and_trains_as_it_is():
    # TrainConfig has no defaults of its own that could drift from the recipe: a run starts from a preset.
    with pytest.raises(TypeError):
        recipes.TrainConfig()
    assert recipes.PRESETS["modern"].pieces == 8000 and recipes.PRESETS["lecun1998"].label_smoothing == 0.0
    for name, preset in recipes.PRESETS.items():
        assert preset.preset == name and preset.but() == preset  # valid on its own, as it is
    assert recipe("lecun1998").variant == "lecun1998" and recipe("lecun1998").optimizer == "adam"
    assert recipe("modern", fast=True) == recipes.PRESETS["fast"]
    assert recipe("modern", fast=True, device="cuda") == recipes.PRESETS["fast-cuda"]
    assert recipe("modern", fast=True, epochs=3).epochs == 3  # flags win over a preset
    with pytest.raises(ValueError, match=r"^--fast is the modern LeNet-5's quickest recipe and lecun1998 has none"):
        recipe("lecun1998", fast=True)
    with pytest.raises(ValueError, match="variant must be one of modern, lecun1998"):
        recipe("teacher")


def test_the_reproduce_command_rebuilds_the_very_same_recipe():
    import shlex

    import train

    configs = [recipe("modern"), recipe("lecun1998", epochs=3, augment=False), recipe("modern", fast=True, seed=4),
               recipe("modern", fast=True, device="cuda", augment=True, pieces=10), digits_only(stroke_width=False)]
    for config in configs:
        words = shlex.split(recipes.command(config))
        assert words[:2] == ["python", "train.py"]
        args = train.parse_args(words[2:])
        assert train.config_from_args(args, torch.device(args.device if args.device != "auto" else "cpu")) == config
    assert recipes.command(recipe("modern")) == "python train.py"
    assert recipes.command(recipe("modern", fast=True, seed=4)) == "python train.py --fast --seed 4"


def test_patience_stops_a_stalled_run_and_keeps_its_best_epoch(mnist, tmp_path):
    # A learning rate far too small: validation accuracy creeps, then stalls on 64 held-out digits.
    data = small(mnist, train=1_024, val=64)
    config = digits_only(epochs=40, batch_size=128, lr=1e-3, schedule="plateau", patience=2, ema_decay=0, augment=False)
    trainer = Trainer(config, data, CPU)
    result = trainer.run(tmp_path / "run.pt", progress=False)
    assert "no better validation accuracy for 2 epochs" in result.stopped
    assert len(result.history) < 40
    best = max(h.val_acc for h in result.history)
    assert evaluate(result.model, data.val).accuracy == pytest.approx(best)
    assert [h.val_acc for h in result.history].index(best) + 1 == trainer.best["epoch"]
    state = load_checkpoint(tmp_path / "run.pt", CPU)
    assert is_finished(state)  # nothing left to train: --resume evaluates and saves the best epoch's weights
    resumed = Trainer.from_state(state, data, CPU).run(progress=False)
    assert evaluate(resumed.model, data.val).accuracy == pytest.approx(best)


def test_plateau_schedule_halves_the_rate_when_validation_stalls(mnist):
    data = small(mnist, train=512, val=64)
    config = digits_only(epochs=8, batch_size=128, lr=1e-4, schedule="plateau", ema_decay=0, augment=False)
    result = Trainer(config, data, CPU).run(progress=False)
    rates = [h.lr for h in result.history]
    assert rates[0] == 1e-4 and min(rates) < 1e-4
    assert all(b in (a, a / 2) for a, b in zip(rates, rates[1:]))


def test_time_budget_stops_cleanly_and_the_run_can_resume(mnist, tmp_path):
    data = small(mnist, train=4_096, val=256)
    trainer = Trainer(digits_only(epochs=50, batch_size=128), data, CPU)
    result = trainer.run(tmp_path / "run.pt", progress=False, time_budget=0.5)
    assert result.stopped.startswith("time budget of 0.5 s used up") and len(result.history) < 50
    state = load_checkpoint(tmp_path / "run.pt", CPU)  # a budget stop can be resumed
    assert state["epoch"] == len(result.history)
    with pytest.raises(ValueError, match="time budget must be a positive number of seconds, got 0"):
        Trainer(digits_only(epochs=1, batch_size=128), data, CPU).run(progress=False, time_budget=0)


def test_stroke_width_windows_are_the_3x3_pools_they_replace():
    # Shifted slices instead of a stride-1 max-pool (30% of a step): the same values, edges included.
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(window_extreme(x, torch.maximum), torch.nn.functional.max_pool2d(x, 3, stride=1, padding=1))
    assert torch.equal(window_extreme(x, torch.minimum), -torch.nn.functional.max_pool2d(-x, 3, stride=1, padding=1))


def test_a_time_budget_plans_whole_epochs_a_shorter_average_and_fewer_pieces():
    # 60,000 digits at batch 256 are 234 steps: at 15 ms a step an epoch takes 3.5 s.
    short = plan(MODERN, seconds=40, step_seconds=0.015, train_digits=60_000, val_seconds=0)
    assert short.epochs == 11 and short.ema_decay < MODERN.ema_decay
    assert short.but(epochs=MODERN.epochs, ema_decay=MODERN.ema_decay) == MODERN  # nothing else changes
    assert plan(MODERN, 4000, 0.015, 60_000, 0) == MODERN  # room for the whole recipe: the recipe itself
    assert plan(MODERN, 1, 0.015, 60_000, 0).epochs == 1  # too little for one: one, cut off by the deadline
    assert plan(MODERN, 35.2, 0.015, 60_000, 0).epochs == 10
    assert plan(MODERN, 35.2, 0.015, 60_000, 0.4).epochs == 9  # the validation pass after each epoch counts
    assert plan(MODERN.but(ema_decay=0.0), 40, 0.015, 60_000, 0).ema_decay == 0
    assert 0 < plan_pieces(MODERN, 60) < plan_pieces(MODERN, 600) <= MODERN.pieces == plan_pieces(MODERN, 10**6)
    assert plan_pieces(MODERN, 1e308) == MODERN.pieces  # a huge budget: the recipe's, no overflow


def test_after_its_first_epoch_a_budget_is_planned_again_from_that_epochs_time():
    # 234 steps an epoch; the probe planned 11 epochs, but the first one took 3 s where it expected 3.5.
    planned = plan(MODERN, seconds=40, step_seconds=0.015, train_digits=60_000, val_seconds=0)
    quicker = replan(MODERN, planned, epoch_seconds=3.0, seconds_left=37.0, steps_per_epoch=234)
    assert quicker == plan(MODERN, 39.0, 3.0 / 234, 60_000, 0) and quicker.epochs == 1 + 12  # the one done counts
    assert replan(MODERN, planned, 4.5, 35.5, 234).epochs == 1 + 7 < planned.epochs  # slower: fewer
    assert replan(MODERN, planned, 3.0, 1_000, 234) == MODERN  # room for the whole recipe: the recipe itself
    muon = with_muon(planned)
    assert replan(MODERN, muon, 3.0, 37.0, 234) == muon.but(epochs=13, ema_decay=quicker.ema_decay)  # Muon stays


def test_a_rescheduled_run_goes_on_from_its_rate_and_anneals_to_its_new_end(mnist, tmp_path):
    # 8 steps an epoch: 10 epochs warm up over 12 steps, so the first epoch ends halfway up the ramp.
    data = small(mnist, train=1_024, val=0)
    config = digits_only(epochs=10, batch_size=128, val_size=0, ema_decay=0.99)
    trainer = Trainer(config, data, CPU)
    trainer.run(progress=False, until_epoch=1)
    rate = trainer.optimizer.param_groups[0]["lr"]
    assert 0.1 * config.lr < rate < config.lr
    longer = config.but(epochs=14, ema_decay=0.995)
    trainer.reschedule(longer)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(rate)  # the same ramp: no jump
    assert trainer.ema.decay == 0.995 and trainer.scheduler.total_steps == 14 * 8
    rates = []
    while trainer.epoch < longer.epochs:
        trainer.run(progress=False, until_epoch=trainer.epoch + 1)
        rates.append(trainer.optimizer.param_groups[0]["lr"])
        if trainer.epoch == 3:
            trainer.save_checkpoint(tmp_path / "run.pt")
    assert trainer.config == longer and len(trainer.history) == 14
    assert max(rates) == pytest.approx(config.lr, rel=0.05) and rates[-1] < 1e-3 * config.lr  # up to the peak, annealed
    resumed = Trainer.from_state(load_checkpoint(tmp_path / "run.pt", CPU), data, CPU)  # the new schedule is kept
    assert resumed.config == longer
    resumed.run(progress=False)
    for (name, a), (_, b) in zip(trainer.final_model.state_dict().items(), resumed.final_model.state_dict().items()):
        assert torch.equal(a, b), name
    for changed in (longer.but(lr=0.05), longer.but(seed=1)):  # anything but the epochs and the average
        with pytest.raises(ValueError, match="to other epochs and another moving average only, not (lr|seed)"):
            trainer.reschedule(changed)
    with pytest.raises(ValueError, match="a run 14 epochs in can be rescheduled to more epochs than that, not 14"):
        trainer.reschedule(longer.but(ema_decay=0.9))


@pytest.mark.slow
def test_a_budget_for_few_epochs_plans_muon_unless_the_optimizer_was_chosen(mnist):
    # 4,096 digits are 16 steps of 256: some 0.3 s an epoch here, so a second and a half holds a few epochs.
    data, recipe_ = small(mnist, train=4_096, val=0), digits_only(val_size=0)
    short, step = plan_run(recipe_, time.perf_counter() + 1.5, data, CPU, len(data.train))
    assert short.optimizer == "muon" and short.lr == MUON_LR and 1 <= short.epochs < MUON_BELOW_EPOCHS
    assert short.but(optimizer="sgd", lr=MODERN.lr, epochs=MODERN.epochs, ema_decay=MODERN.ema_decay) == recipe_
    assert 0 < step < 1
    chosen, _ = plan_run(recipe_, time.perf_counter() + 1.5, data, CPU, len(data.train), optimizer_free=False)
    assert chosen.optimizer == "sgd" and chosen.lr == MODERN.lr and chosen.epochs < MODERN.epochs
    roomy, _ = plan_run(recipe_, time.perf_counter() + 10_000, data, CPU, len(data.train))
    assert roomy == recipe_  # the whole recipe fits: SGD, as it is
    assert with_muon(MODERN).optimizer == "muon" and with_muon(recipes.LECUN1998) is None  # Adam is left alone


def test_the_step_and_the_validation_pass_are_measured_on_a_throwaway_run(mnist):
    data = small(mnist, train=4_096, val=0)
    step = seconds_per_step(digits_only(epochs=1, batch_size=128), data, CPU)
    assert 0 < step < 1  # a real measurement, of one step: a second would be a hundred times any CPU's
    assert validation_seconds(data, CPU) == 0  # nothing held out, nothing to pass over
    held_out = MNISTData(train=data.train, val=mnist.val.head(4_000), test=data.test)
    assert 0 < validation_seconds(held_out, CPU) < 4  # 4,000 digits timed on 2,000 and scaled: under 1 ms each


@pytest.mark.slow
def test_adam_muon_and_the_papers_network_train(mnist):
    data = small(mnist, train=12_800, val=1_000)
    # No pieces of numbers here: cutting 8,000 of them would cost two minutes (test_writing trains on them).
    for config in (recipe("lecun1998", epochs=2, ema_decay=0, augment=False, pieces=0),
                   digits_only(epochs=1, optimizer="adam", lr=3e-3, ema_decay=0),
                   digits_only(epochs=1, optimizer="muon", lr=1.5e-2, ema_decay=0)):
        result = Trainer(config, data, CPU).run(progress=False)
        assert evaluate(result.model, data.val).accuracy > 0.75, config  # 50-100 steps


def test_bf16_is_chosen_by_the_chip_not_by_the_device_type(monkeypatch):
    # A CPU without AVX512-BF16 or AMX emulates bf16 about eight times slower than fp32.
    for avx512_bf16, amx, dtype in ((False, False, torch.float32), (True, False, torch.bfloat16), (False, True, torch.bfloat16)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda has=avx512_bf16: has)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda has=amx: has)
        assert training_dtype(CPU) == dtype


def test_the_mixed_precision_step_trains_and_hands_back_weights_that_save(mnist, monkeypatch, tmp_path):
    # The bf16 autocast step that GPUs and bf16 CPUs take, forced here whatever this CPU has; the model
    # trains in channels_last and must come back in the layout safetensors can save.
    monkeypatch.setattr(recipes, "native_bf16", lambda device: True)
    data = small(mnist, train=12_800, val=1_000)
    # AdamW: 100 steps of the default SGD one-cycle, still warming up, left this network at 63-79% (seeds
    # 0-3) on a CPU with AMX, too close to any bound to test the step by; AdamW reached 92.7-93.4% there.
    trainer = Trainer(digits_only(epochs=1, batch_size=128, ema_decay=0, optimizer="adam", lr=3e-3), data, CPU)
    assert trainer.dtype == torch.bfloat16
    result = trainer.run(progress=False)
    assert evaluate(result.model, data.val).accuracy > 0.85  # 100 steps
    result.model.save_pretrained(tmp_path)
    assert torch.equal(type(result.model).from_pretrained(tmp_path).head.weight, result.model.head.weight)


def test_device_choice():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="one of auto, cpu, cuda"):
        resolve_device("tpu")


def test_augmentation_moves_digits_only_a_little_and_never_mirrors(mnist):
    x = to_float(mnist.train.images[:256])
    generator = torch.Generator().manual_seed(0)
    same = random_affine(x, generator, max_shift=0, max_rotation=0, max_scale=0)
    assert torch.allclose(same, x, atol=1e-5)
    moved = random_affine(x, generator, max_shift=2, max_rotation=0, max_scale=0)
    idx = torch.arange(28.0)
    com = lambda b: (b.sum(dim=(1, 3)).squeeze() * idx).sum(1) / b.sum(dim=(1, 2, 3))  # noqa: E731
    shift = (com(moved) - com(x)).abs()
    assert shift.max() <= 2.05 and shift.mean() > 0.3
    rotated = random_affine(x, generator, max_shift=0, max_rotation=10, max_scale=0.1)
    closer_to_original = torch.nn.functional.cosine_similarity(rotated.flatten(1), x.flatten(1))
    closer_to_mirror = torch.nn.functional.cosine_similarity(rotated.flatten(1), x.flip(-1).flatten(1))
    assert (closer_to_original > closer_to_mirror).float().mean() > 0.95
    assert not math.isnan(rotated.sum().item())


def test_the_augmentation_grid_is_the_one_affine_grid_makes():
    # Broadcast sums instead of F.affine_grid's batched matmul: the same sampling points, non-square too.
    theta = torch.randn(64, 2, 3, generator=torch.Generator().manual_seed(0))
    for h, w in ((28, 28), (20, 32)):
        expected = torch.nn.functional.affine_grid(theta, [64, 1, h, w], align_corners=False)
        torch.testing.assert_close(affine_grid(theta, h, w), expected, rtol=0, atol=1e-5)


def test_stroke_width_can_be_left_out_of_the_augmentation(mnist):
    # --no-stroke-width: digits are still shifted, rotated and scaled, with the same draws; their strokes stay
    data = small(mnist, train=256, val=64)
    x = to_float(data.train.images[:128])
    affine_only = random_affine(x, torch.Generator().manual_seed(7))
    torch.testing.assert_close(Trainer(digits_only(stroke_width=False, seed=7), data, CPU).augmented(x), affine_only)
    restroked = Trainer(digits_only(seed=7), data, CPU).augmented(x)
    ink = lambda batch: batch.sum(dim=(1, 2, 3))  # noqa: E731
    assert ((ink(restroked) / ink(affine_only) - 1).abs() > 0.1).float().mean() > 0.5
    assert "scale augmentation" in describe(MODERN.but(stroke_width=False))
    assert "scale/stroke-width augmentation" in describe(MODERN)
    # Without the augmentation there is no stroke width to leave out: both off is no augmentation, not a mistake
    assert describe(MODERN.but(augment=False, stroke_width=False)) == describe(MODERN.but(augment=False))


@pytest.mark.parametrize("optimizer", recipes.OPTIMIZERS)
@pytest.mark.parametrize("schedule", recipes.SCHEDULES)
def test_the_recipe_in_words_names_the_momentum_the_optimizer_steps_with(optimizer, schedule):
    # One-cycle moves the momentum against the rate (OneCycleLR's default): the card said "momentum 0.9".
    from lenet5.model import LeNet5
    from lenet5.optim import make_optimizer, make_schedule

    config = MODERN.but(optimizer=optimizer, schedule=schedule, epochs=4)
    model = LeNet5()
    optimizer_ = make_optimizer(model, config)
    schedule_ = make_schedule(optimizer_, config, steps_per_epoch=10)
    seen = []
    for _ in range(config.epochs * 10):  # no gradients: the steps move the schedule only
        group = optimizer_.param_groups[0]
        seen.append(group["betas"][0] if optimizer == "adam" else group["momentum"])
        optimizer_.step()
        if schedule == "onecycle":
            schedule_.step()
        else:
            schedule_.step(0.5)  # a flat validation accuracy
    name = "first beta" if optimizer == "adam" else "momentum"
    if schedule == "onecycle":
        assert f"{name} {seen[0]:g} down to {min(seen):g} at the peak and back" in describe(config)
        assert seen[0] > min(seen) and seen[-1] > min(seen)
    else:
        assert len(set(seen)) == 1 and f"{name} {seen[0]:g}" in describe(config)


def test_validation_split_is_fixed_and_disjoint(data_dir):
    a, b = load_mnist(data_dir, val_size=1000), load_mnist(data_dir, val_size=1000)
    assert torch.equal(a.val.images, b.val.images)
    assert len(a.train) == 59_000 and len(a.val) == 1_000 and len(a.test) == 10_000
    train_keys = {hash(img.numpy().tobytes()) for img in a.train.images[:20000]}
    overlap = sum(hash(img.numpy().tobytes()) in train_keys for img in a.val.images)
    assert overlap < 5  # MNIST holds a few exact duplicates; a shared split would overlap by ~333
    assert len(load_mnist(data_dir, val_size=0).train) == 60_000
    with pytest.raises(ValueError, match="val_size"):
        load_mnist(data_dir, val_size=60_000)


def test_damaged_mnist_files_are_named_in_the_error(data_dir, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).write_bytes((data_dir / "MNIST" / "raw" / name).read_bytes()[:1000])
    with pytest.raises(ValueError, match=f"MNIST files in {raw} are damaged"):
        load_mnist(tmp_path)



def test_the_saved_report_reuses_the_test_evaluation(mnist, tmp_path):
    # The model card, metrics and pictures come from the one evaluation of the test set: saving runs no network.
    from lenet5.report import build_metrics, save_run

    data = small(mnist, train=2_560, val=500)
    result = Trainer(digits_only(epochs=1, batch_size=128, ema_decay=0), data, CPU).run(progress=False)
    test = evaluate(result.model, data.test)
    assert torch.allclose(test.probabilities.sum(1), torch.ones(len(data.test)))
    assert torch.equal(test.probabilities.argmax(1), test.predictions)
    forwards = []
    result.model.register_forward_hook(lambda *_: forwards.append(1))
    metrics = build_metrics(result, test, CPU, len(data.train), len(data.val), "python train.py")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the pictures are drawn from numpy arrays: no deprecation from matplotlib
        written = save_run(tmp_path / "run", result, data.test, test, metrics)
    assert forwards == [] and (tmp_path / "run" / "misclassified.png") in written


def test_the_misclassified_picture_shows_each_wrong_digit_once_in_order_with_its_label(mnist):
    from lenet5.plots import CELL_HEIGHT, CELL_WIDTH, LABEL_BAND, misclassified_grid

    test = mnist.test.head(300)
    predictions = test.labels.clone()
    wrong = [3, 50, 51, 299]  # four mistakes, read back in this order
    predictions[wrong] = (predictions[wrong] + 1) % 10
    probabilities = torch.full((300, 10), 0.1)
    probabilities[wrong, predictions[wrong]] = torch.tensor([0.4, 0.5, 0.6, 0.7])
    evaluation = Evaluation(0.0, 0.0, predictions, test.labels, probabilities)
    canvas, labels = misclassified_grid(test, evaluation, limit=3, cols=2)  # the first three, two to a row
    assert canvas.shape == (2 * CELL_HEIGHT, 2 * CELL_WIDTH) and canvas.dtype == np.uint8
    for k, i in enumerate(wrong[:3]):
        row, col = divmod(k, 2)
        left = col * CELL_WIDTH + (CELL_WIDTH - 28) // 2
        top = row * CELL_HEIGHT + LABEL_BAND
        assert np.array_equal(canvas[top:top + 28, left:left + 28], test.images[i].numpy())
        assert labels[k][2] == f"{int(test.labels[i])}→{int(predictions[i])} {0.4 + 0.1 * k:.0%}"
        assert labels[k][1] < top  # written above its digit
    assert int(canvas.sum()) == sum(int(test.images[i].sum()) for i in wrong[:3])  # nothing else drawn
    none_wrong = Evaluation(0.0, 1.0, test.labels, test.labels, probabilities)
    blank, no_labels = misclassified_grid(test, none_wrong)
    assert not blank.any() and no_labels == [] and blank.shape == (CELL_HEIGHT, 10 * CELL_WIDTH)
