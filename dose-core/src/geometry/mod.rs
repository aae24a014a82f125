//! Beam geometry: IEC 61217 frames and exact ray traversal of voxel grids.

pub mod iec61217;
pub mod raytrace;

pub use iec61217::BeamFrame;
pub use raytrace::{RaySegment, trace_ray};
