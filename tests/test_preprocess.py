import io
import struct
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from lenet5 import NoDigitError, preprocess
from lenet5.data import to_float
from lenet5.decoding import ImageTooLargeError, UnreadableImageError, open_image, to_picture
from lenet5.preprocessing import array_plane, fit_weights, solid_core, working_plane

from bombs import giant_png
from conftest import (
    as_black_on_white,
    as_browser_canvas,
    as_transparent_rgba,
    as_white_on_black,
    digit_center_of_mass,
    render_on_canvas,
)


@pytest.fixture(scope="module")
def drawn(mnist_test) -> tuple[np.ndarray, torch.Tensor]:
    """A test digit drawn large on a 280x280 canvas, and the MNIST original it came from."""
    digit = mnist_test.images[0].numpy()
    return render_on_canvas(digit), to_float(mnist_test.images[:1])


def test_every_form_of_the_same_drawing_gives_the_same_input(drawn):
    ink, _ = drawn
    reference = preprocess(as_white_on_black(ink))
    forms = {
        "black on white": as_black_on_white(ink),
        "RGB": np.repeat(as_black_on_white(ink)[:, :, None], 3, axis=2),
        "transparent RGBA": as_transparent_rgba(ink),
        "browser canvas dict": as_browser_canvas(ink),
        "opaque RGBA, a view into a wider array": np.pad(as_browser_canvas(ink)["composite"], ((0, 0), (0, 9), (0, 0)),
                                                         constant_values=255)[:, :-9],
        "RGBA, partly transparent over white": np.dstack([as_black_on_white(ink)] * 3 + [np.full(ink.shape, 204, np.uint8)]),
        "RGBA with black pixels hidden by alpha 0": hidden_black_square(as_browser_canvas(ink)["composite"]),
        "API canvas dict": {"background": None, "layers": [], "composite": as_transparent_rgba(ink)},
        "PIL image": Image.fromarray(as_black_on_white(ink)),
        "float array": ink,
    }
    for name, image in forms.items():
        x = preprocess(image)
        assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32, name
        assert (x - reference).abs().max() < 0.02, name


def hidden_black_square(rgba: np.ndarray) -> np.ndarray:
    """A canvas with a black square in a corner that alpha 0 hides: it must not be read as ink."""
    hidden = rgba.copy()
    hidden[20:60, 20:60] = 0
    return hidden


def test_placement_matches_mnist(drawn):
    # MNIST's recipe: the digit fits a 20x20 box and its centre of mass sits at pixel (14, 14).
    ink, _ = drawn
    x = preprocess(as_white_on_black(ink))[0, 0]
    rows, cols = torch.nonzero(x > 0.05, as_tuple=True)
    assert max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) in (19, 20, 21)
    cy, cx = digit_center_of_mass(x)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_off_centre_and_small_drawings_are_placed_like_centred_ones(drawn, mnist_test):
    ink, _ = drawn
    centred = preprocess(as_white_on_black(ink))
    corner = render_on_canvas(mnist_test.images[0].numpy(), size=600, box=120, top=450, left=10)
    assert similarity(preprocess(as_black_on_white(corner)), centred) > 0.95


def similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two digits, allowing the one-pixel shifts that rounding the centre of mass makes."""
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return max(F.cosine_similarity(torch.roll(a, s, dims=(-2, -1)).flatten(), b.flatten(), dim=0).item() for s in shifts)


def test_an_mnist_digit_passes_through_almost_unchanged(mnist_test):
    for image in mnist_test.images[:100]:
        assert similarity(preprocess(image.numpy()), to_float(image[None])) > 0.9


@pytest.mark.parametrize("shape", [(100, 68), (140, 3), (1, 90), (20, 20), (13, 7), (57, 140)])
def test_the_fit_into_20x20_is_pils_antialiased_bilinear_resize(shape):
    # MNIST's digits were shrunk with an anti-aliasing filter; the fit reproduces PIL's bilinear resize
    # (which widens its filter when shrinking) as two matrix products, also when it enlarges or keeps a side.
    crop = np.random.default_rng(0).random(shape, dtype=np.float32)
    h, w = shape
    size = (max(1, round(w * 20 / max(h, w))), max(1, round(h * 20 / max(h, w))))
    expected = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
    fitted = fit_weights(h, size[1]) @ crop @ fit_weights(w, size[0]).T
    np.testing.assert_allclose(fitted, expected, atol=3e-7)


def test_an_opaque_8bit_array_is_brought_to_working_size_as_pil_would(drawn):
    # array_plane averages a canvas's blocks in numpy; PIL converts to gray and shrinks, rounding to 8 bits.
    gray = as_black_on_white(drawn[0])  # 280x280
    rgb = np.dstack([gray, np.roll(gray, 40, axis=1), gray // 2])
    forms = {
        "gray": gray,
        "gray (H, W, 1)": gray[:, :, None],
        "RGB": rgb,
        "opaque RGBA": np.dstack([rgb, np.full(gray.shape, 255, np.uint8)]),
        "RGB, a view with a step": np.repeat(rgb, 2, axis=1)[:, ::2],
        "420x420, blocks of 3": np.asarray(Image.fromarray(rgb).resize((420, 420))),
        "980x700, blocks of 7": np.asarray(Image.fromarray(rgb).resize((700, 980))),
    }
    for name, image in forms.items():
        plane = array_plane(image)
        assert plane is not None and plane.dtype == np.float32, name
        expected = working_plane(to_picture(image)[0])
        assert plane.shape == expected.shape and np.abs(plane - expected).max() <= 1 / 255, name


@pytest.mark.parametrize("image", [
    np.dstack([np.full((280, 280, 3), 255, np.uint8), np.full((280, 280), 254, np.uint8)]),  # not opaque
    np.full((300, 300), 255, np.uint8),  # not whole blocks of the working size
    np.full((280, 282), 255, np.uint8),
    np.full((1120, 1120), 255, np.uint8),  # larger than MAX_SIDE
    np.full((280, 280), 1.0, np.float32),
    np.full((280, 280), 65535, np.uint16),
    np.full((280, 280, 2), 255, np.uint8),
], ids=["transparent", "300x300", "280x282", "1120x1120", "float", "16-bit", "two channels"])
def test_other_arrays_take_pils_way(image):
    assert array_plane(image) is None


def test_the_solid_core_is_a_7x7_erosion():
    # What not_digit_like counts to tell a blob from a digit: pixels 3 or more inside the outline.
    rng = np.random.default_rng(0)
    for trial in range(200):
        mask = ndimage.binary_dilation(rng.random((28, 28)) < 0.1 * (trial % 8), iterations=trial % 4)
        expected = ndimage.minimum_filter(mask, 7, mode="constant", cval=False).sum()
        assert solid_core(mask) == expected


def test_files_in_unusual_modes_are_read(tmp_path, drawn):
    ink, _ = drawn
    reference = preprocess(as_white_on_black(ink))
    gray = as_black_on_white(ink)
    files = {
        "16bit.png": Image.fromarray(gray.astype(np.uint16) * 257),
        "palette.png": Image.fromarray(gray).convert("P"),
        "cmyk.jpg": Image.fromarray(gray).convert("CMYK"),
        "photo.jpg": Image.fromarray(gray).convert("RGB"),
        "bilevel.png": Image.fromarray(gray).convert("1"),
    }
    for name, image in files.items():
        image.save(tmp_path / name)
        x = preprocess(tmp_path / name)
        assert similarity(x, reference) > 0.95, name


def test_huge_and_tiny_pictures_are_handled(drawn):
    ink, _ = drawn
    huge = np.asarray(Image.fromarray(as_black_on_white(ink)).resize((4000, 4000)))
    reference = preprocess(as_black_on_white(ink))
    assert (preprocess(huge) - reference).abs().mean() < 0.02
    dot = np.zeros((1, 1), dtype=np.uint8)
    with pytest.raises(NoDigitError):
        preprocess(dot)


def test_pictures_opened_at_once_leave_the_programs_warning_filters_as_they_were(tmp_path):
    # The demo opens pictures on many threads at once. One past PIL's own bomb threshold (89 M pixels)
    # makes PIL warn before the size is checked; whatever quiets that warning must not change the
    # process's warning filters, which every thread shares.
    bomb = tmp_path / "bomb.png"
    giant_png(bomb, 10_000)
    before = list(warnings.filters)

    def refused(_: int) -> bool:
        with pytest.raises(ImageTooLargeError):
            open_image(bomb)
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(refused, range(400)))
    assert warnings.filters == before


def test_an_8bit_array_too_large_is_refused_before_it_is_copied():
    # A view (here 13000x13000 pixels of one repeated value, no memory of its own) must not be copied whole
    # only to be refused: 8-bit arrays over MAX_PIXELS are refused as files are, from their size.
    view = np.broadcast_to(np.zeros((1, 1, 4), np.uint8), (13000, 13000, 4))
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLargeError, match="13000x13000"):
            preprocess(view)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


@pytest.mark.parametrize(
    "image, message",
    [
        (None, "no image was given"),
        ({"background": None, "layers": [], "composite": None}, "canvas is empty"),
        (np.full((280, 280), 255, dtype=np.uint8), "blank"),
        (np.zeros((280, 280, 4), dtype=np.uint8), "blank"),
        (np.full((64, 64, 3), 128, dtype=np.uint8), "blank"),
    ],
    ids=["none", "empty canvas", "white page", "transparent", "flat gray"],
)
def test_pictures_without_ink_say_so(image, message):
    with pytest.raises(NoDigitError, match=message):
        preprocess(image)


def test_unreadable_input_gets_a_specific_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    png = Image.new("L", (64, 64), 255)
    png.save(tmp_path / "full.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "full.png").read_bytes()[:60])
    cases = [
        (tmp_path / "missing.png", "no such image file"),
        (tmp_path / "notes.txt", "not an image file"),
        (tmp_path / "truncated.png", "damaged or truncated"),
        (tmp_path, "is a folder"),
        (42, "cannot read a digit from a int"),
        (np.zeros((28, 28, 2)), r"must be \(H, W\)"),
        (np.array([["a"]]), "must hold numbers"),
    ]
    for image, message in cases:
        with pytest.raises(ValueError, match=message):
            preprocess(image)


def ico_hiding(width: int, height: int) -> bytes:
    """An ICO whose one entry is a PNG of width x height: its directory says 256x256 (0), the PNG inside
    says otherwise, and a flat PNG of any size compresses to a few hundred kB."""
    buffer = io.BytesIO()
    Image.new("1", (width, height), 1).save(buffer, format="PNG")
    png = buffer.getvalue()
    return (struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22) + png)


@pytest.mark.parametrize("name, data", [
    ("huge.ico", ico_hiding(13300, 13300)),
    ("figure.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nnewpath 10 10 moveto 90 90 lineto stroke\n"),
    ("scan.pcx", None),
])
def test_only_the_formats_the_demo_reads_are_opened(name, data, tmp_path):
    # An ICO passed the 4096x4096 header check and cost 1-2 s and +570 MB a request; EPS went to Ghostscript.
    if data is None:
        buffer = io.BytesIO()
        Image.new("L", (64, 64), 255).save(buffer, format="PCX")
        data = buffer.getvalue()
    path = tmp_path / name
    path.write_bytes(data)
    for source in (path, data):
        with pytest.raises(UnreadableImageError, match=r"is not an image file this reader takes: PNG, JPEG, WebP, GIF, "
                                                       r"BMP or TIFF$"):
            preprocess(source)
    for kind in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"):  # the six it takes are opened and read
        buffer = io.BytesIO()
        Image.new("RGB", (80, 80), "white").save(buffer, format=kind)
        with pytest.raises(NoDigitError, match="blank"):
            preprocess(buffer.getvalue())
