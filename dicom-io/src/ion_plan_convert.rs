//! RT Ion Plan (MU, DICOM PS3.3 C.8.8.25 Ion Beams and C.8.8.13 RT Fraction
//! Scheme) → isodose's [`ProtonPlan`] (protons per spot), with a
//! [`ProtonMachine`]'s data.
//!
//! **Protons.** A spot's weight is
//! protons = MU × protons_per_MU(E),
//! where MU = ScanSpotMetersetWeight × BeamMeterset /
//! FinalCumulativeMetersetWeight (read by [`crate::read_ion_plan`]) and
//! protons_per_MU(E) is the machine's MU calibration at the layer's
//! NominalBeamEnergy (300A,0114), interpolated linearly in energy between
//! tabulated machine energies ([`ProtonMachine::energy_model`]). Spots of
//! zero MU are already dropped by the reader.
//!
//! **Fractions.** BeamMeterset (300A,0086) is the meterset of one fraction,
//! so the spot weights are protons **per fraction** and the engine's dose
//! ([`isodose_core::Engine::pbs_dose`]) is the dose of one fraction. The
//! plan carries NumberOfFractionsPlanned (300A,0078) as
//! [`ProtonPlan::fractions`]: the planned total dose is the engine's dose
//! times that number.
//!
//! **Energies** anywhere within the machine's range are used as they are
//! (the engine interpolates the beam model); energies outside it are an
//! error naming the beam and layer.
//!
//! **Range shifters.** A layer whose RangeShifterSetting (300A,0362) is not
//! `OUT` (case-insensitive; `IN` or any machine-specific value) has the
//! shifter inserted. Its water-equivalent thickness is the plan's
//! RangeShifterWaterEquivalentThickness (300A,0370) when given, otherwise the
//! machine table's entry for its RangeShifterID (300A,0318)
//! ([`ProtonMachine::range_shifter`]), otherwise an error naming the ID, the
//! file and the beam. Its position is the plan's
//! IsocenterToRangeShifterDistance (300A,0364); when the plan omits it, it is
//! derived from SnoutPosition (300A,030D) **assuming the shifter is mounted
//! on the snout**: distance = SnoutPosition + the machine entry's
//! `snout_to_range_shifter_mm` (0 when the machine has no entry, i.e. the
//! shifter's downstream face flush with the snout's); with neither, an error.
//! The material (stopping power and radiation length, for the scattering in
//! the shifter) is the machine entry's, or PMMA when the machine has no
//! entry for the ID. Two shifters inserted in the same layer are an error
//! (isodose models one per beam).
//!
//! **Beams.** Each DICOM beam gives one [`ProtonBeam`] with its gantry and
//! patient-support angles and isocentre, or, when its layers differ in
//! range-shifter state (shifter in for some layers, out or another
//! thickness or position for others), **several** `ProtonBeam`s with the
//! same geometry, one per state, in the order of each state's first layer
//! (isodose's beam has one range shifter). Layers keep their delivery order
//! within each part. The spot positions are at the isocentre plane; the
//! beam divergence is the machine's (its virtual source-axis distances), not
//! the plan's VirtualSourceAxisDistances, and TreatmentMachineName is not
//! compared with the machine's name: the caller chooses the machine.

use isodose_core::proton::{ProtonBeam, ProtonMachine, ProtonPlan, RangeShifter, Spot};

use dicom_dictionary_std::tags;

use crate::attrs::tag_name;
use crate::error::DicomIoError;
use crate::rt_ion_plan::{IonBeam, IonLayer, IonPlan};

type Result<T> = std::result::Result<T, DicomIoError>;

impl IonPlan {
    /// The whole plan as an isodose [`ProtonPlan`]: every beam converted by
    /// [`IonPlan::to_proton_beams`] (a beam split by range-shifter state gives
    /// consecutive beams), spot weights in protons per fraction, and the plan's
    /// number of fractions. Rules and formulas in the
    /// [module docs](crate::ion_plan_convert).
    pub fn to_proton_plan(&self, machine: &ProtonMachine) -> Result<ProtonPlan> {
        let mut beams = Vec::new();
        for beam in &self.beams {
            beams.extend(self.convert_beam(beam, machine)?);
        }
        ProtonPlan::new(beams, self.fractions).map_err(|e| DicomIoError::Inconsistent {
            path: self.path.clone(),
            reason: format!("cannot build the proton plan: {e}"),
        })
    }

    /// The beam numbered `beam_number` (BeamNumber (300A,00C0)) as one
    /// [`ProtonBeam`], or several when its layers differ in range-shifter
    /// state (see the [module docs](crate::ion_plan_convert)); spot weights
    /// in protons per fraction.
    pub fn to_proton_beams(
        &self,
        beam_number: i32,
        machine: &ProtonMachine,
    ) -> Result<Vec<ProtonBeam>> {
        let beam = self
            .beams
            .iter()
            .find(|b| b.number == beam_number)
            .ok_or_else(|| DicomIoError::BadValue {
                path: self.path.clone(),
                tag: tag_name(tags::BEAM_NUMBER),
                value: beam_number.to_string(),
                reason: format!(
                    "no treatment beam has this number (beams: {:?})",
                    self.beams.iter().map(|b| b.number).collect::<Vec<_>>()
                ),
            })?;
        self.convert_beam(beam, machine)
    }

    fn convert_beam(&self, beam: &IonBeam, machine: &ProtonMachine) -> Result<Vec<ProtonBeam>> {
        let label = beam_label(beam);
        if !beam.radiation_type.trim().eq_ignore_ascii_case("PROTON") {
            return Err(DicomIoError::BadValue {
                path: self.path.clone(),
                tag: tag_name(tags::RADIATION_TYPE),
                value: beam.radiation_type.clone(),
                reason: format!("{label}: isodose computes proton beams only"),
            });
        }
        // (range-shifter state, spots), in order of first appearance
        let mut parts: Vec<(Option<RangeShifter>, Vec<Spot>)> = Vec::new();
        for (index, layer) in beam.layers.iter().enumerate() {
            let model =
                machine
                    .energy_model(layer.energy_mev)
                    .map_err(|e| DicomIoError::BadValue {
                        path: self.path.clone(),
                        tag: tag_name(tags::NOMINAL_BEAM_ENERGY),
                        value: format!("{} MeV", layer.energy_mev),
                        reason: format!("{label}, energy layer {}: {e}", index + 1),
                    })?;
            let protons_per_mu = model.protons_per_mu;
            let shifter = self.layer_shifter(beam, index, layer, machine)?;
            let spots = layer.spots.iter().map(|&(x_mm, y_mm, mu)| Spot {
                energy_mev: layer.energy_mev,
                x_mm,
                y_mm,
                weight: mu * protons_per_mu,
            });
            match parts.iter_mut().find(|p| p.0 == shifter) {
                Some(p) => p.1.extend(spots),
                None => parts.push((shifter, spots.collect())),
            }
        }
        if parts.is_empty() {
            return Err(DicomIoError::Inconsistent {
                path: self.path.clone(),
                reason: format!("{label} has no spot with a non-zero meterset weight"),
            });
        }
        parts
            .into_iter()
            .map(|(shifter, spots)| {
                ProtonBeam::new(
                    beam.gantry_deg,
                    beam.couch_deg,
                    beam.isocenter_mm,
                    spots,
                    shifter,
                )
                .map_err(|e| DicomIoError::Inconsistent {
                    path: self.path.clone(),
                    reason: format!("{label}: {e}"),
                })
            })
            .collect()
    }

    /// The range shifter inserted in `layer` (index `index` of `beam`), if
    /// any, by the rules of the module docs.
    fn layer_shifter(
        &self,
        beam: &IonBeam,
        index: usize,
        layer: &IonLayer,
        machine: &ProtonMachine,
    ) -> Result<Option<RangeShifter>> {
        let where_ = || {
            format!(
                "{}, energy layer {} ({} MeV)",
                beam_label(beam),
                index + 1,
                layer.energy_mev
            )
        };
        if let Some(s) = layer.range_shifters.iter().find(|s| s.setting.is_empty()) {
            return Err(DicomIoError::BadValue {
                path: self.path.clone(),
                tag: tag_name(tags::RANGE_SHIFTER_SETTING),
                value: String::new(),
                reason: format!(
                    "{}: range shifter {:?} has no setting (IN or OUT)",
                    where_(),
                    s.id
                ),
            });
        }
        let inserted: Vec<_> = layer
            .range_shifters
            .iter()
            .filter(|s| !s.setting.trim().eq_ignore_ascii_case("OUT"))
            .collect();
        let s = match inserted.as_slice() {
            [] => return Ok(None),
            [s] => *s,
            many => {
                return Err(DicomIoError::Inconsistent {
                    path: self.path.clone(),
                    reason: format!(
                        "{}: {} range shifters are inserted at once ({:?}); isodose models one range shifter per beam",
                        where_(),
                        many.len(),
                        many.iter().map(|s| s.id.as_str()).collect::<Vec<_>>()
                    ),
                });
            }
        };
        let entry = machine.range_shifter(&s.id);
        let wet = s
            .water_equivalent_thickness_mm
            .or(entry.map(|e| e.water_equivalent_thickness_mm))
            .ok_or_else(|| DicomIoError::BadValue {
                path: self.path.clone(),
                tag: tag_name(tags::RANGE_SHIFTER_ID),
                value: s.id.clone(),
                reason: format!(
                    "{}: the plan gives no {} for this range shifter and machine {:?} has no range shifter with this ID (its table: {:?})",
                    where_(),
                    tag_name(tags::RANGE_SHIFTER_WATER_EQUIVALENT_THICKNESS),
                    machine.name(),
                    machine
                        .range_shifters()
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                ),
            })?;
        let offset = entry.map_or(0.0, |e| e.snout_to_range_shifter_mm);
        let distance = s
            .isocenter_distance_mm
            .or(layer.snout_position_mm.map(|snout| snout + offset))
            .ok_or_else(|| DicomIoError::Inconsistent {
                path: self.path.clone(),
                reason: format!(
                    "{}: range shifter {:?} is inserted but neither {} nor {} is given, so it cannot be placed",
                    where_(),
                    s.id,
                    tag_name(tags::ISOCENTER_TO_RANGE_SHIFTER_DISTANCE),
                    tag_name(tags::SNOUT_POSITION)
                ),
            })?;
        let shifter = match entry {
            Some(e) => RangeShifter::new(
                wet,
                distance,
                e.relative_stopping_power,
                e.radiation_length_mm,
            ),
            None => RangeShifter::pmma(wet, distance),
        };
        shifter.map(Some).map_err(|e| DicomIoError::BadValue {
            path: self.path.clone(),
            tag: tag_name(tags::RANGE_SHIFTER_WATER_EQUIVALENT_THICKNESS),
            value: format!("{wet} mm"),
            reason: format!(
                "{}: range shifter {:?} at {distance} mm from the isocentre: {e}",
                where_(),
                s.id
            ),
        })
    }
}

/// `beam 2 "Field 2"`.
fn beam_label(beam: &IonBeam) -> String {
    format!("beam {} {:?}", beam.number, beam.name)
}
