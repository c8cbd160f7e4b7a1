//! LeNet-5 as in the notes (LeCun et al., 1998): conv 6@5x5 -> pool 2/2 -> conv 16@5x5 ->
//! pool 2/2 -> FC 120 -> FC 84 -> FC classes. "Classic" is tanh with average pooling,
//! "modern" ReLU with max pooling. Deviation from the paper: conv2 connects to all six
//! maps (the paper's partial connection table is dropped, as in the notes' 61,706 count).

use burn::nn::conv::Conv2d;
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::nn::Linear;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::mlp::{ActivationKind, ActivationLayer};
use super::builder::{ConvShape, Init, NetBuilder};
use super::pytorch_names::PytorchLayout;
use super::family::{ImageClassifier, ImageFamily};
use crate::input::ModelInput;
use crate::invalid::Invalid;

/// The side LeNet-5 was designed for: smaller inputs are padded in conv1 to reach it.
const DESIGN_SIDE: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolKind {
    Max,
    Avg,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeNet5Config {
    /// tanh (classic) or relu (modern); any MLP activation works.
    pub activation: ActivationKind,
    /// avg (classic) or max (modern).
    pub pooling: PoolKind,
    /// conv1 padding; by default (32 - input side) / 2, i.e. 2 on 28x28 and 0 on 32x32.
    pub conv1_padding: Option<usize>,
}

impl Default for LeNet5Config {
    fn default() -> Self {
        Self {
            activation: ActivationKind::Relu,
            pooling: PoolKind::Max,
            conv1_padding: None,
        }
    }
}

impl LeNet5Config {
    fn padding(&self, input: &ModelInput) -> usize {
        self.conv1_padding
            .unwrap_or(DESIGN_SIDE.saturating_sub(input.height.min(input.width)) / 2)
    }

    /// A 2x2/2 pooling of the configured kind, with its row.
    fn pool(&self, b: &mut NetBuilder, name: &str) -> Pool2d {
        match self.pooling {
            PoolKind::Max => Pool2d::Max(b.max_pool(name, 2, 2, 0, false)),
            PoolKind::Avg => Pool2d::Avg(b.avg_pool(name, 2, 2)),
        }
    }
}

impl ImageFamily for LeNet5Config {
    const KINDS: &'static [&'static str] = &["lenet5"];
    type Module = LeNet5;

    /// Checks that the input is large enough for two 5x5 convolutions and two poolings.
    fn validate(&self, input: &ModelInput) -> Result<(), Invalid> {
        let side = input.height.min(input.width) + 2 * self.padding(input);
        if side < 16 {
            return Err(Invalid::new(
                "conv1_padding",
                format!("LeNet-5 needs a padded input of at least 16x16, got {side}x{side}"),
            ));
        }
        Ok(())
    }

    /// PyTorch's names are zoo's paths (a module with the same attribute names).
    fn pytorch_layout(&self, _input: &ModelInput) -> PytorchLayout {
        PytorchLayout::same_paths()
    }

    /// The notes' table: conv1, act1, pool1, conv2, act2, pool2, flatten, fc1..fc3 with
    /// activations between; Burn's default (PyTorch's) initialization throughout.
    fn build(&self, input: &ModelInput, b: &mut NetBuilder) -> LeNet5 {
        let act = self.activation.name();
        let conv1 = ConvShape::new(input.channels, 6, 5).padding(self.padding(input));
        let conv1 = b.conv("conv1", conv1, true, Init::Default);
        b.elementwise("act1", act);
        let pool1 = self.pool(b, "pool1");
        let conv2 = b.conv("conv2", ConvShape::new(6, 16, 5), true, Init::Default);
        b.elementwise("act2", act);
        let pool2 = self.pool(b, "pool2");
        b.flatten("flatten");
        let fc1 = b.linear("fc1", 120, Init::Default, 0.0);
        b.elementwise("act3", act);
        let fc2 = b.linear("fc2", 84, Init::Default, 0.0);
        b.elementwise("act4", act);
        LeNet5 {
            conv1,
            pool1,
            conv2,
            pool2,
            fc1,
            fc2,
            fc3: b.linear("fc3", input.num_classes, Init::Default, 0.0),
            activation: self.activation.build(b.device()),
        }
    }
}

#[derive(Module, Debug)]
pub enum Pool2d {
    Max(MaxPool2d),
    Avg(AvgPool2d),
}

impl Pool2d {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Pool2d::Max(p) => kernels::max_pool2d(p, x),
            Pool2d::Avg(p) => kernels::avg_pool2d(p, x),
        }
    }
}

#[derive(Module, Debug)]
pub struct LeNet5 {
    pub conv1: Conv2d,
    pub pool1: Pool2d,
    pub conv2: Conv2d,
    pub pool2: Pool2d,
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
    pub activation: ActivationLayer,
}

impl ImageClassifier for LeNet5 {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

impl LeNet5 {
    /// # Shapes
    /// - images: `[batch, channels, 28, 28]` (or 32x32)
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let act = &self.activation;
        let x = self.pool1.forward(act.forward(kernels::conv2d(&self.conv1, images))); // [batch, 6, 14, 14]
        let x = self.pool2.forward(act.forward(kernels::conv2d(&self.conv2, x))); // [batch, 16, 5, 5]
        let x = act.forward(self.fc1.forward(x.flatten(1, 3))); // [batch, 120]
        let x = act.forward(self.fc2.forward(x)); // [batch, 84]
        self.fc3.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::models::testing::{built, fashion as fashion_input, rows};

    #[test]
    fn notes_table_on_28x28() {
        let rows = rows(&LeNet5Config::default(), &fashion_input());
        let shaped: Vec<(String, Vec<usize>, usize, usize)> = rows
            .iter()
            .filter(|r| !r.name.starts_with("act"))
            .map(|r| (r.name.clone(), r.output_shape.clone(), r.params, r.macs))
            .collect();
        let expected = [
            ("conv1", vec![6, 28, 28], 156, 117_600),
            ("pool1", vec![6, 14, 14], 0, 4_704),
            ("conv2", vec![16, 10, 10], 2_416, 240_000),
            ("pool2", vec![16, 5, 5], 0, 1_600),
            ("flatten", vec![400], 0, 0),
            ("fc1", vec![120], 48_120, 48_000),
            ("fc2", vec![84], 10_164, 10_080),
            ("fc3", vec![10], 850, 840),
        ];
        for ((name, shape, params, macs), got) in expected.iter().zip(&shaped) {
            assert_eq!(
                (name.to_string(), shape.clone(), *params, *macs),
                got.clone()
            );
        }
        assert_eq!(rows.iter().map(|r| r.params).sum::<usize>(), 61_706);
    }

    #[test]
    fn built_module_matches_the_table() {
        let device = Device::flex();
        let init = |config: &LeNet5Config, input: &ModelInput| built(config, input).0;
        for pooling in [PoolKind::Max, PoolKind::Avg] {
            let config = LeNet5Config {
                pooling,
                activation: ActivationKind::Tanh,
                conv1_padding: None,
            };
            let model = init(&config, &fashion_input());
            assert_eq!(model.num_params(), 61_706);
            let out = model.forward(Tensor::zeros([2, 1, 28, 28], &device));
            assert_eq!(out.dims(), [2, 10]);
        }
        // On 32x32 there is no padding and the same count.
        let input = ModelInput {
            height: 32,
            width: 32,
            ..fashion_input()
        };
        let model = init(&LeNet5Config::default(), &input);
        assert_eq!(model.num_params(), 61_706);
        assert_eq!(
            model.forward(Tensor::zeros([1, 1, 32, 32], &device)).dims(),
            [1, 10]
        );
    }
}
