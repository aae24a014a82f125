//! The TG-43 GPU kernel against the CPU reference, on random valid implants.
//!
//! These tests run on any machine: with no hardware GPU, wgpu uses Mesa's
//! software Vulkan driver (lavapipe; Debian `mesa-vulkan-drivers`). A missing
//! adapter is a failure, not a skip, unless ISODOSE_SKIP_GPU_TESTS=1 is set
//! on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use isodose_core::tg43::{Formalism, Implant, Seed, SeedCatalogue, Technique};
use isodose_core::{AUTO_GPU_MIN_WORK, BackendChoice, BackendKind, DoseGrid, Engine, Grid3};
use proptest::prelude::*;

mod common;
use common::gpu;

/// max |gpu − cpu| / max(cpu), and where.
fn compare(cpu: &DoseGrid, gpu: &DoseGrid) -> (f64, [usize; 3]) {
    let max = cpu.data().iter().fold(0.0f32, |m, v| m.max(*v)) as f64;
    let mut worst = (0.0, [0; 3]);
    for ((k, j, i), c) in cpu.data().indexed_iter() {
        let d = (f64::from(gpu.data()[[k, j, i]]) - f64::from(*c)).abs() / max;
        if d > worst.0 {
            worst = (d, [k, j, i]);
        }
    }
    worst
}

/// |gpu − cpu| ≤ 1e-4 of the maximum dose: the kernels share the table and
/// differ by f32 vs f64 arithmetic (coordinates relative to seeds to ~1e-5 mm,
/// the accumulation over a few seeds to ~1e-6 relative).
const TOLERANCE: f64 = 1e-4;

#[test]
fn reports_its_adapter() {
    let Some(e) = gpu() else { return };
    match e.backend() {
        BackendKind::Gpu { adapter } => assert!(!adapter.is_empty()),
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn gpu_matches_cpu_on_random_implants(
        seeds in prop::collection::vec(
            (prop::array::uniform3(-20.0f64..20.0), prop::array::uniform3(-1.0f64..1.0), 0.1f64..1.0), 1..12),
        key in prop::sample::select(vec!["Amersham6711", "Best2301", "IsoAidIAI125A"]),
        shape in (4usize..20, 4usize..24, 4usize..28),
        spacing in 0.7f64..2.5,
    ) {
        let Some(g) = gpu() else { return Ok(()) };
        let model = SeedCatalogue::builtin().get(key).unwrap().clone();
        let seeds: Vec<Seed> = seeds
            .into_iter()
            .filter(|(_, d, _)| d.iter().map(|v| v * v).sum::<f64>() > 0.01)
            .map(|(p, d, sk)| Seed::new(p, Some(d), sk).unwrap())
            .collect();
        prop_assume!(!seeds.is_empty());
        let implant = Implant::new(model, seeds, Technique::Permanent, 0.0).unwrap();
        let grid = Grid3::new([shape.0, shape.1, shape.2], [spacing, spacing * 1.1, spacing * 0.9], [-15.0, -17.0, -12.0]).unwrap();
        let cpu = Engine::new(BackendChoice::Cpu).unwrap();
        let a = cpu.tg43_dose_rate(&implant, &grid, Formalism::Line).unwrap();
        let b = g.tg43_dose_rate(&implant, &grid, Formalism::Line).unwrap();
        let (worst, at) = compare(&a, &b);
        prop_assert!(worst <= TOLERANCE, "worst {} at {:?}: cpu {} gpu {}", worst, at, a.data()[at], b.data()[at]);
    }
}

/// The benchmark geometry at a quarter of the voxels: 100 seeds on a
/// 64 × 64 × 48 grid of 2 mm, total dose in Gy.
#[test]
fn gpu_matches_cpu_on_a_100_seed_implant() {
    let Some(g) = gpu() else { return };
    let model = SeedCatalogue::builtin()
        .get("Amersham6711")
        .unwrap()
        .clone();
    let implant = isodose_core::phantom::benchmark_implant(model).unwrap();
    let grid = Grid3::new([48, 64, 64], [2.0; 3], [-63.0, -63.0, -47.0]).unwrap();
    let a = Engine::new(BackendChoice::Cpu)
        .unwrap()
        .tg43_dose(&implant, &grid)
        .unwrap();
    let b = g.tg43_dose(&implant, &grid).unwrap();
    let (worst, at) = compare(&a, &b);
    assert!(worst <= TOLERANCE, "worst {worst} at {at:?}");
}

/// `Auto` never runs on a software rasteriser (slower than the CPU backend)
/// and falls back to the CPU when there is no adapter at all; `Gpu` is never
/// silently replaced by the CPU.
#[test]
fn auto_uses_hardware_gpus_only() {
    let auto = Engine::new(BackendChoice::Auto).unwrap();
    match isodose_core::engine::gpu::GpuContext::new() {
        Ok(ctx) if ctx.is_software() => {
            assert!(
                matches!(auto.backend(), BackendKind::Cpu { .. }),
                "{:?}",
                auto.backend()
            );
            assert!(matches!(
                Engine::new(BackendChoice::Gpu).unwrap().backend(),
                BackendKind::Gpu { .. }
            ));
        }
        Ok(_) => assert!(matches!(auto.backend(), BackendKind::Gpu { .. })),
        Err(_) => {
            assert!(matches!(auto.backend(), BackendKind::Cpu { .. }));
            assert!(Engine::new(BackendChoice::Gpu).is_err());
        }
    }
}

/// Under `Auto`, a problem below `AUTO_GPU_MIN_WORK` runs on the CPU even on
/// a machine with a hardware GPU (opening and feeding a GPU costs more than
/// computing it), and a large one runs where `Auto` prefers: the hardware
/// GPU if there is one, else the CPU. An explicit `Gpu` engine runs every
/// problem on its GPU.
#[test]
fn auto_keeps_small_problems_on_the_cpu() {
    let model = SeedCatalogue::builtin()
        .get("Amersham6711")
        .unwrap()
        .clone();
    let seeds = vec![Seed::new([0.0, 0.0, 0.0], None, 0.5).unwrap()];
    let implant = Implant::new(model, seeds, Technique::Permanent, 0.0).unwrap();
    let small = Grid3::new([10, 10, 10], [2.0; 3], [-9.0; 3]).unwrap();
    assert!((small.len() as f64) < AUTO_GPU_MIN_WORK);
    let auto = Engine::new(BackendChoice::Auto).unwrap();
    let (d_small, ran) = auto.tg43_dose_with_backend(&implant, &small).unwrap();
    assert!(matches!(ran, BackendKind::Cpu { .. }), "{ran:?}");
    let reference = Engine::new(BackendChoice::Cpu)
        .unwrap()
        .tg43_dose(&implant, &small)
        .unwrap();
    assert_eq!(d_small.data(), reference.data());
    // 1 seed x 1.1e7 voxels: at the threshold
    let large = Grid3::new([110, 320, 320], [1.0; 3], [-159.5, -159.5, -54.5]).unwrap();
    assert!(large.len() as f64 >= AUTO_GPU_MIN_WORK);
    let (_, ran) = auto.tg43_dose_with_backend(&implant, &large).unwrap();
    assert_eq!(&ran, auto.backend());
    if let Some(g) = gpu() {
        let (_, ran) = g.tg43_dose_with_backend(&implant, &small).unwrap();
        assert_eq!(&ran, g.backend());
        assert!(matches!(ran, BackendKind::Gpu { .. }));
    }
}
