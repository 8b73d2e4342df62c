"""How well `read_number` reads whole numbers: numbers made of MNIST *test* digits (never trained on),
placed the way people write them on a wide canvas.

    python bench/number_accuracy.py                       # both bundled networks, 400 numbers per cell
    python bench/number_accuracy.py --per-cell 100 --model lecun1998

Each number has 1 to 8 digits, all pairs of neighbours set apart the same way: separated (a gap of 3-10
MNIST pixels between their ink), touching (the ink boxes abut or overlap by a pixel, so strokes often
meet) or overlapping (the boxes overlap by 3-6 pixels). Every digit is scaled by 0.85-1.15, moved up or
down by up to 3 pixels, and the pen is made finer or coarser (by a third of an MNIST pixel, or a pixel); the number is drawn black on white at 3x, as a canvas
of about 90 pixels tall (lenet5.writing writes them). Per-digit accuracy counts the true digits less the edits (a digit missing, extra or
wrong) that turn the text read into the true one; whole-number accuracy counts texts read exactly.

What reading one digit allows: a number is read right only if each of its digits is, so the accuracy on
a digit alone (the 1-digit rows of the three columns together: one digit has no neighbour), to the
power 4, is what 4-digit numbers would reach if their digits were read as well as one alone; what is lost
below it is lost to the neighbours (cuts and merges between digits).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lenet5 import load_model, read_number  # noqa: E402
from lenet5.data import default_data_dir, read_mnist  # noqa: E402
from lenet5.writing import GAPS, compose  # noqa: E402

COUNTS = range(1, 9)


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
                text = read_number(compose([images[i] for i in picks], gap, rng).picture, model).text
                right += text == truth
                right_digits += digits_right(text, truth)
            results[gap_name, count] = (right / per_cell, right_digits / (per_cell * count))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-cell", type=int, default=400, help="numbers per digit count and gap type (default: %(default)s)")
    p.add_argument("--model", action="append",
                   help="a bundled network (modern, lecun1998), a folder train.py wrote, or a Hub repo id "
                        "(default: both bundled networks); may be given more than once")
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
        alone = np.mean([results[name, 1][0] for name in GAPS])
        print(f"a digit alone: {alone:.2%} read right ({len(GAPS) * args.per_cell} digits); to the 4th power "
              f"{alone ** 4:.1%}, what four digits read as well as one would give")
        for name in GAPS:
            per_digit = np.mean([results[name, c][1] for c in COUNTS])
            print(f"{name}: per-digit accuracy {per_digit:.2%}; 4-digit numbers read exactly: {results[name, 4][0]:.1%}")


if __name__ == "__main__":
    main()
