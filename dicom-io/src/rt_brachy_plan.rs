//! Brachytherapy RT Plan: the sources, application setups, channels and
//! control points of an RT Plan (DICOM PS3.3 A.20 RT Plan IOD; C.8.8.15 RT
//! Brachy Application Setups module, C.8.8.9 RT General Plan, C.8.8.13 RT
//! Fraction Scheme), read in the plan's own units, converted to an isodose
//! [`Implant`], and written from one.
//!
//! **Units.** Positions are DICOM patient coordinates (LPS, mm; the plan's
//! RTPlanGeometry must be `PATIENT`). ReferenceAirKermaRate (300A,022A) is in
//! µGy h⁻¹ at 1 m, so it equals the air-kerma strength S_K in U
//! (1 U = 1 µGy m² h⁻¹) numerically. SourceIsotopeHalfLife is in days,
//! ChannelTotalTime in seconds, TotalReferenceAirKerma in µGy at 1 m.
//!
//! **Where the seeds are.** isodose models loaded seeds, not a stepping
//! source. Within a channel, consecutive control points at the same
//! ControlPoint3DPosition (within 1 µm) form a *dwell position*; each dwell
//! position holds one seed of the channel's referenced source. For a
//! temporary plan a dwell position whose CumulativeTimeWeight does not increase
//! is a pass-through and holds no seed; for a `PERMANENT` plan weights are
//! ignored. A channel without any repeated position holds one seed: at its
//! single control point, or, with two control points, at their midpoint with
//! its axis along them (the seed drawn along its axis). Longer channels
//! without a dwell position are an error. Every control point of a channel
//! must carry ControlPoint3DPosition: isodose does not reconstruct positions
//! from ControlPointRelativePosition, which needs the applicator's geometry.
//!
//! **Seed axis.** From ControlPointOrientation (300A,0412) of the dwell
//! position's first control point when given; otherwise from the channel path,
//! the direction between the distinct control-point positions next to the seed
//! (previous to next; at an end of the path, the seed to its neighbour). A
//! channel with one distinct position has no path: the axis is then unknown
//! ([`BrachySeed::direction`] is `None`) and [`BrachyPlan::to_implant`] uses
//! the patient z axis (superior), the TG-43 convention for seeds along
//! needles.
//!
//! **Timing.** BrachyTreatmentTechnique `PERMANENT` gives a permanent implant
//! (full decay). Anything else is temporary: every seed irradiates for its
//! channel's ChannelTotalTime, which must be the same for all channels that
//! hold seeds (an [`Implant`] has one duration). The time from the S_K
//! reference to the start of irradiation is RTPlanDate/RTPlanTime minus the
//! SourceStrengthReferenceDate/Time of the first seed's source (0 when either
//! is absent); sources referenced at other times have their S_K decayed to
//! that reference, S_K · exp(−ln2 · Δt / T½), T½ of the seed model.
//!
//! **Isotope.** Only I-125 (T½ = 59.4 d) is supported: a source whose
//! SourceIsotopeName is another nuclide, or whose half-life is not within
//! 1 day of 59.4 d (the older value 60.14 d passes), is an error when
//! converting, as are stepping-source (HDR/PDR) plans.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use dicom_core::value::{DataSetSequence, PrimitiveValue, deserialize};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use isodose_core::tg43::{Implant, Seed, SeedCatalogue, SeedModel, Technique};

use crate::attrs::{Attrs, open, tag_name};
use crate::error::DicomIoError;
use crate::rtdose::new_uid;

type Result<T> = std::result::Result<T, DicomIoError>;

/// SOP class UID of RT Plan Storage (photon and brachytherapy plans).
pub const RT_PLAN_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.5";

/// Control points closer than this (mm, per coordinate) are at the same
/// position.
const SAME_POSITION_MM: f64 = 1e-3;

/// Half-life of I-125 in days (TG-43U1, Rivard et al., Med Phys 31:633 (2004)).
const I125_HALF_LIFE_DAYS: f64 = 59.4;

/// Allowed deviation of a plan's I-125 half-life from 59.4 d, in days.
const HALF_LIFE_TOLERANCE_DAYS: f64 = 1.0;

/// Implants further than this many half-lives from the S_K reference time are
/// refused (as [`Implant::new`] does).
const MAX_HALF_LIVES_FROM_REFERENCE: f64 = 20.0;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A calendar date and time as DICOM writes it (DA + TM), to the
/// microsecond, with the object's offset from UTC when it states one
/// (TimezoneOffsetFromUTC, 0008,0201).
///
/// Used for SourceStrengthReferenceDate/Time and RTPlanDate/Time; differences
/// are in days ([`PlanDateTime::days_since`]). DA and TM are parsed by
/// dicom-rs (`dicom_core::value::deserialize`), the calendar (leap years,
/// leap seconds, offsets) is chrono's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlanDateTime {
    /// The date and time as written (local time of the object).
    local: NaiveDateTime,
    /// The object's offset from UTC, if it gives one.
    offset: Option<FixedOffset>,
}

impl PlanDateTime {
    /// The date `year`-`month`-`day` at `hour`:`minute`:`second` (seconds
    /// may have a fraction, rounded to the microsecond), without an offset
    /// from UTC. `None` for an invalid calendar date or time of day (second
    /// 60 is allowed, for leap seconds, as DICOM TM allows).
    pub fn new(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: f64,
    ) -> Option<Self> {
        if !(0.0..61.0).contains(&second) {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(year, month, day)?;
        let micros = (second * 1e6).round() as i64;
        let local = if second < 60.0 {
            // rounding to the microsecond may carry into the next minute
            date.and_time(NaiveTime::from_hms_opt(hour, minute, 0)?)
                .checked_add_signed(Duration::microseconds(micros))?
        } else {
            // second 60, a leap second: its fraction must stay below 1 s
            let fraction = u32::try_from(micros - 60_000_000)
                .ok()
                .filter(|f| *f < 1_000_000)?;
            date.and_time(leap_aware_time(hour, minute, 60, fraction)?)
        };
        Some(Self {
            local,
            offset: None,
        })
    }

    /// Parses a DICOM date (DA, `YYYYMMDD`, or the old `YYYY.MM.DD`) and an
    /// optional time (TM, `HH`, `HHMM`, `HHMMSS` or `HHMMSS.F` to
    /// `HHMMSS.FFFFFF`; the old `HH:MM:SS` too), without an offset from UTC.
    /// No time means midnight, a partial time its earliest instant. `None` if
    /// either is malformed, incomplete (a DA needs year, month and day) or
    /// not a calendar date or time.
    pub fn parse(date: &str, time: Option<&str>) -> Option<Self> {
        let date: String = date.trim().chars().filter(|c| *c != '.').collect();
        let (date, rest) = deserialize::parse_date_partial(date.as_bytes()).ok()?;
        if !rest.is_empty() {
            return None;
        }
        let date = date.to_naive_date().ok()?;
        let time = match time.map(str::trim).filter(|t| !t.is_empty()) {
            None => NaiveTime::MIN,
            Some(t) => {
                let t: String = t.chars().filter(|c| *c != ':').collect();
                let (tm, rest) = deserialize::parse_time_partial(t.as_bytes()).ok()?;
                // a fraction needs HHMMSS before it and at most 6 digits
                if !rest.is_empty() || (t.contains('.') && tm.second().is_none()) {
                    return None;
                }
                let micros = tm.fraction_micro().unwrap_or(0);
                leap_aware_time(
                    u32::from(*tm.hour()),
                    u32::from(tm.minute().copied().unwrap_or(0)),
                    u32::from(tm.second().copied().unwrap_or(0)),
                    micros,
                )?
            }
        };
        Some(Self {
            local: date.and_time(time),
            offset: None,
        })
    }

    /// This date and time in an object whose TimezoneOffsetFromUTC
    /// (0008,0201) is `offset` (`&ZZXX`: `+0100`, `-0500`...). `None` if
    /// the offset is malformed or beyond DICOM's −12:00 to +14:00.
    pub fn with_utc_offset(self, offset: &str) -> Option<Self> {
        // exactly &ZZXX: dicom-rs's DT parser reads the offset after a date
        // but ignores what follows the four digits and does not check the
        // minutes
        let o = offset.trim().as_bytes();
        if o.len() != 5
            || !matches!(o[0], b'+' | b'-')
            || !o[1..].iter().all(u8::is_ascii_digit)
            || o[3] > b'5'
        {
            return None;
        }
        let dt = deserialize::parse_datetime_partial(format!("2000{}", offset.trim()).as_bytes())
            .ok()?;
        let offset = *dt.time_zone()?;
        Some(Self {
            offset: Some(offset),
            ..self
        })
    }

    /// The offset from UTC this time was given with, if any.
    pub fn utc_offset(&self) -> Option<FixedOffset> {
        self.offset
    }

    /// The current time of the system clock (UTC), to the second, without
    /// an offset (as DICOM writes a time without TimezoneOffsetFromUTC).
    pub fn now() -> Self {
        let now = chrono::Utc::now().naive_utc();
        Self {
            local: now.with_nanosecond(0).unwrap_or(now),
            offset: None,
        }
    }

    /// Days from `earlier` to `self` (negative if `earlier` is later): the
    /// difference of the UTC instants when both have an offset from UTC,
    /// else of the local times as written (the same frame, as within one
    /// object).
    pub fn days_since(&self, earlier: &PlanDateTime) -> f64 {
        // microseconds since 1970 (i64 covers ±292,000 years), UTC when
        // both have an offset
        let micros = |t: &PlanDateTime, utc: bool| -> f64 {
            let local = t.local.and_utc().timestamp_micros() as f64;
            match (utc, t.offset) {
                (true, Some(o)) => local - f64::from(o.local_minus_utc()) * 1e6,
                _ => local,
            }
        };
        let utc = self.offset.is_some() && earlier.offset.is_some();
        (micros(self, utc) - micros(earlier, utc)) / MICROS_PER_DAY as f64
    }

    /// This time moved by `days` (rounded to the microsecond), with the same
    /// offset from UTC.
    pub fn plus_days(&self, days: f64) -> Self {
        let step = Duration::microseconds((days * MICROS_PER_DAY as f64).round() as i64);
        Self {
            local: self
                .local
                .checked_add_signed(step)
                .unwrap_or(if days < 0.0 {
                    NaiveDateTime::MIN
                } else {
                    NaiveDateTime::MAX
                }),
            offset: self.offset,
        }
    }

    /// The date as DICOM DA, `YYYYMMDD`.
    pub fn dicom_date(&self) -> String {
        self.local.format("%Y%m%d").to_string()
    }

    /// The time of day as DICOM TM, `HHMMSS.FFFFFF` (second 60 for a leap
    /// second).
    pub fn dicom_time(&self) -> String {
        self.local.format("%H%M%S%.6f").to_string()
    }

    /// The offset from UTC as DICOM writes TimezoneOffsetFromUTC (`+0100`),
    /// if this time has one.
    pub fn dicom_utc_offset(&self) -> Option<String> {
        self.offset.map(|o| {
            let minutes = o.local_minus_utc() / 60;
            let sign = if minutes < 0 { '-' } else { '+' };
            format!("{sign}{:02}{:02}", minutes.abs() / 60, minutes.abs() % 60)
        })
    }
}

/// A time of day, second 60 (a leap second, which DICOM TM allows) as
/// chrono represents it: second 59 with the fraction past 1 s.
fn leap_aware_time(hour: u32, minute: u32, second: u32, micros: u32) -> Option<NaiveTime> {
    match second {
        60 => NaiveTime::from_hms_micro_opt(hour, minute, 59, 1_000_000 + micros),
        _ => NaiveTime::from_hms_micro_opt(hour, minute, second, micros),
    }
}

/// One item of the SourceSequence (300A,0210): a source design and its
/// strength at a reference time.
#[derive(Clone, Debug, PartialEq)]
pub struct BrachySource {
    /// SourceNumber (300A,0212).
    pub number: i64,
    /// SourceType (300A,0214): POINT, LINE, CYLINDER or SPHERE.
    pub source_type: String,
    /// SourceIsotopeName (300A,0226), e.g. "I-125" (empty if absent).
    pub isotope_name: String,
    /// SourceIsotopeHalfLife (300A,0228), days.
    pub half_life_days: Option<f64>,
    /// ReferenceAirKermaRate (300A,022A), µGy h⁻¹ at 1 m, which is the
    /// air-kerma strength S_K in U (µGy m² h⁻¹) at the reference time.
    pub air_kerma_strength_u: f64,
    /// SourceStrengthReferenceDate/Time (300A,022C)/(300A,022E): when S_K
    /// holds.
    pub reference_time: Option<PlanDateTime>,
    /// SourceManufacturer (300A,0216).
    pub manufacturer: Option<String>,
    /// SourceModelID (300A,021B).
    pub model_id: Option<String>,
    /// SourceDescription (300A,021C).
    pub description: Option<String>,
    /// ActiveSourceLength (300A,021A), mm.
    pub active_length_mm: Option<f64>,
}

impl BrachySource {
    /// The source's model name: SourceModelID, else SourceDescription.
    pub fn model_name(&self) -> Option<&str> {
        self.model_id.as_deref().or(self.description.as_deref())
    }
}

/// One item of a BrachyControlPointSequence (300A,02D0).
#[derive(Clone, Debug, PartialEq)]
pub struct BrachyControlPoint {
    /// ControlPointIndex (300A,0112).
    pub index: i64,
    /// ControlPointRelativePosition (300A,02D2), mm along the channel.
    pub relative_position_mm: Option<f64>,
    /// ControlPoint3DPosition (300A,02D4), LPS mm.
    pub position_mm: Option<[f64; 3]>,
    /// CumulativeTimeWeight (300A,02D6), in the units of the channel's
    /// FinalCumulativeTimeWeight.
    pub cumulative_time_weight: Option<f64>,
    /// ControlPointOrientation (300A,0412): the source axis, a vector in LPS.
    pub orientation: Option<[f64; 3]>,
}

/// One item of a ChannelSequence (300A,0280): a catheter, needle or seed
/// position and its timing.
#[derive(Clone, Debug, PartialEq)]
pub struct BrachyChannel {
    /// ChannelNumber (300A,0282).
    pub number: i64,
    /// ReferencedSourceNumber (300C,000E): the source loaded in the channel.
    pub referenced_source_number: i64,
    /// ChannelTotalTime (300A,0286), seconds.
    pub total_time_s: Option<f64>,
    /// SourceMovementType (300A,0288): FIXED, STEPWISE, OSCILLATING,
    /// UNIDIRECTIONAL.
    pub source_movement_type: String,
    /// FinalCumulativeTimeWeight (300A,02C8).
    pub final_cumulative_time_weight: Option<f64>,
    /// The control points, in plan order.
    pub control_points: Vec<BrachyControlPoint>,
}

/// One item of the ApplicationSetupSequence (300A,0230).
#[derive(Clone, Debug, PartialEq)]
pub struct BrachyApplicationSetup {
    /// ApplicationSetupNumber (300A,0234).
    pub number: i64,
    /// ApplicationSetupType (300A,0232).
    pub setup_type: String,
    /// ApplicationSetupName (300A,0236).
    pub name: String,
    /// TotalReferenceAirKerma (300A,0250), µGy at 1 m.
    pub total_reference_air_kerma: Option<f64>,
    /// The channels, in plan order.
    pub channels: Vec<BrachyChannel>,
}

/// A seed found in a channel (see the module docs for the rules).
#[derive(Clone, Debug, PartialEq)]
pub struct BrachySeed {
    /// ApplicationSetupNumber of the setup holding the channel.
    pub setup_number: i64,
    /// ChannelNumber of the channel holding the seed.
    pub channel_number: i64,
    /// SourceNumber of the seed's source.
    pub source_number: i64,
    /// Seed centre, LPS mm.
    pub position_mm: [f64; 3],
    /// Unit axis vector (LPS), from ControlPointOrientation or the channel
    /// path; `None` when the plan does not tell (the patient z axis is then
    /// used).
    pub direction: Option<[f64; 3]>,
}

/// A brachytherapy RT Plan, as read, in the plan's units.
#[derive(Clone, Debug, PartialEq)]
pub struct BrachyPlan {
    /// The file it was read from (named in conversion errors).
    pub path: PathBuf,
    /// SOPInstanceUID.
    pub sop_instance_uid: Option<String>,
    /// RTPlanLabel (300A,0002).
    pub label: String,
    /// RTPlanDate/RTPlanTime (300A,0006)/(300A,0007).
    pub plan_time: Option<PlanDateTime>,
    /// FrameOfReferenceUID.
    pub frame_of_reference_uid: Option<String>,
    /// ReferencedSOPInstanceUID of the first ReferencedStructureSetSequence item.
    pub referenced_structure_set_uid: Option<String>,
    /// BrachyTreatmentTechnique (300A,0200): INTRACAVITARY, INTERSTITIAL,
    /// CONTACT, INTRALUMENARY, INTRAVASCULAR or PERMANENT.
    pub technique: String,
    /// BrachyTreatmentType (300A,0202): MANUAL, HDR, MDR, LDR or PDR.
    pub treatment_type: String,
    /// NumberOfFractionsPlanned of the first fraction group (1 if absent).
    pub fractions: u32,
    /// The sources, in plan order.
    pub sources: Vec<BrachySource>,
    /// The application setups, in plan order.
    pub setups: Vec<BrachyApplicationSetup>,
    /// The seeds of all channels, in plan order.
    pub seeds: Vec<BrachySeed>,
}

/// Letters and digits of `s`, lower case, with parenthesised parts (such as
/// "(I-125)") removed.
fn normalise(s: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 && c.is_alphanumeric() => out.extend(c.to_lowercase()),
            _ => {}
        }
    }
    out
}

/// Whether an isotope name denotes I-125 ("I-125", "I125", "125I",
/// "Iodine-125"...).
fn is_iodine_125(name: &str) -> bool {
    matches!(
        normalise(name).as_str(),
        "i125" | "125i" | "iodine125" | "125iodine"
    )
}

/// Catalogue models matching a plan's model name: the name holds exactly one
/// catalogue key as a word; else equal keys or names (ignoring case and
/// punctuation), or one containing the other (at least 3 characters).
/// Several matches are narrowed to the primary copies (keys without `_`).
fn match_models<'c>(catalogue: &'c SeedCatalogue, name: &str) -> Vec<&'c SeedModel> {
    // a catalogue key written out as a word ("Amersham6711", or
    // "SelectSeed130002_pygrpm: Nucletron selectSeed 130.002" as isodose
    // writes SourceDescription)
    let mut by_key: Vec<&SeedModel> = Vec::new();
    for word in name.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        if let Some(m) = catalogue
            .models()
            .find(|m| !word.is_empty() && m.key().eq_ignore_ascii_case(word))
            && !by_key.iter().any(|k| k.key() == m.key())
        {
            by_key.push(m);
        }
    }
    if by_key.len() == 1 {
        return by_key;
    }
    let n = normalise(name);
    if n.len() < 3 {
        return Vec::new();
    }
    let exact: Vec<_> = catalogue
        .models()
        .filter(|m| normalise(m.key()) == n || normalise(m.name()) == n)
        .collect();
    let mut found = if exact.is_empty() {
        catalogue
            .models()
            .filter(|m| {
                let (k, full) = (normalise(m.key()), normalise(m.name()));
                k.contains(&n) || full.contains(&n) || n.contains(&k)
            })
            .collect()
    } else {
        exact
    };
    if found.len() > 1 {
        let primary: Vec<_> = found
            .iter()
            .copied()
            .filter(|m| !m.key().contains('_'))
            .collect();
        if !primary.is_empty() {
            found = primary;
        }
    }
    found
}

impl BrachyPlan {
    fn attrs(&self) -> Attrs<'_> {
        Attrs { path: &self.path }
    }

    fn inconsistent(&self, reason: String) -> DicomIoError {
        DicomIoError::Inconsistent {
            path: self.path.clone(),
            reason,
        }
    }

    /// Whether the implant is permanent (BrachyTreatmentTechnique PERMANENT).
    pub fn is_permanent(&self) -> bool {
        self.technique.eq_ignore_ascii_case("PERMANENT")
    }

    /// The source with SourceNumber `number`.
    pub fn source(&self, number: i64) -> Option<&BrachySource> {
        self.sources.iter().find(|s| s.number == number)
    }

    /// The source of the first seed, whose reference time is the implant's.
    fn reference_source(&self) -> Result<&BrachySource> {
        let seed = self.seeds.first().ok_or_else(|| {
            self.inconsistent(
                "no seeds: no channel of (300A,0230) ApplicationSetupSequence has a dwell position"
                    .into(),
            )
        })?;
        self.seed_source(seed)
    }

    fn seed_source(&self, seed: &BrachySeed) -> Result<&BrachySource> {
        self.source(seed.source_number).ok_or_else(|| {
            self.attrs().bad(
                tags::REFERENCED_SOURCE_NUMBER,
                seed.source_number.to_string(),
                format!(
                    "channel {} of application setup {} references no source of (300A,0210) SourceSequence",
                    seed.channel_number, seed.setup_number
                ),
            )
        })
    }

    /// Days from the S_K reference time of the first seed's source to the
    /// start of irradiation, taken as RTPlanDate/Time; `None` when the plan or
    /// the source lacks its date.
    pub fn days_from_reference(&self) -> Option<f64> {
        let reference = self.reference_source().ok()?.reference_time?;
        Some(self.plan_time?.days_since(&reference))
    }

    /// Irradiation time of a temporary implant, hours: the ChannelTotalTime
    /// (s) / 3600 shared by every channel that holds a seed. `None` for a
    /// permanent implant. An error if a channel lacks the time or the times
    /// differ.
    pub fn duration_h(&self) -> Result<Option<f64>> {
        if self.is_permanent() {
            return Ok(None);
        }
        let used: BTreeSet<(i64, i64)> = self
            .seeds
            .iter()
            .map(|s| (s.setup_number, s.channel_number))
            .collect();
        let mut times: Vec<(i64, f64)> = Vec::new();
        for setup in &self.setups {
            for ch in &setup.channels {
                if !used.contains(&(setup.number, ch.number)) {
                    continue;
                }
                let t = ch.total_time_s.ok_or_else(|| {
                    self.inconsistent(format!(
                        "channel {} of application setup {} has no {}: a temporary ({}) implant needs it",
                        ch.number,
                        setup.number,
                        tag_name(tags::CHANNEL_TOTAL_TIME),
                        self.technique
                    ))
                })?;
                if t <= 0.0 {
                    return Err(self.attrs().bad(
                        tags::CHANNEL_TOTAL_TIME,
                        t.to_string(),
                        format!(
                            "channel {}: a temporary implant needs a time > 0 s",
                            ch.number
                        ),
                    ));
                }
                times.push((ch.number, t));
            }
        }
        let Some(&(_, first)) = times.first() else {
            return Err(self
                .reference_source()
                .err()
                .unwrap_or_else(|| self.inconsistent("no channel holds a seed".into())));
        };
        if times
            .iter()
            .any(|(_, t)| (t - first).abs() > 1e-9 * first.max(1.0))
        {
            let listed: Vec<String> = times
                .iter()
                .map(|(n, t)| format!("channel {n}: {t} s"))
                .collect();
            return Err(self.attrs().bad(
                tags::CHANNEL_TOTAL_TIME,
                listed.join(", "),
                "the channels holding seeds have different times; an isodose implant has one irradiation time",
            ));
        }
        Ok(Some(first / 3600.0))
    }

    /// Checks that a source is I-125 (see the module docs).
    fn check_isotope(&self, s: &BrachySource) -> Result<()> {
        let a = self.attrs();
        if !s.isotope_name.is_empty() && !is_iodine_125(&s.isotope_name) {
            return Err(a.bad(
                tags::SOURCE_ISOTOPE_NAME,
                s.isotope_name.clone(),
                format!(
                    "source {}: isotope not supported; isodose computes TG-43 dose for I-125 seeds only",
                    s.number
                ),
            ));
        }
        match s.half_life_days {
            Some(t) if (t - I125_HALF_LIFE_DAYS).abs() > HALF_LIFE_TOLERANCE_DAYS => Err(a.bad(
                tags::SOURCE_ISOTOPE_HALF_LIFE,
                t.to_string(),
                format!(
                    "source {}: not the half-life of I-125 ({I125_HALF_LIFE_DAYS} d); isodose supports I-125 seeds only",
                    s.number
                ),
            )),
            None if s.isotope_name.is_empty() => Err(a.missing(tags::SOURCE_ISOTOPE_NAME)),
            _ => Ok(()),
        }
    }

    /// The distinct sources holding seeds, in seed order.
    fn seed_sources(&self) -> Result<Vec<&BrachySource>> {
        let mut out: Vec<&BrachySource> = Vec::new();
        for seed in &self.seeds {
            let s = self.seed_source(seed)?;
            if !out.iter().any(|o| o.number == s.number) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The catalogue model of the plan's seeds, chosen by the sources' model
    /// names (SourceModelID, then SourceDescription, then SourceManufacturer +
    /// SourceModelID). A name matches a model when it holds the model's key as
    /// a word (as isodose writes), equals its key or name ignoring case and
    /// punctuation, or one contains the other
    /// (e.g. "6711" or "OncoSeed 6711" → `Amersham6711`); of several matches
    /// the primary copy (a key without `_`) is taken. An error naming
    /// (300A,021B) SourceModelID and listing the catalogue keys when nothing
    /// or more than one model matches, or when sources of different models
    /// hold seeds.
    pub fn seed_model<'c>(&self, catalogue: &'c SeedCatalogue) -> Result<&'c SeedModel> {
        let a = self.attrs();
        let known = catalogue.keys().collect::<Vec<_>>().join(", ");
        let mut chosen: Option<(&BrachySource, &'c SeedModel)> = None;
        for s in self.seed_sources()? {
            let mut names: Vec<String> = [s.model_id.as_deref(), s.description.as_deref()]
                .into_iter()
                .flatten()
                .map(str::to_owned)
                .collect();
            if let (Some(maker), Some(id)) = (&s.manufacturer, &s.model_id) {
                names.push(format!("{maker} {id}"));
            }
            if names.is_empty() {
                return Err(a.bad(
                    tags::SOURCE_MODEL_ID,
                    "",
                    format!(
                        "source {} has neither SourceModelID nor SourceDescription; choose a seed model of the catalogue: {known}",
                        s.number
                    ),
                ));
            }
            let mut ambiguous: Vec<&str> = Vec::new();
            let mut model = None;
            for name in &names {
                let found = match_models(catalogue, name);
                match found.as_slice() {
                    [m] => {
                        model = Some(*m);
                        break;
                    }
                    [] => {}
                    many => {
                        if ambiguous.is_empty() {
                            ambiguous = many.iter().map(|m| m.key()).collect();
                        }
                    }
                }
            }
            let model = match model {
                Some(m) => m,
                None if !ambiguous.is_empty() => {
                    return Err(a.bad(
                        tags::SOURCE_MODEL_ID,
                        names.join(" / "),
                        format!(
                            "source {}: several seed models match ({}); choose one of the catalogue: {known}",
                            s.number,
                            ambiguous.join(", ")
                        ),
                    ));
                }
                None => {
                    return Err(a.bad(
                        tags::SOURCE_MODEL_ID,
                        names.join(" / "),
                        format!(
                            "source {}: no seed model of the catalogue matches; known models: {known}",
                            s.number
                        ),
                    ));
                }
            };
            match chosen {
                Some((first, m)) if m.key() != model.key() => {
                    return Err(self.inconsistent(format!(
                        "sources {} and {} are different seed models ({} and {}); an isodose implant holds one model",
                        first.number,
                        s.number,
                        m.key(),
                        model.key()
                    )));
                }
                Some(_) => {}
                None => chosen = Some((s, model)),
            }
        }
        chosen
            .map(|(_, m)| m)
            .ok_or_else(|| self.inconsistent("no seeds: no source to choose a model for".into()))
    }

    /// The isodose implant of this plan, with `model` for every seed and the
    /// time from the S_K reference to irradiation from the plan's dates
    /// ([`BrachyPlan::days_from_reference`], 0 if unknown). See
    /// [`BrachyPlan::to_implant_at`].
    pub fn to_implant(&self, model: &SeedModel) -> Result<Implant> {
        let days = self.days_from_reference().unwrap_or(0.0);
        let limit = MAX_HALF_LIVES_FROM_REFERENCE * model.half_life_days();
        if days.abs() > limit {
            let reference = self
                .reference_source()?
                .reference_time
                .map(|t| t.dicom_date())
                .unwrap_or_default();
            return Err(self.attrs().bad(
                tags::RT_PLAN_DATE,
                self.plan_time.map(|t| t.dicom_date()).unwrap_or_default(),
                format!(
                    "{days:.1} days from the source strength reference date {reference}: more than {MAX_HALF_LIVES_FROM_REFERENCE} half-lives; check the dates"
                ),
            ));
        }
        self.to_implant_at(model, days)
    }

    /// The isodose implant of this plan, `days_from_reference` days after the
    /// S_K reference time of the first seed's source: one [`Seed`] per
    /// [`BrachySeed`] (axis `None` → patient z), S_K from its source's
    /// ReferenceAirKermaRate (decayed to the first seed source's reference
    /// time when its own differs), permanent or temporary as in
    /// [`BrachyPlan::duration_h`]. Errors: no seeds, a source that is not
    /// I-125, a stepping-source (HDR/PDR) plan, inconsistent channel times.
    pub fn to_implant_at(&self, model: &SeedModel, days_from_reference: f64) -> Result<Implant> {
        let kind = self.treatment_type.to_ascii_uppercase();
        if kind == "HDR" || kind == "PDR" {
            return Err(self.attrs().bad(
                tags::BRACHY_TREATMENT_TYPE,
                self.treatment_type.clone(),
                "stepping-source (HDR/PDR) plans are not supported; isodose models I-125 seed implants",
            ));
        }
        let reference = self.reference_source()?.reference_time;
        for s in self.seed_sources()? {
            self.check_isotope(s)?;
        }
        let technique = match self.duration_h()? {
            None => Technique::Permanent,
            Some(duration_h) => Technique::Temporary { duration_h },
        };
        let lambda_per_day = std::f64::consts::LN_2 / model.half_life_days();
        let seeds = self
            .seeds
            .iter()
            .map(|s| {
                let source = self.seed_source(s)?;
                let decay = match (reference, source.reference_time) {
                    (Some(r), Some(own)) => (-lambda_per_day * r.days_since(&own)).exp(),
                    _ => 1.0,
                };
                Ok(Seed::new(
                    s.position_mm,
                    s.direction,
                    source.air_kerma_strength_u * decay,
                )?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Implant::new(
            model.clone(),
            seeds,
            technique,
            days_from_reference,
        )?)
    }
}

/// An optional integer attribute.
fn opt_i64(a: &Attrs<'_>, obj: &InMemDicomObject, tag: Tag) -> Result<Option<i64>> {
    match a.text(obj, tag) {
        Some(_) => a.i64(obj, tag).map(Some),
        None => Ok(None),
    }
}

/// An optional attribute of exactly three numbers.
fn opt_vec3(a: &Attrs<'_>, obj: &InMemDicomObject, tag: Tag) -> Result<Option<[f64; 3]>> {
    match a.floats(obj, tag)? {
        None => Ok(None),
        Some(v) => match v.as_slice() {
            [x, y, z] => Ok(Some([*x, *y, *z])),
            _ => Err(a.bad(tag, format!("{v:?}"), "needs 3 values")),
        },
    }
}

/// An optional DA + TM pair, in an object whose TimezoneOffsetFromUTC is
/// `utc_offset` (already checked).
fn opt_time(
    a: &Attrs<'_>,
    obj: &InMemDicomObject,
    date_tag: Tag,
    time_tag: Tag,
    utc_offset: Option<&str>,
) -> Result<Option<PlanDateTime>> {
    let Some(date) = a.text(obj, date_tag) else {
        return Ok(None);
    };
    let time = a.text(obj, time_tag);
    if PlanDateTime::parse(&date, None).is_none() {
        return Err(a.bad(date_tag, date, "not a DICOM date (YYYYMMDD)"));
    }
    PlanDateTime::parse(&date, time.as_deref())
        .map(|t| Some(utc_offset.and_then(|o| t.with_utc_offset(o)).unwrap_or(t)))
        .ok_or_else(|| {
            a.bad(
                time_tag,
                time.unwrap_or_default(),
                "not a DICOM time (HHMMSS.FFFFFF)",
            )
        })
}

fn unit(v: [f64; 3]) -> Option<[f64; 3]> {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    (n > 1e-9 && n.is_finite()).then(|| [v[0] / n, v[1] / n, v[2] / n])
}

fn sub(p: [f64; 3], q: [f64; 3]) -> [f64; 3] {
    [p[0] - q[0], p[1] - q[1], p[2] - q[2]]
}

/// The seeds of one channel (rules in the module docs).
fn channel_seeds(
    path: &Path,
    permanent: bool,
    setup_number: i64,
    ch: &BrachyChannel,
) -> Result<Vec<BrachySeed>> {
    let mut pos = Vec::with_capacity(ch.control_points.len());
    for (i, cp) in ch.control_points.iter().enumerate() {
        pos.push(cp.position_mm.ok_or_else(|| DicomIoError::Inconsistent {
            path: path.to_owned(),
            reason: format!(
                "channel {} of application setup {setup_number}: control point {i} has no {}; isodose needs the 3D positions of the seeds",
                ch.number,
                tag_name(tags::CONTROL_POINT3_D_POSITION)
            ),
        })?);
    }
    let same = |p: [f64; 3], q: [f64; 3]| (0..3).all(|k| (p[k] - q[k]).abs() <= SAME_POSITION_MM);
    // runs of consecutive control points at one position: (first, last) index
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for (i, p) in pos.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if same(pos[g.0], *p) => g.1 = i,
            _ => groups.push((i, i)),
        }
    }
    let seed = |position_mm: [f64; 3], direction: Option<[f64; 3]>| BrachySeed {
        setup_number,
        channel_number: ch.number,
        source_number: ch.referenced_source_number,
        position_mm,
        direction,
    };
    let orientation = |i: usize| ch.control_points[i].orientation.and_then(unit);
    if groups.iter().all(|g| g.0 == g.1) {
        return match pos.as_slice() {
            [] => Ok(Vec::new()),
            [p] => Ok(vec![seed(*p, orientation(0))]),
            [p, q] => Ok(vec![seed(
                [
                    0.5 * (p[0] + q[0]),
                    0.5 * (p[1] + q[1]),
                    0.5 * (p[2] + q[2]),
                ],
                orientation(0).or_else(|| unit(sub(*q, *p))),
            )]),
            _ => Err(DicomIoError::Inconsistent {
                path: path.to_owned(),
                reason: format!(
                    "channel {} of application setup {setup_number}: {} control points at distinct positions and no dwell position (two control points at one {}); cannot place seeds",
                    ch.number,
                    pos.len(),
                    tag_name(tags::CONTROL_POINT3_D_POSITION)
                ),
            }),
        };
    }
    let mut seeds = Vec::new();
    for (k, &(first, last)) in groups.iter().enumerate() {
        if first == last {
            continue;
        }
        let weights = (
            ch.control_points[first].cumulative_time_weight,
            ch.control_points[last].cumulative_time_weight,
        );
        let dwells = permanent
            || match weights {
                (Some(w0), Some(w1)) => w1 > w0,
                _ => true,
            };
        if !dwells {
            continue;
        }
        let here = pos[first];
        let previous = k.checked_sub(1).map(|j| pos[groups[j].0]);
        let next = groups.get(k + 1).map(|g| pos[g.0]);
        let along = match (previous, next) {
            (Some(p), Some(q)) => Some(sub(q, p)),
            (None, Some(q)) => Some(sub(q, here)),
            (Some(p), None) => Some(sub(here, p)),
            (None, None) => None,
        };
        seeds.push(seed(
            here,
            orientation(first).or_else(|| along.and_then(unit)),
        ));
    }
    Ok(seeds)
}

/// Reads a brachytherapy RT Plan (RT Plan Storage with an RT Brachy
/// Application Setups module): sources, setups, channels, control points and
/// the seeds they hold (rules in the module docs). Errors name the file and
/// the tag: wrong SOP class or Modality, a plan without SourceSequence (an
/// external-beam plan says so), RTPlanGeometry other than PATIENT, a channel
/// referencing an unknown source, malformed numbers, dates or control points.
pub fn read_brachy_plan(path: impl AsRef<Path>) -> Result<BrachyPlan> {
    let path = path.as_ref();
    let file = open(path)?;
    let a = Attrs { path };
    let obj: &InMemDicomObject = &file;
    a.require_sop(obj, RT_PLAN_STORAGE, "RT Plan Storage")?;
    if let Some(modality) = a.text(obj, tags::MODALITY)
        && modality != "RTPLAN"
    {
        return Err(a.bad(tags::MODALITY, modality, "an RT Plan has Modality RTPLAN"));
    }
    if let Some(geometry) = a.text(obj, tags::RT_PLAN_GEOMETRY)
        && geometry != "PATIENT"
    {
        return Err(a.bad(
            tags::RT_PLAN_GEOMETRY,
            geometry,
            "only PATIENT geometry (positions in patient coordinates) is supported",
        ));
    }
    let source_items = a.items(obj, tags::SOURCE_SEQUENCE);
    if source_items.is_empty() {
        if !a.items(obj, tags::BEAM_SEQUENCE).is_empty() {
            return Err(DicomIoError::Inconsistent {
                path: path.to_owned(),
                reason: format!(
                    "an external-beam RT Plan ({} present), not a brachytherapy plan: no {}",
                    tag_name(tags::BEAM_SEQUENCE),
                    tag_name(tags::SOURCE_SEQUENCE)
                ),
            });
        }
        return Err(a.missing(tags::SOURCE_SEQUENCE));
    }
    // TimezoneOffsetFromUTC applies to every DA/TM of the object
    let utc_offset = a.text(obj, tags::TIMEZONE_OFFSET_FROM_UTC);
    if let Some(o) = &utc_offset
        && PlanDateTime::new(2000, 1, 1, 0, 0, 0.0)
            .and_then(|t| t.with_utc_offset(o))
            .is_none()
    {
        return Err(a.bad(
            tags::TIMEZONE_OFFSET_FROM_UTC,
            o.clone(),
            "not a DICOM offset from UTC (&ZZXX, from -1200 to +1400)",
        ));
    }
    let mut sources: Vec<BrachySource> = Vec::new();
    for item in source_items {
        let number = a.i64(item, tags::SOURCE_NUMBER)?;
        if sources.iter().any(|s| s.number == number) {
            return Err(a.bad(
                tags::SOURCE_NUMBER,
                number.to_string(),
                "two sources have this number",
            ));
        }
        if let Some(units) = a.text(item, tags::SOURCE_STRENGTH_UNITS)
            && units != "AIR_KERMA_RATE"
        {
            return Err(a.bad(
                tags::SOURCE_STRENGTH_UNITS,
                units,
                format!(
                    "source {number}: only AIR_KERMA_RATE sources (photon emitters) are supported"
                ),
            ));
        }
        let air_kerma_strength_u = a
            .float(item, tags::REFERENCE_AIR_KERMA_RATE)?
            .ok_or_else(|| a.missing(tags::REFERENCE_AIR_KERMA_RATE))?;
        if air_kerma_strength_u < 0.0 {
            return Err(a.bad(
                tags::REFERENCE_AIR_KERMA_RATE,
                air_kerma_strength_u.to_string(),
                "must be >= 0",
            ));
        }
        let half_life_days = a.float(item, tags::SOURCE_ISOTOPE_HALF_LIFE)?;
        if let Some(t) = half_life_days
            && t <= 0.0
        {
            return Err(a.bad(tags::SOURCE_ISOTOPE_HALF_LIFE, t.to_string(), "must be > 0"));
        }
        sources.push(BrachySource {
            number,
            source_type: a.text(item, tags::SOURCE_TYPE).unwrap_or_default(),
            isotope_name: a.text(item, tags::SOURCE_ISOTOPE_NAME).unwrap_or_default(),
            half_life_days,
            air_kerma_strength_u,
            reference_time: opt_time(
                &a,
                item,
                tags::SOURCE_STRENGTH_REFERENCE_DATE,
                tags::SOURCE_STRENGTH_REFERENCE_TIME,
                utc_offset.as_deref(),
            )?,
            manufacturer: a.text(item, tags::SOURCE_MANUFACTURER),
            model_id: a.text(item, tags::SOURCE_MODEL_ID),
            description: a.text(item, tags::SOURCE_DESCRIPTION),
            active_length_mm: a.float(item, tags::ACTIVE_SOURCE_LENGTH)?,
        });
    }
    let technique = a
        .text(obj, tags::BRACHY_TREATMENT_TECHNIQUE)
        .ok_or_else(|| a.missing(tags::BRACHY_TREATMENT_TECHNIQUE))?;
    let permanent = technique.eq_ignore_ascii_case("PERMANENT");
    let setup_items = a.items(obj, tags::APPLICATION_SETUP_SEQUENCE);
    if setup_items.is_empty() {
        return Err(a.missing(tags::APPLICATION_SETUP_SEQUENCE));
    }
    let mut setups = Vec::new();
    let mut seeds = Vec::new();
    for (si, item) in setup_items.iter().enumerate() {
        let setup_number =
            opt_i64(&a, item, tags::APPLICATION_SETUP_NUMBER)?.unwrap_or(si as i64 + 1);
        let channel_items = a.items(item, tags::CHANNEL_SEQUENCE);
        if channel_items.is_empty() {
            return Err(a.missing(tags::CHANNEL_SEQUENCE));
        }
        let mut channels = Vec::new();
        for (ci, ch) in channel_items.iter().enumerate() {
            let number = opt_i64(&a, ch, tags::CHANNEL_NUMBER)?.unwrap_or(ci as i64 + 1);
            let referenced_source_number = a.i64(ch, tags::REFERENCED_SOURCE_NUMBER)?;
            if !sources.iter().any(|s| s.number == referenced_source_number) {
                let known: Vec<String> = sources.iter().map(|s| s.number.to_string()).collect();
                return Err(a.bad(
                    tags::REFERENCED_SOURCE_NUMBER,
                    referenced_source_number.to_string(),
                    format!(
                        "channel {number} of application setup {setup_number} references no source of {} (source numbers: {})",
                        tag_name(tags::SOURCE_SEQUENCE),
                        known.join(", ")
                    ),
                ));
            }
            let total_time_s = a.float(ch, tags::CHANNEL_TOTAL_TIME)?;
            if let Some(t) = total_time_s
                && t < 0.0
            {
                return Err(a.bad(tags::CHANNEL_TOTAL_TIME, t.to_string(), "must be >= 0 s"));
            }
            let cp_items = a.items(ch, tags::BRACHY_CONTROL_POINT_SEQUENCE);
            if cp_items.is_empty() {
                return Err(a.missing(tags::BRACHY_CONTROL_POINT_SEQUENCE));
            }
            if let Some(n) = opt_i64(&a, ch, tags::NUMBER_OF_CONTROL_POINTS)?
                && n != cp_items.len() as i64
            {
                return Err(a.bad(
                    tags::NUMBER_OF_CONTROL_POINTS,
                    n.to_string(),
                    format!(
                        "channel {number}: {} holds {} items",
                        tag_name(tags::BRACHY_CONTROL_POINT_SEQUENCE),
                        cp_items.len()
                    ),
                ));
            }
            let mut control_points = Vec::new();
            let mut last_weight: Option<f64> = None;
            for (i, cp) in cp_items.iter().enumerate() {
                let weight = a.float(cp, tags::CUMULATIVE_TIME_WEIGHT)?;
                if let (Some(w0), Some(w1)) = (last_weight, weight)
                    && w1 < w0
                {
                    return Err(a.bad(
                        tags::CUMULATIVE_TIME_WEIGHT,
                        w1.to_string(),
                        format!(
                            "channel {number}, control point {i}: cumulative weights must not decrease (previous {w0})"
                        ),
                    ));
                }
                last_weight = weight.or(last_weight);
                control_points.push(BrachyControlPoint {
                    index: opt_i64(&a, cp, tags::CONTROL_POINT_INDEX)?.unwrap_or(i as i64),
                    relative_position_mm: a.float(cp, tags::CONTROL_POINT_RELATIVE_POSITION)?,
                    position_mm: opt_vec3(&a, cp, tags::CONTROL_POINT3_D_POSITION)?,
                    cumulative_time_weight: weight,
                    orientation: opt_vec3(&a, cp, tags::CONTROL_POINT_ORIENTATION)?,
                });
            }
            let channel = BrachyChannel {
                number,
                referenced_source_number,
                total_time_s,
                source_movement_type: a.text(ch, tags::SOURCE_MOVEMENT_TYPE).unwrap_or_default(),
                final_cumulative_time_weight: a.float(ch, tags::FINAL_CUMULATIVE_TIME_WEIGHT)?,
                control_points,
            };
            seeds.extend(channel_seeds(path, permanent, setup_number, &channel)?);
            channels.push(channel);
        }
        setups.push(BrachyApplicationSetup {
            number: setup_number,
            setup_type: a
                .text(item, tags::APPLICATION_SETUP_TYPE)
                .unwrap_or_default(),
            name: a
                .text(item, tags::APPLICATION_SETUP_NAME)
                .unwrap_or_default(),
            total_reference_air_kerma: a.float(item, tags::TOTAL_REFERENCE_AIR_KERMA)?,
            channels,
        });
    }
    let mut fractions = 1.0;
    if let Some(fg) = a.items(obj, tags::FRACTION_GROUP_SEQUENCE).first() {
        fractions = a
            .float(fg, tags::NUMBER_OF_FRACTIONS_PLANNED)?
            .unwrap_or(1.0);
        if fractions < 1.0 {
            return Err(a.bad(
                tags::NUMBER_OF_FRACTIONS_PLANNED,
                fractions.to_string(),
                "must be >= 1",
            ));
        }
        for r in a.items(fg, tags::REFERENCED_BRACHY_APPLICATION_SETUP_SEQUENCE) {
            let n = a.i64(r, tags::REFERENCED_BRACHY_APPLICATION_SETUP_NUMBER)?;
            if !setups.iter().any(|s| s.number == n) {
                return Err(a.bad(
                    tags::REFERENCED_BRACHY_APPLICATION_SETUP_NUMBER,
                    n.to_string(),
                    format!(
                        "no such setup in {}",
                        tag_name(tags::APPLICATION_SETUP_SEQUENCE)
                    ),
                ));
            }
        }
    }
    let referenced_structure_set_uid = a
        .items(obj, tags::REFERENCED_STRUCTURE_SET_SEQUENCE)
        .first()
        .and_then(|i| a.text(i, tags::REFERENCED_SOP_INSTANCE_UID));
    Ok(BrachyPlan {
        path: path.to_owned(),
        sop_instance_uid: a.text(obj, tags::SOP_INSTANCE_UID),
        label: a.text(obj, tags::RT_PLAN_LABEL).unwrap_or_default(),
        plan_time: opt_time(
            &a,
            obj,
            tags::RT_PLAN_DATE,
            tags::RT_PLAN_TIME,
            utc_offset.as_deref(),
        )?,
        frame_of_reference_uid: a.text(obj, tags::FRAME_OF_REFERENCE_UID),
        referenced_structure_set_uid,
        technique,
        treatment_type: a.text(obj, tags::BRACHY_TREATMENT_TYPE).unwrap_or_default(),
        fractions: fractions as u32,
        sources,
        setups,
        seeds,
    })
}

/// Identifiers and settings of a brachytherapy RT Plan to write.
#[derive(Clone, Debug, Default)]
pub struct BrachyPlanContext {
    /// PatientID.
    pub patient_id: String,
    /// PatientName.
    pub patient_name: String,
    /// StudyInstanceUID (a new one if `None`).
    pub study_instance_uid: Option<String>,
    /// FrameOfReferenceUID (a new one if `None`).
    pub frame_of_reference_uid: Option<String>,
    /// SOP instance UID of the RT Structure Set the plan refers to. PS3.3
    /// requires it for PATIENT geometry; it is left out if `None`.
    pub referenced_structure_set_uid: Option<String>,
    /// RTPlanLabel ("isodose seeds" if empty; cut to the 16 characters of
    /// SH).
    pub label: String,
    /// SourceStrengthReferenceDate/Time: when the seeds' S_K holds (the
    /// current time, to the second, if `None`). RTPlanDate/Time is written as
    /// this plus the implant's days from reference.
    pub source_reference: Option<PlanDateTime>,
    /// ApplicationSetupType, a defined term ("PERINEAL", the transperineal
    /// approach of prostate seed implants, if empty).
    pub application_setup_type: String,
    /// TreatmentMachineName ("isodose" if empty; cut to 16 characters).
    pub machine_name: String,
}

/// A DS value of at most 16 characters, as precise as fits.
fn ds(x: f64) -> String {
    let s = format!("{x}");
    if s.len() <= 16 {
        return s;
    }
    for decimals in (0..=15).rev() {
        let s = format!("{x:.decimals$}");
        if s.len() <= 16 {
            return s;
        }
    }
    for digits in (0..=10).rev() {
        let s = format!("{x:.digits$E}");
        if s.len() <= 16 {
            return s;
        }
    }
    "0".into()
}

fn text(tag: Tag, vr: VR, value: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

fn empty(tag: Tag, vr: VR) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::Empty)
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// Writes `implant` as a brachytherapy RT Plan (RT Plan Storage, Modality
/// RTPLAN, RTPlanGeometry PATIENT, explicit VR little endian with file meta);
/// returns its SOP instance UID.
///
/// Layout (PS3.3 C.8.8.15): BrachyTreatmentTechnique PERMANENT (or
/// INTERSTITIAL for a temporary implant), BrachyTreatmentType LDR; one
/// SourceSequence item per distinct S_K (ReferenceAirKermaRate = S_K in U,
/// SourceModelID = the model's catalogue key (left out when longer than the
/// 16 characters of SH), SourceDescription = "key: name" (64 characters at
/// most),
/// SourceIsotopeName and SourceIsotopeHalfLife from the model, SourceType
/// LINE with ActiveSourceLength = the model's L, reference date/time from
/// `context`); one application setup with one channel per seed
/// (SourceMovementType FIXED, two control points at the seed centre with
/// CumulativeTimeWeight 0 and 1 and ControlPointOrientation = the seed axis).
/// ChannelTotalTime is the temporary duration (s), or for a permanent implant
/// the mean life τ = T½/ln2 (s), the time at the initial rate that gives the
/// total dose. TotalReferenceAirKerma = Σ S_K × ChannelTotalTime (h), µGy at
/// 1 m. RTPlanDate/Time = the S_K reference + the implant's days from
/// reference, so that [`read_brachy_plan`] and [`BrachyPlan::to_implant`]
/// give back the implant.
pub fn write_brachy_plan(
    path: impl AsRef<Path>,
    implant: &Implant,
    context: &BrachyPlanContext,
) -> Result<String> {
    let path: PathBuf = path.as_ref().to_owned();
    let model = implant.model();
    let reference = context.source_reference.unwrap_or_else(PlanDateTime::now);
    let plan_time = reference.plus_days(implant.days_from_reference());
    let (technique, channel_time_s) = match implant.technique() {
        Technique::Permanent => ("PERMANENT", model.mean_life_h() * 3600.0),
        Technique::Temporary { duration_h } => ("INTERSTITIAL", duration_h * 3600.0),
    };
    let sop_uid = new_uid();
    // a context value, or its default, cut to `max` characters (the VR's)
    let or = |s: &str, default: &str, max: usize| {
        let s = if s.is_empty() { default } else { s };
        s.chars().take(max).collect::<String>()
    };

    // one source per distinct strength, in seed order
    let mut strengths: Vec<f64> = Vec::new();
    for seed in implant.seeds() {
        let sk = seed.air_kerma_strength_u();
        if !strengths.contains(&sk) {
            strengths.push(sk);
        }
    }
    // SourceModelID is SH (16 characters): longer keys travel in the
    // description only, never cut (a cut key could name another model)
    let model_id = (model.key().chars().count() <= 16).then(|| model.key());
    let description: String = format!("{}: {}", model.key(), model.name())
        .chars()
        .take(64)
        .collect();
    let sources: Vec<InMemDicomObject> = strengths
        .iter()
        .enumerate()
        .map(|(i, sk)| {
            let mut source = InMemDicomObject::from_element_iter([
                text(tags::SOURCE_NUMBER, VR::IS, &(i + 1).to_string()),
                text(tags::SOURCE_TYPE, VR::CS, "LINE"),
                text(
                    tags::ACTIVE_SOURCE_LENGTH,
                    VR::DS,
                    &ds(model.active_length_mm()),
                ),
                text(tags::SOURCE_DESCRIPTION, VR::LO, &description),
                text(tags::SOURCE_ISOTOPE_NAME, VR::LO, model.isotope()),
                text(
                    tags::SOURCE_ISOTOPE_HALF_LIFE,
                    VR::DS,
                    &ds(model.half_life_days()),
                ),
                text(tags::SOURCE_STRENGTH_UNITS, VR::CS, "AIR_KERMA_RATE"),
                text(tags::REFERENCE_AIR_KERMA_RATE, VR::DS, &ds(*sk)),
                text(
                    tags::SOURCE_STRENGTH_REFERENCE_DATE,
                    VR::DA,
                    &reference.dicom_date(),
                ),
                text(
                    tags::SOURCE_STRENGTH_REFERENCE_TIME,
                    VR::TM,
                    &reference.dicom_time(),
                ),
            ]);
            if let Some(id) = model_id {
                source.put(text(tags::SOURCE_MODEL_ID, VR::SH, id));
            }
            source
        })
        .collect();

    let mut channels = Vec::new();
    let mut total_reference_air_kerma = 0.0;
    for (i, seed) in implant.seeds().iter().enumerate() {
        let sk = seed.air_kerma_strength_u();
        let source_number = strengths.iter().position(|s| *s == sk).unwrap_or(0) + 1;
        total_reference_air_kerma += sk * channel_time_s / 3600.0;
        let p = seed.position_mm();
        let d = seed.direction();
        let control_point = |index: usize, weight: &str| {
            InMemDicomObject::from_element_iter([
                text(tags::CONTROL_POINT_INDEX, VR::IS, &index.to_string()),
                text(tags::CONTROL_POINT_RELATIVE_POSITION, VR::DS, "0"),
                DataElement::new(
                    tags::CONTROL_POINT3_D_POSITION,
                    VR::DS,
                    PrimitiveValue::Strs([ds(p.x), ds(p.y), ds(p.z)].into_iter().collect()),
                ),
                text(tags::CUMULATIVE_TIME_WEIGHT, VR::DS, weight),
                DataElement::new(
                    tags::CONTROL_POINT_ORIENTATION,
                    VR::FL,
                    PrimitiveValue::F32([d.x as f32, d.y as f32, d.z as f32].into_iter().collect()),
                ),
            ])
        };
        channels.push(InMemDicomObject::from_element_iter([
            text(tags::CHANNEL_NUMBER, VR::IS, &(i + 1).to_string()),
            empty(tags::CHANNEL_LENGTH, VR::IS),
            text(tags::CHANNEL_TOTAL_TIME, VR::DS, &ds(channel_time_s)),
            text(tags::SOURCE_MOVEMENT_TYPE, VR::CS, "FIXED"),
            empty(tags::TRANSFER_TUBE_NUMBER, VR::IS),
            text(
                tags::REFERENCED_SOURCE_NUMBER,
                VR::IS,
                &source_number.to_string(),
            ),
            text(tags::NUMBER_OF_CONTROL_POINTS, VR::IS, "2"),
            text(tags::FINAL_CUMULATIVE_TIME_WEIGHT, VR::DS, "1"),
            seq(
                tags::BRACHY_CONTROL_POINT_SEQUENCE,
                vec![control_point(0, "0"), control_point(1, "1")],
            ),
        ]));
    }
    let setup = InMemDicomObject::from_element_iter([
        text(
            tags::APPLICATION_SETUP_TYPE,
            VR::CS,
            &or(&context.application_setup_type, "PERINEAL", 16),
        ),
        text(tags::APPLICATION_SETUP_NUMBER, VR::IS, "1"),
        text(
            tags::TOTAL_REFERENCE_AIR_KERMA,
            VR::DS,
            &ds(total_reference_air_kerma),
        ),
        seq(tags::CHANNEL_SEQUENCE, channels),
    ]);
    let machine = InMemDicomObject::from_element_iter([
        text(
            tags::TREATMENT_MACHINE_NAME,
            VR::SH,
            &or(&context.machine_name, "isodose", 16),
        ),
        empty(tags::MANUFACTURER, VR::LO),
    ]);
    let fraction_group = InMemDicomObject::from_element_iter([
        text(tags::FRACTION_GROUP_NUMBER, VR::IS, "1"),
        text(tags::NUMBER_OF_FRACTIONS_PLANNED, VR::IS, "1"),
        text(tags::NUMBER_OF_BEAMS, VR::IS, "0"),
        text(tags::NUMBER_OF_BRACHY_APPLICATION_SETUPS, VR::IS, "1"),
        seq(
            tags::REFERENCED_BRACHY_APPLICATION_SETUP_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([text(
                tags::REFERENCED_BRACHY_APPLICATION_SETUP_NUMBER,
                VR::IS,
                "1",
            )])],
        ),
    ]);

    let study = context.study_instance_uid.clone().unwrap_or_else(new_uid);
    let frame = context
        .frame_of_reference_uid
        .clone()
        .unwrap_or_else(new_uid);
    let mut obj = InMemDicomObject::from_element_iter([
        // SOP Common
        text(tags::SOP_CLASS_UID, VR::UI, RT_PLAN_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, &sop_uid),
        // Patient
        text(tags::PATIENT_NAME, VR::PN, &context.patient_name),
        text(tags::PATIENT_ID, VR::LO, &context.patient_id),
        empty(tags::PATIENT_BIRTH_DATE, VR::DA),
        empty(tags::PATIENT_SEX, VR::CS),
        // General Study
        text(tags::STUDY_INSTANCE_UID, VR::UI, &study),
        empty(tags::STUDY_DATE, VR::DA),
        empty(tags::STUDY_TIME, VR::TM),
        empty(tags::REFERRING_PHYSICIAN_NAME, VR::PN),
        empty(tags::STUDY_ID, VR::SH),
        empty(tags::ACCESSION_NUMBER, VR::SH),
        // RT Series
        text(tags::MODALITY, VR::CS, "RTPLAN"),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &new_uid()),
        text(tags::SERIES_NUMBER, VR::IS, "1"),
        empty(tags::OPERATORS_NAME, VR::PN),
        // Frame of Reference
        text(tags::FRAME_OF_REFERENCE_UID, VR::UI, &frame),
        empty(tags::POSITION_REFERENCE_INDICATOR, VR::LO),
        // General Equipment
        text(tags::MANUFACTURER, VR::LO, "isodose"),
        // RT General Plan
        text(
            tags::RT_PLAN_LABEL,
            VR::SH,
            &or(&context.label, "isodose seeds", 16),
        ),
        text(tags::RT_PLAN_DATE, VR::DA, &plan_time.dicom_date()),
        text(tags::RT_PLAN_TIME, VR::TM, &plan_time.dicom_time()),
        text(tags::RT_PLAN_GEOMETRY, VR::CS, "PATIENT"),
        // RT Fraction Scheme
        seq(tags::FRACTION_GROUP_SEQUENCE, vec![fraction_group]),
        // RT Brachy Application Setups
        text(tags::BRACHY_TREATMENT_TECHNIQUE, VR::CS, technique),
        text(tags::BRACHY_TREATMENT_TYPE, VR::CS, "LDR"),
        seq(tags::TREATMENT_MACHINE_SEQUENCE, vec![machine]),
        seq(tags::SOURCE_SEQUENCE, sources),
        seq(tags::APPLICATION_SETUP_SEQUENCE, vec![setup]),
    ]);
    if let Some(rs) = &context.referenced_structure_set_uid {
        obj.put(seq(
            tags::REFERENCED_STRUCTURE_SET_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                text(
                    tags::REFERENCED_SOP_CLASS_UID,
                    VR::UI,
                    uids::RT_STRUCTURE_SET_STORAGE,
                ),
                text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, rs),
            ])],
        ));
    }
    // the reference's offset from UTC, when it has one, holds for every
    // DA/TM of the object
    if let Some(offset) = reference.dicom_utc_offset() {
        obj.put(text(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, &offset));
    }
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| DicomIoError::Inconsistent {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    file.write_to_file(&path)
        .map_err(|e| DicomIoError::Inconsistent {
            path: path.clone(),
            reason: format!("cannot write: {e}"),
        })?;
    Ok(sop_uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_dates_and_leap_years() {
        // 2000-03-01 is day 11017 after 1970-01-01 (30 years with 7 leap days)
        let epoch = PlanDateTime::new(1970, 1, 1, 0, 0, 0.0).unwrap();
        let t = PlanDateTime::new(2000, 3, 1, 0, 0, 0.0).unwrap();
        assert_eq!(t.days_since(&epoch), 11_017.0);
        assert_eq!(epoch.plus_days(11_017.0), t);
        assert_eq!(epoch.plus_days(-1.0).dicom_date(), "19691231");
        assert!(PlanDateTime::new(2023, 2, 29, 0, 0, 0.0).is_none());
        assert!(PlanDateTime::new(2024, 2, 29, 0, 0, 0.0).is_some());
        // rounding to the microsecond carries into the next minute; only an
        // input of 60 s is a leap second
        let carried = PlanDateTime::new(2024, 1, 1, 10, 59, 59.999_999_6).unwrap();
        assert_eq!(
            (carried.dicom_date(), carried.dicom_time()),
            ("20240101".into(), "110000.000000".into())
        );
        assert!(PlanDateTime::new(2024, 1, 1, 23, 59, 60.9999996).is_none());
        // century rules: 1900 is not a leap year, 2000 is
        assert!(PlanDateTime::new(1900, 2, 29, 0, 0, 0.0).is_none());
        assert!(PlanDateTime::parse("20000229", None).is_some());
        assert!(PlanDateTime::parse("19000229", None).is_none());
    }

    #[test]
    fn offsets_from_utc_shift_intervals_between_objects() {
        // the same local time in +0100 and -0500 is 6 h apart in UTC
        let t = PlanDateTime::parse("20240310", Some("120000")).unwrap();
        let paris = t.with_utc_offset("+0100").unwrap();
        let new_york = t.with_utc_offset("-0500").unwrap();
        assert_eq!(paris.days_since(&new_york), -0.25);
        assert_eq!(new_york.days_since(&paris), 0.25);
        assert_eq!(paris.dicom_utc_offset().as_deref(), Some("+0100"));
        assert_eq!(new_york.dicom_utc_offset().as_deref(), Some("-0500"));
        // without an offset on either side, local times as written
        assert_eq!(paris.days_since(&t), 0.0);
        assert_eq!(t.dicom_utc_offset(), None);
        // DICOM's range is -1200 to +1400; anything else is malformed
        assert!(t.with_utc_offset("+1400").is_some());
        for bad in [
            "+1500", "-1300", "0100", "+01", "+01:00", "UTC", "+0100xyz", "+01001", "+0199",
        ] {
            assert!(t.with_utc_offset(bad).is_none(), "{bad}");
        }
        // moving a time keeps its offset
        assert_eq!(paris.plus_days(1.5).utc_offset(), paris.utc_offset());
    }

    #[test]
    fn partial_times_and_leap_seconds() {
        // TM may stop after the hour or the minute, and have 1-6 fraction digits
        let at = |tm: &str| PlanDateTime::parse("20240101", Some(tm)).map(|t| t.dicom_time());
        assert_eq!(at("07").as_deref(), Some("070000.000000"));
        assert_eq!(at("0730").as_deref(), Some("073000.000000"));
        assert_eq!(at("073015.5").as_deref(), Some("073015.500000"));
        assert_eq!(at("073015.123456").as_deref(), Some("073015.123456"));
        for bad in [
            "073015.1234567",
            "0730.5",
            "07.5",
            "073015.",
            "7",
            "0760",
            "2400",
            "07301",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
        // a DA needs the day: partial dates are for DT and queries
        assert!(PlanDateTime::parse("202401", None).is_none());
        assert!(PlanDateTime::parse("2024", None).is_none());
        // second 60, a leap second: the next minute is 1 s later
        let leap = PlanDateTime::parse("20161231", Some("235960")).unwrap();
        assert_eq!(leap.dicom_time(), "235960.000000");
        let before = PlanDateTime::parse("20161231", Some("235959")).unwrap();
        let after = PlanDateTime::parse("20170101", Some("000000")).unwrap();
        // (chrono counts the leap second as 23:59:59 + 1 s and the next
        // midnight as no later: intervals stay within 1 s of the truth)
        let s = |d: f64| d * 86_400.0;
        assert_eq!(s(leap.days_since(&before)), 1.0);
        assert!((0.0..=1.0).contains(&s(after.days_since(&leap))));
        assert_eq!(s(after.days_since(&before)), 1.0);
    }

    #[test]
    fn dicom_date_and_time_round_trip() {
        let t = PlanDateTime::parse("20240229", Some("235959.5")).unwrap();
        assert_eq!(t.dicom_date(), "20240229");
        assert_eq!(t.dicom_time(), "235959.500000");
        let next = t.plus_days(1.0);
        assert_eq!(next.dicom_date(), "20240301");
        assert_eq!(next.days_since(&t), 1.0);
        let old = PlanDateTime::parse("2024.02.29", Some("23:59:59.5")).unwrap();
        assert_eq!(old, t);
        assert_eq!(
            PlanDateTime::parse("20240101", Some("12"))
                .unwrap()
                .dicom_time(),
            "120000.000000"
        );
        for (d, tm) in [
            ("2024013", None),
            ("20241301", None),
            ("20240101", Some("2460")),
        ] {
            assert!(PlanDateTime::parse(d, tm).is_none(), "{d} {tm:?}");
        }
    }

    #[test]
    fn ds_values_fit_16_characters() {
        assert_eq!(ds(0.5), "0.5");
        assert_eq!(ds(-12.25), "-12.25");
        let x = -999.123_456_789_012_3;
        let s = ds(x);
        assert!(
            s.len() <= 16 && (s.parse::<f64>().unwrap() - x).abs() < 1e-10,
            "{s}"
        );
        let s = ds(1.5e300);
        assert!(s.len() <= 16 && s.parse::<f64>().unwrap() == 1.5e300, "{s}");
    }

    #[test]
    fn isotope_names() {
        for n in ["I-125", "I125", "125I", "Iodine-125", "iodine 125"] {
            assert!(is_iodine_125(n), "{n}");
        }
        for n in ["Ir-192", "Pd-103", "Cs-131", "I-131"] {
            assert!(!is_iodine_125(n), "{n}");
        }
    }

    #[test]
    fn model_names_match_the_catalogue() {
        let cat = SeedCatalogue::builtin();
        let key = |name: &str| -> Vec<String> {
            match_models(&cat, name)
                .iter()
                .map(|m| m.key().to_owned())
                .collect()
        };
        assert_eq!(key("Amersham6711"), ["Amersham6711"]);
        assert_eq!(key("6711"), ["Amersham6711"]);
        assert_eq!(key("OncoSeed 6711"), ["Amersham6711"]);
        assert_eq!(key("Best 2301"), ["Best2301"]);
        // two copies of the selectSeed data: the primary one is taken
        assert_eq!(key("130.002"), ["Nucletron130002"]);
        assert_eq!(key("IAI-125A"), ["IsoAidIAI125A"]);
        assert!(key("Unobtainium 9999").is_empty());
        assert!(key("12").is_empty());
        assert!(key("125").len() > 1);
    }
}
