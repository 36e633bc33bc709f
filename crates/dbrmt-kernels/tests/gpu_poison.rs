//! The poison kernel on a GPU, and what the GPU entry points do where there is none.

use dbrmt_kernels::poison::{poison_f32, poison_u32, POISON_F32_BITS};
use dbrmt_kernels::{cubins, cubins_built, driver_present, Gpu, KernelError};

/// Not a multiple of the launcher's block size (256), so the last block is partly idle.
const LEN: usize = 3 * 256 + 17;

#[test]
#[ignore = "needs a CUDA GPU"]
fn poison_u32_writes_every_element_and_nothing_else() {
    let gpu = Gpu::new(0).expect("open GPU 0");
    let stream = gpu.stream();
    let pattern = 0xDEAD_BEEF_u32;

    let mut whole = stream.alloc_zeros::<u32>(LEN).unwrap();
    poison_u32(&gpu, stream, &mut whole, pattern).unwrap();
    let host = stream.clone_dtoh(&whole).unwrap();
    assert_eq!(host.len(), LEN);
    let wrong: Vec<usize> = (0..LEN).filter(|&i| host[i] != pattern).collect();
    assert!(
        wrong.is_empty(),
        "{} elements not poisoned, first {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(8)]
    );

    // A view in the middle: the kernel must stop exactly at its ends.
    let mut zeros = stream.alloc_zeros::<u32>(LEN).unwrap();
    let (start, end) = (5, LEN - 3);
    poison_u32(&gpu, stream, &mut zeros.slice_mut(start..end), pattern).unwrap();
    let host = stream.clone_dtoh(&zeros).unwrap();
    for (i, &x) in host.iter().enumerate() {
        let expected = if (start..end).contains(&i) { pattern } else { 0 };
        assert_eq!(x, expected, "element {i}");
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn poison_f32_writes_the_nan_pattern() {
    let gpu = Gpu::new(0).expect("open GPU 0");
    let stream = gpu.stream();
    let mut buf = stream.clone_htod(&vec![1.5_f32; LEN]).unwrap();
    poison_f32(&gpu, stream, &mut buf).unwrap();
    let host = stream.clone_dtoh(&buf).unwrap();
    assert!(host.iter().all(|x| x.is_nan() && x.to_bits() == POISON_F32_BITS));

    // An empty buffer is a no-op, not an invalid launch.
    let mut empty = stream.alloc_zeros::<f32>(0).unwrap();
    poison_f32(&gpu, stream, &mut empty).unwrap();
}

/// Without libcuda, `Gpu::new` must return `NoGpu` (cudarc itself would panic). With it, the
/// driver was found, so any failure must be something else (no device, wrong device, …).
#[test]
fn gpu_new_reports_a_missing_driver_as_no_gpu() {
    let result = Gpu::new(0);
    if driver_present() {
        assert!(
            !matches!(result, Err(KernelError::NoGpu)),
            "libcuda is present, yet Gpu::new(0) said NoGpu"
        );
        eprintln!("libcuda present: Gpu::new(0) = {:?}", result.as_ref().map(|_| ()));
    } else {
        assert!(
            matches!(result, Err(KernelError::NoGpu)),
            "no libcuda, yet Gpu::new(0) returned {:?}",
            result.map(|_| ())
        );
    }
}

/// The cfg, the env var build.rs sets and the embedded bytes must tell the same story.
#[test]
fn cubins_are_embedded_exactly_when_nvcc_was_used() {
    let nvcc_used = env!("DBRMT_NVCC_USED") == "1";
    assert_eq!(cubins_built(), nvcc_used);
    assert_eq!(cubins::NVCC_VERSION.is_some(), nvcc_used);
    assert!(cubins::ALL.iter().any(|c| c.stem == "poison"));
    assert_eq!(cubins::POISON.stem, "poison");
    for c in cubins::ALL {
        if nvcc_used {
            assert!(c.bytes.starts_with(b"\x7fELF"), "{}: not an ELF cubin", c.stem);
        } else {
            assert!(c.bytes.is_empty(), "{}: bytes without nvcc", c.stem);
        }
    }
    // CI sets DBRMT_REQUIRE_NVCC=1: there the kernels must really have been compiled.
    if option_env!("DBRMT_REQUIRE_NVCC").is_some_and(|v| !v.is_empty() && v != "0") {
        assert!(cubins_built(), "DBRMT_REQUIRE_NVCC is set but no cubins were built");
    }
}

#[test]
fn errors_say_what_to_do() {
    let not_built = KernelError::NotBuilt.to_string();
    assert!(not_built.contains("pip install nvidia-cuda-nvcc=="), "{not_built}");
    // Every pinned wheel of the one list, which .ci/run installs.
    let wheels = include_str!("../../../cuda/nvcc-wheels.txt");
    for wheel in wheels.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        assert!(
            wheel.contains("==") && not_built.contains(wheel.trim()),
            "{wheel}: {not_built}"
        );
    }
    assert!(not_built.contains("NVCC="), "{not_built}");
    assert!(KernelError::NoGpu.to_string().contains("libcuda.so"));
    let unsupported = KernelError::UnsupportedDevice {
        ordinal: 0,
        name: "NVIDIA A100".into(),
        major: 8,
        minor: 0,
    }
    .to_string();
    assert!(
        unsupported.contains("8.0") && unsupported.contains("sm_90a"),
        "{unsupported}"
    );
}
