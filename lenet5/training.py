"""The training loop: in-memory batches, on-device augmentation, one-cycle schedule, EMA, checkpoints."""

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import write_checkpoint
from .data import MNISTData, Split, ordered_batches, random_affine, random_stroke_width, shuffled_batches, to_float
from .model import RUBBISH, LeNet5
from .optim import make_ema, make_optimizer, make_schedule, one_cycle, warmup_length
from .recipes import TrainConfig, from_saved, training_dtype
from .writing import number_pieces


@dataclass
class EpochStats:
    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    seconds: float
    lr_end: float | None = None  # the rate the epoch ended with (`lr` is where it started)


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    predictions: torch.Tensor  # int64 [N], on the CPU
    labels: torch.Tensor  # int64 [N], on the CPU
    probabilities: torch.Tensor  # float [N, classes], on the CPU: the softmax of the same logits

    @property
    def errors(self) -> int:
        return int((self.predictions != self.labels).sum())


@dataclass
class TrainResult:
    model: LeNet5  # the weights to keep: the EMA average when EMA is on, the best epoch's with patience
    config: TrainConfig
    history: list[EpochStats] = field(default_factory=list)
    seconds: float = 0.0  # training wall time, summed over resumed sessions
    stopped: str = "finished"  # or why the run ended before its last epoch


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: Split, batch_size: int = 2000) -> Evaluation:
    model.eval()
    losses, probabilities = [], []
    for images, labels in ordered_batches(split, batch_size):  # in fp32, as the weights will be used
        logits = model(to_float(images))
        losses.append(model.loss(logits, labels) * len(labels))
        probabilities.append(torch.softmax(logits, dim=1))
    probabilities = torch.cat(probabilities).cpu()
    predictions = probabilities.argmax(1)
    labels = split.labels.cpu()
    return Evaluation(
        loss=float(torch.stack(losses).sum()) / len(split),
        accuracy=float((predictions == labels).float().mean()),
        predictions=predictions,
        labels=labels,
        probabilities=probabilities,
    )


def with_pieces(digits: Split, pieces: Split | None) -> Split:
    """The training digits, and the candidate digits of numbers written with them (lenet5.writing)."""
    if pieces is None:
        return digits
    pieces = pieces.to(digits.labels.device)
    return Split(torch.cat([digits.images, pieces.images]), torch.cat([digits.labels, pieces.labels]))


class Trainer:
    """Holds one run's state (model, optimizer, schedule, EMA, random generator) so it can be checkpointed."""

    def __init__(self, config: TrainConfig, data: MNISTData, device: torch.device, pieces: Split | None = None):
        """`pieces`: the candidate digits of `config.pieces` numbers, as a checkpoint kept them; cut anew when
        None (a minute or two for the recipe's 8,000 numbers)."""
        if len(data.train) < config.batch_size:
            raise ValueError(f"batch_size {config.batch_size} is larger than the {len(data.train)} training images")
        if (config.patience or config.schedule == "plateau") and not len(data.val):
            raise ValueError("patience and the plateau schedule watch validation accuracy, but there are no validation images")
        self.config, self.data, self.device = config, data, device
        if config.pieces and pieces is None:
            pieces = number_pieces(data.train, config.pieces, config.seed)
        self.pieces = pieces if config.pieces else None
        self.train_split = with_pieces(data.train, self.pieces)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)  # batch order and augmentation
        # channels_last: the convolutions' fastest layout on CPUs and on tensor cores alike.
        self.model = LeNet5(variant=config.variant).to(device, memory_format=torch.channels_last)
        self.dtype = training_dtype(device)
        self.optimizer = make_optimizer(self.model, config)
        self.steps_per_epoch = len(self.train_split) // config.batch_size
        self.scheduler = make_schedule(self.optimizer, config, self.steps_per_epoch)
        self.ema = make_ema(self.model, config.ema_decay) if config.ema_decay else None
        self.epoch = 0
        self.step = 0
        self.history: list[EpochStats] = []
        self.seconds = 0.0
        self.best: dict | None = None  # with patience: {"epoch", "val_acc", "weights"} of the best epoch so far
        self.stopped = ""  # why patience ended the run; a run stopped that way is not resumed

    def reschedule(self, config: TrainConfig) -> None:
        """Go on under `config`, which may differ from the run's own in its epochs and moving average only.

        The warm-up keeps its length in steps, so the rate goes on from where it is without a jump, and the
        anneal is drawn anew to end with the new last epoch. For a time budget planned again from the first
        epoch's measured time (lenet5.budget.replan).
        """
        others = {name for name, value in asdict(config).items() if value != getattr(self.config, name)} - {"epochs", "ema_decay"}
        if others or config.schedule != "onecycle":
            raise ValueError("a one-cycle run can be rescheduled to other epochs and another moving average only, "
                             f"not {', '.join(sorted(others)) or 'the ' + config.schedule + ' schedule'}")
        if config.epochs <= self.epoch:
            raise ValueError(f"a run {self.epoch} epochs in can be rescheduled to more epochs than that, not {config.epochs}")
        self.scheduler = one_cycle(self.optimizer, config, self.steps_per_epoch, self.step, warmup_length(self.scheduler))
        self.config = config
        if self.ema:
            self.ema.decay = config.ema_decay

    @property
    def final_model(self) -> LeNet5:
        return self.ema.module if self.ema else self.model

    def train_one_epoch(self, progress: bool = True, deadline: float = math.inf) -> tuple[float, float]:
        """One pass over the training images (or up to `deadline`, a perf_counter time); returns the
        mean training loss and the accuracy on its digits (pieces that are no digit have no right answer)."""
        cfg, model = self.config, self.model
        model.train()
        total_loss = torch.zeros((), device=self.device)
        total_correct = torch.zeros((), device=self.device)
        total_digits = torch.zeros((), device=self.device)
        batches = tqdm(
            shuffled_batches(self.train_split, cfg.batch_size, self.generator),
            total=self.steps_per_epoch,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            disable=None if progress else True,  # None: a bar on terminals only, not in logs
            leave=False,
        )
        steps = 0
        for steps, (images, labels) in enumerate(batches, start=1):
            x = to_float(images)
            if cfg.augment:
                x = self.augmented(x)
            logits, loss = self.forward_loss(x.contiguous(memory_format=torch.channels_last), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if cfg.schedule == "onecycle":
                self.scheduler.step()
            self.step += 1
            if self.ema:
                self.ema.update(model, step=self.step)
            total_loss += loss.detach()
            total_correct += (logits.argmax(1) == labels).sum()
            total_digits += (labels != RUBBISH).sum()
            if steps % 20 == 0 or steps == self.steps_per_epoch:  # reading a GPU value waits for it: not every step
                batches.set_postfix(loss=f"{total_loss.item() / steps:.4f}", acc=f"{total_correct.item() / total_digits.item():.4f}")
            if time.perf_counter() > deadline:
                break
        batches.close()
        return total_loss.item() / max(steps, 1), total_correct.item() / max(total_digits.item(), 1)

    def augmented(self, x: torch.Tensor) -> torch.Tensor:
        """A float batch as the recipe's augmentation changes it, with the run's own random draws."""
        x = random_affine(x, self.generator)
        return random_stroke_width(x, self.generator) if self.config.stroke_width else x

    def forward_loss(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's logits and training loss, under bf16 autocast where the device has it natively."""
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            logits = self.model(x)
        return logits, self.model.loss(logits, labels, self.config.label_smoothing)

    def run(
        self,
        checkpoint: Path | None = None,
        progress: bool = True,
        until_epoch: int | None = None,
        time_budget: float | None = None,
    ) -> TrainResult:
        """Train up to `until_epoch` (default: the last), validating after each epoch and checkpointing it
        when `checkpoint` is set; calling run again continues from there.

        Stops early, cleanly (the epoch in progress is validated and saved), when the validation accuracy
        has not improved for `config.patience` epochs, or when this call has trained for `time_budget`
        seconds. With patience, the weights kept are those of the best validation epoch.
        """
        last = self.config.epochs if until_epoch is None else min(until_epoch, self.config.epochs)
        if time_budget is not None and time_budget <= 0:
            raise ValueError(f"the time budget must be a positive number of seconds, got {time_budget:g}")
        deadline = time.perf_counter() + time_budget if time_budget is not None else math.inf
        out_of_time = False
        while self.epoch < last and not self.stopped and not out_of_time:
            start = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, train_acc = self.train_one_epoch(progress, deadline)
            val = evaluate(self.final_model, self.data.val) if len(self.data.val) else None
            self.epoch += 1
            seconds = time.perf_counter() - start
            self.seconds += seconds
            stats = EpochStats(self.epoch, lr, train_loss, train_acc, val and val.loss, val and val.accuracy, seconds,
                               lr_end=self.optimizer.param_groups[0]["lr"])
            self.history.append(stats)
            self.watch_validation(stats)
            out_of_time = time.perf_counter() > deadline and self.epoch < self.config.epochs
            if checkpoint is not None:
                self.save_checkpoint(checkpoint)
            if progress:  # after the checkpoint: an epoch printed is an epoch saved
                print(format_epoch(stats, self.config.epochs), flush=True)
        stopped = self.stopped or (f"time budget of {time_budget:g} s used up in epoch {self.epoch}" if out_of_time else "")
        if stopped and progress:
            print(f"stopped early: {stopped}", flush=True)
        # A copy in the standard layout: safetensors saves contiguous tensors only, and the run stays resumable.
        model = copy.deepcopy(self.final_model).to(memory_format=torch.contiguous_format)
        if self.best is not None:
            model.load_state_dict(self.best["weights"])
        return TrainResult(model, self.config, self.history, self.seconds, stopped or "finished")

    def watch_validation(self, stats: EpochStats) -> None:
        """Step the plateau schedule, remember the best epoch and stop when patience runs out."""
        if self.config.schedule == "plateau":
            self.scheduler.step(stats.val_acc)
        if not self.config.patience:
            return
        if self.best is None or stats.val_acc > self.best["val_acc"]:
            weights = {name: t.detach().clone() for name, t in self.final_model.state_dict().items()}
            self.best = {"epoch": stats.epoch, "val_acc": stats.val_acc, "weights": weights}
        elif stats.epoch - self.best["epoch"] >= self.config.patience:
            self.stopped = (f"no better validation accuracy for {self.config.patience} epochs; "
                            f"kept epoch {self.best['epoch']} ({self.best['val_acc']:.2%})")

    def state_dict(self) -> dict:
        return {
            "config": asdict(self.config),
            "epoch": self.epoch,
            "step": self.step,
            "seconds": self.seconds,
            "history": [asdict(stats) for stats in self.history],
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best": self.best,
            "stopped": self.stopped,
            "pieces": {"images": self.pieces.images, "labels": self.pieces.labels} if self.pieces is not None else None,
        }

    def save_checkpoint(self, path: Path) -> None:
        write_checkpoint(self.state_dict(), path)

    @classmethod
    def from_state(cls, state: dict, data: MNISTData, device: torch.device) -> "Trainer":
        """Rebuild a run from a checkpoint's state (see `load_checkpoint`), exactly where it stopped."""
        pieces = Split(**state["pieces"]) if state.get("pieces") else None  # an older checkpoint's run cuts them again
        trainer = cls(from_saved(state["config"]), data, device, pieces)
        trainer.model.load_state_dict(state["model"])
        if trainer.ema:
            trainer.ema.load_state_dict(state["ema"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        trainer.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        trainer.epoch, trainer.step, trainer.seconds = state["epoch"], state["step"], state["seconds"]
        trainer.history = [EpochStats(**stats) for stats in state["history"]]
        trainer.best, trainer.stopped = state["best"], state["stopped"]
        return trainer


def format_epoch(stats: EpochStats, epochs: int) -> str:
    rate = f"lr {stats.lr:.4f}" if stats.lr_end is None else f"lr {stats.lr:.4f}->{stats.lr_end:.4f}"
    line = f"epoch {stats.epoch:>3}/{epochs}  {rate}  loss {stats.train_loss:.4f}  train {stats.train_acc:.2%}"
    if stats.val_acc is not None:
        line += f"  val {stats.val_acc:.2%} (loss {stats.val_loss:.4f})"
    return line + f"  {stats.seconds:.1f}s"
