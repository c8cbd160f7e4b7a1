//! The measurements kept in the repository, under `bench/results/`: each a JSON file of rows
//! tagged with the command that measured them, the commit it ran on, the date and the machine.
//! The generated tables of README.md and docs/ are rendered from these files alone
//! (`cargo xtask docs`), so a figure in the docs always has its record beside it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Where the records live, relative to the workspace root.
pub const RECORDS_DIR: &str = "bench/results";

/// What ran, where and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The command as a user types it, from the workspace root.
    pub command: String,
    /// `git rev-parse HEAD`, with `+dirty` when the tree had uncommitted changes.
    pub commit: String,
    /// The day it ran, `YYYY-MM-DD` (UTC).
    pub date: String,
    pub machine: Machine,
    /// Anything a reader of the record needs to know about how it was made.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The machine a record was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU's model name as the OS reports it.
    pub cpu: String,
    /// Cores (hardware threads) available to the process.
    pub cores: usize,
    /// Installed memory in GiB, where the OS reports it.
    pub memory_gib: Option<f64>,
}

impl Machine {
    /// This machine, now.
    pub fn here() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(
                || std::env::consts::ARCH.to_string(),
                |(_, v)| v.trim().to_string(),
            );
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let kib = m.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
                kib.trim().trim_end_matches("kB").trim().parse::<f64>().ok()
            })
            .map(|kib| (kib / (1024.0 * 1024.0)).round());
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib,
        }
    }

    /// `2 cores of an AMD EPYC, 24 GiB`.
    pub fn describe(&self) -> String {
        let cores = match self.cores {
            1 => "1 core".to_string(),
            n => format!("{n} cores"),
        };
        match self.memory_gib {
            Some(gib) => format!("{cores} of an {}, {gib:.0} GiB", self.cpu),
            None => format!("{cores} of an {}", self.cpu),
        }
    }
}

impl Provenance {
    /// The provenance of a measurement made now in `root` by `command`.
    pub fn now(root: &Path, command: String) -> Self {
        Self {
            command,
            commit: commit(root),
            date: today(),
            machine: Machine::here(),
            note: String::new(),
        }
    }
}

/// A whole measurement run: its provenance and its rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record<T> {
    #[serde(flatten)]
    pub provenance: Provenance,
    pub rows: T,
}

/// Records whose name starts with this are measured tables kept as printed (`Table`).
pub const TABLE_PREFIX: &str = "table-";

/// A measured table kept as data: the page that shows it, its columns and its cells.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Table {
    /// The page whose generated part of the record's name shows it, from the workspace root.
    pub page: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.columns);
        out += &format!("|{}\n", "---|".repeat(self.columns.len()));
        for row in &self.rows {
            out += &line(row);
        }
        out
    }
}

/// `bench/results/<name>.json` under `root`.
pub fn path(root: &Path, name: &str) -> PathBuf {
    root.join(RECORDS_DIR).join(format!("{name}.json"))
}

/// Writes `value` as `bench/results/<name>.json` (atomically).
pub fn save(root: &Path, name: &str, value: &impl Serialize) -> Result<PathBuf> {
    let file = path(root, name);
    std::fs::create_dir_all(file.parent().expect("records have a folder"))?;
    let mut json = serde_json::to_string_pretty(value)?;
    json.push('\n');
    zoo::fsutil::write_atomic(&file, json.as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}

/// Reads `bench/results/<name>.json`; `None` when there is no such record.
pub fn load<T: DeserializeOwned>(root: &Path, name: &str) -> Result<Option<T>> {
    let file = path(root, name);
    if !file.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a record this xtask can read", file.display()))
        .map(Some)
}

/// The names of the records whose file name starts with `prefix`, sorted.
pub fn names(root: &Path, prefix: &str) -> Result<Vec<String>> {
    let dir = root.join(RECORDS_DIR);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(str::to_string)
        })
        .filter(|n| n.starts_with(prefix))
        .collect();
    found.sort();
    Ok(found)
}

/// The command line that started this xtask, as `cargo xtask ...`.
pub fn this_command() -> String {
    let args: Vec<String> = std::env::args().skip(1).map(|a| quoted(&a)).collect();
    format!("cargo xtask {}", args.join(" "))
}

/// `a` as a shell word.
fn quoted(a: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c);
    if !a.is_empty() && a.chars().all(plain) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// HEAD's hash, `+dirty` when the work tree differs from it; `unknown` outside git.
fn commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        None => "unknown".into(),
        Some(hash) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{hash}+dirty"),
            _ => hash,
        },
    }
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((seconds / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_794), (2026, 12, 7));
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(quoted("--configs"), "--configs");
        assert_eq!(quoted("configs/a.toml,b.toml"), "configs/a.toml,b.toml");
        assert_eq!(quoted("data.dataset=\"x\""), "'data.dataset=\"x\"'");
        assert_eq!(quoted("it's"), r"'it'\''s'");
    }
}
