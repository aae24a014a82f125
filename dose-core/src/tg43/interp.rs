//! Interpolation of the TG-43 tables, as TG-43U1 recommends.
//!
//! Rivard et al., Med Phys 31:633 (2004) (TG-43U1), and the consensus QA
//! spreadsheets that accompany it, evaluate the tables as follows; isodose does
//! the same:
//!
//! - radial dose function g_X(r): **log-linear** interpolation (ln g linear in
//!   r) between tabulated distances; below the first distance the first value
//!   is used (nearest neighbour); beyond the last distance, log-linear
//!   **extrapolation** from the last two points (g decays about exponentially;
//!   a table whose last two values rise keeps its last value instead).
//! - 2D anisotropy function F(r, θ): **bilinear** interpolation in (r, θ);
//!   outside the tabulated distances the nearest tabulated r is used; a table
//!   that stops at 90° is mirrored: F(r, 180° − θ) = F(r, θ).
//! - 1D anisotropy function φ_an(r): linear interpolation, nearest neighbour
//!   outside the table.
//!
//! With these rules the consensus 1D transverse dose rates of the 6711 seed
//! are reproduced to 0.15 % (the refdata self-check, and `tests/tg43_consensus.rs`).

use crate::error::{DoseError, Result};

/// Index `i` such that `xs[i] <= x < xs[i+1]`, for `xs[0] <= x < xs[n-1]`.
/// `xs` ascending, at least two entries, `x` inside.
fn bracket(xs: &[f64], x: f64) -> usize {
    let i = xs.partition_point(|&v| v <= x);
    i.saturating_sub(1).min(xs.len() - 2)
}

/// A tabulated function y(x) on ascending, distinct abscissae.
#[derive(Clone, Debug, PartialEq)]
pub struct Table1 {
    xs: Vec<f64>,
    ys: Vec<f64>,
}

impl Table1 {
    /// Validates and builds a table. `name` names it in errors.
    ///
    /// Rules: equal lengths, at least one point, finite values, strictly
    /// ascending `xs`, and `ys > 0` when `positive` is asked for (log-linear
    /// interpolation needs it).
    pub fn new(name: &str, xs: Vec<f64>, ys: Vec<f64>, positive: bool) -> Result<Self> {
        let bad = |reason: String| DoseError::InvalidTable {
            table: name.to_owned(),
            reason,
        };
        if xs.len() != ys.len() {
            return Err(bad(format!(
                "{} abscissae but {} values",
                xs.len(),
                ys.len()
            )));
        }
        if xs.is_empty() {
            return Err(bad("no points".into()));
        }
        if let Some((i, v)) = xs
            .iter()
            .chain(&ys)
            .enumerate()
            .find(|(_, v)| !v.is_finite())
        {
            return Err(bad(format!("entry {i} is not finite ({v})")));
        }
        if let Some(w) = xs.windows(2).find(|w| w[1] <= w[0]) {
            return Err(bad(format!(
                "abscissae must be strictly ascending; {} is followed by {}",
                w[0], w[1]
            )));
        }
        if positive && let Some((x, y)) = xs.iter().zip(&ys).find(|(_, y)| **y <= 0.0) {
            return Err(bad(format!("value at {x} is {y}; it must be > 0")));
        }
        Ok(Self { xs, ys })
    }

    /// The abscissae.
    pub fn xs(&self) -> &[f64] {
        &self.xs
    }
    /// The values.
    pub fn ys(&self) -> &[f64] {
        &self.ys
    }
    /// Multiplies every abscissa by `factor` (unit conversion at load time).
    pub(crate) fn scale_x(mut self, factor: f64) -> Self {
        self.xs.iter_mut().for_each(|x| *x *= factor);
        self
    }

    /// Linear interpolation, nearest neighbour outside the table.
    pub fn linear_clamped(&self, x: f64) -> f64 {
        let n = self.xs.len();
        if n == 1 || x <= self.xs[0] {
            return self.ys[0];
        }
        if x >= self.xs[n - 1] {
            return self.ys[n - 1];
        }
        let i = bracket(&self.xs, x);
        let t = (x - self.xs[i]) / (self.xs[i + 1] - self.xs[i]);
        self.ys[i] + t * (self.ys[i + 1] - self.ys[i])
    }

    /// Log-linear interpolation (ln y linear in x); nearest neighbour below the
    /// table, log-linear extrapolation from the last two points above it when
    /// they decrease (a rising tail is not extrapolated: the last value is
    /// kept, so that a user table cannot make g grow without bound).
    /// Requires a table built with `positive = true`.
    pub fn log_linear(&self, x: f64) -> f64 {
        let n = self.xs.len();
        if n == 1 || x <= self.xs[0] {
            return self.ys[0];
        }
        if x >= self.xs[n - 1] && self.ys[n - 1] >= self.ys[n - 2] {
            return self.ys[n - 1];
        }
        let i = if x >= self.xs[n - 1] {
            n - 2
        } else {
            bracket(&self.xs, x)
        };
        let t = (x - self.xs[i]) / (self.xs[i + 1] - self.xs[i]);
        let (a, b) = (self.ys[i].ln(), self.ys[i + 1].ln());
        (a + t * (b - a)).exp()
    }
}

/// A function F(r, θ) tabulated on a rectangular (r, θ) mesh.
#[derive(Clone, Debug, PartialEq)]
pub struct Table2 {
    rs: Vec<f64>,
    thetas_deg: Vec<f64>,
    /// values[i_r * n_theta + i_theta]
    values: Vec<f64>,
    mirrored: bool,
}

impl Table2 {
    /// Builds F from rows `f[i_r][i_theta]`. θ must start at 0° and end at 90°
    /// (mirrored about 90°) or 180°.
    pub fn new(name: &str, rs: Vec<f64>, thetas_deg: Vec<f64>, f: Vec<Vec<f64>>) -> Result<Self> {
        let bad = |reason: String| DoseError::InvalidTable {
            table: name.to_owned(),
            reason,
        };
        // reuse the 1D checks on both axes
        Table1::new(name, rs.clone(), vec![1.0; rs.len()], false)?;
        Table1::new(name, thetas_deg.clone(), vec![1.0; thetas_deg.len()], false)?;
        if f.len() != rs.len() {
            return Err(bad(format!("{} rows for {} distances", f.len(), rs.len())));
        }
        let first = thetas_deg[0];
        let last = thetas_deg[thetas_deg.len() - 1];
        let mirrored = if first != 0.0 {
            return Err(bad(format!("angles must start at 0 deg, not {first}")));
        } else if (last - 90.0).abs() < 1e-9 {
            true
        } else if (last - 180.0).abs() < 1e-9 {
            false
        } else {
            return Err(bad(format!("angles must end at 90 or 180 deg, not {last}")));
        };
        let mut values = Vec::with_capacity(rs.len() * thetas_deg.len());
        for (row, r) in f.iter().zip(&rs) {
            if row.len() != thetas_deg.len() {
                return Err(bad(format!(
                    "row r = {r} has {} values for {} angles",
                    row.len(),
                    thetas_deg.len()
                )));
            }
            if let Some(v) = row.iter().find(|v| !v.is_finite() || **v < 0.0) {
                return Err(bad(format!(
                    "row r = {r} holds {v}; values must be finite and >= 0"
                )));
            }
            values.extend_from_slice(row);
        }
        Ok(Self {
            rs,
            thetas_deg,
            values,
            mirrored,
        })
    }

    /// Multiplies every distance by `factor` (unit conversion at load time).
    pub(crate) fn scale_r(mut self, factor: f64) -> Self {
        self.rs.iter_mut().for_each(|r| *r *= factor);
        self
    }

    /// The tabulated distances.
    pub fn rs(&self) -> &[f64] {
        &self.rs
    }

    /// True if the table stops at 90° and is mirrored: F(r, 180° − θ) = F(r, θ).
    pub fn is_mirrored(&self) -> bool {
        self.mirrored
    }

    /// The tabulated angles in degrees.
    pub fn thetas_deg(&self) -> &[f64] {
        &self.thetas_deg
    }

    fn row_at(&self, i_r: usize, theta_deg: f64) -> f64 {
        let nt = self.thetas_deg.len();
        let row = &self.values[i_r * nt..(i_r + 1) * nt];
        let t = theta_deg.clamp(self.thetas_deg[0], self.thetas_deg[nt - 1]);
        if nt == 1 {
            return row[0];
        }
        let j = bracket(&self.thetas_deg, t);
        let w = (t - self.thetas_deg[j]) / (self.thetas_deg[j + 1] - self.thetas_deg[j]);
        row[j] + w * (row[j + 1] - row[j])
    }

    /// Bilinear interpolation at (r, θ in degrees, 0..180); nearest tabulated
    /// r outside the distance range.
    pub fn bilinear(&self, r: f64, theta_deg: f64) -> f64 {
        let theta = if self.mirrored && theta_deg > 90.0 {
            180.0 - theta_deg
        } else {
            theta_deg
        };
        let n = self.rs.len();
        if n == 1 || r <= self.rs[0] {
            return self.row_at(0, theta);
        }
        if r >= self.rs[n - 1] {
            return self.row_at(n - 1, theta);
        }
        let i = bracket(&self.rs, r);
        let w = (r - self.rs[i]) / (self.rs[i + 1] - self.rs[i]);
        let a = self.row_at(i, theta);
        let b = self.row_at(i + 1, theta);
        a + w * (b - a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dimensional_rules() {
        let t = Table1::new("t", vec![1.0, 2.0, 4.0], vec![1.0, 0.5, 0.125], true).unwrap();
        // exact at the nodes
        for (x, y) in t.xs().iter().zip(t.ys()) {
            assert!((t.log_linear(*x) - y).abs() < 1e-15);
            assert!((t.linear_clamped(*x) - y).abs() < 1e-15);
        }
        // log-linear midpoint of 1 and 0.5 is sqrt(0.5)
        assert!((t.log_linear(1.5) - 0.5f64.sqrt()).abs() < 1e-15);
        assert!((t.linear_clamped(1.5) - 0.75).abs() < 1e-15);
        // below: nearest; above: log-linear extrapolation (halving every 2)
        assert_eq!(t.log_linear(0.1), 1.0);
        assert!((t.log_linear(6.0) - 0.125 * 0.25).abs() < 1e-15);
        assert_eq!(t.linear_clamped(9.0), 0.125);
        // a rising tail is held, not extrapolated
        let up = Table1::new("t", vec![1.0, 2.0], vec![1.0, 1.5], true).unwrap();
        assert_eq!(up.log_linear(50.0), 1.5);
    }

    #[test]
    fn rejects_malformed_tables() {
        assert!(Table1::new("t", vec![1.0, 1.0], vec![1.0, 1.0], false).is_err());
        assert!(Table1::new("t", vec![1.0, 2.0], vec![1.0], false).is_err());
        assert!(Table1::new("t", vec![1.0, 2.0], vec![1.0, 0.0], true).is_err());
        assert!(Table1::new("t", vec![1.0, f64::NAN], vec![1.0, 1.0], false).is_err());
        assert!(Table1::new("t", vec![], vec![], false).is_err());
        let rows = vec![vec![0.5, 1.0], vec![0.6, 1.0]];
        assert!(Table2::new("F", vec![1.0, 2.0], vec![0.0, 90.0], rows.clone()).is_ok());
        assert!(Table2::new("F", vec![1.0, 2.0], vec![0.0, 80.0], rows.clone()).is_err());
        assert!(Table2::new("F", vec![1.0, 2.0], vec![5.0, 90.0], rows.clone()).is_err());
        assert!(Table2::new("F", vec![1.0], vec![0.0, 90.0], rows).is_err());
    }

    #[test]
    fn bilinear_and_mirror() {
        let f = Table2::new(
            "F",
            vec![1.0, 3.0],
            vec![0.0, 90.0],
            vec![vec![0.2, 1.0], vec![0.6, 1.0]],
        )
        .unwrap();
        assert!((f.bilinear(2.0, 0.0) - 0.4).abs() < 1e-15);
        assert!((f.bilinear(2.0, 45.0) - 0.7).abs() < 1e-15);
        assert_eq!(f.bilinear(2.0, 135.0), f.bilinear(2.0, 45.0));
        assert_eq!(f.bilinear(0.1, 0.0), 0.2);
        assert_eq!(f.bilinear(9.0, 0.0), 0.6);
    }
}
