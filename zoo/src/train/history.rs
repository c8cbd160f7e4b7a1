//! What training measured: one record per epoch, and the state a resumed run continues from.

use serde::{Deserialize, Serialize};

use crate::schedule::PlateauState;

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

/// The running sums of an epoch under way: what its record will be made from. A checkpoint
/// taken mid-epoch saves them, so a resumed epoch reports what an uninterrupted one would.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    /// Batches trained so far: a resumed epoch skips these in its seeded order.
    pub batches: usize,
    /// Sum of batch losses, each weighted by its predictions.
    pub loss_sum: f64,
    pub correct: usize,
    pub predictions: usize,
    pub examples: usize,
    /// Seconds spent in the training pass so far.
    pub seconds: f64,
}

/// Everything besides weights and optimizer state that a resumed run needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    /// The epoch under way when training was interrupted; `None` at an epoch's end.
    #[serde(default)]
    pub in_epoch: Option<EpochSums>,
    pub history: Vec<EpochRecord>,
    pub plateau: PlateauState,
    pub best_val_loss: Option<f64>,
    pub epochs_since_best: usize,
    pub stopped_early: bool,
    /// The f16 loss scale (mixed precision); absent from the state of older runs.
    #[serde(default)]
    pub loss_scale: LossScale,
}

impl TrainState {
    /// Training examples per second over every epoch's training pass (validation excluded).
    pub fn train_examples_per_second(&self) -> f64 {
        let seconds: f64 = self.history.iter().map(EpochRecord::seconds_training).sum();
        let examples: usize = self.history.iter().map(|r| r.train_samples).sum();
        examples as f64 / seconds.max(1e-9)
    }
}

/// Good f16 steps after which the loss scale doubles (PyTorch's `GradScaler` default).
pub const GROWTH_INTERVAL: u32 = 2000;

/// The f16 loss scale and how many steps it has gone without an overflow; part of the
/// checkpointed state, so a resumed run scales as the uninterrupted one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    pub scale: f64,
    pub good_steps: u32,
}

impl Default for LossScale {
    /// PyTorch's initial scale, 2^16.
    fn default() -> Self {
        Self {
            scale: 65536.0,
            good_steps: 0,
        }
    }
}

impl LossScale {
    /// Records a step whose gradients were finite (or not): doubles the scale after
    /// `GROWTH_INTERVAL` finite steps, halves it at an overflow.
    pub fn observe(&mut self, finite: bool) {
        if finite {
            self.good_steps += 1;
            if self.good_steps == GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale /= 2.0;
            self.good_steps = 0;
        }
    }
}

/// The trained model (in eval mode) and its history.
pub struct TrainOutcome<M> {
    pub model: M,
    pub state: TrainState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_reads_back_the_exact_floats_it_saved() {
        // A cosine-schedule rate that serde_json's default parser reads one ulp off.
        let lr = 0.000_904_508_497_187_473_7;
        let record = EpochRecord {
            epoch: 4,
            lr,
            train_loss: 0.1 + 0.2,
            train_accuracy: 1.0 / 3.0,
            val_loss: std::f64::consts::PI,
            val_accuracy: 0.9014,
            val_top5: 0.9982,
            seconds: 1.1,
            train_samples_per_second: 50_517.25,
            train_samples: 55_000,
        };
        let state = TrainState {
            epochs_done: 4,
            history: vec![record.clone()],
            in_epoch: Some(EpochSums {
                batches: 721,
                loss_sum: 12_345.678_901_234_567,
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = serde_json::to_string(&state).unwrap();
        let back: TrainState = serde_json::from_str(&text).unwrap();
        assert_eq!(back.history, vec![record]);
        assert_eq!(back.in_epoch, state.in_epoch);
    }
}
