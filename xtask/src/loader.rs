//! `cargo xtask bench-loader`: images/s of zoo's image-folder training loader (decode, random
//! resized crop, flip, standardize) beside torchvision's `ImageFolder` + `DataLoader` with the
//! same transforms (`xtask/torchvision_loader.py`) on the same files, interleaved round by
//! round in one run; writes `results/loader.{md,json}`, and with `--record`
//! `bench/results/loader.json`, from which docs/performance.md's loader table is rendered.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use zoo::bench::LoaderBench;

use crate::common::{error_line, workspace_root, write_results, zoo_binary};
use crate::records::{self, Provenance, Record};

#[derive(clap::Args)]
pub struct Args {
    /// An image folder (e.g. from `cargo xtask image-folder`); its train/ is read.
    #[arg(long)]
    dir: PathBuf,
    /// Side of the crops.
    #[arg(long, default_value_t = 224)]
    size: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Timed batches per measurement (after one untimed batch).
    #[arg(long, default_value_t = 20)]
    batches: usize,
    /// Measurements of each loader, alternating.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// torchvision's DataLoader workers (default: the machine's cores, as zoo decodes on).
    #[arg(long)]
    workers: Option<usize>,
    /// The Python that has torch and torchvision.
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Keep the run as `bench/results/loader.json` and regenerate docs/performance.md's
    /// loader table from it (without: only `--out` gets the results).
    #[arg(long)]
    record: bool,
}

/// What `torchvision_loader.py` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TorchvisionLoader {
    pub images_per_second: f64,
    pub workers: usize,
    pub torch: String,
    pub torchvision: String,
}

/// Every round's rates; torchvision's are empty without torch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoaderRounds {
    /// The folder read, as given.
    pub folder: String,
    /// The side of the square crops.
    pub size: usize,
    pub zoo: Vec<LoaderBench>,
    pub torchvision: Vec<TorchvisionLoader>,
}

/// The record's name under `bench/results/`.
pub const RECORD: &str = "loader";

/// Measures both loaders; returns whether a record was written (`--record`).
pub fn run(args: &Args) -> Result<bool> {
    let root = workspace_root();
    let zoo = zoo_binary(&root)?;
    let config = root.join("configs/imagenet/resnet18.toml");
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut rounds = LoaderRounds {
        folder: args.dir.display().to_string(),
        size: args.size,
        zoo: Vec::new(),
        torchvision: Vec::new(),
    };
    let mut torch_available = true;
    for round in 1..=args.rounds {
        eprintln!("bench-loader: round {round}/{}: zoo", args.rounds);
        rounds.zoo.push(measure_zoo(&zoo, &root, &config, args)?);
        if torch_available {
            eprintln!("bench-loader: round {round}/{}: torchvision", args.rounds);
            match measure_torchvision(&root, args, workers)? {
                Some(t) => rounds.torchvision.push(t),
                None => torch_available = false,
            }
        }
    }
    write_results(&args.out, "loader", &markdown(&rounds), &rounds)?;
    if !args.record {
        return Ok(false);
    }
    let record = Record {
        provenance: Provenance::now(&root, records::this_command()),
        rows: rounds,
    };
    let file = records::save(&root, RECORD, &record)?;
    eprintln!("bench-loader: wrote {}", file.display());
    Ok(true)
}

fn measure_zoo(zoo: &Path, root: &Path, config: &Path, args: &Args) -> Result<LoaderBench> {
    let set = |key: &str, value: String| ["--set".to_string(), format!("{key}={value}")];
    let out = Command::new(zoo)
        .current_dir(root)
        .arg("bench")
        .arg(config)
        .arg("--data-dir")
        .arg(&args.dir)
        .args(set("data.resize", args.size.to_string()))
        .args(set("data.batch_size", args.batch_size.to_string()))
        .args([
            "--loader-only",
            "--json",
            "--steps",
            &args.batches.to_string(),
        ])
        .output()
        .context("cannot run zoo")?;
    anyhow::ensure!(
        out.status.success(),
        "zoo bench --loader-only: {}",
        error_line(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).context("zoo bench --loader-only printed no JSON")
}

/// torchvision's rate, or `None` when the interpreter has no torch.
fn measure_torchvision(
    root: &Path,
    args: &Args,
    workers: usize,
) -> Result<Option<TorchvisionLoader>> {
    let out = Command::new(&args.python)
        .arg(root.join("xtask/torchvision_loader.py"))
        .arg(&args.dir)
        .args(["--size", &args.size.to_string()])
        .args(["--batch-size", &args.batch_size.to_string()])
        .args(["--batches", &args.batches.to_string()])
        .args(["--workers", &workers.to_string()])
        .output()
        .with_context(|| format!("cannot run {}", args.python.display()))?;
    if out.status.code() == Some(3) {
        eprintln!(
            "bench-loader: {} has no torch ({}): measuring zoo alone",
            args.python.display(),
            error_line(&out.stderr)
        );
        return Ok(None);
    }
    anyhow::ensure!(
        out.status.success(),
        "torchvision_loader.py: {}",
        error_line(&out.stderr)
    );
    Ok(Some(
        serde_json::from_slice(&out.stdout).context("torchvision_loader.py printed no JSON")?,
    ))
}

/// The table of the rounds, zoo's and torchvision's rates side by side.
pub fn markdown(rounds: &LoaderRounds) -> String {
    let first = rounds.zoo.first();
    let mut out = format!(
        "Training loader, {}x{} crops from `{}`, batch {}, {} timed batches per round:\n\n| round | zoo images/s ({} decoding threads) | torchvision images/s | zoo / torchvision |\n|---:|---:|---:|---:|\n",
        rounds.size,
        rounds.size,
        rounds.folder,
        first.map_or(0, |z| z.batch_size),
        first.map_or(0, |z| z.batches),
        first.map_or(0, |z| z.threads),
    );
    for (i, z) in rounds.zoo.iter().enumerate() {
        let (tv, ratio) = match rounds.torchvision.get(i) {
            Some(t) => (
                format!("{:.0} ({} workers)", t.images_per_second, t.workers),
                format!("{:.2}", z.images_per_second / t.images_per_second),
            ),
            None => ("-".into(), "-".into()),
        };
        out += &format!(
            "| {} | {:.0} | {tv} | {ratio} |\n",
            i + 1,
            z.images_per_second
        );
    }
    if let Some(t) = rounds.torchvision.first() {
        out += &format!("\ntorch {}, torchvision {}.\n", t.torch, t.torchvision);
    }
    out
}
