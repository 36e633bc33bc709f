//! GGUF, llama.cpp's model format: a memory-mapped reader for versions 2 and 3 (metadata of every value type,
//! tensor infos checked against the file), dequantisation of F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q6_K to f32 as
//! ggml computes it, and the LLaMA config and tensor names of a GGUF (the model itself is read through
//! [`crate::source::ModelSource`], which puts q/k rows back in Hugging Face order).
//!
//! The format: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>.

mod cursor;
pub mod dequant;
mod ggml_type;
pub mod llama;
mod metadata;
pub mod permute;
mod reader;
mod source;

pub use ggml_type::GgmlType;
pub use llama::llama_config;
pub use metadata::MetaValue;
pub use reader::{GgufFile, GgufTensor, DEFAULT_ALIGNMENT, MAGIC};
pub use source::gguf_path;
