//! Dropout on Flex as one op: the mask comes from a counter-based generator (a hash of the
//! element's index under a per-call seed), so it is drawn in parallel, vectorized chunks in
//! one pass and regenerated, not stored, for the backward. Burn's draws a Bernoulli sample per
//! element through a shared generator behind a lock (14 % of the MLP's training). The per-call
//! seed is drawn from the device's generator, so seeding the device (zoo does, per step) fixes
//! every mask: a resumed run draws the masks of the uninterrupted one. Other backends run
//! Burn's.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::nn::Dropout;
use burn::tensor::{Distribution, Int, Tensor};
use rayon::prelude::*;

use crate::flex::{contiguous, on_flex_f32, tensor, values};
use crate::math::simd_fn;

/// Elements per rayon task: below this a pass is not worth a thread hand-off.
const CHUNK: usize = 1 << 14;

#[backend_extension(Flex, Autodiff)]
pub trait DropoutOps: Backend {
    /// `x` with each element kept (and scaled by 1 / keep) with probability `keep`, else 0;
    /// the mask is `Mask { keep, seed }`'s.
    fn fast_dropout(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self>;
}

/// `layer` applied to `x`, as Burn's `Dropout::forward` (the identity unless the layer is
/// training on an autodiff device with a non-zero probability), with our mask on Flex.
///
/// # Shapes
/// - x: any; output: the same
pub fn dropout<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    let training = layer.training.is_enabled() && x.device().is_autodiff() && layer.prob > 0.0;
    if !training || !on_flex_f32(&x) {
        return layer.forward(x);
    }
    let seed = draw_seed(&x);
    let keep = 1.0 - layer.prob;
    Tensor::from_dispatch(<Dispatch as DropoutOps>::fast_dropout(
        x.into_dispatch(),
        keep,
        seed,
    ))
}

/// 64 bits from the device's generator: four uniform 16-bit draws (its integers may be i32).
fn draw_seed<const D: usize>(x: &Tensor<D>) -> u64 {
    let uniform = Distribution::Uniform(0.0, 65536.0);
    let words = Tensor::<1, Int>::random([4], uniform, &x.device())
        .into_data()
        .try_to_vec_as::<i64>()
        .expect("integers read back");
    words
        .iter()
        .fold(0, |seed, &word| (seed << 16) | word as u64)
}

/// Which elements a dropout call keeps: element `i` is kept when `hash(i)` under the call's
/// seed falls below `keep * 2^32`.
#[derive(Debug, Clone, Copy)]
struct Mask {
    threshold: u32,
    seed: [u32; 2],
}

impl Mask {
    fn new(keep: f64, seed: u64) -> Self {
        let threshold = (keep * 4294967296.0).round().min(u32::MAX as f64) as u32;
        Self {
            threshold,
            seed: [seed as u32, (seed >> 32) as u32],
        }
    }

    /// 32 well-mixed bits for element `index`: MurmurHash3's finalizer twice, with half of the
    /// seed mixed in before each round. 32-bit arithmetic, so the loop below vectorizes.
    #[inline(always)]
    fn hash(self, index: u32) -> u32 {
        let x = fmix32(index.wrapping_mul(0x9E37_79B9) ^ self.seed[0]);
        fmix32(x ^ self.seed[1])
    }

    /// `apply` over a whole tensor, in parallel chunks.
    fn apply_all(self, x: &FlexTensor, scale: f32) -> FlexTensor {
        let input = values(x);
        let mut out = vec![0.0f32; input.len()];
        out.par_chunks_mut(CHUNK)
            .zip(input.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(k, (out, input))| apply(self, k * CHUNK, input, scale, out));
        tensor(out, x.layout().shape())
    }
}

simd_fn! {
    /// Writes `scale * input` or 0 for the elements `first..first + input.len()`, as `mask`
    /// keeps them: 8 or 16 hashes at a time where the CPU has AVX2 or AVX-512.
    fn apply(mask: Mask, first: usize, input: &[f32], scale: f32, out: &mut [f32]) {
        for (i, (o, x)) in out.iter_mut().zip(input).enumerate() {
            let kept = mask.hash((first + i) as u32) < mask.threshold;
            *o = if kept { x * scale } else { 0.0 };
        }
    }
}

/// MurmurHash3's 32-bit finalizer: every input bit flips each output bit with probability
/// about one half.
#[inline(always)]
fn fmix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x85EB_CA6B);
    x ^= x >> 13;
    x = x.wrapping_mul(0xC2B2_AE35);
    x ^ (x >> 16)
}

impl DropoutOps for Flex {
    fn fast_dropout(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self> {
        Mask::new(keep, seed).apply_all(&contiguous(x), (1.0 / keep) as f32)
    }
}

/// The backward: the output's gradient through the same mask and scale.
#[derive(Debug)]
struct ThroughMask;

impl Backward<Flex, 1> for ThroughMask {
    /// The mask and the scale.
    type State = (Mask, f32);

    fn backward(self, ops: Ops<(Mask, f32), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        if let [Some(parent)] = &ops.parents {
            let (mask, scale) = ops.state;
            grads.register::<Flex>(parent.id, mask.apply_all(&contiguous(grad), scale));
        }
    }
}

impl<C: CheckpointStrategy> DropoutOps for Autodiff<Flex, C> {
    fn fast_dropout(x: FloatTensor<Self>, keep: f64, seed: u64) -> FloatTensor<Self> {
        let nodes = [x.node()];
        let x = contiguous(x.into_primitive());
        let (mask, scale) = (Mask::new(keep, seed), (1.0 / keep) as f32);
        let y = mask.apply_all(&x, scale);
        match ThroughMask.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((mask, scale), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use super::{apply, Mask};
    use crate::testing::random;

    /// A dropout layer of probability `prob`, training.
    fn dropout_layer(prob: f64) -> burn::nn::Dropout {
        burn::nn::DropoutConfig::new(prob).init()
    }

    /// Burn's dropout keeps each element with probability 1 - p and scales it by 1 / (1 - p); so
    /// does ours (the fraction kept within six standard deviations), and its backward goes
    /// through the forward's mask.
    #[test]
    fn flex_dropout_keeps_scales_and_backpropagates_through_its_mask() {
        let device = Device::flex().autodiff();
        let (prob, shape) = (0.3, [601, 499]);
        let x = random(shape, &device);
        let y = crate::dropout(&dropout_layer(prob), x.clone());
        let weights = Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let grads = (y.clone() * weights.clone()).sum().backward();
        let grad = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let scale = (1.0 / (1.0 - prob)) as f32;
        let [x, y, w] = [x, y, weights].map(|t| t.into_data().try_to_vec::<f32>().unwrap());
        let mut kept = 0;
        for i in 0..x.len() {
            let is_kept = y[i] != 0.0;
            kept += usize::from(is_kept);
            let (expected_y, expected_grad) = match is_kept {
                true => (x[i] * scale, w[i] * scale),
                false => (0.0, 0.0),
            };
            assert_eq!((y[i], grad[i]), (expected_y, expected_grad), "element {i}");
        }
        let n = x.len() as f64;
        let sd = (prob * (1.0 - prob) / n).sqrt();
        let fraction = kept as f64 / n;
        assert!(
            (fraction - (1.0 - prob)).abs() < 6.0 * sd,
            "kept {fraction}"
        );
    }

    /// The vector paths (AVX-512 or AVX2, where the CPU has them) keep the elements that the
    /// hash keeps element by element, from an offset and over a length that fill no vector.
    #[test]
    fn apply_keeps_the_elements_that_the_hash_keeps() {
        for (keep, seed) in [(0.3, 0x0123_4567_89AB_CDEF), (0.9, 7)] {
            let mask = Mask::new(keep, seed);
            let (first, scale) = (1_000_003, (1.0 / keep) as f32);
            let input: Vec<f32> = (1..=1001).map(|k| (k as f32 * 0.731).sin()).collect();
            let mut out = vec![f32::NAN; input.len()];
            apply(mask, first, &input, scale, &mut out);
            for (i, (o, x)) in out.iter().zip(&input).enumerate() {
                let kept = mask.hash((first + i) as u32) < mask.threshold;
                let expected = if kept { x * scale } else { 0.0 };
                assert_eq!(o.to_bits(), expected.to_bits(), "keep {keep}, element {i}");
            }
        }
    }
}
