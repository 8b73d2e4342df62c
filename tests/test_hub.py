"""Publishing and loading through the real huggingface_hub client, against the local Hub (see conftest.py)."""

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid

import pytest
import timm
import torch
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, constants
from huggingface_hub.utils import set_client_factory
from safetensors.torch import load_file, save_file

from lenet5 import LeNet5, load_model
from lenet5 import hub as lenet5_hub
from lenet5.hub import HubError, hub_username, publish

from conftest import REPO

PUBLISHED = {"model.safetensors", "config.json", "README.md", "metrics.json",
             "training_curves.png", "confusion_matrix.png", "misclassified.png"}


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_train_push_then_load_with_the_mixin_and_timm(hub, tmp_path, data_dir):
    out = tmp_path / "run"
    result = run("train.py", "--epochs", "1", "--pieces", "0", "--data-dir", str(data_dir), "--out", str(out),
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
    assert card.data.eval_results[0].metric_value == round(metrics["test_accuracy"], 4) >= 0.9
    assert {"mnist", "image-classification"} <= set(card.data.tags) and card.data.library_name == "lenet5"
    assert 'LeNet5.from_pretrained("tester/lenet5-mnist")' in card.text
    assert 'timm.create_model("hf-hub:tester/lenet5-mnist", pretrained=True)' in card.text
    assert "--push" not in metrics["command"]  # the card's reproduce command trains, it does not publish


@pytest.mark.slow
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
@pytest.mark.slow
def test_a_bad_login_fails_before_training(hub, tmp_path, env, message):
    out = tmp_path / "run"
    result = run("train.py", "--push", "--out", str(out), env=env)
    assert result.returncode == 2
    assert message in result.stderr and "hf auth login" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert "epoch" not in result.stdout and not out.exists()  # nothing trained


@pytest.mark.slow
def test_an_invalid_repo_id_fails_before_training(hub, tmp_path):
    result = run("train.py", "--push", "--repo-id", "not a repo", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "not a valid Hub repo id" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_push_that_breaks_off_keeps_the_run_and_says_how_to_retry(hub, tmp_path, data_dir):
    out = tmp_path / "run"
    hub.fail_commits = True
    result = run("train.py", "--epochs", "1", "--pieces", "0", "--data-dir", str(data_dir), "--out", str(out),
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
    with pytest.raises(ValueError, match=r"^there is no model tester/nothing-here on the Hub at http\S+, or it is"):
        load_model("tester/nothing-here")


def upload(repo_id: str, files: dict[str, bytes]) -> str:
    """A new repo holding these files (a new name each time: the download cache keys on the commit id)."""
    repo_id = f"{repo_id}-{uuid.uuid4().hex[:8]}"
    HfApi().create_repo(repo_id)
    HfApi().create_commit(repo_id, [CommitOperationAdd(name, data) for name, data in files.items()], commit_message="up")
    return repo_id


def good_files(tmp_path) -> dict[str, bytes]:
    LeNet5().save_pretrained(tmp_path / "good")
    return {name: (tmp_path / "good" / name).read_bytes() for name in ("config.json", "model.safetensors")}


@pytest.mark.parametrize("change, reason", [
    ({"num_classes": "ten"}, "num_classes must be a whole number"),
    ({"num_classes": 10.5}, "num_classes must be a whole number"),
    ({"num_classes": [10]}, "num_classes must be a whole number"),
    ({"num_classes": 10**9}, "num_classes must be a whole number from 0 to 100,000"),  # refused before 336 GB
    ({"in_chans": 10**9}, "in_chans must be a whole number"),
    ({"variant": {"a": 1}}, "unknown LeNet5 variant"),
    ({"drop_rate": "high"}, "does not describe a LeNet5"),
])
def test_every_bad_config_value_is_one_value_error(hub, tmp_path, change, reason):
    files = good_files(tmp_path)
    config = {**json.loads(files["config.json"]), **change}
    repo_id = upload("tester/bad-config", {**files, "config.json": json.dumps(config).encode()})
    with pytest.raises(ValueError, match=reason) as caught:
        load_model(repo_id)
    assert "\n" not in str(caught.value) and repo_id in str(caught.value)


@pytest.mark.parametrize("files, reason", [
    ({"model.safetensors": b"garbage, not tensors"}, "not a readable safetensors file"),
    ({"model.safetensors": None, "pytorch_model.bin": b"\x80\x04pickled"}, r"holds no model.safetensors \(pickled"),
    ({"config.json": b"{not json"}, "cannot load tester/bad-weights"),
])
def test_bad_or_pickled_weights_are_one_value_error_and_nothing_is_unpickled(hub, tmp_path, files, reason):
    good = good_files(tmp_path)
    repo_id = upload("tester/bad-weights", {name: data for name, data in {**good, **files}.items() if data is not None})
    with pytest.raises(ValueError, match=reason) as caught:
        load_model(repo_id)
    assert "\n" not in str(caught.value)


def test_nan_weights_on_the_hub_are_refused(hub, tmp_path):
    model = LeNet5()
    with torch.no_grad():
        model.features.f6.weight[0, 0] = float("nan")
    model.save_pretrained(tmp_path / "nan")
    repo_id = upload("tester/nan", {name: (tmp_path / "nan" / name).read_bytes() for name in ("config.json", "model.safetensors")})
    with pytest.raises(ValueError, match="NaN or infinite values.*f6.weight"):
        load_model(repo_id)


@pytest.fixture
def silent_hub(monkeypatch):
    """A server on 127.0.0.1 that accepts every connection and never answers, with the Hub client's read
    timeout cut to 2 s so that the test waits seconds, not the real bound."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    monkeypatch.setattr(lenet5_hub, "READ_SECONDS", 2)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
    set_client_factory(lenet5_hub.bounded_client)
    try:
        yield
    finally:
        listener.close()
        set_client_factory(lenet5_hub.bounded_client)


def test_a_hub_that_never_answers_gives_one_line_in_bounded_time(silent_hub, tmp_path):
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"cannot reach the Hub at \S+ to load tester/x \(ReadTimeout\); offline\?"):
        load_model("tester/x")
    with pytest.raises(HubError, match="cannot reach the Hugging Face Hub"):
        hub_username()
    LeNet5().save_pretrained(tmp_path)
    with pytest.raises(HubError, match="timed out|cannot reach"):
        publish(tmp_path, "tester/x")
    assert time.monotonic() - start < 30


@pytest.mark.slow
def test_offline_a_model_loaded_once_loads_from_the_cache(hub):
    torch.manual_seed(0)
    LeNet5().push_to_hub("tester/cached")
    load_model("tester/cached")  # fills the cache
    code = "import lenet5; print(lenet5.load_model('tester/cached').variant)"
    offline = run("-c", code, env={"HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0 and offline.stdout.strip() == "modern", offline.stderr


@pytest.mark.slow
def test_push_to_a_hub_that_never_answers_ends_in_one_line_within_a_minute(tmp_path):
    LeNet5().save_pretrained(tmp_path / "run")
    with socket.socket() as listener:  # accepts every connection (the backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        start = time.monotonic()
        pushed = run("-m", "lenet5", "push", str(tmp_path / "run"), "--repo-id", "tester/x",
                     env={"HF_ENDPOINT": f"http://127.0.0.1:{listener.getsockname()[1]}"})
        seconds = time.monotonic() - start
    assert pushed.returncode != 0 and "Traceback" not in pushed.stderr
    assert "cannot reach the Hugging Face Hub" in pushed.stderr and len(pushed.stderr.strip().splitlines()) <= 3
    assert seconds < 60


def python_blocks(card_text: str) -> list[str]:
    return [block.split("\n", 1)[1] for block in card_text.split("```")[1::2] if block.startswith("python\n")]


@pytest.mark.slow
def test_the_cards_snippets_run_pasted_as_they_are(hub, tmp_path, data_dir):
    # A published card and a saved folder's card: every Python snippet runs in a fresh interpreter, as a
    # reader pastes it, against the repo or folder it names (timm's loader needs `import lenet5` first).
    trained = LeNet5.from_pretrained(REPO / "lenet5" / "weights" / "modern")
    trained.push_to_hub("tester/pasted")
    trained.save_pretrained(tmp_path / "folder")
    published = hub.files("tester/pasted")["README.md"].decode()
    local = (tmp_path / "folder" / "README.md").read_text()
    snippets = python_blocks(published) + python_blocks(local)
    assert len(snippets) == 3 and 'hf-hub:tester/pasted' in snippets[1] and str(tmp_path / "folder") in snippets[2]
    for snippet in snippets:
        ran = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=240,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        assert ran.returncode == 0, (snippet, ran.stderr)
        assert ran.stdout.strip() in ("1", "torch.Size([1, 10])"), ran.stdout


def test_a_space_serves_the_first_model_its_readme_lists(tmp_path, monkeypatch):
    # README.md's front matter is the Space's configuration; its `models:` link the Space from each model's
    # page, and the demo serves the first of them when it runs on a Space. The repo's own README lists none.
    from huggingface_hub import SpaceCard

    from lenet5.hub import model_to_serve

    assert SpaceCard.load(REPO / "README.md").data.to_dict()["models"] == []
    readme = tmp_path / "README.md"
    readme.write_text("---\ntitle: digits\nsdk: gradio\nmodels:\n- tester/first\n- tester/second\n---\n# Digits\n")
    monkeypatch.delenv("LENET5_MODEL", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert model_to_serve(readme) is None  # not on a Space: the bundled weights, no network needed
    monkeypatch.setenv("SPACE_ID", "tester/digits")
    assert model_to_serve(readme) == "tester/first"
    assert model_to_serve(REPO / "README.md") is None and model_to_serve(tmp_path / "missing.md") is None
    (tmp_path / "broken.md").write_text("---\nmodels: [tester/first\n---\n")  # YAML that does not parse
    assert model_to_serve(tmp_path / "broken.md") is None
    monkeypatch.setenv("LENET5_MODEL", "tester/chosen")
    assert model_to_serve(readme) == "tester/chosen"


@pytest.mark.parametrize("config", ["[1, 2, 3]", "null", '"modern"', "42"])
def test_a_config_json_that_is_no_object_is_one_line_and_the_demo_starts_on_the_bundled_weights(config, tmp_path):
    # `python app.py --model DIR` with such a config.json ended in an AttributeError traceback
    import app

    LeNet5().save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(ValueError, match=r"config\.json is not a JSON object of LeNet5's settings$"):
        load_model(str(tmp_path))
    models, line = app.load_demo_models(str(tmp_path))
    assert list(models) == list(app.BUNDLED_NAMES.values()) and "could not be loaded" in line


@pytest.mark.slow
def test_resume_with_push_of_a_finished_run_says_how_to_publish_it(hub, tmp_path, data_dir):
    out = tmp_path / "run"
    quick = ["--epochs", "1", "--val-size", "50000", "--batch-size", "512", "--no-augment", "--pieces", "0"]
    first = subprocess.run([sys.executable, "train.py", *quick, "--data-dir", str(data_dir), "--out", str(out)],
                           cwd=REPO, capture_output=True, text=True, timeout=240)
    assert first.returncode == 0, first.stderr
    again = subprocess.run([sys.executable, "train.py", "--resume", "--push", "--repo-id", "tester/finished", "--out",
                            str(out)], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.strip() == (f"error: nothing to resume: the run in {out} is finished and saved there; publish it "
                                    f"with: python -m lenet5 push {out} --repo-id tester/finished")


@pytest.mark.slow
def test_a_hub_that_stalls_the_download_is_given_up_on_and_the_demo_starts_bundled(hub, monkeypatch):
    # model_info answered, the weights' GET never: the download's own retries kept the demo 400 s from starting
    import app

    LeNet5().push_to_hub("tester/stalled")
    monkeypatch.setattr(lenet5_hub, "LOAD_SECONDS", 3)
    hub.stall_downloads = True
    try:
        start = time.monotonic()
        with pytest.raises(ValueError, match=r"^cannot load tester/stalled: the Hub at \S+ did not deliver it within 3 s$"):
            load_model("tester/stalled")
        models, line = app.load_demo_models("tester/stalled")
        assert time.monotonic() - start < 15
        assert list(models) == list(app.BUNDLED_NAMES.values()) and "could not be loaded" in line
    finally:
        hub.stall_downloads = False
