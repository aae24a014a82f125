"""Proton PBS from Python: machine, plans, dose, dij and errors."""

import json
import sys

import numpy as np
import pytest

import isodose
from conftest import require


@pytest.fixture(scope="module")
def machine():
    return isodose.ProtonMachine.generic()


def water(shape=(21, 60, 21), spacing=2.0):
    nz, ny, nx = shape
    origin = (-(nx - 1) / 2 * spacing, 1.0, -(nz - 1) / 2 * spacing)
    return isodose.CtImage(np.zeros(shape, dtype=np.int16), (spacing, spacing, spacing), origin)


def test_machine(machine):
    e = machine.energies_mev
    assert e[0] == 70.0 and e[-1] == 230.0 and len(e) == 161
    assert np.all(np.diff(machine.r80_mm) > 0)
    assert "generic" in repr(machine)
    with pytest.raises(FileNotFoundError) as e:
        isodose.ProtonMachine.load("/nonexistent/machine.json")
    assert isinstance(e.value, isodose.IsodoseFileNotFoundError)
    assert isinstance(e.value, isodose.IsodoseError)
    assert "/nonexistent/machine.json" in str(e.value)


def test_an_mcsquare_beam_data_library_is_a_machine(tmp_path):
    """OpenTPS's stock IBA library (dose-core/tests/data/bdl, Apache-2.0):
    every row, ranges from the mean energies, and its errors."""
    from conftest import REPO

    path = REPO / "dose-core" / "tests" / "data" / "bdl" / "BDL_default_DN_RangeShifter.txt"
    m = isodose.ProtonMachine.load_bdl(path)
    assert len(m.energies_mev) == 27 and m.energies_mev[-1] == 225.0
    assert np.all(np.diff(m.r80_mm) > 0)
    # 150 MeV nominal, 150.559 MeV mean: PSTAR CSDA range 158.9 mm, R80 just short of it
    r80 = m.r80_mm[list(m.energies_mev).index(150.0)]
    assert 158.0 < r80 < 159.2
    with pytest.raises(FileNotFoundError):
        isodose.ProtonMachine.load_bdl(tmp_path / "absent.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text(path.read_text().replace("SMX to Isocenter distance", "SMX"))
    with pytest.raises(isodose.IsodoseError, match="SMX to Isocenter distance"):
        isodose.ProtonMachine.load_bdl(bad)


def test_a_commissioned_machine_file_sets_the_dose(tmp_path):
    """A machine file (isodose-proton-machine/1) with one energy whose IDD
    is flat at 2e-3 Gy mm^2 per proton to 50 mm and zero from 51 mm: the
    laterally integrated dose of a spot of N protons is N x 2e-3 Gy mm^2
    (less the 0.5 % lateral cut-off) at every depth before 50 mm, and the
    dose is zero beyond 51 mm."""
    path = tmp_path / "gantry1.json"
    path.write_text(
        json.dumps(
            {
                "format": "isodose-proton-machine/1",
                "name": "gantry 1",
                "sad_x_mm": 2000.0,
                "sad_y_mm": 1800.0,
                "energies": [
                    {
                        "energy_mev": 100.0,
                        "idd": {"depth_mm": [0.0, 50.0, 51.0, 80.0], "dose_gy_mm2_per_proton": [2e-3, 2e-3, 0.0, 0.0]},
                        "optics_x": {"sigma_mm": 4.0, "divergence_mrad": 1.0, "correlation": 0.0},
                        "optics_y": {"sigma_mm": 4.0, "divergence_mrad": 1.0, "correlation": 0.0},
                        "protons_per_mu": 1.0e8,
                    }
                ],
            }
        )
    )
    m = isodose.ProtonMachine.load(path)
    assert list(m.energies_mev) == [100.0]
    assert "gantry 1" in repr(m)
    n = 1e4
    beam = isodose.ProtonBeam(0.0, 0.0, (0.0, 60.0, 0.0), [100.0], [0.0], [0.0], [n])
    dose = isodose.proton_dose(water(shape=(31, 40, 31)), isodose.ProtonPlan([beam]), m, backend="cpu").array
    depth_mm = 1.0 + 2.0 * np.arange(40)  # voxel centres; the CT starts at y = 0
    integral = dose.sum(axis=(0, 2)) * 2.0 * 2.0  # Gy mm^2
    before = depth_mm < 49.5
    np.testing.assert_allclose(integral[before], n * 2e-3, rtol=0.006)
    assert integral[before].max() <= n * 2e-3 * (1 + 1e-6)
    assert np.all(dose[:, depth_mm > 51.0, :] == 0.0)


def plan(weights=(1e8, 2e8, 0.0, 5e7), energies=(100.0, 100.0, 110.0, 110.0)):
    beam = isodose.ProtonBeam(
        gantry_deg=0.0,
        couch_deg=0.0,
        isocenter_mm=(0.0, 60.0, 0.0),
        energies_mev=list(energies),
        spot_x_mm=[-5.0, 5.0, 0.0, 0.0],
        spot_y_mm=[0.0, 0.0, -5.0, 5.0],
        weights=list(weights),
    )
    return isodose.ProtonPlan([beam], fractions=30)


def test_beam_keeps_its_arrays():
    p = plan()
    b = p.beams[0]
    np.testing.assert_array_equal(b.weights, [1e8, 2e8, 0.0, 5e7])
    np.testing.assert_array_equal(b.energies_mev, [100.0, 100.0, 110.0, 110.0])
    assert b.isocenter_mm == (0.0, 60.0, 0.0) and p.fractions == 30
    assert b.range_shifter is None


def test_dose_shape_and_dij_times_weights(machine):
    ct = water()
    p = plan()
    dose = isodose.proton_dose(ct, p, machine, backend="cpu")
    a = dose.array
    assert a.dtype == np.float32 and a.shape == (21, 60, 21)
    assert np.all(np.isfinite(a)) and a.min() >= 0 and a.max() > 0
    dij = isodose.proton_dij(ct, p, machine, backend="cpu")
    assert dij.shape == (21 * 60 * 21, 4)
    from_dij = (dij @ p.beams[0].weights).reshape(a.shape)  # C order of (z, y, x)
    np.testing.assert_allclose(from_dij, a, atol=1e-5 * a.max())
    # the options reach the dij as they reach the forward dose
    for kw in ({"include_halo": False}, {"spot_splitting": "5x5"}, {"lateral_cutoff_fraction": 0.02}):
        d = isodose.proton_dose(ct, p, machine, backend="cpu", **kw).array
        m = isodose.proton_dij(ct, p, machine, backend="cpu", **kw)
        np.testing.assert_allclose((m @ p.beams[0].weights).reshape(a.shape), d, atol=1e-5 * d.max())
        if "include_halo" in kw:
            assert m.nnz < dij.nnz


def test_depth_dose_reaches_r80_along_y(machine):
    """A single 100 MeV spot along +y (gantry 0) ranges out at its R80."""
    ct = water(shape=(21, 60, 21), spacing=2.0)
    beam = isodose.ProtonBeam(0.0, 0.0, (0.0, 60.0, 0.0), [100.0], [0.0], [0.0], [1e9])
    a = isodose.proton_dose(ct, isodose.ProtonPlan([beam]), machine).array
    axis = a[10, :, 10]
    y = 1.0 + 2.0 * np.arange(60)
    peak = np.argmax(axis)
    distal = np.where((np.arange(60) > peak) & (axis < 0.8 * axis[peak]))[0][0]
    r80 = np.interp(0.8 * axis[peak], [axis[distal], axis[distal - 1]], [y[distal], y[distal - 1]])
    r80_machine = machine.r80_mm[list(machine.energies_mev).index(100.0)]
    # the surface is at y = 0; central-axis R80 of one spot lies close to the IDD's
    assert abs(r80 - r80_machine) < 1.5


def test_options(machine):
    ct = water()
    p = plan()
    plain = isodose.proton_dose(ct, p, machine).array
    for splitting in ("5x5", "fine"):
        split = isodose.proton_dose(ct, p, machine, spot_splitting=splitting).array
        # in water splitting changes the dose only slightly
        assert np.abs(split - plain).max() < 0.02 * plain.max()
    # without the halo the whole depth dose is in the narrow core: more dose
    # near the spots, none in the wide tails, about the same integral (the
    # halo also spills out of the small phantom); a larger cut-off drops
    # more of the tails
    no_halo = isodose.proton_dose(ct, p, machine, include_halo=False).array
    assert no_halo.max() > plain.max()
    assert np.count_nonzero(no_halo) < 0.9 * np.count_nonzero(plain)
    assert 0.97 * plain.sum() < no_halo.sum() < 1.2 * plain.sum()
    coarse = isodose.proton_dose(ct, p, machine, lateral_cutoff_fraction=0.05).array
    assert coarse.sum() < plain.sum()
    assert np.count_nonzero(coarse) < np.count_nonzero(plain)
    custom = isodose.proton_dose(ct, p, machine, hu_to_rsp=([-1000, 0, 1000], [0.0, 1.1, 2.0])).array
    # RSP 1.1 in water: shorter range, the dose moves upstream
    assert np.argmax(custom[10, :, 10]) < np.argmax(plain[10, :, 10])
    rs = isodose.RangeShifter(20.0, 300.0)
    beam = isodose.ProtonBeam(0.0, 0.0, (0.0, 60.0, 0.0), [110.0], [0.0], [0.0], [1e9], range_shifter=rs)
    shifted = isodose.proton_dose(ct, isodose.ProtonPlan([beam]), machine).array
    assert shifted.max() > 0
    grid = isodose.Grid((5, 10, 5), (4.0, 4.0, 4.0), (-8.0, 3.0, -8.0))
    assert isodose.proton_dose(ct, p, machine, grid=grid).array.shape == (5, 10, 5)


def test_scattering_power_widens_the_spot_behind_bone(machine):
    """Behind a 20 mm bone layer (HU 1000) MCsquare's materials scatter more
    than the layer's water-equivalent thickness of water: a wider spot."""
    ct = water(shape=(21, 60, 41))
    ct_arr = np.zeros((21, 60, 41), dtype=np.float32)
    ct_arr[:, 5:15, :] = 1000.0  # 2 mm voxels: 10 to 30 mm deep
    bone = isodose.CtImage(ct_arr, ct.grid.spacing_mm, ct.grid.origin_mm)
    beam = isodose.ProtonBeam(0.0, 0.0, (0.0, 60.0, 0.0), [150.0], [0.0], [0.0], [1e9])
    p = isodose.ProtonPlan([beam])

    def width(d):
        row = d[10, 50, :].astype(float)
        x = np.arange(41) * 2.0
        c = (row * x).sum() / row.sum()
        return np.sqrt((row * (x - c) ** 2).sum() / row.sum())

    curve = ([-1000.0, 0.0, 1000.0, 3000.0], [0.001, 1.0, 1.5, 2.5])
    plain = isodose.proton_dose(bone, p, machine, hu_to_rsp=curve, include_halo=False).array
    materials = isodose.proton_dose(
        bone, p, machine, hu_to_rsp=curve, include_halo=False, hu_to_scattering="mcsquare_ucl_toshiba"
    ).array
    # sigma^2 grows by the bone's extra scattering (0.28 mm^2 here)
    assert width(materials) ** 2 - width(plain) ** 2 > 0.15
    # the RSP curve given as the scattering curve is the default (S = RSP)
    same = isodose.proton_dose(
        bone, p, machine, hu_to_rsp=curve, include_halo=False, hu_to_scattering=curve
    ).array
    np.testing.assert_array_equal(same, plain)
    with pytest.raises(isodose.InputError, match="hu_to_scattering"):
        isodose.proton_dose(bone, p, machine, hu_to_scattering="granite")
    with pytest.raises(isodose.InputError, match="strictly ascending"):
        isodose.proton_dij(bone, p, machine, hu_to_scattering=([0, 0], [1.0, 1.0]))


def test_errors(machine):
    ct = water()
    with pytest.raises(isodose.InputError, match="70 to 230 MeV"):
        isodose.proton_dose(ct, plan(energies=(250.0, 100.0, 100.0, 100.0)), machine)
    with pytest.raises(isodose.InputError, match="weight"):
        plan(weights=(-1.0, 0.0, 0.0, 0.0))
    with pytest.raises(isodose.InputError, match="equal lengths"):
        isodose.ProtonBeam(0.0, 0.0, (0, 0, 0), [100.0, 100.0], [0.0], [0.0], [1.0])
    with pytest.raises(isodose.InputError, match="spot splitting"):
        isodose.proton_dose(ct, plan(), machine, spot_splitting="4x4")
    with pytest.raises(isodose.InputError, match="spot splitting"):
        isodose.proton_dij(ct, plan(), machine, spot_splitting="3x3")
    with pytest.raises(isodose.InputError, match="cut-off"):
        isodose.proton_dose(ct, plan(), machine, lateral_cutoff_fraction=0.7)
    with pytest.raises(isodose.InputError, match="cut-off"):
        isodose.proton_dij(ct, plan(), machine, lateral_cutoff_fraction=0.0)
    with pytest.raises(isodose.InputError, match="must not decrease"):
        isodose.proton_dose(ct, plan(), machine, hu_to_rsp=([0, 100], [1.0, 0.9]))
    with pytest.raises(isodose.InputError, match=r"\(nz, ny, nx\)"):
        isodose.CtImage(np.zeros((4, 4)), (1, 1, 1), (0, 0, 0))


def test_gpu_dose_matches_cpu_or_says_why(machine):
    """On the GPU backend (lavapipe in CI) the dose equals the CPU reference
    within f32 rounding (1e-4 of its maximum); without any adapter the error
    is GpuError."""
    ct = water()
    cpu = isodose.proton_dose(ct, plan(), machine, backend="cpu").array
    try:
        gpu = isodose.proton_dose(ct, plan(), machine, backend="gpu")
    except isodose.GpuError as e:
        assert "adapter" in str(e)
        return
    assert gpu.backend.startswith("gpu")
    np.testing.assert_allclose(gpu.array, cpu, atol=1e-4 * cpu.max())


def test_gpu_dij_matches_cpu_or_says_why(machine):
    """On the GPU backend the dij has exactly the CPU's entries (same CSC
    structure) and its values within f32 rounding (1e-4 of the largest);
    without any adapter the error is GpuError."""
    ct = water()
    cpu = isodose.proton_dij(ct, plan(), machine, backend="cpu")
    try:
        gpu = isodose.proton_dij(ct, plan(), machine, backend="gpu")
    except isodose.GpuError as e:
        assert "adapter" in str(e)
        return
    assert gpu.shape == cpu.shape
    np.testing.assert_array_equal(gpu.indptr, cpu.indptr)
    np.testing.assert_array_equal(gpu.indices, cpu.indices)
    np.testing.assert_allclose(gpu.data, cpu.data, atol=1e-4 * cpu.data.max())


def test_dij_without_scipy_is_the_csc_parts(machine, monkeypatch):
    """Without SciPy, proton_dij returns (data, indices, indptr, shape): the
    same CSC arrays as the SciPy matrix."""
    require("scipy")
    ct = water()
    with_scipy = isodose.proton_dij(ct, plan(), machine, backend="cpu")
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    data, indices, indptr, shape = isodose.proton_dij(ct, plan(), machine, backend="cpu")
    assert shape == with_scipy.shape == (21 * 60 * 21, 4)
    assert data.dtype == np.float32 and indptr.shape == (5,)
    np.testing.assert_array_equal(indptr, with_scipy.indptr)
    np.testing.assert_array_equal(indices, with_scipy.indices)
    np.testing.assert_array_equal(data, with_scipy.data)


def _mc_idd(energy):
    from conftest import REPO

    path = REPO / "dose-core" / "tests" / "data" / "commissioning" / "mcsquare_dn" / f"idd_{energy}MeV.csv"
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    return table[:, 0], table[:, 1]


def test_commission_from_monte_carlo_beam_data(tmp_path):
    """MCsquare IDDs and core spot sizes of OpenTPS's stock IBA beam model
    (dose-core/tests/data/commissioning/mcsquare_dn): a machine that gives
    back the measured IDD per MU, ranges within 0.25 mm at the energy left
    out, and a file that loads again."""
    from conftest import REPO

    spots = np.loadtxt(
        REPO / "dose-core" / "tests" / "data" / "commissioning" / "mcsquare_dn" / "spot_sizes_core_in_air.csv",
        delimiter=",",
        skiprows=1,
    )
    idds = {float(e): _mc_idd(e) for e in (70, 80, 90)}
    machine, report = isodose.commission(idds, spots, (2234.8, 1859.1), name="DN")
    assert machine.name == "DN"
    assert list(machine.energies_mev) == [70.0, 80.0, 90.0]
    # the measured R80 of the CSV (independently: linear interpolation here)
    depth, idd = idds[80.0]
    k = int(np.argmax(idd))
    level = 0.8 * idd[k]
    j = k + int(np.argmax(idd[k:] < level))
    r80 = depth[j - 1] + (idd[j - 1] - level) / (idd[j - 1] - idd[j]) * (depth[j] - depth[j - 1])
    assert abs(machine.r80_mm[1] - r80) < 0.01
    (loo,) = report["leave_one_out"]
    assert loo["energy_mev"] == 80.0 and abs(loo["r80_difference_mm"]) < 0.25
    assert [e["energy_mev"] for e in report["energies"]] == [70.0, 80.0, 90.0]
    assert all(abs(e["mean_energy_mev"] - e["energy_mev"]) < 1.0 for e in report["energies"])
    path = tmp_path / "machine.json"
    machine.save(path)
    again = isodose.ProtonMachine.load(path)
    assert np.allclose(again.r80_mm, machine.r80_mm)
    # errors name the problem
    with pytest.raises(isodose.IsodoseError, match="two or more energies"):
        isodose.commission({70.0: _mc_idd(70)}, spots, (2000.0, 2000.0))
    d, v = _mc_idd(70)
    with pytest.raises(isodose.IsodoseError, match="fall-off"):
        isodose.commission({70.0: (d[:40], v[:40]), 80.0: _mc_idd(80)}, spots, (2000.0, 2000.0))
