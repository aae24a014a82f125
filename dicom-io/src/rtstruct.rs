//! RTSTRUCT: ROI names, numbers, colours, types and contours, and masks of
//! the ROIs on a grid.
//!
//! Rasterisation: each grid slice between the first and the last contour
//! plane (inclusive; no end caps beyond them) takes the contours of the
//! nearest plane (a single plane covers half a grid spacing either side); a
//! voxel centre is inside when a ray along +x from it crosses the plane's
//! contours an odd number of times (even-odd rule, so that a contour inside
//! another is a hole; edges count on their half-open [min, max) span in y).
//! POINT and OPEN contours give no volume.

use std::path::Path;

use dicom_core::header::HasLength;
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use isodose_core::qa::Structure;
use isodose_core::{DoseError, Grid3};
use ndarray::Array3;

use crate::attrs::{Attrs, open};
use crate::error::DicomIoError;

type Result<T> = std::result::Result<T, DicomIoError>;

/// SOP class UID of RT Structure Set Storage.
pub const RT_STRUCTURE_SET_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.3";

/// One contour: its geometric type and points (LPS mm).
#[derive(Clone, Debug, PartialEq)]
pub struct Contour {
    /// ContourGeometricType: CLOSED_PLANAR, OPEN_PLANAR, POINT...
    pub geometric_type: String,
    /// Points (x, y, z), mm.
    pub points: Vec<[f64; 3]>,
}

/// One ROI of a structure set.
#[derive(Clone, Debug, PartialEq)]
pub struct Roi {
    /// ROINumber.
    pub number: i64,
    /// ROIName.
    pub name: String,
    /// RTROIInterpretedType (PTV, ORGAN, EXTERNAL...), if given.
    pub interpreted_type: Option<String>,
    /// ROIDisplayColor (RGB), if given.
    pub color: Option<[u8; 3]>,
    /// Contours.
    pub contours: Vec<Contour>,
    /// ROIPhysicalPropertiesSequence (3006,00B0) of its observations: the
    /// overrides a planning system applies inside the ROI, as
    /// (ROIPhysicalProperty, ROIPhysicalPropertyValue), e.g.
    /// ("REL_MASS_DENSITY", 1.02), ("REL_ELEC_DENSITY", 0.9915),
    /// ("MEAN_EXCI_ENERGY", 70.2) (eV).
    pub physical_properties: Vec<(String, f64)>,
}

impl Roi {
    /// The value of physical-property override `property`
    /// (ROIPhysicalProperty, e.g. "REL_ELEC_DENSITY"), if the ROI has one.
    pub fn physical_property(&self, property: &str) -> Option<f64> {
        self.physical_properties
            .iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(property))
            .map(|(_, v)| *v)
    }
}

/// Reads the ROIs of an RTSTRUCT file.
pub fn read_rtstruct(path: impl AsRef<Path>) -> Result<Vec<Roi>> {
    let path = path.as_ref();
    let file = open(path)?;
    let a = Attrs { path };
    let obj: &InMemDicomObject = &file;
    a.require_sop(obj, RT_STRUCTURE_SET_STORAGE, "RT Structure Set Storage")?;
    let mut rois: Vec<Roi> = a
        .items(obj, tags::STRUCTURE_SET_ROI_SEQUENCE)
        .iter()
        .map(|i| {
            Ok(Roi {
                number: a.i64(i, tags::ROI_NUMBER)?,
                name: a.text(i, tags::ROI_NAME).unwrap_or_default(),
                interpreted_type: None,
                color: None,
                contours: Vec::new(),
                physical_properties: Vec::new(),
            })
        })
        .collect::<Result<_>>()?;
    for o in a.items(obj, tags::RTROI_OBSERVATIONS_SEQUENCE) {
        let n = a.i64(o, tags::REFERENCED_ROI_NUMBER)?;
        if let Some(r) = rois.iter_mut().find(|r| r.number == n) {
            r.interpreted_type = a.text(o, tags::RTROI_INTERPRETED_TYPE);
            for pp in a.items(o, tags::ROI_PHYSICAL_PROPERTIES_SEQUENCE) {
                let property = a.text(pp, tags::ROI_PHYSICAL_PROPERTY).unwrap_or_default();
                // a property without a number (ELEM_FRACTION carries a
                // sequence instead) is skipped
                let value = a.float(pp, tags::ROI_PHYSICAL_PROPERTY_VALUE)?;
                if let Some(v) = value {
                    if !v.is_finite() {
                        return Err(a.bad(
                            tags::ROI_PHYSICAL_PROPERTY_VALUE,
                            v.to_string(),
                            format!("ROI {:?}: {property} must be finite", r.name),
                        ));
                    }
                    r.physical_properties.push((property, v));
                }
            }
        }
    }
    for rc in a.items(obj, tags::ROI_CONTOUR_SEQUENCE) {
        let n = a.i64(rc, tags::REFERENCED_ROI_NUMBER)?;
        let Some(roi) = rois.iter_mut().find(|r| r.number == n) else {
            return Err(DicomIoError::Inconsistent {
                path: path.to_owned(),
                reason: format!(
                    "ROIContourSequence refers to ROI {n}, which StructureSetROISequence does not define"
                ),
            });
        };
        roi.color = rc
            .element_opt(tags::ROI_DISPLAY_COLOR)
            .ok()
            .flatten()
            .and_then(|e| e.to_multi_int::<i64>().ok())
            .filter(|v| v.len() == 3)
            .map(|v| {
                [
                    v[0].clamp(0, 255) as u8,
                    v[1].clamp(0, 255) as u8,
                    v[2].clamp(0, 255) as u8,
                ]
            });
        for c in a.items(rc, tags::CONTOUR_SEQUENCE) {
            let geometric_type = a.text(c, tags::CONTOUR_GEOMETRIC_TYPE).unwrap_or_default();
            let Some(e) = c
                .element_opt(tags::CONTOUR_DATA)
                .ok()
                .flatten()
                .filter(|e| !e.is_empty())
            else {
                continue;
            };
            let v = e
                .to_multi_float64()
                .map_err(|err| a.bad(tags::CONTOUR_DATA, "?", err.to_string()))?;
            if v.len() % 3 != 0 || v.iter().any(|x| !x.is_finite()) {
                return Err(a.bad(
                    tags::CONTOUR_DATA,
                    format!("{} values", v.len()),
                    format!(
                        "ROI {:?}: contour data must be finite (x, y, z) triplets",
                        roi.name
                    ),
                ));
            }
            roi.contours.push(Contour {
                geometric_type,
                points: v.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect(),
            });
        }
    }
    Ok(rois)
}

/// Inside-test by the even-odd rule: which voxel centres of row `y` (x
/// positions `xs`) lie inside the polygons.
fn fill_row(
    polygons: &[&[[f64; 3]]],
    y: f64,
    xs: impl Iterator<Item = (usize, f64)>,
    mut set: impl FnMut(usize),
) {
    let mut crossings: Vec<f64> = Vec::new();
    for poly in polygons {
        let n = poly.len();
        for i in 0..n {
            let (a, b) = (poly[i], poly[(i + 1) % n]);
            // half-open rule: an edge counts when y is in [min, max)
            if (a[1] <= y && b[1] > y) || (b[1] <= y && a[1] > y) {
                let t = (y - a[1]) / (b[1] - a[1]);
                crossings.push(a[0] + t * (b[0] - a[0]));
            }
        }
    }
    if crossings.is_empty() {
        return;
    }
    crossings.sort_by(f64::total_cmp);
    for (i, x) in xs {
        let left = crossings.partition_point(|c| *c < x);
        if left % 2 == 1 {
            set(i);
        }
    }
}

impl Roi {
    /// The ROI as a contoured [`Structure`] for sub-voxel DVHs: its
    /// CLOSED_PLANAR contours (others carry no volume), each plane standing
    /// for a slab half-way to its neighbours; `single_plane_thickness_mm` is
    /// the slab of an ROI contoured on one plane only (use the CT slice
    /// thickness). Errors: no closed contour, or a contour that is not axial.
    pub fn structure(
        &self,
        single_plane_thickness_mm: f64,
    ) -> std::result::Result<Structure, DoseError> {
        let contours: Vec<Vec<[f64; 3]>> = self
            .contours
            .iter()
            .filter(|c| c.geometric_type == "CLOSED_PLANAR" && c.points.len() >= 3)
            .map(|c| c.points.clone())
            .collect();
        Structure::from_contours(&self.name, &contours, single_plane_thickness_mm)
    }

    /// Voxel mask of the ROI on `grid` (`[z, y, x]`), voxel centres inside.
    pub fn mask(&self, grid: &Grid3) -> Array3<bool> {
        self.inside_counts(grid, 1).mapv(|n| n > 0)
    }

    /// Fractional occupancy (0–1) of every voxel of `grid` by the ROI,
    /// estimated by supersampling: the fraction of `n`³ points, at the
    /// centres of an `n` × `n` × `n` subdivision of the voxel, that lie inside
    /// (the same even-odd fill and contour-plane rule as [`Roi::mask`], which
    /// is the `n` = 1 case). Boundary voxels get their partial volume, for
    /// DVHs of small structures. `n` is clamped to 1–16.
    pub fn occupancy(&self, grid: &Grid3, n: usize) -> Array3<f32> {
        let n = n.clamp(1, 16);
        let per_voxel = (n * n * n) as f32;
        self.inside_counts(grid, n).mapv(|c| c as f32 / per_voxel)
    }

    /// How many of the `n`³ sub-voxel sample points of each voxel lie inside.
    fn inside_counts(&self, grid: &Grid3, n: usize) -> Array3<u32> {
        let [nz, ny, nx] = grid.shape();
        let mut counts = Array3::<u32>::zeros((nz, ny, nx));
        let closed: Vec<&Contour> = self
            .contours
            .iter()
            .filter(|c| c.geometric_type == "CLOSED_PLANAR" && c.points.len() >= 3)
            .collect();
        if closed.is_empty() {
            return counts;
        }
        let mut planes: Vec<f64> = closed.iter().map(|c| c.points[0][2]).collect();
        planes.sort_by(f64::total_cmp);
        planes.dedup_by(|a, b| (*a - *b).abs() < 1e-3);
        let (o, s) = (grid.origin_mm(), grid.spacing_mm());
        let (z_lo, z_hi) = if planes.len() > 1 {
            (planes[0] - 1e-6, planes[planes.len() - 1] + 1e-6)
        } else {
            (planes[0] - 0.5 * s.z, planes[0] + 0.5 * s.z)
        };
        // sample q of a voxel's n along an axis sits at (q + ½)/n − ½ spacings
        // from its centre
        let sub = |q: usize| (q % n) as f64 / n as f64 + 0.5 / n as f64 - 0.5;
        for kq in 0..nz * n {
            let k = kq / n;
            let z = o.z + (k as f64 + sub(kq)) * s.z;
            if z < z_lo || z > z_hi {
                continue;
            }
            let nearest = planes
                .iter()
                .copied()
                .min_by(|a, b| (a - z).abs().total_cmp(&(b - z).abs()));
            let Some(plane) = nearest else {
                continue;
            };
            let polygons: Vec<&[[f64; 3]]> = closed
                .iter()
                .filter(|c| (c.points[0][2] - plane).abs() < 1e-3)
                .map(|c| c.points.as_slice())
                .collect();
            for jq in 0..ny * n {
                let j = jq / n;
                let y = o.y + (j as f64 + sub(jq)) * s.y;
                let xs = (0..nx * n).map(|iq| (iq / n, o.x + ((iq / n) as f64 + sub(iq)) * s.x));
                fill_row(&polygons, y, xs, |i| counts[[k, j, i]] += 1);
            }
        }
        counts
    }
}

/// Area enclosed by a polygon (shoelace formula), mm².
pub fn polygon_area(points: &[[f64; 3]]) -> f64 {
    let n = points.len();
    (0..n)
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum::<f64>()
        .abs()
        / 2.0
}
