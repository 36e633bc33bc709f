//! Naming one kernel entry point inside one embedded cubin.

/// One `extern "C" __global__` function of one `cuda/*.cu` file. Launchers declare theirs as
/// consts, and [`Gpu::function`](crate::Gpu::function) loads and caches it.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    /// File stem of the `.cu` file (`poison`); the module cache key.
    pub file: &'static str,
    /// That file's cubin, from [`crate::cubins`]; empty when built without nvcc.
    pub cubin: &'static [u8],
    /// The `extern "C"` function name (`poison_u32`).
    pub entry: &'static str,
}
