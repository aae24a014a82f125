//! `isodose demo`: the built-in phantom, a seed implant, its dose, a report
//! and pictures, with no input files.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use isodose::phantom::{DemoPhantom, demo_implant};
use isodose::qa::Dvh;
use isodose::tg43::SeedCatalogue;
use isodose::{BackendChoice, Engine};

use crate::plot;

/// Prescription of the demo's permanent I-125 prostate implant (Gy), the
/// usual monotherapy dose.
pub const PRESCRIPTION_GY: f64 = 145.0;
/// Seed model of the demo.
pub const SEED_MODEL: &str = "Amersham6711";
/// Air-kerma strength per seed (U).
pub const SEED_STRENGTH_U: f64 = 0.55;

/// Runs the brachytherapy demo and writes its figures into `out_dir`.
pub fn run(out_dir: &Path, backend: BackendChoice) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(out_dir)
        .map_err(|e| format!("cannot create output folder {}: {e}", out_dir.display()))?;
    plot::register_fonts()?;

    let phantom = DemoPhantom::new()?;
    let model = SeedCatalogue::builtin().get(SEED_MODEL)?.clone();
    let implant = demo_implant(model, SEED_STRENGTH_U)?;
    let grid = phantom.ct.grid().clone();
    let engine = Engine::new(backend)?;

    let start = Instant::now();
    let (dose, ran) = engine.tg43_dose_with_backend(&implant, &grid)?;
    let seconds = start.elapsed().as_secs_f64();
    let evaluations = implant.seeds().len() as f64 * grid.len() as f64;

    let mut report = String::new();
    let n = implant.seeds().len();
    let total_u: f64 = implant
        .seeds()
        .iter()
        .map(|s| s.air_kerma_strength_u())
        .sum();
    let [nz, ny, nx] = grid.shape();
    writeln!(
        report,
        "isodose demo: I-125 permanent prostate implant, AAPM TG-43U1 (2D line source)"
    )?;
    writeln!(
        report,
        "  seeds          {n} x {SEED_STRENGTH_U:.3} U ({SEED_MODEL}), {total_u:.1} U in total"
    )?;
    writeln!(
        report,
        "  grid           {nx} x {ny} x {nz} voxels at {:.1} mm ({:.2} M voxels)",
        grid.spacing_mm().x,
        grid.len() as f64 / 1e6
    )?;
    writeln!(report, "  backend        {ran}")?;
    writeln!(
        report,
        "  time           {:.3} s ({:.2e} seed-voxel evaluations, {:.2e} per s)",
        seconds,
        evaluations,
        evaluations / seconds
    )?;
    writeln!(
        report,
        "  prescription   {PRESCRIPTION_GY:.0} Gy (permanent implant, T1/2 = {} d)",
        implant.model().half_life_days()
    )?;
    writeln!(report)?;
    writeln!(
        report,
        "  {:<10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "structure", "cc", "D90 Gy", "D90 %Rx", "V100 %", "V150 %", "Dmean Gy", "D10 Gy"
    )?;
    let mut curves = Vec::new();
    for st in &phantom.structures {
        let dv = Dvh::from_mask(&dose, &st.mask)?;
        let d90 = dv.dose_at_fraction(0.9)?;
        writeln!(
            report,
            "  {:<10} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            st.name,
            dv.volume_cc(),
            d90,
            100.0 * d90 / PRESCRIPTION_GY,
            100.0 * dv.fraction_at_least(PRESCRIPTION_GY),
            100.0 * dv.fraction_at_least(1.5 * PRESCRIPTION_GY),
            dv.mean(),
            dv.dose_at_fraction(0.1)?,
        )?;
        let max = dv.max().min(4.0 * PRESCRIPTION_GY);
        let pts: Vec<(f64, f64)> = (0..=400)
            .map(|i| {
                let d = max * f64::from(i) / 400.0;
                (d, 100.0 * dv.fraction_at_least(d))
            })
            .collect();
        curves.push((st.name.clone(), st.color, pts));
    }

    // the axial slice through the middle of the gland
    let k = grid
        .world_to_index(&[0.0, 0.0, 0.0].into())
        .map_or(nz / 2, |i| i[0]);
    let z = grid.index_to_world([k, 0, 0]).z;
    let seeds_xy: Vec<(f64, f64)> = implant
        .seeds()
        .iter()
        .map(|s| s.position_mm())
        .filter(|p| (p.z - z).abs() <= 0.5 * grid.spacing_mm().z + 1.0)
        .map(|p| (p.x, p.y))
        .collect();
    let slice_png = out_dir.join("brachy_axial.png");
    plot::axial_dose_png(
        &slice_png,
        &format!("I-125 implant, {n} seeds: axial slice z = {z:.1} mm"),
        &dose,
        k,
        &phantom.structures,
        &seeds_xy,
        PRESCRIPTION_GY,
        ((-45.0, 45.0), (-40.0, 50.0)),
        &plot::BRACHY_LEVELS,
        2.0,
    )?;
    let dvh_png = out_dir.join("brachy_dvh.png");
    plot::dvh_png(
        &dvh_png,
        &format!("Cumulative DVH, Rx {PRESCRIPTION_GY:.0} Gy"),
        &curves,
        PRESCRIPTION_GY,
    )?;
    writeln!(report)?;
    writeln!(report, "  wrote {}", slice_png.display())?;
    writeln!(report, "  wrote {}", dvh_png.display())?;
    crate::demo_proton::run(out_dir, &engine, &phantom, &mut report)?;
    crate::print_stdout(&report)
}
