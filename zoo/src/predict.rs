//! `zoo predict`: a run's class probabilities for image files and `.npy` arrays.
//!
//! An image (PNG, JPEG) is brought to the run's input by the evaluation transform its config
//! implies (torchvision's for ImageNet-shaped configs: shorter side to 256/224 of the input,
//! bilinear, then a centre crop; otherwise a bilinear resize, none when the size already fits)
//! and the run's normalization. A `.npy` file of float32 `[N, C, H, W]` is taken as already
//! transformed; each of its N rows is one input. A directory stands for the image and `.npy`
//! files below it. Inputs go through the network a chunk at a time and each chunk's results
//! are handed on at once, so memory holds one chunk's images (and one directory's list of
//! files), however many files there are.

use std::io::Write;
use std::path::{Path, PathBuf};

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
use crate::models::{ImageClassifier, ImageModel};
use crate::run::load_trained;
use crate::run_dir::{self, NORMALIZATION_FILE};

/// The most inputs in one forward pass: enough to keep the CPU busy, few enough that the first
/// results print at once and memory stays small (the run's `data.eval_batch_size` when lower).
const MAX_CHUNK: usize = 64;

/// The extensions a directory's files are taken with (in any case).
const INPUT_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "npy"];

/// One input's scores.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The file, with `[n]` for a row of a `.npy` array.
    pub input: String,
    pub logits: Vec<f32>,
    pub probabilities: Vec<f32>,
}

/// A trained run's network with what its inputs need: the transform, the normalization and
/// the names of its classes.
pub struct Predictor {
    model: ImageModel,
    device: Device,
    standardization: Standardization,
    shape: ModelInput,
    /// ImageNet-shaped and image-folder runs take torchvision's evaluation transform.
    imagenet: bool,
    class_names: Vec<String>,
    chunk_size: usize,
}

impl Predictor {
    /// The run in `run_dir`, on `backend`.
    pub fn load(run_dir: &Path, backend: Backend) -> Result<Self> {
        let device = backend.device();
        let (exp, model) = load_trained(run_dir, &device)?;
        Ok(Self {
            model,
            device,
            standardization: run_dir::load_json(run_dir, NORMALIZATION_FILE)?,
            shape: image_input(&exp.data),
            imagenet: exp.data.dataset.reads_folders(),
            class_names: class_names(&exp.data),
            chunk_size: exp.data.eval_batch_size.clamp(1, MAX_CHUNK),
        })
    }

    /// The names of the run's classes, by class index.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Classifies `inputs` in order, handing each chunk's predictions to `each_chunk` as soon
    /// as they are computed. An input is an image file, a `.npy` file or a directory, which
    /// stands for the files below it (see `files_below`).
    pub fn predict(
        &self,
        inputs: &[impl AsRef<Path>],
        mut each_chunk: impl FnMut(&[Prediction]) -> Result<()>,
    ) -> Result<()> {
        if let Some(missing) = inputs.iter().map(AsRef::as_ref).find(|i| !i.exists()) {
            bail!("{}: no such file", missing.display());
        }
        let per_input = self.shape.flat_size();
        let (mut names, mut values) = (Vec::new(), Vec::new());
        for input in inputs {
            let input = input.as_ref();
            // A directory is listed when it is reached, so that one list at a time is held.
            let files = match input.is_dir() {
                true => files_below(input)?,
                false => vec![input.to_path_buf()],
            };
            for path in &files {
                self.decode(path, &mut names, &mut values)?;
                // A `.npy` file may add many rows at once: they go through a chunk at a time.
                while names.len() >= self.chunk_size {
                    let chunk_names: Vec<String> = names.drain(..self.chunk_size).collect();
                    let chunk_values: Vec<f32> =
                        values.drain(..self.chunk_size * per_input).collect();
                    each_chunk(&self.forward(chunk_names, chunk_values))?;
                }
            }
        }
        if !names.is_empty() {
            each_chunk(&self.forward(names, values))?;
        }
        Ok(())
    }

    /// Appends the inputs of one file, transformed and normalized: their names and values.
    fn decode(&self, path: &Path, names: &mut Vec<String>, values: &mut Vec<f32>) -> Result<()> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
        {
            let rows = read_npy(path, &self.shape)?;
            for (n, row) in rows.chunks_exact(self.shape.flat_size()).enumerate() {
                names.push(format!("{}[{n}]", path.display()));
                values.extend_from_slice(row);
            }
        } else {
            let pixels = read_image(path, &self.shape, self.imagenet)?;
            self.standardization.apply(&pixels, values);
            names.push(path.display().to_string());
        }
        Ok(())
    }

    /// One forward pass over the inputs `names` whose values are `values`.
    fn forward(&self, names: Vec<String>, values: Vec<f32>) -> Vec<Prediction> {
        let shape = &self.shape;
        let images = Tensor::<4>::from_data(
            TensorData::new(
                values,
                [names.len(), shape.channels, shape.height, shape.width],
            ),
            &self.device,
        );
        let logits = self.model.logits(images);
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
        names
            .into_iter()
            .zip(rows(logits))
            .zip(rows(probabilities))
            .map(|((input, logits), probabilities)| Prediction {
                input,
                logits,
                probabilities,
            })
            .collect()
    }
}

/// The files below `dir` (recursively) whose extension is `.png`, `.jpg`, `.jpeg` or `.npy`,
/// sorted by path; an error when there is none.
fn files_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    collect_files(dir, &mut found)?;
    if found.is_empty() {
        bail!(
            "{}: a directory with no .png, .jpg, .jpeg or .npy file below it",
            dir.display()
        );
    }
    found.sort();
    Ok(found)
}

/// Appends the input files below `dir` (not following links to directories: no cycles).
fn collect_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .with_context(|| format!("cannot read {}", path.display()))?
            .is_dir();
        let wanted = path.extension().is_some_and(|e| {
            let e = e.to_string_lossy().to_ascii_lowercase();
            INPUT_EXTENSIONS.contains(&e.as_str())
        });
        if is_dir {
            collect_files(&path, found)?;
        } else if wanted {
            found.push(path);
        }
    }
    Ok(())
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

/// Prints predictions as they come. Text: per input its name, then `probability  class  name`
/// lines. JSON: one array with an object per input (input, logits, top classes), written
/// element by element, the same bytes as the whole array printed at once.
pub struct PredictionWriter<W: Write> {
    out: W,
    class_names: Vec<String>,
    top: usize,
    json: bool,
    written: usize,
}

impl<W: Write> PredictionWriter<W> {
    /// A writer of the `top` classes of each input, to `out`.
    pub fn new(out: W, class_names: &[String], top: usize, json: bool) -> Self {
        Self {
            out,
            class_names: class_names.to_vec(),
            top,
            json,
            written: 0,
        }
    }

    /// Writes `chunk` and flushes it, so that a reader sees each chunk as it is computed.
    pub fn write(&mut self, chunk: &[Prediction]) -> std::io::Result<()> {
        for prediction in chunk {
            let text = match self.json {
                true => self.json_element(prediction),
                false => self.text_block(prediction),
            };
            self.out.write_all(text.as_bytes())?;
            self.written += 1;
        }
        self.out.flush()
    }

    /// Closes the JSON array and flushes.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.json {
            let end = if self.written == 0 { "[]\n" } else { "\n]\n" };
            self.out.write_all(end.as_bytes())?;
        }
        self.out.flush()
    }

    fn text_block(&self, prediction: &Prediction) -> String {
        let mut text = format!("{}\n", prediction.input);
        for (class, probability) in top(prediction, self.top) {
            let name = &self.class_names[class];
            text += &format!("  {:6.2}%  {class:>4}  {name}\n", 100.0 * probability);
        }
        text
    }

    /// The element, indented as the array's pretty printing indents it, after `[` or `,`.
    fn json_element(&self, prediction: &Prediction) -> String {
        let element = JsonPrediction {
            input: &prediction.input,
            logits: &prediction.logits,
            top: top(prediction, self.top)
                .into_iter()
                .map(|(class, probability)| JsonTop {
                    class,
                    name: &self.class_names[class],
                    probability,
                })
                .collect(),
        };
        let pretty = serde_json::to_string_pretty(&element).expect("predictions serialize");
        let opening = if self.written == 0 { "[\n" } else { ",\n" };
        let lines: Vec<String> = pretty.lines().map(|l| format!("  {l}")).collect();
        format!("{opening}{}", lines.join("\n"))
    }
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

    fn prediction(input: &str, probabilities: [f32; 3]) -> Prediction {
        Prediction {
            input: input.into(),
            logits: probabilities.iter().map(|p| p.ln()).collect(),
            probabilities: probabilities.to_vec(),
        }
    }

    fn written(chunks: &[&[Prediction]], json: bool) -> String {
        let names = ["cat", "dog", "bird"].map(String::from);
        let mut out = Vec::new();
        let mut writer = PredictionWriter::new(&mut out, &names, 2, json);
        for chunk in chunks {
            writer.write(chunk).unwrap();
        }
        writer.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_written_in_chunks_is_the_array_printed_at_once() {
        let items = [
            prediction("a.png", [0.5, 0.2, 0.3]),
            prediction("b.png", [0.1, 0.7, 0.2]),
            prediction("c.npy[0]", [0.3, 0.3, 0.4]),
        ];
        // What the whole array printed at once was: the elements serialized together.
        let names = ["cat", "dog", "bird"];
        let whole: Vec<JsonPrediction> = items
            .iter()
            .map(|p| JsonPrediction {
                input: &p.input,
                logits: &p.logits,
                top: top(p, 2)
                    .into_iter()
                    .map(|(class, probability)| JsonTop {
                        class,
                        name: names[class],
                        probability,
                    })
                    .collect(),
            })
            .collect();
        let at_once = serde_json::to_string_pretty(&whole).unwrap() + "\n";
        assert_eq!(written(&[&items[..2], &items[2..]], true), at_once);
        assert_eq!(written(&[], true), "[]\n");
    }

    #[test]
    fn text_is_one_block_per_input() {
        let items = [prediction("a.png", [0.5, 0.2, 0.3])];
        assert_eq!(
            written(&[&items], false),
            "a.png\n   50.00%     0  cat\n   30.00%     2  bird\n"
        );
    }

    #[test]
    fn directories_stand_for_their_input_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in ["b/2.png", "b/1.JPG", "a/x.npy", "a/notes.txt", "c.jpeg"] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
        std::fs::create_dir(root.join("empty")).unwrap();
        let files = files_below(root).unwrap();
        let shown: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap())
            .collect();
        let expected = ["a/x.npy", "b/1.JPG", "b/2.png", "c.jpeg"];
        assert_eq!(shown, expected.map(Path::new));
        let err = files_below(&root.join("empty")).unwrap_err();
        assert!(err.to_string().contains("no .png, .jpg"), "{err}");
    }
}
