"""Pictures of what the network sees and computes: its 28x28 input, its feature maps as image grids (at
their own resolution: a page enlarges them without blurring; see app.py) and a number with its digits boxed."""

import base64
import io
from typing import Any

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from .decoding import source_size, to_picture
from .numbers import NumberReading

VIRIDIS = colormaps["viridis"]
LABEL_FONT = ImageFont.load_default(size=16)


def input_picture(x: np.ndarray) -> np.ndarray:
    """The 28x28 network input as a uint8 gray picture, ink white on black."""
    return (np.clip(np.asarray(x, dtype=np.float32).reshape(x.shape[-2:]), 0, 1) * 255).round().astype(np.uint8)


def feature_grid(maps: np.ndarray, cols: int, gap: int = 1) -> np.ndarray:
    """Feature maps [C, H, W] as one RGB uint8 grid (white gaps), each map scaled to its own range and coloured."""
    channels, h, w = maps.shape
    rows = -(-channels // cols)
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    normed = (maps - low) / np.maximum(high - low, 1e-6)
    colours = (VIRIDIS(normed)[..., :3] * 255).astype(np.uint8)  # (C, H, W, 3)
    grid = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i, cell in enumerate(colours):
        r, c = divmod(i, cols)
        grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = cell
    return grid


def png_data_uri(pixels: np.ndarray) -> str:
    """A picture as an inline PNG: pages show it without a file to fetch."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def html_figure(pixels: np.ndarray, caption: str, width: int) -> str:
    """A picture with its caption as an HTML figure, the picture inline and drawn with sharp pixels."""
    return (f'<figure class="inside"><img src="{png_data_uri(pixels)}" width="{width}" alt="{caption}" '
            f'style="image-rendering: pixelated"><figcaption>{caption}</figcaption></figure>')


def boxed_number(image: Any, reading: NumberReading, width: int) -> np.ndarray:
    """The picture of a number at most `width` across, each digit boxed with the network's top two guesses
    (in orange and blue) and each mark left out boxed in gray."""
    picture, _ = to_picture(image)
    source_width, source_height = source_size(image)
    scale = min(width / picture.width, 1.0)
    preview = picture.convert("RGB").resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))))
    to_preview = (preview.width / source_width, preview.height / source_height)
    draw = ImageDraw.Draw(preview)
    for box, _ in reading.left_out:
        draw.rectangle(scaled(box, to_preview), outline="#999999", width=2)
    for digit in reading.digits:
        box = scaled(digit.box, to_preview)
        draw.rectangle(box, outline="#d9480f", width=3)
        guesses = sorted(digit.probs.items(), key=lambda item: -item[1])[:2]
        draw.text((box[0], max(0, box[1] - 19)), " ".join(f"{d}:{p:.0%}" for d, p in guesses), fill="#1864ab",
                  font=LABEL_FONT)
    return np.asarray(preview)


def digit_row(reading: NumberReading) -> np.ndarray:
    """The 28x28 inputs of a number's digits side by side, two white columns apart."""
    return np.concatenate([np.pad(input_picture(d.input), ((0, 0), (0, 2)), constant_values=255)
                           for d in reading.digits], axis=1)


def scaled(box: tuple[int, int, int, int], scale: tuple[float, float]) -> tuple[int, int, int, int]:
    return (round(box[0] * scale[0]), round(box[1] * scale[1]), round(box[2] * scale[0]), round(box[3] * scale[1]))
