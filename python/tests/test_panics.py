"""No Rust panic crosses into Python: a panic inside a computation, on the
calling thread or on a rayon worker, reaches Python as isodose.IsodoseError
(an Exception, so `except Exception` in a QA script catches it), not as
pyo3's PanicException (a BaseException)."""

import pytest

import isodose
from isodose import _isodose


@pytest.mark.parametrize("worker", [False, True])
def test_a_panic_becomes_an_isodose_error(worker):
    with pytest.raises(isodose.IsodoseError, match="internal error in isodose .*deliberate panic") as info:
        _isodose._raise_internal_panic(worker)
    assert isinstance(info.value, Exception)
    assert not isinstance(info.value, (isodose.InputError, isodose.DicomError, isodose.GpuError))


def test_the_engines_still_work_after_a_panic():
    with pytest.raises(isodose.IsodoseError):
        _isodose._raise_internal_panic(True)
    grid = isodose.Grid(shape=(3, 3, 3), spacing_mm=(2.0, 2.0, 2.0), origin_mm=(-2.0, -2.0, -2.0))
    implant = isodose.Implant("Amersham6711", [[0.0, 0.0, 10.0]], 0.5)
    assert isodose.brachy_dose(implant, grid, backend="cpu").array.max() > 0
