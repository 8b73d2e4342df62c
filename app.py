"""Gradio demo: draw or upload a digit and watch LeNet-5 read it.

    python app.py                                  # bundled weights, http://127.0.0.1:7860
    python app.py --model you/lenet5-mnist         # a Hub repo or a local folder (or env LENET5_MODEL)
    GRADIO_SERVER_PORT=8080 python app.py          # any Gradio setting works as usual
"""

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import gradio as gr
from gradio.data_classes import FileData
from gradio.exceptions import InvalidPathError
from pydantic import ValidationError

from examples.digits import example_paths
from lenet5 import LeNet5, NumberReading, load_model, read_number
from lenet5.gradio_io import CSS, PICK_BRUSH, ReaderBlocks, Refused, drawing_pad, is_empty, press_trash, quoted
from lenet5.hub import bundled_variants, model_to_serve
from lenet5.inference import Reading, read_digits
from lenet5.limits import request_limits
from lenet5.visualize import boxed_number, digit_row, feature_grid, html_figure, input_picture

README = Path(__file__).parent / "README.md"  # also the Space's configuration: its `models:` are served first
MAX_BATCH = 32  # simultaneous requests are read in one forward pass
UNSURE_BELOW = 0.6  # a top probability under this is shown as a guess, not an answer
# Uploads over 10 MB are refused before they are stored, the rest by request_limits; agents use /gradio_api/mcp/.
LAUNCH_OPTIONS = {"max_file_size": "10mb", "js": PICK_BRUSH, "css": CSS, "mcp_server": True}
START = "Draw a digit."
CACHE_LIFETIME = (600, 1800)  # every 10 minutes, delete uploads and outputs older than 30 minutes
INTRO = """# LeNet-5 reads your handwriting
Draw a digit, or upload a photo of one: the bars are the network's softmax, beside the 28x28 picture it reads
(cropped, fitted into 20x20 and centred by mass, as MNIST's digits were made) and what its convolutions compute.
Switch networks to compare today's LeNet-5 with the paper's; the **Number** tab reads a whole number."""

BUNDLED_NAMES = {"modern": "Modern LeNet-5 (ReLU, max-pool)", "lecun1998": "LeCun et al. 1998 (tanh, RBF outputs)"}
# The sentences people read for each reason a Reading gives (lenet5.inference.REASONS), and for refused requests
SENTENCES = {
    "blank": "Nothing to read: {detail}. Draw or upload a digit.",
    "not_a_digit": "That looks like {detail}, not a digit. Draw a digit.",
    "unreadable": "Cannot read that picture: {detail}.",
    "too_large": "That picture is too large to read: {detail}.",
    "refused": "{detail}",
}
NUMBER_START = "Write a number."
NUMBER_SENTENCES = {
    "blank": "Nothing to read: {detail}. Write a number.",
    "not_a_digit": "No digits there: {detail}. Write a number.",
}
NUMBER_PREVIEW = 560  # pixels across for the picture with the boxes drawn over it
SERVER_PATH = "Pictures must be sent with the request; this demo does not read files named by a path."
NOT_A_PICTURE = "That request is not a picture this demo can read"


def refusal(error: Exception) -> str:
    """One sentence for a request Gradio refused: what was wrong, never a traceback."""
    if isinstance(error, InvalidPathError):
        return SERVER_PATH
    if isinstance(error, gr.Error):  # a component's own check, e.g. a network name that is not offered
        return f"That request cannot be read: {str(error.message)[:200]}"  # it may quote the request's value
    if isinstance(error, ValidationError):  # the request's JSON does not have the component's shape
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the value"
        reason = first["msg"].split(". ")[0].removeprefix("Value error, ")
        return f"That request is not a picture this demo can read: {where}: {reason}."
    return f"{NOT_A_PICTURE} ({type(error).__name__})."


def describe(ranked: list[tuple[str, float]]) -> str:
    """The verdict in words: the first and second guess, or a guess when the network is unsure."""
    (first, p1), (second, p2) = ranked[:2]
    if p1 < UNSURE_BELOW:
        return f"Not sure: maybe **{first}** ({p1:.0%}), or **{second}** ({p2:.0%})."
    article = "an" if first == "8" else "a"
    return f"It is {article} **{first}** ({p1:.0%}). Second guess: {second} ({p2:.0%})."


def insides(reading: Reading) -> str:
    """The 28x28 input and the C1 and C3 maps, inline: no files to fetch, each answer is one message."""
    if reading.input is None:
        return ""
    parts = [html_figure(input_picture(reading.input), "What the network reads (28x28)", 168)]
    if reading.maps:
        parts.append(html_figure(feature_grid(reading.maps["c1"], cols=3), "C1: 6 feature maps, 28x28", 258))
        parts.append(html_figure(feature_grid(reading.maps["c3"], cols=4), "C3: 16 feature maps, 10x10", 258))
    return "".join(parts)


def show(reading: Reading | None) -> tuple:
    """One Reading as the values of the page's outputs: verdict, bars, pictures (None: nothing given yet)."""
    if reading is None:
        return START, None, ""
    if reading.reason:
        return SENTENCES[reading.reason].format(detail=reading.detail), None, insides(reading)
    return describe(reading.ranked), reading.probs, insides(reading)


def load_demo_models(source: str | None) -> tuple[dict[str, LeNet5], str]:
    """The networks by the names the page shows, and its line on a model asked for (left out if it fails to load)."""
    models: dict[str, LeNet5] = {}
    line = ""  # the bundled networks need no word: the choice of network shows them
    if source:
        try:
            models[source] = load_model(source)
            line = f"Network: `{source}`."
            print(f"network {source}: loaded")
        except ValueError as error:
            print(f"network {source}: not served, {error}", file=sys.stderr)
            line = f"The model `{source}` could not be loaded, so the bundled LeNet-5s are shown: {error}."
    for variant in bundled_variants():
        models[BUNDLED_NAMES[variant]] = load_model(variant)
        print(f"network {BUNDLED_NAMES[variant]}: bundled weights ({variant})")
    return models, line


def request_refusal(image, network, models: dict[str, LeNet5]) -> str | None:
    """Why a request cannot be read at all (Gradio refused its picture, or it names no network here), or None."""
    if refused := next((value for value in (image, network) if isinstance(value, Refused)), None):
        return refusal(refused.error)
    if not isinstance(network, str) or network not in models:
        return f"There is no network called {quoted(network)} here; choose one of {', '.join(models)}."


def read_batch(images: list, networks: list, models: dict[str, LeNet5]) -> list[list]:
    """Simultaneous requests, in one forward pass per network asked for; a bad one never fails the others."""
    readings: list[Reading | None] = [None] * len(images)
    empty = [is_empty(image) for image in images]  # a cleared canvas or upload: the page starts over
    for i, (image, network) in enumerate(zip(images, networks)):
        if not empty[i] and (refused := request_refusal(image, network, models)):
            readings[i] = Reading(reason="refused", detail=refused)
    for name in models:
        rows = [i for i, network in enumerate(networks) if readings[i] is None and not empty[i] and network == name]
        for i, reading in zip(rows, read_digits([images[i] for i in rows], models[name])):
            readings[i] = reading
    return [list(column) for column in zip(*(show(r) for r in readings))]


def one(batch: Callable, image, network, models: dict[str, LeNet5]) -> tuple:
    return tuple(column[0] for column in batch([image], [network], models))


def read_visible(tab, drawing, upload, network, models: dict[str, LeNet5]) -> tuple:  # a network switch re-reads
    return one(read_batch, upload if tab == "upload" else drawing, network, models)


def number_pictures(image, reading: NumberReading) -> str:
    """The picture with each digit's box and top guesses drawn over it, and the 28x28 inputs in a row."""
    if not reading.digits and not reading.left_out:
        return ""
    preview = boxed_number(image, reading, NUMBER_PREVIEW)
    parts = [html_figure(preview, "Each digit found, with the network's top two guesses", preview.shape[1])]
    if reading.digits:
        row = digit_row(reading)
        parts.append(html_figure(row, "What the network reads, digit by digit (28x28 each)", 3 * row.shape[1]))
    return "".join(parts)


def show_number(image, reading: NumberReading | None) -> tuple:
    if reading is None:
        return NUMBER_START, ""
    if reading.reason:
        return NUMBER_SENTENCES.get(reading.reason, SENTENCES.get(reading.reason, "{detail}")).format(
            detail=reading.detail), number_pictures(image, reading) if image is not None else ""
    guesses = ", ".join(f"{d.digit} ({max(d.probs.values()):.0%})" for d in reading.digits)
    return f"It reads **{reading.text}**: {guesses}.", number_pictures(image, reading)


def read_number_batch(images: list, networks: list, models: dict[str, LeNet5]) -> list[list]:
    """Like read_batch, for whole numbers: every request is answered on its own, a bad one in words."""
    def answer(image, network) -> tuple:
        if is_empty(image):
            return show_number(None, None)
        if refused := request_refusal(image, network, models):
            return refused, ""
        return show_number(image, read_number(image, models[network]))
    return [list(column) for column in zip(*(answer(image, network) for image, network in zip(images, networks)))]


def agent_tools(models: dict[str, LeNet5]) -> tuple[Callable, Callable]:
    """The demo as tools for AI agents (Gradio's MCP server), whose names, docstrings and type hints they read."""
    networks = {**{variant: name for variant, name in BUNDLED_NAMES.items() if name in models}, **{n: n for n in models}}

    def chosen(image, network) -> tuple[str | None, LeNet5 | None, str | None]:
        if isinstance(image, Refused):  # a URL, a server path or a malformed value, refused before it was read
            return None, None, refusal(image.error)
        if not (isinstance(image, dict) and isinstance(image.get("path"), str)):  # a string would name a server file
            return None, None, SERVER_PATH if isinstance(image, str) else f"{NOT_A_PICTURE} ({type(image).__name__})."
        if not isinstance(network, str) or network not in networks:
            offered = ", ".join(variant for variant in BUNDLED_NAMES if variant in networks)
            return None, None, f"There is no network called {quoted(network)} here; choose one of {offered}."
        return image["path"], models[networks[network]], None

    def read_handwritten_digit(image: FileData, network: str = "modern") -> str:
        """Read the handwritten digit (0-9) in a picture: a drawing, a photo or a scan of one digit.
        Args:
            image: the picture as a data: URL ("data:image/png;base64,..."), PNG, JPEG or another common format, at most 4096x4096 pixels and 10 MB.
            network: "modern" (LeNet-5 with ReLU and max-pooling, the most accurate) or "lecun1998" (the paper's network of 1998).
        Returns:
            a JSON object: {"digit": "7", "probability": 0.93, "probabilities": {"0": ..., "9": ...}, "refusal": null}, or when there is no digit to read {"digit": null, "probability": null, "probabilities": null, "refusal": "<why, in one sentence>"}.
        """
        source, model, refused = chosen(image, network)
        reading = Reading(reason="refused", detail=refused) if refused else read_digits([source], model, maps=False)[0]
        return json.dumps({**reading.as_dict(), "refusal": SENTENCES[reading.reason].format(detail=reading.detail)
                           if reading.reason else None})

    def read_handwritten_number(image: FileData, network: str = "modern") -> str:
        """Read a whole handwritten number (a year, an age, a phone number) in a picture, digit by digit, left to right.
        Args:
            image: the picture as a data: URL ("data:image/png;base64,..."), PNG, JPEG or another common format, at most 4096x4096 pixels and 10 MB, the digits on one line.
            network: "modern" (LeNet-5 with ReLU and max-pooling, the most accurate) or "lecun1998" (the paper's network of 1998).
        Returns:
            a JSON object: {"number": "2026", "digits": [{"digit": "2", "probability": 0.99, "box": [x0, y0, x1, y1]}, ...], "refusal": null}, boxes in the picture's pixels, or when no number is read {"number": null, "digits": [], "refusal": "<why, in one sentence>"}.
        """
        source, model, refused = chosen(image, network)
        reading = NumberReading(reason="refused", detail=refused) if refused else read_number(source, model)
        return json.dumps({**reading.as_dict(), "refusal": show_number(None, reading)[0] if reading.reason else None})

    return read_handwritten_digit, read_handwritten_number


def build_demo(model_source: str | None = None) -> gr.Blocks:
    models, model_line = load_demo_models(model_source)
    read = partial(read_batch, models=models)
    with ReaderBlocks(title="LeNet-5 digit reader", delete_cache=CACHE_LIFETIME) as demo:
        gr.Markdown(INTRO, elem_id="intro")
        gr.Markdown(model_line, elem_id="model-line", visible=bool(model_line))
        visible_tab = gr.State("draw")
        network = gr.Radio(list(models), value=next(iter(models)), label="Network", elem_id="network")
        with gr.Tab("One digit"):
            # Wide screens: drawing, answer and the network's insides side by side; narrow ones stack them in order.
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    with gr.Tab("Draw") as draw_tab:
                        canvas = drawing_pad("Draw a digit", width=280, elem_id="canvas")
                    with gr.Tab("Upload") as upload_tab:
                        # A File, not an Image: gr.Image decodes uploads itself and answers a broken file with a
                        # bare "Error"; here every upload reaches the reader, which says what is wrong with it.
                        upload = gr.File(label="Photo or scan of a digit", type="filepath", elem_id="upload")
                    clear = gr.Button("Clear", elem_id="clear")
                with gr.Column(scale=1, min_width=300):
                    verdict = gr.Markdown(START, elem_id="verdict")
                    bars = gr.Label(num_top_classes=10, label="Softmax", elem_id="bars")
                with gr.Column(scale=1, min_width=300):
                    pictures = gr.HTML(elem_id="insides")
            with gr.Column(elem_id="examples"):
                examples = gr.Examples([str(p) for p in example_paths()], inputs=canvas, examples_per_page=10,
                                       label="Examples: click one to load it, then draw over it")
        with gr.Tab("Number"):
            number_canvas = drawing_pad("Write a number: a year, your age, a phone number", width=840,
                                        elem_id="number-canvas")
            with gr.Row():
                number_upload = gr.File(label="...or upload a photo or scan of one", type="filepath",
                                        elem_id="number-upload")
                number_clear = gr.Button("Clear", elem_id="number-clear")
            number_text = gr.Markdown(NUMBER_START, elem_id="number-text")
            number_pictures = gr.HTML(elem_id="number-insides")
        tools = agent_tools(models)
        demo.mcp_tools = frozenset(tool.__name__ for tool in tools)
        tool_inputs = [block for tool in tools for block in gr.api(tool, concurrency_limit=4)["inputs"]]
        demo.reading_inputs = frozenset({canvas._id, upload._id, number_canvas._id, number_upload._id, *tool_inputs})
        outputs = [verdict, bars, pictures]
        # Loading an example fires no change event of the pad: the click reads it.
        examples.load_input_event.then(partial(one, read_batch, models=models), [canvas, network], outputs, api_name=False)
        events = {"batch": True, "max_batch_size": MAX_BATCH, "show_progress": "hidden", "trigger_mode": "always_last"}
        drawn = canvas.change(read, [canvas, network], outputs, api_name="predict", **events)
        uploaded = upload.change(read, [upload, network], outputs, api_name="predict_upload", **events)
        draw_tab.select(lambda: "draw", None, visible_tab, api_name=False, queue=False)
        upload_tab.select(lambda: "upload", None, visible_tab, api_name=False, queue=False)
        # Reads still queued with the old network would land after this one and show its answer: drop them.
        network.change(partial(read_visible, models=models), [visible_tab, canvas, upload, network], outputs,
                       api_name=False, show_progress="hidden", cancels=[drawn, uploaded])
        # No progress overlay for Clear: left over the pad, it took every click until the page was reloaded.
        clear.click(lambda: (None, START, None, ""), None, [upload, *outputs], js=press_trash("canvas"), api_name=False,
                    show_progress="hidden")
        read_numbers = partial(read_number_batch, models=models)
        number_outputs = [number_text, number_pictures]
        number_drawn = number_canvas.change(read_numbers, [number_canvas, network], number_outputs,
                                            api_name="read_number", **events)
        number_uploaded = number_upload.change(read_numbers, [number_upload, network], number_outputs,
                                               api_name="read_number_upload", **events)
        network.change(partial(one, read_number_batch, models=models), [number_canvas, network], number_outputs,
                       api_name=False, show_progress="hidden", cancels=[number_drawn, number_uploaded])
        number_clear.click(lambda: (None, NUMBER_START, ""), None, [number_upload, *number_outputs],
                           js=press_trash("number-canvas"), api_name=False, show_progress="hidden")
    return demo.queue(default_concurrency_limit=4)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="Hub repo or folder to serve (default: $LENET5_MODEL, a Space's models:, bundled)")
    args = parser.parse_args()
    build_demo(args.model or model_to_serve(README)).launch(**LAUNCH_OPTIONS, app_kwargs=request_limits())
else:  # `gradio app.py` and other importers find the demo here
    demo = build_demo(model_to_serve(README))
