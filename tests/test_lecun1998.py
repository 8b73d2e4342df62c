"""The paper's LeNet-5 (variant "lecun1998"): its layers against section II.B of LeCun et al. (1998),
its training criterion, and the bundled weights through every loader."""

import pytest
import timm
import torch

from lenet5 import LeNet5, load_model
from lenet5.lecun1998 import C3_TABLE, BACKGROUND, INK, map_loss, prototypes, scale_input, squash
from lenet5.summary import layer_table
from lenet5.training import evaluate

# Table I of the paper: row = S2 map, column = C3 map, X = connected.
TABLE_I = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""


@pytest.fixture(scope="module")
def bundled() -> LeNet5:
    return load_model("lecun1998")


def test_parameters_per_layer_are_the_papers():
    rows = {name: params for name, _, _, params, _ in layer_table(LeNet5("lecun1998"))}
    assert rows == {
        "features.c1": 156,
        "features.s2": 12,
        "features.c3": 1_516,
        "features.s4": 32,
        "features.c5": 48_120,
        "features.f6": 10_164,
        "head": 0,
    }
    assert sum(p.numel() for p in LeNet5("lecun1998").parameters() if p.requires_grad) == 60_000


def test_connections_are_the_papers():
    # The paper counts connections with the biases: C1 122,304, S2 5,880, C3 151,600, S4 2,000, C5 48,120,
    # F6 10,164. Our multiply-adds leave the biases (one per output) and S2/S4's additions out.
    macs = {name: m for name, _, shape, _, m in layer_table(LeNet5("lecun1998"))}
    outputs = {name: torch.Size(shape[1:]).numel() for name, _, shape, _, _ in layer_table(LeNet5("lecun1998"))}
    assert macs["features.c1"] + outputs["features.c1"] == 122_304
    assert outputs["features.s2"] * (4 + 1) == 5_880
    assert macs["features.c3"] + outputs["features.c3"] == 151_600
    assert outputs["features.s4"] * (4 + 1) == 2_000
    assert macs["features.c5"] + outputs["features.c5"] == 48_120
    assert macs["features.f6"] + outputs["features.f6"] == 10_164


def test_c3_connections_are_table_i():
    expected = torch.tensor([[c == "X" for c in row] for row in TABLE_I.split()])
    c3 = LeNet5("lecun1998").features.c3
    assert torch.equal(c3.connected(), expected)
    # The scattered kernel is zero exactly where the table has no connection.
    torch.nn.init.ones_(c3.weight)
    assert torch.equal(c3.kernel().ne(0).all(dim=(2, 3)).T, expected)
    assert len(C3_TABLE) == 16


def test_prototypes_are_fixed_distinct_plus_minus_one_bitmaps():
    model = LeNet5("lecun1998")
    protos = model.head.weight
    assert protos.shape == (10, 84) and set(protos.unique().tolist()) == {-1.0, 1.0}
    assert not protos.requires_grad and "head.weight" in model.state_dict()
    assert all(p is not protos for p in model.parameters())
    hamming = (protos[:, None] != protos[None]).sum(-1) + 84 * torch.eye(10, dtype=torch.long)
    assert hamming.min() >= 7  # every two prototypes differ in 7 or more of their 84 pixels
    x = torch.rand(16, 1, 28, 28)
    model.loss(model(x), torch.arange(16) % 10).backward()
    assert model.head.weight.grad is None and torch.equal(model.head.weight, prototypes())
    assert model.features.c3.weight.grad is not None


def test_outputs_are_negated_squared_distances_to_the_prototypes():
    model = LeNet5("lecun1998").eval()
    x = torch.rand(3, 1, 28, 28)
    f6 = model.forward_features(x).flatten(1)
    assert f6.abs().max() <= 1.7159
    expected = -((f6[:, None, :] - prototypes()[None]) ** 2).sum(-1)
    assert torch.allclose(model(x), expected, atol=1e-4)
    # An F6 state equal to a prototype is read as that digit at distance zero.
    assert model.head(prototypes()).argmax(1).tolist() == list(range(10))


def test_input_is_padded_to_32x32_with_the_papers_levels_and_squash_is_the_papers():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10:18, 10:18] = 1
    scaled = scale_input(x)
    assert scaled.shape == (1, 1, 32, 32)
    assert scaled.min().item() == pytest.approx(BACKGROUND) == -0.1
    assert scaled.max().item() == pytest.approx(INK) == 1.175
    assert squash(torch.tensor(1.0)).item() == pytest.approx(1.0, abs=2e-4)
    assert squash(torch.tensor(100.0)).item() == pytest.approx(1.7159)


def test_map_loss_is_equation_9():
    logits = torch.tensor([[-1.0, -5.0, -9.0], [-4.0, -0.5, -7.0]])  # -y_i
    labels = torch.tensor([0, 1])
    j = 10.0
    by_hand = [
        -logits[p, labels[p]] + torch.log(torch.exp(torch.tensor(-j)) + torch.exp(logits[p]).sum()) for p in range(2)
    ]
    assert map_loss(logits, labels, j).item() == pytest.approx(torch.stack(by_hand).mean().item(), rel=1e-6)


def test_other_class_counts_start_from_random_codes_and_learn_them():
    # The paper's alternative to its stylised bitmaps: +1/-1 codes drawn at random. Only the ten digits have
    # drawn prototypes to keep fixed; a new task's codes are where its prototypes start.
    model = LeNet5("lecun1998", num_classes=47)
    codes = model.head.weight
    assert codes.shape == (47, 84) and set(codes.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(codes, LeNet5("lecun1998", num_classes=47).head.weight)  # the same for every model
    assert codes.requires_grad and "head.weight" in dict(model.named_parameters())
    model.reset_classifier(10)
    assert torch.equal(model.head.weight, prototypes())
    model.reset_classifier(0)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 84)


def test_bundled_weights_reach_the_papers_accuracy_on_the_full_test_set(bundled, mnist_test):
    assert len(mnist_test) == 10_000
    assert bundled.variant == "lecun1998"
    assert evaluate(bundled, mnist_test).accuracy >= 0.9905  # the paper: 0.95% error without distortions


def test_mixin_and_timm_round_trips_give_identical_logits(bundled, tmp_path):
    x = torch.rand(8, 1, 28, 28)
    bundled.save_pretrained(tmp_path)
    assert torch.equal(LeNet5.from_pretrained(tmp_path).eval()(x), bundled(x))
    from_timm = timm.create_model("lenet5_lecun1998", pretrained=True).eval()
    assert isinstance(from_timm, LeNet5) and from_timm.variant == "lecun1998"
    assert torch.equal(from_timm(x), bundled(x))
    assert from_timm.pretrained_cfg["first_conv"] == "features.c1"
