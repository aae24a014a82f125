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
//! **Search.** Offsets **r** on a cubic lattice of step `search_step` × Δd,
//! inside the sphere of radius `max_gamma` × Δd, are visited in increasing
//! |**r**|; since γ ≥ |**r**|/Δd the search stops as soon as |**r**|/Δd reaches
//! the smallest γ found (the result is the exact lattice minimum, not an
//! early guess). The lattice minimum is then refined off the lattice by
//! Gauss-Newton steps (exact in one step where the evaluated dose is linear)
//! and a pattern search (26 neighbours, step halved down to 1/8 of the
//! lattice step), which removes the lattice error in steep gradients. γ is capped at
//! `max_gamma`: a stored value of `max_gamma` means "at least `max_gamma`".
//!
//! **Points that are not evaluated.** Reference points below the low-dose
//! cut-off (`cutoff_percent` % of the normalisation dose) are excluded (NaN
//! in the gamma volume). A reference point where no search position lies
//! inside the evaluated grid fails (γ = +∞): missing evaluated dose is never a
//! pass. In local mode, reference points with zero dose are excluded.

use nalgebra::Point3;
use ndarray::Array3;

use crate::engine::BackendKind;
use crate::engine::progress::Hook;
use crate::error::{DoseError, Result};
use crate::grid::{DoseGrid, Volume};

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
    /// Lattice step of the search, as a fraction of the DTA (0.1 = Δd/10).
    pub search_step: f64,
    /// Global normalisation dose, Gy; `None` = the maximum reference dose.
    pub normalisation_gy: Option<f64>,
}

impl GammaCriteria {
    /// Criteria `dose_percent` %/`dta_mm` mm, global, with a 10 % low-dose
    /// cut-off, γ searched up to 2, lattice step Δd/10.
    pub fn new(dose_percent: f64, dta_mm: f64) -> Self {
        Self {
            dose_percent,
            dta_mm,
            cutoff_percent: 10.0,
            local: false,
            max_gamma: 2.0,
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

/// One search offset: displacement in mm (x, y, z) and its squared length
/// over Δd².
#[derive(Clone, Copy, Debug)]
pub(crate) struct Offset {
    pub(crate) r_mm: [f64; 3],
    pub(crate) dist2: f64,
}

/// Lattice offsets within the sphere of radius `max_gamma`·Δd, sorted by length.
fn search_offsets(c: &GammaCriteria) -> Vec<Offset> {
    let step = c.search_step * c.dta_mm;
    let n = (c.max_gamma / c.search_step).ceil() as i64;
    let limit2 = c.max_gamma * c.max_gamma;
    let mut out = Vec::new();
    for k in -n..=n {
        for j in -n..=n {
            for i in -n..=n {
                let r = [i as f64 * step, j as f64 * step, k as f64 * step];
                let dist2 = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]) / (c.dta_mm * c.dta_mm);
                if dist2 <= limit2 {
                    out.push(Offset { r_mm: r, dist2 });
                }
            }
        }
    }
    out.sort_by(|a, b| a.dist2.total_cmp(&b.dist2));
    out
}

/// Trilinear sampling of the evaluated dose in its continuous voxel
/// coordinates; `None` outside the box of its outer voxel centres (extended
/// by half a voxel, value held constant there, as [`Volume::sample_trilinear`]).
struct Sampler<'a> {
    /// The evaluated dose in C order (z, y, x).
    data: &'a [f32],
    shape: [usize; 3],
    inv_spacing: [f64; 3],
    origin: [f64; 3],
}

impl Sampler<'_> {
    #[inline]
    fn at(&self, p_mm: [f64; 3]) -> Option<f64> {
        let [nz, ny, nx] = self.shape;
        #[inline]
        fn axis(v: f64, n: usize) -> Option<(usize, usize, f64)> {
            if !(v >= -0.5 && v <= n as f64 - 0.5) {
                return None;
            }
            let v = v.clamp(0.0, (n - 1) as f64);
            let lo = v as usize;
            let hi = (lo + 1).min(n - 1);
            Some((lo, hi, v - lo as f64))
        }
        let (x0, x1, fx) = axis((p_mm[0] - self.origin[0]) * self.inv_spacing[0], nx)?;
        let (y0, y1, fy) = axis((p_mm[1] - self.origin[1]) * self.inv_spacing[1], ny)?;
        let (z0, z1, fz) = axis((p_mm[2] - self.origin[2]) * self.inv_spacing[2], nz)?;
        let d = self.data;
        let (r00, r01) = ((z0 * ny + y0) * nx, (z0 * ny + y1) * nx);
        let (r10, r11) = ((z1 * ny + y0) * nx, (z1 * ny + y1) * nx);
        let v = |row: usize, i: usize| f64::from(d[row + i]);
        let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
        let c00 = lerp(v(r00, x0), v(r00, x1), fx);
        let c01 = lerp(v(r01, x0), v(r01, x1), fx);
        let c10 = lerp(v(r10, x0), v(r10, x1), fx);
        let c11 = lerp(v(r11, x0), v(r11, x1), fx);
        Some(lerp(lerp(c00, c01, fy), lerp(c10, c11, fy), fz))
    }
}

/// γ² at offset `r` (mm) from `p`, or `None` when the evaluated dose is absent.
#[inline]
fn gamma2_at(
    s: &Sampler<'_>,
    p: [f64; 3],
    r: [f64; 3],
    d_ref: f64,
    inv_dd2: f64,
    inv_dta2: f64,
) -> Option<f64> {
    let de = s.at([p[0] + r[0], p[1] + r[1], p[2] + r[2]])?;
    let diff = de - d_ref;
    Some((r[0] * r[0] + r[1] * r[1] + r[2] * r[2]) * inv_dta2 + diff * diff * inv_dd2)
}

/// What the CPU and GPU paths share: the validated criteria and the numbers
/// derived from them.
#[derive(Debug)]
pub(crate) struct GammaSetup {
    pub(crate) criteria: GammaCriteria,
    pub(crate) offsets: Vec<Offset>,
    pub(crate) normalisation_gy: f64,
    pub(crate) cutoff_gy: f64,
    pub(crate) inv_dta2: f64,
    pub(crate) max_g2: f64,
    pub(crate) lattice_step_mm: f64,
}

/// An upper bound of the evaluated dose's gradient magnitude (Gy/mm) around
/// any point, for pruning the lattice search.
///
/// In a cell of the trilinear interpolant, ∂D/∂x is an average of the cell's
/// four x-edge differences / sx, so |∇D| ≤ √(Σ_axes (max edge difference /
/// spacing)²); beyond the outer centres the dose is constant. The cell bounds
/// are max-filtered over a box of `reach_mm`, so the bound looked up at p
/// holds on every segment from p within the search sphere, and
/// |D_e(p + r) − D_e(p)| ≤ L·|r| there.
struct GradientBound {
    /// Max-filtered cell bounds, indexed like the evaluated grid (cell with
    /// lower corner [k, j, i]).
    cells: Vec<f64>,
}

impl GradientBound {
    fn new(s: &Sampler<'_>, spacing: [f64; 3], reach_mm: f64) -> Self {
        let [nz, ny, nx] = s.shape;
        let d = s.data;
        let idx = |k: usize, j: usize, i: usize| (k * ny + j) * nx + i;
        let mut cells = vec![0.0f64; d.len()];
        for k in 0..nz {
            let k1 = (k + 1).min(nz - 1);
            for j in 0..ny {
                let j1 = (j + 1).min(ny - 1);
                for i in 0..nx {
                    let i1 = (i + 1).min(nx - 1);
                    let v = |k: usize, j: usize, i: usize| f64::from(d[idx(k, j, i)]);
                    let mut m = [0.0f64; 3];
                    for (kk, jj) in [(k, j), (k, j1), (k1, j), (k1, j1)] {
                        m[0] = m[0].max((v(kk, jj, i1) - v(kk, jj, i)).abs());
                    }
                    for (kk, ii) in [(k, i), (k, i1), (k1, i), (k1, i1)] {
                        m[1] = m[1].max((v(kk, j1, ii) - v(kk, j, ii)).abs());
                    }
                    for (jj, ii) in [(j, i), (j, i1), (j1, i), (j1, i1)] {
                        m[2] = m[2].max((v(k1, jj, ii) - v(k, jj, ii)).abs());
                    }
                    let g = (0..3).map(|a| (m[a] / spacing[a]).powi(2)).sum::<f64>();
                    cells[idx(k, j, i)] = g.sqrt();
                }
            }
        }
        // separable max filter: radius in cells along each axis
        let radius = [0, 1, 2].map(|a| (reach_mm / spacing[a]).ceil() as usize + 1);
        let dims = [nx, ny, nz];
        let stride = [1, nx, nx * ny];
        for a in 0..3 {
            let (n, st, r) = (dims[a], stride[a], radius[a]);
            let src = cells.clone();
            for (start, value) in cells.iter_mut().enumerate() {
                let pos = (start / st) % n;
                let lo = pos.saturating_sub(r);
                let hi = (pos + r).min(n - 1);
                let base = start - pos * st;
                *value = (lo..=hi).map(|q| src[base + q * st]).fold(0.0, f64::max);
            }
        }
        // a relative margin for rounding in the interpolation
        cells
            .iter_mut()
            .for_each(|c| *c = *c * (1.0 + 1e-9) + 1e-12);
        Self { cells }
    }

    /// The bound around `p_mm` (the cell containing it, clamped to the grid).
    fn at(&self, s: &Sampler<'_>, p_mm: [f64; 3]) -> f64 {
        let [nz, ny, nx] = s.shape;
        let c = |a: usize, n: usize| {
            let v = (p_mm[a] - s.origin[a]) * s.inv_spacing[a];
            v.clamp(0.0, (n - 1) as f64) as usize
        };
        self.cells[(c(2, nz) * ny + c(1, ny)) * nx + c(0, nx)]
    }
}

/// Gauss-Newton iterations of the off-lattice refinement, and halvings of a
/// step that does not lower γ².
pub(crate) const GN_ITERATIONS: u32 = 8;
pub(crate) const GN_HALVINGS: u32 = 4;
/// Central-difference step of the evaluated-dose gradient, as a fraction of
/// the evaluated grid's spacing.
pub(crate) const FD_STEP: f64 = 0.05;

/// Gauss-Newton minimisation of γ²(r) = |r|²/Δd² + (D_e(p + r) − D_r)²/ΔD²
/// from `r` (γ² = `g2` there). With f = D_e − D_r and g = ∇D_e (central
/// differences), the linearised problem min |r + δ|²/a² + (f + g·δ)²/b² has
/// the solution δ = −a² (v − g a² (g·v)/(b² + a²|g|²)), v = r/a² + g f/b²
/// (Sherman-Morrison); a step is kept only if it lowers γ², else halved.
/// Exact in one step where the evaluated dose is linear; it follows narrow
/// valleys (steep gradients, tight criteria) that a pattern search crawls along.
#[allow(clippy::too_many_arguments)]
fn gauss_newton(
    s: &Sampler<'_>,
    p: [f64; 3],
    mut r: [f64; 3],
    mut g2: f64,
    d_ref: f64,
    inv_dd2: f64,
    inv_dta2: f64,
    fd_mm: [f64; 3],
) -> (f64, [f64; 3]) {
    let (a2, b2) = (1.0 / inv_dta2, 1.0 / inv_dd2);
    for _ in 0..GN_ITERATIONS {
        let at = |r: [f64; 3]| s.at([p[0] + r[0], p[1] + r[1], p[2] + r[2]]);
        let Some(de) = at(r) else { break };
        let f = de - d_ref;
        let mut g = [0.0; 3];
        for a in 0..3 {
            let (mut rp, mut rm) = (r, r);
            rp[a] += fd_mm[a];
            rm[a] -= fd_mm[a];
            if let (Some(u), Some(w)) = (at(rp), at(rm)) {
                g[a] = (u - w) / (2.0 * fd_mm[a]);
            }
        }
        let v = [0, 1, 2].map(|a| r[a] * inv_dta2 + g[a] * f * inv_dd2);
        let gg = g[0] * g[0] + g[1] * g[1] + g[2] * g[2];
        let gv = g[0] * v[0] + g[1] * v[1] + g[2] * v[2];
        let c = a2 * gv / (b2 + a2 * gg);
        let delta = [0, 1, 2].map(|a| -a2 * (v[a] - g[a] * c));
        let mut t = 1.0;
        let mut moved = false;
        for _ in 0..GN_HALVINGS {
            let rn = [0, 1, 2].map(|a| r[a] + t * delta[a]);
            t *= 0.5;
            // γ² ≥ |r|²/Δd²: positions that far cannot improve
            if (rn[0] * rn[0] + rn[1] * rn[1] + rn[2] * rn[2]) * inv_dta2 >= g2 {
                continue;
            }
            if let Some(gn) = gamma2_at(s, p, rn, d_ref, inv_dd2, inv_dta2)
                && gn < g2
            {
                g2 = gn;
                r = rn;
                moved = true;
                break;
            }
        }
        if !moved {
            break;
        }
    }
    (g2, r)
}

/// Levels of the off-lattice pattern search (step halved each level, from
/// half the lattice step) and moves per level.
pub(crate) const REFINE_LEVELS: u32 = 3;
pub(crate) const REFINE_MOVES: u32 = 4;

impl GammaSetup {
    /// Largest displacement the search can sample, mm: a kept position has
    /// γ below `max_gamma`, so |r| < max_gamma·Δd; trial positions (one
    /// Gauss-Newton step or pattern move beyond, and the finite-difference
    /// stencil) stay within another max_gamma·Δd.
    pub(crate) fn reach_mm(&self) -> f64 {
        2.0 * self.criteria.max_gamma * self.criteria.dta_mm + 1.0
    }
}

/// Validates the criteria and the doses and derives the search.
pub(crate) fn setup(
    reference: &DoseGrid,
    evaluated: &DoseGrid,
    criteria: &GammaCriteria,
) -> Result<GammaSetup> {
    criteria.validate()?;
    for (what, v) in [("reference", reference), ("evaluated", evaluated)] {
        if let Some(bad) = v.data().iter().find(|d| !d.is_finite()) {
            return Err(DoseError::NonFinite {
                field: format!("{what} dose (Gy)"),
                value: f64::from(*bad),
            });
        }
    }
    let max_ref = reference
        .data()
        .iter()
        .fold(0.0f64, |m, &d| m.max(f64::from(d)));
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
    Ok(GammaSetup {
        criteria: criteria.clone(),
        offsets: search_offsets(criteria),
        normalisation_gy: norm,
        cutoff_gy: criteria.cutoff_percent / 100.0 * norm,
        inv_dta2: 1.0 / (criteria.dta_mm * criteria.dta_mm),
        max_g2: criteria.max_gamma * criteria.max_gamma,
        lattice_step_mm: criteria.search_step * criteria.dta_mm,
    })
}

/// Counts and wraps a gamma array computed on the reference grid.
pub(crate) fn finish(
    reference: &DoseGrid,
    gamma: Array3<f32>,
    setup: GammaSetup,
    backend: BackendKind,
) -> Result<GammaResult> {
    let evaluated = gamma.iter().filter(|g| !g.is_nan()).count();
    let passed = gamma.iter().filter(|&&g| g <= 1.0).count();
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
/// Errors: invalid criteria, non-finite doses, a reference without any dose
/// above zero (global normalisation), or grids that do not overlap.
pub fn gamma_index(
    reference: &DoseGrid,
    evaluated: &DoseGrid,
    criteria: &GammaCriteria,
) -> Result<GammaResult> {
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

/// The CPU kernel: γ of every reference voxel.
pub(crate) fn gamma_cpu(
    reference: &DoseGrid,
    evaluated: &DoseGrid,
    s: &GammaSetup,
    hook: &Hook,
) -> Result<Array3<f32>> {
    let criteria = &s.criteria;
    let offsets = &s.offsets;
    let sp_e = evaluated.grid().spacing_mm();
    let flat = evaluated.data().as_standard_layout();
    let sampler = Sampler {
        // a standard-layout array always has a slice
        data: flat.as_slice().unwrap_or(&[]),
        shape: evaluated.grid().shape(),
        inv_spacing: [1.0 / sp_e.x, 1.0 / sp_e.y, 1.0 / sp_e.z],
        origin: evaluated.grid().origin_mm().coords.into(),
    };
    let (norm, cutoff, inv_dta2, max_g2, lattice_step) = (
        s.normalisation_gy,
        s.cutoff_gy,
        s.inv_dta2,
        s.max_g2,
        s.lattice_step_mm,
    );
    let rgrid = reference.grid();
    let fd_mm = [FD_STEP * sp_e.x, FD_STEP * sp_e.y, FD_STEP * sp_e.z];
    let bound = GradientBound::new(
        &sampler,
        [sp_e.x, sp_e.y, sp_e.z],
        criteria.max_gamma * criteria.dta_mm,
    );
    let (a2, inv_a) = (1.0 / inv_dta2, inv_dta2.sqrt());
    let point_gamma = |zyx: [usize; 3], d_ref: f64| -> f32 {
        if d_ref < cutoff || (criteria.local && d_ref <= 0.0) {
            return f32::NAN;
        }
        let dd = criteria.dose_percent / 100.0 * if criteria.local { d_ref } else { norm };
        let inv_dd2 = 1.0 / (dd * dd);
        let p: Point3<f64> = rgrid.index_to_world(zyx);
        let p = [p.x, p.y, p.z];
        let mut best = f64::INFINITY;
        let mut best_r = [0.0; 3];
        // lower bound of γ² beyond |r| = t from the gradient bound L around p
        // and f0 = |D_e(p) − D_r|: γ² ≥ t²/a² + max(0, f0 − L t)²/b², convex
        // in t with its minimum at t* = L f0 a²/(b² + L² a²)
        let b2 = 1.0 / inv_dd2;
        let lb = sampler.at(p).map(|de| {
            let f0 = (de - d_ref).abs();
            let l = bound.at(&sampler, p);
            let t_star = l * f0 * a2 / (b2 + l * l * a2);
            (f0, l, t_star)
        });
        for o in offsets {
            if o.dist2 >= best || o.dist2 > max_g2 {
                break;
            }
            if let Some((f0, l, t_star)) = lb {
                let t = (o.dist2.sqrt() / inv_a).max(t_star);
                let rest = (f0 - l * t).max(0.0);
                if t * t * inv_dta2 + rest * rest * inv_dd2 >= best {
                    break;
                }
            }
            if let Some(g2) = gamma2_at(&sampler, p, o.r_mm, d_ref, inv_dd2, inv_dta2)
                && g2 < best
            {
                best = g2;
                best_r = o.r_mm;
            }
        }
        if !best.is_finite() {
            return f32::INFINITY;
        }
        // the bound's global minimum (at t*): no position can beat it, so a
        // lattice minimum that reaches it needs no refinement
        let proven = lb.is_some_and(|(f0, l, t)| {
            let rest = (f0 - l * t).max(0.0);
            best <= (t * t * inv_dta2 + rest * rest * inv_dd2) * (1.0 + 1e-12)
        });
        // Gauss-Newton, then a pattern search, off the lattice from the best
        // lattice offset
        if best > 0.0 && best < max_g2 && !proven {
            let (g2, r) = gauss_newton(&sampler, p, best_r, best, d_ref, inv_dd2, inv_dta2, fd_mm);
            best = g2;
            best_r = r;
            let mut h = lattice_step / 2.0;
            for _level in 0..REFINE_LEVELS {
                for _iter in 0..REFINE_MOVES {
                    let mut moved = false;
                    for dz in -1i32..=1 {
                        for dy in -1i32..=1 {
                            for dx in -1i32..=1 {
                                if dx == 0 && dy == 0 && dz == 0 {
                                    continue;
                                }
                                let r = [
                                    best_r[0] + f64::from(dx) * h,
                                    best_r[1] + f64::from(dy) * h,
                                    best_r[2] + f64::from(dz) * h,
                                ];
                                if let Some(g2) =
                                    gamma2_at(&sampler, p, r, d_ref, inv_dd2, inv_dta2)
                                    && g2 < best
                                {
                                    best = g2;
                                    best_r = r;
                                    moved = true;
                                }
                            }
                        }
                    }
                    if !moved {
                        break;
                    }
                }
                h /= 2.0;
            }
        }
        best.sqrt().min(criteria.max_gamma) as f32
    };

    let [nz, ny, nx] = rgrid.shape();
    let mut out = vec![0f32; nz * ny * nx];
    let d_ref = reference.data();
    hook.par_chunks(
        "gamma",
        &mut out,
        ny * nx,
        || (),
        |_, k, g_slice| {
            for (n, g) in g_slice.iter_mut().enumerate() {
                let (j, i) = (n / nx, n % nx);
                *g = point_gamma([k, j, i], f64::from(d_ref[[k, j, i]]));
            }
        },
    )?;
    Array3::from_shape_vec((nz, ny, nx), out).map_err(|e| DoseError::InvalidGrid {
        reason: format!("internal shape error: {e}"),
    })
}
