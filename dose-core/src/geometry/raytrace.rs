//! Exact traversal of a voxel grid by a ray (Siddon, Med Phys 12:252 (1985),
//! in the incremental form of Amanatides & Woo (1987)).
//!
//! The ray visits every voxel it crosses, in order, with the exact length of
//! its chord in each: no fixed-step marching error. Voxels are the boxes
//! centred on the grid's voxel centres.

use nalgebra::{Point3, Unit, Vector3};

use crate::grid::Grid3;

/// One voxel crossed by a ray: `t_in`..`t_out` (mm along the ray from its
/// start) and the voxel's linear (C-order) index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RaySegment {
    /// Distance along the ray where it enters the voxel, mm.
    pub t_in: f64,
    /// Distance along the ray where it leaves the voxel, mm.
    pub t_out: f64,
    /// Linear index of the voxel in (z, y, x) C order.
    pub voxel: usize,
}

/// The voxels of `grid` crossed by the ray from `start` along `direction`,
/// between t = 0 and t = `t_max` (mm), in order. Empty if the ray misses.
pub fn trace_ray(
    grid: &Grid3,
    start: &Point3<f64>,
    direction: &Unit<Vector3<f64>>,
    t_max: f64,
) -> Vec<RaySegment> {
    let s = grid.spacing_mm();
    let lo = grid.origin_mm() - s * 0.5;
    let n = [grid.nx(), grid.ny(), grid.nz()];
    let d = [direction.x, direction.y, direction.z];
    let a = [start.x, start.y, start.z];
    let lo = [lo.x, lo.y, lo.z];
    let sp = [s.x, s.y, s.z];
    // slab intersection of the ray with the grid box
    let (mut t0, mut t1) = (0.0f64, t_max);
    for k in 0..3 {
        let hi = lo[k] + sp[k] * n[k] as f64;
        if d[k].abs() < 1e-15 {
            if a[k] < lo[k] || a[k] > hi {
                return Vec::new();
            }
        } else {
            let (ta, tb) = ((lo[k] - a[k]) / d[k], (hi - a[k]) / d[k]);
            t0 = t0.max(ta.min(tb));
            t1 = t1.min(ta.max(tb));
        }
    }
    if t1.is_nan() || t1 <= t0 {
        return Vec::new();
    }
    // starting voxel: the one containing the midpoint of a tiny step inside
    let t_start = t0;
    let mut idx = [0i64; 3];
    let mut step = [0i64; 3];
    let mut t_next = [f64::INFINITY; 3];
    let mut t_delta = [f64::INFINITY; 3];
    for k in 0..3 {
        let p = a[k] + d[k] * (t_start + 1e-9 * sp[k]);
        let i = ((p - lo[k]) / sp[k]).floor().clamp(0.0, (n[k] - 1) as f64);
        idx[k] = i as i64;
        if d[k] > 1e-15 {
            step[k] = 1;
            t_next[k] = (lo[k] + (i + 1.0) * sp[k] - a[k]) / d[k];
            t_delta[k] = sp[k] / d[k];
        } else if d[k] < -1e-15 {
            step[k] = -1;
            t_next[k] = (lo[k] + i * sp[k] - a[k]) / d[k];
            t_delta[k] = -sp[k] / d[k];
        }
    }
    let mut out = Vec::with_capacity(n[0] + n[1] + n[2]);
    let mut t = t_start;
    loop {
        // axis whose boundary comes first
        let k = if t_next[0] <= t_next[1] && t_next[0] <= t_next[2] {
            0
        } else if t_next[1] <= t_next[2] {
            1
        } else {
            2
        };
        let t_exit = t_next[k].min(t1);
        if t_exit > t + 1e-9 {
            let voxel = ((idx[2] as usize * n[1]) + idx[1] as usize) * n[0] + idx[0] as usize;
            out.push(RaySegment {
                t_in: t,
                t_out: t_exit,
                voxel,
            });
        }
        if t_next[k] >= t1 {
            break;
        }
        t = t_next[k];
        idx[k] += step[k];
        if idx[k] < 0 || idx[k] >= n[k] as i64 {
            break;
        }
        t_next[k] += t_delta[k];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chords_sum_to_the_path_length_inside_the_box() {
        let g = Grid3::new([7, 9, 11], [1.5, 2.0, 2.5], [-5.0, -8.0, -7.0]).unwrap();
        // box: x [-5.75, 10.75], y [-9, 9], z [-8.25, 9.25]
        let dirs = [
            [1.0, 0.0, 0.0],
            [0.3, 0.4, 0.5],
            [-0.2, 1.0, -0.7],
            [0.0, 0.0, -1.0],
        ];
        for d in dirs {
            let dir = Unit::new_normalize(Vector3::from(d));
            let start = Point3::new(1.0, 0.5, 0.2) - dir.into_inner() * 100.0;
            let segs = trace_ray(&g, &start, &dir, 1e4);
            assert!(!segs.is_empty());
            // contiguous, increasing
            for w in segs.windows(2) {
                assert!((w[0].t_out - w[1].t_in).abs() < 1e-9);
            }
            let total: f64 = segs.iter().map(|s| s.t_out - s.t_in).sum();
            let chord = segs.last().unwrap().t_out - segs[0].t_in;
            assert!((total - chord).abs() < 1e-9);
            // every segment's midpoint lies in its voxel
            for s in &segs {
                let p = start + dir.into_inner() * (0.5 * (s.t_in + s.t_out));
                let zyx = g
                    .world_to_index(&p)
                    .unwrap_or_else(|| panic!("{d:?}: midpoint {p:?} of {s:?} outside"));
                assert_eq!(g.linear_index(zyx), s.voxel, "{d:?}");
            }
        }
    }

    #[test]
    fn axis_ray_crosses_whole_voxels() {
        let g = Grid3::new([1, 1, 10], [2.0, 2.0, 2.0], [0.0, 0.0, 0.0]).unwrap();
        let dir = Unit::new_normalize(Vector3::new(1.0, 0.0, 0.0));
        let segs = trace_ray(&g, &Point3::new(-11.0, 0.0, 0.0), &dir, 1e3);
        assert_eq!(segs.len(), 10);
        assert!(segs.iter().all(|s| (s.t_out - s.t_in - 2.0).abs() < 1e-12));
        assert!((segs[0].t_in - 10.0).abs() < 1e-12);
        // a ray that misses
        assert!(trace_ray(&g, &Point3::new(-11.0, 5.0, 0.0), &dir, 1e3).is_empty());
    }
}
