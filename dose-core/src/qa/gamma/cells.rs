//! The continuous search of γ: the minimum of
//! γ²(**r**) = |**r**|²/Δd² + (D_e(**p** + **r**) − D_r)²/ΔD² over the
//! trilinear interpolant of the evaluated dose, cell by cell.
//!
//! Inside one cell of the evaluated grid (the box between eight neighbouring
//! voxel centres) D_e is the trilinear function of its corner values, and
//! γ² is the squared distance, in the space (x/Δd, y/Δd, z/Δd, D/ΔD), from
//! the reference point to the graph of that function: the geometric view of
//! Ju, Simpson, Deasy and Low (Med Phys 35, 879 (2008)), here on the
//! trilinear interpolant itself rather than on a simplex decomposition.
//!
//! **Which cells.** A multilinear function takes its extremes over a box at
//! the box's corners, so for a cell at distance d from **p** whose corner
//! doses span [D_min, D_max],
//!
//! γ² ≥ d²/Δd² + gap²/ΔD², gap = max(0, D_min − D_r, D_r − D_max).
//!
//! A first descent walks from cell to cell to the nearest minimum; then the
//! cells within √γ²_best × Δd of **p** (a box of cells) are visited, and a
//! cell is skipped when its bound reaches the smallest γ found. Only cells
//! that can hold a smaller γ are minimised.
//!
//! **Inside a cell.** Projected Gauss-Newton on the cell's box, from the
//! point of the box nearest **p**: with t the position in the cell (voxel
//! units), w_a = s_a²/Δd², β = 1/ΔD², f = D_e − D_r and G = w∘(t − t_p) +
//! β f ∇D_e, the step solves (diag(w) + β ∇D_e ∇D_eᵀ) δ = −G over the
//! coordinates not held at a face (Sherman-Morrison), is clipped to the box
//! and kept only if it lowers γ² (else halved). D_e's value and gradient are
//! the trilinear formula's own, not finite differences; where D_e is linear
//! the first step is exact.
//!
//! **Beyond the outer voxel centres** the evaluated dose is held constant for
//! half a voxel, as [`crate::grid::Volume::sample_trilinear`] does: the outer
//! cells are half cells with repeated corner values.

use super::{EvaluatedDose, GammaSetup};

/// Gauss-Newton iterations per cell, and halvings of a step that does not
/// lower γ².
const CELL_ITERATIONS: u32 = 20;
const CELL_HALVINGS: u32 = 8;

/// The continuous search over one evaluated dose.
pub(crate) struct CellSearch<'a> {
    /// The evaluated dose in C order (z, y, x).
    data: &'a [f32],
    /// nx, ny, nz.
    n: [usize; 3],
    origin: [f64; 3],
    inv_spacing: [f64; 3],
    /// s_a² / Δd²: the weight of a voxel step along each axis in γ².
    w: [f64; 3],
    /// 1/w_a.
    inv_w: [f64; 3],
    /// 1/√w_a.
    isw: [f64; 3],
    /// s_a², mm².
    spacing2_mm2: [f64; 3],
    inv_dta2: f64,
    reach2_mm2: f64,
    /// Half-width (voxels, per axis) at which the branch and bound stops
    /// splitting: half the search resolution `search_step` × Δd.
    box_min: [f64; 3],
}

/// Most boxes the branch and bound visits in one cell (a safety net: boxes
/// of the search resolution are reached long before).
const BOX_VISITS: u32 = 1 << 16;

/// A cell's box (lo, hi), the point t_p in its coordinates and the squared
/// distance (mm²) from the point to the box.
type Placed = ([f64; 3], [f64; 3], [f64; 3], f64);

/// Most cells the first, walking descent visits.
const WALK: usize = 4;

/// Non-convex cells held back for the branch and bound of one point.
const PENDING: usize = 16;

/// `[f(0), f(1), f(2)]`, inlined (an array `map` in these hot loops is
/// not).
#[inline(always)]
fn axes<T>(mut f: impl FnMut(usize) -> T) -> [T; 3] {
    [f(0), f(1), f(2)]
}

/// How far `d` lies outside the dose range [lo, hi] (0 inside it): the
/// smallest |D_e − D_r| over a box whose doses span that range.
#[inline]
fn gap_to([lo, hi]: [f64; 2], d: f64) -> f64 {
    (lo - d).max(d - hi).max(0.0)
}

/// Lower bounds within this fraction of the best γ² count as reaching it
/// (γ to 5 × 10⁻⁷ relative) ...
const CERTIFY_TOL: f64 = 1e-6;

/// ... or within this much of the best γ (absolute), which matters for
/// small γ: a γ of 0.02 is then certain to 10⁻⁶, not to 10⁻⁸.
const CERTIFY_GAMMA: f64 = 1e-6;

/// The γ² that a lower bound must reach for a region to hold nothing
/// better than `g2` (see [`CERTIFY_TOL`] and [`CERTIFY_GAMMA`]).
#[inline]
fn certify_level(g2: f64) -> f64 {
    g2 - (CERTIFY_TOL * g2).max(2.0 * CERTIFY_GAMMA * g2.sqrt())
}

/// An upper bound (to a relative 1e-9) of the spectral norm of the
/// symmetric matrix [[0, a, b], [a, 0, c], [b, c, 0]]: its eigenvalues are
/// the roots of λ³ − pλ − q (p = a² + b² + c², q = 2abc), real and summing
/// to zero, so the largest in magnitude is the largest root of
/// λ³ − pλ − |q|. Newton's method from 2√(p/3), which lies above that root
/// (the three roots are real, so |q| ≤ 2 (p/3)^{3/2}), stays above it (the
/// cubic is convex and increasing there).
fn zero_diagonal_norm(a: f64, b: f64, c: f64) -> f64 {
    let p = a * a + b * b + c * c;
    if p == 0.0 {
        return 0.0;
    }
    let q = 2.0 * (a * b * c).abs();
    let mut x = 2.0 * (p / 3.0).sqrt();
    for _ in 0..4 {
        let slope = 3.0 * x * x - p;
        if slope <= 0.0 {
            break;
        }
        x -= (x * (x * x - p) - q) / slope;
    }
    x * (1.0 + 1e-9)
}

/// What [`Cell::convex_on`] proves on a box.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Convexity {
    /// γ² itself is convex there: a descent reaches its minimum.
    Gamma2,
    /// Only the lower bound Ĝ ≤ γ² with the dose term capped at φ₀ is
    /// convex there (see [`Cell::convex_on`]): its tangent plane bounds γ²
    /// from below, but a descent of γ² proves nothing.
    Capped,
    /// Neither is proven.
    Unknown,
}

/// The smallest γ² found for one point, and where.
struct Best {
    g2: f64,
    /// Continuous voxel coordinates (x, y, z) of that position.
    q: [f64; 3],
}

impl Best {
    /// Keeps γ² `g2` at `t` in cell `c` if it is the smallest so far.
    #[inline]
    fn offer(&mut self, g2: f64, c: [i64; 3], t: [f64; 3]) {
        if g2 < self.g2 {
            self.g2 = g2;
            self.q = axes(|a| c[a] as f64 + t[a]);
        }
    }
}

/// γ²(t) = Σ w_a (t_a − t_p,a)² + β (D_e(t) − d_ref)² in one cell.
struct Objective<'c> {
    cell: &'c Cell,
    tp: [f64; 3],
    d_ref: f64,
    beta: f64,
    w: [f64; 3],
}

impl Objective<'_> {
    /// γ²(t), D_e(t) − d_ref and ∇D_e(t).
    #[inline(always)]
    fn at(&self, t: [f64; 3]) -> (f64, f64, [f64; 3]) {
        let (v, g) = self.cell.value_grad(t);
        let f = v - self.d_ref;
        let w = self.w;
        let tp = self.tp;
        let dist = w[0] * (t[0] - tp[0]).powi(2)
            + w[1] * (t[1] - tp[1]).powi(2)
            + w[2] * (t[2] - tp[2]).powi(2);
        (dist + self.beta * f * f, f, g)
    }
}

/// What [`Cell::convex_on`] derives about a box of a cell for its tests.
#[derive(Clone, Copy)]
struct Curvature {
    /// [`Cell::mixed`].
    mixed: [f64; 4],
    /// Centre and half-widths of the box.
    centre: [f64; 3],
    half: [f64; 3],
    /// ∂²D_e/∂x∂y, ∂x∂z, ∂y∂z at the centre.
    at_centre: [f64; 3],
    /// The scaled Hessian Ĥ at the centre.
    scaled: [[f64; 3]; 3],
    /// ‖Ĥ‖_F² at the centre.
    frob2: f64,
    /// Spectral bound of Ĥ's change over the box.
    margin: f64,
}

/// One cell's trilinear dose: corner values indexed dx + 2 dy + 4 dz.
#[derive(Clone, Copy)]
struct Cell([f64; 8]);

impl Cell {
    /// The mixed coefficients of D_e = … + c_xy xy + c_xz xz + c_yz yz +
    /// c_xyz xyz (cell coordinates): [c_xy, c_xz, c_yz, c_xyz].
    fn mixed(&self) -> [f64; 4] {
        let v = &self.0;
        [
            v[0] - v[1] - v[2] + v[3],
            v[0] - v[1] - v[4] + v[5],
            v[0] - v[2] - v[4] + v[6],
            -v[0] + v[1] + v[2] - v[3] + v[4] - v[5] - v[6] + v[7],
        ]
    }

    /// Whether γ²(t) = Σ w_a (t_a − t_p,a)² + β (D_e(t) − d_ref)² is convex
    /// on the box [l, u] of the cell whose corner doses span [dmin, dmax],
    /// so that a descent reaches its minimum there.
    ///
    /// In coordinates scaled by √w_a the Hessian / 2 is
    /// M = I + β (ĝ ĝᵀ + f Ĥ), with ĝ the scaled gradient of D_e, Ĥ its
    /// (mixed-only) scaled Hessian and f = D_e − d_ref, |f| ≤ φ on the box.
    /// The ĝ ĝᵀ term makes M positive along the gradient, so only the part
    /// of Ĥ across the gradient has to be small: with u = ĝ(c)/|ĝ(c)| at the
    /// box centre c, e ≥ |ĝ(t) − ĝ(c)| and κ∥ ≥ |uᵀĤu|, κ× ≥ |Ĥu − (uᵀĤu) u|,
    /// κ⊥ ≥ ‖Ĥ restricted to u⊥‖ on the box (values at c plus a margin
    /// m ≥ ‖Ĥ(t) − Ĥ(c)‖₂), a unit v = α u + v⊥ gives
    ///
    /// vᵀMv ≥ P + Q α² − 2 R |α|, P = 1 − βφκ⊥, Q = β (|ĝ(c)|² − φκ∥),
    /// R = β (e |ĝ(c)| + φκ×),
    ///
    /// (using (x − e)₊² ≥ x² − 2ex), and M ⪰ 0 when that quadratic is ≥ 0
    /// on [0, 1]. The norms are spectral: Ĥ has a zero diagonal, so its
    /// eigenvalues solve λ³ − pλ − q = 0 ([`zero_diagonal_norm`]), the
    /// restriction to u⊥ has trace −uᵀĤu (its two eigenvalues follow from
    /// trace and Frobenius norm), and ‖·‖₂ ≤ √(2/3) ‖·‖_F for the change.
    /// `centre_gradient`: ∇D_e at the box centre, if the caller has it.
    ///
    /// **Capped.** A position can beat the best value B only where
    /// β f² < B, |f| < φ₀ = √(B/β). With the Huber function
    /// H(f) = f² for |f| ≤ φ₀ and 2φ₀|f| − φ₀² beyond (H ≤ f², convex, C¹),
    /// Ĝ = Σ w_a (t_a − t_p,a)² + β H(f) ≤ γ², equal to γ² wherever |f| ≤ φ₀,
    /// and its Hessian / 2 is ⪰ I + β clamp(f, ±φ₀) Ĥ: Ĝ is convex on the box
    /// when β min(φ, φ₀) ‖Ĥ‖₂ ≤ 1, however far the box's doses stray from
    /// D_r. `phi0`: φ₀ (+∞ while nothing is found).
    #[allow(clippy::too_many_arguments)]
    fn convex_on(
        &self,
        [l, u]: [[f64; 3]; 2],
        [dmin, dmax]: [f64; 2],
        d_ref: f64,
        beta: f64,
        isw: [f64; 3],
        centre_gradient: Option<[f64; 3]>,
        phi0: f64,
    ) -> Convexity {
        let m = self.mixed();
        let phi = (dmax - d_ref).abs().max((dmin - d_ref).abs());
        let c = axes(|a| 0.5 * (l[a] + u[a]));
        let h = axes(|a| 0.5 * (u[a] - l[a]));
        // mixed partials at c: (x, y), (x, z), (y, z)
        let txy = m[0] + m[3] * c[2];
        let txz = m[1] + m[3] * c[1];
        let tyz = m[2] + m[3] * c[0];
        // scaled Hessian at c, and the bound of its change over the box
        let hs = [
            [0.0, txy * (isw[0] * isw[1]), txz * (isw[0] * isw[2])],
            [txy * (isw[0] * isw[1]), 0.0, tyz * (isw[1] * isw[2])],
            [txz * (isw[0] * isw[2]), tyz * (isw[1] * isw[2]), 0.0],
        ];
        let margin = (4.0 / 3.0
            * ((m[3] * h[2] * isw[0] * isw[1]).powi(2)
                + (m[3] * h[1] * isw[0] * isw[2]).powi(2)
                + (m[3] * h[0] * isw[1] * isw[2]).powi(2)))
        .sqrt();
        let frob2 = 2.0 * (hs[0][1].powi(2) + hs[0][2].powi(2) + hs[1][2].powi(2));
        // without a gradient to lean on: β φ ‖Ĥ‖₂ ≤ 1 over the box, where
        // √p ≤ ‖Ĥ‖₂ ≤ 2√(p/3) (p = frob2 / 2) before the exact root
        let (upper, lower) = ((2.0 / 3.0 * frob2).sqrt(), (0.5 * frob2).sqrt());
        let mut exact = None;
        let mut small = |phi: f64| {
            if beta * phi * (upper + margin) <= 1.0 {
                return true;
            }
            if beta * phi * (lower + margin) > 1.0 {
                return false;
            }
            let norm =
                *exact.get_or_insert_with(|| zero_diagonal_norm(hs[0][1], hs[0][2], hs[1][2]));
            beta * phi * (norm + margin) <= 1.0
        };
        if small(phi) {
            return Convexity::Gamma2;
        }
        let curvature = Curvature {
            mixed: m,
            centre: c,
            half: h,
            at_centre: [txy, txz, tyz],
            scaled: hs,
            frob2,
            margin,
        };
        if self.convex_along_gradient(&curvature, phi, beta, isw, centre_gradient) {
            return Convexity::Gamma2;
        }
        // failing the tests for γ², Ĝ (the dose term capped at φ₀ < φ)
        if phi0 < phi && small(phi0) {
            Convexity::Capped
        } else {
            Convexity::Unknown
        }
    }

    /// The gradient-aware part of [`Self::convex_on`] for γ² on a box
    /// (|f| ≤ `phi`) whose curvature [`Self::convex_on`] has derived.
    fn convex_along_gradient(
        &self,
        curvature: &Curvature,
        phi: f64,
        beta: f64,
        isw: [f64; 3],
        centre_gradient: Option<[f64; 3]>,
    ) -> bool {
        let Curvature {
            mixed: m,
            centre: c,
            half: h,
            at_centre: [txy, txz, tyz],
            scaled: hs,
            frob2,
            margin,
        } = *curvature;
        let g = centre_gradient.unwrap_or_else(|| self.value_grad(c).1);
        let gs = axes(|a| g[a] * isw[a]);
        let gn = (gs[0] * gs[0] + gs[1] * gs[1] + gs[2] * gs[2]).sqrt();
        if gn == 0.0 {
            return false;
        }
        let un = axes(|a| gs[a] / gn);
        let hu = axes(|a| (0..3).map(|b| hs[a][b] * un[b]).sum::<f64>());
        let k_par = (0..3).map(|a| un[a] * hu[a]).sum::<f64>();
        let cross2 = (0..3).map(|a| (hu[a] - k_par * un[a]).powi(2)).sum::<f64>();
        // the 2 × 2 restriction to u⊥: trace −k_par, squared Frobenius norm
        // perp2, so its larger |eigenvalue| is (|k_par| + √(2 perp2 − k_par²))/2
        let perp2 = (frob2 - k_par * k_par - 2.0 * cross2).max(0.0);
        let perp = 0.5 * (k_par.abs() + (2.0 * perp2 - k_par * k_par).max(0.0).sqrt());
        let (k_par, k_cross, k_perp) =
            (k_par.abs() + margin, cross2.sqrt() + margin, perp + margin);
        // how far the scaled gradient moves over the box
        let dg = [
            (txy.abs() * h[1] + txz.abs() * h[2] + m[3].abs() * h[1] * h[2]) * isw[0],
            (txy.abs() * h[0] + tyz.abs() * h[2] + m[3].abs() * h[0] * h[2]) * isw[1],
            (txz.abs() * h[0] + tyz.abs() * h[1] + m[3].abs() * h[0] * h[1]) * isw[2],
        ];
        let e = (dg[0] * dg[0] + dg[1] * dg[1] + dg[2] * dg[2]).sqrt();
        let p = 1.0 - beta * phi * k_perp;
        let q = beta * (gn * gn - phi * k_par);
        let r = beta * (e * gn + phi * k_cross);
        if p < 0.0 || p + q - 2.0 * r < 0.0 {
            return false;
        }
        // the interior minimum of P + Q α² − 2 R α, if it lies in (0, 1)
        !(q > 0.0 && r > 0.0 && r < q && p - r * r / q < 0.0)
    }

    /// The lowest and highest corner dose of the cell (also of an outer
    /// half cell, whose repeated corners make the dose constant across it).
    fn corner_range(&self) -> [f64; 2] {
        self.0
            .iter()
            .fold([f64::INFINITY, f64::NEG_INFINITY], |[m, n], &v| {
                [m.min(v), n.max(v)]
            })
    }

    /// The lowest and highest corner dose of the box [l, u] (the extremes of
    /// a multilinear function over a box).
    fn range(&self, l: [f64; 3], u: [f64; 3]) -> [f64; 2] {
        // the box's corner values, axis by axis (x, then y, then z)
        let v = &self.0;
        let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
        let mut x = [0.0; 8];
        for e in 0..4 {
            x[2 * e] = lerp(v[2 * e], v[2 * e + 1], l[0]);
            x[2 * e + 1] = lerp(v[2 * e], v[2 * e + 1], u[0]);
        }
        // x[2e + i]: edge e = dy + 2 dz, x end i
        let mut y = [0.0; 8];
        for dz in 0..2 {
            for i in 0..2 {
                let (a, b) = (x[4 * dz + i], x[4 * dz + 2 + i]);
                y[4 * dz + i] = lerp(a, b, l[1]);
                y[4 * dz + 2 + i] = lerp(a, b, u[1]);
            }
        }
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for k in 0..4 {
            let (a, b) = (y[k], y[4 + k]);
            for t in [l[2], u[2]] {
                let c = lerp(a, b, t);
                lo = lo.min(c);
                hi = hi.max(c);
            }
        }
        [lo, hi]
    }

    /// D_e and its gradient (per voxel step) at t in the cell.
    #[inline]
    fn value_grad(&self, t: [f64; 3]) -> (f64, [f64; 3]) {
        let v = &self.0;
        let [tx, ty, tz] = t;
        let ex = [v[1] - v[0], v[3] - v[2], v[5] - v[4], v[7] - v[6]];
        let a00 = v[0] + ex[0] * tx;
        let a10 = v[2] + ex[1] * tx;
        let a01 = v[4] + ex[2] * tx;
        let a11 = v[6] + ex[3] * tx;
        let b0 = a00 + (a10 - a00) * ty;
        let b1 = a01 + (a11 - a01) * ty;
        let value = b0 + (b1 - b0) * tz;
        let gx = (1.0 - tz) * (ex[0] + (ex[1] - ex[0]) * ty) + tz * (ex[2] + (ex[3] - ex[2]) * ty);
        let gy = (1.0 - tz) * (a10 - a00) + tz * (a11 - a01);
        (value, [gx, gy, b1 - b0])
    }
}

impl<'a> CellSearch<'a> {
    /// The search over the evaluated dose `e`.
    pub(crate) fn new(e: &EvaluatedDose<'a>, s: &'a GammaSetup) -> Self {
        let (data, shape, origin_mm, spacing_mm) = (e.data, e.shape, e.origin_mm, e.spacing_mm);
        let reach = s.criteria.max_gamma * s.criteria.dta_mm;
        Self {
            data,
            n: [shape[2], shape[1], shape[0]],
            origin: origin_mm,
            inv_spacing: spacing_mm.map(|v| 1.0 / v),
            w: spacing_mm.map(|v| v * v * s.inv_dta2),
            inv_w: spacing_mm.map(|v| 1.0 / (v * v * s.inv_dta2)),
            isw: spacing_mm.map(|v| 1.0 / (v * s.inv_dta2.sqrt())),
            spacing2_mm2: spacing_mm.map(|v| v * v),
            inv_dta2: s.inv_dta2,
            reach2_mm2: reach * reach,
            box_min: spacing_mm.map(|v| 0.5 * s.lattice_step_mm / v),
        }
    }

    /// The smallest γ² around `p` (mm) for a reference dose `d_ref` and
    /// 1/ΔD² `inv_dd2`; +∞ when no evaluated dose lies within
    /// `max_gamma` × Δd.
    ///
    /// `hint`: where the previous point's minimum lay, relative to it (voxel
    /// units), as a start for the first descent (neighbouring points of a
    /// smooth dose have nearby minima); updated for the next point. It
    /// changes the work, not the answer.
    pub(crate) fn min_gamma2(
        &self,
        p: [f64; 3],
        d_ref: f64,
        inv_dd2: f64,
        hint: &mut Option<[f64; 3]>,
    ) -> f64 {
        let n = self.n;
        // p in continuous voxel coordinates, and the cell holding it (cells
        // -1 and n-1 are the outer half cells)
        let q = axes(|a| (p[a] - self.origin[a]) * self.inv_spacing[a]);
        let home = axes(|a| (q[a].floor().clamp(-1.0, (n[a] - 1) as f64)) as i64);
        // the smallest γ² found, and where (continuous voxel coordinates)
        let mut best = Best {
            g2: f64::INFINITY,
            q,
        };
        // non-convex cells (index and lower bound), searched once every cell
        // has had its descent; small, as it is set up for every point
        let mut pending = [([0i64; 3], 0.0f64); PENDING];
        let mut n_pending = 0;
        let mut defer =
            |cell: Cell, c: [i64; 3], box_: [[f64; 3]; 3], bound: f64, best: &mut Best| {
                if n_pending == PENDING {
                    self.settle(&cell, c, box_, d_ref, inv_dd2, best);
                } else {
                    pending[n_pending] = (c, bound);
                    n_pending += 1;
                }
            };
        // First a descent that walks from cell to cell: from p's cell into
        // the neighbour whose face it ends on while γ² still falls outwards.
        // It finds the minimum of a smooth dose in a few cells, so that the
        // bounds below skip most others.
        let mut walked = [[0i64; 3]; WALK];
        let mut n_walked = 0;
        let (mut c, mut start) = match *hint {
            Some(h) => {
                let qs = axes(|a| q[a] + h[a]);
                let c = axes(|a| (qs[a].floor().clamp(-1.0, (n[a] - 1) as f64)) as i64);
                (c, Some(axes(|a| (qs[a] - c[a] as f64).clamp(0.0, 1.0))))
            }
            None => (home, None),
        };
        while n_walked < WALK {
            let Some((lo, hi, tp, d2)) = self.place(c, q) else {
                break;
            };
            if d2 > self.reach2_mm2 {
                break;
            }
            walked[n_walked] = c;
            n_walked += 1;
            let cell = self.cell(c);
            let t0 = match start {
                Some(t) => axes(|a| f64::clamp(t[a], lo[a], hi[a])),
                None => axes(|a| tp[a].clamp(lo[a], hi[a])),
            };
            let objective = self.objective(&cell, tp, d_ref, inv_dd2);
            let (local, t, grad) = self.descend(&objective, t0, [lo, hi]);
            best.offer(local, c, t);
            let range = cell.corner_range();
            // where γ² is not convex on the whole cell, it may still be on
            // the part that can beat the best (often far smaller)
            // (only γ²'s own convexity settles the whole cell: no cap)
            if cell.convex_on(
                [lo, hi],
                range,
                d_ref,
                inv_dd2,
                self.isw,
                None,
                f64::INFINITY,
            ) != Convexity::Gamma2
                && let Some(sub) = self.within(best.g2, [lo, hi, tp])
                && !self.convex_part(&objective, c, sub, cell.range(sub[0], sub[1]), t, &mut best)
            {
                defer(cell, c, [lo, hi, tp], 0.0, &mut best);
            }
            // faces (inside the grid) that t rests on with γ² falling outwards
            let mut next = c;
            let mut tn = t;
            for a in 0..3 {
                if t[a] <= 0.0 && grad[a] > 0.0 && lo[a] == 0.0 {
                    next[a] -= 1;
                    tn[a] = 1.0;
                } else if t[a] >= 1.0 && grad[a] < 0.0 && hi[a] == 1.0 {
                    next[a] += 1;
                    tn[a] = 0.0;
                }
            }
            if next == c {
                break;
            }
            c = next;
            start = Some(tn);
        }
        // the cells that can hold a position within √(best/w_a) voxels of
        // p along each axis (within reach while nothing is found)
        let radius = best.g2.sqrt();
        let r = axes(|a| {
            if best.g2.is_finite() {
                radius * self.isw[a]
            } else {
                self.reach2_mm2.sqrt() * self.inv_spacing[a]
            }
        });
        let first = axes(|a| ((q[a] - r[a]).floor().max(-1.0)) as i64);
        let last = axes(|a| ((q[a] + r[a]).floor().min((n[a] - 1) as f64)) as i64);
        let cells = (first[2]..=last[2]).flat_map(|z| {
            (first[1]..=last[1]).flat_map(move |y| (first[0]..=last[0]).map(move |x| [x, y, z]))
        });
        for c in cells {
            if walked[..n_walked].contains(&c) {
                continue;
            }
            let Some((lo, hi, tp, d2)) = self.place(c, q) else {
                continue;
            };
            if d2 > self.reach2_mm2 || d2 * self.inv_dta2 >= best.g2 {
                continue;
            }
            // a position that beats `best` lies within √(best/w_a) of t_p
            // along each axis: the dose range over that part of the box
            let cell = self.cell(c);
            let whole = cell.corner_range();
            let gap = gap_to(whole, d_ref);
            if d2 * self.inv_dta2 + gap * gap * inv_dd2 >= best.g2 {
                continue;
            }
            let Some(sub) = self.within(best.g2, [lo, hi, tp]) else {
                continue;
            };
            let range = if sub == [lo, hi] {
                whole
            } else {
                cell.range(sub[0], sub[1])
            };
            let gap = gap_to(range, d_ref);
            let bound = d2 * self.inv_dta2 + gap * gap * inv_dd2;
            if bound >= best.g2 {
                continue;
            }
            let objective = self.objective(&cell, tp, d_ref, inv_dd2);
            if self.convex_part(&objective, c, sub, range, tp, &mut best) {
                continue;
            }
            let t0 = axes(|a| tp[a].clamp(lo[a], hi[a]));
            let (local, t, _) = self.descend(&objective, t0, [lo, hi]);
            best.offer(local, c, t);
            defer(cell, c, [lo, hi, tp], bound, &mut best);
        }
        for &(c, bound) in &pending[..n_pending] {
            if bound < best.g2
                && let Some((lo, hi, tp, _)) = self.place(c, q)
            {
                self.settle(&self.cell(c), c, [lo, hi, tp], d_ref, inv_dd2, &mut best);
            }
        }
        *hint = best.g2.is_finite().then(|| axes(|a| best.q[a] - q[a]));
        best.g2
    }

    /// Settles the part `sub` of cell `c` (dose range `range` there) if γ²
    /// is convex on it: by the tangent-plane bound, else by a descent in
    /// `sub` from `start` (clamped to it), whose end is then its minimum; or
    /// if only the capped lower bound Ĝ is convex, by Ĝ's tangent plane.
    /// `false` (nothing settled) otherwise.
    fn convex_part(
        &self,
        objective: &Objective<'_>,
        c: [i64; 3],
        sub: [[f64; 3]; 2],
        range: [f64; 2],
        start: [f64; 3],
        best: &mut Best,
    ) -> bool {
        let beta = objective.beta;
        let phi0 = (best.g2 / beta).sqrt();
        match objective
            .cell
            .convex_on(sub, range, objective.d_ref, beta, self.isw, None, phi0)
        {
            Convexity::Gamma2 => {}
            Convexity::Capped => {
                return self.certified(objective, c, sub, phi0, best);
            }
            Convexity::Unknown => return false,
        }
        if !self.certified(objective, c, sub, f64::INFINITY, best) {
            let t0 = axes(|a| start[a].clamp(sub[0][a], sub[1][a]));
            let (local, t, _) = self.descend(objective, t0, sub);
            best.offer(local, c, t);
        }
        true
    }

    /// Whether no position in the box [l, u] of cell `c` beats `best` by more
    /// than [`certify_level`], without a descent, where γ² is convex
    /// on the box (the caller's test): γ² lies above its tangent plane at any
    /// point t̂ of the box,
    /// and the lowest value of that plane over the box,
    /// γ²(t̂) + Σ_a min(∂_aγ²(t̂) (l_a − t̂_a), ∂_aγ²(t̂) (u_a − t̂_a)),
    /// is a lower bound. t̂ is the box point nearest the best position found,
    /// where the plane is tightest when the two cells share the minimum.
    /// With a finite `phi0` the plane is that of the capped lower bound Ĝ
    /// (see [`Cell::convex_on`]; the caller has proven Ĝ convex on the box).
    fn certified(
        &self,
        objective: &Objective<'_>,
        c: [i64; 3],
        [l, u]: [[f64; 3]; 2],
        phi0: f64,
        best: &Best,
    ) -> bool {
        let (beta, tp) = (objective.beta, objective.tp);
        let t = axes(|a| (best.q[a] - c[a] as f64).clamp(l[a], u[a]));
        let (value, f, g) = objective.at(t);
        // Ĝ and its gradient: H(f) = f² within ±φ₀, 2φ₀|f| − φ₀² beyond
        let fc = f.clamp(-phi0, phi0);
        let mut low = value - beta * (f - fc) * (f - fc);
        for a in 0..3 {
            let slope = 2.0 * (self.w[a] * (t[a] - tp[a]) + beta * fc * g[a]);
            low += (slope * (l[a] - t[a])).min(slope * (u[a] - t[a]));
        }
        low >= certify_level(best.g2)
    }

    /// The smallest γ² below `best` in a cell where γ² is not convex on the
    /// whole cell (else `best`). A position that beats `best` lies in the
    /// part K of the box within √(best/w_a) of t_p along each axis, and K is
    /// a box, smaller than the cell: the branch and bound searches K.
    fn settle(
        &self,
        cell: &Cell,
        c: [i64; 3],
        [lo, hi, tp]: [[f64; 3]; 3],
        d_ref: f64,
        beta: f64,
        best: &mut Best,
    ) {
        if let Some([l, u]) = self.within(best.g2, [lo, hi, tp]) {
            self.branch_and_bound(cell, c, [l, u, tp], d_ref, beta, best);
        }
    }

    /// The part of the box [lo, hi] where a position can have γ² below
    /// `g2`: within √(g2/w_a) of t_p along each axis (a box too); `None`
    /// when that part is empty.
    fn within(&self, g2: f64, [lo, hi, tp]: [[f64; 3]; 3]) -> Option<[[f64; 3]; 2]> {
        let mut l = lo;
        let mut u = hi;
        let radius = g2.sqrt();
        for a in 0..3 {
            let r = radius * self.isw[a];
            l[a] = l[a].max(tp[a] - r);
            u[a] = u[a].min(tp[a] + r);
            if l[a] > u[a] {
                return None;
            }
        }
        Some([l, u])
    }

    /// Cell `c`'s box [lo, hi] in its own coordinates t, the point's
    /// position t_p there, and the squared distance (mm²) from the point to
    /// the box; `None` for a cell outside the grid.
    #[inline]
    fn place(&self, c: [i64; 3], q: [f64; 3]) -> Option<Placed> {
        let n = self.n;
        if (0..3).any(|a| c[a] < -1 || c[a] > n[a] as i64 - 1) {
            return None;
        }
        let mut lo = [0.0; 3];
        let mut hi = [1.0; 3];
        let mut tp = [0.0; 3];
        let mut d2 = 0.0;
        for a in 0..3 {
            let ca = c[a] as f64;
            lo[a] = (-0.5 - ca).max(0.0);
            hi[a] = ((n[a] as f64 - 0.5) - ca).min(1.0);
            tp[a] = q[a] - ca;
            let out = (lo[a] - tp[a]).max(tp[a] - hi[a]).max(0.0);
            d2 += out * out * self.spacing2_mm2[a];
        }
        Some((lo, hi, tp, d2))
    }

    /// The corner doses of cell `c` (x, y, z), indices clamped to the grid.
    fn cell(&self, c: [i64; 3]) -> Cell {
        let [nx, ny, nz] = self.n;
        let idx = |a: i64, n: usize| a.clamp(0, n as i64 - 1) as usize;
        let (x0, x1) = (idx(c[0], nx), idx(c[0] + 1, nx));
        let (y0, y1) = (idx(c[1], ny), idx(c[1] + 1, ny));
        let (z0, z1) = (idx(c[2], nz), idx(c[2] + 1, nz));
        let d = self.data;
        let v = |z: usize, y: usize, x: usize| f64::from(d[(z * ny + y) * nx + x]);
        Cell([
            v(z0, y0, x0),
            v(z0, y0, x1),
            v(z0, y1, x0),
            v(z0, y1, x1),
            v(z1, y0, x0),
            v(z1, y0, x1),
            v(z1, y1, x0),
            v(z1, y1, x1),
        ])
    }

    /// γ² in `cell` for the point at t_p (cell coordinates).
    fn objective<'c>(&self, cell: &'c Cell, tp: [f64; 3], d_ref: f64, beta: f64) -> Objective<'c> {
        Objective {
            cell,
            tp,
            d_ref,
            beta,
            w: self.w,
        }
    }

    /// The smallest γ² in the box [lo, hi] of a cell that may hold several
    /// local minima (updates `best`): boxes are split in two along their
    /// longest axis (in units of Δd) and dropped when a lower bound of γ²
    /// over them reaches the best value found (to [`certify_level`]); a box
    /// where γ² is convex is proven by its tangent plane or ends with a
    /// descent, and so does a box of half the search resolution
    /// (`box_min`). The bounds:
    ///
    /// - distance and dose gap (module docs), from the box's corner doses;
    /// - the linear model around the box centre c, D_e(c + δ) = D_e(c) +
    ///   ∇D_e·δ + R with |R| ≤ ρ = Σ_{a<b} |∂²D_e/∂a∂b(c)| h_a h_b +
    ///   |∂³D_e/∂x∂y∂z| h_x h_y h_z (h: half-widths; the expansion of a
    ///   trilinear function is exact at third order), so over the box
    ///   γ² ≥ β max(0, |D_e(c) − D_r + ∇D_e·(t_p − c)| − ρ)² / (1 + β Σ_a g_a²/w_a)
    ///   (the model's minimum over all positions);
    /// - the same model kept in the box: G(t) = Σ w_a (t_a − t_p,a)² +
    ///   β (|ℓ(t)| − ρ)₊² ≤ γ² is convex, so its tangent plane at the box
    ///   point nearest the best position bounds it from below.
    fn branch_and_bound(
        &self,
        cell: &Cell,
        c_idx: [i64; 3],
        [lo, hi, tp]: [[f64; 3]; 3],
        d_ref: f64,
        beta: f64,
        best: &mut Best,
    ) {
        let w = self.w;
        let objective = &self.objective(cell, tp, d_ref, beta);
        let mixed = cell.mixed();
        let mut stack = [([0.0f64; 3], [0.0f64; 3]); 64];
        stack[0] = (lo, hi);
        let mut depth = 1;
        let mut visits = 0;
        while depth > 0 && visits < BOX_VISITS {
            depth -= 1;
            visits += 1;
            let (l, u) = stack[depth];
            let c = axes(|a| 0.5 * (l[a] + u[a]));
            let h = axes(|a| 0.5 * (u[a] - l[a]));
            let target = certify_level(best.g2);
            // distance and dose gap
            let mut d2 = 0.0;
            for a in 0..3 {
                let out = (l[a] - tp[a]).max(tp[a] - u[a]).max(0.0);
                d2 += w[a] * out * out;
            }
            if d2 >= target {
                continue;
            }
            let [dmin, dmax] = cell.range(l, u);
            let gap = gap_to([dmin, dmax], d_ref);
            if d2 + beta * gap * gap >= target {
                continue;
            }
            // the linear model with its remainder
            let (vc, g) = cell.value_grad(c);
            let txy = mixed[0] + mixed[3] * c[2];
            let txz = mixed[1] + mixed[3] * c[1];
            let tyz = mixed[2] + mixed[3] * c[0];
            let rho = txy.abs() * h[0] * h[1]
                + txz.abs() * h[0] * h[2]
                + tyz.abs() * h[1] * h[2]
                + mixed[3].abs() * h[0] * h[1] * h[2];
            let lin = vc - d_ref + (0..3).map(|a| g[a] * (tp[a] - c[a])).sum::<f64>();
            let soft = (lin.abs() - rho).max(0.0);
            let gw = (0..3).map(|a| g[a] * g[a] * self.inv_w[a]).sum::<f64>();
            if beta * soft * soft >= target * (1.0 + beta * gw) {
                continue;
            }
            // the same model kept inside the box: G(t) = Σ w_a (t_a − t_p,a)²
            // + β (|ℓ(t)| − ρ)₊² ≤ γ² is convex, so its tangent plane at the
            // box point nearest the best position bounds it from below
            let th = axes(|a| (best.q[a] - c_idx[a] as f64).clamp(l[a], u[a]));
            let ell = vc - d_ref + (0..3).map(|a| g[a] * (th[a] - c[a])).sum::<f64>();
            let sh = (ell.abs() - rho).max(0.0);
            let mut low = beta * sh * sh;
            for a in 0..3 {
                low += w[a] * (th[a] - tp[a]).powi(2);
            }
            for a in 0..3 {
                let slope = 2.0 * (w[a] * (th[a] - tp[a]) + beta * sh * ell.signum() * g[a]);
                low += (slope * (l[a] - th[a])).min(slope * (u[a] - th[a]));
            }
            if low >= target {
                continue;
            }
            // values in the box: its point nearest t_p and its centre
            let near = axes(|a| tp[a].clamp(l[a], u[a]));
            let (fn_, fc) = (objective.at(near).0, objective.at(c).0);
            let start = if fn_ <= fc { near } else { c };
            best.offer(fn_, c_idx, near);
            best.offer(fc, c_idx, c);
            let phi0 = (best.g2 / beta).sqrt();
            let proven = cell.convex_on([l, u], [dmin, dmax], d_ref, beta, self.isw, Some(g), phi0);
            let convex = proven == Convexity::Gamma2;
            let cap = if convex { f64::INFINITY } else { phi0 };
            if proven != Convexity::Unknown && self.certified(objective, c_idx, [l, u], cap, best) {
                continue;
            }
            if convex || (0..3).all(|a| h[a] <= self.box_min[a]) || depth + 2 > stack.len() {
                let (local, t, _) = self.descend(objective, start, [l, u]);
                best.offer(local, c_idx, t);
                continue;
            }
            // split the longest axis (in units of Δd); the half nearer t_p
            // goes on top of the stack
            let axis = (0..3)
                .max_by(|&a, &b| (w[a] * h[a] * h[a]).total_cmp(&(w[b] * h[b] * h[b])))
                .unwrap_or(0);
            let (mut lower, mut upper) = ((l, u), (l, u));
            lower.1[axis] = c[axis];
            upper.0[axis] = c[axis];
            let (first, second) = if tp[axis] < c[axis] {
                (upper, lower)
            } else {
                (lower, upper)
            };
            stack[depth] = first;
            stack[depth + 1] = second;
            depth += 2;
        }
    }

    /// Projected Gauss-Newton descent from `t`; returns the γ² reached,
    /// where, and the gradient of γ²/2 there.
    fn descend(
        &self,
        objective: &Objective<'_>,
        mut t: [f64; 3],
        [lo, hi]: [[f64; 3]; 2],
    ) -> (f64, [f64; 3], [f64; 3]) {
        let (w, inv_w) = (self.w, self.inv_w);
        let (beta, tp) = (objective.beta, objective.tp);
        let (mut best, mut f, mut g) = objective.at(t);
        for _ in 0..CELL_ITERATIONS {
            // gradient of γ²/2, and the coordinates free to move
            let grad = axes(|a| w[a] * (t[a] - tp[a]) + beta * f * g[a]);
            let free =
                axes(|a| !((t[a] <= lo[a] && grad[a] > 0.0) || (t[a] >= hi[a] && grad[a] < 0.0)));
            // (D + β g gᵀ) δ = −grad on the free coordinates
            let mut ug = 0.0;
            let mut uu = 0.0;
            for a in 0..3 {
                if free[a] {
                    ug += beta * g[a] * grad[a] * inv_w[a];
                    uu += beta * g[a] * g[a] * inv_w[a];
                }
            }
            let k = ug / (1.0 + uu);
            let delta = axes(|a| {
                if free[a] {
                    -(grad[a] - g[a] * k) * inv_w[a]
                } else {
                    0.0
                }
            });
            // converged: the model predicts a decrease of γ² (−2 m(δ) =
            // −grad·δ at the model's minimum) below 1e-10 of it
            let predicted = -(0..3).map(|a| grad[a] * delta[a]).sum::<f64>();
            if predicted <= 1e-10 * best {
                break;
            }
            // the Gauss-Newton step, then (where clipping to the box spoils
            // it) the gradient scaled by the diagonal of the same matrix
            let mut moved = false;
            let mut decreased = false;
            for pass in 0..2 {
                let direction = if pass == 0 {
                    delta
                } else {
                    axes(|a| -grad[a] / (w[a] + beta * g[a] * g[a]))
                };
                let mut step = 1.0;
                for _ in 0..CELL_HALVINGS {
                    let tn = axes(|a| (t[a] + step * direction[a]).clamp(lo[a], hi[a]));
                    step *= 0.5;
                    let (value, fn_, gn) = objective.at(tn);
                    if value < best {
                        moved = best - value > 1e-12 * best;
                        decreased = true;
                        (t, best, f, g) = (tn, value, fn_, gn);
                        break;
                    }
                }
                if decreased {
                    break;
                }
            }
            if !moved {
                break;
            }
        }
        let grad = axes(|a| w[a] * (t[a] - tp[a]) + beta * f * g[a]);
        (best, t, grad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::uniform;

    /// The dose range of a box is that of its eight corners, evaluated with
    /// the trilinear formula; and the multilinear extremes lie there (no
    /// sampled interior point falls outside).
    #[test]
    fn box_range_is_that_of_its_corners() {
        let mut next = uniform(99);
        for _ in 0..500 {
            let cell = Cell(std::array::from_fn(|_| next() * 4.0 - 1.0));
            let l = axes(|_| next() * 0.6);
            let u = axes(|a| l[a] + next() * 0.4);
            let [lo, hi] = cell.range(l, u);
            let corners: Vec<f64> = (0..8)
                .map(|k| {
                    cell.value_grad(axes(|a| if k >> a & 1 == 1 { u[a] } else { l[a] }))
                        .0
                })
                .collect();
            let want_lo = corners.iter().copied().fold(f64::INFINITY, f64::min);
            let want_hi = corners.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert!((lo - want_lo).abs() < 1e-12 && (hi - want_hi).abs() < 1e-12);
            for _ in 0..20 {
                let t = axes(|a| l[a] + next() * (u[a] - l[a]));
                let v = cell.value_grad(t).0;
                assert!(v >= lo - 1e-12 && v <= hi + 1e-12);
            }
        }
    }

    /// The spectral-norm bound of a zero-diagonal symmetric matrix is above
    /// the largest |eigenvalue| (nalgebra's symmetric eigensolver) and
    /// within 1e-6 of it.
    #[test]
    fn zero_diagonal_norm_bounds_the_eigenvalues() {
        let mut uniform = uniform(7);
        let mut next = move || uniform() * 2.0 - 1.0;
        for k in 0..2000 {
            // some with one or two zero entries (the planar cases)
            let [a, b, c] =
                [next(), next(), next()].map(|v| if k % 5 == 0 && v < 0.0 { 0.0 } else { v });
            let m = nalgebra::Matrix3::new(0.0, a, b, a, 0.0, c, b, c, 0.0);
            let exact = m
                .symmetric_eigenvalues()
                .iter()
                .fold(0.0f64, |n, v| n.max(v.abs()));
            let bound = zero_diagonal_norm(a, b, c);
            assert!(bound >= exact, "{a} {b} {c}: {bound} < {exact}");
            assert!(
                bound <= exact * (1.0 + 1e-6) + 1e-15,
                "{a} {b} {c}: {bound} vs {exact}"
            );
        }
        assert_eq!(zero_diagonal_norm(0.0, 0.0, 0.0), 0.0);
    }

    /// What the convexity test claims holds: where it proves γ² convex on a
    /// box, γ² is midpoint-convex along random segments of the box; where it
    /// proves only the capped lower bound Ĝ convex, Ĝ is, and Ĝ ≤ γ².
    #[test]
    fn convexity_claims_hold_on_random_boxes() {
        let mut next = uniform(4242);
        let w = [1.0, 0.7, 1.4];
        let isw = w.map(|v: f64| 1.0 / v.sqrt());
        let (mut gamma2, mut capped) = (0, 0);
        for _ in 0..4000 {
            let cell = Cell(std::array::from_fn(|_| 1.0 + 0.4 * (next() - 0.5)));
            let l = axes(|_| next() * 0.7);
            let u = axes(|a| l[a] + 0.05 + next() * 0.25);
            let tp = axes(|_| next() * 2.0 - 0.5);
            let d_ref = 1.0 + 0.3 * (next() - 0.5);
            let beta = 10f64.powf(1.0 + 2.5 * next());
            let phi0 = 0.2 * next() * next();
            let range = cell.range(l, u);
            let proven = cell.convex_on([l, u], range, d_ref, beta, isw, None, phi0);
            let cap = match proven {
                Convexity::Gamma2 => f64::INFINITY,
                Convexity::Capped => phi0,
                Convexity::Unknown => continue,
            };
            if cap.is_finite() {
                capped += 1;
            } else {
                gamma2 += 1;
            }
            let lower = |t: [f64; 3]| {
                let f = cell.value_grad(t).0 - d_ref;
                let fa = f.abs();
                let h = if fa <= cap {
                    f * f
                } else {
                    2.0 * cap * fa - cap * cap
                };
                let dist: f64 = (0..3).map(|a| w[a] * (t[a] - tp[a]).powi(2)).sum();
                (dist + beta * h, dist + beta * f * f)
            };
            for _ in 0..20 {
                let a = axes(|k| l[k] + next() * (u[k] - l[k]));
                let b = axes(|k| l[k] + next() * (u[k] - l[k]));
                let mid = axes(|k| 0.5 * (a[k] + b[k]));
                let (ga, gb, gm) = (lower(a), lower(b), lower(mid));
                assert!(
                    gm.0 <= 0.5 * (ga.0 + gb.0) + 1e-9 * (1.0 + ga.0 + gb.0),
                    "{proven:?}"
                );
                assert!(gm.0 <= gm.1 + 1e-12);
            }
        }
        assert!(gamma2 > 100 && capped > 100, "{gamma2} {capped}");
    }

    /// On 2000 random, strongly non-linear cells (corner doses spread over
    /// 7–300 ΔD) and points inside and around them, the descent plus branch
    /// and bound matches the minimum over a dense 41³ sampling of the cell
    /// to 1e-6 in at least 99 % of cases and is never more than 3 % above it
    /// (the branch and bound stops at boxes of 0.1 cell, coarser than the
    /// sampling).
    #[test]
    fn cell_minimum_matches_dense_sampling() {
        let mut next = uniform(12345);
        let search = CellSearch {
            data: &[],
            n: [1, 1, 1],
            origin: [0.0; 3],
            inv_spacing: [1.0; 3],
            w: [1.0; 3],
            inv_w: [1.0; 3],
            isw: [1.0; 3],
            spacing2_mm2: [1.0; 3],
            inv_dta2: 1.0,
            reach2_mm2: 1.0,
            box_min: [0.05; 3],
        };
        let (mut off, mut total) = (0, 0);
        for _ in 0..2000 {
            let cell = Cell(std::array::from_fn(|_| 1.0 + 0.3 * (next() - 0.5)));
            let tp = axes(|_| next() * 3.0 - 1.0);
            let d_ref = 1.0 + 0.3 * (next() - 0.5);
            let beta = 10f64.powf(1.0 + 3.0 * next());
            let unit = [[0.0; 3], [1.0; 3], tp];
            let objective = search.objective(&cell, tp, d_ref, beta);
            let t0 = tp.map(|v| v.clamp(0.0, 1.0));
            let (local, t, _) = search.descend(&objective, t0, [unit[0], unit[1]]);
            let mut best = Best { g2: local, q: t };
            search.branch_and_bound(&cell, [0; 3], unit, d_ref, beta, &mut best);
            let got = best.g2;
            let n = 40;
            let mut dense = f64::INFINITY;
            for k in 0..=n {
                for j in 0..=n {
                    for i in 0..=n {
                        let t = [i, j, k].map(|v| f64::from(v) / f64::from(n));
                        dense = dense.min(objective.at(t).0);
                    }
                }
            }
            total += 1;
            assert!(got <= dense * 1.03, "{got} vs dense sampling {dense}");
            if got > dense * (1.0 + 1e-6) {
                off += 1;
            }
        }
        assert!(
            off * 100 <= total,
            "{off} of {total} above the dense minimum"
        );
    }
}
