//! `cargo xtask batch --executor slurm` against real Slurm daemons: a one-node cluster on this
//! machine (`.ci/slurm-cluster`, which `.ci/run` installs Slurm for). The same batch run through
//! Slurm and locally gives the same results; a task stopped with `scancel --signal=TERM`
//! checkpoints, requeues itself and resumes to the weights of an uninterrupted run; the cluster
//! is shut down at the end. Without Slurm installed the test says so and passes, unless
//! `ZOO_REQUIRE_SLURM` is set (as in CI), where that is a failure.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::{slurm_installed, walk, write_config, write_dataset, xtask_command, zoo_bin, Cluster};

fn xtask(cluster: &Cluster, zoo: &Path, args: &[&str]) -> Output {
    let out = xtask_command(zoo, args)
        .env("SLURM_CONF", &cluster.conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xtask {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// (run directory name, test accuracy, weights digest) of every finished run under `results`.
fn finished_runs(results: &Path) -> Vec<(String, f64, String)> {
    let mut runs: Vec<(String, f64, String)> = std::fs::read_dir(results.join("runs"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("metrics.json")).ok()?;
            let m: serde_json::Value = serde_json::from_str(&text).unwrap();
            Some((
                e.file_name().to_string_lossy().into_owned(),
                m["test"]["accuracy"].as_f64().unwrap(),
                m["weights_digest"].as_str().unwrap().to_string(),
            ))
        })
        .collect();
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    runs
}

#[test]
fn a_batch_through_slurm_equals_the_local_one_and_survives_preemption() {
    if !slurm_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_dataset(&data, 1500);
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    write_config(&configs, "softmax", "kind = \"softmax\"", &data, 2);
    write_config(
        &configs,
        "mlp",
        "kind = \"mlp\"\nhidden = [32]\ndropout = 0.2",
        &data,
        2,
    );
    let zoo = zoo_bin();
    let cluster = Cluster::up(&dir.path().join("cluster"));
    let batch = |out: &Path, configs: &Path, seeds: &str, executor: &str, extra: &[&str]| {
        let mut args = vec![
            "batch",
            configs.to_str().unwrap(),
            "--seeds",
            seeds,
            "--out",
        ];
        args.push(out.to_str().unwrap());
        args.extend(["--executor", executor, "--poll-seconds", "1"]);
        args.extend(extra);
        xtask(&cluster, &zoo, &args)
    };

    // 2 configs x 2 seeds, locally and as a job array: the same runs, accuracies and weights.
    let local = dir.path().join("local");
    let slurm = dir.path().join("slurm");
    batch(&local, &configs, "0,1", "local", &[]);
    let out = batch(&slurm, &configs, "0,1", "slurm", &[]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("submitted job array"), "{log}");
    assert_eq!(finished_runs(&local).len(), 4);
    assert_eq!(finished_runs(&slurm), finished_runs(&local));
    let scripts: Vec<_> = std::fs::read_dir(slurm.join("slurm"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sh"))
        .collect();
    assert_eq!(
        scripts.len(),
        1,
        "the job script is kept beside the results"
    );
    let csv = std::fs::read_to_string(slurm.join("results.csv")).unwrap();
    assert_eq!(
        csv.lines().filter(|l| l.contains(",ok,")).count(),
        4,
        "{csv}"
    );
    // An sbatch error is the batch's one error line, with sbatch's own words.
    let fresh = dir.path().join("fresh");
    let args = [
        "batch",
        configs.to_str().unwrap(),
        "--out",
        fresh.to_str().unwrap(),
    ];
    let out = xtask_command(&zoo, &args)
        .args(["--executor", "slurm", "--partition", "nosuch"])
        .env("SLURM_CONF", &cluster.conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].starts_with("error: sbatch") && errors[0].contains("invalid partition"),
        "{err}"
    );
    assert!(
        !fresh.join("runs").exists(),
        "no run directory before a task runs"
    );
    // Run again: nothing is submitted.
    let out = batch(&slurm, &configs, "0,1", "slurm", &[]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("4 finished") && !log.contains("submitted"),
        "{log}"
    );

    // A task that fails is recorded with Slurm's state and its error line, and submitted
    // again only with --retry-failed.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    write_config(
        &broken,
        "softmax",
        "kind = \"softmax\"",
        &dir.path().join("no-data"),
        1,
    );
    // Submitted without waiting; `collect` records the failure once the task has ended.
    let failing = dir.path().join("failing");
    batch(&failing, &broken, "0", "slurm", &["--no-wait"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let queue = cluster
            .command("squeue")
            .args(["--noheader"])
            .output()
            .unwrap();
        if queue.stdout.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the failing task never ended");
        std::thread::sleep(Duration::from_millis(200));
    }
    xtask(&cluster, &zoo, &["collect", failing.to_str().unwrap()]);
    let failures = std::fs::read_to_string(failing.join("slurm/failures.json")).unwrap();
    assert!(
        failures.contains("\"FAILED\"") && failures.contains("cannot load the dataset"),
        "{failures}"
    );
    let csv = std::fs::read_to_string(failing.join("results.csv")).unwrap();
    assert!(csv.contains(",failed,Slurm FAILED"), "{csv}");
    let log =
        String::from_utf8_lossy(&batch(&failing, &broken, "0", "slurm", &[]).stderr).into_owned();
    assert!(
        log.contains("1 failed earlier") && !log.contains("submitted"),
        "{log}"
    );
    let log = batch(&failing, &broken, "0", "slurm", &["--retry-failed"]).stderr;
    assert!(String::from_utf8_lossy(&log).contains("submitted job array"));

    // Preemption: a longer run, stopped mid-training with SIGTERM as Slurm sends it.
    let long = dir.path().join("long");
    std::fs::create_dir_all(&long).unwrap();
    write_config(
        &long,
        "mlp",
        "kind = \"mlp\"\nhidden = [512]\ndropout = 0.2",
        &data,
        12,
    );
    let preempted = dir.path().join("preempted");
    let straight = dir.path().join("straight");
    batch(&straight, &long, "0", "local", &[]);
    let out = batch(&preempted, &long, "0", "slurm", &["--no-wait"]);
    let log = String::from_utf8_lossy(&out.stderr);
    let job = log
        .split("submitted job array ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a job id")
        .to_string();
    let runs = preempted.join("runs");
    let deadline = Instant::now() + Duration::from_secs(300);
    let first_epoch = || {
        std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .any(|run| run.path().join("checkpoints/epoch-0001").exists())
    };
    while !first_epoch() {
        assert!(
            Instant::now() < deadline,
            "the task never finished an epoch"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let task = format!("{job}_0");
    let status = cluster
        .command("scancel")
        .args(["--signal=TERM", &task])
        .status()
        .unwrap();
    assert!(status.success());
    // The task requeues itself; Slurm holds a requeued job back for about two minutes, which
    // the test skips.
    let task_log = preempted.join("slurm").join(format!("{task}.out"));
    while !std::fs::read_to_string(&task_log).is_ok_and(|l| l.contains("stopped on request")) {
        assert!(
            Instant::now() < deadline,
            "the task did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    while !cluster
        .command("scontrol")
        .args(["update", &format!("JobId={task}"), "StartTime=now"])
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "the task was not requeued");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Running the batch again follows the requeued task to its end, then writes the tables.
    batch(&preempted, &long, "0", "slurm", &[]);
    let task_log = std::fs::read_to_string(&task_log).unwrap();
    assert!(task_log.contains("start 1"), "requeued once:\n{task_log}");
    assert!(task_log.contains("resuming from"), "{task_log}");
    assert_eq!(finished_runs(&preempted), finished_runs(&straight));

    // The daemons stop with the cluster.
    drop(cluster);
    let sinfo = Command::new("sinfo")
        .env("SLURM_CONF", dir.path().join("cluster/slurm.conf"))
        .output()
        .unwrap();
    assert!(
        !sinfo.status.success(),
        "the controller still answers after shutdown"
    );
}

/// The results directory of an earlier batch, as `results_dir_listing` sees it.
fn results_dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_missing_or_unreachable_slurm_is_one_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_dataset(&data, 100);
    let config = write_config(dir.path(), "softmax", "kind = \"softmax\"", &data, 1);
    // An earlier batch's results: a run directory that must stay as it is.
    let results = dir.path().join("results");
    std::fs::create_dir_all(results.join("runs/softmax-0123")).unwrap();
    std::fs::write(results.join("runs/softmax-0123/train.log"), "epoch 1\n").unwrap();
    let before = results_dir_listing(&results);
    let args = [
        "batch",
        config.to_str().unwrap(),
        "--executor",
        "slurm",
        "--out",
    ];
    let run = |path: &std::ffi::OsStr, conf: &Path| {
        let out = xtask_command(Path::new("/no/zoo"), &args)
            .arg(&results)
            .env("PATH", path)
            .env("SLURM_CONF", conf)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let empty_bin = dir.path().join("bin");
    std::fs::create_dir_all(&empty_bin).unwrap();
    let err = run(empty_bin.as_os_str(), Path::new("/no/slurm.conf"));
    assert_eq!(
        err,
        "error: sbatch not found: the Slurm executor needs Slurm's commands (sbatch, squeue, scontrol) on PATH\n"
    );
    assert_eq!(results_dir_listing(&results), before);

    if Command::new("sbatch").arg("--version").output().is_err() {
        return;
    }
    // Installed, but no controller answers at the configured address.
    let conf = dir.path().join("slurm.conf");
    std::fs::write(
        &conf,
        "ClusterName=nowhere\nSlurmctldHost=localhost\nSlurmctldPort=26999\nNodeName=localhost\nPartitionName=p Nodes=ALL Default=YES\n",
    )
    .unwrap();
    let err = run(&std::env::var_os("PATH").unwrap(), &conf);
    assert!(
        err.starts_with("error: Slurm's controller does not answer: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(results_dir_listing(&results), before);
}
