//! Learning-rate schedules from the notes, per epoch t. Written here rather than with Burn's
//! schedulers because those step per iteration and cannot see validation accuracy, which
//! reduce-on-plateau needs; a pure function of the epoch also makes resuming exact.

use serde::{Deserialize, Serialize};

use crate::invalid::{positive, Invalid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    Constant,
    Step,
    Exponential,
    Linear,
    Cosine,
    InverseSqrt,
    InverseTime,
    Plateau,
}

/// `[train.schedule]`: the learning-rate schedule, per epoch t = 0, 1, ... (the notes' formulas).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    pub kind: ScheduleKind,
    /// step: epochs between decays.
    pub step_size: usize,
    /// step and plateau: the factor applied at each decay.
    pub gamma: f64,
    /// exponential (a0 e^-kt) and inverse-time (a0 / (1 + kt)): k.
    pub decay: f64,
    /// linear and cosine: the rate reached at the last epoch.
    pub min_lr: f64,
    /// plateau: epochs without a better validation accuracy before decaying.
    pub patience: usize,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Constant,
            step_size: 10,
            gamma: 0.1,
            decay: 0.1,
            min_lr: 0.0,
            patience: 2,
        }
    }
}

impl ScheduleConfig {
    pub fn validate(&self, lr: f64) -> Result<(), Invalid> {
        positive("step_size", self.step_size)?;
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(Invalid::new(
                "gamma",
                format!("expected a number in (0, 1], got {}", self.gamma),
            ));
        }
        if self.decay < 0.0 {
            return Err(Invalid::new(
                "decay",
                format!("expected a number >= 0, got {}", self.decay),
            ));
        }
        if !(self.min_lr >= 0.0 && self.min_lr <= lr) {
            return Err(Invalid::new(
                "min_lr",
                format!(
                    "expected a number in [0, train.lr = {lr}], got {}",
                    self.min_lr
                ),
            ));
        }
        Ok(())
    }
}

/// What reduce-on-plateau remembers between epochs (saved in checkpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    pub best_accuracy: Option<f64>,
    pub epochs_without_improvement: usize,
    /// Product of the decays applied so far.
    pub scale: f64,
}

impl Default for PlateauState {
    fn default() -> Self {
        Self {
            best_accuracy: None,
            epochs_without_improvement: 0,
            scale: 1.0,
        }
    }
}

impl PlateauState {
    /// Records an epoch's validation accuracy; decays by `gamma` after `patience` flat epochs.
    pub fn observe(&mut self, accuracy: f64, config: &ScheduleConfig) {
        if self.best_accuracy.is_none_or(|best| accuracy > best) {
            self.best_accuracy = Some(accuracy);
            self.epochs_without_improvement = 0;
        } else {
            self.epochs_without_improvement += 1;
            if self.epochs_without_improvement >= config.patience {
                self.scale *= config.gamma;
                self.epochs_without_improvement = 0;
            }
        }
    }
}

/// The learning rate of epoch `t` (from 0) of `epochs`, starting from `lr`.
pub fn learning_rate(
    config: &ScheduleConfig,
    lr: f64,
    t: usize,
    epochs: usize,
    plateau: &PlateauState,
) -> f64 {
    let tf = t as f64;
    let progress = tf / epochs.max(1) as f64;
    match config.kind {
        ScheduleKind::Constant => lr,
        ScheduleKind::Step => lr * config.gamma.powi((t / config.step_size) as i32),
        ScheduleKind::Exponential => lr * (-config.decay * tf).exp(),
        ScheduleKind::Linear => config.min_lr + (lr - config.min_lr) * (1.0 - progress),
        ScheduleKind::Cosine => {
            config.min_lr
                + (lr - config.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
        ScheduleKind::InverseSqrt => lr / (tf + 1.0).sqrt(),
        ScheduleKind::InverseTime => lr / (1.0 + config.decay * tf),
        ScheduleKind::Plateau => lr * plateau.scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind) -> ScheduleConfig {
        ScheduleConfig {
            kind,
            step_size: 2,
            gamma: 0.1,
            decay: 0.5,
            min_lr: 0.0,
            patience: 2,
        }
    }

    #[test]
    fn formulas_match_the_notes() {
        let p = PlateauState::default();
        let lr = |kind, t| learning_rate(&schedule(kind), 1.0, t, 4, &p);
        assert_eq!(lr(ScheduleKind::Constant, 3), 1.0);
        assert!((lr(ScheduleKind::Step, 3) - 0.1).abs() < 1e-12);
        assert!((lr(ScheduleKind::Step, 4) - 0.01).abs() < 1e-12);
        assert!((lr(ScheduleKind::Exponential, 2) - (-1.0f64).exp()).abs() < 1e-12);
        assert!((lr(ScheduleKind::Linear, 1) - 0.75).abs() < 1e-12);
        assert!((lr(ScheduleKind::Cosine, 2) - 0.5).abs() < 1e-12);
        assert!((lr(ScheduleKind::InverseSqrt, 3) - 0.5).abs() < 1e-12);
        assert!((lr(ScheduleKind::InverseTime, 2) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn plateau_decays_after_patience_flat_epochs() {
        let config = schedule(ScheduleKind::Plateau);
        let mut p = PlateauState::default();
        for acc in [0.5, 0.6, 0.6, 0.59] {
            p.observe(acc, &config);
        }
        assert!((p.scale - 0.1).abs() < 1e-12);
        assert!((learning_rate(&config, 0.01, 4, 10, &p) - 0.001).abs() < 1e-12);
    }
}
