//! The CIFAR-10/100 binary format (<https://www.cs.toronto.edu/~kriz/cifar.html>): fixed-size
//! records of label byte(s) followed by 3072 pixel bytes (1024 red, 1024 green, 1024 blue).

use std::path::Path;

use crate::error::DataError;
use crate::images::ImageSet;

pub const CIFAR_SIDE: usize = 32;
pub const CIFAR_PIXELS: usize = 3 * CIFAR_SIDE * CIFAR_SIDE;
/// CIFAR-10 records: 1 label byte + pixels = 3073 bytes.
pub const CIFAR10_RECORD: usize = 1 + CIFAR_PIXELS;
/// CIFAR-100 records: coarse label, fine label, pixels = 3074 bytes.
pub const CIFAR100_RECORD: usize = 2 + CIFAR_PIXELS;

/// Which CIFAR flavour a file holds, and for CIFAR-100 which label to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarLabels {
    Cifar10,
    Cifar100Fine,
    Cifar100Coarse,
}

impl CifarLabels {
    fn record_len(self) -> usize {
        match self {
            CifarLabels::Cifar10 => CIFAR10_RECORD,
            _ => CIFAR100_RECORD,
        }
    }

    pub fn num_classes(self) -> usize {
        match self {
            CifarLabels::Cifar10 => 10,
            CifarLabels::Cifar100Fine => 100,
            CifarLabels::Cifar100Coarse => 20,
        }
    }
}

/// Reads CIFAR binary files and concatenates their records.
pub fn read_cifar(paths: &[impl AsRef<Path>], labels: CifarLabels) -> Result<ImageSet, DataError> {
    let record = labels.record_len();
    let mut set = ImageSet {
        pixels: Vec::new(),
        labels: Vec::new(),
        channels: 3,
        height: CIFAR_SIDE,
        width: CIFAR_SIDE,
        num_classes: labels.num_classes(),
    };
    for path in paths {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(DataError::format(
                path,
                format!(
                    "expected a whole number of {record}-byte records, got {} bytes (truncated, or not this CIFAR flavour)",
                    bytes.len()
                ),
            ));
        }
        for (n, rec) in bytes.chunks_exact(record).enumerate() {
            let label = match labels {
                CifarLabels::Cifar10 | CifarLabels::Cifar100Coarse => rec[0],
                CifarLabels::Cifar100Fine => rec[1],
            };
            if label as usize >= set.num_classes {
                return Err(DataError::format(
                    path,
                    format!(
                        "record {n}: label {label} out of range for {} classes",
                        set.num_classes
                    ),
                ));
            }
            set.labels.push(label);
            set.pixels.extend_from_slice(&rec[record - CIFAR_PIXELS..]);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(prefix: &[u8], fill: u8) -> Vec<u8> {
        let mut r = prefix.to_vec();
        r.extend(std::iter::repeat_n(fill, CIFAR_PIXELS));
        r
    }

    #[test]
    fn reads_cifar10_records_from_several_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("data_batch_1.bin");
        let b = dir.path().join("data_batch_2.bin");
        std::fs::write(&a, [record(&[3], 10), record(&[9], 20)].concat()).unwrap();
        std::fs::write(&b, record(&[0], 30)).unwrap();
        let set = read_cifar(&[a, b], CifarLabels::Cifar10).unwrap();
        assert_eq!(set.labels, vec![3, 9, 0]);
        assert_eq!(set.image(1)[0], 20);
        assert_eq!((set.channels, set.height, set.width), (3, 32, 32));
    }

    #[test]
    fn cifar100_picks_fine_or_coarse_label() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train.bin");
        std::fs::write(&p, record(&[4, 77], 1)).unwrap();
        assert_eq!(
            read_cifar(&[&p], CifarLabels::Cifar100Fine).unwrap().labels,
            vec![77]
        );
        assert_eq!(
            read_cifar(&[&p], CifarLabels::Cifar100Coarse)
                .unwrap()
                .labels,
            vec![4]
        );
    }

    #[test]
    fn truncated_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("test_batch.bin");
        let mut r = record(&[1], 0);
        r.pop();
        std::fs::write(&p, r).unwrap();
        let err = read_cifar(&[&p], CifarLabels::Cifar10)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test_batch.bin") && err.contains("3073-byte"),
            "{err}"
        );
    }
}
