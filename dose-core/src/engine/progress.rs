//! Progress reports and cancellation of long computations.
//!
//! A caller that wants to see a computation advance, or to stop it (Ctrl-C
//! in a notebook, a Cancel button in a planning system), gives the engine a
//! [`Progress`] hook ([`crate::Engine::with_progress`]). The CPU backend then
//! runs each parallel loop on the rayon pool from a helper thread while the
//! **calling thread** (never a rayon worker) calls the hook: at the start,
//! every 50 ms, and at the end. A hook may therefore take locks or re-enter
//! an interpreter that only answers on its main thread. A hook that returns
//! `false` makes the workers skip the loop's remaining items, and the
//! computation ends with [`DoseError::Cancelled`]: no partial dose is ever
//! returned. The loop itself is the same rayon job with or without a hook,
//! so watching costs one thread and a report every 50 ms.
//!
//! The GPU backend dispatches whole slabs; it reports when it starts and when
//! it has finished, and stops between a computation's stages.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rayon::prelude::*;

use crate::error::{DoseError, Result};

/// Receives the progress of a computation and may cancel it.
pub trait Progress: Send + Sync {
    /// `done` of `total` work units of the current stage (`stage` names it,
    /// for example "proton dose" or "dij: counting") are finished. Return
    /// `false` to cancel.
    fn report(&self, stage: &str, done: u64, total: u64) -> bool;
}

/// A progress hook held by an engine.
#[derive(Clone, Default)]
pub(crate) struct Hook(pub(crate) Option<std::sync::Arc<dyn Progress>>);

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(Progress)"
        } else {
            "None"
        })
    }
}

/// How often the calling thread reports while the workers run.
const REPORT_EVERY: Duration = Duration::from_millis(50);

/// What the workers of a watched loop share with the calling thread: items
/// finished, and whether to skip the rest.
#[derive(Default)]
struct Watch {
    done: AtomicUsize,
    stop: AtomicBool,
}

impl Watch {
    /// Runs item work `f` unless the loop was stopped; counts it.
    #[inline]
    fn item<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let r = f();
        self.done.fetch_add(1, Ordering::Relaxed);
        Some(r)
    }
}

impl Hook {
    /// Reports `done` of `total` for `stage`; an error if the hook cancels.
    pub(crate) fn report(&self, stage: &str, done: u64, total: u64) -> Result<()> {
        match &self.0 {
            Some(p) if !p.report(stage, done, total) => Err(DoseError::Cancelled {
                stage: stage.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Runs `job`, a parallel loop over `total` items whose items go through
    /// [`Watch::item`], as one rayon job. With a hook, the job runs on a
    /// helper thread while the calling thread reports at the start, every
    /// [`REPORT_EVERY`] and at the end; a hook that says stop makes the
    /// workers skip the remaining items and gives `Cancelled`. Called from a
    /// rayon worker (which must not block waiting for the pool), or where no
    /// thread can be started, the job runs in place and the hook hears only
    /// the start and the end.
    fn watched<R: Send>(
        &self,
        stage: &str,
        total: usize,
        job: impl FnOnce(&Watch) -> R + Send,
    ) -> Result<R> {
        let watch = Watch::default();
        if self.0.is_none() {
            return Ok(job(&watch));
        }
        let total_u64 = total as u64;
        self.report(stage, 0, total_u64)?;
        let (finished, wait) = mpsc::channel::<()>();
        let watch = &watch;
        // the job, taken by the helper thread (or, if no thread can be
        // started, by this one)
        let slot = std::sync::Mutex::new(Some(job));
        let take = || slot.lock().ok().and_then(|mut j| j.take());
        let (joined, cancelled) = std::thread::scope(|scope| {
            // the sender moves into the helper, so that a panic in the job
            // drops it and ends the wait below as its completion does
            let helper = if rayon::current_thread_index().is_some() {
                None
            } else {
                std::thread::Builder::new()
                    .name("isodose-loop".into())
                    .spawn_scoped(scope, move || {
                        let r = take().map(|job| job(watch));
                        let _ = finished.send(());
                        r
                    })
                    .ok()
            };
            let Some(worker) = helper else {
                // on a rayon worker, or without a thread: the loop runs
                // here, reported at its end only
                return (Ok(take().map(|job| job(watch))), None);
            };
            let mut cancelled = None;
            while let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(REPORT_EVERY) {
                if cancelled.is_none() {
                    let done = watch.done.load(Ordering::Relaxed).min(total) as u64;
                    if let Err(e) = self.report(stage, done, total_u64) {
                        watch.stop.store(true, Ordering::Relaxed);
                        cancelled = Some(e);
                    }
                }
            }
            (worker.join(), cancelled)
        });
        let r = match joined {
            Ok(Some(r)) => r,
            // (the job is taken exactly once, by the helper or by this
            // thread, so this does not happen)
            Ok(None) => {
                return Err(DoseError::BackendUnavailable {
                    reason: format!("internal: the parallel loop of '{stage}' did not run"),
                });
            }
            // a panic in the job, as rayon would have passed it on
            Err(panic) => std::panic::resume_unwind(panic),
        };
        if let Some(e) = cancelled {
            return Err(e);
        }
        self.report(stage, total_u64, total_u64)?;
        Ok(r)
    }

    /// `out` cut into chunks of `chunk` elements, item `n` being the `n`-th
    /// chunk, processed in parallel by `work(state, n, chunk)` with one
    /// `init()` state per worker task, reporting as [`Self::watched`] does.
    pub(crate) fn par_chunks<T, S>(
        &self,
        stage: &str,
        out: &mut [T],
        chunk: usize,
        init: impl Fn() -> S + Send + Sync,
        work: impl Fn(&mut S, usize, &mut [T]) + Send + Sync,
    ) -> Result<()>
    where
        T: Send,
    {
        let chunk = chunk.max(1);
        let items = out.len().div_ceil(chunk);
        self.watched(stage, items, |watch| {
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each_init(&init, |s, (n, c)| {
                    watch.item(|| work(s, n, c));
                });
        })
    }

    /// `f(a, b)` for every pair of `a` and `b` (zipped) in parallel,
    /// reporting as [`Self::watched`] does.
    pub(crate) fn par_zip<A, B>(
        &self,
        stage: &str,
        a: &mut [A],
        b: &[B],
        f: impl Fn(&mut A, &B) + Send + Sync,
    ) -> Result<()>
    where
        A: Send,
        B: Sync,
    {
        let n = a.len().min(b.len());
        self.watched(stage, n, |watch| {
            a[..n]
                .par_iter_mut()
                .zip(b[..n].par_iter())
                .for_each(|(x, y)| {
                    watch.item(|| f(x, y));
                });
        })
    }

    /// Items `0..total` claimed in increasing order from one shared counter
    /// by one worker per rayon thread: `work(state, item)` with one `init()`
    /// state per worker, until the items run out or `work` returns `false`
    /// (which ends that worker only). A worker never waits for another's
    /// item, so a caller may make the items' results leave in order.
    /// Reports as [`Self::watched`] does.
    pub(crate) fn par_claim<S>(
        &self,
        stage: &str,
        total: usize,
        init: impl Fn() -> S + Send + Sync,
        work: impl Fn(&mut S, usize) -> bool + Send + Sync,
    ) -> Result<()> {
        self.watched(stage, total, |watch| {
            let next = AtomicUsize::new(0);
            (0..rayon::current_num_threads())
                .into_par_iter()
                .for_each(|_| {
                    let mut state = init();
                    loop {
                        let item = next.fetch_add(1, Ordering::Relaxed);
                        if item >= total || watch.item(|| work(&mut state, item)) != Some(true) {
                            break;
                        }
                    }
                });
        })
    }

    /// `f` applied to every item of `items` in parallel, in order, reporting
    /// as [`Self::watched`] does.
    pub(crate) fn par_map<I, R>(
        &self,
        stage: &str,
        items: &[I],
        f: impl Fn(&I) -> R + Send + Sync,
    ) -> Result<Vec<R>>
    where
        I: Sync,
        R: Send,
    {
        let mapped: Vec<Option<R>> = self.watched(stage, items.len(), |watch| {
            items.par_iter().map(|i| watch.item(|| f(i))).collect()
        })?;
        // every item ran: the loop was not stopped (else `Cancelled` above)
        Ok(mapped.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;
    use std::sync::Mutex;
    use std::thread::ThreadId;

    use super::*;

    /// Records every report and the thread it came from; cancels after
    /// `stop_after` reports.
    struct Recorder {
        seen: Mutex<Vec<(u64, u64, ThreadId)>>,
        stop_after: usize,
    }

    impl Progress for Recorder {
        fn report(&self, _stage: &str, done: u64, total: u64) -> bool {
            let mut seen = self.seen.lock().unwrap();
            seen.push((done, total, std::thread::current().id()));
            seen.len() < self.stop_after
        }
    }

    fn recorder(stop_after: usize) -> Arc<Recorder> {
        Arc::new(Recorder {
            seen: Mutex::default(),
            stop_after,
        })
    }

    /// A slow chunk: 1 ms of sleep, so that a loop of many spans several
    /// report intervals whatever the machine.
    fn slow_fill(n: usize, c: &mut [u64]) {
        std::thread::sleep(Duration::from_millis(1));
        c.fill(n as u64);
    }

    #[test]
    fn watched_loops_give_the_same_result_and_report_on_the_calling_thread() {
        let rec = recorder(usize::MAX);
        let hook = Hook(Some(rec.clone()));
        // 100 chunks of ≥ 1 ms per thread: ≥ 100 ms, so at least one report
        // between the start and the end
        let threads = rayon::current_num_threads();
        let mut a = vec![0u64; 100 * threads * 7 + 3];
        hook.par_chunks("t", &mut a, 7, || (), |_, n, c| slow_fill(n, c))
            .unwrap();
        let mut b = vec![0u64; a.len()];
        Hook::default()
            .par_chunks("t", &mut b, 7, || (), |_, n, c| c.fill(n as u64))
            .unwrap();
        assert_eq!(a, b);
        let items = a.len().div_ceil(7) as u64;
        assert_eq!(a.last(), Some(&(items - 1)));
        let seen = rec.seen.lock().unwrap();
        let me = std::thread::current().id();
        assert!(seen.len() > 2, "{seen:?}");
        assert!(seen.iter().all(|s| s.1 == items && s.2 == me));
        assert_eq!(seen.first().map(|s| s.0), Some(0));
        assert_eq!(seen.last().map(|s| s.0), Some(items));
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
        drop(seen);
        let m = hook.par_map("m", &a, |v| v * 2).unwrap();
        assert_eq!(m, a.iter().map(|v| v * 2).collect::<Vec<_>>());
        let mut z = vec![0u64; a.len()];
        hook.par_zip("z", &mut z, &a, |x, y| *x = y + 1).unwrap();
        assert!(z.iter().zip(&a).all(|(x, y)| *x == y + 1));
    }

    #[test]
    fn a_hook_that_says_stop_cancels_the_remaining_items() {
        // stop at the second report (the first one during the loop)
        let rec = recorder(2);
        let hook = Hook(Some(rec.clone()));
        let mut a = vec![0u64; 2000 * 10];
        let err = hook
            .par_chunks(
                "dose",
                &mut a,
                10,
                || (),
                |_, n, c| {
                    slow_fill(n + 1, c);
                },
            )
            .unwrap_err();
        assert!(matches!(err, DoseError::Cancelled { ref stage } if stage == "dose"));
        // some chunks ran before the stop, the others were skipped
        let ran = a.chunks(10).filter(|c| c[0] != 0).count();
        assert!(ran > 0 && ran < 2000, "{ran}");
        // a hook that stops at once: nothing runs
        let hook = Hook(Some(recorder(1)));
        let mut b = vec![0u64; 100];
        assert!(
            hook.par_chunks("d", &mut b, 10, || (), |_, n, c| c.fill(n as u64 + 1))
                .is_err()
        );
        assert!(b.iter().all(|v| *v == 0));
        assert!(hook.par_map("m", &a, |v| *v).is_err());
    }

    /// A panic in a watched loop reaches the caller (as rayon passes it
    /// on) instead of leaving the calling thread waiting.
    #[test]
    fn a_panic_in_the_loop_reaches_the_caller() {
        let hook = Hook(Some(recorder(usize::MAX)));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut a = vec![0u64; 100];
            hook.par_chunks("p", &mut a, 10, || (), |_, n, _| assert!(n != 5, "item 5"))
        }));
        assert!(caught.is_err());
    }

    /// On a rayon worker the loop runs in place (blocking a worker to wait
    /// for the pool could deadlock it) and still reports start and end.
    #[test]
    fn from_a_rayon_worker_the_loop_runs_in_place() {
        let rec = recorder(usize::MAX);
        let hook = Hook(Some(rec.clone()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let a = pool.install(|| {
            let mut a = vec![0u64; 50];
            hook.par_chunks("t", &mut a, 5, || (), |_, n, c| c.fill(n as u64))
                .map(|()| a)
        });
        assert_eq!(a.unwrap()[49], 9);
        let seen = rec.seen.lock().unwrap();
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 10]);
    }
}
