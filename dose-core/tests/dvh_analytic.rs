//! DVHs of analytic structures in analytic dose fields, after the DVH
//! verification cases of Nelms et al., Med Phys 42 (2015) 4435: spheres and
//! cylinders contoured on axial planes, in linear dose gradients, on a dose
//! grid whose voxels (2.5 mm) are coarse compared with the smaller structures.
//!
//! Closed forms. In D = D₀ + g·(u − c) along an axis u, the part of a sphere of
//! radius R centred at c receiving at least D is a cap of height
//! h = R − (D − D₀)/g, of volume π h² (3R − h)/3; D_x follows by inverting it.
//! The mean dose of a sphere in a linear field is D₀. Trilinear interpolation
//! reproduces a linear field exactly, so every difference comes from the
//! structure's sampling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::f64::consts::PI;

use isodose_core::qa::{Dvh, Structure};
use isodose_core::{DoseGrid, Grid3, Volume};
use ndarray::Array3;

fn linear_dose(grid: &Grid3, d0: f64, g: [f64; 3], c: [f64; 3]) -> DoseGrid {
    let data = Array3::from_shape_fn((grid.nz(), grid.ny(), grid.nx()), |(k, j, i)| {
        let p = grid.index_to_world([k, j, i]);
        (d0 + g[0] * (p.x - c[0]) + g[1] * (p.y - c[1]) + g[2] * (p.z - c[2])) as f32
    });
    Volume::new(grid.clone(), data).unwrap()
}

/// Circle of radius `rho` as an `n`-gon with the circle's area.
fn circle(c: [f64; 2], rho: f64, z: f64, n: usize) -> Vec<[f64; 3]> {
    let t = 2.0 * PI / n as f64;
    let r = rho * (t / t.sin()).sqrt();
    (0..n)
        .map(|i| {
            let a = i as f64 * t;
            [c[0] + r * a.cos(), c[1] + r * a.sin(), z]
        })
        .collect()
}

/// A sphere contoured on planes `h` apart, the first half a plane spacing
/// inside the south pole (as a CT whose slices straddle the sphere).
fn sphere(c: [f64; 3], radius: f64, h: f64) -> Structure {
    let n = (2.0 * radius / h).round() as usize;
    let contours: Vec<_> = (0..n)
        .map(|i| {
            let z = c[2] - radius + (i as f64 + 0.5) * h;
            let rho = (radius * radius - (z - c[2]).powi(2)).sqrt();
            circle([c[0], c[1]], rho, z, 256)
        })
        .collect();
    Structure::from_contours("sphere", &contours, h).unwrap()
}

fn cap_fraction(t: f64) -> f64 {
    // fraction of the unit sphere with u ≥ t (t in [-1, 1])
    let h = 1.0 - t.clamp(-1.0, 1.0);
    PI * h * h * (3.0 - h) / 3.0 / (4.0 * PI / 3.0)
}

/// Analytic D_x of a sphere of radius R in D₀ + g·u: solve cap_fraction(t) = x.
fn analytic_dx(x: f64, d0: f64, g_times_r: f64) -> f64 {
    let (mut lo, mut hi) = (-1.0f64, 1.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if cap_fraction(mid) > x {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    d0 + g_times_r * 0.5 * (lo + hi)
}

/// D_x of the contoured sphere's own model (discs of radius ρᵢ over slabs
/// [zᵢ − h/2, zᵢ + h/2], z from the centre) in the dose D₀ + g·z: the volume
/// above height u is Σ π ρᵢ² · max(0, bᵢ − max(aᵢ, u)), inverted by bisection.
fn slab_model_dx(x: f64, radius: f64, h: f64, d0: f64, g: f64) -> f64 {
    let discs = sphere_discs(radius, h);
    let above = |u: f64| -> f64 {
        discs
            .iter()
            .map(|&(z, r2)| PI * r2 * (z + h / 2.0 - (z - h / 2.0).max(u)).max(0.0))
            .sum()
    };
    invert(above, x, -radius - h, radius + h, d0, g)
}

/// The discs of [`sphere`]'s contour stack: (plane z from the centre, ρ²).
fn sphere_discs(radius: f64, h: f64) -> Vec<(f64, f64)> {
    let n = (2.0 * radius / h).round() as usize;
    (0..n)
        .map(|i| {
            let z = -radius + (i as f64 + 0.5) * h;
            (z, radius * radius - z * z)
        })
        .collect()
}

/// D_x of the contoured sphere's own model in D₀ + g·u along `axis` (0, 1:
/// in-plane, each disc's circular segment beyond u; 2: across the planes,
/// [`slab_model_dx`]).
fn contour_stack_dx(x: f64, radius: f64, h: f64, d0: f64, g: f64, axis: usize) -> f64 {
    if axis == 2 {
        return slab_model_dx(x, radius, h, d0, g);
    }
    let discs = sphere_discs(radius, h);
    let above = |u: f64| -> f64 {
        discs
            .iter()
            .map(|&(_, r2)| segment_area(u, r2.sqrt()) * h)
            .sum()
    };
    invert(above, x, -radius - 1.0, radius + 1.0, d0, g)
}

fn grid_around(c: [f64; 3], radius: f64) -> Grid3 {
    let s = 2.5;
    let n = ((2.0 * radius + 10.0) / s).ceil() as usize + 1;
    let o = [
        c[0] - radius - 5.0 + 0.37,
        c[1] - radius - 5.0 - 0.81,
        c[2] - radius - 5.0 + 1.1,
    ];
    Grid3::new([n, n, n], [s; 3], o).unwrap()
}

#[test]
fn spheres_3_to_30_mm_in_linear_gradients() {
    // radius (mm), contour spacing (mm): the spacing is what a CT would use for
    // a structure of that size, fine enough that the slab model of the
    // sphere is within 1 % (its error is h²/(8R²) by the midpoint rule)
    for (radius, h) in [
        (3.0, 0.5),
        (5.0, 1.0),
        (10.0, 2.0),
        (20.0, 3.0),
        (30.0, 3.0),
    ] {
        let c = [3.3, -12.6, 40.2];
        let s = sphere(c, radius, h);
        let exact_cc = 4.0 / 3.0 * PI * radius.powi(3) / 1000.0;
        let grid = grid_around(c, radius);
        // ±50 % of the central dose across the sphere, along x (in-plane) and
        // along z (across the contour planes)
        for axis in [0usize, 2] {
            let d0 = 10.0;
            let mut g = [0.0; 3];
            g[axis] = 5.0 / radius;
            let dose = linear_dose(&grid, d0, g, c);
            let dvh = Dvh::from_structure(&dose, &s, 4).unwrap();
            let v = dvh.volume_cc();
            assert!(
                (v / exact_cc - 1.0).abs() < 0.01,
                "R = {radius} mm: volume {v} cm³, analytic {exact_cc}"
            );
            assert!(
                (dvh.mean() - d0).abs() < 0.01 * d0,
                "R = {radius}: mean {}",
                dvh.mean()
            );
            for x in [0.02, 0.05, 0.5, 0.95, 0.98] {
                let got = dvh.dose_at_fraction(x).unwrap();
                let sphere_dx = analytic_dx(x, d0, 5.0);
                if axis == 0 {
                    assert!(
                        (got / sphere_dx - 1.0).abs() < 0.01,
                        "R = {radius} mm, gradient along x: D{x} = {got}, analytic {sphere_dx}"
                    );
                } else {
                    // along z the contoured sphere is a stack of discs: compare
                    // with that model's own closed form within 1 %, and with
                    // the ideal sphere within 2.5 % (the end slabs' difference)
                    let model_dx = slab_model_dx(x, radius, h, d0, 5.0 / radius);
                    assert!(
                        (got / model_dx - 1.0).abs() < 0.01,
                        "R = {radius} mm, gradient along z: D{x} = {got}, slab model {model_dx}"
                    );
                    assert!(
                        (got / sphere_dx - 1.0).abs() < 0.025,
                        "R = {radius} mm, gradient along z: D{x} = {got}, sphere {sphere_dx}"
                    );
                }
            }
            assert_eq!(dvh.outside_cc(), 0.0);
        }
    }
}

#[test]
fn whole_voxel_masks_miss_small_spheres_that_sampling_gets_right() {
    // the same 3 mm sphere as a mask of voxel centres on the 2.5 mm grid:
    // its volume is a multiple of 15.625 mm³, far from 113.1 mm³
    let c = [3.3, -12.6, 40.2];
    let grid = grid_around(c, 3.0);
    let mask = Array3::from_shape_fn((grid.nz(), grid.ny(), grid.nx()), |(k, j, i)| {
        let p = grid.index_to_world([k, j, i]);
        (p - nalgebra::Point3::from(c)).norm() <= 3.0
    });
    let dose = linear_dose(&grid, 10.0, [1.0, 0.0, 0.0], c);
    let exact = 4.0 / 3.0 * PI * 27.0 / 1000.0;
    let voxel = Dvh::from_mask(&dose, &mask).unwrap().volume_cc();
    let sampled = Dvh::from_structure(&dose, &sphere(c, 3.0, 0.5), 4)
        .unwrap()
        .volume_cc();
    assert!(
        (voxel / exact - 1.0).abs() > 0.05,
        "mask volume {voxel} vs {exact}"
    );
    assert!((sampled / exact - 1.0).abs() < 0.01);
}

#[test]
fn cylinder_along_z_and_structure_outside_the_grid() {
    // cylinder of radius 8 mm, planes every 2 mm from z = 0 to 20: the slab
    // model is a cylinder of height 22 mm (each plane owns 2 mm)
    let contours: Vec<_> = (0..=10)
        .map(|i| circle([0.0, 0.0], 8.0, 2.0 * i as f64, 256))
        .collect();
    let s = Structure::from_contours("cyl", &contours, 2.0).unwrap();
    let exact = PI * 64.0 * 22.0 / 1000.0;
    assert!((s.volume_cc() / exact - 1.0).abs() < 1e-12);
    // dose grid with centres from z = -1 to 9 mm: its box ends half a voxel
    // beyond, at 10.25 mm, so 11.25 of the 22 mm are inside
    let grid = Grid3::new([5, 9, 9], [2.5; 3], [-10.0, -10.0, -1.0]).unwrap();
    let dose = linear_dose(&grid, 2.0, [0.0; 3], [0.0; 3]);
    let dvh = Dvh::from_structure(&dose, &s, 4).unwrap();
    assert!((dvh.volume_cc() / exact - 1.0).abs() < 0.01);
    let inside = PI * 64.0 * 11.25 / 1000.0;
    assert!(
        ((dvh.volume_cc() - dvh.outside_cc()) / inside - 1.0).abs() < 0.02,
        "inside {} vs {inside}",
        dvh.volume_cc() - dvh.outside_cc()
    );
    // outside counts as 0 Gy: V(1 Gy) is the inside volume
    assert!((dvh.volume_at_least_cc(1.0) / inside - 1.0).abs() < 0.02);
}

/// Area of the part of a disc of radius `rho` centred at 0 with x ≥ s.
fn segment_area(s: f64, rho: f64) -> f64 {
    if s >= rho {
        0.0
    } else if s <= -rho {
        PI * rho * rho
    } else {
        rho * rho * (s / rho).acos() - s * (rho * rho - s * s).sqrt()
    }
}

/// The dose D₀ + g·u at which `above(u)` (a decreasing volume) equals the
/// fraction `x` of `above(lo)`, by bisection on u in [lo, hi].
fn invert(above: impl Fn(f64) -> f64, x: f64, lo: f64, hi: f64, d0: f64, g: f64) -> f64 {
    let total = above(lo);
    let (mut a, mut b) = (lo, hi);
    for _ in 0..100 {
        let mid = 0.5 * (a + b);
        if above(mid) > x * total {
            a = mid;
        } else {
            b = mid;
        }
    }
    d0 + g * 0.5 * (a + b)
}

/// Cones (Nelms et al. 2015 also use cones: a structure whose cross-section
/// shrinks to a point, where both the contouring and the sampling are
/// tested at once), base radius Rb on z = z₀, apex at z₀ + H, contoured on
/// axial planes h apart, in linear gradients along the axis and across it.
/// Along the axis the ideal cone has the closed form V(z ≥ u) / V =
/// (1 − u/H)³, so D_x = D₀ + g·H·(1 − x^⅓); across it, the part of each
/// disc beyond x = s is a circular segment, integrated over the height. The
/// structure isodose samples is the stack of discs (each plane owns a slab
/// of height h): its DVH must equal that model's within 1 %, and the ideal
/// cone's within the model's own difference (a few %).
#[test]
fn cones_in_linear_gradients() {
    for (rb, height, h) in [(10.0f64, 12.0f64, 1.0f64), (20.0, 24.0, 2.0)] {
        let base = [-4.2, 7.9, -20.3];
        let n = (height / h).round() as usize;
        let planes: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let z = (i as f64 + 0.5) * h;
                (z, rb * (1.0 - z / height))
            })
            .collect();
        let contours: Vec<_> = planes
            .iter()
            .map(|&(z, rho)| circle([base[0], base[1]], rho, base[2] + z, 256))
            .collect();
        let s = Structure::from_contours("cone", &contours, h).unwrap();
        let ideal_cc = PI * rb * rb * height / 3.0 / 1000.0;
        let model_cc: f64 = planes
            .iter()
            .map(|&(_, rho)| PI * rho * rho * h)
            .sum::<f64>()
            / 1000.0;
        assert!((s.volume_cc() / model_cc - 1.0).abs() < 1e-9);
        let s_grid = 2.5;
        let grid = Grid3::new(
            [
                ((height + 10.0) / s_grid).ceil() as usize + 1,
                ((2.0 * rb + 10.0) / s_grid).ceil() as usize + 1,
                ((2.0 * rb + 10.0) / s_grid).ceil() as usize + 1,
            ],
            [s_grid; 3],
            [
                base[0] - rb - 5.0 + 0.3,
                base[1] - rb - 5.0 - 0.6,
                base[2] - 5.0 + 0.9,
            ],
        )
        .unwrap();
        let d0 = 10.0;
        // along the axis: D = d0 + g (z − z_base), from d0 to d0 + 5
        let g = 5.0 / height;
        let dose = linear_dose(&grid, d0, [0.0, 0.0, g], base);
        let dvh = Dvh::from_structure(&dose, &s, 4).unwrap();
        assert!(
            (dvh.volume_cc() / model_cc - 1.0).abs() < 0.01,
            "cone {rb}/{height}: volume {} cm³, disc model {model_cc}, ideal {ideal_cc}",
            dvh.volume_cc()
        );
        assert!((dvh.volume_cc() / ideal_cc - 1.0).abs() < 0.02);
        // mean height of the ideal cone is H/4
        assert!(
            (dvh.mean() / (d0 + g * height / 4.0) - 1.0).abs() < 0.01,
            "mean {}",
            dvh.mean()
        );
        let discs_above = |u: f64| -> f64 {
            planes
                .iter()
                .map(|&(z, rho)| PI * rho * rho * ((z + h / 2.0) - (z - h / 2.0).max(u)).max(0.0))
                .sum()
        };
        for x in [0.02, 0.05, 0.5, 0.95, 0.98] {
            let got = dvh.dose_at_fraction(x).unwrap();
            let model = invert(discs_above, x, -h, height + h, d0, g);
            let ideal = d0 + g * height * (1.0 - x.cbrt());
            assert!(
                (got / model - 1.0).abs() < 0.01,
                "cone {rb}/{height}, gradient along z: D{x} = {got}, disc model {model}"
            );
            assert!(
                (got / ideal - 1.0).abs() < 0.03,
                "cone {rb}/{height}, gradient along z: D{x} = {got}, ideal cone {ideal}"
            );
        }
        // across the axis: D = d0 + g (x − x_base), from d0 − 5 to d0 + 5
        let g = 5.0 / rb;
        let dose = linear_dose(&grid, d0, [g, 0.0, 0.0], base);
        let dvh = Dvh::from_structure(&dose, &s, 4).unwrap();
        assert!((dvh.mean() / d0 - 1.0).abs() < 0.01, "mean {}", dvh.mean());
        let model_above = |u: f64| -> f64 {
            planes
                .iter()
                .map(|&(_, rho)| h * segment_area(u, rho))
                .sum()
        };
        // the ideal cone: a fine midpoint rule over z
        let ideal_above = |u: f64| -> f64 {
            let m = 4000;
            (0..m)
                .map(|i| {
                    let z = (i as f64 + 0.5) * height / m as f64;
                    segment_area(u, rb * (1.0 - z / height)) * height / m as f64
                })
                .sum()
        };
        for x in [0.02, 0.05, 0.5, 0.95, 0.98] {
            let got = dvh.dose_at_fraction(x).unwrap();
            let model = invert(model_above, x, -rb, rb, d0, g);
            let ideal = invert(ideal_above, x, -rb, rb, d0, g);
            assert!(
                (got / model - 1.0).abs() < 0.01,
                "cone {rb}/{height}, gradient along x: D{x} = {got}, disc model {model}"
            );
            assert!(
                (got / ideal - 1.0).abs() < 0.02,
                "cone {rb}/{height}, gradient along x: D{x} = {got}, ideal cone {ideal}"
            );
        }
    }
}

/// Small spheres on coarse grids. Sampled rows once lost about 2 % of the
/// volume of a 3 mm sphere contoured every 3 mm on a 3 mm dose grid; with
/// exact polygon areas per cell the DVH's volume is the contour stack's own
/// (Σ disc area × slab) at any grid, offset and subdivision, and D_x follows
/// the contour stack's closed forms in gradients along x, y (a circular
/// segment of each disc) and z (the discs' slabs).
#[test]
fn small_spheres_on_coarse_grids_keep_the_contoured_volume() {
    let c = [3.3, -12.6, 40.2];
    for radius in [2.0, 3.0, 4.0, 5.0] {
        for h in [0.5, 1.0, 2.0, 3.0] {
            let s = sphere(c, radius, h);
            let stack_cc = sphere_discs(radius, h)
                .iter()
                .map(|&(_, r2)| PI * r2 * h)
                .sum::<f64>()
                / 1000.0;
            assert!((s.volume_cc() / stack_cc - 1.0).abs() < 1e-9);
            for (spacing, shift) in [
                (3.0, [0.37, -0.81, 1.1]),
                (3.0, [1.5, 0.0, -0.4]),
                (2.0, [0.2, 0.9, 0.0]),
                (1.0, [0.5, 0.5, 0.5]),
            ] {
                let n_vox = ((2.0 * radius + 10.0) / spacing).ceil() as usize + 1;
                let o = [0, 1, 2].map(|a| c[a] - radius - 5.0 + shift[a]);
                let grid = Grid3::new([n_vox; 3], [spacing; 3], o).unwrap();
                let flat = linear_dose(&grid, 1.0, [0.0; 3], c);
                for k in [1, 2, 4] {
                    let v = Dvh::from_structure(&flat, &s, k).unwrap().volume_cc();
                    assert!(
                        (v / stack_cc - 1.0).abs() < 1e-9,
                        "R {radius}, h {h}, grid {spacing} {shift:?}, k {k}: {v} vs {stack_cc} cm³"
                    );
                }
                if spacing != 3.0 || h > 1.0 {
                    continue;
                }
                // D_x on the 3 mm grid, ±50 % of the central dose across the sphere
                let d0 = 10.0;
                let g = 5.0 / radius;
                for axis in 0..3 {
                    let mut gv = [0.0; 3];
                    gv[axis] = g;
                    let dvh = Dvh::from_structure(&linear_dose(&grid, d0, gv, c), &s, 4).unwrap();
                    for x in [0.02, 0.05, 0.5, 0.95, 0.98] {
                        let got = dvh.dose_at_fraction(x).unwrap();
                        let want = contour_stack_dx(x, radius, h, d0, g, axis);
                        assert!(
                            (got / want - 1.0).abs() < 0.01,
                            "R {radius}, h {h}, shift {shift:?}, gradient along {axis}: D{x} = {got}, contour stack {want}"
                        );
                    }
                }
            }
        }
    }
}

/// Where the dose varies little across a voxel, a voxel's box is one sample
/// (Structure::sample merges boxes whose dose spread is at most 0.5 % of the
/// grid's maximum): a 20 mm sphere in a gentle gradient (±2 % across it)
/// keeps D_x within 1 % of the dose span of the contour stack's closed form,
/// and the finer subdivision adds almost no samples.
#[test]
fn gentle_gradients_merge_samples_without_losing_d_x() {
    let (radius, h) = (20.0, 2.0);
    let c = [3.3, -12.6, 40.2];
    let s = sphere(c, radius, h);
    let grid = grid_around(c, radius);
    let (d0, g) = (10.0, 0.01);
    for axis in 0..3 {
        let mut gv = [0.0; 3];
        gv[axis] = g;
        let dose = linear_dose(&grid, d0, gv, c);
        let coarse = s.sample(&dose, 1).unwrap().len();
        let fine = s.sample(&dose, 4).unwrap().len();
        assert!(
            fine < 2 * coarse,
            "axis {axis}: {fine} samples at k = 4, {coarse} at k = 1"
        );
        let dvh = Dvh::from_structure(&dose, &s, 4).unwrap();
        for x in [0.02, 0.05, 0.5, 0.95, 0.98] {
            let got = dvh.dose_at_fraction(x).unwrap();
            let want = contour_stack_dx(x, radius, h, d0, g, axis);
            assert!(
                (got - want).abs() < 0.01 * 2.0 * g * radius,
                "gradient along {axis}: D{x} = {got}, contour stack {want}"
            );
        }
    }
}
