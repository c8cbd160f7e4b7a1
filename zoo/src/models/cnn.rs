//! Pieces the convolutional families share: width scaling, the small-image stem option, the
//! conv -> [batch norm] -> ReLU unit and its pooled stage, and the fully connected head.

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear, LocalResponseNormConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::builder::{batch_norm_f32, ConvShape, Init, NetBuilder};
use super::pytorch_names::PytorchLayout;
use crate::invalid::Invalid;

/// `channels` times the width multiplier, rounded, and at least 1 (the narrowed configs).
pub fn scaled(channels: usize, width: f64) -> usize {
    ((channels as f64 * width).round() as usize).max(1)
}

/// Checks a width multiplier.
pub fn validate_width(width: f64) -> Result<(), Invalid> {
    if !(width > 0.0 && width <= 4.0) {
        return Err(Invalid::new(
            "width",
            format!("expected a multiplier in (0, 4], got {width}"),
        ));
    }
    Ok(())
}

/// The layers before the first stage: the paper's, which shrink 224x224 by 4 (GoogLeNet:
/// 7x7/2 conv, max pool, 1x1 and 3x3 convs, max pool; ResNet: 7x7/2 conv, 3x3/2 max pool), or
/// for 28x28 and 32x32 images a 3x3/1 first conv and no early pooling (GoogLeNet keeps the
/// pool after its 3x3 conv), as CIFAR networks do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stem {
    #[default]
    Imagenet,
    Small,
}

/// conv -> [batch norm] -> ReLU, the unit VGG, AlexNet and GoogLeNet stack.
#[derive(Module, Debug)]
pub struct ConvUnit {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
}

impl ConvUnit {
    /// The unit on the builder's current map, as rows `{name}.conv`, `{name}.bn`, `{name}.relu`.
    /// `batch_norm`: its epsilon, when the unit has one. `bias`: whether the convolution has
    /// one (torchvision keeps it in `vgg16_bn` and drops it in GoogLeNet's batch-norm units).
    pub fn build(
        b: &mut NetBuilder,
        name: &str,
        shape: ConvShape,
        batch_norm: Option<f64>,
        bias: bool,
    ) -> Self {
        let conv = b.conv(&format!("{name}.conv"), shape, bias, Init::He);
        let bn = batch_norm.map(|eps| b.batch_norm_eps(&format!("{name}.bn"), eps));
        b.elementwise(&format!("{name}.relu"), "relu");
        Self { conv, bn }
    }

    /// # Shapes
    /// - input: `[batch, in_channels, height, width]`; output: `[batch, out_channels, height', width']`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = kernels::conv2d(&self.conv, x);
        relu(match &self.bn {
            Some(bn) => batch_norm_f32(bn, x),
            None => x,
        })
    }
}

/// A `ConvUnit` followed by an optional max pool and an optional LRN: AlexNet's and ZFNet's
/// rows, GoogLeNet's stem.
#[derive(Module, Debug)]
pub struct ConvStage {
    pub unit: ConvUnit,
    pub pool: Option<MaxPool2d>,
    /// Constants only: no weights to save (Burn's `LocalResponseNorm` keeps them private).
    #[module(skip)]
    pub lrn: Option<LocalResponseNormConfig>,
}

impl ConvStage {
    /// # Shapes
    /// - input: `[batch, in_channels, height, width]`; output: `[batch, out_channels, height', width']`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.unit.forward(x);
        if let Some(pool) = &self.pool {
            x = kernels::max_pool2d(pool, x);
        }
        match &self.lrn {
            Some(lrn) => kernels::local_response_norm(lrn, x),
            None => x,
        }
    }
}

/// Where the fully connected head applies dropout: before each hidden layer (torchvision's
/// AlexNet) or after each hidden ReLU (its VGG).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropoutPlace {
    BeforeHidden,
    AfterHidden,
}

/// The head after the features: flatten, hidden FC + ReLU layers, the class layer (He
/// initialization), and the one dropout module they share.
pub struct ClassifierHead {
    pub hidden: Vec<Linear>,
    pub fc: Linear,
    pub dropout: Dropout,
}

impl ClassifierHead {
    pub fn build(
        b: &mut NetBuilder,
        hidden: &[usize],
        classes: usize,
        dropout: f64,
        place: DropoutPlace,
    ) -> Self {
        b.flatten("flatten");
        let layers = hidden
            .iter()
            .enumerate()
            .map(|(i, &out)| {
                let (fc, drop) = (format!("fc{}", i + 1), format!("dropout{}", i + 1));
                if place == DropoutPlace::BeforeHidden {
                    b.elementwise(&drop, "dropout");
                }
                let layer = b.linear(&fc, out, Init::He, 0.0);
                b.elementwise(&format!("{fc}.relu"), "relu");
                if place == DropoutPlace::AfterHidden {
                    b.elementwise(&drop, "dropout");
                }
                layer
            })
            .collect();
        Self {
            hidden: layers,
            fc: b.linear("fc", classes, Init::He, 0.0),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }
}

/// torchvision's `classifier.N` names for the head's `hidden.{i}` and `fc`: its Sequential
/// counts a dropout, a linear layer and a ReLU per hidden layer, then the class layer.
pub fn classifier_layout(
    layout: PytorchLayout,
    hidden: usize,
    place: DropoutPlace,
) -> PytorchLayout {
    let before = usize::from(place == DropoutPlace::BeforeHidden);
    (0..hidden)
        .fold(layout, |l, i| {
            l.layer(
                format!("hidden.{i}"),
                format!("classifier.{}", 3 * i + before),
            )
        })
        .layer("fc", format!("classifier.{}", 3 * hidden))
}

/// Runs the head on `[batch, features]`.
///
/// # Shapes
/// - x: `[batch, features]`; output: `[batch, num_classes]`
pub fn classifier_forward(
    x: Tensor<2>,
    hidden: &[Linear],
    fc: &Linear,
    dropout: &Dropout,
    place: DropoutPlace,
) -> Tensor<2> {
    let x = hidden.iter().fold(x, |x, layer| match place {
        DropoutPlace::BeforeHidden => relu(layer.forward(kernels::dropout(dropout, x))),
        DropoutPlace::AfterHidden => kernels::dropout(dropout, relu(layer.forward(x))),
    });
    fc.forward(x)
}
