//! Attribute access shared by the readers: opening a file, typed values, and
//! errors that name the file, the tag (`(gggg,eeee) Keyword`) and the value.

use std::path::Path;

use dicom_core::Tag;
use dicom_core::header::HasLength;
use dicom_core::value::ConvertValueError;
use dicom_dictionary_std::{tags, uids};
use dicom_object::mem::InMemDicomObject;
use dicom_object::{DefaultDicomObject, open_file};

use crate::error::DicomIoError;

type Result<T> = std::result::Result<T, DicomIoError>;

/// `(gggg,eeee) Keyword` of a tag.
pub(crate) fn tag_name(tag: Tag) -> String {
    use dicom_core::dictionary::DataDictionary;
    let name = dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .map(|e| e.alias.to_string())
        .unwrap_or_default();
    format!("({:04X},{:04X}) {name}", tag.group(), tag.element())
}

/// Opens a DICOM file: a missing file is an I/O error, anything unreadable
/// an error naming the file.
pub(crate) fn open(path: &Path) -> Result<DefaultDicomObject> {
    std::fs::metadata(path).map_err(|source| DicomIoError::Io {
        path: path.to_owned(),
        source,
    })?;
    open_file(path).map_err(|e| DicomIoError::Inconsistent {
        path: path.to_owned(),
        reason: format!("not a readable DICOM file: {e}"),
    })
}

/// Typed access to the attributes of one file's objects.
pub(crate) struct Attrs<'a> {
    pub path: &'a Path,
}

impl Attrs<'_> {
    pub fn missing(&self, tag: Tag) -> DicomIoError {
        DicomIoError::MissingTag {
            path: self.path.to_owned(),
            tag: tag_name(tag),
        }
    }

    pub fn bad(
        &self,
        tag: Tag,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> DicomIoError {
        DicomIoError::BadValue {
            path: self.path.to_owned(),
            tag: tag_name(tag),
            value: value.into(),
            reason: reason.into(),
        }
    }

    fn convert(
        &self,
        tag: Tag,
        e: &dicom_object::mem::InMemElement,
        err: ConvertValueError,
    ) -> DicomIoError {
        self.bad(tag, e.to_str().unwrap_or_default(), err.to_string())
    }

    /// A trimmed, non-empty string value.
    pub fn text(&self, obj: &InMemDicomObject, tag: Tag) -> Option<String> {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().trim_end_matches('\0').to_owned())
            .filter(|s| !s.is_empty())
    }

    /// The items of a sequence (none if absent).
    pub fn items<'o>(&self, obj: &'o InMemDicomObject, tag: Tag) -> &'o [InMemDicomObject] {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.items())
            .unwrap_or(&[])
    }

    /// Finite numbers of a present, non-empty attribute.
    pub fn floats(&self, obj: &InMemDicomObject, tag: Tag) -> Result<Option<Vec<f64>>> {
        let Some(e) = obj
            .element_opt(tag)
            .ok()
            .flatten()
            .filter(|e| !e.is_empty())
        else {
            return Ok(None);
        };
        let v = e
            .to_multi_float64()
            .map_err(|err| self.convert(tag, e, err))?;
        if let Some(x) = v.iter().find(|x| !x.is_finite()) {
            return Err(self.bad(tag, format!("{v:?}"), format!("{x} is not finite")));
        }
        Ok(Some(v))
    }

    /// As [`Self::floats`], but the attribute is mandatory.
    pub fn required_floats(&self, obj: &InMemDicomObject, tag: Tag) -> Result<Vec<f64>> {
        self.floats(obj, tag)?.ok_or_else(|| self.missing(tag))
    }

    /// The first number of an attribute.
    pub fn float(&self, obj: &InMemDicomObject, tag: Tag) -> Result<Option<f64>> {
        Ok(self.floats(obj, tag)?.and_then(|v| v.first().copied()))
    }

    /// A mandatory unsigned integer.
    pub fn u32(&self, obj: &InMemDicomObject, tag: Tag) -> Result<u32> {
        let e = obj
            .element_opt(tag)
            .ok()
            .flatten()
            .ok_or_else(|| self.missing(tag))?;
        e.to_int::<u32>().map_err(|err| self.convert(tag, e, err))
    }

    /// A mandatory signed integer.
    pub fn i64(&self, obj: &InMemDicomObject, tag: Tag) -> Result<i64> {
        let e = obj
            .element_opt(tag)
            .ok()
            .flatten()
            .ok_or_else(|| self.missing(tag))?;
        e.to_int::<i64>().map_err(|err| self.convert(tag, e, err))
    }

    /// Checks that the file's transfer syntax is an uncompressed little-endian
    /// one, the only pixel encodings the readers decode.
    pub fn require_uncompressed(&self, file: &DefaultDicomObject) -> Result<()> {
        let ts = file.meta().transfer_syntax().trim_end_matches('\0');
        if [
            uids::IMPLICIT_VR_LITTLE_ENDIAN,
            uids::EXPLICIT_VR_LITTLE_ENDIAN,
        ]
        .contains(&ts)
        {
            Ok(())
        } else {
            Err(self.bad(
                Tag(0x0002, 0x0010),
                ts,
                "unsupported transfer syntax: only uncompressed little endian is read",
            ))
        }
    }

    /// The image plane: ImagePositionPatient (x, y, z), ImageOrientationPatient
    /// (row and column cosines) and PixelSpacing (row spacing, column
    /// spacing), each with its multiplicity checked.
    pub fn image_plane(&self, obj: &InMemDicomObject) -> Result<([f64; 3], [f64; 6], [f64; 2])> {
        fn fixed<const N: usize>(
            a: &Attrs<'_>,
            obj: &InMemDicomObject,
            tag: Tag,
        ) -> Result<[f64; N]> {
            let v = a.required_floats(obj, tag)?;
            v.as_slice()
                .try_into()
                .map_err(|_| a.bad(tag, format!("{v:?}"), format!("needs {N} values")))
        }
        Ok((
            fixed::<3>(self, obj, tags::IMAGE_POSITION_PATIENT)?,
            fixed::<6>(self, obj, tags::IMAGE_ORIENTATION_PATIENT)?,
            fixed::<2>(self, obj, tags::PIXEL_SPACING)?,
        ))
    }

    /// Checks the SOPClassUID.
    pub fn require_sop(&self, obj: &InMemDicomObject, uid: &str, what: &str) -> Result<()> {
        let sop = self.text(obj, tags::SOP_CLASS_UID).unwrap_or_default();
        if sop == uid {
            Ok(())
        } else {
            Err(self.bad(tags::SOP_CLASS_UID, sop, format!("not an {what} object")))
        }
    }
}
