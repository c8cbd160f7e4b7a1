//! Helpers of the xtask tests: the `zoo` binary, a generated dataset and configs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use datasets::idx::write_split;

/// The `zoo` binary beside this test's executable (target/debug/zoo), brought up to date.
pub fn zoo_bin() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "zoo", "--bin", "zoo"])
        .status()
        .unwrap();
    assert!(status.success());
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("zoo")
}

/// A learnable 10-class 28x28 dataset in IDX format, `train` training and 100 test images.
pub fn write_dataset(dir: &Path, train: usize) {
    for (prefix, n) in [("train", train), ("t10k", 100)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let pixels: Vec<u8> = (0..n * 784)
            .map(|p| {
                let (image, row) = (p / 784, (p % 784) / 28);
                let class = image % 10;
                if row / 2 == class {
                    200
                } else {
                    ((p * 31) % 70) as u8
                }
            })
            .collect();
        write_split(dir, prefix, &pixels, &labels, 28, 28).unwrap();
    }
}

/// `<dir>/<name>.toml`: `model` on the dataset in `data` for `epochs` epochs.
pub fn write_config(dir: &Path, name: &str, model: &str, data: &Path, epochs: usize) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let body = format!(
        "[model]\n{model}\n\n[data]\ndataset = \"mnist\"\ndir = \"{}\"\nval_size = 50\nbatch_size = 32\n\n[train]\nepochs = {epochs}\noptimizer = \"momentum\"\nlr = 0.01\n",
        data.display()
    );
    std::fs::write(&path, body).unwrap();
    path
}

/// An executable shell script standing in for Python.
pub fn fake_python(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("python");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
