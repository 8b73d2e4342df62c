"""Shared fixtures: real MNIST (from $LENET5_DATA, e.g. ../shared/data in CI), digits drawn the way people
draw, and a local Hugging Face Hub on 127.0.0.1 that the real huggingface_hub client talks to."""

import os
import shutil
import signal
import tempfile
from pathlib import Path

from hub_server import GOOD_TOKEN, HubServer

# huggingface_hub reads these when it is imported: set them before anything imports it, so that no test
# (and no subprocess a test starts) can reach the real Hub.
HUB = HubServer()
os.environ.update(
    HF_ENDPOINT=HUB.url,
    HF_HOME=tempfile.mkdtemp(prefix="lenet5-hf-home-"),
    HF_TOKEN=GOOD_TOKEN,
    HF_HUB_DISABLE_XET="1",
    HF_HUB_DISABLE_TELEMETRY="1",
    GRADIO_ANALYTICS_ENABLED="False",  # Gradio's usage reports would go to the (local) Hub too
)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from lenet5.data import MNISTData, Split, default_data_dir, load_mnist, read_mnist  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# A shell starts a background job (`pytest &`, nohup) with Ctrl-C ignored, and an ignored signal stays
# ignored in every process started from it: the train.py that the Ctrl-C tests interrupt would never hear
# it. A handler, unlike an ignored signal, is reset to the default when a process starts another program.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _local_hub():
    with HUB:
        yield HUB
    shutil.rmtree(os.environ["HF_HOME"], ignore_errors=True)


@pytest.fixture
def hub() -> HubServer:
    """The local Hub, emptied and answering normally."""
    HUB.repos.clear()
    HUB.fail_commits = False
    return HUB


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Absolute, so that subprocesses started elsewhere read the same files."""
    path = default_data_dir().resolve()
    os.environ["LENET5_DATA"] = str(path)
    return path


def mnist_or_exit(read, *args, **kwargs):
    """MNIST, or one clear line for the whole run when it cannot be had (offline, no LENET5_DATA): not one
    traceback per test that needs it."""
    try:
        return read(*args, **kwargs)
    except ValueError as error:
        pytest.exit(f"the tests need MNIST: {error}", returncode=2)


@pytest.fixture(scope="session")
def mnist(data_dir: Path) -> MNISTData:
    return mnist_or_exit(load_mnist, data_dir)


@pytest.fixture(scope="session")
def mnist_test(data_dir: Path) -> Split:
    return mnist_or_exit(read_mnist, data_dir, train=False)


def render_on_canvas(digit: np.ndarray, size: int = 280, box: int = 200, top: int = 40, left: int = 40) -> np.ndarray:
    """An MNIST digit (uint8 28x28, ink = 255) drawn large on a canvas as ink in [0, 1], like a person would."""
    image = Image.fromarray(digit).resize((box, box), Image.Resampling.BICUBIC)
    canvas = np.zeros((size, size), dtype=np.float32)
    canvas[top : top + box, left : left + box] = np.asarray(image, dtype=np.float32) / 255
    return canvas


def as_black_on_white(ink: np.ndarray) -> np.ndarray:
    return np.round((1 - ink) * 255).astype(np.uint8)


def as_white_on_black(ink: np.ndarray) -> np.ndarray:
    return np.round(ink * 255).astype(np.uint8)


def as_transparent_rgba(ink: np.ndarray) -> np.ndarray:
    """Black strokes whose only trace is the alpha channel, as an API client may send a canvas."""
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
    rgba[:, :, 3] = np.round(ink * 255).astype(np.uint8)
    return rgba


def as_browser_canvas(ink: np.ndarray) -> dict:
    """What a real browser's Sketchpad sends: an opaque white composite, the strokes alone in layers[0]."""
    composite = np.full((*ink.shape, 4), 255, dtype=np.uint8)
    composite[:, :, :3] = as_black_on_white(ink)[:, :, None]
    return {"background": None, "layers": [as_transparent_rgba(ink)], "composite": composite}


def digit_center_of_mass(x: torch.Tensor) -> tuple[float, float]:
    image = x.reshape(28, 28)
    idx = torch.arange(28, dtype=torch.float32)
    mass = image.sum()
    return float((image.sum(1) * idx).sum() / mass), float((image.sum(0) * idx).sum() / mass)
