//! `cargo xtask`: the project's batch tasks (the cargo-xtask convention). It drives the `zoo`
//! binary as a user would, through cargo, and never reaches into a model.

mod batch;
mod bench;
mod report;
mod reproduce;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run configs x backends x seeds x a grid (or random search) and report the results.
    Batch(batch::Args),
    /// Loader, training and inference throughput and peak memory per config and backend.
    Bench(bench::Args),
    /// Train every shipped config (Fashion-MNIST and text) and regenerate the README's tables.
    Reproduce(reproduce::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Batch(args) => batch::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Reproduce(args) => reproduce::run(&args),
    }
}

/// The workspace root (xtask sits one level below it).
fn workspace_root() -> std::path::PathBuf {
    let xtask_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_path_buf()
}

/// The `.toml` files directly in `dir`, sorted.
fn configs_in(dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    found.sort();
    Ok(found)
}

/// Replaces the README's text between `<!-- NAME:begin ... -->` and `<!-- NAME:end -->`.
fn splice_readme(readme: &std::path::Path, name: &str, content: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let text = std::fs::read_to_string(readme).context("cannot read README.md")?;
    let begin = format!("<!-- {name}:begin");
    let end = format!("<!-- {name}:end -->");
    let (Some(a), Some(b)) = (text.find(&begin), text.find(&end)) else {
        anyhow::bail!("README.md has no {name} markers ({begin} ... {end})");
    };
    let marker_end = a + text[a..].find("-->").map_or(0, |i| i + 3);
    let updated = format!("{}\n{content}{}", &text[..marker_end], &text[b..]);
    zoo::fsutil::write_atomic(readme, updated.as_bytes()).context("cannot write README.md")
}

/// The `zoo` binary: `$ZOO_BIN` when set, else built now (the workspace's one profile).
fn zoo_binary(root: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    if let Some(bin) = std::env::var_os("ZOO_BIN") {
        return Ok(bin.into());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(root)
        .args(["build", "--quiet", "--package", "zoo", "--bin", "zoo"])
        .status()
        .context("cannot run cargo")?;
    anyhow::ensure!(status.success(), "building zoo failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    Ok(target.join("debug").join("zoo"))
}

/// The mean of a run's `epoch_seconds` (from its metrics.json); `None` when it has no epochs.
fn mean_epoch_seconds(metrics: &serde_json::Value) -> Option<f64> {
    let seconds = metrics["epoch_seconds"]
        .as_array()
        .filter(|s| !s.is_empty())?;
    Some(
        seconds
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .sum::<f64>()
            / seconds.len() as f64,
    )
}
