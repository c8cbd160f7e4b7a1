//! `zoo cv`: k-fold cross-validation on the training split, as the notes choose k for kNN:
//! every combination of the swept values is trained on k - 1 folds and scored on the last.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::backend::Backend;
use crate::config::{Experiment, Override};
use crate::data::{cross_validation_folds, PreparedData};
use crate::eval::{evaluate_on, ImageTask};
use crate::models::ModelConfig;
use crate::run::image_model;

/// One swept setting and its validation accuracy on each fold.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CvRow {
    pub setting: String,
    pub fold_accuracies: Vec<f64>,
    pub mean: f64,
    pub std: f64,
}

/// Splits `key=v1,v2,...` at top-level commas (not inside brackets or quotes).
fn sweep_values(set: &str) -> Result<Vec<Override>, String> {
    let (key, values) = set
        .split_once('=')
        .ok_or_else(|| format!("--set {set}: expected KEY=V1,V2,..."))?;
    let (mut depth, mut quoted, mut start, mut parts) = (0i32, false, 0, Vec::new());
    for (i, ch) in values.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            ',' if depth == 0 && !quoted => {
                parts.push(&values[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&values[start..]);
    parts.iter().map(|v| format!("{key}={v}").parse()).collect()
}

/// The validation accuracy of one fold's model, trained (or fitted) on the other folds.
type Scorer<'a> = Box<dyn Fn(&PreparedData) -> Result<f64> + 'a>;

/// Every combination of the sweeps' values, as lists of overrides.
pub fn expand_sweeps(sets: &[String]) -> Result<Vec<Vec<Override>>, String> {
    let mut combos: Vec<Vec<Override>> = vec![Vec::new()];
    for set in sets {
        let values = sweep_values(set)?;
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |v| {
                    let mut next = combo.clone();
                    next.push(v.clone());
                    next
                })
            })
            .collect();
    }
    Ok(combos)
}

/// Cross-validates `config` (with `base` overrides) for each combination in `combos`.
pub fn cross_validate(
    config: &Path,
    base: &[Override],
    combos: &[Vec<Override>],
    folds: usize,
    backend: Backend,
) -> Result<Vec<CvRow>> {
    if folds < 2 {
        bail!("--folds: expected at least 2, got {folds}");
    }
    let device = backend.device();
    let mut rows = Vec::new();
    for combo in combos {
        let overrides: Vec<Override> = base.iter().chain(combo).cloned().collect();
        let exp = Experiment::load(config, &overrides)?;
        exp.train
            .precision
            .check(backend.name(), &device)
            .map_err(anyhow::Error::msg)?;
        let setting = combo
            .iter()
            .map(|o| format!("{}={}", o.key, o.value))
            .collect::<Vec<_>>()
            .join(" ");
        let setting = if setting.is_empty() {
            "(config as written)".to_string()
        } else {
            setting
        };
        // The validation accuracy of one fold's model, trained (or fitted) on the others.
        let score: Scorer = match &exp.model {
            ModelConfig::CharLm(_) => bail!(
                "zoo cv cross-validates image models; the char-lm is scored on its held-out text"
            ),
            ModelConfig::Knn(knn) => Box::new(|data| {
                let model = knn.fit_on(data, &device)?;
                let batch = exp.data.eval_batch_size;
                Ok(evaluate_on(&model, data, &data.val, batch, &device)?.accuracy)
            }),
            ModelConfig::Image(config) => Box::new(|data| {
                let scratch =
                    tempfile::tempdir().context("cannot create a scratch run directory")?;
                device.seed(exp.train.seed);
                let (model, _) = image_model(config, &exp, &device)?;
                let outcome = exp
                    .trainer(scratch.path(), backend.devices(exp.train.devices))
                    .fit(model, &ImageTask { data }, false)?;
                Ok(outcome.state.history.last().map_or(0.0, |r| r.val_accuracy))
            }),
        };
        let splits = cross_validation_folds(&exp.data, folds).context("cannot load the dataset")?;
        let mut accuracies = Vec::new();
        for (fold, data) in splits.iter().enumerate() {
            let accuracy = score(data)?;
            eprintln!(
                "{setting}: fold {}/{folds}: validation accuracy {accuracy:.4}",
                fold + 1
            );
            accuracies.push(accuracy);
        }
        let mean = accuracies.iter().sum::<f64>() / accuracies.len() as f64;
        let var = accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>()
            / (accuracies.len() - 1) as f64;
        rows.push(CvRow {
            setting,
            fold_accuracies: accuracies,
            mean,
            std: var.sqrt(),
        });
    }
    Ok(rows)
}

/// The table `zoo cv` prints, ending with the best setting.
pub fn to_table(rows: &[CvRow], folds: usize) -> String {
    let width = rows
        .iter()
        .map(|r| r.setting.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = format!(
        "{:<width$}  {:>8}  {:>8}  ({folds}-fold validation accuracy)\n",
        "setting", "mean", "std"
    );
    for r in rows {
        out += &format!("{:<width$}  {:>8.4}  {:>8.4}\n", r.setting, r.mean, r.std);
    }
    if let Some(best) = rows.iter().fold(None::<&CvRow>, |best, r| match best {
        Some(b) if b.mean >= r.mean => Some(b),
        _ => Some(r),
    }) {
        out += &format!("best: {} (mean {:.4})", best.setting, best.mean);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_split_at_top_level_commas_and_combine() {
        let combos =
            expand_sweeps(&["model.k=1,3".into(), "model.hidden=[8, 4],[16]".into()]).unwrap();
        assert_eq!(combos.len(), 4);
        let shown: Vec<String> = combos
            .iter()
            .map(|c| {
                c.iter()
                    .map(|o| o.value.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(shown, ["1 [8, 4]", "1 [16]", "3 [8, 4]", "3 [16]"]);
        assert_eq!(expand_sweeps(&[]).unwrap(), vec![Vec::<Override>::new()]);
    }

    #[test]
    fn best_setting_is_named() {
        let row = |s: &str, mean| CvRow {
            setting: s.into(),
            fold_accuracies: vec![],
            mean,
            std: 0.0,
        };
        let table = to_table(
            &[
                row("model.k=1", 0.8),
                row("model.k=5", 0.85),
                row("model.k=9", 0.84),
            ],
            5,
        );
        assert!(table.ends_with("best: model.k=5 (mean 0.8500)"), "{table}");
    }
}
