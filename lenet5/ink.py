"""A gray plane -> where the ink is (1) and where the paper is (0), whatever the polarity or the lighting,
and however close to the picture's edges the strokes run.

The picture's frame (its outer 5%) shows the paper. A digit cropped to its ink touches all four edges, and
a thick pen's strokes then cover much of that frame, so the frame is read with care: ink in it is not
taken for paper, neither when choosing the polarity nor when measuring the lighting.
"""

import numpy as np
from PIL import Image
from scipy import ndimage

from .decoding import NoDigitError, border, shrink

FLAT_PAPER = 0.02  # paper whose frame pixels (nine in ten) lie this close to their median has no lighting to model
AMBIGUOUS_FRAME = 0.2  # a frame within this of half ink, half paper does not tell the polarity by itself
MIN_PIECE = 0.01  # a piece of ink or paper smaller than this share of the picture is a speck: not counted
BACKGROUND_SIZE = 64  # the background is estimated on a copy this large: lighting varies slowly
BACKGROUND_KERNEL = 0.25  # strokes narrower than this fraction of the picture count as ink, not background
MIN_CONTRAST = 0.1  # less difference than this between ink and background reads as a blank picture
NOISE_FLOOR = 0.2  # ink weaker than this fraction of the strongest strokes is paper texture or JPEG noise


def ink_map(plane: np.ndarray, is_alpha: bool) -> np.ndarray:
    """An intensity plane -> float [H, W] in [0, 1], ink = 1."""
    if is_alpha:
        return normalize_ink(plane)
    frame = border(plane)
    threshold = np.float32((float(plane.min()) + float(plane.max())) / 2)
    dark_ink = ink_is_dark(plane, frame, threshold)
    background = flat_paper(frame[frame >= threshold] if dark_ink else frame[frame < threshold])
    if background is None:
        background = estimate_background(plane, dark_ink, threshold)
    return normalize_ink(background - plane if dark_ink else plane - background)


def ink_is_dark(plane: np.ndarray, frame: np.ndarray, threshold: np.float32) -> bool:
    """Whether the ink is darker than the paper. The paper is what most of the frame shows; when the frame
    is about half ink (a bold digit cropped to its ink), the ink is the side in fewer pieces: a digit is one
    or two strokes, while the paper around a cropped digit is cut into a piece at each corner and each hole.
    On a tie (a margin joins the paper into one piece) the frame's majority decides after all."""
    dark_share = np.count_nonzero(frame < threshold) / frame.size
    if abs(dark_share - 0.5) <= AMBIGUOUS_FRAME:
        dark, light = pieces(plane < threshold), pieces(plane >= threshold)
        if dark != light:
            return dark < light
    return dark_share < 0.5


def pieces(mask: np.ndarray) -> int:
    """How many connected pieces of a mask are larger than a speck."""
    labels, count = ndimage.label(mask)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return int(np.count_nonzero(sizes >= MIN_PIECE * mask.size))


def flat_paper(paper: np.ndarray) -> np.float32 | None:
    """The paper's level when the frame's paper pixels are one even tone (a canvas, a scan), else None."""
    if paper.size == 0:
        return None
    sample = paper[::4]  # every fourth pixel of the frame is plenty to tell one tone from a gradient
    level = np.median(sample)
    if np.count_nonzero(np.abs(sample - level) < FLAT_PAPER) < 0.9 * sample.size:
        return None
    return np.float32(level)


def estimate_background(gray: np.ndarray, dark_ink: bool, threshold: np.float32) -> np.ndarray:
    """The paper (or board) alone, with its uneven lighting.

    A morphological closing (opening, for light ink) of a small copy removes strokes; a smooth surface
    (quadratic in x and y) fitted to what remains along the picture's frame is the lighting. Fitting on the
    frame only means no shape inside the picture, however large and dark, can pass for background. Strokes
    that run along the picture's edge survive the closing, and a quadratic would bend to meet them at two
    opposite edges, so the fit leaves out the frame pixels on the ink's side of `threshold`.
    """
    h, w = gray.shape
    small = np.asarray(shrink(Image.fromarray(gray), BACKGROUND_SIZE))
    k = max(3, int(max(small.shape) * BACKGROUND_KERNEL) | 1)
    grow, cut = ndimage.maximum_filter, ndimage.minimum_filter
    if not dark_ink:
        grow, cut = cut, grow
    paper = cut(grow(small, k, mode="nearest"), k, mode="nearest")  # strokes disappear, large shapes come back
    sh, sw = paper.shape
    frame = np.zeros((sh, sw), dtype=bool)
    frame[: max(1, sh // 10)], frame[-max(1, sh // 10) :] = True, True
    frame[:, : max(1, sw // 10)], frame[:, -max(1, sw // 10) :] = True, True
    fit = frame & ((paper >= threshold) if dark_ink else (paper < threshold))
    if np.count_nonzero(fit) < 0.1 * np.count_nonzero(frame):  # hardly any paper shows: fit what there is
        fit = frame
    yy, xx = np.meshgrid(np.arange(sh) / sh, np.arange(sw) / sw, indexing="ij")
    terms = surface_terms(yy.ravel(), xx.ravel())
    coefficients, *_ = np.linalg.lstsq(terms[fit.ravel()], paper[fit], rcond=None)
    surface = (terms @ coefficients).reshape(sh, sw).astype(np.float32)
    return np.asarray(Image.fromarray(surface).resize((w, h), Image.Resampling.BILINEAR))


def surface_terms(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(y), y, x, y * y, x * x, x * y], axis=1)


def normalize_ink(ink: np.ndarray) -> np.ndarray:
    """Scale ink so its strokes reach 1 and drop what is weaker than the noise floor."""
    flat = ink.ravel()
    top = float(flat.max())
    hot = int(flat.size * 0.005)  # the strongest 0.5% of pixels may be specks: they must not set the scale
    inked = flat[flat > 0]  # the percentile is found among these alone: far fewer values to sort through
    if flat.size > 400 and inked.size > hot:
        strongest = float(np.partition(inked, inked.size - hot - 1)[inked.size - hot - 1])
    else:
        strongest = top
    strongest = max(strongest, top * 0.5)
    if strongest < MIN_CONTRAST:
        raise NoDigitError("the picture is blank")
    scale = np.float32(1 / (strongest * (1 - NOISE_FLOOR)))
    return np.clip(ink * scale - np.float32(NOISE_FLOOR / (1 - NOISE_FLOOR)), 0, 1, dtype=np.float32)
