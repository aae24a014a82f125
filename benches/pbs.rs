//! Proton reference field (water phantom 81 × 150 × 81 at 2 mm, 50 mm cube
//! target at 101 mm depth, about 3,200 spots on a 5 mm grid, layers 3 mm
//! apart): forward dose and dij on the CPU, and on the GPU when an adapter
//! exists (lavapipe where there is no GPU; there the dij with the halo,
//! minutes per run, only on hardware), with and without the nuclear halo. Throughput is in spot·voxel pairs inside the lateral
//! cut-off (the dij's non-zeros: the pairs both kernels evaluate), not in
//! all spot·voxel pairs of the grid.

#![allow(clippy::expect_used)]

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use isodose::phantom::reference_field;
use isodose::proton::{DoseOptions, ProtonMachine};
use isodose::{BackendChoice, DEFAULT_DIJ_LIMIT_BYTES, Engine};
use std::hint::black_box;

fn bench_pbs(c: &mut Criterion) {
    let machine = ProtonMachine::generic().expect("generic machine");
    let ct = reference_field::phantom().expect("phantom");
    let plan = reference_field::plan(&machine).expect("plan");
    let engine = Engine::new(BackendChoice::Cpu).expect("cpu engine");
    let gpu = Engine::new(BackendChoice::Gpu).ok();
    if let Some(g) = &gpu {
        println!("gpu backend: {}", g.backend());
    }
    let mut group = c.benchmark_group("pbs_reference_field");
    group.sample_size(10);
    for halo in [false, true] {
        let options = DoseOptions {
            include_halo: halo,
            ..DoseOptions::new().expect("options")
        };
        let label = if halo { "halo" } else { "no_halo" };
        let dose = |e: &Engine| {
            e.pbs_dose(&ct, &plan, &machine, None, &options)
                .expect("dose")
        };
        let dij = |e: &Engine| {
            e.pbs_dij(
                &ct,
                &plan,
                &machine,
                None,
                &options,
                DEFAULT_DIJ_LIMIT_BYTES,
            )
            .expect("dij")
        };
        let matrix = dij(&engine);
        println!(
            "{label}: {} spots, dij {} non-zeros, {:.1} MiB",
            plan.spot_count(),
            matrix.nnz(),
            matrix.memory_bytes() as f64 / 1048576.0
        );
        group.throughput(Throughput::Elements(matrix.nnz() as u64));
        drop(matrix);
        // each dij is freed outside the timing (one at a time): building it
        // is the product, freeing it the caller's business
        let engines = gpu
            .iter()
            .map(|g| ("gpu", g))
            .chain(std::iter::once(("cpu", &engine)));
        for (kind, e) in engines {
            group.bench_function(
                BenchmarkId::new(format!("{kind}_forward_dose"), label),
                |b| b.iter(|| black_box(dose(e))),
            );
            // (the halo dij on a software GPU would take minutes)
            if kind == "cpu" || !halo || !is_software(e) {
                group.bench_function(BenchmarkId::new(format!("{kind}_dij"), label), |b| {
                    b.iter_batched(|| (), |()| black_box(dij(e)), BatchSize::PerIteration)
                });
            }
        }
    }
    group.finish();
}

/// Mesa's lavapipe or llvmpipe (a software rasteriser on the CPU).
fn is_software(engine: &Engine) -> bool {
    engine.backend().to_string().contains("Cpu)")
}

criterion_group!(benches, bench_pbs);
criterion_main!(benches);
