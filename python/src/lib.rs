//! Python bindings of isodose: the private native module `isodose._isodose`.
//!
//! The public module is the small Python package in `py_src/isodose`, which
//! normalises inputs (any real dtype, any memory order, broadcasting) with
//! NumPy once and re-exports what is defined here. The bindings are thin: no
//! physics lives in this crate; every computation releases the GIL.

mod arrays;
mod demo;
mod errors;
mod plans;
mod progress;
mod qa;

use std::sync::Arc;

use isodose_core::physics::hlut::Hlut;
use isodose_core::physics::scattering::ScatteringCurve;
use isodose_core::proton::{
    DoseOptions, ProtonBeam, ProtonMachine, ProtonPlan, RangeShifter, Spot, SpotSplitting,
};
use isodose_core::tg43::{Formalism, Implant, Seed, SeedCatalogue, Technique, dose_rate_per_u};
use isodose_core::{
    BackendChoice, CtVolume, DEFAULT_DIJ_LIMIT_BYTES, DoseGrid, Engine, Grid3, Volume,
};
use numpy::{PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;

use errors::IntoPy;

/// A regular axis-aligned voxel grid in DICOM patient coordinates (LPS, mm).
///
/// Grid(shape, spacing_mm, origin_mm)
///
/// shape: (nz, ny, nx) voxels; arrays on the grid are indexed [z, y, x].
/// spacing_mm: (sx, sy, sz) voxel size along x, y, z, mm (> 0).
/// origin_mm: (x0, y0, z0) centre of voxel [0, 0, 0], mm (LPS).
#[pyclass(name = "Grid", module = "isodose", frozen)]
#[derive(Clone, Debug)]
pub struct PyGrid(pub Grid3);

#[pymethods]
impl PyGrid {
    #[new]
    #[pyo3(signature = (shape, spacing_mm, origin_mm))]
    fn new(
        py: Python<'_>,
        shape: (usize, usize, usize),
        spacing_mm: (f64, f64, f64),
        origin_mm: (f64, f64, f64),
    ) -> PyResult<Self> {
        Grid3::new(
            [shape.0, shape.1, shape.2],
            [spacing_mm.0, spacing_mm.1, spacing_mm.2],
            [origin_mm.0, origin_mm.1, origin_mm.2],
        )
        .py_err(py)
        .map(Self)
    }
    /// (nz, ny, nx)
    #[getter]
    fn shape(&self) -> (usize, usize, usize) {
        let [z, y, x] = self.0.shape();
        (z, y, x)
    }
    /// (sx, sy, sz) in mm
    #[getter]
    fn spacing_mm(&self) -> (f64, f64, f64) {
        let s = self.0.spacing_mm();
        (s.x, s.y, s.z)
    }
    /// Centre of voxel (0, 0, 0), (x, y, z) in mm
    #[getter]
    fn origin_mm(&self) -> (f64, f64, f64) {
        let o = self.0.origin_mm();
        (o.x, o.y, o.z)
    }
    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0
    }
    fn __repr__(&self) -> String {
        format!(
            "Grid(shape={:?}, spacing_mm={:?}, origin_mm={:?})",
            self.shape(),
            self.spacing_mm(),
            self.origin_mm()
        )
    }
}

/// A CT image in Hounsfield units on a grid.
///
/// CtImage(hu, spacing_mm, origin_mm)
///
/// hu: array (nz, ny, nx) of HU, any real dtype and memory order (stored as
///     float32, C order).
/// spacing_mm: (sx, sy, sz) voxel size, mm.
/// origin_mm: (x0, y0, z0) centre of the first voxel, mm (LPS).
///
/// `read_ct` returns one with its DICOM study and frame of reference UIDs;
/// `demo_phantom` returns the demo's.
#[pyclass(name = "CtImage", module = "isodose", frozen)]
#[derive(Debug)]
pub struct PyCtImage {
    ct: Arc<CtVolume>,
    /// Study, frame of reference and patient of a CT read from DICOM.
    ids: Option<isodose_dicom::StudyIdentifiers>,
}

#[pymethods]
impl PyCtImage {
    #[new]
    #[pyo3(signature = (hu, spacing_mm, origin_mm))]
    fn new(
        py: Python<'_>,
        hu: &Bound<'_, PyAny>,
        spacing_mm: (f64, f64, f64),
        origin_mm: (f64, f64, f64),
    ) -> PyResult<Self> {
        let data = arrays::f32_3d(py, hu, "hu", "(nz, ny, nx)")?;
        if let Some(((k, j, i), v)) = data.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(errors::input_error(
                py,
                format!("hu must be finite; voxel [z, y, x] = [{k}, {j}, {i}] is {v}"),
            ));
        }
        let (nz, ny, nx) = data.dim();
        let grid = Grid3::new(
            [nz, ny, nx],
            [spacing_mm.0, spacing_mm.1, spacing_mm.2],
            [origin_mm.0, origin_mm.1, origin_mm.2],
        )
        .py_err(py)?;
        let ct = Volume::new(grid, data).py_err(py)?;
        Ok(Self {
            ct: Arc::new(ct),
            ids: None,
        })
    }
    /// StudyInstanceUID of a CT read by `read_ct` (None for arrays).
    #[getter]
    fn study_instance_uid(&self) -> Option<String> {
        self.ids.as_ref().and_then(|i| i.study_instance_uid.clone())
    }
    /// FrameOfReferenceUID of a CT read by `read_ct` (None for arrays).
    #[getter]
    fn frame_of_reference_uid(&self) -> Option<String> {
        self.ids
            .as_ref()
            .and_then(|i| i.frame_of_reference_uid.clone())
    }
    /// HU, float32, (z, y, x) (a copy)
    #[getter]
    fn hu<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray3<f32>> {
        PyArray3::from_array(py, self.ct.data())
    }
    /// The CT's Grid (shape, spacing and origin in mm).
    #[getter]
    fn grid(&self) -> PyGrid {
        PyGrid(self.ct.grid().clone())
    }
    fn __repr__(&self) -> String {
        format!(
            "CtImage(grid={})",
            PyGrid(self.ct.grid().clone()).__repr__()
        )
    }
}

/// A dose distribution (Gy), float32, indexed (z, y, x).
///
/// Dose(array, grid)
///
/// array: dose in Gy, shape grid.shape = (nz, ny, nx), any real dtype and
///     memory order (stored once as float32, C order).
/// grid: the Grid of the array (mm, LPS).
///
/// Engines return Doses with `backend` naming what computed them.
#[pyclass(name = "Dose", module = "isodose", frozen)]
#[derive(Debug)]
pub struct PyDose {
    array: Py<PyArray3<f32>>,
    grid: Grid3,
    backend: String,
}

impl PyDose {
    /// The array borrowed for reading in place (see [`Self::view`]).
    fn readonly<'py>(&self, py: Python<'py>) -> PyResult<numpy::PyReadonlyArray3<'py, f32>> {
        self.array
            .bind(py)
            .try_readonly()
            .map_err(|e| errors::input_error(py, format!("the dose array cannot be read: {e}")))
    }

    /// The dose read in place through `array` (from [`Self::readonly`]): no
    /// copy, as NumPy's own functions read their arrays with the GIL
    /// released (a thread that writes to the array meanwhile races, as it
    /// would with NumPy).
    fn view<'a>(
        &'a self,
        py: Python<'_>,
        array: &'a numpy::PyReadonlyArray3<'_, f32>,
    ) -> PyResult<isodose_core::DoseView<'a>> {
        isodose_core::DoseView::new(&self.grid, array.as_array()).py_err(py)
    }

    /// A copy of the dose as the core's `DoseGrid` (the array may have been
    /// modified in place since).
    fn to_rust(&self, py: Python<'_>) -> PyResult<DoseGrid> {
        let data = self
            .array
            .bind(py)
            .try_readonly()
            .map_err(|e| errors::input_error(py, format!("the dose array cannot be read: {e}")))?
            .as_array()
            .to_owned();
        Volume::new(self.grid.clone(), data).py_err(py)
    }

    fn from_rust(py: Python<'_>, dose: DoseGrid, backend: String) -> Self {
        let (grid, data) = dose.into_parts();
        Self {
            array: PyArray3::from_owned_array(py, data).unbind(),
            grid,
            backend,
        }
    }
}

#[pymethods]
impl PyDose {
    #[new]
    #[pyo3(signature = (array, grid))]
    fn new(py: Python<'_>, array: &Bound<'_, PyAny>, grid: &PyGrid) -> PyResult<Self> {
        let data = arrays::f32_3d(py, array, "array", "(nz, ny, nx)")?;
        let [nz, ny, nx] = grid.0.shape();
        if data.dim() != (nz, ny, nx) {
            return Err(errors::input_error(
                py,
                format!(
                    "array must have the grid's shape (nz, ny, nx) = ({nz}, {ny}, {nx}), got {:?}",
                    data.dim()
                ),
            ));
        }
        let dose = Volume::new(grid.0.clone(), data).py_err(py)?;
        Ok(Self::from_rust(py, dose, "user".into()))
    }
    /// The dose, Gy, float32 (nz, ny, nx), C order: the Dose's own array
    /// (not a copy).
    #[getter]
    fn array<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray3<f32>> {
        self.array.bind(py).clone()
    }
    /// The dose Grid (mm, LPS).
    #[getter]
    fn grid(&self) -> PyGrid {
        PyGrid(self.grid.clone())
    }
    /// Which backend (and adapter) computed it.
    #[getter]
    fn backend(&self) -> String {
        self.backend.clone()
    }
    fn __repr__(&self) -> String {
        format!(
            "Dose(grid={}, backend={:?})",
            PyGrid(self.grid.clone()).__repr__(),
            self.backend
        )
    }
}

/// Keys of the TG-43 seed models shipped with isodose.
#[pyfunction]
fn seed_models() -> Vec<String> {
    SeedCatalogue::builtin().keys().map(str::to_owned).collect()
}

fn seed_model(py: Python<'_>, key: &str) -> PyResult<isodose_core::tg43::SeedModel> {
    SeedCatalogue::builtin().get(key).cloned().py_err(py)
}

/// Dose rate per unit air-kerma strength (cGy/h/U) at distances `r_cm` and
/// polar angles `theta_deg` (1-D arrays of equal length).
#[pyfunction]
#[pyo3(signature = (model, r_cm, theta_deg, formalism = "line"))]
fn tg43_dose_rate<'py>(
    py: Python<'py>,
    model: &str,
    r_cm: PyReadonlyArray1<'py, f64>,
    theta_deg: PyReadonlyArray1<'py, f64>,
    formalism: &str,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let m = seed_model(py, model)?;
    let f = Formalism::parse(formalism).py_err(py)?;
    let r: Vec<f64> = r_cm.as_array().iter().copied().collect();
    let t: Vec<f64> = theta_deg.as_array().iter().copied().collect();
    if r.len() != t.len() {
        return Err(errors::to_py(
            py,
            isodose_core::DoseError::OutOfRange {
                field: "number of angles".into(),
                value: t.len() as f64,
                reason: format!("{} distances were given", r.len()),
            },
        ));
    }
    let out = errors::detach(py, || {
        r.iter()
            .zip(&t)
            .map(|(r, t)| dose_rate_per_u(&m, f, r * 10.0, *t))
            .collect::<Result<Vec<f64>, _>>()
    })?
    .py_err(py)?;
    Ok(PyArray1::from_vec(py, out))
}

/// Seeds of one TG-43 model with their timing.
///
/// Implant(model, positions_mm, air_kerma_strength_u, directions=None,
///         duration_h=None)
///
/// model: seed model key (see `seed_models()`).
/// positions_mm: seed centres (x, y, z), mm (LPS), array (n, 3).
/// air_kerma_strength_u: S_K of each seed, U (µGy·m²/h), a number or (n,).
/// directions: seed axes (x, y, z), (n, 3), normalised here; None: along z.
/// duration_h: irradiation time of a temporary implant, h; None for a
///     permanent implant (dose to infinite time, T½/ln 2).
#[pyclass(name = "Implant", module = "isodose", frozen)]
#[derive(Debug)]
pub struct PyImplant(Implant);

#[pymethods]
impl PyImplant {
    #[new]
    #[pyo3(signature = (model, positions_mm, air_kerma_strength_u, directions = None, duration_h = None))]
    fn new(
        py: Python<'_>,
        model: &str,
        positions_mm: &Bound<'_, PyAny>,
        air_kerma_strength_u: &Bound<'_, PyAny>,
        directions: Option<&Bound<'_, PyAny>>,
        duration_h: Option<f64>,
    ) -> PyResult<Self> {
        let m = seed_model(py, model)?;
        let p = arrays::f64_2d(py, positions_mm, "positions_mm", "(n, 3)")?;
        let n = p.nrows();
        let np = py.import("numpy")?;
        let sk_b = np
            .call_method1(
                "broadcast_to",
                (
                    np.call_method1("asarray", (air_kerma_strength_u, "float64"))?,
                    (n,),
                ),
            )
            .map_err(|_| {
                errors::input_error(
                    py,
                    format!("air_kerma_strength_u must be a number or have shape ({n},)"),
                )
            })?;
        let sk = arrays::f64_1d(py, &sk_b, "air_kerma_strength_u", "(n,)")?;
        let d = directions
            .map(|d| arrays::f64_2d(py, d, "directions", "(n, 3)"))
            .transpose()?;
        let d = d.as_ref();
        if p.ncols() != 3 || sk.len() != p.nrows() || d.is_some_and(|d| d.dim() != p.dim()) {
            return Err(errors::to_py(
                py,
                isodose_core::DoseError::OutOfRange {
                    field: "implant arrays".into(),
                    value: p.nrows() as f64,
                    reason: format!(
                        "positions_mm must be (n, 3), air_kerma_strength_u (n,) and directions (n, 3); got {:?}, {:?}, {:?}",
                        p.dim(),
                        sk.len(),
                        d.map(|d| d.dim())
                    ),
                },
            ));
        }
        let seeds = (0..p.nrows())
            .map(|i| {
                let dir = d.map(|d| [d[[i, 0]], d[[i, 1]], d[[i, 2]]]);
                Seed::new([p[[i, 0]], p[[i, 1]], p[[i, 2]]], dir, sk[i])
            })
            .collect::<Result<Vec<_>, _>>()
            .py_err(py)?;
        let technique = match duration_h {
            None => Technique::Permanent,
            Some(h) => Technique::Temporary { duration_h: h },
        };
        Implant::new(m, seeds, technique, 0.0).py_err(py).map(Self)
    }
    /// Seed model key.
    #[getter]
    fn model(&self) -> String {
        self.0.model().key().to_owned()
    }
    /// Number of seeds.
    #[getter]
    fn seed_count(&self) -> usize {
        self.0.seeds().len()
    }
    /// Seed centres (x, y, z), mm, float64 (n, 3).
    #[getter]
    fn positions_mm<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let rows: Vec<Vec<f64>> = self
            .0
            .seeds()
            .iter()
            .map(|s| {
                let p = s.position_mm();
                vec![p.x, p.y, p.z]
            })
            .collect();
        PyArray2::from_vec2(py, &rows).map_err(|e| errors::internal(py, e.to_string()))
    }
    /// Seed axes (unit vectors), float64 (n, 3).
    #[getter]
    fn directions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let rows: Vec<Vec<f64>> = self
            .0
            .seeds()
            .iter()
            .map(|s| {
                let d = s.direction();
                vec![d.x, d.y, d.z]
            })
            .collect();
        PyArray2::from_vec2(py, &rows).map_err(|e| errors::internal(py, e.to_string()))
    }
    /// Air-kerma strength of each seed at the reference time, U, float64 (n,).
    #[getter]
    fn air_kerma_strength_u<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(
            py,
            self.0
                .seeds()
                .iter()
                .map(|s| s.air_kerma_strength_u())
                .collect(),
        )
    }
    /// Irradiation time of a temporary implant, h; None for a permanent one.
    #[getter]
    fn duration_h(&self) -> Option<f64> {
        match self.0.technique() {
            Technique::Permanent => None,
            Technique::Temporary { duration_h } => Some(duration_h),
        }
    }
    /// Days from the S_K reference time to the start of irradiation.
    #[getter]
    fn days_from_reference(&self) -> f64 {
        self.0.days_from_reference()
    }
    fn __repr__(&self) -> String {
        format!(
            "Implant(model={:?}, seeds={}, technique={:?})",
            self.0.model().key(),
            self.0.seeds().len(),
            self.0.technique()
        )
    }
}

/// The engine for `backend`, created once per backend and process (a GPU
/// engine opens its device and compiles its pipelines only the first time;
/// clones share the caches).
pub(crate) fn engine(py: Python<'_>, backend: &str) -> PyResult<Engine> {
    static ENGINES: std::sync::Mutex<Vec<(BackendChoice, Engine)>> =
        std::sync::Mutex::new(Vec::new());
    let choice = BackendChoice::parse(backend).py_err(py)?;
    let cached = |engines: &[(BackendChoice, Engine)]| {
        engines
            .iter()
            .find(|(c, _)| *c == choice)
            .map(|(_, e)| e.clone())
    };
    if let Some(e) = ENGINES.lock().ok().and_then(|g| cached(&g)) {
        return Ok(e);
    }
    let e = errors::detach(py, || Engine::new(choice))?.py_err(py)?;
    if let Ok(mut engines) = ENGINES.lock()
        && cached(&engines).is_none()
    {
        engines.push((choice, e.clone()));
    }
    Ok(e)
}

/// Total TG-43 dose (Gy) of an implant on a grid (AAPM TG-43U1, 2D line
/// source): the initial dose rate times the implant's effective time
/// (permanent: T½/ln 2; temporary: over `duration_h`).
///
/// implant: Implant (positions in mm, LPS; S_K in U).
/// grid: Grid (spacing and origin in mm; origin = centre of the first voxel).
/// backend: "auto" (a hardware GPU when present for problems of at least
///     1e7 seed-voxel evaluations, else the CPU), "cpu" or "gpu" (GpuError
///     without an adapter); Dose.backend says which ran.
/// progress: None, True (a new tqdm bar), a tqdm bar of yours or a callable
///     (stage, done, total); Ctrl-C stops the computation.
/// Returns a Dose: float32 (z, y, x), Gy.
#[pyfunction]
#[pyo3(signature = (implant, grid, backend = "auto", progress = None))]
fn brachy_dose(
    py: Python<'_>,
    implant: &PyImplant,
    grid: &PyGrid,
    backend: &str,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<PyDose> {
    let e = engine(py, backend)?;
    // the backend that ran (the CPU for a small problem under Auto)
    let (dose, ran) = progress::run(py, &e, progress.as_ref(), |e| {
        e.tg43_dose_with_backend(&implant.0, &grid.0)
    })?;
    Ok(PyDose::from_rust(py, dose, ran.to_string()))
}

/// Proton machine data: per nominal energy (MeV) the integrated depth-dose
/// in water, in-air spot optics, virtual source distances and MU
/// calibration, optionally a nuclear halo.
///
/// ProtonMachine.generic(): the built-in generic machine (70-230 MeV).
/// ProtonMachine.load(path): a commissioned machine file.
#[pyclass(name = "ProtonMachine", module = "isodose", frozen)]
#[derive(Debug)]
pub struct PyProtonMachine(Arc<ProtonMachine>);

#[pymethods]
impl PyProtonMachine {
    /// The built-in generic machine (70–230 MeV).
    #[staticmethod]
    fn generic(py: Python<'_>) -> PyResult<Self> {
        let m = errors::detach(py, ProtonMachine::generic)?.py_err(py)?;
        Ok(Self(Arc::new(m)))
    }
    /// A machine file (isodose-proton-machine/1 JSON).
    #[staticmethod]
    fn load(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let m = errors::detach(py, || ProtonMachine::from_json_file(&path))?.py_err(py)?;
        Ok(Self(Arc::new(m)))
    }
    /// An MCsquare/OpenTPS beam data library (BDL text file): optics carried
    /// from the nozzle exit to the isocentre, a second in-air Gaussian folded
    /// into the halo, depth doses generated from physics for the library's
    /// mean energies and energy spreads, protons per MU and PMMA range
    /// shifters as given.
    #[staticmethod]
    fn load_bdl(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let m = errors::detach(py, || ProtonMachine::from_bdl_file(&path))?.py_err(py)?;
        Ok(Self(Arc::new(m)))
    }
    /// Writes the machine as an isodose-proton-machine/1 file (JSON), which
    /// ProtonMachine.load reads back and `isodose proton --machine` uses.
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        let text = self.0.to_json_string().py_err(py)?;
        std::fs::write(&path, text).map_err(|e| {
            errors::to_py(
                py,
                isodose_core::DoseError::Io {
                    path: path.clone(),
                    source: e,
                },
            )
        })
    }
    /// Machine name.
    #[getter]
    fn name(&self) -> String {
        self.0.name().to_owned()
    }
    /// Nominal energies, MeV, ascending, float64 (n,).
    #[getter]
    fn energies_mev<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.0.energies().iter().map(|e| e.energy_mev).collect())
    }
    /// R80 in water of each energy, mm.
    #[getter]
    fn r80_mm<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.0.energies().iter().map(|e| e.r80_mm).collect())
    }
    fn __repr__(&self) -> String {
        let e = self.0.energies();
        format!(
            "ProtonMachine(name={:?}, energies={} from {} to {} MeV)",
            self.0.name(),
            e.len(),
            e[0].energy_mev,
            e[e.len() - 1].energy_mev
        )
    }
}

/// A range shifter in the nozzle (default material PMMA).
///
/// RangeShifter(water_equivalent_thickness_mm, isocenter_distance_mm,
///              relative_stopping_power=1.165, radiation_length_mm=405.5)
///
/// water_equivalent_thickness_mm: WET, mm (pulls the range back by it).
/// isocenter_distance_mm: distance from the isocentre upstream to the
///     shifter's downstream face, mm (DICOM IsocenterToRangeShifterDistance).
/// relative_stopping_power: of the material (PMMA 1.165).
/// radiation_length_mm: X0 of the material, mm (PMMA 405.5), for its
///     multiple Coulomb scattering (Highland), projected over the air gap.
#[pyclass(name = "RangeShifter", module = "isodose", frozen)]
#[derive(Clone, Debug)]
pub struct PyRangeShifter(RangeShifter);

#[pymethods]
impl PyRangeShifter {
    #[new]
    #[pyo3(signature = (water_equivalent_thickness_mm, isocenter_distance_mm, relative_stopping_power = 1.165, radiation_length_mm = 405.5))]
    fn new(
        py: Python<'_>,
        water_equivalent_thickness_mm: f64,
        isocenter_distance_mm: f64,
        relative_stopping_power: f64,
        radiation_length_mm: f64,
    ) -> PyResult<Self> {
        RangeShifter::new(
            water_equivalent_thickness_mm,
            isocenter_distance_mm,
            relative_stopping_power,
            radiation_length_mm,
        )
        .py_err(py)
        .map(Self)
    }
    /// Water-equivalent thickness, mm.
    #[getter]
    fn water_equivalent_thickness_mm(&self) -> f64 {
        self.0.water_equivalent_thickness_mm
    }
    /// Isocentre to downstream face, mm.
    #[getter]
    fn isocenter_distance_mm(&self) -> f64 {
        self.0.isocenter_distance_mm
    }
    fn __repr__(&self) -> String {
        format!(
            "RangeShifter(water_equivalent_thickness_mm={}, isocenter_distance_mm={})",
            self.0.water_equivalent_thickness_mm, self.0.isocenter_distance_mm
        )
    }
}

/// One PBS field: IEC 61217 angles, isocentre (LPS mm) and spots.
///
/// ProtonBeam(gantry_deg, couch_deg, isocenter_mm, energies_mev, spot_x_mm,
///            spot_y_mm, weights, range_shifter=None)
///
/// gantry_deg, couch_deg: IEC 61217 gantry and patient-support angles, deg.
/// isocenter_mm: (x, y, z) isocentre, mm (LPS).
/// energies_mev: nominal energy of each spot, MeV (within the machine's
///     range; between commissioned energies the data are interpolated).
/// spot_x_mm, spot_y_mm: spot position on the beam's X and Y axes (IEC
///     gantry system) at the isocentre plane, mm.
/// weights: protons per spot (>= 0; 0 contributes nothing).
/// The four spot arrays have equal length n (any real dtype).
/// range_shifter: a RangeShifter, or None.
#[pyclass(name = "ProtonBeam", module = "isodose", frozen)]
#[derive(Clone, Debug)]
pub struct PyProtonBeam(ProtonBeam);

#[pymethods]
impl PyProtonBeam {
    #[new]
    #[pyo3(signature = (gantry_deg, couch_deg, isocenter_mm, energies_mev, spot_x_mm, spot_y_mm, weights, range_shifter = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        gantry_deg: f64,
        couch_deg: f64,
        isocenter_mm: (f64, f64, f64),
        energies_mev: &Bound<'_, PyAny>,
        spot_x_mm: &Bound<'_, PyAny>,
        spot_y_mm: &Bound<'_, PyAny>,
        weights: &Bound<'_, PyAny>,
        range_shifter: Option<&PyRangeShifter>,
    ) -> PyResult<Self> {
        let (e, x, y, w) = (
            arrays::f64_1d(py, energies_mev, "energies_mev", "(n,)")?,
            arrays::f64_1d(py, spot_x_mm, "spot_x_mm", "(n,)")?,
            arrays::f64_1d(py, spot_y_mm, "spot_y_mm", "(n,)")?,
            arrays::f64_1d(py, weights, "weights", "(n,)")?,
        );
        if x.len() != e.len() || y.len() != e.len() || w.len() != e.len() {
            return Err(errors::to_py(
                py,
                isodose_core::DoseError::OutOfRange {
                    field: "spot arrays".into(),
                    value: e.len() as f64,
                    reason: format!(
                        "energies_mev, spot_x_mm, spot_y_mm and weights must have equal lengths; got {}, {}, {}, {}",
                        e.len(),
                        x.len(),
                        y.len(),
                        w.len()
                    ),
                },
            ));
        }
        let spots = (0..e.len())
            .map(|i| Spot {
                energy_mev: e[i],
                x_mm: x[i],
                y_mm: y[i],
                weight: w[i],
            })
            .collect();
        ProtonBeam::new(
            gantry_deg,
            couch_deg,
            [isocenter_mm.0, isocenter_mm.1, isocenter_mm.2],
            spots,
            range_shifter.map(|r| r.0),
        )
        .py_err(py)
        .map(Self)
    }
    /// Gantry angle, deg (IEC 61217).
    #[getter]
    fn gantry_deg(&self) -> f64 {
        self.0.gantry_deg()
    }
    /// Patient-support angle, deg (IEC 61217).
    #[getter]
    fn couch_deg(&self) -> f64 {
        self.0.couch_deg()
    }
    /// Isocentre (x, y, z), mm (LPS).
    #[getter]
    fn isocenter_mm(&self) -> (f64, f64, f64) {
        let i = self.0.frame().isocenter_mm();
        (i.x, i.y, i.z)
    }
    /// Spot energies, MeV, float64 (n,).
    #[getter]
    fn energies_mev<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.0.spots().iter().map(|s| s.energy_mev).collect())
    }
    /// Spot X at the isocentre plane, mm, float64 (n,).
    #[getter]
    fn spot_x_mm<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.0.spots().iter().map(|s| s.x_mm).collect())
    }
    /// Spot Y at the isocentre plane, mm, float64 (n,).
    #[getter]
    fn spot_y_mm<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.0.spots().iter().map(|s| s.y_mm).collect())
    }
    /// Protons per spot, float64 (n,).
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.0.spots().iter().map(|s| s.weight).collect())
    }
    /// The RangeShifter, or None.
    #[getter]
    fn range_shifter(&self) -> Option<PyRangeShifter> {
        self.0.range_shifter().map(|r| PyRangeShifter(*r))
    }
    fn __repr__(&self) -> String {
        format!(
            "ProtonBeam(gantry_deg={}, couch_deg={}, spots={}, range_shifter={})",
            self.0.gantry_deg(),
            self.0.couch_deg(),
            self.0.spots().len(),
            self.0.range_shifter().is_some()
        )
    }
}

/// A proton plan: beams and fractions.
///
/// ProtonPlan(beams, fractions=1)
///
/// beams: a sequence of ProtonBeam (spot weights per fraction).
/// fractions: number of fractions (>= 1); doses are computed per fraction.
#[pyclass(name = "ProtonPlan", module = "isodose", frozen)]
#[derive(Debug)]
pub struct PyProtonPlan(ProtonPlan);

#[pymethods]
impl PyProtonPlan {
    #[new]
    #[pyo3(signature = (beams, fractions = 1))]
    fn new(py: Python<'_>, beams: Vec<PyRef<'_, PyProtonBeam>>, fractions: u32) -> PyResult<Self> {
        let beams = beams.iter().map(|b| b.0.clone()).collect();
        ProtonPlan::new(beams, fractions).py_err(py).map(Self)
    }
    /// The beams, in order.
    #[getter]
    fn beams(&self) -> Vec<PyProtonBeam> {
        self.0.beams().iter().cloned().map(PyProtonBeam).collect()
    }
    /// Number of fractions.
    #[getter]
    fn fractions(&self) -> u32 {
        self.0.fractions()
    }
    fn __repr__(&self) -> String {
        format!(
            "ProtonPlan(beams={}, spots={}, fractions={})",
            self.0.beams().len(),
            self.0.spot_count(),
            self.0.fractions()
        )
    }
}

/// The dose options a Python call names.
struct PyDoseOptions<'py> {
    spot_splitting: Option<&'py str>,
    hu_to_rsp: Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    include_halo: bool,
    lateral_cutoff_fraction: f64,
    hu_to_scattering: Option<Bound<'py, PyAny>>,
}

fn proton_options(py: Python<'_>, a: PyDoseOptions<'_>) -> PyResult<DoseOptions> {
    let mut o = DoseOptions::new().py_err(py)?;
    if let Some(s) = a.spot_splitting {
        o.spot_splitting = Some(SpotSplitting::parse(s).py_err(py)?);
    }
    o.include_halo = a.include_halo;
    o.lateral_cutoff_fraction = a.lateral_cutoff_fraction;
    o.validate().py_err(py)?;
    if let Some(curve) = a.hu_to_scattering {
        o.scattering = Some(if let Ok(name) = curve.extract::<String>() {
            if name != "mcsquare_ucl_toshiba" {
                return Err(errors::input_error(
                    py,
                    format!(
                        "hu_to_scattering: unknown built-in curve {name:?}; known: \"mcsquare_ucl_toshiba\", or give (hu, power) arrays"
                    ),
                ));
            }
            ScatteringCurve::mcsquare_ucl_toshiba().py_err(py)?
        } else {
            let (hu, power): (Bound<'_, PyAny>, Bound<'_, PyAny>) = curve.extract().map_err(|_| {
                errors::input_error(
                    py,
                    "hu_to_scattering: expected \"mcsquare_ucl_toshiba\" or a (hu, power) pair of arrays"
                        .to_owned(),
                )
            })?;
            ScatteringCurve::new(
                "user",
                arrays::f64_1d(py, &hu, "hu_to_scattering[0]", "(n,)")?.to_vec(),
                arrays::f64_1d(py, &power, "hu_to_scattering[1]", "(n,)")?.to_vec(),
            )
            .py_err(py)?
        });
    }
    let hu_to_rsp = a.hu_to_rsp;
    if let Some((hu, rsp)) = hu_to_rsp {
        o.hlut = Hlut::new(
            "user",
            arrays::f64_1d(py, &hu, "hu_to_rsp[0]", "(n,)")?.to_vec(),
            arrays::f64_1d(py, &rsp, "hu_to_rsp[1]", "(n,)")?.to_vec(),
        )
        .py_err(py)?;
    }
    Ok(o)
}

/// Proton PBS dose (Gy, dose to water, one fraction) of a plan on a CT.
///
/// ct: CtImage in HU (water-equivalent depths are traced through it).
/// plan: ProtonPlan, spot weights in protons (per fraction).
/// machine: ProtonMachine (beam data; energies in MeV).
/// grid: dose Grid (mm); the CT grid when None.
/// backend: "auto", "cpu" or "gpu" (the forward dose runs on the GPU when
///     chosen, or under auto on a hardware GPU for plans of at least 1e7
///     pencil-voxel pairs; Dose.backend says which ran).
/// spot_splitting: None (ray casting), "fine" (9x9 sub-pencils, recommended
///     where lateral heterogeneities lie inside spots) or an odd "NxN" from
///     "5x5" to "15x15".
/// hu_to_rsp: optional (hu, rsp) arrays, a piecewise-linear HU -> relative
///     stopping power curve replacing the default.
/// progress: None, True (a new tqdm bar), a tqdm bar of yours or a callable (stage, done, total);
///     Ctrl-C stops the computation.
/// include_halo: the machine's nuclear halo (keyword only; default True).
/// lateral_cutoff_fraction: fraction of each pencil's laterally integrated
///     dose the lateral cut-off may drop, in (0, 0.5) (keyword only; 0.005).
/// hu_to_scattering: HU -> relative scattering power for multiple Coulomb
///     scattering (keyword only): None (each voxel scatters as its
///     water-equivalent thickness of water), "mcsquare_ucl_toshiba" (the
///     built-in curve from MCsquare's materials) or (hu, power) arrays.
/// Returns a Dose: float32 (z, y, x), Gy.
#[pyfunction]
#[pyo3(signature = (ct, plan, machine, grid = None, backend = "auto", spot_splitting = None, hu_to_rsp = None, progress = None, *, include_halo = true, lateral_cutoff_fraction = 0.005, hu_to_scattering = None))]
#[allow(clippy::too_many_arguments)]
fn proton_dose(
    py: Python<'_>,
    ct: &PyCtImage,
    plan: &PyProtonPlan,
    machine: &PyProtonMachine,
    grid: Option<&PyGrid>,
    backend: &str,
    spot_splitting: Option<&str>,
    hu_to_rsp: Option<(Bound<'_, PyAny>, Bound<'_, PyAny>)>,
    progress: Option<Bound<'_, PyAny>>,
    include_halo: bool,
    lateral_cutoff_fraction: f64,
    hu_to_scattering: Option<Bound<'_, PyAny>>,
) -> PyResult<PyDose> {
    let e = engine(py, backend)?;
    let options = proton_options(
        py,
        PyDoseOptions {
            spot_splitting,
            hu_to_rsp,
            include_halo,
            lateral_cutoff_fraction,
            hu_to_scattering,
        },
    )?;
    let g = grid.map(|g| g.0.clone());
    // the backend that ran (the CPU after an Auto fall-back)
    let (dose, ran) = progress::run(py, &e, progress.as_ref(), |e| {
        e.pbs_dose_with_backend(&ct.ct, &plan.0, &machine.0, g.as_ref(), &options)
    })?;
    Ok(PyDose::from_rust(py, dose, ran.to_string()))
}

/// The dose-influence matrix as (data float32, indices int32, indptr int64,
/// shape): CSC, voxels × spots, Gy per proton.
#[pyfunction]
#[pyo3(signature = (ct, plan, machine, grid = None, backend = "auto", hu_to_rsp = None, max_bytes = None, progress = None, *, spot_splitting = None, include_halo = true, lateral_cutoff_fraction = 0.005, hu_to_scattering = None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn proton_dij_parts<'py>(
    py: Python<'py>,
    ct: &PyCtImage,
    plan: &PyProtonPlan,
    machine: &PyProtonMachine,
    grid: Option<&PyGrid>,
    backend: &str,
    hu_to_rsp: Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    max_bytes: Option<usize>,
    progress: Option<Bound<'py, PyAny>>,
    spot_splitting: Option<&str>,
    include_halo: bool,
    lateral_cutoff_fraction: f64,
    hu_to_scattering: Option<Bound<'py, PyAny>>,
) -> PyResult<(
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<i32>>,
    Bound<'py, PyArray1<i64>>,
    (usize, usize),
)> {
    let e = engine(py, backend)?;
    let options = proton_options(
        py,
        PyDoseOptions {
            spot_splitting,
            hu_to_rsp,
            include_halo,
            lateral_cutoff_fraction,
            hu_to_scattering,
        },
    )?;
    let g = grid.map(|g| g.0.clone());
    let limit = max_bytes.unwrap_or(DEFAULT_DIJ_LIMIT_BYTES);
    let dij = progress::run(py, &e, progress.as_ref(), |e| {
        e.pbs_dij(&ct.ct, &plan.0, &machine.0, g.as_ref(), &options, limit)
    })?;
    let shape = dij.shape();
    if shape.0 > i32::MAX as usize {
        return Err(errors::internal(
            py,
            "more voxels than SciPy's int32 indices hold",
        ));
    }
    let (col_ptr, rows, values) = dij.into_parts();
    let indices: Vec<i32> = rows.into_iter().map(|r| r as i32).collect();
    let indptr: Vec<i64> = col_ptr.into_iter().map(|c| c as i64).collect();
    Ok((
        PyArray1::from_vec(py, values),
        PyArray1::from_vec(py, indices),
        PyArray1::from_vec(py, indptr),
        shape,
    ))
}

/// Reads a CT series from a folder of DICOM files as a CtImage in HU.
///
/// folder: directory holding the CT slices (other files are ignored).
/// series_uid: SeriesInstanceUID to read when the folder holds several
///     series (an error names them when it is None).
/// Returns a CtImage: HU (RescaleSlope/Intercept applied), float32
/// (nz, ny, nx) with z ascending; grid spacing and origin in mm (LPS); its
/// study and frame of reference UIDs. Tilted, unevenly spaced or
/// non-axial series raise DicomError naming the file and tag.
#[pyfunction]
#[pyo3(signature = (folder, series_uid = None))]
fn read_ct(
    py: Python<'_>,
    folder: std::path::PathBuf,
    series_uid: Option<String>,
) -> PyResult<PyCtImage> {
    let series = errors::detach(py, || {
        isodose_dicom::read_ct_series(&folder, series_uid.as_deref())
    })?
    .map_err(|e| errors::dicom_to_py(py, e))?;
    let ids = series.identifiers();
    Ok(PyCtImage {
        ct: Arc::new(series.volume),
        ids: Some(ids),
    })
}

/// Masks of the ROIs of an RTSTRUCT on a grid: dict ROI name -> bool array
/// (z, y, x), voxel centres inside. With `supersampling=n`, float32
/// fractional occupancies (0-1) instead, from n³ sample points per voxel
/// (n = 1-16). ROIs without closed contours give empty masks.
#[pyfunction]
#[pyo3(signature = (path, grid, supersampling = None))]
fn read_rtstruct<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    grid: &PyGrid,
    supersampling: Option<usize>,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    if let Some(n) = supersampling
        && !(1..=16).contains(&n)
    {
        return Err(errors::input_error(
            py,
            format!("supersampling must be 1-16 samples per voxel edge, not {n}"),
        ));
    }
    let g = grid.0.clone();
    let rois = errors::detach(py, || isodose_dicom::read_rtstruct(&path))?
        .map_err(|e| errors::dicom_to_py(py, e))?;
    let dict = pyo3::types::PyDict::new(py);
    for roi in rois {
        match supersampling {
            None => {
                let mask = errors::detach(py, || roi.mask(&g))?;
                dict.set_item(&roi.name, PyArray3::from_owned_array(py, mask))?;
            }
            Some(n) => {
                let occupancy = errors::detach(py, || roi.occupancy(&g, n))?;
                dict.set_item(&roi.name, PyArray3::from_owned_array(py, occupancy))?;
            }
        }
    }
    Ok(dict)
}

/// Reads an RTDOSE file as a Dose.
///
/// path: the RTDOSE file.
/// Returns a Dose in the file's DoseUnits (normally Gy; DoseGridScaling
/// applied), float32 (nz, ny, nx), grid in mm (LPS) from
/// ImagePositionPatient, PixelSpacing and GridFrameOffsetVector; its backend
/// names the file's units, type and summation.
#[pyfunction]
fn read_dose(py: Python<'_>, path: std::path::PathBuf) -> PyResult<PyDose> {
    let rd = errors::detach(py, || isodose_dicom::read_rtdose(&path))?
        .map_err(|e| errors::dicom_to_py(py, e))?;
    Ok(PyDose::from_rust(
        py,
        rd.dose,
        format!("file ({} {} {})", rd.units, rd.dose_type, rd.summation),
    ))
}

/// Writes a Dose (Gy) as an RTDOSE file; returns its SOP instance UID.
/// `ct`: the CtImage (from `read_ct`) whose study, frame of reference and
/// patient the RTDOSE joins; `plan`: path of the RT Ion Plan or brachy RT
/// Plan it was computed from, referenced by SOP instance and class (an error
/// when its frame of reference is not the CT's).
#[pyfunction]
#[pyo3(signature = (dose, path, ct = None, plan = None))]
fn write_dose(
    py: Python<'_>,
    dose: &PyDose,
    path: std::path::PathBuf,
    ct: Option<&PyCtImage>,
    plan: Option<std::path::PathBuf>,
) -> PyResult<String> {
    let volume = dose.to_rust(py)?;
    let ids = ct.and_then(|c| c.ids.clone());
    errors::detach(py, || {
        let plan = plan.map(isodose_dicom::PlanReference::read).transpose()?;
        let context = isodose_dicom::DoseContext::from_study(ids.as_ref(), plan.as_ref())?;
        isodose_dicom::write_rtdose(&path, &volume, &context)
    })?
    .map_err(|e| errors::dicom_to_py(py, e))
}

/// Commissions a proton machine from measured beam data (the method:
/// `isodose_core::proton::commission`): `idds` maps each nominal energy
/// (MeV) to (depth_mm, idd_gy_mm2_per_mu) measured in water; `spot_sizes`
/// rows are (nominal_energy_mev, z_mm, sigma_x_mm, sigma_y_mm) in air, z
/// downstream of the isocentre plane; `sad_mm` the virtual source-axis
/// distances (x, y). Returns (machine, report): the report is a dict of the
/// fitted mean energies, spreads, protons per MU, optics and the
/// leave-one-out interpolation check.
#[pyfunction]
#[pyo3(signature = (idds, spot_sizes, sad_mm, name = "commissioned"))]
fn commission<'py>(
    py: Python<'py>,
    idds: &Bound<'py, pyo3::types::PyDict>,
    spot_sizes: Vec<[f64; 4]>,
    sad_mm: (f64, f64),
    name: &str,
) -> PyResult<(PyProtonMachine, Bound<'py, PyAny>)> {
    use isodose_core::proton::commission::{BeamData, MeasuredIdd, SpotSizeMeasurement};
    let mut measured = Vec::new();
    for (k, v) in idds.iter() {
        let energy_mev: f64 = k.extract()?;
        let (depth_mm, gy_mm2_per_mu): (Vec<f64>, Vec<f64>) = v.extract()?;
        measured.push(MeasuredIdd {
            energy_mev,
            depth_mm,
            gy_mm2_per_mu,
        });
    }
    let data = BeamData {
        name: name.to_owned(),
        sad_x_mm: sad_mm.0,
        sad_y_mm: sad_mm.1,
        idds: measured,
        spot_sizes: spot_sizes
            .iter()
            .map(|r| SpotSizeMeasurement {
                energy_mev: r[0],
                z_mm: r[1],
                sigma_x_mm: r[2],
                sigma_y_mm: r[3],
            })
            .collect(),
    };
    let c =
        errors::detach(py, || isodose_core::proton::commission::commission(&data))?.py_err(py)?;
    let report = py
        .import("json")?
        .call_method1("loads", (c.report_json().to_string(),))?;
    Ok((PyProtonMachine(Arc::new(c.machine)), report))
}

/// The native part of the `isodose` package.
#[pymodule(gil_used = false)]
mod _isodose {
    #[pymodule_export]
    use super::{
        PyCtImage, PyDose, PyGrid, PyImplant, PyProtonBeam, PyProtonMachine, PyProtonPlan,
        PyRangeShifter, brachy_dose, commission, proton_dij_parts, proton_dose, read_ct, read_dose,
        read_rtstruct, seed_models, tg43_dose_rate, write_dose,
    };
    #[pymodule_export]
    use crate::demo::{_raise_internal_panic, demo_phantom, demo_seed_positions};
    #[pymodule_export]
    use crate::plans::{read_brachy_plan, read_ion_plan, read_ion_plan_mu, write_brachy_plan};
    #[pymodule_export]
    use crate::qa::{
        PyDvh, PyGammaResult, PyStructure, dvh, gamma, paddick_conformity, read_structures,
    };
    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }
}
