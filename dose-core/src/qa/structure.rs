//! A contoured structure (closed planar polygons on axial planes) and its
//! sub-voxel sampling for dose-volume histograms.
//!
//! **Model.** The structure is the union over its contour planes of prisms:
//! the polygons of a plane at z extruded over that plane's slab, which runs
//! from half-way to the previous plane to half-way to the next one (the end
//! planes extend by half their neighbour spacing on the outer side; a single
//! plane gets a slab of `single_plane_thickness_mm`). Inside a plane, a point
//! belongs to the structure when a ray from it crosses the plane's polygons
//! an odd number of times (even-odd rule: a contour inside another is a hole).
//! This is the convention of the DICOM RTSTRUCT (contours at slice positions,
//! each standing for one slice thickness) without added end caps.
//!
//! **Sampling.** Each slab is cut into sub-slabs and each plane into strips
//! along y: both at the dose grid's voxel-centre planes (between which the
//! trilinear dose is linear along that axis) and at the edges of its box,
//! then split so that there are at least `subdivisions` per voxel. Each strip
//! is cut into columns the same way along x (at voxel centres and box edges,
//! not subdivided: along x the distribution is resolved exactly). The area of
//! the plane's region in every strip × column cell is exact (the polygons'
//! trapezoids clipped to the cell, module `qa::overlap`), so the volumes of the
//! samples add up to [`Structure::volume_cc`] at any grid and any
//! subdivision: small structures on coarse grids keep their volume. Inside a
//! cell, the row through the strip's middle gives the region's exact
//! intervals along x; each interval is a sample holding its share of the
//! cell's area (a cell the row misses is one sample over the whole cell),
//! times each sub-slab's thickness. A sample's dose is spread uniformly
//! between the lowest and highest trilinear dose at the corners and centre of
//! its box (interval × strip × sub-slab): exact for a dose varying along x
//! or z only, and for a mixed gradient, or one along y, an approximation
//! within one sample. So the volume is exact, along x and z the dose
//! distribution is resolved, and along y it is resolved to the strip height
//! (at most a voxel / `subdivisions`, and at most the plane's extent / (4 ×
//! `subdivisions`)). That is what makes small structures
//! (radius of a few voxels) and
//! steep gradients accurate where whole-voxel masks are not.

use crate::error::{DoseError, Result, finite};
use crate::grid::DoseGrid;
use crate::qa::overlap::AreaSweep;
use rayon::prelude::*;

/// A box of a coarse strip × z interval (between the dose grid's voxel
/// centres) whose dose varies by at most this fraction of the grid's maximum
/// is one sample: the uniform spread over its range then differs from the
/// true distribution (a trapezoid-like shape of the same range) by less than
/// 0.5 % of the maximum dose, and on D_x only at second order.
const SMOOTH_SPREAD: f64 = 0.005;

/// Two planes closer than this (mm) are the same plane.
const PLANE_TOLERANCE_MM: f64 = 1e-3;

/// The closed polygons of one axial plane.
#[derive(Clone, Debug, PartialEq)]
pub struct StructurePlane {
    /// Plane position along z, mm.
    pub z_mm: f64,
    /// Polygons as (x, y) vertices in mm, implicitly closed.
    pub polygons: Vec<Vec<[f64; 2]>>,
}

/// A structure made of closed planar contours on axial planes.
#[derive(Clone, Debug, PartialEq)]
pub struct Structure {
    name: String,
    planes: Vec<StructurePlane>,
    slabs: Vec<(f64, f64)>,
}

/// One sample of a structure: a volume whose dose is spread uniformly
/// between two values (the dose varies linearly along the sample), or a
/// single value when both are equal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DoseSample {
    /// Lowest dose of the sample, Gy (0 outside the dose grid).
    pub dose_lo_gy: f64,
    /// Highest dose of the sample, Gy (≥ `dose_lo_gy`).
    pub dose_hi_gy: f64,
    /// Volume of the sample, mm³.
    pub volume_mm3: f64,
    /// True when the sample centre lies outside the dose grid.
    pub outside: bool,
}

impl Structure {
    /// A structure from closed contours given as (x, y, z) points (LPS mm);
    /// each contour must lie on one axial plane (z constant within 1e-3 mm)
    /// and have at least 3 points. Contours on the same plane are grouped.
    /// `single_plane_thickness_mm` is the slab of a structure with one plane.
    pub fn from_contours(
        name: &str,
        contours: &[Vec<[f64; 3]>],
        single_plane_thickness_mm: f64,
    ) -> Result<Self> {
        let mut planes: Vec<StructurePlane> = Vec::new();
        for (c, pts) in contours.iter().enumerate() {
            if pts.len() < 3 {
                return Err(DoseError::OutOfRange {
                    field: format!("structure {name:?} contour {c} point count"),
                    value: pts.len() as f64,
                    reason: "a closed contour needs at least 3 points".into(),
                });
            }
            for p in pts {
                for v in p {
                    finite(&format!("structure {name:?} contour {c} point (mm)"), *v)?;
                }
            }
            let z = pts[0][2];
            if let Some(p) = pts.iter().find(|p| (p[2] - z).abs() > PLANE_TOLERANCE_MM) {
                return Err(DoseError::OutOfRange {
                    field: format!("structure {name:?} contour {c} z (mm)"),
                    value: p[2],
                    reason: format!(
                        "the contour is not axial: its first point is at z = {z} mm; \
                         only contours on axial planes are supported"
                    ),
                });
            }
            let poly: Vec<[f64; 2]> = pts.iter().map(|p| [p[0], p[1]]).collect();
            match planes
                .iter_mut()
                .find(|pl| (pl.z_mm - z).abs() <= PLANE_TOLERANCE_MM)
            {
                Some(pl) => pl.polygons.push(poly),
                None => planes.push(StructurePlane {
                    z_mm: z,
                    polygons: vec![poly],
                }),
            }
        }
        if planes.is_empty() {
            return Err(DoseError::Empty {
                what: "structure contour list",
            });
        }
        planes.sort_by(|a, b| a.z_mm.total_cmp(&b.z_mm));
        let n = planes.len();
        let slabs = if n == 1 {
            let t = finite(
                "single-plane structure thickness (mm)",
                single_plane_thickness_mm,
            )?;
            if t <= 0.0 {
                return Err(DoseError::OutOfRange {
                    field: "single-plane structure thickness (mm)".into(),
                    value: t,
                    reason: "must be > 0".into(),
                });
            }
            vec![(planes[0].z_mm - t / 2.0, planes[0].z_mm + t / 2.0)]
        } else {
            (0..n)
                .map(|i| {
                    let z = planes[i].z_mm;
                    let lo = if i == 0 {
                        z - (planes[1].z_mm - z) / 2.0
                    } else {
                        (planes[i - 1].z_mm + z) / 2.0
                    };
                    let hi = if i == n - 1 {
                        z + (z - planes[n - 2].z_mm) / 2.0
                    } else {
                        (z + planes[i + 1].z_mm) / 2.0
                    };
                    (lo, hi)
                })
                .collect()
        };
        Ok(Self {
            name: name.to_owned(),
            planes,
            slabs,
        })
    }

    /// The structure's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The planes, sorted by z.
    pub fn planes(&self) -> &[StructurePlane] {
        &self.planes
    }

    /// Volume of the structure model, cm³: Σ over planes of the even-odd
    /// area (exact, by the trapezoids of [`AreaSweep`], also for polygons
    /// that overlap or cross themselves) × slab. The samples of
    /// [`Structure::sample`] add up to it.
    pub fn volume_cc(&self) -> f64 {
        self.planes
            .iter()
            .zip(&self.slabs)
            .map(|(pl, (lo, hi))| even_odd_area(&pl.polygons) * (hi - lo))
            .sum::<f64>()
            / 1000.0
    }

    /// Samples the structure on `dose` with `subdivisions` (1–16) samples per
    /// voxel along y and z; see the module documentation.
    pub fn sample(&self, dose: &DoseGrid, subdivisions: usize) -> Result<Vec<DoseSample>> {
        if !(1..=16).contains(&subdivisions) {
            return Err(DoseError::OutOfRange {
                field: "DVH subdivisions per voxel".into(),
                value: subdivisions as f64,
                reason: "must be 1 to 16".into(),
            });
        }
        // boxes whose dose varies by at most this are one sample
        let max_gy = dose.data().iter().fold(0.0f64, |m, &d| m.max(f64::from(d)));
        let smooth_gy = SMOOTH_SPREAD * max_gy;
        let per_plane: Vec<Vec<DoseSample>> = self
            .planes
            .par_iter()
            .zip(self.slabs.par_iter())
            .map(|(plane, &slab)| sample_plane(dose, plane, slab, subdivisions as f64, smooth_gy))
            .collect();
        let out: Vec<DoseSample> = per_plane.into_iter().flatten().collect();
        if out.is_empty() {
            return Err(DoseError::Empty {
                what: "structure sampling (the contours enclose no area)",
            });
        }
        Ok(out)
    }
}

/// A piece of a plane's region in one column of a strip: x interval, the
/// fine strip's y interval, its exact area (mm²) and its column.
#[derive(Clone, Copy, Debug)]
struct Piece {
    x: [f64; 2],
    y: [f64; 2],
    area_mm2: f64,
    column: usize,
}

/// The samples of one plane over its slab [lo, hi] (see the module
/// documentation): coarse strips and z intervals between the dose grid's
/// voxel-centre planes, each cell of a coarse strip × z interval one sample
/// where its dose varies by at most `smooth_gy`, else split into fine
/// strips and sub-slabs (`k` per voxel).
fn sample_plane(
    dose: &DoseGrid,
    plane: &StructurePlane,
    (lo, hi): (f64, f64),
    k: f64,
    smooth_gy: f64,
) -> Vec<DoseSample> {
    let grid = dose.grid();
    let sp = grid.spacing_mm();
    let o = grid.origin_mm();
    let mut out = Vec::new();
    let (mut min, mut max) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in plane.polygons.iter().flatten() {
        for a in 0..2 {
            min[a] = min[a].min(p[a]);
            max[a] = max[a].max(p[a]);
        }
    }
    // z intervals between voxel-centre planes (the dose is linear in z
    // between them) and the box's edges; fine sub-slabs at most dz thick
    let dz = sp.z / k;
    let z_intervals: Vec<(f64, Vec<(f64, f64)>)> = cuts(lo, hi, o.z, sp.z, grid.nz() as f64)
        .windows(2)
        .filter(|w| w[1] - w[0] > 1e-9)
        .map(|w| (w[0], sub_slabs(w[0], w[1], o.z, sp.z, grid.nz() as f64, dz)))
        .collect();
    // columns between the voxel-centre planes along x and the box's edges
    let columns = cuts(min[0], max[0], o.x, sp.x, grid.nx() as f64);
    let n_columns = columns.len() - 1;
    let mut area = vec![0.0; n_columns];
    let mut row_len = vec![0.0; n_columns];
    let mut column_area = vec![0.0; n_columns];
    let mut xs: Vec<f64> = Vec::new();
    let mut pieces: Vec<Piece> = Vec::new();
    let mut sweep = AreaSweep::new(&plane.polygons);
    // fine strips at most dy high and at most 1/(4 k) of the plane's extent
    // (the dose along y is resolved to a fine strip: small structures get
    // finer strips), inside coarse strips cut like the z intervals
    let dy = (sp.y / k).min((max[1] - min[1]) / (4.0 * k));
    for coarse in cuts(min[1], max[1], o.y, sp.y, grid.ny() as f64).windows(2) {
        let (ya_coarse, yb_coarse) = (coarse[0], coarse[1]);
        if yb_coarse - ya_coarse <= 1e-9 {
            continue;
        }
        pieces.clear();
        column_area.iter_mut().for_each(|a| *a = 0.0);
        for (ya, yb) in sub_slabs(ya_coarse, yb_coarse, o.y, sp.y, grid.ny() as f64, dy) {
            area.iter_mut().for_each(|a| *a = 0.0);
            row_len.iter_mut().for_each(|l| *l = 0.0);
            sweep.add_strip(ya, yb, &columns, &mut area);
            crossings(&plane.polygons, 0.5 * (ya + yb), &mut xs);
            let first = pieces.len();
            for pair in xs.chunks_exact(2) {
                let (xa, xb) = (pair[0], pair[1]);
                let mut c = columns.partition_point(|&x| x <= xa).saturating_sub(1);
                let mut x0 = xa;
                while x0 < xb && c < n_columns {
                    let x1 = columns[c + 1].min(xb);
                    if x1 > x0 {
                        pieces.push(Piece {
                            x: [x0, x1],
                            y: [ya, yb],
                            area_mm2: 0.0,
                            column: c,
                        });
                        row_len[c] += x1 - x0;
                    }
                    x0 = x1;
                    c += 1;
                }
            }
            // each piece of the row stands for its share of its column's
            // exact area in the strip
            for p in &mut pieces[first..] {
                p.area_mm2 = (p.x[1] - p.x[0]) * area[p.column] / row_len[p.column];
            }
            for c in 0..n_columns {
                column_area[c] += area[c];
                // a sliver of a column the row missed: the whole cell
                if row_len[c] == 0.0 && area[c] > 0.0 {
                    pieces.push(Piece {
                        x: [columns[c].max(min[0]), columns[c + 1].min(max[0])],
                        y: [ya, yb],
                        area_mm2: area[c],
                        column: c,
                    });
                }
            }
        }
        pieces.sort_by_key(|p| p.column);
        for group in pieces.chunk_by(|a, b| a.column == b.column) {
            let c = group[0].column;
            let x = group
                .iter()
                .fold([f64::INFINITY, f64::NEG_INFINITY], |x, p| {
                    [x[0].min(p.x[0]), x[1].max(p.x[1])]
                });
            for (za, fine) in &z_intervals {
                let zb = fine.last().map_or(*za, |s| s.1);
                let y = [ya_coarse, yb_coarse];
                let volume_mm3 = column_area[c] * (zb - za);
                let Some(cell) = DoseCell::around(dose, x, y, [*za, zb]) else {
                    out.push(DoseSample {
                        dose_lo_gy: 0.0,
                        dose_hi_gy: 0.0,
                        volume_mm3,
                        outside: true,
                    });
                    continue;
                };
                let (a, b) = cell.range(x, y, [*za, zb]);
                if b - a <= smooth_gy {
                    out.push(DoseSample {
                        dose_lo_gy: a,
                        dose_hi_gy: b,
                        volume_mm3,
                        outside: false,
                    });
                    continue;
                }
                for p in group {
                    if p.area_mm2 <= 0.0 {
                        continue;
                    }
                    for &(za, zb) in fine {
                        let (a, b) = cell.range(p.x, p.y, [za, zb]);
                        out.push(DoseSample {
                            dose_lo_gy: a,
                            dose_hi_gy: b,
                            volume_mm3: p.area_mm2 * (zb - za),
                            outside: false,
                        });
                    }
                }
            }
        }
    }
    out.retain(|s| s.volume_mm3 > 0.0);
    out
}

/// The trilinear dose of one cell of the dose grid (between neighbouring
/// voxel centres, or between the outermost centres and the box's edges,
/// where the dose is held constant as [`Volume::sample_trilinear`] holds it).
///
/// [`Volume::sample_trilinear`]: crate::grid::Volume::sample_trilinear
struct DoseCell {
    /// Corner doses, index dx + 2 dy + 4 dz.
    v: [f64; 8],
    /// Continuous voxel coordinate of the cell's lower corner, per axis.
    lo: [f64; 3],
    origin: [f64; 3],
    inv_spacing: [f64; 3],
}

impl DoseCell {
    /// The cell holding the centre of the box x × y × z, or None when the
    /// centre lies outside the dose grid's box.
    fn around(dose: &DoseGrid, x: [f64; 2], y: [f64; 2], z: [f64; 2]) -> Option<Self> {
        let grid = dose.grid();
        let (o, sp) = (grid.origin_mm(), grid.spacing_mm());
        let origin = [o.x, o.y, o.z];
        let inv_spacing = [1.0 / sp.x, 1.0 / sp.y, 1.0 / sp.z];
        let centre = [
            0.5 * (x[0] + x[1]),
            0.5 * (y[0] + y[1]),
            0.5 * (z[0] + z[1]),
        ];
        let [nz, ny, nx] = grid.shape();
        let n = [nx, ny, nz];
        let mut lo = [0.0; 3];
        let mut idx = [[0usize; 2]; 3];
        for a in 0..3 {
            let c = (centre[a] - origin[a]) * inv_spacing[a];
            if !(c >= -0.5 && c <= n[a] as f64 - 0.5) {
                return None;
            }
            let i0 = c.floor().clamp(0.0, (n[a] - 1) as f64) as usize;
            idx[a] = [i0, (i0 + 1).min(n[a] - 1)];
            lo[a] = i0 as f64;
        }
        let data = dose.data();
        let v = std::array::from_fn(|k| {
            let (i, j, l) = (idx[0][k & 1], idx[1][(k >> 1) & 1], idx[2][(k >> 2) & 1]);
            f64::from(data[[l, j, i]])
        });
        Some(Self {
            v,
            lo,
            origin,
            inv_spacing,
        })
    }

    /// The lowest and highest dose over the box x × y × z inside the cell:
    /// those at its corners (a multilinear function takes its extremes over
    /// a box at the box's corners).
    fn range(&self, x: [f64; 2], y: [f64; 2], z: [f64; 2]) -> (f64, f64) {
        let t = |a: usize, u: f64| {
            ((u - self.origin[a]) * self.inv_spacing[a] - self.lo[a]).clamp(0.0, 1.0)
        };
        let (tx, ty, tz) = (x.map(|u| t(0, u)), y.map(|u| t(1, u)), z.map(|u| t(2, u)));
        let v = &self.v;
        let (mut a, mut b) = (f64::INFINITY, f64::NEG_INFINITY);
        for &fz in &tz {
            for &fy in &ty {
                // the dose along x at this (y, z): linear between two values
                let at = |dz: usize| {
                    let e0 = v[4 * dz] + (v[4 * dz + 2] - v[4 * dz]) * fy;
                    let e1 = v[4 * dz + 1] + (v[4 * dz + 3] - v[4 * dz + 1]) * fy;
                    (e0, e1)
                };
                let (p0, p1) = at(0);
                let (q0, q1) = at(1);
                let (e0, e1) = (p0 + (q0 - p0) * fz, p1 + (q1 - p1) * fz);
                for &fx in &tx {
                    let d = e0 + (e1 - e0) * fx;
                    a = a.min(d);
                    b = b.max(d);
                }
            }
        }
        (a, b)
    }
}

/// `lo`, the dose grid's voxel-centre planes o + n·s and the edges of its
/// box (o − s/2, o + (n − ½)·s) strictly between `lo` and `hi`, and `hi`,
/// in increasing order.
fn cuts(lo: f64, hi: f64, o: f64, s: f64, n: f64) -> Vec<f64> {
    let mut cuts = vec![lo];
    let mut i = ((lo - o) / s).floor() + 1.0;
    while o + i * s < hi {
        if o + i * s > lo {
            cuts.push(o + i * s);
        }
        i += 1.0;
    }
    for edge in [o - s / 2.0, o + (n - 0.5) * s] {
        if edge > lo && edge < hi {
            cuts.push(edge);
        }
    }
    cuts.push(hi);
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    cuts
}

/// The sub-slabs of the slab [lo, hi]: cut at the dose grid's voxel-centre
/// planes (between which the dose is linear in z) and at the edges of its
/// box, each part split into pieces no thicker than `dz`.
fn sub_slabs(lo: f64, hi: f64, oz: f64, sz: f64, nz: f64, dz: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for w in cuts(lo, hi, oz, sz, nz).windows(2) {
        let len = w[1] - w[0];
        if len <= 1e-9 {
            continue;
        }
        let m = (len / dz).ceil().max(1.0);
        let t = len / m;
        for i in 0..m as usize {
            out.push((w[0] + i as f64 * t, w[0] + (i as f64 + 1.0) * t));
        }
    }
    out
}

/// Sorted x positions where the horizontal line at `y` crosses the polygons'
/// edges (each edge on its half-open span [min y, max y)); pairs of them bound
/// the inside intervals by the even-odd rule.
fn crossings(polygons: &[Vec<[f64; 2]>], y: f64, xs: &mut Vec<f64>) {
    xs.clear();
    for poly in polygons {
        let n = poly.len();
        for e in 0..n {
            let (a, b) = (poly[e], poly[(e + 1) % n]);
            let (lo, hi) = if a[1] <= b[1] { (a, b) } else { (b, a) };
            if y >= lo[1] && y < hi[1] {
                let t = (y - lo[1]) / (hi[1] - lo[1]);
                xs.push(lo[0] + t * (hi[0] - lo[0]));
            }
        }
    }
    xs.sort_by(f64::total_cmp);
}

/// Area (mm²) of the region inside an odd number of the polygons: one strip
/// over the polygons' extent, one column.
fn even_odd_area(polygons: &[Vec<[f64; 2]>]) -> f64 {
    let (mut min, mut max) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in polygons.iter().flatten() {
        for a in 0..2 {
            min[a] = min[a].min(p[a]);
            max[a] = max[a].max(p[a]);
        }
    }
    if !(max[0] > min[0] && max[1] > min[1]) {
        return 0.0;
    }
    let mut area = [0.0];
    AreaSweep::new(polygons).add_strip(min[1], max[1], &[min[0], max[0]], &mut area);
    area[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{Grid3, Volume};

    fn square(c: [f64; 2], half: f64, z: f64) -> Vec<[f64; 3]> {
        vec![
            [c[0] - half, c[1] - half, z],
            [c[0] + half, c[1] - half, z],
            [c[0] + half, c[1] + half, z],
            [c[0] - half, c[1] + half, z],
        ]
    }

    #[test]
    fn box_with_a_hole_has_the_exact_volume_and_samples_sum_to_it() {
        // 20 × 20 mm squares with 10 × 10 mm holes on planes z = 0, 2, 4 mm:
        // slabs of 2 mm, volume 3 × 2 × (400 − 100) = 1800 mm³
        let mut cs = Vec::new();
        for z in [0.0, 2.0, 4.0] {
            cs.push(square([0.3, -0.2], 10.0, z));
            cs.push(square([0.3, -0.2], 5.0, z));
        }
        let s = Structure::from_contours("box", &cs, 2.0).unwrap();
        assert!((s.volume_cc() - 1.8).abs() < 1e-12);
        let grid = Grid3::new([10, 30, 30], [1.3, 1.1, 0.9], [-16.0, -16.0, -2.0]).unwrap();
        let dose = Volume::filled(grid, 1.0f32);
        for k in [1, 3] {
            let samples = s.sample(&dose, k).unwrap();
            // exact areas per cell: the samples add up to the model's volume
            let v: f64 = samples.iter().map(|s| s.volume_mm3).sum();
            assert!((v - 1800.0).abs() < 1e-9, "{k}: {v}");
            assert!(
                samples
                    .iter()
                    .all(|s| s.dose_lo_gy == 1.0 && s.dose_hi_gy == 1.0 && !s.outside)
            );
        }
    }

    #[test]
    fn overlapping_contours_have_the_even_odd_volume_in_the_model_and_samples() {
        // two 10 mm squares overlapping by 5 × 5 mm on one 2 mm plane: the
        // even-odd region is 100 + 100 − 2 × 25 = 150 mm², 300 mm³
        let cs = vec![square([0.0, 0.0], 5.0, 0.0), square([5.0, 5.0], 5.0, 0.0)];
        let s = Structure::from_contours("overlap", &cs, 2.0).unwrap();
        assert!((s.volume_cc() - 0.3).abs() < 1e-12, "{}", s.volume_cc());
        let grid = Grid3::new([3, 20, 20], [1.3, 1.1, 0.9], [-8.0, -8.0, -1.0]).unwrap();
        let samples = s.sample(&Volume::filled(grid, 1.0f32), 2).unwrap();
        let v: f64 = samples.iter().map(|s| s.volume_mm3).sum();
        assert!((v - 300.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn invalid_contours_are_errors() {
        assert!(Structure::from_contours("x", &[], 2.0).is_err());
        assert!(Structure::from_contours("x", &[vec![[0.0; 3], [1.0, 0.0, 0.0]]], 2.0).is_err());
        let tilted = vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]];
        let e = Structure::from_contours("x", &[tilted], 2.0).unwrap_err();
        assert!(e.to_string().contains("not axial"), "{e}");
        assert!(Structure::from_contours("x", &[square([0.0; 2], 1.0, 0.0)], 0.0).is_err());
    }
}
