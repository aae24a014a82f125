//! TG-43 grid benchmark: 100 I-125 seeds (model 6711) on a 128 × 128 × 96 grid
//! of 1 mm voxels (1.57 M voxels), permanent-implant dose.
//!
//! Throughput is reported in seed·voxel evaluations per second. `warm` reuses
//! the engine (the tabulated kernel is cached, as when a planner moves seeds);
//! `cold` creates a new engine per iteration and so includes the tabulation.

#![allow(clippy::expect_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use isodose::tg43::{Implant, Seed, SeedCatalogue, Technique};
use isodose::{BackendChoice, Engine, Grid3};
use std::hint::black_box;

fn implant_100_seeds() -> Implant {
    let model = SeedCatalogue::builtin()
        .get("Amersham6711")
        .expect("built-in model")
        .clone();
    // 100 seeds on needles of a 5 mm template inside a 45 mm region
    let seeds = (0..100)
        .map(|i| {
            let needle = i / 5;
            let x = -20.0 + 10.0 * f64::from(needle % 5);
            let y = -15.0 + 7.5 * f64::from(needle / 5);
            let z = -20.0 + 10.0 * f64::from(i % 5);
            Seed::new([x, y, z], None, 0.5).expect("valid seed")
        })
        .collect();
    Implant::new(model, seeds, Technique::Permanent, 0.0).expect("valid implant")
}

fn bench_tg43(c: &mut Criterion) {
    let implant = implant_100_seeds();
    let grid = Grid3::new([96, 128, 128], [1.0; 3], [-63.5, -63.5, -47.5]).expect("grid");
    let evaluations = (implant.seeds().len() * grid.len()) as u64;
    let mut group = c.benchmark_group("tg43_100_seeds_128x128x96");
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
