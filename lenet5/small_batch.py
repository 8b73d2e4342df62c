"""The modern LeNet-5's forward pass in numpy, for the few digits that one request reads on a CPU.

One digit costs LeNet-5 about 0.3 M multiply-adds, yet a PyTorch forward pass of one digit takes
0.1-0.2 ms: some fifteen operators at 5-10 us of dispatch each. Numpy's operators cost 1-3 us: the same
arithmetic takes 0.09 ms for one digit, and a reading around it 0.12 ms against 0.21 ms through
PyTorch (2-core CPU, bench/RESULTS.md). Each convolution is one matrix multiply over a patch matrix
made by one strided copy, batch and channels leading, so the C1 and C3 maps come out in the NCHW
layout `LeNet5.forward_intermediates` gives them in.

The weights are numpy views of the model's own parameters, made once and kept while the parameters
stay where they are: a weight changed in place is seen through its view, and a model reloaded or moved
is viewed afresh. Other networks, devices, dtypes and larger batches (where PyTorch's kernels win) go
through PyTorch; `can_read` says which.
"""

import weakref

import numpy as np
import torch
from torch import nn

from .model import INPUT_SIZE, LeNet5, ModernFeatures

MAX_BATCH = 16  # up to here numpy is faster on a 2-core CPU; at 64 digits the two are even


def can_read(model: LeNet5, batch: int) -> bool:
    """Whether `forward_intermediates` computes what the model's own forward pass would for `batch` digits."""
    features, head = model._modules["features"], model._modules["head"]
    if batch > MAX_BATCH or type(features) is not ModernFeatures or type(head) is not nn.Linear:
        return False
    weight = features._modules["c1"]._parameters["weight"]
    return (model.in_chans == 1 and bool(model.global_pool) and head._parameters["bias"] is not None
            and weight.device.type == "cpu" and weight.dtype == torch.float32)


def parameters(model: LeNet5) -> tuple[torch.Tensor, ...]:
    """The weight and bias of C1, C3, C5, F6 and the head, looked up in the modules' own registries:
    nn.Module's attribute lookup would cost 12 us, more than a sixth of the forward pass."""
    layers = model._modules["features"]._modules
    return tuple(layer._parameters[name] for layer in (layers["c1"], layers["c3"], layers["c5"], layers["f6"],
                                                        model._modules["head"]) for name in ("weight", "bias"))


_views: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (data pointers, numpy views)


def weights(model: LeNet5) -> tuple[np.ndarray, ...]:
    """numpy views of `parameters(model)`. The views kept keep their memory alive, so a parameter replaced
    or moved (`model.double().float()`, `load_state_dict(assign=True)`) always lives at a new address."""
    params = parameters(model)
    pointers = tuple(p.data_ptr() for p in params)
    kept = _views.get(model)
    if kept is None or kept[0] != pointers:
        kept = _views[model] = (pointers, tuple(p.detach().numpy() for p in params))
    return kept[1]


def forward_intermediates(model: LeNet5, fields: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float32 digits [N, 28, 28] in [0, 1] -> the logits [N, classes] and the C1 [N, 6, 28, 28] and
    C3 [N, 16, 10, 10] maps after their ReLU, as the model in eval mode computes them."""
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
