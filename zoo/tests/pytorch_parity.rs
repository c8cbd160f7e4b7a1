//! PyTorch's eval-mode logits for PyTorch's weights, for every family: the fixtures that
//! `zoo/tests/pytorch/make_fixtures.py` wrote (a state_dict, an input, PyTorch's logits) are
//! imported through `zoo::interop` with no remapping and run on flex, ndarray and wgpu.

mod common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use common::{fixture_weights, pytorch_fixtures, read_safetensors};
use zoo::backend::Backend;
use zoo::config::Experiment;
use zoo::data::image_input;
use zoo::interop::{load_pytorch, ImportOptions};
use zoo::models::{ImageClassifier, ImageModelConfig, ModelConfig};
use zoo::run::image_model;

/// Every fixture directory, by name.
fn cases() -> Vec<(String, PathBuf)> {
    let mut cases: Vec<_> = std::fs::read_dir(pytorch_fixtures())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("config.toml").exists())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    cases.sort();
    cases
}

/// A float32 tensor of `expected.safetensors`: its values and shape.
fn expected(case: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let tensor = &read_safetensors(&case.join("expected.safetensors"))[name];
    (tensor.values(), tensor.shape.clone())
}

fn image_config(exp: &Experiment) -> &ImageModelConfig {
    match &exp.model {
        ModelConfig::Image(config) => config,
        _ => panic!("fixtures are image classifiers"),
    }
}

/// The largest difference between zoo's logits and PyTorch's, and the largest |logit|.
fn logit_difference(case: &Path, backend: Backend) -> (f32, f32) {
    let exp = Experiment::load(&case.join("config.toml"), &[]).unwrap();
    let config = image_config(&exp);
    let device = backend.device();
    let (model, _) = image_model(config, &exp, &device).unwrap();
    let layout = config.pytorch_layout(&image_input(&exp.data));
    let (model, imported) = load_pytorch(
        model,
        &layout,
        &fixture_weights(case),
        &ImportOptions::default(),
    )
    .unwrap();
    assert!(imported.skipped.is_empty());
    let (input, shape) = expected(case, "input");
    let [n, c, h, w] = shape[..] else {
        panic!("input is [N, C, H, W]")
    };
    let images = Tensor::<4>::from_data(TensorData::new(input, [n, c, h, w]), &device);
    let logits: Vec<f32> = model
        .logits(images)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let (reference, _) = expected(case, "logits");
    assert_eq!(logits.len(), reference.len());
    let diff = logits
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    (diff, reference.iter().map(|v| v.abs()).fold(0.0, f32::max))
}

fn parity_on(backend: Backend, tolerance: f32) {
    let mut failures = Vec::new();
    for (name, case) in cases() {
        let (diff, scale) = logit_difference(&case, backend);
        let allowed = tolerance * scale.max(1.0);
        eprintln!("{name} on {backend}: max |zoo - PyTorch| = {diff:.2e} (allowed {allowed:.1e})");
        if diff.is_nan() || diff > allowed {
            failures.push(format!("{name}: {diff:.2e} > {allowed:.1e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "logits differ from PyTorch's on {backend}: {failures:?}"
    );
}

#[test]
fn flex_gives_pytorchs_logits() {
    parity_on(Backend::Flex, 1e-4);
}

#[test]
fn ndarray_gives_pytorchs_logits() {
    parity_on(Backend::Ndarray, 1e-4);
}

#[test]
fn wgpu_gives_pytorchs_logits() {
    parity_on(Backend::Wgpu, 1e-3);
}

/// Every family of the registry has a fixture, but for the kinds that build a module of
/// another kind's (zfnet is alexnet's module) and binary logistic regression, whose one
/// linear layer the softmax fixture covers.
#[test]
fn every_family_has_a_fixture() {
    let covered: Vec<String> = cases()
        .iter()
        .map(|(_, case)| {
            let exp = Experiment::load(&case.join("config.toml"), &[]).unwrap();
            exp.model.kind().to_string()
        })
        .collect();
    for kind in ImageModelConfig::kinds() {
        if ["zfnet", "logistic"].contains(&kind) {
            continue;
        }
        assert!(
            covered.iter().any(|k| k == kind),
            "no PyTorch fixture for {kind}"
        );
    }
}

/// One training step of zoo's `optimizer` config from the fixture's weights, on the input and
/// targets of `step.safetensors`: every tensor afterwards (batch-norm running statistics
/// included) is PyTorch's within 1e-5 relative. The fixture's running variances take the
/// batch's biased variance, as Burn's batch norm does (PyTorch: unbiased; README, deviations).
fn one_step_matches(backend: Backend, case_name: &str, optimizer: &str, settings: &[(&str, &str)]) {
    let case = pytorch_fixtures().join(case_name);
    let overrides: Vec<zoo::config::Override> = settings
        .iter()
        .map(|(k, v)| format!("{k}={v}").parse().unwrap())
        .collect();
    let exp = Experiment::load(&case.join("config.toml"), &overrides).unwrap();
    let config = image_config(&exp);
    let device = backend.device();
    let (model, _) = image_model(config, &exp, &device).unwrap();
    let layout = config.pytorch_layout(&image_input(&exp.data));
    let (model, _) = load_pytorch(
        model,
        &layout,
        &fixture_weights(&case),
        &ImportOptions::default(),
    )
    .unwrap();

    let autodiff = device.clone().autodiff();
    let model = model.fork(&device).train();
    let step = read_safetensors(&case.join("step.safetensors"));
    let [_, c, h, w] = expected(&case, "input").1[..] else {
        panic!("input is [N, C, H, W]")
    };
    let targets: Vec<i64> = step["targets"].values().iter().map(|&t| t as i64).collect();
    let n = targets.len();
    let images = Tensor::<4>::from_data(
        TensorData::new(step["input"].values(), [n, c, h, w]),
        &autodiff,
    );
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &autodiff);
    let (_, loss) = model.training_loss(images, targets);
    let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
    let mut optim = zoo::train::optimizer(&exp.train);
    let model = optim.step(exp.train.lr, model, grads).valid();

    let after = tempfile::NamedTempFile::with_suffix(".safetensors").unwrap();
    zoo::interop::save_pytorch(&model, &layout, after.path()).unwrap();
    let mut failures = Vec::new();
    for (name, zoo) in read_safetensors(after.path()) {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let (zoo, torch) = (zoo.values(), step[&format!("{optimizer}.{name}")].values());
        // Relative to the tensor's largest entry: entries near zero carry the step's rounding
        // in absolute terms, like every other.
        let largest = torch.iter().map(|v| v.abs()).fold(0.0, f32::max);
        let worst = zoo
            .iter()
            .zip(&torch)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
            / largest.max(f32::MIN_POSITIVE);
        eprintln!("{case_name}, {optimizer} on {backend}: {name} relative difference {worst:.1e}");
        if worst.is_nan() || worst > 1e-5 {
            let (i, (a, b)) = zoo
                .iter()
                .zip(&torch)
                .enumerate()
                .max_by(|x, y| (x.1 .0 - x.1 .1).abs().total_cmp(&(y.1 .0 - y.1 .1).abs()))
                .unwrap();
            failures.push(format!(
                "{name}: relative difference {worst:.2e} (at {i}: zoo {a}, PyTorch {b})"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{case_name}, one {optimizer} step: {failures:?}"
    );
}

/// The fixtures with a `step.safetensors`, each stepped on every backend.
fn one_step_matches_everywhere(optimizer: &str, settings: &[(&str, &str)]) {
    for backend in [Backend::Flex, Backend::Ndarray, Backend::Wgpu] {
        for case in ["mlp", "lenet5", "resnet-basic"] {
            one_step_matches(backend, case, optimizer, settings);
        }
    }
}

#[test]
fn one_sgd_momentum_step_gives_pytorchs_weights() {
    let sgd = [
        ("train.optimizer", "\"momentum\""),
        ("train.momentum", "0.9"),
        ("train.lr", "0.1"),
        ("train.weight_decay", "5e-4"),
    ];
    one_step_matches_everywhere("momentum", &sgd);
}

#[test]
fn one_adam_step_gives_pytorchs_weights() {
    // Epsilon 1e-4 as in make_fixtures.py, which says why.
    let adam = [
        ("train.optimizer", "\"adam\""),
        ("train.lr", "1e-3"),
        ("train.eps", "1e-4"),
        ("train.weight_decay", "5e-4"),
    ];
    one_step_matches_everywhere("adam", &adam);
}

/// Every shipped config's network names each of its tensors once in PyTorch's terms (the
/// layouts have no gap and no overlap), at full size too: Burn's parameters are lazy, so
/// nothing is allocated.
#[test]
fn every_shipped_config_has_a_pytorch_name_for_each_tensor() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut checked = 0;
    for dir in ["fashion-mnist", "imagenet", "torchvision"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let exp = Experiment::load(&path, &[]).unwrap();
            let ModelConfig::Image(config) = &exp.model else {
                continue;
            };
            let (model, _) = image_model(config, &exp, &Backend::Flex.device()).unwrap();
            let layout = config.pytorch_layout(&image_input(&exp.data));
            let links = zoo::interop::pytorch_names(&model, &layout)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!links.is_empty(), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} image configs");
}
