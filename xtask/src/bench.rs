//! `cargo xtask bench`: runs `zoo bench` once per config and backend, each in a fresh process
//! (so peak memory is per model), and writes `results/bench.{md,json}`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use zoo::bench::BenchResult;

use crate::common::{configs_in, error_line, splice_readme, workspace_root, zoo_binary};

/// One config on one backend: zoo's measurement, or why there is none.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchRow {
    pub config: String,
    pub backend: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Measured(BenchResult),
    Failed(String),
    TimedOut { after_s: u64 },
}

#[derive(clap::Args)]
pub struct Args {
    /// Backends to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "flex,ndarray")]
    backends: Vec<String>,
    /// Configs to measure; every config in configs/fashion-mnist when absent.
    #[arg(long, value_delimiter = ',')]
    configs: Vec<PathBuf>,
    /// Timed training steps per measurement.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Stop a measurement that runs longer than this (its row says so).
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Where to write bench.md and bench.json.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// The README table to replace: the one between `<!-- NAME:begin` and `<!-- NAME:end -->`.
    #[arg(long, default_value = "bench")]
    readme_section: String,
    /// Leave the README as it is (write only bench.md and bench.json).
    #[arg(long)]
    no_readme: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let root = workspace_root();
    let configs = if args.configs.is_empty() {
        configs_in(&root.join("configs/fashion-mnist"))?
    } else {
        args.configs.clone()
    };
    let zoo = zoo_binary(&root)?;
    let mut rows = Vec::new();
    for config in &configs {
        for backend in &args.backends {
            let shown = config
                .strip_prefix(&root)
                .unwrap_or(config)
                .display()
                .to_string();
            eprintln!("bench: {shown} on {backend}");
            let mut child = Command::new(&zoo)
                .current_dir(&root)
                .arg("bench")
                .arg(config)
                .args([
                    "--backend",
                    backend,
                    "--steps",
                    &args.steps.to_string(),
                    "--json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("cannot run zoo")?;
            let started = Instant::now();
            while child.try_wait()?.is_none() {
                if started.elapsed() > Duration::from_secs(args.timeout_s) {
                    child.kill()?;
                    child.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let out = child.wait_with_output()?;
            let outcome = if started.elapsed() > Duration::from_secs(args.timeout_s) {
                eprintln!(
                    "bench: {shown} on {backend}: stopped after {} s",
                    args.timeout_s
                );
                Outcome::TimedOut {
                    after_s: args.timeout_s,
                }
            } else if !out.status.success() {
                let error = error_line(&out.stderr);
                eprintln!("bench: {shown} on {backend}: {error}");
                Outcome::Failed(error)
            } else {
                Outcome::Measured(
                    serde_json::from_slice(&out.stdout).context("zoo bench printed no JSON")?,
                )
            };
            rows.push(BenchRow {
                config: shown,
                backend: backend.clone(),
                outcome,
            });
        }
    }
    let table = markdown(&rows);
    println!("{table}");
    std::fs::create_dir_all(&args.out)?;
    zoo::fsutil::write_atomic(&args.out.join("bench.md"), table.as_bytes())?;
    zoo::fsutil::write_atomic(
        &args.out.join("bench.json"),
        serde_json::to_string_pretty(&rows)?.as_bytes(),
    )?;
    if args.no_readme {
        eprintln!("wrote {}/bench.{{md,json}}", args.out.display());
    } else {
        splice_readme(&root.join("README.md"), &args.readme_section, &table)?;
        eprintln!(
            "wrote {}/bench.{{md,json}} and the README's {} table",
            args.out.display(),
            args.readme_section
        );
    }
    Ok(())
}

fn markdown(rows: &[BenchRow]) -> String {
    let mut out = String::from(
        "| config | backend | loader images/s | train images/s (batch) | inference images/s (batch) | test split predicted in | peak memory |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let r = match &row.outcome {
            Outcome::Measured(r) => r,
            Outcome::Failed(error) => {
                out += &format!(
                    "| {} | {} | failed: {error} | | | | |\n",
                    row.config, row.backend
                );
                continue;
            }
            Outcome::TimedOut { after_s } => {
                out += &format!(
                    "| {} | {} | stopped after {after_s} s | | | | |\n",
                    row.config, row.backend
                );
                continue;
            }
        };
        let rate = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        out += &format!(
            "| {} | {} | {} | {} ({}) | {} ({}) | {} | {} |\n",
            row.config,
            row.backend,
            rate(Some(r.loader_samples_per_second)),
            rate(r.train_samples_per_second),
            r.batch_size,
            rate(Some(r.inference_samples_per_second)),
            r.inference_batch_size,
            r.test_prediction_seconds
                .map_or("-".into(), |s| format!("{s:.1} s")),
            r.peak_memory_mib
                .map_or("n/a".into(), |m| format!("{m:.0} MiB")),
        );
    }
    out
}
