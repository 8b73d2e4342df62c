"""How well `read_number` reads whole numbers: numbers made of MNIST *test* digits (never trained on),
placed the way people write them on a wide canvas.

    python bench/number_accuracy.py                       # both bundled networks, 40 numbers per cell
    python bench/number_accuracy.py --per-cell 100 --model lecun1998

Each number has 1 to 8 digits, all pairs of neighbours set apart the same way: separated (a gap of 3-10
MNIST pixels between their ink), touching (the ink boxes abut or overlap by a pixel, so strokes often
meet) or overlapping (the boxes overlap by 3-6 pixels). Every digit is scaled by 0.85-1.15, moved up or
down by up to 3 pixels, and the pen is made finer or coarser (by a third of an MNIST pixel, or a pixel); the number is drawn black on white at 3x, as a canvas
of about 90 pixels tall. Per-digit accuracy counts the true digits less the edits (a digit missing, extra or
wrong) that turn the text read into the true one; whole-number accuracy counts texts read exactly.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lenet5 import load_model, read_number  # noqa: E402
from lenet5.data import default_data_dir, read_mnist  # noqa: E402

GAPS = {"separated": (3, 10), "touching": (-1, 0), "overlapping": (-6, -3)}
COUNTS = range(1, 9)
ZOOM = 3


def ink_crop(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One MNIST digit (uint8, ink 255) cropped to its ink and rescaled."""
    ink = digit.astype(np.float32) / 255
    rows, cols = np.flatnonzero(ink.max(1) > 0.1), np.flatnonzero(ink.max(0) > 0.1)
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = rng.uniform(0.85, 1.15)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    return np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BILINEAR))


def compose(digits: list[np.ndarray], gap: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Digits side by side on one line (ink combined by maximum), as black on white uint8 at ZOOM x."""
    crops = [ink_crop(d, rng) for d in digits]
    height = max(c.shape[0] for c in crops) + 14
    width = sum(c.shape[1] for c in crops) + 10 * len(crops) + 16
    canvas = np.zeros((height, width), dtype=np.float32)
    x = 8
    for i, crop in enumerate(crops):
        if i:
            x += int(rng.integers(gap[0], gap[1] + 1))
        y = (height - crop.shape[0]) // 2 + int(rng.integers(-3, 4))
        y = int(np.clip(y, 0, height - crop.shape[0]))
        x = max(0, x)
        region = canvas[y : y + crop.shape[0], x : x + crop.shape[1]]
        np.maximum(region, crop[: region.shape[0], : region.shape[1]], out=region)
        x += crop.shape[1]
    canvas = canvas[:, : x + 8]
    big = Image.fromarray(canvas).resize((canvas.shape[1] * ZOOM, canvas.shape[0] * ZOOM), Image.Resampling.BILINEAR)
    ink = np.asarray(big)
    stroke = rng.choice(["thin", "as is", "thick"])  # a pen a third of an MNIST pixel finer, or one coarser
    if stroke == "thin":
        ink = ndimage.grey_erosion(ink, size=(2, 2))
    elif stroke == "thick":
        ink = ndimage.grey_dilation(ink, size=(4, 4))
    return np.round((1 - np.clip(ink, 0, 1)) * 255).astype(np.uint8)


def digits_right(read: str, truth: str) -> int:
    """Digits of `truth` read right: its length less the edits (missing, extra or wrong digits) that turn
    `read` into it, at least 0."""
    previous = list(range(len(truth) + 1))
    for i, a in enumerate(read, 1):
        current = [i]
        for j, b in enumerate(truth, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return max(0, len(truth) - previous[-1])


def evaluate(model, test, per_cell: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    images, labels = test.images.numpy(), test.labels.numpy()
    results = {}
    for gap_name, gap in GAPS.items():
        for count in COUNTS:
            right = right_digits = 0
            for _ in range(per_cell):
                picks = rng.integers(0, len(labels), size=count)
                truth = "".join(str(labels[i]) for i in picks)
                text = read_number(compose([images[i] for i in picks], gap, rng), model).text
                right += text == truth
                right_digits += digits_right(text, truth)
            results[gap_name, count] = (right / per_cell, right_digits / (per_cell * count))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-cell", type=int, default=40, help="numbers per digit count and gap type (default: %(default)s)")
    p.add_argument("--model", action="append", choices=["modern", "lecun1998"],
                   help="a bundled network (default: both); may be given twice")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    args = p.parse_args()
    if args.per_cell < 1:
        p.error("--per-cell must be at least 1")
    test = read_mnist(default_data_dir(), train=False)
    for variant in args.model or ["modern", "lecun1998"]:
        start = time.perf_counter()
        results = evaluate(load_model(variant), test, args.per_cell, args.seed)
        seconds = time.perf_counter() - start
        print(f"\n{variant}: whole-number accuracy (per-digit accuracy), {args.per_cell} numbers per cell, "
              f"{seconds:.0f} s")
        print(f"{'digits':<8}" + "".join(f"{name:>24}" for name in GAPS))
        for count in COUNTS:
            cells = [results[name, count] for name in GAPS]
            print(f"{count:<8}" + "".join(f"{whole:>16.1%} ({digit:.1%})" for whole, digit in cells))
        for name in GAPS:
            per_digit = np.mean([results[name, c][1] for c in COUNTS])
            print(f"{name}: per-digit accuracy {per_digit:.2%}; its 4th power, which bounds 4-digit numbers: "
                  f"{per_digit ** 4:.1%}; 4-digit numbers read exactly: {results[name, 4][0]:.1%}")


if __name__ == "__main__":
    main()
