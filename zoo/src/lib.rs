//! zoo: the textbook's neural networks, built from TOML experiment files on Burn, trained
//! and evaluated by one shared trainer on any backend.
//!
//! The modules in layers, each importing only from the layers before it:
//! 1. leaves: `invalid` (validation errors), `input` (what data hands a model), `fsutil`,
//!    `backend`, `summary` (the notes' per-layer table);
//! 2. data: `data` (`[data]`, splits, standardization), `text` (corpus, vocabulary, windows);
//! 3. models: `losses`, `models` (the registry, one file per family);
//! 4. training: `schedule`, `checkpoint` (weights on disk), `interop` (weights in and out of
//!    PyTorch), `train` (the shared trainer, which knows no model), `eval` (image
//!    classification as a task and its evaluation);
//! 5. `config`: the one module that assembles an experiment from the sections above;
//! 6. runs: `run_dir` (a run directory's files), `run` (image runs), `lm` (char-lm runs),
//!    `cv`, `bench`, `predict`; the binary's `main` drives them.

pub mod backend;
pub mod bench;
pub mod checkpoint;
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
