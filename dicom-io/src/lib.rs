//! # isodose-dicom
//!
//! DICOM-RT input and output for isodose: CT series, RTSTRUCT, RT Ion Plan,
//! brachytherapy RT Plan and RTDOSE. This crate depends on `isodose-core`,
//! never the reverse.
//!
//! Today: RTDOSE reading and writing ([`rtdose`]). The other readers land
//! with the DICOM-RT work.

mod error;
pub mod rtdose;

pub use error::DicomIoError;
pub use rtdose::{DoseContext, RtDose, read_rtdose, write_rtdose};
