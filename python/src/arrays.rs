//! NumPy inputs: any real dtype and memory order, converted once (by
//! `numpy.ascontiguousarray`) to the C-ordered float arrays the engine reads,
//! with a clear error naming the argument and the expected shape.

use ndarray::{Array1, Array2, Array3};
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3};
use pyo3::prelude::*;

use crate::errors::input_error;

fn contiguous<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    dtype: &str,
    ndim: usize,
    name: &str,
    shape: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let np = py.import("numpy")?;
    if np.call_method1("iscomplexobj", (obj,))?.extract::<bool>()? {
        return Err(input_error(py, format!("{name} must be real, not complex")));
    }
    let arr = np
        .call_method1("ascontiguousarray", (obj, dtype))
        .map_err(|e| input_error(py, format!("{name} cannot be read as a real array: {e}")))?;
    let got: usize = arr.getattr("ndim")?.extract()?;
    if got != ndim {
        let s = arr.getattr("shape")?.str()?.to_string();
        return Err(input_error(
            py,
            format!("{name} must have shape {shape}, got {s}"),
        ));
    }
    Ok(arr)
}

/// A 1-D float64 array.
pub fn f64_1d(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    name: &str,
    shape: &str,
) -> PyResult<Array1<f64>> {
    let a = contiguous(py, obj, "float64", 1, name, shape)?;
    let ro: PyReadonlyArray1<'_, f64> = a.extract()?;
    Ok(ro.as_array().to_owned())
}

/// A 2-D float64 array.
pub fn f64_2d(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    name: &str,
    shape: &str,
) -> PyResult<Array2<f64>> {
    let a = contiguous(py, obj, "float64", 2, name, shape)?;
    let ro: PyReadonlyArray2<'_, f64> = a.extract()?;
    Ok(ro.as_array().to_owned())
}

/// A 3-D float32 array.
pub fn f32_3d(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    name: &str,
    shape: &str,
) -> PyResult<Array3<f32>> {
    let a = contiguous(py, obj, "float32", 3, name, shape)?;
    let ro: PyReadonlyArray3<'_, f32> = a.extract()?;
    Ok(ro.as_array().to_owned())
}

/// A 3-D bool array.
pub fn bool_3d(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    name: &str,
    shape: &str,
) -> PyResult<Array3<bool>> {
    let a = contiguous(py, obj, "bool", 3, name, shape)?;
    let ro: PyReadonlyArray3<'_, bool> = a.extract()?;
    Ok(ro.as_array().to_owned())
}
