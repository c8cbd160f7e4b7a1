//! `[train]`: the section's keys, their checks, and the Burn optimizer they name, with
//! PyTorch's defaults where Burn's differ.

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdaGradConfig, AdamWConfig, ModuleOptimizer, RmsPropConfig, SgdConfig};
use burn::tensor::{DType, Device};
use kernels::FusedAdam;
use serde::{Deserialize, Serialize};

use crate::invalid::{positive, positive_number, unit_interval, Invalid};
use crate::schedule::ScheduleConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Seeds weight initialization, shuffling and dropout.
    pub seed: u64,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    /// momentum / nesterov (default 0.9) and rmsprop (default 0).
    pub momentum: Option<f64>,
    /// adam / adamw.
    pub betas: [f64; 2],
    /// Numerical-stability epsilon; PyTorch's defaults (1e-8, adagrad 1e-10) where absent.
    pub eps: Option<f64>,
    /// rmsprop's smoothing constant.
    pub alpha: f64,
    /// L2 weight decay; 0 except adamw (PyTorch's 1e-2) where absent.
    pub weight_decay: Option<f64>,
    pub schedule: ScheduleConfig,
    /// Clip each parameter's gradient to this L2 norm (Burn clips per tensor, not globally).
    pub clip_grad_norm: Option<f64>,
    /// Clip each gradient element to [-v, v].
    pub clip_grad_value: Option<f64>,
    /// Stop when validation loss has not improved for this many epochs.
    pub early_stopping_patience: Option<usize>,
    /// L1 penalty l1 * sum |w| on weight matrices and kernels, added to the loss.
    pub l1: f64,
    /// L2 penalty l2 * sum w^2 added to the loss (with `l1`: the elastic net). Unlike
    /// `weight_decay`, which the optimizer applies, this is part of the reported loss.
    pub l2: f64,
    /// Data-parallel training: each batch is cut into this many shards, one per device of the
    /// backend, whose gradients are averaged on the first device for one optimizer step.
    pub devices: usize,
    /// Mixed precision on GPU backends: the network computes in f16 (with loss scaling) or
    /// bf16; the weights and the optimizer stay f32.
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            seed: 0,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            momentum: None,
            betas: [0.9, 0.999],
            eps: None,
            alpha: 0.99,
            weight_decay: None,
            schedule: ScheduleConfig::default(),
            clip_grad_norm: None,
            clip_grad_value: None,
            early_stopping_patience: None,
            l1: 0.0,
            l2: 0.0,
            devices: 1,
            precision: Precision::F32,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        positive("epochs", self.epochs)?;
        positive("devices", self.devices)?;
        positive_number("lr", self.lr)?;
        if let Some(m) = self.momentum {
            unit_interval("momentum", m)?;
        }
        unit_interval("betas[0]", self.betas[0])?;
        unit_interval("betas[1]", self.betas[1])?;
        unit_interval("alpha", self.alpha)?;
        if let Some(e) = self.eps {
            positive_number("eps", e)?;
        }
        if let Some(w) = self.weight_decay {
            if w < 0.0 {
                return Err(Invalid::new(
                    "weight_decay",
                    format!("expected a number >= 0, got {w}"),
                ));
            }
        }
        for (key, v) in [
            ("clip_grad_norm", self.clip_grad_norm),
            ("clip_grad_value", self.clip_grad_value),
        ] {
            if let Some(v) = v {
                positive_number(key, v)?;
            }
        }
        for (key, v) in [("l1", self.l1), ("l2", self.l2)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Invalid::new(
                    key,
                    format!("expected a number >= 0, got {v}"),
                ));
            }
        }
        if self.precision.half().is_some() && self.devices > 1 {
            return Err(Invalid::new(
                "precision",
                "mixed precision trains on one device; set devices = 1",
            ));
        }
        if self.clip_grad_norm.is_some() && self.clip_grad_value.is_some() {
            return Err(Invalid::new(
                "clip_grad_value",
                "set clip_grad_norm or clip_grad_value, not both",
            ));
        }
        self.schedule
            .validate(self.lr)
            .map_err(|e| e.within("schedule"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
    Adamw,
    Rmsprop,
    Adagrad,
}

/// Burn's optimizer for the config, with PyTorch's defaults where Burn's differ
/// (momentum dampening 0, epsilon 1e-8 / 1e-10, AdamW decay 1e-2, RMSProp momentum 0).
pub fn optimizer(c: &TrainConfig) -> ModuleOptimizer {
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
        OptimizerKind::Adam => {
            // Burn's Adam, its update one pass per parameter on Flex (the same bits).
            let penalty = decay(0.0).map(|d| d.penalty);
            let adam = FusedAdam::new(c.betas[0] as f32, c.betas[1] as f32, eps, penalty);
            let optim = ModuleOptimizer::from(adam);
            match clip {
                Some(clip) => optim.with_grad_clipping(clip.init()),
                None => optim,
            }
        }
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

/// The precision the network computes in during training.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    F16,
    Bf16,
}

impl Precision {
    /// The half-precision type, `None` for f32.
    pub fn half(self) -> Option<DType> {
        match self {
            Precision::F32 => None,
            Precision::F16 => Some(DType::F16),
            Precision::Bf16 => Some(DType::BF16),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// Whether `device` (of the backend named `backend`) can train in this precision; why not.
    pub fn check(self, backend: &str, device: &Device) -> Result<(), String> {
        let Some(half) = self.half() else {
            return Ok(());
        };
        let name = self.name();
        if matches!(backend, "flex" | "ndarray") {
            return Err(format!("train.precision = \"{name}\" needs a GPU backend (--backend wgpu); {backend} trains in f32"));
        }
        if !device.supports_dtype(half) {
            return Err(format!(
                "train.precision = \"{name}\": this {backend} device does not support {name}"
            ));
        }
        Ok(())
    }
}
