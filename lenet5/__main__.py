"""Command-line helpers: `python -m lenet5 summary [--variant modern]` prints the per-layer table."""

import argparse

from .model import VARIANTS, LeNet5
from .summary import summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lenet5", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("summary", help="print each layer's output shape and parameter count")
    show.add_argument("--variant", choices=VARIANTS, default=VARIANTS[0], help="(default: %(default)s)")
    args = parser.parse_args(argv)
    print(f"LeNet5(variant={args.variant!r})")
    print(summary(LeNet5(variant=args.variant)))


if __name__ == "__main__":
    main()
