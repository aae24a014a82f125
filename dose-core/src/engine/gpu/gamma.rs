//! Host side of `shaders/gamma.wgsl` (lattice search) and
//! `shaders/gamma_continuous.wgsl` (continuous search): the search offsets,
//! slabs of reference planes with the evaluated planes they can reach,
//! dispatch and read-back. Both kernels share their parameters and bindings
//! (the continuous one has no offsets).

use ndarray::Array3;
use wgpu::util::DeviceExt;

use super::bind_group;
use super::layout::GammaParams;
use super::{GpuContext, WORKGROUP_SIZE, dispatch_grid, gpu_error, read_back};
use crate::error::{DoseError, Result};
use crate::grid::DoseView;
use crate::qa::gamma::{
    FD_STEP, GN_HALVINGS, GN_ITERATIONS, GammaSearch, GammaSetup, REFINE_LEVELS, REFINE_MOVES,
    gamma_cpu_at,
};

/// γ of every reference voxel on the GPU with the criteria's search, with
/// the CPU kernel's conventions (NaN not evaluated, +∞ no evaluated dose
/// within reach).
pub(crate) fn gamma_grid(
    ctx: &GpuContext,
    reference: DoseView<'_>,
    evaluated: DoseView<'_>,
    s: &GammaSetup,
) -> Result<Array3<f32>> {
    let mut gamma = gamma_slabs(ctx, reference, evaluated, s, 1 << 24)?;
    // the points a driver's loop limit cut short (code -3 of both kernels,
    // see shaders/gamma_continuous.wgsl): computed on the CPU
    let unfinished: Vec<[usize; 3]> = gamma
        .indexed_iter()
        .filter(|(_, g)| **g == UNFINISHED)
        .map(|((k, j, i), _)| [k, j, i])
        .collect();
    if !unfinished.is_empty() {
        let values = gamma_cpu_at(reference, evaluated, s, &unfinished);
        for (&[k, j, i], v) in unfinished.iter().zip(values) {
            gamma[[k, j, i]] = v;
        }
    }
    Ok(gamma)
}

/// The kernels' code for a point whose search the driver's loop limit cut
/// short.
const UNFINISHED: f32 = -3.0;

/// As [`gamma_grid`], with at most `slab_voxel_cap` reference voxels per
/// dispatch (besides the adapter's own limits).
fn gamma_slabs(
    ctx: &GpuContext,
    reference: DoseView<'_>,
    evaluated: DoseView<'_>,
    s: &GammaSetup,
    slab_voxel_cap: u64,
) -> Result<Array3<f32>> {
    let limits = &ctx.limits;
    let max_binding = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    let offsets: Vec<[f32; 4]> = s
        .offsets
        .iter()
        .map(|o| {
            [
                o.r_mm[0] as f32,
                o.r_mm[1] as f32,
                o.r_mm[2] as f32,
                o.dist2 as f32,
            ]
        })
        .collect();
    let rg = reference.grid();
    let eg = evaluated.grid();
    let [nz, ny, nx] = rg.shape();
    let [enz, eny, enx] = eg.shape();
    let (ro, rs) = (rg.origin_mm(), rg.spacing_mm());
    let (eo, es) = (eg.origin_mm(), eg.spacing_mm());
    let plane = (nx * ny) as u64;
    let eplane = (enx * eny) as u64;
    let max_groups = u64::from(limits.max_compute_workgroups_per_dimension);
    let by_dispatch = max_groups * max_groups * u64::from(WORKGROUP_SIZE);
    let max_voxels = (max_binding / 4).min(by_dispatch).min(slab_voxel_cap);
    if plane > max_voxels || eplane * 3 > max_binding / 4 {
        return Err(gpu_error(format!(
            "a z-plane of {nx} x {ny} (reference) or {enx} x {eny} (evaluated) voxels exceeds the adapter's limits"
        )));
    }
    // evaluated planes a reference slab [z0, z1] (mm) can reach
    let reach = s.reach_mm();
    let eval_planes = |z0: f64, z1: f64| -> (usize, usize) {
        let lo = ((z0 - reach - eo.z) / es.z).floor() - 1.0;
        let hi = ((z1 + reach - eo.z) / es.z).ceil() + 1.0;
        let lo = lo.clamp(0.0, (enz - 1) as f64) as usize;
        let hi = hi.clamp(0.0, (enz - 1) as f64) as usize;
        (lo, hi.max(lo))
    };
    // slab size: within the output and evaluated bindings
    let mut slab_planes = ((max_voxels / plane) as usize).clamp(1, nz);
    loop {
        let z1 = ro.z + (slab_planes - 1) as f64 * rs.z;
        let (lo, hi) = eval_planes(ro.z, z1);
        if ((hi - lo + 1) as u64) * eplane * 4 <= max_binding || slab_planes == 1 {
            if ((hi - lo + 1) as u64) * eplane * 4 > max_binding {
                return Err(gpu_error(format!(
                    "the evaluated planes within reach of one reference plane ({} planes of {enx} x {eny}) exceed the adapter's storage binding limit of {max_binding} bytes",
                    hi - lo + 1
                )));
            }
            break;
        }
        slab_planes = slab_planes.div_ceil(2);
    }
    let slab_voxels = slab_planes * nx * ny;
    let ref_flat = reference.data().as_standard_layout();
    let ref_flat = ref_flat.as_slice().ok_or_else(|| DoseError::InvalidGrid {
        reason: "internal: reference dose not contiguous".into(),
    })?;
    let eval_flat = evaluated.data().as_standard_layout();
    let eval_flat = eval_flat.as_slice().ok_or_else(|| DoseError::InvalidGrid {
        reason: "internal: evaluated dose not contiguous".into(),
    })?;

    let device = &ctx.device;
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let offsets_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("gamma offsets"),
        // (one unused entry for the continuous search, which has no offsets)
        contents: bytemuck::cast_slice(if offsets.is_empty() {
            &[[0f32; 4]][..]
        } else {
            &offsets[..]
        }),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let params_buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("gamma params"),
        size: size_of::<GammaParams>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let storage = |label: &str, bytes: u64, usage: wgpu::BufferUsages| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage,
            mapped_at_creation: false,
        })
    };
    let slab_bytes = (slab_voxels * 4) as u64;
    let ref_buf = storage(
        "gamma reference",
        slab_bytes,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
    );
    let (lo0, hi0) = eval_planes(ro.z, ro.z + (slab_planes - 1) as f64 * rs.z);
    let eval_cap = {
        // the largest evaluated range any slab needs
        let mut cap = hi0 - lo0 + 1;
        let mut k0 = 0;
        while k0 < nz {
            let planes = slab_planes.min(nz - k0);
            let z0 = ro.z + k0 as f64 * rs.z;
            let (lo, hi) = eval_planes(z0, z0 + (planes - 1) as f64 * rs.z);
            cap = cap.max(hi - lo + 1);
            k0 += planes;
        }
        cap
    };
    let eval_buf = storage(
        "gamma evaluated",
        eval_cap as u64 * eplane * 4,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
    );
    let out_buf = storage(
        "gamma out",
        slab_bytes,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    );
    let read_buf = storage(
        "gamma read-back",
        slab_bytes,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    );
    let (pipeline, offsets_binding) = match s.criteria.search {
        GammaSearch::Lattice => (&ctx.gamma, Some((1, &offsets_buf))),
        GammaSearch::Continuous => (&ctx.gamma_continuous, None),
    };
    let layout = pipeline.get_bind_group_layout(0);
    let buffers: Vec<(u32, &wgpu::Buffer)> = [
        Some((0, &params_buf)),
        offsets_binding,
        Some((2, &ref_buf)),
        Some((3, &eval_buf)),
        Some((4, &out_buf)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let group = bind_group(device, "gamma", &layout, &buffers);
    let c = &s.criteria;
    let mut out = vec![0f32; rg.len()];
    let mut k0 = 0;
    while k0 < nz {
        let planes = slab_planes.min(nz - k0);
        let count = planes * nx * ny;
        let z0 = ro.z + k0 as f64 * rs.z;
        let (elo, ehi) = eval_planes(z0, z0 + (planes - 1) as f64 * rs.z);
        let (gx, gy) = dispatch_grid(
            (count as u64).div_ceil(u64::from(WORKGROUP_SIZE)),
            max_groups,
        );
        let (gx, gy) = (gx as u32, gy as u32);
        let params = GammaParams {
            ref_origin: [ro.x as f32, ro.y as f32, z0 as f32, 0.0],
            ref_spacing: [rs.x as f32, rs.y as f32, rs.z as f32, 0.0],
            eval_origin: [eo.x as f32, eo.y as f32, eo.z as f32, 0.0],
            eval_inv_spacing: [
                (1.0 / es.x) as f32,
                (1.0 / es.y) as f32,
                (1.0 / es.z) as f32,
                0.0,
            ],
            fd_mm: [
                (FD_STEP * es.x) as f32,
                (FD_STEP * es.y) as f32,
                (FD_STEP * es.z) as f32,
                0.0,
            ],
            nx: nx as u32,
            ny: ny as u32,
            nz: planes as u32,
            dispatch_width: gx * WORKGROUP_SIZE,
            enx: enx as u32,
            eny: eny as u32,
            enz: enz as u32,
            ek0: elo as u32,
            n_offsets: offsets.len() as u32,
            local: u32::from(c.local),
            refine_levels: REFINE_LEVELS,
            refine_moves: REFINE_MOVES,
            gn_iterations: GN_ITERATIONS,
            gn_halvings: GN_HALVINGS,
            dd_global: (c.dose_percent / 100.0 * s.normalisation_gy) as f32,
            dose_fraction: (c.dose_percent / 100.0) as f32,
            cutoff: s.cutoff_gy as f32,
            inv_dta2: s.inv_dta2 as f32,
            max_g2: s.max_g2 as f32,
            lattice_step: s.lattice_step_mm as f32,
            max_gamma: c.max_gamma as f32,
            _pad0: 0.0,
            _pad1: 0.0,
            _pad2: 0.0,
        };
        let q = &ctx.queue;
        q.write_buffer(&params_buf, 0, bytemuck::bytes_of(&params));
        let r0 = k0 * nx * ny;
        q.write_buffer(&ref_buf, 0, bytemuck::cast_slice(&ref_flat[r0..r0 + count]));
        let e0 = elo * enx * eny;
        let e1 = (ehi + 1) * enx * eny;
        q.write_buffer(&eval_buf, 0, bytemuck::cast_slice(&eval_flat[e0..e1]));
        ctx.dispatch("gamma", pipeline, &group, (gx, gy));
        let bytes = (count * 4) as u64;
        ctx.copy("gamma read-back", &[(&out_buf, 0, &read_buf, 0, bytes)]);
        read_back(ctx, &read_buf, bytes, |view| {
            let src: &[f32] = bytemuck::cast_slice(view);
            for (dst, &g) in out[r0..r0 + count].iter_mut().zip(src) {
                *dst = if g == -1.0 {
                    f32::NAN
                } else if g == -2.0 {
                    f32::INFINITY
                } else {
                    g
                };
            }
        })?;
        k0 += planes;
    }
    if let Some(e) = pollster::block_on(oom.pop()) {
        return Err(gpu_error(format!("out of GPU memory: {e}")));
    }
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(gpu_error(format!("GPU validation error: {e}")));
    }
    Array3::from_shape_vec((nz, ny, nx), out).map_err(|e| DoseError::InvalidGrid {
        reason: format!("internal shape error: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{Grid3, Volume};
    use crate::qa::GammaCriteria;

    /// Slabs of 1 and 3 planes (each with its own window of evaluated planes)
    /// give the same γ as one dispatch of the whole grid.
    #[test]
    fn slabs_give_the_same_gamma_as_one_dispatch() {
        let ctx = match GpuContext::new() {
            Ok(ctx) => ctx,
            Err(_) if std::env::var("ISODOSE_SKIP_GPU_TESTS").as_deref() == Ok("1") => return,
            Err(e) => {
                panic!("no GPU adapter: {e} (set ISODOSE_SKIP_GPU_TESTS=1 to skip on purpose)")
            }
        };
        let g = Grid3::new([12, 10, 11], [2.0; 3], [-10.0, -9.0, -12.0]).unwrap();
        let e = Grid3::new([9, 8, 9], [2.6; 3], [-11.0, -10.0, -11.5]).unwrap();
        let field = |grid: &Grid3, shift: f64| {
            let d = Array3::from_shape_fn((grid.nz(), grid.ny(), grid.nx()), |(k, j, i)| {
                let p = grid.index_to_world([k, j, i]);
                (2.0 * (-(p.coords - nalgebra::Vector3::new(shift, 0.0, shift)).norm_squared()
                    / 200.0)
                    .exp()) as f32
            });
            Volume::new(grid.clone(), d).unwrap()
        };
        let (r, ev) = (field(&g, 0.0), field(&e, 1.2));
        let s =
            crate::qa::gamma::setup(r.view(), ev.view(), &GammaCriteria::new(2.0, 2.0)).unwrap();
        let whole = gamma_slabs(&ctx, r.view(), ev.view(), &s, 1 << 24).unwrap();
        for planes in [1u64, 3] {
            let sliced = gamma_slabs(&ctx, r.view(), ev.view(), &s, planes * 110).unwrap();
            for (a, b) in whole.iter().zip(sliced.iter()) {
                assert!(a == b || (a.is_nan() && b.is_nan()), "{planes}: {a} vs {b}");
            }
        }
    }
}
