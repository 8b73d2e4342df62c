"""What a finished run leaves behind: weights, config, model card, metrics.json and pictures.

Everything is written into a staging folder first and moved into place file by file at the end, so an
interrupted save never leaves a folder whose weights and card disagree.
"""

import json
import math
import os
import platform
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window: works on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import torch  # noqa: E402
from huggingface_hub import EvalResult, ModelCard, ModelCardData  # noqa: E402

from .data import Split  # noqa: E402
from .model import LABEL_NAMES, MODEL_CARD_TEMPLATE, LeNet5  # noqa: E402
from .training import Evaluation, TrainConfig, TrainResult, brief, training_dtype  # noqa: E402

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
    optimizer = {"adam": "AdamW", "muon": "Muon with Nesterov momentum 0.9 for the weight matrices, AdamW for the biases",
                 "sgd": "SGD with Nesterov momentum 0.9"}[c.optimizer]
    schedule = (f"one-cycle learning rate peaking at {c.lr:g}" if c.schedule == "onecycle"
                else f"learning rate {c.lr:g}, halved when validation accuracy stalls")
    loss = ("the paper's MAP criterion (eq. 9)" if c.variant == "lecun1998"
            else f"cross-entropy with label smoothing {c.label_smoothing:g}" if c.label_smoothing else "cross-entropy")
    parts = [
        f"{optimizer}, weight decay {c.weight_decay:g}",
        schedule,
        f"batch {c.batch_size}",
        loss,
        f"EMA of weights (decay {c.ema_decay:g})" if c.ema_decay else "no weight averaging",
        "random shift/rotation/scale/stroke-width augmentation" if c.augment else "no augmentation",
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


def plot_training_curves(history: list[dict], variant: str, path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_acc.plot(epochs, [100 * h["train_acc"] for h in history], "o-", label="train")
    if history[0]["val_acc"] is not None:
        ax_loss.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
        ax_acc.plot(epochs, [100 * h["val_acc"] for h in history], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="MAP criterion" if variant == "lecun1998" else "cross-entropy", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    accuracies = [100 * h[key] for h in history for key in ("train_acc", "val_acc") if h[key] is not None]
    ax_acc.set_ylim(min(90.0, math.floor(min(accuracies)) - 1), 100)  # zoomed on the top, every point shown
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion_matrix(counts: torch.Tensor, path: Path) -> None:
    n = len(counts)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    errors = counts.clone().fill_diagonal_(0)  # colour the mistakes; the diagonal would drown them
    image = ax.imshow(errors, cmap="Reds")
    for true in range(n):
        for pred in range(n):
            value = int(counts[true, pred])
            if value:
                color = "black" if true != pred else "tab:green"
                ax.text(pred, true, value, ha="center", va="center", fontsize=8, color=color)
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true",
           title=f"Test confusion matrix ({int(errors.sum())} errors)")
    fig.colorbar(image, ax=ax, label="errors")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_misclassified(test: Split, evaluation: Evaluation, path: Path, limit: int = 40) -> None:
    wrong = torch.nonzero(evaluation.predictions != evaluation.labels).flatten()[:limit].tolist()
    cols = 10
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.35), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        pred = int(evaluation.predictions[i])
        ax.imshow(test.images[i].cpu(), cmap="gray_r")
        ax.set_title(f"{int(evaluation.labels[i])}→{pred} {evaluation.probabilities[i, pred]:.0%}", fontsize=8)
    fig.suptitle("Misclassified test digits: true→predicted, confidence", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
