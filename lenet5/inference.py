"""The one reader: pictures in, the network's probabilities (or the reason there are none) out."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .decoding import ImageTooLargeError, NoDigitError, NotADigitError, UnreadableImageError
from .forward import logits_and_maps
from .hub import default_model
from .model import LABEL_NAMES, LeNet5
from .preprocessing import digit_field, not_digit_like

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

    def as_dict(self) -> dict:
        """The reading as plain data: the top digit and its probability, every probability, or the reason."""
        digit, probability = self.ranked[0] if self.probs else (None, None)
        return {"digit": digit, "probability": probability, "probabilities": self.probs, "reason": self.reason,
                "detail": self.detail}

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
    logits, c1, c3 = logits_and_maps(model, np.stack(fields), maps)
    probs, logit_rows = softmax(logits).tolist(), logits.tolist()
    stages = {"c1": c1, "c3": c3} if maps else {}
    return [Reading(probs=dict(zip(LABEL_NAMES, probs[row])), input=field_, maps={n: m[row] for n, m in stages.items()},
                    logits=logit_rows[row]) for row, field_ in enumerate(fields)]


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
