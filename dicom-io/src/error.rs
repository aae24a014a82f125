//! The error type of `isodose-dicom`: every variant names the file, and the tag
//! and value where there is one.

use std::path::PathBuf;

/// Errors raised while reading or writing DICOM-RT files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DicomIoError {
    /// A mandatory attribute is absent.
    #[error("{path}: missing tag {tag}")]
    MissingTag {
        /// The file being read.
        path: PathBuf,
        /// The tag, as `(gggg,eeee) Keyword`.
        tag: String,
    },
    /// An attribute holds a value isodose cannot use.
    #[error("{path}: tag {tag} has value {value:?}: {reason}")]
    BadValue {
        /// The file being read.
        path: PathBuf,
        /// The tag, as `(gggg,eeee) Keyword`.
        tag: String,
        /// The offending value, as text.
        value: String,
        /// Why the value is rejected.
        reason: String,
    },
    /// Attributes contradict each other (for example non-uniform slice spacing).
    #[error("{path}: {reason}")]
    Inconsistent {
        /// The file or folder being read.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// The file cannot be opened.
    #[error("cannot open {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An error of the core crate (invalid grid, invalid plan...).
    #[error(transparent)]
    Core(#[from] isodose_core::DoseError),
}
