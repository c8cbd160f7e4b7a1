//! `cargo xtask`: the project's batch tasks (the cargo-xtask convention). It drives the `zoo`
//! binary as a user would, through cargo, and reads back what zoo writes with zoo's own types
//! (`Metrics`, `LmMetrics`, `BenchResult`). Modules: `common` (the leaf: paths, README
//! splicing, references, error lines), `report` (tables and plots of a batch's rows), `batch`
//! (runs a `plan`'s experiments locally or through `slurm`, then `report`), `bench`,
//! `reproduce`, `folder` (image folders written from Fashion-MNIST) and `loader` (the image
//! loader beside torchvision's); `main` only dispatches.

mod batch;
mod bench;
mod common;
mod folder;
mod loader;
mod plan;
mod report;
mod reproduce;
mod slurm;

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
    /// Train every shipped config (Fashion-MNIST and text) and regenerate the README's tables.
    Reproduce(reproduce::Args),
    /// Write an ImageFolder-layout dataset (train/, val/, test/) from Fashion-MNIST.
    ImageFolder(folder::Args),
    /// Images/s of zoo's image-folder loader beside torchvision's ImageFolder + DataLoader.
    BenchLoader(loader::Args),
}

fn main() -> std::process::ExitCode {
    let done = match Cli::parse().task {
        Task::Batch(args) => batch::run(&args),
        Task::Collect(args) => batch::run_collect(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Reproduce(args) => reproduce::run(&args),
        Task::ImageFolder(args) => folder::run(&args),
        Task::BenchLoader(args) => loader::run(&args),
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
