//! Throughput of one config on one backend: the data loader alone, training steps (the very
//! step `zoo train` takes: `train::train_step` on the image task, auxiliary heads, penalties
//! and augmentation included) and inference, in images per second, plus the process's peak
//! resident memory. `cargo xtask bench` runs this once per config and backend, each in its
//! own process.

use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::config::Experiment;
use crate::data::{prepare, PreparedData};
use crate::eval::{evaluate_on, ImageTask};
use crate::models::{ImageClassifier, KnnConfig, ModelConfig};
use crate::run::image_model;
use crate::train::{half_precision_step, on_pool, optimizer, train_step, LossScale};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    pub model: String,
    pub backend: String,
    pub batch_size: usize,
    /// Batches per second the loader alone delivers (decode, standardize, upload), as images/s.
    pub loader_samples_per_second: f64,
    /// Absent for kNN, which does not train.
    pub train_samples_per_second: Option<f64>,
    pub inference_batch_size: usize,
    pub inference_samples_per_second: f64,
    /// kNN only: seconds to predict the whole test split (fitting excluded).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub test_prediction_seconds: Option<f64>,
    /// Peak resident set size of the process (VmHWM), where the OS reports it.
    pub peak_memory_mib: Option<f64>,
}

/// How long `bench` times: `steps` training steps after `warmup` untimed ones and a quarter as
/// many inference batches, each clock running on through the same batches again until it has
/// run `min_seconds` (the MLP's 50 steps take about 50 ms: one stall of the host is then a
/// third of the window).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: usize,
    pub steps: usize,
    pub min_seconds: f64,
}

impl Timing {
    /// Whether a clock that has run `seconds` over `done` steps (or batches) of `asked` stops.
    fn done(&self, done: usize, asked: usize, seconds: f64) -> bool {
        done >= asked && seconds >= self.min_seconds
    }
}

/// Measures training and inference for as long as `timing` says.
pub fn bench(exp: &Experiment, backend: Backend, timing: Timing) -> anyhow::Result<BenchResult> {
    let Timing { warmup, steps, .. } = timing;
    let config = match &exp.model {
        ModelConfig::CharLm(_) => anyhow::bail!("zoo bench measures image models; a char-lm run reports its characters per second in metrics.json"),
        ModelConfig::Knn(knn) => return bench_knn(knn, exp, backend, steps),
        ModelConfig::Image(config) => config,
    };
    let device = backend.device();
    exp.train
        .precision
        .check(backend.name(), &device)
        .map_err(anyhow::Error::msg)?;
    let (data, loader_rate) = data_and_loader_rate(exp, &device, steps)?;
    let batch_size = exp.data.batch_size;

    // As `Trainer::fit` does: the model on the autodiff device in training mode, the
    // training loader (augmentation included), one `train_step` per batch.
    let ad = device.clone().autodiff();
    ad.seed(exp.train.seed);
    let (model, _) = image_model(config, exp, &device)?;
    let mut model = model.fork(&device).train();
    let mut optim = optimizer(&exp.train);
    let task = ImageTask { data: &data };
    let batches: Vec<_> = task
        .train_loader(batch_size, exp.train.seed, &ad)
        .iter()
        .take(warmup + steps)
        .collect::<Result<_, _>>()?;
    // An epoch may hold fewer batches than asked for: the rate counts the images trained on.
    // On rayon's pool as a whole, as `Trainer::fit` runs.
    let (model, train_rate) = on_pool(|| {
        let (mut started, mut trained) = (Instant::now(), 0);
        let mut scale = LossScale::default();
        for (i, batch) in batches.iter().cycle().cloned().enumerate() {
            if i == warmup {
                ad.sync().ok();
                started = Instant::now();
            }
            if i >= warmup {
                let seconds = started.elapsed().as_secs_f64();
                if timing.done(i - warmup, steps, seconds) {
                    break;
                }
                trained += batch.targets.dims()[0];
            }
            let lr = exp.train.lr;
            (model, _) = match exp.train.precision.half() {
                None => train_step(model, &mut optim, &task, batch, &exp.train, lr),
                Some(_) => {
                    let config = (&exp.train, lr);
                    half_precision_step(model, &mut optim, &task, batch, config, &mut scale)
                }
            };
        }
        ad.sync().ok();
        (model, trained as f64 / started.elapsed().as_secs_f64())
    });

    let eval_model = model.valid();
    let inference_batch = exp.data.eval_batch_size;
    let inference_batches = steps.div_ceil(4);
    let batches = plain_loader(&data, inference_batch, &device)
        .iter()
        .take(inference_batches + 1)
        .collect::<Result<Vec<_>, _>>()?;
    // Scores are read back to the host, as evaluation does; the first batch warms up.
    let infer = |batch: &datasets::ImageBatch| {
        eval_model
            .logits(batch.images.clone())
            .argmax(1)
            .into_data()
    };
    if let Some(first) = batches.first() {
        infer(first);
    }
    // The clock starts on an idle device and stops on one: a read of the scores does not wait
    // for all the work queued before it on wgpu (lavapipe read 4x the rate without these).
    device.sync().ok();
    let inference_rate = on_pool(|| {
        let (mut inferred, started) = (0, Instant::now());
        // A split of one batch times that batch again.
        let timed = batches
            .get(1..)
            .filter(|rest| !rest.is_empty())
            .unwrap_or(&batches);
        for (i, batch) in timed.iter().cycle().enumerate() {
            if timing.done(i, inference_batches, started.elapsed().as_secs_f64()) {
                break;
            }
            inferred += batch.targets.dims()[0];
            infer(batch);
        }
        device.sync().ok();
        inferred as f64 / started.elapsed().as_secs_f64()
    });

    Ok(BenchResult {
        model: exp.model.kind().into(),
        backend: backend.name().into(),
        batch_size,
        loader_samples_per_second: loader_rate,
        train_samples_per_second: Some(train_rate),
        inference_batch_size: inference_batch,
        inference_samples_per_second: inference_rate,
        test_prediction_seconds: None,
        peak_memory_mib: peak_memory_mib(),
    })
}

/// What `zoo bench --loader-only` measures: the training loader alone (decode, augmentation,
/// standardization, upload), as the trainer draws from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoaderBench {
    pub images_per_second: f64,
    pub batch_size: usize,
    /// Timed batches, after one untimed batch (the pipeline filling up).
    pub batches: usize,
    /// The threads that decode (rayon's pool).
    pub threads: usize,
    pub peak_memory_mib: Option<f64>,
}

/// Times `batches` batches of the experiment's training loader, after a first one.
pub fn bench_loader(
    exp: &Experiment,
    backend: Backend,
    batches: usize,
) -> anyhow::Result<LoaderBench> {
    let device = backend.device();
    let data = prepare(&exp.data, None)?;
    let task = ImageTask { data: &data };
    let loader = task.train_loader(exp.data.batch_size, exp.train.seed, &device);
    let mut iter = loader.iter();
    iter.next().transpose()?;
    let (mut images, started) = (0, Instant::now());
    for batch in iter.take(batches) {
        images += batch?.targets.dims()[0];
    }
    device.sync().ok();
    Ok(LoaderBench {
        images_per_second: images as f64 / started.elapsed().as_secs_f64(),
        batch_size: exp.data.batch_size,
        batches,
        threads: rayon::current_num_threads(),
        peak_memory_mib: peak_memory_mib(),
    })
}

/// kNN trains nothing: the time to predict the whole test split (fitting excluded).
fn bench_knn(
    knn: &KnnConfig,
    exp: &Experiment,
    backend: Backend,
    steps: usize,
) -> anyhow::Result<BenchResult> {
    let device = backend.device();
    exp.train
        .precision
        .check(backend.name(), &device)
        .map_err(anyhow::Error::msg)?;
    let (data, loader_rate) = data_and_loader_rate(exp, &device, steps)?;
    let model = knn.fit_on(&data, &device)?;
    let started = Instant::now();
    let evaluation = evaluate_on(&model, &data, &data.test, exp.data.eval_batch_size, &device)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(BenchResult {
        model: exp.model.kind().into(),
        backend: backend.name().into(),
        batch_size: exp.data.batch_size,
        loader_samples_per_second: loader_rate,
        train_samples_per_second: None,
        inference_batch_size: exp.data.eval_batch_size,
        inference_samples_per_second: evaluation.samples as f64 / seconds,
        test_prediction_seconds: Some(seconds),
        peak_memory_mib: peak_memory_mib(),
    })
}

/// The experiment's data, and the images per second its loader alone delivers (decode,
/// standardize, upload) over `4 * steps` training batches.
fn data_and_loader_rate(
    exp: &Experiment,
    device: &Device,
    steps: usize,
) -> anyhow::Result<(PreparedData, f64)> {
    let data = prepare(&exp.data, None)?;
    let started = Instant::now();
    let mut images = 0;
    for batch in plain_loader(&data, exp.data.batch_size, device)
        .iter()
        .take(steps * 4)
    {
        images += batch?.targets.dims()[0];
    }
    device.sync().ok();
    let rate = images as f64 / started.elapsed().as_secs_f64();
    Ok((data, rate))
}

/// The training split without augmentation, shuffled with seed 0, in batches on `device`.
fn plain_loader(
    data: &PreparedData,
    batch: usize,
    device: &Device,
) -> std::sync::Arc<dyn burn::data::dataloader::DataLoader<datasets::ImageBatch>> {
    data.train.loader(&data.batcher, batch, Some(0), device)
}

/// VmHWM from /proc/self/status (Linux), in MiB.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::Timing;

    #[test]
    fn a_clock_stops_only_after_the_asked_steps_and_the_minimum_time() {
        let timing = Timing {
            warmup: 5,
            steps: 50,
            min_seconds: 1.0,
        };
        assert!(!timing.done(49, 50, 3.0), "too few steps, however long");
        assert!(!timing.done(50, 50, 0.2), "too short a window");
        assert!(timing.done(50, 50, 1.0));
        let no_minimum = Timing {
            min_seconds: 0.0,
            ..timing
        };
        assert!(no_minimum.done(50, 50, 0.0));
    }
}
