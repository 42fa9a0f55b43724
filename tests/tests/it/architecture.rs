//! The layout keeps its promises (`docs/ARCHITECTURE.md`): no two modules of a crate import
//! each other (directly or around a circle), `hookline-core` imports in one direction only
//! (values, then ports, then services, then adapters), and no comment sends a reader to a
//! document outside the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `src/` of the workspace's crates.
fn crate_sources() -> Vec<PathBuf> {
    let root = workspace();
    let mut out = Vec::new();
    for dir in [
        "shared",
        "infra",
        "tests",
        "tests/bench",
        "tests/empty-lambda",
    ] {
        out.push(root.join(dir).join("src"));
    }
    for entry in std::fs::read_dir(root.join("functions")).expect("functions/") {
        out.push(entry.expect("entry").path().join("src"));
    }
    out.retain(|p| p.is_dir());
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without its `#[cfg(test)] mod ... { ... }` blocks (tests may reach anywhere).
fn without_tests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{') else {
            rest = "";
            break;
        };
        if !after[..open].contains("mod ") {
            out.push_str("#[cfg(test)]");
            rest = &after["#[cfg(test)]".len()..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The top-level module a file belongs to (`src/a/b.rs` is in `a`); `None` for the crate
/// root and binaries.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel: Vec<String> = file
        .strip_prefix(src)
        .expect("under src")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match rel.as_slice() {
        [first, ..] if first == "bin" => None,
        [only] => {
            let name = only.trim_end_matches(".rs");
            (name != "lib" && name != "main").then(|| name.to_owned())
        }
        [first, ..] => Some(first.clone()),
        [] => None,
    }
}

/// Which top-level modules each top-level module of the crate at `src` imports.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(src, file) else {
            continue;
        };
        let top_level = file.parent() == Some(src);
        // Comments (doc links included) may name any module; only code imports.
        let text: String = without_tests(&std::fs::read_to_string(file).expect("read"))
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let edges = graph.entry(module.clone()).or_default();
        let mut prefixes = vec!["crate::"];
        if top_level {
            prefixes.push("super::");
        }
        for prefix in prefixes {
            for (at, _) in text.match_indices(prefix) {
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let name: String = text[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    edges.insert(name);
                }
            }
        }
    }
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    for edges in graph.values_mut() {
        edges.retain(|m| known.contains(m));
    }
    graph
}

/// Modules that reach themselves through their imports: the import cycles.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = graph[from].iter().map(String::as_str).collect();
        while let Some(m) = todo.pop() {
            if seen.insert(m.to_owned()) {
                todo.extend(graph[m].iter().map(String::as_str));
            }
        }
        seen
    };
    graph
        .keys()
        .filter(|m| reach(m).contains(*m))
        .map(|m| format!("{m} -> {:?}", graph[m]))
        .collect()
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let mut found = Vec::new();
    let sources = crate_sources();
    assert!(
        sources.len() >= 8,
        "the workspace's crates were not found: {sources:?}"
    );
    for src in sources {
        for cycle in cycles(&imports(&src)) {
            found.push(format!("{}: {cycle}", src.display()));
        }
    }
    assert!(
        found.is_empty(),
        "modules in an import cycle (docs/ARCHITECTURE.md says which way imports go):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_core_imports_values_then_ports_then_services_then_adapters() {
    let layer = |m: &str| match m {
        "ports" => 1,
        "lifecycle" | "reseal" | "jobs" | "tokens" => 2,
        "adapters" => 3,
        _ => 0,
    };
    let graph = imports(&workspace().join("shared/src"));
    assert!(
        graph.contains_key("ports") && graph.contains_key("adapters"),
        "{graph:?}"
    );
    let mut wrong = Vec::new();
    for (module, edges) in &graph {
        for to in edges {
            if layer(to) > layer(module) {
                wrong.push(format!(
                    "{module} (layer {}) imports {to} (layer {})",
                    layer(module),
                    layer(to)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn comments_cite_only_documents_in_the_repository() {
    let mut found = Vec::new();
    for src in crate_sources() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            for (n, line) in text.lines().enumerate() {
                if line.contains("DESIGN §") || line.contains("DESIGN.md") {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "comments citing a document that is not in the repository:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_cycle_check_finds_a_circle_and_only_its_members() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
        ("e", vec![]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_owned(), to.into_iter().map(str::to_owned).collect()))
    .collect();
    let found = cycles(&graph);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found
            .iter()
            .all(|c| !c.starts_with('d') && !c.starts_with('e')),
        "{found:?}"
    );
}
