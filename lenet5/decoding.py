"""Any picture a person or a program hands over -> one bounded PIL picture, and the errors for those that are not.

Pictures can come from anyone (the demo is public), so the work is bounded before it starts: a file's
pixel count is checked from its header before it is decoded, and every picture is reduced to at most
MAX_SIDE pixels across while still in its own 8-bit (or 16-bit, or float) form. The result is mode L
(8-bit gray) or F (deeper pictures, in [0, 1]), or the alpha channel when the ink is its transparency.
"""

import io
import math
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 4096 * 4096  # larger pictures are refused before decoding: ~0.1 s and 64 MB at most
MAX_SIDE = 1024  # every picture is reduced to at most this many pixels across before any float conversion
ALPHA_MODES = ("RGBA", "LA", "La", "RGBa", "PA")
DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # 16-bit, 32-bit and float pictures
# The only formats PIL may open here: PIL identifies some forty, and not all of them are safe to hand a
# stranger's file (an ICO can hold a picture larger than its directory says; EPS runs Ghostscript).
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
FORMAT_NAMES = "PNG, JPEG, WebP, GIF, BMP or TIFF"
# warnings.catch_warnings swaps the one filter list that all threads share: two threads inside it at once can
# leave the other's filter installed for good. The demo opens pictures on many threads, so they take turns
# while PIL's bomb warning is quieted: for the opening alone, which reads the header, not for the decoding.
QUIET_OPEN = threading.Lock()


class NoDigitError(ValueError):
    """The picture was read but holds no ink: an empty canvas, a blank page, a fully transparent image."""


class NotADigitError(NoDigitError):
    """The picture holds ink, but not the shape of a digit: a dot, a flat line, a solid blob or a scribble."""


class UnreadableImageError(ValueError):
    """The input is not a picture that can be read: wrong type or shape, not an image file, damaged."""


class ImageTooLargeError(UnreadableImageError):
    """The picture has more pixels than MAX_PIXELS; it is refused before it is decoded."""


def to_picture(image: Any) -> tuple[Image.Image, bool]:
    """Any supported input -> the picture the ink is found in, at most MAX_SIDE across: mode L (8-bit) or F
    (deeper pictures, in [0, 1]), and whether it is an alpha channel."""
    if image is None:
        raise NoDigitError("no image was given")
    if isinstance(image, dict):
        return to_picture(canvas_image(image))
    if isinstance(image, (str, Path)):
        return pil_picture(open_image(Path(image)))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return pil_picture(open_image(io.BytesIO(image)))
    if isinstance(image, Image.Image):
        return pil_picture(image)
    if isinstance(image, np.ndarray):
        return array_picture(image)
    raise UnreadableImageError(
        f"cannot read a digit from a {type(image).__name__}: pass a file path, bytes, a PIL image, "
        "a numpy array or a Gradio canvas dict"
    )


def source_size(image: Any) -> tuple[int, int]:
    """(width, height) of the picture `to_picture` reads, as given (upright, before any reduction): the
    pixels that boxes found in the picture are given in. Files are measured from their header."""
    if isinstance(image, dict):
        return source_size(canvas_image(image))
    if isinstance(image, np.ndarray):
        return int(image.shape[1]), int(image.shape[0])
    if isinstance(image, (str, Path, bytes, bytearray, memoryview)):
        source = io.BytesIO(image) if isinstance(image, (bytes, bytearray, memoryview)) else Path(image)
        with Image.open(source, formats=FORMATS) as opened:
            return upright_size(opened)
    return upright_size(image)


def upright_size(image: Image.Image) -> tuple[int, int]:
    w, h = image.size
    turned = image.getexif().get(ImageOps.ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)  # a quarter turn
    return (h, w) if turned else (w, h)


def canvas_image(value: dict) -> Any:
    """The picture in the dict a Gradio Sketchpad/ImageEditor sends: its composite, else its background."""
    for key in ("composite", "background"):
        picture = value.get(key)
        if picture is None:
            continue
        if not isinstance(picture, (str, Path, bytes, bytearray, memoryview, Image.Image, np.ndarray)):
            raise UnreadableImageError(f"the canvas's {key} is a {type(picture).__name__}, not a picture")
        return picture
    raise NoDigitError("the canvas is empty")


def open_image(source: Path | io.BytesIO) -> Image.Image:
    """Open a picture, refusing one with more than MAX_PIXELS pixels from its header, before decoding it."""
    try:
        with QUIET_OPEN, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS is the stricter limit
            image = Image.open(source, formats=FORMATS)
        with image:
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode big photos at reduced size right away
            check_size(image.size)
            image.load()
            return image.copy()
    except UnreadableImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise cannot_open(source, error) from None  # truncated and corrupt files raise any of these


def cannot_open(source: Path | io.BytesIO, error: Exception) -> UnreadableImageError:
    """What is wrong with a file PIL could not open, in one sentence."""
    name = source.name if isinstance(source, Path) else "the picture"
    if isinstance(error, FileNotFoundError):
        return UnreadableImageError(f"no such image file: {source}")
    if isinstance(error, IsADirectoryError):
        return UnreadableImageError(f"{source} is a folder, not an image file")
    if isinstance(error, UnidentifiedImageError):
        return UnreadableImageError(f"{name} is not an image file this reader takes: {FORMAT_NAMES}")
    if isinstance(error, Image.DecompressionBombError):
        return ImageTooLargeError(f"{name} is too large to open safely: {error}")
    return UnreadableImageError(f"{name} is damaged or truncated: {error}")


def check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        side = math.isqrt(MAX_PIXELS)
        raise ImageTooLargeError(f"the picture is {width}x{height} pixels; at most {side}x{side} are read")
    if width < 1 or height < 1:
        raise UnreadableImageError(f"the picture is {width}x{height} pixels: it has no pixels to read")


def pil_picture(image: Image.Image) -> tuple[Image.Image, bool]:
    check_size(image.size)
    if image.getexif().get(ImageOps.ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)  # photos from phones are often stored sideways
    if image.mode in DEEP_MODES:
        return array_picture(np.asarray(image))
    if image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA") if image.mode != "RGBA" else image
    elif image.mode != "L":
        image = image.convert("RGB").convert("L")  # 1, P, RGB, CMYK, YCbCr, LAB, HSV
    factor = math.ceil(max(image.size) / MAX_SIDE)
    if factor > 1:
        image = image.reduce(factor)  # area average, in 8 bits
    return alpha_picture(image) if image.mode == "RGBA" else (image, False)


def alpha_picture(image: Image.Image, opacity: np.ndarray | None = None) -> tuple[Image.Image, bool]:
    """An RGBA picture -> its alpha channel when the background is transparent (the ink is the alpha), else
    its gray levels, flattened onto white where it is partly transparent. `opacity` is the alpha channel
    as an array, where the caller has one at hand (a view of a numpy picture: no copy is made)."""
    if opacity is None:
        opacity = np.asarray(image.getchannel("A"))
    frame = border(opacity)
    if np.count_nonzero(frame < 128) * 2 > frame.size:
        return Image.fromarray(np.ascontiguousarray(opacity)), True
    if opacity.min() < 255:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
    return image.convert("L"), False


def array_picture(array: np.ndarray) -> tuple[Image.Image, bool]:
    """A numpy picture of any dtype -> the ink's picture. It is reduced to MAX_SIDE in its own dtype first."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise UnreadableImageError(
            f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {array.shape}")
    if array.dtype == np.uint8:
        check_size((array.shape[1], array.shape[0]))  # before the copy a view would need, as for a file
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[array.shape[2]]
        pixels = np.ascontiguousarray(array.squeeze(2) if array.shape[2] == 1 else array)
        image = Image.frombuffer(mode, (pixels.shape[1], pixels.shape[0]), pixels, "raw", mode, 0, 1)  # no copy
        if mode == "RGBA" and max(image.size) <= MAX_SIDE:  # a canvas: its alpha is read in place
            return (image.convert("L"), False) if opaque(pixels) else alpha_picture(image, pixels[:, :, 3])
        return pil_picture(image)
    if not (array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise UnreadableImageError(f"an image array must hold numbers, got dtype {array.dtype}")
    pixels = to_unit(block_mean(array, math.ceil(max(array.shape[:2]) / MAX_SIDE)), array)
    is_alpha = False
    if pixels.shape[2] == 1:
        plane = pixels[:, :, 0]
    else:
        plane = pixels[:, :, :3].mean(axis=2)
        if pixels.shape[2] == 4:
            alpha = pixels[:, :, 3]
            frame = border(alpha)
            is_alpha = np.count_nonzero(frame < 0.5) * 2 > frame.size
            plane = alpha if is_alpha else plane * alpha + (1 - alpha)
    return Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32)), is_alpha


def opaque(rgba: np.ndarray) -> bool:
    """Whether every pixel of a C-contiguous uint8 (H, W, 4) array has alpha 255. Each pixel read as one
    little-endian uint32 has its alpha in the top byte: one pass over whole words, where the alpha plane
    alone would be a strided pass three times slower."""
    return bool(rgba.view("<u4").min() >= 0xFF000000)


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Average factor x factor blocks, accumulating in float32 without a float copy of the whole array."""
    if factor <= 1:
        return array.astype(np.float32)
    h, w, c = array.shape
    h, w = h // factor * factor or h, w // factor * factor or w
    if h < factor or w < factor:  # a long thin strip: keep every pixel of the short side
        return array[: max(h, 1) : max(1, h // MAX_SIDE), :: max(1, w // MAX_SIDE)].astype(np.float32)
    blocks = array[:h, :w].reshape(h // factor, factor, w // factor, factor, c)
    return blocks.sum(axis=(1, 3), dtype=np.float32) / np.float32(factor * factor)


def to_unit(pixels: np.ndarray, original: np.ndarray) -> np.ndarray:
    """float32 pixels in the original dtype's scale -> [0, 1]."""
    if original.dtype == np.bool_:
        return pixels
    if np.issubdtype(original.dtype, np.integer):
        return pixels / max(float(pixels.max()), 255.0)
    pixels = np.nan_to_num(pixels, nan=0.0, posinf=0.0, neginf=0.0)
    return pixels / 255 if pixels.max() > 1 else np.clip(pixels, 0, 1)


def border(plane: np.ndarray) -> np.ndarray:
    """The outer frame of a picture (about 5% of each side), where the background shows."""
    h, w = plane.shape
    dy, dx = max(1, h // 20), max(1, w // 20)
    return np.concatenate([plane[:dy].ravel(), plane[-dy:].ravel(), plane[:, :dx].ravel(), plane[:, -dx:].ravel()])


def shrink(picture: Image.Image, side: int) -> Image.Image:
    """Area-average a picture so that its longer side is at most `side`."""
    w, h = picture.size
    if max(h, w) <= side:
        return picture
    whole = max(h, w) // side
    if whole > 1 and max(h, w) % side == 0:  # an exact block average: PIL's reduce is the fastest way
        return picture.reduce(whole)
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return picture.resize(size, Image.Resampling.BOX, reducing_gap=2.0 if whole > 1 else None)
