//! The `zoo` command line: parses flags, picks the backend, and calls the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use zoo::backend::Backend;
use zoo::config::{Experiment, Override};
use zoo::interop::ImportOptions;
use zoo::models::ModelConfig;
use zoo::run;
use zoo::train::{StopFlag, TrainError};

#[derive(Parser)]
#[command(
    name = "zoo",
    version,
    about = "The textbook's neural networks, from TOML configs, on Burn"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Threads for the CPU backends' parallel ops, data loading included (default: one per
    /// core).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a config, then evaluate it on the test split.
    Train {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_enum, default_value_t = Backend::Flex)]
        backend: Backend,
        /// Number of epochs (overrides train.epochs).
        #[arg(long)]
        epochs: Option<usize>,
        /// Run directory (overrides output.dir; default runs/<config name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue from the run directory's newest checkpoint.
        #[arg(long)]
        resume: bool,
        /// Start from the weights of this run directory (trained or imported): fine-tuning.
        #[arg(long, value_name = "RUN_DIR")]
        init_from: Option<PathBuf>,
        /// Train data-parallel on this many devices of the backend (overrides train.devices).
        #[arg(long, value_name = "N")]
        devices: Option<usize>,
    },
    /// Load a PyTorch state_dict (.pth/.pt) or .safetensors file into a config's network and
    /// write a run directory (torchvision's layouts need no flags).
    Import {
        #[command(flatten)]
        config: ConfigArgs,
        /// The weights: `torch.save(model.state_dict(), PATH)` or a .safetensors file.
        weights: PathBuf,
        /// The run directory to write.
        #[arg(long)]
        out: PathBuf,
        /// Rename the file's keys by a regular expression before matching, e.g.
        /// --remap '^backbone\.=' (repeatable, applied in order; $1 refers to a group).
        #[arg(long, value_name = "PATTERN=REPLACEMENT")]
        remap: Vec<String>,
        /// Leave the parameters matching this pattern (PyTorch name or zoo path) at their
        /// initialization, e.g. --skip '^fc\.' for a head with another number of classes.
        #[arg(long, value_name = "PATTERN")]
        skip: Vec<String>,
    },
    /// Write a run's weights as .safetensors under PyTorch's names (torchvision's layout where
    /// it has one): `model.load_state_dict(safetensors.torch.load_file(OUT))`.
    Export {
        run_dir: PathBuf,
        /// The .safetensors file to write.
        out: PathBuf,
    },
    /// Classify image files (PNG, JPEG) or .npy arrays of float32 [N, C, H, W] with a run.
    ///
    /// The results print as each chunk of up to 64 inputs is computed.
    Predict {
        run_dir: PathBuf,
        /// Image files, .npy files, or directories: a directory stands for the .png, .jpg,
        /// .jpeg and .npy files below it (recursively), sorted by path.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Classes to show per input.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Print a JSON array: input, raw logits and the top classes of each.
        #[arg(long)]
        json: bool,
        #[arg(long, value_enum, default_value_t = Backend::Flex)]
        backend: Backend,
    },
    /// Re-evaluate a run's saved model on the test split.
    Eval {
        run_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = Backend::Flex)]
        backend: Backend,
    },
    /// k-fold cross-validation on the training split over swept values, e.g.
    /// `zoo cv knn.toml --folds 5 --set model.k=1,3,5,7,9`.
    Cv {
        /// The experiment file (TOML).
        config: PathBuf,
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// A key and its values to sweep, KEY=V1,V2,... (repeatable: every combination runs).
        #[arg(long = "set", value_name = "KEY=V1,V2,...")]
        set: Vec<String>,
        /// Directory of the dataset's files (overrides data.dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Backend::Flex)]
        backend: Backend,
    },
    /// Validate a config and build its model; trains nothing.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print the resolved config (TOML, every default filled in) instead of the report.
        #[arg(long)]
        print_config: bool,
    },
    /// The per-layer table: output shapes, parameters, multiply-accumulates.
    Summary {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure loader, training and inference throughput (used by `cargo xtask bench`).
    Bench {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_enum, default_value_t = Backend::Flex)]
        backend: Backend,
        /// Timed training steps (after 5 untimed ones).
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Past `--steps`, each clock (training, inference) runs on through the same batches
        /// until it has run this long.
        #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
        min_seconds: f64,
        /// Print JSON instead of a line of text.
        #[arg(long)]
        json: bool,
        /// Time the training loader alone (decode and transforms), `--steps` batches.
        #[arg(long)]
        loader_only: bool,
    },
    /// Generate text with a trained char-lm run.
    Sample {
        run_dir: PathBuf,
        /// Text to start from (every character must occur in the training text).
        #[arg(long)]
        prompt: String,
        /// Characters to generate.
        #[arg(long, default_value_t = 300)]
        length: usize,
        /// Softmax temperature: below 1 more conservative, above 1 more random.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = Backend::Flex)]
        backend: Backend,
    },
    /// Check runs' weights (final model and checkpoints) against the SHA-256 digests recorded
    /// when they were written; a batch's --out checks each of its runs. Loads no backend.
    Verify {
        /// Run directories, or directories holding runs (a batch's results).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Model kinds and shipped configs.
    List,
    /// The compiled backends and the devices each sees here (or why it sees none).
    Backends,
}

#[derive(Args)]
struct ConfigArgs {
    /// The experiment file (TOML).
    config: PathBuf,
    /// Directory of the dataset's files (overrides data.dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Override any config key, e.g. --set train.lr=0.01 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<Override>,
}

impl ConfigArgs {
    fn load(&self, extra: Vec<Override>) -> Result<Experiment> {
        let mut overrides = self.set.clone();
        if let Some(dir) = &self.data_dir {
            overrides.push(path_override("data.dir", dir));
        }
        overrides.extend(extra);
        Ok(Experiment::load(&self.config, &overrides)?)
    }
}

fn path_override(key: &str, path: &Path) -> Override {
    Override {
        key: key.into(),
        value: toml::Value::String(path.to_string_lossy().into_owned()),
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    // A bug must still end in one `error:` line, not a panic trace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        // `zoo list | head`: the reader left, which is no error of ours.
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", source_file(l.file()), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error{place}: {message}");
    }));
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| dispatch(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) if is_interrupted(&err) => {
            eprintln!("{err}");
            ExitCode::from(INTERRUPTED)
        }
        Ok(Err(err)) => {
            eprintln!("{}", error_lines(&err));
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::FAILURE,
    }
}

/// The error and its causes, one line each; a cause that an earlier line already says (a
/// wrapper that repeats its source's message) is not said again.
fn error_lines(err: &anyhow::Error) -> String {
    let mut lines = vec![format!("error: {err}")];
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !lines.iter().any(|line| line.contains(&cause)) {
            lines.push(format!("  caused by: {cause}"));
        }
    }
    lines.join("\n")
}

/// A source file as a panic names it, from its crate's folder: a dependency's file is an
/// absolute path into the cargo registry of the machine that built zoo.
fn source_file(file: &str) -> &str {
    const REGISTRY: &str = "/registry/src/";
    match file.find(REGISTRY) {
        // `<registry>/src/index.crates.io-<hash>/<crate>-<version>/src/...`
        Some(at) => {
            let under = &file[at + REGISTRY.len()..];
            under
                .split_once('/')
                .map_or(under, |(_, crate_file)| crate_file)
        }
        None => file,
    }
}

/// Has glibc's allocator keep freed memory for the next allocation instead of handing it back
/// to the system: every step allocates tensors of the same sizes, and on fresh pages each of
/// their 4 KiB pages costs a page fault (the MLP inferred 8-13 % faster with this, and steadily).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of the allocator's thresholds, before any thread starts.
    unsafe {
        // Blocks up to 32 MiB (glibc's largest threshold) from the heap, not from mmap...
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        // ...and the heap's free top kept up to 1 GiB.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// `zoo train`'s exit status when a signal stopped it after a checkpoint: `--resume` continues
/// the run (BSD's EX_TEMPFAIL, "try again later"; job scripts requeue on it).
const INTERRUPTED: u8 = 75;

fn is_interrupted(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<TrainError>(),
            Some(TrainError::Interrupted { .. })
        )
    })
}

/// SIGTERM (what Slurm sends before cancelling, preempting or a time limit), SIGINT (Ctrl-C)
/// and SIGHUP set the returned flag: training checkpoints after its current step and stops.
/// A second signal ends the process at once, with 128 + the signal's number; every file zoo
/// writes is renamed into place only when complete, so nothing is left half-written.
fn stop_on_signals() -> Result<StopFlag> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let stop = StopFlag::default();
    for signal in [SIGTERM, SIGINT, SIGHUP] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(stop)
}

fn dispatch(cli: Cli) -> Result<()> {
    if let Some(threads) = cli.threads {
        anyhow::ensure!(threads > 0, "--threads must be at least 1");
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("--threads: setting up the thread pool")?;
    }
    match cli.command {
        Command::Train {
            config,
            backend,
            epochs,
            out,
            resume,
            init_from,
            devices,
        } => {
            backend.make_default()?;
            let mut extra = Vec::new();
            for (key, value) in [("train.epochs", epochs), ("train.devices", devices)] {
                if let Some(n) = value {
                    extra.push(Override {
                        key: key.into(),
                        value: toml::Value::Integer(n as i64),
                    });
                }
            }
            if let Some(out) = &out {
                extra.push(path_override("output.dir", out));
            }
            let exp = config.load(extra)?;
            let stop = Some(stop_on_signals()?);
            run::train(&exp, backend, resume, init_from.as_deref(), stop)?;
        }
        Command::Import {
            config,
            weights,
            out,
            remap,
            skip,
        } => {
            Backend::Flex.make_default()?;
            let exp = config.load(vec![path_override("output.dir", &out)])?;
            let options = ImportOptions::parse(&remap, &skip)?;
            run::import(&exp, &weights, &options)?;
        }
        Command::Export { run_dir, out } => {
            Backend::Flex.make_default()?;
            run::export(&run_dir, &out)?;
        }
        Command::Predict {
            run_dir,
            inputs,
            top,
            json,
            backend,
        } => {
            backend.make_default()?;
            let predictor = zoo::predict::Predictor::load(&run_dir, backend)?;
            let stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let mut writer =
                zoo::predict::PredictionWriter::new(stdout, predictor.class_names(), top, json);
            let printed = predictor
                .predict(&inputs, |chunk| Ok(writer.write(chunk)?))
                .and_then(|()| Ok(writer.finish()?));
            // `zoo predict DIR | head`: the reader left, which is no error of ours.
            let reader_left = printed.as_ref().is_err_and(|err| {
                err.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if !reader_left {
                printed?;
            }
        }
        Command::Eval { run_dir, backend } => {
            backend.make_default()?;
            run::eval(&run_dir, backend)?;
        }
        Command::Cv {
            config,
            folds,
            set,
            data_dir,
            backend,
        } => {
            backend.make_default()?;
            let combos = zoo::cv::expand_sweeps(&set).map_err(anyhow::Error::msg)?;
            let base: Vec<Override> = data_dir
                .iter()
                .map(|d| path_override("data.dir", d))
                .collect();
            let rows = zoo::cv::cross_validate(&config, &base, &combos, folds, backend)?;
            println!("{}", zoo::cv::to_table(&rows, folds));
        }
        Command::Check {
            config,
            print_config,
        } => {
            Backend::Flex.make_default()?;
            let exp = config.load(Vec::new())?;
            if print_config {
                print!("{}", exp.to_toml());
            } else {
                println!("{}", run::check(&exp)?);
            }
        }
        Command::Summary { config, json } => {
            let summary = run::summarize(&config.load(Vec::new())?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!("{}", summary.to_table());
            }
        }
        Command::Bench {
            config,
            backend,
            steps,
            min_seconds,
            json,
            loader_only,
        } => {
            backend.make_default()?;
            let exp = config.load(Vec::new())?;
            if loader_only {
                let r = zoo::bench::bench_loader(&exp, backend, steps)?;
                match json {
                    true => println!("{}", serde_json::to_string(&r)?),
                    false => println!(
                        "loader: {:.0} images/s (batch {}, {} decoding threads)",
                        r.images_per_second, r.batch_size, r.threads
                    ),
                }
                return Ok(());
            }
            anyhow::ensure!(
                min_seconds.is_finite() && min_seconds >= 0.0,
                "--min-seconds: expected a number of seconds >= 0, got {min_seconds}"
            );
            let timing = zoo::bench::Timing {
                warmup: 5,
                steps,
                min_seconds,
            };
            let r = zoo::bench::bench(&exp, backend, timing)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{} on {}: loader {:.0} images/s, train {} images/s (batch {}), inference {:.0} images/s (batch {}){}, peak memory {}",
                    r.model,
                    r.backend,
                    r.loader_samples_per_second,
                    r.train_samples_per_second.map_or("-".into(), |v| format!("{v:.0}")),
                    r.batch_size,
                    r.inference_samples_per_second,
                    r.inference_batch_size,
                    r.test_prediction_seconds.map_or(String::new(), |s| format!(", whole test split predicted in {s:.1}s")),
                    r.peak_memory_mib.map_or("n/a".into(), |m| format!("{m:.0} MiB"))
                );
            }
        }
        Command::Sample {
            run_dir,
            prompt,
            length,
            temperature,
            seed,
            backend,
        } => {
            backend.make_default()?;
            zoo::lm::sample(&run_dir, &prompt, length, temperature, seed, backend)?;
        }
        Command::Backends => {
            for backend in Backend::ALL {
                match backend.describe_devices() {
                    Ok(devices) => {
                        println!("{backend}:");
                        for device in devices {
                            println!("  {device}");
                        }
                    }
                    Err(reason) => println!("{backend}: unavailable: {reason}"),
                }
            }
        }
        Command::Verify { paths } => verify(&paths)?,
        Command::List => {
            println!("model kinds: {}", ModelConfig::kinds().join(", "));
            let dir = Path::new("configs");
            let dir = if dir.is_dir() {
                dir.to_path_buf()
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
            };
            println!("shipped configs ({}):", dir.display());
            for path in run::list_configs(&dir) {
                println!("  {}", path.display());
            }
        }
    }
    Ok(())
}

/// `zoo verify`: a report per run; fails when a file is damaged or no run is found.
fn verify(paths: &[PathBuf]) -> Result<()> {
    let (mut runs, mut damaged_runs, mut damaged_files) = (0, 0, 0);
    for path in paths {
        let found = zoo::verify::find_runs(path);
        anyhow::ensure!(
            !found.is_empty(),
            "{}: no run directory there (none holds a config.toml)",
            path.display()
        );
        for run_dir in found {
            let report = zoo::verify::verify_run(&run_dir);
            for line in report.lines() {
                println!("{line}");
            }
            runs += 1;
            damaged_files += report.damaged.len();
            damaged_runs += usize::from(!report.damaged.is_empty());
        }
    }
    anyhow::ensure!(
        damaged_files == 0,
        "damaged files: {damaged_files}, in {damaged_runs} of {runs} runs; `zoo train CONFIG --resume --out RUN` continues a run from its newest undamaged checkpoint"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_that_repeats_an_earlier_line_is_said_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("x.png: not an image")]
        struct Decode;
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        struct Wrapper(#[source] Decode);
        let err = anyhow::Error::new(Wrapper(Decode)).context("cannot load the dataset");
        assert_eq!(
            error_lines(&err),
            "error: cannot load the dataset\n  caused by: x.png: not an image"
        );
        let err = anyhow::Error::new(Wrapper(Decode));
        assert_eq!(error_lines(&err), "error: x.png: not an image");
    }

    #[test]
    fn a_panics_place_names_no_folder_of_the_build_machine() {
        let registry = "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/burn-flex-0.22.1/src/ops.rs";
        assert_eq!(source_file(registry), "burn-flex-0.22.1/src/ops.rs");
        assert_eq!(source_file("zoo/src/run.rs"), "zoo/src/run.rs");
    }
}
