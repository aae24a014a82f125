//! What the GPU test files share.

use isodose_core::{BackendChoice, Engine};

/// An explicit GPU engine (lavapipe where there is no GPU). A missing
/// adapter is a failure, not a skip, unless ISODOSE_SKIP_GPU_TESTS=1 is set
/// on purpose (then `None`).
#[allow(clippy::panic)]
pub fn gpu() -> Option<Engine> {
    match Engine::new(BackendChoice::Gpu) {
        Ok(e) => Some(e),
        Err(e) if std::env::var("ISODOSE_SKIP_GPU_TESTS").as_deref() == Ok("1") => {
            eprintln!("GPU tests skipped on purpose: {e}");
            None
        }
        Err(e) => panic!(
            "no GPU adapter: {e}. Install Mesa's Vulkan driver (mesa-vulkan-drivers, libvulkan1) \
             or set ISODOSE_SKIP_GPU_TESTS=1 to skip on purpose"
        ),
    }
}
