//! CT series: a folder of CT Image Storage files → a [`CtVolume`] in HU.
//!
//! Files that are not DICOM, or DICOM objects other than CT images (an
//! RTSTRUCT or a plan in the same folder), are passed over. The CT slices
//! are grouped by SeriesInstanceUID (several series: an error listing them,
//! unless one is chosen), sorted by position along the slice normal, and
//! checked: axis-aligned orientation (a tilted gantry or an oblique series is
//! an error naming the file), equal rows, columns and pixel spacing, and
//! uniform slice spacing (a missing slice is an error naming its neighbours).
//! Pixel values are mapped to HU with each slice's RescaleSlope and
//! RescaleIntercept. Uncompressed little-endian transfer syntaxes only.
//!
//! [`read_ct`] gives the volume; [`read_ct_series`] also gives the
//! identifiers that objects derived from the CT must carry (an RTDOSE
//! computed on it: StudyInstanceUID, FrameOfReferenceUID, patient), taken
//! from the first slice of the series (PS3.3 C.7.2.1 General Study, C.7.4.1
//! Frame of Reference, C.7.1.1 Patient modules).

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use dicom_object::open_file;
use isodose_core::{CtVolume, Grid3, Volume};
use ndarray::Array3;
use rayon::prelude::*;

use crate::attrs::Attrs;
use crate::error::DicomIoError;

type Result<T> = std::result::Result<T, DicomIoError>;

/// SOP class UID of CT Image Storage.
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";

/// One CT slice, decoded.
struct Slice {
    path: PathBuf,
    series: String,
    study: Option<String>,
    frame_of_reference: Option<String>,
    patient_id: Option<String>,
    patient_name: Option<String>,
    position: [f64; 3],
    orientation: [f64; 6],
    spacing: [f64; 2],
    rows: usize,
    cols: usize,
    hu: Vec<f32>,
}

/// Reads a CT slice; `Ok(None)` for files that are not CT images.
fn read_slice(path: &Path) -> Result<Option<Slice>> {
    let Ok(file) = open_file(path) else {
        return Ok(None);
    };
    let a = Attrs { path };
    let obj: &InMemDicomObject = &file;
    if a.text(obj, tags::SOP_CLASS_UID).as_deref() != Some(CT_IMAGE_STORAGE) {
        return Ok(None);
    }
    a.require_uncompressed(&file)?;
    let (position, orientation, spacing) = a.image_plane(obj)?;
    let rows = a.u32(obj, tags::ROWS)? as usize;
    let cols = a.u32(obj, tags::COLUMNS)? as usize;
    let bits = a.u32(obj, tags::BITS_ALLOCATED)?;
    let signed = a.u32(obj, tags::PIXEL_REPRESENTATION)? == 1;
    if bits != 16 {
        return Err(a.bad(
            tags::BITS_ALLOCATED,
            bits.to_string(),
            "only 16-bit CT pixels are supported",
        ));
    }
    let slope = a.float(obj, tags::RESCALE_SLOPE)?.unwrap_or(1.0);
    let intercept = a.float(obj, tags::RESCALE_INTERCEPT)?.unwrap_or(0.0);
    let pixels = file
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| a.missing(tags::PIXEL_DATA))?;
    let bytes = pixels
        .to_bytes()
        .map_err(|e| a.bad(tags::PIXEL_DATA, "?", e.to_string()))?;
    let n = rows * cols;
    if bytes.len() < 2 * n {
        return Err(a.bad(
            tags::PIXEL_DATA,
            format!("{} bytes", bytes.len()),
            format!(
                "{rows} x {cols} pixels need {} bytes (truncated file?)",
                2 * n
            ),
        ));
    }
    let hu = bytes[..2 * n]
        .chunks_exact(2)
        .map(|c| {
            let raw = if signed {
                f64::from(i16::from_le_bytes([c[0], c[1]]))
            } else {
                f64::from(u16::from_le_bytes([c[0], c[1]]))
            };
            (raw * slope + intercept) as f32
        })
        .collect();
    Ok(Some(Slice {
        path: path.to_owned(),
        series: a.text(obj, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        study: a.text(obj, tags::STUDY_INSTANCE_UID),
        frame_of_reference: a.text(obj, tags::FRAME_OF_REFERENCE_UID),
        patient_id: a.text(obj, tags::PATIENT_ID),
        patient_name: a.text(obj, tags::PATIENT_NAME),
        position,
        orientation,
        spacing,
        rows,
        cols,
        hu,
    }))
}

/// A CT series with the identifiers of the study it belongs to.
#[derive(Clone, Debug)]
pub struct CtSeries {
    /// The CT in HU on its grid (LPS mm), as [`read_ct`] gives it.
    pub volume: CtVolume,
    /// SeriesInstanceUID (0020,000E) of the series read.
    pub series_instance_uid: String,
    /// StudyInstanceUID (0020,000D) of the first slice, if present.
    pub study_instance_uid: Option<String>,
    /// FrameOfReferenceUID (0020,0052) of the first slice, if present: the
    /// patient coordinate system that plans and doses on this CT share.
    pub frame_of_reference_uid: Option<String>,
    /// PatientID (0010,0020) of the first slice, if present.
    pub patient_id: Option<String>,
    /// PatientName (0010,0010) of the first slice, if present.
    pub patient_name: Option<String>,
}

/// The identifiers that objects derived from a CT (an RTDOSE computed on it)
/// must carry, without the pixels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StudyIdentifiers {
    /// StudyInstanceUID (0020,000D).
    pub study_instance_uid: Option<String>,
    /// FrameOfReferenceUID (0020,0052).
    pub frame_of_reference_uid: Option<String>,
    /// PatientID (0010,0020).
    pub patient_id: Option<String>,
    /// PatientName (0010,0010).
    pub patient_name: Option<String>,
}

impl CtSeries {
    /// The series' study, frame-of-reference and patient identifiers.
    pub fn identifiers(&self) -> StudyIdentifiers {
        StudyIdentifiers {
            study_instance_uid: self.study_instance_uid.clone(),
            frame_of_reference_uid: self.frame_of_reference_uid.clone(),
            patient_id: self.patient_id.clone(),
            patient_name: self.patient_name.clone(),
        }
    }
}

/// Reads the CT series in `folder` (the only one, or the one with
/// SeriesInstanceUID `series_uid`).
pub fn read_ct(folder: impl AsRef<Path>, series_uid: Option<&str>) -> Result<CtVolume> {
    read_ct_series(folder, series_uid).map(|s| s.volume)
}

/// Reads the CT series in `folder` as [`read_ct`] does, with its study,
/// frame-of-reference and patient identifiers (from the series' first
/// slice, in slice order).
pub fn read_ct_series(folder: impl AsRef<Path>, series_uid: Option<&str>) -> Result<CtSeries> {
    let folder = folder.as_ref();
    let entries = std::fs::read_dir(folder).map_err(|source| DicomIoError::Io {
        path: folder.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let slices: Vec<Slice> = paths
        .par_iter()
        .map(|p| read_slice(p))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    let inconsistent = |reason: String| DicomIoError::Inconsistent {
        path: folder.to_owned(),
        reason,
    };
    if slices.is_empty() {
        return Err(inconsistent("no CT image files in the folder".into()));
    }
    let mut series: Vec<&str> = slices.iter().map(|s| s.series.as_str()).collect();
    series.sort_unstable();
    series.dedup();
    let chosen = match (series_uid, series.as_slice()) {
        (Some(uid), _) if series.contains(&uid) => uid.to_owned(),
        (Some(uid), _) => {
            return Err(inconsistent(format!(
                "no CT series {uid}; the folder holds {}",
                series.join(", ")
            )));
        }
        (None, [one]) => (*one).to_owned(),
        (None, many) => {
            return Err(inconsistent(format!(
                "{} CT series in the folder ({}); choose one by SeriesInstanceUID",
                many.len(),
                many.join(", ")
            )));
        }
    };
    let mut slices: Vec<Slice> = slices.into_iter().filter(|s| s.series == chosen).collect();
    slices.sort_by(|a, b| a.position[2].total_cmp(&b.position[2]));
    let first = &slices[0];
    for s in &slices {
        let axis_aligned = s
            .orientation
            .iter()
            .zip([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
            .all(|(a, b)| (a - b).abs() < 1e-4);
        if !axis_aligned {
            return Err(Attrs { path: &s.path }.bad(
                tags::IMAGE_ORIENTATION_PATIENT,
                format!("{:?}", s.orientation),
                "only axial, axis-aligned slices (1,0,0,0,1,0) are supported: no gantry tilt or oblique series",
            ));
        }
        if s.rows != first.rows
            || s.cols != first.cols
            || (s.spacing[0] - first.spacing[0]).abs() > 1e-6
            || (s.spacing[1] - first.spacing[1]).abs() > 1e-6
        {
            return Err(inconsistent(format!(
                "slice {} is {}x{} at {:?} mm but {} is {}x{} at {:?} mm",
                s.path.display(),
                s.rows,
                s.cols,
                s.spacing,
                first.path.display(),
                first.rows,
                first.cols,
                first.spacing
            )));
        }
        if (s.position[0] - first.position[0]).abs() > 1e-3
            || (s.position[1] - first.position[1]).abs() > 1e-3
        {
            return Err(inconsistent(format!(
                "slice {} is shifted in x/y against {}",
                s.path.display(),
                first.path.display()
            )));
        }
    }
    let nz = slices.len();
    let dz = if nz > 1 {
        slices[1].position[2] - slices[0].position[2]
    } else {
        1.0
    };
    for w in slices.windows(2) {
        let gap = w[1].position[2] - w[0].position[2];
        if (gap - dz).abs() > 1e-3 * dz.abs().max(1.0) || gap <= 0.0 {
            return Err(inconsistent(format!(
                "slice spacing is not uniform: {} (z = {}) to {} (z = {}) is {gap} mm, the first gap is {dz} mm (missing or duplicated slice?)",
                w[0].path.display(),
                w[0].position[2],
                w[1].path.display(),
                w[1].position[2]
            )));
        }
    }
    let (rows, cols) = (first.rows, first.cols);
    let grid = Grid3::new(
        [nz, rows, cols],
        [first.spacing[1], first.spacing[0], dz],
        first.position,
    )?;
    let mut data = Vec::with_capacity(nz * rows * cols);
    for s in &slices {
        data.extend_from_slice(&s.hu);
    }
    let array =
        Array3::from_shape_vec((nz, rows, cols), data).map_err(|e| inconsistent(e.to_string()))?;
    Ok(CtSeries {
        volume: Volume::new(grid, array)?,
        series_instance_uid: chosen,
        study_instance_uid: first.study.clone(),
        frame_of_reference_uid: first.frame_of_reference.clone(),
        patient_id: first.patient_id.clone(),
        patient_name: first.patient_name.clone(),
    })
}
