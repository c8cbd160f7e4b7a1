//! Training runs driven through the CLI, on a generated dataset.

mod common;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn train_writes_metrics_and_eval_reproduces_them() {
    let sb = Sandbox::with_data(600, 200);
    let config = sb.config(
        "mlp.toml",
        "kind = \"mlp\"\nhidden = [32]\ndropout = 0.1",
        "",
    );
    let out = sb.zoo_ok(&["train", &config]);
    let log = stderr(&out);
    assert_eq!(
        log.matches("epoch ").count(),
        2,
        "one line per epoch when not on a terminal:\n{log}"
    );

    let m = sb.metrics("runs/mlp");
    assert_eq!(m["model"], "mlp");
    assert_eq!(m["backend"], "flex");
    assert_eq!(m["params"], 784 * 32 + 32 + 32 * 10 + 10);
    assert_eq!(m["epochs"], 2);
    assert_eq!(m["epoch_seconds"].as_array().unwrap().len(), 2);
    assert!(m["train_samples_per_second"].as_f64().unwrap() > 0.0);
    let accuracy = m["test"]["accuracy"].as_f64().unwrap();
    assert!(
        accuracy > 0.9,
        "the synthetic classes are easy to separate: {accuracy}"
    );
    let confusion = m["test"]["confusion"].as_array().unwrap();
    let total: u64 = confusion
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 200);
    assert_eq!(m["test"]["per_class"].as_array().unwrap().len(), 10);
    let run = sb.path().join("runs/mlp");
    assert!(run.join("config.toml").is_file() && run.join("normalization.json").is_file());

    let out = sb.zoo_ok(&["eval", run.to_str().unwrap()]);
    assert!(
        stdout(&out).contains(&format!("accuracy {accuracy:.4}")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn interrupted_and_resumed_run_ends_with_the_same_weights() {
    let sb = Sandbox::with_data(1500, 100);
    // Augmented, so that resuming must also replay the augmentation's random draws.
    let body = tiny_config(
        "kind = \"mlp\"\nhidden = [64]\ndropout = 0.3",
        &sb.data(),
        "[data.augment]\ncrop_padding = 2\nhorizontal_flip = true",
    )
    .replace("epochs = 2", "epochs = 6");
    let config = write_config(sb.path(), "r.toml", &body);
    let config = config.to_str().unwrap();
    sb.zoo_ok(&["train", config, "--out", "straight"]);

    // Kill the second run as soon as its first checkpoint lands, then resume it.
    let mut child = zoo_command(sb.path(), &["train", config, "--out", "interrupted"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = sb.path().join("interrupted/checkpoints/epoch-0001");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !first.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !sb.path().join("interrupted/model.bpk").exists(),
        "the run finished before it could be interrupted"
    );

    let out = sb.zoo_ok(&["train", config, "--out", "interrupted", "--resume"]);
    assert!(stderr(&out).contains("resuming from"), "{}", stderr(&out));
    let weights = |run: &str| sb.metrics(run)["weights_digest"].clone();
    assert!(weights("straight").is_string());
    assert_eq!(
        weights("straight"),
        weights("interrupted"),
        "resumed weights differ from the uninterrupted run's"
    );
    let (a, b) = (sb.metrics("straight"), sb.metrics("interrupted"));
    assert_eq!(a["test"]["accuracy"], b["test"]["accuracy"]);
    assert_eq!(b["history"].as_array().unwrap().len(), 6);
}

#[test]
fn sigterm_mid_epoch_checkpoints_and_resumes_to_the_same_weights() {
    let sb = Sandbox::with_data(1500, 100);
    // Dropout and augmentation: the resumed epoch must replay both random streams.
    let config = sb.config(
        "t.toml",
        "kind = \"mlp\"\nhidden = [64]\ndropout = 0.3",
        "[data.augment]\ncrop_padding = 2\nhorizontal_flip = true",
    );
    sb.zoo_ok(&["train", &config, "--out", "straight"]);

    let (status, log) = train_and_signal(
        sb.path(),
        &["train", &config, "--out", "stopped"],
        &["TERM"],
    );
    assert_eq!(status.code(), Some(INTERRUPTED), "{log}");
    assert!(
        log.contains("stopped on request after 0 epochs and "),
        "{log}"
    );
    assert!(!log.contains("error"), "{log}");
    let names = checkpoint_names(&sb.path().join("stopped"));
    assert!(
        names.len() == 1 && names[0].starts_with("epoch-0000-batch-"),
        "one mid-epoch checkpoint: {names:?}"
    );
    assert!(!sb.path().join("stopped/metrics.json").exists());

    let out = sb.zoo_ok(&["train", &config, "--out", "stopped", "--resume"]);
    assert!(stderr(&out).contains(&names[0]), "{}", stderr(&out));
    assert_same_training(&sb.metrics("straight"), &sb.metrics("stopped"));

    // A second signal ends the run at once; what it leaves still resumes to the same weights.
    // (Two different signals: the kernel merges a second pending SIGTERM into the first.)
    let args = ["train", &config, "--out", "killed"];
    let (status, log) = train_and_signal(sb.path(), &args, &["INT", "TERM"]);
    let (sigint, sigterm) = (128 + 2, 128 + 15);
    assert!(
        matches!(status.code(), Some(c) if c == sigint || c == sigterm),
        "{status:?}: {log}"
    );
    sb.zoo_ok(&["train", &config, "--out", "killed", "--resume"]);
    assert_same_training(&sb.metrics("straight"), &sb.metrics("killed"));
}

#[test]
fn resume_refuses_a_changed_config() {
    let sb = Sandbox::with_data(300, 50);
    let config = sb.config("c.toml", "kind = \"softmax\"", "");
    sb.zoo_ok(&["train", &config, "--epochs", "1"]);
    // More epochs is allowed; a different learning rate is not.
    sb.zoo_ok(&["train", &config, "--epochs", "2", "--resume"]);
    assert_eq!(sb.metrics("runs/c")["epochs"], 2);
    let err =
        assert_clean_failure(&sb.zoo(&["train", &config, "--resume", "--set", "train.lr=0.5"]));
    assert!(err.contains("different config"), "{err}");
}

#[test]
fn mlp_trains_on_every_backend() {
    let sb = Sandbox::with_data(400, 100);
    let config = sb.config(
        "m.toml",
        "kind = \"mlp\"\nhidden = [32]\nbatch_norm = true",
        "",
    );
    for backend in ["flex", "ndarray", "wgpu"] {
        sb.zoo_ok(&["train", &config, "--backend", backend, "--out", backend]);
        let m = sb.metrics(backend);
        assert_eq!(m["backend"], backend);
        assert!(
            m["test"]["accuracy"].as_f64().unwrap() > 0.8,
            "{backend}: {}",
            m["test"]
        );
    }
}

#[test]
fn summary_json_and_check_agree_with_the_built_model() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = zoo(
        &root,
        &["summary", "configs/fashion-mnist/mlp.toml", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        s["total_params"],
        784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    );
    assert_eq!(s["total_macs"], 784 * 256 + 256 * 128 + 128 * 10);
    let layers = s["layers"].as_array().unwrap();
    assert_eq!(
        layers.last().unwrap()["output_shape"],
        serde_json::json!([10])
    );
    for key in ["name", "kind", "output_shape", "params", "macs"] {
        assert!(layers[0].get(key).is_some(), "layer rows carry {key}");
    }
    // `check` builds the module and compares its parameter count with the summary's.
    let out = zoo(
        &root,
        &[
            "check",
            "configs/fashion-mnist/mlp.toml",
            "--set",
            "model.batch_norm=true",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("235,914 trainable parameters, 768 buffers"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn early_stopping_ends_a_diverging_run() {
    let sb = Sandbox::with_data(300, 50);
    // A learning rate this large makes the validation loss worse (or NaN) epoch after epoch.
    let config = sb.config(
        "es.toml",
        "kind = \"softmax\"",
        "early_stopping_patience = 2",
    );
    let out = sb.zoo_ok(&[
        "train",
        &config,
        "--epochs",
        "10",
        "--set",
        "train.lr=1000.0",
    ]);
    assert!(stderr(&out).contains("early stopping"), "{}", stderr(&out));
    let m = sb.metrics("runs/es");
    assert_eq!(m["stopped_early"], true);
    assert!(m["epochs"].as_u64().unwrap() < 10, "{}", m["epochs"]);
}

#[test]
fn one_trainer_per_run_directory() {
    let sb = Sandbox::with_data(1500, 100);
    let body = tiny_config("kind = \"mlp\"\nhidden = [64]", &sb.data(), "")
        .replace("epochs = 2", "epochs = 50");
    let config = write_config(sb.path(), "l.toml", &body);
    let config = config.to_str().unwrap();
    let mut first = zoo_command(sb.path(), &["train", config, "--out", "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = sb.path().join("run/.lock");
    let deadline = Instant::now() + Duration::from_secs(120);
    // The holder writes its pid once it has the lock.
    let held = || std::fs::read_to_string(&lock).is_ok_and(|holder| !holder.is_empty());
    while !held() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // A second trainer, fresh or resuming, is refused and names the holder.
    for flags in [&[][..], &["--resume"][..]] {
        let mut args = vec!["train", config, "--out", "run"];
        args.extend(flags);
        let err = assert_clean_failure(&sb.zoo(&args));
        assert!(
            err.contains(&format!("in use by another zoo train (pid {})", first.id())),
            "{err}"
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // The kernel released the killed trainer's lock: a resume takes it, and a finished run
    // leaves the file naming no holder.
    sb.zoo_ok(&["train", config, "--out", "run", "--resume", "--epochs", "2"]);
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), "");
}

#[test]
fn leftovers_of_an_interrupted_write_are_removed_and_moved_runs_resume() {
    let sb = Sandbox::with_data(300, 50);
    let config = sb.config("c.toml", "kind = \"softmax\"", "");
    sb.zoo_ok(&["train", &config, "--epochs", "1", "--out", "first"]);
    // What a full disk or a kill in the middle of a write leaves behind.
    let partial = sb.path().join("first/checkpoints/.epoch-0002.partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("model.bpk"), b"half").unwrap();
    let tmp = sb.path().join("first/.metrics.json.tmp-99999");
    std::fs::write(&tmp, b"half").unwrap();
    // The run moves elsewhere and resumes there.
    std::fs::rename(sb.path().join("first"), sb.path().join("moved")).unwrap();
    let (partial, tmp) = (
        sb.path().join("moved/checkpoints/.epoch-0002.partial"),
        sb.path().join("moved/.metrics.json.tmp-99999"),
    );
    let out = sb.zoo_ok(&[
        "train", &config, "--epochs", "2", "--out", "moved", "--resume",
    ]);
    assert!(
        stderr(&out).contains("resuming from moved/checkpoints/epoch-0001"),
        "{}",
        stderr(&out)
    );
    assert!(!partial.exists() && !tmp.exists());
    assert_eq!(sb.metrics("moved")["epochs"], 2);
}

/// Mixed precision: f16 on wgpu (lavapipe here) learns, batch norm included, and checkpoints
/// its loss scale; CPU backends, and half types a device lacks, are refused with one error
/// that names the key.
#[test]
fn f16_trains_on_wgpu_and_cpu_backends_refuse_it() {
    let sb = Sandbox::with_data(600, 200);
    let model = "kind = \"mlp\"\nhidden = [32]\nbatch_norm = true";
    let config = sb.config("mlp16.toml", model, "precision = \"f16\"");
    let err = assert_clean_failure(&sb.zoo(&["train", &config]));
    assert!(
        err.contains("train.precision = \"f16\"") && err.contains("GPU backend"),
        "{err}"
    );
    sb.zoo_ok(&["train", &config, "--backend", "wgpu"]);
    let accuracy = sb.metrics("runs/mlp16")["test"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!(accuracy > 0.8, "f16 learns the easy classes: {accuracy}");
    let state = std::fs::read_to_string(
        sb.path()
            .join("runs/mlp16/checkpoints/epoch-0002/state.json"),
    )
    .unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    // 32 steps (2 epochs of 500 images in batches of 32); an overflow halves the scale and
    // restarts the count.
    let good_steps = state["loss_scale"]["good_steps"].as_u64().unwrap();
    let scale = state["loss_scale"]["scale"].as_f64().unwrap();
    assert!(
        (1..=32).contains(&good_steps) && scale <= 65536.0,
        "{state}"
    );

    let bf16 = sb.zoo(&[
        "train",
        &config,
        "--backend",
        "wgpu",
        "--out",
        "bf16",
        "--set",
        "train.precision=bf16",
    ]);
    if !bf16.status.success() {
        let err = assert_clean_failure(&bf16);
        assert!(err.contains("does not support bf16"), "{err}");
    }
}

#[test]
fn bench_reports_its_rates_as_json_and_refuses_a_negative_minimum() {
    let sb = Sandbox::with_data(600, 200);
    let config = sb.config("mlp.toml", "kind = \"mlp\"\nhidden = [32]", "");
    let args = [
        "bench",
        &config,
        "--steps",
        "3",
        "--min-seconds",
        "0",
        "--json",
    ];
    let out = sb.zoo_ok(&args);
    let r: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(r["model"], "mlp");
    assert!(r["train_samples_per_second"].as_f64().unwrap() > 0.0);
    assert!(r["inference_samples_per_second"].as_f64().unwrap() > 0.0);

    let out = sb.zoo(&["bench", &config, "--min-seconds=-1"]);
    let message = assert_clean_failure(&out);
    assert!(message.contains("--min-seconds"), "{message}");
}
