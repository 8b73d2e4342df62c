"""ONNX: both networks exported with a dynamic batch read MNIST's test set as PyTorch reads it, in onnxruntime."""

import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch

from lenet5 import load_model
from lenet5.data import to_float

from conftest import REPO


def onnx_logits(path, pixels: np.ndarray, batch: int = 1000) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"pixels": pixels[i : i + batch]})[0] for i in range(0, len(pixels), batch)])


@pytest.mark.parametrize("variant", ["modern", pytest.param("lecun1998", marks=pytest.mark.slow)])
def test_the_exported_network_reads_the_test_set_as_pytorch_does(variant, mnist_test, tmp_path):
    model = load_model(variant)
    path = model.export_onnx(tmp_path / f"{variant}.onnx")
    assert path.is_file() and not list(tmp_path.glob("*.partial")) and not model.training
    pixels = to_float(mnist_test.images).numpy()
    with torch.no_grad():
        expected = model(torch.from_numpy(pixels)).numpy()
    ours = onnx_logits(path, pixels)  # batches of 1000, and below one of 1 and one of 7: the batch is dynamic
    assert ours.shape == expected.shape == (10_000, 10)
    np.testing.assert_array_equal(ours.argmax(1), expected.argmax(1))
    # float32 noise only: lecun1998's logits reach -150, where one float32 step is 1.5e-5
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    for batch in (1, 7):
        np.testing.assert_allclose(onnx_logits(path, pixels[:batch]), expected[:batch], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_the_command_line_exports_any_model_and_refuses_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lenet5", "onnx", "lecun1998", "--out", str(tmp_path / "paper.onnx")],
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {tmp_path / 'paper.onnx'}: pixels [N, 1, 28, 28]")
    session = onnxruntime.InferenceSession(str(tmp_path / "paper.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch" and session.get_outputs()[0].shape[1:] == [10]
    for args, reason in ((["no/such-model"], "there is no model no/such-model"),
                         (["--out", str(tmp_path)], "is a folder"),
                         (["--out", str(tmp_path / "missing" / "x.onnx")], "cannot write")):
        refused = subprocess.run([sys.executable, "-m", "lenet5", "onnx", *args], cwd=REPO, capture_output=True,
                                 text=True, timeout=240)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert refused.stderr.startswith("error: ") and reason in refused.stderr
