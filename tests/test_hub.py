"""Publishing and loading through the real huggingface_hub client, against the local Hub (see conftest.py)."""

import json
import os
import shlex
import subprocess
import sys

import pytest
import timm
import torch
from huggingface_hub import HfApi, ModelCard
from safetensors.torch import load_file, save_file

from lenet5 import LeNet5, load_model

from conftest import REPO

PUBLISHED = {"model.safetensors", "config.json", "README.md", "metrics.json",
             "training_curves.png", "confusion_matrix.png", "misclassified.png"}


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_train_push_then_load_with_the_mixin_and_timm(hub, tmp_path, data_dir):
    out = tmp_path / "run"
    result = run("train.py", "--epochs", "1", "--data-dir", str(data_dir), "--out", str(out),
                 "--push", "--repo-id", "tester/lenet5-mnist")
    assert result.returncode == 0, result.stderr
    assert f"published to {hub.url}/tester/lenet5-mnist" in result.stdout
    assert set(hub.files("tester/lenet5-mnist")) == PUBLISHED  # no checkpoint, no staging files

    local = LeNet5.from_pretrained(out)
    from_hub = LeNet5.from_pretrained("tester/lenet5-mnist")
    from_timm = timm.create_model("hf-hub:tester/lenet5-mnist", pretrained=True).eval()
    x = torch.rand(16, 1, 28, 28)
    assert torch.equal(from_hub(x), local(x))
    assert torch.equal(from_timm(x), local(x))

    metrics = json.loads(hub.files("tester/lenet5-mnist")["metrics.json"])
    card = ModelCard(hub.files("tester/lenet5-mnist")["README.md"].decode())
    assert card.data.eval_results[0].metric_type == "accuracy"
    assert card.data.eval_results[0].metric_value == round(metrics["test_accuracy"], 4) >= 0.97
    assert {"mnist", "image-classification"} <= set(card.data.tags) and card.data.library_name == "lenet5"
    assert 'LeNet5.from_pretrained("tester/lenet5-mnist")' in card.text
    assert 'timm.create_model("hf-hub:tester/lenet5-mnist", pretrained=True)' in card.text
    assert "--push" not in metrics["command"]  # the card's reproduce command trains, it does not publish


def test_default_repo_is_the_users_lenet5_mnist(hub, tmp_path):
    LeNet5().save_pretrained(tmp_path)
    result = run("-m", "lenet5", "push", str(tmp_path), "--private")
    assert result.returncode == 0, result.stderr
    assert "tester/lenet5-mnist" in result.stdout
    assert hub.repos["tester/lenet5-mnist"].private
    assert {"model.safetensors", "config.json", "README.md"} <= set(hub.files("tester/lenet5-mnist"))


@pytest.mark.parametrize(
    "env, message",
    [({"HF_TOKEN": "hf_wrong"}, "token was rejected"), ({"HF_TOKEN": ""}, "no Hugging Face token found")],
    ids=["rejected token", "no token"],
)
def test_a_bad_login_fails_before_training(hub, tmp_path, env, message):
    out = tmp_path / "run"
    result = run("train.py", "--push", "--out", str(out), env=env)
    assert result.returncode == 2
    assert message in result.stderr and "hf auth login" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert "epoch" not in result.stdout and not out.exists()  # nothing trained


def test_an_invalid_repo_id_fails_before_training(hub, tmp_path):
    result = run("train.py", "--push", "--repo-id", "not a repo", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "not a valid Hub repo id" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_push_that_breaks_off_keeps_the_run_and_says_how_to_retry(hub, tmp_path, data_dir):
    out = tmp_path / "run"
    hub.fail_commits = True
    result = run("train.py", "--epochs", "1", "--data-dir", str(data_dir), "--out", str(out),
                 "--push", "--repo-id", "tester/digits")
    assert result.returncode == 1
    assert "publishing failed" in result.stderr and "Traceback" not in result.stderr
    assert {"model.safetensors", "config.json", "README.md", "metrics.json", "checkpoint.pt"} <= {
        p.name for p in out.iterdir()}
    assert hub.files("tester/digits") == {}

    retry = result.stderr.strip().splitlines()[-1].strip()
    assert retry == shlex.join(["python", "-m", "lenet5", "push", str(out), "--repo-id", "tester/digits"])
    hub.fail_commits = False
    again = run(*shlex.split(retry)[1:])
    assert again.returncode == 0, again.stderr
    assert set(hub.files("tester/digits")) == PUBLISHED
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(LeNet5.from_pretrained("tester/digits")(x), LeNet5.from_pretrained(out)(x))


def test_mixin_push_to_hub_and_revisions(hub):
    torch.manual_seed(0)
    first, second = LeNet5().eval(), LeNet5().eval()
    first_commit = first.push_to_hub("tester/revisions").oid
    second.push_to_hub("tester/revisions")
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(LeNet5.from_pretrained("tester/revisions")(x), second(x))
    assert torch.equal(LeNet5.from_pretrained("tester/revisions", revision=first_commit)(x), first(x))
    assert torch.equal(load_model("tester/revisions", revision=first_commit)(x), first(x))
    card = ModelCard(hub.files("tester/revisions")["README.md"].decode())
    assert 'LeNet5.from_pretrained("tester/revisions")' in card.text and card.data.library_name == "lenet5"


def test_a_renamed_key_on_the_hub_fails_to_load(hub, tmp_path):
    LeNet5().save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights["features.c5.kernel"] = weights.pop("features.c5.weight")
    save_file(weights, tmp_path / "model.safetensors")
    HfApi().create_repo("tester/broken")
    HfApi().upload_folder(repo_id="tester/broken", folder_path=tmp_path)
    with pytest.raises(ValueError, match="do not fit LeNet5.*c5.weight"):
        LeNet5.from_pretrained("tester/broken")
    with pytest.raises(ValueError, match="do not fit LeNet5"):
        load_model("tester/broken")


def test_missing_repo_gives_a_clear_error(hub):
    with pytest.raises(ValueError, match="cannot load tester/nothing-here from the Hugging Face Hub"):
        load_model("tester/nothing-here")
