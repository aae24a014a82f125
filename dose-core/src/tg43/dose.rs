//! The TG-43 dose-rate equations (pure functions of one point and one seed).
//!
//! Rivard et al., "Update of AAPM Task Group No. 43 Report", Med Phys 31:633
//! (2004) (TG-43U1). Distances here are in mm; the ratios make the units of
//! the geometry function cancel. S_K is in U (1 U = 1 µGy m² h⁻¹ =
//! 1 cGy cm² h⁻¹), Λ in cGy h⁻¹ U⁻¹, so dose rates come out in cGy h⁻¹.
//!
//! - 2D (line source), TG-43U1 Eq. 1:
//!   Ḋ(r, θ) = S_K · Λ · [G_L(r, θ) / G_L(r₀, θ₀)] · g_L(r) · F(r, θ)
//! - 1D (point source), TG-43U1 Eq. 11 with the point geometry function:
//!   Ḋ(r) = S_K · Λ · [G_P(r) / G_P(r₀)] · g_P(r) · φ_an(r),  G_P(r) = 1/r²
//! - 1D with the line geometry function, TG-43U1 Eq. 11 with X = L (the form
//!   of the consensus QA tables):
//!   Ḋ(r) = S_K · Λ · [G_L(r, θ₀) / G_L(r₀, θ₀)] · g_L(r) · φ_an(r)
//!
//! with r₀ = 1 cm, θ₀ = 90°. Interpolation of g, F and φ_an: see
//! [`super::interp`]. Points closer than [`SeedModel::min_distance_mm`] are
//! evaluated at that distance in the same direction (on the transverse plane
//! if r = 0).

use super::source::SeedModel;
use crate::error::{DoseError, Result};

/// Reference distance r₀ = 1 cm, in mm.
pub const R0_MM: f64 = 10.0;

/// Which TG-43 formalism evaluates the dose rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Formalism {
    /// 2D line source: G_L, g_L, F(r, θ). The default, and what grids use.
    #[default]
    Line,
    /// 1D point source: 1/r², g_P, φ_an. Needs g_P and φ_an in the model.
    Point,
    /// 1D with the line geometry function on the transverse axis: G_L(r, 90°),
    /// g_L, φ_an. Needs φ_an.
    LineOneD,
}

impl Formalism {
    /// Name used in messages and by the Python API.
    pub fn name(self) -> &'static str {
        match self {
            Formalism::Line => "line",
            Formalism::Point => "point",
            Formalism::LineOneD => "line-1d",
        }
    }

    /// Parses `"line"`, `"point"` or `"line-1d"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "line" => Ok(Formalism::Line),
            "point" => Ok(Formalism::Point),
            "line-1d" | "line1d" => Ok(Formalism::LineOneD),
            other => Err(DoseError::InvalidOption {
                what: "TG-43 formalism",
                value: other.to_owned(),
                expected: "\"line\", \"point\" or \"line-1d\"",
            }),
        }
    }
}

/// Line-source geometry function G_L in mm⁻², from the point's coordinates in
/// the seed frame: `z_mm` along the seed axis from its centre, `rho_mm ≥ 0`
/// perpendicular to it (r² = z² + ρ², sin θ = ρ/r).
///
/// G_L(r, θ) = β / (L · r · sin θ) = β / (L · ρ), where β is the angle the
/// active length subtends at the point: β = atan2(ρ·L, r² − L²/4). This form
/// is exact on both sides of the source, also for points whose projection
/// falls inside the active length (β > 90°), where a difference of two
/// arctangents of single slopes goes wrong.
///
/// On the axis (ρ = 0) and beyond the ends, G_L = 1 / (r² − L²/4)
/// (TG-43U1 Eq. 4, θ = 0). On the source segment itself G_L diverges; callers
/// keep r ≥ [`SeedModel::min_distance_mm`], which excludes it. With L = 0,
/// G_L reduces to the point-source 1/r².
pub fn geometry_factor_line(z_mm: f64, rho_mm: f64, length_mm: f64) -> f64 {
    let r2 = z_mm * z_mm + rho_mm * rho_mm;
    if length_mm <= 0.0 {
        return 1.0 / r2;
    }
    let quarter_l2 = 0.25 * length_mm * length_mm;
    // below this ρ the atan2 form loses digits; use its limit 1/(r² − L²/4)
    if rho_mm <= 1e-9 * length_mm {
        return 1.0 / (r2 - quarter_l2);
    }
    let beta = (rho_mm * length_mm).atan2(r2 - quarter_l2);
    beta / (length_mm * rho_mm)
}

/// Point-source geometry function G_P = 1/r² in mm⁻².
pub fn geometry_factor_point(r_mm: f64) -> f64 {
    1.0 / (r_mm * r_mm)
}

/// Dose rate per unit air-kerma strength, cGy h⁻¹ U⁻¹, at a point given in
/// the seed frame (`z_mm` along the axis, `rho_mm` ≥ 0 from it).
///
/// This is the reference evaluation (f64, exact table interpolation); the grid
/// engines tabulate it (see [`super::kernel::DoseRateTable`]).
pub fn dose_rate_per_u_cyl(
    model: &SeedModel,
    formalism: Formalism,
    z_mm: f64,
    rho_mm: f64,
) -> Result<f64> {
    if !(z_mm.is_finite() && rho_mm.is_finite() && rho_mm >= 0.0) {
        return Err(DoseError::OutOfRange {
            field: "point in the seed frame (z, rho) (mm)".into(),
            value: if z_mm.is_finite() { rho_mm } else { z_mm },
            reason: format!("z = {z_mm}, rho = {rho_mm}: both must be finite and rho >= 0"),
        });
    }
    let lambda = model.dose_rate_constant();
    let length = model.active_length_mm();
    let r_raw = (z_mm * z_mm + rho_mm * rho_mm).sqrt();
    let r_min = model.min_distance_mm();
    // clamp the distance, keep the direction (transverse if r = 0)
    let (z, rho, r) = if r_raw >= r_min {
        (z_mm, rho_mm, r_raw)
    } else if r_raw > 0.0 {
        let s = r_min / r_raw;
        (z_mm * s, rho_mm * s, r_min)
    } else {
        (0.0, r_min, r_min)
    };
    match formalism {
        Formalism::Line => {
            let g0 = geometry_factor_line(0.0, R0_MM, length);
            let cos_theta = (z / r).clamp(-1.0, 1.0);
            let theta_deg = cos_theta.acos().to_degrees();
            Ok(lambda * geometry_factor_line(z, rho, length) / g0
                * model.g_line().log_linear(r)
                * model.anisotropy().bilinear(r, theta_deg))
        }
        Formalism::Point => {
            let missing = |what| DoseError::MissingModelData {
                model: model.key().to_owned(),
                what,
                formalism: "1D point-source",
            };
            let gp = model.g_point().ok_or_else(|| missing("g_P(r)"))?;
            let phi = model
                .anisotropy_factor()
                .ok_or_else(|| missing("phi_an(r)"))?;
            Ok(
                lambda * geometry_factor_point(r) / geometry_factor_point(R0_MM)
                    * gp.log_linear(r)
                    * phi.linear_clamped(r),
            )
        }
        Formalism::LineOneD => {
            let phi = model
                .anisotropy_factor()
                .ok_or_else(|| DoseError::MissingModelData {
                    model: model.key().to_owned(),
                    what: "phi_an(r)",
                    formalism: "1D line-source",
                })?;
            let g0 = geometry_factor_line(0.0, R0_MM, length);
            Ok(lambda * geometry_factor_line(0.0, r, length) / g0
                * model.g_line().log_linear(r)
                * phi.linear_clamped(r))
        }
    }
}

/// Dose rate per unit air-kerma strength, cGy h⁻¹ U⁻¹, at distance `r_mm`
/// from the seed centre and polar angle `theta_deg` (0–180°) from its axis.
pub fn dose_rate_per_u(
    model: &SeedModel,
    formalism: Formalism,
    r_mm: f64,
    theta_deg: f64,
) -> Result<f64> {
    if !r_mm.is_finite() || r_mm < 0.0 {
        return Err(DoseError::OutOfRange {
            field: "distance r (mm)".into(),
            value: r_mm,
            reason: "must be finite and >= 0".into(),
        });
    }
    if !(0.0..=180.0).contains(&theta_deg) {
        return Err(DoseError::OutOfRange {
            field: "polar angle theta (deg)".into(),
            value: theta_deg,
            reason: "must be within 0..=180".into(),
        });
    }
    let t = theta_deg.to_radians();
    dose_rate_per_u_cyl(model, formalism, r_mm * t.cos(), r_mm * t.sin())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tg43::SeedCatalogue;

    #[test]
    fn reference_point_gives_lambda() {
        let cat = SeedCatalogue::builtin();
        for m in cat.models() {
            let d = dose_rate_per_u(m, Formalism::Line, R0_MM, 90.0).unwrap();
            let rel = (d - m.dose_rate_constant()).abs() / m.dose_rate_constant();
            assert!(
                rel < 1e-12,
                "{}: {d} vs Λ {}",
                m.key(),
                m.dose_rate_constant()
            );
        }
    }

    #[test]
    fn line_geometry_limits() {
        let l = 3.0;
        // far away G_L -> 1/r²
        for theta in [0.0f64, 30.0, 90.0, 150.0] {
            let r = 500.0;
            let t = theta.to_radians();
            let g = geometry_factor_line(r * t.cos(), r * t.sin(), l);
            assert!(
                (g * r * r - 1.0).abs() < 1e-4,
                "theta {theta}: {}",
                g * r * r
            );
        }
        // continuity towards the axis, beyond the ends
        let on_axis = geometry_factor_line(5.0, 0.0, l);
        let near_axis = geometry_factor_line(5.0, 1e-6, l);
        assert!((on_axis - near_axis).abs() / on_axis < 1e-9);
        assert!((on_axis - 1.0 / (25.0 - 2.25)).abs() < 1e-15);
        // transverse plane: β = 2 atan(L / 2ρ)
        let rho: f64 = 0.8;
        let expected = 2.0 * (l / (2.0 * rho)).atan() / (l * rho);
        assert!((geometry_factor_line(0.0, rho, l) - expected).abs() < 1e-13);
        // inside the active length's span, β > 90°: still 2 atan(L/2ρ) for z = 0,
        // and symmetric in z
        let a = geometry_factor_line(1.0, 0.5, l);
        let b = geometry_factor_line(-1.0, 0.5, l);
        assert!((a - b).abs() < 1e-15);
        // by direct integration: G_L = (1/L) ∫ sin(angle)/... check against
        // numeric β from the two end vectors
        let (z, rho) = (1.0f64, 0.5f64);
        let a1 = (1.5 - z).atan2(rho);
        let a2 = (-1.5 - z).atan2(rho);
        assert!((geometry_factor_line(z, rho, l) - (a1 - a2) / (l * rho)).abs() < 1e-13);
    }

    #[test]
    fn bad_arguments() {
        let cat = SeedCatalogue::builtin();
        let m = cat.get("Amersham6711").unwrap();
        assert!(dose_rate_per_u(m, Formalism::Line, f64::NAN, 90.0).is_err());
        assert!(dose_rate_per_u(m, Formalism::Line, -1.0, 90.0).is_err());
        assert!(dose_rate_per_u(m, Formalism::Line, 10.0, 181.0).is_err());
        assert!(dose_rate_per_u_cyl(m, Formalism::Line, f64::NAN, 1.0).is_err());
        assert!(dose_rate_per_u_cyl(m, Formalism::Line, 1.0, -1.0).is_err());
        let best = cat.get("Best2301").unwrap();
        let err = dose_rate_per_u(best, Formalism::Point, 10.0, 90.0).unwrap_err();
        assert!(err.to_string().contains("phi_an"), "{err}");
        assert!(Formalism::parse("sphere").is_err());
        assert_eq!(Formalism::parse("point").unwrap(), Formalism::Point);
    }

    #[test]
    fn finite_at_and_near_the_source() {
        let cat = SeedCatalogue::builtin();
        let m = cat.get("Amersham6711").unwrap();
        for (z, rho) in [
            (0.0, 0.0),
            (1.5, 0.0),
            (0.5, 0.0),
            (0.0, 0.01),
            (1.49, 1e-12),
        ] {
            let d = dose_rate_per_u_cyl(m, Formalism::Line, z, rho).unwrap();
            assert!(d.is_finite() && d > 0.0, "({z}, {rho}) -> {d}");
        }
    }
}
