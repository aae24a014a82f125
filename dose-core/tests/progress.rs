//! Progress reports and cancellation through `Engine::with_progress`: the
//! same doses with a hook as without, reports in order on the calling thread
//! ending at their totals, and a hook that says stop gives
//! `DoseError::Cancelled` (never a partial dose) for every CPU calculation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use isodose_core::phantom::{benchmark_implant, reference_field};
use isodose_core::proton::{DoseOptions, ProtonMachine};
use isodose_core::qa::GammaCriteria;
use isodose_core::tg43::SeedCatalogue;
use isodose_core::{BackendChoice, DoseError, Engine, Grid3, Progress};

/// Records (stage, done, total, thread) and says stop after `stop_after`
/// reports.
struct Recorder {
    seen: Mutex<Vec<(String, u64, u64, ThreadId)>>,
    stop_after: usize,
}

impl Progress for Recorder {
    fn report(&self, stage: &str, done: u64, total: u64) -> bool {
        let mut seen = self.seen.lock().unwrap();
        seen.push((stage.to_owned(), done, total, std::thread::current().id()));
        seen.len() < self.stop_after
    }
}

/// Says stop at the second report of `stage`.
struct StopIn {
    stage: &'static str,
    seen: Mutex<usize>,
}

impl Progress for StopIn {
    fn report(&self, stage: &str, _done: u64, _total: u64) -> bool {
        let mut seen = self.seen.lock().unwrap();
        if stage == self.stage {
            *seen += 1;
        }
        *seen < 2
    }
}

fn recorder(stop_after: usize) -> Arc<Recorder> {
    Arc::new(Recorder {
        seen: Mutex::default(),
        stop_after,
    })
}

/// Every stage's reports rise from 0 to its total, on this thread; returns
/// the stages in order of first appearance.
fn check_reports(rec: &Recorder) -> Vec<String> {
    let seen = rec.seen.lock().unwrap();
    let me = std::thread::current().id();
    let mut by_stage: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    let mut order = Vec::new();
    for (stage, done, total, thread) in seen.iter() {
        assert_eq!(*thread, me, "{stage} reported on another thread");
        if !by_stage.contains_key(stage.as_str()) {
            order.push(stage.clone());
        }
        by_stage.entry(stage).or_default().push((*done, *total));
    }
    for (stage, r) in &by_stage {
        assert_eq!(r.first().map(|x| x.0), Some(0), "{stage}: {r:?}");
        let total = r[0].1;
        assert!(r.iter().all(|x| x.1 == total), "{stage}: {r:?}");
        assert!(r.windows(2).all(|w| w[0].0 <= w[1].0), "{stage}: {r:?}");
        assert_eq!(r.last().map(|x| x.0), Some(total), "{stage}: {r:?}");
    }
    order
}

fn cpu() -> Engine {
    Engine::new(BackendChoice::Cpu).unwrap()
}

#[test]
fn tg43_with_progress_is_the_same_dose_and_can_be_cancelled() {
    let model = SeedCatalogue::builtin()
        .get("Amersham6711")
        .unwrap()
        .clone();
    let implant = benchmark_implant(model).unwrap();
    let grid = Grid3::new([24, 30, 36], [2.0; 3], [-35.0, -29.0, -23.0]).unwrap();
    let plain = cpu().tg43_dose(&implant, &grid).unwrap();
    let rec = recorder(usize::MAX);
    let watched = cpu()
        .with_progress(rec.clone())
        .tg43_dose(&implant, &grid)
        .unwrap();
    assert_eq!(plain.data(), watched.data());
    assert_eq!(check_reports(&rec), ["TG-43 dose"]);
    // the start and the end at least (and one every 50 ms between)
    assert!(rec.seen.lock().unwrap().len() >= 2);

    // a hook that says stop at the end still cancels: no dose is returned
    let stop = recorder(2);
    let err = cpu()
        .with_progress(stop)
        .tg43_dose(&implant, &grid)
        .unwrap_err();
    assert!(
        matches!(err, DoseError::Cancelled { ref stage } if stage == "TG-43 dose"),
        "{err}"
    );
}

#[test]
fn proton_dose_and_dij_with_progress_and_cancelled() {
    let machine = ProtonMachine::generic().unwrap();
    let ct = reference_field::phantom().unwrap();
    // a coarser dose grid keeps the test quick
    let grid = Grid3::new([27, 50, 27], [6.0; 3], [-78.0, 3.0, -78.0]).unwrap();
    let plan = reference_field::plan(&machine).unwrap();
    let options = DoseOptions::new().unwrap();
    let plain = cpu()
        .pbs_dose(&ct, &plan, &machine, Some(&grid), &options)
        .unwrap();
    let rec = recorder(usize::MAX);
    let watched = cpu()
        .with_progress(rec.clone())
        .pbs_dose(&ct, &plan, &machine, Some(&grid), &options)
        .unwrap();
    assert_eq!(plain.data(), watched.data());
    assert_eq!(check_reports(&rec), ["ray tracing", "proton dose"]);

    let limit = 1 << 30;
    let plain = cpu()
        .pbs_dij(&ct, &plan, &machine, Some(&grid), &options, limit)
        .unwrap();
    let rec = recorder(usize::MAX);
    let watched = cpu()
        .with_progress(rec.clone())
        .pbs_dij(&ct, &plan, &machine, Some(&grid), &options, limit)
        .unwrap();
    assert_eq!(plain, watched);
    // one pass when the estimated matrix fits the limit
    assert_eq!(check_reports(&rec), ["ray tracing", "dij: filling"]);
    // a limit with no room for the estimate's margin: counted first
    let tight = plain.memory_bytes();
    let rec = recorder(usize::MAX);
    let watched = cpu()
        .with_progress(rec.clone())
        .pbs_dij(&ct, &plan, &machine, Some(&grid), &options, tight)
        .unwrap();
    assert_eq!(plain, watched);
    assert_eq!(
        check_reports(&rec),
        ["ray tracing", "dij: counting entries", "dij: filling"]
    );

    // stop in each stage in turn, at its second report (every stage has at
    // least its start and its end)
    for (stage, limit) in [
        ("ray tracing", limit),
        ("dij: filling", limit),
        ("dij: counting entries", tight),
        ("dij: filling", tight),
    ] {
        let err = cpu()
            .with_progress(Arc::new(StopIn {
                stage,
                seen: Mutex::new(0),
            }))
            .pbs_dij(&ct, &plan, &machine, Some(&grid), &options, limit)
            .unwrap_err();
        assert!(
            matches!(err, DoseError::Cancelled { stage: ref s } if s == stage),
            "{err}"
        );
    }
    let err = cpu()
        .with_progress(Arc::new(StopIn {
            stage: "proton dose",
            seen: Mutex::new(0),
        }))
        .pbs_dose(&ct, &plan, &machine, Some(&grid), &options)
        .unwrap_err();
    assert!(matches!(err, DoseError::Cancelled { .. }), "{err}");
}

#[test]
fn gamma_with_progress_is_the_same_and_can_be_cancelled() {
    let grid = Grid3::new([20, 24, 28], [2.0; 3], [-27.0, -23.0, -19.0]).unwrap();
    let dose = |shift: f64| {
        let data = ndarray::Array3::from_shape_fn((20, 24, 28), |(k, j, i)| {
            let p = grid.index_to_world([k, j, i]);
            (2.0 * (-((p.x - shift).powi(2) + p.y * p.y + p.z * p.z) / 400.0).exp()) as f32
        });
        isodose_core::Volume::new(grid.clone(), data).unwrap()
    };
    let (r, e) = (dose(0.0), dose(1.0));
    let criteria = GammaCriteria::new(2.0, 2.0);
    let plain = cpu().gamma(&r, &e, &criteria).unwrap();
    let rec = recorder(usize::MAX);
    let watched = cpu()
        .with_progress(rec.clone())
        .gamma(&r, &e, &criteria)
        .unwrap();
    assert_eq!(
        plain
            .gamma()
            .data()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>(),
        watched
            .gamma()
            .data()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    );
    assert_eq!(check_reports(&rec), ["gamma"]);
    let err = cpu()
        .with_progress(recorder(2))
        .gamma(&r, &e, &criteria)
        .unwrap_err();
    assert!(matches!(err, DoseError::Cancelled { .. }), "{err}");
}
