//! # isodose-core
//!
//! The physics and the engines of isodose, a radiotherapy dose engine:
//! AAPM TG-43U1 dose for I-125 brachytherapy seeds (and, with later work,
//! proton pencil-beam scanning), computed on voxel grids in the DICOM patient
//! coordinate system.
//!
//! ```
//! use isodose_core::{Engine, BackendChoice, Grid3};
//! use isodose_core::tg43::{Implant, Seed, SeedCatalogue, Technique, Formalism};
//! # fn main() -> Result<(), isodose_core::DoseError> {
//! let model = SeedCatalogue::builtin().get("Amersham6711")?.clone();
//! let seed = Seed::new([0.0, 0.0, 0.0], None, 0.5)?; // 0.5 U, axis along z
//! let implant = Implant::new(model, vec![seed], Technique::Permanent, 0.0)?;
//! // dose rate at 1 cm on the transverse plane is S_K · Λ = 0.5 · 0.965 cGy/h
//! let rate = implant.dose_rate_at(&[[10.0, 0.0, 0.0].into()], Formalism::Line)?;
//! assert!((rate[0] - 0.4825).abs() < 1e-9);
//! let grid = Grid3::new([21, 21, 21], [1.0; 3], [-10.0; 3])?;
//! let dose = Engine::new(BackendChoice::Cpu)?.tg43_dose(&implant, &grid)?;
//! println!("permanent-implant dose at 1 cm: {:.1} Gy", dose.data()[[10, 10, 20]]);
//! # Ok(()) }
//! ```
//!
//! ## Conventions
//! - Units: mm, MeV, Gy, cGy/h, U (µGy m² h⁻¹) for air-kerma strength. TG-43
//!   tables are read in cm, as published, and converted to mm at load time.
//! - Coordinates: DICOM patient system (LPS, mm). Arrays are indexed
//!   `[z, y, x]`; spacing and origin are `(x, y, z)`; a grid's origin is the
//!   centre of its first voxel.
//! - Constructors validate; invalid input is a [`DoseError`] naming the
//!   problem, never a panic.
//!
//! ## Modules
//! - [`grid`]: `Grid3`, `Volume<T>`, `DoseGrid`, `CtVolume`
//! - [`tg43`]: seed models, TG-43 equations, implants
//! - [`engine`]: `Engine`, backend choice, grid computation
//! - [`qa`]: dose-volume metrics
//! - [`phantom`]: the built-in demonstration phantom and implant

pub mod engine;
pub mod error;
pub mod geometry;
pub mod grid;
pub mod phantom;
pub mod physics;
pub mod proton;
pub mod qa;
pub mod tg43;

#[cfg(test)]
mod test_rng;

pub use engine::{
    AUTO_GPU_MIN_WORK, BackendChoice, BackendKind, DEFAULT_DIJ_LIMIT_BYTES, Engine, Progress,
};
pub use error::{DoseError, Result};
pub use grid::{CtVolume, DEFAULT_MAX_VOXELS, DoseGrid, DoseView, Grid3, Volume, VolumeView};
