//! Max and average pooling (`burn::nn::pool::MaxPool2d`, `AvgPool2d`) as our own ops on Flex:
//! each window's bounds are worked out once per call, not per element, and planes run in
//! parallel. Max pooling scans each window for 16 planes at once, one vector lane each;
//! average pooling runs one kernel position at a time across a whole output row. Flex's
//! recomputes the bounds of every window inside a 3-d loop: its max pooling took 46 % of
//! LeNet-5's training, its average pooling a fifth of the classic LeNet-5's. Max pooling: same
//! maxima, same indices (the first maximum of a window in row order; a NaN wins), and the same
//! order of additions backward as Flex's. Average pooling: each window summed from 0 in row
//! order and divided by its size, each input's gradient shares added in output order, as
//! Flex's. So both give Flex's bits. Elsewhere, and for dilated, padded (average) or
//! "same"-padded pooling, the layer's own `forward`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::conv::{inside, symmetric_padding};
use crate::flex::{contiguous, on_flex_f32, tensor, values};
use crate::math::simd_fn;
use crate::transpose::transpose;

/// A pooling window, per spatial axis (height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Added on both sides; padding never wins.
    pub padding: [usize; 2],
    /// Whether a last, partial window counts (PyTorch's `ceil_mode`).
    pub ceil_mode: bool,
}

/// Values per rayon task: below this a plane is not worth a hand-off on its own.
const TASK: usize = 1 << 12;

#[backend_extension(Flex, Autodiff)]
pub trait PoolOps: Backend {
    /// The maximum of each window. `x`: `[batch, channels, height, width]`; returns
    /// `[batch, channels, height', width']`.
    fn fast_max_pool2d(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self>;

    /// The mean of each window (no padding). `x`: `[batch, channels, height, width]`; returns
    /// `[batch, channels, height', width']`.
    fn fast_avg_pool2d(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self>;
}

/// `layer` applied to `x`, as `MaxPool2d::forward`, with our op on Flex.
///
/// # Shapes
/// - x: `[batch, channels, height, width]`; output: `[batch, channels, height', width']`
pub fn max_pool2d(layer: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let padding = symmetric_padding(&layer.padding);
    let [_, _, height, width] = x.dims();
    let window = padding.map(|padding| Window {
        kernel: layer.kernel_size,
        stride: layer.stride,
        padding,
        ceil_mode: layer.ceil_mode,
    });
    match window {
        Some(window)
            if layer.dilation == [1, 1] && on_flex_f32(&x) && window.fits(height, width) =>
        {
            Tensor::from_dispatch(<Dispatch as PoolOps>::fast_max_pool2d(
                x.into_dispatch(),
                window,
            ))
        }
        _ => layer.forward(x),
    }
}

/// `layer` applied to `x`, as `AvgPool2d::forward`, with our op on Flex where the layer has
/// no padding and does not round up (zoo's average pools: LeNet-5's, GoogLeNet's auxiliary
/// heads').
///
/// # Shapes
/// - x: `[batch, channels, height, width]`; output: `[batch, channels, height', width']`
pub fn avg_pool2d(layer: &AvgPool2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, height, width] = x.dims();
    let window = Window {
        kernel: layer.kernel_size,
        stride: layer.stride,
        padding: [0, 0],
        ceil_mode: false,
    };
    let unpadded = symmetric_padding(&layer.padding) == Some([0, 0]) && !layer.ceil_mode;
    match unpadded && on_flex_f32(&x) && window.fits(height, width) {
        true => Tensor::from_dispatch(<Dispatch as PoolOps>::fast_avg_pool2d(
            x.into_dispatch(),
            window,
        )),
        false => layer.forward(x),
    }
}

impl Window {
    /// Values in a whole window.
    fn size(&self) -> f32 {
        (self.kernel[0] * self.kernel[1]) as f32
    }

    /// Outputs along `axis` for `input` values, as Flex (and PyTorch) count them; with
    /// `ceil_mode`, a last window that would start in the trailing padding is dropped.
    fn outputs(&self, axis: usize, input: usize) -> usize {
        let (kernel, stride, padding) = (self.kernel[axis], self.stride[axis], self.padding[axis]);
        let span = input + 2 * padding - kernel;
        match self.ceil_mode {
            false => span / stride + 1,
            true => {
                let out = span.div_ceil(stride) + 1;
                if (out - 1) * stride >= input + padding {
                    out - 1
                } else {
                    out
                }
            }
        }
    }

    /// Whether every window of a `height` x `width` plane is well-formed: the kernel fits
    /// the padded input, and the padding is under the kernel (else Flex's op handles it).
    fn fits(&self, height: usize, width: usize) -> bool {
        [height, width].iter().enumerate().all(|(axis, &side)| {
            side + 2 * self.padding[axis] >= self.kernel[axis]
                && 2 * self.padding[axis] <= self.kernel[axis]
        })
    }

    /// For each output along `axis`, the input range its window covers.
    fn ranges(&self, axis: usize, input: usize) -> Vec<(usize, usize)> {
        let (kernel, stride, padding) = (self.kernel[axis], self.stride[axis], self.padding[axis]);
        (0..self.outputs(axis, input))
            .map(|o| {
                let start = (o * stride) as isize - padding as isize;
                let end = (start + kernel as isize).min(input as isize);
                (start.max(0) as usize, end.max(0) as usize)
            })
            .collect()
    }
}

/// The sizes of one pooling, and where its windows read.
#[derive(Debug, Clone)]
struct Planes {
    shape: [usize; 4],
    /// For each output row, the input rows its windows cover.
    rows: Vec<(usize, usize)>,
    /// For each output column, the input columns its windows cover.
    columns: Vec<(usize, usize)>,
    out_width: usize,
    stride: usize,
    /// For each kernel column: the outputs `lo..hi` whose window column lands inside the
    /// input, at input column `o * stride + offset`.
    column_taps: Vec<((usize, usize), isize)>,
}

impl Planes {
    fn of(x: &FlexTensor, window: &Window) -> Self {
        let s = x.layout().shape();
        let (width, out_width) = (s[3], window.outputs(1, s[3]));
        let (stride, padding) = (window.stride[1], window.padding[1] as isize);
        let column_taps = (0..window.kernel[1])
            .map(|kx| {
                let offset = kx as isize - padding;
                (inside(offset, stride, width, out_width), offset)
            })
            .collect();
        Self {
            shape: [s[0], s[1], s[2], s[3]],
            rows: window.ranges(0, s[2]),
            columns: window.ranges(1, s[3]),
            out_width,
            stride,
            column_taps,
        }
    }

    fn input_len(&self) -> usize {
        self.shape[2] * self.shape[3]
    }

    fn output_len(&self) -> usize {
        self.rows.len() * self.out_width
    }

    fn out_shape(&self) -> [usize; 4] {
        let [batch, channels, ..] = self.shape;
        [batch, channels, self.rows.len(), self.out_width]
    }

    /// Planes per rayon task.
    fn per_task(&self) -> usize {
        (TASK / self.input_len().max(1)).max(1)
    }
}

/// Planes pooled side by side, one per lane: one AVX-512 vector, or two AVX2 ones. The
/// Fashion-MNIST networks' maps are 28x28 and less: their rows are too short to fill vectors,
/// while batch times channels gives hundreds of planes.
const LANES: usize = 16;

/// Buffers one rayon task reuses from group to group of `LANES` planes, each
/// `[position][lane]`.
#[derive(Debug, Default)]
struct Scratch {
    inputs: Vec<f32>,
    maxima: Vec<f32>,
    indices: Vec<u32>,
}

/// Each window's maximum, and its index in the plane (the first maximum in row order, or the
/// last NaN, as Flex's), `LANES` planes at a time, groups in parallel.
fn forward(x: &[f32], planes: &Planes) -> (Vec<f32>, Vec<u32>) {
    let (input_len, output_len) = (planes.input_len(), planes.output_len());
    let total = planes.shape[0] * planes.shape[1] * output_len;
    // Every cell is written by `max_pool_group`.
    let (mut out, mut at) = (vec![0.0; total], vec![0; total]);
    out.par_chunks_mut(LANES * output_len)
        .zip(at.par_chunks_mut(LANES * output_len))
        .zip(x.par_chunks(LANES * input_len))
        .with_min_len(planes.per_task().div_ceil(LANES))
        .for_each_init(Scratch::default, |scratch, ((out, at), x)| {
            max_pool_group(x, out, at, planes, scratch)
        });
    (out, at)
}

simd_fn! {
    /// Up to `LANES` planes' maxima and their indices: the planes interleaved, so that each
    /// window's scan in row order runs on all of them at once, then split again.
    fn max_pool_group(
        x: &[f32],
        out: &mut [f32],
        at: &mut [u32],
        planes: &Planes,
        scratch: &mut Scratch,
    ) {
        let (input_len, output_len) = (planes.input_len(), planes.output_len());
        let width = planes.shape[3];
        let Scratch { inputs, maxima, indices } = scratch;
        // Lanes past the last plane hold stale values that nothing reads back.
        inputs.resize(input_len * LANES, 0.0);
        maxima.resize(output_len * LANES, 0.0);
        indices.resize(output_len * LANES, 0);
        let count = x.len() / input_len;
        transpose(x, input_len, count, input_len, inputs, LANES);
        let windows = (planes.rows.iter())
            .flat_map(|rows| planes.columns.iter().map(move |columns| (rows, columns)));
        let cells = maxima.chunks_exact_mut(LANES).zip(indices.chunks_exact_mut(LANES));
        for ((maxima, indices), (&(top, bottom), &(left, right))) in cells.zip(windows) {
            let (mut max, mut index) = ([f32::NEG_INFINITY; LANES], [u32::MAX; LANES]);
            for y in top..bottom {
                for position in y * width + left..y * width + right {
                    let values = &inputs[position * LANES..][..LANES];
                    keep_maxima(&mut max, &mut index, values, position as u32);
                }
            }
            maxima.copy_from_slice(&max);
            indices.copy_from_slice(&index);
        }
        transpose(maxima, LANES, output_len, count, out, output_len);
        transpose(indices, LANES, output_len, count, at, output_len);
    }
}

/// Each lane's `(max, index)` meets its value at `position`, and keeps it as Flex's scan does:
/// when it has none yet, when the value is greater, or when it is a NaN. Branch-free on
/// fixed-size arrays, so that it compiles to a few vector instructions.
#[inline(always)]
fn keep_maxima(max: &mut [f32; LANES], index: &mut [u32; LANES], values: &[f32], position: u32) {
    let (old_max, old_index, values) = (*max, *index, &values[..LANES]);
    for lane in 0..LANES {
        let value = values[lane];
        let take = (old_index[lane] == u32::MAX) | (value > old_max[lane]) | value.is_nan();
        max[lane] = if take { value } else { old_max[lane] };
        index[lane] = if take { position } else { old_index[lane] };
    }
}

/// The input's gradient: each output's gradient added at its window's maximum, in output order.
fn backward(d_out: &[f32], at: &[u32], planes: &Planes) -> Vec<f32> {
    let (input_len, output_len) = (planes.input_len(), planes.output_len());
    let mut d_x = vec![0.0; planes.shape[0] * planes.shape[1] * input_len];
    d_x.par_chunks_mut(input_len)
        .zip(d_out.par_chunks(output_len))
        .zip(at.par_chunks(output_len))
        .with_min_len(planes.per_task())
        .for_each(|((d_x, d_out), at)| {
            for (d, &i) in d_out.iter().zip(at) {
                if let Some(d_x) = d_x.get_mut(i as usize) {
                    *d_x += d;
                }
            }
        });
    d_x
}

/// Each window's mean (no padding: every window is whole): its values summed from 0 in row
/// order, one kernel position at a time across each output row, then divided by its size.
fn avg_forward(x: &[f32], planes: &Planes, size: f32) -> Vec<f32> {
    let (input_len, output_len, width) = (planes.input_len(), planes.output_len(), planes.shape[3]);
    let mut out = vec![0.0; planes.shape[0] * planes.shape[1] * output_len];
    let stride = planes.stride;
    out.par_chunks_mut(output_len)
        .zip(x.par_chunks(input_len))
        .with_min_len(planes.per_task())
        .for_each(|(out, plane)| {
            for (out, &(top, bottom)) in out.chunks_exact_mut(planes.out_width).zip(&planes.rows) {
                for y in top..bottom {
                    let row = &plane[y * width..][..width];
                    for &((lo, hi), offset) in &planes.column_taps {
                        let first = ((lo * stride) as isize + offset) as usize;
                        let values = row[first..].iter().step_by(stride);
                        out[lo..hi]
                            .iter_mut()
                            .zip(values)
                            .for_each(|(o, v)| *o += v);
                    }
                }
                out.iter_mut().for_each(|o| *o /= size);
            }
        });
    out
}

/// The input's gradient: each output's gradient divided by the window's size, added to every
/// value of its window. Kernel columns run right to left, so that each input, which meets one
/// output per kernel column, gets its shares in output order, as Flex adds them.
fn avg_backward(d_out: &[f32], planes: &Planes, size: f32) -> Vec<f32> {
    let (input_len, output_len, width) = (planes.input_len(), planes.output_len(), planes.shape[3]);
    let mut d_x = vec![0.0; planes.shape[0] * planes.shape[1] * input_len];
    let stride = planes.stride;
    d_x.par_chunks_mut(input_len)
        .zip(d_out.par_chunks(output_len))
        .with_min_len(planes.per_task())
        .for_each_init(Vec::new, |shares, (d_x, d_out)| {
            let rows = d_out.chunks_exact(planes.out_width).zip(&planes.rows);
            for (d_out, &(top, bottom)) in rows {
                shares.clear();
                shares.extend(d_out.iter().map(|d| d / size));
                for y in top..bottom {
                    let row = &mut d_x[y * width..][..width];
                    for &((lo, hi), offset) in planes.column_taps.iter().rev() {
                        let first = ((lo * stride) as isize + offset) as usize;
                        let cells = row[first..].iter_mut().step_by(stride);
                        cells
                            .zip(&shares[lo..hi])
                            .for_each(|(d, share)| *d += share);
                    }
                }
            }
        });
    d_x
}

/// `x` pooled on Flex by `pool`, which writes the output from the input's values and sizes
/// and returns what a backward would keep: the output tensor, that, and the sizes.
fn pool_flex<K>(
    x: FlexTensor,
    window: &Window,
    pool: impl FnOnce(&[f32], &Planes) -> (Vec<f32>, K),
) -> (FlexTensor, K, Planes) {
    let x = contiguous(x);
    let planes = Planes::of(&x, window);
    let (out, kept) = pool(values(&x), &planes);
    (tensor(out, &planes.out_shape()), kept, planes)
}

/// `x` pooled as one autodiff op: forward by `pool`, backward by `op`, whose state is what
/// `pool` keeps beside the sizes.
fn pool_tracked<C, K, O>(
    op: O,
    x: FloatTensor<Autodiff<Flex, C>>,
    window: &Window,
    pool: impl FnOnce(&[f32], &Planes) -> (Vec<f32>, K),
) -> FloatTensor<Autodiff<Flex, C>>
where
    C: CheckpointStrategy,
    K: Clone + Send + std::fmt::Debug + 'static,
    O: Backward<Flex, 1, State = (K, Planes)>,
{
    let nodes = [x.node()];
    let (out, kept, planes) = pool_flex(x.into_primitive(), window, pool);
    match op.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((kept, planes), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

impl PoolOps for Flex {
    fn fast_max_pool2d(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        pool_flex(x, &window, forward).0
    }

    fn fast_avg_pool2d(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        let size = window.size();
        pool_flex(x, &window, |x, planes| (avg_forward(x, planes, size), ())).0
    }
}

/// Average pooling as one autodiff op.
#[derive(Debug)]
struct AvgPool;

impl Backward<Flex, 1> for AvgPool {
    /// The window's size, and the sizes.
    type State = (f32, Planes);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let d_out = contiguous(grads.consume::<Flex>(&ops.node));
        if let [Some(parent)] = &ops.parents {
            let (size, planes) = &ops.state;
            let d_x = avg_backward(values(&d_out), planes, *size);
            grads.register::<Flex>(parent.id, tensor(d_x, &planes.shape));
        }
    }
}

/// Max pooling as one autodiff op.
#[derive(Debug)]
struct MaxPool;

impl Backward<Flex, 1> for MaxPool {
    /// The maxima's indices and the sizes.
    type State = (Vec<u32>, Planes);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let d_out = contiguous(grads.consume::<Flex>(&ops.node));
        if let [Some(parent)] = &ops.parents {
            let (at, planes) = &ops.state;
            let d_x = backward(values(&d_out), at, planes);
            grads.register::<Flex>(parent.id, tensor(d_x, &planes.shape));
        }
    }
}

impl<C: CheckpointStrategy> PoolOps for Autodiff<Flex, C> {
    fn fast_max_pool2d(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        pool_tracked::<C, _, _>(MaxPool, x, &window, forward)
    }

    fn fast_avg_pool2d(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        let size = window.size();
        pool_tracked::<C, _, _>(AvgPool, x, &window, |x, planes| {
            (avg_forward(x, planes, size), size)
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};
    use proptest::prelude::*;

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
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let (ours, burns) = (crate::avg_pool2d(&layer, x.clone()), layer.forward(x.clone()));
            let [ours, burns] = pooled_bits(x, ours, burns);
            prop_assert_eq!(ours, burns);
        }
    }
}
