//! The notes' first models through the CLI, on a generated dataset: kNN and its
//! cross-validation, logistic regression, the SVM loss, LeNet-5.

mod common;
use common::*;

#[test]
fn knn_fits_evaluates_and_reevaluates() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 500, 100);
    for (name, model) in [
        ("l2", "kind = \"knn\"\nk = 3"),
        (
            "l1",
            "kind = \"knn\"\nk = 5\ndistance = \"l1\"\nweights = \"distance\"",
        ),
    ] {
        let config = write_config(
            dir.path(),
            &format!("{name}.toml"),
            &tiny_config(model, &data, ""),
        );
        let out = zoo(dir.path(), &["train", config.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let m = metrics(&dir.path().join("runs").join(name));
        assert_eq!(m["model"], "knn");
        assert!(m["test"]["loss"].is_null(), "kNN minimizes no loss");
        let accuracy = m["test"]["accuracy"].as_f64().unwrap();
        assert!(accuracy > 0.9, "{name}: {accuracy}");
        assert!(m["validation"]["accuracy"].as_f64().unwrap() > 0.9);
        let out = zoo(
            dir.path(),
            &["eval", dir.path().join("runs").join(name).to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains(&format!("accuracy {accuracy:.4}")));
    }
}

#[test]
fn cv_prints_every_value_and_the_best() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 300, 10);
    let config = write_config(
        dir.path(),
        "knn.toml",
        &tiny_config("kind = \"knn\"", &data, ""),
    );
    let out = zoo(
        dir.path(),
        &[
            "cv",
            config.to_str().unwrap(),
            "--folds",
            "3",
            "--set",
            "model.k=1,3,5",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    for k in [1, 3, 5] {
        assert!(table.contains(&format!("model.k={k} ")), "{table}");
    }
    assert!(table.contains("best: model.k="), "{table}");
    assert_eq!(stderr(&out).matches("fold ").count(), 9);
}

#[test]
fn logistic_regression_needs_two_classes_and_trains_on_a_pair() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 600, 200);
    let config = write_config(
        dir.path(),
        "lr.toml",
        &tiny_config("kind = \"logistic\"", &data, ""),
    );
    let err = assert_clean_failure(&zoo(dir.path(), &["check", config.to_str().unwrap()]));
    assert!(
        err.contains("model.kind: logistic regression needs a two-class task, got 10 classes"),
        "{err}"
    );
    let out = zoo(
        dir.path(),
        &[
            "train",
            config.to_str().unwrap(),
            "--set",
            "data.classes=[2, 7]",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let m = metrics(&dir.path().join("runs/lr"));
    assert_eq!(m["params"], 785);
    assert_eq!(m["class_names"], serde_json::json!(["2", "7"]));
    assert_eq!(m["test"]["confusion"].as_array().unwrap().len(), 2);
    assert!(m["test"]["accuracy"].as_f64().unwrap() > 0.9);
    // One-vs-rest labels every test image.
    let out = zoo(
        dir.path(),
        &[
            "train",
            config.to_str().unwrap(),
            "--set",
            "data.one_vs_rest=4",
            "--out",
            "ovr",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(metrics(&dir.path().join("ovr"))["test"]["samples"], 200);
}

#[test]
fn svm_loss_and_elastic_net_train() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 600, 200);
    let config = write_config(
        dir.path(),
        "svm.toml",
        &tiny_config(
            "kind = \"softmax\"\nloss = \"multiclass-svm\"",
            &data,
            "l1 = 1e-5\nl2 = 1e-4",
        ),
    );
    let out = zoo(dir.path(), &["train", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        metrics(&dir.path().join("runs/svm"))["test"]["accuracy"]
            .as_f64()
            .unwrap()
            > 0.9
    );
}

#[test]
fn lenet5_summary_is_the_notes_table_and_it_trains() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = zoo(
        &root,
        &["summary", "configs/fashion-mnist/lenet5.toml", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["total_params"], 61_706);
    let layers = s["layers"].as_array().unwrap();
    let row = |name: &str| layers.iter().find(|l| l["name"] == name).unwrap().clone();
    for (name, shape, params, macs) in [
        ("conv1", serde_json::json!([6, 28, 28]), 156, 117_600),
        ("pool1", serde_json::json!([6, 14, 14]), 0, 4_704),
        ("conv2", serde_json::json!([16, 10, 10]), 2_416, 240_000),
        ("pool2", serde_json::json!([16, 5, 5]), 0, 1_600),
        ("flatten", serde_json::json!([400]), 0, 0),
        ("fc1", serde_json::json!([120]), 48_120, 48_000),
        ("fc2", serde_json::json!([84]), 10_164, 10_080),
        ("fc3", serde_json::json!([10]), 850, 840),
    ] {
        let r = row(name);
        assert_eq!(
            (
                r["output_shape"].clone(),
                r["params"].as_u64().unwrap(),
                r["macs"].as_u64().unwrap()
            ),
            (shape, params, macs),
            "{name}"
        );
    }
    let table = stdout(&zoo(
        &root,
        &["summary", "configs/fashion-mnist/lenet5.toml"],
    ));
    assert!(
        table.contains("28x28x6") && table.contains("5x5x16"),
        "{table}"
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_synthetic_mnist(&data, 600, 200);
    for (name, model) in [
        ("modern", "kind = \"lenet5\""),
        (
            "classic",
            "kind = \"lenet5\"\nactivation = \"tanh\"\npooling = \"avg\"",
        ),
    ] {
        let config = write_config(
            dir.path(),
            &format!("{name}.toml"),
            &tiny_config(model, &data, ""),
        );
        for backend in ["flex", "ndarray"] {
            let out_dir = format!("{name}-{backend}");
            let out = zoo(
                dir.path(),
                &[
                    "train",
                    config.to_str().unwrap(),
                    "--backend",
                    backend,
                    "--out",
                    &out_dir,
                    "--epochs",
                    "6",
                ],
            );
            assert!(out.status.success(), "{}", stderr(&out));
            let m = metrics(&dir.path().join(&out_dir));
            assert_eq!(m["params"], 61_706);
            assert!(
                m["test"]["accuracy"].as_f64().unwrap() > 0.8,
                "{name} on {backend}: {}",
                m["test"]["accuracy"]
            );
        }
    }
}
