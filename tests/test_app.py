"""The demo: its handler called directly, then app.py launched as a user launches it and called over HTTP
with gradio_client, exactly as a user's script would."""

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app
from examples.digits import STROKES, example_paths, render
from lenet5 import load_model
from lenet5.inference import describe

from conftest import REPO

OUTPUTS = ("verdict", "bars", "seen", "c1", "c3")


MODERN, LECUN = app.BUNDLED_NAMES["modern"], app.BUNDLED_NAMES["lecun1998"]


@pytest.fixture(scope="module")
def models():
    return app.load_demo_models(None)[0]


@pytest.fixture(scope="module")
def model(models):
    return {MODERN: models[MODERN]}


def read_one(image, models, network: str = MODERN) -> dict:
    return dict(zip(OUTPUTS, app.read_one(image, network, models)))


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


@pytest.mark.parametrize("network", [MODERN, LECUN])
def test_the_handler_reads_every_drawn_digit_and_shows_its_insides(models, network):
    for digit, strokes in STROKES.items():
        out = read_one(canvas_dict(render(strokes)), models, network)
        assert top_label(out["bars"]) == digit
        assert f"It is a **{digit}**" in out["verdict"]
        assert out["seen"].shape == (224, 224) and out["seen"].dtype == np.uint8
        assert out["c1"].shape == (2 * 84 + 4, 3 * 84 + 8, 3)  # 6 maps in 2 rows of 3
        assert out["c3"].shape == (4 * 84 + 12, 4 * 84 + 12, 3)  # 16 maps in 4 rows of 4


def test_nothing_to_read_gets_a_message_instead_of_bars(model):
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
        out = read_one(image, model)
        assert out["bars"] is None and out["c1"] is None, name
        assert "Draw" in out["verdict"], name


def test_bad_files_get_a_clear_message_and_never_crash(model, tmp_path):
    digit = render(STROKES["4"])
    frames = [digit.convert("P"), Image.new("P", digit.size, 255)]
    files = {
        "notes.txt": None,
        "truncated.png": None,
        "one_pixel.png": Image.new("L", (1, 1), 0),
        "huge.png": digit.resize((8000, 8000)),
        "deep.png": Image.fromarray(np.asarray(digit).astype(np.uint16) * 257),
        "palette.png": digit.convert("P"),
        "cmyk.jpg": digit.convert("CMYK"),
        "transparent.png": Image.new("RGBA", (64, 64), (0, 0, 0, 0)),
        "white.png": Image.new("RGB", (64, 64), "white"),
    }
    for name, image in files.items():
        if image is not None:
            image.save(tmp_path / name)
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:])
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "palette.png").read_bytes()[:100])
    expected = {
        "notes.txt": "is not an image file",
        "truncated.png": "is damaged or truncated",
        "one_pixel.png": "Nothing to read",
        "transparent.png": "Nothing to read",
        "white.png": "Nothing to read",
    }
    for path in sorted(tmp_path.iterdir()):
        out = read_one(str(path), model)
        if path.name in expected:
            assert expected[path.name] in out["verdict"], path.name
            assert out["bars"] is None, path.name
        else:  # readable pictures of a 4, however they are stored
            assert top_label(out["bars"]) == "4", path.name


def test_a_low_top_probability_is_shown_as_a_guess():
    assert describe([("4", 0.45), ("9", 0.40)]).startswith("Not sure: maybe **4** (45%), or **9** (40%)")
    assert describe([("7", 0.93), ("1", 0.02)]).startswith("It is a **7** (93%)")


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


def test_a_model_that_cannot_load_falls_back_to_the_bundled_ones(hub):
    models, line = app.load_demo_models("tester/no-such-model")
    assert "Could not load `tester/no-such-model`" in line and "bundled" in line
    assert list(models) == [MODERN, LECUN]
    x = np.asarray(render(STROKES["2"]))
    assert top_label(read_one(x, models)["bars"]) == "2"


def test_a_model_given_on_the_command_line_comes_first(tmp_path):
    load_model("lecun1998").save_pretrained(tmp_path / "mine")
    models, line = app.load_demo_models(str(tmp_path / "mine"))
    assert list(models) == [str(tmp_path / "mine"), MODERN, LECUN] and "mine" in line


# -- app.py as a running server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served_app():
    """`python app.py` on a free 127.0.0.1 port, stopped after the module's tests."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False"}
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
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_gradio_client_reads_a_drawn_digit(served_app, tmp_path):
    client = Client(served_app, verbose=False)
    for digit in ("0", "3", "8"):
        render(STROKES[digit]).convert("RGBA").save(tmp_path / f"{digit}.png")
        canvas = {"background": None, "layers": [], "composite": handle_file(tmp_path / f"{digit}.png")}
        verdict, bars, seen, c1, c3 = client.predict(canvas, api_name="/predict")  # the first network
        assert top_label(bars) == digit and f"**{digit}**" in verdict
        assert Image.open(seen).size == (224, 224) and Image.open(c3).size == (348, 348)
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


def test_forty_people_at_once_all_get_their_answer(served_app):
    # Only the answers matter here: the 120 feature-map pictures are left on the server (downloading them
    # all at once through one client can race the server's keep-alive timeout, a client-side artefact).
    client = Client(served_app, verbose=False, download_files=False)
    digits = [str(i % 10) for i in range(40)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        jobs = [pool.submit(client.predict, handle_file(example_paths()[int(d)]), api_name="/predict_upload")
                for d in digits]
        answers = [top_label(job.result(timeout=120)[1]) for job in jobs]
    assert answers == digits
