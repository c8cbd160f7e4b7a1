//! `cargo xtask reproduce`: trains every shipped Fashion-MNIST config with `zoo train` and
//! writes the README's results table (between its `results` markers) and
//! `results/reproduce.md` from the runs' `metrics.json`, beside the references in
//! `configs/references.toml`. Finished runs are reused unless `--fresh` is given.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

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
    let root = super::workspace_root();
    let configs = super::configs_in(&root.join("configs/fashion-mnist"))?;
    let texts = super::configs_in(&root.join("configs/text"))?;
    let zoo = super::zoo_binary(&root)?;
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
    let table = results_table(&root, &configs, &root.join(&args.out))?;
    std::fs::create_dir_all(root.join("results"))?;
    zoo::fsutil::write_atomic(&root.join("results/reproduce.md"), table.as_bytes())?;
    super::splice_readme(&root.join("README.md"), "results", &table)?;
    println!("{table}");
    let lm = language_model_table(&root, &zoo, &texts, &root.join(&args.out))?;
    super::splice_readme(&root.join("README.md"), "lm", &lm)?;
    println!("{lm}");
    Ok(())
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn results_table(root: &Path, configs: &[PathBuf], runs: &Path) -> Result<String> {
    let references: toml::Table = std::fs::read_to_string(root.join("configs/references.toml"))
        .context("cannot read configs/references.toml")?
        .parse()
        .context("configs/references.toml")?;
    let mut out = String::from(
        "| config | model | parameters | epochs | seconds / epoch | train images/s | test accuracy | reference |\n|---|---|---:|---:|---:|---:|---:|---|\n",
    );
    for config in configs {
        let stem = stem(config);
        let path = runs.join(&stem).join("metrics.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let m: Value =
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let epochs = m["epoch_seconds"].as_array().map_or(0, |e| e.len());
        let per_epoch = super::mean_epoch_seconds(&m);
        let reference = references.get("fashion-mnist").and_then(|t| t.get(&stem));
        let reference = match reference {
            Some(r) => match r.get("accuracy").and_then(|a| a.as_float()) {
                Some(a) => format!(
                    "{a:.4}: {}",
                    r.get("source").and_then(|s| s.as_str()).unwrap_or("")
                ),
                None => r
                    .get("source")
                    .and_then(|s| s.as_str())
                    .unwrap_or("-")
                    .to_string(),
            },
            None => "-".into(),
        };
        let knn_seconds = m["test_seconds"].as_f64().filter(|_| m["model"] == "knn");
        out += &format!(
            "| `{}` | {} | {} | {} | {} | {} | **{:.4}** | {} |\n",
            config.strip_prefix(root).unwrap_or(config).display(),
            m["model"].as_str().unwrap_or("?"),
            m["params"]
                .as_u64()
                .map_or("-".into(), |p| zoo::summary::group_digits(p as usize)),
            if epochs == 0 {
                "-".into()
            } else {
                epochs.to_string()
            },
            per_epoch.map_or_else(
                || knn_seconds.map_or("-".into(), |s| format!("test split in {s:.1}")),
                |s| format!("{s:.2}")
            ),
            m["train_samples_per_second"]
                .as_f64()
                .filter(|v| *v > 0.0)
                .map_or("-".into(), |v| format!("{v:.0}")),
            m["test"]["accuracy"].as_f64().unwrap_or(f64::NAN),
            reference
        );
    }
    Ok(out)
}

/// How the README's samples start.
const SAMPLE_PROMPT: &str = "The ";

/// The character models' validation scores against the unigram baseline, and a sample.
fn language_model_table(
    root: &Path,
    zoo: &Path,
    configs: &[PathBuf],
    runs: &Path,
) -> Result<String> {
    let mut out = String::from(
        "| config | parameters | epochs | seconds / epoch | train characters/s | validation bits/char | unigram bits/char | perplexity | next-character accuracy |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut samples = String::new();
    for config in configs {
        let path = runs.join(stem(config)).join("metrics.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let m: Value =
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let seconds = super::mean_epoch_seconds(&m).unwrap_or(0.0);
        let v = &m["validation"];
        out += &format!(
            "| `{}` | {} | {} | {seconds:.1} | {:.0} | **{:.3}** | {:.3} | {:.2} | {:.4} |\n",
            config.strip_prefix(root).unwrap_or(config).display(),
            m["params"]
                .as_u64()
                .map_or("-".into(), |p| zoo::summary::group_digits(p as usize)),
            m["epochs"],
            m["train_chars_per_second"].as_f64().unwrap_or(0.0),
            v["bits_per_char"].as_f64().unwrap_or(f64::NAN),
            m["unigram_bits_per_char"].as_f64().unwrap_or(f64::NAN),
            v["perplexity"].as_f64().unwrap_or(f64::NAN),
            v["accuracy"].as_f64().unwrap_or(f64::NAN),
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
    Ok(out + &samples)
}
