//! Proton machine data: what a centre commissions.
//!
//! # File format (`isodose-proton-machine/1`, JSON)
//!
//! ```json
//! {
//!   "format": "isodose-proton-machine/1",
//!   "name": "My gantry 1",
//!   "sad_x_mm": 2000.0, "sad_y_mm": 2300.0,     // virtual source-axis distances
//!   "energies": [
//!     {
//!       "energy_mev": 100.0,                       // nominal energy
//!       "idd": {                                   // integrated depth dose in water
//!         "depth_mm": [0.0, 1.0, ...],             // ascending, from the water surface
//!         "dose_gy_mm2_per_proton": [...]          // laterally integrated dose per proton
//!       },
//!       "optics_x": {"sigma_mm": 5.2, "divergence_mrad": 2.0, "correlation": 0.0},
//!       "optics_y": {"sigma_mm": 5.2, "divergence_mrad": 2.0, "correlation": 0.0},
//!       "protons_per_mu": 1.0e8,                   // MU calibration at this energy
//!       "halo": {                                  // optional nuclear halo
//!         "depth_mm": [...], "weight": [...],      // dose fraction in the halo, 0–1
//!         "extra_sigma_mm": [...]                  // σ_halo² = σ_core² + extra²
//!       }
//!     }
//!   ],
//!   "range_shifters": [                            // optional (absent = none)
//!     {
//!       "id": "RS_5CM",                            // DICOM RangeShifterID (case-insensitive)
//!       "water_equivalent_thickness_mm": 57.0,     // WET, mm
//!       "material": "pmma",                        // "pmma": RSP 1.165, X₀ 405.5 mm
//!       "relative_stopping_power": 1.165,          // optional; required unless "pmma"
//!       "radiation_length_mm": 405.5,              // optional; required unless "pmma"
//!       "snout_to_range_shifter_mm": 43.0          // optional, default 0 (see below)
//!     }
//!   ]
//! }
//! ```
//!
//! The `range_shifters` table (added to `isodose-proton-machine/1` without a
//! version change: files without it read as before) lets plans that name a
//! shifter by RangeShifterID alone (DICOM PS3.3 C.8.8.25, Range Shifter
//! Sequence (300A,0314)) be converted: a plan's own
//! RangeShifterWaterEquivalentThickness (300A,0370) takes precedence over the
//! table. `snout_to_range_shifter_mm` is how far upstream of the snout's
//! downstream face (DICOM SnoutPosition (300A,030D), measured from the
//! isocentre) the shifter's downstream face sits; it is used only when a plan
//! omits IsocenterToRangeShifterDistance (300A,0364), as
//! IsocenterToRangeShifterDistance = SnoutPosition + snout_to_range_shifter_mm.
//! `relative_stopping_power` and `radiation_length_mm`, when given, override
//! the material's values.
//!
//! # Energies between the tabulated ones
//!
//! [`ProtonMachine::energy`] returns a tabulated energy only;
//! [`ProtonMachine::energy_model`] also interpolates between the two
//! neighbouring tabulated energies E₀ < E < E₁, with t = (E − E₀)/(E₁ − E₀)
//! (see [`EnergyModel::interpolate`]):
//!
//! - **IDD by range scaling.** With R₀, R₁ the neighbours' R80, the range
//!   follows the Bragg–Kleeman rule R ∝ E^p between them:
//!   s = ln(E/E₀)/ln(E₁/E₀), R = R₀^(1−s)·R₁^s (a linear R in E would
//!   overestimate the range between energies 20 MeV apart by 0.5 mm at
//!   80 MeV, as leaving energies out of a commissioned table showed), and
//!   the dose per proton at depth d is taken at equal reduced depth u = d/R:
//!   IDD(d) = (1 − s)·IDD₀(u R₀) + s·IDD₁(u R₁),
//!   on the union of both neighbours' nodes in u (each curve is zero beyond its
//!   last tabulated depth, as in the dose engine). The peak moves with the range
//!   rather than being blurred into two peaks, and the R80 of the result is R to
//!   within the change of the peak shape between neighbours.
//! - **Halo** weight and extra σ: the same reduced-depth rule and weight s.
//! - **Optics** (σ₀, divergence, correlation) and **protons per MU**: linear in E.
//!
//! Accuracy, measured on the generic machine (1 MeV steps) against the model
//! generated directly from physics at the same energy
//! ([`crate::proton::generic::generic_energy_model`], tested in
//! `tests/proton_machine.rs`): at 70.5, 120.3, 150.5 and 229.5 MeV, R80
//! within 0.005 mm and the IDD within 0.2 % of its maximum at every depth
//! (largest at low energy, where the Bragg peak is sharpest). The error grows
//! about with the square of the energy step: interpolating the generic
//! machine at 75 MeV from neighbours 2, 4 and 10 MeV apart gave 0.45 %,
//! 1.7 % and 11 % of the peak (R80 0.002, 0.02 and 0.14 mm; measured with
//! the earlier range rule, linear in E, whose range error the Bragg–Kleeman
//! rule removes). A centre's own energy table is checked the same way, by
//! leaving each energy out ([`crate::proton::commission`]): on MCsquare IDDs
//! 20–40 MeV apart, R80 within 0.19 mm and the IDD within 2.5 % of its
//! maximum, except where the beam model's own nominal-to-mean energy offset
//! jumps between rows (`tests/proton_commission.rs`).
//!
//! Units: the IDD is the dose integrated over the plane perpendicular to the
//! beam (Gy·mm² per proton; 1 MeV cm²/g per proton = 1.602e-8 Gy·mm²). In-air
//! optics give σ at distance d downstream of the isocentre plane:
//! σ²(d) = σ₀² + 2ρσ₀θd + θ²d² (σ₀ at the isocentre, θ divergence, ρ
//! correlation), per axis of the beam frame.

use std::borrow::Cow;
use std::path::Path;

use serde::Deserialize;

use crate::error::{DoseError, Result, read_text};
use crate::physics::mcs::HighlandParams;
use crate::physics::table::lerp_clamped;
use crate::proton::plan::RangeShifter;

/// The format tag of machine files.
pub const MACHINE_FORMAT: &str = "isodose-proton-machine/1";

/// In-air spot size along one axis: σ²(d) = σ₀² + 2ρσ₀θd + θ²d².
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpotOptics {
    /// σ₀ at the isocentre plane, mm.
    pub sigma_mm: f64,
    /// Divergence θ, mrad.
    pub divergence_mrad: f64,
    /// Correlation ρ between position and angle, −1..1.
    pub correlation: f64,
}

impl SpotOptics {
    fn validate(&self, what: &str) -> Result<()> {
        let ok = self.sigma_mm.is_finite()
            && self.sigma_mm > 0.0
            && self.divergence_mrad.is_finite()
            && self.divergence_mrad >= 0.0
            && (-1.0..=1.0).contains(&self.correlation);
        if ok {
            Ok(())
        } else {
            Err(DoseError::InvalidTable {
                table: what.to_owned(),
                reason: format!(
                    "spot optics {self:?}: sigma must be > 0, divergence >= 0, correlation in [-1, 1]"
                ),
            })
        }
    }

    /// σ² in air at `d_mm` downstream of the isocentre plane, mm².
    pub fn sigma_sq_at(&self, d_mm: f64) -> f64 {
        let theta = self.divergence_mrad * 1e-3;
        let s0 = self.sigma_mm;
        (s0 * s0 + 2.0 * self.correlation * s0 * theta * d_mm + theta * theta * d_mm * d_mm)
            .max(0.0)
    }
}

/// A piecewise-linear function of depth (mm), ascending depths.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthCurve {
    depth_mm: Vec<f64>,
    values: Vec<f64>,
}

impl DepthCurve {
    /// Validates (equal lengths ≥ 2, finite, strictly ascending depths ≥ 0,
    /// values ≥ 0).
    pub fn new(what: &str, depth_mm: Vec<f64>, values: Vec<f64>) -> Result<Self> {
        let bad = |reason: String| DoseError::InvalidTable {
            table: what.to_owned(),
            reason,
        };
        if depth_mm.len() != values.len() || depth_mm.len() < 2 {
            return Err(bad(format!(
                "needs at least two points of equal length, got {} depths and {} values",
                depth_mm.len(),
                values.len()
            )));
        }
        if let Some(v) = depth_mm
            .iter()
            .chain(&values)
            .find(|v| !v.is_finite() || **v < 0.0)
        {
            return Err(bad(format!("value {v} is negative or not finite")));
        }
        if let Some(w) = depth_mm.windows(2).find(|w| w[1] <= w[0]) {
            return Err(bad(format!(
                "depths must be strictly ascending; {} is followed by {}",
                w[0], w[1]
            )));
        }
        Ok(Self { depth_mm, values })
    }

    /// Value at `depth_mm` (linear, constant beyond the ends).
    pub fn at(&self, depth_mm: f64) -> f64 {
        lerp_clamped(&self.depth_mm, &self.values, depth_mm)
    }

    /// Last tabulated depth, mm.
    pub fn max_depth_mm(&self) -> f64 {
        self.depth_mm[self.depth_mm.len() - 1]
    }

    /// The tabulated depths.
    pub fn depths(&self) -> &[f64] {
        &self.depth_mm
    }
    /// The tabulated values.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Distal depth where the curve falls to `fraction` of its maximum (linear
    /// between nodes), e.g. R80 for 0.8.
    pub fn distal_depth_at(&self, fraction: f64) -> f64 {
        let (i_max, max) = self
            .values
            .iter()
            .enumerate()
            .fold(
                (0, f64::MIN),
                |acc, (i, v)| if *v > acc.1 { (i, *v) } else { acc },
            );
        let level = fraction * max;
        for i in i_max..self.values.len() - 1 {
            let (a, b) = (self.values[i], self.values[i + 1]);
            if a >= level && b < level {
                let t = (a - level) / (a - b);
                return self.depth_mm[i] + t * (self.depth_mm[i + 1] - self.depth_mm[i]);
            }
        }
        self.max_depth_mm()
    }
}

/// The nuclear halo at one energy: fraction of the dose in a wide second
/// Gaussian and its extra width, versus depth in water.
#[derive(Clone, Debug, PartialEq)]
pub struct HaloModel {
    /// Dose fraction in the halo, 0–1.
    pub weight: DepthCurve,
    /// σ_halo² = σ_core² + extra², mm.
    pub extra_sigma_mm: DepthCurve,
}

/// Beam data of one nominal energy.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyModel {
    /// Nominal energy, MeV.
    pub energy_mev: f64,
    /// Integrated depth dose in water, Gy·mm² per proton.
    pub idd: DepthCurve,
    /// In-air optics along the beam's X axis.
    pub optics_x: SpotOptics,
    /// In-air optics along the beam's Y axis.
    pub optics_y: SpotOptics,
    /// Protons per MU.
    pub protons_per_mu: f64,
    /// Optional nuclear halo.
    pub halo: Option<HaloModel>,
    /// Depth of the distal 80 % dose of the IDD, mm (derived).
    pub r80_mm: f64,
}

/// A proton pencil-beam scanning machine.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtonMachine {
    name: String,
    sad_x_mm: f64,
    sad_y_mm: f64,
    /// ascending energy
    energies: Vec<EnergyModel>,
    highland: HighlandParams,
    range_shifters: Vec<MachineRangeShifter>,
}

/// A range shifter of the machine, by ID: one row of the machine file's
/// optional `range_shifters` table (format in the [module docs](self)).
///
/// Used to convert DICOM RT Ion Plans (PS3.3 C.8.8.25) whose Range Shifter
/// Sequence (300A,0314) names the shifter by RangeShifterID (300A,0318)
/// without a RangeShifterWaterEquivalentThickness (300A,0370), and to place it
/// from the SnoutPosition (300A,030D) when the plan gives no
/// IsocenterToRangeShifterDistance (300A,0364).
#[derive(Clone, Debug, PartialEq)]
pub struct MachineRangeShifter {
    /// RangeShifterID as the plans name it (matched ignoring ASCII case and
    /// surrounding blanks).
    pub id: String,
    /// Water-equivalent thickness, mm.
    pub water_equivalent_thickness_mm: f64,
    /// Material name (informative; `"pmma"` supplies the PMMA constants).
    pub material: String,
    /// Relative stopping power of the material.
    pub relative_stopping_power: f64,
    /// Radiation length of the material, mm.
    pub radiation_length_mm: f64,
    /// Distance from the snout's downstream face upstream to the shifter's
    /// downstream face, mm: IsocenterToRangeShifterDistance =
    /// SnoutPosition + this (0 when the shifter is flush with the snout).
    pub snout_to_range_shifter_mm: f64,
}

impl MachineRangeShifter {
    /// Validates a table row. `relative_stopping_power` and
    /// `radiation_length_mm` default to the PMMA values of
    /// [`RangeShifter::pmma`] (RSP 1.165, X₀ 405.5 mm) when `material` is
    /// `"pmma"` (any case) and are required otherwise.
    pub fn new(
        id: &str,
        water_equivalent_thickness_mm: f64,
        material: &str,
        relative_stopping_power: Option<f64>,
        radiation_length_mm: Option<f64>,
        snout_to_range_shifter_mm: f64,
    ) -> Result<Self> {
        let what = format!("machine range shifter {id:?}");
        if id.trim().is_empty() {
            return Err(DoseError::InvalidTable {
                table: "machine range shifters".into(),
                reason: "a range shifter has an empty id".into(),
            });
        }
        let pmma = material.trim().eq_ignore_ascii_case("pmma");
        let (rsp, x0) = match (relative_stopping_power, radiation_length_mm) {
            (Some(r), Some(x)) => (r, x),
            (r, x) if pmma => {
                let p = RangeShifter::pmma(1.0, 0.0)?;
                (
                    r.unwrap_or(p.relative_stopping_power),
                    x.unwrap_or(p.radiation_length_mm),
                )
            }
            _ => {
                return Err(DoseError::InvalidTable {
                    table: what,
                    reason: format!(
                        "material {material:?} is not \"pmma\": give relative_stopping_power and radiation_length_mm"
                    ),
                });
            }
        };
        // the same checks as the core range shifter
        RangeShifter::new(water_equivalent_thickness_mm, 0.0, rsp, x0).map_err(|e| {
            DoseError::InvalidTable {
                table: what.clone(),
                reason: e.to_string(),
            }
        })?;
        if !snout_to_range_shifter_mm.is_finite() {
            return Err(DoseError::InvalidTable {
                table: what,
                reason: format!(
                    "snout_to_range_shifter_mm = {snout_to_range_shifter_mm} is not finite"
                ),
            });
        }
        Ok(Self {
            id: id.trim().to_owned(),
            water_equivalent_thickness_mm,
            material: material.trim().to_owned(),
            relative_stopping_power: rsp,
            radiation_length_mm: x0,
            snout_to_range_shifter_mm,
        })
    }

    /// Whether `id` names this shifter (ASCII case and blanks ignored).
    pub fn matches(&self, id: &str) -> bool {
        self.id.eq_ignore_ascii_case(id.trim())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CurveFile {
    depth_mm: Vec<f64>,
    dose_gy_mm2_per_proton: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HaloFile {
    depth_mm: Vec<f64>,
    weight: Vec<f64>,
    extra_sigma_mm: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnergyFile {
    energy_mev: f64,
    idd: CurveFile,
    optics_x: SpotOptics,
    optics_y: SpotOptics,
    protons_per_mu: f64,
    #[serde(default)]
    halo: Option<HaloFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeShifterFile {
    id: String,
    water_equivalent_thickness_mm: f64,
    material: String,
    #[serde(default)]
    relative_stopping_power: Option<f64>,
    #[serde(default)]
    radiation_length_mm: Option<f64>,
    #[serde(default)]
    snout_to_range_shifter_mm: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineFile {
    format: String,
    name: String,
    sad_x_mm: f64,
    sad_y_mm: f64,
    energies: Vec<EnergyFile>,
    #[serde(default)]
    range_shifters: Vec<RangeShifterFile>,
}

impl EnergyModel {
    /// Validates one energy's data and derives R80.
    pub fn new(
        energy_mev: f64,
        idd: DepthCurve,
        optics_x: SpotOptics,
        optics_y: SpotOptics,
        protons_per_mu: f64,
        halo: Option<HaloModel>,
    ) -> Result<Self> {
        let what = format!("machine energy {energy_mev} MeV");
        if !(energy_mev.is_finite() && energy_mev > 0.0) {
            return Err(DoseError::OutOfRange {
                field: "machine energy (MeV)".into(),
                value: energy_mev,
                reason: "must be finite and > 0".into(),
            });
        }
        if !(protons_per_mu.is_finite() && protons_per_mu > 0.0) {
            return Err(DoseError::OutOfRange {
                field: format!("{what}: protons per MU"),
                value: protons_per_mu,
                reason: "must be finite and > 0".into(),
            });
        }
        optics_x.validate(&format!("{what}: optics_x"))?;
        optics_y.validate(&format!("{what}: optics_y"))?;
        if idd.values().iter().all(|v| *v == 0.0) {
            return Err(DoseError::InvalidTable {
                table: format!("{what}: idd"),
                reason: "the depth dose is zero everywhere".into(),
            });
        }
        if let Some(h) = &halo
            && h.weight.values().iter().any(|w| *w > 1.0)
        {
            return Err(DoseError::InvalidTable {
                table: format!("{what}: halo weight"),
                reason: "weights must be within 0..1".into(),
            });
        }
        let r80_mm = idd.distal_depth_at(0.8);
        Ok(Self {
            energy_mev,
            idd,
            optics_x,
            optics_y,
            protons_per_mu,
            halo,
            r80_mm,
        })
    }

    /// The model at `energy_mev` between two models `lo` and `hi` of lower and
    /// higher energy (E₀ < E < E₁, t = (E − E₀)/(E₁ − E₀)), by the rules of
    /// the [module docs](self#energies-between-the-tabulated-ones):
    ///
    /// - with s = ln(E/E₀)/ln(E₁/E₀): ln R = (1 − s) ln R80₀ + s ln R80₁
    ///   (the Bragg–Kleeman rule R ∝ E^p between the neighbours);
    ///   IDD(d) = (1 − s)IDD₀(dR80₀/R) + sIDD₁(dR80₁/R), each curve zero
    ///   beyond its last depth, on the union of the neighbours' nodes scaled
    ///   to reduced depth d/R;
    /// - halo weight and extra σ by the same reduced-depth rule and weight s
    ///   (a missing halo counts as weight 0);
    /// - optics and protons per MU linear in E (t = (E − E₀)/(E₁ − E₀)).
    ///
    /// The R80 of the result is derived from its IDD, as for any model.
    pub fn interpolate(lo: &EnergyModel, hi: &EnergyModel, energy_mev: f64) -> Result<Self> {
        let (e0, e1) = (lo.energy_mev, hi.energy_mev);
        if !(e0 < energy_mev && energy_mev < e1) {
            return Err(DoseError::OutOfRange {
                field: "interpolated energy (MeV)".into(),
                value: energy_mev,
                reason: format!("must lie strictly between {e0} and {e1} MeV"),
            });
        }
        let t = (energy_mev - e0) / (e1 - e0);
        let lin = |a: f64, b: f64| (1.0 - t) * a + t * b;
        let (r0, r1) = (lo.r80_mm, hi.r80_mm);
        if !(r0 > 0.0 && r1 > 0.0 && e0 > 0.0) {
            return Err(DoseError::InvalidTable {
                table: format!("machine energies {e0} and {e1} MeV"),
                reason: format!("R80 {r0} / {r1} mm cannot be range-scaled"),
            });
        }
        // the range by the Bragg–Kleeman rule R ∝ E^p between the neighbours
        // (ln R linear in ln E), and the curves blended with the same weight
        let s = (energy_mev / e0).ln() / (e1 / e0).ln();
        let r = (r0.ln() + s * (r1 / r0).ln()).exp();
        let blend = |a: f64, b: f64| (1.0 - s) * a + s * b;
        // reduced-depth nodes of both neighbours, as depths at range R
        let nodes = |a: &DepthCurve, b: &DepthCurve| -> Vec<f64> {
            let mut u: Vec<f64> = a
                .depths()
                .iter()
                .map(|d| d / r0)
                .chain(b.depths().iter().map(|d| d / r1))
                .collect();
            u.sort_by(f64::total_cmp);
            u.dedup_by(|x, y| (*x - *y).abs() <= 1e-12 * y.abs().max(1.0));
            u.into_iter().map(|u| u * r).collect()
        };
        // value of `c` (of range `rc`) at the reduced depth of `d`; zero past
        // its end when `zero_beyond`
        let at = |c: &DepthCurve, rc: f64, d: f64, zero_beyond: bool| {
            let x = d * rc / r;
            if zero_beyond && x > c.max_depth_mm() {
                0.0
            } else {
                c.at(x)
            }
        };
        let what = format!("machine energy {energy_mev} MeV (interpolated)");
        let depths = nodes(&lo.idd, &hi.idd);
        let values = depths
            .iter()
            .map(|&d| blend(at(&lo.idd, r0, d, true), at(&hi.idd, r1, d, true)))
            .collect();
        let idd = DepthCurve::new(&format!("{what}: idd"), depths, values)?;
        // halos of the lower and upper model, the weight of each scaled by
        // `ka` / `kb` (0 where a model has no halo: its stand-in is the other)
        let halo_between = |a: &HaloModel, b: &HaloModel, ka: f64, kb: f64| -> Result<HaloModel> {
            let depths = nodes(&a.weight, &b.weight);
            let weight = depths
                .iter()
                .map(|&d| {
                    blend(
                        ka * at(&a.weight, r0, d, false),
                        kb * at(&b.weight, r1, d, false),
                    )
                })
                .collect();
            let extra = depths
                .iter()
                .map(|&d| {
                    blend(
                        at(&a.extra_sigma_mm, r0, d, false),
                        at(&b.extra_sigma_mm, r1, d, false),
                    )
                })
                .collect();
            Ok(HaloModel {
                weight: DepthCurve::new(&format!("{what}: halo weight"), depths.clone(), weight)?,
                extra_sigma_mm: DepthCurve::new(
                    &format!("{what}: halo extra sigma"),
                    depths,
                    extra,
                )?,
            })
        };
        let halo = match (&lo.halo, &hi.halo) {
            (None, None) => None,
            (Some(a), None) => Some(halo_between(a, a, 1.0, 0.0)?),
            (None, Some(b)) => Some(halo_between(b, b, 0.0, 1.0)?),
            (Some(a), Some(b)) => Some(halo_between(a, b, 1.0, 1.0)?),
        };
        let optics = |a: &SpotOptics, b: &SpotOptics| SpotOptics {
            sigma_mm: lin(a.sigma_mm, b.sigma_mm),
            divergence_mrad: lin(a.divergence_mrad, b.divergence_mrad),
            correlation: lin(a.correlation, b.correlation),
        };
        Self::new(
            energy_mev,
            idd,
            optics(&lo.optics_x, &hi.optics_x),
            optics(&lo.optics_y, &hi.optics_y),
            lin(lo.protons_per_mu, hi.protons_per_mu),
            halo,
        )
    }
}

impl ProtonMachine {
    /// A machine from validated energies (sorted here; duplicates rejected).
    pub fn new(
        name: &str,
        sad_x_mm: f64,
        sad_y_mm: f64,
        mut energies: Vec<EnergyModel>,
        highland: HighlandParams,
    ) -> Result<Self> {
        for (axis, sad) in [("x", sad_x_mm), ("y", sad_y_mm)] {
            if !(sad.is_finite() && sad > 0.0) {
                return Err(DoseError::OutOfRange {
                    field: format!("virtual source-axis distance {axis} (mm)"),
                    value: sad,
                    reason: "must be finite and > 0".into(),
                });
            }
        }
        if energies.is_empty() {
            return Err(DoseError::Empty {
                what: "machine energy list",
            });
        }
        energies.sort_by(|a, b| a.energy_mev.total_cmp(&b.energy_mev));
        if let Some(w) = energies
            .windows(2)
            .find(|w| w[1].energy_mev - w[0].energy_mev < 1e-6)
        {
            return Err(DoseError::InvalidTable {
                table: format!("machine {name:?}"),
                reason: format!("energy {} MeV appears twice", w[0].energy_mev),
            });
        }
        Ok(Self {
            name: name.to_owned(),
            sad_x_mm,
            sad_y_mm,
            energies,
            highland,
            range_shifters: Vec::new(),
        })
    }

    /// The same machine with the range-shifter table `range_shifters`
    /// (replacing any previous one); IDs must differ (ignoring ASCII case).
    pub fn with_range_shifters(mut self, range_shifters: Vec<MachineRangeShifter>) -> Result<Self> {
        for (i, a) in range_shifters.iter().enumerate() {
            if range_shifters[..i].iter().any(|b| b.matches(&a.id)) {
                return Err(DoseError::InvalidTable {
                    table: format!("machine {:?} range shifters", self.name),
                    reason: format!("range shifter id {:?} appears twice", a.id),
                });
            }
        }
        self.range_shifters = range_shifters;
        Ok(self)
    }

    /// Reads a machine file of either format: isodose JSON (format above;
    /// the text starts with `{`) or an MCsquare beam data library
    /// ([`ProtonMachine::from_bdl_file`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = read_text(path)?;
        let origin = path.display().to_string();
        if text.trim_start().starts_with('{') {
            Self::from_json_str(&text, &origin)
        } else {
            Self::from_bdl_str(&text, &origin)
        }
    }

    /// Reads a machine file (format above). The Highland constants for
    /// scattering in the patient are isodose's water values.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_json_str(&read_text(path)?, &path.display().to_string())
    }

    /// Parses a machine file's text; `origin` names it in errors.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self> {
        let file: MachineFile = serde_json::from_str(text).map_err(|e| DoseError::SeedData {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        if file.format != MACHINE_FORMAT {
            return Err(DoseError::SeedData {
                origin: origin.to_owned(),
                reason: format!("format is {:?}; expected {MACHINE_FORMAT:?}", file.format),
            });
        }
        let energies = file
            .energies
            .into_iter()
            .map(|e| {
                let what = |t: &str| format!("{origin}: {} MeV {t}", e.energy_mev);
                let idd =
                    DepthCurve::new(&what("idd"), e.idd.depth_mm, e.idd.dose_gy_mm2_per_proton)?;
                let halo = e
                    .halo
                    .map(|h| -> Result<HaloModel> {
                        Ok(HaloModel {
                            weight: DepthCurve::new(
                                &what("halo weight"),
                                h.depth_mm.clone(),
                                h.weight,
                            )?,
                            extra_sigma_mm: DepthCurve::new(
                                &what("halo extra sigma"),
                                h.depth_mm,
                                h.extra_sigma_mm,
                            )?,
                        })
                    })
                    .transpose()?;
                EnergyModel::new(
                    e.energy_mev,
                    idd,
                    e.optics_x,
                    e.optics_y,
                    e.protons_per_mu,
                    halo,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let shifters = file
            .range_shifters
            .into_iter()
            .map(|r| {
                MachineRangeShifter::new(
                    &r.id,
                    r.water_equivalent_thickness_mm,
                    &r.material,
                    r.relative_stopping_power,
                    r.radiation_length_mm,
                    r.snout_to_range_shifter_mm,
                )
                .map_err(|e| DoseError::SeedData {
                    origin: origin.to_owned(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(
            &file.name,
            file.sad_x_mm,
            file.sad_y_mm,
            energies,
            crate::proton::generic::highland_params()?,
        )?
        .with_range_shifters(shifters)
        .map_err(|e| DoseError::SeedData {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The machine as an `isodose-proton-machine/1` file (JSON text), which
    /// [`ProtonMachine::from_json_str`] reads back to an equal machine (the
    /// Highland constants are not part of the format: a file always reads
    /// with isodose's).
    pub fn to_json_string(&self) -> Result<String> {
        use serde_json::json;
        let optics = |o: &SpotOptics| json!({"sigma_mm": o.sigma_mm, "divergence_mrad": o.divergence_mrad, "correlation": o.correlation});
        let energies: Vec<_> = self
            .energies
            .iter()
            .map(|e| {
                let mut v = json!({
                    "energy_mev": e.energy_mev,
                    "idd": {"depth_mm": e.idd.depths(), "dose_gy_mm2_per_proton": e.idd.values()},
                    "optics_x": optics(&e.optics_x),
                    "optics_y": optics(&e.optics_y),
                    "protons_per_mu": e.protons_per_mu,
                });
                if let Some(h) = &e.halo {
                    // the file gives weight and extra σ on one set of depths
                    let mut depths: Vec<f64> = h
                        .weight
                        .depths()
                        .iter()
                        .chain(h.extra_sigma_mm.depths())
                        .copied()
                        .collect();
                    depths.sort_by(f64::total_cmp);
                    depths.dedup();
                    let weight: Vec<f64> = depths.iter().map(|d| h.weight.at(*d)).collect();
                    let extra: Vec<f64> = depths.iter().map(|d| h.extra_sigma_mm.at(*d)).collect();
                    v["halo"] =
                        json!({"depth_mm": depths, "weight": weight, "extra_sigma_mm": extra});
                }
                v
            })
            .collect();
        let shifters: Vec<_> = self
            .range_shifters
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "water_equivalent_thickness_mm": r.water_equivalent_thickness_mm,
                    "material": r.material,
                    "relative_stopping_power": r.relative_stopping_power,
                    "radiation_length_mm": r.radiation_length_mm,
                    "snout_to_range_shifter_mm": r.snout_to_range_shifter_mm,
                })
            })
            .collect();
        let mut file = json!({
            "format": MACHINE_FORMAT,
            "name": self.name,
            "sad_x_mm": self.sad_x_mm,
            "sad_y_mm": self.sad_y_mm,
            "energies": energies,
        });
        if !shifters.is_empty() {
            file["range_shifters"] = json!(shifters);
        }
        serde_json::to_string_pretty(&file).map_err(|e| DoseError::SeedData {
            origin: format!("machine {:?}", self.name),
            reason: e.to_string(),
        })
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Virtual source-axis distance along the beam X axis, mm.
    pub fn sad_x_mm(&self) -> f64 {
        self.sad_x_mm
    }
    /// Virtual source-axis distance along the beam Y axis, mm.
    pub fn sad_y_mm(&self) -> f64 {
        self.sad_y_mm
    }
    /// The energies, ascending.
    pub fn energies(&self) -> &[EnergyModel] {
        &self.energies
    }
    /// Highland constants for scattering in the patient.
    pub fn highland(&self) -> &HighlandParams {
        &self.highland
    }
    /// The range-shifter table (empty when the machine file has none).
    pub fn range_shifters(&self) -> &[MachineRangeShifter] {
        &self.range_shifters
    }
    /// The range shifter whose ID is `id` (ASCII case and blanks ignored).
    pub fn range_shifter(&self, id: &str) -> Option<&MachineRangeShifter> {
        self.range_shifters.iter().find(|r| r.matches(id))
    }
    /// Lowest and highest tabulated energy, MeV.
    pub fn energy_range_mev(&self) -> (f64, f64) {
        (
            self.energies[0].energy_mev,
            self.energies[self.energies.len() - 1].energy_mev,
        )
    }

    /// The machine energy equal to `energy_mev` (within 0.01 MeV), or an error
    /// naming the machine's range.
    pub fn energy(&self, energy_mev: f64) -> Result<&EnergyModel> {
        self.energies
            .iter()
            .find(|e| (e.energy_mev - energy_mev).abs() <= 0.01)
            .ok_or_else(|| self.energy_error(energy_mev))
    }

    fn energy_error(&self, energy_mev: f64) -> DoseError {
        let (lo, hi) = self.energy_range_mev();
        DoseError::OutOfRange {
            field: "spot energy (MeV)".into(),
            value: energy_mev,
            reason: format!(
                "machine {:?} has {} energies from {lo} to {hi} MeV; the energy must be one of them (within 0.01 MeV; `energy_model` interpolates between them)",
                self.name,
                self.energies.len()
            ),
        }
    }

    /// The beam model at any energy within the machine's range: the tabulated
    /// energy when one is within 0.01 MeV (borrowed), otherwise the
    /// interpolation between the two neighbouring tabulated energies
    /// ([`EnergyModel::interpolate`]; formula and accuracy in the
    /// [module docs](self#energies-between-the-tabulated-ones)). Energies
    /// below the lowest or above the highest tabulated energy (by more than
    /// 0.01 MeV) are an error naming the machine's range: isodose never
    /// extrapolates beam data.
    pub fn energy_model(&self, energy_mev: f64) -> Result<Cow<'_, EnergyModel>> {
        if let Ok(m) = self.energy(energy_mev) {
            return Ok(Cow::Borrowed(m));
        }
        let (lo, hi) = self.energy_range_mev();
        if !(energy_mev.is_finite() && energy_mev > lo && energy_mev < hi) {
            return Err(DoseError::OutOfRange {
                field: "spot energy (MeV)".into(),
                value: energy_mev,
                reason: format!(
                    "outside the range of machine {:?}, {lo} to {hi} MeV ({} energies); beam data are not extrapolated",
                    self.name,
                    self.energies.len()
                ),
            });
        }
        // lo < E < hi: the first energy above E has a neighbour below it
        let i = self.energies.partition_point(|e| e.energy_mev < energy_mev);
        match (self.energies.get(i.wrapping_sub(1)), self.energies.get(i)) {
            (Some(a), Some(b)) => EnergyModel::interpolate(a, b, energy_mev).map(Cow::Owned),
            _ => Err(self.energy_error(energy_mev)),
        }
    }

    /// The machine energy whose R80 is closest to `r80_mm`.
    pub fn energy_for_r80(&self, r80_mm: f64) -> &EnergyModel {
        self.energies
            .iter()
            .min_by(|a, b| {
                (a.r80_mm - r80_mm)
                    .abs()
                    .total_cmp(&(b.r80_mm - r80_mm).abs())
            })
            .unwrap_or(&self.energies[0])
    }
}
