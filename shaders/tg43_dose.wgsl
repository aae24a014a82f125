// TG-43 dose on a slab of voxels: the WGSL port of
// isodose_core::engine::cpu::tg43_grid with the table look-up of
// isodose_core::tg43::kernel::DoseRateTable::dose_rate_per_u (f32 here, f64 there).
//
// @binding(0) uniform Params   @binding(1) storage<read> seeds: array<Seed>
// @binding(2) storage<read> table: array<f32>   @binding(3) storage<read_write> dose: array<f32>
//
// Structs must match dose-core/src/engine/gpu/layout.rs.

struct Params {
    origin: vec4<f32>,        // x0, y0, z0 of the slab's first voxel (mm)
    spacing: vec4<f32>,       // sx, sy, sz (mm)
    nx: u32,
    ny: u32,
    nz: u32,                  // planes in this slab
    n_seeds: u32,
    n_r: u32,                 // radial nodes of the table
    n_q: u32,                 // angular nodes
    halves: u32,              // 1: mirrored about 90 deg; 2: second half-mesh for z < 0
    dispatch_width: u32,      // invocations per row of the 2D dispatch
    r_min_sq: f32,
    scale: f32,               // decay and unit factor applied to the sum
    fine_step: f32,
    fine_extent: f32,
    coarse_step: f32,
    half_intervals: f32,
    _pad0: f32,
    _pad1: f32,
}

struct Seed {
    position: vec4<f32>,      // x, y, z (mm), air-kerma strength (U)
    axis: vec4<f32>,          // unit axis, 0
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> seeds: array<Seed>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> dose: array<f32>;

// Mirrors DoseRateTable::coordinates + bilinear.
fn dose_rate_per_u(z: f32, r2_in: f32) -> f32 {
    let r2 = max(r2_in, 1e-12);
    let inv_r = 1.0 / sqrt(r2);
    let r = r2 * inv_r;
    let rho = sqrt(max(r2 - z * z, 0.0));
    let z_abs = abs(z);
    let per_step = params.half_intervals / 0.70710678118654752;
    var v: f32;
    if (rho < z_abs) {
        v = rho * inv_r * per_step;
    } else {
        v = 2.0 * params.half_intervals - z_abs * inv_r * per_step;
    }
    let fine_end = params.fine_extent / params.fine_step;
    var u: f32;
    if (r < params.fine_extent) {
        u = r / params.fine_step;
    } else {
        u = fine_end + (r - params.fine_extent) / params.coarse_step;
    }
    u = min(u, f32(params.n_r - 1u) - 1e-3);
    v = clamp(v, 0.0, f32(params.n_q - 1u) - 1e-3);
    var iu = u32(u);
    let iv = u32(v);
    let fu = u - f32(iu);
    let fv = v - f32(iv);
    if (params.halves == 2u && z < 0.0) {
        iu = iu + params.n_r;
    }
    let base = iu * params.n_q + iv;
    let a = table[base];
    let b = table[base + 1u];
    let c = table[base + params.n_q];
    let d = table[base + params.n_q + 1u];
    let lo = a + (b - a) * fv;
    let hi = c + (d - c) * fv;
    let t = lo + (hi - lo) * fu;
    if (r2 >= params.r_min_sq) {
        return t * inv_r * inv_r;
    }
    return t / params.r_min_sq;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.y * params.dispatch_width + gid.x;
    let count = params.nx * params.ny * params.nz;
    if (index >= count) {
        return;
    }
    let i = index % params.nx;
    let j = (index / params.nx) % params.ny;
    let k = index / (params.nx * params.ny);
    let p = params.origin.xyz + vec3<f32>(f32(i), f32(j), f32(k)) * params.spacing.xyz;
    var sum = 0.0;
    for (var s = 0u; s < params.n_seeds; s = s + 1u) {
        let seed = seeds[s];
        let d = p - seed.position.xyz;
        let along = dot(d, seed.axis.xyz);
        sum = sum + seed.position.w * dose_rate_per_u(along, dot(d, d));
    }
    dose[index] = sum * params.scale;
}
