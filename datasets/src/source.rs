//! Where each dataset lives on disk and how its files are named.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cifar::{read_cifar, CifarLabels};
use crate::error::DataError;
use crate::idx::read_idx;
use crate::images::ImageSet;

/// Where Debian's `dataset-fashion-mnist` package puts the IDX files.
pub const DEFAULT_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// torchvision's ImageNet class names, one per line.
const IMAGENET_CLASSES: &str = include_str!("imagenet_classes.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// The image datasets zoo can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    FashionMnist,
    Mnist,
    Kmnist,
    Cifar10,
    Cifar100,
    /// ILSVRC-2012: 224x224x3. Without `data.dir`, the shape alone (1000 classes) for
    /// `summary` and `check`; with it, an ImageNet-layout folder read as `ImageFolder`.
    Imagenet,
    /// torchvision's `ImageFolder` layout: `train/<class>/*`, `val/<class>/*`, optional
    /// `test/<class>/*`, PNG or JPEG, classes named by their folders (see `folder`).
    ImageFolder,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 7] = [
        DatasetKind::FashionMnist,
        DatasetKind::Mnist,
        DatasetKind::Kmnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
        DatasetKind::Imagenet,
        DatasetKind::ImageFolder,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Kmnist => "kmnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::Imagenet => "imagenet",
            DatasetKind::ImageFolder => "image-folder",
        }
    }

    /// The directory used when the config names none (only Fashion-MNIST has a system package).
    pub fn default_dir(self) -> Option<&'static str> {
        match self {
            DatasetKind::FashionMnist => Some(DEFAULT_FASHION_MNIST_DIR),
            _ => None,
        }
    }

    /// Whether the images are files in class folders, decoded lazily (`folder`), rather than
    /// one file decoded whole.
    pub fn reads_folders(self) -> bool {
        matches!(self, DatasetKind::Imagenet | DatasetKind::ImageFolder)
    }

    /// (channels, height, width, classes) of the stored images; an image folder's classes are
    /// its folders (0 here) and its side is `data.resize` (224 unless set).
    pub fn shape(self) -> (usize, usize, usize, usize) {
        match self {
            DatasetKind::FashionMnist | DatasetKind::Mnist | DatasetKind::Kmnist => (1, 28, 28, 10),
            DatasetKind::Cifar10 => (3, 32, 32, 10),
            DatasetKind::Cifar100 => (3, 32, 32, 100),
            DatasetKind::Imagenet => (3, 224, 224, 1000),
            DatasetKind::ImageFolder => (3, 224, 224, 0),
        }
    }

    /// `[channels, height, width]` of the stored images.
    pub fn stored_shape(self) -> [usize; 3] {
        let (c, h, w, _) = self.shape();
        [c, h, w]
    }

    pub fn class_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            DatasetKind::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
            DatasetKind::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::Kmnist => &["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
            DatasetKind::Cifar10 => &[
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ],
            // torchvision's names of the ILSVRC-2012 classes, in its index order.
            DatasetKind::Imagenet => return IMAGENET_CLASSES.lines().map(String::from).collect(),
            DatasetKind::ImageFolder => return Vec::new(),
            DatasetKind::Cifar100 => {
                let (_, _, _, classes) = self.shape();
                return (0..classes).map(|c| format!("class {c}")).collect();
            }
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    fn install_hint(self) -> String {
        match self {
            DatasetKind::FashionMnist => format!(
                "install Fashion-MNIST with `apt-get install dataset-fashion-mnist` (as root or with sudo; it fills {DEFAULT_FASHION_MNIST_DIR}), or point data.dir / --data-dir at a directory holding the IDX files"
            ),
            DatasetKind::Mnist | DatasetKind::Kmnist => format!(
                "download the {} IDX files (train-images-idx3-ubyte.gz, ...) and point data.dir / --data-dir at their directory",
                self.name()
            ),
            DatasetKind::Cifar10 => "download the CIFAR-10 binary version (cifar-10-binary.tar.gz), unpack it, and point data.dir / --data-dir at cifar-10-batches-bin".into(),
            DatasetKind::Cifar100 => "download the CIFAR-100 binary version (cifar-100-binary.tar.gz), unpack it, and point data.dir / --data-dir at cifar-100-binary".into(),
            DatasetKind::Imagenet | DatasetKind::ImageFolder => "point data.dir at a folder holding train/<class>/*.jpg and val/<class>/*.jpg".into(),
        }
    }

    /// Reads one split from `dir`.
    pub fn load(self, dir: &Path, split: Split) -> Result<ImageSet, DataError> {
        if self.reads_folders() {
            return Err(DataError::Unsupported(format!(
                "{} is read from an image folder: set data.dir (or --data-dir) to a folder holding train/<class>/*.jpg and val/<class>/*.jpg",
                self.name()
            )));
        }
        if !dir.is_dir() {
            return Err(DataError::Missing {
                dir: dir.to_path_buf(),
                file: "the directory".into(),
                what: format!("{} data", self.name()),
                hint: self.install_hint(),
            });
        }
        match self {
            DatasetKind::FashionMnist | DatasetKind::Mnist | DatasetKind::Kmnist => {
                self.load_idx(dir, split)
            }
            DatasetKind::Cifar10 => {
                let names: Vec<String> = match split {
                    Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
                    Split::Test => vec!["test_batch.bin".into()],
                };
                let paths = self.find_all(dir, &names)?;
                read_cifar(&paths, CifarLabels::Cifar10)
            }
            DatasetKind::Imagenet | DatasetKind::ImageFolder => unreachable!("refused above"),
            DatasetKind::Cifar100 => {
                let name = match split {
                    Split::Train => "train.bin",
                    Split::Test => "test.bin",
                };
                let paths = self.find_all(dir, &[name.to_string()])?;
                read_cifar(&paths, CifarLabels::Cifar100Fine)
            }
        }
    }

    fn load_idx(self, dir: &Path, split: Split) -> Result<ImageSet, DataError> {
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let images_path = self.find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
        let labels_path = self.find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        let images = read_idx(&images_path, 3)?;
        let labels = read_idx(&labels_path, 1)?;
        if images.dims[0] != labels.dims[0] {
            return Err(DataError::CountMismatch {
                images_path,
                images: images.dims[0],
                labels_path,
                labels: labels.dims[0],
            });
        }
        let (_, height, width, num_classes) = self.shape();
        if images.dims[1..] != [height, width] {
            return Err(DataError::format(
                &images_path,
                format!(
                    "expected {height}x{width} images, got {}x{}",
                    images.dims[1], images.dims[2]
                ),
            ));
        }
        if let Some(pos) = labels.data.iter().position(|&l| l as usize >= num_classes) {
            return Err(DataError::format(
                &labels_path,
                format!(
                    "label {} at index {pos} is out of range for {num_classes} classes",
                    labels.data[pos]
                ),
            ));
        }
        Ok(ImageSet {
            pixels: images.data,
            labels: labels.data,
            channels: 1,
            height,
            width,
            num_classes,
        })
    }

    /// Finds `name` in `dir`, gzipped or raw.
    fn find(self, dir: &Path, name: &str) -> Result<PathBuf, DataError> {
        [format!("{name}.gz"), name.to_string()]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| DataError::Missing {
                dir: dir.to_path_buf(),
                file: format!("{name}[.gz]"),
                what: format!("{} file", self.name()),
                hint: self.install_hint(),
            })
    }

    fn find_all(self, dir: &Path, names: &[String]) -> Result<Vec<PathBuf>, DataError> {
        names
            .iter()
            .map(|n| {
                let p = dir.join(n);
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(DataError::Missing {
                        dir: dir.to_path_buf(),
                        file: n.clone(),
                        what: format!("{} file", self.name()),
                        hint: self.install_hint(),
                    })
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::encode_idx;

    /// Writes a tiny MNIST-format split into `dir`.
    fn write_split(dir: &Path, prefix: &str, n: usize, labels_n: usize) {
        let pixels: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            encode_idx(&[n, 28, 28], &pixels),
        )
        .unwrap();
        let labels: Vec<u8> = (0..labels_n).map(|i| (i % 10) as u8).collect();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            encode_idx(&[labels_n], &labels),
        )
        .unwrap();
    }

    #[test]
    fn loads_raw_idx_split() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "t10k", 12, 12);
        let set = DatasetKind::Mnist.load(dir.path(), Split::Test).unwrap();
        assert_eq!(set.len(), 12);
        assert_eq!(set.image(1)[0], (784 % 251) as u8);
        assert_eq!(set.labels[11], 1);
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "train", 5, 4);
        let err = DatasetKind::FashionMnist
            .load(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-images-idx3-ubyte holds 5 images"),
            "{err}"
        );
        assert!(
            err.contains("train-labels-idx1-ubyte holds 4 labels"),
            "{err}"
        );
    }

    #[test]
    fn missing_files_say_how_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let err = DatasetKind::FashionMnist
            .load(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("apt-get install dataset-fashion-mnist"),
            "{err}"
        );
        let err = DatasetKind::FashionMnist
            .load(&dir.path().join("nope"), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope") && err.contains("apt-get"), "{err}");
    }
}
