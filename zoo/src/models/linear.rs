//! Softmax regression (the notes' linear classifier): scores = W x + b over the flattened
//! image, trained with softmax cross-entropy.

use burn::nn::Linear;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{linear_layer, Init, ModelInput};
use crate::summary::LayerSummary;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoftmaxConfig {
    pub init: Init,
    /// Standard deviation for `init = "normal"`.
    pub init_std: f64,
}

impl Default for SoftmaxConfig {
    fn default() -> Self {
        Self {
            init: Init::Default,
            init_std: 0.01,
        }
    }
}

impl SoftmaxConfig {
    pub fn init(&self, input: &ModelInput, device: &Device) -> SoftmaxRegression {
        SoftmaxRegression {
            fc: linear_layer(
                input.flat_size(),
                input.num_classes,
                self.init,
                self.init_std,
                device,
            ),
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
}

impl SoftmaxRegression {
    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(images.flatten(1, 3))
    }
}
