"""Gamma index, DVHs and structures from Python: analytic cases computed here
in NumPy, and cross-checks against two independent implementations
(pymedphys.gamma and dicompyler-core's dvhcalc)."""

import math
import sys
import types
import warnings

import numpy as np
import pytest

import isodose
from conftest import DICOM_DATA, require

RS = DICOM_DATA / "aptg_sobp_RS.dcm"
RD = DICOM_DATA / "aptg_sobp_RD.dcm"


def cube_grid(n=40, spacing=2.5):
    """An n³ grid centred on the origin; returns the grid and the (z, y, x)
    coordinate meshes of its voxel centres (mm)."""
    c = (np.arange(n) - (n - 1) / 2) * spacing
    grid = isodose.Grid((n, n, n), (spacing,) * 3, (c[0],) * 3)
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    return grid, c, (z, y, x)


def bumps(zyx, shift=(0.0, 0.0, 0.0), scale=1.0):
    """A smooth 3D dose (Gy): two Gaussians, translated by `shift` (x, y, z mm)
    and scaled: the evaluated dose is computed, not interpolated."""
    z, y, x = zyx
    x, y, z = x - shift[0], y - shift[1], z - shift[2]
    wide = 2.0 * np.exp(-(x**2 / (2 * 18**2) + y**2 / (2 * 12**2) + z**2 / (2 * 15**2)))
    narrow = 0.8 * np.exp(-((x - 15) ** 2 + (y + 10) ** 2 + z**2) / (2 * 7**2))
    return scale * (wide + narrow)


# --- gamma -------------------------------------------------------------------


def test_identical_doses_pass_everywhere_above_the_cutoff():
    grid, _, zyx = cube_grid(24, 3.0)
    d = bumps(zyx)
    result = isodose.gamma(isodose.Dose(d, grid), isodose.Dose(d, grid), backend="cpu")
    above = d.astype(np.float32) >= 0.1 * d.astype(np.float32).max()
    assert result.pass_rate == 1.0
    assert result.evaluated_count == result.passed_count == above.sum()
    g = result.gamma
    assert g.dtype == np.float32 and g.shape == d.shape
    assert np.all(np.isnan(g[~above])) and np.all(g[above] == 0.0)
    assert result.mean_gamma == 0.0 and result.max_gamma == 0.0
    counts, edges = result.histogram(4)
    assert counts.tolist() == [above.sum(), 0, 0, 0] and edges.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert result.backend.startswith("cpu")
    assert abs(result.normalisation_gy - float(d.astype(np.float32).max())) < 1e-6
    assert "pass_rate=1.0000" in repr(result) and "3%/3 mm global" in repr(result)


@pytest.mark.parametrize("shift_mm", [(2.0, 0.0, 0.0), (1.0, -1.5, 2.0), (4.0, 2.0, -1.0)])
def test_shifted_linear_gradient_has_the_analytic_gamma(shift_mm):
    """For D_r(x) = a + g·x and D_e(x) = D_r(x − s), minimising
    |r|²/Δd² + (g·(r − s))²/ΔD² over r gives γ = |g·s| / sqrt(ΔD² + |g|²Δd²)
    everywhere (away from the grid's edges)."""
    grid, _, (z, y, x) = cube_grid(30, 2.0)
    g = np.array([0.04, -0.02, 0.03])  # Gy/mm along x, y, z
    s = np.array(shift_mm)
    ref = 5.0 + g[0] * x + g[1] * y + g[2] * z
    ev = 5.0 + g[0] * (x - s[0]) + g[1] * (y - s[1]) + g[2] * (z - s[2])
    dd = 0.03 * 6.0  # 3 % of a 6 Gy normalisation
    expected = abs(g @ s) / math.sqrt(dd**2 + (g @ g) * 3.0**2)
    result = isodose.gamma(
        isodose.Dose(ref, grid), isodose.Dose(ev, grid), 3.0, 3.0, cutoff_percent=0.0, normalisation_gy=6.0
    )
    interior = result.gamma[10:-10, 10:-10, 10:-10]  # 20 mm from every edge
    np.testing.assert_allclose(interior, expected, atol=2e-3)
    assert expected < 1.0 and result.pass_rate == 1.0  # γ ≤ |g·s|/ΔD < 1 even at the edges


def test_linear_gradient_beyond_the_criterion_fails():
    grid, _, (z, y, x) = cube_grid(20, 2.0)
    ref = 5.0 + 0.05 * x
    ev = 5.0 + 0.05 * (x - 8.0)  # γ = 0.4 / sqrt(0.15² + 0.15²) = 1.886
    # a coarser resolution (Δd/4; the continuous search still finds the
    # minimum of the interpolant) keeps this search of failing points short
    result = isodose.gamma(
        isodose.Dose(ref, grid), isodose.Dose(ev, grid), 3.0, 3.0, cutoff_percent=0.0, normalisation_gy=5.0, search_step=0.25
    )
    interior = result.gamma[8:-8, 8:-8, 8:-8]
    np.testing.assert_allclose(interior, 0.4 / math.hypot(0.15, 0.15), atol=2e-3)
    assert result.pass_rate == 0.0  # a restricted search near the edges cannot lower γ


@pytest.mark.parametrize(
    ("shift_mm", "scale", "dose_percent", "dta_mm"),
    [
        ((2.5, -2.0, 1.0), 1.03, 3.0, 3.0),
        ((3.0, 1.0, -2.0), 0.97, 3.0, 3.0),
        ((2.5, -2.0, 1.0), 1.03, 2.0, 2.0),
    ],
)
def test_pass_rate_agrees_with_pymedphys(shift_mm, scale, dose_percent, dta_mm):
    """pymedphys.gamma (an independent implementation) on the same doses,
    global, 10 % cut-off, search step Δd/10, γ capped at 2: pass rates within
    1 percentage point. (isodose refines the search off its lattice, so its γ
    can only be lower where pymedphys's shells miss the exact minimum: its
    pass rate is equal or slightly higher.) pymedphys is run with SciPy's
    interpolation so that numba is not needed."""
    pymedphys = require("pymedphys")
    grid, c, zyx = cube_grid(40, 2.5)
    ref, ev = bumps(zyx), bumps(zyx, shift_mm, scale)
    ours = isodose.gamma(
        isodose.Dose(ref, grid), isodose.Dose(ev, grid), dose_percent, dta_mm, cutoff_percent=10.0, search="lattice"
    )
    # the default search
    continuous = isodose.gamma(isodose.Dose(ref, grid), isodose.Dose(ev, grid), dose_percent, dta_mm, cutoff_percent=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = pymedphys.gamma(
            (c, c, c),
            ref,
            (c, c, c),
            ev,
            dose_percent_threshold=dose_percent,
            distance_mm_threshold=dta_mm,
            lower_percent_dose_cutoff=10,
            interp_fraction=10,
            max_gamma=2,
            local_gamma=False,
            skip_once_passed=True,  # stops a point's search at γ <= 1: the pass rate is unchanged
            interp_algo="scipy",
            quiet=True,
        )
    valid = ~np.isnan(theirs)
    assert valid.sum() == ours.evaluated_count  # the same points above the cut-off
    their_rate = float(np.mean(theirs[valid] <= 1.0))
    assert 0.5 < their_rate < 1.0  # a case that discriminates
    assert abs(ours.pass_rate - their_rate) <= 0.01, (ours.pass_rate, their_rate)
    # the continuous search minimises over every position, not a lattice
    assert continuous.evaluated_count == ours.evaluated_count
    assert abs(continuous.pass_rate - their_rate) <= 0.01, (continuous.pass_rate, their_rate)
    evaluated = ~np.isnan(ours.gamma)
    assert np.all(continuous.gamma[evaluated] <= ours.gamma[evaluated] + 1e-4)


def test_unknown_gamma_search_is_a_clear_error():
    grid, _, zyx = cube_grid(8, 3.0)
    dose = isodose.Dose(bumps(zyx), grid)
    with pytest.raises(isodose.IsodoseError, match="gamma search"):
        isodose.gamma(dose, dose, search="spiral")


def test_gpu_gamma_matches_cpu_or_says_why():
    """On the GPU backend (lavapipe in CI) γ equals the CPU reference within
    the f32 rounding of the search; without any adapter the error is GpuError."""
    grid, _, zyx = cube_grid(16, 3.0)
    ref = isodose.Dose(bumps(zyx), grid)
    ev = isodose.Dose(bumps(zyx, (2.5, -2.0, 1.0), 1.03), grid)
    cpu = isodose.gamma(ref, ev, 2.0, 2.0, backend="cpu")
    try:
        gpu = isodose.gamma(ref, ev, 2.0, 2.0, backend="gpu")
    except isodose.GpuError as e:
        assert "adapter" in str(e)
        return
    assert gpu.backend.startswith("gpu")
    assert gpu.evaluated_count == cpu.evaluated_count
    np.testing.assert_allclose(gpu.gamma, cpu.gamma, atol=1e-3)
    assert abs(gpu.pass_rate - cpu.pass_rate) <= 2 / cpu.evaluated_count


def test_gamma_backends_and_errors():
    grid, _, zyx = cube_grid(10, 3.0)
    d = isodose.Dose(bumps(zyx), grid)
    assert isodose.gamma(d, d, backend="auto").pass_rate == 1.0
    assert isodose.gamma(d, d, backend="cpu").backend.startswith("cpu")
    with pytest.raises(isodose.InputError, match="backend"):
        isodose.gamma(d, d, backend="tpu")
    with pytest.raises(isodose.InputError, match="distance criterion"):
        isodose.gamma(d, d, dta_mm=0.0)
    with pytest.raises(isodose.InputError, match="cut-off"):
        isodose.gamma(d, d, cutoff_percent=100.0)
    with pytest.raises(isodose.InputError):
        isodose.gamma(d, d).histogram(0)


# --- DVH from masks and occupancies ---------------------------------------------


def ramp_dose():
    """Doses 1..100 Gy in 100 voxels of 2 × 2 × 2 mm (8 mm³)."""
    grid = isodose.Grid((1, 10, 10), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    return isodose.Dose(np.arange(1, 101, dtype=np.float32).reshape(1, 10, 10), grid)


def test_mask_dvh_of_known_doses():
    dose = ramp_dose()
    mask = np.ones((1, 10, 10), dtype=bool)
    h = isodose.dvh(dose, mask)
    assert h.volume_cc == pytest.approx(0.8, rel=1e-12)
    assert (h.min, h.max) == (1.0, 100.0)
    assert h.mean == pytest.approx(50.5, rel=1e-12)
    # each voxel's dose is spread over one histogram bin: D_x is within a
    # voxel's dose step (1 Gy) of the discrete order statistic
    assert h.d(50) == pytest.approx(50.5, abs=1.0)
    assert h.d(95) == pytest.approx(5.5, abs=1.0)
    assert h.v(50.5) == pytest.approx(0.5, abs=0.01)
    assert h.v_cc(90.5) == pytest.approx(10 * 8e-3, abs=8e-3)
    assert h.d_cc(0.03) == pytest.approx(100 - 30 / 8, abs=1.0)  # 0.03 cc = 3.75 voxels
    assert h.max_0_03cc == pytest.approx(h.d_cc(0.03))
    assert h.homogeneity_index == pytest.approx((98 - 2) / 50.5, abs=0.05)
    assert h.outside_cc == 0.0 and h.name is None
    doses, volumes = h.curve(101)
    assert doses[0] == 0.0 and doses[-1] == 100.0 and volumes[0] == pytest.approx(0.8)
    assert np.all(np.diff(volumes) <= 1e-12)  # cumulative: never increases
    edges, diff = h.differential()
    assert len(edges) == len(diff) + 1 and diff.sum() == pytest.approx(0.8)
    assert edges[1] - edges[0] == pytest.approx(h.bin_width_gy)
    # half of the voxels (doses 1..50, the first 5 rows of y)
    half = np.zeros((1, 10, 10), dtype=bool)
    half[0, :5] = True
    h2 = isodose.dvh(dose, half)
    assert (h2.volume_cc, h2.min, h2.max) == (pytest.approx(0.4), 1.0, 50.0)
    assert "volume_cc=0.8000" in repr(h)


def test_occupancy_weights_each_voxel():
    dose = ramp_dose()
    occupancy = np.zeros((1, 10, 10))
    occupancy[0, 0, :4] = [0.0, 0.5, 1.0, 0.25]  # doses 1, 2, 3, 4 Gy
    h = isodose.dvh(dose, occupancy)
    assert h.volume_cc == pytest.approx(1.75 * 8e-3, rel=1e-6)
    assert h.mean == pytest.approx((2 * 0.5 + 3 + 4 * 0.25) / 1.75, rel=1e-6)
    with pytest.raises(isodose.InputError, match="occupancy"):
        isodose.dvh(dose, occupancy * 2)
    with pytest.raises(isodose.InputError, match="shape"):
        isodose.dvh(dose, np.ones((2, 10, 10), dtype=bool))
    with pytest.raises(isodose.InputError):
        isodose.dvh(dose, np.zeros((1, 10, 10), dtype=bool))  # empty structure
    with pytest.raises(isodose.InputError, match="percent"):
        isodose.dvh(dose, occupancy).d(150)


def test_paddick_conformity_of_a_known_overlap():
    """Target = the voxels of doses 1..10 Gy, prescription 5.5 Gy: TV_PIV = 5
    voxels, PIV = the 95 voxels of 6..100 Gy: CI = 5² / (10 × 95)."""
    dose = ramp_dose()
    mask = np.zeros((1, 10, 10), dtype=bool)
    mask[0, 0, :] = True
    target = isodose.dvh(dose, mask)
    assert isodose.paddick_conformity(target, dose, 5.5) == pytest.approx(25 / 950, rel=1e-6)
    with pytest.raises(isodose.InputError):
        isodose.paddick_conformity(target, dose, 0.0)


# --- structures ---------------------------------------------------------------------


def sphere(radius=20.0, spacing=2.0, vertices=180):
    """Contours of a sphere on planes z = ±1, ±3, ... mm (spacing 2 mm)."""
    t = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    contours = []
    for zc in np.arange(-radius + spacing / 2, radius, spacing):
        r = math.sqrt(radius**2 - zc**2)
        contours.append(np.column_stack([r * np.cos(t), r * np.sin(t), np.full_like(t, zc)]))
    return isodose.Structure("sphere", contours)


def test_sphere_in_a_linear_dose_has_the_analytic_dvh():
    """A sphere of radius R = 20 mm in D = 10 Gy + 0.1 Gy/mm · x: volume
    4/3 π R³, mean dose 10 Gy (symmetry), and V(D0 + g t) = the cap of height
    R − t, π (R − t)² (2R + t) / 3."""
    R, g = 20.0, 0.1
    s = sphere(R)
    exact_cc = 4 / 3 * math.pi * R**3 / 1000
    assert s.volume_cc == pytest.approx(exact_cc, rel=0.01)
    assert len(s.z_planes_mm) == 20 and s.z_planes_mm[0] == -19.0
    c = np.arange(-15, 16) * 2.0  # a 31³ grid of 2 mm, ±30 mm
    grid = isodose.Grid((31, 31, 31), (2.0, 2.0, 2.0), (c[0], c[0], c[0]))
    x = np.broadcast_to(c[None, None, :], (31, 31, 31))
    dose = isodose.Dose(10.0 + g * x, grid)
    h = isodose.dvh(dose, s)
    assert h.name == "sphere" and h.outside_cc == 0.0
    assert h.volume_cc == pytest.approx(exact_cc, rel=0.01)
    assert h.mean == pytest.approx(10.0, abs=0.01)
    assert h.min == pytest.approx(10.0 - g * R, abs=0.05) and h.max == pytest.approx(10.0 + g * R, abs=0.05)
    for t in [-10.0, 0.0, 10.0]:
        cap = math.pi * (R - t) ** 2 * (2 * R + t) / 3 / (4 / 3 * math.pi * R**3)
        assert h.v(10.0 + g * t) == pytest.approx(cap, abs=0.01)
    assert h.d(50) == pytest.approx(10.0, abs=0.02)


def test_structure_constructor_and_errors():
    square = np.array([[0, 0, 5], [10, 0, 5], [10, 10, 5], [0, 10, 5]], dtype=float)
    one_plane = isodose.Structure("slab", [square], thickness_mm=3.0)
    assert one_plane.volume_cc == pytest.approx(0.3, rel=1e-12)  # 10 × 10 × 3 mm³
    assert (one_plane.number, one_plane.color, one_plane.type) == (None, None, None)
    np.testing.assert_array_equal(one_plane.contours[0], square)
    unknown = isodose.Structure("slab", [square])
    with pytest.raises(isodose.InputError, match="thickness_mm"):
        unknown.volume_cc
    # in a dose the slab defaults to the dose grid's z spacing (4 mm here)
    grid = isodose.Grid((5, 10, 10), (2.0, 2.0, 4.0), (-1.0, -1.0, -3.0))
    h = isodose.dvh(isodose.Dose(np.ones((5, 10, 10)), grid), unknown)
    assert h.volume_cc == pytest.approx(0.4, rel=1e-9)
    assert isodose.dvh(isodose.Dose(np.ones((5, 10, 10)), grid), unknown, thickness_mm=2.0).volume_cc == pytest.approx(0.2)
    with pytest.raises(isodose.InputError, match="axial"):
        isodose.Structure("tilted", [np.array([[0, 0, 0], [1, 0, 0], [0, 1, 1.0]])])
    with pytest.raises(isodose.InputError, match=r"\(n, 3\)"):
        isodose.Structure("flat", [np.zeros((4, 2))])
    with pytest.raises(isodose.InputError, match="thickness_mm"):
        isodose.dvh(isodose.Dose(np.ones((5, 10, 10)), grid), np.ones((5, 10, 10), dtype=bool), thickness_mm=2.0)


def test_read_structures_of_the_raystation_set():
    s = isodose.read_structures(RS)
    # LoPo is a POINT marker: no closed contour, no structure
    assert set(s) == {"Cube101010", "Slope101004", "External", "PMMA"}
    cube = s["Cube101010"]
    assert (cube.name, cube.number, cube.type) == ("Cube101010", 8, "PTV")
    assert len(cube.z_planes_mm) == 21 and cube.z_planes_mm[0] == -50.0 and cube.z_planes_mm[-1] == 50.0
    # 21 planes 5 mm apart, each a 5 mm slab of a 100 × 100 mm square
    assert cube.volume_cc == pytest.approx(100 * 100 * 105 / 1000, rel=1e-9)
    assert s["External"].volume_cc == pytest.approx(205**3 / 1000, rel=1e-9)
    assert isinstance(cube.color, tuple) and len(cube.color) == 3
    assert "Cube101010" in repr(cube)


# --- cross-check with dicompyler-core ----------------------------------------------------


@pytest.fixture(scope="module")
def dvhcalc():
    """dicompyler-core's dvhcalc. Its latest release (0.5.6) still imports
    `pydicom.dicomio.read_file` and `pydicom.pixel_data_handlers.util`, which
    pydicom 3 removed; with pydicom 3 they are aliased to their pydicom 3
    equivalents (`dcmread`, `pydicom.pixels.utils.pixel_dtype`) for the
    duration of this module."""
    require("dicompylercore")
    import pydicom
    import pydicom.dicomio

    patched = []
    if not hasattr(pydicom.dicomio, "read_file"):
        from pydicom.pixels.utils import pixel_dtype

        util = types.ModuleType("pydicom.pixel_data_handlers.util")
        util.pixel_dtype = pixel_dtype
        handlers = types.ModuleType("pydicom.pixel_data_handlers")
        handlers.util = util
        pydicom.dicomio.read_file = pydicom.dcmread
        for name, module in [("pydicom.pixel_data_handlers", handlers), ("pydicom.pixel_data_handlers.util", util)]:
            if name not in sys.modules:
                sys.modules[name] = module
                patched.append(name)
    from dicompylercore import dvhcalc

    yield dvhcalc
    for name in patched:
        del sys.modules[name]


@pytest.fixture(scope="module")
def raystation():
    return isodose.read_structures(RS), isodose.read_dose(RD)


@pytest.mark.parametrize(("name", "number"), [("Cube101010", 8), ("Slope101004", 12)])
def test_dvh_agrees_with_dicompyler(dvhcalc, raystation, name, number):
    """Both take each contour plane as a slab of the plane spacing (5 mm), so
    the 100 mm cube (contoured on 21 planes from −50 to 50 mm) has 1050 cm³
    in both, not the 1000 cm³ of the physical cube (which read_rtstruct's
    voxel mask, without end caps, gives); the in-plane edges of these ROIs
    fall between dose-pixel centres, so whole pixels and isodose's sub-voxel
    sampling see the same area. Volume, D95, D50 and mean agree within 1 %
    (dicompyler bins doses to 1 cGy)."""
    structures, dose = raystation
    ours = isodose.dvh(dose, structures[name])
    theirs = dvhcalc.get_dvh(str(RS), str(RD), number)
    assert theirs.name == name
    assert ours.volume_cc == pytest.approx(theirs.volume, rel=0.01)
    assert ours.volume_cc == pytest.approx(structures[name].volume_cc, rel=1e-6)
    assert ours.d(95) == pytest.approx(theirs.D95.value, rel=0.01)
    assert ours.d(50) == pytest.approx(theirs.D50.value, rel=0.01)
    assert ours.mean == pytest.approx(theirs.mean, rel=0.01)
    assert ours.max == pytest.approx(theirs.max, rel=0.01)


def test_dvh_volume_differs_from_dicompyler_where_an_edge_is_on_pixel_centres(dvhcalc, raystation):
    """The PMMA slab is contoured as 200 × 5 mm rectangles (y from −2.5 to
    2.5 mm) on 41 planes 5 mm apart: the contour model's volume is exactly
    200 × 5 × 205 mm³ = 205 cm³, which isodose's sub-voxel sampling gives.
    dicompyler-core counts the whole 2 mm dose pixels whose centres
    matplotlib finds inside the contour; the pixel centres are at y = −103.5
    + 2k mm, so y = 2.5 mm lies on the contour edge and is counted: 3 rows
    (6 mm) instead of 5 mm, i.e. 200 × 6 × 205 mm³ = 246 cm³ (20 % high).
    isodose is right for the contour: the analytic value."""
    structures, dose = raystation
    ours = isodose.dvh(dose, structures["PMMA"])
    theirs = dvhcalc.get_dvh(str(RS), str(RD), 14)
    assert ours.volume_cc == pytest.approx(200 * 5 * 205 / 1000, rel=1e-3)
    assert theirs.volume == pytest.approx(200 * 6 * 205 / 1000, rel=1e-3)


def test_gpu_dvh_matches_cpu_or_says_why():
    """On the GPU backend the DVH of a fractional-occupancy structure has the
    CPU's volume and statistics and its D_x within one bin (1e-4 of the
    maximum dose); auto keeps such a small structure on the CPU; without any
    adapter the error is GpuError."""
    grid, _, zyx = cube_grid(16, 3.0)
    dose = isodose.Dose(bumps(zyx), grid)
    r = np.sqrt(sum(c**2 for c in zyx))
    occupancy = np.clip((14.0 - r) / 3.0, 0.0, 1.0).astype(np.float32)
    cpu = isodose.dvh(dose, occupancy, backend="cpu")
    assert cpu.backend.startswith("cpu")
    assert isodose.dvh(dose, occupancy).backend.startswith("cpu")  # auto, small
    try:
        gpu = isodose.dvh(dose, occupancy, backend="gpu")
    except isodose.GpuError as e:
        assert "adapter" in str(e)
        return
    assert gpu.backend.startswith("gpu")
    np.testing.assert_allclose(gpu.differential()[1], cpu.differential()[1], atol=1e-5 * cpu.volume_cc)
    for p in (2, 5, 50, 95, 98):
        assert abs(gpu.d(p) - cpu.d(p)) <= cpu.bin_width_gy, p
