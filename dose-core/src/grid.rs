//! Voxel grids and volumes.
//!
//! A [`Grid3`] places a regular, axis-aligned lattice of voxels in the DICOM
//! patient coordinate system (LPS, mm). Arrays are indexed `[z, y, x]`, as
//! pydicom and SimpleITK users expect; spacing and origin are given as
//! `(x, y, z)` like DICOM's PixelSpacing/ImagePositionPatient. The origin is
//! the centre of voxel `[0, 0, 0]`, so voxel `[k, j, i]` has its centre at
//! `origin + (i·sx, j·sy, k·sz)`.

use nalgebra::{Point3, Vector3};
use ndarray::{Array3, ArrayView3};

use crate::error::{DoseError, Result, finite};

/// Default upper bound on the number of voxels of a grid: 2³⁰ (4 GiB as f32).
///
/// It protects against absurd allocations from bad input (a corrupt header, a
/// spacing in m instead of mm). Use [`Grid3::with_max_voxels`] to change it.
pub const DEFAULT_MAX_VOXELS: usize = 1 << 30;

/// A regular axis-aligned voxel grid in LPS millimetres.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid3 {
    shape: [usize; 3],
    spacing_mm: Vector3<f64>,
    origin_mm: Point3<f64>,
}

impl Grid3 {
    /// A grid of `shape = (nz, ny, nx)` voxels, `spacing_mm = (sx, sy, sz)` and
    /// `origin_mm = (x0, y0, z0)`, the centre of the first voxel.
    ///
    /// Errors: an empty dimension, a non-finite or non-positive spacing, a
    /// non-finite origin, or more than [`DEFAULT_MAX_VOXELS`] voxels.
    pub fn new(shape: [usize; 3], spacing_mm: [f64; 3], origin_mm: [f64; 3]) -> Result<Self> {
        Self::with_max_voxels(shape, spacing_mm, origin_mm, DEFAULT_MAX_VOXELS)
    }

    /// As [`Grid3::new`] with an explicit bound on the voxel count.
    pub fn with_max_voxels(
        shape: [usize; 3],
        spacing_mm: [f64; 3],
        origin_mm: [f64; 3],
        max_voxels: usize,
    ) -> Result<Self> {
        if shape.contains(&0) {
            return Err(DoseError::InvalidGrid {
                reason: format!("shape (nz, ny, nx) = {shape:?} has an empty dimension"),
            });
        }
        for (axis, s) in ["x", "y", "z"].iter().zip(spacing_mm) {
            if !s.is_finite() || s <= 0.0 {
                return Err(DoseError::InvalidGrid {
                    reason: format!("spacing along {axis} is {s} mm; it must be finite and > 0"),
                });
            }
        }
        for (axis, o) in ["x", "y", "z"].iter().zip(origin_mm) {
            finite(&format!("grid origin {axis} (mm)"), o)?;
        }
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .filter(|&n| n <= max_voxels)
            .ok_or_else(|| DoseError::InvalidGrid {
                reason: format!(
                    "shape (nz, ny, nx) = {shape:?} exceeds the limit of {max_voxels} voxels"
                ),
            })?;
        debug_assert!(count > 0);
        Ok(Self {
            shape,
            spacing_mm: Vector3::from(spacing_mm),
            origin_mm: Point3::from(origin_mm),
        })
    }

    /// A grid described the DICOM way, with ImageOrientationPatient's row and
    /// column direction cosines. Only the axis-aligned orientation
    /// `row = (1, 0, 0)`, `column = (0, 1, 0)` is supported; any other gives a
    /// clear error (tolerance 1e-4 on each cosine).
    pub fn from_dicom_orientation(
        shape: [usize; 3],
        spacing_mm: [f64; 3],
        origin_mm: [f64; 3],
        row_cosines: [f64; 3],
        column_cosines: [f64; 3],
    ) -> Result<Self> {
        let close = |a: [f64; 3], b: [f64; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
        if !close(row_cosines, [1.0, 0.0, 0.0]) || !close(column_cosines, [0.0, 1.0, 0.0]) {
            return Err(DoseError::InvalidGrid {
                reason: format!(
                    "orientation row {row_cosines:?} / column {column_cosines:?} is not supported; \
                     only the axis-aligned orientation (1,0,0)/(0,1,0) is"
                ),
            });
        }
        Self::new(shape, spacing_mm, origin_mm)
    }

    /// A grid of uniform `spacing_mm` that covers the box `[min_mm, max_mm]`
    /// (LPS, corners of the region of interest): the first voxel is centred on
    /// `min_mm` and the last centre lies on or up to one spacing beyond
    /// `max_mm` along each axis.
    pub fn covering(min_mm: [f64; 3], max_mm: [f64; 3], spacing_mm: f64) -> Result<Self> {
        if !spacing_mm.is_finite() || spacing_mm <= 0.0 {
            return Err(DoseError::InvalidGrid {
                reason: format!("spacing {spacing_mm} mm must be finite and > 0"),
            });
        }
        let mut shape = [0usize; 3];
        for axis in 0..3 {
            let lo = finite("box minimum (mm)", min_mm[axis])?;
            let hi = finite("box maximum (mm)", max_mm[axis])?;
            if hi < lo {
                return Err(DoseError::InvalidGrid {
                    reason: format!("box maximum {hi} mm is below its minimum {lo} mm"),
                });
            }
            let n = ((hi - lo) / spacing_mm).ceil() + 1.0;
            if n > DEFAULT_MAX_VOXELS as f64 {
                return Err(DoseError::InvalidGrid {
                    reason: format!("box of {} mm at {spacing_mm} mm is too large", hi - lo),
                });
            }
            shape[2 - axis] = n as usize;
        }
        Self::new(shape, [spacing_mm; 3], min_mm)
    }

    /// Shape `(nz, ny, nx)`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }
    /// Number of voxels along x.
    pub fn nx(&self) -> usize {
        self.shape[2]
    }
    /// Number of voxels along y.
    pub fn ny(&self) -> usize {
        self.shape[1]
    }
    /// Number of voxels along z.
    pub fn nz(&self) -> usize {
        self.shape[0]
    }
    /// Total number of voxels.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Always false: a valid grid has at least one voxel.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Spacing `(sx, sy, sz)` in mm.
    pub fn spacing_mm(&self) -> Vector3<f64> {
        self.spacing_mm
    }
    /// Centre of voxel `[0, 0, 0]` in LPS mm.
    pub fn origin_mm(&self) -> Point3<f64> {
        self.origin_mm
    }
    /// Volume of one voxel in mm³.
    pub fn voxel_volume_mm3(&self) -> f64 {
        self.spacing_mm.x * self.spacing_mm.y * self.spacing_mm.z
    }

    /// Centre of voxel `zyx = [k, j, i]` in LPS mm.
    pub fn index_to_world(&self, zyx: [usize; 3]) -> Point3<f64> {
        let [k, j, i] = zyx;
        self.origin_mm
            + Vector3::new(
                i as f64 * self.spacing_mm.x,
                j as f64 * self.spacing_mm.y,
                k as f64 * self.spacing_mm.z,
            )
    }

    /// Continuous voxel coordinates `(i, j, k)` = `(x, y, z)` of a point: voxel
    /// centres sit on integers.
    pub fn world_to_continuous(&self, p: &Point3<f64>) -> Vector3<f64> {
        (p - self.origin_mm).component_div(&self.spacing_mm)
    }

    /// Index `[k, j, i]` of the voxel containing `p`, or `None` outside the grid.
    pub fn world_to_index(&self, p: &Point3<f64>) -> Option<[usize; 3]> {
        let c = self.world_to_continuous(p);
        let idx = |v: f64, n: usize| {
            let r = v.round();
            (r >= 0.0 && r < n as f64).then_some(r as usize)
        };
        Some([
            idx(c.z, self.nz())?,
            idx(c.y, self.ny())?,
            idx(c.x, self.nx())?,
        ])
    }

    /// Row-major (C order) linear index of `[k, j, i]`.
    pub fn linear_index(&self, zyx: [usize; 3]) -> usize {
        (zyx[0] * self.shape[1] + zyx[1]) * self.shape[2] + zyx[2]
    }

    /// Corners of the box spanned by the voxel centres (LPS mm): (first, last).
    pub fn centre_bounds_mm(&self) -> (Point3<f64>, Point3<f64>) {
        let last = self.index_to_world([self.nz() - 1, self.ny() - 1, self.nx() - 1]);
        (self.origin_mm, last)
    }
}

/// An error unless data of dimensions `dim` (nz, ny, nx) fits `grid`.
fn check_shape(grid: &Grid3, dim: (usize, usize, usize)) -> Result<()> {
    let got = [dim.0, dim.1, dim.2];
    if got != grid.shape() {
        return Err(DoseError::ShapeMismatch {
            what: "volume data",
            expected: grid.shape(),
            got,
        });
    }
    Ok(())
}

/// A grid paired with an array indexed `[z, y, x]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume<T> {
    grid: Grid3,
    data: Array3<T>,
}

/// A CT image in Hounsfield units.
pub type CtVolume = Volume<f32>;

/// A dose distribution in Gy (or a dose rate in cGy/h, as the producing
/// function documents).
pub type DoseGrid = Volume<f32>;

impl<T> Volume<T> {
    /// Pairs `data` (shape `(nz, ny, nx)`) with `grid`; the shapes must agree.
    pub fn new(grid: Grid3, data: Array3<T>) -> Result<Self> {
        check_shape(&grid, data.dim())?;
        Ok(Self { grid, data })
    }

    /// A volume with every voxel set to `value`.
    pub fn filled(grid: Grid3, value: T) -> Self
    where
        T: Clone,
    {
        let [nz, ny, nx] = grid.shape();
        Self {
            data: Array3::from_elem((nz, ny, nx), value),
            grid,
        }
    }

    /// The grid.
    pub fn grid(&self) -> &Grid3 {
        &self.grid
    }
    /// The data, indexed `[z, y, x]`.
    pub fn data(&self) -> &Array3<T> {
        &self.data
    }
    /// Mutable data; the shape cannot change through this view.
    pub fn data_mut(&mut self) -> &mut Array3<T> {
        &mut self.data
    }
    /// Splits into grid and data.
    pub fn into_parts(self) -> (Grid3, Array3<T>) {
        (self.grid, self.data)
    }
    /// A borrowed view of the volume.
    pub fn view(&self) -> VolumeView<'_, T> {
        VolumeView {
            grid: &self.grid,
            data: self.data.view(),
        }
    }
}

/// A grid paired with borrowed data indexed `[z, y, x]`: a volume whose
/// values live elsewhere (another `Volume`, or a caller's array such as a
/// NumPy array), read without a copy.
#[derive(Debug)]
pub struct VolumeView<'a, T> {
    grid: &'a Grid3,
    data: ArrayView3<'a, T>,
}

/// A borrowed dose distribution (see [`DoseGrid`]).
pub type DoseView<'a> = VolumeView<'a, f32>;

impl<T> Clone for VolumeView<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for VolumeView<'_, T> {}

impl<'a, T> VolumeView<'a, T> {
    /// Pairs `data` (shape `(nz, ny, nx)`) with `grid`; the shapes must agree.
    pub fn new(grid: &'a Grid3, data: ArrayView3<'a, T>) -> Result<Self> {
        check_shape(grid, data.dim())?;
        Ok(Self { grid, data })
    }
    /// The grid.
    pub fn grid(&self) -> &'a Grid3 {
        self.grid
    }
    /// The data, indexed `[z, y, x]`.
    pub fn data(&self) -> &ArrayView3<'a, T> {
        &self.data
    }
}

impl<'a, T> From<&'a Volume<T>> for VolumeView<'a, T> {
    fn from(v: &'a Volume<T>) -> Self {
        v.view()
    }
}

impl<T: Copy + Into<f64>> Volume<T> {
    /// Trilinear interpolation at `p` (LPS mm).
    ///
    /// The volume extends half a voxel beyond the outer voxel centres; between
    /// an outer centre and the edge the value is held constant (nearest
    /// neighbour along that axis). Returns `None` outside that box.
    pub fn sample_trilinear(&self, p: &Point3<f64>) -> Option<f64> {
        let c = self.grid.world_to_continuous(p);
        let [nz, ny, nx] = self.grid.shape();
        // (lower index, upper index, weight of upper) along one axis
        let axis = |v: f64, n: usize| -> Option<(usize, usize, f64)> {
            if !(v >= -0.5 && v <= n as f64 - 0.5) {
                return None;
            }
            let v = v.clamp(0.0, (n - 1) as f64);
            let lo = v.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            Some((lo, hi, v - lo as f64))
        };
        let (x0, x1, fx) = axis(c.x, nx)?;
        let (y0, y1, fy) = axis(c.y, ny)?;
        let (z0, z1, fz) = axis(c.z, nz)?;
        let v = |k: usize, j: usize, i: usize| -> f64 { self.data[[k, j, i]].into() };
        let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
        let c00 = lerp(v(z0, y0, x0), v(z0, y0, x1), fx);
        let c01 = lerp(v(z0, y1, x0), v(z0, y1, x1), fx);
        let c10 = lerp(v(z1, y0, x0), v(z1, y0, x1), fx);
        let c11 = lerp(v(z1, y1, x0), v(z1, y1, x1), fx);
        Some(lerp(lerp(c00, c01, fy), lerp(c10, c11, fy), fz))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid3 {
        Grid3::new([4, 5, 6], [1.0, 2.0, 3.0], [-10.0, 20.0, 5.0]).unwrap()
    }

    #[test]
    fn index_world_round_trip() {
        let g = grid();
        for zyx in [[0, 0, 0], [3, 4, 5], [1, 2, 3]] {
            let p = g.index_to_world(zyx);
            assert_eq!(g.world_to_index(&p), Some(zyx));
        }
        assert_eq!(g.index_to_world([1, 2, 3]), Point3::new(-7.0, 24.0, 8.0));
        assert_eq!(g.world_to_index(&Point3::new(-20.0, 20.0, 5.0)), None);
    }

    #[test]
    fn rejects_bad_definitions() {
        assert!(Grid3::new([0, 1, 1], [1.0; 3], [0.0; 3]).is_err());
        assert!(Grid3::new([1, 1, 1], [1.0, 0.0, 1.0], [0.0; 3]).is_err());
        assert!(Grid3::new([1, 1, 1], [1.0, f64::NAN, 1.0], [0.0; 3]).is_err());
        assert!(Grid3::new([1, 1, 1], [1.0, -1.0, 1.0], [0.0; 3]).is_err());
        assert!(Grid3::new([1, 1, 1], [1.0; 3], [0.0, f64::INFINITY, 0.0]).is_err());
        let err = Grid3::with_max_voxels([10, 10, 10], [1.0; 3], [0.0; 3], 999).unwrap_err();
        assert!(err.to_string().contains("999"), "{err}");
        // overflow of the product must not wrap around
        assert!(Grid3::new([usize::MAX, 2, 2], [1.0; 3], [0.0; 3]).is_err());
        let err = Grid3::from_dicom_orientation(
            [1, 1, 1],
            [1.0; 3],
            [0.0; 3],
            [0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0],
        )
        .unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn volume_checks_shape() {
        let g = grid();
        assert!(Volume::new(g.clone(), Array3::<f32>::zeros((4, 5, 6))).is_ok());
        let err = Volume::new(g, Array3::<f32>::zeros((6, 5, 4))).unwrap_err();
        assert!(matches!(err, DoseError::ShapeMismatch { .. }));
    }

    #[test]
    fn trilinear_is_exact_for_linear_fields() {
        let g = grid();
        let f = |p: &Point3<f64>| 2.0 * p.x - 0.5 * p.y + 0.25 * p.z + 1.0;
        let mut vol = Volume::filled(g.clone(), 0.0f64);
        for ((k, j, i), v) in vol.data_mut().indexed_iter_mut() {
            *v = f(&g.index_to_world([k, j, i]));
        }
        for p in [
            Point3::new(-9.3, 23.1, 9.7),
            Point3::new(-5.0, 28.0, 14.0),
            Point3::new(-10.0, 20.0, 5.0),
        ] {
            let s = vol.sample_trilinear(&p).unwrap();
            assert!((s - f(&p)).abs() < 1e-12, "{s} vs {}", f(&p));
        }
        assert!(
            vol.sample_trilinear(&Point3::new(-11.0, 20.0, 5.0))
                .is_none()
        );
    }

    #[test]
    fn covering_box() {
        let g = Grid3::covering([0.0, 0.0, 0.0], [10.0, 4.5, 2.0], 1.0).unwrap();
        assert_eq!(g.shape(), [3, 6, 11]);
    }
}
