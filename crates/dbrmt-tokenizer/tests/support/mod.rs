//! Test support: a tiny byte-level BPE vocabulary.
#![allow(dead_code)]

pub mod tiny_vocab;
