//! The multilayer perceptron of the notes: flatten, then per hidden layer
//! linear -> [batch norm] -> activation -> \[dropout\], then a linear head.

use burn::nn::activation::{Activation, ActivationConfig, EluConfig, LeakyReluConfig};
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::builder::{batch_norm_f32, Init, NetBuilder};
use super::pytorch_names::PytorchLayout;
use super::family::{ImageClassifier, ImageFamily};
use crate::input::ModelInput;
use crate::invalid::{probability, Invalid};

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
    pub fn build(self, device: &Device) -> ActivationLayer {
        let config = match self {
            ActivationKind::Relu => ActivationConfig::Relu,
            ActivationKind::Tanh => ActivationConfig::Tanh,
            ActivationKind::Sigmoid => ActivationConfig::Sigmoid,
            ActivationKind::LeakyRelu => LeakyReluConfig::new().into(),
            ActivationKind::Elu => EluConfig::new().into(),
        };
        ActivationLayer {
            burn: config.init(device),
            kind: self,
        }
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

/// An activation layer: tanh and sigmoid run in zoo's kernels (one vectorized pass, a
/// backward from the output), the others are Burn's.
#[derive(Module, Debug)]
pub struct ActivationLayer {
    pub burn: Activation,
    #[module(skip)]
    pub kind: ActivationKind,
}

impl ActivationLayer {
    /// # Shapes
    /// - x: any; output: the same
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self.kind {
            ActivationKind::Tanh => kernels::tanh(x),
            ActivationKind::Sigmoid => kernels::sigmoid(x),
            _ => self.burn.forward(x),
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

impl ImageFamily for MlpConfig {
    const KINDS: &'static [&'static str] = &["mlp"];
    type Module = Mlp;

    fn validate(&self, _input: &ModelInput) -> Result<(), Invalid> {
        if let Some(i) = self.hidden.iter().position(|&h| h == 0) {
            return Err(Invalid::new(
                format!("hidden[{i}]"),
                "expected a positive width, got 0",
            ));
        }
        probability("dropout", self.dropout)
    }

    /// PyTorch's names are zoo's paths (a module with the same attribute names).
    fn pytorch_layout(&self, _input: &ModelInput) -> PytorchLayout {
        PytorchLayout::same_paths()
    }

    fn build(&self, input: &ModelInput, b: &mut NetBuilder) -> Mlp {
        b.flatten("flatten");
        let mut hidden = Vec::new();
        for (i, &width) in self.hidden.iter().enumerate() {
            let name = |part: &str| format!("hidden.{i}.{part}");
            let linear = b.linear(&name("linear"), width, self.init, self.init_std);
            let norm = self.batch_norm.then(|| b.batch_norm(&name("norm")));
            b.elementwise(&name("activation"), self.activation.name());
            let dropout = (self.dropout > 0.0).then(|| {
                b.elementwise(&name("dropout"), &format!("dropout p={}", self.dropout));
                DropoutConfig::new(self.dropout).init()
            });
            hidden.push(MlpBlock {
                linear,
                norm,
                activation: self.activation.build(b.device()),
                dropout,
            });
        }
        Mlp {
            hidden,
            head: b.linear("head", input.num_classes, self.init, self.init_std),
        }
    }
}

#[derive(Module, Debug)]
pub struct MlpBlock {
    pub linear: Linear,
    pub norm: Option<BatchNorm>,
    pub activation: ActivationLayer,
    pub dropout: Option<Dropout>,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub hidden: Vec<MlpBlock>,
    pub head: Linear,
}

impl ImageClassifier for Mlp {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
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
                x = batch_norm_f32(norm, x);
            }
            x = block.activation.forward(x);
            if let Some(dropout) = &block.dropout {
                x = kernels::dropout(dropout, x);
            }
        }
        self.head.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testing::{built, fashion, params_and_buffers};

    #[test]
    fn module_matches_its_table() {
        let config = MlpConfig {
            hidden: vec![32, 16],
            batch_norm: true,
            dropout: 0.2,
            ..MlpConfig::default()
        };
        let (model, rows) = built(&config, &fashion());
        assert_eq!(model.num_params(), params_and_buffers(&rows));
        assert_eq!(rows[1].name, "hidden.0.linear");
        assert_eq!(rows.last().unwrap().output_shape, [10]);
    }
}
