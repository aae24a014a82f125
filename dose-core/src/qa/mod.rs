//! Plan quality assurance: the gamma index and dose-volume metrics.
//!
//! - [`gamma`]: 3D gamma (Low et al. 1998), global or local, with the
//!   evaluated dose interpolated between voxels and grids that may differ.
//! - [`comparison`]: a recomputed dose against a reference: central-axis
//!   edges, lateral penumbra, high-dose ratio.
//! - [`dvh`]: dose-volume histograms and metrics of a structure, from a mask,
//!   a fractional occupancy or sub-voxel samples of a contoured structure
//!   ([`structure`]), whose volumes are exact polygon–cell overlaps
//!   (`overlap`).

pub mod comparison;
pub mod dvh;
pub mod gamma;
mod overlap;
pub mod structure;

pub use dvh::{Dvh, paddick_conformity, prescription_isodose_volume_cc};
pub use gamma::{GammaCriteria, GammaResult, GammaSearch, gamma_index};
pub use structure::{DoseSample, Structure, StructurePlane};
