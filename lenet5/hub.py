"""Publishing a finished run to the Hugging Face Hub.

The token is checked before any training starts, so a missing or rejected login costs seconds, not a run.
The folder that `save_pretrained` wrote (weights, config.json) is uploaded with its model card, metrics
and pictures in one commit, so the Hub never shows a card whose figures or pictures are missing.
"""

import json
import os
from pathlib import Path

import httpx2  # huggingface_hub's HTTP client: its errors are what an unreachable Hub raises
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalTokenNotFoundError
from huggingface_hub.utils import validate_repo_id

from .hub_client import bound_hub_requests, one_line
from .model import LeNet5
from .report import PICTURES, build_model_card

PUBLISHED = ("model.safetensors", "config.json", "README.md", "metrics.json", *PICTURES)
LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN to a write token from https://huggingface.co/settings/tokens"


class HubError(ValueError):
    """The Hub refused or could not be reached; the message says why and what to do."""


def hub_username(token: str | None = None) -> str:
    """The account the token (or the saved login) belongs to; fails fast with how to log in."""
    bound_hub_requests()
    try:
        return HfApi(token=token).whoami()["name"]
    except LocalTokenNotFoundError:
        raise HubError(f"no Hugging Face token found: {LOGIN_HINT}") from None
    except HfHubHTTPError as error:
        if error.response is not None and error.response.status_code == 401:
            raise HubError(f"the Hugging Face token was rejected: {LOGIN_HINT}") from None
        raise HubError(f"the Hugging Face Hub at {constants.ENDPOINT} answered: {one_line(error)}") from None
    except httpx2.HTTPError as error:
        raise HubError(f"cannot reach the Hugging Face Hub at {constants.ENDPOINT}: {one_line(error)}") from None


def resolve_repo_id(repo_id: str | None, username: str, variant: str = "modern") -> str:
    """The repo to publish to: the one asked for, else <user>/lenet5-mnist (lenet5-<variant>-mnist for others)."""
    if not repo_id:
        repo_id = f"{username}/lenet5-mnist" if variant == "modern" else f"{username}/lenet5-{variant}-mnist"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise HubError(f"{repo_id!r} is not a valid Hub repo id (OWNER/NAME): {one_line(error)}") from None
    if repo_id.count("/") != 1:
        raise HubError(f"{repo_id!r} is not a valid Hub repo id: write it as OWNER/NAME")
    return repo_id


def publish(out_dir: Path, repo_id: str | None = None, private: bool = False, token: str | None = None) -> str:
    """Upload what train.py saved in out_dir to repo_id (default <user>/lenet5-mnist) in one commit.

    Returns the repo's URL. Raises HubError (a ValueError) with the reason when anything is missing or refused.
    """
    missing = [name for name in ("model.safetensors", "config.json") if not os.path.isfile(out_dir / name)]
    if missing:
        raise HubError(f"{out_dir} has no {' or '.join(missing)}: train first (python train.py --out {out_dir})")
    model = LeNet5.from_pretrained(out_dir)  # a folder that would not load back must not be published
    repo_id = resolve_repo_id(repo_id, hub_username(token), model.variant)
    metrics = read_metrics(out_dir)
    if metrics:  # the card's snippets name the repo, so it is written for this one
        build_model_card(metrics, repo_id).save(out_dir / "README.md")
    elif not (out_dir / "README.md").is_file():
        model.generate_model_card().save(out_dir / "README.md")
    bound_hub_requests()
    api = HfApi(token=token)
    accuracy = f", MNIST test accuracy {metrics['test_accuracy']:.2%}" if metrics else ""
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(
            repo_id=url.repo_id,
            folder_path=out_dir,
            allow_patterns=[name for name in PUBLISHED if (out_dir / name).is_file()],
            commit_message=f"Upload LeNet-5{accuracy}",
        )
    except HfHubHTTPError as error:
        raise HubError(f"the Hub refused the upload to {repo_id}: {one_line(error)}") from None
    except httpx2.HTTPError as error:
        raise HubError(f"the upload to {repo_id} at {constants.ENDPOINT} broke off: {one_line(error)}") from None
    return str(url)


def read_metrics(out_dir: Path) -> dict | None:
    path = out_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise HubError(f"{path} is not valid JSON ({error}); retrain or delete it") from None
