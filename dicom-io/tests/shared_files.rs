//! The remaining real files of the shared DICOM collection (copied into
//! tests/data with attribution, see its README): the RayStation 14 ramped
//! two-field set (RTSTRUCT, plan-sum and per-beam RTDOSE) and the Eclipse
//! head-phantom RTSTRUCT, checked against the facts pydicom printed when they
//! were collected (shared/dicom/PROVENANCE.md); and fractional occupancy of
//! RTSTRUCT ROIs against their known geometry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use isodose_core::Grid3;
use isodose_dicom::{read_rtdose, read_rtstruct};

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn summary(path: &str) -> Vec<(i64, String, Option<String>, usize)> {
    read_rtstruct(data(path))
        .unwrap()
        .into_iter()
        .map(|r| (r.number, r.name, r.interpreted_type, r.contours.len()))
        .collect()
}

fn owned(rows: &[(i64, &str, Option<&str>, usize)]) -> Vec<(i64, String, Option<String>, usize)> {
    rows.iter()
        .map(|(n, name, t, c)| (*n, name.to_string(), t.map(str::to_owned), *c))
        .collect()
}

#[test]
fn raystation_14_ramp_structure_set() {
    assert_eq!(
        summary("aptg_ramp_RS.dcm"),
        owned(&[
            (1, "Cube101010", Some("PTV"), 21),
            (2, "Slope101004", Some("PTV"), 21),
            (3, "External", Some("EXTERNAL"), 41),
            (4, "PMMA", Some("ORGAN"), 41),
            (5, "LoPo", Some("MARKER"), 1),
        ])
    );
    // the same 100 mm cube as the RayStation 12 set: 1000 cm³ on a 2 mm grid
    let rois = read_rtstruct(data("aptg_ramp_RS.dcm")).unwrap();
    let grid = Grid3::new([60, 60, 60], [2.0; 3], [-59.0; 3]).unwrap();
    let cube = rois.iter().find(|r| r.name == "Cube101010").unwrap();
    let cc = cube.mask(&grid).iter().filter(|m| **m).count() as f64 * 8.0 / 1000.0;
    assert_eq!(cc, 1000.0);
}

#[test]
fn raystation_14_ramp_doses_plan_and_beams() {
    let plan = read_rtdose(data("aptg_ramp_RD_plan.dcm")).unwrap();
    let b1 = read_rtdose(data("aptg_ramp_RD_beam1.dcm")).unwrap();
    let b2 = read_rtdose(data("aptg_ramp_RD_beam2.dcm")).unwrap();
    const PLAN_UID: &str = "1.2.752.243.1.1.20250523160113465.2000.31856";
    for (rd, summation, beam, scaling, max) in [
        (&plan, "PLAN", None, 3.372591e-05, 2.21),
        (&b1, "BEAM", Some(1), 2.979206e-05, 1.952),
        (&b2, "BEAM", Some(2), 2.99978e-05, 1.966),
    ] {
        let g = rd.dose.grid();
        assert_eq!(g.shape(), [110, 107, 107]);
        let (sp, o) = (g.spacing_mm(), g.origin_mm());
        assert_eq!([sp.x, sp.y, sp.z], [2.0; 3]);
        assert_eq!([o.x, o.y, o.z], [-104.5, -105.5, -108.5]);
        assert_eq!(
            (
                rd.units.as_str(),
                rd.dose_type.as_str(),
                rd.summation.as_str()
            ),
            ("GY", "EFFECTIVE", summation)
        );
        assert_eq!(rd.referenced_plan_uid.as_deref(), Some(PLAN_UID));
        assert_eq!(rd.referenced_beam_number, beam);
        assert!((rd.scaling - scaling).abs() <= 1e-6 * scaling);
        let m = rd.dose.data().iter().fold(0.0f32, |a, v| a.max(*v));
        // PROVENANCE prints the maximum to 3 or 4 significant digits
        assert!((f64::from(m) - max).abs() < 0.0015, "max {m} vs {max}");
    }
    // the two fields add up to the plan sum within the three files' rounding
    // (each stored as integers × its own DoseGridScaling)
    let tol = (plan.scaling + b1.scaling + b2.scaling) / 2.0 + 1e-6;
    let worst = plan
        .dose
        .data()
        .iter()
        .zip(b1.dose.data().iter().zip(b2.dose.data().iter()))
        .map(|(p, (a, b))| (f64::from(*a) + f64::from(*b) - f64::from(*p)).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= tol,
        "beam sum differs from the plan dose by {worst} Gy (tolerance {tol})"
    );
}

#[test]
fn eclipse_head_phantom_structure_set() {
    assert_eq!(
        summary("dcpt_head_RS.dcm"),
        owned(&[
            (1, "BODY", Some("EXTERNAL"), 177),
            (2, "M1", Some("AVOIDANCE"), 2),
            (3, "M2", Some("AVOIDANCE"), 2),
            (4, "M3", Some("AVOIDANCE"), 2),
            (5, "M4", Some("AVOIDANCE"), 2),
            (6, "M5", Some("AVOIDANCE"), 2),
            (7, "M6", Some("AVOIDANCE"), 2),
            (8, "M7", None, 2),
            (9, "BrainStem", Some("ORGAN"), 44),
            (10, "CTV", Some("CTV"), 42),
            (11, "Beekley", Some("UNSUPPORTED"), 4),
        ])
    );
    // on a 2 mm grid over the CT's extent (x, y from −149.7 / −316.2 mm,
    // 300 mm; z −139 … 125 mm): the CTV and the brain stem lie inside the body
    let rois = read_rtstruct(data("dcpt_head_RS.dcm")).unwrap();
    let grid = Grid3::covering([-149.7, -316.2, -139.0], [150.0, -16.5, 125.0], 2.0).unwrap();
    let mask = |name: &str| rois.iter().find(|r| r.name == name).unwrap().mask(&grid);
    let body = mask("BODY");
    for organ in ["CTV", "BrainStem"] {
        let m = mask(organ);
        let n = m.iter().filter(|v| **v).count();
        assert!(n > 100, "{organ}: {n} voxels");
        let outside = m
            .iter()
            .zip(body.iter())
            .filter(|(o, b)| **o && !**b)
            .count();
        assert_eq!(outside, 0, "{organ}: {outside} voxels outside BODY");
    }
}

#[test]
fn occupancy_gives_partial_volumes_that_converge_to_the_cube() {
    // a 7 mm grid whose voxels the 100 mm cube's faces cut at fractions:
    // voxel centres inside miss the partial volumes, sub-sampling does not
    let rois = read_rtstruct(data("aptg_sobp_RS.dcm")).unwrap();
    let cube = rois.iter().find(|r| r.name == "Cube101010").unwrap();
    let grid = Grid3::new([18, 18, 18], [7.0; 3], [-58.0, -57.0, -56.5]).unwrap();
    let voxel_cc = 0.343;
    let mask_cc = cube.mask(&grid).iter().filter(|m| **m).count() as f64 * voxel_cc;
    let mut errors = Vec::new();
    for n in [1usize, 4, 8, 16] {
        let occ = cube.occupancy(&grid, n);
        assert!(occ.iter().all(|v| (0.0..=1.0).contains(v)));
        let cc = occ.iter().map(|v| f64::from(*v)).sum::<f64>() * voxel_cc;
        if n == 1 {
            assert_eq!(cc, mask_cc);
        }
        errors.push((cc - 1000.0).abs() / 1000.0);
    }
    // 1 sample per voxel is off by several percent here; 16³ within 0.5 %
    assert!(errors[0] > 0.02, "{errors:?}");
    assert!(errors[3] < 0.005, "{errors:?}");
    assert!(
        errors[2] < errors[0] && errors[3] <= errors[1],
        "{errors:?}"
    );
}
