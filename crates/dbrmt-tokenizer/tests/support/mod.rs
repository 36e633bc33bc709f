//! Test support: a GGUF writer and a tiny byte-level BPE vocabulary.
#![allow(dead_code)]

pub mod gguf_writer;
pub mod tiny_vocab;
