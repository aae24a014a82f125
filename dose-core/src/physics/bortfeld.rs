//! Bortfeld's analytical Bragg curve, with the range taken from PSTAR.
//!
//! T. Bortfeld, "An analytical approximation of the Bragg curve for
//! therapeutic proton beams", Med Phys 24:2024 (1997). With the Bragg–Kleeman
//! rule R = α E^p, a proton of initial energy E₀ (range R₀) at depth z has the
//! residual range r = R₀ − z, energy E = (r/α)^{1/p} and stopping power
//! S = r^{1/p − 1} / (p α^{1/p}). Primary fluence falls linearly through
//! nonelastic nuclear interactions, Φ(z) = Φ₀ (1 + β r)/(1 + β R₀), of whose
//! released energy a fraction γ is absorbed locally; a fraction ε of the beam
//! is in a low-energy tail. The depth dose per primary (MeV cm²/g, ρ = 1) is
//!
//!   D̂(z) = [ (1/p) r^{1/p−1} + (β (1/p + γ) + ε/R₀) r^{1/p} ] / ((1 + β R₀) α^{1/p})
//!
//! (Bortfeld Eq. 26 with the tail term of Eq. 29; the plateau coefficients
//! 17.93, 0.444 and 31.7 of his water example follow from α = 0.0022, p = 1.77,
//! β = 0.012 cm⁻¹, γ = 0.6). isodose divides by 1 + ε to express the dose per
//! incident proton (the tail's ε Φ₀ protons included), so that the integrated
//! depth dose never exceeds E₀ per proton. Range straggling and the beam's energy spread
//! blur it with a Gaussian of width σ² = σ_mono² + (σ_E dR/dE)², σ_mono =
//! 0.012 R₀^0.935 cm; the convolution of each power r^x with the Gaussian is
//!
//!   (G_σ ∗ r^x)(z) = σ^x J_x(ζ),  J_x(ζ) = (2π)^{−1/2} ∫₀^∞ t^x e^{−(t−ζ)²/2} dt,
//!   ζ = (R₀ − z)/σ,
//!
//! Bortfeld's parabolic-cylinder form (Eq. 29) in another guise:
//! e^{−ζ²/4} D_ν(−ζ) = J_{−ν−1}(ζ)·√(2π)/Γ(−ν). isodose evaluates J_x by
//! quadrature near the end of range and by its asymptotic series in the
//! plateau, so no special-function library is needed.
//!
//! **Ranges tied to PSTAR:** R₀ is the PSTAR CSDA range of E₀, and α is set
//! per energy to R₀/E₀^p, so the primary term deposits exactly E₀ per proton
//! (the fit constant α = 0.0022 of water is off PSTAR by up to 1.8 %).

use crate::error::{DoseError, Result};

/// Constants of the water Bragg curve (from `data/protons/`; see
/// [`crate::proton::generic`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BortfeldParams {
    /// Bragg–Kleeman exponent p.
    pub p: f64,
    /// Nuclear fluence-loss slope β, cm⁻¹.
    pub beta_per_cm: f64,
    /// Locally absorbed fraction γ of nonelastic energy.
    pub gamma: f64,
    /// Fraction ε of primary fluence in the low-energy tail.
    pub epsilon: f64,
    /// σ_mono = a · R₀^b (cm): coefficient a.
    pub sigma_mono_coefficient_cm: f64,
    /// σ_mono exponent b.
    pub sigma_mono_exponent: f64,
}

/// The Bragg curve of one beam energy: R₀, σ and the coefficients of the two
/// power terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BraggCurve {
    range_cm: f64,
    sigma_cm: f64,
    p: f64,
    /// coefficient of r^{1/p − 1}
    c_peak: f64,
    /// coefficient of r^{1/p}
    c_plateau: f64,
    /// nuclear (locally absorbed) share of the r^{1/p} coefficient
    c_nuclear: f64,
}

impl BraggCurve {
    /// The curve of a beam of `energy_mev` with CSDA range `range_mm`, total
    /// stopping power `stopping_mev_cm2_g` at E₀ (for dR/dE) and relative
    /// energy spread `energy_spread_fraction` (1 σ).
    pub fn new(
        params: &BortfeldParams,
        energy_mev: f64,
        range_mm: f64,
        stopping_mev_cm2_g: f64,
        energy_spread_fraction: f64,
    ) -> Result<Self> {
        let positive = [energy_mev, range_mm, stopping_mev_cm2_g, params.p];
        if positive.iter().any(|v| !v.is_finite() || *v <= 0.0)
            || !energy_spread_fraction.is_finite()
            || energy_spread_fraction < 0.0
        {
            return Err(DoseError::OutOfRange {
                field: "Bragg curve parameters".into(),
                value: energy_mev,
                reason: format!(
                    "energy {energy_mev} MeV, range {range_mm} mm, stopping power \
                     {stopping_mev_cm2_g} MeV cm2/g and p must be > 0, energy spread \
                     {energy_spread_fraction} >= 0"
                ),
            });
        }
        let p = params.p;
        let r0 = range_mm / 10.0;
        // α per energy so that R₀ = α E₀^p holds with the PSTAR range
        let alpha = r0 / energy_mev.powf(p);
        let alpha_1p = alpha.powf(1.0 / p);
        let beta = params.beta_per_cm;
        // per incident proton: the tail adds ε Φ₀ protons to the Φ₀ of the peak
        let norm = 1.0 / ((1.0 + beta * r0) * alpha_1p * (1.0 + params.epsilon));
        let sigma_mono = params.sigma_mono_coefficient_cm * r0.powf(params.sigma_mono_exponent);
        let sigma_energy = energy_spread_fraction * energy_mev / stopping_mev_cm2_g;
        Ok(Self {
            range_cm: r0,
            sigma_cm: (sigma_mono * sigma_mono + sigma_energy * sigma_energy).sqrt(),
            p,
            c_peak: norm / p,
            c_plateau: norm * (beta * (1.0 / p + params.gamma) + params.epsilon / r0),
            c_nuclear: norm * beta * params.gamma,
        })
    }

    /// Width σ of the range straggling and energy-spread Gaussian, mm.
    pub fn sigma_mm(&self) -> f64 {
        10.0 * self.sigma_cm
    }

    /// Depth dose per primary proton at depth `z_mm` in water, MeV cm²/g
    /// (laterally integrated: multiply by [`super::GY_MM2_PER_MEV_CM2_PER_G`]
    /// for Gy·mm²).
    pub fn dose(&self, z_mm: f64) -> f64 {
        let zeta = (self.range_cm - z_mm / 10.0) / self.sigma_cm;
        let x_peak = 1.0 / self.p - 1.0;
        let x_plateau = 1.0 / self.p;
        self.c_peak * self.sigma_cm.powf(x_peak) * gaussian_power_moment(x_peak, zeta)
            + self.c_plateau
                * self.sigma_cm.powf(x_plateau)
                * gaussian_power_moment(x_plateau, zeta)
    }

    /// Share of [`Self::dose`] at `z_mm` deposited by the locally absorbed
    /// nonelastic-nuclear term (the γβE(z) part), 0–1.
    pub fn nuclear_fraction(&self, z_mm: f64) -> f64 {
        let total = self.dose(z_mm);
        if total <= 0.0 {
            return 0.0;
        }
        let zeta = (self.range_cm - z_mm / 10.0) / self.sigma_cm;
        let x = 1.0 / self.p;
        (self.c_nuclear * self.sigma_cm.powf(x) * gaussian_power_moment(x, zeta) / total)
            .clamp(0.0, 1.0)
    }
}

/// J_x(ζ) = (2π)^{−1/2} ∫₀^∞ t^x e^{−(t−ζ)²/2} dt for x > −1: the mean of
/// max(ζ + N, 0)^x over a standard normal N, the Gaussian blur of a power of
/// the residual range.
///
/// For ζ ≥ 12 (the plateau, 12 σ before the end of range) the asymptotic
/// series ζ^x [1 + x(x−1)/(2ζ²) + x(x−1)(x−2)(x−3)/(8ζ⁴)] is used (next term
/// below 1e-7 relative); otherwise Simpson quadrature on t ∈ [ζ−9, ζ+9] ∩ [0, ∞)
/// after the substitution t = u^m, which removes the t^x singularity at 0.
pub fn gaussian_power_moment(x: f64, zeta: f64) -> f64 {
    if zeta >= 12.0 {
        let z2 = 1.0 / (zeta * zeta);
        let a = x * (x - 1.0) / 2.0;
        let b = x * (x - 1.0) * (x - 2.0) * (x - 3.0) / 8.0;
        return zeta.powf(x) * (1.0 + a * z2 + b * z2 * z2);
    }
    let t_hi = zeta + 9.0;
    if t_hi <= 0.0 {
        return 0.0;
    }
    let t_lo = (zeta - 9.0).max(0.0);
    // t = u^m with m(x+1) − 1 a non-negative integer: the integrand
    // m u^{m(x+1)−1} e^{−(u^m−ζ)²/2} is then smooth at u = 0
    let m = if x < 0.0 {
        1.0 / (x + 1.0)
    } else {
        2.0 / (x + 1.0)
    };
    let power = m * (x + 1.0) - 1.0;
    let (u_lo, u_hi) = (t_lo.powf(1.0 / m), t_hi.powf(1.0 / m));
    const N: usize = 400;
    let h = (u_hi - u_lo) / N as f64;
    let f = |u: f64| {
        let t = u.powf(m);
        let g = (-(t - zeta) * (t - zeta) / 2.0).exp();
        if power == 0.0 { g } else { u.powf(power) * g }
    };
    let mut sum = f(u_lo) + f(u_hi);
    for i in 1..N {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += w * f(u_lo + i as f64 * h);
    }
    m * sum * h / 3.0 / (2.0 * std::f64::consts::PI).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_the_half_gaussian() {
        let s2pi = (2.0 * std::f64::consts::PI).sqrt();
        // ∫₀^∞ t^x e^{−t²/2} dt = 2^{(x−1)/2} Γ((x+1)/2)
        let cases = [
            (0.0, (std::f64::consts::PI / 2.0).sqrt()),
            (1.0, 1.0),
            (2.0, (std::f64::consts::PI / 2.0).sqrt()),
            // Γ(1/4) = 3.6256099082219083
            (-0.5, 2f64.powf(-0.75) * 3.625_609_908_221_908),
        ];
        for (x, integral) in cases {
            let j = gaussian_power_moment(x, 0.0);
            assert!((j - integral / s2pi).abs() < 1e-6, "x = {x}: {j}");
        }
        // x = 0 is the normal CDF: J_0(ζ) = Φ(ζ); Φ(1) = 0.8413447460685429
        assert!((gaussian_power_moment(0.0, 1.0) - 0.841_344_746_068_542_9).abs() < 1e-9);
    }

    #[test]
    fn series_and_quadrature_agree_at_the_switch() {
        for x in [1.0 / 1.77 - 1.0, 1.0 / 1.77] {
            let below = gaussian_power_moment(x, 11.999_999);
            let above = gaussian_power_moment(x, 12.0);
            assert!(
                (below - above).abs() / above < 1e-6,
                "x = {x}: {below} vs {above}"
            );
        }
    }

    #[test]
    fn plateau_coefficients_match_bortfelds_water_example() {
        // with α = 0.0022 cm MeV^-p (E₀ chosen so that R₀ = α E₀^p), the
        // unblurred plateau is [17.93 r^-0.435 + (0.444 + 31.7 ε/R₀) r^0.565]/(1 + 0.012 R₀)
        let params = BortfeldParams {
            p: 1.77,
            beta_per_cm: 0.012,
            gamma: 0.6,
            epsilon: 0.1,
            sigma_mono_coefficient_cm: 0.012,
            sigma_mono_exponent: 0.935,
        };
        let e0: f64 = 150.0;
        let r0_cm = 0.0022 * e0.powf(1.77);
        let c = BraggCurve::new(&params, e0, r0_cm * 10.0, 5.445, 0.0).unwrap();
        let k = (1.0 + 0.012 * r0_cm) * 1.1; // (1 + β R₀)(1 + ε)
        assert!((c.c_peak * k - 17.93).abs() < 0.01, "{}", c.c_peak * k);
        let plateau = 0.444 + 31.7 * 0.1 / r0_cm;
        assert!(
            (c.c_plateau * k - plateau).abs() < 0.01,
            "{}",
            c.c_plateau * k
        );
    }
}
