//! MCsquare beam data libraries (BDL) as proton machines.
//!
//! A BDL is the text machine file of MCsquare and OpenTPS (UCLouvain; the
//! format is described in MCsquare's user manual and read by
//! `opentps.core.io.mcsquareIO.readBDL`): the nozzle-exit-to-isocentre
//! distance, the two scanning-magnet distances, optional range shifters,
//! and a table with one row per nominal energy:
//!
//! ```text
//! NominalEnergy MeanEnergy EnergySpread ProtonsMU Weight1 SpotSize1x Divergence1x Correlation1x
//!     SpotSize1y Divergence1y Correlation1y [Weight2 SpotSize2x Divergence2x Correlation2x
//!     SpotSize2y Divergence2y Correlation2y]
//! ```
//!
//! (MeV, MeV, % of the mean energy, protons per MU, –, mm, rad, –, …), the
//! spot size, divergence and position–angle correlation given at the nozzle
//! exit, per Gaussian of the "UPenn" double-Gaussian model. Every row of
//! the table is read (the "N energies" line is not checked: OpenTPS's stock
//! libraries declare 26 and hold 27 rows, as OpenTPS reads them).
//!
//! # How a BDL becomes a [`ProtonMachine`]
//!
//! - **Virtual source distances**: SAD_x = "SMX to Isocenter distance",
//!   SAD_y = "SMY to Isocenter distance" (mm).
//! - **Optics**: each Gaussian is carried from the nozzle exit to the
//!   isocentre plane, a distance d downstream (no material in between, as
//!   MCsquare transports the beam in vacuum to the patient):
//!   σ_iso² = σ² + 2ρσθd + θ²d², and the position–angle covariance
//!   ρσθ + θ²d, so ρ_iso = (ρσθ + θ²d)/(σ_iso θ). Gaussian 1 is the core's
//!   [`SpotOptics`].
//! - **Second Gaussian** (Weight2 > 0): isodose's lateral model has one core
//!   Gaussian and one halo Gaussian per depth. The in-air second Gaussian is
//!   folded into the halo: halo weight h' = w₂ + w₁·h_nuc(z), extra variance
//!   e'² = (w₂·e₂² + w₁h_nuc·e_nuc²)/h', with e₂² = σ₂,iso² − σ₁,iso² at the
//!   isocentre (mean of x and y; its change with depth is left out).
//!   Single-Gaussian libraries (Weight2 = 0, or 11 columns) keep the physics
//!   halo unchanged.
//! - **Depth dose**: generated from physics for the row's mean energy and
//!   energy spread ([`physics_energy_model`]: Bortfeld's Bragg curve with
//!   the PSTAR range, the nuclear halo of the generic machine), so a BDL
//!   needs no measured curves; its `energy_mev` is the nominal energy, which
//!   plans name.
//! - **MU calibration**: ProtonsMU.
//! - **Range shifters** ("Range Shifter parameters" blocks): RS_ID and RS_WET
//!   (mm); RS_material 64 (MCsquare's PMMA) becomes isodose's PMMA; other
//!   materials are an error naming the shifter (give the machine as
//!   isodose JSON instead).

use std::path::Path;

use super::generic::{PhysicsBeam, bortfeld_params, highland_params, physics_energy_model};
use super::machine::SpotOptics;
use super::machine::{DepthCurve, EnergyModel, HaloModel, MachineRangeShifter, ProtonMachine};
use crate::error::{DoseError, Result, read_text};

/// MCsquare's material number of PMMA (`Materials/list.dat`).
const MCSQUARE_PMMA: u32 = 64;

/// The generic machine's nuclear-halo width (extra σ / CSDA range), used for
/// BDL machines as well.
const HALO_SIGMA_FRACTION_OF_RANGE: f64 = 1.0 / 6.0;

fn bdl_error(origin: &str, reason: impl Into<String>) -> DoseError {
    DoseError::InvalidTable {
        table: format!("beam data library {origin}"),
        reason: reason.into(),
    }
}

/// One Gaussian of a BDL row at the nozzle exit.
#[derive(Clone, Copy, Debug)]
struct NozzleGaussian {
    sigma_mm: f64,
    divergence_rad: f64,
    correlation: f64,
}

impl NozzleGaussian {
    /// The same Gaussian at the isocentre plane, `d_mm` downstream.
    fn at_isocentre(self, d_mm: f64) -> SpotOptics {
        let (s, t, r) = (self.sigma_mm, self.divergence_rad, self.correlation);
        let var = s * s + 2.0 * r * s * t * d_mm + t * t * d_mm * d_mm;
        let sigma = var.max(0.0).sqrt();
        let correlation = if t > 0.0 && sigma > 0.0 {
            ((r * s * t + t * t * d_mm) / (sigma * t)).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        SpotOptics {
            sigma_mm: sigma,
            divergence_mrad: t * 1e3,
            correlation,
        }
    }
}

impl ProtonMachine {
    /// Reads an MCsquare beam data library (see the [module docs](self)).
    pub fn from_bdl_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bdl_str(&read_text(path)?, &path.display().to_string())
    }

    /// Parses the text of an MCsquare beam data library; `origin` names it
    /// in errors (and the machine).
    pub fn from_bdl_str(text: &str, origin: &str) -> Result<Self> {
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .collect();
        let value_after = |key: &str| -> Result<f64> {
            let i = lines
                .iter()
                .position(|l| l.eq_ignore_ascii_case(key))
                .ok_or_else(|| bdl_error(origin, format!("no {key:?} line")))?;
            let next = lines[i + 1..]
                .iter()
                .find(|l| !l.is_empty())
                .ok_or_else(|| bdl_error(origin, format!("no value after {key:?}")))?;
            let v: f64 = next
                .split_whitespace()
                .next()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| bdl_error(origin, format!("{key:?}: {next:?} is not a number")))?;
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(bdl_error(origin, format!("{key:?} = {v} must be > 0")))
            }
        };
        let nozzle_mm = value_after("Nozzle exit to Isocenter distance")?;
        let sad_x = value_after("SMX to Isocenter distance")?;
        let sad_y = value_after("SMY to Isocenter distance")?;
        let header = lines
            .iter()
            .position(|l| l.starts_with("NominalEnergy"))
            .ok_or_else(|| bdl_error(origin, "no table header starting with NominalEnergy"))?;
        let params = bortfeld_params()?;
        let mut energies = Vec::new();
        for (k, line) in lines.iter().enumerate().skip(header + 1) {
            if line.is_empty() {
                continue;
            }
            let row = k + 1;
            let v: Vec<f64> = line
                .split_whitespace()
                .map(|t| {
                    t.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| {
                            bdl_error(origin, format!("line {row}: {t:?} is not a number"))
                        })
                })
                .collect::<Result<_>>()?;
            if v.len() != 11 && v.len() != 18 {
                return Err(bdl_error(
                    origin,
                    format!("line {row}: {} columns, expected 11 or 18", v.len()),
                ));
            }
            energies.push(energy_row(&v, nozzle_mm, &params, origin, row)?);
        }
        if energies.is_empty() {
            return Err(bdl_error(origin, "the energy table is empty"));
        }
        let file = Path::new(origin)
            .file_name()
            .map_or(origin.into(), |f| f.to_string_lossy());
        let name = format!("BDL {file}");
        let machine = ProtonMachine::new(&name, sad_x, sad_y, energies, highland_params()?)?;
        machine.with_range_shifters(range_shifters(&lines, origin)?)
    }
}

/// One energy of the table: `v` holds the row's 11 or 18 numbers.
fn energy_row(
    v: &[f64],
    nozzle_mm: f64,
    params: &crate::physics::bortfeld::BortfeldParams,
    origin: &str,
    row: usize,
) -> Result<EnergyModel> {
    let (nominal, mean, spread_pct, per_mu, w1) = (v[0], v[1], v[2], v[3], v[4]);
    let gauss = |i: usize| NozzleGaussian {
        sigma_mm: v[i],
        divergence_rad: v[i + 1],
        correlation: v[i + 2],
    };
    let checks = [
        (nominal > 0.0, "NominalEnergy must be > 0"),
        (mean > 0.0, "MeanEnergy must be > 0"),
        (
            (0.0..50.0).contains(&spread_pct),
            "EnergySpread must be within 0-50 %",
        ),
        (per_mu > 0.0, "ProtonsMU must be > 0"),
        (
            (0.0..=1.0).contains(&w1) && w1 > 0.0,
            "Weight1 must be within (0, 1]",
        ),
    ];
    if let Some((_, why)) = checks.iter().find(|c| !c.0) {
        return Err(bdl_error(origin, format!("line {row}: {why}")));
    }
    let core_x = gauss(5).at_isocentre(nozzle_mm);
    let core_y = gauss(8).at_isocentre(nozzle_mm);
    let model = physics_energy_model(
        &PhysicsBeam {
            nominal_energy_mev: nominal,
            mean_energy_mev: mean,
            energy_spread_fraction: spread_pct / 100.0,
            optics_x: core_x,
            optics_y: core_y,
            protons_per_mu: per_mu,
            halo_sigma_fraction_of_range: HALO_SIGMA_FRACTION_OF_RANGE,
        },
        params,
    )
    .map_err(|e| bdl_error(origin, format!("line {row}: {e}")))?;
    let w2 = if v.len() == 18 { v[11] } else { 0.0 };
    if w2 <= 0.0 {
        return Ok(model);
    }
    if (w1 + w2 - 1.0).abs() > 1e-3 {
        return Err(bdl_error(
            origin,
            format!("line {row}: Weight1 + Weight2 = {} is not 1", w1 + w2),
        ));
    }
    // fold the in-air second Gaussian into the halo
    let wide_x = gauss(12).at_isocentre(nozzle_mm);
    let wide_y = gauss(15).at_isocentre(nozzle_mm);
    let extra2_sq = 0.5
        * ((wide_x.sigma_mm.powi(2) - core_x.sigma_mm.powi(2))
            + (wide_y.sigma_mm.powi(2) - core_y.sigma_mm.powi(2)));
    let extra2_sq = extra2_sq.max(0.0);
    let nuclear = model.halo.as_ref();
    let depths: Vec<f64> = match nuclear {
        Some(h) => h.weight.depths().to_vec(),
        None => vec![0.0, model.idd.max_depth_mm()],
    };
    let mut weight = Vec::with_capacity(depths.len());
    let mut extra = Vec::with_capacity(depths.len());
    for &z in &depths {
        let (hn, en) = nuclear.map_or((0.0, 0.0), |h| (h.weight.at(z), h.extra_sigma_mm.at(z)));
        let h = w2 + w1 * hn;
        weight.push(h);
        extra.push(((w2 * extra2_sq + w1 * hn * en * en) / h).sqrt());
    }
    let halo = HaloModel {
        weight: DepthCurve::new(
            &format!("{nominal} MeV halo weight"),
            depths.clone(),
            weight,
        )?,
        extra_sigma_mm: DepthCurve::new(&format!("{nominal} MeV halo sigma"), depths, extra)?,
    };
    EnergyModel::new(nominal, model.idd, core_x, core_y, per_mu, Some(halo))
}

/// The "Range Shifter parameters" blocks: `RS_key = value` lines.
fn range_shifters(lines: &[&str], origin: &str) -> Result<Vec<MachineRangeShifter>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].eq_ignore_ascii_case("Range Shifter parameters") {
            i += 1;
            continue;
        }
        let mut fields = std::collections::HashMap::new();
        i += 1;
        while i < lines.len() && lines[i].starts_with("RS_") {
            if let Some((k, v)) = lines[i].split_once('=') {
                fields.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            i += 1;
        }
        let get = |k: &str| {
            fields
                .get(k)
                .ok_or_else(|| bdl_error(origin, format!("a range shifter block has no {k}")))
        };
        let id = get("RS_ID")?.clone();
        let wet: f64 = get("RS_WET")?.parse().map_err(|_| {
            bdl_error(
                origin,
                format!("range shifter {id:?}: RS_WET is not a number"),
            )
        })?;
        let material: u32 = get("RS_material")?.parse().map_err(|_| {
            bdl_error(
                origin,
                format!("range shifter {id:?}: RS_material is not a number"),
            )
        })?;
        if material != MCSQUARE_PMMA {
            return Err(bdl_error(
                origin,
                format!(
                    "range shifter {id:?}: MCsquare material {material} is not PMMA ({MCSQUARE_PMMA}); \
                     only PMMA shifters are converted (give the machine as isodose JSON)"
                ),
            ));
        }
        out.push(MachineRangeShifter::new(&id, wet, "pmma", None, None, 0.0)?);
    }
    Ok(out)
}
