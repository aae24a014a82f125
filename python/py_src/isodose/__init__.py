"""isodose: radiotherapy dose engine (TG-43 brachytherapy, proton PBS) in Rust.

Units: mm, MeV, Gy, cGy/h, U (uGy m^2/h) for air-kerma strength. Coordinates:
DICOM patient system (LPS, mm). Arrays are indexed (z, y, x); spacing and
origin are (x, y, z); a grid's origin is the centre of its first voxel.

Array inputs may have any real dtype and memory order: they are converted
once to the C-ordered float arrays the engine reads. Every computation
releases the GIL. Errors are :class:`IsodoseError` subclasses carrying the
engine's full message.

Progress and interrupting: doses, dij and gamma accept ``progress=``: None
(default), True for a tqdm bar (needs tqdm), a tqdm bar of your own (reset
and relabelled for each stage), or a callable ``progress(stage, done,
total)``. Ctrl-C (KeyboardInterrupt) stops any of them
within one batch of work (about 1/64 of a stage); an exception raised by the
callback stops the computation and propagates. A stopped computation returns
nothing, never a partial dose.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from isodose import _isodose
from isodose._progress import TqdmLike
from isodose._isodose import (
    CtImage,
    Dose,
    Dvh,
    GammaResult,
    Grid,
    Implant,
    ProtonBeam,
    ProtonMachine,
    ProtonPlan,
    RangeShifter,
    Structure,
    __version__,
    brachy_dose,
    commission,
    demo_phantom,
    demo_seed_positions,
    paddick_conformity,
    proton_dose,
    read_brachy_plan,
    read_ct,
    read_dose,
    read_ion_plan,
    read_ion_plan_mu,
    read_rtstruct,
    read_structures,
    seed_models,
    write_brachy_plan,
    write_dose,
)
from isodose.errors import (
    DicomError,
    GpuError,
    InputError,
    IsodoseError,
    IsodoseFileNotFoundError,
    IsodoseOSError,
)

#: What a ``progress=`` argument takes: None/False (nothing), True (a new
#: tqdm bar), a tqdm bar of the caller's (reset for each stage, left open) or
#: a callable ``(stage, done, total)``.
ProgressArg = Union[None, bool, TqdmLike, Callable[[str, int, int], object]]

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
    "commission",
    "RangeShifter",
    "ProtonBeam",
    "ProtonPlan",
    "proton_dose",
    "proton_dij",
    "read_ct",
    "read_dose",
    "read_rtstruct",
    "read_structures",
    "write_dose",
    "read_ion_plan",
    "read_ion_plan_mu",
    "read_brachy_plan",
    "write_brachy_plan",
    "gamma",
    "GammaResult",
    "dvh",
    "Dvh",
    "Structure",
    "paddick_conformity",
    "demo_phantom",
    "demo_seed_positions",
    "IsodoseError",
    "InputError",
    "DicomError",
    "GpuError",
    "IsodoseOSError",
    "IsodoseFileNotFoundError",
]


def tg43_dose_rate(
    model: str, r_cm: npt.ArrayLike, theta_deg: npt.ArrayLike, formalism: str = "line"
) -> npt.NDArray[np.float64]:
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
    hu_to_rsp: Optional[Tuple[npt.ArrayLike, npt.ArrayLike]] = None,
    max_bytes: Optional[int] = None,
    progress: ProgressArg = None,
    *,
    spot_splitting: Optional[str] = None,
    include_halo: bool = True,
    lateral_cutoff_fraction: float = 0.005,
    hu_to_scattering: Optional[Union[str, Tuple[npt.ArrayLike, npt.ArrayLike]]] = None,
) -> Any:
    """Dose-influence matrix: voxels x spots, Gy per proton.

    Parameters
    ----------
    ct : CtImage
    plan : ProtonPlan
    machine : ProtonMachine
    grid : Grid, optional
        Dose grid; the CT grid when None.
    backend : {"auto", "cpu", "gpu"}
        "cpu": the f64 reference; "gpu": the WGSL kernels, with exactly the
        CPU's entries (indices and indptr) and f32-evaluated values (GpuError
        without an adapter); "auto": a hardware GPU for large plans, else
        the CPU.
    hu_to_rsp : (hu, rsp) pair of arrays, optional
        A HU -> relative stopping power curve replacing the default.
    max_bytes : int, optional
        Refuse (InputError, before allocating) a matrix larger than this,
        bytes; 8 GiB when None.
    progress : None, bool, tqdm bar or callable
        True: a new tqdm bar; a tqdm bar: reused for each stage; a callable: called as ``progress(stage, done,
        total)`` while it runs (stages "ray tracing", "dij: filling"; and
        "dij: counting entries" before the filling on the GPU, or when the
        estimated matrix does not fit under ``max_bytes``). Ctrl-C stops the
        computation.
    spot_splitting : None, "fine" or "NxN", keyword only
        None: ray casting; "fine": 9x9 sub-pencils per spot (fine sampling,
        each with its own ray: resolves heterogeneity edges inside a spot);
        an odd "NxN" from "5x5" to "15x15". A split spot is still one column.
    include_halo : bool, keyword only
        The machine's nuclear halo (default True: ``dij @ w`` is the forward
        dose). False drops the wide, low halo Gaussian: on the 3,211-spot
        reference field about 6x fewer entries (see BENCHMARKS.md, "dij
        sparsification", for the dose error this costs).
    lateral_cutoff_fraction : float, keyword only
        Fraction of each pencil's laterally integrated dose the lateral
        cut-off may drop, in (0, 0.5); default 0.005.
    hu_to_scattering : None, "mcsquare_ucl_toshiba" or (hu, power), keyword only
        HU -> relative scattering power for multiple Coulomb scattering: None
        scatters each voxel as its water-equivalent thickness of water; the
        built-in curve comes from MCsquare's materials (bone scatters more).

    Returns
    -------
    scipy.sparse.csc_matrix (float32) when SciPy is installed, else the tuple
    ``(data, indices, indptr, shape)``. Rows are voxels in the C order of
    (z, y, x); columns are spots in plan order (beams in order).
    ``dij @ weights`` is the dose of those weights (protons).
    """
    data, indices, indptr, shape = _isodose.proton_dij_parts(
        ct,
        plan,
        machine,
        grid,
        backend,
        hu_to_rsp,
        max_bytes,
        progress,
        spot_splitting=spot_splitting,
        include_halo=include_halo,
        lateral_cutoff_fraction=lateral_cutoff_fraction,
        hu_to_scattering=hu_to_scattering,
    )
    try:
        from scipy.sparse import csc_matrix  # type: ignore[import-untyped]
    except ImportError:
        return data, indices, indptr, shape
    return csc_matrix((data, indices, indptr), shape=shape)


def gamma(
    reference: Dose,
    evaluated: Dose,
    dose_percent: float = 3.0,
    dta_mm: float = 3.0,
    cutoff_percent: float = 10.0,
    local: bool = False,
    backend: str = "auto",
    max_gamma: float = 2.0,
    search_step: float = 0.1,
    normalisation_gy: Optional[float] = None,
    progress: ProgressArg = None,
    search: str = "continuous",
) -> GammaResult:
    """3D gamma index of ``evaluated`` against ``reference`` (Low et al., Med
    Phys 25:656 (1998)), on the reference grid.

    gamma(x) = min over r of sqrt(|r|^2/dta^2 + (D_e(x + r) - D_r(x))^2/dD^2),
    with D_e interpolated trilinearly, so the grids may differ in spacing,
    origin and size. A point passes when gamma <= 1.

    Parameters
    ----------
    reference, evaluated : Dose
        Doses in Gy.
    dose_percent : float
        Dose-difference criterion dD, percent of the normalisation dose
        (global) or of the local reference dose (``local=True``).
    dta_mm : float
        Distance-to-agreement criterion, mm.
    cutoff_percent : float
        Reference points below this percentage of the normalisation dose are
        not evaluated (NaN in ``GammaResult.gamma``).
    local : bool
        Local instead of global dose difference.
    backend : {"auto", "cpu", "gpu"}
        "cpu": the reference implementation (f64). "gpu": the WGSL port of
        the same search (f32), on any Vulkan/Metal/DX12 adapter including
        software ones; :class:`GpuError` when there is none (points a
        driver's loop limit cuts short, as lavapipe's does, are computed on
        the CPU). "auto": the continuous search on the CPU; the lattice
        search on a hardware GPU when one exists and the grid has at least
        1e5 voxels, else the CPU (and the CPU when the GPU fails).
        ``GammaResult.backend`` says which ran.
    max_gamma : float
        Largest gamma searched for; larger values are stored as ``max_gamma``.
    search_step : float
        Search resolution as a fraction of ``dta_mm`` (0.1 = dta/10): the
        step of the search lattice (refined off the lattice around the best
        point), or the smallest box of the continuous search.
    normalisation_gy : float, optional
        Global normalisation dose, Gy; the maximum reference dose when None.
    progress : None, bool, tqdm bar or callable
        True: a new tqdm bar; a tqdm bar: reused for each stage; a callable: called as ``progress("gamma", done,
        total)`` between batches of reference planes.
    search : {"continuous", "lattice"}
        "continuous" (default, CPU and GPU): the minimum over all positions
        of the trilinear interpolant of ``evaluated``, cell by cell (bounds
        prune the cells, a cell is split until the bound is within
        ``search_step`` x dta), never worse than the lattice and several
        times faster. "lattice" (CPU and GPU): the search of pymedphys
        (``interp_fraction`` = 1/``search_step``), for comparison with it.

    Returns
    -------
    GammaResult
        ``pass_rate`` (0-1), ``gamma`` (float32, (z, y, x): NaN where not
        evaluated, inf where no evaluated dose was found), counts, mean and
        maximum, ``histogram(bins)``.

    Ctrl-C stops the computation (KeyboardInterrupt) within one batch of
    planes.
    """
    return _isodose.gamma(
        reference,
        evaluated,
        dose_percent,
        dta_mm,
        cutoff_percent,
        local,
        backend,
        max_gamma,
        search_step,
        normalisation_gy,
        progress,
        search,
    )


def dvh(
    dose: Dose,
    mask_or_roi: Union[Structure, npt.ArrayLike],
    subdivisions: int = 4,
    thickness_mm: Optional[float] = None,
    backend: str = "auto",
) -> Dvh:
    """Dose-volume histogram of one structure.

    Parameters
    ----------
    dose : Dose
        Dose in Gy.
    mask_or_roi : Structure or numpy.ndarray
        A bool array (z, y, x) on the dose grid (each voxel inside counts with
        its whole volume); a float array (z, y, x) of fractional occupancies
        0-1 (each voxel weighted); or a contoured :class:`Structure`, sampled
        below the voxel size with the dose interpolated trilinearly: its
        volume is exact at any grid (the contour polygons' exact areas in
        every voxel column, times the slabs: ``Dvh.volume_cc`` equals
        ``Structure.volume_cc``), the dose distribution exact along x and z
        and resolved to ``subdivisions`` strips per voxel along y. Parts of
        a structure outside the dose grid count as 0 Gy
        (``Dvh.outside_cc``).
    subdivisions : int
        Sub-samples per voxel along y and z for a Structure (1-16), where
        the dose varies by more than 0.5 % of its maximum across a voxel
        (elsewhere a voxel's part is one sample). 1 is several times
        faster; the volume is exact either way.
    thickness_mm : float, optional
        Slab of a Structure contoured on a single plane, mm; by default the
        structure's own ``thickness_mm``, else the dose grid's z spacing.
        Multi-plane structures take their slabs from the plane spacing.
    backend : {"auto", "cpu", "gpu"}
        Where the samples are binned: "cpu" (f64), "gpu" (the WGSL kernel,
        doses in f32: the cumulative DVH within about 1e-5 of the volume;
        GpuError without an adapter) or "auto" (the GPU only for millions of
        samples on a hardware GPU). Volume, min, mean and max are computed
        in f64 on the CPU either way; ``Dvh.backend`` says which ran.

    Returns
    -------
    Dvh
        Volume (cm3), min / mean / max (Gy), ``d(percent)``, ``d_cc(cc)``,
        ``v(dose_gy)`` (fraction), ``v_cc(dose_gy)``, ``curve(n)`` and
        ``differential()``.
    """
    return _isodose.dvh(dose, mask_or_roi, subdivisions, thickness_mm, backend)
