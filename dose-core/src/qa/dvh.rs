//! Dose-volume histograms and metrics of one structure.
//!
//! A [`Dvh`] is built from weighted dose samples: whole voxels of a mask,
//! voxels weighted by a fractional occupancy, or the sub-voxel samples of a
//! contoured [`Structure`]. It keeps a differential histogram of
//! [`DVH_BINS`] bins from 0 to the highest sampled dose, plus the exact
//! minimum, maximum and volume-weighted mean.
//!
//! Cumulative DVH: V(D) = volume receiving at least D, with doses taken as
//! uniformly spread within a bin (so V is continuous and piecewise linear).
//! D_v (v a volume or a fraction of the structure) is the dose with
//! V(D_v) = v, i.e. the minimum dose to the hottest v. Metrics follow ICRU 83:
//! D2 %, D98 %, D50 %, homogeneity index HI = (D2 − D98)/D50; the "maximum"
//! dose reported clinically is D_0.03 cc; Paddick's conformity index is
//! CI = TV_PIV² / (TV × PIV) (Paddick, J Neurosurg 93 (2000) 219).

use ndarray::Array3;

use super::structure::{DoseSample, Structure};
use crate::error::{DoseError, Result};
use crate::grid::DoseGrid;

/// Number of bins of the differential histogram; the bin width is
/// (maximum dose)/`DVH_BINS`, so D_x is resolved to 0.01 % of the maximum.
pub const DVH_BINS: usize = 10_000;

/// The DVH of one structure.
#[derive(Clone, Debug)]
pub struct Dvh {
    bin_width_gy: f64,
    /// Differential volume per bin, mm³.
    bins_mm3: Vec<f64>,
    total_mm3: f64,
    outside_mm3: f64,
    min_gy: f64,
    max_gy: f64,
    mean_gy: f64,
}

impl Dvh {
    /// The DVH of weighted samples (dose Gy, volume mm³).
    pub fn from_samples(samples: &[DoseSample]) -> Result<Self> {
        Self::from_samples_binned(samples, |samples, w| Ok(histogram(samples, w)))
    }

    /// As [`Dvh::from_samples`], with the differential histogram (mm³ per
    /// bin, [`DVH_BINS`] bins of the given width, Gy) computed by `bin`
    /// (the CPU's or a GPU kernel's); everything else (checks, volume,
    /// minimum, maximum, mean) in f64 here.
    pub(crate) fn from_samples_binned(
        samples: &[DoseSample],
        bin: impl FnOnce(&[DoseSample], f64) -> Result<Vec<f64>>,
    ) -> Result<Self> {
        let mut total = 0.0;
        let mut outside = 0.0;
        let mut sum = 0.0;
        let mut min = f64::INFINITY;
        let mut max = f64::NEG_INFINITY;
        for s in samples {
            for d in [s.dose_lo_gy, s.dose_hi_gy] {
                if !d.is_finite() {
                    return Err(DoseError::NonFinite {
                        field: "dose inside the structure (Gy)".into(),
                        value: d,
                    });
                }
            }
            if s.dose_hi_gy < s.dose_lo_gy {
                return Err(DoseError::OutOfRange {
                    field: "structure sample dose range (Gy)".into(),
                    value: s.dose_hi_gy,
                    reason: format!("the high dose is below the low dose {}", s.dose_lo_gy),
                });
            }
            if !(s.volume_mm3.is_finite() && s.volume_mm3 >= 0.0) {
                return Err(DoseError::OutOfRange {
                    field: "structure sample volume (mm³)".into(),
                    value: s.volume_mm3,
                    reason: "must be finite and >= 0".into(),
                });
            }
            if s.volume_mm3 == 0.0 {
                continue;
            }
            total += s.volume_mm3;
            if s.outside {
                outside += s.volume_mm3;
            }
            sum += 0.5 * (s.dose_lo_gy + s.dose_hi_gy) * s.volume_mm3;
            min = min.min(s.dose_lo_gy);
            max = max.max(s.dose_hi_gy);
        }
        if total <= 0.0 {
            return Err(DoseError::Empty {
                what: "structure (no volume to compute a DVH on)",
            });
        }
        if min < 0.0 {
            return Err(DoseError::OutOfRange {
                field: "dose inside the structure (Gy)".into(),
                value: min,
                reason: "must be >= 0".into(),
            });
        }
        let bin_width_gy = if max > 0.0 {
            max / DVH_BINS as f64
        } else {
            1e-6
        };
        let bins_mm3 = bin(samples, bin_width_gy)?;
        Ok(Self {
            bin_width_gy,
            bins_mm3,
            total_mm3: total,
            outside_mm3: outside,
            min_gy: min,
            max_gy: max,
            mean_gy: sum / total,
        })
    }

    /// The DVH of the voxels of `dose` inside `mask` (same shape, `[z, y, x]`),
    /// each counting with its whole volume.
    pub fn from_mask(dose: &DoseGrid, mask: &Array3<bool>) -> Result<Self> {
        Self::from_samples(&Self::mask_samples(dose, mask)?)
    }

    /// The samples of [`Dvh::from_mask`]: one per voxel inside `mask`.
    pub fn mask_samples(dose: &DoseGrid, mask: &Array3<bool>) -> Result<Vec<DoseSample>> {
        check_shape(dose, mask.dim(), "structure mask")?;
        let v = dose.grid().voxel_volume_mm3();
        Ok(dose
            .data()
            .iter()
            .zip(mask.iter())
            .filter(|(_, m)| **m)
            .map(|(d, _)| DoseSample {
                dose_lo_gy: f64::from(*d),
                dose_hi_gy: f64::from(*d),
                volume_mm3: v,
                outside: false,
            })
            .collect())
    }

    /// The DVH of `dose` with each voxel weighted by `occupancy` (0–1, the
    /// fraction of the voxel inside the structure; same shape as the dose).
    pub fn from_occupancy(dose: &DoseGrid, occupancy: &Array3<f32>) -> Result<Self> {
        Self::from_samples(&Self::occupancy_samples(dose, occupancy)?)
    }

    /// The samples of [`Dvh::from_occupancy`]: one per voxel with a
    /// non-zero occupancy, weighted by it.
    pub fn occupancy_samples(dose: &DoseGrid, occupancy: &Array3<f32>) -> Result<Vec<DoseSample>> {
        check_shape(dose, occupancy.dim(), "structure occupancy")?;
        if let Some(bad) = occupancy
            .iter()
            .find(|w| !(w.is_finite() && (0.0..=1.0).contains(*w)))
        {
            return Err(DoseError::OutOfRange {
                field: "structure occupancy".into(),
                value: f64::from(*bad),
                reason: "each voxel's occupancy must be in [0, 1]".into(),
            });
        }
        let v = dose.grid().voxel_volume_mm3();
        Ok(dose
            .data()
            .iter()
            .zip(occupancy.iter())
            .filter(|(_, w)| **w > 0.0)
            .map(|(d, w)| DoseSample {
                dose_lo_gy: f64::from(*d),
                dose_hi_gy: f64::from(*d),
                volume_mm3: v * f64::from(*w),
                outside: false,
            })
            .collect())
    }

    /// The DVH of a contoured structure sampled on `dose` with `subdivisions`
    /// samples per voxel along each axis ([`Structure::sample`]). Parts of the
    /// structure outside the dose grid count as 0 Gy and are reported by
    /// [`Dvh::outside_cc`].
    pub fn from_structure(
        dose: &DoseGrid,
        structure: &Structure,
        subdivisions: usize,
    ) -> Result<Self> {
        Self::from_samples(&structure.sample(dose, subdivisions)?)
    }

    /// Volume of the structure, cm³.
    pub fn volume_cc(&self) -> f64 {
        self.total_mm3 / 1000.0
    }
    /// Volume of the structure outside the dose grid (counted as 0 Gy), cm³.
    pub fn outside_cc(&self) -> f64 {
        self.outside_mm3 / 1000.0
    }
    /// Lowest sampled dose, Gy.
    pub fn min(&self) -> f64 {
        self.min_gy
    }
    /// Highest sampled dose (a point value), Gy.
    pub fn max(&self) -> f64 {
        self.max_gy
    }
    /// Volume-weighted mean dose, Gy.
    pub fn mean(&self) -> f64 {
        self.mean_gy
    }
    /// Width of the histogram bins, Gy.
    pub fn bin_width_gy(&self) -> f64 {
        self.bin_width_gy
    }
    /// Differential DVH: volume (cm³) per bin of [`Dvh::bin_width_gy`],
    /// bin i covering [i·w, (i+1)·w).
    pub fn differential_cc(&self) -> Vec<f64> {
        self.bins_mm3.iter().map(|v| v / 1000.0).collect()
    }

    /// V(D): volume receiving at least `dose_gy`, cm³.
    pub fn volume_at_least_cc(&self, dose_gy: f64) -> f64 {
        self.volume_at_least_mm3(dose_gy) / 1000.0
    }
    /// V(D) as a fraction (0–1) of the structure volume.
    pub fn fraction_at_least(&self, dose_gy: f64) -> f64 {
        self.volume_at_least_mm3(dose_gy) / self.total_mm3
    }

    fn volume_at_least_mm3(&self, dose_gy: f64) -> f64 {
        if dose_gy <= self.min_gy {
            return self.total_mm3;
        }
        if dose_gy > self.max_gy {
            return 0.0;
        }
        let pos = dose_gy / self.bin_width_gy;
        let b = (pos.floor() as usize).min(DVH_BINS - 1);
        let above: f64 = self.bins_mm3[b + 1..].iter().sum();
        let frac_above = (b as f64 + 1.0 - pos).clamp(0.0, 1.0);
        above + self.bins_mm3[b] * frac_above
    }

    /// Cumulative DVH at `doses_gy`: (dose Gy, volume cm³ receiving at least it).
    pub fn cumulative_cc(&self, doses_gy: &[f64]) -> Vec<(f64, f64)> {
        doses_gy
            .iter()
            .map(|&d| (d, self.volume_at_least_cc(d)))
            .collect()
    }

    /// D_v for an absolute volume `volume_cc` (0 < v ≤ structure volume): the
    /// minimum dose to the hottest `volume_cc`.
    pub fn dose_at_volume_cc(&self, volume_cc: f64) -> Result<f64> {
        let v = volume_cc * 1000.0;
        if !(v > 0.0 && v <= self.total_mm3 * (1.0 + 1e-12)) {
            return Err(DoseError::OutOfRange {
                field: "DVH volume (cm³)".into(),
                value: volume_cc,
                reason: format!(
                    "must be in (0, {:.6}] cm³, the structure volume",
                    self.volume_cc()
                ),
            });
        }
        Ok(self.dose_at_volume_mm3(v))
    }

    /// D_x for a fraction `x` (0 < x ≤ 1) of the structure: D90 = D_0.9.
    pub fn dose_at_fraction(&self, x: f64) -> Result<f64> {
        if !(x > 0.0 && x <= 1.0) {
            return Err(DoseError::OutOfRange {
                field: "volume fraction".into(),
                value: x,
                reason: "must be in (0, 1]".into(),
            });
        }
        Ok(self.dose_at_volume_mm3(x * self.total_mm3))
    }

    fn dose_at_volume_mm3(&self, v: f64) -> f64 {
        // walk down from the hottest bin until the accumulated volume reaches v
        let mut acc = 0.0;
        for b in (0..DVH_BINS).rev() {
            let vb = self.bins_mm3[b];
            if vb > 0.0 && acc + vb >= v {
                let frac = (v - acc) / vb; // of this bin, from its top
                let d = (b as f64 + 1.0 - frac) * self.bin_width_gy;
                return d.clamp(self.min_gy, self.max_gy);
            }
            acc += vb;
        }
        self.min_gy
    }

    /// Clinical maximum: D_0.03cc (or the minimum dose when the structure is
    /// smaller than 0.03 cm³).
    pub fn max_0_03cc(&self) -> f64 {
        self.dose_at_volume_mm3(30.0_f64.min(self.total_mm3))
    }

    /// ICRU 83 homogeneity index (D2 − D98)/D50 (NaN when D50 = 0).
    pub fn homogeneity_index(&self) -> f64 {
        let d = |x: f64| self.dose_at_volume_mm3(x * self.total_mm3);
        let d50 = d(0.5);
        if d50 > 0.0 {
            (d(0.02) - d(0.98)) / d50
        } else {
            f64::NAN
        }
    }
}

/// Differential histogram of samples whose volume is spread uniformly over
/// [lo, hi]: partial end bins get their share directly, whole bins in between
/// through a difference array (constant cost per sample).
fn histogram(samples: &[DoseSample], w: f64) -> Vec<f64> {
    let last = DVH_BINS - 1;
    let bin = |d: f64| ((d / w) as usize).min(last);
    let mut bins = vec![0.0; DVH_BINS];
    // diff[i] accumulates a density (mm³ per bin) starting at bin i
    let mut diff = vec![0.0; DVH_BINS + 1];
    for s in samples {
        if s.volume_mm3 == 0.0 {
            continue;
        }
        let (lo, hi) = (s.dose_lo_gy, s.dose_hi_gy);
        let (bl, bh) = (bin(lo), bin(hi));
        if bl == bh || hi - lo <= 0.0 {
            bins[bl] += s.volume_mm3;
            continue;
        }
        let per_gy = s.volume_mm3 / (hi - lo);
        bins[bl] += per_gy * ((bl as f64 + 1.0) * w - lo);
        bins[bh] += per_gy * (hi - bh as f64 * w).max(0.0);
        if bh > bl + 1 {
            diff[bl + 1] += per_gy * w;
            diff[bh] -= per_gy * w;
        }
    }
    let mut run = 0.0;
    for (b, d) in bins.iter_mut().zip(&diff) {
        run += d;
        *b += run;
    }
    bins
}

/// Paddick conformity index CI = TV_PIV² / (TV × PIV) for a target DVH and
/// the prescription isodose volume `piv_cc` (volume of the whole dose grid
/// receiving at least `prescription_gy`, from [`prescription_isodose_volume_cc`]).
pub fn paddick_conformity(target: &Dvh, prescription_gy: f64, piv_cc: f64) -> f64 {
    let tv_piv = target.volume_at_least_cc(prescription_gy);
    if piv_cc <= 0.0 {
        return 0.0;
    }
    tv_piv * tv_piv / (target.volume_cc() * piv_cc)
}

/// Volume (cm³) of the dose grid receiving at least `dose_gy` (whole voxels).
pub fn prescription_isodose_volume_cc(dose: &DoseGrid, dose_gy: f64) -> f64 {
    let n = dose
        .data()
        .iter()
        .filter(|&&d| f64::from(d) >= dose_gy)
        .count();
    n as f64 * dose.grid().voxel_volume_mm3() / 1000.0
}

fn check_shape(dose: &DoseGrid, dim: (usize, usize, usize), what: &'static str) -> Result<()> {
    let expected = dose.grid().shape();
    let got = [dim.0, dim.1, dim.2];
    if got != expected {
        return Err(DoseError::ShapeMismatch {
            what,
            expected,
            got,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{Grid3, Volume};

    fn ramp(n: usize) -> DoseGrid {
        let grid = Grid3::new([1, 1, n], [1.0; 3], [0.0; 3]).unwrap();
        let data = Array3::from_shape_vec((1, 1, n), (1..=n).map(|v| v as f32).collect()).unwrap();
        Volume::new(grid, data).unwrap()
    }

    #[test]
    fn metrics_of_a_uniform_dose_distribution() {
        // doses 1..=1000 Gy, 1 mm³ each: V(D) = (1000 − D + ½)/1000 in the
        // continuous (bin-spread) model; D_x for x = k/1000 is close to 1000 − k
        let dose = ramp(1000);
        let dvh = Dvh::from_mask(&dose, &Array3::from_elem((1, 1, 1000), true)).unwrap();
        assert!((dvh.volume_cc() - 1.0).abs() < 1e-12);
        assert_eq!(dvh.min(), 1.0);
        assert_eq!(dvh.max(), 1000.0);
        assert!((dvh.mean() - 500.5).abs() < 1e-9);
        for x in [0.1, 0.5, 0.9] {
            let d = dvh.dose_at_fraction(x).unwrap();
            assert!((d - (1000.0 - 1000.0 * x)).abs() <= 1.0, "D{x}: {d}");
        }
        assert!((dvh.fraction_at_least(500.0) - 0.501).abs() <= 0.001);
        assert_eq!(dvh.fraction_at_least(0.5), 1.0);
        assert_eq!(dvh.fraction_at_least(1000.5), 0.0);
        assert!((dvh.dose_at_volume_cc(0.03).unwrap() - 970.0).abs() <= 1.0);
        assert!(dvh.dose_at_fraction(0.0).is_err());
        assert!(dvh.dose_at_volume_cc(2.0).is_err());
        let hi = dvh.homogeneity_index();
        assert!((hi - (980.0 - 20.0) / 500.0).abs() < 0.01, "{hi}");
    }

    #[test]
    fn occupancy_weights_volumes_and_bad_inputs_are_errors() {
        let dose = ramp(4);
        let occ = Array3::from_shape_vec((1, 1, 4), vec![0.0f32, 0.5, 1.0, 0.25]).unwrap();
        let dvh = Dvh::from_occupancy(&dose, &occ).unwrap();
        assert!((dvh.volume_cc() - 1.75e-3).abs() < 1e-15);
        assert!((dvh.mean() - (2.0 * 0.5 + 3.0 + 4.0 * 0.25) / 1.75).abs() < 1e-12);
        let bad = Array3::from_shape_vec((1, 1, 4), vec![0.0f32, 1.5, 1.0, 0.25]).unwrap();
        assert!(Dvh::from_occupancy(&dose, &bad).is_err());
        assert!(Dvh::from_mask(&dose, &Array3::from_elem((1, 1, 4), false)).is_err());
        assert!(Dvh::from_mask(&dose, &Array3::from_elem((1, 2, 2), true)).is_err());
    }

    #[test]
    fn paddick_index_of_known_overlaps() {
        // target = voxels 0..10 (doses 1..=10), a prescription of 5.5 Gy
        // covers 5 of them; the grid has 15 voxels ≥ 5.5 Gy: CI = 5² / (10 × 15)
        let dose = ramp(20);
        let mut mask = Array3::from_elem((1, 1, 20), false);
        for i in 0..10 {
            mask[[0, 0, i]] = true;
        }
        let dvh = Dvh::from_mask(&dose, &mask).unwrap();
        let piv = prescription_isodose_volume_cc(&dose, 5.5);
        assert!((piv - 15e-3).abs() < 1e-15);
        let ci = paddick_conformity(&dvh, 5.5, piv);
        assert!((ci - 25.0 / 150.0).abs() < 1e-9, "{ci}");
    }
}
