//! The experiment file: `[model]`, `[data]`, `[train]`, `[output]`, read from TOML, with
//! `--set key.path=value` overrides, and validated before anything is built. Every mistake
//! becomes a `ConfigError` that names the file and line (or the override) and the key path.

use std::path::{Path, PathBuf};

use datasets::DatasetKind;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::models::{ModelConfig, ModelInput};

/// One experiment, fully resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub model: ModelConfig,
    pub data: DataConfig,
    pub train: TrainConfig,
    pub output: OutputConfig,
    /// What the data hands the model (image shape and classes; for text, the window length
    /// as `height` and the vocabulary as classes), worked out when the config is read.
    #[serde(skip)]
    pub input: ModelInput,
}

/// A user mistake in a config, located: `configs/x.toml:12: train.momentum: expected ...`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {key}: {message}")]
pub struct ConfigError {
    /// `file:line`, `file` (for a missing key), or `--set key` (for an override).
    pub location: String,
    /// The full key path, e.g. `train.momentum`.
    pub key: String,
    pub message: String,
}

/// A validation failure before it is located: the key path inside its section and the message.
pub type Invalid = (String, String);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// fashion-mnist, mnist, kmnist, cifar10 or cifar100.
    pub dataset: DatasetKind,
    /// Directory of the dataset's files; defaults to the system package's directory.
    pub dir: Option<PathBuf>,
    /// Images carved out of the training set for validation.
    pub val_size: usize,
    /// Seed of the train/validation split (independent of the training seed).
    pub split_seed: u64,
    pub normalize: Normalize,
    pub batch_size: usize,
    /// Batch size for validation and test passes (no gradients, so it can be larger).
    pub eval_batch_size: usize,
    /// Use only the first N training images (quick runs and tests); all when absent.
    pub train_limit: Option<usize>,
    /// Use only the first N test images; all when absent.
    pub test_limit: Option<usize>,
    /// A UTF-8 text file, for the character-level language model.
    pub text: Option<PathBuf>,
    /// Characters per training window (the truncated-backpropagation length), for text.
    pub seq_len: usize,
    /// The last fraction of a text kept for validation.
    pub val_fraction: f64,
    /// Keep only these classes, relabeled 0, 1, ... in this order (e.g. [0, 6]: T-shirt vs shirt).
    pub classes: Option<Vec<u8>>,
    /// A two-class task: this class (label 1) against all the others (label 0).
    pub one_vs_rest: Option<u8>,
    /// Bilinear resize of every image (all splits) to this side, e.g. 32 for 28x28 inputs.
    pub resize: Option<usize>,
    /// Random transforms of training batches (`[data.augment]`), seeded per epoch.
    pub augment: datasets::Augmentation,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::FashionMnist,
            dir: None,
            val_size: 5000,
            split_seed: 0,
            normalize: Normalize::Standardize,
            batch_size: 64,
            eval_batch_size: 1000,
            train_limit: None,
            test_limit: None,
            text: None,
            seq_len: 100,
            val_fraction: 0.1,
            classes: None,
            one_vs_rest: None,
            resize: None,
            augment: datasets::Augmentation::default(),
        }
    }
}

impl DataConfig {
    /// The directory to read: the configured one, else the dataset's system directory.
    pub fn resolved_dir(&self) -> Option<PathBuf> {
        self.dir
            .clone()
            .or_else(|| self.dataset.default_dir().map(PathBuf::from))
    }

    fn validate(&self) -> Result<(), Invalid> {
        positive("batch_size", self.batch_size)?;
        positive("eval_batch_size", self.eval_batch_size)?;
        if self.resolved_dir().is_none() && self.dataset != DatasetKind::Imagenet {
            return Err((
                "dir".into(),
                format!(
                    "{} has no default directory; set data.dir or pass --data-dir",
                    self.dataset.name()
                ),
            ));
        }
        if let Some(n) = self.train_limit {
            positive("train_limit", n)?;
            if self.val_size >= n {
                return Err((
                    "val_size".into(),
                    format!(
                        "expected fewer than data.train_limit = {n} images, got {}",
                        self.val_size
                    ),
                ));
            }
        }
        if let Some(n) = self.test_limit {
            positive("test_limit", n)?;
        }
        if let Some(side) = self.resize {
            positive("resize", side)?;
        }
        self.augment
            .validate()
            .map_err(|(key, message)| (format!("augment.{key}"), message))?;
        positive("seq_len", self.seq_len)?;
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            return Err((
                "val_fraction".into(),
                format!("expected a number in (0, 1), got {}", self.val_fraction),
            ));
        }
        let (_, _, _, dataset_classes) = self.dataset.shape();
        let out_of_range = |c: u8| c as usize >= dataset_classes;
        if let Some(classes) = &self.classes {
            if self.one_vs_rest.is_some() {
                return Err((
                    "one_vs_rest".into(),
                    "set data.classes or data.one_vs_rest, not both".into(),
                ));
            }
            if classes.len() < 2 {
                return Err((
                    "classes".into(),
                    format!("expected at least two classes, got {classes:?}"),
                ));
            }
            if let Some(i) = classes.iter().position(|&c| out_of_range(c)) {
                return Err((
                    format!("classes[{i}]"),
                    format!(
                        "expected a class below {dataset_classes}, got {}",
                        classes[i]
                    ),
                ));
            }
            if let Some(i) = (1..classes.len()).find(|&i| classes[..i].contains(&classes[i])) {
                return Err((
                    format!("classes[{i}]"),
                    format!("class {} is listed twice", classes[i]),
                ));
            }
        }
        if let Some(c) = self.one_vs_rest {
            if out_of_range(c) {
                return Err((
                    "one_vs_rest".into(),
                    format!("expected a class below {dataset_classes}, got {c}"),
                ));
            }
        }
        Ok(())
    }
}

/// How pixels are scaled before they reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalize {
    /// Per-channel mean and standard deviation of the training split.
    Standardize,
    /// Pixels scaled to [0, 1] only.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
    Adamw,
    Rmsprop,
    Adagrad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    Constant,
    Step,
    Exponential,
    Linear,
    Cosine,
    InverseSqrt,
    InverseTime,
    Plateau,
}

/// The learning-rate schedule, per epoch t = 0, 1, ... (the notes' formulas; see `train::schedule`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    pub kind: ScheduleKind,
    /// step: epochs between decays.
    pub step_size: usize,
    /// step and plateau: the factor applied at each decay.
    pub gamma: f64,
    /// exponential (a0 e^-kt) and inverse-time (a0 / (1 + kt)): k.
    pub decay: f64,
    /// linear and cosine: the rate reached at the last epoch.
    pub min_lr: f64,
    /// plateau: epochs without a better validation accuracy before decaying.
    pub patience: usize,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Constant,
            step_size: 10,
            gamma: 0.1,
            decay: 0.1,
            min_lr: 0.0,
            patience: 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Seeds weight initialization, shuffling and dropout.
    pub seed: u64,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    /// momentum / nesterov (default 0.9) and rmsprop (default 0).
    pub momentum: Option<f64>,
    /// adam / adamw.
    pub betas: [f64; 2],
    /// Numerical-stability epsilon; PyTorch's defaults (1e-8, adagrad 1e-10) where absent.
    pub eps: Option<f64>,
    /// rmsprop's smoothing constant.
    pub alpha: f64,
    /// L2 weight decay; 0 except adamw (PyTorch's 1e-2) where absent.
    pub weight_decay: Option<f64>,
    pub schedule: ScheduleConfig,
    /// Clip each parameter's gradient to this L2 norm (Burn clips per tensor, not globally).
    pub clip_grad_norm: Option<f64>,
    /// Clip each gradient element to [-v, v].
    pub clip_grad_value: Option<f64>,
    /// Stop when validation loss has not improved for this many epochs.
    pub early_stopping_patience: Option<usize>,
    /// L1 penalty l1 * sum |w| on weight matrices and kernels, added to the loss.
    pub l1: f64,
    /// L2 penalty l2 * sum w^2 added to the loss (with `l1`: the elastic net). Unlike
    /// `weight_decay`, which the optimizer applies, this is part of the reported loss.
    pub l2: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            seed: 0,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            momentum: None,
            betas: [0.9, 0.999],
            eps: None,
            alpha: 0.99,
            weight_decay: None,
            schedule: ScheduleConfig::default(),
            clip_grad_norm: None,
            clip_grad_value: None,
            early_stopping_patience: None,
            l1: 0.0,
            l2: 0.0,
        }
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<(), Invalid> {
        positive("epochs", self.epochs)?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err((
                "lr".into(),
                format!("expected a positive number, got {}", self.lr),
            ));
        }
        if let Some(m) = self.momentum {
            unit_interval("momentum", m)?;
        }
        unit_interval("betas[0]", self.betas[0])?;
        unit_interval("betas[1]", self.betas[1])?;
        unit_interval("alpha", self.alpha)?;
        if let Some(e) = self.eps {
            if e <= 0.0 {
                return Err(("eps".into(), format!("expected a positive number, got {e}")));
            }
        }
        if let Some(w) = self.weight_decay {
            if w < 0.0 {
                return Err((
                    "weight_decay".into(),
                    format!("expected a number >= 0, got {w}"),
                ));
            }
        }
        for (key, v) in [
            ("clip_grad_norm", self.clip_grad_norm),
            ("clip_grad_value", self.clip_grad_value),
        ] {
            if let Some(v) = v {
                if v <= 0.0 {
                    return Err((key.into(), format!("expected a positive number, got {v}")));
                }
            }
        }
        for (key, v) in [("l1", self.l1), ("l2", self.l2)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err((key.into(), format!("expected a number >= 0, got {v}")));
            }
        }
        if self.clip_grad_norm.is_some() && self.clip_grad_value.is_some() {
            return Err((
                "clip_grad_value".into(),
                "set clip_grad_norm or clip_grad_value, not both".into(),
            ));
        }
        let s = &self.schedule;
        positive("schedule.step_size", s.step_size)?;
        if !(s.gamma > 0.0 && s.gamma <= 1.0) {
            return Err((
                "schedule.gamma".into(),
                format!("expected a number in (0, 1], got {}", s.gamma),
            ));
        }
        if s.decay < 0.0 {
            return Err((
                "schedule.decay".into(),
                format!("expected a number >= 0, got {}", s.decay),
            ));
        }
        if !(s.min_lr >= 0.0 && s.min_lr <= self.lr) {
            return Err((
                "schedule.min_lr".into(),
                format!(
                    "expected a number in [0, train.lr = {}], got {}",
                    self.lr, s.min_lr
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// The run directory; `runs/<config file name>` when absent.
    pub dir: Option<PathBuf>,
}

fn positive(key: &str, value: usize) -> Result<(), Invalid> {
    if value == 0 {
        return Err((key.into(), "expected a positive integer, got 0".into()));
    }
    Ok(())
}

fn unit_interval(key: &str, value: f64) -> Result<(), Invalid> {
    if !(0.0..1.0).contains(&value) {
        return Err((
            key.into(),
            format!("expected a number in [0, 1), got {value}"),
        ));
    }
    Ok(())
}

/// A `--set key.path=value` override; the value is read as TOML, else taken as a string.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub key: String,
    pub value: toml::Value,
}

impl std::str::FromStr for Override {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (key, raw) = s
            .split_once('=')
            .ok_or_else(|| format!("--set {s}: expected KEY=VALUE, e.g. train.lr=0.01"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(format!("--set {s}: expected a dotted key such as train.lr"));
        }
        let raw = raw.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        Ok(Override {
            key: key.to_string(),
            value,
        })
    }
}

/// Where the text of a config came from, to point errors at lines or overrides.
pub(crate) struct Source<'a> {
    name: &'a str,
    text: &'a str,
    overrides: &'a [Override],
}

impl Source<'_> {
    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: self.locate(key),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// `--set k` when an override set the key or a parent of it, else `file:line` of the key
    /// (or of its nearest parent written in the file), else the file alone.
    fn locate(&self, key: &str) -> String {
        if let Some(o) = self.overrides.iter().rev().find(|o| {
            key == o.key
                || key.starts_with(&format!("{}.", o.key))
                || key.starts_with(&format!("{}[", o.key))
        }) {
            return format!("--set {}", o.key);
        }
        match line_of_key(self.text, key) {
            Some(line) => format!("{}:{line}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// The 1-based line where `key` (dotted, `[i]` for array items) or its nearest parent is written.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut best = None;
    for part in key.split('.') {
        let name = part.split('[').next().unwrap_or(part);
        let (k, v) = table.get_key_value(name)?;
        best = Some(k.span().start);
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    best.map(|offset| text[..offset].matches('\n').count() + 1)
}

/// Deserializes one section, turning serde's complaint into a located `ConfigError`.
pub(crate) fn section<T: DeserializeOwned>(
    value: toml::Value,
    prefix: &str,
    src: &Source,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let mut path = err.path().to_string();
        let message = err.inner().message().to_string();
        // serde reports an unknown key at its parent; name the key itself.
        if let Some(unknown) = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            if !path.ends_with(unknown) {
                path = if path == "." {
                    unknown.to_string()
                } else {
                    format!("{path}.{unknown}")
                };
            }
        }
        let key = if path == "." {
            prefix.to_string()
        } else {
            format!("{prefix}.{path}")
        };
        src.error(&key, message)
    })
}

/// Sets `key` (dotted) in `root` to `value`, creating tables on the way.
fn apply_override(root: &mut toml::Table, o: &Override) -> Result<(), String> {
    let parts: Vec<&str> = o.key.split('.').collect();
    let mut table = root;
    for part in &parts[..parts.len() - 1] {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| format!("{part} is not a table"))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), o.value.clone());
    Ok(())
}

impl Experiment {
    /// Reads, overrides and validates the config at `path`.
    pub fn load(path: &Path, overrides: &[Override]) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            location: name.clone(),
            key: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        let mut experiment = Self::parse(&text, &name, overrides)?;
        if experiment.output.dir.is_none() {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into());
            experiment.output.dir = Some(PathBuf::from("runs").join(stem));
        }
        Ok(experiment)
    }

    /// Parses config text; `name` is used in error locations.
    pub fn parse(text: &str, name: &str, overrides: &[Override]) -> Result<Self, ConfigError> {
        let src = Source {
            name,
            text,
            overrides,
        };
        let mut root: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            ConfigError {
                location: line.map_or(name.to_string(), |l| format!("{name}:{l}")),
                key: "(syntax)".into(),
                message: e.message().to_string(),
            }
        })?;
        for o in overrides {
            apply_override(&mut root, o).map_err(|m| src.error(&o.key, m))?;
        }
        for key in root.keys() {
            if !["model", "data", "train", "output"].contains(&key.as_str()) {
                return Err(src.error(
                    key,
                    "unknown section; expected model, data, train or output",
                ));
            }
        }
        let mut take = |key: &str| {
            root.remove(key)
                .unwrap_or_else(|| toml::Value::Table(Default::default()))
        };
        let model_value = take("model");
        let data: DataConfig = section(take("data"), "data", &src)?;
        let train: TrainConfig = section(take("train"), "train", &src)?;
        let output: OutputConfig = section(take("output"), "output", &src)?;
        let model = parse_model(model_value, &src)?;
        let locate = |section: &str, (key, message): Invalid| {
            src.error(&format!("{section}.{key}"), message)
        };
        data.validate().map_err(|e| locate("data", e))?;
        train.validate().map_err(|e| locate("train", e))?;
        let reads_text = matches!(model, ModelConfig::CharLm(_));
        let input = match (&data.text, reads_text) {
            (Some(path), true) => {
                let corpus = crate::text::Corpus::load(path, data.val_fraction, data.seq_len)
                    .map_err(|e| src.error("data.text", e.to_string()))?;
                ModelInput {
                    channels: 1,
                    height: data.seq_len,
                    width: 1,
                    num_classes: corpus.vocab.len(),
                }
            }
            (None, true) => {
                return Err(src.error(
                    "data.text",
                    "the char-lm model reads a text file: set data.text = \"PATH\"",
                ))
            }
            (Some(_), false) => {
                return Err(src.error(
                    "data.text",
                    format!("only the char-lm model reads text, not {}", model.kind()),
                ))
            }
            (None, false) => crate::data::image_input(&data),
        };
        model.validate(&input).map_err(|e| locate("model", e))?;
        Ok(Experiment {
            model,
            data,
            train,
            output,
            input,
        })
    }

    /// The resolved config as TOML, saved beside a run so it can be re-read by `zoo eval`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a resolved config always serializes")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.output
            .dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs/run"))
    }
}

/// Reads `[model]`: its `kind` picks the model family, the other keys are that family's config.
fn parse_model(value: toml::Value, src: &Source) -> Result<ModelConfig, ConfigError> {
    let kinds = ModelConfig::KINDS.join(", ");
    let toml::Value::Table(mut table) = value else {
        return Err(src.error("model", "expected a table"));
    };
    let kind = match table.remove("kind") {
        Some(toml::Value::String(kind)) => kind,
        Some(other) => {
            return Err(src.error(
                "model.kind",
                format!("expected a string (one of {kinds}), got {other}"),
            ))
        }
        None => {
            return Err(src.error(
                "model.kind",
                format!("missing field `kind`; expected one of {kinds}"),
            ))
        }
    };
    ModelConfig::from_table(&kind, toml::Value::Table(table), src).unwrap_or_else(|| {
        Err(src.error(
            "model.kind",
            format!("unknown model kind `{kind}`; expected one of {kinds}"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[model]
kind = "mlp"
hidden = [32]

[data]
batch_size = 32

[train]
epochs = 2
optimizer = "momentum"
momentum = 0.9
"#;

    fn err(text: &str, overrides: &[&str]) -> String {
        let o: Vec<Override> = overrides.iter().map(|s| s.parse().unwrap()).collect();
        Experiment::parse(text, "x.toml", &o)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let e = Experiment::parse(GOOD, "x.toml", &[]).unwrap();
        assert_eq!(e.train.epochs, 2);
        assert_eq!(e.data.batch_size, 32);
        assert_eq!(e.data.val_size, 5000);
        assert_eq!(e.train.optimizer, OptimizerKind::Momentum);
    }

    #[test]
    fn invalid_value_names_file_line_and_key() {
        let text = GOOD.replace("momentum = 0.9", "momentum = 1.5");
        assert_eq!(
            err(&text, &[]),
            "x.toml:12: train.momentum: expected a number in [0, 1), got 1.5"
        );
    }

    #[test]
    fn unknown_key_names_its_line() {
        let text = GOOD.replace("batch_size = 32", "batch_sise = 32");
        let e = err(&text, &[]);
        assert!(
            e.starts_with("x.toml:7: data.batch_sise: unknown field `batch_sise`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_key() {
        let text = GOOD.replace("epochs = 2", "epochs = \"two\"");
        let e = err(&text, &[]);
        assert!(
            e.starts_with("x.toml:10: train.epochs: invalid type: string \"two\""),
            "{e}"
        );
    }

    #[test]
    fn unknown_section_and_syntax_errors() {
        assert!(err("[trian]\nepochs = 1\n[model]\nkind = \"mlp\"", &[])
            .starts_with("x.toml:1: trian: unknown section"));
        assert!(err("[model]\nkind = \n", &[]).starts_with("x.toml:2: (syntax):"));
    }

    #[test]
    fn overrides_apply_and_are_named_in_errors() {
        let o: Vec<Override> = [
            "train.lr=0.01",
            "model.hidden=[8, 8]",
            "data.dataset=mnist",
            "data.dir=/tmp",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let e = Experiment::parse(GOOD, "x.toml", &o).unwrap();
        assert_eq!(e.train.lr, 0.01);
        assert_eq!(e.data.dataset, DatasetKind::Mnist);
        assert_eq!(
            err(GOOD, &["train.momentum=2"]),
            "--set train.momentum: train.momentum: expected a number in [0, 1), got 2"
        );
        assert!(
            err(GOOD, &["train.sead=1"]).starts_with("--set train.sead: train.sead: unknown field")
        );
    }

    #[test]
    fn missing_key_locates_the_file() {
        assert!(err("[model]\nkind = \"mlp\"\n[train]\nlr = -1.0\n", &[])
            .starts_with("x.toml:4: train.lr: expected a positive number"));
        assert!(err("[train]\nepochs = 1\n", &[]).starts_with("x.toml: model.kind: missing"));
    }

    #[test]
    fn resolved_config_round_trips() {
        let e = Experiment::parse(GOOD, "x.toml", &[]).unwrap();
        let again = Experiment::parse(&e.to_toml(), "resolved.toml", &[]).unwrap();
        assert_eq!(again.to_toml(), e.to_toml());
    }
}
