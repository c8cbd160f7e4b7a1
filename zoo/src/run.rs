//! What the CLI's subcommands do, as library calls: train a config into a run directory,
//! re-evaluate a run, and describe a config.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::prelude::*;
use datasets::Standardization;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::config::Experiment;
use crate::data::{self, PreparedData};
use crate::eval::{evaluate, evaluate_on, Evaluation};
use crate::fsutil::write_atomic;
use crate::models::{KnnClassifier, KnnConfig, Model, ModelConfig};
use crate::summary::Summary;
use crate::train::{load_module, module_bytes, EpochRecord, ImageTask, Trainer};

pub const CONFIG_FILE: &str = "config.toml";
pub const NORMALIZATION_FILE: &str = "normalization.json";
pub const MODEL_FILE: &str = "model.bpk";
pub const METRICS_FILE: &str = "metrics.json";

/// `metrics.json`: what a finished run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    pub model: String,
    pub dataset: String,
    pub backend: String,
    /// Trainable parameters (batch-norm running statistics excluded).
    pub params: usize,
    pub buffers: usize,
    pub macs_per_example: usize,
    pub epochs: usize,
    pub stopped_early: bool,
    pub epoch_seconds: Vec<f64>,
    pub train_samples_per_second: f64,
    pub history: Vec<EpochRecord>,
    pub class_names: Vec<String>,
    /// Seconds the test-set evaluation took (for kNN: the whole prediction).
    pub test_seconds: f64,
    /// The validation split's evaluation where no epoch history carries it (kNN).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub validation: Option<Evaluation>,
    pub test: Evaluation,
}

/// The summary of a config's model at the input its data implies.
pub fn summarize(exp: &Experiment) -> Summary {
    let input = exp.input;
    Summary::new(exp.model.kind(), input, exp.model.layers(&input))
}

/// Trains `exp` on `backend` into its run directory and evaluates it on the test split.
pub fn train(exp: &Experiment, backend: Backend, resume: bool) -> Result<()> {
    if let ModelConfig::CharLm(config) = &exp.model {
        crate::lm::train(exp, config, backend, resume)?;
        return Ok(());
    }
    let run_dir = exp.run_dir();
    prepare_run_dir(exp, &run_dir, resume)?;
    let data = data::prepare(&exp.data, None).context("cannot load the dataset")?;
    save_json(
        &run_dir.join(NORMALIZATION_FILE),
        &data.batcher.standardization,
    )?;
    write_atomic(&run_dir.join(CONFIG_FILE), exp.to_toml().as_bytes())
        .with_context(|| format!("cannot write {}", run_dir.join(CONFIG_FILE).display()))?;
    let summary = summarize(exp);
    eprintln!(
        "training {} ({} trainable parameters) on {} with {}: {} train / {} validation / {} test images",
        exp.model.kind(),
        crate::summary::group_digits(summary.total_params),
        exp.data.dataset.name(),
        backend,
        data.train.len(),
        data.val.len(),
        data.test.len()
    );
    let device = backend.device();
    let mut metrics = Metrics {
        model: exp.model.kind().into(),
        dataset: exp.data.dataset.name().into(),
        backend: backend.name().into(),
        params: summary.total_params,
        buffers: summary.total_buffers,
        macs_per_example: summary.total_macs,
        epochs: 0,
        stopped_early: false,
        epoch_seconds: Vec::new(),
        train_samples_per_second: 0.0,
        history: Vec::new(),
        class_names: data.class_names.clone(),
        test_seconds: 0.0,
        validation: None,
        test: Evaluation::default(),
    };
    let started = Instant::now();
    if let ModelConfig::Knn(knn) = &exp.model {
        let model = fit_knn(knn, &data, &device);
        metrics.validation = Some(evaluate_on(
            &model,
            &data,
            &data.val,
            exp.data.eval_batch_size,
            &device,
        ));
        let test_started = Instant::now();
        metrics.test = test_evaluation(&model, &data, exp, &device);
        metrics.test_seconds = test_started.elapsed().as_secs_f64();
        eprintln!(
            "fitted and evaluated in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    } else {
        device.seed(exp.train.seed);
        let model = exp.model.init(&data.input, &device);
        let trainer = Trainer::for_experiment(exp, &run_dir, device.clone());
        let outcome = trainer.fit(model, &ImageTask { data: &data }, resume)?;
        let model_bytes = module_bytes(&outcome.model).map_err(anyhow::Error::msg)?;
        write_atomic(&run_dir.join(MODEL_FILE), &model_bytes)
            .with_context(|| format!("cannot write {}", run_dir.join(MODEL_FILE).display()))?;
        let test_started = Instant::now();
        metrics.test = test_evaluation(&outcome.model, &data, exp, &device);
        metrics.test_seconds = test_started.elapsed().as_secs_f64();
        metrics.train_samples_per_second = outcome.state.train_examples_per_second();
        metrics.stopped_early = outcome.state.stopped_early;
        let history = outcome.state.history;
        metrics.epochs = history.len();
        metrics.epoch_seconds = history.iter().map(|r| r.seconds).collect();
        metrics.history = history;
    }
    save_json(&run_dir.join(METRICS_FILE), &metrics)?;
    println!("{}", metrics.test.to_table(&metrics.class_names));
    println!("run directory: {}", run_dir.display());
    Ok(())
}

/// kNN's "training": the standardized training split, stored on the device.
pub fn fit_knn(config: &KnnConfig, data: &PreparedData, device: &Device) -> KnnClassifier {
    let rows = config.block_rows();
    let blocks = (0..data.train.len())
        .step_by(rows)
        .map(|start| {
            let items = (start..(start + rows).min(data.train.len()))
                .map(|i| data.train.get(i).expect("in-memory"))
                .collect();
            data.batcher.batch(items, device).images.flatten(1, 3)
        })
        .collect();
    config.fit(
        blocks,
        data.train.labels().collect(),
        data.input.num_classes,
    )
}

fn test_evaluation<M: crate::models::ImageClassifier>(
    model: &M,
    data: &PreparedData,
    exp: &Experiment,
    device: &Device,
) -> Evaluation {
    evaluate_on(model, data, &data.test, exp.data.eval_batch_size, device)
}

/// Refuses to overwrite a run by accident, and to resume one with a different config.
pub(crate) fn prepare_run_dir(exp: &Experiment, run_dir: &Path, resume: bool) -> Result<()> {
    let has_checkpoint = crate::checkpoint::latest(run_dir)
        .with_context(|| format!("cannot read {}", run_dir.display()))?
        .is_some();
    let saved = run_dir.join(CONFIG_FILE);
    let finished = run_dir.join(MODEL_FILE).exists() || run_dir.join(METRICS_FILE).exists();
    if !resume && (has_checkpoint || finished) {
        bail!(
            "{} already holds a run; pass --resume to continue it, or --out DIR to start a new one",
            run_dir.display()
        );
    }
    if resume && saved.exists() {
        let text = std::fs::read_to_string(&saved)
            .with_context(|| format!("cannot read {}", saved.display()))?;
        let mut before = Experiment::parse(&text, &saved.display().to_string(), &[])?;
        // More (or fewer) epochs is the one change a resumed run may make.
        before.train.epochs = exp.train.epochs;
        if before.to_toml() != exp.to_toml() {
            bail!(
                "{} was trained with a different config (see {}); resume with the same config, or start a new run with --out DIR",
                run_dir.display(),
                saved.display()
            );
        }
    }
    std::fs::create_dir_all(run_dir).with_context(|| format!("cannot create {}", run_dir.display()))
}

pub(crate) fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).expect("metrics serialize");
    write_atomic(path, &text).with_context(|| format!("cannot write {}", path.display()))
}

/// A run directory's resolved config.
pub fn load_run_config(run_dir: &Path) -> Result<Experiment> {
    let config_path = run_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "{} is not a run directory (no {CONFIG_FILE})",
            run_dir.display()
        )
    })?;
    Ok(Experiment::parse(
        &text,
        &config_path.display().to_string(),
        &[],
    )?)
}

/// A finished run's config and trained network, on `device`.
pub fn load_trained(run_dir: &Path, device: &Device) -> Result<(Experiment, Model)> {
    let exp = load_run_config(run_dir)?;
    let model_path = run_dir.join(MODEL_FILE);
    if !model_path.exists() {
        bail!("{} has no trained model yet ({MODEL_FILE}); finish the run with `zoo train CONFIG --resume`", run_dir.display());
    }
    let input = exp.input;
    let model = load_module(exp.model.init(&input, device), &model_path)?;
    Ok((exp, model))
}

/// Re-evaluates a finished run on the test split, with the standardization saved with it
/// (kNN, which saves no weights, is fitted again from the training split).
pub fn eval(run_dir: &Path, backend: Backend) -> Result<()> {
    let device = backend.device();
    let exp = load_run_config(run_dir)?;
    if let ModelConfig::CharLm(_) = exp.model {
        crate::lm::eval(run_dir, backend)?;
        return Ok(());
    }
    let norm_path = run_dir.join(NORMALIZATION_FILE);
    let standardization: Standardization = serde_json::from_str(
        &std::fs::read_to_string(&norm_path)
            .with_context(|| format!("cannot read {}", norm_path.display()))?,
    )
    .with_context(|| format!("{}: not a standardization", norm_path.display()))?;
    let evaluation = if let ModelConfig::Knn(knn) = &exp.model {
        let data =
            data::prepare(&exp.data, Some(standardization)).context("cannot load the dataset")?;
        test_evaluation(&fit_knn(knn, &data, &device), &data, &exp, &device)
    } else {
        let (_, model) = load_trained(run_dir, &device)?;
        let dir = exp.data.resolved_dir().unwrap_or_default();
        let test = data::load_test(&exp.data, &dir).context("cannot load the dataset")?;
        let batcher = datasets::ImageBatcher::new(standardization, test.set())
            .with_resize(data::resize_of(&exp.data));
        let num_classes = exp.input.num_classes;
        evaluate(
            &model,
            &test,
            &batcher,
            exp.data.eval_batch_size,
            num_classes,
            &device,
        )
    };
    println!("{}", evaluation.to_table(&data::class_names(&exp.data)));
    Ok(())
}

/// `zoo check`: the config is valid and the model builds; returns a one-paragraph report.
pub fn check(exp: &Experiment) -> Result<String> {
    let summary = summarize(exp);
    let built = match &exp.model {
        ModelConfig::Knn(_) => summary.total_params, // stores data, builds no network
        ModelConfig::CharLm(c) => c
            .init(summary.input.num_classes, &Backend::Flex.device())
            .num_params(),
        _ => exp
            .model
            .init(&summary.input, &Backend::Flex.device())
            .num_params(),
    };
    if built != summary.total_params + summary.total_buffers {
        bail!(
            "internal: the built {} has {built} parameters but the summary counts {} (+ {} buffers)",
            exp.model.kind(),
            summary.total_params,
            summary.total_buffers
        );
    }
    let i = summary.input;
    let data = match &exp.data.text {
        Some(path) => format!(
            "{} (windows of {} characters, {} distinct characters)",
            path.display(),
            i.height,
            i.num_classes
        ),
        None => format!(
            "{} ({}x{}x{}, {} classes)",
            exp.data.dataset.name(),
            i.channels,
            i.height,
            i.width,
            i.num_classes
        ),
    };
    Ok(format!(
        "ok: {} on {data}: {} trainable parameters, {} buffers, {} multiply-accumulates per example; run directory {}",
        exp.model.kind(),
        crate::summary::group_digits(summary.total_params),
        crate::summary::group_digits(summary.total_buffers),
        crate::summary::group_digits(summary.total_macs),
        exp.run_dir().display()
    ))
}

/// Shipped configs under `dir`, sorted.
pub fn list_configs(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "toml")
                && std::fs::read_to_string(&p).is_ok_and(|t| t.contains("[model]"))
            {
                // An experiment has a [model]; other TOML (references.toml) is data.
                found.push(p);
            }
        }
    }
    found.sort();
    found
}
