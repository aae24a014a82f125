//! Python bindings of isodose: the private native module `isodose._isodose`.
//!
//! The public module is the small Python package in `py_src/isodose`, which
//! re-exports what is defined here. The bindings are thin: no physics lives in
//! this crate. They grow with the Python issue.

use pyo3::prelude::*;

/// The native part of the `isodose` package.
#[pymodule(gil_used = false)]
mod _isodose {
    use pyo3::prelude::*;

    /// Keys of the TG-43 seed models shipped with isodose.
    #[pyfunction]
    fn seed_models() -> Vec<String> {
        isodose_core::tg43::SeedCatalogue::builtin()
            .keys()
            .map(str::to_owned)
            .collect()
    }

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }
}
