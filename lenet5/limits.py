"""What one request may cost the served demo, enforced in front of Gradio: `launch(app_kwargs=request_limits())`.

- A body over 16 MB is refused (413) before Gradio parses it: a 300 MB JSON body to the queue cost 2.2 GB,
  and Gradio's own `max_file_size` bounds the files of an upload only.
- An upload carries one picture: Gradio's upload route takes up to 1,000 files a request, while every
  image input of the page (and gradio_client) uploads one file a request.
- Uploads take at most 512 MB and 5,000 files: Gradio bounds them by age only (`delete_cache`), so a
  stranger could fill the disk within that age. Past the bound, the oldest uploads go first; those
  under a minute old may be about to be read and are kept, and while only they are left, uploads are
  refused (507) until the flood ends. Gradio's cleaner never removes the part-written file of an upload
  cut off mid-body, so those go too once a minute old.
"""

import asyncio
import os
import re
import threading
import time
from pathlib import Path

from python_multipart.multipart import parse_options_header
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect

MAX_BODY = 16 * 2**20  # a 10 MB picture sent as a data: URL fits
UPLOAD_SPACE = 512 * 2**20
UPLOAD_FILES = 5000
KEEP_SECONDS = 60  # an upload younger than this may be about to be read: it is never evicted
STRAY = re.compile(r"tmp[a-z0-9_]{8}")  # tempfile.NamedTemporaryFile's names
REMEASURE_SECONDS = 2  # the uploads are measured at most this often; those admitted in between are added up
ANSWERS = {
    413: b"Request too large for this demo.\n",
    400: b"One picture per upload.\n",
    507: b"The demo's upload space is full for a minute: please try again shortly.\n",
}


class UploadSpace:
    """The uploads' total size and count, kept under bounds by evicting the oldest."""

    def __init__(self, max_bytes: int = UPLOAD_SPACE, max_files: int = UPLOAD_FILES,
                 keep_seconds: float = KEEP_SECONDS):
        self.max_bytes, self.max_files, self.keep_seconds = max_bytes, max_files, keep_seconds
        self.lock = threading.Lock()
        self.used = self.files = 0
        self.measured_at = self.retry_at = -float("inf")

    def admit(self, folder: Path, uploads: set, kept: set, incoming: int) -> bool:
        """Whether an upload of `incoming` bytes fits, after evicting what may go. `uploads` is Gradio's set of
        uploaded paths (evicted ones leave it); `kept` are files Gradio must keep (examples, defaults). Runs
        on a worker thread: it stats every upload, at most every REMEASURE_SECONDS."""
        with self.lock:
            now = time.monotonic()
            if now - self.measured_at > REMEASURE_SECONDS or not self.fits(incoming) and now >= self.retry_at:
                self.used, self.files, wait = self.evict(folder, uploads, kept, incoming)
                self.measured_at, self.retry_at = now, now + min(wait, REMEASURE_SECONDS)
            if not self.fits(incoming):
                return False
            self.used, self.files = self.used + incoming, self.files + 1
            return True

    def fits(self, incoming: int) -> bool:
        return self.within(self.used + incoming, self.files + 1)

    def evict(self, folder: Path, uploads: set, kept: set, incoming: int) -> tuple[int, int, float]:
        """Measure the uploads; remove the oldest (and stray part-written files) past the bounds. Also says
        how many seconds until the oldest upload left may go, if one too young to go was kept."""
        entries = sorted(measure(folder, uploads - kept))
        used, files = sum(size for _, size, _ in entries), len(entries)
        old_enough = time.time() - self.keep_seconds
        for mtime, size, path in entries:
            if self.within(used + incoming, files + 1):
                break
            if mtime > old_enough:
                return used, files, mtime - old_enough
            try:
                os.remove(path)
            except OSError:
                continue
            uploads.discard(path)
            used, files = used - size, files - 1
        return used, files, 0.0

    def within(self, used: int, files: int) -> bool:
        return used <= self.max_bytes and files <= self.max_files


def measure(folder: Path, uploads: set):
    """(mtime, size, path) of each upload Gradio holds, and of each stray file that an upload cut off mid-body
    left in the folder (tempfile's names, at the top level: Gradio moves finished uploads into a folder
    each). Nothing else is looked at. The folder is Gradio's own (GRADIO_TEMP_DIR, else <tmp>/gradio): one
    shared with programs that leave tempfiles at its top would see theirs counted, and removed when old."""
    strays = []
    try:
        with os.scandir(folder) as found:
            strays = [entry.path for entry in found
                      if STRAY.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)]
    except OSError:
        pass
    for path in [*uploads, *strays]:
        try:
            stat = os.lstat(path)
        except OSError:
            continue
        yield stat.st_mtime, stat.st_size, path


class RequestLimits:
    """ASGI middleware for the three bounds in this module's docstring."""

    def __init__(self, app, max_bytes: int = MAX_BODY, space: UploadSpace | None = None):
        self.app, self.max_bytes, self.space = app, max_bytes, space or UploadSpace()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        size = int(declared) if declared.isdigit() else None
        if size is not None and size > self.max_bytes:
            return await answer(send, 413)
        is_upload = scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/upload")
        if is_upload and not await self.admitted(scope, size or self.max_bytes):
            return await answer(send, 507)
        limit = BodyWatch(receive, self.max_bytes, boundary(headers) if is_upload else None)
        started = False

        async def watched_send(message):
            nonlocal started
            if limit.refusal is not None and not started:
                return  # Gradio's answer to a body cut off here ("error parsing the body"): ours goes instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limit.receive, watched_send)
        except ClientDisconnect:
            if limit.refusal is None or started:
                raise
        if limit.refusal is not None and not started:
            await answer(send, limit.refusal)

    async def admitted(self, scope, incoming: int) -> bool:
        gradio_app = scope["app"]
        blocks = gradio_app.get_blocks()
        kept = set().union(*(getattr(block, "keep_in_cache", set()) for block in blocks.blocks.values()))
        return await asyncio.to_thread(self.space.admit, Path(gradio_app.uploaded_file_dir),
                                       blocks.upload_file_set, kept, incoming)


class BodyWatch:
    """A request's `receive` that cuts the body off (the app sees the client leave) where it passes the size
    limit, or, given an upload's multipart boundary, where a second part begins; `refusal` says which."""

    def __init__(self, receive, max_bytes: int, boundary: bytes | None):
        self.inner, self.max_bytes = receive, max_bytes
        self.delimiter = b"--" + boundary if boundary else None
        self.seen, self.delimiters, self.tail = 0, 0, b""
        self.refusal: int | None = None

    async def receive(self):
        if self.refusal is not None:
            return {"type": "http.disconnect"}
        message = await self.inner()
        if message["type"] != "http.request":
            return message
        body = message.get("body", b"")
        self.seen += len(body)
        if self.seen > self.max_bytes:
            self.refusal = 413
        elif self.delimiter is not None:
            window = self.tail + body  # a delimiter split between two chunks is found whole here
            self.delimiters += window.count(self.delimiter)
            self.tail = window[-len(self.delimiter) + 1 :]
            if self.delimiters > 2:  # one part opens with a delimiter and the body closes with one
                self.refusal = 400
        return {"type": "http.disconnect"} if self.refusal is not None else message


def boundary(headers: dict) -> bytes | None:
    content_type, options = parse_options_header(headers.get(b"content-type", b""))
    found = options.get(b"boundary") if content_type == b"multipart/form-data" else None
    return found if found and re.fullmatch(rb"[ -~]{1,200}", found) else None


async def answer(send, status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": ANSWERS[status]})


def request_limits(space: UploadSpace | None = None) -> dict:
    """`launch(app_kwargs=...)` for a server with these bounds; a new dict each time, as Gradio adds its own
    keys to it. One `space` per served app."""
    return {"middleware": [Middleware(RequestLimits, max_bytes=MAX_BODY, space=space or UploadSpace())]}
