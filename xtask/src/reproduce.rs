//! `cargo xtask reproduce`: trains every shipped Fashion-MNIST config with `zoo train` and
//! writes the README's results table (between its `results` markers) and
//! `results/reproduce.md` from the runs' `metrics.json`, beside the references in
//! `configs/references.toml`. Finished runs are reused unless `--fresh` is given.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use zoo::run_dir::{LmMetrics, Metrics, METRICS_FILE};
use zoo::summary::group_digits;

use crate::common::{configs_in, splice_readme, stem, workspace_root, zoo_binary, References};

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

pub fn run(args: &Args) -> Result<()> {
    let root = workspace_root();
    let configs = configs_in(&root.join("configs/fashion-mnist"))?;
    let texts = configs_in(&root.join("configs/text"))?;
    let zoo = zoo_binary(&root)?;
    for config in configs.iter().chain(&texts) {
        let stem = stem(config);
        if !args.only.is_empty() && !args.only.contains(&stem) {
            continue;
        }
        let run_dir = root.join(&args.out).join(&stem);
        if run_dir.join("metrics.json").exists() && !args.fresh {
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
    let readme =
        std::fs::read_to_string(root.join("README.md")).context("cannot read README.md")?;
    let table = results_table(&root, &configs, &root.join(&args.out), &readme)?;
    std::fs::create_dir_all(root.join("results"))?;
    zoo::fsutil::write_atomic(&root.join("results/reproduce.md"), table.as_bytes())?;
    splice_readme(&root.join("README.md"), "results", &table)?;
    println!("{table}");
    // Without a language-model run here (`--only`), the README keeps its section.
    if let Some(lm) = language_model_table(&root, &zoo, &texts, &root.join(&args.out))? {
        splice_readme(&root.join("README.md"), "lm", &lm)?;
        println!("{lm}");
    }
    Ok(())
}

/// The results table: a row per config from its run's `metrics.json`, or, for a config not
/// run here (`--only`), the row the README already has.
fn results_table(root: &Path, configs: &[PathBuf], runs: &Path, readme: &str) -> Result<String> {
    let references = References::load(root)?;
    let mut out = String::from(
        "| config | model | parameters | epochs | seconds / epoch | train images/s | test accuracy | reference |\n|---|---|---:|---:|---:|---:|---:|---|\n",
    );
    for config in configs {
        let shown = config
            .strip_prefix(root)
            .unwrap_or(config)
            .display()
            .to_string();
        let run = runs.join(stem(config));
        if !run.join(METRICS_FILE).exists() {
            let earlier = format!("| `{shown}` |");
            if let Some(line) = readme.lines().find(|l| l.starts_with(&earlier)) {
                out += line;
                out.push('\n');
            }
            continue;
        }
        let m: Metrics = zoo::run_dir::load_json(&run, METRICS_FILE)?;
        // kNN has no epochs: its time is the whole test split's prediction.
        let per_epoch = m.mean_epoch_seconds().map_or_else(
            || format!("test split in {:.1}", m.test_seconds),
            |s| format!("{s:.2}"),
        );
        out += &format!(
            "| `{shown}` | {} | {} | {} | {per_epoch} | {} | **{:.4}** | {} |\n",
            m.model,
            group_digits(m.params),
            if m.epochs == 0 {
                "-".into()
            } else {
                m.epochs.to_string()
            },
            Some(m.train_samples_per_second)
                .filter(|v| *v > 0.0)
                .map_or("-".into(), |v| format!("{v:.0}")),
            m.test.accuracy,
            references.get(&m.dataset, &stem(config)).describe()
        );
    }
    Ok(out)
}

/// How the README's samples start.
const SAMPLE_PROMPT: &str = "The ";

/// The character models' validation scores against the unigram baseline, and a sample;
/// `None` when none of them has a run.
fn language_model_table(
    root: &Path,
    zoo: &Path,
    configs: &[PathBuf],
    runs: &Path,
) -> Result<Option<String>> {
    let mut out = String::from(
        "| config | parameters | epochs | seconds / epoch | train characters/s | validation bits/char | unigram bits/char | perplexity | next-character accuracy |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut samples = String::new();
    for config in configs {
        let run = runs.join(stem(config));
        if !run.join(METRICS_FILE).exists() {
            continue;
        }
        let m: LmMetrics = zoo::run_dir::load_json(&run, METRICS_FILE)?;
        let v = &m.validation;
        out += &format!(
            "| `{}` | {} | {} | {:.1} | {:.0} | **{:.3}** | {:.3} | {:.2} | {:.4} |\n",
            config.strip_prefix(root).unwrap_or(config).display(),
            group_digits(m.params),
            m.epochs,
            m.mean_epoch_seconds().unwrap_or(0.0),
            m.train_chars_per_second,
            v.bits_per_char,
            m.unigram_bits_per_char,
            v.perplexity,
            v.accuracy,
        );
        let sample = Command::new(zoo)
            .arg("sample")
            .arg(runs.join(stem(config)))
            .args([
                "--prompt",
                SAMPLE_PROMPT,
                "--length",
                "400",
                "--temperature",
                "0.7",
                "--seed",
                "0",
            ])
            .output()
            .context("cannot run zoo sample")?;
        if !sample.status.success() {
            bail!(
                "zoo sample {} failed: {}",
                stem(config),
                String::from_utf8_lossy(&sample.stderr)
            );
        }
        samples += &format!(
            "\n`zoo sample {} --prompt {SAMPLE_PROMPT:?} --length 400 --temperature 0.7 --seed 0` printed:\n\n```text\n{}\n```\n",
            runs.join(stem(config)).strip_prefix(root).unwrap_or(runs).display(),
            String::from_utf8_lossy(&sample.stdout).trim_end()
        );
    }
    Ok((!samples.is_empty()).then(|| out + &samples))
}
