//! GoogLeNet / Inception v1 (Szegedy et al., 2014), as the paper's table: a stem of
//! convolutions, nine Inception modules in three stages separated by 3x3/2 max pools,
//! global average pooling, dropout 0.4 and one FC layer. Each module is one row of the
//! table (1x1; 3x3 reduce, 3x3; 5x5 reduce, 5x5; pool proj), its four branches
//! concatenated on channels. Optional: LRN in the stem (the paper), batch norm after every
//! convolution (later Inception versions), and the two auxiliary classifiers on 4a and 4d.

use burn::nn::pool::{
    AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, AvgPool2d, AvgPool2dConfig, MaxPool2d,
};
use burn::nn::{Dropout, DropoutConfig, Linear, LocalResponseNormConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::cnn::{
    max_pool, scaled, too_small, validate_dropout, validate_width, ConvShape, ConvStage, ConvUnit,
    Rows, Stem,
};
use super::{cross_entropy, linear_layer, Init, ModelInput};
use crate::config::Invalid;
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
            aux_classifiers: false,
            aux_weight: 0.3,
            dropout: 0.4,
            aux_dropout: 0.7,
        }
    }
}

/// The convolutions of one module, as (branch name, geometry) in forward order per branch.
fn branch_convs(row: &InceptionRow, in_channels: usize) -> [Vec<ConvShape>; 4] {
    [
        vec![ConvShape::new(in_channels, row.ch1x1, 1)],
        vec![
            ConvShape::new(in_channels, row.ch3x3_reduce, 1),
            ConvShape::new(row.ch3x3_reduce, row.ch3x3, 3).same(),
        ],
        vec![
            ConvShape::new(in_channels, row.ch5x5_reduce, 1),
            ConvShape::new(row.ch5x5_reduce, row.ch5x5, 5).same(),
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

    pub fn validate(&self, input: &ModelInput) -> Result<(), Invalid> {
        validate_width(self.width)?;
        validate_dropout("dropout", self.dropout)?;
        validate_dropout("aux_dropout", self.aux_dropout)?;
        if !(self.aux_weight >= 0.0) {
            return Err((
                "aux_weight".into(),
                format!("expected a weight >= 0, got {}", self.aux_weight),
            ));
        }
        too_small(
            &self.rows(input),
            [input.channels, input.height, input.width],
        )
    }

    /// The main path's rows, up to the flattened average pool; aux heads are appended by `layers`.
    fn rows(&self, input: &ModelInput) -> Rows {
        let mut rows = Rows::new([input.channels, input.height, input.width]);
        let bn = self.batch_norm;
        let mut pools = 0;
        for (i, (conv, pool)) in self.stem_convs(input.channels).into_iter().enumerate() {
            rows.conv_unit(&format!("conv{}", i + 1), conv, bn, !bn);
            if pool {
                pools += 1;
                rows.max_pool(&format!("maxpool{pools}"), 3, 2, 0, true);
                if self.lrn {
                    rows.lrn(&format!("lrn{pools}"));
                }
            }
        }
        let table = self.table();
        for (s, stage) in table.iter().enumerate() {
            if s > 0 {
                pools += 1;
                rows.max_pool(&format!("maxpool{pools}"), 3, 2, 0, true);
            }
            for row in stage {
                let input_map = rows.shape;
                let mut outputs = Vec::new();
                for (b, branch) in branch_convs(row, input_map[0]).iter().enumerate() {
                    rows.shape = input_map;
                    if b == 3 {
                        rows.max_pool(
                            &format!("inception{}.branch4.pool", row.name),
                            3,
                            1,
                            1,
                            false,
                        );
                    }
                    for (j, conv) in branch.iter().enumerate() {
                        rows.conv_unit(
                            &format!("inception{}.branch{}.{j}", row.name, b + 1),
                            *conv,
                            bn,
                            !bn,
                        );
                    }
                    outputs.push(rows.shape);
                }
                rows.push(LayerSummary::concat(
                    &format!("inception{}", row.name),
                    &outputs,
                ));
            }
        }
        rows.push(LayerSummary::global_avg_pool("avgpool", rows.shape));
        rows.push(LayerSummary::flatten_map("flatten", rows.shape));
        rows
    }

    /// The side of the map an auxiliary head sees (the 4a and 4d outputs).
    fn aux_input(&self, input: &ModelInput) -> Vec<[usize; 3]> {
        let rows = self.rows(input);
        AUX_AFTER
            .iter()
            .map(|&(stage, module)| {
                let name = format!("inception{}", PAPER_TABLE[stage][module].name);
                rows.rows
                    .iter()
                    .find(|r| r.name == name)
                    .expect("4a and 4d exist")
                    .chw()
            })
            .collect()
    }

    pub fn layers(&self, input: &ModelInput) -> Vec<LayerSummary> {
        let mut rows = self.rows(input);
        let features = rows.shape[0];
        rows.push(LayerSummary::elementwise("dropout", "dropout", &[features]));
        rows.push(LayerSummary::linear("fc", features, input.num_classes));
        if self.aux_classifiers {
            for (i, map) in self.aux_input(input).into_iter().enumerate() {
                let name = format!("aux{}", i + 1);
                rows.shape = map;
                rows.push(LayerSummary {
                    kind: "avgpool".into(),
                    ..LayerSummary::pool2d(&format!("{name}.pool"), "avgpool", map, 5, 3, 0, false)
                });
                rows.conv_unit(
                    &format!("{name}.conv"),
                    ConvShape::new(map[0], scaled(128, self.width), 1),
                    self.batch_norm,
                    !self.batch_norm,
                );
                rows.push(LayerSummary::flatten_map(
                    &format!("{name}.flatten"),
                    rows.shape,
                ));
                let flat = rows.shape.iter().product();
                let hidden = scaled(1024, self.width);
                rows.push(LayerSummary::linear(&format!("{name}.fc1"), flat, hidden));
                rows.push(LayerSummary::elementwise(
                    &format!("{name}.dropout"),
                    "dropout",
                    &[hidden],
                ));
                rows.push(LayerSummary::linear(
                    &format!("{name}.fc2"),
                    hidden,
                    input.num_classes,
                ));
            }
        }
        rows.rows
    }

    pub fn init(&self, input: &ModelInput, device: &Device) -> GoogLeNet {
        let bn = self.batch_norm;
        let lrn = || {
            self.lrn.then(|| {
                LocalResponseNormConfig::new(5)
                    .with_alpha(1e-4)
                    .with_beta(0.75)
                    .with_k(2.0)
                    .init()
            })
        };
        let stem = self
            .stem_convs(input.channels)
            .into_iter()
            .map(|(conv, pool)| ConvStage {
                unit: ConvUnit::new(conv, bn, !bn, device),
                pool: pool.then(|| max_pool(3, 2, 0, true)),
                lrn: if pool { lrn() } else { None },
            })
            .collect();
        let mut in_channels = scaled(192, self.width);
        let stages = self
            .table()
            .iter()
            .map(|stage| {
                stage
                    .iter()
                    .map(|row| {
                        let [b1, b2, b3, b4] = branch_convs(row, in_channels).map(|convs| {
                            convs
                                .into_iter()
                                .map(|c| ConvUnit::new(c, bn, !bn, device))
                                .collect()
                        });
                        in_channels = row.ch1x1 + row.ch3x3 + row.ch5x5 + row.pool_proj;
                        Inception {
                            branch1: b1,
                            branch2: b2,
                            branch3: b3,
                            branch4: b4,
                            pool: max_pool(3, 1, 1, false),
                        }
                    })
                    .collect()
            })
            .collect();
        let aux = if self.aux_classifiers {
            self.aux_input(input)
                .into_iter()
                .map(|map| {
                    let conv = ConvShape::new(map[0], scaled(128, self.width), 1);
                    let pooled = crate::summary::conv_output_size(map[1], 5, 3, 0, false)
                        * crate::summary::conv_output_size(map[2], 5, 3, 0, false);
                    let hidden = scaled(1024, self.width);
                    AuxClassifier {
                        pool: AvgPool2dConfig::new([5, 5]).with_strides([3, 3]).init(),
                        conv: ConvUnit::new(conv, bn, !bn, device),
                        fc1: linear_layer(
                            conv.out_channels * pooled,
                            hidden,
                            Init::He,
                            0.0,
                            device,
                        ),
                        fc2: linear_layer(hidden, input.num_classes, Init::Default, 0.0, device),
                        dropout: DropoutConfig::new(self.aux_dropout).init(),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        GoogLeNet {
            stem,
            stages,
            aux,
            aux_weight: self.aux_weight,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            stage_pool: max_pool(3, 2, 0, true),
            dropout: DropoutConfig::new(self.dropout).init(),
            fc: linear_layer(in_channels, input.num_classes, Init::Default, 0.0, device),
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
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let run = |units: &[ConvUnit], x: Tensor<4>| units.iter().fold(x, |x, u| u.forward(x));
        let pooled = self.pool.forward(x.clone());
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
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv.forward(self.pool.forward(x)).flatten(1, 3);
        self.fc2
            .forward(self.dropout.forward(relu(self.fc1.forward(x))))
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
    pub stage_pool: MaxPool2d,
    pub dropout: Dropout,
    pub fc: Linear,
}

impl GoogLeNet {
    /// The class scores and, when `with_aux`, the auxiliary heads' scores.
    fn run(&self, images: Tensor<4>, with_aux: bool) -> (Tensor<2>, Vec<Tensor<2>>) {
        let mut x = self.stem.iter().fold(images, |x, stage| stage.forward(x));
        let mut aux_logits = Vec::new();
        for (s, stage) in self.stages.iter().enumerate() {
            if s > 0 {
                x = self.stage_pool.forward(x);
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
        (self.fc.forward(self.dropout.forward(x)), aux_logits)
    }

    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.run(images, false).0
    }

    /// Main logits and the training loss: cross-entropy of the main head plus `aux_weight`
    /// times each auxiliary head's (the heads are ignored at evaluation).
    pub fn training_loss(
        &self,
        images: Tensor<4>,
        targets: Tensor<1, Int>,
    ) -> (Tensor<2>, Tensor<1>) {
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
    use crate::models::cnn::testing::{
        fashion, imagenet, params_and_buffers, shape_of, total_params,
    };

    fn params(config: &GoogLeNetConfig) -> usize {
        total_params(&config.layers(&imagenet(224)))
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
        let rows = GoogLeNetConfig::default().layers(&imagenet(224));
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
        let rows = config.layers(&input);
        let device = Device::flex();
        let model = config.init(&input, &device);
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
