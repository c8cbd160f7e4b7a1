//! `cargo xtask reproduce`: trains every shipped Fashion-MNIST and text config with `zoo train`
//! and records each run's figures in `bench/results/reproduce.json`, a row per config tagged
//! with its commit, date and machine (`--only` replaces the named rows and keeps the others).
//! The results tables of docs/ and README.md are rendered from that record (`docs`).
//! Finished runs are reused unless `--fresh` is given.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use zoo::run_dir::{LmMetrics, Metrics, METRICS_FILE};
use zoo::summary::group_digits;

use crate::common::{configs_in, stem, workspace_root, zoo_binary, References};
use crate::records::{self, Provenance};

/// The record's name under `bench/results/`.
pub const RECORD: &str = "reproduce";

#[derive(clap::Args)]
pub struct Args {
    /// Backend to train on.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Re-train runs that already finished.
    #[arg(long)]
    fresh: bool,
    /// Only these configs (file stems, comma-separated); all when absent.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the runs go.
    #[arg(long, default_value = "results/reproduce")]
    out: PathBuf,
}

/// The shipped configs' figures: image classifiers and character models.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reproduced {
    pub images: Vec<ImageResult>,
    pub text: Vec<TextResult>,
}

/// One image config's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageResult {
    /// The config's path from the workspace root.
    pub config: String,
    pub model: String,
    pub dataset: String,
    pub backend: String,
    pub params: usize,
    /// 0 for kNN, which is fitted, not trained.
    pub epochs: usize,
    /// Mean wall seconds per epoch, validation included (none for kNN).
    pub seconds_per_epoch: Option<f64>,
    pub train_samples_per_second: Option<f64>,
    /// Seconds to evaluate the test split (kNN: to predict it).
    pub test_seconds: Option<f64>,
    pub test_accuracy: f64,
    pub test_top5: Option<f64>,
    /// A hash of the final weights: equal digests, equal weights.
    pub weights_digest: Option<String>,
    pub measured: Provenance,
}

/// One character model's run, with a sample of its text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextResult {
    pub config: String,
    pub params: usize,
    pub epochs: usize,
    pub seconds_per_epoch: f64,
    pub train_chars_per_second: f64,
    pub validation_bits_per_char: f64,
    pub unigram_bits_per_char: f64,
    pub perplexity: f64,
    pub next_char_accuracy: f64,
    /// The `zoo sample` command and what it printed.
    pub sample_command: String,
    pub sample: String,
    pub measured: Provenance,
}

/// Trains what `args` asks for and updates the record; returns that a record was written.
pub fn run(args: &Args) -> Result<bool> {
    let root = workspace_root();
    let configs = configs_in(&root.join("configs/fashion-mnist"))?;
    let texts = configs_in(&root.join("configs/text"))?;
    let zoo = zoo_binary(&root)?;
    let wanted = |config: &Path| args.only.is_empty() || args.only.contains(&stem(config));
    for config in configs.iter().chain(&texts).filter(|c| wanted(c)) {
        let stem = stem(config);
        let run_dir = root.join(&args.out).join(&stem);
        if run_dir.join(METRICS_FILE).exists() && !args.fresh {
            eprintln!("reproduce: {stem}: reusing {}", run_dir.display());
            continue;
        }
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir)
                .with_context(|| format!("cannot clear {}", run_dir.display()))?;
        }
        eprintln!("reproduce: {stem}: training on {}", args.backend);
        let status = Command::new(&zoo)
            .current_dir(&root)
            .arg("train")
            .arg(config)
            .args(["--backend", &args.backend, "--out"])
            .arg(&run_dir)
            .status()
            .context("cannot run zoo")?;
        if !status.success() {
            bail!("zoo train {} failed", config.display());
        }
    }
    let mut record: Reproduced = records::load(&root, RECORD)?.unwrap_or_default();
    // The commit, date and machine are the run's; only the command differs per config.
    let here = Provenance::now(&root, String::new());
    let measured = |config: &Path| Provenance {
        command: format!(
            "cargo xtask reproduce --only {} --backend {}",
            stem(config),
            args.backend
        ),
        ..here.clone()
    };
    let shown = |config: &Path| shown(&root, config);
    for config in configs.iter().filter(|c| wanted(c)) {
        let m: Metrics =
            zoo::run_dir::load_json(&root.join(&args.out).join(stem(config)), METRICS_FILE)?;
        let row = ImageResult {
            config: shown(config),
            model: m.model.clone(),
            dataset: m.dataset.clone(),
            backend: m.backend.clone(),
            params: m.params,
            epochs: m.epochs,
            seconds_per_epoch: m.mean_epoch_seconds(),
            train_samples_per_second: Some(m.train_samples_per_second).filter(|v| *v > 0.0),
            test_seconds: Some(m.test_seconds),
            test_accuracy: m.test.accuracy,
            test_top5: Some(m.test.top5),
            weights_digest: m.weights_digest.clone(),
            measured: measured(config),
        };
        record.images.retain(|r| r.config != row.config);
        record.images.push(row);
    }
    for config in texts.iter().filter(|c| wanted(c)) {
        let row = text_result(&root, &zoo, config, &root.join(&args.out), measured(config))?;
        record.text.retain(|r| r.config != row.config);
        record.text.push(row);
    }
    record.images.sort_by(|a, b| a.config.cmp(&b.config));
    record.text.sort_by(|a, b| a.config.cmp(&b.config));
    let file = records::save(&root, RECORD, &record)?;
    eprintln!("reproduce: wrote {}", file.display());
    Ok(true)
}

/// A config's path from the workspace root, as the tables show it.
fn shown(root: &Path, config: &Path) -> String {
    config
        .strip_prefix(root)
        .unwrap_or(config)
        .display()
        .to_string()
}

/// How the samples start.
const SAMPLE_PROMPT: &str = "The ";

/// A character model's validation scores, and a sample of its text.
fn text_result(
    root: &Path,
    zoo: &Path,
    config: &Path,
    runs: &Path,
    measured: Provenance,
) -> Result<TextResult> {
    let run = runs.join(stem(config));
    let m: LmMetrics = zoo::run_dir::load_json(&run, METRICS_FILE)?;
    let sample_args = [
        "--prompt",
        SAMPLE_PROMPT,
        "--length",
        "400",
        "--temperature",
        "0.7",
        "--seed",
        "0",
    ];
    let sample = Command::new(zoo)
        .arg("sample")
        .arg(&run)
        .args(sample_args)
        .output()
        .context("cannot run zoo sample")?;
    if !sample.status.success() {
        bail!(
            "zoo sample {} failed: {}",
            stem(config),
            String::from_utf8_lossy(&sample.stderr)
        );
    }
    let v = &m.validation;
    Ok(TextResult {
        config: shown(root, config),
        params: m.params,
        epochs: m.epochs,
        seconds_per_epoch: m.mean_epoch_seconds().unwrap_or(0.0),
        train_chars_per_second: m.train_chars_per_second,
        validation_bits_per_char: v.bits_per_char,
        unigram_bits_per_char: m.unigram_bits_per_char,
        perplexity: v.perplexity,
        next_char_accuracy: v.accuracy,
        sample_command: format!(
            "cargo run -- sample {} --prompt {SAMPLE_PROMPT:?} --length 400 --temperature 0.7 --seed 0",
            shown(root, &run)
        ),
        sample: String::from_utf8_lossy(&sample.stdout).trim_end().to_string(),
        measured,
    })
}

/// The results table of the image configs, beside the notes' references.
pub fn images_table(root: &Path, record: &Reproduced) -> Result<String> {
    let references = References::load(root)?;
    let mut out = String::from(
        "| config | model | parameters | epochs | seconds / epoch | train images/s | test accuracy | reference | measured |\n|---|---|---:|---:|---:|---:|---:|---|---|\n",
    );
    for r in &record.images {
        // kNN has no epochs: its time is the whole test split's prediction.
        let per_epoch = match (r.seconds_per_epoch, r.test_seconds) {
            (Some(s), _) => format!("{s:.2}"),
            (None, Some(t)) => format!("test split in {t:.1}"),
            (None, None) => "-".into(),
        };
        out += &format!(
            "| `{}` | {} | {} | {} | {per_epoch} | {} | **{:.4}** | {} | {} |\n",
            r.config,
            r.model,
            group_digits(r.params),
            if r.epochs == 0 {
                "-".into()
            } else {
                r.epochs.to_string()
            },
            r.train_samples_per_second
                .map_or("-".into(), |v| format!("{v:.0}")),
            r.test_accuracy,
            references.get(&r.dataset, &stem(&r.config)).describe(),
            r.measured.date,
        );
    }
    Ok(out)
}

/// The character models' scores against the unigram baseline, and their samples.
pub fn text_table(record: &Reproduced) -> String {
    let mut out = String::from(
        "| config | parameters | epochs | seconds / epoch | train characters/s | validation bits/char | unigram bits/char | perplexity | next-character accuracy | measured |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in &record.text {
        out += &format!(
            "| `{}` | {} | {} | {:.1} | {:.0} | **{:.3}** | {:.3} | {:.2} | {:.4} | {} |\n",
            r.config,
            group_digits(r.params),
            r.epochs,
            r.seconds_per_epoch,
            r.train_chars_per_second,
            r.validation_bits_per_char,
            r.unigram_bits_per_char,
            r.perplexity,
            r.next_char_accuracy,
            r.measured.date,
        );
    }
    for r in &record.text {
        out += &format!(
            "\n`{}` printed:\n\n```text\n{}\n```\n",
            r.sample_command, r.sample
        );
    }
    out
}
