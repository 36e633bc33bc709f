//! Tensor maps for the bulk tensor copy engine (TMA): the descriptors the sm_90a kernels take by value
//! (`sm90::TmaMap`), made by the driver from a buffer's address, shape, strides and box.

use cudarc::driver::sys::{
    cuTensorMapEncodeTiled, CUresult, CUtensorMap, CUtensorMapDataType, CUtensorMapFloatOOBfill, CUtensorMapInterleave,
    CUtensorMapL2promotion, CUtensorMapSwizzle,
};
use cudarc::driver::DeviceRepr;

use crate::launch::invalid;
use crate::KernelError;

/// A TMA descriptor as the kernels take it (`sm90::TmaMap`: 128 bytes, 64-byte aligned).
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct TmaMap([u64; 16]);

// SAFETY: an opaque 128-byte descriptor filled by the driver (cuTensorMapEncodeTiled), passed by value.
unsafe impl DeviceRepr for TmaMap {}

/// Element types of the maps the kernels use.
pub(crate) const BF16: CUtensorMapDataType = CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
pub(crate) const F32: CUtensorMapDataType = CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
/// Shared-memory layouts of a copied box.
pub(crate) const SWIZZLE_128B: CUtensorMapSwizzle = CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B;
pub(crate) const SWIZZLE_NONE: CUtensorMapSwizzle = CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_NONE;

/// A bf16 tensor map of rank `dims.len()` (2 or 3), 128-byte swizzled (see [`map`]).
pub(crate) fn bf16_map(
    entry: &str,
    base: u64,
    dims: &[u64],
    strides: &[u64],
    boxes: &[u32],
) -> Result<TmaMap, KernelError> {
    map(entry, BF16, base, dims, strides, boxes, SWIZZLE_128B)
}

/// A tensor map of `dtype` elements, rank `dims.len()` (2 or 3), at device address `base`: `dims` innermost first,
/// `strides` the byte strides of dims 1.., `boxes` the box of one copy, laid out in shared memory by `swizzle`;
/// zero-filled outside the tensor.
pub(crate) fn map(
    entry: &str,
    dtype: CUtensorMapDataType,
    base: u64,
    dims: &[u64],
    strides: &[u64],
    boxes: &[u32],
    swizzle: CUtensorMapSwizzle,
) -> Result<TmaMap, KernelError> {
    let rank = dims.len();
    if !(2..=3).contains(&rank) || strides.len() + 1 != rank || boxes.len() != rank {
        return Err(invalid(
            entry,
            format!("tensor map of rank {rank}: inconsistent dims/strides/box"),
        ));
    }
    if !base.is_multiple_of(16) || strides.iter().any(|s| !s.is_multiple_of(16)) {
        return Err(invalid(
            entry,
            "tensor map address and strides must be 16-byte multiples".into(),
        ));
    }
    let element_strides = [1u32; 3];
    let mut map = std::mem::MaybeUninit::<CUtensorMap>::uninit();
    // SAFETY: cuTensorMapEncodeTiled writes the 128-byte descriptor into `map` and reads `rank` dims, `rank - 1`
    // strides, `rank` box sizes and `rank` element strides from the slices above (lengths checked), all live for the
    // call. `base` is the device address of a live buffer holding the whole tensor described (the callers derive
    // `dims` and `strides` from its length), 16-byte aligned like the strides (checked above).
    let status = unsafe {
        cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            dtype,
            rank as u32,
            base as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            element_strides.as_ptr(),
            CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            swizzle,
            CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    if status != CUresult::CUDA_SUCCESS {
        return Err(invalid(
            entry,
            format!("cuTensorMapEncodeTiled({dims:?}, strides {strides:?}, box {boxes:?}) failed: {status:?}"),
        ));
    }
    // SAFETY: the call succeeded, so the driver wrote the whole descriptor.
    let map = unsafe { map.assume_init() };
    // SAFETY: CUtensorMap is 128 bytes of plain data, as is [u64; 16] (TmaMap only adds the 64-byte alignment).
    Ok(TmaMap(unsafe { std::mem::transmute::<CUtensorMap, [u64; 16]>(map) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_is_the_drivers_size_and_alignment() {
        assert_eq!(size_of::<TmaMap>(), 128);
        assert_eq!(align_of::<TmaMap>(), 64);
        assert_eq!(size_of::<CUtensorMap>(), 128);
    }

    #[test]
    fn inconsistent_or_misaligned_maps_are_refused_before_the_driver() {
        assert!(bf16_map("t", 0, &[64, 8], &[], &[64, 8]).is_err());
        assert!(bf16_map("t", 8, &[64, 8], &[128], &[64, 8]).is_err());
        assert!(bf16_map("t", 0, &[64, 8], &[100], &[64, 8]).is_err());
    }
}
