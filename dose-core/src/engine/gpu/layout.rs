//! Host mirrors of the WGSL structs. Each must match `shaders/tg43_dose.wgsl`
//! byte for byte; `tests::layouts_match_the_shader` checks sizes and offsets
//! against naga's reflection of the shader.

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes and member offsets of the host structs equal those naga computes
    /// for the WGSL structs of the same name.
    #[test]
    fn layouts_match_the_shader() {
        let module = naga::front::wgsl::parse_str(super::super::TG43_DOSE_WGSL).unwrap();
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let find = |name: &str| {
            let (handle, ty) = module
                .types
                .iter()
                .find(|(_, t)| t.name.as_deref() == Some(name))
                .unwrap();
            let naga::TypeInner::Struct { members, .. } = &ty.inner else {
                panic!("{name} is not a struct");
            };
            let offsets: Vec<(String, u32)> = members
                .iter()
                .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
                .collect();
            (layouter[handle].size, offsets)
        };
        let (size, offsets) = find("Params");
        assert_eq!(size as usize, size_of::<Tg43Params>());
        let rust = [
            ("origin", std::mem::offset_of!(Tg43Params, origin)),
            ("spacing", std::mem::offset_of!(Tg43Params, spacing)),
            ("nx", std::mem::offset_of!(Tg43Params, nx)),
            (
                "dispatch_width",
                std::mem::offset_of!(Tg43Params, dispatch_width),
            ),
            ("r_min_sq", std::mem::offset_of!(Tg43Params, r_min_sq)),
            (
                "half_intervals",
                std::mem::offset_of!(Tg43Params, half_intervals),
            ),
            ("_pad1", std::mem::offset_of!(Tg43Params, _pad1)),
        ];
        for (name, off) in rust {
            let (_, o) = offsets.iter().find(|(n, _)| n == name).unwrap();
            assert_eq!(*o as usize, off, "Params.{name}");
        }
        let (size, offsets) = find("Seed");
        assert_eq!(size as usize, size_of::<Tg43Seed>());
        assert_eq!(offsets[1].1 as usize, std::mem::offset_of!(Tg43Seed, axis));
    }

    /// The gamma kernel's Params: size and every member's offset.
    #[test]
    fn gamma_params_match_the_shader() {
        let module = naga::front::wgsl::parse_str(super::super::GAMMA_WGSL).unwrap();
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (handle, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Params"))
            .unwrap();
        let naga::TypeInner::Struct { members, .. } = &ty.inner else {
            panic!("Params is not a struct");
        };
        assert_eq!(layouter[handle].size as usize, size_of::<GammaParams>());
        // five vec4s, then 4-byte scalars, in order
        assert_eq!(members.len(), 5 + 24);
        for (n, m) in members.iter().enumerate() {
            let want = if n < 5 { 16 * n } else { 80 + 4 * (n - 5) };
            assert_eq!(m.offset as usize, want, "{:?}", m.name);
        }
        assert_eq!(std::mem::offset_of!(GammaParams, fd_mm), 64);
        assert_eq!(std::mem::offset_of!(GammaParams, dd_global), 80 + 4 * 14);
        assert_eq!(std::mem::offset_of!(GammaParams, _pad2), 80 + 4 * 23);
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
