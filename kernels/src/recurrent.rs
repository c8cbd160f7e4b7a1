//! An LSTM, GRU or tanh RNN layer with PyTorch's weights and stacked gates. On Flex (the CPU
//! backend) the LSTM and GRU layers run as one op each, the input projection inside the steps,
//! forward and backward written by hand (`flex_recurrent`); elsewhere, and for the RNN (whose
//! tanh is ours), as Burn tensor ops (every step's input projection in one matmul, then the
//! steps), which autodiff differentiates itself. Both compute the same function; the tests
//! compare them.

use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch};
use burn::tensor::activation::{sigmoid, tanh};
use burn::tensor::Tensor;

use crate::flex::on_flex_f32;

/// The recurrent layers that Flex runs as single ops, through Burn's backend extension: the
/// trait dispatches on the tensors' backend and routes autodiff to our backward. Weights are
/// in PyTorch's layout, gates stacked in PyTorch's order.
#[backend_extension(Flex, Autodiff)]
pub trait RecurrentOps: Backend {
    /// An LSTM layer. `x`: `[batch, steps, input]`; `weight_ih`: `[4 hidden, input]`;
    /// `weight_hh`: `[4 hidden, hidden]`; `bias`: `[4 hidden]`, PyTorch's two biases summed;
    /// `h0`, `c0`: `[batch, hidden]`. Returns `[batch, steps, 2 hidden]`: h_t then c_t.
    fn lstm_layer(
        x: FloatTensor<Self>,
        weight_ih: FloatTensor<Self>,
        weight_hh: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// A GRU layer. `x`: `[batch, steps, input]`; `weight_ih`: `[3 hidden, input]`;
    /// `weight_hh`: `[3 hidden, hidden]`; `bias_ih`, `bias_hh`: `[3 hidden]` (the hidden one
    /// inside the reset gate's product, as PyTorch); `h0`: `[batch, hidden]`. Returns h_t:
    /// `[batch, steps, hidden]`.
    fn gru_layer(
        x: FloatTensor<Self>,
        weight_ih: FloatTensor<Self>,
        weight_hh: FloatTensor<Self>,
        bias_ih: FloatTensor<Self>,
        bias_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// An LSTM layer from `(h0, c0)`; see [`RecurrentOps::lstm_layer`].
///
/// # Shapes
/// - x: `[batch, steps, input]`; weight_ih: `[4 hidden, input]`; weight_hh: `[4 hidden, hidden]`
/// - bias: `[4 hidden]`; h0, c0: `[batch, hidden]`; output: `[batch, steps, 2 hidden]` (h_t, c_t)
pub fn lstm(
    x: Tensor<3>,
    weight_ih: Tensor<2>,
    weight_hh: Tensor<2>,
    bias: Tensor<1>,
    h0: Tensor<2>,
    c0: Tensor<2>,
) -> Tensor<3> {
    if !on_flex_f32(&x) {
        return lstm_composed(x, weight_ih, weight_hh, bias, h0, c0);
    }
    Tensor::from_dispatch(<Dispatch as RecurrentOps>::lstm_layer(
        x.into_dispatch(),
        weight_ih.into_dispatch(),
        weight_hh.into_dispatch(),
        bias.into_dispatch(),
        h0.into_dispatch(),
        c0.into_dispatch(),
    ))
}

/// A GRU layer from `h0`; see [`RecurrentOps::gru_layer`].
///
/// # Shapes
/// - x: `[batch, steps, input]`; weight_ih: `[3 hidden, input]`; weight_hh: `[3 hidden, hidden]`
/// - bias_ih, bias_hh: `[3 hidden]`; h0: `[batch, hidden]`; output: `[batch, steps, hidden]`
pub fn gru(
    x: Tensor<3>,
    weight_ih: Tensor<2>,
    weight_hh: Tensor<2>,
    bias_ih: Tensor<1>,
    bias_hh: Tensor<1>,
    h0: Tensor<2>,
) -> Tensor<3> {
    if !on_flex_f32(&x) {
        return gru_composed(x, weight_ih, weight_hh, bias_ih, bias_hh, h0);
    }
    Tensor::from_dispatch(<Dispatch as RecurrentOps>::gru_layer(
        x.into_dispatch(),
        weight_ih.into_dispatch(),
        weight_hh.into_dispatch(),
        bias_ih.into_dispatch(),
        bias_hh.into_dispatch(),
        h0.into_dispatch(),
    ))
}

/// Every step's input projection `x W^T + bias` in one matmul.
///
/// # Shapes
/// - x: `[batch, steps, input]`; weight: `[gates, input]`; bias: `[gates]`
/// - output: `[batch, steps, gates]`
pub fn project(x: Tensor<3>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<3> {
    let [batch, steps, input] = x.dims();
    let gates = weight.dims()[0];
    x.reshape([batch * steps, input])
        .matmul(weight.transpose())
        .reshape([batch, steps, gates])
        + bias.reshape([1, 1, gates])
}

/// Plain RNN steps, h_t = tanh(projected_t + h_{t-1} W_hh^T + b_hh), as Burn tensor ops.
///
/// # Shapes
/// - projected: `[batch, steps, hidden]`; weight_hh: `[hidden, hidden]`; bias_hh: `[hidden]`
/// - h0: `[batch, hidden]`; output: `[batch, steps, hidden]`
pub fn rnn(
    projected: Tensor<3>,
    weight_hh: Tensor<2>,
    bias_hh: Tensor<1>,
    h0: Tensor<2>,
) -> Tensor<3> {
    let [batch, steps, hidden] = projected.dims();
    let (weight_hh_t, bias_hh) = (weight_hh.transpose(), bias_hh.unsqueeze::<2>());
    let mut h = h0;
    let mut outputs = Vec::with_capacity(steps);
    for t in 0..steps {
        let x_t = projected.clone().narrow(1, t, 1).reshape([batch, hidden]);
        h = crate::activation::tanh(x_t + h.matmul(weight_hh_t.clone()) + bias_hh.clone());
        outputs.push(h.clone());
    }
    Tensor::stack(outputs, 1)
}

/// The LSTM layer as Burn tensor ops: the reference for the Flex op, and the path of the
/// other backends.
///
/// # Shapes
/// - as [`lstm`]
pub fn lstm_composed(
    x: Tensor<3>,
    weight_ih: Tensor<2>,
    weight_hh: Tensor<2>,
    bias: Tensor<1>,
    h0: Tensor<2>,
    c0: Tensor<2>,
) -> Tensor<3> {
    let projected = project(x, weight_ih, bias);
    let weight_hh_t = weight_hh.transpose();
    let [batch, steps, gates] = projected.dims();
    let hidden = gates / 4;
    let (mut h, mut c) = (h0, c0);
    let (mut hs, mut cs) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    for t in 0..steps {
        let pre = projected.clone().narrow(1, t, 1).reshape([batch, gates])
            + h.matmul(weight_hh_t.clone());
        let gate = |k: usize| pre.clone().narrow(1, k * hidden, hidden);
        let (i, f, g, o) = (
            sigmoid(gate(0)),
            sigmoid(gate(1)),
            tanh(gate(2)),
            sigmoid(gate(3)),
        );
        c = f * c + i * g;
        h = o * tanh(c.clone());
        hs.push(h.clone());
        cs.push(c.clone());
    }
    Tensor::cat(vec![Tensor::stack(hs, 1), Tensor::stack(cs, 1)], 2)
}

/// The GRU layer as Burn tensor ops (see [`lstm_composed`]).
///
/// # Shapes
/// - as [`gru`]
pub fn gru_composed(
    x: Tensor<3>,
    weight_ih: Tensor<2>,
    weight_hh: Tensor<2>,
    bias_ih: Tensor<1>,
    bias_hh: Tensor<1>,
    h0: Tensor<2>,
) -> Tensor<3> {
    let projected = project(x, weight_ih, bias_ih);
    let weight_hh_t = weight_hh.transpose();
    let [batch, steps, gates] = projected.dims();
    let hidden = gates / 3;
    let bias_hh = bias_hh.unsqueeze::<2>();
    let mut h = h0;
    let mut hs = Vec::with_capacity(steps);
    for t in 0..steps {
        let x = projected.clone().narrow(1, t, 1).reshape([batch, gates]);
        let hg = h.clone().matmul(weight_hh_t.clone()) + bias_hh.clone();
        let part = |m: &Tensor<2>, k: usize| m.clone().narrow(1, k * hidden, hidden);
        let r = sigmoid(part(&x, 0) + part(&hg, 0));
        let z = sigmoid(part(&x, 1) + part(&hg, 1));
        let n = tanh(part(&x, 2) + r * part(&hg, 2));
        h = n.clone() + z * (h - n);
        hs.push(h.clone());
    }
    Tensor::stack(hs, 1)
}
