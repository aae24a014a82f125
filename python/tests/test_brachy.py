"""Implants and brachytherapy dose grids from Python."""

import math

import numpy as np
import pytest

import isodose

TAU_H = 59.40 * 24 / math.log(2)  # mean life of I-125, h (T½ = 59.40 d)


def grid():
    return isodose.Grid(shape=(5, 7, 9), spacing_mm=(2.0, 2.0, 2.0), origin_mm=(-8.0, -6.0, -4.0))


def test_grid_attributes_and_repr():
    g = grid()
    assert g.shape == (5, 7, 9)
    assert g.spacing_mm == (2.0, 2.0, 2.0)
    assert g.origin_mm == (-8.0, -6.0, -4.0)
    assert "shape=(5, 7, 9)" in repr(g)
    with pytest.raises(isodose.InputError, match="spacing"):
        isodose.Grid((1, 1, 1), (0.0, 1.0, 1.0), (0.0, 0.0, 0.0))


def test_dose_is_float32_zyx_and_equals_rate_times_mean_life():
    # one seed beyond the grid on the +x side, in the plane y = 0, z = 0:
    # the hottest voxel is the last along the last axis (x)
    implant = isodose.Implant("Amersham6711", [[18.0, 0.0, 0.0]], 0.5)
    dose = isodose.brachy_dose(implant, grid(), backend="cpu")
    a = dose.array
    assert a.dtype == np.float32 and a.shape == (5, 7, 9)
    assert np.unravel_index(np.argmax(a), a.shape) == (2, 3, 8)  # z=0, y=0, x=8
    assert dose.backend.startswith("cpu")
    assert dose.array is dose.array  # the stored array, not a copy per access
    # voxel (z=0, y=0, x=8): 10 mm from the seed on its transverse plane
    rate = 0.5 * isodose.tg43_dose_rate("Amersham6711", 1.0, 90.0)  # cGy/h
    assert abs(a[2, 3, 8] - rate * TAU_H / 100) / (rate * TAU_H / 100) < 1e-3
    assert "Dose(grid=" in repr(dose)


def test_temporary_implant_and_any_dtype_or_order():
    pos = np.asfortranarray(np.array([[0, 0, 0], [2, 2, 2]], dtype=np.int64))
    perm = isodose.Implant("Best2301", pos, [0.4, 0.6])
    temp = isodose.Implant("Best2301", pos, np.array([0.4, 0.6], dtype=np.float32), duration_h=24.0)
    dp = isodose.brachy_dose(perm, grid()).array
    dt = isodose.brachy_dose(temp, grid()).array
    factor = (1 - math.exp(-24.0 / TAU_H))
    np.testing.assert_allclose(dt, dp * factor, rtol=1e-5)


def test_bad_implants_are_clear_errors():
    with pytest.raises(isodose.InputError, match=r"\(n, 3\)"):
        isodose.Implant("Amersham6711", [[0.0, 0.0]], 0.5)
    with pytest.raises(isodose.InputError, match="finite"):
        isodose.Implant("Amersham6711", [[0.0, np.nan, 0.0]], 0.5)
    with pytest.raises(isodose.InputError, match="zero length"):
        isodose.Implant("Amersham6711", [[0.0, 0.0, 0.0]], 0.5, directions=[[0.0, 0.0, 0.0]])
    with pytest.raises(isodose.InputError, match="air-kerma"):
        isodose.Implant("Amersham6711", [[0.0, 0.0, 0.0]], -0.5)
    with pytest.raises(isodose.InputError, match="complex"):
        isodose.Implant("Amersham6711", np.zeros((1, 3), dtype=complex), 0.5)
    with pytest.raises(isodose.InputError, match="backend"):
        isodose.brachy_dose(isodose.Implant("Amersham6711", [[0, 0, 0]], 0.5), grid(), backend="tpu")


def test_gpu_backend_matches_cpu_or_says_why():
    """On the GPU backend (lavapipe in CI) the dose equals the CPU reference
    to 1e-4 of its maximum; without any Vulkan adapter the error is GpuError."""
    implant = isodose.Implant("Amersham6711", [[1.0, 2.0, 0.5], [-3.0, 0.0, 1.0]], [0.5, 0.4])
    cpu = isodose.brachy_dose(implant, grid(), backend="cpu").array
    try:
        gpu = isodose.brachy_dose(implant, grid(), backend="gpu")
    except isodose.GpuError as e:
        assert "adapter" in str(e)
        return
    assert gpu.backend.startswith("gpu")
    np.testing.assert_allclose(gpu.array, cpu, atol=1e-4 * cpu.max())
