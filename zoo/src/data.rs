//! From `[data]` to the three splits the trainer needs, with the standardization fitted on
//! the training split and saved with the run.

use std::path::Path;
use std::sync::Arc;

use datasets::images::train_val_split;
use datasets::{DataError, ImageBatcher, ImageDataset, ImageSet, Split, Standardization};

use crate::config::{DataConfig, Normalize};
use crate::models::ModelInput;

/// Train, validation and test splits of one dataset, ready for loaders.
pub struct PreparedData {
    pub train: ImageDataset,
    pub val: ImageDataset,
    pub test: ImageDataset,
    pub batcher: ImageBatcher,
    pub input: ModelInput,
    pub class_names: Vec<String>,
}

/// The model input a data config implies, without reading any file.
pub fn model_input(config: &DataConfig) -> ModelInput {
    let (channels, height, width, _) = config.dataset.shape();
    ModelInput {
        channels,
        height,
        width,
        num_classes: class_names(config).len(),
    }
}

/// The names of the task's classes, after `classes` / `one_vs_rest` are applied.
pub fn class_names(config: &DataConfig) -> Vec<String> {
    let names = config.dataset.class_names();
    match (&config.classes, config.one_vs_rest) {
        (Some(classes), _) => classes.iter().map(|&c| names[c as usize].clone()).collect(),
        (None, Some(c)) => vec![
            format!("not {}", names[c as usize]),
            names[c as usize].clone(),
        ],
        (None, None) => names,
    }
}

/// Reads a split and applies the task's class selection and size limit.
fn load_split(
    config: &DataConfig,
    dir: &Path,
    split: Split,
    limit: Option<usize>,
) -> Result<ImageSet, DataError> {
    let mut set = config.dataset.load(dir, split)?;
    let num_classes = class_names(config).len();
    if let Some(classes) = &config.classes {
        set = set.relabeled(
            |l| classes.iter().position(|&c| c == l).map(|i| i as u8),
            num_classes,
        );
    } else if let Some(positive) = config.one_vs_rest {
        set = set.relabeled(|l| Some(u8::from(l == positive)), num_classes);
    }
    Ok(match limit {
        Some(n) => set.truncated(n),
        None => set,
    })
}

/// Reads the training and test files, splits off validation, and fits the standardization
/// (or takes `standardization` as given, e.g. the one saved with a run).
pub fn prepare(
    config: &DataConfig,
    standardization: Option<Standardization>,
) -> Result<PreparedData, DataError> {
    let dir = config
        .resolved_dir()
        .expect("validated: the data directory is known");
    let train_set = load_split(config, &dir, Split::Train, config.train_limit)?;
    let test = load_test(config, &dir)?;
    let (train_idx, val_idx) = train_val_split(train_set.len(), config.val_size, config.split_seed);
    let standardization = standardization.unwrap_or_else(|| match config.normalize {
        Normalize::Standardize => Standardization::fit(&train_set, &train_idx),
        Normalize::None => Standardization::identity(train_set.channels),
    });
    let batcher = ImageBatcher::new(standardization, &train_set);
    let train_set = Arc::new(train_set);
    Ok(PreparedData {
        train: ImageDataset::new(train_set.clone(), train_idx),
        val: ImageDataset::new(train_set, val_idx),
        test,
        batcher,
        input: model_input(config),
        class_names: class_names(config),
    })
}

/// Only the test split, for `zoo eval`.
pub fn load_test(config: &DataConfig, dir: &Path) -> Result<ImageDataset, DataError> {
    let test_set = load_split(config, dir, Split::Test, config.test_limit)?;
    Ok(ImageDataset::whole(Arc::new(test_set)))
}
