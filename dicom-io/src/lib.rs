//! # isodose-dicom
//!
//! DICOM-RT input and output for isodose: CT series, RTSTRUCT, RT Ion Plan,
//! brachytherapy RT Plan and RTDOSE. This crate depends on `isodose-core`,
//! never the reverse.
//!
//! The readers and writers land with the DICOM-RT issue; until then this crate
//! only fixes its place in the workspace and its error type.

mod error;

pub use error::DicomIoError;
