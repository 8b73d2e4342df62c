import copy

import torch

from lenet5 import LeNet5
from lenet5.optim import Muon, takes_muon


def singular_value_spread(matrix: torch.Tensor) -> float:
    values = torch.linalg.svdvals(matrix)
    return float(values.max() / values.min())


def test_weight_matrices_take_muon_and_biases_adamw():
    model = LeNet5()
    routed = {name: takes_muon(p) for name, p in model.named_parameters()}
    assert all(routed[name] for name in routed if name.endswith("weight")), routed
    assert not any(routed[name] for name in routed if name.endswith("bias")), routed


def test_a_matrix_moves_as_far_in_every_direction_at_adamw_like_size():
    torch.manual_seed(0)
    layer = torch.nn.Linear(400, 120)  # C5's shape
    u, _ = torch.linalg.qr(torch.randn(120, 120))
    v, _ = torch.linalg.qr(torch.randn(400, 120))
    gradient = u @ torch.diag(torch.linspace(1, 4, 120)) @ v.T  # some directions 4x steeper than others
    layer.weight.grad, layer.bias.grad = gradient, torch.randn(120)
    before = layer.weight.detach().clone()
    lr = 0.01
    Muon(layer.parameters(), lr=lr).step()
    step = layer.weight.detach() - before
    assert singular_value_spread(gradient) > 3.9
    assert singular_value_spread(step) < 2  # orthogonalised: much nearer as far along every direction
    assert 0.15 < float(step.pow(2).mean().sqrt()) / lr < 0.25  # scaled to AdamW's update size, 0.2 lr
    assert torch.cosine_similarity(step.flatten(), -gradient.flatten(), dim=0) > 0.8  # and downhill


def test_a_bias_takes_adamws_first_step():
    torch.manual_seed(0)
    layer = torch.nn.Linear(84, 10)
    layer.weight.grad, layer.bias.grad = torch.randn(10, 84), torch.randn(10)
    before = layer.bias.detach().clone()
    Muon(layer.parameters(), lr=0.01, weight_decay=0.1).step()
    # AdamW's first step is the rate times the gradient's sign, after the decoupled decay.
    expected = before * (1 - 0.01 * 0.1) - 0.01 * layer.bias.grad.sign()
    assert torch.allclose(layer.bias.detach(), expected, atol=1e-6)


def test_the_state_survives_a_state_dict_round_trip():
    torch.manual_seed(0)
    models = [LeNet5(), LeNet5()]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [Muon(m.parameters(), lr=0.01, weight_decay=5e-4) for m in models]
    x, y = torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,))
    for step in range(4):
        for model, optimizer in zip(models, optimizers):
            optimizer.zero_grad()
            model.loss(model(x), y).backward()
            optimizer.step()
        if step == 1:  # the second optimizer starts over from the first one's saved state
            optimizers[1] = Muon(models[1].parameters(), lr=0.01, weight_decay=5e-4)
            optimizers[1].load_state_dict(copy.deepcopy(optimizers[0].state_dict()))  # as through a file
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)
