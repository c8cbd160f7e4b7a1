//! What the CLI's subcommands do for image models, as library calls: train a config into a
//! run directory, re-evaluate a run, and describe a config. The char-lm's runs are in `lm`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::prelude::*;
use datasets::{DatasetKind, Standardization};

use crate::backend::Backend;
use crate::checkpoint::weights_digest;
use crate::config::Experiment;
use crate::data::{self, image_input, Normalize, PreparedData};
use crate::eval::{evaluate, evaluate_on, Evaluation, ImageTask};
use crate::interop::{self, ImportOptions};
use crate::models::{ImageModel, ImageModelConfig, ModelConfig};
use crate::run_dir::{self, Metrics, METRICS_FILE, NORMALIZATION_FILE};
use crate::summary::{group_digits, Summary};
use crate::train::StopFlag;

/// The summary of a config's model at the input its data implies (for the char-lm, this
/// reads its text to learn the vocabulary).
pub fn summarize(exp: &Experiment) -> Result<Summary> {
    let input = image_input(&exp.data);
    Ok(match &exp.model {
        ModelConfig::Image(config) => image_model(config, exp, &Backend::Flex.device())?.1,
        ModelConfig::Knn(config) => config.summary(&input),
        ModelConfig::CharLm(config) => crate::lm::build(exp, config, &Backend::Flex.device())?.1,
    })
}

/// The network of an image config with fresh weights, and its table.
pub fn image_model(
    config: &ImageModelConfig,
    exp: &Experiment,
    device: &Device,
) -> Result<(ImageModel, Summary)> {
    let input = image_input(&exp.data);
    config
        .build(&input, device)
        .map_err(|e| anyhow::anyhow!("{}.{}: {}", e.section.unwrap_or("model"), e.key, e.message))
}

/// Trains `exp` on `backend` into its run directory and evaluates it on the test split,
/// starting an image classifier from the weights of the run `init_from` (fine-tuning) when
/// given. Setting `stop` checkpoints and returns `TrainError::Interrupted`.
pub fn train(
    exp: &Experiment,
    backend: Backend,
    resume: bool,
    init_from: Option<&Path>,
    stop: Option<StopFlag>,
) -> Result<()> {
    if !matches!(exp.model, ModelConfig::Knn(_)) {
        let precision = exp.train.precision;
        precision
            .check(backend.name(), &backend.device())
            .map_err(anyhow::Error::msg)?;
    }
    if let (Some(dir), false) = (init_from, matches!(exp.model, ModelConfig::Image(_))) {
        anyhow::bail!(
            "--init-from {}: a {} model starts from no saved weights",
            dir.display(),
            exp.model.kind()
        );
    }
    let eval_batch = exp.data.eval_batch_size;
    match &exp.model {
        ModelConfig::CharLm(config) => {
            crate::lm::train(exp, config, backend, resume, stop).map(|_| ())
        }
        ModelConfig::Knn(knn) => classify(exp, backend, resume, |data, device, metrics| {
            let started = Instant::now();
            let model = knn.fit_on(data, device)?;
            metrics.validation = Some(evaluate_on(&model, data, &data.val, eval_batch, device)?);
            let test_started = Instant::now();
            metrics.test = evaluate_on(&model, data, &data.test, eval_batch, device)?;
            metrics.test_seconds = test_started.elapsed().as_secs_f64();
            let seconds = started.elapsed().as_secs_f64();
            eprintln!("fitted and evaluated in {seconds:.1}s");
            Ok(())
        }),
        ModelConfig::Image(config) => classify(exp, backend, resume, |data, device, metrics| {
            device.seed(exp.train.seed);
            let (mut model, _) = image_model(config, exp, device)?;
            if let Some(dir) = init_from {
                model = run_dir::load_model(dir, model).with_context(|| {
                    format!(
                        "--init-from {}: its weights do not fit this config's network",
                        dir.display()
                    )
                })?;
            }
            let run_dir = exp.run_dir();
            let devices = backend.devices(exp.train.devices);
            let outcome = exp.trainer(&run_dir, devices).stop_on(stop).fit(
                model,
                &ImageTask { data },
                resume,
            )?;
            run_dir::save_model(&run_dir, &outcome.model)?;
            let started = Instant::now();
            metrics.test = evaluate_on(&outcome.model, data, &data.test, eval_batch, device)?;
            metrics.test_seconds = started.elapsed().as_secs_f64();
            metrics.weights_digest = Some(weights_digest(&outcome.model));
            metrics.train_samples_per_second = outcome.state.train_examples_per_second();
            metrics.stopped_early = outcome.state.stopped_early;
            metrics.epochs = outcome.state.history.len();
            metrics.epoch_seconds = outcome.state.history.iter().map(|r| r.seconds).collect();
            metrics.history = outcome.state.history;
            Ok(())
        }),
    }
}

/// What every image classifier's run does around `learn` (which trains or fits the model and
/// fills in its test evaluation): the run directory, the data, and `metrics.json`.
fn classify(
    exp: &Experiment,
    backend: Backend,
    resume: bool,
    learn: impl FnOnce(&PreparedData, &Device, &mut Metrics) -> Result<()>,
) -> Result<()> {
    let run_dir = exp.run_dir();
    let _lock = run_dir::prepare(exp, &run_dir, resume)?;
    let data = data::prepare(&exp.data, None).context("cannot load the dataset")?;
    run_dir::save_json(&run_dir, NORMALIZATION_FILE, &data.batcher.standardization)?;
    let summary = summarize(exp)?;
    let devices = match exp.train.devices {
        1 => String::new(),
        n => format!(" ({n} devices, data-parallel)"),
    };
    eprintln!(
        "training {} ({} trainable parameters) on {} with {backend}{devices}: {} train / {} validation / {} test images",
        exp.model.kind(),
        group_digits(summary.total_params),
        exp.data.dataset.name(),
        data.train.len(),
        data.val.len(),
        data.test.len()
    );
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
        weights_digest: None,
    };
    learn(&data, &backend.device(), &mut metrics)?;
    // Validation and test may be one folder (no test/): a file counts once.
    let skipped: std::collections::BTreeSet<_> = [&data.train, &data.val, &data.test]
        .iter()
        .flat_map(|s| s.skipped())
        .collect();
    if !skipped.is_empty() {
        eprintln!(
            "skipped {} unreadable image files in all (data.skip_bad_images)",
            skipped.len()
        );
    }
    run_dir::save_json(&run_dir, METRICS_FILE, &metrics)?;
    println!("{}", metrics.test.to_table(&metrics.class_names));
    println!("run directory: {}", run_dir.display());
    Ok(())
}

/// `zoo import`: checks a PyTorch weights file against `exp`'s network, then writes a run
/// directory that `zoo eval`, `zoo predict`, `zoo export` and `zoo train --init-from` take: the
/// resolved config, `model.bpk` and the normalization (torchvision's ImageNet mean and std for
/// ImageNet-shaped and folder configs unless `normalize = "none"`, else what training would
/// fit). Nothing is written when the file does not fit.
pub fn import(exp: &Experiment, weights: &Path, options: &ImportOptions) -> Result<()> {
    let config = image_config(exp, "import")?;
    let device = Backend::Flex.device();
    let input = image_input(&exp.data);
    let (model, summary) = image_model(config, exp, &device)?;
    let (model, imported) =
        interop::load_pytorch(model, &config.pytorch_layout(&input), weights, options)?;
    let standardization = match (exp.data.dataset, exp.data.normalize) {
        // What training on the folders would use: ImageNet's statistics, unless normalize = "none".
        (DatasetKind::Imagenet | DatasetKind::ImageFolder, _) => {
            data::folder_standardization(&exp.data)
        }
        (_, Normalize::None) => Standardization::identity(input.channels),
        (_, Normalize::Standardize) => {
            data::prepare(&exp.data, None)
                .context("cannot load the dataset to fit the normalization (--set data.normalize=none skips it)")?
                .batcher
                .standardization
        }
    };
    let run_dir = exp.run_dir();
    let _lock = run_dir::prepare(exp, &run_dir, false)?;
    run_dir::save_json(&run_dir, NORMALIZATION_FILE, &standardization)?;
    run_dir::save_model(&run_dir, &model)?;
    let skipped = match imported.skipped.len() {
        0 => String::new(),
        n => format!(
            ", {n} left at their initialization ({})",
            imported.skipped.join(", ")
        ),
    };
    println!(
        "imported {} tensors from {} into {} ({} parameters){skipped}\nrun directory: {}",
        imported.loaded,
        weights.display(),
        exp.model.kind(),
        group_digits(summary.total_params),
        run_dir.display()
    );
    Ok(())
}

/// `zoo export`: a run's weights as safetensors under PyTorch's names.
pub fn export(run_dir: &Path, out: &Path) -> Result<()> {
    let device = Backend::Flex.device();
    let (exp, model) = load_trained(run_dir, &device)?;
    let config = image_config(&exp, "export")?;
    let layout = config.pytorch_layout(&image_input(&exp.data));
    let written = interop::save_pytorch(&model, &layout, out)?;
    println!("wrote {written} tensors to {}", out.display());
    Ok(())
}

/// The image classifier's config of `exp`, or the error for a kNN or char-lm run.
fn image_config<'e>(exp: &'e Experiment, command: &str) -> Result<&'e ImageModelConfig> {
    match &exp.model {
        ModelConfig::Image(config) => Ok(config),
        other => anyhow::bail!(
            "`zoo {command}` takes an image classifier; {} has no PyTorch weights",
            other.kind()
        ),
    }
}

/// A finished image run's config and trained network, on `device`.
pub fn load_trained(run_dir: &Path, device: &Device) -> Result<(Experiment, ImageModel)> {
    let exp = run_dir::load_config(run_dir)?;
    let ModelConfig::Image(config) = &exp.model else {
        anyhow::bail!(
            "{} is a {} run, which saves no network",
            run_dir.display(),
            exp.model.kind()
        );
    };
    let (model, _) = image_model(config, &exp, device)?;
    let model = run_dir::load_model(run_dir, model)?;
    Ok((exp, model))
}

/// Re-evaluates a finished run on the test split, with the standardization saved with it
/// (kNN, which saves no weights, is fitted again from the training split).
pub fn eval(run_dir: &Path, backend: Backend) -> Result<()> {
    let device = backend.device();
    let exp = run_dir::load_config(run_dir)?;
    let standardization: Standardization = match &exp.model {
        ModelConfig::CharLm(_) => return crate::lm::eval(run_dir, backend).map(|_| ()),
        _ => run_dir::load_json(run_dir, NORMALIZATION_FILE)?,
    };
    let evaluation = match &exp.model {
        ModelConfig::Knn(knn) => {
            let data = data::prepare(&exp.data, Some(standardization))
                .context("cannot load the dataset")?;
            let model = knn.fit_on(&data, &device)?;
            evaluate_on(&model, &data, &data.test, exp.data.eval_batch_size, &device)?
        }
        _ => {
            let (_, model) = load_trained(run_dir, &device)?;
            let dir = exp.data.resolved_dir().unwrap_or_default();
            let test = data::load_test(&exp.data, &dir).context("cannot load the dataset")?;
            evaluate(
                &model,
                &test,
                &data::batcher(&exp.data, standardization),
                exp.data.eval_batch_size,
                image_input(&exp.data).num_classes,
                &device,
            )?
        }
    };
    println!("{}", evaluation.to_table(&data::class_names(&exp.data)));
    Ok(())
}

/// `zoo check`: the config is valid and the model builds; returns a one-paragraph report.
pub fn check(exp: &Experiment) -> Result<String> {
    let device = Backend::Flex.device();
    let (summary, built) = match &exp.model {
        ModelConfig::Image(config) => {
            let (model, summary) = image_model(config, exp, &device)?;
            (summary, model.num_params())
        }
        // kNN stores data and builds no network.
        ModelConfig::Knn(config) => {
            let summary = config.summary(&image_input(&exp.data));
            let total = summary.total_params;
            (summary, total)
        }
        ModelConfig::CharLm(config) => {
            let (model, summary) = crate::lm::build(exp, config, &device)?;
            (summary, model.num_params())
        }
    };
    // The table and the module come from one walk; this guards the walk itself.
    anyhow::ensure!(
        built == summary.total_params + summary.total_buffers,
        "the built {} network has {built} parameters but its summary counts {} (+ {} buffers); this is a bug in zoo, please report it",
        exp.model.kind(),
        summary.total_params,
        summary.total_buffers
    );
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
        group_digits(summary.total_params),
        group_digits(summary.total_buffers),
        group_digits(summary.total_macs),
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
