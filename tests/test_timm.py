"""timm's model contract, checked the way timm's own tests/test_models.py checks every model in its zoo:
factory arguments, the identity head, feature extraction, device and dtype, scripting, the data config."""

import warnings

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

import lenet5  # noqa: F401  registers the architectures
from examples.digits import example_paths

ARCHITECTURES = ["lenet5", "lenet5_lecun1998"]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_the_factory_arguments_timm_always_passes_are_honoured(name):
    # timm's train.py passes drop_rate and global_pool; create_model passes device and dtype.
    model = timm.create_model(name, drop_rate=0.25, global_pool="avg", device="meta", dtype=torch.float64)
    assert model.head_drop.p == 0.25
    assert {t.device.type for t in [*model.parameters(), *model.buffers()]} == {"meta"}
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    with pytest.raises(TypeError):
        timm.create_model(name, not_a_model_arg=1)
    with pytest.raises(ValueError, match="global_pool must be one of"):
        timm.create_model(name, global_pool="catavgmax")


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_features_head_and_identity_head(name):
    model = timm.create_model(name).eval()
    x = torch.rand(2, 1, 28, 28)
    features = model.forward_features(x)
    assert features.shape == (2, model.num_features, *model.default_cfg["pool_size"])  # unpooled
    pre_logits = model.forward_head(features, pre_logits=True)
    assert pre_logits.shape == (2, model.head_hidden_size) == (2, 84)
    model.reset_classifier(0)
    assert model.num_classes == 0 and torch.equal(model(x), pre_logits)
    model.reset_classifier(0, "")
    assert model(x).shape == (2, 84, 1, 1)
    assert timm.create_model(name, num_classes=0)(x).shape == (2, 84)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_a_new_head_lives_where_the_network_does(name):
    model = timm.create_model(name, dtype=torch.float64).train(False)
    model.reset_classifier(7)
    head = list(model.get_classifier().parameters())  # a new task's head is trained, for lecun1998 too
    assert head and {t.dtype for t in head} == {torch.float64} and all(t.requires_grad for t in head)
    assert not model.get_classifier().training
    assert model(torch.rand(3, 1, 28, 28, dtype=torch.float64)).shape == (3, 7)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_features_only_gives_c1_c3_c5_with_their_channels_and_reductions(name):
    model = timm.create_model(name, features_only=True).eval()
    assert model.feature_info.channels() == [6, 16, 120]
    assert model.feature_info.reduction() == [1, 2, 28]
    outputs = model(torch.rand(1, 1, 28, 28))
    assert [tuple(o.shape[1:]) for o in outputs] == [(6, 28, 28), (16, 10, 10), (120, 1, 1)]
    for o, r in zip(outputs, model.feature_info.reduction()):  # timm's own size check for a reduction
        assert 28 / (2 * r) < o.shape[-1] <= -(-28 // r) + 1
    last = timm.create_model(name, features_only=True, out_indices=(1,))
    assert [o.shape[1] for o in last(torch.rand(1, 1, 28, 28))] == [16]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_forward_intermediates_is_the_forward_pass(name):
    model = timm.create_model(name).eval()
    x = torch.rand(2, 1, 28, 28)
    final, intermediates = model.forward_intermediates(x)
    assert torch.equal(final, model.forward_features(x))
    assert [m.shape[1] for m in intermediates] == [6, 16, 120]
    assert [m.shape[1] for m in model.forward_intermediates(x, indices=1, intermediates_only=True)] == [120]
    with pytest.raises(ValueError, match="3 feature stages"):
        model.forward_intermediates(x, indices=[5])


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_scripts_traces_and_keeps_bf16(name):
    model = timm.create_model(name).eval()
    x = torch.rand(2, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, but timm still tests it
        scripted = torch.jit.script(model)
    assert torch.allclose(scripted(x), model(x))
    traced = torch.fx.symbolic_trace(model)
    assert torch.allclose(traced(x), model(x))
    model.to(torch.bfloat16)
    assert model(x.bfloat16()).dtype == torch.bfloat16


def test_the_input_recipe_reads_dark_on_light_digits():
    # The network reads white ink on black in [0, 1]; timm's transform gives dark ink on light: invert it.
    model = timm.create_model("lenet5", pretrained=True).eval()
    transform = create_transform(**resolve_data_config({}, model=model))
    read = []
    for path in example_paths():
        x = 1 - transform(Image.open(path).convert("L"))  # the README's one line
        read.append(int(model(x[None]).argmax()))
    assert read == list(range(10))
    assert np.allclose(resolve_data_config({}, model=model)["mean"], 0)  # the model normalises itself


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_pretrained_with_another_class_count_keeps_the_trained_features(name):
    trained = timm.create_model(name, pretrained=True)
    model = timm.create_model(name, pretrained=True, num_classes=47)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 47)
    assert torch.equal(model.features.c5.weight, trained.features.c5.weight)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_pruning_to_a_tap_ends_the_features_there_and_leaves_no_unused_weight(name):
    # timm's features_only and its test_prune_intermediate_layers_contract: after pruning to tap i the
    # features end at tap i, the stages beyond it are gone (no weight without a gradient), the taps kept
    # are the unpruned model's, and pruning at the last tap with the head kept changes no output.
    import copy

    model = timm.create_model(name, pretrained=True).eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        expected, taps = model(x), model.forward_intermediates(x, intermediates_only=True)
        kept = copy.deepcopy(model)
        kept.prune_intermediate_layers([2], prune_head=False)
        torch.testing.assert_close(kept(x), expected)
    for i in range(3):
        pruned = copy.deepcopy(model)
        take = pruned.prune_intermediate_layers([i], prune_norm=True)
        with torch.no_grad():
            torch.testing.assert_close(pruned.forward_intermediates(x, indices=take, intermediates_only=True)[0], taps[i])
            torch.testing.assert_close(pruned.forward_features(x), taps[i])
        assert pruned.num_features == [6, 16, 120][i] and len(pruned.feature_info) == i + 1
        pruned.train()
        features = pruned.forward_intermediates(x, indices=take, intermediates_only=True)
        (sum(f.sum() for f in features) + pruned.forward_features(x).sum()).backward()
        assert [n for n, p in pruned.named_parameters() if p.grad is None] == []
        pruned.reset_classifier(0, "avg")  # pooled features of the tap, as timm pools any model's
        torch.testing.assert_close(pruned(x), pruned.forward_features(x).mean((2, 3)))
