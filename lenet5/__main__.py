"""Command-line helpers.

    python -m lenet5 summary [--variant lecun1998]                # each layer's output shape and parameters
    python -m lenet5 push outputs/lenet5-modern --repo-id you/lenet5-mnist   # publish a trained run
    python -m lenet5 onnx lecun1998 --out lenet5-lecun1998.onnx             # any model load_model takes
"""

import argparse
import gc
import sys
from pathlib import Path

from .hub import load_model, publish
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
    onnx = commands.add_parser("onnx", help="export a model to ONNX, with a dynamic batch")
    onnx.add_argument("source", nargs="?", default=None,
                      help="a bundled variant, a folder train.py wrote, or a Hub repo (default: the bundled modern)")
    onnx.add_argument("--out", type=Path, default=None, help="the .onnx file to write (default: lenet5-VARIANT.onnx)")
    args = parser.parse_args(argv)
    if args.command == "summary":
        print(f"LeNet5(variant={args.variant!r})")
        print(summary(LeNet5(variant=args.variant)))
        return 0
    try:
        if args.command == "onnx":
            model = load_model(args.source)
            written = model.export_onnx(args.out or Path(f"lenet5-{model.variant}.onnx"))
            print(f"wrote {written}: pixels [N, 1, 28, 28] in [0, 1], ink = 1 -> logits [N, {model.num_classes}]")
            return 0
        url = publish(args.out, args.repo_id, private=args.private)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"published to {url}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        # Python's last garbage collections, over the objects of PyTorch, torchvision and timm, took 1-1.7 s
        # of every exit. Frozen, they are skipped; the files are closed by now and atexit still runs.
        gc.freeze()
