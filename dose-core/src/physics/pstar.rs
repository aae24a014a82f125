//! Stopping power and CSDA range of protons in liquid water, NIST PSTAR.
//!
//! Data: `data/protons/pstar_water_proton.csv` (NIST SRD 124 PSTAR, ICRU 49,
//! I = 75 eV; source header in the file). Between tabulated energies, ranges
//! and stopping powers are interpolated **log-log linearly** (exact for a local
//! power law R ∝ E^p; on the 25 MeV steps of the PSTAR grid above 100 MeV this
//! reproduces the cubic-spline values at 120, 180 and 230 MeV to 0.02 %).
//! isodose targets PSTAR (ICRU 49); ICRU 90 water gives ranges about 0.5 %
//! longer.

use std::sync::OnceLock;

use super::table::{CsvColumns, interval};
use crate::error::{DoseError, Result};

const PSTAR_CSV: &str = include_str!("../../data/protons/pstar_water_proton.csv");

/// The PSTAR water table, in log space for interpolation.
#[derive(Clone, Debug)]
pub struct WaterStopping {
    ln_e: Vec<f64>,
    ln_s_total: Vec<f64>,
    ln_csda_g_cm2: Vec<f64>,
}

impl WaterStopping {
    /// The shipped PSTAR table (parsed once per process).
    pub fn pstar() -> Result<&'static Self> {
        static TABLE: OnceLock<std::result::Result<WaterStopping, String>> = OnceLock::new();
        TABLE
            .get_or_init(|| {
                Self::parse(PSTAR_CSV, "built-in pstar_water_proton.csv").map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|reason| DoseError::SeedData {
                origin: "built-in pstar_water_proton.csv".into(),
                reason: reason.clone(),
            })
    }

    /// Parses a PSTAR-format CSV (columns `E_MeV`, `S_total`,
    /// `CSDA_range_g_cm2`; positive and ascending).
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let t = CsvColumns::parse(text, origin)?;
        let e = t.column("E_MeV")?;
        let s = t.column("S_total")?;
        let r = t.column("CSDA_range_g_cm2")?;
        let ok = e.len() >= 2
            && e.windows(2).all(|w| w[1] > w[0])
            && r.windows(2).all(|w| w[1] > w[0])
            && e.iter()
                .chain(s)
                .chain(r)
                .all(|v| v.is_finite() && *v > 0.0);
        if !ok {
            return Err(DoseError::InvalidTable {
                table: origin.to_owned(),
                reason:
                    "energies and ranges must be positive and ascending, stopping powers positive"
                        .into(),
            });
        }
        Ok(Self {
            ln_e: e.iter().map(|v| v.ln()).collect(),
            ln_s_total: s.iter().map(|v| v.ln()).collect(),
            ln_csda_g_cm2: r.iter().map(|v| v.ln()).collect(),
        })
    }

    fn check_energy(&self, energy_mev: f64) -> Result<f64> {
        let (lo, hi) = (self.ln_e[0].exp(), self.ln_e[self.ln_e.len() - 1].exp());
        if energy_mev.is_finite() && energy_mev >= lo && energy_mev <= hi {
            Ok(energy_mev.ln())
        } else {
            Err(DoseError::OutOfRange {
                field: "proton energy (MeV)".into(),
                value: energy_mev,
                reason: format!("the PSTAR table covers {lo} to {hi} MeV"),
            })
        }
    }

    fn loglog(xs: &[f64], ys: &[f64], ln_x: f64) -> f64 {
        let i = interval(xs, ln_x);
        let t = (ln_x - xs[i]) / (xs[i + 1] - xs[i]);
        (ys[i] + t * (ys[i + 1] - ys[i])).exp()
    }

    /// CSDA range in water, mm (ρ = 1 g/cm³).
    pub fn csda_range_mm(&self, energy_mev: f64) -> Result<f64> {
        let ln_e = self.check_energy(energy_mev)?;
        Ok(10.0 * Self::loglog(&self.ln_e, &self.ln_csda_g_cm2, ln_e))
    }

    /// Total mass stopping power, MeV cm²/g.
    pub fn stopping_power_mev_cm2_g(&self, energy_mev: f64) -> Result<f64> {
        let ln_e = self.check_energy(energy_mev)?;
        Ok(Self::loglog(&self.ln_e, &self.ln_s_total, ln_e))
    }

    /// Energy (MeV) of a proton whose residual CSDA range in water is
    /// `range_mm`: the inverse of [`Self::csda_range_mm`]. Ranges below the
    /// table give its lowest energy.
    pub fn energy_from_range_mev(&self, range_mm: f64) -> f64 {
        let ln_r = (range_mm.max(1e-12) / 10.0).ln();
        if ln_r <= self.ln_csda_g_cm2[0] {
            return self.ln_e[0].exp();
        }
        Self::loglog(&self.ln_csda_g_cm2, &self.ln_e, ln_r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses_and_reproduces_its_rows() {
        let t = WaterStopping::parse(PSTAR_CSV, "pstar").unwrap();
        let w = WaterStopping::pstar().unwrap();
        assert_eq!(t.ln_e.len(), w.ln_e.len());
        // tabulated rows are reproduced exactly (100 MeV: 7.718 g/cm², 7.289 MeV cm²/g)
        assert!((w.csda_range_mm(100.0).unwrap() - 77.18).abs() < 1e-9);
        assert!((w.stopping_power_mev_cm2_g(100.0).unwrap() - 7.289).abs() < 1e-9);
        // the inverse is the inverse
        for e in [3.0, 70.0, 121.3, 229.9] {
            let r = w.csda_range_mm(e).unwrap();
            assert!((w.energy_from_range_mev(r) - e).abs() < 1e-9 * e);
        }
        assert!(w.csda_range_mm(0.0).is_err());
        assert!(w.csda_range_mm(f64::NAN).is_err());
        assert!(w.csda_range_mm(1e4).is_err());
    }
}
