//! The textbook-shape CNN configs (`configs/imagenet/`): `zoo summary --json` gives the
//! notes' exact parameter counts and output sides, and every network builds and runs a
//! forward and backward pass on a batch of two 224x224x3 (AlexNet: 227x227x3) images.

mod common;

use std::path::{Path, PathBuf};

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;
use common::{stderr, stdout, zoo};
use zoo::config::Experiment;
use zoo::data::image_input;
use zoo::models::{cross_entropy, ImageClassifier, ModelConfig};
use zoo::run::image_model;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn summary(config: &str) -> serde_json::Value {
    summary_of(&format!("configs/imagenet/{config}.toml"))
}

fn summary_of(path: &str) -> serde_json::Value {
    let out = zoo(&root(), &["summary", path, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Output sides of the conv and max-pool rows, in order.
fn feature_sides(summary: &serde_json::Value) -> Vec<u64> {
    summary["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "conv2d" || l["kind"] == "maxpool")
        .map(|l| l["output_shape"][1].as_u64().unwrap())
        .collect()
}

#[test]
fn summaries_give_the_notes_counts() {
    for (config, params) in [
        ("alexnet", 62_378_344),
        ("zfnet", 107_627_624),
        ("vgg11", 132_863_336),
        ("vgg13", 133_047_848),
        ("vgg16", 138_357_544),
        ("vgg19", 143_667_240),
        ("vgg16_bn", 138_365_992),
        ("googlenet", 6_998_552),
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
        ("resnet101", 44_549_160),
        ("resnet152", 60_192_808),
    ] {
        assert_eq!(summary(config)["total_params"], params, "{config}");
    }
}

/// `configs/torchvision/`: the variants torchvision ships, with its exact parameter counts
/// (`sum(p.numel() for p in torchvision.models.NAME().parameters())`, googlenet without its
/// auxiliary heads).
#[test]
fn torchvision_configs_have_torchvisions_counts() {
    let counts = [
        ("alexnet", 61_100_840),
        ("vgg11", 132_863_336),
        ("vgg11_bn", 132_868_840),
        ("vgg13", 133_047_848),
        ("vgg13_bn", 133_053_736),
        ("vgg16", 138_357_544),
        ("vgg16_bn", 138_365_992),
        ("vgg19", 143_667_240),
        ("vgg19_bn", 143_678_248),
        ("googlenet", 6_624_904),
        ("resnet18", 11_689_512),
        ("resnet34", 21_797_672),
        ("resnet50", 25_557_032),
        ("resnet101", 44_549_160),
        ("resnet152", 60_192_808),
    ];
    let shipped = std::fs::read_dir(root().join("configs/torchvision"))
        .unwrap()
        .count();
    assert_eq!(
        shipped,
        counts.len(),
        "a torchvision config without its count here"
    );
    for (name, params) in counts {
        let summary = summary_of(&format!("configs/torchvision/{name}.toml"));
        assert_eq!(summary["total_params"], params, "{name}");
    }
    // torchvision's AlexNet: 55 -> 27 -> 27 -> 13 -> 13 -> 13 -> 13 -> 6, then the 6x6 pool.
    let alexnet = summary_of("configs/torchvision/alexnet.toml");
    assert_eq!(feature_sides(&alexnet), [55, 27, 27, 13, 13, 13, 13, 6]);
}

#[test]
fn alexnet_and_zfnet_follow_the_notes_shapes() {
    let alexnet = summary("alexnet");
    assert_eq!(alexnet["input"]["height"], 227);
    assert_eq!(feature_sides(&alexnet), [55, 27, 27, 13, 13, 13, 13, 6]);
    let zfnet = summary("zfnet");
    assert_eq!(zfnet["input"]["height"], 224);
    assert_eq!(feature_sides(&zfnet), [110, 55, 26, 13, 13, 13, 13, 6]);
}

#[test]
fn batch_norm_statistics_are_buffers() {
    let resnet = summary("resnet18");
    // One running mean and one running variance per BN channel: 4,800 channels.
    assert_eq!(resnet["total_buffers"], 9_600);
    assert_eq!(summary("vgg16")["total_buffers"], 0);
}

#[test]
fn googlenet_aux_heads_add_their_parameters() {
    let out = zoo(
        &root(),
        &[
            "summary",
            "configs/imagenet/googlenet.toml",
            "--json",
            "--set",
            "model.aux_classifiers=true",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["total_params"], 13_378_280);
}

/// Builds the config's network, runs two random images forward and back, and checks every
/// parameter got a finite gradient of the right shape (the first conv's is tested).
fn forward_backward(config: &str) {
    let path = root().join(format!("configs/imagenet/{config}.toml"));
    let exp = Experiment::load(&path, &[]).unwrap();
    let device = Device::flex();
    let autodiff = device.clone().autodiff();
    let ModelConfig::Image(family) = &exp.model else {
        panic!("{config} is an image classifier's config");
    };
    let (model, _) = image_model(family, &exp, &device).unwrap();
    let model = model.fork(&autodiff).train();
    let i = image_input(&exp.data);
    let images = Tensor::random(
        [2, i.channels, i.height, i.width],
        Distribution::Normal(0.0, 1.0),
        &autodiff,
    );
    let targets = Tensor::from_data(TensorData::new(vec![3i64, 999], [2]), &autodiff);
    let logits = model.logits(images);
    assert_eq!(logits.dims(), [2, 1000], "{config}");
    let loss = cross_entropy(logits, targets);
    let value = loss.clone().into_scalar::<f32>();
    assert!(value.is_finite() && value > 0.0, "{config}: loss {value}");
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut check = EveryParamHasAGradient {
        grads,
        checked: 0,
        config,
    };
    model.visit(&mut check);
    assert!(check.checked > 0, "{config}: no parameters visited");
}

/// Asserts each trainable tensor's gradient exists, has its shape and is finite.
struct EveryParamHasAGradient<'a> {
    grads: GradientsParams,
    checked: usize,
    config: &'a str,
}

impl ModuleVisitor for EveryParamHasAGradient<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() {
            return;
        }
        let grad = self.grads.get::<D>(param.id).unwrap_or_else(|| {
            panic!(
                "{}: a parameter of shape {:?} has no gradient",
                self.config,
                param.shape()
            )
        });
        assert_eq!(grad.dims(), param.val().dims(), "{}", self.config);
        assert!(
            grad.is_finite().all().into_scalar::<bool>(),
            "{}: non-finite gradient",
            self.config
        );
        self.checked += 1;
    }
}

#[test]
fn alexnet_zfnet_and_googlenet_train_a_step_at_textbook_shape() {
    for config in ["alexnet", "zfnet", "googlenet"] {
        forward_backward(config);
    }
}

#[test]
fn vggs_train_a_step_at_textbook_shape() {
    for config in ["vgg11", "vgg13", "vgg16", "vgg19", "vgg16_bn"] {
        forward_backward(config);
    }
}

#[test]
fn resnets_train_a_step_at_textbook_shape() {
    for config in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"] {
        forward_backward(config);
    }
}

/// `zoo check` builds each config's model and compares its parameter count with the summary
/// table (which comes from the same walk); every shipped config passes.
#[test]
fn every_shipped_config_builds_as_its_summary_says() {
    let mut checked = 0;
    for dir in ["fashion-mnist", "imagenet", "torchvision", "text"] {
        for entry in std::fs::read_dir(root().join("configs").join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let out = zoo(&root(), &["check", path.to_str().unwrap()]);
            assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
            assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));
            checked += 1;
        }
    }
    assert!(checked >= 44, "only {checked} configs found");
}
