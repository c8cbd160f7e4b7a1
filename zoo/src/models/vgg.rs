//! VGG (Simonyan & Zisserman, 2014): 3x3/1 pad 1 convolutions and 2x2/2 max pools from one
//! list of channels and pool markers, then FC 4096 -> 4096 -> classes with dropout 0.5.
//! Depths 11/13/16/19 are the paper's configurations A, B, D and E; `batch_norm` adds BN
//! after every convolution (torchvision's `vgg16_bn`).
//!
//! torchvision adds an adaptive average pool to 7x7 before the classifier (`avgpool = [7, 7]`,
//! as `configs/torchvision/vgg*.toml` set); at 224x224 it is the identity, and without it
//! smaller inputs flatten what they have.

use burn::nn::pool::{AdaptiveAvgPool2d, MaxPool2d};
use burn::nn::{Dropout, Linear};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::cnn::{
    classifier_forward, classifier_layout, scaled, validate_width, ClassifierHead, ConvUnit, DropoutPlace,
};
use super::builder::{ConvShape, NetBuilder, BATCH_NORM_EPS};
use super::pytorch_names::PytorchLayout;
use super::family::{ImageClassifier, ImageFamily};
use crate::input::ModelInput;
use crate::invalid::{probability, Invalid};

/// One entry of the channel list: a 3x3 convolution with this many channels, or "M" for a
/// 2x2/2 max pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum VggItem {
    Conv(usize),
    Pool(PoolMarker),
}

/// The "M" of the paper's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PoolMarker {
    M,
}

/// Reads a channel count or "M", with an error that says so (serde's untagged enums don't).
impl<'de> Deserialize<'de> for VggItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl serde::de::Visitor<'_> for ItemVisitor {
            type Value = VggItem;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a channel count or \"M\" (a max pool)")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<VggItem, E> {
                match usize::try_from(v) {
                    Ok(c) if c > 0 => Ok(C(c)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<VggItem, E> {
                match v {
                    "M" => Ok(M),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}

use VggItem::{Conv as C, Pool as P};
const M: VggItem = P(PoolMarker::M);

/// Configuration A (11 weight layers).
#[rustfmt::skip]
pub const VGG11: &[VggItem] = &[
    C(64), M, C(128), M, C(256), C(256), M, C(512), C(512), M, C(512), C(512), M,
];
/// Configuration B (13).
#[rustfmt::skip]
pub const VGG13: &[VggItem] = &[
    C(64), C(64), M, C(128), C(128), M, C(256), C(256), M, C(512), C(512), M, C(512), C(512), M,
];
/// Configuration D (16), the notes' VGG16.
#[rustfmt::skip]
pub const VGG16: &[VggItem] = &[
    C(64), C(64), M, C(128), C(128), M, C(256), C(256), C(256), M,
    C(512), C(512), C(512), M, C(512), C(512), C(512), M,
];
/// Configuration E (19).
#[rustfmt::skip]
pub const VGG19: &[VggItem] = &[
    C(64), C(64), M, C(128), C(128), M, C(256), C(256), C(256), C(256), M,
    C(512), C(512), C(512), C(512), M, C(512), C(512), C(512), C(512), M,
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VggConfig {
    /// 11, 13, 16 or 19: picks the paper's list when `layers` is absent.
    pub depth: usize,
    /// Channels and "M" markers, e.g. [64, 64, "M", 128, ...]; overrides `depth`.
    pub layers: Option<Vec<VggItem>>,
    pub batch_norm: bool,
    /// Multiplier on the conv channels and the classifier widths (1 = the paper).
    pub width: f64,
    /// Round pooled sides up, so that 28x28 survives five pools (28, 14, 7, 4, 2, 1).
    pub ceil_mode: bool,
    /// An adaptive average pool to this `[height, width]` before the classifier
    /// (torchvision's `[7, 7]`).
    pub avgpool: Option<[usize; 2]>,
    /// Hidden fully connected widths before the class layer.
    pub classifier: Vec<usize>,
    pub dropout: f64,
}

impl Default for VggConfig {
    fn default() -> Self {
        Self {
            depth: 16,
            layers: None,
            batch_norm: false,
            width: 1.0,
            ceil_mode: false,
            avgpool: None,
            classifier: vec![4096, 4096],
            dropout: 0.5,
        }
    }
}

impl VggConfig {
    fn items(&self) -> Vec<VggItem> {
        let paper = match self.depth {
            11 => VGG11,
            13 => VGG13,
            19 => VGG19,
            _ => VGG16,
        };
        self.layers
            .clone()
            .unwrap_or_else(|| paper.to_vec())
            .into_iter()
            .map(|item| match item {
                C(c) => C(scaled(c, self.width)),
                pool => pool,
            })
            .collect()
    }

    fn hidden(&self) -> Vec<usize> {
        self.classifier
            .iter()
            .map(|&w| scaled(w, self.width))
            .collect()
    }
}

impl ImageFamily for VggConfig {
    const KINDS: &'static [&'static str] = &["vgg"];
    type Module = Vgg;

    fn validate(&self, _input: &ModelInput) -> Result<(), Invalid> {
        if self.layers.is_none() && ![11, 13, 16, 19].contains(&self.depth) {
            return Err(Invalid::new(
                "depth",
                format!(
                    "expected 11, 13, 16 or 19 (or a `layers` list), got {}",
                    self.depth
                ),
            ));
        }
        if !self.items().iter().any(|i| matches!(i, C(_))) {
            return Err(Invalid::new("layers", "expected at least one convolution"));
        }
        validate_width(self.width)?;
        probability("dropout", self.dropout)
    }

    /// torchvision's `features.N` (conv, [batch norm], ReLU or a max pool, counted as
    /// modules) and `classifier.N` (linear, ReLU, dropout per hidden layer, the class layer).
    fn pytorch_layout(&self, _input: &ModelInput) -> PytorchLayout {
        let mut layout = PytorchLayout::default();
        let mut index = 0;
        for (k, item) in self.items().iter().enumerate() {
            if let P(_) = item {
                index += 1;
                continue;
            }
            layout = layout.layer(format!("features.{k}.conv"), format!("features.{index}"));
            if self.batch_norm {
                layout = layout.layer(format!("features.{k}.bn"), format!("features.{}", index + 1));
            }
            index += 2 + usize::from(self.batch_norm);
        }
        classifier_layout(layout, self.hidden().len(), DropoutPlace::AfterHidden)
    }

    /// `conv{n}` units and `pool{n}` pools from the channel list, then the head (dropout after
    /// each hidden ReLU).
    fn build(&self, input: &ModelInput, b: &mut NetBuilder) -> Vgg {
        let (mut conv, mut pool) = (0, 0);
        let features = self
            .items()
            .into_iter()
            .map(|item| match item {
                C(channels) => {
                    conv += 1;
                    let shape = ConvShape::new(b.map()[0], channels, 3).same();
                    let name = format!("conv{conv}");
                    VggLayer::Conv(ConvUnit::build(b, &name, shape, self.batch_norm.then_some(BATCH_NORM_EPS), true))
                }
                P(_) => {
                    pool += 1;
                    VggLayer::Pool(b.max_pool(&format!("pool{pool}"), 2, 2, 0, self.ceil_mode))
                }
            })
            .collect();
        let avgpool = self.avgpool.map(|size| b.adaptive_avg_pool("avgpool", size));
        let head = ClassifierHead::build(
            b,
            &self.hidden(),
            input.num_classes,
            self.dropout,
            DropoutPlace::AfterHidden,
        );
        Vgg {
            features,
            avgpool,
            hidden: head.hidden,
            fc: head.fc,
            dropout: head.dropout,
        }
    }
}

// Burn's Module derive takes the layers as they are, not boxed; a network holds a few dozen.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum VggLayer {
    Conv(ConvUnit),
    Pool(MaxPool2d),
}

#[derive(Module, Debug)]
pub struct Vgg {
    pub features: Vec<VggLayer>,
    pub avgpool: Option<AdaptiveAvgPool2d>,
    pub hidden: Vec<Linear>,
    pub fc: Linear,
    pub dropout: Dropout,
}

impl ImageClassifier for Vgg {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

impl Vgg {
    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = images;
        for layer in &self.features {
            x = match layer {
                VggLayer::Conv(unit) => unit.forward(x),
                VggLayer::Pool(pool) => kernels::max_pool2d(pool, x),
            };
        }
        if let Some(pool) = &self.avgpool {
            x = pool.forward(x);
        }
        classifier_forward(
            x.flatten(1, 3),
            &self.hidden,
            &self.fc,
            &self.dropout,
            DropoutPlace::AfterHidden,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testing::{
        built, fashion, imagenet, params_and_buffers, rows, shape_of, total_params,
    };

    fn params(config: &VggConfig) -> usize {
        total_params(&rows(config, &imagenet(224)))
    }

    #[test]
    fn paper_configurations_have_the_notes_counts() {
        let depth = |depth| VggConfig {
            depth,
            ..VggConfig::default()
        };
        assert_eq!(params(&depth(11)), 132_863_336);
        assert_eq!(params(&depth(13)), 133_047_848);
        assert_eq!(params(&depth(16)), 138_357_544);
        assert_eq!(params(&depth(19)), 143_667_240);
        // Batch norm adds a scale and a shift per channel; the conv biases stay (torchvision).
        let bn = VggConfig {
            batch_norm: true,
            ..VggConfig::default()
        };
        assert_eq!(params(&bn), 138_365_992);
    }

    #[test]
    fn five_pools_reach_7x7_at_224() {
        let rows = rows(&VggConfig::default(), &imagenet(224));
        assert_eq!(shape_of(&rows, "flatten"), [7 * 7 * 512]);
    }

    #[test]
    fn channel_lists_read_from_toml() {
        let config: VggConfig =
            toml::from_str("layers = [8, \"M\", 16, \"M\"]\nwidth = 0.5").unwrap();
        assert_eq!(config.items(), [C(4), M, C(8), M]);
        let err = toml::from_str::<VggConfig>("layers = [8, \"X\"]").unwrap_err();
        assert!(
            err.to_string().contains("a channel count or \"M\""),
            "{err}"
        );
        assert!(toml::from_str::<VggConfig>("layers = [0]").is_err());
    }

    #[test]
    fn narrowed_module_matches_its_table() {
        let input = fashion();
        let config = VggConfig {
            width: 1.0 / 16.0,
            ceil_mode: true,
            batch_norm: true,
            ..VggConfig::default()
        };
        config.validate(&input).unwrap();
        let (model, rows) = built(&config, &input);
        let device = Device::flex();
        assert_eq!(model.num_params(), params_and_buffers(&rows));
        assert_eq!(
            model.forward(Tensor::zeros([2, 1, 28, 28], &device)).dims(),
            [2, 10]
        );
        // Without ceil mode the fifth pool has nothing left to pool.
        let floor = VggConfig {
            ceil_mode: false,
            ..config
        };
        let mut b = NetBuilder::new(&input.map(), &device);
        floor.build(&input, &mut b);
        let err = b.finish().unwrap_err();
        assert!(err.message.contains("at layer pool5"), "{}", err.message);
    }
}
