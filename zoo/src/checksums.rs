//! Digests of the weights zoo writes: a `SHA256SUMS` file beside them, in each checkpoint
//! and in a run directory (for `model.bpk`), in `sha256sum`'s format, so `sha256sum -c
//! SHA256SUMS` checks them too. Files are checked against it before they are decoded: a flipped
//! bit or a half-copied run is named, never loaded. Files without an entry (written by an older
//! zoo) are read unchecked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::fsutil::{write_file, WriteError};

pub const SUMS_FILE: &str = "SHA256SUMS";

/// A file that cannot be trusted: damaged (its digest differs from the record) or unreadable.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct ChecksumError {
    pub path: PathBuf,
    pub reason: String,
}

impl ChecksumError {
    fn damaged(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            reason: format!("damaged: its SHA-256 differs from the one recorded in {SUMS_FILE} when it was written (a disk error, or a copy that did not finish)"),
        }
    }

    fn unreadable(path: &Path, error: std::io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            reason: format!("cannot read: {error}"),
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The digests recorded in `dir`, by file name; a name may have two while it is being
/// replaced (see `write_recorded`). Empty without a `SHA256SUMS`.
pub fn recorded(dir: &Path) -> Result<BTreeMap<String, Vec<String>>, ChecksumError> {
    let path = dir.join(SUMS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(ChecksumError::unreadable(&path, error)),
    };
    let mut sums: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        // `<64 hex digits><two spaces, or space and * for binary mode><name>`
        if let (Some(hex), Some(name)) = (line.get(..64), line.get(66..)) {
            sums.entry(name.to_string())
                .or_default()
                .push(hex.to_string());
        } else {
            return Err(ChecksumError::damaged(&path));
        }
    }
    Ok(sums)
}

fn write_sums(dir: &Path, sums: &BTreeMap<String, Vec<String>>) -> Result<(), WriteError> {
    let text: String = sums
        .iter()
        .flat_map(|(name, hexes)| hexes.iter().map(move |hex| format!("{hex}  {name}\n")))
        .collect();
    write_file(&dir.join(SUMS_FILE), text.as_bytes())
}

/// Writes `bytes` as `dir/name` with its digest recorded. While the file is replaced, the
/// record holds the old and the new digest, so an interruption between the two renames leaves
/// a file that still checks.
pub fn write_recorded(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
    let mut sums = recorded(dir).unwrap_or_default();
    let hex = sha256_hex(bytes);
    let entry = sums.entry(name.to_string()).or_default();
    if !entry.contains(&hex) {
        entry.push(hex.clone());
        write_sums(dir, &sums)?;
    }
    write_file(&dir.join(name), bytes)?;
    sums.insert(name.to_string(), vec![hex]);
    write_sums(dir, &sums)
}

/// Writes the `SHA256SUMS` of a directory whose files are written once (a checkpoint).
pub fn write_all(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), WriteError> {
    let sums = files
        .iter()
        .map(|(name, bytes)| (name.to_string(), vec![sha256_hex(bytes)]))
        .collect();
    write_sums(dir, &sums)
}

/// The bytes of `path`, checked against its directory's record when it has one.
pub fn read_checked(path: &Path) -> Result<Vec<u8>, ChecksumError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    read_against(path, &recorded(dir)?)
}

/// The bytes of `path`, checked against `sums`, the record of its directory.
fn read_against(
    path: &Path,
    sums: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<u8>, ChecksumError> {
    let bytes = std::fs::read(path).map_err(|error| ChecksumError::unreadable(path, error))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(hexes) = sums.get(&name) {
        if !hexes.contains(&sha256_hex(&bytes)) {
            return Err(ChecksumError::damaged(path));
        }
    }
    Ok(bytes)
}

/// What a check of one directory found.
#[derive(Debug, Default)]
pub struct DirCheck {
    /// Files whose digest matches.
    pub good: Vec<String>,
    /// Files recorded but damaged or missing, with why.
    pub bad: Vec<ChecksumError>,
    /// Files expected there and present, but not recorded (written by an older zoo).
    pub unrecorded: Vec<PathBuf>,
}

/// Checks every file recorded in `dir`, and which of `expected` are there without a record.
pub fn check_dir(dir: &Path, expected: &[&str]) -> DirCheck {
    let mut check = DirCheck::default();
    let sums = match recorded(dir) {
        Ok(sums) => sums,
        Err(e) => {
            check.bad.push(e);
            return check;
        }
    };
    for name in sums.keys() {
        match read_against(&dir.join(name), &sums) {
            Ok(_) => check.good.push(name.clone()),
            Err(e) => check.bad.push(e),
        }
    }
    check.unrecorded = expected
        .iter()
        .filter(|name| !sums.contains_key(**name))
        .map(|name| dir.join(name))
        .filter(|path| path.exists())
        .collect();
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_flipped_byte_is_found_and_named() {
        let dir = tempfile::tempdir().unwrap();
        write_recorded(dir.path(), "model.bpk", b"weights").unwrap();
        let path = dir.path().join("model.bpk");
        assert_eq!(read_checked(&path).unwrap(), b"weights");
        std::fs::write(&path, b"weightz").unwrap();
        let err = read_checked(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: damaged", path.display())),
            "{err}"
        );
        let check = check_dir(dir.path(), &["model.bpk"]);
        assert!(check.good.is_empty() && check.bad.len() == 1 && check.unrecorded.is_empty());
    }

    #[test]
    fn the_record_is_sha256sums_format_and_keeps_one_digest_per_file() {
        let dir = tempfile::tempdir().unwrap();
        write_recorded(dir.path(), "model.bpk", b"one").unwrap();
        write_recorded(dir.path(), "model.bpk", b"two").unwrap();
        let text = std::fs::read_to_string(dir.path().join(SUMS_FILE)).unwrap();
        assert_eq!(text, format!("{}  model.bpk\n", sha256_hex(b"two")));
        assert_eq!(check_dir(dir.path(), &[]).good, ["model.bpk"]);
    }

    #[test]
    fn a_file_without_a_record_is_read_unchecked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bpk"), b"old run").unwrap();
        assert_eq!(
            read_checked(&dir.path().join("model.bpk")).unwrap(),
            b"old run"
        );
        let check = check_dir(dir.path(), &["model.bpk", "optim.bpk"]);
        assert_eq!(check.unrecorded, [dir.path().join("model.bpk")]);
    }
}
