//! CT series reading on a real scanner export (the DCPT head phantom,
//! Siemens syngo.via) and on broken copies of it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use isodose_dicom::read_ct;

/// Unpacks the phantom's CT into a fresh temporary folder; returns `CT/`.
fn unpack(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("isodose-ct-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/CT.HeadPhantom_177_slices.tar.gz");
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(archive).unwrap());
    tar::Archive::new(gz).unpack(&dir).unwrap();
    dir.join("CT")
}

#[test]
fn reads_the_head_phantom_series() {
    let folder = unpack("ok");
    // a non-DICOM file in the folder is passed over
    std::fs::write(folder.join("README.txt"), "not DICOM").unwrap();
    let ct = read_ct(&folder, None).unwrap();
    let g = ct.grid();
    assert_eq!(g.shape(), [177, 512, 512]);
    let s = g.spacing_mm();
    assert!((s.x - 0.5859375).abs() < 1e-9 && (s.y - 0.5859375).abs() < 1e-9);
    assert!((s.z - 1.5).abs() < 1e-6);
    let o = g.origin_mm();
    assert!(
        (o.x + 149.707).abs() < 1e-3 && (o.y + 316.207).abs() < 1e-3 && (o.z + 139.0).abs() < 1e-6,
        "{o:?}"
    );
    let (min, max) = ct
        .data()
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    assert_eq!((min, max), (-1000.0, 2165.0));
    std::fs::remove_dir_all(folder.parent().unwrap()).ok();
}

#[test]
fn missing_slices_and_mixed_series_are_errors_naming_files() {
    let folder = unpack("gap");
    std::fs::remove_file(folder.join("CT.HeadPhantom.90.dcm")).unwrap();
    let err = read_ct(&folder, None).unwrap_err().to_string();
    assert!(
        err.contains("not uniform") && err.contains("CT.HeadPhantom.89.dcm"),
        "{err}"
    );
    let err = read_ct(&folder, Some("1.2.3")).unwrap_err().to_string();
    assert!(err.contains("no CT series 1.2.3"), "{err}");
    let empty = folder.parent().unwrap().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(
        read_ct(&empty, None)
            .unwrap_err()
            .to_string()
            .contains("no CT image")
    );
    assert!(read_ct(empty.join("absent"), None).is_err());
    std::fs::remove_dir_all(folder.parent().unwrap()).ok();
}

/// Rewrites one slice of `folder` with `tag` set to `value`.
fn edit(folder: &Path, slice: usize, tag: dicom_core::Tag, vr: dicom_core::VR, value: &str) {
    let path = folder.join(format!("CT.HeadPhantom.{slice}.dcm"));
    let mut obj = dicom_object::open_file(&path).unwrap();
    obj.put(dicom_core::DataElement::new(
        tag,
        vr,
        dicom_core::value::PrimitiveValue::from(value),
    ));
    obj.write_to_file(&path).unwrap();
}

#[test]
fn several_series_tilt_and_mixed_sizes_are_errors_naming_files() {
    use dicom_core::VR;
    use dicom_dictionary_std::tags;
    let folder = unpack("edits");
    let series = "1.3.12.2.1107.5.8.15.131726.30000023101214432072700003223";
    // a second series: an error listing both, unless one is chosen
    edit(
        &folder,
        30,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        "1.2.826.0.1.99",
    );
    let err = read_ct(&folder, None).unwrap_err().to_string();
    assert!(
        err.contains("2 CT series") && err.contains(series) && err.contains("1.2.826.0.1.99"),
        "{err}"
    );
    let one = read_ct(&folder, Some("1.2.826.0.1.99")).unwrap();
    assert_eq!(one.grid().shape(), [1, 512, 512]);
    edit(&folder, 30, tags::SERIES_INSTANCE_UID, VR::UI, series);
    assert_eq!(read_ct(&folder, None).unwrap().grid().nz(), 177);
    // a tilted gantry (5° about x): an error naming the file and the tag
    edit(
        &folder,
        40,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        "1\\0\\0\\0\\0.996195\\0.087156",
    );
    let err = read_ct(&folder, None).unwrap_err().to_string();
    assert!(
        err.contains("CT.HeadPhantom.40.dcm")
            && err.contains("(0020,0037)")
            && err.contains("tilt"),
        "{err}"
    );
    edit(
        &folder,
        40,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        "1\\0\\0\\0\\1\\0",
    );
    // a slice of another pixel spacing: an error naming both files
    edit(&folder, 50, tags::PIXEL_SPACING, VR::DS, "0.6\\0.6");
    let err = read_ct(&folder, None).unwrap_err().to_string();
    assert!(
        err.contains("CT.HeadPhantom.50.dcm") && err.contains("0.6"),
        "{err}"
    );
    std::fs::remove_dir_all(folder.parent().unwrap()).ok();
}
