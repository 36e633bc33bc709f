//! Plain f32 CPU references for every op of an ARMT-LLaMA cell.
//!
//! They are the oracle each GPU kernel is tested against, and the building blocks of the CPU model
//! (`dbrmt-model`'s `cpu` module), so an op has exactly one definition of its math. Everything is row-major,
//! single-threaded and free of hidden state: the same inputs give the same bits, whichever schedule calls them.
//! The math is that of `shared/reference/armt-spec.md` §1 (the original ARMT code), in f32.

//!
//! One file per op, named as the op's kernel file (`cuda/rms_norm.cu` ↔ `reference/rms_norm.rs`).

pub mod argmax_rows;
pub mod armt_read;
pub mod armt_state_split;
pub mod armt_write;
pub mod attention;
pub mod dpfp;
pub mod embed;
pub mod gemm;
pub mod rms_norm;
pub mod rope;
pub mod swiglu;
pub mod to_bf16;

/// The ε the original ARMT code adds to the read/write denominators and to ‖φ(k)‖² (hard-coded 1e-5 there); the
/// kernels' `ARMT_EPS` of `cuda/common/armt.cuh` (a unit test checks that they agree).
pub const ARMT_EPS: f32 = 1e-5;

/// Dot product summed in f64, rounded once (the memory's denominators).
pub(crate) fn dot_f64(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() as f32
}

#[cfg(test)]
mod tests {
    /// `ARMT_EPS` is defined once for the kernels, in `cuda/common/armt.cuh`, with the value of this crate's.
    #[test]
    fn armt_eps_matches_the_kernels_header() {
        let h = include_str!("../../../../cuda/common/armt.cuh");
        assert!(h.contains(&format!("#define ARMT_EPS {:e}f\n", super::ARMT_EPS)), "{h}");
        for cu in [
            include_str!("../../../../cuda/armt_read.cu"),
            include_str!("../../../../cuda/armt_write.cu"),
        ] {
            assert!(cu.contains("#include \"common/armt.cuh\"") && !cu.contains("#define ARMT_EPS"));
        }
    }
}
