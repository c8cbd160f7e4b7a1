//! Writes that never leave a half-written file behind: write a temporary sibling, flush it
//! to disk, then rename it over the target (atomic on POSIX file systems). A write that fails
//! removes its temporary before the error is returned, so a full disk leaves nothing behind.

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// A write that failed, for the user: the file and the cause, said once, and on a full disk
/// (or an exhausted quota) what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {error}{}", path.display(), advice(error))]
pub struct WriteError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

impl WriteError {
    pub fn new(path: &Path, error: std::io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            error,
        }
    }
}

fn advice(error: &std::io::Error) -> &'static str {
    match error.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "; nothing was left half-written: free space on that disk, or point --out at another one"
        }
        _ => "",
    }
}

/// `write_atomic`, failing with a `WriteError`.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic(path, bytes).map_err(|e| WriteError::new(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_rename_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the way: the rename fails after the bytes were written.
        let path = dir.path().join("model.bpk");
        std::fs::create_dir_all(path.join("occupied")).unwrap();
        assert!(write_atomic(&path, b"weights").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["model.bpk"]);
    }

    #[test]
    fn a_full_disk_says_what_to_do() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let message = WriteError::new(Path::new("runs/mlp/model.bpk"), full).to_string();
        assert!(
            message.starts_with("cannot write runs/mlp/model.bpk: No space left on device")
                && message.ends_with("point --out at another one"),
            "{message}"
        );
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        let message = WriteError::new(Path::new("x"), denied).to_string();
        assert!(!message.contains("--out"), "{message}");
    }
}
