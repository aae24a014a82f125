//! QA bindings: the gamma index (on the engine's backend, `Engine::gamma`),
//! dose-volume histograms and contoured structures (`isodose_core::qa`), and
//! the RTSTRUCT reader that gives structures (`isodose_dicom::read_rtstruct`).
//!
//! Thin wrappers: inputs are converted once (the gamma index reads both
//! doses in place; the DVH copies its dose), the computation runs with the
//! GIL released, and results go back as NumPy arrays or plain numbers. The
//! gamma index reports progress and stops on Ctrl-C (`crate::progress`).

use std::borrow::Cow;

use isodose_core::qa::{
    Dvh, GammaCriteria, GammaResult, GammaSearch, Structure, prescription_isodose_volume_cc,
};
use isodose_core::{DoseError, DoseGrid};
use numpy::{PyArray1, PyArray2, PyArray3};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{self, IntoPy};
use crate::{PyDose, PyGrid, arrays};

/// Two 1-D arrays returned together: (values of type `T`, float64), e.g.
/// histogram counts and bin edges, or doses and volumes.
type ArrayPair<'py, T> = (Bound<'py, PyArray1<T>>, Bound<'py, PyArray1<f64>>);

/// An optional string as Python writes it: `'text'` or `None`.
fn py_optional(s: Option<&str>) -> String {
    s.map_or_else(|| "None".to_owned(), |s| format!("{s:?}"))
}

/// The gamma volume on the reference grid and its statistics.
#[pyclass(name = "GammaResult", module = "isodose", frozen)]
#[derive(Debug)]
pub struct PyGammaResult {
    result: GammaResult,
    gamma: Py<PyArray3<f32>>,
    backend: String,
}

#[pymethods]
impl PyGammaResult {
    /// Fraction (0–1) of the evaluated reference points with γ ≤ 1 (NaN when
    /// no point is above the cut-off).
    #[getter]
    fn pass_rate(&self) -> f64 {
        self.result.pass_rate()
    }
    /// γ, float32, (z, y, x) on the reference grid: NaN where not evaluated
    /// (below the cut-off), +inf where no evaluated dose was found, values
    /// capped at `max_gamma`.
    #[getter]
    fn gamma<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray3<f32>> {
        self.gamma.bind(py).clone()
    }
    /// The reference grid.
    #[getter]
    fn grid(&self) -> PyGrid {
        PyGrid(self.result.gamma().grid().clone())
    }
    /// Number of reference points evaluated (at or above the cut-off).
    #[getter]
    fn evaluated_count(&self) -> usize {
        self.result.evaluated_count()
    }
    /// Number of evaluated points with γ ≤ 1.
    #[getter]
    fn passed_count(&self) -> usize {
        self.result.passed_count()
    }
    /// Mean γ over the evaluated points (+inf if a point had no evaluated dose).
    #[getter]
    fn mean_gamma(&self) -> f64 {
        self.result.mean_gamma()
    }
    /// Largest γ over the evaluated points.
    #[getter]
    fn max_gamma(&self) -> f64 {
        self.result.max_gamma()
    }
    /// The normalisation dose of the dose criterion, Gy.
    #[getter]
    fn normalisation_gy(&self) -> f64 {
        self.result.normalisation_gy()
    }
    /// Dose-difference criterion, percent.
    #[getter]
    fn dose_percent(&self) -> f64 {
        self.result.criteria().dose_percent
    }
    /// Distance-to-agreement criterion, mm.
    #[getter]
    fn dta_mm(&self) -> f64 {
        self.result.criteria().dta_mm
    }
    /// Local (True) or global (False) dose difference.
    #[getter]
    fn local(&self) -> bool {
        self.result.criteria().local
    }
    /// The backend that computed it.
    #[getter]
    fn backend(&self) -> String {
        self.backend.clone()
    }
    /// Histogram of γ: `bins` equal bins over [0, max_gamma] (the cap of the
    /// criteria); values at the cap (and +inf) count in the last bin.
    /// Returns (counts int64, edges float64 of length bins + 1).
    #[pyo3(signature = (bins = 20))]
    fn histogram<'py>(&self, py: Python<'py>, bins: usize) -> PyResult<ArrayPair<'py, i64>> {
        if bins == 0 {
            return Err(errors::input_error(py, "bins must be >= 1".into()));
        }
        let counts: Vec<i64> = self
            .result
            .histogram(bins)
            .into_iter()
            .map(|c| c as i64)
            .collect();
        let top = self.result.criteria().max_gamma;
        let edges: Vec<f64> = (0..=bins).map(|i| top * i as f64 / bins as f64).collect();
        Ok((
            PyArray1::from_vec(py, counts),
            PyArray1::from_vec(py, edges),
        ))
    }
    fn __repr__(&self) -> String {
        let c = self.result.criteria();
        format!(
            "GammaResult({}%/{} mm {}, pass_rate={:.4}, evaluated={}, backend={:?})",
            c.dose_percent,
            c.dta_mm,
            if c.local { "local" } else { "global" },
            self.result.pass_rate(),
            self.result.evaluated_count(),
            self.backend
        )
    }
}

/// Gamma index of `evaluated` against `reference` (Low et al. 1998), on the
/// reference grid: the native part of `isodose.gamma` (parameters there).
#[pyfunction]
#[pyo3(signature = (reference, evaluated, dose_percent = 3.0, dta_mm = 3.0, cutoff_percent = 10.0, local = false, backend = "auto", max_gamma = 2.0, search_step = 0.1, normalisation_gy = None, progress = None, search = "continuous"))]
#[allow(clippy::too_many_arguments)]
pub fn gamma(
    py: Python<'_>,
    reference: &PyDose,
    evaluated: &PyDose,
    dose_percent: f64,
    dta_mm: f64,
    cutoff_percent: f64,
    local: bool,
    backend: &str,
    max_gamma: f64,
    search_step: f64,
    normalisation_gy: Option<f64>,
    progress: Option<Bound<'_, PyAny>>,
    search: &str,
) -> PyResult<PyGammaResult> {
    let engine = crate::engine(py, backend)?;
    let criteria = GammaCriteria {
        dose_percent,
        dta_mm,
        cutoff_percent,
        local,
        max_gamma,
        search: GammaSearch::parse(search).py_err(py)?,
        search_step,
        normalisation_gy,
    };
    // both doses read in place, without a copy
    let (r_array, e_array) = (reference.readonly(py)?, evaluated.readonly(py)?);
    let r = reference.view(py, &r_array)?;
    let e = evaluated.view(py, &e_array)?;
    let result = crate::progress::run(py, &engine, progress.as_ref(), |engine| {
        engine.gamma(r, e, &criteria)
    })?;
    let gamma = PyArray3::from_array(py, result.gamma().data()).unbind();
    let backend = result.backend().to_string();
    Ok(PyGammaResult {
        result,
        gamma,
        backend,
    })
}

/// A structure of closed planar contours on axial planes (LPS mm), as
/// `isodose_core::qa::Structure`: each plane stands for a slab half-way to
/// its neighbours (the end planes extend by half their neighbour spacing),
/// and a structure contoured on one plane is a slab of `thickness_mm`.
#[pyclass(name = "Structure", module = "isodose", frozen)]
#[derive(Debug)]
pub struct PyStructure {
    structure: Structure,
    /// Slab of a single-plane structure, mm (None: not known).
    thickness_mm: Option<f64>,
    number: Option<i64>,
    color: Option<(u8, u8, u8)>,
    kind: Option<String>,
}

/// Thickness used to build a structure whose slab is not needed (several
/// planes: the slabs come from the plane spacing).
const UNUSED_THICKNESS_MM: f64 = 1.0;

impl PyStructure {
    fn build(
        py: Python<'_>,
        name: &str,
        contours: &[Vec<[f64; 3]>],
        thickness_mm: Option<f64>,
    ) -> PyResult<Structure> {
        Structure::from_contours(name, contours, thickness_mm.unwrap_or(UNUSED_THICKNESS_MM))
            .py_err(py)
    }

    /// The structure with the single-plane slab resolved: `thickness_mm`,
    /// else its own, else `fallback_mm`; an InputError when a single-plane
    /// structure has none of them.
    fn resolved(
        &self,
        py: Python<'_>,
        thickness_mm: Option<f64>,
        fallback_mm: Option<f64>,
    ) -> PyResult<Cow<'_, Structure>> {
        let planes = self.structure.planes();
        if planes.len() > 1 {
            return Ok(Cow::Borrowed(&self.structure));
        }
        match thickness_mm.or(self.thickness_mm).or(fallback_mm) {
            Some(t) if Some(t) == self.thickness_mm => Ok(Cow::Borrowed(&self.structure)),
            Some(t) => {
                let contours: Vec<Vec<[f64; 3]>> = planes
                    .iter()
                    .flat_map(|pl| {
                        pl.polygons
                            .iter()
                            .map(|p| p.iter().map(|[x, y]| [*x, *y, pl.z_mm]).collect())
                    })
                    .collect();
                Self::build(py, self.structure.name(), &contours, Some(t)).map(Cow::Owned)
            }
            None => Err(errors::input_error(
                py,
                format!(
                    "structure {:?} is contoured on one plane (z = {} mm): give its slab thickness_mm",
                    self.structure.name(),
                    planes.first().map_or(f64::NAN, |p| p.z_mm)
                ),
            )),
        }
    }
}

#[pymethods]
impl PyStructure {
    /// `contours`: a list of (n, 3) arrays of (x, y, z) points in mm, each on
    /// one axial plane (z constant) with at least 3 points, implicitly
    /// closed; contours on the same plane combine by the even-odd rule (a
    /// contour inside another is a hole). `thickness_mm`: the slab of a
    /// structure contoured on a single plane.
    #[new]
    #[pyo3(signature = (name, contours, thickness_mm = None))]
    fn new(
        py: Python<'_>,
        name: &str,
        contours: Vec<Bound<'_, PyAny>>,
        thickness_mm: Option<f64>,
    ) -> PyResult<Self> {
        let mut pts: Vec<Vec<[f64; 3]>> = Vec::with_capacity(contours.len());
        for (i, c) in contours.iter().enumerate() {
            let a = arrays::f64_2d(py, c, &format!("contours[{i}]"), "(n, 3)")?;
            if a.ncols() != 3 {
                return Err(errors::input_error(
                    py,
                    format!("contours[{i}] must have shape (n, 3), got {:?}", a.dim()),
                ));
            }
            pts.push(a.rows().into_iter().map(|r| [r[0], r[1], r[2]]).collect());
        }
        let structure = Self::build(py, name, &pts, thickness_mm)?;
        Ok(Self {
            structure,
            thickness_mm,
            number: None,
            color: None,
            kind: None,
        })
    }
    /// The structure's name (ROIName).
    #[getter]
    fn name(&self) -> String {
        self.structure.name().to_owned()
    }
    /// ROINumber, when read from an RTSTRUCT.
    #[getter]
    fn number(&self) -> Option<i64> {
        self.number
    }
    /// ROIDisplayColor (r, g, b), when given.
    #[getter]
    fn color(&self) -> Option<(u8, u8, u8)> {
        self.color
    }
    /// RTROIInterpretedType (PTV, ORGAN, EXTERNAL...), when given.
    #[getter]
    #[pyo3(name = "type")]
    fn interpreted_type(&self) -> Option<String> {
        self.kind.clone()
    }
    /// Slab thickness of a single-plane structure, mm (None when not given).
    #[getter]
    fn thickness_mm(&self) -> Option<f64> {
        self.thickness_mm
    }
    /// Positions of the contour planes along z, mm, ascending.
    #[getter]
    fn z_planes_mm<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.structure.planes().iter().map(|p| p.z_mm).collect())
    }
    /// The contours as a list of (n, 3) float64 arrays of (x, y, z) mm,
    /// plane by plane in ascending z.
    #[getter]
    fn contours<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyArray2<f64>>> {
        self.structure
            .planes()
            .iter()
            .flat_map(|pl| {
                pl.polygons.iter().map(move |p| {
                    let rows: Vec<Vec<f64>> =
                        p.iter().map(|[x, y]| vec![*x, *y, pl.z_mm]).collect();
                    rows
                })
            })
            .filter_map(|rows| PyArray2::from_vec2(py, &rows).ok())
            .collect()
    }
    /// Volume of the structure model, cm³: Σ over planes of the even-odd
    /// contour area × slab thickness (exact for the model).
    #[getter]
    fn volume_cc(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.resolved(py, None, None)?.volume_cc())
    }
    fn __repr__(&self) -> String {
        format!(
            "Structure(name={:?}, planes={}, type={})",
            self.structure.name(),
            self.structure.planes().len(),
            py_optional(self.kind.as_deref())
        )
    }
}

/// Structures of the ROIs of an RTSTRUCT file: dict ROI name -> Structure
/// (CLOSED_PLANAR contours; each plane a slab half-way to its neighbours).
/// ROIs without closed planar contours (POINT markers, empty ROIs) are left
/// out. `thickness_mm` is the slab of ROIs contoured on a single plane (the
/// CT slice thickness); when None, `dvh` uses the dose grid's z spacing.
/// Errors: DicomError for the file, InputError naming an ROI whose contours
/// are not axial.
#[pyfunction]
#[pyo3(signature = (path, thickness_mm = None))]
pub fn read_structures<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    thickness_mm: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let rois = errors::detach(py, || isodose_dicom::read_rtstruct(&path))?
        .map_err(|e| errors::dicom_to_py(py, e))?;
    let dict = PyDict::new(py);
    for roi in rois {
        let has_closed = roi
            .contours
            .iter()
            .any(|c| c.geometric_type == "CLOSED_PLANAR" && c.points.len() >= 3);
        if !has_closed {
            continue;
        }
        let structure = roi
            .structure(thickness_mm.unwrap_or(UNUSED_THICKNESS_MM))
            .map_err(|e| {
                errors::to_py(
                    py,
                    DoseError::OutOfRange {
                        field: format!("{}: ROI {} {:?}", path.display(), roi.number, roi.name),
                        value: roi.number as f64,
                        reason: e.to_string(),
                    },
                )
            })?;
        let s = PyStructure {
            structure,
            thickness_mm,
            number: Some(roi.number),
            color: roi.color.map(|[r, g, b]| (r, g, b)),
            kind: roi.interpreted_type.clone(),
        };
        dict.set_item(roi.name, Py::new(py, s)?)?;
    }
    Ok(dict)
}

/// A dose-volume histogram of one structure and its metrics (Gy, cm³).
#[pyclass(name = "Dvh", module = "isodose", frozen)]
#[derive(Debug)]
pub struct PyDvh {
    dvh: Dvh,
    name: Option<String>,
    backend: String,
}

#[pymethods]
impl PyDvh {
    /// Name of the structure, when the DVH was computed for a Structure.
    #[getter]
    fn name(&self) -> Option<String> {
        self.name.clone()
    }
    /// The backend that binned the samples ("cpu (...)" or "gpu (...)").
    #[getter]
    fn backend(&self) -> String {
        self.backend.clone()
    }
    /// Volume of the structure, cm³.
    #[getter]
    fn volume_cc(&self) -> f64 {
        self.dvh.volume_cc()
    }
    /// Lowest dose in the structure, Gy.
    #[getter]
    fn min(&self) -> f64 {
        self.dvh.min()
    }
    /// Highest dose in the structure (a point value), Gy.
    #[getter]
    fn max(&self) -> f64 {
        self.dvh.max()
    }
    /// Volume-weighted mean dose, Gy.
    #[getter]
    fn mean(&self) -> f64 {
        self.dvh.mean()
    }
    /// Clinical maximum D_0.03cc, Gy.
    #[getter]
    fn max_0_03cc(&self) -> f64 {
        self.dvh.max_0_03cc()
    }
    /// Volume of the structure outside the dose grid (counted as 0 Gy), cm³.
    #[getter]
    fn outside_cc(&self) -> f64 {
        self.dvh.outside_cc()
    }
    /// ICRU 83 homogeneity index (D2 − D98)/D50 (NaN when D50 = 0).
    #[getter]
    fn homogeneity_index(&self) -> f64 {
        self.dvh.homogeneity_index()
    }
    /// Width of the differential histogram's bins, Gy.
    #[getter]
    fn bin_width_gy(&self) -> f64 {
        self.dvh.bin_width_gy()
    }
    /// D_x%: the minimum dose (Gy) to the hottest `percent` % of the
    /// structure (0 < percent <= 100); d(95) is D95.
    fn d(&self, py: Python<'_>, percent: f64) -> PyResult<f64> {
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(errors::input_error(
                py,
                format!("percent must be in (0, 100], got {percent}"),
            ));
        }
        self.dvh.dose_at_fraction(percent / 100.0).py_err(py)
    }
    /// D_v: the minimum dose (Gy) to the hottest `volume_cc` cm³.
    fn d_cc(&self, py: Python<'_>, volume_cc: f64) -> PyResult<f64> {
        self.dvh.dose_at_volume_cc(volume_cc).py_err(py)
    }
    /// V_D: fraction (0–1) of the structure receiving at least `dose_gy`.
    fn v(&self, dose_gy: f64) -> f64 {
        self.dvh.fraction_at_least(dose_gy)
    }
    /// V_D: volume (cm³) receiving at least `dose_gy`.
    fn v_cc(&self, dose_gy: f64) -> f64 {
        self.dvh.volume_at_least_cc(dose_gy)
    }
    /// The cumulative DVH at `n` doses from 0 to the maximum: (doses Gy,
    /// volumes cm³ receiving at least each dose), float64 arrays.
    #[pyo3(signature = (n = 200))]
    fn curve<'py>(&self, py: Python<'py>, n: usize) -> PyResult<ArrayPair<'py, f64>> {
        if n < 2 {
            return Err(errors::input_error(py, format!("n must be >= 2, got {n}")));
        }
        let top = self.dvh.max();
        let doses: Vec<f64> = (0..n).map(|i| top * i as f64 / (n - 1) as f64).collect();
        let volumes: Vec<f64> = self
            .dvh
            .cumulative_cc(&doses)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        Ok((
            PyArray1::from_vec(py, doses),
            PyArray1::from_vec(py, volumes),
        ))
    }
    /// The differential DVH: (bin edges Gy, length bins + 1; volume cm³ per
    /// bin), bins of `bin_width_gy` from 0 to the maximum dose.
    fn differential<'py>(&self, py: Python<'py>) -> ArrayPair<'py, f64> {
        let volumes = self.dvh.differential_cc();
        let w = self.dvh.bin_width_gy();
        let edges: Vec<f64> = (0..=volumes.len()).map(|i| i as f64 * w).collect();
        (
            PyArray1::from_vec(py, edges),
            PyArray1::from_vec(py, volumes),
        )
    }
    fn __repr__(&self) -> String {
        format!(
            "Dvh(name={}, volume_cc={:.4}, min={:.4}, mean={:.4}, max={:.4} Gy)",
            py_optional(self.name.as_deref()),
            self.dvh.volume_cc(),
            self.dvh.min(),
            self.dvh.mean(),
            self.dvh.max()
        )
    }
}

/// The DVH of a structure in a dose: the native part of `isodose.dvh`
/// (parameters there).
#[pyfunction]
#[pyo3(signature = (dose, mask_or_roi, subdivisions = 4, thickness_mm = None, backend = "auto"))]
pub fn dvh(
    py: Python<'_>,
    dose: &PyDose,
    mask_or_roi: &Bound<'_, PyAny>,
    subdivisions: usize,
    thickness_mm: Option<f64>,
    backend: &str,
) -> PyResult<PyDvh> {
    let e = crate::engine(py, backend)?;
    let d = dose.to_rust(py)?;
    let (samples, name) = if let Ok(s) = mask_or_roi.cast::<PyStructure>() {
        let s = s.get();
        let fallback = d.grid().spacing_mm().z;
        let structure = s.resolved(py, thickness_mm, Some(fallback))?;
        let samples = errors::detach(py, || structure.sample(&d, subdivisions))?.py_err(py)?;
        (samples, Some(s.structure.name().to_owned()))
    } else {
        if thickness_mm.is_some() {
            return Err(errors::input_error(
                py,
                "thickness_mm applies to a Structure, not to a mask or occupancy array".into(),
            ));
        }
        let np = py.import("numpy")?;
        let kind: String = np
            .call_method1("asarray", (mask_or_roi,))?
            .getattr("dtype")?
            .getattr("kind")?
            .extract()?;
        let samples = if kind == "b" {
            let mask = arrays::bool_3d(py, mask_or_roi, "mask", "(nz, ny, nx)")?;
            errors::detach(py, || Dvh::mask_samples(&d, &mask))?
        } else {
            let occupancy = arrays::f32_3d(py, mask_or_roi, "occupancy", "(nz, ny, nx)")?;
            errors::detach(py, || Dvh::occupancy_samples(&d, &occupancy))?
        }
        .py_err(py)?;
        (samples, None)
    };
    let (dvh, ran) = errors::detach(py, || e.dvh(&samples))?.py_err(py)?;
    Ok(PyDvh {
        dvh,
        name,
        backend: ran.to_string(),
    })
}

/// Paddick conformity index CI = TV_PIV² / (TV × PIV): TV the target volume,
/// TV_PIV the target volume receiving at least `prescription_gy`, PIV the
/// volume of the whole dose grid receiving at least it (whole voxels).
#[pyfunction]
pub fn paddick_conformity(
    py: Python<'_>,
    target_dvh: &PyDvh,
    dose: &PyDose,
    prescription_gy: f64,
) -> PyResult<f64> {
    if !(prescription_gy.is_finite() && prescription_gy > 0.0) {
        return Err(errors::input_error(
            py,
            format!("prescription_gy must be finite and > 0, got {prescription_gy}"),
        ));
    }
    let d: DoseGrid = dose.to_rust(py)?;
    let piv = errors::detach(py, || prescription_isodose_volume_cc(&d, prescription_gy))?;
    Ok(isodose_core::qa::paddick_conformity(
        &target_dvh.dvh,
        prescription_gy,
        piv,
    ))
}
