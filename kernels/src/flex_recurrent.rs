//! The LSTM and GRU layers on Flex as single ops. Batch rows run in blocks, each block on one
//! of rayon's threads. The weights are transposed once per call, into the layout gemm reads
//! without packing it again at every step. Per step and block, the LSTM makes one small
//! matmul, `[x_t | h_{t-1} | 1]` by the stacked `[W_ih | W_hh | bias]^T`, written straight
//! into the kept gates in training (the GRU makes two, its input's and its hidden state's parts
//! kept apart), then one vectorized pass per row applies the gate activations and updates the
//! state. No `[batch, steps, gates]` projection is ever written out but, in training, the kept
//! gate activations. The backward runs the steps in reverse from them, one matmul per step for
//! the hidden state's gradient, then the weights' and biases' gradients in parallel shares of
//! a fixed number of batch rows and, where the input is tracked, the input's, instead of the
//! ~30 autodiff nodes per step of Burn's cells.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use rayon::prelude::*;

use crate::flex::{contiguous, tensor, values};
use crate::math::{add, sigmoid, sigmoid_in_place, simd_fn, tanh, tanh_in_place};
use crate::matmul::{matmul_into, matmul_into_rows, Threads, View};
use crate::recurrent::RecurrentOps;
use crate::transpose::transpose;

/// A layer's inputs, in the order of the ops' arguments: `x` `[batch, steps, input]`, then
/// the weights in PyTorch's layout, `weight_ih` `[gates, input]` and `weight_hh`
/// `[gates, hidden]`, then the LSTM's summed bias `[4 hidden]`, h0, c0 or the GRU's
/// `bias_ih`, `bias_hh` `[3 hidden]`, h0. All contiguous.
type Inputs = [FlexTensor; 6];

/// The gradients of a layer's inputs, in their order; `None` where none is needed.
type Grads = [Option<FlexTensor>; 6];

/// The sizes of a layer: batch rows, steps, input width, hidden width.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    batch: usize,
    steps: usize,
    input: usize,
    hidden: usize,
}

impl Sizes {
    fn of(x: &FlexTensor, weight_hh: &FlexTensor) -> Self {
        let shape = x.layout().shape();
        Self {
            batch: shape[0],
            steps: shape[1],
            input: shape[2],
            hidden: weight_hh.layout().shape()[1],
        }
    }
}

/// Step `t`'s rows of a batch-major `[rows, steps, width]` buffer: `rows` rows of `width`.
fn step_rows(values: &[f32], t: usize, steps: usize, width: usize) -> View<'_> {
    let rows = values.len() / (steps * width);
    View::rows(&values[t * width..], rows, width, steps * width)
}

/// The transpose of a row-major `[rows, cols]` matrix, row-major `[cols, rows]`: a weight in
/// the layout gemm reads without packing it again at every step.
fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    transpose(values, cols, rows, cols, &mut out, rows);
    out
}

/// Every `width`-wide row of `buffer` set to `row`.
fn fill_rows(buffer: &mut [f32], row: &[f32]) {
    for chunk in buffer.chunks_exact_mut(row.len()) {
        chunk.copy_from_slice(row);
    }
}

/// Adds the column sums of a row-major `[rows, width]` buffer to `sums`: a bias's gradient.
fn add_column_sums(sums: &mut [f32], values: &[f32]) {
    for row in values.chunks_exact(sums.len()) {
        add(sums, row);
    }
}

/// Batch rows per share of the weights' gradients. A fixed size, not one share per thread: the
/// shares, and the order they are summed in, hence the bits, do not depend on the thread count.
const ROWS_PER_SHARE: usize = 32;

/// The gradients of a layer's weights and biases, summed over a sequence.
struct SequenceGrads {
    /// The input's gradient, `[batch, steps, input]`, where it was asked for.
    d_x: Option<FlexTensor>,
    d_weight_ih: FlexTensor,
    d_weight_hh: FlexTensor,
    /// The column sums of the gates' input part; the hidden part's, where it has its own.
    d_bias_ih: FlexTensor,
    d_bias_hh: Option<FlexTensor>,
}

/// The gradients of the input (when `d_x_needed`: not for the images fed to the first layer)
/// and of the weights and biases from the gates' pre-activation gradients `[batch * steps,
/// gates]`, `d_input_part` and, where it differs (the GRU's), `d_hidden_part`:
/// `d_x = d_input_part @ weight_ih`, `d_weight_ih = d_input_part^T @ x`, `d_weight_hh =
/// d_hidden_part^T @ previous` and their column sums, where `previous` holds every step's
/// input state: `h0` at step 0, the output before it after (`state_of(b, t)`: step t's output
/// state of row b). The weights' shares of `ROWS_PER_SHARE` batch rows each run in parallel,
/// one thread a share, then are summed in order.
#[allow(clippy::too_many_arguments)]
fn sequence_grads<'a, 'd>(
    x: &[f32],
    weight_ih: &[f32],
    d_input_part: &'d [f32],
    d_hidden_part: Option<&'d [f32]>,
    h0: &'a [f32],
    state_of: impl Fn(usize, usize) -> &'a [f32] + Sync,
    Sizes {
        batch,
        steps,
        input,
        hidden,
    }: Sizes,
    d_x_needed: bool,
) -> SequenceGrads {
    let rows = batch * steps;
    let width = d_input_part.len() / rows;
    let d_x = d_x_needed.then(|| {
        let mut d_x = vec![0.0; rows * input];
        let lhs = View::rows(d_input_part, rows, width, width);
        let rhs = View::rows(weight_ih, width, input, input);
        matmul_into_rows(&mut d_x, input, lhs, rhs, false, Threads::All);
        tensor(d_x, &[batch, steps, input])
    });
    // One share, flat: [d_weight_ih | d_weight_hh | d_bias_ih | d_bias_hh, if its own].
    let (ih, hh) = (width * input, width * hidden);
    let share_len = ih + hh + width * if d_hidden_part.is_some() { 2 } else { 1 };
    let share = |first: usize| {
        let n = ROWS_PER_SHARE.min(batch - first);
        let (begin, len) = (first * steps, n * steps);
        let part = |d: &'d [f32]| -> &'d [f32] { &d[begin * width..][..len * width] };
        let d_in = part(d_input_part);
        let d_hid = d_hidden_part.map_or(d_in, part);
        let mut previous = Vec::with_capacity(len * hidden);
        for b in first..first + n {
            previous.extend_from_slice(&h0[b * hidden..][..hidden]);
            for t in 1..steps {
                previous.extend_from_slice(state_of(b, t - 1));
            }
        }
        let mut out = vec![0.0; share_len];
        let (d_weight_ih, rest) = out.split_at_mut(ih);
        let (d_weight_hh, biases) = rest.split_at_mut(hh);
        let x = View::rows(&x[begin * input..], len, input, input);
        matmul_into(d_weight_ih, View::transposed(d_in, len, width), x, false);
        let previous = View::rows(&previous, len, hidden, hidden);
        matmul_into(
            d_weight_hh,
            View::transposed(d_hid, len, width),
            previous,
            false,
        );
        let (d_bias_ih, d_bias_hh) = biases.split_at_mut(width);
        add_column_sums(d_bias_ih, d_in);
        if d_hidden_part.is_some() {
            add_column_sums(d_bias_hh, d_hid);
        }
        out
    };
    let shares: Vec<Vec<f32>> = (0..batch)
        .into_par_iter()
        .step_by(ROWS_PER_SHARE)
        .map(share)
        .collect();
    let mut sum = vec![0.0; share_len];
    for share in &shares {
        add(&mut sum, share);
    }
    SequenceGrads {
        d_x,
        d_weight_ih: tensor(sum[..ih].to_vec(), &[width, input]),
        d_weight_hh: tensor(sum[ih..ih + hh].to_vec(), &[width, hidden]),
        d_bias_ih: tensor(sum[ih + hh..][..width].to_vec(), &[width]),
        d_bias_hh: d_hidden_part.map(|_| tensor(sum[ih + hh + width..].to_vec(), &[width])),
    }
}

/// Rows `first..first + n` of a batch.
#[derive(Debug, Clone, Copy)]
struct Rows {
    first: usize,
    n: usize,
}

impl Rows {
    /// These rows of a batch-major buffer of `per_row` values a row.
    fn of(self, values: &[f32], per_row: usize) -> &[f32] {
        &values[self.first * per_row..][..self.n * per_row]
    }
}

/// Runs `f` on blocks of the batch's rows in parallel, with each of `buffers` (batch-major,
/// `per_row` values a row; an empty one stays empty) cut to the block's rows. Batch rows never
/// meet in a recurrence: each of rayon's threads runs every step for its own blocks (their small
/// matmuls included), with no hand-off per step. Blocks of at most 128 rows keep a block's
/// states in cache and its matmuls below gemm's own threading.
fn in_row_blocks<const N: usize>(
    batch: usize,
    buffers: [(&mut [f32], usize); N],
    f: impl Fn(Rows, [&mut [f32]; N]) + Sync,
) {
    let rows = batch.div_ceil(rayon::current_num_threads()).clamp(1, 128);
    let blocks = batch.div_ceil(rows);
    let mut parts = buffers.map(|(buffer, per_row)| {
        match buffer.is_empty() {
            true => Vec::new(),
            false => buffer.chunks_mut(rows * per_row).collect(),
        }
        .into_iter()
    });
    let work: Vec<_> = (0..blocks)
        .map(|k| {
            let block = Rows {
                first: k * rows,
                n: rows.min(batch - k * rows),
            };
            (
                block,
                parts.each_mut().map(|p| p.next().unwrap_or_default()),
            )
        })
        .collect();
    work.into_par_iter()
        .for_each(|(block, parts)| f(block, parts));
}

/// The LSTM forward: `[batch, steps, 2 hidden]` (h_t, c_t) and, when `keep_gates`, the
/// activated gates `[batch, steps, 4 hidden]` (i, f, g, o) for the backward.
fn lstm_forward(inputs: &Inputs, keep_gates: bool) -> (FlexTensor, Option<FlexTensor>) {
    let [x, weight_ih, weight_hh, bias, h0, c0] = inputs;
    let sizes = Sizes::of(x, weight_hh);
    let Sizes {
        batch,
        steps,
        input,
        hidden,
    } = sizes;
    let width = 4 * hidden;
    let (x, h0, c0) = (values(x), values(h0), values(c0));
    // [W_ih | W_hh | bias]^T, row-major [input + hidden + 1, 4 hidden]: one matmul a step for
    // both parts and the bias.
    let mut stacked = transposed(values(weight_ih), width, input);
    stacked.extend(transposed(values(weight_hh), width, hidden));
    stacked.extend_from_slice(values(bias));
    let mut out = vec![0.0; batch * steps * 2 * hidden];
    let mut kept = vec![0.0; if keep_gates { batch * steps * width } else { 0 }];
    let buffers = [
        (&mut out[..], steps * 2 * hidden),
        (&mut kept[..], steps * width),
    ];
    in_row_blocks(batch, buffers, |rows, [out, kept]| {
        let (x, h0, c0) = (
            rows.of(x, steps * input),
            rows.of(h0, hidden),
            rows.of(c0, hidden),
        );
        lstm_forward_block(x, &stacked, h0, c0, sizes, out, kept);
    });
    let out = tensor(out, &[batch, steps, 2 * hidden]);
    (
        out,
        keep_gates.then(|| tensor(kept, &[batch, steps, width])),
    )
}

/// `lstm_forward` for one block of rows (`sizes.batch` is the whole batch's; the block's is
/// h0's), `stacked` the transposed weights and the bias one above the other; `kept` is empty
/// when the gates are not kept.
fn lstm_forward_block(
    x: &[f32],
    stacked: &[f32],
    h0: &[f32],
    c0: &[f32],
    Sizes {
        steps,
        input,
        hidden,
        ..
    }: Sizes,
    out: &mut [f32],
    kept: &mut [f32],
) {
    let (width, batch, joint) = (4 * hidden, h0.len() / hidden, input + hidden + 1);
    // A step's gates: rows of the kept gates in training (written there once, not copied),
    // else one reused buffer.
    let mut buffer = vec![0.0; if kept.is_empty() { batch * width } else { 0 }];
    // The buffer, the distance between a step's rows in it, and how far on each step starts.
    let (gates, row_stride, step_offset) = match kept.is_empty() {
        true => (&mut buffer[..], width, 0),
        false => (kept, steps * width, width),
    };
    // Each row's [x_t | h_{t-1} | 1], the left side of the step's one matmul.
    let mut xh = vec![1.0; batch * joint];
    for (row, h) in xh.chunks_exact_mut(joint).zip(h0.chunks_exact(hidden)) {
        row[input..input + hidden].copy_from_slice(h);
    }
    for t in 0..steps {
        let first = t * step_offset;
        for (b, row) in xh.chunks_exact_mut(joint).enumerate() {
            row[..input].copy_from_slice(&x[(b * steps + t) * input..][..input]);
        }
        // gates = [x_t | h_{t-1} | 1] [W_ih | W_hh | bias]^T, all rows of the block at once.
        matmul_into_rows(
            &mut gates[first..],
            row_stride,
            View::rows(&xh, batch, joint, joint),
            View::rows(stacked, joint, width, width),
            false,
            Threads::One,
        );
        for b in 0..batch {
            let row = b * steps + t;
            let gate = &mut gates[first + b * row_stride..][..width];
            let (before, from_row) = out.split_at_mut(row * 2 * hidden);
            let c_prev = match t {
                0 => &c0[b * hidden..][..hidden],
                _ => &before[(row - 1) * 2 * hidden + hidden..][..hidden],
            };
            let (h, c) = from_row[..2 * hidden].split_at_mut(hidden);
            let h_next = &mut xh[b * joint + input..][..hidden];
            lstm_cell(gate, c_prev, c, h, h_next);
        }
    }
}

simd_fn! {
    /// One row's step of the LSTM cell from its pre-activation gates `[i | f | g | o]`: the
    /// gates activated in place (the backward reads them), `c = f c_prev + i g` and
    /// `h = o tanh(c)`, `h` written twice (the output and the next step's input). One pass over
    /// the row, so that its five activations vectorize together.
    fn lstm_cell(gate: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32], h_next: &mut [f32]) {
        let hidden = c.len();
        let (i, rest) = gate.split_at_mut(hidden);
        let (f, rest) = rest.split_at_mut(hidden);
        let (g, o) = rest.split_at_mut(hidden);
        let (o, c_prev) = (&mut o[..hidden], &c_prev[..hidden]);
        let (h, h_next) = (&mut h[..hidden], &mut h_next[..hidden]);
        for k in 0..hidden {
            let (i_k, f_k, g_k, o_k) = (sigmoid(i[k]), sigmoid(f[k]), tanh(g[k]), sigmoid(o[k]));
            (i[k], f[k], g[k], o[k]) = (i_k, f_k, g_k, o_k);
            c[k] = f_k * c_prev[k] + i_k * g_k;
            h[k] = o_k * tanh(c[k]);
            h_next[k] = h[k];
        }
    }
}

simd_fn! {
    /// One row's step of the LSTM backward: from the gradients reaching h_t and c_t (the
    /// output's `grad_h`, `grad_c`, and the next step's `d_h`, `d_c`; `d_c` is replaced by
    /// c_{t-1}'s), the activated gates `[i | f | g | o]`, c_t and c_{t-1}, the gates'
    /// pre-activation gradients `d_gate`. tanh(c_t) is worked out again here rather than kept.
    #[allow(clippy::too_many_arguments)]
    fn lstm_cell_backward(
        grad_h: &[f32],
        grad_c: &[f32],
        d_h: &[f32],
        d_c: &mut [f32],
        gate: &[f32],
        c: &[f32],
        c_prev: &[f32],
        d_gate: &mut [f32],
    ) {
        let hidden = c.len();
        let (i, f) = (&gate[..hidden], &gate[hidden..2 * hidden]);
        let (g, o) = (&gate[2 * hidden..3 * hidden], &gate[3 * hidden..4 * hidden]);
        let (grad_h, grad_c, d_h) = (&grad_h[..hidden], &grad_c[..hidden], &d_h[..hidden]);
        let (d_c, c_prev) = (&mut d_c[..hidden], &c_prev[..hidden]);
        let (di, rest) = d_gate.split_at_mut(hidden);
        let (df, rest) = rest.split_at_mut(hidden);
        let (dg, d_o) = rest.split_at_mut(hidden);
        let d_o = &mut d_o[..hidden];
        for k in 0..hidden {
            let tanh_c = tanh(c[k]);
            let dh = grad_h[k] + d_h[k];
            let dc = grad_c[k] + d_c[k] + dh * o[k] * (1.0 - tanh_c * tanh_c);
            d_o[k] = dh * tanh_c * o[k] * (1.0 - o[k]);
            di[k] = dc * g[k] * i[k] * (1.0 - i[k]);
            df[k] = dc * c_prev[k] * f[k] * (1.0 - f[k]);
            dg[k] = dc * i[k] * (1.0 - g[k] * g[k]);
            d_c[k] = dc * f[k];
        }
    }
}

/// What a backward reads: the forward's inputs, its output and its kept gates.
#[derive(Debug, Clone)]
struct Saved {
    inputs: Inputs,
    out: FlexTensor,
    gates: FlexTensor,
}

/// The LSTM backward: the gradients of the inputs, in their order (the input's only when
/// `d_x_needed`).
fn lstm_backward(saved: &Saved, grad: FlexTensor, d_x_needed: bool) -> Grads {
    let [x, weight_ih, weight_hh, _, h0, c0] = &saved.inputs;
    let sizes = Sizes::of(x, weight_hh);
    let Sizes {
        batch,
        steps,
        hidden,
        ..
    } = sizes;
    let width = 4 * hidden;
    let grad = contiguous(grad);
    let (grad, out, gates) = (values(&grad), values(&saved.out), values(&saved.gates));
    let (h0, c0, weight_hh_values) = (values(h0), values(c0), values(weight_hh));
    let mut d_gates = vec![0.0; batch * steps * width];
    let (mut dh0, mut dc0) = (vec![0.0; batch * hidden], vec![0.0; batch * hidden]);
    let buffers = [
        (&mut d_gates[..], steps * width),
        (&mut dh0[..], hidden),
        (&mut dc0[..], hidden),
    ];
    in_row_blocks(batch, buffers, |rows, [d_gates, dh, dc]| {
        let (grad, out) = (
            rows.of(grad, steps * 2 * hidden),
            rows.of(out, steps * 2 * hidden),
        );
        let (gates, c0) = (rows.of(gates, steps * width), rows.of(c0, hidden));
        lstm_backward_block(
            grad,
            out,
            gates,
            c0,
            weight_hh_values,
            hidden,
            d_gates,
            dh,
            dc,
        );
    });
    let grads = sequence_grads(
        values(x),
        values(weight_ih),
        &d_gates,
        None,
        h0,
        |b, t| &out[(b * steps + t) * 2 * hidden..][..hidden],
        sizes,
        d_x_needed,
    );
    [
        grads.d_x,
        Some(grads.d_weight_ih),
        Some(grads.d_weight_hh),
        Some(grads.d_bias_ih),
        Some(tensor(dh0, &[batch, hidden])),
        Some(tensor(dc0, &[batch, hidden])),
    ]
}

/// `lstm_backward` for one block of rows: from the output gradient `grad`, the forward's
/// `out` and `gates` and `c0`, writes the gates' pre-activation gradients and those of h0, c0.
#[allow(clippy::too_many_arguments)]
fn lstm_backward_block(
    grad: &[f32],
    out: &[f32],
    gates: &[f32],
    c0: &[f32],
    weight_hh: &[f32],
    hidden: usize,
    d_gates: &mut [f32],
    dh_next: &mut [f32],
    dc_next: &mut [f32],
) {
    let (width, batch) = (4 * hidden, c0.len() / hidden);
    let steps = gates.len() / (batch * width);
    for t in (0..steps).rev() {
        for b in 0..batch {
            let row = b * steps + t;
            let (grad_h, grad_c) = grad[row * 2 * hidden..][..2 * hidden].split_at(hidden);
            let c = &out[row * 2 * hidden + hidden..][..hidden];
            let c_prev = match t {
                0 => &c0[b * hidden..][..hidden],
                _ => &out[(row - 1) * 2 * hidden + hidden..][..hidden],
            };
            let gate = &gates[row * width..][..width];
            let dh_b = &dh_next[b * hidden..][..hidden];
            let dc_b = &mut dc_next[b * hidden..][..hidden];
            let d_gate = &mut d_gates[row * width..][..width];
            lstm_cell_backward(grad_h, grad_c, dh_b, dc_b, gate, c, c_prev, d_gate);
        }
        // h_{t-1} reaches the loss only through step t's gates: dh = d_gates_t @ W_hh.
        let d_step = step_rows(d_gates, t, steps, width);
        matmul_into(
            dh_next,
            d_step,
            View::rows(weight_hh, width, hidden, hidden),
            false,
        );
    }
}

/// The GRU forward: `[batch, steps, hidden]` and, when `keep`, per step `[r, z, n, hn]`
/// (`hn`: the new gate's hidden part, `h W_hn^T + b_hn`) for the backward.
fn gru_forward(inputs: &Inputs, keep: bool) -> (FlexTensor, Option<FlexTensor>) {
    let [x, weight_ih, weight_hh, bias_ih, bias_hh, h0] = inputs;
    let sizes = Sizes::of(x, weight_hh);
    let Sizes {
        batch,
        steps,
        input,
        hidden,
    } = sizes;
    let (x, h0) = (values(x), values(h0));
    let weight_ih_t = transposed(values(weight_ih), 3 * hidden, input);
    let weight_hh_t = transposed(values(weight_hh), 3 * hidden, hidden);
    let weights = [
        &weight_ih_t[..],
        &weight_hh_t,
        values(bias_ih),
        values(bias_hh),
    ];
    let mut out = vec![0.0; batch * steps * hidden];
    let mut kept = vec![0.0; if keep { batch * steps * 4 * hidden } else { 0 }];
    let buffers = [
        (&mut out[..], steps * hidden),
        (&mut kept[..], steps * 4 * hidden),
    ];
    in_row_blocks(batch, buffers, |rows, [out, kept]| {
        let (x, h0) = (rows.of(x, steps * input), rows.of(h0, hidden));
        gru_forward_block(x, weights, h0, sizes, out, kept);
    });
    let out = tensor(out, &[batch, steps, hidden]);
    (out, keep.then(|| tensor(kept, &[batch, steps, 4 * hidden])))
}

/// `gru_forward` for one block of rows (`sizes.batch` is the whole batch's; the block's is
/// h0's), the weights transposed; `kept` is empty when nothing is kept.
fn gru_forward_block(
    x: &[f32],
    [weight_ih_t, weight_hh_t, bias_ih, bias_hh]: [&[f32]; 4],
    h0: &[f32],
    Sizes {
        steps,
        input,
        hidden,
        ..
    }: Sizes,
    out: &mut [f32],
    kept: &mut [f32],
) {
    let (width, batch) = (3 * hidden, h0.len() / hidden);
    // The input's and the hidden state's parts of the gates, kept apart: the reset gate
    // scales only the hidden part of the new gate (as PyTorch).
    let (mut xw, mut hw) = (vec![0.0; batch * width], vec![0.0; batch * width]);
    let (mut rz, mut n) = (vec![0.0; 2 * hidden], vec![0.0; hidden]);
    for t in 0..steps {
        fill_rows(&mut xw, bias_ih);
        let x_t = step_rows(x, t, steps, input);
        matmul_into(
            &mut xw,
            x_t,
            View::rows(weight_ih_t, input, width, width),
            true,
        );
        fill_rows(&mut hw, bias_hh);
        let h_prev = match t {
            0 => View::rows(h0, batch, hidden, hidden),
            _ => View::rows(&out[(t - 1) * hidden..], batch, hidden, steps * hidden),
        };
        matmul_into(
            &mut hw,
            h_prev,
            View::rows(weight_hh_t, hidden, width, width),
            true,
        );
        for b in 0..batch {
            let row = b * steps + t;
            let (x_b, hw_b) = (&xw[b * width..][..width], &hw[b * width..][..width]);
            for k in 0..2 * hidden {
                rz[k] = x_b[k] + hw_b[k];
            }
            sigmoid_in_place(&mut rz);
            let (r, z) = rz.split_at(hidden);
            let hn = &hw_b[2 * hidden..];
            for k in 0..hidden {
                n[k] = x_b[2 * hidden + k] + r[k] * hn[k];
            }
            tanh_in_place(&mut n);
            let (before, from_row) = out.split_at_mut(row * hidden);
            let h_prev = match t {
                0 => &h0[b * hidden..][..hidden],
                _ => &before[(row - 1) * hidden..][..hidden],
            };
            let h = &mut from_row[..hidden];
            for k in 0..hidden {
                h[k] = n[k] + z[k] * (h_prev[k] - n[k]);
            }
            if !kept.is_empty() {
                let saved = &mut kept[row * 4 * hidden..][..4 * hidden];
                saved[..2 * hidden].copy_from_slice(&rz);
                saved[2 * hidden..3 * hidden].copy_from_slice(&n);
                saved[3 * hidden..].copy_from_slice(hn);
            }
        }
    }
}

/// The GRU backward: the gradients of the inputs, in their order (the input's only when
/// `d_x_needed`).
fn gru_backward(saved: &Saved, grad: FlexTensor, d_x_needed: bool) -> Grads {
    let [x, weight_ih, weight_hh, _, _, h0] = &saved.inputs;
    let sizes = Sizes::of(x, weight_hh);
    let Sizes {
        batch,
        steps,
        hidden,
        ..
    } = sizes;
    let width = 3 * hidden;
    let grad = contiguous(grad);
    let (grad, out, gates) = (values(&grad), values(&saved.out), values(&saved.gates));
    let (h0, weight_hh_values) = (values(h0), values(weight_hh));
    let mut d_input_part = vec![0.0; batch * steps * width];
    let mut d_hidden_part = vec![0.0; batch * steps * width];
    let mut dh0 = vec![0.0; batch * hidden];
    let buffers = [
        (&mut d_input_part[..], steps * width),
        (&mut d_hidden_part[..], steps * width),
        (&mut dh0[..], hidden),
    ];
    in_row_blocks(batch, buffers, |rows, [d_input_part, d_hidden_part, dh]| {
        let (grad, out) = (rows.of(grad, steps * hidden), rows.of(out, steps * hidden));
        let (gates, h0) = (rows.of(gates, steps * 4 * hidden), rows.of(h0, hidden));
        let d = (d_input_part, d_hidden_part, dh);
        gru_backward_block(grad, out, gates, h0, (weight_hh_values, hidden), d);
    });
    let grads = sequence_grads(
        values(x),
        values(weight_ih),
        &d_input_part,
        Some(&d_hidden_part),
        h0,
        |b, t| &out[(b * steps + t) * hidden..][..hidden],
        sizes,
        d_x_needed,
    );
    [
        grads.d_x,
        Some(grads.d_weight_ih),
        Some(grads.d_weight_hh),
        Some(grads.d_bias_ih),
        grads.d_bias_hh,
        Some(tensor(dh0, &[batch, hidden])),
    ]
}

/// `gru_backward` for one block of rows: writes the gradients of the gates' input and hidden
/// parts (the sources of the input's, the weights' and the biases' gradients) and of h0.
fn gru_backward_block(
    grad: &[f32],
    out: &[f32],
    gates: &[f32],
    h0: &[f32],
    (weight_hh, hidden): (&[f32], usize),
    (d_input_part, d_hidden_part, dh_next): (&mut [f32], &mut [f32], &mut [f32]),
) {
    let (width, batch) = (3 * hidden, h0.len() / hidden);
    let steps = out.len() / (batch * hidden);
    for t in (0..steps).rev() {
        for b in 0..batch {
            let row = b * steps + t;
            let h_prev = match t {
                0 => &h0[b * hidden..][..hidden],
                _ => &out[(row - 1) * hidden..][..hidden],
            };
            let gate = &gates[row * 4 * hidden..][..4 * hidden];
            let (r, z) = (&gate[..hidden], &gate[hidden..2 * hidden]);
            let (n, hn) = (&gate[2 * hidden..3 * hidden], &gate[3 * hidden..]);
            let grad_h = &grad[row * hidden..][..hidden];
            let dh_b = &mut dh_next[b * hidden..][..hidden];
            let dx = &mut d_input_part[row * width..][..width];
            let dhw = &mut d_hidden_part[row * width..][..width];
            for k in 0..hidden {
                let dh = grad_h[k] + dh_b[k];
                let dn = dh * (1.0 - z[k]) * (1.0 - n[k] * n[k]);
                let dr = dn * hn[k] * r[k] * (1.0 - r[k]);
                let dz = dh * (h_prev[k] - n[k]) * z[k] * (1.0 - z[k]);
                dx[k] = dr;
                dx[hidden + k] = dz;
                dx[2 * hidden + k] = dn;
                dhw[k] = dr;
                dhw[hidden + k] = dz;
                dhw[2 * hidden + k] = dn * r[k];
                // h_{t-1}'s direct share; its share through the gates is added below.
                dh_b[k] = dh * z[k];
            }
        }
        let d_step = step_rows(d_hidden_part, t, steps, width);
        matmul_into(
            dh_next,
            d_step,
            View::rows(weight_hh, width, hidden, hidden),
            true,
        );
    }
}

/// The inputs as contiguous Flex tensors.
fn contiguous_inputs(inputs: [FlexTensor; 6]) -> Inputs {
    inputs.map(contiguous)
}

impl RecurrentOps for Flex {
    fn lstm_layer(
        x: FloatTensor<Self>,
        weight_ih: FloatTensor<Self>,
        weight_hh: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let inputs = contiguous_inputs([x, weight_ih, weight_hh, bias, h0, c0]);
        Cell::Lstm.forward(&inputs, false).0
    }

    fn gru_layer(
        x: FloatTensor<Self>,
        weight_ih: FloatTensor<Self>,
        weight_hh: FloatTensor<Self>,
        bias_ih: FloatTensor<Self>,
        bias_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let inputs = contiguous_inputs([x, weight_ih, weight_hh, bias_ih, bias_hh, h0]);
        Cell::Gru.forward(&inputs, false).0
    }
}

/// One layer of `0`'s cell as one autodiff op.
#[derive(Debug)]
struct Layer(Cell);

#[derive(Debug, Clone, Copy)]
enum Cell {
    Lstm,
    Gru,
}

impl Cell {
    fn forward(self, inputs: &Inputs, keep: bool) -> (FlexTensor, Option<FlexTensor>) {
        match self {
            Cell::Lstm => lstm_forward(inputs, keep),
            Cell::Gru => gru_forward(inputs, keep),
        }
    }
}

impl Backward<Flex, 6> for Layer {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 6>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let d_x_needed = ops.parents[0].is_some();
        let input_grads = match self.0 {
            Cell::Lstm => lstm_backward(&ops.state, grad, d_x_needed),
            Cell::Gru => gru_backward(&ops.state, grad, d_x_needed),
        };
        // Each input's gradient to its parent node, where that input is tracked.
        for (parent, grad) in ops.parents.iter().zip(input_grads) {
            if let (Some(node), Some(grad)) = (parent, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// `cell`'s layer with autodiff, its inputs in the order of `Inputs`.
fn autodiff_layer<C: CheckpointStrategy>(
    cell: Cell,
    inputs: [FloatTensor<Autodiff<Flex, C>>; 6],
) -> FloatTensor<Autodiff<Flex, C>> {
    let nodes = inputs.each_ref().map(|input| input.node());
    let inputs = contiguous_inputs(inputs.map(|input| input.into_primitive()));
    match Layer(cell).prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (out, gates) = cell.forward(&inputs, true);
            let gates = gates.expect("kept for the backward");
            let saved = Saved {
                inputs,
                out: out.clone(),
                gates,
            };
            prep.finish(saved, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(cell.forward(&inputs, false).0),
    }
}

impl<C: CheckpointStrategy> RecurrentOps for Autodiff<Flex, C> {
    fn lstm_layer(
        x: FloatTensor<Self>,
        weight_ih: FloatTensor<Self>,
        weight_hh: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        autodiff_layer::<C>(Cell::Lstm, [x, weight_ih, weight_hh, bias, h0, c0])
    }

    fn gru_layer(
        x: FloatTensor<Self>,
        weight_ih: FloatTensor<Self>,
        weight_hh: FloatTensor<Self>,
        bias_ih: FloatTensor<Self>,
        bias_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        autodiff_layer::<C>(Cell::Gru, [x, weight_ih, weight_hh, bias_ih, bias_hh, h0])
    }
}
