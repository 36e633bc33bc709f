//! `.npy`: the fixtures' arrays, byte-exact writing, and errors for every array the engine cannot take.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use dbrmt_formats::{npy, FormatError};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/fixtures");

/// A unique file path under the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TempFile(std::env::temp_dir().join(format!("dbrmt-npy-{}-{label}-{n}.npy", std::process::id())))
    }

    fn with(label: &str, bytes: &[u8]) -> Self {
        let f = Self::new(label);
        std::fs::write(&f.0, bytes).unwrap();
        f
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A version-1.0 file with this header dict and data (no padding: readers must not need it).
fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

fn i4(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The error message of reading ids from these bytes, checked to be a one-line Npy error naming the file.
fn ids_error(bytes: &[u8]) -> String {
    let f = TempFile::with("bad", bytes);
    let err = npy::read_ids(&f.0).expect_err("must be rejected");
    assert!(matches!(err, FormatError::Npy { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&f.0.display().to_string()), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    msg
}

#[test]
fn reads_the_fixtures() {
    let lengths = [
        ("small-bf16", 300),
        ("tiny-armt-names", 160),
        ("tiny-hf-tied-partial", 150),
        ("tiny-single-short", 20),
    ];
    for (name, n) in lengths {
        let dir = Path::new(FIXTURES).join(name);
        let ids = npy::read_ids(&dir.join("input_ids.npy")).unwrap();
        assert_eq!(ids.len(), n, "{name}");
        assert!(ids.iter().all(|&i| i >= 0), "{name}");
        let (shape, logits) = npy::read_f32(&dir.join("logits.npy")).unwrap();
        assert_eq!(shape[..2], [1, n]);
        assert_eq!(logits.len(), shape.iter().product::<usize>());
        let (a_shape, _) = npy::read_f32(&dir.join("mem_A.npy")).unwrap();
        let (z_shape, _) = npy::read_f32(&dir.join("mem_z.npy")).unwrap();
        assert_eq!(a_shape.len(), 4);
        assert_eq!(z_shape, a_shape[..3]);
    }
}

#[test]
fn writes_byte_for_byte_what_numpy_writes() {
    for name in ["tiny-single-short", "tiny-armt-names"] {
        for file in ["logits.npy", "mem_A.npy", "mem_z.npy", "final_hidden.npy"] {
            let path = Path::new(FIXTURES).join(name).join(file);
            let (shape, data) = npy::read_f32(&path).unwrap();
            let out = TempFile::new("rewrite");
            npy::write_f32(&out.0, &shape, &data).unwrap();
            assert!(
                std::fs::read(&out.0).unwrap() == std::fs::read(&path).unwrap(),
                "{name}/{file}"
            );
        }
    }
}

#[test]
fn f32_round_trip() {
    let shapes: [&[usize]; 5] = [&[], &[5], &[2, 3], &[1, 0], &[2, 1, 2, 2]];
    for shape in shapes {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32 * -0.75 + f32::MIN_POSITIVE).collect();
        let f = TempFile::new("rt");
        npy::write_f32(&f.0, shape, &data).unwrap();
        let bytes = std::fs::read(&f.0).unwrap();
        assert_eq!((bytes.len() - 4 * n) % 64, 0, "data starts 64-byte aligned");
        let (s, d) = npy::read_f32(&f.0).unwrap();
        assert_eq!((s.as_slice(), d), (shape, data));
    }
    let special = [f32::INFINITY, -0.0, f32::MAX, f32::NAN];
    let f = TempFile::new("special");
    npy::write_f32(&f.0, &[4], &special).unwrap();
    let (_, d) = npy::read_f32(&f.0).unwrap();
    assert_eq!(
        d.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        special.map(f32::to_bits)
    );
}

#[test]
fn write_checks_the_shape() {
    let f = TempFile::new("mismatch");
    let err = npy::write_f32(&f.0, &[2, 3], &[0.0; 5]).unwrap_err();
    assert!(
        err.to_string().contains("shape [2, 3] holds 6 values but 5 were given"),
        "{err}"
    );
}

#[test]
fn ids_in_every_accepted_form() {
    let cases = [
        npy_bytes(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }",
            &i4(&[5, -1, 7]),
        ),
        npy_bytes(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }",
            &i4(&[5, -1, 7]),
        ),
        npy_bytes(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }",
            &[5i64, -1, 7].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
        ),
    ];
    for bytes in cases {
        let f = TempFile::with("ids", &bytes);
        assert_eq!(npy::read_ids(&f.0).unwrap(), vec![5, -1, 7]);
    }
    let large = npy_bytes(
        "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
        &(1i64 << 40).to_le_bytes(),
    );
    let f = TempFile::with("large", &large);
    assert_eq!(npy::read_ids(&f.0).unwrap(), vec![1 << 40]);
}

#[test]
fn ids_of_the_wrong_dtype() {
    let f = TempFile::new("f32ids");
    npy::write_f32(&f.0, &[3], &[1.0, 2.0, 3.0]).unwrap();
    let err = npy::read_ids(&f.0).unwrap_err();
    assert!(
        err.to_string()
            .contains("token ids must be little-endian int32 or int64 (`<i4`/`<i8`), found dtype `<f4`"),
        "{err}"
    );
    for descr in [">i4", "|u1", "<u4", "<i2", "<f8"] {
        let msg = ids_error(&npy_bytes(
            &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}"),
            &[0; 8],
        ));
        assert!(msg.contains(&format!("found dtype `{descr}`")), "{msg}");
    }
    // And the other way: ids are not an f32 array.
    let f = TempFile::with(
        "intsasf32",
        &npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", &i4(&[1])),
    );
    assert!(npy::read_f32(&f.0)
        .unwrap_err()
        .to_string()
        .contains("expected a little-endian float32 array"));
}

#[test]
fn ids_of_the_wrong_shape() {
    for shape in ["()", "(2, 3)", "(1, 2, 3)", "(1, 1, 6)"] {
        let msg = ids_error(&npy_bytes(
            &format!("{{'descr': '<i4', 'fortran_order': False, 'shape': {shape}, }}"),
            &[0; 24],
        ));
        assert!(msg.contains("token ids must have shape [N] or [1, N], found"), "{msg}");
    }
}

#[test]
fn malformed_files() {
    let good = "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }";
    assert!(ids_error(&npy_bytes(good, &i4(&[1, 2, 3])))
        .contains("data is truncated: 12 bytes where the header promises 16"));
    assert!(ids_error(b"\x93NUMPX\x01\x00").contains("bad magic"));
    assert!(ids_error(b"").contains("bad magic"));
    assert!(ids_error(b"\x93NUMPY\x01").contains("truncated inside the preamble"));
    assert!(ids_error(b"\x93NUMPY\x01\x00\x10").contains("truncated inside the preamble"));
    assert!(ids_error(b"\x93NUMPY\x01\x00\xff\x00{'descr'").contains("header length 255 runs past the end"));
    let mut v9 = npy_bytes(good, &i4(&[1, 2, 3, 4]));
    v9[6] = 9;
    assert!(ids_error(&v9).contains("unsupported .npy format version 9.0"));
    let fortran = "{'descr': '<i4', 'fortran_order': True, 'shape': (4,), }";
    assert!(ids_error(&npy_bytes(fortran, &i4(&[1, 2, 3, 4]))).contains("Fortran-order arrays are not supported"));
    let msg = ids_error(&npy_bytes("{'descr': '<i4', 'shape': (4,), }", &i4(&[1, 2, 3, 4])));
    assert!(msg.contains("header lacks one of"), "{msg}");
    let msg = ids_error(&npy_bytes("{'descr': 4, 'fortran_order': False, 'shape': (4,), }", &[]));
    assert!(
        msg.contains("not a NumPy header dict") || msg.contains("wrong type"),
        "{msg}"
    );
    let msg = ids_error(&npy_bytes(
        "{'descr': '<i4', 'fortran_order': False, 'shape': 4, }",
        &[],
    ));
    assert!(msg.contains("not a NumPy header dict"), "{msg}");
    let missing = npy::read_ids(Path::new("/nonexistent/ids.npy")).unwrap_err();
    assert!(matches!(missing, FormatError::Io { .. }));
}

#[test]
fn written_ids_read_back() {
    let dir = std::env::temp_dir().join(format!("dbrmt-npy-ids-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ids.npy");
    dbrmt_formats::npy::write_ids(&path, &[1, 0, 49151, 7]).unwrap();
    assert_eq!(dbrmt_formats::npy::read_ids(&path).unwrap(), vec![1, 0, 49151, 7]);
    assert!(dbrmt_formats::npy::write_ids(&path, &[u32::MAX]).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
