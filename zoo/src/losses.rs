//! Losses and penalties of the notes that Burn does not ship: the multiclass SVM (hinge)
//! loss and L1 / L2 (elastic-net) penalties on weights. Cross-entropy comes from burn-nn.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::DType;

/// The notes' multiclass SVM loss, averaged over the batch:
/// mean_i sum_{j != y_i} max(0, s_ij - s_iy + margin).
///
/// # Shapes
/// - scores: `[batch, classes]`, targets: `[batch]`
pub fn multiclass_hinge(scores: Tensor<2>, targets: Tensor<1, Int>, margin: f64) -> Tensor<1> {
    let scores = scores.cast(DType::F32); // in f32 whatever the scores' precision
    let [batch, _] = scores.dims();
    let correct = scores.clone().gather(1, targets.reshape([batch, 1])); // [batch, 1]
    let margins = (scores - correct + margin).clamp_min(0.0); // [batch, classes]
                                                              // The j = y term is max(0, margin) = margin for every example; take it back out.
    (margins.sum_dim(1) - margin).mean().reshape([1])
}

/// l1 * sum |w| + l2 * sum w^2 over the weight matrices and kernels of `model` (tensors of
/// rank 2 and up; biases and normalization scales are not penalized). `None` when both are 0.
pub fn weight_penalty<M: Module>(model: &M, l1: f64, l2: f64) -> Option<Tensor<1>> {
    struct Penalty {
        l1: f64,
        l2: f64,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Penalty {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if D < 2 {
                return;
            }
            let w = param.val();
            let mut term = w.clone().abs().sum() * self.l1;
            if self.l2 > 0.0 {
                term = term + w.powi_scalar(2).sum() * self.l2;
            }
            self.total = Some(match self.total.take() {
                Some(total) => total + term,
                None => term,
            });
        }
    }
    if l1 == 0.0 && l2 == 0.0 {
        return None;
    }
    let mut penalty = Penalty {
        l1,
        l2,
        total: None,
    };
    model.visit(&mut penalty);
    penalty.total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::{autodiff_gradient, max_relative_error, numerical_gradient};
    use burn::tensor::Distribution;

    fn targets(device: &Device) -> Tensor<1, Int> {
        Tensor::from_data(TensorData::new(vec![0i64, 3, 1, 2], [4]), device)
    }

    #[test]
    fn hinge_matches_a_hand_computed_example() {
        let device = Device::flex();
        // Scores of the notes' example: cat 3.2, car 5.1, frog -1.7 with true class cat.
        let scores =
            Tensor::<2>::from_data(TensorData::new(vec![3.2f32, 5.1, -1.7], [1, 3]), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
        let loss = multiclass_hinge(scores, y, 1.0).into_scalar::<f64>();
        assert!((loss - 2.9).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn hinge_gradient_matches_central_differences() {
        let device = Device::flex();
        device.seed(7);
        let scores = Tensor::<2>::random([4, 5], Distribution::Normal(0.0, 1.0), &device);
        let loss = |x: Tensor<2>| multiclass_hinge(x.clone(), targets(&x.device()), 1.0);
        let numeric = numerical_gradient(|x| loss(x).into_scalar::<f64>(), &scores, 1e-3);
        let analytic = autodiff_gradient(loss, &scores);
        assert!(
            max_relative_error(&analytic, &numeric) < 1e-2,
            "{analytic:?} vs {numeric:?}"
        );
    }

    #[test]
    fn elastic_net_penalty_value_and_gradient() {
        let device = Device::flex();
        device.seed(3);
        let w = Tensor::<2>::random([3, 4], Distribution::Uniform(0.2, 1.0), &device);
        let penalty = |x: Tensor<2>| x.clone().abs().sum() * 0.1 + x.powi_scalar(2).sum() * 0.01;
        let numeric = numerical_gradient(|x| penalty(x).into_scalar::<f64>(), &w, 1e-3);
        let analytic = autodiff_gradient(penalty, &w);
        assert!(max_relative_error(&analytic, &numeric) < 1e-2);
        // weight_penalty sums exactly that over a module's weight matrices, skipping biases.
        let linear = burn::nn::LinearConfig::new(4, 3).init(&device);
        let weight = linear.weight.val();
        let expected = (weight.clone().abs().sum() * 0.1 + weight.powi_scalar(2).sum() * 0.01)
            .into_scalar::<f64>();
        let got = weight_penalty(&linear, 0.1, 0.01)
            .unwrap()
            .into_scalar::<f64>();
        assert!((got - expected).abs() < 1e-6);
        assert!(weight_penalty(&linear, 0.0, 0.0).is_none());
    }
}
