//! The notes' linear classifiers over the flattened image, scores = W x + b:
//! softmax regression (cross-entropy, or the multiclass SVM loss as an option) and binary
//! logistic regression (sigmoid + binary cross-entropy).

use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::Linear;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{cross_entropy, linear_layer, Init, ModelInput};
use crate::config::Invalid;
use crate::losses::multiclass_hinge;
use crate::summary::LayerSummary;

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

impl SoftmaxConfig {
    pub fn validate(&self, _input: &ModelInput) -> Result<(), Invalid> {
        if !(self.margin > 0.0) {
            return Err((
                "margin".into(),
                format!("expected a positive number, got {}", self.margin),
            ));
        }
        Ok(())
    }

    pub fn init(&self, input: &ModelInput, device: &Device) -> SoftmaxRegression {
        SoftmaxRegression {
            fc: linear_layer(
                input.flat_size(),
                input.num_classes,
                self.init,
                self.init_std,
                device,
            ),
            loss: self.loss,
            margin: self.margin,
        }
    }

    pub fn layers(&self, input: &ModelInput) -> Vec<LayerSummary> {
        vec![
            LayerSummary::flatten(input),
            LayerSummary::linear("fc", input.flat_size(), input.num_classes),
        ]
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

    pub fn loss(&self, scores: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        match self.loss {
            LinearLoss::CrossEntropy => cross_entropy(scores, targets),
            LinearLoss::MulticlassSvm => multiclass_hinge(scores, targets, self.margin),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogisticConfig {
    pub init: Init,
    /// Standard deviation for `init = "normal"`.
    pub init_std: f64,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        Self {
            init: Init::Default,
            init_std: 0.01,
        }
    }
}

impl LogisticConfig {
    pub fn validate(&self, input: &ModelInput) -> Result<(), Invalid> {
        if input.num_classes != 2 {
            return Err((
                "kind".into(),
                format!(
                    "logistic regression needs a two-class task, got {} classes; set data.classes = [a, b] or data.one_vs_rest = c",
                    input.num_classes
                ),
            ));
        }
        Ok(())
    }

    pub fn init(&self, input: &ModelInput, device: &Device) -> LogisticRegression {
        LogisticRegression {
            fc: linear_layer(input.flat_size(), 1, self.init, self.init_std, device),
        }
    }

    pub fn layers(&self, input: &ModelInput) -> Vec<LayerSummary> {
        vec![
            LayerSummary::flatten(input),
            LayerSummary::linear("fc", input.flat_size(), 1),
        ]
    }
}

#[derive(Module, Debug)]
pub struct LogisticRegression {
    pub fc: Linear,
}

impl LogisticRegression {
    /// The log-odds z of class 1, as two-class scores [0, z]: softmax([0, z]) = (1 - p, p)
    /// with p = sigmoid(z), so accuracy and top-k read them like any classifier's.
    ///
    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, 2]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let z = self.fc.forward(images.flatten(1, 3)); // [batch, 1]
        Tensor::cat(vec![z.zeros_like(), z], 1)
    }

    /// Binary cross-entropy of sigmoid(z) against the 0/1 targets.
    pub fn loss(&self, scores: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        let [batch, _] = scores.dims();
        let z = scores.narrow(1, 1, 1).reshape([batch]);
        BinaryCrossEntropyLossConfig::new()
            .with_logits(true)
            .init(&z.device())
            .forward(z, targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::loss::CrossEntropyLossConfig;

    #[test]
    fn logistic_bce_equals_two_class_softmax_cross_entropy() {
        let device = Device::flex();
        device.seed(5);
        let input = ModelInput {
            channels: 1,
            height: 4,
            width: 4,
            num_classes: 2,
        };
        let model = LogisticConfig::default().init(&input, &device);
        let images = Tensor::<4>::random(
            [6, 1, 4, 4],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let targets =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 1, 0, 1, 0], [6]), &device);
        let scores = model.forward(images);
        let bce = model
            .loss(scores.clone(), targets.clone())
            .into_scalar::<f64>();
        let ce = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(scores, targets)
            .into_scalar::<f64>();
        assert!((bce - ce).abs() < 1e-5, "{bce} vs {ce}");
        assert_eq!(model.num_params(), 17);
    }
}
