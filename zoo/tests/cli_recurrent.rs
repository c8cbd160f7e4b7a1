//! Recurrent models through the CLI: sequence classifiers over image rows and the
//! character-level language model with sampling, on generated data.

mod common;
use common::*;

#[test]
fn recurrent_classifiers_train_on_image_rows() {
    let sb = Sandbox::with_data(600, 200);
    // The plain tanh RNN learns more slowly from these 600 images: 8 epochs, not 4.
    for (cell, epochs) in [("lstm", "4"), ("gru", "4"), ("rnn", "8")] {
        let config = sb.config(
            &format!("{cell}.toml"),
            &format!("kind = \"lstm\"\ncell = \"{cell}\"\nhidden = 32"),
            "",
        );
        sb.zoo_ok(&[
            "train",
            &config,
            "--set",
            "train.optimizer=\"adam\"",
            "--epochs",
            epochs,
        ]);
        let m = sb.metrics(&format!("runs/{cell}"));
        let gates = match cell {
            "lstm" => 4,
            "gru" => 3,
            _ => 1,
        };
        assert_eq!(
            m["params"],
            gates * (28 * 32 + 32 + 32 * 32 + 32) + 32 * 10 + 10,
            "{cell}"
        );
        assert!(
            m["test"]["accuracy"].as_f64().unwrap() > 0.8,
            "{cell}: {}",
            m["test"]["accuracy"]
        );
    }
}

/// A text with structure a small model learns quickly.
fn write_text(sb: &Sandbox) -> String {
    let words = [
        "the cat sat on the mat. ",
        "a dog ran in the fog. ",
        "my hat is on the cat. ",
    ];
    let text: String = (0..400).map(|i| words[(i * 7 + i / 3) % 3]).collect();
    let path = sb.path().join("corpus.txt");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn lm_config(sb: &Sandbox, text: &str) -> String {
    let body = format!(
        "[model]\nkind = \"char-lm\"\nembedding = 16\nhidden = 64\nlayers = 1\ndropout = 0.0\n\n[data]\ntext = \"{text}\"\nseq_len = 32\nbatch_size = 16\n\n[train]\nepochs = 6\noptimizer = \"adam\"\nlr = 0.01\nclip_grad_norm = 5.0\n"
    );
    write_config(sb.path(), "lm.toml", &body)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn char_lm_stopped_by_sigterm_mid_epoch_resumes_to_the_same_weights() {
    let sb = Sandbox::empty();
    let text = write_text(&sb);
    // Two epochs, with dropout: the resumed epoch must replay its random draws.
    let body = std::fs::read_to_string(lm_config(&sb, &text)).unwrap();
    let body = body
        .replace("epochs = 6", "epochs = 2")
        .replace("dropout = 0.0", "dropout = 0.2");
    let config = write_config(sb.path(), "lm2.toml", &body);
    let config = config.to_str().unwrap();
    sb.zoo_ok(&["train", config, "--out", "straight"]);
    let (status, log) =
        train_and_signal(sb.path(), &["train", config, "--out", "stopped"], &["TERM"]);
    assert_eq!(status.code(), Some(INTERRUPTED), "{log}");
    let names = checkpoint_names(&sb.path().join("stopped"));
    assert!(
        names.len() == 1 && names[0].starts_with("epoch-0000-batch-"),
        "one mid-epoch checkpoint: {names:?}"
    );
    sb.zoo_ok(&["train", config, "--out", "stopped", "--resume"]);
    assert_same_training(&sb.metrics("straight"), &sb.metrics("stopped"));
}

#[test]
fn char_lm_beats_the_unigram_baseline_and_samples() {
    let sb = Sandbox::empty();
    let text = write_text(&sb);
    let config = lm_config(&sb, &text);
    sb.zoo_ok(&["train", &config]);
    let m = sb.metrics("runs/lm");
    let bpc = m["validation"]["bits_per_char"].as_f64().unwrap();
    let unigram = m["unigram_bits_per_char"].as_f64().unwrap();
    assert!(
        bpc < 0.5 * unigram,
        "validation {bpc} bits/char vs unigram {unigram}"
    );
    let perplexity = m["validation"]["perplexity"].as_f64().unwrap();
    assert!((perplexity.ln() / std::f64::consts::LN_2 - bpc).abs() < 1e-9);
    assert_eq!(m["history"].as_array().unwrap().len(), 6);

    let sample_args = [
        "sample",
        "runs/lm",
        "--prompt",
        "the ",
        "--length",
        "60",
        "--temperature",
        "0.5",
        "--seed",
        "3",
    ];
    let out = sb.zoo_ok(&sample_args);
    let sample = stdout(&out);
    assert!(sample.starts_with("the "), "{sample}");
    assert!(sample.trim_end().chars().count() >= 60);
    assert!(
        sample.chars().all(|c| "the catsonm.adgrfyi\n".contains(c)),
        "only the text's characters: {sample}"
    );
    // Learned words appear.
    assert!(
        sample.contains("the")
            && (sample.contains("cat") || sample.contains("mat") || sample.contains("hat")),
        "{sample}"
    );
    // The same seed gives the same text.
    let again = sb.zoo_ok(&sample_args);
    assert_eq!(stdout(&again), sample);

    let err = assert_clean_failure(&sb.zoo(&["sample", "runs/lm", "--prompt", "zebra"]));
    assert!(
        err.contains("--prompt: 'z' does not occur in the training text"),
        "{err}"
    );
    let out = sb.zoo_ok(&["eval", "runs/lm"]);
    assert!(
        stdout(&out).contains(&format!("{bpc:.3} bits/char")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn char_lm_configs_must_name_a_readable_text() {
    let sb = Sandbox::empty();
    let config = lm_config(&sb, "/no/such/file.txt");
    // The text is read (its vocabulary learned) when the data is prepared, not when the
    // config is parsed: the error names the key and the file.
    let err = assert_clean_failure(&sb.zoo(&["check", &config]));
    assert!(
        err.contains("error: data.text: /no/such/file.txt: cannot read"),
        "{err}"
    );
    let no_text = write_config(sb.path(), "nt.toml", "[model]\nkind = \"char-lm\"\n");
    let err = assert_clean_failure(&sb.zoo(&["check", no_text.to_str().unwrap()]));
    assert!(
        err.contains("data.text: the char-lm model reads a text file"),
        "{err}"
    );
    let text = write_text(&sb);
    let wrong = write_config(
        sb.path(),
        "w.toml",
        &format!("[model]\nkind = \"mlp\"\n[data]\ntext = \"{text}\"\n"),
    );
    let err = assert_clean_failure(&sb.zoo(&["check", wrong.to_str().unwrap()]));
    assert!(
        err.contains("w.toml:4: data.text: only the char-lm model reads text, not mlp"),
        "{err}"
    );
}
