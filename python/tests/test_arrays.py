"""Array inputs: any real dtype and either memory order give the same result
as the canonical float C-ordered input; wrong shapes and non-real arrays are
InputErrors that state the expected shape; outputs are float32 C-ordered and
a Dose keeps its array without copying it."""

import numpy as np
import pytest

import isodose

DTYPES = [np.int16, np.int32, np.int64, np.uint8, np.float16, np.float32, np.float64]


@pytest.fixture(scope="module")
def machine():
    return isodose.ProtonMachine.generic()


def ct_values(shape=(7, 30, 9)):
    """Integer HU (water, a 40 HU insert and an air pocket) so that every
    dtype holds them exactly; uint8 gets the non-negative subset."""
    hu = np.zeros(shape, dtype=np.int64)
    hu[2:5, 10:14, 3:6] = 40
    hu[1, 20:22, :] = 100
    return hu


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ["C", "F"])
def test_ct_image_any_dtype_and_order(dtype, order):
    hu = ct_values()
    ct = isodose.CtImage(np.array(hu, dtype=dtype, order=order), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    out = ct.hu
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == hu.shape
    np.testing.assert_array_equal(out, hu.astype(np.float32))
    assert ct.grid.shape == hu.shape


def test_ct_image_from_a_non_contiguous_view():
    hu = ct_values((14, 30, 18))
    view = hu[::2, :, ::2]  # strided, neither C nor F contiguous
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    np.testing.assert_array_equal(isodose.CtImage(view, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)).hu, view)


def test_proton_dose_is_the_same_for_every_ct_dtype_and_order(machine):
    hu = ct_values()
    beam = isodose.ProtonBeam(0.0, 0.0, (8.0, 30.0, 6.0), [90.0, 95.0], [0.0, 2.0], [0.0, -2.0], [1e8, 2e8])
    plan = isodose.ProtonPlan([beam])
    doses = []
    for dtype in (np.int16, np.float64):
        for order in ("C", "F"):
            ct = isodose.CtImage(np.array(hu, dtype=dtype, order=order), (2.0, 2.0, 2.0), (0.0, 1.0, 0.0))
            doses.append(isodose.proton_dose(ct, plan, machine, backend="cpu").array)
    assert doses[0].max() > 0
    for d in doses[1:]:
        np.testing.assert_array_equal(d, doses[0])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("order", ["C", "F"])
def test_dose_any_dtype_and_order(dtype, order):
    grid = isodose.Grid(shape=(3, 4, 5), spacing_mm=(1.0, 2.0, 3.0), origin_mm=(0.0, 0.0, 0.0))
    values = np.arange(60).reshape(3, 4, 5)
    d = isodose.Dose(np.array(values, dtype=dtype, order=order), grid)
    assert d.array.dtype == np.float32 and d.array.flags.c_contiguous
    np.testing.assert_array_equal(d.array, values.astype(np.float32))
    assert d.backend == "user" and d.grid == grid


def test_dose_array_is_its_own_storage_not_a_copy():
    grid = isodose.Grid(shape=(2, 2, 2), spacing_mm=(1.0, 1.0, 1.0), origin_mm=(0.0, 0.0, 0.0))
    d = isodose.Dose(np.ones((2, 2, 2)), grid)
    d.array[0, 0, 0] = 5.0  # edited in place: every later use sees it
    assert d.array[0, 0, 0] == 5.0
    assert isodose.dvh(d, np.ones((2, 2, 2), dtype=bool)).max == pytest.approx(5.0)


def test_wrong_shapes_name_the_expected_shape():
    grid = isodose.Grid(shape=(2, 3, 4), spacing_mm=(1.0, 1.0, 1.0), origin_mm=(0.0, 0.0, 0.0))
    with pytest.raises(isodose.InputError, match=r"\(nz, ny, nx\) = \(2, 3, 4\), got \(2, 4, 3\)"):
        isodose.Dose(np.zeros((2, 4, 3)), grid)
    with pytest.raises(isodose.InputError, match=r"array must have shape \(nz, ny, nx\), got \(1, 2, 3, 4\)"):
        isodose.Dose(np.zeros((1, 2, 3, 4)), grid)
    with pytest.raises(isodose.InputError, match=r"hu must have shape \(nz, ny, nx\), got \(3, 4\)"):
        isodose.CtImage(np.zeros((3, 4)), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    with pytest.raises(isodose.InputError, match=r"positions_mm must be \(n, 3\)"):
        isodose.Implant("Amersham6711", np.zeros((2, 2)), 0.5)
    with pytest.raises(isodose.InputError, match="equal lengths; got 2, 1, 2, 2"):
        isodose.ProtonBeam(0.0, 0.0, (0.0, 0.0, 0.0), [100.0, 100.0], [0.0], [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(isodose.InputError, match=r"structure mask: expected \(nz, ny, nx\) = \[2, 3, 4\], got \[2, 3, 3\]"):
        isodose.dvh(isodose.Dose(np.zeros((2, 3, 4)), grid), np.ones((2, 3, 3), dtype=bool))


def test_non_real_arrays_are_refused():
    grid = isodose.Grid(shape=(2, 3, 4), spacing_mm=(1.0, 1.0, 1.0), origin_mm=(0.0, 0.0, 0.0))
    with pytest.raises(isodose.InputError, match="array must be real, not complex"):
        isodose.Dose(np.zeros((2, 3, 4), dtype=complex), grid)
    with pytest.raises(isodose.InputError, match="hu cannot be read as a real array"):
        isodose.CtImage(np.full((2, 3, 4), "x"), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    hu = np.zeros((2, 3, 4))
    hu[1, 2, 0] = np.nan
    with pytest.raises(isodose.InputError, match=r"hu must be finite; voxel \[z, y, x\] = \[1, 2, 0\] is NaN"):
        isodose.CtImage(hu, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
