"""Everything that talks to the Hugging Face Hub: loading weights, publishing a run, its model card.

Every request has a bounded time: huggingface_hub's own HTTP client is made with `timeout=None`
(huggingface_hub 2.4: `default_client_factory`), so a Hub that accepts the connection and never answers
would hang an upload, a login check or a download forever. `bound_hub_requests()` swaps in the same
client with timeouts; a factory set by the user's own code is left as it is.

Publishing checks the token before any training starts, so a missing or rejected login costs seconds,
not a run, and uploads the folder `save_pretrained` wrote with its card, metrics and pictures in one
commit, so the Hub never shows a card whose figures or pictures are missing.
"""

import json
import os
import threading
from concurrent.futures import Future, wait
from functools import lru_cache, partial
from pathlib import Path

import httpx2  # huggingface_hub's HTTP client: its errors are what an unreachable Hub raises
import torch
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, SpaceCard, constants
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    LocalTokenNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import _http, set_client_factory, validate_repo_id

from .model import MODEL_CARD_TEMPLATE, VARIANTS, LeNet5

BUNDLED_DIR = Path(__file__).parent / "weights"
PICTURES = ("training_curves.png", "confusion_matrix.png", "misclassified.png")
PUBLISHED = ("model.safetensors", "config.json", "README.md", "metrics.json", *PICTURES)
LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN to a write token from https://huggingface.co/settings/tokens"
CONNECT_SECONDS = 10
READ_SECONDS = 20  # the longest wait for an answer (downloads of data retry a timed-out request themselves)
LOAD_SECONDS = 60  # the longest a model's whole download may take: a Hub that stalls it delayed the demo 400 s


class HubError(ValueError):
    """The Hub refused or could not be reached; the message says why and what to do."""


# -- time limits and wording --------------------------------------------------------------------------


def bounded_client() -> httpx2.Client:
    """huggingface_hub's own client, with a time limit on every request that has none."""
    client = _http.default_client_factory()
    client.event_hooks["request"].append(bound_request)
    return client


def bound_request(request: httpx2.Request) -> None:
    # The client's default is no timeout, and many HfApi calls (model_info, ...) also pass timeout=None
    # themselves, which would override any default: so the limit is set on each request that has none.
    limits = request.extensions.get("timeout") or {}
    if all(limits.get(kind) is None for kind in ("connect", "read", "write", "pool")):
        request.extensions["timeout"] = httpx2.Timeout(READ_SECONDS, connect=CONNECT_SECONDS).as_dict()


def bound_hub_requests() -> None:
    """Make huggingface_hub's shared client time out (once per process; the user's own factory wins)."""
    if _http._GLOBAL_CLIENT_FACTORY is _http.default_client_factory:
        set_client_factory(bounded_client)


def one_line(error: Exception) -> str:
    """An error's message on one line, for a terminal or a page."""
    return " ".join(str(error).split()) or type(error).__name__


def hub_name() -> str:
    return "the Hugging Face Hub" if constants.ENDPOINT == "https://huggingface.co" else f"the Hub at {constants.ENDPOINT}"


# -- loading ------------------------------------------------------------------------------------------


def bundled_variants() -> list[str]:
    return [v for v in VARIANTS if (BUNDLED_DIR / v / "model.safetensors").is_file()]


def load_model(source: str | Path | None = None, device: str | torch.device = "cpu", revision: str | None = None) -> LeNet5:
    """Load weights: None -> the bundled default; a variant name ("modern", "lecun1998") -> its bundled weights;
    an existing folder -> what save_pretrained wrote there; anything else -> a Hub repo id "OWNER/NAME".

    Raises:
        ValueError: for every source that cannot be loaded, with a one-line reason: it does not exist or
            cannot be reached (every Hub request has a bounded time), its config.json is not a LeNet5's,
            its weights are missing, pickled, damaged, do not fit, or are not finite.
    """
    source = VARIANTS[0] if source is None else source
    if str(source) in VARIANTS:
        if str(source) not in bundled_variants():
            raise ValueError(f"no bundled weights for variant {source!r}; bundled: {', '.join(bundled_variants())}")
        source = BUNDLED_DIR / str(source)
    remote = not os.path.isdir(source)
    if remote and not constants.HF_HUB_OFFLINE:  # offline, the local cache answers
        check_hub_repo(str(source), revision)
    try:
        load = partial(LeNet5.from_pretrained, str(source), revision=revision, map_location=str(device))
        return (within(LOAD_SECONDS, load, f"{hub_name()} did not deliver it") if remote else load()).to(device).eval()
    except ValueError as error:  # LeNet5's own checks, and a config.json that is not JSON
        raise ValueError(f"cannot load {source}: {one_line(error)}") from None
    except (AttributeError, TypeError):  # the mixin reads a config.json of [1, 2, 3] or null as if a JSON object
        raise ValueError(f"cannot load {source}: its config.json is not a JSON object of LeNet5's settings") from None
    except (HfHubHTTPError, LocalEntryNotFoundError, httpx2.HTTPError, OSError) as error:
        raise ValueError(f"cannot load {source} from {hub_name()}: {one_line(error)}") from None


def model_to_serve(space_readme: Path) -> str | None:
    """The model the demo serves first: $LENET5_MODEL, else, on a Hugging Face Space ($SPACE_ID), the first
    repo its README's front matter lists under `models:` (which also links the Space from that model's page),
    else None: the bundled weights."""
    if os.environ.get("LENET5_MODEL"):
        return os.environ["LENET5_MODEL"]
    if not os.environ.get("SPACE_ID") or not os.path.isfile(space_readme):
        return None
    try:
        models = SpaceCard.load(space_readme).data.to_dict().get("models") or []
    except Exception:  # noqa: BLE001  front matter it cannot parse (YAML, card data): the bundled weights
        return None
    return str(models[0]) if isinstance(models, list) and models else None


def within(seconds: float, work, too_slow: str):
    """work(), or ValueError(too_slow) once `seconds` have passed; the work goes on in a daemon thread, so a
    stalled download keeps nothing of the caller waiting and ends with the process."""
    outcome: Future = Future()

    def run() -> None:
        try:
            outcome.set_result(work())
        except BaseException as error:  # noqa: BLE001  raised again in the caller's thread
            outcome.set_exception(error)

    threading.Thread(target=run, daemon=True).start()
    wait([outcome], timeout=seconds)
    if not outcome.done():
        raise ValueError(f"{too_slow} within {seconds:g} s")
    return outcome.result()


@lru_cache(maxsize=1)
def default_model() -> LeNet5:
    return load_model()


def check_hub_repo(repo_id: str, revision: str | None) -> None:
    """Fail in one request, within the bounded time, for a repo id that is malformed, missing or unreachable,
    before the downloads (which retry each request several times) begin."""
    not_a_source = f"{repo_id!r} is neither a bundled variant ({', '.join(VARIANTS)}), a folder, nor a Hub repo id OWNER/NAME"
    if repo_id.count("/") != 1:
        raise ValueError(not_a_source)
    bound_hub_requests()
    try:
        HfApi().model_info(repo_id, revision=revision)
    except HFValidationError:
        raise ValueError(f"{repo_id!r} is neither a bundled variant, a folder, nor a Hub repo id OWNER/NAME") from None
    except RepositoryNotFoundError:
        raise ValueError(f"there is no model {repo_id} on {hub_name()}, or it is private and no token allows it") from None
    except RevisionNotFoundError:
        raise ValueError(f"{repo_id} on {hub_name()} has no revision {revision!r}") from None
    except HfHubHTTPError as error:
        raise ValueError(f"{hub_name()} refused {repo_id}: {one_line(error)}") from None
    except httpx2.HTTPError as error:
        raise ValueError(f"cannot reach {hub_name()} to load {repo_id} ({type(error).__name__}); offline?") from None


# -- publishing ---------------------------------------------------------------------------------------


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


def build_model_card(metrics: dict, repo_id: str | None = None, location: str | None = None) -> ModelCard:
    """The card: the class's Hub metadata, the test accuracy as a model-index entry, and the run's figures."""
    card_data = ModelCardData(**LeNet5._hub_mixin_info.model_card_data.to_dict())
    card_data.datasets = ["ylecun/mnist"]
    card_data.metrics = ["accuracy"]
    card_data.model_name = repo_id.split("/")[-1] if repo_id else f"lenet5-{metrics['variant']}"
    card_data.eval_results = [
        EvalResult(task_type="image-classification", task_name="Image Classification", dataset_type="ylecun/mnist",
                   dataset_name="MNIST", dataset_split="test", metric_type="accuracy", metric_name="Test accuracy",
                   metric_value=round(metrics["test_accuracy"], 4))
    ]
    return ModelCard.from_template(
        card_data,
        template_str=MODEL_CARD_TEMPLATE,
        variant=metrics["variant"],
        test_accuracy=f"{metrics['test_accuracy']:.2%}",
        test_errors=metrics["test_errors"],
        params=f"{metrics['params']:,}",
        epochs=metrics["epochs"],
        wall_time=f"{metrics['train_seconds']:.0f} s",
        device=metrics["device"],
        precision=metrics.get("precision"),
        per_class_accuracy=[f"{acc:.2%}" for acc in metrics["per_class_accuracy"].values()],
        val_size=f"{metrics['val_images']:,}",
        recipe=metrics["recipe"],
        train_command=metrics["command"],
        repo_id=repo_id,
        location=location,
    )
