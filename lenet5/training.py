"""The training loop: in-memory batches, on-device augmentation, one-cycle schedule, EMA, checkpoints."""

import copy
import math
import os
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import MNISTData, Split, ordered_batches, random_affine, random_stroke_width, shuffled_batches, to_float
from .model import RUBBISH, VARIANTS, LeNet5
from .teacher import MAX_TEACHER_WIDTH, TEACHER_WIDTH, WideTeacher, check_width, distillation_loss, load_teacher
from .writing import number_pieces


OPTIMIZER_NAMES = {  # as the --optimizer help and the model card's recipe name them
    "sgd": "SGD with Nesterov momentum 0.9",
    "adam": "AdamW",
    "muon": "Muon with Nesterov momentum 0.9 for the weight matrices, AdamW for the biases",
}
OPTIMIZERS = tuple(OPTIMIZER_NAMES)
SCHEDULES = ("onecycle", "plateau")
DEVICES = ("auto", "cpu", "cuda")
NETWORKS = (*VARIANTS, "teacher")
PLATEAU_FACTOR, PLATEAU_PATIENCE = 0.5, 2  # the plateau schedule halves the rate after 2 flat epochs


def option(default, help: str, choices: tuple[str, ...] | None = None):
    """A TrainConfig field with what its command-line flag says about it."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    """Everything that decides what a run learns; saved in checkpoints so --resume continues the same run."""

    # Each field is also a flag of train.py (--batch-size for batch_size): its help is written here, once.
    variant: str = option("modern", "modern (ReLU, max-pool), lecun1998 (the paper's network), or teacher (a wide "
                          "network to distil modern from: see --teacher)", NETWORKS)
    epochs: int = option(30, "passes over the data")
    batch_size: int = option(256, "digits per training step")
    optimizer: str = option("sgd", "; ".join(f"{key}: {name}" for key, name in OPTIMIZER_NAMES.items()), OPTIMIZERS)
    lr: float = option(0.1, "peak learning rate of the one-cycle schedule, starting rate of the plateau one")
    weight_decay: float = option(5e-4, "L2 weight decay")
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy")
    ema_decay: float = option(0.999, "decay of the weights' moving average; 0 turns it off")
    augment: bool = option(True, "random shift, rotation, scale and stroke width of every training batch")
    stroke_width: bool = option(True, "thicker and thinner strokes among those changes, as pens and drawing "
                                "sizes vary them; without, an epoch takes about a fifth less time and thick "
                                "pens read worse")
    val_size: int = option(5000, "training images held out for validation (a fixed split); 0 trains on all 60,000")
    seed: int = option(0, "random seed")
    schedule: str = option("onecycle", "onecycle: warm up, then anneal; plateau: halve the rate when validation "
                           "accuracy stalls", SCHEDULES)
    patience: int = option(0, "stop when validation accuracy has not improved for this many epochs, keeping the "
                           "best epoch's weights; 0: never")
    pieces: int = option(0, "numbers of 2-4 training digits to write and cut with read_number's segmenter, their "
                         "candidate digits added to the training images: the wrong cuts teach the network to doubt "
                         "what is no digit, as LeCun et al. (1998) trained theirs; 0: none")
    teacher: str = option("", "folder of a network trained with --variant teacher, or several folders separated by "
                          "commas (their logits averaged): learn from its softened outputs as well as from the labels "
                          "(knowledge distillation; modern only)")
    width: int = option(TEACHER_WIDTH, "maps of the teacher's first two convolutions, twice and four times as many deeper "
                        f"(variant teacher only; at most {MAX_TEACHER_WIDTH})")

    def __post_init__(self) -> None:
        if self.variant not in NETWORKS:
            raise ValueError(f"variant must be one of {', '.join(NETWORKS)}, got {self.variant!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.patience < 0:
            raise ValueError(f"patience must be 0 (off) or more epochs, got {self.patience}")
        if not self.stroke_width and not self.augment:
            raise ValueError("stroke_width is one of the augmentation's changes: it needs augment on")
        if self.pieces < 0:
            raise ValueError(f"pieces must be 0 (none) or more numbers, got {self.pieces}")
        if self.pieces and (self.teacher or self.variant == "teacher"):
            raise ValueError("pieces of numbers teach a LeNet-5 on its own labels: not with a teacher, nor to one")
        if self.variant == "lecun1998" and self.label_smoothing:
            raise ValueError("label_smoothing does not apply to lecun1998, which trains with the paper's MAP criterion")
        check_width(self.width)
        if self.width != TEACHER_WIDTH and self.variant != "teacher":
            raise ValueError(f"width sets the teacher's size; {self.variant} has a fixed architecture")
        if self.teacher and self.variant != "modern":
            raise ValueError(f"--teacher distils the modern LeNet-5, not {self.variant}")
        if (self.patience or self.schedule == "plateau") and not self.val_size:
            raise ValueError("patience and the plateau schedule watch validation accuracy: val_size must be above 0")


# Where a variant's recipe differs from TrainConfig's defaults. The paper's network has no BatchNorm and
# its RBF outputs are squared distances of about 100: plain SGD blows up at any rate that learns in
# reasonable time, while Adam's per-parameter steps take it there (the paper used per-parameter steps too).
RECIPES = {
    "modern": {"pieces": 8000},
    "lecun1998": {"optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, "label_smoothing": 0.0, "pieces": 8000},
    # No label smoothing for a teacher: it flattens the very resemblances between digits it is meant to teach.
    "teacher": {"epochs": 15, "optimizer": "adam", "lr": 4e-3, "label_smoothing": 0.0},
}

# The fastest way to 99% test accuracy: one epoch of Muon, one-cycle, on all 60,000 digits as they are, no
# validation pass, no weight average (bench/train_speed.py; `python train.py --fast`). AdamW at a peak of
# 1.5e-2 needed two epochs: 1.5 left seeds at 98.92%. Label smoothing 0.2 kept all of 20 seeds at 99.0% or
# more (99.01-99.21%); at 0.1 one of them ended at 98.98% (bench/RESULTS.md).
FAST_RECIPE = {"epochs": 1, "optimizer": "muon", "lr": 1.5e-2, "label_smoothing": 0.2, "val_size": 0, "augment": False,
               "ema_decay": 0.0, "pieces": 0}

# On a GPU a LeNet-5 step is the same 5 ms or so of kernel launches at batch 256 or 1024 (H200), so fewer,
# larger steps are faster: 2 epochs at batch 1024 took 0.57-0.64 s (99.07-99.23% on 5 seeds), where the
# CPU recipe's 234 steps took 1.0-1.15 s; one epoch at batch 512 was as quick but left three of five
# seeds below 99.0% (bench/RESULTS.md).
FAST_RECIPE_CUDA = {**FAST_RECIPE, "epochs": 2, "batch_size": 1024, "lr": 3e-2}


def fast_recipe(device: torch.device) -> dict:
    """The quickest recipe to 99% on this device (`train.py --fast`)."""
    return FAST_RECIPE_CUDA if device.type == "cuda" else FAST_RECIPE


# Learning from a teacher: AdamW, whose steps do not grow with the distillation loss's T^2 scale. SGD at
# the modern recipe's rate stalled a network without BatchNorm within 100 steps (loss 6.2 -> 5.9); at a
# quarter of it, 0.025, SGD learns, and does no better (bench/RESULTS.md).
DISTILL_RECIPE = {"optimizer": "adam", "lr": 5e-3, "pieces": 0}


def default_config(variant: str = "modern", **overrides) -> TrainConfig:
    """The variant's recipe (the distillation one with a teacher), with any field overridden (TrainConfig
    rejects an unknown variant)."""
    recipe = {**RECIPES.get(variant, {}), **(DISTILL_RECIPE if overrides.get("teacher") else {})}
    return TrainConfig(variant=variant, **{**recipe, **overrides})


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
    model: LeNet5 | WideTeacher  # the weights to keep: the EMA average when EMA is on, the best epoch's with patience
    config: TrainConfig
    history: list[EpochStats] = field(default_factory=list)
    seconds: float = 0.0  # training wall time, summed over resumed sessions
    stopped: str = "finished"  # or why the run ended before its last epoch


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; asking for CUDA without a GPU is an error."""
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device cpu")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether the device multiplies bf16 in hardware: CUDA from Ampere on; on x86 CPUs, AVX512-BF16 or AMX.

    A CPU without them emulates bf16 and runs a LeNet-5 step about eight times slower than in fp32, so
    bf16 must be chosen by the chip, never by the device type. torch.cpu's checks are private, hence the
    getattr: on a torch without them the CPU trains in fp32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


def training_dtype(device: torch.device) -> torch.dtype:
    """What the training step computes in: bf16 autocast where the device has it natively, else fp32."""
    return torch.bfloat16 if native_bf16(device) else torch.float32


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


def build_network(config: TrainConfig) -> LeNet5 | WideTeacher:
    return WideTeacher(config.width) if config.variant == "teacher" else LeNet5(variant=config.variant)


# timm (EMA, Muon's orthogonalisation) brings torchvision and torch._dynamo: seconds of start-up that a
# command failing on its arguments, or a run without EMA or Muon, should not pay. They are imported in use.


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "muon":
        from .optim import Muon

        return Muon(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, momentum=0.9)
    if config.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)


def make_ema(model: torch.nn.Module, decay: float) -> torch.nn.Module:
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay, use_warmup=True)


CHECKPOINT_KEYS = {"config", "epoch", "step", "seconds", "history", "model", "ema", "optimizer", "scheduler",
                   "generator", "torch_rng", "best", "stopped"}


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
        self.model = build_network(config).to(device, memory_format=torch.channels_last)
        self.teacher = load_teacher(config.teacher, device) if config.teacher else None
        self.dtype = training_dtype(device)
        self.optimizer = make_optimizer(self.model, config)
        self.steps_per_epoch = len(self.train_split) // config.batch_size
        if config.schedule == "onecycle":  # a short warm-up to the peak rate, then a long anneal to almost nothing
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=config.lr, total_steps=config.epochs * self.steps_per_epoch, pct_start=0.15
            )
        else:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="max", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
            )
        self.ema = make_ema(self.model, config.ema_decay) if config.ema_decay else None
        self.epoch = 0
        self.step = 0
        self.history: list[EpochStats] = []
        self.seconds = 0.0
        self.best: dict | None = None  # with patience: {"epoch", "val_acc", "weights"} of the best epoch so far
        self.stopped = ""  # why patience ended the run; a run stopped that way is not resumed

    @property
    def final_model(self) -> LeNet5 | WideTeacher:
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
        """The batch's logits and training loss: against the labels, or with a teacher, against its outputs too."""
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            logits = self.model(x)
            with torch.no_grad():
                teacher_logits = self.teacher(x) if self.teacher else None
        if teacher_logits is None:
            return logits, self.model.loss(logits, labels, self.config.label_smoothing)
        return logits, distillation_loss(logits, teacher_logits, labels, self.config.label_smoothing)

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
        """Write the checkpoint beside its final name, then rename: a crash never leaves half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        try:
            torch.save(self.state_dict(), partial)
            os.replace(partial, path)
        except (OSError, RuntimeError) as error:  # a full disk reaches torch.save's writer as a RuntimeError
            if partial.is_file():
                partial.unlink()
            raise ValueError(f"cannot write the checkpoint {path} (disk full or read-only?): {brief(error)}; "
                             f"the last good checkpoint is kept") from None

    @classmethod
    def from_state(cls, state: dict, data: MNISTData, device: torch.device) -> "Trainer":
        """Rebuild a run from a checkpoint's state (see `load_checkpoint`), exactly where it stopped."""
        pieces = Split(**state["pieces"]) if state.get("pieces") else None  # an older checkpoint's run cuts them again
        trainer = cls(TrainConfig(**state["config"]), data, device, pieces)
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
    if state.get("pieces") is not None and not stored_pieces_fit(state["pieces"]):
        raise ValueError(f"cannot resume: the pieces of numbers in {path} are damaged; start the run again")
    return state


def stored_pieces_fit(pieces) -> bool:
    """A checkpoint's pieces are uint8 [N, 28, 28] images with N labels."""
    try:
        images, labels = pieces["images"], pieces["labels"]
        return images.dtype == torch.uint8 and tuple(images.shape[1:]) == (28, 28) and labels.shape == (len(images),)
    except (TypeError, KeyError, AttributeError):
        return False


def brief(error: Exception, words: int = 12) -> str:
    """The start of an error's message, on one line: torch's disk errors run to many lines of C++ context."""
    return " ".join(str(error).split()[:words]) or type(error).__name__


def is_finished(state: dict) -> bool:
    """Whether a checkpoint's run has trained all it will: what is left is to evaluate and save it."""
    return state["epoch"] >= state["config"]["epochs"] or bool(state["stopped"])


def format_epoch(stats: EpochStats, epochs: int) -> str:
    rate = f"lr {stats.lr:.4f}" if stats.lr_end is None else f"lr {stats.lr:.4f}->{stats.lr_end:.4f}"
    line = f"epoch {stats.epoch:>3}/{epochs}  {rate}  loss {stats.train_loss:.4f}  train {stats.train_acc:.2%}"
    if stats.val_acc is not None:
        line += f"  val {stats.val_acc:.2%} (loss {stats.val_loss:.4f})"
    return line + f"  {stats.seconds:.1f}s"
