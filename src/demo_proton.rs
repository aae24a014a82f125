//! The proton part of `isodose demo`: two lateral opposed PBS fields on the
//! demo phantom's prostate, spot weights adjusted by a few forward-dose
//! iterations, a report, an axial dose picture and a depth-dose plot.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use isodose::geometry::{BeamFrame, trace_ray};
use isodose::phantom::{DemoPhantom, PROSTATE_SEMI_AXES_MM, Structure};
use isodose::physics::hlut::Hlut;
use isodose::proton::{DoseOptions, ProtonBeam, ProtonMachine, ProtonPlan, RangeShifter, Spot};
use isodose::qa::Dvh;
use isodose::{Engine, Grid3};
use nalgebra::{Point3, Unit, Vector3};
use ndarray::Array3;
use plotters::style::RGBColor;

use crate::plot;

/// Prescription per fraction (physical dose), Gy.
pub const PRESCRIPTION_GY: f64 = 2.0;
/// Spot spacing at the isocentre plane and layer spacing in water, mm.
const SPOT_SPACING_MM: f64 = 5.0;
const LAYER_SPACING_MM: f64 = 3.0;
/// Weight iterations.
const ITERATIONS: usize = 6;

/// Spots cover the prostate grown by this margin (lateral penumbra, range
/// uncertainty), mm.
const MARGIN_MM: f64 = 5.0;
/// The range shifter that lets the lowest energy (70 MeV, R80 41 mm) reach
/// the front of a target 31 mm deep: water-equivalent thickness and distance
/// upstream of the isocentre, mm.
const SHIFTER_WET_MM: f64 = 30.0;
const SHIFTER_DISTANCE_MM: f64 = 250.0;

fn in_planning_volume(p: &Point3<f64>) -> bool {
    let [a, b, c] = PROSTATE_SEMI_AXES_MM.map(|s| s + MARGIN_MM);
    (p.x / a).powi(2) + (p.y / b).powi(2) + (p.z / c).powi(2) <= 1.0
}

/// Water-equivalent depth (mm) of each point `frame.from_beam(x, y, Δ)` for
/// the given Δs, traced exactly through the CT from upstream.
fn wed_along(
    phantom: &DemoPhantom,
    hlut: &Hlut,
    frame: &BeamFrame,
    x: f64,
    y: f64,
    deltas: &[f64],
) -> Vec<f64> {
    let start = frame.from_beam(x, y, -500.0);
    let dir: Unit<Vector3<f64>> = frame.direction();
    let segs = trace_ray(phantom.ct.grid(), &start, &dir, 1000.0);
    let hu = phantom.ct.data();
    let flat: Vec<f32> = hu.iter().copied().collect();
    deltas
        .iter()
        .map(|d| {
            let t = d + 500.0;
            segs.iter()
                .filter(|s| s.t_in < t)
                .map(|s| hlut.rsp(f64::from(flat[s.voxel])) * (s.t_out.min(t) - s.t_in))
                .sum()
        })
        .collect()
}

/// Spots of one field covering the target, and for each spot the dose-grid
/// voxel near its Bragg peak (where its weight is judged).
fn field(
    phantom: &DemoPhantom,
    hlut: &Hlut,
    machine: &ProtonMachine,
    gantry: f64,
    dose_grid: &Grid3,
) -> Result<(ProtonBeam, Vec<usize>), Box<dyn Error>> {
    let frame = BeamFrame::new(gantry, 0.0, [0.0; 3])?;
    let deltas: Vec<f64> = (0..=400).map(|i| -100.0 + 0.5 * f64::from(i)).collect();
    let mut spots = Vec::new();
    let mut peaks = Vec::new();
    for iy in -7..=7 {
        for ix in -7..=7 {
            let (x, y) = (
                SPOT_SPACING_MM * f64::from(ix),
                SPOT_SPACING_MM * f64::from(iy),
            );
            let inside: Vec<usize> = (0..deltas.len())
                .filter(|&i| in_planning_volume(&frame.from_beam(x, y, deltas[i])))
                .collect();
            let (Some(&first), Some(&last)) = (inside.first(), inside.last()) else {
                continue;
            };
            let wed = wed_along(phantom, hlut, &frame, x, y, &deltas);
            let mut energies: Vec<f64> = Vec::new();
            let mut r = wed[last] + 2.0;
            while r >= wed[first] - 2.0 {
                let em = machine.energy_for_r80(r + SHIFTER_WET_MM);
                if !energies.contains(&em.energy_mev) {
                    energies.push(em.energy_mev);
                    // the spot's weight is judged 2 mm before its R80
                    let target_wed = em.r80_mm - SHIFTER_WET_MM - 2.0;
                    let i = wed.iter().position(|w| *w >= target_wed).unwrap_or(last);
                    let p = frame.from_beam(x, y, deltas[i]);
                    let voxel = dose_grid
                        .world_to_index(&p)
                        .map(|zyx| dose_grid.linear_index(zyx));
                    if let Some(v) = voxel {
                        spots.push(Spot {
                            energy_mev: em.energy_mev,
                            x_mm: x,
                            y_mm: y,
                            weight: 1e8,
                        });
                        peaks.push(v);
                    }
                }
                r -= LAYER_SPACING_MM;
            }
        }
    }
    let shifter = RangeShifter::pmma(SHIFTER_WET_MM, SHIFTER_DISTANCE_MM)?;
    Ok((
        ProtonBeam::new(gantry, 0.0, [0.0; 3], spots, Some(shifter))?,
        peaks,
    ))
}

/// A structure mask resampled to `grid` (nearest CT voxel of each centre).
fn mask_on(st: &Structure, phantom: &DemoPhantom, grid: &Grid3) -> Array3<bool> {
    let [nz, ny, nx] = grid.shape();
    let ct = phantom.ct.grid();
    Array3::from_shape_fn((nz, ny, nx), |(k, j, i)| {
        ct.world_to_index(&grid.index_to_world([k, j, i]))
            .is_some_and(|zyx| st.mask[zyx])
    })
}

/// Runs the proton demo, appending its report to `report`.
pub fn run(
    out_dir: &Path,
    engine: &Engine,
    phantom: &DemoPhantom,
    report: &mut String,
) -> Result<(), Box<dyn Error>> {
    let machine = ProtonMachine::generic()?;
    let options = DoseOptions::new()?;
    let grid = Grid3::covering([-56.0, -51.0, -47.0], [56.0, 51.0, 47.0], 2.0)?;
    let (b1, p1) = field(phantom, &options.hlut, &machine, 90.0, &grid)?;
    let (b2, p2) = field(phantom, &options.hlut, &machine, 270.0, &grid)?;
    let peaks: Vec<usize> = p1.into_iter().chain(p2).collect();
    let mut plan = ProtonPlan::new(vec![b1, b2], 1)?;
    let mut seconds = Vec::new();
    for _ in 0..ITERATIONS {
        let t = Instant::now();
        let d = engine.pbs_dose(&phantom.ct, &plan, &machine, Some(&grid), &options)?;
        seconds.push(t.elapsed().as_secs_f64());
        let flat: Vec<f32> = d.data().iter().copied().collect();
        let mut k = 0;
        let mut beams = Vec::new();
        for beam in plan.beams() {
            let w: Vec<f64> = beam
                .spots()
                .iter()
                .map(|s| {
                    let at = f64::from(flat[peaks[k]]).max(1e-6);
                    k += 1;
                    s.weight * (PRESCRIPTION_GY / at).clamp(0.5, 2.0).powf(0.8)
                })
                .collect();
            beams.push(beam.with_weights(&w)?);
        }
        plan = ProtonPlan::new(beams, 1)?;
    }
    let t = Instant::now();
    let (dose, ran) =
        engine.pbs_dose_with_backend(&phantom.ct, &plan, &machine, Some(&grid), &options)?;
    seconds.push(t.elapsed().as_secs_f64());
    let mean_time = seconds.iter().sum::<f64>() / seconds.len() as f64;
    let [nz, ny, nx] = grid.shape();
    writeln!(report)?;
    writeln!(
        report,
        "isodose demo: proton PBS, 2 lateral opposed fields (gantry 90 and 270), generic machine"
    )?;
    writeln!(
        report,
        "  fields         {MARGIN_MM:.0} mm margin around the prostate, spots every {SPOT_SPACING_MM:.0} mm, layers every {LAYER_SPACING_MM:.0} mm, {SHIFTER_WET_MM:.0} mm WET PMMA range shifter"
    )?;
    writeln!(
        report,
        "  spots          {} ({} + {}), ray casting, nuclear halo on, lateral cut-off 0.5 %",
        plan.spot_count(),
        plan.beams()[0].spots().len(),
        plan.beams()[1].spots().len()
    )?;
    writeln!(
        report,
        "  dose grid      {nx} x {ny} x {nz} voxels at 2.0 mm; WED traced through the 1 mm CT"
    )?;
    writeln!(report, "  backend        {ran}")?;
    writeln!(
        report,
        "  time           {mean_time:.3} s per forward dose ({} calculations: {ITERATIONS} weight iterations and the final dose)",
        seconds.len()
    )?;
    writeln!(
        report,
        "  prescription   {PRESCRIPTION_GY:.2} Gy per fraction to the prostate"
    )?;
    writeln!(report)?;
    writeln!(
        report,
        "  {:<10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "structure", "cc", "D98 Gy", "D95 Gy", "D50 Gy", "D2 Gy", "mean Gy"
    )?;
    let masks: Vec<(String, Array3<bool>)> = phantom
        .structures
        .iter()
        .map(|st| (st.name.clone(), mask_on(st, phantom, &grid)))
        .collect();
    for (name, mask) in &masks {
        let dv = Dvh::from_mask(&dose, mask)?;
        writeln!(
            report,
            "  {:<10} {:>8.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name,
            dv.volume_cc(),
            dv.dose_at_fraction(0.98)?,
            dv.dose_at_fraction(0.95)?,
            dv.dose_at_fraction(0.5)?,
            dv.dose_at_fraction(0.02)?,
            dv.mean()
        )?;
    }
    // pictures: axial slice through the centre, and the central axis of the
    // gantry-90 field alone with two pristine peaks
    let structures: Vec<Structure> = phantom
        .structures
        .iter()
        .zip(&masks)
        .map(|(st, (_, m))| Structure {
            name: st.name.clone(),
            mask: m.clone(),
            color: st.color,
        })
        .collect();
    let k = grid
        .world_to_index(&Point3::new(0.0, 0.0, 0.0))
        .map_or(nz / 2, |i| i[0]);
    let axial = out_dir.join("proton_axial.png");
    plot::axial_dose_png(
        &axial,
        "Proton PBS, gantry 90 + 270: axial slice z = 0 mm",
        &dose,
        k,
        &structures,
        &[],
        PRESCRIPTION_GY,
        ((-56.0, 56.0), (-51.0, 51.0)),
        &plot::EXTERNAL_LEVELS,
        1.1,
    )?;
    let single = ProtonPlan::new(vec![plan.beams()[0].clone()], 1)?;
    let d90 = engine.pbs_dose(&phantom.ct, &single, &machine, Some(&grid), &options)?;
    let j = grid
        .world_to_index(&Point3::new(0.0, 0.0, 0.0))
        .map_or(ny / 2, |i| i[1]);
    let surface_x = 55.0;
    let axis: Vec<(f64, f64)> = (0..nx)
        .rev()
        .map(|i| {
            let x = grid.index_to_world([k, j, i]).x;
            (surface_x - x, f64::from(d90.data()[[k, j, i]]))
        })
        .filter(|(depth, _)| *depth >= 0.0)
        .collect();
    let total: Vec<(f64, f64)> = (0..nx)
        .rev()
        .map(|i| {
            let x = grid.index_to_world([k, j, i]).x;
            (surface_x - x, f64::from(dose.data()[[k, j, i]]))
        })
        .filter(|(depth, _)| *depth >= 0.0)
        .collect();
    let percent = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        pts.iter()
            .map(|(d, v)| (*d, 100.0 * v / PRESCRIPTION_GY))
            .collect()
    };
    let mut curves = vec![
        (
            "plan (both fields), % of prescription".to_owned(),
            RGBColor(0, 0, 0),
            percent(&total),
        ),
        (
            "gantry 90 field alone, % of prescription".to_owned(),
            RGBColor(220, 30, 30),
            percent(&axis),
        ),
    ];
    let energies: Vec<f64> = plan.beams()[0]
        .spots()
        .iter()
        .map(|s| s.energy_mev)
        .collect();
    let (lo, hi) = energies
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), e| (a.min(*e), b.max(*e)));
    for (e, color) in [(lo, RGBColor(0, 90, 255)), (hi, RGBColor(0, 150, 150))] {
        let em = machine.energy(e)?;
        let max = em.idd.values().iter().fold(0.0f64, |m, v| m.max(*v));
        let pts = (0..=1200)
            .map(|i| 0.1 * f64::from(i))
            .filter(|z| *z <= em.idd.max_depth_mm())
            .map(|z| (z, 100.0 * em.idd.at(z) / max))
            .collect();
        curves.push((
            format!("pristine peak {e:.0} MeV in water without the shifter, % of its maximum"),
            color,
            pts,
        ));
    }
    let depth_png = out_dir.join("proton_depth_dose.png");
    let semi = PROSTATE_SEMI_AXES_MM[0];
    plot::depth_dose_png(
        &depth_png,
        "Depth dose along the gantry-90 axis (x from +55 mm)",
        &curves,
        "dose (%)",
        Some((surface_x - semi, surface_x + semi)),
    )?;
    writeln!(report)?;
    writeln!(report, "  wrote {}", axial.display())?;
    writeln!(report, "  wrote {}", depth_png.display())?;
    Ok(())
}
