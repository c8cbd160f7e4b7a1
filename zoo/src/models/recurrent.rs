//! Recurrent sequence classifiers of the notes: stacked LSTM, GRU or plain tanh RNN layers,
//! optionally bidirectional, with dropout between layers, read out by the last hidden state
//! (both directions' final states when bidirectional) or the mean over time, into a linear
//! head. Images are read as sequences of rows: 28 steps of 28 features for Fashion-MNIST.
//! The cells are PyTorch's: gates stacked in one `[gates * hidden, input]` weight per side,
//! PyTorch's parameter names and initialization; the steps run in zoo's own kernels
//! (`kernels::lstm`, `kernels::gru`). The kind is `recurrent`; `lstm`, its first name, is
//! still read.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::builder::{Init, NetBuilder};
use super::family::{ImageClassifier, ImageFamily};
use super::pytorch_names::PytorchLayout;
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
    /// Gates per cell, stacked in PyTorch's order: i, f, g, o; r, z, n; one for the RNN.
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
        let mut layout = PytorchLayout::default().layer("head", "head");
        for l in 0..self.layers {
            layout = layout.cell(format!("layers.{l}.forward"), "rnn", l, false);
            if self.bidirectional {
                layout = layout.cell(format!("layers.{l}.reverse"), "rnn", l, true);
            }
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
            // Each side's stacked weight has a bias (as PyTorch).
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
            let direction = || CellWeights::new(cell, d_in, hidden, b.device());
            RecurrentLayer {
                forward: direction(),
                reverse: bidirectional.then(direction),
            }
        })
        .collect()
}

/// One direction of a recurrent layer, as PyTorch holds it: `weight_ih` `[gates * hidden,
/// input]`, `weight_hh` `[gates * hidden, hidden]` and a bias for each.
#[derive(Module, Debug)]
pub struct CellWeights {
    pub weight_ih: Param<Tensor<2>>,
    pub weight_hh: Param<Tensor<2>>,
    pub bias_ih: Param<Tensor<1>>,
    pub bias_hh: Param<Tensor<1>>,
    #[module(skip)]
    pub cell: Cell,
}

impl CellWeights {
    /// Burn's initialization of its cells, gate by gate: Xavier normal with each gate's fans
    /// (`input` or `hidden` in, `hidden` out), biases too. PyTorch's uniform +-1/sqrt(hidden)
    /// trained the shipped char-lm to 3.08 bits/char against this one's 2.89.
    fn new(cell: Cell, input: usize, hidden: usize, device: &Device) -> Self {
        let init = Initializer::XavierNormal { gain: 1.0 };
        let rows = cell.gates() * hidden;
        // Every gate maps `input` (or `hidden`) values to `hidden` ones.
        let (input_fan, hidden_fan) = (Some(input), Some(hidden));
        Self {
            weight_ih: init.init_with([rows, input], input_fan, hidden_fan, device),
            weight_hh: init.init_with([rows, hidden], hidden_fan, hidden_fan, device),
            bias_ih: init.init_with([rows], input_fan, hidden_fan, device),
            bias_hh: init.init_with([rows], hidden_fan, hidden_fan, device),
            cell,
        }
    }

    /// Runs the steps from `state` (zeros when `None`); returns the hidden states and the final
    /// state.
    ///
    /// # Shapes
    /// - x: `[batch, steps, input]`; output: `[batch, steps, hidden]`
    pub fn forward(&self, x: Tensor<3>, state: Option<CellState>) -> (Tensor<3>, CellState) {
        let [batch, steps, _] = x.dims();
        let hidden = self.weight_hh.dims()[1];
        let zeros = || Tensor::<2>::zeros([batch, hidden], &x.device());
        let last = |seq: Tensor<3>| seq.narrow(1, steps - 1, 1).reshape([batch, hidden]);
        let (w_ih, w_hh) = (self.weight_ih.val(), self.weight_hh.val());
        let (b_ih, b_hh) = (self.bias_ih.val(), self.bias_hh.val());
        match self.cell {
            Cell::Lstm => {
                let (h0, c0) = match state {
                    Some(CellState::Lstm { hidden, cell }) => (hidden, cell),
                    _ => (zeros(), zeros()),
                };
                let hc = kernels::lstm(x, w_ih, w_hh, b_ih + b_hh, h0, c0);
                let (h, c) = (hc.clone().narrow(2, 0, hidden), hc.narrow(2, hidden, hidden));
                let state = CellState::Lstm {
                    hidden: last(h.clone()),
                    cell: last(c),
                };
                (h, state)
            }
            Cell::Gru | Cell::Rnn => {
                let h0 = match state {
                    Some(CellState::Hidden(h)) => h,
                    _ => zeros(),
                };
                let h = match self.cell {
                    Cell::Gru => kernels::gru(x, w_ih, w_hh, b_ih, b_hh, h0),
                    _ => kernels::rnn(kernels::project(x, w_ih, b_ih), w_hh, b_hh, h0),
                };
                (h.clone(), CellState::Hidden(last(h)))
            }
        }
    }
}

/// What a one-directional layer carries from one call to the next (for sampling).
// One state per layer, held for a sampling run: boxing the larger variant would gain nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum CellState {
    /// The LSTM's hidden and cell states, each `[batch, hidden]`.
    Lstm { hidden: Tensor<2>, cell: Tensor<2> },
    /// GRU and plain RNN: the hidden state, `[batch, hidden]`.
    Hidden(Tensor<2>),
}

/// One recurrent layer: a forward direction and, when bidirectional, a reverse one that
/// reads the sequence from its end.
#[derive(Module, Debug)]
pub struct RecurrentLayer {
    pub forward: CellWeights,
    pub reverse: Option<CellWeights>,
}

impl RecurrentLayer {
    /// # Shapes
    /// - input: `[batch, steps, features]`; output: `[batch, steps, hidden * directions]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let Some(reverse) = &self.reverse else {
            return self.forward.forward(x, None).0;
        };
        let ahead = self.forward.forward(x.clone(), None).0;
        let back = reverse.forward(x.flip([1]), None).0.flip([1]);
        Tensor::cat(vec![ahead, back], 2)
    }

    /// Runs a one-directional layer from `state` (zeros when `None`) and returns its final state.
    ///
    /// # Shapes
    /// - input: `[batch, steps, features]`; output: `[batch, steps, hidden]`
    pub fn forward_with_state(
        &self,
        x: Tensor<3>,
        state: Option<CellState>,
    ) -> (Tensor<3>, CellState) {
        assert!(
            self.reverse.is_none(),
            "a bidirectional layer needs the whole sequence; it cannot carry a state"
        );
        self.forward.forward(x, state)
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
                x = kernels::dropout(dropout, x);
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
    use burn::nn::{GateController, GruConfig, LstmConfig, RnnConfig};
    use burn::tensor::Distribution;

    /// Burn's gate `k` (of `hidden` units) holding the rows of our stacked weights that are it;
    /// Burn's linear weights are `[in, out]`.
    fn burn_gate(ours: &CellWeights, template: GateController, k: usize) -> GateController {
        let hidden = ours.weight_hh.dims()[1];
        // Copies, so that Burn's weights are leaves of their own.
        let leaf = |t: Tensor<2>| Param::from_data(t.to_data(), &t.device());
        let rows = |w: &Param<Tensor<2>>| leaf(w.val().narrow(0, k * hidden, hidden).transpose());
        let part = |b: &Param<Tensor<1>>| {
            let b = b.val().narrow(0, k * hidden, hidden);
            Some(Param::from_data(b.to_data(), &b.device()))
        };
        let mut gate = template;
        gate.input_transform.weight = rows(&ours.weight_ih);
        gate.input_transform.bias = part(&ours.bias_ih);
        gate.hidden_transform.weight = rows(&ours.weight_hh);
        gate.hidden_transform.bias = part(&ours.bias_hh);
        gate
    }

    /// Largest difference relative to the largest magnitude of `expected`.
    fn gap<const D: usize>(ours: Tensor<D>, expected: Tensor<D>) -> f32 {
        let scale = expected.clone().abs().max().into_scalar::<f32>();
        (ours - expected).abs().max().into_scalar::<f32>() / scale
    }

    #[test]
    fn our_cells_compute_burns_lstm_gru_and_rnn_forward_and_backward() {
        #[allow(deprecated)]
        let devices = [Device::flex(), Device::ndarray()];
        for device in devices {
            let ad = device.clone().autodiff();
            for (cell, (batch, steps, input, hidden)) in
                [(Cell::Lstm, (3, 7, 5, 9)), (Cell::Gru, (2, 5, 6, 11)), (Cell::Rnn, (4, 3, 2, 5))]
            {
                let ours = CellWeights::new(cell, input, hidden, &ad);
                let x = Tensor::<3>::random([batch, steps, input], Distribution::Normal(0.0, 1.0), &ad)
                    .require_grad();
                let burn_out = match cell {
                    Cell::Lstm => {
                        let mut lstm = LstmConfig::new(input, hidden, true).init(&ad);
                        lstm.input_gate = burn_gate(&ours, lstm.input_gate, 0);
                        lstm.forget_gate = lstm.forget_gate.map(|g| burn_gate(&ours, g, 1));
                        lstm.cell_gate = burn_gate(&ours, lstm.cell_gate, 2);
                        lstm.output_gate = burn_gate(&ours, lstm.output_gate, 3);
                        lstm.forward(x.clone(), None).0
                    }
                    Cell::Rnn => {
                        let mut rnn = RnnConfig::new(input, hidden, true).init(&ad);
                        rnn.gate = burn_gate(&ours, rnn.gate, 0);
                        rnn.forward(x.clone(), None).0
                    }
                    Cell::Gru => {
                        let mut gru = GruConfig::new(input, hidden, true).init(&ad);
                        gru.reset_gate = burn_gate(&ours, gru.reset_gate, 0);
                        gru.update_gate = burn_gate(&ours, gru.update_gate, 1);
                        gru.new_gate = burn_gate(&ours, gru.new_gate, 2);
                        gru.forward(x.clone(), None)
                    }
                };
                let our_out = ours.forward(x.clone(), None).0;
                assert!(gap(our_out.clone(), burn_out.clone()) < 1e-5, "{cell:?} on {device:?}");
                let weights = Tensor::random(our_out.dims(), Distribution::Normal(0.0, 1.0), &ad);
                let ours_dx = x.grad(&(our_out * weights.clone()).sum().backward()).unwrap();
                let burns_dx = x.grad(&(burn_out * weights).sum().backward()).unwrap();
                assert!(gap(ours_dx, burns_dx) < 1e-4, "{cell:?} gradient on {device:?}");
            }
        }
    }

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
