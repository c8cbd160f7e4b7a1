//! Text for the character-level language model: a UTF-8 file read as characters, a
//! vocabulary of the characters it uses, a train/validation split by position, and training
//! windows of `seq_len + 1` characters (inputs are the first `seq_len`, targets the last).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not UTF-8 text (byte {offset})", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{}: {chars} characters are too few for windows of {needed}; use a longer text or a smaller data.seq_len", path.display())]
    TooShort {
        path: PathBuf,
        chars: usize,
        needed: usize,
    },
}

/// The characters a model can read and write, sorted; saved with a run as `vocab.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    pub chars: Vec<char>,
}

impl Vocabulary {
    pub fn of(text: &[char]) -> Self {
        let mut chars = text.to_vec();
        chars.sort_unstable();
        chars.dedup();
        Self { chars }
    }

    pub fn len(&self) -> usize {
        self.chars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    pub fn id(&self, c: char) -> Option<u32> {
        self.chars.binary_search(&c).ok().map(|i| i as u32)
    }

    pub fn char(&self, id: u32) -> char {
        self.chars[id as usize]
    }
}

/// A text, encoded, split into training and validation parts.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub vocab: Vocabulary,
    pub train: Arc<Vec<u32>>,
    pub val: Arc<Vec<u32>>,
}

impl Corpus {
    /// Reads `path`; the last `val_fraction` of it is the validation part.
    pub fn load(path: &Path, val_fraction: f64, seq_len: usize) -> Result<Self, TextError> {
        let bytes = std::fs::read(path).map_err(|source| TextError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| TextError::NotUtf8 {
            path: path.to_path_buf(),
            offset: e.utf8_error().valid_up_to(),
        })?;
        let chars: Vec<char> = text.chars().collect();
        let val_len = (chars.len() as f64 * val_fraction).round() as usize;
        let needed = seq_len + 1;
        if chars.len() < val_len + needed || val_len < needed {
            return Err(TextError::TooShort {
                path: path.to_path_buf(),
                chars: chars.len(),
                needed: 2 * needed,
            });
        }
        let vocab = Vocabulary::of(&chars);
        let ids: Vec<u32> = chars
            .iter()
            .map(|&c| vocab.id(c).expect("in its own vocabulary"))
            .collect();
        let split = ids.len() - val_len;
        Ok(Corpus {
            vocab,
            train: Arc::new(ids[..split].to_vec()),
            val: Arc::new(ids[split..].to_vec()),
        })
    }

    /// Bits per character of the unigram model (training frequencies, add-one smoothed)
    /// on the validation part: the baseline a language model has to beat.
    pub fn unigram_bits_per_char(&self) -> f64 {
        let mut counts = vec![1f64; self.vocab.len()];
        for &id in self.train.iter() {
            counts[id as usize] += 1.0;
        }
        let total: f64 = counts.iter().sum();
        let nats: f64 = self
            .val
            .iter()
            .map(|&id| -(counts[id as usize] / total).ln())
            .sum();
        nats / self.val.len() as f64 / std::f64::consts::LN_2
    }
}

/// Windows of `len` characters starting every `stride` characters of `ids`.
#[derive(Debug, Clone)]
pub struct Windows {
    ids: Arc<Vec<u32>>,
    len: usize,
    stride: usize,
}

impl Windows {
    pub fn new(ids: Arc<Vec<u32>>, seq_len: usize, stride: usize) -> Self {
        Self {
            ids,
            len: seq_len + 1,
            stride,
        }
    }
}

impl Dataset<Vec<u32>> for Windows {
    fn get(&self, index: usize) -> Result<Vec<u32>, DatasetError> {
        let start = index * self.stride;
        Ok(self.ids[start..start + self.len].to_vec())
    }

    fn len(&self) -> usize {
        (self.ids.len() - self.len) / self.stride + 1
    }
}

/// A batch of windows: inputs and the same characters shifted by one.
#[derive(Debug, Clone)]
pub struct TextBatch {
    /// `[batch, seq_len]`
    pub inputs: Tensor<2, Int>,
    /// `[batch, seq_len]`
    pub targets: Tensor<2, Int>,
}

#[derive(Debug, Clone, Copy)]
pub struct TextBatcher;

impl Batcher<Vec<u32>, TextBatch> for TextBatcher {
    fn batch(&self, items: Vec<Vec<u32>>, device: &Device) -> TextBatch {
        let (n, len) = (items.len(), items[0].len());
        let mut inputs = Vec::with_capacity(n * (len - 1));
        let mut targets = Vec::with_capacity(n * (len - 1));
        for w in &items {
            inputs.extend(w[..len - 1].iter().map(|&c| c as i64));
            targets.extend(w[1..].iter().map(|&c| c as i64));
        }
        TextBatch {
            inputs: Tensor::from_data(TensorData::new(inputs, [n, len - 1]), device),
            targets: Tensor::from_data(TensorData::new(targets, [n, len - 1]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_splits_encodes_and_knows_its_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        std::fs::write(&path, "abab".repeat(50) + "ababc").unwrap();
        let corpus = Corpus::load(&path, 0.2, 4).unwrap();
        assert_eq!(corpus.vocab.chars, vec!['a', 'b', 'c']);
        assert_eq!(corpus.train.len() + corpus.val.len(), 205);
        assert_eq!(corpus.val.len(), 41);
        // Training frequencies a: 82, b: 82, c: 0 (+1 each) -> about 1 bit for a and b.
        let bpc = corpus.unigram_bits_per_char();
        assert!(bpc > 1.0 && bpc < 1.3, "{bpc}");
        let windows = Windows::new(corpus.train.clone(), 4, 2);
        assert_eq!(windows.get(1).unwrap(), vec![0, 1, 0, 1, 0]);
        assert_eq!(windows.len(), (164 - 5) / 2 + 1);
    }

    #[test]
    fn bad_text_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin.txt");
        std::fs::write(&path, [b'a', 0xff, b'b']).unwrap();
        let err = Corpus::load(&path, 0.1, 4).unwrap_err().to_string();
        assert!(err.contains("bin.txt: not UTF-8 text (byte 1)"), "{err}");
        std::fs::write(&path, "short").unwrap();
        assert!(Corpus::load(&path, 0.1, 4)
            .unwrap_err()
            .to_string()
            .contains("too few"));
        assert!(Corpus::load(&dir.path().join("none.txt"), 0.1, 4)
            .unwrap_err()
            .to_string()
            .contains("none.txt: cannot read"));
    }
}
