//! ResNet (He et al., 2015) in torchvision's layout: conv1 7x7/2 -> bn1 -> ReLU -> max pool
//! 3/2 -> layer1..layer4 of residual blocks -> global average pool -> fc. Depth is data: a
//! block kind and four block counts. Convolutions have no bias (batch norm follows); a
//! 1x1 conv + BN projection (`downsample`) joins the shortcut wherever the shape changes.
//!
//! Field names follow torchvision (`conv1`, `bn1`, `layer1`.., `downsample`, `fc`), except
//! that torchvision's `downsample.0` / `downsample.1` are `downsample.conv` / `downsample.bn`.

use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, MaxPool2d};
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::cnn::{scaled, validate_width, Stem};
use super::builder::{batch_norm_f32, ConvShape, Init, NetBuilder};
use super::pytorch_names::PytorchLayout;
use super::family::{ImageClassifier, ImageFamily};
use crate::input::ModelInput;
use crate::invalid::Invalid;
use crate::summary::LayerSummary;

/// Two 3x3 convolutions (ResNet-18/34), or 1x1 -> 3x3 -> 1x1 with a 4x wider output (50+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockKind {
    Basic,
    Bottleneck,
}

impl BlockKind {
    /// Output channels per stage channel.
    fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// The paper's table: block kind and blocks per stage for each depth.
pub fn paper_depth(depth: usize) -> Option<(BlockKind, [usize; 4])> {
    Some(match depth {
        18 => (BlockKind::Basic, [2, 2, 2, 2]),
        34 => (BlockKind::Basic, [3, 4, 6, 3]),
        50 => (BlockKind::Bottleneck, [3, 4, 6, 3]),
        101 => (BlockKind::Bottleneck, [3, 4, 23, 3]),
        152 => (BlockKind::Bottleneck, [3, 8, 36, 3]),
        _ => return None,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResNetConfig {
    /// 18, 34, 50, 101 or 152: the paper's block kind and counts, unless given below.
    pub depth: usize,
    pub block: Option<BlockKind>,
    /// Blocks in layer1..layer4.
    pub blocks: Option<[usize; 4]>,
    /// Multiplier on every channel count (1 = 64, 128, 256, 512 stage widths).
    pub width: f64,
    pub stem: Stem,
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            depth: 18,
            block: None,
            blocks: None,
            width: 1.0,
            stem: Stem::Imagenet,
        }
    }
}

/// One block's channels and stride.
#[derive(Debug, Clone, Copy)]
struct BlockShape {
    kind: BlockKind,
    in_channels: usize,
    channels: usize,
    stride: usize,
}

impl BlockShape {
    fn out_channels(&self) -> usize {
        self.channels * self.kind.expansion()
    }

    fn needs_projection(&self) -> bool {
        self.stride != 1 || self.in_channels != self.out_channels()
    }

    /// The block's convolutions in order, as (name, geometry).
    fn convs(&self) -> Vec<(&'static str, ConvShape)> {
        let (c, s) = (self.channels, self.stride);
        match self.kind {
            BlockKind::Basic => vec![
                (
                    "conv1",
                    ConvShape::new(self.in_channels, c, 3).stride(s).same(),
                ),
                ("conv2", ConvShape::new(c, c, 3).same()),
            ],
            // The stride sits on the 3x3 conv (torchvision's "ResNet v1.5").
            BlockKind::Bottleneck => vec![
                ("conv1", ConvShape::new(self.in_channels, c, 1)),
                ("conv2", ConvShape::new(c, c, 3).stride(s).same()),
                ("conv3", ConvShape::new(c, self.out_channels(), 1)),
            ],
        }
    }

    fn projection(&self) -> ConvShape {
        ConvShape::new(self.in_channels, self.out_channels(), 1).stride(self.stride)
    }
}

impl ResNetConfig {
    fn layout(&self) -> (BlockKind, [usize; 4]) {
        let (kind, blocks) = paper_depth(self.depth).unwrap_or((BlockKind::Basic, [2, 2, 2, 2]));
        (self.block.unwrap_or(kind), self.blocks.unwrap_or(blocks))
    }

    fn stem_channels(&self) -> usize {
        scaled(64, self.width)
    }

    /// Every block of layer1..layer4, by stage.
    fn stages(&self) -> [Vec<BlockShape>; 4] {
        let (kind, blocks) = self.layout();
        let mut in_channels = self.stem_channels();
        std::array::from_fn(|stage| {
            let channels = scaled(64 << stage, self.width);
            (0..blocks[stage])
                .map(|i| {
                    let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                    let block = BlockShape {
                        kind,
                        in_channels,
                        channels,
                        stride,
                    };
                    in_channels = block.out_channels();
                    block
                })
                .collect()
        })
    }

    fn stem_conv(&self, input: &ModelInput) -> ConvShape {
        match self.stem {
            Stem::Imagenet => ConvShape::new(input.channels, self.stem_channels(), 7)
                .stride(2)
                .padding(3),
            Stem::Small => ConvShape::new(input.channels, self.stem_channels(), 3).same(),
        }
    }
}

impl ImageFamily for ResNetConfig {
    const KINDS: &'static [&'static str] = &["resnet"];
    type Module = ResNet;

    fn validate(&self, _input: &ModelInput) -> Result<(), Invalid> {
        if self.blocks.is_none() && paper_depth(self.depth).is_none() {
            return Err(Invalid::new(
                "depth",
                format!(
                    "expected 18, 34, 50, 101 or 152 (or `blocks`), got {}",
                    self.depth
                ),
            ));
        }
        if self.layout().1.contains(&0) {
            return Err(Invalid::new(
                "blocks",
                "every stage needs at least one block",
            ));
        }
        validate_width(self.width)
    }

    /// torchvision's names, which are zoo's but for the projection's `downsample.0` and `.1`.
    fn pytorch_layout(&self, _input: &ModelInput) -> PytorchLayout {
        let mut layout = PytorchLayout::same_paths();
        for (s, blocks) in self.stages().iter().enumerate() {
            for (i, block) in blocks.iter().enumerate() {
                if block.needs_projection() {
                    let at = format!("layer{}.{i}.downsample", s + 1);
                    layout = layout
                        .layer(format!("{at}.conv"), format!("{at}.0"))
                        .layer(format!("{at}.bn"), format!("{at}.1"));
                }
            }
        }
        layout
    }

    /// conv1, bn1, relu, \[maxpool\], `layer{s}.{i}` blocks (their projection rows after the
    /// main path's), the average pool and fc.
    fn build(&self, input: &ModelInput, b: &mut NetBuilder) -> ResNet {
        let conv1 = b.conv("conv1", self.stem_conv(input), false, Init::He);
        let bn1 = b.batch_norm("bn1");
        b.elementwise("relu", "relu");
        let maxpool = (self.stem == Stem::Imagenet).then(|| b.max_pool("maxpool", 3, 2, 1, false));
        let [layer1, layer2, layer3, layer4] = self.stages();
        let mut stage = |s: usize, blocks: Vec<BlockShape>| -> Vec<ResidualBlock> {
            blocks
                .iter()
                .enumerate()
                .map(|(i, block)| ResidualBlock::build(b, &format!("layer{s}.{i}"), block))
                .collect()
        };
        let (layer1, layer2, layer3, layer4) = (
            stage(1, layer1),
            stage(2, layer2),
            stage(3, layer3),
            stage(4, layer4),
        );
        let avgpool = b.global_avg_pool("avgpool");
        b.flatten("flatten");
        ResNet {
            conv1,
            bn1,
            maxpool,
            layer1,
            layer2,
            layer3,
            layer4,
            avgpool,
            fc: b.linear("fc", input.num_classes, Init::Default, 0.0),
        }
    }
}

/// The shortcut's 1x1 conv + BN (torchvision's `downsample`).
#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

/// A basic block (conv1, conv2) or a bottleneck (conv1, conv2, conv3), each conv with its
/// batch norm, and the shortcut's projection where the shape changes.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    pub downsample: Option<Downsample>,
}

impl ResidualBlock {
    /// The block's rows `{name}.conv1`, `{name}.bn1`, ..., the projection's, and `{name}.add`.
    fn build(b: &mut NetBuilder, name: &str, shape: &BlockShape) -> Self {
        let block_input = b.map();
        let mut convs = Vec::new();
        for (conv_name, conv) in shape.convs() {
            let c = b.conv(&format!("{name}.{conv_name}"), conv, false, Init::He);
            let bn = b.batch_norm(&format!("{name}.{}", conv_name.replace("conv", "bn")));
            convs.push((c, bn));
        }
        let out = b.map();
        let downsample = shape.needs_projection().then(|| {
            b.set_shape(&block_input);
            Downsample {
                conv: b.conv(&format!("{name}.downsample.conv"), shape.projection(), false, Init::He),
                bn: b.batch_norm(&format!("{name}.downsample.bn")),
            }
        });
        b.row(LayerSummary::elementwise(&format!("{name}.add"), "add+relu", &out));
        let mut convs = convs.into_iter();
        let (conv1, bn1) = convs.next().expect("every block has conv1");
        let (conv2, bn2) = convs.next().expect("every block has conv2");
        let (conv3, bn3) = convs.next().unzip();
        Self {
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            downsample,
        }
    }

    /// # Shapes
    /// - x: `[batch, in_channels, height, width]`; output: `[batch, out_channels, height', width']`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.downsample {
            Some(d) => batch_norm_f32(&d.bn, kernels::conv2d(&d.conv, x.clone())),
            None => x.clone(),
        };
        let mut out = batch_norm_f32(
            &self.bn2,
            kernels::conv2d(
                &self.conv2,
                relu(batch_norm_f32(&self.bn1, kernels::conv2d(&self.conv1, x))),
            ),
        );
        if let (Some(conv3), Some(bn3)) = (&self.conv3, &self.bn3) {
            out = batch_norm_f32(bn3, kernels::conv2d(conv3, relu(out)));
        }
        relu(out + shortcut)
    }
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: Option<MaxPool2d>,
    pub layer1: Vec<ResidualBlock>,
    pub layer2: Vec<ResidualBlock>,
    pub layer3: Vec<ResidualBlock>,
    pub layer4: Vec<ResidualBlock>,
    pub avgpool: AdaptiveAvgPool2d,
    pub fc: Linear,
}

impl ImageClassifier for ResNet {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

impl ResNet {
    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = relu(batch_norm_f32(&self.bn1, kernels::conv2d(&self.conv1, images)));
        if let Some(pool) = &self.maxpool {
            x = kernels::max_pool2d(pool, x);
        }
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        self.fc.forward(self.avgpool.forward(x).flatten(1, 3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testing::{
        built, fashion, imagenet, params_and_buffers, rows, shape_of, total_params,
    };

    #[test]
    fn paper_depths_have_torchvision_counts() {
        for (depth, expected) in [
            (18, 11_689_512),
            (34, 21_797_672),
            (50, 25_557_032),
            (101, 44_549_160),
            (152, 60_192_808),
        ] {
            let config = ResNetConfig {
                depth,
                ..ResNetConfig::default()
            };
            assert_eq!(
                total_params(&rows(&config, &imagenet(224))),
                expected,
                "ResNet-{depth}"
            );
        }
    }

    #[test]
    fn stages_halve_the_map() {
        let rows = rows(&ResNetConfig::default(), &imagenet(224));
        assert_eq!(shape_of(&rows, "maxpool"), [64, 56, 56]);
        assert_eq!(shape_of(&rows, "layer2.0.add"), [128, 28, 28]);
        assert_eq!(shape_of(&rows, "layer4.1.add"), [512, 7, 7]);
    }

    #[test]
    fn small_stem_module_matches_its_table() {
        let input = fashion();
        let device = Device::flex();
        for depth in [18, 50] {
            let config = ResNetConfig {
                depth,
                width: 0.125,
                stem: Stem::Small,
                ..ResNetConfig::default()
            };
            config.validate(&input).unwrap();
            let (model, rows) = built(&config, &input);
            assert_eq!(
                model.num_params(),
                params_and_buffers(&rows),
                "ResNet-{depth}"
            );
            assert_eq!(
                model.forward(Tensor::zeros([2, 1, 28, 28], &device)).dims(),
                [2, 10]
            );
        }
    }
}
