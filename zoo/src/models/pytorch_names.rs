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
    /// One direction of one of Burn's recurrent layers at `zoo`, whose gates are separate
    /// linear maps; PyTorch stacks them: `{torch}.weight_ih_l{layer}{_reverse}` and so on.
    Cell {
        zoo: String,
        torch: String,
        layer: usize,
        reverse: bool,
        /// Burn's gate modules in the order PyTorch stacks them.
        gates: &'static [&'static str],
    },
}

/// One PyTorch tensor and the zoo tensors it holds, stacked on the first dimension in this
/// order (one tensor, except for a recurrent cell's gates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorLink {
    pub torch: String,
    pub zoo: Vec<String>,
}

/// Why a model's tensors could not all be named: a gap or an overlap in its family's
/// `pytorch_layout`.
#[derive(Debug, thiserror::Error)]
pub enum Unnamed {
    #[error("no PyTorch name for zoo's tensor {0} (a gap in its family's pytorch_layout)")]
    Missing(String),
    #[error("zoo's tensors {0} and {1} both have the PyTorch name {2}")]
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

    /// One direction of a recurrent layer at `zoo`, whose gate modules are `gates` in
    /// PyTorch's stacking order: PyTorch's layer `layer` of the `nn.LSTM`/`nn.GRU`/`nn.RNN` at
    /// `torch` (its `_reverse` tensors when `reverse`).
    pub fn cell(
        mut self,
        zoo: impl Into<String>,
        torch: impl Into<String>,
        layer: usize,
        reverse: bool,
        gates: &'static [&'static str],
    ) -> Self {
        self.links.push(Link::Cell {
            zoo: zoo.into(),
            torch: torch.into(),
            layer,
            reverse,
            gates,
        });
        self
    }

    /// The PyTorch tensors of a model whose tensors are `zoo_names`, in the order of
    /// `zoo_names`' first tensor of each.
    pub fn tensors(&self, zoo_names: &[String]) -> Result<Vec<TensorLink>, Unnamed> {
        // Each PyTorch name with its zoo tensors and their positions in its stack.
        let mut groups: Vec<(String, Vec<(usize, &String)>)> = Vec::new();
        let mut group_of: HashMap<String, usize> = HashMap::new();
        for name in zoo_names {
            let (torch, position) = self.torch_name(name)?;
            let group = *group_of.entry(torch.clone()).or_insert_with(|| {
                groups.push((torch.clone(), Vec::new()));
                groups.len() - 1
            });
            let members = &mut groups[group].1;
            // Only a cell's gates share a name, each at its own position in the stack.
            if let Some((_, other)) = members.iter().find(|(p, _)| *p == position) {
                return Err(Unnamed::Shared((*other).clone(), name.clone(), torch));
            }
            members.push((position, name));
        }
        let links = groups.into_iter().map(|(torch, mut members)| {
            // A cell's gates stack in PyTorch's order, whatever order Burn visits them in.
            members.sort_by_key(|(position, _)| *position);
            let zoo = members.into_iter().map(|(_, name)| name.clone()).collect();
            TensorLink { torch, zoo }
        });
        Ok(links.collect())
    }

    /// PyTorch's name for zoo's tensor `name`, and its position among the stacked gates.
    fn torch_name(&self, name: &str) -> Result<(String, usize), Unnamed> {
        for link in &self.links {
            let Link::Cell {
                zoo,
                torch,
                layer,
                reverse,
                gates,
            } = link
            else {
                continue;
            };
            let Some(rest) = strip(name, zoo) else {
                continue;
            };
            // `{gate}.{input|hidden}_transform.{weight|bias}`
            let parts: Vec<&str> = rest.split('.').collect();
            let [gate, transform, param] = parts[..] else {
                return Err(Unnamed::Missing(name.into()));
            };
            let position = gates
                .iter()
                .position(|g| *g == gate)
                .ok_or_else(|| Unnamed::Missing(name.into()))?;
            let side = match transform {
                "input_transform" => "ih",
                "hidden_transform" => "hh",
                _ => return Err(Unnamed::Missing(name.into())),
            };
            let suffix = if *reverse { "_reverse" } else { "" };
            let torch_name = format!("{param}_{side}_l{layer}{suffix}");
            return Ok((join(torch, &torch_name), position));
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
            Some((_, torch, rest)) => Ok((join(torch, rest), 0)),
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
    fn lstm_gates_stack_in_pytorch_order() {
        let lstm = &["input_gate", "forget_gate", "cell_gate", "output_gate"];
        let layout = PytorchLayout::default().cell("layers.0.reverse", "rnn", 0, true, lstm);
        let gates = ["output_gate", "input_gate", "cell_gate", "forget_gate"];
        let zoo: Vec<String> = gates
            .iter()
            .map(|g| format!("layers.0.reverse.{g}.hidden_transform.weight"))
            .collect();
        let links = layout.tensors(&zoo).unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].torch, "rnn.weight_hh_l0_reverse");
        let order: Vec<&str> = links[0]
            .zoo
            .iter()
            .map(|n| n.split('.').nth(3).unwrap())
            .collect();
        assert_eq!(
            order,
            ["input_gate", "forget_gate", "cell_gate", "output_gate"]
        );
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
