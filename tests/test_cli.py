"""train.py and `python -m lenet5` as a user runs them: in a subprocess, from the repository root."""

import dataclasses
import json
import os
import signal
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch
from huggingface_hub import ModelCard

from lenet5 import LeNet5
from lenet5.training import evaluate

from conftest import REPO

CPU = torch.device("cpu")

ARTIFACTS = {"model.safetensors", "config.json", "README.md", "metrics.json", "checkpoint.pt",
             "training_curves.png", "confusion_matrix.png", "misclassified.png"}


def run(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_one_epoch_gives_a_real_classifier_and_every_artifact(tmp_path, data_dir, mnist_test):
    out = tmp_path / "run"
    # The recipe's pieces of numbers too, fewer of them: 300 numbers cut into about 3,000 candidate digits.
    result = run("train.py", "--epochs", "1", "--pieces", "300", "--data-dir", str(data_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("writing 300 numbers with the training digits and cutting them into pieces\n")
    assert "on 55,000 MNIST digits and " in result.stdout and " pieces of 300 numbers written with them" in result.stdout
    assert {p.name for p in out.iterdir()} == ARTIFACTS
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.9 and metrics["epochs"] == 1  # the 30-epoch recipe cut to one: 92-93%
    assert metrics["params"] == 61_706 and len(metrics["per_class_accuracy"]) == 10
    assert "the candidate digits of 300 numbers" in metrics["recipe"] and metrics["command"].endswith("--pieces 300")
    # The saved weights are the ones measured, and the card carries that figure.
    model = LeNet5.from_pretrained(out)
    assert evaluate(model, mnist_test).accuracy == metrics["test_accuracy"]
    card = ModelCard.load(out / "README.md")
    assert card.data.eval_results[0].metric_value == round(metrics["test_accuracy"], 4)
    assert f"{metrics['test_accuracy']:.2%}" in card.text
    assert f'LeNet5.from_pretrained("{out}")' in card.text  # the card says how to load this very folder
    assert "test accuracy" in result.stdout and str(out) in result.stdout

    again = run("train.py", "--resume", "--out", str(out))
    assert again.returncode == 2
    assert "nothing to resume" in again.stderr and "Traceback" not in again.stderr
    modes = {(out / name).stat().st_mode & 0o777 for name in ARTIFACTS - {"checkpoint.pt"}}
    assert len(modes) == 1  # every file of the run shares one mode (safetensors alone used to write 0600)


QUICK = ("--epochs", "1", "--val-size", "50000", "--batch-size", "512", "--no-augment", "--pieces", "0")  # 10,000 digits, seconds


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_dir):
    """A finished QUICK run (seed 3), trained once for the tests that start from one: each takes a copy."""
    out = tmp_path_factory.mktemp("finished") / "run"
    first = run("train.py", *QUICK, "--seed", "3", "--data-dir", str(data_dir), "--out", str(out))
    assert first.returncode == 0, first.stderr
    return out


def copy_of(run_folder, tmp_path):
    return shutil.copytree(run_folder, tmp_path / "run")


@pytest.mark.slow
def test_a_run_stopped_after_its_last_epoch_is_finished_by_resume(tmp_path, data_dir, finished_run):
    # kill -9 after the last checkpoint, during the saving: the checkpoint and a half-filled staging folder.
    out = copy_of(finished_run, tmp_path)
    for path in out.iterdir():
        if path.name != "checkpoint.pt":
            path.unlink()
    (out / ".saving-killed").mkdir()
    (out / ".saving-killed" / "model.safetensors").write_bytes(b"half")
    finished = run("train.py", "--resume", "--out", str(out), "--data-dir", str(data_dir))
    assert finished.returncode == 0, finished.stderr
    assert {p.name for p in out.iterdir()} == ARTIFACTS  # nothing half-written left over
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["config"]["seed"] == 3
    # The card's command is the run's own recipe, written from its config: not `--resume`, never a push.
    assert metrics["command"] == "python train.py --epochs 1 --batch-size 512 --no-augment --val-size 50000 --seed 3 --pieces 0"


@pytest.mark.slow
def test_a_folder_holding_a_run_is_never_overwritten_unasked(tmp_path, data_dir, finished_run):
    out = copy_of(finished_run, tmp_path)
    before = (out / "checkpoint.pt").read_bytes()
    again = run("train.py", *QUICK, "--data-dir", str(data_dir), "--out", str(out))
    assert again.returncode == 2 and "already holds a run" in again.stderr and "--overwrite" in again.stderr
    assert (out / "checkpoint.pt").read_bytes() == before
    fresh = run("train.py", *QUICK, "--seed", "1", "--overwrite", "--data-dir", str(data_dir), "--out", str(out))
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads((out / "metrics.json").read_text())["config"]["seed"] == 1


@pytest.mark.slow
def test_where_the_run_writes_is_checked_before_training(tmp_path):
    (tmp_path / "a-file").write_text("")
    blocked = run("train.py", "--out", str(tmp_path / "a-file" / "run"))
    assert blocked.returncode == 2 and "Traceback" not in blocked.stderr
    assert blocked.stderr.startswith(f"error: cannot write to {tmp_path / 'a-file' / 'run'}")
    assert "training LeNet-5" not in blocked.stdout


@pytest.mark.slow
def test_publishing_flags_without_push_and_abbreviations_are_refused(tmp_path):
    for args in (["--repo-id", "me/x"], ["--private"]):
        refused = run("train.py", *args, "--out", str(tmp_path))
        assert refused.returncode == 2 and "only take effect with --push" in refused.stderr
    abbreviated = run("train.py", "--pu", "--repo", "me/x", "--out", str(tmp_path))
    assert abbreviated.returncode == 2 and "unrecognized arguments: --pu --repo me/x" in abbreviated.stderr


@pytest.mark.slow
def test_train_py_starts_without_the_heavy_libraries():
    # timm, torchvision and matplotlib cost seconds of start-up; they load when a run uses them, so a
    # mistyped flag is answered at once (and this suite's many train.py subprocesses stay quick).
    probe = "import sys, train; print(*sorted({'timm', 'torchvision', 'matplotlib'} & sys.modules.keys()))"
    result = run("-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_offline_without_mnist_says_how_to_point_at_a_copy(tmp_path):
    import lenet5.data

    with pytest.raises(ValueError, match="offline, point LENET5_DATA or --data-dir at a folder"):
        lenet5.data.read_mnist(tmp_path, download=False)


def test_a_failed_download_leaves_no_empty_folders_behind(tmp_path, monkeypatch):
    import lenet5.data
    from torchvision.datasets import MNIST

    # A closed port on this machine stands in for an unreachable mirror: refused at once, nothing leaves it.
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    mistyped = tmp_path / "dta"
    with pytest.raises(ValueError, match="could not be downloaded"):
        lenet5.data.read_mnist(mistyped)
    assert not mistyped.exists()  # torchvision had made dta/MNIST/raw/ before it tried
    (tmp_path / "data").mkdir()
    with pytest.raises(ValueError, match="could not be downloaded"):
        lenet5.data.read_mnist(tmp_path / "data")
    assert list(tmp_path.iterdir()) == [tmp_path / "data"] and not any((tmp_path / "data").iterdir())


@pytest.mark.slow
def test_every_recipe_field_is_a_flag_with_its_help():
    import train
    from lenet5.recipes import FLAG_FIELDS, TrainConfig

    help_text = " ".join(run("train.py", "--help").stdout.split())
    assert {f.name for f in dataclasses.fields(TrainConfig)} - {f.name for f in FLAG_FIELDS} == {"preset"}
    for recipe_field in FLAG_FIELDS:
        name = ("--no-" if recipe_field.type is bool else "--") + recipe_field.name.replace("_", "-")
        assert name in help_text and " ".join(recipe_field.metadata["help"].split()[:4]) in help_text
    assert "(default: modern/lecun1998: 30; fast: 1; fast-cuda: 2)" in help_text  # each preset's own value
    config = train.config_from_args(train.parse_args(["--variant", "lecun1998", "--epochs", "3", "--no-augment"]), CPU)
    assert train.command(config) == "python train.py --variant lecun1998 --epochs 3 --no-augment"
    config = train.config_from_args(train.parse_args(["--pieces", "0", "--no-stroke-width"]), CPU)
    assert not config.stroke_width and train.command(config) == "python train.py --no-stroke-width --pieces 0"


@pytest.mark.slow
def test_a_folder_name_too_long_to_look_up_gets_a_one_line_error(tmp_path, data_dir):
    # pathlib's exists() and is_dir() raise OSError on such a name (os.path's answer False): it was a traceback
    too_long = str(tmp_path / ("a" * 5000))
    for args in (["--out", too_long], ["--data-dir", too_long, "--out", str(tmp_path / "run")]):
        result = run("train.py", "--epochs", "1", *args)
        assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr, args
    assert not (tmp_path / "run").exists()  # and no empty --out is left behind


@pytest.mark.slow
def test_a_time_budget_plans_the_recipe_and_saves_a_plain_one(tmp_path, data_dir):
    # 10,000 digits: the 30-epoch recipe does not fit in 20 s here, so fewer epochs are planned, whole.
    out = tmp_path / "run"
    result = run("train.py", "--time-budget", "20", "--val-size", "50000", "--no-augment", "--pieces", "0",
                 "--data-dir", str(data_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert re.search(r"planned for 20 s: \d+ epochs? at [\d.]+ ms a step", result.stdout), result.stdout
    # and again from the first epoch's time, where that moves the epochs that fit
    epochs = re.findall(r"(?:planned for 20 s|planned again from the first epoch's [\d.]+ s): (\d+) epochs?", result.stdout)[-1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["epochs"] == int(epochs) < 30 and metrics["test_accuracy"] > 0.9
    assert f"--epochs {epochs}" in metrics["command"]  # the plan is a recipe train.py trains again
    import train

    assert not train.optimizer_chosen(train.parse_args(["--time-budget", "20", "--epochs", "3"]))  # Muon may come in
    for chosen in (["--optimizer", "sgd"], ["--lr", "0.05"]):
        assert train.optimizer_chosen(train.parse_args(["--time-budget", "20", *chosen]))  # and it stays as chosen
    for bad in ("0", "-5", "nan"):
        refused = run("train.py", "--time-budget", bad, "--out", str(tmp_path / "no"))
        assert refused.returncode == 2 and "--time-budget must be a positive number of seconds" in refused.stderr
    endless = run("train.py", "--time-budget", "inf", "--out", str(tmp_path / "no"))
    assert endless.returncode == 2 and "--time-budget must be a finite number of seconds" in endless.stderr


def test_a_budget_is_planned_again_after_the_first_epoch_but_a_plateau_schedule_is_not(tmp_path, mnist):
    import train
    from lenet5.data import MNISTData
    from lenet5.recipes import MODERN
    from lenet5.training import Trainer

    data = MNISTData(train=mnist.train.head(1_024), val=mnist.val.head(256), test=mnist.test.head(256))
    recipe = MODERN.but(epochs=4, batch_size=128, pieces=0, augment=False, stroke_width=True)
    first_plan = recipe.but(epochs=2, ema_decay=0.98)  # a probe that judged the step too slow
    roomy = time.perf_counter() + 600
    result = train.train_within(Trainer(first_plan, data, CPU), tmp_path / "a.pt", recipe, roomy)
    assert result.config == recipe and len(result.history) == 4  # room for the whole recipe: all of it, its average
    plateau = recipe.but(schedule="plateau")
    result = train.train_within(Trainer(plateau.but(epochs=2), data, CPU), tmp_path / "b.pt", plateau, roomy)
    assert result.config == plateau.but(epochs=2) and len(result.history) == 2  # nothing to redraw: as planned


@pytest.mark.slow
def test_user_mistakes_get_one_line_errors(tmp_path):
    missing = run("train.py", "--resume", "--out", str(tmp_path))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: cannot resume: there is no checkpoint at {tmp_path / 'checkpoint.pt'}"
    bad = run("train.py", "--epochs", "0", "--data-dir", str(tmp_path), "--out", str(tmp_path))
    assert bad.returncode == 2 and "epochs must be at least 1" in bad.stderr and "Traceback" not in bad.stderr
    if not torch.cuda.is_available():
        no_gpu = run("train.py", "--device", "cuda", "--out", str(tmp_path))
        assert no_gpu.returncode == 2 and "sees no CUDA GPU" in no_gpu.stderr


@pytest.mark.parametrize("variant", ["modern", "lecun1998"])
@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_every_variant_and_fast_pair_has_a_recipe_or_one_sentence(variant, fast, device):
    import train

    args = train.parse_args(["--variant", variant, *(["--fast"] * fast)])
    if variant == "lecun1998" and fast:
        with pytest.raises(ValueError, match=r"^--fast is the modern LeNet-5's quickest recipe and lecun1998 has none: "
                                             r"train it with --variant lecun1998, and fewer --epochs for a quick run$"):
            train.config_from_args(args, torch.device(device))
        return
    config = train.config_from_args(args, torch.device(device))  # a device is not needed to choose its recipe
    expected = {(False, "cpu"): variant, (False, "cuda"): variant, (True, "cpu"): "fast", (True, "cuda"): "fast-cuda"}
    assert config.preset == expected[fast, device] and config.variant == variant


def test_each_variant_trains_with_its_own_recipe_and_flags_win():
    import train

    paper = train.config_from_args(train.parse_args(["--variant", "lecun1998"]), CPU)
    assert (paper.optimizer, paper.lr, paper.label_smoothing, paper.epochs, paper.pieces) == ("adam", 3e-3, 0.0, 30, 8000)
    fast = train.config_from_args(train.parse_args(["--fast", "--epochs", "3"]), CPU)
    assert (fast.epochs, fast.optimizer, fast.val_size, fast.augment, fast.ema_decay, fast.pieces) == (3, "muon", 0, False, 0.0, 0)
    assert (fast.batch_size, fast.lr) == (384, 2.5e-2)
    on_gpu = train.config_from_args(train.parse_args(["--fast"]), torch.device("cuda"))
    assert (on_gpu.epochs, on_gpu.batch_size, on_gpu.lr, on_gpu.optimizer, on_gpu.val_size) == (2, 1024, 3e-2, "muon", 0)
    augmented = train.config_from_args(train.parse_args(["--fast", "--augment"]), CPU)
    assert augmented.augment and train.command(augmented) == "python train.py --fast --augment"
    tuned = train.config_from_args(train.parse_args(["--schedule", "plateau", "--patience", "4", "--optimizer", "adam"]), CPU)
    assert (tuned.schedule, tuned.patience, tuned.optimizer, tuned.lr) == ("plateau", 4, "adam", 0.1)


@pytest.mark.slow
def test_fast_with_the_papers_network_is_refused_in_one_line(tmp_path):
    refused = run("train.py", "--fast", "--variant", "lecun1998", "--out", str(tmp_path / "run"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("error: --fast is the modern LeNet-5's quickest recipe and lecun1998 has none")
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_papers_network_trains_from_the_command_line(tmp_path, data_dir):
    out = tmp_path / "paper"
    result = run("train.py", "--variant", "lecun1998", "--epochs", "1", "--val-size", "50000", "--no-augment",
                 "--pieces", "0", "--data-dir", str(data_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["variant"] == "lecun1998" and metrics["params"] == 60_000 and metrics["test_accuracy"] > 0.8
    assert "MAP criterion" in metrics["recipe"] and "lecun1998" in (out / "README.md").read_text()
    assert LeNet5.from_pretrained(out).variant == "lecun1998"
    smoothing = run("train.py", "--variant", "lecun1998", "--label-smoothing", "0.1", "--out", str(tmp_path))
    assert smoothing.returncode == 2 and "MAP criterion" in smoothing.stderr and "Traceback" not in smoothing.stderr


def test_summary_command_prints_the_layers(capsys):
    from lenet5.__main__ import main  # what `python -m lenet5 summary` runs, in this process

    assert main(["summary"]) == 0
    modern = capsys.readouterr().out
    for layer in ("c1", "c3", "c5", "f6", "head"):
        assert layer in modern
    assert modern.split()[-2:] == ["61,706", "416,520"]  # parameters, multiply-adds per image
    assert main(["summary", "--variant", "lecun1998"]) == 0
    paper = capsys.readouterr().out
    assert paper.startswith("LeNet5(variant='lecun1998')") and paper.split()[-2:] == ["60,000", "328,096"]
    assert "TableConv" in paper and "EuclideanRBF" in paper  # the paper's own layers, each named


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if "pytest" in line)
    assert command in readme


@pytest.mark.slow
def test_ctrl_c_during_a_run_says_how_to_finish_it_and_that_command_does(tmp_path, data_dir):
    out = tmp_path / "run"
    command = [sys.executable, "train.py", "--epochs", "2", "--val-size", "50000", "--batch-size", "512",
               "--no-augment", "--pieces", "50", "--data-dir", str(data_dir), "--out", str(out)]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as train:
        for line in train.stdout:  # interrupt as soon as the first epoch is checkpointed
            if line.startswith("epoch   1/2"):
                train.send_signal(signal.SIGINT)
                break
        _, stderr = train.communicate(timeout=120)
    assert train.returncode == 130 and "Traceback" not in stderr, stderr
    finish = stderr.strip().splitlines()[-1].split(": ", 1)[1]
    assert finish == f"python train.py --resume --out {out}"
    resumed = run(*finish.split()[1:], "--data-dir", str(data_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert {p.name for p in out.iterdir()} == ARTIFACTS and json.loads((out / "metrics.json").read_text())["epochs"] == 2
    # The run goes on with the pieces its checkpoint kept: the numbers are not cut again.
    assert "cutting them into pieces" not in resumed.stdout and " pieces of 50 numbers written with them" in resumed.stdout


@pytest.mark.slow
def test_ctrl_c_before_the_first_epoch_says_to_start_again(tmp_path, data_dir):
    out = tmp_path / "run"
    command = ["train.py", "--epochs", "1", "--pieces", "0", "--data-dir", str(data_dir), "--out", str(out)]
    with subprocess.Popen([sys.executable, *command], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as train:
        for line in train.stdout:
            if line.startswith("training LeNet-5"):
                train.send_signal(signal.SIGINT)
                break
        _, stderr = train.communicate(timeout=120)
    assert train.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().endswith(f"nothing was saved, so start again: python {' '.join(command)}")
    assert not out.exists()  # the folder made for the run is empty: it goes too


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0, 5], ids=["as the workers start", "while they cut"])
def test_ctrl_c_while_the_numbers_are_cut_in_several_processes_is_one_clean_line(tmp_path, data_dir, delay):
    out = tmp_path / "run"
    command = [sys.executable, "train.py", "--pieces", "4000", "--data-dir", str(data_dir), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # two threads: the numbers are cut in two processes
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as train:
        assert train.stdout.readline().startswith("writing 4,000 numbers")
        time.sleep(delay)  # 0: while the pool of workers starts; 5: the workers have started and are cutting
        os.killpg(train.pid, signal.SIGINT)  # as Ctrl-C in a terminal does: to the workers as well
        try:
            _, stderr = train.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(train.pid, signal.SIGKILL)
            pytest.fail("train.py went on after Ctrl-C")
    assert train.returncode == 130 and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "nothing was saved, so start again" in stderr and not out.exists()


@pytest.mark.slow
def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path, data_dir):
    out = tmp_path / "runs" / "first"
    failed = run("train.py", "--val-size", "59990", "--batch-size", "512", "--pieces", "0", "--data-dir", str(data_dir),
                 "--out", str(out))
    assert failed.returncode == 2 and "batch_size 512 is larger than the 10 training images" in failed.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_stop_signal_during_a_run_is_answered_as_ctrl_c_is(tmp_path, data_dir):
    # SIGTERM (kill, a scheduler's stop) ended the run without a word: it now says how to finish it.
    out = tmp_path / "run"
    command = [sys.executable, "train.py", *QUICK[:1], "3", *QUICK[2:], "--data-dir", str(data_dir), "--out", str(out)]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as train:
        for line in train.stdout:
            if line.startswith("epoch   1/3"):
                train.terminate()
                break
        _, stderr = train.communicate(timeout=120)
    assert train.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().endswith(f"this finishes the run: python train.py --resume --out {out}")


@pytest.mark.slow
def test_a_disk_that_fills_while_the_finished_run_is_saved_keeps_the_run_in_one_sentence(tmp_path, data_dir, finished_run):
    # The saving of a finished run (weights first) under a file-size limit, as a full disk refuses writes:
    # safetensors' SafetensorError ended in a traceback. The checkpoint stays, and --resume saves it later.
    import resource

    out = copy_of(finished_run, tmp_path)
    for name in ARTIFACTS - {"checkpoint.pt"}:
        (out / name).unlink()

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # model.safetensors is 247 kB

    full = subprocess.run([sys.executable, "train.py", "--resume", "--out", str(out), "--data-dir", str(data_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=240, preexec_fn=small_disk)
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr
    assert full.stderr.startswith(f"error: cannot save the run in {out}") and "its checkpoint is kept" in full.stderr
    assert {p.name for p in out.iterdir()} == {"checkpoint.pt"}  # nothing half-written
    saved = run("train.py", "--resume", "--out", str(out), "--data-dir", str(data_dir))
    assert saved.returncode == 0 and {p.name for p in out.iterdir()} == ARTIFACTS
