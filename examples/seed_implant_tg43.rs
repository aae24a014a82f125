//! A three-seed I-125 implant: dose rate at a few points by the exact TG-43
//! evaluation, and the permanent-implant dose on a small grid.
//!
//! Run with `cargo run --release --example seed_implant_tg43`.

use isodose::tg43::{Formalism, Implant, Seed, SeedCatalogue, Technique};
use isodose::{BackendChoice, Engine, Grid3};

fn main() -> Result<(), isodose::DoseError> {
    let model = SeedCatalogue::builtin().get("Amersham6711")?.clone();
    let seeds = vec![
        Seed::new([-5.0, 0.0, 0.0], None, 0.5)?,
        Seed::new([5.0, 0.0, 0.0], None, 0.5)?,
        Seed::new([0.0, 5.0, 0.0], Some([1.0, 0.0, 0.0]), 0.5)?,
    ];
    let implant = Implant::new(model, seeds, Technique::Permanent, 0.0)?;

    let points = [
        [0.0, 0.0, 0.0].into(),
        [0.0, -10.0, 0.0].into(),
        [0.0, 0.0, 15.0].into(),
    ];
    let rates = implant.dose_rate_at(&points, Formalism::Line)?;
    let doses = implant.dose_at(&points, Formalism::Line)?;
    for ((p, r), d) in points.iter().zip(&rates).zip(&doses) {
        println!(
            "at {:?} mm: {r:.3} cGy/h initially, {d:.1} Gy in total",
            p.coords.as_slice()
        );
    }

    let grid = Grid3::new([41, 41, 41], [1.0; 3], [-20.0; 3])?;
    let engine = Engine::new(BackendChoice::Auto)?;
    // Auto runs a problem this small on the CPU: report where it ran
    let (dose, ran) = engine.tg43_dose_with_backend(&implant, &grid)?;
    let max = dose.data().iter().fold(0.0f32, |m, v| m.max(*v));
    println!("grid {:?} on {ran}: max {max:.0} Gy", grid.shape());
    Ok(())
}
