//! Image classification on a split: evaluation (loss, top-1 and top-5 accuracy, per-class
//! accuracy and the confusion matrix, rows: true class, columns: predicted class), and the
//! training task the shared trainer runs for any image classifier.

use std::sync::Arc;

use burn::data::dataloader::DataLoader;
use burn::data::dataset::DatasetError;
use burn::prelude::*;
use burn::tensor::DType;
use datasets::{ImageBatch, ImageBatcher, Images};
use serde::{Deserialize, Serialize};

use crate::data::PreparedData;
use crate::models::ImageClassifier;
use crate::train::{shards, BatchLoss, Task, Validation};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub samples: usize,
    /// Mean loss; absent for models that minimize none (kNN).
    pub loss: Option<f64>,
    pub accuracy: f64,
    pub top5: f64,
    pub per_class: Vec<f64>,
    pub confusion: Vec<Vec<usize>>,
}

/// Runs `model` (in eval mode, on `device`) over `images` in order; fails on an image file
/// that cannot be read.
pub fn evaluate<M: ImageClassifier>(
    model: &M,
    images: &Images,
    batcher: &ImageBatcher,
    batch_size: usize,
    num_classes: usize,
    device: &Device,
) -> Result<Evaluation, DatasetError> {
    let loader = images.loader(batcher, batch_size, None, device);
    let mut confusion = vec![vec![0usize; num_classes]; num_classes];
    let (mut loss_sum, mut top5_hits, mut samples) = (Some(0f64), 0usize, 0usize);
    for batch in loader.iter() {
        let batch = batch?;
        let n = batch.targets.dims()[0];
        let logits = model.logits(batch.images);
        let loss = model.eval_loss(logits.clone(), batch.targets.clone());
        loss_sum = loss_sum
            .zip(loss)
            .map(|(sum, loss)| sum + loss.into_scalar::<f64>() * n as f64);
        let scores: Vec<f32> = logits.try_into_vec_as::<f32>().expect("logits are floats");
        let targets: Vec<i64> = batch
            .targets
            .try_into_vec_as::<i64>()
            .expect("targets are integers");
        for (row, &target) in scores.chunks_exact(num_classes).zip(&targets) {
            let target = target as usize;
            let (predicted, rank) = rank_of(row, target);
            confusion[target][predicted] += 1;
            top5_hits += usize::from(rank < 5);
        }
        samples += n;
    }
    Ok(summarize(confusion, loss_sum, top5_hits, samples))
}

/// `evaluate` on one split of `data` (its validation or test images), with its batcher.
pub fn evaluate_on<M: ImageClassifier>(
    model: &M,
    data: &PreparedData,
    split: &Images,
    batch_size: usize,
    device: &Device,
) -> Result<Evaluation, DatasetError> {
    evaluate(
        model,
        split,
        &data.batcher,
        batch_size,
        data.input.num_classes,
        device,
    )
}

/// Image classification: any `ImageClassifier` on a `PreparedData`.
pub struct ImageTask<'a> {
    pub data: &'a PreparedData,
}

impl ImageTask<'_> {
    /// The training split, augmented and shuffled with `seed`, in batches on `device`.
    pub fn train_loader(
        &self,
        batch_size: usize,
        seed: u64,
        device: &Device,
    ) -> Arc<dyn DataLoader<ImageBatch>> {
        let batcher = self.data.batcher.augmented(&self.data.augmentation, seed);
        self.data
            .train
            .loader(&batcher, batch_size, Some(seed), device)
    }
}

impl<M: ImageClassifier> Task<M> for ImageTask<'_> {
    type Batch = ImageBatch;

    fn train_loader(
        &self,
        batch_size: usize,
        seed: u64,
        device: &Device,
    ) -> Arc<dyn DataLoader<ImageBatch>> {
        ImageTask::train_loader(self, batch_size, seed, device)
    }

    fn batch_loss(&self, model: &M, batch: ImageBatch) -> BatchLoss {
        let n = batch.targets.dims()[0];
        let (logits, loss) = model.training_loss(batch.images, batch.targets.clone());
        let correct = logits
            .argmax(1)
            .squeeze_dim::<1>(1)
            .equal(batch.targets)
            .int()
            .sum()
            .into_scalar::<i64>();
        BatchLoss {
            loss,
            predictions: n,
            correct: correct as usize,
            examples: n,
        }
    }

    fn cast_inputs(&self, batch: ImageBatch, dtype: DType) -> ImageBatch {
        ImageBatch {
            images: batch.images.cast(dtype),
            targets: batch.targets,
        }
    }

    fn shard(&self, batch: ImageBatch, devices: &[Device]) -> Vec<(ImageBatch, usize)> {
        shards(batch.targets.dims()[0], devices, |rows, device| {
            ImageBatch {
                images: batch.images.clone().slice(rows.clone()).to_device(device),
                targets: batch.targets.clone().slice(rows).to_device(device),
            }
        })
    }

    fn validate(
        &self,
        model: &M,
        batch_size: usize,
        device: &Device,
    ) -> Result<Validation, DatasetError> {
        let data = self.data;
        let e = evaluate_on(model, data, &data.val, batch_size, device)?;
        Ok(Validation {
            loss: e.loss.expect("trained models define a loss"),
            accuracy: e.accuracy,
            top5: e.top5,
        })
    }
}

/// The arg-max of `scores` and the rank of `target` among them (0 = best; ties favour the
/// lower class index, as arg-max does).
fn rank_of(scores: &[f32], target: usize) -> (usize, usize) {
    let predicted = scores
        .iter()
        .enumerate()
        .fold(0, |best, (i, &s)| if s > scores[best] { i } else { best });
    let t = scores[target];
    let rank = scores
        .iter()
        .enumerate()
        .filter(|&(i, &s)| s > t || (s == t && i < target))
        .count();
    (predicted, rank)
}

fn summarize(
    confusion: Vec<Vec<usize>>,
    loss_sum: Option<f64>,
    top5_hits: usize,
    samples: usize,
) -> Evaluation {
    let total = samples.max(1) as f64;
    let correct: usize = (0..confusion.len()).map(|c| confusion[c][c]).sum();
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let n: usize = row.iter().sum();
            if n == 0 {
                0.0
            } else {
                row[c] as f64 / n as f64
            }
        })
        .collect();
    Evaluation {
        samples,
        loss: loss_sum.map(|sum| sum / total),
        accuracy: correct as f64 / total,
        top5: top5_hits as f64 / total,
        per_class,
        confusion,
    }
}

impl Evaluation {
    /// Per-class accuracy and the confusion matrix as a text table.
    pub fn to_table(&self, class_names: &[String]) -> String {
        let width = class_names
            .iter()
            .map(|n| n.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!(
            "test: {} images  accuracy {:.4}  top-5 {:.4}{}\n\n{:<width$}  {:>8}  confusion (rows: true, columns: predicted)\n",
            self.samples,
            self.accuracy,
            self.top5,
            self.loss.map_or(String::new(), |l| format!("  loss {l:.4}")),
            "class",
            "accuracy"
        );
        for (c, row) in self.confusion.iter().enumerate() {
            let name = class_names.get(c).map(String::as_str).unwrap_or("?");
            let cells: Vec<String> = row.iter().map(|v| format!("{v:>5}")).collect();
            out += &format!(
                "{name:<width$}  {:>8.4}  {}\n",
                self.per_class[c],
                cells.join(" ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_and_prediction() {
        assert_eq!(rank_of(&[0.1, 0.9, 0.5], 2), (1, 1));
        assert_eq!(rank_of(&[0.1, 0.9, 0.5], 1), (1, 0));
        // Ties: the lower index wins, as in arg-max.
        assert_eq!(rank_of(&[0.5, 0.5], 1), (0, 1));
    }

    #[test]
    fn summary_from_confusion() {
        let e = summarize(vec![vec![3, 1], vec![0, 4]], Some(4.0), 8, 8);
        assert_eq!(e.accuracy, 7.0 / 8.0);
        assert_eq!(e.per_class, vec![0.75, 1.0]);
        assert_eq!(e.loss, Some(0.5));
        assert_eq!(e.top5, 1.0);
    }
}
