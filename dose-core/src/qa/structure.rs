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
//! **Sampling.** Each slab is cut into sub-slabs and each plane into rows,
//! `subdivisions` per dose-grid voxel along y and z (at least one sub-slab per
//! slab). Along a row the inside intervals are exact (polygon edge crossings)
//! and are cut at the dose grid's voxel centres (and the edges of its box),
//! between which the trilinear dose is linear in x; sub-slabs are cut the
//! same way along z. Every piece × row × sub-slab is one sample with its exact
//! volume, whose dose is spread uniformly between the lowest and highest
//! trilinear dose at its corners (exact for a dose varying along x or z only;
//! for a mixed gradient the true distribution is a trapezoid and the spread is
//! an approximation within one sample). So along x and z both the volume and
//! the dose distribution are resolved, and along y they converge with the
//! midpoint rule (error ∝ step²). That is what makes small structures
//! (radius of a few voxels) and steep gradients accurate where whole-voxel
//! masks are not.

use crate::error::{DoseError, Result, finite};
use crate::grid::DoseGrid;

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

    /// Volume of the structure model, cm³: Σ over planes of the even-odd area
    /// (exact, by the shoelace formula with the parity of nesting) × slab.
    pub fn volume_cc(&self) -> f64 {
        self.planes
            .iter()
            .zip(&self.slabs)
            .map(|(pl, (lo, hi))| even_odd_area(&pl.polygons) * (hi - lo))
            .sum::<f64>()
            / 1000.0
    }

    /// Samples the structure on `dose` with `subdivisions` (1–16) samples per
    /// voxel along each axis; see the module documentation.
    pub fn sample(&self, dose: &DoseGrid, subdivisions: usize) -> Result<Vec<DoseSample>> {
        if !(1..=16).contains(&subdivisions) {
            return Err(DoseError::OutOfRange {
                field: "DVH subdivisions per voxel".into(),
                value: subdivisions as f64,
                reason: "must be 1 to 16".into(),
            });
        }
        let grid = dose.grid();
        let sp = grid.spacing_mm();
        let o = grid.origin_mm();
        let k = subdivisions as f64;
        let (dy, dz) = (sp.y / k, sp.z / k);
        let nx = grid.nx() as f64;
        let mut out = Vec::new();
        let mut xs: Vec<f64> = Vec::new();
        for (plane, &(lo, hi)) in self.planes.iter().zip(&self.slabs) {
            let sub_slabs = sub_slabs(lo, hi, o.z, sp.z, grid.nz() as f64, dz);
            let (ymin, ymax) = plane
                .polygons
                .iter()
                .flatten()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                    (a.min(p[1]), b.max(p[1]))
                });
            // rows at the centres of sub-cells of a lattice aligned with the
            // dose grid's voxel boundaries: y = o.y − sy/2 + (q + ½)·dy
            let y_first = ((ymin - (o.y - sp.y / 2.0)) / dy - 0.5).ceil() as i64;
            let y_last = ((ymax - (o.y - sp.y / 2.0)) / dy - 0.5).floor() as i64;
            for q in y_first..=y_last {
                let y = o.y - sp.y / 2.0 + (q as f64 + 0.5) * dy;
                crossings(&plane.polygons, y, &mut xs);
                for pair in xs.chunks_exact(2) {
                    let (xa, xb) = (pair[0], pair[1]);
                    // cut [xa, xb] at the sub-voxel boundaries x = o.x − sx/2 + n·dx
                    // cuts: voxel centres x = o.x + n·sx, and the box edges
                    let (box_lo, box_hi) = (o.x - sp.x / 2.0, o.x + (nx - 0.5) * sp.x);
                    let mut x0 = xa;
                    while x0 < xb {
                        let n = ((x0 - o.x) / sp.x).floor() + 1.0;
                        let mut x1 = (o.x + n * sp.x).min(xb);
                        for edge in [box_lo, box_hi] {
                            if edge > x0 && edge < x1 {
                                x1 = edge;
                            }
                        }
                        if x1 <= x0 {
                            // x0 sits on a cut up to rounding: step past it
                            x1 = (o.x + (n + 1.0) * sp.x).min(xb);
                        }
                        let len = x1 - x0;
                        for &(za, zb) in &sub_slabs {
                            let centre = [0.5 * (x0 + x1), y, 0.5 * (za + zb)];
                            let (a, b, outside) = match dose.sample_trilinear(&centre.into()) {
                                None => (0.0, 0.0, true),
                                Some(v) => {
                                    let corners = [[x0, za], [x1, za], [x0, zb], [x1, zb]]
                                        .map(|[x, z]| dose.sample_trilinear(&[x, y, z].into()));
                                    let (mut a, mut b) = (v, v);
                                    for c in corners.into_iter().flatten() {
                                        a = a.min(c);
                                        b = b.max(c);
                                    }
                                    (a, b, false)
                                }
                            };
                            out.push(DoseSample {
                                dose_lo_gy: a,
                                dose_hi_gy: b,
                                volume_mm3: len * dy * (zb - za),
                                outside,
                            });
                        }
                        x0 = x1;
                    }
                }
            }
        }
        if out.is_empty() {
            return Err(DoseError::Empty {
                what: "structure sampling (the contours enclose no area on the sampling rows)",
            });
        }
        Ok(out)
    }
}

/// The sub-slabs of the slab [lo, hi]: cut at the dose grid's voxel-centre
/// planes (between which the dose is linear in z) and at the edges of its
/// box, each part split into pieces no thicker than `dz`.
fn sub_slabs(lo: f64, hi: f64, oz: f64, sz: f64, nz: f64, dz: f64) -> Vec<(f64, f64)> {
    let mut cuts = vec![lo];
    let first = ((lo - oz) / sz).floor() + 1.0;
    let mut n = first;
    while oz + n * sz < hi {
        cuts.push(oz + n * sz);
        n += 1.0;
    }
    for edge in [oz - sz / 2.0, oz + (nz - 0.5) * sz] {
        if edge > lo && edge < hi {
            cuts.push(edge);
        }
    }
    cuts.push(hi);
    cuts.sort_by(f64::total_cmp);
    let mut out = Vec::new();
    for w in cuts.windows(2) {
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

/// Area (mm²) of the region inside an odd number of the polygons.
///
/// For non-intersecting polygons, the even-odd region's area is the sum of
/// the polygons' areas, each signed by the parity of the number of other
/// polygons that contain it (a hole subtracts, an island in a hole adds).
fn even_odd_area(polygons: &[Vec<[f64; 2]>]) -> f64 {
    polygons
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let depth = polygons
                .iter()
                .enumerate()
                .filter(|(j, q)| *j != i && contains(q, p[0]))
                .count();
            let a = shoelace(p).abs();
            if depth % 2 == 0 { a } else { -a }
        })
        .sum()
}

fn shoelace(p: &[[f64; 2]]) -> f64 {
    let n = p.len();
    0.5 * (0..n)
        .map(|i| {
            let (a, b) = (p[i], p[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum::<f64>()
}

fn contains(poly: &[[f64; 2]], pt: [f64; 2]) -> bool {
    let mut xs = Vec::new();
    crossings(std::slice::from_ref(&poly.to_vec()), pt[1], &mut xs);
    xs.iter().filter(|&&x| x > pt[0]).count() % 2 == 1
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
            let v: f64 = samples.iter().map(|s| s.volume_mm3).sum();
            // along x the intervals are exact; along y the area counts the
            // rows whose centres fall inside each square's [min, max) span
            let row = 1.1 / k as f64;
            let rows = |lo: f64, hi: f64| {
                (0..1000)
                    .map(|q| -16.0 - 0.55 + (q as f64 + 0.5) * row)
                    .filter(|y| *y >= lo && *y < hi)
                    .count() as f64
            };
            let want = 3.0 * 2.0 * row * (20.0 * rows(-10.2, 9.8) - 10.0 * rows(-5.2, 4.8));
            assert!((v - want).abs() < 1e-9, "{k}: {v} vs {want}");
            assert!((v - 1800.0).abs() < 6.0 * 30.0 * row, "{k}: {v}");
            assert!(
                samples
                    .iter()
                    .all(|s| s.dose_lo_gy == 1.0 && s.dose_hi_gy == 1.0 && !s.outside)
            );
        }
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
