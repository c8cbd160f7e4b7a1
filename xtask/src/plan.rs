//! A batch's plan, `<out>/batch.json`: every experiment with its run directory and the `zoo`
//! arguments that train it, whichever executor runs it; `collect` reads it back.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One experiment of the batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Experiment {
    pub config: String,
    pub backend: String,
    pub seed: u64,
    /// `KEY=VALUE` overrides (the grid point or random sample), without the seed.
    pub overrides: Vec<String>,
    /// Its run directory, or why its config does not resolve (`zoo check`'s error line).
    pub run_dir: std::result::Result<PathBuf, String>,
}

impl Experiment {
    /// The `zoo` arguments that train it into its run directory, resuming what is there.
    pub fn train_args(&self, run_dir: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "train",
            &self.config,
            "--backend",
            &self.backend,
            "--resume",
            "--out",
        ]
        .map(String::from)
        .into();
        args.push(run_dir.display().to_string());
        args.extend(set_args(&self.overrides, self.seed));
        args
    }
}

/// What `batch` saves as `<out>/batch.json` and `collect` reads back.
#[derive(Debug, Serialize, Deserialize)]
pub struct Plan {
    pub experiments: Vec<Experiment>,
    /// The swept keys (axes of the accuracy plots), and whether any was log-uniform.
    pub swept: Vec<String>,
    pub log_scale: bool,
}

pub const PLAN_FILE: &str = "batch.json";

impl Plan {
    pub fn load(out: &Path) -> Result<Plan> {
        let path = out.join(PLAN_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: cannot read (is it a batch's --out directory?)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a batch plan", path.display()))
    }

    pub fn save(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let json = serde_json::to_vec_pretty(self)?;
        zoo::fsutil::write_atomic(&out.join(PLAN_FILE), &json)
            .with_context(|| format!("cannot write {}", out.join(PLAN_FILE).display()))
    }
}

/// `--set` arguments for `overrides` and the seed.
pub fn set_args(overrides: &[String], seed: u64) -> Vec<String> {
    let mut args = Vec::new();
    for o in overrides
        .iter()
        .cloned()
        .chain([format!("train.seed={seed}")])
    {
        args.push("--set".to_string());
        args.push(o);
    }
    args
}
