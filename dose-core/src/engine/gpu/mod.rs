//! The wgpu backend: one GPU context (instance, adapter, device, queue and the
//! compiled pipelines), created once per engine and reused.
//!
//! Software adapters (Mesa's lavapipe, `DeviceType::Cpu`) are accepted when
//! the GPU is asked for explicitly, so that the kernels are tested for real on
//! machines without a GPU; `BackendChoice::Auto` uses only hardware adapters.

pub(crate) mod dij;
pub(crate) mod dvh;
pub(crate) mod gamma;
pub(crate) mod layout;
pub(crate) mod pbs;
pub(crate) mod tg43;

use crate::error::{DoseError, Result};

/// The WGSL source of the TG-43 kernel.
pub const TG43_DOSE_WGSL: &str = include_str!("../../../../shaders/tg43_dose.wgsl");

/// The WGSL source of the gamma-index kernel with the lattice search.
pub const GAMMA_WGSL: &str = include_str!("../../../../shaders/gamma.wgsl");

/// The WGSL module of the gamma-index kernel with the continuous search:
/// `shaders/gamma.wgsl` (Params, bindings, the loop-limit probe) followed by
/// `shaders/gamma_continuous.wgsl` (entry point `continuous`).
pub const GAMMA_CONTINUOUS_WGSL: &str = concat!(
    include_str!("../../../../shaders/gamma.wgsl"),
    "\n",
    include_str!("../../../../shaders/gamma_continuous.wgsl")
);

/// The WGSL source of the proton PBS forward-dose kernel.
pub const PBS_DOSE_WGSL: &str = include_str!("../../../../shaders/pbs_dose.wgsl");

/// The WGSL module of the proton dij kernels: `shaders/pbs_dose.wgsl`
/// (structs, bindings and the pair function they share) followed by
/// `shaders/pbs_dij.wgsl` (entry points `dij_count` and `dij_fill`).
pub const PBS_DIJ_WGSL: &str = concat!(
    include_str!("../../../../shaders/pbs_dose.wgsl"),
    "\n",
    include_str!("../../../../shaders/pbs_dij.wgsl")
);

/// The WGSL source of the DVH histogram kernel.
pub const DVH_HISTOGRAM_WGSL: &str = include_str!("../../../../shaders/dvh_histogram.wgsl");

/// Every kernel: (file name in `shaders/`, WGSL source).
pub const SHADERS: &[(&str, &str)] = &[
    ("tg43_dose.wgsl", TG43_DOSE_WGSL),
    ("gamma.wgsl", GAMMA_WGSL),
    ("gamma.wgsl + gamma_continuous.wgsl", GAMMA_CONTINUOUS_WGSL),
    ("pbs_dose.wgsl", PBS_DOSE_WGSL),
    ("pbs_dose.wgsl + pbs_dij.wgsl", PBS_DIJ_WGSL),
    ("dvh_histogram.wgsl", DVH_HISTOGRAM_WGSL),
];

/// Workgroup size of every kernel (must match `@workgroup_size` in the shaders).
pub const WORKGROUP_SIZE: u32 = 64;

/// A buffer of at least `bytes` (at least 16, rounded up to whole words).
pub(crate) fn buffer(
    device: &wgpu::Device,
    label: &str,
    bytes: u64,
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(16).div_ceil(4) * 4,
        usage,
        mapped_at_creation: false,
    })
}

/// Storage the host writes to.
pub(crate) fn storage_dst() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST
}

/// Maps `bytes` of `buf` for reading, waits, and hands the bytes to `f`.
pub(crate) fn read_back<T>(
    ctx: &GpuContext,
    buf: &wgpu::Buffer,
    bytes: u64,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    buf.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
        let _ = tx.send(r);
    });
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| gpu_error(format!("waiting for the GPU: {e}")))?;
    rx.recv()
        .map_err(|e| gpu_error(format!("read-back lost: {e}")))?
        .map_err(|e| gpu_error(format!("read-back failed: {e}")))?;
    let out = {
        let view = buf
            .get_mapped_range(0..bytes)
            .map_err(|e| gpu_error(format!("read-back mapping: {e}")))?;
        f(&view)
    };
    buf.unmap();
    Ok(out)
}

/// A bind group of whole buffers for `layout`: `(binding, buffer)` pairs.
pub(crate) fn bind_group(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffers: &[(u32, &wgpu::Buffer)],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
        .iter()
        .map(|&(binding, buffer)| wgpu::BindGroupEntry {
            binding,
            resource: buffer.as_entire_binding(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// The 2D dispatch (workgroups along x, along y) of `groups` workgroups
/// with at most `max` per dimension.
pub(crate) fn dispatch_grid(groups: u64, max: u64) -> (u64, u64) {
    let gx = groups.clamp(1, max.max(1));
    (gx, groups.div_ceil(gx).max(1))
}

/// A GPU and the pipelines isodose runs on it.
#[derive(Debug)]
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    tg43: wgpu::ComputePipeline,
    gamma: wgpu::ComputePipeline,
    gamma_continuous: wgpu::ComputePipeline,
    pbs_dose: wgpu::ComputePipeline,
    dij_count: wgpu::ComputePipeline,
    dij_fill: wgpu::ComputePipeline,
    dvh: wgpu::ComputePipeline,
}

fn gpu_error(reason: impl Into<String>) -> DoseError {
    DoseError::BackendUnavailable {
        reason: reason.into(),
    }
}

/// Compiles the kernel `main` of a WGSL source; a validation error names the file.
fn pipeline(device: &wgpu::Device, name: &str, source: &str) -> Result<wgpu::ComputePipeline> {
    pipelines(device, name, source, &["main"]).map(|mut p| p.remove(0))
}

/// Compiles the entry points `entries` of one WGSL module; a validation
/// error names the file.
fn pipelines(
    device: &wgpu::Device,
    name: &str,
    source: &str,
    entries: &[&str],
) -> Result<Vec<wgpu::ComputePipeline>> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipelines = entries
        .iter()
        .map(|entry| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            })
        })
        .collect();
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(gpu_error(format!("shader {name}.wgsl: {e}")));
    }
    Ok(pipelines)
}

impl GpuContext {
    /// Opens the first adapter wgpu offers (high-performance preference) and
    /// compiles the kernels. An error when there is none.
    pub fn new() -> Result<Self> {
        Self::open(true)?.ok_or_else(|| gpu_error("no GPU adapter"))
    }

    /// As [`GpuContext::new`], for hardware adapters only: `None` (before
    /// any device is opened or kernel compiled) when the adapter wgpu offers
    /// is a software rasteriser.
    pub fn hardware() -> Result<Option<Self>> {
        Self::open(false)
    }

    fn open(accept_software: bool) -> Result<Option<Self>> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        // Vulkan (hardware drivers and Mesa's lavapipe) unless WGPU_BACKEND says otherwise
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::VULKAN;
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| gpu_error(format!("no GPU adapter: {e}")))?;
        let info = adapter.get_info();
        if !accept_software && info.device_type == wgpu::DeviceType::Cpu {
            return Ok(None);
        }
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("isodose"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::default(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| gpu_error(format!("cannot open {}: {e}", info.name)))?;
        let tg43 = pipeline(&device, "tg43_dose", TG43_DOSE_WGSL)?;
        let gamma = pipeline(&device, "gamma", GAMMA_WGSL)?;
        let gamma_continuous = pipelines(
            &device,
            "gamma_continuous",
            GAMMA_CONTINUOUS_WGSL,
            &["continuous"],
        )?
        .pop()
        .ok_or_else(|| gpu_error("shader gamma_continuous.wgsl: no entry point"))?;
        let pbs_dose = pipeline(&device, "pbs_dose", PBS_DOSE_WGSL)?;
        let [dij_count, dij_fill]: [wgpu::ComputePipeline; 2] =
            pipelines(&device, "pbs_dij", PBS_DIJ_WGSL, &["dij_count", "dij_fill"])?
                .try_into()
                .map_err(|_| gpu_error("shader pbs_dij.wgsl: two entry points expected"))?;
        let dvh = pipeline(&device, "dvh_histogram", DVH_HISTOGRAM_WGSL)?;
        Ok(Some(Self {
            device,
            queue,
            info,
            limits,
            tg43,
            gamma,
            gamma_continuous,
            pbs_dose,
            dij_count,
            dij_fill,
            dvh,
        }))
    }

    /// "name (backend, device type)" of the adapter.
    pub fn adapter_name(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Records and submits one compute pass of `pipeline` with `group` over
    /// `(gx, gy)` workgroups.
    pub(crate) fn dispatch(
        &self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        group: &wgpu::BindGroup,
        (gx, gy): (u32, u32),
    ) {
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: None,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, Some(group), &[]);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        self.queue.submit([enc.finish()]);
    }

    /// Records and submits buffer copies (source, offset, destination,
    /// offset, bytes), in order.
    pub(crate) fn copy(
        &self,
        label: &str,
        copies: &[(&wgpu::Buffer, u64, &wgpu::Buffer, u64, u64)],
    ) {
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        for (src, src_offset, dst, dst_offset, bytes) in copies {
            enc.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *bytes);
        }
        self.queue.submit([enc.finish()]);
    }

    /// True for software rasterisers (lavapipe, llvmpipe).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }
}
