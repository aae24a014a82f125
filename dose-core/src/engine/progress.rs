//! Progress reports and cancellation of long computations.
//!
//! A caller that wants to see a computation advance, or to stop it (Ctrl-C
//! in a notebook, a Cancel button in a planning system), gives the engine a
//! [`Progress`] hook ([`crate::Engine::with_progress`]). The CPU backend then
//! runs its parallel loops in batches, one after the other, and calls the
//! hook between batches **on the calling thread** (never on a rayon worker),
//! so a hook may take locks or re-enter an interpreter that only answers on
//! its main thread. A hook that returns `false` stops the computation at the
//! end of the current batch with [`DoseError::Cancelled`]: no partial dose is
//! ever returned. Without a hook a loop runs as one batch, as fast as before.
//!
//! The GPU backend dispatches whole slabs; it reports when it starts and when
//! it has finished, and stops between a computation's stages.

use std::fmt;
use std::time::{Duration, Instant};

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

/// Most batches a loop is cut into when a hook listens: fine enough for a
/// smooth bar and a prompt stop (a batch is at most 1/64 of the loop or
/// about [`BATCH_TIME`]), coarse enough that the joins between batches (the
/// threads idle until the slowest one finishes, then wake) cost little.
const BATCHES: usize = 64;

/// The time a batch grows towards: a loop whose first batches run faster
/// takes fewer, larger batches (a short computation is not slowed by 64
/// joins), while a report still comes about this often.
const BATCH_TIME: Duration = Duration::from_millis(50);

/// Batch sizes for one loop under a hook: the first is 1/[`BATCHES`] of the
/// loop; each next one is the size that would have taken [`BATCH_TIME`] at
/// the previous batch's pace, at most twice the previous size (the pace may
/// change along the loop) and never below the first.
struct Batches {
    first: usize,
    next: usize,
    started: Instant,
}

impl Batches {
    fn new(first: usize) -> Self {
        Self {
            first,
            next: first,
            started: Instant::now(),
        }
    }

    /// The size of the next batch, `remaining` items being left; starts its
    /// clock.
    fn take(&mut self, remaining: usize) -> usize {
        self.started = Instant::now();
        self.next.min(remaining)
    }

    /// The batch of `len` items just finished: sizes the next one.
    fn finished(&mut self, len: usize) {
        let took = self.started.elapsed().as_secs_f64();
        let paced = if took > 0.0 {
            (len as f64 * BATCH_TIME.as_secs_f64() / took) as usize
        } else {
            usize::MAX
        };
        self.next = paced.min(len.saturating_mul(2)).max(self.first);
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

    /// The batches of a loop over `items` items (one batch of all of them
    /// without a hook).
    fn batches(&self, items: usize) -> Batches {
        Batches::new(match self.0 {
            Some(_) => items.div_ceil(BATCHES).max(1),
            None => items.max(1),
        })
    }

    /// `out` cut into chunks of `chunk` elements, item `n` being the `n`-th
    /// chunk, processed in parallel by `work(state, n, chunk)` with one
    /// `init()` state per worker and batch; batch after batch, reporting
    /// between them.
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
        let mut batches = self.batches(items);
        self.report(stage, 0, items as u64)?;
        let (mut first, mut rest) = (0, out);
        while !rest.is_empty() {
            let len = batches.take(items - first);
            let (batch, after) = rest.split_at_mut((len * chunk).min(rest.len()));
            batch
                .par_chunks_mut(chunk)
                .enumerate()
                .for_each_init(&init, |s, (n, c)| work(s, first + n, c));
            batches.finished(len);
            (first, rest) = (first + len, after);
            self.report(stage, first as u64, items as u64)?;
        }
        Ok(())
    }

    /// `f(a, b)` for every pair of `a` and `b` (zipped) in parallel, batch
    /// after batch, reporting between them.
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
        let mut batches = self.batches(n);
        self.report(stage, 0, n as u64)?;
        let mut done = 0;
        while done < n {
            let len = batches.take(n - done);
            a[done..done + len]
                .par_iter_mut()
                .zip(b[done..done + len].par_iter())
                .for_each(|(x, y)| f(x, y));
            batches.finished(len);
            done += len;
            self.report(stage, done as u64, n as u64)?;
        }
        Ok(())
    }

    /// `f` applied to every item of `items` in parallel, in order, batch
    /// after batch, reporting between them.
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
        let mut batches = self.batches(items.len());
        let total = items.len() as u64;
        self.report(stage, 0, total)?;
        let mut out = Vec::with_capacity(items.len());
        while out.len() < items.len() {
            let done = out.len();
            let len = batches.take(items.len() - done);
            out.par_extend(items[done..done + len].par_iter().map(&f));
            batches.finished(len);
            self.report(stage, out.len() as u64, total)?;
        }
        Ok(out)
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

    #[test]
    fn batches_give_the_same_result_and_report_on_the_calling_thread() {
        let rec = recorder(usize::MAX);
        let hook = Hook(Some(rec.clone()));
        let mut a = vec![0u64; 1000 * 7 + 3];
        hook.par_chunks("t", &mut a, 7, || (), |_, n, c| c.fill(n as u64))
            .unwrap();
        let mut b = vec![0u64; a.len()];
        Hook::default()
            .par_chunks("t", &mut b, 7, || (), |_, n, c| c.fill(n as u64))
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.last(), Some(&1000));
        let seen = rec.seen.lock().unwrap();
        let me = std::thread::current().id();
        assert!(seen.len() > 2);
        assert!(seen.iter().all(|s| s.1 == 1001 && s.2 == me));
        assert_eq!(seen.first().map(|s| s.0), Some(0));
        assert_eq!(seen.last().map(|s| s.0), Some(1001));
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
        drop(seen);
        let m = hook.par_map("m", &a, |v| v * 2).unwrap();
        assert_eq!(m, a.iter().map(|v| v * 2).collect::<Vec<_>>());
    }

    #[test]
    fn a_hook_that_says_stop_cancels_between_batches() {
        let rec = recorder(3);
        let hook = Hook(Some(rec.clone()));
        let mut a = vec![0u8; 10_000];
        let err = hook
            .par_chunks("dose", &mut a, 10, || (), |_, _, c| c.fill(1))
            .unwrap_err();
        assert!(matches!(err, DoseError::Cancelled { ref stage } if stage == "dose"));
        // two batches ran, the rest did not: the first of 1000 / 64 chunks,
        // the second at least as large and at most twice as large
        let ran = a.iter().filter(|v| **v == 1).count();
        assert!((2 * 16 * 10..=3 * 16 * 10).contains(&ran), "{ran}");
        assert!(hook.par_map("m", &a, |v| *v).is_err());
    }
}
