"""TG-43 from Python: published values, an independent NumPy evaluation of
the published formula, broadcasting and errors."""

import csv

import numpy as np
import pytest

import isodose


def read_csv(path):
    with open(path, newline="") as f:
        rows = [line for line in f if not line.startswith("#")]
    return list(csv.reader(rows))


def test_reference_point_is_lambda():
    d = isodose.tg43_dose_rate("Amersham6711", 1.0, 90.0)
    assert d.shape == ()
    assert abs(float(d) - 0.965) < 1e-12


def test_matches_published_formula_evaluated_in_numpy(tg43_data):
    """D(r, θ)/S_K = Λ G_L(r, θ)/G_L(1 cm, 90°) g_L(r) F(r, θ), at tabulated
    nodes, with G_L = (θ2 − θ1)/(L r sin θ) written here from TG-43U1."""
    params = read_csv(tg43_data / "tg43_I125_seed_parameters.csv")
    row = next(r for r in params if r[0] == "Amersham6711")
    lam, length = float(row[2]), float(row[3])
    g_rows = read_csv(tg43_data / "tg43_I125_6711_radial_dose_function.csv")[1:]
    g = {float(r[0]): float(r[1]) for r in g_rows}
    f_rows = read_csv(tg43_data / "tg43_I125_6711_anisotropy_F.csv")
    radii = [float(c[2:-2]) for c in f_rows[0][1:]]
    thetas = np.array([float(r[0]) for r in f_rows[1:] if float(r[0]) > 0])
    F = np.array([[float(x) for x in r[1:]] for r in f_rows[1:] if float(r[0]) > 0])

    def geometry(r, t_deg):
        t = np.radians(t_deg)
        z, rho = r * np.cos(t), r * np.sin(t)
        beta = np.arctan((z + length / 2) / rho) - np.arctan((z - length / 2) / rho)
        return beta / (length * r * np.sin(t))

    for j, r in enumerate(radii):
        expected = lam * geometry(r, thetas) / geometry(1.0, 90.0) * g[r] * F[:, j]
        got = isodose.tg43_dose_rate("Amersham6711", r, thetas)
        np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_one_dimensional_formalisms(tg43_data):
    rows = read_csv(tg43_data / "tg43_I125_6711_phi_an_and_1D_transverse_dose_rate.csv")[1:]
    r = np.array([float(x[0]) for x in rows])
    reference = np.array([float(x[2]) for x in rows])
    for formalism in ["line-1d", "point"]:
        got = isodose.tg43_dose_rate("Amersham6711", r, 90.0, formalism=formalism)
        np.testing.assert_allclose(got, reference, rtol=5e-3)


def test_broadcasting_and_dtypes():
    r = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    t = np.array([30, 60, 90, 120])  # integers are accepted
    out = isodose.tg43_dose_rate("Best2301", r, t)
    assert out.shape == (3, 4) and out.dtype == np.float64
    np.testing.assert_allclose(out[:, 1], out[:, 3], rtol=1e-12)  # θ ↔ 180° − θ


def test_errors_name_the_problem():
    with pytest.raises(isodose.InputError, match="Model9999"):
        isodose.tg43_dose_rate("Model9999", 1.0, 90.0)
    with pytest.raises(ValueError):  # InputError is also a ValueError
        isodose.tg43_dose_rate("Amersham6711", 1.0, 90.0, formalism="sphere")
    with pytest.raises(isodose.InputError, match="phi_an"):
        isodose.tg43_dose_rate("Best2301", 1.0, 90.0, formalism="point")
    with pytest.raises(isodose.InputError, match="theta"):
        isodose.tg43_dose_rate("Amersham6711", 1.0, 200.0)
    with pytest.raises(isodose.InputError):
        isodose.tg43_dose_rate("Amersham6711", [1.0, 2.0], [1.0, 2.0, 3.0])
    assert issubclass(isodose.InputError, isodose.IsodoseError)
    assert issubclass(isodose.GpuError, isodose.IsodoseError)
    assert issubclass(isodose.DicomError, isodose.IsodoseError)
