//! The lattice search of γ: offsets on a cubic lattice of step
//! `search_step` × Δd, visited in increasing length, then refined off the
//! lattice (Gauss-Newton steps and a pattern search).
//!
//! This is the search of most gamma tools (pymedphys' `interp_fraction` is
//! 1 / `search_step`): the lattice minimum is exact for the lattice (the walk
//! stops only when |r|/Δd, or a lower bound from the evaluated dose's local
//! gradient, proves that no farther offset can do better), and the
//! refinement removes most of the lattice error in steep gradients.

use super::{EvaluatedDose, GammaCriteria, GammaSetup};

/// One search offset: displacement in mm (x, y, z) and its squared length
/// over Δd².
#[derive(Clone, Copy, Debug)]
pub(crate) struct Offset {
    pub(crate) r_mm: [f64; 3],
    pub(crate) dist2: f64,
}

/// Lattice offsets within the sphere of radius `max_gamma`·Δd, sorted by length.
pub(crate) fn search_offsets(c: &GammaCriteria) -> Vec<Offset> {
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

/// The lattice search over one evaluated dose.
pub(crate) struct LatticeSearch<'a> {
    sampler: Sampler<'a>,
    bound: GradientBound,
    offsets: &'a [Offset],
    fd_mm: [f64; 3],
    inv_dta2: f64,
    max_g2: f64,
    lattice_step: f64,
}

impl<'a> LatticeSearch<'a> {
    /// The search over the evaluated dose `e`.
    pub(crate) fn new(e: &EvaluatedDose<'a>, s: &'a GammaSetup) -> Self {
        let (data, shape, origin_mm, spacing_mm) = (e.data, e.shape, e.origin_mm, e.spacing_mm);
        let sampler = Sampler {
            data,
            shape,
            inv_spacing: spacing_mm.map(|v| 1.0 / v),
            origin: origin_mm,
        };
        let c = &s.criteria;
        let bound = GradientBound::new(&sampler, spacing_mm, c.max_gamma * c.dta_mm);
        Self {
            sampler,
            bound,
            offsets: &s.offsets,
            fd_mm: spacing_mm.map(|v| FD_STEP * v),
            inv_dta2: s.inv_dta2,
            max_g2: s.max_g2,
            lattice_step: s.lattice_step_mm,
        }
    }

    /// The smallest γ² found around `p` (mm) for a reference dose `d_ref`
    /// and 1/ΔD² `inv_dd2`; +∞ when no search position lies inside the
    /// evaluated grid.
    pub(crate) fn min_gamma2(&self, p: [f64; 3], d_ref: f64, inv_dd2: f64) -> f64 {
        let (sampler, bound, offsets) = (&self.sampler, &self.bound, self.offsets);
        let (inv_dta2, max_g2, lattice_step, fd_mm) =
            (self.inv_dta2, self.max_g2, self.lattice_step, self.fd_mm);
        let (a2, inv_a) = (1.0 / inv_dta2, inv_dta2.sqrt());
        let mut best = f64::INFINITY;
        let mut best_r = [0.0; 3];
        // lower bound of γ² beyond |r| = t from the gradient bound L around p
        // and f0 = |D_e(p) − D_r|: γ² ≥ t²/a² + max(0, f0 − L t)²/b², convex
        // in t with its minimum at t* = L f0 a²/(b² + L² a²)
        let b2 = 1.0 / inv_dd2;
        let lb = sampler.at(p).map(|de| {
            let f0 = (de - d_ref).abs();
            let l = bound.at(sampler, p);
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
            if let Some(g2) = gamma2_at(sampler, p, o.r_mm, d_ref, inv_dd2, inv_dta2)
                && g2 < best
            {
                best = g2;
                best_r = o.r_mm;
            }
        }
        if !best.is_finite() {
            return f64::INFINITY;
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
            let (g2, r) = gauss_newton(sampler, p, best_r, best, d_ref, inv_dd2, inv_dta2, fd_mm);
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
                                if let Some(g2) = gamma2_at(sampler, p, r, d_ref, inv_dd2, inv_dta2)
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
        best
    }
}
