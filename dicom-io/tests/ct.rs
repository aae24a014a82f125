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
