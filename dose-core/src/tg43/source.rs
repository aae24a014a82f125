//! Seed models: the TG-43 consensus data of one source design, and the
//! catalogue of the models shipped with isodose.
//!
//! # Seed-file format (`isodose-tg43-seed/1`)
//!
//! A JSON object; TG-43 tables stay in cm, as published (they are converted to
//! mm once, here, at load time):
//!
//! ```json
//! {
//!   "format": "isodose-tg43-seed/1",
//!   "key": "Amersham6711",                       // identifier used by plans and the API
//!   "name": "Amersham/Oncura/GE OncoSeed 6711 (I-125)",
//!   "isotope": "I-125",
//!   "half_life_days": 59.40,
//!   "dose_rate_constant_cgy_per_h_per_u": 0.965, // Λ
//!   "active_length_cm": 0.30,                    // L of the line-source G_L
//!   "radial_dose_function": {
//!     "r_cm": [0.1, ...],                        // strictly ascending, > 0
//!     "g_l":  [1.055, ...],                      // line-source g_L(r), > 0, = 1 at 1 cm
//!     "g_p":  [0.696, ...]                       // optional point-source g_P(r)
//!   },
//!   "anisotropy_function": {                     // F(r, θ)
//!     "r_cm": [0.5, 1, ...],
//!     "theta_deg": [0, 5, ..., 90],              // from 0, to 90 (mirrored) or 180
//!     "f": [[F(r0,θ0), F(r0,θ1), ...], ...]      // one row per r
//!   },
//!   "anisotropy_factor": {                       // optional φ_an(r), for the 1D formalism
//!     "r_cm": [...], "phi_an": [...]
//!   },
//!   "source": { ... }                            // free-form provenance, kept verbatim
//! }
//! ```
//!
//! Load a clinic's own consensus data with [`SeedModel::from_json_file`].
//! Every table is validated (ascending, finite, positive where it must be);
//! a malformed file is an error naming the file and the problem.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::interp::{Table1, Table2};
use crate::error::{DoseError, Result, read_text};

/// The format tag every seed file must carry.
pub const SEED_FORMAT: &str = "isodose-tg43-seed/1";

const MM_PER_CM: f64 = 10.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RadialFile {
    r_cm: Vec<f64>,
    g_l: Vec<f64>,
    #[serde(default)]
    g_p: Option<Vec<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnisotropyFile {
    r_cm: Vec<f64>,
    theta_deg: Vec<f64>,
    f: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FactorFile {
    r_cm: Vec<f64>,
    phi_an: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    format: String,
    key: String,
    name: String,
    isotope: String,
    half_life_days: f64,
    dose_rate_constant_cgy_per_h_per_u: f64,
    active_length_cm: f64,
    radial_dose_function: RadialFile,
    anisotropy_function: AnisotropyFile,
    #[serde(default)]
    anisotropy_factor: Option<FactorFile>,
    #[serde(default)]
    source: serde_json::Value,
}

/// The TG-43 dosimetry data of one seed design, in isodose's internal units
/// (distances in mm).
#[derive(Clone, Debug, PartialEq)]
pub struct SeedModel {
    key: String,
    name: String,
    isotope: String,
    half_life_days: f64,
    dose_rate_constant: f64,
    active_length_mm: f64,
    g_line: Table1,
    g_point: Option<Table1>,
    anisotropy: Table2,
    anisotropy_factor: Option<Table1>,
    provenance: String,
}

impl SeedModel {
    /// Parses and validates a seed file's JSON text. `origin` names the text in
    /// errors (a path, or "built-in").
    pub fn from_json_str(json: &str, origin: &str) -> Result<Self> {
        let file: SeedFile = serde_json::from_str(json).map_err(|e| DoseError::SeedData {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        let bad = |reason: String| DoseError::SeedData {
            origin: origin.to_owned(),
            reason,
        };
        if file.format != SEED_FORMAT {
            return Err(bad(format!(
                "format is {:?}; expected {SEED_FORMAT:?}",
                file.format
            )));
        }
        if file.key.trim().is_empty() {
            return Err(bad("key is empty".into()));
        }
        let positive = |what: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(bad(format!("{what} is {v}; it must be finite and > 0")))
            }
        };
        let half_life_days = positive("half_life_days", file.half_life_days)?;
        let lambda = positive(
            "dose_rate_constant_cgy_per_h_per_u",
            file.dose_rate_constant_cgy_per_h_per_u,
        )?;
        let length_cm = file.active_length_cm;
        if !length_cm.is_finite() || length_cm < 0.0 {
            return Err(bad(format!(
                "active_length_cm is {length_cm}; it must be finite and >= 0"
            )));
        }
        let table = |what: &str| format!("{origin}: {what}");
        let positive_r = |t: Table1, what: &str| -> Result<Table1> {
            match t.xs().first() {
                Some(r) if *r > 0.0 => Ok(t),
                r => Err(DoseError::InvalidTable {
                    table: table(what),
                    reason: format!("distances must be > 0, first is {r:?}"),
                }),
            }
        };
        let rd = file.radial_dose_function;
        let g_line = positive_r(
            Table1::new(&table("g_l"), rd.r_cm.clone(), rd.g_l, true)?,
            "g_l",
        )?
        .scale_x(MM_PER_CM);
        let g_point = rd
            .g_p
            .map(|g| Table1::new(&table("g_p"), rd.r_cm.clone(), g, true))
            .transpose()?
            .map(|t| t.scale_x(MM_PER_CM));
        let an = file.anisotropy_function;
        let anisotropy = Table2::new(&table("anisotropy_function"), an.r_cm, an.theta_deg, an.f)?
            .scale_r(MM_PER_CM);
        if anisotropy.rs()[0] <= 0.0 {
            return Err(bad("anisotropy_function distances must be > 0".into()));
        }
        // TG-43 normalisations: g(r0) = 1 and F(r0, 90°) = 1 at r0 = 1 cm
        let g0 = g_line.log_linear(10.0);
        let f0 = anisotropy.bilinear(10.0, 90.0);
        for (what, v) in [("g_l(1 cm)", g0), ("F(1 cm, 90 deg)", f0)] {
            if (v - 1.0).abs() > 1e-3 {
                return Err(bad(format!(
                    "{what} = {v}; TG-43 normalises it to 1 at the reference point"
                )));
            }
        }
        let anisotropy_factor = file
            .anisotropy_factor
            .map(|a| Table1::new(&table("anisotropy_factor"), a.r_cm, a.phi_an, true))
            .transpose()?
            .map(|t| t.scale_x(MM_PER_CM));
        Ok(Self {
            key: file.key,
            name: file.name,
            isotope: file.isotope,
            half_life_days,
            dose_rate_constant: lambda,
            active_length_mm: length_cm * MM_PER_CM,
            g_line,
            g_point,
            anisotropy,
            anisotropy_factor,
            provenance: file.source.to_string(),
        })
    }

    /// Reads a seed file (format above).
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_json_str(&read_text(path)?, &path.display().to_string())
    }

    /// Catalogue key, e.g. `"Amersham6711"`.
    pub fn key(&self) -> &str {
        &self.key
    }
    /// Human-readable name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Radionuclide, e.g. `"I-125"`.
    pub fn isotope(&self) -> &str {
        &self.isotope
    }
    /// Half-life T½ in days.
    pub fn half_life_days(&self) -> f64 {
        self.half_life_days
    }
    /// Mean life τ = T½ / ln 2, in hours.
    pub fn mean_life_h(&self) -> f64 {
        self.half_life_days * 24.0 / std::f64::consts::LN_2
    }
    /// Dose-rate constant Λ in cGy h⁻¹ U⁻¹.
    pub fn dose_rate_constant(&self) -> f64 {
        self.dose_rate_constant
    }
    /// Active length L in mm.
    pub fn active_length_mm(&self) -> f64 {
        self.active_length_mm
    }
    /// Line-source radial dose function g_L (r in mm).
    pub fn g_line(&self) -> &Table1 {
        &self.g_line
    }
    /// Point-source radial dose function g_P, if tabulated (r in mm).
    pub fn g_point(&self) -> Option<&Table1> {
        self.g_point.as_ref()
    }
    /// 2D anisotropy function F(r, θ) (r in mm).
    pub fn anisotropy(&self) -> &Table2 {
        &self.anisotropy
    }
    /// 1D anisotropy function φ_an(r), if tabulated (r in mm).
    pub fn anisotropy_factor(&self) -> Option<&Table1> {
        self.anisotropy_factor.as_ref()
    }
    /// The file's `source` block, as JSON text.
    pub fn provenance(&self) -> &str {
        &self.provenance
    }

    /// Distance below which the dose rate is not evaluated at the point itself
    /// but at this distance in the same direction: L/2 + 0.5 mm, at least 1 mm.
    ///
    /// Closer points lie inside or against the seed capsule (a 6711 capsule is
    /// 4.5 mm long), where TG-43 is undefined and G_L diverges on the source
    /// segment; clamping keeps the dose finite there.
    pub fn min_distance_mm(&self) -> f64 {
        (0.5 * self.active_length_mm + 0.5).max(1.0)
    }
}

const BUILTIN: &[(&str, &str)] = &[
    (
        "Amersham6702",
        include_str!("../../data/tg43/Amersham6702.json"),
    ),
    (
        "Amersham6711",
        include_str!("../../data/tg43/Amersham6711.json"),
    ),
    (
        "Amersham6733",
        include_str!("../../data/tg43/Amersham6733.json"),
    ),
    (
        "Amersham9011",
        include_str!("../../data/tg43/Amersham9011.json"),
    ),
    (
        "BebigI25S06",
        include_str!("../../data/tg43/BebigI25S06.json"),
    ),
    ("Best2301", include_str!("../../data/tg43/Best2301.json")),
    (
        "DraximageLS1",
        include_str!("../../data/tg43/DraximageLS1.json"),
    ),
    ("IBt1251L", include_str!("../../data/tg43/IBt1251L.json")),
    (
        "ImagynIS12501",
        include_str!("../../data/tg43/ImagynIS12501.json"),
    ),
    (
        "ImplantSciences3500",
        include_str!("../../data/tg43/ImplantSciences3500.json"),
    ),
    (
        "IsoAidIAI125A",
        include_str!("../../data/tg43/IsoAidIAI125A.json"),
    ),
    (
        "IsoAidIAI125A_pygrpm",
        include_str!("../../data/tg43/IsoAidIAI125A_pygrpm.json"),
    ),
    (
        "MBISL125SH125",
        include_str!("../../data/tg43/MBISL125SH125.json"),
    ),
    (
        "NASIMED3631",
        include_str!("../../data/tg43/NASIMED3631.json"),
    ),
    (
        "Nucletron130002",
        include_str!("../../data/tg43/Nucletron130002.json"),
    ),
    (
        "SelectSeed130002_pygrpm",
        include_str!("../../data/tg43/SelectSeed130002_pygrpm.json"),
    ),
    (
        "SourceTechSTM1251",
        include_str!("../../data/tg43/SourceTechSTM1251.json"),
    ),
    (
        "TheragenicsAgX100",
        include_str!("../../data/tg43/TheragenicsAgX100.json"),
    ),
];

/// A set of seed models by key: the built-in consensus data, plus any a user
/// loads.
#[derive(Clone, Debug, Default)]
pub struct SeedCatalogue {
    models: BTreeMap<String, SeedModel>,
}

impl SeedCatalogue {
    /// The models shipped in `dose-core/data/tg43/` (see the README there for
    /// sources and confidence). Shipped files are validated by the test suite;
    /// a file that failed to parse would be left out here, never half-loaded.
    pub fn builtin() -> Self {
        let models = BUILTIN
            .iter()
            .filter_map(|(key, json)| {
                SeedModel::from_json_str(json, &format!("built-in {key}.json"))
                    .ok()
                    .map(|m| (m.key().to_owned(), m))
            })
            .collect();
        Self { models }
    }

    /// Checks every built-in file and returns the first error; used by tests
    /// and `isodose info` to prove the shipped data are intact.
    pub fn validate_builtin() -> Result<usize> {
        for (key, json) in BUILTIN {
            let m = SeedModel::from_json_str(json, &format!("built-in {key}.json"))?;
            if m.key() != *key {
                return Err(DoseError::SeedData {
                    origin: format!("built-in {key}.json"),
                    reason: format!("file key {:?} differs from its file name", m.key()),
                });
            }
        }
        Ok(BUILTIN.len())
    }

    /// Adds (or replaces) a model under its key.
    pub fn insert(&mut self, model: SeedModel) {
        self.models.insert(model.key().to_owned(), model);
    }

    /// The model with `key`, or an error listing the known keys.
    pub fn get(&self, key: &str) -> Result<&SeedModel> {
        self.models
            .get(key)
            .ok_or_else(|| DoseError::UnknownSeedModel {
                key: key.to_owned(),
                known: self.keys().collect::<Vec<_>>().join(", "),
            })
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// The models, sorted by key.
    pub fn models(&self) -> impl Iterator<Item = &SeedModel> {
        self.models.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_file_is_valid() {
        assert_eq!(SeedCatalogue::validate_builtin().unwrap(), BUILTIN.len());
        assert_eq!(SeedCatalogue::builtin().keys().count(), BUILTIN.len());
    }

    #[test]
    fn units_are_converted_once() {
        let cat = SeedCatalogue::builtin();
        let m = cat.get("Amersham6711").unwrap();
        assert_eq!(m.active_length_mm(), 3.0);
        assert_eq!(m.g_line().xs()[5], 10.0);
        assert_eq!(m.g_line().ys()[5], 1.0);
        assert_eq!(m.dose_rate_constant(), 0.965);
        assert_eq!(m.half_life_days(), 59.4);
        assert!(m.anisotropy_factor().is_some());
        assert!(cat.get("Best2301").unwrap().anisotropy_factor().is_none());
    }

    #[test]
    fn unknown_model_lists_the_known_ones() {
        let err = SeedCatalogue::builtin().get("Model9999").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("Model9999") && msg.contains("Amersham6711"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_files_are_clear_errors() {
        let good = include_str!("../../data/tg43/Amersham6711.json");
        let cases = [
            ("{", "EOF"),
            (&good.replace("isodose-tg43-seed/1", "v0") as &str, "format"),
            (
                &good.replace("\"half_life_days\": 59.4", "\"half_life_days\": -1"),
                "half_life_days",
            ),
            (
                &good.replace(
                    "\"dose_rate_constant_cgy_per_h_per_u\": 0.965",
                    "\"dose_rate_constant_cgy_per_h_per_u\": 0",
                ),
                "dose_rate_constant",
            ),
            (
                &good.replace("[0.1, 0.15, 0.25", "[0.15, 0.1, 0.25"),
                "ascending",
            ),
            (&good.replace("1.055, 1.078", "-1.055, 1.078"), "> 0"),
            (&good.replace("\"g_l\"", "\"gL\""), "g_l"),
            (
                &good.replace("[0.333, 0.4, 0.519,", "[0.333, 0.519,"),
                "values for",
            ),
            (
                &good.replace("1.042, 1.0, 0.908", "1.042, 1.1, 0.908"),
                "normalises",
            ),
        ];
        for (text, needle) in cases {
            let err = SeedModel::from_json_str(text, "test.json").unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("test.json"), "{msg}");
            assert!(msg.contains(needle), "expected {needle:?} in {msg}");
        }
        let err = SeedModel::from_json_file("/nonexistent/seed.json").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/seed.json"));
    }
}
