//! Runs of the character-level language model: train on a text file (checkpoints and resume
//! as for every model), report cross-entropy, bits per character and perplexity against
//! the unigram baseline, and sample text from a trained run.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::config::Experiment;
use crate::fsutil::write_atomic;
use crate::models::{CharLm, CharLmConfig};
use crate::run::{
    load_run_config, prepare_run_dir, save_json, summarize, CONFIG_FILE, METRICS_FILE, MODEL_FILE,
};
use crate::text::{Corpus, TextTask, Vocabulary};
use crate::train::{load_module, module_bytes, EpochRecord, Task, Trainer};

pub const VOCAB_FILE: &str = "vocab.json";

/// `metrics.json` of a language-model run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmMetrics {
    pub model: String,
    pub text: String,
    pub backend: String,
    pub params: usize,
    pub vocabulary: usize,
    pub epochs: usize,
    pub epoch_seconds: Vec<f64>,
    /// Training characters predicted per second.
    pub train_chars_per_second: f64,
    pub history: Vec<EpochRecord>,
    pub validation: LmScores,
    /// The unigram model's bits per character on the same validation text: the baseline.
    pub unigram_bits_per_char: f64,
    /// 300 characters sampled at temperature 0.8 after training, from the validation text's start.
    pub sample: String,
}

/// A language model's scores on held-out text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmScores {
    /// Mean cross-entropy, nats per character.
    pub loss: f64,
    pub bits_per_char: f64,
    pub perplexity: f64,
    /// Next-character accuracy and top-5 accuracy.
    pub accuracy: f64,
    pub top5: f64,
}

impl LmScores {
    /// One line for the terminal, beside the unigram baseline.
    pub fn report(&self, unigram_bits_per_char: f64) -> String {
        format!(
            "validation: {:.4} nats/char = {:.3} bits/char (unigram baseline {unigram_bits_per_char:.3}), perplexity {:.2}, next-character accuracy {:.4}, top-5 {:.4}",
            self.loss, self.bits_per_char, self.perplexity, self.accuracy, self.top5
        )
    }

    fn from_loss(loss: f64, accuracy: f64, top5: f64) -> Self {
        Self {
            loss,
            bits_per_char: loss / std::f64::consts::LN_2,
            perplexity: loss.exp(),
            accuracy,
            top5,
        }
    }
}

fn text_path(exp: &Experiment) -> &Path {
    exp.data
        .text
        .as_deref()
        .expect("validated: a char-lm config names its text")
}

/// Trains the char-lm `config` of `exp` into its run directory.
pub fn train(
    exp: &Experiment,
    config: &CharLmConfig,
    backend: Backend,
    resume: bool,
) -> Result<LmMetrics> {
    let run_dir = exp.run_dir();
    prepare_run_dir(exp, &run_dir, resume)?;
    let corpus = Corpus::load(text_path(exp), exp.data.val_fraction, exp.data.seq_len)?;
    save_json(&run_dir.join(VOCAB_FILE), &corpus.vocab)?;
    write_atomic(&run_dir.join(CONFIG_FILE), exp.to_toml().as_bytes())
        .with_context(|| format!("cannot write {}", run_dir.join(CONFIG_FILE).display()))?;
    let summary = summarize(exp);
    let unigram = corpus.unigram_bits_per_char();
    eprintln!(
        "training char-lm ({} parameters) on {} with {backend}: {} training / {} validation characters, {} distinct; unigram baseline {unigram:.3} bits/char",
        crate::summary::group_digits(summary.total_params),
        text_path(exp).display(),
        corpus.train.len(),
        corpus.val.len(),
        corpus.vocab.len(),
    );
    let device = backend.device();
    device.seed(exp.train.seed);
    let model = config.init(corpus.vocab.len(), &device);
    let task = TextTask {
        corpus,
        seq_len: exp.data.seq_len,
    };
    let outcome =
        Trainer::for_experiment(exp, &run_dir, device.clone()).fit(model, &task, resume)?;
    let model_bytes = module_bytes(&outcome.model).map_err(anyhow::Error::msg)?;
    write_atomic(&run_dir.join(MODEL_FILE), &model_bytes)
        .with_context(|| format!("cannot write {}", run_dir.join(MODEL_FILE).display()))?;

    let val = task.validate(&outcome.model, exp.data.eval_batch_size, &device);
    let prompt: String = task
        .corpus
        .val
        .iter()
        .take(40)
        .map(|&id| task.corpus.vocab.char(id))
        .collect();
    let sample = generate(
        &outcome.model,
        &task.corpus.vocab,
        &prompt,
        300,
        0.8,
        exp.train.seed,
        &device,
    )?;
    // Each training example is a window of seq_len predicted characters.
    let train_chars_per_second =
        outcome.state.train_examples_per_second() * exp.data.seq_len as f64;
    let history = outcome.state.history;
    let metrics = LmMetrics {
        model: "char-lm".into(),
        text: text_path(exp).display().to_string(),
        backend: backend.name().into(),
        params: summary.total_params,
        vocabulary: task.corpus.vocab.len(),
        epochs: history.len(),
        epoch_seconds: history.iter().map(|r| r.seconds).collect(),
        train_chars_per_second,
        history,
        validation: LmScores::from_loss(val.loss, val.accuracy, val.top5),
        unigram_bits_per_char: unigram,
        sample,
    };
    save_json(&run_dir.join(METRICS_FILE), &metrics)?;
    println!(
        "{}",
        metrics.validation.report(metrics.unigram_bits_per_char)
    );
    println!("sample: {}", metrics.sample);
    println!("run directory: {}", run_dir.display());
    Ok(metrics)
}

/// The trained model and vocabulary of a char-lm run.
fn load_lm(run_dir: &Path, device: &Device) -> Result<(Experiment, CharLm, Vocabulary)> {
    let exp = load_run_config(run_dir)?;
    let crate::models::ModelConfig::CharLm(config) = &exp.model else {
        bail!(
            "{} is a {} run; `zoo sample` needs a char-lm run",
            run_dir.display(),
            exp.model.kind()
        );
    };
    let vocab_path = run_dir.join(VOCAB_FILE);
    let vocab: Vocabulary = serde_json::from_str(
        &std::fs::read_to_string(&vocab_path)
            .with_context(|| format!("cannot read {}", vocab_path.display()))?,
    )
    .with_context(|| format!("{}: not a vocabulary", vocab_path.display()))?;
    let model_path = run_dir.join(MODEL_FILE);
    if !model_path.exists() {
        bail!("{} has no trained model yet ({MODEL_FILE}); finish the run with `zoo train CONFIG --resume`", run_dir.display());
    }
    let model = load_module(config.init(vocab.len(), device), &model_path)?;
    Ok((exp, model, vocab))
}

/// Re-scores a char-lm run on its validation text.
pub fn eval(run_dir: &Path, backend: Backend) -> Result<LmScores> {
    let device = backend.device();
    let (exp, model, vocab) = load_lm(run_dir, &device)?;
    let corpus = Corpus::load(text_path(&exp), exp.data.val_fraction, exp.data.seq_len)?;
    if corpus.vocab != vocab {
        bail!(
            "{} changed since the run was trained (its characters differ from {VOCAB_FILE})",
            text_path(&exp).display()
        );
    }
    let unigram = corpus.unigram_bits_per_char();
    let task = TextTask {
        corpus,
        seq_len: exp.data.seq_len,
    };
    let v = task.validate(&model, exp.data.eval_batch_size, &device);
    let scores = LmScores::from_loss(v.loss, v.accuracy, v.top5);
    println!("{}", scores.report(unigram));
    Ok(scores)
}

/// `zoo sample`: `length` characters after `prompt`, drawn at `temperature`.
pub fn sample(
    run_dir: &Path,
    prompt: &str,
    length: usize,
    temperature: f64,
    seed: u64,
    backend: Backend,
) -> Result<String> {
    let device = backend.device();
    let (_, model, vocab) = load_lm(run_dir, &device)?;
    let text = generate(&model, &vocab, prompt, length, temperature, seed, &device)?;
    println!("{prompt}{text}");
    let _ = std::io::stdout().flush();
    Ok(text)
}

/// Reads `prompt`, then draws `length` characters one at a time from
/// softmax(scores / temperature), carrying the recurrent state.
pub fn generate(
    model: &CharLm,
    vocab: &Vocabulary,
    prompt: &str,
    length: usize,
    temperature: f64,
    seed: u64,
    device: &Device,
) -> Result<String> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        bail!("--temperature: expected a positive number, got {temperature}");
    }
    if prompt.is_empty() {
        bail!("--prompt: expected at least one character");
    }
    let ids: Vec<i64> = prompt
        .chars()
        .map(|c| {
            vocab
                .id(c)
                .map(i64::from)
                .with_context(|| format!("--prompt: {c:?} does not occur in the training text"))
        })
        .collect::<Result<_>>()?;
    let model = model.valid();
    let mut rng = StdRng::seed_from_u64(seed);
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, ids.len()]), device);
    let (mut scores, mut state) = model.forward_with_state(tokens, None);
    let mut out = String::new();
    for _ in 0..length {
        let steps = scores.dims()[1];
        let last: Vec<f32> = scores
            .narrow(1, steps - 1, 1)
            .try_into_vec_as::<f32>()
            .expect("float scores");
        let next = draw(&last, temperature, &mut rng);
        out.push(vocab.char(next as u32));
        let token = Tensor::<2, Int>::from_data(TensorData::new(vec![next as i64], [1, 1]), device);
        (scores, state) = model.forward_with_state(token, Some(state));
    }
    Ok(out)
}

/// An index drawn from softmax(scores / temperature).
fn draw(scores: &[f32], temperature: f64, rng: &mut StdRng) -> usize {
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s)) as f64;
    let weights: Vec<f64> = scores
        .iter()
        .map(|&s| ((s as f64 - max) / temperature).exp())
        .collect();
    let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}
