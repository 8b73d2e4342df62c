"""Pictures of what the network sees and computes: its 28x28 input and its feature maps as image grids."""

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps

VIRIDIS = colormaps["viridis"]


def input_picture(x: torch.Tensor, scale: int = 8) -> np.ndarray:
    """The 28x28 network input as a uint8 gray picture, ink white on black, enlarged without blurring."""
    image = x.reshape(1, 1, *x.shape[-2:]).float().clamp(0, 1)
    return (F.interpolate(image, scale_factor=scale, mode="nearest")[0, 0] * 255).round().byte().numpy()


def feature_grid(maps: torch.Tensor, cols: int, cell: int = 84, gap: int = 4) -> np.ndarray:
    """Feature maps [C, H, W] as one RGB uint8 grid, each map scaled to its own range and coloured."""
    channels = len(maps)
    rows = -(-channels // cols)
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    normed = ((maps - low) / (high - low).clamp(min=1e-6)).float()
    cells = F.interpolate(normed[:, None], size=(cell, cell), mode="nearest")[:, 0].numpy()
    grid = np.full((rows * (cell + gap) - gap, cols * (cell + gap) - gap, 3), 255, dtype=np.uint8)
    for i, values in enumerate(cells):
        r, c = divmod(i, cols)
        top, left = r * (cell + gap), c * (cell + gap)
        grid[top : top + cell, left : left + cell] = (VIRIDIS(values)[:, :, :3] * 255).astype(np.uint8)
    return grid
