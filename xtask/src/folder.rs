//! `cargo xtask image-folder`: an `ImageFolder`-layout dataset written from Fashion-MNIST
//! (nothing downloads): `train/` and `val/` from its training split (zoo's seeded 55,000 /
//! 5,000 split), `test/` from its test split. JPEG photographs' size by default, for the loader
//! benchmark and the textbook-scale runs; `--size 32x32 --format png` for the small one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use datasets::folder::{write_class_folders, FolderStyle};
use datasets::images::train_val_split;
use datasets::{DatasetKind, ImageSet, Split, DEFAULT_FASHION_MNIST_DIR};

#[derive(clap::Args)]
pub struct Args {
    /// The folder to write (it gets train/, val/ and test/).
    #[arg(long)]
    out: PathBuf,
    /// Training images (at most 55,000).
    #[arg(long, default_value_t = 55_000)]
    train: usize,
    /// Validation images (at most 5,000).
    #[arg(long, default_value_t = 5_000)]
    val: usize,
    /// Test images (at most 10,000; 0 writes no test/).
    #[arg(long, default_value_t = 10_000)]
    test: usize,
    /// WIDTHxHEIGHT of every image.
    #[arg(long, default_value = "500x375")]
    size: String,
    /// jpeg (quality 90) or png.
    #[arg(long, default_value = "jpeg")]
    format: String,
    /// Plain grey RGB instead of a random tint with mild noise per image.
    #[arg(long)]
    grey: bool,
    /// Where Fashion-MNIST's IDX files are.
    #[arg(long, default_value = DEFAULT_FASHION_MNIST_DIR)]
    data_dir: PathBuf,
}

pub fn run(args: &Args) -> Result<()> {
    let (width, height) = args
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .with_context(|| format!("--size {}: expected WIDTHxHEIGHT, e.g. 500x375", args.size))?;
    let jpeg_quality = match args.format.as_str() {
        "jpeg" | "jpg" => Some(90),
        "png" => None,
        other => anyhow::bail!("--format {other}: expected jpeg or png"),
    };
    let style = FolderStyle {
        width,
        height,
        jpeg_quality,
        colour: !args.grey,
        seed: 0,
    };
    let kind = DatasetKind::FashionMnist;
    let names = kind.class_names();
    let train_set = kind.load(&args.data_dir, Split::Train)?;
    let (train_idx, val_idx) = train_val_split(train_set.len(), 5_000, 0);
    for (name, indices) in [
        ("train", &train_idx[..args.train.min(train_idx.len())]),
        ("val", &val_idx[..args.val.min(val_idx.len())]),
    ] {
        let dir = args.out.join(name);
        eprintln!("writing {} images to {}", indices.len(), dir.display());
        write_class_folders(&train_set, indices, &names, &dir, &style)?;
    }
    if args.test > 0 {
        let test_set = kind.load(&args.data_dir, Split::Test)?;
        let dir = args.out.join("test");
        eprintln!(
            "writing {} images to {}",
            args.test.min(test_set.len()),
            dir.display()
        );
        write_test_images(&test_set, args.test, &dir, &style)?;
    }
    Ok(())
}

/// Writes the first `count` images of Fashion-MNIST's test split `test_set` under `dir`, as
/// `<class>/<index>.png` (`.jpg` when the style has a JPEG quality).
pub fn write_test_images(
    test_set: &ImageSet,
    count: usize,
    dir: &Path,
    style: &FolderStyle,
) -> Result<()> {
    let indices: Vec<usize> = (0..count.min(test_set.len())).collect();
    let names = DatasetKind::FashionMnist.class_names();
    write_class_folders(test_set, &indices, &names, dir, style)
        .with_context(|| format!("cannot write the images of {}", dir.display()))
}
