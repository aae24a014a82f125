"""The example notebook examples/isodose_tour.ipynb runs from start to end
(it is committed without outputs) and prints what it claims."""

import re

from conftest import REPO, require

NOTEBOOK = REPO / "examples" / "isodose_tour.ipynb"


def test_tour_notebook_runs(tmp_path):
    nbformat = require("nbformat")
    nbclient = require("nbclient")
    require("ipykernel")
    require("matplotlib")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), "commit the notebook without outputs"
    # the kernel "python3" runs in this interpreter (jupyter_client maps the
    # native kernel's "python" to sys.executable), so it imports this isodose
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert images == 4  # dose slice, depth-dose, DVH, gamma
    volume, sphere = map(float, re.search(r"volume ([\d.]+) cm³ \(sphere: ([\d.]+) cm³\)", text).groups())
    assert abs(volume - sphere) <= 0.01 * sphere
    rate = float(re.search(r"pass rate ([\d.]+) %", text).group(1))
    assert 50.0 < rate < 100.0
