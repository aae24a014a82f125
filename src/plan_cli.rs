//! `isodose proton` and `isodose brachy`: the dose of a DICOM plan, computed
//! on a CT (or, for seeds, in water) and written as an RTDOSE file that
//! references the plan and shares the CT's study and frame of reference.
//!
//! **Proton dose grid.** By default a regular grid of `--spacing` (2 mm)
//! inside the CT's voxel-centre box, centred in it, so that it covers the whole
//! CT (and so the body) without reaching outside it; water-equivalent depths
//! are always traced through the CT at its own resolution. The dose is the
//! dose of **one fraction**: DICOM BeamMeterset (300A,0086) is the meterset of
//! one fraction (see [`isodose::dicom::ion_plan_convert`]). `--total`
//! multiplies it by NumberOfFractionsPlanned.
//!
//! **Brachy dose grid.** TG-43 dose in water (heterogeneities are not
//! modelled): on the CT grid when a CT is given (resampled as above when
//! `--spacing` is given), otherwise on a 1 mm grid covering the seeds plus a
//! 30 mm margin. A permanent implant gives the total dose of the full decay,
//! a temporary one the dose over its ChannelTotalTime.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use isodose::dicom::rt_brachy_plan::RT_PLAN_STORAGE;
use isodose::dicom::{
    CtSeries, DoseContext, read_brachy_plan, read_ct_series, read_ion_plan, write_rtdose,
};
use isodose::physics::scattering::ScatteringCurve;
use isodose::proton::{DoseOptions, ProtonMachine, ProtonPlan, SpotSplitting};
use isodose::tg43::{SeedCatalogue, SeedModel, Technique};
use isodose::{BackendChoice, DoseGrid, Engine, Grid3, Volume};
use nalgebra::Point3;
use ndarray::Array3;

use crate::{file_name, print_stdout};

type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Default dose-grid spacing of `isodose proton`, mm.
pub const PROTON_SPACING_MM: f64 = 2.0;
/// Default dose-grid spacing of `isodose brachy` without a CT, mm.
pub const BRACHY_SPACING_MM: f64 = 1.0;
/// Default margin around the seeds of `isodose brachy` without a CT, mm.
pub const BRACHY_MARGIN_MM: f64 = 30.0;

/// Options of `isodose proton`.
#[derive(Debug)]
pub struct ProtonArgs {
    /// Folder of the CT series.
    pub ct: PathBuf,
    /// RT Ion Plan file.
    pub plan: PathBuf,
    /// RTDOSE file to write.
    pub out: PathBuf,
    /// Machine file (isodose-proton-machine/1 JSON or an MCsquare BDL);
    /// `None`: the generic machine.
    pub machine: Option<PathBuf>,
    /// "auto", "cpu" or "gpu".
    pub backend: String,
    /// Dose-grid spacing, mm (`None`: [`PROTON_SPACING_MM`]).
    pub spacing_mm: Option<f64>,
    /// "none", "fine" or "NxN" (odd, 5–15).
    pub spot_splitting: String,
    /// Include the machine's nuclear halo.
    pub include_halo: bool,
    /// Lateral cut-off fraction (see [`DoseOptions`]).
    pub lateral_cutoff_fraction: f64,
    /// "none", "mcsquare_ucl_toshiba" or a CSV file of HU → scattering power.
    pub scattering: String,
    /// Also write one RTDOSE per beam.
    pub beam_dose: bool,
    /// Only this BeamNumber.
    pub beam: Option<i32>,
    /// Dose of all planned fractions instead of one.
    pub total: bool,
}

/// Options of `isodose brachy`.
#[derive(Debug)]
pub struct BrachyArgs {
    /// Brachytherapy RT Plan file.
    pub plan: PathBuf,
    /// RTDOSE file to write.
    pub out: PathBuf,
    /// Folder of the CT series, if any.
    pub ct: Option<PathBuf>,
    /// Seed model key or seed file, overriding the plan's model.
    pub model: Option<String>,
    /// Dose-grid spacing, mm (`None`: the CT grid, or [`BRACHY_SPACING_MM`]).
    pub spacing_mm: Option<f64>,
    /// Margin around the seeds without a CT, mm.
    pub margin_mm: f64,
    /// "auto", "cpu" or "gpu".
    pub backend: String,
}

/// A progress line on standard error (the report goes to standard output).
fn progress(text: &str) {
    eprintln!("isodose: {text}");
}

fn positive(what: &str, value: f64) -> CliResult<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(format!("{what} must be a finite number > 0 mm, not {value}").into())
    }
}

/// A grid of `spacing_mm` inside the voxel-centre box of `ct`, centred in it:
/// along each axis n = ⌊extent/spacing⌋ + 1 voxels, the leftover split evenly
/// at both ends.
fn grid_within(ct: &Grid3, spacing_mm: f64) -> CliResult<Grid3> {
    let (lo, hi) = ct.centre_bounds_mm();
    let mut shape = [0usize; 3];
    let mut origin = [0.0; 3];
    for axis in 0..3 {
        let extent = hi[axis] - lo[axis];
        let n = (extent / spacing_mm + 1e-9).floor() + 1.0;
        shape[2 - axis] = n as usize;
        origin[axis] = lo[axis] + 0.5 * (extent - (n - 1.0) * spacing_mm);
    }
    Ok(Grid3::new(shape, [spacing_mm; 3], origin)?)
}

/// The error for a plan whose frame of reference is not the CT's.
fn check_frame(
    plan_path: &Path,
    plan_frame: Option<&str>,
    ct_path: &Path,
    ct: &CtSeries,
) -> CliResult {
    if let (Some(p), Some(c)) = (plan_frame, ct.frame_of_reference_uid.as_deref())
        && p != c
    {
        return Err(format!(
            "{}: tag (0020,0052) FrameOfReferenceUID has value {p:?}, but the CT in {} has {c:?}: \
             the plan's coordinates do not belong to this CT",
            plan_path.display(),
            ct_path.display()
        )
        .into());
    }
    Ok(())
}

fn describe_grid(g: &Grid3) -> String {
    let [nz, ny, nx] = g.shape();
    let s = g.spacing_mm();
    let o = g.origin_mm();
    format!(
        "{nx} x {ny} x {nz} voxels at {:.3} x {:.3} x {:.3} mm, first voxel ({:.2}, {:.2}, {:.2}) mm",
        s.x, s.y, s.z, o.x, o.y, o.z
    )
}

/// Maximum of `dose` and the centre of its voxel.
fn maximum(dose: &DoseGrid) -> (f32, Point3<f64>) {
    let mut best = (0.0f32, [0usize; 3]);
    for ((k, j, i), v) in dose.data().indexed_iter() {
        if *v > best.0 {
            best = (*v, [k, j, i]);
        }
    }
    (best.0, dose.grid().index_to_world(best.1))
}

/// `out` with `_beam<number>` before its extension.
fn beam_path(out: &Path, number: i32) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "RTDOSE".into());
    let name = match out.extension() {
        Some(ext) => format!("{stem}_beam{number}.{}", ext.to_string_lossy()),
        None => format!("{stem}_beam{number}"),
    };
    out.with_file_name(name)
}

/// The dose options of the CLI's proton commands: `--spot-splitting`
/// ("none", "fine" or "NxN"), the halo, `--lateral-cutoff` and
/// `--scattering` ("none", "mcsquare_ucl_toshiba" or a CSV file).
pub fn dose_options(
    spot_splitting: &str,
    include_halo: bool,
    lateral_cutoff_fraction: f64,
    scattering: &str,
) -> CliResult<DoseOptions> {
    let mut options = DoseOptions::new()?;
    options.spot_splitting = match spot_splitting {
        "none" => None,
        other => Some(
            SpotSplitting::parse(other)
                .map_err(|e| format!("--spot-splitting: {e} (or \"none\" for ray casting)"))?,
        ),
    };
    options.include_halo = include_halo;
    options.lateral_cutoff_fraction = lateral_cutoff_fraction;
    options
        .validate()
        .map_err(|e| format!("--lateral-cutoff: {e}"))?;
    options.scattering = match scattering {
        "none" => None,
        "mcsquare_ucl_toshiba" => Some(ScatteringCurve::mcsquare_ucl_toshiba()?),
        path => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--scattering: cannot read {path:?}: {e}"))?;
            Some(
                ScatteringCurve::from_csv_str(path, &text)
                    .map_err(|e| format!("--scattering: {e}"))?,
            )
        }
    };
    Ok(options)
}

/// Runs `isodose proton`.
pub fn proton(a: &ProtonArgs) -> CliResult {
    let started = Instant::now();
    let choice = BackendChoice::parse(&a.backend)?;
    let options = dose_options(
        &a.spot_splitting,
        a.include_halo,
        a.lateral_cutoff_fraction,
        &a.scattering,
    )?;
    let spacing_mm = positive("--spacing", a.spacing_mm.unwrap_or(PROTON_SPACING_MM))?;
    let machine = match &a.machine {
        Some(path) => ProtonMachine::from_file(path)?,
        None => ProtonMachine::generic()?,
    };
    let ion = read_ion_plan(&a.plan)?;
    let selected: Vec<&isodose::dicom::IonBeam> = match a.beam {
        Some(n) => {
            let found: Vec<_> = ion.beams.iter().filter(|b| b.number == n).collect();
            if found.is_empty() {
                return Err(format!(
                    "{}: --beam {n}: the plan has no treatment beam with BeamNumber (300A,00C0) {n}; its beams are {:?}",
                    a.plan.display(),
                    ion.beams.iter().map(|b| b.number).collect::<Vec<_>>()
                )
                .into());
            }
            found
        }
        None => ion.beams.iter().collect(),
    };
    // convert every selected beam before the long work, so that a plan the
    // machine cannot deliver fails at once
    let mut converted = Vec::new();
    for b in &selected {
        converted.push(ProtonPlan::new(
            ion.to_proton_beams(b.number, &machine)?,
            ion.fractions,
        )?);
    }
    let engine = crate::progress_bar::watched(Engine::new(choice)?);
    // the backends that ran (the CPU for small beams or a GPU failure under Auto)
    let mut backends: Vec<String> = Vec::new();
    progress(&format!("reading the CT in {}", a.ct.display()));
    let t = Instant::now();
    let ct = read_ct_series(&a.ct, None)?;
    let ct_seconds = t.elapsed().as_secs_f64();
    check_frame(&a.plan, ion.frame_of_reference_uid.as_deref(), &a.ct, &ct)?;
    let grid = grid_within(ct.volume.grid(), spacing_mm)?;
    let fractions = ion.fractions;
    let scale = if a.total { f64::from(fractions) } else { 1.0 };
    let mut total = Array3::<f64>::zeros(grid.shape());
    let mut beam_doses = Vec::new();
    let mut lines = String::new();
    let (mut spots, mut protons) = (0usize, 0.0f64);
    let t = Instant::now();
    for (n, (b, plan)) in selected.iter().zip(&converted).enumerate() {
        let beam_spots = plan.spot_count();
        let beam_protons: f64 = plan
            .beams()
            .iter()
            .flat_map(|p| p.spots().iter().map(|s| s.weight))
            .sum();
        progress(&format!(
            "beam {}/{} ({} {:?}): {beam_spots} spots...",
            n + 1,
            selected.len(),
            b.number,
            b.name
        ));
        let tb = Instant::now();
        let (dose, ran) =
            engine.pbs_dose_with_backend(&ct.volume, plan, &machine, Some(&grid), &options)?;
        if !backends.contains(&ran.to_string()) {
            backends.push(ran.to_string());
        }
        progress(&format!(
            "beam {}/{} done in {:.1} s",
            n + 1,
            selected.len(),
            tb.elapsed().as_secs_f64()
        ));
        total.zip_mut_with(dose.data(), |acc, v| *acc += f64::from(*v) * scale);
        writeln!(
            lines,
            "    {:>3} {:<16} gantry {:>5.1} couch {:>5.1}, {:>3} layers, {:>5} spots, {:>9.2} MU, {:.3e} protons{}",
            b.number,
            format!("{:?}", b.name),
            b.gantry_deg,
            b.couch_deg,
            b.layers.len(),
            beam_spots,
            b.meterset_mu,
            beam_protons,
            if plan.beams().iter().any(|p| p.range_shifter().is_some()) {
                ", range shifter"
            } else {
                ""
            }
        )?;
        spots += beam_spots;
        protons += beam_protons;
        if a.beam_dose {
            let data = dose.data().mapv(|v| (f64::from(v) * scale) as f32);
            beam_doses.push((b.number, Volume::new(grid.clone(), data)?));
        }
    }
    let dose_seconds = t.elapsed().as_secs_f64();
    let dose: DoseGrid = Volume::new(grid.clone(), total.mapv(|v| v as f32))?;
    let per = if a.total {
        format!("total of {fractions} fractions")
    } else {
        "per fraction".to_owned()
    };
    // one beam of several is a BEAM dose; the whole plan a PLAN dose
    let single = match (a.beam, ion.beams.len()) {
        (Some(n), count) if count > 1 => Some(n),
        _ => None,
    };
    let context = |beam: Option<i32>| DoseContext {
        study_instance_uid: ct.study_instance_uid.clone(),
        frame_of_reference_uid: ct
            .frame_of_reference_uid
            .clone()
            .or_else(|| ion.frame_of_reference_uid.clone()),
        referenced_plan_uid: ion.sop_instance_uid.clone(),
        referenced_plan_sop_class_uid: None,
        referenced_fraction_group_number: ion.fraction_group_number,
        referenced_beam_number: beam,
        patient_id: ct.patient_id.clone().unwrap_or_default(),
        patient_name: ct.patient_name.clone().unwrap_or_default(),
        summation: if beam.is_some() { "BEAM" } else { "PLAN" }.to_owned(),
        comment: format!("isodose proton PBS, {per}"),
    };
    write_rtdose(&a.out, &dose, &context(single))?;
    let mut written = vec![(a.out.clone(), single)];
    for (number, d) in &beam_doses {
        let path = beam_path(&a.out, *number);
        write_rtdose(&path, d, &context(Some(*number)))?;
        written.push((path, Some(*number)));
    }

    let (max, at) = maximum(&dose);
    let iso = selected[0].isocenter_mm;
    let at_iso = dose.sample_trilinear(&Point3::from(iso));
    let mut r = String::new();
    writeln!(
        r,
        "isodose proton: plan {:?} ({}), {fractions} fraction(s) planned",
        ion.label,
        file_name(&a.plan)
    )?;
    writeln!(
        r,
        "  machine        {:?}{}",
        machine.name(),
        if a.machine.is_none() {
            " (built-in generic beam model and MU calibration: absolute doses need your machine's data, --machine)"
        } else {
            ""
        }
    )?;
    writeln!(
        r,
        "  beams          {} of {}:",
        selected.len(),
        ion.beams.len()
    )?;
    r.push_str(&lines);
    writeln!(
        r,
        "  spots          {spots}, {protons:.4e} protons per fraction"
    )?;
    writeln!(r, "  CT             {}", describe_grid(ct.volume.grid()))?;
    writeln!(
        r,
        "  dose grid      {} (inside the CT)",
        describe_grid(&grid)
    )?;
    writeln!(
        r,
        "  calculation    {}, nuclear halo {}, lateral cut-off {} %, HU->RSP curve {:?}, scattering {}",
        match options.spot_splitting {
            None => "ray casting".to_owned(),
            Some(s) => format!("spot splitting {}", s.name()),
        },
        if options.include_halo { "on" } else { "off" },
        100.0 * options.lateral_cutoff_fraction,
        options.hlut.name(),
        options
            .scattering
            .as_ref()
            .map_or("as water of the same WET".to_owned(), |c| format!(
                "{:?}",
                c.name()
            ))
    )?;
    writeln!(r, "  backend        {}", backends.join("; "))?;
    writeln!(
        r,
        "  time           {:.1} s (CT {ct_seconds:.1} s, dose {dose_seconds:.1} s)",
        started.elapsed().as_secs_f64()
    )?;
    writeln!(
        r,
        "  dose           {per} (DICOM BeamMeterset is per fraction): max {max:.4} Gy at ({:.1}, {:.1}, {:.1}) mm",
        at.x, at.y, at.z
    )?;
    if let Some(d) = at_iso {
        writeln!(
            r,
            "  isocentre      ({:.1}, {:.1}, {:.1}) mm: {d:.4} Gy",
            iso[0], iso[1], iso[2]
        )?;
    }
    for (path, beam) in &written {
        writeln!(
            r,
            "  wrote          {} ({})",
            path.display(),
            match beam {
                Some(n) => format!("DoseSummationType BEAM, beam {n}, {per}"),
                None => format!("DoseSummationType PLAN, {per}"),
            }
        )?;
    }
    print_stdout(&r)
}

/// The seed model of `isodose brachy`: `--model` (a catalogue key, or a seed
/// file ending in `.json`), else the one the plan names.
fn seed_model(
    plan: &isodose::dicom::BrachyPlan,
    key: Option<&str>,
    catalogue: &SeedCatalogue,
) -> CliResult<SeedModel> {
    Ok(match key {
        Some(k) if k.to_ascii_lowercase().ends_with(".json") => SeedModel::from_json_file(k)?,
        Some(k) => catalogue.get(k)?.clone(),
        None => plan.seed_model(catalogue)?.clone(),
    })
}

/// Runs `isodose brachy`.
pub fn brachy(a: &BrachyArgs) -> CliResult {
    let started = Instant::now();
    let choice = BackendChoice::parse(&a.backend)?;
    let margin_mm = a.margin_mm;
    if !(margin_mm.is_finite() && margin_mm >= 0.0) {
        return Err(format!("--margin must be a finite number >= 0 mm, not {margin_mm}").into());
    }
    if let Some(s) = a.spacing_mm {
        positive("--spacing", s)?;
    }
    let plan = read_brachy_plan(&a.plan)?;
    let catalogue = SeedCatalogue::builtin();
    let model = seed_model(&plan, a.model.as_deref(), &catalogue)?;
    let implant = plan.to_implant(&model)?;
    let ct = match &a.ct {
        Some(dir) => {
            progress(&format!("reading the CT in {}", dir.display()));
            let ct = read_ct_series(dir, None)?;
            check_frame(&a.plan, plan.frame_of_reference_uid.as_deref(), dir, &ct)?;
            Some(ct)
        }
        None => None,
    };
    let (grid, grid_note) = match (&ct, a.spacing_mm) {
        (Some(ct), None) => (ct.volume.grid().clone(), "the CT grid".to_owned()),
        (Some(ct), Some(s)) => (grid_within(ct.volume.grid(), s)?, "inside the CT".into()),
        (None, s) => {
            let spacing = s.unwrap_or(BRACHY_SPACING_MM);
            let mut lo = [f64::MAX; 3];
            let mut hi = [f64::MIN; 3];
            for seed in implant.seeds() {
                let p = seed.position_mm();
                for axis in 0..3 {
                    lo[axis] = lo[axis].min(p[axis] - margin_mm);
                    hi[axis] = hi[axis].max(p[axis] + margin_mm);
                }
            }
            (
                Grid3::covering(lo, hi, spacing)?,
                format!("water, the seeds + {margin_mm} mm"),
            )
        }
    };
    let engine = crate::progress_bar::watched(Engine::new(choice)?);
    progress(&format!(
        "TG-43 dose of {} seeds on {} voxels...",
        implant.seeds().len(),
        grid.len()
    ));
    let t = Instant::now();
    let (dose, ran) = engine.tg43_dose_with_backend(&implant, &grid)?;
    let dose_seconds = t.elapsed().as_secs_f64();
    let timing = match implant.technique() {
        Technique::Permanent => format!(
            "permanent implant, total dose of the full decay (τ = T½/ln 2 = {:.1} h)",
            model.mean_life_h()
        ),
        Technique::Temporary { duration_h } => {
            format!("temporary implant, dose over {duration_h:.2} h")
        }
    };
    let context = DoseContext {
        study_instance_uid: ct.as_ref().and_then(|c| c.study_instance_uid.clone()),
        frame_of_reference_uid: ct
            .as_ref()
            .and_then(|c| c.frame_of_reference_uid.clone())
            .or_else(|| plan.frame_of_reference_uid.clone()),
        referenced_plan_uid: plan.sop_instance_uid.clone(),
        referenced_plan_sop_class_uid: Some(RT_PLAN_STORAGE.to_owned()),
        referenced_fraction_group_number: None,
        referenced_beam_number: None,
        patient_id: ct
            .as_ref()
            .and_then(|c| c.patient_id.clone())
            .unwrap_or_default(),
        patient_name: ct
            .as_ref()
            .and_then(|c| c.patient_name.clone())
            .unwrap_or_default(),
        summation: "PLAN".into(),
        comment: format!("isodose TG-43 {}", model.key()),
    };
    write_rtdose(&a.out, &dose, &context)?;
    let (max, at) = maximum(&dose);
    let sk: f64 = implant
        .seeds()
        .iter()
        .map(|s| s.air_kerma_strength_u())
        .sum();
    let mut r = String::new();
    writeln!(
        r,
        "isodose brachy: plan {:?} ({}), {} {}",
        plan.label,
        file_name(&a.plan),
        plan.technique,
        plan.treatment_type
    )?;
    writeln!(
        r,
        "  seeds          {} x {} ({}), total S_K {sk:.3} U at its reference time, {:.2} days before the start of irradiation",
        implant.seeds().len(),
        model.key(),
        model.name(),
        implant.days_from_reference()
    )?;
    writeln!(r, "  timing         {timing}")?;
    writeln!(r, "  dose grid      {} ({grid_note})", describe_grid(&grid))?;
    writeln!(
        r,
        "  calculation    TG-43 line source in water (no heterogeneity correction)"
    )?;
    writeln!(r, "  backend        {ran}")?;
    writeln!(
        r,
        "  time           {:.2} s (dose {dose_seconds:.2} s)",
        started.elapsed().as_secs_f64()
    )?;
    writeln!(
        r,
        "  dose           max {max:.2} Gy at ({:.1}, {:.1}, {:.1}) mm (next to a seed)",
        at.x, at.y, at.z
    )?;
    writeln!(
        r,
        "  wrote          {} (DoseSummationType PLAN)",
        a.out.display()
    )?;
    print_stdout(&r)
}
