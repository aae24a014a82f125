//! The CT as the proton transport sees it: relative stopping power (RSP) and
//! relative scattering power of every voxel, from the HU curves and the
//! material overrides a planning system assigns to structures.
//!
//! **Overrides.** A planning system may replace the CT inside a structure by
//! a material of known RSP (a couch, a phantom's solid water, a contrast
//! filling, or a whole phantom without a CT): [`MaterialOverride`]. Overrides
//! are applied in the order given, after the HU curves, so a later override
//! wins where two overlap (e.g. a phantom's body first, its inserts after).

use ndarray::Array3;

use super::prepare::DoseOptions;
use crate::error::{DoseError, Result};
use crate::grid::CtVolume;
use crate::physics::hlut::Hlut;

/// A structure whose voxels take a fixed material instead of the CT's.
#[derive(Clone, Debug, PartialEq)]
pub struct MaterialOverride {
    /// The structure (for messages and reports).
    pub name: String,
    /// Voxels of the CT grid inside the structure, indexed (z, y, x).
    pub mask: Array3<bool>,
    /// Relative stopping power (to water) of the material.
    pub rsp: f64,
    /// Relative scattering power (ρ/X₀ over water's), or `None` to scatter
    /// as water of the same water-equivalent thickness (= the RSP).
    pub scattering: Option<f64>,
}

impl MaterialOverride {
    /// Checks the values and that the mask has the CT's shape.
    pub fn validate(&self, ct_shape: [usize; 3]) -> Result<()> {
        let shape = self.mask.shape();
        let got = [shape[0], shape[1], shape[2]];
        if got != ct_shape {
            return Err(DoseError::ShapeMismatch {
                what: "material override mask (the CT grid)",
                expected: ct_shape,
                got,
            });
        }
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v < 20.0 {
                Ok(())
            } else {
                Err(DoseError::OutOfRange {
                    field: format!("{field} of the override of {:?}", self.name),
                    value: v,
                    reason: "must be in (0, 20)".into(),
                })
            }
        };
        positive("relative stopping power", self.rsp)?;
        if let Some(s) = self.scattering {
            positive("relative scattering power", s)?;
        }
        Ok(())
    }
}

/// RSP and relative scattering power of every CT voxel, in the CT's
/// (z, y, x) order.
pub(crate) struct Medium {
    pub rsp: Vec<f32>,
    pub scattering: Vec<f32>,
}

impl Medium {
    /// HU → RSP (`options.hlut`) and scattering power (`options.scattering`,
    /// or the RSP) on every CT voxel, then `options.overrides` in order.
    pub fn from_ct(ct: &CtVolume, options: &DoseOptions) -> Result<Self> {
        let mut rsp = rsp_volume(ct, &options.hlut);
        let mut scattering = match &options.scattering {
            Some(curve) => ct
                .data()
                .iter()
                .map(|hu| curve.power(f64::from(*hu)) as f32)
                .collect(),
            None => rsp.clone(),
        };
        for o in &options.overrides {
            o.validate(ct.grid().shape())?;
            let s = o.scattering.unwrap_or(o.rsp) as f32;
            for (n, inside) in o.mask.iter().enumerate() {
                if *inside {
                    rsp[n] = o.rsp as f32;
                    scattering[n] = s;
                }
            }
        }
        Ok(Self { rsp, scattering })
    }
}

/// HU → RSP on every CT voxel.
fn rsp_volume(ct: &CtVolume, hlut: &Hlut) -> Vec<f32> {
    ct.data()
        .iter()
        .map(|hu| hlut.rsp(f64::from(*hu)) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::grid::{Grid3, Volume};

    fn ct() -> CtVolume {
        let g = Grid3::new([2, 3, 4], [1.0; 3], [0.0; 3]).unwrap();
        Volume::new(g, Array3::from_elem((2, 3, 4), 0.0f32)).unwrap()
    }

    #[test]
    fn later_overrides_win_and_scatter_as_given() {
        let ct = ct();
        let mut body = Array3::from_elem((2, 3, 4), true);
        body[[0, 0, 0]] = false;
        let mut insert = Array3::from_elem((2, 3, 4), false);
        insert[[1, 2, 3]] = true;
        let options = DoseOptions {
            overrides: vec![
                MaterialOverride {
                    name: "body".into(),
                    mask: body,
                    rsp: 1.03,
                    scattering: None,
                },
                MaterialOverride {
                    name: "insert".into(),
                    mask: insert,
                    rsp: 1.6,
                    scattering: Some(2.5),
                },
            ],
            ..DoseOptions::new().unwrap()
        };
        let m = Medium::from_ct(&ct, &options).unwrap();
        let water = options.hlut.rsp(0.0) as f32;
        assert_eq!(m.rsp[0], water);
        assert_eq!((m.rsp[1], m.scattering[1]), (1.03, 1.03));
        assert_eq!((m.rsp[23], m.scattering[23]), (1.6, 2.5));
    }

    #[test]
    fn a_mask_off_the_ct_grid_or_a_bad_rsp_is_an_error() {
        let ct = ct();
        let wrong = MaterialOverride {
            name: "couch".into(),
            mask: Array3::from_elem((2, 3, 5), true),
            rsp: 1.0,
            scattering: None,
        };
        let options = DoseOptions {
            overrides: vec![wrong.clone()],
            ..DoseOptions::new().unwrap()
        };
        let e = Medium::from_ct(&ct, &options).err().unwrap().to_string();
        assert!(e.contains("override mask"), "{e}");
        let bad = MaterialOverride {
            mask: Array3::from_elem((2, 3, 4), true),
            rsp: f64::NAN,
            ..wrong
        };
        let e = bad.validate([2, 3, 4]).unwrap_err().to_string();
        assert!(e.contains("\"couch\""), "{e}");
    }
}
