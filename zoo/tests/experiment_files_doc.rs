//! docs/experiment-files.md against the config types, so that the page cannot drift: every key
//! of every section and of every model kind of the registry is documented with its default, and
//! every key the page documents is one the config reads.
//!
//! The expected keys come from zoo itself: the defaults from the resolved config of a minimal
//! experiment (what `zoo check --print-config` prints) and from each kind's config read from an
//! empty `[model]` table; the full list of a table's keys (those absent unless set included)
//! from the error an unknown key gets, which names them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use zoo::config::{ConfigError, Experiment};
use zoo::models::ModelConfig;

const PAGE: &str = "docs/experiment-files.md";
/// A key no table has, to make each table list its keys.
const PROBE_KEY: &str = "zoo_doc_probe";
/// A value of the wrong type for every key that is not a table.
const WRONG_TYPE: &str = "{}";
/// The config every section probe is read with (any kind would do).
const MINIMAL: &str = "[model]\nkind = \"mlp\"\n";

/// One `| key | default | meaning |` row; `default` is `None` for `-` (absent unless set).
struct Row {
    key: String,
    default: Option<toml::Value>,
    meaning: String,
    line: usize,
}

/// A table and the heading it sits under.
struct Table {
    heading: String,
    line: usize,
    rows: Vec<Row>,
}

/// What a table documents, read from the backticked names of its heading.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// `[data]`, `[data.augment]`, ...
    Section(String),
    /// One or more model kinds sharing a config, e.g. `alexnet`, `zfnet`.
    Kinds(Vec<String>),
    /// `[[model.KEY]]`: the tables of an array key of these kinds.
    Rows { key: String, kinds: Vec<String> },
}

struct Page {
    tables: Vec<Table>,
    /// The ```toml blocks, with their first line.
    examples: Vec<(usize, String)>,
}

fn page() -> Page {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(PAGE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_page(&text)
}

fn parse_page(text: &str) -> Page {
    let mut tables: Vec<Table> = Vec::new();
    let mut examples = Vec::new();
    let mut heading = (String::new(), 0);
    let mut fence: Option<(usize, bool, String)> = None;
    let mut in_table = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if let Some(rest) = line.strip_prefix("```") {
            fence = match fence.take() {
                Some((start, true, body)) => {
                    examples.push((start, body));
                    None
                }
                Some(_) => None,
                None => Some((n, rest.trim() == "toml", String::new())),
            };
            continue;
        }
        if let Some((_, _, body)) = fence.as_mut() {
            body.push_str(line);
            body.push('\n');
            continue;
        }
        if line.starts_with('#') {
            heading = (line.trim_start_matches('#').trim().to_string(), n);
            in_table = false;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let cells: Vec<&str> = line.splitn(4, '|').map(str::trim).collect();
        if !in_table {
            assert_eq!(
                &cells[1..],
                ["key", "default", "meaning |"],
                "{PAGE}:{n}: a table's header must be `| key | default | meaning |`"
            );
            assert!(
                tables.iter().all(|t| t.line != heading.1),
                "{PAGE}:{n}: a second table under `{}`; give each table its own heading",
                heading.0
            );
            tables.push(Table {
                heading: heading.0.clone(),
                line: heading.1,
                rows: Vec::new(),
            });
            in_table = true;
            continue;
        }
        if cells[1].starts_with("---") {
            continue;
        }
        assert_eq!(
            cells.len(),
            4,
            "{PAGE}:{n}: expected `| key | default | meaning |`"
        );
        let key = backticked(cells[1]);
        assert!(
            key.len() == 1 && cells[1] == format!("`{}`", key[0]),
            "{PAGE}:{n}: the key cell must be one key in backticks, got `{}`",
            cells[1]
        );
        let default = match cells[2] {
            "-" | "`-`" => None,
            cell => {
                let value = cell
                    .strip_prefix('`')
                    .and_then(|c| c.strip_suffix('`'))
                    .unwrap_or_else(|| {
                        panic!(
                            "{PAGE}:{n}: a default is `-` or a TOML value in backticks, got {cell}"
                        )
                    });
                Some(toml_value(value).unwrap_or_else(|e| {
                    panic!("{PAGE}:{n}: the default {cell} is no TOML value: {e}")
                }))
            }
        };
        let table = tables.last_mut().expect("a table has begun");
        table.rows.push(Row {
            key: key[0].clone(),
            default,
            meaning: cells[3].trim_end_matches('|').trim().to_string(),
            line: n,
        });
    }
    assert!(fence.is_none(), "{PAGE}: a code block is not closed");
    Page { tables, examples }
}

/// The names written in backticks in `text`.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn toml_value(text: &str) -> Result<toml::Value, toml::de::Error> {
    let mut table: toml::Table = format!("v = {text}").parse()?;
    Ok(table.remove("v").expect("the key just written"))
}

/// What a table's heading says it documents.
fn target(table: &Table, kinds: &[&str]) -> Result<Target, String> {
    let names = backticked(&table.heading);
    let at = format!("{PAGE}:{}: heading \"{}\"", table.line, table.heading);
    let (sections, rest): (Vec<&String>, Vec<&String>) =
        names.iter().partition(|n| n.starts_with('['));
    let rest: Vec<String> = rest.into_iter().cloned().collect();
    for name in &rest {
        if !kinds.contains(&name.as_str()) {
            return Err(format!(
                "{at}: `{name}` is no model kind; the kinds are {}",
                kinds.join(", ")
            ));
        }
    }
    match sections.as_slice() {
        [] if !rest.is_empty() => Ok(Target::Kinds(rest)),
        [section]
            if section.starts_with("[[model.") && section.ends_with("]]") && !rest.is_empty() =>
        {
            Ok(Target::Rows {
                key: section["[[model.".len()..section.len() - 2].to_string(),
                kinds: rest,
            })
        }
        [section] if rest.is_empty() && section.ends_with(']') => {
            Ok(Target::Section(section[1..section.len() - 1].to_string()))
        }
        _ => Err(format!(
            "{at}: a table's heading names one section in backticks (`[data]`), or the model \
             kinds it documents (`alexnet`, `zfnet`), or `[[model.KEY]]` and those kinds"
        )),
    }
}

/// The page's tables by what they document.
fn documented(page: &Page) -> BTreeMap<Target, &Table> {
    let kinds = ModelConfig::kinds();
    let mut out = BTreeMap::new();
    for table in &page.tables {
        let target = target(table, &kinds).unwrap_or_else(|e| panic!("{e}"));
        if let Some(other) = out.insert(target.clone(), table) {
            panic!(
                "{PAGE}:{} and {PAGE}:{}: two tables document {target:?}; keep one",
                other.line, table.line
            );
        }
    }
    out
}

/// What zoo says a table holds: every key it reads, and the defaults it writes back.
struct Expected {
    /// Where the page should put it, e.g. `[data.augment]` or `kind = "vgg"`.
    name: String,
    keys: BTreeSet<String>,
    defaults: toml::Table,
}

/// Parses `text` as an experiment that must be refused; the error.
fn refused(text: &str) -> ConfigError {
    match Experiment::parse(text, "probe.toml", &[]) {
        Ok(_) => panic!("expected this config to be refused:\n{text}"),
        Err(e) => e,
    }
}

/// Every key the table at `path` of `text` accepts, from the error an unknown key gets; `text`
/// must write `PROBE_KEY` there.
fn keys_from_unknown_key(text: &str, path: &str) -> BTreeSet<String> {
    let e = refused(text);
    let expected_key = format!("{path}.{PROBE_KEY}");
    assert!(
        e.key == expected_key
            && e.message
                .starts_with(&format!("unknown field `{PROBE_KEY}`")),
        "an unknown key at {path} should be refused as an unknown field, got `{e}`; \
         does the table still deny unknown keys?\n{text}"
    );
    let (_, listed) = e.message.split_once("expected").unwrap_or(("", ""));
    backticked(listed).into_iter().collect()
}

/// The sections, from the resolved config of a minimal experiment.
fn expected_sections() -> Vec<Expected> {
    let exp = Experiment::parse(MINIMAL, "minimal.toml", &[]).expect("a minimal config");
    let toml::Value::Table(mut resolved) = toml::Value::try_from(&exp).expect("serializes") else {
        panic!("an experiment serializes as a table");
    };
    resolved.remove("model");
    let mut out = Vec::new();
    let mut pending: Vec<(String, toml::Table)> = resolved
        .into_iter()
        .map(|(name, value)| match value {
            toml::Value::Table(t) => (name, t),
            other => panic!("section {name} serializes as {other}, not a table"),
        })
        .collect();
    while let Some((name, table)) = pending.pop() {
        let mut defaults = toml::Table::new();
        for (key, value) in table {
            match value {
                toml::Value::Table(sub) => pending.push((format!("{name}.{key}"), sub)),
                value => {
                    defaults.insert(key, value);
                }
            }
        }
        let header = format!("{MINIMAL}[{name}]\n{PROBE_KEY} = 1\n");
        out.push(Expected {
            keys: keys_from_unknown_key(&header, &name),
            name: format!("[{name}]"),
            defaults,
        });
    }
    out
}

/// The config of `kind` read from `[model]` with only `table` in it, written back.
fn model_defaults(kind: &str, table: toml::Table) -> Result<toml::Table, String> {
    let config = ModelConfig::read(kind, toml::Value::Table(table))
        .unwrap_or_else(|| panic!("the registry lists {kind} but does not read it"))
        .map_err(|e| e.to_string())?;
    let toml::Value::Table(mut written) = toml::Value::try_from(&config).expect("serializes")
    else {
        panic!("a model config serializes as a table");
    };
    assert_eq!(
        written
            .remove("kind")
            .and_then(|k| k.as_str().map(str::to_string))
            .as_deref(),
        Some(kind),
        "{kind} is written back as another kind"
    );
    Ok(written)
}

/// A model kind's keys and defaults.
fn expected_kind(kind: &str) -> Expected {
    let defaults = model_defaults(kind, toml::Table::new())
        .unwrap_or_else(|e| panic!("{kind} from an empty [model]: {e}"));
    let text = format!("[model]\nkind = \"{kind}\"\n{PROBE_KEY} = 1\n");
    let mut keys = keys_from_unknown_key(&text, "model");
    keys.remove("kind");
    Expected {
        name: format!("kind = \"{kind}\""),
        keys,
        defaults,
    }
}

/// The keys and defaults of one table in the array `key` of `kind` (e.g. a row of
/// `features`): the required keys, found one by one from "missing field" errors, are filled in
/// with 1 and count as having no default.
fn expected_rows(kind: &str, key: &str) -> Expected {
    let text = format!("[model]\nkind = \"{kind}\"\n{key} = [{{ {PROBE_KEY} = 1 }}]\n");
    let keys = keys_from_unknown_key(&text, &format!("model.{key}[0]"));
    let mut row = toml::Table::new();
    let mut required = Vec::new();
    let written = loop {
        let mut table = toml::Table::new();
        table.insert(
            key.into(),
            toml::Value::Array(vec![toml::Value::Table(row.clone())]),
        );
        match model_defaults(kind, table) {
            Ok(written) => break written,
            Err(e) => {
                let missing = e
                    .split_once("missing field `")
                    .and_then(|(_, rest)| rest.split('`').next())
                    .filter(|m| !row.contains_key(*m))
                    .unwrap_or_else(|| {
                        panic!("{kind}: a `{key}` row of required keys set to 1 is refused: {e}")
                    })
                    .to_string();
                row.insert(missing.clone(), toml::Value::Integer(1));
                required.push(missing);
            }
        }
    };
    let mut defaults = match written
        .get(key)
        .and_then(|v| v.as_array())
        .map(Vec::as_slice)
    {
        Some([toml::Value::Table(t)]) => t.clone(),
        other => panic!("{kind}: `{key}` is written back as {other:?}"),
    };
    for k in &required {
        defaults.remove(k);
    }
    Expected {
        name: format!("[[model.{key}]] of kind = \"{kind}\""),
        keys,
        defaults,
    }
}

/// What is wrong with `table` as the page's table for `expected`; `subsections` are keys
/// documented in tables of their own.
fn compare(expected: &Expected, table: &Table, subsections: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let at = |line: usize| format!("{PAGE}:{line}: {}", expected.name);
    let mut seen = BTreeSet::new();
    for row in &table.rows {
        if !seen.insert(&row.key) {
            problems.push(format!("{}: `{}` is listed twice", at(row.line), row.key));
        }
        if !expected.keys.contains(&row.key) || subsections.contains(&row.key) {
            problems.push(format!(
                "{}: documents `{}`, which is no key here (the keys are {}): fix or remove the row",
                at(row.line),
                row.key,
                names(&expected.keys, subsections)
            ));
            continue;
        }
        let actual = expected.defaults.get(&row.key);
        match (&row.default, actual) {
            (Some(doc), Some(actual)) if doc != actual => problems.push(format!(
                "{}: `{}` is documented with default `{doc}`, but its default is `{actual}`: \
                 write `{actual}`",
                at(row.line),
                row.key
            )),
            (Some(doc), None) => problems.push(format!(
                "{}: `{}` is documented with default `{doc}`, but it is absent unless set: \
                 write `-` and say in the meaning what absence does",
                at(row.line),
                row.key
            )),
            (None, Some(actual)) => problems.push(format!(
                "{}: `{}` is documented as absent unless set (`-`), but its default is \
                 `{actual}`: write `{actual}`",
                at(row.line),
                row.key
            )),
            _ => {}
        }
    }
    for key in expected.keys.difference(subsections) {
        if !seen.contains(key) {
            let default = expected
                .defaults
                .get(key)
                .map_or("-".to_string(), |v| format!("`{v}`"));
            problems.push(format!(
                "{}: `{key}` is not documented: add the row | `{key}` | {default} | ... |",
                at(table.line)
            ));
        }
    }
    problems
}

fn names(keys: &BTreeSet<String>, except: &BTreeSet<String>) -> String {
    keys.difference(except)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{PAGE} disagrees with the config:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_section_key_is_documented_with_its_default() {
    let page = page();
    let tables = documented(&page);
    let sections = expected_sections();
    let section_names: BTreeSet<String> = sections.iter().map(|s| s.name.clone()).collect();
    let mut problems = Vec::new();
    for section in &sections {
        let inner = section.name.trim_matches(['[', ']']);
        let subsections: BTreeSet<String> = section_names
            .iter()
            .filter_map(|n| {
                n.trim_matches(['[', ']'])
                    .strip_prefix(&format!("{inner}."))
            })
            .map(str::to_string)
            .collect();
        match tables.get(&Target::Section(inner.to_string())) {
            Some(table) => problems.extend(compare(section, table, &subsections)),
            None => problems.push(format!(
                "{PAGE}: no table for {0}: add a heading `{0}` (in backticks) with a \
                 | key | default | meaning | table of its keys ({1})",
                section.name,
                names(&section.keys, &subsections)
            )),
        }
    }
    for target in tables.keys() {
        if let Target::Section(name) = target {
            if name != "model" && !section_names.contains(&format!("[{name}]")) {
                problems.push(format!(
                    "{PAGE}: documents [{name}], which is no section; the sections are [model], {}",
                    section_names.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    report(problems);
}

#[test]
fn model_kind_is_documented_with_every_kind() {
    let page = page();
    let tables = documented(&page);
    let table = tables
        .get(&Target::Section("model".into()))
        .unwrap_or_else(|| panic!("{PAGE}: no `[model]` table documenting `kind`"));
    let keys: Vec<&str> = table.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        ["kind"],
        "{PAGE}:{}: the `[model]` table documents `kind` alone (each kind's keys have their own table)",
        table.line
    );
    let row = &table.rows[0];
    assert!(
        row.default.is_none(),
        "{PAGE}:{}: `kind` is required: its default is `-`",
        row.line
    );
    let listed = backticked(&row.meaning);
    let missing: Vec<&str> = ModelConfig::kinds()
        .into_iter()
        .filter(|k| !listed.iter().any(|l| l == k))
        .collect();
    assert!(
        missing.is_empty(),
        "{PAGE}:{}: the meaning of `kind` does not list {missing:?}",
        row.line
    );
    let e = refused(&format!("[model]\nkind = {WRONG_TYPE}\n"));
    assert_eq!(e.key, "model.kind", "{e}");
}

#[test]
fn every_model_kind_has_its_table_with_every_key_and_default() {
    let page = page();
    let tables = documented(&page);
    let mut problems = Vec::new();
    for kind in ModelConfig::kinds() {
        let expected = expected_kind(kind);
        let found: Vec<&Table> = tables
            .iter()
            .filter_map(|(t, table)| match t {
                Target::Kinds(kinds) if kinds.iter().any(|k| k == kind) => Some(*table),
                _ => None,
            })
            .collect();
        match found.as_slice() {
            [table] => problems.extend(compare(&expected, table, &BTreeSet::new())),
            [] => problems.push(format!(
                "{PAGE}: no table for the model kind `{kind}`: add a heading naming `{kind}` \
                 (in backticks) with a | key | default | meaning | table of its keys ({})",
                names(&expected.keys, &BTreeSet::new())
            )),
            _ => problems.push(format!(
                "{PAGE}: `{kind}` has more than one table; keep one"
            )),
        }
    }
    for (target, table) in &tables {
        if let Target::Rows { key, kinds } = target {
            for kind in kinds {
                problems.extend(compare(&expected_rows(kind, key), table, &BTreeSet::new()));
            }
        }
    }
    report(problems);
}

/// For each kind `target` documents: the path of `key` in the experiment, and a config that
/// sets it to `value`.
fn setting(target: &Target, key: &str, value: &str) -> Vec<(String, String)> {
    match target {
        // `kind`, checked by `model_kind_is_documented_with_every_kind`.
        Target::Section(name) if name == "model" => Vec::new(),
        Target::Section(name) => vec![(
            format!("{name}.{key}"),
            format!("{MINIMAL}[{name}]\n{key} = {value}\n"),
        )],
        Target::Kinds(kinds) => kinds
            .iter()
            .map(|kind| {
                (
                    format!("model.{key}"),
                    format!("[model]\nkind = \"{kind}\"\n{key} = {value}\n"),
                )
            })
            .collect(),
        Target::Rows { key: array, kinds } => kinds
            .iter()
            .map(|kind| {
                (
                    format!("model.{array}[0].{key}"),
                    format!("[model]\nkind = \"{kind}\"\n{array} = [{{ {key} = {value} }}]\n"),
                )
            })
            .collect(),
    }
}

/// A key documented as absent unless set is still a key: a value of the wrong type is refused
/// as such, not as an unknown key (every table refuses unknown keys, which is checked first).
#[test]
fn keys_without_default_are_real_keys() {
    let page = page();
    let tables = documented(&page);
    let mut problems = Vec::new();
    for (target, table) in &tables {
        for (path, text) in setting(target, PROBE_KEY, "1") {
            let e = refused(&text);
            assert!(
                e.message.starts_with("unknown field") || e.message.starts_with("unknown section"),
                "an unknown key at {path} should be refused, got `{e}`"
            );
        }
        for row in table.rows.iter().filter(|r| r.default.is_none()) {
            for (path, text) in setting(target, &row.key, WRONG_TYPE) {
                match Experiment::parse(&text, "probe.toml", &[]) {
                    Ok(_) => problems.push(format!(
                        "{PAGE}:{}: `{}` = {WRONG_TYPE} was accepted; the test cannot tell \
                         whether it is a key",
                        row.line, row.key
                    )),
                    Err(e) if e.message.starts_with("unknown field") || e.key != path => problems
                        .push(format!(
                            "{PAGE}:{}: `{}` is documented, but setting it gives `{e}`: it is \
                             no key of {}; fix or remove the row",
                            row.line, row.key, table.heading
                        )),
                    Err(_) => {}
                }
            }
        }
    }
    report(problems);
}

#[test]
fn the_examples_are_valid_experiments() {
    let page = page();
    assert!(!page.examples.is_empty(), "{PAGE}: no ```toml example");
    for (line, text) in &page.examples {
        if let Err(e) = Experiment::parse(text, &format!("{PAGE}:{line} (example)"), &[]) {
            panic!("the example at {PAGE}:{line} is refused: {e}");
        }
    }
}
