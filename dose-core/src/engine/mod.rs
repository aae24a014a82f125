//! The public entry point for dose grids: [`Engine`].
//!
//! An engine is created once with a [`BackendChoice`] and reused. The CPU
//! backend (rayon, f64 accumulation) is the reference implementation; the GPU
//! backend (wgpu: TG-43, gamma, the proton forward dose and dij) must match
//! it. Preparation that
//! both backends share (the tabulated TG-43 kernel, seed frames) happens before
//! dispatch.

mod assembly;
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
use crate::proton::prepare::{Medium, PreparedBeam, prepare_beam};
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

/// The process-wide GPU context for `Auto`: probed once, on the first
/// problem large enough for it, and kept if the adapter is a hardware GPU (a
/// software rasteriser is slower than the CPU backend; it is refused before
/// a device is opened or a kernel compiled).
#[cfg(feature = "gpu")]
fn auto_gpu() -> Option<Arc<gpu::GpuContext>> {
    static PROBE: std::sync::OnceLock<Option<Arc<gpu::GpuContext>>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| gpu::GpuContext::hardware().ok().flatten().map(Arc::new))
        .clone()
}

/// Under `Auto`, problems smaller than this many evaluations (seed·voxel
/// pairs for TG-43, pencil·voxel pairs inside the lateral cut-off for
/// protons, 100 per reference voxel for gamma) run on the CPU: about 50 ms
/// on two cores, less than opening a GPU and moving the data there and back
/// costs. Larger ones use a hardware GPU when there is one.
pub const AUTO_GPU_MIN_WORK: f64 = 1e7;

#[cfg(feature = "gpu")]
fn gpu_kind(ctx: &gpu::GpuContext) -> BackendKind {
    BackendKind::Gpu {
        adapter: ctx.adapter_name(),
    }
}

/// A dose engine bound to one backend.
///
/// Cloning is cheap and clones share the engine's cache of tabulated TG-43
/// kernels (one per seed model and formalism, rebuilt only when a problem
/// needs a larger extent), so that repeated calculations, for example while a
/// planner moves seeds, skip the tabulation.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The backend large problems run on (for `Auto`, found on first use).
    backend: std::sync::OnceLock<BackendKind>,
    choice: BackendChoice,
    /// The GPU of an explicit `Gpu` engine (`Auto` uses [`auto_gpu`]).
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
    /// silent fall-back. `Auto` opens nothing: problems of at least
    /// [`AUTO_GPU_MIN_WORK`] evaluations run on a hardware GPU when one
    /// exists (probed once per process, on the first such problem), all
    /// others on the CPU.
    pub fn new(choice: BackendChoice) -> Result<Self> {
        let with = |backend: Option<BackendKind>| Self {
            backend: backend.map_or_else(std::sync::OnceLock::new, std::sync::OnceLock::from),
            choice,
            #[cfg(feature = "gpu")]
            gpu: None,
            tables: Arc::default(),
            progress: Hook::default(),
        };
        match choice {
            BackendChoice::Cpu => Ok(with(Some(cpu_kind()))),
            #[cfg(feature = "gpu")]
            BackendChoice::Gpu => {
                let ctx = Arc::new(gpu::GpuContext::new()?);
                Ok(Self {
                    gpu: Some(ctx.clone()),
                    ..with(Some(gpu_kind(&ctx)))
                })
            }
            #[cfg(not(feature = "gpu"))]
            BackendChoice::Gpu => Err(DoseError::BackendUnavailable {
                reason: "this build of isodose has no GPU backend (feature \"gpu\" off)".into(),
            }),
            #[cfg(feature = "gpu")]
            BackendChoice::Auto => Ok(with(None)),
            #[cfg(not(feature = "gpu"))]
            BackendChoice::Auto => Ok(with(Some(cpu_kind()))),
        }
    }

    /// The GPU a problem of `work` evaluations runs on, if any: the explicit
    /// engine's, or under `Auto` a hardware GPU for a large enough problem.
    #[cfg(feature = "gpu")]
    fn gpu_for(&self, work: f64) -> Option<Arc<gpu::GpuContext>> {
        match (&self.gpu, self.choice) {
            (Some(ctx), _) => Some(ctx.clone()),
            (None, BackendChoice::Auto) if work >= AUTO_GPU_MIN_WORK => auto_gpu(),
            _ => None,
        }
    }

    /// Runs `work` on the GPU [`Engine::gpu_for`] picks for `size`
    /// evaluations: the result and that GPU's kind when it ran there, `None`
    /// when the problem goes to the CPU instead (no GPU for it, or under
    /// `Auto` a GPU failure, logged on stderr as the failure of `what`).
    /// Every other error (bad input, a cancellation) is returned.
    #[cfg(feature = "gpu")]
    fn on_gpu<T>(
        &self,
        size: f64,
        what: &str,
        work: impl FnOnce(&gpu::GpuContext) -> Result<T>,
    ) -> Result<Option<(T, BackendKind)>> {
        let Some(ctx) = self.gpu_for(size) else {
            return Ok(None);
        };
        match work(&ctx) {
            Ok(v) => Ok(Some((v, gpu_kind(&ctx)))),
            Err(e @ DoseError::BackendUnavailable { .. }) if self.choice == BackendChoice::Auto => {
                eprintln!("isodose: GPU {what} failed ({e}); computing it on the CPU");
                Ok(None)
            }
            Err(e) => Err(e),
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
    /// [`Engine::backend`]. (Under `Auto`, a problem below
    /// [`AUTO_GPU_MIN_WORK`] or a GPU failure runs on the CPU;
    /// [`Engine::pbs_dose_with_backend`] reports the backend that actually
    /// ran.) Never an error at present; the `Result` is kept for backends
    /// that cannot run protons.
    pub fn pbs_backend(&self) -> Result<BackendKind> {
        Ok(self.backend().clone())
    }

    /// The backend the dose-influence matrix ([`Engine::pbs_dij`]) runs on:
    /// [`Engine::backend`] ([`Engine::pbs_dij_with_backend`] reports the
    /// backend that actually ran).
    pub fn pbs_dij_backend(&self) -> BackendKind {
        self.backend().clone()
    }

    /// The backend this engine runs its problems on: the CPU, the explicit
    /// GPU, or under `Auto` the hardware GPU if there is one (probing it on
    /// this first call), else the CPU. Under `Auto`, problems below
    /// [`AUTO_GPU_MIN_WORK`] evaluations run on the CPU all the same; the
    /// `*_with_backend` methods and [`crate::qa::GammaResult::backend`] say
    /// where each one ran.
    pub fn backend(&self) -> &BackendKind {
        self.backend.get_or_init(|| {
            #[cfg(feature = "gpu")]
            if let Some(ctx) = auto_gpu() {
                return gpu_kind(&ctx);
            }
            cpu_kind()
        })
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
            .map(|(d, _)| d)
    }

    /// Total TG-43 dose (Gy) of `implant` on `grid`: the initial dose rate
    /// times the effective time of the implant's technique (permanent:
    /// τ = T½/ln 2; temporary: τ(1 − e^(−t/τ))).
    pub fn tg43_dose(&self, implant: &Implant, grid: &Grid3) -> Result<DoseGrid> {
        self.tg43_dose_with_backend(implant, grid).map(|(d, _)| d)
    }

    /// As [`Engine::tg43_dose`], with the backend that computed the dose
    /// (the CPU for a small problem or after a GPU failure under `Auto`).
    pub fn tg43_dose_with_backend(
        &self,
        implant: &Implant,
        grid: &Grid3,
    ) -> Result<(DoseGrid, BackendKind)> {
        let table = self.table(implant, grid, Formalism::Line)?;
        let scale = implant.decay_to_start() * implant.dose_gy_per_initial_cgy_per_h();
        self.tg43_dispatch(implant, grid, &table, scale)
    }
}

impl Engine {
    /// The gamma index of `evaluated` against `reference` (see
    /// [`crate::qa::gamma`]) on this engine's backend. Both searches have a
    /// GPU kernel, the WGSL port of the CPU's search in f32
    /// (`shaders/gamma_continuous.wgsl` for the default continuous search,
    /// `shaders/gamma.wgsl` for the lattice); points whose search a driver's
    /// loop limit cut short (lavapipe's 65,535 iterations per invocation)
    /// are reported by the kernels and computed on the CPU. With `Auto`, the
    /// continuous search runs on the CPU (exact and fast there; the GPU
    /// kernel's speed on hardware is not measured yet) and the lattice on a
    /// GPU when the problem is large enough; a GPU failure falls back to the
    /// CPU with a message on stderr. With `Gpu` both run on the GPU and a
    /// failure is an error.
    pub fn gamma<'a>(
        &self,
        reference: impl Into<crate::DoseView<'a>>,
        evaluated: impl Into<crate::DoseView<'a>>,
        criteria: &crate::qa::GammaCriteria,
    ) -> Result<crate::qa::GammaResult> {
        use crate::qa::gamma as g;
        let (reference, evaluated) = (reference.into(), evaluated.into());
        let setup = g::setup(reference, evaluated, criteria)?;
        // the continuous search runs on the GPU only when asked for (the
        // CPU's is fast; the GPU's is unmeasured on hardware)
        #[cfg(feature = "gpu")]
        let gpu_allowed =
            criteria.search == g::GammaSearch::Lattice || self.choice == BackendChoice::Gpu;
        #[cfg(feature = "gpu")]
        if gpu_allowed
            && let Some((values, ran)) =
                self.on_gpu(100.0 * reference.grid().len() as f64, "gamma", |ctx| {
                    let planes = reference.grid().nz() as u64;
                    self.progress.report("gamma", 0, planes)?;
                    let values = gpu::gamma::gamma_grid(ctx, reference, evaluated, &setup)?;
                    self.progress.report("gamma", planes, planes)?;
                    Ok(values)
                })?
        {
            return g::finish(reference, values, setup, ran);
        }
        let values = g::gamma_cpu(reference, evaluated, &setup, &self.progress)?;
        g::finish(reference, values, setup, cpu_kind())
    }
}

impl Engine {
    /// The DVH of weighted dose samples (see [`crate::qa::Dvh`]) on this
    /// engine's backend, with the backend that ran. The GPU kernel
    /// (`shaders/dvh_histogram.wgsl`) bins the samples (doses in f32, sums
    /// exact in fixed point); the checks, volume and dose statistics are
    /// computed on the CPU in both cases. Under `Auto`, fewer than
    /// [`AUTO_GPU_MIN_WORK`] samples (or a GPU failure) run on the CPU.
    pub fn dvh(&self, samples: &[crate::qa::DoseSample]) -> Result<(crate::qa::Dvh, BackendKind)> {
        use crate::qa::Dvh;
        #[cfg(feature = "gpu")]
        if let Some(done) = self.on_gpu(samples.len() as f64, "DVH", |ctx| {
            Dvh::from_samples_binned(samples, |s, w| {
                gpu::dvh::histogram(ctx, s, w, crate::qa::dvh::DVH_BINS)
            })
        })? {
            return Ok(done);
        }
        Ok((Dvh::from_samples(samples)?, cpu_kind()))
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
        if let Some(done) = self.on_gpu(pencil_voxel_pairs(&beams, grid), "proton dose", |ctx| {
            let planes = grid.nz() as u64;
            self.progress.report("proton dose", 0, planes)?;
            let dose = gpu::pbs::pbs_dose(ctx, &beams, grid)?;
            self.progress.report("proton dose", planes, planes)?;
            Ok(dose)
        })? {
            return Ok(done);
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
        if let Some(done) = self.on_gpu(pencil_voxel_pairs(&beams, grid), "dij", |ctx| {
            gpu::dij::pbs_dij(
                ctx,
                &beams,
                grid,
                plan.spot_count(),
                max_bytes,
                &self.progress,
            )
        })? {
            return Ok(done);
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
        let medium = Medium::from_ct(ct, options)?;
        let mut first = 0;
        let n_beams = plan.beams().len() as u64;
        self.progress.report("ray tracing", 0, n_beams)?;
        plan.beams()
            .iter()
            .enumerate()
            .map(|(b, beam)| {
                let prepared = prepare_beam(
                    ct.grid(),
                    &medium,
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
    ) -> Result<(DoseGrid, BackendKind)> {
        #[cfg(feature = "gpu")]
        if let Some(done) = self.on_gpu(
            implant.seeds().len() as f64 * grid.len() as f64,
            "TG-43 dose",
            |ctx| {
                let rows = (grid.nz() * grid.ny()) as u64;
                self.progress.report("TG-43 dose", 0, rows)?;
                let dose = gpu::tg43::tg43_grid(ctx, implant, grid, table, scale)?;
                self.progress.report("TG-43 dose", rows, rows)?;
                Ok(dose)
            },
        )? {
            return Ok(done);
        }
        Ok((
            cpu::tg43_grid(implant, grid, table, scale, &self.progress)?,
            cpu_kind(),
        ))
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

/// Pencil·voxel pairs inside the lateral cut-offs of the prepared beams
/// (each pencil's cut-off cylinder over its depth nodes, in voxels): the
/// work of a proton dose or dij, for the choice of backend under `Auto`.
#[cfg(feature = "gpu")]
fn pencil_voxel_pairs(beams: &[PreparedBeam], grid: &Grid3) -> f64 {
    let voxel = grid.voxel_volume_mm3();
    beams
        .iter()
        .flat_map(|b| &b.pencils)
        .map(|p| {
            let length = p.nodes.len().saturating_sub(1) as f64 * p.step;
            std::f64::consts::PI * p.max_radius * p.max_radius * length / voxel
        })
        .sum()
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
