//! Host side of `shaders/dvh_histogram.wgsl`: the differential DVH
//! histogram of dose samples on the GPU, the port of the CPU's
//! `qa::dvh::histogram` (same bins, same spreading of each sample over its
//! dose range), with exact fixed-point sums.

use wgpu::util::DeviceExt;

use super::bind_group;
use super::layout::DvhParams;
use super::{GpuContext, WORKGROUP_SIZE, buffer, dispatch_grid, gpu_error, read_back};
use crate::error::Result;
use crate::qa::DoseSample;

/// Differential histogram (mm³ per bin) of `samples` in `bins` bins of
/// `bin_width_gy`, on the GPU. Sample doses and volumes are rounded to f32
/// (a sample whose dose lies within f32 rounding of a bin edge may land in
/// the neighbouring bin); every share is an f32 product converted to a
/// 64-bit integer in units of 2⁻⁶¹ of the total volume and summed exactly.
pub(crate) fn histogram(
    ctx: &GpuContext,
    samples: &[DoseSample],
    bin_width_gy: f64,
    bins: usize,
) -> Result<Vec<f64>> {
    let limits = &ctx.limits;
    let max_binding = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    let max_groups = u64::from(limits.max_compute_workgroups_per_dimension);
    let total: f64 = samples.iter().map(|s| s.volume_mm3.max(0.0)).sum();
    let mut out = vec![0.0; bins];
    if total <= 0.0 || bins == 0 {
        return Ok(out);
    }
    // fixed point: 2^61 units for the whole volume (every share, with its
    // f32 rounding, and every partial sum fits an i64 with room to spare);
    // the f32 the shader multiplies by, used again here
    let scale_f32 = (2f64.powi(61) / total) as f32;
    let scale = f64::from(scale_f32);
    if !scale_f32.is_normal() || !(bin_width_gy as f32).is_normal() {
        return Err(gpu_error(format!(
            "a DVH of {total:e} mm³ in bins of {bin_width_gy:e} Gy is beyond the GPU kernel's f32 range"
        )));
    }
    let slots = 2 * bins + 1;
    let acc_bytes = 8 * slots as u64;
    if acc_bytes > max_binding {
        return Err(gpu_error(format!(
            "{bins} DVH bins exceed the adapter's storage binding limit of {max_binding} bytes"
        )));
    }
    let packed: Vec<[f32; 4]> = samples
        .iter()
        .map(|s| {
            [
                s.dose_lo_gy as f32,
                s.dose_hi_gy as f32,
                s.volume_mm3 as f32,
                0.0,
            ]
        })
        .collect();
    let device = &ctx.device;
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let acc = buffer(
        device,
        "dvh bins",
        acc_bytes,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    );
    let read = buffer(
        device,
        "dvh read-back",
        acc_bytes,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    );
    let params_buf = buffer(
        device,
        "dvh params",
        size_of::<DvhParams>() as u64,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    );
    let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("dvh clear"),
    });
    enc.clear_buffer(&acc, 0, None);
    ctx.queue.submit([enc.finish()]);
    // batches of samples within one binding and one 2D dispatch
    let per_batch = (max_binding / 16)
        .min(max_groups * max_groups * u64::from(WORKGROUP_SIZE))
        .max(1) as usize;
    let layout = ctx.dvh.get_bind_group_layout(0);
    for chunk in packed.chunks(per_batch) {
        let (gx, gy) = dispatch_grid(
            (chunk.len() as u64).div_ceil(u64::from(WORKGROUP_SIZE)),
            max_groups,
        );
        let params = DvhParams {
            samples: chunk.len() as u32,
            bins: bins as u32,
            groups_x: gx as u32,
            _pad: 0,
            bin_width: bin_width_gy as f32,
            scale: scale_f32,
            _pad1: 0.0,
            _pad2: 0.0,
        };
        ctx.queue
            .write_buffer(&params_buf, 0, bytemuck::bytes_of(&params));
        let data = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dvh samples"),
            contents: bytemuck::cast_slice(chunk),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let group = bind_group(
            device,
            "dvh_histogram",
            &layout,
            &[(0, &params_buf), (1, &data), (2, &acc)],
        );
        ctx.dispatch("dvh_histogram", &ctx.dvh, &group, (gx as u32, gy as u32));
    }
    ctx.copy("dvh read-back", &[(&acc, 0, &read, 0, acc_bytes)]);
    // the words as wrapping 64-bit sums, in fixed point
    let sums: Vec<i64> = read_back(ctx, &read, acc_bytes, |bytes| {
        bytemuck::cast_slice::<u8, [u32; 2]>(bytes)
            .iter()
            .map(|[lo, hi]| ((u64::from(*hi) << 32) | u64::from(*lo)) as i64)
            .collect()
    })?;
    if let Some(e) = pollster::block_on(oom.pop()) {
        return Err(gpu_error(format!("out of GPU memory: {e}")));
    }
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(gpu_error(format!("GPU validation error: {e}")));
    }
    let (direct, diff) = sums.split_at(bins);
    let mut run = 0i64;
    for ((o, d), r) in out.iter_mut().zip(direct).zip(diff) {
        run = run.wrapping_add(*r);
        *o = d.wrapping_add(run) as f64 / scale;
    }
    Ok(out)
}
