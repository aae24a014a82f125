//! Recomputing a planning system's plan as a secondary dose check would:
//! the RayStation 12 SOBP (APTG/2022_DCPT_LET, CC BY 4.0; tests/data/README.md)
//! on its phantom rebuilt from the RTSTRUCT with RayStation's material
//! overrides, against the RayStation dose.
//!
//! What is RayStation's and what is isodose's:
//! - phantom: the RTSTRUCT's `External` box (solid water: REL_ELEC_DENSITY
//!   0.9915, I 70.2 eV) and `PMMA` plate (1.1565, 74 eV), air elsewhere; RSP
//!   from those by the Bethe formula (`physics::bethe`, I_water 78 eV) at
//!   100 MeV;
//! - plan: spots, energies, MU and virtual source distances from the RT Ion
//!   Plan; the in-air spot σ from its ScanningSpotSize (FWHM / 2.355),
//!   constant along the beam (the plan gives no divergence);
//! - depth doses, halo and MU calibration: isodose's generic machine
//!   (Bortfeld/PSTAR), not RayStation's beam model, which is not published.
//!   The absolute scale is therefore normalised: the isodose dose is scaled
//!   to RayStation's mean over the central 40 mm cube of the SOBP (the
//!   factor, the MU calibration ratio, is printed).
//!
//! Compared: the distal R80, the SOBP plateau and the proximal 90 % of the
//! central-axis depth dose, the lateral 80–20 % penumbra at the isocentre
//! depth, and 3 %/3 mm and 2 %/2 mm global gamma (10 % cut-off, continuous
//! search). Reached with the generic machine (BENCHMARKS.md): R80 −0.7 mm,
//! the plateau within 3 %, gamma 78 % (3 %/3 mm) and 67 % (2 %/2 mm),
//! limited by the beam model (entrance dose, spot size), not the transport.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use isodose_core::physics::bethe::{relative_stopping_power, water_mean_excitation_energy_ev};
use isodose_core::physics::hlut::Hlut;
use isodose_core::proton::{DoseOptions, EnergyModel, ProtonMachine, SpotOptics};
use isodose_core::qa::{GammaCriteria, GammaSearch};
use isodose_core::{BackendChoice, CtVolume, DoseGrid, Engine, Grid3, Volume};
use isodose_dicom::{read_ion_plan, read_rtdose, read_rtstruct};
use nalgebra::Point3;

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// HU codes of the rebuilt phantom.
const HU_AIR: f32 = -1000.0;
const HU_SOLID_WATER: f32 = 0.0;
const HU_PMMA: f32 = 100.0;

/// The phantom on a grid with the RTDOSE's x and z and 0.5 mm in y (the
/// beam axis), whose voxel centres avoid the ROIs' faces, and the HU → RSP
/// curve of its three media.
fn phantom(dose_grid: &Grid3) -> (CtVolume, Hlut) {
    let rois = read_rtstruct(data("aptg_sobp_RS.dcm")).unwrap();
    let roi = |name: &str| rois.iter().find(|r| r.name == name).unwrap();
    let [nz, _, nx] = dose_grid.shape();
    let (o, s) = (dose_grid.origin_mm(), dose_grid.spacing_mm());
    let grid = Grid3::new([nz, 420, nx], [s.x, 0.5, s.z], [o.x, -104.75, o.z]).unwrap();
    let external = roi("External").mask(&grid);
    let pmma = roi("PMMA").mask(&grid);
    let mut hu = ndarray::Array3::from_elem((nz, 420, nx), HU_AIR);
    for ((k, j, i), v) in hu.indexed_iter_mut() {
        if pmma[[k, j, i]] {
            *v = HU_PMMA;
        } else if external[[k, j, i]] {
            *v = HU_SOLID_WATER;
        }
    }
    let iw = water_mean_excitation_energy_ev().unwrap();
    let rsp = |name: &str| {
        let r = roi(name);
        relative_stopping_power(
            r.physical_property("REL_ELEC_DENSITY").unwrap(),
            r.physical_property("MEAN_EXCI_ENERGY").unwrap(),
            iw,
            100.0,
        )
        .unwrap()
    };
    let (sw, pm) = (rsp("External"), rsp("PMMA"));
    println!("RSP: solid water {sw:.4}, PMMA {pm:.4}");
    let hlut = Hlut::new(
        "RayStation overrides",
        vec![
            f64::from(HU_AIR),
            f64::from(HU_SOLID_WATER),
            f64::from(HU_PMMA),
        ],
        vec![0.001, sw, pm],
    )
    .unwrap();
    (Volume::new(grid, hu).unwrap(), hlut)
}

/// The generic machine with the plan's virtual source distances and, at
/// every energy, the in-air σ of the plan's ScanningSpotSize (FWHM / 2.355,
/// linear in energy between the plan's layers).
fn machine_from_plan(layers: &[(f64, f64)], sad: [f64; 2]) -> ProtonMachine {
    let generic = isodose_core::proton::generic::generic_machine().unwrap();
    let sigma_at = |e: f64| {
        let i = layers
            .partition_point(|l| l.0 < e)
            .clamp(1, layers.len() - 1);
        let ((e0, s0), (e1, s1)) = (layers[i - 1], layers[i]);
        if e1 > e0 {
            s0 + (s1 - s0) * ((e - e0) / (e1 - e0)).clamp(0.0, 1.0)
        } else {
            s0
        }
    };
    let energies: Vec<EnergyModel> = generic
        .energies()
        .iter()
        .map(|em| {
            let optics = SpotOptics {
                sigma_mm: sigma_at(em.energy_mev) / (8.0f64.ln() * 2.0).sqrt(),
                divergence_mrad: 0.0,
                correlation: 0.0,
            };
            EnergyModel::new(
                em.energy_mev,
                em.idd.clone(),
                optics,
                optics,
                em.protons_per_mu,
                em.halo.clone(),
            )
            .unwrap()
        })
        .collect();
    ProtonMachine::new(
        "generic, plan spot size",
        sad[0],
        sad[1],
        energies,
        *generic.highland(),
    )
    .unwrap()
}

/// Dose along y (x = z = 0) from −102.5 to 102.5 mm, 0.5 mm apart.
fn central_axis(d: &DoseGrid) -> Vec<f64> {
    (0..=410)
        .map(|k| {
            let y = -102.5 + 0.5 * f64::from(k);
            d.sample_trilinear(&Point3::new(0.0, y, 0.0)).unwrap_or(0.0)
        })
        .collect()
}

/// Depth (mm from the entrance face y = −102.5) where `v` last falls
/// through `fraction` of its maximum (`distal`) or first reaches it.
fn crossing(v: &[f64], fraction: f64, distal: bool) -> f64 {
    let max = v.iter().cloned().fold(0.0, f64::max);
    let level = fraction * max;
    let pairs: Vec<usize> = (0..v.len() - 1).collect();
    let k = if distal {
        *pairs
            .iter()
            .rev()
            .find(|&&k| v[k] >= level && v[k + 1] < level)
            .unwrap()
    } else {
        *pairs
            .iter()
            .find(|&&k| v[k] < level && v[k + 1] >= level)
            .unwrap()
    };
    let t = (level - v[k]) / (v[k + 1] - v[k]);
    0.5 * (k as f64 + t)
}

/// 80–20 % penumbra on the +x and −x sides of the profile along x at
/// y = z = 0 (0.25 mm samples), normalised to the dose at the centre.
fn penumbrae(d: &DoseGrid) -> (f64, f64) {
    let xs: Vec<f64> = (0..=400).map(|k| 0.25 * f64::from(k)).collect();
    let side = |sign: f64| {
        let p: Vec<f64> = xs
            .iter()
            .map(|x| {
                d.sample_trilinear(&Point3::new(sign * x, 0.0, 0.0))
                    .unwrap_or(0.0)
            })
            .collect();
        let centre = p[0];
        let at = |f: f64| {
            let k = (0..p.len() - 1)
                .find(|&k| p[k] >= f * centre && p[k + 1] < f * centre)
                .unwrap();
            let t = (p[k] - f * centre) / (p[k] - p[k + 1]);
            xs[k] + t * 0.25
        };
        at(0.2) - at(0.8)
    };
    (side(1.0), side(-1.0))
}

#[test]
fn raystation_sobp_recomputes_to_the_raystation_dose() {
    let rd = read_rtdose(data("aptg_sobp_RD.dcm")).unwrap();
    assert_eq!(
        (rd.units.as_str(), rd.dose_type.as_str()),
        ("GY", "PHYSICAL")
    );
    let reference = &rd.dose;
    let (ct, hlut) = phantom(reference.grid());
    let ion = read_ion_plan(data("aptg_sobp_RP.dcm")).unwrap();
    let beam = &ion.beams[0];
    let layers: Vec<(f64, f64)> = beam
        .layers
        .iter()
        .map(|l| {
            let s = l
                .spot_size_fwhm_mm
                .expect("RayStation gives ScanningSpotSize");
            (l.energy_mev, 0.5 * (s[0] + s[1]))
        })
        .collect();
    let machine = machine_from_plan(&layers, beam.virtual_source_axis_distances_mm.unwrap());
    let plan = ion.to_proton_plan(&machine).unwrap();
    let options = DoseOptions {
        hlut,
        ..DoseOptions::new().unwrap()
    };
    let engine = Engine::new(BackendChoice::Cpu).unwrap();
    let t = std::time::Instant::now();
    let computed = engine
        .pbs_dose(&ct, &plan, &machine, Some(reference.grid()), &options)
        .unwrap();
    println!(
        "isodose: {:.1} s for {} spots",
        t.elapsed().as_secs_f64(),
        plan.spot_count()
    );
    // normalise to RayStation's mean over the central 40 mm cube
    let g = reference.grid();
    let (mut a, mut b) = (0.0, 0.0);
    for ((k, j, i), v) in reference.data().indexed_iter() {
        let p = g.index_to_world([k, j, i]);
        if p.x.abs() <= 20.0 && p.y.abs() <= 20.0 && p.z.abs() <= 20.0 {
            a += f64::from(*v);
            b += f64::from(computed.data()[[k, j, i]]);
        }
    }
    let factor = a / b;
    println!("normalisation (RayStation / isodose over the central 40 mm cube): {factor:.4}");
    let scaled = Volume::new(
        g.clone(),
        computed.data().mapv(|v| (f64::from(v) * factor) as f32),
    )
    .unwrap();
    // central axis
    let (ra, ia) = (central_axis(reference), central_axis(&scaled));
    let (r80_rs, r80_iso) = (crossing(&ra, 0.8, true), crossing(&ia, 0.8, true));
    let (p90_rs, p90_iso) = (crossing(&ra, 0.9, false), crossing(&ia, 0.9, false));
    println!(
        "distal R80: RayStation {r80_rs:.2} mm, isodose {r80_iso:.2} mm ({:+.2})",
        r80_iso - r80_rs
    );
    println!(
        "proximal 90 %: RayStation {p90_rs:.2} mm, isodose {p90_iso:.2} mm ({:+.2})",
        p90_iso - p90_rs
    );
    for k in (0..=340).step_by(20) {
        println!(
            "depth {:6.1} mm: RayStation {:.3} Gy, isodose {:.3} Gy",
            0.5 * k as f64,
            ra[k],
            ia[k]
        );
    }
    // the SOBP plateau: depths 55-145 mm (the target spans 52.5-152.5 mm)
    let plateau = (110..=290)
        .map(|k| (ia[k] / ra[k] - 1.0).abs())
        .fold(0.0, f64::max);
    println!(
        "SOBP plateau (55-145 mm): largest difference {:.2} %",
        100.0 * plateau
    );
    let (pr, pi) = (penumbrae(reference), penumbrae(&scaled));
    println!(
        "80-20 % penumbra at the isocentre (+x, -x): RayStation {pr:.2?} mm, isodose {pi:.2?} mm"
    );
    let mut rates = Vec::new();
    for (dd, dta) in [(3.0, 3.0), (2.0, 2.0)] {
        let criteria = GammaCriteria {
            search: GammaSearch::Continuous,
            ..GammaCriteria::new(dd, dta)
        };
        let gamma = engine.gamma(reference, &scaled, &criteria).unwrap();
        println!(
            "gamma {dd} %/{dta} mm: pass rate {:.2} %",
            100.0 * gamma.pass_rate()
        );
        rates.push(gamma.pass_rate());
    }
    // what the generic beam model reaches against RayStation's (numbers in
    // BENCHMARKS.md): the distal edge and the plateau agree; the entrance
    // dose (about 20 % higher: the generic Bragg curves' peak-to-entrance
    // ratio), the proximal edge and the penumbra (the plan's ScanningSpotSize
    // of 10.5 mm FWHM is wider than the spot RayStation's model uses) do
    // not, which is what limits the gamma pass rates; a commissioned
    // machine of the DCPT beam line is what a clinic would use
    assert!(
        factor.is_finite() && factor > 0.0,
        "MU calibration ratio {factor}"
    );
    assert!((r80_iso - r80_rs).abs() < 1.0, "R80 {r80_iso} vs {r80_rs}");
    assert!(plateau < 0.04, "plateau {plateau}");
    assert!(pi.0 > pr.0 && pi.1 > pr.1, "penumbra {pi:?} vs {pr:?}");
    assert!(rates[0] > 0.7 && rates[1] > 0.6, "gamma {rates:?}");
}
