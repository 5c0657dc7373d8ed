//! The crate's modules are layered: every `crate::` and `super::` import points down, so
//! the module graph has no cycle. Checked on the source text at two levels: between the
//! top-level modules (a directory module with all its files counts as one), and between
//! the sibling files of each directory module (`http::resources` and `http::watch`, ...;
//! the directory's `mod.rs` is their parent and not part of that graph).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One source file: its module path (`["http", "watch"]`; `[]` for `lib.rs`) and the
/// module paths it imports, resolved to absolute paths (`["storage", "codec", "Loaded"]`).
struct SourceFile {
    module: Vec<String>,
    imports: Vec<Vec<String>>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut module: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        module.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        module.pop();
    }
    module
}

/// The code without comments and string literals (doc links like [`crate::x`] and
/// messages must not count as imports).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut previous = ' ';
                for c in chars.by_ref() {
                    if previous == '*' && c == '/' {
                        break;
                    }
                    previous = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
                out.push_str("\"\"");
            }
            // A char literal such as '"' or '{' (lifetimes have no closing quote).
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                let mut it = rest.chars();
                match (it.next(), it.next(), it.next()) {
                    (Some('\\'), Some(_), Some('\'')) => {
                        chars.nth(2);
                    }
                    (Some(_), Some('\''), _) => {
                        chars.nth(1);
                    }
                    _ => out.push('\''),
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Expand a use tree starting at `text` (just after `crate::` or `super::`) into the
/// paths it names: `a::{b, c::d}` gives `a::b` and `a::c::d`.
fn expand(text: &str) -> Vec<Vec<String>> {
    fn parse(chars: &[char], pos: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = prefix;
        loop {
            let start = *pos;
            while *pos < chars.len() && (chars[*pos].is_alphanumeric() || chars[*pos] == '_') {
                *pos += 1;
            }
            if *pos > start {
                path.push(chars[start..*pos].iter().collect());
            }
            if chars[*pos..].starts_with(&[':', ':']) {
                *pos += 2;
                if chars.get(*pos) == Some(&'{') {
                    *pos += 1;
                    loop {
                        while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
                            *pos += 1;
                        }
                        if chars.get(*pos) == Some(&'}') {
                            *pos += 1;
                            return;
                        }
                        parse(chars, pos, path.clone(), out);
                        while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
                            *pos += 1;
                        }
                        match chars.get(*pos) {
                            Some(',') => *pos += 1,
                            Some('}') => {
                                *pos += 1;
                                return;
                            }
                            _ => return,
                        }
                    }
                }
                continue;
            }
            // `self` in a group names the group's prefix; `as` renames are irrelevant.
            if path.last().is_some_and(|s| s == "self") {
                path.pop();
            }
            while *pos < chars.len() && !matches!(chars[*pos], ',' | '}' | ';') {
                *pos += 1;
            }
            out.push(path);
            return;
        }
    }
    // A leading segment lets `parse` handle `crate::{a, b}` like `x::{a, b}`.
    let chars: Vec<char> = format!("root::{text}").chars().collect();
    let mut out = Vec::new();
    parse(&chars, &mut 0, Vec::new(), &mut out);
    out.into_iter().map(|path| path[1..].to_vec()).collect()
}

fn read_sources() -> Vec<SourceFile> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        // The binary is another crate: it imports the library by name, not `crate::`.
        .filter(|f| f != &src.join("main.rs"))
        .map(|file| {
            let module = module_of(&src, &file);
            let code = code_only(&std::fs::read_to_string(&file).unwrap());
            let mut imports = Vec::new();
            for (anchor, base) in [
                ("crate::", Vec::new()),
                ("super::", module[..module.len().saturating_sub(1)].to_vec()),
            ] {
                for (at, _) in code.match_indices(anchor) {
                    let before = code[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    for path in expand(&code[at + anchor.len()..]) {
                        imports.push(base.iter().cloned().chain(path).collect());
                    }
                }
            }
            SourceFile { module, imports }
        })
        .collect()
}

type Graph = BTreeMap<String, BTreeSet<String>>;

/// A cycle of `graph` as `a -> b -> a`, if it has one.
fn find_cycle(graph: &Graph) -> Option<String> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<String> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle.join(" -> "));
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

/// Edges between the children of `parent` (`[]`: the top-level modules), every file
/// counted as the child it lies in; imports of the parent itself are not edges.
fn graph_below(files: &[SourceFile], parent: &[String]) -> Graph {
    let children: BTreeSet<String> = files
        .iter()
        .filter(|f| f.module.len() > parent.len() && f.module.starts_with(parent))
        .map(|f| f.module[parent.len()].clone())
        .collect();
    let mut graph = Graph::new();
    for file in files {
        if !(file.module.len() > parent.len() && file.module.starts_with(parent)) {
            continue;
        }
        let from = &file.module[parent.len()];
        for import in &file.imports {
            if import.len() > parent.len()
                && import.starts_with(parent)
                && children.contains(&import[parent.len()])
                && &import[parent.len()] != from
            {
                graph
                    .entry(from.clone())
                    .or_default()
                    .insert(import[parent.len()].clone());
            }
        }
    }
    graph
}

#[test]
fn use_trees_are_expanded() {
    assert_eq!(
        expand("a::{b, c::{d, self}, e as f};"),
        [
            vec!["a", "b"],
            vec!["a", "c", "d"],
            vec!["a", "c"],
            vec!["a", "e"]
        ]
    );
    assert_eq!(expand("x::y(1)"), [vec!["x", "y"]]);
    assert_eq!(
        code_only("a // crate::x\n\"crate::y\" '\"' b"),
        "a \n\"\"  b"
    );
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), BTreeSet::from([b.to_string()])))
        .collect();
    assert_eq!(find_cycle(&graph).as_deref(), Some("a -> b -> c -> a"));
    let mut acyclic = graph.clone();
    acyclic.remove("c");
    assert_eq!(find_cycle(&acyclic), None);
}

#[test]
fn module_imports_have_no_cycle() {
    let files = read_sources();
    assert!(files.len() > 20, "sources not found");
    let mut parents: BTreeSet<Vec<String>> = BTreeSet::from([Vec::new()]);
    for file in &files {
        for depth in 1..file.module.len() {
            parents.insert(file.module[..depth].to_vec());
        }
    }
    for parent in parents {
        let graph = graph_below(&files, &parent);
        if let Some(cycle) = find_cycle(&graph) {
            let level = if parent.is_empty() {
                "the top-level modules".to_string()
            } else {
                format!("the modules of `{}`", parent.join("::"))
            };
            panic!("import cycle between {level}: {cycle}");
        }
    }
}
