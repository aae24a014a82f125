//! What a secondary dose check needs to recompute a planning system's plan:
//! the materials the planning system assigned to structures (RTSTRUCT
//! physical-property overrides), a phantom built from the structures alone
//! where no CT was exported, and a machine whose spot size is the plan's.
//!
//! **Materials.** An ROI's ROIPhysicalPropertiesSequence (3006,00B0) sets its
//! material. The RSP is, in order of preference:
//! - REL_STOP_RATIO, when the planning system gives it;
//! - otherwise from REL_ELEC_DENSITY ρ_e and MEAN_EXCI_ENERGY I by the Bethe
//!   formula ([`relative_stopping_power`]: RSP = ρ_e · L(I) / L(I_water),
//!   L(I) = ln(2 m_e c² β²γ² / I) − β², at [`RSP_ENERGY_MEV`], I_water 78 eV,
//!   ICRU 90); without MEAN_EXCI_ENERGY, I = I_water (RSP = ρ_e).
//!
//! An ROI that overrides only REL_MASS_DENSITY is an error: a mass density
//! gives no stopping power without the planning system's own curve.
//! Overrides are applied with the body (RTROIInterpretedType EXTERNAL) first
//! and the rest in ROI-number order, so inserts override the body they lie
//! in. The RSP of the solid water and PMMA of the RayStation phantom in
//! `tests/data` varies by less than 0.1 % between 70 and 230 MeV, so one
//! energy is used for all.
//!
//! **Phantom from structures.** Without a CT, the phantom is the EXTERNAL
//! ROI's bounding box on a grid of the chosen spacing (voxel centres half a
//! voxel inside the box's faces), HU −1000 (air, by the HU curve) outside the
//! ROIs, the overrides inside.

use std::path::Path;

use isodose_core::physics::bethe::{relative_stopping_power, water_mean_excitation_energy_ev};
use isodose_core::proton::{EnergyModel, MaterialOverride, ProtonMachine, SpotOptics};
use isodose_core::{CtVolume, Grid3, Volume};

use dicom_dictionary_std::tags;

use crate::attrs::tag_name;
use crate::error::DicomIoError;
use crate::rt_ion_plan::IonBeam;
use crate::rtstruct::Roi;

type Result<T> = std::result::Result<T, DicomIoError>;

/// Proton energy at which an ROI's RSP is derived from its electron density
/// and mean excitation energy, MeV.
pub const RSP_ENERGY_MEV: f64 = 100.0;

/// HU of the voxels outside every ROI of a phantom built from structures
/// (air).
pub const PHANTOM_AIR_HU: f32 = -1000.0;

/// The material of an ROI, as derived from its physical properties.
#[derive(Clone, Debug, PartialEq)]
pub struct RoiMaterial {
    /// ROIName.
    pub roi: String,
    /// Relative stopping power.
    pub rsp: f64,
    /// Where the RSP comes from, for the report (the properties used).
    pub derivation: String,
}

/// The material an ROI's physical properties set, `None` when it sets none.
/// `path` is the RTSTRUCT's, for errors.
pub fn roi_material(roi: &Roi, path: &Path) -> Result<Option<RoiMaterial>> {
    let bad = |value: String, reason: String| DicomIoError::BadValue {
        path: path.to_owned(),
        tag: tag_name(tags::ROI_PHYSICAL_PROPERTY),
        value,
        reason,
    };
    if let Some(rsp) = roi.physical_property("REL_STOP_RATIO") {
        if !(rsp > 0.0 && rsp < 20.0) {
            return Err(bad(
                format!("REL_STOP_RATIO {rsp}"),
                format!(
                    "ROI {:?}: a relative stopping power must be in (0, 20)",
                    roi.name
                ),
            ));
        }
        return Ok(Some(RoiMaterial {
            roi: roi.name.clone(),
            rsp,
            derivation: format!("REL_STOP_RATIO {rsp}"),
        }));
    }
    if let Some(rho_e) = roi.physical_property("REL_ELEC_DENSITY") {
        let water = water_mean_excitation_energy_ev()?;
        let (i, which) = match roi.physical_property("MEAN_EXCI_ENERGY") {
            Some(i) => (i, format!("MEAN_EXCI_ENERGY {i} eV")),
            None => (water, format!("no MEAN_EXCI_ENERGY: water's {water} eV")),
        };
        let rsp = relative_stopping_power(rho_e, i, water, RSP_ENERGY_MEV).map_err(|e| {
            bad(
                format!("REL_ELEC_DENSITY {rho_e}, MEAN_EXCI_ENERGY {i}"),
                format!("ROI {:?}: {e}", roi.name),
            )
        })?;
        return Ok(Some(RoiMaterial {
            roi: roi.name.clone(),
            rsp,
            derivation: format!(
                "REL_ELEC_DENSITY {rho_e}, {which} (Bethe at {RSP_ENERGY_MEV} MeV, I_water {water} eV)"
            ),
        }));
    }
    if let Some(rho) = roi.physical_property("REL_MASS_DENSITY") {
        return Err(bad(
            format!("REL_MASS_DENSITY {rho}"),
            format!(
                "ROI {:?} overrides only the mass density; a stopping power needs REL_STOP_RATIO or REL_ELEC_DENSITY",
                roi.name
            ),
        ));
    }
    Ok(None)
}

/// The overrides of every ROI that sets a material, on `grid` (the CT's),
/// body first, then by ROI number ([module docs](self)); with each
/// override, its material.
pub fn material_overrides(
    rois: &[Roi],
    grid: &Grid3,
    path: &Path,
) -> Result<Vec<(MaterialOverride, RoiMaterial)>> {
    let mut ordered: Vec<&Roi> = rois.iter().collect();
    ordered.sort_by_key(|r| (!is_external(r), r.number));
    let mut out = Vec::new();
    for roi in ordered {
        if let Some(material) = roi_material(roi, path)? {
            let o = MaterialOverride {
                name: roi.name.clone(),
                mask: roi.mask(grid),
                rsp: material.rsp,
                scattering: None,
            };
            out.push((o, material));
        }
    }
    Ok(out)
}

fn is_external(roi: &Roi) -> bool {
    roi.interpreted_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("EXTERNAL"))
}

/// A phantom built from the structures alone ([module docs](self)): the
/// EXTERNAL ROI's bounding box at `spacing_mm`, air outside the ROIs, and the
/// overrides. Errors: no EXTERNAL ROI with closed contours, or one without a
/// material.
pub fn phantom_from_structures(
    rois: &[Roi],
    spacing_mm: f64,
    path: &Path,
) -> Result<(CtVolume, Vec<(MaterialOverride, RoiMaterial)>)> {
    let inconsistent = |reason: String| DicomIoError::Inconsistent {
        path: path.to_owned(),
        reason,
    };
    if !(spacing_mm.is_finite() && spacing_mm > 0.0) {
        return Err(inconsistent(format!(
            "phantom spacing {spacing_mm} mm: must be finite and > 0"
        )));
    }
    let body = rois.iter().find(|r| is_external(r)).ok_or_else(|| {
        inconsistent(
            "no ROI has RTROIInterpretedType (3006,00A4) EXTERNAL: the phantom's body is unknown"
                .into(),
        )
    })?;
    if roi_material(body, path)?.is_none() {
        return Err(inconsistent(format!(
            "the EXTERNAL ROI {:?} has no material override (ROIPhysicalPropertiesSequence): \
             without a CT its material is unknown",
            body.name
        )));
    }
    let points: Vec<[f64; 3]> = body
        .contours
        .iter()
        .filter(|c| c.geometric_type == "CLOSED_PLANAR")
        .flat_map(|c| c.points.iter().copied())
        .collect();
    if points.is_empty() {
        return Err(inconsistent(format!(
            "the EXTERNAL ROI {:?} has no closed contour",
            body.name
        )));
    }
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in &points {
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    // a body contoured on one plane is a slab of one voxel
    if hi[2] - lo[2] < spacing_mm {
        lo[2] -= 0.5 * spacing_mm;
        hi[2] += 0.5 * spacing_mm;
    }
    let mut shape = [0usize; 3];
    let mut origin = [0.0; 3];
    for a in 0..3 {
        let n = ((hi[a] - lo[a]) / spacing_mm).round().max(1.0);
        shape[2 - a] = n as usize;
        origin[a] = 0.5 * (lo[a] + hi[a]) - 0.5 * (n - 1.0) * spacing_mm;
    }
    let grid = Grid3::new(shape, [spacing_mm; 3], origin)?;
    let overrides = material_overrides(rois, &grid, path)?;
    let hu = ndarray::Array3::from_elem((shape[0], shape[1], shape[2]), PHANTOM_AIR_HU);
    Ok((Volume::new(grid, hu)?, overrides))
}

/// `machine` with the in-air spot size of `beam`'s ScanningSpotSize
/// (300A,0398) at every machine energy: σ = FWHM / (2 √(2 ln 2)) on each
/// axis, interpolated linearly in energy between the beam's layers (held
/// beyond them), with no divergence (the plan gives the size at the
/// isocentre only). Everything else (depth doses, halo, MU calibration,
/// source distances) stays the machine's. `path` is the plan's, for errors.
pub fn machine_with_plan_spot_size(
    machine: &ProtonMachine,
    beam: &IonBeam,
    path: &Path,
) -> Result<ProtonMachine> {
    let mut layers: Vec<(f64, [f64; 2])> = Vec::new();
    for l in &beam.layers {
        let Some(fwhm) = l.spot_size_fwhm_mm else {
            return Err(DicomIoError::MissingTag {
                path: path.to_owned(),
                tag: format!(
                    "{} (beam {} layer at {} MeV)",
                    tag_name(tags::SCANNING_SPOT_SIZE),
                    beam.number,
                    l.energy_mev
                ),
            });
        };
        layers.push((l.energy_mev, fwhm));
    }
    if layers.is_empty() {
        return Err(DicomIoError::Inconsistent {
            path: path.to_owned(),
            reason: format!("beam {} has no energy layers", beam.number),
        });
    }
    layers.sort_by(|a, b| a.0.total_cmp(&b.0));
    let fwhm_at = |e: f64, axis: usize| {
        let i = layers.partition_point(|l| l.0 < e);
        if i == 0 {
            layers[0].1[axis]
        } else if i == layers.len() {
            layers[i - 1].1[axis]
        } else {
            let ((e0, s0), (e1, s1)) = (layers[i - 1], layers[i]);
            if e1 > e0 {
                s0[axis] + (s1[axis] - s0[axis]) * (e - e0) / (e1 - e0)
            } else {
                s0[axis]
            }
        }
    };
    let fwhm_per_sigma = (8.0f64 * 2f64.ln()).sqrt();
    let energies = machine
        .energies()
        .iter()
        .map(|em| {
            let optics = |axis| SpotOptics {
                sigma_mm: fwhm_at(em.energy_mev, axis) / fwhm_per_sigma,
                divergence_mrad: 0.0,
                correlation: 0.0,
            };
            EnergyModel::new(
                em.energy_mev,
                em.idd.clone(),
                optics(0),
                optics(1),
                em.protons_per_mu,
                em.halo.clone(),
            )
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(ProtonMachine::new(
        &format!("{}, spot size of the plan", machine.name()),
        machine.sad_x_mm(),
        machine.sad_y_mm(),
        energies,
        *machine.highland(),
    )?
    .with_range_shifters(machine.range_shifters().to_vec())?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::rtstruct::Contour;

    fn square(name: &str, number: i64, half: f64, z: &[f64], props: &[(&str, f64)]) -> Roi {
        Roi {
            number,
            name: name.into(),
            interpreted_type: None,
            color: None,
            contours: z
                .iter()
                .map(|&z| Contour {
                    geometric_type: "CLOSED_PLANAR".into(),
                    points: vec![
                        [-half, -half, z],
                        [half, -half, z],
                        [half, half, z],
                        [-half, half, z],
                    ],
                })
                .collect(),
            physical_properties: props.iter().map(|(p, v)| ((*p).into(), *v)).collect(),
        }
    }

    #[test]
    fn materials_from_stopping_ratio_electron_density_or_an_error() {
        let p = Path::new("RS.dcm");
        let r = square("a", 1, 5.0, &[0.0], &[("REL_STOP_RATIO", 1.2)]);
        assert_eq!(roi_material(&r, p).unwrap().unwrap().rsp, 1.2);
        // ρ_e alone: water's I, RSP = ρ_e
        let r = square("b", 2, 5.0, &[0.0], &[("REL_ELEC_DENSITY", 1.1)]);
        assert!((roi_material(&r, p).unwrap().unwrap().rsp - 1.1).abs() < 1e-12);
        // a lower I stops more: PMMA-like (ρ_e 1.1565, 74 eV) above ρ_e
        let r = square(
            "c",
            3,
            5.0,
            &[0.0],
            &[("REL_ELEC_DENSITY", 1.1565), ("MEAN_EXCI_ENERGY", 74.0)],
        );
        let m = roi_material(&r, p).unwrap().unwrap();
        assert!(m.rsp > 1.1565 && m.rsp < 1.17, "{m:?}");
        let r = square("d", 4, 5.0, &[0.0], &[("REL_MASS_DENSITY", 1.02)]);
        let e = roi_material(&r, p).unwrap_err().to_string();
        assert!(
            e.contains("RS.dcm") && e.contains("\"d\"") && e.contains("REL_ELEC_DENSITY"),
            "{e}"
        );
        assert!(
            roi_material(&square("e", 5, 5.0, &[0.0], &[]), p)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn phantom_of_a_body_with_an_insert() {
        let p = Path::new("RS.dcm");
        let z: Vec<f64> = (0..=8).map(|k| -20.0 + 5.0 * f64::from(k)).collect();
        let mut body = square("Body", 7, 20.0, &z, &[("REL_STOP_RATIO", 1.0)]);
        body.interpreted_type = Some("EXTERNAL".into());
        let insert = square("Insert", 2, 5.0, &z, &[("REL_STOP_RATIO", 1.5)]);
        let (ct, overrides) = phantom_from_structures(&[insert, body], 1.0, p).unwrap();
        assert_eq!(ct.grid().shape(), [40, 40, 40]);
        assert!((ct.grid().origin_mm().x + 19.5).abs() < 1e-9);
        // the body first although its ROI number is larger
        let names: Vec<&str> = overrides.iter().map(|(o, _)| o.name.as_str()).collect();
        assert_eq!(names, ["Body", "Insert"]);
        let count = |o: &MaterialOverride| o.mask.iter().filter(|v| **v).count();
        assert_eq!(count(&overrides[0].0), 40 * 40 * 40);
        assert_eq!(count(&overrides[1].0), 40 * 10 * 10);
        let e = phantom_from_structures(&[square("x", 1, 5.0, &z, &[])], 1.0, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("EXTERNAL"), "{e}");
    }
}
