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

/// Runs `op` and `reference` on the same inputs and compares outputs and input gradients,
/// through a loss that weighs every output element differently.
fn compare<const N: usize>(
    inputs: [Tensor<2>; N],
    projected: Tensor<3>,
    op: impl Fn(Tensor<3>, &[Tensor<2>; N]) -> Tensor<3>,
    reference: impl Fn(Tensor<3>, &[Tensor<2>; N]) -> Tensor<3>,
) {
    let (out, expected) = (
        op(projected.clone(), &inputs),
        reference(projected.clone(), &inputs),
    );
    assert!(
        relative_gap(out.clone(), expected.clone()) < 1e-5,
        "outputs differ"
    );
    let weights = Tensor::random(out.dims(), Distribution::Normal(0.0, 1.0), &out.device());
    let grads = (out * weights.clone()).sum().backward();
    let expected_grads = (expected * weights).sum().backward();
    let gap = relative_gap(
        projected.grad(&grads).unwrap(),
        projected.grad(&expected_grads).unwrap(),
    );
    assert!(gap < 1e-4, "projected input's gradient: {gap}");
    for (k, input) in inputs.iter().enumerate() {
        let gap = relative_gap(
            input.grad(&grads).unwrap(),
            input.grad(&expected_grads).unwrap(),
        );
        assert!(gap < 1e-4, "input {k}'s gradient: {gap}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn flex_lstm_matches_burn_ops(batch in 1usize..6, steps in 1usize..9, hidden in 1usize..20) {
        let device = Device::flex().autodiff();
        let projected = random([batch, steps, 4 * hidden], &device);
        let inputs = [
            random([4 * hidden, hidden], &device),
            random([batch, hidden], &device),
            random([batch, hidden], &device),
        ];
        compare(
            inputs,
            projected,
            |p, [w, h, c]| crate::lstm(p, w.clone(), h.clone(), c.clone()),
            |p, [w, h, c]| lstm_composed(p, w.clone().transpose(), h.clone(), c.clone()),
        );
    }

    #[test]
    fn flex_gru_matches_burn_ops(batch in 1usize..6, steps in 1usize..9, hidden in 1usize..20) {
        let device = Device::flex().autodiff();
        let projected = random([batch, steps, 3 * hidden], &device);
        // The bias rides as a [1, 3 hidden] matrix so that all inputs share one type.
        let inputs = [
            random([3 * hidden, hidden], &device),
            random([1, 3 * hidden], &device),
            random([batch, hidden], &device),
        ];
        let bias = |b: &Tensor<2>| b.clone().reshape([3 * hidden]);
        compare(
            inputs,
            projected,
            |p, [w, b, h]| crate::gru(p, w.clone(), bias(b), h.clone()),
            |p, [w, b, h]| gru_composed(p, w.clone().transpose(), bias(b), h.clone()),
        );
    }
}

#[test]
fn without_autodiff_the_flex_ops_give_the_same_outputs() {
    let device = Device::flex();
    let (batch, steps, hidden) = (3, 5, 7);
    let normal = Distribution::Normal(0.0, 1.0);
    let projected = Tensor::random([batch, steps, 4 * hidden], normal, &device);
    let w = Tensor::random([4 * hidden, hidden], normal, &device);
    let (h, c) = (
        Tensor::random([batch, hidden], normal, &device),
        Tensor::random([batch, hidden], normal, &device),
    );
    let ours = crate::lstm(projected.clone(), w.clone(), h.clone(), c.clone());
    let reference = lstm_composed(projected, w.transpose(), h, c);
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
            let weights = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let ours = x.grad(&(ours * weights.clone()).sum().backward()).unwrap();
            let burns = x.grad(&(burns * weights).sum().backward()).unwrap();
            assert!(relative_gap(ours, burns) < 1e-5);
        }
    }
}
