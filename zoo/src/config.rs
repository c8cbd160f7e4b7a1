//! The experiment file: `[model]`, `[data]`, `[train]`, `[output]`, read from TOML, with
//! `--set key.path=value` overrides, and validated before anything is built. Every mistake
//! becomes a `ConfigError` that names the file and line (or the override) and the key path.
//! This is the one module that assembles an experiment from the sections, each of which is
//! defined beside what consumes it (`data`, `models`, `train`, `schedule`).

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::data::{image_input, DataConfig};
use crate::invalid::Invalid;
use crate::models::{ModelConfig, ReadError};
use crate::train::{TrainConfig, Trainer};

/// One experiment, fully resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub model: ModelConfig,
    pub data: DataConfig,
    pub train: TrainConfig,
    pub output: OutputConfig,
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// The run directory; `runs/<config file name>` when absent.
    pub dir: Option<PathBuf>,
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
struct Source<'a> {
    name: &'a str,
    text: &'a str,
    overrides: &'a [Override],
}

impl Source<'_> {
    fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
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
fn section<T: DeserializeOwned>(
    value: toml::Value,
    prefix: &str,
    src: &Source,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| located(err, prefix, src))
}

/// serde's complaint about the table at `prefix`, located.
fn located(err: ReadError, prefix: &str, src: &Source) -> ConfigError {
    {
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
    }
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
        let locate = |section: &str, e: Invalid| {
            src.error(
                &format!("{}.{}", e.section.unwrap_or(section), e.key),
                e.message,
            )
        };
        data.validate().map_err(|e| locate("data", e))?;
        train.validate().map_err(|e| locate("train", e))?;
        let reads_text = matches!(model, ModelConfig::CharLm(_));
        match (&data.text, reads_text) {
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
            _ => {}
        }
        // Image models are checked against the input the data implies, and built once
        // (weights stay lazy) to find an input too small for their downsampling.
        let input = image_input(&data);
        match &model {
            ModelConfig::Image(config) => {
                config.validate(&input).map_err(|e| locate("model", e))?;
                config
                    .build(&input, &Device::flex())
                    .map_err(|e| locate("model", e))?;
            }
            ModelConfig::Knn(config) => config.validate().map_err(|e| locate("model", e))?,
            ModelConfig::CharLm(config) => config.validate().map_err(|e| locate("model", e))?,
        }
        Ok(Experiment {
            model,
            data,
            train,
            output,
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

    /// The trainer for `[train]` and the batch sizes, checkpointing into `run_dir`.
    /// The trainer for this experiment on `devices` (the first holds the model and the
    /// optimizer; more than one trains data-parallel).
    pub fn trainer<'a>(&'a self, run_dir: &'a Path, devices: Vec<Device>) -> Trainer<'a> {
        Trainer {
            config: &self.train,
            batch_size: self.data.batch_size,
            eval_batch_size: self.data.eval_batch_size,
            run_dir,
            devices,
            stop: None,
        }
    }
}

/// Reads `[model]`: its `kind` picks the model family, the other keys are that family's config.
fn parse_model(value: toml::Value, src: &Source) -> Result<ModelConfig, ConfigError> {
    let kinds = ModelConfig::kinds().join(", ");
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
    match ModelConfig::read(&kind, toml::Value::Table(table)) {
        Some(read) => read.map_err(|err| located(err, "model", src)),
        None => Err(src.error(
            "model.kind",
            format!("unknown model kind `{kind}`; expected one of {kinds}"),
        )),
    }
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
        assert_eq!(e.train.optimizer, crate::train::OptimizerKind::Momentum);
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
        assert_eq!(e.data.dataset, datasets::DatasetKind::Mnist);
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
