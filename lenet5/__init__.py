"""LeNet-5 for handwritten digits: train, publish on the Hugging Face Hub, and read real drawings.

    from lenet5 import LeNet5, load_model, predict, preprocess

    model = load_model()                  # bundled weights, no network needed
    probs = predict("digit.png", model)   # {"0": p0, ..., "9": p9}
    read_number("year.png").text          # "2026": every digit of a number, left to right
"""

import importlib.abc
import importlib.machinery
import sys

from .decoding import ImageTooLargeError, NoDigitError, NotADigitError, UnreadableImageError
from .hub import load_model
from .inference import Reading, predict, read_digits
from .model import LeNet5
from .numbers import NumberReading, read_number
from .preprocessing import preprocess

__all__ = [
    "ImageTooLargeError",
    "LeNet5",
    "NoDigitError",
    "NotADigitError",
    "NumberReading",
    "Reading",
    "UnreadableImageError",
    "load_model",
    "predict",
    "preprocess",
    "read_digits",
    "read_number",
]


class _RegisterWithTimm(importlib.abc.MetaPathFinder):
    """Registers the architectures with timm (lenet5.timm_models) right after timm itself is imported.

    timm brings torchvision and torch._dynamo, seconds of start-up that the demo and most library users
    never need; `import lenet5, timm` still gives `timm.create_model("lenet5")`, in either order.
    """

    def find_spec(self, name, path, target=None):
        if name != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            run_timm = spec.loader.exec_module

            def exec_module(module):
                run_timm(module)
                importlib.import_module(".timm_models", __name__)

            spec.loader.exec_module = exec_module
        return spec


if "timm" in sys.modules:
    from . import timm_models  # noqa: F401
else:
    sys.meta_path.insert(0, _RegisterWithTimm())
