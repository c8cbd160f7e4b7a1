//! The layering of the crates' modules, checked on their source: no module imports one that
//! (directly or not) imports it back. The crates are the workspace's members (the root
//! `Cargo.toml`); a module is a file of a crate's `src`; an import is a path through `crate::`
//! or `super::`, or into a child module. Unit tests (`#[cfg(test)] mod tests`) are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name (`models::cnn`; `crate` for lib.rs / main.rs) -> its source text.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| p != "mod")
                .collect();
            // A unit-test module in a file of its own (`#[cfg(test)] mod tests;`).
            if parts.last().is_some_and(|p| p == "tests") {
                continue;
            }
            // A binary beside a library is a crate of its own, which reaches the library as
            // `zoo::`; it stays out of the library's graph under its own name.
            let is_root = parts == ["lib"] || (parts == ["main"] && !src.join("lib.rs").exists());
            let name = if is_root {
                "crate".to_string()
            } else {
                parts.join("::")
            };
            found.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    found
}

/// The module a path names: its longest prefix that is a module.
fn resolve(path: &[&str], known: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| known.contains_key(m))
}

/// Edges module -> module it imports, from `crate::a::b`, `super::a` and `child::...` paths.
fn imports(known: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for (name, text) in known {
        let here: Vec<&str> = if name == "crate" {
            vec![]
        } else {
            name.split("::").collect()
        };
        let mut edges = BTreeSet::new();
        // Unit tests (`mod tests { .. }` at the end of a file) are left out: their `super` is
        // the file.
        let code = text
            .split("#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or(text);
        let code: String = code
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for (i, _) in code.match_indices("::") {
            let start = code[..i]
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(0, |s| s + 1);
            let end = code[i..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| i + e);
            let path: Vec<&str> = code[start..end]
                .split("::")
                .filter(|p| !p.is_empty())
                .collect();
            let absolute: Vec<&str> = match path.first() {
                Some(&"crate") => path[1..].to_vec(),
                Some(&"super") => {
                    let ups = path.iter().take_while(|p| **p == "super").count();
                    let base = &here[..here.len().saturating_sub(ups)];
                    base.iter()
                        .copied()
                        .chain(path[ups..].iter().copied())
                        .collect()
                }
                Some(&"self") => here
                    .iter()
                    .copied()
                    .chain(path[1..].iter().copied())
                    .collect(),
                // A child module used by its bare name (`builder::NetBuilder` in models).
                Some(first)
                    if known.contains_key(
                        &here
                            .iter()
                            .copied()
                            .chain([*first])
                            .collect::<Vec<_>>()
                            .join("::"),
                    ) =>
                {
                    here.iter().copied().chain(path.iter().copied()).collect()
                }
                _ => continue,
            };
            let target = if absolute.is_empty() {
                Some("crate".to_string())
            } else {
                resolve(&absolute, known)
            };
            if let Some(target) = target.filter(|t| t != name) {
                edges.insert(target);
            }
        }
        graph.insert(name.clone(), edges);
    }
    graph
}

/// A cycle through the graph, if any, as the modules along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

/// The workspace's member crates, as listed in the root `Cargo.toml`.
fn workspace_members(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&manifest).unwrap();
    manifest["workspace"]["members"]
        .as_array()
        .expect("workspace.members is a list")
        .iter()
        .map(|m| m.as_str().expect("a member is a path").to_string())
        .collect()
}

#[test]
fn no_crate_of_the_workspace_has_modules_that_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let members = workspace_members(&root);
    assert!(
        members.iter().any(|m| m == "zoo"),
        "the workspace's members were not read: {members:?}"
    );
    let mut cycles = Vec::new();
    for member in &members {
        let known = modules(&root.join(member).join("src"));
        assert!(known.len() > 3, "{member}/src: no modules found");
        if let Some(found) = cycle(&imports(&known)) {
            cycles.push(format!("{member}/src: {}", found.join(" -> ")));
        }
    }
    assert!(
        cycles.is_empty(),
        "modules import each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn a_cycle_through_crate_and_super_paths_is_found() {
    let known = sources(&[
        ("crate", "pub mod a;\npub mod b;\n"),
        ("a", "use crate::b::Thing;\n"),
        ("b", "pub mod c;\npub use c::Thing;\n"),
        (
            "b::c",
            "use super::super::a::Other;\nfn f() { crate::a::g() }\n",
        ),
    ]);
    let graph = imports(&known);
    assert_eq!(graph["a"], BTreeSet::from(["b".to_string()]));
    assert_eq!(graph["b"], BTreeSet::from(["b::c".to_string()]));
    assert_eq!(cycle(&graph).unwrap(), ["a", "b", "b::c", "a"]);
}

/// Module name -> source, from pairs.
fn sources(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn unit_tests_are_left_out_of_the_graph() {
    let known = sources(&[
        ("crate", "pub mod a;\npub mod b;\n"),
        ("a", "use crate::b::Thing;\n"),
        (
            "b",
            "pub struct Thing;\n#[cfg(test)]\nmod tests {\n    use crate::a::f;\n}\n",
        ),
    ]);
    let graph = imports(&known);
    assert_eq!(graph["b"], BTreeSet::new());
    assert_eq!(cycle(&graph), None);
}
