//! RT Ion Plans from RayStation and Eclipse against the facts pydicom read
//! from the same files (tests/data/README.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use isodose_dicom::read_ion_plan;

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn raystation_sobp_plan() {
    let p = read_ion_plan(data("aptg_sobp_RP.dcm")).unwrap();
    assert_eq!(p.fractions, 1);
    assert_eq!(p.beams.len(), 1);
    let b = &p.beams[0];
    assert_eq!(
        (
            b.name.as_str(),
            b.machine.as_str(),
            b.radiation_type.as_str()
        ),
        ("b1", "TR3", "PROTON")
    );
    assert_eq!(
        (b.gantry_deg, b.couch_deg, b.isocenter_mm),
        (0.0, 0.0, [0.0; 3])
    );
    assert_eq!(b.virtual_source_axis_distances_mm, Some([2000.0, 2560.0]));
    assert_eq!(b.layers.len(), 34);
    assert_eq!(b.spot_count(), 9218);
    let (lo, hi) = b.layers.iter().fold((f64::MAX, f64::MIN), |(a, c), l| {
        (a.min(l.energy_mev), c.max(l.energy_mev))
    });
    assert_eq!((lo, hi), (78.5, 149.9));
    assert!((b.meterset_mu - 497.3384).abs() < 1e-6);
    // spot MU add up to the beam meterset
    assert!((b.total_mu() - 497.3384).abs() < 1e-3, "{}", b.total_mu());
    assert_eq!(b.layers[0].snout_position_mm, Some(200.0));
    assert!(b.layers.iter().all(|l| l.range_shifters.is_empty()));
    assert_eq!(
        p.referenced_structure_set_uid.as_deref(),
        Some("1.2.752.243.1.1.20221209135909128.2180.16718")
    );
}

#[test]
fn raystation_two_opposed_fields() {
    let p = read_ion_plan(data("aptg_ramp_RP.dcm")).unwrap();
    assert_eq!(p.beams.len(), 2);
    for (b, gantry) in p.beams.iter().zip([90.0, 270.0]) {
        assert_eq!(b.gantry_deg, gantry);
        assert_eq!(b.layers.len(), 22);
        assert_eq!(b.spot_count(), 9218);
        assert!((b.meterset_mu - 39294.15).abs() < 1e-6);
        assert!((b.total_mu() - 39294.15).abs() / 39294.15 < 1e-5);
        assert_eq!(b.layers[0].snout_position_mm, Some(421.0));
    }
}

#[test]
fn eclipse_plan_with_range_shifters() {
    let p = read_ion_plan(data("dcpt_head_RN.dcm")).unwrap();
    assert_eq!(p.fractions, 5);
    let expected = [
        ("Field 1", 24, 659, 5199.03, 232.5, 275.5),
        ("Field 2", 19, 624, 5532.59, 250.6, 293.6),
        ("Field 3", 19, 624, 4726.13, 209.2, 252.2),
    ];
    for (b, (name, layers, spots, mu, snout, rs_distance)) in p.beams.iter().zip(expected) {
        assert_eq!(b.name, name);
        assert_eq!(b.layers.len(), layers, "{name}");
        assert_eq!(b.spot_count(), spots, "{name}");
        // metersets as printed (6 significant digits)
        assert!(
            (b.meterset_mu - mu).abs() < 0.01,
            "{name}: {}",
            b.meterset_mu
        );
        assert!(
            (b.total_mu() - b.meterset_mu).abs() / mu < 1e-5,
            "{name}: {}",
            b.total_mu()
        );
        // PROVENANCE prints the isocentre rounded to 6 significant digits
        for (a, e) in b.isocenter_mm.iter().zip([0.0, -170.159, -2.12195]) {
            assert!((a - e).abs() < 1e-3, "{:?}", b.isocenter_mm);
        }
        let l = &b.layers[0];
        // PROVENANCE prints these rounded (the file stores FL values)
        assert!(
            (l.snout_position_mm.unwrap() - snout).abs() < 0.05,
            "{:?}",
            l.snout_position_mm
        );
        assert_eq!(l.range_shifters.len(), 1);
        let rs = &l.range_shifters[0];
        assert_eq!((rs.id.as_str(), rs.setting.as_str()), ("RS_5CM", "IN"));
        assert!((rs.water_equivalent_thickness_mm.unwrap() - 57.0).abs() < 0.05);
        assert!((rs.isocenter_distance_mm.unwrap() - rs_distance).abs() < 0.05);
    }
}

#[test]
fn wrong_files_are_clear_errors() {
    let err = read_ion_plan(data("aptg_sobp_RD.dcm"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("aptg_sobp_RD.dcm") && err.contains("SOPClassUID"),
        "{err}"
    );
    assert!(
        read_ion_plan(data("absent.dcm"))
            .unwrap_err()
            .to_string()
            .contains("absent.dcm")
    );
}
