//! # isodose
//!
//! A radiotherapy dose engine: AAPM TG-43U1 brachytherapy dose for I-125
//! seeds today; proton pencil-beam scanning, GPU compute, DICOM-RT and Python
//! bindings as the project grows. This umbrella crate re-exports the core
//! crate and the DICOM crate, and ships the `isodose` command-line tool.
//!
//! ```
//! use isodose::tg43::{SeedCatalogue, Formalism, dose_rate_per_u};
//! let cat = SeedCatalogue::builtin();
//! let m = cat.get("Amersham6711").unwrap();
//! // at r0 = 1 cm, θ0 = 90°, the dose rate per U is the dose-rate constant Λ
//! let d = dose_rate_per_u(m, Formalism::Line, 10.0, 90.0).unwrap();
//! assert!((d - 0.965).abs() < 1e-12);
//! ```
//!
//! See [`isodose_core`] for conventions (units, axes, coordinates).

pub use isodose_core::*;
pub use isodose_dicom as dicom;
