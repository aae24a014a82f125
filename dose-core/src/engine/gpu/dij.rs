//! Host side of `shaders/pbs_dij.wgsl`: the proton dose-influence matrix on
//! the GPU, as the CPU reference builds it (`engine::proton_cpu::pbs_dij`):
//! compressed sparse columns, one per spot, rows in increasing C-order voxel
//! index, f32 values in Gy per proton of the spot.
//!
//! **Work split.** The beams are prepared on the CPU (ray tracing, depth
//! nodes), as for every backend. Each spot is one workgroup: the host gives
//! it its pencils (one, or the sub-pencils of a split spot, each carrying
//! its share of the spot's protons), the bounding box of the rows its
//! pencils can reach and a culling cylinder around them; the kernel walks
//! the candidate voxels of every row and evaluates the forward kernel's pair
//! function (`term` of `pbs_dose.wgsl`: the same model, half-node and range
//! ties decided with the CPU's f64 arithmetic).
//!
//! **Count, then fill.** A first pass (`dij_count`) counts each column's
//! entries row by row and scans the row counts into offsets; the host reads
//! the column totals, checks the memory limit before allocating anything,
//! allocates the final arrays once, and a second pass (`dij_fill`) writes
//! every row's entries at its offset. The output is read back in batches of
//! at most [`DijTiling::max_entries`] entries straight into the final arrays
//! (no second copy of the matrix on the host).
//!
//! **Which entries.** Exactly the CPU's. Every decision that selects a
//! voxel (depth-node range, nearer node, lateral cut-off) is taken in f32
//! where the f32 value is farther than its error bound from the boundary,
//! and with the CPU's own f64 operations, emulated in integer arithmetic,
//! within that bound: the pencil's f64 block (its ray, the beam's voxel
//! lattice, the cut-off² of every node) travels in the `rows` binding. The
//! values are f32 evaluations of the same model (about 1e-6 relative).
//!
//! **Limits.** Batches of spots whose depth nodes, pencil and spot records
//! and per-row work fit one storage binding; fill batches within the output
//! cap; 2D dispatches within the workgroups-per-dimension limit. A column
//! that alone exceeds the output cap, or a grid whose f64 row depths do not
//! fit a binding, is an error (the `Auto` backend then computes the dij on
//! the CPU).

use std::ops::Range;

use nalgebra::{Point3, Vector3};
use wgpu::util::DeviceExt;

use super::bind_group;
use super::layout::{DijSpot, PbsBeam, PbsNode, PbsParams, PbsPencil};
use super::pbs::{BeamGeometry, f64_words, node, pencil_record};
use super::{GpuContext, buffer, dispatch_grid, gpu_error, read_back, storage_dst};
use crate::engine::progress::Hook;
use crate::error::Result;
use crate::grid::Grid3;
use crate::proton::Dij;
use crate::proton::prepare::{Pencil, PreparedBeam, pencils_by_spot};

/// Sizes the host batches the work into (besides the adapter's limits).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DijTiling {
    /// 32-bit words of per-row work (row counts and offsets) of one batch.
    pub max_work_words: u64,
    /// Bytes of depth nodes of one batch.
    pub max_node_bytes: u64,
    /// Entries of one fill dispatch (its output and read-back buffers hold
    /// this many row indices and values).
    pub max_entries: u64,
}

impl Default for DijTiling {
    fn default() -> Self {
        Self {
            max_work_words: 1 << 24,
            max_node_bytes: 1 << 28,
            max_entries: 1 << 23,
        }
    }
}

/// What a calculation did (for tests and diagnostics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DijStats {
    /// Batches of spots (pencils and node tables uploaded separately).
    pub batches: usize,
    /// Fill dispatches (output read back separately).
    pub fills: usize,
    /// Candidate rows of all spots' boxes.
    pub rows: u64,
}

/// The dij of the prepared beams on `grid`, `n_spots` columns, on the GPU.
/// Refuses (before allocating the matrix) when it would need more than
/// `max_bytes`.
pub(crate) fn pbs_dij(
    ctx: &GpuContext,
    beams: &[PreparedBeam],
    grid: &Grid3,
    n_spots: usize,
    max_bytes: usize,
    hook: &Hook,
) -> Result<Dij> {
    pbs_dij_tiled(
        ctx,
        beams,
        grid,
        n_spots,
        max_bytes,
        hook,
        &DijTiling::default(),
    )
    .map(|(dij, _)| dij)
}

/// One spot (dij column) ready for upload.
struct SpotJob<'a> {
    /// (beam, pencil, record)
    pencils: Vec<(usize, &'a Pencil, PbsPencil)>,
    record: DijSpot,
    /// Rows (z, y) of the bounding box.
    rows: u64,
    node_bytes: u64,
    /// f64 words of its pencils' blocks.
    exact_words: u64,
}

/// The spot's record and pencils: the union of its pencils' culling
/// cylinders as one cylinder around the mean axis (the offset of each
/// pencil's ray from the mean ray is affine in Δ, so its largest value over
/// the rays' depth range is at one end), and the box of rows it spans.
fn spot_job<'a>(
    beams: &'a [PreparedBeam],
    geoms: &[BeamGeometry],
    grid: &Grid3,
    pencils: &[(usize, usize)],
) -> SpotJob<'a> {
    let empty = SpotJob {
        pencils: Vec::new(),
        record: DijSpot::zeroed(grid),
        rows: 0,
        node_bytes: 0,
        exact_words: 0,
    };
    let list: Vec<(usize, &Pencil)> = pencils
        .iter()
        .map(|&(b, i)| (b, &beams[b].pencils[i]))
        .filter(|(_, p)| p.nodes.len() >= 2)
        .collect();
    let Some(&(beam, _)) = list.first() else {
        return empty;
    };
    let frame = &beams[beam].frame;
    let (d_lo, d_hi) = list
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |acc, (_, p)| {
            let last = p.delta0 + (p.nodes.len() - 1) as f64 * p.step;
            (acc.0.min(p.delta0), acc.1.max(last))
        });
    let n = list.len() as f64;
    let mean_axis = |d: f64| {
        let c = list
            .iter()
            .map(|(_, p)| p.centre(d))
            .fold((0.0, 0.0), |a, c| (a.0 + c.0, a.1 + c.1));
        frame.from_beam(c.0 / n, c.1 / n, d)
    };
    let (a, b) = (mean_axis(d_lo), mean_axis(d_hi));
    let mut radius: f64 = 0.0;
    let mut records = Vec::with_capacity(list.len());
    let mut node_bytes = 0u64;
    let mut exact_words = 0u64;
    for (b_idx, p) in &list {
        let (mut record, distance_err) = pencil_record(*b_idx, &geoms[*b_idx], p);
        // the dij is per proton of the spot: the pencil's share of it
        record.depth[3] = p.share as f32;
        let at = |d: f64| {
            let (x, y) = p.centre(d);
            frame.from_beam(x, y, d)
        };
        let offset = (at(d_lo) - mean_axis(d_lo))
            .norm()
            .max((at(d_hi) - mean_axis(d_hi)).norm());
        radius = radius.max(p.max_radius + distance_err + 1.0 + offset);
        node_bytes += p.nodes.len() as u64 * size_of::<PbsNode>() as u64;
        exact_words += (BLOCK_HEAD + p.nodes.len()) as u64;
        records.push((*b_idx, *p, record));
    }
    let (o, s) = (grid.origin_mm(), grid.spacing_mm());
    let [nz, ny, nx] = grid.shape();
    let index_range = |lo: f64, hi: f64, origin: f64, sp: f64, n: usize| {
        let i0 = ((lo - radius - origin) / sp).floor().clamp(0.0, n as f64) as usize;
        let i1 = (((hi + radius - origin) / sp).ceil() + 1.0).clamp(0.0, n as f64) as usize;
        (i0, i1.max(i0))
    };
    let (k0, k1) = index_range(a.z.min(b.z), a.z.max(b.z), o.z, s.z, nz);
    let (j0, j1) = index_range(a.y.min(b.y), a.y.max(b.y), o.y, s.y, ny);
    let (i0, i1) = index_range(a.x.min(b.x), a.x.max(b.x), o.x, s.x, nx);
    let d = b - a;
    let u = if d.norm() > 0.0 {
        d / d.norm()
    } else {
        Vector3::new(0.0, 0.0, 1.0)
    };
    let rel: Vector3<f64> = a - Point3::from(o.coords);
    let mut record = DijSpot::zeroed(grid);
    record.pencils = [0, list.len() as u32, 0, 0];
    record.rows_box = [k0 as u32, (k1 - k0) as u32, j0 as u32, (j1 - j0) as u32];
    record.cols = [i0 as u32, i1 as u32, 0, 0];
    record.axis = [rel.x as f32, rel.y as f32, rel.z as f32, radius as f32];
    record.dir = [u.x as f32, u.y as f32, u.z as f32, 0.0];
    SpotJob {
        pencils: records,
        record,
        rows: ((k1 - k0) * (j1 - j0)) as u64,
        node_bytes,
        exact_words,
    }
}

impl DijSpot {
    fn zeroed(grid: &Grid3) -> Self {
        let s = grid.spacing_mm();
        Self {
            pencils: [0; 4],
            rows_box: [0; 4],
            cols: [0; 4],
            axis: [0.0; 4],
            dir: [0.0, 0.0, 1.0, 0.0],
            spacing: [s.x as f32, s.y as f32, s.z as f32, 0.0],
        }
    }
}

/// A batch of spots: their range, and their records with batch-local
/// pencil, node and row offsets.
struct Batch {
    spots: Range<usize>,
    records: Vec<DijSpot>,
    pencils: Vec<PbsPencil>,
    nodes: Vec<PbsNode>,
    /// The f64 words the shader's `cpu_inside` reads: the CPU's row Δs of
    /// every beam, then one block per pencil of the batch.
    exact: Vec<[u32; 2]>,
    work_words: u64,
}

/// f64 words of a pencil's block (before its nodes' cut-offs).
const BLOCK_HEAD: usize = 12;

fn batch(
    jobs: &[SpotJob<'_>],
    spots: Range<usize>,
    geoms: &[BeamGeometry],
    row_deltas: &[[u32; 2]],
) -> Batch {
    let mut records = Vec::with_capacity(spots.len());
    let mut pencils = Vec::new();
    let mut nodes = Vec::new();
    let mut exact = row_deltas.to_vec();
    let mut rows = 0u64;
    for job in &jobs[spots.clone()] {
        let mut r = job.record;
        r.pencils[0] = pencils.len() as u32;
        r.pencils[2] = rows as u32;
        rows += job.rows;
        for (beam, p, rec) in &job.pencils {
            let mut rec = *rec;
            rec.index[0] = nodes.len() as u32;
            rec.index[2] = exact.len() as u32;
            let g = &geoms[*beam];
            exact.extend(
                [
                    p.x_iso,
                    p.y_iso,
                    p.inv_sad_x,
                    p.inv_sad_y,
                    g.b0[0],
                    g.b0[1],
                    g.dbx[0],
                    g.dbx[1],
                    g.dby[0],
                    g.dby[1],
                    g.dbz[0],
                    g.dbz[1],
                ]
                .map(f64_words),
            );
            exact.extend(p.nodes.iter().map(|n| f64_words(n.cutoff_sq)));
            nodes.extend(p.nodes.iter().map(node));
            pencils.push(rec);
        }
        records.push(r);
    }
    Batch {
        work_words: 1 + spots.len() as u64 + rows,
        spots,
        records,
        pencils,
        nodes,
        exact,
    }
}

/// GPU buffers of one batch and the bind group over them.
struct BatchBuffers {
    spots: wgpu::Buffer,
    work: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// As [`pbs_dij`], batched by `tiling` (besides the adapter's limits), with
/// what it did.
pub(crate) fn pbs_dij_tiled(
    ctx: &GpuContext,
    beams: &[PreparedBeam],
    grid: &Grid3,
    n_spots: usize,
    max_bytes: usize,
    hook: &Hook,
    tiling: &DijTiling,
) -> Result<(Dij, DijStats)> {
    let mut stats = DijStats::default();
    let [nz, ny, nx] = grid.shape();
    Dij::check_rows(grid.len())?;
    if nx.max(ny).max(nz) > 1 << 24 {
        return Err(gpu_error(format!(
            "a grid of {nx} x {ny} x {nz} voxels exceeds the exact f32 voxel indices of the GPU kernel"
        )));
    }
    let limits = &ctx.limits;
    let max_binding = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    let max_groups = u64::from(limits.max_compute_workgroups_per_dimension);
    let geoms: Vec<BeamGeometry> = beams
        .iter()
        .map(|b| BeamGeometry::new(&b.frame, grid))
        .collect();
    let rows_per_beam = (ny * nz) as u64;
    if rows_per_beam * geoms.len() as u64 * 8 > max_binding {
        return Err(gpu_error(format!(
            "the f64 row depths of {} beams on {ny} x {nz} rows exceed the adapter's storage binding limit of {max_binding} bytes",
            geoms.len()
        )));
    }
    // pencils of each spot (several when spots are split)
    let by_spot = pencils_by_spot(beams, n_spots);
    let jobs: Vec<SpotJob<'_>> = {
        use rayon::prelude::*;
        by_spot
            .par_iter()
            .map(|pencils| spot_job(beams, &geoms, grid, pencils))
            .collect()
    };
    stats.rows = jobs.iter().map(|j| j.rows).sum();
    // batches of spots within the bindings
    let work_cap = (max_binding / 4)
        .min(tiling.max_work_words)
        .min(u64::from(u32::MAX));
    let node_cap = max_binding.min(tiling.max_node_bytes);
    let spot_cap = (max_binding / size_of::<DijSpot>() as u64).min(max_groups * max_groups);
    let pencil_cap = max_binding / size_of::<PbsPencil>() as u64;
    // f64 words: the row Δs, then the pencils' blocks (8 bytes each)
    let row_words = rows_per_beam * geoms.len() as u64;
    let exact_cap = (max_binding / 8).min(u64::from(u32::MAX));
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let mut start = 0usize;
    let (mut words, mut nodes, mut pencils, mut exact) = (1u64, 0u64, 0u64, row_words);
    for (n, j) in jobs.iter().enumerate() {
        let (w, b, p, x) = (
            1 + j.rows,
            j.node_bytes,
            j.pencils.len() as u64,
            j.exact_words,
        );
        // one spot must fit the adapter's bindings; the tiling's own caps
        // only cut batches
        if 2 + w > max_binding / 4 || b > max_binding || p > pencil_cap || row_words + x > exact_cap
        {
            return Err(gpu_error(format!(
                "spot {n} needs {} rows of work and {b} bytes of depth nodes, beyond the adapter's storage binding limit of {max_binding} bytes",
                j.rows
            )));
        }
        if n > start
            && (words + w > work_cap
                || nodes + b > node_cap
                || pencils + p > pencil_cap
                || exact + x > exact_cap
                || (n - start) as u64 >= spot_cap)
        {
            ranges.push(start..n);
            start = n;
            (words, nodes, pencils, exact) = (1, 0, 0, row_words);
        }
        words += w;
        nodes += b;
        pencils += p;
        exact += x;
    }
    if n_spots > 0 {
        ranges.push(start..n_spots);
    }
    stats.batches = ranges.len();

    let device = &ctx.device;
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let beam_records: Vec<PbsBeam> = geoms
        .iter()
        .enumerate()
        .map(|(n, g)| g.gpu((n * ny * nz) as u32))
        .collect();
    let row_deltas: Vec<[u32; 2]> = geoms.iter().flat_map(|g| g.row_deltas(ny, nz)).collect();
    let beams_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("dij beams"),
        contents: bytemuck::cast_slice(&beam_records),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let params_buf = buffer(
        device,
        "dij params",
        size_of::<PbsParams>() as u64,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    );
    // output entries per fill: two arrays within a binding each, their
    // read-back (both, plus the mismatch flag) within one buffer
    let entries_cap = (max_binding / 4)
        .min(limits.max_buffer_size.saturating_sub(16) / 8)
        .min(tiling.max_entries)
        .max(1);
    let out_index = buffer(
        device,
        "dij row indices",
        4 * entries_cap,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    );
    let out_value = buffer(
        device,
        "dij values",
        4 * entries_cap,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    );
    let largest_batch = ranges.iter().map(|r| r.len() as u64).max().unwrap_or(0);
    let read = buffer(
        device,
        "dij read-back",
        (8 * entries_cap + 4).max(4 * (1 + largest_batch)),
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    );
    let params = |tiles_x: usize, first: usize, count: usize| {
        let (gx, _) = dispatch_grid(count as u64, max_groups);
        PbsParams {
            nx: nx as u32,
            ny: ny as u32,
            nz: nz as u32,
            k0: 0,
            tiles_x: tiles_x as u32,
            tiles_y: 0,
            n_tiles: count as u32,
            groups_x: gx as u32,
            pencil_base: first as u32,
            ambiguous_capacity: 0,
            one: 1.0,
            exact_ties: 1,
        }
    };
    let dispatch = |pipeline: &wgpu::ComputePipeline, bufs: &BatchBuffers, p: &PbsParams| {
        ctx.queue
            .write_buffer(&params_buf, 0, bytemuck::bytes_of(p));
        let (gx, gy) = dispatch_grid(u64::from(p.n_tiles), max_groups);
        ctx.dispatch(
            "pbs_dij",
            pipeline,
            &bufs.bind_group,
            (gx as u32, gy as u32),
        );
    };
    // uploads a batch and counts its columns (row offsets left in `work`)
    let count = |b: &Batch,
                 pipeline_layout: &wgpu::BindGroupLayout,
                 fill_layout: &wgpu::BindGroupLayout|
     -> Result<(BatchBuffers, wgpu::BindGroup, Vec<u32>)> {
        let spots = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dij spots"),
            contents: bytemuck::cast_slice(&b.records),
            usage: storage_dst(),
        });
        let pencils = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dij pencils"),
            contents: bytemuck::cast_slice(&nonempty(&b.pencils)),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let nodes = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dij nodes"),
            contents: bytemuck::cast_slice(&nonempty(&b.nodes)),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let rows_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("dij f64 words"),
            contents: bytemuck::cast_slice(&b.exact),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let work = buffer(
            device,
            "dij work",
            4 * b.work_words,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        );
        // both entry points use every binding (the count pass reaches the
        // output arrays' stores statically)
        let all = [
            (0, &params_buf),
            (1, &beams_buf),
            (2, &pencils),
            (3, &nodes),
            (7, &rows_buf),
            (10, &spots),
            (11, &work),
            (12, &out_index),
            (13, &out_value),
        ];
        let count_group = bind_group(device, "dij_count", pipeline_layout, &all);
        let fill_group = bind_group(device, "dij_fill", fill_layout, &all);
        let n = b.spots.len();
        let bufs = BatchBuffers {
            spots,
            work,
            bind_group: count_group,
        };
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("dij clear"),
        });
        enc.clear_buffer(&bufs.work, 0, Some(4));
        ctx.queue.submit([enc.finish()]);
        dispatch(&ctx.dij_count, &bufs, &params(n, 0, n));
        let bytes = 4 * (1 + n as u64);
        ctx.copy("dij counts", &[(&bufs.work, 0, &read, 0, bytes)]);
        let counts = read_back(ctx, &read, bytes, |b| {
            bytemuck::cast_slice::<u8, u32>(b)[1..].to_vec()
        })?;
        Ok((bufs, fill_group, counts))
    };
    let count_layout = ctx.dij_count.get_bind_group_layout(0);
    let fill_layout = ctx.dij_fill.get_bind_group_layout(0);
    let total_spots = n_spots as u64;
    // pass 1: column counts
    let mut counts: Vec<u64> = Vec::with_capacity(n_spots);
    // (one batch stays on the GPU between the passes; several are uploaded
    // and counted again, and must give the same counts)
    let mut kept: Option<(Batch, BatchBuffers, wgpu::BindGroup)> = None;
    for r in &ranges {
        let b = batch(&jobs, r.clone(), &geoms, &row_deltas);
        let (bufs, fill_group, c) = count(&b, &count_layout, &fill_layout)?;
        counts.extend(c.iter().map(|v| u64::from(*v)));
        hook.report("dij: counting entries", r.end as u64, total_spots)?;
        if ranges.len() == 1 {
            kept = Some((b, bufs, fill_group));
        }
    }
    let nnz: u64 = counts.iter().sum();
    Dij::check_size(nnz as usize, n_spots, max_bytes)?;
    if let Some((s, c)) = counts.iter().enumerate().find(|(_, c)| **c > entries_cap) {
        return Err(gpu_error(format!(
            "spot {s} has {c} dij entries, beyond the {entries_cap} of one GPU output buffer"
        )));
    }
    let mut col_ptr = Vec::with_capacity(n_spots + 1);
    col_ptr.push(0u64);
    for c in &counts {
        col_ptr.push(col_ptr[col_ptr.len() - 1] + c);
    }
    let mut rows = vec![0u32; nnz as usize];
    let mut values = vec![0f32; nnz as usize];
    // pass 2: fill, batch by batch (counted again when there are several)
    for r in &ranges {
        let (mut b, bufs, fill_group) = match kept.take() {
            Some(k) => k,
            None => {
                let b = batch(&jobs, r.clone(), &geoms, &row_deltas);
                let (bufs, fill_group, again) = count(&b, &count_layout, &fill_layout)?;
                if again
                    .iter()
                    .zip(&counts[r.clone()])
                    .any(|(a, c)| u64::from(*a) != *c)
                {
                    return Err(gpu_error(
                        "the GPU dij's second count of a batch differs from its first",
                    ));
                }
                (b, bufs, fill_group)
            }
        };
        let fill = BatchBuffers {
            spots: bufs.spots,
            work: bufs.work,
            bind_group: fill_group,
        };
        let mut first = b.spots.start;
        while first < b.spots.end {
            // the spots whose entries fit one output buffer
            let base = col_ptr[first];
            let mut last = first + 1;
            while last < b.spots.end && col_ptr[last + 1] - base <= entries_cap {
                last += 1;
            }
            let local = first - b.spots.start..last - b.spots.start;
            for (r, start) in b.records[local.clone()]
                .iter_mut()
                .zip(&col_ptr[first..last])
            {
                r.cols[2] = (start - base) as u32;
            }
            ctx.queue.write_buffer(
                &fill.spots,
                (local.start * size_of::<DijSpot>()) as u64,
                bytemuck::cast_slice(&b.records[local.clone()]),
            );
            dispatch(
                &ctx.dij_fill,
                &fill,
                &params(b.spots.len(), local.start, local.len()),
            );
            stats.fills += 1;
            let n = col_ptr[last] - base;
            let flag = (&fill.work, 0, &read, 8 * n, 4);
            if n > 0 {
                ctx.copy(
                    "dij read-back",
                    &[
                        (&out_index, 0, &read, 0, 4 * n),
                        (&out_value, 0, &read, 4 * n, 4 * n),
                        flag,
                    ],
                );
            } else {
                ctx.copy("dij read-back", &[flag]);
            }
            let (lo, hi) = (base as usize, (base + n) as usize);
            let mismatch = read_back(ctx, &read, 8 * n + 4, |bytes| {
                let (idx, rest) = bytes.split_at(4 * n as usize);
                let (val, flag) = rest.split_at(4 * n as usize);
                rows[lo..hi].copy_from_slice(bytemuck::cast_slice(idx));
                values[lo..hi].copy_from_slice(bytemuck::cast_slice(val));
                flag != [0, 0, 0, 0]
            })?;
            if mismatch {
                return Err(gpu_error(
                    "the GPU dij's fill pass found other entries than its count pass",
                ));
            }
            hook.report("dij: filling", last as u64, total_spots)?;
            first = last;
        }
    }
    if let Some(e) = pollster::block_on(oom.pop()) {
        return Err(gpu_error(format!("out of GPU memory: {e}")));
    }
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(gpu_error(format!("GPU validation error: {e}")));
    }
    Dij::from_parts(grid.len(), n_spots, col_ptr, rows, values).map(|d| (d, stats))
}

/// `v`, or one zeroed element when it is empty (bindings are never empty).
fn nonempty<T: bytemuck::Pod + bytemuck::Zeroable>(v: &[T]) -> Vec<T> {
    if v.is_empty() {
        vec![T::zeroed()]
    } else {
        v.to_vec()
    }
}
