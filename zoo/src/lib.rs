//! zoo: the textbook's neural networks, built from TOML experiment files on Burn, trained
//! and evaluated by one shared trainer on any backend.
//!
//! The modules form layers, each importing only from the layers before it: leaves (`invalid`,
//! `input`, `fsutil`, `backend`, `summary`), data, models, training, `config` (the one module
//! that assembles an experiment), then the runs. The full layering, module by module, is in
//! `docs/architecture.md`; `tests/module_graph.rs` checks that no two modules import each other.

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod checksums;
pub mod config;
pub mod cv;
pub mod data;
pub mod eval;
pub mod fsutil;
#[cfg(test)]
mod gradcheck;
pub mod input;
pub mod interop;
pub mod invalid;
pub mod lm;
pub mod losses;
pub mod models;
pub mod predict;
pub mod run;
pub mod run_dir;
pub mod schedule;
pub mod summary;
pub mod text;
pub mod train;
pub mod verify;
