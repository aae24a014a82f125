//! Host mirrors of the WGSL structs. Each must match its shader
//! (`shaders/tg43_dose.wgsl`, `shaders/gamma.wgsl`, `shaders/pbs_dose.wgsl`)
//! byte for byte; the tests below check sizes and offsets against naga's
//! reflection of the shaders.

use bytemuck::{Pod, Zeroable};

/// Must match `struct Params` in shaders/tg43_dose.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Tg43Params {
    pub origin: [f32; 4],
    pub spacing: [f32; 4],
    pub nx: u32,
    pub ny: u32,
    pub nz: u32,
    pub n_seeds: u32,
    pub n_r: u32,
    pub n_q: u32,
    pub halves: u32,
    pub dispatch_width: u32,
    pub r_min_sq: f32,
    pub scale: f32,
    pub fine_step: f32,
    pub fine_extent: f32,
    pub coarse_step: f32,
    pub half_intervals: f32,
    pub _pad0: f32,
    pub _pad1: f32,
}

/// Must match `struct Seed` in shaders/tg43_dose.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Tg43Seed {
    pub position: [f32; 4],
    pub axis: [f32; 4],
}

/// Must match `struct Params` in shaders/gamma.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct GammaParams {
    pub ref_origin: [f32; 4],
    pub ref_spacing: [f32; 4],
    pub eval_origin: [f32; 4],
    pub eval_inv_spacing: [f32; 4],
    pub fd_mm: [f32; 4],
    pub nx: u32,
    pub ny: u32,
    pub nz: u32,
    pub dispatch_width: u32,
    pub enx: u32,
    pub eny: u32,
    pub enz: u32,
    pub ek0: u32,
    pub n_offsets: u32,
    pub local: u32,
    pub refine_levels: u32,
    pub refine_moves: u32,
    pub gn_iterations: u32,
    pub gn_halvings: u32,
    pub dd_global: f32,
    pub dose_fraction: f32,
    pub cutoff: f32,
    pub inv_dta2: f32,
    pub max_g2: f32,
    pub lattice_step: f32,
    pub max_gamma: f32,
    pub _pad0: f32,
    pub _pad1: f32,
    pub _pad2: f32,
}

/// Must match `struct Params` in shaders/pbs_dose.wgsl: the slab and the
/// batch of one dispatch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PbsParams {
    pub nx: u32,
    pub ny: u32,
    /// Planes in this slab.
    pub nz: u32,
    /// z index of the slab's first plane.
    pub k0: u32,
    pub tiles_x: u32,
    pub tiles_y: u32,
    /// Tile records (workgroups) of this dispatch.
    pub n_tiles: u32,
    /// Workgroups per row of the 2D dispatch.
    pub groups_x: u32,
    /// Plan-wide index of the batch's first pencil.
    pub pencil_base: u32,
    /// Pairs the ambiguous-pair buffer holds.
    pub ambiguous_capacity: u32,
    /// 1.0 (a value the shader compiler cannot fold; see the shader).
    pub one: f32,
    /// 1: half-node ties decided in emulated f64 (the row buffer is bound);
    /// 0: deferred to the host.
    pub exact_ties: u32,
}

/// Must match `struct Beam` in shaders/pbs_dose.wgsl: beam coordinates
/// (x, y, Δ; mm) of voxel (0, 0, 0) and their change per voxel index.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PbsBeam {
    pub base: [f32; 4],
    pub dbx: [f32; 4],
    pub dby: [f32; 4],
    pub dbz: [f32; 4],
    /// f64 bits (low, high words) of the CPU's Δ step along i, index of the
    /// beam's first row in the row buffer, 1 on the CPU's fast path.
    pub exact: [u32; 4],
}

/// Must match `struct Pencil` in shaders/pbs_dose.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PbsPencil {
    /// x_iso, y_iso (mm), 1/SAD_x, 1/SAD_y (1/mm).
    pub iso: [f32; 4],
    /// Δ0 (mm), 1/step (1/mm), last node index, protons.
    pub depth: [f32; 4],
    /// Error bound of t, error bound of lateral distances (mm), largest
    /// cut-off radius (mm), 0.
    pub err: [f32; 4],
    /// First node in the batch's node buffer, beam index, first word of the
    /// pencil's f64 block in the row buffer (dij kernels only; else 0), 0.
    pub index: [u32; 4],
    /// f64 bits (low, high words) of Δ0 and of 1/step.
    pub exact: [u32; 4],
}

/// Must match `struct Node` in shaders/pbs_dose.wgsl: one
/// [`crate::proton::kernel::DepthNode`] in f32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PbsNode {
    /// Core amplitude (Gy per proton), 1/2σx², 1/2σy² (1/mm²), cut-off² (mm²).
    pub core: [f32; 4],
    /// Halo amplitude (Gy per proton), 1/2σhx², 1/2σhy² (1/mm²), cut-off (mm).
    pub halo: [f32; 4],
}

/// Must match `struct Params` in shaders/dvh_histogram.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct DvhParams {
    /// Samples in this dispatch.
    pub samples: u32,
    /// Bins of the histogram.
    pub bins: u32,
    /// Workgroups per row of the 2D dispatch.
    pub groups_x: u32,
    pub _pad: u32,
    /// Bin width, Gy.
    pub bin_width: f32,
    /// Fixed-point units per mm³.
    pub scale: f32,
    pub _pad1: f32,
    pub _pad2: f32,
}

/// Must match `struct DijSpot` in shaders/pbs_dij.wgsl: one spot (dij
/// column) of a batch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct DijSpot {
    /// First pencil in the batch's pencil buffer, pencils, first row record
    /// of the spot's box in the batch's work buffer, 0.
    pub pencils: [u32; 4],
    /// k0, nk, j0, nj: the rows (z, y) of the spot's bounding box.
    pub rows_box: [u32; 4],
    /// i0, i1: the x range of the box; the column's first entry in the fill
    /// batch's output; 0.
    pub cols: [u32; 4],
    /// A point of the culling cylinder's axis (mm, relative to the grid
    /// origin) and its radius (mm).
    pub axis: [f32; 4],
    /// Unit direction of the axis (LPS), 0.
    pub dir: [f32; 4],
    /// Voxel spacing of the grid (mm), 0.
    pub spacing: [f32; 4],
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// Size and (member name, offset) list of the WGSL struct `name` of
    /// `source`, as naga lays it out.
    fn struct_layout(source: &str, name: &str) -> (usize, Vec<(String, usize)>) {
        let module = naga::front::wgsl::parse_str(source).unwrap();
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (handle, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap();
        let naga::TypeInner::Struct { members, .. } = &ty.inner else {
            panic!("{name} is not a struct");
        };
        let offsets = members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
            .collect();
        (layouter[handle].size as usize, offsets)
    }

    /// The WGSL struct `name` has the host struct's `size` and exactly its
    /// members `rust` (name, offset), in order.
    fn assert_mirrors(source: &str, name: &str, size: usize, rust: &[(&str, usize)]) {
        let (wgsl_size, offsets) = struct_layout(source, name);
        assert_eq!(wgsl_size, size, "size of {name}");
        assert_eq!(offsets.len(), rust.len(), "members of {name}");
        for ((n, o), (wn, wo)) in rust.iter().zip(&offsets) {
            assert_eq!((n, o), (&wn.as_str(), wo), "{name}.{n}");
        }
    }

    /// Sizes and member offsets of the host structs equal those naga computes
    /// for the WGSL structs of the same name.
    #[test]
    fn layouts_match_the_shader() {
        let (size, offsets) = struct_layout(super::super::TG43_DOSE_WGSL, "Params");
        assert_eq!(size, size_of::<Tg43Params>());
        let rust = [
            ("origin", offset_of!(Tg43Params, origin)),
            ("spacing", offset_of!(Tg43Params, spacing)),
            ("nx", offset_of!(Tg43Params, nx)),
            ("dispatch_width", offset_of!(Tg43Params, dispatch_width)),
            ("r_min_sq", offset_of!(Tg43Params, r_min_sq)),
            ("half_intervals", offset_of!(Tg43Params, half_intervals)),
            ("_pad1", offset_of!(Tg43Params, _pad1)),
        ];
        for (name, off) in rust {
            let (_, o) = offsets.iter().find(|(n, _)| n == name).unwrap();
            assert_eq!(*o, off, "Params.{name}");
        }
        let (size, offsets) = struct_layout(super::super::TG43_DOSE_WGSL, "Seed");
        assert_eq!(size, size_of::<Tg43Seed>());
        assert_eq!(offsets[1].1, offset_of!(Tg43Seed, axis));
    }

    /// The gamma kernel's Params: size and every member's offset.
    #[test]
    fn gamma_params_match_the_shader() {
        // (the continuous kernel is compiled after gamma.wgsl: one struct)
        let (size, offsets) = struct_layout(super::super::GAMMA_WGSL, "Params");
        assert_eq!(size, size_of::<GammaParams>());
        // five vec4s, then 4-byte scalars, in order
        assert_eq!(offsets.len(), 5 + 24);
        for (n, (name, offset)) in offsets.iter().enumerate() {
            let want = if n < 5 { 16 * n } else { 80 + 4 * (n - 5) };
            assert_eq!(*offset, want, "{name}");
        }
        assert_eq!(offset_of!(GammaParams, fd_mm), 64);
        assert_eq!(offset_of!(GammaParams, dd_global), 80 + 4 * 14);
        assert_eq!(offset_of!(GammaParams, _pad2), 80 + 4 * 23);
    }

    /// The PBS kernel's structs: sizes and every member's offset.
    #[test]
    fn pbs_structs_match_the_shader() {
        let src = super::super::PBS_DOSE_WGSL;
        assert_mirrors(
            src,
            "Params",
            size_of::<PbsParams>(),
            &[
                ("nx", offset_of!(PbsParams, nx)),
                ("ny", offset_of!(PbsParams, ny)),
                ("nz", offset_of!(PbsParams, nz)),
                ("k0", offset_of!(PbsParams, k0)),
                ("tiles_x", offset_of!(PbsParams, tiles_x)),
                ("tiles_y", offset_of!(PbsParams, tiles_y)),
                ("n_tiles", offset_of!(PbsParams, n_tiles)),
                ("groups_x", offset_of!(PbsParams, groups_x)),
                ("pencil_base", offset_of!(PbsParams, pencil_base)),
                (
                    "ambiguous_capacity",
                    offset_of!(PbsParams, ambiguous_capacity),
                ),
                ("one", offset_of!(PbsParams, one)),
                ("exact_ties", offset_of!(PbsParams, exact_ties)),
            ],
        );
        assert_mirrors(
            src,
            "Beam",
            size_of::<PbsBeam>(),
            &[
                ("base", offset_of!(PbsBeam, base)),
                ("dbx", offset_of!(PbsBeam, dbx)),
                ("dby", offset_of!(PbsBeam, dby)),
                ("dbz", offset_of!(PbsBeam, dbz)),
                ("exact", offset_of!(PbsBeam, exact)),
            ],
        );
        assert_mirrors(
            src,
            "Pencil",
            size_of::<PbsPencil>(),
            &[
                ("iso", offset_of!(PbsPencil, iso)),
                ("depth", offset_of!(PbsPencil, depth)),
                ("err", offset_of!(PbsPencil, err)),
                ("index", offset_of!(PbsPencil, index)),
                ("exact", offset_of!(PbsPencil, exact)),
            ],
        );
        assert_mirrors(
            src,
            "Node",
            size_of::<PbsNode>(),
            &[
                ("core", offset_of!(PbsNode, core)),
                ("halo", offset_of!(PbsNode, halo)),
            ],
        );
        // the ambiguous pairs start 8 bytes in (the host clears that header)
        let (_, offsets) = struct_layout(src, "Ambiguous");
        assert_eq!(offsets[2], ("pairs".to_owned(), 8));
    }

    /// The DVH kernel's parameters.
    #[test]
    fn dvh_params_match_the_shader() {
        assert_mirrors(
            super::super::DVH_HISTOGRAM_WGSL,
            "Params",
            size_of::<DvhParams>(),
            &[
                ("samples", offset_of!(DvhParams, samples)),
                ("bins", offset_of!(DvhParams, bins)),
                ("groups_x", offset_of!(DvhParams, groups_x)),
                ("_pad", offset_of!(DvhParams, _pad)),
                ("bin_width", offset_of!(DvhParams, bin_width)),
                ("scale", offset_of!(DvhParams, scale)),
                ("_pad1", offset_of!(DvhParams, _pad1)),
                ("_pad2", offset_of!(DvhParams, _pad2)),
            ],
        );
    }

    /// The dij kernel's spot record (its module is pbs_dose.wgsl followed by
    /// pbs_dij.wgsl).
    #[test]
    fn dij_spot_matches_the_shader() {
        assert_mirrors(
            super::super::PBS_DIJ_WGSL,
            "DijSpot",
            size_of::<DijSpot>(),
            &[
                ("pencils", offset_of!(DijSpot, pencils)),
                ("rows_box", offset_of!(DijSpot, rows_box)),
                ("cols", offset_of!(DijSpot, cols)),
                ("axis", offset_of!(DijSpot, axis)),
                ("dir", offset_of!(DijSpot, dir)),
                ("spacing", offset_of!(DijSpot, spacing)),
            ],
        );
    }

    /// Every shader parses and validates (a broken shader fails here, in CI).
    #[test]
    fn shaders_validate_with_naga() {
        for (name, src) in super::super::SHADERS {
            let module = naga::front::wgsl::parse_str(src)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }
}
