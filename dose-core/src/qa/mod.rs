//! Plan quality assurance: dose-volume metrics.
//!
//! This module starts with the voxel-based metrics the demo and clinical
//! reports need (D_x, V_x, mean, min, max over a structure mask). Sub-voxel
//! DVHs, gamma and indices come with the QA work.

pub mod dvh;

pub use dvh::DoseVolume;
