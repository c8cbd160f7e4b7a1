//! The convolution on Flex. The batch is cut into one run of images per thread; each thread
//! unfolds its images into its own column buffer (im2col, straight from NCHW: a row per input
//! channel and kernel position, a column per output position) and writes their output with
//! one gemm, `weight [out, in k k] @ columns [in k k, positions]`, on top of the bias. On
//! small maps a gemm takes several images, their columns side by side, so that it gets at
//! least `GEMM_COLUMNS` columns; their outputs are then moved to their own images. A 1x1
//! convolution with stride 1 and no padding, one image per gemm, needs no buffer: the image
//! is its own column matrix. The backward unfolds the images again rather than keeping the
//! columns (they can be many times the input's size): the weight's gradient accumulates
//! `d_out @ columns^T` per thread, summed over threads in a fixed order; the input's gradient
//! is `weight^T @ d_out` folded back onto the images (col2im), skipped when no gradient is
//! needed for the input (the images fed to the first layer).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use rayon::prelude::*;

use crate::conv::{inside, ConvOps, Geometry};
use crate::flex::{contiguous, tensor, values};
use crate::math::add;
use crate::matmul::{matmul_into, matmul_into_rows, Threads, View};

/// Columns a gemm gets at least, where a map has fewer positions. VGG16 trained as fast with
/// 64 as with 128 or 256 (alternating runs); 256 also groups ResNet-18's 14x14 maps, and
/// lowered its inference in an earlier try.
const GEMM_COLUMNS: usize = 64;

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    batch: usize,
    in_channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    kernel: [usize; 2],
    out_height: usize,
    out_width: usize,
    geometry: Geometry,
}

impl Sizes {
    fn of(x: &FlexTensor, weight: &FlexTensor, geometry: Geometry) -> Self {
        let [batch, in_channels, height, width] = dims(x);
        let [out_channels, weight_in, kernel_height, kernel_width] = dims(weight);
        assert_eq!(
            in_channels, weight_in,
            "conv2d: input channels differ from the weight's"
        );
        // The input rows (columns) a kernel spans, and the padded input's.
        let reach = |axis: usize, kernel: usize| geometry.dilation[axis] * (kernel - 1) + 1;
        let padded = |axis: usize, side: usize| side + 2 * geometry.padding[axis];
        let out_side = |axis: usize, side: usize, kernel: usize| {
            padded(axis, side).saturating_sub(reach(axis, kernel)) / geometry.stride[axis] + 1
        };
        let fits = |axis, side, kernel| padded(axis, side) >= reach(axis, kernel);
        assert!(
            fits(0, height, kernel_height) && fits(1, width, kernel_width),
            "conv2d: a {kernel_height}x{kernel_width} kernel does not fit a {height}x{width} input"
        );
        Self {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel: [kernel_height, kernel_width],
            out_height: out_side(0, height, kernel_height),
            out_width: out_side(1, width, kernel_width),
            geometry,
        }
    }

    /// Rows of the column matrix (and columns of the weight matrix): in k k.
    fn taps(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Output positions of one image: the columns of the column matrix.
    fn positions(&self) -> usize {
        self.out_height * self.out_width
    }

    fn image_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    fn out_image_len(&self) -> usize {
        self.out_channels * self.positions()
    }

    /// Whether each image is its own column matrix (1x1 kernel, stride 1, no padding).
    fn pointwise(&self) -> bool {
        let g = self.geometry;
        self.kernel == [1, 1] && g.stride == [1, 1] && g.padding == [0, 0]
    }

    /// Images per thread: the batch in one run per thread.
    fn images_per_run(&self) -> usize {
        self.batch.div_ceil(rayon::current_num_threads()).max(1)
    }

    /// Images whose columns sit side by side in one gemm: on small maps, enough of them for
    /// `GEMM_COLUMNS` columns (a 2x2 map's 4 columns alone fill a quarter of gemm's vectors).
    fn images_per_gemm(&self) -> usize {
        GEMM_COLUMNS
            .div_ceil(self.positions())
            .clamp(1, self.images_per_run())
    }

    /// Whether each image is its own column matrix: pointwise, one image per gemm.
    fn image_is_columns(&self) -> bool {
        self.pointwise() && self.images_per_gemm() == 1
    }

    /// Columns of the column buffer: `images_per_gemm` images' positions side by side.
    fn group_columns(&self) -> usize {
        self.images_per_gemm() * self.positions()
    }

    /// The column buffer's length: `[in k k, group columns]`, or nothing when the image is
    /// its own column matrix.
    fn columns_len(&self) -> usize {
        if self.image_is_columns() {
            0
        } else {
            self.taps() * self.group_columns()
        }
    }

    /// The length of a group's outputs side by side, `[out, group columns]`, kept apart from
    /// the images' own when a gemm takes several images; else nothing.
    fn products_len(&self) -> usize {
        if self.images_per_gemm() > 1 {
            self.out_channels * self.group_columns()
        } else {
            0
        }
    }

    /// The weight as a `[out, in k k]` matrix.
    fn weight_matrix<'a>(&self, weight: &'a [f32]) -> View<'a> {
        View::rows(weight, self.out_channels, self.taps(), self.taps())
    }

    /// An image's `[channels, positions]` output (or its gradient) as a matrix.
    fn out_matrix<'a>(&self, out: &'a [f32]) -> View<'a> {
        View::rows(out, self.out_channels, self.positions(), self.positions())
    }
}

fn dims(t: &FlexTensor) -> [usize; 4] {
    let shape = t.layout().shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

/// Where one row of the column matrix (input channel `channel`, one kernel position) reads
/// the image: output rows `rows` and columns `columns` land inside it, at input row
/// `out_row * stride + y_offset` and column `o * stride + x_offset`; all else is padding.
#[derive(Debug, Clone, Copy)]
struct Tap {
    row: usize,
    channel: usize,
    rows: (usize, usize),
    columns: (usize, usize),
    y_offset: isize,
    x_offset: isize,
}

impl Tap {
    /// Whether this kernel position only ever meets padding.
    fn is_padding(&self) -> bool {
        self.rows.0 == self.rows.1 || self.columns.0 == self.columns.1
    }

    /// The index in the channel's `[height, width]` plane of output `(out_row, columns.0)`.
    fn first_input(&self, out_row: usize, s: &Sizes) -> usize {
        let [stride_y, stride_x] = s.geometry.stride;
        let y = (out_row * stride_y) as isize + self.y_offset;
        let x = (self.columns.0 * stride_x) as isize + self.x_offset;
        (y * s.width as isize + x) as usize
    }

    /// With stride 1 and as many output columns as input columns, output position `j` of the
    /// row reads input `j + shift`: the whole row is one run, but for the padding columns.
    fn shift(&self, s: &Sizes) -> Option<isize> {
        let one_run = s.geometry.stride == [1, 1] && s.width == s.out_width;
        one_run.then(|| self.y_offset * s.width as isize + self.x_offset)
    }
}

/// Calls `f` for every row of the column matrix.
fn for_each_tap(s: &Sizes, mut f: impl FnMut(Tap)) {
    let g = s.geometry;
    let [kernel_height, kernel_width] = s.kernel;
    for channel in 0..s.in_channels {
        for ky in 0..kernel_height {
            let y_offset = (ky * g.dilation[0]) as isize - g.padding[0] as isize;
            let rows = inside(y_offset, g.stride[0], s.height, s.out_height);
            for kx in 0..kernel_width {
                let x_offset = (kx * g.dilation[1]) as isize - g.padding[1] as isize;
                let columns = inside(x_offset, g.stride[1], s.width, s.out_width);
                f(Tap {
                    row: (channel * kernel_height + ky) * kernel_width + kx,
                    channel,
                    rows,
                    columns,
                    y_offset,
                    x_offset,
                });
            }
        }
    }
}

/// The padding positions inside a one-run tap's span (`Tap::shift`): the columns left of and
/// right of `columns` in each output row but the first's left and the last's right.
fn padding_between(tap: &Tap, s: &Sizes) -> impl Iterator<Item = std::ops::Range<usize>> {
    let (first, last) = tap.rows;
    let (lo, hi) = tap.columns;
    let width = s.out_width;
    (first..last - 1).map(move |r| r * width + hi..(r + 1) * width + lo)
}

/// Unfolds one `[in, height, width]` image into `columns`, `[in k k, positions]` with rows
/// `row_stride` apart. The padding positions of `columns` must hold zeros, and are left as
/// they are: `columns` is a zeroed buffer that only `im2col` writes, for images of the same
/// sizes at the same places.
fn im2col(image: &[f32], columns: &mut [f32], row_stride: usize, s: &Sizes) {
    let (positions, stride, plane) = (s.positions(), s.geometry.stride[1], s.height * s.width);
    for_each_tap(s, |tap| {
        if tap.is_padding() {
            return;
        }
        let row = &mut columns[tap.row * row_stride..][..positions];
        let plane = &image[tap.channel * plane..][..plane];
        let (lo, hi) = tap.columns;
        let width = s.out_width;
        if let Some(shift) = tap.shift(s) {
            // One copy of the run, then the padding inside it back to zero.
            let run = tap.rows.0 * width + lo..(tap.rows.1 - 1) * width + hi;
            let from = (run.start as isize + shift) as usize;
            row[run.clone()].copy_from_slice(&plane[from..][..run.len()]);
            for padding in padding_between(&tap, s) {
                row[padding].fill(0.0);
            }
            return;
        }
        for out_row in tap.rows.0..tap.rows.1 {
            let out = &mut row[out_row * width..][lo..hi];
            let first = tap.first_input(out_row, s);
            // Zipped slices: no bounds checks, and vectorized when the stride is 1.
            if stride == 1 {
                copy_short(out, &plane[first..][..out.len()]);
            } else {
                for (out, value) in out.iter_mut().zip(plane[first..].iter().step_by(stride)) {
                    *out = *value;
                }
            }
        }
    });
}

/// `to = from`, inlined: im2col's rows are a few dozen values, and a call to memcpy for each
/// cost more than the copies (10 % of LeNet-5's training). Blocks of 8 (the last one
/// overlapping the one before), then of 4; under 4 values, memcpy.
#[inline(always)]
fn copy_short(to: &mut [f32], from: &[f32]) {
    #[inline(always)]
    fn block<const N: usize>(to: &mut [f32], from: &[f32], start: usize) {
        to[start..start + N].copy_from_slice(&from[start..start + N]);
    }
    let (n, from) = (to.len(), &from[..to.len()]);
    match n {
        8.. => {
            for start in (0..n - 8).step_by(8) {
                block::<8>(to, from, start);
            }
            block::<8>(to, from, n - 8);
        }
        4..8 => {
            block::<4>(to, from, 0);
            block::<4>(to, from, n - 4);
        }
        _ => to.copy_from_slice(from),
    }
}

/// Folds `columns`, `[in k k, positions]` with rows `row_stride` apart, back onto one image's
/// gradient (adding where kernel positions overlap): the transpose of `im2col`. The padding
/// positions of `columns` (gradients of the padding, which no one needs) are overwritten
/// with zeros.
fn col2im(columns: &mut [f32], image: &mut [f32], row_stride: usize, s: &Sizes) {
    let (positions, stride, plane) = (s.positions(), s.geometry.stride[1], s.height * s.width);
    for_each_tap(s, |tap| {
        if tap.is_padding() {
            return;
        }
        let row = &mut columns[tap.row * row_stride..][..positions];
        let plane = &mut image[tap.channel * plane..][..plane];
        let (lo, hi) = tap.columns;
        if let Some(shift) = tap.shift(s) {
            // Zeros where the run crosses padding, then one pass adds the whole run (adding
            // zero leaves a value as it is).
            for padding in padding_between(&tap, s) {
                row[padding].fill(0.0);
            }
            let run = tap.rows.0 * s.out_width + lo..(tap.rows.1 - 1) * s.out_width + hi;
            let from = (run.start as isize + shift) as usize;
            add(&mut plane[from..][..run.len()], &row[run]);
            return;
        }
        for out_row in tap.rows.0..tap.rows.1 {
            let column = &row[out_row * s.out_width..][lo..hi];
            let first = tap.first_input(out_row, s);
            if stride == 1 {
                add(&mut plane[first..][..column.len()], column);
                continue;
            }
            for (input, value) in plane[first..].iter_mut().step_by(stride).zip(column) {
                *input += value;
            }
        }
    });
}

/// The forward: `[batch, out, positions]` from contiguous `x`, `weight` and `bias`.
fn forward(x: &[f32], weight: &[f32], bias: &[f32], s: &Sizes) -> Vec<f32> {
    let (image_len, out_len, per_run) = (s.image_len(), s.out_image_len(), s.images_per_run());
    let (per_gemm, positions) = (s.images_per_gemm(), s.positions());
    let mut out = vec![0.0; s.batch * out_len];
    out.par_chunks_mut(per_run * out_len)
        .zip(x.par_chunks(per_run * image_len))
        .for_each(|(out, x)| {
            let mut columns = vec![0.0; s.columns_len()];
            let mut products = vec![0.0; s.products_len()];
            for (out, images) in out
                .chunks_mut(per_gemm * out_len)
                .zip(x.chunks(per_gemm * image_len))
            {
                let columns = unfold(images, &mut columns, s);
                // One image's output is written in place; a group's goes through `products`.
                let (target, row_stride) = if per_gemm == 1 {
                    (&mut *out, positions)
                } else {
                    (&mut products[..], s.group_columns())
                };
                for (row, b) in target.chunks_mut(row_stride).zip(bias) {
                    row[..columns.cols].fill(*b);
                }
                let weight = s.weight_matrix(weight);
                matmul_into_rows(target, row_stride, weight, columns, true, Threads::One);
                if per_gemm > 1 {
                    for (i, out) in out.chunks_exact_mut(out_len).enumerate() {
                        from_group(&products, i, out, s);
                    }
                }
            }
        });
    out
}

/// Copies image `i`'s `[out, positions]` matrix out of a group's, `[out, group columns]`.
fn from_group(group: &[f32], i: usize, image: &mut [f32], s: &Sizes) {
    let positions = s.positions();
    for (row, group_row) in image
        .chunks_exact_mut(positions)
        .zip(group.chunks_exact(s.group_columns()))
    {
        row.copy_from_slice(&group_row[i * positions..][..positions]);
    }
}

/// Copies image `i`'s `[out, positions]` matrix into its place in a group's.
fn into_group(image: &[f32], group: &mut [f32], i: usize, s: &Sizes) {
    let positions = s.positions();
    for (row, group_row) in image
        .chunks_exact(positions)
        .zip(group.chunks_exact_mut(s.group_columns()))
    {
        group_row[i * positions..][..positions].copy_from_slice(row);
    }
}

/// A group of images' column matrix, `[in k k, images positions]`: the image itself when it
/// is its own column matrix, else `buffer` filled by im2col, each image's columns beside the
/// previous one's.
fn unfold<'a>(images: &'a [f32], buffer: &'a mut [f32], s: &Sizes) -> View<'a> {
    let (taps, positions) = (s.taps(), s.positions());
    if s.image_is_columns() {
        return View::rows(images, taps, positions, positions);
    }
    let row_stride = s.group_columns();
    let count = images.len() / s.image_len();
    for (i, image) in images.chunks_exact(s.image_len()).enumerate() {
        im2col(image, &mut buffer[i * positions..], row_stride, s);
    }
    View::rows(buffer, taps, count * positions, row_stride)
}

/// One run of images' share of the weight's and the bias's gradients.
struct Partial {
    d_weight: Vec<f32>,
    d_bias: Vec<f32>,
}

/// The backward from `d_out`, `[batch, out, positions]`: the gradients of x (when `d_x_needed`),
/// of the weight and of the bias.
fn backward(
    x: &[f32],
    weight: &[f32],
    d_out: &[f32],
    s: &Sizes,
    d_x_needed: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (image_len, out_len, per_run) = (s.image_len(), s.out_image_len(), s.images_per_run());
    let (taps, positions, per_gemm) = (s.taps(), s.positions(), s.images_per_gemm());
    let group_columns = s.group_columns();
    let mut d_x = vec![0.0; if d_x_needed { s.batch * image_len } else { 0 }];
    // Without d_x, each run gets an empty slice of it.
    let d_x_runs: Vec<&mut [f32]> = if d_x_needed {
        d_x.chunks_mut(per_run * image_len).collect()
    } else {
        (0..s.batch.div_ceil(per_run))
            .map(|_| &mut [][..])
            .collect()
    };
    let weight_t = View::transposed(weight, s.out_channels, taps);
    let partials: Vec<Partial> = d_x_runs
        .into_par_iter()
        .zip(x.par_chunks(per_run * image_len))
        .zip(d_out.par_chunks(per_run * out_len))
        .map(|((d_x, x), d_out)| {
            let mut partial = Partial {
                d_weight: vec![0.0; s.out_channels * taps],
                d_bias: vec![0.0; s.out_channels],
            };
            let (mut columns, mut d_columns) =
                (vec![0.0; s.columns_len()], vec![0.0; s.columns_len()]);
            let mut d_products = vec![0.0; s.products_len()];
            for (g, (images, d_out)) in x
                .chunks(per_gemm * image_len)
                .zip(d_out.chunks(per_gemm * out_len))
                .enumerate()
            {
                for d_out in d_out.chunks_exact(out_len) {
                    for (sum, row) in partial.d_bias.iter_mut().zip(d_out.chunks_exact(positions)) {
                        *sum += row.iter().sum::<f32>();
                    }
                }
                let count = images.len() / image_len;
                let d_out = if per_gemm == 1 {
                    s.out_matrix(d_out)
                } else {
                    // The group's output gradients side by side, as its columns are.
                    for (i, d_out) in d_out.chunks_exact(out_len).enumerate() {
                        into_group(d_out, &mut d_products, i, s);
                    }
                    View::rows(
                        &d_products,
                        s.out_channels,
                        count * positions,
                        group_columns,
                    )
                };
                let columns = unfold(images, &mut columns, s);
                matmul_into(&mut partial.d_weight, d_out, columns.t(), true);
                if d_x_needed {
                    let d_images = &mut d_x[g * per_gemm * image_len..][..count * image_len];
                    if s.image_is_columns() {
                        matmul_into(d_images, weight_t, d_out, false);
                        continue;
                    }
                    matmul_into_rows(
                        &mut d_columns,
                        group_columns,
                        weight_t,
                        d_out,
                        false,
                        Threads::One,
                    );
                    for (i, d_image) in d_images.chunks_exact_mut(image_len).enumerate() {
                        col2im(&mut d_columns[i * positions..], d_image, group_columns, s);
                    }
                }
            }
            partial
        })
        .collect();
    let mut d_weight = vec![0.0; s.out_channels * taps];
    let mut d_bias = vec![0.0; s.out_channels];
    for partial in &partials {
        add(&mut d_weight, &partial.d_weight);
        add(&mut d_bias, &partial.d_bias);
    }
    (d_x_needed.then_some(d_x), d_weight, d_bias)
}

/// The forward on Flex tensors.
fn forward_tensor(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor, s: &Sizes) -> FlexTensor {
    let out = forward(values(x), values(weight), values(bias), s);
    tensor(out, &[s.batch, s.out_channels, s.out_height, s.out_width])
}

impl ConvOps for Flex {
    fn fast_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        let [x, weight, bias] = [x, weight, bias].map(contiguous);
        let sizes = Sizes::of(&x, &weight, geometry);
        forward_tensor(&x, &weight, &bias, &sizes)
    }
}

/// The convolution as one autodiff op.
#[derive(Debug)]
struct Convolution;

/// What the backward needs: the input, the weight (contiguous) and the sizes.
#[derive(Debug, Clone)]
struct Saved {
    x: FlexTensor,
    weight: FlexTensor,
    sizes: Sizes,
}

impl Backward<Flex, 3> for Convolution {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let d_out = contiguous(grads.consume::<Flex>(&ops.node));
        let Saved { x, weight, sizes } = &ops.state;
        let [x_node, weight_node, bias_node] = &ops.parents;
        let (d_x, d_weight, d_bias) = backward(
            values(x),
            values(weight),
            values(&d_out),
            sizes,
            x_node.is_some(),
        );
        if let (Some(node), Some(d_x)) = (x_node, d_x) {
            grads.register::<Flex>(node.id, tensor(d_x, x.layout().shape()));
        }
        if let Some(node) = weight_node {
            grads.register::<Flex>(node.id, tensor(d_weight, weight.layout().shape()));
        }
        if let Some(node) = bias_node {
            grads.register::<Flex>(node.id, tensor(d_bias, &[sizes.out_channels]));
        }
    }
}

impl<C: CheckpointStrategy> ConvOps for Autodiff<Flex, C> {
    fn fast_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), weight.node(), bias.node()];
        let [x, weight, bias] = [x, weight, bias].map(|input| contiguous(input.into_primitive()));
        let sizes = Sizes::of(&x, &weight, geometry);
        let out = forward_tensor(&x, &weight, &bias, &sizes);
        match Convolution.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(Saved { x, weight, sizes }, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}
