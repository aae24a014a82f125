//! Fuzz target: `isodose_dicom::read_brachy_plan` on arbitrary bytes must return Ok or an
//! error, never panic. The readers take paths, so the input goes through a
//! per-process temporary file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("isodose-fuzz-rt_brachy_plan-{}.dcm", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = isodose_dicom::read_brachy_plan(&path);
    }
});
