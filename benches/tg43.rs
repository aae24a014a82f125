//! TG-43 grid benchmark: 100 I-125 seeds (model 6711) on grids of 1 mm voxels,
//! 128 × 128 × 96 (1.57 M voxels) and 256 × 256 × 128 (8.4 M voxels),
//! permanent-implant dose, CPU and (when an adapter exists) GPU.
//!
//! Throughput is reported in seed·voxel evaluations per second. `warm` reuses
//! the engine (the tabulated kernel is cached, as when a planner moves seeds);
//! `cold` creates a new engine per iteration and so includes the tabulation.

#![allow(clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use isodose::tg43::{Implant, SeedCatalogue};
use isodose::{BackendChoice, Engine, Grid3};
use std::hint::black_box;

fn implant_100_seeds() -> Implant {
    let model = SeedCatalogue::builtin()
        .get("Amersham6711")
        .expect("built-in model")
        .clone();
    isodose::phantom::benchmark_implant(model).expect("valid implant")
}

fn bench_tg43(c: &mut Criterion) {
    // the foundation issue's case (1 mm, 1.57 M voxels) and the GPU issue's
    // (256 × 256 × 128 at 1 mm, 8.4 M voxels)
    for shape in [[96, 128, 128], [128, 256, 256]] {
        bench_grid(c, shape);
    }
}

fn bench_grid(c: &mut Criterion, shape: [usize; 3]) {
    let implant = implant_100_seeds();
    let origin = [
        -(shape[2] as f64 - 1.0) / 2.0,
        -(shape[1] as f64 - 1.0) / 2.0,
        -(shape[0] as f64 - 1.0) / 2.0,
    ];
    let grid = Grid3::new(shape, [1.0; 3], origin).expect("grid");
    let evaluations = (implant.seeds().len() * grid.len()) as u64;
    let mut group = c.benchmark_group(format!(
        "tg43_100_seeds_{}x{}x{}",
        shape[2], shape[1], shape[0]
    ));
    group.sample_size(10);
    group.throughput(Throughput::Elements(evaluations));
    let engine = Engine::new(BackendChoice::Cpu).expect("cpu engine");
    group.bench_function(BenchmarkId::new("cpu", "warm"), |b| {
        b.iter(|| black_box(engine.tg43_dose(&implant, &grid).expect("dose")))
    });
    group.bench_function(BenchmarkId::new("cpu", "cold"), |b| {
        b.iter(|| {
            let engine = Engine::new(BackendChoice::Cpu).expect("cpu engine");
            black_box(engine.tg43_dose(&implant, &grid).expect("dose"))
        })
    });
    // the GPU backend, when an adapter exists (a software rasteriser too:
    // the label names the adapter)
    if let Ok(gpu) = Engine::new(BackendChoice::Gpu) {
        println!("gpu backend: {}", gpu.backend());
        gpu.tg43_dose(&implant, &grid).expect("warm-up");
        group.bench_function(BenchmarkId::new("gpu", "warm"), |b| {
            b.iter(|| black_box(gpu.tg43_dose(&implant, &grid).expect("dose")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_tg43);
criterion_main!(benches);
