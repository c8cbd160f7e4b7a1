//! Adam's update as one pass over each parameter on Flex (f32). Burn's `Adam` makes about a
//! dozen passes per parameter, each a single-threaded op that allocates a tensor; ours reads
//! the parameter, its gradient and both moments once, on all threads, and overwrites the
//! parameter and the moments in place. Each element goes through the same f32 operations in
//! the same order as Burn's, so the results are Burn's bits (the test compares bits), and the
//! state is Burn's `AdamState`: checkpoints load either way. Other backends and AMSGrad run
//! Burn's `Adam`.

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};
use rayon::prelude::*;

use crate::flex::{contiguous, on_flex_f32, values, values_mut};
use crate::math::simd_fn;

/// Elements per rayon task: below this a pass is not worth a thread hand-off.
const CHUNK: usize = 1 << 14;

#[backend_extension(Flex)]
pub trait AdamOps: Backend {
    /// One Adam update: `(param, moment_1, moment_2)` after the step from `grad`, the moments
    /// of the previous step (ignored at the first: `scalars.first`) and `scalars`.
    fn adam_update(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        scalars: AdamScalars,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// A step's scalars, each computed as Burn's `Adam` computes it (in f32).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamScalars {
    /// The first step, which has no moments to decay.
    first: bool,
    beta_1: f32,
    beta_2: f32,
    /// `1 - beta_1`, `1 - beta_2`.
    factor_1: f32,
    factor_2: f32,
    /// `sqrt(1 - beta_2^t) / (1 - beta_1^t)`: both bias corrections in one factor.
    combined: f32,
    /// `epsilon * sqrt(1 - beta_2^t)`.
    epsilon: f32,
    lr: f32,
    /// The L2 penalty added to the gradient (Adam's `weight_decay`), if any.
    decay: Option<f32>,
}

impl AdamScalars {
    /// The moments of one element after this step's decay, from its (penalized) gradient `g`.
    #[inline(always)]
    fn decayed(&self, m1: f32, m2: f32, g: f32) -> (f32, f32) {
        (
            m1 * self.beta_1 + g * self.factor_1,
            m2 * self.beta_2 + (g * g) * self.factor_2,
        )
    }

    /// `(parameter, m1, m2)` of one element after the step, from its new moments.
    #[inline(always)]
    fn step(&self, p: f32, m1: f32, m2: f32) -> (f32, f32, f32) {
        let step = (m1 * self.combined) / (m2.sqrt() + self.epsilon);
        (p - step * self.lr, m1, m2)
    }
}

impl AdamOps for Flex {
    fn adam_update(
        mut param: FlexTensor,
        grad: FlexTensor,
        mut moment_1: FlexTensor,
        mut moment_2: FlexTensor,
        scalars: AdamScalars,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        // The update overwrites the parameter and the moments where they are not shared (the
        // optimizer hands over its own), so that nothing is allocated.
        let grad = contiguous(grad);
        let g = values(&grad);
        let (p, m1, m2) = (
            values_mut(&mut param),
            values_mut(&mut moment_1),
            values_mut(&mut moment_2),
        );
        p.par_chunks_mut(CHUNK)
            .zip(m1.par_chunks_mut(CHUNK))
            .zip(m2.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((p, m1), m2), g)| update_chunk(&scalars, p, m1, m2, g));
        (param, moment_1, moment_2)
    }
}

simd_fn! {
    /// The update of every element of one chunk, in place: one loop per case (first step or
    /// not, with or without the L2 penalty) so that none tests its case per element and each
    /// vectorizes. No `mul_add`, so the bits stay Burn's on every path `simd_fn!` compiles.
    fn update_chunk(s: &AdamScalars, p: &mut [f32], m1: &mut [f32], m2: &mut [f32], g: &[f32]) {
        let elements = p.iter_mut().zip(m1.iter_mut()).zip(m2.iter_mut()).zip(g);
        let decay = s.decay.unwrap_or(0.0);
        match (s.first, s.decay.is_some()) {
            (true, false) => elements.for_each(|(((p, m1), m2), &g)| {
                (*p, *m1, *m2) = s.step(*p, g * s.factor_1, (g * g) * s.factor_2);
            }),
            (true, true) => elements.for_each(|(((p, m1), m2), &g)| {
                let g = *p * decay + g;
                (*p, *m1, *m2) = s.step(*p, g * s.factor_1, (g * g) * s.factor_2);
            }),
            (false, false) => elements.for_each(|(((p, m1), m2), &g)| {
                let (a, b) = s.decayed(*m1, *m2, g);
                (*p, *m1, *m2) = s.step(*p, a, b);
            }),
            (false, true) => elements.for_each(|(((p, m1), m2), &g)| {
                let (a, b) = s.decayed(*m1, *m2, *p * decay + g);
                (*p, *m1, *m2) = s.step(*p, a, b);
            }),
        }
    }
}

/// Adam whose update is `AdamOps::adam_update` on Flex, Burn's `Adam` elsewhere: a drop-in
/// for `AdamConfig::init`'s optimizer (wrap it with `ModuleOptimizer::from`).
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: Option<f32>,
    /// Burn's, for the tensors our op does not take.
    burn: Adam,
}

impl FusedAdam {
    /// Adam with these settings (Burn's `AdamConfig` names; no AMSGrad).
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: Option<f32>) -> Self {
        let burn = AdamConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay.map(WeightDecayConfig::new))
            .build();
        Self {
            beta_1,
            beta_2,
            epsilon,
            weight_decay,
            burn,
        }
    }

    /// The scalars of step `time` (1 at the first), as Burn's `Adam` computes them.
    fn scalars(&self, time: usize, lr: LearningRate) -> AdamScalars {
        let time = time as i32;
        let bias_correction_2 = (1.0 - self.beta_2.powi(time)).sqrt();
        AdamScalars {
            first: time == 1,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            factor_1: 1.0 - self.beta_1,
            factor_2: 1.0 - self.beta_2,
            combined: bias_correction_2 / (1.0 - self.beta_1.powi(time)),
            epsilon: self.epsilon * bias_correction_2,
            lr: lr as f32,
            decay: self.weight_decay,
        }
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        // Our op has no autodiff side: a tracked tensor (not what `ModuleOptimizer` hands over)
        // goes to Burn's.
        let ours = on_flex_f32(&tensor) && on_flex_f32(&grad) && !tensor.device().is_autodiff();
        if !ours {
            return self.burn.step(lr, tensor, grad, state);
        }
        // At the first step the moments start as zeros that the update overwrites unread.
        let (time, moment_1, moment_2) = match state.map(|s| s.momentum) {
            Some(m) => (m.time + 1, m.moment_1, m.moment_2),
            None => (1, tensor.zeros_like(), tensor.zeros_like()),
        };
        let (param, moment_1, moment_2) = <Dispatch as AdamOps>::adam_update(
            tensor.into_dispatch(),
            grad.into_dispatch(),
            moment_1.into_dispatch(),
            moment_2.into_dispatch(),
            self.scalars(time, lr),
        );
        let momentum = AdaptiveMomentumState::new(
            time,
            Tensor::from_dispatch(moment_1),
            Tensor::from_dispatch(moment_2),
        );
        (Tensor::from_dispatch(param), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: AdamState<D>, device: &Device) -> AdamState<D> {
        Adam::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// Six steps of both optimizers on the same parameter and gradients: the same bits in the
    /// parameter and both moments at every step, with and without a weight decay, across chunks.
    #[test]
    fn fused_adam_gives_burns_bits() {
        let device = Device::flex();
        for decay in [None, Some(1e-2)] {
            let ours = FusedAdam::new(0.9, 0.999, 1e-8, decay);
            let burns = ours.burn.clone();
            let shape = [3, CHUNK + 17];
            let normal = Distribution::Normal(0.0, 1.0);
            let start = Tensor::<2>::random(shape, normal, &device);
            let (mut p_ours, mut p_burns) = (start.clone(), start);
            let (mut s_ours, mut s_burns) = (None, None);
            for step in 0..6 {
                let grad = Tensor::<2>::random(shape, normal, &device);
                let lr = 1e-3 / (step + 1) as f64;
                (p_ours, s_ours) = ours.step(lr, p_ours, grad.clone(), s_ours);
                (p_burns, s_burns) = burns.step(lr, p_burns, grad, s_burns);
                let (a, b) = (s_ours.clone().unwrap(), s_burns.clone().unwrap());
                assert_eq!(a.momentum.time, b.momentum.time);
                for (name, x, y) in [
                    ("parameter", &p_ours, &p_burns),
                    ("moment 1", &a.momentum.moment_1, &b.momentum.moment_1),
                    ("moment 2", &a.momentum.moment_2, &b.momentum.moment_2),
                ] {
                    let bits = |t: &Tensor<2>| -> Vec<u32> {
                        let values = t.clone().into_data().try_to_vec::<f32>().unwrap();
                        values.iter().map(|v| v.to_bits()).collect()
                    };
                    assert!(
                        bits(x) == bits(y),
                        "{name} differs at step {step} (decay {decay:?})"
                    );
                }
            }
        }
    }

    /// On an autodiff device (tracked tensors, which `ModuleOptimizer` never hands over) the
    /// step is Burn's, not a panic of our op, which has no autodiff side.
    #[test]
    fn fused_adam_on_an_autodiff_device_runs_burns() {
        let device = Device::flex().autodiff();
        let ours = FusedAdam::new(0.9, 0.999, 1e-8, None);
        let normal = Distribution::Normal(0.0, 1.0);
        let param = Tensor::<1>::random([5], normal, &device);
        let grad = Tensor::<1>::random([5], normal, &device);
        let (a, _) = ours.step(1e-3, param.clone(), grad.clone(), None);
        let (b, _) = ours.burn.step(1e-3, param, grad, None);
        assert_eq!(a.into_data(), b.into_data());
    }
}
