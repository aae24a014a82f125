//! The built-in `generic` machine, generated from physics.
//!
//! For each energy from 70 to 230 MeV (1 MeV steps): the integrated depth dose
//! is Bortfeld's analytical Bragg curve ([`crate::physics::bortfeld`]) with the
//! range R₀ = PSTAR CSDA range and a 0.5 % energy spread; the nuclear halo
//! carries the dose of Bortfeld's locally absorbed nonelastic term, spread with
//! an extra σ of R₀/6; the in-air optics and MU calibration are plausible
//! design choices. Every constant is read from `data/protons/`: the published
//! ones from the reference-data copies (`bragg_kleeman_bortfeld_params.json`,
//! `mcs_highland_hong_params.json`, `pstar_water_proton.csv`, each with its
//! source), the design choices from `generic_machine.json`, which says which is
//! which. The machine is built once per process.

use std::sync::OnceLock;

use rayon::prelude::*;
use serde_json::Value;

use super::machine::{DepthCurve, EnergyModel, HaloModel, ProtonMachine, SpotOptics};
use crate::error::{DoseError, Result};
use crate::physics::GY_MM2_PER_MEV_CM2_PER_G;
use crate::physics::bortfeld::{BortfeldParams, BraggCurve};
use crate::physics::mcs::HighlandParams;
use crate::physics::pstar::WaterStopping;
use crate::physics::table::lerp_clamped;

const BORTFELD_JSON: &str = include_str!("../../data/protons/bragg_kleeman_bortfeld_params.json");
const HIGHLAND_JSON: &str = include_str!("../../data/protons/mcs_highland_hong_params.json");
const RECIPE_JSON: &str = include_str!("../../data/protons/generic_machine.json");

fn data_error(origin: &str, reason: impl Into<String>) -> DoseError {
    DoseError::SeedData {
        origin: origin.to_owned(),
        reason: reason.into(),
    }
}

/// The number at `path` (keys and array indices) in `v`.
fn number(v: &Value, path: &[&str], origin: &str) -> Result<f64> {
    let mut cur = v;
    for key in path {
        cur = match key.parse::<usize>() {
            Ok(i) => cur.get(i),
            Err(_) => cur.get(*key),
        }
        .ok_or_else(|| data_error(origin, format!("missing {}", path.join("."))))?;
    }
    cur.as_f64()
        .ok_or_else(|| data_error(origin, format!("{} is not a number", path.join("."))))
}

fn numbers(v: &Value, path: &[&str], origin: &str) -> Result<Vec<f64>> {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(*key)
            .ok_or_else(|| data_error(origin, format!("missing {}", path.join("."))))?;
    }
    cur.as_array()
        .ok_or_else(|| data_error(origin, format!("{} is not a list", path.join("."))))?
        .iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| data_error(origin, format!("{} holds a non-number", path.join("."))))
        })
        .collect()
}

fn parse(text: &str, origin: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| data_error(origin, e.to_string()))
}

/// Bortfeld's water constants: p of the "Bortfeld 1997 (water)" Bragg–Kleeman
/// set, β, γ and ε from `bragg_kleeman_bortfeld_params.json`, σ_mono from the
/// recipe (copied there from the same file's formula text).
pub fn bortfeld_params() -> Result<BortfeldParams> {
    let origin = "bragg_kleeman_bortfeld_params.json";
    let v = parse(BORTFELD_JSON, origin)?;
    let set = &v["bragg_kleeman_parameter_sets"][0];
    if set["label"].as_str() != Some("Bortfeld 1997 (water)") {
        return Err(data_error(
            origin,
            "first parameter set is not 'Bortfeld 1997 (water)'",
        ));
    }
    let recipe = parse(RECIPE_JSON, "generic_machine.json")?;
    const C: &str = "bortfeld1997_water_constants";
    Ok(BortfeldParams {
        p: number(set, &["p"], origin)?,
        beta_per_cm: number(&v, &[C, "beta_per_cm"], origin)?,
        gamma: number(&v, &[C, "gamma"], origin)?,
        epsilon: number(&v, &[C, "epsilon_default"], origin)?,
        sigma_mono_coefficient_cm: number(
            &recipe,
            &["range_straggling", "sigma_mono_coefficient_cm"],
            "generic_machine.json",
        )?,
        sigma_mono_exponent: number(
            &recipe,
            &["range_straggling", "sigma_mono_exponent"],
            "generic_machine.json",
        )?,
    })
}

/// Highland–Gottschalk constants (E_s = 14.1 MeV, 1/9 log₁₀) and the
/// radiation length of water, from `mcs_highland_hong_params.json`.
pub fn highland_params() -> Result<HighlandParams> {
    let origin = "mcs_highland_hong_params.json";
    let v = parse(HIGHLAND_JSON, origin)?;
    let h = &v["highland_variants"][0];
    let coefficient = h["log_coefficient"]
        .as_str()
        .and_then(|s| s.split(',').next())
        .and_then(|frac| {
            let (a, b) = frac.trim().split_once('/')?;
            Some(a.trim().parse::<f64>().ok()? / b.trim().parse::<f64>().ok()?)
        })
        .ok_or_else(|| {
            data_error(
                origin,
                "highland_variants[0].log_coefficient is not 'a/b, log10'",
            )
        })?;
    let x0_g_cm2 = number(&v, &["radiation_lengths", "water_g_cm2"], origin)?;
    Ok(HighlandParams {
        es_mev: number(h, &["E_s_MeV"], origin)?,
        log10_coefficient: coefficient,
        // water, ρ = 1 g/cm³: g/cm² → cm → mm
        water_radiation_length_mm: x0_g_cm2 * 10.0,
    })
}

/// The recipe's per-energy constants, read once.
struct Recipe {
    first: f64,
    last: f64,
    step: f64,
    spread: f64,
    sad_x: f64,
    sad_y: f64,
    sigma_e: Vec<f64>,
    sigma_v: Vec<f64>,
    divergence: f64,
    correlation: f64,
    halo_fraction: f64,
    n_ref: f64,
    s_ref: f64,
    params: BortfeldParams,
}

impl Recipe {
    fn read() -> Result<Self> {
        let origin = "generic_machine.json";
        let recipe = parse(RECIPE_JSON, origin)?;
        let pstar = WaterStopping::pstar()?;
        let e_ref = number(&recipe, &["monitor_units", "reference_energy_mev"], origin)?;
        let r = Self {
            first: number(&recipe, &["energies_mev", "first"], origin)?,
            last: number(&recipe, &["energies_mev", "last"], origin)?,
            step: number(&recipe, &["energies_mev", "step"], origin)?,
            spread: number(&recipe, &["energy_spread_fraction", "value"], origin)?,
            sad_x: number(&recipe, &["optics", "sad_x_mm"], origin)?,
            sad_y: number(&recipe, &["optics", "sad_y_mm"], origin)?,
            sigma_e: numbers(
                &recipe,
                &["optics", "sigma_at_isocenter_mm", "energy_mev"],
                origin,
            )?,
            sigma_v: numbers(
                &recipe,
                &["optics", "sigma_at_isocenter_mm", "sigma_mm"],
                origin,
            )?,
            divergence: number(&recipe, &["optics", "divergence_mrad"], origin)?,
            correlation: number(&recipe, &["optics", "correlation"], origin)?,
            halo_fraction: number(
                &recipe,
                &["nuclear_halo", "sigma_fraction_of_range"],
                origin,
            )?,
            n_ref: number(
                &recipe,
                &["monitor_units", "protons_per_mu_at_reference"],
                origin,
            )?,
            s_ref: pstar.stopping_power_mev_cm2_g(e_ref)?,
            params: bortfeld_params()?,
        };
        if !(r.step > 0.0 && r.last >= r.first)
            || r.sigma_e.len() != r.sigma_v.len()
            || r.sigma_e.is_empty()
        {
            return Err(data_error(
                origin,
                "energies or optics tables are malformed",
            ));
        }
        Ok(r)
    }

    /// The beam model of energy `e` (MeV), computed from physics.
    fn model(&self, e: f64) -> Result<EnergyModel> {
        let optics = SpotOptics {
            sigma_mm: lerp_clamped(&self.sigma_e, &self.sigma_v, e),
            divergence_mrad: self.divergence,
            correlation: self.correlation,
        };
        let s = WaterStopping::pstar()?.stopping_power_mev_cm2_g(e)?;
        physics_energy_model(
            &PhysicsBeam {
                nominal_energy_mev: e,
                mean_energy_mev: e,
                energy_spread_fraction: self.spread,
                optics_x: optics,
                optics_y: optics,
                protons_per_mu: self.n_ref * self.s_ref / s,
                halo_sigma_fraction_of_range: self.halo_fraction,
            },
            &self.params,
        )
    }
}

/// What a beam model generated from physics needs to know of one energy of a
/// beam line.
#[derive(Clone, Copy, Debug)]
pub struct PhysicsBeam {
    /// The energy plans name (the model's `energy_mev`), MeV.
    pub nominal_energy_mev: f64,
    /// Mean energy at the nozzle, MeV: sets the range (PSTAR CSDA range).
    pub mean_energy_mev: f64,
    /// 1σ energy spread as a fraction of the mean energy.
    pub energy_spread_fraction: f64,
    /// In-air optics at the isocentre plane.
    pub optics_x: SpotOptics,
    pub optics_y: SpotOptics,
    /// MU calibration.
    pub protons_per_mu: f64,
    /// Extra σ of the nuclear halo as a fraction of the CSDA range (the
    /// generic machine's design choice is 1/6, see `generic_machine.json`).
    pub halo_sigma_fraction_of_range: f64,
}

/// The beam model of one energy generated from physics: the IDD is
/// Bortfeld's Bragg curve (Bortfeld 1997, Med. Phys. 24:2024;
/// [`BraggCurve`]) with R₀ the PSTAR CSDA range of the mean energy and the
/// given energy spread; the nuclear halo carries Bortfeld's locally absorbed
/// nonelastic term, spread with an extra σ of
/// `halo_sigma_fraction_of_range`·R₀. The recipe of the generic machine, and
/// of machines read from an MCsquare beam data library ([`super::bdl`]).
pub fn physics_energy_model(beam: &PhysicsBeam, params: &BortfeldParams) -> Result<EnergyModel> {
    let e = beam.mean_energy_mev;
    let pstar = WaterStopping::pstar()?;
    let range = pstar.csda_range_mm(e)?;
    let s = pstar.stopping_power_mev_cm2_g(e)?;
    let curve = BraggCurve::new(params, e, range, s, beam.energy_spread_fraction)?;
    let sigma = curve.sigma_mm();
    let end = range + 8.0 * sigma;
    let dz = (sigma / 5.0).min(0.25);
    let n = (end / dz).ceil() as usize + 1;
    let depths: Vec<f64> = (0..n).map(|k| k as f64 * dz).collect();
    let dose: Vec<f64> = depths
        .iter()
        .map(|&z| (curve.dose(z) * GY_MM2_PER_MEV_CM2_PER_G).max(0.0))
        .collect();
    let name = beam.nominal_energy_mev;
    let idd = DepthCurve::new(&format!("{name} MeV idd"), depths, dose)?;
    let halo_depths: Vec<f64> = (0..=(end.ceil() as usize)).map(|k| k as f64).collect();
    let weight = halo_depths
        .iter()
        .map(|&z| curve.nuclear_fraction(z))
        .collect();
    let extra = vec![beam.halo_sigma_fraction_of_range * range; halo_depths.len()];
    let halo = HaloModel {
        weight: DepthCurve::new(
            &format!("{name} MeV halo weight"),
            halo_depths.clone(),
            weight,
        )?,
        extra_sigma_mm: DepthCurve::new(&format!("{name} MeV halo sigma"), halo_depths, extra)?,
    };
    EnergyModel::new(
        beam.nominal_energy_mev,
        idd,
        beam.optics_x,
        beam.optics_y,
        beam.protons_per_mu,
        Some(halo),
    )
}

/// The generic machine's beam model at any energy `energy_mev` within its
/// range (70–230 MeV), computed directly from physics by the same recipe as
/// the tabulated energies, not interpolated. It is the reference against
/// which [`ProtonMachine::energy_model`]'s interpolation between tabulated
/// energies is measured.
pub fn generic_energy_model(energy_mev: f64) -> Result<EnergyModel> {
    let recipe = Recipe::read()?;
    if !(energy_mev >= recipe.first && energy_mev <= recipe.last) {
        return Err(DoseError::OutOfRange {
            field: "generic machine energy (MeV)".into(),
            value: energy_mev,
            reason: format!(
                "the generic machine covers {} to {} MeV",
                recipe.first, recipe.last
            ),
        });
    }
    recipe.model(energy_mev)
}

fn build() -> Result<ProtonMachine> {
    let recipe = Recipe::read()?;
    let count = ((recipe.last - recipe.first) / recipe.step).round() as usize + 1;
    let energies = (0..count)
        .into_par_iter()
        .map(|i| recipe.model(recipe.first + i as f64 * recipe.step))
        .collect::<Result<Vec<_>>>()?;
    ProtonMachine::new(
        "generic",
        recipe.sad_x,
        recipe.sad_y,
        energies,
        highland_params()?,
    )
}

/// The built-in generic machine (built once per process, then shared).
pub fn generic_machine() -> Result<&'static ProtonMachine> {
    static MACHINE: OnceLock<std::result::Result<ProtonMachine, String>> = OnceLock::new();
    MACHINE
        .get_or_init(|| build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|reason| data_error("built-in generic machine", reason.clone()))
}

impl ProtonMachine {
    /// The built-in generic machine: 70–230 MeV, generated from physics (see
    /// [`crate::proton::generic`]).
    pub fn generic() -> Result<Self> {
        generic_machine().cloned()
    }
}
