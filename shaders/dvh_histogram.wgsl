// Differential DVH histogram on the GPU: the WGSL port of
// isodose_core::qa::dvh::histogram. Every dose sample (lowest and highest
// dose of the sample, Gy; its volume, mm³) spreads its volume uniformly over
// [lo, hi]: the partial end bins get their shares directly, the whole bins
// in between through a difference array (constant work per sample; the
// host adds the prefix sums of `diff` to `bins`).
//
// Sums are exact: each share (an f32 product, about 1e-7 relative) is
// converted to an integer number of 1/scale mm³ (scale = 2^61 / the total
// volume of the samples, so that every share and every partial sum fits a
// signed 64-bit integer with room to spare while the unit stays 2^-61 of
// the total) and added
// into a 64-bit fixed-point accumulator made of two u32 atomics (the low
// word, then the high word with the carry of that addition). Negative
// differences are added as their 64-bit two's complement; the host reads
// the words back as wrapping i64 sums. The order of the additions does not
// change the result.
//
// @binding(0) uniform Params
// @binding(1) storage<read> samples: array<vec4<f32>> (lo Gy, hi Gy, volume mm³, 0)
// @binding(2) storage<read_write> acc: array<atomic<u32>>:
//   (low, high) words of bin b at 2b, then of diff d at 2 (bins + d)
//
// Structs must match dose-core/src/engine/gpu/layout.rs.

struct Params {
    samples: u32,             // samples in this dispatch
    bins: u32,                // bins of the histogram (the difference array has bins + 1)
    groups_x: u32,            // workgroups per row of the 2D dispatch
    _pad: u32,
    bin_width: f32,           // Gy
    scale: f32,               // fixed-point units per mm³
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> samples: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> acc: array<atomic<u32>>;

// Adds `v` (>= 0, converted to fixed point) to accumulator `slot`, or
// subtracts it when `negative`.
fn add(slot: u32, v: f32, negative: bool) {
    // at most 2^61 (the whole volume) and its f32 rounding; the clamp only
    // guards the conversion
    let units = clamp(v * params.scale, 0.0, 4.6e18);
    // the 64-bit integer nearest to units, as (low, high) words: the high
    // word is exact, the subtraction too (Sterbenz), f32 limits the rest
    let hi_f = floor(units / 4294967296.0);
    var hi = u32(hi_f);
    var lo = u32(round(units - hi_f * 4294967296.0));
    if (lo == 0u && hi == 0u) {
        return;
    }
    if (negative) {
        // −(hi, lo) as a 64-bit two's complement
        lo = ~lo + 1u;
        hi = ~hi + select(0u, 1u, lo == 0u);
    }
    let old = atomicAdd(&acc[2u * slot], lo);
    let carry = select(0u, 1u, old > 0xffffffffu - lo);
    let high = hi + carry;
    if (high != 0u) {
        atomicAdd(&acc[2u * slot + 1u], high);
    }
}

fn bin_of(d: f32) -> u32 {
    return min(u32(max(d, 0.0) / params.bin_width), params.bins - 1u);
}

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let n = (wg.y * params.groups_x + wg.x) * 64u + li;
    if (n >= params.samples) {
        return;
    }
    let s = samples[n];
    let lo = s.x;
    let hi = s.y;
    let vol = s.z;
    if (vol <= 0.0) {
        return;
    }
    let w = params.bin_width;
    let bl = bin_of(lo);
    let bh = bin_of(hi);
    if (bl == bh || hi - lo <= 0.0) {
        add(bl, vol, false);
        return;
    }
    let per_gy = vol / (hi - lo);
    add(bl, per_gy * (f32(bl + 1u) * w - lo), false);
    add(bh, max(per_gy * (hi - f32(bh) * w), 0.0), false);
    if (bh > bl + 1u) {
        let diff = params.bins;
        add(diff + bl + 1u, per_gy * w, false);
        add(diff + bh, per_gy * w, true);
    }
}
