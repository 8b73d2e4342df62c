"""Load a trained LeNet-5 (bundled, local folder or Hub) and read digits with it."""

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

from .model import LABEL_NAMES, VARIANTS, LeNet5
from .preprocess import NoDigitError, not_digit_like, preprocess

BUNDLED_DIR = Path(__file__).parent / "weights"
UNSURE_BELOW = 0.6  # a top probability under this is reported as a guess, not an answer


def bundled_variants() -> list[str]:
    return [v for v in VARIANTS if (BUNDLED_DIR / v / "model.safetensors").is_file()]


def load_model(source: str | Path | None = None, device: str | torch.device = "cpu", revision: str | None = None) -> LeNet5:
    """Load weights: None -> the bundled default; a variant name ("modern", "lecun1998") -> its bundled weights;
    an existing folder -> what save_pretrained wrote there; anything else -> a Hub repo id "OWNER/NAME".

    Raises:
        ValueError: the source does not exist, cannot be reached, or holds weights that do not fit.
    """
    source = VARIANTS[0] if source is None else source
    if str(source) in VARIANTS:
        if str(source) not in bundled_variants():
            raise ValueError(f"no bundled weights for variant {source!r}; bundled: {', '.join(bundled_variants())}")
        source = BUNDLED_DIR / str(source)
    if not Path(source).is_dir() and str(source).count("/") != 1:
        raise ValueError(
            f"{str(source)!r} is neither a bundled variant ({', '.join(VARIANTS)}), a folder, nor a Hub repo id OWNER/NAME"
        )
    if Path(source).is_dir():
        if not (Path(source) / "model.safetensors").is_file():
            raise ValueError(f"{source} holds no model.safetensors: is it a folder written by save_pretrained?")
        return LeNet5.from_pretrained(str(source), map_location=str(device)).to(device).eval()
    try:
        return LeNet5.from_pretrained(str(source), revision=revision, map_location=str(device)).to(device).eval()
    except HFValidationError:
        raise ValueError(f"{str(source)!r} is neither a bundled variant, a folder, nor a Hub repo id OWNER/NAME") from None
    except LocalEntryNotFoundError as error:
        raise ValueError(f"cannot download {source} from the Hugging Face Hub (offline?): {error}") from None
    except HfHubHTTPError as error:
        raise ValueError(f"cannot load {source} from the Hugging Face Hub: {error}") from None


@lru_cache(maxsize=1)
def default_model() -> LeNet5:
    return load_model()


@torch.no_grad()
def predict(image: Any, model: LeNet5 | None = None) -> dict[str, float]:
    """Probabilities {"0": p0, ..., "9": p9} (summing to 1) for one digit picture; see `preprocess`."""
    model = model or default_model()
    if model.training:  # walking the modules to switch them costs more than the forward pass: only when needed
        model.eval()
    logits = model(preprocess(image).to(next(model.parameters()).device))[0].double().cpu().numpy()
    probs = np.exp(logits - logits.max())
    return dict(zip(LABEL_NAMES, (probs / probs.sum()).tolist()))


@dataclass
class Reading:
    """What the network made of one picture, with a sentence a person can read."""

    message: str
    probs: dict[str, float] | None = None  # None when there is no digit to read
    input: torch.Tensor | None = None  # the [28, 28] input the network saw
    feature_maps: dict[str, torch.Tensor] = field(default_factory=dict)  # "c1": [6, 28, 28], "c3": [16, 10, 10]

    @property
    def ranked(self) -> list[tuple[str, float]]:
        return sorted(self.probs.items(), key=lambda item: -item[1]) if self.probs else []


@torch.no_grad()
def read_digits(images: list[Any], model: LeNet5 | None = None) -> list[Reading]:
    """Read many pictures in one forward pass. Never raises for a bad picture: its Reading says what is wrong."""
    model = (model or default_model()).eval()
    readings: list[Reading] = [Reading(message="")] * len(images)
    inputs: dict[int, torch.Tensor] = {}
    for i, image in enumerate(images):
        try:
            x = preprocess(image)
        except NoDigitError as error:
            readings[i] = Reading(message=f"Nothing to read: {error}. Draw or upload a digit.")
            continue
        except ValueError as error:
            readings[i] = Reading(message=f"Cannot read that picture: {error}.")
            continue
        reason = not_digit_like(x)
        if reason:
            readings[i] = Reading(message=f"That looks like {reason}, not a digit. Draw a digit.", input=x[0, 0])
        else:
            inputs[i] = x
    if inputs:
        batch = torch.cat(list(inputs.values())).to(next(model.parameters()).device)
        probs = torch.softmax(model(batch).float(), dim=1).cpu()
        maps = {name: m.cpu() for name, m in model.feature_maps(batch).items()}
        for row, i in enumerate(inputs):
            reading = Reading(
                message="",
                probs=dict(zip(LABEL_NAMES, probs[row].tolist())),
                input=inputs[i][0, 0],
                feature_maps={name: m[row] for name, m in maps.items()},
            )
            reading.message = describe(reading.ranked)
            readings[i] = reading
    return readings


def describe(ranked: list[tuple[str, float]]) -> str:
    (first, p1), (second, p2) = ranked[:2]
    if p1 < UNSURE_BELOW:
        return f"Not sure: maybe **{first}** ({p1:.0%}), or **{second}** ({p2:.0%})."
    return f"It is a **{first}** ({p1:.0%}). Second guess: {second} ({p2:.0%})."
