//! The notes' first models through the CLI, on a generated dataset: kNN and its
//! cross-validation, logistic regression, the SVM loss, LeNet-5.

mod common;
use common::*;
use serde_json::json;

#[test]
fn knn_fits_evaluates_and_reevaluates() {
    let sb = Sandbox::with_data(500, 100);
    for (name, model) in [
        ("l2", "kind = \"knn\"\nk = 3"),
        (
            "l1",
            "kind = \"knn\"\nk = 5\ndistance = \"l1\"\nweights = \"distance\"",
        ),
    ] {
        let config = sb.config(&format!("{name}.toml"), model, "");
        sb.zoo_ok(&["train", &config]);
        let m = sb.metrics(&format!("runs/{name}"));
        assert_eq!(m["model"], "knn");
        assert!(m["test"]["loss"].is_null(), "kNN minimizes no loss");
        let accuracy = m["test"]["accuracy"].as_f64().unwrap();
        assert!(accuracy > 0.9, "{name}: {accuracy}");
        assert!(m["validation"]["accuracy"].as_f64().unwrap() > 0.9);
        let out = sb.zoo_ok(&["eval", &format!("runs/{name}")]);
        assert!(stdout(&out).contains(&format!("accuracy {accuracy:.4}")));
    }
}

#[test]
fn cv_prints_every_value_and_the_best() {
    let sb = Sandbox::with_data(300, 10);
    let config = sb.config("knn.toml", "kind = \"knn\"", "");
    let out = sb.zoo_ok(&["cv", &config, "--folds", "3", "--set", "model.k=1,3,5"]);
    let table = stdout(&out);
    for k in [1, 3, 5] {
        assert!(table.contains(&format!("model.k={k} ")), "{table}");
    }
    assert!(table.contains("best: model.k="), "{table}");
    assert_eq!(stderr(&out).matches("fold ").count(), 9);
}

#[test]
fn logistic_regression_needs_two_classes_and_trains_on_a_pair() {
    let sb = Sandbox::with_data(600, 200);
    let config = sb.config("lr.toml", "kind = \"logistic\"", "");
    let err = assert_clean_failure(&sb.zoo(&["check", &config]));
    assert!(
        err.contains("data.classes: logistic regression needs a two-class task, got 10 classes"),
        "{err}"
    );
    sb.zoo_ok(&["train", &config, "--set", "data.classes=[2, 7]"]);
    let m = sb.metrics("runs/lr");
    assert_eq!(m["params"], 785);
    assert_eq!(m["class_names"], json!(["2", "7"]));
    assert_eq!(m["test"]["confusion"].as_array().unwrap().len(), 2);
    assert!(m["test"]["accuracy"].as_f64().unwrap() > 0.9);
    // One-vs-rest labels every test image.
    sb.zoo_ok(&[
        "train",
        &config,
        "--set",
        "data.one_vs_rest=4",
        "--out",
        "ovr",
    ]);
    assert_eq!(sb.metrics("ovr")["test"]["samples"], 200);
}

#[test]
fn svm_loss_and_elastic_net_train() {
    let sb = Sandbox::with_data(600, 200);
    let config = sb.config(
        "svm.toml",
        "kind = \"softmax\"\nloss = \"multiclass-svm\"",
        "l1 = 1e-5\nl2 = 1e-4",
    );
    sb.zoo_ok(&["train", &config]);
    assert!(sb.metrics("runs/svm")["test"]["accuracy"].as_f64().unwrap() > 0.9);
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
        ("conv1", json!([6, 28, 28]), 156, 117_600),
        ("pool1", json!([6, 14, 14]), 0, 4_704),
        ("conv2", json!([16, 10, 10]), 2_416, 240_000),
        ("pool2", json!([16, 5, 5]), 0, 1_600),
        ("flatten", json!([400]), 0, 0),
        ("fc1", json!([120]), 48_120, 48_000),
        ("fc2", json!([84]), 10_164, 10_080),
        ("fc3", json!([10]), 850, 840),
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

    let sb = Sandbox::with_data(600, 200);
    for (name, model) in [
        ("modern", "kind = \"lenet5\""),
        (
            "classic",
            "kind = \"lenet5\"\nactivation = \"tanh\"\npooling = \"avg\"",
        ),
    ] {
        let config = sb.config(&format!("{name}.toml"), model, "");
        for backend in ["flex", "ndarray"] {
            let run = format!("{name}-{backend}");
            sb.zoo_ok(&[
                "train",
                &config,
                "--backend",
                backend,
                "--out",
                &run,
                "--epochs",
                "6",
            ]);
            let m = sb.metrics(&run);
            assert_eq!(m["params"], 61_706);
            assert!(
                m["test"]["accuracy"].as_f64().unwrap() > 0.8,
                "{name} on {backend}: {}",
                m["test"]["accuracy"]
            );
        }
    }
}
