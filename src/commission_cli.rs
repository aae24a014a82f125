//! `isodose commission`: a proton machine file fitted to a centre's beam
//! data ([`isodose::proton::commission`]): measured IDDs in water (one CSV
//! per nominal energy, the energy in the file name, e.g. `idd_150MeV.csv`:
//! columns depth mm, IDD Gy·mm² per MU), in-air spot sizes (a CSV with
//! `nominal_energy_mev,z_mm,sigma_x_mm,sigma_y_mm`) and the virtual source
//! distances. Writes the machine (`isodose-proton-machine/1` JSON) and, with
//! `--report`, a folder with the fit table (`report.txt`, `report.json`)
//! and figures: the measured IDDs against the physics model fitted to them
//! (`idd.png`), the leave-one-out interpolation residuals
//! (`leave_one_out.png`) and the spot sizes against their fit
//! (`spot_sizes.png`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use isodose::proton::commission::{
    BeamData, Commissioned, MeasuredIdd, commission, spot_sizes_from_csv_str,
};
use plotters::style::RGBColor;

use crate::{plot, print_stdout};

type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Options of `isodose commission`.
#[derive(Debug)]
pub struct CommissionArgs {
    /// IDD CSV files, one per energy.
    pub idd: Vec<PathBuf>,
    /// Spot-size CSV.
    pub spot_sizes: PathBuf,
    /// Machine name.
    pub name: String,
    /// Virtual source-axis distances, mm.
    pub sad_x_mm: f64,
    /// See `sad_x_mm`.
    pub sad_y_mm: f64,
    /// Machine file to write.
    pub out: PathBuf,
    /// Report folder.
    pub report: Option<PathBuf>,
}

/// The nominal energy in a file name: the number before "MeV" (any case).
fn energy_from_name(path: &Path) -> CliResult<f64> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let at = lower.find("mev").ok_or_else(|| {
        format!(
            "{}: the file name must give the nominal energy, e.g. idd_150MeV.csv",
            path.display()
        )
    })?;
    let digits: String = lower[..at]
        .trim_end_matches(['_', ' ', '-'])
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse::<f64>()
        .ok()
        .filter(|e| *e > 0.0)
        .ok_or_else(|| {
            format!(
                "{}: no energy before \"MeV\" in the file name (e.g. idd_150MeV.csv)",
                path.display()
            )
            .into()
        })
}

fn read(path: &Path) -> CliResult<String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

/// Runs `isodose commission`.
pub fn run(a: &CommissionArgs) -> CliResult {
    let mut idds = Vec::new();
    for p in &a.idd {
        let e = energy_from_name(p)?;
        idds.push(MeasuredIdd::from_csv_str(
            e,
            &read(p)?,
            &p.display().to_string(),
        )?);
    }
    let spot_sizes =
        spot_sizes_from_csv_str(&read(&a.spot_sizes)?, &a.spot_sizes.display().to_string())?;
    let data = BeamData {
        name: a.name.clone(),
        sad_x_mm: a.sad_x_mm,
        sad_y_mm: a.sad_y_mm,
        idds,
        spot_sizes,
    };
    let c = commission(&data)?;
    // write to a temporary file, then rename: no half-written machine
    let tmp = a.out.with_extension("json.part");
    std::fs::write(&tmp, c.machine.to_json_string()?)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &a.out).map_err(|e| format!("cannot write {}: {e}", a.out.display()))?;
    let text = report_text(&c, a)?;
    print_stdout(&text)?;
    if let Some(dir) = &a.report {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::write(dir.join("report.txt"), &text)?;
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_string_pretty(&c.report_json())?,
        )?;
        figures(&c, &data, dir)?;
        print_stdout(&format!(
            "  report         {} (report.txt, report.json, idd.png, leave_one_out.png, spot_sizes.png)\n",
            dir.display()
        ))?;
    }
    Ok(())
}

fn report_text(c: &Commissioned, a: &CommissionArgs) -> CliResult<String> {
    let mut r = String::new();
    writeln!(
        r,
        "isodose commission: {:?}, {} energies, SAD {} / {} mm -> {}",
        a.name,
        c.energies.len(),
        a.sad_x_mm,
        a.sad_y_mm,
        a.out.display()
    )?;
    writeln!(
        r,
        "  per energy: fitted mean energy and spread (physics model: Bortfeld/PSTAR), protons per MU, measured R80 and R20-R80, the physics model's largest residual to R80 (the machine uses the measurement)"
    )?;
    writeln!(
        r,
        "    E (MeV)   E0 (MeV)  spread (%)   protons/MU   R80 (mm)  R20-R80 (mm)  model residual (%)"
    )?;
    for f in &c.energies {
        writeln!(
            r,
            "    {:>7.2}  {:>9.3}  {:>10.3}  {:>11.4e}  {:>9.2}  {:>12.2}  {:>18.2}",
            f.energy_mev,
            f.mean_energy_mev,
            100.0 * f.energy_spread_fraction,
            f.protons_per_mu,
            f.r80_mm,
            f.falloff_80_20_mm,
            f.model_max_residual_percent
        )?;
    }
    writeln!(
        r,
        "  in-air optics at the isocentre plane (sigma0 mm / divergence mrad / correlation), largest residual"
    )?;
    for o in &c.optics {
        writeln!(
            r,
            "    {:>7.2} MeV  x {:.3} / {:.3} / {:+.3}  y {:.3} / {:.3} / {:+.3}  residual {:.3} mm",
            o.energy_mev,
            o.x.sigma_mm,
            o.x.divergence_mrad,
            o.x.correlation,
            o.y.sigma_mm,
            o.y.divergence_mrad,
            o.y.correlation,
            o.max_residual_mm
        )?;
    }
    writeln!(
        r,
        "  leave one out (each interior energy from its neighbours): R80 difference, largest IDD difference to R80 per MU / shape only, protons/MU"
    )?;
    for l in &c.leave_one_out {
        writeln!(
            r,
            "    {:>7.2} MeV (gap {:>5.1} MeV)  R80 {:+.3} mm  IDD {:.2} % / {:.2} %  protons/MU {:+.2} %",
            l.energy_mev,
            l.gap_mev,
            l.r80_difference_mm,
            l.max_difference_percent,
            l.max_shape_difference_percent,
            100.0 * l.protons_per_mu_difference
        )?;
    }
    Ok(r)
}

/// A colour per curve index out of `n`.
fn colour(i: usize, n: usize) -> RGBColor {
    let t = if n > 1 {
        i as f64 / (n - 1) as f64
    } else {
        0.0
    };
    RGBColor(
        (40.0 + 200.0 * t) as u8,
        (60.0 + 80.0 * (1.0 - (2.0 * t - 1.0).abs())) as u8,
        (220.0 - 200.0 * t) as u8,
    )
}

fn figures(c: &Commissioned, data: &BeamData, dir: &Path) -> CliResult {
    plot::register_fonts()?;
    let mut idds = data.idds.clone();
    idds.sort_by(|a, b| a.energy_mev.total_cmp(&b.energy_mev));
    let n = idds.len();
    let mut curves = Vec::new();
    for (i, (m, f)) in idds.iter().zip(&c.energies).enumerate() {
        let measured: Vec<(f64, f64)> = m
            .depth_mm
            .iter()
            .copied()
            .zip(m.gy_mm2_per_mu.iter().copied())
            .collect();
        let model: Vec<(f64, f64)> = m
            .depth_mm
            .iter()
            .copied()
            .zip(f.model_gy_mm2_per_mu.iter().copied())
            .collect();
        curves.push((
            format!("{} MeV measured", m.energy_mev),
            RGBColor(20, 20, 20),
            measured,
        ));
        curves.push((
            format!("{} MeV physics fit", m.energy_mev),
            colour(i, n),
            model,
        ));
    }
    plot::line_plot_png(
        &dir.join("idd.png"),
        "IDD per MU: measured (black) and the physics model fitted to it",
        "depth in water (mm)",
        "IDD (Gy mm² / MU)",
        &curves,
    )?;
    let mut residuals = Vec::new();
    for (i, l) in c.leave_one_out.iter().enumerate() {
        if let Some(m) = idds.iter().find(|m| m.energy_mev == l.energy_mev) {
            let max = m.gy_mm2_per_mu.iter().copied().fold(0.0, f64::max);
            let r80 = c
                .energies
                .iter()
                .find(|f| f.energy_mev == l.energy_mev)
                .map_or(f64::MAX, |f| f.r80_mm);
            let pts: Vec<(f64, f64)> = m
                .depth_mm
                .iter()
                .zip(&m.gy_mm2_per_mu)
                .zip(&l.interpolated_gy_mm2_per_mu)
                .filter(|((d, _), _)| **d <= r80 + 5.0)
                .map(|((d, a), b)| (d / r80, 100.0 * (b - a) / max))
                .collect();
            residuals.push((
                format!("{} MeV", l.energy_mev),
                colour(i, c.leave_one_out.len()),
                pts,
            ));
        }
    }
    if !residuals.is_empty() {
        plot::line_plot_png(
            &dir.join("leave_one_out.png"),
            "leave one out: interpolated - measured IDD per MU",
            "depth / R80",
            "% of the measured maximum",
            &residuals,
        )?;
    }
    let mut spots = Vec::new();
    let m = c.optics.len();
    for (i, o) in c.optics.iter().enumerate() {
        let at: Vec<_> = data
            .spot_sizes
            .iter()
            .filter(|s| s.energy_mev == o.energy_mev)
            .collect();
        let (lo, hi) = at.iter().fold((f64::MAX, f64::MIN), |(a, b), s| {
            (a.min(s.z_mm), b.max(s.z_mm))
        });
        if lo > hi {
            continue;
        }
        let mut measured: Vec<(f64, f64)> = at.iter().map(|s| (s.z_mm, s.sigma_x_mm)).collect();
        measured.sort_by(|a, b| a.0.total_cmp(&b.0));
        let fit: Vec<(f64, f64)> = (0..=50)
            .map(|k| {
                let z = lo + (hi - lo) * f64::from(k) / 50.0;
                (z, o.x.sigma_sq_at(z).sqrt())
            })
            .collect();
        spots.push((
            format!("{} MeV x measured", o.energy_mev),
            RGBColor(20, 20, 20),
            measured,
        ));
        spots.push((format!("{} MeV x fit", o.energy_mev), colour(i, m), fit));
    }
    if !spots.is_empty() {
        plot::line_plot_png(
            &dir.join("spot_sizes.png"),
            "in-air spot sigma (x): measured (black) and fit",
            "distance downstream of the isocentre (mm)",
            "sigma (mm)",
            &spots,
        )?;
    }
    Ok(())
}
