//! The proton reference field (water phantom, 50 mm cube target, ~3,500
//! spots): forward dose and dose-influence matrix, with timings and sizes.
//!
//! Run with `cargo run --release --example proton_reference_field -- [dose|dij|both]
//! [halo|nohalo] [cpu|gpu|auto]` (defaults: both, halo, cpu); wrap it in
//! `/usr/bin/time -v` for the peak memory.

use std::time::Instant;

use isodose::phantom::reference_field;
use isodose::proton::{DoseOptions, ProtonMachine};
use isodose::{BackendChoice, DEFAULT_DIJ_LIMIT_BYTES, Engine};

fn main() -> Result<(), isodose::DoseError> {
    let what = std::env::args().nth(1).unwrap_or_else(|| "both".into());
    let machine = ProtonMachine::generic()?;
    let ct = reference_field::phantom()?;
    let plan = reference_field::plan(&machine)?;
    let backend = std::env::args().nth(3).unwrap_or_else(|| "cpu".into());
    let engine = Engine::new(BackendChoice::parse(&backend)?)?;
    let halo = std::env::args().nth(2).is_none_or(|h| h != "nohalo");
    let options = DoseOptions {
        include_halo: halo,
        ..DoseOptions::new()?
    };
    println!(
        "reference field: {} spots, {} voxels, backend choice {backend}",
        plan.spot_count(),
        ct.grid().len(),
    );
    if what == "both" || what == "dose" {
        let t = Instant::now();
        let (dose, ran) = engine.pbs_dose_with_backend(&ct, &plan, &machine, None, &options)?;
        let max = dose.data().iter().fold(0.0f32, |a, v| a.max(*v));
        println!(
            "forward dose ({ran}): {:.3} s, max {max:.3} Gy",
            t.elapsed().as_secs_f64()
        );
    }
    if what == "both" || what == "dij" {
        let t = Instant::now();
        let (dij, ran) = engine.pbs_dij_with_backend(
            &ct,
            &plan,
            &machine,
            None,
            &options,
            DEFAULT_DIJ_LIMIT_BYTES,
        )?;
        println!(
            "dij ({ran}): {:.3} s, {} non-zeros, {:.1} MiB",
            t.elapsed().as_secs_f64(),
            dij.nnz(),
            dij.memory_bytes() as f64 / 1048576.0
        );
    }
    Ok(())
}
