"""A wide convolutional network to distil LeNet-5 from, and the distillation loss (Hinton et al., 2015).

A teacher only helps when it is much stronger than its student: the ensemble of three LeNet-5s taught a
fourth nothing (bench/RESULTS.md). This one has about five times LeNet-5's parameters and seventy times its
arithmetic, and is trained with the same loop: `python train.py --variant teacher`.
"""

import contextlib
import io
import os
from typing import Final

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from safetensors import SafetensorError

from .hub_client import one_line
from .model import INPUT_SIZE, MNIST_MEAN, MNIST_STD

# Distillation: the student matches the teacher's softmax at this temperature, which shows how much a 7
# looks like a 1 or a 9, for this share of the loss; the rest is the cross-entropy with the labels.
TEMPERATURE = 4.0
SOFT_WEIGHT = 0.9
TEACHER_WIDTH = 32  # the default width: 288,170 parameters, 29.1 M multiply-adds per digit
MAX_TEACHER_WIDTH = 256  # 18 M parameters; a width typed or stored far beyond this asks for hundreds of GB


def check_width(width: int) -> None:
    if not 1 <= width <= MAX_TEACHER_WIDTH:
        raise ValueError(f"width must be at least 1 and at most {MAX_TEACHER_WIDTH}, got {width}")


def conv_bn_relu(in_chans: int, out_chans: int) -> list[nn.Module]:
    return [nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=False), nn.BatchNorm2d(out_chans), nn.ReLU(inplace=True)]


class WideTeacher(nn.Module, PyTorchModelHubMixin, library_name="lenet5", tags=["mnist", "distillation-teacher"]):
    """Six 3x3 convolutions with BatchNorm (width, width, 2 width, 2 width, 4 width, 4 width maps), max-pool
    after the second and the fourth, global average pool, dropout and a linear classifier. Takes the same
    [N, 1, 28, 28] images in [0, 1] as LeNet5 and normalises them itself."""

    mean: Final[float] = MNIST_MEAN
    std: Final[float] = MNIST_STD

    def __init__(self, width: int = TEACHER_WIDTH, num_classes: int = 10):
        super().__init__()
        check_width(width)  # before the layers allocate their weights
        self.net = nn.Sequential(
            *conv_bn_relu(1, width), *conv_bn_relu(width, width), nn.MaxPool2d(2),
            *conv_bn_relu(width, 2 * width), *conv_bn_relu(2 * width, 2 * width), nn.MaxPool2d(2),
            *conv_bn_relu(2 * width, 4 * width), *conv_bn_relu(4 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"the teacher reads {INPUT_SIZE}x{INPUT_SIZE} digits, got {tuple(x.shape)}")
        return self.net((x - self.mean) / self.std)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      label_smoothing: float = 0.0) -> torch.Tensor:
    """Hinton et al.'s loss: the KL divergence from the teacher's tempered softmax, scaled by T^2 so that
    its gradients keep their size whatever T is, blended with the labels' cross-entropy."""
    t = TEMPERATURE
    soft = F.kl_div(F.log_softmax(logits.float() / t, dim=1), F.log_softmax(teacher_logits.float() / t, dim=1),
                    reduction="batchmean", log_target=True) * t * t
    hard = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    return SOFT_WEIGHT * soft + (1 - SOFT_WEIGHT) * hard


class TeacherEnsemble(nn.Module):
    """Several teachers as one: the mean of their logits (the normalised geometric mean of their
    probabilities at any temperature). Networks trained from different seeds err on different digits, so
    their mean errs less than a typical one of them: five width-32 teachers made 36 errors each on
    average and 29 together (bench/RESULTS.md)."""

    def __init__(self, members: list[WideTeacher]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)


def load_teacher(folders: str, device: torch.device) -> WideTeacher | TeacherEnsemble:
    """The teacher in a folder saved by `train.py --variant teacher`, or the ensemble of several such folders
    separated by commas, ready to label batches; ValueError if one cannot be read."""
    paths = [path.strip() for path in folders.split(",")]
    if not all(paths):
        raise ValueError(f"the teacher {folders!r} names an empty folder: separate folders by single commas")
    members = [load_one_teacher(path, device) for path in paths]
    return members[0] if len(members) == 1 else TeacherEnsemble(members)


def load_one_teacher(path: str, device: torch.device) -> WideTeacher:
    made_by = "the --out folder of `python train.py --variant teacher`"
    if not os.path.isdir(path):  # os.path: False for a name too long to look up, where Path raises
        raise ValueError(f"the teacher {path!r} is not a folder: give {made_by}")
    if not os.path.isfile(os.path.join(path, "config.json")):  # which records the width; the mixin would log and guess
        raise ValueError(f"the teacher {path!r} has no config.json: give {made_by}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the mixin prints a line for every local folder it loads
            teacher = WideTeacher.from_pretrained(path, strict=True)
    except (OSError, RuntimeError, SafetensorError, TypeError, ValueError) as error:
        # no weights file, damaged weights, weights of another network, a config of another network
        raise ValueError(f"cannot read the teacher in {path} (is it {made_by}?): {one_line(error)[:200]}") from None
    return teacher.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
