"""Which forward pass reads a batch of prepared digits: the numpy twin of the modern network for the few
of one request on a CPU (lenet5.modern), else the model's own PyTorch pass, with PyTorch's own convolution
kernels for small batches."""

import threading
from contextlib import contextmanager

import numpy as np
import torch

from .model import LeNet5
from .modern import numpy_forward, numpy_reads


def logits_and_maps(model: LeNet5, batch: np.ndarray, maps: bool = True
                    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """float32 digits [N, 28, 28] in [0, 1] -> the logits [N, classes] and (when `maps`, else maybe None)
    the C1 [N, 6, 28, 28] and C3 [N, 16, 10, 10] maps after their ReLU, as the model in eval mode gives them."""
    if numpy_reads(model, len(batch)):
        return numpy_forward(model, batch)
    return torch_forward(model, batch, maps)


def torch_forward(model: LeNet5, batch: np.ndarray, maps: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """`logits_and_maps` through the model's own PyTorch forward pass, on its device and in its dtype."""
    weight = next(model.parameters())
    x = torch.from_numpy(batch)[:, None].to(weight.device, weight.dtype)
    with torch.inference_mode(), small_batch_kernels(len(batch)):
        final, (c1, c3, _) = model.forward_intermediates(x)
        logits = model.forward_head(final)
    c1, c3 = (to_numpy(c1), to_numpy(c3)) if maps else (None, None)
    return to_numpy(logits), c1, c3


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.float().cpu().numpy()


# For a few 28x28 pictures PyTorch's own convolution is about three times faster than oneDNN's, whose
# set-up costs more than the arithmetic; training-sized batches are faster with oneDNN. The switch is a
# process-wide flag, so readers take turns while it is off.
SMALL_BATCH = 64
_kernel_switch = threading.Lock()


@contextmanager
def small_batch_kernels(batch: int):
    if batch > SMALL_BATCH or not torch.backends.mkldnn.is_available():
        yield
        return
    with _kernel_switch:
        onednn = torch.backends.mkldnn.enabled  # a program may have switched oneDNN off itself: keep it off
        torch.backends.mkldnn.enabled = False
        try:
            yield
        finally:
            torch.backends.mkldnn.enabled = onednn
