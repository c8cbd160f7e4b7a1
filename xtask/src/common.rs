//! What the tasks share: the workspace's paths, the `zoo` binary, the results files of a run,
//! the notes' reference accuracies, and the error line of a failed `zoo` run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The workspace root (xtask sits one level below it), or `ZOO_ROOT` where set: a built xtask
/// carried to another machine (the GPU runs) finds the checkout there.
pub fn workspace_root() -> PathBuf {
    if let Some(root) = std::env::var_os("ZOO_ROOT") {
        return root.into();
    }
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_path_buf()
}

/// The `.toml` files directly in `dir`, sorted.
pub fn configs_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    found.sort();
    Ok(found)
}

/// Prints a task's table and writes it as `<out>/<name>.md`, its rows as `<out>/<name>.json`.
pub fn write_results(
    out: &Path,
    name: &str,
    table: &str,
    rows: &impl serde::Serialize,
) -> Result<()> {
    println!("{table}");
    std::fs::create_dir_all(out)?;
    zoo::fsutil::write_atomic(&out.join(format!("{name}.md")), table.as_bytes())?;
    zoo::fsutil::write_atomic(
        &out.join(format!("{name}.json")),
        serde_json::to_string_pretty(rows)?.as_bytes(),
    )?;
    eprintln!("wrote {}/{name}.{{md,json}}", out.display());
    Ok(())
}

/// The `zoo` binary: `$ZOO_BIN` when set, else built now (the workspace's one profile).
pub fn zoo_binary(root: &Path) -> Result<PathBuf> {
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
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("debug").join("zoo"))
}

/// A config's name: its file stem (`configs/fashion-mnist/mlp.toml` -> `mlp`).
pub fn stem(config: impl AsRef<Path>) -> String {
    config
        .as_ref()
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The notes' figure for one config on one dataset (`configs/references.toml`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub accuracy: Option<f64>,
    #[serde(default)]
    pub source: String,
}

impl Reference {
    /// `0.8833: MLP 256-128-100 (reported)`, or the source alone, or `-`.
    pub fn describe(&self) -> String {
        match (self.accuracy, self.source.is_empty()) {
            (Some(a), _) => format!("{a:.4}: {}", self.source),
            (None, false) => self.source.clone(),
            (None, true) => "-".into(),
        }
    }
}

/// `configs/references.toml`: dataset -> config name -> reference.
pub struct References(
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, Reference>>,
);

impl References {
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join("configs/references.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Self(
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?,
        ))
    }

    /// The reference of config `name` on `dataset`; an empty one where the notes have none.
    pub fn get(&self, dataset: &str, name: &str) -> Reference {
        self.0
            .get(dataset)
            .and_then(|configs| configs.get(name))
            .cloned()
            .unwrap_or_default()
    }
}

/// The `error:` line a failed `zoo` run printed last (progress lines may precede it), or
/// else its last line.
pub fn error_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .or_else(|| text.lines().next_back())
        .unwrap_or("")
        .to_string()
}
