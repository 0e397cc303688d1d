//! The public API, one line per item, against the checked-in listing `public-api.txt`: every
//! change to the public face shows in review as a change to that file.
//!
//! The listing is read from the source (rustfmt's layout): the crate root's and each public
//! module's `pub` items and `pub use` re-exports, and the `pub fn`s of the `impl` blocks of
//! every public type, with all features. After an intended change, run
//! `BLESS=1 cargo test --test public_api` and commit the new listing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const LISTING: &str = "public-api.txt";

/// The item at the start of a top-level line: (kind, name).
fn item(line: &str) -> Option<(&'static str, String)> {
    let rest = line.strip_prefix("pub ")?;
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    for kind in [
        "struct", "enum", "trait", "type", "const", "static", "fn", "mod",
    ] {
        if let Some(after) = rest.strip_prefix(kind).and_then(|r| r.strip_prefix(' ')) {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            return Some((kind, name));
        }
    }
    None
}

/// The names a `pub use` brings in, as `(name, source path)`.
fn reexports(statement: &str) -> Vec<(String, String)> {
    let body: String = statement
        .trim_start_matches("pub use ")
        .trim_end_matches(';')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let (prefix, list) = match body.find('{') {
        Some(open) => (
            body[..open].to_owned(),
            body[open + 1..body.len() - 1].to_owned(),
        ),
        None => (String::new(), body.clone()),
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (path, name) = match entry.split_once(" as ") {
                Some((path, alias)) => (path, alias),
                None => (entry, entry.rsplit("::").next().unwrap_or(entry)),
            };
            (name.to_owned(), format!("{prefix}{path}"))
        })
        .collect()
}

/// Top-level statements of a module's text (a `pub use` may span lines), and inline modules.
struct Module {
    items: Vec<(&'static str, String)>,
    reexports: Vec<(String, String)>,
    public_mods: Vec<(String, Option<String>)>,
}

fn parse_module(text: &str) -> Module {
    let mut module = Module {
        items: Vec::new(),
        reexports: Vec::new(),
        public_mods: Vec::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let mut hidden = false;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("#[cfg(test)]") {
            // The next item is test-only.
            i += 2;
            continue;
        }
        if line.starts_with("#[doc(hidden)]") {
            hidden = true;
        }
        if line.starts_with("#[") || line.starts_with("//") || line.is_empty() {
            i += 1;
            continue;
        }
        if std::mem::take(&mut hidden) {
            i += 1;
            continue;
        }
        if line.starts_with("pub use ") {
            let mut statement = line.to_owned();
            while !statement.trim_end().ends_with(';') {
                i += 1;
                statement.push_str(lines[i]);
            }
            module.reexports.extend(reexports(&statement));
        } else if let Some(("mod", name)) = item(line) {
            if line.trim_end().ends_with('{') {
                let mut inner = String::new();
                i += 1;
                while lines[i] != "}" {
                    inner.push_str(lines[i].strip_prefix("    ").unwrap_or(lines[i]));
                    inner.push('\n');
                    i += 1;
                }
                module.public_mods.push((name, Some(inner)));
            } else {
                module.public_mods.push((name, None));
            }
        } else if let Some(found) = item(line) {
            module.items.push(found);
        }
        i += 1;
    }
    module
}

/// What the source defines: every `pub fn` of an `impl` block, by the implementing type's
/// name, and the kind of every top-level `pub` item, by its name.
struct Definitions {
    methods: BTreeMap<String, BTreeSet<String>>,
    kinds: BTreeMap<String, &'static str>,
}

fn definitions(src: &Path) -> Definitions {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut kinds = BTreeMap::new();
    for file in rust_files(src) {
        let text = fs::read_to_string(&file).expect("source");
        let mut current: Option<String> = None;
        for line in text.lines() {
            if line.starts_with("#[cfg(test)]") {
                break;
            }
            if let Some((kind, name)) = item(line) {
                kinds.insert(name, kind);
            }
            if line.starts_with("impl") {
                current = impl_type(line);
            } else if line == "}" {
                current = None;
            } else if let (Some(ty), Some(rest)) = (&current, line.strip_prefix("    pub "))
                && let Some(("fn", name)) = item(&format!("pub {rest}"))
            {
                out.entry(ty.clone()).or_default().insert(name);
            }
        }
    }
    Definitions {
        methods: out,
        kinds,
    }
}

/// The type an inherent `impl` line is for (trait impls have no public methods of their own).
fn impl_type(line: &str) -> Option<String> {
    if line.contains(" for ") {
        return None;
    }
    let mut rest = line.strip_prefix("impl")?;
    if rest.starts_with('<') {
        let mut depth = 0;
        let end = rest.char_indices().find(|(_, c)| {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                _ => {}
            }
            depth == 0
        })?;
        rest = &rest[end.0 + 1..];
    }
    let name: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

fn module_file(dir: &Path, name: &str) -> (String, PathBuf) {
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() {
        return (fs::read_to_string(&flat).expect("module"), dir.join(name));
    }
    let nested = dir.join(name).join("mod.rs");
    (fs::read_to_string(&nested).expect("module"), dir.join(name))
}

fn listing() -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let Definitions { methods, kinds } = definitions(&src);
    let mut lines = BTreeSet::new();
    let root = fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let mut queue = vec![("bearer_guard".to_owned(), root, src.clone())];
    while let Some((path, text, dir)) = queue.pop() {
        let module = parse_module(&text);
        let mut types = Vec::new();
        for (kind, name) in module.items {
            lines.insert(format!("{path}::{name} ({kind})"));
            if matches!(kind, "struct" | "enum" | "trait") {
                types.push(name);
            }
        }
        // A re-export is listed as what it names, whatever private path it comes by: moving
        // code inside the crate changes nothing here.
        for (name, from) in module.reexports {
            let source = from.rsplit("::").next().unwrap_or(&from);
            let kind = kinds.get(source).copied().unwrap_or("use");
            lines.insert(format!("{path}::{name} ({kind})"));
            types.push(name);
        }
        for ty in types {
            for method in methods.get(&ty).into_iter().flatten() {
                lines.insert(format!("{path}::{ty}::{method} (method)"));
            }
        }
        for (name, inline) in module.public_mods {
            lines.insert(format!("{path}::{name} (mod)"));
            let (text, child_dir) = match inline {
                Some(text) => (text, dir.clone()),
                None => module_file(&dir, &name),
            };
            queue.push((format!("{path}::{name}"), text, child_dir));
        }
    }
    let mut out = String::new();
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn the_public_api_is_the_checked_in_listing() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(LISTING);
    let now = listing();
    if std::env::var_os("BLESS").is_some() {
        fs::write(&path, &now).expect("write the listing");
        return;
    }
    let checked_in = fs::read_to_string(&path).unwrap_or_default();
    if checked_in != now {
        let old: BTreeSet<&str> = checked_in.lines().collect();
        let new: BTreeSet<&str> = now.lines().collect();
        let added: Vec<&&str> = new.difference(&old).collect();
        let removed: Vec<&&str> = old.difference(&new).collect();
        panic!(
            "the public API changed; if intended, run `BLESS=1 cargo test --test public_api` \
             and commit {LISTING}\nadded: {added:#?}\nremoved: {removed:#?}"
        );
    }
}

#[test]
fn the_crate_root_holds_at_most_15_items_besides_modules() {
    let root = parse_module(
        &fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
            .expect("lib.rs"),
    );
    let mut names: Vec<String> = root.items.iter().map(|(_, n)| n.clone()).collect();
    names.extend(root.reexports.iter().map(|(n, _)| n.clone()));
    assert!(names.len() <= 15, "{} root items: {names:?}", names.len());
    assert!(
        names.iter().all(|n| n.chars().any(|c| c.is_lowercase())),
        "no constants at the root: {names:?}"
    );
}

#[test]
fn no_name_is_exported_in_two_places() {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in listing().lines() {
        let (path, kind) = line.split_once(' ').expect("path and kind");
        if kind == "(method)" || kind == "(mod)" {
            continue;
        }
        let name = path.rsplit("::").next().expect("name").to_owned();
        seen.entry(name).or_default().push(path.to_owned());
    }
    let twice: Vec<_> = seen.iter().filter(|(_, paths)| paths.len() > 1).collect();
    assert!(twice.is_empty(), "{twice:#?}");
}
