//! Runs of the character-level language model: train on a text file (checkpoints and resume
//! as for every model), report cross-entropy, bits per character and perplexity against
//! the unigram baseline, and sample text from a trained run. The vocabulary is learned here,
//! when the text is read, and saved with the run.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::DatasetError;
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::DType;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::backend::Backend;
use crate::checkpoint::weights_digest;
use crate::config::Experiment;
use crate::models::{cross_entropy, CharLm, CharLmConfig, ModelConfig};
use crate::run_dir::{self, LmMetrics, LmScores, METRICS_FILE, VOCAB_FILE};
use crate::summary::{group_digits, Summary};
use crate::text::{Corpus, TextBatch, TextBatcher, Vocabulary, Windows};
use crate::train::{shards, BatchLoss, StopFlag, Task, Validation};

fn text_path(exp: &Experiment) -> &Path {
    exp.data
        .text
        .as_deref()
        .expect("validated: a char-lm config names its text")
}

/// Reads the experiment's text (`data.text`), learning its vocabulary.
fn corpus(exp: &Experiment) -> Result<Corpus> {
    Corpus::load(text_path(exp), exp.data.val_fraction, exp.data.seq_len)
        .map_err(|e| anyhow::anyhow!("data.text: {e}"))
}

/// The model `config` (the char-lm config of `exp`) with fresh weights and its table, for
/// the experiment's text.
pub fn build(
    exp: &Experiment,
    config: &CharLmConfig,
    device: &Device,
) -> Result<(CharLm, Summary)> {
    let vocab = corpus(exp)?.vocab.len();
    Ok(config.build(vocab, exp.data.seq_len, device))
}

/// Trains `config` (the char-lm config of `exp`) into the experiment's run directory.
pub fn train(
    exp: &Experiment,
    config: &CharLmConfig,
    backend: Backend,
    resume: bool,
    stop: Option<StopFlag>,
) -> Result<LmMetrics> {
    let run_dir = exp.run_dir();
    let _lock = run_dir::prepare(exp, &run_dir, resume)?;
    let corpus = corpus(exp)?;
    run_dir::save_json(&run_dir, VOCAB_FILE, &corpus.vocab)?;
    let unigram = corpus.unigram_bits_per_char();
    let device = backend.device();
    device.seed(exp.train.seed);
    let (model, summary) = config.build(corpus.vocab.len(), exp.data.seq_len, &device);
    eprintln!(
        "training char-lm ({} parameters) on {} with {backend}: {} training / {} validation characters, {} distinct; unigram baseline {unigram:.3} bits/char",
        group_digits(summary.total_params),
        text_path(exp).display(),
        corpus.train.len(),
        corpus.val.len(),
        corpus.vocab.len(),
    );
    let task = TextTask {
        corpus,
        seq_len: exp.data.seq_len,
    };
    let outcome = exp
        .trainer(&run_dir, backend.devices(exp.train.devices))
        .stop_on(stop)
        .fit(model, &task, resume)?;
    run_dir::save_model(&run_dir, &outcome.model)?;

    let val = task.validate(&outcome.model, exp.data.eval_batch_size, &device)?;
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
        model: CharLmConfig::KIND.into(),
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
        weights_digest: Some(weights_digest(&outcome.model)),
    };
    run_dir::save_json(&run_dir, METRICS_FILE, &metrics)?;
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
    let exp = run_dir::load_config(run_dir)?;
    let ModelConfig::CharLm(config) = &exp.model else {
        bail!(
            "{} is a {} run; `zoo sample` needs a char-lm run",
            run_dir.display(),
            exp.model.kind()
        );
    };
    let vocab: Vocabulary = run_dir::load_json(run_dir, VOCAB_FILE)?;
    let (model, _) = config.build(vocab.len(), exp.data.seq_len, device);
    let model = run_dir::load_model(run_dir, model)?;
    Ok((exp, model, vocab))
}

/// Re-scores a char-lm run on its validation text.
pub fn eval(run_dir: &Path, backend: Backend) -> Result<LmScores> {
    let device = backend.device();
    let (exp, model, vocab) = load_lm(run_dir, &device)?;
    let corpus = corpus(&exp)?;
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
    let v = task.validate(&model, exp.data.eval_batch_size, &device)?;
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

/// Next-character prediction: the language model's training task.
pub struct TextTask {
    pub corpus: Corpus,
    pub seq_len: usize,
}

impl TextTask {
    fn loader(
        &self,
        ids: &Arc<Vec<u32>>,
        stride: usize,
        batch_size: usize,
        seed: Option<u64>,
        device: &Device,
    ) -> Arc<dyn DataLoader<TextBatch>> {
        let builder = DataLoaderBuilder::new(TextBatcher)
            .batch_size(batch_size)
            .set_device(device.clone());
        let builder = match seed {
            Some(seed) => builder.shuffle(seed),
            None => builder,
        };
        builder.build(Windows::new(ids.clone(), self.seq_len, stride))
    }

    /// Mean cross-entropy (nats per character), accuracy and top-5 accuracy of next-character
    /// predictions over `batch`, plus the number of predictions.
    fn score(model: &CharLm, batch: TextBatch) -> (Tensor<1>, Tensor<2>, Tensor<1, Int>) {
        let [b, t] = batch.inputs.dims();
        let logits = model.forward(batch.inputs); // [b, t, vocab]
        let vocab = logits.dims()[2];
        let logits = logits.reshape([b * t, vocab]);
        let targets = batch.targets.reshape([b * t]);
        let loss = cross_entropy(logits.clone(), targets.clone());
        (loss, logits, targets)
    }
}

impl Task<CharLm> for TextTask {
    type Batch = TextBatch;

    fn train_loader(
        &self,
        batch_size: usize,
        seed: u64,
        device: &Device,
    ) -> Arc<dyn DataLoader<TextBatch>> {
        // Windows start every half window: each character is seen in two contexts per epoch.
        self.loader(
            &self.corpus.train,
            self.seq_len.div_ceil(2),
            batch_size,
            Some(seed),
            device,
        )
    }

    fn batch_loss(&self, model: &CharLm, batch: TextBatch) -> BatchLoss {
        let examples = batch.inputs.dims()[0];
        let (loss, logits, targets) = Self::score(model, batch);
        let predictions = targets.dims()[0];
        let correct = logits
            .argmax(1)
            .squeeze_dim::<1>(1)
            .equal(targets)
            .int()
            .sum()
            .into_scalar::<i64>() as usize;
        BatchLoss {
            loss,
            predictions,
            correct,
            examples,
        }
    }

    fn cast_inputs(&self, batch: TextBatch, _dtype: DType) -> TextBatch {
        batch
    }

    fn shard(&self, batch: TextBatch, devices: &[Device]) -> Vec<(TextBatch, usize)> {
        shards(batch.inputs.dims()[0], devices, |rows, device| TextBatch {
            inputs: batch.inputs.clone().slice(rows.clone()).to_device(device),
            targets: batch.targets.clone().slice(rows).to_device(device),
        })
    }

    fn validate(
        &self,
        model: &CharLm,
        batch_size: usize,
        device: &Device,
    ) -> Result<Validation, DatasetError> {
        let (mut loss_sum, mut correct, mut top5, mut n) = (0f64, 0usize, 0usize, 0usize);
        // Non-overlapping windows: every validation character is predicted once.
        for batch in self
            .loader(&self.corpus.val, self.seq_len, batch_size, None, device)
            .iter()
        {
            let (loss, logits, targets) = Self::score(model, batch?);
            let count = targets.dims()[0];
            loss_sum += loss.into_scalar::<f64>() * count as f64;
            let best5 = logits
                .argsort_descending(1)
                .narrow(1, 0, 5.min(self.corpus.vocab.len())); // [count, 5]
            let hits = best5
                .equal(
                    targets
                        .reshape([count, 1])
                        .repeat_dim(1, 5.min(self.corpus.vocab.len()))
                        .clone(),
                )
                .int();
            correct += hits.clone().narrow(1, 0, 1).sum().into_scalar::<i64>() as usize;
            top5 += hits.sum().into_scalar::<i64>() as usize;
            n += count;
        }
        let n = n.max(1) as f64;
        Ok(Validation {
            loss: loss_sum / n,
            accuracy: correct as f64 / n,
            top5: top5 as f64 / n,
        })
    }
}
