//! RTSTRUCT reading and rasterisation: a RayStation structure set with known
//! geometry, and property tests of the polygon fill against the shoelace area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use isodose_core::Grid3;
use isodose_dicom::rtstruct::polygon_area;
use isodose_dicom::{Contour, Roi, read_rtstruct};
use proptest::prelude::*;

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn raystation_structure_set() {
    let rois = read_rtstruct(data("aptg_sobp_RS.dcm")).unwrap();
    let summary: Vec<(i64, &str, Option<&str>, usize)> = rois
        .iter()
        .map(|r| {
            (
                r.number,
                r.name.as_str(),
                r.interpreted_type.as_deref(),
                r.contours.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (8, "Cube101010", Some("PTV"), 21),
            (12, "Slope101004", Some("PTV"), 21),
            (13, "External", Some("EXTERNAL"), 41),
            (14, "PMMA", Some("ORGAN"), 41),
            (2, "LoPo", Some("MARKER"), 1),
        ]
    );
    assert!(rois.iter().all(|r| r.color.is_some()));
    // volumes by voxel-centre sampling, on grids whose centres avoid the
    // ROI boundaries: the 100 mm cube is 1000 cm³ (2 mm grid, centres at odd
    // mm: exactly 50 voxels per side), the external box 205 × 205 × 200 mm =
    // 8405 cm³ (within 1 %: 204 mm are sampled across 205), the PMMA slab
    // 200 × 5 × 200 mm = 200 cm³ (1 mm grid: 5 voxels across its 5 mm)
    let coarse = Grid3::new([111, 111, 111], [2.0; 3], [-109.0, -109.0, -109.0]).unwrap();
    let fine = Grid3::new([201, 11, 201], [1.0; 3], [-99.5, -5.0, -99.5]).unwrap();
    let cc = |name: &str, grid: &Grid3| {
        let roi = rois.iter().find(|r| r.name == name).unwrap();
        roi.mask(grid).iter().filter(|m| **m).count() as f64 * grid.voxel_volume_mm3() / 1000.0
    };
    let (cube, external, pmma) = (
        cc("Cube101010", &coarse),
        cc("External", &coarse),
        cc("PMMA", &fine),
    );
    println!("cube {cube} cc, external {external} cc, PMMA {pmma} cc");
    assert_eq!(cube, 1000.0);
    // x and y: centres −101..101 sample 204 of the 205 mm; z: −99..99, 200 mm
    assert!(
        (external - 102.0 * 102.0 * 100.0 * 8.0 / 1000.0).abs() < 1e-6,
        "{external}"
    );
    assert!((external - 8405.0).abs() / 8405.0 < 0.01, "{external}");
    assert!((pmma - 200.0).abs() / 200.0 < 0.01, "{pmma}");
    // the point ROI has no volume
    assert_eq!(cc("LoPo", &coarse), 0.0);
    // RayStation's material overrides (PROVENANCE.md: solid water and PMMA)
    let roi = |name: &str| rois.iter().find(|r| r.name == name).unwrap();
    let external = roi("External");
    assert_eq!(external.physical_property("REL_MASS_DENSITY"), Some(1.02));
    assert_eq!(
        external.physical_property("rel_elec_density"),
        Some(0.991546)
    );
    assert_eq!(
        external.physical_property("MEAN_EXCI_ENERGY"),
        Some(70.20839)
    );
    assert_eq!(
        roi("PMMA").physical_property("REL_ELEC_DENSITY"),
        Some(1.156494)
    );
    assert_eq!(
        roi("PMMA").physical_property("MEAN_EXCI_ENERGY"),
        Some(74.0)
    );
    assert!(roi("Cube101010").physical_properties.is_empty());
}

fn square(c: [f64; 2], half: f64, z: f64) -> Vec<[f64; 3]> {
    vec![
        [c[0] - half, c[1] - half, z],
        [c[0] + half, c[1] - half, z],
        [c[0] + half, c[1] + half, z],
        [c[0] - half, c[1] + half, z],
    ]
}

#[test]
fn a_contour_inside_another_is_a_hole() {
    let roi = Roi {
        physical_properties: Vec::new(),
        number: 1,
        name: "ring".into(),
        interpreted_type: None,
        color: None,
        contours: vec![
            Contour {
                geometric_type: "CLOSED_PLANAR".into(),
                points: square([0.0, 0.0], 20.0, 0.0),
            },
            Contour {
                geometric_type: "CLOSED_PLANAR".into(),
                points: square([0.0, 0.0], 10.0, 0.0),
            },
        ],
    };
    let grid = Grid3::new([1, 200, 200], [0.25, 0.25, 1.0], [-24.875, -24.875, 0.0]).unwrap();
    let area = roi.mask(&grid).iter().filter(|m| **m).count() as f64 * 0.0625;
    assert!((area - (1600.0 - 400.0)).abs() < 1.0, "{area}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// A random star-shaped polygon filled on a 0.2 mm grid covers its
    /// shoelace area to within the pixels its perimeter touches.
    #[test]
    fn filled_area_matches_polygon_area(
        radii in prop::collection::vec(5.0f64..20.0, 5..24),
        cx in -3.0f64..3.0, cy in -3.0f64..3.0,
    ) {
        let n = radii.len();
        let points: Vec<[f64; 3]> = radii.iter().enumerate().map(|(i, r)| {
            let a = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            [cx + r * a.cos(), cy + r * a.sin(), 0.0]
        }).collect();
        let perimeter: f64 = (0..n).map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
        }).sum();
        let roi = Roi {
            physical_properties: Vec::new(),
            number: 1, name: "star".into(), interpreted_type: None, color: None,
            contours: vec![Contour { geometric_type: "CLOSED_PLANAR".into(), points: points.clone() }],
        };
        let h = 0.2;
        let grid = Grid3::new([1, 250, 250], [h, h, 1.0], [-24.9, -24.9, 0.0]).unwrap();
        let filled = roi.mask(&grid).iter().filter(|m| **m).count() as f64 * h * h;
        let exact = polygon_area(&points);
        prop_assert!((filled - exact).abs() <= perimeter * h, "filled {} exact {} perimeter {}", filled, exact, perimeter);
    }
}

#[test]
fn raystation_cube_as_a_contoured_structure() {
    // Cube101010: 21 square contours of 100 × 100 mm, 5 mm apart from z = −50
    // to 50 mm. In the slab model each plane stands for 5 mm (a CT slice), so
    // the structure is 105 mm tall: 1050 cm³, half a slice beyond each outer
    // plane (the whole-voxel mask above stops at the outer planes: 1000 cm³).
    let rois = read_rtstruct(data("aptg_sobp_RS.dcm")).unwrap();
    let cube = rois.iter().find(|r| r.name == "Cube101010").unwrap();
    let s = cube.structure(5.0).unwrap();
    let zs: Vec<f64> = s.planes().iter().map(|p| p.z_mm).collect();
    assert_eq!(zs.len(), 21);
    for (i, z) in zs.iter().enumerate() {
        assert!((z - (-50.0 + 5.0 * i as f64)).abs() < 1e-3, "{zs:?}");
    }
    assert!((s.volume_cc() - 1050.0).abs() < 1e-6, "{}", s.volume_cc());
    // the point ROI has no closed contour: a clear error, not an empty DVH
    let lopo = rois.iter().find(|r| r.name == "LoPo").unwrap();
    assert!(lopo.structure(3.0).is_err());
}
