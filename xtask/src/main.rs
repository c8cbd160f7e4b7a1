//! `cargo xtask`: the project's batch tasks (the cargo-xtask convention). It drives the `zoo`
//! binary as a user would, through cargo, and reads back what zoo writes with zoo's own types
//! (`Metrics`, `LmMetrics`, `BenchResult`). The layering is in docs/architecture.md.

mod batch;
mod bench;
mod common;
mod docs;
mod folder;
mod loader;
mod plan;
mod records;
mod report;
mod reproduce;
mod slurm;
mod soak;

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
    /// Write the tables and plots of a batch (after `batch --executor slurm --no-wait`).
    Collect(batch::CollectArgs),
    /// Loader, training and inference throughput and peak memory per config and backend.
    Bench(bench::Args),
    /// Train every shipped config (Fashion-MNIST and text), record the results and regenerate
    /// the docs' tables.
    Reproduce(reproduce::Args),
    /// Write an ImageFolder-layout dataset (train/, val/, test/) from Fashion-MNIST.
    ImageFolder(folder::Args),
    /// Images/s of zoo's image-folder loader beside torchvision's ImageFolder + DataLoader.
    BenchLoader(loader::Args),
    /// Resident memory, open files and run-directory size over a long training run and a long
    /// `zoo predict` stream; with --record, keeps them and regenerates docs/reliability.md's
    /// soak section.
    Soak(soak::Args),
    /// Regenerate the tables of README.md and docs/ from bench/results/ (--check: verify only).
    Docs(docs::Args),
}

/// After a task recorded a measurement, the docs' tables are rendered from it.
fn regenerate_docs(recorded: bool) -> anyhow::Result<()> {
    match recorded {
        true => docs::write(&common::workspace_root()),
        false => Ok(()),
    }
}

fn main() -> std::process::ExitCode {
    let done = match Cli::parse().task {
        Task::Batch(args) => batch::run(&args),
        Task::Collect(args) => batch::run_collect(&args),
        Task::Bench(args) => bench::run(&args).and_then(regenerate_docs),
        Task::Reproduce(args) => reproduce::run(&args).and_then(regenerate_docs),
        Task::ImageFolder(args) => folder::run(&args),
        Task::BenchLoader(args) => loader::run(&args).and_then(regenerate_docs),
        Task::Soak(args) => soak::run(&args).and_then(regenerate_docs),
        Task::Docs(args) => docs::run(&common::workspace_root(), &args),
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // One line: the error and its causes, as zoo prints them.
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
