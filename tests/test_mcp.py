"""The running app as an MCP server, used by a real MCP client the way an AI assistant uses it: the tools
it lists and their descriptions, pictures sent as data: URLs, answers read as JSON."""

import asyncio
import base64
import io
import json
import urllib.request

import httpx
import numpy as np
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

from examples.digits import STROKES, example_paths, render

from test_app import gradio_temp, served_app  # noqa: F401  the running app.py

TOOLS = {"read_handwritten_digit", "read_handwritten_number"}


def data_url(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def year(number: str = "2026") -> Image.Image:
    """A number written with the example strokes, each digit in its own 180-pixel column of an 840x280 page."""
    page = np.full((280, 840), 255, dtype=np.uint8)
    for i, digit in enumerate(number):
        page[:, 60 + i * 180 : 240 + i * 180] = np.minimum(page[:, 60 + i * 180 : 240 + i * 180],
                                                             np.asarray(render(STROKES[digit]))[:, 70:250])
    return Image.fromarray(page)


def with_client(url: str, calls: list[tuple[str, dict]]) -> tuple[list, list]:
    """The server's tools, then the answers to `calls`, each within 60 s, through one MCP session."""
    async def session():
        async with httpx.AsyncClient(timeout=30) as http, \
                streamable_http_client(f"{url}/gradio_api/mcp/", http_client=http) as (read, write, _):
            async with ClientSession(read, write) as client:
                await asyncio.wait_for(client.initialize(), 60)
                tools = (await asyncio.wait_for(client.list_tools(), 60)).tools
                answers = [await asyncio.wait_for(client.call_tool(name, args), 60) for name, args in calls]
                return tools, answers
    return asyncio.run(session())


def answer(result) -> dict:
    assert not result.isError, result.content
    return json.loads(result.content[0].text)


@pytest.mark.slow
def test_an_agent_finds_two_tools_that_say_what_they_do(served_app):  # noqa: F811
    tools, _ = with_client(served_app, [])
    assert {tool.name for tool in tools} == TOOLS  # the page's own batched endpoints are not offered
    for tool in tools:
        assert "data: URL" in tool.inputSchema["properties"]["image"]["description"]
        assert '"lecun1998"' in tool.inputSchema["properties"]["network"]["description"]
        assert tool.inputSchema["properties"]["network"]["default"] == "modern" and "JSON" in tool.description
    schema = json.loads(urllib.request.urlopen(f"{served_app}/gradio_api/mcp/schema", timeout=30).read())
    assert {tool["name"] for tool in schema} == TOOLS


@pytest.mark.slow
def test_an_agent_reads_digits_and_numbers_and_gets_refusals_in_words(served_app):  # noqa: F811
    seven = data_url(Image.open(example_paths()[7]))
    blank = data_url(Image.new("L", (200, 200), 255))
    line = data_url(Image.fromarray(np.pad(np.zeros((12, 160), np.uint8), 60, constant_values=255)))
    calls = [("read_handwritten_digit", {"image": seven}),
             ("read_handwritten_digit", {"image": seven, "network": "lecun1998"}),
             ("read_handwritten_digit", {"image": blank}),
             ("read_handwritten_digit", {"image": line}),
             ("read_handwritten_digit", {"image": seven, "network": "resnet"}),
             ("read_handwritten_digit", {"image": "https://example.com/seven.png"}),  # never fetched
             ("read_handwritten_number", {"image": data_url(year())}),
             ("read_handwritten_number", {"image": blank})]
    _, results = with_client(served_app, calls)
    modern, paper, empty, flat, unknown, url, number, no_number = (answer(result) for result in results)
    for read in (modern, paper):
        assert read["digit"] == "7" and read["refusal"] is None
        assert read["probability"] == max(read["probabilities"].values()) and abs(sum(read["probabilities"].values()) - 1) < 1e-6
    assert empty["digit"] is None and empty["refusal"].startswith("Nothing to read")
    assert flat["digit"] is None and flat["refusal"] == "That looks like a flat line, not a digit. Draw a digit."
    assert unknown["refusal"] == "There is no network called 'resnet' here; choose one of modern, lecun1998."
    assert url["refusal"] == "Pictures must be sent with the request; this demo does not read files named by a path."
    assert number["number"] == "2026" and [d["digit"] for d in number["digits"]] == list("2026")
    boxes = [d["box"] for d in number["digits"]]
    assert all(x0 < x1 <= 840 and y0 < y1 <= 280 for x0, y0, x1, y1 in boxes) and boxes == sorted(boxes)
    assert no_number["number"] is None and no_number["digits"] == [] and no_number["refusal"].startswith("Nothing to read")


def test_the_tools_answer_in_json_in_process(tmp_path):
    # The same functions, called as Gradio calls them: a FileData dict whose path is an upload.
    import app

    digit, number = app.agent_tools(app.load_demo_models(None)[0])
    assert (digit.__name__, number.__name__) == ("read_handwritten_digit", "read_handwritten_number")
    year().save(tmp_path / "year.png")
    assert json.loads(digit({"path": str(example_paths()[3])}))["digit"] == "3"
    assert json.loads(number({"path": str(tmp_path / "year.png")}, "lecun1998"))["number"] == "2026"
    refused = json.loads(digit(app.Refused(TypeError("not a picture"))))
    assert refused["digit"] is None and refused["refusal"] == "That request is not a picture this demo can read (TypeError)."


def raw_call(url: str, api: str, data: list) -> list:
    """An endpoint called as raw HTTP, the way a script that is no Gradio client would (gradio_client
    would upload a local path itself, which would test the client, not the server)."""
    request = urllib.request.Request(f"{url}/gradio_api/call/{api}", data=json.dumps({"data": data}).encode(),
                                     headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}/gradio_api/call/{api}/{event}", timeout=60).read().decode()
    return json.loads(stream.split("data: ")[-1])


@pytest.mark.slow
def test_a_tool_never_reads_a_file_named_by_the_request(served_app):  # noqa: F811
    # A picture that exists on the server, named as a plain string or as a FileData that is no upload: the
    # tool's reader opened a plain string as a path (and read this 7) until it took uploads only.
    served = str(example_paths()[7])
    for image in (served, {"path": served, "meta": {"_type": "gradio.FileData"}},
                  {"path": "https://example.com/7.png", "meta": {"_type": "gradio.FileData"}}):
        digit = json.loads(raw_call(served_app, "read_handwritten_digit", [image, "modern"])[0])
        assert digit["digit"] is None
        assert digit["refusal"] == "Pictures must be sent with the request; this demo does not read files named by a path."
    numbers = json.loads(raw_call(served_app, "read_handwritten_number", [served, "modern"])[0])
    assert numbers["number"] is None and numbers["refusal"].startswith("Pictures must be sent with the request")
    assert json.loads(raw_call(served_app, "read_handwritten_digit", [12, "modern"])[0])["refusal"] == (
        "That request is not a picture this demo can read (int).")
    # The page's own endpoints too: a canvas whose composite is a URL is refused before Gradio fetches it.
    canvas = {"background": None, "layers": [], "composite": {"path": "https://example.com/7.png",
                                                                "meta": {"_type": "gradio.FileData"}}}
    verdict = raw_call(served_app, "predict", [canvas, "Modern LeNet-5 (ReLU, max-pool)"])[0]
    assert verdict == "Pictures must be sent with the request; this demo does not read files named by a path."
