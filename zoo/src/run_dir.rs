//! A run directory, shared by the image and text paths: its file names, `metrics.json`, the
//! checks before a run starts in it, and reading back what a run saved.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::module::Module;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::checkpoint;
use crate::config::Experiment;
use crate::eval::Evaluation;
use crate::fsutil::write_file;
use crate::train::EpochRecord;

pub const CONFIG_FILE: &str = "config.toml";
pub const NORMALIZATION_FILE: &str = "normalization.json";
pub const VOCAB_FILE: &str = "vocab.json";
pub const MODEL_FILE: &str = "model.bpk";
pub const METRICS_FILE: &str = "metrics.json";

/// `metrics.json` of an image model's run: what it measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    pub model: String,
    pub dataset: String,
    pub backend: String,
    /// Trainable parameters (batch-norm running statistics excluded).
    pub params: usize,
    pub buffers: usize,
    pub macs_per_example: usize,
    pub epochs: usize,
    pub stopped_early: bool,
    pub epoch_seconds: Vec<f64>,
    pub train_samples_per_second: f64,
    pub history: Vec<EpochRecord>,
    pub class_names: Vec<String>,
    /// Seconds the test-set evaluation took (for kNN: the whole prediction).
    pub test_seconds: f64,
    /// The validation split's evaluation where no epoch history carries it (kNN).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub validation: Option<Evaluation>,
    pub test: Evaluation,
    /// `checkpoint::weights_digest` of the trained model (absent for kNN and older runs).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weights_digest: Option<String>,
}

impl Metrics {
    /// Mean wall seconds per epoch (validation included); `None` without epochs (kNN).
    pub fn mean_epoch_seconds(&self) -> Option<f64> {
        mean(&self.epoch_seconds)
    }
}

/// `metrics.json` of a language model's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmMetrics {
    pub model: String,
    pub text: String,
    pub backend: String,
    pub params: usize,
    pub vocabulary: usize,
    pub epochs: usize,
    pub epoch_seconds: Vec<f64>,
    /// Training characters predicted per second.
    pub train_chars_per_second: f64,
    pub history: Vec<EpochRecord>,
    pub validation: LmScores,
    /// The unigram model's bits per character on the same validation text: the baseline.
    pub unigram_bits_per_char: f64,
    /// 300 characters sampled at temperature 0.8 after training, from the validation text's start.
    pub sample: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub weights_digest: Option<String>,
}

impl LmMetrics {
    /// Mean wall seconds per epoch (validation included).
    pub fn mean_epoch_seconds(&self) -> Option<f64> {
        mean(&self.epoch_seconds)
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// A language model's scores on held-out text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmScores {
    /// Mean cross-entropy, nats per character.
    pub loss: f64,
    pub bits_per_char: f64,
    pub perplexity: f64,
    /// Next-character accuracy and top-5 accuracy.
    pub accuracy: f64,
    pub top5: f64,
}

impl LmScores {
    pub fn from_loss(loss: f64, accuracy: f64, top5: f64) -> Self {
        Self {
            loss,
            bits_per_char: loss / std::f64::consts::LN_2,
            perplexity: loss.exp(),
            accuracy,
            top5,
        }
    }

    /// One line for the terminal, beside the unigram baseline.
    pub fn report(&self, unigram_bits_per_char: f64) -> String {
        format!(
            "validation: {:.4} nats/char = {:.3} bits/char (unigram baseline {unigram_bits_per_char:.3}), perplexity {:.2}, next-character accuracy {:.4}, top-5 {:.4}",
            self.loss, self.bits_per_char, self.perplexity, self.accuracy, self.top5
        )
    }
}

pub const LOCK_FILE: &str = ".lock";

/// The run directory held by this process: one trainer per directory at a time. The hold is the
/// OS's lock on `.lock` (flock), which the kernel releases when the process ends, however it
/// ends: no lock outlives its trainer, and on NFS the server keeps it for every node. The file
/// names the holder (pid and host) for the error another trainer gets.
#[derive(Debug)]
pub struct RunLock {
    file: std::fs::File,
}

impl RunLock {
    pub fn acquire(run_dir: &Path) -> Result<Self> {
        use std::io::Write;
        std::fs::create_dir_all(run_dir)
            .with_context(|| format!("cannot create {}", run_dir.display()))?;
        let path = run_dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let (pid, host) = holder.trim().split_once('@').unwrap_or((holder.trim(), ""));
                let place = if host.is_empty() || host == hostname() {
                    String::new()
                } else {
                    format!(" on {host}")
                };
                bail!(
                    "{} is in use by another zoo train (pid {pid}{place}); wait for it, or train into another --out DIR",
                    run_dir.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        file.set_len(0)
            .and_then(|()| write!(file, "{}@{}", std::process::id(), hostname()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self { file })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // The file stays (removing it would let two trainers lock two different files); it
        // no longer names a holder.
        let _ = self.file.set_len(0);
    }
}

/// This machine's name, for lock messages (Linux; empty elsewhere).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Takes the run directory (`RunLock`), removes what an interrupted run left half-written
/// (`.partial` checkpoints, temporary files), refuses to overwrite a run by accident and to
/// resume one with a different config, then saves the resolved config in it. A run moved to
/// another directory resumes: the output directory is not part of the comparison.
pub fn prepare(exp: &Experiment, run_dir: &Path, resume: bool) -> Result<RunLock> {
    let lock = RunLock::acquire(run_dir)?;
    remove_leftovers(run_dir)?;
    let has_checkpoint = checkpoint::latest(run_dir)
        .with_context(|| format!("cannot read {}", run_dir.display()))?
        .is_some();
    let saved = run_dir.join(CONFIG_FILE);
    let finished = run_dir.join(MODEL_FILE).exists() || run_dir.join(METRICS_FILE).exists();
    if !resume && (has_checkpoint || finished) {
        bail!(
            "{} already holds a run; pass --resume to continue it, or --out DIR to start a new one",
            run_dir.display()
        );
    }
    if resume && saved.exists() {
        let mut before = load_config(run_dir)?;
        // More (or fewer) epochs is the one change a resumed run may make; where the run
        // lives is none of the config's business.
        before.train.epochs = exp.train.epochs;
        before.output = exp.output.clone();
        if before.to_toml() != exp.to_toml() {
            bail!(
                "{} was trained with a different config (see {}); resume with the same config, or start a new run with --out DIR",
                run_dir.display(),
                saved.display()
            );
        }
    }
    save(run_dir, CONFIG_FILE, exp.to_toml().as_bytes())?;
    Ok(lock)
}

/// Deletes the `.partial` checkpoints and `.tmp-` files an interrupted write left (a full
/// disk, a kill); only the lock holder calls this, so no live writer owns them.
fn remove_leftovers(run_dir: &Path) -> Result<()> {
    for path in leftovers(run_dir) {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// What writes under way, or interrupted ones, leave in a run directory and its
/// `checkpoints/`: `.partial` checkpoints and `.tmp-` files.
pub fn leftovers(run_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in [run_dir.to_path_buf(), run_dir.join("checkpoints")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".partial") || name.contains(".tmp-") {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// Writes `bytes` as the run's file `name`, atomically.
pub fn save(run_dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    Ok(write_file(&run_dir.join(name), bytes)?)
}

/// Writes `value` as the run's JSON file `name`.
pub fn save_json<T: Serialize>(run_dir: &Path, name: &str, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).expect("run files serialize");
    save(run_dir, name, &text)
}

/// Reads the run's JSON file `name`.
pub fn load_json<T: DeserializeOwned>(run_dir: &Path, name: &str) -> Result<T> {
    let path = run_dir.join(name);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a {name} of zoo", path.display()))
}

/// The run's resolved config.
pub fn load_config(run_dir: &Path) -> Result<Experiment> {
    let path = run_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is not a run directory (no {CONFIG_FILE})",
            run_dir.display()
        )
    })?;
    Ok(Experiment::parse(&text, &path.display().to_string(), &[])?)
}

/// Saves the trained model's weights as the run's `model.bpk`, its digest in `SHA256SUMS`.
pub fn save_model<M: Module>(run_dir: &Path, model: &M) -> Result<()> {
    let bytes = checkpoint::module_bytes(model).map_err(anyhow::Error::msg)?;
    Ok(crate::checksums::write_recorded(
        run_dir, MODEL_FILE, &bytes,
    )?)
}

/// Loads the run's trained weights into `model`, a freshly built network of its config.
pub fn load_model<M: Module>(run_dir: &Path, model: M) -> Result<M> {
    let path = run_dir.join(MODEL_FILE);
    if !path.exists() {
        bail!("{} has no trained model yet ({MODEL_FILE}); finish the run with `zoo train CONFIG --resume`", run_dir.display());
    }
    Ok(checkpoint::load_module(model, &path)?)
}
