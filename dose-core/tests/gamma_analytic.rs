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

use isodose_core::qa::{GammaCriteria, GammaSearch, gamma_index};
use isodose_core::{DoseError, DoseGrid, DoseView, Grid3, Volume};
use ndarray::{Array3, ShapeBuilder, s};
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
/// evaluated grid's outer centres against `expected`, with the continuous
/// and the lattice search; returns the number of points checked per search.
fn check_interior(
    reference: &DoseGrid,
    evaluated: &DoseGrid,
    criteria: &GammaCriteria,
    margin_mm: f64,
    expected: impl Fn([f64; 3], f64) -> f64,
    tol: f64,
) -> usize {
    let counts = [GammaSearch::Continuous, GammaSearch::Lattice].map(|search| {
        let c = GammaCriteria {
            search,
            ..criteria.clone()
        };
        check_interior_with(reference, evaluated, &c, margin_mm, &expected, tol)
    });
    assert_eq!(counts[0], counts[1]);
    counts[0]
}

fn check_interior_with(
    reference: &DoseGrid,
    evaluated: &DoseGrid,
    criteria: &GammaCriteria,
    margin_mm: f64,
    expected: &impl Fn([f64; 3], f64) -> f64,
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
            "{:?} gamma at {p:?}: got {gv}, analytic {want}",
            criteria.search
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

/// Gamma reads borrowed doses in place (a caller's array, for example
/// NumPy's): views of arrays in Fortran order and of a slice of a larger
/// array give the γ of the owned volumes, value for value, with either
/// search; a view whose shape is not its grid's is an error.
#[test]
fn borrowed_doses_give_the_same_gamma() {
    let gr = Grid3::new([9, 10, 11], [2.0; 3], [-10.0, -9.0, -8.0]).unwrap();
    let ge = Grid3::new([8, 9, 10], [2.5; 3], [-11.0, -10.0, -9.0]).unwrap();
    let bump =
        |p: [f64; 3], c: f64| 1.0 + 2.0 * (-(dot(p, p) - 2.0 * c * p[0] + c * c) / 60.0).exp();
    let reference = field(&gr, |p| bump(p, 0.0));
    let evaluated = field(&ge, |p| 1.02 * bump(p, 0.8));
    // the reference in Fortran order; the evaluated dose inside a larger
    // array, every other x of it
    let mut fortran = Array3::<f32>::zeros((9, 10, 11).f());
    fortran.assign(reference.data());
    let mut wide = Array3::<f32>::from_elem((8, 9, 20), f32::NAN);
    wide.slice_mut(s![.., .., ..;2]).assign(evaluated.data());
    let r_view = DoseView::new(&gr, fortran.view()).unwrap();
    let e_view = DoseView::new(&ge, wide.slice(s![.., .., ..;2])).unwrap();
    for search in [GammaSearch::Continuous, GammaSearch::Lattice] {
        let c = GammaCriteria {
            search,
            ..GammaCriteria::new(2.0, 2.0)
        };
        let owned = gamma_index(&reference, &evaluated, &c).unwrap();
        let borrowed = gamma_index(r_view, e_view, &c).unwrap();
        assert!(owned.evaluated_count() > 500);
        assert_eq!(owned.evaluated_count(), borrowed.evaluated_count());
        for (a, b) in owned.gamma().data().iter().zip(borrowed.gamma().data()) {
            assert!(a == b || (a.is_nan() && b.is_nan()), "{search}: {a} vs {b}");
        }
    }
    let err = DoseView::new(&gr, evaluated.data().view()).unwrap_err();
    assert!(matches!(err, DoseError::ShapeMismatch { .. }), "{err}");
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
    for search in [GammaSearch::Lattice, GammaSearch::Continuous] {
        c.search = search;
        missing_dose_fails(&reference, &evaluated, &c);
    }
}

fn missing_dose_fails(reference: &DoseGrid, evaluated: &DoseGrid, c: &GammaCriteria) {
    let r = gamma_index(reference, evaluated, c).unwrap();
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
        assert!(g[[0, 0, x]].is_infinite(), "{:?} at x = {x}", c.search);
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

/// A sum of Gaussian blobs plus a seeded ripple, so that the evaluated dose
/// has curvature, saddles and steep edges inside cells.
fn rough(grid: &Grid3, blobs: &[([f64; 3], f64, f64)], ripple: f64, seed: u64) -> DoseGrid {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    let mut d = field(grid, |p| {
        blobs
            .iter()
            .map(|(c, sigma, amp)| {
                let r2 = (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2);
                amp * (-r2 / (2.0 * sigma * sigma)).exp()
            })
            .sum::<f64>()
    });
    d.data_mut()
        .iter_mut()
        .for_each(|v| *v = (f64::from(*v) * (1.0 + ripple * next())).max(0.0) as f32);
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// The continuous search never does worse than the lattice search (an
    /// exhaustive lattice walk, then refinement: every value it reports is
    /// γ at a position it sampled) by more than 1e-3, on rough random doses
    /// (up to ±10 % noise per voxel, where a cell can hold several local
    /// minima and the branch and bound stops at boxes of Δd/10; the largest
    /// excess seen is 2e-4) and grids that differ; where the dose is smooth
    /// the two agree closely.
    #[test]
    fn continuous_search_is_never_worse_than_the_lattice(
        cx in -4.0f64..4.0, cy in -4.0f64..4.0, cz in -4.0f64..4.0,
        sigma in 3.0f64..12.0, scale in 0.95f64..1.05, ripple in 0.0f64..0.2,
        spacing in 1.0f64..4.0, eval_spacing in 1.0f64..5.0,
        dta in 1.0f64..3.0, dd in 1.0f64..3.0, local in any::<bool>(), seed in 0u64..1000,
    ) {
        let gr = Grid3::new([12, 13, 14], [spacing; 3], [-6.5 * spacing, -6.0 * spacing, -5.5 * spacing]).unwrap();
        let ne = ((14.0 * spacing) / eval_spacing).ceil() as usize + 1;
        let ge = Grid3::new([ne, ne, ne], [eval_spacing; 3], [-(ne as f64 - 1.0) / 2.0 * eval_spacing + 0.3; 3]).unwrap();
        let reference = rough(&gr, &[([0.0; 3], sigma, 2.0), ([3.0, -2.0, 1.0], 2.0, 0.5)], 0.0, seed);
        let evaluated = rough(&ge, &[([cx * 0.3, cy * 0.3, cz * 0.3], sigma, 2.0 * scale), ([3.0, -2.0, 1.0], 2.0, 0.5)], ripple, seed);
        let mut c = GammaCriteria::new(dd, dta);
        c.local = local;
        c.search = GammaSearch::Continuous;
        let cont = gamma_index(&reference, &evaluated, &c).unwrap();
        c.search = GammaSearch::Lattice;
        let lat = gamma_index(&reference, &evaluated, &c).unwrap();
        prop_assert_eq!(cont.evaluated_count(), lat.evaluated_count());
        let mut close = 0usize;
        let mut n = 0usize;
        for (a, b) in cont.gamma().data().iter().zip(lat.gamma().data()) {
            if b.is_nan() {
                prop_assert!(a.is_nan());
                continue;
            }
            n += 1;
            prop_assert!(*a <= *b + 1e-3, "continuous {} > lattice {}", a, b);
            if (a - b).abs() <= 0.01 {
                close += 1;
            }
        }
        if ripple == 0.0 || n == 0 {
            return Ok(());
        }
        prop_assert!(close as f64 >= 0.5 * n as f64, "{} of {} within 0.01", close, n);
    }
}
