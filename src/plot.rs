//! PNG figures for the command-line reports (plotters, bitmap backend).
//!
//! Images follow the radiological convention: an axial slice is seen from the
//! feet, patient left (+x in LPS) on the image's right, anterior (−y) at the
//! top.

use std::error::Error;
use std::path::Path;

use contour::ContourBuilder;
use isodose::DoseGrid;
use isodose::phantom::Structure;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

type PlotResult = Result<(), Box<dyn Error>>;
/// A polyline in world mm.
type Polyline = Vec<(f64, f64)>;
/// A DVH curve: structure name, RGB colour, (dose Gy, volume %) points.
pub type DvhCurve = (String, [u8; 3], Vec<(f64, f64)>);
/// A depth-dose curve: label, colour, (depth mm, dose %) points.
pub type DepthCurve = (String, RGBColor, Vec<(f64, f64)>);

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded DejaVu Sans as plotters' "sans-serif" font (plotters
/// draws text with ab_glyph; no system fonts are needed).
pub fn register_fonts() -> PlotResult {
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| "the embedded DejaVu Sans font could not be loaded")?;
    Ok(())
}

/// A colour wash from dark blue through green and yellow to red, t in [0, 1].
fn wash(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let stops = [
        (0.0, [40, 40, 160]),
        (0.35, [30, 160, 200]),
        (0.6, [80, 200, 80]),
        (0.8, [250, 220, 40]),
        (1.0, [220, 40, 30]),
    ];
    let i = stops
        .iter()
        .rposition(|s| s.0 <= t)
        .unwrap_or(0)
        .min(stops.len() - 2);
    let (t0, c0) = stops[i];
    let (t1, c1) = stops[i + 1];
    let w = (t - t0) / (t1 - t0);
    let mix = |a: u8, b: u8| (f64::from(a) + w * (f64::from(b) - f64::from(a))).round() as u8;
    RGBColor(mix(c0[0], c1[0]), mix(c0[1], c1[1]), mix(c0[2], c1[2]))
}

/// Contour lines of `values` (row-major, `ny` rows of `nx`) at `level`, in
/// world mm for a slice with origin `(x0, y0)` and spacing `(sx, sy)`.
fn iso_lines(
    values: &[f64],
    (nx, ny): (usize, usize),
    level: f64,
    (x0, y0): (f64, f64),
    (sx, sy): (f64, f64),
) -> Result<Vec<Polyline>, Box<dyn Error>> {
    let lines = ContourBuilder::new(nx, ny, true).lines(values, &[level])?;
    // the marching-squares grid puts value (i, j) at (i + 0.5, j + 0.5)
    Ok(lines
        .iter()
        .flat_map(|l| l.geometry().0.iter())
        .map(|ls| {
            ls.0.iter()
                .map(|c| (x0 + (c.x - 0.5) * sx, y0 + (c.y - 0.5) * sy))
                .collect()
        })
        .collect())
}

/// Isodose lines: (fraction of the prescription, colour, label).
pub type IsodoseLevels<'a> = &'a [(f64, RGBColor, &'a str)];

/// Isodose levels of a brachytherapy implant (50/100/150/200 %).
pub const BRACHY_LEVELS: [(f64, RGBColor, &str); 4] = [
    (0.5, RGBColor(0, 90, 255), "50 %"),
    (1.0, RGBColor(230, 0, 0), "100 %"),
    (1.5, RGBColor(255, 140, 0), "150 %"),
    (2.0, RGBColor(90, 0, 90), "200 %"),
];

/// Isodose levels of an external-beam plan (30/50/90/95/105 %).
pub const EXTERNAL_LEVELS: [(f64, RGBColor, &str); 5] = [
    (0.3, RGBColor(0, 90, 255), "30 %"),
    (0.5, RGBColor(0, 170, 170), "50 %"),
    (0.9, RGBColor(255, 140, 0), "90 %"),
    (0.95, RGBColor(230, 0, 0), "95 %"),
    (1.05, RGBColor(90, 0, 90), "105 %"),
];

/// An axial slice of `dose` (Gy) at index `k`: colour wash from 20 % of the
/// prescription to `wash_max` × prescription, isodose `levels`, structure
/// outlines, seeds (if any) as dots. `view_mm` = ((xmin, xmax), (ymin, ymax)).
#[allow(clippy::too_many_arguments)]
pub fn axial_dose_png(
    path: &Path,
    title: &str,
    dose: &DoseGrid,
    k: usize,
    structures: &[Structure],
    seeds_xy_mm: &[(f64, f64)],
    prescription_gy: f64,
    view_mm: ((f64, f64), (f64, f64)),
    levels: IsodoseLevels<'_>,
    wash_max: f64,
) -> PlotResult {
    let g = dose.grid();
    let (nx, ny) = (g.nx(), g.ny());
    let (o, s) = (g.origin_mm(), g.spacing_mm());
    let ((xmin, xmax), (ymin, ymax)) = view_mm;
    let root = BitMapBackend::new(path, (900, 860)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot_area, legend_area) = root.split_horizontally(720);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        // y reversed: anterior (−y) at the top
        .build_cartesian_2d(xmin..xmax, ymax..ymin)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x (mm)  → patient left")
        .y_desc("y (mm)  ↓ posterior")
        .label_style(("sans-serif", 14))
        .draw()?;

    let slice = dose.data().index_axis(ndarray::Axis(0), k);
    let inside = |x: f64, y: f64| x >= xmin && x <= xmax && y >= ymin && y <= ymax;
    let mut cells = Vec::new();
    for ((j, i), v) in slice.indexed_iter() {
        let (x, y) = (o.x + i as f64 * s.x, o.y + j as f64 * s.y);
        let rel = f64::from(*v) / prescription_gy;
        if rel >= 0.2 && inside(x, y) {
            let c = wash(rel / wash_max);
            let (hx, hy) = (0.5 * s.x, 0.5 * s.y);
            cells.push(Rectangle::new(
                [(x - hx, y - hy), (x + hx, y + hy)],
                c.mix(0.55).filled(),
            ));
        }
    }
    chart.draw_series(cells)?;

    let values: Vec<f64> = slice.iter().map(|v| f64::from(*v)).collect();
    for &(f, color, label) in levels {
        let level = f * prescription_gy;
        let lines = iso_lines(&values, (nx, ny), level, (o.x, o.y), (s.x, s.y))?;
        let style = ShapeStyle::from(&color).stroke_width(2);
        let mut first = true;
        for line in lines {
            let series = chart.draw_series(LineSeries::new(line, style))?;
            if first {
                series
                    .label(format!("{label} ({level:.0} Gy)"))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
                first = false;
            }
        }
    }
    for st in structures {
        let mask = st.mask.index_axis(ndarray::Axis(0), k);
        let m: Vec<f64> = mask.iter().map(|b| if *b { 1.0 } else { 0.0 }).collect();
        let color = RGBColor(st.color[0], st.color[1], st.color[2]);
        let style = ShapeStyle::from(&color).stroke_width(2);
        let lines = iso_lines(&m, (nx, ny), 0.5, (o.x, o.y), (s.x, s.y))?;
        let mut first = true;
        for line in lines {
            let dashed = DashedLineSeries::new(line, 6, 4, style);
            let series = chart.draw_series(dashed)?;
            if first {
                series
                    .label(st.name.clone())
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
                first = false;
            }
        }
    }
    if !seeds_xy_mm.is_empty() {
        chart
            .draw_series(
                seeds_xy_mm
                    .iter()
                    .filter(|(x, y)| inside(*x, *y))
                    .map(|&(x, y)| Circle::new((x, y), 3, BLACK.filled())),
            )?
            .label("seeds in slice")
            .legend(|(x, y)| Circle::new((x + 9, y), 3, BLACK.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;

    // colour bar for the wash
    let bar = ChartBuilder::on(&legend_area)
        .margin_top(60)
        .margin_bottom(70)
        .margin_right(60)
        .caption("dose (% Rx)", ("sans-serif", 14))
        .y_label_area_size(45)
        .build_cartesian_2d(0.0..1.0, 20.0..100.0 * wash_max)?;
    let mut bar = bar;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .label_style(("sans-serif", 13))
        .draw()?;
    let top = (100.0 * wash_max).round() as i32;
    bar.draw_series((20..top).map(|p| {
        let p = f64::from(p);
        Rectangle::new(
            [(0.0, p), (1.0, p + 1.0)],
            wash(p / (100.0 * wash_max)).mix(0.55).filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}

/// Colour of a gamma value: passing values from white (0) to green (1),
/// failing ones from orange to dark red (at the search limit and beyond).
fn gamma_colour(g: f64, max_gamma: f64) -> RGBColor {
    if g <= 1.0 {
        let t = g.clamp(0.0, 1.0);
        let mix = |a: f64, b: f64| (a + t * (b - a)).round() as u8;
        RGBColor(mix(235.0, 40.0), mix(245.0, 170.0), mix(235.0, 70.0))
    } else {
        let t = ((g - 1.0) / (max_gamma - 1.0).max(1e-9)).clamp(0.0, 1.0);
        let mix = |a: f64, b: f64| (a + t * (b - a)).round() as u8;
        RGBColor(mix(255.0, 130.0), mix(150.0, 0.0), mix(40.0, 20.0))
    }
}

/// Gamma report: the axial slice through the reference maximum (γ colours
/// on grey where not evaluated, reference isodose lines at 50 and 90 %) and
/// the histogram of γ.
pub fn gamma_png(
    path: &Path,
    reference: &DoseGrid,
    result: &isodose::qa::GammaResult,
) -> PlotResult {
    let grid = reference.grid();
    let [_, ny, nx] = grid.shape();
    let (kmax, _) =
        reference
            .data()
            .indexed_iter()
            .fold(((0, 0, 0), f32::MIN), |best, (idx, &v)| {
                if v > best.1 { (idx, v) } else { best }
            });
    let k = kmax.0;
    let (o, sp) = (grid.origin_mm(), grid.spacing_mm());
    let c = result.criteria();
    let root = BitMapBackend::new(path, (1300, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(680);
    let xr = (o.x - sp.x / 2.0, o.x + (nx as f64 - 0.5) * sp.x);
    let yr = (o.y - sp.y / 2.0, o.y + (ny as f64 - 0.5) * sp.y);
    let mut chart = ChartBuilder::on(&left)
        .caption(
            format!(
                "gamma {} % / {} mm{}, z = {:.1} mm",
                c.dose_percent,
                c.dta_mm,
                if c.local { " local" } else { "" },
                o.z + k as f64 * sp.z
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        // anterior (−y) at the top
        .build_cartesian_2d(xr.0..xr.1, yr.1..yr.0)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x (mm, patient left →)")
        .y_desc("y (mm, posterior ↓)")
        .label_style(("sans-serif", 13))
        .draw()?;
    let gamma = result.gamma().data();
    chart.draw_series((0..ny).flat_map(|j| {
        (0..nx).map(move |i| {
            let g = f64::from(gamma[[k, j, i]]);
            let colour = if g.is_nan() {
                RGBColor(200, 200, 200)
            } else {
                gamma_colour(g, c.max_gamma)
            };
            let (x, y) = (o.x + i as f64 * sp.x, o.y + j as f64 * sp.y);
            Rectangle::new(
                [
                    (x - sp.x / 2.0, y - sp.y / 2.0),
                    (x + sp.x / 2.0, y + sp.y / 2.0),
                ],
                colour.filled(),
            )
        })
    }))?;
    let slice: Vec<f64> = (0..ny)
        .flat_map(|j| (0..nx).map(move |i| (j, i)))
        .map(|(j, i)| f64::from(reference.data()[[k, j, i]]))
        .collect();
    for (level, colour) in [(0.5, RGBColor(0, 90, 255)), (0.9, RGBColor(90, 0, 90))] {
        for line in iso_lines(
            &slice,
            (nx, ny),
            level * result.normalisation_gy(),
            (o.x, o.y),
            (sp.x, sp.y),
        )? {
            chart.draw_series(LineSeries::new(
                line,
                ShapeStyle::from(&colour).stroke_width(2),
            ))?;
        }
    }
    let bins = 20;
    let hist = result.histogram(bins);
    let total = result.evaluated_count().max(1) as f64;
    let top = hist
        .iter()
        .map(|&h| 100.0 * h as f64 / total)
        .fold(1.0, f64::max);
    let w = c.max_gamma / bins as f64;
    let mut hc = ChartBuilder::on(&right)
        .caption(
            format!(
                "pass rate {:.2} % ({} of {} points)",
                100.0 * result.pass_rate(),
                result.passed_count(),
                result.evaluated_count()
            ),
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..c.max_gamma, 0.0..top * 1.1)?;
    hc.configure_mesh()
        .x_desc("gamma (last bin: at or above the search limit)")
        .y_desc("points (%)")
        .label_style(("sans-serif", 13))
        .draw()?;
    hc.draw_series(hist.iter().enumerate().map(|(b, &h)| {
        let x0 = b as f64 * w;
        let colour = gamma_colour(x0 + w / 2.0, c.max_gamma);
        Rectangle::new(
            [(x0, 0.0), (x0 + w, 100.0 * h as f64 / total)],
            colour.filled(),
        )
    }))?;
    hc.draw_series(LineSeries::new(
        [(1.0, 0.0), (1.0, top * 1.1)],
        ShapeStyle::from(&BLACK).stroke_width(1),
    ))?;
    root.present()?;
    Ok(())
}

/// Cumulative DVHs: for each structure, (dose Gy, volume %) points.
pub fn dvh_png(path: &Path, title: &str, curves: &[DvhCurve], prescription_gy: f64) -> PlotResult {
    let max_dose = curves
        .iter()
        .flat_map(|c| c.2.iter().map(|p| p.0))
        .fold(prescription_gy * 1.2, f64::max);
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_dose, 0.0..105.0)?;
    chart
        .configure_mesh()
        .x_desc("dose (Gy)")
        .y_desc("volume (%)")
        .label_style(("sans-serif", 14))
        .draw()?;
    if prescription_gy > 0.0 {
        chart.draw_series(LineSeries::new(
            [(prescription_gy, 0.0), (prescription_gy, 105.0)],
            ShapeStyle::from(&BLACK.mix(0.5)).stroke_width(1),
        ))?;
    }
    let curves: Vec<DepthCurve> = curves
        .iter()
        .map(|(name, c, pts)| (name.clone(), RGBColor(c[0], c[1], c[2]), pts.clone()))
        .collect();
    draw_curves(&mut chart, &curves, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

type LineChart<'a> =
    ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Labelled 2 px lines and their legend box.
fn draw_curves(
    chart: &mut LineChart<'_>,
    curves: &[DepthCurve],
    legend: SeriesLabelPosition,
) -> PlotResult {
    for (name, color, pts) in curves {
        let style = ShapeStyle::from(color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), style))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}

/// A depth-dose plot: curves of (depth mm, dose in % of the first curve's
/// maximum or as given), with an optional shaded depth interval (the target).
pub fn depth_dose_png(
    path: &Path,
    title: &str,
    curves: &[DepthCurve],
    y_label: &str,
    shaded_mm: Option<(f64, f64)>,
) -> PlotResult {
    let max_x = curves
        .iter()
        .flat_map(|c| c.2.iter().map(|p| p.0))
        .fold(10.0, f64::max);
    let max_y = curves
        .iter()
        .flat_map(|c| c.2.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)?;
    chart
        .configure_mesh()
        .x_desc("depth (mm)")
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()?;
    if let Some((a, b)) = shaded_mm {
        chart
            .draw_series([Rectangle::new(
                [(a, 0.0), (b, max_y)],
                RGBColor(0, 150, 0).mix(0.12).filled(),
            )])?
            .label("target")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 18, y + 5)],
                    RGBColor(0, 150, 0).mix(0.3).filled(),
                )
            });
    }
    draw_curves(&mut chart, curves, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}

/// A line plot of labelled curves on axes fitted to their points (the y
/// range padded by 5 %), for commissioning reports.
pub fn line_plot_png(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[DepthCurve],
) -> PlotResult {
    let points = || curves.iter().flat_map(|c| c.2.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 >= x1 || y0 > y1 {
        return Err(format!("{title}: nothing to plot").into());
    }
    let pad = 0.05 * (y1 - y0).max(1e-9);
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()?;
    draw_curves(&mut chart, curves, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}
