//! One walk per network: a family's `build` creates every layer through a `NetBuilder`, which
//! writes the layer's row of the summary table (output shape, parameters, buffers,
//! multiply-accumulates) as it creates it, so that the table and the module cannot disagree.
//! Weights are Burn's lazy parameters: building a full-size network for its table allocates none.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, AvgPool2d, AvgPool2dConfig, MaxPool2d,
    MaxPool2dConfig,
};
use burn::nn::{
    BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, LocalResponseNormConfig,
    PaddingConfig2d,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;
use crate::summary::LayerSummary;

/// How fresh weights are drawn (the notes' choices); biases start at zero except for `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// Burn's (and PyTorch's) default: uniform in +-1/sqrt(fan_in), biases too.
    Default,
    /// Xavier/Glorot uniform: variance 2 / (fan_in + fan_out).
    Xavier,
    /// He/Kaiming normal: variance 2 / fan_in.
    He,
    /// Gaussian with the config's `init_std`.
    Normal,
}

impl Init {
    /// Burn's initializer for weights; `None` for `Default`, which keeps the layer's own.
    fn initializer(self, std: f64) -> Option<Initializer> {
        match self {
            Init::Default => None,
            Init::Xavier => Some(Initializer::XavierUniform { gain: 1.0 }),
            Init::He => Some(Initializer::KaimingNormal {
                gain: 2f64.sqrt(),
                fan_out_only: false,
            }),
            Init::Normal => Some(Initializer::Normal { mean: 0.0, std }),
        }
    }
}

/// Batch norm's epsilon unless a family says otherwise (PyTorch's and Burn's default).
pub const BATCH_NORM_EPS: f64 = 1e-5;

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
}

/// The layers of one network being built, and its table so far.
pub struct NetBuilder<'d> {
    device: &'d Device,
    /// What the first layer reads, per example.
    input: Vec<usize>,
    /// The current output per example: `[channels, height, width]` for a map, `[n]` for a vector.
    shape: Vec<usize>,
    rows: Vec<LayerSummary>,
}

impl<'d> NetBuilder<'d> {
    /// Starts at an input of `shape` (per example), creating layers on `device`.
    pub fn new(shape: &[usize], device: &'d Device) -> Self {
        Self {
            device,
            input: shape.to_vec(),
            shape: shape.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn device(&self) -> &'d Device {
        self.device
    }

    /// The current feature map, `[channels, height, width]`.
    pub fn map(&self) -> [usize; 3] {
        match self.shape[..] {
            [c, h, w] => [c, h, w],
            _ => panic!("the current output {:?} is not a feature map", self.shape),
        }
    }

    /// The current output per example.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Elements per example of the current output (the width a flatten gives).
    pub fn features(&self) -> usize {
        self.shape.iter().product()
    }

    /// Continues from another shape: a branch that starts from an earlier map.
    pub fn set_shape(&mut self, shape: &[usize]) {
        self.shape = shape.to_vec();
    }

    /// Appends a row; its output becomes the current shape.
    pub fn row(&mut self, row: LayerSummary) {
        self.shape = row.output_shape.clone();
        self.rows.push(row);
    }

    /// A row for a layer without parameters that keeps the shape (activation, dropout).
    pub fn elementwise(&mut self, name: &str, kind: &str) {
        let shape = self.shape.clone();
        self.row(LayerSummary::elementwise(name, kind, &shape));
    }

    /// Flattens the current map into a vector.
    pub fn flatten(&mut self, name: &str) {
        let row = LayerSummary::flatten_map(name, self.map());
        self.row(row);
    }

    /// A convolution on the current map: He initialization with zero bias, as the notes
    /// recommend for ReLU nets (Burn's default, PyTorch's, shrinks the signal at every layer
    /// and a deep net then starts stuck at chance); `Init::Default` keeps Burn's.
    pub fn conv(&mut self, name: &str, shape: ConvShape, bias: bool, init: Init) -> Conv2d {
        let p = shape.padding;
        let mut config =
            Conv2dConfig::new([shape.in_channels, shape.out_channels], [shape.kernel; 2])
                .with_stride([shape.stride; 2])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_bias(bias);
        if let Some(initializer) = init.initializer(0.0) {
            config = config.with_initializer(initializer);
        }
        let mut conv = config.init(self.device);
        if bias && init != Init::Default {
            conv.bias = Some(Initializer::Zeros.init([shape.out_channels], self.device));
        }
        let row = LayerSummary::conv2d(
            name,
            self.map(),
            shape.out_channels,
            shape.kernel,
            shape.stride,
            shape.padding,
        );
        self.row(if bias { row } else { row.without_bias() });
        conv
    }

    /// Batch norm over the channels (or features) of the current output, PyTorch's epsilon.
    pub fn batch_norm(&mut self, name: &str) -> BatchNorm {
        self.batch_norm_eps(name, BATCH_NORM_EPS)
    }

    /// Batch norm with another epsilon (torchvision's GoogLeNet: 1e-3).
    pub fn batch_norm_eps(&mut self, name: &str, epsilon: f64) -> BatchNorm {
        let shape = self.shape.clone();
        self.row(LayerSummary::batch_norm(name, &shape));
        BatchNormConfig::new(shape[0])
            .with_epsilon(epsilon)
            .init(self.device)
    }

    /// Max pooling with explicit padding and rounding (`ceil`).
    pub fn max_pool(
        &mut self,
        name: &str,
        kernel: usize,
        stride: usize,
        padding: usize,
        ceil: bool,
    ) -> MaxPool2d {
        let row = LayerSummary::pool2d(name, "maxpool", self.map(), kernel, stride, padding, ceil);
        self.row(row);
        MaxPool2dConfig::new([kernel; 2])
            .with_strides([stride; 2])
            .with_padding(PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .with_ceil_mode(ceil)
            .init()
    }

    /// Average pooling without padding.
    pub fn avg_pool(&mut self, name: &str, kernel: usize, stride: usize) -> AvgPool2d {
        let row = LayerSummary::pool2d(name, "avgpool", self.map(), kernel, stride, 0, false);
        self.row(row);
        AvgPool2dConfig::new([kernel; 2])
            .with_strides([stride; 2])
            .init()
    }

    /// Global average pooling to 1x1.
    pub fn global_avg_pool(&mut self, name: &str) -> AdaptiveAvgPool2d {
        self.adaptive_avg_pool(name, [1, 1])
    }

    /// Average pooling to `output` (height, width) from any size (torchvision's `avgpool`).
    pub fn adaptive_avg_pool(&mut self, name: &str, output: [usize; 2]) -> AdaptiveAvgPool2d {
        let row = LayerSummary::adaptive_avg_pool(name, self.map(), output);
        self.row(row);
        AdaptiveAvgPool2dConfig::new(output).init()
    }

    /// Local response normalization (keeps the map's shape).
    pub fn lrn(&mut self, name: &str, config: &LocalResponseNormConfig) -> LocalResponseNormConfig {
        self.elementwise(name, "lrn");
        config.clone()
    }

    /// A fully connected layer from the current vector to `out`, initialized as `init` says
    /// (zero bias except for `Init::Default`).
    pub fn linear(&mut self, name: &str, out: usize, init: Init, init_std: f64) -> Linear {
        let d_in = self.features();
        self.row(LayerSummary::linear(name, d_in, out));
        let Some(initializer) = init.initializer(init_std) else {
            return LinearConfig::new(d_in, out).init(self.device);
        };
        let mut layer = LinearConfig::new(d_in, out)
            .with_initializer(initializer)
            .init(self.device);
        layer.bias = Some(Initializer::Zeros.init_with([out], Some(d_in), Some(out), self.device));
        layer
    }

    /// The table, or the error for an input too small for the network's downsampling.
    pub fn finish(self) -> Result<Vec<LayerSummary>, Invalid> {
        let empty = self
            .rows
            .iter()
            .find(|r| r.output_shape.len() == 3 && r.output_shape[1..].contains(&0));
        match empty {
            Some(row) => Err(Invalid::data(
                "resize",
                format!(
                    "a {}x{} input shrinks to nothing at layer {}; use a larger input (data.resize) or fewer poolings",
                    self.input.get(1).unwrap_or(&0),
                    self.input.get(2).unwrap_or(&0),
                    row.name
                ),
            )),
            None => Ok(self.rows),
        }
    }
}

/// `bn` applied in its own precision, f32: under mixed precision (`train::precision`) the rest
/// of the network computes in half precision, batch norm and its running statistics in f32.
/// Training on Flex runs our kernel (`kernels::batch_norm`).
///
/// # Shapes
/// - x: `[batch, channels, ...]`; output: the same
pub fn batch_norm_f32<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let dtype = x.dtype();
    kernels::batch_norm(bn, x.cast(bn.gamma.val().dtype())).cast(dtype)
}
