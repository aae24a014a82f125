//! Host side of `shaders/pbs_dose.wgsl`: the proton PBS forward dose on the
//! GPU, matching the CPU reference (`engine::proton_cpu::pbs_dose`).
//!
//! **Work split.** The beams are prepared on the CPU exactly as for the CPU
//! backend (water-equivalent depths by ray tracing, one table of
//! [`DepthNode`]s per pencil). The GPU then gathers: the dose grid is cut
//! into slabs of whole z-planes, each slab into tiles of 4 × 4 × 4 voxels
//! (one workgroup each), and every tile gets from the host the list of
//! pencils whose bounding cylinder (the largest lateral cut-off plus margins
//! around the pencil's ray, over its depth-node range) can reach it. Each
//! invocation evaluates, for its voxel and every listed pencil, the same
//! function as the CPU's `for_each_voxel`: the depth node t = (Δ − Δ0)/step,
//! amplitudes linear between nodes, widths and cut-off of the nearer node,
//! core Gaussian plus optional halo, times the pencil's protons.
//!
//! **Same voxels as the CPU.** The CPU decides in f64 which voxels a pencil
//! reaches (0 ≤ t < last, dx² + dy² ≤ cut-off² of the nearer node, and which
//! node is nearer: t − ⌊t⌋ < ½). On aligned grids many voxels sit exactly on
//! such a boundary (t − ⌊t⌋ = ½ on a 2.5 mm grid along the beam, for
//! example), where only the last bits of the f64 arithmetic decide; an f32
//! kernel cannot reproduce those bits, and one voxel at the cut-off changes
//! by 0.25 % of the pencil's peak dose. The host therefore bounds the f32
//! rounding error of t and of the lateral distance for every pencil
//! (`PbsPencil::err`, from the magnitudes of the coordinates involved, with a
//! factor 2 of margin); a pair whose f32 value lies within that bound of a
//! boundary is not summed on the GPU but deferred to the host, which
//! evaluates it in f64 with the CPU's own arithmetic ([`voxel_dose`]). Every
//! other pair is on the same side of every boundary in both precisions, so
//! the GPU and the CPU sum the same pairs. The deferred pairs are few
//! (≈ 0.1–1 % of the pairs on general geometry); on grids where whole planes
//! sit on a half-node boundary they can be most pairs, and the GPU path then
//! runs at about the CPU's speed, still exact.
//!
//! **Accumulation.** f32 with Kahan compensation on the GPU (kept across
//! pencil batches as (sum, compensation) per voxel), the deferred pairs and
//! the final sum − compensation in f64 on the host, rounded to f32 like the
//! CPU's f64 accumulator: the difference to the CPU is the f32 evaluation of
//! each term (about 1e-6 relative), not the summation.
//!
//! **Limits.** Slabs of whole z-planes (multiples of 4) within the adapter's
//! storage binding size; pencils in batches whose node tables fit one
//! binding; tile lists split further when they do not; a 2D dispatch within
//! the workgroups-per-dimension limit. A slab whose deferred pairs exceed
//! the largest buffer the adapter binds is computed on the CPU (the same
//! reference loop), never truncated.

use std::ops::Range;

use nalgebra::{Point3, Vector3};
use ndarray::Array3;
use rayon::prelude::*;
use wgpu::util::DeviceExt;

use super::bind_group;
use super::layout::{PbsBeam, PbsNode, PbsParams, PbsPencil};
use super::{GpuContext, WORKGROUP_SIZE, buffer, gpu_error, read_back, storage_dst};
use crate::error::{DoseError, Result};
use crate::geometry::BeamFrame;
use crate::grid::{DoseGrid, Grid3, Volume};
use crate::proton::kernel::{DepthNode, lateral_dose_per_proton};
use crate::proton::prepare::{Pencil, PreparedBeam};

/// Voxels per tile edge; a tile is one workgroup.
const TILE: usize = 4;
const _: () = assert!((TILE * TILE * TILE) as u32 == WORKGROUP_SIZE);

/// Unit roundoff of f32, 2⁻²⁴.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// Sizes the host tiles the work into (besides the adapter's own limits).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tiling {
    /// Voxels per slab (rounded down to whole groups of 4 planes, at least 4
    /// planes).
    pub max_slab_voxels: u64,
    /// Bytes of depth nodes per pencil batch.
    pub max_batch_node_bytes: u64,
    /// Bytes of one tile-list dispatch.
    pub max_list_bytes: u64,
    /// Deferred pairs the first buffer holds at least (it is sized for about
    /// 1 % of the pairs tested, and grows when a slab needs more).
    pub ambiguous_capacity: u64,
    /// Most deferred pairs one slab may have (besides the binding limit):
    /// beyond, the slab is halved, and a slab of 4 planes is computed on the
    /// CPU.
    pub max_ambiguous: u64,
    /// Decide half-node ties on the GPU in emulated f64 (else defer them).
    pub exact_ties: bool,
}

impl Default for Tiling {
    fn default() -> Self {
        Self {
            max_slab_voxels: 1 << 24,
            max_batch_node_bytes: u64::MAX,
            max_list_bytes: u64::MAX,
            ambiguous_capacity: 1 << 16,
            max_ambiguous: 1 << 24,
            exact_ties: true,
        }
    }
}

/// What a calculation did (for tests and diagnostics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PbsStats {
    /// Slabs of z-planes.
    pub slabs: usize,
    /// Compute dispatches.
    pub dispatches: usize,
    /// Pencil batches (node tables uploaded separately).
    pub batches: usize,
    /// Pairs (voxel, pencil) deferred to the host's f64 evaluation.
    pub deferred_pairs: u64,
    /// Slabs repeated with a larger deferred-pair buffer.
    pub retries: usize,
    /// Slabs computed on the CPU (deferred pairs beyond `max_ambiguous`).
    pub cpu_slabs: usize,
    /// Bytes of the largest tile list dispatched.
    pub largest_list_bytes: u64,
}

/// Forward dose (Gy) of the prepared beams on `grid`, on the GPU.
pub(crate) fn pbs_dose(ctx: &GpuContext, beams: &[PreparedBeam], grid: &Grid3) -> Result<DoseGrid> {
    pbs_dose_tiled(ctx, beams, grid, &Tiling::default()).map(|(dose, _)| dose)
}

/// Beam coordinates of the voxel lattice, computed exactly as the CPU's
/// `visit` computes them, and bounds on their magnitudes.
#[derive(Clone, Copy, Debug)]
pub(super) struct BeamGeometry {
    pub(super) b0: [f64; 3],
    pub(super) dbx: [f64; 3],
    pub(super) dby: [f64; 3],
    pub(super) dbz: [f64; 3],
    /// The CPU's fast path: rows perpendicular to the beam (Δ per row).
    fast: bool,
    /// Σ |terms| of each coordinate over the grid (bounds |x|, |y|, |Δ|), mm.
    magnitude: [f64; 3],
    /// Bound on the f32 error of each voxel coordinate on the GPU, mm.
    coord_err: f64,
}

impl BeamGeometry {
    pub(super) fn new(frame: &BeamFrame, g: &Grid3) -> Self {
        let (o, s) = (g.origin_mm(), g.spacing_mm());
        let b0 = frame.to_beam(&o);
        let bx = frame.to_beam(&(o + Vector3::new(s.x, 0.0, 0.0)));
        let by = frame.to_beam(&(o + Vector3::new(0.0, s.y, 0.0)));
        let bz = frame.to_beam(&(o + Vector3::new(0.0, 0.0, s.z)));
        let dbx = [bx[0] - b0[0], bx[1] - b0[1], bx[2] - b0[2]];
        let dby = [by[0] - b0[0], by[1] - b0[1], by[2] - b0[2]];
        let dbz = [bz[0] - b0[0], bz[1] - b0[1], bz[2] - b0[2]];
        let [nz, ny, nx] = g.shape();
        let top = |n: usize| n.saturating_sub(1) as f64;
        let magnitude = [0, 1, 2].map(|c| {
            b0[c].abs() + top(nx) * dbx[c].abs() + top(ny) * dby[c].abs() + top(nz) * dbz[c].abs()
        });
        let largest = magnitude.iter().copied().fold(0.0, f64::max);
        Self {
            b0,
            dbx,
            dby,
            dbz,
            fast: dbx[2].abs() < 1e-12,
            magnitude,
            // inputs rounded to f32 (2 u) and three additions (3 u), doubled;
            // plus the term the CPU's fast path drops (< 1e-12 per voxel)
            coord_err: 16.0 * U * largest + 1e-12 * nx as f64 + 1e-9,
        }
    }

    /// The GPU record; the beam's rows start at `first_row` of the row
    /// buffer.
    pub(super) fn gpu(&self, first_row: u32) -> PbsBeam {
        let v = |a: [f64; 3]| [a[0] as f32, a[1] as f32, a[2] as f32, 0.0];
        let [lo, hi] = f64_words(self.dbx[2]);
        let mut dbx = v(self.dbx);
        if self.fast {
            // the CPU evaluates Δ once per row there
            dbx[2] = 0.0;
        }
        PbsBeam {
            base: v(self.b0),
            dbx,
            dby: v(self.dby),
            dbz: v(self.dbz),
            exact: [lo, hi, first_row, u32::from(self.fast)],
        }
    }

    /// f64 bits of the CPU's Δ of every row (j, k), k-major, as `visit`
    /// computes it (`row_b[2]`).
    pub(super) fn row_deltas(&self, ny: usize, nz: usize) -> impl Iterator<Item = [u32; 2]> + '_ {
        let (b0, dby, dbz) = (self.b0, self.dby, self.dbz);
        (0..nz).flat_map(move |k| {
            (0..ny).map(move |j| {
                let (jf, kf) = (j as f64, k as f64);
                f64_words(b0[2] + jf * dby[2] + kf * dbz[2])
            })
        })
    }
}

/// The bits of `v` as (low, high) 32-bit words, as the shader reads an f64.
pub(super) fn f64_words(v: f64) -> [u32; 2] {
    let b = v.to_bits();
    [b as u32, (b >> 32) as u32]
}

/// Dose per proton (Gy) of `pencil` at voxel (k, j, i), in f64 with the
/// arithmetic of the CPU's `visit` (same operations in the same order, so the
/// same decisions at every boundary): zero where the CPU visits no voxel.
pub(super) fn voxel_dose(pencil: &Pencil, g: &BeamGeometry, k: usize, j: usize, i: usize) -> f64 {
    if pencil.nodes.len() < 2 {
        return 0.0;
    }
    let (b0, dbx, dby, dbz) = (g.b0, g.dbx, g.dby, g.dbz);
    let inv_step = 1.0 / pencil.step;
    let last = (pencil.nodes.len() - 1) as f64;
    let (jf, kf) = (j as f64, k as f64);
    let row_b = [
        b0[0] + jf * dby[0] + kf * dbz[0],
        b0[1] + jf * dby[1] + kf * dbz[1],
        b0[2] + jf * dby[2] + kf * dbz[2],
    ];
    let fi = i as f64;
    let node_at = |t: f64| {
        let n = t as usize;
        let frac = t - n as f64;
        let (n0, n1) = (&pencil.nodes[n], &pencil.nodes[n + 1]);
        let near = if frac < 0.5 { n0 } else { n1 };
        DepthNode {
            core_amplitude: n0.core_amplitude + frac * (n1.core_amplitude - n0.core_amplitude),
            halo_amplitude: n0.halo_amplitude + frac * (n1.halo_amplitude - n0.halo_amplitude),
            ..*near
        }
    };
    if g.fast {
        let delta = row_b[2];
        let t = (delta - pencil.delta0) * inv_step;
        if !(0.0..last).contains(&t) {
            return 0.0;
        }
        let node = node_at(t);
        let (cx, cy) = pencil.centre(delta);
        let (p, q, u, v) = (row_b[0] - cx, dbx[0], row_b[1] - cy, dbx[1]);
        let (dx, dy) = (p + fi * q, u + fi * v);
        if dx * dx + dy * dy <= node.cutoff_sq {
            lateral_dose_per_proton(&node, dx, dy)
        } else {
            0.0
        }
    } else {
        let delta = row_b[2] + fi * dbx[2];
        let t = (delta - pencil.delta0) * inv_step;
        if !(0.0..last).contains(&t) {
            return 0.0;
        }
        let x = row_b[0] + fi * dbx[0];
        let y = row_b[1] + fi * dbx[1];
        let (cx, cy) = pencil.centre(delta);
        let node = node_at(t);
        let (dx, dy) = (x - cx, y - cy);
        if dx * dx + dy * dy > node.cutoff_sq {
            return 0.0;
        }
        lateral_dose_per_proton(&node, dx, dy)
    }
}

/// One pencil ready for upload: its GPU record (node offset relative to its
/// batch filled in later), and the tile layers its bounding cylinder spans.
struct Job<'a> {
    beam: usize,
    pencil: &'a Pencil,
    record: PbsPencil,
    /// Axis end points (world, mm) and culling radius (mm).
    a: Point3<f64>,
    b: Point3<f64>,
    radius: f64,
    /// Global tile layers (z) the cylinder's bounding box spans.
    layers: Range<usize>,
}

/// The tile lattice of a grid: tile centres and counts.
#[derive(Clone, Copy, Debug)]
struct Lattice {
    origin: Point3<f64>,
    step: Vector3<f64>,
    counts: [usize; 3],
    /// Half the diagonal of a tile's voxel centres, mm.
    half_diagonal: f64,
}

impl Lattice {
    fn new(g: &Grid3) -> Self {
        let (o, s) = (g.origin_mm(), g.spacing_mm());
        let half = (TILE - 1) as f64 / 2.0;
        Self {
            origin: o + s * half,
            step: s * TILE as f64,
            counts: [
                g.nx().div_ceil(TILE),
                g.ny().div_ceil(TILE),
                g.nz().div_ceil(TILE),
            ],
            half_diagonal: (s * half).norm(),
        }
    }

    fn range(&self, lo: f64, hi: f64, radius: f64, axis: usize) -> Range<usize> {
        let (o, st, n) = (self.origin[axis], self.step[axis], self.counts[axis]);
        let i0 = ((lo - radius - o) / st).floor().max(0.0);
        let i1 = (((hi + radius - o) / st).ceil() + 1.0).clamp(0.0, n as f64);
        (i0.min(n as f64) as usize)..(i1 as usize)
    }

    /// Layers (z) of the tiles whose centres can lie within `radius` of the
    /// segment a–b.
    fn layers(&self, a: &Point3<f64>, b: &Point3<f64>, radius: f64) -> Range<usize> {
        self.range(a.z.min(b.z), a.z.max(b.z), radius, 2)
    }

    /// Calls `f(tz, ty, tx range)` for the tiles in `layers` whose centres
    /// lie within `radius` of the line through `a` and `b` and within the
    /// segment's bounding box grown by `radius` (the CPU's `rows`, on the
    /// tile lattice).
    fn rows(
        &self,
        a: &Point3<f64>,
        b: &Point3<f64>,
        radius: f64,
        layers: Range<usize>,
        mut f: impl FnMut(usize, usize, Range<usize>),
    ) {
        let d = b - a;
        let u = if d.norm() > 0.0 {
            d / d.norm()
        } else {
            Vector3::new(0.0, 0.0, 1.0)
        };
        let r2 = radius * radius;
        let kr = self.range(a.z.min(b.z), a.z.max(b.z), radius, 2);
        let jr = self.range(a.y.min(b.y), a.y.max(b.y), radius, 1);
        let ir = self.range(a.x.min(b.x), a.x.max(b.x), radius, 0);
        let (s, nx) = (self.step, self.counts[0]);
        let ux = u.x * s.x;
        let qa = s.x * s.x - ux * ux;
        for k in kr.start.max(layers.start)..kr.end.min(layers.end) {
            for j in jr.clone() {
                let p0 = Point3::new(
                    self.origin.x,
                    self.origin.y + j as f64 * s.y,
                    self.origin.z + k as f64 * s.z,
                );
                let w = p0 - a;
                let wu = w.dot(&u);
                let c = w.norm_squared() - wu * wu - r2;
                let bq = 2.0 * (w.x * s.x - wu * ux);
                let (i0, i1) = if qa.abs() < 1e-9 * s.x * s.x {
                    if c > 0.0 {
                        continue;
                    }
                    (0, nx)
                } else {
                    let disc = bq * bq - 4.0 * qa * c;
                    if disc < 0.0 {
                        continue;
                    }
                    let sq = disc.sqrt();
                    let lo = ((-bq - sq) / (2.0 * qa)).floor().max(0.0);
                    let hi = ((-bq + sq) / (2.0 * qa)).ceil() + 1.0;
                    if hi <= lo {
                        continue;
                    }
                    (lo.min(nx as f64) as usize, hi.min(nx as f64) as usize)
                };
                let (i0, i1) = (i0.max(ir.start), i1.min(ir.end));
                if i1 > i0 {
                    f(k, j, i0..i1);
                }
            }
        }
    }
}

/// The pencil record and culling geometry of one pencil.
fn job<'a>(
    beam: usize,
    geom: &BeamGeometry,
    frame: &BeamFrame,
    p: &'a Pencil,
    lattice: &Lattice,
) -> Job<'a> {
    let (record, distance_err) = pencil_record(beam, geom, p);
    let (a, b) = pencil_axis(frame, p);
    let radius = p.max_radius + distance_err + 1.0 + lattice.half_diagonal;
    let layers = lattice.layers(&a, &b, radius);
    Job {
        beam,
        pencil: p,
        record,
        a,
        b,
        radius,
        layers,
    }
}

/// The end points (world, mm) of a pencil's ray over its depth nodes.
fn pencil_axis(frame: &BeamFrame, p: &Pencil) -> (Point3<f64>, Point3<f64>) {
    let last_delta = p.delta0 + (p.nodes.len().max(1) - 1) as f64 * p.step;
    let axis = |d: f64| {
        let (x, y) = p.centre(d);
        frame.from_beam(x, y, d)
    };
    (axis(p.delta0), axis(last_delta))
}

/// The GPU record of a pencil of beam `beam` (protons = its weight; node
/// offset 0, filled in per batch) and the bound on the f32 error of its
/// lateral distances (mm). Needs at least two depth nodes.
pub(super) fn pencil_record(beam: usize, geom: &BeamGeometry, p: &Pencil) -> (PbsPencil, f64) {
    let last = (p.nodes.len() - 1) as f64;
    let inv_step = 1.0 / p.step;
    let [mx, my, md] = geom.magnitude;
    let e = geom.coord_err;
    // t = (Δ − Δ0)/step: Δ (e), Δ0 rounded, the subtraction, 1/step rounded
    // and the product; doubled
    let t_err =
        2.0 * ((e + 2.0 * U * (p.delta0.abs() + md)) * inv_step + 4.0 * U * (last + 1.0)) + 1e-7;
    // centre x_iso (1 + Δ/SAD) and dx = x − centre
    let centre_max =
        (p.x_iso.abs() * (1.0 + md * p.inv_sad_x)).max(p.y_iso.abs() * (1.0 + md * p.inv_sad_y));
    let centre_err = (p.x_iso.abs() * p.inv_sad_x).max(p.y_iso.abs() * p.inv_sad_y)
        * (e + 2.0 * U * md)
        + 4.0 * U * centre_max;
    let lateral_err = e + centre_err + U * (mx.max(my) + centre_max);
    // distance √(dx² + dy²): both offsets and the squares, doubled
    let distance_err = 2.0 * (1.5 * lateral_err + 2.0 * U * p.max_radius) + 1e-7;
    (
        PbsPencil {
            iso: [
                p.x_iso as f32,
                p.y_iso as f32,
                p.inv_sad_x as f32,
                p.inv_sad_y as f32,
            ],
            depth: [
                p.delta0 as f32,
                inv_step as f32,
                last as f32,
                p.weight as f32,
            ],
            err: [t_err as f32, distance_err as f32, p.max_radius as f32, 0.0],
            index: [0, beam as u32, 0, 0],
            exact: {
                let ([d0, d1], [s0, s1]) = (f64_words(p.delta0), f64_words(inv_step));
                [d0, d1, s0, s1]
            },
        },
        distance_err,
    )
}

pub(super) fn node(n: &DepthNode) -> PbsNode {
    PbsNode {
        core: [
            n.core_amplitude as f32,
            n.core_inv_2sx2 as f32,
            n.core_inv_2sy2 as f32,
            n.cutoff_sq as f32,
        ],
        halo: [
            n.halo_amplitude as f32,
            n.halo_inv_2sx2 as f32,
            n.halo_inv_2sy2 as f32,
            n.cutoff_sq.sqrt() as f32,
        ],
    }
}

/// The tile lists of the pencils `range` (batch-local indices `range.start −
/// batch_start ..`) for the slab of tile layers `layers`: tile records
/// (slab-local tile index, start, end, 0) followed by the pencil indices.
fn tile_lists(
    jobs: &[Job<'_>],
    range: Range<usize>,
    batch_start: usize,
    lattice: &Lattice,
    layers: Range<usize>,
) -> (Vec<u32>, usize) {
    let [tx, ty, _] = lattice.counts;
    let slab_tiles = tx * ty * layers.len();
    let per_pencil: Vec<Vec<u32>> = jobs[range.clone()]
        .par_iter()
        .map(|j| {
            let mut tiles = Vec::new();
            if j.layers.start >= layers.end || j.layers.end <= layers.start {
                return tiles;
            }
            lattice.rows(&j.a, &j.b, j.radius, layers.clone(), |k, jj, is| {
                let base = ((k - layers.start) * ty + jj) * tx;
                tiles.extend(is.map(|i| (base + i) as u32));
            });
            tiles
        })
        .collect();
    let mut counts = vec![0u32; slab_tiles];
    for t in per_pencil.iter().flatten() {
        counts[*t as usize] += 1;
    }
    let active: Vec<usize> = (0..slab_tiles).filter(|t| counts[*t] > 0).collect();
    let total: usize = per_pencil.iter().map(Vec::len).sum();
    let head = 4 * active.len();
    let mut lists = vec![0u32; head + total];
    // start of each active tile's pencils
    let mut cursor = vec![0u32; slab_tiles];
    let mut at = head as u32;
    for (n, t) in active.iter().enumerate() {
        lists[4 * n] = *t as u32;
        lists[4 * n + 1] = at;
        lists[4 * n + 2] = at + counts[*t];
        cursor[*t] = at;
        at += counts[*t];
    }
    for (q, tiles) in per_pencil.iter().enumerate() {
        let local = (range.start + q - batch_start) as u32;
        for t in tiles {
            let c = &mut cursor[*t as usize];
            lists[*c as usize] = local;
            *c += 1;
        }
    }
    (lists, active.len())
}

/// GPU buffers that grow on demand, and the bind group over all of them.
struct Buffers {
    params: wgpu::Buffer,
    beams: wgpu::Buffer,
    pencils: wgpu::Buffer,
    nodes: wgpu::Buffer,
    lists: wgpu::Buffer,
    dose: wgpu::Buffer,
    ambiguous: wgpu::Buffer,
    read: wgpu::Buffer,
    ambiguous_read: wgpu::Buffer,
    ambiguous_capacity: u64,
    /// f64 row Δs of every beam (a 16-byte stand-in when they do not fit a
    /// binding: ties are then deferred to the host).
    rows: wgpu::Buffer,
    bind_group: Option<wgpu::BindGroup>,
}

impl Buffers {
    fn bind(&mut self, ctx: &GpuContext) {
        let layout = ctx.pbs_dose.get_bind_group_layout(0);
        self.bind_group = Some(bind_group(
            &ctx.device,
            "pbs_dose",
            &layout,
            &[
                (0, &self.params),
                (1, &self.beams),
                (2, &self.pencils),
                (3, &self.nodes),
                (4, &self.lists),
                (5, &self.dose),
                (6, &self.ambiguous),
                (7, &self.rows),
            ],
        ));
    }

    /// Makes the tile-list buffer hold `bytes` (growing by half at least,
    /// within `cap`).
    fn grow_lists(&mut self, ctx: &GpuContext, bytes: u64, cap: u64) {
        if self.lists.size() < bytes {
            let size = bytes.max((self.lists.size() + self.lists.size() / 2).min(cap));
            self.lists = buffer(&ctx.device, "pbs lists", size, storage_dst());
            self.bind(ctx);
        }
    }

    fn grow_ambiguous(&mut self, ctx: &GpuContext, pairs: u64) {
        (self.ambiguous, self.ambiguous_read) = ambiguous_buffers(ctx, pairs);
        self.ambiguous_capacity = pairs;
        self.bind(ctx);
    }
}

/// The deferred-pair buffer for `pairs` pairs (after an 8-byte header) and
/// its read-back buffer.
fn ambiguous_buffers(ctx: &GpuContext, pairs: u64) -> (wgpu::Buffer, wgpu::Buffer) {
    (
        buffer(
            &ctx.device,
            "pbs deferred pairs",
            8 + 8 * pairs,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        ),
        buffer(
            &ctx.device,
            "pbs deferred read-back",
            8 * pairs,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        ),
    )
}

/// As [`pbs_dose`], tiled by `tiling` (besides the adapter's limits), with
/// what it did.
pub(crate) fn pbs_dose_tiled(
    ctx: &GpuContext,
    beams: &[PreparedBeam],
    grid: &Grid3,
    tiling: &Tiling,
) -> Result<(DoseGrid, PbsStats)> {
    let mut stats = PbsStats::default();
    let [nz, ny, nx] = grid.shape();
    let plane = nx * ny;
    let mut out = vec![0f32; grid.len()];
    let limits = &ctx.limits;
    let max_binding = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    if nx.max(ny).max(nz) > 1 << 24 {
        return Err(gpu_error(format!(
            "a grid of {nx} x {ny} x {nz} voxels exceeds the exact f32 voxel indices of the GPU kernel"
        )));
    }
    let lattice = Lattice::new(grid);
    let geoms: Vec<BeamGeometry> = beams
        .iter()
        .map(|b| BeamGeometry::new(&b.frame, grid))
        .collect();
    // every pencil that contributes, in plan order (as the CPU sums them)
    let mut jobs: Vec<Job<'_>> = beams
        .iter()
        .enumerate()
        .flat_map(|(n, b)| b.pencils.iter().map(move |p| (n, b, p)))
        .filter(|(_, _, p)| p.weight != 0.0 && p.nodes.len() >= 2)
        .map(|(n, b, p)| job(n, &geoms[n], &b.frame, p, &lattice))
        .collect();
    if jobs.is_empty() {
        return volume(grid, out).map(|d| (d, stats));
    }
    if jobs.len() > u32::MAX as usize {
        return Err(gpu_error(format!(
            "{} pencils exceed the GPU kernel's 32-bit pencil indices",
            jobs.len()
        )));
    }
    // pencil batches whose node tables (and records) fit one binding
    let node_size = size_of::<PbsNode>() as u64;
    let pencil_size = size_of::<PbsPencil>() as u64;
    let node_cap = max_binding.min(tiling.max_batch_node_bytes);
    let mut batches: Vec<Range<usize>> = Vec::new();
    let (mut start, mut bytes) = (0usize, 0u64);
    for (n, j) in jobs.iter_mut().enumerate() {
        let b = j.pencil.nodes.len() as u64 * node_size;
        if b > max_binding {
            return Err(gpu_error(format!(
                "one pencil's {} depth nodes ({b} bytes) exceed the adapter's storage binding limit of {max_binding} bytes",
                j.pencil.nodes.len()
            )));
        }
        if n > start && (bytes + b > node_cap || (n - start + 1) as u64 * pencil_size > max_binding)
        {
            batches.push(start..n);
            start = n;
            bytes = 0;
        }
        j.record.index[0] = (bytes / node_size) as u32;
        bytes += b;
    }
    batches.push(start..jobs.len());
    stats.batches = batches.len();
    let max_nodes = batches
        .iter()
        .map(|r| {
            jobs[r.clone()]
                .iter()
                .map(|j| j.pencil.nodes.len() as u64)
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    let max_pencils = batches.iter().map(|r| r.len() as u64).max().unwrap_or(0);

    // slabs of whole tile layers within the dose binding
    let vox_bytes = 8u64;
    let cap_voxels = (max_binding / vox_bytes).min(tiling.max_slab_voxels);
    let slab_planes = ((cap_voxels / plane as u64) as usize / TILE * TILE)
        .max(TILE)
        .min(nz.div_ceil(TILE) * TILE);
    if (slab_planes * plane) as u64 * vox_bytes > max_binding {
        return Err(gpu_error(format!(
            "{TILE} z-planes of {nx} x {ny} voxels exceed the adapter's storage binding limit of {max_binding} bytes"
        )));
    }
    // deferred pairs: a first buffer for about 1 % of the pairs the tiles
    // test (pencil cylinders' volumes in voxels), grown when a slab needs more
    let ambiguous_limit = ((max_binding - 8) / 8)
        .min(tiling.max_ambiguous)
        .min(u64::from(u32::MAX))
        .max(1);
    let tested: f64 = jobs
        .iter()
        .map(|j| {
            let r = j.radius;
            std::f64::consts::PI * r * r * ((j.b - j.a).norm() + 2.0 * r)
        })
        .sum::<f64>()
        / grid.voxel_volume_mm3();
    let per_slab = tested * slab_planes as f64 / nz as f64 / 100.0;
    let first_capacity = (per_slab as u64)
        .max(tiling.ambiguous_capacity)
        .min(ambiguous_limit);

    let device = &ctx.device;
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    // the CPU's f64 Δ of every row of every beam, for exact half-node ties
    let rows_per_beam = (ny * nz) as u64;
    let exact_ties = rows_per_beam * geoms.len() as u64 * 8 <= max_binding
        && rows_per_beam * geoms.len() as u64 <= u64::from(u32::MAX);
    let beam_records: Vec<PbsBeam> = geoms
        .iter()
        .enumerate()
        .map(|(n, g)| g.gpu(if exact_ties { (n * ny * nz) as u32 } else { 0 }))
        .collect();
    let rows: Vec<[u32; 2]> = if exact_ties {
        geoms.iter().flat_map(|g| g.row_deltas(ny, nz)).collect()
    } else {
        vec![[0, 0]; 2]
    };
    let (ambiguous, ambiguous_read) = ambiguous_buffers(ctx, first_capacity);
    let slab_voxels = (slab_planes * plane) as u64;
    let mut bufs = Buffers {
        params: buffer(
            device,
            "pbs params",
            size_of::<PbsParams>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        ),
        beams: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("pbs beams"),
            contents: bytemuck::cast_slice(&beam_records),
            usage: wgpu::BufferUsages::STORAGE,
        }),
        pencils: buffer(
            device,
            "pbs pencils",
            max_pencils * pencil_size,
            storage_dst(),
        ),
        nodes: buffer(device, "pbs nodes", max_nodes * node_size, storage_dst()),
        lists: buffer(device, "pbs lists", 1 << 16, storage_dst()),
        dose: buffer(
            device,
            "pbs dose",
            slab_voxels * vox_bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        ),
        ambiguous,
        read: buffer(
            device,
            "pbs read-back",
            slab_voxels * vox_bytes + 8,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        ),
        ambiguous_read,
        ambiguous_capacity: first_capacity,
        rows: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("pbs row deltas"),
            contents: bytemuck::cast_slice(&rows),
            usage: wgpu::BufferUsages::STORAGE,
        }),
        bind_group: None,
    };
    bufs.bind(ctx);
    let work = Work {
        jobs: &jobs,
        batches: &batches,
        lattice,
        shape: [nz, ny, nx],
        max_groups: u64::from(limits.max_compute_workgroups_per_dimension),
        max_binding,
        max_list_bytes: max_binding.min(tiling.max_list_bytes),
        exact_ties: exact_ties && tiling.exact_ties,
    };
    if batches.len() == 1 {
        work.upload(ctx, &bufs, &batches[0]);
    }

    let mut k0 = 0;
    let mut planes_now = slab_planes;
    while k0 < nz {
        let planes = planes_now.min(nz - k0);
        let (sums, n_deferred) = work.slab(ctx, &mut bufs, k0, planes, &mut stats)?;
        if n_deferred > bufs.ambiguous_capacity {
            if n_deferred <= ambiguous_limit {
                // again, with room for all of this slab's deferred pairs
                stats.retries += 1;
                bufs.grow_ambiguous(ctx, (n_deferred + n_deferred / 4).min(ambiguous_limit));
            } else if planes > TILE {
                stats.retries += 1;
                planes_now = (planes / 2).div_ceil(TILE) * TILE;
            } else {
                // beyond one binding even for one tile layer: these planes on
                // the CPU, exactly the reference
                stats.slabs += 1;
                stats.cpu_slabs += 1;
                let slab = &mut out[k0 * plane..(k0 + planes) * plane];
                cpu_slab(beams, grid, k0..k0 + planes, slab);
                k0 += planes;
            }
            continue;
        }
        stats.slabs += 1;
        let mut sums = sums;
        if n_deferred > 0 {
            let bytes = 8 * n_deferred;
            ctx.copy(
                "pbs deferred read-back",
                &[(&bufs.ambiguous, 8, &bufs.ambiguous_read, 0, bytes)],
            );
            let deferred = read_back(ctx, &bufs.ambiguous_read, bytes, |b| {
                bytemuck::cast_slice::<u8, [u32; 2]>(b).to_vec()
            })?;
            stats.deferred_pairs += n_deferred;
            // the CPU's f64 evaluation of each deferred pair
            let terms: Vec<(usize, f64)> = deferred
                .par_iter()
                .filter_map(|&[v, q]| {
                    let (v, q) = (v as usize, q as usize);
                    let j = jobs.get(q)?;
                    let (k, jj, i) = (k0 + v / plane, (v / nx) % ny, v % nx);
                    let d = voxel_dose(j.pencil, &geoms[j.beam], k, jj, i);
                    Some((v, j.pencil.weight * d))
                })
                .collect();
            for (v, d) in terms {
                if let Some(s) = sums.get_mut(v) {
                    *s += d;
                }
            }
        }
        for (o, s) in out[k0 * plane..(k0 + planes) * plane].iter_mut().zip(&sums) {
            *o = *s as f32;
        }
        k0 += planes;
    }
    if let Some(e) = pollster::block_on(oom.pop()) {
        return Err(gpu_error(format!("out of GPU memory: {e}")));
    }
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(gpu_error(format!("GPU validation error: {e}")));
    }
    volume(grid, out).map(|d| (d, stats))
}

/// What every slab shares: the pencils, their batches and the limits.
struct Work<'a, 'p> {
    jobs: &'a [Job<'p>],
    batches: &'a [Range<usize>],
    lattice: Lattice,
    /// (nz, ny, nx)
    shape: [usize; 3],
    max_groups: u64,
    max_binding: u64,
    max_list_bytes: u64,
    exact_ties: bool,
}

impl Work<'_, '_> {
    /// Writes the records and node tables of the pencils `batch`.
    fn upload(&self, ctx: &GpuContext, bufs: &Buffers, batch: &Range<usize>) {
        let jobs = &self.jobs[batch.clone()];
        let pencils: Vec<PbsPencil> = jobs.iter().map(|j| j.record).collect();
        let nodes: Vec<PbsNode> = jobs
            .iter()
            .flat_map(|j| j.pencil.nodes.iter().map(node))
            .collect();
        ctx.queue
            .write_buffer(&bufs.pencils, 0, bytemuck::cast_slice(&pencils));
        ctx.queue
            .write_buffer(&bufs.nodes, 0, bytemuck::cast_slice(&nodes));
    }

    /// Runs every batch on the slab of `planes` planes from `k0`: the summed
    /// dose per voxel (f64 of sum − compensation) and the number of deferred
    /// pairs (all of them in the buffer when within its capacity).
    fn slab(
        &self,
        ctx: &GpuContext,
        bufs: &mut Buffers,
        k0: usize,
        planes: usize,
        stats: &mut PbsStats,
    ) -> Result<(Vec<f64>, u64)> {
        let [_, ny, nx] = self.shape;
        let count = planes * nx * ny;
        let layers = (k0 / TILE)..(k0 + planes).div_ceil(TILE);
        let device = &ctx.device;
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("pbs clear"),
        });
        enc.clear_buffer(&bufs.dose, 0, None);
        enc.clear_buffer(&bufs.ambiguous, 0, Some(8));
        ctx.queue.submit([enc.finish()]);
        for batch in self.batches {
            if self.batches.len() > 1 {
                self.upload(ctx, bufs, batch);
            }
            // tile lists, halving the pencil range when one does not fit
            let mut pending = vec![batch.clone()];
            while let Some(range) = pending.pop() {
                let (lists, n_tiles) = tile_lists(
                    self.jobs,
                    range.clone(),
                    batch.start,
                    &self.lattice,
                    layers.clone(),
                );
                if n_tiles == 0 {
                    continue;
                }
                let bytes = 4 * lists.len() as u64;
                if bytes > self.max_list_bytes {
                    if range.len() == 1 {
                        return Err(gpu_error(format!(
                            "the tile list of one pencil ({bytes} bytes) exceeds the adapter's storage binding limit of {} bytes",
                            self.max_binding
                        )));
                    }
                    let mid = range.start + range.len() / 2;
                    // the first half is popped first
                    pending.push(mid..range.end);
                    pending.push(range.start..mid);
                    continue;
                }
                let groups = n_tiles as u64;
                let gx = groups.min(self.max_groups);
                let gy = groups.div_ceil(gx);
                if gy > self.max_groups {
                    return Err(gpu_error(format!(
                        "{groups} tiles exceed the adapter's {0} x {0} workgroups per dispatch",
                        self.max_groups
                    )));
                }
                bufs.grow_lists(ctx, bytes, self.max_list_bytes);
                stats.largest_list_bytes = stats.largest_list_bytes.max(bytes);
                let params = PbsParams {
                    nx: nx as u32,
                    ny: ny as u32,
                    nz: planes as u32,
                    k0: k0 as u32,
                    tiles_x: self.lattice.counts[0] as u32,
                    tiles_y: self.lattice.counts[1] as u32,
                    n_tiles: n_tiles as u32,
                    groups_x: gx as u32,
                    pencil_base: batch.start as u32,
                    ambiguous_capacity: bufs.ambiguous_capacity as u32,
                    one: 1.0,
                    exact_ties: u32::from(self.exact_ties),
                };
                ctx.queue
                    .write_buffer(&bufs.params, 0, bytemuck::bytes_of(&params));
                ctx.queue
                    .write_buffer(&bufs.lists, 0, bytemuck::cast_slice(&lists));
                if let Some(group) = &bufs.bind_group {
                    ctx.dispatch("pbs_dose", &ctx.pbs_dose, group, (gx as u32, gy as u32));
                }
                stats.dispatches += 1;
            }
        }
        let dose_bytes = count as u64 * 8;
        ctx.copy(
            "pbs read-back",
            &[
                (&bufs.dose, 0, &bufs.read, 0, dose_bytes),
                (&bufs.ambiguous, 0, &bufs.read, dose_bytes, 8),
            ],
        );
        read_back(ctx, &bufs.read, dose_bytes + 8, |bytes| {
            let (d, head) = bytes.split_at(dose_bytes as usize);
            let pairs: &[[f32; 2]] = bytemuck::cast_slice(d);
            let sums: Vec<f64> = pairs
                .iter()
                .map(|[s, c]| f64::from(*s) - f64::from(*c))
                .collect();
            let n = head
                .get(..4)
                .map_or(0, |h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]));
            (sums, u64::from(n))
        })
    }
}

/// The CPU reference loop (`engine::proton_cpu::pbs_dose`) on planes `ks`.
fn cpu_slab(beams: &[PreparedBeam], grid: &Grid3, ks: Range<usize>, out: &mut [f32]) {
    let plane = grid.nx() * grid.ny();
    let first = ks.start;
    out.par_chunks_mut(plane).enumerate().for_each_init(
        || vec![0f64; plane],
        |acc, (n, out_plane)| {
            crate::engine::proton_cpu::plane_dose(beams, grid, first + n, acc, out_plane)
        },
    );
}

fn volume(grid: &Grid3, out: Vec<f32>) -> Result<DoseGrid> {
    let [nz, ny, nx] = grid.shape();
    let data = Array3::from_shape_vec((nz, ny, nx), out).map_err(|e| DoseError::InvalidGrid {
        reason: format!("internal shape error: {e}"),
    })?;
    Volume::new(grid.clone(), data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::CtVolume;
    use crate::physics::hlut::Hlut;
    use crate::proton::prepare::DoseOptions;
    use crate::proton::prepare::for_each_voxel;
    use crate::proton::splitting::SpotSplitting;
    use crate::proton::{ProtonBeam, ProtonPlan, RangeShifter, Spot};

    fn machine() -> &'static crate::proton::ProtonMachine {
        crate::proton::generic::generic_machine().unwrap()
    }

    /// The GPU dij under tight batching (one spot per batch, a few entries
    /// per fill dispatch) equals the CPU's: same entries, values within
    /// 1e-4 of the largest; with 3 x 3 splitting, a shifter, a cardinal and
    /// an oblique beam on the half-node-aligned phantom.
    #[test]
    fn dij_batching_gives_the_cpu_dij() {
        use super::super::dij::{DijTiling, pbs_dij_tiled};
        let Some(ctx) = context() else { return };
        let ct = phantom();
        let g = ct.grid().clone();
        let p = ProtonPlan::new(
            vec![
                plan(90.0, 0.0, true).beams()[0].clone(),
                plan(20.0, 10.0, false).beams()[0].clone(),
            ],
            1,
        )
        .unwrap();
        let beams = prepared(&ct, &p, &options(Some(SpotSplitting::lattice(5).unwrap())));
        let hook = crate::engine::progress::Hook::default();
        let reference =
            crate::engine::proton_cpu::pbs_dij(&beams, &g, 4, usize::MAX, &hook).unwrap();
        let max = reference.values().iter().fold(0f32, |m, v| m.max(*v));
        assert!(max > 0.0 && reference.nnz() > 1000);
        let check = |tiling: DijTiling| {
            let (d, stats) =
                pbs_dij_tiled(&ctx, &beams, &g, 4, usize::MAX, &hook, &tiling).unwrap();
            assert_eq!(d.col_ptr(), reference.col_ptr(), "{stats:?}");
            assert!(d.row_idx() == reference.row_idx(), "{stats:?}");
            let worst = d
                .values()
                .iter()
                .zip(reference.values())
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 1e-4 * max,
                "{tiling:?}: worst {worst} of {max}; {stats:?}"
            );
            stats
        };
        let whole = check(DijTiling::default());
        assert_eq!((whole.batches, whole.fills), (1, 1));
        let largest = (0..4)
            .map(|s| reference.col_ptr()[s + 1] - reference.col_ptr()[s])
            .max()
            .unwrap();
        let small = check(DijTiling {
            max_work_words: 1,
            max_node_bytes: 1,
            max_entries: largest,
        });
        assert_eq!(small.batches, 4, "{small:?}");
        assert_eq!(small.fills, 4, "{small:?}");
        // a column larger than one output buffer is an error, not a truncation
        let e = pbs_dij_tiled(
            &ctx,
            &beams,
            &g,
            4,
            usize::MAX,
            &hook,
            &DijTiling {
                max_entries: largest - 1,
                ..DijTiling::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("dij entries"), "{e}");
        // the memory limit is checked before anything is allocated
        let e = pbs_dij_tiled(&ctx, &beams, &g, 4, 1000, &hook, &DijTiling::default()).unwrap_err();
        assert!(e.to_string().contains("above the limit"), "{e}");
    }

    /// The plan's beams as the engine prepares them for a dose (zero-weight
    /// spots skipped), on the CT's grid.
    fn prepared(ct: &CtVolume, plan: &ProtonPlan, options: &DoseOptions) -> Vec<PreparedBeam> {
        crate::Engine::new(crate::BackendChoice::Cpu)
            .unwrap()
            .prepare(ct, plan, machine(), ct.grid(), options, true)
            .unwrap()
    }

    /// A 2.5 mm water box with a bone slab, centred on the isocentre (whole
    /// planes sit half-way between depth nodes for cardinal beams).
    fn phantom() -> CtVolume {
        let shape = [12, 28, 20];
        let s = 2.5;
        let origin = [-9.5 * s, -13.5 * s, -5.5 * s];
        let grid = Grid3::new(shape, [s; 3], origin).unwrap();
        let data = Array3::from_shape_fn((shape[0], shape[1], shape[2]), |(_, j, _)| {
            if (8..11).contains(&j) { 900.0f32 } else { 0.0 }
        });
        Volume::new(grid, data).unwrap()
    }

    fn plan(gantry: f64, couch: f64, shifter: bool) -> ProtonPlan {
        let spots = vec![
            Spot {
                energy_mev: 80.0,
                x_mm: 0.0,
                y_mm: 0.0,
                weight: 1e9,
            },
            Spot {
                energy_mev: 92.5,
                x_mm: 5.0,
                y_mm: -3.0,
                weight: 4e8,
            },
        ];
        let rs = shifter.then(|| RangeShifter::pmma(20.0, 200.0).unwrap());
        ProtonPlan::new(
            vec![ProtonBeam::new(gantry, couch, [0.0; 3], spots, rs).unwrap()],
            1,
        )
        .unwrap()
    }

    fn options(splitting: Option<SpotSplitting>) -> DoseOptions {
        DoseOptions {
            hlut: Hlut::default_curve().unwrap(),
            spot_splitting: splitting,
            ..DoseOptions::new().unwrap()
        }
    }

    /// The host's per-voxel f64 evaluation (used for deferred pairs) visits
    /// exactly the voxels of the CPU's traversal, with its values: on the
    /// fast path (gantry 0), the general path with aligned planes (gantry
    /// 90) and oblique beams.
    #[test]
    fn voxel_dose_is_the_cpu_traversal() {
        let ct = phantom();
        let g = ct.grid().clone();
        let [nz, ny, nx] = g.shape();
        for (gantry, couch, shifter) in [(0.0, 0.0, false), (90.0, 0.0, true), (33.0, 20.0, false)]
        {
            let beams = prepared(
                &ct,
                &plan(gantry, couch, shifter),
                &options(Some(SpotSplitting::lattice(5).unwrap())),
            );
            let mut visited = 0;
            for beam in &beams {
                let geom = BeamGeometry::new(&beam.frame, &g);
                for p in &beam.pencils {
                    let mut cpu = vec![None; g.len()];
                    for_each_voxel(p, &beam.frame, &g, 0..nz, |v, d| cpu[v] = Some(d));
                    for k in 0..nz {
                        for j in 0..ny {
                            for i in 0..nx {
                                let v = (k * ny + j) * nx + i;
                                let d = voxel_dose(p, &geom, k, j, i);
                                match cpu[v] {
                                    Some(c) => {
                                        visited += 1;
                                        assert!(
                                            (d - c).abs() <= 1e-12 * c.abs(),
                                            "{gantry}: {d} vs {c}"
                                        );
                                    }
                                    None => assert_eq!(
                                        d, 0.0,
                                        "gantry {gantry}: voxel {v} not visited by the CPU"
                                    ),
                                }
                            }
                        }
                    }
                }
            }
            assert!(visited > 1000, "gantry {gantry}: {visited}");
        }
    }

    fn context() -> Option<GpuContext> {
        match GpuContext::new() {
            Ok(ctx) => Some(ctx),
            Err(_) if std::env::var("ISODOSE_SKIP_GPU_TESTS").as_deref() == Ok("1") => None,
            Err(e) => {
                panic!("no GPU adapter: {e} (set ISODOSE_SKIP_GPU_TESTS=1 to skip on purpose)")
            }
        }
    }

    /// Tiny xorshift generator (reproducible cases without a dependency).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn words(v: f64) -> [u32; 2] {
        f64_words(v)
    }

    fn from_words(lo: u32, hi: u32) -> f64 {
        f64::from_bits(u64::from(lo) | (u64::from(hi) << 32))
    }

    /// The shader's integer f64 arithmetic is IEEE binary64 (round to
    /// nearest even), bit for bit: sums and products of random numbers over
    /// 60 binades, cancellations, exact rounding ties, and the kernel's depth
    /// node t = (Δrow + i·Δi − Δ0)·(1/step) with its half-node bit.
    #[test]
    fn emulated_f64_is_ieee() {
        let Some(ctx) = context() else { return };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut cases: Vec<[u32; 4]> = Vec::new();
        let mut expected: Vec<(f64, f64, f64)> = Vec::new();
        let n = 4096;
        for c in 0..n {
            let any = |rng: &mut Rng| {
                let m = rng.uniform(1.0, 2.0);
                let e = (rng.next() % 61) as i32 - 30;
                let s = if rng.next() & 1 == 0 { 1.0 } else { -1.0 };
                s * m * 2f64.powi(e)
            };
            let (a, b) = match c % 4 {
                0 => (any(&mut rng), any(&mut rng)),
                // cancellation
                1 => {
                    let a = any(&mut rng);
                    (a, -a * (1.0 + rng.uniform(-1e-10, 1e-10)))
                }
                // a rounding tie: 1 ulp/2 added to an odd or even significand
                2 => {
                    let a = 1.0 + (rng.next() % 1024) as f64 * f64::EPSILON;
                    (
                        a * 2f64.powi((rng.next() % 9) as i32 - 4),
                        a.max(0.0) * 0.0
                            + f64::EPSILON / 2.0 * 2f64.powi((rng.next() % 9) as i32 - 4),
                    )
                }
                _ => (any(&mut rng), 0.0),
            };
            // the t path: rows Δ, steps of Δ along i (some on the fast path,
            // some aligned on half nodes)
            let row = (rng.next() % 200) as f64 * 1.25 - 150.0
                + if c % 3 == 0 {
                    rng.uniform(-1.0, 1.0)
                } else {
                    0.0
                };
            let di = match c % 5 {
                0 => 2.5,
                1 => -2.0,
                2 => 2.5 * 6.123e-17,
                _ => rng.uniform(-3.0, 3.0),
            };
            let step = [0.5, 0.375, 0.25, rng.uniform(0.2, 0.5)][(c / 5) % 4];
            let inv_step = 1.0 / step;
            let delta0 = -101.25
                + if c % 7 == 0 {
                    rng.uniform(-1.0, 1.0)
                } else {
                    1e-14 * rng.uniform(-1.0, 1.0)
                };
            let i = (rng.next() % 300) as u32;
            let fast = c % 6 == 0;
            let delta = if fast { row } else { row + f64::from(i) * di };
            let t = (delta - delta0) * inv_step;
            let [al, ah] = words(a);
            let [bl, bh] = words(b);
            let [rl, rh] = words(row);
            let [dl, dh] = words(di);
            let [d0l, d0h] = words(delta0);
            let [sl, sh] = words(inv_step);
            cases.push([al, ah, bl, bh]);
            cases.push([rl, rh, dl, dh]);
            cases.push([d0l, d0h, sl, sh]);
            cases.push([i, u32::from(fast), 0, 0]);
            expected.push((a + b, a * b, t));
        }
        let device = &ctx.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("pbs_dose check_f64"),
            source: wgpu::ShaderSource::Wgsl(super::super::PBS_DOSE_WGSL.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("check_f64"),
            layout: None,
            module: &module,
            entry_point: Some("check_f64"),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        let input = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("cases"),
            contents: bytemuck::cast_slice(&cases),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let bytes = (n * 32) as u64;
        let output = buffer(
            device,
            "results",
            bytes,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let read = buffer(
            device,
            "read",
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let bg = bind_group(
            device,
            "",
            &pipeline.get_bind_group_layout(0),
            &[(8, &input), (9, &output)],
        );
        let mut enc =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bg, &[]);
            pass.dispatch_workgroups((n as u32).div_ceil(WORKGROUP_SIZE), 1, 1);
        }
        enc.copy_buffer_to_buffer(&output, 0, &read, 0, bytes);
        ctx.queue.submit([enc.finish()]);
        let got: Vec<[u32; 4]> =
            read_back(&ctx, &read, bytes, |b| bytemuck::cast_slice(b).to_vec()).unwrap();
        let mut ties = 0;
        for (c, (sum, product, t)) in expected.iter().enumerate() {
            let [s0, s1, p0, p1] = got[2 * c];
            let [t0, t1, upper, _] = got[2 * c + 1];
            assert_eq!(
                from_words(s0, s1).to_bits(),
                sum.to_bits(),
                "case {c}: sum {sum:e} vs {:e}",
                from_words(s0, s1)
            );
            assert_eq!(
                from_words(p0, p1).to_bits(),
                product.to_bits(),
                "case {c}: product {product:e}"
            );
            assert_eq!(
                from_words(t0, t1).to_bits(),
                t.to_bits(),
                "case {c}: t {t} vs {}",
                from_words(t0, t1)
            );
            // the kernel asks only for positive t
            if *t > 0.0 {
                let frac = t - t.floor();
                assert_eq!(upper == 1, frac >= 0.5, "case {c}: t {t}");
                if (frac - 0.5).abs() < 1e-9 {
                    ties += 1;
                }
            }
        }
        // the cases include many t within rounding of n + 1/2
        assert!(ties > 100, "{ties}");
    }

    /// Tiny limits (slabs of 4 planes, one pencil per batch, split tile
    /// lists, a deferred-pair buffer of one pair; then no exact ties and a
    /// deferred-pair limit that sends slabs to the CPU) give the CPU's dose.
    #[test]
    fn tiling_limits_give_the_cpu_dose() {
        let Some(ctx) = context() else { return };
        let ct = phantom();
        let g = ct.grid().clone();
        let mut p = plan(90.0, 0.0, true);
        p = ProtonPlan::new(
            vec![
                p.beams()[0].clone(),
                plan(20.0, 10.0, false).beams()[0].clone(),
            ],
            1,
        )
        .unwrap();
        let beams = prepared(&ct, &p, &options(None));
        let reference =
            crate::engine::proton_cpu::pbs_dose(&beams, &g, &Default::default()).unwrap();
        let max = reference.data().iter().fold(0f32, |m, v| m.max(*v));
        assert!(max > 0.0);
        let check = |tiling: Tiling| {
            let (d, stats) = pbs_dose_tiled(&ctx, &beams, &g, &tiling).unwrap();
            let worst = d
                .data()
                .iter()
                .zip(reference.data().iter())
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 1e-4 * max,
                "{tiling:?}: worst {worst} of {max}; {stats:?}"
            );
            stats
        };
        let whole = check(Tiling::default());
        assert_eq!((whole.slabs, whole.batches, whole.cpu_slabs), (1, 1, 0));
        let small = check(Tiling {
            max_slab_voxels: 1,
            max_batch_node_bytes: 1,
            ambiguous_capacity: 1,
            ..Tiling::default()
        });
        // 12 planes in slabs of 4; 4 pencils, one per batch
        assert_eq!((small.slabs, small.batches), (3, 4), "{small:?}");
        let split = check(Tiling {
            max_list_bytes: whole.largest_list_bytes - 4,
            ..Tiling::default()
        });
        assert!(split.dispatches > whole.dispatches, "{split:?}");
        let cpu = check(Tiling {
            ambiguous_capacity: 1,
            max_ambiguous: 8,
            exact_ties: false,
            ..Tiling::default()
        });
        assert!(cpu.retries >= 1 && cpu.cpu_slabs >= 1, "{cpu:?}");
    }
}
