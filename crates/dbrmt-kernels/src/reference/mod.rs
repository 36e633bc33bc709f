//! Plain f32 CPU references for every op of an ARMT-LLaMA cell.
//!
//! They are the oracle each GPU kernel is tested against, and the building blocks of the CPU model
//! (`dbrmt-model`'s `cpu` module), so an op has exactly one definition of its math. Everything is row-major,
//! single-threaded and free of hidden state: the same inputs give the same bits, whichever schedule calls them.
//! The math is that of `shared/reference/armt-spec.md` §1 (the original ARMT code), in f32.

pub mod armt;
pub mod attention;
pub mod embed;
pub mod gemm;
pub mod mlp;
pub mod norm;
pub mod rope;

/// The ε the original ARMT code adds to the read/write denominators and to ‖φ(k)‖² (hard-coded 1e-5 there).
pub const MEM_EPS: f32 = 1e-5;
