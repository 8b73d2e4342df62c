"""Gradio demo: draw or upload a digit and watch LeNet-5 read it.

    python app.py                                  # bundled weights, http://127.0.0.1:7860
    python app.py --model you/lenet5-mnist         # a Hub repo or a local folder (or env LENET5_MODEL)
    GRADIO_SERVER_PORT=8080 python app.py          # any Gradio setting works as usual
"""

import argparse
import os
from functools import partial

import gradio as gr

from examples.digits import example_paths
from lenet5 import LeNet5, load_model
from lenet5.inference import Reading, bundled_variants, read_digits
from lenet5.visualize import feature_grid, input_picture

MAX_BATCH = 32  # simultaneous requests are read in one forward pass
LAUNCH_OPTIONS = {"max_file_size": "10mb"}  # a photo of a digit needs no more; bigger uploads are refused

INTRO = """# LeNet-5 reads your handwriting
Draw a digit on the canvas, or upload a photo or scan of one. The bars are the network's softmax; below
them is the 28x28 picture it actually reads (your drawing cropped, fitted into 20x20 and centred by mass,
as MNIST's digits were made) and what its two convolutional layers compute from it. Switch networks to
compare today's LeNet-5 with the paper's original on the same digit."""


BUNDLED_NAMES = {
    "modern": "Modern LeNet-5 (ReLU, BatchNorm)",
    "lecun1998": "LeCun et al. 1998 (tanh, RBF outputs)",
}


def load_demo_models(source: str | None) -> tuple[dict[str, LeNet5], str]:
    """The networks to offer, by the name the page shows, and a line saying which is read first. A model
    that fails to load is left out with a message; the bundled ones are always there to compare."""
    models: dict[str, LeNet5] = {}
    line = "Network: the bundled LeNet-5s; pick one to see how the other reads the same digit."
    if source:
        try:
            models[source] = load_model(source)
            line = f"Network: `{source}`."
        except ValueError as error:
            line = f"**Could not load `{source}`** ({error}). Showing the bundled LeNet-5 instead."
    for variant in bundled_variants():
        models[BUNDLED_NAMES[variant]] = load_model(variant)
    return models, line


def show(reading: Reading) -> tuple:
    """One Reading as the values of the page's outputs."""
    maps = reading.feature_maps
    return (
        reading.message,
        reading.probs,
        None if reading.input is None else input_picture(reading.input),
        feature_grid(maps["c1"], cols=3) if maps else None,
        feature_grid(maps["c3"], cols=4) if maps else None,
    )


def read_batch(images: list, networks: list[str], models: dict[str, LeNet5]) -> list[list]:
    """Gradio batches simultaneous requests: one list per input in, one list per output out. Requests
    are read in one forward pass per network they asked for."""
    readings: list[Reading | None] = [None] * len(images)
    for name in dict.fromkeys(networks):
        rows = [i for i, network in enumerate(networks) if network == name]
        model = models.get(name)
        if model is None:
            for i in rows:
                readings[i] = Reading(message=f"There is no network called {name!r} here; choose one of {', '.join(models)}.")
            continue
        for i, reading in zip(rows, read_digits([images[i] for i in rows], model)):
            readings[i] = reading
    return [list(column) for column in zip(*(show(r) for r in readings))]


def read_one(image, network: str, models: dict[str, LeNet5]) -> tuple:
    return tuple(column[0] for column in read_batch([image], [network], models))


def read_visible(tab: str, drawing, upload, network: str, models: dict[str, LeNet5]) -> tuple:
    """Read what the visible tab holds: switching networks re-reads the same digit."""
    return read_one(upload if tab == "upload" else drawing, network, models)


def build_demo(model_source: str | None = None) -> gr.Blocks:
    models, model_line = load_demo_models(model_source)
    read = partial(read_batch, models=models)
    with gr.Blocks(title="LeNet-5 digit reader") as demo:
        gr.Markdown(INTRO)
        gr.Markdown(model_line, elem_id="model-line")
        visible_tab = gr.State("draw")
        with gr.Row():
            with gr.Column(scale=1) as inputs_column:
                network = gr.Radio(list(models), value=next(iter(models)), label="Network", elem_id="network")
                with gr.Tab("Draw") as draw_tab:
                    canvas = gr.Sketchpad(
                        label="Draw a digit",
                        canvas_size=(280, 280),
                        fixed_canvas=True,
                        image_mode="RGBA",
                        type="numpy",
                        brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
                        eraser=gr.Eraser(default_size=24),
                        layers=False,
                        transforms=(),
                        elem_id="canvas",
                    )
                with gr.Tab("Upload") as upload_tab:
                    # A File, not an Image: gr.Image decodes uploads itself and answers a broken file with a
                    # bare "Error"; here every upload reaches preprocess, which says what is wrong with it.
                    upload = gr.File(label="Photo or scan of a digit", type="filepath", elem_id="upload")
                clear = gr.Button("Clear", elem_id="clear")
            with gr.Column(scale=1):
                verdict = gr.Markdown("Draw a digit.", elem_id="verdict")
                bars = gr.Label(num_top_classes=10, label="Softmax", elem_id="bars")
                seen = gr.Image(label="What the network sees (28x28)", interactive=False, height=180)
            with gr.Column(scale=1):
                c1 = gr.Image(label="C1: 6 feature maps, 28x28", interactive=False)
                c3 = gr.Image(label="C3: 16 feature maps, 10x10", interactive=False)
        outputs = [verdict, bars, seen, c1, c3]
        with inputs_column:
            # Loading an example into the pad does not fire its change event, so the click reads it.
            examples = gr.Examples([str(p) for p in example_paths()], inputs=canvas,
                                   examples_per_page=10, label="Examples: click one to load it, then draw over it")
        examples.load_input_event.then(partial(read_one, models=models), [canvas, network], outputs, api_name=False)
        events = {"batch": True, "max_batch_size": MAX_BATCH, "show_progress": "hidden", "trigger_mode": "always_last"}
        drawn = canvas.change(read, [canvas, network], outputs, api_name="predict", **events)
        uploaded = upload.change(read, [upload, network], outputs, api_name="predict_upload", **events)
        draw_tab.select(lambda: "draw", None, visible_tab, api_name=False, queue=False)
        upload_tab.select(lambda: "upload", None, visible_tab, api_name=False, queue=False)
        # Reads still queued with the old network would land after this one and show its answer: drop them.
        network.change(partial(read_visible, models=models), [visible_tab, canvas, upload, network], outputs,
                       api_name=False, show_progress="hidden", cancels=[drawn, uploaded])
        clear.click(lambda: (None, None, "Draw a digit.", None, None, None, None),
                    outputs=[canvas, upload, *outputs], api_name=False, queue=False)
    return demo.queue(default_concurrency_limit=4)


demo = build_demo(os.environ.get("LENET5_MODEL"))

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="Hub repo id or folder to serve (default: $LENET5_MODEL, else the bundled weights)")
    args = parser.parse_args()
    if args.model:
        demo = build_demo(args.model)
    demo.launch(**LAUNCH_OPTIONS)
