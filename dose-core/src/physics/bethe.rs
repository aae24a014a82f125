//! Relative stopping power of a material from its electron density and mean
//! excitation energy, by the Bethe formula.
//!
//! Planning systems describe material overrides (DICOM ROIPhysicalProperty
//! REL_ELEC_DENSITY and MEAN_EXCI_ENERGY) rather than a stopping power. The
//! electronic stopping power per electron is, without shell and density
//! corrections (small above 10 MeV in tissue-like media),
//!
//!   S ∝ ρ_e [ln(2 m_e c² β² γ² / I) − β²] / β²,
//!
//! so the stopping power relative to water at the proton's energy is
//!
//!   RSP = ρ_e,rel · [ln(2 m_e c² β²γ² / I_m) − β²] / [ln(2 m_e c² β²γ² / I_w) − β²],
//!
//! with I_w the mean excitation energy of water, 78 eV (ICRU Report 90;
//! `data/protons/water_mean_excitation_energy.json`). It depends weakly on
//! the energy (for I_m within a few eV of I_w, well under 0.5 % from 70 to
//! 230 MeV).

use serde_json::Value;

use super::PROTON_MASS_MEV;
use crate::error::{DoseError, Result};

/// m_e c², MeV (CODATA 2018).
const ELECTRON_MASS_MEV: f64 = 0.510_998_950;

const WATER_I_JSON: &str = include_str!("../../data/protons/water_mean_excitation_energy.json");

/// The mean excitation energy of water, eV (ICRU 90).
pub fn water_mean_excitation_energy_ev() -> Result<f64> {
    let v: Value = serde_json::from_str(WATER_I_JSON).map_err(|e| DoseError::SeedData {
        origin: "water_mean_excitation_energy.json".into(),
        reason: e.to_string(),
    })?;
    v["water_mean_excitation_energy_ev"]
        .as_f64()
        .ok_or_else(|| DoseError::SeedData {
            origin: "water_mean_excitation_energy.json".into(),
            reason: "no water_mean_excitation_energy_ev".into(),
        })
}

/// RSP of a medium of relative electron density `rel_electron_density` and
/// mean excitation energy `mean_excitation_ev` (eV) for a proton of
/// `energy_mev`, relative to water of I = `water_ev`.
pub fn relative_stopping_power(
    rel_electron_density: f64,
    mean_excitation_ev: f64,
    water_ev: f64,
    energy_mev: f64,
) -> Result<f64> {
    for (what, v) in [
        ("relative electron density", rel_electron_density),
        ("mean excitation energy (eV)", mean_excitation_ev),
        ("water mean excitation energy (eV)", water_ev),
        ("proton energy (MeV)", energy_mev),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(DoseError::OutOfRange {
                field: what.into(),
                value: v,
                reason: "must be finite and > 0".into(),
            });
        }
    }
    let gamma = 1.0 + energy_mev / PROTON_MASS_MEV;
    let beta2 = 1.0 - 1.0 / (gamma * gamma);
    let arg = 2.0 * ELECTRON_MASS_MEV * 1e6 * beta2 * gamma * gamma; // eV
    let l = |i: f64| (arg / i).ln() - beta2;
    Ok(rel_electron_density * l(mean_excitation_ev) / l(water_ev))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PMMA (ρ_e,rel 1.1565, I 74 eV, the values RayStation gives it) against
    /// the RSP 1.165 that matRad uses for PMMA (shared/refdata
    /// mcs_highland_hong_params.json, from matRad_calcSigmaRashi.m); water
    /// is 1 at every energy.
    #[test]
    fn pmma_and_water() {
        let iw = water_mean_excitation_energy_ev().unwrap();
        assert_eq!(iw, 78.0);
        for e in [70.0, 150.0, 230.0] {
            assert!((relative_stopping_power(1.0, iw, iw, e).unwrap() - 1.0).abs() < 1e-12);
            let pmma = relative_stopping_power(1.156_494, 74.0, iw, e).unwrap();
            assert!((pmma - 1.165).abs() < 0.004, "{e} MeV: {pmma}");
        }
        assert!(relative_stopping_power(1.0, -1.0, iw, 100.0).is_err());
    }
}
