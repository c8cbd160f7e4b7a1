//! `cargo xtask batch`: configs x backends x seeds x a grid of `--set` values (or random
//! samples, log-uniform where asked, as the notes advise for learning rates), each run by
//! `zoo train` in a directory keyed by a hash of its resolved config. A finished experiment
//! is never run again, an interrupted one resumes from its checkpoint, a changed config gets
//! a new directory, and a failed one is recorded with its error while the batch goes on.
//! The experiments run as local processes (`--executor local`, `--jobs` at a time) or as one
//! Slurm job array (`--executor slurm`, see `slurm`). The plan, every experiment with its run
//! directory, is saved as `<out>/batch.json`, from which `collect` writes
//! results.{csv,json,md} and plots (see `report`) whenever asked.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use zoo::run_dir::{Metrics, METRICS_FILE};

use crate::common::{configs_in, error_line, stem, workspace_root, zoo_binary};
use crate::plan::{set_args, Experiment, Plan};
use crate::report::{self, Row};
use crate::slurm::{self, SlurmArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Configs, or directories of configs (default: configs/fashion-mnist).
    paths: Vec<PathBuf>,
    /// Backends to train each experiment on, comma-separated (flex, ndarray, wgpu).
    #[arg(long, value_delimiter = ',', default_value = "flex")]
    backends: Vec<String>,
    /// Seeds to train each experiment with, comma-separated.
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
    /// Experiments run at the same time (local executor).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Where the run directories, the plan (batch.json), the results tables and the plots go.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Where the experiments run: local processes, or a Slurm job array.
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    executor: Executor,
    #[command(flatten)]
    slurm: SlurmArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Executor {
    Local,
    Slurm,
}

/// `cargo xtask collect RESULTS_DIR`: the tables and plots of a batch, from its run directories.
#[derive(clap::Args)]
pub struct CollectArgs {
    /// A batch's `--out` directory.
    results: PathBuf,
}

fn parse_range(spec: &str) -> Result<(String, f64, f64)> {
    let (key, range) = spec
        .split_once('=')
        .with_context(|| format!("{spec}: expected KEY=LO:HI"))?;
    let (lo, hi) = range
        .split_once(':')
        .with_context(|| format!("{spec}: expected KEY=LO:HI"))?;
    let (lo, hi): (f64, f64) = (
        lo.parse()
            .with_context(|| format!("{spec}: LO is not a number"))?,
        hi.parse()
            .with_context(|| format!("{spec}: HI is not a number"))?,
    );
    // NaN too is refused.
    if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
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

/// The run directory of an experiment: `<out>/runs/<config>-<hash of resolved config and
/// backend>`, or `zoo check`'s error line when its config does not resolve.
fn run_dir(
    zoo: &Path,
    out: &Path,
    config: &str,
    backend: &str,
    overrides: &[String],
    seed: u64,
) -> Result<std::result::Result<PathBuf, String>> {
    let output = Command::new(zoo)
        .args(["check", config, "--print-config"])
        .args(set_args(overrides, seed))
        .output()
        .context("cannot run zoo")?;
    if !output.status.success() {
        return Ok(Err(error_line(&output.stderr)));
    }
    let resolved = String::from_utf8_lossy(&output.stdout);
    let hash = fnv1a(&format!("{resolved}\nbackend = {backend}\n"));
    // Absolute: Slurm runs the experiments from another working directory.
    let out = std::path::absolute(out).context("cannot resolve --out")?;
    Ok(Ok(out
        .join("runs")
        .join(format!("{}-{hash:016x}", stem(config)))))
}

/// The row of one experiment from what its run directory holds: its metrics when it finished,
/// else `failure` (the executor's record of why it did not), else "not run".
pub fn row(e: &Experiment, failure: Option<&str>) -> Result<Row> {
    let mut row = Row {
        config: e.config.clone(),
        backend: e.backend.clone(),
        seed: e.seed,
        overrides: e.overrides.join(" "),
        ..Default::default()
    };
    let dir = match &e.run_dir {
        Ok(dir) => dir,
        Err(error) => {
            row.status = "failed".into();
            row.error = error.clone();
            return Ok(row);
        }
    };
    row.run_dir = dir.display().to_string();
    if !dir.join(METRICS_FILE).exists() {
        (row.status, row.error) = match failure {
            Some(error) => ("failed".into(), error.to_string()),
            None => ("not run".into(), String::new()),
        };
        return Ok(row);
    }
    let m: Metrics = zoo::run_dir::load_json(dir, METRICS_FILE)?;
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

/// Runs one experiment as a local process (unless finished); its failure's error line if any.
/// `train.log` keeps every attempt (a resumed run appends to it); the error line is the last
/// attempt's.
fn run_locally(zoo: &Path, e: &Experiment) -> Result<Option<String>> {
    let Ok(dir) = &e.run_dir else {
        return Ok(None);
    };
    if dir.join(METRICS_FILE).exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(dir)?;
    let log_path = dir.join("train.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let attempts = std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .matches(ATTEMPT)
        .count();
    writeln!(&log, "{ATTEMPT} {}", attempts + 1)?;
    let status = Command::new(zoo)
        .args(e.train_args(dir))
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("cannot run zoo")?;
    if status.success() {
        return Ok(None);
    }
    Ok(Some(
        match std::os::unix::process::ExitStatusExt::signal(&status) {
            Some(signal) => {
                format!("zoo was killed by signal {signal}; running the batch again resumes it")
            }
            None => last_attempts_error(&log_path),
        },
    ))
}

/// The line of `train.log` that starts each attempt (followed by its number).
const ATTEMPT: &str = "--- batch: zoo train, attempt";

/// The error line of the last attempt logged in `train.log`.
fn last_attempts_error(log_path: &Path) -> String {
    let text = std::fs::read_to_string(log_path).unwrap_or_default();
    let last = text.rfind(ATTEMPT).map_or(&text[..], |at| &text[at..]);
    error_line(last.as_bytes())
}

/// How many different values `key` takes over the grid points.
fn takes_values(points: &[Vec<String>], key: &str) -> usize {
    let prefix = format!("{key}=");
    let values: std::collections::BTreeSet<&str> = points
        .iter()
        .flatten()
        .filter_map(|setting| setting.strip_prefix(&prefix))
        .collect();
    values.len()
}

/// The experiments of `args`: configs x backends x grid points x seeds, each with its run directory.
fn plan(args: &Args, root: &Path, zoo: &Path) -> Result<Plan> {
    let mut experiments = Vec::new();
    let points = points(args)?;
    for config in configs(root, &args.paths)? {
        let config = config.display().to_string();
        for backend in &args.backends {
            for point in &points {
                for &seed in &args.seeds {
                    let run_dir = run_dir(zoo, &args.out, &config, backend, point, seed)?;
                    // The same experiment twice (a repeated seed or value) would race for one directory.
                    if run_dir.is_ok()
                        && experiments
                            .iter()
                            .any(|e: &Experiment| e.run_dir == run_dir)
                    {
                        continue;
                    }
                    experiments.push(Experiment {
                        run_dir,
                        config: config.clone(),
                        backend: backend.clone(),
                        seed,
                        overrides: point.clone(),
                    });
                }
            }
        }
    }
    // A key set to one value is a setting, not an axis: it gets no sweep plot.
    let swept = args
        .set
        .iter()
        .chain(&args.log_uniform)
        .chain(&args.uniform)
        .filter_map(|s| s.split_once('=').map(|(k, _)| k.to_string()))
        .filter(|key| takes_values(&points, key) > 1)
        .collect();
    Ok(Plan {
        experiments,
        swept,
        log_scale: !args.log_uniform.is_empty(),
    })
}

pub fn run(args: &Args) -> Result<()> {
    let root = workspace_root();
    if args.executor == Executor::Slurm {
        // Before anything is written: a missing Slurm is one clear error.
        slurm::check_available()?;
    }
    let zoo = zoo_binary(&root)?;
    let plan = plan(args, &root, &zoo)?;
    plan.save(&args.out)?;
    match args.executor {
        Executor::Local => run_local(&zoo, &plan, args.jobs)?,
        Executor::Slurm => {
            let zoo = std::path::absolute(&zoo).context("cannot resolve the zoo binary")?;
            if !slurm::run(&zoo, &plan, &args.out, &args.slurm)? {
                return Ok(());
            }
        }
    }
    collect(&root, &args.out)
}

/// Runs the plan's experiments as local processes, `jobs` at a time; failures are recorded in
/// each run directory's `train.log`, which `collect` reads.
fn run_local(zoo: &Path, plan: &Plan, jobs: usize) -> Result<()> {
    let experiments = &plan.experiments;
    eprintln!("batch: {} experiments, {jobs} at a time", experiments.len());
    let next = Mutex::new(0usize);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..jobs.max(1))
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
                        let failure = run_locally(zoo, e)?;
                        let row = row(e, failure.as_deref())?;
                        eprintln!(
                            "batch: [{}/{}] {} {} seed {} {}: {}",
                            i + 1,
                            experiments.len(),
                            e.config,
                            e.backend,
                            e.seed,
                            e.overrides.join(" "),
                            match row.test_accuracy {
                                Some(a) => format!("test accuracy {a:.4}"),
                                None => format!("failed: {}", row.error),
                            }
                        );
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a batch worker panicked")?;
        }
        Ok(())
    })
}

/// Why an experiment that has no metrics did not finish: the Slurm executor's record, else the
/// last `error:` line of a local run's `train.log`.
fn failure_of(e: &Experiment, slurm_failures: &slurm::Failures) -> Option<String> {
    let dir = e.run_dir.as_ref().ok()?;
    if let Some(f) = slurm_failures.get(&dir.display().to_string()) {
        return Some(f.describe());
    }
    let log = dir.join("train.log");
    log.exists().then(|| last_attempts_error(&log))
}

/// `collect`: results.{csv,json,md} and plots of the batch in `out`, from its run directories.
pub fn collect(root: &Path, out: &Path) -> Result<()> {
    let plan = Plan::load(out)?;
    slurm::record_ended(&plan, out)?;
    let failures = slurm::Failures::load(out)?;
    let rows = plan
        .experiments
        .iter()
        .map(|e| row(e, failure_of(e, &failures).as_deref()))
        .collect::<Result<Vec<Row>>>()?;
    report::write(root, out, &rows, &plan.swept, plan.log_scale)?;
    let count = |status: &str| rows.iter().filter(|r| r.status == status).count();
    eprintln!(
        "batch: {} finished, {} failed, {} not run; wrote {}/results.{{csv,json,md}} and plots/",
        count("ok"),
        count("failed"),
        count("not run"),
        out.display()
    );
    Ok(())
}

pub fn run_collect(args: &CollectArgs) -> Result<()> {
    collect(&workspace_root(), &args.results)
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
    fn a_key_with_one_value_is_no_axis() {
        let points: Vec<Vec<String>> = ["0.1", "0.3"]
            .iter()
            .map(|lr| vec![format!("train.lr={lr}"), "train.epochs=2".to_string()])
            .collect();
        assert_eq!(takes_values(&points, "train.lr"), 2);
        assert_eq!(takes_values(&points, "train.epochs"), 1);
        assert_eq!(takes_values(&points, "train.seed"), 0);
    }

    #[test]
    fn ranges_parse_and_reject_nonsense() {
        assert_eq!(
            parse_range("train.lr=1e-4:1e-1").unwrap(),
            ("train.lr".into(), 1e-4, 1e-1)
        );
        assert!(parse_range("train.lr=1:0.1").is_err());
        assert!(parse_range("train.lr=nan:1").is_err());
        assert!(parse_range("train.lr").is_err());
        let err = format!("{:#}", parse_range("train.lr=x:1").unwrap_err());
        assert!(err.starts_with("train.lr=x:1: LO is not a number"), "{err}");
    }
}
