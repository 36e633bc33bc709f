//! `.npy` files as NumPy writes them (version 1.0, the header dict padded to a multiple of 64 bytes), built without
//! `dbrmt_formats::npy`, so the tests of its reader and of the CLI's inputs do not trust the code under test.

/// A `.npy` file of `data` (raw little-endian elements) under the header dict with `descr` and `shape` (Python
/// syntax, e.g. `"(3,)"`); any descr or shape, so tests can also write the ones the reader must refuse.
pub fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

/// A 1-D int32 (`<i4`) `.npy` of `ids`.
pub fn ids_i32(ids: &[i32]) -> Vec<u8> {
    let data: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    npy_bytes("<i4", &format!("({},)", ids.len()), &data)
}

/// A 1-D int64 (`<i8`) `.npy` of `ids`.
pub fn ids_i64(ids: &[i64]) -> Vec<u8> {
    let data: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    npy_bytes("<i8", &format!("({},)", ids.len()), &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_padded_to_64_bytes_and_the_data_follows() {
        let bytes = ids_i64(&[1, -2, 3]);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(bytes[10 + header_len - 1], b'\n');
        assert!(std::str::from_utf8(&bytes[10..10 + header_len])
            .unwrap()
            .contains("'shape': (3,)"));
        assert_eq!(&bytes[10 + header_len..10 + header_len + 8], &1i64.to_le_bytes());
        assert_eq!(bytes.len(), 10 + header_len + 24);
        let read = dbrmt_formats::npy::ids_from_bytes(&ids_i32(&[7, 8])).unwrap();
        assert_eq!(read, vec![7, 8]);
    }
}
