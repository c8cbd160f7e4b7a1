//! From `[data]` to the three splits the trainer needs, with the standardization fitted on
//! the training split and saved with the run.

use std::path::Path;
use std::sync::Arc;

use datasets::images::{kfold_split, train_val_split};
use datasets::{
    Augmentation, DataError, ImageBatcher, ImageDataset, ImageSet, Split, Standardization,
};

use crate::config::{DataConfig, Normalize};
use crate::models::ModelInput;

/// Train, validation and test splits of one dataset, ready for loaders.
pub struct PreparedData {
    pub train: ImageDataset,
    pub val: ImageDataset,
    pub test: ImageDataset,
    /// Resizes and standardizes; `augmented` turns it into the training batcher.
    pub batcher: ImageBatcher,
    pub augmentation: Augmentation,
    pub input: ModelInput,
    pub class_names: Vec<String>,
}

/// The model input a data config implies, without reading any file.
pub fn image_input(config: &DataConfig) -> ModelInput {
    let (channels, stored_height, stored_width, _) = config.dataset.shape();
    let [height, width] = resize_of(config).unwrap_or([stored_height, stored_width]);
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
    let dir = config.resolved_dir().unwrap_or_default();
    let train_set = Arc::new(load_split(config, &dir, Split::Train, config.train_limit)?);
    let test = load_test(config, &dir)?;
    let (train_idx, val_idx) = train_val_split(train_set.len(), config.val_size, config.split_seed);
    Ok(with_split(
        config,
        train_set,
        train_idx,
        val_idx,
        test,
        standardization,
    ))
}

/// Train and validation views of `set`, with the standardization fitted on `train_idx`
/// unless one is given.
fn with_split(
    config: &DataConfig,
    set: Arc<ImageSet>,
    train_idx: Vec<usize>,
    val_idx: Vec<usize>,
    test: ImageDataset,
    standardization: Option<Standardization>,
) -> PreparedData {
    let standardization = standardization.unwrap_or_else(|| match config.normalize {
        Normalize::Standardize => Standardization::fit(&set, &train_idx),
        Normalize::None => Standardization::identity(set.channels),
    });
    PreparedData {
        batcher: ImageBatcher::new(standardization, &set).with_resize(resize_of(config)),
        augmentation: config.augment.clone(),
        train: ImageDataset::new(set.clone(), train_idx),
        val: ImageDataset::new(set, val_idx),
        test,
        input: image_input(config),
        class_names: class_names(config),
    }
}

/// k-fold cross-validation over the training split (`val_size` is ignored): fold i
/// validates on the i-th of `folds` seeded, disjoint parts and trains on the rest, with
/// its own standardization. The test split is left out (empty).
pub fn cross_validation_folds(
    config: &DataConfig,
    folds: usize,
) -> Result<Vec<PreparedData>, DataError> {
    let dir = config.resolved_dir().unwrap_or_default();
    let set = Arc::new(load_split(config, &dir, Split::Train, config.train_limit)?);
    Ok(kfold_split(set.len(), folds, config.split_seed)
        .into_iter()
        .map(|(train, val)| {
            let empty_test = ImageDataset::new(set.clone(), Vec::new());
            with_split(config, set.clone(), train, val, empty_test, None)
        })
        .collect())
}

/// The `[height, width]` a config resizes to, if any.
pub fn resize_of(config: &DataConfig) -> Option<[usize; 2]> {
    config.resize.map(|side| [side, side])
}

/// Only the test split, for `zoo eval`.
pub fn load_test(config: &DataConfig, dir: &Path) -> Result<ImageDataset, DataError> {
    let test_set = load_split(config, dir, Split::Test, config.test_limit)?;
    Ok(ImageDataset::whole(Arc::new(test_set)))
}
