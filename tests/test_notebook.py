"""The notebook runs headlessly from top to bottom, and its text box answers like the CLI."""

import json
import sys
from pathlib import Path

import pytest

from zeptogpt import InputError, SortTask

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "zeptogpt.ipynb"

pytestmark = pytest.mark.slow

# Run after the notebook's own cells: the text box's callback called directly, and the widget
# driven the way a user's Enter drives it (setting its value), with its output read back.
PROBE = """
import json, sys
box.value = "BCA"
print(json.dumps({"python": sys.executable, "good": on_submit("cab"), "bad": on_submit("abz"),
                  "empty": on_submit(""),
                  "widget": "".join(o.get("text", "") for o in out.outputs)}))
"""


def test_notebook_runs_and_its_text_box_answers():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # kept clean
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    def text_of(cell):
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")

    code = [c for c in nb.cells if c.cell_type == "code"]
    everything = "\n".join(text_of(c) for c in code)
    assert "Trainable parameters: 318" in everything
    assert "Model accuracy on 27 triples: 27/27" in everything
    assert "full [c, a, a, <sep>, a, a, c] -> outputs [a, a, c]" in everything
    images = sum(1 for c in code for o in c.outputs if "image/png" in o.get("data", {}))
    assert images == 5  # curves, attention, lens, weights, share solved: drawn inline

    probe = json.loads(text_of(code[-1]))
    assert probe["python"] == sys.executable  # this venv's kernel: the install cell did nothing
    assert probe["good"].splitlines()[-1] == "cab -> abc"
    assert probe["good"].startswith("start [c, a, b, <sep>]")
    for key, text in (("bad", "abz"), ("empty", "")):
        with pytest.raises(InputError) as e:
            SortTask().parse(text)
        assert probe[key] == f"error: {e.value}"
    assert probe["widget"].splitlines()[-1] == "bca -> abc"
