//! The crate's modules form layers, and imports point down only.
//!
//! ```text
//! jobs                  one module per job
//! job, cli, cluster, http   running a job; watching it
//! sink                  formats and destinations
//! operators             reusable timely/differential operators
//! source, metrics       inputs; what a running job tells about itself
//! record                record kinds
//! time, money, exit, diag, spill, checkpoint   leaves
//! ```
//!
//! The test reads every file under `src/`, finds each `crate::` and `super::` path
//! it uses (in `use` items and in code, not in comments), and checks two things: no
//! file imports from a higher layer, and no file imports one that imports it back,
//! directly or through others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of a top-level module: a file may import only from its own layer or below.
fn layer(top: &str) -> usize {
    match top {
        "time" | "money" | "exit" | "diag" | "spill" | "checkpoint" => 0,
        "record" => 1,
        "source" | "metrics" => 2,
        "operators" => 3,
        "sink" => 4,
        "job" | "cli" | "cluster" | "http" => 5,
        "jobs" => 6,
        other => panic!("module {other} has no layer: add it to tests/layers.rs and to the README"),
    }
}

/// Every `.rs` file under `dir`, with its module path (`operators::ingest`).
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut module = prefix.to_vec();
        if path.is_dir() {
            module.push(name);
            modules(&path, &module, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if name != "mod" && name != "lib" {
                module.push(name);
            }
            out.insert(module, path);
        }
    }
}

/// The code of a file without comments and without its inline test module (whose
/// `super` is the file itself), roughly: enough to find paths.
fn code(text: &str) -> String {
    let text = text.find("#[cfg(test)]\nmod ").map_or(text, |at| &text[..at]);
    text.lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(path: &str) -> Vec<String> {
    let path: String = path.split_whitespace().collect();
    match path.find('{') {
        None => vec![path],
        Some(open) => {
            let (head, rest) = path.split_at(open);
            let inner = &rest[1..rest.len() - 1];
            let mut parts = Vec::new();
            let (mut depth, mut start) = (0, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(&inner[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            parts.push(&inner[start..]);
            parts.into_iter().filter(|p| !p.is_empty()).flat_map(|p| expand(&format!("{head}{p}"))).collect()
        }
    }
}

/// The module paths a file's code refers to, resolved against its own module.
fn references(own: &[String], text: &str) -> Vec<Vec<String>> {
    let code = code(text);
    let mut paths = Vec::new();
    // `use` items, which may span lines and group paths in braces.
    let mut rest = code.as_str();
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        paths.extend(expand(&rest[..end]));
        rest = &rest[end..];
    }
    // Paths in code: `crate::x::y(…)`, `super::z::W`.
    for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
        if (word.starts_with("crate::") || word.starts_with("super::")) && !word.ends_with("::") {
            paths.push(word.to_owned());
        }
    }
    let mut out = Vec::new();
    for path in paths {
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut resolved: Vec<String> = match segments.first() {
            Some(&"crate") => Vec::new(),
            // In `a/mod.rs` (module `a`) `super` is `a`'s parent; in `a/b.rs` it is `a`.
            Some(&"super") => own[..own.len().saturating_sub(1)].to_vec(),
            Some(&"self") => own.to_vec(),
            // A path from a child module, as `use ingest::Ingest;` in `operators/mod.rs`.
            Some(_) => {
                let mut child = own.to_vec();
                child.extend(segments.iter().map(|s| s.to_string()));
                out.push(child);
                continue;
            }
            None => continue,
        };
        let mut skip = 1;
        while segments.get(skip) == Some(&"super") {
            resolved.pop();
            skip += 1;
        }
        resolved.extend(segments[skip..].iter().map(|s| s.to_string()));
        out.push(resolved);
    }
    out
}

#[test]
fn imports_point_down_and_never_come_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    modules(&src, &[], &mut files);
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut wrong_way = Vec::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        for target in references(module, &text) {
            // The longest prefix of the path that is a file of the crate.
            let Some(file) =
                (1..=target.len()).rev().map(|n| target[..n].to_vec()).find(|m| files.contains_key(m))
            else {
                continue;
            };
            if &file == module || file.is_empty() {
                continue;
            }
            if let (Some(from), Some(to)) = (module.first(), file.first())
                && layer(to) > layer(from)
            {
                wrong_way.push(format!("{} imports {}", module.join("::"), file.join("::")));
            }
            edges.entry(module.clone()).or_default().insert(file);
        }
    }
    assert!(wrong_way.is_empty(), "imports that point up:\n{}", wrong_way.join("\n"));

    // A cycle is a module that can reach itself.
    let mut cycles = Vec::new();
    for start in files.keys() {
        let mut stack = vec![(start.clone(), vec![start.join("::")])];
        let mut seen = BTreeSet::new();
        while let Some((at, trail)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    cycles.push(format!("{} -> {}", trail.join(" -> "), start.join("::")));
                } else if seen.insert(next.clone()) {
                    let mut t = trail.clone();
                    t.push(next.join("::"));
                    stack.push((next.clone(), t));
                }
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(cycles.is_empty(), "modules that import one another:\n{}", cycles.join("\n"));
    assert!(files.len() > 40, "read {} files", files.len());
}

#[test]
fn paths_resolve_like_rust() {
    let own = vec!["operators".to_owned(), "ingest".to_owned()];
    let refs = references(
        &own,
        "use super::{window::Windowing, watermark::{Watermark}};\nlet x = crate::time::now();",
    );
    assert_eq!(
        refs,
        vec![
            vec!["operators".to_owned(), "window".into(), "Windowing".into()],
            vec!["operators".to_owned(), "watermark".into(), "Watermark".into()],
            vec!["time".to_owned(), "now".into()],
        ]
    );
}
