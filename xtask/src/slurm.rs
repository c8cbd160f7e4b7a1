//! `cargo xtask batch --executor slurm`: a batch's unfinished experiments as one Slurm job
//! array. Array task i runs experiment i of the plan with `zoo train --resume` into its run
//! directory (under `--out`, which every node must see). The job script is kept in
//! `<out>/slurm/`, where Slurm also writes each task's log; `sbatch` submits it, and `squeue`
//! follows it until every task has ended (unless `--no-wait`).
//!
//! Preemption: the script asks Slurm for SIGTERM ahead of the time limit (`--signal`), zoo
//! checkpoints on it and exits with 75, and the script then requeues its task, which resumes.
//! Tasks that failed are recorded in `<out>/slurm/failures.json` with Slurm's state and the
//! run's error line; they are submitted again only with `--retry-failed`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use zoo::run_dir::METRICS_FILE;

use crate::common::error_line;
use crate::plan::{Experiment, Plan};

/// `sbatch` settings of the job array, and how the executor follows it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SlurmArgs {
    /// `sbatch --partition`.
    #[arg(long, help_heading = "Slurm")]
    partition: Option<String>,
    /// `sbatch --time`, per experiment (e.g. 2:00:00).
    #[arg(long, help_heading = "Slurm")]
    time: Option<String>,
    /// `sbatch --gres`, e.g. gpu:1.
    #[arg(long, help_heading = "Slurm")]
    gres: Option<String>,
    /// `sbatch --cpus-per-task`.
    #[arg(long, help_heading = "Slurm")]
    cpus_per_task: Option<u32>,
    /// `sbatch --mem`, e.g. 8G.
    #[arg(long, help_heading = "Slurm")]
    mem: Option<String>,
    /// Any other `sbatch` option, written into the script as is (repeatable).
    #[arg(long = "sbatch-arg", value_name = "ARG", help_heading = "Slurm")]
    sbatch_args: Vec<String>,
    /// Seconds before the time limit at which Slurm sends SIGTERM (zoo checkpoints, the task
    /// requeues).
    #[arg(long, default_value_t = 120, help_heading = "Slurm")]
    signal_before: u32,
    /// Submit and return; `cargo xtask collect OUT` writes the tables later.
    #[arg(long, help_heading = "Slurm")]
    no_wait: bool,
    /// Submit the experiments recorded as failed again.
    #[arg(long, help_heading = "Slurm")]
    retry_failed: bool,
    /// Seconds between two looks at the queue.
    #[arg(long, default_value_t = 5, help_heading = "Slurm")]
    poll_seconds: u64,
}

/// Why one experiment did not finish: Slurm's state of its task and its log's error line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub job: String,
    pub state: String,
    pub error: String,
}

impl Failure {
    pub fn describe(&self) -> String {
        format!("Slurm {} ({}): {}", self.state, self.job, self.error)
    }
}

/// The recorded failures of a batch, keyed by run directory.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Failures(BTreeMap<String, Failure>);

impl Failures {
    fn path(out: &Path) -> PathBuf {
        out.join("slurm").join("failures.json")
    }

    pub fn load(out: &Path) -> Result<Failures> {
        let path = Self::path(out);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{}: not a failure record", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Failures::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn save(&self, out: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        zoo::fsutil::write_atomic(&Self::path(out), &json)
            .with_context(|| format!("cannot write {}", Self::path(out).display()))
    }

    pub fn get(&self, run_dir: &str) -> Option<&Failure> {
        self.0.get(run_dir)
    }
}

/// A command's output, or one error naming the command and what it printed.
fn slurm_command(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!("{program} not found: the Slurm executor needs Slurm's commands (sbatch, squeue, scontrol) on PATH")
        } else {
            anyhow::anyhow!("cannot run {program}: {e}")
        }
    })?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        let text: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        bail!("{program} {}: {}", args.join(" "), text.join("; "));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Fails with one clear error when Slurm's commands are missing or its controller does not answer.
pub fn check_available() -> Result<()> {
    slurm_command("sbatch", &["--version"])?;
    slurm_command("squeue", &["--noheader", "--me", "--format=%i"])
        .context("Slurm's controller does not answer")?;
    Ok(())
}

/// Quotes `word` for bash.
fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=,:+@%".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The job-array script: task i runs `tasks`' experiment i.
fn job_script(
    zoo: &Path,
    workdir: &Path,
    out: &Path,
    tasks: &[(usize, &Experiment, &Path)],
    args: &SlurmArgs,
) -> String {
    let indices: Vec<String> = tasks.iter().map(|(i, _, _)| i.to_string()).collect();
    let logs = out.join("slurm");
    let mut s = String::from("#!/bin/bash\n");
    s += "# A zoo batch as a Slurm job array, written by `cargo xtask batch --executor slurm`.\n";
    s +=
        "# Task i trains experiment i of batch.json; submit it again with `sbatch` on this file.\n";
    let mut option = |o: String| writeln!(s, "#SBATCH {o}").unwrap();
    option("--job-name=zoo-batch".into());
    option(format!("--array={}", indices.join(",")));
    option(format!("--output={}", logs.join("%A_%a.out").display()));
    // Relative paths (configs, data.dir) mean what they meant where the batch was started.
    option(format!("--chdir={}", workdir.display()));
    option("--open-mode=append".into());
    // SIGTERM to the task ahead of the time limit: zoo checkpoints and the task requeues.
    option(format!("--signal=TERM@{}", args.signal_before));
    option("--requeue".into());
    for (flag, value) in [
        ("partition", &args.partition),
        ("time", &args.time),
        ("gres", &args.gres),
        ("mem", &args.mem),
    ] {
        if let Some(v) = value {
            option(format!("--{flag}={v}"));
        }
    }
    if let Some(n) = args.cpus_per_task {
        option(format!("--cpus-per-task={n}"));
    }
    for extra in &args.sbatch_args {
        option(extra.clone());
    }
    s += "\ncase \"$SLURM_ARRAY_TASK_ID\" in\n";
    for (i, e, run_dir) in tasks {
        let words: Vec<String> = e.train_args(run_dir).iter().map(|w| quote(w)).collect();
        writeln!(s, "{i}) args=({}) ;;", words.join(" ")).unwrap();
    }
    s += "*) echo \"error: no experiment $SLURM_ARRAY_TASK_ID in this job array\" >&2; exit 2 ;;\nesac\n\n";
    writeln!(s, "echo \"zoo batch: task $SLURM_ARRAY_TASK_ID on $(hostname), start ${{SLURM_RESTART_COUNT:-0}}\"").unwrap();
    writeln!(
        s,
        "srun {} \"${{args[@]}}\"",
        quote(&zoo.display().to_string())
    )
    .unwrap();
    s += "status=$?\n";
    s += "# 75: zoo stopped on SIGTERM (time limit, preemption, scancel --signal=TERM) after a\n";
    s += "# checkpoint; requeued, the task resumes from it.\n";
    s += "if [ \"$status\" -eq 75 ]; then\n    scontrol requeue \"$SLURM_JOB_ID\"\nfi\nexit \"$status\"\n";
    s
}

/// One submitted job array: its id and the experiments (plan indices) of its tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Submission {
    job_id: String,
    script: PathBuf,
    tasks: Vec<usize>,
}

fn submissions_path(out: &Path) -> PathBuf {
    out.join("slurm").join("submissions.json")
}

fn load_submissions(out: &Path) -> Result<Vec<Submission>> {
    let path = submissions_path(out);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("{}: unreadable", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `job_id_task` -> (state, exit code) of the array tasks Slurm still knows of (it forgets
/// ended jobs after its `MinJobAge`).
fn task_states(job_ids: &[&str]) -> Result<BTreeMap<String, (String, String)>> {
    let mut states = BTreeMap::new();
    for job in job_ids {
        let jobs = format!("--jobs={job}");
        let format = "--Format=ArrayJobID:|,ArrayTaskID:|,State:|,exit_code:";
        let text = match slurm_command(
            "squeue",
            &["--noheader", "--array", "--states=all", &jobs, format],
        ) {
            Ok(text) => text,
            Err(e) if e.to_string().contains("Invalid job id") => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            let fields: Vec<&str> = line.split('|').map(str::trim).collect();
            if let [job, task, state, exit] = fields[..] {
                states.insert(
                    format!("{job}_{task}"),
                    (state.to_string(), exit.to_string()),
                );
            }
        }
    }
    Ok(states)
}

/// States in which a task may still run.
fn is_active(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESIZING"
            | "SUSPENDED"
            | "STAGE_OUT"
            | "SIGNALING"
    )
}

/// Submits the plan's unfinished experiments as one job array and, unless `--no-wait`, follows
/// it until every task has ended, recording failures. Returns whether it waited.
pub fn run(zoo: &Path, plan: &Plan, out: &Path, args: &SlurmArgs) -> Result<bool> {
    let out = std::path::absolute(out).context("cannot resolve --out")?;
    let mut failures = Failures::load(&out)?;
    let mut submissions = load_submissions(&out)?;
    // Tasks of earlier submissions still queued or running are followed, not submitted again.
    let earlier: Vec<&str> = submissions.iter().map(|s| s.job_id.as_str()).collect();
    let states = task_states(&earlier)?;
    let mut active = std::collections::BTreeSet::new();
    for sub in &submissions {
        for &i in &sub.tasks {
            if states
                .get(&format!("{}_{i}", sub.job_id))
                .is_some_and(|(state, _)| is_active(state))
            {
                active.insert(i);
            }
        }
    }
    let mut tasks = Vec::new();
    let (mut finished, mut failed) = (0, 0);
    for (i, e) in plan.experiments.iter().enumerate() {
        let Ok(dir) = &e.run_dir else { continue };
        let key = dir.display().to_string();
        if dir.join(METRICS_FILE).exists() {
            finished += 1;
        } else if active.contains(&i) {
        } else if failures.get(&key).is_some() && !args.retry_failed {
            failed += 1;
        } else {
            failures.0.remove(&key);
            tasks.push((i, e, dir.as_path()));
        }
    }
    eprintln!(
        "batch: {} experiments: {finished} finished, {} queued or running, {failed} failed earlier (--retry-failed submits them), {} to submit",
        plan.experiments.len(),
        active.len(),
        tasks.len()
    );
    if !tasks.is_empty() {
        let logs = out.join("slurm");
        std::fs::create_dir_all(&logs)
            .with_context(|| format!("cannot create {}", logs.display()))?;
        let workdir = std::env::current_dir().context("cannot read the working directory")?;
        let script = job_script(zoo, &workdir, &out, &tasks, args);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let script_path = logs.join(format!("batch-{stamp}.sh"));
        zoo::fsutil::write_atomic(&script_path, script.as_bytes())
            .with_context(|| format!("cannot write {}", script_path.display()))?;
        let path = script_path.display().to_string();
        let job_id = slurm_command("sbatch", &["--parsable", &path])?
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        eprintln!(
            "batch: submitted job array {job_id} ({} tasks): {path}",
            tasks.len()
        );
        submissions.push(Submission {
            job_id,
            script: script_path,
            tasks: tasks.iter().map(|(i, _, _)| *i).collect(),
        });
        let json = serde_json::to_vec_pretty(&submissions)?;
        zoo::fsutil::write_atomic(&submissions_path(&out), &json)
            .with_context(|| format!("cannot write {}", submissions_path(&out).display()))?;
        failures.save(&out)?;
    }
    if args.no_wait {
        eprintln!(
            "batch: not waiting; `cargo xtask collect {}` writes the tables once the tasks end",
            out.display()
        );
        return Ok(false);
    }
    follow(plan, &out, &submissions, &mut failures, args.poll_seconds)?;
    Ok(true)
}

/// Polls `squeue` until no task of `submissions` may still run, then records the failed ones.
fn follow(
    plan: &Plan,
    out: &Path,
    submissions: &[Submission],
    failures: &mut Failures,
    poll_seconds: u64,
) -> Result<()> {
    let ids: Vec<&str> = submissions.iter().map(|s| s.job_id.as_str()).collect();
    let mut last = String::new();
    let states = loop {
        let states = task_states(&ids)?;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (state, _) in states.values() {
            *counts.entry(state.as_str()).or_default() += 1;
        }
        let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let summary = summary.join(", ");
        if summary != last {
            eprintln!("batch: slurm tasks: {summary}");
            last = summary;
        }
        if !states.values().any(|(state, _)| is_active(state)) {
            break states;
        }
        std::thread::sleep(Duration::from_secs(poll_seconds.max(1)));
    };
    record_failures(plan, out, submissions, &states, failures)
}

/// Records why each ended task without metrics failed (Slurm's state, its log's error line);
/// later submissions of an experiment override earlier ones.
fn record_failures(
    plan: &Plan,
    out: &Path,
    submissions: &[Submission],
    states: &BTreeMap<String, (String, String)>,
    failures: &mut Failures,
) -> Result<()> {
    for sub in submissions {
        for &i in &sub.tasks {
            let Ok(dir) = &plan.experiments[i].run_dir else {
                continue;
            };
            let job = format!("{}_{i}", sub.job_id);
            // Forgotten by Slurm (after its MinJobAge) counts as ended.
            let (state, exit) = states
                .get(&job)
                .cloned()
                .unwrap_or_else(|| ("UNKNOWN".into(), String::new()));
            if dir.join(METRICS_FILE).exists() || is_active(&state) {
                continue;
            }
            let log =
                std::fs::read(out.join("slurm").join(format!("{job}.out"))).unwrap_or_default();
            let mut error = error_line(&log);
            if error.is_empty() {
                error = format!("exit code {exit}, no log");
            }
            failures
                .0
                .insert(dir.display().to_string(), Failure { job, state, error });
        }
    }
    failures.save(out)
}

/// For `collect`: records the failures of the batch's tasks that have ended since it was
/// submitted (`--no-wait`); a Slurm that does not answer leaves the record as it was.
pub fn record_ended(plan: &Plan, out: &Path) -> Result<()> {
    let submissions = load_submissions(out)?;
    if submissions.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = submissions.iter().map(|s| s.job_id.as_str()).collect();
    let states = match task_states(&ids) {
        Ok(states) => states,
        Err(e) => {
            eprintln!("collect: cannot ask Slurm about the batch's tasks ({e:#}); using the failures recorded before");
            return Ok(());
        }
    };
    let mut failures = Failures::load(out)?;
    record_failures(plan, out, &submissions, &states, &mut failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_bash() {
        assert_eq!(quote("train.lr=0.01"), "train.lr=0.01");
        assert_eq!(quote("/a b/c.toml"), "'/a b/c.toml'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn the_script_runs_experiment_i_as_task_i_and_requeues_on_75() {
        let e = Experiment {
            config: "/c/mlp.toml".into(),
            backend: "flex".into(),
            seed: 1,
            overrides: vec!["train.lr=0.1".into()],
            run_dir: Ok("/r/runs/mlp-1".into()),
        };
        let args = SlurmArgs {
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            signal_before: 300,
            ..Default::default()
        };
        let dir = PathBuf::from("/r/runs/mlp-1");
        let script = job_script(
            Path::new("/bin/zoo"),
            Path::new("/home/me/zoo"),
            Path::new("/r"),
            &[(3, &e, &dir)],
            &args,
        );
        for line in [
            "#SBATCH --array=3",
            "#SBATCH --output=/r/slurm/%A_%a.out",
            "#SBATCH --chdir=/home/me/zoo",
            "#SBATCH --chdir=/home/me/zoo",
            "#SBATCH --signal=TERM@300",
            "#SBATCH --requeue",
            "#SBATCH --partition=gpu",
            "#SBATCH --gres=gpu:1",
            "3) args=(train /c/mlp.toml --backend flex --resume --out /r/runs/mlp-1 --set train.lr=0.1 --set train.seed=1) ;;",
            "srun /bin/zoo \"${args[@]}\"",
            "    scontrol requeue \"$SLURM_JOB_ID\"",
        ] {
            assert!(script.lines().any(|l| l == line), "no `{line}` in\n{script}");
        }
    }
}
