//! `isodose gamma` and `isodose dvh`: plan-QA reports on the terminal, as
//! JSON and as PNG figures, with exit codes that QA scripts can gate on.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use isodose::dicom::{read_rtdose, read_rtstruct};
use isodose::qa::{Dvh, GammaCriteria};
use isodose::{BackendChoice, DoseGrid, Engine};
use serde_json::json;

use crate::plot;
use crate::{file_name, print_stdout};

type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Options of `isodose gamma`.
#[derive(Debug)]
pub struct GammaArgs {
    pub reference: PathBuf,
    pub evaluated: PathBuf,
    pub criteria: GammaCriteria,
    pub json: bool,
    pub png: Option<PathBuf>,
    pub require_pass_percent: Option<f64>,
    pub backend: BackendChoice,
}

/// A dose in Gy from an RTDOSE file; RELATIVE doses are refused (a gamma or
/// DVH in unknown units would be silently wrong).
fn read_dose_gy(path: &Path) -> CliResult<DoseGrid> {
    let rd = read_rtdose(path)?;
    if !rd.units.eq_ignore_ascii_case("GY") {
        return Err(format!(
            "{}: DoseUnits is {:?}; only absolute doses (GY) can be compared",
            path.display(),
            rd.units
        )
        .into());
    }
    Ok(rd.dose)
}

/// Runs `isodose gamma`; returns whether the pass-rate requirement was met.
pub fn gamma(a: &GammaArgs) -> CliResult<bool> {
    let reference = read_dose_gy(&a.reference)?;
    let evaluated = read_dose_gy(&a.evaluated)?;
    let engine = crate::progress_bar::watched(Engine::new(a.backend)?);
    let t = Instant::now();
    let r = engine.gamma(&reference, &evaluated, &a.criteria)?;
    let seconds = t.elapsed().as_secs_f64();
    let c = r.criteria();
    let pass_percent = 100.0 * r.pass_rate();
    let ok = a.require_pass_percent.is_none_or(|p| pass_percent >= p);
    let histogram = r.histogram(20);
    if a.json {
        let value = json!({
            "reference": a.reference.display().to_string(),
            "evaluated": a.evaluated.display().to_string(),
            "dose_percent": c.dose_percent,
            "dta_mm": c.dta_mm,
            "cutoff_percent": c.cutoff_percent,
            "local": c.local,
            "search": c.search.to_string(),
            "search_step": c.search_step,
            "normalisation_gy": r.normalisation_gy(),
            "evaluated_points": r.evaluated_count(),
            "passed_points": r.passed_count(),
            "pass_rate_percent": pass_percent,
            "mean_gamma": finite_or_null(r.mean_gamma()),
            "max_gamma": finite_or_null(r.max_gamma()),
            "max_gamma_searched": c.max_gamma,
            "histogram": { "bin_width": c.max_gamma / 20.0, "counts": histogram },
            "backend": r.backend().to_string(),
            "seconds": seconds,
            "required_pass_percent": a.require_pass_percent,
            "pass": ok,
        });
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
    } else {
        let mut t = String::new();
        writeln!(
            t,
            "gamma {} vs {}",
            a.evaluated.display(),
            a.reference.display()
        )?;
        writeln!(
            t,
            "  criteria       {} % / {} mm, {}, cut-off {} % of {:.4} Gy",
            c.dose_percent,
            c.dta_mm,
            if c.local { "local" } else { "global" },
            c.cutoff_percent,
            r.normalisation_gy()
        )?;
        writeln!(
            t,
            "  search         {}, resolution {} x DTA",
            c.search, c.search_step
        )?;
        let [nz, ny, nx] = reference.grid().shape();
        writeln!(
            t,
            "  reference grid {nx} x {ny} x {nz}; {} points evaluated",
            r.evaluated_count()
        )?;
        writeln!(
            t,
            "  pass rate      {pass_percent:.2} % ({} of {} with gamma <= 1)",
            r.passed_count(),
            r.evaluated_count()
        )?;
        writeln!(
            t,
            "  gamma          mean {:.3}, max {:.3} (searched up to {})",
            r.mean_gamma(),
            r.max_gamma(),
            c.max_gamma
        )?;
        writeln!(t, "  backend        {}, {seconds:.3} s", r.backend())?;
        if let Some(p) = a.require_pass_percent {
            writeln!(
                t,
                "  requirement    pass rate >= {p} %: {}",
                if ok { "PASS" } else { "FAIL" }
            )?;
        }
        print_stdout(&t)?;
    }
    if let Some(png) = &a.png {
        plot::register_fonts()?;
        plot::gamma_png(png, &reference, &r)?;
        if !a.json {
            print_stdout(&format!("  wrote {}\n", png.display()))?;
        }
    }
    Ok(ok)
}

fn finite_or_null(v: f64) -> serde_json::Value {
    if v.is_finite() { json!(v) } else { json!(null) }
}

/// Options of `isodose dvh`.
#[derive(Debug)]
pub struct DvhArgs {
    pub dose: PathBuf,
    pub structures: PathBuf,
    pub rois: Vec<String>,
    pub subdivisions: usize,
    pub json: bool,
    pub png: Option<PathBuf>,
    pub prescription_gy: Option<f64>,
}

/// Runs `isodose dvh`.
pub fn dvh(a: &DvhArgs) -> CliResult {
    let dose = read_dose_gy(&a.dose)?;
    let rois = read_rtstruct(&a.structures)?;
    for name in &a.rois {
        if !rois.iter().any(|r| &r.name == name) {
            let names: Vec<&str> = rois.iter().map(|r| r.name.as_str()).collect();
            return Err(format!(
                "{}: no ROI named {name:?}; the structure set has {names:?}",
                a.structures.display()
            )
            .into());
        }
    }
    let slice_mm = dose.grid().spacing_mm().z;
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for roi in &rois {
        if !a.rois.is_empty() && !a.rois.contains(&roi.name) {
            continue;
        }
        // POINT/OPEN ROIs carry no volume: listed, not an error
        let Ok(structure) = roi.structure(slice_mm) else {
            skipped.push(roi.name.clone());
            continue;
        };
        let dvh = Dvh::from_structure(&dose, &structure, a.subdivisions)?;
        rows.push((roi, dvh));
    }
    if rows.is_empty() {
        return Err(format!(
            "{}: no ROI with closed contours to compute a DVH on",
            a.structures.display()
        )
        .into());
    }
    let metric = |d: &Dvh, x: f64| d.dose_at_fraction(x).unwrap_or(f64::NAN);
    if a.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(roi, d)| {
                let mut m = json!({
                    "name": roi.name,
                    "number": roi.number,
                    "type": roi.interpreted_type,
                    "volume_cc": d.volume_cc(),
                    "outside_dose_grid_cc": d.outside_cc(),
                    "min_gy": d.min(),
                    "mean_gy": d.mean(),
                    "max_gy": d.max(),
                    "max_0_03cc_gy": d.max_0_03cc(),
                    "d98_gy": metric(d, 0.98),
                    "d95_gy": metric(d, 0.95),
                    "d50_gy": metric(d, 0.5),
                    "d2_gy": metric(d, 0.02),
                    "homogeneity_index": finite_or_null(d.homogeneity_index()),
                    "cumulative": curve(d, 100).iter().map(|(g, v)| [*g, *v]).collect::<Vec<_>>(),
                });
                if let Some(rx) = a.prescription_gy {
                    m["v_prescription_percent"] = json!(100.0 * d.fraction_at_least(rx));
                }
                m
            })
            .collect();
        let value = json!({
            "dose": a.dose.display().to_string(),
            "structures": a.structures.display().to_string(),
            "subdivisions": a.subdivisions,
            "prescription_gy": a.prescription_gy,
            "rois": list,
            "skipped_without_volume": skipped,
        });
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
    } else {
        let mut t = format!(
            "DVH of {} on {} ({} samples per voxel and axis)\n",
            a.structures.display(),
            a.dose.display(),
            a.subdivisions
        );
        writeln!(
            t,
            "  {:<16} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}{}",
            "ROI",
            "cc",
            "min Gy",
            "mean Gy",
            "D98 Gy",
            "D95 Gy",
            "D50 Gy",
            "D2 Gy",
            "D0.03cc",
            if a.prescription_gy.is_some() {
                "   V_Rx %"
            } else {
                ""
            }
        )?;
        for (roi, d) in &rows {
            let vrx = a
                .prescription_gy
                .map(|rx| format!(" {:>8.2}", 100.0 * d.fraction_at_least(rx)))
                .unwrap_or_default();
            writeln!(
                t,
                "  {:<16} {:>9.2} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9.3}{vrx}",
                truncate(&roi.name, 16),
                d.volume_cc(),
                d.min(),
                d.mean(),
                metric(d, 0.98),
                metric(d, 0.95),
                metric(d, 0.5),
                metric(d, 0.02),
                d.max_0_03cc(),
            )?;
            if d.outside_cc() > 0.0 {
                writeln!(
                    t,
                    "  {:<16} {:.2} cc outside the dose grid, counted as 0 Gy",
                    "",
                    d.outside_cc()
                )?;
            }
        }
        if !skipped.is_empty() {
            writeln!(
                t,
                "  without volume (not in the table): {}",
                skipped.join(", ")
            )?;
        }
        print_stdout(&t)?;
    }
    if let Some(png) = &a.png {
        plot::register_fonts()?;
        let curves: Vec<plot::DvhCurve> = rows
            .iter()
            .map(|(roi, d)| {
                let pts = curve(d, 200)
                    .into_iter()
                    .map(|(g, v)| (g, 100.0 * v / d.volume_cc()))
                    .collect();
                (roi.name.clone(), roi.color.unwrap_or([60, 60, 60]), pts)
            })
            .collect();
        let title = format!("DVH: {}", file_name(&a.dose));
        plot::dvh_png(png, &title, &curves, a.prescription_gy.unwrap_or(0.0))?;
        if !a.json {
            print_stdout(&format!("  wrote {}\n", png.display()))?;
        }
    }
    Ok(())
}

/// The cumulative DVH at `n` + 1 doses from 0 to the maximum: (Gy, cm³).
fn curve(d: &Dvh, n: usize) -> Vec<(f64, f64)> {
    let doses: Vec<f64> = (0..=n).map(|i| d.max() * i as f64 / n as f64).collect();
    d.cumulative_cc(&doses)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
