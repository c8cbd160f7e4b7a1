//! `cargo xtask batch`: configs x backends x seeds x a grid of `--set` values (or random
//! samples, log-uniform where asked, as the notes advise for learning rates), each run by
//! `zoo train` in a directory keyed by a hash of its resolved config. A finished experiment
//! is never run again, an interrupted one resumes from its checkpoint, a changed config gets
//! a new directory, and a failed one is recorded with its error while the batch goes on.
//! Writes results.{csv,json,md} and plots (see `report`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use zoo::run_dir::{Metrics, METRICS_FILE};

use crate::common::{configs_in, error_line, stem, workspace_root, zoo_binary};
use crate::report::{self, Row};

#[derive(clap::Args)]
pub struct Args {
    /// Configs, or directories of configs (default: configs/fashion-mnist).
    paths: Vec<PathBuf>,
    #[arg(long, value_delimiter = ',', default_value = "flex")]
    backends: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seeds: Vec<u64>,
    /// A grid axis KEY=V1,V2,... (repeatable: every combination runs).
    #[arg(long = "set", value_name = "KEY=V1,V2,...")]
    set: Vec<String>,
    /// Instead of a grid: this many random samples of the `--log-uniform` / `--uniform` keys.
    #[arg(long)]
    random: Option<usize>,
    /// KEY=LO:HI sampled log-uniformly (learning rates, weight decay).
    #[arg(long = "log-uniform", value_name = "KEY=LO:HI")]
    log_uniform: Vec<String>,
    /// KEY=LO:HI sampled uniformly.
    #[arg(long = "uniform", value_name = "KEY=LO:HI")]
    uniform: Vec<String>,
    /// Seed of the random search itself.
    #[arg(long, default_value_t = 0)]
    search_seed: u64,
    /// Experiments run at the same time.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    #[arg(long, default_value = "results")]
    out: PathBuf,
}

/// One experiment of the batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Experiment {
    pub config: String,
    pub backend: String,
    pub seed: u64,
    /// `KEY=VALUE` overrides (the grid point or random sample), without the seed.
    pub overrides: Vec<String>,
}

fn parse_range(spec: &str) -> Result<(String, f64, f64)> {
    let (key, range) = spec
        .split_once('=')
        .with_context(|| format!("{spec}: expected KEY=LO:HI"))?;
    let (lo, hi) = range
        .split_once(':')
        .with_context(|| format!("{spec}: expected KEY=LO:HI"))?;
    let (lo, hi): (f64, f64) = (
        lo.parse().with_context(|| format!("{spec}: LO"))?,
        hi.parse().with_context(|| format!("{spec}: HI"))?,
    );
    if !(lo < hi) {
        bail!("{spec}: expected LO < HI");
    }
    Ok((key.to_string(), lo, hi))
}

/// The grid points (or random samples) as lists of `KEY=VALUE`.
fn points(args: &Args) -> Result<Vec<Vec<String>>> {
    let Some(n) = args.random else {
        let combos = zoo::cv::expand_sweeps(&args.set).map_err(anyhow::Error::msg)?;
        return Ok(combos
            .iter()
            .map(|c| c.iter().map(|o| format!("{}={}", o.key, o.value)).collect())
            .collect());
    };
    let mut ranges = Vec::new();
    for spec in &args.log_uniform {
        let (key, lo, hi) = parse_range(spec)?;
        if lo <= 0.0 {
            bail!("--log-uniform {spec}: LO must be positive");
        }
        ranges.push((key, lo, hi, true));
    }
    for spec in &args.uniform {
        let (key, lo, hi) = parse_range(spec)?;
        ranges.push((key, lo, hi, false));
    }
    if ranges.is_empty() {
        bail!("--random needs at least one --log-uniform or --uniform key");
    }
    let mut rng = StdRng::seed_from_u64(args.search_seed);
    Ok((0..n)
        .map(|_| {
            ranges
                .iter()
                .map(|(key, lo, hi, log)| {
                    let v: f64 = if *log {
                        (rng.random_range(lo.ln()..hi.ln())).exp()
                    } else {
                        rng.random_range(*lo..*hi)
                    };
                    format!("{key}={v:.4e}")
                })
                .collect()
        })
        .collect())
}

/// The configs named by `paths` (files, or the `.toml` files of directories).
fn configs(root: &Path, paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let paths = if paths.is_empty() {
        vec![root.join("configs/fashion-mnist")]
    } else {
        paths.to_vec()
    };
    let mut found = Vec::new();
    for p in paths {
        if p.is_dir() {
            found.extend(configs_in(&p)?);
        } else if p.is_file() {
            found.push(p);
        } else {
            bail!("{}: no such config or directory", p.display());
        }
    }
    Ok(found)
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust versions and machines.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn set_args(e: &Experiment) -> Vec<String> {
    let mut args = Vec::new();
    for o in e
        .overrides
        .iter()
        .cloned()
        .chain([format!("train.seed={}", e.seed)])
    {
        args.push("--set".to_string());
        args.push(o);
    }
    args
}

/// The run directory of `e`: `<out>/runs/<config>-<hash of resolved config and backend>`.
fn run_dir(zoo: &Path, out: &Path, e: &Experiment) -> Result<std::result::Result<PathBuf, String>> {
    let output = Command::new(zoo)
        .args(["check", &e.config, "--print-config"])
        .args(set_args(e))
        .output()
        .context("cannot run zoo")?;
    if !output.status.success() {
        return Ok(Err(error_line(&output.stderr)));
    }
    let resolved = String::from_utf8_lossy(&output.stdout);
    let hash = fnv1a(&format!("{resolved}\nbackend = {}\n", e.backend));
    Ok(Ok(out
        .join("runs")
        .join(format!("{}-{hash:016x}", stem(&e.config)))))
}

/// Runs one experiment (unless finished) and returns its row.
fn run_one(zoo: &Path, out: &Path, e: &Experiment) -> Result<Row> {
    let mut row = Row {
        config: e.config.clone(),
        backend: e.backend.clone(),
        seed: e.seed,
        overrides: e.overrides.join(" "),
        ..Default::default()
    };
    let dir = match run_dir(zoo, out, e)? {
        Ok(dir) => dir,
        Err(error) => {
            row.status = "failed".into();
            row.error = error;
            return Ok(row);
        }
    };
    row.run_dir = dir.display().to_string();
    if !dir.join("metrics.json").exists() {
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("train.log"))?;
        let status = Command::new(zoo)
            .args([
                "train",
                &e.config,
                "--backend",
                &e.backend,
                "--resume",
                "--out",
            ])
            .arg(&dir)
            .args(set_args(e))
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .context("cannot run zoo")?;
        if !status.success() {
            row.status = "failed".into();
            row.error = error_line(&std::fs::read(dir.join("train.log")).unwrap_or_default());
            return Ok(row);
        }
    }
    let m: Metrics = zoo::run_dir::load_json(&dir, METRICS_FILE)?;
    row.seconds_per_epoch = m.mean_epoch_seconds();
    row.model = m.model;
    row.dataset = m.dataset;
    row.params = Some(m.params as u64);
    row.macs = Some(m.macs_per_example as u64);
    row.epochs = Some(m.epochs as u64);
    row.train_samples_per_second = Some(m.train_samples_per_second).filter(|v| *v > 0.0);
    row.test_accuracy = Some(m.test.accuracy);
    row.test_top5 = Some(m.test.top5);
    row.history = m.history;
    row.status = "ok".into();
    Ok(row)
}

pub fn run(args: &Args) -> Result<()> {
    let root = workspace_root();
    let zoo = zoo_binary(&root)?;
    let mut experiments = Vec::new();
    let points = points(args)?;
    for config in configs(&root, &args.paths)? {
        for backend in &args.backends {
            for point in &points {
                for &seed in &args.seeds {
                    experiments.push(Experiment {
                        config: config.display().to_string(),
                        backend: backend.clone(),
                        seed,
                        overrides: point.clone(),
                    });
                }
            }
        }
    }
    eprintln!(
        "batch: {} experiments, {} at a time, into {}",
        experiments.len(),
        args.jobs,
        args.out.display()
    );
    std::fs::create_dir_all(&args.out)?;
    let next = Mutex::new(0usize);
    let rows: Mutex<Vec<Option<Row>>> = Mutex::new(vec![None; experiments.len()]);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..args.jobs.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = {
                            let mut n = next.lock().unwrap();
                            *n += 1;
                            *n - 1
                        };
                        let Some(e) = experiments.get(i) else {
                            return Ok(());
                        };
                        let row = run_one(&zoo, &args.out, e)?;
                        eprintln!(
                            "batch: [{}/{}] {} {} seed {} {}: {}",
                            i + 1,
                            experiments.len(),
                            e.config,
                            e.backend,
                            e.seed,
                            e.overrides.join(" "),
                            if row.status == "ok" {
                                format!(
                                    "test accuracy {:.4}",
                                    row.test_accuracy.unwrap_or(f64::NAN)
                                )
                            } else {
                                format!("failed: {}", row.error)
                            }
                        );
                        rows.lock().unwrap()[i] = Some(row);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a batch worker panicked")?;
        }
        Ok(())
    })?;
    let rows: Vec<Row> = rows.into_inner().unwrap().into_iter().flatten().collect();
    let swept: Vec<String> = args
        .set
        .iter()
        .chain(&args.log_uniform)
        .chain(&args.uniform)
        .filter_map(|s| s.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    report::write(
        &root,
        &args.out,
        &rows,
        &swept,
        !args.log_uniform.is_empty(),
    )?;
    let failed = rows.iter().filter(|r| r.status != "ok").count();
    eprintln!(
        "batch: {} finished, {failed} failed; wrote {}/results.{{csv,json,md}} and plots/",
        rows.len() - failed,
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_sensitive() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a("lr = 0.1"), fnv1a("lr = 0.2"));
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn ranges_parse_and_reject_nonsense() {
        assert_eq!(
            parse_range("train.lr=1e-4:1e-1").unwrap(),
            ("train.lr".into(), 1e-4, 1e-1)
        );
        assert!(parse_range("train.lr=1:0.1").is_err());
        assert!(parse_range("train.lr").is_err());
    }
}
