"""A recipe planned to fit a time budget (`python train.py --time-budget SECONDS`).

The whole run, from train.py's start to its last saved file, is to end within the budget. The recipe's
schedule is planned for it from measured steps instead of being cut off: the numbers written for pieces
are cut to a share of the budget, the epochs are as many as the measured step time lets fit whole (the
one-cycle warm-up and anneal span them), and the weights' moving average is shortened with them. Where
so few epochs fit that Muon learns more in them than the recipe's SGD, Muon takes its place. After the
first epoch the epochs are planned again from its measured time (`replan`) and the anneal is drawn to
the new end, the warm-up keeping its length (`Trainer.reschedule`). Nothing else changes, so the saved
config is a plain recipe that `python train.py` with its flags trains again, its warm-up 15% of the
epochs saved where the budget run's was 15% of those first planned.
"""

import math
import time

import torch

from .data import MNISTData
from .model import LeNet5
from .recipes import TrainConfig
from .writing import SECONDS_PER_NUMBER

FINISH_SECONDS = 4.0  # the test set's evaluation, the pictures and the files, measured at 2-3 s on 2 cores
PIECES_SHARE = 0.03  # of the budget for writing and cutting numbers (the recipe's 8,000 take a minute or two)
EMA_SHARE = 0.06  # the average's horizon as a share of the run: the recipe's 0.999 over its 16,000 steps
PROBE_WARMUP_SECONDS, PROBE_SECONDS = 0.3, 0.7  # a throwaway run warms up, then its steps are timed
VALIDATION_PROBE_DIGITS = 2000  # a validation pass is timed on these (about 0.06 s on 2 cores) and scaled
# Below this many epochs the default recipe ends more accurate with Muon at MUON_LR (its batch of 256) than with
# its SGD (seed 0, no pieces): 3 epochs 99.35% against 99.05%, 6 epochs 99.39% against 99.20%; at 10 both gave
# 99.33%, and at 14 SGD 99.45% against 99.35% (bench/RESULTS.md).
MUON_BELOW_EPOCHS = 8
MUON_LR = 1.5e-2


def plan_pieces(config: TrainConfig, seconds: float) -> int:
    """How many numbers to write for pieces within PIECES_SHARE of `seconds` (at most the recipe's)."""
    return int(min(config.pieces, PIECES_SHARE * seconds / SECONDS_PER_NUMBER))  # min first: 1e308 s overflows


def seconds_per_step(config: TrainConfig, data: MNISTData, device: torch.device) -> float:
    """One training step of the recipe, measured on this machine: a throwaway run trains for a moment to
    warm up, then for PROBE_SECONDS, counting its steps."""
    from .training import Trainer  # training imports recipes, as this module does: imported in use

    probe = Trainer(config.but(pieces=0, epochs=1000), data, device)  # a schedule a fast device cannot run out of
    probe.train_one_epoch(progress=False, deadline=time.perf_counter() + PROBE_WARMUP_SECONDS)
    before, start = probe.step, time.perf_counter()
    probe.train_one_epoch(progress=False, deadline=start + PROBE_SECONDS)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / (probe.step - before)


def validation_seconds(data: MNISTData, device: torch.device) -> float:
    """One validation pass, measured on up to VALIDATION_PROBE_DIGITS of the digits and scaled to all of them.
    Guessed as a sixth of a training step a batch (no backward pass), it came out four times too short: with
    50,000 digits held out of 10,000 trained on, a plan of 15 epochs had room for 6."""
    from .training import evaluate

    if not len(data.val):
        return 0.0
    sample = data.val.head(VALIDATION_PROBE_DIGITS)
    model = LeNet5().to(device, memory_format=torch.channels_last)  # as the Trainer holds it
    evaluate(model, sample.head(64))  # the first pass pays for allocating
    start = time.perf_counter()
    evaluate(model, sample)
    return (time.perf_counter() - start) * len(data.val) / len(sample)


def plan(config: TrainConfig, seconds: float, step_seconds: float, train_digits: int, val_seconds: float) -> TrainConfig:
    """The recipe for `seconds` of training: whole epochs that fit at `step_seconds` a step and a validation
    pass of `val_seconds` after each, at least one and at most the recipe's, and a moving average to match."""
    steps_per_epoch = train_digits // config.batch_size
    epoch_seconds = step_seconds * steps_per_epoch + val_seconds
    return with_epochs(config, math.floor(seconds / epoch_seconds), steps_per_epoch)


def with_epochs(config: TrainConfig, epochs: int, steps_per_epoch: int) -> TrainConfig:
    """The recipe over `epochs` (at least one, at most its own) with a moving average shortened to match."""
    epochs = max(1, min(config.epochs, epochs))
    if epochs == config.epochs:
        return config
    ema_decay = config.ema_decay and min(config.ema_decay, 1 - 1 / max(1.0, EMA_SHARE * epochs * steps_per_epoch))
    return config.but(epochs=epochs, ema_decay=round(ema_decay, 6))


def replan(recipe: TrainConfig, planned: TrainConfig, epoch_seconds: float, seconds_left: float,
           steps_per_epoch: int) -> TrainConfig:
    """The plan again after its first epoch, from that epoch's measured time: the epochs of `recipe` that
    fit in what is left, counting the one done, and the moving average to match; the optimizer and its
    rate stay as `planned` chose them. A probe of a second misjudges the step on a busy machine by 20% or
    more either way (18 ms against epochs of 13-16 ms seen here); an epoch measures it over seconds."""
    replanned = with_epochs(recipe, 1 + math.floor(seconds_left / epoch_seconds), steps_per_epoch)
    return planned.but(epochs=replanned.epochs, ema_decay=replanned.ema_decay)


def with_muon(config: TrainConfig) -> TrainConfig | None:
    """The recipe with Muon at MUON_LR in place of its SGD; None for a recipe without SGD."""
    return config.but(optimizer="muon", lr=MUON_LR) if config.optimizer == "sgd" else None


def plan_run(config: TrainConfig, until: float, data: MNISTData, device: torch.device, train_digits: int,
             optimizer_free: bool = True) -> tuple[TrainConfig, float]:
    """The recipe planned to finish training by `until` (a perf_counter time), and its measured step time.
    `optimizer_free`: the user chose neither the optimizer nor the rate, so Muon may replace SGD."""
    val_seconds = validation_seconds(data, device)

    def fitted(recipe: TrainConfig) -> tuple[TrainConfig, float]:
        step = seconds_per_step(recipe, data, device)  # measured for each: a Muon step costs more than an SGD one
        return plan(recipe, until - time.perf_counter(), step, train_digits, val_seconds), step

    planned, step = fitted(config)
    muon = with_muon(config) if optimizer_free and planned.epochs < MUON_BELOW_EPOCHS else None
    return fitted(muon) if muon else (planned, step)
