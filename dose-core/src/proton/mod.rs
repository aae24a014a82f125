//! Proton pencil-beam scanning: machine data, plans, and the dose model.
//!
//! - [`machine`]: `ProtonMachine` (per-energy IDD, in-air optics, halo, MU
//!   calibration), its file format, and the built-in [`generic`] machine

pub mod generic;
pub mod machine;

pub use machine::{EnergyModel, ProtonMachine, SpotOptics};
