//! The Flex ops against their Burn-ops references: outputs and the gradients of every input,
//! on random shapes including odd sizes.

use burn::tensor::{Device, Distribution, Tensor};
use proptest::prelude::*;

use crate::recurrent::{gru_composed, lstm_composed};

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device).require_grad()
}

/// Largest difference relative to the reference's largest magnitude.
fn relative_gap<const D: usize>(ours: Tensor<D>, reference: Tensor<D>) -> f32 {
    let scale = reference.clone().abs().max().into_scalar::<f32>().max(1e-6);
    (ours - reference).abs().max().into_scalar::<f32>() / scale
}

/// Runs `op` and `reference` on the same inputs and compares outputs and input gradients (x's
/// where it is tracked), through a loss that weighs every output element differently.
fn compare<const N: usize>(
    inputs: [Tensor<2>; N],
    x: Tensor<3>,
    op: impl Fn(Tensor<3>, &[Tensor<2>; N]) -> Tensor<3>,
    reference: impl Fn(Tensor<3>, &[Tensor<2>; N]) -> Tensor<3>,
) {
    let (out, expected) = (op(x.clone(), &inputs), reference(x.clone(), &inputs));
    assert!(
        relative_gap(out.clone(), expected.clone()) < 1e-5,
        "outputs differ"
    );
    let weights = Tensor::random(out.dims(), Distribution::Normal(0.0, 1.0), &out.device());
    let grads = (out * weights.clone()).sum().backward();
    let expected_grads = (expected * weights).sum().backward();
    match x.is_require_grad() {
        true => {
            let gap = relative_gap(x.grad(&grads).unwrap(), x.grad(&expected_grads).unwrap());
            assert!(gap < 1e-4, "x's gradient: {gap}");
        }
        false => assert!(x.grad(&grads).is_none(), "an untracked x got a gradient"),
    }
    for (k, input) in inputs.iter().enumerate() {
        let gap = relative_gap(
            input.grad(&grads).unwrap(),
            input.grad(&expected_grads).unwrap(),
        );
        assert!(gap < 1e-4, "input {k}'s gradient: {gap}");
    }
}

/// A bias, carried as a `[1, n]` matrix so that all inputs share one type.
fn bias(b: &Tensor<2>) -> Tensor<1> {
    b.clone().reshape([b.dims()[1]])
}

/// Compares the Flex LSTM layer with its Burn-ops reference on `device`.
fn compare_lstm([batch, steps, input, hidden]: [usize; 4], x_tracked: bool, device: &Device) {
    let inputs = [
        random([4 * hidden, input], device),
        random([4 * hidden, hidden], device),
        random([1, 4 * hidden], device),
        random([batch, hidden], device),
        random([batch, hidden], device),
    ];
    let layer = |op: fn(_, _, _, _, _, _) -> _| {
        move |x, [w_ih, w_hh, b, h, c]: &[Tensor<2>; 5]| {
            op(x, w_ih.clone(), w_hh.clone(), bias(b), h.clone(), c.clone())
        }
    };
    let x = random([batch, steps, input], device).set_require_grad(x_tracked);
    compare(inputs, x, layer(crate::lstm), layer(lstm_composed));
}

/// Compares the Flex GRU layer with its Burn-ops reference on `device`.
fn compare_gru([batch, steps, input, hidden]: [usize; 4], x_tracked: bool, device: &Device) {
    let inputs = [
        random([3 * hidden, input], device),
        random([3 * hidden, hidden], device),
        random([1, 3 * hidden], device),
        random([1, 3 * hidden], device),
        random([batch, hidden], device),
    ];
    let layer = |op: fn(_, _, _, _, _, _) -> _| {
        move |x, [w_ih, w_hh, b_ih, b_hh, h]: &[Tensor<2>; 5]| {
            op(
                x,
                w_ih.clone(),
                w_hh.clone(),
                bias(b_ih),
                bias(b_hh),
                h.clone(),
            )
        }
    };
    let x = random([batch, steps, input], device).set_require_grad(x_tracked);
    compare(inputs, x, layer(crate::gru), layer(gru_composed));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn flex_lstm_matches_burn_ops(
        batch in 1usize..6, steps in 1usize..9, input in 1usize..12, hidden in 1usize..20
    ) {
        compare_lstm([batch, steps, input, hidden], true, &Device::flex().autodiff());
    }

    #[test]
    fn flex_gru_matches_burn_ops(
        batch in 1usize..6, steps in 1usize..9, input in 1usize..12, hidden in 1usize..20
    ) {
        compare_gru([batch, steps, input, hidden], true, &Device::flex().autodiff());
    }
}

/// A batch of several blocks of rows per thread (blocks hold at most 128 rows).
#[test]
fn flex_layers_match_burn_ops_on_many_row_blocks() {
    let device = Device::flex().autodiff();
    compare_lstm([300, 3, 5, 6], true, &device);
    compare_gru([300, 3, 5, 6], true, &device);
}

/// The images fed to a first layer need no gradient: the layers skip it and the weights'
/// gradients stay right.
#[test]
fn flex_layers_match_burn_ops_with_an_untracked_input() {
    let device = Device::flex().autodiff();
    compare_lstm([7, 4, 5, 6], false, &device);
    compare_gru([7, 4, 5, 6], false, &device);
}

/// The gradients of every input of both layers, as bits, from a backward run on a pool of
/// `threads` threads; the inputs are rebuilt from `inputs` there.
fn layer_gradient_bits(threads: usize, inputs: &[burn::tensor::TensorData; 6]) -> Vec<Vec<u32>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let device = Device::flex().autodiff();
        let [x, w_ih, w_hh, b, h, c] = inputs
            .clone()
            .map(|data| Tensor::<2>::from_data(data, &device).require_grad());
        let (hidden, width) = (h.dims()[1], w_ih.dims()[0]);
        let (batch, steps) = (h.dims()[0], x.dims()[0] / h.dims()[0]);
        let x3 = x.clone().reshape([batch, steps, x.dims()[1]]);
        let lstm = crate::lstm(
            x3.clone(),
            w_ih.clone(),
            w_hh.clone(),
            bias(&b),
            h.clone(),
            c.clone(),
        );
        // The GRU's weights: the first three quarters of the LSTM's rows.
        let rows = |m: &Tensor<2>| m.clone().narrow(0, 0, 3 * hidden);
        let b3 = b.clone().narrow(1, 0, 3 * hidden);
        let gru = crate::gru(
            x3,
            rows(&w_ih),
            rows(&w_hh),
            bias(&b3),
            bias(&b3),
            h.clone(),
        );
        let loss = (lstm.clone() * lstm).sum() + (gru.clone() * gru).sum().mul_scalar(width as f32);
        let grads = loss.backward();
        [x, w_ih, w_hh, b, h, c]
            .iter()
            .map(|t| {
                let grad = t.grad(&grads).unwrap().into_data();
                grad.try_to_vec::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            })
            .collect()
    })
}

/// The weights' gradients are summed over shares of a fixed number of rows, in a fixed order:
/// the thread count changes how the rows are split between threads, never the bits.
#[test]
fn flex_layer_gradients_do_not_depend_on_the_thread_count() {
    let device = Device::flex();
    let (batch, steps, input, hidden) = (100, 5, 3, 4);
    let normal = Distribution::Normal(0.0, 1.0);
    let data = |rows, cols| Tensor::<2>::random([rows, cols], normal, &device).into_data();
    let inputs = [
        data(batch * steps, input),
        data(4 * hidden, input),
        data(4 * hidden, hidden),
        data(1, 4 * hidden),
        data(batch, hidden),
        data(batch, hidden),
    ];
    let one = layer_gradient_bits(1, &inputs);
    for threads in [2, 3] {
        assert!(
            one == layer_gradient_bits(threads, &inputs),
            "{threads} threads"
        );
    }
}

#[test]
fn without_autodiff_the_flex_ops_give_the_same_outputs() {
    let device = Device::flex();
    let (batch, steps, input, hidden) = (3, 5, 4, 7);
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::random([batch, steps, input], normal, &device);
    let matrix = |rows, cols| Tensor::<2>::random([rows, cols], normal, &device);
    let (w_ih, w_hh, b) = (
        matrix(4 * hidden, input),
        matrix(4 * hidden, hidden),
        matrix(1, 4 * hidden),
    );
    let (h, c) = (matrix(batch, hidden), matrix(batch, hidden));
    let ours = crate::lstm(
        x.clone(),
        w_ih.clone(),
        w_hh.clone(),
        bias(&b),
        h.clone(),
        c.clone(),
    );
    let reference = lstm_composed(x.clone(), w_ih, w_hh, bias(&b), h.clone(), c);
    assert!(relative_gap(ours, reference) < 1e-5);
    let (w_ih, w_hh, b_hh) = (
        matrix(3 * hidden, input),
        matrix(3 * hidden, hidden),
        matrix(1, 3 * hidden),
    );
    let b_ih = matrix(1, 3 * hidden);
    let ours = crate::gru(
        x.clone(),
        w_ih.clone(),
        w_hh.clone(),
        bias(&b_ih),
        bias(&b_hh),
        h.clone(),
    );
    let reference = gru_composed(x, w_ih, w_hh, bias(&b_ih), bias(&b_hh), h);
    assert!(relative_gap(ours, reference) < 1e-5);
}

#[test]
fn flex_tanh_and_sigmoid_match_burns_with_gradients_from_the_output() {
    let device = Device::flex().autodiff();
    // Odd sizes, and one above the parallel chunk.
    for shape in [[1, 1], [7, 13], [3, 40_001]] {
        let x = Tensor::<2>::random(shape, Distribution::Normal(0.0, 3.0), &device).require_grad();
        for (ours, burns) in [
            (
                crate::tanh(x.clone()),
                burn::tensor::activation::tanh(x.clone()),
            ),
            (
                crate::sigmoid(x.clone()),
                burn::tensor::activation::sigmoid(x.clone()),
            ),
        ] {
            assert!(
                (ours.clone() - burns.clone())
                    .abs()
                    .max()
                    .into_scalar::<f32>()
                    < 3e-7
            );
            let weights = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let ours = x.grad(&(ours * weights.clone()).sum().backward()).unwrap();
            let burns = x.grad(&(burns * weights.clone()).sum().backward()).unwrap();
            // Absolute, on the weights' scale: where every x saturates, both gradients are
            // tiny and their relative gap says nothing.
            let gap = (ours - burns).abs().max().into_scalar::<f32>();
            let scale = weights.abs().max().into_scalar::<f32>();
            assert!(gap < 2e-6 * scale, "gradients differ by {gap}");
        }
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

/// A dropout layer of probability `prob`, training.
fn dropout_layer(prob: f64) -> burn::nn::Dropout {
    burn::nn::DropoutConfig::new(prob).init()
}

/// Burn's dropout keeps each element with probability 1 - p and scales it by 1 / (1 - p); so
/// does ours (the fraction kept within six standard deviations), and its backward goes
/// through the forward's mask.
#[test]
fn flex_dropout_keeps_scales_and_backpropagates_through_its_mask() {
    let device = Device::flex().autodiff();
    let (prob, shape) = (0.3, [601, 499]);
    let x = random(shape, &device);
    let y = crate::dropout(&dropout_layer(prob), x.clone());
    let weights = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let grads = (y.clone() * weights.clone()).sum().backward();
    let grad = x
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let scale = (1.0 / (1.0 - prob)) as f32;
    let [x, y, w] = [x, y, weights].map(|t| t.into_data().try_to_vec::<f32>().unwrap());
    let mut kept = 0;
    for i in 0..x.len() {
        let is_kept = y[i] != 0.0;
        kept += usize::from(is_kept);
        let (expected_y, expected_grad) = match is_kept {
            true => (x[i] * scale, w[i] * scale),
            false => (0.0, 0.0),
        };
        assert_eq!((y[i], grad[i]), (expected_y, expected_grad), "element {i}");
    }
    let n = x.len() as f64;
    let sd = (prob * (1.0 - prob) / n).sqrt();
    let fraction = kept as f64 / n;
    assert!(
        (fraction - (1.0 - prob)).abs() < 6.0 * sd,
        "kept {fraction}"
    );
}

/// Compares our convolution with Burn's on Flex with autodiff: the output, and the gradients
/// of the input (when it needs one), the weight and the bias (when there is one).
#[allow(clippy::too_many_arguments)]
fn compare_conv(
    [batch, in_channels, height, width]: [usize; 4],
    out_channels: usize,
    kernel: [usize; 2],
    geometry: crate::conv::Geometry,
    with_bias: bool,
    x_needs_grad: bool,
) {
    use crate::conv::{conv2d_reference, conv2d_with};
    let device = Device::flex().autodiff();
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<4>::random([batch, in_channels, height, width], normal, &device);
    let x = if x_needs_grad { x.require_grad() } else { x };
    let weight = random([out_channels, in_channels, kernel[0], kernel[1]], &device);
    let bias = with_bias.then(|| random([out_channels], &device));
    let ours = conv2d_with(x.clone(), weight.clone(), bias.clone(), geometry);
    let expected = conv2d_reference(x.clone(), weight.clone(), bias.clone(), geometry);
    assert_eq!(ours.dims(), expected.dims());
    let gap = relative_gap(ours.clone(), expected.clone());
    assert!(gap < 1e-5, "outputs differ by {gap}");
    let weights = Tensor::random(ours.dims(), normal, &device);
    // A bias's gradient sums its channel's output weights, which may cancel to near 0: its gap
    // is measured against the largest sum of their magnitudes instead.
    let bias_scale = weights.clone().abs().sum_dim(0).sum_dim(2).sum_dim(3);
    let bias_scale = bias_scale.max().into_scalar::<f32>();
    let grads = (ours * weights.clone()).sum().backward();
    let expected_grads = (expected * weights).sum().backward();
    let gap = relative_gap(
        weight.grad(&grads).unwrap(),
        weight.grad(&expected_grads).unwrap(),
    );
    assert!(gap < 1e-5, "the weight's gradient differs by {gap}");
    if let Some(bias) = bias {
        let difference = bias.grad(&grads).unwrap() - bias.grad(&expected_grads).unwrap();
        let gap = difference.abs().max().into_scalar::<f32>() / bias_scale;
        assert!(gap < 1e-5, "the bias's gradient differs by {gap}");
    }
    match x_needs_grad {
        true => {
            let gap = relative_gap(x.grad(&grads).unwrap(), x.grad(&expected_grads).unwrap());
            assert!(gap < 1e-5, "the input's gradient differs by {gap}");
        }
        false => assert!(x.grad(&grads).is_none()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Odd sizes, kernels up to 5x5 (rectangular ones too), strides, padding and dilation;
    /// shapes where the kernel does not fit are skipped.
    #[test]
    fn flex_conv2d_matches_burns(
        batch in 1usize..6, in_channels in 1usize..5, height in 1usize..12, width in 1usize..12,
        out_channels in 1usize..6, kernel_height in 1usize..6, kernel_width in 1usize..6,
        stride in (1usize..4, 1usize..4), padding in (0usize..3, 0usize..3),
        dilation in (1usize..3, 1usize..3), with_bias: bool, x_needs_grad: bool,
    ) {
        let reach = |d: usize, k: usize| d * (k - 1) + 1;
        prop_assume!(height + 2 * padding.0 >= reach(dilation.0, kernel_height));
        prop_assume!(width + 2 * padding.1 >= reach(dilation.1, kernel_width));
        let geometry = crate::conv::Geometry {
            stride: [stride.0, stride.1],
            padding: [padding.0, padding.1],
            dilation: [dilation.0, dilation.1],
        };
        compare_conv(
            [batch, in_channels, height, width],
            out_channels,
            [kernel_height, kernel_width],
            geometry,
            with_bias,
            x_needs_grad,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    /// "Same" convolutions (stride 1, output as wide as the input), where each kernel
    /// position's columns are one run across the output rows.
    #[test]
    fn flex_same_conv2d_matches_burns(
        batch in 1usize..4, in_channels in 1usize..4, height in 1usize..10, width in 1usize..10,
        out_channels in 1usize..5, half_kernel in 0usize..3, dilation in 1usize..3,
        x_needs_grad: bool,
    ) {
        let padding = dilation * half_kernel;
        let geometry = crate::conv::Geometry {
            stride: [1, 1],
            padding: [padding, padding],
            dilation: [dilation, dilation],
        };
        let kernel = 2 * half_kernel + 1;
        compare_conv(
            [batch, in_channels, height, width],
            out_channels,
            [kernel, kernel],
            geometry,
            true,
            x_needs_grad,
        );
    }
}

/// The shapes the model zoo runs: a 1x1 convolution (no column buffer), a batch of many
/// images per thread, an edge case, and a layer's entry point (`conv2d(&Conv2d, x)`) against its `forward`
/// on Flex with and without autodiff, and on ndarray.
#[test]
fn flex_conv2d_matches_burns_on_the_zoos_shapes() {
    let plain = crate::conv::Geometry {
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
    };
    compare_conv([5, 7, 6, 5], 9, [1, 1], plain, true, true);
    let same = crate::conv::Geometry {
        padding: [1, 1],
        ..plain
    };
    compare_conv([67, 3, 9, 9], 4, [3, 3], same, false, true);
    // Small maps, whose images share a gemm: full groups and a partial one, with a kernel
    // larger than the map, and pointwise.
    compare_conv([45, 6, 2, 2], 5, [3, 3], same, true, true);
    compare_conv([45, 6, 3, 3], 7, [1, 1], plain, true, true);
    // A kernel column that meets only padding (found by the proptest above).
    let padding_only = crate::conv::Geometry {
        stride: [3, 3],
        padding: [0, 1],
        dilation: [1, 1],
    };
    compare_conv([1, 1, 4, 1], 1, [1, 1], padding_only, true, true);
    #[allow(deprecated)]
    let devices = [Device::flex(), Device::flex().autodiff(), Device::ndarray()];
    for device in devices {
        let layer = burn::nn::conv::Conv2dConfig::new([3, 5], [5, 3])
            .with_stride([2, 1])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(2, 1, 2, 1))
            .init(&device);
        let x = Tensor::<4>::random([4, 3, 11, 8], Distribution::Normal(0.0, 1.0), &device);
        let gap = relative_gap(crate::conv2d(&layer, x.clone()), layer.forward(x));
        assert!(gap < 1e-5, "{device:?}: {gap}");
    }
}

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

/// The bits of two poolings of `x`, each followed by its input's gradient through a loss that
/// weighs every output differently.
fn pooled_bits(x: Tensor<4>, ours: Tensor<4>, burns: Tensor<4>) -> [Vec<u32>; 2] {
    let weights = Tensor::random(ours.dims(), Distribution::Normal(0.0, 1.0), &x.device());
    [ours, burns].map(|out| {
        let grads = (out.clone() * weights.clone()).sum().backward();
        [out, x.grad(&grads).unwrap()]
            .into_iter()
            .flat_map(|t| t.into_data().try_to_vec::<f32>().unwrap())
            .map(f32::to_bits)
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Our max pooling gives Flex's bits, forward and backward: the same maxima, the same
    /// winner among ties (values drawn from a few integers, so windows tie often), and the same
    /// order of additions where windows overlap. Up to 33 planes: a vector's worth of planes
    /// and a partial one.
    #[test]
    fn flex_max_pool2d_matches_burns_bit_for_bit(
        batch in 1usize..4, channels in 1usize..12, height in 1usize..13, width in 1usize..13,
        kernel in (1usize..5, 1usize..5), stride in (1usize..4, 1usize..4),
        padding in (0usize..3, 0usize..3), ceil_mode: bool, nans: bool,
    ) {
        prop_assume!(2 * padding.0 <= kernel.0 && 2 * padding.1 <= kernel.1);
        prop_assume!(height + 2 * padding.0 >= kernel.0 && width + 2 * padding.1 >= kernel.1);
        let device = Device::flex().autodiff();
        let layer = burn::nn::pool::MaxPool2dConfig::new([kernel.0, kernel.1])
            .with_strides([stride.0, stride.1])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(
                padding.0, padding.1, padding.0, padding.1,
            ))
            .with_ceil_mode(ceil_mode)
            .init();
        let shape = [batch, channels, height, width];
        let x = Tensor::<4>::random(shape, Distribution::Uniform(-3.0, 3.0), &device).round();
        // With `nans`, the 3s become NaNs: a NaN wins its window, and the last one wins a tie.
        let x = match nans {
            true => x.clone().mask_fill(x.equal_elem(3.0), f32::NAN),
            false => x,
        }
        .require_grad();
        let (ours, burns) = (crate::max_pool2d(&layer, x.clone()), layer.forward(x.clone()));
        let [ours, burns] = pooled_bits(x, ours, burns);
        prop_assert_eq!(ours, burns);
    }

    /// Our average pooling gives Flex's bits, forward and backward: each window summed in the
    /// same order, and, where windows overlap (stride under the kernel), each input's shares
    /// added in the same order.
    #[test]
    fn flex_avg_pool2d_matches_burns_bit_for_bit(
        batch in 1usize..4, channels in 1usize..4, height in 1usize..13, width in 1usize..13,
        kernel in (1usize..6, 1usize..6), stride in (1usize..4, 1usize..4),
    ) {
        prop_assume!(height >= kernel.0 && width >= kernel.1);
        let device = Device::flex().autodiff();
        let layer = burn::nn::pool::AvgPool2dConfig::new([kernel.0, kernel.1])
            .with_strides([stride.0, stride.1])
            .init();
        let shape = [batch, channels, height, width];
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
        let (ours, burns) = (crate::avg_pool2d(&layer, x.clone()), layer.forward(x.clone()));
        let [ours, burns] = pooled_bits(x, ours, burns);
        prop_assert_eq!(ours, burns);
    }
}

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
        let out = norm(&norms[1], conv(&block, h.clone())) + norm(&norms[2], conv(&shortcut, h));
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
