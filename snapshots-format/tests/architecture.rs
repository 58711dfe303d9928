//! The layers of docs/ARCHITECTURE.md, enforced: every `crate::…` path in
//! a module of one layer must name a module of a layer it may use. A new
//! arrow (the format reading a backend, a backend knowing the repository,
//! anything calling an operation) fails here, before it becomes a cycle.

use std::path::Path;

/// The layer of a top-level module or folder of `src/`.
fn layer(first: &str) -> Option<&'static str> {
    Some(match first {
        "error" | "id" | "codec" | "crypto" | "limits" | "progress" | "owner" => "base",
        "format" => "format",
        "backend" => "backend",
        "repo" => "repo",
        "source" => "source",
        "ops" => "ops",
        _ => return None,
    })
}

/// Which layers each layer may use (besides itself).
fn may_use(from: &str) -> &'static [&'static str] {
    match from {
        "base" => &["base"],
        "format" => &["base"],
        "backend" => &["base"],
        "repo" => &["base", "format", "backend"],
        "source" => &["base", "format"],
        "ops" => &["base", "format", "backend", "repo", "source"],
        _ => &[],
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn dependencies_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("below src");
        let first = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs"))
            .unwrap_or_default();
        // The crate root, and the fuzz targets' entry points (feature
        // `fuzzing`, outside the layers by design: they reach every decoder).
        if first == "lib" || first == "fuzzing" {
            continue;
        }
        let from = layer(first).unwrap_or_else(|| panic!("{} is in no layer", rel.display()));
        let text = std::fs::read_to_string(file).expect("read file");
        // Unit tests may reach across layers to build their fixtures.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let Some(to) = layer(&name) else {
                    wrong.push(format!(
                        "{}:{}: crate::{name} is in no layer",
                        rel.display(),
                        n + 1
                    ));
                    continue;
                };
                if to != from && !may_use(from).contains(&to) {
                    wrong.push(format!(
                        "{}:{}: {from} uses {to} (crate::{name})",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}
