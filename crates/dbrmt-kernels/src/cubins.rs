//! The kernels of `cuda/*.cu`, compiled by `build.rs` to sm_90a cubins and embedded in the binary.
//!
//! One `pub const` per kernel file (`cuda/poison.cu` -> [`POISON`]) and [`ALL`]. When the crate
//! was built without nvcc the consts exist but their bytes are empty, and [`cubins_built`] is false.

/// One compiled kernel file: `cuda/<stem>.cu` and its cubin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cubin {
    /// File stem of the `.cu` file (`poison`); the module cache key of [`Gpu`](crate::Gpu).
    pub stem: &'static str,
    /// The sm_90a cubin; empty when built without nvcc.
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/cubins.rs"));

/// Whether `build.rs` found nvcc and compiled the kernels. When false, every kernel launch
/// returns [`KernelError::NotBuilt`](crate::KernelError::NotBuilt).
pub fn cubins_built() -> bool {
    cfg!(dbrmt_has_cubins)
}

/// The last line of `nvcc --version` of the nvcc that compiled the kernels, if one did.
pub const NVCC_VERSION: Option<&str> = option_env!("DBRMT_NVCC_VERSION");
