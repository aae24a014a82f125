//! CPU reference backend of the proton engine.
//!
//! Forward dose: rayon over z-slices of the dose grid; each slice visits every
//! pencil in plan order and accumulates in f64, so the result does not depend
//! on the thread count. Dij: rayon over spots, one column each.

use ndarray::Array3;

use super::progress::Hook;
use crate::error::{DoseError, Result};
use crate::grid::{DoseGrid, Grid3, Volume};
use crate::proton::Dij;
use crate::proton::prepare::{PreparedBeam, count_voxels, for_each_voxel, pencils_by_spot};

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
/// Two passes over the same traversal: an exact count of each column's
/// entries (no dose evaluation), then the matrix is allocated once at its
/// final size and every column is filled in parallel straight into its own
/// slice: no per-spot temporaries, no second copy.
pub(super) fn pbs_dij(
    beams: &[PreparedBeam],
    grid: &Grid3,
    n_spots: usize,
    max_bytes: usize,
    hook: &Hook,
) -> Result<Dij> {
    Dij::check_rows(grid.len())?;
    // pencils of each spot (several when spots are split)
    let by_spot = pencils_by_spot(beams, n_spots);
    let all_k = 0..grid.nz();
    let counts: Vec<usize> = hook.par_map("dij: counting entries", &by_spot, |pencils| {
        match pencils.as_slice() {
            [(b, i)] => count_voxels(
                &beams[*b].pencils[*i],
                &beams[*b].frame,
                grid,
                all_k.clone(),
            ),
            _ => column(beams, grid, pencils).0.len(),
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
    hook.par_zip("dij: filling", &mut slices, &by_spot, |(r, v), pencils| {
        match pencils.as_slice() {
            [(b, i)] => {
                let p = &beams[*b].pencils[*i];
                let mut n = 0usize;
                for_each_voxel(p, &beams[*b].frame, grid, all_k.clone(), |idx, d| {
                    // the count pass visited exactly these voxels
                    if let (Some(rn), Some(vn)) = (r.get_mut(n), v.get_mut(n)) {
                        *rn = idx as u32;
                        *vn = (p.share * d) as f32;
                    }
                    n += 1;
                });
            }
            _ => {
                let (idx, val) = column(beams, grid, pencils);
                for ((rn, vn), (i, d)) in r.iter_mut().zip(v.iter_mut()).zip(idx.iter().zip(&val)) {
                    *rn = *i as u32;
                    *vn = *d as f32;
                }
            }
        }
    })?;
    Dij::from_parts(grid.len(), n_spots, col_ptr, rows, values)
}

/// The merged column of several pencils (split spots): sorted voxel indices
/// and summed dose per proton of the spot (sub-pencil weights applied).
fn column(
    beams: &[PreparedBeam],
    grid: &Grid3,
    pencils: &[(usize, usize)],
) -> (Vec<usize>, Vec<f64>) {
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
    let mut idx: Vec<usize> = Vec::with_capacity(entries.len());
    let mut val: Vec<f64> = Vec::with_capacity(entries.len());
    for (i, d) in entries {
        if idx.last() == Some(&i) {
            if let Some(last) = val.last_mut() {
                *last += d;
            }
        } else {
            idx.push(i);
            val.push(d);
        }
    }
    (idx, val)
}
