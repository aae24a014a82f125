//! Gamma index against closed-form answers.
//!
//! For a linear dose D(x) = D₀ + g·x and an evaluated dose shifted by s,
//! D_e(x) = D(x − s), the dose difference at offset r is g·(r − s), and
//! minimising |r|²/Δd² + (g·(r − s))²/ΔD² over r gives
//!
//! γ = |g·s| / √(ΔD² + |g|² Δd²).
//!
//! Trilinear interpolation reproduces a linear field exactly, so the gamma
//! computed on any grid (including voxels larger than the DTA) must equal this
//! value at interior points. A uniform dose scaled by k has γ = |k − 1|·D₀/ΔD.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use isodose_core::qa::{GammaCriteria, gamma_index};
use isodose_core::{DoseGrid, Grid3, Volume};
use ndarray::Array3;
use proptest::prelude::*;

fn field(grid: &Grid3, f: impl Fn([f64; 3]) -> f64) -> DoseGrid {
    let data = Array3::from_shape_fn((grid.nz(), grid.ny(), grid.nx()), |(k, j, i)| {
        let p = grid.index_to_world([k, j, i]);
        f([p.x, p.y, p.z]) as f32
    });
    Volume::new(grid.clone(), data).unwrap()
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Checks γ at every reference voxel farther than `margin_mm` from the
/// evaluated grid's outer centres against `expected`.
fn check_interior(
    reference: &DoseGrid,
    evaluated: &DoseGrid,
    criteria: &GammaCriteria,
    margin_mm: f64,
    expected: impl Fn([f64; 3], f64) -> f64,
    tol: f64,
) -> usize {
    let result = gamma_index(reference, evaluated, criteria).unwrap();
    let (lo, hi) = evaluated.grid().centre_bounds_mm();
    let g = result.gamma();
    let mut checked = 0;
    for ((k, j, i), &gv) in g.data().indexed_iter() {
        let p = reference.grid().index_to_world([k, j, i]);
        let inside = (0..3).all(|a| p[a] - margin_mm >= lo[a] && p[a] + margin_mm <= hi[a]);
        if !inside || gv.is_nan() {
            continue;
        }
        let want = expected([p.x, p.y, p.z], f64::from(reference.data()[[k, j, i]]));
        assert!(
            (f64::from(gv) - want.min(criteria.max_gamma)).abs() <= tol,
            "gamma at {p:?}: got {gv}, analytic {want}"
        );
        checked += 1;
    }
    checked
}

#[test]
fn identical_doses_pass_everywhere_with_zero_gamma() {
    let grid = Grid3::new([10, 12, 14], [2.0, 2.0, 3.0], [-10.0, -5.0, 0.0]).unwrap();
    let d = field(&grid, |p| 1.0 + 0.05 * p[0] + (p[1] * 0.1).sin());
    let r = gamma_index(&d, &d, &GammaCriteria::new(3.0, 3.0)).unwrap();
    assert_eq!(r.pass_rate(), 1.0);
    assert_eq!(r.max_gamma(), 0.0);
}

#[test]
fn uniform_dose_scaled_by_k_gives_k_minus_one_over_dd() {
    let grid = Grid3::new([6, 6, 6], [2.5; 3], [0.0; 3]).unwrap();
    let reference = field(&grid, |_| 2.0);
    for (k, pct, local) in [(1.02, 3.0, false), (1.05, 3.0, false), (0.97, 2.0, true)] {
        let evaluated = field(&grid, |_| 2.0 * k);
        let mut c = GammaCriteria::new(pct, 3.0);
        c.local = local;
        let want = (k - 1.0f64).abs() / (pct / 100.0);
        let n = check_interior(&reference, &evaluated, &c, 0.0, |_, _| want, 1e-5);
        assert_eq!(n, 216);
        let r = gamma_index(&reference, &evaluated, &c).unwrap();
        assert_eq!(r.pass_rate(), if want <= 1.0 { 1.0 } else { 0.0 });
    }
}

#[test]
fn shifted_gradient_along_an_axis_matches_closed_form() {
    // 5 %/mm gradient, shift 1.5 mm along x, 3 %/3 mm global
    let grid = Grid3::new([9, 9, 41], [2.0; 3], [-40.0, -8.0, -8.0]).unwrap();
    let g = [0.05, 0.0, 0.0];
    let s = [1.5, 0.0, 0.0];
    let reference = field(&grid, |p| 3.0 + dot(g, p));
    let evaluated = field(&grid, |p| 3.0 + dot(g, [p[0] - s[0], p[1], p[2]]));
    let c = GammaCriteria::new(3.0, 3.0);
    let norm = reference
        .data()
        .iter()
        .fold(0.0f64, |m, &d| m.max(f64::from(d)));
    let dd = 0.03 * norm;
    let want = dot(g, s).abs() / (dd * dd + dot(g, g) * 9.0).sqrt();
    let n = check_interior(&reference, &evaluated, &c, 6.0, |_, _| want, 0.01);
    assert!(n > 100, "{n} points checked");
}

#[test]
fn steep_gradient_on_a_coarse_grid_does_not_fail_agreeing_points() {
    // voxels of 5 mm, DTA 2 mm; the dose changes by 25 ΔD per voxel.
    // Evaluated = reference shifted by 1 mm: analytic γ ≈ 0.5, all pass.
    let grid = Grid3::new([7, 7, 21], [5.0; 3], [-50.0, -15.0, -15.0]).unwrap();
    let g = [0.1, 0.02, -0.03];
    let s = [0.6, -0.5, 0.5];
    let reference = field(&grid, |p| 10.0 + dot(g, p));
    let evaluated = field(&grid, |p| {
        10.0 + dot(g, [p[0] - s[0], p[1] - s[1], p[2] - s[2]])
    });
    let mut c = GammaCriteria::new(2.0, 2.0);
    c.cutoff_percent = 0.0;
    let norm = reference
        .data()
        .iter()
        .fold(0.0f64, |m, &d| m.max(f64::from(d)));
    let dd = 0.02 * norm;
    let want = dot(g, s).abs() / (dd * dd + dot(g, g) * 4.0).sqrt();
    let n = check_interior(&reference, &evaluated, &c, 4.0, |_, _| want, 0.01);
    assert!(n > 50, "{n} points checked");
    // restricted to the interior the pass rate is 100 %; the gamma of a
    // nearest-voxel (no interpolation) search would be |s|/Δd ≈ 0.47 only if
    // s were a lattice vector of the grid, which 5 mm voxels are not.
    assert!(want < 1.0);
}

#[test]
fn local_gamma_uses_the_local_dose() {
    // D = 1 + 0.02 x on x in [0, 100]; evaluated = D × 1.02 everywhere.
    // local 3 %/1 mm: at a point with dose D, shifting by r along the gradient
    // changes the dose by 0.0204 r; minimise r² + ((0.02 D + 0.0204 r)/(0.03 D))².
    let grid = Grid3::new([7, 7, 51], [2.0; 3], [0.0, -6.0, -6.0]).unwrap();
    let reference = field(&grid, |p| 1.0 + 0.02 * p[0]);
    let evaluated = field(&grid, |p| 1.02 * (1.0 + 0.02 * p[0]));
    let mut c = GammaCriteria::new(3.0, 1.0);
    c.local = true;
    c.cutoff_percent = 0.0;
    let analytic = |_: [f64; 3], d: f64| {
        // f(r) = r²/a² + (e + q r)²/b², e = 0.02 d, q = 0.0204, b = 0.03 d, a = 1
        let (a, b, e, q) = (1.0f64, 0.03 * d, 0.02 * d, 0.0204f64);
        let r = -e * q * a * a / (b * b + q * q * a * a);
        ((r * r) / (a * a) + (e + q * r).powi(2) / (b * b)).sqrt()
    };
    let n = check_interior(&reference, &evaluated, &c, 2.5, analytic, 0.01);
    assert!(n >= 40, "{n}");
}

#[test]
fn different_grids_are_resampled() {
    // reference 2 mm, evaluated 3 mm with an offset origin; same linear field
    let gr = Grid3::new([8, 8, 20], [2.0; 3], [-20.0, -8.0, -8.0]).unwrap();
    let ge = Grid3::new([10, 10, 18], [3.0; 3], [-26.5, -13.7, -14.2]).unwrap();
    let g = [0.04, 0.01, 0.0];
    let s = [-1.0, 0.5, 0.0];
    let reference = field(&gr, |p| 5.0 + dot(g, p));
    let evaluated = field(&ge, |p| {
        5.0 + dot(g, [p[0] - s[0], p[1] - s[1], p[2] - s[2]])
    });
    let mut c = GammaCriteria::new(1.0, 1.0);
    c.cutoff_percent = 0.0;
    let norm = reference
        .data()
        .iter()
        .fold(0.0f64, |m, &d| m.max(f64::from(d)));
    let dd = 0.01 * norm;
    let want = dot(g, s).abs() / (dd * dd + dot(g, g)).sqrt();
    let n = check_interior(&reference, &evaluated, &c, 2.0, |_, _| want, 0.01);
    assert!(n > 500, "{n}");
}

#[test]
fn cutoff_excludes_and_missing_evaluated_dose_fails() {
    let grid = Grid3::new([1, 1, 11], [1.0; 3], [0.0; 3]).unwrap();
    // doses 0..10 Gy; cut-off 25 % of 10 Gy excludes 0, 1, 2
    let reference = field(&grid, |p| p[0]);
    let mut c = GammaCriteria::new(3.0, 1.0);
    c.cutoff_percent = 25.0;
    let r = gamma_index(&reference, &reference, &c).unwrap();
    assert_eq!(r.evaluated_count(), 8);
    assert_eq!(r.passed_count(), 8);
    // evaluated grid covering only x in [0, 4] mm: points beyond its reach fail
    let short = Grid3::new([1, 1, 5], [1.0; 3], [0.0; 3]).unwrap();
    let evaluated = field(&short, |p| p[0]);
    let r = gamma_index(&reference, &evaluated, &c).unwrap();
    // the evaluated dose exists up to x = 4.5 mm (half a voxel beyond the last
    // centre, held at 4 Gy); the search reaches max_gamma·DTA = 2 mm: x = 3 and
    // 4 agree exactly, x = 5 and 6 find only doses ≥ 1 Gy = 3.3 ΔD too low
    // (fail, finite γ), x = 7..10 find no evaluated dose at all (fail, +∞)
    let g = r.gamma().data();
    assert_eq!(g[[0, 0, 3]], 0.0);
    assert_eq!(g[[0, 0, 4]], 0.0);
    for x in [5, 6] {
        assert!(
            g[[0, 0, x]].is_finite() && g[[0, 0, x]] > 1.0,
            "{}",
            g[[0, 0, x]]
        );
    }
    for x in 7..=10 {
        assert!(g[[0, 0, x]].is_infinite());
    }
    assert_eq!(r.passed_count(), 2);
    assert_eq!(r.evaluated_count(), 8);
    assert!(r.pass_rate() < 0.5);
}

#[test]
fn invalid_criteria_and_grids_are_errors() {
    let grid = Grid3::new([2, 2, 2], [1.0; 3], [0.0; 3]).unwrap();
    let d = field(&grid, |_| 1.0);
    for bad in [
        GammaCriteria::new(0.0, 3.0),
        GammaCriteria::new(3.0, -1.0),
        GammaCriteria {
            cutoff_percent: 100.0,
            ..GammaCriteria::new(3.0, 3.0)
        },
        GammaCriteria {
            search_step: 0.0,
            ..GammaCriteria::new(3.0, 3.0)
        },
    ] {
        assert!(gamma_index(&d, &d, &bad).is_err(), "{bad:?}");
    }
    let far = Grid3::new([2, 2, 2], [1.0; 3], [100.0, 0.0, 0.0]).unwrap();
    let e = gamma_index(&d, &field(&far, |_| 1.0), &GammaCriteria::new(3.0, 3.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not overlap"), "{e}");
    let zero = field(&grid, |_| 0.0);
    assert!(gamma_index(&zero, &d, &GammaCriteria::new(3.0, 3.0)).is_err());
    let mut nan = field(&grid, |_| 1.0);
    nan.data_mut()[[0, 0, 0]] = f32::NAN;
    assert!(gamma_index(&nan, &d, &GammaCriteria::new(3.0, 3.0)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Random oblique gradients and shifts on random grids: the closed form.
    #[test]
    fn random_shifted_linear_fields(
        gx in -0.2f64..0.2, gy in -0.2f64..0.2, gz in -0.2f64..0.2,
        sx in -2.0f64..2.0, sy in -2.0f64..2.0, sz in -2.0f64..2.0,
        spacing in 1.0f64..4.0, dta in 1.0f64..3.0, pct in 1.0f64..3.0,
    ) {
        let grid = Grid3::new([8, 8, 8], [spacing; 3], [-4.0 * spacing; 3]).unwrap();
        let g = [gx, gy, gz];
        let s = [sx, sy, sz];
        let reference = field(&grid, |p| 10.0 + dot(g, p));
        let evaluated = field(&grid, |p| 10.0 + dot(g, [p[0] - s[0], p[1] - s[1], p[2] - s[2]]));
        let mut c = GammaCriteria::new(pct, dta);
        c.cutoff_percent = 0.0;
        let norm = reference.data().iter().fold(0.0f64, |m, &d| m.max(f64::from(d)));
        let dd = pct / 100.0 * norm;
        let want = dot(g, s).abs() / (dd * dd + dot(g, g) * dta * dta).sqrt();
        check_interior(&reference, &evaluated, &c, 2.0 * dta, |_, _| want, 0.01);
    }
}
