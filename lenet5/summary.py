"""A per-layer table of a model: output shape, parameters and multiply-adds, like the Keras tutorials print."""

import torch
import torch.nn as nn

from .lecun1998 import EuclideanRBF, Subsampling, TableConv


def multiply_adds(module: nn.Module, output: torch.Tensor) -> int:
    """Weight multiplications of one layer for one image (BatchNorm, pooling and squashing not counted)."""
    per_image = output[0].numel()
    if isinstance(module, nn.Conv2d):
        return per_image * module.weight[0].numel()
    if isinstance(module, nn.Linear):
        return per_image * module.in_features
    if isinstance(module, TableConv):  # only the connections of Table I
        return output[0, 0].numel() * module.weight.numel()
    if isinstance(module, Subsampling):  # one coefficient per 2x2 sum
        return per_image
    if isinstance(module, EuclideanRBF):  # a squared difference per prototype entry
        return module.weight.numel()
    return 0


def layer_table(model: nn.Module, input_size: tuple[int, ...] = (1, 1, 28, 28)) -> list[tuple[str, str, list[int], int, int]]:
    """(name, type, output shape, trainable parameters, multiply-adds per image) for every layer that
    computes something, in the order they run."""
    rows: list[tuple[str, str, list[int], int, int]] = []
    names = {module: name for name, module in model.named_modules()}

    def record(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        params = sum(p.numel() for p in module.parameters() if p.requires_grad)
        rows.append((names[module], type(module).__name__, list(output.shape), params, multiply_adds(module, output)))

    layers = [m for m in model.modules() if not list(m.children()) and not isinstance(m, (nn.Dropout, nn.Identity))]
    hooks = [m.register_forward_hook(record) for m in layers]
    try:
        was_training = model.training
        with torch.no_grad():
            model.eval()(torch.zeros(input_size, device=next(model.parameters()).device))
        model.train(was_training)
    finally:
        for hook in hooks:
            hook.remove()
    return rows


def summary(model: nn.Module, input_size: tuple[int, ...] = (1, 1, 28, 28)) -> str:
    rows = layer_table(model, input_size)
    width = max(len(name) for name, *_ in rows) + 2
    kinds = max(14, max(len(kind) for _, kind, *_ in rows) + 2)
    rule = "-" * (width + kinds + 44)
    lines = [f"{'layer':<{width}}{'type':<{kinds}}{'output shape':<20}{'params':>10}{'mult-adds':>14}", rule]
    lines += [f"{name:<{width}}{kind:<{kinds}}{str(shape):<20}{params:>10,}{macs:>14,}"
              for name, kind, shape, params, macs in rows]
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines += [rule, f"{'total':<{width + kinds + 20}}{total:>10,}{sum(row[4] for row in rows):>14,}"]
    return "\n".join(lines)
