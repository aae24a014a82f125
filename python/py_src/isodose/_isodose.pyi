"""Type stubs of the native module isodose._isodose."""

from os import PathLike
from typing import Any, Callable, Optional, Sequence, Tuple, Union, final


import numpy as np
import numpy.typing as npt

from isodose._progress import TqdmLike

__version__: str
__all__ = [
    "CtImage",
    "Dose",
    "Grid",
    "Implant",
    "ProtonBeam",
    "ProtonMachine",
    "ProtonPlan",
    "RangeShifter",
    "brachy_dose",
    "commission",
    "proton_dij_parts",
    "proton_dose",
    "read_ct",
    "read_dose",
    "read_rtstruct",
    "seed_models",
    "tg43_dose_rate",
    "write_dose",
    "demo_phantom",
    "demo_seed_positions",
    "_raise_internal_panic",
    "read_brachy_plan",
    "read_ion_plan",
    "read_ion_plan_mu",
    "write_brachy_plan",
    "Dvh",
    "GammaResult",
    "Structure",
    "dvh",
    "gamma",
    "paddick_conformity",
    "read_structures",
    "__version__",
]

_ArrayLike = npt.ArrayLike
_Progress = Union[None, bool, TqdmLike, Callable[[str, int, int], object]]

@final
class Grid:
    """A regular axis-aligned voxel grid in LPS mm; arrays are (z, y, x)."""

    def __new__(
        cls,
        shape: Tuple[int, int, int],
        spacing_mm: Tuple[float, float, float],
        origin_mm: Tuple[float, float, float],
    ) -> Grid: ...
    @property
    def shape(self) -> Tuple[int, int, int]: ...
    @property
    def spacing_mm(self) -> Tuple[float, float, float]: ...
    @property
    def origin_mm(self) -> Tuple[float, float, float]: ...

@final
class CtImage:
    """A CT in HU; ``hu`` is (z, y, x)."""

    def __new__(
        cls,
        hu: _ArrayLike,
        spacing_mm: Tuple[float, float, float],
        origin_mm: Tuple[float, float, float],
    ) -> CtImage: ...
    @property
    def hu(self) -> npt.NDArray[np.float32]: ...
    @property
    def grid(self) -> Grid: ...
    @property
    def study_instance_uid(self) -> Optional[str]: ...
    @property
    def frame_of_reference_uid(self) -> Optional[str]: ...

@final
class Dose:
    """A dose in Gy, float32, (z, y, x), with the backend that computed it."""

    def __new__(cls, array: _ArrayLike, grid: Grid) -> Dose: ...
    @property
    def array(self) -> npt.NDArray[np.float32]: ...
    @property
    def grid(self) -> Grid: ...
    @property
    def backend(self) -> str: ...

def seed_models() -> list[str]: ...
def tg43_dose_rate(
    model: str,
    r_cm: npt.NDArray[np.float64],
    theta_deg: npt.NDArray[np.float64],
    formalism: str = "line",
) -> npt.NDArray[np.float64]: ...

@final
class Implant:
    """Seeds of one model; duration_h None means permanent."""

    def __new__(
        cls,
        model: str,
        positions_mm: _ArrayLike,
        air_kerma_strength_u: _ArrayLike,
        directions: Optional[_ArrayLike] = None,
        duration_h: Optional[float] = None,
    ) -> Implant: ...
    @property
    def model(self) -> str: ...
    @property
    def seed_count(self) -> int: ...
    @property
    def positions_mm(self) -> npt.NDArray[np.float64]:
        """Seed centres (x, y, z), mm, (n, 3)."""
    @property
    def directions(self) -> npt.NDArray[np.float64]:
        """Seed axes, unit vectors, (n, 3)."""
    @property
    def air_kerma_strength_u(self) -> npt.NDArray[np.float64]:
        """S_K of each seed at the reference time, U, (n,)."""
    @property
    def duration_h(self) -> Optional[float]:
        """Irradiation time of a temporary implant, h; None when permanent."""
    @property
    def days_from_reference(self) -> float:
        """Days from the S_K reference time to the start of irradiation."""

def brachy_dose(
    implant: Implant,
    grid: Grid,
    backend: str = "auto",
    progress: _Progress = None,
) -> Dose:
    """Total TG-43 dose (Gy). progress: None, True (a new tqdm bar), a tqdm
    bar of yours or a callable (stage, done, total); Ctrl-C stops the
    computation."""

@final
class ProtonMachine:
    @staticmethod
    def generic() -> ProtonMachine: ...
    @staticmethod
    def load(path: Union[str, PathLike[str]]) -> ProtonMachine: ...
    @staticmethod
    def load_bdl(path: Union[str, PathLike[str]]) -> ProtonMachine: ...
    def save(self, path: Union[str, PathLike[str]]) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def energies_mev(self) -> npt.NDArray[np.float64]: ...
    @property
    def r80_mm(self) -> npt.NDArray[np.float64]: ...

@final
class RangeShifter:
    def __new__(
        cls,
        water_equivalent_thickness_mm: float,
        isocenter_distance_mm: float,
        relative_stopping_power: float = 1.165,
        radiation_length_mm: float = 405.5,
    ) -> RangeShifter: ...
    @property
    def water_equivalent_thickness_mm(self) -> float: ...
    @property
    def isocenter_distance_mm(self) -> float: ...

@final
class ProtonBeam:
    def __new__(
        cls,
        gantry_deg: float,
        couch_deg: float,
        isocenter_mm: Tuple[float, float, float],
        energies_mev: _ArrayLike,
        spot_x_mm: _ArrayLike,
        spot_y_mm: _ArrayLike,
        weights: _ArrayLike,
        range_shifter: Optional[RangeShifter] = None,
    ) -> ProtonBeam: ...
    @property
    def gantry_deg(self) -> float: ...
    @property
    def couch_deg(self) -> float: ...
    @property
    def isocenter_mm(self) -> Tuple[float, float, float]: ...
    @property
    def energies_mev(self) -> npt.NDArray[np.float64]: ...
    @property
    def spot_x_mm(self) -> npt.NDArray[np.float64]: ...
    @property
    def spot_y_mm(self) -> npt.NDArray[np.float64]: ...
    @property
    def weights(self) -> npt.NDArray[np.float64]: ...
    @property
    def range_shifter(self) -> Optional[RangeShifter]: ...

@final
class ProtonPlan:
    def __new__(cls, beams: Sequence[ProtonBeam], fractions: int = 1) -> ProtonPlan: ...
    @property
    def beams(self) -> list[ProtonBeam]: ...
    @property
    def fractions(self) -> int: ...

def proton_dose(
    ct: CtImage,
    plan: ProtonPlan,
    machine: ProtonMachine,
    grid: Optional[Grid] = None,
    backend: str = "auto",
    spot_splitting: Optional[str] = None,
    hu_to_rsp: Optional[Tuple[_ArrayLike, _ArrayLike]] = None,
    progress: _Progress = None,
    *,
    include_halo: bool = True,
    lateral_cutoff_fraction: float = 0.005,
    hu_to_scattering: Optional[Union[str, Tuple[_ArrayLike, _ArrayLike]]] = None,
) -> Dose: ...
def proton_dij_parts(
    ct: CtImage,
    plan: ProtonPlan,
    machine: ProtonMachine,
    grid: Optional[Grid] = None,
    backend: str = "auto",
    hu_to_rsp: Optional[Tuple[_ArrayLike, _ArrayLike]] = None,
    max_bytes: Optional[int] = None,
    progress: _Progress = None,
    *,
    spot_splitting: Optional[str] = None,
    include_halo: bool = True,
    lateral_cutoff_fraction: float = 0.005,
    hu_to_scattering: Optional[Union[str, Tuple[_ArrayLike, _ArrayLike]]] = None,
) -> Tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.int32],
    npt.NDArray[np.int64],
    Tuple[int, int],
]: ...
def read_dose(path: Union[str, PathLike[str]]) -> Dose: ...
def write_dose(
    dose: Dose,
    path: Union[str, PathLike[str]],
    ct: Optional[CtImage] = None,
    plan: Optional[Union[str, PathLike[str]]] = None,
) -> str:
    """RTDOSE (Gy); ct: joins its study/frame/patient; plan: path of the RT
    plan it references. Returns the SOP instance UID."""
def read_ct(folder: Union[str, PathLike[str]], series_uid: Optional[str] = None) -> CtImage: ...
def read_rtstruct(
    path: Union[str, PathLike[str]], grid: Grid, supersampling: Optional[int] = None
) -> dict[str, npt.NDArray[Any]]:
    """ROI name -> bool mask (z, y, x); with supersampling=n (1-16), float32
    fractional occupancies from n^3 samples per voxel."""

# --- QA: gamma index, DVHs, structures -------------------------------------

@final
class GammaResult:
    """Gamma volume on the reference grid and its statistics."""

    @property
    def pass_rate(self) -> float:
        """Fraction (0-1) of evaluated points with gamma <= 1."""
    @property
    def gamma(self) -> npt.NDArray[np.float32]:
        """(z, y, x); NaN not evaluated, inf no evaluated dose, capped at max_gamma."""
    @property
    def grid(self) -> Grid: ...
    @property
    def evaluated_count(self) -> int: ...
    @property
    def passed_count(self) -> int: ...
    @property
    def mean_gamma(self) -> float: ...
    @property
    def max_gamma(self) -> float: ...
    @property
    def normalisation_gy(self) -> float:
        """Normalisation dose of the dose criterion, Gy."""
    @property
    def dose_percent(self) -> float: ...
    @property
    def dta_mm(self) -> float: ...
    @property
    def local(self) -> bool: ...
    @property
    def backend(self) -> str: ...
    def histogram(self, bins: int = 20) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(counts, edges) over [0, max_gamma]; capped and inf values in the last bin."""

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
    progress: _Progress = None,
    search: str = "continuous",
) -> GammaResult:
    """backend: "cpu" (f64 reference), "gpu" (WGSL port, f32; GpuError without
    an adapter) or "auto" (a hardware GPU when present and the grid has at
    least 1e5 voxels, else the CPU)."""

@final
class Structure:
    """Closed planar contours on axial planes (LPS mm); each plane a slab
    half-way to its neighbours, a single plane a slab of thickness_mm."""

    def __new__(
        cls,
        name: str,
        contours: Sequence[_ArrayLike],
        thickness_mm: Optional[float] = None,
    ) -> Structure: ...
    @property
    def name(self) -> str: ...
    @property
    def number(self) -> Optional[int]:
        """ROINumber when read from an RTSTRUCT."""
    @property
    def color(self) -> Optional[Tuple[int, int, int]]: ...
    @property
    def type(self) -> Optional[str]:
        """RTROIInterpretedType (PTV, ORGAN...)."""
    @property
    def thickness_mm(self) -> Optional[float]: ...
    @property
    def z_planes_mm(self) -> npt.NDArray[np.float64]: ...
    @property
    def contours(self) -> list[npt.NDArray[np.float64]]:
        """(n, 3) arrays of (x, y, z) mm."""
    @property
    def volume_cc(self) -> float:
        """Volume of the contour model, cm3."""

def read_structures(
    path: Union[str, PathLike[str]], thickness_mm: Optional[float] = None
) -> dict[str, Structure]: ...

@final
class Dvh:
    """Dose-volume histogram of one structure: doses in Gy, volumes in cm3."""

    @property
    def name(self) -> Optional[str]: ...
    @property
    def backend(self) -> str:
        """The backend that binned the samples."""
    @property
    def volume_cc(self) -> float: ...
    @property
    def min(self) -> float: ...
    @property
    def max(self) -> float: ...
    @property
    def mean(self) -> float: ...
    @property
    def max_0_03cc(self) -> float:
        """D_0.03cc, Gy."""
    @property
    def outside_cc(self) -> float:
        """Volume outside the dose grid (counted as 0 Gy), cm3."""
    @property
    def homogeneity_index(self) -> float:
        """(D2 - D98) / D50 (ICRU 83)."""
    @property
    def bin_width_gy(self) -> float: ...
    def d(self, percent: float) -> float:
        """D_x%, Gy: minimum dose to the hottest percent % (d(95) = D95)."""
    def d_cc(self, volume_cc: float) -> float:
        """Minimum dose to the hottest volume_cc cm3, Gy."""
    def v(self, dose_gy: float) -> float:
        """Fraction (0-1) receiving at least dose_gy."""
    def v_cc(self, dose_gy: float) -> float:
        """Volume (cm3) receiving at least dose_gy."""
    def curve(self, n: int = 200) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Cumulative DVH: (doses Gy from 0 to max, volumes cm3)."""
    def differential(self) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(bin edges Gy, volume cm3 per bin)."""

def dvh(
    dose: Dose,
    mask_or_roi: Union[Structure, _ArrayLike],
    subdivisions: int = 4,
    thickness_mm: Optional[float] = None,
    backend: str = "auto",
) -> Dvh: ...
def paddick_conformity(target_dvh: Dvh, dose: Dose, prescription_gy: float) -> float:
    """TV_PIV^2 / (TV x PIV), PIV from the whole dose grid (whole voxels)."""

# --- Plans ---------------------------------------------------------------------

def read_ion_plan(
    path: Union[str, PathLike[str]], machine: Optional[ProtonMachine] = None
) -> ProtonPlan:
    """Spot weights in protons per fraction (MU x protons/MU of the machine)."""

def read_ion_plan_mu(path: Union[str, PathLike[str]]) -> list[dict[str, Any]]:
    """Per beam: number, name, machine, radiation_type, gantry_deg, couch_deg,
    isocenter_mm, meterset_mu, fractions, layers, spots, energies_mev."""

def read_brachy_plan(path: Union[str, PathLike[str]], model: Optional[str] = None) -> Implant: ...
def write_brachy_plan(
    implant: Implant,
    path: Union[str, PathLike[str]],
    patient_id: str = "",
    patient_name: str = "",
    label: str = "",
) -> str:
    """Writes an RT Plan (brachy); returns its SOP instance UID."""

# --- Demo phantom --------------------------------------------------------------

def demo_phantom() -> Tuple[CtImage, dict[str, npt.NDArray[np.bool_]]]:
    """The phantom of ``isodose demo``: CT (HU, 1 mm) and ROI masks (z, y, x)."""

def demo_seed_positions() -> npt.NDArray[np.float64]:
    """Seed centres (x, y, z) of the demo implant, mm, (n, 3)."""

def _raise_internal_panic(worker: bool = False) -> None: ...

def commission(
    idds: dict[float, tuple[npt.ArrayLike, npt.ArrayLike]],
    spot_sizes: npt.ArrayLike,
    sad_mm: tuple[float, float],
    name: str = "commissioned",
) -> tuple[ProtonMachine, dict[str, Any]]: ...
