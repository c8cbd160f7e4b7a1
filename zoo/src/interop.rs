//! Weights in and out of PyTorch. `load_pytorch` reads a `torch.save(model.state_dict())` file
//! (`.pth`/`.pt`, zip or legacy format) or a `.safetensors` file through burn-store, names every
//! tensor through the family's `PytorchLayout`, checks every key and shape before anything is
//! applied, and loads the weights; `save_pytorch` writes safetensors under PyTorch's names,
//! which `model.load_state_dict(safetensors.torch.load_file(path))` takes as it is.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    bridge, BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
};
use regex::Regex;

use crate::models::pytorch_names::Unnamed;
use crate::models::{PytorchLayout, TensorLink};

/// PyTorch's batch-norm counter, which no layer of zoo's needs.
const BATCHES_TRACKED: &str = "num_batches_tracked";

/// How `load_pytorch` matches a file's keys to the model.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `(pattern, replacement)`: renames the file's keys, in order, before they are matched
    /// (`$1` refers to a group), for layouts other than the family's.
    pub remap: Vec<(Regex, String)>,
    /// Parameters left at their initialization, by PyTorch name or zoo path; the file's
    /// tensors of that name are ignored (a new head for another number of classes).
    pub skip: Vec<Regex>,
}

impl ImportOptions {
    /// Reads `PATTERN=REPLACEMENT` remaps and `PATTERN` skips as the CLI takes them.
    pub fn parse(remap: &[String], skip: &[String]) -> Result<Self, InteropError> {
        let pattern = |text: &str| {
            Regex::new(text).map_err(|e| InteropError::Pattern {
                pattern: text.to_string(),
                message: e.to_string(),
            })
        };
        let remap = remap
            .iter()
            .map(|arg| match arg.split_once('=') {
                Some((from, to)) => Ok((pattern(from)?, to.to_string())),
                None => Err(InteropError::Pattern {
                    pattern: arg.clone(),
                    message: "expected PATTERN=REPLACEMENT".into(),
                }),
            })
            .collect::<Result<_, _>>()?;
        let skip = skip.iter().map(|s| pattern(s)).collect::<Result<_, _>>()?;
        Ok(Self { remap, skip })
    }

    fn skips(&self, link: &TensorLink) -> bool {
        self.skip
            .iter()
            .any(|re| re.is_match(&link.torch) || re.is_match(&link.zoo))
    }

    fn renamed(&self, key: &str) -> String {
        self.remap.iter().fold(key.to_string(), |key, (re, to)| {
            re.replace_all(&key, to.as_str()).into_owned()
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InteropError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("invalid pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
    /// Every missing key, unexpected key and shape mismatch, one per line.
    #[error("{path} does not fit the model ({}; --remap renames keys, --skip leaves parameters at their initialization):\n  {}", count(problems.len(), "problem"), problems.join("\n  "))]
    Mismatch {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error(transparent)]
    Unnamed(#[from] Unnamed),
}

/// `n thing` or `n things`.
fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// PyTorch tensors loaded.
    pub loaded: usize,
    /// PyTorch names of the parameters left at their initialization (`--skip`).
    pub skipped: Vec<String>,
}

/// The PyTorch tensors of `model`, each with its zoo tensor, in the order `zoo export` writes
/// them.
pub fn pytorch_names<M: Module>(
    model: &M,
    layout: &PytorchLayout,
) -> Result<Vec<TensorLink>, Unnamed> {
    Ok(links(model, layout)?.0)
}

/// `pytorch_names`, and zoo's tensors (in PyTorch's parameter names and shapes) by path.
fn links<M: Module>(
    model: &M,
    layout: &PytorchLayout,
) -> Result<(Vec<TensorLink>, BTreeMap<String, PackTensor>), Unnamed> {
    let tensors = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true);
    // Burn visits the fields in declaration order, the order PyTorch writes its layers too.
    let names: Vec<String> = tensors.iter().map(|t| t.name.clone()).collect();
    let by_name = tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
    Ok((layout.tensors(&names)?, by_name))
}

/// Every tensor of a PyTorch state_dict or safetensors file, by key.
fn read_file(path: &Path) -> Result<BTreeMap<String, PackTensor>, InteropError> {
    let read_error = |message: String| InteropError::Read {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(read_error("no such file".into()));
    }
    let safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let tensors = if safetensors {
        SafetensorsStore::from_file(path)
            .get_all_tensors()
            .cloned()
            .map_err(|e| read_error(e.to_string()))?
    } else {
        // The keys as written: burn-store would renumber `features.0, 3, 6` to `0, 1, 2`.
        PytorchStore::from_file(path)
            .map_indices_contiguous(false)
            .get_all_tensors()
            .cloned()
            .map_err(|e| {
                read_error(format!(
                    "not a PyTorch state_dict or .safetensors file ({e})"
                ))
            })?
    };
    Ok(tensors)
}

/// Loads the PyTorch weights in `path` into `model`, whose layers `layout` names. Refuses,
/// listing them all, missing and unexpected keys and shape mismatches; nothing is applied then.
pub fn load_pytorch<M: Module>(
    mut model: M,
    layout: &PytorchLayout,
    path: &Path,
    options: &ImportOptions,
) -> Result<(M, Imported), InteropError> {
    let (links, zoo) = links(&model, layout)?;
    let mut file: BTreeMap<String, PackTensor> = BTreeMap::new();
    for (key, tensor) in read_file(path)? {
        file.insert(options.renamed(&key), tensor);
    }
    let mut problems = Vec::new();
    let mut imported = Imported::default();
    let mut loads = Vec::new();
    for link in &links {
        let skipped = options.skips(link);
        let expected = zoo[&link.zoo].shape.to_vec();
        match (file.remove(&link.torch), skipped) {
            (_, true) => imported.skipped.push(link.torch.clone()),
            (None, false) => problems.push(format!("missing {} {expected:?}", link.torch)),
            (Some(tensor), false) if tensor.shape.to_vec() != expected => problems.push(format!(
                "{}: the file has {:?}, the model expects {expected:?}",
                link.torch,
                tensor.shape.to_vec()
            )),
            (Some(tensor), false) => loads.push((link, tensor)),
        }
    }
    for (key, tensor) in &file {
        let ignored =
            key.ends_with(BATCHES_TRACKED) || options.skip.iter().any(|re| re.is_match(key));
        if !ignored {
            problems.push(format!(
                "unexpected {key} {:?} (no such parameter in the model)",
                tensor.shape.to_vec()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(InteropError::Mismatch {
            path: path.to_path_buf(),
            problems,
        });
    }
    let mut tensors = Vec::new();
    for (link, tensor) in loads {
        let data = bridge::into_data(tensor)
            .map(|d| d.convert::<f32>())
            .map_err(|e| InteropError::Read {
                path: path.to_path_buf(),
                message: format!("{}: {e}", link.torch),
            })?;
        tensors.push(bridge::from_data(data, link.zoo.clone(), None));
    }
    imported.loaded = links.len() - imported.skipped.len();
    let result = model.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    if !result.errors.is_empty() {
        return Err(InteropError::Mismatch {
            path: path.to_path_buf(),
            problems: result.errors.iter().map(|e| e.to_string()).collect(),
        });
    }
    Ok((model, imported))
}

/// Writes `model`'s weights as safetensors under PyTorch's names (with the batch-norm counters
/// PyTorch's `load_state_dict(strict=True)` expects); returns the number of tensors written.
pub fn save_pytorch<M: Module>(
    model: &M,
    layout: &PytorchLayout,
    path: &Path,
) -> Result<usize, InteropError> {
    let write_error = |message: String| InteropError::Write {
        path: path.to_path_buf(),
        message,
    };
    let (links, zoo) = links(model, layout)?;
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for link in &links {
        let name = &link.zoo;
        let data = bridge::to_data(&zoo[name])
            .map_err(|e| write_error(format!("{name}: {e}")))?
            .convert::<f32>();
        let (shape, bytes) = (data.shape().to_vec(), data.as_bytes().to_vec());
        tensors.push((link.torch.clone(), safetensors::Dtype::F32, shape, bytes));
        if let Some(norm) = link.torch.strip_suffix(".running_var") {
            let counter = 0i64.to_le_bytes().to_vec();
            let name = format!("{norm}.{BATCHES_TRACKED}");
            tensors.push((name, safetensors::Dtype::I64, vec![], counter));
        }
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| write_error(e.to_string()))?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|e| write_error(e.to_string()))?;
    crate::fsutil::write_atomic(path, &bytes).map_err(|e| write_error(e.to_string()))?;
    Ok(tensors.len())
}
