//! Naming one kernel entry point inside one embedded cubin.

use crate::cubins::Cubin;

/// One `extern "C" __global__` function of one `cuda/*.cu` file. Launchers declare theirs as
/// consts (`Kernel::new(cubins::POISON, "poison_u32")`), and [`Gpu::function`](crate::Gpu::function) loads and
/// caches it. The launcher's Rust name is the entry point's name.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    /// The `.cu` file's cubin, from [`crate::cubins`] (its stem names the file).
    pub cubin: Cubin,
    /// The `extern "C"` function name (`poison_u32`).
    pub entry: &'static str,
}

impl Kernel {
    pub const fn new(cubin: Cubin, entry: &'static str) -> Kernel {
        Kernel { cubin, entry }
    }

    /// File stem of the `.cu` file (`poison`).
    pub const fn file(&self) -> &'static str {
        self.cubin.stem
    }
}
