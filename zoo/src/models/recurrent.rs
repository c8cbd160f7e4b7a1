//! Recurrent sequence classifiers of the notes: stacked LSTM, GRU or plain tanh RNN layers,
//! optionally bidirectional, with dropout between layers, read out by the last hidden state
//! (both directions' final states when bidirectional) or the mean over time, into a linear
//! head. Images are read as sequences of rows: 28 steps of 28 features for Fashion-MNIST.
//! All cells are Burn's (`Lstm`, `Gru`, `Rnn` and their bidirectional forms). The kind is
//! `recurrent`; `lstm`, its first name, is still read.

use burn::nn::{
    BiGru, BiGruConfig, BiLstm, BiLstmConfig, BiRnn, BiRnnConfig, Dropout, DropoutConfig, Gru,
    GruConfig, Linear, Lstm, LstmConfig, LstmState, Rnn, RnnConfig, RnnState,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::builder::{Init, NetBuilder};
use super::pytorch_names::PytorchLayout;
use super::family::{ImageClassifier, ImageFamily};
use crate::input::ModelInput;
use crate::invalid::{probability, Invalid};
use crate::summary::LayerSummary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    Lstm,
    Gru,
    /// h_t = tanh(W x_t + U h_{t-1} + b)
    Rnn,
}

impl Cell {
    /// Burn's gate modules in the order PyTorch stacks them (i, f, g, o; r, z, n).
    pub fn pytorch_gate_order(self) -> &'static [&'static str] {
        match self {
            Cell::Lstm => &["input_gate", "forget_gate", "cell_gate", "output_gate"],
            Cell::Gru => &["reset_gate", "update_gate", "new_gate"],
            Cell::Rnn => &["gate"],
        }
    }

    /// Gates per cell: each a linear map of the input and one of the hidden state.
    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
            Cell::Rnn => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readout {
    /// The final hidden state (many-to-one): of a bidirectional layer, the forward direction's
    /// at the last step and the reverse direction's at the first, both having read everything.
    Last,
    /// The output at the last time step, PyTorch's `out[:, -1]` (the README's `Rows`): the
    /// same as `last` for one direction; of a bidirectional layer, the reverse direction's
    /// output there has read only that step.
    #[serde(rename = "last-output")]
    LastOutput,
    /// The mean of the hidden states over time.
    Mean,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecurrentConfig {
    pub cell: Cell,
    pub hidden: usize,
    pub layers: usize,
    pub bidirectional: bool,
    /// Dropout on the outputs of every recurrent layer but the last.
    pub dropout: f64,
    pub readout: Readout,
}

impl Default for RecurrentConfig {
    fn default() -> Self {
        Self {
            cell: Cell::Lstm,
            hidden: 128,
            layers: 1,
            bidirectional: false,
            dropout: 0.0,
            readout: Readout::Last,
        }
    }
}

impl ImageFamily for RecurrentConfig {
    const KINDS: &'static [&'static str] = &["recurrent"];
    const ALIASES: &'static [&'static str] = &["lstm"];
    type Module = RecurrentClassifier;

    fn validate(&self, _input: &ModelInput) -> Result<(), Invalid> {
        if self.hidden == 0 {
            return Err(Invalid::new("hidden", "expected a positive width, got 0"));
        }
        if self.layers == 0 {
            return Err(Invalid::new("layers", "expected at least one layer, got 0"));
        }
        probability("dropout", self.dropout)
    }

    /// The `Rows` module of the README: an `nn.LSTM`/`nn.GRU`/`nn.RNN` named `rnn` and a
    /// linear `head`.
    fn pytorch_layout(&self, _input: &ModelInput) -> PytorchLayout {
        let gates = self.cell.pytorch_gate_order();
        let mut layout = PytorchLayout::default().layer("head", "head");
        for l in 0..self.layers {
            layout = match self.bidirectional {
                false => layout.cell(format!("layers.{l}"), "rnn", l, false, gates),
                true => layout
                    .cell(format!("layers.{l}.forward"), "rnn", l, false, gates)
                    .cell(format!("layers.{l}.reverse"), "rnn", l, true, gates),
            };
        }
        layout
    }

    fn build(&self, input: &ModelInput, b: &mut NetBuilder) -> RecurrentClassifier {
        // An image read row by row: `height` steps of `channels * width` features.
        let (steps, features) = (input.height, input.channels * input.width);
        b.row(LayerSummary {
            name: "rows".into(),
            kind: "image rows as a sequence".into(),
            hyper: format!("{steps} steps x {features}"),
            output_shape: vec![steps, features],
            params: 0,
            buffers: 0,
            macs: 0,
        });
        let layers = recurrent_layers(b, self.cell, self.hidden, self.layers, self.bidirectional);
        let readout = match self.readout {
            Readout::Last => "last hidden state",
            Readout::LastOutput => "output at the last step",
            Readout::Mean => "mean over time",
        };
        let width = self.hidden * if self.bidirectional { 2 } else { 1 };
        b.row(LayerSummary::elementwise("readout", readout, &[width]));
        RecurrentClassifier {
            layers,
            dropout: (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init()),
            head: b.linear("head", input.num_classes, Init::Default, 0.0),
            hidden: self.hidden,
            bidirectional: self.bidirectional,
            readout: self.readout,
        }
    }
}

/// `layers` stacked recurrent layers of `cell` over the builder's `[steps, features]`, each
/// with its row: `recurrent.0`, `recurrent.1`, ...
pub fn recurrent_layers(
    b: &mut NetBuilder,
    cell: Cell,
    hidden: usize,
    layers: usize,
    bidirectional: bool,
) -> Vec<RecurrentLayer> {
    let directions = if bidirectional { 2 } else { 1 };
    let name = format!("{}{:?}", if bidirectional { "bi" } else { "" }, cell).to_lowercase();
    (0..layers)
        .map(|l| {
            let [steps, d_in] = b.shape()[..] else {
                panic!("recurrent layers read [steps, features], got {:?}", b.shape())
            };
            // Each gate has an input and a hidden-state linear map, each with a bias (as PyTorch).
            let per_direction = cell.gates() * (d_in * hidden + hidden + hidden * hidden + hidden);
            b.row(LayerSummary {
                name: format!("recurrent.{l}"),
                kind: name.clone(),
                hyper: format!("{d_in} -> {hidden}"),
                output_shape: vec![steps, hidden * directions],
                params: per_direction * directions,
                buffers: 0,
                macs: steps * directions * cell.gates() * (d_in + hidden) * hidden,
            });
            let (h, device) = (hidden, b.device());
            match (cell, bidirectional) {
                (Cell::Lstm, false) => RecurrentLayer::Lstm(LstmConfig::new(d_in, h, true).init(device)),
                (Cell::Lstm, true) => RecurrentLayer::BiLstm(BiLstmConfig::new(d_in, h, true).init(device)),
                (Cell::Gru, false) => RecurrentLayer::Gru(GruConfig::new(d_in, h, true).init(device)),
                (Cell::Gru, true) => RecurrentLayer::BiGru(BiGruConfig::new(d_in, h, true).init(device)),
                (Cell::Rnn, false) => RecurrentLayer::Rnn(RnnConfig::new(d_in, h, true).init(device)),
                (Cell::Rnn, true) => RecurrentLayer::BiRnn(BiRnnConfig::new(d_in, h, true).init(device)),
            }
        })
        .collect()
}

/// What a one-directional layer carries from one call to the next (for sampling).
#[derive(Debug, Clone)]
pub enum CellState {
    Lstm(LstmState<2>),
    /// GRU and plain RNN: the hidden state, `[batch, hidden]`.
    Hidden(Tensor<2>),
}

impl CellState {
    fn lstm(self) -> LstmState<2> {
        match self {
            CellState::Lstm(s) => s,
            CellState::Hidden(_) => unreachable!("an LSTM layer only ever returns LSTM states"),
        }
    }

    fn hidden(self) -> Tensor<2> {
        match self {
            CellState::Hidden(h) => h,
            CellState::Lstm(_) => {
                unreachable!("a GRU or RNN layer only ever returns hidden states")
            }
        }
    }
}

/// One recurrent layer of any cell, one or two directions.
#[derive(Module, Debug)]
pub enum RecurrentLayer {
    Lstm(Lstm),
    BiLstm(BiLstm),
    Gru(Gru),
    BiGru(BiGru),
    Rnn(Rnn),
    BiRnn(BiRnn),
}

impl RecurrentLayer {
    /// # Shapes
    /// - input: `[batch, steps, features]`; output: `[batch, steps, hidden * directions]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            RecurrentLayer::Lstm(m) => m.forward(x, None).0,
            RecurrentLayer::BiLstm(m) => m.forward(x, None).0,
            RecurrentLayer::Gru(m) => m.forward(x, None),
            RecurrentLayer::BiGru(m) => m.forward(x, None).0,
            RecurrentLayer::Rnn(m) => m.forward(x, None).0,
            RecurrentLayer::BiRnn(m) => m.forward(x, None).0,
        }
    }
}

impl RecurrentLayer {
    /// Runs a one-directional layer from `state` (zeros when `None`) and returns its final state.
    ///
    /// # Shapes
    /// - input: `[batch, steps, features]`; output: `[batch, steps, hidden]`
    pub fn forward_with_state(
        &self,
        x: Tensor<3>,
        state: Option<CellState>,
    ) -> (Tensor<3>, CellState) {
        match self {
            RecurrentLayer::Lstm(m) => {
                let (out, state) = m.forward(x, state.map(CellState::lstm));
                (out, CellState::Lstm(state))
            }
            RecurrentLayer::Gru(m) => {
                let out = m.forward(x, state.map(CellState::hidden));
                let [batch, steps, hidden] = out.dims();
                let last = out.clone().narrow(1, steps - 1, 1).reshape([batch, hidden]);
                (out, CellState::Hidden(last))
            }
            RecurrentLayer::Rnn(m) => {
                let (out, state) = m.forward(x, state.map(|s| RnnState::new(s.hidden())));
                (out, CellState::Hidden(state.hidden))
            }
            _ => panic!("a bidirectional layer needs the whole sequence; it cannot carry a state"),
        }
    }
}

#[derive(Module, Debug)]
pub struct RecurrentClassifier {
    pub layers: Vec<RecurrentLayer>,
    pub dropout: Option<Dropout>,
    pub head: Linear,
    #[module(skip)]
    pub hidden: usize,
    #[module(skip)]
    pub bidirectional: bool,
    #[module(skip)]
    pub readout: Readout,
}

impl ImageClassifier for RecurrentClassifier {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

impl RecurrentClassifier {
    /// # Shapes
    /// - images: `[batch, channels, height, width]`, read as `height` steps of `channels * width`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let [batch, channels, height, width] = images.dims();
        // [batch, steps, features]: row r of every channel side by side.
        let mut x = images
            .swap_dims(1, 2)
            .reshape([batch, height, channels * width]);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if let (Some(dropout), true) = (&self.dropout, i + 1 < self.layers.len()) {
                x = dropout.forward(x);
            }
        }
        let [_, steps, width] = x.dims();
        let features = match self.readout {
            Readout::Mean => x.mean_dim(1).reshape([batch, width]),
            Readout::Last if self.bidirectional => {
                // The forward direction ends at the last step, the reverse one at the first.
                let h = self.hidden;
                let forward = x.clone().narrow(1, steps - 1, 1).narrow(2, 0, h);
                let reverse = x.narrow(1, 0, 1).narrow(2, h, h);
                Tensor::cat(vec![forward, reverse], 2).reshape([batch, width])
            }
            Readout::Last | Readout::LastOutput => {
                x.narrow(1, steps - 1, 1).reshape([batch, width])
            }
        };
        self.head.forward(features)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::models::testing::{built, fashion as rows_input, rows};

    #[test]
    fn lstm_128_has_pytorchs_count_plus_the_head() {
        let config = RecurrentConfig::default();
        let (model, rows) = built(&config, &rows_input());
        let total: usize = rows.iter().map(|l| l.params).sum();
        // nn.LSTM(28, 128) has 80,896 parameters; the head 128 * 10 + 10.
        assert_eq!(total, 80_896 + 1_290);
        assert_eq!(model.num_params(), total);
    }

    #[test]
    fn every_cell_and_direction_builds_runs_and_backpropagates_on_both_cpu_backends() {
        #[allow(deprecated)]
        let devices = [Device::flex(), Device::ndarray()];
        for device in devices {
            for cell in [Cell::Lstm, Cell::Gru, Cell::Rnn] {
                for (bidirectional, readout) in [
                    (false, Readout::Last),
                    (true, Readout::Last),
                    (true, Readout::Mean),
                ] {
                    let config = RecurrentConfig {
                        cell,
                        hidden: 8,
                        layers: 2,
                        bidirectional,
                        dropout: 0.1,
                        readout,
                    };
                    let expected: usize =
                        rows(&config, &rows_input()).iter().map(|l| l.params).sum();
                    let ad = device.clone().autodiff();
                    let mut b = NetBuilder::new(&rows_input().map(), &ad);
                    let model = config.build(&rows_input(), &mut b);
                    assert_eq!(
                        model.num_params(),
                        expected,
                        "{cell:?} bidirectional={bidirectional}"
                    );
                    let images = Tensor::<4>::random(
                        [3, 1, 28, 28],
                        burn::tensor::Distribution::Normal(0.0, 1.0),
                        &ad,
                    );
                    let logits = model.forward(images);
                    assert_eq!(logits.dims(), [3, 10]);
                    let grads = logits.sum().backward();
                    let grad = model.head.weight.grad(&grads).expect("the head takes part");
                    assert!(grad.abs().sum().into_scalar::<f64>() > 0.0);
                }
            }
        }
    }
}
