//! `DoseError`, the one error type of `isodose-core`.
//!
//! Every variant carries enough context to name the problem: the field, the
//! value, the table or file. Constructors validate, so that the kernels can
//! assume valid input.

use std::path::PathBuf;

/// Errors of the core crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DoseError {
    /// A grid definition is unusable (spacing, shape, voxel count, orientation).
    #[error("invalid grid: {reason}")]
    InvalidGrid {
        /// What is wrong.
        reason: String,
    },
    /// An array does not have the shape its grid asks for.
    #[error("shape mismatch for {what}: expected (nz, ny, nx) = {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// Which array.
        what: &'static str,
        /// Expected shape (nz, ny, nx).
        expected: [usize; 3],
        /// Actual shape.
        got: [usize; 3],
    },
    /// A number is NaN or infinite where a finite value is required.
    #[error("{field} must be finite, got {value}")]
    NonFinite {
        /// The quantity, with its unit.
        field: String,
        /// The value received.
        value: f64,
    },
    /// A number is outside the range the physics or the data allows.
    #[error("{field} = {value} is out of range: {reason}")]
    OutOfRange {
        /// The quantity, with its unit.
        field: String,
        /// The value received.
        value: f64,
        /// The allowed range or rule.
        reason: String,
    },
    /// A direction vector has (almost) zero length.
    #[error("{field} has zero length: {vector:?}; a direction needs a non-zero vector")]
    ZeroDirection {
        /// Which direction.
        field: String,
        /// The vector received (x, y, z).
        vector: [f64; 3],
    },
    /// A tabulated function (g(r), F(r, theta), HU curve...) is malformed.
    #[error("table {table}: {reason}")]
    InvalidTable {
        /// The table, with the model or file it belongs to.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// A seed model key is not in the catalogue.
    #[error("unknown seed model {key:?}; known models: {known}")]
    UnknownSeedModel {
        /// The key asked for.
        key: String,
        /// The keys that exist, comma separated.
        known: String,
    },
    /// A seed model lacks the data a formalism needs (for example phi_an for 1D).
    #[error("seed model {model:?} has no {what}, which the {formalism} formalism needs")]
    MissingModelData {
        /// The seed model key.
        model: String,
        /// The missing table.
        what: &'static str,
        /// The formalism asked for.
        formalism: &'static str,
    },
    /// A seed-data file cannot be parsed.
    #[error("seed data {origin}: {reason}")]
    SeedData {
        /// The file path, or a description of the in-memory source.
        origin: String,
        /// The parser's message.
        reason: String,
    },
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The requested compute backend cannot be used.
    #[error("backend unavailable: {reason}")]
    BackendUnavailable {
        /// Why.
        reason: String,
    },
    /// A named option has a value isodose does not know.
    #[error("unknown {what} {value:?}; expected {expected}")]
    InvalidOption {
        /// Which option.
        what: &'static str,
        /// The value received.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// The caller's progress hook stopped the computation (nothing was
    /// returned: a cancelled dose is never a partial dose).
    #[error("{stage} cancelled")]
    Cancelled {
        /// The stage that was running.
        stage: String,
    },
    /// The input is empty where something is required.
    #[error("{what} is empty")]
    Empty {
        /// What is empty.
        what: &'static str,
    },
}

/// Result alias of the core crate.
pub type Result<T, E = DoseError> = std::result::Result<T, E>;

/// Reads a text file, naming it in the error.
pub(crate) fn read_text(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| DoseError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Checks that `value` is finite, naming `field` otherwise.
pub(crate) fn finite(field: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(DoseError::NonFinite {
            field: field.to_owned(),
            value,
        })
    }
}
