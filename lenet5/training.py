"""The training loop: in-memory batches, on-device augmentation, one-cycle schedule, EMA, checkpoints."""

import os
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.utils import ModelEmaV3
from tqdm.auto import tqdm

from .data import MNISTData, Split, ordered_batches, random_affine, random_stroke_width, shuffled_batches, to_float
from .model import LeNet5


@dataclass
class TrainConfig:
    """Everything that decides what a run learns; saved in checkpoints so --resume continues the same run."""

    variant: str = "modern"
    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.1  # peak learning rate of the one-cycle schedule (SGD with Nesterov momentum)
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    ema_decay: float = 0.999  # 0 turns the weight average off
    augment: bool = True  # random shift, rotation, scale and stroke width of every training batch
    val_size: int = 5000  # training images held out for validation (a fixed split, whatever the seed)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclass
class EpochStats:
    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    seconds: float


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    predictions: torch.Tensor  # int64 [N], on the CPU
    labels: torch.Tensor  # int64 [N], on the CPU

    @property
    def errors(self) -> int:
        return int((self.predictions != self.labels).sum())


@dataclass
class TrainResult:
    model: LeNet5  # the weights to keep: the EMA average when EMA is on
    config: TrainConfig
    history: list[EpochStats] = field(default_factory=list)
    seconds: float = 0.0  # training wall time, summed over resumed sessions


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; asking for CUDA without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device cpu")
    return torch.device(name)


def autocast(device: torch.device) -> torch.autocast:
    """bf16 mixed precision on CUDA; full fp32 on the CPU, where bf16 only pays on chips with AMX."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: Split, batch_size: int = 2000) -> Evaluation:
    model.eval()
    device = next(model.parameters()).device
    losses, predictions = [], []
    for images, labels in ordered_batches(split, batch_size):
        with autocast(device):
            logits = model(to_float(images)).float()
        losses.append(F.cross_entropy(logits, labels, reduction="sum"))
        predictions.append(logits.argmax(1))
    predictions = torch.cat(predictions).cpu()
    labels = split.labels.cpu()
    return Evaluation(
        loss=float(torch.stack(losses).sum()) / len(split),
        accuracy=float((predictions == labels).float().mean()),
        predictions=predictions,
        labels=labels,
    )


CHECKPOINT_KEYS = {"config", "epoch", "step", "seconds", "history", "model", "ema", "optimizer", "scheduler",
                   "generator", "torch_rng"}


class Trainer:
    """Holds one run's state (model, optimizer, schedule, EMA, random generator) so it can be checkpointed."""

    def __init__(self, config: TrainConfig, data: MNISTData, device: torch.device):
        if len(data.train) < config.batch_size:
            raise ValueError(f"batch_size {config.batch_size} is larger than the {len(data.train)} training images")
        self.config, self.data, self.device = config, data, device
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)  # batch order and augmentation
        self.model = LeNet5(variant=config.variant).to(device)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
        self.steps_per_epoch = len(data.train) // config.batch_size
        # One cycle: a short warm-up to the peak rate, then a long anneal to almost nothing.
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=config.lr, total_steps=config.epochs * self.steps_per_epoch, pct_start=0.15
        )
        self.ema = ModelEmaV3(self.model, decay=config.ema_decay, use_warmup=True) if config.ema_decay else None
        self.epoch = 0
        self.step = 0
        self.history: list[EpochStats] = []
        self.seconds = 0.0

    @property
    def final_model(self) -> LeNet5:
        return self.ema.module if self.ema else self.model

    def train_one_epoch(self, progress: bool = True) -> tuple[float, float]:
        """One pass over the training images; returns the mean training loss and accuracy."""
        cfg, model = self.config, self.model
        model.train()
        total_loss = torch.zeros((), device=self.device)
        total_correct = torch.zeros((), device=self.device)
        batches = tqdm(
            shuffled_batches(self.data.train, cfg.batch_size, self.generator),
            total=self.steps_per_epoch,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            disable=None if progress else True,  # None: a bar on terminals only, not in logs
            leave=False,
        )
        for i, (images, labels) in enumerate(batches, start=1):
            x = to_float(images)
            if cfg.augment:
                x = random_stroke_width(random_affine(x, self.generator), self.generator)
            with autocast(self.device):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            if self.ema:
                self.ema.update(model, step=self.step)
            total_loss += loss.detach()
            total_correct += (logits.argmax(1) == labels).sum()
            if i % 20 == 0 or i == self.steps_per_epoch:  # reading a GPU value waits for it: not every step
                batches.set_postfix(loss=f"{total_loss.item() / i:.4f}", acc=f"{total_correct.item() / (i * cfg.batch_size):.4f}")
        return total_loss.item() / self.steps_per_epoch, total_correct.item() / (self.steps_per_epoch * cfg.batch_size)

    def run(self, checkpoint: Path | None = None, progress: bool = True, until_epoch: int | None = None) -> TrainResult:
        """Train up to `until_epoch` (default: the last), validating after each epoch and checkpointing it
        when `checkpoint` is set; calling run again continues from there."""
        last = self.config.epochs if until_epoch is None else min(until_epoch, self.config.epochs)
        while self.epoch < last:
            start = time.perf_counter()
            lr = self.scheduler.get_last_lr()[0]
            train_loss, train_acc = self.train_one_epoch(progress)
            val = evaluate(self.final_model, self.data.val) if len(self.data.val) else None
            self.epoch += 1
            seconds = time.perf_counter() - start
            self.seconds += seconds
            stats = EpochStats(
                epoch=self.epoch,
                lr=lr,
                train_loss=train_loss,
                train_acc=train_acc,
                val_loss=val.loss if val else None,
                val_acc=val.accuracy if val else None,
                seconds=seconds,
            )
            self.history.append(stats)
            if progress:
                print(format_epoch(stats, self.config.epochs), flush=True)
            if checkpoint is not None:
                self.save_checkpoint(checkpoint)
        return TrainResult(self.final_model, self.config, self.history, self.seconds)

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
        }

    def save_checkpoint(self, path: Path) -> None:
        """Write the checkpoint beside its final name, then rename: a crash never leaves half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        torch.save(self.state_dict(), partial)
        os.replace(partial, path)

    @classmethod
    def from_state(cls, state: dict, data: MNISTData, device: torch.device) -> "Trainer":
        """Rebuild a run from a checkpoint's state (see `load_checkpoint`), exactly where it stopped."""
        trainer = cls(TrainConfig(**state["config"]), data, device)
        trainer.model.load_state_dict(state["model"])
        if trainer.ema:
            trainer.ema.load_state_dict(state["ema"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        trainer.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        trainer.epoch, trainer.step, trainer.seconds = state["epoch"], state["step"], state["seconds"]
        trainer.history = [EpochStats(**stats) for stats in state["history"]]
        return trainer


def load_checkpoint(path: Path, device: torch.device) -> dict:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"cannot resume: there is no checkpoint at {path}") from None
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as error:
        raise ValueError(f"cannot resume: {path} is not a readable checkpoint ({error})") from None
    missing = CHECKPOINT_KEYS - set(state) if isinstance(state, dict) else CHECKPOINT_KEYS
    if missing:
        raise ValueError(f"cannot resume: {path} is not a lenet5 training checkpoint (missing {sorted(missing)})")
    if state["epoch"] >= state["config"]["epochs"]:
        raise ValueError(f"nothing to resume: the run in {path} already finished its {state['epoch']} epochs")
    return state


def format_epoch(stats: EpochStats, epochs: int) -> str:
    line = f"epoch {stats.epoch:>3}/{epochs}  lr {stats.lr:.4f}  loss {stats.train_loss:.4f}  train {stats.train_acc:.2%}"
    if stats.val_acc is not None:
        line += f"  val {stats.val_acc:.2%} (loss {stats.val_loss:.4f})"
    return line + f"  {stats.seconds:.1f}s"
