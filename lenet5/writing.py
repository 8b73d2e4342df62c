"""Numbers written the way people write them, made of MNIST digits, and the pieces `read_number` cuts them into.

bench/number_accuracy.py reads numbers made of *test* digits. Training (`TrainConfig.pieces`) learns from
numbers made of *training* digits, cut by the reader's own segmenter: a candidate that is one whole digit
keeps that digit's label, and a wrong cut (half a digit, two digits run together, a digit and part of the
next) is labelled RUBBISH, which the network learns to answer with no confidence in any digit. This is how
LeCun et al. (1998, section VI) trained their recogniser to tell a wrong cut from a digit: a network that
has only seen single centred digits reads two merged digits as one, and is sure of it.
"""

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from tqdm.auto import tqdm

from .data import Split
from .model import RUBBISH
from .numbers import segment, union_box
from .decoding import to_picture
from .workers import worker_map

# How neighbours are set apart, as (fewest, most) MNIST pixels between their ink boxes; below 0 they overlap.
GAPS = {"separated": (3, 10), "touching": (-1, 0), "overlapping": (-6, -3)}
ZOOM = 3  # numbers are drawn this many times MNIST's size: a canvas about 90 pixels tall
DIGIT_OVERLAP = 0.8  # a candidate whose columns cover one digit's this well (intersection over union) is that digit
WRONG_CUT = 0.5  # and one that covers no digit better than this is a wrong cut; those between are left out


@dataclass(frozen=True)
class WrittenNumber:
    picture: np.ndarray  # uint8 [H, W], black ink on white
    spans: list[tuple[int, int]]  # each digit's columns (x0, x1) in the picture, left to right


def ink_crop(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One MNIST digit (uint8, ink 255) cropped to its ink and scaled by 0.85-1.15, as float ink in [0, 1]."""
    ink = digit.astype(np.float32) / 255
    rows, cols = np.flatnonzero(ink.max(1) > 0.1), np.flatnonzero(ink.max(0) > 0.1)
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = rng.uniform(0.85, 1.15)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    return np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BILINEAR))


def compose(digits: list[np.ndarray], gap: tuple[int, int], rng: np.random.Generator) -> WrittenNumber:
    """MNIST digits side by side on one line, each neighbour `gap` pixels apart (drawn from the range),
    each digit moved up or down by up to 3 pixels, ink combined by maximum, drawn at ZOOM x with a pen a
    third of an MNIST pixel finer, as it is, or one pixel coarser."""
    crops = [ink_crop(d, rng) for d in digits]
    height = max(c.shape[0] for c in crops) + 14
    width = sum(c.shape[1] for c in crops) + 10 * len(crops) + 16
    canvas = np.zeros((height, width), dtype=np.float32)
    x, spans = 8, []
    for i, crop in enumerate(crops):
        if i:
            x = max(0, x + int(rng.integers(gap[0], gap[1] + 1)))
        y = (height - crop.shape[0]) // 2 + int(rng.integers(-3, 4))
        y = int(np.clip(y, 0, height - crop.shape[0]))
        region = canvas[y : y + crop.shape[0], x : x + crop.shape[1]]
        np.maximum(region, crop[: region.shape[0], : region.shape[1]], out=region)
        spans.append((x * ZOOM, (x + crop.shape[1]) * ZOOM))
        x += crop.shape[1]
    canvas = canvas[:, : x + 8]
    big = Image.fromarray(canvas).resize((canvas.shape[1] * ZOOM, canvas.shape[0] * ZOOM), Image.Resampling.BILINEAR)
    ink = np.asarray(big)
    stroke = rng.choice(["thin", "as is", "thick"])
    if stroke == "thin":
        ink = ndimage.grey_erosion(ink, size=(2, 2))
    elif stroke == "thick":
        ink = ndimage.grey_dilation(ink, size=(4, 4))
    return WrittenNumber(np.round((1 - np.clip(ink, 0, 1)) * 255).astype(np.uint8), spans)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two column ranges."""
    inside = min(a[1], b[1]) - max(a[0], b[0])
    return max(0.0, inside) / (max(a[1], b[1]) - min(a[0], b[0]))


def labelled_pieces(number: WrittenNumber, labels: list[int]) -> tuple[list[np.ndarray], list[int]]:
    """The 28x28 inputs of every candidate digit the reader finds in a written number, each with the label
    of the digit it is, or RUBBISH for a wrong cut (ambiguous cuts are left out)."""
    cut = segment(*to_picture(number.picture))
    scale = cut.ink.shape[1] / number.picture.shape[1]
    spans = [(x0 * scale, x1 * scale) for x0, x1 in number.spans]
    fields, targets = [], []
    for (i, j), field_ in zip(cut.candidates, cut.fields):
        if field_ is None:
            continue
        x0, _, x1, _ = union_box(cut.pieces[i:j])
        fits = [overlap((x0, x1), span) for span in spans]
        best = int(np.argmax(fits))
        if fits[best] >= DIGIT_OVERLAP:
            targets.append(labels[best])
        elif fits[best] < WRONG_CUT:
            targets.append(RUBBISH)
        else:
            continue
        fields.append(field_)
    return fields, targets


CUT_BLOCK = 256  # numbers drawn, then cut, at a time: the 8,000 of the recipe would hold 155 MB of pictures
SECONDS_PER_NUMBER = 4e-3  # one number written and cut, on one core of a 2-core machine
WORKER_START_SECONDS = 3.0  # a spawned worker imports PyTorch and lenet5 afresh: 2.5-3.5 s on 2 cores


def workers_for(count: int, cores: int) -> int:
    """How many processes to cut `count` numbers in: `cores` where the work outlasts starting them, else one
    (112 numbers took 0.5 s in this process and 2.8-4.2 s over two spawned ones)."""
    return cores if count * SECONDS_PER_NUMBER > 2 * WORKER_START_SECONDS else 1


def number_pieces(digits: Split, count: int, seed: int, progress: bool = True, workers: int = 1) -> Split:
    """`count` numbers of 2 to 4 of the given digits, neighbours separated, touching or overlapping at
    random, cut into their candidate digits: uint8 28x28 pieces labelled with their digit or RUBBISH.

    `workers` > 1 cuts in that many processes: the same pieces, sooner. They are started afresh ("spawn"),
    never forked from a process whose PyTorch threads are running, so the calling script needs the usual
    `if __name__ == "__main__":` guard (train.py has it)."""
    rng = np.random.default_rng(seed)
    images, labels = digits.images.cpu().numpy(), digits.labels.cpu().numpy()
    fields, targets = [], []
    with worker_map(workers) as cut, tqdm(total=count, desc="cutting numbers into pieces", disable=None if progress else True,
                                      leave=False) as bar:
        for start in range(0, count, CUT_BLOCK):
            numbers, number_labels = [], []
            for _ in range(min(CUT_BLOCK, count - start)):  # drawn in order: the pieces depend on the seed alone
                picks = rng.integers(0, len(labels), size=int(rng.integers(2, 5)))
                gap = list(GAPS.values())[int(rng.integers(len(GAPS)))]
                numbers.append(compose([images[i] for i in picks], gap, rng))
                number_labels.append([int(labels[i]) for i in picks])
            for more_fields, more_targets in cut(labelled_pieces, numbers, number_labels):
                fields += more_fields
                targets += more_targets
                bar.update()
    pixels = np.round(np.stack(fields) * 255).astype(np.uint8) if fields else np.zeros((0, 28, 28), np.uint8)
    return Split(torch.from_numpy(pixels), torch.tensor(targets, dtype=torch.long))
