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

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};
    use proptest::prelude::*;

    use super::{gru, gru_composed, lstm, lstm_composed};
    use crate::testing::{random, relative_gap};

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
        compare(inputs, x, layer(lstm), layer(lstm_composed));
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
        compare(inputs, x, layer(gru), layer(gru_composed));
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
    fn layer_gradient_bits(
        threads: usize,
        inputs: &[burn::tensor::TensorData; 6],
    ) -> Vec<Vec<u32>> {
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
            let lstm = lstm(
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
            let gru = gru(
                x3,
                rows(&w_ih),
                rows(&w_hh),
                bias(&b3),
                bias(&b3),
                h.clone(),
            );
            let loss =
                (lstm.clone() * lstm).sum() + (gru.clone() * gru).sum().mul_scalar(width as f32);
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
        let ours = lstm(
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
        let ours = gru(
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
}
