//! Image folders in torchvision's `ImageFolder` layout (`<dir>/train/<class>/*.jpg`, the same
//! classes under `val/` and an optional `test/`), read lazily: a split holds file paths, and a
//! loader decodes each batch's files in parallel worker threads while the model trains on the
//! previous batch, so memory stays flat however many images there are.
//!
//! Transforms are torchvision's reference recipe: a random resized crop for training (scale and
//! aspect ratio drawn per image from a generator seeded by (epoch seed, image index), so a
//! resumed run repeats the uninterrupted one), and for evaluation the shorter side to 256/224 of
//! the output, then a centre crop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::prelude::*;
use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::augment::Augmentation;
use crate::batch::{ImageBatch, ImageBatcher, ImageItem};
use crate::error::DataError;
use crate::images::ImageSet;

/// The file extensions read as images (the codecs zoo is built with).
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// How many decoded batches the loader keeps ready ahead of the trainer.
const PREFETCH_BATCHES: usize = 2;

/// The sorted class folder names under `<dir>/train`: the classes of an image-folder dataset.
pub fn folder_classes(dir: &Path) -> Result<Vec<String>, DataError> {
    let train = dir.join("train");
    let classes = subfolders(&train)?;
    if classes.is_empty() {
        return Err(DataError::format(
            &train,
            "holds no class folders (expected train/<class>/<image>, as torchvision's ImageFolder)",
        ));
    }
    Ok(classes)
}

fn subfolders(dir: &Path) -> Result<Vec<String>, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            dir: dir.parent().unwrap_or(dir).to_path_buf(),
            file: dir
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into()),
            what: "image folder split".into(),
            hint: "an image-folder dataset holds train/<class>/*.jpg and val/<class>/*.jpg (optionally test/<class>/*.jpg); point data.dir at it".into(),
        });
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The image files of one split, with their class indices (into the classes it was scanned
/// for), in class order and then file name order.
#[derive(Debug)]
pub struct ImageFolder {
    pub files: Vec<(PathBuf, u8)>,
    /// The indices of the files that could not be decoded and were skipped
    /// (`data.skip_bad_images`): each once, however many epochs met it.
    skipped: Mutex<BTreeSet<usize>>,
}

impl ImageFolder {
    /// Lists `dir`'s files for `classes`: every class must have a folder here holding at least
    /// one PNG or JPEG, and no other class folder may be present.
    pub fn scan(dir: &Path, classes: &[String]) -> Result<Self, DataError> {
        if classes.len() > 256 {
            return Err(DataError::format(
                dir,
                format!("holds {} classes; zoo reads at most 256", classes.len()),
            ));
        }
        let present = subfolders(dir)?;
        if let Some(extra) = present.iter().find(|c| !classes.contains(c)) {
            return Err(DataError::format(
                &dir.join(extra),
                "is a class folder that train/ does not have",
            ));
        }
        let mut files = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let class_dir = dir.join(class);
            if !class_dir.is_dir() {
                return Err(DataError::format(
                    &class_dir,
                    format!("missing: class {class:?} of train/ has no folder here"),
                ));
            }
            let mut class_files = Vec::new();
            for entry in std::fs::read_dir(&class_dir).map_err(|e| DataError::io(&class_dir, e))? {
                let path = entry.map_err(|e| DataError::io(&class_dir, e))?.path();
                let is_image = path.extension().is_some_and(|e| {
                    IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())
                });
                if is_image && path.is_file() {
                    class_files.push(path);
                }
            }
            if class_files.is_empty() {
                return Err(DataError::format(
                    &class_dir,
                    "is an empty class folder (no .png, .jpg or .jpeg files)",
                ));
            }
            class_files.sort();
            files.extend(class_files.into_iter().map(|p| (p, label as u8)));
        }
        Ok(Self {
            files,
            skipped: Mutex::default(),
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// The files skipped so far because they could not be decoded.
    pub fn skipped_files(&self) -> Vec<PathBuf> {
        let skipped = self.skipped.lock().expect("no panic while holding it");
        skipped.iter().map(|&i| self.files[i].0.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// `[data.crop]`: torchvision's `RandomResizedCrop` for training images: a crop covering a
/// uniform fraction `scale` of the image, with a log-uniform aspect ratio in `ratio`, resized
/// to the model's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CropConfig {
    pub scale: [f64; 2],
    pub ratio: [f64; 2],
}

impl Default for CropConfig {
    fn default() -> Self {
        Self {
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
        }
    }
}

impl CropConfig {
    /// Checks the ranges; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let [s0, s1] = self.scale;
        if !(0.0 < s0 && s0 <= s1 && s1 <= 1.0) {
            return Err((
                "scale".into(),
                format!("expected 0 < low <= high <= 1, got [{s0}, {s1}]"),
            ));
        }
        let [r0, r1] = self.ratio;
        if !(0.0 < r0 && r0 <= r1) {
            return Err((
                "ratio".into(),
                format!("expected 0 < low <= high, got [{r0}, {r1}]"),
            ));
        }
        Ok(())
    }

    /// The crop `(left, top, width, height)` of a `width` x `height` image, as torchvision
    /// draws it: ten tries at a random area and aspect ratio, else the centre crop with the
    /// ratio clamped to the range.
    pub fn draw(&self, width: u32, height: u32, rng: &mut impl Rng) -> (u32, u32, u32, u32) {
        let area = (width * height) as f64;
        let (log_r0, log_r1) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target = area * rng.random_range(self.scale[0]..=self.scale[1]);
            let aspect = rng.random_range(log_r0..=log_r1).exp();
            let w = (target * aspect).sqrt().round() as u32;
            let h = (target / aspect).sqrt().round() as u32;
            if 0 < w && w <= width && 0 < h && h <= height {
                let top = rng.random_range(0..=height - h);
                let left = rng.random_range(0..=width - w);
                return (left, top, w, h);
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (w, h) = if in_ratio < self.ratio[0] {
            (width, (width as f64 / self.ratio[0]).round() as u32)
        } else if in_ratio > self.ratio[1] {
            ((height as f64 * self.ratio[1]).round() as u32, height)
        } else {
            (width, height)
        };
        ((width - w) / 2, (height - h) / 2, w, h)
    }
}

/// What turns a decoded file into the model's `size` x `size` input.
#[derive(Debug, Clone, PartialEq)]
pub enum FolderTransform {
    /// Training: a random resized crop.
    RandomResizedCrop { size: u32, crop: CropConfig },
    /// Evaluation: the shorter side to `size * 256 / 224`, then the centre `size` x `size`.
    CentreCrop { size: u32 },
}

impl FolderTransform {
    /// The transformed image; `rng` draws the training crop.
    pub fn apply(&self, image: &RgbImage, rng: &mut impl Rng) -> RgbImage {
        match self {
            FolderTransform::RandomResizedCrop { size, crop } => {
                let window = crop.draw(image.width(), image.height(), rng);
                resize_window(image, window, *size, *size)
            }
            FolderTransform::CentreCrop { size } => {
                let resized = resize_shorter(image, *size * 256 / 224);
                centre_crop(&resized, *size, *size)
            }
        }
    }
}

/// torchvision's `Resize(side)`: the shorter side to `side`, the other in proportion.
pub fn resize_shorter(image: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = (image.width(), image.height());
    let (nw, nh) = match w <= h {
        true => (side, (side as u64 * h as u64 / w as u64) as u32),
        false => ((side as u64 * w as u64 / h as u64) as u32, side),
    };
    if (nw, nh) == (w, h) {
        return image.clone();
    }
    resize_window(image, (0, 0, w, h), nw, nh)
}

/// The window `(left, top, width, height)` of `image` resized to `width` x `height` with
/// antialiased bilinear filtering (Pillow's, which torchvision uses), by SIMD convolution.
pub fn resize_window(
    image: &RgbImage,
    (left, top, w, h): (u32, u32, u32, u32),
    width: u32,
    height: u32,
) -> RgbImage {
    use fast_image_resize::images::{Image, ImageRef};
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let source = ImageRef::new(
        image.width(),
        image.height(),
        image.as_raw(),
        PixelType::U8x3,
    )
    .expect("an RgbImage's buffer holds width x height x 3 bytes");
    let mut out = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(left as f64, top as f64, w as f64, h as f64);
    Resizer::new()
        .resize(&source, &mut out, &options)
        .expect("source and destination are both RGB u8");
    RgbImage::from_raw(width, height, out.into_vec()).expect("width x height x 3 bytes")
}

/// torchvision's `CenterCrop`: the middle `height` x `width`.
pub fn centre_crop(image: &RgbImage, height: u32, width: u32) -> RgbImage {
    let left = half_rounded_even(image.width().saturating_sub(width));
    let top = half_rounded_even(image.height().saturating_sub(height));
    imageops::crop_imm(image, left, top, width, height).to_image()
}

/// `round(n / 2)` as Python rounds (half to even), which is where torchvision's crop starts.
fn half_rounded_even(n: u32) -> u32 {
    let half = n / 2;
    if n % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// Decodes a PNG or JPEG file as 8-bit RGB (grayscale is repeated over the three channels).
pub fn decode_rgb(path: &Path) -> Result<RgbImage, String> {
    let image = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| format!("cannot read: {e}"))?
        .decode()
        .map_err(|e| format!("not a PNG or JPEG image zoo can decode ({e})"))?;
    Ok(image.into_rgb8())
}

/// The CHW bytes of an RGB image.
pub fn rgb_to_chw(image: &RgbImage) -> Vec<u8> {
    let plane = (image.width() * image.height()) as usize;
    let mut chw = vec![0; 3 * plane];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = pixel[c];
        }
    }
    chw
}

/// One split of an image folder: the files at `indices`, and their transform.
#[derive(Debug, Clone)]
pub struct FolderSplit {
    pub folder: Arc<ImageFolder>,
    pub indices: Vec<usize>,
    pub transform: FolderTransform,
    /// Skip (and count) files that cannot be decoded instead of failing.
    pub skip_bad_images: bool,
}

impl FolderSplit {
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// A loader over this split: shuffled with `seed` when given (which also seeds the random
    /// crops), each batch decoded in parallel and finished by `batcher` (augmentation and
    /// standardization) on `device`.
    pub fn loader(
        &self,
        batcher: ImageBatcher,
        batch_size: usize,
        seed: Option<u64>,
        device: &Device,
    ) -> Arc<dyn DataLoader<ImageBatch>> {
        Arc::new(FolderLoader {
            split: self.clone(),
            batcher,
            batch_size,
            seed,
            device: device.clone(),
        })
    }

    /// The image at position `position` of the split, transformed to CHW bytes; `Ok(None)` for
    /// a bad file that is skipped.
    fn item(&self, position: usize, seed: u64) -> Result<Option<ImageItem>, DatasetError> {
        let index = self.indices[position];
        let (path, label) = &self.folder.files[index];
        let image = match decode_rgb(path) {
            Ok(image) => image,
            Err(message) if self.skip_bad_images => {
                let first_time = self.folder.skipped.lock().unwrap().insert(index);
                if first_time {
                    eprintln!("skipped {}: {message}", path.display());
                }
                return Ok(None);
            }
            Err(message) => {
                return Err(DatasetError::new(DataError::format(
                    path,
                    format!("{message} (data.skip_bad_images = true skips such files)"),
                )))
            }
        };
        // Seeded by (epoch seed, image index) as the augmentation is, with the seed offset so
        // that the crop and the later augmentation draw independently.
        let mut rng = Augmentation::rng(seed ^ 0x5EED_C409, index);
        let image = self.transform.apply(&image, &mut rng);
        Ok(Some(ImageItem {
            pixels: rgb_to_chw(&image),
            label: *label,
            index,
        }))
    }
}

/// Batches of a `FolderSplit`, decoded on rayon's pool by a prefetching thread.
struct FolderLoader {
    split: FolderSplit,
    batcher: ImageBatcher,
    batch_size: usize,
    seed: Option<u64>,
    device: Device,
}

/// A batch's standardized floats and targets, or the error that stopped the pass.
type Decoded = Result<(Vec<f32>, Vec<i64>), DatasetError>;

impl DataLoader<ImageBatch> for FolderLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<ImageBatch> + 'a> {
        let mut order: Vec<usize> = (0..self.split.len()).collect();
        if let Some(seed) = self.seed {
            order.shuffle(&mut StdRng::seed_from_u64(seed));
        }
        let batches: Vec<Vec<usize>> = order
            .chunks(self.batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect();
        let (sender, receiver) = mpsc::sync_channel::<Decoded>(PREFETCH_BATCHES);
        let split = self.split.clone();
        let batcher = self.batcher.clone();
        let seed = self.seed.unwrap_or(0);
        // Decoding, cropping, augmentation and standardization all run on rayon's pool.
        let finish = move |item: ImageItem| {
            let mut floats = Vec::new();
            batcher.push_image(&item, &mut floats);
            (floats, item.label as i64)
        };
        std::thread::spawn(move || {
            for positions in batches {
                let decoded: Decoded = positions
                    .par_iter()
                    .map(|&p| Ok(split.item(p, seed)?.map(&finish)))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|images| images.into_iter().flatten().unzip())
                    .map(|(floats, targets): (Vec<Vec<f32>>, _)| (floats.concat(), targets));
                let failed = decoded.is_err();
                // The receiver is gone when the trainer stopped early: nothing left to do.
                if sender.send(decoded).is_err() || failed {
                    return;
                }
            }
        });
        Box::new(FolderIterator {
            receiver,
            batcher: &self.batcher,
            device: &self.device,
            done: 0,
            total: self.split.len(),
        })
    }

    fn num_items(&self) -> usize {
        self.split.len()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<ImageBatch>> {
        self.split
            .loader(self.batcher.clone(), self.batch_size, self.seed, device)
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<ImageBatch>> {
        let mut split = self.split.clone();
        split.indices = split.indices[start..end].to_vec();
        split.loader(
            self.batcher.clone(),
            self.batch_size,
            self.seed,
            &self.device,
        )
    }
}

/// The next message, or `None` once the sender is gone. The decoding runs on rayon's pool;
/// so may the caller (zoo's trainer does), and a thread of the pool blocked here would idle a
/// thread the decoding needs (with one thread, forever): it runs the pool's pending work while
/// it waits.
fn receive<T>(receiver: &mpsc::Receiver<T>) -> Option<T> {
    if rayon::current_thread_index().is_none() {
        return receiver.recv().ok();
    }
    loop {
        match receiver.try_recv() {
            Ok(message) => return Some(message),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) => {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            }
        }
    }
}

struct FolderIterator<'a> {
    receiver: mpsc::Receiver<Decoded>,
    batcher: &'a ImageBatcher,
    device: &'a Device,
    done: usize,
    total: usize,
}

impl Iterator for FolderIterator<'_> {
    type Item = Result<ImageBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let decoded = receive(&self.receiver)?;
        Some(decoded.map(|(floats, targets)| {
            let n = targets.len();
            self.done += n;
            let [c, h, w] = self.batcher.output_shape();
            ImageBatch {
                images: Tensor::from_data(TensorData::new(floats, [n, c, h, w]), self.device),
                targets: Tensor::from_data(TensorData::new(targets, [n]), self.device),
            }
        }))
    }
}

impl DataLoaderIterator<ImageBatch> for FolderIterator<'_> {
    fn progress(&self) -> Progress {
        Progress::new(self.done, self.total, Some("images".into()))
    }
}

/// How `write_class_folders` renders images.
#[derive(Debug, Clone)]
pub struct FolderStyle {
    pub width: u32,
    pub height: u32,
    /// JPEG at this quality; PNG when absent.
    pub jpeg_quality: Option<u8>,
    /// Tint each image with a random colour and add mild noise (seeded per image), so that the
    /// files cost about what photographs cost to decode; plain grey RGB otherwise.
    pub colour: bool,
    pub seed: u64,
}

/// Writes the images of `set` at `indices` as `<dir>/<class>/<index>.{png,jpg}`: RGB, resized
/// (bilinear) to the style's size. Class folder names are `class_names` with `/` replaced.
/// For tests and benchmarks: an image folder made from a decoded dataset.
pub fn write_class_folders(
    set: &ImageSet,
    indices: &[usize],
    class_names: &[String],
    dir: &Path,
    style: &FolderStyle,
) -> Result<(), DataError> {
    let folder = |label: u8| dir.join(class_names[label as usize].replace('/', "-"));
    for label in 0..set.num_classes as u8 {
        std::fs::create_dir_all(folder(label)).map_err(|e| DataError::io(&folder(label), e))?;
    }
    let extension = if style.jpeg_quality.is_some() {
        "jpg"
    } else {
        "png"
    };
    indices.par_iter().try_for_each(|&i| {
        let path = folder(set.labels[i]).join(format!("{i:06}.{extension}"));
        let image = render(set, i, style);
        let written = match style.jpeg_quality {
            Some(quality) => std::fs::File::create(&path).and_then(|file| {
                let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(
                    std::io::BufWriter::new(file),
                    quality,
                );
                encoder.encode_image(&image).map_err(std::io::Error::other)
            }),
            None => image.save(&path).map_err(std::io::Error::other),
        };
        written.map_err(|e| DataError::io(&path, e))
    })
}

/// Image `index` of `set` as an RGB image of the style's size.
fn render(set: &ImageSet, index: usize, style: &FolderStyle) -> RgbImage {
    let (h, w) = (set.height as u32, set.width as u32);
    let plane = set.height * set.width;
    let pixels = set.image(index);
    let grey = |x: u32, y: u32, c: usize| {
        let channel = if set.channels == 3 { c } else { 0 };
        pixels[channel * plane + (y * w + x) as usize]
    };
    let small = RgbImage::from_fn(w, h, |x, y| image::Rgb([0, 1, 2].map(|c| grey(x, y, c))));
    let mut image = imageops::resize(&small, style.width, style.height, FilterType::Triangle);
    if style.colour {
        let mut rng = Augmentation::rng(style.seed, index);
        let tint: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.3..1.0));
        let floor: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..60.0));
        for pixel in image.pixels_mut() {
            for c in 0..3 {
                let noise = rng.random_range(-12.0..12.0);
                let value = floor[c] + pixel[c] as f32 * tint[c] + noise;
                pixel[c] = value.clamp(0.0, 255.0) as u8;
            }
        }
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// `dir/<split>/<class>/<i>.png` images of a solid colour per class.
    fn write_folder(dir: &Path, split: &str, classes: &[&str], per_class: usize) {
        for (c, class) in classes.iter().enumerate() {
            let class_dir = dir.join(split).join(class);
            std::fs::create_dir_all(&class_dir).unwrap();
            for i in 0..per_class {
                let image = RgbImage::from_pixel(12 + i as u32, 10, Rgb([c as u8 * 50, 7, 9]));
                image.save(class_dir.join(format!("{i}.png"))).unwrap();
            }
        }
    }

    #[test]
    fn classes_are_sorted_folder_names_and_files_are_listed_per_class() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), "train", &["zebra", "ant"], 3);
        std::fs::write(dir.path().join("train/ant/notes.txt"), "not an image").unwrap();
        let classes = folder_classes(dir.path()).unwrap();
        assert_eq!(classes, ["ant", "zebra"]);
        let folder = ImageFolder::scan(&dir.path().join("train"), &classes).unwrap();
        assert_eq!(folder.len(), 6);
        let labels: Vec<u8> = folder.files.iter().map(|(_, l)| *l).collect();
        assert_eq!(labels, [0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn empty_missing_and_extra_class_folders_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), "train", &["a", "b"], 1);
        write_folder(dir.path(), "val", &["a"], 1);
        let classes = folder_classes(dir.path()).unwrap();
        let err = ImageFolder::scan(&dir.path().join("val"), &classes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("val/b") && err.contains("missing"), "{err}");
        std::fs::create_dir_all(dir.path().join("val/b")).unwrap();
        let err = ImageFolder::scan(&dir.path().join("val"), &classes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("val/b") && err.contains("empty class folder"),
            "{err}"
        );
        write_folder(dir.path(), "val", &["b", "c"], 1);
        let err = ImageFolder::scan(&dir.path().join("val"), &classes)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("val/c") && err.contains("train/ does not have"),
            "{err}"
        );
        let err = folder_classes(&dir.path().join("nowhere"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train") && err.contains("ImageFolder") || err.contains("image folder"),
            "{err}"
        );
    }

    #[test]
    fn random_crops_stay_inside_and_follow_the_ranges() {
        let crop = CropConfig::default();
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..500 {
            let (left, top, w, h) = crop.draw(300, 200, &mut rng);
            assert!(left + w <= 300 && top + h <= 200 && w > 0 && h > 0);
            let area = (w * h) as f64 / 60_000.0;
            assert!((0.07..=1.0).contains(&area), "{area}");
        }
        // A crop that can never fit falls back to the centre.
        let whole = CropConfig {
            scale: [1.0, 1.0],
            ratio: [1.0, 1.0],
        };
        assert_eq!(whole.draw(40, 30, &mut rng), (5, 0, 30, 30));
    }

    #[test]
    fn evaluation_crop_is_torchvisions() {
        // 500x375 -> shorter side 256 -> 341x256 -> the centre 224x224.
        let image = RgbImage::new(500, 375);
        assert_eq!(resize_shorter(&image, 256).dimensions(), (341, 256));
        let out =
            FolderTransform::CentreCrop { size: 224 }.apply(&image, &mut StdRng::seed_from_u64(0));
        assert_eq!(out.dimensions(), (224, 224));
        // A left margin of 117 starts at 58 (Python's round(58.5) = 58), 119 at 60.
        assert_eq!(half_rounded_even(117), 58);
        assert_eq!(half_rounded_even(119), 60);
    }

    #[test]
    fn loader_batches_every_file_once_and_reports_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), "train", &["a", "b"], 5);
        let classes = folder_classes(dir.path()).unwrap();
        let folder = Arc::new(ImageFolder::scan(&dir.path().join("train"), &classes).unwrap());
        let split = FolderSplit {
            indices: (0..folder.len()).collect(),
            folder: folder.clone(),
            transform: FolderTransform::RandomResizedCrop {
                size: 8,
                crop: CropConfig::default(),
            },
            skip_bad_images: false,
        };
        let batcher = ImageBatcher::new(crate::images::Standardization::identity(3), [3, 8, 8]);
        let device = Device::flex();
        let targets = |split: &FolderSplit, seed| -> Vec<Vec<i64>> {
            split
                .loader(batcher.clone(), 4, Some(seed), &device)
                .iter()
                .map(|b| {
                    b.unwrap()
                        .targets
                        .into_data()
                        .try_to_vec_as::<i64>()
                        .unwrap()
                })
                .collect()
        };
        let batches = targets(&split, 3);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let mut all: Vec<i64> = batches.concat();
        all.sort();
        assert_eq!(all, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(
            targets(&split, 3),
            batches,
            "the same seed gives the same order"
        );
        let pixels = |seed| {
            split
                .loader(batcher.clone(), 10, Some(seed), &device)
                .iter()
                .next()
                .unwrap()
                .unwrap()
                .images
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        assert_eq!(pixels(5), pixels(5));

        std::fs::write(&folder.files[2].0, b"not a png").unwrap();
        let err = split
            .loader(batcher.clone(), 4, None, &device)
            .iter()
            .find_map(Result::err)
            .expect("the corrupt file fails its batch")
            .to_string();
        assert!(
            err.contains("2.png") && err.contains("skip_bad_images"),
            "{err}"
        );
        let skipping = FolderSplit {
            skip_bad_images: true,
            ..split
        };
        assert_eq!(targets(&skipping, 3).concat().len(), 9);
        assert_eq!(targets(&skipping, 4).concat().len(), 9);
        assert_eq!(
            folder.skipped_files(),
            [folder.files[2].0.clone()],
            "counted once over two passes"
        );
    }
}
