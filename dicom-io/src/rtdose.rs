//! RTDOSE: read a dose grid from an RT Dose file, and write one.
//!
//! Reading handles what planning systems write: 16- or 32-bit unsigned
//! pixels scaled by DoseGridScaling, GridFrameOffsetVector relative to the
//! first frame (first value 0) or absolute (first value the z of the first
//! frame), axis-aligned orientation, uncompressed little-endian transfer
//! syntaxes. Anything else is an error that names the file and the tag.
//!
//! Writing produces an RT Dose IOD with 32-bit pixels and DoseGridScaling =
//! max/(2³² − 1), so that the round-trip error is at most half of the scaling
//! (about 1e-10 of the maximum), units GY, physical dose.

use std::path::{Path, PathBuf};

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use isodose_core::{DoseGrid, Grid3, Volume};
use ndarray::Array3;

use crate::attrs::{Attrs, open};
use crate::error::DicomIoError;

type Result<T> = std::result::Result<T, DicomIoError>;

/// SOP class UID of RT Dose Storage.
pub const RT_DOSE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.2";

/// SOP class UID of RT Ion Plan Storage, the default plan class an RTDOSE
/// references ([`DoseContext::referenced_plan_sop_class_uid`]).
const RT_ION_PLAN_STORAGE: &str = crate::rt_ion_plan::RT_ION_PLAN_STORAGE;

/// A dose grid read from an RTDOSE file, with its header facts.
#[derive(Clone, Debug)]
pub struct RtDose {
    /// The dose, in the file's units (see `units`), on its grid.
    pub dose: DoseGrid,
    /// DoseUnits: "GY" or "RELATIVE".
    pub units: String,
    /// DoseType: "PHYSICAL", "EFFECTIVE" or "ERROR".
    pub dose_type: String,
    /// DoseSummationType: "PLAN", "BEAM", "FRACTION"...
    pub summation: String,
    /// DoseGridScaling.
    pub scaling: f64,
    /// SOP instance UID of the referenced RT plan, if any.
    pub referenced_plan_uid: Option<String>,
    /// ReferencedSOPClassUID of the same ReferencedRTPlanSequence item: RT
    /// Ion Plan Storage (1.2.840.10008.5.1.4.1.1.481.8), RT Plan Storage
    /// (…481.5, photon and brachytherapy plans)...
    pub referenced_plan_sop_class_uid: Option<String>,
    /// ReferencedBeamNumber (300C,0006) of the first item of
    /// ReferencedRTPlanSequence > ReferencedFractionGroupSequence >
    /// ReferencedBeamSequence: the beam of a BEAM dose.
    pub referenced_beam_number: Option<i32>,
    /// FrameOfReferenceUID.
    pub frame_of_reference_uid: Option<String>,
}

/// Reads an RTDOSE file.
pub fn read_rtdose(path: impl AsRef<Path>) -> Result<RtDose> {
    let path = path.as_ref();
    let file = open(path)?;
    let a = Attrs { path };
    let obj: &InMemDicomObject = &file;
    a.require_uncompressed(&file)?;
    a.require_sop(obj, RT_DOSE_STORAGE, "RT Dose Storage")?;
    let rows = a.u32(obj, tags::ROWS)? as usize;
    let cols = a.u32(obj, tags::COLUMNS)? as usize;
    let frames = a
        .text(obj, tags::NUMBER_OF_FRAMES)
        .map_or(Ok(1), |_| a.u32(obj, tags::NUMBER_OF_FRAMES))? as usize;
    let bits = a.u32(obj, tags::BITS_ALLOCATED)?;
    let representation = a.u32(obj, tags::PIXEL_REPRESENTATION)?;
    if !(bits == 16 || bits == 32) || representation != 0 {
        return Err(a.bad(
            tags::BITS_ALLOCATED,
            format!("{bits} bits, pixel representation {representation}"),
            "only unsigned 16- or 32-bit dose pixels are supported",
        ));
    }
    let (ipp, iop, spacing) = a.image_plane(obj)?;
    let offsets = if frames > 1 {
        a.required_floats(obj, tags::GRID_FRAME_OFFSET_VECTOR)?
    } else {
        vec![0.0]
    };
    if offsets.len() != frames {
        return Err(a.bad(
            tags::GRID_FRAME_OFFSET_VECTOR,
            format!("{} values", offsets.len()),
            format!("NumberOfFrames is {frames}"),
        ));
    }
    // relative (first 0) or absolute (first = z of the first frame)
    let rel: Vec<f64> = if offsets[0] != 0.0 && (offsets[0] - ipp[2]).abs() < 1e-3 {
        offsets.iter().map(|o| o - offsets[0]).collect()
    } else {
        offsets.clone()
    };
    let dz = if frames > 1 { rel[1] - rel[0] } else { 1.0 };
    if frames > 1
        && (dz <= 0.0
            || rel
                .windows(2)
                .any(|w| ((w[1] - w[0]) - dz).abs() > 1e-3 * dz.abs().max(1.0)))
    {
        return Err(a.bad(
            tags::GRID_FRAME_OFFSET_VECTOR,
            format!("{offsets:?}"),
            "frames must be equally spaced and increasing",
        ));
    }
    let scaling = a
        .required_floats(obj, tags::DOSE_GRID_SCALING)?
        .first()
        .copied()
        .unwrap_or(1.0);
    // PixelSpacing is (row spacing = y, column spacing = x)
    let grid = Grid3::from_dicom_orientation(
        [frames, rows, cols],
        [spacing[1], spacing[0], dz],
        [ipp[0], ipp[1], ipp[2]],
        [iop[0], iop[1], iop[2]],
        [iop[3], iop[4], iop[5]],
    )?;
    let pixels = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| a.missing(tags::PIXEL_DATA))?;
    let bytes = pixels
        .to_bytes()
        .map_err(|e| a.bad(tags::PIXEL_DATA, "?", e.to_string()))?;
    let n = frames * rows * cols;
    let per = (bits / 8) as usize;
    if bytes.len() < n * per {
        return Err(a.bad(
            tags::PIXEL_DATA,
            format!("{} bytes", bytes.len()),
            format!(
                "{n} pixels of {bits} bits need {} bytes (truncated file?)",
                n * per
            ),
        ));
    }
    let values: Vec<f32> = bytes[..n * per]
        .chunks_exact(per)
        .map(|c| {
            let raw = if per == 2 {
                f64::from(u16::from_le_bytes([c[0], c[1]]))
            } else {
                f64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            };
            (raw * scaling) as f32
        })
        .collect();
    let data = Array3::from_shape_vec((frames, rows, cols), values).map_err(|e| {
        DicomIoError::Inconsistent {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    let plan_item = a.items(obj, tags::REFERENCED_RT_PLAN_SEQUENCE).first();
    let referenced_plan_uid = plan_item.and_then(|i| a.text(i, tags::REFERENCED_SOP_INSTANCE_UID));
    let referenced_plan_sop_class_uid =
        plan_item.and_then(|i| a.text(i, tags::REFERENCED_SOP_CLASS_UID));
    let beam_item = plan_item
        .and_then(|i| a.items(i, tags::REFERENCED_FRACTION_GROUP_SEQUENCE).first())
        .and_then(|fg| a.items(fg, tags::REFERENCED_BEAM_SEQUENCE).first());
    let referenced_beam_number = match beam_item {
        Some(b) => a.float(b, tags::REFERENCED_BEAM_NUMBER)?.map(|n| n as i32),
        None => None,
    };
    Ok(RtDose {
        dose: Volume::new(grid, data)?,
        units: a.text(obj, tags::DOSE_UNITS).unwrap_or_default(),
        dose_type: a.text(obj, tags::DOSE_TYPE).unwrap_or_default(),
        summation: a.text(obj, tags::DOSE_SUMMATION_TYPE).unwrap_or_default(),
        scaling,
        referenced_plan_uid,
        referenced_plan_sop_class_uid,
        referenced_beam_number,
        frame_of_reference_uid: a.text(obj, tags::FRAME_OF_REFERENCE_UID),
    })
}

/// A new UID under the 2.25 root: a random (version 4) UUID written as its
/// 128-bit integer in decimal, as PS3.5 B.2 and ITU-T X.667 define it
/// (at most 44 characters, within the UI limit of 64). 122 random bits make
/// a collision between two writers, on one machine or many, negligible.
pub fn new_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

/// Identifiers of the study an RTDOSE belongs to, and what the dose is of
/// (PS3.3 C.8.8.3 RT Dose module).
#[derive(Clone, Debug, Default)]
pub struct DoseContext {
    /// StudyInstanceUID (a new one if `None`).
    pub study_instance_uid: Option<String>,
    /// FrameOfReferenceUID (a new one if `None`).
    pub frame_of_reference_uid: Option<String>,
    /// SOP instance UID of the plan the dose belongs to, written as
    /// ReferencedRTPlanSequence (300C,0002) > ReferencedSOPInstanceUID.
    pub referenced_plan_uid: Option<String>,
    /// ReferencedSOPClassUID of that item: the plan's storage class. `None`
    /// writes RT Ion Plan Storage (1.2.840.10008.5.1.4.1.1.481.8); a
    /// brachytherapy or photon plan needs RT Plan Storage
    /// (1.2.840.10008.5.1.4.1.1.481.5,
    /// [`crate::rt_brachy_plan::RT_PLAN_STORAGE`]).
    pub referenced_plan_sop_class_uid: Option<String>,
    /// ReferencedFractionGroupNumber (300C,0022) written when a beam is
    /// referenced (1 if `None`).
    pub referenced_fraction_group_number: Option<i32>,
    /// ReferencedBeamNumber (300C,0006) of a BEAM dose, written in
    /// ReferencedRTPlanSequence > ReferencedFractionGroupSequence
    /// (300C,0020) > ReferencedBeamSequence (300C,0004), as PS3.3 C.8.8.3
    /// requires for DoseSummationType BEAM. Needs `referenced_plan_uid`.
    pub referenced_beam_number: Option<i32>,
    /// PatientID.
    pub patient_id: String,
    /// PatientName.
    pub patient_name: String,
    /// DoseSummationType (3004,000A): "PLAN" (if empty), "BEAM", "FRACTION"...
    pub summation: String,
    /// DoseComment (3004,0006), LO (cut to 64 characters); left out if empty.
    pub comment: String,
}

/// What an RTDOSE needs to know of the RT plan it was computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanReference {
    /// The plan file.
    pub path: PathBuf,
    /// Its SOPInstanceUID (0008,0018).
    pub sop_instance_uid: Option<String>,
    /// Its storage class: RT Ion Plan or RT Plan (brachytherapy).
    pub sop_class_uid: &'static str,
    /// Its FrameOfReferenceUID (0020,0052).
    pub frame_of_reference_uid: Option<String>,
    /// FractionGroupNumber of its first fraction group (ion plans).
    pub fraction_group_number: Option<i32>,
}

impl PlanReference {
    /// Reads an RT Ion Plan or a brachytherapy RT Plan; an error naming the
    /// file and both readers' complaints when it is neither.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let ion_err = match crate::read_ion_plan(path) {
            Ok(ion) => {
                return Ok(Self {
                    path: path.to_owned(),
                    sop_instance_uid: ion.sop_instance_uid,
                    sop_class_uid: RT_ION_PLAN_STORAGE,
                    frame_of_reference_uid: ion.frame_of_reference_uid,
                    fraction_group_number: ion.fraction_group_number,
                });
            }
            Err(e) => e,
        };
        match crate::read_brachy_plan(path) {
            Ok(b) => Ok(Self {
                path: path.to_owned(),
                sop_instance_uid: b.sop_instance_uid,
                sop_class_uid: crate::rt_brachy_plan::RT_PLAN_STORAGE,
                frame_of_reference_uid: b.frame_of_reference_uid,
                fraction_group_number: None,
            }),
            Err(brachy_err) => Err(DicomIoError::Inconsistent {
                path: path.to_owned(),
                reason: format!(
                    "not a plan an RTDOSE can reference: as an RT Ion Plan: {ion_err}; \
                     as a brachytherapy RT Plan: {brachy_err}"
                ),
            }),
        }
    }
}

impl DoseContext {
    /// The study, frame of reference and patient of `ct` (new UIDs where it
    /// has none) and a reference to `plan`, for a PLAN dose. An error when
    /// the CT and the plan lie in different frames of reference: a dose
    /// tagged with the wrong one would be placed on the wrong anatomy.
    pub fn from_study(
        ct: Option<&crate::StudyIdentifiers>,
        plan: Option<&PlanReference>,
    ) -> Result<Self> {
        let ct_frame = ct.and_then(|c| c.frame_of_reference_uid.clone());
        let plan_frame = plan.and_then(|p| p.frame_of_reference_uid.clone());
        if let (Some(c), Some(p), Some(plan)) = (&ct_frame, &plan_frame, plan)
            && c != p
        {
            return Err(DicomIoError::Inconsistent {
                path: plan.path.clone(),
                reason: format!("the plan's FrameOfReferenceUID {p} is not the CT's {c}"),
            });
        }
        Ok(Self {
            study_instance_uid: ct.and_then(|c| c.study_instance_uid.clone()),
            frame_of_reference_uid: ct_frame.or(plan_frame),
            referenced_plan_uid: plan.and_then(|p| p.sop_instance_uid.clone()),
            referenced_plan_sop_class_uid: plan.map(|p| p.sop_class_uid.to_owned()),
            referenced_fraction_group_number: plan.and_then(|p| p.fraction_group_number),
            referenced_beam_number: None,
            patient_id: ct.and_then(|c| c.patient_id.clone()).unwrap_or_default(),
            patient_name: ct.and_then(|c| c.patient_name.clone()).unwrap_or_default(),
            summation: "PLAN".to_owned(),
            comment: String::new(),
        })
    }
}

/// Writes `dose` (Gy) as an RTDOSE file; returns its SOP instance UID.
pub fn write_rtdose(
    path: impl AsRef<Path>,
    dose: &DoseGrid,
    context: &DoseContext,
) -> Result<String> {
    let path: PathBuf = path.as_ref().to_owned();
    let g = dose.grid();
    let [nz, ny, nx] = g.shape();
    if let Some(v) = dose.data().iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(DicomIoError::Core(isodose_core::DoseError::OutOfRange {
            field: "dose to write (Gy)".into(),
            value: f64::from(*v),
            reason: "RTDOSE stores finite, non-negative doses".into(),
        }));
    }
    let max = dose.data().iter().fold(0.0f32, |m, v| m.max(*v)) as f64;
    let scaling = if max > 0.0 {
        max / f64::from(u32::MAX)
    } else {
        1.0
    };
    let mut pixels = Vec::with_capacity(dose.grid().len() * 4);
    for v in dose.data().iter() {
        let q = (f64::from(*v) / scaling)
            .round()
            .clamp(0.0, f64::from(u32::MAX)) as u32;
        pixels.extend_from_slice(&q.to_le_bytes());
    }
    let s = g.spacing_mm();
    let o = g.origin_mm();
    let sop_uid = new_uid();
    let study = context.study_instance_uid.clone().unwrap_or_else(new_uid);
    let frame = context
        .frame_of_reference_uid
        .clone()
        .unwrap_or_else(new_uid);
    let offsets: Vec<String> = (0..nz).map(|k| format!("{}", k as f64 * s.z)).collect();
    let ds = |x: f64| format!("{x}");
    let mut obj = InMemDicomObject::new_empty();
    let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
        obj.put(DataElement::new(tag, vr, value));
    };
    put(
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from(RT_DOSE_STORAGE),
    );
    put(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(sop_uid.as_str()),
    );
    put(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(study.as_str()),
    );
    put(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(new_uid().as_str()),
    );
    put(
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        PrimitiveValue::from(frame.as_str()),
    );
    put(tags::MODALITY, VR::CS, PrimitiveValue::from("RTDOSE"));
    put(tags::MANUFACTURER, VR::LO, PrimitiveValue::from("isodose"));
    put(
        tags::PATIENT_NAME,
        VR::PN,
        PrimitiveValue::from(context.patient_name.as_str()),
    );
    put(
        tags::PATIENT_ID,
        VR::LO,
        PrimitiveValue::from(context.patient_id.as_str()),
    );
    put(tags::SERIES_NUMBER, VR::IS, PrimitiveValue::from("1"));
    put(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from("1"));
    put(
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        PrimitiveValue::Strs([ds(o.x), ds(o.y), ds(o.z)].into_iter().collect()),
    );
    put(
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        PrimitiveValue::Strs(
            ["1", "0", "0", "0", "1", "0"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
    );
    put(
        tags::PIXEL_SPACING,
        VR::DS,
        PrimitiveValue::Strs([ds(s.y), ds(s.x)].into_iter().collect()),
    );
    put(
        tags::SLICE_THICKNESS,
        VR::DS,
        PrimitiveValue::from(ds(s.z).as_str()),
    );
    put(
        tags::GRID_FRAME_OFFSET_VECTOR,
        VR::DS,
        PrimitiveValue::Strs(offsets.into_iter().collect()),
    );
    put(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from(nz.to_string().as_str()),
    );
    put(
        tags::FRAME_INCREMENT_POINTER,
        VR::AT,
        PrimitiveValue::Tags([tags::GRID_FRAME_OFFSET_VECTOR].into_iter().collect()),
    );
    put(tags::ROWS, VR::US, PrimitiveValue::from(ny as u16));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(nx as u16));
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from("MONOCHROME2"),
    );
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(32u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(32u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(31u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    put(tags::DOSE_UNITS, VR::CS, PrimitiveValue::from("GY"));
    put(tags::DOSE_TYPE, VR::CS, PrimitiveValue::from("PHYSICAL"));
    let summation = if context.summation.is_empty() {
        "PLAN"
    } else {
        context.summation.as_str()
    };
    put(
        tags::DOSE_SUMMATION_TYPE,
        VR::CS,
        PrimitiveValue::from(summation),
    );
    put(
        tags::DOSE_GRID_SCALING,
        VR::DS,
        PrimitiveValue::from(format!("{scaling:.10E}").as_str()),
    );
    put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels));
    if !context.comment.is_empty() {
        let comment: String = context.comment.chars().take(64).collect();
        put(
            tags::DOSE_COMMENT,
            VR::LO,
            PrimitiveValue::from(comment.as_str()),
        );
    }
    if let Some(plan) = &context.referenced_plan_uid {
        let class = context
            .referenced_plan_sop_class_uid
            .as_deref()
            .unwrap_or(RT_ION_PLAN_STORAGE);
        let mut item = InMemDicomObject::from_element_iter([
            DataElement::new(
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                PrimitiveValue::from(class),
            ),
            DataElement::new(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                PrimitiveValue::from(plan.as_str()),
            ),
        ]);
        if let Some(beam) = context.referenced_beam_number {
            let beams = InMemDicomObject::from_element_iter([DataElement::new(
                tags::REFERENCED_BEAM_NUMBER,
                VR::IS,
                PrimitiveValue::from(beam.to_string().as_str()),
            )]);
            let group = InMemDicomObject::from_element_iter([
                DataElement::new(
                    tags::REFERENCED_FRACTION_GROUP_NUMBER,
                    VR::IS,
                    PrimitiveValue::from(
                        context
                            .referenced_fraction_group_number
                            .unwrap_or(1)
                            .to_string()
                            .as_str(),
                    ),
                ),
                DataElement::new(
                    tags::REFERENCED_BEAM_SEQUENCE,
                    VR::SQ,
                    dicom_core::value::DataSetSequence::from(vec![beams]),
                ),
            ]);
            item.put(DataElement::new(
                tags::REFERENCED_FRACTION_GROUP_SEQUENCE,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![group]),
            ));
        }
        obj.put(DataElement::new(
            tags::REFERENCED_RT_PLAN_SEQUENCE,
            VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![item]),
        ));
    }
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| DicomIoError::Inconsistent {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    file.write_to_file(&path)
        .map_err(|e| DicomIoError::Inconsistent {
            path: path.clone(),
            reason: format!("cannot write: {e}"),
        })?;
    Ok(sop_uid)
}

#[cfg(test)]
mod tests {
    use super::new_uid;
    use std::collections::HashSet;

    /// A UI value (PS3.5 9.1): components of digits separated by dots, no
    /// leading zero in a component of more than one digit, at most 64
    /// characters; ours under the 2.25 root with a 128-bit integer.
    fn is_valid_uid(uid: &str) -> bool {
        uid.len() <= 64
            && uid.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_digit())
                    && (c.len() == 1 || !c.starts_with('0'))
            })
    }

    #[test]
    fn uids_are_uuids_under_2_25_and_unique_across_threads() {
        let uid = new_uid();
        assert!(uid.starts_with("2.25."), "{uid}");
        let n: u128 = uid["2.25.".len()..].parse().unwrap();
        // a version 4, variant 1 UUID: bits 76-79 hold 4, bits 62-63 hold 0b10
        assert_eq!((n >> 76) & 0xf, 4, "{uid}");
        assert_eq!((n >> 62) & 0b11, 0b10, "{uid}");
        // 8 threads at once, 20,000 UIDs each: all valid and distinct
        let all: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..20_000).map(|_| new_uid()).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert!(all.iter().all(|u| is_valid_uid(u)), "an invalid UID");
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        assert!(all.iter().map(String::len).max().unwrap() <= 44);
    }
}
