//! Image folders (`dataset = "image-folder"`), data-parallel training and the backend list,
//! through the `zoo` binary. The folders are written here from Fashion-MNIST's test images.

mod common;

use std::path::Path;

use common::*;
use datasets::folder::{write_class_folders, FolderStyle};
use datasets::{DatasetKind, Split};

/// An image folder of Fashion-MNIST test images, RGB, 36x30: `train/` as PNG (`per_class`
/// images a class), `val/` and `test/` as JPEG (`per_class / 4` each).
fn write_fashion_folder(dir: &Path, per_class: usize) {
    let set = DatasetKind::FashionMnist
        .load(Path::new(FASHION_MNIST), Split::Test)
        .unwrap();
    let names = DatasetKind::FashionMnist.class_names();
    let eval = per_class / 4;
    let mut taken = [0usize; 10];
    let (mut train, mut val, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for (i, &label) in set.labels.iter().enumerate() {
        let n = &mut taken[label as usize];
        match *n {
            n if n < per_class => train.push(i),
            n if n < per_class + eval => val.push(i),
            n if n < per_class + 2 * eval => test.push(i),
            _ => {}
        }
        *n += 1;
    }
    let style = |jpeg_quality| FolderStyle {
        width: 36,
        height: 30,
        jpeg_quality,
        colour: true,
        seed: 0,
    };
    for (split, indices, quality) in [
        ("train", &train, None),
        ("val", &val, Some(90)),
        ("test", &test, Some(90)),
    ] {
        write_class_folders(&set, indices, &names, &dir.join(split), &style(quality)).unwrap();
    }
}

/// A ResNet config (batch norm: its running statistics must resume too) on the folder `data/`,
/// with crops of 32x32 and flips.
fn folder_config(sb: &Sandbox, extra: &str) -> String {
    let body = format!(
        r#"[model]
kind = "resnet"
depth = 18
stem = "small"
width = 0.0625

[data]
dataset = "image-folder"
dir = "{}"
resize = 32
batch_size = 20
eval_batch_size = 50
{extra}

[data.augment]
horizontal_flip = true

[train]
epochs = 3
optimizer = "adam"
lr = 0.002
seed = 1
"#,
        sb.data().display()
    );
    write_config(sb.path(), "folder.toml", &body)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn an_image_folder_trains_evaluates_and_resumes_exactly() {
    let sb = Sandbox::empty();
    write_fashion_folder(&sb.data(), 40);
    let config = folder_config(&sb, "");
    let out = sb.zoo_ok(&["train", &config, "--out", "straight"]);
    assert!(
        stderr(&out).contains("400 train / 100 validation / 100 test images"),
        "{}",
        stderr(&out)
    );
    let metrics = sb.metrics("straight");
    // Classes are the sorted folder names (`/` in "T-shirt/top" replaced).
    assert_eq!(metrics["class_names"][0], "Ankle boot");
    assert_eq!(metrics["class_names"][8], "T-shirt-top");
    let accuracy = metrics["test"]["accuracy"].as_f64().unwrap();
    // 100 test images: chance is 0.10 +- 0.03, and 60 steps land anywhere in 0.29-0.42 as
    // the sums' order (seed, kernels) changes.
    assert!(accuracy > 0.2, "chance is 0.1, got {accuracy}");

    let (status, log) = train_and_signal(
        sb.path(),
        &["train", &config, "--out", "stopped"],
        &["TERM"],
    );
    assert_eq!(status.code(), Some(INTERRUPTED), "{log}");
    sb.zoo_ok(&["train", &config, "--out", "stopped", "--resume"]);
    assert_same_training(&metrics, &sb.metrics("stopped"));

    // `zoo eval` reads test/ again; `zoo predict` names the folder classes.
    let out = sb.zoo_ok(&["eval", "straight"]);
    assert!(
        stdout(&out).contains(&format!("accuracy {accuracy:.4}")),
        "{}",
        stdout(&out)
    );
    let image = std::fs::read_dir(sb.data().join("test/Trouser"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = sb.zoo_ok(&["predict", "straight", image.to_str().unwrap(), "--json"]);
    assert!(
        stdout(&out).contains("\"name\": \"Trouser\"")
            || stdout(&out).contains("\"name\":\"Trouser\""),
        "{}",
        stdout(&out)
    );

    // A directory stands for its images, sorted by path; they go through in chunks of 50 (the
    // config's eval_batch_size), and an image's scores are those it gets alone.
    let alone: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let test_dir = sb.data().join("test");
    let out = sb.zoo_ok(&["predict", "straight", test_dir.to_str().unwrap(), "--json"]);
    let all: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let all = all.as_array().unwrap();
    let inputs: Vec<&str> = all.iter().map(|p| p["input"].as_str().unwrap()).collect();
    assert_eq!(inputs.len(), 100, "{inputs:?}");
    assert!(
        inputs.windows(2).all(|w| Path::new(w[0]) < Path::new(w[1])),
        "{inputs:?}"
    );
    let same = all
        .iter()
        .find(|p| p["input"] == alone[0]["input"])
        .expect("the image is among the directory's");
    let logits = |p: &serde_json::Value| -> Vec<f64> {
        let values = p["logits"].as_array().unwrap();
        values.iter().map(|v| v.as_f64().unwrap()).collect()
    };
    for (a, b) in logits(same).iter().zip(logits(&alone[0])) {
        assert!((a - b).abs() < 1e-4, "{a} in a chunk, {b} alone");
    }
    let text = stdout(&sb.zoo_ok(&[
        "predict",
        "straight",
        test_dir.to_str().unwrap(),
        "--top",
        "1",
    ]));
    assert_eq!(text.lines().count(), 2 * 100, "{text}");
}

#[test]
fn bad_folders_and_files_are_named() {
    let sb = Sandbox::empty();
    write_fashion_folder(&sb.data(), 8);
    let config = folder_config(&sb, "");
    let train = |out: &str| sb.zoo(&["train", &config, "--out", out, "--epochs", "1"]);

    let bag = sb.data().join("val/Bag");
    std::fs::rename(&bag, sb.path().join("bag-aside")).unwrap();
    let err = assert_clean_failure(&train("missing"));
    assert!(err.contains("val/Bag") && err.contains("missing"), "{err}");
    std::fs::create_dir(&bag).unwrap();
    let err = assert_clean_failure(&train("empty"));
    assert!(
        err.contains("val/Bag") && err.contains("empty class folder"),
        "{err}"
    );
    std::fs::remove_dir(&bag).unwrap();
    std::fs::rename(sb.path().join("bag-aside"), &bag).unwrap();

    let corrupt = std::fs::read_dir(sb.data().join("train/Coat"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&corrupt, b"not a png").unwrap();
    let err = assert_clean_failure(&train("corrupt"));
    assert!(
        err.contains(&corrupt.display().to_string()) && err.contains("skip_bad_images"),
        "{err}"
    );
    let out = sb.zoo_ok(&[
        "train",
        &config,
        "--out",
        "skipping",
        "--epochs",
        "1",
        "--set",
        "data.skip_bad_images=true",
    ]);
    assert!(
        stderr(&out).contains(&format!("skipped {}", corrupt.display()))
            && stderr(&out).contains("skipped 1 unreadable image files in all"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn two_devices_train_as_one_with_the_same_batch() {
    let sb = Sandbox::with_data(600, 100);
    // No batch statistics and no dropout: the sharded step is the single-device one.
    let config = sb.config("p.toml", "kind = \"mlp\"\nhidden = [64, 32]", "");
    sb.zoo_ok(&["train", &config, "--out", "one"]);
    let out = sb.zoo_ok(&["train", &config, "--out", "two", "--devices", "2"]);
    assert!(
        stderr(&out).contains("2 devices, data-parallel"),
        "{}",
        stderr(&out)
    );
    for run in ["one", "two"] {
        sb.zoo_ok(&["export", run, &format!("{run}.safetensors")]);
    }
    let one = read_safetensors(&sb.path().join("one.safetensors"));
    let two = read_safetensors(&sb.path().join("two.safetensors"));
    assert_eq!(
        one.keys().collect::<Vec<_>>(),
        two.keys().collect::<Vec<_>>()
    );
    for (name, a) in &one {
        let (a, b) = (a.values(), two[name].values());
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let worst = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst <= 1e-5 * scale,
            "{name}: differs by {worst} (largest entry {scale})"
        );
    }

    // Data-parallel runs resume exactly too.
    let args = ["train", &config, "--out", "stopped", "--devices", "2"];
    let (status, log) = train_and_signal(sb.path(), &args, &["TERM"]);
    assert_eq!(status.code(), Some(INTERRUPTED), "{log}");
    sb.zoo_ok(&[
        "train",
        &config,
        "--out",
        "stopped",
        "--devices",
        "2",
        "--resume",
    ]);
    assert_same_training(&sb.metrics("two"), &sb.metrics("stopped"));
}

#[test]
fn backends_are_listed_and_cuda_is_refused_in_one_line() {
    let sb = Sandbox::with_data(100, 20);
    let out = sb.zoo_ok(&["backends"]);
    let text = stdout(&out);
    assert!(text.contains("flex:\n  cpu:"), "{text}");
    // The reason says what the user can do instead.
    let cuda = text.lines().find(|l| l.starts_with("cuda: unavailable: "));
    assert!(
        cuda.is_some_and(|l| l.contains("use --backend wgpu")),
        "{text}"
    );
    let config = sb.config("c.toml", "kind = \"mlp\"\nhidden = [8]", "");
    let err = assert_clean_failure(&sb.zoo(&["train", &config, "--backend", "cuda"]));
    assert!(
        err.starts_with("error: --backend cuda: ")
            && err.contains("use --backend wgpu")
            && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn help_texts_name_no_constant_of_the_code() {
    let sb = Sandbox::empty();
    let main_help = stdout(&sb.zoo_ok(&["--help"]));
    let commands: Vec<&str> = main_help
        .split("Commands:\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|&c| c != "help")
        .collect();
    assert!(commands.contains(&"bench"), "{main_help}");
    // A constant's name in backticks (`SOME_NAME`) means nothing to a user.
    let constant = regex::Regex::new("`[A-Z][A-Z0-9]*_[A-Z0-9_]*`").unwrap();
    for command in commands {
        let help = stdout(&sb.zoo_ok(&[command, "--help"]));
        assert!(!constant.is_match(&help), "zoo {command} --help:\n{help}");
        if help.contains("--backend <BACKEND>") {
            assert!(
                help.contains("NVIDIA GPUs through CUDA"),
                "zoo {command} --help:\n{help}"
            );
        }
    }
}
