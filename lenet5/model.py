"""LeNet-5 for 28x28 handwritten digits, with Hugging Face Hub save/load built in.

The model takes float images [N, in_chans, 28, 28] in [0, 1] with ink = 1 and background = 0, and
normalises them itself (the lecun1998 variant pads and scales them as the paper did), so every way of
loading it (the Hub mixin, timm, the app) feeds the same tensors and nobody has to remember MNIST's
mean and std.
"""

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin

from . import lecun1998

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
INPUT_SIZE = 28
VARIANTS = ("modern", "lecun1998")
TIMM_ARCHITECTURES = {"modern": "lenet5", "lecun1998": "lenet5_lecun1998"}
LABEL_NAMES = [str(digit) for digit in range(10)]
MODEL_CARD_TEMPLATE = (Path(__file__).parent / "model_card.md").read_text(encoding="utf-8")


FIRST_CONV = {"modern": "features.c1.conv", "lecun1998": "features.c1"}


def pretrained_cfg(variant: str = "modern", num_classes: int = 10, in_chans: int = 1) -> dict:
    """timm's description of the weights: input size, normalisation, label names, layer names."""
    cfg = {
        "input_size": [in_chans, INPUT_SIZE, INPUT_SIZE],
        # The model normalises internally: timm's transforms must hand it plain [0, 1] pixels.
        "mean": [0.0] * in_chans,
        "std": [1.0] * in_chans,
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "num_classes": num_classes,
        "first_conv": FIRST_CONV[variant],
        "classifier": "head",
    }
    if num_classes == len(LABEL_NAMES):
        cfg["label_names"] = LABEL_NAMES
    return cfg


class ConvBlock(nn.Module):
    """5x5 convolution -> BatchNorm -> ReLU -> 2x2 max-pool: one C-layer plus one S-layer of LeNet-5."""

    def __init__(self, in_chans: int, out_chans: int, padding: int):
        super().__init__()
        # No conv bias: the BatchNorm shift that follows does that job.
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size=5, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chans)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.bn(self.conv(x))))


class ModernFeatures(nn.Module):
    """The LeNet-5 the tutorials use on 28x28 MNIST ("same" padding in C1, ReLU, max-pool), with
    BatchNorm after each convolution because it trains faster and ends more accurate."""

    def __init__(self, in_chans: int = 1):
        super().__init__()
        self.c1 = ConvBlock(in_chans, 6, padding=2)  # C1 + S2
        self.c3 = ConvBlock(6, 16, padding=0)  # C3 + S4
        self.c5 = nn.Linear(16 * 5 * 5, 120)  # a 5x5 convolution over a 5x5 map is a dense layer
        self.f6 = nn.Linear(120, 84)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map [0, 1] ink images to the zero-mean, unit-variance inputs the weights were trained on."""
        return (x - MNIST_MEAN) / MNIST_STD

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c1 = F.relu(self.c1.bn(self.c1.conv(self.normalize(x))))  # (B, 6, 28, 28)
        c3 = F.relu(self.c3.bn(self.c3.conv(self.c1.pool(c1))))  # (B, 16, 10, 10)
        return {"c1": c1, "c3": c3}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c1(self.normalize(x))  # (B, 6, 14, 14)
        x = self.c3(x)  # (B, 16, 5, 5)
        x = F.relu(self.c5(x.flatten(1)))  # (B, 120)
        return F.relu(self.f6(x))  # (B, 84)


class LeNet5(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="lenet5",
    tags=["lenet5", "mnist", "image-classification", "handwritten-digits"],
    license="mit",
    pipeline_tag="image-classification",
    model_card_template=MODEL_CARD_TEMPLATE,
):
    """LeNet-5 with the layer widths of LeCun et al. (1998): C1 6 maps, C3 16 maps, then 120, 84, classes.

    Variants:
        modern: ReLU, max-pool and BatchNorm, a linear classifier on F6 (`ModernFeatures`).
        lecun1998: the paper's own network: squashing tanh, trainable subsampling, the partial C3
            connections of Table I and fixed Euclidean RBF outputs (`lecun1998.LeCun1998Features`).
    """

    def __init__(self, variant: str = "modern", num_classes: int = 10, in_chans: int = 1):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown LeNet5 variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if num_classes < 1 or in_chans < 1:
            raise ValueError(f"num_classes and in_chans must be positive, got {num_classes} and {in_chans}")
        if variant == "lecun1998" and num_classes != len(lecun1998.PROTOTYPE_BITMAPS):
            raise ValueError(f"lecun1998 has one RBF prototype per digit: num_classes must be 10, got {num_classes}")
        self.variant = variant
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_features = 84
        if variant == "modern":
            self.features = ModernFeatures(in_chans)
            self.head = nn.Linear(self.num_features, num_classes)
        else:
            self.features = lecun1998.LeCun1998Features(in_chans)
            self.head = lecun1998.EuclideanRBF(lecun1998.prototypes())

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The C1 and C3 activation maps (before subsampling), for looking inside the network:
        "c1" [B, 6, 28, 28] and "c3" [B, 16, 10, 10]."""
        return self.features.feature_maps(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 84): F6

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits [N, num_classes]; softmax is left to the caller. For lecun1998 the logits are
        the negated RBF outputs -y_i, so the softmax is the paper's posterior over the ten digits."""
        return self.forward_head(self.forward_features(x))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        """The training criterion: cross-entropy for modern, the paper's MAP criterion for lecun1998."""
        if self.variant == "lecun1998":
            return lecun1998.map_loss(logits, labels)
        return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        if self.variant == "lecun1998":
            raise ValueError("lecun1998's RBF output is fixed to the ten digit prototypes; use variant='modern'")
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes)

    def hub_config(self) -> dict:
        """config.json for both loaders: the mixin's __init__ kwargs plus the keys timm reads."""
        return {
            **self._hub_mixin_config,
            "architecture": TIMM_ARCHITECTURES[self.variant],
            "num_features": self.num_features,
            "pretrained_cfg": pretrained_cfg(self.variant, self.num_classes, self.in_chans),
        }

    def push_to_hub(self, repo_id: str, *, model_card_kwargs: dict | None = None, **kwargs):
        """The mixin's push, with a card whose loading snippets name this repo."""
        card_kwargs = {"repo_id": repo_id, **(model_card_kwargs or {})}
        return super().push_to_hub(repo_id, model_card_kwargs=card_kwargs, **kwargs)

    def _save_pretrained(self, save_directory: Path) -> None:
        super()._save_pretrained(save_directory)
        config = json.dumps(self.hub_config(), indent=2, sort_keys=True)
        (save_directory / "config.json").write_text(config + "\n", encoding="utf-8")

    @classmethod
    def _from_pretrained(cls, *, strict: bool = True, **kwargs) -> "LeNet5":
        # The mixin loads with strict=False by default, which would leave renamed or missing layers at
        # their random initial values without a word. A checkpoint that does not fit must fail loudly.
        try:
            return super()._from_pretrained(strict=strict, **kwargs)
        except RuntimeError as error:
            reason = " ".join(str(error).split())
            raise ValueError(f"weights of {kwargs['model_id']} do not fit LeNet5: {reason}") from error
