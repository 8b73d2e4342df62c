import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from lenet5 import LeNet5
from lenet5.data import to_float
from lenet5.modern import MNIST_MEAN, MNIST_STD
from lenet5.summary import layer_table, summary


@pytest.mark.parametrize("variant", ["modern", "lecun1998"])
def test_forward_shapes(variant):
    model = LeNet5(variant).eval()
    x = torch.rand(4, 1, 28, 28)
    assert model(x).shape == (4, 10)
    assert model.forward_features(x).shape == (4, 84, 1, 1)  # F6 as 84 maps of 1x1, the timm way
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (4, 84)
    final, (c1, c3, c5) = model.forward_intermediates(x)
    assert torch.equal(final, model.forward_features(x))
    assert (c1.shape, c3.shape, c5.shape) == ((4, 6, 28, 28), (4, 16, 10, 10), (4, 120, 1, 1))


def test_keeps_lenet5_layer_widths_and_reports_parameters():
    # C1 6 maps, C3 16 maps, then 120, 84 and 10 units: the textbook network's 61,706 parameters.
    rows = {name: (shape, params) for name, _, shape, params, _ in layer_table(LeNet5())}
    assert rows["features.c1"] == ([1, 6, 28, 28], 6 * 25 + 6)
    assert rows["features.c3"] == ([1, 16, 10, 10], 16 * 6 * 25 + 16)
    assert rows["features.c5"] == ([1, 120], 400 * 120 + 120)
    assert rows["features.f6"] == ([1, 84], 120 * 84 + 84)
    assert rows["head"] == ([1, 10], 84 * 10 + 10)
    total = sum(p.numel() for p in LeNet5().parameters())
    assert total == 61_706
    assert summary(LeNet5()).splitlines()[-1].split()[1:] == ["61,706", "416,520"]


def test_model_normalises_mnist_pixels_itself(mnist):
    # [0, 1] MNIST training pixels come out of the model's own normalisation with zero mean, unit variance.
    normalize = LeNet5().features.normalize
    x = normalize(to_float(mnist.train.images[:20000]))
    assert abs(x.mean().item()) < 0.02
    assert abs(x.std().item() - 1) < 0.02
    assert torch.allclose(normalize(torch.zeros(1)), torch.tensor([-MNIST_MEAN / MNIST_STD]))


def test_bad_config_is_rejected_clearly():
    with pytest.raises(ValueError, match="unknown LeNet5 variant 'resnet'"):
        LeNet5(variant="resnet")
    with pytest.raises(ValueError, match="num_classes must be a whole number from 0 to 100,000, got -1"):
        LeNet5(num_classes=-1)
    with pytest.raises(ValueError, match="in_chans must be a whole number from 1 to 1,024, got 0"):
        LeNet5(in_chans=0)
    with pytest.raises(ValueError, match="reads 28x28 digits"):
        LeNet5(img_size=32)


def test_a_model_of_one_variant_does_not_load_as_the_other(tmp_path):
    LeNet5("lecun1998").save_pretrained(tmp_path)
    assert LeNet5.from_pretrained(tmp_path).variant == "lecun1998"  # config.json says which
    with pytest.raises(ValueError, match="do not fit LeNet5"):
        LeNet5.from_pretrained(tmp_path, variant="modern")


def test_save_pretrained_round_trip_is_exact(tmp_path):
    torch.manual_seed(1)
    model = LeNet5().eval()
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"model.safetensors", "config.json", "README.md"}
    loaded = LeNet5.from_pretrained(tmp_path)
    for (name, saved), (_, restored) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(saved, restored), name
    x = torch.rand(8, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["variant"] == "modern" and config["architecture"] == "lenet5"
    assert config["pretrained_cfg"]["input_size"] == [1, 28, 28]


def test_renamed_layer_fails_to_load_instead_of_staying_random(tmp_path):
    LeNet5().save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights["features.fc6.weight"] = weights.pop("features.f6.weight")
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="do not fit LeNet5.*features.f6.weight"):
        LeNet5.from_pretrained(tmp_path)


def test_wrongly_shaped_weights_fail_to_load(tmp_path):
    LeNet5(num_classes=10).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="do not fit LeNet5"):
        LeNet5.from_pretrained(tmp_path, num_classes=5)
