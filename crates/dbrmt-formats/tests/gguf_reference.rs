//! The reader and the dequantiser against gguf-py, llama.cpp's Python package: `testdata/gguf/reference.gguf`
//! was written by its `GGUFWriter` (see `make_reference.py` beside it) with metadata of every value type, a
//! 64-byte alignment, and random blocks of every supported tensor type next to gguf-py's dequantisation of them.

use std::path::PathBuf;

use dbrmt_formats::gguf::{GgmlType, GgufFile, MetaValue};

fn reference() -> GgufFile {
    let root = std::env::var_os("DBRMT_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")));
    GgufFile::open(&root.join("testdata/gguf/reference.gguf")).expect("reference.gguf opens")
}

#[test]
fn metadata_of_every_value_type() {
    let f = reference();
    assert_eq!((f.version(), f.alignment()), (3, 64));
    assert_eq!(f.data_start() % 64, 0);
    let m = |k: &str| f.meta(k).cloned().unwrap_or_else(|| panic!("no {k}"));
    assert_eq!(m("general.architecture"), MetaValue::Str("test".into()));
    assert_eq!(m("general.alignment"), MetaValue::U32(64));
    assert_eq!(m("t.u8"), MetaValue::U8(200));
    assert_eq!(m("t.i8"), MetaValue::I8(-100));
    assert_eq!(m("t.u16"), MetaValue::U16(60000));
    assert_eq!(m("t.i16"), MetaValue::I16(-30000));
    assert_eq!(m("t.u32"), MetaValue::U32(4_000_000_000));
    assert_eq!(m("t.i32"), MetaValue::I32(-2_000_000_000));
    assert_eq!(m("t.u64"), MetaValue::U64((1 << 63) + 5));
    assert_eq!(m("t.i64"), MetaValue::I64(-(1 << 62)));
    assert_eq!(m("t.f32"), MetaValue::F32(0.1));
    assert_eq!(m("t.f64"), MetaValue::F64(0.1));
    assert_eq!(m("t.bool"), MetaValue::Bool(true));
    assert_eq!(m("t.str").as_str(), Some("héllo ✓"));
    let strs = |v: &MetaValue| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(strs(&m("t.strs")), ["a", "", "Ġb"]);
    assert_eq!(
        m("t.i32s"),
        MetaValue::Array(vec![MetaValue::I32(1), MetaValue::I32(-2), MetaValue::I32(3)])
    );
    let nested = m("t.nested");
    let nested = nested.as_array().unwrap();
    assert_eq!(
        (strs(&nested[0]), strs(&nested[1])),
        (vec!["x".into(), "y".into()], vec!["z".into()])
    );
}

#[test]
fn dequantisation_equals_gguf_py_bitwise() {
    let f = reference();
    let types = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ];
    for t in types {
        let q = f.tensor(&format!("q.{t}")).unwrap();
        assert_eq!(q.ggml_type, t);
        assert_eq!(q.offset % 64, 0, "{t}: tensors are aligned");
        let (shape, got) = f.read_f32(&format!("q.{t}")).unwrap();
        let (want_shape, want) = f.read_f32(&format!("expected.{t}")).unwrap();
        assert_eq!(shape, want_shape, "{t}");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "{t}");
        assert!(
            got.iter().all(|x| x.is_finite()) && got.iter().any(|&x| x != 0.0),
            "{t}"
        );
    }
    assert_eq!(f.tensor("q.Q4_K").unwrap().shape(), vec![2, 512]);
    assert_eq!(f.tensor("q.Q4_K").unwrap().dims, vec![512, 2]);
}
