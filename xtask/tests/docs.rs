//! The docs cannot rot: every block of README.md and docs/ marked `sh runnable` runs as a user
//! would paste it (on small limits), the generated tables match their records, the models page
//! lists the registry's kinds and every shipped Fashion-MNIST config with `zoo summary`'s counts,
//! links lead somewhere, and no page names a machine's path or a
//! commit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::zoo_bin;

/// Appended to every `zoo train` of a runnable block: a run of seconds, not minutes.
const TRAIN_LIMITS: &str =
    "--epochs 1 --set data.train_limit=600 --set data.val_size=100 --set data.test_limit=200";

/// The top-level entries a scratch copy of the repository leaves out: build and run outputs.
const NOT_COPIED: &[&str] = &[".git", "target", "runs", "results", "data"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md and every page of docs/, as (path from the root, text).
fn pages() -> Vec<(String, String)> {
    let root = root();
    let mut names = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    names.extend(docs);
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(root.join(&n)).unwrap();
            (n, text)
        })
        .collect()
}

/// The fenced blocks of `text` whose info string is `info`, in order.
fn blocks(text: &str, info: &str) -> Vec<String> {
    let mut found = Vec::new();
    // `None` outside a block; `Some(None)` inside another kind of block.
    let mut current: Option<Option<String>> = None;
    for line in text.lines() {
        let fence = line.trim_start().starts_with("```");
        match (&mut current, fence) {
            (None, true) => {
                let wanted = line.trim_start().trim_start_matches('`').trim() == info;
                current = Some(wanted.then(String::new));
            }
            (Some(block), true) => {
                found.extend(block.take());
                current = None;
            }
            (Some(Some(block)), false) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    found
}

/// A runnable block as the shell runs it: the binaries for `cargo run --` and `cargo xtask`,
/// continuation lines joined, and every `zoo train` limited.
fn as_script(block: &str) -> String {
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .map(|line| {
            let line = line
                .replace("cargo run --", "\"$ZOO\"")
                .replace("cargo xtask", "\"$XTASK\"");
            if line.trim_start().starts_with("\"$ZOO\" train ") {
                format!("{line} {TRAIN_LIMITS}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A scratch directory that holds the repository's files (linked), not its outputs.
fn scratch_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(root()).unwrap();
    for entry in std::fs::read_dir(&root).unwrap() {
        let name = entry.unwrap().file_name();
        if NOT_COPIED.contains(&name.to_string_lossy().as_ref()) {
            continue;
        }
        std::os::unix::fs::symlink(root.join(&name), dir.path().join(&name)).unwrap();
    }
    dir
}

#[test]
fn the_runnable_blocks_of_every_page_run() {
    let zoo = zoo_bin();
    let xtask = PathBuf::from(env!("CARGO_BIN_EXE_xtask"));
    let mut ran = 0;
    for (page, text) in pages() {
        let scripts: Vec<String> = blocks(&text, "sh runnable")
            .iter()
            .map(|b| as_script(b))
            .collect();
        if scripts.is_empty() {
            continue;
        }
        // One scratch copy per page: a page's later blocks may use what its earlier ones wrote.
        let scratch = scratch_copy();
        for script in scripts {
            let out = Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .current_dir(scratch.path())
                .env("ZOO", &zoo)
                .env("XTASK", &xtask)
                .env("ZOO_BIN", &zoo)
                .env("ZOO_ROOT", scratch.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "a runnable block of {page} failed:\n{script}\n--- stdout:\n{}\n--- stderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
        }
    }
    assert!(ran >= 5, "only {ran} runnable blocks were found");
}

#[test]
fn the_generated_tables_match_their_records() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["docs", "--check"])
        .env("ZOO_ROOT", root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo xtask docs --check: {stderr}");
}

#[test]
fn the_models_page_lists_the_registrys_kinds() {
    let text = std::fs::read_to_string(root().join("docs/models.md")).unwrap();
    let table = text
        .split("\n| kind |")
        .nth(1)
        .expect("docs/models.md has a table whose first column is `kind`");
    let mut documented = BTreeSet::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let first = row.trim_start_matches('|').split('|').next().unwrap_or("");
        documented.extend(first.split('`').skip(1).step_by(2).map(str::to_string));
    }
    let registry: BTreeSet<String> = zoo::models::ModelConfig::kinds()
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        documented, registry,
        "docs/models.md's kinds table must list exactly the registry's kinds"
    );
}

#[test]
fn the_models_page_gives_each_fashion_mnist_config_its_kind_and_counts() {
    let text = std::fs::read_to_string(root().join("docs/models.md")).unwrap();
    let table = text
        .split("## The Fashion-MNIST configs")
        .nth(1)
        .and_then(|section| section.split("\n| config |").nth(1))
        .expect("docs/models.md has a Fashion-MNIST configs table whose first column is `config`");
    let cells = |row: &str| -> Vec<String> {
        row.trim_matches('|')
            .split('|')
            .map(|c| c.trim().trim_matches('`').replace(',', ""))
            .collect()
    };
    let rows: Vec<Vec<String>> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(cells)
        .collect();
    let dir = root().join("configs/fashion-mnist");
    let mut shipped: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    shipped.sort();
    let mut listed: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    listed.sort();
    assert_eq!(
        listed, shipped,
        "docs/models.md must list every shipped Fashion-MNIST config"
    );
    for row in &rows {
        let exp = zoo::config::Experiment::load(&dir.join(&row[0]), &[]).unwrap();
        let summary = zoo::run::summarize(&exp).unwrap();
        let expected = [
            exp.model.kind().to_string(),
            summary.total_params.to_string(),
            summary.total_macs.to_string(),
        ];
        assert_eq!(
            row[1..4],
            expected,
            "docs/models.md, {}: kind, parameters and multiply-accumulates per image are those of `zoo summary`",
            row[0]
        );
    }
}

/// The anchors of a page's headings, as GitHub makes them (code blocks left out).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            let title = line.trim_start_matches('#').trim().to_lowercase();
            let slug: String = title
                .chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
                .map(|c| if c == ' ' { '-' } else { c })
                .collect();
            found.insert(slug);
        }
    }
    found
}

#[test]
fn links_between_pages_lead_to_files_and_headings() {
    let root = root();
    let mut broken = Vec::new();
    for (page, text) in pages() {
        let here = root.join(&page);
        let dir = here.parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let target = &target[..target.find(')').unwrap_or(0)];
            if target.contains("://") || target.is_empty() {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if file.is_empty() {
                here.clone()
            } else {
                dir.join(file)
            };
            if !file.exists() {
                broken.push(format!("{page}: {target} (no such file)"));
            } else if !anchor.is_empty() {
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{page}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "links that lead nowhere: {broken:#?}");
}

/// A word that looks like a commit hash or a weights digest: 7 to 40 hex digits, with both
/// letters and digits.
fn looks_like_a_hash(word: &str) -> bool {
    (7..=40).contains(&word.len())
        && word
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && word.chars().any(|c| c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_alphabetic())
}

#[test]
fn no_page_names_a_machines_path_or_a_commit() {
    let machine_paths = [
        "/work/",
        "/root/",
        "/tmp/torchenv",
        "/home/runner",
        "/shared/",
    ];
    let mut found = Vec::new();
    for (page, text) in pages() {
        for (n, line) in text.lines().enumerate() {
            for path in machine_paths {
                if line.contains(path) {
                    found.push(format!("{page}:{}: {path}", n + 1));
                }
            }
            for word in line.split(|c: char| !c.is_ascii_alphanumeric()) {
                if looks_like_a_hash(word) {
                    found.push(format!("{page}:{}: {word}", n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "machine paths or hashes in the docs: {found:#?}"
    );
}

#[test]
fn the_block_parser_and_the_rewriting_do_what_the_docs_say() {
    let page = "```sh runnable\ncargo run -- train a.toml \\\n  --out runs/a\n```\n```sh\ncargo run -- list\n```\n```sh runnable\ncargo xtask docs\n```\n";
    let found = blocks(page, "sh runnable");
    assert_eq!(found.len(), 2);
    assert_eq!(
        as_script(&found[0]),
        format!("\"$ZOO\" train a.toml    --out runs/a {TRAIN_LIMITS}")
    );
    assert_eq!(as_script(&found[1]), "\"$XTASK\" docs");
    assert_eq!(
        anchors("# A title\n```sh\n# not a heading\n```\n## What it offers: `zoo backends`\n"),
        BTreeSet::from([
            "a-title".to_string(),
            "what-it-offers-zoo-backends".to_string()
        ])
    );
    assert!(looks_like_a_hash("176f669"));
    assert!(!looks_like_a_hash("deadbeef") && !looks_like_a_hash("1234567"));
}
