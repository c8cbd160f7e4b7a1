//! zoo: the textbook's neural networks, built from TOML experiment files on Burn, trained
//! and evaluated by one shared trainer on any backend.
//!
//! The way an experiment travels: `config` (parse, validate, `--set`) -> `data` (splits,
//! standardization) and `models` (one file per family) -> `train` (the shared loop,
//! checkpoints) -> `eval` (test metrics) -> the run directory, all driven by `run`.

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod cv;
pub mod data;
pub mod eval;
pub mod fsutil;
pub mod gradcheck;
pub mod lm;
pub mod losses;
pub mod models;
pub mod run;
pub mod schedule;
pub mod summary;
pub mod text;
pub mod train;
