//! Beam frames by IEC 61217, expressed in the DICOM patient system (LPS).
//!
//! IEC fixed system: X to the right of an observer at the foot of the couch
//! facing the gantry, Y towards the gantry, Z up. For a head-first-supine
//! patient on the couch at 0°, DICOM (x, y, z) = (X_f, −Z_f, Y_f): patient
//! left, posterior, superior.
//!
//! - Gantry angle θ (rotation about Y_f, clockwise seen from the couch foot):
//!   the beam's Z axis (towards the source) is Z_g = (sin θ, 0, cos θ) and its
//!   X axis X_g = (cos θ, 0, −sin θ), Y_g = Y_f. Gantry 0° irradiates from
//!   above (anterior, beam along +y), 90° from the patient's left.
//! - Patient-support angle φ (rotation about Z_f, counter-clockwise seen from
//!   above): a vector v_f in the fixed system is R_z(−φ) v_f in the support
//!   (patient) system.
//!
//! Spot positions (x, y) are given in the beam's X_g/Y_g axes at the
//! isocentre plane, as DICOM RT Ion Plans do (ScanSpotPositionMap).
//! Only head-first-supine patients are supported for now.

use nalgebra::{Point3, Unit, Vector3};

use crate::error::{Result, finite};

/// A beam's frame: isocentre and axes in LPS.
#[derive(Clone, Debug, PartialEq)]
pub struct BeamFrame {
    isocenter_mm: Point3<f64>,
    x_axis: Unit<Vector3<f64>>,
    y_axis: Unit<Vector3<f64>>,
    /// Direction of travel (from the source towards the isocentre) = −Z_g.
    direction: Unit<Vector3<f64>>,
}

/// A fixed-system vector to the patient (LPS) system for couch angle `phi`.
fn fixed_to_patient(v: Vector3<f64>, phi: f64) -> Vector3<f64> {
    // R_z(−φ)
    let (s, c) = (-phi).sin_cos();
    let support = Vector3::new(c * v.x - s * v.y, s * v.x + c * v.y, v.z);
    // head-first supine: (x, y, z) = (X_s, −Z_s, Y_s)
    Vector3::new(support.x, -support.z, support.y)
}

impl BeamFrame {
    /// The frame for gantry angle `gantry_deg`, patient-support angle
    /// `couch_deg` and isocentre `isocenter_mm` (LPS).
    pub fn new(gantry_deg: f64, couch_deg: f64, isocenter_mm: [f64; 3]) -> Result<Self> {
        let theta = finite("gantry angle (deg)", gantry_deg)?.to_radians();
        let phi = finite("patient support angle (deg)", couch_deg)?.to_radians();
        for (axis, v) in ["x", "y", "z"].iter().zip(isocenter_mm) {
            finite(&format!("isocentre {axis} (mm)"), v)?;
        }
        let (s, c) = theta.sin_cos();
        let z_g = Vector3::new(s, 0.0, c);
        let x_g = Vector3::new(c, 0.0, -s);
        let y_g = Vector3::new(0.0, 1.0, 0.0);
        Ok(Self {
            isocenter_mm: Point3::from(isocenter_mm),
            x_axis: Unit::new_normalize(fixed_to_patient(x_g, phi)),
            y_axis: Unit::new_normalize(fixed_to_patient(y_g, phi)),
            direction: Unit::new_normalize(-fixed_to_patient(z_g, phi)),
        })
    }

    /// The isocentre, LPS mm.
    pub fn isocenter_mm(&self) -> Point3<f64> {
        self.isocenter_mm
    }
    /// Beam X axis (X_g) in LPS.
    pub fn x_axis(&self) -> Unit<Vector3<f64>> {
        self.x_axis
    }
    /// Beam Y axis (Y_g) in LPS.
    pub fn y_axis(&self) -> Unit<Vector3<f64>> {
        self.y_axis
    }
    /// Direction of travel of the beam in LPS.
    pub fn direction(&self) -> Unit<Vector3<f64>> {
        self.direction
    }

    /// Beam coordinates (x, y, Δ) of a point: lateral x, y along X_g, Y_g and
    /// Δ, the distance downstream of the isocentre plane along the beam.
    pub fn to_beam(&self, p: &Point3<f64>) -> [f64; 3] {
        let d = p - self.isocenter_mm;
        [
            d.dot(&self.x_axis),
            d.dot(&self.y_axis),
            d.dot(&self.direction),
        ]
    }

    /// The point with beam coordinates (x, y, Δ).
    pub fn from_beam(&self, x: f64, y: f64, delta: f64) -> Point3<f64> {
        self.isocenter_mm
            + self.x_axis.into_inner() * x
            + self.y_axis.into_inner() * y
            + self.direction.into_inner() * delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Vector3<f64>, b: [f64; 3]) -> bool {
        (a - Vector3::from(b)).norm() < 1e-12
    }

    #[test]
    fn cardinal_gantry_angles() {
        let f = |g| {
            BeamFrame::new(g, 0.0, [0.0; 3])
                .unwrap()
                .direction()
                .into_inner()
        };
        assert!(
            close(f(0.0), [0.0, 1.0, 0.0]),
            "gantry 0: anterior to posterior"
        );
        assert!(
            close(f(90.0), [-1.0, 0.0, 0.0]),
            "gantry 90: from patient left"
        );
        assert!(
            close(f(180.0), [0.0, -1.0, 0.0]),
            "gantry 180: from posterior"
        );
        assert!(
            close(f(270.0), [1.0, 0.0, 0.0]),
            "gantry 270: from patient right"
        );
    }

    #[test]
    fn couch_rotation_turns_the_patient_under_the_beam() {
        // couch 90 with gantry 90: the beam travels from the feet to the head
        let fr = BeamFrame::new(90.0, 90.0, [0.0; 3]).unwrap();
        assert!(close(fr.direction().into_inner(), [0.0, 0.0, 1.0]));
        // a vertical beam is unchanged by the couch
        let fr = BeamFrame::new(0.0, 37.0, [0.0; 3]).unwrap();
        assert!(close(fr.direction().into_inner(), [0.0, 1.0, 0.0]));
    }

    #[test]
    fn frame_is_orthonormal_and_round_trips() {
        let fr = BeamFrame::new(33.0, -71.0, [5.0, -3.0, 12.0]).unwrap();
        let (x, y, d) = (fr.x_axis(), fr.y_axis(), fr.direction());
        assert!(x.dot(&y).abs() < 1e-12 && x.dot(&d).abs() < 1e-12 && y.dot(&d).abs() < 1e-12);
        // right-handed with Z_g = −direction
        assert!((x.cross(&y) + d.into_inner()).norm() < 1e-12);
        let p = Point3::new(10.0, 20.0, -30.0);
        let [bx, by, bd] = fr.to_beam(&p);
        assert!((fr.from_beam(bx, by, bd) - p).norm() < 1e-12);
        assert!(BeamFrame::new(f64::NAN, 0.0, [0.0; 3]).is_err());
    }
}
