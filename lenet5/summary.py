"""A per-layer table of a model: output shape and parameter count, like the Keras tutorials print."""

import torch
import torch.nn as nn


def layer_table(model: nn.Module, input_size: tuple[int, ...] = (1, 1, 28, 28)) -> list[tuple[str, str, list[int], int]]:
    """(name, type, output shape, trainable parameters) for every leaf layer, in the order they run."""
    rows: list[tuple[str, str, list[int], int]] = []
    names = {module: name for name, module in model.named_modules()}

    def record(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        params = sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
        rows.append((names[module], type(module).__name__, list(output.shape), params))

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
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
    lines = [f"{'layer':<12}{'type':<14}{'output shape':<20}{'params':>8}", "-" * 54]
    lines += [f"{name:<12}{kind:<14}{str(shape):<20}{params:>8,}" for name, kind, shape, params in rows]
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines += ["-" * 54, f"{'trainable parameters':<46}{total:>8,}"]
    return "\n".join(lines)
