//! The same initial weights give the same first-batch loss on every backend.

use std::path::Path;

use zoo::backend::Backend;
use zoo::config::Experiment;
use zoo::data::prepare;
use zoo::models::ImageClassifier;
use zoo::train::{load_module, module_bytes};

#[test]
fn mlp_first_batch_loss_matches_across_backends() {
    first_batch_loss_matches("mlp");
}

/// Convolutions, pooling with ceil mode, LRN, batch norm (running statistics at evaluation),
/// concatenation and residual sums agree across backends too.
#[test]
fn cnn_first_batch_losses_match_across_backends() {
    for config in ["alexnet", "zfnet", "vgg16", "googlenet", "resnet18"] {
        first_batch_loss_matches(config);
    }
}

/// Loads `configs/fashion-mnist/{name}.toml`, draws its initial weights on flex, and checks
/// that every backend computes the same first-batch loss from them.
fn first_batch_loss_matches(name: &str) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs/fashion-mnist")
        .join(format!("{name}.toml"));
    let exp = Experiment::load(&config, &["data.train_limit=6000".parse().unwrap()]).unwrap();
    let data = prepare(&exp.data, None).expect(
        "Fashion-MNIST is needed for this test: sudo apt-get install dataset-fashion-mnist",
    );
    let items: Vec<_> = (0..exp.data.batch_size)
        .map(|i| burn::data::dataset::Dataset::get(&data.train, i).unwrap())
        .collect();

    let flex = Backend::Flex.device();
    flex.seed(exp.train.seed);
    let reference = exp.model.init(&data.input, &flex);
    let weights = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(weights.path(), module_bytes(&reference).unwrap()).unwrap();

    let mut losses = Vec::new();
    for backend in [Backend::Flex, Backend::Ndarray, Backend::Wgpu] {
        let device = backend.device();
        let model = load_module(exp.model.init(&data.input, &device), weights.path()).unwrap();
        let batch =
            burn::data::dataloader::batcher::Batcher::batch(&data.batcher, items.clone(), &device);
        let loss = model
            .loss(model.logits(batch.images), batch.targets)
            .into_scalar::<f64>();
        losses.push((backend, loss));
    }
    let (_, flex_loss) = losses[0];
    assert!(
        flex_loss > 0.5 && flex_loss < 10.0,
        "{name}: an untrained model's loss: {flex_loss}"
    );
    for (backend, loss) in &losses {
        let relative = (loss - flex_loss).abs() / flex_loss;
        assert!(
            relative < 1e-4,
            "{name} on {backend}: loss {loss} vs flex {flex_loss} (relative {relative:e})"
        );
    }
}
