"""Gradio's side of the demo: its drawing pads' behaviour, pictures handed over undecoded, bad requests as values.

The classes guard a public page against what Gradio would otherwise do before the event's function runs:
decode every layer of a canvas in full, or fail a whole batch of requests for one bad one. The words a
visitor reads are app.py's.
"""

import gradio as gr

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

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except Exception as error:
            if not any(block._id in self.reading_inputs for block in block_fn.inputs):
                raise
            return [Refused(error)] * len(block_fn.inputs)


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
