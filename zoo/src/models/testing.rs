//! Inputs and table lookups the families' tests share.

use burn::prelude::*;

use super::builder::NetBuilder;
use super::family::ImageFamily;
use crate::input::ModelInput;
use crate::summary::LayerSummary;

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

/// The family's network and table at `input`, on flex (weights stay lazy until used).
pub fn built<F: ImageFamily>(config: &F, input: &ModelInput) -> (F::Module, Vec<LayerSummary>) {
    let device = Device::flex();
    let mut b = NetBuilder::new(&input.map(), &device);
    let model = config.build(input, &mut b);
    (model, b.finish().expect("the input is large enough"))
}

/// The table alone.
pub fn rows<F: ImageFamily>(config: &F, input: &ModelInput) -> Vec<LayerSummary> {
    built(config, input).1
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
