//! `[data]`: the experiment's data section, and from it the three splits the trainer needs,
//! with the standardization fitted on the training split and saved with the run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datasets::folder::{folder_classes, CropConfig, FolderSplit, FolderTransform, ImageFolder};
use datasets::images::{kfold_split, train_val_split};
use datasets::{
    Augmentation, DataError, DatasetKind, ImageBatcher, ImageDataset, ImageSet, Images, Split,
    Standardization,
};
use serde::{Deserialize, Serialize};

use crate::input::ModelInput;
use crate::invalid::{positive, Invalid};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// fashion-mnist, mnist, kmnist, cifar10, cifar100, image-folder or imagenet (an
    /// ImageNet-layout folder when `dir` is set, the shape alone otherwise).
    pub dataset: DatasetKind,
    /// Directory of the dataset's files; defaults to the system package's directory.
    pub dir: Option<PathBuf>,
    /// Images carved out of the training set for validation.
    pub val_size: usize,
    /// Seed of the train/validation split (independent of the training seed).
    pub split_seed: u64,
    pub normalize: Normalize,
    pub batch_size: usize,
    /// Batch size for validation and test passes (no gradients, so it can be larger).
    pub eval_batch_size: usize,
    /// Use only the first N training images (quick runs and tests); all when absent.
    pub train_limit: Option<usize>,
    /// Use only the first N test images; all when absent.
    pub test_limit: Option<usize>,
    /// A UTF-8 text file, for the character-level language model.
    pub text: Option<PathBuf>,
    /// Characters per training window (the truncated-backpropagation length), for text.
    pub seq_len: usize,
    /// The last fraction of a text kept for validation.
    pub val_fraction: f64,
    /// Keep only these classes, relabeled 0, 1, ... in this order (e.g. [0, 6]: T-shirt vs shirt).
    pub classes: Option<Vec<u8>>,
    /// A two-class task: this class (label 1) against all the others (label 0).
    pub one_vs_rest: Option<u8>,
    /// Bilinear resize of every image (all splits) to this side, e.g. 32 for 28x28 inputs; for
    /// an image folder, the side of the crops (224 when absent).
    pub resize: Option<usize>,
    /// Random transforms of training batches (`[data.augment]`), seeded per epoch.
    pub augment: datasets::Augmentation,
    /// An image folder's training crop (`[data.crop]`, torchvision's RandomResizedCrop).
    pub crop: CropConfig,
    /// An image folder's undecodable files: skipped and counted instead of stopping the run.
    pub skip_bad_images: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::FashionMnist,
            dir: None,
            val_size: 5000,
            split_seed: 0,
            normalize: Normalize::Standardize,
            batch_size: 64,
            eval_batch_size: 1000,
            train_limit: None,
            test_limit: None,
            text: None,
            seq_len: 100,
            val_fraction: 0.1,
            classes: None,
            one_vs_rest: None,
            resize: None,
            augment: datasets::Augmentation::default(),
            crop: CropConfig::default(),
            skip_bad_images: false,
        }
    }
}

impl DataConfig {
    /// The directory to read: the configured one, else the dataset's system directory.
    pub fn resolved_dir(&self) -> Option<PathBuf> {
        self.dir
            .clone()
            .or_else(|| self.dataset.default_dir().map(PathBuf::from))
    }

    /// The image folder this config reads, if it reads one.
    pub fn folder_dir(&self) -> Option<PathBuf> {
        self.dir.clone().filter(|_| self.dataset.reads_folders())
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        positive("batch_size", self.batch_size)?;
        positive("eval_batch_size", self.eval_batch_size)?;
        if self.resolved_dir().is_none() && self.dataset != DatasetKind::Imagenet {
            return Err(Invalid::new(
                "dir",
                format!(
                    "{} has no default directory; set data.dir or pass --data-dir",
                    self.dataset.name()
                ),
            ));
        }
        if let Some(n) = self.train_limit {
            positive("train_limit", n)?;
            if self.val_size >= n && self.folder_dir().is_none() {
                return Err(Invalid::new(
                    "val_size",
                    format!(
                        "expected fewer than data.train_limit = {n} images, got {}",
                        self.val_size
                    ),
                ));
            }
        }
        if let Some(n) = self.test_limit {
            positive("test_limit", n)?;
        }
        if let Some(side) = self.resize {
            positive("resize", side)?;
        }
        self.augment
            .validate()
            .map_err(|(key, message)| Invalid::new(key, message).within("augment"))?;
        self.crop
            .validate()
            .map_err(|(key, message)| Invalid::new(key, message).within("crop"))?;
        if let Some(dir) = self.folder_dir() {
            folder_classes(&dir).map_err(|e| Invalid::new("dir", e.to_string()))?;
            for (key, set) in [
                ("classes", self.classes.is_some()),
                ("one_vs_rest", self.one_vs_rest.is_some()),
            ] {
                if set {
                    return Err(Invalid::new(
                        key,
                        "selects classes of a decoded dataset; for an image folder, keep only the wanted class folders",
                    ));
                }
            }
            return Ok(());
        }
        positive("seq_len", self.seq_len)?;
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return Err(Invalid::new(
                "val_fraction",
                format!("expected a number in (0, 1), got {}", self.val_fraction),
            ));
        }
        let (_, _, _, dataset_classes) = self.dataset.shape();
        let out_of_range = |c: u8| c as usize >= dataset_classes;
        if let Some(classes) = &self.classes {
            if self.one_vs_rest.is_some() {
                return Err(Invalid::new(
                    "one_vs_rest",
                    "set data.classes or data.one_vs_rest, not both",
                ));
            }
            if classes.len() < 2 {
                return Err(Invalid::new(
                    "classes",
                    format!("expected at least two classes, got {classes:?}"),
                ));
            }
            if let Some(i) = classes.iter().position(|&c| out_of_range(c)) {
                return Err(Invalid::new(
                    format!("classes[{i}]"),
                    format!(
                        "expected a class below {dataset_classes}, got {}",
                        classes[i]
                    ),
                ));
            }
            if let Some(i) = (1..classes.len()).find(|&i| classes[..i].contains(&classes[i])) {
                return Err(Invalid::new(
                    format!("classes[{i}]"),
                    format!("class {} is listed twice", classes[i]),
                ));
            }
        }
        if let Some(c) = self.one_vs_rest {
            if out_of_range(c) {
                return Err(Invalid::new(
                    "one_vs_rest",
                    format!("expected a class below {dataset_classes}, got {c}"),
                ));
            }
        }
        Ok(())
    }
}

/// torchvision's ImageNet normalization (per RGB channel, on pixels scaled to [0, 1]).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How pixels are scaled before they reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalize {
    /// Per-channel mean and standard deviation of the training split.
    Standardize,
    /// Pixels scaled to [0, 1] only.
    None,
}

/// Train, validation and test splits of one dataset, ready for loaders.
pub struct PreparedData {
    pub train: Images,
    pub val: Images,
    pub test: Images,
    /// Resizes and standardizes; `augmented` turns it into the training batcher.
    pub batcher: ImageBatcher,
    pub augmentation: Augmentation,
    pub input: ModelInput,
    pub class_names: Vec<String>,
}

/// The model input a data config implies, without reading any file (but an image folder's
/// class folder names).
pub fn image_input(config: &DataConfig) -> ModelInput {
    input_with_classes(config, class_names(config).len())
}

/// `image_input` for a task of `num_classes` classes, already known.
fn input_with_classes(config: &DataConfig, num_classes: usize) -> ModelInput {
    let [channels, height, width] = input_shape(config);
    ModelInput {
        channels,
        height,
        width,
        num_classes,
    }
}

/// `[channels, height, width]` of the images the model sees: the stored ones, resized where
/// `resize` says (for an image folder, the crop side, 224 unless set).
fn input_shape(config: &DataConfig) -> [usize; 3] {
    let [channels, stored_height, stored_width] = config.dataset.stored_shape();
    let [height, width] = resize_of(config).unwrap_or([stored_height, stored_width]);
    [channels, height, width]
}

/// The batcher that turns `config`'s stored images into the model's input with
/// `standardization`: decoded sets are resized where `resize` says; a folder's crops already
/// have the input's size.
pub fn batcher(config: &DataConfig, standardization: Standardization) -> ImageBatcher {
    match config.folder_dir() {
        Some(_) => ImageBatcher::new(standardization, input_shape(config)),
        None => ImageBatcher::new(standardization, config.dataset.stored_shape())
            .with_resize(resize_of(config)),
    }
}

/// The names of the task's classes, after `classes` / `one_vs_rest` are applied; an image
/// folder's class folders (none if it cannot be listed: `validate` reports that).
pub fn class_names(config: &DataConfig) -> Vec<String> {
    if let Some(dir) = config.folder_dir() {
        return folder_classes(&dir).unwrap_or_default();
    }
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
    if let Some(dir) = config.folder_dir() {
        return prepare_folder(config, &dir, standardization);
    }
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
    test: Images,
    standardization: Option<Standardization>,
) -> PreparedData {
    let standardization = standardization.unwrap_or_else(|| match config.normalize {
        Normalize::Standardize => Standardization::fit(&set, &train_idx),
        Normalize::None => Standardization::identity(set.channels),
    });
    PreparedData {
        batcher: batcher(config, standardization),
        augmentation: config.augment.clone(),
        train: Images::InMemory(ImageDataset::new(set.clone(), train_idx)),
        val: Images::InMemory(ImageDataset::new(set, val_idx)),
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
    if config.folder_dir().is_some() {
        return Err(DataError::Unsupported(
            "cross-validation folds need a decoded dataset; an image folder has its own val/ split"
                .into(),
        ));
    }
    let dir = config.resolved_dir().unwrap_or_default();
    let set = Arc::new(load_split(config, &dir, Split::Train, config.train_limit)?);
    Ok(kfold_split(set.len(), folds, config.split_seed)
        .into_iter()
        .map(|(train, val)| {
            let empty_test = Images::InMemory(ImageDataset::new(set.clone(), Vec::new()));
            with_split(config, set.clone(), train, val, empty_test, None)
        })
        .collect())
}

/// The `[height, width]` a config resizes to, if any.
pub fn resize_of(config: &DataConfig) -> Option<[usize; 2]> {
    config.resize.map(|side| [side, side])
}

/// Only the test split, for `zoo eval`.
pub fn load_test(config: &DataConfig, dir: &Path) -> Result<Images, DataError> {
    if config.folder_dir().is_some() {
        let classes = folder_classes(dir)?;
        return Ok(folder_split(
            config,
            &test_folder(dir, &classes)?,
            config.test_limit,
            false,
        ));
    }
    let test_set = load_split(config, dir, Split::Test, config.test_limit)?;
    Ok(Images::InMemory(ImageDataset::whole(Arc::new(test_set))))
}

/// The splits of an image folder: `train/`, `val/` for validation, and `test/` for the final
/// evaluation (`val/` again when there is no `test/`, as ImageNet has none). Standardization is
/// torchvision's ImageNet mean and std unless `normalize = "none"`; nothing is decoded here.
fn prepare_folder(
    config: &DataConfig,
    dir: &Path,
    standardization: Option<Standardization>,
) -> Result<PreparedData, DataError> {
    let classes = folder_classes(dir)?;
    let train = ImageFolder::scan(&dir.join("train"), &classes)?;
    let val = ImageFolder::scan(&dir.join("val"), &classes)?;
    let test = test_folder(dir, &classes)?;
    let standardization = standardization.unwrap_or_else(|| folder_standardization(config));
    Ok(PreparedData {
        batcher: batcher(config, standardization),
        augmentation: config.augment.clone(),
        train: folder_split(config, &Arc::new(train), config.train_limit, true),
        val: folder_split(config, &Arc::new(val), None, false),
        test: folder_split(config, &test, config.test_limit, false),
        input: input_with_classes(config, classes.len()),
        class_names: classes,
    })
}

/// torchvision's ImageNet statistics for a folder (`normalize = "standardize"`), or none.
pub fn folder_standardization(config: &DataConfig) -> Standardization {
    match config.normalize {
        Normalize::Standardize => Standardization {
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
        },
        Normalize::None => Standardization::identity(3),
    }
}

fn test_folder(dir: &Path, classes: &[String]) -> Result<Arc<ImageFolder>, DataError> {
    let split = if dir.join("test").is_dir() {
        "test"
    } else {
        "val"
    };
    Ok(Arc::new(ImageFolder::scan(&dir.join(split), classes)?))
}

/// A split of `folder`: at most `limit` files (a seeded choice, so every class keeps its
/// share), with the training or the evaluation transform.
fn folder_split(
    config: &DataConfig,
    folder: &Arc<ImageFolder>,
    limit: Option<usize>,
    training: bool,
) -> Images {
    let mut indices: Vec<usize> = (0..folder.len()).collect();
    if let Some(n) = limit.filter(|&n| n < folder.len()) {
        indices = train_val_split(folder.len(), n, config.split_seed).1;
    }
    let [_, size, _] = input_shape(config);
    let size = size as u32;
    let transform = match training {
        true => FolderTransform::RandomResizedCrop {
            size,
            crop: config.crop.clone(),
        },
        false => FolderTransform::CentreCrop { size },
    };
    Images::Files(FolderSplit {
        folder: folder.clone(),
        indices,
        transform,
        skip_bad_images: config.skip_bad_images,
    })
}
