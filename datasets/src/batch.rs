//! The Burn side of the data: a `Dataset` over one split's images and a `Batcher` that
//! standardizes them into `[B, C, H, W]` float tensors with `[B]` integer targets.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;

use crate::images::{ImageSet, Standardization};

/// One image as stored (CHW bytes) and its class.
#[derive(Debug, Clone)]
pub struct ImageItem {
    pub pixels: Vec<u8>,
    pub label: u8,
}

/// A view of the images at `indices` of a shared, decoded `ImageSet` (a train, validation
/// or test split): the data is decoded once and never copied per split.
#[derive(Debug, Clone)]
pub struct ImageDataset {
    set: Arc<ImageSet>,
    indices: Vec<usize>,
}

impl ImageDataset {
    pub fn new(set: Arc<ImageSet>, indices: Vec<usize>) -> Self {
        Self { set, indices }
    }

    /// All images of `set`, in order.
    pub fn whole(set: Arc<ImageSet>) -> Self {
        let indices = (0..set.len()).collect();
        Self { set, indices }
    }

    pub fn set(&self) -> &ImageSet {
        &self.set
    }

    pub fn labels(&self) -> impl Iterator<Item = u8> + '_ {
        self.indices.iter().map(|&i| self.set.labels[i])
    }
}

impl Dataset<ImageItem> for ImageDataset {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        let i = self.indices[index];
        Ok(ImageItem {
            pixels: self.set.image(i).to_vec(),
            label: self.set.labels[i],
        })
    }

    fn len(&self) -> usize {
        self.indices.len()
    }
}

/// A batch on the training device.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// `[batch, channels, height, width]`, standardized.
    pub images: Tensor<4>,
    /// `[batch]` class indices.
    pub targets: Tensor<1, Int>,
}

/// Turns items into a standardized `ImageBatch` of the given image shape.
#[derive(Debug, Clone)]
pub struct ImageBatcher {
    pub standardization: Standardization,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageBatcher {
    pub fn new(standardization: Standardization, set: &ImageSet) -> Self {
        Self {
            standardization,
            channels: set.channels,
            height: set.height,
            width: set.width,
        }
    }
}

impl Batcher<ImageItem, ImageBatch> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        let n = items.len();
        let mut floats = Vec::with_capacity(n * self.channels * self.height * self.width);
        let mut targets = Vec::with_capacity(n);
        for item in &items {
            self.standardization.apply(&item.pixels, &mut floats);
            targets.push(item.label as i64);
        }
        let images = Tensor::from_data(
            TensorData::new(floats, [n, self.channels, self.height, self.width]),
            device,
        );
        let targets = Tensor::from_data(TensorData::new(targets, [n]), device);
        ImageBatch { images, targets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_have_nchw_shape_and_standardized_values() {
        let set = Arc::new(ImageSet {
            pixels: vec![0, 255, 0, 255, 255, 255, 255, 255, 0, 0, 0, 0],
            labels: vec![2, 0, 1],
            channels: 1,
            height: 2,
            width: 2,
            num_classes: 3,
        });
        let ds = ImageDataset::new(set.clone(), vec![2, 0]);
        assert_eq!(ds.len(), 2);
        let batcher = ImageBatcher::new(Standardization::identity(1), &set);
        let device = Device::flex();
        let batch = batcher.batch(vec![ds.get(0).unwrap(), ds.get(1).unwrap()], &device);
        assert_eq!(batch.images.dims(), [2, 1, 2, 2]);
        let pixels = batch.images.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(pixels, vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
        let targets = batch.targets.into_data().try_to_vec_as::<i64>().unwrap();
        assert_eq!(targets, vec![1, 2]);
    }
}
