//! What the proton dose options cost and what they change, on the reference
//! field (water phantom, 50 mm cube target, 3,211 spots, 2 mm grid):
//!
//! - spot splitting: time, pencils and the change of the forward dose for
//!   each lattice against ray casting (in water splitting should change the
//!   dose only within the lattice's documented error);
//! - dij sparsification: entries, memory and the dose error of a dij
//!   without the nuclear halo, or with a larger lateral cut-off, against the
//!   full forward dose (halo on, 0.5 % cut-off) of the same weights.
//!
//! Run with `cargo run --release --example proton_options -- [quick|full]`
//! (`quick`, the default and what the test script runs: ray casting, 5x5
//! and the no-halo dij; `full`: every lattice up to 11x11 and three
//! cut-offs, minutes). Figures are recorded in BENCHMARKS.md.

use std::time::Instant;

use isodose::phantom::reference_field;
use isodose::proton::{DoseOptions, ProtonMachine, SpotSplitting};
use isodose::{BackendChoice, DEFAULT_DIJ_LIMIT_BYTES, DoseGrid, Engine};

/// Largest |a − b| over the maximum of `b`, and the mean |a − b| over the
/// voxels where `b` is at least 90 % of its maximum (the target), both in %.
fn dose_error(a: &[f64], b: &DoseGrid) -> (f64, f64) {
    let max = f64::from(b.data().iter().fold(0.0f32, |m, v| m.max(*v)));
    let (mut worst, mut sum, mut n) = (0.0f64, 0.0f64, 0usize);
    // both in the C order of (z, y, x)
    for (x, y) in a.iter().zip(b.data().iter()) {
        let d = (x - f64::from(*y)).abs();
        worst = worst.max(d);
        if f64::from(*y) >= 0.9 * max {
            sum += d;
            n += 1;
        }
    }
    (100.0 * worst / max, 100.0 * sum / (n.max(1) as f64) / max)
}

fn main() -> Result<(), isodose::DoseError> {
    let full = std::env::args().nth(1).is_some_and(|a| a == "full");
    let machine = ProtonMachine::generic()?;
    let ct = reference_field::phantom()?;
    let plan = reference_field::plan(&machine)?;
    let engine = Engine::new(BackendChoice::Cpu)?;
    let base = DoseOptions::new()?;
    println!(
        "reference field: {} spots, {} voxels (CPU, {} threads)",
        plan.spot_count(),
        ct.grid().len(),
        rayon::current_num_threads()
    );

    println!("\nspot splitting (forward dose, halo on)");
    println!(
        "| splitting | sub-pencils per spot | time (s) | max change vs ray casting (% of max) |"
    );
    println!("|---|---|---|---|");
    let t = Instant::now();
    let ray = engine.pbs_dose(&ct, &plan, &machine, None, &base)?;
    println!(
        "| none (ray casting) | 1 | {:.2} | – |",
        t.elapsed().as_secs_f64()
    );
    let lattices: &[usize] = if full { &[5, 7, 9, 11] } else { &[5] };
    for &n in lattices {
        let split = SpotSplitting::lattice(n)?;
        let options = DoseOptions {
            spot_splitting: Some(split),
            ..base.clone()
        };
        let t = Instant::now();
        let dose = engine.pbs_dose(&ct, &plan, &machine, None, &options)?;
        let secs = t.elapsed().as_secs_f64();
        let values: Vec<f64> = dose.data().iter().map(|v| f64::from(*v)).collect();
        let (worst, _) = dose_error(&values, &ray);
        println!(
            "| {}{} | {} | {secs:.2} | {worst:.2} |",
            split.name(),
            if split == SpotSplitting::RECOMMENDED {
                " (fine)"
            } else {
                ""
            },
            split.sub_pencil_count(),
        );
    }

    println!("\ndij sparsification (dij @ w against the full forward dose)");
    println!(
        "| dij | entries | MiB | time (s) | max error (% of max) | mean error in the target (% of max) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut variants: Vec<(String, DoseOptions)> = vec![(
        "no halo".into(),
        DoseOptions {
            include_halo: false,
            ..base.clone()
        },
    )];
    if full {
        variants.insert(0, ("full (halo, 0.5 % cut-off)".into(), base.clone()));
        for f in [0.02, 0.05] {
            variants.push((
                format!("halo, {} % cut-off", 100.0 * f),
                DoseOptions {
                    lateral_cutoff_fraction: f,
                    ..base.clone()
                },
            ));
        }
    }
    let weights: Vec<f64> = plan
        .beams()
        .iter()
        .flat_map(|b| b.spots().iter().map(|s| s.weight))
        .collect();
    for (label, options) in variants {
        let t = Instant::now();
        let dij = engine.pbs_dij(
            &ct,
            &plan,
            &machine,
            None,
            &options,
            DEFAULT_DIJ_LIMIT_BYTES,
        )?;
        let secs = t.elapsed().as_secs_f64();
        let dose = dij.dose(&weights)?;
        let (worst, target) = dose_error(&dose, &ray);
        println!(
            "| {label} | {} | {:.0} | {secs:.2} | {worst:.2} | {target:.2} |",
            dij.nnz(),
            dij.memory_bytes() as f64 / 1_048_576.0,
        );
    }
    Ok(())
}
