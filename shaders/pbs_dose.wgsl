// Proton PBS forward dose on a slab of voxels: the WGSL port of
// isodose_core::engine::proton_cpu::pbs_dose (the voxel loop of
// isodose_core::proton::prepare::for_each_voxel and the kernel
// isodose_core::proton::kernel::lateral_dose_per_proton), in f32.
//
// Gather: one workgroup per tile of 4 x 4 x 4 voxels, one invocation per
// voxel; every invocation of a tile loops over the same host-culled list of
// pencils that can reach the tile and adds, for each pencil within its
// depth-node range and lateral cut-off,
//
//   N · [ A_core(t) exp(−dx²/2σx² − dy²/2σy²) + A_halo(t) exp(−dx²/2σhx² − dy²/2σhy²) ]
//
// with t = (Δ − Δ0)/step the fractional depth node, the amplitudes linear
// between nodes and the widths and cut-off of the nearer node (as the CPU).
// The sum is compensated (Kahan) and kept across pencil batches in `dose`
// as (sum, compensation); the host reads sum − compensation.
//
// Exact voxel selection: the CPU decides in f64 which voxels a pencil
// reaches (0 <= t < last, dx² + dy² <= cut-off² of the nearer node) and
// which node is nearer (t − ⌊t⌋ < 1/2). Where the f32 t lies within the
// host's error bound (pencil.err) of n + 1/2, t is recomputed here with the
// CPU's own f64 operations in integer arithmetic (f64_add, f64_mul: IEEE
// round to nearest even), so that the same node is chosen even when only
// the last bits decide (aligned grids put whole planes exactly there).
// Where it lies within the bound of the other boundaries, the pair is not
// summed here but appended to `ambiguous`, and the host evaluates it in f64
// exactly as the CPU does.
//
// @binding(0) uniform Params   @binding(1) storage<read> beams: array<Beam>
// @binding(2) storage<read> pencils: array<Pencil> (this batch)
// @binding(3) storage<read> nodes: array<Node> (this batch)
// @binding(4) storage<read> lists: array<u32> (tile records, then pencil indices)
// @binding(5) storage<read_write> dose: array<vec2<f32>> (this slab: sum, compensation)
// @binding(6) storage<read_write> ambiguous: Ambiguous
// @binding(7) storage<read> rows: array<vec2<u32>> (f64 bits of the CPU's Δ of each row (j, k), per beam)
//
// Structs must match dose-core/src/engine/gpu/layout.rs.

struct Params {
    nx: u32,
    ny: u32,
    nz: u32,                  // planes in this slab
    k0: u32,                  // z index of the slab's first plane in the grid
    tiles_x: u32,             // tiles along x and y (4 voxels each)
    tiles_y: u32,
    n_tiles: u32,             // tile records in `lists` (one workgroup each)
    groups_x: u32,            // workgroups per row of the 2D dispatch
    pencil_base: u32,         // plan-wide index of this batch's first pencil
    ambiguous_capacity: u32,  // pairs `ambiguous` holds
    one: f32,                 // 1.0, unknown to the compiler (keeps Kahan's compensation)
    exact_ties: u32,          // 1: decide half-node ties with the CPU's f64 arithmetic (`rows` bound)
}

struct Beam {
    base: vec4<f32>,          // beam (x, y, Δ) of voxel (0, 0, 0), mm; w unused
    dbx: vec4<f32>,           // change of (x, y, Δ) per voxel along i (Δ part 0 on the CPU's fast path)
    dby: vec4<f32>,           // ... along j
    dbz: vec4<f32>,           // ... along k
    exact: vec4<u32>,         // f64 bits of the CPU's Δ step along i (low, high), first row in `rows`, 1 on the fast path
}

struct Pencil {
    iso: vec4<f32>,           // x_iso, y_iso (mm), 1/SAD_x, 1/SAD_y (1/mm)
    depth: vec4<f32>,         // Δ0 (mm), 1/step (1/mm), last node index, protons
    err: vec4<f32>,           // error bound of t, of lateral distances (mm); largest cut-off radius (mm); 0
    index: vec4<u32>,         // first node in `nodes`, beam, first word of its f64 block in `rows` (dij only), 0
    exact: vec4<u32>,         // f64 bits (low, high) of Δ0 and of 1/step, as the CPU has them
}

struct Node {
    core: vec4<f32>,          // amplitude (Gy per proton), 1/2σx², 1/2σy² (1/mm²), cut-off² (mm²)
    halo: vec4<f32>,          // amplitude (Gy per proton), 1/2σhx², 1/2σhy² (1/mm²), cut-off (mm)
}

struct Ambiguous {
    count: atomic<u32>,       // pairs found (may exceed the capacity: the host then retries)
    _pad: u32,
    pairs: array<vec2<u32>>,  // (voxel index in the slab, plan-wide pencil index)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> beams: array<Beam>;
@group(0) @binding(2) var<storage, read> pencils: array<Pencil>;
@group(0) @binding(3) var<storage, read> nodes: array<Node>;
@group(0) @binding(4) var<storage, read> lists: array<u32>;
@group(0) @binding(5) var<storage, read_write> dose: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> ambiguous: Ambiguous;
@group(0) @binding(7) var<storage, read> rows: array<vec2<u32>>;

// ---------------------------------------------------------------------------
// IEEE binary64 arithmetic in 32-bit integers (round to nearest, ties to
// even; normal finite numbers and zeros only), to repeat the CPU's f64
// computation of the depth-node position t bit for bit where it decides
// the nearer node. An f64 is vec2<u32>(low word, high word) of its bits.

fn f64_is_zero(a: vec2<u32>) -> bool {
    return (a.y & 0x7fffffffu) == 0u && a.x == 0u;
}

// 64-bit integers as vec2<u32>(low, high)
fn u64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    let carry = select(0u, 1u, lo < a.x);
    return vec2<u32>(lo, a.y + b.y + carry);
}

fn u64_sub(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let borrow = select(0u, 1u, a.x < b.x);
    return vec2<u32>(a.x - b.x, a.y - b.y - borrow);
}

fn u64_less(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn u64_shl(a: vec2<u32>, s: u32) -> vec2<u32> {
    if (s == 0u) {
        return a;
    }
    if (s >= 64u) {
        return vec2<u32>(0u, 0u);
    }
    if (s >= 32u) {
        return vec2<u32>(0u, a.x << (s - 32u));
    }
    return vec2<u32>(a.x << s, (a.y << s) | (a.x >> (32u - s)));
}

// a >> s, with the lowest bit set when any 1 bit was shifted out (sticky)
fn u64_shr_sticky(a: vec2<u32>, s: u32) -> vec2<u32> {
    if (s == 0u) {
        return a;
    }
    if (s >= 64u) {
        return vec2<u32>(select(0u, 1u, a.x != 0u || a.y != 0u), 0u);
    }
    var r: vec2<u32>;
    var lost: bool;
    if (s >= 32u) {
        let t = s - 32u;
        if (t == 0u) {
            r = vec2<u32>(a.y, 0u);
        } else {
            r = vec2<u32>(a.y >> t, 0u);
        }
        lost = a.x != 0u || (t != 0u && (a.y << (32u - t)) != 0u);
    } else {
        r = vec2<u32>((a.x >> s) | (a.y << (32u - s)), a.y >> s);
        lost = (a.x << (32u - s)) != 0u;
    }
    if (lost) {
        r.x = r.x | 1u;
    }
    return r;
}

fn u64_clz(a: vec2<u32>) -> u32 {
    if (a.y != 0u) {
        return countLeadingZeros(a.y);
    }
    return 32u + countLeadingZeros(a.x);
}

// 53-bit significand (implicit bit included) and biased exponent
fn f64_mantissa(a: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x, (a.y & 0xfffffu) | 0x100000u);
}

fn f64_exponent(a: vec2<u32>) -> i32 {
    return i32((a.y >> 20u) & 0x7ffu);
}

fn f64_pack(sign: u32, e: i32, m: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(m.x, (sign << 31u) | (u32(e) << 20u) | (m.y & 0xfffffu));
}

// Rounds m (leading bit at bit 52 + g, g >= 1 guard bits below the 53 kept)
// to 53 bits, nearest even; returns the packed number.
fn f64_round(sign: u32, e_in: i32, m_in: vec2<u32>, g: u32) -> vec2<u32> {
    let half = u64_shl(vec2<u32>(1u, 0u), g - 1u);
    let mask = u64_sub(u64_shl(vec2<u32>(1u, 0u), g), vec2<u32>(1u, 0u));
    let rem = vec2<u32>(m_in.x & mask.x, m_in.y & mask.y);
    var m = u64_shr_sticky(vec2<u32>(m_in.x & ~mask.x, m_in.y & ~mask.y), g);
    var e = e_in;
    if (u64_less(half, rem) || (rem.x == half.x && rem.y == half.y && (m.x & 1u) == 1u)) {
        m = u64_add(m, vec2<u32>(1u, 0u));
        if ((m.y & 0x200000u) != 0u) {
            m = u64_shr_sticky(m, 1u);
            e = e + 1;
        }
    }
    return f64_pack(sign, e, m);
}

fn f64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (f64_is_zero(a)) {
        return b;
    }
    if (f64_is_zero(b)) {
        return a;
    }
    var x = a;
    var y = b;
    // |x| >= |y|
    if (u64_less(vec2<u32>(x.x, x.y & 0x7fffffffu), vec2<u32>(y.x, y.y & 0x7fffffffu))) {
        x = b;
        y = a;
    }
    let sx = x.y >> 31u;
    let sy = y.y >> 31u;
    var e = f64_exponent(x);
    // 10 guard bits: significands at bits 62..10
    let mx = u64_shl(f64_mantissa(x), 10u);
    let my = u64_shr_sticky(u64_shl(f64_mantissa(y), 10u), u32(e - f64_exponent(y)));
    var m: vec2<u32>;
    if (sx == sy) {
        m = u64_add(mx, my);
    } else {
        m = u64_sub(mx, my);
        if (m.x == 0u && m.y == 0u) {
            return vec2<u32>(0u, 0u);
        }
    }
    let lz = u64_clz(m);
    if (lz == 0u) {
        // carry into bit 63
        m = u64_shr_sticky(m, 1u);
        e = e + 1;
    } else if (lz > 1u) {
        m = u64_shl(m, lz - 1u);
        e = e - i32(lz - 1u);
    }
    return f64_round(sx, e, m, 10u);
}

// 32 x 32 -> 64-bit product
fn u32_mul_wide(x: u32, y: u32) -> vec2<u32> {
    let x0 = x & 0xffffu;
    let x1 = x >> 16u;
    let y0 = y & 0xffffu;
    let y1 = y >> 16u;
    let p00 = x0 * y0;
    let p01 = x0 * y1;
    let p10 = x1 * y0;
    let p11 = x1 * y1;
    let mid = p01 + p10;
    let mid_carry = select(0u, 0x10000u, mid < p01);
    let lo = p00 + (mid << 16u);
    let lo_carry = select(0u, 1u, lo < p00);
    return vec2<u32>(lo, p11 + (mid >> 16u) + mid_carry + lo_carry);
}

fn f64_mul(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let sign = (a.y ^ b.y) >> 31u;
    if (f64_is_zero(a) || f64_is_zero(b)) {
        return vec2<u32>(0u, sign << 31u);
    }
    var e = f64_exponent(a) + f64_exponent(b) - 1023;
    let ma = f64_mantissa(a);
    let mb = f64_mantissa(b);
    // 106-bit product in words w0..w3
    let ll = u32_mul_wide(ma.x, mb.x);
    let lh = u32_mul_wide(ma.x, mb.y);
    let hl = u32_mul_wide(ma.y, mb.x);
    let hh = u32_mul_wide(ma.y, mb.y);
    let w0 = ll.x;
    var mid = u64_add(vec2<u32>(ll.y, 0u), vec2<u32>(lh.x, lh.y));
    mid = u64_add(mid, vec2<u32>(hl.x, hl.y));
    let w1 = mid.x;
    let upper = u64_add(vec2<u32>(mid.y, 0u), hh);
    let w2 = upper.x;
    let w3 = upper.y;
    // leading bit at 105 or 104: keep the top 54 or 53 bits plus one word
    // of guard bits, the rest as sticky
    var r: u32 = 20u;
    if ((w3 & 0x200u) != 0u) {
        r = 21u;
        e = e + 1;
    }
    // (w3 w2 w1) >> r, and one more 32-bit guard word below: shift the
    // 96-bit value (w3, w2, w1) right by r - 10 so that 10 guard bits remain
    let s = r - 10u;
    let lo = (w1 >> s) | (w2 << (32u - s));
    let hi = (w2 >> s) | (w3 << (32u - s));
    var m = vec2<u32>(lo, hi);
    if (w0 != 0u || (w1 << (32u - s)) != 0u) {
        m.x = m.x | 1u;
    }
    return f64_round(sign, e, m, 10u);
}

fn f64_from_u32(i: u32) -> vec2<u32> {
    if (i == 0u) {
        return vec2<u32>(0u, 0u);
    }
    let msb = 31u - countLeadingZeros(i);
    let m = u64_shl(vec2<u32>(i, 0u), 52u - msb);
    return f64_pack(0u, 1023 + i32(msb), m);
}

// The bit of weight 1/2 of a positive f64: t − ⌊t⌋ >= 1/2.
fn f64_upper_half(t: vec2<u32>) -> bool {
    if (f64_is_zero(t)) {
        return false;
    }
    let p = 1074 - f64_exponent(t);
    if (p < 0 || p > 52) {
        return false;
    }
    let m = f64_mantissa(t);
    let q = u32(p);
    if (q >= 32u) {
        return ((m.y >> (q - 32u)) & 1u) == 1u;
    }
    return ((m.x >> q) & 1u) == 1u;
}

fn f64_neg(a: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x, a.y ^ 0x80000000u);
}

// a <= b for non-negative f64s (which order as their bits)
fn f64_le_nonneg(a: vec2<u32>, b: vec2<u32>) -> bool {
    return !u64_less(b, a);
}

// The CPU's lateral cut-off test of voxel (i, j, k) and pencil p in its own
// f64 arithmetic (engine::gpu::pbs::voxel_dose, the operations of the CPU's
// `visit` in their order): dx² + dy² <= cut-off² of node `near`. Reads the
// pencil's f64 block in `rows` from p.index.z: x_iso, y_iso, 1/SAD_x,
// 1/SAD_y, the beam's (x, y) of voxel (0, 0, 0) and their steps along i, j
// and k, then the cut-off² of every node. Only the dij kernels bind such
// blocks.
fn cpu_inside(i: u32, j: u32, k: u32, p: Pencil, near: u32) -> bool {
    let e = p.index.z;
    let bm = beams[p.index.y];
    let x_iso = rows[e];
    let y_iso = rows[e + 1u];
    let inv_sad_x = rows[e + 2u];
    let inv_sad_y = rows[e + 3u];
    let fi = f64_from_u32(i);
    let jf = f64_from_u32(j);
    let kf = f64_from_u32(k);
    let row_x = f64_add(f64_add(rows[e + 4u], f64_mul(jf, rows[e + 8u])), f64_mul(kf, rows[e + 10u]));
    let row_y = f64_add(f64_add(rows[e + 5u], f64_mul(jf, rows[e + 9u])), f64_mul(kf, rows[e + 11u]));
    let row_delta = rows[bm.exact.z + k * params.ny + j];
    let fast = bm.exact.w == 1u;
    var delta = row_delta;
    if (!fast) {
        delta = f64_add(row_delta, f64_mul(fi, bm.exact.xy));
    }
    let one = vec2<u32>(0u, 0x3ff00000u);
    let cx = f64_mul(x_iso, f64_add(one, f64_mul(delta, inv_sad_x)));
    let cy = f64_mul(y_iso, f64_add(one, f64_mul(delta, inv_sad_y)));
    var dx: vec2<u32>;
    var dy: vec2<u32>;
    if (fast) {
        dx = f64_add(f64_add(row_x, f64_neg(cx)), f64_mul(fi, rows[e + 6u]));
        dy = f64_add(f64_add(row_y, f64_neg(cy)), f64_mul(fi, rows[e + 7u]));
    } else {
        dx = f64_add(f64_add(row_x, f64_mul(fi, rows[e + 6u])), f64_neg(cx));
        dy = f64_add(f64_add(row_y, f64_mul(fi, rows[e + 7u])), f64_neg(cy));
    }
    let d2 = f64_add(f64_mul(dx, dx), f64_mul(dy, dy));
    return f64_le_nonneg(d2, rows[e + 12u + near]);
}

fn defer_to_host(voxel: u32, pencil: u32) {
    let n = atomicAdd(&ambiguous.count, 1u);
    if (n < params.ambiguous_capacity) {
        ambiguous.pairs[n] = vec2<u32>(voxel, params.pencil_base + pencil);
    }
}

// The CPU's depth-node position t = (Δ − Δ0) · (1/step), bit for bit, from
// its f64 row Δ, Δ step along i (`di`), Δ0 and 1/step: Δ = row + i · di, or
// the row's Δ on the CPU's fast path.
fn cpu_t(row: vec2<u32>, di: vec2<u32>, fast: bool, i: u32, delta0: vec2<u32>, inv_step: vec2<u32>) -> vec2<u32> {
    var delta = row;
    if (!fast) {
        delta = f64_add(delta, f64_mul(f64_from_u32(i), di));
    }
    let neg_delta0 = vec2<u32>(delta0.x, delta0.y ^ 0x80000000u);
    return f64_mul(f64_add(delta, neg_delta0), inv_step);
}

// What one (voxel, pencil) pair gives: skip, a dose, a half-node or range
// tie to decide in f64 (`exact` false only), or a pair for the host.
const SKIP: u32 = 0u;
const DOSE: u32 = 1u;
const TIE: u32 = 2u;
const HOST: u32 = 3u;

struct Term {
    status: u32,
    dose: f32,                // Gy (protons × Gy per proton) when DOSE
}

// Beam coordinates (x, y, Δ) of voxel (i, j, k) in beam `beam`, f32.
fn beam_coordinates(beam: u32, fi: f32, fj: f32, fk: f32) -> vec3<f32> {
    let bm = beams[beam];
    return bm.base.xyz + fi * bm.dbx.xyz + fj * bm.dby.xyz + fk * bm.dbz.xyz;
}

// The pair (voxel (i, j, k) of the grid at beam coordinates b, pencil p):
// the CPU's for_each_voxel test and lateral_dose_per_proton. With `exact`, a
// pair within rounding of t = 0, t = last or t = n + 1/2 is decided with the
// CPU's f64 t; without, it is returned as TIE. With `defer`, a pair within
// rounding of the lateral cut-off is returned as HOST; without, it is
// decided with the CPU's f64 arithmetic (`cpu_inside`; the dij kernels).
// Without `evaluate`, a DOSE pair carries no dose (the dij's count pass).
fn term(b: vec3<f32>, i: u32, j: u32, k: u32, p: Pencil, exact: bool, defer: bool, evaluate: bool) -> Term {
    let delta = b.z;
    let t = (delta - p.depth.x) * p.depth.y;
    let last = p.depth.z;
    let te = p.err.x;
    if (t < -te || t >= last + te) {
        return Term(SKIP, 0.0);
    }
    let dx = b.x - p.iso.x * (1.0 + delta * p.iso.z);
    let dy = b.y - p.iso.y * (1.0 + delta * p.iso.w);
    let d2 = dx * dx + dy * dy;
    let le = p.err.y;
    let reach = p.err.z + le;
    if (d2 > reach * reach) {
        return Term(SKIP, 0.0);
    }
    // node n (n + 1 <= last) and the position between n and n + 1
    let n = min(u32(clamp(t, 0.0, last)), u32(last) - 1u);
    let frac_raw = t - f32(n);
    var upper = frac_raw >= 0.5;
    if (t < te || t >= last - te || abs(frac_raw - 0.5) <= te) {
        // within rounding of a boundary: decide as the CPU does, in f64
        if (!exact) {
            return Term(TIE, 0.0);
        }
        let bm = beams[p.index.y];
        let row = rows[bm.exact.z + k * params.ny + j];
        let t64 = cpu_t(row, bm.exact.xy, bm.exact.w == 1u, i, p.exact.xy, p.exact.zw);
        // 0 <= t < last (positive f64s order as their bits)
        if (!f64_is_zero(t64)
            && ((t64.y >> 31u) == 1u || !u64_less(t64, f64_from_u32(u32(last))))) {
            return Term(SKIP, 0.0);
        }
        upper = f64_upper_half(t64);
    }
    let frac = clamp(frac_raw, 0.0, 1.0);
    let n0 = nodes[p.index.x + n];
    let n1 = nodes[p.index.x + n + 1u];
    var near = n0;
    if (upper) {
        near = n1;
    }
    let outer = near.halo.w + le;
    if (d2 > outer * outer) {
        return Term(SKIP, 0.0);
    }
    let inner = near.halo.w - le;
    if (inner <= 0.0 || d2 >= inner * inner) {
        if (defer) {
            return Term(HOST, 0.0);
        }
        if (!cpu_inside(i, j, k, p, n + select(0u, 1u, upper))) {
            return Term(SKIP, 0.0);
        }
    }
    if (!evaluate) {
        return Term(DOSE, 0.0);
    }
    let core_amp = n0.core.x + frac * (n1.core.x - n0.core.x);
    let halo_amp = n0.halo.x + frac * (n1.halo.x - n0.halo.x);
    let dx2 = dx * dx;
    let dy2 = dy * dy;
    var d = core_amp * exp(-(dx2 * near.core.y + dy2 * near.core.z));
    if (halo_amp > 0.0) {
        d = d + halo_amp * exp(-(dx2 * near.halo.y + dy2 * near.halo.z));
    }
    return Term(DOSE, p.depth.w * d);
}

// Ties queued per invocation during the pencil loop and decided after it,
// so that the f64 emulation does not stall the other invocations of a
// SIMD group at every pencil.
const QUEUE: u32 = 16u;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let w = wg.y * params.groups_x + wg.x;
    if (w >= params.n_tiles) {
        return;
    }
    let tile = lists[4u * w];
    let start = lists[4u * w + 1u];
    let end = lists[4u * w + 2u];
    let tx = tile % params.tiles_x;
    let ty = (tile / params.tiles_x) % params.tiles_y;
    let tz = tile / (params.tiles_x * params.tiles_y);
    let i = 4u * tx + (li & 3u);
    let j = 4u * ty + ((li >> 2u) & 3u);
    let kk = 4u * tz + (li >> 4u);
    if (i >= params.nx || j >= params.ny || kk >= params.nz) {
        return;
    }
    let v = (kk * params.ny + j) * params.nx + i;
    let fi = f32(i);
    let fj = f32(j);
    let fk = f32(params.k0 + kk);
    let acc = dose[v];
    var s = acc.x;
    var c = acc.y;
    var queue: array<u32, QUEUE>;
    var queued = 0u;
    var beam = 0xffffffffu;
    var b = vec3<f32>(0.0, 0.0, 0.0);
    for (var e = start; e <= end; e = e + 1u) {
        var pi: u32;
        var exact = false;
        if (e < end) {
            pi = lists[e];
        } else if (queued > 0u) {
            // after the list: the queued ties, one per iteration
            queued = queued - 1u;
            pi = queue[queued];
            exact = true;
            e = e - 1u;
        } else {
            break;
        }
        let p = pencils[pi];
        if (p.index.y != beam) {
            beam = p.index.y;
            b = beam_coordinates(beam, fi, fj, fk);
        }
        var r = term(b, i, j, params.k0 + kk, p, exact, true, true);
        if (r.status == TIE) {
            if (params.exact_ties == 0u) {
                defer_to_host(v, pi);
                continue;
            }
            if (queued < QUEUE) {
                queue[queued] = pi;
                queued = queued + 1u;
                continue;
            }
            r = term(b, i, j, params.k0 + kk, p, true, true, true);
        }
        if (r.status == HOST) {
            defer_to_host(v, pi);
            continue;
        }
        if (r.status == DOSE) {
            // compensated (Kahan) summation; `s * one` (= s) stops the
            // shader compiler from simplifying (s + y) - s - y to 0, as
            // Mesa's does
            let y = r.dose - c;
            let sum = s + y;
            c = (sum - s * params.one) - y;
            s = sum;
        }
    }
    dose[v] = vec2<f32>(s, c);
}

// Test entry point (not used by the dose): for each case (a, b, t inputs),
// writes f64_add(a, b), f64_mul(a, b) and the t of the kernel.
// case: [a (low, high), b (low, high)], [row Δ, Δ step along i],
// [Δ0, 1/step], [i, fast, 0, 0]; result: [add, mul], [t, upper half, 0].
@group(0) @binding(8) var<storage, read> f64_cases: array<vec4<u32>>;
@group(0) @binding(9) var<storage, read_write> f64_results: array<vec4<u32>>;

@compute @workgroup_size(64, 1, 1)
fn check_f64(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    if (4u * n + 3u >= arrayLength(&f64_cases)) {
        return;
    }
    let ab = f64_cases[4u * n];
    let row = f64_cases[4u * n + 1u];
    let pen = f64_cases[4u * n + 2u];
    let iv = f64_cases[4u * n + 3u];
    let t = cpu_t(row.xy, row.zw, iv.y == 1u, iv.x, pen.xy, pen.zw);
    f64_results[2u * n] = vec4<u32>(f64_add(ab.xy, ab.zw), f64_mul(ab.xy, ab.zw));
    f64_results[2u * n + 1u] = vec4<u32>(t, select(0u, 1u, f64_upper_half(t)), 0u);
}
