"""What a finished run leaves behind: weights, config, model card, metrics.json and pictures.

Everything is written into a staging folder first and moved into place file by file at the end, so an
interrupted save never leaves a folder whose weights and card disagree.
"""

import json
import os
import platform
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError

from .checkpoint import brief
from .data import Split
from .hub import PICTURES, build_model_card
from .model import LABEL_NAMES
from .recipes import describe, training_dtype
from .training import Evaluation, TrainResult


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def confusion_matrix(evaluation: Evaluation, num_classes: int = 10) -> torch.Tensor:
    """counts[true, predicted]"""
    index = evaluation.labels * num_classes + evaluation.predictions
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(evaluation: Evaluation, num_classes: int = 10) -> list[float]:
    counts = confusion_matrix(evaluation, num_classes)
    return (counts.diag().float() / counts.sum(1).clamp(min=1)).tolist()


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads > 1 else ''})"


def build_metrics(
    result: TrainResult, test: Evaluation, device: torch.device, train_images: int, val_images: int, command: str
) -> dict:
    """Every figure of a run; the model card is written from this alone, so a later push can rewrite it."""
    return {
        "variant": result.config.variant,
        "dataset": "mnist",
        "test_accuracy": test.accuracy,
        "test_errors": test.errors,
        "test_images": len(test.labels),
        "test_loss": test.loss,
        "per_class_accuracy": dict(zip(LABEL_NAMES, per_class_accuracy(test))),
        "val_accuracy": result.history[-1].val_acc,
        "params": count_parameters(result.model),
        "epochs": len(result.history),
        "stopped": result.stopped,
        "train_seconds": round(result.seconds, 2),
        "device": describe_device(device),
        "precision": "bf16 mixed precision" if training_dtype(device) == torch.bfloat16 else "fp32",
        "train_images": train_images,
        "val_images": val_images,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "recipe": describe(result.config),
        "command": command,
        "config": asdict(result.config),
        "history": [asdict(stats) for stats in result.history],
    }


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def save_run(
    out_dir: Path,
    result: TrainResult,
    test: Split,
    test_eval: Evaluation,
    metrics: dict,
) -> list[Path]:
    """Write weights, config.json, README.md (card), metrics.json and the pictures into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".saving-*"):  # left by a save that was killed half way
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=out_dir))
    try:
        return write_run(staging, out_dir, result, test, test_eval, metrics)
    except (OSError, RuntimeError, SafetensorError) as error:  # a full disk, as each writer reports it
        raise ValueError(f"cannot save the run in {out_dir} ({brief(error)}); its checkpoint is kept, and "
                         f"`python train.py --resume --out {out_dir}` saves it once there is room") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_run(staging: Path, out_dir: Path, result: TrainResult, test: Split, test_eval: Evaluation,
              metrics: dict) -> list[Path]:
    """Write every file into `staging`, then move them into `out_dir` one rename each."""
    from .plots import plot_confusion_matrix, plot_misclassified, plot_training_curves  # matplotlib: a second to import
    build_model_card(metrics, location=str(out_dir)).save(staging / "README.md")
    result.model.save_pretrained(staging)  # model.safetensors + config.json; keeps our README.md
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    plot_training_curves(metrics["history"], metrics["variant"], staging / PICTURES[0])
    plot_confusion_matrix(confusion_matrix(test_eval), staging / PICTURES[1])
    plot_misclassified(test, test_eval, staging / PICTURES[2])
    written = []
    mode = 0o666 & ~current_umask()  # what any new file gets: safetensors writes its file 0600
    for file in sorted(staging.iterdir()):
        file.chmod(mode)
        os.replace(file, out_dir / file.name)
        written.append(out_dir / file.name)
    return written
