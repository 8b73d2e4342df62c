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
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .data import Split
from .model import LABEL_NAMES, MODEL_CARD_TEMPLATE, LeNet5
from .training import OPTIMIZER_NAMES, Evaluation, TrainConfig, TrainResult, brief, training_dtype

PICTURES = ("training_curves.png", "confusion_matrix.png", "misclassified.png")


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


def describe_recipe(c: TrainConfig) -> str:
    optimizer = OPTIMIZER_NAMES[c.optimizer]
    schedule = (f"one-cycle learning rate peaking at {c.lr:g}" if c.schedule == "onecycle"
                else f"learning rate {c.lr:g}, halved when validation accuracy stalls")
    loss = ("the paper's MAP criterion (eq. 9)" if c.variant == "lecun1998"
            else f"cross-entropy with label smoothing {c.label_smoothing:g}" if c.label_smoothing else "cross-entropy")
    augmentation = ("no augmentation" if not c.augment
                    else f"random shift/rotation/scale{'/stroke-width' if c.stroke_width else ''} augmentation")
    parts = [
        f"{optimizer}, weight decay {c.weight_decay:g}",
        schedule,
        f"batch {c.batch_size}",
        loss,
        f"EMA of weights (decay {c.ema_decay:g})" if c.ema_decay else "no weight averaging",
        augmentation,
        (f"the candidate digits of {c.pieces:,} numbers written with the training digits and cut as read_number "
         "cuts them, wrong cuts taught as no digit") if c.pieces else "",
        f"early stopping after {c.patience} epochs without progress" if c.patience else "",
        f"seed {c.seed}",
    ]
    parts = [part for part in parts if part]
    return ", ".join(parts)


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
        "recipe": describe_recipe(result.config),
        "command": command,
        "config": asdict(result.config),
        "history": [asdict(stats) for stats in result.history],
    }


def build_model_card(metrics: dict, repo_id: str | None = None, location: str | None = None) -> ModelCard:
    """The card: the class's Hub metadata, the test accuracy as a model-index entry, and the run's figures."""
    card_data = ModelCardData(**LeNet5._hub_mixin_info.model_card_data.to_dict())
    card_data.datasets = ["ylecun/mnist"]
    card_data.metrics = ["accuracy"]
    card_data.model_name = repo_id.split("/")[-1] if repo_id else f"lenet5-{metrics['variant']}"
    card_data.eval_results = [
        EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type="ylecun/mnist",
            dataset_name="MNIST",
            dataset_split="test",
            metric_type="accuracy",
            metric_name="Test accuracy",
            metric_value=round(metrics["test_accuracy"], 4),
        )
    ]
    return ModelCard.from_template(
        card_data,
        template_str=MODEL_CARD_TEMPLATE,
        variant=metrics["variant"],
        test_accuracy=f"{metrics['test_accuracy']:.2%}",
        test_errors=metrics["test_errors"],
        params=f"{metrics['params']:,}",
        epochs=metrics["epochs"],
        wall_time=f"{metrics['train_seconds']:.0f} s",
        device=metrics["device"],
        precision=metrics.get("precision"),
        teacher=metrics.get("config", {}).get("teacher"),
        per_class_accuracy=[f"{acc:.2%}" for acc in metrics["per_class_accuracy"].values()],
        val_size=f"{metrics['val_images']:,}",
        recipe=metrics["recipe"],
        train_command=metrics["command"],
        repo_id=repo_id,
        location=location,
    )


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
    except (OSError, RuntimeError) as error:  # a full disk; torch's writers raise RuntimeError for it
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
