//! Exact areas of a plane's contoured region inside the columns of a strip.
//!
//! The region of one contour plane is the set of points inside an odd number
//! of its polygons (even-odd rule). Cut at the y of every vertex (and, where
//! polygons cross, at the y of every crossing of two edges), a horizontal
//! strip holds edges that span it from bottom to top in a fixed order from
//! left to right: the region in it is the union of the trapezoids between the
//! first and second edge, the third and fourth, and so on. The area of a
//! trapezoid with sides x_L(y), x_R(y) (both linear) inside a column
//! [u, v] is
//!
//!   A = ∫ max(0, min(x_R(y), v) − max(x_L(y), u)) dy,
//!
//! whose integrand is linear between the y where a side meets u or v: the
//! trapezoid rule on those pieces is exact. So the areas of the region inside
//! the cells of any rectangular lattice, and their sum (the shoelace area of
//! the region), are exact up to rounding.

/// One non-horizontal polygon edge, its lower end first.
#[derive(Clone, Copy, Debug)]
struct Edge {
    y0: f64,
    x0: f64,
    y1: f64,
    x1: f64,
}

impl Edge {
    fn x_at(&self, y: f64) -> f64 {
        self.x0 + (y - self.y0) * (self.x1 - self.x0) / (self.y1 - self.y0)
    }
}

/// A sweep upwards in y over the edges of one plane's polygons.
#[derive(Debug)]
pub(crate) struct AreaSweep {
    /// Non-horizontal edges sorted by their lower y.
    edges: Vec<Edge>,
    /// The vertices' y, sorted and without repeats.
    vertex_ys: Vec<f64>,
    /// The first edge of `edges` not yet made active.
    next: usize,
    /// Edges that may span the current strip.
    active: Vec<usize>,
    /// Scratch: (x at the bottom, x at the top, x in the middle) per active edge.
    sides: Vec<[f64; 3]>,
}

impl AreaSweep {
    /// A sweep over `polygons` (closed implicitly, (x, y) in mm).
    pub(crate) fn new(polygons: &[Vec<[f64; 2]>]) -> Self {
        let mut edges = Vec::new();
        let mut vertex_ys = Vec::new();
        for poly in polygons {
            let n = poly.len();
            for e in 0..n {
                let (a, b) = (poly[e], poly[(e + 1) % n]);
                vertex_ys.push(a[1]);
                if a[1] == b[1] {
                    continue; // a horizontal edge bounds no strip
                }
                let (lo, hi) = if a[1] < b[1] { (a, b) } else { (b, a) };
                edges.push(Edge {
                    y0: lo[1],
                    x0: lo[0],
                    y1: hi[1],
                    x1: hi[0],
                });
            }
        }
        edges.sort_by(|a, b| a.y0.total_cmp(&b.y0));
        vertex_ys.sort_by(f64::total_cmp);
        vertex_ys.dedup();
        Self {
            edges,
            vertex_ys,
            next: 0,
            active: Vec::new(),
            sides: Vec::new(),
        }
    }

    /// Adds to `area[c]` the area (mm²) of the region inside the cell
    /// [ya, yb] × [cuts[c], cuts[c + 1]], for every column c of the sorted
    /// `cuts` (which must span the polygons' x extent for the strip's area
    /// to be complete). Strips must come in increasing y, without overlap.
    pub(crate) fn add_strip(&mut self, ya: f64, yb: f64, cuts: &[f64], area: &mut [f64]) {
        let first = self.vertex_ys.partition_point(|&y| y <= ya);
        let last = self.vertex_ys.partition_point(|&y| y < yb);
        let mut a = ya;
        for i in first..=last {
            let b = if i < last { self.vertex_ys[i] } else { yb };
            if b > a {
                self.interval(a, b, cuts, area);
            }
            a = b;
        }
    }

    /// One interval [a, b] with no vertex strictly inside.
    fn interval(&mut self, a: f64, b: f64, cuts: &[f64], area: &mut [f64]) {
        let mid = 0.5 * (a + b);
        while self.next < self.edges.len() && self.edges[self.next].y0 < mid {
            self.active.push(self.next);
            self.next += 1;
        }
        let edges = &self.edges;
        self.active.retain(|&e| edges[e].y1 > mid);
        self.sides.clear();
        self.sides.extend(self.active.iter().map(|&e| {
            let edge = &edges[e];
            [edge.x_at(a), edge.x_at(b), edge.x_at(mid)]
        }));
        self.sides.sort_by(|p, q| p[2].total_cmp(&q[2]));
        // edges of different polygons (or of a self-intersecting one) may
        // cross inside the interval: the order from left to right then
        // differs between its bottom and its top; cut it at every crossing
        let crossed = self
            .sides
            .windows(2)
            .any(|w| w[0][0] > w[1][0] || w[0][1] > w[1][1]);
        if !crossed {
            trapezoids(a, b, &self.sides, cuts, area);
            return;
        }
        let mut ys = vec![a, b];
        for (i, p) in self.sides.iter().enumerate() {
            for q in &self.sides[i + 1..] {
                let (da, db) = (p[0] - q[0], p[1] - q[1]);
                if da * db < 0.0 {
                    ys.push(a + (b - a) * da / (da - db));
                }
            }
        }
        ys.sort_by(f64::total_cmp);
        ys.dedup();
        let mut piece = Vec::with_capacity(self.active.len());
        for w in ys.windows(2) {
            let (c, d) = (w[0], w[1]);
            if d <= c {
                continue;
            }
            let m = 0.5 * (c + d);
            piece.clear();
            piece.extend(self.active.iter().map(|&e| {
                let edge = &edges[e];
                [edge.x_at(c), edge.x_at(d), edge.x_at(m)]
            }));
            piece.sort_by(|p, q| p[2].total_cmp(&q[2]));
            trapezoids(c, d, &piece, cuts, area);
        }
    }
}

/// The trapezoids between sides 0 and 1, 2 and 3, … (sorted left to right,
/// each [x at a, x at b, x in the middle]) over [a, b], added column by
/// column to `area`.
fn trapezoids(a: f64, b: f64, sides: &[[f64; 3]], cuts: &[f64], area: &mut [f64]) {
    let columns = cuts.len().saturating_sub(1).min(area.len());
    for pair in sides.chunks_exact(2) {
        let (l, r) = ((pair[0][0], pair[0][1]), (pair[1][0], pair[1][1]));
        let lo = l.0.min(l.1);
        let hi = r.0.max(r.1);
        let mut c = cuts.partition_point(|&x| x <= lo).saturating_sub(1);
        while c < columns && cuts[c] < hi {
            area[c] += trapezoid_in_column(a, b, l, r, cuts[c], cuts[c + 1]);
            c += 1;
        }
    }
}

/// Area of {(x, y): a ≤ y ≤ b, max(x_L(y), u) ≤ x ≤ min(x_R(y), v)}, with
/// x_L and x_R linear from `l` = (x_L(a), x_L(b)) and `r` likewise.
fn trapezoid_in_column(a: f64, b: f64, l: (f64, f64), r: (f64, f64), u: f64, v: f64) -> f64 {
    let width = |t: f64| {
        let xl = l.0 + t * (l.1 - l.0);
        let xr = r.0 + t * (r.1 - r.0);
        (xr.min(v) - xl.max(u)).max(0.0)
    };
    // breakpoints (as fractions t of [a, b]) where a side meets u or v
    let mut ts = [0.0; 6];
    let mut n = 0;
    ts[n] = 0.0;
    n += 1;
    for (x0, x1) in [l, r] {
        for c in [u, v] {
            if (x0 - c) * (x1 - c) < 0.0 {
                ts[n] = (c - x0) / (x1 - x0);
                n += 1;
            }
        }
    }
    ts[n] = 1.0;
    n += 1;
    let ts = &mut ts[..n];
    ts.sort_by(f64::total_cmp);
    let integral: f64 = ts
        .windows(2)
        .map(|w| (w[1] - w[0]) * 0.5 * (width(w[0]) + width(w[1])))
        .sum();
    integral * (b - a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(polygons: &[Vec<[f64; 2]>], strips: &[f64], cuts: &[f64]) -> Vec<f64> {
        let mut sweep = AreaSweep::new(polygons);
        let mut area = vec![0.0; cuts.len() - 1];
        for w in strips.windows(2) {
            sweep.add_strip(w[0], w[1], cuts, &mut area);
        }
        area
    }

    #[test]
    fn a_triangle_split_into_columns_has_its_exact_areas() {
        // right triangle (0,0), (4,0), (0,4): in column [u, v] the area is
        // ∫_u^v (4 − x) dx
        let tri = vec![vec![[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]];
        let cuts = [-1.0, 0.5, 1.7, 3.0, 5.0];
        let strips = [0.0, 0.3, 1.1, 2.5, 4.0];
        let area = total(&tri, &strips, &cuts);
        let exact = |u: f64, v: f64| {
            let (u, v) = (u.clamp(0.0, 4.0), v.clamp(0.0, 4.0));
            4.0 * (v - u) - 0.5 * (v * v - u * u)
        };
        for c in 0..4 {
            let want = exact(cuts[c], cuts[c + 1]);
            assert!((area[c] - want).abs() < 1e-12, "{c}: {} vs {want}", area[c]);
        }
        assert!((area.iter().sum::<f64>() - 8.0).abs() < 1e-12);
    }

    #[test]
    fn a_cell_the_hypotenuse_cuts_has_its_closed_form() {
        // the triangle x, y ≥ 0, x + y ≤ 4 in the cell [2, 3] × [1.5, 2.5]:
        // ∫ over y of clamp(4 − y − 2, 0, 1) = ∫_1.5^2 (2 − y) dy = 0.125
        let tri = vec![vec![[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]];
        let area = total(&tri, &[1.5, 2.5], &[2.0, 3.0]);
        assert!((area[0] - 0.125).abs() < 1e-12, "{}", area[0]);
        // a cell wholly inside
        let area = total(&tri, &[1.0, 2.0], &[1.0, 2.0]);
        assert!((area[0] - 1.0).abs() < 1e-12, "{}", area[0]);
    }

    #[test]
    fn holes_and_overlapping_polygons_follow_the_even_odd_rule() {
        let square = |cx: f64, cy: f64, h: f64| {
            vec![
                [cx - h, cy - h],
                [cx + h, cy - h],
                [cx + h, cy + h],
                [cx - h, cy + h],
            ]
        };
        let cuts = [-20.0, -3.3, 0.1, 4.7, 20.0];
        let strips = [-20.0, -7.1, -0.2, 2.9, 8.8, 20.0];
        // a 20 mm square with a 10 mm hole
        let a = total(
            &[square(0.3, -0.2, 10.0), square(0.3, -0.2, 5.0)],
            &strips,
            &cuts,
        );
        assert!((a.iter().sum::<f64>() - 300.0).abs() < 1e-9);
        // two overlapping 10 mm squares rotated 45° against each other: the
        // even-odd region is their union less the overlap twice
        let diamond: Vec<[f64; 2]> = [[0.0, -7.0], [7.0, 0.0], [0.0, 7.0], [-7.0, 0.0]].to_vec();
        let sq = square(0.0, 0.0, 5.0);
        let a = total(&[sq.clone(), diamond.clone()], &strips, &cuts);
        // overlap: the square less its four corners outside the diamond
        // (|x| + |y| > 7: right triangles with legs 3), area 100 − 4·4.5 = 82
        let want = 100.0 + 98.0 - 2.0 * 82.0;
        assert!((a.iter().sum::<f64>() - want).abs() < 1e-9, "{a:?}");
    }
}
