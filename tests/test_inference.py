import numpy as np
import pytest
import timm
import torch

import lenet5
from lenet5 import LeNet5, load_model, predict, preprocess
from lenet5.data import to_float
from lenet5.training import evaluate

from conftest import as_black_on_white, as_browser_canvas, as_transparent_rgba, render_on_canvas


@pytest.fixture(scope="module")
def bundled() -> LeNet5:
    return load_model()


def test_bundled_model_reaches_99_3_percent_on_the_full_test_set(bundled, mnist_test):
    assert len(mnist_test) == 10_000
    assert evaluate(bundled, mnist_test).accuracy >= 0.993


def test_predict_reads_drawn_digits(bundled, mnist_test):
    # Test digits drawn large on a canvas in three forms; the model never trained on them.
    correct = 0
    for image, label in zip(mnist_test.images[:60], mnist_test.labels[:60]):
        ink = render_on_canvas(image.numpy())
        for form in (as_black_on_white(ink), as_transparent_rgba(ink), as_browser_canvas(ink)):
            probs = predict(form, bundled)
            assert list(probs) == [str(d) for d in range(10)]
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
            correct += max(probs, key=probs.get) == str(int(label))
    assert correct / (60 * 3) >= 0.97


def test_predict_without_a_model_uses_the_bundled_one(bundled, mnist_test):
    image = mnist_test.images[0].numpy()
    assert predict(image) == pytest.approx(predict(image, bundled))


def test_predict_on_a_file(tmp_path, mnist_test, bundled):
    from PIL import Image

    Image.fromarray(as_black_on_white(render_on_canvas(mnist_test.images[1].numpy()))).save(tmp_path / "digit.png")
    probs = predict(tmp_path / "digit.png", bundled)
    assert max(probs, key=probs.get) == str(int(mnist_test.labels[1]))


def test_timm_builds_the_same_network_with_the_bundled_weights(bundled):
    x = torch.rand(4, 1, 28, 28)
    model = timm.create_model("lenet5", pretrained=True).eval()
    assert torch.equal(model(x), bundled(x))
    assert tuple(model.pretrained_cfg["input_size"]) == (1, 28, 28)
    fresh = timm.create_model("lenet5", num_classes=5)
    assert isinstance(fresh, LeNet5) and fresh(x).shape == (4, 5)


def test_load_model_from_a_folder(tmp_path, bundled):
    bundled.save_pretrained(tmp_path)
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(load_model(tmp_path)(x), bundled(x))
    assert torch.equal(load_model(str(tmp_path))(x), bundled(x))


def test_load_model_errors_are_specific(tmp_path):
    with pytest.raises(ValueError, match="holds no model.safetensors"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="'modern2' is neither a bundled variant .* nor a Hub repo id"):
        load_model("modern2")  # a typo must not turn into a download attempt
    with pytest.raises(ValueError, match="neither a bundled variant, a folder, nor a Hub repo id"):
        load_model("not a/valid repo id")


def test_public_api(bundled):
    assert {"LeNet5", "load_model", "predict", "preprocess", "NoDigitError"} <= set(lenet5.__all__)
    assert bundled.training is False
    x = preprocess(np.eye(40, dtype=np.uint8) * 255)
    assert x.shape == (1, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(to_float(torch.zeros(1, 28, 28, dtype=torch.uint8)), torch.zeros(1, 1, 28, 28))


def test_reading_leaves_the_programs_onednn_setting_as_it_found_it(bundled, mnist_test):
    image = mnist_test.images[0].numpy()
    try:
        torch.backends.mkldnn.enabled = False  # a program that turned oneDNN off for its own reasons
        predict(image, bundled)
        assert torch.backends.mkldnn.enabled is False
    finally:
        torch.backends.mkldnn.enabled = True
    predict(image, bundled)
    assert torch.backends.mkldnn.enabled is True
