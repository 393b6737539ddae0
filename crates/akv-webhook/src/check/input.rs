//! Reading what `akv-webhook check` is given: files, directories (their `.yaml`, `.yml`
//! and `.json` files, recursively, in name order) and `-` for standard input; each file
//! one or more YAML documents (JSON is YAML too).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Files larger than this are refused rather than read (manifests are kilobytes).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Directories nested deeper than this are not walked (a symlink loop ends here too).
const MAX_DEPTH: usize = 16;

/// One YAML document and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file as the user named it (`-` for standard input).
    pub source: String,
    pub value: Value,
}

/// The files to read for `inputs`, in order: a directory gives its manifest files.
pub fn files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            out.push(input.clone());
            continue;
        }
        let meta = std::fs::metadata(input)
            .map_err(|e| format!("{}: cannot read: {e}", input.display()))?;
        if meta.is_dir() {
            walk(input, 0, &mut out)?;
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "{}: directories nested deeper than {MAX_DEPTH}",
            dir.display()
        ));
    }
    let read = |e: std::io::Error| format!("{}: cannot read the directory: {e}", dir.display());
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, depth + 1, out)?;
        } else if is_manifest(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// The documents of one file (`-`: standard input). Empty documents are left out.
pub fn documents(path: &Path) -> Result<Vec<Document>, String> {
    let source = path.display().to_string();
    let text = if path.as_os_str() == "-" {
        read_limited(std::io::stdin().lock())
    } else {
        std::fs::File::open(path)
            .map_err(|e| e.to_string())
            .and_then(read_limited)
    }
    .map_err(|e| format!("{source}: cannot read: {e}"))?;
    parse(&source, &text)
}

fn read_limited(reader: impl Read) -> Result<String, String> {
    let mut text = String::new();
    reader
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {} MiB", MAX_FILE_BYTES >> 20));
    }
    Ok(text)
}

/// The documents of `text` (YAML, one or more documents; or JSON).
pub fn parse(source: &str, text: &str) -> Result<Vec<Document>, String> {
    let values: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| format!("{source}: not YAML or JSON: {e}"))?;
    Ok(values
        .into_iter()
        .filter(|v| !v.is_null())
        .map(|value| Document {
            source: source.to_string(),
            value,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_with_several_documents_and_json_both_read() {
        let yaml = "kind: Pod\nmetadata: {name: a}\n---\n# nothing\n---\nkind: Service\n";
        let docs = parse("f.yaml", yaml).expect("documents");
        let kinds: Vec<_> = docs.iter().map(|d| d.value["kind"].as_str()).collect();
        assert_eq!(kinds, vec![Some("Pod"), Some("Service")]);
        let json = r#"{"kind": "List", "items": []}"#;
        assert_eq!(
            parse("f.json", json).expect("json")[0].value["kind"],
            "List"
        );
        assert!(parse("empty.yaml", "").expect("no documents").is_empty());
    }

    #[test]
    fn bad_yaml_is_an_error_naming_the_file() {
        let err = parse("bad.yaml", "kind: [Pod\n").expect_err("an error");
        assert!(err.starts_with("bad.yaml: not YAML or JSON"), "{err}");
    }

    #[test]
    fn directories_give_their_manifests_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).expect("mkdir");
        for name in ["b.yaml", "a.json", "notes.txt", "sub/c.yml"] {
            std::fs::write(root.join(name), "kind: Pod\n").expect("write");
        }
        let found = files(&[root.to_path_buf()]).expect("files");
        let names: Vec<_> = found
            .iter()
            .map(|p| {
                p.strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, vec!["a.json", "b.yaml", "sub/c.yml"]);
        let missing = files(&[root.join("nope")]).expect_err("missing");
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
