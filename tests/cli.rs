//! End-to-end runs of the `isodose` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn isodose() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isodose"))
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn demo_prints_a_plausible_plan_and_writes_figures() {
    let out = std::env::temp_dir().join(format!("isodose-demo-{}", std::process::id()));
    let result = isodose()
        .args(["demo", "--out"])
        .arg(&out)
        .args(["--backend", "cpu"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(stdout.contains("62 x 0.550 U (Amersham6711)"), "{stdout}");
    assert!(stdout.contains("backend        cpu"), "{stdout}");
    // the target row: cc, D90 Gy, D90 %Rx, V100 %, ...
    let row: Vec<f64> = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Prostate"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let (cc, d90, d90_rx, v100) = (row[0], row[1], row[2], row[3]);
    // 4/3·π·24·18·22 mm³ = 39.8 cm³
    assert!((cc - 39.8).abs() < 0.8, "{cc}");
    assert!((d90 / 145.0 * 100.0 - d90_rx).abs() < 0.1);
    // a clinically acceptable implant: D90 100–130 % Rx, V100 ≥ 90 %
    assert!((100.0..130.0).contains(&d90_rx), "D90 {d90_rx} % Rx");
    assert!(v100 >= 90.0, "V100 {v100}");
    assert_eq!(png_size(&out.join("brachy_axial.png")), (900, 860));
    assert_eq!(png_size(&out.join("brachy_dvh.png")), (900, 600));
    // the proton part: the second Prostate row holds cc, D98, D95, D50, D2,
    // mean (Gy) for a 2 Gy prescription
    let proton: Vec<f64> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("Prostate"))
        .nth(1)
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(stdout.contains("2 lateral opposed fields"), "{stdout}");
    let (d95, d50) = (proton[2], proton[3]);
    assert!((1.9..2.3).contains(&d95), "proton D95 {d95} Gy");
    assert!((1.9..2.4).contains(&d50), "proton D50 {d50} Gy");
    assert_eq!(png_size(&out.join("proton_axial.png")), (900, 860));
    assert_eq!(png_size(&out.join("proton_depth_dose.png")), (900, 600));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn user_errors_exit_non_zero_with_a_message() {
    let result = isodose()
        .args(["demo", "--backend", "tpu"])
        .output()
        .unwrap();
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("unknown backend \"tpu\""), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let bad = std::env::temp_dir().join(format!("isodose-bad-seed-{}.json", std::process::id()));
    std::fs::write(&bad, "{\"format\": \"isodose-tg43-seed/1\"}").unwrap();
    let result = isodose()
        .args(["seeds", "--file"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains(bad.to_str().unwrap()) && stderr.contains("missing field"),
        "{stderr}"
    );
    std::fs::remove_file(&bad).ok();
}

#[test]
fn seeds_lists_every_shipped_model() {
    let result = isodose().arg("seeds").output().unwrap();
    assert!(result.status.success());
    let stdout = String::from_utf8_lossy(&result.stdout);
    for key in [
        "Amersham6711",
        "Best2301",
        "IsoAidIAI125A",
        "TheragenicsAgX100",
    ] {
        assert!(stdout.contains(key), "{key} missing from\n{stdout}");
    }
    // Ḋ(1 cm, 90°) per U printed for the 6711 is its Λ
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Amersham6711"))
        .unwrap();
    assert!(line.contains("0.9650"), "{line}");
}

#[test]
fn info_summarises_dicom_files() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("dicom-io/tests/data");
    let dir = temp_dir("info");
    let brachy = dir.join("RP_brachy.dcm");
    single_seed_plan(
        &brachy,
        "Amersham6711",
        [0.0; 3],
        isodose::tg43::Technique::Permanent,
        None,
    );
    let result = isodose()
        .arg("info")
        .arg(data.join("aptg_sobp_RD.dcm"))
        .arg(data.join("dcpt_head_RN.dcm"))
        .arg(data.join("aptg_ramp_RS.dcm"))
        .arg(&brachy)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{stdout}");
    assert!(
        stdout.contains("RTDOSE GY PHYSICAL PLAN, 105 x 105 x 107 voxels"),
        "{stdout}"
    );
    assert!(
        stdout.contains("RT Ion Plan 'Brain_fin2', 5 fraction(s), 3 beam(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("'Field 1' gantry 0 couch 0: 24 layers"),
        "{stdout}"
    );
    assert!(
        stdout.contains("RTSTRUCT, 5 ROI(s): 1 Cube101010 [PTV] 21 contour(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("brachytherapy RT Plan") && stdout.contains("1 seed(s)"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).ok();
    // a file that is neither: non-zero exit, the error names it
    let result = isodose()
        .arg("info")
        .arg(data.join("README.md"))
        .output()
        .unwrap();
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stdout).contains("README.md: error"));
}

fn test_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dicom-io/tests/data")
        .join(name)
}

/// A fresh temporary folder for one test.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("isodose-cli-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Unpacks the DCPT head-phantom CT into `dir`; returns the `CT/` folder.
fn unpack_head_ct(dir: &Path) -> PathBuf {
    let archive = test_data("CT.HeadPhantom_177_slices.tar.gz");
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(archive).unwrap());
    tar::Archive::new(gz).unpack(dir).unwrap();
    dir.join("CT")
}

fn run_ok(cmd: &mut Command) -> String {
    let result = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    stdout
}

/// Runs a command that must fail with exit code 1 and a message (no panic);
/// returns its stderr.
fn run_err(cmd: &mut Command) -> String {
    let result = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// Facts of the Eclipse head-phantom plan and CT (read from the files with a
/// plain byte scan of the tags, independently of isodose's readers):
/// SOPInstanceUID of the plan, FrameOfReferenceUID of plan and CT.
const HEAD_PLAN_UID: &str = "1.2.246.352.71.5.37402163639.265919.20240227185649";
const HEAD_FRAME_UID: &str = "1.3.12.2.1107.5.1.4.83687.30000023101207011388400000030";
const HEAD_ISOCENTRE_MM: [f64; 3] = [0.0, -170.15853658537, -2.1219512195122];
/// Eclipse's BeamDose (300A,0084) of the three fields at their
/// BeamDoseSpecificationPoint (300A,0082), the isocentre, Gy per fraction;
/// their sum 1.7277 Gy is the TargetPrescriptionDose (300A,0026)
/// 8.63866880104808 Gy over the 5 fractions.
const HEAD_BEAM_DOSE_GY: [f64; 3] = [0.68941406035948, 0.71060822526359, 0.32771147458655];

/// Energy (MeV) of a proton of residual range `r_mm` in water, by the
/// Bragg–Kleeman rule R = α E^p (α = 0.0022 cm MeV^-p, p = 1.77; Bortfeld,
/// Med Phys 24:2024 (1997)).
fn energy_for_range_mev(r_mm: f64) -> f64 {
    (r_mm / 10.0 / 0.0022).powf(1.0 / 1.77)
}

#[test]
fn proton_dose_of_the_eclipse_head_plan_on_its_ct() {
    use isodose::dicom::{read_ion_plan, read_rtdose};
    let dir = temp_dir("proton");
    let ct = unpack_head_ct(&dir);
    let out = dir.join("RD.dcm");
    let plan_path = test_data("dcpt_head_RN.dcm");
    let t = std::time::Instant::now();
    let stdout = run_ok(
        isodose()
            .args(["proton", "--backend", "cpu", "--beam-dose", "--ct"])
            .arg(&ct)
            .arg("--plan")
            .arg(&plan_path)
            .arg("--out")
            .arg(&out),
    );
    eprintln!(
        "isodose proton on the head phantom: {:.1} s\n{stdout}",
        t.elapsed().as_secs_f64()
    );
    for needle in [
        "plan \"Brain_fin2\"",
        "5 fraction(s) planned",
        "3 of 3",
        "1907",
        "per fraction",
        "backend        cpu",
        "150 x 150 x 133 voxels at 2.000",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in\n{stdout}");
    }
    let rd = read_rtdose(&out).unwrap();
    assert_eq!(rd.frame_of_reference_uid.as_deref(), Some(HEAD_FRAME_UID));
    assert_eq!(rd.referenced_plan_uid.as_deref(), Some(HEAD_PLAN_UID));
    assert_eq!(
        rd.referenced_plan_sop_class_uid.as_deref(),
        Some("1.2.840.10008.5.1.4.1.1.481.8")
    );
    assert_eq!(
        (
            rd.units.as_str(),
            rd.dose_type.as_str(),
            rd.summation.as_str()
        ),
        ("GY", "PHYSICAL", "PLAN")
    );
    let dose = &rd.dose;
    let g = dose.grid();
    // 2 mm grid inside the CT's voxel-centre box (x, y: −149.707 + 511 × 0.5859 mm; z −139…125 mm)
    let (lo, hi) = g.centre_bounds_mm();
    assert!(lo.x >= -149.708 && hi.x <= 149.708 && lo.z >= -139.0 && hi.z <= 125.0);
    assert!(dose.data().iter().all(|v| v.is_finite() && *v >= 0.0));
    let (max, _) =
        dose.data().indexed_iter().fold(
            (0.0f32, (0, 0, 0)),
            |m, (i, v)| if *v > m.0 { (*v, i) } else { m },
        );
    let iso = nalgebra::Point3::from(HEAD_ISOCENTRE_MM);
    let at_iso = dose.sample_trilinear(&iso).unwrap();
    // the isocentre lies in the high-dose region: inside the bounding box
    // of the phantom's voxels (HU > −500; the model also gives the air in
    // front of it the entrance dose to water) at ≥ 80 % of the maximum, at
    // ≥ 80 % itself
    let hu = isodose::dicom::read_ct(&ct, None).unwrap();
    let hu_at = |p: &nalgebra::Point3<f64>| {
        hu.grid()
            .world_to_index(p)
            .map_or(-1000.0, |zyx| f64::from(hu.data()[zyx]))
    };
    let mut lo = [f64::MAX; 3];
    let mut hi = [f64::MIN; 3];
    for ((k, j, i), v) in dose.data().indexed_iter() {
        if *v >= 0.8 * max && hu_at(&g.index_to_world([k, j, i])) > -500.0 {
            let p = g.index_to_world([k, j, i]);
            for a in 0..3 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
    }
    eprintln!("max {max} Gy, isocentre {at_iso} Gy, ≥ 80 % box {lo:?} to {hi:?}");
    for a in 0..3 {
        assert!(
            lo[a] < iso[a] && iso[a] < hi[a],
            "isocentre {iso:?} outside the 80 % box {lo:?} to {hi:?}"
        );
    }
    assert!(
        at_iso >= 0.8 * f64::from(max),
        "isocentre {at_iso} Gy, max {max} Gy"
    );

    // absolute scale, by energy balance. The protons of one fraction
    // (generic machine: MU × its protons per MU) enter the head with the
    // energy left after the 57 mm WET range shifter (Bragg–Kleeman). A
    // pencil beam deposits its energy along the water-equivalent path, so
    // the dose integral weighted by the relative stopping power (water,
    // 1 kg/L; this also gives the air around the head, where the model
    // reports a dose to water, its negligible mass) holds that energy less
    // what nuclear secondaries carry away (the generic Bragg curves deposit
    // 92–95 % of E₀, dose-core tests/proton_machine.rs), the lateral
    // cut-off (0.5 %) and what protons carry out of the head: its WET
    // along the beam (gantry 0, through the CT) is only 100–146 mm with the
    // default HU curve, less than the 172 mm residual range of the highest
    // layer (186.2 MeV) after the shifter, so part of the highest layers
    // exits. Hence a range: at most 96 % of the entering energy, at least
    // 70 % (a fraction count or unit error, ×5 or ×0.2, falls far outside).
    let ion = read_ion_plan(&plan_path).unwrap();
    let plan = ion
        .to_proton_plan(&isodose::proton::ProtonMachine::generic().unwrap())
        .unwrap();
    let mut entering_j = 0.0;
    for b in plan.beams() {
        let wet = b.range_shifter().unwrap().water_equivalent_thickness_mm;
        for s in b.spots() {
            let r = 10.0 * 0.0022 * s.energy_mev.powf(1.77);
            entering_j += s.weight * energy_for_range_mev(r - wet) * 1.602_176_634e-13;
        }
    }
    let hlut = isodose::physics::hlut::Hlut::default_curve().unwrap();
    let voxel_kg = g.voxel_volume_mm3() * 1e-6;
    let deposited_j: f64 = dose
        .data()
        .indexed_iter()
        .map(|((k, j, i), v)| {
            let rsp = hlut.rsp(hu_at(&g.index_to_world([k, j, i])));
            f64::from(*v) * rsp * voxel_kg
        })
        .sum();
    let ratio = deposited_j / entering_j;
    eprintln!("energy: {entering_j:.2} J enter, {deposited_j:.2} J in the dose, ratio {ratio:.3}");
    assert!((0.7..0.96).contains(&ratio), "energy balance {ratio}");

    // each field's share of the isocentre dose as Eclipse planned it
    // (BeamDose), independent of the MU calibration; and the per-beam
    // RTDOSE files add up to the plan's
    let eclipse_total: f64 = HEAD_BEAM_DOSE_GY.iter().sum();
    let mut sum = ndarray::Array3::<f64>::zeros(g.shape());
    for (number, eclipse) in [1, 2, 3].into_iter().zip(HEAD_BEAM_DOSE_GY) {
        let rb = read_rtdose(dir.join(format!("RD_beam{number}.dcm"))).unwrap();
        assert_eq!(rb.summation, "BEAM");
        assert_eq!(rb.referenced_beam_number, Some(number));
        assert_eq!(rb.referenced_plan_uid.as_deref(), Some(HEAD_PLAN_UID));
        assert_eq!(rb.dose.grid(), g);
        let share = rb.dose.sample_trilinear(&iso).unwrap() / at_iso;
        eprintln!(
            "beam {number}: share {share}, Eclipse {}",
            eclipse / eclipse_total
        );
        assert!(
            (share - eclipse / eclipse_total).abs() < 0.05,
            "beam {number}: {share} of the isocentre dose, Eclipse {}",
            eclipse / eclipse_total
        );
        sum.zip_mut_with(rb.dose.data(), |a, v| *a += f64::from(*v));
    }
    for (a, b) in sum.iter().zip(dose.data().iter()) {
        assert!((a - f64::from(*b)).abs() <= 1e-5 * f64::from(max));
    }

    // the dose options and a machine read from an MCsquare beam data library
    // (OpenTPS's stock IBA library), on one beam and a 4 mm grid
    let bdl = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dose-core/tests/data/bdl/BDL_default_DN_RangeShifter.txt");
    let out2 = dir.join("RD_options.dcm");
    let stdout = run_ok(
        isodose()
            .args([
                "proton",
                "--backend",
                "cpu",
                "--beam",
                "1",
                "--spacing",
                "4",
            ])
            .args([
                "--no-halo",
                "--spot-splitting",
                "5x5",
                "--lateral-cutoff",
                "0.01",
                "--scattering",
                "mcsquare_ucl_toshiba",
            ])
            .arg("--machine")
            .arg(&bdl)
            .arg("--ct")
            .arg(&ct)
            .arg("--plan")
            .arg(&plan_path)
            .arg("--out")
            .arg(&out2),
    );
    for needle in [
        "spot splitting 5x5, nuclear halo off, lateral cut-off 1 %",
        "scattering \"mcsquare_ucl_toshiba\"",
        "BDL_default_DN_RangeShifter.txt",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in\n{stdout}");
    }
    let rd2 = read_rtdose(&out2).unwrap();
    let iso2 = rd2.dose.sample_trilinear(&iso).unwrap();
    assert!(
        iso2 > 0.0,
        "beam 1 with the BDL machine: {iso2} Gy at the isocentre"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Mean life of I-125, h: T½/ln 2 with T½ = 59.4 d (TG-43U1).
const I125_MEAN_LIFE_H: f64 = 59.4 * 24.0 / std::f64::consts::LN_2;

/// One 1 U seed at `position_mm`, axis along the patient z axis.
fn single_seed_plan(
    path: &Path,
    key: &str,
    position_mm: [f64; 3],
    technique: isodose::tg43::Technique,
    frame_uid: Option<&str>,
) -> String {
    use isodose::dicom::{BrachyPlanContext, write_brachy_plan};
    use isodose::tg43::{Implant, Seed, SeedCatalogue};
    let model = SeedCatalogue::builtin().get(key).unwrap().clone();
    let seed = Seed::new(position_mm, Some([0.0, 0.0, 1.0]), 1.0).unwrap();
    let implant = Implant::new(model, vec![seed], technique, 0.0).unwrap();
    let context = BrachyPlanContext {
        frame_of_reference_uid: frame_uid.map(str::to_owned),
        ..BrachyPlanContext::default()
    };
    write_brachy_plan(path, &implant, &context).unwrap()
}

/// The dose (Gy) of an RTDOSE at a point that must be a voxel centre.
fn dose_at_voxel(rd: &isodose::dicom::RtDose, p: [f64; 3]) -> f64 {
    let g = rd.dose.grid();
    let p = nalgebra::Point3::from(p);
    let zyx = g.world_to_index(&p).unwrap();
    assert!(
        (g.index_to_world(zyx) - p).norm() < 1e-6,
        "{p:?} is not a voxel centre"
    );
    f64::from(rd.dose.data()[zyx])
}

/// TG-43 by hand on the transverse axis at r = 1 cm of a 1 U seed:
/// Ḋ = S_K·Λ·(G_L/G_L0 = 1)·(g_L(1 cm) = 1)·(F(1 cm, 90°) = 1) = Λ cGy/h, and
/// the total dose is Ḋ·τ (permanent, τ = T½/ln 2) or Ḋ·τ(1 − e^(−t/τ))
/// (temporary, t hours); Λ = 0.965 cGy h⁻¹ U⁻¹ for the 6711 and 1.018 for
/// the Best 2301 (TG-43U1, Rivard et al., Med Phys 31:633 (2004), Table III).
#[test]
fn brachy_dose_of_one_seed_is_tg43_by_hand() {
    use isodose::dicom::{read_brachy_plan, read_rtdose};
    use isodose::tg43::Technique;
    let dir = temp_dir("brachy");
    let plan = dir.join("RP.dcm");
    let plan_uid = single_seed_plan(&plan, "Amersham6711", [0.0; 3], Technique::Permanent, None);
    let out = dir.join("RD.dcm");
    let stdout = run_ok(
        isodose()
            .args(["brachy", "--backend", "cpu", "--plan"])
            .arg(&plan)
            .arg("--out")
            .arg(&out),
    );
    eprintln!("{stdout}");
    assert!(stdout.contains("1 x Amersham6711"), "{stdout}");
    assert!(stdout.contains("permanent implant"), "{stdout}");
    let rd = read_rtdose(&out).unwrap();
    assert_eq!(rd.summation, "PLAN");
    assert_eq!(rd.referenced_plan_uid.as_deref(), Some(plan_uid.as_str()));
    // a brachy plan is RT Plan Storage, not RT Ion Plan Storage
    assert_eq!(
        rd.referenced_plan_sop_class_uid.as_deref(),
        Some("1.2.840.10008.5.1.4.1.1.481.5")
    );
    let frame = read_brachy_plan(&plan).unwrap().frame_of_reference_uid;
    assert!(frame.is_some());
    assert_eq!(rd.frame_of_reference_uid, frame);
    // 1 mm grid over the seed ± 30 mm: 61 voxels per axis
    assert_eq!(rd.dose.grid().shape(), [61, 61, 61]);
    assert!(rd.dose.data().iter().all(|v| v.is_finite() && *v >= 0.0));
    let expected = 0.965 * I125_MEAN_LIFE_H / 100.0;
    for p in [[10.0, 0.0, 0.0], [0.0, -10.0, 0.0]] {
        let d = dose_at_voxel(&rd, p);
        assert!(
            (d / expected - 1.0).abs() < 0.01,
            "{d} Gy at {p:?}, expected {expected}"
        );
    }

    // a temporary implant of 100 h, and another model chosen by --model
    let plan = dir.join("RP_temporary.dcm");
    let duration_h = 100.0;
    single_seed_plan(
        &plan,
        "Amersham6711",
        [5.0, -3.0, 12.0],
        Technique::Temporary { duration_h },
        None,
    );
    run_ok(
        isodose()
            .args([
                "brachy",
                "--backend",
                "cpu",
                "--margin",
                "15",
                "--model",
                "Best2301",
                "--plan",
            ])
            .arg(&plan)
            .arg("--out")
            .arg(&out),
    );
    let rd = read_rtdose(&out).unwrap();
    assert_eq!(rd.dose.grid().shape(), [31, 31, 31]);
    let tau = I125_MEAN_LIFE_H;
    let expected = 1.018 * tau * (1.0 - (-duration_h / tau).exp()) / 100.0;
    let d = dose_at_voxel(&rd, [5.0, 7.0, 12.0]);
    assert!(
        (d / expected - 1.0).abs() < 0.01,
        "{d} Gy, expected {expected}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// On a CT: the CT's frame of reference, a grid inside it, and refused when
/// the plan's frame of reference is another.
#[test]
fn brachy_dose_on_the_ct_grid_and_frame_checks() {
    use isodose::dicom::read_rtdose;
    use isodose::tg43::Technique;
    let dir = temp_dir("brachy-ct");
    let ct = unpack_head_ct(&dir);
    let plan = dir.join("RP.dcm");
    // a voxel centre of the 2 mm grid centred in the CT (x: −149 + 2i,
    // y: −315.5 + 2j, z: −139 + 2k)
    let seed = [1.0, -169.5, -3.0];
    single_seed_plan(
        &plan,
        "Amersham6711",
        seed,
        Technique::Permanent,
        Some(HEAD_FRAME_UID),
    );
    let out = dir.join("RD.dcm");
    run_ok(
        isodose()
            .args(["brachy", "--backend", "cpu", "--spacing", "2", "--plan"])
            .arg(&plan)
            .arg("--ct")
            .arg(&ct)
            .arg("--out")
            .arg(&out),
    );
    let rd = read_rtdose(&out).unwrap();
    assert_eq!(rd.frame_of_reference_uid.as_deref(), Some(HEAD_FRAME_UID));
    assert_eq!(rd.dose.grid().shape(), [133, 150, 150]);
    let expected = 0.965 * I125_MEAN_LIFE_H / 100.0;
    let d = dose_at_voxel(&rd, [seed[0] - 10.0, seed[1], seed[2]]);
    assert!(
        (d / expected - 1.0).abs() < 0.01,
        "{d} Gy, expected {expected}"
    );

    let other = dir.join("RP_other_frame.dcm");
    single_seed_plan(
        &other,
        "Amersham6711",
        seed,
        Technique::Permanent,
        Some("1.2.3.4"),
    );
    let stderr = run_err(
        isodose()
            .args(["brachy", "--plan"])
            .arg(&other)
            .arg("--ct")
            .arg(&ct)
            .arg("--out")
            .arg(dir.join("RD2.dcm")),
    );
    for needle in [
        "RP_other_frame.dcm",
        "(0020,0052) FrameOfReferenceUID",
        "\"1.2.3.4\"",
        HEAD_FRAME_UID,
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }

    // the same check for an ion plan: the Eclipse plan with another frame of
    // reference UID (same length, last digit changed)
    let bytes = std::fs::read(test_data("dcpt_head_RN.dcm")).unwrap();
    let from = HEAD_FRAME_UID.as_bytes();
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    let mut patched = bytes.clone();
    let last = at + from.len() - 1;
    patched[last] = if patched[last] == b'1' { b'2' } else { b'1' };
    let moved = dir.join("RN_other_frame.dcm");
    std::fs::write(&moved, patched).unwrap();
    let stderr = run_err(
        isodose()
            .args(["proton", "--backend", "cpu", "--plan"])
            .arg(&moved)
            .arg("--ct")
            .arg(&ct)
            .arg("--out")
            .arg(dir.join("RD3.dcm")),
    );
    assert!(
        stderr.contains("RN_other_frame.dcm") && stderr.contains("FrameOfReferenceUID"),
        "{stderr}"
    );
    assert!(!dir.join("RD3.dcm").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn proton_and_brachy_user_errors_exit_1_with_a_message() {
    let dir = temp_dir("plan-errors");
    let absent = dir.join("absent_RP.dcm");
    for command in ["proton", "brachy"] {
        let mut cmd = isodose();
        cmd.arg(command).arg("--plan").arg(&absent);
        cmd.arg("--out").arg(dir.join("RD.dcm"));
        if command == "proton" {
            cmd.arg("--ct").arg(&dir);
        }
        let stderr = run_err(&mut cmd);
        assert!(stderr.contains("absent_RP.dcm"), "{command}: {stderr}");
    }
    let stderr = run_err(
        isodose()
            .args(["proton", "--spot-splitting", "4x4", "--plan"])
            .arg(test_data("dcpt_head_RN.dcm"))
            .arg("--ct")
            .arg(&dir)
            .arg("--out")
            .arg(dir.join("RD.dcm")),
    );
    assert!(
        stderr.contains("--spot-splitting") && stderr.contains("\"4x4\"") && stderr.contains("5x5"),
        "{stderr}"
    );
    let stderr = run_err(
        isodose()
            .args(["proton", "--lateral-cutoff", "0.7", "--plan"])
            .arg(test_data("dcpt_head_RN.dcm"))
            .arg("--ct")
            .arg(&dir)
            .arg("--out")
            .arg(dir.join("RD.dcm")),
    );
    assert!(
        stderr.contains("--lateral-cutoff") && stderr.contains("0.7"),
        "{stderr}"
    );
    // an ion plan given to brachy: the SOP class is named
    let stderr = run_err(
        isodose()
            .args(["brachy", "--plan"])
            .arg(test_data("dcpt_head_RN.dcm"))
            .arg("--out")
            .arg(dir.join("RD.dcm")),
    );
    assert!(stderr.contains("dcpt_head_RN.dcm"), "{stderr}");
    assert!(!dir.join("RD.dcm").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// A dose on a 2 mm grid: a 2 Gy Gaussian (σ = 15 mm) centred at
/// (`shift_x_mm`, 0, 0) on a 0.2 Gy floor, written as RTDOSE to `path`.
fn gaussian_rtdose(path: &Path, shift_x_mm: f64) {
    let grid = isodose::Grid3::new([30, 40, 50], [2.0; 3], [-49.0, -39.0, -29.0]).unwrap();
    let data = ndarray::Array3::from_shape_fn((30, 40, 50), |(k, j, i)| {
        let p = grid.index_to_world([k, j, i]);
        let r2 = (p.x - shift_x_mm).powi(2) + p.y * p.y + p.z * p.z;
        (0.2 + 1.8 * (-r2 / (2.0 * 15.0 * 15.0)).exp()) as f32
    });
    let dose = isodose::Volume::new(grid, data).unwrap();
    isodose::dicom::write_rtdose(path, &dose, &isodose::dicom::DoseContext::default()).unwrap();
}

#[test]
fn gamma_reports_table_json_png_and_gates_on_the_pass_rate() {
    let dir = temp_dir("gamma");
    let (reference, evaluated) = (dir.join("ref.dcm"), dir.join("eval.dcm"));
    gaussian_rtdose(&reference, 0.0);
    gaussian_rtdose(&evaluated, 1.5);
    // `isodose gamma ARGS REF EVAL`
    let gamma = |args: &[&str]| {
        let mut cmd = isodose();
        cmd.arg("gamma").args(args).arg(&reference).arg(&evaluated);
        cmd
    };
    // a pure 1.5 mm shift: every point agrees within 3 mm (γ ≤ 1.5/3 = 0.5)
    let json = run_ok(&mut gamma(&[
        "--dd",
        "3",
        "--dta",
        "3",
        "--backend",
        "cpu",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["pass_rate_percent"].as_f64(), Some(100.0), "{v}");
    let max_gamma = v["max_gamma"].as_f64().unwrap();
    assert!(max_gamma <= 0.5 + 0.01 && max_gamma > 0.3, "{v}");
    assert_eq!(
        v["backend"].as_str().map(|b| b.starts_with("cpu")),
        Some(true)
    );
    assert_eq!(v["local"].as_bool(), Some(false));
    assert_eq!(v["dta_mm"].as_f64(), Some(3.0));
    let evaluated_points = v["evaluated_points"].as_u64().unwrap();
    assert_eq!(v["passed_points"].as_u64(), Some(evaluated_points));
    assert_eq!(v["search"].as_str(), Some("continuous"));

    // the lattice search (pymedphys's): the same points, never a smaller γ
    // than the continuous search's (beyond 1e-3); an unknown search is an
    // error naming it
    let json = run_ok(&mut gamma(&[
        "--dd", "3", "--dta", "3", "--search", "lattice", "--json",
    ]));
    let c: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(c["search"].as_str(), Some("lattice"), "{c}");
    assert_eq!(c["evaluated_points"].as_u64(), Some(evaluated_points));
    assert_eq!(c["pass_rate_percent"].as_f64(), Some(100.0), "{c}");
    assert!(c["max_gamma"].as_f64().unwrap() >= max_gamma - 1e-3, "{c}");
    let bad = gamma(&["--search", "spiral"]).output().unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("gamma search") && err.contains("spiral"),
        "{err}"
    );

    // 0.5 mm / 0.5 %: the shift fails in the gradients; the table, the PNG
    // and exit code 2 under --require-pass 99
    let png = dir.join("gamma.png");
    let png_arg = png.to_str().unwrap();
    let result = gamma(&[
        "--dd",
        "0.5",
        "--dta",
        "0.5",
        "--require-pass",
        "99",
        "--png",
        png_arg,
    ])
    .output()
    .unwrap();
    let table = String::from_utf8_lossy(&result.stdout);
    assert_eq!(result.status.code(), Some(2), "{table}");
    for needle in [
        "pass rate",
        "0.5 % / 0.5 mm, global",
        "search         continuous, resolution 0.1 x DTA",
        "requirement    pass rate >= 99 %: FAIL",
    ] {
        assert!(table.contains(needle), "{needle:?} not in\n{table}");
    }
    let (w, h) = png_size(&png);
    assert!(w >= 600 && h >= 300, "{w} x {h}");
    // the same with --require-pass 0 passes
    run_ok(&mut gamma(&[
        "--dd",
        "0.5",
        "--dta",
        "0.5",
        "--require-pass",
        "0",
    ]));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn dvh_of_the_raystation_cube_on_its_tps_dose() {
    let dir = temp_dir("dvh");
    let png = dir.join("dvh.png");
    let json = run_ok(
        isodose()
            .args([
                "dvh",
                "--roi",
                "Cube101010",
                "--prescription",
                "2",
                "--json",
                "--dose",
            ])
            .arg(test_data("aptg_sobp_RD.dcm"))
            .arg("--struct")
            .arg(test_data("aptg_sobp_RS.dcm"))
            .arg("--png")
            .arg(&png),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rois = v["rois"].as_array().or_else(|| v.as_array()).unwrap();
    assert_eq!(rois.len(), 1, "{v}");
    let cube = &rois[0];
    assert_eq!(cube["name"].as_str(), Some("Cube101010"));
    // a 100 mm × 100 mm square on 21 planes 5 mm apart (PROVENANCE: ±50 mm);
    // each plane stands for a slab of one plane spacing (the DVH convention
    // of isodose::qa::structure, as in dicompyler-core): 21 × 5 mm × 100 cm²
    let cc = cube["volume_cc"].as_f64().unwrap();
    assert!((cc - 1050.0).abs() <= 0.01 * 1050.0, "{cc} cc");
    // a 2 Gy SOBP plan (RayStation dose maximum 1.98 Gy): the metrics are ordered
    let (d98, d50, d2, max) = (
        cube["d98_gy"].as_f64().unwrap(),
        cube["d50_gy"].as_f64().unwrap(),
        cube["d2_gy"].as_f64().unwrap(),
        cube["max_gy"].as_f64().unwrap(),
    );
    assert!(
        d98 <= d50 && d50 <= d2 && d2 <= max && max <= 1.99,
        "{cube}"
    );
    assert!(d50 > 1.8, "{cube}");
    assert!(png_size(&png).0 >= 600);
    std::fs::remove_dir_all(&dir).ok();
}

/// `isodose check` on RayStation's SOBP (phantom from its RTSTRUCT, spot
/// size from the plan, the generic machine's depth doses): shapes agree once
/// normalised; the absolute dose does not (the generic MU calibration is not
/// DCPT's), and a dose requirement says so with exit code 2.
#[test]
fn check_recomputes_the_raystation_sobp_and_gates_on_requirements() {
    let dir = temp_dir("check");
    let (plan, dose, rs) = (
        test_data("aptg_sobp_RP.dcm"),
        test_data("aptg_sobp_RD.dcm"),
        test_data("aptg_sobp_RS.dcm"),
    );
    let check = || {
        let mut cmd = isodose();
        cmd.arg("check")
            .arg("--plan")
            .arg(&plan)
            .arg("--dose")
            .arg(&dose)
            .arg("--struct")
            .arg(&rs)
            .args(["--spot-size", "plan", "--backend", "cpu"]);
        cmd
    };
    let png = dir.join("axis.png");
    let out = dir.join("RD_isodose.dcm");
    let json = run_ok(
        check()
            .args(["--normalise", "high-dose", "--require-pass", "80"])
            .args(["--require-r80", "1.0", "--json", "--png"])
            .arg(&png)
            .arg("--out")
            .arg(&out),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["pass"].as_bool(), Some(true), "{v}");
    assert_eq!(v["normalised"].as_bool(), Some(true), "{v}");
    let ratio = v["dose_ratio_high_dose"].as_f64().unwrap();
    assert!(ratio > 0.2 && ratio < 0.5, "{v}");
    let beam = &v["beams"][0];
    assert_eq!(beam["number"].as_i64(), Some(1), "{v}");
    // the isocentre at 102.5 mm depth, RayStation's R80 at 155.8 mm
    let r80 = beam["r80_delta_mm"]["reference"].as_f64().unwrap();
    assert!((r80 - 53.3).abs() < 0.5, "{v}");
    assert!(
        beam["r80_delta_mm"]["difference"].as_f64().unwrap().abs() < 1.0,
        "{v}"
    );
    let rates: Vec<f64> = v["gamma"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["pass_rate_percent"].as_f64().unwrap())
        .collect();
    assert!(
        rates.len() == 2 && rates[0] > 84.0 && rates[1] > 78.0,
        "{v}"
    );
    assert_eq!(v["materials"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(png_size(&png), (900, 600));
    // the written dose is isodose's own (absolute, before normalisation)
    let written = isodose::dicom::read_rtdose(&out).unwrap();
    let max = written.dose.data().iter().copied().fold(0.0f32, f32::max);
    assert!(
        f64::from(max) > 0.2 * 1.98 && f64::from(max) < 0.5 * 2.1,
        "{max}"
    );

    // requirements the recomputation does not meet: exit code 2, and the
    // report says which (the dose ratio is the absolute one, before the
    // normalisation)
    let result = check()
        .args(["--normalise", "high-dose", "--gamma", "3/3"])
        .args(["--require-r80", "0.1", "--require-dose", "5"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert_eq!(result.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("FAIL")
            && stdout.contains("dose ratio")
            && stdout.contains("R80 difference"),
        "{stdout}"
    );
    // no patient at all, or a bad criterion: a message and exit code 1
    let stderr = run_err(
        isodose()
            .arg("check")
            .arg("--plan")
            .arg(&plan)
            .arg("--dose")
            .arg(&dose),
    );
    assert!(
        stderr.contains("--ct") && stderr.contains("--struct"),
        "{stderr}"
    );
    let stderr = run_err(check().args(["--gamma", "3%"]));
    assert!(stderr.contains("DD/DTA"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `isodose commission` on MCsquare's "measured" IDDs and spot sizes
/// (dose-core/tests/data/commissioning/mcsquare_dn): a machine file that
/// isodose reads back, reproducing the measurements, and a report.
#[test]
fn commission_writes_a_machine_and_a_report() {
    let dir = temp_dir("commission");
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dose-core/tests/data/commissioning/mcsquare_dn");
    let machine = dir.join("machine.json");
    let report = dir.join("report");
    let mut cmd = isodose();
    cmd.arg("commission").arg("--idd");
    for e in [70, 100, 140, 180] {
        cmd.arg(data.join(format!("idd_{e}MeV.csv")));
    }
    let stdout = run_ok(
        cmd.arg("--spot-sizes")
            .arg(data.join("spot_sizes_core_in_air.csv"))
            .args(["--sad-x", "2234.8", "--sad-y", "1859.1", "--name", "DN"])
            .arg("--out")
            .arg(&machine)
            .arg("--report")
            .arg(&report),
    );
    assert!(stdout.contains("leave one out"), "{stdout}");
    let m = isodose::proton::ProtonMachine::from_file(&machine).unwrap();
    assert_eq!(m.name(), "DN");
    assert_eq!(m.energies().len(), 4);
    assert!((m.sad_x_mm() - 2234.8).abs() < 1e-9);
    // the machine's dose per MU at 140 MeV is the measured IDD (read here
    // independently of isodose's reader: the CSV's second column)
    let text = std::fs::read_to_string(data.join("idd_140MeV.csv")).unwrap();
    let row: Vec<f64> = text
        .lines()
        .nth(101)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let e = m.energy(140.0).unwrap();
    let per_mu = e.idd.at(row[0]) * e.protons_per_mu;
    assert!(
        (per_mu / row[1] - 1.0).abs() < 1e-9,
        "{per_mu} vs {}",
        row[1]
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["leave_one_out"].as_array().unwrap().len(), 2, "{json}");
    for png in ["idd.png", "leave_one_out.png", "spot_sizes.png"] {
        assert_eq!(png_size(&report.join(png)), (900, 600), "{png}");
    }
    // a file name without its energy: a message, exit code 1, no machine
    let other = dir.join("other.json");
    let stderr = run_err(
        isodose()
            .arg("commission")
            .arg("--idd")
            .arg(data.join("meta.json"))
            .arg("--spot-sizes")
            .arg(data.join("spot_sizes_core_in_air.csv"))
            .args(["--sad-x", "2000", "--sad-y", "2000", "--out"])
            .arg(&other),
    );
    assert!(
        stderr.contains("meta.json") && stderr.contains("MeV"),
        "{stderr}"
    );
    assert!(!other.exists());
    std::fs::remove_dir_all(&dir).ok();
}
