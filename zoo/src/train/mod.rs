//! The shared trainer: any model, any task, any device. It knows no model family: a task says
//! how a batch becomes a loss (`Task`), and `fit` runs the epochs, the schedule, validation,
//! early stopping and checkpoints, and stops with a mid-epoch checkpoint when asked
//! (`Trainer::stop`, set by the CLI's signal handlers). It is a plain loop over Burn's
//! autodiff, optimizers and data loader rather than burn-train's `SupervisedTraining`, because
//! burn-train restarts its loader's shuffle and the device RNG on resume (a resumed run could
//! not match an uninterrupted one), writes checkpoints in place, and has no reduce-on-plateau.

pub mod config;
pub mod history;
pub mod precision;
mod progress;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::DataLoader;
use burn::data::dataset::DatasetError;
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::{Bytes, DType};

use crate::checkpoint::{self, Position, MODEL_FILE, OPTIM_FILE, STATE_FILE};
use crate::losses::weight_penalty;
use crate::schedule::{learning_rate, ScheduleKind};
pub use config::Precision;
pub use config::{optimizer, OptimizerKind, TrainConfig};
pub use history::{EpochRecord, EpochSums, LossScale, TrainOutcome, TrainState};
use precision::{cast_weights, unscale};
use progress::Progress;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error(transparent)]
    Write(#[from] crate::fsutil::WriteError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A batch could not be loaded (an unreadable image file, named in the message).
    #[error("{0}")]
    Data(#[from] DatasetError),
    #[error("training diverged in epoch {epoch}: the loss is {loss}; lower train.lr or set train.clip_grad_norm")]
    Diverged { epoch: usize, loss: f64 },
    /// Not a failure: a stop was requested (SIGTERM, Ctrl-C) and the run was checkpointed.
    #[error("stopped on request after {} epochs and {} batches; checkpoint {} (--resume continues)", at.epochs, at.batches, checkpoint.display())]
    Interrupted { at: Position, checkpoint: PathBuf },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Set (by a signal handler, say) to ask a running `fit` to checkpoint and return.
pub type StopFlag = Arc<AtomicBool>;

/// A seed per epoch, so shuffling and augmentation after a resume repeat the uninterrupted run's.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed
        ^ (epoch as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

/// A seed per step, so dropout after a mid-epoch resume repeats the uninterrupted run's.
fn step_seed(epoch_seed: u64, batch: usize) -> u64 {
    epoch_seed ^ (batch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
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
/// loss of one batch, and a validation pass. Images and text each implement it once. `fit`
/// runs on rayon's pool (`on_pool`), hence `Sync`.
pub trait Task<M>: Sync {
    type Batch: Send + 'static;

    /// The training split, shuffled with `seed`, in batches on `device`.
    fn train_loader(
        &self,
        batch_size: usize,
        seed: u64,
        device: &Device,
    ) -> Arc<dyn DataLoader<Self::Batch>>;

    fn batch_loss(&self, model: &M, batch: Self::Batch) -> BatchLoss;

    /// The batch with its float inputs in `dtype` (mixed precision); integer inputs (a
    /// char-lm's) stay as they are.
    fn cast_inputs(&self, batch: Self::Batch, dtype: DType) -> Self::Batch;

    /// The batch cut into one run of consecutive examples per device (moved there), each
    /// with its number of examples; an empty shard is left out.
    fn shard(&self, batch: Self::Batch, devices: &[Device]) -> Vec<(Self::Batch, usize)>;

    /// Evaluates `model` (in eval mode) on the validation split.
    fn validate(
        &self,
        model: &M,
        batch_size: usize,
        device: &Device,
    ) -> Result<Validation, DatasetError>;
}

/// What one training step measured: the loss it minimized (penalty included) and how many
/// predictions (images, or characters for a language model) it made, how many were right, and
/// how many examples (images, text windows) the batch held.
pub struct StepStats {
    pub loss: f64,
    pub predictions: usize,
    pub correct: usize,
    pub examples: usize,
}

/// Runs `work` on one thread of rayon's pool, the pool that Flex's parallel ops run on, and
/// waits for it: each op then starts its parallel work from inside the pool instead of handing
/// it over from outside (a hand-off per op cost the MLP a third of its training rate). Run a
/// whole loop of steps in one call, never a call per step: Burn's batch-norm running
/// statistics are kept per thread until synced, so every step must run on the same thread.
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

/// One optimizer step on one batch: the task's loss plus the config's L1/L2 penalty,
/// backward, update. `fit` trains with it and `zoo bench` times it (both inside `on_pool`).
pub fn train_step<M: Module, T: Task<M>>(
    model: M,
    optim: &mut ModuleOptimizer,
    task: &T,
    batch: T::Batch,
    config: &TrainConfig,
    lr: f64,
) -> (M, StepStats) {
    let BatchLoss {
        mut loss,
        predictions,
        correct,
        examples,
    } = task.batch_loss(&model, batch);
    if let Some(penalty) = weight_penalty(&model, config.l1, config.l2) {
        loss = loss + penalty;
    }
    let value = loss.clone().into_scalar::<f64>();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optim.step(lr, model, grads);
    let stats = StepStats {
        loss: value,
        predictions,
        correct,
        examples,
    };
    (model, stats)
}

/// `train_step` in half precision (`train.precision`, `precision`): the task's loss (and penalty, in f32) on the half copy of
/// the network, scaled by `scale` for f16; the gradients unscaled; the optimizer steps the
/// f32 weights unless a gradient overflowed (f16), in which case the step is skipped.
pub fn half_precision_step<M: Module, T: Task<M>>(
    model: M,
    optim: &mut ModuleOptimizer,
    task: &T,
    batch: T::Batch,
    (config, lr): (&TrainConfig, f64),
    scale: &mut LossScale,
) -> (M, StepStats) {
    let half = config.precision.half().expect("a half precision");
    let network = cast_weights(&model, half);
    let BatchLoss {
        mut loss,
        predictions,
        correct,
        examples,
    } = task.batch_loss(&network, task.cast_inputs(batch, half));
    loss = loss.cast(DType::F32);
    if let Some(penalty) = weight_penalty(&model, config.l1, config.l2) {
        loss = loss + penalty;
    }
    let value = loss.clone().into_scalar::<f64>();
    let factor = match config.precision {
        Precision::F16 => scale.scale,
        _ => 1.0,
    };
    let mut grads = GradientsParams::from_grads(loss.mul_scalar(factor).backward(), &model);
    let finite = unscale(&mut grads, &model, 1.0 / factor);
    let stats = StepStats {
        loss: value,
        predictions,
        correct,
        examples,
    };
    if config.precision != Precision::F16 {
        return (optim.step(lr, model, grads), stats);
    }
    scale.observe(finite);
    match finite {
        true => (optim.step(lr, model, grads), stats),
        false => (model, stats),
    }
}

/// `train_step` with the batch cut across `devices` (data parallelism): each shard's loss,
/// weighted by its share of the batch, is backpropagated on its device; the gradients are
/// summed on the first device, which steps the optimizer once. Without batch statistics
/// (batch norm) this is the single-device step up to rounding. Shards run one after the
/// other (each reads its loss back), so several GPUs do not yet work at the same time.
pub fn data_parallel_step<M: Module, T: Task<M>>(
    model: M,
    optim: &mut ModuleOptimizer,
    task: &T,
    batch: T::Batch,
    devices: &[Device],
    config: &TrainConfig,
    lr: f64,
) -> (M, StepStats) {
    let shards = task.shard(batch, devices);
    let total: usize = shards.iter().map(|(_, n)| n).sum();
    let mut accumulator = GradientsAccumulator::new();
    let mut stats = StepStats {
        loss: 0.0,
        predictions: 0,
        correct: 0,
        examples: 0,
    };
    for (i, ((shard, n), device)) in shards.into_iter().zip(devices).enumerate() {
        let replica = match device == &devices[0] {
            true => model.clone(),
            false => model.clone().fork(device).train(),
        };
        let part = task.batch_loss(&replica, shard);
        let mut loss = part.loss * (n as f64 / total as f64);
        if i == 0 {
            if let Some(penalty) = weight_penalty(&replica, config.l1, config.l2) {
                loss = loss + penalty;
            }
        }
        stats.loss += loss.clone().into_scalar::<f64>();
        stats.predictions += part.predictions;
        stats.correct += part.correct;
        stats.examples += part.examples;
        let grads = GradientsParams::from_grads(loss.backward(), &replica);
        accumulator.accumulate(&model, grads.to_device(&devices[0], &model));
    }
    let model = optim.step(lr, model, accumulator.grads());
    (model, stats)
}

/// `len` examples cut into `parts` consecutive runs whose lengths differ by at most one (the
/// longer first); empty runs are left out.
pub fn shard_ranges(len: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let (base, extra) = (len / parts, len % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let end = start + base + usize::from(i < extra);
            let range = start..end;
            start = end;
            range
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// A batch of `rows` examples as one shard per device: `cut` takes a run of rows (from
/// `shard_ranges`) to its device. Each shard comes with its number of examples.
pub fn shards<B>(
    rows: usize,
    devices: &[Device],
    cut: impl Fn(std::ops::Range<usize>, &Device) -> B,
) -> Vec<(B, usize)> {
    shard_ranges(rows, devices.len())
        .into_iter()
        .zip(devices)
        .map(|(range, device)| {
            let n = range.len();
            (cut(range, device), n)
        })
        .collect()
}

/// One training run's settings, apart from the model and data.
pub struct Trainer<'a> {
    pub config: &'a TrainConfig,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub run_dir: &'a Path,
    /// The devices to train on (autodiff is switched on here): the first holds the model and
    /// the optimizer; with more, each batch is shared among them (`data_parallel_step`).
    pub devices: Vec<Device>,
    /// Set from outside (a signal handler) to stop after the current step with a checkpoint.
    pub stop: Option<StopFlag>,
}

impl Trainer<'_> {
    /// The same trainer, stopping with a checkpoint once `stop` is set.
    pub fn stop_on(self, stop: Option<StopFlag>) -> Self {
        Self { stop, ..self }
    }

    /// Trains `model` (built on `self.device`), resuming from the newest checkpoint if
    /// `resume`; returns the final model in eval mode.
    pub fn fit<M: Module, T: Task<M>>(
        &self,
        model: M,
        task: &T,
        resume: bool,
    ) -> Result<TrainOutcome<M>, TrainError> {
        // The whole loop, loading and validation included, on one thread of rayon's pool.
        on_pool(|| self.fit_here(model, task, resume))
    }

    /// `fit` on the calling thread.
    fn fit_here<M: Module, T: Task<M>>(
        &self,
        model: M,
        task: &T,
        resume: bool,
    ) -> Result<TrainOutcome<M>, TrainError> {
        let main = &self.devices[0];
        let device = main.clone().autodiff();
        // `train()` moves the parameters onto the autodiff device with gradients tracked.
        let mut model = model.fork(main).train();
        let mut optim = optimizer(self.config);
        let mut state = TrainState::default();
        if resume {
            if let Some(restored) = self.restore(&model)? {
                (model, optim, state) = restored;
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
            let loader = task.train_loader(self.batch_size, seed, &device);
            let total = loader.num_items();
            // A resumed epoch starts from its checkpointed sums and skips the batches they count.
            let mut sums = state.in_epoch.take().unwrap_or_default();
            let seconds_before = sums.seconds;
            let started = Instant::now();
            for (index, batch) in loader.iter().enumerate().skip(sums.batches) {
                let batch = batch?;
                // Dropout is seeded per step on each distinct device (replicas share one).
                for (i, d) in self.devices.iter().enumerate() {
                    if !self.devices[..i].contains(d) {
                        d.clone().autodiff().seed(step_seed(seed, index) ^ i as u64);
                    }
                }
                let step;
                (model, step) = match self.devices.len() {
                    _ if self.config.precision.half().is_some() => half_precision_step(
                        model,
                        &mut optim,
                        task,
                        batch,
                        (self.config, lr),
                        &mut state.loss_scale,
                    ),
                    1 => train_step(model, &mut optim, task, batch, self.config, lr),
                    _ => data_parallel_step(
                        model,
                        &mut optim,
                        task,
                        batch,
                        &self.devices,
                        self.config,
                        lr,
                    ),
                };
                sums.batches = index + 1;
                sums.loss_sum += step.loss * step.predictions as f64;
                sums.correct += step.correct;
                sums.predictions += step.predictions;
                sums.examples += step.examples;
                progress.batch(
                    epoch + 1,
                    epochs,
                    sums.examples,
                    total,
                    sums.loss_sum / sums.predictions as f64,
                    sums.correct as f64 / sums.predictions as f64,
                );
                if self.stop_requested() {
                    sums.seconds = seconds_before + started.elapsed().as_secs_f64();
                    let at = Position {
                        epochs: epoch,
                        batches: sums.batches,
                    };
                    state.in_epoch = Some(sums);
                    let checkpoint = self.save_checkpoint(&model, &optim, &state, at)?;
                    return Err(TrainError::Interrupted { at, checkpoint });
                }
            }
            let EpochSums {
                loss_sum,
                correct,
                predictions: seen,
                examples,
                ..
            } = sums;
            let train_seconds = seconds_before + started.elapsed().as_secs_f64();
            let val = task.validate(&model.valid(), self.eval_batch_size, main)?;
            let record = EpochRecord {
                epoch: epoch + 1,
                lr,
                train_loss: loss_sum / seen.max(1) as f64,
                train_accuracy: correct as f64 / seen.max(1) as f64,
                val_loss: val.loss,
                val_accuracy: val.accuracy,
                val_top5: val.top5,
                seconds: seconds_before + started.elapsed().as_secs_f64(),
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
            let at = Position {
                epochs: epoch + 1,
                batches: 0,
            };
            let checkpoint = self.save_checkpoint(&model, &optim, &state, at)?;
            if self.stop_requested() && state.epochs_done < epochs && !state.stopped_early {
                return Err(TrainError::Interrupted { at, checkpoint });
            }
        }
        Ok(TrainOutcome {
            model: model.valid(),
            state,
        })
    }

    /// The model, optimizer and state of the newest checkpoint that reads back whole, or `None`
    /// without checkpoints. A checkpoint that does not (damaged on disk, a file missing) is
    /// named and set aside, and the one before it is tried.
    fn restore<M: Module>(
        &self,
        model: &M,
    ) -> Result<Option<(M, ModuleOptimizer, TrainState)>, TrainError> {
        let mut first_failure = None;
        let checkpoints = checkpoint::complete(self.run_dir).map_err(io_error(self.run_dir))?;
        for (_, dir) in checkpoints.into_iter().rev() {
            match self.load_checkpoint(model.clone(), &dir) {
                Ok(restored) => {
                    eprintln!("resuming from {}", dir.display());
                    return Ok(Some(restored));
                }
                Err(e) => {
                    let aside = checkpoint::set_aside(&dir).map_err(io_error(&dir))?;
                    eprintln!(
                        "warning: {e}; trying the checkpoint before it (this one is kept as {})",
                        aside.display()
                    );
                    first_failure.get_or_insert(e);
                }
            }
        }
        // Checkpoints existed and none could be read: training from scratch would hide that.
        match first_failure {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    fn load_checkpoint<M: Module>(
        &self,
        model: M,
        dir: &Path,
    ) -> Result<(M, ModuleOptimizer, TrainState), TrainError> {
        let damaged = |e: crate::checksums::ChecksumError| TrainError::Checkpoint {
            path: e.path,
            message: e.reason,
        };
        let model = checkpoint::load_module(model, &dir.join(MODEL_FILE)).map_err(|e| {
            TrainError::Checkpoint {
                path: e.path,
                message: e.message,
            }
        })?;
        let optim_path = dir.join(OPTIM_FILE);
        let bytes = crate::checksums::read_checked(&optim_path).map_err(damaged)?;
        let optim = optimizer(self.config)
            .from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| TrainError::Checkpoint {
                path: optim_path.clone(),
                message: e.to_string(),
            })?;
        let state_path = dir.join(STATE_FILE);
        let bytes = crate::checksums::read_checked(&state_path).map_err(damaged)?;
        let state = serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
            path: state_path.clone(),
            message: e.to_string(),
        })?;
        Ok((model, optim, state))
    }

    fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::SeqCst))
    }

    fn save_checkpoint<M: Module>(
        &self,
        model: &M,
        optim: &ModuleOptimizer,
        state: &TrainState,
        at: Position,
    ) -> Result<PathBuf, TrainError> {
        // Burn's running statistics (batch norm) hold their last update apart until synced,
        // and a save reads them without syncing: `valid()` syncs the state `model` shares.
        let _ = model.valid();
        let fail = |message: String| TrainError::Checkpoint {
            path: self.run_dir.join("checkpoints"),
            message,
        };
        let model_bytes = checkpoint::module_bytes(model).map_err(fail)?;
        let optim_bytes = optim.into_bytes().map_err(|e| fail(e.to_string()))?;
        let state_json = serde_json::to_vec_pretty(state).expect("state serializes");
        Ok(checkpoint::save(
            self.run_dir,
            at,
            &[
                (MODEL_FILE, &model_bytes),
                (OPTIM_FILE, &optim_bytes),
                (STATE_FILE, &state_json),
            ],
        )?)
    }
}
