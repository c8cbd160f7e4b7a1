//! `cargo xtask image-folder` writes a folder from Fashion-MNIST, and `cargo xtask
//! bench-loader` times zoo's loader on it, beside torchvision's where the interpreter has torch
//! (here a stand-in; the real comparison is in the README).

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{fake_python, zoo_bin};

fn xtask(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(dir)
        .env("ZOO_BIN", zoo_bin())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn a_written_folder_is_read_by_zoos_loader_and_compared_with_torchvisions() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("folder");
    let folder_arg = folder.to_str().unwrap();
    ok(xtask(
        &[
            "image-folder",
            "--out",
            folder_arg,
            "--train",
            "100",
            "--val",
            "100",
            "--test",
            "0",
            "--size",
            "64x48",
        ],
        dir.path(),
    ));
    assert!(!folder.join("test").exists());
    let files = |split: &str| -> usize {
        std::fs::read_dir(folder.join(split))
            .unwrap()
            .map(|class| std::fs::read_dir(class.unwrap().path()).unwrap().count())
            .sum()
    };
    assert_eq!((files("train"), files("val")), (100, 100));

    let bench = |python: &Path| {
        let args = [
            "bench-loader",
            "--dir",
            folder_arg,
            "--size",
            "32",
            "--batch-size",
            "8",
            "--batches",
            "2",
            "--rounds",
            "1",
            "--out",
            "results",
            "--python",
            python.to_str().unwrap(),
        ];
        let stderr = ok(xtask(&args, dir.path()));
        let table = std::fs::read_to_string(dir.path().join("results/loader.md")).unwrap();
        (stderr, table)
    };
    let python = fake_python(dir.path(), "echo 'no module named torch' >&2; exit 3");
    let (stderr, table) = bench(&python);
    assert!(
        stderr.contains("has no torch (no module named torch): measuring zoo alone"),
        "{stderr}"
    );
    assert!(table.contains("| - | - |"), "{table}");
    // torchvision's script is given the folder and the same crop side; its rate becomes the ratio's denominator.
    let json = r#"{"images_per_second": 1000.0, "batch_size": 8, "batches": 2, "workers": 2, "torch": "fake", "torchvision": "fake"}"#;
    let python = fake_python(
        dir.path(),
        &format!("[ \"$2\" = '{folder_arg}' ] && [ \"$4\" = 32 ] && echo '{json}'"),
    );
    let (_, table) = bench(&python);
    assert!(
        table.contains("| 1000 (2 workers) |") && table.contains("torchvision fake"),
        "{table}"
    );
}
