//! Lateral spread of a pencil beam by multiple Coulomb scattering in water.
//!
//! Highland's formula in the differential form of Gottschalk et al.,
//! NIM B74:467 (1993), as used for pencil beams by Hong et al., PMB 41:1305
//! (1996): the rms lateral displacement at depth z of a beam entering water at
//! z = 0 is
//!
//!   y₀²(z) = E_s² [1 + (1/9) log₁₀(z/X₀)]² ∫₀^z ((z − z')/(p v(z')))² dz'/X₀
//!
//! with E_s = 14.1 MeV, X₀ the radiation length of water (36.08 g/cm²), and
//! p v(z') = E (E + 2 m_p c²)/(E + m_p c²) at the residual energy E(z') of the
//! proton, from the PSTAR residual range R₀ − z'. The integral runs over the
//! depth in water (or water-equivalent depth, the usual approximation in
//! heterogeneous media); it is evaluated on a fine grid with the trapezoidal
//! rule and held constant beyond the end of range.

use super::PROTON_MASS_MEV;
use super::pstar::WaterStopping;
use crate::error::{DoseError, Result};

/// Highland–Gottschalk constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HighlandParams {
    /// E_s, MeV (14.1).
    pub es_mev: f64,
    /// Coefficient of log₁₀ in the correction factor (1/9).
    pub log10_coefficient: f64,
    /// Radiation length of water, mm (X₀ / ρ).
    pub water_radiation_length_mm: f64,
}

/// p·v of a proton of kinetic energy `energy_mev`, MeV.
pub fn pv_mev(energy_mev: f64) -> f64 {
    energy_mev * (energy_mev + 2.0 * PROTON_MASS_MEV) / (energy_mev + PROTON_MASS_MEV)
}

/// σ_MCS(z) (mm) at depths 0, step, 2·step, … up to and including the first
/// node at or beyond `max_depth_mm`, for a beam of `energy_mev` entering water.
pub fn mcs_sigma_mm(
    params: &HighlandParams,
    pstar: &WaterStopping,
    energy_mev: f64,
    step_mm: f64,
    max_depth_mm: f64,
) -> Result<Vec<f64>> {
    if !(step_mm.is_finite() && step_mm > 0.0 && max_depth_mm.is_finite() && max_depth_mm >= 0.0) {
        return Err(DoseError::OutOfRange {
            field: "MCS table step / extent (mm)".into(),
            value: step_mm,
            reason: "step must be > 0 and the extent finite and >= 0".into(),
        });
    }
    let range = pstar.csda_range_mm(energy_mev)?;
    let n = (max_depth_mm / step_mm).ceil() as usize + 1;
    // fine integration grid: 0.1 mm or finer, to 0.1 mm short of the range
    // (1/(pv)² diverges at the end of range; the last 0.1 mm moves σ by < 0.1 %)
    let h = (range / 2000.0).min(0.1);
    let z_end = (range - 0.1).max(h);
    let n_fine = (z_end / h).ceil() as usize;
    let inv_pv2: Vec<f64> = (0..=n_fine)
        .map(|i| {
            let z = (i as f64 * h).min(z_end);
            let e = pstar.energy_from_range_mev(range - z);
            1.0 / pv_mev(e).powi(2)
        })
        .collect();
    // running sums for ∫ (z − z')² w dz' = z² A − 2 z B + C with
    // A = ∫ w, B = ∫ z' w, C = ∫ z'² w (trapezoidal)
    let (mut a, mut b, mut c) = (0.0f64, 0.0f64, 0.0f64);
    let mut moments = Vec::with_capacity(n_fine + 1);
    moments.push((0.0, 0.0, 0.0));
    for i in 1..=n_fine {
        let (z0, z1) = ((i - 1) as f64 * h, (i as f64 * h).min(z_end));
        let dz = z1 - z0;
        let (w0, w1) = (inv_pv2[i - 1], inv_pv2[i]);
        a += 0.5 * dz * (w0 + w1);
        b += 0.5 * dz * (z0 * w0 + z1 * w1);
        c += 0.5 * dz * (z0 * z0 * w0 + z1 * z1 * w1);
        moments.push((a, b, c));
    }
    let x0 = params.water_radiation_length_mm;
    Ok((0..n)
        .map(|k| {
            let z = (k as f64 * step_mm).min(z_end);
            if z <= 0.0 {
                return 0.0;
            }
            let i = ((z / h).floor() as usize).min(n_fine);
            let (a, b, c) = moments[i];
            let integral = (z * z * a - 2.0 * z * b + c).max(0.0) / x0;
            let log_term = (1.0 + params.log10_coefficient * (z / x0).log10()).max(0.0);
            params.es_mev * log_term * integral.sqrt()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn highland() -> HighlandParams {
        HighlandParams {
            es_mev: 14.1,
            log10_coefficient: 1.0 / 9.0,
            water_radiation_length_mm: 360.8,
        }
    }

    #[test]
    fn pv_limits() {
        // non-relativistic pv → 2E, ultra-relativistic → E
        assert!((pv_mev(0.001) / 0.002 - 1.0).abs() < 1e-5);
        assert!((pv_mev(1e7) / 1e7 - 1.0).abs() < 1e-3);
    }

    #[test]
    fn sigma_grows_monotonically_and_is_zero_at_entrance() {
        let pstar = WaterStopping::pstar().unwrap();
        let s = mcs_sigma_mm(&highland(), pstar, 150.0, 1.0, 200.0).unwrap();
        assert_eq!(s[0], 0.0);
        assert!(s.windows(2).all(|w| w[1] >= w[0]));
        // beyond the range (157.7 mm) it stays constant
        assert_eq!(s[170], s[200]);
    }
}
