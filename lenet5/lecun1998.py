"""The network of LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
recognition" (Proc. IEEE, 1998), section II.B, layer by layer.

    input 32x32 -> C1 6@28x28 -> S2 6@14x14 -> C3 16@10x10 -> S4 16@5x5 -> C5 120 -> F6 84 -> RBF 10

Every layer up to F6 computes a weighted sum plus a bias and passes it through the squashing function
f(a) = 1.7159 tanh(2a/3). S2 and S4 add the four inputs of each 2x2 block, multiply the sum by one
trainable coefficient per map and add one trainable bias. C3 connects each of its maps to a subset of
S2's maps (Table I of the paper). The output layer holds one Euclidean RBF unit per digit: its output is
the squared distance between F6's 84 values and a fixed +1/-1 prototype, a 7x12 bitmap of the digit.
The network has 60,000 trainable parameters, as the paper says.

The prototypes here are our own drawings of the ten digits on the 7x12 grid (the paper shows its ASCII
set only as a figure); like the paper's, they are stylised, and every two differ in 7 or more of their 84
pixels (6 and 8 are the closest pair, 7 apart; nearly 9 pairs in 10 are 15 to 34 apart).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD = 2  # 28x28 MNIST digits sit in the middle of the paper's 32x32 input field
BACKGROUND, INK = -0.1, 1.175  # input levels of white and black pixels (mean about 0, variance about 1)
SQUASH_AMPLITUDE, SQUASH_SLOPE = 1.7159, 2 / 3
MAP_J = 10.0  # the constant j of the MAP criterion (eq. 9): the "rubbish class" penalty

# Table I: for each of C3's 16 maps, the S2 maps it reads. Six read 3 neighbouring maps, six read 4
# neighbouring maps, three read 4 non-neighbouring maps, and the last reads all six.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip

# One 7-wide, 12-high bitmap per digit: "#" is +1, "." is -1. F6's 84 units are read row by row.
PROTOTYPE_BITMAPS = {
    "0": ".......|..###..|.#...#.|#.....#|#.....#|#.....#|#.....#|#.....#|#.....#|.#...#.|..###..|.......",
    "1": ".......|...#...|..##...|.#.#...|...#...|...#...|...#...|...#...|...#...|...#...|.#####.|.......",
    "2": ".......|..###..|.#...#.|#.....#|......#|.....#.|....#..|...#...|..#....|.#.....|#######|.......",
    "3": ".......|.####..|#....#.|......#|.....#.|..###..|.....#.|......#|......#|#....#.|.####..|.......",
    "4": ".......|....#..|...##..|..#.#..|.#..#..|#...#..|#######|....#..|....#..|....#..|....#..|.......",
    "5": ".......|#######|#......|#......|#####..|.....#.|......#|......#|......#|#....#.|.####..|.......",
    "6": ".......|..###..|.#.....|#......|#......|#.###..|##...#.|#.....#|#.....#|.#...#.|..###..|.......",
    "7": ".......|#######|......#|.....#.|....#..|....#..|...#...|...#...|..#....|..#....|..#....|.......",
    "8": ".......|..###..|.#...#.|#.....#|.#...#.|..###..|.#...#.|#.....#|#.....#|.#...#.|..###..|.......",
    "9": ".......|..###..|.#...#.|#.....#|#.....#|.#...##|..###.#|......#|......#|.....#.|..###..|.......",
}


def prototypes(num_classes: int = 10) -> torch.Tensor:
    """RBF prototypes as a float tensor [num_classes, 84] of +1 and -1: the ten digit bitmaps, or for any
    other number of classes random codes (the paper's own alternative to stylised bitmaps, section II.B),
    drawn from a fixed seed so that every model of that size starts from them."""
    if num_classes == len(PROTOTYPE_BITMAPS):
        rows = [bitmap.replace("|", "") for bitmap in PROTOTYPE_BITMAPS.values()]
        return torch.tensor([[1.0 if pixel == "#" else -1.0 for pixel in row] for row in rows])
    codes = torch.randint(0, 2, (num_classes, 84), generator=torch.Generator().manual_seed(num_classes))
    return codes.float() * 2 - 1


# The constants come in as default arguments: TorchScript cannot read module-level floats.
def squash(a: torch.Tensor, amplitude: float = SQUASH_AMPLITUDE, slope: float = SQUASH_SLOPE) -> torch.Tensor:
    """f(a) = A tanh(S a) with A = 1.7159 and S = 2/3, so that f(1) = 1 and f(-1) = -1."""
    return amplitude * torch.tanh(slope * a)


def scale_input(x: torch.Tensor, pad: int = PAD, ink: float = INK, background: float = BACKGROUND) -> torch.Tensor:
    """[0, 1] ink images [N, C, 28, 28] -> the paper's 32x32 input: padded, background -0.1, ink 1.175."""
    return F.pad(x, [pad, pad, pad, pad]) * (ink - background) + background


class Subsampling(nn.Module):
    """S2 / S4: the sum of each 2x2 block, times a trainable coefficient, plus a trainable bias, per map."""

    def __init__(self, channels: int, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(channels, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block_sums = F.avg_pool2d(x, 2) * 4
        return block_sums * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class TableConv(nn.Module):
    """C3: a 5x5 convolution in which output map i sees only the input maps listed in table[i].

    The layer holds exactly the table's weights (1,500 of them, plus one bias per map) and scatters them
    into a dense kernel whose other entries stay zero, so it runs as one ordinary convolution.
    """

    def __init__(self, table: tuple[tuple[int, ...], ...], in_maps: int = 6, kernel_size: int = 5, device=None, dtype=None):
        super().__init__()
        self.table, self.in_maps, self.kernel_size = table, in_maps, kernel_size
        self.out_maps = len(table)
        taps = kernel_size * kernel_size
        index = [(out * in_maps + inp) * taps + tap for out, inputs in enumerate(table) for inp in inputs for tap in range(taps)]
        self.register_buffer("index", torch.tensor(index, device=device), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(index), device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(len(table), device=device, dtype=dtype))

    @property
    def fan_in(self) -> torch.Tensor:
        """Inputs of each weight's output unit: 25 taps times the number of maps that output map reads."""
        counts = torch.tensor([len(inputs) * self.kernel_size * self.kernel_size for inputs in self.table])
        return counts.repeat_interleave(counts)

    def kernel(self) -> torch.Tensor:
        """The dense [16, 6, 5, 5] kernel, zero where Table I has no connection."""
        k = self.kernel_size
        dense = self.weight.new_zeros(self.out_maps * self.in_maps * k * k)
        dense = dense.index_put((self.index,), self.weight)
        return dense.view(self.out_maps, self.in_maps, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel().to(x.dtype), self.bias.to(x.dtype))

    def connected(self) -> torch.Tensor:
        """Which input maps reach which output maps through the kernel's weights, as a bool matrix
        [input maps, output maps] laid out like the paper's Table I."""
        used = torch.zeros(self.out_maps * self.in_maps * self.kernel_size * self.kernel_size, dtype=torch.bool)
        used[self.index.cpu()] = True
        return used.view(len(self.table), self.in_maps, -1).any(dim=2).T


class EuclideanRBF(nn.Module):
    """The output layer: y_i = sum_j (x_j - w_ij)^2 for prototypes w_i, returned as logits -y_i.

    The prototypes are the layer's `weight` (the paper's w_ij), saved under that name like any classifier's.
    The paper's ten digit bitmaps are fixed, a buffer that no optimizer sees. Codes for another class count
    (a new task built on the trained features) are a trainable parameter that starts from the fixed random
    codes: the paper keeps its prototypes fixed "at least initially", and a new task has no drawn ones.
    """

    def __init__(self, prototypes: torch.Tensor, trainable: bool = False, device=None, dtype=None):
        super().__init__()
        weight = prototypes.to(device=device, dtype=dtype or torch.get_default_dtype())
        if trainable:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x.unsqueeze(1) - self.weight.to(x.dtype)).square().sum(-1)


class LeCun1998Features(nn.Module):
    """C1 to F6 of the paper's LeNet-5: [N, C, 28, 28] images in [0, 1] -> 84 F6 states."""

    def __init__(self, in_chans: int = 1, device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.c1 = nn.Conv2d(in_chans, 6, 5, **dd)
        self.s2 = Subsampling(6, **dd)
        self.c3 = TableConv(C3_TABLE, **dd)
        self.s4 = Subsampling(16, **dd)
        # C5 is a 5x5 convolution over S4's 5x5 maps: each of its 120 maps is one unit connected to all
        # 400 inputs, so it runs as a dense layer (same 48,120 parameters, much faster than a convolution).
        self.c5 = nn.Linear(16 * 5 * 5, 120, **dd)
        self.f6 = nn.Linear(120, 84, **dd)
        self.depth = 4  # the stages that run, C1, C3, C5 and F6: timm's pruning keeps fewer
        if self.c1.weight.device.type != "meta":  # a model built on the meta device has no values to set
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Weights drawn with standard deviation 1/sqrt(fan-in), biases zero.

        This is the initialisation of LeCun et al.'s "Efficient BackProp" (1998) for this very squashing
        function: it keeps every layer's sums near unit variance. The paper's uniform +-2.4/fan-in suits its
        second-order (diagonal Levenberg-Marquardt) training; with first-order optimisers it starts the
        network so small that training stalls for epochs.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.normal_(0, module.weight[0].numel() ** -0.5)
            elif isinstance(module, TableConv):
                module.weight.normal_().div_(module.fan_in.sqrt())
            elif isinstance(module, Subsampling):
                module.weight.fill_(0.5)  # 1/sqrt(4): the sum of a 2x2 block keeps unit variance
            if hasattr(module, "bias") and module is not self:
                module.bias.zero_()

    def forward_intermediates(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The features' end (F6 as 84 maps of 1x1, or the last stage kept) and the C1, C3 and C5 states on
        the way."""
        taps = [squash(self.c1(scale_input(x)))]  # (B, 6, 28, 28)
        if self.depth > 1:
            taps.append(squash(self.c3(squash(self.s2(taps[0])))))  # (B, 16, 10, 10)
        if self.depth > 2:
            taps.append(squash(self.c5(squash(self.s4(taps[1])).flatten(1)))[:, :, None, None])  # (B, 120, 1, 1)
        if self.depth > 3:
            return squash(self.f6(taps[2].flatten(1)))[:, :, None, None], taps
        return taps[-1], taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_intermediates(x)[0]


def map_loss(logits: torch.Tensor, labels: torch.Tensor, j: float = MAP_J) -> torch.Tensor:
    """The paper's MAP criterion (eq. 9), averaged over the batch:

        E = y_D + log(exp(-j) + sum_i exp(-y_i))

    With logits -y_i this is the cross-entropy over the ten digits plus an eleventh "rubbish" class whose
    logit is fixed at -j: it pulls the correct output's distance down and pushes the others up.
    A label of -1 (a piece that is no digit, lenet5.writing) is that class: the paper's training on wrong cuts.
    """
    scores = torch.cat([logits.float(), torch.full_like(logits[:, :1], -j)], dim=1)
    return F.cross_entropy(scores, torch.where(labels < 0, logits.shape[1], labels))
