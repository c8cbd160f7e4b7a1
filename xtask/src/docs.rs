//! `cargo xtask docs`: the generated parts of README.md and docs/, each between
//! `<!-- NAME:begin ... -->` and `<!-- NAME:end -->`, and the plots of docs/images/, rendered
//! from the model registry, the shipped configs and the records in `bench/results/` alone.
//! `--check` changes nothing and fails when a page or a plot differs from what the records give
//! (the docs test runs it).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use zoo::config::Experiment;
use zoo::models::ModelConfig;
use zoo::summary::group_digits;

use crate::bench::{self, BenchRow};
use crate::common::{configs_in, stem, References};
use crate::loader::{self, LoaderRounds};
use crate::records::{self, Provenance, Record, Table};
use crate::reproduce::{self, Reproduced};
use crate::soak::{self, Soak};

#[derive(clap::Args)]
pub struct Args {
    /// Change nothing; fail when a generated part is out of date.
    #[arg(long)]
    check: bool,
}

/// One generated part of a page.
struct Section {
    /// The page, from the workspace root.
    page: String,
    name: String,
    content: String,
}

/// README.md and the pages of docs/, from the workspace root.
fn pages(root: &Path) -> Result<Vec<String>> {
    let mut pages: Vec<String> = std::fs::read_dir(root.join("docs"))
        .context("cannot read docs/")?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    pages.sort();
    pages.insert(0, "README.md".into());
    Ok(pages)
}

pub fn run(root: &Path, args: &Args) -> Result<()> {
    if args.check {
        let stale = stale(root)?;
        if !stale.is_empty() {
            bail!(
                "out of date: {}; run `cargo xtask docs` and commit the result",
                stale.join(", ")
            );
        }
        eprintln!("docs: every generated part is up to date");
        return Ok(());
    }
    write(root)
}

/// Rewrites every generated part of every page.
pub fn write(root: &Path) -> Result<()> {
    let sections = sections(root)?;
    for page in pages(root)? {
        let path = root.join(&page);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {page}"))?;
        let updated = render_page(&sections, &page, &text)?;
        if updated != text {
            zoo::fsutil::write_atomic(&path, updated.as_bytes())
                .with_context(|| format!("cannot write {page}"))?;
            eprintln!("docs: rewrote {page}");
        }
    }
    for (file, content) in plots(root)? {
        let path = root.join(&file);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
            std::fs::create_dir_all(path.parent().expect("plots have a folder"))
                .with_context(|| format!("cannot create the folder of {file}"))?;
            zoo::fsutil::write_atomic(&path, content.as_bytes())
                .with_context(|| format!("cannot write {file}"))?;
            eprintln!("docs: rewrote {file}");
        }
    }
    Ok(())
}

/// The generated parts that differ from what the records give, as `page#name`.
pub fn stale(root: &Path) -> Result<Vec<String>> {
    let sections = sections(root)?;
    let mut found = Vec::new();
    for page in pages(root)? {
        let text = std::fs::read_to_string(root.join(&page))
            .with_context(|| format!("cannot read {page}"))?;
        let fresh = render_page(&sections, &page, &text)?;
        for name in marker_names(&text) {
            if section_text(&text, &name) != section_text(&fresh, &name) {
                found.push(format!("{page}#{name}"));
            }
        }
    }
    for (file, content) in plots(root)? {
        if std::fs::read_to_string(root.join(&file)).ok().as_deref() != Some(content.as_str()) {
            found.push(file);
        }
    }
    Ok(found)
}

/// The plots rendered whole from a record, as (file from the workspace root, SVG text).
fn plots(root: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(record) = records::load::<Record<Soak>>(root, soak::RECORD)? {
        out.push((soak::PLOT.to_string(), soak::plot_svg(&record.rows)?));
    }
    Ok(out)
}

/// `text` with each of its generated parts rendered anew; every part of the page must have a
/// generator and every generator of the page its part.
fn render_page(sections: &[Section], page: &str, text: &str) -> Result<String> {
    let sections: BTreeMap<&String, &String> = sections
        .iter()
        .filter(|s| s.page == page)
        .map(|s| (&s.name, &s.content))
        .collect();
    let marked = marker_names(text);
    for name in &marked {
        if !sections.contains_key(name) {
            bail!("{page} has a generated part `{name}` that nothing renders (no record for it in bench/results/?)");
        }
    }
    let mut out = text.to_string();
    for (name, content) in sections {
        if !marked.contains(name) {
            bail!("{page} lacks the markers of its generated part `{name}` (<!-- {name}:begin --> ... <!-- {name}:end -->)");
        }
        out = splice(&out, name, content);
    }
    Ok(out)
}

/// Every generated part, page by page.
fn sections(root: &Path) -> Result<Vec<Section>> {
    let reproduced: Reproduced = records::load(root, reproduce::RECORD)?.unwrap_or_default();
    let mut out = vec![
        Section {
            page: "README.md".into(),
            name: "models".into(),
            content: models_table(root, &reproduced)?,
        },
        Section {
            page: "docs/results.md".into(),
            name: "results".into(),
            content: reproduce::images_table(root, &reproduced)?,
        },
        Section {
            page: "docs/results.md".into(),
            name: "text".into(),
            content: reproduce::text_table(&reproduced),
        },
    ];
    for name in records::names(root, records::TABLE_PREFIX)? {
        let record: Record<Table> = records::load(root, &name)?.expect("listed");
        if !root.join(&record.rows.page).exists() {
            bail!(
                "bench/results/{name}.json: its page {} does not exist",
                record.rows.page
            );
        }
        out.push(Section {
            page: record.rows.page.clone(),
            name,
            content: measured(&record.provenance) + &record.rows.markdown(),
        });
    }
    for name in records::names(root, bench::RECORD_PREFIX)? {
        let record: Record<Vec<BenchRow>> = records::load(root, &name)?.expect("listed");
        out.push(Section {
            page: "docs/performance.md".into(),
            name,
            content: measured(&record.provenance) + &bench::markdown(&record.rows),
        });
    }
    if let Some(record) = records::load::<Record<LoaderRounds>>(root, loader::RECORD)? {
        let mut rows = record.rows.clone();
        rows.folder = shown_word(&rows.folder);
        out.push(Section {
            page: "docs/performance.md".into(),
            name: loader::RECORD.into(),
            content: measured(&record.provenance) + &loader::markdown(&rows),
        });
    }
    if let Some(record) = records::load::<Record<Soak>>(root, soak::RECORD)? {
        out.push(Section {
            page: "docs/reliability.md".into(),
            name: soak::RECORD.into(),
            content: measured(&record.provenance) + &soak::markdown(&record.rows),
        });
    }
    Ok(out)
}

/// The line above a generated table: when, where and with what it was measured.
fn measured(p: &Provenance) -> String {
    format!(
        "Measured on {} on {}, with:\n\n```sh\n{}\n```\n\n",
        p.date,
        p.machine.describe(),
        shown_command(&p.command)
    )
}

/// A recorded command as the docs show it: absolute paths of the machine it ran on become
/// their last component (`/opt/venv/bin/python` -> `python`).
fn shown_command(command: &str) -> String {
    let words: Vec<String> = command.split(' ').map(shown_word).collect();
    words.join(" ")
}

fn shown_word(word: &str) -> String {
    match word.strip_prefix('/') {
        Some(_) => Path::new(word)
            .file_name()
            .map_or(word.to_string(), |n| n.to_string_lossy().into_owned()),
        None => word.to_string(),
    }
}

/// README's model table: a row per kind of the registry and per trainable config of that
/// kind, with its parameters, its recorded result and the published figure beside it.
fn models_table(root: &Path, reproduced: &Reproduced) -> Result<String> {
    let references = References::load(root)?;
    let trainable: Vec<_> = ["configs/fashion-mnist", "configs/text"]
        .iter()
        .map(|d| configs_in(&root.join(d)))
        .collect::<Result<Vec<_>>>()?
        .concat();
    let full_size: Vec<_> = ["configs/imagenet", "configs/torchvision"]
        .iter()
        .map(|d| configs_in(&root.join(d)))
        .collect::<Result<Vec<_>>>()?
        .concat();
    let kind_of = |config: &Path| -> Result<String> {
        let exp = Experiment::load(config, &[])
            .with_context(|| format!("cannot read {}", config.display()))?;
        Ok(exp.model.kind().to_string())
    };
    let trainable: Vec<(&std::path::PathBuf, String)> = trainable
        .iter()
        .map(|c| Ok((c, kind_of(c)?)))
        .collect::<Result<_>>()?;
    // kind -> folder -> config names, in natural order (resnet18 before resnet101).
    let mut by_kind: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for config in &full_size {
        let dir = config
            .parent()
            .and_then(|d| d.file_name())
            .map_or(String::new(), |d| d.to_string_lossy().into_owned());
        let names = by_kind
            .entry(kind_of(config)?)
            .or_default()
            .entry(dir)
            .or_default();
        names.push(stem(config));
        names.sort_by_key(|n| natural_key(n));
    }
    let mut out = String::from(
        "| kind | config | parameters | test accuracy | published or measured reference | full-size configs |\n|---|---|---:|---|---|---|\n",
    );
    for kind in ModelConfig::kinds() {
        let configs: Vec<&std::path::PathBuf> = trainable
            .iter()
            .filter(|(_, k)| k == kind)
            .map(|(c, _)| *c)
            .collect();
        let full = by_kind.get(kind).map_or("-".to_string(), |folders| {
            let listed: Vec<String> = folders
                .iter()
                .map(|(dir, names)| format!("`{dir}/`: {}", names.join(", ")))
                .collect();
            listed.join("; ")
        });
        if configs.is_empty() {
            out += &format!("| `{kind}` | - | - | - | - | {full} |\n");
        }
        for (i, config) in configs.iter().enumerate() {
            let shown = config
                .strip_prefix(root)
                .unwrap_or(config)
                .display()
                .to_string();
            let full = if i == 0 { full.as_str() } else { "" };
            let (params, result, reference) =
                if let Some(r) = reproduced.images.iter().find(|r| r.config == shown) {
                    (
                        group_digits(r.params),
                        format!("**{:.4}**", r.test_accuracy),
                        references.get(&r.dataset, &stem(config)).describe(),
                    )
                } else if let Some(r) = reproduced.text.iter().find(|r| r.config == shown) {
                    (
                        group_digits(r.params),
                        format!(
                            "**{:.3}** bits/char (validation)",
                            r.validation_bits_per_char
                        ),
                        format!(
                            "{:.3} bits/char: the unigram baseline",
                            r.unigram_bits_per_char
                        ),
                    )
                } else {
                    ("-".into(), "not measured".into(), "-".into())
                };
            out +=
                &format!("| `{kind}` | `{shown}` | {params} | {result} | {reference} | {full} |\n");
        }
    }
    Ok(out)
}

/// A name's sort key with its runs of digits as numbers: `resnet18` before `resnet101`.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let text_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (text, tail) = rest.split_at(text_len);
        let digits_len = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (digits, tail) = tail.split_at(digits_len);
        key.push((text.to_string(), digits.parse().unwrap_or(0)));
        rest = tail;
    }
    key
}

/// The names of the generated parts of `text`, in order: markers stand at the start of a line
/// (a marker quoted in prose is not one).
fn marker_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let name = line.strip_prefix("<!-- ")?.split_once(":begin")?.0;
            let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
            (!name.is_empty() && name.chars().all(plain)).then(|| name.to_string())
        })
        .collect()
}

/// Where a line starting with `prefix` starts in `text`.
fn line_starting(text: &str, prefix: &str) -> Option<usize> {
    if text.starts_with(prefix) {
        return Some(0);
    }
    text.find(&format!("\n{prefix}")).map(|i| i + 1)
}

/// The byte range between a part's markers: after its begin marker's line, up to its end marker.
fn section_range(text: &str, name: &str) -> Option<std::ops::Range<usize>> {
    let a = line_starting(text, &format!("<!-- {name}:begin"))?;
    let b = line_starting(text, &format!("<!-- {name}:end -->"))?;
    let start = a + text[a..].find("-->")? + 3;
    (start <= b).then_some(start..b)
}

/// The text between a part's markers (empty when it has none).
fn section_text<'a>(text: &'a str, name: &str) -> &'a str {
    section_range(text, name).map_or("", |r| &text[r])
}

/// `text` with the part `name` replaced by `content`.
fn splice(text: &str, name: &str, content: &str) -> String {
    match section_range(text, name) {
        Some(r) => format!("{}\n{content}{}", &text[..r.start], &text[r.end..]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_found_and_replaced_between_their_markers() {
        let page = "a\n<!-- t:begin (generated) -->\nold\n<!-- t:end -->\nb\n";
        assert_eq!(marker_names(page), ["t"]);
        assert_eq!(section_text(page, "t"), "\nold\n");
        let new = splice(page, "t", "new\n");
        assert_eq!(
            new,
            "a\n<!-- t:begin (generated) -->\nnew\n<!-- t:end -->\nb\n"
        );
        assert_eq!(splice(&new, "t", "new\n"), new);
        assert_eq!(marker_names("<!-- a comment -->"), Vec::<String>::new());
        assert_eq!(
            marker_names("quoted: `<!-- t:begin -->`"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn numbers_in_names_sort_as_numbers() {
        let mut names = [
            "resnet152",
            "resnet18",
            "resnet101",
            "resnet34",
            "vgg11_bn",
            "vgg11",
        ];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(
            names,
            [
                "resnet18",
                "resnet34",
                "resnet101",
                "resnet152",
                "vgg11",
                "vgg11_bn"
            ]
        );
    }

    #[test]
    fn commands_lose_the_machines_paths() {
        assert_eq!(
            shown_command("cargo xtask bench --python /opt/venv/bin/python --out results/x"),
            "cargo xtask bench --python python --out results/x"
        );
    }
}
