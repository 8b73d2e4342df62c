"""MNIST test digits re-drawn the way people give them to the app: on a 280x280 canvas with thin or thick
pens, small and off-centre or filling the canvas, photographed on paper with uneven light and JPEG
noise, chalk on a dark board, sent as transparent RGBA, or cropped to the ink (in pen, marker or chalk)
with or without a margin.
Used by the tests and by `python bench/drawn_accuracy.py`, which prints the accuracy per style.
"""

import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CANVAS = 280


def upscale(digit: torch.Tensor, box: int) -> torch.Tensor:
    """uint8 [28, 28] -> float [box, box] ink in [0, 1], smooth as a pen stroke."""
    x = digit.float()[None, None] / 255
    return F.interpolate(x, size=(box, box), mode="bicubic", align_corners=False)[0, 0].clamp(0, 1)


def pen(ink: torch.Tensor, width_change: int) -> torch.Tensor:
    """Thicken (> 0) or thin (< 0) the strokes by about 2 * |width_change| pixels, then make them solid ink."""
    k = 2 * abs(width_change) + 1
    x = ink[None, None]
    x = F.max_pool2d(x, k, 1, k // 2) if width_change > 0 else -F.max_pool2d(-x, k, 1, k // 2)
    return (x[0, 0] > 0.35).float()


def place(ink: torch.Tensor, top: int, left: int, size: int = CANVAS) -> np.ndarray:
    canvas = torch.zeros(size, size)
    h, w = ink.shape
    canvas[top : top + h, left : left + w] = ink
    return canvas.numpy()


def black_on_white(ink: np.ndarray) -> np.ndarray:
    return np.round((1 - ink) * 255).astype(np.uint8)


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def thin_pen(digit, rng) -> np.ndarray:
    return black_on_white(place(pen(upscale(digit, 200), -3), 40, 40))


def thick_pen(digit, rng) -> np.ndarray:
    return black_on_white(place(pen(upscale(digit, 200), 6), 40, 40))


def small_off_centre(digit, rng) -> np.ndarray:
    top, left = rng.integers(0, CANVAS - 90, size=2)
    return black_on_white(place(pen(upscale(digit, 90), 1), int(top), int(left)))


def fills_canvas(digit, rng) -> np.ndarray:
    return black_on_white(place(pen(upscale(digit, 280), 0), 0, 0))


def photo_of_paper(digit, rng) -> np.ndarray:
    """Dark ink on gray paper under uneven light, sensor noise, RGB, JPEG at quality 50, 480x480."""
    ink = place(pen(upscale(digit, 260), 2), int(rng.integers(40, 180)), int(rng.integers(40, 180)), size=480)
    light = np.linspace(0.65, 0.9, 480)[None, :] * np.linspace(0.9, 1.0, 480)[:, None]
    gray = light * (1 - ink) + 0.12 * ink + rng.normal(0, 0.04, ink.shape)
    rgb = np.clip(np.stack([gray, gray * 0.97, gray * 0.9], axis=2) * 255, 0, 255).astype(np.uint8)
    return jpeg(rgb, quality=50)


def chalk_on_board(digit, rng) -> np.ndarray:
    return chalk(place(pen(upscale(digit, 200), 1), 40, 40), rng)


def chalk(ink: np.ndarray, rng) -> np.ndarray:
    """Light strokes on a dark, noisy background."""
    gray = 0.18 + 0.7 * ink + rng.normal(0, 0.05, ink.shape)
    return jpeg(np.clip(gray * 255, 0, 255).astype(np.uint8), quality=70)


def transparent_canvas(digit, rng) -> np.ndarray:
    """What an API client may send: no background, the ink only in the alpha channel."""
    ink = place(pen(upscale(digit, 200), 0), 40, 40)
    rgba = np.zeros((CANVAS, CANVAS, 4), dtype=np.uint8)
    rgba[:, :, 3] = np.round(ink * 255).astype(np.uint8)
    return rgba


Style = Callable[[torch.Tensor, np.random.Generator], np.ndarray]


def cropped(margin: int, width_change: int = 0, board: bool = False) -> Style:
    """A digit cropped to its ink's box, its longer side scaled to 200 pixels, with `margin` pixels of paper
    all round: 0, and the ink touches the picture's edges, as people crop photos and scans. A marker
    (`width_change` > 0) is cropped again after thickening; `board` draws chalk on a dark board."""
    def style(digit: torch.Tensor, rng) -> np.ndarray:
        ink = upscale_box(to_box(digit.float() / 255))
        if width_change:
            ink = to_box(pen(ink, width_change))
        ink = np.pad(ink.numpy(), margin)
        return chalk(ink, rng) if board else black_on_white(ink)
    return style


def to_box(ink: torch.Tensor) -> torch.Tensor:
    rows, cols = torch.nonzero(ink.amax(1)).flatten(), torch.nonzero(ink.amax(0)).flatten()
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def upscale_box(box: torch.Tensor, side: int = 200) -> torch.Tensor:
    scale = side / max(box.shape)
    size = [max(1, round(length * scale)) for length in box.shape]
    return F.interpolate(box[None, None], size=size, mode="bicubic", align_corners=False)[0, 0].clamp(0, 1)


STYLES: dict[str, Style] = {
    "thin pen": thin_pen,
    "thick pen": thick_pen,
    "small, off-centre": small_off_centre,
    "fills the canvas": fills_canvas,
    "photo of paper (JPEG)": photo_of_paper,
    "light on dark": chalk_on_board,
    "transparent RGBA": transparent_canvas,
    "cropped to the ink": cropped(0),
    "cropped, 2 px margin": cropped(2),
    "cropped, 20 px margin": cropped(20),
    "marker, cropped to the ink": cropped(0, width_change=4),
    "marker, 2 px margin": cropped(2, width_change=4),
    "marker, 20 px margin": cropped(20, width_change=4),
    "chalk, cropped to the ink": cropped(0, width_change=4, board=True),
}


def drawn_set(images: torch.Tensor, style: str, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [STYLES[style](digit, rng) for digit in images]
