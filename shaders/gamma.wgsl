// 3D gamma index on a slab of reference voxels: the WGSL port of
// isodose_core::qa::gamma's CPU kernel (lattice search in increasing distance
// with early exit, then Gauss-Newton steps and the 26-neighbour pattern
// search), in f32.
//
// @binding(0) uniform Params   @binding(1) storage<read> offsets: array<vec4<f32>>
// @binding(2) storage<read> reference: array<f32> (this slab)
// @binding(3) storage<read> evaluated: array<f32> (planes ek0 .. ek0 + eplanes)
// @binding(4) storage<read_write> gamma: array<f32> (this slab)
//
// Output codes: >= 0 is gamma (capped at max_gamma); -1 not evaluated (below
// the cut-off); -2 no evaluated dose within reach; -3 unfinished (a driver's
// loop limit cut the search short: the host computes the point on the CPU).
// The host turns -1 and -2 into NaN and +inf. Structs must match dose-core/src/engine/gpu/layout.rs.

struct Params {
    ref_origin: vec4<f32>,        // x, y, z (mm) of the slab's first reference voxel
    ref_spacing: vec4<f32>,       // sx, sy, sz (mm)
    eval_origin: vec4<f32>,       // x, y, z (mm) of the evaluated grid's first voxel
    eval_inv_spacing: vec4<f32>,  // 1/sx, 1/sy, 1/sz (1/mm)
    fd_mm: vec4<f32>,             // central-difference steps of the gradient (mm)
    nx: u32,
    ny: u32,
    nz: u32,                      // reference planes in this slab
    dispatch_width: u32,
    enx: u32,
    eny: u32,
    enz: u32,                     // planes of the whole evaluated grid
    ek0: u32,                     // first evaluated plane uploaded
    n_offsets: u32,
    local: u32,                   // 1: local dose difference
    refine_levels: u32,
    refine_moves: u32,
    gn_iterations: u32,
    gn_halvings: u32,
    dd_global: f32,               // ΔD of global gamma (Gy)
    dose_fraction: f32,           // dose_percent / 100 (local ΔD = this × D_ref)
    cutoff: f32,                  // Gy
    inv_dta2: f32,                // 1/mm²
    max_g2: f32,
    lattice_step: f32,            // mm
    max_gamma: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> offsets: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> reference: array<f32>;
@group(0) @binding(3) var<storage, read> evaluated: array<f32>;
@group(0) @binding(4) var<storage, read_write> gamma: array<f32>;

fn ev(i: u32, j: u32, k: u32) -> f32 {
    return evaluated[((k - params.ek0) * params.eny + j) * params.enx + i];
}

// Trilinear evaluated dose at continuous evaluated-grid coordinates c;
// .y = 0 when c lies outside the grid's box (half a voxel beyond its outer
// centres, value held constant there).
fn sample(c: vec3<f32>) -> vec2<f32> {
    let n = vec3<f32>(f32(params.enx), f32(params.eny), f32(params.enz));
    if (any(c < vec3<f32>(-0.5)) || any(c > n - vec3<f32>(0.5))) {
        return vec2<f32>(0.0, 0.0);
    }
    let v = clamp(c, vec3<f32>(0.0), n - vec3<f32>(1.0));
    let lo = vec3<u32>(floor(v));
    let hi = min(lo + vec3<u32>(1u), vec3<u32>(params.enx - 1u, params.eny - 1u, params.enz - 1u));
    let f = v - floor(v);
    let c00 = mix(ev(lo.x, lo.y, lo.z), ev(hi.x, lo.y, lo.z), f.x);
    let c01 = mix(ev(lo.x, hi.y, lo.z), ev(hi.x, hi.y, lo.z), f.x);
    let c10 = mix(ev(lo.x, lo.y, hi.z), ev(hi.x, lo.y, hi.z), f.x);
    let c11 = mix(ev(lo.x, hi.y, hi.z), ev(hi.x, hi.y, hi.z), f.x);
    return vec2<f32>(mix(mix(c00, c01, f.y), mix(c10, c11, f.y), f.z), 1.0);
}

// γ² at offset r (mm) from the point at continuous coordinates c0; .y = 0
// when the evaluated dose is absent there.
fn gamma2(c0: vec3<f32>, r: vec3<f32>, d_ref: f32, inv_dd2: f32) -> vec2<f32> {
    let s = sample(c0 + r * params.eval_inv_spacing.xyz);
    let diff = s.x - d_ref;
    return vec2<f32>(dot(r, r) * params.inv_dta2 + diff * diff * inv_dd2, s.y);
}

// Gauss-Newton refinement (see qa::gamma::gauss_newton): returns the new
// (γ², r) as (r.xyz, γ²).
fn gauss_newton(c0: vec3<f32>, r_in: vec3<f32>, g2_in: f32, d_ref: f32, inv_dd2: f32) -> vec4<f32> {
    var r = r_in;
    var g2 = g2_in;
    let a2 = 1.0 / params.inv_dta2;
    let b2 = 1.0 / inv_dd2;
    let h = params.fd_mm.xyz;
    for (var it = 0u; it < params.gn_iterations; it = it + 1u) {
        let s0 = sample(c0 + r * params.eval_inv_spacing.xyz);
        if (s0.y == 0.0) {
            break;
        }
        let f = s0.x - d_ref;
        var g = vec3<f32>(0.0);
        for (var a = 0u; a < 3u; a = a + 1u) {
            var e = vec3<f32>(0.0);
            e[a] = h[a];
            let up = sample(c0 + (r + e) * params.eval_inv_spacing.xyz);
            let dn = sample(c0 + (r - e) * params.eval_inv_spacing.xyz);
            if (up.y > 0.0 && dn.y > 0.0) {
                g[a] = (up.x - dn.x) / (2.0 * h[a]);
            }
        }
        let v = r * params.inv_dta2 + g * (f * inv_dd2);
        let c = a2 * dot(g, v) / (b2 + a2 * dot(g, g));
        let delta = -a2 * (v - g * c);
        var t = 1.0;
        var moved = false;
        for (var k = 0u; k < params.gn_halvings; k = k + 1u) {
            let rn = r + t * delta;
            t = t * 0.5;
            if (dot(rn, rn) * params.inv_dta2 >= g2) {
                continue;
            }
            let gn = gamma2(c0, rn, d_ref, inv_dd2);
            if (gn.y > 0.0 && gn.x < g2) {
                g2 = gn.x;
                r = rn;
                moved = true;
                break;
            }
        }
        if (!moved) {
            break;
        }
    }
    return vec4<f32>(r, g2);
}

// Whether a driver's limit on loop iterations has cut this invocation's
// loops short. Lavapipe (Mesa's llvmpipe) ends every loop of an invocation,
// silently, once 65,535 loop iterations have run in all
// (LP_MAX_TGSI_LOOP_ITERATIONS in gallivm, shared by every loop of the
// shader and by the SIMD lanes run together): a search cut short that way
// would report too large a γ. This loop of two trips (a count the compiler
// cannot fold) then ends after one. The kernels report such a point
// unfinished (-3) for the host to compute on the CPU; gamma_continuous.wgsl,
// compiled after this file, calls it too.
fn loop_limit_reached() -> bool {
    let probe_trips = 2u + u32(params.nx == 0u);
    var trips = 0u;
    loop {
        trips = trips + 1u;
        if (trips >= probe_trips) {
            break;
        }
    }
    return trips < probe_trips;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.y * params.dispatch_width + gid.x;
    let plane = params.nx * params.ny;
    if (idx >= plane * params.nz) {
        return;
    }
    let d_ref = reference[idx];
    if (d_ref < params.cutoff || (params.local == 1u && d_ref <= 0.0)) {
        gamma[idx] = -1.0;
        return;
    }
    var dd = params.dd_global;
    if (params.local == 1u) {
        dd = params.dose_fraction * d_ref;
    }
    let inv_dd2 = 1.0 / (dd * dd);
    let k = idx / plane;
    let j = (idx % plane) / params.nx;
    let i = idx % params.nx;
    let p = params.ref_origin.xyz + vec3<f32>(f32(i), f32(j), f32(k)) * params.ref_spacing.xyz;
    let c0 = (p - params.eval_origin.xyz) * params.eval_inv_spacing.xyz;

    var best = 3.0e38;
    var best_r = vec3<f32>(0.0);
    var found = false;
    for (var n = 0u; n < params.n_offsets; n = n + 1u) {
        let o = offsets[n];
        if (o.w >= best || o.w > params.max_g2) {
            break;
        }
        let g = gamma2(c0, o.xyz, d_ref, inv_dd2);
        if (g.y > 0.0 && g.x < best) {
            best = g.x;
            best_r = o.xyz;
            found = true;
        }
    }
    if (found && best > 0.0 && best < params.max_g2) {
        let gn = gauss_newton(c0, best_r, best, d_ref, inv_dd2);
        best_r = gn.xyz;
        best = gn.w;
        var h = params.lattice_step * 0.5;
        for (var level = 0u; level < params.refine_levels; level = level + 1u) {
            for (var it = 0u; it < params.refine_moves; it = it + 1u) {
                var moved = false;
                for (var dz = -1; dz <= 1; dz = dz + 1) {
                    for (var dy = -1; dy <= 1; dy = dy + 1) {
                        for (var dx = -1; dx <= 1; dx = dx + 1) {
                            if (dx == 0 && dy == 0 && dz == 0) {
                                continue;
                            }
                            let r = best_r + vec3<f32>(f32(dx), f32(dy), f32(dz)) * h;
                            let g = gamma2(c0, r, d_ref, inv_dd2);
                            if (g.y > 0.0 && g.x < best) {
                                best = g.x;
                                best_r = r;
                                moved = true;
                            }
                        }
                    }
                }
                if (!moved) {
                    break;
                }
            }
            h = h * 0.5;
        }
    }
    if (loop_limit_reached()) {
        gamma[idx] = -3.0;
        return;
    }
    // (after the probe: a search cut short before any position inside the
    // evaluated grid is unfinished, not "no dose within reach")
    if (!found) {
        gamma[idx] = -2.0;
        return;
    }
    gamma[idx] = min(sqrt(best), params.max_gamma);
}
