//! One-pass parallel assembly of a dij whose column sizes are known only
//! once the columns are computed.
//!
//! The matrix's two arrays are reserved once, from an estimate of the
//! entries, as zeroed memory that the operating system maps only where it
//! is written (a large `calloc`): the part of the reservation that is never
//! written costs no memory. Workers claim columns in increasing order, each
//! computes its column into a small scratch buffer of its own, and columns
//! are placed strictly in column order: the worker whose column is next
//! takes the next piece of the arrays' unplaced tail, and places any later
//! columns that other workers finished meanwhile. The copy into place runs
//! outside the lock, in parallel. So the matrix is built in one pass over
//! the dose model, with no per-spot allocation and no second copy of the
//! matrix; peak memory is the matrix plus one scratch column per worker and
//! the few columns waiting for their turn.
//!
//! When the columns need more entries than were reserved, the assembly
//! stops and says so ([`assemble`] gives `None`); the caller then counts
//! first.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::progress::Hook;
use crate::error::{DoseError, Result};
use crate::proton::Dij;

/// One column: row indices (increasing) and values.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub rows: Vec<u32>,
    pub values: Vec<f32>,
}

/// The placement state shared by the workers.
struct Placement<'a> {
    /// The next column to place.
    next: usize,
    /// Entries placed so far.
    placed: usize,
    /// The unplaced tails of the arrays.
    rows: &'a mut [u32],
    values: &'a mut [f32],
    /// Finished columns waiting for their turn.
    waiting: BTreeMap<usize, Scratch>,
    col_ptr: Vec<u64>,
}

/// A piece of the arrays and the column to copy into it.
type Piece<'a> = (Scratch, &'a mut [u32], &'a mut [f32]);

impl<'a> Placement<'a> {
    /// Adds finished column `j`; takes the pieces of every column that can
    /// now be placed in order. `None` when a column does not fit.
    fn finish(&mut self, j: usize, column: Scratch) -> Option<Vec<Piece<'a>>> {
        self.waiting.insert(j, column);
        let mut ready = Vec::new();
        while let Some(column) = self.waiting.remove(&self.next) {
            let n = column.rows.len();
            if n > self.rows.len() || n != column.values.len() {
                return None;
            }
            let (r, rest) = std::mem::take(&mut self.rows).split_at_mut(n);
            self.rows = rest;
            let (v, rest) = std::mem::take(&mut self.values).split_at_mut(n);
            self.values = rest;
            self.placed += n;
            self.col_ptr.push(self.placed as u64);
            self.next += 1;
            ready.push((column, r, v));
        }
        Some(ready)
    }
}

/// The `n_cols` columns that `column(j, scratch)` computes (rows of a
/// matrix of `n_rows`), assembled into at most `reserve` entries; `None`
/// when they need more. `stage` names the loop for progress reports.
pub(crate) fn assemble(
    hook: &Hook,
    stage: &str,
    n_rows: usize,
    n_cols: usize,
    reserve: usize,
    column: impl Fn(usize, &mut Scratch) + Send + Sync,
) -> Result<Option<Dij>> {
    let mut rows = zeroed::<u32>(reserve)?;
    let mut values = zeroed::<f32>(reserve)?;
    let mut col_ptr = Vec::with_capacity(n_cols + 1);
    col_ptr.push(0u64);
    let state = Mutex::new(Placement {
        next: 0,
        placed: 0,
        rows: &mut rows,
        values: &mut values,
        waiting: BTreeMap::new(),
        col_ptr,
    });
    let overflow = AtomicBool::new(false);
    hook.par_claim(stage, n_cols, Vec::<Scratch>::new, |spare, j| {
        if overflow.load(Ordering::Relaxed) {
            return false;
        }
        let mut scratch = spare.pop().unwrap_or_default();
        scratch.rows.clear();
        scratch.values.clear();
        column(j, &mut scratch);
        let ready = match state.lock() {
            Ok(mut place) => place.finish(j, scratch),
            Err(_) => None,
        };
        let Some(ready) = ready else {
            overflow.store(true, Ordering::Relaxed);
            return false;
        };
        for (scratch, r, v) in ready {
            r.copy_from_slice(&scratch.rows);
            v.copy_from_slice(&scratch.values);
            spare.push(scratch);
        }
        true
    })?;
    if overflow.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let place = state
        .into_inner()
        .map_err(|_| DoseError::BackendUnavailable {
            reason: "internal: a dij worker failed while placing a column".into(),
        })?;
    if place.next != n_cols {
        return Err(DoseError::BackendUnavailable {
            reason: format!(
                "internal: {} of {n_cols} dij columns were placed",
                place.next
            ),
        });
    }
    let (nnz, col_ptr) = (place.placed, place.col_ptr);
    // the never-written rest of the reservation was never mapped
    rows.truncate(nnz);
    values.truncate(nnz);
    Dij::from_built(n_rows, n_cols, col_ptr, rows, values).map(Some)
}

/// `n` zeros, allocated as zeroed memory (mapped lazily for large `n`), or
/// an error when the allocation fails: the trial reservation turns a
/// failure into an error, where `vec!` would abort the process.
fn zeroed<T: Clone + Default>(n: usize) -> Result<Vec<T>> {
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(n).map_err(|e| DoseError::OutOfRange {
        field: "dij reservation (entries)".into(),
        value: n as f64,
        reason: format!("cannot allocate it: {e}"),
    })?;
    drop(v);
    Ok(vec![T::default(); n])
}
