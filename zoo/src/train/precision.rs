//! Mixed-precision training (`train.precision = "f16" | "bf16"`), as PyTorch's autocast with
//! a gradient scaler: the weights, the optimizer and its state stay in f32; each step runs the
//! network on a half-precision copy of the weights (a cast on the autodiff graph, so the
//! gradients arrive in f32 at the f32 weights), batch norm and the losses in f32, and for f16
//! a loss scale keeps small gradients from underflowing: a step whose gradients overflow is
//! skipped and the scale halved; after `GROWTH_INTERVAL` good steps it doubles. Here: the half
//! copy and the unscaling; the step is `train::half_precision_step`, the scale `LossScale`.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::DType;

/// Casts every float parameter to `dtype` on the autodiff graph, except batch norm's: its
/// statistics are state shared with the f32 network, and it normalizes in f32.
struct CastWeights {
    dtype: DType,
    /// The container types entered, innermost last.
    containers: Vec<String>,
}

impl ModuleMapper for CastWeights {
    fn enter_module(&mut self, _name: &str, container_type: &str) {
        self.containers.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.containers.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let in_batch_norm = self
            .containers
            .last()
            .is_some_and(|c| c == "Struct:BatchNorm");
        match in_batch_norm {
            true => param,
            false => param.map(|tensor| tensor.cast(self.dtype)),
        }
    }
}

/// The network in `dtype`, its weights cast from `model`'s (gradients flow back to them).
pub fn cast_weights<M: Module>(model: &M, dtype: DType) -> M {
    model.clone().map(&mut CastWeights {
        dtype,
        containers: Vec::new(),
    })
}

/// Multiplies every gradient by `factor` and says whether all are finite.
struct Unscale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
    /// The sum of every gradient's absolute values: finite only if each gradient is.
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for Unscale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return;
        };
        let grad = grad.mul_scalar(self.factor);
        let size = grad.clone().abs().sum();
        self.total = Some(match self.total.take() {
            Some(total) => total + size,
            None => size,
        });
        self.grads.register(param.id, grad);
    }
}

/// Multiplies every gradient of `model`'s parameters in `grads` by `factor`; whether all
/// are finite.
pub fn unscale<M: Module>(grads: &mut GradientsParams, model: &M, factor: f64) -> bool {
    let mut unscale = Unscale {
        grads,
        factor,
        total: None,
    };
    model.visit(&mut unscale);
    unscale
        .total
        .is_none_or(|total| total.into_scalar::<f64>().is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::Precision;
    use crate::train::history::{LossScale, GROWTH_INTERVAL};

    #[test]
    fn the_loss_scale_halves_at_an_overflow_and_doubles_after_2000_good_steps() {
        let mut scale = LossScale::default();
        scale.observe(false);
        assert_eq!(scale.scale, 32768.0);
        for _ in 0..GROWTH_INTERVAL - 1 {
            scale.observe(true);
        }
        assert_eq!(scale.scale, 32768.0);
        scale.observe(true);
        assert_eq!((scale.scale, scale.good_steps), (65536.0, 0));
    }

    #[derive(Module, Debug)]
    struct Net {
        linear: burn::nn::Linear,
        norm: burn::nn::BatchNorm,
    }

    /// The half copy computes in f16 but batch norm, and the gradients of its loss arrive in
    /// f32 at the f32 weights, those of batch norm included.
    #[test]
    fn the_half_copy_casts_all_but_batch_norm_and_gradients_reach_the_f32_weights() {
        let device = Device::flex().autodiff();
        let net = Net {
            linear: burn::nn::LinearConfig::new(3, 4).init(&device),
            norm: burn::nn::BatchNormConfig::new(4).init(&device),
        };
        let half = cast_weights(&net, DType::F16);
        assert_eq!(half.linear.weight.val().dtype(), DType::F16);
        assert_eq!(half.norm.gamma.val().dtype(), DType::F32);
        assert_eq!(half.norm.running_mean.value().dtype(), DType::F32);
        assert_eq!(net.linear.weight.val().dtype(), DType::F32);
        let x = Tensor::<2>::random([5, 3], burn::tensor::Distribution::Default, &device);
        let y = crate::models::batch_norm_f32(&half.norm, half.linear.forward(x.cast(DType::F16)));
        assert_eq!(y.dtype(), DType::F16);
        let loss = y.cast(DType::F32).powf_scalar(2.0).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let weight = grads
            .get::<2>(net.linear.weight.id)
            .expect("the weight's gradient");
        let gamma = grads.get::<1>(net.norm.gamma.id).expect("gamma's gradient");
        assert_eq!((weight.dtype(), gamma.dtype()), (DType::F32, DType::F32));
        assert!(weight.abs().sum().into_scalar::<f32>() > 0.0);
    }

    #[test]
    fn cpu_backends_and_missing_types_are_refused_with_the_key() {
        let flex = Device::flex();
        let err = Precision::F16.check("flex", &flex).unwrap_err();
        assert!(
            err.contains("train.precision") && err.contains("GPU backend"),
            "{err}"
        );
        assert!(Precision::F32.check("flex", &flex).is_ok());
    }
}
