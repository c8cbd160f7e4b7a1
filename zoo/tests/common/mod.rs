//! Helpers for the CLI tests: a generated MNIST-format dataset and a `zoo` command.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

use datasets::idx::write_split;

pub const FASHION_MNIST: &str = datasets::DEFAULT_FASHION_MNIST_DIR;

/// A scratch directory for one test: the working directory of the `zoo` runs, optionally
/// with a generated dataset in `data/`.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn empty() -> Self {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// With `train` and `test` generated images in `data/`.
    pub fn with_data(train: usize, test: usize) -> Self {
        let sandbox = Self::empty();
        write_synthetic_mnist(&sandbox.data(), train, test);
        sandbox
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    /// Writes `tiny_config(model, data, extra)` as `name` and returns its path.
    pub fn config(&self, name: &str, model: &str, extra: &str) -> String {
        let path = write_config(self.path(), name, &tiny_config(model, &self.data(), extra));
        path.to_string_lossy().into_owned()
    }

    pub fn zoo(&self, args: &[&str]) -> Output {
        zoo(self.path(), args)
    }

    /// Runs `zoo` and asserts it succeeded.
    pub fn zoo_ok(&self, args: &[&str]) -> Output {
        let out = self.zoo(args);
        assert!(
            out.status.success(),
            "zoo {args:?} failed:\n{}",
            stderr(&out)
        );
        out
    }

    /// The `metrics.json` of the run directory `run` (relative to the sandbox).
    pub fn metrics(&self, run: &str) -> serde_json::Value {
        metrics(&self.path().join(run))
    }
}

/// Writes a learnable 10-class, 28x28 dataset in IDX format: class c lights rows 2c..2c+3,
/// with pseudo-random noise everywhere.
pub fn write_synthetic_mnist(dir: &Path, train: usize, test: usize) {
    for (prefix, n, salt) in [("train", train, 1u64), ("t10k", test, 2u64)] {
        let mut pixels = Vec::with_capacity(n * 784);
        let mut labels = Vec::with_capacity(n);
        let mut state = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for i in 0..n {
            let class = (i * 7 + salt as usize) % 10;
            labels.push(class as u8);
            for row in 0..28 {
                for _ in 0..28 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let noise = (state % 90) as u8;
                    let lit = row >= 2 * class && row < 2 * class + 3;
                    pixels.push(if lit { 160 + noise } else { noise });
                }
            }
        }
        write_split(dir, prefix, &pixels, &labels, 28, 28).unwrap();
    }
}

/// Writes `body` as `name` in `dir` and returns its path.
pub fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// The `zoo` binary, run in `cwd` with the given arguments.
pub fn zoo(cwd: &Path, args: &[&str]) -> Output {
    zoo_command(cwd, args).output().expect("zoo runs")
}

pub fn zoo_command(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zoo"));
    cmd.args(args)
        .current_dir(cwd)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

/// The exit status of `zoo train` stopped by a signal after writing a checkpoint.
pub const INTERRUPTED: i32 = 75;

/// Starts `zoo ARGS` (a `train`), sends it `signals` (names for `kill`: TERM, INT) back to back
/// as soon as it says it is training (its handlers are in place by then), and waits: its exit
/// status and stderr.
pub fn train_and_signal(cwd: &Path, args: &[&str], signals: &[&str]) -> (ExitStatus, String) {
    let mut child = zoo_command(cwd, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zoo runs");
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        log.push_str(&line);
        if line.starts_with("training ") {
            // One shell sends them all with its builtin `kill`, microseconds apart: separate
            // `kill` processes could leave time for the first signal's checkpoint and exit.
            let kills: Vec<String> = signals.iter().map(|s| format!("kill -{s} $1")).collect();
            let status = Command::new("sh")
                .args(["-c", &kills.join(" && "), "sh", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            break;
        }
        line.clear();
    }
    reader.read_to_string(&mut log).unwrap();
    (child.wait().unwrap(), log)
}

/// The names of a run's checkpoint directories, sorted.
pub fn checkpoint_names(run_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run_dir.join("checkpoints"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Asserts two runs' `metrics.json` show the same training: the same final weights and the
/// same epoch records, timings apart (they differ between any two runs).
pub fn assert_same_training(a: &serde_json::Value, b: &serde_json::Value) {
    assert!(a["weights_digest"].is_string(), "no weights digest: {a}");
    assert_eq!(
        a["weights_digest"], b["weights_digest"],
        "different final weights"
    );
    let without_timings = |m: &serde_json::Value| {
        let mut history = m["history"].as_array().expect("a history").clone();
        for record in &mut history {
            record
                .as_object_mut()
                .unwrap()
                .retain(|key, _| !key.contains("second"));
        }
        history
    };
    assert_eq!(without_timings(a), without_timings(b));
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a failed run printed exactly one `error:` line (after any progress lines) and no
/// panic trace; returns stderr from that line on.
pub fn assert_clean_failure(out: &Output) -> String {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr:\n{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "one `error:` line:\n{err}"
    );
    assert!(
        !err.contains("panicked")
            && !err.contains("internal error")
            && !err.contains("RUST_BACKTRACE"),
        "panic in stderr:\n{err}"
    );
    err[err.find("error: ").unwrap()..].to_string()
}

/// A small, quick experiment over the synthetic dataset in `data_dir`.
pub fn tiny_config(model: &str, data_dir: &Path, extra: &str) -> String {
    format!(
        r#"[model]
{model}

[data]
dataset = "mnist"
dir = "{}"
val_size = 100
batch_size = 32
eval_batch_size = 200

[train]
epochs = 2
optimizer = "momentum"
lr = 0.01
seed = 3
{extra}
"#,
        data_dir.display()
    )
}

/// The `metrics.json` of a run.
pub fn metrics(run_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("metrics.json")).unwrap()).unwrap()
}

/// The workspace's `configs/` directory.
pub fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

/// Every shipped Fashion-MNIST config of a trainable image family, as (file name, experiment).
pub fn shipped_image_configs() -> Vec<(String, zoo::config::Experiment)> {
    let dir = configs_dir().join("fashion-mnist");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let exp = zoo::config::Experiment::load(&p, &[]).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), exp)
        })
        .filter(|(_, exp)| matches!(exp.model, zoo::models::ModelConfig::Image(_)))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// One shipped Fashion-MNIST config per registered image family (the first by file name);
/// fails when a family has none, so that a new family gets the backend tests too.
pub fn one_config_per_family() -> Vec<(String, zoo::config::Experiment)> {
    let shipped = shipped_image_configs();
    let families: Vec<&str> = zoo::models::ImageModelConfig::kinds();
    families
        .iter()
        .map(|kind| {
            shipped
                .iter()
                .find(|(_, exp)| exp.model.kind() == *kind)
                .unwrap_or_else(|| {
                    panic!("no config in configs/fashion-mnist has kind = \"{kind}\"")
                })
                .clone()
        })
        .collect()
}

/// `--set` values that shrink a shipped config for a quick test: 1/16 of the paper's width
/// for the families that have a `width` multiplier.
pub fn shrunk(exp: &zoo::config::Experiment) -> Vec<&'static str> {
    let resolved: toml::Table = exp.to_toml().parse().unwrap();
    match resolved["model"].get("width") {
        Some(_) => vec!["model.width=0.0625"],
        None => Vec::new(),
    }
}

/// The PyTorch parity fixtures: `tests/pytorch/<case>/`, written by make_fixtures.py there.
pub fn pytorch_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pytorch")
}

/// A fixture's weights file: `weights.pth` or `weights.safetensors` in its directory.
pub fn fixture_weights(case: &Path) -> PathBuf {
    ["weights.pth", "weights.safetensors"]
        .iter()
        .map(|f| case.join(f))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{} holds no weights", case.display()))
}

/// One tensor of a safetensors file, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTensor {
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    /// Little-endian.
    pub bytes: Vec<u8>,
}

impl StoredTensor {
    /// The values as f32 (int64 tensors converted).
    pub fn values(&self) -> Vec<f32> {
        match self.dtype {
            safetensors::Dtype::I64 => self
                .bytes
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            safetensors::Dtype::F32 => self
                .bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            other => panic!("a {other:?} tensor: the fixtures hold float32 and int64"),
        }
    }
}

/// Every tensor of a safetensors file, by name.
pub fn read_safetensors(path: &Path) -> std::collections::BTreeMap<String, StoredTensor> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, t)| {
            let tensor = StoredTensor {
                dtype: t.dtype(),
                shape: t.shape().to_vec(),
                bytes: t.data().to_vec(),
            };
            (name, tensor)
        })
        .collect()
}
