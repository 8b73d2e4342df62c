"""The pictures of a finished run: training curves, the test confusion matrix, the misclassified digits."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window: works on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .data import Split  # noqa: E402
from .training import Evaluation  # noqa: E402


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
    image = ax.imshow(errors.numpy(), cmap="Reds")  # numpy: matplotlib copies a torch tensor the deprecated way
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
        ax.imshow(test.images[i].cpu().numpy(), cmap="gray_r")
        ax.set_title(f"{int(evaluation.labels[i])}→{pred} {evaluation.probabilities[i, pred]:.0%}", fontsize=8)
    fig.suptitle("Misclassified test digits: true→predicted, confidence", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
