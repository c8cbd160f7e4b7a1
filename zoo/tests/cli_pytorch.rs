//! `zoo import`, `zoo export`, `zoo predict` and `zoo train --init-from`, run like a user runs
//! them, on the PyTorch fixtures of `tests/pytorch/` (see make_fixtures.py there).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use common::{fixture_weights, pytorch_fixtures, read_safetensors, stderr, stdout, Sandbox};
use zoo::backend::Backend;
use zoo::models::ImageClassifier;

fn fixture(case: &str) -> PathBuf {
    pytorch_fixtures().join(case)
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The weights file of fixture `case`.
fn weights_of(case: &str) -> PathBuf {
    fixture_weights(&fixture(case))
}

/// `zoo import` of fixture `case` (its config and weights) into `out`, with `extra` flags.
fn import_fixture(sandbox: &Sandbox, case: &str, out: &str, extra: &[&str]) -> Output {
    let (config, weights) = (fixture(case).join("config.toml"), weights_of(case));
    let mut args = vec!["import", arg(&config), arg(&weights), "--out", out];
    args.extend_from_slice(extra);
    sandbox.zoo(&args)
}

/// Asserts that a `zoo` run succeeded, and returns it.
fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// A float32 `.npy` file of `values` in `shape`, as NumPy writes one.
fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn import_export_round_trip_keeps_every_tensor() {
    let sandbox = Sandbox::empty();
    let case = fixture("resnet-bottleneck");
    let out = ok(import_fixture(
        &sandbox,
        "resnet-bottleneck",
        "imported",
        &[],
    ));
    assert!(stdout(&out).contains("imported"), "{}", stdout(&out));
    for file in ["config.toml", "model.bpk", "normalization.json"] {
        assert!(
            sandbox.path().join("imported").join(file).exists(),
            "{file}"
        );
    }
    // ImageNet's statistics, as training on the folders would use them, unless switched off.
    let normalization = |run: &str| -> serde_json::Value {
        let path = sandbox.path().join(run).join("normalization.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    assert_eq!(normalization("imported")["mean"][0], 0.485);
    let raw = ["--set", "data.normalize=\"none\""];
    ok(import_fixture(&sandbox, "resnet-bottleneck", "raw", &raw));
    assert_eq!(
        normalization("raw")["mean"],
        serde_json::json!([0.0, 0.0, 0.0])
    );
    assert_eq!(
        normalization("raw")["std"],
        serde_json::json!([1.0, 1.0, 1.0])
    );
    sandbox.zoo_ok(&["export", "imported", "exported.safetensors"]);
    let original = read_safetensors(&case.join("weights.safetensors"));
    let exported = read_safetensors(&sandbox.path().join("exported.safetensors"));
    let names = |m: &BTreeMap<String, _>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&exported),
        names(&original),
        "the same keys, counters included"
    );
    for (name, tensor) in &original {
        if !name.ends_with("num_batches_tracked") {
            assert_eq!(&exported[name], tensor, "{name}");
        }
    }
}

#[test]
fn recurrent_gates_round_trip_in_pytorchs_stacking() {
    let sandbox = Sandbox::empty();
    let case = fixture("lstm");
    ok(import_fixture(&sandbox, "lstm", "lstm", &[]));
    sandbox.zoo_ok(&["export", "lstm", "lstm.safetensors"]);
    let exported = read_safetensors(&sandbox.path().join("lstm.safetensors"));
    let keys: Vec<&str> = exported.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "head.bias",
            "head.weight",
            "rnn.bias_hh_l0",
            "rnn.bias_ih_l0",
            "rnn.weight_hh_l0",
            "rnn.weight_ih_l0"
        ]
    );
    assert_eq!(exported["rnn.weight_ih_l0"].shape, [64, 28]);
    // The predictions of the imported run are PyTorch's (the file holds its logits).
    let expected = read_safetensors(&case.join("expected.safetensors"));
    let (shape, input) = (&expected["input"].shape, &expected["input"].bytes);
    write_npy(&sandbox.path().join("input.npy"), "<f4", shape, input);
    let out = sandbox.zoo_ok(&["predict", "lstm", "input.npy", "--json", "--top", "3"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), shape[0]);
    assert_eq!(rows[1]["input"], "input.npy[1]");
    assert_eq!(rows[0]["top"].as_array().unwrap().len(), 3);
    let logits: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            r["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    for (zoo, torch) in logits.iter().zip(expected["logits"].values()) {
        assert!((zoo - torch).abs() < 1e-4, "{zoo} vs PyTorch's {torch}");
    }
}

#[test]
fn a_file_of_another_network_is_refused_with_every_problem_listed() {
    let sandbox = Sandbox::empty();
    // LeNet-5's weights into an MLP: every key is missing or unexpected.
    let (config, weights) = (fixture("mlp").join("config.toml"), weights_of("lenet5"));
    let out = sandbox.zoo(&["import", arg(&config), arg(&weights), "--out", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("weights.pth does not fit the model"), "{err}");
    assert!(
        err.contains("missing hidden.0.linear.weight [32, 784]"),
        "{err}"
    );
    assert!(
        err.contains("unexpected conv1.weight [6, 1, 5, 5]"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!sandbox.path().join("wrong").exists(), "nothing is written");

    // The same VGG at twice the width: shape mismatches, with both shapes.
    let out = import_fixture(&sandbox, "vgg11", "wide", &["--set", "model.width=0.0625"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(
            "features.0.weight: the file has [2, 3, 3, 3], the model expects [4, 3, 3, 3]"
        ),
        "{err}"
    );
}

#[test]
fn skip_leaves_a_new_head_and_remap_renames_keys() {
    let sandbox = Sandbox::empty();
    // Three classes: the file's 10-class fc3 is left out, the rest loads.
    let three = ["--set", "data.classes=[0, 1, 2]", "--skip", r"^fc3\."];
    let out = ok(import_fixture(&sandbox, "lenet5", "three", &three));
    assert!(
        stdout(&out).contains("2 left at their initialization (fc3.weight, fc3.bias)"),
        "{}",
        stdout(&out)
    );

    // A file whose keys sit under `backbone.`: refused as it is, read with --remap.
    let tensors = read_safetensors(&fixture("lenet5-classic").join("weights.safetensors"));
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, t)| {
            let view =
                safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap();
            (format!("backbone.{name}"), view)
        })
        .collect();
    let prefixed = sandbox.path().join("prefixed.safetensors");
    safetensors::serialize_to_file(views, None, &prefixed).unwrap();
    let config = fixture("lenet5-classic").join("config.toml");
    let refused = sandbox.zoo(&["import", arg(&config), arg(&prefixed), "--out", "plain"]);
    assert!(
        stderr(&refused).contains("unexpected backbone.conv1.weight"),
        "{}",
        stderr(&refused)
    );
    sandbox.zoo_ok(&[
        "import",
        arg(&config),
        arg(&prefixed),
        "--out",
        "remapped",
        "--remap",
        r"^backbone\.=",
    ]);
    let bad = sandbox.zoo(&[
        "import",
        arg(&config),
        arg(&prefixed),
        "--out",
        "x",
        "--remap",
        "(=",
    ]);
    assert!(
        stderr(&bad).contains("invalid pattern \"(\""),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn predict_on_a_png_agrees_with_the_evaluation_of_that_image() {
    let sandbox = Sandbox::with_data(600, 50);
    let config = sandbox.config("lenet.toml", "kind = \"lenet5\"", "");
    sandbox.zoo_ok(&["train", &config, "--epochs", "1", "--out", "run"]);

    // Test image 7 as a PNG, and what the evaluation's batcher and model make of it.
    let device = Backend::Flex.device();
    let run = sandbox.path().join("run");
    let (exp, model) = zoo::run::load_trained(&run, &device).unwrap();
    let test = zoo::data::load_test(&exp.data, &sandbox.data()).unwrap();
    let test = test.in_memory().expect("IDX files are decoded whole");
    let item = test.get(7).unwrap();
    let standardization = zoo::run_dir::load_json(&run, "normalization.json").unwrap();
    let batcher = datasets::ImageBatcher::new(standardization, test.set().shape());
    let batch = batcher.batch(vec![item.clone()], &device);
    let logits: Vec<f32> = model
        .logits(batch.images)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let class = (0..10)
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap();
    let png = sandbox.path().join("image7.png");
    image::GrayImage::from_raw(28, 28, item.pixels.clone())
        .unwrap()
        .save(&png)
        .unwrap();

    let out = sandbox.zoo_ok(&["predict", "run", "image7.png", "--json", "--top", "1"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json[0]["top"][0]["class"], class);
    for (i, v) in json[0]["logits"].as_array().unwrap().iter().enumerate() {
        assert!((v.as_f64().unwrap() as f32 - logits[i]).abs() < 1e-4);
    }
    let text = stdout(&sandbox.zoo_ok(&["predict", "run", "image7.png", "--top", "2"]));
    assert!(text.starts_with("image7.png\n"), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn predict_names_the_file_and_what_it_expected() {
    let sandbox = Sandbox::empty();
    ok(import_fixture(&sandbox, "lenet5", "run", &[]));
    let failure = |args: &[&str]| {
        let out = sandbox.zoo(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("error: ") && !err.contains("panicked"),
            "{err}"
        );
        err
    };
    let err = failure(&["predict", "run", "missing.png"]);
    assert!(err.contains("missing.png: no such file"), "{err}");

    std::fs::write(
        sandbox.path().join("corrupt.png"),
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .unwrap();
    let err = failure(&["predict", "run", "corrupt.png"]);
    assert!(
        err.contains("corrupt.png: not a PNG or JPEG image"),
        "{err}"
    );

    write_npy(
        &sandbox.path().join("shape.npy"),
        "<f4",
        &[2, 1, 32, 32],
        &vec![0; 2 * 32 * 32 * 4],
    );
    let err = failure(&["predict", "run", "shape.npy"]);
    assert!(
        err.contains(
            "shape.npy: the array has shape [2, 1, 32, 32]; expected float32 [N, 1, 28, 28]"
        ),
        "{err}"
    );

    write_npy(
        &sandbox.path().join("dtype.npy"),
        "<f8",
        &[1, 1, 28, 28],
        &vec![0; 28 * 28 * 8],
    );
    let err = failure(&["predict", "run", "dtype.npy"]);
    assert!(err.contains("dtype.npy: the array holds \"<f8\""), "{err}");
}

#[test]
fn train_init_from_starts_from_the_imported_weights() {
    let sandbox = Sandbox::with_data(300, 50);
    let config = sandbox.config("lenet.toml", "kind = \"lenet5\"", "");
    let weights = weights_of("lenet5");
    sandbox.zoo_ok(&["import", &config, arg(&weights), "--out", "imported"]);
    // A learning rate of 1e-9: the tuned weights stay within 1e-5 of the imported ones (a fresh
    // initialization differs by tenths).
    sandbox.zoo_ok(&[
        "train",
        &config,
        "--epochs",
        "1",
        "--out",
        "tuned",
        "--init-from",
        "imported",
        "--set",
        "train.lr=1e-9",
    ]);
    sandbox.zoo_ok(&["export", "imported", "imported.safetensors"]);
    sandbox.zoo_ok(&["export", "tuned", "tuned.safetensors"]);
    let imported = read_safetensors(&sandbox.path().join("imported.safetensors"));
    let tuned = read_safetensors(&sandbox.path().join("tuned.safetensors"));
    assert_eq!(
        imported.keys().collect::<Vec<_>>(),
        tuned.keys().collect::<Vec<_>>()
    );
    for (name, tensor) in &imported {
        let largest = tensor
            .values()
            .iter()
            .zip(tuned[name].values())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(largest < 1e-5, "{name} moved by {largest}");
    }
    let mlp = sandbox.config("mlp.toml", "kind = \"mlp\"", "");
    let out = sandbox.zoo(&["train", &mlp, "--out", "wrong", "--init-from", "imported"]);
    assert!(
        stderr(&out).contains("--init-from imported: its weights do not fit"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn predict_takes_a_jpeg_through_torchvisions_evaluation_transform() {
    let sandbox = Sandbox::empty();
    // An ImageNet-shaped run (64x64 RGB, the first ten ImageNet classes).
    ok(import_fixture(&sandbox, "resnet-basic", "run", &[]));
    let photo = image::RgbImage::from_fn(120, 90, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 2) as u8, 128])
    });
    photo.save(sandbox.path().join("photo.jpg")).unwrap();
    let out = sandbox.zoo_ok(&["predict", "run", "photo.jpg", "--json", "--top", "10"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json[0]["logits"].as_array().unwrap().len(), 10);
    let names: Vec<&str> = json[0]["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"tench") && names.contains(&"goldfish"),
        "{names:?}"
    );
    let total: f64 = json[0]["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["probability"].as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-4, "{total}");
}
