//! Physics data and models shared by the proton engine.
//!
//! - [`table`]: reading the `#`-commented CSV data files
//! - [`pstar`]: NIST PSTAR stopping powers and CSDA ranges of water
//! - [`hlut`]: HU → relative stopping power curves
//! - [`bortfeld`]: Bortfeld's analytical Bragg curve (generic machine IDDs)
//! - [`mcs`]: multiple Coulomb scattering (Highland, differential form)

pub mod bethe;
pub mod bortfeld;
pub mod hlut;
pub mod mcs;
pub mod pstar;
pub mod scattering;
pub mod table;

/// Proton rest energy m_p c², MeV (CODATA 2018).
pub const PROTON_MASS_MEV: f64 = 938.272_088_16;

/// Gy·mm² deposited by one proton per MeV·cm²/g of mass stopping power:
/// 1 MeV = 1.602176634e-13 J, 1 g = 1e-3 kg, 1 cm² = 100 mm².
pub const GY_MM2_PER_MEV_CM2_PER_G: f64 = 1.602_176_634e-13 * 1e3 * 100.0;
