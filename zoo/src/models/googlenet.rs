//! GoogLeNet / Inception v1 (Szegedy et al., 2014), as the paper's table: a stem of
//! convolutions, nine Inception modules in three stages separated by 3x3/2 max pools,
//! global average pooling, dropout 0.4 and one FC layer. Each module is one row of the
//! table (1x1; 3x3 reduce, 3x3; 5x5 reduce, 5x5; pool proj), its four branches
//! concatenated on channels. Optional: LRN in the stem (the paper), batch norm after every
//! convolution (later Inception versions), and the two auxiliary classifiers on 4a and 4d.

use burn::nn::pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
use burn::nn::{Dropout, DropoutConfig, Linear, LocalResponseNormConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::cnn::{scaled, validate_width, ConvStage, ConvUnit, Stem};
use super::builder::{ConvShape, Init, NetBuilder, BATCH_NORM_EPS};
use super::pytorch_names::PytorchLayout;
use super::family::{cross_entropy, ImageClassifier, ImageFamily};
use crate::input::ModelInput;
use crate::invalid::{probability, Invalid};
use crate::summary::LayerSummary;

/// One row of the paper's table: output channels of each branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InceptionRow {
    pub name: &'static str,
    pub ch1x1: usize,
    pub ch3x3_reduce: usize,
    pub ch3x3: usize,
    pub ch5x5_reduce: usize,
    pub ch5x5: usize,
    pub pool_proj: usize,
}

const fn inception(name: &'static str, c: [usize; 6]) -> InceptionRow {
    InceptionRow {
        name,
        ch1x1: c[0],
        ch3x3_reduce: c[1],
        ch3x3: c[2],
        ch5x5_reduce: c[3],
        ch5x5: c[4],
        pool_proj: c[5],
    }
}

/// The paper's Table 1, stage by stage (a 3x3/2 max pool between stages).
pub const PAPER_TABLE: [&[InceptionRow]; 3] = [
    &[
        inception("3a", [64, 96, 128, 16, 32, 32]),
        inception("3b", [128, 128, 192, 32, 96, 64]),
    ],
    &[
        inception("4a", [192, 96, 208, 16, 48, 64]),
        inception("4b", [160, 112, 224, 24, 64, 64]),
        inception("4c", [128, 128, 256, 24, 64, 64]),
        inception("4d", [112, 144, 288, 32, 64, 64]),
        inception("4e", [256, 160, 320, 32, 128, 128]),
    ],
    &[
        inception("5a", [256, 160, 320, 32, 128, 128]),
        inception("5b", [384, 192, 384, 48, 128, 128]),
    ],
];

/// The modules that feed an auxiliary classifier, as (stage, module): 4a and 4d.
const AUX_AFTER: [(usize, usize); 2] = [(1, 0), (1, 3)];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoogLeNetConfig {
    /// Multiplier on every channel count of the stem and the table (1 = the paper).
    pub width: f64,
    pub stem: Stem,
    /// Local response normalization after the stem's two poolings (the paper).
    pub lrn: bool,
    /// Batch norm after every convolution (whose bias is then dropped).
    pub batch_norm: bool,
    /// Its epsilon (torchvision's GoogLeNet: 1e-3).
    pub batch_norm_eps: f64,
    /// The kernel of the third branch's second convolution: the paper's 5, or torchvision's 3
    /// (a known slip in torchvision that its pretrained weights keep).
    pub branch3_kernel: usize,
    /// The max pools between the three stages of Inception modules (stride 2, rounded up):
    /// the paper's 3 and 3, torchvision's 3 and 2.
    pub stage_pool_kernels: [usize; 2],
    /// Re-normalize ImageNet-normalized RGB input to (x - 0.5) / 0.5 first, as torchvision's
    /// pretrained GoogLeNet does (`transform_input=True`; its weights were trained that way).
    pub transform_input: bool,
    /// The auxiliary heads on 4a and 4d; their losses count `aux_weight` each in training.
    pub aux_classifiers: bool,
    pub aux_weight: f64,
    pub dropout: f64,
    pub aux_dropout: f64,
}

impl Default for GoogLeNetConfig {
    fn default() -> Self {
        Self {
            width: 1.0,
            stem: Stem::Imagenet,
            lrn: true,
            batch_norm: false,
            batch_norm_eps: BATCH_NORM_EPS,
            branch3_kernel: 5,
            stage_pool_kernels: [3, 3],
            transform_input: false,
            aux_classifiers: false,
            aux_weight: 0.3,
            dropout: 0.4,
            aux_dropout: 0.7,
        }
    }
}

/// The convolutions of one module, as (branch name, geometry) in forward order per branch.
fn branch_convs(row: &InceptionRow, in_channels: usize, branch3_kernel: usize) -> [Vec<ConvShape>; 4] {
    [
        vec![ConvShape::new(in_channels, row.ch1x1, 1)],
        vec![
            ConvShape::new(in_channels, row.ch3x3_reduce, 1),
            ConvShape::new(row.ch3x3_reduce, row.ch3x3, 3).same(),
        ],
        vec![
            ConvShape::new(in_channels, row.ch5x5_reduce, 1),
            ConvShape::new(row.ch5x5_reduce, row.ch5x5, branch3_kernel).same(),
        ],
        // After a 3x3/1 pad 1 max pool.
        vec![ConvShape::new(in_channels, row.pool_proj, 1)],
    ]
}

impl GoogLeNetConfig {
    fn table(&self) -> Vec<Vec<InceptionRow>> {
        let s = |c| scaled(c, self.width);
        PAPER_TABLE
            .iter()
            .map(|stage| {
                stage
                    .iter()
                    .map(|r| InceptionRow {
                        name: r.name,
                        ch1x1: s(r.ch1x1),
                        ch3x3_reduce: s(r.ch3x3_reduce),
                        ch3x3: s(r.ch3x3),
                        ch5x5_reduce: s(r.ch5x5_reduce),
                        ch5x5: s(r.ch5x5),
                        pool_proj: s(r.pool_proj),
                    })
                    .collect()
            })
            .collect()
    }

    /// The stem's convolutions and whether a max pool (+ LRN) follows each.
    fn stem_convs(&self, in_channels: usize) -> Vec<(ConvShape, bool)> {
        let (c64, c192) = (scaled(64, self.width), scaled(192, self.width));
        let first = match self.stem {
            Stem::Imagenet => (
                ConvShape::new(in_channels, c64, 7).stride(2).padding(3),
                true,
            ),
            Stem::Small => (ConvShape::new(in_channels, c64, 3).same(), false),
        };
        vec![
            first,
            (ConvShape::new(c64, c64, 1), false),
            (ConvShape::new(c64, c192, 3).same(), true),
        ]
    }
}

impl ImageFamily for GoogLeNetConfig {
    const KINDS: &'static [&'static str] = &["googlenet"];
    type Module = GoogLeNet;

    fn validate(&self, input: &ModelInput) -> Result<(), Invalid> {
        validate_width(self.width)?;
        if self.transform_input && input.channels != 3 {
            return Err(Invalid::new(
                "transform_input",
                format!("re-normalizes RGB images; this input has {} channels", input.channels),
            ));
        }
        probability("dropout", self.dropout)?;
        probability("aux_dropout", self.aux_dropout)?;
        if self.branch3_kernel.is_multiple_of(2) {
            return Err(Invalid::new(
                "branch3_kernel",
                format!("expected an odd kernel (it keeps the map's size), got {}", self.branch3_kernel),
            ));
        }
        if self.stage_pool_kernels.contains(&0) {
            return Err(Invalid::new("stage_pool_kernels", "expected kernels of at least 1"));
        }
        if self.batch_norm_eps.is_nan() || self.batch_norm_eps <= 0.0 {
            return Err(Invalid::new(
                "batch_norm_eps",
                format!("expected a positive epsilon, got {}", self.batch_norm_eps),
            ));
        }
        if self.aux_weight.is_nan() || self.aux_weight < 0.0 {
            return Err(Invalid::new(
                "aux_weight",
                format!("expected a weight >= 0, got {}", self.aux_weight),
            ));
        }
        Ok(())
    }

    /// torchvision's names: `conv1..3`, `inception3a.branch1` (a unit), `.branch2.0` and
    /// `.branch2.1`, `.branch3.0` and `.1`, `.branch4.1` (after its pool), `aux1`, `aux2`, `fc`.
    fn pytorch_layout(&self, _input: &ModelInput) -> PytorchLayout {
        let mut layout = PytorchLayout::default().layer("fc", "fc");
        for i in 0..3 {
            layout = layout.layer(format!("stem.{i}.unit"), format!("conv{}", i + 1));
        }
        for (s, rows) in self.table().iter().enumerate() {
            for (m, row) in rows.iter().enumerate() {
                let (zoo, torch) = (format!("stages.{s}.{m}"), format!("inception{}", row.name));
                layout = layout
                    .layer(format!("{zoo}.branch1.0"), format!("{torch}.branch1"))
                    .layer(format!("{zoo}.branch2"), format!("{torch}.branch2"))
                    .layer(format!("{zoo}.branch3"), format!("{torch}.branch3"))
                    .layer(format!("{zoo}.branch4.0"), format!("{torch}.branch4.1"));
            }
        }
        for i in 0..AUX_AFTER.len() {
            layout = layout.layer(format!("aux.{i}"), format!("aux{}", i + 1));
        }
        layout
    }

    /// The stem (`conv{i}`, `maxpool{n}`, `lrn{n}`), the Inception modules stage by stage, the
    /// average pool and fc; then the auxiliary heads (`aux1`, `aux2`) on the maps of 4a and 4d.
    fn build(&self, input: &ModelInput, b: &mut NetBuilder) -> GoogLeNet {
        let bn = self.batch_norm.then_some(self.batch_norm_eps);
        let lrn = LocalResponseNormConfig::new(5)
            .with_alpha(1e-4)
            .with_beta(0.75)
            .with_k(2.0);
        let mut pools = 0;
        let mut stem = Vec::new();
        for (i, (conv, pooled)) in self.stem_convs(input.channels).into_iter().enumerate() {
            let unit = ConvUnit::build(b, &format!("conv{}", i + 1), conv, bn, bn.is_none());
            let (mut pool, mut norm) = (None, None);
            if pooled {
                pools += 1;
                pool = Some(b.max_pool(&format!("maxpool{pools}"), 3, 2, 0, true));
                norm = self.lrn.then(|| b.lrn(&format!("lrn{pools}"), &lrn));
            }
            stem.push(ConvStage {
                unit,
                pool,
                lrn: norm,
            });
        }
        let (mut stages, mut stage_pools, mut aux_maps) = (Vec::new(), Vec::new(), Vec::new());
        for (s, rows) in self.table().iter().enumerate() {
            if s > 0 {
                pools += 1;
                let kernel = self.stage_pool_kernels[s - 1];
                stage_pools.push(b.max_pool(&format!("maxpool{pools}"), kernel, 2, 0, true));
            }
            let mut stage = Vec::new();
            for (m, row) in rows.iter().enumerate() {
                stage.push(Inception::build(b, row, bn, self.branch3_kernel));
                if AUX_AFTER.contains(&(s, m)) {
                    aux_maps.push(b.map());
                }
            }
            stages.push(stage);
        }
        let avgpool = b.global_avg_pool("avgpool");
        b.flatten("flatten");
        b.elementwise("dropout", "dropout");
        let fc = b.linear("fc", input.num_classes, Init::Default, 0.0);
        let aux = match self.aux_classifiers {
            true => aux_maps
                .iter()
                .enumerate()
                .map(|(i, map)| self.aux_head(b, &format!("aux{}", i + 1), map, input))
                .collect(),
            false => Vec::new(),
        };
        GoogLeNet {
            stem,
            stages,
            aux,
            aux_weight: self.aux_weight,
            avgpool,
            stage_pools,
            dropout: DropoutConfig::new(self.dropout).init(),
            fc,
            transform_input: self.transform_input,
        }
    }
}

impl GoogLeNetConfig {
    /// avg pool 5x5/3 -> conv 1x1 -> FC -> dropout -> FC, on the map `map`.
    fn aux_head(
        &self,
        b: &mut NetBuilder,
        name: &str,
        map: &[usize; 3],
        input: &ModelInput,
    ) -> AuxClassifier {
        let bn = self.batch_norm.then_some(self.batch_norm_eps);
        b.set_shape(map);
        let pool = b.avg_pool(&format!("{name}.pool"), 5, 3);
        let conv = ConvShape::new(map[0], scaled(128, self.width), 1);
        let conv = ConvUnit::build(b, &format!("{name}.conv"), conv, bn, bn.is_none());
        b.flatten(&format!("{name}.flatten"));
        let fc1 = b.linear(&format!("{name}.fc1"), scaled(1024, self.width), Init::He, 0.0);
        b.elementwise(&format!("{name}.dropout"), "dropout");
        AuxClassifier {
            pool,
            conv,
            fc1,
            fc2: b.linear(&format!("{name}.fc2"), input.num_classes, Init::Default, 0.0),
            dropout: DropoutConfig::new(self.aux_dropout).init(),
        }
    }
}

/// Four branches over the same input, concatenated on channels.
#[derive(Module, Debug)]
pub struct Inception {
    pub branch1: Vec<ConvUnit>,
    pub branch2: Vec<ConvUnit>,
    pub branch3: Vec<ConvUnit>,
    /// Applied after `pool`.
    pub branch4: Vec<ConvUnit>,
    pub pool: MaxPool2d,
}

impl Inception {
    /// The four branches on the builder's current map (`inception{name}.branch{b}.{j}`, the
    /// fourth after its pool), then the concatenation's row `inception{name}`.
    /// `bn`: batch norm's epsilon, when the units have one.
    fn build(b: &mut NetBuilder, row: &InceptionRow, bn: Option<f64>, branch3_kernel: usize) -> Self {
        let input_map = b.map();
        let name = format!("inception{}", row.name);
        let mut pool = None;
        let mut outputs = Vec::new();
        let branches = branch_convs(row, input_map[0], branch3_kernel).map(|convs| {
            b.set_shape(&input_map);
            if outputs.len() == 3 {
                pool = Some(b.max_pool(&format!("{name}.branch4.pool"), 3, 1, 1, false));
            }
            let branch = outputs.len() + 1;
            let units = convs
                .into_iter()
                .enumerate()
                .map(|(j, c)| {
                    let name = format!("{name}.branch{branch}.{j}");
                    ConvUnit::build(b, &name, c, bn, bn.is_none())
                })
                .collect();
            outputs.push(b.map());
            units
        });
        b.row(LayerSummary::concat(&name, &outputs));
        let [branch1, branch2, branch3, branch4] = branches;
        Self {
            branch1,
            branch2,
            branch3,
            branch4,
            pool: pool.expect("the fourth branch pools"),
        }
    }

    /// # Shapes
    /// - x: `[batch, in_channels, height, width]`; output: `[batch, out_channels, height, width]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let run = |units: &[ConvUnit], x: Tensor<4>| units.iter().fold(x, |x, u| u.forward(x));
        let pooled = kernels::max_pool2d(&self.pool, x.clone());
        Tensor::cat(
            vec![
                run(&self.branch1, x.clone()),
                run(&self.branch2, x.clone()),
                run(&self.branch3, x),
                run(&self.branch4, pooled),
            ],
            1,
        )
    }
}

/// avg pool 5x5/3 -> conv 1x1 -> FC -> dropout -> FC, trained on an intermediate map.
#[derive(Module, Debug)]
pub struct AuxClassifier {
    pub pool: AvgPool2d,
    pub conv: ConvUnit,
    pub fc1: Linear,
    pub fc2: Linear,
    pub dropout: Dropout,
}

impl AuxClassifier {
    /// # Shapes
    /// - x: `[batch, channels, height, width]` (the 4a or 4d map); output: `[batch, num_classes]`
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv.forward(kernels::avg_pool2d(&self.pool, x)).flatten(1, 3);
        self.fc2
            .forward(kernels::dropout(&self.dropout, relu(self.fc1.forward(x))))
    }
}

#[derive(Module, Debug)]
pub struct GoogLeNet {
    /// The stem convolutions with the pooling and LRN that may follow each.
    pub stem: Vec<ConvStage>,
    pub stages: Vec<Vec<Inception>>,
    /// Heads on 4a and 4d (empty unless `aux_classifiers`).
    pub aux: Vec<AuxClassifier>,
    pub aux_weight: f64,
    pub avgpool: AdaptiveAvgPool2d,
    /// The pools before the second and the third stage.
    pub stage_pools: Vec<MaxPool2d>,
    pub dropout: Dropout,
    pub fc: Linear,
    #[module(skip)]
    pub transform_input: bool,
}

/// torchvision's `transform_input`: per RGB channel, `x * std / 0.5 + (mean - 0.5) / 0.5`.
const TRANSFORM_SCALE: [f32; 3] = [0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5];
const TRANSFORM_SHIFT: [f32; 3] = [(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5];

impl GoogLeNet {
    /// The class scores and, when `with_aux`, the auxiliary heads' scores.
    fn run(&self, mut images: Tensor<4>, with_aux: bool) -> (Tensor<2>, Vec<Tensor<2>>) {
        if self.transform_input {
            let device = images.device();
            let per_channel = |v: [f32; 3]| Tensor::<1>::from_floats(v, &device).reshape([1, 3, 1, 1]);
            images = images * per_channel(TRANSFORM_SCALE) + per_channel(TRANSFORM_SHIFT);
        }
        let mut x = self.stem.iter().fold(images, |x, stage| stage.forward(x));
        let mut aux_logits = Vec::new();
        for (s, stage) in self.stages.iter().enumerate() {
            if s > 0 {
                x = kernels::max_pool2d(&self.stage_pools[s - 1], x);
            }
            for (m, inception) in stage.iter().enumerate() {
                x = inception.forward(x);
                let head = AUX_AFTER.iter().position(|&at| at == (s, m));
                if let (true, Some(head)) = (with_aux, head.and_then(|h| self.aux.get(h))) {
                    aux_logits.push(head.forward(x.clone()));
                }
            }
        }
        let x = self.avgpool.forward(x).flatten(1, 3);
        (self.fc.forward(kernels::dropout(&self.dropout, x)), aux_logits)
    }

    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.run(images, false).0
    }

}

impl ImageClassifier for GoogLeNet {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }

    /// Main logits and the training loss: cross-entropy of the main head plus `aux_weight`
    /// times each auxiliary head's (the heads are ignored at evaluation).
    fn training_loss(&self, images: Tensor<4>, targets: Tensor<1, Int>) -> (Tensor<2>, Tensor<1>) {
        let (logits, aux) = self.run(images, !self.aux.is_empty());
        let mut loss = cross_entropy(logits.clone(), targets.clone());
        for aux_logits in aux {
            loss = loss + cross_entropy(aux_logits, targets.clone()).mul_scalar(self.aux_weight);
        }
        (logits, loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testing::{
        built, fashion, imagenet, params_and_buffers, rows, shape_of, total_params,
    };

    fn params(config: &GoogLeNetConfig) -> usize {
        total_params(&rows(config, &imagenet(224)))
    }

    #[test]
    fn paper_table_has_the_notes_counts() {
        assert_eq!(params(&GoogLeNetConfig::default()), 6_998_552);
        let aux = GoogLeNetConfig {
            aux_classifiers: true,
            ..GoogLeNetConfig::default()
        };
        assert_eq!(params(&aux), 13_378_280);
    }

    #[test]
    fn maps_follow_the_paper() {
        let rows = rows(&GoogLeNetConfig::default(), &imagenet(224));
        let shape = |name: &str| shape_of(&rows, name);
        assert_eq!(shape("maxpool1"), [64, 56, 56]);
        assert_eq!(shape("maxpool2"), [192, 28, 28]);
        assert_eq!(shape("inception3a"), [256, 28, 28]);
        assert_eq!(shape("inception3b"), [480, 28, 28]);
        assert_eq!(shape("inception4a"), [512, 14, 14]);
        assert_eq!(shape("inception4e"), [832, 14, 14]);
        assert_eq!(shape("inception5b"), [1024, 7, 7]);
    }

    #[test]
    fn narrowed_module_matches_its_table_and_trains_with_aux_heads() {
        let input = fashion();
        let config = GoogLeNetConfig {
            width: 0.125,
            stem: Stem::Small,
            batch_norm: true,
            aux_classifiers: true,
            ..GoogLeNetConfig::default()
        };
        config.validate(&input).unwrap();
        let (model, rows) = built(&config, &input);
        let device = Device::flex();
        assert_eq!(model.num_params(), params_and_buffers(&rows));
        assert_eq!(
            model.forward(Tensor::zeros([2, 1, 28, 28], &device)).dims(),
            [2, 10]
        );
        // On the autodiff device the aux heads join the loss, which then exceeds the main one.
        let autodiff = device.autodiff();
        let train = model.fork(&autodiff).train();
        let images = Tensor::random(
            [2, 1, 28, 28],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &autodiff,
        );
        let targets = Tensor::from_data(TensorData::new(vec![1i64, 2], [2]), &autodiff);
        let (logits, loss) = train.training_loss(images, targets.clone());
        let main = cross_entropy(logits, targets).into_scalar::<f32>();
        assert!(loss.into_scalar::<f32>() > main);
    }
}
