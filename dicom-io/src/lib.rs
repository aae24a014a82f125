//! # isodose-dicom
//!
//! DICOM-RT input and output for isodose: CT series, RTSTRUCT, RT Ion Plan,
//! brachytherapy RT Plan and RTDOSE. This crate depends on `isodose-core`,
//! never the reverse.
//!
//! Today: CT series ([`ct`]) and RTDOSE reading and writing ([`rtdose`]).
//! The RTSTRUCT and plan readers land with the rest of the DICOM-RT work.

pub mod ct;
mod error;
pub mod rtdose;

pub use ct::read_ct;
pub use error::DicomIoError;
pub use rtdose::{DoseContext, RtDose, read_rtdose, write_rtdose};
