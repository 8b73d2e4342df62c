import pytest

from lenet5 import load_model
from lenet5.inference import read_digits

from drawn import STYLES, drawn_set


@pytest.fixture(scope="module")
def model():
    return load_model()


SLOW_TO_DRAW = ("photo of paper (JPEG)", "thick pen", "marker", "chalk")  # JPEG noise, dilation: the full suite only


@pytest.mark.parametrize("style", [pytest.param(style, marks=pytest.mark.slow) if style.startswith(SLOW_TO_DRAW)
                                   else style for style in STYLES])
def test_bundled_model_reads_user_style_drawings(style, model, mnist_test):
    # Test digits the model never trained on, re-drawn the way people draw them: at least 97% per style.
    images, labels = mnist_test.images[:200], mnist_test.labels[:200].tolist()
    readings = read_digits(drawn_set(images, style), model)
    assert accuracy(readings, labels) >= 0.97


def accuracy(readings, labels) -> float:
    return sum(r.probs is not None and r.ranked[0][0] == str(y) for r, y in zip(readings, labels)) / len(labels)


def test_a_bold_digit_reads_as_well_cropped_to_its_ink_as_framed(model, mnist_test):
    # A marker's strokes cover much of a tightly cropped picture's frame: it must not pass for paper
    # (the polarity) nor for lighting (the background). Framing may move the accuracy by one digit in 100.
    images, labels = mnist_test.images[:100], mnist_test.labels[:100].tolist()
    tight, framed = (accuracy(read_digits(drawn_set(images, style), model), labels)
                     for style in ("marker, cropped to the ink", "marker, 20 px margin"))
    assert framed >= 0.97
    assert abs(tight - framed) <= 0.01
