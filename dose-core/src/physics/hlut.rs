//! Hounsfield-unit look-up tables: HU → relative (to water) stopping power.
//!
//! A piecewise-linear curve through (HU, RSP) points, held constant outside
//! its range. Real curves are scanner specific (a stoichiometric calibration,
//! Schneider et al., PMB 41:111 (1996)); isodose ships generic curves from
//! public code (`data/hlut/`, sources in each file) and accepts a user's.

use super::table::{CsvColumns, lerp_clamped};
use crate::error::{DoseError, Result};

/// A HU → RSP curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Hlut {
    name: String,
    hu: Vec<f64>,
    rsp: Vec<f64>,
}

/// The built-in curves: (name, CSV text).
const BUILTIN: &[(&str, &str)] = &[
    (
        "matrad_default",
        include_str!("../../data/hlut/hu_rsp_matrad_default.csv"),
    ),
    (
        "matrad_default_deprecated",
        include_str!("../../data/hlut/hu_rsp_matrad_default_deprecated.csv"),
    ),
    (
        "xio_mgh",
        include_str!("../../data/hlut/hu_rsp_xio_mgh_plastimatch.csv"),
    ),
];

impl Hlut {
    /// A curve through `(hu[i], rsp[i])`. HU must be strictly ascending and
    /// RSP finite, ≥ 0 and non-decreasing (a curve that decreases with HU
    /// would make denser tissue stop protons less), at least two points.
    pub fn new(name: &str, hu: Vec<f64>, rsp: Vec<f64>) -> Result<Self> {
        let bad = |reason: String| DoseError::InvalidTable {
            table: format!("HU->RSP curve {name:?}"),
            reason,
        };
        if hu.len() != rsp.len() || hu.len() < 2 {
            return Err(bad(format!(
                "needs at least two (HU, RSP) pairs of equal length, got {} HU and {} RSP",
                hu.len(),
                rsp.len()
            )));
        }
        if let Some(v) = hu.iter().chain(&rsp).find(|v| !v.is_finite()) {
            return Err(bad(format!("value {v} is not finite")));
        }
        if let Some(w) = hu.windows(2).find(|w| w[1] <= w[0]) {
            return Err(bad(format!(
                "HU must be strictly ascending; {} is followed by {}",
                w[0], w[1]
            )));
        }
        if let Some(v) = rsp.iter().find(|v| **v < 0.0) {
            return Err(bad(format!("RSP {v} is negative")));
        }
        if let Some(i) = (1..rsp.len()).find(|&i| rsp[i] < rsp[i - 1]) {
            return Err(bad(format!(
                "RSP must not decrease with HU: {} at {} HU is below {} at {} HU",
                rsp[i],
                hu[i],
                rsp[i - 1],
                hu[i - 1]
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            hu,
            rsp,
        })
    }

    /// Reads a `#`-commented CSV with columns `HU,RSP`.
    pub fn from_csv_str(name: &str, text: &str) -> Result<Self> {
        let t = CsvColumns::parse(text, name)?;
        Self::new(name, t.column("HU")?.to_vec(), t.column("RSP")?.to_vec())
    }

    /// A built-in curve: `matrad_default` (the default), `matrad_default_deprecated`
    /// or `xio_mgh`.
    pub fn builtin(name: &str) -> Result<Self> {
        let (_, text) =
            BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| DoseError::InvalidTable {
                    table: format!("HU->RSP curve {name:?}"),
                    reason: format!(
                        "no such built-in curve; known: {}",
                        BUILTIN
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
        Self::from_csv_str(name, text)
    }

    /// The default curve (`matrad_default`).
    pub fn default_curve() -> Result<Self> {
        Self::builtin("matrad_default")
    }

    /// Name of the curve.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// RSP at `hu` (linear between points, constant outside).
    pub fn rsp(&self, hu: f64) -> f64 {
        lerp_clamped(&self.hu, &self.rsp, hu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_curves_interpolate_exactly_at_their_nodes() {
        for (name, _) in BUILTIN {
            let h = Hlut::builtin(name).unwrap();
            for (x, y) in h.hu.iter().zip(&h.rsp) {
                assert_eq!(h.rsp(*x), *y);
            }
        }
        let h = Hlut::default_curve().unwrap();
        assert_eq!(h.rsp(0.0), 1.0);
        assert!((h.rsp(50.0) - 1.0475).abs() < 1e-12);
        assert_eq!(h.rsp(-5000.0), 0.001);
        assert!(Hlut::builtin("nope").is_err());
    }

    #[test]
    fn rejects_bad_curves() {
        assert!(Hlut::new("a", vec![0.0], vec![1.0]).is_err());
        assert!(Hlut::new("a", vec![0.0, 0.0], vec![1.0, 1.0]).is_err());
        assert!(Hlut::new("a", vec![0.0, 10.0], vec![1.0, f64::NAN]).is_err());
        let err = Hlut::new("a", vec![0.0, 100.0], vec![1.1, 1.0]).unwrap_err();
        assert!(err.to_string().contains("must not decrease"), "{err}");
        assert!(Hlut::new("a", vec![0.0, 100.0], vec![-1.0, 1.0]).is_err());
    }
}
