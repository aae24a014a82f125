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

/// σ_MCS² along one ray through a heterogeneous medium: the differential
/// Highland form of [`mcs_sigma_mm`] with the path measured in radiation
/// lengths of the media crossed,
///
///   y₀²(s) = E_s² [1 + (1/9) log₁₀ ℓ(s)]² ∫₀^s (s − s')² / (p v(s'))² dℓ(s'),
///   ℓ(s) = ∫₀^s S(s') ds' / X₀,water,
///
/// s the geometric path length (the lever arm of a deflection), S the
/// relative scattering power of the medium ([`super::scattering`]; S = 1 in
/// water, where this is [`mcs_sigma_mm`]), p v from the residual energy at
/// the water-equivalent depth reached. Built point by point along the ray
/// (non-decreasing s): the running sums A = ∫ w dℓ, B = ∫ s' w dℓ,
/// C = ∫ s'² w dℓ (w = 1/(pv)², trapezoidal in w over each step, exact in
/// ℓ) give ∫ (s − s')² w dℓ = s²A − 2sB + C.
#[derive(Clone, Copy, Debug, Default)]
pub struct RayScattering {
    a: f64,
    b: f64,
    c: f64,
    /// ℓ so far.
    lengths: f64,
    /// The last point: (s, ℓ, w).
    last: Option<(f64, f64, f64)>,
}

impl RayScattering {
    /// No path yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Extends the path to `s_mm` (mm of path from any fixed origin), where
    /// ℓ = `lengths` radiation lengths have been crossed since that origin
    /// and 1/(pv)² = `inv_pv2` (MeV⁻²).
    pub fn advance(&mut self, s_mm: f64, lengths: f64, inv_pv2: f64) {
        if let Some((s0, l0, w0)) = self.last {
            let dl = (lengths - l0).max(0.0);
            let w = 0.5 * (w0 + inv_pv2);
            let mid = 0.5 * (s0 + s_mm);
            self.a += w * dl;
            self.b += w * dl * mid;
            self.c += w * dl * mid * mid;
            self.lengths += dl;
        }
        self.last = Some((s_mm, lengths, inv_pv2));
    }

    /// y₀² (mm²) at path `s_mm`.
    pub fn sigma_sq_mm2(&self, params: &HighlandParams, s_mm: f64) -> f64 {
        if self.lengths <= 0.0 {
            return 0.0;
        }
        let integral = (s_mm * s_mm * self.a - 2.0 * s_mm * self.b + self.c).max(0.0);
        let log_term = (1.0 + params.log10_coefficient * self.lengths.log10()).max(0.0);
        (params.es_mev * log_term).powi(2) * integral
    }
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

    /// In water the ray form is the tabulated one: the same integral on
    /// 0.25 mm steps against the 0.1 mm trapezoid of `mcs_sigma_mm`.
    #[test]
    fn ray_scattering_in_water_is_the_water_table() {
        let pstar = WaterStopping::pstar().unwrap();
        let h = highland();
        let e = 150.0;
        let table = mcs_sigma_mm(&h, pstar, e, 1.0, 150.0).unwrap();
        let range = pstar.csda_range_mm(e).unwrap();
        let mut ray = RayScattering::new();
        for k in 0..=600u32 {
            let s = f64::from(k) * 0.25;
            let w = 1.0 / pv_mev(pstar.energy_from_range_mev(range - s)).powi(2);
            ray.advance(s, s / h.water_radiation_length_mm, w);
            if k % 40 == 0 && k > 0 {
                let want = table[(k / 4) as usize];
                let got = ray.sigma_sq_mm2(&h, s).sqrt();
                assert!((got - want).abs() < 2e-3 * want, "{s} mm: {got} vs {want}");
            }
        }
    }

    /// A slab of twice water's scattering power and half its thickness adds
    /// the same radiation lengths; the lever arm behind it is what differs:
    /// the slab nearer the entrance gives the wider beam at depth.
    #[test]
    fn ray_scattering_weights_deflections_by_their_lever_arm() {
        let h = highland();
        let run = |slab: (f64, f64)| {
            let mut ray = RayScattering::new();
            let mut l = 0.0;
            for k in 0..=400 {
                let s = f64::from(k) * 0.25;
                let power = if (slab.0..slab.1).contains(&s) {
                    2.0
                } else {
                    0.0
                };
                if k > 0 {
                    l += power * 0.25 / h.water_radiation_length_mm;
                }
                ray.advance(s, l, 1.0 / (200.0f64).powi(2));
            }
            ray.sigma_sq_mm2(&h, 100.0)
        };
        let (near, far) = (run((10.0, 20.0)), run((70.0, 80.0)));
        // ∫(100 − s)² ds over each slab: (90³ − 80³)/3 against (30³ − 20³)/3
        let exact = (90f64.powi(3) - 80f64.powi(3)) / (30f64.powi(3) - 20f64.powi(3));
        assert!(
            (near / far / exact - 1.0).abs() < 0.02,
            "{} vs {exact}",
            near / far
        );
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
