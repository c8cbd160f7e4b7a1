//! Weights on disk: a module as burnpack bytes and back, and checkpoints,
//! `<run>/checkpoints/epoch-NNNN/{model.bpk, optim.bpk, state.json, SHA256SUMS}` after N epochs,
//! or `epoch-NNNN-batch-BBBBBB/` when training was interrupted B batches into epoch N+1. Each
//! checkpoint is written into a `.partial` directory that is renamed into place only once
//! complete, so a crash leaves either the previous checkpoint or the new one, never a broken
//! one; a write that fails (a full disk) removes the `.partial` before it reports. A checkpoint
//! that no longer matches its `SHA256SUMS` is set aside as `<name>.damaged` by `set_aside`.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;

use crate::fsutil::WriteError;

/// Weights that could not be read into a model.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct WeightsError {
    pub path: PathBuf,
    pub message: String,
}

/// A module's weights as burnpack bytes.
pub fn module_bytes<M: Module>(model: &M) -> Result<Vec<u8>, String> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| e.to_string())?;
    Ok(bytes.to_vec())
}

/// Loads burnpack weights from `path` into `model` (keeping its device).
pub fn load_module<M: Module>(model: M, path: &Path) -> Result<M, WeightsError> {
    let fail = |message: String| WeightsError {
        path: path.to_path_buf(),
        message,
    };
    let bytes = crate::checksums::read_checked(path).map_err(|e| fail(e.reason))?;
    let record =
        ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| fail(e.to_string()))?;
    model
        .try_load_record(record)
        .map_err(|e| fail(format!("does not match this model: {e}")))
}

/// A fingerprint of every float parameter and buffer of a module, in visiting order
/// (FNV-1a over the f32 bits, as 16 hex digits): two runs with equal digests ended with the
/// same weights. Burnpack files cannot tell that, since they also hold per-run parameter ids.
pub fn weights_digest<M: Module>(model: &M) -> String {
    struct Fnv(u64);
    impl ModuleVisitor for Fnv {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param
                .val()
                .try_into_vec_as::<f32>()
                .expect("float parameters");
            for byte in values.iter().flat_map(|v| v.to_bits().to_le_bytes()) {
                self.0 = (self.0 ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut fnv = Fnv(0xcbf2_9ce4_8422_2325);
    model.visit(&mut fnv);
    format!("{:016x}", fnv.0)
}

/// How many completed checkpoints to keep (the newest).
const KEEP: usize = 2;

pub const MODEL_FILE: &str = "model.bpk";
pub const OPTIM_FILE: &str = "optim.bpk";
pub const STATE_FILE: &str = "state.json";

fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// Where in training a checkpoint was taken: after `epochs` whole epochs and `batches`
/// batches of the next one (0 at an epoch's end). Orders as training goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub epochs: usize,
    pub batches: usize,
}

impl Position {
    fn dir_name(self) -> String {
        match self.batches {
            0 => format!("epoch-{:04}", self.epochs),
            b => format!("epoch-{:04}-batch-{b:06}", self.epochs),
        }
    }

    fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("epoch-")?;
        let (epochs, batches) = match rest.split_once("-batch-") {
            Some((e, b)) => (e.parse().ok()?, b.parse().ok()?),
            None => (rest.parse().ok()?, 0),
        };
        Some(Self { epochs, batches })
    }
}

/// The newest complete checkpoint: where it was taken, and its directory.
pub fn latest(run_dir: &Path) -> std::io::Result<Option<(Position, PathBuf)>> {
    Ok(complete(run_dir)?.pop())
}

/// Complete checkpoints, oldest first.
pub fn complete(run_dir: &Path) -> std::io::Result<Vec<(Position, PathBuf)>> {
    let dir = checkpoints_dir(run_dir);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(position) = Position::parse(&name) {
            found.push((position, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes one checkpoint from its files' bytes (with their `SHA256SUMS`), then drops all but
/// the newest `KEEP`. A failed write leaves no trace of the new checkpoint.
pub fn save(
    run_dir: &Path,
    position: Position,
    files: &[(&str, &[u8])],
) -> Result<PathBuf, WriteError> {
    let dir = checkpoints_dir(run_dir);
    let final_dir = dir.join(position.dir_name());
    let partial = dir.join(format!(".{}.partial", position.dir_name()));
    // Errors name the checkpoint being written, not the hidden directory it is written in.
    let fail = |e| WriteError::new(&final_dir, e);
    let written = write_partial(&partial, files)
        .map_err(|e| fail(e.error))
        .and_then(|()| {
            if final_dir.exists() {
                std::fs::remove_dir_all(&final_dir).map_err(fail)?;
            }
            std::fs::rename(&partial, &final_dir).map_err(fail)
        });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    let all = complete(run_dir).map_err(|e| WriteError::new(&dir, e))?;
    for (_, old) in &all[..all.len().saturating_sub(KEEP)] {
        std::fs::remove_dir_all(old).map_err(|e| WriteError::new(old, e))?;
    }
    Ok(final_dir)
}

fn write_partial(partial: &Path, files: &[(&str, &[u8])]) -> Result<(), WriteError> {
    if partial.exists() {
        std::fs::remove_dir_all(partial).map_err(|e| WriteError::new(partial, e))?;
    }
    std::fs::create_dir_all(partial).map_err(|e| WriteError::new(partial, e))?;
    for (name, bytes) in files {
        crate::fsutil::write_file(&partial.join(name), bytes)?;
    }
    crate::checksums::write_all(partial, files)
}

/// Renames a checkpoint that cannot be read to `<name>.damaged`, out of `complete`'s sight and
/// kept for inspection; returns its new path.
pub fn set_aside(dir: &Path) -> std::io::Result<PathBuf> {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".damaged");
    let to = dir.with_file_name(name);
    if to.exists() {
        std::fs::remove_dir_all(&to)?;
    }
    std::fs::rename(dir, &to)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_carries_the_digests_of_its_files() {
        let run = tempfile::tempdir().unwrap();
        let at = Position {
            epochs: 1,
            batches: 0,
        };
        let dir = save(
            run.path(),
            at,
            &[("state.json", b"{}"), ("optim.bpk", b"m")],
        )
        .unwrap();
        assert_eq!(
            crate::checksums::check_dir(&dir, &[]).good,
            ["optim.bpk", "state.json"]
        );
        let damaged = set_aside(&dir).unwrap();
        assert!(damaged.ends_with("checkpoints/epoch-0001.damaged"));
        assert!(latest(run.path()).unwrap().is_none());
    }

    #[test]
    fn keeps_the_newest_two_and_ignores_partials() {
        let run = tempfile::tempdir().unwrap();
        let at = |epochs, batches| Position { epochs, batches };
        for position in [at(1, 0), at(2, 0), at(2, 7), at(2, 30)] {
            save(run.path(), position, &[("state.json", b"{}")]).unwrap();
        }
        std::fs::create_dir_all(run.path().join("checkpoints/.epoch-0003.partial")).unwrap();
        let (position, dir) = latest(run.path()).unwrap().unwrap();
        assert_eq!(position, at(2, 30));
        assert!(dir.ends_with("checkpoints/epoch-0002-batch-000030"));
        assert!(dir.join("state.json").is_file());
        let kept: Vec<_> = complete(run.path())
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(kept, [at(2, 7), at(2, 30)]);
    }

    #[test]
    fn positions_round_trip_through_directory_names() {
        for position in [
            Position {
                epochs: 0,
                batches: 5,
            },
            Position {
                epochs: 12,
                batches: 0,
            },
        ] {
            assert_eq!(Position::parse(&position.dir_name()), Some(position));
        }
        assert_eq!(Position::parse("epoch-x"), None);
        assert_eq!(Position::parse(".epoch-0001.partial"), None);
    }
}
