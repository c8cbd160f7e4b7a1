//! What the registry asks of a model: `ImageClassifier`, how the trainer and the evaluation
//! see an image model, and `ImageFamily`, what a family of them gives the registry.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::DType;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::builder::NetBuilder;
use super::pytorch_names::PytorchLayout;
use crate::input::ModelInput;
use crate::invalid::Invalid;

/// How the trainer and the evaluation see an image model: images in, class scores out, and
/// the loss to minimize.
pub trait ImageClassifier {
    /// # Shapes
    /// - images: `[batch, channels, height, width]`
    /// - output: `[batch, num_classes]` (unnormalized scores)
    fn logits(&self, images: Tensor<4>) -> Tensor<2>;

    /// The training loss over a batch (softmax cross-entropy unless the model says otherwise).
    fn loss(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        cross_entropy(logits, targets)
    }

    /// The main scores and the loss to minimize on a training batch. Models with auxiliary
    /// heads (GoogLeNet) add their losses here; at evaluation only `logits` is used.
    fn training_loss(&self, images: Tensor<4>, targets: Tensor<1, Int>) -> (Tensor<2>, Tensor<1>) {
        let logits = self.logits(images);
        let loss = self.loss(logits.clone(), targets);
        (logits, loss)
    }

    /// The loss reported at evaluation; `None` for models that minimize none (kNN).
    fn eval_loss(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Option<Tensor<1>> {
        Some(self.loss(logits, targets))
    }
}

/// Softmax cross-entropy over `[batch, classes]` scores, the default training loss; in f32
/// whatever the scores' precision (mixed precision).
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let logits = logits.cast(DType::F32);
    CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits, targets)
}

/// What a family of trainable image classifiers gives the registry.
pub trait ImageFamily: Clone + std::fmt::Debug + Serialize + DeserializeOwned {
    /// The `model.kind` names it builds; a config read as one writes it back (`kind`).
    const KINDS: &'static [&'static str];
    /// Earlier names of `KINDS[0]`, still read so that old configs and runs load.
    const ALIASES: &'static [&'static str] = &[];
    type Module: ImageClassifier;

    /// The config as read under `kind` (one of `KINDS` or `ALIASES`).
    fn read_as(self, _kind: &str) -> Self {
        self
    }

    /// The kind this config is written back as.
    fn kind(&self) -> &'static str {
        Self::KINDS[0]
    }

    /// Checks the family's own keys against the input the data gives it; an input too small
    /// for the network is found when it is built.
    fn validate(&self, input: &ModelInput) -> Result<(), Invalid>;

    /// Builds the network with fresh weights, every layer through `b` (which writes the table).
    fn build(&self, input: &ModelInput, b: &mut NetBuilder) -> Self::Module;

    /// PyTorch's name for each layer of the network `build` makes (torchvision's layout for
    /// the families it ships): what `zoo import` reads and `zoo export` writes.
    fn pytorch_layout(&self, input: &ModelInput) -> PytorchLayout;
}
