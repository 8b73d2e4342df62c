"""Every request to the Hugging Face Hub with a bounded time.

huggingface_hub's own HTTP client is made with `timeout=None` (huggingface_hub 2.4: `default_client_factory`),
so a Hub that accepts the connection and never answers hangs an upload, a login check or a download
forever. `bound_hub_requests()` swaps in the same client with timeouts; downloads keep the library's own
shorter metadata timeout. A factory set by the user's own code is left as it is.
"""

import httpx2  # the HTTP client huggingface_hub 2.x is built on
from huggingface_hub.utils import _http, set_client_factory

CONNECT_SECONDS = 10
READ_SECONDS = 20  # the longest wait for an answer (downloads of data retry a timed-out request themselves)


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
