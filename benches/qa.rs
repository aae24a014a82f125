//! Plan-QA benchmarks: 3D gamma 2 %/2 mm (global, 10 % cut-off, search step
//! Δd/10, γ up to 2) on a 1.6 M-voxel grid, CPU (lattice and continuous
//! search) and (when an adapter exists) GPU, and a sub-voxel DVH of a 60 mm
//! cube.
//!
//! The dose is a 60 mm box field with logistic penumbrae (width parameter
//! 2 mm, so 80 %–20 % ≈ 5.5 mm) of 2 Gy on a low-dose bath, on 128 × 128 × 100
//! voxels of 2 mm; the evaluated dose is the same field shifted 1 mm along x
//! and scaled by 1.01. `scripts/bench_gamma.py` builds the identical arrays in
//! NumPy to time pymedphys on the same case.
//!
//! Throughput: reference voxels per second.

#![allow(clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use isodose::qa::{Dvh, GammaCriteria, GammaSearch, Structure};
use isodose::{BackendChoice, DoseGrid, Engine, Grid3, Volume};
use ndarray::Array3;
use std::hint::black_box;

/// The benchmark field at `p` (mm), shifted by `shift_x` mm, in Gy.
fn field(p: [f64; 3], shift_x: f64) -> f64 {
    let edge = |u: f64| 1.0 / (1.0 + (-(u + 30.0) / 2.0).exp()) / (1.0 + ((u - 30.0) / 2.0).exp());
    let x = p[0] - shift_x;
    let r2 = x * x + p[1] * p[1] + p[2] * p[2];
    2.0 * edge(x) * edge(p[1]) * edge(p[2]) + 0.1 * (-r2 / (2.0 * 60.0 * 60.0)).exp()
}

fn dose(grid: &Grid3, shift_x: f64, scale: f64) -> DoseGrid {
    let data = Array3::from_shape_fn((grid.nz(), grid.ny(), grid.nx()), |(k, j, i)| {
        let p = grid.index_to_world([k, j, i]);
        (scale * field([p.x, p.y, p.z], shift_x)) as f32
    });
    Volume::new(grid.clone(), data).expect("dose")
}

fn bench_gamma(c: &mut Criterion) {
    let grid = Grid3::new([100, 128, 128], [2.0; 3], [-127.0, -127.0, -99.0]).expect("grid");
    let reference = dose(&grid, 0.0, 1.0);
    let evaluated = dose(&grid, 1.0, 1.01);
    // the default search is the continuous one; the lattice (pymedphys's
    // search) is timed for comparison
    let criteria = GammaCriteria {
        search: GammaSearch::Lattice,
        ..GammaCriteria::new(2.0, 2.0)
    };
    let mut group = c.benchmark_group("gamma_2pct_2mm_128x128x100");
    group.sample_size(10);
    group.throughput(Throughput::Elements(grid.len() as u64));
    let cpu = Engine::new(BackendChoice::Cpu).expect("cpu");
    let r = cpu.gamma(&reference, &evaluated, &criteria).expect("gamma");
    println!(
        "gamma 2%/2mm: {} points evaluated, pass rate {:.2} %",
        r.evaluated_count(),
        100.0 * r.pass_rate()
    );
    group.bench_function(BenchmarkId::new("cpu", "global lattice"), |b| {
        b.iter(|| black_box(cpu.gamma(&reference, &evaluated, &criteria).expect("gamma")))
    });
    let continuous = GammaCriteria::new(2.0, 2.0);
    assert_eq!(continuous.search, GammaSearch::Continuous);
    let r = cpu
        .gamma(&reference, &evaluated, &continuous)
        .expect("gamma");
    println!(
        "gamma 2%/2mm, continuous search: pass rate {:.2} %, mean gamma {:.4}",
        100.0 * r.pass_rate(),
        r.mean_gamma()
    );
    group.bench_function(BenchmarkId::new("cpu", "global continuous"), |b| {
        b.iter(|| {
            black_box(
                cpu.gamma(&reference, &evaluated, &continuous)
                    .expect("gamma"),
            )
        })
    });
    if let Ok(gpu) = Engine::new(BackendChoice::Gpu) {
        println!("gpu backend: {}", gpu.backend());
        group.bench_function(BenchmarkId::new("gpu", "global lattice"), |b| {
            b.iter(|| black_box(gpu.gamma(&reference, &evaluated, &criteria).expect("gamma")))
        });
        group.bench_function(BenchmarkId::new("gpu", "global continuous"), |b| {
            b.iter(|| {
                black_box(
                    gpu.gamma(&reference, &evaluated, &continuous)
                        .expect("gamma"),
                )
            })
        });
    }
    group.finish();
}

fn bench_dvh(c: &mut Criterion) {
    let grid = Grid3::new([100, 128, 128], [2.0; 3], [-127.0, -127.0, -99.0]).expect("grid");
    let reference = dose(&grid, 0.0, 1.0);
    // a 60 mm cube contoured every 2 mm
    let contours: Vec<Vec<[f64; 3]>> = (0..30)
        .map(|i| {
            let z = -29.0 + 2.0 * f64::from(i);
            vec![
                [-30.0, -30.0, z],
                [30.0, -30.0, z],
                [30.0, 30.0, z],
                [-30.0, 30.0, z],
            ]
        })
        .collect();
    let cube = Structure::from_contours("cube", &contours, 2.0).expect("structure");
    let mut group = c.benchmark_group("dvh_60mm_cube_on_2mm_grid");
    group.sample_size(10);
    for k in [1usize, 4] {
        group.bench_function(BenchmarkId::new("subdivisions", k), |b| {
            b.iter(|| black_box(Dvh::from_structure(&reference, &cube, k).expect("dvh")))
        });
    }
    // the binning alone, on each backend, of the 4 x 4 samples
    let samples = cube.sample(&reference, 4).expect("samples");
    println!("dvh: {} samples", samples.len());
    group.bench_function(BenchmarkId::new("binning", "cpu"), |b| {
        b.iter(|| black_box(Dvh::from_samples(&samples).expect("dvh")))
    });
    if let Ok(gpu) = Engine::new(BackendChoice::Gpu) {
        group.bench_function(BenchmarkId::new("binning", "gpu"), |b| {
            b.iter(|| black_box(gpu.dvh(&samples).expect("dvh")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_gamma, bench_dvh);
criterion_main!(benches);
