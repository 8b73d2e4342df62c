"""Hand-made stroke drawings of the ten digits on a 280x280 canvas, as a person draws them with a mouse.

They are the demo's clickable examples (`python examples/digits.py` renders them to PNG) and what the
browser test draws on the canvas, stroke by stroke.
"""

import math
from pathlib import Path

from PIL import Image, ImageDraw

CANVAS = 280
PEN = 18
Point = tuple[int, int]


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, steps: int = 16) -> list[Point]:
    """Points along an ellipse, angles in degrees clockwise from 3 o'clock (screen coordinates)."""
    return [
        (round(cx + rx * math.cos(math.radians(a))), round(cy + ry * math.sin(math.radians(a))))
        for a in (start + (end - start) * i / steps for i in range(steps + 1))
    ]


STROKES: dict[str, list[list[Point]]] = {
    "0": [arc(140, 140, 60, 90, -90, 270, steps=24)],
    "1": [[(112, 82), (148, 50), (148, 232)]],
    "2": [arc(140, 100, 55, 50, 190, 360) + [(178, 150), (88, 230), (200, 230)]],
    "3": [arc(135, 95, 52, 45, 200, 450) + arc(135, 185, 60, 48, -90, 160)],
    "4": [[(160, 50), (80, 175), (205, 175)], [(170, 105), (170, 235)]],
    "5": [[(195, 52), (105, 52), (95, 130)] + arc(140, 175, 60, 55, 215, 500)[1:]],
    "6": [[(185, 55)] + arc(150, 170, 65, 110, 240, 180)[1:] + arc(140, 180, 55, 52, 180, 540)[1:]],
    "7": [[(85, 55), (200, 55), (120, 235)]],
    "8": [arc(140, 92, 48, 44, 90, 450) + arc(140, 182, 58, 50, -90, 270)],
    "9": [arc(140, 100, 52, 48, 0, 360) + [(192, 100), (180, 235)]],
}


def render(strokes: list[list[Point]], size: int = CANVAS, pen: int = PEN) -> Image.Image:
    """Black strokes on white, with round pen ends, like a canvas drawing."""
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line(stroke, fill=0, width=pen, joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=0)
    return image


def example_paths() -> list[Path]:
    return [Path(__file__).parent / f"digit_{digit}.png" for digit in STROKES]


if __name__ == "__main__":
    for path, strokes in zip(example_paths(), STROKES.values()):
        render(strokes).save(path)
        print(path)
