//! The notes' numerical gradient check: (f(x + h) - f(x - h)) / 2h per coordinate, compared
//! with the gradient autodiff computes. Used in tests for every custom loss and a full model.

use burn::prelude::*;

/// Central differences of the scalar function `f` at `x`, one coordinate at a time.
pub fn numerical_gradient<const D: usize>(
    f: impl Fn(Tensor<D>) -> f64,
    x: &Tensor<D>,
    h: f64,
) -> Vec<f64> {
    let shape = x.shape();
    let device = x.device();
    let values: Vec<f32> = x.clone().try_into_vec_as::<f32>().expect("float tensor");
    let at = |v: Vec<f32>| {
        f(Tensor::from_data(
            TensorData::new(v, shape.clone()),
            &device,
        ))
    };
    (0..values.len())
        .map(|i| {
            let mut plus = values.clone();
            let mut minus = values.clone();
            plus[i] += h as f32;
            minus[i] -= h as f32;
            // Divide by the step actually taken in f32, not the nominal 2h.
            let step = (plus[i] - minus[i]) as f64;
            (at(plus) - at(minus)) / step
        })
        .collect()
}

/// The gradient of the scalar `f` at `x`, by Burn's autodiff.
pub fn autodiff_gradient<const D: usize>(
    f: impl Fn(Tensor<D>) -> Tensor<1>,
    x: &Tensor<D>,
) -> Vec<f64> {
    let ad = x.device().autodiff();
    let leaf = Tensor::<D>::from_data(x.to_data(), &ad).require_grad();
    let grads = f(leaf.clone()).backward();
    let grad = leaf.grad(&grads).expect("x takes part in f");
    grad.try_into_vec_as::<f64>().expect("float gradient")
}

/// max |a - b| over max |a|: the worst coordinate's error relative to the gradient's scale.
pub fn max_relative_error(analytic: &[f64], numeric: &[f64]) -> f64 {
    let scale = analytic.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    analytic
        .iter()
        .zip(numeric)
        .fold(0f64, |m, (a, n)| m.max((a - n).abs()))
        / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{
        lenet::{LeNet5, PoolKind},
        mlp::ActivationKind,
        ImageClassifier, ImageFamily, LeNet5Config, ModelInput, NetBuilder,
    };
    use burn::tensor::Distribution;

    #[test]
    fn a_known_gradient() {
        let device = Device::flex();
        let x = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, -2.0, 0.5], [3]), &device);
        let f = |x: Tensor<1>| x.powi_scalar(3).sum();
        let analytic = autodiff_gradient(f, &x);
        assert!(max_relative_error(&analytic, &[3.0, 12.0, 0.75]) < 1e-6);
        let numeric = numerical_gradient(|x| f(x).into_scalar::<f64>(), &x, 1e-2);
        assert!(max_relative_error(&analytic, &numeric) < 1e-3);
    }

    /// A whole LeNet-5 (tanh, average pooling: smooth everywhere) differentiated end to end,
    /// with respect to its input images, through cross-entropy.
    #[test]
    fn lenet5_backprop_matches_central_differences() {
        let device = Device::flex();
        device.seed(11);
        let input = ModelInput {
            channels: 1,
            height: 28,
            width: 28,
            num_classes: 10,
        };
        let config = LeNet5Config {
            activation: ActivationKind::Tanh,
            pooling: PoolKind::Avg,
            conv1_padding: None,
        };
        let images = Tensor::<4>::random([2, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
        let loss = |model: &LeNet5, x: Tensor<4>| {
            let targets =
                Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 7], [2]), &x.device());
            model.loss(model.logits(x), targets)
        };
        let ad = device.clone().autodiff();
        let ad_model = config.build(&input, &mut NetBuilder::new(&input.map(), &ad));
        let plain_model = ad_model.valid();
        let analytic = autodiff_gradient(|x| loss(&ad_model, x), &images);
        let numeric = numerical_gradient(
            |x| loss(&plain_model, x).into_scalar::<f64>(),
            &images,
            3e-2,
        );
        let error = max_relative_error(&analytic, &numeric);
        // f32 round-off in the loss (~1e-7 of 2.3) over a 2h step bounds the agreement to
        // about 1% of the largest gradient here; a wrong backward pass is off by far more.
        assert!(error < 5e-2, "relative error {error}");
        assert!(analytic.iter().any(|g| g.abs() > 1e-4));
    }
}
