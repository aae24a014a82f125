//! The built-in demonstration phantom: a soft-tissue box with a prostate-like
//! target, the urethra and the rectum, and a seed implant that treats it.
//!
//! Geometry (LPS mm, origin at the prostate centre; +x patient left,
//! +y posterior, +z superior), on a 128 × 128 × 96 grid of 1 mm voxels:
//!
//! - body: a 110 mm (x) × 100 mm (y) box over all slices, HU 20, in air
//!   (HU −1000);
//! - prostate (target): ellipsoid with semi-axes 24, 18, 22 mm (40 cm³), HU 40;
//! - urethra: a cylinder of 3 mm radius along z through (0, −3) mm, HU 0,
//!   inside the prostate;
//! - rectum: a cylinder of 12 mm radius along z, centred 13 mm posterior to
//!   the prostate's posterior edge, HU 10.
//!
//! The implant follows common LDR prostate practice: needles parallel to z in
//! every other hole of a 5 mm template (a checkerboard, needles about 7 mm
//! apart), peripheral loading (needles in the outer half of the gland, none
//! within 7 mm of the urethra), seeds at most 10 mm apart along each needle,
//! spread over the gland's extent 2 mm inside its surface.

use nalgebra::Point3;
use ndarray::Array3;

use crate::error::Result;
use crate::grid::{CtVolume, Grid3, Volume};
use crate::tg43::{Implant, Seed, SeedModel, Technique};

/// Semi-axes (x, y, z) of the prostate ellipsoid, mm.
pub const PROSTATE_SEMI_AXES_MM: [f64; 3] = [24.0, 18.0, 22.0];
/// Urethra centre (x, y) and radius, mm.
pub const URETHRA_MM: ([f64; 2], f64) = ([0.0, -3.0], 3.0);
/// Rectum centre (x, y) and radius, mm.
pub const RECTUM_MM: ([f64; 2], f64) = ([0.0, 31.0], 12.0);

/// A named structure mask on the phantom grid, with a display colour.
#[derive(Clone, Debug)]
pub struct Structure {
    /// ROI name.
    pub name: String,
    /// Voxels whose centre lies inside, indexed `[z, y, x]`.
    pub mask: Array3<bool>,
    /// RGB display colour.
    pub color: [u8; 3],
}

/// The demo phantom: CT and structures.
#[derive(Clone, Debug)]
pub struct DemoPhantom {
    /// CT in HU.
    pub ct: CtVolume,
    /// Target first, then organs at risk.
    pub structures: Vec<Structure>,
}

fn in_prostate(p: &Point3<f64>) -> bool {
    let [a, b, c] = PROSTATE_SEMI_AXES_MM;
    (p.x / a).powi(2) + (p.y / b).powi(2) + (p.z / c).powi(2) <= 1.0
}

fn in_cylinder(p: &Point3<f64>, (centre, radius): ([f64; 2], f64)) -> bool {
    (p.x - centre[0]).powi(2) + (p.y - centre[1]).powi(2) <= radius * radius
}

impl DemoPhantom {
    /// Builds the phantom (deterministic; no input files).
    pub fn new() -> Result<Self> {
        let grid = Grid3::new([96, 128, 128], [1.0; 3], [-63.5, -63.5, -47.5])?;
        let [nz, ny, nx] = grid.shape();
        let mut hu = Array3::from_elem((nz, ny, nx), -1000.0f32);
        let mut prostate = Array3::from_elem((nz, ny, nx), false);
        let mut urethra = prostate.clone();
        let mut rectum = prostate.clone();
        for ((k, j, i), v) in hu.indexed_iter_mut() {
            let p = grid.index_to_world([k, j, i]);
            let in_body = p.x.abs() <= 55.0 && p.y.abs() <= 50.0;
            if !in_body {
                continue;
            }
            *v = 20.0;
            if in_cylinder(&p, RECTUM_MM) {
                rectum[[k, j, i]] = true;
                *v = 10.0;
            }
            if in_prostate(&p) {
                if in_cylinder(&p, URETHRA_MM) {
                    urethra[[k, j, i]] = true;
                    *v = 0.0;
                } else {
                    *v = 40.0;
                }
                // the target is the whole gland, urethra included
                prostate[[k, j, i]] = true;
            }
        }
        Ok(Self {
            ct: Volume::new(grid, hu)?,
            structures: vec![
                Structure {
                    name: "Prostate".into(),
                    mask: prostate,
                    color: [0, 150, 0],
                },
                Structure {
                    name: "Urethra".into(),
                    mask: urethra,
                    color: [0, 170, 230],
                },
                Structure {
                    name: "Rectum".into(),
                    mask: rectum,
                    color: [140, 80, 20],
                },
            ],
        })
    }

    /// The structure named `name`.
    pub fn structure(&self, name: &str) -> Option<&Structure> {
        self.structures.iter().find(|s| s.name == name)
    }
}

/// Seed positions (LPS mm) of the demo's peripherally loaded implant.
pub fn demo_seed_positions() -> Vec<[f64; 3]> {
    let [a, b, c] = PROSTATE_SEMI_AXES_MM;
    let mut positions = Vec::new();
    for iy in -4i32..=4 {
        for ix in -5i32..=5 {
            // every other template hole (checkerboard): needles about 7 mm apart
            if (ix + iy) % 2 != 0 {
                continue;
            }
            let (x, y) = (5.0 * f64::from(ix), 5.0 * f64::from(iy));
            let e = ((x / a).powi(2) + (y / b).powi(2)).sqrt();
            let (uc, ur) = URETHRA_MM;
            let to_urethra = ((x - uc[0]).powi(2) + (y - uc[1]).powi(2)).sqrt();
            // peripheral ring of the gland, away from the urethra
            if !(0.5..=0.95).contains(&e) || to_urethra < ur + 4.0 {
                continue;
            }
            // seeds spread evenly over the gland's extent on this needle, at
            // most 10 mm apart, 2 mm inside its superior and inferior surfaces
            let half = (c * (1.0 - e * e).sqrt() - 2.0).max(0.0);
            let count = (2.0 * half / 10.0).ceil() as i32 + 1;
            let step = if count > 1 {
                2.0 * half / f64::from(count - 1)
            } else {
                0.0
            };
            for n in 0..count {
                positions.push([x, y, -half + step * f64::from(n)]);
            }
        }
    }
    positions
}

/// The demo implant: [`demo_seed_positions`] with seeds of `model` at
/// `air_kerma_strength_u` each, permanent, strengths given at implantation.
pub fn demo_implant(model: SeedModel, air_kerma_strength_u: f64) -> Result<Implant> {
    let seeds = demo_seed_positions()
        .into_iter()
        .map(|p| Seed::new(p, None, air_kerma_strength_u))
        .collect::<Result<Vec<_>>>()?;
    Implant::new(model, seeds, Technique::Permanent, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phantom_structures_have_expected_volumes() {
        let ph = DemoPhantom::new().unwrap();
        let vol_cc = |name: &str| {
            ph.structure(name)
                .unwrap()
                .mask
                .iter()
                .filter(|m| **m)
                .count() as f64
                / 1000.0
        };
        let [a, b, c] = PROSTATE_SEMI_AXES_MM;
        let analytic = 4.0 / 3.0 * std::f64::consts::PI * a * b * c / 1000.0;
        assert!((vol_cc("Prostate") - analytic).abs() / analytic < 0.02);
        assert!(vol_cc("Urethra") > 0.5 && vol_cc("Rectum") > 10.0);
        // seeds inside the gland, 60–100 of them
        let seeds = demo_seed_positions();
        assert!((60..=100).contains(&seeds.len()), "{} seeds", seeds.len());
        assert!(seeds.iter().all(|p| in_prostate(&Point3::from(*p))));
    }
}

/// The TG-43 benchmark implant: 100 seeds of `model` at 0.5 U on 20 needles
/// (5 seeds each, 10 mm apart along z) spread over a 40 × 30 × 40 mm region
/// around the origin, permanent.
pub fn benchmark_implant(model: SeedModel) -> Result<Implant> {
    let seeds = (0..100)
        .map(|i| {
            let needle = i / 5;
            let x = -20.0 + 10.0 * f64::from(needle % 5);
            let y = -15.0 + 7.5 * f64::from(needle / 5);
            let z = -20.0 + 10.0 * f64::from(i % 5);
            Seed::new([x, y, z], None, 0.5)
        })
        .collect::<Result<Vec<_>>>()?;
    Implant::new(model, seeds, Technique::Permanent, 0.0)
}

/// The proton reference field case (benchmarks, demo): a water phantom of
/// 81 (x) × 150 (y) × 81 (z) voxels at 2 mm (HU 0), its anterior surface at
/// y = 0; one beam at gantry 0 entering along +y; a 50 mm cube target centred
/// at 101 mm depth on the beam axis (the isocentre); spots on a 5 mm grid over
/// the target plus a 5 mm margin; energy layers of the `machine` whose R80
/// are about 3 mm apart from 3 mm before the target to 3 mm beyond it; each
/// spot 1e8 protons.
pub mod reference_field {
    use crate::error::Result;
    use crate::grid::{CtVolume, Grid3, Volume};
    use crate::proton::{ProtonBeam, ProtonMachine, ProtonPlan, Spot};

    /// Depth of the target centre, mm.
    pub const TARGET_DEPTH_MM: f64 = 101.0;
    /// Edge of the cubic target, mm.
    pub const TARGET_SIZE_MM: f64 = 50.0;

    /// The water phantom.
    pub fn phantom() -> Result<CtVolume> {
        // voxel centres x, z in −80..80 mm; y in 1..299 mm
        let grid = Grid3::new([81, 150, 81], [2.0; 3], [-80.0, 1.0, -80.0])?;
        Ok(Volume::filled(grid, 0.0f32))
    }

    /// The plan on `machine`.
    pub fn plan(machine: &ProtonMachine) -> Result<ProtonPlan> {
        let half = TARGET_SIZE_MM / 2.0;
        let (near, far) = (TARGET_DEPTH_MM - half - 3.0, TARGET_DEPTH_MM + half + 3.0);
        let mut energies: Vec<f64> = Vec::new();
        let mut depth = far;
        while depth >= near - 1e-9 {
            let e = machine.energy_for_r80(depth).energy_mev;
            if !energies.contains(&e) {
                energies.push(e);
            }
            depth -= 3.0;
        }
        let lateral: Vec<f64> = (-6..=6).map(|i| 5.0 * f64::from(i)).collect();
        let mut spots = Vec::new();
        for e in &energies {
            for y in &lateral {
                for x in &lateral {
                    spots.push(Spot {
                        energy_mev: *e,
                        x_mm: *x,
                        y_mm: *y,
                        weight: 1e8,
                    });
                }
            }
        }
        let beam = ProtonBeam::new(0.0, 0.0, [0.0, TARGET_DEPTH_MM, 0.0], spots, None)?;
        ProtonPlan::new(vec![beam], 1)
    }
}
