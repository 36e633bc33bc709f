//! The handle to one GPU: its CUDA context, a stream, and the kernels loaded so far.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::Ptx;

use crate::{Kernel, KernelError};

/// Compute capability our cubins are built for (`sm_90a`).
const REQUIRED_COMPUTE_CAPABILITY: (i32, i32) = (9, 0);

/// Whether the CUDA driver library (`libcuda.so`) can be loaded on this machine.
///
/// Every entry into cudarc's driver API must be guarded by this: with dynamic loading, cudarc
/// panics on its first driver call when the library is missing instead of returning an error.
pub fn driver_present() -> bool {
    // SAFETY: this only dlopens libcuda (or nvcuda) by name to see whether it loads. Loading runs
    // the library's initialisers, which is exactly what cudarc does on its first driver call; no
    // symbol is called and no state of ours is touched.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// One GPU, ready to launch this crate's kernels.
///
/// Holds the device's primary context, one stream of its own (launchers take the stream to use
/// explicitly, so a runtime can add more), and a cache of the modules and functions loaded so
/// far: a cubin is loaded on first use of one of its kernels, not at start-up.
#[derive(Debug)]
pub struct Gpu {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Streaming multiprocessors: the grid of the persistent kernels.
    sm_count: usize,
    loaded: Mutex<Loaded>,
}

/// Modules by `.cu` file stem, functions by (file stem, entry name).
#[derive(Debug, Default)]
struct Loaded {
    modules: HashMap<&'static str, Arc<CudaModule>>,
    functions: HashMap<(&'static str, &'static str), CudaFunction>,
}

impl Gpu {
    /// Opens GPU `ordinal`.
    ///
    /// Fails with [`KernelError::NoGpu`] where there is no CUDA driver (without calling into
    /// cudarc, which would panic), and with [`KernelError::UnsupportedDevice`] on anything but a
    /// compute capability 9.0 GPU. It succeeds on a crate built without nvcc: the missing kernels
    /// are reported ([`KernelError::NotBuilt`]) by the first launch.
    pub fn new(ordinal: usize) -> Result<Gpu, KernelError> {
        if !driver_present() {
            return Err(KernelError::NoGpu);
        }
        let ctx = CudaContext::new(ordinal)?;
        let (major, minor) = ctx.compute_capability()?;
        if (major, minor) != REQUIRED_COMPUTE_CAPABILITY {
            return Err(KernelError::UnsupportedDevice {
                ordinal,
                name: ctx.name().unwrap_or_else(|_| "unknown".to_owned()),
                major,
                minor,
            });
        }
        // SAFETY: with tracking off, cudarc no longer records an event per buffer use to order
        // streams for us. Our callers order their streams explicitly with their own events
        // (the wavefront executor must, and per-buffer events would break CUDA graph capture);
        // until a second stream exists there is nothing to order. Called before any buffer or
        // stream is created, so no tracked and untracked buffers get mixed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream()?;
        let sm_count = ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        Ok(Gpu {
            ordinal,
            ctx,
            stream,
            sm_count: usize::try_from(sm_count).unwrap_or(1).max(1),
            loaded: Mutex::new(Loaded::default()),
        })
    }

    /// The device ordinal this handle was opened with.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// Streaming multiprocessors of the device.
    pub fn sm_count(&self) -> usize {
        self.sm_count
    }

    /// The CUDA context (the device's primary context).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream this handle created; a default for work that needs no other ordering.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The function `kernel` names, loading its cubin into the context on first use.
    ///
    /// Fails with [`KernelError::NotBuilt`] when the crate was built without nvcc.
    pub fn function(&self, kernel: &Kernel) -> Result<CudaFunction, KernelError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = loaded.functions.get(&(kernel.file(), kernel.entry)) {
            return Ok(f.clone());
        }
        let module = match loaded.modules.get(kernel.file()) {
            Some(module) => module.clone(),
            None => {
                let image = match cubin_override(kernel.cubin.stem)? {
                    Some(image) => image,
                    None if kernel.cubin.bytes.is_empty() => return Err(KernelError::NotBuilt),
                    // Copied into a Vec: cuModuleLoadData wants an aligned image, which the heap
                    // gives and include_bytes! does not promise.
                    None => kernel.cubin.bytes.to_vec(),
                };
                let module = self.ctx.load_module(Ptx::from_binary(image))?;
                loaded.modules.insert(kernel.file(), module.clone());
                module
            }
        };
        let f = module.load_function(kernel.entry)?;
        loaded.functions.insert((kernel.file(), kernel.entry), f.clone());
        Ok(f)
    }
}

/// `DBRMT_CUBINS=DIR`: a kernel file's cubin is read from `DIR/<stem>.cubin` when that file exists, instead of the
/// one embedded at build time — for kernel authors timing a rebuilt kernel (`nvcc -cubin`, the flags of `build.rs`)
/// without rebuilding or carrying the binaries. The launchers still assume the embedded kernel's interface (entry
/// points, parameters, shared memory), so only a change inside a kernel belongs there.
pub const CUBINS: &str = "DBRMT_CUBINS";

/// The cubin `DBRMT_CUBINS` names for kernel file `stem`, if the variable is set and the file exists.
fn cubin_override(stem: &str) -> Result<Option<Vec<u8>>, KernelError> {
    match std::env::var_os(CUBINS) {
        Some(dir) => read_cubin_in(std::path::Path::new(&dir), stem),
        None => Ok(None),
    }
}

fn read_cubin_in(dir: &std::path::Path, stem: &str) -> Result<Option<Vec<u8>>, KernelError> {
    let path = dir.join(format!("{stem}.cubin"));
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KernelError::CubinFile { path, source }),
    }
}

#[cfg(test)]
mod cubin_override_tests {
    use super::read_cubin_in;
    use crate::KernelError;

    #[test]
    fn a_file_in_the_directory_replaces_the_embedded_cubin_and_a_missing_one_does_not() {
        let dir = std::env::temp_dir().join(format!("dbrmt-cubins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rope.cubin"), b"\x7fELF not really").unwrap();
        assert_eq!(
            read_cubin_in(&dir, "rope").unwrap().as_deref(),
            Some(&b"\x7fELF not really"[..])
        );
        assert!(read_cubin_in(&dir, "rms_norm").unwrap().is_none());
        // a directory where the file should be: an error that names the path, not a silent fallback
        std::fs::create_dir_all(dir.join("embed.cubin")).unwrap();
        let err = read_cubin_in(&dir, "embed").unwrap_err();
        assert!(matches!(err, KernelError::CubinFile { .. }), "{err}");
        assert!(err.to_string().contains("embed.cubin"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
