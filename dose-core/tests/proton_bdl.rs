//! MCsquare beam data libraries (BDL) read as proton machines: the stock
//! OpenTPS libraries (tests/data/bdl, Apache-2.0) and the single-Gaussian
//! library the stored Monte Carlo cases ran with; the machine's range in
//! water against MCsquare's own water dose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use isodose_core::proton::ProtonMachine;
use serde_json::Value;

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

fn mc_meta(case: &str) -> Value {
    let text = std::fs::read_to_string(data(&format!("mcsquare/{case}/meta.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn stock_libraries_read_with_every_energy_and_their_range_shifter() {
    for (file, wet, rows) in [
        ("BDL_default_DN_RangeShifter.txt", 74.1, 27),
        ("BDL_default_UN_RangeShifter.txt", 73.1, 26),
    ] {
        let m = ProtonMachine::from_bdl_file(data(&format!("bdl/{file}"))).unwrap();
        // every row (the DN header says 26 energies over 27 rows)
        assert_eq!(m.energies().len(), rows, "{file}");
        assert_eq!((m.sad_x_mm(), m.sad_y_mm()), (2234.8, 1859.1));
        let rs = m.range_shifter("rs_block").unwrap();
        assert_eq!(rs.water_equivalent_thickness_mm, wet);
        assert_eq!(rs.material, "pmma");
        // the range follows the mean energy: R80 rises with energy and sits
        // near the CSDA range of the mean energy (150.559 MeV: 158.9 mm
        // by PSTAR; R80 is about 0.1-0.5 mm short of it for these spreads)
        let ranges: Vec<f64> = m.energies().iter().map(|e| e.r80_mm).collect();
        assert!(ranges.windows(2).all(|w| w[1] > w[0]), "{ranges:?}");
    }
    let m = ProtonMachine::from_bdl_file(data("bdl/BDL_default_DN_RangeShifter.txt")).unwrap();
    let e150 = m.energy(150.0).unwrap();
    assert!((e150.r80_mm - 158.6).abs() < 0.6, "R80 {}", e150.r80_mm);
    assert_eq!(e150.protons_per_mu, 115_140_000.0);
    // the second in-air Gaussian (weight 0.041) joins the nuclear halo:
    // h' = w2 + w1 h_nuc, h_nuc the physics halo of the same mean energy
    let halo = e150.halo.as_ref().unwrap();
    let generic = isodose_core::proton::generic::generic_energy_model(150.559).unwrap();
    let nuclear = generic.halo.as_ref().unwrap();
    for z in [0.0, 80.0, 150.0] {
        let w = halo.weight.at(z);
        let expected = 0.041 + 0.959 * nuclear.weight.at(z);
        assert!(
            (w - expected).abs() < 2e-3,
            "halo weight at {z} mm: {w} vs {expected}"
        );
    }
    // its extra sigma is that of the wide Gaussian at the isocentre (about
    // 20 mm for this row) mixed with the nuclear halo's
    let extra0 = halo.extra_sigma_mm.at(0.0);
    assert!((15.0..30.0).contains(&extra0), "{extra0}");
}

/// The simplified library of the MC cases was built (scripts/mcsquare,
/// make_bdl) so that σ at the isocentre equals the stock library's mean of
/// x and y, rounded to 3 decimals: 3.671 mm at 150 MeV, 5.217 mm at 100
/// MeV (OpenTPS's `readBDL` of the same file gives these too).
#[test]
fn optics_are_carried_from_the_nozzle_exit_to_the_isocentre() {
    let meta = mc_meta("water_150");
    let m = ProtonMachine::from_bdl_str(meta["bdl_txt"].as_str().unwrap(), "water_150").unwrap();
    for (e, sigma) in [(150.0, 3.671), (100.0, 5.217)] {
        let o = m.energy(e).unwrap().optics_x;
        assert!((o.sigma_mm - sigma).abs() < 2e-3, "{e} MeV: {}", o.sigma_mm);
        assert_eq!(o, m.energy(e).unwrap().optics_y);
        // diverging beyond the nozzle: σ grows downstream of the isocentre
        assert!(o.sigma_sq_at(200.0) > o.sigma_sq_at(0.0));
    }
    // single Gaussian: the halo is the nuclear one only, the generic
    // machine's at the same energy
    let halo = m.energy(150.0).unwrap().halo.as_ref().unwrap();
    let generic = isodose_core::proton::generic::generic_energy_model(150.559).unwrap();
    let nuclear = generic.halo.as_ref().unwrap();
    for z in [0.0, 50.0, 150.0] {
        assert!(
            (halo.weight.at(z) - nuclear.weight.at(z)).abs() < 1e-3,
            "{z}"
        );
    }
}

/// R80 of the BDL machine at 150 MeV against MCsquare's water dose of the
/// same library (tests/data/mcsquare/water_150: the dose integrated over
/// the whole 100 x 102 mm lateral extent).
#[test]
fn range_in_water_agrees_with_mcsquare() {
    let meta = mc_meta("water_150");
    let m = ProtonMachine::from_bdl_str(meta["bdl_txt"].as_str().unwrap(), "water_150").unwrap();
    let b = std::fs::read(data("mcsquare/water_150/dose_zsum.f32")).unwrap();
    let zsum: Vec<f32> = b
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (ny, nx) = (250, 50);
    let idd: Vec<f64> = (0..ny)
        .map(|j| (0..nx).map(|i| f64::from(zsum[j * nx + i])).sum())
        .collect();
    let (jmax, max) = idd
        .iter()
        .enumerate()
        .fold((0, 0.0), |a, (j, v)| if *v > a.1 { (j, *v) } else { a });
    let j = (jmax..ny - 1).find(|&j| idd[j + 1] < 0.8 * max).unwrap();
    let t = (idd[j] - 0.8 * max) / (idd[j] - idd[j + 1]);
    let mc_r80 = j as f64 + 0.5 + t; // voxel centres at 0.5 + j mm
    let r80 = m.energy(150.0).unwrap().r80_mm;
    println!("R80 150 MeV: MCsquare {mc_r80:.2} mm, isodose BDL machine {r80:.2} mm");
    assert!((r80 - mc_r80).abs() < 0.5, "{r80} vs {mc_r80}");
}

#[test]
fn bad_libraries_are_errors_naming_the_problem() {
    let good = std::fs::read_to_string(data("bdl/BDL_default_DN_RangeShifter.txt")).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("SMX to Isocenter distance", "SMX"),
            "SMX to Isocenter distance",
        ),
        (
            good.replace("RS_material = 64", "RS_material = 12"),
            "material 12",
        ),
        (
            good.replace("150.559", "150.5x9"),
            "\"150.5x9\" is not a number",
        ),
        (
            good.replace(" \t 0.959000 \t 3.077055", " \t 0.559000 \t 3.077055"),
            "Weight1 + Weight2",
        ),
        (good.replace("\t -0.194537", ""), "17 columns"),
        (
            good.replace("150.000 \t 150.559", "150.000 \t -150.559"),
            "MeanEnergy",
        ),
        (String::new(), "Nozzle exit to Isocenter distance"),
    ];
    for (text, expected) in cases {
        let e = ProtonMachine::from_bdl_str(&text, "t.txt")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(expected) && e.contains("t.txt"),
            "{expected}: {e}"
        );
    }
}
