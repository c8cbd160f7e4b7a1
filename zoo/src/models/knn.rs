//! k-nearest neighbours, the notes' first classifier: "training" stores the standardized
//! training images; prediction finds each query's k nearest by L2 or L1 distance and takes a
//! uniform or distance-weighted vote. Distances are computed on the device in blocks, so the
//! full query x training distance matrix never exists in memory.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use datasets::DataError;
use serde::{Deserialize, Serialize};

use super::family::ImageClassifier;
use crate::data::PreparedData;
use crate::input::ModelInput;
use crate::invalid::{positive, Invalid};
use crate::summary::{LayerSummary, Summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// Euclidean, through |a|^2 + |b|^2 - 2 a.b (one matrix multiply per block).
    L2,
    /// Manhattan, sum |a - b|.
    L1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vote {
    /// Each neighbour counts once.
    Uniform,
    /// Each neighbour counts 1 / distance (exact matches outvote everything else).
    Distance,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnnConfig {
    pub k: usize,
    pub distance: Distance,
    pub weights: Vote,
    /// Training images compared per block (bounds the distance block's memory); by default
    /// 8192 for L2 (large matrix multiplies) and 256 for L1 (cache-sized differences).
    pub train_block: Option<usize>,
    /// Bound on the elements of the [queries, block, features] difference tensor of L1.
    pub l1_block_elements: usize,
}

impl Default for KnnConfig {
    fn default() -> Self {
        Self {
            k: 5,
            distance: Distance::L2,
            weights: Vote::Uniform,
            train_block: None,
            l1_block_elements: 1 << 18,
        }
    }
}

impl KnnConfig {
    pub const KIND: &'static str = "knn";

    pub fn validate(&self) -> Result<(), Invalid> {
        positive("k", self.k)?;
        positive("train_block", self.block())?;
        positive("l1_block_elements", self.l1_block_elements)
    }

    /// One row: the stored training images.
    pub fn summary(&self, input: &ModelInput) -> Summary {
        let mut row = LayerSummary::flatten_map("memory", input.map());
        row.kind =
            format!("knn k={} {:?} {:?}", self.k, self.distance, self.weights).to_lowercase();
        Summary::new(Self::KIND, *input, vec![row])
    }

    /// "Trains": stores the standardized training split of `data` on `device`, in blocks.
    /// An image folder is refused: kNN keeps every training image in memory.
    pub fn fit_on(&self, data: &PreparedData, device: &Device) -> Result<KnnClassifier, DataError> {
        let train = data.train.in_memory().ok_or_else(|| {
            DataError::Unsupported("kNN keeps every training image in memory; an image folder is read batch by batch (train a network on it)".into())
        })?;
        let rows = self.block();
        let blocks = (0..train.len())
            .step_by(rows)
            .map(|start| {
                let items = (start..(start + rows).min(train.len()))
                    .map(|i| train.get(i).expect("in-memory"))
                    .collect();
                data.batcher.batch(items, device).images.flatten(1, 3)
            })
            .collect();
        Ok(self.fit(blocks, train.labels().collect(), data.input.num_classes))
    }

    fn block(&self) -> usize {
        self.train_block.unwrap_or(match self.distance {
            Distance::L2 => 8192,
            Distance::L1 => 256,
        })
    }

    /// "Trains": keeps the standardized training images, given as consecutive blocks of
    /// `[rows, d]` features (each at most `block_rows()` long, so no single device buffer
    /// holds the whole set), and their labels.
    pub fn fit(
        &self,
        blocks: Vec<Tensor<2>>,
        labels: Vec<u8>,
        num_classes: usize,
    ) -> KnnClassifier {
        let blocks = blocks
            .into_iter()
            .map(|features| {
                let rows = features.dims()[0];
                let squared_norms = features
                    .clone()
                    .powi_scalar(2)
                    .sum_dim(1)
                    .reshape([1, rows]);
                StoredBlock {
                    features,
                    squared_norms,
                }
            })
            .collect();
        KnnClassifier {
            config: self.clone(),
            blocks,
            labels,
            num_classes,
        }
    }
}

/// One block of stored training images.
#[derive(Debug, Clone)]
struct StoredBlock {
    /// `[rows, d]`
    features: Tensor<2>,
    /// `[1, rows]`: |b|^2 of every image, for L2.
    squared_norms: Tensor<2>,
}

/// A fitted kNN: the stored training set.
#[derive(Debug, Clone)]
pub struct KnnClassifier {
    pub config: KnnConfig,
    blocks: Vec<StoredBlock>,
    labels: Vec<u8>,
    num_classes: usize,
}

impl KnnClassifier {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Distances from each query to each image of a stored block.
    ///
    /// # Shapes
    /// - queries: `[q, d]`; output: `[q, rows]`
    fn block_distances(&self, queries: &Tensor<2>, block: &StoredBlock) -> Tensor<2> {
        let len = block.features.dims()[0];
        match self.config.distance {
            Distance::L2 => {
                let q_norms = queries.clone().powi_scalar(2).sum_dim(1); // [q, 1]
                let cross = queries.clone().matmul(block.features.clone().transpose()); // [q, len]
                                                                                        // Rounding can make tiny squared distances negative; clamp before the root.
                (q_norms + block.squared_norms.clone() - cross * 2.0)
                    .clamp_min(0.0)
                    .sqrt()
            }
            Distance::L1 => {
                let [q, d] = queries.dims();
                let rows_per_step = (self.config.l1_block_elements / (len * d).max(1)).clamp(1, q);
                let parts = (0..q)
                    .step_by(rows_per_step)
                    .map(|r| {
                        let rows = rows_per_step.min(q - r);
                        let a = queries.clone().narrow(0, r, rows).reshape([rows, 1, d]);
                        let b = block.features.clone().reshape([1, len, d]);
                        (a - b).abs().sum_dim(2).reshape([rows, len]) // [rows, len]
                    })
                    .collect();
                Tensor::cat(parts, 0)
            }
        }
    }

    /// The `k` nearest stored images of each query, nearest first: (distances, indices),
    /// both `q * k` long, row-major. Distances come from the device block by block; the
    /// running k smallest are kept on the host, where equal distances keep the lower index.
    pub fn neighbors(&self, queries: Tensor<2>, k: usize) -> (Vec<f32>, Vec<i64>) {
        let [q, _] = queries.dims();
        let k = k.min(self.len());
        let mut nearest: Vec<Vec<(f32, i64)>> = vec![Vec::with_capacity(k + 1); q];
        let mut start = 0;
        for block in &self.blocks {
            let len = block.features.dims()[0];
            let distances = self
                .block_distances(&queries, block)
                .try_into_vec_as::<f32>()
                .expect("float distances");
            for (row, best) in distances.chunks_exact(len).zip(nearest.iter_mut()) {
                for (j, &d) in row.iter().enumerate() {
                    if best.len() == k && d >= best[k - 1].0 {
                        continue;
                    }
                    // Insert after every entry at most as far: ties keep the earlier index first.
                    let at = best.partition_point(|&(e, _)| e <= d);
                    best.insert(at, (d, (start + j) as i64));
                    best.truncate(k);
                }
            }
            start += len;
        }
        nearest.into_iter().flatten().unzip()
    }

    /// Vote weights per class for each query (`q * num_classes`, row-major) from its
    /// neighbours; the class with the most weight wins, the lower class index on a tie.
    pub fn votes(&self, distances: &[f32], indices: &[i64], k: usize) -> Vec<f32> {
        let mut scores = Vec::with_capacity(indices.len() / k * self.num_classes);
        for (dist, idx) in distances.chunks(k).zip(indices.chunks(k)) {
            let mut votes = vec![0f32; self.num_classes];
            let exact = dist.iter().any(|&d| d <= 1e-12);
            for (&d, &i) in dist.iter().zip(idx) {
                let weight = match self.config.weights {
                    Vote::Uniform => 1.0,
                    Vote::Distance if exact => f32::from(d <= 1e-12),
                    Vote::Distance => 1.0 / d,
                };
                votes[self.labels[i as usize] as usize] += weight;
            }
            scores.extend(votes);
        }
        scores
    }
}

impl ImageClassifier for KnnClassifier {
    /// Vote weights per class.
    ///
    /// # Shapes
    /// - images: `[batch, channels, height, width]`; output: `[batch, num_classes]`
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        let device = images.device();
        let device_of_store = self
            .blocks
            .first()
            .map_or(device.clone(), |b| b.features.device());
        let queries = images.flatten(1, 3).to_device(&device_of_store);
        let q = queries.dims()[0];
        let (distances, indices) = self.neighbors(queries, self.config.k);
        let k = distances.len() / q.max(1);
        let scores = self.votes(&distances, &indices, k);
        Tensor::from_data(TensorData::new(scores, [q, self.num_classes]), &device)
    }

    fn eval_loss(&self, _logits: Tensor<2>, _targets: Tensor<1, Int>) -> Option<Tensor<1>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[f32], n: usize, device: &Device) -> Tensor<2> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [n, values.len() / n]),
            device,
        )
    }

    /// Stored 1-d points 0, 1, 2, 10, 11 with labels 0, 0, 1, 1, 1.
    fn fitted(distance: Distance, weights: Vote, k: usize, block: usize) -> KnnClassifier {
        let device = Device::flex();
        let config = KnnConfig {
            k,
            distance,
            weights,
            train_block: Some(block),
            ..Default::default()
        };
        let all = points(&[0.0, 1.0, 2.0, 10.0, 11.0], 5, &device);
        let blocks = (0..5)
            .step_by(block)
            .map(|s| all.clone().narrow(0, s, block.min(5 - s)))
            .collect();
        config.fit(blocks, vec![0, 0, 1, 1, 1], 2)
    }

    #[test]
    fn nearest_neighbours_are_exact_across_blocks() {
        for distance in [Distance::L1, Distance::L2] {
            for block in [1, 2, 5] {
                let knn = fitted(distance, Vote::Uniform, 3, block);
                let (d, i) = knn.neighbors(points(&[0.4, 9.0], 2, &Device::flex()), 3);
                assert_eq!(i, vec![0, 1, 2, 3, 4, 2], "{distance:?} block {block}");
                let expected = [0.4, 0.6, 1.6, 1.0, 2.0, 7.0];
                assert!(
                    d.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-4),
                    "{d:?}"
                );
            }
        }
    }

    #[test]
    fn uniform_and_distance_weighted_votes() {
        // Query 1.6: neighbours 2 (label 1, d 0.4), 1 (label 0, d 0.6), 0 (label 0, d 1.6).
        let q = || points(&[1.6], 1, &Device::flex()).reshape([1, 1, 1, 1]);
        let uniform = fitted(Distance::L2, Vote::Uniform, 3, 8).logits(q());
        assert_eq!(uniform.try_into_vec_as::<f32>().unwrap(), vec![2.0, 1.0]);
        let weighted = fitted(Distance::L2, Vote::Distance, 3, 8).logits(q());
        let w = weighted.try_into_vec_as::<f32>().unwrap();
        assert!(
            (w[0] - (1.0 / 0.6 + 1.0 / 1.6)).abs() < 1e-3 && (w[1] - 2.5).abs() < 1e-3,
            "{w:?}"
        );
        // An exact match takes the whole vote.
        let exact = fitted(Distance::L1, Vote::Distance, 3, 8)
            .logits(points(&[2.0], 1, &Device::flex()).reshape([1, 1, 1, 1]));
        assert_eq!(exact.try_into_vec_as::<f32>().unwrap(), vec![0.0, 1.0]);
    }
}
