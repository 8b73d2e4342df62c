"""The modern LeNet-5's layers, and their forward pass twice, side by side: in PyTorch, and in numpy for
the few digits that one request reads on a CPU.

One digit costs LeNet-5 about 0.3 M multiply-adds, yet a PyTorch forward pass of one digit takes
0.1-0.2 ms: some fifteen operators at 5-10 us of dispatch each. Numpy's operators cost 1-3 us: the same
arithmetic takes 0.09 ms for one digit, and a reading around it 0.12 ms against 0.21 ms through
PyTorch (2-core CPU, bench/RESULTS.md). Each convolution is one matrix multiply over a patch matrix
made by one strided copy, batch and channels leading, so the C1 and C3 maps come out in the NCHW
layout `LeNet5.forward_intermediates` gives them in.

The numpy weights are views of the model's own parameters, made once and kept while the parameters
stay where they are: a weight changed in place is seen through its view, and a model reloaded or moved
is viewed afresh. Other networks, devices, dtypes and larger batches (where PyTorch's kernels win) go
through PyTorch; `numpy_reads` says which.
"""

import weakref
from typing import Final

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
INPUT_SIZE = 28


class ModernFeatures(nn.Module):
    """The LeNet-5 the tutorials use on 28x28 MNIST: "same" padding in C1, ReLU, max-pool, no BatchNorm.

    With BatchNorm after each convolution, as this network once had, the full recipe ended no more
    accurate (99.47% against 99.53%, three seeds each) and a CPU training step cost 1.4x as much
    (bench/RESULTS.md)."""

    mean: Final[float] = MNIST_MEAN
    std: Final[float] = MNIST_STD

    def __init__(self, in_chans: int = 1, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.c1 = nn.Conv2d(in_chans, 6, kernel_size=5, padding=2, **dd)  # C1; S2 is a 2x2 max-pool
        self.c3 = nn.Conv2d(6, 16, kernel_size=5, **dd)  # C3; S4 is a 2x2 max-pool
        self.c5 = nn.Linear(16 * 5 * 5, 120, **dd)  # a 5x5 convolution over a 5x5 map is a dense layer
        self.f6 = nn.Linear(120, 84, **dd)
        self.depth = 4  # the stages that run, C1, C3, C5 and F6: timm's pruning keeps fewer

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map [0, 1] ink images to the zero-mean, unit-variance inputs the weights were trained on."""
        return (x - self.mean) / self.std

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The one forward pass, as far as the kept stages go (`depth`): C1 and C3 before their ReLU, then
        C5 (B, 120) and F6 as 84 maps of 1x1.

        Each ReLU comes after its max-pool: the same numbers (a maximum and ReLU commute), but the ReLU
        and its backward touch a quarter of the values, so a training step on a 2-core CPU takes 5-6%
        less time in float32, 3% less under bf16 autocast (bench/RESULTS.md)."""
        out = [self.c1(self.normalize(x))]  # (B, 6, 28, 28)
        if self.depth > 1:
            out.append(self.c3(F.max_pool2d(out[0], 2).relu()))  # (B, 16, 10, 10)
        if self.depth > 2:  # a 5x5 convolution over 5x5 maps is a dense layer
            out.append(F.relu(self.c5(F.max_pool2d(out[1], 2).relu().flatten(1))))
        if self.depth > 3:
            out.append(F.relu(self.f6(out[2]))[:, :, None, None])
        return out

    def forward_intermediates(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The features' end (F6, or the last stage kept) and the C1, C3 and C5 activations on the way."""
        out = self.stages(x)
        taps = [stage.relu() for stage in out[:2]] + [c5[:, :, None, None] for c5 in out[2:3]]
        return (out[3] if self.depth > 3 else taps[-1]), taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)[3] if self.depth > 3 else self.forward_intermediates(x)[0]


MAX_BATCH = 16  # up to here numpy is faster on a 2-core CPU; at 64 digits the two are even


def numpy_reads(model: nn.Module, batch: int) -> bool:
    """Whether `numpy_forward` computes what the model's own forward pass would for `batch` digits."""
    features, head = model._modules["features"], model._modules["head"]
    if batch > MAX_BATCH or type(features) is not ModernFeatures or type(head) is not nn.Linear or features.depth < 4:
        return False
    weight = features._modules["c1"]._parameters["weight"]
    return (model.in_chans == 1 and bool(model.global_pool) and head._parameters["bias"] is not None
            and weight.device.type == "cpu" and weight.dtype == torch.float32)


def parameters(model: nn.Module) -> tuple[torch.Tensor, ...]:
    """The weight and bias of C1, C3, C5, F6 and the head, looked up in the modules' own registries:
    nn.Module's attribute lookups cost 15 us for these ten, against 1 us here: a sixth of the forward pass."""
    layers = model._modules["features"]._modules
    return tuple(layer._parameters[name] for layer in (layers["c1"], layers["c3"], layers["c5"], layers["f6"],
                                                        model._modules["head"]) for name in ("weight", "bias"))


_views: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (data pointers, numpy views)


def weights(model: nn.Module) -> tuple[np.ndarray, ...]:
    """numpy views of `parameters(model)`. The views kept keep their memory alive, so a parameter replaced
    or moved (`model.double().float()`, `load_state_dict(assign=True)`) always lives at a new address."""
    params = parameters(model)
    pointers = tuple(p.data_ptr() for p in params)
    kept = _views.get(model)
    if kept is None or kept[0] != pointers:
        kept = _views[model] = (pointers, tuple(p.detach().numpy() for p in params))
    return kept[1]


def numpy_forward(model: nn.Module, fields: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 digits [N, 28, 28] in [0, 1] -> the logits [N, classes] and the C1 [N, 6, 28, 28] and C3
    [N, 16, 10, 10] maps after their ReLU, as a LeNet5 that `numpy_reads` accepts computes them in eval mode."""
    features, n = model._modules["features"], len(fields)
    c1, c1_bias, c3, c3_bias, c5, c5_bias, f6, f6_bias, head, head_bias = weights(model)
    pad = features._modules["c1"].padding[0]
    x = np.zeros((n, 1, INPUT_SIZE + 2 * pad, INPUT_SIZE + 2 * pad), dtype=np.float32)
    inner = x[:, 0, pad : pad + INPUT_SIZE, pad : pad + INPUT_SIZE]
    np.subtract(fields, np.float32(features.mean), out=inner)
    inner *= np.float32(1 / features.std)  # the zero padding stays zero, as in the normalised tensor
    c1_maps = relu(convolve(x, c1, c1_bias))  # (N, 6, 28, 28)
    c3_maps = relu(convolve(pool(c1_maps), c3, c3_bias))  # (N, 16, 10, 10)
    c5_units = relu(pool(c3_maps).reshape(n, -1) @ c5.T + c5_bias)  # (N, 120)
    f6_units = relu(c5_units @ f6.T + f6_bias)  # (N, 84)
    return f6_units @ head.T + head_bias, c1_maps, c3_maps


def convolve(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A valid (unpadded) stride-1 convolution of C-contiguous NCHW `x` with kernels [out, in, k, k]."""
    out, _, k, _ = weight.shape
    n, c, h, w = x.shape
    sn, sc, sh, sw = x.strides
    # Every k x k window as a strided view of x's own memory: numpy's as_strided does the same in 5 us,
    # ten times longer, with checks that x being C-contiguous makes needless.
    windows = np.ndarray((n, c, k, k, h - k + 1, w - k + 1), x.dtype, x, 0, (sn, sc, sh, sw, sh, sw))
    patches = np.ascontiguousarray(windows).reshape(n, c * k * k, -1)  # (N, in k k, H' W')
    maps = weight.reshape(out, -1) @ patches
    maps += bias[:, None]
    return maps.reshape(n, out, h - k + 1, w - k + 1)


def pool(maps: np.ndarray) -> np.ndarray:
    """2x2 max-pool of [..., H, W] with even H and W."""
    rows = np.maximum(maps[..., 0::2, :], maps[..., 1::2, :])
    return np.maximum(rows[..., 0::2], rows[..., 1::2])


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)
