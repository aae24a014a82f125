//! Comparison of a recomputed dose with a reference dose (a planning
//! system's), as a secondary dose check reports it: the central-axis depth
//! dose of a beam and its distal and proximal edges, the lateral penumbra,
//! and the ratio of the two doses in the high-dose region. The gamma index is
//! in [`super::gamma`].
//!
//! Positions are along and across the beam's central axis (the line from the
//! source through the isocentre, [`BeamFrame`]): Δ in mm downstream of the
//! isocentre plane, lateral offsets along the beam's X_g and Y_g. Doses are
//! sampled trilinearly ([`crate::grid::Volume::sample_trilinear`]), so the
//! two doses may lie on different grids.

use crate::error::{DoseError, Result};
use crate::geometry::BeamFrame;
use crate::grid::DoseGrid;

/// Dose along a beam's central axis, sampled where the grid covers it.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthDose {
    /// Δ of each sample, mm downstream of the isocentre plane (increasing).
    pub delta_mm: Vec<f64>,
    /// Dose at each sample, Gy.
    pub dose_gy: Vec<f64>,
}

impl DepthDose {
    /// The dose of `dose` along the central axis of `frame`, every `step_mm`
    /// (0 < step ≤ 10 mm), over the whole stretch inside the grid.
    pub fn central_axis(dose: &DoseGrid, frame: &BeamFrame, step_mm: f64) -> Result<Self> {
        if !(step_mm.is_finite() && step_mm > 0.0 && step_mm <= 10.0) {
            return Err(DoseError::OutOfRange {
                field: "depth-dose step (mm)".into(),
                value: step_mm,
                reason: "must be in (0, 10]".into(),
            });
        }
        // every point of the grid lies within `reach` of the isocentre
        let (lo, hi) = dose.grid().centre_bounds_mm();
        let iso = frame.isocenter_mm();
        let reach = (lo - iso).norm().max((hi - iso).norm()) + (hi - lo).norm();
        let n = (reach / step_mm).ceil() as i64;
        let (mut delta_mm, mut dose_gy) = (Vec::new(), Vec::new());
        for k in -n..=n {
            let delta = k as f64 * step_mm;
            if let Some(d) = dose.sample_trilinear(&frame.from_beam(0.0, 0.0, delta)) {
                delta_mm.push(delta);
                dose_gy.push(d);
            }
        }
        if delta_mm.len() < 2 {
            return Err(DoseError::InvalidGrid {
                reason: format!(
                    "the beam's central axis through the isocentre ({:.1}, {:.1}, {:.1}) mm misses the dose grid",
                    iso.x, iso.y, iso.z
                ),
            });
        }
        Ok(Self { delta_mm, dose_gy })
    }

    /// Largest dose on the axis, Gy.
    pub fn max_gy(&self) -> f64 {
        self.dose_gy.iter().copied().fold(0.0, f64::max)
    }

    /// Δ (mm) where the dose last falls through `fraction` of its maximum
    /// (the distal edge: R80 for 0.8), linear between samples; `None` if it
    /// never does inside the grid.
    pub fn distal_delta_mm(&self, fraction: f64) -> Option<f64> {
        let level = fraction * self.max_gy();
        let v = &self.dose_gy;
        (0..v.len().saturating_sub(1))
            .rev()
            .find(|&k| v[k] >= level && v[k + 1] < level)
            .map(|k| self.cross(k, level))
    }

    /// Δ (mm) where the dose first reaches `fraction` of its maximum (the
    /// proximal edge of a spread-out peak), linear between samples.
    pub fn proximal_delta_mm(&self, fraction: f64) -> Option<f64> {
        let level = fraction * self.max_gy();
        let v = &self.dose_gy;
        (0..v.len().saturating_sub(1))
            .find(|&k| v[k] < level && v[k + 1] >= level)
            .map(|k| self.cross(k, level))
    }

    fn cross(&self, k: usize, level: f64) -> f64 {
        let (v0, v1) = (self.dose_gy[k], self.dose_gy[k + 1]);
        let (d0, d1) = (self.delta_mm[k], self.delta_mm[k + 1]);
        d0 + (d1 - d0) * (level - v0) / (v1 - v0)
    }
}

/// One side of a beam's lateral profile: along +X_g, −X_g, +Y_g or −Y_g.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LateralSide {
    /// Along +X_g.
    PlusX,
    /// Along −X_g.
    MinusX,
    /// Along +Y_g.
    PlusY,
    /// Along −Y_g.
    MinusY,
}

impl LateralSide {
    /// All four sides.
    pub const ALL: [LateralSide; 4] = [Self::PlusX, Self::MinusX, Self::PlusY, Self::MinusY];

    /// "+X", "−X", "+Y", "−Y".
    pub fn name(self) -> &'static str {
        match self {
            Self::PlusX => "+X",
            Self::MinusX => "-X",
            Self::PlusY => "+Y",
            Self::MinusY => "-Y",
        }
    }
}

/// The 80–20 % penumbra (mm) of `dose` on one side of the beam at depth
/// `delta_mm` (downstream of the isocentre plane): the distance between
/// where the profile from the central axis outwards first falls through 80 %
/// and through 20 % of the dose on the axis, sampled every 0.25 mm. `None`
/// where the axis has no dose or the profile leaves the grid before 20 %.
pub fn lateral_penumbra_mm(
    dose: &DoseGrid,
    frame: &BeamFrame,
    delta_mm: f64,
    side: LateralSide,
) -> Option<f64> {
    let (ux, uy) = match side {
        LateralSide::PlusX => (1.0, 0.0),
        LateralSide::MinusX => (-1.0, 0.0),
        LateralSide::PlusY => (0.0, 1.0),
        LateralSide::MinusY => (0.0, -1.0),
    };
    const STEP_MM: f64 = 0.25;
    let at = |r: f64| dose.sample_trilinear(&frame.from_beam(ux * r, uy * r, delta_mm));
    let centre = at(0.0)?;
    if centre.is_nan() || centre <= 0.0 {
        return None;
    }
    let mut crossings = [None, None];
    let mut prev = centre;
    for k in 1..4000 {
        let r = k as f64 * STEP_MM;
        let v = at(r)?;
        for (c, f) in crossings.iter_mut().zip([0.8, 0.2]) {
            let level = f * centre;
            if c.is_none() && prev >= level && v < level {
                *c = Some(r - STEP_MM + STEP_MM * (prev - level) / (prev - v));
            }
        }
        if let [Some(r80), Some(r20)] = crossings {
            return Some(r20 - r80);
        }
        prev = v;
    }
    None
}

/// The ratio of the evaluated dose to the reference over the reference's
/// high-dose region (voxels of the reference at or above `level` × its
/// maximum, `level` in (0, 1)): Σ evaluated / Σ reference, the evaluated dose
/// sampled at the reference's voxel centres (voxels it does not cover are
/// left out). The absolute-dose agreement of a recomputation; its inverse is
/// the factor that normalises the evaluated dose to the reference.
pub fn high_dose_ratio(reference: &DoseGrid, evaluated: &DoseGrid, level: f64) -> Result<f64> {
    if !(level > 0.0 && level < 1.0) {
        return Err(DoseError::OutOfRange {
            field: "high-dose level (fraction of the maximum)".into(),
            value: level,
            reason: "must be in (0, 1)".into(),
        });
    }
    let max = reference.data().iter().copied().fold(0.0f32, f32::max);
    if max.is_nan() || max <= 0.0 {
        return Err(DoseError::OutOfRange {
            field: "maximum reference dose (Gy)".into(),
            value: f64::from(max),
            reason: "the reference dose is zero everywhere".into(),
        });
    }
    let threshold = level * f64::from(max);
    let g = reference.grid();
    let (mut r, mut e) = (0.0, 0.0);
    for ((k, j, i), v) in reference.data().indexed_iter() {
        let v = f64::from(*v);
        if v >= threshold
            && let Some(d) = evaluated.sample_trilinear(&g.index_to_world([k, j, i]))
        {
            r += v;
            e += d;
        }
    }
    if r > 0.0 {
        Ok(e / r)
    } else {
        Err(DoseError::InvalidGrid {
            reason: "the evaluated dose grid covers none of the reference's high-dose region"
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::grid::{Grid3, Volume};
    use ndarray::Array3;

    /// A dose on a 1 mm grid, x, y in [−40, 40], z in [−10, 10], from
    /// `f(x, y, z)`.
    fn dose(f: impl Fn(f64, f64, f64) -> f64) -> DoseGrid {
        let g = Grid3::new([21, 81, 81], [1.0; 3], [-40.0, -40.0, -10.0]).unwrap();
        let mut a = Array3::zeros((21, 81, 81));
        for ((k, j, i), v) in a.indexed_iter_mut() {
            let p = g.index_to_world([k, j, i]);
            *v = f(p.x, p.y, p.z) as f32;
        }
        Volume::new(g, a).unwrap()
    }

    #[test]
    fn edges_of_a_linear_fall_off_along_the_beam() {
        // gantry 0: the beam travels along +y (LPS); a plateau of 2 Gy that
        // falls linearly to 0 between y = 10 and 30 mm
        let d = dose(|_, y, _| 2.0 * ((30.0 - y) / 20.0).clamp(0.0, 1.0));
        let frame = BeamFrame::new(0.0, 0.0, [0.0; 3]).unwrap();
        let dd = DepthDose::central_axis(&d, &frame, 0.5).unwrap();
        assert!((dd.max_gy() - 2.0).abs() < 1e-6);
        // 80 % at y = 14, 50 % at y = 20 (exact for a linear fall-off)
        assert!((dd.distal_delta_mm(0.8).unwrap() - 14.0).abs() < 1e-4);
        assert!((dd.distal_delta_mm(0.5).unwrap() - 20.0).abs() < 1e-4);
        assert_eq!(dd.proximal_delta_mm(0.9), None);
        // the samples span the grid along y, to half a voxel beyond the
        // outer centres
        assert_eq!(dd.delta_mm.first().copied(), Some(-40.5));
        assert_eq!(dd.delta_mm.last().copied(), Some(40.5));
    }

    #[test]
    fn penumbra_of_a_linear_field_edge() {
        // a field flat to |x| = 10 mm that falls linearly to 0 at 20 mm:
        // 80 % at 12 mm, 20 % at 18 mm, the penumbra 6 mm on both sides
        let d = dose(|x, _, _| ((20.0 - x.abs()) / 10.0).clamp(0.0, 1.0));
        let frame = BeamFrame::new(0.0, 0.0, [0.0; 3]).unwrap();
        for side in [LateralSide::PlusX, LateralSide::MinusX] {
            let p = lateral_penumbra_mm(&d, &frame, 0.0, side).unwrap();
            assert!((p - 6.0).abs() < 1e-6, "{side:?}: {p}");
        }
        // along z (beam Y) the field is flat to the grid's edge: no penumbra
        assert_eq!(
            lateral_penumbra_mm(&d, &frame, 0.0, LateralSide::PlusY),
            None
        );
        // gantry 90: the beam travels along −x, X_g is −y (LPS)... the field
        // edge in x is now along the beam, and the lateral profile along
        // beam X runs in y, where the field is flat
        let g90 = BeamFrame::new(90.0, 0.0, [0.0; 3]).unwrap();
        assert_eq!(lateral_penumbra_mm(&d, &g90, 0.0, LateralSide::PlusX), None);
        let dd = DepthDose::central_axis(&d, &g90, 0.5).unwrap();
        assert!(dd.distal_delta_mm(0.5).is_some());
    }

    #[test]
    fn high_dose_ratio_of_a_scaled_dose_and_bad_levels() {
        let r = dose(|x, y, _| (-(x * x + y * y) / 200.0).exp());
        let e = dose(|x, y, _| 1.03 * (-(x * x + y * y) / 200.0).exp());
        let ratio = high_dose_ratio(&r, &e, 0.9).unwrap();
        assert!((ratio - 1.03).abs() < 1e-6, "{ratio}");
        assert!(high_dose_ratio(&r, &e, 1.0).is_err());
        let zero = dose(|_, _, _| 0.0);
        let err = high_dose_ratio(&zero, &e, 0.5).unwrap_err().to_string();
        assert!(err.contains("zero everywhere"), "{err}");
    }
}
