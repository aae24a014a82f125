//! The dose-influence matrix: dose per proton of every spot on every voxel.
//!
//! Compressed sparse columns (CSC), voxels × spots: column j holds the voxels
//! that spot j reaches (within the lateral cut-off), rows in increasing
//! linear (C-order: z, y, x) voxel index, values in Gy per proton (f32), row
//! indices u32. The dose of weights w (protons) is D = Dij · w.

use rayon::prelude::*;

use crate::error::{DoseError, Result};

/// A voxels × spots CSC matrix of dose per proton (Gy).
#[derive(Clone, Debug, PartialEq)]
pub struct Dij {
    n_voxels: usize,
    n_spots: usize,
    col_ptr: Vec<u64>,
    row_idx: Vec<u32>,
    values: Vec<f32>,
}

impl Dij {
    /// Assembles a matrix from its parts, checking consistency (every row
    /// index included).
    pub fn from_parts(
        n_voxels: usize,
        n_spots: usize,
        col_ptr: Vec<u64>,
        row_idx: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Self> {
        if row_idx.par_iter().any(|r| *r as usize >= n_voxels) {
            return Err(Self::invalid(format!(
                "a row index exceeds {n_voxels} voxels"
            )));
        }
        Self::from_built(n_voxels, n_spots, col_ptr, row_idx, values)
    }

    /// As [`Self::from_parts`] for arrays the engine built, whose row indices
    /// are voxels of the grid by construction: checks the shapes and column
    /// pointers, not the entries (a pass over the whole matrix).
    pub(crate) fn from_built(
        n_voxels: usize,
        n_spots: usize,
        col_ptr: Vec<u64>,
        row_idx: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Self> {
        if col_ptr.len() != n_spots + 1 || col_ptr.first() != Some(&0) {
            return Err(Self::invalid(format!(
                "column pointer of length {} for {n_spots} spots",
                col_ptr.len()
            )));
        }
        if col_ptr.windows(2).any(|w| w[1] < w[0]) {
            return Err(Self::invalid("column pointers decrease".into()));
        }
        let nnz = col_ptr[n_spots] as usize;
        if row_idx.len() != nnz || values.len() != nnz {
            return Err(Self::invalid(format!(
                "{nnz} entries announced, {} rows and {} values given",
                row_idx.len(),
                values.len()
            )));
        }
        debug_assert!(row_idx.iter().all(|r| (*r as usize) < n_voxels));
        Ok(Self {
            n_voxels,
            n_spots,
            col_ptr,
            row_idx,
            values,
        })
    }

    fn invalid(reason: String) -> DoseError {
        DoseError::InvalidTable {
            table: "dij".into(),
            reason,
        }
    }

    /// (voxels, spots).
    pub fn shape(&self) -> (usize, usize) {
        (self.n_voxels, self.n_spots)
    }
    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }
    /// Column pointers (length spots + 1).
    pub fn col_ptr(&self) -> &[u64] {
        &self.col_ptr
    }
    /// Row (voxel) indices.
    pub fn row_idx(&self) -> &[u32] {
        &self.row_idx
    }
    /// Values, Gy per proton.
    pub fn values(&self) -> &[f32] {
        &self.values
    }
    /// The arrays (column pointers, row indices, values), moved out.
    pub fn into_parts(self) -> (Vec<u64>, Vec<u32>, Vec<f32>) {
        (self.col_ptr, self.row_idx, self.values)
    }
    /// Bytes held by the three arrays.
    pub fn memory_bytes(&self) -> usize {
        Self::bytes_for(self.nnz(), self.n_spots)
    }
    /// Bytes a matrix of `nnz` entries and `n_spots` columns needs.
    pub fn bytes_for(nnz: usize, n_spots: usize) -> usize {
        nnz * (size_of::<u32>() + size_of::<f32>()) + (n_spots + 1) * size_of::<u64>()
    }

    /// Refuses a grid of more voxels than the matrix's 32-bit row indices
    /// hold (checked before any work).
    pub fn check_rows(n_voxels: usize) -> Result<()> {
        if n_voxels > u32::MAX as usize {
            return Err(DoseError::InvalidGrid {
                reason: format!("{n_voxels} voxels exceed the 32-bit row indices of the dij"),
            });
        }
        Ok(())
    }

    /// Refuses a matrix of `nnz` entries and `n_spots` columns that would
    /// need more than `max_bytes` (checked before anything is allocated).
    pub fn check_size(nnz: usize, n_spots: usize, max_bytes: usize) -> Result<()> {
        let bytes = Self::bytes_for(nnz, n_spots);
        if bytes > max_bytes {
            return Err(DoseError::OutOfRange {
                field: "dij memory (bytes)".into(),
                value: bytes as f64,
                reason: format!(
                    "{nnz} entries need {:.1} MiB, above the limit of {:.1} MiB",
                    bytes as f64 / 1048576.0,
                    max_bytes as f64 / 1048576.0
                ),
            });
        }
        Ok(())
    }

    /// D = Dij · w (Gy), with `weights` in protons, one per spot, summed in
    /// f64.
    pub fn dose(&self, weights: &[f64]) -> Result<Vec<f64>> {
        if weights.len() != self.n_spots {
            return Err(DoseError::OutOfRange {
                field: "number of spot weights".into(),
                value: weights.len() as f64,
                reason: format!("the dij has {} spots", self.n_spots),
            });
        }
        let mut dose = vec![0.0f64; self.n_voxels];
        for (j, w) in weights.iter().enumerate() {
            let (a, b) = (self.col_ptr[j] as usize, self.col_ptr[j + 1] as usize);
            for (r, v) in self.row_idx[a..b].iter().zip(&self.values[a..b]) {
                dose[*r as usize] += w * f64::from(*v);
            }
        }
        Ok(dose)
    }
}
