//! The same initial weights give the same first-batch loss on every backend, for every
//! shipped Fashion-MNIST config of every image family (the list comes from the registry):
//! convolutions, pooling with ceil mode, LRN, batch norm (running statistics at evaluation),
//! concatenation, residual sums and recurrent cells agree across backends.

mod common;

use zoo::backend::Backend;
use zoo::checkpoint::{load_module, module_bytes};
use zoo::config::Experiment;
use zoo::data::prepare;
use zoo::models::{ImageClassifier, ModelConfig};
use zoo::run::image_model;

#[test]
fn first_batch_losses_match_across_backends() {
    let configs = common::shipped_image_configs();
    // Every family is covered (one_config_per_family fails for a family without a config).
    assert_eq!(
        common::one_config_per_family().len(),
        zoo::models::ImageModelConfig::kinds().len()
    );
    for (name, exp) in configs {
        first_batch_loss_matches(&name, exp);
    }
}

/// Draws `exp`'s initial weights on flex and checks that every backend computes the same
/// first-batch loss from them.
fn first_batch_loss_matches(name: &str, exp: Experiment) {
    let mut data_config = exp.data.clone();
    data_config.train_limit = Some(6000);
    let data = prepare(&data_config, None).expect(
        "Fashion-MNIST is needed for this test: sudo apt-get install dataset-fashion-mnist",
    );
    let train = data.train.in_memory().expect("IDX files are decoded whole");
    let items: Vec<_> = (0..exp.data.batch_size)
        .map(|i| burn::data::dataset::Dataset::get(train, i).unwrap())
        .collect();
    let ModelConfig::Image(config) = &exp.model else {
        unreachable!("shipped_image_configs keeps image models")
    };

    let flex = Backend::Flex.device();
    flex.seed(exp.train.seed);
    let (reference, _) = image_model(config, &exp, &flex).unwrap();
    let weights = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(weights.path(), module_bytes(&reference).unwrap()).unwrap();

    let mut losses = Vec::new();
    for backend in [Backend::Flex, Backend::Ndarray, Backend::Wgpu] {
        let device = backend.device();
        let (fresh, _) = image_model(config, &exp, &device).unwrap();
        let model = load_module(fresh, weights.path()).unwrap();
        let batch =
            burn::data::dataloader::batcher::Batcher::batch(&data.batcher, items.clone(), &device);
        let loss = model
            .loss(model.logits(batch.images), batch.targets)
            .into_scalar::<f64>();
        losses.push((backend, loss));
    }
    let (_, flex_loss) = losses[0];
    assert!(
        flex_loss > 0.1 && flex_loss < 20.0,
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
