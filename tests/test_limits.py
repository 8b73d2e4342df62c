"""lenet5.limits in front of a real Gradio server on 127.0.0.1: one picture per upload, uploads bounded in all,
and bodies cut off past the size limit answered in words."""

import http.client
import os
import time
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import httpx
import pytest

from lenet5.limits import ANSWERS, MAX_BODY, UploadSpace, request_limits

from test_app import free_port

MB = 2**20


@contextmanager
def server(folder: Path, space: UploadSpace):
    """A Gradio app with one image input, its uploads in `folder`, behind request_limits(space)."""
    with gr.Blocks() as demo:
        image, size = gr.Image(type="filepath"), gr.Number()
        image.change(lambda path: Path(path).stat().st_size if path else 0, image, size, api_name="size")
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    try:
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    app_kwargs=request_limits(space))
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()
        if before is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before


@pytest.fixture(scope="module")
def evicting(tmp_path_factory):
    """Uploads bounded to 3 MB in all; any upload may be evicted at once."""
    folder = tmp_path_factory.mktemp("uploads")
    with server(folder, UploadSpace(max_bytes=3 * MB, max_files=50, keep_seconds=0)) as url:
        yield url, folder


@pytest.fixture(scope="module")
def keeping(tmp_path_factory):
    """Uploads bounded to 3 MB in all, none evicted for ten minutes: a flood that only fresh uploads fill."""
    folder = tmp_path_factory.mktemp("uploads")
    with server(folder, UploadSpace(max_bytes=3 * MB, max_files=50, keep_seconds=600)) as url:
        yield url, folder


def upload(url: str, *contents: bytes) -> httpx.Response:
    files = [("files", (f"part{i}.png", content, "image/png")) for i, content in enumerate(contents)]
    return httpx.post(f"{url}/gradio_api/upload", files=files, timeout=30)


def stored(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_an_upload_carries_one_picture(evicting):
    # Gradio's upload route took up to 1,000 files a request; every image input uploads one.
    url, folder = evicting
    answer = upload(url, b"a" * 1000, b"b" * 1000)
    assert answer.status_code == 400 and answer.content == ANSWERS[400]
    assert not [p for p in stored(folder) if p.name == "part1.png"]
    one = upload(url, b"c" * 1000)
    assert one.status_code == 200 and Path(one.json()[0]).read_bytes() == b"c" * 1000


def test_uploads_in_all_stay_within_their_bound_oldest_going_first(evicting):
    url, folder = evicting
    paths = []
    for i in range(10):  # 10 MB in all, into a 3 MB space
        answer = upload(url, bytes([i]) * MB)
        assert answer.status_code == 200
        paths.append(Path(answer.json()[0]))
    assert sum(p.stat().st_size for p in stored(folder)) <= 4 * MB
    assert paths[-1].exists() and not paths[0].exists()


def test_a_flood_of_fresh_uploads_is_refused_in_words(keeping):
    url, folder = keeping
    answers = [upload(url, bytes([i]) * MB) for i in range(5)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert answers[-1].status_code == 507 and answers[-1].content == ANSWERS[507]
    assert sum(p.stat().st_size for p in stored(folder)) <= 3 * MB
    assert all(Path(a.json()[0]).exists() for a in answers[:2])  # nothing young was evicted


def test_a_body_sent_without_its_length_is_cut_off_and_answered(evicting):
    # Past the limit the body is cut off: the client hears 413 in words, not a dropped connection.
    url, _ = evicting
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest("POST", "/gradio_api/call/size")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    chunk = b'{"data": ["' + b"z" * MB
    sent, started = 0, time.monotonic()
    try:
        while sent <= MAX_BODY + MB and time.monotonic() - started < 30:
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            chunk = b"z" * MB
    except OSError:
        pass  # the server may stop reading once it has answered
    response = connection.getresponse()
    assert response.status == 413 and response.read() == ANSWERS[413]
    connection.close()
