//! LeNet-5 as in the notes (LeCun et al., 1998): conv 6@5x5 -> pool 2/2 -> conv 16@5x5 ->
//! pool 2/2 -> FC 120 -> FC 84 -> FC classes. "Classic" is tanh with average pooling,
//! "modern" ReLU with max pooling. Deviation from the paper: conv2 connects to all six
//! maps (the paper's partial connection table is dropped, as in the notes' 61,706 count).

use burn::nn::activation::Activation;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::mlp::ActivationKind;
use super::ModelInput;
use crate::config::Invalid;
use crate::summary::LayerSummary;

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

    /// Length of the flattened feature map that enters fc1 (400 on 28x28 and 32x32).
    fn flat_features(&self, input: &ModelInput) -> usize {
        let rows = self.layers(input);
        rows.iter()
            .find(|l| l.name == "flatten")
            .expect("LeNet-5 has a flatten row")
            .output_shape[0]
    }

    /// Checks that the input is large enough for two 5x5 convolutions and two poolings.
    pub fn validate(&self, input: &ModelInput) -> Result<(), Invalid> {
        let side = input.height.min(input.width) + 2 * self.padding(input);
        if side < 16 {
            return Err((
                "conv1_padding".into(),
                format!("LeNet-5 needs a padded input of at least 16x16, got {side}x{side}"),
            ));
        }
        Ok(())
    }

    pub fn layers(&self, input: &ModelInput) -> Vec<LayerSummary> {
        let pool = match self.pooling {
            PoolKind::Max => "maxpool",
            PoolKind::Avg => "avgpool",
        };
        let act = self.activation.name();
        let mut rows = Vec::new();
        let mut push = |row: LayerSummary| {
            let shape = row.output_shape.clone();
            rows.push(row);
            shape
        };
        let conv1 = LayerSummary::conv2d(
            "conv1",
            [input.channels, input.height, input.width],
            6,
            5,
            1,
            self.padding(input),
        );
        let c1 = conv1.chw();
        push(conv1);
        push(LayerSummary::elementwise("act1", act, &c1));
        let pool1 = LayerSummary::pool2d("pool1", pool, c1, 2, 2, 0, false);
        let p1 = pool1.chw();
        push(pool1);
        let conv2 = LayerSummary::conv2d("conv2", p1, 16, 5, 1, 0);
        let c2 = conv2.chw();
        push(conv2);
        push(LayerSummary::elementwise("act2", act, &c2));
        let pool2 = LayerSummary::pool2d("pool2", pool, c2, 2, 2, 0, false);
        let p2 = pool2.chw();
        push(pool2);
        push(LayerSummary::flatten_map("flatten", p2));
        let flat = p2.iter().product();
        push(LayerSummary::linear("fc1", flat, 120));
        push(LayerSummary::elementwise("act3", act, &[120]));
        push(LayerSummary::linear("fc2", 120, 84));
        push(LayerSummary::elementwise("act4", act, &[84]));
        push(LayerSummary::linear("fc3", 84, input.num_classes));
        rows
    }

    pub fn init(&self, input: &ModelInput, device: &Device) -> LeNet5 {
        let p = self.padding(input);
        let pool = || match self.pooling {
            PoolKind::Max => Pool2d::Max(MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()),
            PoolKind::Avg => Pool2d::Avg(AvgPool2dConfig::new([2, 2]).init()),
        };
        LeNet5 {
            conv1: Conv2dConfig::new([input.channels, 6], [5, 5])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .init(device),
            pool1: pool(),
            conv2: Conv2dConfig::new([6, 16], [5, 5]).init(device),
            pool2: pool(),
            fc1: LinearConfig::new(self.flat_features(input), 120).init(device),
            fc2: LinearConfig::new(120, 84).init(device),
            fc3: LinearConfig::new(84, input.num_classes).init(device),
            activation: self.activation.build(device),
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
            Pool2d::Max(p) => p.forward(x),
            Pool2d::Avg(p) => p.forward(x),
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
    pub activation: Activation,
}

impl LeNet5 {
    /// # Shapes
    /// - images: `[batch, channels, 28, 28]` (or 32x32)
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let act = &self.activation;
        let x = self.pool1.forward(act.forward(self.conv1.forward(images))); // [batch, 6, 14, 14]
        let x = self.pool2.forward(act.forward(self.conv2.forward(x))); // [batch, 16, 5, 5]
        let x = act.forward(self.fc1.forward(x.flatten(1, 3))); // [batch, 120]
        let x = act.forward(self.fc2.forward(x)); // [batch, 84]
        self.fc3.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fashion_input() -> ModelInput {
        ModelInput {
            channels: 1,
            height: 28,
            width: 28,
            num_classes: 10,
        }
    }

    #[test]
    fn notes_table_on_28x28() {
        let rows = LeNet5Config::default().layers(&fashion_input());
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
        for pooling in [PoolKind::Max, PoolKind::Avg] {
            let config = LeNet5Config {
                pooling,
                activation: ActivationKind::Tanh,
                conv1_padding: None,
            };
            let model = config.init(&fashion_input(), &device);
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
        let model = LeNet5Config::default().init(&input, &device);
        assert_eq!(model.num_params(), 61_706);
        assert_eq!(
            model.forward(Tensor::zeros([1, 1, 32, 32], &device)).dims(),
            [1, 10]
        );
    }
}
