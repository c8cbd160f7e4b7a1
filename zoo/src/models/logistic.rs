//! Binary logistic regression, the notes' two-class linear classifier over the flattened
//! image: the log-odds z = w x + b, trained with sigmoid + binary cross-entropy.

use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::DType;
use serde::{Deserialize, Serialize};

use super::builder::{Init, NetBuilder};
use super::pytorch_names::PytorchLayout;
use super::family::{ImageClassifier, ImageFamily};
use crate::input::ModelInput;
use crate::invalid::Invalid;

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

impl ImageFamily for LogisticConfig {
    const KINDS: &'static [&'static str] = &["logistic"];
    type Module = LogisticRegression;

    fn validate(&self, input: &ModelInput) -> Result<(), Invalid> {
        if input.num_classes != 2 {
            return Err(Invalid::data(
                "classes",
                format!(
                    "logistic regression needs a two-class task, got {} classes; set data.classes = [a, b] or data.one_vs_rest = c",
                    input.num_classes
                ),
            ));
        }
        Ok(())
    }

    /// PyTorch's names are zoo's paths (a module with the same attribute names).
    fn pytorch_layout(&self, _input: &ModelInput) -> PytorchLayout {
        PytorchLayout::same_paths()
    }

    fn build(&self, _input: &ModelInput, b: &mut NetBuilder) -> LogisticRegression {
        b.flatten("flatten");
        LogisticRegression {
            fc: b.linear("fc", 1, self.init, self.init_std),
        }
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

}

impl ImageClassifier for LogisticRegression {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }

    /// Binary cross-entropy of sigmoid(z) against the 0/1 targets.
    fn loss(&self, scores: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        let [batch, _] = scores.dims();
        let z = scores.narrow(1, 1, 1).reshape([batch]).cast(DType::F32);
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
        let (model, _) = crate::models::testing::built(&LogisticConfig::default(), &input);
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
