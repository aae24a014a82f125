//! AAPM TG-43U1 dose calculation for I-125 seeds.
//!
//! - [`source`]: seed models (consensus tables as data files) and the catalogue
//! - [`interp`]: table interpolation and extrapolation rules of TG-43U1
//! - [`dose`]: the dose-rate equations, 2D line source and 1D point source
//! - [`kernel`]: the tabulated kernel that grid engines evaluate per voxel
//! - [`implant`]: seeds, permanent and temporary implants, decay
//!
//! Grids are computed by [`crate::engine::Engine`].

pub mod dose;
pub mod implant;
pub mod interp;
pub mod kernel;
pub mod source;

pub use dose::{Formalism, dose_rate_per_u, geometry_factor_line, geometry_factor_point};
pub use implant::{Implant, Seed, Technique};
pub use kernel::DoseRateTable;
pub use source::{SeedCatalogue, SeedModel};
