//! Brachytherapy RT Plans: synthetic plans built here with dicom-object (the
//! values each test asserts are the ones written into the file, or follow from
//! them by calendar arithmetic and the I-125 half-life), write -> read round
//! trips of isodose implants, and clear errors for unusable plans.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use isodose_core::tg43::{Implant, Seed, SeedCatalogue, SeedModel, Technique};
use isodose_dicom::{
    BrachyPlanContext, PlanDateTime, read_brachy_plan, rt_brachy_plan::RT_PLAN_STORAGE,
    write_brachy_plan,
};

const I125_HALF_LIFE_DAYS: f64 = 59.4;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("isodose-brachy-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn model() -> SeedModel {
    SeedCatalogue::builtin()
        .get("Amersham6711")
        .unwrap()
        .clone()
}

fn el(tag: Tag, vr: VR, value: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn ds3(p: [f64; 3]) -> PrimitiveValue {
    PrimitiveValue::Strs(p.iter().map(|x| format!("{x}")).collect())
}

/// A SourceSequence item.
struct Src<'a> {
    number: u32,
    isotope: &'a str,
    half_life_days: &'a str,
    sk: &'a str,
    date: &'a str,
    time: &'a str,
    model_id: Option<&'a str>,
    manufacturer: Option<&'a str>,
}

impl Src<'_> {
    fn i125(number: u32, sk: &'static str, date: &'static str) -> Src<'static> {
        Src {
            number,
            isotope: "I-125",
            half_life_days: "59.4",
            sk,
            date,
            time: "000000",
            model_id: Some("6711"),
            manufacturer: Some("Oncura"),
        }
    }

    fn item(&self) -> InMemDicomObject {
        let mut o = InMemDicomObject::from_element_iter([
            el(tags::SOURCE_NUMBER, VR::IS, &self.number.to_string()),
            el(tags::SOURCE_TYPE, VR::CS, "LINE"),
            el(tags::SOURCE_ISOTOPE_NAME, VR::LO, self.isotope),
            el(tags::SOURCE_ISOTOPE_HALF_LIFE, VR::DS, self.half_life_days),
            el(tags::REFERENCE_AIR_KERMA_RATE, VR::DS, self.sk),
            el(tags::SOURCE_STRENGTH_REFERENCE_DATE, VR::DA, self.date),
            el(tags::SOURCE_STRENGTH_REFERENCE_TIME, VR::TM, self.time),
        ]);
        if let Some(m) = self.model_id {
            o.put(el(tags::SOURCE_MODEL_ID, VR::SH, m));
        }
        if let Some(m) = self.manufacturer {
            o.put(el(tags::SOURCE_MANUFACTURER, VR::LO, m));
        }
        o
    }
}

/// A control point: position, cumulative weight, orientation.
type Cp = ([f64; 3], Option<f64>, Option<[f32; 3]>);

fn cp(p: [f64; 3]) -> Cp {
    (p, None, None)
}

fn channel(number: u32, source: u32, time_s: Option<&str>, cps: &[Cp]) -> InMemDicomObject {
    let items = cps
        .iter()
        .enumerate()
        .map(|(i, (p, w, o))| {
            let mut item = InMemDicomObject::from_element_iter([
                el(tags::CONTROL_POINT_INDEX, VR::IS, &i.to_string()),
                el(tags::CONTROL_POINT_RELATIVE_POSITION, VR::DS, "0"),
                DataElement::new(tags::CONTROL_POINT3_D_POSITION, VR::DS, ds3(*p)),
            ]);
            if let Some(w) = w {
                item.put(el(tags::CUMULATIVE_TIME_WEIGHT, VR::DS, &w.to_string()));
            }
            if let Some(o) = o {
                item.put(DataElement::new(
                    tags::CONTROL_POINT_ORIENTATION,
                    VR::FL,
                    PrimitiveValue::F32(o.iter().copied().collect()),
                ));
            }
            item
        })
        .collect();
    let mut ch = InMemDicomObject::from_element_iter([
        el(tags::CHANNEL_NUMBER, VR::IS, &number.to_string()),
        el(tags::SOURCE_MOVEMENT_TYPE, VR::CS, "FIXED"),
        el(tags::REFERENCED_SOURCE_NUMBER, VR::IS, &source.to_string()),
        el(
            tags::NUMBER_OF_CONTROL_POINTS,
            VR::IS,
            &cps.len().to_string(),
        ),
        seq(tags::BRACHY_CONTROL_POINT_SEQUENCE, items),
    ]);
    if let Some(t) = time_s {
        ch.put(el(tags::CHANNEL_TOTAL_TIME, VR::DS, t));
    }
    ch
}

/// An RT Plan with a brachy module: `technique`, `kind`, plan date/time,
/// sources and one application setup holding `channels`.
fn plan(
    technique: &str,
    kind: &str,
    plan_date_time: (&str, &str),
    sources: &[Src<'_>],
    channels: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let setup = InMemDicomObject::from_element_iter([
        el(tags::APPLICATION_SETUP_TYPE, VR::CS, "PERINEAL"),
        el(tags::APPLICATION_SETUP_NUMBER, VR::IS, "1"),
        seq(tags::CHANNEL_SEQUENCE, channels),
    ]);
    let fg = InMemDicomObject::from_element_iter([
        el(tags::FRACTION_GROUP_NUMBER, VR::IS, "1"),
        el(tags::NUMBER_OF_FRACTIONS_PLANNED, VR::IS, "1"),
        el(tags::NUMBER_OF_BRACHY_APPLICATION_SETUPS, VR::IS, "1"),
        seq(
            tags::REFERENCED_BRACHY_APPLICATION_SETUP_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([el(
                tags::REFERENCED_BRACHY_APPLICATION_SETUP_NUMBER,
                VR::IS,
                "1",
            )])],
        ),
    ]);
    InMemDicomObject::from_element_iter([
        el(tags::SOP_CLASS_UID, VR::UI, RT_PLAN_STORAGE),
        el(tags::SOP_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.9.7.1"),
        el(tags::MODALITY, VR::CS, "RTPLAN"),
        el(tags::RT_PLAN_LABEL, VR::SH, "SEEDS"),
        el(tags::RT_PLAN_DATE, VR::DA, plan_date_time.0),
        el(tags::RT_PLAN_TIME, VR::TM, plan_date_time.1),
        el(tags::RT_PLAN_GEOMETRY, VR::CS, "PATIENT"),
        el(tags::BRACHY_TREATMENT_TECHNIQUE, VR::CS, technique),
        el(tags::BRACHY_TREATMENT_TYPE, VR::CS, kind),
        seq(tags::FRACTION_GROUP_SEQUENCE, vec![fg]),
        seq(
            tags::SOURCE_SEQUENCE,
            sources.iter().map(Src::item).collect(),
        ),
        seq(tags::APPLICATION_SETUP_SEQUENCE, vec![setup]),
    ])
}

fn save(obj: InMemDicomObject, name: &str) -> PathBuf {
    let path = dir().join(name);
    obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .unwrap()
        .write_to_file(&path)
        .unwrap();
    path
}

fn close(a: [f64; 3], b: [f64; 3], tol: f64) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

/// A permanent implant of 6711 seeds in four styles of channel: a seed per
/// channel (no axis), a needle of two seeds (axis along the needle), a seed
/// drawn along its axis by two control points, and a seed with an explicit
/// ControlPointOrientation.
#[test]
fn permanent_seed_plan() {
    let channels = vec![
        channel(
            1,
            1,
            None,
            &[cp([10.0, 20.0, 30.0]), cp([10.0, 20.0, 30.0])],
        ),
        channel(
            2,
            1,
            None,
            &[
                cp([0.0, 0.0, 0.0]),
                cp([0.0, 0.0, 0.0]),
                cp([3.0, 4.0, 0.0]),
                cp([3.0, 4.0, 0.0]),
            ],
        ),
        channel(3, 1, None, &[cp([-5.0, 0.0, 0.0]), cp([-5.0, 3.0, 4.0])]),
        channel(
            4,
            1,
            None,
            &[
                ([7.0, 7.0, 7.0], Some(0.0), Some([2.0, 0.0, 0.0])),
                ([7.0, 7.0, 7.0], Some(1.0), Some([2.0, 0.0, 0.0])),
            ],
        ),
    ];
    let src = Src {
        time: "080000",
        ..Src::i125(1, "0.5", "20240110")
    };
    let path = save(
        plan("PERMANENT", "LDR", ("20240120", "080000"), &[src], channels),
        "permanent.dcm",
    );
    let p = read_brachy_plan(&path).unwrap();
    assert!(p.is_permanent());
    assert_eq!(p.treatment_type, "LDR");
    assert_eq!(p.fractions, 1);
    assert_eq!(p.sources.len(), 1);
    let s = &p.sources[0];
    assert_eq!((s.number, s.isotope_name.as_str()), (1, "I-125"));
    assert_eq!(s.air_kerma_strength_u, 0.5);
    assert_eq!(s.half_life_days, Some(59.4));
    assert_eq!(s.model_name(), Some("6711"));
    assert_eq!(p.setups.len(), 1);
    assert_eq!(p.setups[0].channels.len(), 4);
    let seeds = &p.seeds;
    assert_eq!(seeds.len(), 5);
    let expected: [([f64; 3], Option<[f64; 3]>); 5] = [
        ([10.0, 20.0, 30.0], None),
        ([0.0, 0.0, 0.0], Some([0.6, 0.8, 0.0])),
        ([3.0, 4.0, 0.0], Some([0.6, 0.8, 0.0])),
        ([-5.0, 1.5, 2.0], Some([0.0, 0.6, 0.8])),
        ([7.0, 7.0, 7.0], Some([1.0, 0.0, 0.0])),
    ];
    for (seed, (pos, dir)) in seeds.iter().zip(expected) {
        assert!(close(seed.position_mm, pos, 1e-12), "{seed:?}");
        match (seed.direction, dir) {
            (None, None) => {}
            (Some(d), Some(e)) => assert!(close(d, e, 1e-12), "{seed:?}"),
            _ => panic!("direction of {seed:?}, expected {dir:?}"),
        }
    }
    assert_eq!(
        seeds.iter().map(|s| s.channel_number).collect::<Vec<_>>(),
        [1, 2, 2, 3, 4]
    );
    // ten calendar days from 2024-01-10 08:00 to 2024-01-20 08:00
    assert_eq!(p.days_from_reference(), Some(10.0));
    let cat = SeedCatalogue::builtin();
    let m = p.seed_model(&cat).unwrap();
    assert_eq!(m.key(), "Amersham6711");
    let implant = p.to_implant(m).unwrap();
    assert_eq!(implant.technique(), Technique::Permanent);
    assert_eq!(implant.seeds().len(), 5);
    assert_eq!(implant.days_from_reference(), 10.0);
    // no axis in the plan: the patient z axis
    assert_eq!(implant.seeds()[0].direction().z, 1.0);
    for seed in implant.seeds() {
        assert_eq!(seed.air_kerma_strength_u(), 0.5);
    }
    let decay = 0.5f64.powf(10.0 / I125_HALF_LIFE_DAYS);
    assert!((implant.decay_to_start() - decay).abs() < 1e-12);
}

/// A temporary implant with two sources referenced a month apart, and a
/// needle whose first position is a zero-weight pass-through.
#[test]
fn temporary_plan_with_two_sources() {
    let channels = vec![
        channel(
            1,
            1,
            Some("360000"),
            &[
                ([1.0, 2.0, 3.0], Some(0.0), None),
                ([1.0, 2.0, 3.0], Some(1.0), None),
            ],
        ),
        channel(
            2,
            2,
            Some("360000"),
            &[
                ([0.0, 0.0, 0.0], Some(0.0), None),
                ([0.0, 0.0, 0.0], Some(0.0), None),
                ([0.0, 0.0, 5.0], Some(0.0), None),
                ([0.0, 0.0, 5.0], Some(1.0), None),
            ],
        ),
    ];
    let sources = [
        Src::i125(1, "3", "20240301"),
        Src {
            model_id: None,
            manufacturer: None,
            isotope: "Iodine-125",
            ..Src::i125(2, "4", "20240201")
        },
    ];
    let path = save(
        plan(
            "INTERSTITIAL",
            "LDR",
            ("20240302", "120000"),
            &sources,
            channels,
        ),
        "temporary.dcm",
    );
    let p = read_brachy_plan(&path).unwrap();
    assert!(!p.is_permanent());
    assert_eq!(p.seeds.len(), 2);
    assert!(close(p.seeds[0].position_mm, [1.0, 2.0, 3.0], 0.0));
    assert!(close(p.seeds[1].position_mm, [0.0, 0.0, 5.0], 0.0));
    assert_eq!(p.seeds[1].direction, Some([0.0, 0.0, 1.0]));
    assert_eq!(p.seeds[1].source_number, 2);
    // 360000 s = 100 h
    assert_eq!(p.duration_h().unwrap(), Some(100.0));
    // the first seed's source is referenced at 2024-03-01 00:00: 1.5 days
    assert_eq!(p.days_from_reference(), Some(1.5));
    let implant = p.to_implant(&model()).unwrap();
    assert_eq!(
        implant.technique(),
        Technique::Temporary { duration_h: 100.0 }
    );
    assert_eq!(implant.seeds()[0].air_kerma_strength_u(), 3.0);
    // source 2 is referenced 29 days earlier (2024 is a leap year): decayed
    let sk2 = 4.0 * 0.5f64.powf(29.0 / I125_HALF_LIFE_DAYS);
    assert!((implant.seeds()[1].air_kerma_strength_u() - sk2).abs() < 1e-12);
    // one channel of another time cannot be one implant
    let channels = vec![
        channel(1, 1, Some("360000"), &[cp([1.0; 3]), cp([1.0; 3])]),
        channel(2, 1, Some("180000"), &[cp([2.0; 3]), cp([2.0; 3])]),
    ];
    let path = save(
        plan(
            "INTERSTITIAL",
            "LDR",
            ("20240302", "120000"),
            &sources[..1],
            channels,
        ),
        "two_times.dcm",
    );
    let err = read_brachy_plan(&path)
        .unwrap()
        .to_implant(&model())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("(300A,0286) ChannelTotalTime") && err.contains("180000"),
        "{err}"
    );
}

fn sample_implant(technique: Technique, days: f64) -> Implant {
    let seeds = vec![
        Seed::new([-12.345_678_901_2, 45.678_901_234, 100.000_001], None, 0.45).unwrap(),
        Seed::new([0.1, -0.2, 0.3], Some([1.0, 2.0, 2.0]), 0.6).unwrap(),
        Seed::new(
            [-250.5, 3.25, -999.123_456_789],
            Some([0.0, -1.0, 0.0]),
            0.45,
        )
        .unwrap(),
    ];
    Implant::new(model(), seeds, technique, days).unwrap()
}

fn assert_same_implant(a: &Implant, b: &Implant) {
    assert_eq!(a.model().key(), b.model().key());
    assert_eq!(a.technique(), b.technique());
    assert!((a.days_from_reference() - b.days_from_reference()).abs() < 1e-9);
    assert_eq!(a.seeds().len(), b.seeds().len());
    for (s, t) in a.seeds().iter().zip(b.seeds()) {
        assert!(
            (s.position_mm() - t.position_mm()).norm() < 1e-6,
            "{s:?} {t:?}"
        );
        // the axis travels as FL (float32)
        assert!((s.direction().into_inner() - t.direction().into_inner()).norm() < 1e-6);
        assert!((s.air_kerma_strength_u() - t.air_kerma_strength_u()).abs() < 1e-12);
    }
}

#[test]
fn written_implants_read_back() {
    let context = BrachyPlanContext {
        patient_id: "PHANTOM".into(),
        source_reference: PlanDateTime::new(2024, 5, 1, 9, 30, 0.0),
        referenced_structure_set_uid: Some("1.2.3.4.5".into()),
        ..BrachyPlanContext::default()
    };
    let cat = SeedCatalogue::builtin();
    for (name, implant) in [
        ("perm.dcm", sample_implant(Technique::Permanent, 3.25)),
        (
            "temp.dcm",
            sample_implant(Technique::Temporary { duration_h: 120.5 }, -2.0),
        ),
    ] {
        let path = dir().join(name);
        let uid = write_brachy_plan(&path, &implant, &context).unwrap();
        let p = read_brachy_plan(&path).unwrap();
        assert_eq!(p.sop_instance_uid.as_deref(), Some(uid.as_str()));
        assert_eq!(p.referenced_structure_set_uid.as_deref(), Some("1.2.3.4.5"));
        // two distinct strengths: two sources
        assert_eq!(p.sources.len(), 2);
        assert_eq!(p.sources[0].isotope_name, "I-125");
        assert_eq!(p.sources[0].half_life_days, Some(59.4));
        assert_eq!(
            p.sources[0].reference_time,
            PlanDateTime::new(2024, 5, 1, 9, 30, 0.0)
        );
        assert_eq!(p.seeds.len(), 3);
        assert_eq!(p.setups[0].channels.len(), 3);
        assert_eq!(p.seed_model(&cat).unwrap().key(), "Amersham6711");
        let back = p.to_implant(&model()).unwrap();
        assert_same_implant(&implant, &back);
        match implant.technique() {
            Technique::Permanent => assert_eq!(p.technique, "PERMANENT"),
            Technique::Temporary { .. } => {
                assert_eq!(p.setups[0].channels[0].total_time_s, Some(120.5 * 3600.0));
            }
        }
    }
    // RTPlanDate: 2024-05-01 09:30 + 3.25 d = 2024-05-04 15:30
    let p = read_brachy_plan(dir().join("perm.dcm")).unwrap();
    let t = p.plan_time.unwrap();
    assert_eq!(
        (t.dicom_date(), t.dicom_time()),
        ("20240504".into(), "153000.000000".into())
    );
}

/// Every catalogue model, the second copies with keys longer than the 16
/// characters of SourceModelID included, is found again from the written plan.
#[test]
fn every_catalogue_model_is_found_again() {
    let cat = SeedCatalogue::builtin();
    let context = BrachyPlanContext {
        source_reference: PlanDateTime::new(2025, 1, 1, 0, 0, 0.0),
        ..BrachyPlanContext::default()
    };
    let mut long_keys = 0;
    for m in cat.models() {
        let seeds = vec![Seed::new([1.0, 2.0, 3.0], None, 0.7).unwrap()];
        let implant = Implant::new(m.clone(), seeds, Technique::Permanent, 0.0).unwrap();
        let path = dir().join(format!("model_{}.dcm", m.key()));
        write_brachy_plan(&path, &implant, &context).unwrap();
        let p = read_brachy_plan(&path).unwrap();
        let id = p.sources[0].model_id.as_deref();
        if m.key().len() > 16 {
            long_keys += 1;
            assert_eq!(id, None, "{}", m.key());
        } else {
            assert_eq!(id, Some(m.key()));
        }
        assert_eq!(p.seed_model(&cat).unwrap().key(), m.key());
        assert_eq!(p.sources[0].half_life_days, Some(m.half_life_days()));
        // DS keeps 16 characters: 2.8000000000000003 mm is written 2.8
        let length = p.sources[0].active_length_mm.unwrap();
        assert!((length - m.active_length_mm()).abs() < 1e-12, "{length}");
    }
    // e.g. SelectSeed130002_pygrpm, whose name differs from Nucletron130002's
    // only by "/Isotron", and IsoAidIAI125A_pygrpm, whose name is the same as
    // IsoAidIAI125A's
    assert!(long_keys >= 2, "{long_keys}");
}

fn message(name: &str, obj: InMemDicomObject) -> String {
    let path = save(obj, name);
    match read_brachy_plan(&path) {
        Err(e) => e.to_string(),
        Ok(p) => match p.seed_model(&SeedCatalogue::builtin()) {
            Err(e) => e.to_string(),
            Ok(m) => p.to_implant(m).unwrap_err().to_string(),
        },
    }
}

fn one_seed() -> Vec<InMemDicomObject> {
    vec![channel(1, 1, None, &[cp([0.0; 3]), cp([0.0; 3])])]
}

const DATE: (&str, &str) = ("20240101", "");

#[test]
fn unusable_plans_are_errors_naming_the_tag() {
    let src = || Src::i125(1, "0.5", "20240101");
    // an RT Ion Plan is another SOP class
    let ion = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/aptg_sobp_RP.dcm");
    let err = read_brachy_plan(ion).unwrap_err().to_string();
    assert!(
        err.contains("SOPClassUID") && err.contains("481.8"),
        "{err}"
    );

    let mut obj = plan("PERMANENT", "LDR", DATE, &[src()], one_seed());
    obj.put(el(tags::MODALITY, VR::CS, "RTDOSE"));
    let err = message("modality.dcm", obj);
    assert!(
        err.contains("(0008,0060) Modality") && err.contains("RTDOSE"),
        "{err}"
    );

    let mut obj = plan("PERMANENT", "LDR", DATE, &[src()], one_seed());
    obj.remove_element(tags::SOURCE_SEQUENCE);
    let err = message("no_sources.dcm", obj);
    assert!(err.contains("(300A,0210) SourceSequence"), "{err}");

    let mut obj = plan("PERMANENT", "LDR", DATE, &[src()], one_seed());
    obj.remove_element(tags::SOURCE_SEQUENCE);
    obj.put(seq(
        tags::BEAM_SEQUENCE,
        vec![InMemDicomObject::from_element_iter([el(
            tags::BEAM_NUMBER,
            VR::IS,
            "1",
        )])],
    ));
    let err = message("photon.dcm", obj);
    assert!(
        err.contains("external-beam") && err.contains("BeamSequence"),
        "{err}"
    );

    let channels = vec![channel(1, 7, None, &[cp([0.0; 3]), cp([0.0; 3])])];
    let err = message(
        "unknown_source.dcm",
        plan("PERMANENT", "LDR", DATE, &[src()], channels),
    );
    assert!(
        err.contains("(300C,000E) ReferencedSourceNumber") && err.contains("\"7\""),
        "{err}"
    );

    let iridium = Src {
        isotope: "Ir-192",
        half_life_days: "73.83",
        ..src()
    };
    let err = message(
        "iridium.dcm",
        plan("PERMANENT", "LDR", DATE, &[iridium], one_seed()),
    );
    assert!(
        err.contains("(300A,0226) SourceIsotopeName") && err.contains("Ir-192"),
        "{err}"
    );

    let palladium_half_life = Src {
        half_life_days: "16.99",
        ..src()
    };
    let err = message(
        "half_life.dcm",
        plan("PERMANENT", "LDR", DATE, &[palladium_half_life], one_seed()),
    );
    assert!(
        err.contains("(300A,0228) SourceIsotopeHalfLife") && err.contains("16.99"),
        "{err}"
    );

    let unknown = Src {
        model_id: Some("Unobtainium 9999"),
        manufacturer: None,
        ..src()
    };
    let err = message(
        "unknown_model.dcm",
        plan("PERMANENT", "LDR", DATE, &[unknown], one_seed()),
    );
    assert!(
        err.contains("(300A,021B) SourceModelID")
            && err.contains("Unobtainium 9999")
            && err.contains("Amersham6711")
            && err.contains("Best2301"),
        "{err}"
    );

    let err = message(
        "hdr.dcm",
        plan("INTERSTITIAL", "HDR", DATE, &[src()], one_seed()),
    );
    assert!(
        err.contains("(300A,0202) BrachyTreatmentType") && err.contains("HDR"),
        "{err}"
    );

    let mut obj = plan("PERMANENT", "LDR", DATE, &[src()], one_seed());
    obj.put(el(tags::RT_PLAN_GEOMETRY, VR::CS, "TREATMENT_DEVICE"));
    let err = message("geometry.dcm", obj);
    assert!(err.contains("(300A,000C) RTPlanGeometry"), "{err}");

    // a temporary implant needs its channel time
    let err = message(
        "no_time.dcm",
        plan("INTERSTITIAL", "LDR", DATE, &[src()], one_seed()),
    );
    assert!(err.contains("(300A,0286) ChannelTotalTime"), "{err}");

    // a malformed reference date
    let bad_date = Src {
        date: "20241332",
        ..src()
    };
    let err = message(
        "bad_date.dcm",
        plan("PERMANENT", "LDR", DATE, &[bad_date], one_seed()),
    );
    assert!(
        err.contains("(300A,022C) SourceStrengthReferenceDate") && err.contains("20241332"),
        "{err}"
    );
}

/// TimezoneOffsetFromUTC (0008,0201) holds for the plan's and the sources'
/// dates: read onto both, written back with the source reference, and a
/// malformed offset is an error naming the tag.
#[test]
fn utc_offsets_are_read_written_and_checked() {
    let reference = PlanDateTime::new(2024, 5, 1, 9, 30, 0.0)
        .unwrap()
        .with_utc_offset("+0200")
        .unwrap();
    let context = BrachyPlanContext {
        patient_id: "PHANTOM".into(),
        source_reference: Some(reference),
        ..BrachyPlanContext::default()
    };
    let implant = sample_implant(Technique::Permanent, 3.25);
    let path = dir().join("utc_offset.dcm");
    write_brachy_plan(&path, &implant, &context).unwrap();
    let p = read_brachy_plan(&path).unwrap();
    let plan_time = p.plan_time.unwrap();
    assert_eq!(plan_time.dicom_utc_offset().as_deref(), Some("+0200"));
    assert_eq!(p.sources[0].reference_time, Some(reference));
    assert!((p.days_from_reference().unwrap() - 3.25).abs() < 1e-9);
    // the same plan without the offset reads as before: no offset
    let path = dir().join("no_offset.dcm");
    let plain = BrachyPlanContext {
        source_reference: PlanDateTime::new(2024, 5, 1, 9, 30, 0.0),
        ..context.clone()
    };
    write_brachy_plan(&path, &implant, &plain).unwrap();
    let p = read_brachy_plan(&path).unwrap();
    assert_eq!(p.plan_time.unwrap().utc_offset(), None);
    // a malformed offset
    let src = || Src::i125(1, "0.5", "20240101");
    let mut obj = plan("PERMANENT", "LDR", DATE, &[src()], one_seed());
    obj.put(el(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+2500"));
    let err = message("bad_offset.dcm", obj);
    assert!(
        err.contains("(0008,0201) TimezoneOffsetFromUTC") && err.contains("+2500"),
        "{err}"
    );
}
