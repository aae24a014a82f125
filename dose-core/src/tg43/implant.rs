//! Implants: seeds of one model at positions in the patient, and how long they
//! irradiate.
//!
//! Each seed has a position (LPS mm), an axis direction (unit vector, default
//! along the patient z axis) and an air-kerma strength S_K in U at the
//! implant's reference time. The dose rate at the start of irradiation is
//! Ḋ₀ = Ḋ_ref · exp(−Δt/τ), Δt the time from the reference time to the start,
//! τ = T½ / ln 2 the mean life. The total dose follows from the decay:
//!
//! - permanent implant (full decay): D = Ḋ₀ · τ
//! - temporary implant of duration t: D = Ḋ₀ · τ · (1 − exp(−t/τ))
//!
//! (TG-43U1, Rivard et al. 2004, and e.g. Nath et al., Med Phys 22:209 (1995)
//! for the permanent-implant integral.)

use nalgebra::{Point3, Unit, Vector3};

use super::dose::{Formalism, dose_rate_per_u_cyl};
use super::source::SeedModel;
use crate::error::{DoseError, Result, finite};

/// One seed of an implant.
#[derive(Clone, Debug, PartialEq)]
pub struct Seed {
    position_mm: Point3<f64>,
    direction: Unit<Vector3<f64>>,
    air_kerma_strength_u: f64,
}

impl Seed {
    /// A seed at `position_mm` (LPS), with axis `direction` (any non-zero
    /// vector; normalised here; `None` = patient z axis) and air-kerma strength
    /// `air_kerma_strength_u` (U, ≥ 0) at the implant's reference time.
    pub fn new(
        position_mm: [f64; 3],
        direction: Option<[f64; 3]>,
        air_kerma_strength_u: f64,
    ) -> Result<Self> {
        for (axis, v) in ["x", "y", "z"].iter().zip(position_mm) {
            finite(&format!("seed position {axis} (mm)"), v)?;
        }
        let d = direction.unwrap_or([0.0, 0.0, 1.0]);
        for (axis, v) in ["x", "y", "z"].iter().zip(d) {
            finite(&format!("seed direction {axis}"), v)?;
        }
        let v = Vector3::from(d);
        let norm = v.norm();
        if norm <= 1e-9 {
            return Err(DoseError::ZeroDirection {
                field: "seed direction".into(),
                vector: d,
            });
        }
        let sk = finite("air-kerma strength (U)", air_kerma_strength_u)?;
        if sk < 0.0 {
            return Err(DoseError::OutOfRange {
                field: "air-kerma strength (U)".into(),
                value: sk,
                reason: "must be >= 0".into(),
            });
        }
        Ok(Self {
            position_mm: Point3::from(position_mm),
            direction: Unit::new_normalize(v),
            air_kerma_strength_u: sk,
        })
    }

    /// Position, LPS mm.
    pub fn position_mm(&self) -> Point3<f64> {
        self.position_mm
    }
    /// Unit axis direction.
    pub fn direction(&self) -> Unit<Vector3<f64>> {
        self.direction
    }
    /// S_K at the reference time, U.
    pub fn air_kerma_strength_u(&self) -> f64 {
        self.air_kerma_strength_u
    }
    /// The same seed moved by `offset_mm`.
    pub fn translated(&self, offset_mm: Vector3<f64>) -> Self {
        Self {
            position_mm: self.position_mm + offset_mm,
            ..self.clone()
        }
    }
}

/// How long the seeds irradiate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Technique {
    /// Left in place to decay completely.
    Permanent,
    /// Removed after `duration_h` hours.
    Temporary {
        /// Irradiation time, hours (> 0).
        duration_h: f64,
    },
}

/// Seeds of one model, with their timing.
#[derive(Clone, Debug)]
pub struct Implant {
    model: SeedModel,
    seeds: Vec<Seed>,
    technique: Technique,
    days_from_reference: f64,
}

impl Implant {
    /// An implant of `seeds` of `model`. `days_from_reference` is the time from
    /// the S_K reference time to the start of irradiation (days, may be
    /// negative; 0 when the strengths are given at implantation).
    pub fn new(
        model: SeedModel,
        seeds: Vec<Seed>,
        technique: Technique,
        days_from_reference: f64,
    ) -> Result<Self> {
        if seeds.is_empty() {
            return Err(DoseError::Empty {
                what: "implant seed list",
            });
        }
        if let Technique::Temporary { duration_h } = technique
            && !(duration_h.is_finite() && duration_h > 0.0)
        {
            return Err(DoseError::OutOfRange {
                field: "temporary implant duration (h)".into(),
                value: duration_h,
                reason: "must be finite and > 0".into(),
            });
        }
        finite("days from reference time to implant", days_from_reference)?;
        let limit = 20.0 * model.half_life_days();
        if days_from_reference.abs() > limit {
            return Err(DoseError::OutOfRange {
                field: "days from reference time to implant".into(),
                value: days_from_reference,
                reason: format!(
                    "more than 20 half-lives ({limit} days) from the reference time; check the dates"
                ),
            });
        }
        Ok(Self {
            model,
            seeds,
            technique,
            days_from_reference,
        })
    }

    /// The seed model.
    pub fn model(&self) -> &SeedModel {
        &self.model
    }
    /// The seeds.
    pub fn seeds(&self) -> &[Seed] {
        &self.seeds
    }
    /// Permanent or temporary.
    pub fn technique(&self) -> Technique {
        self.technique
    }
    /// Days from the S_K reference time to the start of irradiation.
    pub fn days_from_reference(&self) -> f64 {
        self.days_from_reference
    }

    /// Factor from the reference-time dose rate to the initial one:
    /// exp(−Δt·ln2/T½).
    pub fn decay_to_start(&self) -> f64 {
        (-self.days_from_reference * std::f64::consts::LN_2 / self.model.half_life_days()).exp()
    }

    /// Hours by which the initial dose rate (cGy/h) is multiplied to give the
    /// total dose (cGy): τ for a permanent implant, τ(1 − e^(−t/τ)) for a
    /// temporary one.
    pub fn effective_time_h(&self) -> f64 {
        let tau = self.model.mean_life_h();
        match self.technique {
            Technique::Permanent => tau,
            Technique::Temporary { duration_h } => tau * (-(-duration_h / tau).exp_m1()),
        }
    }

    /// Converts an initial dose rate in cGy/h to the total dose in Gy.
    pub fn dose_gy_per_initial_cgy_per_h(&self) -> f64 {
        self.effective_time_h() / 100.0
    }

    /// Initial dose rate (cGy/h, at the start of irradiation) at each point
    /// (LPS mm), by the exact TG-43 evaluation summed over the seeds in order.
    /// For QA of a few points without a grid.
    pub fn dose_rate_at(
        &self,
        points_mm: &[Point3<f64>],
        formalism: Formalism,
    ) -> Result<Vec<f64>> {
        let decay = self.decay_to_start();
        points_mm
            .iter()
            .map(|p| {
                for (axis, v) in ["x", "y", "z"].iter().zip(p.iter()) {
                    finite(&format!("dose point {axis} (mm)"), *v)?;
                }
                let mut sum = 0.0;
                for seed in &self.seeds {
                    let d = p - seed.position_mm;
                    let z = d.dot(&seed.direction);
                    let rho = (d.norm_squared() - z * z).max(0.0).sqrt();
                    sum += seed.air_kerma_strength_u
                        * dose_rate_per_u_cyl(&self.model, formalism, z, rho)?;
                }
                Ok(sum * decay)
            })
            .collect()
    }

    /// Total dose (Gy) at each point: [`Implant::dose_rate_at`] times the
    /// effective time.
    pub fn dose_at(&self, points_mm: &[Point3<f64>], formalism: Formalism) -> Result<Vec<f64>> {
        let k = self.dose_gy_per_initial_cgy_per_h();
        Ok(self
            .dose_rate_at(points_mm, formalism)?
            .into_iter()
            .map(|d| d * k)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tg43::SeedCatalogue;

    fn model() -> SeedModel {
        SeedCatalogue::builtin()
            .get("Amersham6711")
            .unwrap()
            .clone()
    }

    #[test]
    fn seed_validation() {
        assert!(Seed::new([0.0, f64::NAN, 0.0], None, 0.5).is_err());
        assert!(Seed::new([0.0, f64::INFINITY, 0.0], None, 0.5).is_err());
        let err = Seed::new([0.0; 3], Some([0.0; 3]), 0.5).unwrap_err();
        assert!(err.to_string().contains("zero length"), "{err}");
        assert!(Seed::new([0.0; 3], Some([0.0, f64::NAN, 1.0]), 0.5).is_err());
        let err = Seed::new([0.0; 3], None, -0.5).unwrap_err();
        assert!(err.to_string().contains("air-kerma"), "{err}");
        let s = Seed::new([0.0; 3], Some([0.0, 3.0, 4.0]), 0.5).unwrap();
        assert!((s.direction().norm() - 1.0).abs() < 1e-15);
        assert_eq!(s.direction().y, 0.6);
    }

    #[test]
    fn implant_validation() {
        assert!(Implant::new(model(), vec![], Technique::Permanent, 0.0).is_err());
        let seeds = vec![Seed::new([0.0; 3], None, 0.5).unwrap()];
        for bad in [0.0, -1.0, f64::NAN] {
            let t = Technique::Temporary { duration_h: bad };
            assert!(Implant::new(model(), seeds.clone(), t, 0.0).is_err());
        }
        assert!(Implant::new(model(), seeds.clone(), Technique::Permanent, f64::NAN).is_err());
        assert!(Implant::new(model(), seeds, Technique::Permanent, -1e6).is_err());
    }

    #[test]
    fn decay_integrals() {
        let seeds = vec![Seed::new([0.0; 3], None, 0.5).unwrap()];
        let m = model();
        let tau = 59.4 * 24.0 / std::f64::consts::LN_2;
        let perm = Implant::new(m.clone(), seeds.clone(), Technique::Permanent, 0.0).unwrap();
        assert!((perm.effective_time_h() - tau).abs() < 1e-9);
        // a temporary implant of one half-life delivers half the permanent dose
        let half = Technique::Temporary {
            duration_h: 59.4 * 24.0,
        };
        let temp = Implant::new(m.clone(), seeds.clone(), half, 0.0).unwrap();
        assert!((temp.effective_time_h() - 0.5 * tau).abs() < 1e-9);
        // a short temporary implant delivers rate × time
        let short = Technique::Temporary { duration_h: 0.01 };
        let temp = Implant::new(m.clone(), seeds.clone(), short, 0.0).unwrap();
        assert!((temp.effective_time_h() - 0.01).abs() < 1e-7);
        // one half-life after the reference, the rate is halved
        let late = Implant::new(m, seeds, Technique::Permanent, 59.4).unwrap();
        assert!((late.decay_to_start() - 0.5).abs() < 1e-15);
    }
}
