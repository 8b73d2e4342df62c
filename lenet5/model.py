"""LeNet-5 for 28x28 handwritten digits, with Hugging Face Hub save/load built in.

The model takes float images [N, in_chans, 28, 28] in [0, 1] with ink = 1 and background = 0, and
normalises them itself (the lecun1998 variant pads and scales them as the paper did), so every way of
loading it (the Hub mixin, timm, the app) feeds the same tensors: nobody has to remember MNIST's mean.
"""

import json
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from safetensors import SafetensorError

from . import lecun1998
from .modern import INPUT_SIZE, ModernFeatures

VARIANTS = ("modern", "lecun1998")
TIMM_ARCHITECTURES = {"modern": "lenet5", "lecun1998": "lenet5_lecun1998"}
LABEL_NAMES = [str(digit) for digit in range(10)]
RUBBISH = -1  # the training label of a piece that is no digit: a wrong cut of a number (lenet5.writing)
WEIGHTS_FILE = "model.safetensors"
# Bounds a config.json is checked against before anything is allocated: a head for 10**9 classes would ask
# for 336 GB. ImageNet-21k's 21,841 classes fit comfortably.
MAX_CLASSES = 100_000
MAX_IN_CHANS = 1024
MODEL_CARD_TEMPLATE = (Path(__file__).parent / "model_card.md").read_text(encoding="utf-8")


def pretrained_cfg(num_classes: int = 10, in_chans: int = 1) -> dict:
    """timm's description of the weights: input size, normalisation, label names, layer names."""
    cfg = {
        "input_size": [in_chans, INPUT_SIZE, INPUT_SIZE],
        # The model normalises internally: timm's transforms must hand it plain [0, 1] pixels.
        "mean": [0.0] * in_chans,
        "std": [1.0] * in_chans,
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "num_classes": num_classes,
        "first_conv": "features.c1",
        "classifier": "head",
        "fixed_input_size": True,  # C5 is a dense layer over S4's 5x5 maps: 28x28 in, nothing else
        "pool_size": [1, 1],
    }
    if num_classes == len(LABEL_NAMES):
        cfg["label_names"] = LABEL_NAMES
    return cfg


# What each stage of the features holds, for pruning: C1, C3, C5, then F6, the features' end after the last tap
STAGE_MODULES = {"modern": (("c1",), ("c3",), ("c5",), ("f6",)), "lecun1998": (("c1",), ("s2", "c3"), ("s4", "c5"), ("f6",))}
POOL_TYPES = ("avg", "max", "avgmax", "")  # F6 is 84 maps of 1x1: every global pooling is a flatten
FEATURE_INFO = [  # the C1, C3 and C5 stages for timm's features_only / forward_intermediates
    {"num_chs": 6, "reduction": 1, "module": "features.c1"},
    {"num_chs": 16, "reduction": 2, "module": "features.c3"},
    {"num_chs": 120, "reduction": 28, "module": "features.c5"},
]


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
        modern: the tutorials' network: ReLU and max-pool, a linear classifier on F6 (`ModernFeatures`).
        lecun1998: the paper's own network: squashing tanh, trainable subsampling, the partial C3
            connections of Table I and fixed Euclidean RBF outputs (`lecun1998.LeCun1998Features`).

    timm's arguments work as in any timm model: `num_classes=0` leaves the head out (F6's 84 values come out),
    `global_pool=""` keeps F6 as 84 maps of 1x1, `drop_rate` is dropout before the head, `device` and `dtype`.
    """

    def __init__(
        self,
        variant: str = "modern",
        num_classes: int = 10,
        in_chans: int = 1,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
        img_size: int | tuple[int, int] = INPUT_SIZE,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown LeNet5 variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        check_count("num_classes", num_classes, 0, MAX_CLASSES)
        check_count("in_chans", in_chans, 1, MAX_IN_CHANS)
        if global_pool not in POOL_TYPES:
            raise ValueError(f"global_pool must be one of {POOL_TYPES} (F6 is 1x1: each is a flatten), got {global_pool!r}")
        size = tuple(img_size) if isinstance(img_size, (tuple, list)) else (img_size, img_size)
        if size != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"LeNet-5 reads {INPUT_SIZE}x{INPUT_SIZE} digits (C5 is dense over 5x5 maps), got img_size={img_size}")
        if not 0 <= drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        dd = {"device": device, "dtype": dtype}
        self.variant = variant
        self.in_chans = in_chans
        self.num_features = self.head_hidden_size = 84
        self.feature_info = [dict(info) for info in FEATURE_INFO]
        self.global_pool = global_pool
        if variant == "modern":
            self.features = ModernFeatures(in_chans, **dd)
        else:
            self.features = lecun1998.LeCun1998Features(in_chans, **dd)
        self.head_drop = nn.Dropout(drop_rate)
        self.num_classes = num_classes
        self.head = self.make_head(num_classes, **dd)

    def make_head(self, num_classes: int, device=None, dtype=None) -> nn.Module:
        """The classifier: linear for modern; for lecun1998 the paper's RBF units, with its fixed digit bitmaps
        as prototypes for 10 classes, and for other counts trainable prototypes that start from random +1/-1
        codes (the paper's own alternative to bitmaps)."""
        if num_classes == 0:
            return nn.Identity()
        if self.variant == "lecun1998":
            digits = num_classes == len(LABEL_NAMES)
            return lecun1998.EuclideanRBF(lecun1998.prototypes(num_classes), trainable=not digits, device=device, dtype=dtype)
        return nn.Linear(self.num_features, num_classes, device=device, dtype=dtype)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's feature API: the C1 [B, 6, 28, 28], C3 [B, 16, 10, 10] and C5 [B, 120, 1, 1]
        activations selected by `indices` (default all; an int n: the last n), with F6 as forward_features
        gives it. One pass: the demo reads its pictures of C1 and C3 from the same call as the answer."""
        if output_fmt != "NCHW":
            raise ValueError(f"LeNet5 gives NCHW feature maps only, not {output_fmt!r}")
        final, stages = self.features.forward_intermediates(x)
        picked = [stages[i] for i in stage_indices(indices, len(stages))]
        return picked if intermediates_only else (final, picked)

    def prune_intermediate_layers(self, indices: int | list[int] = 3, prune_norm: bool = False, prune_head: bool = True):
        """timm's hook for features_only: the stages after the last one taken go, so that forward_features
        ends at that tap, and with `prune_head` the classifier and F6 before it (F6 stays, the features' end,
        when C5 is taken and the head kept). LeNet-5 has no final norm: `prune_norm` changes nothing."""
        take = stage_indices(indices, min(self.features.depth, len(FEATURE_INFO)))
        depth = max(take) + 1 + (max(take) == len(FEATURE_INFO) - 1 and not prune_head)
        if depth < self.features.depth:
            for stage in STAGE_MODULES[self.variant][depth:]:
                for name in stage:
                    setattr(self.features, name, nn.Identity())
            self.features.depth = depth
            self.feature_info = self.feature_info[:depth]
            self.num_features = self.head_hidden_size = FEATURE_INFO[depth - 1]["num_chs"]
        if prune_head:
            self.reset_classifier(0, "")
        return take

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 84, 1, 1): F6

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool:  # F6 and C5 are maps of 1x1, where every pooling is a flatten; C1's and C3's are larger
            x = x.flatten(1) if self.features.depth > 2 else global_pool(x, self.global_pool)
        x = self.head_drop(x)
        if pre_logits:
            return x
        if not self.global_pool:  # no pooling: classify each (here: the only) position
            return self.head(x.movedim(1, -1)).movedim(-1, 1)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits [N, num_classes]; softmax is left to the caller. For lecun1998 the logits are
        the negated RBF outputs -y_i, so the softmax is the paper's posterior over the ten digits."""
        return self.forward_head(self.forward_features(x))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        """The training criterion: cross-entropy for modern, the paper's MAP criterion for lecun1998.

        A label may be RUBBISH (a wrong cut of a number): lecun1998 takes it as its rubbish class, as the
        paper does; modern learns to give such a piece the same probability for every digit.
        """
        if self.variant == "lecun1998":
            return lecun1998.map_loss(logits, labels)
        log_probs = F.log_softmax(logits.float(), dim=1)
        even = -log_probs.mean(dim=1)  # the cross-entropy against 1/10 for every digit: label smoothing's target
        right = F.nll_loss(log_probs, labels, ignore_index=RUBBISH, reduction="none")
        digit = (1 - label_smoothing) * right + label_smoothing * even  # what F.cross_entropy's smoothing computes
        return torch.where(labels == RUBBISH, even, digit).mean()

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new head for `num_classes` (0: none), on the device and in the dtype of the network."""
        check_count("num_classes", num_classes, 0, MAX_CLASSES)
        if global_pool is not None:
            if global_pool not in POOL_TYPES:
                raise ValueError(f"global_pool must be one of {POOL_TYPES}, got {global_pool!r}")
            self.global_pool = global_pool
        weight = next(self.features.parameters())
        self.num_classes = num_classes
        self.head = self.make_head(num_classes, device=weight.device, dtype=weight.dtype).train(self.training)

    def hub_config(self) -> dict:
        """config.json for both loaders: the mixin's __init__ kwargs plus the keys timm reads."""
        return {
            **{k: v for k, v in self._hub_mixin_config.items() if k not in ("device", "dtype", "img_size")},
            "architecture": TIMM_ARCHITECTURES[self.variant],
            "num_features": self.num_features,
            "pretrained_cfg": pretrained_cfg(self.num_classes, self.in_chans),
        }

    def export_onnx(self, path: str | Path) -> Path:
        """This network as an ONNX file with a dynamic batch (lenet5.export, which needs onnx and onnxscript)."""
        from .export import export_onnx  # PyTorch's exporter costs seconds to import: only when used
        return export_onnx(self, path, INPUT_SIZE)

    # The mixin's save and push, with a card whose loading snippets name this very folder or repo.
    def save_pretrained(self, save_directory, *, model_card_kwargs: dict | None = None, **kwargs):
        card_kwargs = {"location": str(save_directory), **(model_card_kwargs or {})}
        return super().save_pretrained(save_directory, model_card_kwargs=card_kwargs, **kwargs)

    def push_to_hub(self, repo_id: str, *, model_card_kwargs: dict | None = None, **kwargs):
        return super().push_to_hub(repo_id, model_card_kwargs={"repo_id": repo_id, **(model_card_kwargs or {})}, **kwargs)

    def _save_pretrained(self, save_directory: Path) -> None:
        super()._save_pretrained(save_directory)
        config = json.dumps(self.hub_config(), indent=2, sort_keys=True)
        (save_directory / "config.json").write_text(config + "\n", encoding="utf-8")

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir, force_download: bool,
                         local_files_only: bool, token, map_location: str = "cpu", strict: bool = True,
                         **model_kwargs) -> "LeNet5":
        """The mixin's loader, stricter: config values are checked before any weight is allocated, only
        safetensors are read (a pickle is never unpickled), and weights that do not fit or are not finite
        raise ValueError. The mixin loads with strict=False by default, which would leave renamed or
        missing layers at their random initial values without a word."""
        try:
            model = cls(**model_kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(f"config.json of {model_id} does not describe a LeNet5: {error}") from None
        if os.path.isdir(model_id):
            weights = Path(model_id) / WEIGHTS_FILE
            if not os.path.isfile(weights):
                raise ValueError(f"{model_id} holds no {WEIGHTS_FILE}: is it a folder written by save_pretrained?")
        else:
            try:
                weights = hf_hub_download(model_id, WEIGHTS_FILE, revision=revision, cache_dir=cache_dir, token=token,
                                          force_download=force_download, local_files_only=local_files_only)
            except EntryNotFoundError:
                raise ValueError(f"{model_id} holds no {WEIGHTS_FILE} (pickled weights are never loaded)") from None
        try:
            cls._load_as_safetensor(model, str(weights), map_location, strict)
        except SafetensorError as error:
            raise ValueError(f"{WEIGHTS_FILE} of {model_id} is not a readable safetensors file: {error}") from None
        except RuntimeError as error:
            reason = " ".join(str(error).split())
            raise ValueError(f"weights of {model_id} do not fit LeNet5: {reason}") from None
        broken = [name for name, t in model.state_dict().items() if t.is_floating_point() and not t.isfinite().all()]
        if broken:
            raise ValueError(f"weights of {model_id} hold NaN or infinite values ({', '.join(broken[:3])})")
        return model


def global_pool(x: torch.Tensor, kind: str) -> torch.Tensor:
    """timm's global poolings of [B, C, H, W] maps to [B, C]."""
    if kind == "max":
        return x.amax((2, 3))
    if kind == "avgmax":
        return 0.5 * (x.mean((2, 3)) + x.amax((2, 3)))
    return x.mean((2, 3))


def check_count(name: str, value: object, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValueError(f"{name} must be a whole number from {minimum} to {maximum:,}, got {value!r}")


def stage_indices(indices: int | list[int] | None, count: int) -> list[int]:
    """timm's convention: None -> every stage; an int n -> the last n; a list -> those (negative from the end)."""
    if indices is None:
        return list(range(count))
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise ValueError(f"LeNet5 has {count} feature stages; cannot take the last {indices}")
        return list(range(count - indices, count))
    picked = [i % count if -count <= i < count else None for i in indices]
    if None in picked:
        raise ValueError(f"LeNet5 has {count} feature stages (0 to {count - 1}); got indices {list(indices)}")
    return picked
