//! The gamma GPU kernels against the CPU reference, on random smooth and
//! noisy doses: the continuous search (the default) and the lattice search.
//!
//! Runs on any machine: without a hardware GPU, wgpu uses Mesa's software
//! Vulkan driver (lavapipe). A missing adapter is a failure, not a skip,
//! unless ISODOSE_SKIP_GPU_TESTS=1 is set on purpose.
//!
//! The GPU works in f32 and the CPU in f64. The continuous searches of both
//! find the minimum over the interpolated dose, so γ agrees to 1e-4 of
//! `max_gamma` at every point (f32 rounding of positions and doses, and the
//! GPU's looser 10⁻⁵ certification). The lattice searches can end on
//! slightly different points: γ agrees to 1e-3 at all but a handful of
//! points (where two search positions tie to within f32 rounding), the set
//! of evaluated points is identical and the pass counts agree to 0.1 %.
//! Local gamma in the low-dose tails, where its ΔD is far smaller than what
//! one lattice step changes the dose by, is the exception, tested apart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use isodose_core::qa::{GammaCriteria, GammaSearch, gamma_index};
use isodose_core::{BackendChoice, BackendKind, DoseGrid, Engine, Grid3, Volume};
use ndarray::Array3;
use proptest::prelude::*;

mod common;
use common::gpu;

/// A sum of Gaussian blobs (Gy) on `grid`.
fn blobs(grid: &Grid3, blobs: &[([f64; 3], f64, f64)]) -> DoseGrid {
    let data = Array3::from_shape_fn((grid.nz(), grid.ny(), grid.nx()), |(k, j, i)| {
        let p = grid.index_to_world([k, j, i]);
        blobs
            .iter()
            .map(|(c, sigma, amp)| {
                let r2 = (p.x - c[0]).powi(2) + (p.y - c[1]).powi(2) + (p.z - c[2]).powi(2);
                amp * (-r2 / (2.0 * sigma * sigma)).exp()
            })
            .sum::<f64>() as f32
    });
    Volume::new(grid.clone(), data).unwrap()
}

/// γ of the CPU and the GPU: the same evaluated points, and for the
/// continuous search |Δγ| ≤ 1e-4 × `max_gamma` everywhere; for the lattice
/// |Δγ| ≤ 1e-3 at all but 0.1 % of the points and pass counts within 0.1 %.
fn compare(engine: &Engine, reference: &DoseGrid, evaluated: &DoseGrid, c: &GammaCriteria) {
    let cpu = gamma_index(reference, evaluated, c).unwrap();
    let gpu = engine.gamma(reference, evaluated, c).unwrap();
    assert!(matches!(gpu.backend(), BackendKind::Gpu { .. }));
    assert_eq!(cpu.evaluated_count(), gpu.evaluated_count());
    let n = cpu.evaluated_count().max(1) as f64;
    let (tolerance, allowed) = match c.search {
        GammaSearch::Continuous => (1e-4 * c.max_gamma, 0.0),
        GammaSearch::Lattice => (1e-3, (0.001 * n).max(1.0)),
    };
    assert!(
        (cpu.passed_count() as f64 - gpu.passed_count() as f64).abs() <= (0.001 * n).max(1.0),
        "{}: passed: cpu {} gpu {} of {n}",
        c.search,
        cpu.passed_count(),
        gpu.passed_count()
    );
    let mut off = 0usize;
    let mut worst = 0.0f64;
    for (a, b) in cpu.gamma().data().iter().zip(gpu.gamma().data()) {
        if a.is_nan() || a.is_infinite() {
            assert_eq!(a.is_nan(), b.is_nan());
            assert_eq!(a.is_infinite(), b.is_infinite());
            continue;
        }
        let d = f64::from((a - b).abs());
        worst = worst.max(d);
        if d > tolerance {
            off += 1;
        }
    }
    assert!(
        off as f64 <= allowed,
        "{}: {off} of {n} points differ by more than {tolerance} (worst {worst})",
        c.search
    );
}

/// `criteria` with the lattice search.
fn lattice(criteria: &GammaCriteria) -> GammaCriteria {
    GammaCriteria {
        search: GammaSearch::Lattice,
        ..criteria.clone()
    }
}

#[test]
fn gpu_equals_cpu_on_a_shifted_scaled_dose_with_different_grids() {
    let Some(engine) = gpu() else { return };
    let gr = Grid3::new([30, 34, 38], [2.0, 2.0, 2.5], [-37.0, -33.0, -36.0]).unwrap();
    let ge = Grid3::new([24, 28, 30], [2.5, 2.5, 3.0], [-36.3, -34.1, -35.2]).unwrap();
    let reference = blobs(
        &gr,
        &[([0.0, 0.0, 0.0], 12.0, 2.0), ([10.0, -5.0, 4.0], 5.0, 0.8)],
    );
    let evaluated = blobs(
        &ge,
        &[
            ([1.0, -0.5, 0.7], 12.0, 2.04),
            ([10.0, -4.0, 4.0], 5.5, 0.8),
        ],
    );
    for (dd, dta, local) in [(3.0, 3.0, false), (2.0, 2.0, false), (2.0, 2.0, true)] {
        let mut c = GammaCriteria::new(dd, dta);
        c.local = local;
        compare(&engine, &reference, &evaluated, &c);
        compare(&engine, &reference, &evaluated, &lattice(&c));
    }
}

/// Noise makes many cells non-convex, so the continuous search's branch
/// and bound does most of the work: 3 %/2 mm on a field with 2 % noise.
#[test]
fn gpu_continuous_search_equals_cpu_on_noisy_doses() {
    let Some(engine) = gpu() else { return };
    let grid = Grid3::new([20, 24, 26], [2.0, 2.0, 2.5], [-25.0, -23.0, -24.0]).unwrap();
    let reference = blobs(&grid, &[([0.0; 3], 10.0, 2.0)]);
    let smooth = blobs(&grid, &[([0.8, -0.4, 0.3], 10.0, 2.02)]);
    // a 64-bit LCG, uniform in [0, 1)
    let mut state = 2024u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let noisy = smooth
        .data()
        .mapv(|d| d * (1.0 + 0.02 * (2.0 * next() - 1.0) as f32));
    let evaluated = Volume::new(grid.clone(), noisy).unwrap();
    for local in [false, true] {
        let mut c = GammaCriteria::new(3.0, 2.0);
        c.local = local;
        compare(&engine, &reference, &evaluated, &c);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn gpu_equals_cpu_on_random_doses(
        cx in -5.0f64..5.0, cy in -5.0f64..5.0, cz in -5.0f64..5.0,
        sigma in 4.0f64..15.0, scale in 0.95f64..1.05,
        spacing in 1.5f64..4.0, dta in 1.0f64..3.0, dd in 1.0f64..3.0,
        cutoff in 0.0f64..30.0, local in any::<bool>(),
    ) {
        let Some(engine) = gpu() else { return Ok(()) };
        let grid = Grid3::new([16, 18, 20], [spacing; 3], [-10.0 * spacing; 3]).unwrap();
        let reference = blobs(&grid, &[([0.0; 3], sigma, 1.0)]);
        let evaluated = blobs(&grid, &[([cx * 0.3, cy * 0.3, cz * 0.3], sigma, scale)]);
        let mut c = GammaCriteria::new(dd, dta);
        // local gamma divides the dose difference by the local dose: in the
        // low-dose tails ΔD shrinks to a fraction of what one lattice step
        // changes the dose by, γ's valley is narrower than the lattice, and
        // the refinements in f64 (CPU) and f32 (GPU) can end at different
        // points of it (both above the true minimum: see
        // `both_lattice_searches_stay_above_the_continuous_minimum`); the
        // comparison point for point holds where ΔD is not that small
        c.cutoff_percent = cutoff;
        c.local = local;
        // (the continuous searches are exact, also in the tails)
        compare(&engine, &reference, &evaluated, &c);
        c.cutoff_percent = if local { 50.0 + cutoff } else { cutoff };
        compare(&engine, &reference, &evaluated, &lattice(&c));
    }
}

/// A case the random comparison found (local 1 %/2.75 mm, no cut-off, a
/// σ = 4 mm blob on 1.5 mm voxels): in the low-dose tails the lattice
/// searches of the CPU and the GPU end at different points (up to 1 % of the
/// points differ by more than 1e-3), but neither finds a γ below the true
/// minimum over the interpolated dose (the continuous search), beyond f32
/// rounding, and both pass the same points to 1 %.
#[test]
fn both_lattice_searches_stay_above_the_continuous_minimum() {
    let Some(engine) = gpu() else { return };
    let spacing = 1.5;
    let grid = Grid3::new([16, 18, 20], [spacing; 3], [-10.0 * spacing; 3]).unwrap();
    let reference = blobs(&grid, &[([0.0; 3], 4.0, 1.0)]);
    let evaluated = blobs(&grid, &[([1.4854667327057667 * 0.3, 0.0, 0.0], 4.0, 0.95)]);
    let mut c = lattice(&GammaCriteria::new(1.0, 2.75328811525836));
    c.cutoff_percent = 0.0;
    c.local = true;
    let cpu = gamma_index(&reference, &evaluated, &c).unwrap();
    let gpu = engine.gamma(&reference, &evaluated, &c).unwrap();
    let exact = gamma_index(
        &reference,
        &evaluated,
        &GammaCriteria {
            search: GammaSearch::Continuous,
            ..c.clone()
        },
    )
    .unwrap();
    assert_eq!(cpu.evaluated_count(), gpu.evaluated_count());
    let n = cpu.evaluated_count() as f64;
    assert!(n > 5000.0);
    assert!((cpu.passed_count() as f64 - gpu.passed_count() as f64).abs() <= 0.01 * n);
    let data =
        |r: &isodose_core::qa::GammaResult| r.gamma().data().iter().copied().collect::<Vec<f32>>();
    let (cpu, gpu, exact) = (data(&cpu), data(&gpu), data(&exact));
    for ((a, b), e) in cpu.iter().zip(&gpu).zip(&exact) {
        if e.is_nan() {
            continue;
        }
        assert!(
            *a >= e - 1e-3 && *b >= e - 1e-3,
            "cpu {a} gpu {b} below the minimum {e}"
        );
    }
}

#[test]
fn gpu_reports_missing_evaluated_dose_like_the_cpu() {
    let Some(engine) = gpu() else { return };
    // the evaluated grid covers only part of the reference grid
    let gr = Grid3::new([10, 10, 30], [2.0; 3], [-30.0, -10.0, -10.0]).unwrap();
    let ge = Grid3::new([10, 10, 10], [2.0; 3], [-30.0, -10.0, -10.0]).unwrap();
    let reference = blobs(&gr, &[([0.0; 3], 20.0, 1.0)]);
    let evaluated = blobs(&ge, &[([0.0; 3], 20.0, 1.0)]);
    let c = GammaCriteria::new(3.0, 3.0);
    for c in [c.clone(), lattice(&c)] {
        let gpu = engine.gamma(&reference, &evaluated, &c).unwrap();
        assert!(gpu.gamma().data().iter().any(|g| g.is_infinite()));
        compare(&engine, &reference, &evaluated, &c);
    }
}

/// A long reach (3 mm DTA and γ up to 4 on 1 mm voxels: 12 voxels, up to 25³
/// cells per point) and a dose that fails widely: searches long enough that
/// lavapipe's limit of 65,535 loop iterations per invocation cuts some short
/// (before the kernel reported them, 3 % of the points came back with too
/// large a γ); those points are computed on the CPU, so every point equals
/// the CPU's. Under `Auto` the continuous search runs on the CPU.
#[test]
fn gpu_continuous_search_equals_cpu_over_a_long_reach() {
    let Some(engine) = gpu() else { return };
    let grid = Grid3::new([14, 16, 18], [1.0; 3], [-9.0, -8.0, -7.0]).unwrap();
    let reference = blobs(&grid, &[([0.0; 3], 3.0, 2.0)]);
    let evaluated = blobs(&grid, &[([4.0, -2.5, 1.5], 3.0, 1.3)]);
    // (local γ at a tenth of a percent of the maximum dose differs by up to
    // 7e-4 between f32 and f64 here, a question of precision, not of reach:
    // the local case starts at a 10 % cut-off)
    for (local, cutoff) in [(false, 0.0), (true, 10.0)] {
        let mut c = GammaCriteria::new(1.0, 3.0);
        c.max_gamma = 4.0;
        c.cutoff_percent = cutoff;
        c.local = local;
        compare(&engine, &reference, &evaluated, &c);
        // the lattice kernel reports its cut-short points the same way (its
        // local γ in low-dose tails ends at near-tied lattice points: see
        // `gpu_equals_cpu_on_random_doses`)
        if !local {
            compare(&engine, &reference, &evaluated, &lattice(&c));
        }
    }
    let c = GammaCriteria::new(1.0, 3.0);
    let auto = Engine::new(BackendChoice::Auto).unwrap();
    let r = auto.gamma(&reference, &evaluated, &c).unwrap();
    assert!(matches!(r.backend(), BackendKind::Cpu { .. }));
}

/// The default criteria search continuously, on the GPU too, and the
/// result says which search and which backend ran.
#[test]
fn the_default_search_is_continuous_on_both_backends() {
    let Some(engine) = gpu() else { return };
    let grid = Grid3::new([12, 12, 12], [2.0; 3], [-11.0; 3]).unwrap();
    let reference = blobs(&grid, &[([0.0; 3], 6.0, 1.0)]);
    let evaluated = blobs(&grid, &[([0.5, 0.0, 0.0], 6.0, 1.02)]);
    let c = GammaCriteria::new(2.0, 2.0);
    assert_eq!(c.search, GammaSearch::Continuous);
    let on_gpu = engine.gamma(&reference, &evaluated, &c).unwrap();
    assert!(matches!(on_gpu.backend(), BackendKind::Gpu { .. }));
    assert_eq!(on_gpu.criteria().search, GammaSearch::Continuous);
    let cpu = Engine::new(BackendChoice::Cpu).unwrap();
    let on_cpu = cpu.gamma(&reference, &evaluated, &c).unwrap();
    assert!(matches!(on_cpu.backend(), BackendKind::Cpu { .. }));
    compare(&engine, &reference, &evaluated, &c);
}
