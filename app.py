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
from lenet5.inference import Reading, read_digits
from lenet5.visualize import feature_grid, input_picture

MAX_BATCH = 32  # simultaneous requests are read in one forward pass
LAUNCH_OPTIONS = {"max_file_size": "10mb"}  # a photo of a digit needs no more; bigger uploads are refused

INTRO = """# LeNet-5 reads your handwriting
Draw a digit on the canvas, or upload a photo or scan of one. The bars are the network's softmax; below
them is the 28x28 picture it actually reads (your drawing cropped, fitted into 20x20 and centred by mass,
as MNIST's digits were made) and what its two convolutional layers compute from it."""


def load_demo_model(source: str | None) -> tuple[LeNet5, str]:
    """The model to serve and a line saying which it is; a model that fails to load falls back to the bundled one."""
    if not source:
        return load_model(), "Model: the bundled LeNet-5."
    try:
        return load_model(source), f"Model: `{source}`."
    except ValueError as error:
        return load_model(), f"**Could not load `{source}`** ({error}). Showing the bundled LeNet-5 instead."


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


def read_batch(images: list, model: LeNet5) -> list[list]:
    """Gradio batches simultaneous requests: one list per input in, one list per output out."""
    return [list(column) for column in zip(*(show(r) for r in read_digits(images, model)))]


def read_one(image, model: LeNet5) -> tuple:
    return show(read_digits([image], model)[0])


def build_demo(model_source: str | None = None) -> gr.Blocks:
    model, model_line = load_demo_model(model_source)
    read = partial(read_batch, model=model)
    with gr.Blocks(title="LeNet-5 digit reader") as demo:
        gr.Markdown(INTRO)
        gr.Markdown(model_line, elem_id="model-line")
        with gr.Row():
            with gr.Column(scale=1) as inputs_column:
                with gr.Tab("Draw"):
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
                with gr.Tab("Upload"):
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
            gr.Examples([str(p) for p in example_paths()], inputs=canvas, outputs=outputs,
                        fn=partial(read_one, model=model), run_on_click=True, cache_examples=False,
                        examples_per_page=10, label="Examples: click one to load it, then draw over it")
        events = {"batch": True, "max_batch_size": MAX_BATCH, "show_progress": "hidden", "trigger_mode": "always_last"}
        canvas.change(read, canvas, outputs, api_name="predict", **events)
        upload.change(read, upload, outputs, api_name="predict_upload", **events)
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
