//! `zoo verify`: checks runs' weights (the final model and every checkpoint) against the
//! SHA-256 digests recorded when they were written, without loading a backend; a batch's
//! results directory is checked run by run.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::checksums::{self, ChecksumError, SUMS_FILE};
use crate::run_dir::{self, CONFIG_FILE, MODEL_FILE};

/// What the check of one run directory found.
#[derive(Debug, Default)]
pub struct RunReport {
    pub run_dir: PathBuf,
    /// Files whose digest matches the record.
    pub checked: usize,
    pub checkpoints: usize,
    pub damaged: Vec<ChecksumError>,
    /// Weights without a record (written by an older zoo).
    pub unchecked: Vec<PathBuf>,
    /// `.partial` checkpoints and `.tmp-` files: a write under way, or one interrupted, which
    /// the next `zoo train --resume` removes.
    pub leftovers: Vec<PathBuf>,
    /// Checkpoints a resume found damaged and set aside (`.damaged`).
    pub set_aside: Vec<PathBuf>,
}

impl RunReport {
    /// The report's lines: a summary, then one line per finding.
    pub fn lines(&self) -> Vec<String> {
        let run = self.run_dir.display();
        let mut lines = vec![match self.damaged.len() {
            0 => {
                let model = self.run_dir.join(MODEL_FILE).exists();
                let checkpoints = match self.checkpoints {
                    1 => "1 checkpoint".to_string(),
                    n => format!("{n} checkpoints"),
                };
                let what = match (model, self.checkpoints) {
                    (true, 0) => "the model".to_string(),
                    (true, _) => format!("the model and {checkpoints}"),
                    (false, _) => checkpoints,
                };
                format!(
                    "ok       {run}: {what} ({} files) match their recorded SHA-256",
                    self.checked
                )
            }
            n => format!("DAMAGED  {run}: damaged files: {n}"),
        }];
        lines.extend(self.damaged.iter().map(|e| format!("  {e}")));
        lines.extend(self.unchecked.iter().map(|p| {
            format!(
                "  {}: not checked: no {SUMS_FILE} (written by an older zoo)",
                p.display()
            )
        }));
        lines.extend(self.leftovers.iter().map(|p| {
            format!(
                "  {}: half-written (a write under way, or interrupted; the next `zoo train --resume` removes it)",
                p.display()
            )
        }));
        lines.extend(self.set_aside.iter().map(|p| {
            format!(
                "  {}: a damaged checkpoint, set aside by a resume",
                p.display()
            )
        }));
        lines
    }
}

/// The run directories at `path`: itself when it holds a run's `config.toml`, else those
/// below it (a batch's `--out`), in name order.
pub fn find_runs(path: &Path) -> Vec<PathBuf> {
    if path.join(CONFIG_FILE).is_file() {
        return vec![path.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !is_hidden(p))
        .collect();
    dirs.sort();
    dirs.iter().flat_map(|d| find_runs(d)).collect()
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Checks one run directory.
pub fn verify_run(run_dir: &Path) -> RunReport {
    let mut report = RunReport {
        run_dir: run_dir.to_path_buf(),
        ..Default::default()
    };
    check_weights_dir(run_dir, &[MODEL_FILE], &mut report);
    for (_, dir) in checkpoint::complete(run_dir).unwrap_or_default() {
        report.checkpoints += 1;
        let files = [
            checkpoint::MODEL_FILE,
            checkpoint::OPTIM_FILE,
            checkpoint::STATE_FILE,
        ];
        check_weights_dir(&dir, &files, &mut report);
    }
    let entries = std::fs::read_dir(run_dir.join("checkpoints"))
        .into_iter()
        .flatten();
    report.set_aside = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "damaged"))
        .collect();
    report.set_aside.sort();
    report.leftovers = run_dir::leftovers(run_dir);
    report
}

/// Checks the files recorded in `dir`'s `SHA256SUMS`; of `expected`, those present but not
/// recorded are unchecked, and those recorded but gone are damaged.
fn check_weights_dir(dir: &Path, expected: &[&str], report: &mut RunReport) {
    let check = checksums::check_dir(dir, expected);
    report.checked += check.good.len();
    report.damaged.extend(check.bad);
    report.unchecked.extend(check.unrecorded);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Position;

    fn write_run(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(CONFIG_FILE), "").unwrap();
        checksums::write_recorded(dir, MODEL_FILE, b"final").unwrap();
        for epochs in [1, 2] {
            let at = Position { epochs, batches: 0 };
            let files: [(&str, &[u8]); 3] = [
                (checkpoint::MODEL_FILE, b"w"),
                (checkpoint::OPTIM_FILE, b"o"),
                (checkpoint::STATE_FILE, b"{}"),
            ];
            checkpoint::save(dir, at, &files).unwrap();
        }
    }

    #[test]
    fn finds_each_run_of_a_batch_and_names_a_damaged_file() {
        let out = tempfile::tempdir().unwrap();
        let (a, b) = (out.path().join("runs/a"), out.path().join("runs/b"));
        write_run(&a);
        write_run(&b);
        assert_eq!(find_runs(out.path()), [a.clone(), b.clone()]);
        let report = verify_run(&a);
        assert_eq!((report.checked, report.checkpoints), (7, 2));
        assert!(report.damaged.is_empty(), "{:?}", report.lines());

        let optim = b.join("checkpoints/epoch-0002/optim.bpk");
        std::fs::write(&optim, b"x").unwrap();
        std::fs::remove_file(b.join(MODEL_FILE)).unwrap();
        let report = verify_run(&b);
        let damaged: Vec<_> = report.damaged.iter().map(|e| e.path.clone()).collect();
        assert_eq!(damaged, [b.join(MODEL_FILE), optim]);
        assert!(report.lines()[0].starts_with("DAMAGED"));
    }

    #[test]
    fn weights_without_a_record_are_reported_unchecked() {
        let run = tempfile::tempdir().unwrap();
        std::fs::write(run.path().join(MODEL_FILE), b"old").unwrap();
        let report = verify_run(run.path());
        assert_eq!(report.unchecked, [run.path().join(MODEL_FILE)]);
        assert!(report.damaged.is_empty());
    }
}
