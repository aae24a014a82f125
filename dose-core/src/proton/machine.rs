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
//!   ]
//! }
//! ```
//!
//! Units: the IDD is the dose integrated over the plane perpendicular to the
//! beam (Gy·mm² per proton; 1 MeV cm²/g per proton = 1.602e-8 Gy·mm²). In-air
//! optics give σ at distance d downstream of the isocentre plane:
//! σ²(d) = σ₀² + 2ρσ₀θd + θ²d² (σ₀ at the isocentre, θ divergence, ρ
//! correlation), per axis of the beam frame.

use std::path::Path;

use serde::Deserialize;

use crate::error::{DoseError, Result, read_text};
use crate::physics::mcs::HighlandParams;
use crate::physics::table::lerp_clamped;

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
struct MachineFile {
    format: String,
    name: String,
    sad_x_mm: f64,
    sad_y_mm: f64,
    energies: Vec<EnergyFile>,
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
        })
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
        Self::new(
            &file.name,
            file.sad_x_mm,
            file.sad_y_mm,
            energies,
            crate::proton::generic::highland_params()?,
        )
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

    /// The machine energy equal to `energy_mev` (within 0.01 MeV), or an error
    /// naming the machine's range.
    pub fn energy(&self, energy_mev: f64) -> Result<&EnergyModel> {
        self.energies
            .iter()
            .find(|e| (e.energy_mev - energy_mev).abs() <= 0.01)
            .ok_or_else(|| self.energy_error(energy_mev))
    }

    fn energy_error(&self, energy_mev: f64) -> DoseError {
        let (lo, hi) = (
            self.energies[0].energy_mev,
            self.energies[self.energies.len() - 1].energy_mev,
        );
        DoseError::OutOfRange {
            field: "spot energy (MeV)".into(),
            value: energy_mev,
            reason: format!(
                "machine {:?} has {} energies from {lo} to {hi} MeV; the energy must be one of them (within 0.01 MeV)",
                self.name,
                self.energies.len()
            ),
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
