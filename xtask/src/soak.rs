//! `cargo xtask soak`: thousands of training steps of a small config, then a `zoo predict`
//! stream over thousands of PNG files, each run as a child process whose resident memory, open
//! files and run directory's size are sampled over time. Writes `bench/results/soak.json`, from
//! which docs/reliability.md's soak table and docs/images/soak.svg are rendered.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use datasets::folder::FolderStyle;
use datasets::{DatasetKind, Split, DEFAULT_FASHION_MNIST_DIR};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use zoo::summary::group_digits;

use crate::common::{workspace_root, zoo_binary};
use crate::folder::write_test_images;
use crate::records::{self, Provenance, Record};

/// The config trained, then predicted with.
const CONFIG: &str = "configs/fashion-mnist/mlp.toml";
/// The training batch (the config's own, set explicitly so that steps can be counted).
const BATCH_SIZE: usize = 64;
/// Images of `data.train_limit` held out for validation each epoch.
const VALIDATION_IMAGES: usize = 640;
/// Test images evaluated once, after the last epoch.
const TEST_IMAGES: usize = 1_000;
/// The first share of a phase's samples at work is warm-up: left out of its summary.
const WARMUP_FRACTION: f64 = 0.1;
/// The spread of steady resident memory under which a phase counts as flat.
const FLAT_PERCENT: f64 = 5.0;

#[derive(clap::Args)]
pub struct Args {
    /// Epochs of the training phase (200 of 100 steps: 20,000 steps).
    #[arg(long, default_value_t = 200)]
    epochs: usize,
    /// data.train_limit: the training images, 640 of them held out for validation (7,040 make
    /// 100 steps of 64 an epoch).
    #[arg(long, default_value_t = 7_040)]
    train_limit: usize,
    /// PNG files the predict phase classifies (at most 10,000: Fashion-MNIST's test split).
    #[arg(long, default_value_t = 10_000)]
    predict_files: usize,
    /// Times their directory is given to the one `zoo predict`: each pass classifies every
    /// file again, so the stream lasts seconds, not a fraction of one.
    #[arg(long, default_value_t = 20)]
    predict_passes: usize,
    /// Milliseconds between two samples.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Keep the run as `bench/results/soak.json` and regenerate docs/reliability.md's soak
    /// table and docs/images/soak.svg from it (without: the table is printed only).
    #[arg(long)]
    record: bool,
    /// Where Fashion-MNIST's IDX files are.
    #[arg(long, default_value = DEFAULT_FASHION_MNIST_DIR)]
    data_dir: PathBuf,
}

/// The record: both phases, their samples and their summaries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Soak {
    /// The config trained and predicted with, from the workspace root.
    pub config: String,
    /// Seconds between two samples.
    pub interval_seconds: f64,
    /// The share of each phase's first samples left out of its summary.
    pub warmup_fraction: f64,
    /// The PNG files of the predict phase, and how many times they were classified.
    pub predict_files: usize,
    pub predict_passes: usize,
    pub training: Phase,
    pub predict: Phase,
}

/// One child process, watched from start to end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    /// What it got through: training steps, or inputs classified.
    pub done: usize,
    /// `steps` or `inputs`.
    pub unit: String,
    /// From its start to its exit.
    pub seconds: f64,
    pub summary: Summary,
    pub samples: Vec<Sample>,
}

/// The process and its run directory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Since the process started.
    pub seconds: f64,
    /// Resident memory (`VmRSS`).
    pub rss_kib: u64,
    /// Entries of `/proc/PID/fd`.
    pub open_files: usize,
    /// The run directory's files, in bytes.
    pub run_dir_bytes: u64,
    /// Steps or files done so far, as the process's output shows them.
    pub progress: usize,
}

/// A phase's steady samples: after its warm-up and before its wind-down (from the report of
/// its last step or input on: training's test evaluation and final writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub samples: usize,
    pub warmup_samples: usize,
    /// The samples summarized, after the warm-up's; the rest are the wind-down's.
    pub steady_samples: usize,
    pub rss_mib_min: f64,
    pub rss_mib_max: f64,
    pub rss_mib_median: f64,
    /// (max - min) / median of resident memory, in percent.
    pub rss_spread_percent: f64,
    pub open_files_min: usize,
    pub open_files_max: usize,
    /// Whether the fewest open files in the last quarter of these samples exceed the fewest in
    /// their first quarter: a leak raises that floor, a file open for a moment does not.
    pub open_files_grew: bool,
    /// Over the whole phase.
    pub rss_mib_peak: f64,
    /// Over the whole phase.
    pub run_dir_bytes_max: u64,
}

/// The record's name under `bench/results/`.
pub const RECORD: &str = "soak";

/// The plot's file, from the workspace root.
pub const PLOT: &str = "docs/images/soak.svg";

/// Runs both phases and prints their table; returns whether a record was written (`--record`).
pub fn run(args: &Args) -> Result<bool> {
    anyhow::ensure!(
        args.train_limit > VALIDATION_IMAGES,
        "--train-limit {}: expected more than the {VALIDATION_IMAGES} validation images",
        args.train_limit
    );
    let root = workspace_root();
    let test_set = DatasetKind::FashionMnist
        .load(&args.data_dir, Split::Test)
        .with_context(|| {
            format!(
                "Fashion-MNIST is not readable in {}: install it with `sudo apt-get install \
                 dataset-fashion-mnist`, or pass --data-dir",
                args.data_dir.display()
            )
        })?;
    let zoo = zoo_binary(&root)?;
    let work = WorkDir::new()?;
    let run_dir = work.0.join("run");
    let images = work.0.join("images");
    let interval = Duration::from_millis(args.interval_ms.max(1));

    let steps_per_epoch = (args.train_limit - VALIDATION_IMAGES).div_ceil(BATCH_SIZE);
    eprintln!(
        "soak: training {CONFIG}, {} epochs of {steps_per_epoch} steps",
        args.epochs
    );
    let mut train = Command::new(&zoo);
    train
        .current_dir(&root)
        .arg("train")
        .arg(CONFIG)
        .arg("--out")
        .arg(&run_dir)
        .arg("--data-dir")
        .arg(&args.data_dir)
        .args(["--epochs", &args.epochs.to_string()]);
    for (key, value) in [
        ("data.train_limit", args.train_limit),
        ("data.val_size", VALIDATION_IMAGES),
        ("data.test_limit", TEST_IMAGES),
        ("data.batch_size", BATCH_SIZE),
    ] {
        train.args(["--set", &format!("{key}={value}")]);
    }
    let training = watch(
        &mut train,
        &run_dir,
        interval,
        Progress::Epochs { steps_per_epoch },
    )
    .context("the training phase failed")?;

    let predict_files = args.predict_files.min(test_set.len());
    let predict_passes = args.predict_passes.max(1);
    eprintln!(
        "soak: writing {predict_files} PNG files, then classifying them {predict_passes} times"
    );
    let style = FolderStyle {
        width: test_set.width as u32,
        height: test_set.height as u32,
        jpeg_quality: None,
        colour: false,
        seed: 0,
    };
    write_test_images(&test_set, args.predict_files, &images, &style)?;
    let mut predict = Command::new(&zoo);
    predict
        .current_dir(&root)
        .arg("predict")
        .arg(&run_dir)
        .args(std::iter::repeat_n(&images, predict_passes))
        .args(["--top", "1"]);
    let predict = watch(&mut predict, &run_dir, interval, Progress::Inputs)
        .context("the predict phase failed")?;

    let soak = Soak {
        config: CONFIG.into(),
        interval_seconds: interval.as_secs_f64(),
        warmup_fraction: WARMUP_FRACTION,
        predict_files,
        predict_passes,
        training,
        predict,
    };
    println!("{}", markdown(&soak));
    for (name, phase) in [("training", &soak.training), ("predict", &soak.predict)] {
        for problem in problems(&phase.summary) {
            eprintln!("soak: {name}: {problem}");
        }
    }
    if !args.record {
        return Ok(false);
    }
    let record = Record {
        provenance: Provenance::now(&root, records::this_command()),
        rows: soak,
    };
    let file = records::save(&root, RECORD, &record)?;
    eprintln!("soak: wrote {}", file.display());
    Ok(true)
}

/// A scratch folder for the run directory and the images, removed when done.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("zoo-soak-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where a phase's progress shows.
#[derive(Clone, Copy)]
enum Progress {
    /// `zoo train`'s stderr: one `epoch N/M ...` line per epoch when it is not a terminal.
    Epochs { steps_per_epoch: usize },
    /// `zoo predict`'s stdout: a line naming each input, then its indented classes.
    Inputs,
}

/// Runs `command` to its end, sampling it every `interval`.
fn watch(
    command: &mut Command,
    run_dir: &Path,
    interval: Duration,
    progress: Progress,
) -> Result<Phase> {
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run zoo")?;
    let done = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&done);
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let stdout = drain(stdout.expect("piped"), move |line| {
        if matches!(progress, Progress::Inputs) && !line.starts_with(' ') {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let counter = Arc::clone(&done);
    let stderr = drain(stderr.expect("piped"), move |line| {
        if let (Progress::Epochs { steps_per_epoch }, Some(epoch)) = (progress, epochs_done(line)) {
            counter.store(epoch * steps_per_epoch, Ordering::Relaxed);
        }
    });
    let mut samples = Vec::new();
    let status = loop {
        // Sleeping first: right after the spawn /proc shows the process before it runs zoo.
        std::thread::sleep(interval);
        if let Some(status) = child.try_wait()? {
            break status;
        }
        // The process may end between the check and the reads: that sample is left out.
        if let Some((rss_kib, open_files)) = process_state(child.id()) {
            samples.push(Sample {
                seconds: start.elapsed().as_secs_f64(),
                rss_kib,
                open_files,
                run_dir_bytes: dir_bytes(run_dir),
                progress: done.load(Ordering::Relaxed),
            });
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let _ = stdout.join();
    let stderr_tail = stderr.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "zoo exited with {status}: {}",
            stderr_tail.last().map_or("", String::as_str)
        );
    }
    let done = done.load(Ordering::Relaxed);
    let summary = summarize(&samples, done).ok_or_else(|| {
        anyhow!("no sample was taken while zoo was at work: raise --epochs or --predict-passes")
    })?;
    Ok(Phase {
        done,
        unit: match progress {
            Progress::Epochs { .. } => "steps".into(),
            Progress::Inputs => "inputs".into(),
        },
        seconds,
        summary,
        samples,
    })
}

/// Reads `stream` to its end on a thread (a full pipe would stop the child), handing each
/// line to `on_line`; the thread returns the last few lines, for an error message.
fn drain(
    stream: impl Read + Send + 'static,
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut last = Vec::new();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            on_line(&line);
            if last.len() == 5 {
                last.remove(0);
            }
            last.push(line);
        }
        last
    })
}

/// The epochs an `epoch N/M ...` progress line says are done.
fn epochs_done(line: &str) -> Option<usize> {
    let (done, _) = line.strip_prefix("epoch ")?.split_once('/')?;
    done.parse().ok()
}

/// Resident memory in KiB and the count of open files of process `pid`; `None` once it is gone.
fn process_state(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((vm_rss_kib(&status)?, open_files))
}

/// `VmRSS` of a `/proc/PID/status` text, in KiB.
fn vm_rss_kib(status: &str) -> Option<u64> {
    let value = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    value.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// The bytes of the files below `dir`; files the trainer removes meanwhile count as gone.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The summary of a phase's `samples` that got through `done` steps or inputs; `None` when no
/// sample was taken before the last of them was reported.
fn summarize(samples: &[Sample], done: usize) -> Option<Summary> {
    let at_work = samples.iter().take_while(|s| s.progress < done).count();
    let last = at_work.checked_sub(1)?;
    let warmup_samples = ((at_work as f64 * WARMUP_FRACTION).ceil() as usize).min(last);
    let after = &samples[warmup_samples..at_work];
    let mib = |s: &Sample| s.rss_kib as f64 / 1024.0;
    let mut rss: Vec<f64> = after.iter().map(mib).collect();
    rss.sort_by(f64::total_cmp);
    let median = match rss.len() % 2 {
        1 => rss[rss.len() / 2],
        _ => (rss[rss.len() / 2 - 1] + rss[rss.len() / 2]) / 2.0,
    };
    let (min, max) = (rss[0], rss[rss.len() - 1]);
    let files = after.iter().map(|s| s.open_files);
    let quarter = after.len().div_ceil(4);
    let fewest = |part: &[Sample]| part.iter().map(|s| s.open_files).min();
    Some(Summary {
        samples: samples.len(),
        warmup_samples,
        steady_samples: after.len(),
        rss_mib_min: min,
        rss_mib_max: max,
        rss_mib_median: median,
        rss_spread_percent: 100.0 * (max - min) / median,
        open_files_min: files.clone().min()?,
        open_files_max: files.max()?,
        open_files_grew: fewest(&after[after.len() - quarter..]) > fewest(&after[..quarter]),
        rss_mib_peak: samples.iter().map(mib).fold(0.0, f64::max),
        run_dir_bytes_max: samples.iter().map(|s| s.run_dir_bytes).max()?,
    })
}

/// What keeps a phase from counting as flat, if anything.
fn problems(summary: &Summary) -> Vec<String> {
    let mut found = Vec::new();
    if summary.rss_spread_percent > FLAT_PERCENT {
        found.push(format!(
            "resident memory spread {:.1}% ({:.1}-{:.1} MiB), more than {FLAT_PERCENT}%",
            summary.rss_spread_percent, summary.rss_mib_min, summary.rss_mib_max
        ));
    }
    if summary.open_files_grew {
        found.push(format!(
            "open files grew ({}-{})",
            summary.open_files_min, summary.open_files_max
        ));
    }
    found
}

/// The table of both phases.
pub fn markdown(soak: &Soak) -> String {
    let mut out = String::from(
        "| phase | work | duration | resident memory, steady | spread | open files, steady | run directory (max) | flat |\n|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let predict_work = format!(
        "{} files, {} passes",
        group_digits(soak.predict_files),
        soak.predict_passes
    );
    for (name, phase, work) in [
        (
            format!("training `{}`", soak.config),
            &soak.training,
            String::new(),
        ),
        (
            "`zoo predict` on a directory".to_string(),
            &soak.predict,
            format!(" ({predict_work})"),
        ),
    ] {
        let s = &phase.summary;
        let files = match s.open_files_min == s.open_files_max {
            true => s.open_files_min.to_string(),
            false => format!("{}-{}", s.open_files_min, s.open_files_max),
        };
        let problems = problems(s);
        let flat = match problems.is_empty() {
            true => "yes".to_string(),
            false => format!("no: {}", problems.join("; ")),
        };
        out += &format!(
            "| {name} | {} {}{work} | {} | {:.1}-{:.1} MiB | {:.1}% | {files} | {:.1} MiB | {flat} |\n",
            group_digits(phase.done),
            phase.unit,
            duration(phase.seconds),
            s.rss_mib_min,
            s.rss_mib_max,
            s.rss_spread_percent,
            s.run_dir_bytes_max as f64 / (1024.0 * 1024.0),
        );
    }
    out += &format!(
        "\nSampled every {:.2} s. Steady: after the warm-up (the first {:.0}% of a phase's samples) \
         and before the wind-down (from the report of the last step or input on: training's test \
         evaluation and final writes). Flat: steady resident memory within {FLAT_PERCENT}% of \
         its median from lowest to highest, and no more open files at the end than at the start.\n",
        soak.interval_seconds,
        100.0 * soak.warmup_fraction
    );
    out
}

/// `42 s`, or `3 min 05 s`.
fn duration(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    match whole < 120 {
        true => format!("{whole} s"),
        false => format!("{} min {:02} s", whole / 60, whole % 60),
    }
}

/// The plot as SVG: resident memory and open files over time, a panel per phase.
pub fn plot_svg(soak: &Soak) -> Result<String> {
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (900, 640)).into_drawing_area();
        area.fill(&WHITE).map_err(err)?;
        let panels = area.split_evenly((2, 1));
        let titles = [
            format!(
                "training {}: {} steps",
                soak.config,
                group_digits(soak.training.done)
            ),
            format!(
                "zoo predict: {} inputs ({} PNG files, {} passes)",
                group_digits(soak.predict.done),
                group_digits(soak.predict_files),
                soak.predict_passes
            ),
        ];
        for ((panel, title), phase) in panels
            .iter()
            .zip(&titles)
            .zip([&soak.training, &soak.predict])
        {
            draw_phase(panel, title, phase)?;
        }
        area.present().map_err(err)?;
    }
    Ok(svg)
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the soak plot: {e}")
}

/// One phase: resident memory (left axis) and open files (right axis) against seconds, with
/// the end of the warm-up marked.
fn draw_phase<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    phase: &Phase,
) -> Result<()> {
    let seconds = phase.seconds.max(1e-3);
    // From zero, so that a flat line looks as flat as it is.
    let rss_top = 1.2 * phase.summary.rss_mib_peak.max(1.0);
    let files_top = 1.5
        * phase
            .samples
            .iter()
            .map(|s| s.open_files)
            .max()
            .unwrap_or(1) as f64;
    let files_top = files_top.ceil();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .right_y_label_area_size(60)
        .build_cartesian_2d(0.0..seconds, 0.0..rss_top)
        .map_err(err)?
        .set_secondary_coord(0.0..seconds, 0.0..files_top);
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("seconds")
        .y_desc("resident memory (MiB)")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    chart
        .configure_secondary_axes()
        .y_desc("open files")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    // The samples the summary leaves out, shaded: the warm-up and the wind-down.
    let summary = &phase.summary;
    let steady = &phase.samples[summary.warmup_samples..][..summary.steady_samples];
    if let (Some(first), Some(last)) = (steady.first(), steady.last()) {
        let shade = BLACK.mix(0.08).filled();
        chart
            .draw_series([
                Rectangle::new([(0.0, 0.0), (first.seconds, rss_top)], shade),
                Rectangle::new([(last.seconds, 0.0), (seconds, rss_top)], shade),
            ])
            .map_err(err)?
            .label("warm-up and wind-down (not summarized)")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], shade));
    }
    let rss = phase
        .samples
        .iter()
        .map(|s| (s.seconds, s.rss_kib as f64 / 1024.0));
    chart
        .draw_series(LineSeries::new(rss, BLUE.stroke_width(2)))
        .map_err(err)?
        .label("resident memory (MiB, left)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let files = phase
        .samples
        .iter()
        .map(|s| (s.seconds, s.open_files as f64));
    chart
        .draw_secondary_series(LineSeries::new(files, RED.stroke_width(2)))
        .map_err(err)?
        .label("open files (right)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seconds: f64, rss_mib: u64, open_files: usize) -> Sample {
        Sample {
            seconds,
            rss_kib: rss_mib * 1024,
            open_files,
            run_dir_bytes: seconds as u64,
            progress: seconds as usize,
        }
    }

    #[test]
    fn progress_and_memory_lines_are_read() {
        let line = "epoch 12/50  lr 1.00e-3  train loss 0.4000 acc 0.8600  val loss 0.4 acc 0.85 top-5 0.99  1.2s  5000 samples/s";
        assert_eq!(epochs_done(line), Some(12));
        assert_eq!(epochs_done("run directory: runs/mlp"), None);
        let status = "Name:\tzoo\nVmPeak:\t  300000 kB\nVmRSS:\t  123456 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_kib(status), Some(123_456));
        assert_eq!(vm_rss_kib("Name:\tzoo\n"), None);
    }

    #[test]
    fn the_summary_leaves_the_warm_up_and_the_wind_down_out() {
        // Ten samples at work (progress 0-9 of 10), the first (10%) warm-up with less memory
        // and fewer files; then the wind-down, with memory handed back.
        let mut samples = vec![sample(0.0, 10, 3)];
        samples.extend((1..10).map(|i| sample(i as f64, if i % 2 == 0 { 104 } else { 100 }, 5)));
        samples.push(sample(10.0, 50, 5));
        let summary = summarize(&samples, 10).unwrap();
        assert_eq!(
            (
                summary.samples,
                summary.warmup_samples,
                summary.steady_samples
            ),
            (11, 1, 9)
        );
        assert_eq!((summary.rss_mib_min, summary.rss_mib_max), (100.0, 104.0));
        assert_eq!(
            (summary.rss_mib_median, summary.rss_mib_peak),
            (100.0, 104.0)
        );
        assert!((summary.rss_spread_percent - 4.0).abs() < 1e-9);
        assert_eq!((summary.open_files_min, summary.open_files_max), (5, 5));
        assert_eq!(summary.run_dir_bytes_max, 10);
        assert!(problems(&summary).is_empty());

        // A file open for a moment is no growth; more memory and a higher floor of files are.
        samples[5].open_files = 6;
        assert!(problems(&summarize(&samples, 10).unwrap()).is_empty());
        samples.truncate(10);
        samples.extend((10..14).map(|i| sample(i as f64, 120, 6)));
        let problems = problems(&summarize(&samples, 14).unwrap());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(summarize(&[], 0).is_none());
        assert!(summarize(&[sample(5.0, 1, 1)], 5).is_none());
        assert_eq!(summarize(&[sample(0.0, 1, 1)], 5).unwrap().samples, 1);
    }

    #[test]
    fn durations_read_as_minutes_past_two() {
        assert_eq!(duration(42.4), "42 s");
        assert_eq!(duration(185.0), "3 min 05 s");
    }
}
