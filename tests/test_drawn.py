import pytest

from lenet5 import load_model
from lenet5.inference import read_digits

from drawn import STYLES, drawn_set


@pytest.fixture(scope="module")
def model():
    return load_model()


# The styles that cost a second or more to draw (JPEG noise, dilation) are in the full suite only.
@pytest.mark.parametrize("style", [pytest.param(style, marks=pytest.mark.slow) if style in ("photo of paper (JPEG)", "thick pen")
                                   else style for style in STYLES])
def test_bundled_model_reads_user_style_drawings(style, model, mnist_test):
    # Test digits the model never trained on, re-drawn the way people draw them: at least 97% per style.
    images, labels = mnist_test.images[:200], mnist_test.labels[:200].tolist()
    readings = read_digits(drawn_set(images, style), model)
    correct = sum(r.probs is not None and r.ranked[0][0] == str(y) for r, y in zip(readings, labels))
    assert correct / len(labels) >= 0.97
