//! tanh and sigmoid as single ops on Flex: one vectorized pass (`math`) over the tensor,
//! split among rayon's threads, and a backward from the saved output (1 - y^2, y (1 - y))
//! instead of Burn's, which calls libm per element and recomputes the function backward.
//! Other backends run Burn's own.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::{activation, Tensor};
use rayon::prelude::*;

use crate::flex::{contiguous, on_flex_f32, tensor, values};
use crate::math;

/// Elements per rayon task: below this a pass is not worth a thread hand-off.
const CHUNK: usize = 1 << 14;

#[backend_extension(Flex, Autodiff)]
pub trait ActivationOps: Backend {
    fn fast_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
    fn fast_sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// tanh, elementwise.
///
/// # Shapes
/// - x: any; output: the same
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex_f32(&x) {
        return activation::tanh(x);
    }
    Tensor::from_dispatch(<Dispatch as ActivationOps>::fast_tanh(x.into_dispatch()))
}

/// The logistic sigmoid, elementwise.
///
/// # Shapes
/// - x: any; output: the same
pub fn sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex_f32(&x) {
        return activation::sigmoid(x);
    }
    Tensor::from_dispatch(<Dispatch as ActivationOps>::fast_sigmoid(x.into_dispatch()))
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tanh,
    Sigmoid,
}

/// `in_place` over every element of a copy of `x`, in parallel chunks.
fn map(x: FlexTensor, in_place: fn(&mut [f32])) -> FlexTensor {
    let x = contiguous(x);
    let input = values(&x);
    let mut out = vec![0.0f32; input.len()];
    out.par_chunks_mut(CHUNK)
        .zip(input.par_chunks(CHUNK))
        .for_each(|(out, input)| {
            out.copy_from_slice(input);
            in_place(out);
        });
    tensor(out, x.layout().shape())
}

fn forward(kind: Kind, x: FlexTensor) -> FlexTensor {
    match kind {
        Kind::Tanh => map(x, math::tanh_in_place),
        Kind::Sigmoid => map(x, math::sigmoid_in_place),
    }
}

/// The input's gradient from the output `y` and the output's gradient, in one pass.
fn backward(kind: Kind, y: &FlexTensor, grad: FlexTensor) -> FlexTensor {
    let grad = contiguous(grad);
    let (y_values, g) = (values(y), values(&grad));
    let mut out = vec![0.0f32; g.len()];
    out.par_chunks_mut(CHUNK)
        .zip(y_values.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
        .for_each(|(out, (y, g))| match kind {
            Kind::Tanh => {
                for ((o, y), g) in out.iter_mut().zip(y).zip(g) {
                    *o = g * (1.0 - y * y);
                }
            }
            Kind::Sigmoid => {
                for ((o, y), g) in out.iter_mut().zip(y).zip(g) {
                    *o = g * y * (1.0 - y);
                }
            }
        });
    tensor(out, y.layout().shape())
}

impl ActivationOps for Flex {
    fn fast_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        forward(Kind::Tanh, x)
    }

    fn fast_sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self> {
        forward(Kind::Sigmoid, x)
    }
}

#[derive(Debug)]
struct FromOutput(Kind);

impl Backward<Flex, 1> for FromOutput {
    /// The op's output.
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        if let [Some(parent)] = &ops.parents {
            grads.register::<Flex>(parent.id, backward(self.0, &ops.state, grad));
        }
    }
}

fn autodiff_op<C: CheckpointStrategy>(
    kind: Kind,
    x: FloatTensor<Autodiff<Flex, C>>,
) -> FloatTensor<Autodiff<Flex, C>> {
    let nodes = [x.node()];
    let x = x.into_primitive();
    match FromOutput(kind)
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let y = forward(kind, x);
            prep.finish(y.clone(), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(kind, x)),
    }
}

impl<C: CheckpointStrategy> ActivationOps for Autodiff<Flex, C> {
    fn fast_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        autodiff_op::<C>(Kind::Tanh, x)
    }

    fn fast_sigmoid(x: FloatTensor<Self>) -> FloatTensor<Self> {
        autodiff_op::<C>(Kind::Sigmoid, x)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    #[test]
    fn flex_tanh_and_sigmoid_match_burns_with_gradients_from_the_output() {
        let device = Device::flex().autodiff();
        // Odd sizes, and one above the parallel chunk.
        for shape in [[1, 1], [7, 13], [3, 40_001]] {
            let x =
                Tensor::<2>::random(shape, Distribution::Normal(0.0, 3.0), &device).require_grad();
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
                let weights = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
                let ours = x.grad(&(ours * weights.clone()).sum().backward()).unwrap();
                let burns = x.grad(&(burns * weights.clone()).sum().backward()).unwrap();
                // Absolute, on the weights' scale: where every x saturates, both gradients are
                // tiny and their relative gap says nothing.
                let gap = (ours - burns).abs().max().into_scalar::<f32>();
                let scale = weights.abs().max().into_scalar::<f32>();
                assert!(gap < 2e-6 * scale, "gradients differ by {gap}");
            }
        }
    }
}
