//! Proton pencil-beam scanning: machine data, plans, and the dose model.
//!
//! - [`machine`]: `ProtonMachine` (per-energy IDD, in-air optics, halo, MU
//!   calibration), its file format, and the built-in [`generic`] machine
//! - [`commission`]: a machine fitted to a centre's measured IDDs, spot
//!   sizes and MU calibration
//! - [`plan`]: `ProtonPlan` → `ProtonBeam` → `Spot`; range shifters
//! - [`kernel`]: the pencil-beam dose model (one physics function)
//! - [`prepare`]: preparation shared by the backends (HU → RSP, ray traversal
//!   to water-equivalent depth, depth tables, ray casting or spot splitting)
//! - [`medium`]: RSP and scattering power per CT voxel, material overrides
//! - [`dij`]: the sparse dose-influence matrix
//!
//! Doses are computed by [`crate::engine::Engine::pbs_dose`] and
//! [`crate::engine::Engine::pbs_dij`].

pub mod bdl;
pub mod commission;
pub mod dij;
pub mod generic;
pub mod kernel;
pub mod machine;
pub mod medium;
pub mod plan;
pub mod prepare;
pub mod splitting;

pub use dij::Dij;
pub use machine::{EnergyModel, ProtonMachine, SpotOptics};
pub use medium::MaterialOverride;
pub use plan::{ProtonBeam, ProtonPlan, RangeShifter, Spot};
pub use prepare::DoseOptions;
pub use splitting::SpotSplitting;
