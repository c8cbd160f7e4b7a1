//! Decoded images held in memory once, as bytes, plus the split and standardization that
//! the notes prescribe (statistics from the training split only, reused at test time).

use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use serde::{Deserialize, Serialize};

/// A whole split of an image dataset, decoded: `len` images of `channels x height x width`
/// bytes in channel-major (CHW) order, and one label per image.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub num_classes: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[channels, height, width]` of every image.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    pub fn image_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The bytes of image `index`, CHW.
    pub fn image(&self, index: usize) -> &[u8] {
        let size = self.image_size();
        &self.pixels[index * size..(index + 1) * size]
    }

    /// Keeps the images whose label `map` sends to `Some(new_label)`, relabeled: for
    /// two-class tasks (shirt vs T-shirt) and one-vs-rest.
    pub fn relabeled(&self, map: impl Fn(u8) -> Option<u8>, num_classes: usize) -> Self {
        let size = self.image_size();
        let mut out = ImageSet {
            pixels: Vec::new(),
            labels: Vec::new(),
            num_classes,
            ..*self
        };
        for (i, &label) in self.labels.iter().enumerate() {
            if let Some(new) = map(label) {
                out.labels.push(new);
                out.pixels
                    .extend_from_slice(&self.pixels[i * size..(i + 1) * size]);
            }
        }
        out
    }

    /// The first `n` images (all of them if `n` is larger): for quick runs and tests.
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.pixels.truncate(n * self.image_size());
        self.labels.truncate(n);
        self
    }
}

/// Splits `0..len` into (train, validation) index lists, the validation part `val_size` long,
/// chosen by a seeded shuffle; both lists come back sorted so the split alone fixes them.
pub fn train_val_split(len: usize, val_size: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let val_size = val_size.min(len);
    let mut val = order[..val_size].to_vec();
    let mut train = order[val_size..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// k-fold cross-validation splits of `0..len`: `folds` (train, validation) pairs whose
/// validation parts are disjoint, cover everything, and differ in size by at most one.
pub fn kfold_split(len: usize, folds: usize, seed: u64) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    (0..folds)
        .map(|f| {
            let (lo, hi) = (f * len / folds, (f + 1) * len / folds);
            let mut val = order[lo..hi].to_vec();
            let mut train: Vec<usize> = order[..lo].iter().chain(&order[hi..]).copied().collect();
            val.sort_unstable();
            train.sort_unstable();
            (train, val)
        })
        .collect()
}

/// Per-channel standardization of pixel values scaled to [0, 1]: x' = (x / 255 - mean) / std.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Standardization {
    /// The identity on [0, 1]-scaled pixels (mean 0, std 1), for `normalize = "none"`.
    pub fn identity(channels: usize) -> Self {
        Self {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// Mean and standard deviation per channel over the images at `indices` (the training split).
    pub fn fit(set: &ImageSet, indices: &[usize]) -> Self {
        let plane = set.height * set.width;
        let mut sum = vec![0f64; set.channels];
        let mut sum_sq = vec![0f64; set.channels];
        for &i in indices {
            for (c, channel) in set.image(i).chunks_exact(plane).enumerate() {
                for &p in channel {
                    let x = p as f64 / 255.0;
                    sum[c] += x;
                    sum_sq[c] += x * x;
                }
            }
        }
        let count = (indices.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            // A constant channel would divide by zero; leave it unscaled.
            .map(|(sq, m)| ((sq / count - m * m).max(0.0).sqrt()).max(1e-6) as f32)
            .collect();
        Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// `apply` for an image already in floats on the 0-255 scale (resized or augmented).
    pub fn apply_scaled(&self, image: &[f32], out: &mut Vec<f32>) {
        let plane = image.len() / self.mean.len();
        for (c, channel) in image.chunks_exact(plane).enumerate() {
            let scale = 1.0 / (255.0 * self.std[c]);
            let shift = self.mean[c] / self.std[c];
            out.extend(channel.iter().map(|&p| p * scale - shift));
        }
    }

    /// Writes the standardized floats of one CHW image into `out`.
    pub fn apply(&self, image: &[u8], out: &mut Vec<f32>) {
        let plane = image.len() / self.mean.len();
        for (c, channel) in image.chunks_exact(plane).enumerate() {
            let scale = 1.0 / (255.0 * self.std[c]);
            let shift = self.mean[c] / self.std[c];
            out.extend(channel.iter().map(|&p| p as f32 * scale - shift));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_set() -> ImageSet {
        // Two 1x2x2 images: [0, 255, 0, 255] and [255, 255, 255, 255].
        ImageSet {
            pixels: vec![0, 255, 0, 255, 255, 255, 255, 255],
            labels: vec![0, 1],
            channels: 1,
            height: 2,
            width: 2,
            num_classes: 2,
        }
    }

    #[test]
    fn relabeling_filters_and_renumbers() {
        let set = tiny_set().relabeled(|l| (l == 1).then_some(0), 1);
        assert_eq!(set.labels, vec![0]);
        assert_eq!(set.pixels, vec![255, 255, 255, 255]);
    }

    #[test]
    fn split_is_disjoint_complete_and_seeded() {
        let (train, val) = train_val_split(100, 10, 7);
        assert_eq!(val.len(), 10);
        assert_eq!(train.len(), 90);
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(train_val_split(100, 10, 7), (train, val.clone()));
        assert_ne!(train_val_split(100, 10, 8).1, val);
    }

    #[test]
    fn kfold_parts_partition_the_set() {
        let folds = kfold_split(23, 5, 1);
        let mut seen: Vec<usize> = folds.iter().flat_map(|(_, v)| v.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        for (train, val) in &folds {
            assert!(val.len() == 4 || val.len() == 5);
            assert_eq!(train.len() + val.len(), 23);
            assert!(train.iter().all(|i| !val.contains(i)));
        }
    }

    #[test]
    fn standardization_uses_only_given_indices() {
        let set = tiny_set();
        let s = Standardization::fit(&set, &[0]);
        assert!((s.mean[0] - 0.5).abs() < 1e-6);
        assert!((s.std[0] - 0.5).abs() < 1e-6);
        let mut out = Vec::new();
        s.apply(set.image(0), &mut out);
        assert_eq!(out, vec![-1.0, 1.0, -1.0, 1.0]);
        let all = Standardization::fit(&set, &[0, 1]);
        assert!((all.mean[0] - 0.75).abs() < 1e-6);
    }
}
