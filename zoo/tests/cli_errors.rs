//! Bad input ends in one clear error and a non-zero exit, never a panic.

mod common;
use common::*;

#[test]
fn invalid_value_names_file_line_and_key() {
    let sb = Sandbox::empty();
    let config = sb.config("bad.toml", "kind = \"mlp\"", "momentum = 1.5");
    let err = assert_clean_failure(&sb.zoo(&["check", &config]));
    assert!(
        err.contains("bad.toml:16: train.momentum: expected a number in [0, 1), got 1.5"),
        "{err}"
    );
}

#[test]
fn unknown_key_and_unknown_kind_are_named() {
    let sb = Sandbox::empty();
    let config = sb.config("typo.toml", "kind = \"mlp\"\nhiden = [3]", "");
    let err = assert_clean_failure(&sb.zoo(&["summary", &config]));
    assert!(
        err.contains("typo.toml:3: model.hiden: unknown field `hiden`"),
        "{err}"
    );
    let config = sb.config("kind.toml", "kind = \"perceptron\"", "");
    let err = assert_clean_failure(&sb.zoo(&["check", &config]));
    assert!(
        err.contains("kind.toml:2: model.kind: unknown model kind `perceptron`"),
        "{err}"
    );
}

#[test]
fn bad_override_is_named() {
    let sb = Sandbox::empty();
    let config = sb.config("c.toml", "kind = \"mlp\"", "");
    let err = assert_clean_failure(&sb.zoo(&["check", &config, "--set", "train.epochs=-2"]));
    assert!(
        err.contains("--set train.epochs: train.epochs: invalid value"),
        "{err}"
    );
}

#[test]
fn missing_data_directory_says_how_to_install() {
    let sb = Sandbox::empty();
    let config = write_config(sb.path(), "c.toml", "[model]\nkind = \"softmax\"\n");
    let missing = sb.path().join("no-such-dir");
    let out = sb.zoo(&[
        "train",
        config.to_str().unwrap(),
        "--data-dir",
        missing.to_str().unwrap(),
    ]);
    let err = assert_clean_failure(&out);
    assert!(
        err.contains("no-such-dir") && err.contains("apt-get install dataset-fashion-mnist"),
        "{err}"
    );
}

#[test]
fn corrupt_idx_file_is_named() {
    let sb = Sandbox::with_data(50, 20);
    let images = sb.data().join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 100]).unwrap();
    let config = sb.config("c.toml", "kind = \"softmax\"", "");
    let err = assert_clean_failure(&sb.zoo(&["train", &config]));
    assert!(err.contains("train-images-idx3-ubyte: truncated"), "{err}");
    assert!(!sb.path().join("runs/c/model.bpk").exists());
}

#[test]
fn existing_run_is_not_overwritten() {
    let sb = Sandbox::with_data(300, 50);
    let config = sb.config("c.toml", "kind = \"softmax\"", "");
    sb.zoo_ok(&["train", &config, "--epochs", "1"]);
    let before = std::fs::read(sb.path().join("runs/c/model.bpk")).unwrap();
    let err = assert_clean_failure(&sb.zoo(&["train", &config]));
    assert!(
        err.contains("already holds a run") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(sb.path().join("runs/c/model.bpk")).unwrap(),
        before
    );
}

#[test]
fn diverging_training_is_a_clear_error() {
    let sb = Sandbox::with_data(300, 50);
    let config = sb.config("d.toml", "kind = \"mlp\"\nhidden = [64, 64]", "");
    let err = assert_clean_failure(&sb.zoo(&["train", &config, "--set", "train.lr=1e30"]));
    assert!(
        err.contains("training diverged in epoch 1") && err.contains("lower train.lr"),
        "{err}"
    );
}
