//! The shared trainer: any `ImageClassifier`, any device. It is a plain loop over Burn's
//! autodiff, optimizers and data loader rather than burn-train's `SupervisedTraining`, because
//! burn-train restarts its loader's shuffle and the device RNG on resume (a resumed run could
//! not match an uninterrupted one), writes checkpoints in place, and has no reduce-on-plateau.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdaGradConfig, AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, RmsPropConfig,
    SgdConfig,
};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use datasets::ImageBatch;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, MODEL_FILE, OPTIM_FILE, STATE_FILE};
use crate::config::Experiment;
use crate::config::{OptimizerKind, ScheduleKind, TrainConfig};
use crate::data::PreparedData;
use crate::eval::evaluate_on;
use crate::losses::weight_penalty;
use crate::models::ImageClassifier;
use crate::schedule::{learning_rate, PlateauState};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("training diverged in epoch {epoch}: the loss is {loss}; lower train.lr or set train.clip_grad_norm")]
    Diverged { epoch: usize, loss: f64 },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_top5: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// Training images per second over the training pass alone.
    pub train_samples_per_second: f64,
    pub train_samples: usize,
}

impl EpochRecord {
    /// Seconds spent in the training pass (validation excluded).
    pub fn seconds_training(&self) -> f64 {
        self.train_samples as f64 / self.train_samples_per_second.max(1e-9)
    }
}

/// Everything besides weights and optimizer state that a resumed run needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    pub history: Vec<EpochRecord>,
    pub plateau: PlateauState,
    pub best_val_loss: Option<f64>,
    pub epochs_since_best: usize,
    pub stopped_early: bool,
}

impl TrainState {
    /// Training examples per second over every epoch's training pass (validation excluded).
    pub fn train_examples_per_second(&self) -> f64 {
        let seconds: f64 = self.history.iter().map(EpochRecord::seconds_training).sum();
        let examples: usize = self.history.iter().map(|r| r.train_samples).sum();
        examples as f64 / seconds.max(1e-9)
    }
}

/// The trained model (in eval mode) and its history.
pub struct TrainOutcome<M> {
    pub model: M,
    pub state: TrainState,
}

/// A seed per epoch, so shuffling and dropout after a resume repeat the uninterrupted run's.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed
        ^ (epoch as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

/// Burn's optimizer for the config, with PyTorch's defaults where Burn's differ
/// (momentum dampening 0, epsilon 1e-8 / 1e-10, AdamW decay 1e-2, RMSProp momentum 0).
pub fn build_optimizer(c: &TrainConfig) -> ModuleOptimizer {
    let decay = |default: f64| {
        let w = c.weight_decay.unwrap_or(default);
        (w > 0.0).then(|| WeightDecayConfig::new(w as f32))
    };
    let clip = c
        .clip_grad_norm
        .map(|v| GradientClippingConfig::Norm(v as f32))
        .or(c
            .clip_grad_value
            .map(|v| GradientClippingConfig::Value(v as f32)));
    let eps = c.eps.unwrap_or(1e-8) as f32;
    let momentum = |nesterov| MomentumConfig {
        momentum: c.momentum.unwrap_or(0.9),
        dampening: 0.0,
        nesterov,
    };
    match c.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_weight_decay(decay(0.0))
            .with_gradient_clipping(clip)
            .init(),
        OptimizerKind::Momentum | OptimizerKind::Nesterov => SgdConfig::new()
            .with_momentum(Some(momentum(c.optimizer == OptimizerKind::Nesterov)))
            .with_weight_decay(decay(0.0))
            .with_gradient_clipping(clip)
            .init(),
        OptimizerKind::Adam => AdamConfig::new()
            .with_beta_1(c.betas[0] as f32)
            .with_beta_2(c.betas[1] as f32)
            .with_epsilon(eps)
            .with_weight_decay(decay(0.0))
            .with_grad_clipping(clip)
            .init(),
        OptimizerKind::Adamw => AdamWConfig::new()
            .with_beta_1(c.betas[0] as f32)
            .with_beta_2(c.betas[1] as f32)
            .with_epsilon(eps)
            .with_weight_decay(c.weight_decay.unwrap_or(1e-2) as f32)
            .with_grad_clipping(clip)
            .init(),
        OptimizerKind::Rmsprop => RmsPropConfig::new()
            .with_alpha(c.alpha as f32)
            .with_momentum(c.momentum.unwrap_or(0.0) as f32)
            .with_epsilon(eps)
            .with_weight_decay(decay(0.0))
            .with_grad_clipping(clip)
            .init(),
        OptimizerKind::Adagrad => AdaGradConfig::new()
            .with_epsilon(c.eps.unwrap_or(1e-10) as f32)
            .with_weight_decay(decay(0.0))
            .with_grad_clipping(clip)
            .init(),
    }
}

/// Saves a module's weights as burnpack bytes.
pub fn module_bytes<M: Module>(model: &M) -> Result<Vec<u8>, String> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| e.to_string())?;
    Ok(bytes.to_vec())
}

/// Every float parameter and buffer of a module, in visiting order, on the host: for
/// comparing weights (burnpack files also hold parameter ids, which differ between runs).
pub fn parameter_values<M: Module>(model: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(
                param
                    .val()
                    .try_into_vec_as::<f32>()
                    .expect("float parameters"),
            );
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// Loads burnpack weights from `path` into `model` (keeping its device).
pub fn load_module<M: Module>(model: M, path: &Path) -> Result<M, TrainError> {
    let fail = |message: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    let record =
        ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| fail(e.to_string()))?;
    model
        .try_load_record(record)
        .map_err(|e| fail(format!("does not match this model: {e}")))
}

/// What one training batch gave: the loss to minimize and how many predictions it made
/// (images, or characters for a language model), how many were right, and how many
/// examples (images, text windows) the batch held.
pub struct BatchLoss {
    pub loss: Tensor<1>,
    pub predictions: usize,
    pub correct: usize,
    pub examples: usize,
}

/// Loss, accuracy and top-5 accuracy on the validation split.
pub struct Validation {
    pub loss: f64,
    pub accuracy: f64,
    pub top5: f64,
}

/// What the trainer needs from a task, whatever its data: a shuffled training loader, the
/// loss of one batch, and a validation pass. Images and text each implement it once.
pub trait Task<M> {
    type Batch: Send + 'static;

    /// The training split, shuffled with `seed`, in batches on `device`.
    fn train_loader(
        &self,
        batch_size: usize,
        seed: u64,
        device: &Device,
    ) -> Arc<dyn DataLoader<Self::Batch>>;

    fn batch_loss(&self, model: &M, batch: Self::Batch) -> BatchLoss;

    /// Evaluates `model` (in eval mode) on the validation split.
    fn validate(&self, model: &M, batch_size: usize, device: &Device) -> Validation;
}

/// Image classification: any `ImageClassifier` on a `PreparedData`.
pub struct ImageTask<'a> {
    pub data: &'a PreparedData,
}

impl<M: ImageClassifier> Task<M> for ImageTask<'_> {
    type Batch = ImageBatch;

    fn train_loader(
        &self,
        batch_size: usize,
        seed: u64,
        device: &Device,
    ) -> Arc<dyn DataLoader<ImageBatch>> {
        let batcher = self.data.batcher.augmented(&self.data.augmentation, seed);
        DataLoaderBuilder::new(batcher)
            .batch_size(batch_size)
            .shuffle(seed)
            .set_device(device.clone())
            .build(self.data.train.clone())
    }

    fn batch_loss(&self, model: &M, batch: ImageBatch) -> BatchLoss {
        let n = batch.targets.dims()[0];
        let (logits, loss) = model.training_loss(batch.images, batch.targets.clone());
        let correct = logits
            .argmax(1)
            .squeeze_dim::<1>(1)
            .equal(batch.targets)
            .int()
            .sum()
            .into_scalar::<i64>();
        BatchLoss {
            loss,
            predictions: n,
            correct: correct as usize,
            examples: n,
        }
    }

    fn validate(&self, model: &M, batch_size: usize, device: &Device) -> Validation {
        let data = self.data;
        let e = evaluate_on(model, data, &data.val, batch_size, device);
        Validation {
            loss: e.loss.expect("trained models define a loss"),
            accuracy: e.accuracy,
            top5: e.top5,
        }
    }
}

/// One training run's settings, apart from the model and data.
pub struct Trainer<'a> {
    pub config: &'a TrainConfig,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub run_dir: &'a Path,
    /// The device to train on (autodiff is switched on here).
    pub device: Device,
}

impl<'a> Trainer<'a> {
    /// The trainer for `exp`'s `[train]` and batch sizes, checkpointing into `run_dir`.
    pub fn for_experiment(exp: &'a Experiment, run_dir: &'a Path, device: Device) -> Self {
        Trainer {
            config: &exp.train,
            batch_size: exp.data.batch_size,
            eval_batch_size: exp.data.eval_batch_size,
            run_dir,
            device,
        }
    }

    /// Trains `model` (built on `self.device`), resuming from the newest checkpoint if
    /// `resume`; returns the final model in eval mode.
    pub fn fit<M: Module, T: Task<M>>(
        &self,
        model: M,
        task: &T,
        resume: bool,
    ) -> Result<TrainOutcome<M>, TrainError> {
        let device = self.device.clone().autodiff();
        // `train()` moves the parameters onto the autodiff device with gradients tracked.
        let mut model = model.fork(&self.device).train();
        let mut optim = build_optimizer(self.config);
        let mut state = TrainState::default();
        if resume {
            if let Some((_, dir)) =
                checkpoint::latest(self.run_dir).map_err(io_error(self.run_dir))?
            {
                model = load_module(model, &dir.join(MODEL_FILE))?;
                let optim_path = dir.join(OPTIM_FILE);
                let bytes = std::fs::read(&optim_path).map_err(io_error(&optim_path))?;
                optim = optim
                    .from_bytes(Bytes::from_bytes_vec(bytes))
                    .map_err(|e| TrainError::Checkpoint {
                        path: optim_path.clone(),
                        message: e.to_string(),
                    })?;
                let state_path = dir.join(STATE_FILE);
                let text = std::fs::read_to_string(&state_path).map_err(io_error(&state_path))?;
                state = serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
                    path: state_path.clone(),
                    message: e.to_string(),
                })?;
                eprintln!(
                    "resuming after epoch {} from {}",
                    state.epochs_done,
                    dir.display()
                );
            }
        }
        let epochs = self.config.epochs;
        let mut progress = Progress::new();
        while state.epochs_done < epochs && !state.stopped_early {
            let epoch = state.epochs_done;
            let lr = learning_rate(
                &self.config.schedule,
                self.config.lr,
                epoch,
                epochs,
                &state.plateau,
            );
            let seed = epoch_seed(self.config.seed, epoch);
            device.seed(seed);
            let loader = task.train_loader(self.batch_size, seed, &device);
            let total = loader.num_items();
            let started = Instant::now();
            let (mut loss_sum, mut correct, mut seen, mut examples) =
                (0f64, 0usize, 0usize, 0usize);
            for batch in loader.iter() {
                let batch = batch.expect("in-memory datasets do not fail");
                let step = task.batch_loss(&model, batch);
                let mut loss = step.loss;
                if let Some(penalty) = weight_penalty(&model, self.config.l1, self.config.l2) {
                    loss = loss + penalty;
                }
                loss_sum += loss.clone().into_scalar::<f64>() * step.predictions as f64;
                correct += step.correct;
                seen += step.predictions;
                examples += step.examples;
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
                progress.batch(
                    epoch + 1,
                    epochs,
                    examples,
                    total,
                    loss_sum / seen as f64,
                    correct as f64 / seen as f64,
                );
            }
            let train_seconds = started.elapsed().as_secs_f64();
            let val = task.validate(&model.valid(), self.eval_batch_size, &self.device);
            let record = EpochRecord {
                epoch: epoch + 1,
                lr,
                train_loss: loss_sum / seen.max(1) as f64,
                train_accuracy: correct as f64 / seen.max(1) as f64,
                val_loss: val.loss,
                val_accuracy: val.accuracy,
                val_top5: val.top5,
                seconds: started.elapsed().as_secs_f64(),
                train_samples_per_second: examples as f64 / train_seconds.max(1e-9),
                train_samples: examples,
            };
            progress.epoch(&record, epochs);
            if !(record.train_loss.is_finite() && record.val_loss.is_finite()) {
                let loss = if record.train_loss.is_finite() {
                    record.val_loss
                } else {
                    record.train_loss
                };
                return Err(TrainError::Diverged {
                    epoch: record.epoch,
                    loss,
                });
            }
            if self.config.schedule.kind == ScheduleKind::Plateau {
                state.plateau.observe(val.accuracy, &self.config.schedule);
            }
            if state
                .best_val_loss
                .is_none_or(|best| record.val_loss < best)
            {
                state.best_val_loss = Some(record.val_loss);
                state.epochs_since_best = 0;
            } else {
                state.epochs_since_best += 1;
            }
            if let Some(patience) = self.config.early_stopping_patience {
                if state.epochs_since_best >= patience {
                    state.stopped_early = true;
                    eprintln!(
                        "early stopping: validation loss has not improved for {patience} epochs"
                    );
                }
            }
            state.history.push(record);
            state.epochs_done = epoch + 1;
            self.save_checkpoint(&model, &optim, &state)?;
        }
        Ok(TrainOutcome {
            model: model.valid(),
            state,
        })
    }

    fn save_checkpoint<M: Module>(
        &self,
        model: &M,
        optim: &ModuleOptimizer,
        state: &TrainState,
    ) -> Result<(), TrainError> {
        let fail = |message: String| TrainError::Checkpoint {
            path: self.run_dir.join("checkpoints"),
            message,
        };
        let model_bytes = module_bytes(model).map_err(fail)?;
        let optim_bytes = optim.into_bytes().map_err(|e| fail(e.to_string()))?;
        let state_json = serde_json::to_vec_pretty(state).expect("state serializes");
        checkpoint::save(
            self.run_dir,
            state.epochs_done,
            &[
                (MODEL_FILE, &model_bytes),
                (OPTIM_FILE, &optim_bytes),
                (STATE_FILE, &state_json),
            ],
        )
        .map_err(io_error(self.run_dir))?;
        Ok(())
    }
}

/// Progress on stderr: a live bar when stderr is a terminal, otherwise one line per epoch.
struct Progress {
    live: bool,
    last_draw: Instant,
}

impl Progress {
    fn new() -> Self {
        Self {
            live: std::io::stderr().is_terminal(),
            last_draw: Instant::now(),
        }
    }

    fn batch(
        &mut self,
        epoch: usize,
        epochs: usize,
        seen: usize,
        total: usize,
        loss: f64,
        accuracy: f64,
    ) {
        if !self.live || (self.last_draw.elapsed().as_millis() < 100 && seen < total) {
            return;
        }
        self.last_draw = Instant::now();
        let width = 30;
        let filled = width * seen / total.max(1);
        eprint!(
            "\r\x1b[2Kepoch {epoch}/{epochs} [{}{}] {seen}/{total}  loss {loss:.4}  acc {accuracy:.4}",
            "=".repeat(filled),
            " ".repeat(width - filled)
        );
        let _ = std::io::stderr().flush();
    }

    fn epoch(&mut self, r: &EpochRecord, epochs: usize) {
        if self.live {
            eprint!("\r\x1b[2K");
        }
        eprintln!(
            "epoch {}/{epochs}  lr {:.2e}  train loss {:.4} acc {:.4}  val loss {:.4} acc {:.4} top-5 {:.4}  {:.1}s  {:.0} samples/s",
            r.epoch, r.lr, r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy, r.val_top5, r.seconds, r.train_samples_per_second
        );
    }
}
