//! CPU reference backend of the proton engine.
//!
//! Forward dose: rayon over z-slices of the dose grid; each slice visits every
//! pencil in plan order and accumulates in f64, so the result does not depend
//! on the thread count. Dij: rayon over spots, one column each.

use ndarray::Array3;

use super::assembly::{Scratch, assemble};
use super::progress::Hook;
use crate::error::{DoseError, Result};
use crate::grid::{DoseGrid, Grid3, Volume};
use crate::proton::Dij;
use crate::proton::prepare::{
    PreparedBeam, RowRun, VoxelSink, count_voxels, estimate_entries, for_each_voxel,
    pencils_by_spot, visit,
};

/// Forward dose (Gy) of the prepared beams on `grid`.
pub(super) fn pbs_dose(beams: &[PreparedBeam], grid: &Grid3, hook: &Hook) -> Result<DoseGrid> {
    let [nz, ny, nx] = grid.shape();
    let slice = ny * nx;
    let mut out = vec![0f32; grid.len()];
    hook.par_chunks(
        "proton dose",
        &mut out,
        slice,
        || vec![0f64; slice],
        |acc, k, out_slice| plane_dose(beams, grid, k, acc, out_slice),
    )?;
    let data = Array3::from_shape_vec((nz, ny, nx), out).map_err(|e| DoseError::InvalidGrid {
        reason: format!("internal shape error: {e}"),
    })?;
    Volume::new(grid.clone(), data)
}

/// Dose (Gy) of the prepared beams on z-plane `k` of `grid` into `out`
/// (one plane, f32), summed in f64 in plan order in `acc` (one plane of
/// scratch), so that the result does not depend on which thread runs it.
pub(crate) fn plane_dose(
    beams: &[PreparedBeam],
    grid: &Grid3,
    k: usize,
    acc: &mut [f64],
    out: &mut [f32],
) {
    acc.fill(0.0);
    let base = k * grid.ny() * grid.nx();
    for beam in beams {
        for p in &beam.pencils {
            if p.weight == 0.0 {
                continue;
            }
            for_each_voxel(p, &beam.frame, grid, k..k + 1, |v, d| {
                acc[v - base] += p.weight * d;
            });
        }
    }
    for (o, a) in out.iter_mut().zip(acc.iter()) {
        *o = *a as f32;
    }
}

/// The dij of the prepared beams on `grid`, `n_spots` columns. Refuses (before
/// allocating the matrix) when it would need more than `max_bytes`.
///
/// One pass when the estimated entries ([`estimate_entries`], with a margin)
/// fit under `max_bytes`: the columns are computed once and assembled in
/// place ([`assemble`]). When the estimate does not fit, or the columns
/// turn out to need more than it reserved, an exact count comes first
/// ([`pbs_dij_counted`]).
pub(super) fn pbs_dij(
    beams: &[PreparedBeam],
    grid: &Grid3,
    n_spots: usize,
    max_bytes: usize,
    hook: &Hook,
) -> Result<Dij> {
    pbs_dij_reserving(beams, grid, n_spots, max_bytes, hook, RESERVE_MARGIN)
}

/// [`pbs_dij`] with the one-pass reservation at `margin` times the
/// estimate (plus [`RESERVE_MIN`]).
fn pbs_dij_reserving(
    beams: &[PreparedBeam],
    grid: &Grid3,
    n_spots: usize,
    max_bytes: usize,
    hook: &Hook,
    margin: f64,
) -> Result<Dij> {
    Dij::check_rows(grid.len())?;
    let by_spot = pencils_by_spot(beams, n_spots);
    let estimate: f64 = by_spot
        .iter()
        .map(|pencils| estimate_entries(beams, pencils, grid))
        .sum();
    let reserve = (margin * estimate).ceil() + RESERVE_MIN as f64;
    // (the first test keeps `reserve as usize` and its byte count in range)
    if reserve < (max_bytes / 8) as f64 && Dij::bytes_for(reserve as usize, n_spots) <= max_bytes {
        let assembled = assemble(
            hook,
            "dij: filling",
            grid.len(),
            n_spots,
            reserve as usize,
            |j, scratch| {
                if let Some(pencils) = by_spot.get(j) {
                    fill_column(beams, grid, pencils, scratch);
                }
            },
        )?;
        if let Some(dij) = assembled {
            return Ok(dij);
        }
    }
    pbs_dij_counted(beams, grid, &by_spot, max_bytes, hook)
}

/// The reservation of the one-pass dij: this many times the estimated
/// entries, plus [`RESERVE_MIN`]. On the reference field the estimate is
/// within a few per cent of the entries; what is reserved and not written
/// costs no memory.
const RESERVE_MARGIN: f64 = 1.25;
const RESERVE_MIN: usize = 4096;

/// The column of the spot whose pencils are `pencils` into `scratch`.
fn fill_column(
    beams: &[PreparedBeam],
    grid: &Grid3,
    pencils: &[(usize, usize)],
    scratch: &mut Scratch,
) {
    match pencils {
        [(b, i)] => {
            let p = &beams[*b].pencils[*i];
            let mut sink = Push {
                scratch,
                share: p.share,
            };
            visit(p, &beams[*b].frame, grid, 0..grid.nz(), &mut sink);
        }
        _ => *scratch = column(beams, grid, pencils),
    }
}

/// Appends a pencil's voxels to a column (dose per proton of the spot: the
/// pencil's share applied).
struct Push<'a> {
    scratch: &'a mut Scratch,
    share: f64,
}

impl VoxelSink for Push<'_> {
    const DOSE: bool = true;
    fn voxel(&mut self, idx: usize, d: f64) {
        self.scratch.rows.push(idx as u32);
        self.scratch.values.push((self.share * d) as f32);
    }
    fn row(&mut self, base: usize, run: RowRun) {
        // room for the whole span, written in place, then cut to what the
        // run yielded
        let (rows, values) = (&mut self.scratch.rows, &mut self.scratch.values);
        let start = rows.len();
        let end = start + run.len_bound();
        rows.resize(end, 0);
        values.resize(end, 0.0);
        let n = write_run(
            &mut rows[start..],
            &mut values[start..],
            base,
            self.share,
            run,
        );
        rows.truncate(start + n);
        values.truncate(start + n);
    }
}

/// The dij in two passes over the same traversal: an exact count of each
/// column's entries (no dose evaluation), then the matrix is allocated once
/// at its final size and every column is filled in parallel straight into
/// its own slice.
fn pbs_dij_counted(
    beams: &[PreparedBeam],
    grid: &Grid3,
    by_spot: &[Vec<(usize, usize)>],
    max_bytes: usize,
    hook: &Hook,
) -> Result<Dij> {
    let n_spots = by_spot.len();
    let all_k = 0..grid.nz();
    let counts: Vec<usize> =
        hook.par_map("dij: counting entries", by_spot, |pencils| {
            match pencils.as_slice() {
                [(b, i)] => count_voxels(
                    &beams[*b].pencils[*i],
                    &beams[*b].frame,
                    grid,
                    all_k.clone(),
                ),
                _ => column(beams, grid, pencils).rows.len(),
            }
        })?;
    let nnz: usize = counts.iter().sum();
    Dij::check_size(nnz, n_spots, max_bytes)?;
    let mut col_ptr = Vec::with_capacity(n_spots + 1);
    col_ptr.push(0u64);
    for c in &counts {
        col_ptr.push(col_ptr[col_ptr.len() - 1] + *c as u64);
    }
    let mut rows = vec![0u32; nnz];
    let mut values = vec![0f32; nnz];
    let mut slices = Vec::with_capacity(n_spots);
    let (mut r_rest, mut v_rest) = (&mut rows[..], &mut values[..]);
    for c in &counts {
        let (r, rr) = r_rest.split_at_mut(*c);
        let (v, vr) = v_rest.split_at_mut(*c);
        slices.push((r, v));
        r_rest = rr;
        v_rest = vr;
    }
    hook.par_zip(
        "dij: filling",
        &mut slices,
        by_spot,
        |(r, v), pencils| match pencils.as_slice() {
            [(b, i)] => {
                let p = &beams[*b].pencils[*i];
                let mut column = Column {
                    rows: r,
                    values: v,
                    n: 0,
                    share: p.share,
                };
                visit(p, &beams[*b].frame, grid, all_k.clone(), &mut column);
            }
            _ => {
                // (the count pass sized the slices from the same column)
                let merged = column(beams, grid, pencils);
                let n = r.len().min(merged.rows.len()).min(merged.values.len());
                r[..n].copy_from_slice(&merged.rows[..n]);
                v[..n].copy_from_slice(&merged.values[..n]);
            }
        },
    )?;
    Dij::from_built(grid.len(), n_spots, col_ptr, rows, values)
}

/// One column of the dij being filled: the slices the count pass sized, and
/// the entries written so far. The count pass visited exactly these voxels;
/// should they differ, the surplus is dropped rather than written out of
/// place.
struct Column<'a> {
    rows: &'a mut [u32],
    values: &'a mut [f32],
    n: usize,
    /// The pencil's share of the spot's protons.
    share: f64,
}

impl VoxelSink for Column<'_> {
    const DOSE: bool = true;
    fn voxel(&mut self, idx: usize, d: f64) {
        if let (Some(r), Some(v)) = (self.rows.get_mut(self.n), self.values.get_mut(self.n)) {
            *r = idx as u32;
            *v = (self.share * d) as f32;
        }
        self.n += 1;
    }
    fn row(&mut self, base: usize, run: RowRun) {
        let n = self.n.min(self.rows.len()).min(self.values.len());
        self.n = n + write_run(
            &mut self.rows[n..],
            &mut self.values[n..],
            base,
            self.share,
            run,
        );
    }
}

/// Writes the voxels `base + i` of a row's run and their doses per proton
/// of the spot (the pencil's `share` applied) from the start of `rows` and
/// `values`; the entries written (beyond the slices' room, none).
#[inline(always)]
fn write_run(rows: &mut [u32], values: &mut [f32], base: usize, share: f64, run: RowRun) -> usize {
    let (mut r, mut v) = (rows.iter_mut(), values.iter_mut());
    let mut n = 0;
    run.for_each(|i, d| {
        if let (Some(r), Some(v)) = (r.next(), v.next()) {
            *r = (base + i) as u32;
            *v = (share * d) as f32;
            n += 1;
        }
    });
    n
}

/// The merged column of several pencils (split spots): sorted voxel indices
/// and the dose per proton of the spot (sub-pencil weights applied), summed
/// in f64 before rounding to f32.
fn column(beams: &[PreparedBeam], grid: &Grid3, pencils: &[(usize, usize)]) -> Scratch {
    let mut entries: Vec<(usize, f64)> = Vec::new();
    for &(b, i) in pencils {
        let p = &beams[b].pencils[i];
        // the dij is per proton of the spot: the sub-pencil's share of it
        let share = p.share;
        for_each_voxel(p, &beams[b].frame, grid, 0..grid.nz(), |idx, d| {
            entries.push((idx, share * d))
        });
    }
    entries.sort_unstable_by_key(|e| e.0);
    let mut merged: Vec<(usize, f64)> = Vec::with_capacity(entries.len());
    for (i, d) in entries {
        match merged.last_mut() {
            Some(last) if last.0 == i => last.1 += d,
            _ => merged.push((i, d)),
        }
    }
    Scratch {
        rows: merged.iter().map(|e| e.0 as u32).collect(),
        values: merged.iter().map(|e| e.1 as f32).collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::grid::CtVolume;
    use crate::proton::prepare::{DoseOptions, slab_phantom};
    use crate::proton::splitting::SpotSplitting;
    use crate::proton::{ProtonBeam, ProtonPlan, RangeShifter, Spot};

    /// The plan's beams as the engine prepares them for a dij, on the CT's
    /// grid.
    fn prepared(ct: &CtVolume, plan: &ProtonPlan, options: &DoseOptions) -> Vec<PreparedBeam> {
        let machine = crate::proton::generic::generic_machine().unwrap();
        crate::Engine::new(crate::BackendChoice::Cpu)
            .unwrap()
            .prepare(ct, plan, machine, ct.grid(), options, false)
            .unwrap()
    }

    /// A beam of five spots (one of weight zero) at two energies.
    fn beam(gantry: f64, couch: f64, shifter: bool) -> ProtonBeam {
        let spots = (0..5)
            .map(|i| Spot {
                energy_mev: [80.0, 92.5][i % 2],
                x_mm: -6.0 + 3.0 * i as f64,
                y_mm: [0.0, -4.0, 3.0][i % 3],
                weight: if i == 2 { 0.0 } else { 1e9 },
            })
            .collect();
        let rs = shifter.then(|| RangeShifter::pmma(20.0, 200.0).unwrap());
        ProtonBeam::new(gantry, couch, [0.0; 3], spots, rs).unwrap()
    }

    /// The one-pass dij is the counted dij, entry for entry and bit for
    /// bit: when the reservation holds it (rows perpendicular to the beam,
    /// the general path, oblique beams, split spots, a range shifter), when
    /// it is too small (the assembly gives up and counts), and when the
    /// limit leaves no room for the reservation. The estimate covers the
    /// entries with the margin, so that the one-pass path is the one taken.
    #[test]
    fn one_pass_and_counted_dij_are_the_same() {
        let ct = slab_phantom();
        let g = ct.grid().clone();
        let hook = Hook::default();
        let plan = ProtonPlan::new(
            vec![
                beam(0.0, 0.0, false),
                beam(90.0, 0.0, true),
                beam(33.0, 20.0, false),
            ],
            1,
        )
        .unwrap();
        for splitting in [None, Some(SpotSplitting::lattice(5).unwrap())] {
            let options = DoseOptions {
                spot_splitting: splitting,
                ..DoseOptions::new().unwrap()
            };
            let beams = prepared(&ct, &plan, &options);
            let n = plan.spot_count();
            let by_spot = pencils_by_spot(&beams, n);
            let counted = pbs_dij_counted(&beams, &g, &by_spot, usize::MAX, &hook).unwrap();
            assert!(counted.nnz() > 10_000, "{}", counted.nnz());
            for (j, (c, pencils)) in counted.col_ptr().windows(2).zip(&by_spot).enumerate() {
                let entries = (c[1] - c[0]) as f64;
                let estimate = estimate_entries(&beams, pencils, &g);
                assert!(
                    entries <= RESERVE_MARGIN * estimate && estimate <= 3.0 * entries,
                    "spot {j} ({splitting:?}): {entries} entries, estimate {estimate}"
                );
            }
            let one_pass = pbs_dij(&beams, &g, n, usize::MAX, &hook).unwrap();
            assert!(one_pass == counted, "{splitting:?}");
            let overflowing = pbs_dij_reserving(&beams, &g, n, usize::MAX, &hook, 0.0).unwrap();
            assert!(overflowing == counted, "{splitting:?}");
            let tight = pbs_dij(&beams, &g, n, counted.memory_bytes(), &hook).unwrap();
            assert!(tight == counted, "{splitting:?}");
            let err = pbs_dij(&beams, &g, n, counted.memory_bytes() - 1, &hook).unwrap_err();
            assert!(err.to_string().contains("MiB"), "{err}");
        }
    }
}
