"""The demo phantom and implant of `isodose demo`, from Python: its geometry
against the closed-form volumes it is built from, and seeds inside the gland."""

import numpy as np
import pytest

import isodose


@pytest.fixture(scope="module")
def phantom():
    return isodose.demo_phantom()


def test_grid_hu_and_structures(phantom):
    ct, rois = phantom
    assert ct.grid.shape == (96, 128, 128) and ct.grid.spacing_mm == (1.0, 1.0, 1.0)
    assert set(rois) == {"Prostate", "Urethra", "Rectum"}
    hu = ct.hu
    assert hu.min() == -1000.0 and np.all(hu[rois["Prostate"] & ~rois["Urethra"]] == 40.0)
    assert np.all(hu[rois["Rectum"]] == 10.0)
    # voxel counts (1 mm³ each) against the ellipsoid (4/3 pi a b c) and the
    # rectum cylinder (pi r² over 96 slices)
    prostate_mm3 = 4.0 / 3.0 * np.pi * 24.0 * 18.0 * 22.0
    assert abs(rois["Prostate"].sum() - prostate_mm3) < 0.01 * prostate_mm3
    rectum_mm3 = np.pi * 12.0**2 * 96
    assert abs(rois["Rectum"].sum() - rectum_mm3) < 0.01 * rectum_mm3
    assert not np.any(rois["Rectum"] & rois["Prostate"])


def test_seeds_lie_inside_the_gland_away_from_the_urethra(phantom):
    seeds = isodose.demo_seed_positions()
    assert seeds.dtype == np.float64 and seeds.ndim == 2 and seeds.shape[1] == 3 and len(seeds) > 40
    x, y, z = seeds.T
    assert np.all((x / 24.0) ** 2 + (y / 18.0) ** 2 + (z / 22.0) ** 2 < 1.0)
    assert np.all(np.hypot(x - 0.0, y + 3.0) >= 3.0 + 4.0)  # needles 4 mm clear of its 3 mm radius
    # the demo's implant: 0.55 U Amersham6711 seeds treat most of the gland
    # to the 145 Gy prescription of LDR prostate monotherapy
    ct, rois = phantom
    grid = isodose.Grid(shape=(48, 64, 64), spacing_mm=(2.0, 2.0, 2.0), origin_mm=(-63.0, -63.0, -47.0))
    dose = isodose.brachy_dose(isodose.Implant("Amersham6711", seeds, 0.55), grid, backend="cpu")
    coarse = rois["Prostate"][::2, ::2, ::2]
    assert coarse.shape == grid.shape
    v100 = isodose.dvh(dose, coarse).v(145.0)
    assert 0.8 < v100 <= 1.0
