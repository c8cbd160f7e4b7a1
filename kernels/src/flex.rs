//! Flex tensors as f32 slices, for every kernel of ours: which tensors our ops take, and the
//! conversions between Flex's tensors and the slices the kernels loop over.

use burn::backend::flex::FlexTensor;
use burn::backend::{DType, DispatchDevice};
use burn::tensor::{Tensor, TensorData};

/// Whether `tensor` lives on Flex (with or without autodiff) in f32, where our ops run.
pub(crate) fn on_flex_f32<const D: usize>(tensor: &Tensor<D>) -> bool {
    let on_flex = matches!(
        tensor.device().as_dispatch().clone().inner(),
        DispatchDevice::Flex(_)
    );
    on_flex && tensor.dtype() == DType::F32
}

/// `tensor` itself when contiguous, else a contiguous copy of it (of a strided view).
pub(crate) fn contiguous(tensor: FlexTensor) -> FlexTensor {
    match tensor.as_slice::<f32>() {
        Some(_) => tensor,
        None => tensor.to_contiguous(),
    }
}

/// The f32 values of a contiguous tensor (`on_flex_f32` routes only f32 to our ops).
pub(crate) fn values(tensor: &FlexTensor) -> &[f32] {
    tensor
        .as_slice::<f32>()
        .expect("our ops run on contiguous f32 tensors")
}

/// A Flex tensor of `shape` holding `values`.
pub(crate) fn tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// The f32 values of `tensor` to overwrite in place: its own storage where no other tensor
/// shares it, else a copy (Flex's copy on write); a strided view is made contiguous first.
pub(crate) fn values_mut(tensor: &mut FlexTensor) -> &mut [f32] {
    match tensor.layout().contiguous_offsets() {
        Some((start, end)) => &mut tensor.storage_mut::<f32>()[start..end],
        None => {
            *tensor = tensor.to_contiguous();
            values_mut(tensor)
        }
    }
}
