"""Load a trained LeNet-5 (bundled, local folder or Hub) and read digits with it."""

from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

from .model import LABEL_NAMES, VARIANTS, LeNet5
from .preprocess import preprocess

BUNDLED_DIR = Path(__file__).parent / "weights"


def bundled_variants() -> list[str]:
    return [v for v in VARIANTS if (BUNDLED_DIR / v / "model.safetensors").is_file()]


def load_model(source: str | Path | None = None, device: str | torch.device = "cpu", revision: str | None = None) -> LeNet5:
    """Load weights: None -> the bundled default; a variant name ("modern") -> its bundled weights;
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
    device = next(model.parameters()).device
    logits = model.eval()(preprocess(image).to(device))
    probs = torch.softmax(logits.float(), dim=1)[0].tolist()
    return dict(zip(LABEL_NAMES, probs))
