//! What dbrmt's tests share, so that no test file writes its own: scratch directories ([`Scratch`]), the paths of
//! the checked-in fixtures and the fetched model ([`paths`]), a GGUF writer independent of the reader
//! ([`gguf::GgufBuilder`]), `.npy` files ([`npy`]), and the project's one seeded generator ([`SplitMix64`], re-exported from
//! `dbrmt-formats`).
//!
//! The kernel checks' own harness (layouts, poisoned outputs, bitwise comparison, the result loop of the GPU tests)
//! is `dbrmt_kernels::check`, because `dbrmt selftest` ships it.

pub mod gguf;
pub mod npy;
pub mod paths;
mod scratch;

pub use gguf::GgufBuilder;

pub use dbrmt_formats::rng::SplitMix64;
pub use scratch::Scratch;
