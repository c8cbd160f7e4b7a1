//! The LSTM and GRU steps on Flex as single ops. Per step: one matmul of the hidden state by
//! the stacked `[hidden, gates]` weight, then one pass per batch row that adds the projected
//! input, applies the gate activations (vectorized, `math`) and updates the state. Training
//! keeps the gate activations; the backward runs the steps in reverse from them, with one
//! matmul per step for the hidden state's gradient and one matmul over all steps for the
//! weight's, instead of the ~30 autodiff nodes per step of Burn's cells.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use rayon::prelude::*;

use crate::flex::{contiguous, tensor, values};
use crate::math::{sigmoid_in_place, tanh_in_place};
use crate::recurrent::RecurrentOps;

/// `[batch, steps, width]` of a tensor of that rank.
fn dims3(tensor: &FlexTensor) -> [usize; 3] {
    let shape = tensor.layout().shape();
    [shape[0], shape[1], shape[2]]
}

/// `rows @ weight`: `rows` is `[rows.len() / k, k]`.
fn times(rows: &[f32], k: usize, weight: &FlexTensor) -> FlexTensor {
    Flex::float_matmul(tensor(rows.to_vec(), &[rows.len() / k, k]), weight.clone())
}

/// The weight's gradient over all steps at once: `previous^T @ d_gates`, `[hidden, gates]`,
/// where `previous` holds every step's input state, `[batch * steps, hidden]`: `h0` at step 0,
/// the output before it after (`state_of(b, t)`: step t's output state of row b).
fn weight_grad<'a>(
    h0: &'a [f32],
    [batch, steps, hidden]: [usize; 3],
    state_of: impl Fn(usize, usize) -> &'a [f32],
    d_gates: &FlexTensor,
) -> FlexTensor {
    let mut previous = Vec::with_capacity(batch * steps * hidden);
    for b in 0..batch {
        previous.extend_from_slice(&h0[b * hidden..][..hidden]);
        for t in 1..steps {
            previous.extend_from_slice(state_of(b, t - 1));
        }
    }
    let (rows, gates) = (batch * steps, d_gates.layout().shape()[2]);
    let previous_t = tensor(previous, &[rows, hidden]).transpose(0, 1);
    Flex::float_matmul(previous_t, d_gates.reshape([rows, gates].into()))
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
/// matmuls included), with no hand-off per step. Blocks of at most 64 rows keep a block's
/// states in cache and its matmuls below gemm's own threading.
fn in_row_blocks<const N: usize>(
    batch: usize,
    buffers: [(&mut [f32], usize); N],
    f: impl Fn(Rows, [&mut [f32]; N]) + Sync,
) {
    let rows = batch.div_ceil(rayon::current_num_threads()).clamp(1, 64);
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
fn lstm_forward(
    projected: &FlexTensor,
    weight_t: &FlexTensor,
    h0: &[f32],
    c0: &[f32],
    keep_gates: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let [batch, steps, width] = dims3(projected);
    let (projected, hidden) = (values(projected), width / 4);
    let mut out = vec![0.0; batch * steps * 2 * hidden];
    let mut kept = vec![0.0; if keep_gates { projected.len() } else { 0 }];
    let buffers = [
        (&mut out[..], steps * 2 * hidden),
        (&mut kept[..], steps * width),
    ];
    in_row_blocks(batch, buffers, |rows, [out, kept]| {
        let projected = rows.of(projected, steps * width);
        let (h0, c0) = (rows.of(h0, hidden), rows.of(c0, hidden));
        lstm_forward_block(projected, weight_t, h0, c0, out, kept);
    });
    let out = tensor(out, &[batch, steps, 2 * hidden]);
    (
        out,
        keep_gates.then(|| tensor(kept, &[batch, steps, width])),
    )
}

/// `lstm_forward` for one block of rows; `kept` is empty when the gates are not kept.
fn lstm_forward_block(
    projected: &[f32],
    weight_t: &FlexTensor,
    h0: &[f32],
    c0: &[f32],
    out: &mut [f32],
    kept: &mut [f32],
) {
    let hidden = weight_t.layout().shape()[0];
    let (width, batch) = (4 * hidden, h0.len() / hidden);
    let steps = projected.len() / (batch * width);
    let (mut h, mut c) = (h0.to_vec(), c0.to_vec());
    let (mut gates, mut tanh_c) = (vec![0.0; width], vec![0.0; hidden]);
    for t in 0..steps {
        let hw = times(&h, hidden, weight_t);
        let hw = values(&hw);
        for b in 0..batch {
            let row = b * steps + t;
            let x = &projected[row * width..][..width];
            for ((gate, x), hw) in gates.iter_mut().zip(x).zip(&hw[b * width..][..width]) {
                *gate = x + hw;
            }
            sigmoid_in_place(&mut gates[..2 * hidden]);
            tanh_in_place(&mut gates[2 * hidden..3 * hidden]);
            sigmoid_in_place(&mut gates[3 * hidden..]);
            let (i, rest) = gates.split_at(hidden);
            let (f, rest) = rest.split_at(hidden);
            let (g, o) = rest.split_at(hidden);
            let c_b = &mut c[b * hidden..][..hidden];
            for k in 0..hidden {
                c_b[k] = f[k] * c_b[k] + i[k] * g[k];
            }
            tanh_c.copy_from_slice(c_b);
            tanh_in_place(&mut tanh_c);
            let h_b = &mut h[b * hidden..][..hidden];
            for k in 0..hidden {
                h_b[k] = o[k] * tanh_c[k];
            }
            let out_row = &mut out[row * 2 * hidden..][..2 * hidden];
            out_row[..hidden].copy_from_slice(h_b);
            out_row[hidden..].copy_from_slice(c_b);
            if !kept.is_empty() {
                kept[row * width..][..width].copy_from_slice(&gates);
            }
        }
    }
}

/// What a backward reads: the forward's inputs but the projected one (the LSTM's h0, c0; the
/// GRU's bias, h0), its output and its kept gates.
#[derive(Debug, Clone)]
struct Saved {
    weight_t: FlexTensor,
    inputs: [FlexTensor; 2],
    out: FlexTensor,
    gates: FlexTensor,
}

/// The LSTM backward: gradients of the projected input, the transposed hidden weight, h0, c0.
fn lstm_backward(saved: &Saved, grad: FlexTensor) -> [FlexTensor; 4] {
    let [batch, steps, width] = dims3(&saved.gates);
    let hidden = width / 4;
    let (grad, out, gates) = (contiguous(grad), values(&saved.out), values(&saved.gates));
    let [h0, c0] = &saved.inputs;
    let (grad, h0, c0) = (values(&grad), values(h0), values(c0));
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
        lstm_backward_block(grad, out, gates, c0, &saved.weight_t, d_gates, dh, dc);
    });
    let d_gates = tensor(d_gates, &[batch, steps, width]);
    let d_weight_t = weight_grad(
        h0,
        [batch, steps, hidden],
        |b, t| &out[(b * steps + t) * 2 * hidden..][..hidden],
        &d_gates,
    );
    [
        d_gates,
        d_weight_t,
        tensor(dh0, &[batch, hidden]),
        tensor(dc0, &[batch, hidden]),
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
    weight_t: &FlexTensor,
    d_gates: &mut [f32],
    dh_next: &mut [f32],
    dc_next: &mut [f32],
) {
    let hidden = weight_t.layout().shape()[0];
    let (width, batch) = (4 * hidden, c0.len() / hidden);
    let steps = gates.len() / (batch * width);
    let (mut d_step, mut tanh_c) = (vec![0.0; batch * width], vec![0.0; hidden]);
    let weight = weight_t.clone().transpose(0, 1);
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
            let (i, f) = (&gate[..hidden], &gate[hidden..2 * hidden]);
            let (g, o) = (&gate[2 * hidden..3 * hidden], &gate[3 * hidden..]);
            tanh_c.copy_from_slice(c);
            tanh_in_place(&mut tanh_c);
            let dh_b = &dh_next[b * hidden..][..hidden];
            let dc_b = &mut dc_next[b * hidden..][..hidden];
            let d = &mut d_step[b * width..][..width];
            let (di, rest) = d.split_at_mut(hidden);
            let (df, rest) = rest.split_at_mut(hidden);
            let (dg, d_o) = rest.split_at_mut(hidden);
            for k in 0..hidden {
                let dh = grad_h[k] + dh_b[k];
                let dc = grad_c[k] + dc_b[k] + dh * o[k] * (1.0 - tanh_c[k] * tanh_c[k]);
                d_o[k] = dh * tanh_c[k] * o[k] * (1.0 - o[k]);
                di[k] = dc * g[k] * i[k] * (1.0 - i[k]);
                df[k] = dc * c_prev[k] * f[k] * (1.0 - f[k]);
                dg[k] = dc * i[k] * (1.0 - g[k] * g[k]);
                dc_b[k] = dc * f[k];
            }
            d_gates[row * width..][..width].copy_from_slice(d);
        }
        // h_{t-1} reaches the loss only through step t's gates.
        let dh = times(&d_step, width, &weight);
        dh_next.copy_from_slice(values(&dh));
    }
}

/// The GRU forward: `[batch, steps, hidden]` and, when `keep`, per step `[r, z, n, hn]`
/// (`hn`: the new gate's hidden part, `h W_hn^T + b_hn`) for the backward.
fn gru_forward(
    projected: &FlexTensor,
    weight_t: &FlexTensor,
    bias: &[f32],
    h0: &[f32],
    keep: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let [batch, steps, width] = dims3(projected);
    let (projected, hidden) = (values(projected), width / 3);
    let mut out = vec![0.0; batch * steps * hidden];
    let mut kept = vec![0.0; if keep { batch * steps * 4 * hidden } else { 0 }];
    let buffers = [
        (&mut out[..], steps * hidden),
        (&mut kept[..], steps * 4 * hidden),
    ];
    in_row_blocks(batch, buffers, |rows, [out, kept]| {
        let (projected, h0) = (rows.of(projected, steps * width), rows.of(h0, hidden));
        gru_forward_block(projected, weight_t, bias, h0, out, kept);
    });
    let out = tensor(out, &[batch, steps, hidden]);
    (out, keep.then(|| tensor(kept, &[batch, steps, 4 * hidden])))
}

/// `gru_forward` for one block of rows; `kept` is empty when nothing is kept.
fn gru_forward_block(
    projected: &[f32],
    weight_t: &FlexTensor,
    bias: &[f32],
    h0: &[f32],
    out: &mut [f32],
    kept: &mut [f32],
) {
    let hidden = weight_t.layout().shape()[0];
    let (width, batch) = (3 * hidden, h0.len() / hidden);
    let steps = projected.len() / (batch * width);
    let mut h = h0.to_vec();
    let (mut rz, mut hn, mut n) = (vec![0.0; 2 * hidden], vec![0.0; hidden], vec![0.0; hidden]);
    for t in 0..steps {
        let hw = times(&h, hidden, weight_t);
        let hw = values(&hw);
        for b in 0..batch {
            let row = b * steps + t;
            let x = &projected[row * width..][..width];
            let hw_b = &hw[b * width..][..width];
            for k in 0..2 * hidden {
                rz[k] = x[k] + hw_b[k] + bias[k];
            }
            sigmoid_in_place(&mut rz);
            let (r, z) = rz.split_at(hidden);
            for k in 0..hidden {
                hn[k] = hw_b[2 * hidden + k] + bias[2 * hidden + k];
                n[k] = x[2 * hidden + k] + r[k] * hn[k];
            }
            tanh_in_place(&mut n);
            let h_b = &mut h[b * hidden..][..hidden];
            for k in 0..hidden {
                h_b[k] = n[k] + z[k] * (h_b[k] - n[k]);
            }
            out[row * hidden..][..hidden].copy_from_slice(h_b);
            if !kept.is_empty() {
                let saved = &mut kept[row * 4 * hidden..][..4 * hidden];
                saved[..2 * hidden].copy_from_slice(&rz);
                saved[2 * hidden..3 * hidden].copy_from_slice(&n);
                saved[3 * hidden..].copy_from_slice(&hn);
            }
        }
    }
}

/// The GRU backward: gradients of the projected input, the transposed hidden weight, the
/// hidden bias and h0.
fn gru_backward(saved: &Saved, grad: FlexTensor) -> [FlexTensor; 4] {
    let [batch, steps, hidden] = dims3(&saved.out);
    let width = 3 * hidden;
    let (grad, out, gates) = (contiguous(grad), values(&saved.out), values(&saved.gates));
    let (grad, h0) = (values(&grad), values(&saved.inputs[1]));
    let mut d_projected = vec![0.0; batch * steps * width];
    let mut d_hidden_part = vec![0.0; batch * steps * width];
    let mut dh0 = vec![0.0; batch * hidden];
    let buffers = [
        (&mut d_projected[..], steps * width),
        (&mut d_hidden_part[..], steps * width),
        (&mut dh0[..], hidden),
    ];
    in_row_blocks(batch, buffers, |rows, [d_projected, d_hidden_part, dh]| {
        let (grad, out) = (rows.of(grad, steps * hidden), rows.of(out, steps * hidden));
        let (gates, h0) = (rows.of(gates, steps * 4 * hidden), rows.of(h0, hidden));
        let d = (d_projected, d_hidden_part, dh);
        gru_backward_block(grad, out, gates, h0, &saved.weight_t, d);
    });
    let mut d_bias = vec![0.0; width];
    for row in d_hidden_part.chunks_exact(width) {
        for (sum, d) in d_bias.iter_mut().zip(row) {
            *sum += d;
        }
    }
    let d_hidden_part = tensor(d_hidden_part, &[batch, steps, width]);
    let d_weight_t = weight_grad(
        h0,
        [batch, steps, hidden],
        |b, t| &out[(b * steps + t) * hidden..][..hidden],
        &d_hidden_part,
    );
    [
        tensor(d_projected, &[batch, steps, width]),
        d_weight_t,
        tensor(d_bias, &[width]),
        tensor(dh0, &[batch, hidden]),
    ]
}

/// `gru_backward` for one block of rows: writes the gradients of the projected input, of the
/// hidden matmul's output (the bias's and weight's source) and of h0.
fn gru_backward_block(
    grad: &[f32],
    out: &[f32],
    gates: &[f32],
    h0: &[f32],
    weight_t: &FlexTensor,
    (d_projected, d_hidden_part, dh_next): (&mut [f32], &mut [f32], &mut [f32]),
) {
    let hidden = weight_t.layout().shape()[0];
    let (width, batch) = (3 * hidden, h0.len() / hidden);
    let steps = out.len() / (batch * hidden);
    let mut d_step = vec![0.0; batch * width];
    let weight = weight_t.clone().transpose(0, 1);
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
            let dx = &mut d_projected[row * width..][..width];
            let dhw = &mut d_step[b * width..][..width];
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
            d_hidden_part[row * width..][..width].copy_from_slice(dhw);
        }
        let dh = times(&d_step, width, &weight);
        for (next, through_weight) in dh_next.iter_mut().zip(values(&dh)) {
            *next += through_weight;
        }
    }
}

impl RecurrentOps for Flex {
    fn lstm_steps(
        projected: FloatTensor<Self>,
        weight_hh_t: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let inputs = [contiguous(h0), contiguous(c0)];
        let projected = contiguous(projected);
        Cell::Lstm
            .forward(&projected, &weight_hh_t, &inputs, false)
            .0
    }

    fn gru_steps(
        projected: FloatTensor<Self>,
        weight_hh_t: FloatTensor<Self>,
        bias_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let inputs = [contiguous(bias_hh), contiguous(h0)];
        let projected = contiguous(projected);
        Cell::Gru
            .forward(&projected, &weight_hh_t, &inputs, false)
            .0
    }
}

/// The steps of `0`'s cell as one autodiff op.
#[derive(Debug)]
struct Steps(Cell);

#[derive(Debug, Clone, Copy)]
enum Cell {
    Lstm,
    Gru,
}

impl Cell {
    /// The forward of this cell; `inputs` are the LSTM's h0, c0 or the GRU's bias, h0.
    fn forward(
        self,
        projected: &FlexTensor,
        weight_t: &FlexTensor,
        [a, b]: &[FlexTensor; 2],
        keep: bool,
    ) -> (FlexTensor, Option<FlexTensor>) {
        match self {
            Cell::Lstm => lstm_forward(projected, weight_t, values(a), values(b), keep),
            Cell::Gru => gru_forward(projected, weight_t, values(a), values(b), keep),
        }
    }
}

impl Backward<Flex, 4> for Steps {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let input_grads = match self.0 {
            Cell::Lstm => lstm_backward(&ops.state, grad),
            Cell::Gru => gru_backward(&ops.state, grad),
        };
        // Each input's gradient to its parent node, where that input is tracked.
        for (parent, grad) in ops.parents.iter().zip(input_grads) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// `cell`'s steps with autodiff: `[projected, weight_hh_t, a, b]` as in `Cell::forward`.
fn autodiff_steps<C: CheckpointStrategy>(
    cell: Cell,
    [projected, weight_t, a, b]: [FloatTensor<Autodiff<Flex, C>>; 4],
) -> FloatTensor<Autodiff<Flex, C>> {
    let nodes = [projected.node(), weight_t.node(), a.node(), b.node()];
    let projected = contiguous(projected.into_primitive());
    let weight_t = weight_t.into_primitive();
    let inputs = [a, b].map(|t| contiguous(t.into_primitive()));
    match Steps(cell).prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (out, gates) = cell.forward(&projected, &weight_t, &inputs, true);
            let gates = gates.expect("kept for the backward");
            let saved = Saved {
                weight_t,
                inputs,
                out: out.clone(),
                gates,
            };
            prep.finish(saved, out)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(cell.forward(&projected, &weight_t, &inputs, false).0)
        }
    }
}

impl<C: CheckpointStrategy> RecurrentOps for Autodiff<Flex, C> {
    fn lstm_steps(
        projected: FloatTensor<Self>,
        weight_hh_t: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        autodiff_steps::<C>(Cell::Lstm, [projected, weight_hh_t, h0, c0])
    }

    fn gru_steps(
        projected: FloatTensor<Self>,
        weight_hh_t: FloatTensor<Self>,
        bias_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        autodiff_steps::<C>(Cell::Gru, [projected, weight_hh_t, bias_hh, h0])
    }
}
