"""Train LeNet-5 on MNIST and save it the Hugging Face way (safetensors, config.json, model card, pictures).

    python train.py                              # full recipe, CUDA when present, else CPU
    python train.py --epochs 1 --out /tmp/quick  # a 98% model in about 10 s on a laptop CPU
    python train.py --resume                     # continue an interrupted run from its last epoch
"""

import argparse
import shlex
import sys
from pathlib import Path

from lenet5.data import load_mnist
from lenet5.model import VARIANTS
from lenet5.report import build_metrics, save_run
from lenet5.training import TrainConfig, Trainer, evaluate, format_epoch, load_checkpoint, resolve_device

DEFAULTS = TrainConfig()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=VARIANTS, default=DEFAULTS.variant, help="network (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="passes over the data (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="(default: %(default)s)")
    p.add_argument("--lr", type=float, default=DEFAULTS.lr, help="peak learning rate (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay, help="(default: %(default)s)")
    p.add_argument("--label-smoothing", type=float, default=DEFAULTS.label_smoothing, help="(default: %(default)s)")
    p.add_argument("--ema-decay", type=float, default=DEFAULTS.ema_decay, help="0 turns EMA off (default: %(default)s)")
    p.add_argument("--no-augment", action="store_true", help="train on the digits as they are")
    p.add_argument("--val-size", type=int, default=DEFAULTS.val_size,
                   help="training images held out for validation; 0 trains on all 60,000 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="(default: %(default)s)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto uses CUDA when present (default: %(default)s)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where MNIST is read from or downloaded to (default: $LENET5_DATA, else ~/.cache/lenet5)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: outputs/lenet5-VARIANT)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run whose checkpoint is in --out, with the settings it was started with")
    args = p.parse_args(argv)
    args.out = args.out or Path("outputs") / f"lenet5-{args.variant}"
    return args


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        variant=args.variant,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        ema_decay=args.ema_decay,
        augment=not args.no_augment,
        val_size=args.val_size,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    checkpoint = args.out / "checkpoint.pt"
    try:
        device = resolve_device(args.device)
        state = load_checkpoint(checkpoint, device) if args.resume else None
        config = TrainConfig(**state["config"]) if state else config_from_args(args)
        data = load_mnist(args.data_dir, config.val_size, device)
        trainer = Trainer.from_state(state, data, device) if state else Trainer(config, data, device)
        if state:
            print(f"resuming {checkpoint} after epoch {trainer.epoch} of {config.epochs}")
            for stats in trainer.history:
                print(format_epoch(stats, config.epochs))
        print(f"training LeNet-5 ({config.variant}) on {len(data.train):,} MNIST digits, device {device}")
        result = trainer.run(checkpoint)
        test = evaluate(result.model, data.test)
        metrics = build_metrics(result, test, str(device), len(data.train), len(data.val))
        command = shlex.join(["python", "train.py", *argv])
        written = save_run(args.out, result, data.test, test, metrics, command)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished epochs are saved: python train.py --resume --out {args.out}", file=sys.stderr)
        return 130
    print(f"test accuracy {test.accuracy:.2%} ({test.errors} errors of {len(test.labels):,}), "
          f"{metrics['params']:,} parameters, {result.seconds:.1f} s of training on {device}")
    print(f"saved to {args.out}/: " + ", ".join(path.name for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
