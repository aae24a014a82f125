//! The demo phantom of `isodose demo` (a soft-tissue box with a prostate,
//! urethra and rectum) and its seed implant, for notebooks and examples; and
//! the hook of the test that a Rust panic never crosses into Python.

use std::sync::Arc;

use isodose_core::phantom::{DemoPhantom, demo_seed_positions as seed_positions};
use numpy::{PyArray2, PyArray3};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rayon::prelude::*;

use crate::PyCtImage;
use crate::errors::{self, IntoPy};

/// The demo phantom: (CtImage in HU, dict ROI name -> bool mask (z, y, x) on
/// the CT grid). 128 × 128 × 96 voxels of 1 mm, origin at the prostate
/// centre (LPS): a 110 mm (x) × 100 mm (y) soft-tissue box (HU 20) in air;
/// "Prostate" an ellipsoid with semi-axes 24, 18, 22 mm (HU 40), "Urethra" a
/// 3 mm radius cylinder along z through (0, −3) mm (HU 0), "Rectum" a 12 mm
/// radius cylinder along z through (0, 31) mm (HU 10).
#[pyfunction]
pub fn demo_phantom(py: Python<'_>) -> PyResult<(PyCtImage, Bound<'_, PyDict>)> {
    let phantom = errors::detach(py, DemoPhantom::new)?.py_err(py)?;
    let structures = PyDict::new(py);
    for st in phantom.structures {
        structures.set_item(&st.name, PyArray3::from_owned_array(py, st.mask))?;
    }
    let ct = PyCtImage {
        ct: Arc::new(phantom.ct),
        ids: None,
    };
    Ok((ct, structures))
}

/// Seed centres (x, y, z) of the demo's peripherally loaded prostate implant,
/// mm (LPS), float64 (n, 3): needles parallel to z in every other hole of a
/// 5 mm template, in the outer half of the gland, seeds at most 10 mm apart.
/// `isodose demo` loads them with Amersham6711 seeds of 0.55 U.
#[pyfunction]
pub fn demo_seed_positions(py: Python<'_>) -> PyResult<Bound<'_, PyArray2<f64>>> {
    let rows: Vec<Vec<f64>> = seed_positions().iter().map(|p| p.to_vec()).collect();
    PyArray2::from_vec2(py, &rows).map_err(|e| errors::internal(py, e.to_string()))
}

/// For the test that no Rust panic reaches Python as a panic: panics inside
/// a computation (on a rayon worker thread when `worker` is true), which
/// must come out as `isodose.IsodoseError`.
#[pyfunction]
#[pyo3(signature = (worker = false))]
#[allow(clippy::panic)]
pub fn _raise_internal_panic(py: Python<'_>, worker: bool) -> PyResult<()> {
    errors::detach(py, || {
        if worker {
            (0..64u32).into_par_iter().for_each(|i| {
                assert!(i != 37, "deliberate panic on a worker thread (item {i})");
            });
        } else {
            panic!("deliberate panic on the calling thread");
        }
    })
}
