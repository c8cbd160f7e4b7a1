//! Pieces the convolutional families share: the conv -> [batch norm] -> ReLU unit, width
//! scaling, and a builder for the summary table that follows the feature-map shape.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, Initializer, Linear, LocalResponseNorm, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::{linear_layer, Init};
use crate::config::Invalid;
use crate::summary::LayerSummary;

/// `channels` times the width multiplier, rounded, and at least 1 (the narrowed configs).
pub fn scaled(channels: usize, width: f64) -> usize {
    ((channels as f64 * width).round() as usize).max(1)
}

/// Checks a width multiplier.
pub fn validate_width(width: f64) -> Result<(), Invalid> {
    if !(width > 0.0 && width <= 4.0) {
        return Err((
            "width".into(),
            format!("expected a multiplier in (0, 4], got {width}"),
        ));
    }
    Ok(())
}

/// Checks a dropout probability under `key`.
pub fn validate_dropout(key: &str, p: f64) -> Result<(), Invalid> {
    if !(0.0..1.0).contains(&p) {
        return Err((
            key.into(),
            format!("expected a probability in [0, 1), got {p}"),
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

/// One convolution's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvShape {
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel,
            stride: 1,
            padding: 0,
        }
    }

    pub fn stride(self, stride: usize) -> Self {
        Self { stride, ..self }
    }

    pub fn padding(self, padding: usize) -> Self {
        Self { padding, ..self }
    }

    /// Zero padding that keeps the side for stride 1 (odd kernels).
    pub fn same(self) -> Self {
        self.padding(self.kernel / 2)
    }

    /// The Burn convolution with He initialization (normal, variance 2 / fan_in) and zero
    /// bias, as the notes recommend for ReLU nets: Burn's default (PyTorch's) shrinks the
    /// signal at every layer, and a deep net then starts stuck at chance.
    pub fn conv(&self, bias: bool, device: &Device) -> Conv2d {
        let p = self.padding;
        let mut conv = Conv2dConfig::new([self.in_channels, self.out_channels], [self.kernel; 2])
            .with_stride([self.stride; 2])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(bias)
            .with_initializer(Initializer::KaimingNormal {
                gain: 2f64.sqrt(),
                fan_out_only: false,
            })
            .init(device);
        if bias {
            conv.bias = Some(Initializer::Zeros.init([self.out_channels], device));
        }
        conv
    }
}

/// conv -> [batch norm] -> ReLU, the unit VGG, AlexNet and GoogLeNet stack.
#[derive(Module, Debug)]
pub struct ConvUnit {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
}

impl ConvUnit {
    /// `bias`: whether the convolution has one (torchvision keeps it in `vgg16_bn` and drops
    /// it in GoogLeNet's batch-norm units).
    pub fn new(shape: ConvShape, batch_norm: bool, bias: bool, device: &Device) -> Self {
        Self {
            conv: shape.conv(bias, device),
            bn: batch_norm.then(|| BatchNormConfig::new(shape.out_channels).init(device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x);
        relu(match &self.bn {
            Some(bn) => bn.forward(x),
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
    pub lrn: Option<LocalResponseNorm>,
}

impl ConvStage {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.unit.forward(x);
        if let Some(pool) = &self.pool {
            x = pool.forward(x);
        }
        match &self.lrn {
            Some(lrn) => lrn.forward(x),
            None => x,
        }
    }
}

/// Max pooling with explicit padding and rounding.
pub fn max_pool(kernel: usize, stride: usize, padding: usize, ceil: bool) -> MaxPool2d {
    MaxPool2dConfig::new([kernel; 2])
        .with_strides([stride; 2])
        .with_padding(PaddingConfig2d::Explicit(
            padding, padding, padding, padding,
        ))
        .with_ceil_mode(ceil)
        .init()
}

/// The summary table being written, with the shape of the current feature map.
pub struct Rows {
    pub rows: Vec<LayerSummary>,
    pub shape: [usize; 3],
}

impl Rows {
    /// Starts at an input of `[channels, height, width]`.
    pub fn new(shape: [usize; 3]) -> Self {
        Self {
            rows: Vec::new(),
            shape,
        }
    }

    /// Appends a row; a feature-map row becomes the current shape.
    pub fn push(&mut self, row: LayerSummary) {
        if let [c, h, w] = row.output_shape[..] {
            self.shape = [c, h, w];
        }
        self.rows.push(row);
    }

    /// A convolution's row on the current map, with or without its bias.
    pub fn conv(&mut self, name: &str, shape: ConvShape, bias: bool) {
        let row = LayerSummary::conv2d(
            name,
            self.shape,
            shape.out_channels,
            shape.kernel,
            shape.stride,
            shape.padding,
        );
        self.push(if bias { row } else { row.without_bias() });
    }

    /// A batch norm's row on the current map.
    pub fn batch_norm(&mut self, name: &str) {
        let shape = self.shape;
        self.push(LayerSummary::batch_norm(name, &shape));
    }

    /// A local response normalization's row (it keeps the map's shape).
    pub fn lrn(&mut self, name: &str) {
        let out = self.shape;
        self.push(LayerSummary::elementwise(name, "lrn", &out));
    }

    /// The rows of a `ConvUnit` on the current map.
    pub fn conv_unit(&mut self, name: &str, shape: ConvShape, batch_norm: bool, bias: bool) {
        self.conv(&format!("{name}.conv"), shape, bias);
        if batch_norm {
            self.batch_norm(&format!("{name}.bn"));
        }
        let out = self.shape;
        self.push(LayerSummary::elementwise(
            &format!("{name}.relu"),
            "relu",
            &out,
        ));
    }

    pub fn max_pool(
        &mut self,
        name: &str,
        kernel: usize,
        stride: usize,
        padding: usize,
        ceil: bool,
    ) {
        let row = LayerSummary::pool2d(name, "maxpool", self.shape, kernel, stride, padding, ceil);
        self.push(row);
    }

    /// The first row whose feature map has no pixels left (the input was too small).
    pub fn first_empty_map(&self) -> Option<&LayerSummary> {
        self.rows
            .iter()
            .find(|r| r.output_shape.len() == 3 && r.output_shape[1..].contains(&0))
    }
}

/// The error when a network's input is too small for its downsampling.
pub fn too_small(rows: &Rows, input: [usize; 3]) -> Result<(), Invalid> {
    match rows.first_empty_map() {
        Some(row) => Err((
            "kind".into(),
            format!(
                "a {}x{} input shrinks to nothing at layer {}; use a larger input (data.resize) or fewer poolings",
                input[1], input[2], row.name
            ),
        )),
        None => Ok(()),
    }
}

/// Where the fully connected head applies dropout: before each hidden layer (torchvision's
/// AlexNet) or after each hidden ReLU (its VGG).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropoutPlace {
    BeforeHidden,
    AfterHidden,
}

/// The summary rows of a head of hidden FC + ReLU layers and a class layer, from the
/// flattened current map.
pub fn classifier_rows(rows: &mut Rows, hidden: &[usize], classes: usize, place: DropoutPlace) {
    rows.push(LayerSummary::flatten_map("flatten", rows.shape));
    let mut width = rows.shape.iter().product();
    for (i, &out) in hidden.iter().enumerate() {
        let (fc, dropout) = (format!("fc{}", i + 1), format!("dropout{}", i + 1));
        if place == DropoutPlace::BeforeHidden {
            rows.push(LayerSummary::elementwise(&dropout, "dropout", &[width]));
        }
        rows.push(LayerSummary::linear(&fc, width, out));
        rows.push(LayerSummary::elementwise(
            &format!("{fc}.relu"),
            "relu",
            &[out],
        ));
        if place == DropoutPlace::AfterHidden {
            rows.push(LayerSummary::elementwise(&dropout, "dropout", &[out]));
        }
        width = out;
    }
    rows.push(LayerSummary::linear("fc", width, classes));
}

/// The hidden layers and the class layer of such a head (He initialization).
pub fn classifier_layers(
    features: usize,
    hidden: &[usize],
    classes: usize,
    device: &Device,
) -> (Vec<Linear>, Linear) {
    let mut width = features;
    let layers = hidden
        .iter()
        .map(|&out| {
            let layer = linear_layer(width, out, Init::He, 0.0, device);
            width = out;
            layer
        })
        .collect();
    (layers, linear_layer(width, classes, Init::He, 0.0, device))
}

/// Runs the head on `[batch, features]`.
pub fn classifier_forward(
    x: Tensor<2>,
    hidden: &[Linear],
    fc: &Linear,
    dropout: &Dropout,
    place: DropoutPlace,
) -> Tensor<2> {
    let x = hidden.iter().fold(x, |x, layer| match place {
        DropoutPlace::BeforeHidden => relu(layer.forward(dropout.forward(x))),
        DropoutPlace::AfterHidden => dropout.forward(relu(layer.forward(x))),
    });
    fc.forward(x)
}

/// Inputs and table lookups the CNN families' tests share.
#[cfg(test)]
pub mod testing {
    use super::*;
    use crate::models::ModelInput;

    /// 1x28x28, 10 classes (Fashion-MNIST).
    pub fn fashion() -> ModelInput {
        ModelInput {
            channels: 1,
            height: 28,
            width: 28,
            num_classes: 10,
        }
    }

    /// 3 x side x side, 1000 classes (ImageNet).
    pub fn imagenet(side: usize) -> ModelInput {
        ModelInput {
            channels: 3,
            height: side,
            width: side,
            num_classes: 1000,
        }
    }

    pub fn total_params(rows: &[LayerSummary]) -> usize {
        rows.iter().map(|r| r.params).sum()
    }

    /// What Burn's `num_params` counts: parameters and batch-norm running statistics.
    pub fn params_and_buffers(rows: &[LayerSummary]) -> usize {
        rows.iter().map(|r| r.params + r.buffers).sum()
    }

    /// The output shape of the row called `name`.
    pub fn shape_of(rows: &[LayerSummary], name: &str) -> Vec<usize> {
        let row = rows.iter().find(|r| r.name == name);
        row.unwrap_or_else(|| panic!("no row {name}"))
            .output_shape
            .clone()
    }
}
