//! RT Ion Plan: the beams, energy layers and spots of a proton PBS plan, in
//! the plan's own units (MU).
//!
//! **Meterset.** DICOM gives each spot a ScanSpotMetersetWeight in the units
//! of the beam's cumulative meterset; the beam's BeamMeterset (MU, fraction
//! group) corresponds to its FinalCumulativeMetersetWeight. So a spot's MU is
//! weight × BeamMeterset / FinalCumulativeMetersetWeight. The number of
//! protons is MU × the machine's protons-per-MU calibration at the spot's
//! energy; isodose never treats MU as dose or protons. The conversion to an
//! isodose plan in protons is [`IonPlan::to_proton_plan`]
//! ([`crate::ion_plan_convert`]).
//!
//! Control points come in pairs per layer (spots with weights, then a
//! zero-weight layer end); spots of zero weight are kept out. Beam geometry
//! (gantry, couch, isocentre, snout, range-shifter settings) is read from the
//! first control point and updated by any later one that repeats it, as
//! Eclipse does.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;

use crate::attrs::{Attrs, open};
use crate::error::DicomIoError;

type Result<T> = std::result::Result<T, DicomIoError>;

/// SOP class UID of RT Ion Plan Storage.
pub const RT_ION_PLAN_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.8";

/// A range shifter as set for a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeShifterSetting {
    /// RangeShifterID of the beam's range-shifter sequence.
    pub id: String,
    /// RangeShifterSetting ("IN", "OUT", or a machine-specific value).
    pub setting: String,
    /// RangeShifterWaterEquivalentThickness (mm), if the plan gives it.
    pub water_equivalent_thickness_mm: Option<f64>,
    /// IsocenterToRangeShifterDistance (mm).
    pub isocenter_distance_mm: Option<f64>,
}

/// One energy layer: spots with non-zero MU.
#[derive(Clone, Debug, PartialEq)]
pub struct IonLayer {
    /// NominalBeamEnergy, MeV.
    pub energy_mev: f64,
    /// (x mm, y mm, MU) at the isocentre plane, beam frame.
    pub spots: Vec<(f64, f64, f64)>,
    /// SnoutPosition for this layer, mm.
    pub snout_position_mm: Option<f64>,
    /// Range shifters for this layer.
    pub range_shifters: Vec<RangeShifterSetting>,
    /// ScanningSpotSize (300A,0398): the spot's full width at half maximum
    /// in air at the isocentre along IEC gantry X and Y, mm, if given.
    pub spot_size_fwhm_mm: Option<[f64; 2]>,
}

/// One ion beam.
#[derive(Clone, Debug, PartialEq)]
pub struct IonBeam {
    /// BeamNumber.
    pub number: i32,
    /// BeamName.
    pub name: String,
    /// TreatmentMachineName.
    pub machine: String,
    /// RadiationType (PROTON...).
    pub radiation_type: String,
    /// Gantry angle (IEC 61217), degrees.
    pub gantry_deg: f64,
    /// Patient support angle, degrees.
    pub couch_deg: f64,
    /// Isocentre, LPS mm.
    pub isocenter_mm: [f64; 3],
    /// VirtualSourceAxisDistances (x, y), mm.
    pub virtual_source_axis_distances_mm: Option<[f64; 2]>,
    /// BeamMeterset from the fraction group, MU.
    pub meterset_mu: f64,
    /// Energy layers in delivery order.
    pub layers: Vec<IonLayer>,
}

impl IonBeam {
    /// Number of spots (non-zero MU).
    pub fn spot_count(&self) -> usize {
        self.layers.iter().map(|l| l.spots.len()).sum()
    }
    /// Sum of the spots' MU (equals the beam meterset).
    pub fn total_mu(&self) -> f64 {
        self.layers
            .iter()
            .flat_map(|l| l.spots.iter().map(|s| s.2))
            .sum()
    }
}

/// An RT Ion Plan. Convert it to isodose's plan (protons per spot) with
/// [`IonPlan::to_proton_plan`].
#[derive(Clone, Debug, PartialEq)]
pub struct IonPlan {
    /// The file the plan was read from (named in conversion errors; any
    /// label for plans built in memory).
    pub path: PathBuf,
    /// RTPlanLabel.
    pub label: String,
    /// NumberOfFractionsPlanned of the first fraction group.
    pub fractions: u32,
    /// The ion beams of the fraction group, in plan order.
    pub beams: Vec<IonBeam>,
    /// ReferencedStructureSetSequence SOP instance UID.
    pub referenced_structure_set_uid: Option<String>,
    /// SOPInstanceUID (0008,0018) of the plan: what an RTDOSE computed from
    /// it references (ReferencedRTPlanSequence, PS3.3 C.8.8.3).
    pub sop_instance_uid: Option<String>,
    /// FrameOfReferenceUID (0020,0052): the patient coordinate system of the
    /// isocentres, which the CT must share.
    pub frame_of_reference_uid: Option<String>,
    /// FractionGroupNumber (300A,0071) of the fraction group read (the
    /// first), if present.
    pub fraction_group_number: Option<i32>,
}

/// Reads an RT Ion Plan file.
pub fn read_ion_plan(path: impl AsRef<Path>) -> Result<IonPlan> {
    let path = path.as_ref();
    let file = open(path)?;
    let c = Attrs { path };
    let obj: &InMemDicomObject = &file;
    c.require_sop(obj, RT_ION_PLAN_STORAGE, "RT Ion Plan Storage")?;
    let fg = c
        .items(obj, tags::FRACTION_GROUP_SEQUENCE)
        .first()
        .ok_or_else(|| c.missing(tags::FRACTION_GROUP_SEQUENCE))?;
    let fractions = c
        .float(fg, tags::NUMBER_OF_FRACTIONS_PLANNED)?
        .unwrap_or(1.0);
    if fractions.is_nan() || fractions < 1.0 {
        return Err(c.bad(
            tags::NUMBER_OF_FRACTIONS_PLANNED,
            fractions.to_string(),
            "must be >= 1",
        ));
    }
    let mut metersets = Vec::new();
    for rb in c.items(fg, tags::REFERENCED_BEAM_SEQUENCE) {
        let number = c
            .float(rb, tags::REFERENCED_BEAM_NUMBER)?
            .ok_or_else(|| c.missing(tags::REFERENCED_BEAM_NUMBER))? as i32;
        let mu = c
            .float(rb, tags::BEAM_METERSET)?
            .ok_or_else(|| c.missing(tags::BEAM_METERSET))?;
        metersets.push((number, mu));
    }
    let mut beams = Vec::new();
    for b in c.items(obj, tags::ION_BEAM_SEQUENCE) {
        let number = c
            .float(b, tags::BEAM_NUMBER)?
            .ok_or_else(|| c.missing(tags::BEAM_NUMBER))? as i32;
        // only the beams of the fraction group (setup beams have none)
        let Some(&(_, meterset_mu)) = metersets.iter().find(|m| m.0 == number) else {
            continue;
        };
        let final_weight = c
            .float(b, tags::FINAL_CUMULATIVE_METERSET_WEIGHT)?
            .ok_or_else(|| c.missing(tags::FINAL_CUMULATIVE_METERSET_WEIGHT))?;
        if final_weight.is_nan() || final_weight <= 0.0 {
            return Err(c.bad(
                tags::FINAL_CUMULATIVE_METERSET_WEIGHT,
                final_weight.to_string(),
                "must be > 0",
            ));
        }
        let mu_per_weight = meterset_mu / final_weight;
        let shifter_ids: Vec<(f64, String)> = c
            .items(b, tags::RANGE_SHIFTER_SEQUENCE)
            .iter()
            .map(|rs| {
                Ok((
                    c.float(rs, tags::RANGE_SHIFTER_NUMBER)?.unwrap_or(0.0),
                    c.text(rs, tags::RANGE_SHIFTER_ID).unwrap_or_default(),
                ))
            })
            .collect::<Result<_>>()?;
        let cps = c.items(b, tags::ION_CONTROL_POINT_SEQUENCE);
        let first = cps
            .first()
            .ok_or_else(|| c.missing(tags::ION_CONTROL_POINT_SEQUENCE))?;
        let gantry_deg = c
            .float(first, tags::GANTRY_ANGLE)?
            .ok_or_else(|| c.missing(tags::GANTRY_ANGLE))?;
        let couch_deg = c.float(first, tags::PATIENT_SUPPORT_ANGLE)?.unwrap_or(0.0);
        let iso = c
            .floats(first, tags::ISOCENTER_POSITION)?
            .ok_or_else(|| c.missing(tags::ISOCENTER_POSITION))?;
        if iso.len() != 3 {
            return Err(c.bad(
                tags::ISOCENTER_POSITION,
                format!("{iso:?}"),
                "needs 3 values",
            ));
        }
        let vsad = c
            .floats(b, tags::VIRTUAL_SOURCE_AXIS_DISTANCES)?
            .filter(|v| v.len() == 2);
        let mut layers: Vec<IonLayer> = Vec::new();
        let mut snout = None;
        let mut shifters: Vec<RangeShifterSetting> = Vec::new();
        let mut energy = None;
        let mut spot_size: Option<[f64; 2]> = None;
        for cp in cps {
            if let Some(g) = c.float(cp, tags::GANTRY_ANGLE)?
                && (g - gantry_deg).abs() > 1e-6
            {
                return Err(c.bad(
                    tags::GANTRY_ANGLE,
                    g.to_string(),
                    "the gantry angle changes within the beam (arc delivery is not supported)",
                ));
            }
            if let Some(s) = c.float(cp, tags::SNOUT_POSITION)? {
                snout = Some(s);
            }
            let settings = c.items(cp, tags::RANGE_SHIFTER_SETTINGS_SEQUENCE);
            if !settings.is_empty() {
                shifters = settings
                    .iter()
                    .map(|s| {
                        let referenced = c
                            .float(s, tags::REFERENCED_RANGE_SHIFTER_NUMBER)?
                            .unwrap_or(0.0);
                        let id = shifter_ids
                            .iter()
                            .find(|(n, _)| (*n - referenced).abs() < 1e-9)
                            .map(|(_, id)| id.clone())
                            .unwrap_or_default();
                        Ok(RangeShifterSetting {
                            id,
                            setting: c.text(s, tags::RANGE_SHIFTER_SETTING).unwrap_or_default(),
                            water_equivalent_thickness_mm: c
                                .float(s, tags::RANGE_SHIFTER_WATER_EQUIVALENT_THICKNESS)?,
                            isocenter_distance_mm: c
                                .float(s, tags::ISOCENTER_TO_RANGE_SHIFTER_DISTANCE)?,
                        })
                    })
                    .collect::<Result<_>>()?;
            }
            if let Some(v) = c.floats(cp, tags::SCANNING_SPOT_SIZE)? {
                if v.len() != 2 || v.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
                    return Err(c.bad(
                        tags::SCANNING_SPOT_SIZE,
                        format!("{v:?}"),
                        "must be two sizes > 0 (mm)",
                    ));
                }
                spot_size = Some([v[0], v[1]]);
            }
            if let Some(e) = c.float(cp, tags::NOMINAL_BEAM_ENERGY)? {
                if e.is_nan() || e <= 0.0 {
                    return Err(c.bad(tags::NOMINAL_BEAM_ENERGY, e.to_string(), "must be > 0"));
                }
                energy = Some(e);
            }
            let (Some(map), Some(weights)) = (
                c.floats(cp, tags::SCAN_SPOT_POSITION_MAP)?,
                c.floats(cp, tags::SCAN_SPOT_METERSET_WEIGHTS)?,
            ) else {
                continue;
            };
            if map.len() != 2 * weights.len() {
                return Err(c.bad(
                    tags::SCAN_SPOT_POSITION_MAP,
                    format!("{} values", map.len()),
                    format!(
                        "{} spot weights need {} positions",
                        weights.len(),
                        2 * weights.len()
                    ),
                ));
            }
            if let Some(w) = weights.iter().find(|w| **w < 0.0) {
                return Err(c.bad(
                    tags::SCAN_SPOT_METERSET_WEIGHTS,
                    w.to_string(),
                    "weights must be >= 0",
                ));
            }
            let e = energy.ok_or_else(|| c.missing(tags::NOMINAL_BEAM_ENERGY))?;
            let spots: Vec<(f64, f64, f64)> = weights
                .iter()
                .enumerate()
                .filter(|(_, w)| **w > 0.0)
                .map(|(i, w)| (map[2 * i], map[2 * i + 1], w * mu_per_weight))
                .collect();
            if spots.is_empty() {
                continue;
            }
            match layers.last_mut() {
                Some(l)
                    if l.energy_mev == e
                        && l.snout_position_mm == snout
                        && l.range_shifters == shifters
                        && l.spot_size_fwhm_mm == spot_size =>
                {
                    l.spots.extend(spots)
                }
                _ => layers.push(IonLayer {
                    energy_mev: e,
                    spots,
                    snout_position_mm: snout,
                    range_shifters: shifters.clone(),
                    spot_size_fwhm_mm: spot_size,
                }),
            }
        }
        beams.push(IonBeam {
            number,
            name: c.text(b, tags::BEAM_NAME).unwrap_or_default(),
            machine: c.text(b, tags::TREATMENT_MACHINE_NAME).unwrap_or_default(),
            radiation_type: c.text(b, tags::RADIATION_TYPE).unwrap_or_default(),
            gantry_deg,
            couch_deg,
            isocenter_mm: [iso[0], iso[1], iso[2]],
            virtual_source_axis_distances_mm: vsad.map(|v| [v[0], v[1]]),
            meterset_mu,
            layers,
        });
    }
    if beams.is_empty() {
        return Err(DicomIoError::Inconsistent {
            path: path.to_owned(),
            reason:
                "no treatment ion beam (IonBeamSequence with a BeamMeterset in the fraction group)"
                    .into(),
        });
    }
    let referenced_structure_set_uid = c
        .items(obj, tags::REFERENCED_STRUCTURE_SET_SEQUENCE)
        .first()
        .and_then(|i| c.text(i, tags::REFERENCED_SOP_INSTANCE_UID));
    Ok(IonPlan {
        path: path.to_owned(),
        label: c.text(obj, tags::RT_PLAN_LABEL).unwrap_or_default(),
        fractions: fractions as u32,
        beams,
        referenced_structure_set_uid,
        sop_instance_uid: c.text(obj, tags::SOP_INSTANCE_UID),
        frame_of_reference_uid: c.text(obj, tags::FRAME_OF_REFERENCE_UID),
        fraction_group_number: c.float(fg, tags::FRACTION_GROUP_NUMBER)?.map(|n| n as i32),
    })
}
