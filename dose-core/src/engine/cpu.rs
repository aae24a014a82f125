//! CPU reference backend: rayon over rows of the grid, f64 accumulation.
//!
//! Every voxel sums its seeds in implant order, whatever thread computes it,
//! so results are bitwise identical for any thread count.

use ndarray::Array3;

use super::progress::Hook;
use crate::error::{DoseError, Result};
use crate::grid::{DoseGrid, Grid3, Volume};
use crate::tg43::kernel::LineScratch;
use crate::tg43::{DoseRateTable, Implant};

/// A seed reduced to what the voxel loop needs.
struct SeedFrame {
    position: [f64; 3],
    axis: [f64; 3],
    strength_u: f64,
}

/// Per-thread buffers for one row of voxels.
struct RowBuffers {
    acc: Vec<f64>,
    along: Vec<f64>,
    r2: Vec<f64>,
    scratch: LineScratch,
}

impl RowBuffers {
    fn new(nx: usize) -> Self {
        Self {
            acc: vec![0.0; nx],
            along: vec![0.0; nx],
            r2: vec![0.0; nx],
            scratch: LineScratch::default(),
        }
    }
}

/// Σ_seeds S_K · Ḋ/S_K(voxel) · `scale` on every voxel of `grid`, as f32.
pub(super) fn tg43_grid(
    implant: &Implant,
    grid: &Grid3,
    table: &DoseRateTable,
    scale: f64,
    hook: &Hook,
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
    hook.par_chunks(
        "TG-43 dose",
        &mut out,
        nx,
        || RowBuffers::new(nx),
        |buf, row, out_row| {
            let k = row / ny;
            let j = row % ny;
            let y = origin.y + j as f64 * spacing.y;
            let z = origin.z + k as f64 * spacing.z;
            buf.acc.fill(0.0);
            for s in &seeds {
                let dy = y - s.position[1];
                let dz = z - s.position[2];
                let along_yz = dy * s.axis[1] + dz * s.axis[2];
                let r2_yz = dy * dy + dz * dz;
                let dx0 = origin.x - s.position[0];
                for i in 0..nx {
                    let dx = dx0 + i as f64 * spacing.x;
                    buf.along[i] = along_yz + dx * s.axis[0];
                    buf.r2[i] = r2_yz + dx * dx;
                }
                table.accumulate_line(
                    &buf.along,
                    &buf.r2,
                    s.strength_u,
                    &mut buf.acc,
                    &mut buf.scratch,
                );
            }
            for (o, a) in out_row.iter_mut().zip(buf.acc.iter()) {
                *o = (a * scale) as f32;
            }
        },
    )?;
    let data = Array3::from_shape_vec((nz, ny, nx), out).map_err(|e| DoseError::InvalidGrid {
        reason: format!("internal shape error: {e}"),
    })?;
    Volume::new(grid.clone(), data)
}
