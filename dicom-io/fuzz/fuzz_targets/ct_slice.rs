//! Fuzz target: `isodose_dicom::read_ct` on a folder holding one arbitrary
//! file must return Ok or an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("isodose-fuzz-ct-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_ok() && std::fs::write(dir.join("CT.0.dcm"), data).is_ok() {
        let _ = isodose_dicom::read_ct(&dir, None);
    }
});
