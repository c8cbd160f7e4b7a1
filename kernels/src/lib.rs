//! zoo's own kernels, where Burn 0.22's CPU ops are the bottleneck: the LSTM and
//! GRU recurrences, the convolution, batch norm, max and average pooling and local response
//! normalization as single ops with hand-written backward passes on Flex, dropout, vectorized
//! exp / sigmoid / tanh, and Adam's update in one pass. Each has a Burn-ops reference beside
//! it that the tests compare with, and which other backends run, so that each can go upstream
//! to Burn later.

pub mod activation;
pub mod batch_norm;
pub mod conv;
pub mod dropout;
mod flex;
mod flex_conv;
mod flex_recurrent;
pub mod lrn;
pub mod math;
mod matmul;
pub mod optim;
pub mod pool;
pub mod recurrent;
mod transpose;

pub use activation::{sigmoid, tanh};
pub use batch_norm::batch_norm;
pub use conv::conv2d;
pub use dropout::dropout;
pub use lrn::local_response_norm;
pub use optim::FusedAdam;
pub use pool::{avg_pool2d, max_pool2d};
pub use recurrent::{gru, lstm, project, rnn};

#[cfg(test)]
mod testing;

/// Tests across kernels: how our ops meet each other's outputs and gradients.
#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use crate::testing::relative_gap;

    /// Our convolution, batch norm and max pooling composed as in a ResNet stem and block, against
    /// the same layers run by Burn: after one training step's backward, every parameter's gradient
    /// and the running statistics agree (the ops meet each other's outputs and gradients here,
    /// including a strided view and a shared input).
    #[test]
    fn our_ops_composed_train_as_burns() {
        use burn::nn::conv::Conv2dConfig;
        use burn::nn::pool::MaxPool2dConfig;
        use burn::nn::{BatchNormConfig, PaddingConfig2d};
        let device = Device::flex().autodiff();
        let conv = |channels: [usize; 2], kernel: usize, stride: usize, bias: bool| {
            let p = kernel / 2;
            Conv2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_bias(bias)
                .init(&device)
        };
        let (stem, block, shortcut) = (
            conv([3, 8], 3, 1, true),
            conv([8, 6], 3, 2, false),
            conv([8, 6], 1, 2, false),
        );
        // Two sets of the same batch norms: each path updates its own running statistics.
        let new_norms = || [8, 6, 6].map(|c| BatchNormConfig::new(c).init(&device));
        let (ours_norms, norms) = (new_norms(), new_norms());
        let pool = MaxPool2dConfig::new([3, 3])
            .with_strides([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let x = Tensor::<4>::random([6, 3, 11, 11], Distribution::Normal(0.5, 2.0), &device);
        // The stem's output, pooled, feeds both the block and its 1x1 shortcut.
        let run = |ours: bool, norms: &[burn::nn::BatchNorm; 3]| {
            let conv = |layer: &burn::nn::conv::Conv2d, x| match ours {
                true => crate::conv2d(layer, x),
                false => layer.forward(x),
            };
            let norm = |layer: &burn::nn::BatchNorm, x| match ours {
                true => crate::batch_norm(layer, x),
                false => layer.forward(x),
            };
            let pooled = |x| match ours {
                true => crate::max_pool2d(&pool, x),
                false => pool.forward(x),
            };
            let h = pooled(burn::tensor::activation::relu(norm(
                &norms[0],
                conv(&stem, x.clone()),
            )));
            // A strided view (the inner 9x9 of each map) into the block.
            let h = h.slice([0..6, 0..8, 1..10, 1..10]);
            let out =
                norm(&norms[1], conv(&block, h.clone())) + norm(&norms[2], conv(&shortcut, h));
            let weights = Tensor::random(out.dims(), Distribution::Normal(0.0, 1.0), &out.device());
            (out.clone(), weights)
        };
        let (ours, weights) = run(true, &ours_norms);
        let (burns, _) = run(false, &norms);
        assert!(
            relative_gap(ours.clone(), burns.clone()) < 1e-5,
            "outputs differ"
        );
        let grads = (ours * weights.clone()).sum().backward();
        let expected = (burns * weights).sum().backward();
        let params: [(&str, Tensor<4>); 3] = [
            ("stem", stem.weight.val()),
            ("block", block.weight.val()),
            ("shortcut", shortcut.weight.val()),
        ];
        for (name, weight) in params {
            let gap = relative_gap(
                weight.grad(&grads).unwrap(),
                weight.grad(&expected).unwrap(),
            );
            assert!(gap < 1e-4, "{name}'s weight gradient differs by {gap}");
        }
        // Batch norm right after the stem cancels its bias: the gradient is zero but for rounding,
        // so it is compared on the scale of the weight's gradient.
        let bias = stem.bias.as_ref().unwrap().val();
        let (ours_bias, burns_bias) = (bias.grad(&grads).unwrap(), bias.grad(&expected).unwrap());
        let scale = stem
            .weight
            .val()
            .grad(&expected)
            .unwrap()
            .abs()
            .max()
            .into_scalar::<f32>();
        let gap = (ours_bias - burns_bias).abs().max().into_scalar::<f32>();
        assert!(
            gap < 1e-4 * scale,
            "the stem's bias gradient differs by {gap}"
        );
        for (k, (ours, burns)) in ours_norms.iter().zip(&norms).enumerate() {
            let gap = |a: Tensor<1>, b: Tensor<1>| relative_gap(a, b);
            let gamma = gap(
                ours.gamma.val().grad(&grads).unwrap(),
                burns.gamma.val().grad(&expected).unwrap(),
            );
            let beta = gap(
                ours.beta.val().grad(&grads).unwrap(),
                burns.beta.val().grad(&expected).unwrap(),
            );
            let mean = gap(
                ours.running_mean.value_sync(),
                burns.running_mean.value_sync(),
            );
            let var = gap(
                ours.running_var.value_sync(),
                burns.running_var.value_sync(),
            );
            for (what, g) in [
                ("gamma", gamma),
                ("beta", beta),
                ("running mean", mean),
                ("running var", var),
            ] {
                assert!(g < 1e-4, "norm {k}'s {what} differs by {g}");
            }
        }
    }
}
