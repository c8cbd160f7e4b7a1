//! PyTorch's names for a model's tensors: torchvision's layout for the families it ships
//! (AlexNet, VGG, GoogLeNet, ResNet), the `Rows` module of the README for recurrent
//! classifiers, and zoo's own module paths for the rest. Each family says which of its layers
//! is which PyTorch layer (`ImageFamily::pytorch_layout`); `zoo import` and `zoo export` read
//! and write through it.
//!
//! Zoo's tensor names here are Burn's module paths without enum variants, with PyTorch's
//! parameter names (a batch norm's `weight`/`bias`, not `gamma`/`beta`) and PyTorch's
//! shapes (a linear layer's weight is `[out, in]`), as burn-store's PyTorch adapters give them.

use std::collections::HashMap;

/// Where one of zoo's layers lives in PyTorch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    /// Every tensor `{zoo}.{rest}` is `{torch}.{rest}`; an empty `zoo` prefix matches every
    /// name (and an empty `torch` prefix adds none).
    Layer { zoo: String, torch: String },
    /// One direction of a recurrent layer at `zoo`, whose `{zoo}.weight_ih` is PyTorch's
    /// `{torch}.weight_ih_l{layer}{_reverse}`, and so on for `weight_hh` and the biases.
    Cell {
        zoo: String,
        torch: String,
        layer: usize,
        reverse: bool,
    },
}

/// One PyTorch tensor and the zoo tensor it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorLink {
    pub torch: String,
    pub zoo: String,
}

/// Why a model's tensors could not all be named: a gap or an overlap in its family's
/// `pytorch_layout`.
#[derive(Debug, thiserror::Error)]
pub enum Unnamed {
    #[error("zoo has no PyTorch name for its tensor {0}; this is a bug in zoo, please report it")]
    Missing(String),
    #[error("zoo's tensors {0} and {1} both have the PyTorch name {2}; this is a bug in zoo, please report it")]
    Shared(String, String, String),
}

/// PyTorch's names for the layers of one model, as its family declares them.
#[derive(Debug, Clone, Default)]
pub struct PytorchLayout {
    links: Vec<Link>,
}

impl PytorchLayout {
    /// Every tensor keeps zoo's path (the families PyTorch has no standard module for).
    pub fn same_paths() -> Self {
        Self::default().layer("", "")
    }

    /// The layer at zoo's path `zoo` is PyTorch's `torch`; longer zoo paths win over shorter.
    pub fn layer(mut self, zoo: impl Into<String>, torch: impl Into<String>) -> Self {
        self.links.push(Link::Layer {
            zoo: zoo.into(),
            torch: torch.into(),
        });
        self
    }

    /// One direction of a recurrent layer at `zoo`: PyTorch's layer `layer` of the
    /// `nn.LSTM`/`nn.GRU`/`nn.RNN` at `torch` (its `_reverse` tensors when `reverse`).
    pub fn cell(
        mut self,
        zoo: impl Into<String>,
        torch: impl Into<String>,
        layer: usize,
        reverse: bool,
    ) -> Self {
        self.links.push(Link::Cell {
            zoo: zoo.into(),
            torch: torch.into(),
            layer,
            reverse,
        });
        self
    }

    /// The PyTorch tensors of a model whose tensors are `zoo_names`, in their order.
    pub fn tensors(&self, zoo_names: &[String]) -> Result<Vec<TensorLink>, Unnamed> {
        let mut zoo_of: HashMap<String, &String> = HashMap::new();
        let mut links = Vec::with_capacity(zoo_names.len());
        for name in zoo_names {
            let torch = self.torch_name(name)?;
            if let Some(other) = zoo_of.insert(torch.clone(), name) {
                return Err(Unnamed::Shared(other.clone(), name.clone(), torch));
            }
            links.push(TensorLink {
                torch,
                zoo: name.clone(),
            });
        }
        Ok(links)
    }

    /// PyTorch's name for zoo's tensor `name`.
    fn torch_name(&self, name: &str) -> Result<String, Unnamed> {
        for link in &self.links {
            let Link::Cell {
                zoo,
                torch,
                layer,
                reverse,
            } = link
            else {
                continue;
            };
            let Some(param) = strip(name, zoo) else {
                continue;
            };
            if !["weight_ih", "weight_hh", "bias_ih", "bias_hh"].contains(&param) {
                return Err(Unnamed::Missing(name.into()));
            }
            let suffix = if *reverse { "_reverse" } else { "" };
            return Ok(format!("{}_l{layer}{suffix}", join(torch, param)));
        }
        let layer = self
            .links
            .iter()
            .filter_map(|link| match link {
                Link::Layer { zoo, torch } => strip(name, zoo).map(|rest| (zoo, torch, rest)),
                Link::Cell { .. } => None,
            })
            .max_by_key(|(zoo, _, _)| zoo.len());
        match layer {
            Some((_, torch, rest)) => Ok(join(torch, rest)),
            None => Err(Unnamed::Missing(name.into())),
        }
    }
}

/// The rest of `name` after the path `prefix` (all of it for an empty prefix).
fn strip<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(name);
    }
    name.strip_prefix(prefix)?.strip_prefix('.')
}

fn join(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}.{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_longest_zoo_path_wins() {
        let layout = PytorchLayout::same_paths()
            .layer("layer1.0.downsample.conv", "layer1.0.downsample.0")
            .layer("layer1.0.downsample.bn", "layer1.0.downsample.1");
        let links = layout
            .tensors(&names(&[
                "conv1.weight",
                "layer1.0.downsample.conv.weight",
                "layer1.0.downsample.bn.running_mean",
            ]))
            .unwrap();
        let torch: Vec<_> = links.iter().map(|l| l.torch.as_str()).collect();
        assert_eq!(
            torch,
            [
                "conv1.weight",
                "layer1.0.downsample.0.weight",
                "layer1.0.downsample.1.running_mean"
            ]
        );
    }

    #[test]
    fn a_cell_direction_takes_pytorchs_layer_and_reverse_suffix() {
        let layout = PytorchLayout::default()
            .cell("layers.1.forward", "rnn", 1, false)
            .cell("layers.1.reverse", "rnn", 1, true);
        let links = layout
            .tensors(&names(&[
                "layers.1.forward.weight_ih",
                "layers.1.reverse.bias_hh",
            ]))
            .unwrap();
        let torch: Vec<_> = links.iter().map(|l| l.torch.as_str()).collect();
        assert_eq!(torch, ["rnn.weight_ih_l1", "rnn.bias_hh_l1_reverse"]);
        let err = layout
            .tensors(&names(&["layers.1.forward.gate"]))
            .unwrap_err();
        assert!(err.to_string().contains("layers.1.forward.gate"), "{err}");
    }

    #[test]
    fn two_tensors_under_one_name_are_refused() {
        let layout = PytorchLayout::same_paths().layer("fc", "head");
        let err = layout
            .tensors(&names(&["fc.weight", "head.weight"]))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("both have the PyTorch name head.weight"),
            "{err}"
        );
    }

    #[test]
    fn a_tensor_outside_the_layout_is_named_in_the_error() {
        let layout = PytorchLayout::default().layer("fc", "classifier.6");
        let err = layout.tensors(&names(&["head.weight"])).unwrap_err();
        assert!(err.to_string().contains("head.weight"), "{err}");
    }
}
