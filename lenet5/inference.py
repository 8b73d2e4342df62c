"""Load a trained LeNet-5 (bundled, local folder or Hub) and read digits with it."""

import os
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import httpx2  # huggingface_hub's HTTP client: its errors are what an unreachable Hub raises
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from . import small_batch
from .hub_client import bound_hub_requests, one_line
from .model import LABEL_NAMES, VARIANTS, LeNet5
from .preprocessing import (
    ImageTooLargeError,
    NoDigitError,
    NotADigitError,
    UnreadableImageError,
    digit_field,
    not_digit_like,
)

BUNDLED_DIR = Path(__file__).parent / "weights"


def bundled_variants() -> list[str]:
    return [v for v in VARIANTS if (BUNDLED_DIR / v / "model.safetensors").is_file()]


def load_model(source: str | Path | None = None, device: str | torch.device = "cpu", revision: str | None = None) -> LeNet5:
    """Load weights: None -> the bundled default; a variant name ("modern", "lecun1998") -> its bundled weights;
    an existing folder -> what save_pretrained wrote there; anything else -> a Hub repo id "OWNER/NAME".

    Raises:
        ValueError: for every source that cannot be loaded, with a one-line reason: it does not exist or
            cannot be reached (every Hub request has a bounded time), its config.json is not a LeNet5's,
            its weights are missing, pickled, damaged, do not fit, or are not finite.
    """
    source = VARIANTS[0] if source is None else source
    if str(source) in VARIANTS:
        if str(source) not in bundled_variants():
            raise ValueError(f"no bundled weights for variant {source!r}; bundled: {', '.join(bundled_variants())}")
        source = BUNDLED_DIR / str(source)
    if not os.path.isdir(source) and not constants.HF_HUB_OFFLINE:  # offline, the local cache answers
        check_hub_repo(str(source), revision)
    try:
        return LeNet5.from_pretrained(str(source), revision=revision, map_location=str(device)).to(device).eval()
    except ValueError as error:  # LeNet5's own checks, and a config.json that is not JSON
        raise ValueError(f"cannot load {source}: {one_line(error)}") from None
    except (HfHubHTTPError, LocalEntryNotFoundError, httpx2.HTTPError, OSError) as error:
        raise ValueError(f"cannot load {source} from {hub_name()}: {one_line(error)}") from None


def check_hub_repo(repo_id: str, revision: str | None) -> None:
    """Fail in one request, within the bounded time, for a repo id that is malformed, missing or unreachable,
    before the downloads (which retry each request several times) begin."""
    if repo_id.count("/") != 1:
        raise ValueError(f"{repo_id!r} is neither a bundled variant ({', '.join(VARIANTS)}), a folder, nor a Hub "
                         "repo id OWNER/NAME")
    bound_hub_requests()
    try:
        HfApi().model_info(repo_id, revision=revision)
    except HFValidationError:
        raise ValueError(f"{repo_id!r} is neither a bundled variant, a folder, nor a Hub repo id OWNER/NAME") from None
    except RepositoryNotFoundError:
        raise ValueError(f"there is no model {repo_id} on {hub_name()}, or it is private and no token allows it") from None
    except RevisionNotFoundError:
        raise ValueError(f"{repo_id} on {hub_name()} has no revision {revision!r}") from None
    except HfHubHTTPError as error:
        raise ValueError(f"{hub_name()} refused {repo_id}: {one_line(error)}") from None
    except httpx2.HTTPError as error:
        raise ValueError(f"cannot reach {hub_name()} to load {repo_id} ({type(error).__name__}); offline?") from None


def hub_name() -> str:
    return "the Hugging Face Hub" if constants.ENDPOINT == "https://huggingface.co" else f"the Hub at {constants.ENDPOINT}"


@lru_cache(maxsize=1)
def default_model() -> LeNet5:
    return load_model()


REASONS = ("blank", "not_a_digit", "unreadable", "too_large")  # why a Reading has no probabilities
REFUSALS = {"blank": NoDigitError, "not_a_digit": NotADigitError, "unreadable": UnreadableImageError,
            "too_large": ImageTooLargeError}


@dataclass(frozen=True)
class Reading:
    """What the network made of one picture: probabilities, or the reason there are none.

    `reason` is one of REASONS and `detail` says what exactly (e.g. "a flat line", "notes.txt is not an
    image file PIL can read"); the sentences people read are written by the application, not here.
    """

    probs: dict[str, float] | None = None  # {"0": p0, ..., "9": p9}, None when there is no digit to read
    input: np.ndarray | None = None  # the float [28, 28] picture the network read (or would have read)
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # "c1" [6, 28, 28], "c3" [16, 10, 10]
    reason: str | None = None
    detail: str = ""
    logits: list[float] | None = None  # the network's raw outputs, before the softmax

    @property
    def ranked(self) -> list[tuple[str, float]]:
        return sorted(self.probs.items(), key=lambda item: -item[1]) if self.probs else []

    def refusal(self) -> ValueError:
        """The error `predict` raises for this reading's reason."""
        return REFUSALS[self.reason](self.detail)


def reason_for(error: Exception) -> tuple[str, str]:
    """The reason code (one of REASONS) and detail for an error raised while preparing a picture."""
    if isinstance(error, NoDigitError):
        return "blank", str(error)
    if isinstance(error, ImageTooLargeError):
        return "too_large", str(error)
    if isinstance(error, UnreadableImageError):
        return "unreadable", str(error)
    return "unreadable", f"the picture could not be decoded ({type(error).__name__})"


def prepare(image: Any) -> Reading | np.ndarray:
    """One picture -> its 28x28 input, or a Reading that says why there is nothing to read."""
    try:
        field_ = digit_field(image)
    except Exception as error:  # noqa: BLE001  a picture no check foresaw must not fail the others read with it
        reason, detail = reason_for(error)
        return Reading(reason=reason, detail=detail)
    shape = not_digit_like(field_)
    return Reading(input=field_, reason="not_a_digit", detail=shape) if shape else field_


def read_digits(images: Sequence[Any], model: LeNet5 | None = None, maps: bool = True) -> list[Reading]:
    """Read many pictures with one forward pass, which also yields the C1 and C3 maps (`maps=False` skips
    keeping them). Never raises for a bad picture: its Reading says what is wrong, and the others are read."""
    readings: list[Reading | np.ndarray] = [prepare(image) for image in images]
    rows = [i for i, r in enumerate(readings) if isinstance(r, np.ndarray)]
    for i, reading in zip(rows, read_fields([readings[i] for i in rows], model, maps)):
        readings[i] = reading
    return readings


def read_fields(fields: Sequence[np.ndarray], model: LeNet5 | None = None, maps: bool = True) -> list[Reading]:
    """The network's part of reading: prepared 28x28 inputs, in one forward pass."""
    if not fields:
        return []
    model = model or default_model()
    if model.training:  # walking the modules to switch them costs more than a forward pass: only when needed
        model.eval()
    batch = np.stack(fields)
    if small_batch.can_read(model, len(batch)):
        logits, c1, c3 = small_batch.forward_intermediates(model, batch)
    else:
        logits, c1, c3 = torch_forward_intermediates(model, batch, maps)
    probs, logit_rows = softmax(logits).tolist(), logits.tolist()
    stages = {"c1": c1, "c3": c3} if maps else {}
    return [Reading(probs=dict(zip(LABEL_NAMES, probs[row])), input=field_, maps={n: m[row] for n, m in stages.items()},
                    logits=logit_rows[row]) for row, field_ in enumerate(fields)]


def torch_forward_intermediates(model: LeNet5, batch: np.ndarray, maps: bool
                                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The logits and (when `maps`, else None) the C1 and C3 maps of float32 digits [N, 28, 28], in numpy."""
    weight = next(model.parameters())
    x = torch.from_numpy(batch)[:, None].to(weight.device, weight.dtype)
    with torch.inference_mode(), small_batch_kernels(len(batch)):
        final, (c1, c3, _) = model.forward_intermediates(x)
        logits = model.forward_head(final)
    c1, c3 = (to_numpy(c1), to_numpy(c3)) if maps else (None, None)
    return to_numpy(logits), c1, c3


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.float().cpu().numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, in float64 so that each row sums to 1 to within a few units in the 16th digit."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True), dtype=np.float64)
    return shifted / shifted.sum(axis=1, keepdims=True)


def predict(image: Any, model: LeNet5 | None = None) -> dict[str, float]:
    """Probabilities {"0": p0, ..., "9": p9} (summing to 1) for one digit picture (see `preprocess` for
    the forms it takes), with the verdicts of `read_digits`.

    Raises:
        NoDigitError: the picture holds no ink (NotADigitError: ink, but not a digit's shape).
        UnreadableImageError (a ValueError): not a readable picture, or too large (ImageTooLargeError).
    """
    reading = read_digits([image], model, maps=False)[0]
    if reading.reason:
        raise reading.refusal()
    return reading.probs


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
