//! RTDOSE reading (a real RayStation export) and writing (round trips).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use isodose_core::{Grid3, Volume};
use isodose_dicom::rt_brachy_plan::RT_PLAN_STORAGE;
use isodose_dicom::{DoseContext, read_rtdose, write_rtdose};
use ndarray::Array3;

const RAYSTATION_RD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/aptg_sobp_RD.dcm");

/// The facts pydicom printed for this file (tests/data/README.md).
#[test]
fn reads_a_raystation_rtdose() {
    let rd = read_rtdose(RAYSTATION_RD).unwrap();
    let g = rd.dose.grid();
    assert_eq!(g.shape(), [107, 105, 105]);
    let s = g.spacing_mm();
    assert_eq!((s.x, s.y, s.z), (2.0, 2.0, 2.0));
    let o = g.origin_mm();
    assert_eq!((o.x, o.y, o.z), (-103.5, -103.5, -106.0));
    assert_eq!(
        (
            rd.units.as_str(),
            rd.dose_type.as_str(),
            rd.summation.as_str()
        ),
        ("GY", "PHYSICAL", "PLAN")
    );
    assert!((rd.scaling - 3.021923e-5).abs() < 1e-12);
    let max = rd.dose.data().iter().fold(0.0f32, |m, v| m.max(*v));
    assert!((max - 1.98).abs() < 0.005, "max {max}");
    assert_eq!(
        rd.referenced_plan_uid.as_deref(),
        Some("1.2.752.243.1.1.20221209141208883.9000.73261")
    );
    // ReferencedSOPClassUID of that item: RT Ion Plan Storage (byte scan of
    // the file); a PLAN dose references no beam
    assert_eq!(
        rd.referenced_plan_sop_class_uid.as_deref(),
        Some("1.2.840.10008.5.1.4.1.1.481.8")
    );
    assert_eq!(rd.referenced_beam_number, None);
    assert_eq!(
        rd.frame_of_reference_uid.as_deref(),
        Some("1.2.826.0.1.3680043.8.176.20111122133550298.11.1427180504")
    );
}

#[test]
fn write_then_read_round_trips_within_half_the_scaling() {
    let grid = Grid3::new([4, 5, 6], [1.5, 2.0, 2.5], [-10.0, 20.0, -5.0]).unwrap();
    let data = Array3::from_shape_fn((4, 5, 6), |(k, j, i)| {
        ((k * 30 + j * 6 + i) as f32).sin().abs() * 3.7
    });
    let dose = Volume::new(grid, data).unwrap();
    let dir = std::env::temp_dir().join(format!("isodose-rd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("RD.dcm");
    let context = DoseContext {
        referenced_plan_uid: Some("1.2.3.4".into()),
        patient_id: "PHANTOM".into(),
        ..DoseContext::default()
    };
    write_rtdose(&path, &dose, &context).unwrap();
    let back = read_rtdose(&path).unwrap();
    assert_eq!(back.dose.grid(), dose.grid());
    assert_eq!(back.referenced_plan_uid.as_deref(), Some("1.2.3.4"));
    let worst = dose
        .data()
        .iter()
        .zip(back.dose.data().iter())
        .fold(0.0f64, |m, (a, b)| {
            m.max((f64::from(*a) - f64::from(*b)).abs())
        });
    // f32 storage limits the comparison to ~2e-7 relative of 3.7 Gy
    assert!(
        worst <= back.scaling / 2.0 + 3.7 * 2e-7,
        "worst {worst}, scaling {}",
        back.scaling
    );
    // and the real file survives a rewrite
    let rd = read_rtdose(RAYSTATION_RD).unwrap();
    let path2 = dir.join("RD2.dcm");
    write_rtdose(&path2, &rd.dose, &DoseContext::default()).unwrap();
    let again = read_rtdose(&path2).unwrap();
    assert_eq!(again.dose.grid(), rd.dose.grid());
    let max = rd.dose.data().iter().fold(0.0f32, |m, v| m.max(*v));
    for (a, b) in rd.dose.data().iter().zip(again.dose.data().iter()) {
        assert!((a - b).abs() <= 1e-6 * max);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("isodose-rd-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // not DICOM at all
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a dicom file").unwrap();
    let err = read_rtdose(&text).unwrap_err().to_string();
    assert!(err.contains("notes.txt"), "{err}");
    // truncated pixel data
    let bytes = std::fs::read(RAYSTATION_RD).unwrap();
    let cut = dir.join("truncated.dcm");
    std::fs::write(&cut, &bytes[..bytes.len() - 10_000]).unwrap();
    let err = read_rtdose(&cut).unwrap_err().to_string();
    assert!(err.contains("truncated.dcm"), "{err}");
    // a missing file
    assert!(
        read_rtdose(dir.join("absent.dcm"))
            .unwrap_err()
            .to_string()
            .contains("absent.dcm")
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The ReferencedRTPlanSequence item names the plan's storage class: RT Ion
/// Plan Storage by default, RT Plan Storage for a brachytherapy plan; a BEAM
/// dose carries its beam in ReferencedFractionGroupSequence >
/// ReferencedBeamSequence (PS3.3 C.8.8.3).
#[test]
fn plan_reference_class_beam_and_comment_are_written() {
    let grid = Grid3::new([2, 3, 4], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0]).unwrap();
    let dose = Volume::new(grid, Array3::from_elem((2, 3, 4), 1.5f32)).unwrap();
    let dir = std::env::temp_dir().join(format!("isodose-rd-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("RD.dcm");

    let ion = DoseContext {
        referenced_plan_uid: Some("1.2.3.4".into()),
        ..DoseContext::default()
    };
    write_rtdose(&path, &dose, &ion).unwrap();
    let back = read_rtdose(&path).unwrap();
    assert_eq!(
        back.referenced_plan_sop_class_uid.as_deref(),
        Some("1.2.840.10008.5.1.4.1.1.481.8")
    );
    assert_eq!(
        (back.summation.as_str(), back.referenced_beam_number),
        ("PLAN", None)
    );

    let brachy = DoseContext {
        referenced_plan_uid: Some("1.2.3.5".into()),
        referenced_plan_sop_class_uid: Some(RT_PLAN_STORAGE.into()),
        ..DoseContext::default()
    };
    write_rtdose(&path, &dose, &brachy).unwrap();
    let back = read_rtdose(&path).unwrap();
    assert_eq!(back.referenced_plan_uid.as_deref(), Some("1.2.3.5"));
    assert_eq!(
        back.referenced_plan_sop_class_uid.as_deref(),
        Some("1.2.840.10008.5.1.4.1.1.481.5")
    );

    let beam = DoseContext {
        referenced_plan_uid: Some("1.2.3.4".into()),
        referenced_beam_number: Some(3),
        referenced_fraction_group_number: Some(1),
        summation: "BEAM".into(),
        comment: "per fraction".into(),
        ..DoseContext::default()
    };
    write_rtdose(&path, &dose, &beam).unwrap();
    let back = read_rtdose(&path).unwrap();
    assert_eq!(
        (back.summation.as_str(), back.referenced_beam_number),
        ("BEAM", Some(3))
    );
    // DoseComment (3004,0006) is in the file
    let bytes = std::fs::read(&path).unwrap();
    let tag = [0x04, 0x30, 0x06, 0x00, b'L', b'O'];
    let at = bytes.windows(6).position(|w| w == tag).unwrap();
    assert_eq!(&bytes[at + 8..at + 8 + 12], b"per fraction");
    std::fs::remove_dir_all(&dir).ok();
}

/// GridFrameOffsetVector relative to the first frame (RayStation) and
/// absolute (the z of each frame, as some systems write it) give the same
/// grid; offsets that are not increasing and equally spaced are refused
/// with the tag named.
#[test]
fn relative_and_absolute_frame_offsets_give_the_same_grid() {
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, VR};
    use dicom_dictionary_std::tags;
    let relative = read_rtdose(RAYSTATION_RD).unwrap();
    let g = relative.dose.grid();
    let (nz, z0, dz) = (g.nz(), g.origin_mm().z, g.spacing_mm().z);
    let dir = std::env::temp_dir().join(format!("isodose-gfov-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rewrite = |name: &str, offsets: Vec<f64>| {
        let mut obj = dicom_object::open_file(RAYSTATION_RD).unwrap();
        let text: Vec<String> = offsets.iter().map(|o| format!("{o}")).collect();
        obj.put(DataElement::new(
            tags::GRID_FRAME_OFFSET_VECTOR,
            VR::DS,
            PrimitiveValue::from(text.join("\\").as_str()),
        ));
        let path = dir.join(name);
        obj.write_to_file(&path).unwrap();
        path
    };
    let absolute = rewrite(
        "absolute.dcm",
        (0..nz).map(|k| z0 + k as f64 * dz).collect(),
    );
    assert!(z0 != 0.0);
    let abs = read_rtdose(&absolute).unwrap();
    assert_eq!(abs.dose.grid(), g);
    assert_eq!(abs.dose.data(), relative.dose.data());
    let decreasing = rewrite(
        "decreasing.dcm",
        (0..nz).map(|k| -(k as f64) * dz).collect(),
    );
    let err = read_rtdose(&decreasing).unwrap_err().to_string();
    assert!(
        err.contains("decreasing.dcm")
            && err.contains("(3004,000C)")
            && err.contains("equally spaced"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A compressed transfer syntax (JPEG Baseline in the file meta) is refused
/// by the pixel readers (RTDOSE here; the CT reader shares the check) with
/// the file and the reason named.
#[test]
fn compressed_transfer_syntaxes_are_refused() {
    let dir = std::env::temp_dir().join(format!("isodose-ts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jpeg.dcm");
    let mut obj = dicom_object::open_file(RAYSTATION_RD).unwrap();
    obj.update_meta(|meta| {
        meta.transfer_syntax = "1.2.840.10008.1.2.4.50\0".to_owned();
    });
    obj.write_to_file(&path).unwrap();
    let err = read_rtdose(&path).unwrap_err().to_string();
    assert!(
        err.contains("jpeg.dcm") && err.contains("unsupported transfer syntax"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
