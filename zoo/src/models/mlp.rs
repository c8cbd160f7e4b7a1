//! The multilayer perceptron of the notes: flatten, then per hidden layer
//! linear -> [batch norm] -> activation -> [dropout], then a linear head.

use burn::nn::activation::{Activation, ActivationConfig, EluConfig, LeakyReluConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{linear_layer, Init, ModelInput};
use crate::config::Invalid;
use crate::summary::LayerSummary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationKind {
    Relu,
    Tanh,
    Sigmoid,
    LeakyRelu,
    Elu,
}

impl ActivationKind {
    pub fn build(self, device: &Device) -> Activation {
        let config = match self {
            ActivationKind::Relu => ActivationConfig::Relu,
            ActivationKind::Tanh => ActivationConfig::Tanh,
            ActivationKind::Sigmoid => ActivationConfig::Sigmoid,
            ActivationKind::LeakyRelu => LeakyReluConfig::new().into(),
            ActivationKind::Elu => EluConfig::new().into(),
        };
        config.init(device)
    }

    pub fn name(self) -> &'static str {
        match self {
            ActivationKind::Relu => "relu",
            ActivationKind::Tanh => "tanh",
            ActivationKind::Sigmoid => "sigmoid",
            ActivationKind::LeakyRelu => "leaky-relu",
            ActivationKind::Elu => "elu",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpConfig {
    /// Widths of the hidden layers, input side first.
    pub hidden: Vec<usize>,
    pub activation: ActivationKind,
    /// Dropout probability after each hidden activation (0 = none).
    pub dropout: f64,
    /// Batch norm between each hidden linear layer and its activation.
    pub batch_norm: bool,
    pub init: Init,
    /// Standard deviation for `init = "normal"`.
    pub init_std: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![100],
            activation: ActivationKind::Relu,
            dropout: 0.0,
            batch_norm: false,
            init: Init::He,
            init_std: 0.01,
        }
    }
}

impl MlpConfig {
    pub fn validate(&self, _input: &ModelInput) -> Result<(), Invalid> {
        if let Some(i) = self.hidden.iter().position(|&h| h == 0) {
            return Err((
                format!("hidden[{i}]"),
                "expected a positive width, got 0".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err((
                "dropout".into(),
                format!("expected a probability in [0, 1), got {}", self.dropout),
            ));
        }
        Ok(())
    }

    pub fn init(&self, input: &ModelInput, device: &Device) -> Mlp {
        let mut d_in = input.flat_size();
        let mut hidden = Vec::new();
        for &width in &self.hidden {
            hidden.push(MlpBlock {
                linear: linear_layer(d_in, width, self.init, self.init_std, device),
                norm: self
                    .batch_norm
                    .then(|| BatchNormConfig::new(width).init(device)),
                activation: self.activation.build(device),
                dropout: (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init()),
            });
            d_in = width;
        }
        Mlp {
            hidden,
            head: linear_layer(d_in, input.num_classes, self.init, self.init_std, device),
        }
    }

    pub fn layers(&self, input: &ModelInput) -> Vec<LayerSummary> {
        let mut rows = vec![LayerSummary::flatten(input)];
        let mut d_in = input.flat_size();
        for (i, &width) in self.hidden.iter().enumerate() {
            rows.push(LayerSummary::linear(
                &format!("hidden.{i}.linear"),
                d_in,
                width,
            ));
            if self.batch_norm {
                rows.push(LayerSummary::batch_norm(
                    &format!("hidden.{i}.norm"),
                    &[width],
                ));
            }
            rows.push(LayerSummary::elementwise(
                &format!("hidden.{i}.activation"),
                self.activation.name(),
                &[width],
            ));
            if self.dropout > 0.0 {
                rows.push(LayerSummary::elementwise(
                    &format!("hidden.{i}.dropout"),
                    &format!("dropout p={}", self.dropout),
                    &[width],
                ));
            }
            d_in = width;
        }
        rows.push(LayerSummary::linear("head", d_in, input.num_classes));
        rows
    }
}

#[derive(Module, Debug)]
pub struct MlpBlock {
    pub linear: Linear,
    pub norm: Option<BatchNorm>,
    pub activation: Activation,
    pub dropout: Option<Dropout>,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub hidden: Vec<MlpBlock>,
    pub head: Linear,
}

impl Mlp {
    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = images.flatten(1, 3); // [batch, channels * height * width]
        for block in &self.hidden {
            x = block.linear.forward(x);
            if let Some(norm) = &block.norm {
                x = norm.forward(x);
            }
            x = block.activation.forward(x);
            if let Some(dropout) = &block.dropout {
                x = dropout.forward(x);
            }
        }
        self.head.forward(x)
    }
}
