//! 3D gamma index (Low, Harms, Mutic, Purdy, Med Phys 25, 656 (1998)).
//!
//! For a reference point **x** with dose D_r(**x**), the gamma index is
//!
//! γ(**x**) = min over **r** of √( |**r**|² / Δd² + (D_e(**x** + **r**) − D_r(**x**))² / ΔD² )
//!
//! with Δd the distance-to-agreement criterion (mm) and ΔD the dose-difference
//! criterion: `dose_percent` % of the normalisation dose (global: the maximum
//! reference dose unless given) or of D_r(**x**) (local). A point passes when
//! γ ≤ 1.
//!
//! **Evaluated dose between voxels.** D_e is interpolated trilinearly at any
//! position, so the search is not limited to the evaluated grid's voxel
//! centres: a coarse grid (voxels larger than Δd) does not fail points that
//! agree. The two grids may differ in spacing, origin and size (both are
//! axis-aligned in the patient system).
//!
//! **Search** ([`GammaSearch`]). The default, [`GammaSearch::Continuous`]
//! (module `cells`), minimises over all positions within `max_gamma` × Δd of
//! the trilinear interpolant: cells of the evaluated grid are visited by
//! increasing distance, skipped when a bound from their corner doses proves
//! they cannot do better, and minimised by projected Gauss-Newton on the
//! exact trilinear formula, with a branch and bound down to `search_step` ×
//! Δd where a cell is not convex. A region counts as holding nothing better
//! once a bound proves it within 10⁻⁶ of the best γ (absolute) or 5 × 10⁻⁷
//! (relative), whichever is larger. It is the default because it is both
//! exact (no lattice error: never worse than the lattice by more than 1e-3,
//! tested, also on noisy doses) and the fastest search on the CPU (about ten
//! times the lattice's speed on the benchmark cases, BENCHMARKS.md); its GPU
//! kernel is `shaders/gamma_continuous.wgsl`. [`GammaSearch::Lattice`]
//! (module `lattice`) is the search of most gamma tools (pymedphys'
//! `interp_fraction` = 1/`search_step`), kept for comparison with them:
//! offsets on a cubic lattice of step `search_step` × Δd, visited in
//! increasing |**r**| until |**r**|/Δd reaches the smallest γ found (the
//! exact lattice minimum), then refined off the lattice.
//! γ is capped at `max_gamma`: a stored value of `max_gamma` means "at
//! least `max_gamma`".
//!
//! **Points that are not evaluated.** Reference points below the low-dose
//! cut-off (`cutoff_percent` % of the normalisation dose) are excluded (NaN
//! in the gamma volume). A reference point where no search position lies
//! inside the evaluated grid fails (γ = +∞): missing evaluated dose is never a
//! pass. In local mode, reference points with zero dose are excluded.

mod cells;
mod lattice;

use nalgebra::Point3;
use ndarray::Array3;
use rayon::prelude::*;

use cells::CellSearch;
// the lattice search's constants, shared with its GPU port
#[cfg(feature = "gpu")]
pub(crate) use lattice::{FD_STEP, GN_HALVINGS, GN_ITERATIONS, REFINE_LEVELS, REFINE_MOVES};
use lattice::{LatticeSearch, Offset, search_offsets};

use crate::engine::BackendKind;
use crate::engine::progress::Hook;
use crate::error::{DoseError, Result};
use crate::grid::{DoseView, Volume};

/// How the minimum over positions is searched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GammaSearch {
    /// The minimum of the trilinear interpolant over every position within
    /// `max_gamma` × Δd, cell by cell (no lattice, so no lattice error; the
    /// default: exact and the fastest on the CPU).
    #[default]
    Continuous,
    /// A cubic lattice of step `search_step` × Δd, then an off-lattice
    /// refinement (the search of pymedphys and most gamma tools, for
    /// comparison with them).
    Lattice,
}

impl std::fmt::Display for GammaSearch {
    /// "lattice" or "continuous", as [`GammaSearch::parse`] reads them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Lattice => "lattice",
            Self::Continuous => "continuous",
        })
    }
}

impl GammaSearch {
    /// "lattice" or "continuous" (any case).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lattice" => Ok(Self::Lattice),
            "continuous" => Ok(Self::Continuous),
            other => Err(DoseError::InvalidOption {
                what: "gamma search",
                value: other.to_owned(),
                expected: "lattice or continuous",
            }),
        }
    }
}

/// Gamma criteria and search options.
#[derive(Clone, Debug, PartialEq)]
pub struct GammaCriteria {
    /// Dose-difference criterion, percent (of the normalisation dose, or of
    /// the local reference dose when `local`).
    pub dose_percent: f64,
    /// Distance-to-agreement criterion, mm.
    pub dta_mm: f64,
    /// Reference points below this percentage of the normalisation dose are
    /// not evaluated.
    pub cutoff_percent: f64,
    /// Local (true) or global (false) dose difference.
    pub local: bool,
    /// Largest γ searched for; higher values are reported as `max_gamma`.
    pub max_gamma: f64,
    /// The search: continuous (default) or on a lattice.
    pub search: GammaSearch,
    /// Search resolution as a fraction of the DTA (0.1 = Δd/10): the
    /// lattice step of [`GammaSearch::Lattice`]; the smallest box the
    /// continuous search splits a non-convex cell into.
    pub search_step: f64,
    /// Global normalisation dose, Gy; `None` = the maximum reference dose.
    pub normalisation_gy: Option<f64>,
}

impl GammaCriteria {
    /// Criteria `dose_percent` %/`dta_mm` mm, global, with a 10 % low-dose
    /// cut-off, γ searched up to 2, continuous search to a resolution of
    /// Δd/10.
    pub fn new(dose_percent: f64, dta_mm: f64) -> Self {
        Self {
            dose_percent,
            dta_mm,
            cutoff_percent: 10.0,
            local: false,
            max_gamma: 2.0,
            search: GammaSearch::Continuous,
            search_step: 0.1,
            normalisation_gy: None,
        }
    }

    fn validate(&self) -> Result<()> {
        let positive = |field: &str, v: f64| -> Result<()> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(DoseError::OutOfRange {
                    field: field.into(),
                    value: v,
                    reason: "must be finite and > 0".into(),
                })
            }
        };
        positive("gamma dose criterion (%)", self.dose_percent)?;
        positive("gamma distance criterion (mm)", self.dta_mm)?;
        positive("maximum gamma", self.max_gamma)?;
        if !(self.cutoff_percent.is_finite() && (0.0..100.0).contains(&self.cutoff_percent)) {
            return Err(DoseError::OutOfRange {
                field: "gamma low-dose cut-off (%)".into(),
                value: self.cutoff_percent,
                reason: "must be in [0, 100)".into(),
            });
        }
        if !(self.search_step.is_finite() && self.search_step > 0.0 && self.search_step <= 0.5) {
            return Err(DoseError::OutOfRange {
                field: "gamma search step (fraction of the DTA)".into(),
                value: self.search_step,
                reason: "must be in (0, 0.5]".into(),
            });
        }
        // at most ~4 million lattice offsets (max_gamma / step = 100)
        if self.max_gamma / self.search_step > 100.0 {
            return Err(DoseError::OutOfRange {
                field: "maximum gamma / search step".into(),
                value: self.max_gamma / self.search_step,
                reason: "must be <= 100 (the search lattice would be too large)".into(),
            });
        }
        if let Some(n) = self.normalisation_gy {
            positive("gamma normalisation dose (Gy)", n)?;
        }
        Ok(())
    }
}

/// The gamma volume on the reference grid and its statistics.
#[derive(Clone, Debug)]
pub struct GammaResult {
    gamma: Volume<f32>,
    evaluated: usize,
    passed: usize,
    normalisation_gy: f64,
    criteria: GammaCriteria,
    backend: BackendKind,
}

impl GammaResult {
    /// γ on the reference grid: NaN where not evaluated (below the cut-off),
    /// +∞ where no evaluated dose was found, else capped at `max_gamma`.
    pub fn gamma(&self) -> &Volume<f32> {
        &self.gamma
    }
    /// Number of reference points evaluated (at or above the cut-off).
    pub fn evaluated_count(&self) -> usize {
        self.evaluated
    }
    /// Number of evaluated points with γ ≤ 1.
    pub fn passed_count(&self) -> usize {
        self.passed
    }
    /// Passed / evaluated, 0–1 (NaN when nothing was evaluated).
    pub fn pass_rate(&self) -> f64 {
        if self.evaluated == 0 {
            f64::NAN
        } else {
            self.passed as f64 / self.evaluated as f64
        }
    }
    /// The normalisation dose used (Gy).
    pub fn normalisation_gy(&self) -> f64 {
        self.normalisation_gy
    }
    /// The criteria used.
    pub fn criteria(&self) -> &GammaCriteria {
        &self.criteria
    }
    /// The backend that computed it.
    pub fn backend(&self) -> &BackendKind {
        &self.backend
    }
    /// Evaluated γ values (finite or +∞).
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.gamma
            .data()
            .iter()
            .filter(|g| !g.is_nan())
            .map(|&g| f64::from(g))
    }
    /// Mean γ over the evaluated points (+∞ if any point had no evaluated dose).
    pub fn mean_gamma(&self) -> f64 {
        self.values().sum::<f64>() / self.evaluated.max(1) as f64
    }
    /// Largest γ over the evaluated points.
    pub fn max_gamma(&self) -> f64 {
        self.values().fold(0.0, f64::max)
    }
    /// Histogram of γ: `bins` equal bins over [0, max_gamma]; values at or
    /// above `max_gamma` (and +∞) count in the last bin.
    pub fn histogram(&self, bins: usize) -> Vec<usize> {
        let bins = bins.max(1);
        let mut h = vec![0usize; bins];
        let top = self.criteria.max_gamma;
        for g in self.values() {
            let b = ((g / top) * bins as f64).floor();
            let b = if b.is_finite() { b as usize } else { bins - 1 };
            h[b.min(bins - 1)] += 1;
        }
        h
    }
}

/// The evaluated dose as the CPU searches read it.
pub(crate) struct EvaluatedDose<'a> {
    /// Doses (Gy) in C order (z, y, x).
    pub(crate) data: &'a [f32],
    /// (z, y, x).
    pub(crate) shape: [usize; 3],
    /// Centre of the first voxel (x, y, z), mm.
    pub(crate) origin_mm: [f64; 3],
    /// Voxel size (x, y, z), mm.
    pub(crate) spacing_mm: [f64; 3],
}

/// What the CPU and GPU paths share: the validated criteria and the numbers
/// derived from them.
#[derive(Debug)]
pub(crate) struct GammaSetup {
    pub(crate) criteria: GammaCriteria,
    /// Lattice offsets (empty for the continuous search).
    pub(crate) offsets: Vec<Offset>,
    pub(crate) normalisation_gy: f64,
    pub(crate) cutoff_gy: f64,
    pub(crate) inv_dta2: f64,
    pub(crate) max_g2: f64,
    pub(crate) lattice_step_mm: f64,
}

impl GammaSetup {
    /// Largest displacement the search can sample, mm: a kept position has
    /// γ below `max_gamma`, so |r| < max_gamma·Δd; trial positions (one
    /// Gauss-Newton step or pattern move beyond, and the finite-difference
    /// stencil) stay within another max_gamma·Δd.
    #[cfg(feature = "gpu")]
    pub(crate) fn reach_mm(&self) -> f64 {
        2.0 * self.criteria.max_gamma * self.criteria.dta_mm + 1.0
    }
}

/// One value into (all finite so far, largest so far).
fn finite_max_step((ok, m): (bool, f32), x: f32) -> (bool, f32) {
    (ok & x.is_finite(), m.max(x))
}

/// Whether every value is finite, and the largest value (at least 0; only
/// meaningful when all are finite), in eight independent lanes so that the
/// compiler can vectorise the pass.
fn finite_max(d: &[f32]) -> (bool, f32) {
    const LANES: usize = 8;
    let mut max = [0.0f32; LANES];
    let mut finite = [true; LANES];
    let chunks = d.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            finite[k] &= c[k].is_finite();
            max[k] = if c[k] > max[k] { c[k] } else { max[k] };
        }
    }
    let tail = rest.iter().copied().fold((true, 0.0f32), finite_max_step);
    (
        finite.iter().all(|&f| f) & tail.0,
        max.iter().fold(tail.1, |m, &x| m.max(x)),
    )
}

/// Validates the criteria and the doses and derives the search.
pub(crate) fn setup<'a>(
    reference: DoseView<'a>,
    evaluated: DoseView<'a>,
    criteria: &GammaCriteria,
) -> Result<GammaSetup> {
    criteria.validate()?;
    let mut max_ref = 0.0f32;
    for (what, v) in [("reference", reference), ("evaluated", evaluated)] {
        // one pass over the voxels in memory order: the largest value, and
        // whether all are finite (NaN and ±∞ fail `is_finite`, and a NaN
        // would escape a maximum)
        let (finite, max) = match v.data().as_slice_memory_order() {
            Some(d) => d
                .par_chunks(1 << 16)
                .map(finite_max)
                .reduce(|| (true, 0.0f32), |a, b| (a.0 & b.0, a.1.max(b.1))),
            None => v
                .data()
                .iter()
                .copied()
                .fold((true, 0.0f32), finite_max_step),
        };
        if !finite {
            let bad = v
                .data()
                .iter()
                .find(|d| !d.is_finite())
                .copied()
                .unwrap_or(f32::NAN);
            return Err(DoseError::NonFinite {
                field: format!("{what} dose (Gy)"),
                value: f64::from(bad),
            });
        }
        if what == "reference" {
            max_ref = max;
        }
    }
    let max_ref = f64::from(max_ref);
    let norm = criteria.normalisation_gy.unwrap_or(max_ref);
    if norm <= 0.0 {
        return Err(DoseError::Empty {
            what: "reference dose (no voxel above 0 Gy to normalise the gamma criteria)",
        });
    }
    let (lo_r, hi_r) = reference.grid().centre_bounds_mm();
    let (lo_e, hi_e) = evaluated.grid().centre_bounds_mm();
    let reach = criteria.max_gamma * criteria.dta_mm;
    let sp_e = evaluated.grid().spacing_mm();
    for a in 0..3 {
        if hi_r[a] + reach < lo_e[a] - sp_e[a] / 2.0 || lo_r[a] - reach > hi_e[a] + sp_e[a] / 2.0 {
            return Err(DoseError::InvalidGrid {
                reason: format!(
                    "the evaluated dose grid ({:?}..{:?} mm) does not overlap the reference grid ({:?}..{:?} mm) along {}",
                    lo_e[a],
                    hi_e[a],
                    lo_r[a],
                    hi_r[a],
                    ["x", "y", "z"][a]
                ),
            });
        }
    }
    let offsets = match criteria.search {
        GammaSearch::Lattice => search_offsets(criteria),
        GammaSearch::Continuous => Vec::new(),
    };
    Ok(GammaSetup {
        criteria: criteria.clone(),
        offsets,
        normalisation_gy: norm,
        cutoff_gy: criteria.cutoff_percent / 100.0 * norm,
        inv_dta2: 1.0 / (criteria.dta_mm * criteria.dta_mm),
        max_g2: criteria.max_gamma * criteria.max_gamma,
        lattice_step_mm: criteria.search_step * criteria.dta_mm,
    })
}

/// Counts and wraps a gamma array computed on the reference grid.
pub(crate) fn finish(
    reference: DoseView<'_>,
    gamma: Array3<f32>,
    setup: GammaSetup,
    backend: BackendKind,
) -> Result<GammaResult> {
    let count = |(e, p): (usize, usize), &g: &f32| {
        (e + usize::from(!g.is_nan()), p + usize::from(g <= 1.0))
    };
    let (evaluated, passed) = match gamma.as_slice_memory_order() {
        Some(d) => d
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold((0, 0), count))
            .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
        None => gamma.iter().fold((0, 0), count),
    };
    Ok(GammaResult {
        gamma: Volume::new(reference.grid().clone(), gamma)?,
        evaluated,
        passed,
        normalisation_gy: setup.normalisation_gy,
        criteria: setup.criteria,
        backend,
    })
}

/// Computes the gamma index of `evaluated` against `reference` on the
/// reference grid, on the CPU (the reference implementation; see
/// [`crate::Engine::gamma`] for the backend choice).
///
/// The doses are a [`crate::DoseGrid`] each (`&dose`) or borrowed views
/// ([`DoseView`]), read without a copy.
///
/// Errors: invalid criteria, non-finite doses, a reference without any dose
/// above zero (global normalisation), or grids that do not overlap.
pub fn gamma_index<'a>(
    reference: impl Into<DoseView<'a>>,
    evaluated: impl Into<DoseView<'a>>,
    criteria: &GammaCriteria,
) -> Result<GammaResult> {
    let (reference, evaluated) = (reference.into(), evaluated.into());
    let s = setup(reference, evaluated, criteria)?;
    let gamma = gamma_cpu(reference, evaluated, &s, &Hook::default())?;
    finish(
        reference,
        gamma,
        s,
        BackendKind::Cpu {
            threads: rayon::current_num_threads(),
        },
    )
}

/// One search: (point mm, reference dose Gy, 1/ΔD², start hint) → min γ².
type Search<'a> = Box<dyn Fn([f64; 3], f64, f64, &mut Option<[f64; 3]>) -> f64 + Sync + 'a>;

/// The search of one reference point on the CPU: the criteria's search over
/// the evaluated dose, with the reference grid's geometry and cut-off.
struct PointSearch<'a, 'r> {
    search: Search<'a>,
    s: &'a GammaSetup,
    reference: DoseView<'r>,
}

impl<'a, 'r> PointSearch<'a, 'r> {
    fn new(dose: &EvaluatedDose<'a>, s: &'a GammaSetup, reference: DoseView<'r>) -> Self {
        let search: Search<'a> = match s.criteria.search {
            GammaSearch::Continuous => {
                let cells = CellSearch::new(dose, s);
                Box::new(move |p, d, inv_dd2, hint| cells.min_gamma2(p, d, inv_dd2, hint))
            }
            GammaSearch::Lattice => {
                let lattice = LatticeSearch::new(dose, s);
                Box::new(move |p, d, inv_dd2, _| lattice.min_gamma2(p, d, inv_dd2))
            }
        };
        Self {
            search,
            s,
            reference,
        }
    }

    /// γ of the reference voxel `zyx` (dose `d_ref`): NaN below the cut-off,
    /// +∞ with no evaluated dose within reach. (The continuous search starts
    /// from `hint`, the previous point's minimum, and leaves its own there.)
    fn gamma(&self, zyx: [usize; 3], d_ref: f64, hint: &mut Option<[f64; 3]>) -> f32 {
        let (s, criteria) = (self.s, &self.s.criteria);
        if d_ref < s.cutoff_gy || (criteria.local && d_ref <= 0.0) {
            *hint = None;
            return f32::NAN;
        }
        let norm = if criteria.local {
            d_ref
        } else {
            s.normalisation_gy
        };
        let dd = criteria.dose_percent / 100.0 * norm;
        let p: Point3<f64> = self.reference.grid().index_to_world(zyx);
        let best = (self.search)([p.x, p.y, p.z], d_ref, 1.0 / (dd * dd), hint);
        if best.is_finite() {
            best.sqrt().min(criteria.max_gamma) as f32
        } else {
            f32::INFINITY
        }
    }
}

/// The evaluated dose of `evaluated` in the searches' layout (C order).
fn evaluated_dose<'a>(evaluated: DoseView<'_>, flat: &'a [f32]) -> EvaluatedDose<'a> {
    let eg = evaluated.grid();
    let sp = eg.spacing_mm();
    EvaluatedDose {
        data: flat,
        shape: eg.shape(),
        origin_mm: eg.origin_mm().coords.into(),
        spacing_mm: [sp.x, sp.y, sp.z],
    }
}

/// The CPU kernel: γ of every reference voxel.
pub(crate) fn gamma_cpu(
    reference: DoseView<'_>,
    evaluated: DoseView<'_>,
    s: &GammaSetup,
    hook: &Hook,
) -> Result<Array3<f32>> {
    let flat = evaluated.data().as_standard_layout();
    // a standard-layout array always has a slice
    let dose = evaluated_dose(evaluated, flat.as_slice().unwrap_or(&[]));
    let search = PointSearch::new(&dose, s, reference);
    let [nz, ny, nx] = reference.grid().shape();
    let mut out = vec![0f32; nz * ny * nx];
    let d_ref = reference.data().as_standard_layout();
    // a standard-layout array always has a slice
    let d_ref = d_ref.as_slice().unwrap_or(&[]);
    // row by row: rows differ less in cost than planes, which keeps the
    // threads evenly loaded
    hook.par_chunks(
        "gamma",
        &mut out,
        nx,
        || (),
        |_, row, g_row| {
            let d_row = d_ref.get(row * nx..(row + 1) * nx).unwrap_or(&[]);
            let (k, j) = (row / ny, row % ny);
            // the search's start is carried along the row only, so that γ
            // does not depend on how the rows are shared among threads
            let mut hint = None;
            for (i, (g, &d)) in g_row.iter_mut().zip(d_row).enumerate() {
                *g = search.gamma([k, j, i], f64::from(d), &mut hint);
            }
        },
    )?;
    Array3::from_shape_vec((nz, ny, nx), out).map_err(|e| DoseError::InvalidGrid {
        reason: format!("internal shape error: {e}"),
    })
}

/// γ of the reference voxels `points` ((z, y, x) indices) on the CPU, as
/// [`gamma_cpu`] computes them: for the points a GPU kernel could not finish.
pub(crate) fn gamma_cpu_at(
    reference: DoseView<'_>,
    evaluated: DoseView<'_>,
    s: &GammaSetup,
    points: &[[usize; 3]],
) -> Vec<f32> {
    let flat = evaluated.data().as_standard_layout();
    let dose = evaluated_dose(evaluated, flat.as_slice().unwrap_or(&[]));
    let search = PointSearch::new(&dose, s, reference);
    let d_ref = reference.data();
    points
        .par_iter()
        .map(|&[k, j, i]| search.gamma([k, j, i], f64::from(d_ref[[k, j, i]]), &mut None))
        .collect()
}
