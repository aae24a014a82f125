//! The DVH histogram GPU kernel against the CPU reference, on random dose
//! samples and on a contoured structure in a dose gradient.
//!
//! These tests run on any machine: with no hardware GPU, wgpu uses Mesa's
//! software Vulkan driver (lavapipe). A missing adapter is a failure, not a
//! skip, unless ISODOSE_SKIP_GPU_TESTS=1 is set on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use isodose_core::qa::{DoseSample, Dvh, Structure};
use isodose_core::{BackendChoice, BackendKind, Engine, Grid3, Volume};
use ndarray::Array3;
use proptest::prelude::*;

mod common;
use common::gpu;

/// The GPU histogram equals the CPU's (volume and dose statistics are the
/// same host code on both paths): the histogram's total, the cumulative DVH
/// at every bin edge within the volume of the few samples whose f32 dose can
/// cross an edge (at most `slack` mm³) plus 1e-5 of the volume, and D_x
/// within one bin.
fn compare(cpu: &Dvh, gpu: &Dvh, slack_mm3: f64) {
    let (a, b) = (cpu.differential_cc(), gpu.differential_cc());
    assert_eq!(a.len(), b.len());
    let total: f64 = a.iter().sum();
    // the kernel splits each sample's volume at the bin edges in f32: a
    // share's error is the f32 rounding of the doses (about 1e-6 Gy at
    // 60 Gy) over the sample's dose range, so the histogram's total may
    // differ from the exact volume by about 1e-5 of it
    let gpu_total: f64 = b.iter().sum();
    assert!(
        (total - gpu_total).abs() <= 1e-5 * total,
        "histogram total {gpu_total} cm³, cpu {total}"
    );
    // cumulative from the top: V(≥ edge b)
    let (mut va, mut vb, mut worst) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(&b).rev() {
        va += x;
        vb += y;
        worst = worst.max((va - vb).abs());
    }
    assert!(
        worst * 1000.0 <= slack_mm3 + 1e-5 * total * 1000.0,
        "cumulative DVH differs by {worst} cm³ (slack {slack_mm3} mm³)"
    );
    for x in [0.02, 0.05, 0.5, 0.95, 0.98] {
        let (da, db) = (
            cpu.dose_at_fraction(x).unwrap(),
            gpu.dose_at_fraction(x).unwrap(),
        );
        assert!(
            (da - db).abs() <= cpu.bin_width_gy(),
            "D{x}: cpu {da}, gpu {db}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Random samples: point doses and dose ranges, volumes over six orders
    /// of magnitude, a few empty ones.
    #[test]
    fn gpu_histogram_matches_cpu_on_random_samples(
        raw in prop::collection::vec((0.0f64..60.0, 0.0f64..8.0, -6.0f64..0.0, any::<bool>()), 1..3000),
    ) {
        let Some(g) = gpu() else { return Ok(()) };
        let samples: Vec<DoseSample> = raw
            .iter()
            .map(|&(lo, width, log_v, point)| DoseSample {
                dose_lo_gy: lo,
                dose_hi_gy: if point { lo } else { lo + width },
                volume_mm3: if log_v < -5.8 { 0.0 } else { 10f64.powf(log_v + 1.0) },
                outside: false,
            })
            .collect();
        prop_assume!(samples.iter().any(|s| s.volume_mm3 > 0.0));
        let cpu = Dvh::from_samples(&samples).unwrap();
        let (dvh, ran) = g.dvh(&samples).unwrap();
        let on_gpu = matches!(ran, BackendKind::Gpu { .. });
        prop_assert!(on_gpu, "ran on {}", ran);
        // at most a handful of sample ends within f32 rounding of an edge
        let largest = samples.iter().map(|s| s.volume_mm3).fold(0.0, f64::max);
        compare(&cpu, &dvh, 4.0 * largest);
    }
}

/// One sample, and one sample holding nearly all the volume among small
/// ones: the fixed-point sums keep every share, however dominant.
#[test]
fn gpu_histogram_keeps_dominant_samples() {
    let Some(g) = gpu() else { return };
    let sample = |lo: f64, hi: f64, v: f64| DoseSample {
        dose_lo_gy: lo,
        dose_hi_gy: hi,
        volume_mm3: v,
        outside: false,
    };
    for samples in [
        vec![sample(2.0, 2.0, 8.0)],
        vec![sample(1.0, 9.0, 8.0)],
        (0..50)
            .map(|n| sample(f64::from(n) * 0.2, f64::from(n) * 0.2 + 0.5, 1e-3))
            .chain([sample(3.0, 7.5, 1e4)])
            .collect(),
    ] {
        let cpu = Dvh::from_samples(&samples).unwrap();
        let (dvh, _) = g.dvh(&samples).unwrap();
        compare(&cpu, &dvh, 0.0);
    }
}

/// A 12 mm sphere contoured every 2 mm in a linear dose gradient, sampled
/// 4 × 4 per voxel (about 10⁴ samples, each spread over its dose range).
#[test]
fn gpu_dvh_of_a_contoured_sphere() {
    let Some(g) = gpu() else { return };
    let grid = Grid3::new([14, 14, 14], [2.5; 3], [-16.0, -15.5, -16.3]).unwrap();
    let data = Array3::from_shape_fn((14, 14, 14), |(k, j, i)| {
        let p = grid.index_to_world([k, j, i]);
        (20.0 + 0.8 * p.x - 0.3 * p.z) as f32
    });
    let dose = Volume::new(grid, data).unwrap();
    let contours: Vec<Vec<[f64; 3]>> = (0..12)
        .map(|n| {
            let z = -11.0 + 2.0 * n as f64;
            let rho = (144.0 - z * z).max(0.0).sqrt();
            (0..128)
                .map(|a| {
                    let t = a as f64 * std::f64::consts::TAU / 128.0;
                    [rho * t.cos(), rho * t.sin(), z]
                })
                .collect()
        })
        .collect();
    let sphere = Structure::from_contours("sphere", &contours, 2.0).unwrap();
    let samples = sphere.sample(&dose, 4).unwrap();
    assert!(samples.len() > 5000, "{}", samples.len());
    let cpu = Dvh::from_samples(&samples).unwrap();
    let (dvh, ran) = g.dvh(&samples).unwrap();
    assert_eq!(&ran, g.backend());
    let largest = samples.iter().map(|s| s.volume_mm3).fold(0.0, f64::max);
    compare(&cpu, &dvh, 4.0 * largest);
    // an Auto engine keeps this small problem on the CPU, with the CPU's DVH
    let (auto, ran) = Engine::new(BackendChoice::Auto)
        .unwrap()
        .dvh(&samples)
        .unwrap();
    assert!(matches!(ran, BackendKind::Cpu { .. }));
    assert_eq!(auto.differential_cc(), cpu.differential_cc());
}
