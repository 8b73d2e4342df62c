"""LeNet-5 for handwritten digits: train, publish on the Hugging Face Hub, and read real drawings.

    from lenet5 import LeNet5, load_model, predict, preprocess

    model = load_model()                  # bundled weights, no network needed
    probs = predict("digit.png", model)   # {"0": p0, ..., "9": p9}
"""

from . import timm_models  # noqa: F401  registers the architectures with timm
from .inference import Reading, load_model, predict, read_digits
from .model import LeNet5
from .preprocessing import ImageTooLargeError, NoDigitError, NotADigitError, UnreadableImageError, preprocess

__all__ = [
    "ImageTooLargeError",
    "LeNet5",
    "NoDigitError",
    "NotADigitError",
    "Reading",
    "UnreadableImageError",
    "load_model",
    "predict",
    "preprocess",
    "read_digits",
]
