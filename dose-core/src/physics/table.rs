//! Reading the data files of `dose-core/data/`: CSV with `#` comment lines
//! (the source header) and one header row, and piecewise-linear tables.

use crate::error::{DoseError, Result};

/// Columns of a `#`-commented CSV file, by name. Empty cells are NaN.
#[derive(Clone, Debug)]
pub struct CsvColumns {
    names: Vec<String>,
    columns: Vec<Vec<f64>>,
    origin: String,
}

impl CsvColumns {
    /// Parses `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let bad = |reason: String| DoseError::SeedData {
            origin: origin.to_owned(),
            reason,
        };
        let mut reader = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let names: Vec<String> = reader
            .headers()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(str::to_owned)
            .collect();
        let mut columns = vec![Vec::new(); names.len()];
        for (line, record) in reader.records().enumerate() {
            let record = record.map_err(|e| bad(e.to_string()))?;
            for (col, cell) in columns.iter_mut().zip(record.iter()) {
                let v = if cell.is_empty() {
                    f64::NAN
                } else {
                    cell.parse::<f64>().map_err(|_| {
                        bad(format!("data row {}: {cell:?} is not a number", line + 1))
                    })?
                };
                col.push(v);
            }
        }
        Ok(Self {
            names,
            columns,
            origin: origin.to_owned(),
        })
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Result<&[f64]> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.columns[i].as_slice())
            .ok_or_else(|| DoseError::SeedData {
                origin: self.origin.clone(),
                reason: format!("no column {name:?}; columns are {:?}", self.names),
            })
    }
}

/// Index `i` with `xs[i] <= x < xs[i+1]`, clamped to the first and last
/// interval. `xs` ascending with at least two entries.
pub(crate) fn interval(xs: &[f64], x: f64) -> usize {
    xs.partition_point(|&v| v <= x)
        .saturating_sub(1)
        .min(xs.len() - 2)
}

/// Linear interpolation on ascending `xs`, clamped to the end values.
pub(crate) fn lerp_clamped(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    let n = xs.len();
    if n == 1 || x <= xs[0] {
        return ys[0];
    }
    if x >= xs[n - 1] {
        return ys[n - 1];
    }
    let i = interval(xs, x);
    let t = (x - xs[i]) / (xs[i + 1] - xs[i]);
    ys[i] + t * (ys[i + 1] - ys[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commented_csv() {
        let t = CsvColumns::parse("# source\n# units\na,b\n1,2\n3,\n", "t.csv").unwrap();
        assert_eq!(t.column("a").unwrap(), &[1.0, 3.0]);
        assert!(t.column("b").unwrap()[1].is_nan());
        assert!(t.column("c").unwrap_err().to_string().contains("t.csv"));
        assert!(CsvColumns::parse("a\nx\n", "u.csv").is_err());
    }

    #[test]
    fn interpolation_clamps() {
        let xs = [0.0, 1.0, 3.0];
        let ys = [0.0, 10.0, 30.0];
        assert_eq!(lerp_clamped(&xs, &ys, 2.0), 20.0);
        assert_eq!(lerp_clamped(&xs, &ys, -1.0), 0.0);
        assert_eq!(lerp_clamped(&xs, &ys, 5.0), 30.0);
    }
}
