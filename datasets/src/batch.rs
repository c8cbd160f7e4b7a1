//! The Burn side of the data: a `Dataset` over one split's images and a `Batcher` that
//! standardizes them into `[B, C, H, W]` float tensors with `[B]` integer targets.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;

use crate::augment::{resize, Augmentation};
use crate::images::{ImageSet, Standardization};

/// One image as stored (CHW bytes), its class, and its index in the decoded set (which
/// seeds its augmentation).
#[derive(Debug, Clone)]
pub struct ImageItem {
    pub pixels: Vec<u8>,
    pub label: u8,
    pub index: usize,
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
            index: i,
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

/// Turns items into a standardized `ImageBatch`: resized where `resize` says, augmented
/// where `augment` says (training batches only), then standardized.
#[derive(Debug, Clone)]
pub struct ImageBatcher {
    pub standardization: Standardization,
    /// The stored image shape, `[channels, height, width]`.
    pub stored: [usize; 3],
    /// Bilinear resize to `[height, width]` before anything else.
    pub resize: Option<[usize; 2]>,
    /// The augmentation and the epoch's seed.
    pub augment: Option<(Augmentation, u64)>,
}

impl ImageBatcher {
    /// A batcher for images stored as `stored` (`[channels, height, width]`).
    pub fn new(standardization: Standardization, stored: [usize; 3]) -> Self {
        Self {
            standardization,
            stored,
            resize: None,
            augment: None,
        }
    }

    pub fn with_resize(self, resize: Option<[usize; 2]>) -> Self {
        Self { resize, ..self }
    }

    /// The same batcher augmenting with `augmentation` drawn from `seed` (one per epoch).
    pub fn augmented(&self, augmentation: &Augmentation, seed: u64) -> Self {
        Self {
            augment: (!augmentation.is_identity()).then(|| (augmentation.clone(), seed)),
            ..self.clone()
        }
    }

    /// The shape of the images in a batch, `[channels, height, width]`.
    pub fn output_shape(&self) -> [usize; 3] {
        match self.resize {
            Some([h, w]) => [self.stored[0], h, w],
            None => self.stored,
        }
    }

    /// One item's standardized floats, appended to `out`.
    pub fn push_image(&self, item: &ImageItem, out: &mut Vec<f32>) {
        if self.resize.is_none() && self.augment.is_none() {
            return self.standardization.apply(&item.pixels, out);
        }
        let mut image: Vec<f32> = item.pixels.iter().map(|&p| p as f32).collect();
        if let Some([h, w]) = self.resize {
            image = resize(&image, self.stored, h, w);
        }
        if let Some((augmentation, seed)) = &self.augment {
            let mut rng = Augmentation::rng(*seed, item.index);
            image = augmentation.apply(&image, self.output_shape(), &mut rng);
        }
        self.standardization.apply_scaled(&image, out);
    }
}

impl Batcher<ImageItem, ImageBatch> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        let n = items.len();
        let [c, h, w] = self.output_shape();
        let mut floats = Vec::with_capacity(n * c * h * w);
        let mut targets = Vec::with_capacity(n);
        for item in &items {
            self.push_image(item, &mut floats);
            targets.push(item.label as i64);
        }
        let images = Tensor::from_data(TensorData::new(floats, [n, c, h, w]), device);
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
        let batcher = ImageBatcher::new(Standardization::identity(1), set.shape());
        let device = Device::flex();
        let batch = batcher.batch(vec![ds.get(0).unwrap(), ds.get(1).unwrap()], &device);
        assert_eq!(batch.images.dims(), [2, 1, 2, 2]);
        let pixels = batch.images.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(pixels, vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
        let targets = batch.targets.into_data().try_to_vec_as::<i64>().unwrap();
        assert_eq!(targets, vec![1, 2]);
    }

    #[test]
    fn resized_and_augmented_batches() {
        let set = Arc::new(ImageSet {
            pixels: vec![255; 8],
            labels: vec![0, 1],
            channels: 1,
            height: 2,
            width: 2,
            num_classes: 2,
        });
        let ds = ImageDataset::whole(set.clone());
        let items = || vec![ds.get(0).unwrap(), ds.get(1).unwrap()];
        let device = Device::flex();
        let plain =
            ImageBatcher::new(Standardization::identity(1), set.shape()).with_resize(Some([4, 4]));
        let batch = plain.batch(items(), &device);
        assert_eq!(batch.images.dims(), [2, 1, 4, 4]);
        assert_eq!(
            batch.images.into_data().try_to_vec::<f32>().unwrap(),
            vec![1.0; 32]
        );
        // Brightness shifts each image by its own amount, the same for the same seed.
        let aug = Augmentation {
            brightness: 0.5,
            ..Default::default()
        };
        let values = |seed| {
            plain
                .augmented(&aug, seed)
                .batch(items(), &device)
                .images
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        assert_eq!(values(1), values(1));
        assert_ne!(values(1), values(2));
        assert_ne!(values(1)[0], values(1)[16]);
    }
}
