//! The model registry. Three kinds of thing: trainable image classifiers (the families listed
//! once in `image_families!` below), the fitted kNN, and the character-level language model.
//! An image family is one file here plus one line in that list: its config type implements
//! `ImageFamily` (kind names, validation, builder), and the compiler holds it to all of it.

pub mod builder;
pub mod charlm;
pub mod cnn;
pub mod family;
pub mod knn;
pub mod pytorch_names;
#[cfg(test)]
mod testing;

use burn::prelude::*;
use serde::{Serialize, Serializer};

pub use crate::input::ModelInput;
use crate::invalid::Invalid;
use crate::summary::Summary;
pub use builder::{batch_norm_f32, ConvShape, Init, NetBuilder};
pub use family::{cross_entropy, ImageClassifier, ImageFamily};
pub use pytorch_names::{PytorchLayout, TensorLink};

pub use charlm::{CharLm, CharLmConfig};
pub use knn::{KnnClassifier, KnnConfig};

/// A `[model]` table with its kind first, as the experiment file writes it.
#[derive(Serialize)]
struct Tagged<'a, T> {
    kind: &'static str,
    #[serde(flatten)]
    config: &'a T,
}

/// Why `[model]` did not read as its family's config (`config` locates it in the file).
pub type ReadError = serde_path_to_error::Error<toml::de::Error>;

/// `table` as family `T`'s config, when `kind` is one of its names.
fn read<T: ImageFamily>(kind: &str, table: &toml::Value) -> Option<Result<T, ReadError>> {
    let known = T::KINDS.contains(&kind) || T::ALIASES.contains(&kind);
    known.then(|| serde_path_to_error::deserialize(table.clone()).map(|c: T| c.read_as(kind)))
}

/// The registry: declares the config and module enums over the families and dispatches to them.
macro_rules! image_families {
    ($($family:ident($module:ident::$config:ident)),+ $(,)?) => {
        $(pub mod $module;)+
        $(pub use $module::$config;)+

        /// The config of a trainable image classifier, of any registered family.
        #[derive(Debug, Clone)]
        pub enum ImageModelConfig {
            $($family($config),)+
        }

        /// A built image classifier of any registered family.
        // Burn's Module derive takes the networks as they are, not boxed; a run holds one.
        #[allow(clippy::large_enum_variant)]
        #[derive(Module, Debug)]
        pub enum ImageModel {
            $($family(<$config as ImageFamily>::Module),)+
        }

        impl ImageModelConfig {
            /// The kinds of every family, in registry order.
            pub fn kinds() -> Vec<&'static str> {
                [$(<$config as ImageFamily>::KINDS),+].concat()
            }

            /// Reads the rest of `[model]` as family `kind`; `None` when no family has that kind.
            pub fn read(kind: &str, table: toml::Value) -> Option<Result<Self, ReadError>> {
                $(if let Some(read) = read::<$config>(kind, &table) {
                    return Some(read.map(Self::$family));
                })+
                None
            }

            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$family(c) => c.kind(),)+
                }
            }

            pub fn validate(&self, input: &ModelInput) -> Result<(), Invalid> {
                match self {
                    $(Self::$family(c) => c.validate(input),)+
                }
            }

            /// PyTorch's names for the network's layers (see `pytorch_names`).
            pub fn pytorch_layout(&self, input: &ModelInput) -> PytorchLayout {
                match self {
                    $(Self::$family(c) => c.pytorch_layout(input),)+
                }
            }

            /// The network and its summary table, from one walk; an input too small for the
            /// network's downsampling is an error that names the layer.
            pub fn build(
                &self,
                input: &ModelInput,
                device: &Device,
            ) -> Result<(ImageModel, Summary), Invalid> {
                let mut b = NetBuilder::new(&input.map(), device);
                let model = match self {
                    $(Self::$family(c) => ImageModel::$family(c.build(input, &mut b)),)+
                };
                Ok((model, Summary::new(self.kind(), *input, b.finish()?)))
            }
        }

        impl Serialize for ImageModelConfig {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Self::$family(c) => Tagged { kind: c.kind(), config: c }.serialize(s),)+
                }
            }
        }

        impl ImageClassifier for ImageModel {
            fn logits(&self, images: Tensor<4>) -> Tensor<2> {
                match self {
                    $(Self::$family(m) => m.logits(images),)+
                }
            }

            fn loss(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
                match self {
                    $(Self::$family(m) => m.loss(logits, targets),)+
                }
            }

            fn training_loss(
                &self,
                images: Tensor<4>,
                targets: Tensor<1, Int>,
            ) -> (Tensor<2>, Tensor<1>) {
                match self {
                    $(Self::$family(m) => m.training_loss(images, targets),)+
                }
            }

            fn eval_loss(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Option<Tensor<1>> {
                match self {
                    $(Self::$family(m) => m.eval_loss(logits, targets),)+
                }
            }
        }
    };
}

// One line a family: `Variant(file::Config)` declares the module `models/file.rs` and
// registers its config. The variant names are part of the saved weights' paths: keep them
// when renaming a family.
image_families! {
    Softmax(softmax::SoftmaxConfig),
    Logistic(logistic::LogisticConfig),
    Mlp(mlp::MlpConfig),
    LeNet5(lenet::LeNet5Config),
    Recurrent(recurrent::RecurrentConfig),
    AlexNet(alexnet::AlexNetConfig),
    Vgg(vgg::VggConfig),
    GoogLeNet(googlenet::GoogLeNetConfig),
    ResNet(resnet::ResNetConfig),
}

/// Every model zoo can build, as the experiment file names it (`model.kind`).
#[derive(Debug, Clone)]
pub enum ModelConfig {
    /// A trainable image classifier (`ImageModelConfig::kinds()`).
    Image(ImageModelConfig),
    /// k-nearest neighbours: fitted from the training images, not trained.
    Knn(KnnConfig),
    /// The character-level language model (reads `data.text`).
    CharLm(CharLmConfig),
}

impl ModelConfig {
    /// Every kind an experiment file may name.
    pub fn kinds() -> Vec<&'static str> {
        let mut kinds = vec![KnnConfig::KIND];
        kinds.extend(ImageModelConfig::kinds());
        kinds.push(CharLmConfig::KIND);
        kinds
    }

    /// Reads the rest of `[model]` as `kind`; `None` when the kind is unknown.
    pub fn read(kind: &str, table: toml::Value) -> Option<Result<Self, ReadError>> {
        match kind {
            KnnConfig::KIND => Some(serde_path_to_error::deserialize(table).map(Self::Knn)),
            CharLmConfig::KIND => Some(serde_path_to_error::deserialize(table).map(Self::CharLm)),
            _ => ImageModelConfig::read(kind, table).map(|r| r.map(Self::Image)),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ModelConfig::Image(c) => c.kind(),
            ModelConfig::Knn(_) => KnnConfig::KIND,
            ModelConfig::CharLm(_) => CharLmConfig::KIND,
        }
    }
}

impl Serialize for ModelConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ModelConfig::Image(c) => c.serialize(s),
            ModelConfig::Knn(c) => Tagged {
                kind: KnnConfig::KIND,
                config: c,
            }
            .serialize(s),
            ModelConfig::CharLm(c) => Tagged {
                kind: CharLmConfig::KIND,
                config: c,
            }
            .serialize(s),
        }
    }
}
