//! Batch norm in training (`burn::nn::BatchNorm` with the batch's statistics) as our own op
//! on Flex: one op for the statistics (two passes over the input, per channel), one pass that
//! normalizes, and a backward of two passes (per-channel sums, then the input's gradient).
//! Burn's generic op composes ~8 passes forward and ~12 backward, each copying through
//! `swap_dims`. Elsewhere, in evaluation and under mixed precision, the layer's own `forward`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::flex::{contiguous, on_flex_f32, tensor, values};

#[backend_extension(Flex, Autodiff)]
pub trait BatchNormOps: Backend {
    /// Per channel of `x` (`[batch, channels, ...]`), the mean and the biased variance:
    /// `[2, channels]`. A constant: nothing flows back through it.
    fn batch_statistics(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `x` normalized per channel by `statistics` (`batch_statistics(x)`), then scaled by
    /// `gamma` and shifted by `beta` (`[channels]`). Differentiated as batch norm in training:
    /// the statistics as functions of `x`.
    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// `bn` applied to `x` as `BatchNorm::forward`, with our op when it trains on Flex in f32:
/// the batch's statistics, and the running ones updated with them as Burn does.
///
/// # Shapes
/// - x: `[batch, channels, ...]`; output: the same
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let training = x.device().is_autodiff() && bn.training.is_enabled();
    if !training || !on_flex_f32(&x) || !on_flex_f32(&bn.gamma.val()) {
        return bn.forward(x);
    }
    let channels = x.dims()[1];
    let statistics: Tensor<2> = Tensor::from_dispatch(
        <Dispatch as BatchNormOps>::batch_statistics(x.clone().into_dispatch()),
    );
    let device = x.device();
    let momentum = bn.momentum;
    let running = |state: Tensor<1>, row: usize| {
        let batch = statistics.clone().narrow(0, row, 1).reshape([channels]);
        state
            .to_device(&device)
            .mul_scalar(1.0 - momentum)
            .add(batch.mul_scalar(momentum))
    };
    bn.running_mean
        .update(running(bn.running_mean.value_sync(), 0).detach());
    bn.running_var
        .update(running(bn.running_var.value_sync(), 1).detach());
    Tensor::from_dispatch(<Dispatch as BatchNormOps>::batch_norm_train(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        statistics.into_dispatch(),
        bn.epsilon,
    ))
}

/// A `[batch, channels, ...]` tensor as `batch * channels` planes of `size` values.
#[derive(Debug, Clone, Copy)]
struct Planes {
    batch: usize,
    channels: usize,
    size: usize,
}

impl Planes {
    fn of(x: &FlexTensor) -> Self {
        let shape = x.layout().shape();
        Self {
            batch: shape[0],
            channels: shape[1],
            size: shape[2..].iter().product(),
        }
    }

    /// Values per channel.
    fn count(&self) -> f64 {
        (self.batch * self.size) as f64
    }

    /// Channel `c`'s plane in each image.
    fn of_channel(self, values: &[f32], c: usize) -> impl Iterator<Item = &[f32]> {
        (0..self.batch).map(move |b| &values[(b * self.channels + c) * self.size..][..self.size])
    }

    /// Per channel in parallel, `f(c)`.
    fn per_channel<T: Send>(self, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
        (0..self.channels).into_par_iter().map(f).collect()
    }

    /// `out = a[c] * x + b[c]` (and `+ k[c] * y` when `y` is given), image by image in parallel.
    fn affine(self, x: &[f32], a: &[f32], b: &[f32], y: Option<(&[f32], &[f32])>) -> Vec<f32> {
        let mut out = vec![0.0; x.len()];
        let image = self.channels * self.size;
        out.par_chunks_mut(image).enumerate().for_each(|(n, out)| {
            for (c, out) in out.chunks_exact_mut(self.size).enumerate() {
                let at = n * image + c * self.size;
                let x = &x[at..][..self.size];
                match y {
                    None => {
                        for (o, x) in out.iter_mut().zip(x) {
                            *o = a[c] * x + b[c];
                        }
                    }
                    Some((y, k)) => {
                        let y = &y[at..][..self.size];
                        for ((o, x), y) in out.iter_mut().zip(x).zip(y) {
                            *o = a[c] * x + b[c] + k[c] * y;
                        }
                    }
                }
            }
        });
        out
    }
}

/// The sum of `f(a[i], b[i])` (`a` and `b` of one length), in 16 lanes so that it vectorizes.
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = a16
        .remainder()
        .iter()
        .zip(b16.remainder())
        .map(|(a, b)| f(*a, *b))
        .sum();
    let mut lanes = [0.0f32; 16];
    for (a, b) in a16.zip(b16) {
        for k in 0..16 {
            lanes[k] += f(a[k], b[k]);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `f` summed over channel `c`'s values in `a` and `b`: each plane in f32, the total in f64.
fn channel_sum(
    planes: Planes,
    (a, b): (&[f32], &[f32]),
    c: usize,
    f: impl Fn(f32, f32) -> f32 + Copy,
) -> f64 {
    planes
        .of_channel(a, c)
        .zip(planes.of_channel(b, c))
        .map(|(a, b)| lane_sum(a, b, f) as f64)
        .sum()
}

/// Per channel, the mean and the biased variance (two passes: the mean, then the squares
/// about it).
fn statistics(x: &[f32], planes: Planes) -> (Vec<f32>, Vec<f32>) {
    let n = planes.count();
    planes
        .per_channel(|c| {
            let mean = (channel_sum(planes, (x, x), c, |v, _| v) / n) as f32;
            let squares = channel_sum(planes, (x, x), c, |v, _| (v - mean) * (v - mean));
            (mean, (squares / n) as f32)
        })
        .into_iter()
        .unzip()
}

/// `1 / sqrt(var + epsilon)` per channel.
fn inverse_std(var: &[f32], epsilon: f64) -> Vec<f32> {
    var.iter()
        .map(|v| (1.0 / (*v as f64 + epsilon).sqrt()) as f32)
        .collect()
}

/// The normalized, scaled and shifted `x`.
fn normalize(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    planes: Planes,
) -> Vec<f32> {
    let scale: Vec<f32> = gamma.iter().zip(inv_std).map(|(g, s)| g * s).collect();
    let shift: Vec<f32> = (0..planes.channels)
        .map(|c| beta[c] - mean[c] * scale[c])
        .collect();
    planes.affine(x, &scale, &shift, None)
}

/// The statistics as a `[2, channels]` tensor.
fn statistics_tensor(x: &FlexTensor) -> FlexTensor {
    let planes = Planes::of(x);
    let (mean, var) = statistics(values(x), planes);
    tensor([mean, var].concat(), &[2, planes.channels])
}

/// The forward from contiguous tensors; also returns the inverse standard deviations.
fn forward(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    statistics: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, Vec<f32>) {
    let planes = Planes::of(x);
    let (mean, var) = values(statistics).split_at(planes.channels);
    let inv_std = inverse_std(var, epsilon);
    let out = normalize(
        values(x),
        values(gamma),
        values(beta),
        mean,
        &inv_std,
        planes,
    );
    (tensor(out, x.layout().shape()), inv_std)
}

impl BatchNormOps for Flex {
    fn batch_statistics(x: FloatTensor<Self>) -> FloatTensor<Self> {
        statistics_tensor(&contiguous(x))
    }

    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let [x, gamma, beta, statistics] = [x, gamma, beta, statistics].map(contiguous);
        forward(&x, &gamma, &beta, &statistics, epsilon).0
    }
}

/// Batch norm in training as one autodiff op.
#[derive(Debug)]
struct BatchNormTrain;

/// What the backward needs: the input, gamma, the means and the inverse standard deviations.
#[derive(Debug, Clone)]
struct Saved {
    x: FlexTensor,
    gamma: FlexTensor,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl Backward<Flex, 3> for BatchNormTrain {
    type State = Saved;

    /// With `xhat = (x - mean) * inv_std` and n values per channel: `d_beta = sum(dy)`,
    /// `d_gamma = sum(dy * xhat)`, `dx = gamma * inv_std * (dy - d_beta / n - xhat * d_gamma / n)`,
    /// the last as `a * x + b + k * dy` per channel, in one pass.
    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let d_out = contiguous(grads.consume::<Flex>(&ops.node));
        let Saved {
            x,
            gamma,
            mean,
            inv_std,
        } = &ops.state;
        let planes = Planes::of(x);
        let (x, dy, gamma, n) = (
            values(x),
            values(&d_out),
            values(gamma),
            planes.count() as f32,
        );
        let (d_beta, d_gamma): (Vec<f32>, Vec<f32>) = planes
            .per_channel(|c| {
                let d_beta = channel_sum(planes, (dy, dy), c, |d, _| d);
                let centred = channel_sum(planes, (dy, x), c, |d, x| d * (x - mean[c]));
                (d_beta as f32, centred as f32 * inv_std[c])
            })
            .into_iter()
            .unzip();
        let [node_x, node_gamma, node_beta] = &ops.parents;
        if let Some(node) = node_x {
            let k: Vec<f32> = (0..planes.channels)
                .map(|c| gamma[c] * inv_std[c])
                .collect();
            let a: Vec<f32> = (0..planes.channels)
                .map(|c| -k[c] * inv_std[c] * d_gamma[c] / n)
                .collect();
            let b: Vec<f32> = (0..planes.channels)
                .map(|c| -k[c] * d_beta[c] / n - a[c] * mean[c])
                .collect();
            let d_x = planes.affine(x, &a, &b, Some((dy, &k)));
            grads.register::<Flex>(node.id, tensor(d_x, d_out.layout().shape()));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(d_gamma, &[planes.channels]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(d_beta, &[planes.channels]));
        }
    }
}

impl<C: CheckpointStrategy> BatchNormOps for Autodiff<Flex, C> {
    fn batch_statistics(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // A constant: a tensor without a node.
        FloatTensor::<Self>::new(statistics_tensor(&contiguous(x.into_primitive())))
    }

    fn batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), gamma.node(), beta.node()];
        let [x, gamma, beta, statistics] =
            [x, gamma, beta, statistics].map(|input| contiguous(input.into_primitive()));
        let (out, inv_std) = forward(&x, &gamma, &beta, &statistics, epsilon);
        match BatchNormTrain
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let mean = values(&statistics)[..inv_std.len()].to_vec();
                prep.finish(
                    Saved {
                        x,
                        gamma,
                        mean,
                        inv_std,
                    },
                    out,
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};
    use proptest::prelude::*;

    use crate::testing::{random, relative_gap};

    /// Compares our batch norm with Burn's (`BatchNorm::forward` in training, on Flex with
    /// autodiff) on a `[batch, channels, ...]` input: the output, the gradients of the input, gamma
    /// and beta, and the running statistics after the step.
    fn compare_batch_norm<const D: usize>(shape: [usize; D], offset: f32) {
        let device = Device::flex().autodiff();
        let channels = shape[1];
        let new_layer = || {
            let mut bn = burn::nn::BatchNormConfig::new(channels).init(&device);
            // Gamma and beta away from 1 and 0, so that a mix-up shows.
            bn.gamma = burn::module::Param::from_tensor(random([channels], &device));
            bn.beta = burn::module::Param::from_tensor(random([channels], &device));
            bn
        };
        let (ours_layer, burns_layer) = (new_layer(), new_layer());
        let burns_layer = burn::nn::BatchNorm {
            gamma: burn::module::Param::from_tensor(ours_layer.gamma.val().detach().require_grad()),
            beta: burn::module::Param::from_tensor(ours_layer.beta.val().detach().require_grad()),
            ..burns_layer
        };
        // An offset: the variance must come from centred values, not from E[x^2] - E[x]^2.
        let x = (Tensor::<D>::random(shape, Distribution::Normal(0.0, 2.0), &device) + offset)
            .require_grad();
        let ours = crate::batch_norm(&ours_layer, x.clone());
        let burns = burns_layer.forward(x.clone());
        let gap = relative_gap(ours.clone(), burns.clone());
        assert!(gap < 1e-5, "{shape:?}: outputs differ by {gap}");
        let weights = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let grads = (ours * weights.clone()).sum().backward();
        let expected = (burns * weights).sum().backward();
        let gaps = [
            relative_gap(x.grad(&grads).unwrap(), x.grad(&expected).unwrap()),
            relative_gap(
                ours_layer.gamma.val().grad(&grads).unwrap(),
                burns_layer.gamma.val().grad(&expected).unwrap(),
            ),
            relative_gap(
                ours_layer.beta.val().grad(&grads).unwrap(),
                burns_layer.beta.val().grad(&expected).unwrap(),
            ),
            relative_gap(
                ours_layer.running_mean.value_sync(),
                burns_layer.running_mean.value_sync(),
            ),
            relative_gap(
                ours_layer.running_var.value_sync(),
                burns_layer.running_var.value_sync(),
            ),
        ];
        for (name, gap) in ["x", "gamma", "beta", "running mean", "running var"]
            .iter()
            .zip(gaps)
        {
            assert!(gap < 1e-4, "{shape:?}: {name} differs by {gap}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(30))]

        #[test]
        fn flex_batch_norm_matches_burns(
            batch in 1usize..9, channels in 1usize..7, height in 1usize..9, width in 1usize..40,
            offset in -5.0f32..5.0,
        ) {
            // A single value per channel has no variance to normalize by; two normalize to -1 and
            // 1 whatever x is, so x's gradient is 0 exactly and only rounding is left to compare.
            prop_assume!(batch * height * width > 2);
            compare_batch_norm([batch, channels, height, width], offset);
        }
    }

    /// Batch norm on features (`[batch, features]`, as in an MLP) and on sequences, and on a
    /// batch of the zoo's size; in evaluation both use the running statistics.
    #[test]
    fn flex_batch_norm_matches_burns_on_features_and_large_batches() {
        compare_batch_norm([37, 5], 3.0);
        compare_batch_norm([4, 3, 17], -1.0);
        compare_batch_norm([128, 8, 32, 32], 0.5);
    }
}
