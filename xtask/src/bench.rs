//! `cargo xtask bench`: runs `zoo bench` once per config and backend, each in a fresh process
//! (so peak memory is per model), and writes `results/bench.{md,json}`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
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
    /// Stop a measurement that runs longer than this (its row says so).
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Where to write bench.md and bench.json.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// The README table to replace: the one between `<!-- NAME:begin` and `<!-- NAME:end -->`.
    #[arg(long, default_value = "bench")]
    readme_section: String,
}

pub fn run(args: &Args) -> Result<()> {
    let root = super::workspace_root();
    let configs = if args.configs.is_empty() {
        super::configs_in(&root.join("configs/fashion-mnist"))?
    } else {
        args.configs.clone()
    };
    let zoo = super::zoo_binary(&root)?;
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
            let mut row = if started.elapsed() > Duration::from_secs(args.timeout_s) {
                eprintln!(
                    "bench: {shown} on {backend}: stopped after {} s",
                    args.timeout_s
                );
                serde_json::json!({ "backend": backend, "timed_out_after_s": args.timeout_s })
            } else if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let error = stderr
                    .lines()
                    .find(|l| l.starts_with("error:"))
                    .unwrap_or("no error line")
                    .to_string();
                eprintln!("bench: {shown} on {backend}: {error}");
                serde_json::json!({ "backend": backend, "failed": error })
            } else {
                serde_json::from_slice(&out.stdout).context("zoo bench printed no JSON")?
            };
            row["config"] = Value::String(shown);
            rows.push(row);
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
    super::splice_readme(&root.join("README.md"), &args.readme_section, &table)?;
    eprintln!(
        "wrote {}/bench.{{md,json}} and the README's {} table",
        args.out.display(),
        args.readme_section
    );
    Ok(())
}

fn markdown(rows: &[Value]) -> String {
    let mut out = String::from(
        "| config | backend | loader images/s | train images/s (batch) | inference images/s (batch) | test split predicted in | peak memory |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let no_figures = match (r["failed"].as_str(), r["timed_out_after_s"].as_u64()) {
            (Some(error), _) => Some(format!("failed: {error}")),
            (None, Some(limit)) => Some(format!("stopped after {limit} s")),
            (None, None) => None,
        };
        if let Some(why) = no_figures {
            out += &format!(
                "| {} | {} | {why} | | | | |\n",
                r["config"].as_str().unwrap_or("?"),
                r["backend"].as_str().unwrap_or("?")
            );
            continue;
        }
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
