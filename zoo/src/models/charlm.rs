//! The notes' character-level language model (many-to-many): embedding -> recurrent layers
//! -> a softmax over the vocabulary at every step, trained to predict the next character.

use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::builder::NetBuilder;
use super::recurrent::{recurrent_layers, Cell, CellState, RecurrentLayer};
use crate::input::ModelInput;
use crate::invalid::{positive, probability, Invalid};
use crate::summary::{LayerSummary, Summary};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CharLmConfig {
    /// Width of each character's embedding.
    pub embedding: usize,
    pub cell: Cell,
    pub hidden: usize,
    pub layers: usize,
    /// Dropout on the outputs of every recurrent layer.
    pub dropout: f64,
}

impl Default for CharLmConfig {
    fn default() -> Self {
        Self {
            embedding: 64,
            cell: Cell::Lstm,
            hidden: 256,
            layers: 2,
            dropout: 0.2,
        }
    }
}

impl CharLmConfig {
    pub const KIND: &'static str = "char-lm";

    pub fn validate(&self) -> Result<(), Invalid> {
        positive("embedding", self.embedding)?;
        positive("hidden", self.hidden)?;
        positive("layers", self.layers)?;
        probability("dropout", self.dropout)
    }

    /// The model for a vocabulary of `vocab` characters and its table for windows of `steps`,
    /// from one walk.
    pub fn build(&self, vocab: usize, steps: usize, device: &Device) -> (CharLm, Summary) {
        let mut b = NetBuilder::new(&[steps], device);
        b.row(LayerSummary {
            name: "embedding".into(),
            kind: "embedding".into(),
            hyper: format!("{vocab} characters -> {}", self.embedding),
            output_shape: vec![steps, self.embedding],
            params: vocab * self.embedding,
            buffers: 0,
            macs: 0,
        });
        let embedding = EmbeddingConfig::new(vocab, self.embedding).init(device);
        let layers = recurrent_layers(&mut b, self.cell, self.hidden, self.layers, false);
        // The head predicts at every step: the linear map's row, times the steps.
        let mut head = LayerSummary::linear("head", self.hidden, vocab);
        head.output_shape = vec![steps, vocab];
        head.macs *= steps;
        b.row(head);
        let model = CharLm {
            embedding,
            layers,
            dropout: (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init()),
            head: LinearConfig::new(self.hidden, vocab).init(device),
        };
        let input = ModelInput {
            channels: 1,
            height: steps,
            width: 1,
            num_classes: vocab,
        };
        let rows = b
            .finish()
            .expect("text windows have no feature maps to shrink");
        (model, Summary::new(Self::KIND, input, rows))
    }
}

#[derive(Module, Debug)]
pub struct CharLm {
    pub embedding: Embedding,
    pub layers: Vec<RecurrentLayer>,
    pub dropout: Option<Dropout>,
    pub head: Linear,
}

impl CharLm {
    /// Scores of the next character at every step, from zero initial states.
    ///
    /// # Shapes
    /// - tokens: `[batch, steps]`; output: `[batch, steps, vocab]`
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.forward_with_state(tokens, None).0
    }

    /// As `forward`, from the given per-layer states, also returning the final states:
    /// a prompt is read once, then sampling feeds one character at a time.
    pub fn forward_with_state(
        &self,
        tokens: Tensor<2, Int>,
        states: Option<Vec<CellState>>,
    ) -> (Tensor<3>, Vec<CellState>) {
        let mut x = self.embedding.forward(tokens); // [batch, steps, embedding]
        let mut states_in = states
            .map(|s| s.into_iter().map(Some).collect())
            .unwrap_or_else(|| vec![None; self.layers.len()]);
        let mut states_out = Vec::with_capacity(self.layers.len());
        for (layer, state) in self.layers.iter().zip(states_in.iter_mut()) {
            let (out, state) = layer.forward_with_state(x, state.take());
            states_out.push(state);
            x = match &self.dropout {
                Some(dropout) => kernels::dropout(dropout, out),
                None => out,
            };
        }
        (self.head.forward(x), states_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_built_model_and_states_continue_a_sequence() {
        let device = Device::flex();
        for cell in [Cell::Lstm, Cell::Gru, Cell::Rnn] {
            let config = CharLmConfig {
                embedding: 8,
                cell,
                hidden: 16,
                layers: 2,
                dropout: 0.0,
            };
            let (model, summary) = config.build(30, 5, &device);
            assert_eq!(model.num_params(), summary.total_params, "{cell:?}");
            // Reading 6 characters at once equals reading 4, then 2 from the carried state.
            let tokens = Tensor::<2, Int>::from_data(
                TensorData::new(vec![1i64, 5, 7, 2, 9, 3], [1, 6]),
                &device,
            );
            let whole = model.forward(tokens.clone());
            let (_, state) = model.forward_with_state(tokens.clone().narrow(1, 0, 4), None);
            let (tail, _) = model.forward_with_state(tokens.narrow(1, 4, 2), Some(state));
            let a = whole.narrow(1, 4, 2).try_into_vec_as::<f32>().unwrap();
            let b = tail.try_into_vec_as::<f32>().unwrap();
            assert!(
                a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4),
                "{cell:?}"
            );
        }
    }
}
