"""The demo in a real browser, used the way people use it: headless Chromium draws with the mouse (or a
finger, on a phone-sized screen) without picking a tool first, pauses, clears and draws again.

Needs Debian's `chromium` (.ci/run installs it) and the playwright package; no browser is downloaded.
Screenshots are saved in tests/screenshots/ to look at.
"""

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

from examples.digits import CANVAS, STROKES, example_paths

from test_app import gradio_temp, served_app  # noqa: F401  the running app.py

SCREENSHOTS = Path(__file__).parent / "screenshots"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDE = {"viewport": {"width": 1400, "height": 1000}}
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}
READ_TIMEOUT = 30_000  # ms for an answer to show
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Every test here drives the demo in Chromium: seconds each, and only where Debian's browser is installed.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: apt-get install -y chromium to run them")]


@pytest.fixture(scope="module")
def browser():
    executable = CHROMIUM
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def visit(browser, url: str, screen: dict = WIDE) -> Page:
    """A first-time visitor: a fresh browser context, the page loaded, nothing clicked yet."""
    page = browser.new_context(**screen).new_page()
    page.goto(url)
    page.locator("#canvas canvas").first.wait_for(timeout=60_000)
    return page


@pytest.fixture
def page(browser, served_app):  # noqa: F811
    page = visit(browser, served_app)
    yield page
    page.context.close()


def drawing_origin(page: Page) -> tuple[float, float]:
    """The top-left corner of the 280x280 drawing area, which sits at the canvas element's centre."""
    box = page.locator("#canvas canvas").first.bounding_box()
    return box["x"] + box["width"] / 2 - CANVAS / 2, box["y"] + box["height"] / 2 - CANVAS / 2


def draw(page: Page, digit: str, strokes: slice = slice(None)) -> None:
    """Draw a digit's strokes with the mouse, as a person does: straight onto the canvas, no tool picked."""
    left, top = drawing_origin(page)
    for stroke in STROKES[digit][strokes]:
        page.mouse.move(left + stroke[0][0], top + stroke[0][1])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(left + x, top + y, steps=2)
        page.mouse.up()


def draw_with_a_finger(page: Page, digit: str) -> None:
    """Touch strokes, sent as the touch events a phone's screen sends."""
    cdp = page.context.new_cdp_session(page)
    left, top = drawing_origin(page)
    for stroke in STROKES[digit]:
        for i, (x, y) in enumerate(stroke):
            kind = "touchStart" if i == 0 else "touchMove"
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": left + x, "y": top + y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def top_class(page: Page):
    return page.locator("#bars [data-testid='label-output-value']")


def expect_read(page: Page, digit: str) -> None:
    expect(top_class(page)).to_have_text(digit, timeout=READ_TIMEOUT)
    article = "an" if digit == "8" else "a"
    expect(page.locator("#verdict")).to_contain_text(f"It is {article} {digit}")


def expect_cleared(page: Page) -> None:
    expect(page.locator("#verdict")).to_have_text("Draw a digit.", timeout=15_000)
    expect(top_class(page)).to_have_count(0)
    expect(page.locator("#insides img")).to_have_count(0)


def test_a_first_visitor_draws_at_once_without_picking_a_tool(page):
    draw(page, "3")
    expect_read(page, "3")
    page.screenshot(path=SCREENSHOTS / "draw.png", full_page=True)


def test_clear_then_a_pause_then_another_digit_is_read(page):
    draw(page, "3")
    expect_read(page, "3")
    page.locator("#clear").click()
    expect_cleared(page)
    page.wait_for_timeout(3_000)  # people look at the empty canvas before they draw again
    draw(page, "7")
    expect_read(page, "7")


def test_clear_three_times_in_a_row_then_draw(page):
    draw(page, "2")
    expect_read(page, "2")
    for _ in range(3):
        page.locator("#clear").click()
        page.wait_for_timeout(500)
    expect_cleared(page)
    draw(page, "5")
    expect_read(page, "5")


def test_the_pads_own_trash_icon_then_draw_again(page):
    draw(page, "1")
    expect_read(page, "1")
    page.locator('#canvas button[aria-label="Clear canvas"]').click()
    page.wait_for_timeout(2_000)
    draw(page, "4")
    expect_read(page, "4")


def brush_is_picked(page: Page, pad: str = "#canvas") -> None:
    expect(page.locator(f'{pad} button[aria-label="Brush"]')).to_have_class(re.compile(r"\bhighlight\b"))


def test_an_example_click_then_clear_then_draw(page):
    page.locator(".gallery-item, [data-testid='example'], .example").nth(8).click()
    expect_read(page, "8")
    brush_is_picked(page)  # drawing over the example starts on the first drag
    page.screenshot(path=SCREENSHOTS / "example.png", full_page=True)
    page.locator("#clear").click()
    expect_cleared(page)
    draw(page, "0")
    expect_read(page, "0")


def test_uploading_a_photo_shows_it_in_the_bars(page):
    page.get_by_role("tab", name="Upload").click()
    page.locator("#upload input[type=file]").set_input_files(str(example_paths()[5]))
    expect_read(page, "5")
    page.screenshot(path=SCREENSHOTS / "upload.png", full_page=True)
    page.locator("#clear").click()
    expect_cleared(page)
    expect(page.locator("#upload")).not_to_contain_text("digit_5.png")


def settled_verdict(page: Page, quiet: float = 2.0, limit: float = 30.0) -> str:
    """The verdict once the page has stopped updating it (no change for `quiet` seconds)."""
    verdict, since, waited = page.locator("#verdict").inner_text(), 0.0, 0.0
    while since < quiet and waited < limit:
        page.wait_for_timeout(250)
        now = page.locator("#verdict").inner_text()
        since, verdict, waited = (since + 0.25 if now == verdict else 0.0), now, waited + 0.25
    return verdict


def test_switching_networks_rereads_the_same_drawing(page):
    draw(page, "4")
    expect_read(page, "4")
    modern_verdict = settled_verdict(page)
    page.locator("#network").get_by_text("LeCun et al. 1998").click()
    expect(page.locator("#verdict")).not_to_have_text(modern_verdict, timeout=READ_TIMEOUT)
    paper_verdict = settled_verdict(page)
    assert paper_verdict != modern_verdict and "It is a 4" in paper_verdict
    expect(top_class(page)).to_have_text("4")
    page.screenshot(path=SCREENSHOTS / "networks.png", full_page=True)
    page.locator("#network").get_by_text("Modern LeNet-5").click()
    expect(page.locator("#verdict")).to_have_text(modern_verdict, timeout=READ_TIMEOUT)


def test_switching_networks_mid_drawing_then_finishing_the_digit(page):
    draw(page, "4", strokes=slice(0, 1))  # the open angle of a 4: not yet the digit
    page.locator("#network").get_by_text("LeCun et al. 1998").click()
    page.wait_for_timeout(1_000)
    brush_is_picked(page)
    draw(page, "4", strokes=slice(1, None))  # its down stroke, after the switch
    expect_read(page, "4")
    assert "It is a 4" in settled_verdict(page)


def test_a_phones_first_screen_shows_the_whole_pad_and_the_answer_and_reads_a_finger(browser, served_app):  # noqa: F811
    page = visit(browser, served_app, PHONE)
    try:
        draw_with_a_finger(page, "7")
        expect_read(page, "7")
        screen = PHONE["viewport"]["height"]
        canvas, verdict, first_bar, examples = (page.locator(s).first.bounding_box() for s in
                                                ("#canvas", "#verdict", "#bars .confidence-set", "#examples"))
        assert 0 <= canvas["y"] and canvas["y"] + canvas["height"] <= verdict["y"]  # the whole pad, then the answer
        assert first_bar["y"] + first_bar["height"] <= screen, "the first bar is below the fold"
        assert examples["y"] > first_bar["y"]  # the example tiles come after the answer
        assert page.evaluate("window.scrollY") == 0  # all of it without scrolling
        page.screenshot(path=SCREENSHOTS / "phone.png")
        page.locator("#network").get_by_text("LeCun et al. 1998").click()  # still there, below the tabs
        expect(page.locator("#verdict")).to_contain_text("It is a 7", timeout=READ_TIMEOUT)
    finally:
        page.context.close()


def test_a_number_written_with_the_mouse_is_read(page):
    page.get_by_role("tab", name="Number").click()
    pad = page.locator("#number-canvas canvas").first
    pad.wait_for()
    page.wait_for_timeout(1_000)
    write_number(page, "314")
    expect(page.locator("#number-text")).to_contain_text("It reads 314", timeout=READ_TIMEOUT)
    expect(page.locator("#number-insides img")).to_have_count(2)
    page.screenshot(path=SCREENSHOTS / "number.png", full_page=True)
    page.locator("#number-clear").click()
    expect(page.locator("#number-text")).to_have_text("Write a number.", timeout=15_000)


def clear_with(page: Page, way: str, pad: str = "#canvas", button: str = "#clear") -> None:
    """Clear the drawing as people do: the page's Clear button, or the pad's own trash icon."""
    page.locator(button if way == "Clear" else f'{pad} button[aria-label="Clear canvas"]').click()


def dark_pixels(page: Page, pad: str = "#canvas") -> int:
    """How many pixels of the pad look inked, from a screenshot of it as the visitor sees it."""
    shot = Image.open(io.BytesIO(page.locator(f"{pad} canvas").first.screenshot())).convert("L")
    return int((np.asarray(shot) < 128).sum())


def expect_blank_pad(page: Page, pad: str = "#canvas") -> None:
    for _ in range(20):
        if dark_pixels(page, pad) < 1_000:  # a blank pad's frame shows about 250; a digit's strokes 12,000 or more
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"the pad {pad} still shows {dark_pixels(page, pad)} dark pixels after clearing")


def test_every_clear_empties_the_canvas_and_each_new_digit_is_read_alone(page):
    # Gradio ignores a value set to what it last set: from the second press on, Clear used to reset the
    # answer and leave the old strokes on the pad, so the next digit was read together with them.
    for digit, way in zip("37102", ["Clear", "Clear", "trash", "Clear", "Clear"]):
        draw(page, digit)
        expect_read(page, digit)
        clear_with(page, way)
        if way == "Clear":
            expect_cleared(page)
        expect_blank_pad(page)
        page.wait_for_timeout(700)  # a look at the empty pad before the next digit
    draw(page, "4")
    expect_read(page, "4")


def write_number(page: Page, number: str) -> None:
    """A number written with the mouse on the Number tab's pad, each digit in its own 280-pixel third."""
    pad = page.locator("#number-canvas canvas").first
    zoom = float(page.locator("#number-canvas .zoom-number span").inner_text().rstrip("%")) / 100
    box = pad.bounding_box()
    left, top = box["x"] + box["width"] / 2 - 420 * zoom, box["y"] + box["height"] / 2 - 140 * zoom
    for slot, digit in enumerate(number):
        for stroke in STROKES[digit]:
            page.mouse.move(left + (slot * 280 + stroke[0][0]) * zoom, top + stroke[0][1] * zoom)
            page.mouse.down()
            for x, y in stroke[1:]:
                page.mouse.move(left + (slot * 280 + x) * zoom, top + y * zoom, steps=2)
            page.mouse.up()


def test_every_clear_of_the_number_pad_empties_it(page):
    page.get_by_role("tab", name="Number").click()
    page.locator("#number-canvas canvas").first.wait_for()
    page.wait_for_timeout(1_000)
    for number, way in zip(["31", "7", "40", "2"], ["Clear", "trash", "Clear", "Clear"]):
        write_number(page, number)
        expect(page.locator("#number-text")).to_contain_text(f"It reads {number}:", timeout=READ_TIMEOUT)
        clear_with(page, way, "#number-canvas", "#number-clear")
        if way == "Clear":
            expect(page.locator("#number-text")).to_have_text("Write a number.", timeout=15_000)
        expect_blank_pad(page, "#number-canvas")
        page.wait_for_timeout(700)
    write_number(page, "9")
    expect(page.locator("#number-text")).to_contain_text("It reads 9:", timeout=READ_TIMEOUT)
