"""Command-line helpers.

    python -m lenet5 summary [--variant lecun1998]                # each layer's output shape and parameters
    python -m lenet5 push outputs/lenet5-modern --repo-id you/lenet5-mnist   # publish a trained run
"""

import argparse
import sys
from pathlib import Path

from .hub import publish
from .model import VARIANTS, LeNet5
from .summary import summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lenet5", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("summary", help="print each layer's output shape and parameter count")
    show.add_argument("--variant", choices=VARIANTS, default=VARIANTS[0], help="(default: %(default)s)")
    push = commands.add_parser("push", help="publish a folder written by train.py on the Hugging Face Hub")
    push.add_argument("out", type=Path, help="the folder train.py wrote (its --out)")
    push.add_argument("--repo-id", default=None, help="Hub repo (default: YOUR_NAME/lenet5-mnist)")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    args = parser.parse_args(argv)
    if args.command == "summary":
        print(f"LeNet5(variant={args.variant!r})")
        print(summary(LeNet5(variant=args.variant)))
        return 0
    try:
        url = publish(args.out, args.repo_id, private=args.private)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"published to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
