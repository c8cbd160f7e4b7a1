//! A 2-d convolution layer (`burn::nn::conv::Conv2d`) with Flex's op replaced by ours
//! (`flex_conv`): im2col straight from NCHW into one buffer per thread, one gemm per image,
//! images in parallel, and a backward of our own (the input's gradient by gemm and col2im, the
//! weight's as one accumulated gemm per image) instead of Burn's generic one (a transposed
//! convolution and a convolution with swapped axes). Other backends, grouped convolutions and
//! "same" padding run the layer's own `forward`.

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch};
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::Tensor;

use crate::flex::on_flex_f32;

/// Where a convolution's kernel meets its input, per spatial axis (height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub stride: [usize; 2],
    /// Zeros added on both sides.
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

#[backend_extension(Flex, Autodiff)]
pub trait ConvOps: Backend {
    /// A convolution with one group. `x`: `[batch, in, height, width]`; `weight`:
    /// `[out, in, kernel height, kernel width]`; `bias`: `[out]`. Returns
    /// `[batch, out, height', width']`.
    fn fast_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;
}

/// `layer` applied to `x`, as `Conv2d::forward`, with our op on Flex.
///
/// # Shapes
/// - x: `[batch, in, height, width]`; output: `[batch, out, height', width']`
pub fn conv2d(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = symmetric_padding(&layer.padding);
    let weight = layer.weight.val();
    let (Some(padding), 1, true, true) =
        (padding, layer.groups, on_flex_f32(&x), on_flex_f32(&weight))
    else {
        return layer.forward(x);
    };
    let geometry = Geometry {
        stride: layer.stride,
        padding,
        dilation: layer.dilation,
    };
    conv2d_with(x, weight, layer.bias.as_ref().map(|b| b.val()), geometry)
}

/// The padding on each side (height, width) when both sides of each axis get the same, as
/// our ops take it; `None` for "same" padding, which Burn works out from the input.
pub(crate) fn symmetric_padding(padding: &PaddingConfig2d) -> Option<[usize; 2]> {
    match *padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    }
}

/// For kernel offset `offset` (kernel index times dilation, less the padding) along an axis
/// of `side` input values: the output positions `lo..hi` whose input `o * stride + offset`
/// lies inside the input. Shared by the convolution's im2col and max pooling's windows.
pub(crate) fn inside(offset: isize, stride: usize, side: usize, outputs: usize) -> (usize, usize) {
    let stride = stride as isize;
    let lo = if offset < 0 {
        (-offset + stride - 1) / stride
    } else {
        0
    };
    let hi = if offset < side as isize {
        ((side as isize - offset + stride - 1) / stride).min(outputs as isize)
    } else {
        0
    };
    (lo as usize, (hi as usize).max(lo as usize))
}

/// The convolution of `x` by `weight` (plus `bias`): our op on Flex, Burn's elsewhere.
///
/// # Shapes
/// - x: `[batch, in, height, width]`; weight: `[out, in, kernel height, kernel width]`
/// - bias: `[out]`; output: `[batch, out, height', width']`
pub fn conv2d_with(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    geometry: Geometry,
) -> Tensor<4> {
    if !on_flex_f32(&x) {
        return conv2d_reference(x, weight, bias, geometry);
    }
    // A bias of zeros stands for none: it is a constant, so no gradient is computed for it.
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[0]], &x.device()));
    Tensor::from_dispatch(<Dispatch as ConvOps>::fast_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        geometry,
    ))
}

/// Burn's own convolution, which the tests compare ours with.
///
/// # Shapes
/// - as `conv2d_with`
pub fn conv2d_reference(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    geometry: Geometry,
) -> Tensor<4> {
    let options = burn::tensor::ops::ConvOptions::new(
        geometry.stride,
        geometry.padding,
        geometry.dilation,
        1,
    );
    burn::tensor::module::conv2d(x, weight, bias, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};
    use proptest::prelude::*;

    use crate::testing::{random, relative_gap};

    #[test]
    fn inside_keeps_exactly_the_positions_that_land_in_the_input() {
        for offset in -4isize..6 {
            for stride in 1..4 {
                for side in 1..8 {
                    let outputs = 7;
                    let (lo, hi) = inside(offset, stride, side, outputs);
                    for o in 0..outputs {
                        let i = (o * stride) as isize + offset;
                        let lands = (0..side as isize).contains(&i);
                        assert_eq!(lands, (lo..hi).contains(&o), "{offset} {stride} {side} {o}");
                    }
                }
            }
        }
    }

    /// Compares our convolution with Burn's on Flex with autodiff: the output, and the gradients
    /// of the input (when it needs one), the weight and the bias (when there is one).
    #[allow(clippy::too_many_arguments)]
    fn compare_conv(
        [batch, in_channels, height, width]: [usize; 4],
        out_channels: usize,
        kernel: [usize; 2],
        geometry: Geometry,
        with_bias: bool,
        x_needs_grad: bool,
    ) {
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
            let geometry = Geometry {
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
            let geometry = Geometry {
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
    /// images per thread, an edge case, and a layer's entry point (`conv2d(&Conv2d, x)`)
    /// against its `forward` on Flex with and without autodiff, and on ndarray.
    #[test]
    fn flex_conv2d_matches_burns_on_the_zoos_shapes() {
        let plain = Geometry {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
        };
        compare_conv([5, 7, 6, 5], 9, [1, 1], plain, true, true);
        let same = Geometry {
            padding: [1, 1],
            ..plain
        };
        compare_conv([67, 3, 9, 9], 4, [3, 3], same, false, true);
        // Small maps, whose images share a gemm: full groups and a partial one, with a kernel
        // larger than the map, and pointwise.
        compare_conv([45, 6, 2, 2], 5, [3, 3], same, true, true);
        compare_conv([45, 6, 3, 3], 7, [1, 1], plain, true, true);
        // A kernel column that meets only padding (found by the proptest above).
        let padding_only = Geometry {
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
            let gap = relative_gap(conv2d(&layer, x.clone()), layer.forward(x));
            assert!(gap < 1e-5, "{device:?}: {gap}");
        }
    }
}
