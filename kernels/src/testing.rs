//! Helpers shared by the kernels' tests, which compare each Flex op with its Burn-ops
//! reference: outputs and the gradients of every input, on random shapes including odd sizes.

use burn::tensor::{Device, Distribution, Tensor};

/// A tracked tensor of standard normal values.
pub(crate) fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device).require_grad()
}

/// Largest difference relative to the reference's largest magnitude.
pub(crate) fn relative_gap<const D: usize>(ours: Tensor<D>, reference: Tensor<D>) -> f32 {
    let scale = reference.clone().abs().max().into_scalar::<f32>().max(1e-6);
    (ours - reference).abs().max().into_scalar::<f32>() / scale
}
