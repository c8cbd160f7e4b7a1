//! What zoo writes stays whole and is checked before it is read: a full disk leaves nothing
//! half-written and says its cause once; a flipped byte in a checkpoint or a model is named by
//! `--resume`, `eval` and `zoo verify`, and a resume continues from the checkpoint before it.

mod common;
use std::path::Path;
use std::process::Command;

use common::*;

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_is_named_and_the_run_resumes_from_the_checkpoint_before() {
    let sb = Sandbox::with_data(600, 100);
    let body = tiny_config("kind = \"mlp\"\nhidden = [32]", &sb.data(), "");
    let config = write_config(
        sb.path(),
        "c.toml",
        &body.replace("epochs = 2", "epochs = 3"),
    );
    let config = config.to_str().unwrap();
    sb.zoo_ok(&["train", config, "--out", "straight"]);
    sb.zoo_ok(&["train", config, "--out", "damaged"]);
    let out = sb.zoo_ok(&["verify", "damaged"]);
    assert!(
        stdout(&out).starts_with("ok       damaged: the model and 2 checkpoints (7 files)"),
        "{}",
        stdout(&out)
    );

    let newest = Path::new("damaged/checkpoints/epoch-0003/model.bpk");
    flip_a_byte(&sb.path().join(newest));
    let out = sb.zoo(&["verify", "."]);
    assert!(!out.status.success());
    let report = stdout(&out);
    assert!(
        report.contains("DAMAGED  ./damaged") && report.contains("ok       ./straight"),
        "{report}"
    );
    assert!(
        report.contains(&format!("./{}: damaged", newest.display())),
        "{report}"
    );
    let err = assert_clean_failure(&out);
    assert!(
        err.starts_with("error: damaged files: 1, in 1 of 2 runs"),
        "{err}"
    );

    // The resume names the file, keeps it aside, and retrains epoch 3 from epoch 2: the same
    // weights as the run that was never damaged.
    let out = sb.zoo_ok(&["train", config, "--out", "damaged", "--resume"]);
    let log = stderr(&out);
    assert!(
        log.contains(&format!("warning: {}: damaged", newest.display()))
            && log.contains("resuming from damaged/checkpoints/epoch-0002"),
        "{log}"
    );
    assert_same_training(&sb.metrics("straight"), &sb.metrics("damaged"));
    assert!(sb
        .path()
        .join("damaged/checkpoints/epoch-0003.damaged/model.bpk")
        .is_file());
    let out = sb.zoo_ok(&["verify", "damaged"]);
    assert!(
        stdout(&out).contains("set aside by a resume"),
        "{}",
        stdout(&out)
    );

    // A damaged final model: eval and export name it and load nothing.
    flip_a_byte(&sb.path().join("straight/model.bpk"));
    for args in [
        &["eval", "straight"][..],
        &["export", "straight", "w.safetensors"][..],
    ] {
        let err = assert_clean_failure(&sb.zoo(args));
        assert!(
            err.starts_with("error: straight/model.bpk: damaged: its SHA-256 differs"),
            "{args:?}: {err}"
        );
    }
    assert!(!sb.path().join("w.safetensors").exists());
}

#[test]
fn a_resume_with_every_checkpoint_damaged_fails_instead_of_starting_over() {
    let sb = Sandbox::with_data(300, 100);
    let config = sb.config("c.toml", "kind = \"softmax\"", "");
    sb.zoo_ok(&["train", &config, "--out", "run"]);
    for epoch in ["epoch-0001", "epoch-0002"] {
        flip_a_byte(
            &sb.path()
                .join(format!("run/checkpoints/{epoch}/state.json")),
        );
    }
    let err = assert_clean_failure(&sb.zoo(&["train", &config, "--out", "run", "--resume"]));
    assert!(
        err.starts_with("error: run/checkpoints/epoch-0002/state.json: damaged"),
        "{err}"
    );
}

/// Runs `script` with a 256 KiB tmpfs mounted at `dir` (a private mount namespace: no root
/// needed where user namespaces are allowed); `None` where they are not.
fn with_small_disk(dir: &Path, script: &str) -> Option<std::process::Output> {
    std::fs::create_dir_all(dir).unwrap();
    let mount = format!(
        "mount -t tmpfs -o size=256k tmpfs '{}' || exit 99\n{script}",
        dir.display()
    );
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &mount])
        .output()
        .ok()?;
    (out.status.code() != Some(99) && !stderr(&out).contains("unshare:")).then_some(out)
}

#[test]
fn a_full_disk_during_the_first_checkpoint_leaves_nothing_behind() {
    let sb = Sandbox::with_data(300, 100);
    // 784 x 128 weights and as many momentum values: the first checkpoint needs ~800 KB.
    let config = sb.config("c.toml", "kind = \"mlp\"\nhidden = [128]", "");
    let disk = sb.path().join("disk");
    let script = format!(
        "cd '{}' && '{}' train '{config}' --out disk/run; echo \"exit $?\"; find disk | sort",
        sb.path().display(),
        env!("CARGO_BIN_EXE_zoo"),
    );
    let Some(out) = with_small_disk(&disk, &script) else {
        assert!(
            std::env::var_os("ZOO_REQUIRE_NAMESPACES").is_none(),
            "ZOO_REQUIRE_NAMESPACES is set, but `unshare --user --mount` cannot mount a tmpfs here"
        );
        eprintln!("skipped: this machine allows no private mounts (unshare --user --mount)");
        return;
    };
    let (log, listing) = (stderr(&out), stdout(&out));
    assert!(listing.starts_with("exit 1\n"), "{listing}\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].starts_with(
            "error: cannot write disk/run/checkpoints/epoch-0001: No space left on device"
        ) && errors[0].matches("No space left").count() == 1
            && errors[0].ends_with("free space on that disk, or point --out at another one"),
        "{log}"
    );
    // The run's config and its lock; no partial checkpoint, no temporary file.
    let files: Vec<&str> = listing.lines().skip(1).collect();
    assert_eq!(
        files,
        [
            "disk",
            "disk/run",
            "disk/run/.lock",
            "disk/run/checkpoints",
            "disk/run/config.toml",
            "disk/run/normalization.json"
        ],
        "{log}"
    );
}
