"""Accuracy of preprocessing + model on MNIST test digits re-drawn the way people draw them (tests/drawn.py).

    python bench/drawn_accuracy.py                  # 1,000 test digits per style, bundled model
    python bench/drawn_accuracy.py --model DIR_OR_REPO --count 10000
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lenet5 import load_model  # noqa: E402
from lenet5.data import read_mnist  # noqa: E402
from lenet5.inference import read_digits  # noqa: E402
from tests.drawn import STYLES, drawn_set  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="folder or Hub repo (default: the bundled weights)")
    parser.add_argument("--count", type=int, default=1000, help="test digits per style (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $LENET5_DATA, else ~/.cache/lenet5)")
    args = parser.parse_args()
    model = load_model(args.model)
    test = read_mnist(args.data_dir, train=False)
    images, labels = test.images[: args.count], test.labels[: args.count].tolist()
    print(f"{'style':<28}{'accuracy':>9}{'refused':>9}{'ms/image':>10}")
    for style in STYLES:
        pictures = drawn_set(images, style)
        start = time.perf_counter()
        readings = read_digits(pictures, model)
        ms = 1000 * (time.perf_counter() - start) / len(pictures)
        correct = sum(r.probs is not None and r.ranked[0][0] == str(y) for r, y in zip(readings, labels))
        refused = sum(r.probs is None for r in readings)
        print(f"{style:<28}{correct / len(labels):>9.2%}{refused:>9}{ms:>10.2f}")


if __name__ == "__main__":
    main()
