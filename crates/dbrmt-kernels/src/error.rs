//! The error every GPU entry point of this crate returns.

use cudarc::driver::{sys::CUresult, DriverError};

/// Why a GPU operation could not run.
///
/// The variants a user can act on (no driver, no kernels, wrong GPU, out of memory) are spelled
/// out; everything else the driver reports is kept as [`KernelError::Driver`].
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// `libcuda.so` could not be loaded: no NVIDIA driver on this machine (or not on the loader's
    /// path). Checked before any driver call, because cudarc panics instead of returning an error
    /// when the library is missing.
    #[error(
        "no CUDA driver (libcuda.so) found: GPU work needs an NVIDIA driver on this machine \
         (the CPU reference paths work without one)"
    )]
    NoGpu,

    /// The crate was compiled where no nvcc was found, so its cubins are empty. The message names the pinned wheels
    /// of `cuda/nvcc-wheels.txt` (passed in by `build.rs`).
    #[error(
        "dbrmt was built without nvcc, so it has no GPU kernels; install nvcc \
         (python3 -m venv .nvcc && .nvcc/bin/pip install {wheels}; export \
         NVCC=$PWD/.nvcc/lib/python3.11/site-packages/nvidia/cu13/bin/nvcc) and rebuild",
        wheels = env!("DBRMT_NVCC_WHEELS")
    )]
    NotBuilt,

    /// The GPU is not a compute capability 9.0 part. Our cubins are compiled for the arch-specific target sm_90a,
    /// which loads on compute capability 9.0 only.
    #[error(
        "GPU {ordinal} ({name}) has compute capability {major}.{minor}, but dbrmt's kernels are \
         sm_90a cubins and run only on compute capability 9.0 (H100, H200, GH200)"
    )]
    UnsupportedDevice {
        /// The device ordinal that was asked for.
        ordinal: usize,
        /// The device's name as the driver reports it.
        name: String,
        /// Compute capability, major part.
        major: i32,
        /// Compute capability, minor part.
        minor: i32,
    },

    /// A launch whose spans or problems do not fit its buffers (a bug of the caller, caught before the launch).
    #[error("{kernel}: {msg}")]
    InvalidArgument {
        /// The kernel entry point.
        kernel: String,
        /// What does not fit.
        msg: String,
    },

    /// `DBRMT_CUBINS` names a directory whose cubin for a kernel file could not be read.
    #[error("DBRMT_CUBINS: cannot read {}: {source}", path.display())]
    CubinFile {
        /// The file that was asked for.
        path: std::path::PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },

    /// The driver returned `CUDA_ERROR_OUT_OF_MEMORY`.
    #[error("out of GPU memory (CUDA_ERROR_OUT_OF_MEMORY)")]
    OutOfMemory,

    /// Any other error the CUDA driver returned.
    #[error("CUDA driver error: {0}")]
    Driver(#[source] DriverError),
}

impl From<DriverError> for KernelError {
    fn from(err: DriverError) -> Self {
        match err.0 {
            CUresult::CUDA_ERROR_OUT_OF_MEMORY => KernelError::OutOfMemory,
            _ => KernelError::Driver(err),
        }
    }
}
