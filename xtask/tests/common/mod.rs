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

/// Whether Slurm's daemons are installed; without them a Slurm test says so and passes,
/// unless `ZOO_REQUIRE_SLURM` is set (as in CI), where that is a failure.
pub fn slurm_installed() -> bool {
    if Command::new("slurmctld").arg("-V").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("ZOO_REQUIRE_SLURM").is_none(),
        "ZOO_REQUIRE_SLURM is set but Slurm is not installed (slurm-wlm, munge)"
    );
    eprintln!("skipped: Slurm is not installed (apt-get install slurm-wlm munge)");
    false
}

/// The cluster's daemons, stopped when dropped (the test passing or failing).
pub struct Cluster {
    pub dir: PathBuf,
    pub conf: String,
}

impl Cluster {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/slurm-cluster")
    }

    pub fn up(dir: &Path) -> Cluster {
        let out = Command::new(Self::script())
            .arg("up")
            .arg(dir)
            .output()
            .unwrap();
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            conf: String::new(),
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        cluster.conf = stdout
            .trim()
            .strip_prefix("export SLURM_CONF=")
            .expect("the script prints SLURM_CONF")
            .to_string();
        cluster
    }

    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SLURM_CONF", &self.conf);
        cmd
    }

    pub fn down(&self) {
        let status = Command::new(Self::script())
            .arg("down")
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.down();
    }
}

pub fn xtask_command(zoo: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args)
        .env("ZOO_BIN", zoo)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

/// Every file and folder below `dir`, at any depth.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}
