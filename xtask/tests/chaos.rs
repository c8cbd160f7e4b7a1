//! Batches that survive chaos. A seeded driver injects faults into a running batch: trainers
//! killed with SIGKILL or stopped with SIGTERM, and on the one-node Slurm cluster also `slurmd`
//! killed and restarted and the node drained and resumed. Between faults it plays the admin
//! (releases tasks Slurm holds back) and, once the batch has returned, runs it again
//! (`--retry-failed` on Slurm) until every experiment has finished. Then every experiment has
//! the test loss, accuracy and weights of a calm batch, none ran to completion twice, nothing is
//! half-written, and `zoo verify` finds every file as it was written.
//!
//! `ZOO_CHAOS_SEED=N` replays seed N's schedule (the kinds of fault, their targets and the
//! pauses between them; where a fault lands also depends on timing). Each run prints how many
//! faults of each kind the batch survived.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod common;
use common::{slurm_installed, walk, write_config, write_dataset, xtask_command, zoo_bin, Cluster};

/// Faults a run must inject at least, and at most (so that the batch can finish).
const MIN_FAULTS: usize = 20;
const MAX_FAULTS: usize = 30;
/// Times the batch is run again before the test gives up.
const MAX_ROUNDS: usize = 40;

fn chaos_seed(default: u64) -> u64 {
    std::env::var("ZOO_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The batch: 2 configs x 2 seeds, each long enough (many short epochs) to be hit mid-run.
fn write_batch(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    write_dataset(&data, 4000);
    let configs = dir.join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    write_config(&configs, "softmax", "kind = \"softmax\"", &data, 16);
    let mlp = "kind = \"mlp\"\nhidden = [256, 256]\ndropout = 0.2";
    write_config(&configs, "mlp", mlp, &data, 16);
    configs
}

fn batch_command(zoo: &Path, configs: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut args = vec![
        "batch",
        configs.to_str().unwrap(),
        "--seeds",
        "0,1",
        "--jobs",
        "2",
        "--poll-seconds",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    xtask_command(zoo, &args)
}

/// What an experiment ended with: test loss, test accuracy and the weights' digest.
type Outcome = (Option<f64>, f64, String);

/// The outcome of every finished run under `out`, by run directory name.
fn outcomes(out: &Path) -> BTreeMap<String, Outcome> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(out.join("runs")).into_iter().flatten() {
        let entry = entry.unwrap();
        let Ok(text) = std::fs::read_to_string(entry.path().join("metrics.json")) else {
            continue;
        };
        let m: serde_json::Value = serde_json::from_str(&text).unwrap();
        found.insert(
            entry.file_name().to_string_lossy().into_owned(),
            (
                m["test"]["loss"].as_f64(),
                m["test"]["accuracy"].as_f64().unwrap(),
                m["weights_digest"].as_str().unwrap().to_string(),
            ),
        );
    }
    found
}

/// The `zoo train` processes training into `out`, by pid (sorted, so that a seed picks the
/// same one from the same set).
fn trainers(out: &Path) -> Vec<u32> {
    let out = out.to_string_lossy();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.len() > 2
                && args[0].ends_with("zoo")
                && args[1] == "train"
                && args.iter().any(|a| a.starts_with(&*out))
        })
        .collect();
    pids.sort();
    pids
}

fn signal(pid: u32, name: &str) {
    // The process may have ended since it was listed: that fault simply missed.
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// The fault driver: a seeded schedule and the count of faults injected, by kind.
struct Chaos {
    seed: u64,
    rng: StdRng,
    injected: BTreeMap<&'static str, usize>,
}

impl Chaos {
    fn new(seed: u64) -> Self {
        Chaos {
            seed,
            rng: StdRng::seed_from_u64(seed),
            injected: BTreeMap::new(),
        }
    }

    fn total(&self) -> usize {
        self.injected.values().sum()
    }

    fn count(&mut self, kind: &'static str) {
        *self.injected.entry(kind).or_default() += 1;
    }

    fn pause(&mut self, min_ms: u64, max_ms: u64) {
        std::thread::sleep(Duration::from_millis(self.rng.random_range(min_ms..max_ms)));
    }

    /// Kills one of the batch's trainers (SIGKILL), or stops it (SIGTERM: it checkpoints and
    /// exits with 75). False when none was running.
    fn hit_a_trainer(&mut self, out: &Path) -> bool {
        let pids = trainers(out);
        let kill = self.rng.random_bool(0.5);
        if pids.is_empty() {
            return false;
        }
        let pid = pids[self.rng.random_range(0..pids.len())];
        if kill {
            signal(pid, "KILL");
            self.count("trainer killed (SIGKILL)");
        } else {
            signal(pid, "TERM");
            self.count("trainer stopped (SIGTERM)");
        }
        true
    }

    fn report(&self, executor: &str) -> String {
        let kinds: Vec<String> = self
            .injected
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        format!(
            "chaos seed {} ({executor}): {} faults survived: {}",
            self.seed,
            self.total(),
            kinds.join(", ")
        )
    }
}

/// Runs `start`'s batch (given the round) with faults until it returns, then again until every
/// experiment has finished. `fault(chaos, kind)` injects a fault of one of `kinds` kinds, drawn
/// by the seed; one that found no target (no trainer running) is tried again at the next pause.
fn run_with_chaos(
    chaos: &mut Chaos,
    out: &Path,
    (expected, kinds): (usize, usize),
    mut start: impl FnMut(usize) -> Child,
    mut fault: impl FnMut(&mut Chaos, usize) -> bool,
    mut between_faults: impl FnMut(),
) {
    let mut waiting = None;
    for round in 0..MAX_ROUNDS {
        let mut batch = start(round);
        while batch.try_wait().unwrap().is_none() {
            chaos.pause(50, 250);
            between_faults();
            if chaos.total() < MAX_FAULTS {
                let kind = waiting
                    .take()
                    .unwrap_or_else(|| chaos.rng.random_range(0..kinds));
                if !fault(chaos, kind) {
                    waiting = Some(kind);
                }
            }
        }
        if outcomes(out).len() == expected {
            return;
        }
    }
    panic!(
        "seed {}: the batch did not finish in {MAX_ROUNDS} rounds; {}",
        chaos.seed,
        chaos.report("")
    );
}

/// What every chaos run must end with: the calm batch's outcomes, no run finished twice,
/// nothing half-written, every checksum good.
fn assert_survived(
    chaos: &Chaos,
    zoo: &Path,
    calm: &Path,
    out: &Path,
    completions: impl Fn(&str) -> usize,
) {
    let seed = chaos.seed;
    assert!(
        chaos.total() >= MIN_FAULTS,
        "seed {seed}: only {} faults injected; the batch finished too soon",
        chaos.total()
    );
    let (calm, stormy) = (outcomes(calm), outcomes(out));
    assert_eq!(
        stormy, calm,
        "seed {seed}: outcomes differ from the calm batch's"
    );
    for run in stormy.keys() {
        let n = completions(run);
        assert!(n <= 1, "seed {seed}: {run} ran to completion {n} times");
    }
    let leftovers: Vec<PathBuf> = walk(out)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.contains(".partial") || name.contains(".tmp-")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "seed {seed}: half-written: {leftovers:?}"
    );
    let verify = Command::new(zoo).arg("verify").arg(out).output().unwrap();
    assert!(
        verify.status.success(),
        "seed {seed}: zoo verify:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Lines that only a finished run prints (its test evaluation), in `text`.
fn finished_lines(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("test: ")).count()
}

fn calm_batch(dir: &Path, zoo: &Path, configs: &Path) -> PathBuf {
    let calm = dir.join("calm");
    let out = batch_command(zoo, configs, &calm, &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(outcomes(&calm).len(), 4);
    calm
}

fn spawn_quiet(mut command: Command, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    command
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[test]
fn a_local_batch_survives_killed_and_stopped_trainers() {
    let dir = tempfile::tempdir().unwrap();
    let configs = write_batch(dir.path());
    let zoo = zoo_bin();
    let calm = calm_batch(dir.path(), &zoo, &configs);

    let out = dir.path().join("chaos");
    let mut chaos = Chaos::new(chaos_seed(1));
    let log = dir.path().join("batch.log");
    run_with_chaos(
        &mut chaos,
        &out,
        (4, 1),
        |_| spawn_quiet(batch_command(&zoo, &configs, &out, &[]), &log),
        |chaos, _| chaos.hit_a_trainer(&out),
        || {},
    );
    eprintln!("{}", chaos.report("local"));
    assert_survived(&chaos, &zoo, &calm, &out, |run| {
        let log = std::fs::read_to_string(out.join("runs").join(run).join("train.log"));
        finished_lines(&log.unwrap())
    });
}

#[test]
fn a_slurm_batch_survives_killed_trainers_a_lost_slurmd_and_a_drained_node() {
    if !slurm_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let configs = write_batch(dir.path());
    let zoo = zoo_bin();
    let calm = calm_batch(dir.path(), &zoo, &configs);
    let cluster = Cluster::up(&dir.path().join("cluster"));
    let node = String::from_utf8(
        cluster
            .command("sinfo")
            .args(["--noheader", "--format=%n"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let scontrol = |args: &[&str]| {
        let _ = cluster
            .command("scontrol")
            .args(args)
            .stderr(Stdio::null())
            .status();
    };

    let out = dir.path().join("chaos");
    let mut chaos = Chaos::new(chaos_seed(1));
    let log = dir.path().join("batch.log");
    let slurmd_pid = cluster.dir.join("slurmd.pid");
    run_with_chaos(
        &mut chaos,
        &out,
        (4, 4),
        |round| {
            let retry: &[&str] = if round == 0 { &[] } else { &["--retry-failed"] };
            let mut args = vec!["--executor", "slurm"];
            args.extend(retry);
            let mut command = batch_command(&zoo, &configs, &out, &args);
            command.env("SLURM_CONF", &cluster.conf);
            spawn_quiet(command, &log)
        },
        // Half the faults hit a trainer, a quarter slurmd, a quarter the node.
        |chaos, kind| match kind {
            0 | 1 => chaos.hit_a_trainer(&out),
            2 => {
                let pid = std::fs::read_to_string(&slurmd_pid).unwrap();
                signal(pid.trim().parse().unwrap(), "KILL");
                chaos.pause(100, 800);
                let restarted = cluster
                    .command("slurmd")
                    .args(["-f", &cluster.conf])
                    .status()
                    .unwrap();
                assert!(restarted.success(), "slurmd did not start again");
                chaos.count("slurmd killed and restarted");
                true
            }
            _ => {
                let node = format!("NodeName={node}");
                scontrol(&["update", &node, "State=DRAIN", "Reason=chaos"]);
                chaos.pause(100, 800);
                scontrol(&["update", &node, "State=RESUME"]);
                chaos.count("node drained and resumed");
                true
            }
        },
        // The admin's part: a requeued task waits for its begin time, and one whose launch
        // failed (slurmd away) is held; both are let go at once.
        || {
            let pending = cluster
                .command("squeue")
                .args([
                    "--noheader",
                    "--array",
                    "--states=PENDING",
                    "--format=%i|%r",
                ])
                .output()
                .unwrap();
            for line in String::from_utf8_lossy(&pending.stdout).lines() {
                let Some((task, reason)) = line.split_once('|') else {
                    continue;
                };
                if reason.contains("BeginTime") {
                    scontrol(&["update", &format!("JobId={task}"), "StartTime=now"]);
                } else if reason.contains("Held") || reason.contains("held") {
                    scontrol(&["release", task]);
                }
            }
        },
    );
    eprintln!("{}", chaos.report("slurm"));
    // Slurm's task logs are named <job>_<plan index>.out; the plan lists runs in its order.
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("batch.json")).unwrap()).unwrap();
    let index_of = |run: &str| {
        plan["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .position(|e| e["run_dir"]["Ok"].as_str().unwrap().ends_with(run))
            .unwrap()
    };
    assert_survived(&chaos, &zoo, &calm, &out, |run| {
        let suffix = format!("_{}.out", index_of(run));
        std::fs::read_dir(out.join("slurm"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix))
            .map(|e| finished_lines(&std::fs::read_to_string(e.path()).unwrap()))
            .sum()
    });
}
