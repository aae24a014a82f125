// Proton PBS dose-influence matrix (dij) on the GPU: the WGSL port of
// isodose_core::engine::proton_cpu::pbs_dij, as compressed sparse columns
// (one column per spot, rows in increasing C-order voxel index, f32 values
// in Gy per proton of the spot).
//
// This file is compiled after shaders/pbs_dose.wgsl (the host concatenates
// the two sources): it uses that kernel's structs (Params, Beam, Pencil,
// Node), bindings 0-3 and 7, and its pair function `term`, so that the dij
// evaluates exactly the forward dose's model, with the half-node and range
// ties decided with the CPU's f64 arithmetic. Pairs within f32 rounding of
// a pencil's lateral cut-off are decided with the CPU's f64 arithmetic too
// (`term(.., defer = false)` calls `cpu_inside`, which reads each pencil's
// f64 block in `rows`), so that every column holds exactly the CPU's
// entries; the values are f32 evaluations of the same model.
//
// Count then fill, one workgroup per spot of the batch:
//   dij_count: for every row (k, j) of the spot's bounding box, the voxels
//     of the candidate interval (the rows of the union of its pencils'
//     bounding cylinders) that at least one pencil reaches; per row counts
//     scanned into exclusive offsets within the column, the column total.
//   dij_fill: the same traversal again, writing each row's entries at the
//     column's start (from the host) + the row's offset, summing the
//     sub-pencils' shares (p.depth.w = the pencil's share of the spot's
//     protons). A row that finds another number of entries than counted
//     writes at most its count and raises the mismatch flag (the host then
//     refuses the matrix).
//
// Params (binding 0): nx, ny, nz of the dose grid; tiles_x = spots in this
// batch (the records of `dij_spots` and the header of `dij_work`);
// pencil_base = the batch's spot of this dispatch's first workgroup; n_tiles
// = spots in this dispatch; groups_x = workgroups per row of the 2D
// dispatch.
//
// @binding(10) storage<read> dij_spots: array<DijSpot> (this batch)
// @binding(11) storage<read_write> dij_work: array<u32>:
//   [0] mismatch flag, [1 + s] entries of spot s, then per spot its box's
//   rows (k-major): counts, then exclusive offsets within the column
// @binding(12) storage<read_write> dij_index: array<u32> (this fill batch)
// @binding(13) storage<read_write> dij_value: array<f32> (this fill batch)
//
// Structs must match dose-core/src/engine/gpu/layout.rs.

struct DijSpot {
    pencils: vec4<u32>,       // first pencil (batch), pencils, first row record (batch), 0
    rows_box: vec4<u32>,      // k0, nk, j0, nj: the rows of the bounding box
    cols: vec4<u32>,          // i0, i1 (x range of the box), column start in the fill batch, 0
    axis: vec4<f32>,          // a point of the culling cylinder's axis (mm, from the grid origin), its radius (mm)
    dir: vec4<f32>,           // the axis' unit direction (LPS), 0
    spacing: vec4<f32>,       // the grid's voxel spacing (mm), 0
}

@group(0) @binding(10) var<storage, read> dij_spots: array<DijSpot>;
@group(0) @binding(11) var<storage, read_write> dij_work: array<u32>;
@group(0) @binding(12) var<storage, read_write> dij_index: array<u32>;
@group(0) @binding(13) var<storage, read_write> dij_value: array<f32>;

// Rows a spot's box splits into per invocation: contiguous chunks, so that
// the exclusive scan is one pass over 64 partial sums.
var<workgroup> partial: array<u32, 64>;

// The voxels of row (k, j) in the box's x range that a pencil of spot `sp`
// reaches; with `write`, their linear indices and summed doses are written
// from `out` on, at most `room` of them. Returns how many there are.
fn dij_row(sp: DijSpot, k: u32, j: u32, write: bool, out: u32, room: u32) -> u32 {
    let first = sp.pencils.x;
    let count = sp.pencils.y;
    let p0 = pencils[first];
    let bm = beams[p0.index.y];
    let fj = f32(j);
    let fk = f32(k);
    // beam coordinates of the row's voxel 0 (the same three additions as
    // `beam_coordinates`, within the host's error bound of the coordinates)
    let row_b = bm.base.xyz + fj * bm.dby.xyz + fk * bm.dbz.xyz;
    // the x interval of the row inside the cylinder (as the CPU's `rows`,
    // in f32, widened by a voxel on each side: the pencils decide); a row
    // (almost) parallel to the axis keeps the box's whole x range
    let sx = sp.spacing.x;
    let w = vec3<f32>(0.0, fj * sp.spacing.y, fk * sp.spacing.z) - sp.axis.xyz;
    let u = sp.dir.xyz;
    let wu = dot(w, u);
    let c = dot(w, w) - wu * wu - sp.axis.w * sp.axis.w;
    let ux = u.x * sx;
    let qa = sx * sx - ux * ux;
    let bq = 2.0 * (w.x * sx - wu * ux);
    var lo = sp.cols.x;
    var hi = sp.cols.y;
    if (qa > 1e-6 * sx * sx) {
        let disc = bq * bq - 4.0 * qa * c;
        if (disc < 0.0) {
            return 0u;
        }
        let sq = sqrt(disc);
        let a = floor((-bq - sq) / (2.0 * qa)) - 1.0;
        let e = ceil((-bq + sq) / (2.0 * qa)) + 2.0;
        if (e <= f32(lo) || a >= f32(hi)) {
            return 0u;
        }
        lo = max(lo, u32(clamp(a, 0.0, f32(hi))));
        hi = u32(min(e, f32(hi)));
    }
    var n = 0u;
    for (var i = lo; i < hi; i = i + 1u) {
        let b = row_b + f32(i) * bm.dbx.xyz;
        var member = false;
        var d = 0.0;
        if (count == 1u) {
            let r = term(b, i, j, k, p0, true, false, write);
            member = r.status == DOSE;
            d = r.dose;
        } else {
            for (var q = 0u; q < count; q = q + 1u) {
                let r = term(b, i, j, k, pencils[first + q], true, false, write);
                if (r.status == DOSE) {
                    member = true;
                    d = d + r.dose;
                }
            }
        }
        if (member) {
            if (write && n < room) {
                dij_index[out + n] = (k * params.ny + j) * params.nx + i;
                dij_value[out + n] = d;
            }
            n = n + 1u;
        }
    }
    return n;
}

// The workgroup's spot in the batch, or the batch size past the dispatch.
fn spot_index(wg: vec3<u32>) -> u32 {
    let w = wg.y * params.groups_x + wg.x;
    if (w >= params.n_tiles) {
        return params.tiles_x;
    }
    return params.pencil_base + w;
}

@compute @workgroup_size(64, 1, 1)
fn dij_count(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let s = spot_index(wg);
    if (s >= params.tiles_x) {
        return;
    }
    let sp = dij_spots[s];
    let nj = sp.rows_box.w;
    let n_rows = sp.rows_box.y * nj;
    let chunk = (n_rows + 63u) / 64u;
    let r0 = min(li * chunk, n_rows);
    let r1 = min(r0 + chunk, n_rows);
    let base = 1u + params.tiles_x + sp.pencils.z;
    var total = 0u;
    for (var r = r0; r < r1; r = r + 1u) {
        var n = 0u;
        if (sp.pencils.y > 0u) {
            n = dij_row(sp, sp.rows_box.x + r / nj, sp.rows_box.z + r % nj, false, 0u, 0u);
        }
        dij_work[base + r] = n;
        total = total + n;
    }
    partial[li] = total;
    workgroupBarrier();
    if (li == 0u) {
        var run = 0u;
        for (var q = 0u; q < 64u; q = q + 1u) {
            let v = partial[q];
            partial[q] = run;
            run = run + v;
        }
        dij_work[1u + s] = run;
    }
    workgroupBarrier();
    var offset = partial[li];
    for (var r = r0; r < r1; r = r + 1u) {
        let n = dij_work[base + r];
        dij_work[base + r] = offset;
        offset = offset + n;
    }
}

@compute @workgroup_size(64, 1, 1)
fn dij_fill(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let s = spot_index(wg);
    if (s >= params.tiles_x) {
        return;
    }
    let sp = dij_spots[s];
    if (sp.pencils.y == 0u) {
        return;
    }
    let nj = sp.rows_box.w;
    let n_rows = sp.rows_box.y * nj;
    let column = dij_work[1u + s];
    let base = 1u + params.tiles_x + sp.pencils.z;
    for (var r = li; r < n_rows; r = r + 64u) {
        let start = dij_work[base + r];
        var end = column;
        if (r + 1u < n_rows) {
            end = dij_work[base + r + 1u];
        }
        let room = end - start;
        let n = dij_row(sp, sp.rows_box.x + r / nj, sp.rows_box.z + r % nj, true, sp.cols.z + start, room);
        if (n != room) {
            dij_work[0] = 1u;
        }
    }
}
