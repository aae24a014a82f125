//! Host side of `shaders/tg43_dose.wgsl`: buffers, slabs of z-planes within
//! the adapter's limits, dispatch and read-back.

use ndarray::Array3;
use wgpu::util::DeviceExt;

use super::bind_group;
use super::layout::{Tg43Params, Tg43Seed};
use super::{GpuContext, WORKGROUP_SIZE, dispatch_grid, gpu_error, read_back};
use crate::error::{DoseError, Result};
use crate::grid::{DoseGrid, Grid3, Volume};
use crate::tg43::kernel::{COARSE_STEP_MM, FINE_EXTENT_MM, FINE_STEP_MM, HALF_ANGLE_INTERVALS};
use crate::tg43::{DoseRateTable, Implant};

/// Σ_seeds S_K · Ḋ/S_K(voxel) · `scale` on every voxel, on the GPU.
pub(crate) fn tg43_grid(
    ctx: &GpuContext,
    implant: &Implant,
    grid: &Grid3,
    table: &DoseRateTable,
    scale: f64,
) -> Result<DoseGrid> {
    let (values, n_r, n_q, halves, r_min_sq) = table.gpu_view();
    let limits = &ctx.limits;
    let max_binding = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    let table_bytes = size_of_val(values) as u64;
    if table_bytes > max_binding {
        return Err(gpu_error(format!(
            "the TG-43 table needs {table_bytes} bytes, above the adapter's storage binding limit of {max_binding}"
        )));
    }
    let seeds: Vec<Tg43Seed> = implant
        .seeds()
        .iter()
        .filter(|s| s.air_kerma_strength_u() > 0.0)
        .map(|s| {
            let p = s.position_mm();
            let a = s.direction();
            Tg43Seed {
                position: [
                    p.x as f32,
                    p.y as f32,
                    p.z as f32,
                    s.air_kerma_strength_u() as f32,
                ],
                axis: [a.x as f32, a.y as f32, a.z as f32, 0.0],
            }
        })
        .collect();
    let [nz, ny, nx] = grid.shape();
    let mut out = vec![0f32; grid.len()];
    if seeds.is_empty() {
        return volume(grid, out);
    }
    if size_of_val(seeds.as_slice()) as u64 > max_binding {
        return Err(gpu_error(format!(
            "{} seeds exceed the adapter's storage binding limit",
            seeds.len()
        )));
    }
    // a slab of whole z-planes per dispatch: within the output binding and
    // the 2D dispatch limits
    let plane = (nx * ny) as u64;
    let max_groups = u64::from(limits.max_compute_workgroups_per_dimension);
    let by_dispatch = max_groups * max_groups * u64::from(WORKGROUP_SIZE);
    let max_voxels = (max_binding / 4).min(by_dispatch).min(1 << 26);
    if plane > max_voxels {
        return Err(gpu_error(format!(
            "one z-plane of {nx} x {ny} voxels exceeds the adapter's limits ({max_voxels} voxels per dispatch)"
        )));
    }
    let slab_planes = ((max_voxels / plane) as usize).clamp(1, nz);
    let slab_voxels = slab_planes * nx * ny;
    let slab_bytes = (slab_voxels * 4) as u64;

    let device = &ctx.device;
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let table_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("tg43 table"),
        contents: bytemuck::cast_slice(values),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let seed_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("tg43 seeds"),
        contents: bytemuck::cast_slice(&seeds),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let params_buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("tg43 params"),
        size: size_of::<Tg43Params>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let out_buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("tg43 dose"),
        size: slab_bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let read_buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("tg43 read-back"),
        size: slab_bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let layout = ctx.tg43.get_bind_group_layout(0);
    let group = bind_group(
        device,
        "tg43",
        &layout,
        &[
            (0, &params_buf),
            (1, &seed_buf),
            (2, &table_buf),
            (3, &out_buf),
        ],
    );
    let origin = grid.origin_mm();
    let spacing = grid.spacing_mm();
    let mut k0 = 0;
    while k0 < nz {
        let planes = slab_planes.min(nz - k0);
        let count = planes * nx * ny;
        let (gx, gy) = dispatch_grid(
            (count as u64).div_ceil(u64::from(WORKGROUP_SIZE)),
            max_groups,
        );
        let (gx, gy) = (gx as u32, gy as u32);
        let params = Tg43Params {
            origin: [
                origin.x as f32,
                origin.y as f32,
                (origin.z + k0 as f64 * spacing.z) as f32,
                0.0,
            ],
            spacing: [spacing.x as f32, spacing.y as f32, spacing.z as f32, 0.0],
            nx: nx as u32,
            ny: ny as u32,
            nz: planes as u32,
            n_seeds: seeds.len() as u32,
            n_r: n_r as u32,
            n_q: n_q as u32,
            halves: halves as u32,
            dispatch_width: gx * WORKGROUP_SIZE,
            r_min_sq: r_min_sq as f32,
            scale: scale as f32,
            fine_step: FINE_STEP_MM as f32,
            fine_extent: FINE_EXTENT_MM as f32,
            coarse_step: COARSE_STEP_MM as f32,
            half_intervals: HALF_ANGLE_INTERVALS as f32,
            _pad0: 0.0,
            _pad1: 0.0,
        };
        ctx.queue
            .write_buffer(&params_buf, 0, bytemuck::bytes_of(&params));
        ctx.dispatch("tg43", &ctx.tg43, &group, (gx, gy));
        let bytes = (count * 4) as u64;
        ctx.copy("tg43 read-back", &[(&out_buf, 0, &read_buf, 0, bytes)]);
        let start = k0 * nx * ny;
        read_back(ctx, &read_buf, bytes, |view| {
            out[start..start + count].copy_from_slice(bytemuck::cast_slice(view));
        })?;
        k0 += planes;
    }
    if let Some(e) = pollster::block_on(oom.pop()) {
        return Err(gpu_error(format!("out of GPU memory: {e}")));
    }
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(gpu_error(format!("GPU validation error: {e}")));
    }
    volume(grid, out)
}

fn volume(grid: &Grid3, out: Vec<f32>) -> Result<DoseGrid> {
    let [nz, ny, nx] = grid.shape();
    let data = Array3::from_shape_vec((nz, ny, nx), out).map_err(|e| DoseError::InvalidGrid {
        reason: format!("internal shape error: {e}"),
    })?;
    Volume::new(grid.clone(), data)
}
