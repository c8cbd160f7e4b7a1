//! The model registry: one enum of configs (the TOML `model.kind`), one enum of built modules
//! (what the trainer holds), and the small trait through which the trainer meets any model.

pub mod alexnet;
pub mod charlm;
pub mod cnn;
pub mod googlenet;
pub mod knn;
pub mod lenet;
pub mod linear;
pub mod mlp;
pub mod recurrent;
pub mod resnet;
pub mod vgg;

use burn::nn::{loss::CrossEntropyLossConfig, Initializer, Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{section, ConfigError, Invalid, Source};
use crate::summary::LayerSummary;

pub use alexnet::{AlexNet, AlexNetConfig, AlexNetVariant};
pub use charlm::{CharLm, CharLmConfig};
pub use googlenet::{GoogLeNet, GoogLeNetConfig};
pub use knn::{KnnClassifier, KnnConfig};
pub use lenet::{LeNet5, LeNet5Config};
pub use linear::{
    LinearLoss, LogisticConfig, LogisticRegression, SoftmaxConfig, SoftmaxRegression,
};
pub use mlp::{Mlp, MlpConfig};
pub use recurrent::{RecurrentClassifier, RecurrentConfig};
pub use resnet::{ResNet, ResNetConfig};
pub use vgg::{Vgg, VggConfig};

/// What the data hands a model: the image shape and the number of classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInput {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub num_classes: usize,
}

impl ModelInput {
    pub fn flat_size(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// How fresh weights are drawn (the notes' choices); biases start at zero except for `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// Burn's (and PyTorch's) default: uniform in +-1/sqrt(fan_in), biases too.
    Default,
    /// Xavier/Glorot uniform: variance 2 / (fan_in + fan_out).
    Xavier,
    /// He/Kaiming normal: variance 2 / fan_in.
    He,
    /// Gaussian with the config's `init_std`.
    Normal,
}

/// A fully connected layer initialized as `init` says.
pub fn linear_layer(
    d_in: usize,
    d_out: usize,
    init: Init,
    init_std: f64,
    device: &Device,
) -> Linear {
    let initializer = match init {
        Init::Default => return LinearConfig::new(d_in, d_out).init(device),
        Init::Xavier => Initializer::XavierUniform { gain: 1.0 },
        Init::He => Initializer::KaimingNormal {
            gain: 2f64.sqrt(),
            fan_out_only: false,
        },
        Init::Normal => Initializer::Normal {
            mean: 0.0,
            std: init_std,
        },
    };
    let mut layer = LinearConfig::new(d_in, d_out)
        .with_initializer(initializer)
        .init(device);
    layer.bias = Some(Initializer::Zeros.init_with([d_out], Some(d_in), Some(d_out), device));
    layer
}

/// Every model family zoo can build, as the experiment file names it (`model.kind`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelConfig {
    Knn(KnnConfig),
    Softmax(SoftmaxConfig),
    Logistic(LogisticConfig),
    Mlp(MlpConfig),
    #[serde(rename = "lenet5")]
    LeNet5(LeNet5Config),
    /// A recurrent sequence classifier (LSTM, GRU or plain RNN cells: `cell`).
    Lstm(RecurrentConfig),
    /// The character-level language model (reads `data.text`).
    CharLm(CharLmConfig),
    #[serde(rename = "alexnet")]
    AlexNet(AlexNetConfig),
    /// ZFNet: the AlexNet family with its own table (`AlexNetConfig::variant`).
    #[serde(rename = "zfnet")]
    ZfNet(AlexNetConfig),
    Vgg(VggConfig),
    #[serde(rename = "googlenet")]
    GoogLeNet(GoogLeNetConfig),
    #[serde(rename = "resnet")]
    ResNet(ResNetConfig),
}

impl ModelConfig {
    pub const KINDS: &'static [&'static str] = &[
        "knn",
        "softmax",
        "logistic",
        "mlp",
        "lenet5",
        "lstm",
        "char-lm",
        "alexnet",
        "zfnet",
        "vgg",
        "googlenet",
        "resnet",
    ];

    /// Reads the family `kind` from the rest of `[model]`; `None` when the kind is unknown.
    pub(crate) fn from_table(
        kind: &str,
        value: toml::Value,
        src: &Source,
    ) -> Option<Result<Self, ConfigError>> {
        Some(match kind {
            "knn" => section(value, "model", src).map(ModelConfig::Knn),
            "softmax" => section(value, "model", src).map(ModelConfig::Softmax),
            "logistic" => section(value, "model", src).map(ModelConfig::Logistic),
            "mlp" => section(value, "model", src).map(ModelConfig::Mlp),
            "lenet5" => section(value, "model", src).map(ModelConfig::LeNet5),
            "lstm" => section(value, "model", src).map(ModelConfig::Lstm),
            "char-lm" => section(value, "model", src).map(ModelConfig::CharLm),
            "alexnet" => section(value, "model", src).map(ModelConfig::AlexNet),
            "zfnet" => section::<AlexNetConfig>(value, "model", src).map(|c| {
                ModelConfig::ZfNet(AlexNetConfig {
                    variant: AlexNetVariant::Zfnet,
                    ..c
                })
            }),
            "vgg" => section(value, "model", src).map(ModelConfig::Vgg),
            "googlenet" => section(value, "model", src).map(ModelConfig::GoogLeNet),
            "resnet" => section(value, "model", src).map(ModelConfig::ResNet),
            _ => return None,
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Knn(_) => "knn",
            ModelConfig::Softmax(_) => "softmax",
            ModelConfig::Logistic(_) => "logistic",
            ModelConfig::Mlp(_) => "mlp",
            ModelConfig::LeNet5(_) => "lenet5",
            ModelConfig::Lstm(_) => "lstm",
            ModelConfig::CharLm(_) => "char-lm",
            ModelConfig::AlexNet(_) => "alexnet",
            ModelConfig::ZfNet(_) => "zfnet",
            ModelConfig::Vgg(_) => "vgg",
            ModelConfig::GoogLeNet(_) => "googlenet",
            ModelConfig::ResNet(_) => "resnet",
        }
    }

    /// Checks the model's own keys against the input the data will give it.
    pub fn validate(&self, input: &ModelInput) -> Result<(), Invalid> {
        match self {
            ModelConfig::Knn(c) => c.validate(input),
            ModelConfig::Softmax(c) => c.validate(input),
            ModelConfig::Logistic(c) => c.validate(input),
            ModelConfig::Mlp(c) => c.validate(input),
            ModelConfig::LeNet5(c) => c.validate(input),
            ModelConfig::Lstm(c) => c.validate(input),
            ModelConfig::CharLm(c) => c.validate(),
            ModelConfig::AlexNet(c) | ModelConfig::ZfNet(c) => c.validate(input),
            ModelConfig::Vgg(c) => c.validate(input),
            ModelConfig::GoogLeNet(c) => c.validate(input),
            ModelConfig::ResNet(c) => c.validate(input),
        }
    }

    /// Builds the image network with fresh weights. kNN has none (it is fitted from data,
    /// `KnnConfig::fit`) and the char-lm reads text (`CharLmConfig::init`): callers branch on
    /// those two before calling this.
    pub fn init(&self, input: &ModelInput, device: &Device) -> Model {
        match self {
            ModelConfig::Knn(_) => {
                panic!("kNN stores its training data: build it with KnnConfig::fit")
            }
            ModelConfig::Softmax(c) => Model::Softmax(c.init(input, device)),
            ModelConfig::Logistic(c) => Model::Logistic(c.init(input, device)),
            ModelConfig::Mlp(c) => Model::Mlp(c.init(input, device)),
            ModelConfig::LeNet5(c) => Model::LeNet5(c.init(input, device)),
            ModelConfig::Lstm(c) => Model::Recurrent(c.init(input, device)),
            ModelConfig::CharLm(_) => {
                panic!("the char-lm reads characters, not images: build it with CharLmConfig::init")
            }
            ModelConfig::AlexNet(c) | ModelConfig::ZfNet(c) => {
                Model::AlexNet(c.init(input, device))
            }
            ModelConfig::Vgg(c) => Model::Vgg(c.init(input, device)),
            ModelConfig::GoogLeNet(c) => Model::GoogLeNet(c.init(input, device)),
            ModelConfig::ResNet(c) => Model::ResNet(c.init(input, device)),
        }
    }

    /// The per-layer table of shapes, parameters and multiply-accumulates, from the notes' formulas.
    pub fn layers(&self, input: &ModelInput) -> Vec<LayerSummary> {
        match self {
            ModelConfig::Knn(c) => c.layers(input),
            ModelConfig::Softmax(c) => c.layers(input),
            ModelConfig::Logistic(c) => c.layers(input),
            ModelConfig::Mlp(c) => c.layers(input),
            ModelConfig::LeNet5(c) => c.layers(input),
            ModelConfig::Lstm(c) => c.layers(input),
            ModelConfig::CharLm(c) => c.layers(input.num_classes, input.height),
            ModelConfig::AlexNet(c) | ModelConfig::ZfNet(c) => c.layers(input),
            ModelConfig::Vgg(c) => c.layers(input),
            ModelConfig::GoogLeNet(c) => c.layers(input),
            ModelConfig::ResNet(c) => c.layers(input),
        }
    }
}

/// How the trainer sees a model: images in, class scores out, and the loss to minimize.
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
        main_head_loss(self, images, targets)
    }

    /// The loss reported at evaluation; `None` for models that minimize none (kNN).
    fn eval_loss(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Option<Tensor<1>> {
        Some(self.loss(logits, targets))
    }
}

/// `logits` and `loss` on one batch: the training loss of every model without extra heads.
fn main_head_loss<M: ImageClassifier + ?Sized>(
    model: &M,
    images: Tensor<4>,
    targets: Tensor<1, Int>,
) -> (Tensor<2>, Tensor<1>) {
    let logits = model.logits(images);
    let loss = model.loss(logits.clone(), targets);
    (logits, loss)
}

/// A built model of any family.
#[derive(Module, Debug)]
pub enum Model {
    Softmax(SoftmaxRegression),
    Logistic(LogisticRegression),
    Mlp(Mlp),
    LeNet5(LeNet5),
    Recurrent(RecurrentClassifier),
    AlexNet(AlexNet),
    Vgg(Vgg),
    GoogLeNet(GoogLeNet),
    ResNet(ResNet),
}

impl ImageClassifier for Model {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Model::Softmax(m) => m.forward(images),
            Model::Logistic(m) => m.forward(images),
            Model::Mlp(m) => m.forward(images),
            Model::LeNet5(m) => m.forward(images),
            Model::Recurrent(m) => m.forward(images),
            Model::AlexNet(m) => m.forward(images),
            Model::Vgg(m) => m.forward(images),
            Model::GoogLeNet(m) => m.forward(images),
            Model::ResNet(m) => m.forward(images),
        }
    }

    fn loss(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        match self {
            Model::Softmax(m) => m.loss(logits, targets),
            Model::Logistic(m) => m.loss(logits, targets),
            _ => cross_entropy(logits, targets),
        }
    }

    fn training_loss(&self, images: Tensor<4>, targets: Tensor<1, Int>) -> (Tensor<2>, Tensor<1>) {
        match self {
            Model::GoogLeNet(m) => m.training_loss(images, targets),
            _ => main_head_loss(self, images, targets),
        }
    }
}

/// Softmax cross-entropy over `[batch, classes]` scores, the default training loss.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits, targets)
}
