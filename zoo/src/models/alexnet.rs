//! AlexNet (Krizhevsky et al., 2012; single tower, as the notes tabulate it) and ZFNet
//! (Zeiler & Fergus, 2013): rows of conv -> ReLU -> [max pool 3/2] -> [LRN], then dropout and
//! fully connected layers. The rows are data: the papers' tables below, or `features` in TOML.

use burn::nn::{Dropout, DropoutConfig, Linear, LocalResponseNormConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::cnn::{
    classifier_forward, classifier_layers, classifier_rows, max_pool, scaled, too_small,
    validate_dropout, validate_width, ConvShape, ConvStage, ConvUnit, DropoutPlace, Rows,
};
use super::ModelInput;
use crate::config::Invalid;
use crate::summary::LayerSummary;

/// One convolutional row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvRow {
    pub channels: usize,
    pub kernel: usize,
    #[serde(default = "one")]
    pub stride: usize,
    #[serde(default)]
    pub padding: usize,
    /// Max pooling after the ReLU.
    #[serde(default)]
    pub pool: bool,
    /// Local response normalization after the pooling.
    #[serde(default)]
    pub lrn: bool,
}

fn one() -> usize {
    1
}

const fn row(
    channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    pool: bool,
    lrn: bool,
) -> ConvRow {
    ConvRow {
        channels,
        kernel,
        stride,
        padding,
        pool,
        lrn,
    }
}

/// The notes' AlexNet table (227x227x3): 55, 27, 27, 13, 13, 13, 13, 6.
pub const ALEXNET_ROWS: [ConvRow; 5] = [
    row(96, 11, 4, 0, true, true),
    row(256, 5, 1, 2, true, true),
    row(384, 3, 1, 1, false, false),
    row(384, 3, 1, 1, false, false),
    row(256, 3, 1, 1, true, false),
];

/// ZFNet (224x224x3, pooling rounded up): 110, 55, 26, 13, 13, 13, 13, 6.
pub const ZFNET_ROWS: [ConvRow; 5] = [
    row(96, 7, 2, 1, true, true),
    row(256, 5, 2, 0, true, true),
    row(512, 3, 1, 1, false, false),
    row(1024, 3, 1, 1, false, false),
    row(512, 3, 1, 1, true, false),
];

/// Which paper's table fills in what the config leaves out (set by `model.kind`, which is
/// why it is no key of its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlexNetVariant {
    #[default]
    Alexnet,
    Zfnet,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlexNetConfig {
    #[serde(skip)]
    pub variant: AlexNetVariant,
    /// The convolutional rows; the paper's table when absent.
    pub features: Option<Vec<ConvRow>>,
    /// Multiplier on every row's channels and on the classifier widths (1 = the paper).
    pub width: f64,
    pub pool_kernel: usize,
    pub pool_stride: usize,
    /// Round pooled sides up (Caffe); by default off for AlexNet and on for ZFNet.
    pub ceil_mode: Option<bool>,
    /// Hidden fully connected widths before the class layer.
    pub classifier: Vec<usize>,
    /// Dropout before each hidden fully connected layer.
    pub dropout: f64,
    /// The LRN window in channels and its constants (the paper's n, alpha, beta, k).
    pub lrn_size: usize,
    pub lrn_alpha: f64,
    pub lrn_beta: f64,
    pub lrn_k: f64,
}

impl Default for AlexNetConfig {
    fn default() -> Self {
        Self {
            variant: AlexNetVariant::Alexnet,
            features: None,
            width: 1.0,
            pool_kernel: 3,
            pool_stride: 2,
            ceil_mode: None,
            classifier: vec![4096, 4096],
            dropout: 0.5,
            lrn_size: 5,
            lrn_alpha: 1e-4,
            lrn_beta: 0.75,
            lrn_k: 2.0,
        }
    }
}

impl AlexNetConfig {
    fn rows(&self) -> Vec<ConvRow> {
        let paper = match self.variant {
            AlexNetVariant::Alexnet => &ALEXNET_ROWS,
            AlexNetVariant::Zfnet => &ZFNET_ROWS,
        };
        let rows = self.features.clone().unwrap_or_else(|| paper.to_vec());
        rows.into_iter()
            .map(|r| ConvRow {
                channels: scaled(r.channels, self.width),
                ..r
            })
            .collect()
    }

    fn ceil(&self) -> bool {
        self.ceil_mode
            .unwrap_or(self.variant == AlexNetVariant::Zfnet)
    }

    fn hidden(&self) -> Vec<usize> {
        self.classifier
            .iter()
            .map(|&w| scaled(w, self.width))
            .collect()
    }

    pub fn validate(&self, input: &ModelInput) -> Result<(), Invalid> {
        validate_width(self.width)?;
        validate_dropout("dropout", self.dropout)?;
        if self.rows().is_empty() {
            return Err(("features".into(), "expected at least one row".into()));
        }
        if let Some(i) = self
            .rows()
            .iter()
            .position(|r| r.kernel == 0 || r.stride == 0)
        {
            return Err((
                format!("features[{i}]"),
                "kernel and stride must be at least 1".into(),
            ));
        }
        if self.pool_kernel == 0 || self.pool_stride == 0 {
            return Err((
                "pool_kernel".into(),
                "pool_kernel and pool_stride must be at least 1".into(),
            ));
        }
        if self.lrn_size == 0 {
            return Err(("lrn_size".into(), "expected at least 1".into()));
        }
        too_small(
            &self.feature_rows(input),
            [input.channels, input.height, input.width],
        )
    }

    fn feature_rows(&self, input: &ModelInput) -> Rows {
        let mut rows = Rows::new([input.channels, input.height, input.width]);
        for (i, r) in self.rows().iter().enumerate() {
            let name = format!("conv{}", i + 1);
            let shape = ConvShape::new(rows.shape[0], r.channels, r.kernel)
                .stride(r.stride)
                .padding(r.padding);
            rows.conv_unit(&name, shape, false, true);
            if r.pool {
                rows.max_pool(
                    &format!("pool{}", i + 1),
                    self.pool_kernel,
                    self.pool_stride,
                    0,
                    self.ceil(),
                );
            }
            if r.lrn {
                rows.lrn(&format!("lrn{}", i + 1));
            }
        }
        rows
    }

    pub fn layers(&self, input: &ModelInput) -> Vec<LayerSummary> {
        let mut rows = self.feature_rows(input);
        classifier_rows(
            &mut rows,
            &self.hidden(),
            input.num_classes,
            DropoutPlace::BeforeHidden,
        );
        rows.rows
    }

    pub fn init(&self, input: &ModelInput, device: &Device) -> AlexNet {
        let mut in_channels = input.channels;
        let features = self
            .rows()
            .iter()
            .map(|r| {
                let shape = ConvShape::new(in_channels, r.channels, r.kernel)
                    .stride(r.stride)
                    .padding(r.padding);
                in_channels = r.channels;
                ConvStage {
                    unit: ConvUnit::new(shape, false, true, device),
                    pool: r
                        .pool
                        .then(|| max_pool(self.pool_kernel, self.pool_stride, 0, self.ceil())),
                    lrn: r.lrn.then(|| {
                        LocalResponseNormConfig::new(self.lrn_size)
                            .with_alpha(self.lrn_alpha)
                            .with_beta(self.lrn_beta)
                            .with_k(self.lrn_k)
                            .init()
                    }),
                }
            })
            .collect();
        let features_out: usize = self.feature_rows(input).shape.iter().product();
        let (hidden, fc) =
            classifier_layers(features_out, &self.hidden(), input.num_classes, device);
        AlexNet {
            features,
            hidden,
            fc,
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

#[derive(Module, Debug)]
pub struct AlexNet {
    /// One stage per row: conv + ReLU, then the optional pooling and normalization.
    pub features: Vec<ConvStage>,
    pub hidden: Vec<Linear>,
    pub fc: Linear,
    pub dropout: Dropout,
}

impl AlexNet {
    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self
            .features
            .iter()
            .fold(images, |x, stage| stage.forward(x));
        classifier_forward(
            x.flatten(1, 3),
            &self.hidden,
            &self.fc,
            &self.dropout,
            DropoutPlace::BeforeHidden,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::cnn::testing::{fashion, imagenet, params_and_buffers, total_params};

    fn sides(config: &AlexNetConfig, input: &ModelInput) -> Vec<usize> {
        config
            .layers(input)
            .iter()
            .filter(|r| r.kind == "conv2d" || r.kind == "maxpool")
            .map(|r| r.output_shape[1])
            .collect()
    }

    #[test]
    fn alexnet_follows_the_notes_table() {
        let config = AlexNetConfig::default();
        let input = imagenet(227);
        assert_eq!(sides(&config, &input), [55, 27, 27, 13, 13, 13, 13, 6]);
        assert_eq!(total_params(&config.layers(&input)), 62_378_344);
    }

    #[test]
    fn zfnet_rounds_its_pooling_up() {
        let config = AlexNetConfig {
            variant: AlexNetVariant::Zfnet,
            ..AlexNetConfig::default()
        };
        let input = imagenet(224);
        assert_eq!(sides(&config, &input), [110, 55, 26, 13, 13, 13, 13, 6]);
        assert_eq!(total_params(&config.layers(&input)), 107_627_624);
    }

    #[test]
    fn narrowed_module_matches_its_table() {
        let input = fashion();
        let config = AlexNetConfig {
            width: 0.125,
            features: Some(vec![
                row(96, 5, 1, 2, true, true),
                row(256, 3, 1, 1, true, true),
                row(384, 3, 1, 1, false, false),
                row(384, 3, 1, 1, false, false),
                row(256, 3, 1, 1, true, false),
            ]),
            ..AlexNetConfig::default()
        };
        config.validate(&input).unwrap();
        let device = Device::flex();
        let model = config.init(&input, &device);
        assert_eq!(
            model.num_params(),
            params_and_buffers(&config.layers(&input))
        );
        assert_eq!(
            model.forward(Tensor::zeros([2, 1, 28, 28], &device)).dims(),
            [2, 10]
        );
    }

    #[test]
    fn too_small_inputs_are_refused() {
        let input = fashion();
        let err = AlexNetConfig::default().validate(&input).unwrap_err();
        assert!(err.1.contains("shrinks to nothing"), "{}", err.1);
    }
}
