//! Softmax regression, the notes' linear classifier over the flattened image: scores = W x + b,
//! trained with cross-entropy or, as an option, the multiclass SVM loss.

use burn::nn::Linear;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::builder::{Init, NetBuilder};
use super::pytorch_names::PytorchLayout;
use super::family::{cross_entropy, ImageClassifier, ImageFamily};
use crate::input::ModelInput;
use crate::invalid::{positive_number, Invalid};
use crate::losses::multiclass_hinge;

/// Which loss a linear classifier minimizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinearLoss {
    /// Softmax cross-entropy.
    CrossEntropy,
    /// sum_{j != y} max(0, s_j - s_y + margin): the notes' multiclass SVM.
    MulticlassSvm,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoftmaxConfig {
    pub loss: LinearLoss,
    /// The SVM margin (delta in the notes).
    pub margin: f64,
    pub init: Init,
    /// Standard deviation for `init = "normal"`.
    pub init_std: f64,
}

impl Default for SoftmaxConfig {
    fn default() -> Self {
        Self {
            loss: LinearLoss::CrossEntropy,
            margin: 1.0,
            init: Init::Default,
            init_std: 0.01,
        }
    }
}

impl ImageFamily for SoftmaxConfig {
    const KINDS: &'static [&'static str] = &["softmax"];
    type Module = SoftmaxRegression;

    fn validate(&self, _input: &ModelInput) -> Result<(), Invalid> {
        positive_number("margin", self.margin)
    }

    /// PyTorch's names are zoo's paths (a module with the same attribute names).
    fn pytorch_layout(&self, _input: &ModelInput) -> PytorchLayout {
        PytorchLayout::same_paths()
    }

    fn build(&self, input: &ModelInput, b: &mut NetBuilder) -> SoftmaxRegression {
        b.flatten("flatten");
        SoftmaxRegression {
            fc: b.linear("fc", input.num_classes, self.init, self.init_std),
            loss: self.loss,
            margin: self.margin,
        }
    }
}

#[derive(Module, Debug)]
pub struct SoftmaxRegression {
    pub fc: Linear,
    #[module(skip)]
    pub loss: LinearLoss,
    #[module(skip)]
    pub margin: f64,
}

impl SoftmaxRegression {
    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(images.flatten(1, 3))
    }

}

impl ImageClassifier for SoftmaxRegression {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }

    fn loss(&self, scores: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        match self.loss {
            LinearLoss::CrossEntropy => cross_entropy(scores, targets),
            LinearLoss::MulticlassSvm => multiclass_hinge(scores, targets, self.margin),
        }
    }
}
