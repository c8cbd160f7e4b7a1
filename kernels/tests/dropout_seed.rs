//! Its own test binary: the test seeds Flex's one generator, which tests beside it would draw from.

use burn::nn::DropoutConfig;
use burn::tensor::{Device, Tensor};

/// Seeding the device fixes the masks (a resumed run draws the uninterrupted one's); a next
/// call draws a new one; odd sizes work; without autodiff (evaluation) dropout is the identity.
#[test]
fn flex_dropout_masks_follow_the_device_seed() {
    let device = Device::flex().autodiff();
    let layer = DropoutConfig::new(0.5).init();
    let x = Tensor::<2>::ones([3, 7], &device);
    let masks = |seed| {
        device.seed(seed);
        let first = kernels::dropout(&layer, x.clone()).into_data();
        (first, kernels::dropout(&layer, x.clone()).into_data())
    };
    let (a, b) = masks(11);
    assert_eq!(masks(11), (a.clone(), b.clone()));
    assert_ne!(a, b);
    assert_ne!(masks(12).0, a);
    let plain = Tensor::<2>::ones([3, 7], &Device::flex());
    let out = kernels::dropout(&layer, plain.clone());
    assert_eq!(out.into_data(), plain.into_data());
}
