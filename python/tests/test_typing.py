"""The package is typed: mypy's stubtest finds the stubs of the native module
(_isodose.pyi) and the annotations of the Python layer consistent with what
the module really exports, and mypy --strict accepts a typical script."""

import subprocess
import sys
import textwrap

from conftest import require

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import numpy.typing as npt
    import isodose

    grid = isodose.Grid(shape=(4, 5, 6), spacing_mm=(2.0, 2.0, 2.0), origin_mm=(0.0, 0.0, 0.0))
    implant = isodose.Implant("Amersham6711", np.zeros((1, 3)), 0.5, duration_h=None)
    dose: isodose.Dose = isodose.brachy_dose(implant, grid, backend="cpu", progress=None)
    values: npt.NDArray[np.float32] = dose.array
    rate: npt.NDArray[np.float64] = isodose.tg43_dose_rate("Amersham6711", [1.0], [90.0])
    result = isodose.gamma(dose, dose, dose_percent=2.0, dta_mm=2.0)
    fraction: float = result.pass_rate
    d95: float = isodose.dvh(dose, np.ones(grid.shape, dtype=bool)).d(95.0)
    ct, rois = isodose.demo_phantom()
    prostate: npt.NDArray[np.bool_] = rois["Prostate"]
    try:
        isodose.read_dose("missing.dcm")
    except isodose.IsodoseError as e:
        message: str = str(e)
    """
)


def test_stubtest_finds_the_stubs_consistent():
    require("mypy")
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "isodose"], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict_accepts_a_script(tmp_path):
    require("mypy")
    script = tmp_path / "uses_isodose.py"
    script.write_text(SCRIPT)
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # and a wrong use is caught: a Dose is not a Grid
    script.write_text(SCRIPT + "\nisodose.brachy_dose(implant, dose)\n")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode != 0 and "brachy_dose" in out.stdout
