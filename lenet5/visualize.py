"""Pictures of what the network sees and computes: its 28x28 input and its feature maps as image grids,
at their own resolution (a page enlarges them without blurring; see app.py)."""

import numpy as np
from matplotlib import colormaps

VIRIDIS = colormaps["viridis"]


def input_picture(x: np.ndarray) -> np.ndarray:
    """The 28x28 network input as a uint8 gray picture, ink white on black."""
    return (np.clip(np.asarray(x, dtype=np.float32).reshape(x.shape[-2:]), 0, 1) * 255).round().astype(np.uint8)


def feature_grid(maps: np.ndarray, cols: int, gap: int = 1) -> np.ndarray:
    """Feature maps [C, H, W] as one RGB uint8 grid (white gaps), each map scaled to its own range and coloured."""
    channels, h, w = maps.shape
    rows = -(-channels // cols)
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    normed = (maps - low) / np.maximum(high - low, 1e-6)
    colours = (VIRIDIS(normed)[..., :3] * 255).astype(np.uint8)  # (C, H, W, 3)
    grid = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i, cell in enumerate(colours):
        r, c = divmod(i, cols)
        grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = cell
    return grid
