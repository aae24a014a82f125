//! Rust errors as Python exceptions.
//!
//! The exception classes live in `isodose/errors.py` (so that `InputError`
//! can derive from both `IsodoseError` and `ValueError`, and the file errors
//! from `IsodoseError` and `OSError` / `FileNotFoundError`); each Rust error
//! kind maps to one of them, carrying the full message.
//!
//! Every computation runs through [`detach`], which releases the GIL and
//! catches a Rust panic (a bug, never expected) so that it reaches Python as
//! an `IsodoseError` naming it, not as pyo3's `PanicException` (a
//! `BaseException` that `except Exception` would not catch).

use isodose_core::DoseError;
use pyo3::prelude::*;

fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    match py
        .import("isodose.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|cls| cls.call1((message,)))
    {
        Ok(instance) => PyErr::from_value(instance),
        Err(e) => e,
    }
}

/// Runs `work` with the GIL released; a panic inside it (on this thread or
/// a rayon worker, which rayon re-raises here) becomes an
/// `isodose.errors.IsodoseError` carrying the panic message.
pub fn detach<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    F: Send + FnOnce() -> T,
    T: Send,
{
    py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)))
        .map_err(|payload| {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            raise(
                py,
                "IsodoseError",
                format!("internal error in isodose (a bug, please report it): {what}"),
            )
        })
}

/// The Python exception for a core error.
pub fn to_py(py: Python<'_>, e: DoseError) -> PyErr {
    let message = e.to_string();
    match e {
        DoseError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            raise(py, "IsodoseFileNotFoundError", message)
        }
        DoseError::Io { .. } => raise(py, "IsodoseOSError", message),
        DoseError::BackendUnavailable { .. } => raise(py, "GpuError", message),
        // DoseError is #[non_exhaustive]: every other kind is bad input
        // (invalid grid, table, value, option, missing data...)
        _ => raise(py, "InputError", message),
    }
}

/// The Python exception for a DICOM error.
pub fn dicom_to_py(py: Python<'_>, e: isodose_dicom::DicomIoError) -> PyErr {
    match e {
        isodose_dicom::DicomIoError::Core(core) => to_py(py, core),
        isodose_dicom::DicomIoError::Io { ref source, .. }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            raise(py, "IsodoseFileNotFoundError", e.to_string())
        }
        isodose_dicom::DicomIoError::Io { .. } => raise(py, "IsodoseOSError", e.to_string()),
        // DicomIoError is #[non_exhaustive]: every other kind is a file problem
        other => raise(py, "DicomError", other.to_string()),
    }
}

/// An `isodose.errors.InputError` with `message`.
pub fn input_error(py: Python<'_>, message: String) -> PyErr {
    raise(py, "InputError", message)
}

/// An internal failure (a bug, never expected) as an
/// `isodose.errors.IsodoseError`.
pub fn internal(py: Python<'_>, message: impl Into<String>) -> PyErr {
    raise(
        py,
        "IsodoseError",
        format!(
            "internal error in isodose (a bug, please report it): {}",
            message.into()
        ),
    )
}

/// Extension to turn `Result<T, DoseError>` into `PyResult<T>`.
pub trait IntoPy<T> {
    /// Maps the error with [`to_py`].
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, DoseError> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
