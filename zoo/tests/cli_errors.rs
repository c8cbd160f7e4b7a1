//! Bad input ends in one clear error and a non-zero exit, never a panic.

mod common;
use common::*;

#[test]
fn invalid_value_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(
        dir.path(),
        "bad.toml",
        &tiny_config("kind = \"mlp\"", &data, "momentum = 1.5"),
    );
    let err = assert_clean_failure(&zoo(dir.path(), &["check", config.to_str().unwrap()]));
    assert!(
        err.contains("bad.toml:16: train.momentum: expected a number in [0, 1), got 1.5"),
        "{err}"
    );
}

#[test]
fn unknown_key_and_unknown_kind_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(
        dir.path(),
        "typo.toml",
        &tiny_config("kind = \"mlp\"\nhiden = [3]", &data, ""),
    );
    let err = assert_clean_failure(&zoo(dir.path(), &["summary", config.to_str().unwrap()]));
    assert!(
        err.contains("typo.toml:3: model.hiden: unknown field `hiden`"),
        "{err}"
    );
    let config = write_config(
        dir.path(),
        "kind.toml",
        &tiny_config("kind = \"perceptron\"", &data, ""),
    );
    let err = assert_clean_failure(&zoo(dir.path(), &["check", config.to_str().unwrap()]));
    assert!(
        err.contains("kind.toml:2: model.kind: unknown model kind `perceptron`"),
        "{err}"
    );
}

#[test]
fn bad_override_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "c.toml",
        &tiny_config("kind = \"mlp\"", dir.path(), ""),
    );
    let err = assert_clean_failure(&zoo(
        dir.path(),
        &[
            "check",
            config.to_str().unwrap(),
            "--set",
            "train.epochs=-2",
        ],
    ));
    assert!(
        err.contains("--set train.epochs: train.epochs: invalid value"),
        "{err}"
    );
}

#[test]
fn missing_data_directory_says_how_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "c.toml", "[model]\nkind = \"softmax\"\n");
    let missing = dir.path().join("no-such-dir");
    let out = zoo(
        dir.path(),
        &[
            "train",
            config.to_str().unwrap(),
            "--data-dir",
            missing.to_str().unwrap(),
        ],
    );
    let err = assert_clean_failure(&out);
    assert!(
        err.contains("no-such-dir") && err.contains("apt-get install dataset-fashion-mnist"),
        "{err}"
    );
}

#[test]
fn corrupt_idx_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 50, 20);
    let images = data.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 100]).unwrap();
    let config = write_config(
        dir.path(),
        "c.toml",
        &tiny_config("kind = \"softmax\"", &data, ""),
    );
    let err = assert_clean_failure(&zoo(dir.path(), &["train", config.to_str().unwrap()]));
    assert!(err.contains("train-images-idx3-ubyte: truncated"), "{err}");
    assert!(!dir.path().join("runs/c/model.bpk").exists());
}

#[test]
fn existing_run_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 300, 50);
    let config = write_config(
        dir.path(),
        "c.toml",
        &tiny_config("kind = \"softmax\"", &data, ""),
    );
    let first = zoo(
        dir.path(),
        &["train", config.to_str().unwrap(), "--epochs", "1"],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let before = std::fs::read(dir.path().join("runs/c/model.bpk")).unwrap();
    let err = assert_clean_failure(&zoo(dir.path(), &["train", config.to_str().unwrap()]));
    assert!(
        err.contains("already holds a run") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("runs/c/model.bpk")).unwrap(),
        before
    );
}
