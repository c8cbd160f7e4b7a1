//! The notes' data augmentation for training images: random crop after zero padding,
//! horizontal flip, small rotation, brightness shift and Gaussian noise, plus the bilinear
//! resize that adapts an input side to a network. Written by hand: burn-dataset's vision
//! transforms work on its own image folders, not on our decoded CHW bytes.
//!
//! Every random choice comes from a generator seeded by (epoch seed, image index), so a run
//! is reproducible whatever order or thread the loader batches images in.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What `[data.augment]` switches on; all off by default. Pixel amounts are fractions of the
/// 0-255 range.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augmentation {
    /// Zero-pad every side by this many pixels, then crop the original size at a random offset.
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub horizontal_flip: bool,
    /// Rotate by a uniform angle in [-degrees, degrees] (bilinear, zeros outside).
    pub rotation_degrees: f32,
    /// Add one uniform shift in [-brightness, brightness] to every pixel of an image.
    pub brightness: f32,
    /// Add independent Gaussian noise of this standard deviation to every pixel.
    pub noise_std: f32,
}

impl Augmentation {
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the amounts; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let checks = [
            ("rotation_degrees", self.rotation_degrees, 180.0),
            ("brightness", self.brightness, 1.0),
            ("noise_std", self.noise_std, 1.0),
        ];
        for (key, value, max) in checks {
            if !(0.0..=max).contains(&value) {
                return Err((
                    key.into(),
                    format!("expected a value in [0, {max}], got {value}"),
                ));
            }
        }
        Ok(())
    }

    /// The generator for one image in one epoch.
    pub fn rng(seed: u64, index: usize) -> StdRng {
        // Golden-ratio mixing keeps neighbouring indices' streams apart.
        StdRng::seed_from_u64(seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A transformed copy of one CHW image with 0-255 values.
    pub fn apply(&self, image: &[f32], shape: [usize; 3], rng: &mut impl Rng) -> Vec<f32> {
        let [_, h, w] = shape;
        let mut out = image.to_vec();
        if self.crop_padding > 0 {
            let p = self.crop_padding as i64;
            let dy = rng.random_range(-p..=p);
            let dx = rng.random_range(-p..=p);
            out = remap(&out, shape, |y, x| {
                Some(((y as i64 + dy) as f32, (x as i64 + dx) as f32))
            });
        }
        if self.horizontal_flip && rng.random_bool(0.5) {
            out.chunks_exact_mut(w).for_each(<[f32]>::reverse);
        }
        if self.rotation_degrees > 0.0 {
            let angle = rng
                .random_range(-self.rotation_degrees..=self.rotation_degrees)
                .to_radians();
            let (sin, cos) = angle.sin_cos();
            let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
            // Each output pixel reads the input at its position rotated back by `angle`.
            out = remap(&out, shape, |y, x| {
                let (ry, rx) = (y as f32 - cy, x as f32 - cx);
                Some((cy + cos * ry - sin * rx, cx + sin * ry + cos * rx))
            });
        }
        if self.brightness > 0.0 {
            let shift = rng.random_range(-self.brightness..=self.brightness) * 255.0;
            out.iter_mut().for_each(|p| *p += shift);
        }
        if self.noise_std > 0.0 {
            let std = self.noise_std * 255.0;
            out.iter_mut()
                .for_each(|p| *p += std * standard_normal(rng));
        }
        out
    }
}

/// Bilinear resize of a CHW image to `height` x `width` (sample centres aligned, as
/// PyTorch's `align_corners=False`).
pub fn resize(image: &[f32], shape: [usize; 3], height: usize, width: usize) -> Vec<f32> {
    let [c, h, w] = shape;
    let (sy, sx) = (h as f32 / height as f32, w as f32 / width as f32);
    let mut out = Vec::with_capacity(c * height * width);
    for channel in image.chunks_exact(h * w) {
        for y in 0..height {
            let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (h - 1) as f32);
            for x in 0..width {
                let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (w - 1) as f32);
                out.push(bilinear(channel, h, w, fy, fx));
            }
        }
    }
    out
}

/// Builds each output pixel from the input at the (fractional) position `source(y, x)`.
fn remap(
    image: &[f32],
    [_, h, w]: [usize; 3],
    source: impl Fn(usize, usize) -> Option<(f32, f32)>,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(image.len());
    for channel in image.chunks_exact(h * w) {
        for y in 0..h {
            for x in 0..w {
                out.push(match source(y, x) {
                    Some((fy, fx)) => bilinear(channel, h, w, fy, fx),
                    None => 0.0,
                });
            }
        }
    }
    out
}

/// The plane's value at a fractional position, zero outside it.
fn bilinear(plane: &[f32], h: usize, w: usize, fy: f32, fx: f32) -> f32 {
    let (y0, x0) = (fy.floor(), fx.floor());
    let (ty, tx) = (fy - y0, fx - x0);
    let at = |y: f32, x: f32| {
        if y < 0.0 || x < 0.0 || y >= h as f32 || x >= w as f32 {
            0.0
        } else {
            plane[y as usize * w + x as usize]
        }
    };
    let top = at(y0, x0) * (1.0 - tx) + at(y0, x0 + 1.0) * tx;
    let bottom = at(y0 + 1.0, x0) * (1.0 - tx) + at(y0 + 1.0, x0 + 1.0) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// One draw from N(0, 1) (Box-Muller).
fn standard_normal(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1x3x3 image with distinct pixels.
    fn ramp() -> Vec<f32> {
        (0..9).map(|v| v as f32 * 10.0).collect()
    }

    #[test]
    fn the_default_changes_nothing() {
        let aug = Augmentation::default();
        assert!(aug.is_identity());
        let mut rng = Augmentation::rng(1, 0);
        assert_eq!(aug.apply(&ramp(), [1, 3, 3], &mut rng), ramp());
    }

    #[test]
    fn flips_mirror_rows() {
        let aug = Augmentation {
            horizontal_flip: true,
            ..Default::default()
        };
        let flipped = [20.0, 10.0, 0.0, 50.0, 40.0, 30.0, 80.0, 70.0, 60.0];
        // Over a few images both outcomes occur, and nothing else.
        let outcomes: Vec<bool> = (0..16)
            .map(|i| {
                let out = aug.apply(&ramp(), [1, 3, 3], &mut Augmentation::rng(7, i));
                assert!(out == ramp() || out == flipped, "{out:?}");
                out == flipped
            })
            .collect();
        assert!(outcomes.contains(&true) && outcomes.contains(&false));
    }

    #[test]
    fn crops_shift_within_the_padding() {
        let aug = Augmentation {
            crop_padding: 1,
            ..Default::default()
        };
        for i in 0..16 {
            let out = aug.apply(&ramp(), [1, 3, 3], &mut Augmentation::rng(3, i));
            // Every kept pixel is one of the input's, and a shift of at most one keeps the centre's row or column.
            assert!(out.iter().all(|p| ramp().contains(p)));
            assert!(out.iter().filter(|&&p| p != 0.0).count() >= 4, "{out:?}");
        }
    }

    #[test]
    fn quarter_turn_rotates_the_grid() {
        let aug = Augmentation {
            rotation_degrees: 90.0,
            ..Default::default()
        };
        // Find an image whose angle is near +-90 and check the centre stays put.
        let out = aug.apply(&ramp(), [1, 3, 3], &mut Augmentation::rng(0, 0));
        assert!((out[4] - 40.0).abs() < 1e-3);
        // A zero angle range is the identity.
        let none = Augmentation {
            rotation_degrees: 0.0,
            ..Default::default()
        };
        assert_eq!(
            none.apply(&ramp(), [1, 3, 3], &mut Augmentation::rng(0, 0)),
            ramp()
        );
    }

    #[test]
    fn the_same_seed_and_index_give_the_same_image() {
        let aug = Augmentation {
            crop_padding: 1,
            horizontal_flip: true,
            rotation_degrees: 10.0,
            brightness: 0.1,
            noise_std: 0.05,
        };
        let a = aug.apply(&ramp(), [1, 3, 3], &mut Augmentation::rng(5, 2));
        let b = aug.apply(&ramp(), [1, 3, 3], &mut Augmentation::rng(5, 2));
        let c = aug.apply(&ramp(), [1, 3, 3], &mut Augmentation::rng(5, 3));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn noise_has_the_configured_spread() {
        let aug = Augmentation {
            noise_std: 0.1,
            ..Default::default()
        };
        let zeros = vec![0.0; 10_000];
        let out = aug.apply(&zeros, [1, 100, 100], &mut Augmentation::rng(0, 0));
        let mean = out.iter().sum::<f32>() / out.len() as f32;
        let std = (out.iter().map(|p| (p - mean).powi(2)).sum::<f32>() / out.len() as f32).sqrt();
        assert!(mean.abs() < 1.0, "{mean}");
        assert!((std - 25.5).abs() < 1.0, "{std}");
    }

    #[test]
    fn resize_keeps_constant_images_and_doubles_sides() {
        let flat = vec![7.0; 4];
        assert_eq!(resize(&flat, [1, 2, 2], 4, 4), vec![7.0; 16]);
        let ramp = resize(&ramp(), [1, 3, 3], 6, 6);
        assert_eq!(ramp.len(), 36);
        assert_eq!(ramp[0], 0.0);
        assert_eq!(ramp[35], 80.0);
        // Same size is the identity.
        assert_eq!(
            resize(&super::tests::ramp(), [1, 3, 3], 3, 3),
            super::tests::ramp()
        );
    }
}
