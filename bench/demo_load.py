"""The demo under load: `python app.py` against a no-op Gradio app with the same components, both called
through gradio_client exactly as an API user calls them.

    python bench/demo_load.py                    # 3 rounds of 50 sequential calls, then 40 people at once
    python bench/demo_load.py --sequential 100 --crowd 40 --rounds 5

The no-op app has the demo's inputs and outputs (canvas, network choice, verdict, bars, pictures) and its
queue and batch settings, and answers every request with the same fixed answer of a real answer's size:
what is left of the ratio is the cost of reading the digit. Both servers run at once on 127.0.0.1 on free
ports, and are measured in turns, round after round, so that the machine's drift moves both alike; each
figure is the median over the rounds. They are stopped at the end; every request is bounded by a timeout.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.digits import example_paths  # noqa: E402

CALL_TIMEOUT = 120  # seconds for one answer


def serve_noop(port: int) -> None:
    """The no-op app, in this process: app.py's components and event settings, a fixed answer."""
    import gradio as gr

    import app
    from lenet5.gradio_io import Canvas

    answer = app.one(app.read_batch, str(example_paths()[3]), app.BUNDLED_NAMES["modern"], app.load_demo_models(None)[0])

    def fixed(images: list, networks: list) -> list[list]:
        return [[value] * len(images) for value in answer]

    with gr.Blocks() as demo:
        network = gr.Radio(list(app.BUNDLED_NAMES.values()), value=app.BUNDLED_NAMES["modern"])
        canvas = Canvas(canvas_size=(280, 280), fixed_canvas=True, image_mode="RGBA", type="filepath")
        upload = gr.File(type="filepath")
        outputs = [gr.Markdown(), gr.Label(num_top_classes=10), gr.HTML()]
        events = {"batch": True, "max_batch_size": app.MAX_BATCH, "show_progress": "hidden", "trigger_mode": "always_last"}
        canvas.change(fixed, [canvas, network], outputs, api_name="predict", **events)
        upload.change(fixed, [upload, network], outputs, api_name="predict_upload", **events)
    demo.queue(default_concurrency_limit=4).launch(server_name="127.0.0.1", server_port=port, **app.LAUNCH_OPTIONS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], port: int) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit(f"{' '.join(command)} did not start on port {port}")


def canvas(digit: int) -> dict:
    from gradio_client import handle_file

    return {"background": None, "layers": [], "composite": handle_file(example_paths()[digit])}


def one_call(client, digit: int) -> tuple[float, bool]:
    """Seconds for one /predict round trip, and whether the answer names the digit drawn."""
    start = time.perf_counter()
    job = client.submit(canvas(digit), api_name="/predict")
    _, bars, _ = job.result(timeout=CALL_TIMEOUT)
    return time.perf_counter() - start, bool(bars) and bars.get("label") == str(digit)


def measure(url: str, sequential: int, crowd: int) -> dict:
    from gradio_client import Client

    client = Client(url, verbose=False)
    one_call(client, 0)  # warm-up
    alone = [one_call(client, i % 10)[0] for i in range(sequential)]
    people = [Client(url, verbose=False) for _ in range(crowd)]
    with ThreadPoolExecutor(max_workers=crowd) as pool:
        results = list(pool.map(lambda pair: one_call(pair[1], pair[0] % 10), enumerate(people)))
    together = [seconds for seconds, _ in results]
    return {
        "sequential p50": statistics.median(alone),
        "crowd p50": statistics.median(together),
        "crowd p95": statistics.quantiles(together, n=20)[18],
        "correct": sum(right for _, right in results),
    }


FIGURES = ("sequential p50", "crowd p50", "crowd p95")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequential", type=int, default=50, help="one-at-a-time calls (default: %(default)s)")
    p.add_argument("--crowd", type=int, default=40, help="people calling at the same moment (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="turns each server is measured in (default: %(default)s)")
    p.add_argument("--serve-noop", type=int, help=argparse.SUPPRESS)  # the no-op app, in a child process
    args = p.parse_args()
    if args.serve_noop:
        return serve_noop(args.serve_noop)
    if args.sequential < 2 or args.crowd < 20 or args.rounds < 1:
        p.error("--sequential must be at least 2, --crowd at least 20 (for a p95) and --rounds at least 1")
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    rounds: dict[str, list[dict]] = {"app.py": [], "no-op": []}
    try:
        for name, command in (("app.py", [sys.executable, "app.py"]),
                              ("no-op", [sys.executable, __file__, "--serve-noop"])):
            port = free_port()
            servers[name] = start(command + ([str(port)] if name == "no-op" else []), port), f"http://127.0.0.1:{port}"
        for _ in range(args.rounds):
            for name, (_, url) in servers.items():
                rounds[name].append(measure(url, args.sequential, args.crowd))
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(timeout=30)
    app_, noop = ({key: statistics.median(r[key] for r in rounds[name]) for key in FIGURES} for name in rounds)
    print(f"{'':<22}{'app.py':>10}{'no-op':>10}{'app/no-op':>11}")
    for key in FIGURES:
        print(f"{key + ' (ms)':<22}{app_[key] * 1e3:>10.0f}{noop[key] * 1e3:>10.0f}{app_[key] / noop[key]:>10.2f}x")
    correct = sum(r["correct"] for r in rounds["app.py"])
    print(f"{args.crowd} people at once, {args.rounds} times: app.py answered {correct} of {args.crowd * args.rounds} "
          f"correctly ({args.sequential} sequential calls each round; warm servers on 127.0.0.1; medians of the rounds)")


if __name__ == "__main__":
    main()
