//! CPU reference backend: rayon over rows of the grid, f64 accumulation.
//!
//! Every voxel sums its seeds in implant order, whatever thread computes it,
//! so results are bitwise identical for any thread count.

use ndarray::Array3;
use rayon::prelude::*;

use crate::error::{DoseError, Result};
use crate::grid::{DoseGrid, Grid3, Volume};
use crate::tg43::{DoseRateTable, Implant};

/// A seed reduced to what the voxel loop needs.
struct SeedFrame {
    position: [f64; 3],
    axis: [f64; 3],
    strength_u: f64,
}

/// Σ_seeds S_K · Ḋ/S_K(voxel) · `scale` on every voxel of `grid`, as f32.
pub(super) fn tg43_grid(
    implant: &Implant,
    grid: &Grid3,
    table: &DoseRateTable,
    scale: f64,
) -> Result<DoseGrid> {
    let seeds: Vec<SeedFrame> = implant
        .seeds()
        .iter()
        .filter(|s| s.air_kerma_strength_u() > 0.0)
        .map(|s| SeedFrame {
            position: s.position_mm().coords.into(),
            axis: s.direction().into_inner().into(),
            strength_u: s.air_kerma_strength_u(),
        })
        .collect();
    let [nz, ny, nx] = grid.shape();
    let origin = grid.origin_mm();
    let spacing = grid.spacing_mm();
    let mut out = vec![0f32; grid.len()];
    out.par_chunks_mut(nx).enumerate().for_each_init(
        || vec![0f64; nx],
        |acc, (row, out_row)| {
            let k = row / ny;
            let j = row % ny;
            let y = origin.y + j as f64 * spacing.y;
            let z = origin.z + k as f64 * spacing.z;
            acc.fill(0.0);
            for s in &seeds {
                let dy = y - s.position[1];
                let dz = z - s.position[2];
                let along_yz = dy * s.axis[1] + dz * s.axis[2];
                let r2_yz = dy * dy + dz * dz;
                let dx0 = origin.x - s.position[0];
                for (i, a) in acc.iter_mut().enumerate() {
                    let dx = dx0 + i as f64 * spacing.x;
                    let along = (along_yz + dx * s.axis[0]).abs();
                    let r2 = r2_yz + dx * dx;
                    *a += s.strength_u * table.dose_rate_per_u(along, r2);
                }
            }
            for (o, a) in out_row.iter_mut().zip(acc.iter()) {
                *o = (a * scale) as f32;
            }
        },
    );
    let data = Array3::from_shape_vec((nz, ny, nx), out).map_err(|e| DoseError::InvalidGrid {
        reason: format!("internal shape error: {e}"),
    })?;
    Volume::new(grid.clone(), data)
}
