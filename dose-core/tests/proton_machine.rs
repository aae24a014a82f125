//! The generic proton machine against independent data: PSTAR CSDA ranges
//! (NIST) and the Highland-based lateral spread.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use isodose_core::physics::mcs::mcs_sigma_mm;
use isodose_core::physics::pstar::WaterStopping;
use isodose_core::proton::ProtonMachine;
use isodose_core::proton::generic::highland_params;

/// (E MeV, CSDA range mm, flag) from the PSTAR selection in tests/data.
fn pstar_selected() -> Vec<(f64, f64, String)> {
    include_str!("data/pstar_water_csda_selected_energies.csv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (
                c[0].parse().unwrap(),
                10.0 * c[1].parse::<f64>().unwrap(),
                c[3].to_owned(),
            )
        })
        .collect()
}

#[test]
fn r80_of_the_generic_machine_matches_pstar_csda_ranges() {
    let machine = ProtonMachine::generic().unwrap();
    let mut checked = 0;
    for (e, csda_mm, flag) in pstar_selected() {
        if ![70.0, 100.0, 150.0, 200.0, 230.0].contains(&e) {
            continue;
        }
        let model = machine.energy(e).unwrap();
        let r80 = model.r80_mm;
        println!(
            "{e} MeV: R80 {r80:.2} mm vs PSTAR CSDA {csda_mm:.2} mm ({flag}): {:+.2} mm",
            r80 - csda_mm
        );
        assert!(
            (r80 - csda_mm).abs() <= 0.5,
            "{e} MeV: R80 {r80} vs CSDA {csda_mm}"
        );
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn generic_machine_covers_70_to_230_mev_with_sane_data() {
    let machine = ProtonMachine::generic().unwrap();
    let e = machine.energies();
    assert_eq!(e.first().unwrap().energy_mev, 70.0);
    assert_eq!(e.last().unwrap().energy_mev, 230.0);
    assert_eq!(e.len(), 161);
    // R80 increases with energy; spot size shrinks; more protons per MU
    for w in e.windows(2) {
        assert!(w[1].r80_mm > w[0].r80_mm);
        assert!(w[1].optics_x.sigma_mm <= w[0].optics_x.sigma_mm);
        assert!(w[1].protons_per_mu > w[0].protons_per_mu);
    }
    assert!(machine.energy(69.0).is_err());
    assert!(
        machine
            .energy(100.5)
            .unwrap_err()
            .to_string()
            .contains("70 to 230 MeV")
    );
}

/// Energy balance of the Bragg curve: the IDD integrated over depth is the
/// energy the proton deposits, E₀ minus the nonelastic energy carried away
/// (a fraction 1 − γ of the energy of the removed protons). Checked against
/// E₀ from both sides: at least γ-weighted and at most E₀.
#[test]
fn integrated_depth_dose_deposits_at_most_the_beam_energy() {
    let machine = ProtonMachine::generic().unwrap();
    for e in [70.0, 150.0, 230.0] {
        let m = machine.energy(e).unwrap();
        let (z, d) = (m.idd.depths(), m.idd.values());
        let mut integral = 0.0;
        for i in 1..z.len() {
            integral += 0.5 * (d[i] + d[i - 1]) * (z[i] - z[i - 1]);
        }
        // Gy·mm³ per proton → MeV: 1 Gy·mm³ (ρ = 1 g/cm³) = 1e-6 J / 1.602e-13 J/MeV
        let mev = integral * 1e-6 / 1.602_176_634e-13;
        println!("{e} MeV: integral of the IDD = {mev:.2} MeV");
        assert!(mev <= e * 1.001, "{e}: {mev}");
        assert!(mev >= 0.85 * e, "{e}: {mev}");
    }
}

/// Lateral spread by MCS in water against the Hong et al. (PMB 41:1305, 1996)
/// parametrisation of the Highland pencil-beam width, as carried by
/// plastimatch (mcs_highland_hong_params.json): σ at the end of range
/// σ₀ = 0.02275 R + 1.2085e-6 R² (mm), and σ(z) = σ₀ t (0.26232 + 0.64298 t +
/// 0.0952393 t²), t = z/R.
#[test]
fn lateral_spread_grows_as_highland_predicts() {
    let pstar = WaterStopping::pstar().unwrap();
    let params = highland_params().unwrap();
    for e in [100.0, 150.0, 200.0, 230.0] {
        let range = pstar.csda_range_mm(e).unwrap();
        let sigma = mcs_sigma_mm(&params, pstar, e, 1.0, range).unwrap();
        let s0 = 0.02275 * range + 1.2085e-6 * range * range;
        for t in [0.5, 0.7, 0.9, 0.97] {
            let z = t * range;
            let hong = s0 * t * (0.26232 + 0.64298 * t + 0.0952393 * t * t);
            let ours = sigma[z.round() as usize];
            println!("{e} MeV, z/R = {t}: sigma {ours:.3} mm vs Hong fit {hong:.3} mm");
            assert!(
                (ours - hong).abs() / hong < 0.05,
                "{e} MeV at t = {t}: {ours} vs {hong}"
            );
        }
    }
}
