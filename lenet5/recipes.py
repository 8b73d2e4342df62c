"""The training recipes: `TrainConfig`, one complete, named preset per way to train, and their words.

Every run starts from a preset (`recipe`) with the user's flags put over it; the checkpoint, metrics.json,
the model card and the reproduce command all read that one object. Each field is also a flag of train.py
(--batch-size for batch_size), with its help written here, once.
"""

import shlex
from dataclasses import dataclass, field, fields, replace

import torch

from .model import VARIANTS

OPTIMIZER_NAMES = {  # as the --optimizer help and the model card's recipe name them
    "sgd": "SGD with Nesterov momentum",
    "adam": "AdamW",
    "muon": "Muon with Nesterov momentum for the weight matrices, AdamW for the biases",
}
MOMENTUM = 0.9  # SGD's and Muon's under the plateau schedule; AdamW's first beta is 0.9 too
# The one-cycle schedule moves the momentum (AdamW's first beta) against the rate, as OneCycleLR does by
# default: from the top of this range down to its bottom at the peak rate, and back up over the anneal.
ONE_CYCLE_MOMENTUM = (0.85, 0.95)
OPTIMIZERS = tuple(OPTIMIZER_NAMES)
SCHEDULES = ("onecycle", "plateau")
DEVICES = ("auto", "cpu", "cuda")


def option(help: str, choices: tuple[str, ...] | None = None):
    """A TrainConfig field with what its command-line flag says about it."""
    return field(metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run learns; saved in checkpoints so --resume continues the same run."""

    preset: str = field(metadata={})  # the PRESETS entry the run started from; not a flag (train.py --fast picks it)
    variant: str = option("modern (ReLU, max-pool) or lecun1998 (the paper's network)", VARIANTS)
    epochs: int = option("passes over the data")
    batch_size: int = option("digits per training step")
    optimizer: str = option("; ".join(f"{key}: {name}" for key, name in OPTIMIZER_NAMES.items()), OPTIMIZERS)
    lr: float = option("peak learning rate of the one-cycle schedule, starting rate of the plateau one")
    weight_decay: float = option("L2 weight decay")
    label_smoothing: float = option("label smoothing of the cross-entropy (modern only)")
    ema_decay: float = option("decay of the weights' moving average; 0 turns it off")
    augment: bool = option("random shift, rotation, scale and stroke width of every training batch")
    stroke_width: bool = option("thicker and thinner strokes among those changes, as pens and drawing sizes vary "
                                "them; without, an epoch takes about a fifth less time and thick pens read worse")
    val_size: int = option("training images held out for validation (a fixed split); 0 trains on all 60,000")
    seed: int = option("random seed")
    schedule: str = option("onecycle: warm up, then anneal; plateau: halve the rate when validation accuracy "
                           "stalls", SCHEDULES)
    patience: int = option("stop when validation accuracy has not improved for this many epochs, keeping the best "
                           "epoch's weights; 0: never")
    pieces: int = option("numbers of 2-4 training digits to write and cut with read_number's segmenter, their "
                         "candidate digits added to the training images: the wrong cuts teach the network to doubt "
                         "what is no digit, as LeCun et al. (1998) trained theirs; 0: none")

    def __post_init__(self) -> None:
        if self.preset not in PRESET_NAMES:
            raise ValueError(f"preset must be one of {', '.join(PRESET_NAMES)}, got {self.preset!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
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
        if self.pieces < 0:
            raise ValueError(f"pieces must be 0 (none) or more numbers, got {self.pieces}")
        if self.variant == "lecun1998" and self.label_smoothing:
            raise ValueError("label_smoothing does not apply to lecun1998, which trains with the paper's MAP criterion")
        if (self.patience or self.schedule == "plateau") and not self.val_size:
            raise ValueError("patience and the plateau schedule watch validation accuracy: val_size must be above 0")

    def but(self, **changes) -> "TrainConfig":
        """This recipe with some fields changed, checked again."""
        return replace(self, **changes)


PRESET_NAMES = ("modern", "lecun1998", "fast", "fast-cuda")
FLAG_FIELDS = tuple(f for f in fields(TrainConfig) if "help" in f.metadata)

# The modern LeNet-5's full recipe (`python train.py`).
MODERN = TrainConfig(preset="modern", variant="modern", epochs=30, batch_size=256, optimizer="sgd", lr=0.1,
                     weight_decay=5e-4, label_smoothing=0.1, ema_decay=0.999, augment=True, stroke_width=True,
                     val_size=5000, seed=0, schedule="onecycle", patience=0, pieces=8000)
# The paper's network has no BatchNorm and its RBF outputs are squared distances of about 100: plain SGD
# blows up at any rate that learns in reasonable time, while Adam's per-parameter steps take it there (the
# paper used per-parameter steps too). Its MAP criterion has no label smoothing.
LECUN1998 = MODERN.but(preset="lecun1998", variant="lecun1998", optimizer="adam", lr=3e-3, weight_decay=0.0,
                       label_smoothing=0.0)
# The fastest way to 99% test accuracy: one epoch of Muon, one-cycle, on all 60,000 digits as they are, no
# validation pass, no weight average (bench/train_speed.py; `python train.py --fast`). AdamW at a peak of
# 1.5e-2 needed two epochs. Batch 384 at 2.5e-2 takes about a fifth less time than batch 256 at 1.5e-2 on a
# 2-core CPU (fewer, larger steps) and ended at 99.0% or more on 19 of 20 seeds in float32 (98.94% on one;
# batch 256: all 20), on 17 of 20 under bf16 autocast (98.91-99.17%); at batch 512 six of fifteen seeds
# ended below 99.0%. Label smoothing 0.2 (bench/RESULTS.md).
FAST = MODERN.but(preset="fast", epochs=1, batch_size=384, optimizer="muon", lr=2.5e-2, label_smoothing=0.2,
                  val_size=0, augment=False, ema_decay=0.0, pieces=0)
# On a GPU a LeNet-5 step is the same 5 ms or so of kernel launches at batch 256 or 1024 (H200), so fewer,
# larger steps are faster: 2 epochs at batch 1024 took 0.57-0.64 s (99.07-99.23% on 5 seeds), where the
# 234 steps of batch 256 took 1.0-1.15 s; one epoch at batch 512 was as quick but left three of five
# seeds below 99.0% (bench/RESULTS.md).
FAST_CUDA = FAST.but(preset="fast-cuda", epochs=2, batch_size=1024, lr=3e-2)
PRESETS = {config.preset: config for config in (MODERN, LECUN1998, FAST, FAST_CUDA)}


def recipe(variant: str = "modern", fast: bool = False, device: torch.device | str = "cpu", **overrides) -> TrainConfig:
    """The preset for the variant (with `fast`, the quickest recipe to 99% on this device), with any field
    overridden; ValueError, in one sentence, for a pair that has no recipe."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if fast and variant != "modern":
        raise ValueError(f"--fast is the modern LeNet-5's quickest recipe and {variant} has none: train it with "
                         f"--variant {variant}, and fewer --epochs for a quick run")
    name = ("fast-cuda" if torch.device(device).type == "cuda" else "fast") if fast else variant
    return PRESETS[name].but(**overrides)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def command(config: TrainConfig) -> str:
    """The train.py command that makes this recipe again: its preset's flags, then every field that differs
    from the preset (it trains, never pushes)."""
    words = ["python", "train.py"]
    if config.preset.startswith("fast"):
        words += ["--fast", *(["--device", "cuda"] if config.preset == "fast-cuda" else [])]
    if config.variant != MODERN.variant:
        words += [flag("variant"), config.variant]
    preset = PRESETS[config.preset]
    for recipe_field in FLAG_FIELDS:
        value = getattr(config, recipe_field.name)
        if recipe_field.name == "variant" or value == getattr(preset, recipe_field.name):
            continue
        if recipe_field.type is bool:
            words.append(flag(("" if value else "no_") + recipe_field.name))
        else:
            words += [flag(recipe_field.name), f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)


def describe(c: TrainConfig) -> str:
    """The recipe in words, for the model card."""
    momentum = "first beta" if c.optimizer == "adam" else "momentum"
    low, high = ONE_CYCLE_MOMENTUM
    schedule = (f"one-cycle learning rate peaking at {c.lr:g}, {momentum} {high:g} down to {low:g} at the peak and back"
                if c.schedule == "onecycle"
                else f"learning rate {c.lr:g}, halved when validation accuracy stalls, {momentum} {MOMENTUM:g}")
    loss = ("the paper's MAP criterion (eq. 9)" if c.variant == "lecun1998"
            else f"cross-entropy with label smoothing {c.label_smoothing:g}" if c.label_smoothing else "cross-entropy")
    augmentation = ("no augmentation" if not c.augment
                    else f"random shift/rotation/scale{'/stroke-width' if c.stroke_width else ''} augmentation")
    parts = [
        f"{OPTIMIZER_NAMES[c.optimizer]}, weight decay {c.weight_decay:g}",
        schedule,
        f"batch {c.batch_size}",
        loss,
        f"EMA of weights (decay {c.ema_decay:g})" if c.ema_decay else "no weight averaging",
        augmentation,
        (f"the candidate digits of {c.pieces:,} numbers written with the training digits and cut as read_number "
         "cuts them, wrong cuts taught as no digit") if c.pieces else "",
        f"early stopping after {c.patience} epochs without progress" if c.patience else "",
        f"seed {c.seed}",
    ]
    return ", ".join(part for part in parts if part)


def from_saved(saved: dict) -> TrainConfig:
    """The config a checkpoint or metrics.json recorded; ValueError if another version of lenet5 wrote it."""
    names = {f.name for f in fields(TrainConfig)}
    if not isinstance(saved, dict) or set(saved) != names:
        raise ValueError("it was written by another version of lenet5 (its recipe's fields differ)")
    return TrainConfig(**saved)


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
