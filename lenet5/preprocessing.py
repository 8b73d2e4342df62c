"""Any digit picture -> the 28x28 input MNIST's own digits look like.

MNIST was made by fitting each digit into a 20x20 box (keeping its aspect ratio, anti-aliased) and
placing the box in a 28x28 field so that the digit's centre of mass sits at the centre. A model trained
on MNIST reads real drawings well only when they are put through the same procedure, whatever their
size, position, polarity (dark on light or light on dark) or transparency.

The picture comes bounded from lenet5.decoding (at most MAX_SIDE across); it is read at WORK_SIDE, and
only that small copy is ever converted to float. Everything is numpy, PIL and scipy.ndimage; the result
becomes a tensor once, at the end.
"""

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from PIL import Image

from .decoding import MAX_SIDE, NoDigitError, canvas_image, opaque, shrink, to_picture
from .ink import ink_map

FIELD = 28  # output size
BOX = 20  # the digit's longer side after scaling
CENTER = 14.0  # where MNIST puts the centre of mass (measured on the training set: 14.0 in pixel indices)
WORK_SIDE = 140  # pictures are read at this size: the digit ends up 20 pixels tall, so 7x that keeps every stroke
SMALL_DIGIT = 3 * BOX  # a digit less than this many working pixels across is re-read at up to MAX_SIDE
# Limits of digit-like ink, measured on MNIST's 60,000 training digits: strokes are thin, so at most 20% of
# a digit's ink lies more than 3 pixels inside its outline (25% for the thickest pens in tests/drawn.py;
# 34-44% for a dot, a disc or a dense scribble), and no digit is less than 0.55 times as tall as it is wide.
MAX_SOLID_CORE = 0.3
MIN_HEIGHT_RATIO = 0.35
CHANNEL_WEIGHTS = {1: (1.0,), 3: (0.299, 0.587, 0.114), 4: (0.299, 0.587, 0.114, 0.0)}  # to gray: PIL's L
PLACES = np.arange(BOX, dtype=np.float32)  # row and column numbers in the fitted digit, for its centre of mass


def preprocess(image: Any) -> torch.Tensor:
    """Turn a path, bytes, PIL image, numpy array or Gradio canvas dict into float [1, 1, 28, 28] in [0, 1].

    Raises:
        NoDigitError: the picture holds no ink.
        UnreadableImageError (a ValueError): the input is not a readable picture, or is too large.
    """
    return torch.from_numpy(digit_field(image))[None, None]


def digit_field(image: Any) -> np.ndarray:
    """The same as `preprocess`, as a float32 [28, 28] numpy array."""
    if isinstance(image, dict):
        image = canvas_image(image)
    plane = array_plane(image)
    if plane is not None:
        picture, is_alpha, side = None, False, max(image.shape[:2])
    else:
        picture, is_alpha = to_picture(image)
        plane, side = working_plane(picture), max(picture.size)
    ink = ink_map(plane, is_alpha)
    box = ink_box(ink)
    scale = side / max(ink.shape)
    if scale > 1 and max(box[0].stop - box[0].start, box[1].stop - box[1].start) < SMALL_DIGIT:
        # A small digit in a large picture: read it again from the finer pixels around it.
        if picture is None:
            picture, _ = to_picture(image)
        ink = ink_map(working_plane(picture.crop(around(box, scale, picture.size))), is_alpha)
        box = ink_box(ink)
    return center_digit(ink, box)


@lru_cache(maxsize=64)
def block_weights(factor: int, channels: int) -> np.ndarray:
    """The weights that turn a block's row of `factor` pixels of `channels` (each channel already summed
    down the block's `factor` rows) into the block's mean gray in [0, 1]."""
    weights = np.tile(CHANNEL_WEIGHTS[channels], factor) / (factor * factor * 255)
    weights = weights.astype(np.float32)
    weights.flags.writeable = False  # one cached copy serves every reader, on every thread
    return weights


def array_plane(image: Any) -> np.ndarray | None:
    """The working plane of an opaque 8-bit numpy picture (gray, RGB, or RGBA with no transparent pixel:
    a drawing app's canvas) whose sides are whole multiples of the blocks that bring it to WORK_SIDE;
    None for every other picture.

    Gray is linear in the channels, so each block is summed in every channel and then weighted to gray:
    two numpy passes, where converting to gray, shrinking and copying back through PIL take six calls and
    1.5x (RGBA) to 2.5x (gray) the time, and an exact mean, where PIL rounds to 8 bits after each step
    (the two differ by less than 1/255).
    """
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (2, 3)):
        return None
    h, w, channels = image.shape if image.ndim == 3 else (*image.shape, 1)
    factor, rest = divmod(max(h, w), WORK_SIDE)
    if (rest or factor < 2 or max(h, w) > MAX_SIDE or min(h, w) < factor or h % factor or w % factor
            or channels not in CHANNEL_WEIGHTS):
        return None
    if channels == 4 and not opaque(np.ascontiguousarray(image)):
        return None
    rows = np.add(image[0::factor], image[1::factor], dtype=np.uint16)  # at most 7 rows of 255
    for row in range(2, factor):
        rows += image[row::factor]
    return rows.reshape(h // factor, w // factor, factor * channels) @ block_weights(factor, channels)


def working_plane(picture: Image.Image, side: int = WORK_SIDE) -> np.ndarray:
    """A picture (L or F) -> float32 [H, W] in [0, 1], at most `side` across. It is shrunk while still
    8-bit; only the small copy becomes float."""
    plane = np.asarray(shrink(picture, side))
    return plane * np.float32(1 / 255) if plane.dtype == np.uint8 else plane


def around(box: tuple[slice, slice], scale: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box scaled up to a picture `scale` times larger (of `size` (W, H)), with half its size again as
    margin all round, as a PIL crop box (left, top, right, bottom)."""
    (top, bottom), (left, right) = ((int(s.start * scale), int(s.stop * scale)) for s in box)
    margin = max(bottom - top, right - left) // 2 + 2
    return max(0, left - margin), max(0, top - margin), min(size[0], right + margin), min(size[1], bottom + margin)


def not_digit_like(field: np.ndarray) -> str | None:
    """Why a preprocessed 28x28 input cannot be a digit (a blob, a dense scribble, a flat line), or None.

    A classifier always answers with some digit; this says when the honest answer is "that is no digit".
    """
    mask = field.reshape(FIELD, FIELD) > 0.5
    area = int(mask.sum())
    if area == 0:
        return "only faint marks"
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    if height < MIN_HEIGHT_RATIO * width:
        return "a flat line"
    if solid_core(mask) / area > MAX_SOLID_CORE:
        return "a solid blob or a scribble"
    return None


def solid_core(mask: np.ndarray) -> int:
    """How many pixels of a mask lie 3 or more pixels inside its outline: those whose 7x7 neighbourhood is
    all set (a 7x7 erosion, nothing set outside). Windows of 2, 4, then 7 are each the AND of two shifted
    copies of the last, along rows and then columns: six slices, where scipy's minimum_filter costs twice as long."""
    for shift in (1, 2, 3):
        mask = mask[:, :-shift] & mask[:, shift:]
    for shift in (1, 2, 3):
        mask = mask[:-shift] & mask[shift:]
    return int(np.count_nonzero(mask))


def box_sum(plane: np.ndarray, radius: int) -> np.ndarray:
    """The sum over every (2 radius + 1)-square neighbourhood, zero outside the picture: a row pass and a
    column pass of shifted slices. For the small radii used here this is three to four times faster than
    scipy.ndimage.uniform_filter."""
    h, w = plane.shape
    k = 2 * radius + 1
    padded = np.zeros((h + 2 * radius, w + 2 * radius), dtype=plane.dtype)
    padded[radius : radius + h, radius : radius + w] = plane
    rows = padded[:h].copy()
    for shift in range(1, k):
        rows += padded[shift : shift + h]
    out = rows[:, :w].copy()
    for shift in range(1, k):
        out += rows[:, shift : shift + w]
    return out


def ink_box(ink: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of the strokes, found on a slightly blurred copy so that specks of noise,
    which blur away, cannot stretch it across the picture."""
    h, w = ink.shape
    radius = max(1, round(max(h, w) * 0.005))
    # Inked pixels with inked neighbours: a lone speck's neighbourhood holds at most 1/9 of a full one's
    # ink, a stroke's tip keeps more.
    mask = (ink > 0) & (box_sum(ink, radius) > np.float32(0.12 * (2 * radius + 1) ** 2))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        raise NoDigitError("the picture is blank")
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


@lru_cache(maxsize=1024)
def fit_weights(source: int, target: int) -> np.ndarray:
    """The float32 (target, source) matrix that resizes one axis of `source` pixels to `target` the way
    PIL's bilinear resize does: a triangle filter, widened by the shrink factor so that shrinking
    averages every pixel (anti-aliasing, as MNIST's digits were made), each row normalised to sum to 1.
    Two of these applied to a crop give PIL's result to within 3e-7, in two small matrix products
    instead of a round trip through a PIL image."""
    scale = source / target
    support = max(scale, 1.0)
    centres = (np.arange(target) + 0.5) * scale
    weights = np.maximum(0.0, 1 - np.abs(np.arange(source) + 0.5 - centres[:, None]) / support)
    weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
    weights.flags.writeable = False  # one cached copy serves every reader, on every thread
    return weights


def center_digit(ink: np.ndarray, box: tuple[slice, slice] | None = None) -> np.ndarray:
    """Crop the ink to its box, fit it into BOX x BOX keeping its aspect ratio, centre its mass in FIELD x FIELD."""
    crop = ink[box or ink_box(ink)]
    h, w = crop.shape
    scale = BOX / max(h, w)
    size_h, size_w = max(1, round(h * scale)), max(1, round(w * scale))
    digit = fit_weights(h, size_h) @ (crop @ fit_weights(w, size_w).T)
    np.clip(digit, 0, 1, out=digit)  # the weights are positive and sum to 1: this only trims rounding
    rows = digit.sum(axis=1)
    mass = float(rows.sum())
    if mass <= 0:
        raise NoDigitError("the picture is blank")
    cy = float(rows @ PLACES[:size_h]) / mass
    cx = float(digit.sum(axis=0) @ PLACES[:size_w]) / mass
    top = min(max(round(CENTER - cy), 0), FIELD - size_h)
    left = min(max(round(CENTER - cx), 0), FIELD - size_w)
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top : top + size_h, left : left + size_w] = digit
    return field
