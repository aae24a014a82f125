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

/// Batches a loop is cut into when a hook listens: fine enough for a smooth
/// bar and a prompt stop, coarse enough that the rayon joins cost nothing.
const BATCHES: usize = 64;

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

    /// Items per batch for a loop over `items` items (all of them without a
    /// hook).
    fn batch(&self, items: usize) -> usize {
        match self.0 {
            Some(_) => items.div_ceil(BATCHES).max(1),
            None => items.max(1),
        }
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
        let per_batch = self.batch(items);
        self.report(stage, 0, items as u64)?;
        for (b, batch) in out.chunks_mut(per_batch * chunk).enumerate() {
            let first = b * per_batch;
            batch
                .par_chunks_mut(chunk)
                .enumerate()
                .for_each_init(&init, |s, (n, c)| work(s, first + n, c));
            let done = (first + batch.len().div_ceil(chunk)) as u64;
            self.report(stage, done, items as u64)?;
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
        let per_batch = self.batch(n);
        self.report(stage, 0, n as u64)?;
        for (i, (ca, cb)) in a[..n]
            .chunks_mut(per_batch)
            .zip(b[..n].chunks(per_batch))
            .enumerate()
        {
            ca.par_iter_mut()
                .zip(cb.par_iter())
                .for_each(|(x, y)| f(x, y));
            self.report(
                stage,
                ((i * per_batch + ca.len()) as u64).min(n as u64),
                n as u64,
            )?;
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
        let per_batch = self.batch(items.len());
        let total = items.len() as u64;
        self.report(stage, 0, total)?;
        let mut out = Vec::with_capacity(items.len());
        for batch in items.chunks(per_batch) {
            out.par_extend(batch.par_iter().map(&f));
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
        // two batches of 1000 / 64 chunks ran, the rest did not
        let ran = a.iter().filter(|v| **v == 1).count();
        assert_eq!(ran, 2 * 16 * 10);
        assert!(hook.par_map("m", &a, |v| *v).is_err());
    }
}
