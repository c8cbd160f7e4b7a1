//! `zoo predict`: a run's class probabilities for image files and `.npy` arrays.
//!
//! An image (PNG, JPEG) is brought to the run's input by the evaluation transform its config
//! implies (torchvision's for ImageNet-shaped configs: shorter side to 256/224 of the input,
//! bilinear, then a centre crop; otherwise a bilinear resize, none when the size already fits)
//! and the run's normalization. A `.npy` file of float32 `[N, C, H, W]` is taken as already
//! transformed; each of its N rows is one input.

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use datasets::folder::{centre_crop, resize_shorter, rgb_to_chw};
use datasets::Standardization;
use image::imageops::FilterType;
use serde::Serialize;

use crate::backend::Backend;
use crate::data::{class_names, image_input};
use crate::input::ModelInput;
use crate::models::ImageClassifier;
use crate::run::load_trained;
use crate::run_dir::{self, NORMALIZATION_FILE};

/// One input's scores.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The file, with `[n]` for a row of a `.npy` array.
    pub input: String,
    pub logits: Vec<f32>,
    pub probabilities: Vec<f32>,
}

/// Every input's scores, and the names of the run's classes.
#[derive(Debug, Clone)]
pub struct Predictions {
    pub class_names: Vec<String>,
    pub items: Vec<Prediction>,
}

/// Classifies `inputs` with the run in `run_dir`, in input order.
pub fn predict(
    run_dir: &Path,
    inputs: &[impl AsRef<Path>],
    backend: Backend,
) -> Result<Predictions> {
    let device = backend.device();
    let (exp, model) = load_trained(run_dir, &device)?;
    let standardization: Standardization = run_dir::load_json(run_dir, NORMALIZATION_FILE)?;
    let shape = image_input(&exp.data);
    // ImageNet-shaped and image-folder runs take torchvision's evaluation transform.
    let imagenet = exp.data.dataset.reads_folders();
    let (mut names, mut values) = (Vec::new(), Vec::new());
    for path in inputs {
        let path = path.as_ref();
        if path.extension().is_some_and(|e| e == "npy") {
            let rows = read_npy(path, &shape)?;
            let per_row = shape.flat_size();
            for (n, row) in rows.chunks_exact(per_row).enumerate() {
                names.push(format!("{}[{n}]", path.display()));
                values.extend_from_slice(row);
            }
        } else {
            let pixels = read_image(path, &shape, imagenet)?;
            standardization.apply(&pixels, &mut values);
            names.push(path.display().to_string());
        }
    }
    let batch = names.len();
    let images = Tensor::<4>::from_data(
        TensorData::new(values, [batch, shape.channels, shape.height, shape.width]),
        &device,
    );
    let logits = model.logits(images);
    let probabilities = softmax(logits.clone(), 1);
    let rows = |t: Tensor<2>| -> Vec<Vec<f32>> {
        let flat: Vec<f32> = t
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 scores");
        flat.chunks(shape.num_classes)
            .map(<[f32]>::to_vec)
            .collect()
    };
    let items = names
        .into_iter()
        .zip(rows(logits))
        .zip(rows(probabilities))
        .map(|((input, logits), probabilities)| Prediction {
            input,
            logits,
            probabilities,
        })
        .collect();
    Ok(Predictions {
        class_names: class_names(&exp.data),
        items,
    })
}

/// The CHW pixels of an image file after the run's evaluation transform (before normalization).
fn read_image(path: &Path, shape: &ModelInput, imagenet: bool) -> Result<Vec<u8>> {
    if !path.is_file() {
        bail!("{}: no such file", path.display());
    }
    let image = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .with_context(|| format!("cannot read {}", path.display()))?
        .decode()
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: not a PNG or JPEG image this run can read ({e})",
                path.display()
            )
        })?;
    let (height, width) = (shape.height as u32, shape.width as u32);
    if imagenet && shape.channels == 3 {
        let resized = resize_shorter(&image.to_rgb8(), height * 256 / 224);
        return Ok(rgb_to_chw(&centre_crop(&resized, height, width)));
    }
    let image = match image.height() == height && image.width() == width {
        true => image,
        false => image.resize_exact(width, height, FilterType::Triangle),
    };
    Ok(match shape.channels {
        1 => image.to_luma8().into_raw(),
        3 => rgb_to_chw(&image.to_rgb8()),
        c => bail!(
            "{}: the run reads {c}-channel images; zoo predicts from 1 (grayscale) or 3 (RGB)",
            path.display()
        ),
    })
}

/// The floats of a `.npy` file holding float32 `[N, C, H, W]` with the run's C, H and W.
fn read_npy(path: &Path, shape: &ModelInput) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let expected = format!(
        "float32 [N, {}, {}, {}]",
        shape.channels, shape.height, shape.width
    );
    let fail = |what: String| anyhow::anyhow!("{}: {what}; expected {expected}", path.display());
    let (descr, dims, data) = parse_npy(&bytes).map_err(|e| fail(e.into()))?;
    if descr != "<f4" {
        return Err(fail(format!(
            "the array holds {descr:?}, not little-endian float32 (\"<f4\")"
        )));
    }
    let [_, c, h, w] = dims[..] else {
        return Err(fail(format!("the array has shape {dims:?}")));
    };
    if [c, h, w] != [shape.channels, shape.height, shape.width] {
        return Err(fail(format!("the array has shape {dims:?}")));
    }
    let count: usize = dims.iter().product();
    if data.len() != count * 4 {
        return Err(fail(format!(
            "the file holds {} data bytes for shape {dims:?}",
            data.len()
        )));
    }
    Ok(data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The dtype, shape and data bytes of a C-order `.npy` file (format versions 1 to 3).
fn parse_npy(bytes: &[u8]) -> Result<(String, Vec<usize>, &[u8]), &'static str> {
    let rest = bytes
        .strip_prefix(b"\x93NUMPY")
        .ok_or("not a .npy file (no \\x93NUMPY header)")?;
    let (major, rest) = rest.split_first().ok_or("truncated header")?;
    let rest = rest.get(1..).ok_or("truncated header")?;
    let (len, rest) = match major {
        1 => (u16::from_le_bytes([rest[0], rest[1]]) as usize, &rest[2..]),
        2 | 3 => (
            u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize,
            &rest[4..],
        ),
        _ => return Err("unknown .npy version"),
    };
    let header = std::str::from_utf8(rest.get(..len).ok_or("truncated header")?)
        .map_err(|_| "header is not text")?;
    let value = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    if value("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-ordered arrays are not read (save with np.ascontiguousarray)");
    }
    let descr = value("descr")
        .and_then(|v| v.strip_prefix('\'')?.split('\'').next())
        .ok_or("no descr in the header")?;
    let dims = value("shape")
        .and_then(|v| v.strip_prefix('(')?.split(')').next())
        .ok_or("no shape in the header")?
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| "unreadable shape"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((descr.to_string(), dims, &rest[len..]))
}

/// The `k` most probable classes of a prediction, as (class, probability), best first.
fn top(prediction: &Prediction, k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = prediction
        .probabilities
        .iter()
        .copied()
        .enumerate()
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}

/// One block per input: its name, then `probability  class  name` lines.
pub fn to_text(predictions: &Predictions, k: usize) -> String {
    let mut text = String::new();
    for p in &predictions.items {
        text.push_str(&format!("{}\n", p.input));
        for (class, probability) in top(p, k) {
            let name = &predictions.class_names[class];
            text.push_str(&format!(
                "  {:6.2}%  {class:>4}  {name}\n",
                100.0 * probability
            ));
        }
    }
    text
}

#[derive(Serialize)]
struct JsonTop<'a> {
    class: usize,
    name: &'a str,
    probability: f32,
}

#[derive(Serialize)]
struct JsonPrediction<'a> {
    input: &'a str,
    logits: &'a [f32],
    top: Vec<JsonTop<'a>>,
}

/// A JSON array with one object per input, in input order.
pub fn to_json(predictions: &Predictions, k: usize) -> String {
    let items: Vec<JsonPrediction> = predictions
        .items
        .iter()
        .map(|p| JsonPrediction {
            input: &p.input,
            logits: &p.logits,
            top: top(p, k)
                .into_iter()
                .map(|(class, probability)| JsonTop {
                    class,
                    name: &predictions.class_names[class],
                    probability,
                })
                .collect(),
        })
        .collect();
    serde_json::to_string_pretty(&items).expect("predictions serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 `.npy` header as NumPy writes it (padded to 64 bytes), then `data`.
    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        let header = format!("{dict:<117}\n");
        [
            b"\x93NUMPY\x01\x00v\x00".as_slice(),
            header.as_bytes(),
            data,
        ]
        .concat()
    }

    #[test]
    fn npy_headers_are_read() {
        let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = npy("<f4", "(2, 1, 1, 1)", &data);
        let (descr, dims, rest) = parse_npy(&bytes).unwrap();
        assert_eq!(
            (descr.as_str(), dims, rest.len()),
            ("<f4", vec![2, 1, 1, 1], 8)
        );
        let one = npy("<f8", "(3,)", &[0; 24]);
        assert_eq!(parse_npy(&one).unwrap().1, vec![3]);
        assert!(parse_npy(b"PK\x03\x04").is_err());
    }
}
