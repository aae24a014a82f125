"""Type stubs of the native module isodose._isodose."""

from os import PathLike
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

ArrayLike = npt.ArrayLike

class Grid:
    """A regular axis-aligned voxel grid in LPS mm; arrays are (z, y, x)."""

    def __init__(
        self,
        shape: Tuple[int, int, int],
        spacing_mm: Tuple[float, float, float],
        origin_mm: Tuple[float, float, float],
    ) -> None: ...
    @property
    def shape(self) -> Tuple[int, int, int]: ...
    @property
    def spacing_mm(self) -> Tuple[float, float, float]: ...
    @property
    def origin_mm(self) -> Tuple[float, float, float]: ...

class CtImage:
    """A CT in HU; ``hu`` is (z, y, x)."""

    def __init__(
        self,
        hu: ArrayLike,
        spacing_mm: Tuple[float, float, float],
        origin_mm: Tuple[float, float, float],
    ) -> None: ...
    @property
    def hu(self) -> npt.NDArray[np.float32]: ...
    @property
    def grid(self) -> Grid: ...

class Dose:
    """A dose in Gy, float32, (z, y, x), with the backend that computed it."""

    def __init__(self, array: ArrayLike, grid: Grid) -> None: ...
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

class Implant:
    """Seeds of one model; duration_h None means permanent."""

    def __init__(
        self,
        model: str,
        positions_mm: ArrayLike,
        air_kerma_strength_u: ArrayLike,
        directions: Optional[ArrayLike] = None,
        duration_h: Optional[float] = None,
    ) -> None: ...
    @property
    def model(self) -> str: ...
    @property
    def seed_count(self) -> int: ...

def brachy_dose(implant: Implant, grid: Grid, backend: str = "auto") -> Dose: ...

class ProtonMachine:
    @staticmethod
    def generic() -> ProtonMachine: ...
    @staticmethod
    def load(path: Union[str, PathLike[str]]) -> ProtonMachine: ...
    @property
    def name(self) -> str: ...
    @property
    def energies_mev(self) -> npt.NDArray[np.float64]: ...
    @property
    def r80_mm(self) -> npt.NDArray[np.float64]: ...

class RangeShifter:
    def __init__(
        self,
        water_equivalent_thickness_mm: float,
        isocenter_distance_mm: float,
        relative_stopping_power: float = 1.165,
        radiation_length_mm: float = 405.5,
    ) -> None: ...
    @property
    def water_equivalent_thickness_mm(self) -> float: ...
    @property
    def isocenter_distance_mm(self) -> float: ...

class ProtonBeam:
    def __init__(
        self,
        gantry_deg: float,
        couch_deg: float,
        isocenter_mm: Tuple[float, float, float],
        energies_mev: ArrayLike,
        spot_x_mm: ArrayLike,
        spot_y_mm: ArrayLike,
        weights: ArrayLike,
        range_shifter: Optional[RangeShifter] = None,
    ) -> None: ...
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

class ProtonPlan:
    def __init__(self, beams: Sequence[ProtonBeam], fractions: int = 1) -> None: ...
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
    hu_to_rsp: Optional[Tuple[ArrayLike, ArrayLike]] = None,
) -> Dose: ...
def proton_dij_parts(
    ct: CtImage,
    plan: ProtonPlan,
    machine: ProtonMachine,
    grid: Optional[Grid] = None,
    backend: str = "auto",
    hu_to_rsp: Optional[Tuple[ArrayLike, ArrayLike]] = None,
    max_bytes: Optional[int] = None,
) -> Tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.int32],
    npt.NDArray[np.int64],
    Tuple[int, int],
]: ...
def read_dose(path: Union[str, PathLike[str]]) -> Dose: ...
def write_dose(dose: Dose, path: Union[str, PathLike[str]]) -> str: ...
def read_ct(folder: Union[str, PathLike[str]], series_uid: Optional[str] = None) -> CtImage: ...
def read_rtstruct(path: Union[str, PathLike[str]], grid: Grid) -> dict[str, npt.NDArray[np.bool_]]: ...
