//! Voxel-based dose-volume metrics of one structure.
//!
//! Every voxel whose centre lies in the mask counts with its full volume
//! (no sub-voxel sampling yet). With the doses of the structure sorted in
//! decreasing order, d₁ ≥ d₂ ≥ … ≥ d_n:
//!
//! - V(D) = (number of voxels with dose ≥ D) / n, the fraction of the
//!   structure receiving at least D;
//! - D_x = d_⌈x·n⌉, the highest dose D with V(D) ≥ x (x a fraction): the
//!   minimum dose to the hottest x of the volume (D90 = D_0.9).

use ndarray::Array3;

use crate::error::{DoseError, Result};
use crate::grid::DoseGrid;

/// The doses of one structure, sorted in decreasing order.
#[derive(Clone, Debug)]
pub struct DoseVolume {
    doses: Vec<f64>,
    voxel_volume_mm3: f64,
}

impl DoseVolume {
    /// Collects the doses of `dose` inside `mask` (same shape, `[z, y, x]`).
    pub fn from_mask(dose: &DoseGrid, mask: &Array3<bool>) -> Result<Self> {
        let expected = dose.grid().shape();
        let got = [mask.dim().0, mask.dim().1, mask.dim().2];
        if got != expected {
            return Err(DoseError::ShapeMismatch {
                what: "structure mask",
                expected,
                got,
            });
        }
        let mut doses: Vec<f64> = dose
            .data()
            .iter()
            .zip(mask.iter())
            .filter(|(_, m)| **m)
            .map(|(d, _)| f64::from(*d))
            .collect();
        if doses.is_empty() {
            return Err(DoseError::Empty {
                what: "structure mask",
            });
        }
        if let Some(bad) = doses.iter().find(|d| !d.is_finite()) {
            return Err(DoseError::NonFinite {
                field: "dose inside the structure (Gy)".into(),
                value: *bad,
            });
        }
        doses.sort_by(|a, b| b.total_cmp(a));
        Ok(Self {
            doses,
            voxel_volume_mm3: dose.grid().voxel_volume_mm3(),
        })
    }

    /// Number of voxels.
    pub fn voxel_count(&self) -> usize {
        self.doses.len()
    }
    /// Volume of the structure, cm³.
    pub fn volume_cc(&self) -> f64 {
        self.doses.len() as f64 * self.voxel_volume_mm3 / 1000.0
    }
    /// Highest dose.
    pub fn max(&self) -> f64 {
        self.doses[0]
    }
    /// Lowest dose.
    pub fn min(&self) -> f64 {
        self.doses[self.doses.len() - 1]
    }
    /// Mean dose.
    pub fn mean(&self) -> f64 {
        self.doses.iter().sum::<f64>() / self.doses.len() as f64
    }

    /// D_x: minimum dose to the hottest fraction `x` (0 < x ≤ 1) of the volume.
    pub fn dose_at_fraction(&self, x: f64) -> Result<f64> {
        if !(x > 0.0 && x <= 1.0) {
            return Err(DoseError::OutOfRange {
                field: "volume fraction".into(),
                value: x,
                reason: "must be in (0, 1]".into(),
            });
        }
        let n = self.doses.len();
        // x·n can land just above an integer in floating point (0.07 × 100 =
        // 7.000000000000001); a relative 1e-9 keeps such cases on the integer
        let k = ((x * n as f64 * (1.0 - 1e-9)).ceil() as usize).clamp(1, n);
        Ok(self.doses[k - 1])
    }

    /// V(D): fraction of the volume receiving at least `dose`.
    pub fn fraction_at_least(&self, dose: f64) -> f64 {
        let count = self.doses.partition_point(|&d| d >= dose);
        count as f64 / self.doses.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{Grid3, Volume};

    #[test]
    fn metrics_on_known_doses() {
        let grid = Grid3::new([1, 1, 10], [2.0, 2.0, 2.5], [0.0; 3]).unwrap();
        let data =
            Array3::from_shape_vec((1, 1, 10), (1..=10).map(|v| v as f32).collect()).unwrap();
        let dose = Volume::new(grid, data).unwrap();
        let mut mask = Array3::from_elem((1, 1, 10), true);
        mask[[0, 0, 0]] = false; // doses 2..=10 remain
        let dv = DoseVolume::from_mask(&dose, &mask).unwrap();
        assert_eq!(dv.voxel_count(), 9);
        assert!((dv.volume_cc() - 0.09).abs() < 1e-12);
        assert_eq!(dv.max(), 10.0);
        assert_eq!(dv.min(), 2.0);
        assert_eq!(dv.mean(), 6.0);
        assert_eq!(dv.dose_at_fraction(1.0).unwrap(), 2.0);
        // 1/9 of the volume gets >= 10; 2/9 gets >= 9
        assert_eq!(dv.dose_at_fraction(1.0 / 9.0).unwrap(), 10.0);
        assert_eq!(dv.dose_at_fraction(0.2).unwrap(), 9.0);
        assert_eq!(dv.fraction_at_least(9.0), 2.0 / 9.0);
        assert_eq!(dv.fraction_at_least(0.0), 1.0);
        assert_eq!(dv.fraction_at_least(11.0), 0.0);
        assert!(dv.dose_at_fraction(0.0).is_err());
        // 0.07 × 100 is 7.000000000000001 in floating point: still the 7th voxel
        let g = Grid3::new([1, 1, 100], [1.0; 3], [0.0; 3]).unwrap();
        let d = Array3::from_shape_vec((1, 1, 100), (1..=100).map(|v| v as f32).collect()).unwrap();
        let dv = DoseVolume::from_mask(
            &Volume::new(g, d).unwrap(),
            &Array3::from_elem((1, 1, 100), true),
        )
        .unwrap();
        assert_eq!(dv.dose_at_fraction(0.07).unwrap(), 94.0);
        assert!(DoseVolume::from_mask(&dose, &Array3::from_elem((1, 1, 10), false)).is_err());
        assert!(DoseVolume::from_mask(&dose, &Array3::from_elem((1, 2, 5), true)).is_err());
    }
}
