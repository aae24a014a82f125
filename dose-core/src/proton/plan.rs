//! Proton plans: `ProtonPlan` → `ProtonBeam` → `Spot`.
//!
//! Spot weights are numbers of protons (not MU: convert with the machine's
//! protons-per-MU calibration, [`crate::proton::EnergyModel::protons_per_mu`]).
//! A plan's dose is per fraction times the number of fractions
//! ([`ProtonPlan::fractions`]); engines compute the dose of the spot weights
//! as given.

use crate::error::{DoseError, Result, finite};
use crate::geometry::BeamFrame;

/// One pencil beam: energy, position at the isocentre plane (beam X/Y axes,
/// mm) and weight (protons; zero allowed, contributes nothing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spot {
    /// Nominal energy, MeV (must be a machine energy).
    pub energy_mev: f64,
    /// Position along the beam X axis at the isocentre plane, mm.
    pub x_mm: f64,
    /// Position along the beam Y axis at the isocentre plane, mm.
    pub y_mm: f64,
    /// Number of protons.
    pub weight: f64,
}

/// A range shifter in the nozzle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RangeShifter {
    /// Water-equivalent thickness, mm.
    pub water_equivalent_thickness_mm: f64,
    /// Distance from the isocentre upstream to the shifter's downstream face,
    /// mm (DICOM IsocenterToRangeShifterDistance; the air gap to the patient is
    /// this minus the patient's surface distance upstream of the isocentre).
    pub isocenter_distance_mm: f64,
    /// Relative stopping power of the material (PMMA: 1.165).
    pub relative_stopping_power: f64,
    /// Radiation length of the material, mm (PMMA: 405.5).
    pub radiation_length_mm: f64,
}

impl RangeShifter {
    /// A PMMA (Lucite) shifter: RSP 1.165 and X₀ = 40.55 cm, the values of
    /// `mcs_highland_hong_params.json` (matRad_calcSigmaRashi.m).
    pub fn pmma(water_equivalent_thickness_mm: f64, isocenter_distance_mm: f64) -> Result<Self> {
        Self::new(
            water_equivalent_thickness_mm,
            isocenter_distance_mm,
            1.165,
            405.5,
        )
    }

    /// A shifter of any material.
    pub fn new(
        water_equivalent_thickness_mm: f64,
        isocenter_distance_mm: f64,
        relative_stopping_power: f64,
        radiation_length_mm: f64,
    ) -> Result<Self> {
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(DoseError::OutOfRange {
                    field: field.to_owned(),
                    value: v,
                    reason: "must be finite and > 0".into(),
                })
            }
        };
        positive(
            "range shifter water-equivalent thickness (mm)",
            water_equivalent_thickness_mm,
        )?;
        finite(
            "range shifter isocentre distance (mm)",
            isocenter_distance_mm,
        )?;
        positive(
            "range shifter relative stopping power",
            relative_stopping_power,
        )?;
        positive("range shifter radiation length (mm)", radiation_length_mm)?;
        Ok(Self {
            water_equivalent_thickness_mm,
            isocenter_distance_mm,
            relative_stopping_power,
            radiation_length_mm,
        })
    }

    /// Physical thickness, mm.
    pub fn thickness_mm(&self) -> f64 {
        self.water_equivalent_thickness_mm / self.relative_stopping_power
    }
}

/// One field of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtonBeam {
    frame: BeamFrame,
    gantry_deg: f64,
    couch_deg: f64,
    spots: Vec<Spot>,
    range_shifter: Option<RangeShifter>,
}

impl ProtonBeam {
    /// A beam at `gantry_deg` / `couch_deg` (IEC 61217) around
    /// `isocenter_mm` (LPS) delivering `spots`. Spot values must be finite and
    /// weights ≥ 0.
    pub fn new(
        gantry_deg: f64,
        couch_deg: f64,
        isocenter_mm: [f64; 3],
        spots: Vec<Spot>,
        range_shifter: Option<RangeShifter>,
    ) -> Result<Self> {
        let frame = BeamFrame::new(gantry_deg, couch_deg, isocenter_mm)?;
        if spots.is_empty() {
            return Err(DoseError::Empty {
                what: "beam spot list",
            });
        }
        for (i, s) in spots.iter().enumerate() {
            finite(&format!("spot {i} energy (MeV)"), s.energy_mev)?;
            finite(&format!("spot {i} x (mm)"), s.x_mm)?;
            finite(&format!("spot {i} y (mm)"), s.y_mm)?;
            finite(&format!("spot {i} weight (protons)"), s.weight)?;
            if s.weight < 0.0 {
                return Err(DoseError::OutOfRange {
                    field: format!("spot {i} weight (protons)"),
                    value: s.weight,
                    reason: "must be >= 0".into(),
                });
            }
        }
        Ok(Self {
            frame,
            gantry_deg,
            couch_deg,
            spots,
            range_shifter,
        })
    }

    /// The beam frame.
    pub fn frame(&self) -> &BeamFrame {
        &self.frame
    }
    /// Gantry angle, degrees.
    pub fn gantry_deg(&self) -> f64 {
        self.gantry_deg
    }
    /// Patient-support angle, degrees.
    pub fn couch_deg(&self) -> f64 {
        self.couch_deg
    }
    /// The spots.
    pub fn spots(&self) -> &[Spot] {
        &self.spots
    }
    /// The range shifter, if any.
    pub fn range_shifter(&self) -> Option<&RangeShifter> {
        self.range_shifter.as_ref()
    }
    /// The same beam with other spot weights (same count).
    pub fn with_weights(&self, weights: &[f64]) -> Result<Self> {
        if weights.len() != self.spots.len() {
            return Err(DoseError::OutOfRange {
                field: "number of spot weights".into(),
                value: weights.len() as f64,
                reason: format!("the beam has {} spots", self.spots.len()),
            });
        }
        let spots = self
            .spots
            .iter()
            .zip(weights)
            .map(|(s, w)| Spot { weight: *w, ..*s })
            .collect();
        Self::new(
            self.gantry_deg,
            self.couch_deg,
            self.frame.isocenter_mm().into(),
            spots,
            self.range_shifter,
        )
    }
}

/// A plan: beams and the number of fractions.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtonPlan {
    beams: Vec<ProtonBeam>,
    fractions: u32,
}

impl ProtonPlan {
    /// A plan of `beams` delivered in `fractions` (≥ 1) fractions.
    pub fn new(beams: Vec<ProtonBeam>, fractions: u32) -> Result<Self> {
        if beams.is_empty() {
            return Err(DoseError::Empty {
                what: "plan beam list",
            });
        }
        if fractions == 0 {
            return Err(DoseError::OutOfRange {
                field: "number of fractions".into(),
                value: 0.0,
                reason: "must be >= 1".into(),
            });
        }
        Ok(Self { beams, fractions })
    }
    /// The beams.
    pub fn beams(&self) -> &[ProtonBeam] {
        &self.beams
    }
    /// Number of fractions.
    pub fn fractions(&self) -> u32 {
        self.fractions
    }
    /// Total number of spots (dij columns), beams in order.
    pub fn spot_count(&self) -> usize {
        self.beams.iter().map(|b| b.spots().len()).sum()
    }
}
