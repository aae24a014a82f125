//! Commissioning a proton machine from a centre's own beam data: integral
//! depth doses (IDDs) measured in water per nominal energy, in-air spot sizes
//! at several distances from the isocentre, and the MU calibration that the
//! IDDs carry in their absolute values (Gy·mm² per MU, as a large-area
//! Bragg-peak chamber measures them).
//!
//! # What is fitted, and how
//!
//! Per measured energy E (nominal):
//! - **Mean energy and energy spread** of the beam at the nozzle, from the
//!   physics model of [`physics_energy_model`] (Bortfeld's Bragg curve on the
//!   PSTAR CSDA range, Bortfeld 1997): the mean energy E₀ so that the model's
//!   R80 equals the measured R80, and the spread σ_E/E₀ so that the model's
//!   distal fall-off R80 − R20 equals the measured one (range straggling plus
//!   energy spread), by bisection, alternated three times (an error when
//!   the model cannot reach the measurement).
//! - **Protons per MU**: N = ∫ IDD_measured dz / ∫ IDD_model dz, the
//!   measured energy deposited per MU over the model's per proton, both over
//!   the measured depths.
//! - **The machine's IDD** at E is the measurement itself, per proton
//!   (IDD_measured / N): the model reproduces the commissioning data at the
//!   commissioned energies exactly, whatever the physics model's shape
//!   errors; the fit's residuals (measured − model) are reported.
//! - **Nuclear halo**: not in an IDD; taken from the physics model at the
//!   fitted E₀ and spread (as for BDL machines, [`super::bdl`]).
//! - **In-air optics** per axis: σ²(z) = σ₀² + 2ρσ₀θz + θ²z² is a quadratic
//!   in z (the distance downstream of the isocentre plane), fitted by linear
//!   least squares to the measured σ² (three or more distances; fewer give
//!   σ₀ alone, θ = 0); θ = √c, ρ = b / (2σ₀θ) clamped to [−1, 1]. Optics at
//!   IDD energies without spot measurements are linear in energy between
//!   the measured ones (held beyond them).
//!
//! Between commissioned energies the machine interpolates as every machine
//! does ([`EnergyModel::interpolate`]: IDDs by range scaling, optics and
//! protons per MU linear in energy). How well that holds for the centre's
//! energy table is measured by **leaving each interior energy out**:
//! the machine built without it, interpolated at its energy, against its
//! measurement ([`LeaveOneOut`]).

use super::generic::{PhysicsBeam, bortfeld_params, highland_params, physics_energy_model};
use super::machine::{DepthCurve, EnergyModel, ProtonMachine, SpotOptics};
use crate::error::{DoseError, Result};
use crate::physics::bortfeld::BortfeldParams;

/// The nuclear-halo width of the physics model (extra σ / CSDA range), as for
/// the generic and BDL machines.
const HALO_SIGMA_FRACTION_OF_RANGE: f64 = 1.0 / 6.0;

/// An integral depth dose measured in water at one nominal energy.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasuredIdd {
    /// Nominal energy, MeV.
    pub energy_mev: f64,
    /// Depths below the water surface (water-equivalent, ascending), mm.
    pub depth_mm: Vec<f64>,
    /// Laterally integrated dose, Gy·mm² per MU.
    pub gy_mm2_per_mu: Vec<f64>,
}

impl MeasuredIdd {
    /// Reads a CSV of two or more columns with a header: the first column
    /// depth (mm), the second the IDD (Gy·mm² per MU); further columns
    /// (e.g. an uncertainty) are ignored. `origin` names the file in errors.
    pub fn from_csv_str(energy_mev: f64, text: &str, origin: &str) -> Result<Self> {
        let bad = |reason: String| DoseError::InvalidTable {
            table: format!("measured IDD {origin}"),
            reason,
        };
        let mut depth_mm = Vec::new();
        let mut gy_mm2_per_mu = Vec::new();
        for (line, record) in csv_records(text).map_err(|e| bad(e.to_string()))?.1 {
            let number = |col: usize, what: &str| -> Result<f64> {
                let c = record.get(col).unwrap_or("");
                c.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| bad(format!("line {line}: {what} {c:?} is not a number")))
            };
            depth_mm.push(number(0, "depth")?);
            gy_mm2_per_mu.push(number(1, "IDD")?);
        }
        let m = Self {
            energy_mev,
            depth_mm,
            gy_mm2_per_mu,
        };
        m.validate(origin)?;
        Ok(m)
    }

    /// Checks the measurement (`origin` names it in errors): at least 10
    /// ascending finite depths from ≥ 0, as many finite IDD values, a
    /// positive maximum and a measured distal fall-off (the last value below
    /// 5 % of the maximum).
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |reason: String| DoseError::InvalidTable {
            table: format!("measured IDD {origin} ({} MeV)", self.energy_mev),
            reason,
        };
        if !(self.energy_mev.is_finite() && self.energy_mev > 0.0) {
            return Err(bad(format!("nominal energy {} MeV", self.energy_mev)));
        }
        if self.depth_mm.len() < 10 || self.depth_mm.len() != self.gy_mm2_per_mu.len() {
            return Err(bad(format!(
                "needs at least 10 (depth, IDD) rows, has {}",
                self.depth_mm.len()
            )));
        }
        if self
            .depth_mm
            .iter()
            .chain(&self.gy_mm2_per_mu)
            .any(|v| !v.is_finite())
        {
            return Err(bad("depths and IDD values must be finite".into()));
        }
        if self.depth_mm.windows(2).any(|w| w[1] <= w[0]) {
            return Err(bad("depths must ascend".into()));
        }
        if self.depth_mm[0] < 0.0 {
            return Err(bad(format!("negative depth {} mm", self.depth_mm[0])));
        }
        let max = self.gy_mm2_per_mu.iter().copied().fold(0.0, f64::max);
        if max <= 0.0 {
            return Err(bad("the IDD is not positive anywhere".into()));
        }
        // the distal fall-off must be measured: the last value at most 5 %
        // (the engine's IDD is zero past its last depth)
        let last = self.gy_mm2_per_mu.last().copied().unwrap_or(0.0);
        if last > 0.05 * max {
            return Err(bad(format!(
                "the last depth ({} mm) is still at {:.0} % of the maximum: the distal fall-off is not measured",
                self.depth_mm.last().copied().unwrap_or(0.0),
                100.0 * last / max
            )));
        }
        Ok(())
    }

    /// Largest |measured − scale × `other`| from the surface to `up_to_mm`,
    /// in % of the measured maximum; `other` is given at the measured
    /// depths.
    fn max_difference_percent(&self, other: &[f64], scale: f64, up_to_mm: f64) -> f64 {
        let max = self.gy_mm2_per_mu.iter().copied().fold(0.0, f64::max);
        self.depth_mm
            .iter()
            .zip(&self.gy_mm2_per_mu)
            .zip(other)
            .filter(|((d, _), _)| **d <= up_to_mm)
            .map(|((_, a), b)| (a - b * scale).abs() / max * 100.0)
            .fold(0.0, f64::max)
    }

    /// The measurement as a depth curve (Gy·mm² per MU; values below zero,
    /// noise, set to zero).
    fn curve(&self) -> Result<DepthCurve> {
        DepthCurve::new(
            &format!("measured IDD {} MeV", self.energy_mev),
            self.depth_mm.clone(),
            self.gy_mm2_per_mu.iter().map(|v| v.max(0.0)).collect(),
        )
    }
}

/// An in-air spot size measured at one energy and distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpotSizeMeasurement {
    /// Nominal energy, MeV.
    pub energy_mev: f64,
    /// Distance downstream of the isocentre plane, mm.
    pub z_mm: f64,
    /// σ along the beam's X and Y, mm.
    pub sigma_x_mm: f64,
    /// See `sigma_x_mm`.
    pub sigma_y_mm: f64,
}

/// Reads spot sizes from a CSV with the header
/// `nominal_energy_mev,z_mm,sigma_x_mm,sigma_y_mm` (columns by name, others
/// ignored).
pub fn spot_sizes_from_csv_str(text: &str, origin: &str) -> Result<Vec<SpotSizeMeasurement>> {
    let bad = |reason: String| DoseError::InvalidTable {
        table: format!("spot sizes {origin}"),
        reason,
    };
    let (names, records) = csv_records(text).map_err(|e| bad(e.to_string()))?;
    if names.is_empty() {
        return Err(bad("empty file".into()));
    }
    let column = |name: &str| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| bad(format!("no column {name:?} in the header {names:?}")))
    };
    let idx = [
        column("nominal_energy_mev")?,
        column("z_mm")?,
        column("sigma_x_mm")?,
        column("sigma_y_mm")?,
    ];
    let mut out = Vec::new();
    for (n, record) in records {
        let mut v = [0.0; 4];
        for (slot, &i) in v.iter_mut().zip(&idx) {
            let c = record.get(i).unwrap_or("");
            *slot = c
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(format!("line {n}: {c:?} is not a number")))?;
        }
        if !(v[0] > 0.0 && v[2] > 0.0 && v[3] > 0.0) {
            return Err(bad(format!(
                "line {n}: energy and sigmas must be > 0, got {v:?}"
            )));
        }
        out.push(SpotSizeMeasurement {
            energy_mev: v[0],
            z_mm: v[1],
            sigma_x_mm: v[2],
            sigma_y_mm: v[3],
        });
    }
    if out.is_empty() {
        return Err(bad("no spot sizes".into()));
    }
    Ok(out)
}

/// A centre's beam data.
#[derive(Clone, Debug, PartialEq)]
pub struct BeamData {
    /// The machine's name.
    pub name: String,
    /// Virtual source-axis distances (scanning magnets to isocentre), mm.
    pub sad_x_mm: f64,
    /// See `sad_x_mm`.
    pub sad_y_mm: f64,
    /// IDDs, one per nominal energy (two or more).
    pub idds: Vec<MeasuredIdd>,
    /// In-air spot sizes (any energies; one or more distances each).
    pub spot_sizes: Vec<SpotSizeMeasurement>,
}

/// What was fitted at one commissioned energy.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyFit {
    /// Nominal energy, MeV.
    pub energy_mev: f64,
    /// Fitted mean energy at the nozzle, MeV.
    pub mean_energy_mev: f64,
    /// Fitted 1σ energy spread, fraction of the mean energy.
    pub energy_spread_fraction: f64,
    /// Fitted MU calibration.
    pub protons_per_mu: f64,
    /// Measured distal R80 and fall-off R20 − R80, mm.
    pub r80_mm: f64,
    /// See `r80_mm`.
    pub falloff_80_20_mm: f64,
    /// Largest |measured − physics model| from the surface to R80, % of the
    /// measured maximum (the physics model's shape error; the machine uses
    /// the measurement).
    pub model_max_residual_percent: f64,
    /// The physics model per MU (Gy·mm² per MU) at the measured depths.
    pub model_gy_mm2_per_mu: Vec<f64>,
    /// Fitted optics at the isocentre plane.
    pub optics_x: SpotOptics,
    /// See `optics_x`.
    pub optics_y: SpotOptics,
}

/// Fitted optics at one spot-size energy and their residual.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpticsFit {
    /// Nominal energy, MeV.
    pub energy_mev: f64,
    /// Optics along X and Y.
    pub x: SpotOptics,
    /// See `x`.
    pub y: SpotOptics,
    /// Largest |σ_measured − σ_fit| over the distances and both axes, mm.
    pub max_residual_mm: f64,
}

/// An interior commissioned energy left out: the machine built from the
/// others, interpolated at its energy, against its measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaveOneOut {
    /// Nominal energy, MeV.
    pub energy_mev: f64,
    /// Interpolated R80 − measured R80, mm.
    pub r80_difference_mm: f64,
    /// Largest |interpolated − measured| IDD per MU from the surface to
    /// R80, % of the measured maximum (shape and MU calibration).
    pub max_difference_percent: f64,
    /// The same with the interpolated IDD per proton scaled by the fitted
    /// protons per MU of the left-out energy: the error of the shape alone.
    pub max_shape_difference_percent: f64,
    /// The energy gap interpolated across (the neighbours' distance), MeV.
    pub gap_mev: f64,
    /// Interpolated protons per MU / fitted, − 1.
    pub protons_per_mu_difference: f64,
    /// The interpolated IDD per MU at the measured depths.
    pub interpolated_gy_mm2_per_mu: Vec<f64>,
}

/// The result: the machine and what was fitted.
#[derive(Clone, Debug)]
pub struct Commissioned {
    /// The commissioned machine.
    pub machine: ProtonMachine,
    /// One per commissioned (IDD) energy, ascending.
    pub energies: Vec<EnergyFit>,
    /// One per spot-size energy, ascending.
    pub optics: Vec<OpticsFit>,
    /// One per interior IDD energy.
    pub leave_one_out: Vec<LeaveOneOut>,
}

impl Commissioned {
    /// The fit as JSON: per energy the fitted mean energy, spread, protons
    /// per MU, measured R80 and fall-off and the physics model's residual;
    /// the optics per spot-size energy; the leave-one-out results.
    pub fn report_json(&self) -> serde_json::Value {
        use serde_json::json;
        let optics = |o: &SpotOptics| json!({"sigma_mm": o.sigma_mm, "divergence_mrad": o.divergence_mrad, "correlation": o.correlation});
        json!({
            "name": self.machine.name(),
            "energies": self.energies.iter().map(|f| json!({
                "energy_mev": f.energy_mev, "mean_energy_mev": f.mean_energy_mev,
                "energy_spread_fraction": f.energy_spread_fraction, "protons_per_mu": f.protons_per_mu,
                "r80_mm": f.r80_mm, "falloff_20_80_mm": f.falloff_80_20_mm,
                "model_max_residual_percent": f.model_max_residual_percent,
            })).collect::<Vec<_>>(),
            "optics": self.optics.iter().map(|o| json!({
                "energy_mev": o.energy_mev, "x": optics(&o.x), "y": optics(&o.y),
                "max_residual_mm": o.max_residual_mm,
            })).collect::<Vec<_>>(),
            "leave_one_out": self.leave_one_out.iter().map(|l| json!({
                "energy_mev": l.energy_mev, "gap_mev": l.gap_mev,
                "r80_difference_mm": l.r80_difference_mm,
                "max_difference_percent": l.max_difference_percent,
                "max_shape_difference_percent": l.max_shape_difference_percent,
                "protons_per_mu_difference": l.protons_per_mu_difference,
            })).collect::<Vec<_>>(),
        })
    }
}

/// R80 and the distal fall-off R20 − R80 of a depth curve (mm).
fn edges(c: &DepthCurve) -> (f64, f64) {
    let r80 = c.distal_depth_at(0.8);
    (r80, c.distal_depth_at(0.2) - r80)
}

/// The physics model at mean energy `e0` and spread `spread`.
fn model(
    params: &BortfeldParams,
    nominal: f64,
    e0: f64,
    spread: f64,
    optics: (SpotOptics, SpotOptics),
) -> Result<EnergyModel> {
    physics_energy_model(
        &PhysicsBeam {
            nominal_energy_mev: nominal,
            mean_energy_mev: e0,
            energy_spread_fraction: spread,
            optics_x: optics.0,
            optics_y: optics.1,
            protons_per_mu: 1.0,
            halo_sigma_fraction_of_range: HALO_SIGMA_FRACTION_OF_RANGE,
        },
        params,
    )
}

/// Bisection for the root of an increasing function `f` on [lo, hi]; an
/// error naming `what` when the root lies outside the bracket.
fn bisect(
    what: &str,
    mut lo: f64,
    mut hi: f64,
    tol: f64,
    f: impl Fn(f64) -> Result<f64>,
) -> Result<f64> {
    let (flo, fhi) = (f(lo)?, f(hi)?);
    if flo > 0.0 || fhi < 0.0 {
        return Err(DoseError::InvalidTable {
            table: what.to_owned(),
            reason: format!(
                "the physics model cannot match the measurement within [{lo}, {hi}] (mismatch {flo:.4} mm at the low end, {fhi:.4} mm at the high end): is the IDD in water, with its distal fall-off measured?"
            ),
        });
    }
    while hi - lo > tol {
        let mid = 0.5 * (lo + hi);
        if f(mid)? < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}

/// Least-squares optics of one axis from (z, σ) pairs.
fn fit_axis(points: &[(f64, f64)]) -> (SpotOptics, f64) {
    let constant = |points: &[(f64, f64)]| {
        let nearest = points
            .iter()
            .min_by(|a, b| a.0.abs().total_cmp(&b.0.abs()))
            .map_or(1.0, |p| p.1);
        SpotOptics {
            sigma_mm: nearest,
            divergence_mrad: 0.0,
            correlation: 0.0,
        }
    };
    let optics = if points.len() < 3 {
        constant(points)
    } else {
        // normal equations of σ² = a + b z + c z²
        let mut m = [[0.0f64; 3]; 3];
        let mut r = [0.0f64; 3];
        for &(z, s) in points {
            let basis = [1.0, z, z * z];
            for i in 0..3 {
                for j in 0..3 {
                    m[i][j] += basis[i] * basis[j];
                }
                r[i] += basis[i] * s * s;
            }
        }
        match solve3(m, r) {
            Some([a, b, c]) if a > 0.0 => {
                let s0 = a.sqrt();
                let theta = c.max(0.0).sqrt();
                let rho = if theta > 0.0 {
                    (b / (2.0 * s0 * theta)).clamp(-1.0, 1.0)
                } else {
                    0.0
                };
                SpotOptics {
                    sigma_mm: s0,
                    divergence_mrad: theta * 1e3,
                    correlation: rho,
                }
            }
            _ => constant(points),
        }
    };
    let residual = points
        .iter()
        .map(|&(z, s)| (optics.sigma_sq_at(z).sqrt() - s).abs())
        .fold(0.0, f64::max);
    (optics, residual)
}

/// Gaussian elimination with partial pivoting of a 3 × 3 system.
fn solve3(mut m: [[f64; 3]; 3], mut r: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-300 {
            return None;
        }
        m.swap(col, pivot);
        r.swap(col, pivot);
        for row in col + 1..3 {
            let f = m[row][col] / m[col][col];
            let pivot_row = m[col];
            for (v, p) in m[row].iter_mut().zip(pivot_row).skip(col) {
                *v -= f * p;
            }
            r[row] -= f * r[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|k| m[row][k] * x[k]).sum();
        x[row] = (r[row] - s) / m[row][row];
    }
    Some(x)
}

/// Optics at `energy_mev`, linear in energy between the fitted energies
/// (held beyond them).
fn optics_at(fits: &[OpticsFit], energy_mev: f64) -> (SpotOptics, SpotOptics) {
    let i = fits.partition_point(|f| f.energy_mev < energy_mev);
    if i == 0 {
        return (fits[0].x, fits[0].y);
    }
    if i == fits.len() {
        return (fits[i - 1].x, fits[i - 1].y);
    }
    let (a, b) = (&fits[i - 1], &fits[i]);
    let t = (energy_mev - a.energy_mev) / (b.energy_mev - a.energy_mev);
    let lin = |p: &SpotOptics, q: &SpotOptics| SpotOptics {
        sigma_mm: p.sigma_mm + t * (q.sigma_mm - p.sigma_mm),
        divergence_mrad: p.divergence_mrad + t * (q.divergence_mrad - p.divergence_mrad),
        correlation: p.correlation + t * (q.correlation - p.correlation),
    };
    (lin(&a.x, &b.x), lin(&a.y, &b.y))
}

/// Fits the optics of every spot-size energy.
pub fn fit_optics(spot_sizes: &[SpotSizeMeasurement]) -> Result<Vec<OpticsFit>> {
    let mut energies: Vec<f64> = spot_sizes.iter().map(|s| s.energy_mev).collect();
    energies.sort_by(f64::total_cmp);
    energies.dedup();
    if energies.is_empty() {
        return Err(DoseError::InvalidTable {
            table: "spot sizes".into(),
            reason: "no spot sizes".into(),
        });
    }
    Ok(energies
        .iter()
        .map(|&e| {
            let at: Vec<&SpotSizeMeasurement> =
                spot_sizes.iter().filter(|s| s.energy_mev == e).collect();
            let xs: Vec<(f64, f64)> = at.iter().map(|s| (s.z_mm, s.sigma_x_mm)).collect();
            let ys: Vec<(f64, f64)> = at.iter().map(|s| (s.z_mm, s.sigma_y_mm)).collect();
            let (x, rx) = fit_axis(&xs);
            let (y, ry) = fit_axis(&ys);
            OpticsFit {
                energy_mev: e,
                x,
                y,
                max_residual_mm: rx.max(ry),
            }
        })
        .collect())
}

/// Fits one measured IDD ([module docs](self)); returns the fit and the
/// machine's energy model.
fn fit_energy(
    params: &BortfeldParams,
    m: &MeasuredIdd,
    optics: (SpotOptics, SpotOptics),
) -> Result<(EnergyFit, EnergyModel)> {
    let measured = m.curve()?;
    let (r80, falloff) = edges(&measured);
    let e = m.energy_mev;
    let model_edges = |e0: f64, spread: f64| -> Result<(f64, f64)> {
        Ok(edges(&model(params, e, e0, spread, optics)?.idd))
    };
    let what_e0 = format!("mean energy of the {e} MeV IDD (MeV, from its R80 {r80:.2} mm)");
    let what_spread =
        format!("energy spread of the {e} MeV IDD (fraction, from its R20 - R80 {falloff:.2} mm)");
    let mut spread = 0.006;
    let mut e0;
    for _ in 0..3 {
        e0 = bisect(&what_e0, 0.7 * e, 1.3 * e, 1e-5, |x| {
            Ok(model_edges(x, spread)?.0 - r80)
        })?;
        spread = bisect(&what_spread, 0.0, 0.03, 1e-6, |s| {
            Ok(model_edges(e0, s)?.1 - falloff)
        })?;
    }
    e0 = bisect(&what_e0, 0.7 * e, 1.3 * e, 1e-5, |x| {
        Ok(model_edges(x, spread)?.0 - r80)
    })?;
    let physics = model(params, e, e0, spread, optics)?;
    // protons per MU: measured energy per MU over the model's per proton
    let depths = &m.depth_mm;
    let trapezoid = |v: &dyn Fn(usize) -> f64| -> f64 {
        (0..depths.len() - 1)
            .map(|k| 0.5 * (v(k) + v(k + 1)) * (depths[k + 1] - depths[k]))
            .sum()
    };
    let measured_integral = trapezoid(&|k| m.gy_mm2_per_mu[k].max(0.0));
    let model_integral = trapezoid(&|k| physics.idd.at(depths[k]));
    if !(model_integral > 0.0 && measured_integral > 0.0) {
        return Err(DoseError::InvalidTable {
            table: format!("measured IDD {e} MeV"),
            reason: "cannot calibrate: zero integral".into(),
        });
    }
    let protons_per_mu = measured_integral / model_integral;
    let model_per_mu: Vec<f64> = depths
        .iter()
        .map(|&d| physics.idd.at(d) * protons_per_mu)
        .collect();
    let model_max_residual_percent = m.max_difference_percent(&model_per_mu, 1.0, r80);
    let idd = DepthCurve::new(
        &format!("commissioned {e} MeV idd"),
        depths.clone(),
        m.gy_mm2_per_mu
            .iter()
            .map(|v| v.max(0.0) / protons_per_mu)
            .collect(),
    )?;
    let energy = EnergyModel::new(
        e,
        idd,
        optics.0,
        optics.1,
        protons_per_mu,
        physics.halo.clone(),
    )?;
    Ok((
        EnergyFit {
            energy_mev: e,
            mean_energy_mev: e0,
            energy_spread_fraction: spread,
            protons_per_mu,
            r80_mm: r80,
            falloff_80_20_mm: falloff,
            model_max_residual_percent,
            model_gy_mm2_per_mu: model_per_mu,
            optics_x: optics.0,
            optics_y: optics.1,
        },
        energy,
    ))
}

/// Commissions a machine from `data` ([module docs](self)).
pub fn commission(data: &BeamData) -> Result<Commissioned> {
    let params = bortfeld_params()?;
    if data.idds.len() < 2 {
        return Err(DoseError::InvalidTable {
            table: format!("beam data of {:?}", data.name),
            reason: format!(
                "needs IDDs at two or more energies, has {}",
                data.idds.len()
            ),
        });
    }
    for m in &data.idds {
        m.validate(&format!("of {:?}", data.name))?;
    }
    let mut idds = data.idds.clone();
    idds.sort_by(|a, b| a.energy_mev.total_cmp(&b.energy_mev));
    if let Some(w) = idds.windows(2).find(|w| w[0].energy_mev == w[1].energy_mev) {
        return Err(DoseError::InvalidTable {
            table: format!("beam data of {:?}", data.name),
            reason: format!("two IDDs at {} MeV", w[0].energy_mev),
        });
    }
    let optics = fit_optics(&data.spot_sizes)?;
    let mut fits = Vec::new();
    let mut models = Vec::new();
    for m in &idds {
        let (fit, model) = fit_energy(&params, m, optics_at(&optics, m.energy_mev))?;
        fits.push(fit);
        models.push(model);
    }
    let machine = ProtonMachine::new(
        &data.name,
        data.sad_x_mm,
        data.sad_y_mm,
        models.clone(),
        highland_params()?,
    )?;
    let mut leave_one_out = Vec::new();
    for i in 1..idds.len().saturating_sub(1) {
        let others: Vec<EnergyModel> = models
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != i)
            .map(|(_, m)| m.clone())
            .collect();
        let without = ProtonMachine::new(
            &data.name,
            data.sad_x_mm,
            data.sad_y_mm,
            others,
            highland_params()?,
        )?;
        let m = &idds[i];
        let interpolated = without.energy_model(m.energy_mev)?;
        let per_mu: Vec<f64> = m
            .depth_mm
            .iter()
            .map(|&d| interpolated.idd.at(d) * interpolated.protons_per_mu)
            .collect();
        let curve = DepthCurve::new("interpolated", m.depth_mm.clone(), per_mu.clone())?;
        let r80 = fits[i].r80_mm;
        let max_difference_percent = m.max_difference_percent(&per_mu, 1.0, r80);
        let max_shape_difference_percent = m.max_difference_percent(
            &per_mu,
            fits[i].protons_per_mu / interpolated.protons_per_mu,
            r80,
        );
        leave_one_out.push(LeaveOneOut {
            energy_mev: m.energy_mev,
            r80_difference_mm: curve.distal_depth_at(0.8) - r80,
            max_difference_percent,
            max_shape_difference_percent,
            gap_mev: idds[i + 1].energy_mev - idds[i - 1].energy_mev,
            protons_per_mu_difference: interpolated.protons_per_mu / fits[i].protons_per_mu - 1.0,
            interpolated_gy_mm2_per_mu: per_mu,
        });
    }
    Ok(Commissioned {
        machine,
        energies: fits,
        optics,
        leave_one_out,
    })
}

/// CSV rows with their 1-based line numbers.
type NumberedRecords = Vec<(u64, csv::StringRecord)>;

/// The header names and the records (with their 1-based line numbers) of a
/// CSV text by the `csv` crate: `#` comment lines skipped, cells trimmed,
/// rows of any length (extra columns are ignored by the callers).
fn csv_records(text: &str) -> std::result::Result<(Vec<String>, NumberedRecords), csv::Error> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let names = reader.headers()?.iter().map(str::to_owned).collect();
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record?;
        let line = record.position().map_or(0, csv::Position::line);
        records.push((line, record));
    }
    Ok((names, records))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn optics_of_exact_quadratic_sizes_are_recovered() {
        let truth = SpotOptics {
            sigma_mm: 4.0,
            divergence_mrad: 3.0,
            correlation: 0.4,
        };
        let points: Vec<(f64, f64)> = [-200.0, -100.0, 0.0, 100.0, 200.0]
            .iter()
            .map(|&z| (z, truth.sigma_sq_at(z).sqrt()))
            .collect();
        let (fit, residual) = fit_axis(&points);
        assert!((fit.sigma_mm - 4.0).abs() < 1e-9, "{fit:?}");
        assert!((fit.divergence_mrad - 3.0).abs() < 1e-7, "{fit:?}");
        assert!((fit.correlation - 0.4).abs() < 1e-7, "{fit:?}");
        assert!(residual < 1e-9);
        // one distance: σ₀ only
        let (one, _) = fit_axis(&points[2..3]);
        assert_eq!((one.sigma_mm, one.divergence_mrad), (4.0, 0.0));
    }

    #[test]
    fn csv_readers_name_the_problem() {
        let e = MeasuredIdd::from_csv_str(100.0, "depth_mm,idd\n0,1\n1,x\n", "a.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.csv") && e.contains("line 3"), "{e}");
        // a curve that does not fall off
        let text: String = std::iter::once("d,v\n".to_owned())
            .chain((0..20).map(|k| format!("{k},1.0\n")))
            .collect();
        let e = MeasuredIdd::from_csv_str(100.0, &text, "b.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fall-off"), "{e}");
        let e = spot_sizes_from_csv_str("energy,z_mm\n", "s.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nominal_energy_mev"), "{e}");
        let s = spot_sizes_from_csv_str(
            "z_mm,nominal_energy_mev,sigma_x_mm,sigma_y_mm\n0,100,5,6\n",
            "s.csv",
        )
        .unwrap();
        assert_eq!(s[0].energy_mev, 100.0);
        assert_eq!(s[0].sigma_y_mm, 6.0);
        // what the csv crate reads that the hand-split lines did not:
        // quoted header names, CRLF line ends, comment lines, and the line
        // numbers of errors counted with them
        let s = spot_sizes_from_csv_str(
            "# spot sizes, 2026\r\n\"nominal_energy_mev\",\"z_mm\",sigma_x_mm,sigma_y_mm,note\r\n\
             150,-200,4.5,4.75,\"iso, gantry 0\"\r\n",
            "q.csv",
        )
        .unwrap();
        assert_eq!((s[0].z_mm, s[0].sigma_x_mm), (-200.0, 4.5));
        let e = spot_sizes_from_csv_str(
            "# a comment\nnominal_energy_mev,z_mm,sigma_x_mm,sigma_y_mm\n150,0,4,4\n150,x,4,4\n",
            "c.csv",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 4"), "{e}");
    }

    #[test]
    fn a_physics_idd_gives_back_its_energy_and_spread() {
        // "measurements" generated by the physics model itself at a known
        // mean energy and spread: the fit must return them (the method's
        // self-consistency; the independent test is against MC in
        // tests/proton_commission.rs)
        let params = bortfeld_params().unwrap();
        let optics = SpotOptics {
            sigma_mm: 5.0,
            divergence_mrad: 0.0,
            correlation: 0.0,
        };
        let truth = model(&params, 150.0, 150.7, 0.008, (optics, optics)).unwrap();
        let depths: Vec<f64> = (0..200).map(f64::from).collect();
        let m = MeasuredIdd {
            energy_mev: 150.0,
            gy_mm2_per_mu: depths.iter().map(|&d| truth.idd.at(d) * 1.2e8).collect(),
            depth_mm: depths,
        };
        let (fit, energy) = fit_energy(&params, &m, (optics, optics)).unwrap();
        assert!((fit.mean_energy_mev - 150.7).abs() < 0.02, "{fit:?}");
        assert!((fit.energy_spread_fraction - 0.008).abs() < 4e-4, "{fit:?}");
        assert!((fit.protons_per_mu / 1.2e8 - 1.0).abs() < 2e-3, "{fit:?}");
        assert!(fit.model_max_residual_percent < 1.0, "{fit:?}");
        assert!(energy.halo.is_some());
    }
}
