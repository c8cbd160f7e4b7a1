//! Every shipped Fashion-MNIST config of an image family (the list comes from the registry),
//! trained through the CLI on a generated dataset, the CNNs at a fraction of their width, on
//! every backend; and the data augmentation the CNN configs use.

mod common;
use common::*;

/// `zoo train` of a shipped config, pointed at the sandbox's small dataset by `--set`
/// overrides (then `extra` ones).
fn small_run(sb: &Sandbox, config: &str, out: &str, extra: &[&str]) -> std::process::Output {
    small_run_with(sb, config, out, &[], extra)
}

/// `small_run` with more flags (e.g. `--resume`).
fn small_run_with(
    sb: &Sandbox,
    config: &str,
    out: &str,
    flags: &[&str],
    extra: &[&str],
) -> std::process::Output {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = root.join("configs/fashion-mnist").join(config);
    let dir = format!("data.dir={}", sb.data().display());
    let mut args = vec![
        "train",
        config.to_str().unwrap(),
        "--out",
        out,
        "--set",
        "data.dataset=mnist",
        "--set",
        &dir,
        "--set",
        "data.val_size=100",
        "--set",
        "data.batch_size=32",
        "--set",
        "train.epochs=3",
    ];
    args.extend(flags);
    for e in extra {
        args.extend(["--set", e]);
    }
    sb.zoo(&args)
}

#[test]
fn every_shipped_image_config_trains_and_reevaluates() {
    let sb = Sandbox::with_data(800, 200);
    for (config, exp) in shipped_image_configs() {
        let run = config.trim_end_matches(".toml");
        let out = small_run(&sb, &config, run, &shrunk(&exp));
        assert!(out.status.success(), "{config}:\n{}", stderr(&out));
        let m = sb.metrics(run);
        assert_eq!(m["model"], exp.model.kind());
        let accuracy = m["test"]["accuracy"].as_f64().unwrap();
        // Chance is 0.1 (0.5 for the two-class configs); the generated classes are easy.
        assert!(accuracy > 0.3, "{config}: test accuracy {accuracy}");
        let out = sb.zoo_ok(&["eval", run]);
        assert!(
            stdout(&out).contains(&format!("accuracy {accuracy:.4}")),
            "{config}: eval disagrees:\n{}",
            stdout(&out)
        );
    }
}

#[test]
fn augmentation_is_reproducible_from_the_seed() {
    let sb = Sandbox::with_data(600, 100);
    let weights = |run: &str| sb.metrics(run)["weights_digest"].clone();
    let aug = [
        "model.width=0.0625",
        "data.augment.crop_padding=2",
        "data.augment.rotation_degrees=10",
        "data.augment.noise_std=0.05",
    ];
    for run in ["a", "b"] {
        let out = small_run(&sb, "resnet18.toml", run, &aug);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert!(
        weights("a") == weights("b"),
        "two runs with one seed differ"
    );
    // Without augmentation the same seed trains different weights.
    let out = small_run(
        &sb,
        "resnet18.toml",
        "plain",
        &[
            "model.width=0.0625",
            "data.augment.crop_padding=0",
            "data.augment.horizontal_flip=false",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        weights("a") != weights("plain"),
        "augmentation changed nothing"
    );
}

#[test]
fn too_small_inputs_name_the_layer() {
    let sb = Sandbox::with_data(100, 10);
    let err = assert_clean_failure(&small_run(
        &sb,
        "vgg16.toml",
        "v",
        &["model.ceil_mode=false"],
    ));
    assert!(err.contains("shrinks to nothing at layer pool5"), "{err}");
    let err = assert_clean_failure(&small_run(
        &sb,
        "vgg16.toml",
        "v",
        &["model.layers=[8, \"N\"]"],
    ));
    assert!(
        err.contains("model.layers[1]") && err.contains("\"M\""),
        "{err}"
    );
}

#[test]
fn resumed_batch_norm_runs_match_uninterrupted_ones() {
    // Batch-norm running statistics must travel with the checkpoint, or evaluation after a
    // resume would differ. A constant rate keeps the schedule independent of the epoch count.
    let sb = Sandbox::with_data(600, 100);
    let weights = |run: &str| sb.metrics(run)["weights_digest"].clone();
    let common = ["model.width=0.0625", "train.schedule.kind=constant"];
    let out = small_run(&sb, "resnet18.toml", "straight", &common);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = small_run(
        &sb,
        "resnet18.toml",
        "resumed",
        &[common[0], common[1], "train.epochs=1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = small_run_with(&sb, "resnet18.toml", "resumed", &["--resume"], &common);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming from resumed/checkpoints/epoch-0001"),
        "{}",
        stderr(&out)
    );
    assert!(
        weights("straight") == weights("resumed"),
        "resumed weights or statistics differ"
    );
    assert_eq!(
        sb.metrics("straight")["test"]["accuracy"],
        sb.metrics("resumed")["test"]["accuracy"]
    );
}

#[test]
fn every_image_family_trains_on_ndarray() {
    every_image_family_trains_on("ndarray");
}

// A test of its own, so that it runs beside the ndarray one: lavapipe leaves cores idle
// enough that the pair ends about a sixth sooner on two cores.
#[test]
fn every_image_family_trains_on_wgpu() {
    every_image_family_trains_on("wgpu");
}

/// flex trains every family in the tests above; here `backend` takes the same steps.
fn every_image_family_trains_on(backend: &str) {
    let sb = Sandbox::with_data(800, 100);
    for (config, exp) in one_config_per_family() {
        let run = format!("{backend}-{}", config.trim_end_matches(".toml"));
        let mut extra = shrunk(&exp);
        extra.extend(["data.batch_size=16", "data.train_limit=500"]);
        // Dropout off on wgpu: with its masks the 1/16-width AlexNet stays at loss ln 10
        // for some seeds, where flex and ndarray learn (README, Backends; not understood yet).
        let resolved: toml::Table = exp.to_toml().parse().unwrap();
        if backend == "wgpu" && resolved["model"].get("dropout").is_some() {
            extra.push("model.dropout=0.0");
        }
        let out = small_run_with(&sb, &config, &run, &["--backend", backend], &extra);
        assert!(out.status.success(), "{run}:\n{}", stderr(&out));
        let m = sb.metrics(&run);
        assert_eq!(m["backend"], backend);
        let history = m["history"].as_array().unwrap();
        let loss = |epoch: &serde_json::Value| epoch["train_loss"].as_f64().unwrap();
        let (first, last) = (loss(&history[0]), loss(history.last().unwrap()));
        assert!(
            last < first,
            "{run}: training loss went from {first} to {last}"
        );
        let accuracy = m["test"]["accuracy"].as_f64().unwrap();
        assert!(
            accuracy > 0.2,
            "{run}: test accuracy {accuracy} (chance 0.1)"
        );
    }
}
