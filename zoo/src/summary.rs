//! The notes' per-layer table, computed from a config with the notes' formulas (no tensors):
//! output shape, parameters (weights + biases), buffers (e.g. batch-norm running statistics,
//! which are not trained) and multiply-accumulates per example.

use serde::Serialize;

use crate::input::ModelInput;

/// Output side of a convolution or pooling window: floor((W - F + 2P) / S) + 1, or the
/// ceiling where `ceil` is set (Caffe's pooling, PyTorch's and Burn's `ceil_mode`, which
/// also drop a last window that would start in the right padding).
pub fn conv_output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    ceil: bool,
) -> usize {
    // A window larger than the padded input fits nowhere.
    let Some(span) = (input + 2 * padding).checked_sub(kernel) else {
        return 0;
    };
    if !ceil {
        return span / stride + 1;
    }
    let out = span.div_ceil(stride) + 1;
    if (out - 1) * stride >= input + padding {
        out - 1
    } else {
        out
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSummary {
    pub name: String,
    pub kind: String,
    /// Hyperparameters in the notes' shorthand, e.g. `784 -> 100`.
    pub hyper: String,
    /// Per example (no batch dimension), channels first.
    pub output_shape: Vec<usize>,
    pub params: usize,
    pub buffers: usize,
    pub macs: usize,
}

impl LayerSummary {
    pub fn flatten(input: &ModelInput) -> Self {
        Self::flatten_map("flatten", [input.channels, input.height, input.width])
    }

    /// FC: n_out (n_in + 1) parameters and n_in n_out multiply-accumulates.
    pub fn linear(name: &str, n_in: usize, n_out: usize) -> Self {
        Self {
            name: name.into(),
            kind: "linear".into(),
            hyper: format!("{n_in} -> {n_out}"),
            output_shape: vec![n_out],
            params: n_out * (n_in + 1),
            buffers: 0,
            macs: n_in * n_out,
        }
    }

    /// Convolution: K (F F C_in + 1) parameters and H_out W_out K F F C_in multiply-accumulates.
    /// `input` is `[channels, height, width]`.
    pub fn conv2d(
        name: &str,
        input: [usize; 3],
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        let [c_in, h, w] = input;
        let (h_out, w_out) = (
            conv_output_size(h, kernel, stride, padding, false),
            conv_output_size(w, kernel, stride, padding, false),
        );
        Self {
            name: name.into(),
            kind: "conv2d".into(),
            hyper: format!("{out_channels}@{kernel}x{kernel}/{stride} pad {padding}"),
            output_shape: vec![out_channels, h_out, w_out],
            params: out_channels * (kernel * kernel * c_in + 1),
            buffers: 0,
            macs: h_out * w_out * out_channels * kernel * kernel * c_in,
        }
    }

    /// The same convolution without its bias vector (convolutions followed by batch norm).
    pub fn without_bias(mut self) -> Self {
        self.params -= self.output_shape[0];
        self.hyper.push_str(" no bias");
        self
    }

    /// Pooling: no parameters, H_out W_out C F F multiply-accumulates (the notes' count).
    pub fn pool2d(
        name: &str,
        kind: &str,
        input: [usize; 3],
        kernel: usize,
        stride: usize,
        padding: usize,
        ceil: bool,
    ) -> Self {
        let [c, h, w] = input;
        let (h_out, w_out) = (
            conv_output_size(h, kernel, stride, padding, ceil),
            conv_output_size(w, kernel, stride, padding, ceil),
        );
        Self {
            name: name.into(),
            kind: kind.into(),
            hyper: format!(
                "{kernel}x{kernel}/{stride}{}{}",
                if padding > 0 {
                    format!(" pad {padding}")
                } else {
                    String::new()
                },
                if ceil { " ceil" } else { "" }
            ),
            output_shape: vec![c, h_out, w_out],
            params: 0,
            buffers: 0,
            macs: h_out * w_out * c * kernel * kernel,
        }
    }

    /// Global average pooling to 1x1: one add per input value.
    pub fn global_avg_pool(name: &str, input: [usize; 3]) -> Self {
        Self::adaptive_avg_pool(name, input, [1, 1])
    }

    /// Adaptive average pooling to `output` (height, width), whatever the input's size.
    pub fn adaptive_avg_pool(name: &str, input: [usize; 3], output: [usize; 2]) -> Self {
        let [c, h, w] = input;
        let [oh, ow] = output;
        Self {
            name: name.into(),
            kind: "avgpool".into(),
            hyper: format!("{h}x{w} -> {oh}x{ow}"),
            output_shape: vec![c, oh, ow],
            params: 0,
            buffers: 0,
            // Each output averages about (h / oh) x (w / ow) inputs, at least one.
            macs: c * h.max(oh) * w.max(ow),
        }
    }

    /// The output shape as `[channels, height, width]`, for the next layer's input.
    pub fn chw(&self) -> [usize; 3] {
        match self.output_shape[..] {
            [c, h, w] => [c, h, w],
            _ => panic!("{} is not a feature map", self.name),
        }
    }

    /// Flattens a feature map into a vector.
    pub fn flatten_map(name: &str, input: [usize; 3]) -> Self {
        let [c, h, w] = input;
        Self {
            name: name.into(),
            kind: "flatten".into(),
            hyper: format!("{h}x{w}x{c} -> {}", c * h * w),
            output_shape: vec![c * h * w],
            params: 0,
            buffers: 0,
            macs: 0,
        }
    }

    /// Batch norm over the first dimension of `shape`: scale and shift are trained, the
    /// running mean and variance are buffers.
    pub fn batch_norm(name: &str, shape: &[usize]) -> Self {
        Self {
            name: name.into(),
            kind: "batch_norm".into(),
            hyper: format!("{} features", shape[0]),
            output_shape: shape.to_vec(),
            params: 2 * shape[0],
            buffers: 2 * shape[0],
            macs: 0,
        }
    }

    /// Feature maps joined along channels (an Inception module's output).
    pub fn concat(name: &str, parts: &[[usize; 3]]) -> Self {
        let [_, h, w] = parts[0];
        let channels: usize = parts.iter().map(|p| p[0]).sum();
        Self {
            name: name.into(),
            kind: "concat".into(),
            hyper: parts
                .iter()
                .map(|p| p[0].to_string())
                .collect::<Vec<_>>()
                .join(" + "),
            output_shape: vec![channels, h, w],
            params: 0,
            buffers: 0,
            macs: 0,
        }
    }

    /// A parameter-free layer that keeps its input's shape (activation, dropout).
    pub fn elementwise(name: &str, kind: &str, shape: &[usize]) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            hyper: String::new(),
            output_shape: shape.to_vec(),
            params: 0,
            buffers: 0,
            macs: 0,
        }
    }
}

/// The whole table with its totals.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub model: String,
    pub input: ModelInput,
    pub total_params: usize,
    pub total_buffers: usize,
    pub total_macs: usize,
    pub layers: Vec<LayerSummary>,
}

impl Summary {
    pub fn new(model: &str, input: ModelInput, layers: Vec<LayerSummary>) -> Self {
        Self {
            model: model.into(),
            input,
            total_params: layers.iter().map(|l| l.params).sum(),
            total_buffers: layers.iter().map(|l| l.buffers).sum(),
            total_macs: layers.iter().map(|l| l.macs).sum(),
            layers,
        }
    }

    /// The table as the notes print it.
    pub fn to_table(&self) -> String {
        let header = [
            "layer",
            "kind",
            "hyperparameters",
            "output (HxWxC)",
            "params",
            "MACs",
        ];
        let rows: Vec<[String; 6]> = self
            .layers
            .iter()
            .map(|l| {
                [
                    l.name.clone(),
                    l.kind.clone(),
                    l.hyper.clone(),
                    notes_shape(&l.output_shape),
                    group_digits(l.params),
                    group_digits(l.macs),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i >= 4 {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut out = vec![
            line(&header.map(String::from)),
            "-".repeat(widths.iter().sum::<usize>() + 10),
        ];
        out.extend(rows.iter().map(|r| line(r)));
        out.push(format!(
            "total: {} trainable parameters, {} buffers, {} multiply-accumulates per example",
            group_digits(self.total_params),
            group_digits(self.total_buffers),
            group_digits(self.total_macs)
        ));
        out.join("\n")
    }
}

/// A shape as the notes write it: feature maps height x width x channels, vectors as a length.
pub fn notes_shape(shape: &[usize]) -> String {
    match shape {
        [c, h, w] => format!("{h}x{w}x{c}"),
        other => other
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x"),
    }
}

/// 61706 -> "61,706".
pub fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn notes_examples() {
        // LeNet-5's first convolution on 32x32 and its 2/2 pooling; AlexNet's 227 -> 55.
        assert_eq!(conv_output_size(32, 5, 1, 0, false), 28);
        assert_eq!(conv_output_size(28, 2, 2, 0, false), 14);
        assert_eq!(conv_output_size(227, 11, 4, 0, false), 55);
        // ZFNet's ceil-mode pooling: 110 -> 55 (floor would give 54).
        assert_eq!(conv_output_size(110, 3, 2, 0, true), 55);
        assert_eq!(conv_output_size(110, 3, 2, 0, false), 54);
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(61706), "61,706");
        assert_eq!(group_digits(138357544), "138,357,544");
    }

    proptest! {
        #[test]
        fn output_size_is_the_number_of_window_positions(
            input in 1usize..64, kernel in 1usize..8, stride in 1usize..5, padding in 0usize..4, ceil: bool
        ) {
            prop_assume!(kernel <= input + 2 * padding);
            // Ceil mode is a pooling option, and pooling pads at most half a window (PyTorch).
            prop_assume!(!ceil || 2 * padding <= kernel);
            let out = conv_output_size(input, kernel, stride, padding, ceil);
            // Count window starts directly. Floor mode: windows that fit in the padded input.
            // Ceil mode: also a last window overhanging the end by less than a stride, and
            // (as in PyTorch and Burn) no window that starts in the right padding.
            let padded = input + 2 * padding;
            let starts = (0..padded).step_by(stride);
            let expected = if ceil {
                starts.filter(|s| s + kernel < padded + stride && *s < input + padding).count()
            } else {
                starts.filter(|s| s + kernel <= padded).count()
            };
            prop_assert_eq!(out, expected);
        }
    }
}
