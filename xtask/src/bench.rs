//! `cargo xtask bench`: runs `zoo bench` once per config and backend, each in a fresh process
//! (so peak memory is per model), and writes `results/bench.{md,json}`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

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
    /// Where to write bench.md and bench.json.
    #[arg(long, default_value = "results")]
    out: PathBuf,
}

pub fn run(args: &Args) -> Result<()> {
    let root = super::workspace_root();
    let configs = if args.configs.is_empty() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("configs/fashion-mnist"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        found.sort();
        found
    } else {
        args.configs.clone()
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut rows = Vec::new();
    for config in &configs {
        for backend in &args.backends {
            eprintln!("bench: {} on {backend}", config.display());
            let out = Command::new(&cargo)
                .current_dir(&root)
                .args(["run", "--quiet", "--package", "zoo", "--", "bench"])
                .arg(config)
                .args([
                    "--backend",
                    backend,
                    "--steps",
                    &args.steps.to_string(),
                    "--json",
                ])
                .output()
                .context("cannot run cargo")?;
            if !out.status.success() {
                bail!(
                    "zoo bench {} --backend {backend} failed:\n{}",
                    config.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let mut row: Value =
                serde_json::from_slice(&out.stdout).context("zoo bench printed no JSON")?;
            let shown = config.strip_prefix(&root).unwrap_or(config);
            row["config"] = Value::String(shown.display().to_string());
            rows.push(row);
        }
    }
    let table = markdown(&rows);
    println!("{table}");
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("bench.md"), &table)?;
    std::fs::write(
        args.out.join("bench.json"),
        serde_json::to_string_pretty(&rows)?,
    )?;
    eprintln!("wrote {}/bench.{{md,json}}", args.out.display());
    Ok(())
}

fn markdown(rows: &[Value]) -> String {
    let mut out = String::from(
        "| config | backend | loader images/s | train images/s (batch) | inference images/s (batch) | test split predicted in | peak memory |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let rate = |k: &str| r[k].as_f64().map_or("-".into(), |v| format!("{v:.0}"));
        out += &format!(
            "| {} | {} | {} | {} ({}) | {} ({}) | {} | {} |\n",
            r["config"].as_str().unwrap_or("?"),
            r["backend"].as_str().unwrap_or("?"),
            rate("loader_samples_per_second"),
            rate("train_samples_per_second"),
            r["batch_size"],
            rate("inference_samples_per_second"),
            r["inference_batch_size"],
            r["test_prediction_seconds"]
                .as_f64()
                .map_or("-".into(), |s| format!("{s:.1} s")),
            r["peak_memory_mib"]
                .as_f64()
                .map_or("n/a".into(), |m| format!("{m:.0} MiB")),
        );
    }
    out
}
