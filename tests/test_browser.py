"""The demo in a real browser: headless Chromium draws a digit with the mouse and uploads a photo.

Needs Debian's `chromium` (.ci/run installs it) and the playwright package; no browser is downloaded.
Screenshots are saved in tests/screenshots/ to look at.
"""

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from examples.digits import CANVAS, STROKES, example_paths

from test_app import gradio_temp, served_app  # noqa: F401  the running app.py

SCREENSHOTS = Path(__file__).parent / "screenshots"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page(served_app):  # noqa: F811
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "the browser tests need Chromium: apt-get install -y chromium"
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(served_app)
            page.locator("#canvas canvas").first.wait_for(timeout=60_000)
            yield page
        finally:
            browser.close()


def draw(page: Page, digit: str) -> None:
    """Draw a digit's strokes with the mouse; the 280x280 drawing area sits at the canvas element's centre."""
    page.locator('#canvas button[aria-label="Brush"]').click()  # the pad starts with no tool selected
    box = page.locator("#canvas canvas").first.bounding_box()
    left, top = box["x"] + box["width"] / 2 - CANVAS / 2, box["y"] + box["height"] / 2 - CANVAS / 2
    for stroke in STROKES[digit]:
        page.mouse.move(left + stroke[0][0], top + stroke[0][1])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(left + x, top + y, steps=2)
        page.mouse.up()


def top_class(page: Page):
    return page.locator("#bars [data-testid='label-output-value']")


def test_drawing_a_digit_shows_it_in_the_bars(page):
    draw(page, "3")
    expect(top_class(page)).to_have_text("3", timeout=30_000)
    expect(page.locator("#verdict")).to_contain_text("It is a 3")
    page.screenshot(path=SCREENSHOTS / "draw.png", full_page=True)

    page.locator("#clear").click()
    expect(page.locator("#verdict")).to_contain_text("Draw", timeout=15_000)
    draw(page, "7")
    expect(top_class(page)).to_have_text("7", timeout=30_000)


def test_clicking_an_example_reads_it(page):
    page.get_by_role("tab", name="Draw").click()
    page.locator("#clear").click()
    page.locator(".gallery-item, [data-testid='example'], .example").nth(8).click()
    expect(top_class(page)).to_have_text("8", timeout=30_000)
    page.screenshot(path=SCREENSHOTS / "example.png", full_page=True)


def test_uploading_a_photo_shows_it_in_the_bars(page):
    page.get_by_role("tab", name="Upload").click()
    page.locator("#upload input[type=file]").set_input_files(str(example_paths()[5]))
    expect(top_class(page)).to_have_text("5", timeout=30_000)
    page.screenshot(path=SCREENSHOTS / "upload.png", full_page=True)


def settled_verdict(page: Page, quiet: float = 2.0, limit: float = 30.0) -> str:
    """The verdict once the page has stopped updating it (no change for `quiet` seconds)."""
    verdict, since, waited = page.locator("#verdict").inner_text(), 0.0, 0.0
    while since < quiet and waited < limit:
        page.wait_for_timeout(250)
        now = page.locator("#verdict").inner_text()
        since, verdict, waited = (since + 0.25 if now == verdict else 0.0), now, waited + 0.25
    return verdict


def test_switching_networks_rereads_the_same_drawing(page):
    page.get_by_role("tab", name="Draw").click()
    page.locator("#clear").click()
    draw(page, "4")
    expect(top_class(page)).to_have_text("4", timeout=30_000)
    modern_verdict = settled_verdict(page)
    page.locator("#network").get_by_text("LeCun et al. 1998").click()
    expect(page.locator("#verdict")).not_to_have_text(modern_verdict, timeout=30_000)
    paper_verdict = settled_verdict(page)
    assert paper_verdict != modern_verdict and "It is a 4" in paper_verdict
    expect(top_class(page)).to_have_text("4")
    page.screenshot(path=SCREENSHOTS / "networks.png", full_page=True)
    page.locator("#network").get_by_text("Modern LeNet-5").click()
    expect(page.locator("#verdict")).to_have_text(modern_verdict, timeout=30_000)
