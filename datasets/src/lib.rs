//! Datasets for zoo: readers for the IDX (MNIST family) and CIFAR binary formats, image
//! folders decoded lazily (`folder`), a seeded
//! train/validation split, per-channel standardization, and a Burn `Dataset` + `Batcher`
//! that hand the trainer `[B, C, H, W]` float images and `[B]` integer targets.
//!
//! This crate knows nothing of models or training: it turns files into tensors on a device.

pub mod augment;
pub mod batch;
pub mod cifar;
pub mod error;
pub mod folder;
pub mod idx;
pub mod images;
pub mod source;
pub mod split;

pub use augment::Augmentation;
pub use batch::{ImageBatch, ImageBatcher, ImageDataset, ImageItem};
pub use error::DataError;
pub use folder::{CropConfig, FolderSplit, FolderTransform, ImageFolder};
pub use images::{ImageSet, Standardization};
pub use source::{DatasetKind, Split, DEFAULT_FASHION_MNIST_DIR};
pub use split::Images;
