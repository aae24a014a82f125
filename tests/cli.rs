//! End-to-end runs of the `isodose` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
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
    let result = isodose()
        .arg("info")
        .arg(data.join("aptg_sobp_RD.dcm"))
        .arg(data.join("dcpt_head_RN.dcm"))
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
    // a file that is neither: non-zero exit, the error names it
    let result = isodose()
        .arg("info")
        .arg(data.join("README.md"))
        .output()
        .unwrap();
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stdout).contains("README.md: error"));
}
