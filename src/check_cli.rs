//! `isodose check`: a secondary dose check of a proton plan. The RT Ion
//! Plan is recomputed on its CT (or, for a phantom plan exported without a
//! CT, on the phantom its RTSTRUCT describes) on the grid of the planning
//! system's RTDOSE, and the two doses are compared as a physicist would:
//! the absolute dose ratio in the high-dose region, the central-axis R80 and
//! proximal 90 % edge and the lateral 80–20 % penumbrae of a beam, and gamma
//! pass rates ([`isodose::qa::comparison`], [`isodose::qa::gamma`]). The
//! report goes to standard output (text or JSON); the exit code is 2 when a
//! requirement (`--require-*`) fails, so QA scripts can gate on it.
//!
//! **Materials.** With `--struct`, the RTSTRUCT's material overrides
//! ([`isodose::dicom::recompute`]) replace the CT inside their ROIs, as the
//! planning system did; without a CT the phantom is built from them.
//!
//! **Dose type.** An EFFECTIVE (RBE-weighted) reference is divided by the
//! RBE (`--rbe`, 1.1 by default) before it is compared with isodose's
//! physical dose.
//!
//! **Fractions.** The recomputed dose is the plan's total (all
//! NumberOfFractionsPlanned fractions) unless the reference's
//! DoseSummationType is FRACTION (`--fractions` overrides). A BEAM reference
//! selects its ReferencedBeamNumber; other references, every beam.
//!
//! **Normalisation.** By default none: a secondary check is absolute. With
//! `--normalise high-dose` the isodose dose is scaled to the reference's
//! mean over its ≥ 90 % region (the factor is reported), to compare shapes
//! where the machine's MU calibration is not the planning system's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use isodose::dicom::recompute::{
    RoiMaterial, machine_with_plan_spot_size, material_overrides, phantom_from_structures,
};
use isodose::dicom::{read_ct_series, read_ion_plan, read_rtdose, read_rtstruct, write_rtdose};
use isodose::geometry::BeamFrame;
use isodose::proton::{ProtonMachine, ProtonPlan};
use isodose::qa::comparison::{DepthDose, LateralSide, high_dose_ratio, lateral_penumbra_mm};
use isodose::qa::{GammaCriteria, GammaSearch};
use isodose::{BackendChoice, CtVolume, DoseGrid, Engine, Volume};
use plotters::style::RGBColor;
use serde_json::json;

use crate::{file_name, plot, print_stdout};

type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The high-dose region of the absolute comparison: the reference at or
/// above this fraction of its maximum.
const HIGH_DOSE_LEVEL: f64 = 0.9;

/// Options of `isodose check`.
#[derive(Debug)]
pub struct CheckArgs {
    /// RT Ion Plan.
    pub plan: PathBuf,
    /// The planning system's RTDOSE (the reference).
    pub dose: PathBuf,
    /// CT folder, if the plan was made on a CT.
    pub ct: Option<PathBuf>,
    /// RTSTRUCT with material overrides (and the phantom without a CT).
    pub structures: Option<PathBuf>,
    /// Phantom voxel size without a CT, mm.
    pub phantom_spacing_mm: f64,
    /// Machine file; `None`: the generic machine.
    pub machine: Option<PathBuf>,
    /// "machine" or "plan" (the plan's ScanningSpotSize).
    pub spot_size: String,
    /// Only this beam (default: the RTDOSE's referenced beam, else all).
    pub beam: Option<i32>,
    /// RBE of an EFFECTIVE reference.
    pub rbe: f64,
    /// "none" or "high-dose".
    pub normalise: String,
    /// Gamma criteria "dd/dta" (% / mm).
    pub gamma: Vec<String>,
    /// Gamma low-dose cut-off, % of the reference maximum.
    pub cutoff_percent: f64,
    /// Local gamma.
    pub local: bool,
    /// Required pass rate of the first gamma criterion, %.
    pub require_pass_percent: Option<f64>,
    /// Largest |R80 difference| allowed, mm.
    pub require_r80_mm: Option<f64>,
    /// Largest |dose ratio − 1| allowed, %.
    pub require_dose_percent: Option<f64>,
    /// "auto", "one" or "all" fractions.
    pub fractions: String,
    /// Dose options (see `isodose proton`).
    pub spot_splitting: String,
    pub include_halo: bool,
    pub lateral_cutoff_fraction: f64,
    pub scattering: String,
    /// "auto", "cpu" or "gpu".
    pub backend: String,
    /// Report as JSON.
    pub json: bool,
    /// Depth-dose figure.
    pub png: Option<PathBuf>,
    /// Write isodose's dose (as computed, before any normalisation).
    pub out: Option<PathBuf>,
}

/// The central-axis and lateral comparison of one beam.
struct BeamReport {
    number: i32,
    name: String,
    gantry_deg: f64,
    couch_deg: f64,
    reference: DepthDose,
    isodose: DepthDose,
    r80_mm: [Option<f64>; 2],
    p90_mm: [Option<f64>; 2],
    penumbra_mm: Vec<(LateralSide, [Option<f64>; 2])>,
}

fn parse_criterion(s: &str) -> CliResult<(f64, f64)> {
    let bad = || format!("--gamma {s:?}: expected DD/DTA, e.g. 3/3 (% / mm)");
    let (a, b) = s.split_once('/').ok_or_else(bad)?;
    let (dd, dta) = (
        a.trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .map_err(|_| bad())?,
        b.trim()
            .trim_end_matches("mm")
            .parse::<f64>()
            .map_err(|_| bad())?,
    );
    if dd > 0.0 && dta > 0.0 && dd.is_finite() && dta.is_finite() {
        Ok((dd, dta))
    } else {
        Err(bad().into())
    }
}

fn diff(v: [Option<f64>; 2]) -> Option<f64> {
    Some(v[1]? - v[0]?)
}

fn mm(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |x| format!("{x:.2}"))
}

fn signed(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |x| format!("{x:+.2}"))
}

fn materials_text(materials: &[RoiMaterial]) -> String {
    materials
        .iter()
        .map(|m| format!("{} RSP {:.4} ({})", m.roi, m.rsp, m.derivation))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs `isodose check`; returns whether every requirement was met.
pub fn check(a: &CheckArgs) -> CliResult<bool> {
    let started = Instant::now();
    let criteria: Vec<(f64, f64)> = a
        .gamma
        .iter()
        .map(|s| parse_criterion(s))
        .collect::<CliResult<_>>()?;
    if !(a.rbe.is_finite() && a.rbe > 0.0) {
        return Err(format!("--rbe {}: must be > 0", a.rbe).into());
    }
    let normalise = match a.normalise.as_str() {
        "none" => false,
        "high-dose" => true,
        other => {
            return Err(format!("--normalise {other:?}: expected none or high-dose").into());
        }
    };
    let mut options = crate::plan_cli::dose_options(
        &a.spot_splitting,
        a.include_halo,
        a.lateral_cutoff_fraction,
        &a.scattering,
    )?;
    // the reference dose, in Gy of physical dose
    let rd = read_rtdose(&a.dose)?;
    if !rd.units.eq_ignore_ascii_case("GY") {
        return Err(format!(
            "{}: DoseUnits (3004,0002) is {:?}; a dose check needs an absolute dose (GY)",
            a.dose.display(),
            rd.units
        )
        .into());
    }
    let effective = rd.dose_type.eq_ignore_ascii_case("EFFECTIVE");
    if !(effective || rd.dose_type.eq_ignore_ascii_case("PHYSICAL")) {
        return Err(format!(
            "{}: DoseType (3004,0004) is {:?}; expected PHYSICAL or EFFECTIVE",
            a.dose.display(),
            rd.dose_type
        )
        .into());
    }
    let reference: DoseGrid = if effective {
        Volume::new(
            rd.dose.grid().clone(),
            rd.dose.data().mapv(|v| (f64::from(v) / a.rbe) as f32),
        )?
    } else {
        rd.dose.clone()
    };
    let ion = read_ion_plan(&a.plan)?;
    if let (Some(referenced), Some(uid)) = (&rd.referenced_plan_uid, &ion.sop_instance_uid)
        && referenced != uid
    {
        eprintln!(
            "isodose: warning: {} references RT plan {referenced}, but {} is {uid}",
            a.dose.display(),
            a.plan.display()
        );
    }
    if let (Some(d), Some(p)) = (&rd.frame_of_reference_uid, &ion.frame_of_reference_uid)
        && d != p
    {
        return Err(format!(
            "{}: FrameOfReferenceUID (0020,0052) {d:?} is not the plan's {p:?} ({}): the doses cannot be compared",
            a.dose.display(),
            a.plan.display()
        )
        .into());
    }
    // a BEAM dose names its beam; other summations may list beams too
    let is_beam_dose = rd.summation.eq_ignore_ascii_case("BEAM");
    let beam_number = a
        .beam
        .or(rd.referenced_beam_number.filter(|_| is_beam_dose));
    let beams: Vec<&isodose::dicom::IonBeam> = ion
        .beams
        .iter()
        .filter(|b| beam_number.is_none_or(|n| b.number == n))
        .collect();
    let Some(first) = beams.first() else {
        return Err(format!(
            "{}: no treatment beam with BeamNumber (300A,00C0) {beam_number:?}; its beams are {:?}",
            a.plan.display(),
            ion.beams.iter().map(|b| b.number).collect::<Vec<_>>()
        )
        .into());
    };
    let base = match &a.machine {
        Some(path) => ProtonMachine::from_file(path)?,
        None => ProtonMachine::generic()?,
    };
    let machine = match a.spot_size.as_str() {
        "machine" => base,
        "plan" => {
            // one spot-size table for the machine: every selected beam's
            // layers must agree where they share an energy
            for b in &beams[1..] {
                for l in &b.layers {
                    if let Some(f) = first
                        .layers
                        .iter()
                        .find(|k| k.energy_mev == l.energy_mev)
                        .and_then(|k| k.spot_size_fwhm_mm)
                        && l.spot_size_fwhm_mm.is_some_and(|g| g != f)
                    {
                        return Err(format!(
                            "{}: beams {} and {} give different ScanningSpotSize (300A,0398) at {} MeV: \
                             --spot-size plan needs one table; check the beams one at a time (--beam)",
                            a.plan.display(),
                            first.number,
                            b.number,
                            l.energy_mev
                        )
                        .into());
                    }
                }
            }
            machine_with_plan_spot_size(&base, first, &a.plan)?
        }
        other => return Err(format!("--spot-size {other:?}: expected machine or plan").into()),
    };
    // the patient: CT (with overrides) or the phantom of the structures
    let rois = match &a.structures {
        Some(p) => Some(read_rtstruct(p)?),
        None => None,
    };
    let (ct, materials, patient): (CtVolume, Vec<RoiMaterial>, String) = match (&a.ct, &rois) {
        (Some(dir), rois) => {
            let series = read_ct_series(dir, None)?;
            let mut materials = Vec::new();
            if let (Some(rois), Some(path)) = (rois, &a.structures) {
                for (o, m) in material_overrides(rois, series.volume.grid(), path)? {
                    options.overrides.push(o);
                    materials.push(m);
                }
            }
            (series.volume, materials, format!("CT {}", dir.display()))
        }
        (None, Some(rois)) => {
            let path = a.structures.as_deref().unwrap_or(Path::new(""));
            let (ct, overrides) = phantom_from_structures(rois, a.phantom_spacing_mm, path)?;
            let mut materials = Vec::new();
            for (o, m) in overrides {
                options.overrides.push(o);
                materials.push(m);
            }
            let [nz, ny, nx] = ct.grid().shape();
            (
                ct,
                materials,
                format!(
                    "phantom from {} ({nx} x {ny} x {nz} voxels of {} mm, air outside the ROIs)",
                    path.display(),
                    a.phantom_spacing_mm
                ),
            )
        }
        (None, None) => {
            return Err(
                "isodose check needs the patient: --ct (a CT folder, with --struct for its \
                        material overrides) or --struct alone (a phantom described by its RTSTRUCT)"
                    .into(),
            );
        }
    };
    let mut plans = Vec::new();
    for b in &beams {
        plans.push(ion.to_proton_beams(b.number, &machine)?);
    }
    let plan = ProtonPlan::new(plans.into_iter().flatten().collect(), ion.fractions)?;
    let engine = crate::progress_bar::watched(Engine::new(BackendChoice::parse(&a.backend)?)?);
    let t = Instant::now();
    let (computed, ran) =
        engine.pbs_dose_with_backend(&ct, &plan, &machine, Some(reference.grid()), &options)?;
    let dose_seconds = t.elapsed().as_secs_f64();
    let all_fractions = match a.fractions.as_str() {
        "auto" => !rd.summation.eq_ignore_ascii_case("FRACTION"),
        "all" => true,
        "one" => false,
        other => {
            return Err(format!("--fractions {other:?}: expected auto, one or all").into());
        }
    };
    let fractions = if all_fractions {
        f64::from(ion.fractions)
    } else {
        1.0
    };
    let computed: DoseGrid = Volume::new(
        computed.grid().clone(),
        computed.data().mapv(|v| (f64::from(v) * fractions) as f32),
    )?;
    if let Some(out) = &a.out {
        let context = isodose::dicom::DoseContext {
            study_instance_uid: None,
            frame_of_reference_uid: rd
                .frame_of_reference_uid
                .clone()
                .or_else(|| ion.frame_of_reference_uid.clone()),
            referenced_plan_uid: ion.sop_instance_uid.clone(),
            referenced_plan_sop_class_uid: None,
            referenced_fraction_group_number: ion.fraction_group_number,
            referenced_beam_number: beam_number,
            patient_id: String::new(),
            patient_name: String::new(),
            summation: if beam_number.is_some() {
                "BEAM"
            } else {
                "PLAN"
            }
            .to_owned(),
            comment: "isodose check: recomputed proton PBS dose (physical)".to_owned(),
        };
        write_rtdose(out, &computed, &context)?;
    }
    let ratio = high_dose_ratio(&reference, &computed, HIGH_DOSE_LEVEL)?;
    let evaluated: DoseGrid = if normalise {
        Volume::new(
            computed.grid().clone(),
            computed.data().mapv(|v| (f64::from(v) / ratio) as f32),
        )?
    } else {
        computed.clone()
    };
    // one beam's central axis and penumbrae (a sum of beams has no single axis)
    let mut beam_reports = Vec::new();
    if beams.len() == 1 {
        let b = first;
        let frame = BeamFrame::new(b.gantry_deg, b.couch_deg, b.isocenter_mm)?;
        let rdd = DepthDose::central_axis(&reference, &frame, 0.25)?;
        let idd = DepthDose::central_axis(&evaluated, &frame, 0.25)?;
        let r80_mm = [rdd.distal_delta_mm(0.8), idd.distal_delta_mm(0.8)];
        let p90_mm = [rdd.proximal_delta_mm(0.9), idd.proximal_delta_mm(0.9)];
        let penumbra_mm = LateralSide::ALL
            .iter()
            .map(|&s| {
                (
                    s,
                    [
                        lateral_penumbra_mm(&reference, &frame, 0.0, s),
                        lateral_penumbra_mm(&evaluated, &frame, 0.0, s),
                    ],
                )
            })
            .collect();
        beam_reports.push(BeamReport {
            number: b.number,
            name: b.name.clone(),
            gantry_deg: b.gantry_deg,
            couch_deg: b.couch_deg,
            reference: rdd,
            isodose: idd,
            r80_mm,
            p90_mm,
            penumbra_mm,
        });
    }
    let mut gammas = Vec::new();
    for &(dd, dta) in &criteria {
        let c = GammaCriteria {
            search: GammaSearch::Continuous,
            cutoff_percent: a.cutoff_percent,
            local: a.local,
            ..GammaCriteria::new(dd, dta)
        };
        let g = engine.gamma(&reference, &evaluated, &c)?;
        gammas.push((dd, dta, g));
    }
    // requirements
    let mut failed: Vec<String> = Vec::new();
    if let (Some(p), Some((dd, dta, g))) = (a.require_pass_percent, gammas.first())
        && (g.evaluated_count() == 0 || g.pass_rate().is_nan() || 100.0 * g.pass_rate() < p)
    {
        failed.push(format!(
            "gamma {dd} %/{dta} mm pass rate {:.2} % < {p} %",
            100.0 * g.pass_rate()
        ));
    }
    if let Some(limit) = a.require_r80_mm {
        if beam_reports.is_empty() {
            failed.push("--require-r80 needs one beam (--beam, or a BEAM dose)".to_owned());
        }
        for b in &beam_reports {
            match diff(b.r80_mm) {
                Some(d) if d.abs() <= limit => {}
                d => failed.push(format!(
                    "beam {} R80 difference {} mm, limit {limit} mm",
                    b.number,
                    signed(d)
                )),
            }
        }
    }
    if let Some(limit) = a.require_dose_percent
        && (ratio.is_nan() || (100.0 * (ratio - 1.0)).abs() > limit)
    {
        failed.push(format!(
            "dose ratio {ratio:.4} in the high-dose region: {:+.2} %, limit {limit} %",
            100.0 * (ratio - 1.0)
        ));
    }
    let ok = failed.is_empty();
    let seconds = started.elapsed().as_secs_f64();
    if a.json {
        let beams_json: Vec<_> = beam_reports
            .iter()
            .map(|b| {
                json!({
                    "number": b.number, "name": b.name,
                    "gantry_deg": b.gantry_deg, "couch_deg": b.couch_deg,
                    "r80_delta_mm": {"reference": b.r80_mm[0], "isodose": b.r80_mm[1], "difference": diff(b.r80_mm)},
                    "proximal90_delta_mm": {"reference": b.p90_mm[0], "isodose": b.p90_mm[1], "difference": diff(b.p90_mm)},
                    "penumbra_80_20_mm": b.penumbra_mm.iter().map(|(s, v)| json!({
                        "side": s.name(), "reference": v[0], "isodose": v[1]})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let gamma_json: Vec<_> = gammas
            .iter()
            .map(|(dd, dta, g)| {
                json!({"dose_percent": dd, "dta_mm": dta, "pass_rate_percent": 100.0 * g.pass_rate(),
                       "evaluated_points": g.evaluated_count(), "mean_gamma": g.mean_gamma()})
            })
            .collect();
        let value = json!({
            "plan": a.plan.display().to_string(),
            "reference": a.dose.display().to_string(),
            "reference_dose_type": rd.dose_type, "rbe": if effective { Some(a.rbe) } else { None },
            "patient": patient,
            "materials": materials.iter().map(|m| json!({"roi": m.roi, "rsp": m.rsp, "derivation": m.derivation})).collect::<Vec<_>>(),
            "machine": machine.name(),
            "beams_computed": beams.iter().map(|b| b.number).collect::<Vec<_>>(),
            "fractions_computed": fractions,
            "backend": ran.to_string(),
            "dose_ratio_high_dose": ratio,
            "normalised": normalise,
            "beams": beams_json,
            "gamma": gamma_json,
            "gamma_cutoff_percent": a.cutoff_percent, "gamma_local": a.local, "gamma_search": "continuous",
            "failed": failed, "pass": ok, "seconds": seconds,
        });
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
    } else {
        let mut r = String::new();
        writeln!(
            r,
            "isodose check: plan {:?} ({}) against {} ({}, {})",
            ion.label,
            a.plan.display(),
            a.dose.display(),
            rd.dose_type,
            rd.summation
        )?;
        if effective {
            writeln!(
                r,
                "  reference      EFFECTIVE dose / RBE {} = physical dose",
                a.rbe
            )?;
        }
        writeln!(r, "  patient        {patient}")?;
        if !materials.is_empty() {
            writeln!(r, "  materials      {}", materials_text(&materials))?;
        }
        writeln!(
            r,
            "  machine        {:?}{}",
            machine.name(),
            if a.machine.is_none() {
                " (built-in generic beam model and MU calibration, not the planning system's)"
            } else {
                ""
            }
        )?;
        writeln!(
            r,
            "  beams          {:?} of {:?}, {} spots, {}",
            beams.iter().map(|b| b.number).collect::<Vec<_>>(),
            ion.beams.iter().map(|b| b.number).collect::<Vec<_>>(),
            plan.spot_count(),
            if all_fractions {
                format!("all {} fraction(s) planned", ion.fractions)
            } else {
                "one fraction".to_owned()
            }
        )?;
        writeln!(
            r,
            "  calculation    {}, halo {}, on the RTDOSE grid; {ran}, {dose_seconds:.1} s",
            options
                .spot_splitting
                .map_or("ray casting".to_owned(), |s| format!(
                    "spot splitting {}",
                    s.name()
                )),
            if options.include_halo { "on" } else { "off" },
        )?;
        writeln!(
            r,
            "  absolute dose  isodose / reference over the reference's >= {:.0} % region: {ratio:.4} ({:+.2} %){}",
            100.0 * HIGH_DOSE_LEVEL,
            100.0 * (ratio - 1.0),
            if normalise {
                format!("; isodose normalised by 1/{ratio:.4} for the comparisons below")
            } else {
                String::new()
            }
        )?;
        if beams.len() > 1 {
            writeln!(
                r,
                "  central axis   not compared: the dose of {} beams has no single axis (check one beam with --beam and its BEAM dose)",
                beams.len()
            )?;
        }
        for b in &beam_reports {
            writeln!(
                r,
                "  beam {} {:?}     gantry {:.1}, couch {:.1}; along the central axis, mm downstream of the isocentre:",
                b.number, b.name, b.gantry_deg, b.couch_deg
            )?;
            writeln!(
                r,
                "    distal R80   reference {}, isodose {} ({})",
                mm(b.r80_mm[0]),
                mm(b.r80_mm[1]),
                signed(diff(b.r80_mm))
            )?;
            writeln!(
                r,
                "    proximal 90% reference {}, isodose {} ({})",
                mm(b.p90_mm[0]),
                mm(b.p90_mm[1]),
                signed(diff(b.p90_mm))
            )?;
            let pen: Vec<String> = b
                .penumbra_mm
                .iter()
                .map(|(s, v)| format!("{} {}/{}", s.name(), mm(v[0]), mm(v[1])))
                .collect();
            writeln!(
                r,
                "    penumbra     80-20 % at the isocentre plane, reference/isodose mm: {}",
                pen.join(", ")
            )?;
        }
        for (dd, dta, g) in &gammas {
            writeln!(
                r,
                "  gamma {dd}%/{dta}mm pass rate {:.2} % of {} points ({}, cut-off {} %, continuous search), mean gamma {:.3}",
                100.0 * g.pass_rate(),
                g.evaluated_count(),
                if a.local { "local" } else { "global" },
                a.cutoff_percent,
                g.mean_gamma()
            )?;
        }
        if let Some(out) = &a.out {
            writeln!(r, "  wrote          {}", out.display())?;
        }
        let any_requirement = a.require_pass_percent.is_some()
            || a.require_r80_mm.is_some()
            || a.require_dose_percent.is_some();
        if any_requirement {
            if ok {
                writeln!(r, "  result         PASS")?;
            } else {
                writeln!(r, "  result         FAIL: {}", failed.join("; "))?;
            }
        }
        writeln!(r, "  time           {seconds:.1} s")?;
        print_stdout(&r)?;
    }
    if let Some(png) = &a.png {
        plot::register_fonts()?;
        let mut curves = Vec::new();
        for b in &beam_reports {
            let start = b.reference.delta_mm[0].min(b.isodose.delta_mm[0]);
            let line = |d: &DepthDose| -> Vec<(f64, f64)> {
                d.delta_mm
                    .iter()
                    .zip(&d.dose_gy)
                    .map(|(x, y)| (x - start, *y))
                    .collect()
            };
            curves.push((
                format!("reference, beam {}", b.number),
                RGBColor(30, 30, 30),
                line(&b.reference),
            ));
            curves.push((
                format!("isodose, beam {}", b.number),
                RGBColor(200, 40, 40),
                line(&b.isodose),
            ));
        }
        if curves.is_empty() {
            return Err(
                "--png: the depth-dose figure needs one beam (--beam, or a BEAM dose)".into(),
            );
        }
        plot::depth_dose_png(
            png,
            &format!("central axis: {} vs isodose", file_name(&a.dose)),
            &curves,
            "dose (Gy)",
            None,
        )?;
        if !a.json {
            print_stdout(&format!("  wrote          {}\n", png.display()))?;
        }
    }
    Ok(ok)
}
