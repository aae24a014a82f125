//! The `isodose` command-line tool.

mod check_cli;
mod commission_cli;
mod demo;
mod demo_proton;
mod plan_cli;
mod plot;
mod progress_bar;
mod qa_cli;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use isodose::BackendChoice;
use isodose::tg43::{Formalism, SeedCatalogue, dose_rate_per_u};

/// isodose: radiotherapy dose engine (TG-43 brachytherapy; proton PBS to come).
#[derive(Debug, Parser)]
#[command(name = "isodose", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// parsed once per run: the size of the largest variant does not matter
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Compute the built-in demo (phantom, seed implant) and write figures.
    Demo {
        /// Folder for the figures.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Compute backend: auto, cpu or gpu.
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// Summarise DICOM files and CT folders: what each holds, at a glance.
    Info {
        /// RTDOSE or RT Ion Plan files, or folders holding a CT series.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// 3D gamma index of an evaluated RTDOSE against a reference RTDOSE (Low et
    /// al. 1998; evaluated dose interpolated between voxels; grids may differ).
    /// Exit code 2 when --require-pass fails.
    Gamma {
        /// Reference dose (RTDOSE, Gy), e.g. the planning system's.
        reference: PathBuf,
        /// Evaluated dose (RTDOSE, Gy), e.g. isodose's.
        evaluated: PathBuf,
        /// Dose-difference criterion, % (of the maximum reference dose, or of the local dose with --local).
        #[arg(long, default_value_t = 3.0)]
        dd: f64,
        /// Distance-to-agreement criterion, mm.
        #[arg(long, default_value_t = 3.0)]
        dta: f64,
        /// Low-dose cut-off, % of the maximum reference dose.
        #[arg(long, default_value_t = 10.0)]
        cutoff: f64,
        /// Local dose difference (default: global).
        #[arg(long)]
        local: bool,
        /// Largest gamma searched for.
        #[arg(long, default_value_t = 2.0)]
        max_gamma: f64,
        /// Search resolution, as a fraction of the DTA (the lattice step; the smallest box of the continuous search).
        #[arg(long, default_value_t = 0.1)]
        step: f64,
        /// Search: continuous (the minimum of the interpolated dose, default) or lattice (the search of pymedphys); both on CPU and GPU.
        #[arg(long, default_value = "continuous")]
        search: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Write a PNG report (slice map and histogram).
        #[arg(long)]
        png: Option<PathBuf>,
        /// Minimum pass rate, %; below it the exit code is 2.
        #[arg(long)]
        require_pass: Option<f64>,
        /// Compute backend: auto (a hardware GPU when present, for grids of
        /// at least 1e5 voxels), cpu or gpu.
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// Dose-volume histograms and metrics of the ROIs of an RTSTRUCT on an
    /// RTDOSE, with sub-voxel sampling of the contours.
    Dvh {
        /// The dose (RTDOSE, Gy).
        #[arg(long)]
        dose: PathBuf,
        /// The structure set (RTSTRUCT).
        #[arg(long = "struct")]
        structures: PathBuf,
        /// ROIs to report (default: all with closed contours); repeatable.
        #[arg(long = "roi")]
        rois: Vec<String>,
        /// Samples per dose voxel along y and z (1-16).
        #[arg(long, default_value_t = 4)]
        subdivisions: usize,
        /// Prescription dose, Gy: adds V_Rx and a line on the plot.
        #[arg(long)]
        prescription: Option<f64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Write a PNG of the cumulative DVHs (ROI colours of the RTSTRUCT).
        #[arg(long)]
        png: Option<PathBuf>,
    },
    /// Proton PBS dose of a DICOM RT Ion Plan on its CT, written as RTDOSE
    /// (Gy, physical dose of ONE fraction: DICOM BeamMeterset is per
    /// fraction; --total for all fractions). The dose grid is a regular
    /// --spacing grid inside the CT (covering it, and so the body); depths
    /// are traced through the CT at its own resolution. Progress goes to
    /// stderr, the report to stdout.
    Proton {
        /// Folder holding the CT series the plan was made on.
        #[arg(long)]
        ct: PathBuf,
        /// The RT Ion Plan (DICOM).
        #[arg(long)]
        plan: PathBuf,
        /// The RTDOSE file to write (DoseSummationType PLAN; BEAM with --beam).
        #[arg(long)]
        out: PathBuf,
        /// Proton machine data: isodose-proton-machine/1 JSON, or an MCsquare
        /// beam data library (BDL text, read by its content); default: the
        /// built-in generic machine (1e8 protons/MU at 100 MeV, not yours).
        #[arg(long)]
        machine: Option<PathBuf>,
        /// Compute backend: auto, cpu or gpu (the forward dose runs on the
        /// GPU when one is chosen, or under auto on a hardware GPU for beams
        /// of at least 1e7 pencil-voxel pairs).
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Dose-grid spacing, mm (isotropic), default 2: the grid is centred
        /// in the CT's extent and covers all of it.
        #[arg(long)]
        spacing: Option<f64>,
        /// Spot splitting (fine sampling into narrow sub-pencils, each with
        /// its own ray): none (ray casting), fine (9x9, recommended where
        /// lateral heterogeneities lie inside spots) or an odd NxN from 5x5 to
        /// 15x15.
        #[arg(long, default_value = "none")]
        spot_splitting: String,
        /// Leave out the machine's nuclear halo (the wide Gaussian of
        /// nonelastic secondaries; on by default).
        #[arg(long)]
        no_halo: bool,
        /// Fraction of each pencil's laterally integrated dose that the
        /// lateral cut-off may drop, in (0, 0.5).
        #[arg(long, default_value_t = 0.005)]
        lateral_cutoff: f64,
        /// HU -> relative scattering power for multiple Coulomb scattering:
        /// none (each voxel scatters as its water-equivalent thickness of
        /// water), mcsquare_ucl_toshiba (built in, from MCsquare's
        /// materials) or a CSV file with columns HU,relative_scattering_power.
        #[arg(long, default_value = "none")]
        scattering: String,
        /// Also write one RTDOSE per beam (DoseSummationType BEAM,
        /// ReferencedBeamNumber), named OUT_beam<N>.dcm.
        #[arg(long)]
        beam_dose: bool,
        /// Compute only the beam with this BeamNumber.
        #[arg(long)]
        beam: Option<i32>,
        /// Write the dose of all NumberOfFractionsPlanned fractions (as
        /// planning systems export PLAN doses) instead of one fraction.
        #[arg(long)]
        total: bool,
    },
    /// Secondary dose check of a proton plan: recompute the RT Ion Plan on
    /// its CT (or on the phantom its RTSTRUCT describes) on the grid of the
    /// planning system's RTDOSE and compare: absolute dose ratio, R80,
    /// proximal edge and penumbra of a beam, gamma pass rates (continuous
    /// search). Exit code 2 when a --require-* limit fails.
    Check {
        /// The RT Ion Plan (DICOM).
        #[arg(long)]
        plan: PathBuf,
        /// The planning system's dose (RTDOSE, Gy; EFFECTIVE is divided by --rbe).
        #[arg(long)]
        dose: PathBuf,
        /// Folder holding the CT series the plan was made on.
        #[arg(long)]
        ct: Option<PathBuf>,
        /// RTSTRUCT whose ROI material overrides (REL_STOP_RATIO, or
        /// REL_ELEC_DENSITY and MEAN_EXCI_ENERGY) replace the CT inside them;
        /// without --ct, the phantom (its EXTERNAL ROI, air around it).
        #[arg(long = "struct")]
        structures: Option<PathBuf>,
        /// Voxel size of a phantom built from the RTSTRUCT, mm.
        #[arg(long, default_value_t = 1.0)]
        phantom_spacing: f64,
        /// Proton machine data (isodose JSON or MCsquare BDL); default: the
        /// built-in generic machine.
        #[arg(long)]
        machine: Option<PathBuf>,
        /// In-air spot size: machine (the machine's optics) or plan (the
        /// plan's ScanningSpotSize at the isocentre, no divergence).
        #[arg(long, default_value = "machine")]
        spot_size: String,
        /// Only this beam (default: the RTDOSE's ReferencedBeamNumber for a
        /// BEAM dose, else every beam).
        #[arg(long)]
        beam: Option<i32>,
        /// RBE by which an EFFECTIVE reference dose is divided.
        #[arg(long, default_value_t = 1.1)]
        rbe: f64,
        /// none (absolute comparison) or high-dose (scale isodose to the
        /// reference's mean over its >= 90 % region; the factor is reported).
        #[arg(long, default_value = "none")]
        normalise: String,
        /// Gamma criterion DD/DTA (% / mm); repeatable (default 3/3 and 2/2).
        #[arg(long, default_values_t = ["3/3".to_owned(), "2/2".to_owned()])]
        gamma: Vec<String>,
        /// Gamma low-dose cut-off, % of the maximum reference dose.
        #[arg(long, default_value_t = 10.0)]
        cutoff: f64,
        /// Local gamma (default: global).
        #[arg(long)]
        local: bool,
        /// Minimum pass rate of the first gamma criterion, %.
        #[arg(long)]
        require_pass: Option<f64>,
        /// Largest |R80 difference| of the beam, mm.
        #[arg(long)]
        require_r80: Option<f64>,
        /// Largest |isodose / reference - 1| in the high-dose region, %.
        #[arg(long)]
        require_dose: Option<f64>,
        /// Fractions of the recomputed dose: auto (one for a FRACTION
        /// reference dose, all NumberOfFractionsPlanned otherwise), one or all.
        #[arg(long, default_value = "auto")]
        fractions: String,
        /// Spot splitting: none, fine (9x9) or an odd NxN (5x5-15x15).
        #[arg(long, default_value = "none")]
        spot_splitting: String,
        /// Leave out the machine's nuclear halo.
        #[arg(long)]
        no_halo: bool,
        /// Lateral cut-off fraction, in (0, 0.5).
        #[arg(long, default_value_t = 0.005)]
        lateral_cutoff: f64,
        /// HU -> scattering power: none, mcsquare_ucl_toshiba or a CSV file.
        #[arg(long, default_value = "none")]
        scattering: String,
        /// Compute backend: auto, cpu or gpu.
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Write a PNG of the central-axis depth doses (one beam).
        #[arg(long)]
        png: Option<PathBuf>,
        /// Write isodose's dose (before any normalisation) as RTDOSE.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Commission a proton machine from measured beam data: IDDs in water
    /// per energy (CSV: depth mm, Gy mm^2 per MU; the energy in the file
    /// name, e.g. idd_150MeV.csv), in-air spot sizes (CSV:
    /// nominal_energy_mev,z_mm,sigma_x_mm,sigma_y_mm) and the virtual source
    /// distances. Writes an isodose-proton-machine/1 file and a report.
    Commission {
        /// IDD CSV files, one per nominal energy (two or more).
        #[arg(long, required = true, num_args = 1..)]
        idd: Vec<PathBuf>,
        /// In-air spot sizes (CSV).
        #[arg(long)]
        spot_sizes: PathBuf,
        /// Virtual source-axis distance along X (scanning magnet to isocentre), mm.
        #[arg(long)]
        sad_x: f64,
        /// Virtual source-axis distance along Y, mm.
        #[arg(long)]
        sad_y: f64,
        /// Machine name.
        #[arg(long, default_value = "commissioned")]
        name: String,
        /// Machine file to write (JSON).
        #[arg(long)]
        out: PathBuf,
        /// Folder for the report (text, JSON and figures).
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// TG-43 dose of a brachytherapy (I-125 seed) RT Plan, written as RTDOSE
    /// (Gy; permanent implant: total dose of the full decay; temporary: over
    /// its ChannelTotalTime). Water everywhere (TG-43): a CT only sets the
    /// grid. Without --ct, a --spacing grid (1 mm) covers the seeds plus
    /// --margin (30 mm).
    Brachy {
        /// The brachytherapy RT Plan (DICOM).
        #[arg(long)]
        plan: PathBuf,
        /// The RTDOSE file to write.
        #[arg(long)]
        out: PathBuf,
        /// CT folder: dose on its grid (resampled inside it with --spacing),
        /// in its study and frame of reference.
        #[arg(long)]
        ct: Option<PathBuf>,
        /// Seed model: a catalogue key (see `isodose seeds`) or a seed file
        /// (.json), instead of the model the plan names.
        #[arg(long)]
        model: Option<String>,
        /// Dose-grid spacing, mm (default 1 without a CT; the CT's own grid
        /// with one).
        #[arg(long)]
        spacing: Option<f64>,
        /// Margin around the seeds without a CT, mm.
        #[arg(long, default_value_t = plan_cli::BRACHY_MARGIN_MM)]
        margin: f64,
        /// Compute backend: auto, cpu or gpu.
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// List the TG-43 seed models shipped with isodose, or load a seed file.
    Seeds {
        /// A seed file (isodose-tg43-seed/1 JSON) to validate and summarise.
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

/// Exit code of a QA requirement that was not met (2; 1 is any other error).
const REQUIREMENT_FAILED: u8 = 2;

fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cli.command {
        Command::Gamma {
            reference,
            evaluated,
            dd,
            dta,
            cutoff,
            local,
            max_gamma,
            step,
            search,
            json,
            png,
            require_pass,
            backend,
        } => {
            let mut criteria = isodose::qa::GammaCriteria::new(dd, dta);
            criteria.cutoff_percent = cutoff;
            criteria.local = local;
            criteria.max_gamma = max_gamma;
            criteria.search_step = step;
            criteria.search = isodose::qa::GammaSearch::parse(&search)?;
            let ok = qa_cli::gamma(&qa_cli::GammaArgs {
                reference,
                evaluated,
                criteria,
                json,
                png,
                require_pass_percent: require_pass,
                backend: BackendChoice::parse(&backend)?,
            })?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(REQUIREMENT_FAILED)
            })
        }
        Command::Dvh {
            dose,
            structures,
            rois,
            subdivisions,
            prescription,
            json,
            png,
        } => {
            qa_cli::dvh(&qa_cli::DvhArgs {
                dose,
                structures,
                rois,
                subdivisions,
                json,
                png,
                prescription_gy: prescription,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Proton {
            ct,
            plan,
            out,
            machine,
            backend,
            spacing,
            spot_splitting,
            no_halo,
            lateral_cutoff,
            scattering,
            beam_dose,
            beam,
            total,
        } => {
            plan_cli::proton(&plan_cli::ProtonArgs {
                ct,
                plan,
                out,
                machine,
                backend,
                spacing_mm: spacing,
                spot_splitting,
                include_halo: !no_halo,
                lateral_cutoff_fraction: lateral_cutoff,
                scattering,
                beam_dose,
                beam,
                total,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            plan,
            dose,
            ct,
            structures,
            phantom_spacing,
            machine,
            spot_size,
            beam,
            rbe,
            normalise,
            gamma,
            cutoff,
            local,
            require_pass,
            require_r80,
            require_dose,
            fractions,
            spot_splitting,
            no_halo,
            lateral_cutoff,
            scattering,
            backend,
            json,
            png,
            out,
        } => {
            let ok = check_cli::check(&check_cli::CheckArgs {
                plan,
                dose,
                ct,
                structures,
                phantom_spacing_mm: phantom_spacing,
                machine,
                spot_size,
                beam,
                rbe,
                normalise,
                gamma,
                cutoff_percent: cutoff,
                local,
                require_pass_percent: require_pass,
                require_r80_mm: require_r80,
                require_dose_percent: require_dose,
                fractions,
                spot_splitting,
                include_halo: !no_halo,
                lateral_cutoff_fraction: lateral_cutoff,
                scattering,
                backend,
                json,
                png,
                out,
            })?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(REQUIREMENT_FAILED)
            })
        }
        Command::Commission {
            idd,
            spot_sizes,
            sad_x,
            sad_y,
            name,
            out,
            report,
        } => {
            commission_cli::run(&commission_cli::CommissionArgs {
                idd,
                spot_sizes,
                name,
                sad_x_mm: sad_x,
                sad_y_mm: sad_y,
                out,
                report,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Brachy {
            plan,
            out,
            ct,
            model,
            spacing,
            margin,
            backend,
        } => {
            plan_cli::brachy(&plan_cli::BrachyArgs {
                plan,
                out,
                ct,
                model,
                spacing_mm: spacing,
                margin_mm: margin,
                backend,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { out, backend } => {
            demo::run(&out, BackendChoice::parse(&backend)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { paths } => info_command(&paths).map(|()| ExitCode::SUCCESS),
        Command::Seeds { file } => seeds_command(file).map(|()| ExitCode::SUCCESS),
    }
}

/// `isodose info`: one line per path; an error if any path failed.
fn info_command(paths: &[PathBuf]) -> Result<(), Box<dyn std::error::Error>> {
    let mut text = String::new();
    let mut failed = 0;
    for path in paths {
        match info(path) {
            Ok(summary) => writeln!(text, "{}: {summary}", path.display())?,
            Err(e) => {
                failed += 1;
                writeln!(text, "{}: error: {e}", path.display())?;
            }
        }
    }
    print_stdout(&text)?;
    if failed > 0 {
        return Err(format!("{failed} of {} paths could not be read", paths.len()).into());
    }
    Ok(())
}

/// `isodose seeds`: the seed catalogue, or one seed file, as a table.
fn seeds_command(file: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    let models = match file {
        Some(path) => vec![isodose::tg43::SeedModel::from_json_file(path)?],
        None => SeedCatalogue::builtin().models().cloned().collect(),
    };
    let mut text = format!(
        "{:<24} {:>8} {:>7} {:>10} {:>6}  name\n",
        "key", "Λ", "L mm", "Ḋ(1cm,90°)", "φ_an"
    );
    for m in models {
        let d = dose_rate_per_u(&m, Formalism::Line, 10.0, 90.0)?;
        writeln!(
            text,
            "{:<24} {:>8.3} {:>7.2} {:>10.4} {:>6}  {}",
            m.key(),
            m.dose_rate_constant(),
            m.active_length_mm(),
            d,
            if m.anisotropy_factor().is_some() {
                "yes"
            } else {
                "no"
            },
            m.name()
        )?;
    }
    print_stdout(&text)
}

/// One line on what a DICOM file or CT folder holds.
fn info(path: &std::path::Path) -> Result<String, Box<dyn std::error::Error>> {
    if path.is_dir() {
        let ct = isodose::dicom::read_ct(path, None)?;
        let g = ct.grid();
        let [nz, ny, nx] = g.shape();
        let s = g.spacing_mm();
        let o = g.origin_mm();
        let (lo, hi) = ct
            .data()
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
        return Ok(format!(
            "CT series, {nx} x {ny} x {nz} voxels at {:.3} x {:.3} x {:.3} mm, first voxel ({:.2}, {:.2}, {:.2}) mm, HU {lo} to {hi}",
            s.x, s.y, s.z, o.x, o.y, o.z
        ));
    }
    if let Ok(plan) = isodose::dicom::read_ion_plan(path) {
        let beams: Vec<String> = plan
            .beams
            .iter()
            .map(|b| {
                let (lo, hi) = b.layers.iter().fold((f64::MAX, f64::MIN), |(a, c), l| {
                    (a.min(l.energy_mev), c.max(l.energy_mev))
                });
                let rs = if b.layers.iter().any(|l| !l.range_shifters.is_empty()) {
                    ", range shifter"
                } else {
                    ""
                };
                format!(
                    "'{}' gantry {} couch {}: {} layers {lo}-{hi} MeV, {} spots, {:.2} MU{rs}",
                    b.name,
                    b.gantry_deg,
                    b.couch_deg,
                    b.layers.len(),
                    b.spot_count(),
                    b.meterset_mu
                )
            })
            .collect();
        return Ok(format!(
            "RT Ion Plan '{}', {} fraction(s), {} beam(s): {}",
            plan.label,
            plan.fractions,
            plan.beams.len(),
            beams.join("; ")
        ));
    }
    if let Ok(plan) = isodose::dicom::read_brachy_plan(path) {
        let sources: Vec<String> = plan
            .sources
            .iter()
            .map(|src| {
                format!(
                    "{} {} {:.4} U",
                    src.isotope_name,
                    src.model_id.as_deref().unwrap_or("(no model)"),
                    src.air_kerma_strength_u
                )
            })
            .collect();
        return Ok(format!(
            "brachytherapy RT Plan '{}', {} {}, {} seed(s) in {} application setup(s), sources: {}",
            plan.label,
            plan.treatment_type,
            plan.technique,
            plan.seeds.len(),
            plan.setups.len(),
            sources.join("; ")
        ));
    }
    if let Ok(rois) = isodose::dicom::read_rtstruct(path) {
        let list: Vec<String> = rois
            .iter()
            .map(|r| {
                format!(
                    "{} {} [{}] {} contour(s)",
                    r.number,
                    r.name,
                    r.interpreted_type.as_deref().unwrap_or("-"),
                    r.contours.len()
                )
            })
            .collect();
        return Ok(format!(
            "RTSTRUCT, {} ROI(s): {}",
            rois.len(),
            list.join("; ")
        ));
    }
    let rd = isodose::dicom::read_rtdose(path)?;
    let g = rd.dose.grid();
    let [nz, ny, nx] = g.shape();
    let max = rd.dose.data().iter().fold(0.0f32, |m, v| m.max(*v));
    Ok(format!(
        "RTDOSE {} {} {}, {nx} x {ny} x {nz} voxels at {:?} mm, max {max:.4}{}",
        rd.units,
        rd.dose_type,
        rd.summation,
        [g.spacing_mm().x, g.spacing_mm().y, g.spacing_mm().z],
        rd.referenced_plan_uid
            .map(|u| format!(", plan {u}"))
            .unwrap_or_default()
    ))
}

/// Writes `text` to standard output. A closed pipe (`isodose demo | head`)
/// ends the output quietly instead of panicking like `println!` would.
/// The last component of `p` (for report titles), or "" when it has none.
pub(crate) fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn print_stdout(text: &str) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
