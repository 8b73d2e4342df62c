"""Training checkpoints: written whole or not at all, and read back only when they are what they claim."""

import os
import pickle
from pathlib import Path

import torch

from .recipes import from_saved

CHECKPOINT_KEYS = {"config", "epoch", "step", "seconds", "history", "model", "ema", "optimizer", "scheduler",
                   "generator", "torch_rng", "best", "stopped"}


def write_checkpoint(state: dict, path: Path) -> None:
    """Write the checkpoint beside its final name, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        torch.save(state, partial)
        os.replace(partial, path)
    except (OSError, RuntimeError) as error:  # a full disk reaches torch.save's writer as a RuntimeError
        if partial.is_file():
            partial.unlink()
        raise ValueError(f"cannot write the checkpoint {path} (disk full or read-only?): {brief(error)}; "
                         f"the last good checkpoint is kept") from None


def load_checkpoint(path: Path, device: torch.device) -> dict:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"cannot resume: there is no checkpoint at {path}") from None
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as error:
        raise ValueError(f"cannot resume: {path} is not a readable checkpoint ({error})") from None
    missing = CHECKPOINT_KEYS - set(state) if isinstance(state, dict) else CHECKPOINT_KEYS
    if missing:
        raise ValueError(f"cannot resume: {path} is not a lenet5 training checkpoint (missing {sorted(missing)})")
    try:
        from_saved(state["config"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot resume: {path} holds another recipe ({brief(error, 30)}); start the run again") from None
    if state.get("pieces") is not None and not stored_pieces_fit(state["pieces"]):
        raise ValueError(f"cannot resume: the pieces of numbers in {path} are damaged; start the run again")
    return state


def stored_pieces_fit(pieces) -> bool:
    """A checkpoint's pieces are uint8 [N, 28, 28] images with N labels."""
    try:
        images, labels = pieces["images"], pieces["labels"]
        return images.dtype == torch.uint8 and tuple(images.shape[1:]) == (28, 28) and labels.shape == (len(images),)
    except (TypeError, KeyError, AttributeError):
        return False


def brief(error: Exception, words: int = 12) -> str:
    """The start of an error's message, on one line: torch's disk errors run to many lines of C++ context."""
    return " ".join(str(error).split()[:words]) or type(error).__name__


def is_finished(state: dict) -> bool:
    """Whether a checkpoint's run has trained all it will: what is left is to evaluate and save it."""
    return state["epoch"] >= state["config"]["epochs"] or bool(state["stopped"])
