"""Any digit picture -> the 28x28 input MNIST's own digits look like.

MNIST was made by fitting each digit into a 20x20 box (keeping its aspect ratio, anti-aliased) and
placing the box in a 28x28 field so that the digit's centre of mass sits at the centre. A model trained
on MNIST reads real drawings well only when they are put through the same procedure, whatever their
size, position, polarity (dark on light or light on dark) or transparency.
"""

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

FIELD = 28  # output size
BOX = 20  # the digit's longer side after scaling
CENTER = 14.0  # where MNIST puts the centre of mass (measured on the training set: 14.0 in pixel indices)
MAX_SIDE = 1024  # larger files are decoded at about this size (JPEG draft mode, thumbnails)
WORK_SIDE = 140  # and every picture is area-averaged down to this before any work: the digit ends up
# 20 pixels tall, so 7x that keeps every stroke and makes a 280x280 canvas four times cheaper to read
SMALL_DIGIT = 3 * BOX  # a digit less than this many working pixels across is re-read at full resolution
GRAY_WEIGHTS = np.full(3, 1 / 3, dtype=np.float32)
FLAT_BORDER = 0.02  # a frame varying less than this is plain paper or canvas: no lighting to model
BACKGROUND_SIZE = 64  # the background is estimated on a copy this large: lighting varies slowly
BACKGROUND_KERNEL = 0.25  # strokes narrower than this fraction of the picture count as ink, not background
MIN_CONTRAST = 0.1  # less difference than this between ink and background reads as a blank picture
NOISE_FLOOR = 0.2  # ink weaker than this fraction of the strongest strokes is paper texture or JPEG noise
# Limits of digit-like ink, measured on MNIST's 60,000 training digits: strokes are thin, so at most 20% of
# a digit's ink lies more than 3 pixels inside its outline (25% for the thickest pens in tests/drawn.py;
# 34-44% for a dot, a disc or a dense scribble), and no digit is less than 0.55 times as tall as it is wide.
MAX_SOLID_CORE = 0.3
MIN_HEIGHT_RATIO = 0.35


class NoDigitError(ValueError):
    """The picture was read but holds no ink: an empty canvas, a blank page, a fully transparent image."""


def preprocess(image: Any) -> torch.Tensor:
    """Turn a path, PIL image, numpy array or Gradio canvas dict into float [1, 1, 28, 28] in [0, 1].

    Raises:
        NoDigitError: the picture holds no ink.
        ValueError: the input is not a readable picture (wrong type, unreadable file, odd shape).
    """
    plane, is_alpha = intensity(to_array(image))
    ink = ink_map(shrink(plane, WORK_SIDE), is_alpha)
    box = ink_box(ink)
    scale = plane.shape[0] / ink.shape[0]
    if scale > 1 and max(box[0].stop - box[0].start, box[1].stop - box[1].start) < SMALL_DIGIT:
        # A small digit in a large picture: read it again from the full-resolution pixels around it.
        ink = ink_map(shrink(plane[around(box, scale, plane.shape)], WORK_SIDE), is_alpha)
        box = ink_box(ink)
    return torch.from_numpy(center_digit(ink, box))[None, None]


def around(box: tuple[slice, slice], scale: float, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The box scaled up to a picture `scale` times larger, with half its size again as margin all round."""
    (top, bottom), (left, right) = ((int(s.start * scale), int(s.stop * scale)) for s in box)
    margin = max(bottom - top, right - left) // 2 + 2
    return (slice(max(0, top - margin), min(shape[0], bottom + margin)),
            slice(max(0, left - margin), min(shape[1], right + margin)))


def not_digit_like(x: torch.Tensor) -> str | None:
    """Why a preprocessed [1, 1, 28, 28] input cannot be a digit (a blob, a dense scribble, a flat line), or None.

    A classifier always answers with some digit; this says when the honest answer is "that is no digit".
    """
    mask = (x.reshape(FIELD, FIELD) > 0.5).float()
    area = mask.sum()
    rows, cols = torch.nonzero(mask.any(1)), torch.nonzero(mask.any(0))
    if area == 0:
        return "only faint marks"
    height, width = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
    if height < MIN_HEIGHT_RATIO * width:
        return "a flat line"
    core = -F.max_pool2d(-mask[None, None], 7, stride=1, padding=3)  # erosion: what lies 3+ pixels inside
    if core.sum() / area > MAX_SOLID_CORE:
        return "a solid blob or a scribble"
    return None


def to_array(image: Any) -> np.ndarray:
    """Any supported input -> float32 [H, W, C] in [0, 1] with C = 1 (gray), 3 (RGB) or 4 (RGBA)."""
    if image is None:
        raise NoDigitError("no image was given")
    if isinstance(image, dict):
        return to_array(canvas_image(image))
    if isinstance(image, (str, Path)):
        return to_array(open_image(Path(image)))
    if isinstance(image, Image.Image):
        return pil_to_array(image)
    if isinstance(image, np.ndarray):
        return numpy_to_array(image)
    raise ValueError(
        f"cannot read a digit from a {type(image).__name__}: pass a file path, a PIL image, "
        "a numpy array or a Gradio canvas dict"
    )


def canvas_image(value: dict) -> Any:
    """The picture in the dict a Gradio Sketchpad/ImageEditor sends: its composite, else its background."""
    for key in ("composite", "background"):
        if value.get(key) is not None:
            return value[key]
    raise NoDigitError("the canvas is empty")


def open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode big photos at reduced size right away
            image.load()
            return image.copy()
    except FileNotFoundError:
        raise ValueError(f"no such image file: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path.name} is not an image file PIL can read") from None
    except Image.DecompressionBombError as error:
        raise ValueError(f"{path.name} is too large to open safely: {error}") from None
    except (OSError, SyntaxError) as error:  # truncated or corrupt files
        raise ValueError(f"{path.name} is damaged or truncated: {error}") from None


def pil_to_array(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image)  # photos from phones are often stored sideways
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return numpy_to_array(np.asarray(image))
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # 1, P, CMYK, YCbCr, LAB, HSV
    return numpy_to_array(np.asarray(image))


def numpy_to_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise ValueError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {array.shape}")
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        top = 255 if array.dtype == np.uint8 else max(int(array.max()), 255)
        return array.astype(np.float32) / top
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float32))
        return array / 255 if array.max() > 1 else np.clip(array, 0, 1)
    raise ValueError(f"an image array must hold numbers, got dtype {array.dtype}")


def shrink(plane: np.ndarray, side: int) -> np.ndarray:
    """Area-average a [H, W] plane so that its longer side is at most `side`."""
    h, w = plane.shape
    if max(h, w) <= side:
        return plane
    scale = side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(plane))[None, None], size=size, mode="area")[0, 0].numpy()


def intensity(pixels: np.ndarray) -> tuple[np.ndarray, bool]:
    """float [H, W, C] -> the one plane [H, W] the ink is found in, and whether it is an alpha channel:
    the alpha of a picture on a transparent background, else the gray level (transparency over white)."""
    if pixels.shape[2] == 1:
        return pixels[:, :, 0], False
    gray = pixels[:, :, :3] @ GRAY_WEIGHTS  # a matrix product: many times faster than mean(axis=2)
    if pixels.shape[2] == 4:
        alpha = pixels[:, :, 3]
        if np.median(border(alpha)) < 0.5:  # transparent background: the alpha channel is the ink
            return np.ascontiguousarray(alpha), True
        if alpha.min() < 1:  # partly transparent picture: flatten onto white, then read the colours
            gray = gray * alpha + (1 - alpha)
    return gray, False


def ink_map(plane: np.ndarray, is_alpha: bool) -> np.ndarray:
    """An intensity plane -> float [H, W] in [0, 1], ink = 1, whatever the polarity or lighting."""
    if is_alpha:
        return normalize_ink(plane)
    frame = border(plane)
    paper = float(np.median(frame))
    dark_ink = paper > 0.5
    if float(frame.max() - frame.min()) < FLAT_BORDER:  # plain canvas or paper: no lighting to model
        background = np.float32(paper)
    else:
        background = estimate_background(plane, dark_ink)
    return normalize_ink(background - plane if dark_ink else plane - background)


def estimate_background(gray: np.ndarray, dark_ink: bool) -> np.ndarray:
    """The paper (or board) alone, with its uneven lighting.

    A morphological closing (opening, for light ink) of a small copy removes strokes; a smooth surface
    (quadratic in x and y) fitted to what remains along the picture's frame is the lighting. Fitting on the
    frame only means no shape inside the picture, however large and dark, can pass for background.
    """
    h, w = gray.shape
    scale = min(1.0, BACKGROUND_SIZE / max(h, w))
    small = torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))[None, None]
    small = F.interpolate(small, scale_factor=scale, mode="area") if scale < 1 else small
    k = max(3, int(max(small.shape[-2:]) * BACKGROUND_KERNEL) | 1)
    sign = 1 if dark_ink else -1  # max filter of -x is a min filter
    paper = sign * max_filter(sign * small, k)  # strokes disappear
    paper = (-sign * max_filter(-sign * paper, k))[0, 0].numpy()  # large shapes come back
    sh, sw = paper.shape
    frame = np.zeros((sh, sw), dtype=bool)
    frame[: max(1, sh // 10)], frame[-max(1, sh // 10) :] = True, True
    frame[:, : max(1, sw // 10)], frame[:, -max(1, sw // 10) :] = True, True
    yy, xx = np.meshgrid(np.arange(sh) / sh, np.arange(sw) / sw, indexing="ij")
    terms = surface_terms(yy.ravel(), xx.ravel())
    coefficients, *_ = np.linalg.lstsq(terms[frame.ravel()], paper[frame], rcond=None)
    surface = torch.from_numpy((terms @ coefficients).reshape(1, 1, sh, sw).astype(np.float32))
    return F.interpolate(surface, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


def surface_terms(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(y), y, x, y * y, x * x, x * y], axis=1)


def max_filter(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k maximum filter as a row pass and a column pass: 2k comparisons per pixel instead of k * k."""
    x = F.max_pool2d(x, (1, k), stride=1, padding=(0, k // 2))
    return F.max_pool2d(x, (k, 1), stride=1, padding=(k // 2, 0))


def border(plane: np.ndarray) -> np.ndarray:
    """The outer frame of a picture (about 5% of each side), where the background shows."""
    h, w = plane.shape
    dy, dx = max(1, h // 20), max(1, w // 20)
    return np.concatenate([plane[:dy].ravel(), plane[-dy:].ravel(), plane[:, :dx].ravel(), plane[:, -dx:].ravel()])


def normalize_ink(ink: np.ndarray) -> np.ndarray:
    """Scale ink so its strokes reach 1 and drop what is weaker than the noise floor."""
    strongest = float(np.percentile(ink, 99.5)) if ink.size > 400 else float(ink.max())
    strongest = max(strongest, float(ink.max()) * 0.5)
    if strongest < MIN_CONTRAST:
        raise NoDigitError("the picture is blank")
    ink = np.clip(ink / strongest, 0, 1)
    return np.clip((ink - NOISE_FLOOR) / (1 - NOISE_FLOOR), 0, 1).astype(np.float32)


def ink_box(ink: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of the strokes, found on a slightly blurred copy so that specks of noise,
    which blur away, cannot stretch it across the picture."""
    h, w = ink.shape
    k = max(3, round(max(h, w) * 0.01) | 1)
    blurred = F.avg_pool2d(torch.from_numpy(ink)[None, None], k, stride=1, padding=k // 2)
    # Inked pixels with inked neighbours: a lone speck blurs to at most 1/9, a stroke's tip keeps more.
    mask = (ink > 0) & (blurred[0, 0].numpy() > 0.12)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(rows) == 0:
        raise NoDigitError("the picture is blank")
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def center_digit(ink: np.ndarray, box: tuple[slice, slice] | None = None) -> np.ndarray:
    """Crop the ink to its box, fit it into BOX x BOX keeping its aspect ratio, centre its mass in FIELD x FIELD."""
    crop = ink[box or ink_box(ink)]
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    digit = F.interpolate(torch.from_numpy(np.ascontiguousarray(crop))[None, None], size=size, mode="bilinear", antialias=True)
    digit = digit[0, 0].clamp_(0, 1).numpy()
    mass = digit.sum()
    cy = (digit.sum(axis=1) * np.arange(size[0])).sum() / mass
    cx = (digit.sum(axis=0) * np.arange(size[1])).sum() / mass
    top = int(np.clip(round(CENTER - cy), 0, FIELD - size[0]))
    left = int(np.clip(round(CENTER - cx), 0, FIELD - size[1]))
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top : top + size[0], left : left + size[1]] = digit
    return field
