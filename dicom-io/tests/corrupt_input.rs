//! Corrupted real files never panic a reader: truncations and random byte
//! changes of every DICOM file in tests/data give `Ok` or a `DicomIoError`
//! (whose message names the file), never a panic. A property test over
//! random mutations, run in CI; `scripts/fuzz.sh` runs coverage-guided
//! fuzzing of the same readers for longer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use isodose_dicom::{read_brachy_plan, read_ion_plan, read_rtdose, read_rtstruct};
use proptest::prelude::*;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

const FILES: [&str; 5] = [
    "aptg_sobp_RD.dcm",
    "aptg_sobp_RP.dcm",
    "aptg_sobp_RS.dcm",
    "aptg_ramp_RP.dcm",
    "dcpt_head_RN.dcm",
];

/// Runs every reader on `bytes` written to a file; returns the panics.
fn panics(bytes: &[u8], tag: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("isodose-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}.dcm"));
    std::fs::write(&path, bytes).unwrap();
    let mut out = Vec::new();
    let mut check = |name: &str, f: &dyn Fn(&Path) -> Option<String>| {
        match catch_unwind(AssertUnwindSafe(|| f(&path))) {
            Err(_) => out.push(format!("{name} panicked on {tag}")),
            // an error must name the file
            Ok(Some(msg)) if !msg.contains(&*path.to_string_lossy()) => {
                out.push(format!(
                    "{name} error without the file name on {tag}: {msg}"
                ));
            }
            Ok(_) => {}
        }
    };
    check("read_rtdose", &|p| {
        read_rtdose(p).err().map(|e| e.to_string())
    });
    check("read_ion_plan", &|p| {
        read_ion_plan(p).err().map(|e| e.to_string())
    });
    check("read_rtstruct", &|p| {
        read_rtstruct(p).err().map(|e| e.to_string())
    });
    check("read_brachy_plan", &|p| {
        read_brachy_plan(p).err().map(|e| e.to_string())
    });
    let _ = std::fs::remove_file(&path);
    out
}

#[test]
fn truncated_files_are_errors_not_panics() {
    for name in FILES {
        let bytes = std::fs::read(data(name)).unwrap();
        let n = bytes.len();
        // the preamble, the meta header, inside the data set, one byte short
        for cut in [0, 100, 131, 132, 200, 400, n / 3, n / 2, n - 1] {
            let p = panics(&bytes[..cut.min(n)], &format!("{name}-cut{cut}"));
            assert!(p.is_empty(), "{p:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_byte_changes_are_errors_not_panics(
        file in 0usize..FILES.len(),
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = std::fs::read(data(FILES[file])).unwrap();
        // most changes inside the first 4 KiB, where tags, lengths and the
        // meta header are
        for (at, value) in &changes {
            let n = bytes.len().min(4096);
            let i = at.index(n);
            bytes[i] = *value;
        }
        if let Some(c) = cut {
            let n = bytes.len();
            bytes.truncate(c.index(n));
        }
        let p = panics(&bytes, &format!("{}-mut", FILES[file]));
        prop_assert!(p.is_empty(), "{:?}", p);
    }
}
