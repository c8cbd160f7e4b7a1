//! `cargo xtask bench --against-pytorch` without torch, and with a twin that does not match:
//! zoo is measured either way, and the table says what PyTorch's side gave. (CI has no torch;
//! the real comparison is in docs/performance.md.)

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{fake_python, write_config, write_dataset, zoo_bin};

fn bench(dir: &Path, config: &Path, python: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("bench")
        .arg("--configs")
        .arg(config)
        .args([
            "--backends",
            "flex",
            "--steps",
            "2",
            "--min-seconds",
            "0",
            "--against-pytorch",
        ])
        .arg("--python")
        .arg(python)
        .arg("--out")
        .arg(dir.join("results"))
        .env("ZOO_BIN", zoo_bin())
        .output()
        .unwrap()
}

#[test]
fn without_torch_zoo_is_measured_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_dataset(&data, 200);
    let config = write_config(dir.path(), "softmax", "kind = \"softmax\"", &data, 1);
    let python = fake_python(
        dir.path(),
        "echo 'torch is not installed (pip install torch)' >&2; exit 3",
    );
    let out = bench(dir.path(), &config, &python);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "has no torch (torch is not installed (pip install torch)): measuring zoo alone"
        ),
        "{stderr}"
    );
    let table = std::fs::read_to_string(dir.path().join("results/bench.md")).unwrap();
    assert!(!table.contains("PyTorch"), "{table}");
    assert!(table.contains("softmax.toml | flex |"), "{table}");
}

#[test]
fn a_twin_of_another_size_is_reported_not_compared() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_dataset(&data, 200);
    let config = write_config(dir.path(), "softmax", "kind = \"softmax\"", &data, 1);
    // The resolved config reaches the twin; this one answers with the wrong size.
    let json = r#"{"params": 10, "train_samples_per_second": 1000.0, "batch_size": 32, "inference_samples_per_second": 5000.0, "inference_batch_size": 200, "torch": "fake", "threads": 1}"#;
    let python = fake_python(
        dir.path(),
        &format!("grep -q 'kind = \"softmax\"' \"$2\" && echo '{json}'"),
    );
    let out = bench(dir.path(), &config, &python);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = std::fs::read_to_string(dir.path().join("results/bench.md")).unwrap();
    assert!(table.contains("zoo / PyTorch, train"), "{table}");
    assert!(
        table.contains("failed: the PyTorch twin has 10 parameters, zoo's network 7850"),
        "{table}"
    );
}
