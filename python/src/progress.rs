//! Progress callbacks and Ctrl-C for the long computations.
//!
//! Every dose, dij and gamma call runs with a [`PyProgress`] hook on its
//! engine. The core calls it on the calling thread (the interpreter's
//! thread, with the GIL released) at the start and end of each stage and
//! every 50 ms while the workers run, so the hook can take the GIL back
//! briefly to check for signals (Ctrl-C raises `KeyboardInterrupt` within
//! about 50 ms) and call the
//! user's `progress` callable with `(stage, done, total)`. Whatever the
//! callback raises stops the computation and is re-raised unchanged.

use std::sync::{Arc, Mutex};

use isodose_core::{DoseError, Engine, Progress};
use pyo3::prelude::*;
use pyo3::types::PyBool;

use crate::errors;

/// The hook: signal checks plus the optional callback, and the Python
/// exception that stopped the computation.
#[derive(Debug)]
struct PyProgress {
    callback: Option<Py<PyAny>>,
    error: Mutex<Option<PyErr>>,
}

impl Progress for PyProgress {
    fn report(&self, stage: &str, done: u64, total: u64) -> bool {
        Python::attach(|py| {
            let outcome = py.check_signals().and_then(|()| match &self.callback {
                Some(cb) => cb.call1(py, (stage, done, total)).map(|_| ()),
                None => Ok(()),
            });
            match outcome {
                Ok(()) => true,
                Err(e) => {
                    if let Ok(mut slot) = self.error.lock() {
                        slot.get_or_insert(e);
                    }
                    false
                }
            }
        })
    }
}

/// The callable behind a `progress` argument: None or False for none, True
/// for a new tqdm bar (`isodose._progress.TqdmProgress`), a tqdm bar of the
/// caller's (reset for each stage, never closed), else the callable itself.
fn callback(py: Python<'_>, progress: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Py<PyAny>>> {
    let Some(p) = progress else { return Ok(None) };
    if p.is_none() {
        return Ok(None);
    }
    if let Ok(flag) = p.cast::<PyBool>() {
        if !flag.is_true() {
            return Ok(None);
        }
        let bar = py
            .import("isodose._progress")?
            .getattr("TqdmProgress")?
            .call0()?;
        return Ok(Some(bar.unbind()));
    }
    if !p.is_callable() {
        if p.hasattr("update")? && p.hasattr("reset")? && p.hasattr("set_description")? {
            // a tqdm bar of the caller's: reused for every stage
            let bar = py
                .import("isodose._progress")?
                .getattr("TqdmProgress")?
                .call1((p,))?;
            return Ok(Some(bar.unbind()));
        }
        return Err(errors::input_error(
            py,
            format!(
                "progress must be None, a bool, a tqdm bar or a callable (stage, done, total), not {}",
                p.get_type().name()?
            ),
        ));
    }
    Ok(Some(p.clone().unbind()))
}

/// Runs `work` on `engine` with the GIL released, reporting to `progress`
/// and stopping on Ctrl-C; a cancelled run raises the Python exception that
/// stopped it.
pub fn run<T: Send>(
    py: Python<'_>,
    engine: &Engine,
    progress: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&Engine) -> Result<T, DoseError> + Send,
) -> PyResult<T> {
    let hook = Arc::new(PyProgress {
        callback: callback(py, progress)?,
        error: Mutex::new(None),
    });
    let watched = engine.with_progress(hook.clone());
    let result = errors::detach(py, || work(&watched))?;
    match result {
        Ok(v) => Ok(v),
        Err(e @ DoseError::Cancelled { .. }) => {
            let stored = hook.error.lock().ok().and_then(|mut slot| slot.take());
            Err(stored.unwrap_or_else(|| errors::to_py(py, e)))
        }
        Err(e) => Err(errors::to_py(py, e)),
    }
}
