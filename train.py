"""Train LeNet-5 on MNIST and save it the Hugging Face way (safetensors, config.json, model card, pictures).

    python train.py                              # full recipe, CUDA when present, else CPU
    python train.py --fast --out /tmp/quick      # 99% in one epoch (a few seconds on a 2-core CPU)
    python train.py --time-budget 60             # the best run that fits in a minute, saving included
    python train.py --variant lecun1998          # the paper's own network (LeCun et al., 1998)
    python train.py --resume                     # continue an interrupted run from its last epoch
    python train.py --push --repo-id you/lenet5-mnist   # then publish it on the Hugging Face Hub
"""

import argparse
import gc
import math
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()  # a --time-budget counts from here: before PyTorch and lenet5 are imported

import torch  # noqa: E402

from lenet5.budget import FINISH_SECONDS, MUON_BELOW_EPOCHS, plan_pieces, plan_run, replan  # noqa: E402
from lenet5.checkpoint import is_finished, load_checkpoint  # noqa: E402
from lenet5.data import load_mnist, new_folders, remove_empty  # noqa: E402
from lenet5.hub import PICTURES, hub_username, publish, resolve_repo_id  # noqa: E402
from lenet5.recipes import (DEVICES, FLAG_FIELDS, PRESETS, TrainConfig, command, flag, from_saved,  # noqa: E402
                            recipe, resolve_device)
from lenet5.report import build_metrics, save_run  # noqa: E402
from lenet5.training import Trainer, TrainResult, evaluate, format_epoch  # noqa: E402
from lenet5.writing import number_pieces, workers_for  # noqa: E402

# A run writes about 2 MB, and its checkpoint also keeps the pieces of numbers cut for it (61 MB for the
# recipe's 8,000 numbers), twice that while a new one replaces the old: with less free space the disk fills.
MIN_FREE_BYTES = 200 * 2**20
RUN_FILES = ("config.json", "README.md", "metrics.json", *PICTURES)  # what save_run writes beside the weights
BUDGET_MARGIN = 3  # seconds a --time-budget run may end past its budget (bench/train_speed.py measures it)


def preset_default(name: str) -> str:
    """The help text's default: each preset's value for the field, the same ones once."""
    if name == "variant":
        return "(default: modern)"
    values = {}
    for preset, config in PRESETS.items():
        value = getattr(config, name)
        values.setdefault(f"{value:g}" if isinstance(value, float) else str(value), []).append(preset)
    if len(values) == 1:
        return f"(default: {next(iter(values))})"
    return "(default: " + "; ".join(f"{'/'.join(presets)}: {value}" for value, presets in values.items()) + ")"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # allow_abbrev=False: `--pu` must not quietly mean --push
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    for recipe_field in FLAG_FIELDS:  # the recipe's flags, help and defaults come from TrainConfig and PRESETS
        name, about = recipe_field.name, recipe_field.metadata
        helped = f"{about['help']} {preset_default(name)}".replace("%", "%%")
        if recipe_field.type is bool:
            p.add_argument(flag(name), action=argparse.BooleanOptionalAction, default=None, help=helped)
        else:
            p.add_argument(flag(name), type=recipe_field.type, choices=about["choices"], help=helped)
    p.add_argument("--fast", action="store_true",
                   help="the quickest recipe to 99%% (the fast preset, modern only): 1 epoch of Muon on all 60,000 "
                        "digits (on CUDA 2 epochs of batch 1024), no augmentation, no EMA, no validation; flags "
                        "given with it still win")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="the best run that fits: the whole command (start-up, data, training, evaluation, saving) "
                        f"ends within SECONDS plus {BUDGET_MARGIN:g}, its epochs, moving average and pieces of "
                        "numbers planned from measured steps (at most the recipe's) and the epochs again from the "
                        "first epoch's time, and where fewer than "
                        f"{MUON_BELOW_EPOCHS} epochs fit, Muon in place of SGD unless --optimizer or --lr is given. "
                        "With --resume: train at most this long, then stop cleanly; --resume continues again")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto uses CUDA when present (default: %(default)s)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where MNIST is read from or downloaded to (default: $LENET5_DATA, else ~/.cache/lenet5)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: outputs/lenet5-VARIANT)")
    p.add_argument("--resume", action="store_true",
                   help="continue (or finish saving) the run whose checkpoint is in --out, with its own settings")
    p.add_argument("--overwrite", action="store_true", help="start over in an --out that holds another run")
    p.add_argument("--push", action="store_true",
                   help="publish the trained model on the Hugging Face Hub (the login is checked before training)")
    p.add_argument("--repo-id", default=None, help="Hub repo for --push (default: YOUR_NAME/lenet5-mnist)")
    p.add_argument("--private", action="store_true", help="with --push: create the repo as private")
    args = p.parse_args(argv)
    if args.time_budget is not None and not args.time_budget > 0:
        p.error(f"--time-budget must be a positive number of seconds, got {args.time_budget:g}")
    if args.time_budget is not None and math.isinf(args.time_budget):
        p.error("--time-budget must be a finite number of seconds: leave it out to train the whole recipe")
    if (args.repo_id or args.private) and not args.push:
        p.error("--repo-id and --private only take effect with --push: add --push to publish")
    if args.resume and args.overwrite:
        p.error("--resume continues the run in --out and --overwrite replaces it: choose one")
    args.out = args.out or Path("outputs") / f"lenet5-{args.variant or 'modern'}"
    return args


def given_flags(args: argparse.Namespace) -> dict:
    """The recipe flags the user gave, by TrainConfig field."""
    return {f.name: getattr(args, f.name) for f in FLAG_FIELDS if f.name != "variant" and getattr(args, f.name) is not None}


def optimizer_chosen(args: argparse.Namespace) -> bool:
    """Whether the user chose the optimizer or its rate, which a --time-budget then leaves as they are."""
    return bool({"optimizer", "lr"} & set(given_flags(args)))


def config_from_args(args: argparse.Namespace, device: torch.device) -> TrainConfig:
    """The preset that --variant and --fast name, with every recipe flag the user gave put over it."""
    return recipe(args.variant or "modern", args.fast, device, **given_flags(args))


def prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Check, before any training, that the run can be written to `out` and will not mix with another run."""
    saved = [name for name in ("checkpoint.pt", "model.safetensors") if os.path.exists(out / name)]
    if saved and not resume and not overwrite:
        raise ValueError(f"{out} already holds a run ({', '.join(saved)}): --resume continues it, --overwrite "
                         "starts over, or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise ValueError(f"cannot write to {out}: {error.strerror or error}") from None
    free = shutil.disk_usage(out).free
    if free < MIN_FREE_BYTES:
        raise ValueError(f"only {free / 2**20:.0f} MB free where {out} is: a run needs {MIN_FREE_BYTES // 2**20} MB")
    if overwrite:
        for name in (*saved, *RUN_FILES):
            (out / name).unlink(missing_ok=True)


def planned(config: TrainConfig, budget: float, data, device: torch.device, pieces: int, optimizer_free: bool) -> TrainConfig:
    """The recipe planned for what is left of `budget` after start-up, data and the step's measurement."""
    config, step = plan_run(config, STARTED + budget - FINISH_SECONDS, data, device, len(data.train) + pieces,
                            optimizer_free)
    left = STARTED + budget - FINISH_SECONDS - time.perf_counter()
    room = f" in the {left:.4g} s left for training" if left >= 1 else ""
    print(f"planned for {budget:g} s: {counted_epochs(config.epochs)} at {1000 * step:.1f} ms a step{room}, {config.optimizer} "
          f"at {config.lr:g}, EMA decay {config.ema_decay:g}, pieces of {config.pieces:,} numbers", flush=True)
    if left < 1:
        print(f"start-up took {time.perf_counter() - STARTED:.0f} s of the budget and {FINISH_SECONDS:g} s are kept "
              "for saving: the run trains for 1 s, cut off before its schedule ends", flush=True)
    return config


def counted_epochs(count: int) -> str:
    return f"{count} epoch{'' if count == 1 else 's'}"


def train_within(trainer: Trainer, checkpoint: Path, recipe: TrainConfig, until: float) -> TrainResult:
    """Train by `until` (a perf_counter time): the first epoch as planned, then the rest as planned again
    from that epoch's measured time; the deadline cuts off what a slower machine still overruns."""
    def left() -> float:
        return max(until - time.perf_counter(), 1.0)

    result = trainer.run(checkpoint, until_epoch=1, time_budget=left())
    if result.stopped != "finished" or trainer.epoch == trainer.config.epochs:
        return result
    if trainer.config.schedule == "onecycle":  # the plateau schedule follows validation, not the epochs
        replanned = replan(recipe, trainer.config, trainer.history[-1].seconds, until - time.perf_counter(),
                           trainer.steps_per_epoch)
        if replanned != trainer.config and replanned.epochs > trainer.epoch:  # one only: the deadline cuts the plan
            print(f"planned again from the first epoch's {trainer.history[-1].seconds:.1f} s: "
                  f"{counted_epochs(replanned.epochs)}, EMA decay {replanned.ema_decay:g}", flush=True)
            trainer.reschedule(replanned)
    return trainer.run(checkpoint, time_budget=left())


def stop_as_ctrl_c(signum, frame) -> None:
    raise KeyboardInterrupt  # `kill`, a closed terminal's session, a scheduler's stop: handled as Ctrl-C is


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, stop_as_ctrl_c)
    args = parse_args(argv)
    checkpoint = args.out / "checkpoint.pt"
    made = new_folders(args.out)
    try:
        repo_id = resolve_repo_id(args.repo_id, hub_username(), args.variant or "modern") if args.push else None
        prepare_out(args.out, args.resume, args.overwrite)
        device = resolve_device(args.device)
        state = load_checkpoint(checkpoint, device) if args.resume else None
        if state and is_finished(state) and all(os.path.isfile(args.out / name) for name in ("model.safetensors", *RUN_FILES)):
            publish_it = f"; publish it with: {push_command(args.out, repo_id, args.private)}" if repo_id else ""
            raise ValueError(f"nothing to resume: the run in {args.out} is finished and saved there{publish_it}")
        config = from_saved(state["config"]) if state else config_from_args(args, device)
        budgeted = args.time_budget is not None and not state
        if budgeted:
            config = config.but(pieces=plan_pieces(config, args.time_budget))
        data = load_mnist(args.data_dir, config.val_size, device)
        if config.pieces and not (state and state.get("pieces")):
            print(f"writing {config.pieces:,} numbers with the training digits and cutting them into pieces", flush=True)
        if state:
            trainer = Trainer.from_state(state, data, device)
            print(f"resuming {checkpoint} after epoch {trainer.epoch} of {config.epochs}")
            for stats in trainer.history:
                print(format_epoch(stats, config.epochs))
        else:  # cut on every core the training uses where that is sooner: the same pieces either way
            workers = workers_for(config.pieces, torch.get_num_threads())
            pieces = number_pieces(data.train, config.pieces, config.seed, workers=workers) if config.pieces else None
            recipe_config = config
            if budgeted:
                config = planned(config, args.time_budget, data, device, len(pieces.labels) if pieces else 0,
                                 optimizer_free=not optimizer_chosen(args))
            trainer = Trainer(config, data, device, pieces)
        cut = (f" and {len(trainer.train_split) - len(data.train):,} pieces of {config.pieces:,} numbers written with "
               "them" if config.pieces else "")
        print(f"training LeNet-5 ({config.variant}) on {len(data.train):,} MNIST digits{cut}, device {device}")
        if budgeted:
            result = train_within(trainer, checkpoint, recipe_config, STARTED + args.time_budget - FINISH_SECONDS)
        else:
            result = trainer.run(checkpoint, time_budget=args.time_budget)
        config = result.config
        test = evaluate(result.model, data.test)
        metrics = build_metrics(result, test, device, len(data.train), len(data.val), command(config))
        written = save_run(args.out, result, data.test, test, metrics)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        remove_empty(made)  # a run that failed before writing anything leaves no empty --out behind
        return 2
    except KeyboardInterrupt:
        if checkpoint.is_file():
            print(f"\ninterrupted; finished epochs are saved, and this finishes the run: "
                  f"python train.py --resume --out {shlex.quote(str(args.out))}", file=sys.stderr)
        else:
            print("\ninterrupted before the first epoch finished; nothing was saved, so start again: "
                  f"{shlex.join(['python', 'train.py', *argv])}", file=sys.stderr)
            remove_empty(made)
        return 130
    print(f"test accuracy {test.accuracy:.2%} ({test.errors} errors of {len(test.labels):,}), "
          f"{metrics['params']:,} parameters, {result.seconds:.1f} s of training on {device}")
    print(f"saved to {args.out}/: " + ", ".join(path.name for path in written))
    return push(args.out, repo_id, args.private) if repo_id else 0


def push_command(out: Path, repo_id: str, private: bool) -> str:
    return shlex.join(["python", "-m", "lenet5", "push", str(out), "--repo-id", repo_id, *(["--private"] * private)])


def push(out: Path, repo_id: str, private: bool) -> int:
    """Publish a saved run; on failure keep everything and say how to publish it without retraining."""
    retry = push_command(out, repo_id, private)
    try:
        url = publish(out, repo_id, private=private)
    except (ValueError, KeyboardInterrupt) as error:
        reason = "interrupted" if isinstance(error, KeyboardInterrupt) else f"publishing failed: {error}"
        print(f"error: {reason}\nthe trained model is saved in {out}/; publish it without retraining:\n  {retry}",
              file=sys.stderr)
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
