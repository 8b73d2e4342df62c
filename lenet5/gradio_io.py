"""Gradio's side of the demo: its drawing pads' behaviour, pictures handed over undecoded, bad requests as values.

The classes guard a public page against what Gradio would otherwise do before the event's function runs:
decode every layer of a canvas in full, or fail a whole batch of requests for one bad one. The words a
visitor reads are app.py's.
"""

import gradio as gr
from gradio.exceptions import InvalidPathError

# Gradio's Sketchpad opens, and reopens after every way of clearing it, with no tool picked: a first drag
# only selects the text "select the draw tool to start". This picks the brush whenever a pad has none, so
# drawing starts on the first drag; a tool the visitor picked (the eraser) is left alone.
PICK_BRUSH = """() => {
  const pick = () => {
    for (const pad of document.querySelectorAll(".drawing-pad")) {
      const brush = pad.querySelector('button[aria-label="Brush"]');
      if (brush && !pad.querySelector(".toolbar-wrap button.highlight")) brush.click();
    }
  };
  new MutationObserver(pick).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                      attributeFilter: ["class"]});
  pick();
}"""


def press_trash(elem_id: str) -> str:
    """The page's own Clear, as JavaScript: press the pad's trash icon. Setting the pad's value to None from
    Python clears it once only: Gradio skips a value equal to the one it last sent, so from the second
    press on the old strokes stayed on the pad and were read with the next digit."""
    return f"""() => {{ document.querySelector('#{elem_id} button[aria-label="Clear canvas"]')?.click(); }}"""


# A phone draws with a finger: the canvas takes the touch instead of scrolling the page under it. On a
# phone's first screen (390x844) the whole pad and the top of the answer must fit: the introduction keeps
# its title only, and the choice of network moves below the tabs.
CSS = """
.drawing-pad canvas { touch-action: none; }
@media (max-width: 640px) {
  #intro p { display: none; }
  #intro h1 { font-size: 1.6rem; margin: 0; }
  .form:has(> #network) { order: 1; }
}
"""


def quoted(value, limit: int = 100) -> str:
    """A request's value as a page quotes it back: its repr, cut to `limit` characters (a 1 MB network name
    gave a 1 MB answer)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Refused:
    """A request Gradio could not turn into a picture (see `ReaderBlocks`), with Gradio's error."""

    def __init__(self, error: Exception):
        self.error = error


class ReaderBlocks(gr.Blocks):
    """gr.Blocks whose reading events receive a malformed request as a `Refused` value, alone.

    Gradio checks and converts each request's inputs (`preprocess_data`) before the event's function runs.
    When that fails, Gradio answers with a bare "Error" and, for batched events, fails every request
    batched with the bad one. Here a failing request becomes a `Refused` value that the reader answers in
    words, and the requests batched with it are read as usual. Gradio's own checks stay in force: a
    FileData that names a server path instead of an upload is refused by Gradio (InvalidPathError, raised
    before the file is looked at, so existing and missing files get the same answer) and nothing is copied.
    """

    reading_inputs: frozenset[int] = frozenset()  # ids of the input components whose events are guarded
    mcp_tools: frozenset[str] = frozenset()  # the endpoints offered to agents as MCP tools; the page's own are not

    @property
    def mcp_server_obj(self):
        return self._mcp_server

    @mcp_server_obj.setter
    def mcp_server_obj(self, server) -> None:
        # Gradio lists every named endpoint as a tool; the page's batched events (canvas dicts in, Markdown and
        # HTML out) would only confuse an agent, and they stay for gradio_client. Gradio 6.31 builds its
        # MCP server at launch and sets it here, with the tools in `tool_to_endpoint`.
        if server is not None:
            server.tool_to_endpoint = {name: endpoint for name, endpoint in server.tool_to_endpoint.items()
                                       if endpoint.lstrip("/") in self.mcp_tools}
        self._mcp_server = server

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        guarded = any(block._id in self.reading_inputs for block in block_fn.inputs)
        try:
            # Gradio downloads a FileData whose path is a URL in full, with no size limit (`max_file_size` is
            # for uploads): a picture must come with the request, so a URL is refused before any fetch.
            if guarded and names_a_url(inputs):
                raise InvalidPathError("a URL")
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except Exception as error:
            if not guarded:
                raise
            return [Refused(error)] * len(block_fn.inputs)


def names_a_url(value) -> bool:
    """Whether a request's value holds a file given by URL (FileData's path, at any depth) to be fetched."""
    if isinstance(value, dict):
        path = value.get("path")
        if isinstance(path, str) and "://" in path[:16]:
            return True
        return any(names_a_url(item) for item in value.values())
    return isinstance(value, list) and any(names_a_url(item) for item in value)


class Canvas(gr.Sketchpad):
    """A Sketchpad that hands over its pictures undecoded: file paths (API requests) or bytes (the browser).

    Gradio's ImageEditor decodes and converts every layer in full before the event's function runs, so a
    small PNG of 13000x13000 pixels cost 7 GB and half a minute there. lenet5's reader opens the composite
    itself, checks its size from the header first, and never looks at the layers.
    """

    def get_block_name(self) -> str:
        return "imageeditor"  # the page draws it with the ImageEditor's own front end, as it does a Sketchpad

    def convert_and_format_image(self, file, flatten_on_white: bool = False):
        if file is None:
            return None
        return bytes(file) if isinstance(file, (bytes, bytearray, memoryview)) else file.path


def drawing_pad(label: str, width: int, elem_id: str) -> Canvas:
    """A 280-pixel-tall canvas with a black pen, as the MNIST-style reader expects it."""
    return Canvas(
        label=label,
        canvas_size=(width, 280),
        fixed_canvas=True,
        image_mode="RGBA",
        type="filepath",
        brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
        eraser=gr.Eraser(default_size=24),
        layers=False,
        transforms=(),
        elem_id=elem_id,
        elem_classes=["drawing-pad"],  # PICK_BRUSH picks the brush on these
    )


def is_empty(image) -> bool:
    """No picture at all: a cleared upload, or a canvas with nothing on it (what Clear leaves)."""
    if isinstance(image, dict):
        return all(image.get(key) is None for key in ("composite", "background")) and not image.get("layers")
    return image is None
