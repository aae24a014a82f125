//! Spot splitting by fine sampling: each spot becomes a lattice of narrow
//! sub-pencils, each with its own ray, water-equivalent depth and range.
//!
//! # Why
//!
//! Ray casting gives every voxel of a spot the WED of the spot's central ray,
//! so a heterogeneity edge parallel to the beam inside the spot shifts the
//! whole spot or none of it. Fine sampling (Soukup, Fippel & Alber 2005,
//! Phys. Med. Biol. 50:5089; Russo et al. 2016, Phys. Med. Biol. 61:183)
//! decomposes the spot's lateral fluence into sub-pencils narrow enough that
//! each one lies on one side of an edge.
//!
//! # The decomposition
//!
//! Per axis (x or y of the beam frame), an odd number n = 2m + 1 of offsets
//! uᵢ = i·h (i = −m…m) in the isocentre plane, diverging with the beam
//! (offset at depth Δ: uᵢ(1 + Δ/SAD)), with weights sampled from a Gaussian
//! envelope of width s, wᵢ ∝ exp(−uᵢ²/2s²). The 2D weights are the
//! products wᵢwⱼ; lattice points whose weight is below 10⁻⁴ of the largest
//! are dropped (the corners of the square), and the rest renormalised. The
//! kept set's exact second moment per axis, V = Σ wᵢⱼ uᵢ², is taken off each
//! sub-pencil's width:
//!
//! σ_sub²(Δ) = σ²(Δ) − V·(1 + Δ/SAD)²,
//!
//! σ² the spot's full core variance (in-air optics, multiple Coulomb
//! scattering along the sub-pencil's own WED, range shifter), so that in a
//! homogeneous medium the sum of the sub-pencils has exactly the spot's
//! second moments.
//!
//! **What is split: the in-air spread.** The envelope width s and the lattice
//! step h follow from σ_min, the smallest in-air σ of the spot (scaled back
//! to the isocentre plane, σ_air(Δ)/(1 + Δ/SAD)) over the depths where dose
//! is computed: the sub-pencils' width must stay positive where the spot is
//! narrowest, which is in air or at the surface, before scattering adds to
//! it. Scattering in the patient is not split: it builds up along each
//! sub-pencil's own path, so each sub-pencil carries its own σ_MCS from its
//! own WED. At the depth of a heterogeneity the sub-pencils are therefore
//! √(σ_sub,0² + σ_MCS²) wide: narrow where the spot is dominated by its
//! in-air size (the usual case above the Bragg peak), and the edge is
//! resolved to that width.
//!
//! **Lattice constants.** The sum of Gaussians of width σ_sub on a lattice
//! of step h reproduces a smooth Gaussian when σ_sub ≳ 0.7 h (the Poisson
//! ripple is about 2·exp(−2π²σ_sub²/h²) ≈ 10⁻⁴), so the constants are
//! σ_sub,0 = 0.7 h and m·h = e·s, with the span e = 2.5 s (n = 5), 3 s (n = 7)
//! or 3.5 s (n ≥ 9): σ_min² = s² + (0.7 h)². Measured against the exact 2D
//! Gaussian of the same σ (the test `lattices_reproduce_the_gaussian`), the
//! sum's largest error is 1.1 % (5 × 5), 0.51 % (7 × 7), 0.32 % (9 × 9),
//! 0.22 % (11 × 11) of the peak, and σ_sub,0/σ_min is 0.66, 0.58, 0.52,
//! 0.44.
//!
//! **The halo is not split.** The sub-pencils carry the core, IDD·(1 − h);
//! the nuclear halo, IDD·h, goes on one more pencil along the spot's
//! central ray with the spot's whole halo width (ray casting for the halo
//! only). The halo is several centimetres wide: split, each sub-pencil
//! would traverse the halo's whole cut-off disc, multiplying the voxel work
//! by the lattice size for a resolution the halo's width does not have.
//!
//! **Cost.** One ray trace and one depth-node table per sub-pencil (the kept
//! lattice points: 25, 49, 69, 109, 157 and 209 for n = 5 … 15, plus the
//! halo pencil) and a voxel traversal each over its own cut-off disc, which
//! shrinks with σ_sub: the core's voxel work grows by about
//! (kept points)·(σ_sub/σ)² (8 × for 5 × 5, 19 × for 9 × 9), and memory by
//! the kept points (the depth nodes of every pencil are kept for the voxel
//! loops). Measured figures are in BENCHMARKS.md.
//!
//! **What it leaves out.** Each sub-pencil scatters as water of its WED
//! (Highland), so a bone's extra scattering power over its water-equivalent
//! thickness of water is missing; behind a bone edge the sub-pencils that
//! crossed it are too narrow, which shows 3 σ and more from a spot's centre
//! (tests/proton_mcsquare.rs).

use crate::error::{DoseError, Result};

/// Sub-pencil decomposition of each spot: a lattice of `per_axis` ×
/// `per_axis` sub-pencils (fine sampling, see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpotSplitting {
    per_axis: usize,
}

/// Ratio σ_sub,0 / h of the sub-pencils' width at the narrowest point to the
/// lattice step.
const WIDTH_PER_STEP: f64 = 0.7;

/// Lattice points with a weight below this fraction of the largest are
/// dropped.
const WEIGHT_FLOOR: f64 = 1e-4;

impl SpotSplitting {
    /// The recommended splitting (9 × 9, 69 sub-pencils): edges within a spot
    /// resolved to about half the in-air spot size (see BENCHMARKS.md for the
    /// agreement with Monte Carlo and the cost).
    pub const RECOMMENDED: Self = Self { per_axis: 9 };

    /// The smallest and largest lattice sizes per axis.
    pub const PER_AXIS_RANGE: (usize, usize) = (5, 15);

    /// A lattice of `per_axis` × `per_axis` sub-pencils; `per_axis` must be
    /// odd, from 5 to 15.
    pub fn lattice(per_axis: usize) -> Result<Self> {
        let (lo, hi) = Self::PER_AXIS_RANGE;
        if per_axis % 2 == 1 && (lo..=hi).contains(&per_axis) {
            Ok(Self { per_axis })
        } else {
            Err(DoseError::InvalidOption {
                what: "spot splitting",
                value: format!("{per_axis}x{per_axis}"),
                expected: "an odd lattice size from 5x5 to 15x15, or \"fine\" (9x9)",
            })
        }
    }

    /// Sub-pencils per axis.
    pub fn per_axis(self) -> usize {
        self.per_axis
    }

    /// Parses `"fine"` (the [recommended](Self::RECOMMENDED) 9 × 9) or
    /// `"NxN"` (N odd, 5–15).
    pub fn parse(s: &str) -> Result<Self> {
        if s == "fine" {
            return Ok(Self::RECOMMENDED);
        }
        let invalid = || DoseError::InvalidOption {
            what: "spot splitting",
            value: s.to_owned(),
            expected: "\"fine\" (9x9) or an odd lattice size \"NxN\" from \"5x5\" to \"15x15\"",
        };
        let (a, b) = s.split_once('x').ok_or_else(invalid)?;
        let n: usize = a.parse().map_err(|_| invalid())?;
        if b.parse::<usize>().ok() != Some(n) {
            return Err(invalid());
        }
        Self::lattice(n).map_err(|_| invalid())
    }

    /// The sub-pencils kept per spot when the spot is as wide in x as in y
    /// (25, 49, 69, 109, 157, 209 for 5 × 5 … 15 × 15).
    pub fn sub_pencil_count(self) -> usize {
        self.sub_pencils((1.0, 1.0)).points.len()
    }

    /// The name [`parse`](Self::parse) reads back, e.g. `"9x9"`.
    pub fn name(self) -> String {
        format!("{0}x{0}", self.per_axis)
    }

    /// The span e·s of the lattice (m·h = e·s) for m = (n − 1)/2.
    fn span_in_envelope_widths(self) -> f64 {
        match self.per_axis {
            5 => 2.5,
            7 => 3.0,
            _ => 3.5,
        }
    }

    /// The sub-pencils of a spot whose smallest in-air σ (at the isocentre
    /// plane) is `sigma_min_mm` per axis (x, y).
    pub(crate) fn sub_pencils(self, sigma_min_mm: (f64, f64)) -> SubPencils {
        let m = (self.per_axis / 2) as i32;
        let e = self.span_in_envelope_widths();
        // σ_min² = s² + (c h)², h = e s / m
        let k = WIDTH_PER_STEP * e / f64::from(m);
        let axis = |sigma: f64| {
            let s = sigma / (1.0 + k * k).sqrt();
            let h = e * s / f64::from(m);
            let w: Vec<f64> = (-m..=m)
                .map(|i| {
                    let u = f64::from(i) * h;
                    (-u * u / (2.0 * s * s)).exp()
                })
                .collect();
            (h, w)
        };
        let (hx, wx) = axis(sigma_min_mm.0);
        let (hy, wy) = axis(sigma_min_mm.1);
        let mut points = Vec::with_capacity(wx.len() * wy.len());
        for (i, a) in wx.iter().enumerate() {
            for (j, b) in wy.iter().enumerate() {
                // the largest product is 1 (both centres)
                if a * b >= WEIGHT_FLOOR {
                    let u = (i as f64 - f64::from(m)) * hx;
                    let v = (j as f64 - f64::from(m)) * hy;
                    points.push((u, v, a * b));
                }
            }
        }
        let total: f64 = points.iter().map(|p| p.2).sum();
        for p in &mut points {
            p.2 /= total;
        }
        let var_x = points.iter().map(|p| p.2 * p.0 * p.0).sum();
        let var_y = points.iter().map(|p| p.2 * p.1 * p.1).sum();
        SubPencils {
            points,
            var_mm2: (var_x, var_y),
        }
    }
}

/// The sub-pencils of one spot: offsets at the isocentre plane and shares,
/// and their second moment per axis.
#[derive(Clone, Debug)]
pub(crate) struct SubPencils {
    /// (offset x, offset y (mm, isocentre plane), share); shares sum to 1.
    pub points: Vec<(f64, f64, f64)>,
    /// Σ share·offset² per axis, mm².
    pub var_mm2: (f64, f64),
}

impl SubPencils {
    /// The single pencil of ray casting.
    pub fn none() -> Self {
        Self {
            points: vec![(0.0, 0.0, 1.0)],
            var_mm2: (0.0, 0.0),
        }
    }
}

/// σ_min: the smallest in-air σ over Δ in `[lo, hi]`, scaled to the
/// isocentre plane, σ(Δ)/(1 + Δ/SAD), given σ²(Δ) as `sigma_sq_at` (sampled
/// at 65 points: σ²(Δ) is a quadratic in Δ, its ratio to (1 + Δ/SAD)²
/// smooth).
pub(crate) fn sigma_min_mm(
    sigma_sq_at: impl Fn(f64) -> f64,
    inv_sad: f64,
    (lo, hi): (f64, f64),
) -> f64 {
    (0..=64)
        .map(|k| {
            let d = lo + (hi - lo) * f64::from(k) / 64.0;
            sigma_sq_at(d) / (1.0 + d * inv_sad).powi(2)
        })
        .fold(f64::INFINITY, f64::min)
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_rejects_others() {
        assert_eq!(
            SpotSplitting::parse("fine").unwrap(),
            SpotSplitting::RECOMMENDED
        );
        for n in [5, 7, 9, 11, 13, 15] {
            let s = SpotSplitting::parse(&format!("{n}x{n}")).unwrap();
            assert_eq!(s.per_axis(), n);
            assert_eq!(SpotSplitting::parse(&s.name()).unwrap(), s);
        }
        for bad in ["3x3", "4x4", "17x17", "5x7", "9", "x", "", "fine9", "-5x-5"] {
            let e = SpotSplitting::parse(bad).unwrap_err().to_string();
            assert!(e.contains("spot splitting"), "{bad}: {e}");
        }
    }

    /// The lattice's sum of narrow Gaussians against the exact 2D Gaussian of
    /// the spot (σ = 1 per axis), on a 0.05 σ grid to ±4 σ: the documented
    /// largest errors, unit total weight, exact second moment.
    #[test]
    fn lattices_reproduce_the_gaussian() {
        for (n, max_err, kept) in [
            (5, 0.012, 25),
            (7, 0.006, 49),
            (9, 0.0035, 69),
            (11, 0.0025, 109),
        ] {
            let split = SpotSplitting::lattice(n).unwrap();
            let sub = split.sub_pencils((1.0, 1.0));
            assert_eq!(sub.points.len(), kept, "{n}x{n}");
            assert_eq!(split.sub_pencil_count(), kept);
            let total: f64 = sub.points.iter().map(|p| p.2).sum();
            assert!((total - 1.0).abs() < 1e-12);
            let (vx, vy) = sub.var_mm2;
            assert!(vx < 1.0 && (vx - vy).abs() < 1e-12);
            let s2 = 1.0 - vx; // σ_sub²
            let peak = 1.0 / (2.0 * std::f64::consts::PI);
            let mut worst: f64 = 0.0;
            for a in -80..=80 {
                for b in -80..=80 {
                    let (x, y) = (f64::from(a) * 0.05, f64::from(b) * 0.05);
                    let sum: f64 = sub
                        .points
                        .iter()
                        .map(|&(u, v, w)| {
                            w * (-((x - u).powi(2) + (y - v).powi(2)) / (2.0 * s2)).exp()
                                / (2.0 * std::f64::consts::PI * s2)
                        })
                        .sum();
                    let exact = peak * (-(x * x + y * y) / 2.0).exp();
                    worst = worst.max((sum - exact).abs() / peak);
                }
            }
            assert!(worst < max_err, "{n}x{n}: error {worst} of the peak");
        }
    }

    #[test]
    fn sub_pencils_narrow_as_the_lattice_grows() {
        let width = |n| {
            1.0 - SpotSplitting::lattice(n)
                .unwrap()
                .sub_pencils((1.0, 1.0))
                .var_mm2
                .0
        };
        let w: Vec<f64> = [5, 7, 9, 11, 13, 15].into_iter().map(width).collect();
        assert!(w.windows(2).all(|p| p[1] < p[0]), "{w:?}");
        // the recommended lattice: σ_sub about half the spot
        assert!((w[2].sqrt() - 0.52).abs() < 0.02, "{}", w[2].sqrt());
    }

    #[test]
    fn sigma_min_finds_the_waist_of_a_converging_beam() {
        // σ²(d) = 4 − 0.02 d + 1e-4 d² has its waist at d = 100 (σ² = 3)
        let s = sigma_min_mm(|d| 4.0 - 0.02 * d + 1e-4 * d * d, 0.0, (-50.0, 250.0));
        assert!((s - 3f64.sqrt()).abs() < 1e-3, "{s}");
        // a diverging one: smallest at the upstream end
        let s = sigma_min_mm(|d| 4.0 + 0.02 * d, 0.0, (0.0, 100.0));
        assert!((s - 2.0).abs() < 1e-12);
    }
}
