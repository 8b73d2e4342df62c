"""The pictures of a finished run: training curves, the test confusion matrix, the misclassified digits."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window: works on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
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


# A cell of the misclassified picture: the 28-pixel digit with a margin, under a band for its label.
CELL_WIDTH, CELL_HEIGHT, LABEL_BAND = 34, 44, 12


def misclassified_grid(test: Split, evaluation: Evaluation, limit: int = 40, cols: int = 10
                       ) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """The first `limit` misclassified test digits in one uint8 picture, `cols` to a row, and each one's label
    ("true→predicted confidence") with the point at the top of its cell where it is written."""
    wrong = torch.nonzero(evaluation.predictions != evaluation.labels).flatten()[:limit].tolist()
    rows = max(1, -(-len(wrong) // cols))
    canvas = np.zeros((rows * CELL_HEIGHT, cols * CELL_WIDTH), dtype=np.uint8)
    labels = []
    for k, i in enumerate(wrong):
        row, col = divmod(k, cols)
        top, left = row * CELL_HEIGHT + LABEL_BAND, col * CELL_WIDTH + (CELL_WIDTH - 28) // 2
        canvas[top:top + 28, left:left + 28] = test.images[i].cpu().numpy()
        pred = int(evaluation.predictions[i])
        labels.append((left + 14, top - 2, f"{int(evaluation.labels[i])}→{pred} {evaluation.probabilities[i, pred]:.0%}"))
    return canvas, labels


def plot_misclassified(test: Split, evaluation: Evaluation, path: Path, limit: int = 40) -> None:
    """The misclassified digits as one picture in one axes: forty axes of a digit each, laid out by
    tight_layout, took 1.2 s of every run's saving on a 2-core CPU; this takes 0.13-0.3 s."""
    canvas, labels = misclassified_grid(test, evaluation, limit)
    rows, cols = len(canvas) // CELL_HEIGHT, canvas.shape[1] // CELL_WIDTH
    height = rows * 1.42
    fig = plt.figure(figsize=(cols * 1.1, height + 0.4))
    ax = fig.add_axes((0, 0, 1, height / (height + 0.4)))  # the whole figure below the title
    ax.imshow(canvas, cmap="gray_r", interpolation="nearest")
    for x, y, text in labels:
        ax.text(x, y, text, ha="center", va="bottom", fontsize=8)
    ax.axis("off")
    fig.suptitle("Misclassified test digits: true→predicted, confidence", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
