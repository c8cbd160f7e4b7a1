//! Local response normalization across channels (AlexNet's and ZFNet's) as one op on Flex:
//! `y_c = x_c / (k + alpha * mean of x^2 over the size channels around c)^beta`, PyTorch's and
//! Burn's formula (zero padding, `(size - 1) / 2` channels before, `size / 2` after, divided
//! by `size`). Burn's `LocalResponseNorm` composes it from an average pool over channels (the
//! channels copied last and back around it), a power and a division, and autodiff takes each
//! apart again: a quarter of AlexNet's training. Ours makes one pass per image forward and one
//! backward from the kept denominators; images run in parallel. Elsewhere, Burn's module.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::nn::LocalResponseNormConfig;
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::flex::{contiguous, on_flex_f32, tensor, values};
use crate::math::{add, simd_fn};

/// The normalization's constants, in f32 as Flex applies them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lrn {
    /// Channels in a window.
    pub size: usize,
    pub alpha: f32,
    pub beta: f32,
    pub k: f32,
}

#[backend_extension(Flex, Autodiff)]
pub trait LrnOps: Backend {
    /// `x`: `[batch, channels, height, width]`; returns the same shape.
    fn fast_local_response_norm(x: FloatTensor<Self>, lrn: Lrn) -> FloatTensor<Self>;
}

/// `config`'s local response normalization of `x`, as `LocalResponseNorm::forward`, with our op
/// on Flex.
///
/// # Shapes
/// - x: `[batch, channels, height, width]`; output: the same
pub fn local_response_norm(config: &LocalResponseNormConfig, x: Tensor<4>) -> Tensor<4> {
    if !on_flex_f32(&x) || config.size == 0 {
        return config.init().forward(x);
    }
    let lrn = Lrn {
        size: config.size,
        alpha: config.alpha as f32,
        beta: config.beta as f32,
        k: config.k as f32,
    };
    Tensor::from_dispatch(<Dispatch as LrnOps>::fast_local_response_norm(
        x.into_dispatch(),
        lrn,
    ))
}

impl Lrn {
    /// The window of channels around `c` (of `channels`): `(size - 1) / 2` before, `size / 2`
    /// after, cut at the edges.
    fn window(&self, c: usize, channels: usize) -> std::ops::Range<usize> {
        c.saturating_sub((self.size - 1) / 2)..(c + self.size / 2 + 1).min(channels)
    }

    /// The channels whose windows hold `c`: `size / 2` before, `(size - 1) / 2` after.
    fn windows_holding(&self, c: usize, channels: usize) -> std::ops::Range<usize> {
        c.saturating_sub(self.size / 2)..(c + (self.size - 1) / 2 + 1).min(channels)
    }
}

simd_fn! {
    /// `to += v^2` for every value of `values`.
    fn add_squares(to: &mut [f32], values: &[f32]) {
        for (s, v) in to.iter_mut().zip(values) {
            *s += v * v;
        }
    }
}

/// One image forward, `[channels, plane]` each: the denominators' bases `d = k + alpha *
/// mean(x^2)` (in Burn's order: the window's squares summed, divided by `size`, times alpha,
/// plus k), their powers `p = d^beta`, and `y = x / p`.
fn forward_image(lrn: Lrn, channels: usize, x: &[f32], [y, d, p]: [&mut [f32]; 3]) {
    let plane = x.len() / channels;
    for c in 0..channels {
        let d_c = &mut d[c * plane..][..plane];
        d_c.fill(0.0);
        for j in lrn.window(c, channels) {
            add_squares(d_c, &x[j * plane..][..plane]);
        }
    }
    let size = lrn.size as f32;
    for d in d.iter_mut() {
        *d = *d / size * lrn.alpha + lrn.k;
    }
    powers(d, lrn.beta, p);
    for ((x, p), y) in x.iter().zip(p.iter()).zip(y) {
        *y = x / p;
    }
}

simd_fn! {
    /// `p = d^beta`. AlexNet's beta, 0.75, as `sqrt(d sqrt(d))`: two square roots that
    /// vectorize, within 2 ulp of the powf call per element that any other beta takes.
    fn powers(d: &[f32], beta: f32, p: &mut [f32]) {
        if beta == 0.75 {
            for (p, d) in p.iter_mut().zip(d) {
                *p = (d * d.sqrt()).sqrt();
            }
        } else {
            for (p, d) in p.iter_mut().zip(d) {
                *p = d.powf(beta);
            }
        }
    }
}

/// One image backward, `[channels, plane]` each: with `t_j = dy_j y_j / d_j`,
/// `dx_c = dy_c / p_c - (2 alpha beta / size) x_c * (the sum of t over the windows holding c)`.
/// `t` and `sum` are scratch.
#[allow(clippy::too_many_arguments)]
fn backward_image(
    lrn: Lrn,
    channels: usize,
    [x, y, d, p, dy]: [&[f32]; 5],
    dx: &mut [f32],
    t: &mut Vec<f32>,
    sum: &mut Vec<f32>,
) {
    let plane = x.len() / channels;
    t.clear();
    t.extend(dy.iter().zip(y).zip(d).map(|((dy, y), d)| dy * y / d));
    sum.resize(plane, 0.0);
    let coefficient = 2.0 * lrn.alpha * lrn.beta / lrn.size as f32;
    for c in 0..channels {
        sum.fill(0.0);
        for j in lrn.windows_holding(c, channels) {
            add(sum, &t[j * plane..][..plane]);
        }
        let channel = c * plane..(c + 1) * plane;
        let (x, dy, p) = (
            &x[channel.clone()],
            &dy[channel.clone()],
            &p[channel.clone()],
        );
        let dx = &mut dx[channel];
        for k in 0..plane {
            dx[k] = dy[k] / p[k] - coefficient * x[k] * sum[k];
        }
    }
}

/// What the backward keeps: the input, the output, the denominators' bases and their powers,
/// the shape.
#[derive(Debug, Clone)]
struct Kept {
    x: FlexTensor,
    y: FlexTensor,
    d: Vec<f32>,
    p: Vec<f32>,
    shape: [usize; 4],
}

/// The op forward on Flex: the output and what a backward keeps.
fn forward(x: FlexTensor, lrn: Lrn) -> (FlexTensor, Kept) {
    let x = contiguous(x);
    let shape: [usize; 4] = x
        .layout()
        .shape()
        .to_vec()
        .try_into()
        .expect("local response norm takes [batch, channels, height, width]");
    let image = shape[1] * shape[2] * shape[3];
    let n = shape[0] * image;
    let (mut y, mut d, mut p) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    if image > 0 {
        values(&x)
            .par_chunks(image)
            .zip(y.par_chunks_mut(image))
            .zip(d.par_chunks_mut(image).zip(p.par_chunks_mut(image)))
            .for_each(|((x, y), (d, p))| forward_image(lrn, shape[1], x, [y, d, p]));
    }
    let y = tensor(y, &shape);
    let kept = Kept {
        x,
        y: y.clone(),
        d,
        p,
        shape,
    };
    (y, kept)
}

/// The input's gradient from the output's, `dy`.
fn backward(lrn: Lrn, kept: &Kept, dy: FlexTensor) -> FlexTensor {
    let dy = contiguous(dy);
    let Kept { x, y, d, p, shape } = kept;
    let image = shape[1] * shape[2] * shape[3];
    let mut dx = vec![0.0; shape[0] * image];
    if image > 0 {
        let inputs = (values(x).par_chunks(image))
            .zip(values(y).par_chunks(image))
            .zip(d.par_chunks(image).zip(p.par_chunks(image)))
            .zip(values(&dy).par_chunks(image));
        dx.par_chunks_mut(image).zip(inputs).for_each_init(
            || (Vec::new(), Vec::new()),
            |(t, sum), (dx, (((x, y), (d, p)), dy))| {
                backward_image(lrn, shape[1], [x, y, d, p, dy], dx, t, sum)
            },
        );
    }
    tensor(dx, shape)
}

impl LrnOps for Flex {
    fn fast_local_response_norm(x: FloatTensor<Self>, lrn: Lrn) -> FloatTensor<Self> {
        forward(x, lrn).0
    }
}

/// The normalization as one autodiff op.
#[derive(Debug)]
struct LocalResponseNorm(Lrn);

impl Backward<Flex, 1> for LocalResponseNorm {
    type State = Kept;

    fn backward(self, ops: Ops<Kept, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        if let [Some(parent)] = &ops.parents {
            grads.register::<Flex>(parent.id, backward(self.0, &ops.state, dy));
        }
    }
}

impl<C: CheckpointStrategy> LrnOps for Autodiff<Flex, C> {
    fn fast_local_response_norm(x: FloatTensor<Self>, lrn: Lrn) -> FloatTensor<Self> {
        let nodes = [x.node()];
        let (y, kept) = forward(x.into_primitive(), lrn);
        match LocalResponseNorm(lrn)
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(kept, y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};
    use proptest::prelude::*;

    use crate::testing::relative_gap;

    #[test]
    fn alexnets_power_is_within_two_ulp_of_powf() {
        // Denominators' bases from k = 1e-3 up, as alpha * mean(x^2) + k takes them.
        let d: Vec<f32> = (0..20_000).map(|i| 1e-3 * 1.0007f32.powi(i)).collect();
        let mut p = vec![0.0; d.len()];
        powers(&d, 0.75, &mut p);
        for (d, p) in d.iter().zip(&p) {
            let ulps = p.to_bits().abs_diff(d.powf(0.75).to_bits());
            assert!(ulps <= 2, "{d}: {p} is {ulps} ulp from powf");
        }
    }

    /// Our local response normalization against Burn's `LocalResponseNorm` on `shape`: the output
    /// and the input's gradient, through a loss that weighs every output differently.
    fn compare_lrn(shape: [usize; 4], config: &burn::nn::LocalResponseNormConfig) {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 2.0), &device).require_grad();
        let (ours, burns) = (
            crate::local_response_norm(config, x.clone()),
            config.init().forward(x.clone()),
        );
        assert!(
            relative_gap(ours.clone(), burns.clone()) < 1e-6,
            "outputs differ"
        );
        let weights = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let ours = x.grad(&(ours * weights.clone()).sum().backward()).unwrap();
        let burns = x.grad(&(burns * weights).sum().backward()).unwrap();
        let gap = relative_gap(ours, burns);
        assert!(gap < 1e-5, "gradients differ by {gap}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Odd and even window sizes, windows wider than the channels, alphas large enough that
        /// the normalization moves every value.
        #[test]
        fn flex_local_response_norm_matches_burns(
            batch in 1usize..4, channels in 1usize..10, height in 1usize..6, width in 1usize..6,
            size in 1usize..8, alpha in 0.01f64..2.0, beta in 0.25f64..1.5, k in 0.5f64..3.0,
        ) {
            let config = burn::nn::LocalResponseNormConfig::new(size)
                .with_alpha(alpha)
                .with_beta(beta)
                .with_k(k);
            compare_lrn([batch, channels, height, width], &config);
        }
    }

    /// AlexNet's constants, on a batch of several images per thread.
    #[test]
    fn flex_local_response_norm_matches_burns_with_alexnets_constants() {
        let config = burn::nn::LocalResponseNormConfig::new(5)
            .with_alpha(1e-4)
            .with_beta(0.75)
            .with_k(2.0);
        compare_lrn([16, 12, 14, 14], &config);
    }
}
