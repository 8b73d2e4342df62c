"""train.py and `python -m lenet5` as a user runs them: in a subprocess, from the repository root."""

import json
import subprocess
import sys

import torch
from huggingface_hub import ModelCard

from lenet5 import LeNet5
from lenet5.training import evaluate

from conftest import REPO

ARTIFACTS = {"model.safetensors", "config.json", "README.md", "metrics.json", "checkpoint.pt",
             "training_curves.png", "confusion_matrix.png", "misclassified.png"}


def run(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_one_epoch_gives_a_real_classifier_and_every_artifact(tmp_path, data_dir, mnist_test):
    out = tmp_path / "run"
    result = run("train.py", "--epochs", "1", "--data-dir", str(data_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == ARTIFACTS
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97 and metrics["epochs"] == 1
    assert metrics["params"] == 61_728 and len(metrics["per_class_accuracy"]) == 10
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


def test_user_mistakes_get_one_line_errors(tmp_path):
    missing = run("train.py", "--resume", "--out", str(tmp_path))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: cannot resume: there is no checkpoint at {tmp_path / 'checkpoint.pt'}"
    bad = run("train.py", "--epochs", "0", "--data-dir", str(tmp_path), "--out", str(tmp_path))
    assert bad.returncode == 2 and "epochs must be at least 1" in bad.stderr and "Traceback" not in bad.stderr
    if not torch.cuda.is_available():
        no_gpu = run("train.py", "--device", "cuda", "--out", str(tmp_path))
        assert no_gpu.returncode == 2 and "sees no CUDA GPU" in no_gpu.stderr


def test_each_variant_trains_with_its_own_recipe_and_flags_win():
    import train

    paper = train.config_from_args(train.parse_args(["--variant", "lecun1998"]))
    assert (paper.optimizer, paper.lr, paper.label_smoothing, paper.epochs) == ("adam", 3e-3, 0.0, 30)
    fast = train.config_from_args(train.parse_args(["--fast", "--epochs", "3"]))
    assert (fast.epochs, fast.val_size, fast.augment, fast.ema_decay) == (3, 0, False, 0.0)
    tuned = train.config_from_args(train.parse_args(["--schedule", "plateau", "--patience", "4", "--optimizer", "adam"]))
    assert (tuned.schedule, tuned.patience, tuned.optimizer, tuned.lr) == ("plateau", 4, "adam", 0.1)


def test_the_papers_network_trains_from_the_command_line(tmp_path, data_dir):
    out = tmp_path / "paper"
    result = run("train.py", "--variant", "lecun1998", "--epochs", "1", "--val-size", "50000", "--no-augment",
                 "--data-dir", str(data_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["variant"] == "lecun1998" and metrics["params"] == 60_000 and metrics["test_accuracy"] > 0.8
    assert "MAP criterion" in metrics["recipe"] and "lecun1998" in (out / "README.md").read_text()
    assert LeNet5.from_pretrained(out).variant == "lecun1998"
    smoothing = run("train.py", "--variant", "lecun1998", "--label-smoothing", "0.1", "--out", str(tmp_path))
    assert smoothing.returncode == 2 and "MAP criterion" in smoothing.stderr and "Traceback" not in smoothing.stderr


def test_summary_command_prints_the_layers():
    result = run("-m", "lenet5", "summary")
    assert result.returncode == 0, result.stderr
    for layer in ("c1.conv", "c3.conv", "c5", "f6", "head"):
        assert layer in result.stdout
    assert result.stdout.split()[-2:] == ["61,728", "416,520"]  # parameters, multiply-adds per image
    paper = run("-m", "lenet5", "summary", "--variant", "lecun1998")
    assert "TableConv" in paper.stdout and paper.stdout.split()[-2:] == ["60,000", "328,096"]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if "pytest" in line)
    assert command in readme
