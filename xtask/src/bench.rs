//! `cargo xtask bench`: runs `zoo bench` once per config and backend, each in a fresh process
//! (so peak memory is per model), and writes `results/bench.{md,json}`; with `--record NAME`
//! also `bench/results/bench-NAME.json`, tagged with commit, date and machine, from which
//! docs/performance.md's table of that name is rendered. With `--against-pytorch`, each
//! config's PyTorch twin (`xtask/pytorch_mirror.py`) is timed right after zoo's rows for it,
//! and the tables gain PyTorch's rates and zoo's ratios to them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use zoo::bench::BenchResult;

use crate::common::{configs_in, error_line, stem, workspace_root, write_results, zoo_binary};
use crate::records::{self, Provenance, Record};

/// One config on one backend: zoo's measurement, or why there is none, and with
/// `--against-pytorch` the config's PyTorch twin's (the same for every backend of a config).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchRow {
    pub config: String,
    pub backend: String,
    /// The build of zoo that ran it, where the run compared several (`--zoo LABEL=PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pytorch: Option<PytorchOutcome>,
}

impl BenchRow {
    fn on(&self) -> String {
        on(&self.backend, self.build.as_deref())
    }
}

/// The backend, and the build where the run compared several: "wgpu (fusion)".
fn on(backend: &str, build: Option<&str>) -> String {
    match build {
        Some(label) => format!("{backend} ({label})"),
        None => backend.to_string(),
    }
}

/// What `pytorch_mirror.py` prints: the twin's size and its rates, timed as `zoo bench` times.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PytorchResult {
    pub params: usize,
    pub train_samples_per_second: f64,
    pub batch_size: usize,
    pub inference_samples_per_second: f64,
    pub inference_batch_size: usize,
    pub torch: String,
    pub threads: usize,
    /// "cpu", or the CUDA GPU's name.
    #[serde(default)]
    pub device: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PytorchOutcome {
    Measured(PytorchResult),
    Failed(String),
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
    /// Past `--steps`, each clock runs on until it has run this long (zoo and PyTorch alike).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    min_seconds: f64,
    /// Stop a measurement that runs longer than this (its row says so).
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Where to write bench.md and bench.json.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Keep the run as `bench/results/bench-NAME.json` and regenerate docs/performance.md's
    /// `bench-NAME` table from it (without: only `--out` gets the results).
    #[arg(long, value_name = "NAME")]
    record: Option<String>,
    /// Time each config's PyTorch twin too (xtask/pytorch_mirror.py), right after zoo's rows.
    #[arg(long)]
    against_pytorch: bool,
    /// The Python that has torch.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// PyTorch's threads (default: the machine's cores, as zoo uses them).
    #[arg(long)]
    threads: Option<usize>,
    /// PyTorch's device: cpu, or cuda beside `--backends wgpu` on a GPU machine.
    #[arg(long, default_value = "cpu")]
    pytorch_device: String,
    /// Override a config key in every config, for zoo and its twin alike (repeatable),
    /// e.g. --set model.width=1.0 for the full-width CNNs.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<zoo::config::Override>,
    /// A build of zoo to measure, as LABEL=PATH (repeatable; rows name the label), e.g. a
    /// `--features gpu-fusion` build beside the plain one. Default: this workspace's zoo.
    #[arg(long = "zoo", value_name = "LABEL=PATH", value_parser = parse_build)]
    builds: Vec<(String, PathBuf)>,
}

fn parse_build(s: &str) -> Result<(String, PathBuf), String> {
    let (label, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s}: expected LABEL=PATH"))?;
    Ok((label.to_string(), PathBuf::from(path)))
}

/// `--set` overrides as `zoo bench` arguments.
fn set_args(overrides: &[zoo::config::Override]) -> Vec<String> {
    overrides
        .iter()
        .flat_map(|o| ["--set".to_string(), format!("{}={}", o.key, o.value)])
        .collect()
}

/// The PyTorch side of a run: the interpreter, and whether torch answered so far.
struct Pytorch<'a> {
    args: &'a Args,
    script: PathBuf,
    threads: usize,
    available: bool,
}

impl Pytorch<'_> {
    /// Times the twin of `config` (`None` without torch, and for kNN and the char-lm, which
    /// have none); a twin whose parameter count is not zoo's is reported as a failure.
    fn measure(&mut self, config: &Path) -> Result<Option<PytorchOutcome>> {
        if !self.available {
            return Ok(None);
        }
        let exp = match zoo::config::Experiment::load(config, &self.args.set) {
            Ok(exp) => exp,
            // zoo's rows for the config already say why (the same load fails there).
            Err(error) => return Ok(Some(PytorchOutcome::Failed(error.to_string()))),
        };
        if !matches!(exp.model, zoo::models::ModelConfig::Image(_)) {
            return Ok(None);
        }
        let params = zoo::run::summarize(&exp)?.total_params;
        // The resolved config the twin is built from, kept beside the results.
        let resolved = self
            .args
            .out
            .join("pytorch")
            .join(format!("{}.toml", stem(config)));
        std::fs::create_dir_all(resolved.parent().expect("in the output directory"))?;
        zoo::fsutil::write_atomic(&resolved, exp.to_toml().as_bytes())?;
        let out = Command::new(&self.args.python)
            .arg(&self.script)
            .arg(&resolved)
            .args(["--steps", &self.args.steps.to_string()])
            .args(["--min-seconds", &self.args.min_seconds.to_string()])
            .args(["--threads", &self.threads.to_string()])
            .args(["--device", &self.args.pytorch_device])
            .output()
            .with_context(|| format!("cannot run {}", self.args.python.display()))?;
        if out.status.code() == Some(3) {
            eprintln!(
                "bench: {} has no torch ({}): measuring zoo alone",
                self.args.python.display(),
                error_line(&out.stderr)
            );
            self.available = false;
            return Ok(None);
        }
        if !out.status.success() {
            return Ok(Some(PytorchOutcome::Failed(error_line(&out.stderr))));
        }
        let result: PytorchResult =
            serde_json::from_slice(&out.stdout).context("pytorch_mirror.py printed no JSON")?;
        if result.params != params {
            return Ok(Some(PytorchOutcome::Failed(format!(
                "the PyTorch twin has {} parameters, zoo's network {params}",
                result.params
            ))));
        }
        Ok(Some(PytorchOutcome::Measured(result)))
    }
}

/// Measures what `args` asks for; returns whether a record was written (`--record`).
pub fn run(args: &Args) -> Result<bool> {
    let root = workspace_root();
    let configs = if args.configs.is_empty() {
        configs_in(&root.join("configs/fashion-mnist"))?
    } else {
        args.configs.clone()
    };
    let builds = match args.builds.is_empty() {
        true => vec![(None, zoo_binary(&root)?)],
        false => (args.builds.iter().cloned())
            .map(|(label, path)| (Some(label), path))
            .collect(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pytorch = Pytorch {
        args,
        script: root.join("xtask/pytorch_mirror.py"),
        threads: args.threads.unwrap_or(cores),
        available: args.against_pytorch,
    };
    let mut rows = Vec::new();
    for config in &configs {
        let first_row = rows.len();
        for ((build, zoo), backend) in builds
            .iter()
            .flat_map(|b| args.backends.iter().map(move |backend| (b, backend)))
        {
            let shown = config
                .strip_prefix(&root)
                .unwrap_or(config)
                .display()
                .to_string();
            let on = on(backend, build.as_deref());
            eprintln!("bench: {shown} on {on}");
            let mut child = Command::new(zoo)
                .current_dir(&root)
                .arg("bench")
                .arg(config)
                .args([
                    "--backend",
                    backend,
                    "--steps",
                    &args.steps.to_string(),
                    "--min-seconds",
                    &args.min_seconds.to_string(),
                    "--json",
                ])
                .args(set_args(&args.set))
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
                eprintln!("bench: {shown} on {on}: stopped after {} s", args.timeout_s);
                Outcome::TimedOut {
                    after_s: args.timeout_s,
                }
            } else if !out.status.success() {
                let error = error_line(&out.stderr);
                eprintln!("bench: {shown} on {on}: {error}");
                Outcome::Failed(error)
            } else {
                Outcome::Measured(
                    serde_json::from_slice(&out.stdout).context("zoo bench printed no JSON")?,
                )
            };
            rows.push(BenchRow {
                config: shown,
                backend: backend.clone(),
                build: build.clone(),
                outcome,
                pytorch: None,
            });
        }
        // Interleaved: the twin runs right after zoo's rows for the same config.
        let twin = pytorch.measure(config)?;
        for row in &mut rows[first_row..] {
            row.pytorch = twin.clone();
        }
        // A run stopped midway (a GPU lease ending, Ctrl-C) keeps the configs it measured.
        std::fs::create_dir_all(&args.out)?;
        let partial = args.out.join("bench.partial.json");
        zoo::fsutil::write_atomic(&partial, serde_json::to_string_pretty(&rows)?.as_bytes())?;
    }
    std::fs::remove_file(args.out.join("bench.partial.json")).ok();
    write_results(&args.out, "bench", &markdown(&rows), &rows)?;
    let Some(name) = &args.record else {
        return Ok(false);
    };
    let record = Record {
        provenance: Provenance::now(&root, records::this_command()),
        rows,
    };
    let file = records::save(&root, &format!("{RECORD_PREFIX}{name}"), &record)?;
    eprintln!("bench: wrote {}", file.display());
    Ok(true)
}

/// Benchmark records are `bench/results/bench-NAME.json`.
pub const RECORD_PREFIX: &str = "bench-";

/// The table of a benchmark run's rows.
pub fn markdown(rows: &[BenchRow]) -> String {
    let against = rows.iter().any(|r| r.pytorch.is_some());
    let mut out = String::from(
        "| config | backend | loader images/s | train images/s (batch) | inference images/s (batch) | test split predicted in | peak memory |",
    );
    let mut rule = String::from("|---|---|---:|---:|---:|---:|---:|");
    if against {
        out += " PyTorch train images/s | zoo / PyTorch, train | PyTorch inference images/s | zoo / PyTorch, inference |";
        rule += "---:|---:|---:|---:|";
    }
    out += &format!("\n{rule}\n");
    for row in rows {
        let blank = if against { " | | | |" } else { "" };
        let r = match &row.outcome {
            Outcome::Measured(r) => r,
            Outcome::Failed(error) => {
                out += &format!(
                    "| {} | {} | failed: {error} | | | | |{blank}\n",
                    row.config,
                    row.on()
                );
                continue;
            }
            Outcome::TimedOut { after_s } => {
                out += &format!(
                    "| {} | {} | stopped after {after_s} s | | | | |{blank}\n",
                    row.config,
                    row.on()
                );
                continue;
            }
        };
        let rate = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        out += &format!(
            "| {} | {} | {} | {} ({}) | {} ({}) | {} | {} |",
            row.config,
            row.on(),
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
        if against {
            out += &pytorch_cells(r, row.pytorch.as_ref());
        }
        out += "\n";
    }
    out
}

/// PyTorch's rates and zoo's ratios to them, as table cells (`-` where there is none).
fn pytorch_cells(zoo: &BenchResult, pytorch: Option<&PytorchOutcome>) -> String {
    match pytorch {
        None => " - | - | - | - |".into(),
        Some(PytorchOutcome::Failed(error)) => format!(" failed: {error} | | | |"),
        Some(PytorchOutcome::Measured(t)) => {
            let ratio = |z: f64, p: f64| format!("{:.2}", z / p);
            format!(
                " {:.0} | {} | {:.0} | {} |",
                t.train_samples_per_second,
                zoo.train_samples_per_second
                    .map_or("-".into(), |z| ratio(z, t.train_samples_per_second)),
                t.inference_samples_per_second,
                ratio(
                    zoo.inference_samples_per_second,
                    t.inference_samples_per_second
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zoo::config::Override;

    #[test]
    fn set_args_read_back_as_the_same_overrides() {
        let given: Vec<Override> = ["model.width=1.0", "data.dir=/tmp/a b", "data.batch_size=64"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let args = set_args(&given);
        let flags: Vec<&String> = args.iter().step_by(2).collect();
        assert!(flags.iter().all(|f| *f == "--set"));
        let read: Vec<Override> = args
            .iter()
            .skip(1)
            .step_by(2)
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(read, given);
    }

    #[test]
    fn builds_are_label_then_path_and_name_their_rows() {
        assert_eq!(
            parse_build("fusion=/tmp/zoo=x").unwrap(),
            ("fusion".to_string(), PathBuf::from("/tmp/zoo=x"))
        );
        assert!(parse_build("/tmp/zoo").is_err());
        let row = |build: Option<&str>| BenchRow {
            config: "c.toml".into(),
            backend: "wgpu".into(),
            build: build.map(Into::into),
            outcome: Outcome::Failed("x".into()),
            pytorch: None,
        };
        assert_eq!(row(Some("fusion")).on(), "wgpu (fusion)");
        assert_eq!(row(None).on(), "wgpu");
        assert!(markdown(&[row(Some("plain"))]).contains("| c.toml | wgpu (plain) | failed: x |"));
    }
}
