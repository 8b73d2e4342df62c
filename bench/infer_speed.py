"""How fast LeNet-5 reads digits: predict() latency on a 280x280 canvas, against a straightforward
numpy + PIL pipeline measured in the same run, the cost of a picture bomb, and batch throughput.

    python bench/infer_speed.py                 # the CPU, and CUDA when present
    python bench/infer_speed.py --repeats 2000

Latency is one user's request as the demo serves it: a 280x280 RGBA canvas through preprocessing (ink,
crop, 20x20 fit, centring) and the network, p50 and p95 over many calls. The baseline is what a tutorial
writes: gray, invert, crop the ink, fit into 20x20, centre by mass in 28x28, forward, with the same
model; the two take turns, call by call, so that the ratio holds however the machine's speed drifts.
A number is 2026 drawn on an 840x280 canvas, read by `read_number`, and the worst number is 40 small
rings packed together, the most candidates a picture can make. The bomb is a 13000x13000 PNG (a few kB
on disk) read as a canvas would send it: time and extra peak memory of the refusal. Throughput is the
network alone on ready 28x28 batches, in images per second. Last, the network exported to ONNX
(`LeNet5.export_onnx`) in onnxruntime beside eager PyTorch, both on one thread, calls taking turns.
"""

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.digits import STROKES, render  # noqa: E402
from lenet5 import NoDigitError, UnreadableImageError, load_model, predict, preprocess, read_number  # noqa: E402
from lenet5.model import VARIANTS  # noqa: E402
from lenet5.numbers import segment  # noqa: E402
from lenet5.decoding import to_picture  # noqa: E402
from lenet5.report import describe_device  # noqa: E402


def canvases() -> list[np.ndarray]:
    """The ten example digits as the demo's Sketchpad sends them: 280x280 RGBA, black ink on white."""
    return [np.asarray(render(strokes).convert("RGBA")) for strokes in STROKES.values()]


def four_digit_number() -> np.ndarray:
    """2026 drawn with the example strokes on an 840x280 canvas (RGBA, black ink on white)."""
    canvas = np.full((280, 840), 255, dtype=np.uint8)
    for i, digit in enumerate("2026"):
        drawn = np.asarray(render(STROKES[digit]))[:, 70:250]  # the digit's 180 middle columns
        np.minimum(canvas[:, 60 + i * 180 : 240 + i * 180], drawn, out=canvas[:, 60 + i * 180 : 240 + i * 180])
    return np.asarray(Image.fromarray(canvas).convert("RGBA"))


def crowded_marks() -> np.ndarray:
    """40 small rings in a tight 5x8 cluster on an 840x280 canvas: as many marks as read_number reads, each
    short run of them shaped like a digit, so the picture makes the most candidates one can."""
    canvas = Image.new("L", (840, 280), 255)
    draw = ImageDraw.Draw(canvas)
    for column in range(5):
        for row in range(8):
            x, y = 345 + column * 30, 20 + row * 30
            draw.ellipse((x, y, x + 12, y + 12), outline=0, width=3)
    return np.asarray(canvas)


def straightforward(canvas: np.ndarray, model: torch.nn.Module) -> dict[str, float]:
    """The usual tutorial pipeline: gray, invert, crop, fit into 20x20, centre by mass in 28x28, forward."""
    ink = ImageOps.invert(Image.fromarray(canvas).convert("L"))
    digit = ink.crop(ink.getbbox())
    w, h = digit.size
    scale = 20 / max(w, h)
    digit = digit.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    pixels = np.asarray(digit, dtype=np.float32) / 255
    rows, cols = np.indices(pixels.shape)
    cy, cx = (rows * pixels).sum() / pixels.sum(), (cols * pixels).sum() / pixels.sum()
    top = int(np.clip(round(14 - cy), 0, 28 - pixels.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - pixels.shape[1]))
    field = np.zeros((28, 28), dtype=np.float32)
    field[top : top + pixels.shape[0], left : left + pixels.shape[1]] = pixels
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(field)[None, None].to(next(model.parameters()).device)), 1)[0]
    return dict(zip("0123456789", probs.tolist()))


def bomb_cost(folder: Path) -> tuple[float, float]:
    """Seconds and extra peak MB to refuse a 13000x13000 PNG sent as a canvas's composite."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from bombs import giant_png  # the same file the test suite sends to the demo

    giant_png(folder / "giant.png", 13000)
    Image.new("L", (280, 280), 255).save(folder / "blank.png")
    try:  # a small file first: PIL loads its file-format plugins on the first file it opens
        predict({"composite": str(folder / "blank.png")})
    except NoDigitError:
        pass
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        predict({"composite": str(folder / "giant.png")})
    except UnreadableImageError:
        pass
    seconds = time.perf_counter() - start
    return seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def percentiles(seconds: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(seconds, n=20)
    return statistics.median(seconds), cuts[18]  # p50, p95


def time_interleaved(fns: list, inputs: list, repeats: int, device: torch.device = torch.device("cpu")) -> list[list[float]]:
    """Seconds per call of each function, the functions taking turns on each input: a machine that speeds
    up or slows down during the run (shared CPUs do, by 20-30%) moves all of them alike."""
    for fn in fns:
        for image in inputs:  # warm-up
            fn(image)
    seconds: list[list[float]] = [[] for _ in fns]
    for i in range(repeats):
        for fn, times in zip(fns, seconds):
            start = time.perf_counter()
            fn(inputs[i % len(inputs)])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    return seconds


def time_calls(fn, inputs: list, repeats: int, device: torch.device) -> list[float]:
    return time_interleaved([fn], inputs, repeats, device)[0]


@torch.no_grad()
def throughput(model: torch.nn.Module, device: torch.device, batch: int, seconds: float = 2.0) -> float:
    x = torch.rand(batch, 1, 28, 28, device=device)
    model(x)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model(x)
        done += batch
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return done / (time.perf_counter() - start)


def onnx_rows(repeats: int) -> None:
    """Each network alone, in onnxruntime and in eager PyTorch, both on one thread, at batch 1 and 256."""
    try:
        import onnxruntime
    except ImportError:
        print("onnxruntime: not installed (pip install onnxruntime onnx onnxscript)")
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    print(f"{'one thread':<28}{'variant':<11}{'batch':>6}{'onnxruntime ms':>16}{'PyTorch ms':>12}{'PyTorch/onnxruntime':>21}")
    with tempfile.TemporaryDirectory() as folder, torch.inference_mode():
        for variant in VARIANTS:
            model = load_model(variant)
            session = onnxruntime.InferenceSession(str(model.export_onnx(Path(folder) / f"{variant}.onnx")), options,
                                                   providers=["CPUExecutionProvider"])
            for batch in (1, 256):
                x = torch.rand(batch, 1, 28, 28)
                pixels = {"pixels": x.numpy()}
                runtime, eager = (statistics.median(t) for t in time_interleaved(
                    [lambda _: session.run(None, pixels), lambda _: model(x)], [None], max(20, repeats // (1 + batch // 8))))
                print(f"{'CPU, onnxruntime ' + onnxruntime.__version__:<28}{variant:<11}{batch:>6}{runtime * 1e3:>16.3f}"
                      f"{eager * 1e3:>12.3f}{eager / runtime:>20.1f}x")
    torch.set_num_threads(threads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=1000, help="timed predict() calls per device (default: %(default)s)")
    args = p.parse_args()
    if args.repeats < 20:
        p.error(f"--repeats must be at least 20 for a p95, got {args.repeats}")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    images = canvases()
    print(f"torch {torch.__version__}; latency over {args.repeats} calls on 280x280 canvases, in ms")
    cpu = devices[0]
    baseline = load_model(device=cpu)
    ours, plain = (statistics.median(times) for times in time_interleaved(
        [lambda im: predict(im, baseline), lambda im: straightforward(im, baseline)], images, args.repeats))
    print(f"predict() p50 {ours * 1e3:.3f} ms, straightforward numpy + PIL pipeline p50 {plain * 1e3:.3f} ms: "
          f"ratio {ours / plain:.2f} (same model, calls taking turns, {describe_device(cpu)})")
    year = four_digit_number()
    number_p50, number_p95 = percentiles(time_calls(lambda im: read_number(im, baseline), [year], args.repeats // 5, cpu))
    print(f"read_number() on a 4-digit number, 840x280 canvas: p50 {number_p50 * 1e3:.1f} ms, p95 {number_p95 * 1e3:.1f} ms "
          f"(reads {read_number(year, baseline).text!r})")
    crowd = crowded_marks()
    crowd_p50 = statistics.median(time_calls(lambda im: read_number(im, baseline), [crowd], 20, cpu))
    print(f"read_number() on 40 small rings, the most candidates a picture makes "
          f"({len(segment(*to_picture(crowd)).candidates)}): p50 {crowd_p50 * 1e3:.0f} ms")
    with tempfile.TemporaryDirectory() as folder:
        seconds, megabytes = bomb_cost(Path(folder))
    print(f"13000x13000 PNG bomb refused in {seconds * 1e3:.1f} ms, {megabytes:.0f} MB extra peak memory")
    print(f"{'device':<28}{'variant':<11}{'preprocess p50':>15}{'predict p50':>13}{'predict p95':>13}"
          f"{'img/s bs1':>11}{'img/s bs256':>13}{'img/s bs4096':>14}")
    cpu_preprocess = percentiles(time_calls(preprocess, images, args.repeats, cpu))[0]
    for device in devices:
        for variant in VARIANTS:
            model = load_model(variant, device=device)
            p50, p95 = percentiles(time_calls(lambda im: predict(im, model), images, args.repeats, device))
            rates = [throughput(model, device, batch) for batch in (1, 256, 4096)]
            print(f"{describe_device(device):<28}{variant:<11}{cpu_preprocess * 1e3:>15.3f}{p50 * 1e3:>13.3f}"
                  f"{p95 * 1e3:>13.3f}" + "".join(f"{rate:>{w},.0f}" for rate, w in zip(rates, (11, 13, 14))))
    onnx_rows(args.repeats)

if __name__ == "__main__":
    main()
