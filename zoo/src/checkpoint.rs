//! Checkpoints: `<run>/checkpoints/epoch-NNNN/{model.bpk, optim.bpk, state.json}`. Each is
//! written into a `.partial` directory that is renamed into place only once complete, so a
//! crash leaves either the previous checkpoint or the new one, never a broken one.

use std::path::{Path, PathBuf};

/// How many completed checkpoints to keep (the newest).
const KEEP: usize = 2;

pub const MODEL_FILE: &str = "model.bpk";
pub const OPTIM_FILE: &str = "optim.bpk";
pub const STATE_FILE: &str = "state.json";

fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// The newest complete checkpoint: (epochs completed, its directory).
pub fn latest(run_dir: &Path) -> std::io::Result<Option<(usize, PathBuf)>> {
    Ok(complete(run_dir)?.pop())
}

/// Complete checkpoints, oldest first.
fn complete(run_dir: &Path) -> std::io::Result<Vec<(usize, PathBuf)>> {
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
        if let Some(epoch) = name
            .strip_prefix("epoch-")
            .and_then(|e| e.parse::<usize>().ok())
        {
            found.push((epoch, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes one checkpoint from its files' bytes, then drops all but the newest `KEEP`.
pub fn save(run_dir: &Path, epoch: usize, files: &[(&str, &[u8])]) -> std::io::Result<PathBuf> {
    let dir = checkpoints_dir(run_dir);
    let final_dir = dir.join(format!("epoch-{epoch:04}"));
    let partial = dir.join(format!(".epoch-{epoch:04}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(&partial)?;
    for (name, bytes) in files {
        crate::fsutil::write_atomic(&partial.join(name), bytes)?;
    }
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir)?;
    }
    std::fs::rename(&partial, &final_dir)?;
    let all = complete(run_dir)?;
    for (_, old) in &all[..all.len().saturating_sub(KEEP)] {
        std::fs::remove_dir_all(old)?;
    }
    Ok(final_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_two_and_ignores_partials() {
        let run = tempfile::tempdir().unwrap();
        for epoch in 1..=3 {
            save(run.path(), epoch, &[("state.json", b"{}")]).unwrap();
        }
        std::fs::create_dir_all(run.path().join("checkpoints/.epoch-0004.partial")).unwrap();
        let (epoch, dir) = latest(run.path()).unwrap().unwrap();
        assert_eq!(epoch, 3);
        assert!(dir.join("state.json").is_file());
        assert_eq!(complete(run.path()).unwrap().len(), 2);
    }
}
