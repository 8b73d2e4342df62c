"""Train LeNet-5 on MNIST and save it the Hugging Face way (safetensors, config.json, model card, pictures).

    python train.py                              # full recipe, CUDA when present, else CPU
    python train.py --fast --out /tmp/quick      # 99% in two epochs (about 20 s on a 2-core CPU)
    python train.py --variant lecun1998          # the paper's own network (LeCun et al., 1998)
    python train.py --resume                     # continue an interrupted run from its last epoch
    python train.py --push --repo-id you/lenet5-mnist   # then publish it on the Hugging Face Hub
"""

import argparse
import shlex
import sys
from pathlib import Path

from lenet5.data import load_mnist
from lenet5.hub import hub_username, publish, resolve_repo_id
from lenet5.model import VARIANTS
from lenet5.report import build_metrics, save_run
from lenet5.training import (
    FAST_RECIPE,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    Trainer,
    default_config,
    evaluate,
    format_epoch,
    load_checkpoint,
    resolve_device,
)

MODERN, LECUN = default_config("modern"), default_config("lecun1998")


def recipe_default(name: str) -> str:
    """The help text's default: the same for both variants, or each variant's own."""
    modern, lecun = (f"{v:g}" if isinstance(v, float) else str(v) for v in (getattr(MODERN, name), getattr(LECUN, name)))
    return f"(default: {modern})" if modern == lecun else f"(default: {modern}; lecun1998: {lecun})"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", choices=VARIANTS, default="modern",
                   help="modern (ReLU, BatchNorm) or lecun1998 (the paper's network) (default: %(default)s)")
    p.add_argument("--fast", action="store_true",
                   help="the quickest recipe to 99%%: 2 epochs on all 60,000 digits, no augmentation, no EMA, "
                        "no validation (flags given with it still win)")
    p.add_argument("--epochs", type=int, help=f"passes over the data {recipe_default('epochs')}")
    p.add_argument("--batch-size", type=int, help=recipe_default("batch_size"))
    p.add_argument("--optimizer", choices=OPTIMIZERS,
                   help=f"sgd (Nesterov momentum) or adam (AdamW) {recipe_default('optimizer')}")
    p.add_argument("--lr", type=float, help=f"peak learning rate {recipe_default('lr')}")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help="onecycle: warm up, then anneal; plateau: halve the rate when validation accuracy "
                        f"stalls {recipe_default('schedule')}")
    p.add_argument("--weight-decay", type=float, help=recipe_default("weight_decay"))
    p.add_argument("--label-smoothing", type=float, help=recipe_default("label_smoothing"))
    p.add_argument("--ema-decay", type=float, help=f"0 turns EMA off {recipe_default('ema_decay')}")
    p.add_argument("--no-augment", action="store_true", help="train on the digits as they are")
    p.add_argument("--val-size", type=int,
                   help=f"training images held out for validation; 0 trains on all 60,000 {recipe_default('val_size')}")
    p.add_argument("--patience", type=int,
                   help="stop when validation accuracy has not improved for this many epochs, keeping the best "
                        f"epoch's weights; 0: never {recipe_default('patience')}")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop cleanly once this much training time is used up: the epoch in progress is cut short, "
                        "validated and saved like any other, and --resume can continue the run")
    p.add_argument("--seed", type=int, help=recipe_default("seed"))
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto uses CUDA when present (default: %(default)s)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where MNIST is read from or downloaded to (default: $LENET5_DATA, else ~/.cache/lenet5)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: outputs/lenet5-VARIANT)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run whose checkpoint is in --out, with the settings it was started with")
    p.add_argument("--push", action="store_true",
                   help="publish the trained model on the Hugging Face Hub (the login is checked before training)")
    p.add_argument("--repo-id", default=None, help="Hub repo for --push (default: YOUR_NAME/lenet5-mnist)")
    p.add_argument("--private", action="store_true", help="with --push: create the repo as private")
    args = p.parse_args(argv)
    args.out = args.out or Path("outputs") / f"lenet5-{args.variant}"
    return args


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The variant's recipe with every flag the user gave put over it."""
    fields = ("epochs", "batch_size", "optimizer", "lr", "schedule", "weight_decay", "label_smoothing", "ema_decay",
              "val_size", "patience", "seed")
    overrides = dict(FAST_RECIPE) if args.fast else {}
    overrides.update({name: getattr(args, name) for name in fields if getattr(args, name) is not None})
    if args.no_augment:
        overrides["augment"] = False
    return default_config(args.variant, **overrides)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    checkpoint = args.out / "checkpoint.pt"
    try:
        repo_id = resolve_repo_id(args.repo_id, hub_username(), args.variant) if args.push else None
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
        result = trainer.run(checkpoint, time_budget=args.time_budget)
        test = evaluate(result.model, data.test)
        command = shlex.join(["python", "train.py", *training_args(argv)])
        metrics = build_metrics(result, test, device, len(data.train), len(data.val), command)
        written = save_run(args.out, result, data.test, test, metrics)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished epochs are saved: python train.py --resume --out {args.out}", file=sys.stderr)
        return 130
    print(f"test accuracy {test.accuracy:.2%} ({test.errors} errors of {len(test.labels):,}), "
          f"{metrics['params']:,} parameters, {result.seconds:.1f} s of training on {device}")
    print(f"saved to {args.out}/: " + ", ".join(path.name for path in written))
    return push(args.out, repo_id, args.private) if repo_id else 0


def training_args(argv: list[str]) -> list[str]:
    """The command line without its publishing flags: the card's reproduce command trains, it does not push."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg in ("--push", "--private") or arg.startswith("--repo-id="):
            skip = False
            continue
        skip = arg == "--repo-id"
        if not skip:
            kept.append(arg)
    return kept


def push(out: Path, repo_id: str, private: bool) -> int:
    """Publish a saved run; on failure keep everything and say how to publish it without retraining."""
    try:
        url = publish(out, repo_id, private=private)
    except ValueError as error:
        retry = shlex.join(["python", "-m", "lenet5", "push", str(out), "--repo-id", repo_id, *(["--private"] * private)])
        print(f"error: publishing failed: {error}\n"
              f"the trained model is saved in {out}/; publish it without retraining:\n  {retry}", file=sys.stderr)
        return 1
    print(f"published to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
