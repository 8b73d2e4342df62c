"""LeNet-5 as an ONNX file with a dynamic batch, for runtimes other than PyTorch (onnxruntime, browsers, phones).

The file holds the whole network, its own normalisation included, so it reads what the PyTorch model
reads: float pixels [N, 1, 28, 28] in [0, 1], ink = 1, as `lenet5.preprocess` makes them; it returns
the logits [N, 10]. PyTorch's exporter needs the `onnx` and `onnxscript` packages
(`pip install "lenet5[onnx]"`); the library and the demo never do.
"""

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import torch

INPUT_NAME, OUTPUT_NAME = "pixels", "logits"
OPSET = 18


def export_onnx(model: torch.nn.Module, path: str | Path, side: int = 28) -> Path:
    """Write a LeNet5 (in eval mode, reading `side` x `side` digits) to `path` as ONNX, for any batch size;
    the file appears whole or not at all.

    Raises ValueError, in one sentence, when the exporter's packages are missing or the file cannot be written.
    """
    for package in ("onnx", "onnxscript"):
        try:
            __import__(package)
        except ImportError:
            raise ValueError(f"exporting to ONNX needs the {package} package: pip install onnx onnxscript") from None
    path = Path(path)
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder: name the .onnx file to write")
    weight = next(model.parameters())
    example = torch.zeros(2, model.in_chans, side, side, dtype=weight.dtype, device=weight.device)
    if not os.path.isdir(path.parent):
        raise ValueError(f"cannot write {path}: there is no folder {path.parent}")
    was_training = model.training
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")  # beside it: the rename is atomic
    try:
        model.eval()
        # The exporter reports each of its steps on stdout, and onnx_ir logs a warning about the empty
        # attribute lists that lecun1998's table of connections leaves: neither is for the person exporting.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), quiet_logger("onnx_ir"):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), partial, dynamo=True, opset_version=OPSET, external_data=False,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}})
        os.replace(partial, path)
    except OSError as error:
        raise ValueError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        model.train(was_training)
        if os.path.exists(partial):
            os.unlink(partial)
    return path


@contextlib.contextmanager
def quiet_logger(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
