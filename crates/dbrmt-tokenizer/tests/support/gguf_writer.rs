//! A minimal GGUF v3 writer for tests: metadata only, no tensors.

use std::path::Path;

/// A metadata value to write.
#[derive(Debug, Clone)]
pub enum Value {
    U32(u32),
    I32(i32),
    Bool(bool),
    Str(String),
    StrArray(Vec<String>),
    I32Array(Vec<i32>),
}

const ALIGNMENT: usize = 32;

/// The bytes of a GGUF v3 file with these key/value pairs and no tensors.
pub fn gguf_bytes(kvs: &[(&str, Value)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // tensors
    b.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (key, value) in kvs {
        string(&mut b, key);
        match value {
            Value::U32(v) => {
                b.extend_from_slice(&4u32.to_le_bytes());
                b.extend_from_slice(&v.to_le_bytes());
            }
            Value::I32(v) => {
                b.extend_from_slice(&5u32.to_le_bytes());
                b.extend_from_slice(&v.to_le_bytes());
            }
            Value::Bool(v) => {
                b.extend_from_slice(&7u32.to_le_bytes());
                b.push(u8::from(*v));
            }
            Value::Str(s) => {
                b.extend_from_slice(&8u32.to_le_bytes());
                string(&mut b, s);
            }
            Value::StrArray(items) => {
                b.extend_from_slice(&9u32.to_le_bytes());
                b.extend_from_slice(&8u32.to_le_bytes());
                b.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for s in items {
                    string(&mut b, s);
                }
            }
            Value::I32Array(items) => {
                b.extend_from_slice(&9u32.to_le_bytes());
                b.extend_from_slice(&5u32.to_le_bytes());
                b.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for v in items {
                    b.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    // The (empty) tensor data section starts aligned.
    b.resize(b.len().next_multiple_of(ALIGNMENT), 0);
    b
}

pub fn write_gguf(path: &Path, kvs: &[(&str, Value)]) {
    std::fs::write(path, gguf_bytes(kvs)).expect("writing the test GGUF file");
}

fn string(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}
