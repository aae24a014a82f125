//! The proton PBS GPU kernels (forward dose and dij) against the CPU
//! reference, on random valid plans and phantoms and on one fixed
//! heterogeneous case.
//!
//! These tests run on any machine: with no hardware GPU, wgpu uses Mesa's
//! software Vulkan driver (lavapipe; Debian `mesa-vulkan-drivers`). A missing
//! adapter is a failure, not a skip, unless ISODOSE_SKIP_GPU_TESTS=1 is set
//! on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use isodose_core::physics::hlut::Hlut;
use isodose_core::proton::{
    Dij, DoseOptions, ProtonBeam, ProtonMachine, ProtonPlan, RangeShifter, Spot, SpotSplitting,
};
use isodose_core::{
    BackendChoice, BackendKind, CtVolume, DEFAULT_DIJ_LIMIT_BYTES, DoseGrid, Engine, Grid3, Volume,
};
use ndarray::Array3;
use proptest::prelude::*;

mod common;
use common::gpu;

fn cpu() -> Engine {
    Engine::new(BackendChoice::Cpu).unwrap()
}

fn machine() -> &'static ProtonMachine {
    isodose_core::proton::generic::generic_machine().unwrap()
}

fn max_of(d: &DoseGrid) -> f64 {
    f64::from(d.data().iter().fold(0.0f32, |m, v| m.max(*v)))
}

/// max |gpu − cpu| / max(cpu), and where.
fn compare(cpu: &DoseGrid, gpu: &DoseGrid) -> (f64, [usize; 3]) {
    assert_eq!(cpu.grid(), gpu.grid());
    let max = max_of(cpu);
    let mut worst = (0.0, [0; 3]);
    for ((k, j, i), c) in cpu.data().indexed_iter() {
        let d = (f64::from(gpu.data()[[k, j, i]]) - f64::from(*c)).abs() / max;
        if d > worst.0 {
            worst = (d, [k, j, i]);
        }
    }
    worst
}

/// |gpu − cpu| ≤ 1e-4 of the maximum dose: the GPU evaluates the CPU's model
/// on the same (voxel, pencil) pairs in f32 (terms to ~1e-6 relative) and sums
/// them with compensation.
const TOLERANCE: f64 = 1e-4;

/// Voxels whose dose differs by more than a tenth of the tolerance in one
/// backend's non-zero set but not the other's would reveal a different
/// voxel selection; count voxels dosed by one backend only.
fn support_mismatch(cpu: &DoseGrid, gpu: &DoseGrid) -> usize {
    let floor = 1e-5 * max_of(cpu) as f32;
    cpu.data()
        .iter()
        .zip(gpu.data().iter())
        .filter(|(c, g)| (**c > floor) != (**g > floor) && (**c - **g).abs() > floor)
        .count()
}

/// The GPU dij against the CPU's: the same entries (column sizes and row
/// indices: every decision at a cut-off, range or half-node boundary is
/// taken with the CPU's f64 arithmetic), and max |gpu − cpu| over the
/// entries as a fraction of the largest entry.
fn compare_dij(cpu: &Dij, gpu: &Dij) -> f64 {
    assert_eq!(cpu.shape(), gpu.shape());
    assert_eq!(cpu.col_ptr(), gpu.col_ptr(), "column sizes differ");
    assert!(cpu.row_idx() == gpu.row_idx(), "row indices differ");
    let max = cpu.values().iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max > 0.0);
    cpu.values()
        .iter()
        .zip(gpu.values())
        .map(|(c, g)| f64::from((c - g).abs() / max))
        .fold(0.0, f64::max)
}

/// A box phantom of water with slabs of other HU values across it.
fn phantom(shape: [usize; 3], spacing: [f64; 3], slabs: &[(usize, f64, f64, f32)]) -> CtVolume {
    let origin = [
        -(shape[2] as f64 - 1.0) / 2.0 * spacing[0],
        -(shape[1] as f64 - 1.0) / 2.0 * spacing[1],
        -(shape[0] as f64 - 1.0) / 2.0 * spacing[2],
    ];
    let grid = Grid3::new(shape, spacing, origin).unwrap();
    let mut data = Array3::<f32>::zeros((shape[0], shape[1], shape[2]));
    for ((k, j, i), v) in data.indexed_iter_mut() {
        let p = grid.index_to_world([k, j, i]);
        for &(axis, from, to, hu) in slabs {
            let c = [p.x, p.y, p.z][axis];
            if c >= from && c < to {
                *v = hu;
            }
        }
    }
    Volume::new(grid, data).unwrap()
}

fn spot(energy_mev: f64, x_mm: f64, y_mm: f64, weight: f64) -> Spot {
    Spot {
        energy_mev,
        x_mm,
        y_mm,
        weight,
    }
}

#[test]
fn an_explicit_gpu_engine_computes_pbs_on_the_gpu() {
    let Some(g) = gpu() else { return };
    let adapter = match g.backend() {
        BackendKind::Gpu { adapter } => adapter.clone(),
        other => panic!("{other:?}"),
    };
    let ct = phantom([12, 30, 14], [2.0; 3], &[]);
    let plan = ProtonPlan::new(
        vec![
            ProtonBeam::new(
                0.0,
                0.0,
                [0.0; 3],
                vec![spot(80.0, 0.0, 0.0, 1e9), spot(90.0, 4.0, -2.0, 5e8)],
                None,
            )
            .unwrap(),
        ],
        1,
    )
    .unwrap();
    let options = DoseOptions::new().unwrap();
    let (dose, backend) = g
        .pbs_dose_with_backend(&ct, &plan, machine(), None, &options)
        .unwrap();
    assert_eq!(
        backend,
        BackendKind::Gpu {
            adapter: adapter.clone()
        }
    );
    let (reference, cpu_backend) = cpu()
        .pbs_dose_with_backend(&ct, &plan, machine(), None, &options)
        .unwrap();
    assert!(matches!(cpu_backend, BackendKind::Cpu { .. }));
    let (worst, at) = compare(&reference, &dose);
    assert!(worst <= TOLERANCE, "worst {worst:e} at {at:?}");
    // the GPU dij times the weights is the GPU dose
    let (dij, dij_backend) = g
        .pbs_dij_with_backend(
            &ct,
            &plan,
            machine(),
            None,
            &options,
            DEFAULT_DIJ_LIMIT_BYTES,
        )
        .unwrap();
    assert_eq!(dij_backend, BackendKind::Gpu { adapter });
    let from_dij = dij.dose(&[1e9, 5e8]).unwrap();
    let max = max_of(&reference);
    assert!(max > 0.0);
    for (a, b) in dose.data().iter().zip(&from_dij) {
        assert!((f64::from(*a) - b).abs() <= TOLERANCE * max, "{a} vs {b}");
    }
}

/// A heterogeneous phantom (bone, lung and air slabs and a bone insert
/// half-way across the field), two cardinal beams on a 2.5 mm grid, where
/// many voxels sit exactly half-way between two depth nodes (the CPU's
/// choice of node there depends on the last bits of its f64 arithmetic),
/// with 3 × 3 spot splitting, the halo and a range shifter on one beam.
#[test]
fn gpu_matches_cpu_on_a_heterogeneous_phantom() {
    let Some(g) = gpu() else { return };
    let shape = [16, 36, 28];
    let spacing = [2.5; 3];
    let mut ct = phantom(
        shape,
        spacing,
        &[
            (1, -30.0, -22.0, 800.0), // bone slab across the gantry-0 beam
            (1, -10.0, 5.0, -750.0),  // lung
            (0, 8.0, 14.0, -1000.0),  // air gap across the gantry-90 beam
        ],
    );
    // a bone insert covering half of the field laterally
    let grid = ct.grid().clone();
    for ((k, j, i), v) in ct.data_mut().indexed_iter_mut() {
        let p = grid.index_to_world([k, j, i]);
        if p.x < 0.0 && p.y > 10.0 && p.y < 20.0 {
            *v = 1200.0;
        }
    }
    let spots = |e0: f64| -> Vec<Spot> {
        let mut s = Vec::new();
        for (n, e) in [e0, e0 + 8.0].iter().enumerate() {
            for x in [-8.0, 0.0, 8.0] {
                for y in [-6.0, 6.0] {
                    s.push(spot(*e, x + n as f64, y, 1e8 * (1.0 + 0.3 * x.abs() / 8.0)));
                }
            }
        }
        s
    };
    let shifter = RangeShifter::pmma(30.0, 250.0).unwrap();
    let plan = ProtonPlan::new(
        vec![
            ProtonBeam::new(0.0, 0.0, [0.0; 3], spots(85.0), None).unwrap(),
            ProtonBeam::new(90.0, 0.0, [0.0; 3], spots(95.0), Some(shifter)).unwrap(),
        ],
        1,
    )
    .unwrap();
    let options = DoseOptions {
        spot_splitting: Some(SpotSplitting::lattice(5).unwrap()),
        ..DoseOptions::new().unwrap()
    };
    let a = cpu()
        .pbs_dose(&ct, &plan, machine(), None, &options)
        .unwrap();
    let b = g.pbs_dose(&ct, &plan, machine(), None, &options).unwrap();
    let (worst, at) = compare(&a, &b);
    println!(
        "heterogeneous phantom: max {:.4e} Gy, worst |gpu - cpu| / max {worst:.2e} at {at:?}",
        max_of(&a)
    );
    assert!(max_of(&a) > 0.0);
    assert_eq!(support_mismatch(&a, &b), 0);
    assert!(worst <= TOLERANCE, "worst {worst:e} at {at:?}");
    // the dij (all spots, 3 x 3 sub-pencils each) on both backends
    let da = cpu()
        .pbs_dij(
            &ct,
            &plan,
            machine(),
            None,
            &options,
            DEFAULT_DIJ_LIMIT_BYTES,
        )
        .unwrap();
    let db = g
        .pbs_dij(
            &ct,
            &plan,
            machine(),
            None,
            &options,
            DEFAULT_DIJ_LIMIT_BYTES,
        )
        .unwrap();
    let worst = compare_dij(&da, &db);
    println!(
        "heterogeneous phantom dij: {} entries, worst |gpu - cpu| / max {worst:.2e}",
        da.nnz()
    );
    assert!(worst <= TOLERANCE, "dij worst {worst:e}");
}

/// A random plan: 1 or 2 beams (gantry and couch random or cardinal), each
/// with a few spots at random energies, positions and weights, optionally a
/// range shifter.
fn plan_strategy() -> impl Strategy<Value = ProtonPlan> {
    let angle = prop_oneof![Just(0.0), Just(90.0), Just(270.0), 0.0f64..360.0];
    let couch = prop_oneof![Just(0.0), Just(90.0), -90.0f64..90.0];
    let spots = prop::collection::vec(
        (70.0f64..130.0, -12.0f64..12.0, -12.0f64..12.0, 1e6f64..1e9),
        1..5,
    );
    let shifter = prop::option::of((10.0f64..50.0, 150.0f64..400.0));
    let beam = (angle, couch, spots, shifter);
    prop::collection::vec(beam, 1..3).prop_map(|beams| {
        let beams = beams
            .into_iter()
            .map(|(g, c, s, rs)| {
                let spots = s.into_iter().map(|(e, x, y, w)| spot(e, x, y, w)).collect();
                let rs = rs.map(|(wet, d)| RangeShifter::pmma(wet, d).unwrap());
                ProtonBeam::new(g, c, [0.0; 3], spots, rs).unwrap()
            })
            .collect();
        ProtonPlan::new(beams, 1).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// GPU == CPU within 1e-4 of the maximum on random small phantoms with
    /// random HU slabs, random plans, with and without halo, spot splitting
    /// and a separate dose grid.
    #[test]
    fn gpu_matches_cpu_on_random_plans(
        shape in (6usize..14, 10usize..22, 6usize..14),
        spacing in prop_oneof![Just(2.0f64), Just(2.5), 1.6f64..3.6],
        slabs in prop::collection::vec(
            (0usize..3, -30.0f64..30.0, 2.0f64..20.0, -1000.0f32..1500.0), 0..4),
        plan in plan_strategy(),
        halo in any::<bool>(),
        splitting in prop_oneof![Just(None), Just(Some(SpotSplitting::lattice(5).unwrap())), Just(Some(SpotSplitting::lattice(7).unwrap()))],
        dose_grid in prop::option::of((1.5f64..4.0, prop::array::uniform3(-3.0f64..3.0))),
    ) {
        let Some(g) = gpu() else { return Ok(()) };
        let slabs: Vec<(usize, f64, f64, f32)> =
            slabs.into_iter().map(|(a, from, len, hu)| (a, from, from + len, hu)).collect();
        let ct = phantom([shape.0, shape.1, shape.2], [spacing, spacing * 1.1, spacing * 0.9], &slabs);
        let dose_grid = dose_grid.map(|(s, shift)| {
            let (lo, hi) = ct.grid().centre_bounds_mm();
            Grid3::covering(
                [lo.x + shift[0], lo.y + shift[1], lo.z + shift[2]],
                [hi.x, hi.y, hi.z],
                s,
            )
            .unwrap()
        });
        let options = DoseOptions {
            hlut: Hlut::default_curve().unwrap(),
            include_halo: halo,
            spot_splitting: splitting,
            ..DoseOptions::new().unwrap()
        };
        let a = cpu().pbs_dose(&ct, &plan, machine(), dose_grid.as_ref(), &options).unwrap();
        let b = g.pbs_dose(&ct, &plan, machine(), dose_grid.as_ref(), &options).unwrap();
        let max = max_of(&a);
        prop_assume!(max > 0.0);
        let (worst, at) = compare(&a, &b);
        println!("max {max:.3e} Gy: worst |gpu - cpu| / max {worst:.2e} at {at:?}");
        prop_assert_eq!(support_mismatch(&a, &b), 0);
        prop_assert!(worst <= TOLERANCE, "worst {:e} at {:?}", worst, at);
        // the dij on both backends
        let da = cpu().pbs_dij(&ct, &plan, machine(), dose_grid.as_ref(), &options, DEFAULT_DIJ_LIMIT_BYTES).unwrap();
        let db = g.pbs_dij(&ct, &plan, machine(), dose_grid.as_ref(), &options, DEFAULT_DIJ_LIMIT_BYTES).unwrap();
        let worst = compare_dij(&da, &db);
        println!("dij: {} entries, worst |gpu - cpu| / max {worst:.2e}", da.nnz());
        prop_assert!(worst <= TOLERANCE, "dij worst {:e}", worst);
    }
}
