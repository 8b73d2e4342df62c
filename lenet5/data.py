"""MNIST as uint8 tensors held on the training device, index batches, and batched augmentation.

Loading through a DataLoader costs about half of a tutorial's epoch on a small CPU; holding the 47 MB of
digits as one tensor and slicing batches out of it by index costs almost nothing.
"""

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

DATA_ENV = "LENET5_DATA"
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SPLIT_SEED = 0  # the validation split never changes between runs, whatever --seed says


def default_data_dir() -> Path:
    """$LENET5_DATA if set, else the user cache (~/.cache/lenet5), where MNIST is downloaded once."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "lenet5"


@dataclass
class Split:
    images: torch.Tensor  # uint8 [N, 28, 28]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))

    def head(self, n: int) -> "Split":
        return Split(self.images[:n], self.labels[:n])


@dataclass
class MNISTData:
    train: Split
    val: Split
    test: Split


def read_mnist(data_dir: str | Path | None = None, train: bool = True, download: bool = True) -> Split:
    """Read one MNIST split with torchvision, downloading it into data_dir when it is missing."""
    from torchvision.datasets import MNIST  # here, not above: torchvision costs seconds of start-up (torch._dynamo)
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    raw = root / "MNIST" / "raw"
    made = new_folders(raw)
    try:
        dataset = MNIST(root=root, train=train, download=download)
    except (RuntimeError, AssertionError, OSError, ValueError) as error:
        remove_empty(made)  # torchvision makes MNIST/raw/ before downloading: a mistyped folder must not stay
        missing = [name for name in MNIST_FILES if not os.path.isfile(raw / name)]
        if missing:
            reason = " ".join(str(error).split()[:20])
            raise ValueError(f"MNIST is not in {raw} (missing {', '.join(missing)}) and could not be downloaded "
                             f"({reason}); offline, point {DATA_ENV} or --data-dir at a folder that holds "
                             "MNIST/raw/") from error
        raise ValueError(f"the MNIST files in {raw} are damaged ({error!r}); delete them to download afresh") from error
    if dataset.data.dtype != torch.uint8 or tuple(dataset.data.shape[1:]) != (28, 28):
        raise ValueError(f"MNIST in {raw} has images of {tuple(dataset.data.shape)}, expected [N, 28, 28] uint8")
    if len(dataset.data) != len(dataset.targets):
        raise ValueError(f"MNIST in {raw} has {len(dataset.data)} images but {len(dataset.targets)} labels")
    return Split(dataset.data, dataset.targets.long())


def new_folders(path: Path) -> list[Path]:
    """The folders of `path` that do not exist yet, deepest first: what making it would create."""
    # os.path's checks answer False for a name the system cannot even look up (too long, say), where
    # Path's raise OSError: a user's mistyped folder must end in our one-line error, not a traceback.
    return [folder for folder in (path, *path.parents) if not os.path.exists(folder)]


def remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()  # only ever an empty one: a folder that holds anything stays
        except OSError:
            pass


def load_mnist(data_dir: str | Path | None = None, val_size: int = 5000, device: str | torch.device = "cpu") -> MNISTData:
    """MNIST on `device`: the 60k training images split into train and a fixed validation set, plus test."""
    full = read_mnist(data_dir, train=True)
    if not 0 <= val_size < len(full):
        raise ValueError(f"val_size must be in [0, {len(full)}), got {val_size}")
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(SPLIT_SEED))
    train_idx, val_idx = order[val_size:], order[:val_size]
    test = read_mnist(data_dir, train=False)
    return MNISTData(
        train=Split(full.images[train_idx], full.labels[train_idx]).to(device),
        val=Split(full.images[val_idx], full.labels[val_idx]).to(device),
        test=test.to(device),
    )


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float [N, 1, 28, 28] in [0, 1], the model's input."""
    return images.unsqueeze(1).float().div_(255)


def shuffled_batches(split: Split, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (images, labels) batches in a random order; the last, partial batch is dropped."""
    order = torch.randperm(len(split), generator=generator).to(split.labels.device)
    for start in range(0, len(split) - batch_size + 1, batch_size):
        idx = order[start : start + batch_size]
        yield split.images[idx], split.labels[idx]


def ordered_batches(split: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(split), batch_size):
        yield split.images[start : start + batch_size], split.labels[start : start + batch_size]


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator,
    max_shift: float = 2.0,
    max_rotation: float = 10.0,
    max_scale: float = 0.1,
) -> torch.Tensor:
    """Shift (pixels), rotate (degrees) and scale each image of a float batch [N, C, H, W] at random.

    Digits are never mirrored: a mirrored 2 is not a 2. The random numbers come from `generator` (on the
    CPU) so that a resumed run draws exactly what an uninterrupted one would.
    """
    n, _, h, w = x.shape
    u = torch.rand(n, 4, generator=generator).mul_(2).sub_(1).to(x.device)  # uniform in [-1, 1]
    angle = u[:, 0] * math.radians(max_rotation)
    scale = 1 + u[:, 1] * max_scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid works in [-1, 1] coordinates: a shift of s pixels is 2s / size.
    theta = torch.stack(
        [
            torch.stack([cos, -sin, u[:, 2] * max_shift * 2 / w], dim=1),
            torch.stack([sin, cos, u[:, 3] * max_shift * 2 / h], dim=1),
        ],
        dim=1,
    )
    return F.grid_sample(x, affine_grid(theta, h, w), mode="bilinear", padding_mode="zeros", align_corners=False)


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """F.affine_grid(theta, [N, C, h, w], align_corners=False) as the sum of a row's and a column's terms.

    affine_grid multiplies every pixel's (x, y, 1) by theta in one batched matmul with an inner size of 3,
    and builds its base grid anew each call: 1.2 ms for a batch of 256 digits on a 2-core CPU, where these
    broadcast sums take 0.4 ms; the default recipe's step went from 13.5 to 12.8 ms (bench/RESULTS.md).
    """
    xs = torch.linspace(1 / w - 1, 1 - 1 / w, w, device=theta.device, dtype=theta.dtype)  # pixel centres
    ys = torch.linspace(1 / h - 1, 1 - 1 / h, h, device=theta.device, dtype=theta.dtype)
    along_x = xs[:, None] * theta[:, None, None, :, 0] + theta[:, None, None, :, 2]  # [N, 1, w, 2]
    along_y = ys[:, None, None] * theta[:, None, :, 1].unsqueeze(2)  # [N, h, 1, 2]
    return along_x + along_y  # [N, h, w, 2]: (x, y) of the source pixel for each output pixel


def random_stroke_width(x: torch.Tensor, generator: torch.Generator, thinner: float = 0.5, thicker: float = 1.0) -> torch.Tensor:
    """Make each digit's strokes thicker or thinner by a random amount, as pens and drawing sizes do.

    A digit is blended with its 3x3 dilation (by up to `thicker`) or erosion (by up to `thinner`): about
    +2 or -1 pixels of stroke width at the extremes, in between everywhere else.
    """
    amount = torch.rand(len(x), 1, 1, 1, generator=generator).to(x.device) * (thinner + thicker) - thinner
    target = torch.where(amount > 0, window_extreme(x, torch.maximum), window_extreme(x, torch.minimum))
    return x + amount.abs() * (target - x)


def window_extreme(x: torch.Tensor, extreme) -> torch.Tensor:
    """The maximum (dilation) or minimum (erosion) over each pixel's 3x3 window, the outside left out: the
    same values as a 3x3 max-pool of stride 1, as two passes of shifted slices, seven times faster on a CPU
    for a batch of digits (max_pool2d with stride 1 took 30% of a training step)."""
    outside = -math.inf if extreme is torch.maximum else math.inf
    padded = F.pad(x, (1, 1, 1, 1), value=outside)
    rows = extreme(extreme(padded[..., :, :-2], padded[..., :, 1:-1]), padded[..., :, 2:])
    return extreme(extreme(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])
