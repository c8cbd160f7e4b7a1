//! The IDX format of MNIST, Fashion-MNIST and KMNIST (<http://yann.lecun.com/exdb/mnist/>),
//! gzipped or raw: a 4-byte magic number (0, 0, element type, number of dimensions), the
//! dimensions as big-endian u32, then the elements.

use std::io::Read;
use std::path::Path;

use crate::error::DataError;

/// The element type code of unsigned bytes, the only one the MNIST family uses.
pub const UNSIGNED_BYTE: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes.
pub fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads an IDX file of unsigned bytes with `expected_dims` dimensions.
pub fn read_idx(path: &Path, expected_dims: usize) -> Result<IdxArray, DataError> {
    let bytes = read_maybe_gzipped(path)?;
    parse_idx(&bytes, expected_dims).map_err(|message| DataError::format(path, message))
}

/// Parses IDX bytes; the error says what was expected and what was found.
pub fn parse_idx(bytes: &[u8], expected_dims: usize) -> Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "file too short for an IDX header ({} bytes)",
            bytes.len()
        ));
    }
    let expected_magic = [0, 0, UNSIGNED_BYTE, expected_dims as u8];
    if bytes[..4] != expected_magic {
        return Err(format!(
            "bad IDX magic number: expected {:#010x} (unsigned bytes, {expected_dims} dimensions), got {:#010x}",
            u32::from_be_bytes(expected_magic),
            u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
        ));
    }
    let header_len = 4 + 4 * expected_dims;
    if bytes.len() < header_len {
        return Err(format!(
            "truncated IDX header: expected {header_len} bytes, got {}",
            bytes.len()
        ));
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected_len: usize = dims.iter().product();
    let body = &bytes[header_len..];
    if body.len() != expected_len {
        let shape = dims
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        let what = if body.len() < expected_len {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(format!(
            "{what}: dimensions {shape} need {expected_len} data bytes, got {}",
            body.len()
        ));
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Encodes an IDX array of unsigned bytes (used by tests and tools that write small sets).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, UNSIGNED_BYTE, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Writes one split of an MNIST-format dataset into `dir`: `<prefix>-images-idx3-ubyte`
/// (`labels.len()` images of `rows x cols` bytes) and `<prefix>-labels-idx1-ubyte`, raw.
/// The inverse of `DatasetKind::load`, for tools and tests that make small datasets.
pub fn write_split(
    dir: &Path,
    prefix: &str,
    pixels: &[u8],
    labels: &[u8],
    rows: usize,
    cols: usize,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(format!("{prefix}-images-idx3-ubyte")),
        encode_idx(&[labels.len(), rows, cols], pixels),
    )?;
    std::fs::write(
        dir.join(format!("{prefix}-labels-idx1-ubyte")),
        encode_idx(&[labels.len()], labels),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn raw_round_trip() {
        let data: Vec<u8> = (0..24).collect();
        let bytes = encode_idx(&[2, 3, 4], &data);
        let arr = parse_idx(&bytes, 3).unwrap();
        assert_eq!(arr.dims, vec![2, 3, 4]);
        assert_eq!(arr.data, data);
    }

    #[test]
    fn gzipped_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&encode_idx(&[5], &[1, 2, 3, 4, 5])).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let arr = read_idx(&path, 1).unwrap();
        assert_eq!(arr.data, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn wrong_magic_is_named() {
        let bytes = encode_idx(&[5], &[0; 5]);
        let err = parse_idx(&bytes, 3).unwrap_err();
        assert!(err.contains("bad IDX magic number"), "{err}");
        assert!(
            err.contains("0x00000803") && err.contains("0x00000801"),
            "{err}"
        );
    }

    #[test]
    fn truncated_body_is_named() {
        let mut bytes = encode_idx(&[2, 2, 2], &[0; 8]);
        bytes.truncate(bytes.len() - 3);
        let err = parse_idx(&bytes, 3).unwrap_err();
        assert!(err.contains("truncated") && err.contains("need 8"), "{err}");
    }

    #[test]
    fn truncated_header_is_named() {
        let err = parse_idx(&[0, 0, 8, 3, 0, 0], 3).unwrap_err();
        assert!(err.contains("truncated IDX header"), "{err}");
    }

    #[test]
    fn corrupt_gzip_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.gz");
        std::fs::write(&path, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
        let err = read_idx(&path, 1).unwrap_err().to_string();
        assert!(err.contains("bad.gz") && err.contains("gzip"), "{err}");
    }
}
