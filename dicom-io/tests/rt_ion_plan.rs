//! RT Ion Plans from RayStation and Eclipse against the facts pydicom read
//! from the same files (tests/data/README.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use isodose_dicom::read_ion_plan;

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn raystation_sobp_plan() {
    let p = read_ion_plan(data("aptg_sobp_RP.dcm")).unwrap();
    assert_eq!(p.fractions, 1);
    assert_eq!(p.beams.len(), 1);
    let b = &p.beams[0];
    assert_eq!(
        (
            b.name.as_str(),
            b.machine.as_str(),
            b.radiation_type.as_str()
        ),
        ("b1", "TR3", "PROTON")
    );
    assert_eq!(
        (b.gantry_deg, b.couch_deg, b.isocenter_mm),
        (0.0, 0.0, [0.0; 3])
    );
    assert_eq!(b.virtual_source_axis_distances_mm, Some([2000.0, 2560.0]));
    assert_eq!(b.layers.len(), 34);
    assert_eq!(b.spot_count(), 9218);
    let (lo, hi) = b.layers.iter().fold((f64::MAX, f64::MIN), |(a, c), l| {
        (a.min(l.energy_mev), c.max(l.energy_mev))
    });
    assert_eq!((lo, hi), (78.5, 149.9));
    assert!((b.meterset_mu - 497.3384).abs() < 1e-6);
    // spot MU add up to the beam meterset
    assert!((b.total_mu() - 497.3384).abs() < 1e-3, "{}", b.total_mu());
    assert_eq!(b.layers[0].snout_position_mm, Some(200.0));
    assert!(b.layers.iter().all(|l| l.range_shifters.is_empty()));
    assert_eq!(
        p.referenced_structure_set_uid.as_deref(),
        Some("1.2.752.243.1.1.20221209135909128.2180.16718")
    );
}

#[test]
fn raystation_two_opposed_fields() {
    let p = read_ion_plan(data("aptg_ramp_RP.dcm")).unwrap();
    assert_eq!(p.beams.len(), 2);
    for (b, gantry) in p.beams.iter().zip([90.0, 270.0]) {
        assert_eq!(b.gantry_deg, gantry);
        assert_eq!(b.layers.len(), 22);
        assert_eq!(b.spot_count(), 9218);
        assert!((b.meterset_mu - 39294.15).abs() < 1e-6);
        assert!((b.total_mu() - 39294.15).abs() / 39294.15 < 1e-5);
        assert_eq!(b.layers[0].snout_position_mm, Some(421.0));
    }
}

#[test]
fn eclipse_plan_with_range_shifters() {
    let p = read_ion_plan(data("dcpt_head_RN.dcm")).unwrap();
    assert_eq!(p.fractions, 5);
    let expected = [
        ("Field 1", 24, 659, 5199.03, 232.5, 275.5),
        ("Field 2", 19, 624, 5532.59, 250.6, 293.6),
        ("Field 3", 19, 624, 4726.13, 209.2, 252.2),
    ];
    for (b, (name, layers, spots, mu, snout, rs_distance)) in p.beams.iter().zip(expected) {
        assert_eq!(b.name, name);
        assert_eq!(b.layers.len(), layers, "{name}");
        assert_eq!(b.spot_count(), spots, "{name}");
        // metersets as printed (6 significant digits)
        assert!(
            (b.meterset_mu - mu).abs() < 0.01,
            "{name}: {}",
            b.meterset_mu
        );
        assert!(
            (b.total_mu() - b.meterset_mu).abs() / mu < 1e-5,
            "{name}: {}",
            b.total_mu()
        );
        // PROVENANCE prints the isocentre rounded to 6 significant digits
        for (a, e) in b.isocenter_mm.iter().zip([0.0, -170.159, -2.12195]) {
            assert!((a - e).abs() < 1e-3, "{:?}", b.isocenter_mm);
        }
        let l = &b.layers[0];
        // PROVENANCE prints these rounded (the file stores FL values)
        assert!(
            (l.snout_position_mm.unwrap() - snout).abs() < 0.05,
            "{:?}",
            l.snout_position_mm
        );
        assert_eq!(l.range_shifters.len(), 1);
        let rs = &l.range_shifters[0];
        assert_eq!((rs.id.as_str(), rs.setting.as_str()), ("RS_5CM", "IN"));
        assert!((rs.water_equivalent_thickness_mm.unwrap() - 57.0).abs() < 0.05);
        assert!((rs.isocenter_distance_mm.unwrap() - rs_distance).abs() < 0.05);
    }
}

#[test]
fn wrong_files_are_clear_errors() {
    let err = read_ion_plan(data("aptg_sobp_RD.dcm"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("aptg_sobp_RD.dcm") && err.contains("SOPClassUID"),
        "{err}"
    );
    assert!(
        read_ion_plan(data("absent.dcm"))
            .unwrap_err()
            .to_string()
            .contains("absent.dcm")
    );
}

// ---------------------------------------------------------------------------
// Conversion to isodose proton plans (protons per spot)

use isodose_core::proton::machine::MachineRangeShifter;
use isodose_core::proton::{DoseOptions, ProtonBeam, ProtonMachine, ProtonPlan};
use isodose_core::{BackendChoice, Engine, Grid3, Volume};
use isodose_dicom::IonPlan;

fn generic() -> &'static ProtonMachine {
    isodose_core::proton::generic::generic_machine().unwrap()
}

/// Protons per MU at `e` MeV, by linear interpolation between the machine's
/// two tabulated neighbours (written here, independently of the crate); a
/// tabulated energy within 0.01 MeV is used as it is (the machine's
/// documented tolerance: Eclipse's 139.997 MeV is the 140 MeV beam).
fn protons_per_mu(machine: &ProtonMachine, e: f64) -> f64 {
    let t = machine.energies();
    if let Some(m) = t.iter().find(|m| (m.energy_mev - e).abs() <= 0.01) {
        return m.protons_per_mu;
    }
    let i = t.iter().position(|m| m.energy_mev >= e).unwrap();
    let (a, b) = (&t[i - 1], &t[i]);
    let f = (e - a.energy_mev) / (b.energy_mev - a.energy_mev);
    a.protons_per_mu + f * (b.protons_per_mu - a.protons_per_mu)
}

/// Spot-by-spot: same count, energies, positions, and protons = MU × the
/// interpolated protons per MU; returns the total protons.
fn check_spots(
    machine: &ProtonMachine,
    layers: &[isodose_dicom::IonLayer],
    beam: &ProtonBeam,
) -> f64 {
    let expected: Vec<(f64, f64, f64, f64)> = layers
        .iter()
        .flat_map(|l| {
            l.spots.iter().map(|s| {
                (
                    l.energy_mev,
                    s.0,
                    s.1,
                    s.2 * protons_per_mu(machine, l.energy_mev),
                )
            })
        })
        .collect();
    assert_eq!(beam.spots().len(), expected.len());
    for (s, (e, x, y, n)) in beam.spots().iter().zip(&expected) {
        assert_eq!((s.energy_mev, s.x_mm, s.y_mm), (*e, *x, *y));
        assert!((s.weight - n).abs() <= 1e-12 * n, "{} vs {n}", s.weight);
    }
    let total: f64 = expected.iter().map(|s| s.3).sum();
    let got: f64 = beam.spots().iter().map(|s| s.weight).sum();
    assert!((got - total).abs() <= 1e-9 * total);
    total
}

#[test]
fn raystation_plans_convert_to_protons_with_off_grid_energies() {
    let machine = generic();
    let p = read_ion_plan(data("aptg_sobp_RP.dcm")).unwrap();
    let plan = p.to_proton_plan(machine).unwrap();
    assert_eq!(plan.fractions(), 1);
    assert_eq!(plan.beams().len(), 1);
    let b = &plan.beams()[0];
    assert_eq!(b.spots().len(), 9218);
    assert_eq!((b.gantry_deg(), b.couch_deg()), (0.0, 0.0));
    let iso = b.frame().isocenter_mm();
    assert_eq!([iso.x, iso.y, iso.z], [0.0; 3]);
    assert!(b.range_shifter().is_none());
    // RayStation energies such as 78.5 MeV lie between the generic machine's
    // 1 MeV steps
    assert!(b.spots().iter().any(|s| s.energy_mev.fract() != 0.0));
    let total = check_spots(machine, &p.beams[0].layers, b);
    // the generic machine gives 1e8 protons/MU at 100 MeV and more above:
    // 497.3384 MU in 78.5–149.9 MeV carry 0.8–1.3 × 497.3384e8 protons
    assert!(
        total > 0.8 * 497.3384e8 && total < 1.3 * 497.3384e8,
        "{total}"
    );

    let p = read_ion_plan(data("aptg_ramp_RP.dcm")).unwrap();
    let plan = p.to_proton_plan(machine).unwrap();
    assert_eq!(plan.beams().len(), 2);
    assert_eq!(plan.spot_count(), 2 * 9218);
    for ((b, ion), gantry) in plan.beams().iter().zip(&p.beams).zip([90.0, 270.0]) {
        assert_eq!((b.gantry_deg(), b.couch_deg()), (gantry, 0.0));
        check_spots(machine, &ion.layers, b);
    }
}

#[test]
fn eclipse_plan_converts_with_its_range_shifters() {
    let machine = generic();
    let p = read_ion_plan(data("dcpt_head_RN.dcm")).unwrap();
    let plan = p.to_proton_plan(machine).unwrap();
    // NumberOfFractionsPlanned 5; weights are per fraction
    assert_eq!(plan.fractions(), 5);
    assert_eq!(plan.beams().len(), 3);
    for ((b, ion), (spots, distance)) in
        plan.beams()
            .iter()
            .zip(&p.beams)
            .zip([(659, 275.5), (624, 293.6), (624, 252.2)])
    {
        assert_eq!(b.spots().len(), spots, "{}", ion.name);
        let iso = b.frame().isocenter_mm();
        for (a, e) in [iso.x, iso.y, iso.z].iter().zip([0.0, -170.159, -2.12195]) {
            assert!((a - e).abs() < 1e-3, "{iso:?}");
        }
        assert_eq!(
            (b.gantry_deg(), b.couch_deg()),
            (ion.gantry_deg, ion.couch_deg)
        );
        let rs = b.range_shifter().unwrap();
        // RS_5CM: WET 57 mm and the isocentre distances of the plan
        assert!(
            (rs.water_equivalent_thickness_mm - 57.0).abs() < 0.05,
            "{rs:?}"
        );
        assert!((rs.isocenter_distance_mm - distance).abs() < 0.05, "{rs:?}");
        // no machine entry for it: PMMA (RSP 1.165, X₀ 40.55 cm)
        assert_eq!(
            (rs.relative_stopping_power, rs.radiation_length_mm),
            (1.165, 405.5)
        );
        let total = check_spots(machine, &ion.layers, b);
        let mu: f64 = ion.total_mu();
        assert!((mu - ion.meterset_mu).abs() / mu < 1e-5);
        assert!(total > mu * 1e8, "{total}");
    }
    // one beam by number
    let beams = p.to_proton_beams(2, machine).unwrap();
    assert_eq!(beams.len(), 1);
    assert_eq!(beams[0], plan.beams()[1]);
    let err = p.to_proton_beams(7, machine).unwrap_err().to_string();
    assert!(
        err.contains("(300A,00C0) BeamNumber") && err.contains("\"7\""),
        "{err}"
    );
}

/// The machine table supplies what the plan omits: the WET by
/// RangeShifterID, and the position from the SnoutPosition. In this Eclipse
/// plan IsocenterToRangeShifterDistance − SnoutPosition is 43.0 mm for all
/// three fields (275.5 − 232.5, 293.6 − 250.6, 252.2 − 209.2), so a machine
/// entry with snout_to_range_shifter_mm = 43 must reproduce the plan's own
/// distances from the snout positions alone.
#[test]
fn range_shifter_wet_and_position_come_from_the_machine_when_the_plan_omits_them() {
    let mut p = read_ion_plan(data("dcpt_head_RN.dcm")).unwrap();
    for b in &mut p.beams {
        for l in &mut b.layers {
            for rs in &mut l.range_shifters {
                rs.water_equivalent_thickness_mm = None;
                rs.isocenter_distance_mm = None;
            }
        }
    }
    // the generic machine has no range-shifter table: a clear error
    let err = p.to_proton_plan(generic()).unwrap_err().to_string();
    for needle in [
        "dcpt_head_RN.dcm",
        "(300A,0318) RangeShifterID",
        "RS_5CM",
        "beam 1 \"Field 1\"",
        "RangeShifterWaterEquivalentThickness",
        "generic",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    let machine = ProtonMachine::generic()
        .unwrap()
        .with_range_shifters(vec![
            MachineRangeShifter::new("RS_5cm", 57.0, "pmma", None, None, 43.0).unwrap(),
        ])
        .unwrap();
    let plan = p.to_proton_plan(&machine).unwrap();
    for (b, distance) in plan.beams().iter().zip([275.5, 293.6, 252.2]) {
        let rs = b.range_shifter().unwrap();
        assert_eq!(rs.water_equivalent_thickness_mm, 57.0);
        assert!((rs.isocenter_distance_mm - distance).abs() < 0.05, "{rs:?}");
    }
    // the plan's own WET wins over the table
    let mut q = p.clone();
    q.beams[0]
        .layers
        .iter_mut()
        .for_each(|l| l.range_shifters[0].water_equivalent_thickness_mm = Some(40.0));
    let b = &q.to_proton_beams(1, &machine).unwrap()[0];
    assert_eq!(
        b.range_shifter().unwrap().water_equivalent_thickness_mm,
        40.0
    );
    // neither distance nor snout: cannot place the shifter
    let mut q = p.clone();
    q.beams[0]
        .layers
        .iter_mut()
        .for_each(|l| l.snout_position_mm = None);
    let err = q.to_proton_plan(&machine).unwrap_err().to_string();
    for needle in [
        "dcpt_head_RN.dcm",
        "Field 1",
        "RS_5CM",
        "(300A,0364) IsocenterToRangeShifterDistance",
        "(300A,030D) SnoutPosition",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}

#[test]
fn layers_with_different_range_shifter_states_split_the_beam() {
    let machine = generic();
    let p = read_ion_plan(data("dcpt_head_RN.dcm")).unwrap();
    let mut q = p.clone();
    let layers = &mut q.beams[0].layers;
    assert_eq!(layers.len(), 24);
    // the 12 deepest layers (delivered first) with the shifter, the rest
    // without, and layer 20 with a thinner one
    for l in &mut layers[12..] {
        l.range_shifters[0].setting = "OUT".into();
    }
    layers[19].range_shifters[0].setting = "IN".into();
    layers[19].range_shifters[0].water_equivalent_thickness_mm = Some(30.0);
    let beams = q.to_proton_beams(1, machine).unwrap();
    assert_eq!(beams.len(), 3);
    let count = |r: std::ops::Range<usize>| -> usize {
        q.beams[0].layers[r].iter().map(|l| l.spots.len()).sum()
    };
    let spots: Vec<usize> = beams.iter().map(|b| b.spots().len()).collect();
    assert_eq!(
        spots,
        vec![count(0..12), count(12..19) + count(20..24), count(19..20)]
    );
    assert_eq!(spots.iter().sum::<usize>(), 659);
    let wets: Vec<Option<f64>> = beams
        .iter()
        .map(|b| b.range_shifter().map(|r| r.water_equivalent_thickness_mm))
        .collect();
    assert_eq!(wets[1], None);
    assert!((wets[0].unwrap() - 57.0).abs() < 0.05 && wets[2] == Some(30.0));
    for b in &beams {
        assert_eq!(b.frame(), beams[0].frame());
    }
    // the plan gets all three, and the other two fields after them
    assert_eq!(q.to_proton_plan(machine).unwrap().beams().len(), 5);
}

#[test]
fn unconvertible_plans_are_clear_errors() {
    let machine = generic();
    let p = read_ion_plan(data("dcpt_head_RN.dcm")).unwrap();
    let check = |q: &IonPlan, needles: &[&str]| {
        let err = q.to_proton_plan(machine).unwrap_err().to_string();
        for n in needles.iter().chain(&["dcpt_head_RN.dcm"]) {
            assert!(err.contains(n), "{n:?} not in {err}");
        }
    };
    // an energy above the machine's 230 MeV
    let mut q = p.clone();
    q.beams[1].layers[0].energy_mev = 250.0;
    check(
        &q,
        &[
            "(300A,0114) NominalBeamEnergy",
            "250 MeV",
            "beam 2 \"Field 2\"",
            "layer 1",
            "70 to 230 MeV",
        ],
    );
    // and one below 70 MeV
    let mut q = p.clone();
    q.beams[2].layers[18].energy_mev = 60.5;
    check(&q, &["60.5 MeV", "beam 3 \"Field 3\"", "layer 19"]);
    // two shifters at once
    let mut q = p.clone();
    let mut second = q.beams[0].layers[3].range_shifters[0].clone();
    second.id = "RS_3CM".into();
    q.beams[0].layers[3].range_shifters.push(second);
    check(&q, &["2 range shifters", "RS_5CM", "RS_3CM", "layer 4"]);
    // a setting that is neither IN nor OUT counts as inserted; an empty one
    // is an error
    let mut q = p.clone();
    q.beams[0].layers[0].range_shifters[0].setting = String::new();
    check(&q, &["(300A,0362) RangeShifterSetting", "RS_5CM"]);
    let mut q = p.clone();
    q.beams[0]
        .layers
        .iter_mut()
        .for_each(|l| l.range_shifters[0].setting = "IN_POS_2".into());
    assert!(
        q.to_proton_plan(machine).unwrap().beams()[0]
            .range_shifter()
            .is_some()
    );
    // carbon ions
    let mut q = p.clone();
    q.beams[0].radiation_type = "ION".into();
    check(&q, &["(300A,00C6) RadiationType", "ION", "Field 1"]);
    // a beam without spots
    let mut q = p.clone();
    q.beams[0].layers.clear();
    check(&q, &["Field 1", "no spot"]);
}

/// PSTAR CSDA range (mm) at `e`, log-log between the neighbouring rows of
/// the NIST table shipped in dose-core.
fn pstar_csda_mm(e: f64) -> f64 {
    let rows: Vec<(f64, f64)> = include_str!("../../dose-core/data/protons/pstar_water_proton.csv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[0].parse().unwrap(), 10.0 * c[4].parse::<f64>().unwrap())
        })
        .collect();
    let i = rows.iter().position(|r| r.0 > e).unwrap();
    let ((e0, r0), (e1, r1)) = (rows[i - 1], rows[i]);
    r0 * (e / e0).powf((r1 / r0).ln() / (e1 / e0).ln())
}

/// End to end: the Eclipse plan's field 1 (range shifter RS_5CM, 57 mm WET,
/// 110–186 MeV), converted, on a water box with the engine's CPU backend.
#[test]
fn converted_eclipse_field_computes_dose_in_water() {
    let machine = generic();
    let p = read_ion_plan(data("dcpt_head_RN.dcm")).unwrap();
    let beams = p.to_proton_beams(1, machine).unwrap();
    assert_eq!(beams.len(), 1);
    let beam = &beams[0];
    assert_eq!(beam.gantry_deg(), 0.0); // along +y (posterior), LPS
    let iso = beam.frame().isocenter_mm();
    // water from 100 mm upstream of the isocentre, 4 mm laterally, 1 mm deep
    let surface_y = iso.y - 100.0;
    let (nx, ny, nz) = (41, 200, 41);
    let grid = Grid3::new(
        [nz, ny, nx],
        [4.0, 1.0, 4.0],
        [iso.x - 80.0, surface_y + 0.5, iso.z - 80.0],
    )
    .unwrap();
    let ct = Volume::filled(grid, 0.0f32);
    let engine = Engine::new(BackendChoice::Cpu).unwrap();
    // laterally integrated depth dose and its distal 80 % depth (mm)
    let depth_dose = |plan: &ProtonPlan, options: &DoseOptions| {
        let dose = engine.pbs_dose(&ct, plan, machine, None, options).unwrap();
        assert!(dose.data().iter().all(|d| d.is_finite() && *d >= 0.0));
        let idd: Vec<f64> = (0..ny)
            .map(|j| {
                let mut s = 0.0;
                for k in 0..nz {
                    for i in 0..nx {
                        s += f64::from(dose.data()[[k, j, i]]);
                    }
                }
                s
            })
            .collect();
        let (jmax, max) = idd
            .iter()
            .enumerate()
            .fold((0, 0.0), |a, (j, v)| if *v > a.1 { (j, *v) } else { a });
        let j = (jmax..ny - 1).find(|&j| idd[j + 1] < 0.8 * max).unwrap();
        let r80 = j as f64 + 0.5 + (idd[j] - 0.8 * max) / (idd[j] - idd[j + 1]);
        (dose, jmax as f64 + 0.5, r80)
    };
    let wet = beam.range_shifter().unwrap().water_equivalent_thickness_mm;
    let (e_max, e_min) = (186.197, 110.297);
    // the whole field: finite, non-negative, its maximum in the spread-out
    // peak between the ranges of the lowest and highest layers behind 57 mm
    // of water equivalent, and its distal edge no deeper than the highest
    let plan = ProtonPlan::new(vec![beam.clone()], 1).unwrap();
    let (dose, peak, r80) = depth_dose(&plan, &DoseOptions::new().unwrap());
    let (lo, hi) = (pstar_csda_mm(e_min) - wet, pstar_csda_mm(e_max) - wet);
    println!(
        "field 1: depth-dose peak {peak:.1} mm, distal 80 % {r80:.1} mm; layer ranges behind the shifter {lo:.1}..{hi:.1} mm"
    );
    assert!(peak > lo && peak < hi, "{peak}");
    assert!(r80 > lo && r80 < hi + 1.0, "{r80}");
    let max = dose.data().iter().fold(0.0f32, |a, b| a.max(*b));
    assert!(max > 0.0);
    // the highest layer alone (no halo, all its dose inside the box): the
    // distal 80 % of its laterally integrated dose is its range minus the
    // shifter's WET (generic R80 = PSTAR CSDA range within 0.5 mm)
    let top: Vec<_> = beam
        .spots()
        .iter()
        .filter(|s| s.energy_mev == e_max)
        .copied()
        .collect();
    assert_eq!(top.len(), 10);
    let top_beam = ProtonBeam::new(
        0.0,
        0.0,
        [iso.x, iso.y, iso.z],
        top,
        beam.range_shifter().copied(),
    )
    .unwrap();
    let options = DoseOptions {
        include_halo: false,
        ..DoseOptions::new().unwrap()
    };
    let (_, _, r80_top) = depth_dose(&ProtonPlan::new(vec![top_beam], 1).unwrap(), &options);
    let expected = pstar_csda_mm(e_max) - 57.0;
    println!(
        "186.197 MeV layer behind RS_5CM: distal 80 % at {r80_top:.2} mm, PSTAR range − 57 mm = {expected:.2} mm"
    );
    assert!((r80_top - expected).abs() < 1.0, "{r80_top} vs {expected}");
}
