//! The shipped Fashion-MNIST configs reach their target test accuracy (full training on the
//! real dataset; these fail, never skip, when the dataset is missing).

mod common;
use std::path::Path;

use common::*;

fn train_shipped(config: &str, target: f64) {
    assert!(
        Path::new(FASHION_MNIST)
            .join("train-images-idx3-ubyte.gz")
            .exists(),
        "Fashion-MNIST is missing from {FASHION_MNIST}: sudo apt-get install dataset-fashion-mnist"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out_dir = tempfile::tempdir().unwrap();
    let out = zoo(
        &root,
        &["train", config, "--out", out_dir.path().to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let m = metrics(out_dir.path());
    assert_eq!(m["test"]["samples"], 10_000);
    let accuracy = m["test"]["accuracy"].as_f64().unwrap();
    assert!(
        accuracy >= target,
        "{config}: test accuracy {accuracy} < {target}"
    );
}

#[test]
fn softmax_regression_reaches_0_84() {
    train_shipped("configs/fashion-mnist/softmax.toml", 0.84);
}

#[test]
fn mlp_reaches_0_88() {
    train_shipped("configs/fashion-mnist/mlp.toml", 0.88);
}

#[test]
fn softmax_with_the_svm_loss_reaches_0_83() {
    train_shipped("configs/fashion-mnist/softmax-svm.toml", 0.83);
}

#[test]
fn lenet5_modern_reaches_0_89_in_10_epochs() {
    train_shipped("configs/fashion-mnist/lenet5.toml", 0.89);
}

#[test]
fn knn_l2_uniform_reaches_0_855() {
    train_shipped("configs/fashion-mnist/knn.toml", 0.855);
}

#[test]
fn knn_l1_distance_weighted_reaches_0_86() {
    train_shipped("configs/fashion-mnist/knn-l1.toml", 0.86);
}
