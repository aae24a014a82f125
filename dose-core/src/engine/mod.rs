//! The public entry point for dose grids: [`Engine`].
//!
//! An engine is created once with a [`BackendChoice`] and reused. The CPU
//! backend (rayon, f64 accumulation) is the reference implementation; the GPU
//! backend (wgpu: TG-43, gamma and the proton forward dose; the proton dij
//! stays on the CPU) must match it. Preparation that
//! both backends share (the tabulated TG-43 kernel, seed frames) happens before
//! dispatch.

mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;
pub(crate) mod progress;
pub(crate) mod proton_cpu;

use std::sync::{Arc, Mutex};

use progress::Hook;
pub use progress::Progress;

use nalgebra::Point3;

use crate::error::{DoseError, Result};
use crate::grid::{CtVolume, DoseGrid, Grid3};
use crate::proton::prepare::{PreparedBeam, prepare_beam, rsp_volume};
use crate::proton::{Dij, DoseOptions, ProtonMachine, ProtonPlan};
use crate::tg43::{DoseRateTable, Formalism, Implant, SeedModel};

/// Which backend the caller asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The best available backend.
    #[default]
    Auto,
    /// The CPU reference backend.
    Cpu,
    /// The GPU backend; an error if none is available.
    Gpu,
}

impl BackendChoice {
    /// Parses `"auto"`, `"cpu"` or `"gpu"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            other => Err(DoseError::InvalidOption {
                what: "backend",
                value: other.to_owned(),
                expected: "auto, cpu or gpu",
            }),
        }
    }
}

/// The backend an engine actually runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Rayon on the CPU, with this many worker threads.
    Cpu {
        /// Size of the rayon thread pool the engine runs in.
        threads: usize,
    },
    /// wgpu compute shaders on this adapter.
    Gpu {
        /// Adapter name, backend and device type.
        adapter: String,
    },
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendKind::Cpu { threads } => write!(f, "cpu (rayon, {threads} threads)"),
            BackendKind::Gpu { adapter } => write!(f, "gpu (wgpu, {adapter})"),
        }
    }
}

fn cpu_kind() -> BackendKind {
    BackendKind::Cpu {
        threads: rayon::current_num_threads(),
    }
}

/// The process-wide GPU context for `Auto`: probed once, kept if it is a
/// hardware adapter (a software rasteriser is slower than the CPU backend).
#[cfg(feature = "gpu")]
fn auto_gpu() -> Option<Arc<gpu::GpuContext>> {
    static PROBE: std::sync::OnceLock<Option<Arc<gpu::GpuContext>>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            gpu::GpuContext::new()
                .ok()
                .filter(|c| !c.is_software())
                .map(Arc::new)
        })
        .clone()
}

/// A dose engine bound to one backend.
///
/// Cloning is cheap and clones share the engine's cache of tabulated TG-43
/// kernels (one per seed model and formalism, rebuilt only when a problem
/// needs a larger extent), so that repeated calculations, for example while a
/// planner moves seeds, skip the tabulation.
#[derive(Debug, Clone)]
pub struct Engine {
    backend: BackendKind,
    choice: BackendChoice,
    #[cfg(feature = "gpu")]
    gpu: Option<Arc<gpu::GpuContext>>,
    tables: Arc<Mutex<Vec<CachedTable>>>,
    progress: Hook,
}

#[derive(Debug)]
struct CachedTable {
    model: SeedModel,
    formalism: Formalism,
    table: Arc<DoseRateTable>,
}

/// Kernels kept per engine; the oldest is dropped beyond this.
const TABLE_CACHE_CAPACITY: usize = 4;

impl Engine {
    /// Creates an engine. `Cpu` is the reference backend. `Gpu` opens the
    /// first wgpu adapter (software rasterisers included, so that the kernels
    /// can be tested anywhere) and is an error when there is none, never a
    /// silent fall-back. `Auto` uses a hardware GPU when one exists (probed
    /// once per process) and the CPU otherwise.
    pub fn new(choice: BackendChoice) -> Result<Self> {
        let cpu = |choice| Self {
            backend: cpu_kind(),
            choice,
            #[cfg(feature = "gpu")]
            gpu: None,
            tables: Arc::default(),
            progress: Hook::default(),
        };
        match choice {
            BackendChoice::Cpu => Ok(cpu(choice)),
            #[cfg(feature = "gpu")]
            BackendChoice::Gpu => {
                let ctx = Arc::new(gpu::GpuContext::new()?);
                Ok(Self {
                    backend: BackendKind::Gpu {
                        adapter: ctx.adapter_name(),
                    },
                    choice,
                    gpu: Some(ctx),
                    tables: Arc::default(),
                    progress: Hook::default(),
                })
            }
            #[cfg(not(feature = "gpu"))]
            BackendChoice::Gpu => Err(DoseError::BackendUnavailable {
                reason: "this build of isodose has no GPU backend (feature \"gpu\" off)".into(),
            }),
            #[cfg(feature = "gpu")]
            BackendChoice::Auto => Ok(match auto_gpu() {
                Some(ctx) => Self {
                    backend: BackendKind::Gpu {
                        adapter: ctx.adapter_name(),
                    },
                    choice,
                    gpu: Some(ctx),
                    tables: Arc::default(),
                    progress: Hook::default(),
                },
                None => cpu(choice),
            }),
            #[cfg(not(feature = "gpu"))]
            BackendChoice::Auto => Ok(cpu(choice)),
        }
    }

    /// This engine (same backend, same caches) reporting the progress of
    /// every calculation to `progress`, which may also cancel it
    /// ([`DoseError::Cancelled`]); see [`Progress`] for when and on which
    /// thread it is called.
    pub fn with_progress(&self, progress: Arc<dyn Progress>) -> Self {
        Self {
            progress: Hook(Some(progress)),
            ..self.clone()
        }
    }

    /// The backend the proton forward dose ([`Engine::pbs_dose`]) runs on:
    /// the engine's GPU when it has one (an explicit `Gpu` engine, or `Auto`
    /// on a hardware GPU), else the CPU. (Under `Auto`, a GPU failure during
    /// a calculation falls back to the CPU for that calculation;
    /// [`Engine::pbs_dose_with_backend`] reports the backend that actually
    /// ran.) The dij ([`Engine::pbs_dij`]) runs on the same backend. Never
    /// an error at present; the `Result` is kept for backends that cannot
    /// run protons.
    pub fn pbs_backend(&self) -> Result<BackendKind> {
        Ok(match &self.backend {
            gpu @ BackendKind::Gpu { .. } => gpu.clone(),
            BackendKind::Cpu { .. } => cpu_kind(),
        })
    }

    /// The backend the dose-influence matrix ([`Engine::pbs_dij`]) runs on:
    /// the engine's GPU when it has one, else the CPU (under `Auto`, a GPU
    /// failure falls back to the CPU for that calculation;
    /// [`Engine::pbs_dij_with_backend`] reports the backend that ran).
    pub fn pbs_dij_backend(&self) -> BackendKind {
        match &self.backend {
            gpu @ BackendKind::Gpu { .. } => gpu.clone(),
            BackendKind::Cpu { .. } => cpu_kind(),
        }
    }

    /// The backend this engine runs on.
    pub fn backend(&self) -> &BackendKind {
        &self.backend
    }

    /// Initial TG-43 dose rate (cGy/h at the start of irradiation) of
    /// `implant` on `grid`, by `formalism` (grids use [`Formalism::Line`]
    /// normally; the 1D formalisms ignore seed orientation).
    pub fn tg43_dose_rate(
        &self,
        implant: &Implant,
        grid: &Grid3,
        formalism: Formalism,
    ) -> Result<DoseGrid> {
        let table = self.table(implant, grid, formalism)?;
        let scale = implant.decay_to_start();
        self.tg43_dispatch(implant, grid, &table, scale)
    }

    /// Total TG-43 dose (Gy) of `implant` on `grid`: the initial dose rate
    /// times the effective time of the implant's technique (permanent:
    /// τ = T½/ln 2; temporary: τ(1 − e^(−t/τ))).
    pub fn tg43_dose(&self, implant: &Implant, grid: &Grid3) -> Result<DoseGrid> {
        let table = self.table(implant, grid, Formalism::Line)?;
        let scale = implant.decay_to_start() * implant.dose_gy_per_initial_cgy_per_h();
        self.tg43_dispatch(implant, grid, &table, scale)
    }
}

impl Engine {
    /// The gamma index of `evaluated` against `reference` (see
    /// [`crate::qa::gamma`]) on this engine's backend. The GPU kernel is the
    /// WGSL port of the CPU kernel (f32 instead of f64). With `Auto`, a GPU
    /// failure falls back to the CPU with a message on stderr; with `Gpu` it
    /// is an error.
    pub fn gamma(
        &self,
        reference: &DoseGrid,
        evaluated: &DoseGrid,
        criteria: &crate::qa::GammaCriteria,
    ) -> Result<crate::qa::GammaResult> {
        use crate::qa::gamma as g;
        let setup = g::setup(reference, evaluated, criteria)?;
        #[cfg(feature = "gpu")]
        if let Some(ctx) = &self.gpu {
            let planes = reference.grid().nz() as u64;
            self.progress.report("gamma", 0, planes)?;
            match gpu::gamma::gamma_grid(ctx, reference, evaluated, &setup) {
                Ok(values) => {
                    self.progress.report("gamma", planes, planes)?;
                    return g::finish(reference, values, setup, self.backend.clone());
                }
                Err(e) if self.choice == BackendChoice::Auto => {
                    eprintln!("isodose: GPU gamma failed ({e}); computing it on the CPU");
                }
                Err(e) => return Err(e),
            }
        }
        let values = g::gamma_cpu(reference, evaluated, &setup, &self.progress)?;
        g::finish(reference, values, setup, cpu_kind())
    }
}

/// Default limit on the memory of a dij, bytes (8 GiB).
pub const DEFAULT_DIJ_LIMIT_BYTES: usize = 8 << 30;

impl Engine {
    /// Proton PBS dose (Gy, the plan's spot weights in protons, one fraction)
    /// of `plan` on `ct`, with `machine` data. The dose grid is `dose_grid`,
    /// or the CT grid when `None`; water-equivalent depths are always traced
    /// through the CT. Spots of zero weight are skipped.
    ///
    /// Runs on [`Engine::pbs_backend`]: the GPU kernel
    /// (`shaders/pbs_dose.wgsl`) evaluates the CPU's pencil-beam model on the
    /// same voxels (pairs within f32 rounding of a cut-off or node boundary
    /// are evaluated on the host in f64) and matches the CPU reference to
    /// about 1e-6 of the maximum dose. With `Auto`, a GPU failure falls back
    /// to the CPU with a message on stderr; with `Gpu` it is an error.
    pub fn pbs_dose(
        &self,
        ct: &CtVolume,
        plan: &ProtonPlan,
        machine: &ProtonMachine,
        dose_grid: Option<&Grid3>,
        options: &DoseOptions,
    ) -> Result<DoseGrid> {
        self.pbs_dose_with_backend(ct, plan, machine, dose_grid, options)
            .map(|(dose, _)| dose)
    }

    /// As [`Engine::pbs_dose`], with the backend that computed the dose
    /// (the CPU after an `Auto` fall-back).
    pub fn pbs_dose_with_backend(
        &self,
        ct: &CtVolume,
        plan: &ProtonPlan,
        machine: &ProtonMachine,
        dose_grid: Option<&Grid3>,
        options: &DoseOptions,
    ) -> Result<(DoseGrid, BackendKind)> {
        let grid = dose_grid.unwrap_or(ct.grid());
        let beams = self.prepare(ct, plan, machine, grid, options, true)?;
        #[cfg(feature = "gpu")]
        if let Some(ctx) = &self.gpu {
            let planes = grid.nz() as u64;
            self.progress.report("proton dose", 0, planes)?;
            match gpu::pbs::pbs_dose(ctx, &beams, grid) {
                Ok(dose) => {
                    self.progress.report("proton dose", planes, planes)?;
                    return Ok((dose, self.backend.clone()));
                }
                Err(e) if self.choice == BackendChoice::Auto => {
                    eprintln!("isodose: GPU proton dose failed ({e}); computing it on the CPU");
                }
                Err(e) => return Err(e),
            }
        }
        Ok((
            proton_cpu::pbs_dose(&beams, grid, &self.progress)?,
            cpu_kind(),
        ))
    }

    /// The dose-influence matrix (voxels of the dose grid × spots of the plan,
    /// beams in order; Gy per proton). Refuses with an error, before
    /// allocating it, when it would need more than `max_bytes`
    /// ([`DEFAULT_DIJ_LIMIT_BYTES`] is a reasonable default).
    ///
    /// Runs on [`Engine::pbs_dij_backend`]. On the GPU
    /// (`shaders/pbs_dij.wgsl`, count then fill) the entries are exactly those
    /// of the CPU reference (decisions within f32 rounding of a boundary are
    /// taken with the CPU's f64 arithmetic) and the values agree to f32
    /// rounding. With `Auto`, a GPU failure falls
    /// back to the CPU with a message on stderr; with `Gpu` it is an error.
    pub fn pbs_dij(
        &self,
        ct: &CtVolume,
        plan: &ProtonPlan,
        machine: &ProtonMachine,
        dose_grid: Option<&Grid3>,
        options: &DoseOptions,
        max_bytes: usize,
    ) -> Result<Dij> {
        self.pbs_dij_with_backend(ct, plan, machine, dose_grid, options, max_bytes)
            .map(|(dij, _)| dij)
    }

    /// As [`Engine::pbs_dij`], with the backend that computed the matrix
    /// (the CPU after an `Auto` fall-back).
    pub fn pbs_dij_with_backend(
        &self,
        ct: &CtVolume,
        plan: &ProtonPlan,
        machine: &ProtonMachine,
        dose_grid: Option<&Grid3>,
        options: &DoseOptions,
        max_bytes: usize,
    ) -> Result<(Dij, BackendKind)> {
        let grid = dose_grid.unwrap_or(ct.grid());
        let beams = self.prepare(ct, plan, machine, grid, options, false)?;
        #[cfg(feature = "gpu")]
        if let Some(ctx) = &self.gpu {
            match gpu::dij::pbs_dij(
                ctx,
                &beams,
                grid,
                plan.spot_count(),
                max_bytes,
                &self.progress,
            ) {
                Ok(dij) => return Ok((dij, self.backend.clone())),
                Err(e @ DoseError::BackendUnavailable { .. })
                    if self.choice == BackendChoice::Auto =>
                {
                    eprintln!("isodose: GPU dij failed ({e}); computing it on the CPU");
                }
                Err(e) => return Err(e),
            }
        }
        Ok((
            proton_cpu::pbs_dij(&beams, grid, plan.spot_count(), max_bytes, &self.progress)?,
            cpu_kind(),
        ))
    }

    fn prepare(
        &self,
        ct: &CtVolume,
        plan: &ProtonPlan,
        machine: &ProtonMachine,
        grid: &Grid3,
        options: &DoseOptions,
        only_weighted: bool,
    ) -> Result<Vec<PreparedBeam>> {
        if let Some(hu) = ct.data().iter().find(|v| !v.is_finite()) {
            return Err(DoseError::NonFinite {
                field: "CT value (HU)".into(),
                value: f64::from(*hu),
            });
        }
        let rsp = rsp_volume(ct, &options.hlut);
        let mut first = 0;
        let n_beams = plan.beams().len() as u64;
        self.progress.report("ray tracing", 0, n_beams)?;
        plan.beams()
            .iter()
            .enumerate()
            .map(|(b, beam)| {
                let prepared = prepare_beam(
                    ct.grid(),
                    &rsp,
                    grid,
                    machine,
                    beam,
                    first,
                    options,
                    only_weighted,
                );
                first += beam.spots().len();
                self.progress.report("ray tracing", b as u64 + 1, n_beams)?;
                prepared
            })
            .collect()
    }

    fn tg43_dispatch(
        &self,
        implant: &Implant,
        grid: &Grid3,
        table: &DoseRateTable,
        scale: f64,
    ) -> Result<DoseGrid> {
        #[cfg(feature = "gpu")]
        if let Some(ctx) = &self.gpu {
            let rows = (grid.nz() * grid.ny()) as u64;
            self.progress.report("TG-43 dose", 0, rows)?;
            let dose = gpu::tg43::tg43_grid(ctx, implant, grid, table, scale)?;
            self.progress.report("TG-43 dose", rows, rows)?;
            return Ok(dose);
        }
        cpu::tg43_grid(implant, grid, table, scale, &self.progress)
    }

    /// The tabulated kernel for `implant`'s model that covers `grid`, from the
    /// cache or newly built (extent rounded up to 50 mm so that small moves
    /// reuse it).
    fn table(
        &self,
        implant: &Implant,
        grid: &Grid3,
        formalism: Formalism,
    ) -> Result<Arc<DoseRateTable>> {
        let needed = max_seed_distance_mm(implant, grid);
        // a poisoned lock only means another thread panicked mid-insert;
        // the cache is then rebuilt from scratch
        let lock = || {
            self.tables.lock().unwrap_or_else(|poisoned| {
                let mut guard = poisoned.into_inner();
                guard.clear();
                guard
            })
        };
        if let Some(hit) = lock().iter().find(|c| {
            c.formalism == formalism
                && c.table.max_distance_mm() >= needed
                && &c.model == implant.model()
        }) {
            return Ok(Arc::clone(&hit.table));
        }
        // build without holding the lock: the build runs on rayon, and a
        // rayon worker waiting on this lock could otherwise deadlock
        let extent = (needed / 50.0).ceil() * 50.0;
        let table = Arc::new(DoseRateTable::build(implant.model(), formalism, extent)?);
        let mut cache = lock();
        cache.retain(|c| !(c.formalism == formalism && &c.model == implant.model()));
        if cache.len() >= TABLE_CACHE_CAPACITY {
            cache.remove(0);
        }
        cache.push(CachedTable {
            model: implant.model().clone(),
            formalism,
            table: Arc::clone(&table),
        });
        Ok(table)
    }
}

/// Largest distance from any seed to any voxel centre of `grid`, mm (the
/// farthest voxel of a box from a point is one of its corners).
pub(crate) fn max_seed_distance_mm(implant: &Implant, grid: &Grid3) -> f64 {
    let (lo, hi) = grid.centre_bounds_mm();
    let corners = (0..8).map(|c| {
        Point3::new(
            if c & 1 == 0 { lo.x } else { hi.x },
            if c & 2 == 0 { lo.y } else { hi.y },
            if c & 4 == 0 { lo.z } else { hi.z },
        )
    });
    let corners: Vec<Point3<f64>> = corners.collect();
    implant
        .seeds()
        .iter()
        .flat_map(|s| corners.iter().map(move |c| (c - s.position_mm()).norm()))
        .fold(0.0, f64::max)
}
