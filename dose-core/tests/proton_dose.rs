//! Proton pencil-beam dose on phantoms: energy conservation, heterogeneity
//! shifts, beam geometry, linearity, dij consistency and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use isodose_core::physics::hlut::Hlut;
use isodose_core::proton::{
    DoseOptions, ProtonBeam, ProtonMachine, ProtonPlan, Spot, SpotSplitting,
};
use isodose_core::{
    BackendChoice, CtVolume, DEFAULT_DIJ_LIMIT_BYTES, DoseGrid, Engine, Grid3, Volume,
};
use ndarray::Array3;

fn machine() -> &'static ProtonMachine {
    isodose_core::proton::generic::generic_machine().unwrap()
}

fn engine() -> Engine {
    Engine::new(BackendChoice::Cpu).unwrap()
}

/// A water box: `shape` (nz, ny, nx), `spacing` (x, y, z), centred laterally
/// on the isocentre (0, 0, 0), its anterior surface at y = `y0` (beam at
/// gantry 0 travels along +y).
fn water(shape: [usize; 3], spacing: [f64; 3], y0: f64) -> CtVolume {
    let origin = [
        -(shape[2] as f64 - 1.0) / 2.0 * spacing[0],
        y0 + spacing[1] / 2.0,
        -(shape[0] as f64 - 1.0) / 2.0 * spacing[2],
    ];
    let grid = Grid3::new(shape, spacing, origin).unwrap();
    Volume::filled(grid, 0.0f32)
}

fn one_spot_plan(energy: f64, x: f64, y: f64, gantry: f64, couch: f64) -> ProtonPlan {
    let spot = Spot {
        energy_mev: energy,
        x_mm: x,
        y_mm: y,
        weight: 1e9,
    };
    ProtonPlan::new(
        vec![ProtonBeam::new(gantry, couch, [0.0; 3], vec![spot], None).unwrap()],
        1,
    )
    .unwrap()
}

fn no_halo() -> DoseOptions {
    DoseOptions {
        include_halo: false,
        ..DoseOptions::new().unwrap()
    }
}

/// ∫∫ D dx dz over the slice at y index j (Gy·mm²).
fn lateral_integral(d: &DoseGrid, j: usize) -> f64 {
    let s = d.grid().spacing_mm();
    let mut sum = 0.0;
    for k in 0..d.grid().nz() {
        for i in 0..d.grid().nx() {
            sum += f64::from(d.data()[[k, j, i]]);
        }
    }
    sum * s.x * s.z
}

#[test]
fn lateral_integral_of_a_spot_equals_the_idd() {
    let m = machine();
    for energy in [100.0, 180.0] {
        let em = m.energy(energy).unwrap();
        // ±5 σ of the widest point (σ ≈ 8 mm at 180 MeV end of range)
        let ct = water([81, 240, 81], [1.0, 1.0, 1.0], -100.0);
        let plan = one_spot_plan(energy, 0.0, 0.0, 0.0, 0.0);
        let dose = engine().pbs_dose(&ct, &plan, m, None, &no_halo()).unwrap();
        let r80 = em.r80_mm;
        for j in (5..240).step_by(7) {
            let depth = j as f64 + 0.5;
            if depth > r80 - 3.0 {
                break;
            }
            let expected = 1e9 * em.idd.at(depth);
            let got = lateral_integral(&dose, j);
            let rel = (got - expected) / expected;
            println!("{energy} MeV at {depth} mm: lateral integral / IDD - 1 = {rel:+.5}");
            assert!(
                rel.abs() <= 0.005,
                "{energy} MeV at {depth} mm: {got} vs IDD {expected} ({rel:+.4})"
            );
        }
    }
}

/// Depth (mm from the water surface at y0) where the central-axis dose falls
/// distally to 80 % of its maximum.
fn distal_80(d: &DoseGrid, y0: f64) -> f64 {
    let g = d.grid();
    let x_centre = g.index_to_world([0, 0, g.nx() / 2]).x;
    distal_80_at_x(d, y0, x_centre)
}

/// A slab of RSP `rsp` from depth `from` to `to` mm, across the whole phantom.
fn with_slab(ct: &CtVolume, y0: f64, from: f64, to: f64, hu: f32) -> CtVolume {
    let g = ct.grid().clone();
    let mut data: Array3<f32> = ct.data().clone();
    for ((k, j, i), v) in data.indexed_iter_mut() {
        let depth = g.index_to_world([k, j, i]).y - y0;
        if depth >= from && depth < to {
            *v = hu;
        }
    }
    Volume::new(g, data).unwrap()
}

#[test]
fn slabs_shift_the_distal_falloff_by_their_water_equivalent_excess() {
    // HU → RSP: 1 + 0.0006·HU, so 1000 HU is RSP 1.6 and −1000 HU is RSP 0.4;
    // a custom curve makes the RSP exact
    let hlut = Hlut::new("test", vec![-1000.0, 0.0, 1000.0], vec![0.4, 1.0, 1.6]).unwrap();
    let y0 = -80.0;
    let base = water([21, 160, 21], [2.0, 1.0, 2.0], y0);
    for splitting in [None, Some(SpotSplitting::lattice(5).unwrap())] {
        let options = DoseOptions {
            hlut: hlut.clone(),
            spot_splitting: splitting,
            ..no_halo()
        };
        let plan = one_spot_plan(120.0, 0.0, 0.0, 0.0, 0.0);
        let d_water = engine()
            .pbs_dose(&base, &plan, machine(), None, &options)
            .unwrap();
        let r_water = distal_80(&d_water, y0);
        let t = 10.0;
        // bone-like: the fall-off comes t·(1.6 − 1) = 6 mm earlier
        let bone = with_slab(&base, y0, 20.0, 20.0 + t, 1000.0);
        let r_bone = distal_80(
            &engine()
                .pbs_dose(&bone, &plan, machine(), None, &options)
                .unwrap(),
            y0,
        );
        // lung-like (RSP 0.4): 6 mm later
        let lung = with_slab(&base, y0, 20.0, 20.0 + t, -1000.0);
        let r_lung = distal_80(
            &engine()
                .pbs_dose(&lung, &plan, machine(), None, &options)
                .unwrap(),
            y0,
        );
        println!("{splitting:?}: water {r_water:.2}, bone {r_bone:.2}, lung {r_lung:.2} mm");
        assert!(
            (r_water - r_bone - t * 0.6).abs() <= 0.3,
            "bone shift {}",
            r_water - r_bone
        );
        assert!(
            (r_lung - r_water - t * 0.6).abs() <= 0.3,
            "lung shift {}",
            r_lung - r_water
        );
    }
}

#[test]
fn air_gap_moves_the_falloff_deeper() {
    let y0 = -80.0;
    let base = water([21, 160, 21], [2.0, 1.0, 2.0], y0);
    let hlut = Hlut::default_curve().unwrap();
    let options = DoseOptions {
        hlut: hlut.clone(),
        ..no_halo()
    };
    let plan = one_spot_plan(120.0, 0.0, 0.0, 0.0, 0.0);
    let r_water = distal_80(
        &engine()
            .pbs_dose(&base, &plan, machine(), None, &options)
            .unwrap(),
        y0,
    );
    // an 8 mm air gap (−1000 HU: RSP 0.001 on the default curve) inside the water
    let gap = with_slab(&base, y0, 30.0, 38.0, -1000.0);
    let r_gap = distal_80(
        &engine()
            .pbs_dose(&gap, &plan, machine(), None, &options)
            .unwrap(),
        y0,
    );
    let expected = 8.0 * (1.0 - hlut.rsp(-1000.0));
    assert!(
        (r_gap - r_water - expected).abs() <= 0.3,
        "gap shift {} vs {expected}",
        r_gap - r_water
    );
}

/// Doses on a cubic phantom centred on the isocentre: rotating the gantry or
/// the couch rotates the dose.
#[test]
fn gantry_and_couch_rotations_rotate_the_dose() {
    let n = 41;
    let ct = water([n, n, n], [2.0; 3], -(n as f64));
    let opts = DoseOptions::new().unwrap();
    let e = engine();
    // an off-axis spot so that the beam's X/Y axes are tested too
    let dose = |g: f64, c: f64| {
        e.pbs_dose(
            &ct,
            &one_spot_plan(90.0, 6.0, -4.0, g, c),
            machine(),
            None,
            &opts,
        )
        .unwrap()
    };
    let d0 = dose(0.0, 0.0);
    let max = d0.data().iter().fold(0.0f32, |a, v| a.max(*v));
    let c = (n - 1) / 2;
    // index maps (k, j, i) → rotated index, for a grid symmetric about 0
    type Rotation = fn(i64, i64, i64) -> (i64, i64, i64);
    let cases: [(f64, f64, Rotation); 4] = [
        // gantry 90: beam +y → −x; (x, y, z) → (−y, x, z)
        (90.0, 0.0, |x, y, z| (-y, x, z)),
        // gantry 180: (x, y, z) → (−x, −y, z)
        (180.0, 0.0, |x, y, z| (-x, -y, z)),
        // gantry 270: (x, y, z) → (y, −x, z)
        (270.0, 0.0, |x, y, z| (y, -x, z)),
        // couch 90 (gantry 0): (x, y, z) → (z, y, −x)
        (0.0, 90.0, |x, y, z| (z, y, -x)),
    ];
    for (g, cc, rot) in cases {
        let d = dose(g, cc);
        let mut worst = 0.0f32;
        for ((k, j, i), v) in d0.data().indexed_iter() {
            let (x, y, z) = (
                i as i64 - c as i64,
                j as i64 - c as i64,
                k as i64 - c as i64,
            );
            let (rx, ry, rz) = rot(x, y, z);
            let idx = [
                (rz + c as i64) as usize,
                (ry + c as i64) as usize,
                (rx + c as i64) as usize,
            ];
            worst = worst.max((d.data()[idx] - v).abs());
        }
        assert!(
            worst <= 1e-4 * max,
            "gantry {g}, couch {cc}: worst difference {worst} of max {max}"
        );
    }
}

fn field_plan(weights: &[f64]) -> ProtonPlan {
    let mut spots = Vec::new();
    let mut w = weights.iter().cycle();
    for (e, y) in [(100.0, 0.0), (110.0, 5.0)] {
        for x in [-5.0, 0.0, 5.0] {
            spots.push(Spot {
                energy_mev: e,
                x_mm: x,
                y_mm: y,
                weight: *w.next().unwrap(),
            });
        }
    }
    let b1 = ProtonBeam::new(0.0, 0.0, [0.0; 3], spots.clone(), None).unwrap();
    let b2 = ProtonBeam::new(90.0, 0.0, [0.0; 3], spots, None).unwrap();
    ProtonPlan::new(vec![b1, b2], 1).unwrap()
}

#[test]
fn dij_times_weights_is_the_forward_dose() {
    let ct = water([31, 31, 31], [3.0; 3], -46.5);
    let weights = [1e8, 0.0, 3e8, 2e8, 5e7, 1e8];
    let plan = field_plan(&weights);
    let w: Vec<f64> = plan
        .beams()
        .iter()
        .flat_map(|b| b.spots().iter().map(|s| s.weight))
        .collect();
    for splitting in [None, Some(SpotSplitting::lattice(5).unwrap())] {
        let opts = DoseOptions {
            spot_splitting: splitting,
            ..DoseOptions::new().unwrap()
        };
        let e = engine();
        let dose = e.pbs_dose(&ct, &plan, machine(), None, &opts).unwrap();
        let dij = e
            .pbs_dij(&ct, &plan, machine(), None, &opts, DEFAULT_DIJ_LIMIT_BYTES)
            .unwrap();
        assert_eq!(dij.shape(), (ct.grid().len(), 12));
        // rows sorted within each column
        for c in dij.col_ptr().windows(2) {
            let rows = &dij.row_idx()[c[0] as usize..c[1] as usize];
            assert!(rows.windows(2).all(|r| r[0] < r[1]));
        }
        // the zero-weight spot still has its column
        assert!(dij.col_ptr()[2] > dij.col_ptr()[1]);
        let from_dij = dij.dose(&w).unwrap();
        let max = dose.data().iter().fold(0.0f32, |a, v| a.max(*v)) as f64;
        assert!(max > 0.0);
        for (a, b) in dose.data().iter().zip(&from_dij) {
            assert!((f64::from(*a) - b).abs() <= 1e-5 * max, "{a} vs {b}");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Doses are finite, non-negative, linear in the spot weights and
    /// superpose, for random weights (zeros included) and gantry angles.
    #[test]
    fn dose_is_linear_in_weights_and_superposes(
        wa in proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just(0.0), 1e6f64..1e9], 6),
        wb in proptest::collection::vec(0.0f64..1e9, 6),
        factor in 0.1f64..10.0,
        gantry in 0.0f64..360.0,
    ) {
        let ct = water([15, 25, 15], [4.0; 3], -50.0);
        let e = engine();
        let opts = DoseOptions::new().unwrap();
        let plan = |w: &[f64]| {
            let spots: Vec<Spot> = w.iter().enumerate().map(|(i, w)| Spot {
                energy_mev: [90.0, 100.0, 110.0][i % 3],
                x_mm: -6.0 + 4.0 * i as f64,
                y_mm: if i % 2 == 0 { -3.0 } else { 3.0 },
                weight: *w,
            }).collect();
            ProtonPlan::new(vec![ProtonBeam::new(gantry, 0.0, [0.0; 3], spots, None).unwrap()], 1).unwrap()
        };
        let wsum: Vec<f64> = wa.iter().zip(&wb).map(|(a, b)| a + b).collect();
        let wscaled: Vec<f64> = wa.iter().map(|w| w * factor).collect();
        let da = e.pbs_dose(&ct, &plan(&wa), machine(), None, &opts).unwrap();
        let db = e.pbs_dose(&ct, &plan(&wb), machine(), None, &opts).unwrap();
        let ds = e.pbs_dose(&ct, &plan(&wsum), machine(), None, &opts).unwrap();
        let dk = e.pbs_dose(&ct, &plan(&wscaled), machine(), None, &opts).unwrap();
        let max = f64::from(ds.data().iter().fold(0.0f32, |a, v| a.max(*v))).max(1e-30);
        for (((a, b), s), k) in da.data().iter().zip(db.data()).zip(ds.data()).zip(dk.data()) {
            proptest::prop_assert!(a.is_finite() && *a >= 0.0);
            proptest::prop_assert!((f64::from(*a) + f64::from(*b) - f64::from(*s)).abs() <= 1e-5 * max);
            let ka = f64::from(*a) * factor;
            proptest::prop_assert!((ka - f64::from(*k)).abs() <= 1e-5 * ka.max(max * 1e-3));
        }
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let ct = water([5, 5, 5], [2.0; 3], -5.0);
    let e = engine();
    let opts = DoseOptions::new().unwrap();
    let err = e
        .pbs_dose(
            &ct,
            &one_spot_plan(250.0, 0.0, 0.0, 0.0, 0.0),
            machine(),
            None,
            &opts,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("250") && err.to_string().contains("70 to 230 MeV"),
        "{err}"
    );
    let spot = |w: f64| Spot {
        energy_mev: 100.0,
        x_mm: 0.0,
        y_mm: 0.0,
        weight: w,
    };
    assert!(ProtonBeam::new(0.0, 0.0, [0.0; 3], vec![spot(f64::NAN)], None).is_err());
    let err = ProtonBeam::new(0.0, 0.0, [0.0; 3], vec![spot(-1.0)], None).unwrap_err();
    assert!(err.to_string().contains("weight"), "{err}");
    assert!(ProtonBeam::new(f64::INFINITY, 0.0, [0.0; 3], vec![spot(1.0)], None).is_err());
    // zero weights are allowed and give zero dose
    let plan = ProtonPlan::new(
        vec![ProtonBeam::new(0.0, 0.0, [0.0; 3], vec![spot(0.0)], None).unwrap()],
        1,
    )
    .unwrap();
    let d = e.pbs_dose(&ct, &plan, machine(), None, &opts).unwrap();
    assert!(d.data().iter().all(|v| *v == 0.0));
    // NaN in the CT
    let mut bad = ct.clone();
    bad.data_mut()[[1, 1, 1]] = f32::NAN;
    assert!(
        e.pbs_dose(
            &bad,
            &one_spot_plan(100.0, 0.0, 0.0, 0.0, 0.0),
            machine(),
            None,
            &opts
        )
        .is_err()
    );
    // a dij larger than the limit is refused before allocation
    let err = e
        .pbs_dij(
            &ct,
            &one_spot_plan(100.0, 0.0, 0.0, 0.0, 0.0),
            machine(),
            None,
            &opts,
            10,
        )
        .unwrap_err();
    assert!(err.to_string().contains("MiB"), "{err}");
    let zero_cutoff = DoseOptions {
        lateral_cutoff_fraction: 0.0,
        ..opts
    };
    let err = e
        .pbs_dose(
            &ct,
            &one_spot_plan(100.0, 0.0, 0.0, 0.0, 0.0),
            machine(),
            None,
            &zero_cutoff,
        )
        .unwrap_err();
    assert!(err.to_string().contains("cut-off"), "{err}");
}

/// Central-axis-parallel distal 80 % depth along the line at lateral x (mm).
fn distal_80_at_x(d: &DoseGrid, y0: f64, x_mm: f64) -> f64 {
    let g = d.grid();
    let k = g.nz() / 2;
    let i = ((x_mm - g.origin_mm().x) / g.spacing_mm().x).round() as usize;
    let profile: Vec<f64> = (0..g.ny())
        .map(|j| f64::from(d.data()[[k, j, i]]))
        .collect();
    let (jmax, max) = profile
        .iter()
        .enumerate()
        .fold((0, 0.0), |a, (j, v)| if *v > a.1 { (j, *v) } else { a });
    let level = 0.8 * max;
    for j in jmax..profile.len() - 1 {
        if profile[j] >= level && profile[j + 1] < level {
            let t = (profile[j] - level) / (profile[j] - profile[j + 1]);
            return g.index_to_world([k, j, i]).y + t * g.spacing_mm().y - y0;
        }
    }
    panic!("no distal fall-off at x = {x_mm}");
}

/// A bone slab covering only x < 0 (its edge parallel to the beam), with a
/// spot whose central ray passes 1 mm beside it in water. Ray casting gives
/// the whole spot the water depth, so protons beside the axis under the bone
/// range out as if in water; spot splitting lets that part range out earlier,
/// as the protons crossing the bone physically do.
#[test]
fn spot_splitting_resolves_an_edge_that_ray_casting_misses() {
    let hlut = Hlut::new("test", vec![0.0, 1000.0], vec![1.0, 1.6]).unwrap();
    let y0 = -80.0;
    let base = water([21, 160, 61], [1.0, 1.0, 2.0], y0);
    let g = base.grid().clone();
    let mut data = base.data().clone();
    for ((k, j, i), v) in data.indexed_iter_mut() {
        let p = g.index_to_world([k, j, i]);
        if p.x < 0.0 && (20.0..40.0).contains(&(p.y - y0)) {
            *v = 1000.0;
        }
    }
    let ct = Volume::new(g, data).unwrap();
    let plan = one_spot_plan(120.0, 1.0, 0.0, 0.0, 0.0);
    let run = |s| {
        let o = DoseOptions {
            hlut: hlut.clone(),
            spot_splitting: s,
            ..no_halo()
        };
        engine().pbs_dose(&ct, &plan, machine(), None, &o).unwrap()
    };
    let ray = run(None);
    let split = run(Some(SpotSplitting::RECOMMENDED));
    let water_r80 = distal_80_at_x(
        &engine()
            .pbs_dose(&base, &plan, machine(), None, &no_halo())
            .unwrap(),
        y0,
        -4.0,
    );
    let (ray_bone, split_bone) = (
        distal_80_at_x(&ray, y0, -4.0),
        distal_80_at_x(&split, y0, -4.0),
    );
    let (ray_water, split_water) = (
        distal_80_at_x(&ray, y0, 7.0),
        distal_80_at_x(&split, y0, 7.0),
    );
    println!(
        "x = -4 mm (under the bone): ray casting {ray_bone:.2}, splitting {split_bone:.2}, water {water_r80:.2}"
    );
    println!("x = +7 mm (water side): ray casting {ray_water:.2}, splitting {split_water:.2}");
    // ray casting does not see the bone at all
    assert!((ray_bone - water_r80).abs() < 0.3);
    // splitting pulls the fall-off under the bone back towards the bone range
    // (12 mm shallower for a fully covered beam)
    assert!(split_bone < ray_bone - 6.0, "{split_bone} vs {ray_bone}");
    // and leaves the water side close to water
    assert!((split_water - ray_water).abs() < 2.0);
}

#[test]
fn range_shifter_pulls_back_the_range_and_widens_the_spot() {
    use isodose_core::proton::RangeShifter;
    let y0 = -60.0;
    let ct = water([41, 120, 41], [1.0; 3], y0);
    let beam = |rs: Option<RangeShifter>| {
        let spot = Spot {
            energy_mev: 110.0,
            x_mm: 0.0,
            y_mm: 0.0,
            weight: 1e9,
        };
        ProtonPlan::new(
            vec![ProtonBeam::new(0.0, 0.0, [0.0; 3], vec![spot], rs).unwrap()],
            1,
        )
        .unwrap()
    };
    let opts = no_halo();
    let d0 = engine()
        .pbs_dose(&ct, &beam(None), machine(), None, &opts)
        .unwrap();
    let rs = RangeShifter::pmma(20.0, 300.0).unwrap();
    let d1 = engine()
        .pbs_dose(&ct, &beam(Some(rs)), machine(), None, &opts)
        .unwrap();
    let (r0, r1) = (distal_80(&d0, y0), distal_80(&d1, y0));
    println!("R80 without {r0:.2} mm, with a 20 mm WET shifter {r1:.2} mm");
    assert!((r0 - r1 - 20.0).abs() <= 0.3, "pull-back {}", r0 - r1);
    // lateral second moment at 10 mm depth: σ² grows by the shifter's
    // scattering projected over its distance to the point
    let sigma_sq = |d: &DoseGrid| {
        let j = 10;
        let k = d.grid().nz() / 2;
        let (mut m0, mut m2) = (0.0, 0.0);
        for i in 0..d.grid().nx() {
            let x = d.grid().index_to_world([k, j, i]).x;
            let v = f64::from(d.data()[[k, j, i]]);
            m0 += v;
            m2 += v * x * x;
        }
        m2 / m0
    };
    let grown = sigma_sq(&d1) - sigma_sq(&d0);
    // Highland, written out here: θ₀ = 14.1/pv √(L/X₀)(1 + log10(L/X₀)/9),
    // L = 20/1.165 mm of PMMA (X₀ = 405.5 mm), pv at ~105 MeV; lever arm
    // d = 300 − 49.5 (the point is 49.5 mm upstream of the isocentre)
    let l: f64 = 20.0 / 1.165;
    let x0 = 405.5;
    let e: f64 = 105.0;
    let pv = e * (e + 2.0 * 938.272) / (e + 938.272);
    let theta = 14.1 / pv * (l / x0).sqrt() * (1.0 + (l / x0).log10() / 9.0);
    let d = 300.0 - 49.5;
    let expected = theta * theta * (d * d + d * l + l * l / 3.0);
    println!("sigma^2 grows by {grown:.3} mm^2, Highland projection {expected:.3} mm^2");
    assert!(
        (grown - expected).abs() / expected < 0.15,
        "{grown} vs {expected}"
    );
}

/// An air gap downstream of a water layer: the deflections of the layer
/// act over the gap's length too, so behind the gap the spot is wider than
/// behind the same water with the gap closed (σ_MCS is integrated along
/// the geometric path, `physics::mcs::RayScattering`). The growth of σ²
/// against Highland's θ₀ of the layer projected over the extra lever arm,
/// written out here: a layer L = 40 mm, a gap g = 60 mm, the point D = 10 mm
/// beyond the gap: Δσ² = θ₀²[(D + g)² − D² + gL].
#[test]
fn an_air_gap_widens_the_spot_by_the_lever_arm() {
    let y0 = -100.0;
    let shape = [41, 200, 81];
    let closed = water(shape, [1.0; 3], y0);
    let mut gap = water(shape, [1.0; 3], y0);
    let g = gap.grid().clone();
    for ((k, j, i), v) in gap.data_mut().indexed_iter_mut() {
        let depth = g.index_to_world([k, j, i]).y - y0;
        if (40.0..100.0).contains(&depth) {
            *v = -1000.0;
        }
    }
    let plan = one_spot_plan(150.0, 0.0, 0.0, 0.0, 0.0);
    let sigma_sq = |ct: &CtVolume, depth: f64| {
        let d = engine()
            .pbs_dose(ct, &plan, machine(), None, &no_halo())
            .unwrap();
        let dg = d.grid();
        let j = ((y0 + depth - dg.origin_mm().y) / dg.spacing_mm().y).round() as usize;
        let (mut m0, mut m2) = (0.0, 0.0);
        for ((_, jj, i), v) in d.data().indexed_iter() {
            if jj == j {
                let x = dg.index_to_world([0, j, i]).x;
                m0 += f64::from(*v);
                m2 += f64::from(*v) * x * x;
            }
        }
        m2 / m0
    };
    // the same water-equivalent depth: 50.5 mm of water
    let grown = sigma_sq(&gap, 110.5) - sigma_sq(&closed, 50.5);
    let l: f64 = 40.0;
    let x0 = 360.8;
    let e: f64 = 140.0; // mean energy over the layer
    let pv = e * (e + 2.0 * 938.272) / (e + 938.272);
    let theta = 14.1 / pv * (l / x0).sqrt() * (1.0 + (l / x0).log10() / 9.0);
    let (dd, gg): (f64, f64) = (10.5, 60.0);
    let expected = theta * theta * ((dd + gg).powi(2) - dd * dd + gg * l);
    println!(
        "sigma^2 grows by {grown:.3} mm^2 behind the gap, Highland projection {expected:.3} mm^2"
    );
    assert!(
        (grown - expected).abs() / expected < 0.2,
        "{grown} vs {expected}"
    );
}
