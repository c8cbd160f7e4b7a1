//! One split's images, wherever they live (decoded in memory or files in an image folder),
//! and the loader that hands them to the trainer in batches.

use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::prelude::*;

use crate::batch::{ImageBatch, ImageBatcher, ImageDataset};
use crate::folder::FolderSplit;

/// One split's images, wherever they live: decoded in memory, or files in an image folder
/// decoded batch by batch.
#[derive(Debug, Clone)]
pub enum Images {
    InMemory(ImageDataset),
    Files(FolderSplit),
}

impl Images {
    pub fn len(&self) -> usize {
        match self {
            Images::InMemory(d) => d.len(),
            Images::Files(f) => f.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Files skipped so far because they could not be decoded (`data.skip_bad_images`).
    pub fn skipped(&self) -> Vec<std::path::PathBuf> {
        match self {
            Images::InMemory(_) => Vec::new(),
            Images::Files(f) => f.folder.skipped_files(),
        }
    }

    /// The in-memory images, for what needs them all at once (kNN); `None` for a folder.
    pub fn in_memory(&self) -> Option<&ImageDataset> {
        match self {
            Images::InMemory(d) => Some(d),
            Images::Files(_) => None,
        }
    }

    /// Batches on `device`, finished by `batcher`, shuffled with `seed` when given (a folder's
    /// random crops are seeded by it too).
    pub fn loader(
        &self,
        batcher: &ImageBatcher,
        batch_size: usize,
        seed: Option<u64>,
        device: &Device,
    ) -> Arc<dyn DataLoader<ImageBatch>> {
        match self {
            Images::InMemory(dataset) => {
                let builder = DataLoaderBuilder::new(batcher.clone())
                    .batch_size(batch_size)
                    .set_device(device.clone());
                match seed {
                    Some(seed) => builder.shuffle(seed),
                    None => builder,
                }
                .build(dataset.clone())
            }
            Images::Files(split) => split.loader(batcher.clone(), batch_size, seed, device),
        }
    }
}
