//! Preparation shared by the backends: HU → RSP, depth models per energy,
//! ray traversal to water-equivalent depth, depth tables per pencil beam, and
//! the voxel traversal around each pencil.
//!
//! **Ray casting** (the classic pencil-beam algorithm): each spot has one ray,
//! its central axis from the virtual sources; every voxel near the spot takes
//! the water-equivalent depth (WED) of that ray at its own depth Δ. Lateral
//! heterogeneities within the spot's width are ignored: a bone edge parallel
//! to the beam inside a spot shifts the whole spot or none of it.
//!
//! **Spot splitting** ([`SpotSplitting`], [`super::splitting`]): each spot is
//! replaced by a lattice of narrow sub-pencils (fine sampling), each with its
//! own ray and WED and the spot's width less the lattice's spread, so that
//! the sum reproduces the spot in a homogeneous medium while each part ranges
//! out at its own WED.

use nalgebra::{Point3, Unit, Vector3};

use super::kernel::DepthNode;
use super::machine::{EnergyModel, ProtonMachine};
use super::medium::MaterialOverride;
pub(crate) use super::medium::Medium;
use super::plan::{ProtonBeam, RangeShifter};
use super::splitting::{SpotSplitting, SubPencils, sigma_min_mm};
use crate::error::{DoseError, Result};
use crate::geometry::{BeamFrame, trace_ray};
use crate::grid::Grid3;
use crate::physics::hlut::Hlut;
use crate::physics::mcs::{HighlandParams, RayScattering, pv_mev};
use crate::physics::pstar::WaterStopping;
use crate::physics::scattering::ScatteringCurve;

/// What a pencil carries of its spot's lateral kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// The core and the halo (ray casting).
    Whole,
    /// The core only (a sub-pencil of a split spot).
    Core,
    /// The halo only, as one Gaussian (the halo pencil of a split spot).
    Halo,
}

/// The data of one of a beam's energies: the energy (MeV), its model, depth
/// model, range-shifter θ₀ (rad) and sub-pencil lattice.
type EnergyData<'a> = (
    f64,
    std::borrow::Cow<'a, EnergyModel>,
    DepthModel,
    f64,
    SubPencils,
);

/// Options of a proton dose calculation.
#[derive(Clone, Debug, PartialEq)]
pub struct DoseOptions {
    /// HU → RSP curve.
    pub hlut: Hlut,
    /// Fraction of each pencil's laterally integrated dose that the lateral
    /// cut-off may drop (default 0.005, i.e. 0.5 %).
    pub lateral_cutoff_fraction: f64,
    /// Spot splitting, or `None` for ray casting
    /// ([`SpotSplitting::RECOMMENDED`] where lateral heterogeneities matter).
    pub spot_splitting: Option<SpotSplitting>,
    /// Include the machine's nuclear halo (default true).
    pub include_halo: bool,
    /// HU → relative scattering power for multiple Coulomb scattering, or
    /// `None` (the default) to scatter each voxel as its water-equivalent
    /// thickness of water (S = RSP). Either way the lever arms are the
    /// geometric path ([`crate::physics::mcs::RayScattering`]).
    pub scattering: Option<ScatteringCurve>,
    /// Materials that replace the CT inside structures, applied in order
    /// after the HU curves ([`MaterialOverride`]; empty by default).
    pub overrides: Vec<MaterialOverride>,
}

impl DoseOptions {
    /// Defaults: the `matrad_default` HU curve, 0.5 % cut-off, ray casting,
    /// halo on.
    pub fn new() -> Result<Self> {
        Ok(Self {
            hlut: Hlut::default_curve()?,
            lateral_cutoff_fraction: 0.005,
            spot_splitting: None,
            include_halo: true,
            scattering: None,
            overrides: Vec::new(),
        })
    }

    /// Checks the options (the cut-off fraction within (0, 0.5)).
    pub fn validate(&self) -> Result<()> {
        let f = self.lateral_cutoff_fraction;
        if !(f.is_finite() && f > 0.0 && f < 0.5) {
            return Err(DoseError::OutOfRange {
                field: "lateral cut-off fraction".into(),
                value: f,
                reason: "must be in (0, 0.5)".into(),
            });
        }
        Ok(())
    }
}

/// Depth-dependent beam data of one energy (and range shifter) on a uniform
/// water-equivalent depth grid.
#[derive(Debug)]
struct DepthModel {
    step_mm: f64,
    idd: Vec<f64>,
    /// 1/(p v)² of a proton at this WED (MeV⁻²), 0 from 0.1 mm short of
    /// the end of range on (where 1/(pv)² diverges; scattering stops).
    inv_pv2: Vec<f64>,
    halo: Vec<f64>,
    halo_extra_sq: Vec<f64>,
}

const DEPTH_STEP_MM: f64 = 0.1;

impl DepthModel {
    fn new(
        energy: &EnergyModel,
        shifter: Option<&RangeShifter>,
        include_halo: bool,
        pstar: &WaterStopping,
    ) -> Result<Self> {
        let offset = shifter.map_or(0.0, |s| s.water_equivalent_thickness_mm);
        let extent = (energy.idd.max_depth_mm() - offset).max(0.0);
        let n = (extent / DEPTH_STEP_MM).ceil() as usize + 2;
        // MCS in the patient starts at the energy behind the shifter
        let range = pstar.csda_range_mm(energy.energy_mev)?;
        let e_in = if offset > 0.0 {
            pstar.energy_from_range_mev((range - offset).max(0.0))
        } else {
            energy.energy_mev
        };
        let range_in = if e_in > 1.0 {
            pstar.csda_range_mm(e_in)?
        } else {
            0.0
        };
        let mut m = Self {
            step_mm: DEPTH_STEP_MM,
            idd: Vec::with_capacity(n),
            inv_pv2: Vec::with_capacity(n),
            halo: Vec::with_capacity(n),
            halo_extra_sq: Vec::with_capacity(n),
        };
        for k in 0..n {
            let w = k as f64 * DEPTH_STEP_MM + offset;
            m.idd.push(if w <= energy.idd.max_depth_mm() {
                energy.idd.at(w)
            } else {
                0.0
            });
            let z = k as f64 * DEPTH_STEP_MM;
            m.inv_pv2.push(if z < range_in - 0.1 {
                1.0 / pv_mev(pstar.energy_from_range_mev(range_in - z)).powi(2)
            } else {
                0.0
            });
            let (h, e) = match (&energy.halo, include_halo) {
                (Some(h), true) => (h.weight.at(w), h.extra_sigma_mm.at(w)),
                _ => (0.0, 0.0),
            };
            m.halo.push(h);
            m.halo_extra_sq.push(e * e);
        }
        Ok(m)
    }

    /// Extent in water-equivalent depth, mm.
    fn extent_mm(&self) -> f64 {
        (self.idd.len() - 1) as f64 * self.step_mm
    }

    /// (IDD, 1/(pv)², halo fraction, halo extra σ²) at WED `w` (linear;
    /// 1/(pv)² is 0 from the last step before its end on).
    fn at(&self, w: f64) -> (f64, f64, f64, f64) {
        let u = (w / self.step_mm).clamp(0.0, (self.idd.len() - 1) as f64 - 1e-9);
        let i = u as usize;
        let t = u - i as f64;
        let l = |v: &[f64]| v[i] + t * (v[i + 1] - v[i]);
        (
            l(&self.idd),
            if self.inv_pv2[i + 1] > 0.0 {
                l(&self.inv_pv2)
            } else {
                0.0
            },
            l(&self.halo),
            l(&self.halo_extra_sq),
        )
    }
}

/// Highland scattering angle θ₀ (rad) of a proton of `energy_mev` crossing a
/// range shifter, at the mean of its entrance and exit energies.
fn shifter_theta0(
    shifter: &RangeShifter,
    energy_mev: f64,
    pstar: &WaterStopping,
    h: &HighlandParams,
) -> Result<f64> {
    let range = pstar.csda_range_mm(energy_mev)?;
    let e_out =
        pstar.energy_from_range_mev((range - shifter.water_equivalent_thickness_mm).max(0.0));
    let pv = pv_mev(0.5 * (energy_mev + e_out));
    let l = shifter.thickness_mm() / shifter.radiation_length_mm;
    Ok(h.es_mev / pv * l.sqrt() * (1.0 + h.log10_coefficient * l.log10()).max(0.0))
}

/// One pencil (a spot, or a sub-pencil of a split spot), ready for the voxel
/// loop: its ray and depth nodes.
#[derive(Debug, Clone)]
pub(crate) struct Pencil {
    /// Index of the spot in the plan (dij column).
    pub spot: usize,
    /// Position at the isocentre plane, mm (beam frame).
    pub x_iso: f64,
    pub y_iso: f64,
    /// 1/SAD_x, 1/SAD_y.
    pub inv_sad_x: f64,
    pub inv_sad_y: f64,
    /// Share of the spot's protons in this pencil (1 without splitting).
    pub share: f64,
    /// Protons (the spot weight times the share).
    pub weight: f64,
    /// Δ of the first depth node, node step (mm) and nodes.
    pub delta0: f64,
    pub step: f64,
    pub nodes: Vec<DepthNode>,
    /// Largest cut-off radius over the nodes, mm.
    pub max_radius: f64,
}

impl Pencil {
    /// Lateral centre of the pencil's ray at depth Δ (beam frame).
    #[inline(always)]
    pub fn centre(&self, delta: f64) -> (f64, f64) {
        (
            self.x_iso * (1.0 + delta * self.inv_sad_x),
            self.y_iso * (1.0 + delta * self.inv_sad_y),
        )
    }
}

/// A beam prepared for the voxel loops.
#[derive(Debug)]
pub(crate) struct PreparedBeam {
    pub frame: BeamFrame,
    pub pencils: Vec<Pencil>,
}

/// Water-equivalent depth along a ray, as (Δ, WED) breakpoints: exact
/// piecewise-linear from the voxel chords.
struct WedProfile {
    deltas: Vec<f64>,
    weds: Vec<f64>,
    /// Radiation lengths crossed, ∫ S ds / X₀,water, at the breakpoints.
    lengths: Vec<f64>,
    /// mm of path per mm of Δ.
    speed: f64,
}

impl WedProfile {
    #[allow(clippy::too_many_arguments)]
    fn trace(
        ct_grid: &Grid3,
        medium: &Medium,
        water_x0_mm: f64,
        frame: &BeamFrame,
        x_iso: f64,
        y_iso: f64,
        inv_sad: (f64, f64),
        delta_start: f64,
    ) -> Self {
        let point = |d: f64| {
            frame.from_beam(
                x_iso * (1.0 + d * inv_sad.0),
                y_iso * (1.0 + d * inv_sad.1),
                d,
            )
        };
        let start: Point3<f64> = point(delta_start);
        let v: Vector3<f64> = point(delta_start + 1.0) - start;
        let speed = v.norm(); // mm of path per mm of Δ
        let dir = Unit::new_normalize(v);
        let segments = trace_ray(ct_grid, &start, &dir, 1e5);
        let mut deltas = Vec::with_capacity(segments.len() + 1);
        let mut weds = Vec::with_capacity(segments.len() + 1);
        let mut lengths = Vec::with_capacity(segments.len() + 1);
        let (mut wed, mut length) = (0.0, 0.0);
        for s in &segments {
            if deltas.is_empty() {
                deltas.push(delta_start + s.t_in / speed);
                weds.push(0.0);
                lengths.push(0.0);
            }
            let chord = s.t_out - s.t_in;
            wed += f64::from(medium.rsp[s.voxel]) * chord;
            length += f64::from(medium.scattering[s.voxel]) * chord / water_x0_mm;
            deltas.push(delta_start + s.t_out / speed);
            weds.push(wed);
            lengths.push(length);
        }
        Self {
            deltas,
            weds,
            lengths,
            speed,
        }
    }

    /// A walk along the profile, for Δ that never decrease.
    fn walk(&self) -> WedWalk<'_> {
        WedWalk {
            profile: self,
            i: 0,
        }
    }
}

/// The WED of a profile at non-decreasing Δ: linear between breakpoints, 0
/// before the CT and constant after it. The breakpoints are walked, not
/// searched.
struct WedWalk<'a> {
    profile: &'a WedProfile,
    /// The interval of the last Δ.
    i: usize,
}

impl WedWalk<'_> {
    /// (WED, radiation lengths) at Δ, not below the last Δ asked.
    fn at(&mut self, delta: f64) -> (f64, f64) {
        let (xs, ys, ls) = (
            &self.profile.deltas,
            &self.profile.weds,
            &self.profile.lengths,
        );
        let n = xs.len();
        if n == 0 || delta <= xs[0] {
            return (0.0, 0.0);
        }
        if delta >= xs[n - 1] {
            return (ys[n - 1], ls[n - 1]);
        }
        // the last breakpoint at or before Δ (as a search would find it)
        while self.i + 2 < n && xs[self.i + 1] <= delta {
            self.i += 1;
        }
        let i = self.i;
        let t = (delta - xs[i]) / (xs[i + 1] - xs[i]);
        (
            ys[i] + t * (ys[i + 1] - ys[i]),
            ls[i] + t * (ls[i + 1] - ls[i]),
        )
    }
}

/// Prepares `beam` for dose to voxels of `dose_grid`, with WED through the
/// CT (`rsp` on `ct_grid`). `first_spot` is the plan-wide index of the beam's
/// first spot. `only_weighted` skips zero-weight spots (forward dose).
#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare_beam(
    ct_grid: &Grid3,
    medium: &Medium,
    dose_grid: &Grid3,
    machine: &ProtonMachine,
    beam: &ProtonBeam,
    first_spot: usize,
    options: &DoseOptions,
    only_weighted: bool,
) -> Result<PreparedBeam> {
    use rayon::prelude::*;
    options.validate()?;
    let pstar = WaterStopping::pstar()?;
    let frame = beam.frame().clone();
    let shifter = beam.range_shifter();
    let (sad_x, sad_y) = (machine.sad_x_mm(), machine.sad_y_mm());
    let inv_sad = (1.0 / sad_x, 1.0 / sad_y);
    // depth models of the beam's energies
    let mut energies: Vec<f64> = beam.spots().iter().map(|s| s.energy_mev).collect();
    energies.sort_by(f64::total_cmp);
    energies.dedup();
    // Δ range of the dose grid (its corners), and where rays start: upstream
    // of the CT and the dose grid, downstream of the virtual sources
    let corners = |g: &Grid3| {
        let (lo, hi) = g.centre_bounds_mm();
        let s = g.spacing_mm() * 0.5;
        (0..8)
            .map(|c| {
                Point3::new(
                    if c & 1 == 0 { lo.x - s.x } else { hi.x + s.x },
                    if c & 2 == 0 { lo.y - s.y } else { hi.y + s.y },
                    if c & 4 == 0 { lo.z - s.z } else { hi.z + s.z },
                )
            })
            .map(|p| frame.to_beam(&p)[2])
            .collect::<Vec<f64>>()
    };
    let ct_deltas = corners(ct_grid);
    let dose_deltas = corners(dose_grid);
    let min_delta = ct_deltas
        .iter()
        .chain(&dose_deltas)
        .copied()
        .fold(f64::INFINITY, f64::min);
    let max_delta = dose_deltas
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    // energies between the machine's tabulated ones are interpolated
    // (`ProtonMachine::energy_model`); outside its range they are an error
    let models: Vec<EnergyData<'_>> = energies
        .iter()
        .map(|&e| {
            let em = machine.energy_model(e)?;
            let dm = DepthModel::new(&em, shifter, options.include_halo, pstar)?;
            let theta = match shifter {
                Some(s) => shifter_theta0(s, em.energy_mev, pstar, machine.highland())?,
                None => 0.0,
            };
            // the lattice of sub-pencils, from the spot's smallest in-air σ
            // over the depths of the dose grid
            let subs = match options.spot_splitting {
                None => SubPencils::none(),
                Some(split) => {
                    let range = (min_delta, max_delta);
                    split.sub_pencils((
                        sigma_min_mm(|d| em.optics_x.sigma_sq_at(d), inv_sad.0, range),
                        sigma_min_mm(|d| em.optics_y.sigma_sq_at(d), inv_sad.1, range),
                    ))
                }
            };
            Ok((e, em, dm, theta, subs))
        })
        .collect::<Result<_>>()?;
    let delta_start = (min_delta - 10.0).max(-0.95 * sad_x.min(sad_y));
    let min_spacing = {
        let s = dose_grid.spacing_mm();
        s.x.min(s.y).min(s.z)
    };
    let step = (min_spacing / 4.0).min(0.5);
    let pencils: Vec<Vec<Pencil>> = beam
        .spots()
        .par_iter()
        .enumerate()
        .map(|(i, spot)| -> Result<Vec<Pencil>> {
            if only_weighted && spot.weight == 0.0 {
                return Ok(Vec::new());
            }
            let (_, em, dm, theta_rs, subs) = models
                .iter()
                .find(|m| m.0 == spot.energy_mev)
                .ok_or_else(|| machine_energy_error(machine, spot.energy_mev))?;
            let (var_x, var_y) = subs.var_mm2;
            // ray casting: one pencil with the core and the halo; a split
            // spot: the lattice's sub-pencils carry the core, and one pencil
            // on the spot's central ray its whole halo (the halo is wide, so
            // splitting it would multiply the voxel work by the lattice size
            // for a resolution the halo does not need)
            let split = options.spot_splitting.is_some();
            let halo_pencil = (split && options.include_halo && em.halo.is_some()).then_some((
                0.0,
                0.0,
                1.0,
                Part::Halo,
            ));
            let part = if split { Part::Core } else { Part::Whole };
            subs.points
                .iter()
                .map(|&(ox, oy, w)| (ox, oy, w, part))
                .chain(halo_pencil)
                .map(|(ox, oy, w, part)| {
                    let (x_iso, y_iso) = (spot.x_mm + ox, spot.y_mm + oy);
                    let water_x0 = machine.highland().water_radiation_length_mm;
                    let profile = WedProfile::trace(
                        ct_grid,
                        medium,
                        water_x0,
                        &frame,
                        x_iso,
                        y_iso,
                        inv_sad,
                        delta_start,
                    );
                    let mut scattering = RayScattering::new();
                    // scattering stops where the proton's range ends (the
                    // σ reached there is held)
                    let mut held: Option<f64> = None;
                    let mut nodes = Vec::new();
                    let mut max_radius_sq: f64 = 0.0;
                    let first = profile
                        .deltas
                        .first()
                        .copied()
                        .unwrap_or(max_delta)
                        .max(min_delta);
                    let delta0 = first;
                    let mut wed_at = profile.walk();
                    let mut k = 0usize;
                    loop {
                        let delta = delta0 + k as f64 * step;
                        if delta > max_delta + step {
                            break;
                        }
                        let (wed, lengths) = wed_at.at(delta);
                        if wed > dm.extent_mm() {
                            break;
                        }
                        let (idd, inv_pv2, halo, extra_sq) = dm.at(wed);
                        let path = delta * profile.speed;
                        let mcs_sq = match held {
                            Some(sq) => sq,
                            None => {
                                scattering.advance(path, lengths, inv_pv2);
                                let sq = scattering.sigma_sq_mm2(machine.highland(), path);
                                if inv_pv2 == 0.0 && wed > 0.0 {
                                    held = Some(sq);
                                }
                                sq
                            }
                        };
                        let rs_sq = shifter.map_or(0.0, |s| {
                            let d = s.isocenter_distance_mm + delta;
                            let l = s.thickness_mm();
                            theta_rs * theta_rs * (d * d + d * l + l * l / 3.0)
                        });
                        let core_x = em.optics_x.sigma_sq_at(delta) + mcs_sq + rs_sq;
                        let core_y = em.optics_y.sigma_sq_at(delta) + mcs_sq + rs_sq;
                        let hx = (core_x + extra_sq).sqrt();
                        let hy = (core_y + extra_sq).sqrt();
                        let cutoff = options.lateral_cutoff_fraction;
                        let node = match part {
                            Part::Whole => DepthNode::new(
                                idd,
                                (core_x.sqrt(), core_y.sqrt()),
                                halo,
                                (hx, hy),
                                cutoff,
                            ),
                            Part::Core => {
                                // the core variance less the lattice's spread,
                                // which diverges with the pencils: σ_sub² =
                                // σ² − V(1 + Δ/SAD)², never below 1 % of σ²
                                // (the lattice's σ_min keeps it away)
                                let less = |var: f64, spread: f64, inv: f64| {
                                    (var - spread * (1.0 + delta * inv).powi(2)).max(0.01 * var)
                                };
                                let sx = less(core_x, var_x, inv_sad.0).sqrt();
                                let sy = less(core_y, var_y, inv_sad.1).sqrt();
                                DepthNode::new(idd * (1.0 - halo), (sx, sy), 0.0, (sx, sy), cutoff)
                            }
                            Part::Halo => {
                                DepthNode::new(idd * halo, (hx, hy), 0.0, (hx, hy), cutoff)
                            }
                        };
                        max_radius_sq = max_radius_sq.max(node.cutoff_sq);
                        nodes.push(node);
                        k += 1;
                    }
                    Ok(Pencil {
                        spot: first_spot + i,
                        x_iso,
                        y_iso,
                        inv_sad_x: inv_sad.0,
                        inv_sad_y: inv_sad.1,
                        share: w,
                        weight: spot.weight * w,
                        delta0,
                        step,
                        nodes,
                        max_radius: max_radius_sq.sqrt(),
                    })
                })
                .collect()
        })
        .collect::<Result<_>>()?;
    Ok(PreparedBeam {
        frame,
        pencils: pencils.into_iter().flatten().collect(),
    })
}

fn machine_energy_error(machine: &ProtonMachine, energy: f64) -> DoseError {
    match machine.energy_model(energy) {
        Err(e) => e,
        Ok(_) => DoseError::OutOfRange {
            field: "spot energy (MeV)".into(),
            value: energy,
            reason: "no depth model was prepared for it".into(),
        },
    }
}

/// The pencils of each of the plan's `n_spots` spots, as (beam, pencil)
/// indices: one, or the sub-pencils of a split spot (none for a spot
/// without depth nodes in the grid's range).
pub(crate) fn pencils_by_spot(beams: &[PreparedBeam], n_spots: usize) -> Vec<Vec<(usize, usize)>> {
    let mut by_spot: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n_spots];
    for (b, beam) in beams.iter().enumerate() {
        for (i, p) in beam.pencils.iter().enumerate() {
            if let Some(list) = by_spot.get_mut(p.spot) {
                list.push((b, i));
            }
        }
    }
    by_spot
}

/// An estimate of the entries of one spot's dij column (its pencils
/// `pencils`, as (beam, pencil) indices): the voxels of the volume within
/// the cut-off, per node step the area of the union of the pencils' discs.
/// For one pencil that is π r²; for a split spot it is taken as the larger
/// of the rectangle spanning the off-centre sub-pencils (half-widths a, b)
/// widened by their largest cut-off radius r at that node,
/// 4ab + 4(a + b)r + πr², and the disc of the pencils on the spot's centre
/// (the central sub-pencil and the halo pencil), and never more than the
/// grid's cross-section perpendicular to the beam. It sizes a reservation; it is not a bound (the
/// exact count is the traversal's).
pub(crate) fn estimate_entries(
    beams: &[PreparedBeam],
    pencils: &[(usize, usize)],
    grid: &Grid3,
) -> f64 {
    let all: Vec<&Pencil> = pencils
        .iter()
        .filter_map(|&(b, i)| beams.get(b).and_then(|beam| beam.pencils.get(i)))
        .collect();
    if all.is_empty() {
        return 0.0;
    }
    let n = all.len() as f64;
    let mean_x = all.iter().map(|p| p.x_iso).sum::<f64>() / n;
    let mean_y = all.iter().map(|p| p.y_iso).sum::<f64>() / n;
    let a = all
        .iter()
        .map(|p| (p.x_iso - mean_x).abs())
        .fold(0.0, f64::max);
    let b = all
        .iter()
        .map(|p| (p.y_iso - mean_y).abs())
        .fold(0.0, f64::max);
    let nodes = all.iter().map(|p| p.nodes.len()).max().unwrap_or(0);
    let per_voxel = 1.0 / grid.voxel_volume_mm3();
    let step = all[0].step;
    // no more than the grid's cross-section perpendicular to the beam (at
    // most its projected area Σ|d_i|·A_i)
    let cross_section =
        pencils
            .first()
            .and_then(|&(b, _)| beams.get(b))
            .map_or(f64::INFINITY, |beam| {
                let d = beam.frame.direction();
                let [nz, ny, nx] = grid.shape();
                let sp = grid.spacing_mm();
                let (lx, ly, lz) = (nx as f64 * sp.x, ny as f64 * sp.y, nz as f64 * sp.z);
                d.x.abs() * ly * lz + d.y.abs() * lx * lz + d.z.abs() * lx * ly
            });
    (1..nodes)
        .map(|k| {
            // the pencils off the spot's centre (the lattice) and those on it
            // (its central sub-pencil and the halo pencil)
            let radius = |off: bool| {
                all.iter()
                    .filter(|p| {
                        ((p.x_iso - mean_x).abs() > 1e-9 || (p.y_iso - mean_y).abs() > 1e-9) == off
                    })
                    .filter_map(|p| p.nodes.get(k))
                    .map(|node| node.cutoff_sq.sqrt())
                    .fold(0.0, f64::max)
            };
            let (r, rc) = (radius(true), radius(false));
            let pi = std::f64::consts::PI;
            (4.0 * a * b + 4.0 * (a + b) * r + pi * r * r)
                .max(pi * rc * rc)
                .min(cross_section)
        })
        .sum::<f64>()
        * step
        * per_voxel
}

/// Where a traversal's voxels go: one at a time, or a row's run at once
/// (the fast path), so that a sink's inner loop keeps its state in
/// registers.
pub(crate) trait VoxelSink {
    /// Whether the sink reads the doses (false: only which voxels).
    const DOSE: bool;
    /// Voxel `idx` (linear) with dose per proton `d` (0 when not `DOSE`).
    fn voxel(&mut self, idx: usize, d: f64);
    /// The voxels `base + i` of one row, for the `i` that `run` yields.
    fn row(&mut self, base: usize, run: RowRun);
}

/// A closure as a sink.
struct EachVoxel<F>(F);

impl<F: FnMut(usize, f64)> VoxelSink for EachVoxel<F> {
    const DOSE: bool = true;
    #[inline(always)]
    fn voxel(&mut self, idx: usize, d: f64) {
        (self.0)(idx, d)
    }
    #[inline(always)]
    fn row(&mut self, base: usize, run: RowRun) {
        run.for_each(|i, d| (self.0)(base + i, d));
    }
}

/// Counts the voxels.
struct Count(usize);

impl VoxelSink for Count {
    const DOSE: bool = false;
    fn voxel(&mut self, _: usize, _: f64) {
        self.0 += 1;
    }
    fn row(&mut self, _: usize, run: RowRun) {
        self.0 += run.count();
    }
}

/// Calls `f(linear voxel index, dose per proton)` for every voxel of
/// `dose_grid` with z index in `k_range` that lies within `pencil`'s cut-off,
/// in C order (z, then y, then x).
pub(crate) fn for_each_voxel(
    pencil: &Pencil,
    frame: &BeamFrame,
    dose_grid: &Grid3,
    k_range: std::ops::Range<usize>,
    f: impl FnMut(usize, f64),
) {
    visit(pencil, frame, dose_grid, k_range, &mut EachVoxel(f));
}

/// The number of voxels [`for_each_voxel`] visits, without evaluating the
/// dose (the same traversal and cut-off test, so the counts match exactly).
pub(crate) fn count_voxels(
    pencil: &Pencil,
    frame: &BeamFrame,
    dose_grid: &Grid3,
    k_range: std::ops::Range<usize>,
) -> usize {
    let mut n = Count(0);
    visit(pencil, frame, dose_grid, k_range, &mut n);
    n.0
}

/// The rows of `dose_grid` (z index k in `k_range`, y index j) that the
/// pencil's bounding cylinder crosses, with the x-index interval inside it:
/// `f(k, j, i0, i1)`. Without `cylinder`, every row of the cylinder's
/// bounding box, with the whole x range (for callers that find each row's
/// exact interval themselves).
fn rows(
    pencil: &Pencil,
    frame: &BeamFrame,
    dose_grid: &Grid3,
    k_range: std::ops::Range<usize>,
    cylinder: bool,
    mut f: impl FnMut(usize, usize, usize, usize),
) {
    if pencil.nodes.len() < 2 {
        return;
    }
    let last_delta = pencil.delta0 + (pencil.nodes.len() - 1) as f64 * pencil.step;
    let axis_point = |d: f64| {
        let (x, y) = pencil.centre(d);
        frame.from_beam(x, y, d)
    };
    let a = axis_point(pencil.delta0);
    let b = axis_point(last_delta);
    let u = Unit::new_normalize(b - a);
    // cut-off plus a margin for the tilt of the divergent ray
    let radius = pencil.max_radius + 1.0;
    let r2 = radius * radius;
    let g = dose_grid;
    let (o, s) = (g.origin_mm(), g.spacing_mm());
    let [nz, ny, nx] = g.shape();
    let index_range = |lo: f64, hi: f64, origin: f64, sp: f64, n: usize| {
        let i0 = ((lo - radius - origin) / sp).floor().max(0.0) as usize;
        let i1 = (((hi + radius - origin) / sp).ceil() + 1.0).clamp(0.0, n as f64) as usize;
        i0..i1
    };
    let kr = index_range(a.z.min(b.z), a.z.max(b.z), o.z, s.z, nz);
    let jr = index_range(a.y.min(b.y), a.y.max(b.y), o.y, s.y, ny);
    let ux = u.x * s.x;
    // distance² from the axis of p(i) = p0 + i·(sx, 0, 0) is qa i² + bq i + c
    let qa = s.x * s.x - ux * ux;
    for k in kr.start.max(k_range.start)..kr.end.min(k_range.end) {
        if !cylinder {
            for j in jr.clone() {
                f(k, j, 0, nx);
            }
            continue;
        }
        for j in jr.clone() {
            let p0 = Point3::new(o.x, o.y + j as f64 * s.y, o.z + k as f64 * s.z);
            let w = p0 - a;
            let wu = w.dot(&u);
            let c = w.norm_squared() - wu * wu - r2;
            let bq = 2.0 * (w.x * s.x - wu * ux);
            let (i0, i1) = if qa.abs() < 1e-12 {
                if c > 0.0 { continue } else { (0, nx) }
            } else {
                let disc = bq * bq - 4.0 * qa * c;
                if disc < 0.0 {
                    continue;
                }
                let sq = disc.sqrt();
                let lo = ((-bq - sq) / (2.0 * qa)).ceil().max(0.0);
                let hi = ((-bq + sq) / (2.0 * qa)).floor() + 1.0;
                if hi <= lo {
                    continue;
                }
                (lo as usize, (hi.min(nx as f64)) as usize)
            };
            if i1 > i0 {
                f(k, j, i0, i1);
            }
        }
    }
}

/// The direction of the fast path's rows in the beam frame: along a row,
/// dx = p + i q and dy = u + i v for voxel index i (p, u: the row's lateral
/// offsets from the pencil's axis at i = 0).
#[derive(Clone, Copy)]
struct RowStep {
    q: f64,
    v: f64,
    /// q² + v², and 1 / (2 (q² + v²)).
    qa: f64,
    inv_2qa: f64,
}

impl RowStep {
    fn new(q: f64, v: f64) -> Self {
        let qa = q * q + v * v;
        Self {
            q,
            v,
            qa,
            inv_2qa: 0.5 / qa,
        }
    }

    /// Whether voxel `i` of the row with offsets (p, u) lies within the
    /// cut-off: the per-voxel test every path shares.
    #[inline]
    fn inside(&self, p: f64, u: f64, i: usize, cutoff_sq: f64) -> bool {
        let fi = i as f64;
        let (dx, dy) = (p + fi * self.q, u + fi * self.v);
        dx * dx + dy * dy <= cutoff_sq
    }

    /// The voxels (within `i0..i1`) of the row with offsets (p, u) that can
    /// lie within the cut-off: an interval around the roots r1 < r2 of the
    /// distance² quadratic qa·i² + … − cutoff², with a margin of a voxel or
    /// two; and the part of it surely inside: at least two steps from both
    /// roots, where the exact quadratic is ≤ −4·qa, far beyond the rounding
    /// of [`Self::inside`] (a few ulp of cutoff²), so the test would pass and
    /// can be skipped (empty, at the interval's start, when there are none or
    /// the margin is not clear). `None` when the row misses the cut-off.
    fn span(
        &self,
        p: f64,
        u: f64,
        cutoff_sq: f64,
        i0: usize,
        i1: usize,
    ) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
        let qb = 2.0 * (p * self.q + u * self.v);
        let qc = p * p + u * u - cutoff_sq;
        let disc = qb * qb - 4.0 * self.qa * qc;
        if self.qa <= 0.0 || disc < 0.0 {
            return None;
        }
        let sq = disc.sqrt();
        let (r1, r2) = ((-qb - sq) * self.inv_2qa, (-qb + sq) * self.inv_2qa);
        let lo = (r1 - 1.0).max(i0 as f64) as usize;
        let hi = ((r2 + 2.0).max(0.0) as usize).min(i1);
        let a = (r1 + 2.0).ceil().max(lo as f64);
        let b = ((r2 - 2.0).floor() + 1.0).min(hi as f64);
        let sure = if b > a && 4.0 * self.qa > 1e-9 * cutoff_sq {
            a as usize..b as usize
        } else {
            lo..lo
        };
        Some((lo..hi, sure))
    }
}

/// One row's voxels within the cut-off, in increasing i, with their doses:
/// the voxels of `span` that pass the per-voxel test (those of `sure`
/// untested). Along the row each Gaussian's exponent is a quadratic in i,
/// e(i) = −(a (p + i q)² + b (u + i v)²), so its steps are linear,
/// e(i+1) − e(i) = α + β i, and exp(e) follows by two multiplications per
/// voxel: E ← E·R, R ← R·exp(β). This is the kernel of
/// `lateral_dose_per_proton` evaluated exactly (to a few ulp over a row)
/// without an exponential per voxel.
pub(crate) struct RowRun {
    step: RowStep,
    p: f64,
    u: f64,
    cutoff_sq: f64,
    span: std::ops::Range<usize>,
    sure: std::ops::Range<usize>,
    core: Stepper,
    /// The halo's Gaussian (amplitude 0 without one).
    halo: Stepper,
}

/// A Gaussian along a row: amplitude, exp(e(i)), exp(e(i+1) − e(i)) and
/// exp(β).
#[derive(Clone, Copy)]
struct Stepper {
    amplitude: f64,
    e: f64,
    r: f64,
    g: f64,
}

impl Stepper {
    const NONE: Self = Self {
        amplitude: 0.0,
        e: 0.0,
        r: 0.0,
        g: 0.0,
    };

    /// The Gaussian amplitude·exp(−(a dx² + b dy²)) from voxel `start` of
    /// the row with offsets (p, u) and direction `step`.
    fn new(amplitude: f64, a: f64, b: f64, step: &RowStep, p: f64, u: f64, start: f64) -> Self {
        let (q, v) = (step.q, step.v);
        let e0 = -(a * (p + start * q).powi(2) + b * (u + start * v).powi(2));
        let alpha = -(a * (2.0 * p * q + q * q) + b * (2.0 * u * v + v * v));
        let beta = -2.0 * (a * q * q + b * v * v);
        Self {
            amplitude,
            e: e0.exp(),
            r: (alpha + beta * start).exp(),
            g: beta.exp(),
        }
    }

    #[inline(always)]
    fn advance(&mut self) {
        self.e *= self.r;
        self.r *= self.g;
    }
}

impl RowRun {
    /// The voxels within the cut-off, without their doses.
    pub(crate) fn count(&self) -> usize {
        let inside = |i: &usize| self.step.inside(self.p, self.u, *i, self.cutoff_sq);
        let before = (self.span.start..self.sure.start).filter(inside).count();
        let after = (self.sure.end..self.span.end).filter(inside).count();
        before + self.sure.len() + after
    }

    /// At least as many voxels as the run yields (its span).
    pub(crate) fn len_bound(&self) -> usize {
        self.span.len()
    }

    /// Calls `f(i, dose per proton)` for the voxels within the cut-off.
    #[inline(always)]
    pub(crate) fn for_each(self, mut f: impl FnMut(usize, f64)) {
        let Self {
            step,
            p,
            u,
            cutoff_sq,
            span,
            sure,
            mut core,
            mut halo,
        } = self;
        let with_halo = halo.amplitude > 0.0;
        for i in span {
            if sure.contains(&i) || step.inside(p, u, i, cutoff_sq) {
                let mut d = core.amplitude * core.e;
                if with_halo {
                    d += halo.amplitude * halo.e;
                }
                f(i, d);
            }
            core.advance();
            if with_halo {
                halo.advance();
            }
        }
    }
}

pub(crate) fn visit<S: VoxelSink>(
    pencil: &Pencil,
    frame: &BeamFrame,
    dose_grid: &Grid3,
    k_range: std::ops::Range<usize>,
    sink: &mut S,
) {
    if pencil.nodes.len() < 2 {
        return;
    }
    let g = dose_grid;
    let (o, s) = (g.origin_mm(), g.spacing_mm());
    let [_, ny, nx] = g.shape();
    // beam coordinates are affine in the voxel index
    let b0 = frame.to_beam(&o);
    let bx = frame.to_beam(&(o + Vector3::new(s.x, 0.0, 0.0)));
    let by = frame.to_beam(&(o + Vector3::new(0.0, s.y, 0.0)));
    let bz = frame.to_beam(&(o + Vector3::new(0.0, 0.0, s.z)));
    let dbx = [bx[0] - b0[0], bx[1] - b0[1], bx[2] - b0[2]];
    let dby = [by[0] - b0[0], by[1] - b0[1], by[2] - b0[2]];
    let dbz = [bz[0] - b0[0], bz[1] - b0[1], bz[2] - b0[2]];
    let inv_step = 1.0 / pencil.step;
    let last = (pencil.nodes.len() - 1) as f64;
    // rows perpendicular to the beam (the fast path below) find their exact
    // interval of i from the cut-off of their one depth node, which a
    // cylinder test per row would only repeat
    let fast = dbx[2].abs() < 1e-12;
    let step = RowStep::new(dbx[0], dbx[1]);
    rows(pencil, frame, dose_grid, k_range, !fast, |k, j, i0, i1| {
        let (jf, kf) = (j as f64, k as f64);
        let row_b = [
            b0[0] + jf * dby[0] + kf * dbz[0],
            b0[1] + jf * dby[1] + kf * dbz[1],
            b0[2] + jf * dby[2] + kf * dbz[2],
        ];
        let row = (k * ny + j) * nx;
        if fast {
            // the row is perpendicular to the beam: one depth node for the
            // whole row, and the cut-off is an exact interval of i
            let delta = row_b[2];
            let t = (delta - pencil.delta0) * inv_step;
            if !(0.0..last).contains(&t) {
                return;
            }
            let n = t as usize;
            let frac = t - n as f64;
            let (n0, n1) = (&pencil.nodes[n], &pencil.nodes[n + 1]);
            let near = if frac < 0.5 { n0 } else { n1 };
            let (cx, cy) = pencil.centre(delta);
            let (p, u) = (row_b[0] - cx, row_b[1] - cy);
            let Some((span, sure)) = step.span(p, u, near.cutoff_sq, i0, i1) else {
                return;
            };
            let (core, halo) = if S::DOSE {
                let amplitude = |a0: f64, a1: f64| a0 + frac * (a1 - a0);
                let start = span.start as f64;
                let core = Stepper::new(
                    amplitude(n0.core_amplitude, n1.core_amplitude),
                    near.core_inv_2sx2,
                    near.core_inv_2sy2,
                    &step,
                    p,
                    u,
                    start,
                );
                let halo_amplitude = amplitude(n0.halo_amplitude, n1.halo_amplitude);
                let halo = if halo_amplitude > 0.0 {
                    Stepper::new(
                        halo_amplitude,
                        near.halo_inv_2sx2,
                        near.halo_inv_2sy2,
                        &step,
                        p,
                        u,
                        start,
                    )
                } else {
                    Stepper::NONE
                };
                (core, halo)
            } else {
                (Stepper::NONE, Stepper::NONE)
            };
            sink.row(
                row,
                RowRun {
                    step,
                    p,
                    u,
                    cutoff_sq: near.cutoff_sq,
                    span,
                    sure,
                    core,
                    halo,
                },
            );
            return;
        }
        for i in i0..i1 {
            let fi = i as f64;
            let delta = row_b[2] + fi * dbx[2];
            let t = (delta - pencil.delta0) * inv_step;
            if !(0.0..last).contains(&t) {
                continue;
            }
            let x = row_b[0] + fi * dbx[0];
            let y = row_b[1] + fi * dbx[1];
            let (cx, cy) = pencil.centre(delta);
            let n = t as usize;
            let frac = t - n as f64;
            let (n0, n1) = (&pencil.nodes[n], &pencil.nodes[n + 1]);
            // amplitudes (which carry the IDD) linear between nodes; widths
            // and cut-off from the nearer node
            let near = if frac < 0.5 { n0 } else { n1 };
            let (dx, dy) = (x - cx, y - cy);
            if dx * dx + dy * dy > near.cutoff_sq {
                continue;
            }
            if S::DOSE {
                let node = DepthNode {
                    core_amplitude: n0.core_amplitude
                        + frac * (n1.core_amplitude - n0.core_amplitude),
                    halo_amplitude: n0.halo_amplitude
                        + frac * (n1.halo_amplitude - n0.halo_amplitude),
                    ..*near
                };
                sink.voxel(
                    row + i,
                    super::kernel::lateral_dose_per_proton(&node, dx, dy),
                );
            } else {
                sink.voxel(row + i, 0.0);
            }
        }
    });
}

/// A test phantom: water with a bone-like slab (HU 900) in part of three
/// y planes, 14 × 30 × 22 voxels of 2.5 mm around the isocentre.
#[cfg(test)]
pub(crate) fn slab_phantom() -> crate::grid::CtVolume {
    #![allow(clippy::unwrap_used)]
    let (shape, s) = ([14, 30, 22], 2.5);
    let grid = Grid3::new(shape, [s; 3], [-10.5 * s, -14.5 * s, -6.5 * s]).unwrap();
    let data = ndarray::Array3::from_shape_fn((shape[0], shape[1], shape[2]), |(_, j, i)| {
        if (8..11).contains(&j) && i > 9 {
            900.0f32
        } else {
            0.0
        }
    });
    crate::grid::CtVolume::new(grid, data).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On random oblique beams (gantry and couch angles, spots, halo on and
    /// off), the traversal visits exactly the voxels that pass the
    /// per-voxel test when every voxel of the grid is tested: neither the
    /// cylinder chords of the general path nor the fast path's intervals
    /// drop one (or add one).
    #[test]
    fn traversal_visits_every_voxel_within_the_cut_off() {
        #![allow(clippy::unwrap_used)]
        use crate::proton::{ProtonBeam, Spot};
        let machine = crate::proton::generic::generic_machine().unwrap();
        let ct = slab_phantom();
        let grid = ct.grid().clone();
        let s = grid.spacing_mm().x;
        let [nz, ny, nx] = grid.shape();
        let mut next = crate::test_rng::uniform(77);
        let mut visited = 0usize;
        for case in 0..12 {
            let options = DoseOptions {
                include_halo: case % 2 == 0,
                ..DoseOptions::new().unwrap()
            };
            let medium = Medium::from_ct(&ct, &options).unwrap();
            let spots = (0..3)
                .map(|_| Spot {
                    energy_mev: 75.0 + 30.0 * next(),
                    x_mm: (next() - 0.5) * 20.0,
                    y_mm: (next() - 0.5) * 20.0,
                    weight: 1.0,
                })
                .collect();
            let (gantry, couch) = match case {
                0 => (90.0, 0.0),
                1 => (270.0, 0.0),
                2 => (180.0, 0.0),
                _ => (
                    360.0 * next(),
                    if case % 3 == 0 {
                        0.0
                    } else {
                        90.0 * next() - 45.0
                    },
                ),
            };
            let beam = ProtonBeam::new(gantry, couch, [0.0; 3], spots, None).unwrap();
            let prepared =
                prepare_beam(&grid, &medium, &grid, machine, &beam, 0, &options, false).unwrap();
            let frame = &prepared.frame;
            // the per-voxel arithmetic of the traversal, on every voxel
            let o = grid.origin_mm();
            let b0 = frame.to_beam(&o);
            let d = |v: Vector3<f64>| {
                let b = frame.to_beam(&(o + v));
                [b[0] - b0[0], b[1] - b0[1], b[2] - b0[2]]
            };
            let (dbx, dby, dbz) = (
                d(Vector3::new(s, 0.0, 0.0)),
                d(Vector3::new(0.0, s, 0.0)),
                d(Vector3::new(0.0, 0.0, s)),
            );
            for p in &prepared.pencils {
                let last = (p.nodes.len() - 1) as f64;
                let mut all = Vec::new();
                for k in 0..nz {
                    for j in 0..ny {
                        let (jf, kf) = (j as f64, k as f64);
                        let row_b = [
                            b0[0] + jf * dby[0] + kf * dbz[0],
                            b0[1] + jf * dby[1] + kf * dbz[1],
                            b0[2] + jf * dby[2] + kf * dbz[2],
                        ];
                        for i in 0..nx {
                            let fi = i as f64;
                            let delta = row_b[2] + fi * dbx[2];
                            let t = (delta - p.delta0) * (1.0 / p.step);
                            if !(0.0..last).contains(&t) {
                                continue;
                            }
                            let (cx, cy) = p.centre(delta);
                            let (dx, dy) =
                                (row_b[0] + fi * dbx[0] - cx, row_b[1] + fi * dbx[1] - cy);
                            let n = t as usize;
                            let frac = t - n as f64;
                            let near = &p.nodes[if frac < 0.5 { n } else { n + 1 }];
                            if dx * dx + dy * dy <= near.cutoff_sq {
                                all.push((k * ny + j) * nx + i);
                            }
                        }
                    }
                }
                let mut seen = Vec::new();
                for_each_voxel(p, frame, &grid, 0..nz, |v, _| seen.push(v));
                assert!(
                    seen == all,
                    "case {case}, gantry {gantry}, couch {couch}: {} visited, {} within the cut-off",
                    seen.len(),
                    all.len()
                );
                visited += seen.len();
            }
        }
        assert!(visited > 20_000, "{visited}");
    }

    /// On random rows (offsets, directions, cut-offs, grid steps), every
    /// voxel that `RowStep::span` marks sure passes the per-voxel test, and
    /// no voxel outside its interval does: the count with skipping equals
    /// the count with every voxel tested.
    #[test]
    fn sure_voxels_pass_the_per_voxel_test() {
        let mut next = crate::test_rng::uniform(2024);
        let mut skipped = 0usize;
        for _ in 0..20_000 {
            let step = RowStep::new(0.5 + 4.0 * next(), (next() - 0.5) * 2.0);
            let (p, u) = ((next() - 0.5) * 400.0, (next() - 0.5) * 60.0);
            let cutoff_sq = (1.0 + 40.0 * next()).powi(2);
            let n = 200usize;
            let inside = |i: usize| step.inside(p, u, i, cutoff_sq);
            let Some((span, sure)) = step.span(p, u, cutoff_sq, 0, n) else {
                assert!((0..n).all(|i| !inside(i)));
                continue;
            };
            assert!(sure.start >= span.start && sure.end <= span.end.max(span.start));
            for i in sure.clone() {
                assert!(inside(i), "{i} in {sure:?}: p {p} u {u}");
            }
            skipped += sure.len();
            assert!((0..n).filter(|&i| inside(i)).all(|i| span.contains(&i)));
        }
        assert!(skipped > 50_000, "{skipped}");
    }
}
