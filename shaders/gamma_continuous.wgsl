// 3D gamma index, continuous search, on a slab of reference voxels: the WGSL
// port of isodose_core::qa::gamma::cells::CellSearch::min_gamma2 (the CPU's
// default search), in f32.
//
// For each reference point the minimum over every position within
// max_gamma × Δd of
//     γ²(t) = Σ_a w_a (t_a − t_p,a)² + β (D_e(t) − D_r)²,
// w_a = s_a²/Δd², β = 1/ΔD², over the trilinear interpolant D_e of the
// evaluated dose, cell by cell (t: a position in a cell of the evaluated grid,
// in voxel units). As on the CPU:
//  - a first descent walks from the point's cell into the neighbour whose
//    face it ends on (at most 4 cells);
//  - every cell within √γ²_best × Δd is then bounded from below by its
//    distance and its dose gap (a multilinear function takes its extremes
//    over a box at the box's corners) and skipped when the bound reaches the
//    best γ² found;
//  - a cell that may do better is minimised by projected Gauss-Newton where
//    γ² is proven convex on it (spectral bound of the scaled Hessian, with
//    and without the gradient's help: Cell::convex_on), and otherwise by a
//    branch and bound of boxes (distance, dose gap, the linear model with its
//    remainder and its tangent plane) down to half the search resolution
//    (search_step × Δd), where a descent ends the box.
// Left out from the CPU search (they change the work, not the minimum): the
// hint from the previous point, the deferral of non-convex cells, the
// tangent-plane certificate of convex boxes and the capped (Huber) bound.
// A region counts as holding nothing better once a bound is within
// CERTIFY_TOL of the best γ² (relative) or 2 CERTIFY_GAMMA √γ² (absolute):
// 10⁻⁵ here, where f32 rounding (about 6e-8 relative) would make the CPU's
// 10⁻⁶ certify later for no gain in the reported γ.
//
// Compiled after gamma.wgsl, whose Params, bindings and
// loop_limit_reached() it uses (the module's entry point for this search is
// `continuous`):
// @binding(0) uniform Params (n_offsets, fd_mm and the refinement counts are
//             not used)
// @binding(2) storage<read> reference: array<f32> (this slab)
// @binding(3) storage<read> evaluated: array<f32> (planes ek0 .. the last the
//             slab can reach)
// @binding(4) storage<read_write> gamma: array<f32> (this slab)
//
// Output codes: >= 0 is gamma (capped at max_gamma); -1 not evaluated (below
// the cut-off); -2 no evaluated dose within reach; -3 unfinished (the
// driver's loop limit cut the search short: the host computes it). The host turns -1 and -2 into
// NaN and +inf.

// Gauss-Newton iterations per cell, and halvings of a step that does not
// lower γ² (as the CPU's CELL_ITERATIONS, CELL_HALVINGS).
const CELL_ITERATIONS: u32 = 20u;
const CELL_HALVINGS: u32 = 8u;
// Cells the first descent walks through.
const WALK: u32 = 4u;
// Boxes of the branch and bound: stack depth, and most visits per cell (a
// safety net: boxes of the search resolution are reached long before).
const STACK: u32 = 32u;
const BOX_VISITS: u32 = 1000000u;
const CERTIFY_TOL: f32 = 1e-5;
const CERTIFY_GAMMA: f32 = 1e-5;
// "Nothing found yet" (WGSL has no infinity literal).
const NONE: f32 = 3.0e38;

// One invocation's state: the current cell's corner doses (index dx + 2 dy +
// 4 dz), the point in that cell's coordinates, the weights, and the best γ²
// with its position (continuous voxel coordinates of the evaluated grid).
var<private> cv: array<f32, 8>;
var<private> tp: vec3<f32>;
var<private> w: vec3<f32>;      // s_a² / Δd²
var<private> isw: vec3<f32>;    // 1/√w_a
var<private> beta: f32;         // 1/ΔD²
var<private> d_ref: f32;
var<private> best_g2: f32;
var<private> best_q: vec3<f32>;
var<private> n_i: vec3<i32>;    // enx, eny, enz

struct At {
    g2: f32,
    f: f32,         // D_e − D_r
    g: vec3<f32>,   // ∇D_e (per voxel step)
}

struct Descent {
    g2: f32,
    t: vec3<f32>,
    grad: vec3<f32>,  // gradient of γ²/2 at t
}

struct Placed {
    lo: vec3<f32>,
    hi: vec3<f32>,
    tp: vec3<f32>,
    d2: f32,         // squared distance (mm²) from the point to the box
    inside: bool,    // the cell exists (cells -1 and n-1 are half cells)
}

struct Box {
    l: vec3<f32>,
    u: vec3<f32>,
    ok: bool,
}

fn ev_clamped(i: i32, j: i32, k: i32) -> f32 {
    let ii = u32(clamp(i, 0, n_i.x - 1));
    let jj = u32(clamp(j, 0, n_i.y - 1));
    let kk = max(u32(clamp(k, 0, n_i.z - 1)), params.ek0);
    return evaluated[((kk - params.ek0) * params.eny + jj) * params.enx + ii];
}

// The corner doses of cell c, indices clamped to the grid (so the outer half
// cells repeat their corners: the dose is held constant beyond the outer
// voxel centres, as Volume::sample_trilinear does).
fn load_cell(c: vec3<i32>) {
    for (var k = 0; k < 8; k = k + 1) {
        cv[k] = ev_clamped(c.x + (k & 1), c.y + ((k >> 1u) & 1), c.z + ((k >> 2u) & 1));
    }
}

// D_e and its gradient at t in the current cell: (value, gx, gy, gz).
fn value_grad(t: vec3<f32>) -> vec4<f32> {
    let ex = vec4<f32>(cv[1] - cv[0], cv[3] - cv[2], cv[5] - cv[4], cv[7] - cv[6]);
    let a00 = cv[0] + ex.x * t.x;
    let a10 = cv[2] + ex.y * t.x;
    let a01 = cv[4] + ex.z * t.x;
    let a11 = cv[6] + ex.w * t.x;
    let b0 = a00 + (a10 - a00) * t.y;
    let b1 = a01 + (a11 - a01) * t.y;
    let gx = (1.0 - t.z) * (ex.x + (ex.y - ex.x) * t.y) + t.z * (ex.z + (ex.w - ex.z) * t.y);
    let gy = (1.0 - t.z) * (a10 - a00) + t.z * (a11 - a01);
    return vec4<f32>(b0 + (b1 - b0) * t.z, gx, gy, b1 - b0);
}

fn at(t: vec3<f32>) -> At {
    let vg = value_grad(t);
    let f = vg.x - d_ref;
    let d = t - tp;
    return At(dot(w, d * d) + beta * f * f, f, vg.yzw);
}

// The mixed coefficients (c_xy, c_xz, c_yz, c_xyz) of the cell's trilinear dose.
fn mixed() -> vec4<f32> {
    return vec4<f32>(
        cv[0] - cv[1] - cv[2] + cv[3],
        cv[0] - cv[1] - cv[4] + cv[5],
        cv[0] - cv[2] - cv[4] + cv[6],
        -cv[0] + cv[1] + cv[2] - cv[3] + cv[4] - cv[5] - cv[6] + cv[7],
    );
}

// The lowest and highest dose over the box [l, u] of the cell: those of the
// box's corners (Cell::range).
fn box_range(l: vec3<f32>, u: vec3<f32>) -> vec2<f32> {
    var lo = NONE;
    var hi = -NONE;
    for (var k = 0u; k < 8u; k = k + 1u) {
        let t = select(l, u, vec3<bool>((k & 1u) == 1u, ((k >> 1u) & 1u) == 1u, ((k >> 2u) & 1u) == 1u));
        let v = value_grad(t).x;
        lo = min(lo, v);
        hi = max(hi, v);
    }
    return vec2<f32>(lo, hi);
}

fn gap_to(range: vec2<f32>, d: f32) -> f32 {
    return max(max(range.x - d, d - range.y), 0.0);
}

fn certify_level(g2: f32) -> f32 {
    return g2 - max(CERTIFY_TOL * g2, 2.0 * CERTIFY_GAMMA * sqrt(g2));
}

// An upper bound of the spectral norm of [[0, a, b], [a, 0, c], [b, c, 0]]
// (cells::zero_diagonal_norm).
fn zero_diagonal_norm(a: f32, b: f32, c: f32) -> f32 {
    let p = a * a + b * b + c * c;
    if (p == 0.0) {
        return 0.0;
    }
    let q = 2.0 * abs(a * b * c);
    var x = 2.0 * sqrt(p / 3.0);
    for (var i = 0; i < 4; i = i + 1) {
        let slope = 3.0 * x * x - p;
        if (slope <= 0.0) {
            break;
        }
        x = x - (x * (x * x - p) - q) / slope;
    }
    return x * (1.0 + 1e-5);
}

// Whether γ² is convex on the box [l, u] whose doses span range
// (Cell::convex_on with its gradient-aware test, Convexity::Gamma2 only).
// The tests ask for a margin of 10⁻³ where the CPU asks for none, against
// f32 rounding.
fn convex_on(l: vec3<f32>, u: vec3<f32>, range: vec2<f32>) -> bool {
    let m = mixed();
    let phi = max(abs(range.y - d_ref), abs(range.x - d_ref));
    let c = 0.5 * (l + u);
    let h = 0.5 * (u - l);
    let txy = m.x + m.w * c.z;
    let txz = m.y + m.w * c.y;
    let tyz = m.z + m.w * c.x;
    let hxy = txy * isw.x * isw.y;
    let hxz = txz * isw.x * isw.z;
    let hyz = tyz * isw.y * isw.z;
    let mx = m.w * h.z * isw.x * isw.y;
    let my = m.w * h.y * isw.x * isw.z;
    let mz = m.w * h.x * isw.y * isw.z;
    let margin = sqrt(4.0 / 3.0 * (mx * mx + my * my + mz * mz));
    let frob2 = 2.0 * (hxy * hxy + hxz * hxz + hyz * hyz);
    let norm = zero_diagonal_norm(hxy, hxz, hyz);
    if (beta * phi * (norm + margin) <= 0.999) {
        return true;
    }
    // leaning on the gradient at the centre
    let gc = value_grad(c).yzw;
    let gs = gc * isw;
    let gn = length(gs);
    if (gn == 0.0) {
        return false;
    }
    let un = gs / gn;
    let hu = vec3<f32>(
        hxy * un.y + hxz * un.z,
        hxy * un.x + hyz * un.z,
        hxz * un.x + hyz * un.y,
    );
    let k_par0 = dot(un, hu);
    let cr = hu - k_par0 * un;
    let cross2 = dot(cr, cr);
    let perp2 = max(frob2 - k_par0 * k_par0 - 2.0 * cross2, 0.0);
    let perp = 0.5 * (abs(k_par0) + sqrt(max(2.0 * perp2 - k_par0 * k_par0, 0.0)));
    let k_par = abs(k_par0) + margin;
    let k_cross = sqrt(cross2) + margin;
    let k_perp = perp + margin;
    let dg = vec3<f32>(
        (abs(txy) * h.y + abs(txz) * h.z + abs(m.w) * h.y * h.z) * isw.x,
        (abs(txy) * h.x + abs(tyz) * h.z + abs(m.w) * h.x * h.z) * isw.y,
        (abs(txz) * h.x + abs(tyz) * h.y + abs(m.w) * h.x * h.y) * isw.z,
    );
    let e = length(dg);
    let p = 1.0 - beta * phi * k_perp - 1e-3;
    let q = beta * (gn * gn - phi * k_par);
    let r = beta * (e * gn + phi * k_cross);
    if (p < 0.0 || p + q - 2.0 * r < 0.0) {
        return false;
    }
    return !(q > 0.0 && r > 0.0 && r < q && p - r * r / q < 0.0);
}

// Projected Gauss-Newton from t0 in the box [lo, hi] (CellSearch::descend).
fn descend(t0: vec3<f32>, lo: vec3<f32>, hi: vec3<f32>) -> Descent {
    let inv_w = 1.0 / w;
    var t = t0;
    var cur = at(t);
    for (var it = 0u; it < CELL_ITERATIONS; it = it + 1u) {
        let grad = w * (t - tp) + beta * cur.f * cur.g;
        let held = ((t <= lo) & (grad > vec3<f32>(0.0))) | ((t >= hi) & (grad < vec3<f32>(0.0)));
        let free = select(vec3<f32>(1.0), vec3<f32>(0.0), held);
        let ug = beta * dot(free * cur.g * grad, inv_w);
        let uu = beta * dot(free * cur.g * cur.g, inv_w);
        let k = ug / (1.0 + uu);
        let delta = -free * (grad - cur.g * k) * inv_w;
        let predicted = -dot(grad, delta);
        if (predicted <= 1e-9 * cur.g2) {
            break;
        }
        var moved = false;
        var decreased = false;
        for (var attempt = 0u; attempt < 2u; attempt = attempt + 1u) {
            var direction = delta;
            if (attempt == 1u) {
                direction = -grad / (w + beta * cur.g * cur.g);
            }
            var step = 1.0;
            for (var k2 = 0u; k2 < CELL_HALVINGS; k2 = k2 + 1u) {
                let tn = clamp(t + step * direction, lo, hi);
                step = step * 0.5;
                let next = at(tn);
                if (next.g2 < cur.g2) {
                    moved = cur.g2 - next.g2 > 1e-7 * cur.g2;
                    decreased = true;
                    t = tn;
                    cur = next;
                    break;
                }
            }
            if (decreased) {
                break;
            }
        }
        if (!moved) {
            break;
        }
    }
    return Descent(cur.g2, t, w * (t - tp) + beta * cur.f * cur.g);
}

fn offer(g2: f32, c: vec3<i32>, t: vec3<f32>) {
    if (g2 < best_g2) {
        best_g2 = g2;
        best_q = vec3<f32>(c) + t;
    }
}

// Cell c's box in its own coordinates, the point q there, and the squared
// distance (mm²) from the point to the box (CellSearch::place).
fn place(c: vec3<i32>, q: vec3<f32>, spacing2: vec3<f32>) -> Placed {
    var out: Placed;
    out.inside = all(c >= vec3<i32>(-1)) && all(c <= n_i - vec3<i32>(1));
    let cf = vec3<f32>(c);
    out.lo = max(vec3<f32>(-0.5) - cf, vec3<f32>(0.0));
    out.hi = min(vec3<f32>(n_i) - vec3<f32>(0.5) - cf, vec3<f32>(1.0));
    out.tp = q - cf;
    let o = max(max(out.lo - out.tp, out.tp - out.hi), vec3<f32>(0.0));
    out.d2 = dot(o * o, spacing2);
    return out;
}

// The part of [lo, hi] within √(g2/w_a) of t_p along each axis.
fn within(g2: f32, lo: vec3<f32>, hi: vec3<f32>) -> Box {
    let r = sqrt(g2) * isw;
    let l = max(lo, tp - r);
    let u = min(hi, tp + r);
    return Box(l, u, all(l <= u));
}

// The smallest γ² in the box [lo, hi] of the current cell c_idx (updates
// best): boxes split in two along their longest axis (in units of Δd) and
// dropped when a lower bound reaches the best (CellSearch::branch_and_bound).
fn branch_and_bound(c_idx: vec3<i32>, lo: vec3<f32>, hi: vec3<f32>, box_min: vec3<f32>) {
    let m = mixed();
    let inv_w = 1.0 / w;
    var sl: array<vec3<f32>, STACK>;
    var su: array<vec3<f32>, STACK>;
    sl[0] = lo;
    su[0] = hi;
    var depth = 1u;
    var visits = 0u;
    while (depth > 0u && visits < BOX_VISITS) {
        depth = depth - 1u;
        visits = visits + 1u;
        let l = sl[depth];
        let u = su[depth];
        let c = 0.5 * (l + u);
        let h = 0.5 * (u - l);
        let goal = certify_level(best_g2);
        // distance and dose gap
        let o = max(max(l - tp, tp - u), vec3<f32>(0.0));
        let d2 = dot(w, o * o);
        if (d2 >= goal) {
            continue;
        }
        let range = box_range(l, u);
        let gap = gap_to(range, d_ref);
        if (d2 + beta * gap * gap >= goal) {
            continue;
        }
        // the linear model with its remainder
        let vg = value_grad(c);
        let g = vg.yzw;
        let txy = m.x + m.w * c.z;
        let txz = m.y + m.w * c.y;
        let tyz = m.z + m.w * c.x;
        let rho = abs(txy) * h.x * h.y + abs(txz) * h.x * h.z + abs(tyz) * h.y * h.z
            + abs(m.w) * h.x * h.y * h.z;
        let lin = vg.x - d_ref + dot(g, tp - c);
        let soft = max(abs(lin) - rho, 0.0);
        let gw = dot(g * g, inv_w);
        if (beta * soft * soft >= goal * (1.0 + beta * gw)) {
            continue;
        }
        // the same model kept inside the box, bounded by its tangent plane
        // at the box point nearest the best position
        let th = clamp(best_q - vec3<f32>(c_idx), l, u);
        let ell = vg.x - d_ref + dot(g, th - c);
        let sh = max(abs(ell) - rho, 0.0);
        let dt = th - tp;
        var low = beta * sh * sh + dot(w, dt * dt);
        let slope = 2.0 * (w * dt + beta * sh * sign(ell) * g);
        low = low + dot(min(slope * (l - th), slope * (u - th)), vec3<f32>(1.0));
        if (low >= goal) {
            continue;
        }
        // values in the box: its point nearest t_p and its centre
        let near = clamp(tp, l, u);
        let fn_ = at(near).g2;
        let fc = at(c).g2;
        var start = c;
        if (fn_ <= fc) {
            start = near;
        }
        offer(fn_, c_idx, near);
        offer(fc, c_idx, c);
        if (convex_on(l, u, range) || all(h <= box_min) || depth + 2u > STACK) {
            let d = descend(start, l, u);
            offer(d.g2, c_idx, d.t);
            continue;
        }
        // split the longest axis; the half nearer t_p goes on top
        let ext = w * h * h;
        var axis = 0u;
        if (ext.y > ext[axis]) {
            axis = 1u;
        }
        if (ext.z > ext[axis]) {
            axis = 2u;
        }
        var lower_u = u;
        lower_u[axis] = c[axis];
        var upper_l = l;
        upper_l[axis] = c[axis];
        if (tp[axis] < c[axis]) {
            sl[depth] = upper_l;
            su[depth] = u;
            sl[depth + 1u] = l;
            su[depth + 1u] = lower_u;
        } else {
            sl[depth] = l;
            su[depth] = lower_u;
            sl[depth + 1u] = upper_l;
            su[depth + 1u] = u;
        }
        depth = depth + 2u;
    }
}

// Minimises γ² in the part of cell c (box [lo, hi], the point at tp, cell
// loaded) that can beat the best: by a descent where γ² is convex there, else
// by a descent and the branch and bound.
fn minimise_cell(c: vec3<i32>, sub: Box, range: vec2<f32>, box_min: vec3<f32>) {
    let t0 = clamp(tp, sub.l, sub.u);
    let d = descend(t0, sub.l, sub.u);
    offer(d.g2, c, d.t);
    if (!convex_on(sub.l, sub.u, range)) {
        branch_and_bound(c, sub.l, sub.u, box_min);
    }
}

@compute @workgroup_size(64)
fn continuous(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.dispatch_width + gid.x;
    let plane = params.nx * params.ny;
    if (idx >= plane * params.nz) {
        return;
    }
    d_ref = reference[idx];
    if (d_ref < params.cutoff || (params.local == 1u && d_ref <= 0.0)) {
        gamma[idx] = -1.0;
        return;
    }
    var dd = params.dd_global;
    if (params.local == 1u) {
        dd = params.dose_fraction * d_ref;
    }
    beta = 1.0 / (dd * dd);
    n_i = vec3<i32>(i32(params.enx), i32(params.eny), i32(params.enz));
    let inv_s = params.eval_inv_spacing.xyz;
    let spacing = 1.0 / inv_s;
    let spacing2 = spacing * spacing;
    w = spacing2 * params.inv_dta2;
    isw = 1.0 / sqrt(w);
    let reach2 = params.max_g2 / params.inv_dta2;
    let box_min = 0.5 * params.lattice_step * inv_s;
    let k = idx / plane;
    let j = (idx % plane) / params.nx;
    let i = idx % params.nx;
    let p = params.ref_origin.xyz + vec3<f32>(f32(i), f32(j), f32(k)) * params.ref_spacing.xyz;
    let q = (p - params.eval_origin.xyz) * inv_s;
    let top = vec3<f32>(n_i - vec3<i32>(1));
    let home = vec3<i32>(clamp(floor(q), vec3<f32>(-1.0), top));
    best_g2 = NONE;
    best_q = q;

    // the walking descent
    var walked: array<vec3<i32>, WALK>;
    var settled: array<bool, WALK>;
    var n_walked = 0u;
    var c = home;
    var start = vec3<f32>(0.0);
    var has_start = false;
    while (n_walked < WALK) {
        let pl = place(c, q, spacing2);
        if (!pl.inside || pl.d2 > reach2) {
            break;
        }
        load_cell(c);
        tp = pl.tp;
        var t0 = clamp(tp, pl.lo, pl.hi);
        if (has_start) {
            t0 = clamp(start, pl.lo, pl.hi);
        }
        let d = descend(t0, pl.lo, pl.hi);
        offer(d.g2, c, d.t);
        walked[n_walked] = c;
        settled[n_walked] = convex_on(pl.lo, pl.hi, box_range(pl.lo, pl.hi));
        n_walked = n_walked + 1u;
        var next = c;
        var tn = d.t;
        for (var a = 0u; a < 3u; a = a + 1u) {
            if (d.t[a] <= 0.0 && d.grad[a] > 0.0 && pl.lo[a] == 0.0) {
                next[a] = next[a] - 1;
                tn[a] = 1.0;
            } else if (d.t[a] >= 1.0 && d.grad[a] < 0.0 && pl.hi[a] == 1.0) {
                next[a] = next[a] + 1;
                tn[a] = 0.0;
            }
        }
        if (all(next == c)) {
            break;
        }
        c = next;
        start = tn;
        has_start = true;
    }

    // every cell that can hold a smaller γ²
    // (within the reach: the walk's best may be far above max_gamma²)
    let r = sqrt(min(best_g2, params.max_g2)) * isw;
    let first = vec3<i32>(max(floor(q - r), vec3<f32>(-1.0)));
    let last = vec3<i32>(min(floor(q + r), top));
    for (var cz = first.z; cz <= last.z; cz = cz + 1) {
        for (var cy = first.y; cy <= last.y; cy = cy + 1) {
            for (var cx = first.x; cx <= last.x; cx = cx + 1) {
                let cc = vec3<i32>(cx, cy, cz);
                var skip = false;
                for (var n = 0u; n < n_walked; n = n + 1u) {
                    if (settled[n] && all(walked[n] == cc)) {
                        skip = true;
                    }
                }
                if (skip) {
                    continue;
                }
                let pl = place(cc, q, spacing2);
                if (pl.d2 > reach2 || pl.d2 * params.inv_dta2 >= best_g2) {
                    continue;
                }
                load_cell(cc);
                tp = pl.tp;
                let whole = box_range(pl.lo, pl.hi);
                let gap = gap_to(whole, d_ref);
                if (pl.d2 * params.inv_dta2 + beta * gap * gap >= best_g2) {
                    continue;
                }
                let sub = within(best_g2, pl.lo, pl.hi);
                if (!sub.ok) {
                    continue;
                }
                let range = box_range(sub.l, sub.u);
                let gap2 = gap_to(range, d_ref);
                if (pl.d2 * params.inv_dta2 + beta * gap2 * gap2 >= best_g2) {
                    continue;
                }
                minimise_cell(cc, sub, range, box_min);
            }
        }
    }
    if (loop_limit_reached()) {
        gamma[idx] = -3.0;
        return;
    }
    if (best_g2 >= NONE) {
        gamma[idx] = -2.0;
        return;
    }
    gamma[idx] = min(sqrt(best_g2), params.max_gamma);
}
