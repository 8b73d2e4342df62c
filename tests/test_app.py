"""The demo: its handler called directly, then app.py launched as a user launches it and called over HTTP
with gradio_client, exactly as a user's script would."""

import base64
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app
from examples.digits import STROKES, example_paths, render
from lenet5 import load_model

from bombs import giant_png
from conftest import REPO

OUTPUTS = ("verdict", "bars", "insides")


MODERN, LECUN = app.BUNDLED_NAMES["modern"], app.BUNDLED_NAMES["lecun1998"]


@pytest.fixture(scope="module")
def models():
    return app.load_demo_models(None)[0]


@pytest.fixture(scope="module")
def model(models):
    return {MODERN: models[MODERN]}


def read_one(image, models, network: str = MODERN) -> dict:
    return dict(zip(OUTPUTS, app.one(app.read_batch, image, network, models)))


def top_label(bars) -> str:
    """The top class, from the handler's dict or from gradio_client's Label payload."""
    if "label" in bars:
        return bars["label"]
    return max(bars, key=bars.get)


def canvas_dict(image: Image.Image) -> dict:
    """A browser canvas's value: opaque white composite with the strokes, the strokes alone in layers[0]."""
    rgba = np.asarray(image.convert("RGBA"))
    strokes = np.zeros_like(rgba)
    strokes[:, :, 3] = 255 - rgba[:, :, 0]
    return {"background": None, "layers": [strokes], "composite": rgba}


def inline_pictures(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in re.findall(r'data:image/png;base64,([^"]+)', html)]


@pytest.mark.parametrize("network", [MODERN, LECUN])
def test_the_handler_reads_every_drawn_digit_and_shows_its_insides(models, network):
    for digit, strokes in STROKES.items():
        out = read_one(canvas_dict(render(strokes)), models, network)
        assert top_label(out["bars"]) == digit
        assert f"**{digit}**" in out["verdict"] and out["verdict"].startswith("It is a")
        seen, c1, c3 = inline_pictures(out["insides"])
        assert seen.size == (28, 28)
        assert c1.size == (3 * 28 + 2, 2 * 28 + 1)  # 6 maps in 2 rows of 3, 1-pixel gaps
        assert c3.size == (4 * 10 + 3, 4 * 10 + 3)  # 16 maps in 4 rows of 4


@pytest.mark.parametrize("network", [MODERN, LECUN])
def test_nothing_to_read_gets_a_message_instead_of_bars_from_either_network(models, network):
    dot = Image.new("L", (280, 280), 255)
    dot.paste(0, (130, 130, 148, 148))
    line = render([[(40, 140), (240, 146)]])
    scribble = render([[(60 if i % 2 else 220, 60 + 10 * i) for i in range(17)]])  # back and forth, filling a box
    cases = {
        "empty canvas": {"background": None, "layers": [], "composite": None},
        "cleared": None,
        "white canvas": canvas_dict(Image.new("L", (280, 280), 255)),
        "a dot": canvas_dict(dot),
        "a line": canvas_dict(line),
        "a scribble": canvas_dict(scribble),
    }
    for name, image in cases.items():
        out = read_one(image, models, network)
        assert out["bars"] is None, name
        assert "Draw" in out["verdict"], name
        if name in ("empty canvas", "cleared"):  # what Clear leaves: the page as it opened
            assert out["verdict"] == app.START and out["insides"] == "", name
    assert "a solid blob or a scribble" in read_one(canvas_dict(scribble), models, network)["verdict"]


def test_bad_files_get_a_clear_message_and_never_crash(model, tmp_path):
    digit = render(STROKES["4"])
    frames = [digit.convert("P"), Image.new("P", digit.size, 255)]
    files = {
        "notes.txt": None,
        "truncated.png": None,
        "one_pixel.png": Image.new("L", (1, 1), 0),
        "huge.png": digit.resize((4000, 4000)),
        "deep.png": Image.fromarray(np.asarray(digit).astype(np.uint16) * 257),
        "palette.png": digit.convert("P"),
        "cmyk.jpg": digit.convert("CMYK"),
        "float.tiff": Image.fromarray(np.asarray(digit, dtype=np.float32) / 255),
        "transparent.png": Image.new("RGBA", (64, 64), (0, 0, 0, 0)),
        "white.png": Image.new("RGB", (64, 64), "white"),
    }
    for name, image in files.items():
        if image is not None:
            image.save(tmp_path / name)
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:])
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "palette.png").read_bytes()[:100])
    giant_png(tmp_path / "giant.png", 13000)
    expected = {
        "notes.txt": "is not an image file",
        "truncated.png": "is damaged or truncated",
        "one_pixel.png": "Nothing to read",
        "transparent.png": "Nothing to read",
        "white.png": "Nothing to read",
        "giant.png": "too large to read: the picture is 13000x13000 pixels",
    }
    for path in sorted(tmp_path.iterdir()):
        # The upload and the canvas read a file the same way.
        for image in (str(path), {"background": None, "layers": [], "composite": str(path)}):
            out = read_one(image, model)
            if path.name in expected:
                assert expected[path.name] in out["verdict"], path.name
                assert out["bars"] is None, path.name
            else:  # readable pictures of a 4, however they are stored
                assert top_label(out["bars"]) == "4", path.name


def test_verdicts_in_words():
    assert app.describe([("4", 0.45), ("9", 0.40)]).startswith("Not sure: maybe **4** (45%), or **9** (40%)")
    assert app.describe([("7", 0.93), ("1", 0.02)]).startswith("It is a **7** (93%)")
    assert app.describe([("8", 0.93), ("3", 0.02)]).startswith("It is an **8** (93%)")


def test_both_bundled_networks_are_offered_and_read_in_one_batch(models):
    assert list(models) == [MODERN, LECUN]
    assert [m.variant for m in models.values()] == ["modern", "lecun1998"]
    images = [np.asarray(render(STROKES[d])) for d in "0123"]
    columns = app.read_batch(images, [MODERN, LECUN, LECUN, "no such network"], models)
    assert [top_label(bars) for bars in columns[1][:3]] == ["0", "1", "2"]
    assert "no network called 'no such network'" in columns[0][3] and columns[1][3] is None
    # Switching networks re-reads the tab in view: the drawing, or the upload.
    drawing, upload = canvas_dict(render(STROKES["5"])), str(example_paths()[9])
    assert top_label(app.read_visible("draw", drawing, upload, LECUN, models)[1]) == "5"
    assert top_label(app.read_visible("upload", drawing, upload, LECUN, models)[1]) == "9"


def test_a_bad_picture_in_a_batch_leaves_the_others_alone(models, tmp_path):
    (tmp_path / "fake.png").write_text("not a picture")
    images = [str(example_paths()[d]) for d in range(5)]
    images.insert(2, str(tmp_path / "fake.png"))
    images.append(app.Refused(TypeError("a request Gradio could not read")))
    verdicts, bars, _ = app.read_batch(images, [MODERN] * len(images), models)
    assert [top_label(b) for i, b in enumerate(bars) if i not in (2, 6)] == list("01234")
    assert "is not an image file" in verdicts[2] and verdicts[6] == "That request is not a picture this demo can read (TypeError)."


@pytest.mark.parametrize("size", [6, 32])  # numpy reads up to 16 digits, PyTorch more: both passes
def test_a_good_picture_gets_the_same_answer_whatever_is_batched_beside_it(models, tmp_path, size):
    # #36: under load, once, good sevens batched beside an unreadable picture were not read as 7.
    (tmp_path / "fake.png").write_text("not a picture")
    bad = [str(tmp_path / "fake.png"), app.Refused(TypeError("unreadable")), {"composite": 5}, None, "/etc/passwd"]
    good = [str(example_paths()[7]), str(example_paths()[1])]
    images = [good[i % 2] if i % 3 else bad[i % len(bad)] for i in range(size)]
    alone = {path: app.one(app.read_batch, path, MODERN, models) for path in good}
    verdicts, bars, insides = app.read_batch(images, [MODERN] * size, models)
    for image, verdict, bar, inside in zip(images, verdicts, bars, insides):
        if isinstance(image, str) and image in alone:
            assert (verdict, inside) == (alone[image][0], alone[image][2])
            assert bar.keys() == alone[image][1].keys()
            assert all(abs(bar[k] - alone[image][1][k]) < 1e-5 for k in bar)


def test_a_model_that_cannot_load_falls_back_to_the_bundled_ones(hub):
    models, line = app.load_demo_models("tester/no-such-model")
    assert line.startswith("The model `tester/no-such-model` could not be loaded, so the bundled LeNet-5s are shown")
    assert "there is no model tester/no-such-model" in line and "\n" not in line
    assert list(models) == [MODERN, LECUN]
    x = np.asarray(render(STROKES["2"]))
    assert top_label(read_one(x, models)["bars"]) == "2"


def test_a_model_given_on_the_command_line_comes_first(tmp_path):
    load_model("lecun1998").save_pretrained(tmp_path / "mine")
    models, line = app.load_demo_models(str(tmp_path / "mine"))
    assert list(models) == [str(tmp_path / "mine"), MODERN, LECUN] and "mine" in line


# -- app.py as a running server -------------------------------------------------------------------------


served_pids: dict[str, int] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gradio_temp(tmp_path_factory) -> Path:
    """The served app's Gradio cache: where uploads land and outputs are served from."""
    return tmp_path_factory.mktemp("gradio-cache")


@pytest.fixture(scope="module")
def served_app(gradio_temp):
    """`python app.py` on a free 127.0.0.1 port, stopped after the module's tests."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(gradio_temp)}
    server = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        assert server.poll() is None, server.stdout.read()
        served_pids[url] = server.pid
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_gradio_client_reads_a_drawn_digit(served_app, tmp_path):
    client = Client(served_app, verbose=False)
    for digit in ("0", "3", "8"):
        render(STROKES[digit]).convert("RGBA").save(tmp_path / f"{digit}.png")
        canvas = {"background": None, "layers": [], "composite": handle_file(tmp_path / f"{digit}.png")}
        verdict, bars, insides = client.predict(canvas, api_name="/predict")  # the first network
        assert top_label(bars) == digit and f"**{digit}**" in verdict
        assert [p.size for p in inline_pictures(insides)] == [(28, 28), (86, 57), (43, 43)]
        verdict, bars, *_ = client.predict(canvas, LECUN, api_name="/predict")
        assert top_label(bars) == digit


def test_gradio_client_uploads(served_app, tmp_path):
    client = Client(served_app, verbose=False)
    verdict, bars, *_ = client.predict(handle_file(example_paths()[6]), api_name="/predict_upload")
    assert top_label(bars) == "6"
    (tmp_path / "notes.txt").write_text("not a picture")
    verdict, bars, *_ = client.predict(handle_file(tmp_path / "notes.txt"), api_name="/predict_upload")
    assert "is not an image file" in verdict and not (bars or {}).get("confidences")
    (tmp_path / "huge.png").write_bytes(b"\0" * 11_000_000)  # over the app's 10 MB upload cap
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(handle_file(tmp_path / "huge.png"), api_name="/predict_upload")


@pytest.mark.slow
def test_forty_people_at_once_all_get_their_answer(served_app):
    # Forty people, each with a page of their own (a session), reading at the same moment.
    clients = [Client(served_app, verbose=False) for _ in range(40)]
    digits = [str(i % 10) for i in range(40)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        jobs = [pool.submit(client.predict, handle_file(example_paths()[int(d)]), api_name="/predict_upload")
                for client, d in zip(clients, digits)]
        answers = [top_label(job.result(timeout=120)[1]) for job in jobs]
    assert answers == digits


def queue_call(url: str, api_name: str, data: list) -> dict:
    """One request as a browser or a hand-written client sends it, without gradio_client's help (which
    uploads any local file a request names): the answer's output, or its error."""
    dependencies = httpx.get(f"{url}/config", timeout=10).json()["dependencies"]
    fn_index = next(i for i, d in enumerate(dependencies) if d.get("api_name") == api_name)
    session = uuid.uuid4().hex
    joined = httpx.post(f"{url}/gradio_api/queue/join", timeout=10,
                        json={"data": data, "fn_index": fn_index, "session_hash": session})
    joined.raise_for_status()
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}, timeout=30) as events:
        for line in events.iter_lines():
            if '"process_completed"' in line:
                return json.loads(line.removeprefix("data:"))["output"]
    raise AssertionError("the server closed the stream without an answer")


def test_server_paths_in_a_request_are_refused_and_nothing_is_copied(served_app, gradio_temp, tmp_path):
    secret = tmp_path / "secret-digit.png"
    render(STROKES["7"]).save(secret)
    answers = set()
    for path in ("/etc/passwd", "/etc/no-such-file", str(secret)):
        named = {"path": path, "meta": {"_type": "gradio.FileData"}}
        for api_name, value in (("predict", {"background": None, "layers": [], "composite": named}),
                                ("predict_upload", named)):
            verdict, bars, insides = queue_call(served_app, api_name, [value, MODERN])["data"]
            answers.add(verdict)
            assert not bars and not insides
    assert answers == {app.SERVER_PATH}  # one answer, whether or not the file exists
    copied = [p for p in gradio_temp.rglob("*") if p.name in ("passwd", "no-such-file", secret.name)]
    assert not copied
    for path in ("/etc/passwd", str(REPO / "app.py"), str(secret)):
        assert httpx.get(f"{served_app}/gradio_api/file={path}", timeout=10).status_code in (403, 404)


@pytest.mark.slow
def test_malformed_requests_get_a_sentence_and_the_server_keeps_serving(served_app, tmp_path):
    client = Client(served_app, verbose=False)
    (tmp_path / "truncated.png").write_bytes(example_paths()[1].read_bytes()[:300])
    (tmp_path / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><circle r="9"/></svg>')
    files = {"truncated.png": "is damaged or truncated", "drawing.svg": "is not an image file"}
    for name, words in files.items():
        for api_name, value in (("/predict", {"background": None, "layers": [], "composite": handle_file(tmp_path / name)}),
                                ("/predict_upload", handle_file(tmp_path / name))):
            verdict, bars, _ = client.predict(value, api_name=api_name)
            assert words in verdict and not bars, (name, api_name)
    shapes = [{"background": None, "layers": None, "composite": None}, {"layers": [], "composite": 5},
              {"layers": [], "composite": [1, 2]}, {"layers": [], "composite": "abc"}, 7, "hello", [1]]
    for value in shapes:
        for api_name in ("/predict", "/predict_upload"):
            verdict, bars, _ = client.predict(value, api_name=api_name)
            assert verdict.startswith("That request is not a picture this demo can read") and not bars, (value, verdict)
    verdict, bars, _ = client.predict(handle_file(example_paths()[2]), "no such network", api_name="/predict_upload")
    assert verdict.startswith("That request cannot be read") and "no such network" in verdict
    assert top_label(client.predict(handle_file(example_paths()[4]), api_name="/predict_upload")[1]) == "4"


def test_a_picture_bomb_is_refused_cheaply(served_app, tmp_path):
    giant_png(tmp_path / "giant.png", 13000)  # 13000x13000 pixels: 169 MB as 8-bit gray, 676 MB as RGBA
    pid = served_pids[served_app]
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # restart the server's peak-memory count
    before = peak_memory(pid)
    client = Client(served_app, verbose=False)
    for api_name, value in (("/predict", {"background": None, "layers": [], "composite": handle_file(tmp_path / "giant.png")}),
                            ("/predict_upload", handle_file(tmp_path / "giant.png"))):
        verdict, bars, _ = client.predict(value, api_name=api_name)
        assert "too large to read: the picture is 13000x13000 pixels" in verdict and not bars
    assert peak_memory(pid) - before < 200 * 2**20


def peak_memory(pid: int) -> int:
    """The process's peak resident memory in bytes (VmHWM)."""
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
    return int(line.split()[1]) * 1024


def test_one_bad_picture_among_simultaneous_requests_fails_no_one(served_app, tmp_path):
    (tmp_path / "fake.png").write_text("not a picture")
    client = Client(served_app, verbose=False, download_files=False)
    pictures = [example_paths()[d] for d in range(10)] + [tmp_path / "fake.png"] * 5
    with ThreadPoolExecutor(max_workers=len(pictures)) as pool:
        jobs = [pool.submit(client.predict, {"background": None, "layers": [], "composite": handle_file(p)},
                            api_name="/predict") for p in pictures]
        answers = [job.result(timeout=120) for job in jobs]
    assert [top_label(bars) for _, bars, _ in answers[:10]] == list("0123456789")
    assert all("is not an image file" in verdict and not bars for verdict, bars, _ in answers[10:])


@pytest.mark.slow
def test_under_cpu_load_good_requests_batched_beside_bad_ones_are_all_read(served_app, tmp_path):
    # Two busy processes (each stops by itself after 90 s) take both cores while five sevens and one bad
    # request arrive together, round after round: every seven must still read as 7.
    busy = [subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 90\nwhile time.time() < end: pass"])
            for _ in range(2)]
    (tmp_path / "fake.png").write_text("not a picture")
    seven = {"background": None, "layers": [], "composite": handle_file(example_paths()[7])}
    bad = [handle_file(tmp_path / "fake.png"), {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, 7,
           {"path": "http://127.0.0.1:9/x.png", "meta": {"_type": "gradio.FileData"}}]
    client = Client(served_app, verbose=False, download_files=False)
    try:
        for value in bad:
            with ThreadPoolExecutor(max_workers=6) as pool:
                jobs = [pool.submit(client.predict, seven, api_name="/predict") for _ in range(5)]
                jobs.append(pool.submit(queue_call, served_app, "predict", [{"background": None, "layers": [],
                                                                              "composite": value}, MODERN]))
                answers = [job.result(timeout=120) for job in jobs]
            assert [top_label(bars) for _, bars, _ in answers[:5]] == ["7"] * 5, value
    finally:
        for process in busy:
            process.kill()


@pytest.mark.slow
def test_the_number_endpoints_read_and_hold_against_the_same_hostile_requests(served_app, gradio_temp, tmp_path):
    from test_numbers import number

    client = Client(served_app, verbose=False)
    number("2026").save(tmp_path / "year.png")
    canvas = {"background": None, "layers": [], "composite": handle_file(tmp_path / "year.png")}
    text, pictures = client.predict(canvas, api_name="/read_number")
    assert text.startswith("It reads **2026**") and len(inline_pictures(pictures)) == 2
    assert client.predict(handle_file(tmp_path / "year.png"), LECUN, api_name="/read_number_upload")[0].startswith(
        "It reads **2026**")
    for path in ("/etc/passwd", "/etc/no-such-file"):
        named = {"path": path, "meta": {"_type": "gradio.FileData"}}
        for api_name, value in (("read_number", {"background": None, "layers": [], "composite": named}),
                                ("read_number_upload", named)):
            assert queue_call(served_app, api_name, [value, MODERN])["data"] == [app.SERVER_PATH, ""]
    assert not [p for p in gradio_temp.rglob("*") if p.name in ("passwd", "no-such-file")]
    giant_png(tmp_path / "giant.png", 13000)
    for api_name, value in (("/read_number", {"background": None, "layers": [], "composite": handle_file(tmp_path / "giant.png")}),
                            ("/read_number_upload", handle_file(tmp_path / "giant.png"))):
        assert "too large to read: the picture is 13000x13000" in client.predict(value, api_name=api_name)[0]
    for value in ({"layers": None, "composite": None}, {"layers": [], "composite": 5}, 7, "hello"):
        for api_name in ("/read_number", "/read_number_upload"):
            text, pictures = client.predict(value, api_name=api_name)
            assert text.startswith("That request is not a picture this demo can read") and not pictures, (value, text)
    text, _ = client.predict(handle_file(tmp_path / "year.png"), "no such network", api_name="/read_number_upload")
    assert "no such network" in text
    assert client.predict(canvas, api_name="/read_number")[0].startswith("It reads **2026**")  # still serving


@pytest.mark.slow
def test_requests_are_bounded_before_they_are_read_and_answers_quote_little(served_app):
    # A 300 MB JSON body cost 2.2 GB before any check; a 1 MB network name came back whole in the answer.
    import http.client
    from urllib.parse import urlparse

    address = urlparse(served_app)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    connection.putrequest("POST", "/gradio_api/call/predict")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(300 * 2**20))  # 300 MB announced, the first kilobyte sent
    connection.endheaders(b'{"data": ["' + b"x" * 1024)
    assert connection.getresponse().status == 413  # answered before the rest is waited for
    connection.close()
    canvas = {"background": None, "layers": [], "composite": handle_file(example_paths()[3])}
    verdict, *_ = Client(served_app, verbose=False).predict(canvas, "x" * 2**20, api_name="/predict")
    assert len(verdict) < 400 and "x" * 50 in verdict  # the value quoted, cut short
    verdict, bars, _ = Client(served_app, verbose=False).predict(canvas, MODERN, api_name="/predict")
    assert top_label(bars) == "3"  # and the server goes on serving
