//! From `[data]` to the three splits the trainer needs, with the standardization fitted on
//! the training split and saved with the run.

use std::path::Path;
use std::sync::Arc;

use datasets::images::train_val_split;
use datasets::{DataError, ImageBatcher, ImageDataset, Split, Standardization};

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
    let (channels, height, width, num_classes) = config.dataset.shape();
    ModelInput {
        channels,
        height,
        width,
        num_classes,
    }
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
    let mut train_set = config.dataset.load(&dir, Split::Train)?;
    if let Some(n) = config.train_limit {
        train_set = train_set.truncated(n);
    }
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
        class_names: config.dataset.class_names(),
    })
}

/// Only the test split, for `zoo eval`.
pub fn load_test(config: &DataConfig, dir: &Path) -> Result<ImageDataset, DataError> {
    let mut test_set = config.dataset.load(dir, Split::Test)?;
    if let Some(n) = config.test_limit {
        test_set = test_set.truncated(n);
    }
    Ok(ImageDataset::whole(Arc::new(test_set)))
}
