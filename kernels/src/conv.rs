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
}
