//! The element type of the hidden rows (the residual stream): `half::bf16` or `f32`.
//!
//! The kernels that read or write hidden rows exist for both: one CUDA template per op with two `extern "C"` entry
//! points, `<op>_bf16` and `<op>_f32`, and one Rust launcher generic over [`HiddenElem`] that launches the entry point
//! named after the type ([`HiddenElem::NAME`]). Sealed: implemented for `half::bf16` and `f32` only, the two types the
//! kernels are compiled for.

use std::fmt::Debug;

use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use half::bf16;

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::bf16 {}
    impl Sealed for f32 {}
}

/// A type the hidden rows may be stored in: `half::bf16` (`__nv_bfloat16`) or `f32` (`float`).
pub trait HiddenElem: sealed::Sealed + DeviceRepr + ValidAsZeroBits + Copy + Debug + Send + Sync + 'static {
    /// The suffix of the entry points for this type (`bf16`, `f32`): `<op>_{NAME}`.
    const NAME: &'static str;

    /// `bf16` for `half::bf16`, `f32` for `f32`: a launcher's kernel for this type, from the pair it declares.
    fn pick<T>(bf16: T, f32: T) -> T;

    /// `x` in this type: rounded to the nearest bf16 (ties to even), or unchanged.
    fn from_f32(x: f32) -> Self;

    /// This value as an f32 (exact for both types).
    fn to_f32(self) -> f32;
}

impl HiddenElem for bf16 {
    const NAME: &'static str = "bf16";

    fn pick<T>(bf16: T, _f32: T) -> T {
        bf16
    }

    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }

    fn to_f32(self) -> f32 {
        f32::from(self)
    }
}

impl HiddenElem for f32 {
    const NAME: &'static str = "f32";

    fn pick<T>(_bf16: T, f32: T) -> T {
        f32
    }

    fn from_f32(x: f32) -> Self {
        x
    }

    fn to_f32(self) -> f32 {
        self
    }
}

/// Checks a launcher's pair of kernels (`[bf16, f32]`, as its `kernel::<H>()` picks them): each is `<base>_<NAME>`
/// and its `.cu` file (`cu`) defines it (unit tests of the launchers).
#[cfg(test)]
pub(crate) fn assert_entries(base: &str, cu: &str, entries: [&str; 2]) {
    for (name, entry) in [bf16::NAME, f32::NAME].into_iter().zip(entries) {
        assert_eq!(entry, format!("{base}_{name}"));
        assert!(
            cu.contains(&format!(" {entry}(")),
            "{entry} is not defined in its .cu file"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pick_and_conversions() {
        assert_eq!((bf16::NAME, f32::NAME), ("bf16", "f32"));
        assert_eq!((bf16::pick(1, 2), f32::pick(1, 2)), (1, 2));
        // Ties to even: 1 + 2⁻⁸ lies halfway between two bf16 neighbours and goes to the even one, 1.
        assert_eq!(<bf16 as HiddenElem>::from_f32(1.0 + 1.0 / 256.0).to_f32(), 1.0);
        assert_eq!(<f32 as HiddenElem>::from_f32(1.0 + 1.0 / 256.0), 1.0 + 1.0 / 256.0);
        assert_eq!(HiddenElem::to_f32(bf16::from_bits(0x7FFF)).to_bits(), 0x7FFF_0000);
    }
}
