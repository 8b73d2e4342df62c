"""Read a whole number, not only one digit: heuristic over-segmentation with recognition-based selection.

This is the string reading of LeCun et al. 1998 (sections V and VI), in its simplest complete form:

1. Candidate pieces come from the ink: its connected strokes, and for a stroke wide enough to be two
   digits that touch, candidate cuts at the thinnest columns between them (over-segmentation: some cuts
   are wrong, and that is fine).
2. Every run of one to MAX_SPAN consecutive pieces is a candidate digit (a 4 or a 5 drawn in two strokes
   is two pieces), and so is a longer run with a digit's shape, no wider than WIDE times its height (the
   fragments of a stroke a fine pen broke); the network reads all candidates in one batch.
3. The segmentation graph has a node between consecutive pieces and an edge for each candidate; its cost
   is how unsure the network is (-log of its top probability, against a "rubbish" class for the paper's
   network as in its MAP criterion), less a bonus per digit, plus penalties for shapes no digit has (too
   wide, pieces far apart). A short piece (a dot, a dash) may also be skipped at
   a cost. The cheapest path through the graph is the reading: the network's own scores choose the cuts.

The scores can choose only because the networks learnt to doubt wrong cuts: as in the paper, both were
trained on the candidates this very segmenter cuts out of numbers written with training digits, every
wrong cut (half a digit, two digits run together) labelled as no digit (lenet5.writing). A network that
has seen single centred digits only reads two merged digits as one, and is sure of it.
"""

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from .decoding import NoDigitError, UnreadableImageError, source_size, to_picture
from .hub import default_model
from .inference import read_fields, reason_for
from .model import LeNet5
from .preprocessing import center_digit, ink_map, not_digit_like, working_plane

NUMBER_HEIGHT = 112  # a number is read with its picture this many pixels tall (at most MAX_WIDTH wide)
MAX_WIDTH = 1024
INK = 0.25  # ink at least this strong makes up the strokes that are segmented
BRIDGE = 1  # gaps in a stroke up to twice this many pixels wide are bridged
MAX_MARKS = 40  # more separate marks than this is not a number: refused before anything is read
MAX_PIECES = 3 * MAX_MARKS  # nor are more pieces than this once touching strokes are cut: the work stays bounded
MAX_SPAN = 4  # a digit is made of at most this many pieces (strokes, or parts cut from touching digits),
MAX_FRAGMENTS = 8  # or of up to this many within a digit's shape (WIDE): a fine pen breaks its strokes
DOUBT_WEIGHT = 4.0  # the network's doubt against the shape costs below (tuned on seed 7 of bench/number_accuracy.py)
DIGIT_BONUS = 0.5  # what each digit read takes off the cost: networks that doubt wrong cuts need no price per
# digit to keep a digit whole, and the bonus keeps two digits that run together from passing for one
WIDE = 1.1  # a candidate digit wider than this times its height pays for every bit of width beyond
WIDE_COST = 10.0
GAP_COST = 8.0  # per unit of gap (in heights) between pieces read as one digit
SKIP_COST = 2.5  # leaving a short piece out of the number
SHORT = 0.45  # pieces shorter than this fraction of the tallest may be left out (a dot, a dash)
TOUCHING = 0.4  # a stroke wider than this times its height is given candidate cuts (two touching 1s are narrow)
CUT_MARGIN = 0.1  # cuts keep this many heights from a stroke's ends: a 1 beside a digit is a tenth of a height wide
CUT_SPACING = 0.2  # and from each other
MAX_CUTS = 6
# The logit of the "rubbish" class that competes with the ten digits for every candidate. lecun1998 was trained
# with one (its MAP criterion gives rubbish the distance j = 10, wrong cuts included); reading, one nearer, at 8,
# reads more numbers right. The modern network has none: it answers a wrong cut with even probabilities.
RUBBISH_LOGIT = {"lecun1998": -8.0, "modern": -math.inf}


class TooManyMarks(UnreadableImageError):
    """More separate marks than a number has: noise, a drawing, a page of text."""


@dataclass(frozen=True)
class Digit:
    """One digit of a number: the network's probabilities, where it is and what the network read."""
    probs: dict[str, float]
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in the input picture's pixels
    input: np.ndarray  # the float [28, 28] picture the network read

    @property
    def digit(self) -> str:
        return max(self.probs, key=self.probs.get)


@dataclass(frozen=True)
class NumberReading:
    """What the network made of a picture of a number: the digits left to right, or the reason there are none
    (one of lenet5.inference.REASONS); `left_out` lists the boxes of marks not read as digits, with why."""
    text: str = ""
    digits: list[Digit] = field(default_factory=list)
    reason: str | None = None
    detail: str = ""
    left_out: list[tuple[tuple[int, int, int, int], str]] = field(default_factory=list)

    def as_dict(self) -> dict:  # plain data: the number, each digit with its probability and box, or the reason
        digits = [{"digit": d.digit, "probability": max(d.probs.values()), "box": list(d.box)} for d in self.digits]
        return {"number": self.text or None, "digits": digits, "reason": self.reason, "detail": self.detail}


@dataclass
class Piece:
    """A stroke or part of one, in the working plane: its box and its own pixels."""
    rows: slice
    cols: slice
    mask: np.ndarray  # bool, the shape of the box

    @property
    def height(self) -> int:
        return self.rows.stop - self.rows.start

    @property
    def center(self) -> float:
        return (self.cols.start + self.cols.stop) / 2


def read_number(image: Any, model: LeNet5 | None = None) -> NumberReading:
    """The digits of a number in any picture `predict` takes, of any width; never raises for a bad picture."""
    try:
        picture, is_alpha = to_picture(image)  # first: it refuses a picture too large before decoding it
        width, height = source_size(image)
        cut = segment(picture, is_alpha)
    except Exception as error:  # noqa: BLE001  as for one digit: a bad picture gets a reason, never a crash
        reason, detail = reason_for(error)
        return NumberReading(reason=reason, detail=detail)
    if not cut.pieces:
        return NumberReading(reason="blank", detail="the picture is blank")
    readable = [k for k, f in enumerate(cut.fields) if f is not None]
    model = model or default_model()
    readings = dict(zip(readable, read_fields([cut.fields[k] for k in readable], model, maps=False)))
    doubts = {k: doubt(r.logits, RUBBISH_LOGIT[model.variant]) for k, r in readings.items()}
    scale = (width / cut.ink.shape[1], height / cut.ink.shape[0])
    digits, left_out = [], []
    for kind, index in best_path(cut.pieces, cut.candidates, doubts):
        if kind == "skip":
            left_out.append((to_source(union_box(cut.pieces[index : index + 1]), scale), "not part of a digit"))
            continue
        i, j = cut.candidates[index]
        box = to_source(union_box(cut.pieces[i:j]), scale)
        digits.append(Digit(probs=readings[index].probs, box=box, input=cut.fields[index]))
    if not digits:
        return NumberReading(reason="not_a_digit", detail="marks that are no digits", left_out=left_out)
    return NumberReading(text="".join(d.digit for d in digits), digits=digits, left_out=left_out)


@dataclass(frozen=True)
class Segmentation:
    """A picture cut into candidate digits (steps 1 and 2 of the module's docstring)."""
    ink: np.ndarray  # the working plane's ink, float [H, W] in [0, 1]
    pieces: list[Piece]  # left to right
    candidates: list[tuple[int, int]]  # (i, j): pieces[i:j] taken as one digit
    fields: list[np.ndarray | None]  # each candidate's 28x28 input; None where it has no digit's shape


def segment(picture: Image.Image, is_alpha: bool) -> Segmentation:
    """A picture as `to_picture` gives it -> its pieces and candidate digits, each with its network input."""
    ink = ink_map(number_plane(picture), is_alpha)
    pieces = find_pieces(ink)
    candidates = candidate_runs(pieces)
    fields = [candidate_field(ink, pieces[i:j]) for i, j in candidates]
    return Segmentation(ink, pieces, candidates, [f if f is not None and not not_digit_like(f) else None for f in fields])


def candidate_runs(pieces: list[Piece]) -> list[tuple[int, int]]:
    """(i, j) for every run pieces[i:j] that may be one digit: 1 to MAX_SPAN pieces, or more (up to
    MAX_FRAGMENTS) that are no wider than WIDE times their height, as the fragments of a broken stroke."""
    runs = []
    for i in range(len(pieces)):
        for j in range(i + 1, min(i + MAX_FRAGMENTS, len(pieces)) + 1):
            if j - i > MAX_SPAN:
                x0, y0, x1, y1 = union_box(pieces[i:j])
                if x1 - x0 > WIDE * (y1 - y0):
                    continue
            runs.append((i, j))
    return runs


def number_plane(picture: Image.Image) -> np.ndarray:
    """The picture at NUMBER_HEIGHT pixels tall (at most MAX_WIDTH wide), float32 in [0, 1]."""
    w, h = picture.size
    factor = max(h / NUMBER_HEIGHT, w / MAX_WIDTH, 1.0)
    return working_plane(picture, max(1, round(max(w, h) / factor)))


def find_pieces(ink: np.ndarray) -> list[Piece]:
    """The strokes (8-connected), left to right, with strokes wide enough to be touching digits cut into
    parts at their candidate cuts. Specks of a few pixels are not pieces."""
    strokes = ink > INK
    # Labelled on a slightly grown copy, so that a stroke a thin pen broke stays one piece.
    grown = ndimage.binary_dilation(strokes, iterations=BRIDGE)
    labels, count = ndimage.label(grown, structure=np.ones((3, 3), dtype=bool))
    labels[~strokes] = 0
    if count > 4 * MAX_MARKS:  # noise, not strokes: refused without measuring each
        raise TooManyMarks(f"{count} separate marks and specks: that is no number (at most {MAX_MARKS} marks are read)")
    min_area = max(4, (ink.shape[0] // 40) ** 2)
    masks = ((rows, cols, labels[rows, cols] == index) for index, (rows, cols) in enumerate(ndimage.find_objects(labels), 1))
    marks = [Piece(rows, cols, mask) for rows, cols, mask in masks if mask.sum() >= min_area]
    if len(marks) > MAX_MARKS:
        raise TooManyMarks(f"{len(marks)} separate marks: that is no number (at most {MAX_MARKS} are read)")
    pieces = [part for mark in marks for part in cut_touching(mark)]
    if len(pieces) > MAX_PIECES:
        raise TooManyMarks(f"{len(marks)} marks cut into {len(pieces)} pieces: more than {MAX_PIECES} are not read")
    return sorted(pieces, key=lambda piece: piece.center)


def cut_touching(piece: Piece) -> list[Piece]:
    """A stroke wider than TOUCHING times its height, cut at up to MAX_CUTS of its thinnest columns (local
    minima of its ink per column, away from its ends and from each other). Too many cuts cost little, as
    the network's doubt about the wrong ones passes them over; a cut missing loses the number."""
    h, w = piece.mask.shape
    if w <= TOUCHING * h:
        return [piece]
    profile = ndimage.uniform_filter1d(piece.mask.sum(axis=0).astype(np.float32), size=3)
    margin, spacing = max(2, int(CUT_MARGIN * h)), max(2, int(CUT_SPACING * h))
    order = np.argsort(profile[margin : w - margin], kind="stable") + margin
    cuts: list[int] = []
    for x in order:
        if len(cuts) == min(MAX_CUTS, round(w / (CUT_SPACING * h))):
            break
        local_min = profile[x] <= profile[max(0, x - spacing // 2) : x + spacing // 2 + 1].min()
        if local_min and all(abs(x - c) >= spacing for c in cuts):
            cuts.append(int(x))
    parts, start = [], 0
    for cut in sorted(cuts) + [w]:
        mask = piece.mask[:, start:cut]
        filled = np.flatnonzero(mask.any(axis=1))
        if len(filled):
            rows = slice(piece.rows.start + filled[0], piece.rows.start + filled[-1] + 1)
            cols = slice(piece.cols.start + start, piece.cols.start + cut)
            parts.append(Piece(rows, cols, mask[filled[0] : filled[-1] + 1]))
        start = cut
    return parts


def union_box(pieces: list[Piece]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around the pieces, in working-plane pixels."""
    return (min(p.cols.start for p in pieces), min(p.rows.start for p in pieces),
            max(p.cols.stop for p in pieces), max(p.rows.stop for p in pieces))


def to_source(box: tuple[int, int, int, int], scale: tuple[float, float]) -> tuple[int, int, int, int]:
    sx, sy = scale
    x0, y0, x1, y1 = box
    return math.floor(x0 * sx), math.floor(y0 * sy), math.ceil(x1 * sx), math.ceil(y1 * sy)


def candidate_field(ink: np.ndarray, pieces: list[Piece]) -> np.ndarray | None:
    """The 28x28 input of a candidate digit: the ink of its pieces alone (with the anti-aliased edge around
    them), cropped, fitted and centred as MNIST's digits were."""
    x0, y0, x1, y1 = union_box(pieces)
    own = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for p in pieces:
        own[p.rows.start - y0 : p.rows.stop - y0, p.cols.start - x0 : p.cols.stop - x0] |= p.mask
    pad = 2
    crop = np.zeros((y1 - y0 + 2 * pad, x1 - x0 + 2 * pad), dtype=np.float32)
    region = ink[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad]
    top, left = pad - (y0 - max(0, y0 - pad)), pad - (x0 - max(0, x0 - pad))
    crop[top : top + region.shape[0], left : left + region.shape[1]] = region
    near = np.zeros_like(crop, dtype=bool)
    near[pad:-pad, pad:-pad] = own
    near = ndimage.binary_dilation(near, iterations=pad)
    crop = np.where(near, crop, 0).astype(np.float32)
    try:
        return center_digit(crop)
    except NoDigitError:
        return None


def doubt(logits: list[float], rubbish: float) -> float:
    """-log of the top digit's probability when a "rubbish" class with a fixed logit competes with the ten
    (the j of the paper's MAP criterion, eq. 9): a candidate that is no digit, or two merged digits, gets
    low logits for every digit, so the rubbish class takes most of the probability."""
    top = max(logits)
    total = sum(math.exp(value - top) for value in logits) + math.exp(rubbish - top)
    return math.log(total)


def best_path(pieces: list[Piece], candidates: list[tuple[int, int]], doubts: dict[int, float]) -> list:
    """The cheapest way through the segmentation graph, as a list of ("digit", candidate index) and
    ("skip", piece index) steps (dynamic programming over the nodes between pieces)."""
    tallest = max(p.height for p in pieces)
    best = [0.0] + [math.inf] * len(pieces)
    back: list = [None] * (len(pieces) + 1)
    for k, (i, j) in sorted(enumerate(candidates), key=lambda item: item[1][1]):
        if k in doubts:
            cost = best[i] + digit_cost(pieces[i:j], doubts[k], tallest)
            if cost < best[j]:
                best[j], back[j] = cost, ("digit", k, i)
        if j == i + 1 and pieces[i].height < SHORT * tallest and best[i] + SKIP_COST < best[j]:
            best[j], back[j] = best[i] + SKIP_COST, ("skip", i, i)
    path, node = [], len(pieces)
    while node > 0 and back[node] is not None:
        kind, index, start = back[node]
        path.append((kind, index))
        node = start
    return path[::-1]


def digit_cost(pieces: list[Piece], doubt_: float, tallest: int) -> float:
    x0, y0, x1, y1 = union_box(pieces)
    height = max(y1 - y0, 1)
    cost = DOUBT_WEIGHT * doubt_ - DIGIT_BONUS
    cost += WIDE_COST * max(0.0, (x1 - x0) / height - WIDE)
    gaps = [b.cols.start - a.cols.stop for a, b in zip(pieces, pieces[1:])]
    cost += GAP_COST * max(0, max(gaps, default=0)) / tallest
    return cost

