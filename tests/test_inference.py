import numpy as np
import pytest
import timm
import torch

import lenet5
from lenet5 import LeNet5, load_model, modern, predict, preprocess
from lenet5.data import to_float
from lenet5.inference import read_fields
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
    with pytest.raises(ValueError, match="is neither a bundled variant .* a folder, nor a Hub repo id"):
        load_model("a" * 5000)  # too long for any file system to look up: pathlib raised OSError on it


def test_public_api(bundled):
    assert {"LeNet5", "load_model", "predict", "preprocess", "NoDigitError"} <= set(lenet5.__all__)
    assert bundled.training is False
    x = preprocess(np.eye(40, dtype=np.uint8) * 255)
    assert x.shape == (1, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(to_float(torch.zeros(1, 28, 28, dtype=torch.uint8)), torch.zeros(1, 1, 28, 28))


def test_reading_leaves_the_programs_onednn_setting_as_it_found_it(mnist_test):
    image = mnist_test.images[0].numpy()
    paper = load_model("lecun1998")  # read by PyTorch, with oneDNN switched off for the small batch
    try:
        torch.backends.mkldnn.enabled = False  # a program that turned oneDNN off for its own reasons
        predict(image, paper)
        assert torch.backends.mkldnn.enabled is False
    finally:
        torch.backends.mkldnn.enabled = True
    predict(image, paper)
    assert torch.backends.mkldnn.enabled is True


def torch_reading(model: LeNet5, fields: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(fields)[:, None].to(next(model.parameters()).dtype)
    with torch.inference_mode():
        final, (c1, c3, _) = model.forward_intermediates(x)
        return model.forward_head(final), c1, c3


@pytest.mark.parametrize("count", [1, modern.MAX_BATCH])
def test_a_few_digits_are_read_in_numpy_exactly_as_pytorch_reads_them(bundled, mnist_test, count):
    # The small-batch path gives the network's own logits and C1 and C3 maps, one digit or many.
    fields = to_float(mnist_test.images[:count]).squeeze(1).numpy()
    assert modern.numpy_reads(bundled, count)
    logits, c1, c3 = modern.numpy_forward(bundled, fields)
    expected = torch_reading(bundled, fields)
    for ours, theirs in zip((logits, c1, c3), expected):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=2e-5)
    readings = read_fields(list(fields), bundled)
    np.testing.assert_allclose([r.logits for r in readings], expected[0].numpy(), rtol=0, atol=2e-5)
    np.testing.assert_array_equal(readings[-1].maps["c3"], c3[-1])


def test_the_numpy_path_reads_the_weights_as_they_are_now(mnist_test):
    # Trained, reloaded or moved and back: the next reading uses the parameters the model holds now.
    model = load_model()
    field = to_float(mnist_test.images[:1]).squeeze(1).numpy()[0]
    label = int(mnist_test.labels[0])
    favoured = (label + 1) % 10
    probs = predict(field, model)
    assert max(probs, key=probs.get) == str(label)
    with torch.no_grad():
        model.head.bias[favoured] += 100.0
    probs = predict(field, model)
    assert max(probs, key=probs.get) == str(favoured)
    model.load_state_dict(load_model().state_dict())
    model.double().float()  # every parameter now lives in new memory
    assert predict(field, model) == pytest.approx(predict(field, load_model()), abs=1e-6)
    bias = torch.zeros(10)
    bias[favoured] = 100.0
    model.head.bias = torch.nn.Parameter(bias)  # a parameter replaced by another
    probs = predict(field, model)
    assert max(probs, key=probs.get) == str(favoured)
    model.load_state_dict(load_model().state_dict(), assign=True)  # every parameter replaced
    assert predict(field, model) == pytest.approx(predict(field, load_model()), abs=1e-6)


def test_what_numpy_does_not_read_goes_through_pytorch(mnist_test):
    # The paper's network, a float64 network and batches past MAX_BATCH are read by PyTorch, as PyTorch reads them.
    fields = to_float(mnist_test.images[:40]).squeeze(1).numpy()
    for model, count in ((load_model("lecun1998"), 1), (load_model().double(), 2), (load_model(), 40)):
        assert not modern.numpy_reads(model, count)
        readings = read_fields(list(fields[:count]), model)
        logits, c1, _ = torch_reading(model, fields[:count])
        # relative: lecun1998's logits lie near -138, where one float32 step is 1.5e-5
        np.testing.assert_allclose([r.logits for r in readings], logits.float().numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(readings[0].maps["c1"], c1[0].float().numpy(), rtol=1e-5, atol=1e-5)
