//! AlexNet (Krizhevsky et al., 2012; single tower, as the notes tabulate it) and ZFNet
//! (Zeiler & Fergus, 2013): rows of conv -> ReLU -> \[max pool 3/2\] -> \[LRN\], then dropout and
//! fully connected layers. The rows are data: the papers' tables below, or `features` in TOML.

use burn::nn::pool::AdaptiveAvgPool2d;
use burn::nn::{Dropout, Linear, LocalResponseNormConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::cnn::{
    classifier_forward, classifier_layout, scaled, validate_width, ClassifierHead, ConvStage,
    ConvUnit, DropoutPlace,
};
use super::builder::{ConvShape, NetBuilder};
use super::pytorch_names::PytorchLayout;
use super::family::{ImageClassifier, ImageFamily};
use crate::input::ModelInput;
use crate::invalid::{probability, Invalid};

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

/// Which paper's table fills in what the config leaves out (set by `model.kind`: `alexnet` or
/// `zfnet`, which is why it is no key of its own).
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
    /// An adaptive average pool to this `[height, width]` before the classifier
    /// (torchvision's `[6, 6]`; none in the papers).
    pub avgpool: Option<[usize; 2]>,
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
            avgpool: None,
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
}

impl ImageFamily for AlexNetConfig {
    const KINDS: &'static [&'static str] = &["alexnet", "zfnet"];
    type Module = AlexNet;

    fn read_as(self, kind: &str) -> Self {
        let variant = match kind {
            "zfnet" => AlexNetVariant::Zfnet,
            _ => AlexNetVariant::Alexnet,
        };
        Self { variant, ..self }
    }

    fn kind(&self) -> &'static str {
        match self.variant {
            AlexNetVariant::Alexnet => "alexnet",
            AlexNetVariant::Zfnet => "zfnet",
        }
    }

    fn validate(&self, _input: &ModelInput) -> Result<(), Invalid> {
        validate_width(self.width)?;
        probability("dropout", self.dropout)?;
        if self.rows().is_empty() {
            return Err(Invalid::new("features", "expected at least one row"));
        }
        if let Some(i) = self
            .rows()
            .iter()
            .position(|r| r.kernel == 0 || r.stride == 0)
        {
            return Err(Invalid::new(
                format!("features[{i}]"),
                "kernel and stride must be at least 1",
            ));
        }
        if self.pool_kernel == 0 || self.pool_stride == 0 {
            return Err(Invalid::new(
                "pool_kernel",
                "pool_kernel and pool_stride must be at least 1",
            ));
        }
        if self.lrn_size == 0 {
            return Err(Invalid::new("lrn_size", "expected at least 1"));
        }
        Ok(())
    }

    /// One stage per row (`conv{i}`, `pool{i}`, `lrn{i}`), then the head (dropout before
    /// each hidden layer).
    /// torchvision's `features.N` (conv, ReLU, \[max pool\], \[LRN\] counted as modules) and
    /// `classifier.N` (dropout, linear, ReLU per hidden layer, then the class layer).
    fn pytorch_layout(&self, _input: &ModelInput) -> PytorchLayout {
        let mut layout = PytorchLayout::default();
        let mut index = 0;
        for (i, row) in self.rows().iter().enumerate() {
            layout = layout.layer(format!("features.{i}.unit.conv"), format!("features.{index}"));
            index += 2 + usize::from(row.pool) + usize::from(row.lrn);
        }
        classifier_layout(layout, self.hidden().len(), DropoutPlace::BeforeHidden)
    }

    fn build(&self, input: &ModelInput, b: &mut NetBuilder) -> AlexNet {
        let lrn = LocalResponseNormConfig::new(self.lrn_size)
            .with_alpha(self.lrn_alpha)
            .with_beta(self.lrn_beta)
            .with_k(self.lrn_k);
        let features = self
            .rows()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let shape = ConvShape::new(b.map()[0], r.channels, r.kernel)
                    .stride(r.stride)
                    .padding(r.padding);
                let unit = ConvUnit::build(b, &format!("conv{}", i + 1), shape, None, true);
                let pool = r.pool.then(|| {
                    let name = format!("pool{}", i + 1);
                    b.max_pool(&name, self.pool_kernel, self.pool_stride, 0, self.ceil())
                });
                let lrn = r.lrn.then(|| b.lrn(&format!("lrn{}", i + 1), &lrn));
                ConvStage { unit, pool, lrn }
            })
            .collect();
        let avgpool = self.avgpool.map(|size| b.adaptive_avg_pool("avgpool", size));
        let head = ClassifierHead::build(
            b,
            &self.hidden(),
            input.num_classes,
            self.dropout,
            DropoutPlace::BeforeHidden,
        );
        AlexNet {
            features,
            avgpool,
            hidden: head.hidden,
            fc: head.fc,
            dropout: head.dropout,
        }
    }
}

#[derive(Module, Debug)]
pub struct AlexNet {
    /// One stage per row: conv + ReLU, then the optional pooling and normalization.
    pub features: Vec<ConvStage>,
    pub avgpool: Option<AdaptiveAvgPool2d>,
    pub hidden: Vec<Linear>,
    pub fc: Linear,
    pub dropout: Dropout,
}

impl ImageClassifier for AlexNet {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

impl AlexNet {
    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self
            .features
            .iter()
            .fold(images, |x, stage| stage.forward(x));
        if let Some(pool) = &self.avgpool {
            x = pool.forward(x);
        }
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
    use crate::models::testing::{built, fashion, imagenet, params_and_buffers, rows, total_params};

    fn sides(config: &AlexNetConfig, input: &ModelInput) -> Vec<usize> {
        rows(config, input)
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
        assert_eq!(total_params(&rows(&config, &input)), 62_378_344);
    }

    #[test]
    fn zfnet_rounds_its_pooling_up() {
        let config = AlexNetConfig::default().read_as("zfnet");
        assert_eq!(config.kind(), "zfnet");
        let input = imagenet(224);
        assert_eq!(sides(&config, &input), [110, 55, 26, 13, 13, 13, 13, 6]);
        assert_eq!(total_params(&rows(&config, &input)), 107_627_624);
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
        let (model, rows) = built(&config, &input);
        assert_eq!(model.num_params(), params_and_buffers(&rows));
        assert_eq!(
            model
                .forward(Tensor::zeros([2, 1, 28, 28], &Device::flex()))
                .dims(),
            [2, 10]
        );
    }

    #[test]
    fn too_small_inputs_are_refused() {
        let device = Device::flex();
        let mut b = NetBuilder::new(&fashion().map(), &device);
        AlexNetConfig::default().build(&fashion(), &mut b);
        let err = b.finish().unwrap_err();
        assert!(err.message.contains("shrinks to nothing"), "{}", err.message);
    }
}
