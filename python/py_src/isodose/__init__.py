"""isodose: radiotherapy dose engine (TG-43 brachytherapy, proton PBS) in Rust.

Units: mm, MeV, Gy, cGy/h, U (uGy m^2/h) for air-kerma strength. Coordinates:
DICOM patient system (LPS, mm). Arrays are indexed (z, y, x); spacing and
origin are (x, y, z); a grid's origin is the centre of its first voxel.

Array inputs may have any real dtype and memory order: they are converted
once to the C-ordered float arrays the engine reads. Every computation
releases the GIL. Errors are :class:`IsodoseError` subclasses carrying the
engine's full message.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from isodose import _isodose
from isodose._isodose import (
    CtImage,
    Dose,
    Grid,
    Implant,
    ProtonBeam,
    ProtonMachine,
    ProtonPlan,
    RangeShifter,
    __version__,
    brachy_dose,
    proton_dose,
    read_ct,
    read_dose,
    read_rtstruct,
    seed_models,
    write_dose,
)
from isodose.errors import DicomError, GpuError, InputError, IsodoseError

__all__ = [
    "__version__",
    "Grid",
    "CtImage",
    "Dose",
    "seed_models",
    "tg43_dose_rate",
    "Implant",
    "brachy_dose",
    "ProtonMachine",
    "RangeShifter",
    "ProtonBeam",
    "ProtonPlan",
    "proton_dose",
    "proton_dij",
    "read_ct",
    "read_dose",
    "read_rtstruct",
    "write_dose",
    "IsodoseError",
    "InputError",
    "DicomError",
    "GpuError",
]


def tg43_dose_rate(model: str, r_cm, theta_deg, formalism: str = "line") -> np.ndarray:
    """TG-43 dose rate per unit air-kerma strength, cGy/h/U.

    Parameters
    ----------
    model : str
        Seed model key (see :func:`seed_models`).
    r_cm : array_like
        Distance from the seed centre, cm; broadcast with ``theta_deg``.
    theta_deg : array_like
        Polar angle from the seed axis, degrees (0-180).
    formalism : {"line", "point", "line-1d"}
        2D line source (TG-43U1 Eq. 1), 1D point source (1/r^2, g_P, phi_an)
        or 1D with the line geometry function (Eq. 11).

    Returns
    -------
    numpy.ndarray of float64, the broadcast shape.
    """
    try:
        r, t = np.broadcast_arrays(np.asarray(r_cm, dtype=np.float64), np.asarray(theta_deg, dtype=np.float64))
    except ValueError as e:
        raise InputError(f"r_cm and theta_deg do not broadcast: {e}") from None
    out = _isodose.tg43_dose_rate(model, np.ascontiguousarray(r).ravel(), np.ascontiguousarray(t).ravel(), formalism)
    return out.reshape(r.shape)


def proton_dij(
    ct: CtImage,
    plan: ProtonPlan,
    machine: ProtonMachine,
    grid: Optional[Grid] = None,
    backend: str = "auto",
    hu_to_rsp=None,
):
    """Dose-influence matrix: voxels x spots, Gy per proton.

    Parameters
    ----------
    ct : CtImage
    plan : ProtonPlan
    machine : ProtonMachine
    grid : Grid, optional
        Dose grid; the CT grid when None.
    backend : {"auto", "cpu", "gpu"}
    hu_to_rsp : (hu, rsp) pair of arrays, optional
        A HU -> relative stopping power curve replacing the default.

    Returns
    -------
    scipy.sparse.csc_matrix (float32) when SciPy is installed, else the tuple
    ``(data, indices, indptr, shape)``. Rows are voxels in the C order of
    (z, y, x); columns are spots in plan order (beams in order).
    ``dij @ weights`` is the dose of those weights (protons).
    """
    data, indices, indptr, shape = _isodose.proton_dij_parts(ct, plan, machine, grid, backend, hu_to_rsp, None)
    try:
        from scipy.sparse import csc_matrix
    except ImportError:
        return data, indices, indptr, shape
    return csc_matrix((data, indices, indptr), shape=shape)
