//! The pencil-beam dose model: the one physics function both backends
//! evaluate.
//!
//! The dose of one pencil beam (weight N protons) at a point at depth Δ
//! downstream of the isocentre plane, water-equivalent depth w along the
//! pencil's ray, and lateral offsets (dx, dy) from the ray in the plane
//! perpendicular to the beam axis is
//!
//!   D = N · IDD(w) · [ (1 − h) G(dx, dy; σx, σy) + h G(dx, dy; σhx, σhy) ]
//!
//! with G(dx, dy; σx, σy) = exp(−dx²/2σx² − dy²/2σy²) / (2π σx σy), IDD the
//! machine's integrated depth dose (Gy·mm² per proton), h the halo's dose
//! fraction and σhx² = σx² + σ_extra² its width. The core width adds in
//! quadrature the in-air spot size at Δ, multiple Coulomb scattering in the
//! patient at w (Highland, [`crate::physics::mcs`]) and scattering in a range
//! shifter projected to the point:
//!
//!   σx² = σ_air,x(Δ)² + σ_MCS(w)² + σ_RS(Δ)²
//!
//! **Inverse square.** Offsets and widths are measured in the true plane at
//! depth Δ, where the normalisation 1/(2π σx σy) already contains the
//! divergence: in the equivalent formulation with offsets projected to the
//! isocentre plane through the virtual sources, the Gaussian is multiplied by
//! the inverse-square factor SAD_x·SAD_y / ((SAD_x + Δ)(SAD_y + Δ)), the
//! Jacobian of that projection. Both give the same dose; the true-plane form
//! keeps the lateral integral equal to the IDD at every depth (energy
//! conservation).

use std::f64::consts::PI;

/// Depth-dependent factors of one pencil beam at one depth node.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DepthNode {
    /// IDD·(1 − h)/(2π σx σy), Gy per proton.
    pub core_amplitude: f64,
    /// 1/(2σx²), mm⁻².
    pub core_inv_2sx2: f64,
    /// 1/(2σy²), mm⁻².
    pub core_inv_2sy2: f64,
    /// IDD·h/(2π σhx σhy), Gy per proton.
    pub halo_amplitude: f64,
    /// 1/(2σhx²), mm⁻².
    pub halo_inv_2sx2: f64,
    /// 1/(2σhy²), mm⁻².
    pub halo_inv_2sy2: f64,
    /// Squared lateral cut-off radius at this depth, mm².
    pub cutoff_sq: f64,
}

impl DepthNode {
    /// The factors for an IDD value `idd` (Gy·mm² per proton), core widths
    /// `sx`, `sy` (mm), halo fraction `halo` and halo widths `hx`, `hy`.
    /// Lateral cut-off: the radius beyond which each Gaussian drops at most
    /// half of `cutoff_fraction` of the laterally integrated dose (for a
    /// Gaussian of width σ the dose outside radius R is exp(−R²/2σ²)),
    /// using the larger width of each Gaussian.
    pub fn new(
        idd: f64,
        (sx, sy): (f64, f64),
        halo: f64,
        (hx, hy): (f64, f64),
        cutoff_fraction: f64,
    ) -> Self {
        let core_w = 1.0 - halo;
        let radius_sq = |w: f64, s: f64| {
            if w <= 0.0 {
                0.0
            } else {
                // w·exp(−R²/2σ²) ≤ δ/2  ⇔  R² ≥ 2σ² ln(2w/δ)
                (2.0 * s * s * (2.0 * w / cutoff_fraction).ln()).max(0.0)
            }
        };
        let cutoff_sq = radius_sq(core_w, sx.max(sy)).max(if halo > 0.0 {
            radius_sq(halo, hx.max(hy))
        } else {
            0.0
        });
        let (halo_amplitude, halo_inv_2sx2, halo_inv_2sy2) = if halo > 0.0 {
            (
                idd * halo / (2.0 * PI * hx * hy),
                0.5 / (hx * hx),
                0.5 / (hy * hy),
            )
        } else {
            (0.0, 0.0, 0.0)
        };
        Self {
            core_amplitude: idd * core_w / (2.0 * PI * sx * sy),
            core_inv_2sx2: 0.5 / (sx * sx),
            core_inv_2sy2: 0.5 / (sy * sy),
            halo_amplitude,
            halo_inv_2sx2,
            halo_inv_2sy2,
            cutoff_sq,
        }
    }
}

/// Dose per proton (Gy) at lateral offsets `dx`, `dy` (mm) from a pencil's
/// ray, for the depth factors `node`; zero beyond the cut-off.
#[inline(always)]
pub fn lateral_dose_per_proton(node: &DepthNode, dx: f64, dy: f64) -> f64 {
    let (dx2, dy2) = (dx * dx, dy * dy);
    if dx2 + dy2 > node.cutoff_sq {
        return 0.0;
    }
    let core = node.core_amplitude * (-(dx2 * node.core_inv_2sx2 + dy2 * node.core_inv_2sy2)).exp();
    if node.halo_amplitude > 0.0 {
        core + node.halo_amplitude * (-(dx2 * node.halo_inv_2sx2 + dy2 * node.halo_inv_2sy2)).exp()
    } else {
        core
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lateral integral of the kernel is the IDD, less what the cut-off
    /// drops (at most the cut-off fraction).
    #[test]
    fn lateral_integral_is_the_idd() {
        for (halo, cutoff) in [(0.0, 1e-6), (0.1, 1e-6), (0.1, 0.005)] {
            let node = DepthNode::new(2.0, (3.0, 4.0), halo, (15.0, 16.0), cutoff);
            let h = 0.1;
            let mut sum = 0.0;
            for i in -1500..=1500 {
                for j in -1500..=1500 {
                    sum += lateral_dose_per_proton(&node, i as f64 * h, j as f64 * h) * h * h;
                }
            }
            let dropped = 1.0 - sum / 2.0;
            assert!(
                dropped >= -1e-6 && dropped <= cutoff + 1e-6,
                "halo {halo}, cutoff {cutoff}: dropped {dropped}"
            );
        }
    }
}
