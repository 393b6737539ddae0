//! Files: `akv-injector.io/file.<FILENAME>` and `akv-injector.io/files-path`, checked the
//! same way by the webhook (at admission) and by akv-env (in the pod), and the variables
//! that carry them down: `AKV_INJECTOR_FILES_PATH` and one `AKV_INJECTOR_FILE_<FILENAME>`
//! per file, whose value is the file's reference.

use std::fmt;

use thiserror::Error;

use crate::reference::{CharDesc, ReferenceError};
use crate::template::Template;

/// Where files go when the pod does not say.
pub const DEFAULT_FILES_PATH: &str = "/var/run/secrets/akv-injector";
/// The directory that carries akv-env; files may not go there or below.
pub const RESERVED_PATH: &str = "/akv-injector";
/// The in-memory volume the files are written to.
pub const FILES_VOLUME: &str = "akv-injector-files";
/// The files directory, as passed down to akv-env.
pub const ENV_FILES_PATH: &str = "AKV_INJECTOR_FILES_PATH";
/// One file: `AKV_INJECTOR_FILE_<FILENAME>=<reference>`.
pub const ENV_FILE_PREFIX: &str = "AKV_INJECTOR_FILE_";
/// The longest file name.
pub const FILE_NAME_MAX: usize = 253;
/// The longest files path.
pub const FILES_PATH_MAX: usize = 1024;

/// A checked file name: 1–253 of `[A-Za-z0-9._-]`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileName(String);

impl FileName {
    pub fn parse(s: &str) -> Result<Self, FileError> {
        if s.is_empty() {
            return Err(FileError::EmptyName);
        }
        if s.len() > FILE_NAME_MAX {
            return Err(FileError::NameTooLong(s.len()));
        }
        if s == "." || s == ".." {
            return Err(FileError::DotName(s.to_string()));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(FileError::BadNameChar {
                name: shown(s),
                found: CharDesc(c),
            });
        }
        Ok(FileName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a files path: absolute, normal (no `.`/`..`/empty segments), not `/`, not
/// `/akv-injector` or below it. Returns it without a trailing `/`.
pub fn parse_files_path(s: &str) -> Result<String, FileError> {
    let bad = |why| FileError::BadPath {
        path: shown(s),
        why,
    };
    if s.len() > FILES_PATH_MAX {
        return Err(bad("it is longer than 1024 characters"));
    }
    if !s.starts_with('/') {
        return Err(bad("it is not absolute"));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(FileError::PathChar {
            path: shown(s),
            found: CharDesc(c),
        });
    }
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(bad("it is the root directory"));
    }
    if trimmed[1..]
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(bad("it has an empty, '.' or '..' segment"));
    }
    if is_under(trimmed, RESERVED_PATH) {
        return Err(bad("it is /akv-injector or under it, where akv-env lives"));
    }
    Ok(trimmed.to_string())
}

/// Whether `path` is `dir` or below it (both normal, no trailing `/`).
pub fn is_under(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether two mount paths overlap: one is the other or below it.
pub fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    let (a, b) = (
        if a.is_empty() { "/" } else { a },
        if b.is_empty() { "/" } else { b },
    );
    a == "/" || b == "/" || is_under(a, b) || is_under(b, a)
}

/// Parses a file's value: a whole reference (the `akv:` prefix may be omitted; spaces
/// around it are ignored) or text holding `${akv:...}` parts, kept as written (a
/// configuration file with secrets in it).
pub fn parse_file_value(value: &str) -> Result<Template, ReferenceError> {
    let trimmed = value.trim();
    let owned;
    let value = if trimmed.starts_with(crate::reference::PREFIX) {
        trimmed
    } else if value.contains("${akv:") {
        value
    } else {
        owned = format!("{}{trimmed}", crate::reference::PREFIX);
        &owned
    };
    Template::scan(value)?.ok_or(ReferenceError::MissingPrefix)
}

/// A file annotation or file setting that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FileError {
    #[error("the file name is empty: write akv-injector.io/file.<FILENAME>, e.g. akv-injector.io/file.tls.crt")]
    EmptyName,
    #[error("the file name is {0} characters long; a file name has 1 to 253")]
    NameTooLong(usize),
    #[error("'{0}' is not a file name: a file name is not '.' or '..'")]
    DotName(String),
    #[error("file name '{name}' contains {found}; a file name uses only letters, digits, '.', '_' and '-'")]
    BadNameChar { name: String, found: CharDesc },
    #[error("'{path}' cannot be the files path: {why}; write an absolute directory such as /var/run/secrets/akv-injector")]
    BadPath { path: String, why: &'static str },
    #[error("files path '{path}' contains {found}; a path has no spaces or control characters")]
    PathChar { path: String, found: CharDesc },
}

/// Text as quoted in a message, cut at 253 characters.
fn shown(s: &str) -> String {
    match s.char_indices().nth(FILE_NAME_MAX) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        for ok in [
            "tls.crt",
            "tls.key",
            "a",
            "..a",
            "a..",
            "A-b_c.9",
            &"x".repeat(253),
        ] {
            assert_eq!(FileName::parse(ok).expect(ok).as_str(), ok);
        }
        let cases = [
            ("", "the file name is empty: write akv-injector.io/file.<FILENAME>, e.g. akv-injector.io/file.tls.crt".to_string()),
            (".", "'.' is not a file name: a file name is not '.' or '..'".to_string()),
            ("..", "'..' is not a file name: a file name is not '.' or '..'".to_string()),
            ("a/b", "file name 'a/b' contains '/'; a file name uses only letters, digits, '.', '_' and '-'".to_string()),
            ("a b", "file name 'a b' contains a space; a file name uses only letters, digits, '.', '_' and '-'".to_string()),
            ("tls\u{0}", "file name 'tls\u{0}' contains character U+0000; a file name uses only letters, digits, '.', '_' and '-'".to_string()),
            ("zertifikat-ä", "file name 'zertifikat-ä' contains 'ä'; a file name uses only letters, digits, '.', '_' and '-'".to_string()),
        ];
        for (bad, want) in cases {
            assert_eq!(
                FileName::parse(bad).expect_err(bad).to_string(),
                want,
                "{bad:?}"
            );
        }
        assert_eq!(
            FileName::parse(&"x".repeat(254))
                .expect_err("long")
                .to_string(),
            "the file name is 254 characters long; a file name has 1 to 253"
        );
    }

    #[test]
    fn files_paths() {
        for (ok, want) in [
            (
                "/var/run/secrets/akv-injector",
                "/var/run/secrets/akv-injector",
            ),
            ("/etc/nginx/tls/", "/etc/nginx/tls"),
            ("/akv-injector-files", "/akv-injector-files"),
            ("/x", "/x"),
        ] {
            assert_eq!(parse_files_path(ok).expect(ok), want);
        }
        let hint = "; write an absolute directory such as /var/run/secrets/akv-injector";
        for (bad, why) in [
            ("etc/tls", "it is not absolute"),
            ("", "it is not absolute"),
            ("/", "it is the root directory"),
            ("//", "it is the root directory"),
            ("/a//b", "it has an empty, '.' or '..' segment"),
            ("/a/../b", "it has an empty, '.' or '..' segment"),
            ("/a/./b", "it has an empty, '.' or '..' segment"),
            (
                "/akv-injector",
                "it is /akv-injector or under it, where akv-env lives",
            ),
            (
                "/akv-injector/files",
                "it is /akv-injector or under it, where akv-env lives",
            ),
        ] {
            let want = format!("'{bad}' cannot be the files path: {why}{hint}");
            assert_eq!(parse_files_path(bad).expect_err(bad).to_string(), want);
        }
        assert_eq!(
            parse_files_path("/a b").expect_err("space").to_string(),
            "files path '/a b' contains a space; a path has no spaces or control characters"
        );
    }

    #[test]
    fn overlapping_mounts() {
        for (a, b, want) in [
            ("/etc/tls", "/etc/tls", true),
            ("/etc/tls/", "/etc/tls", true),
            ("/etc", "/etc/tls", true),
            ("/etc/tls/x", "/etc/tls", true),
            ("/etc/tlsx", "/etc/tls", false),
            ("/data", "/etc/tls", false),
            ("/", "/etc/tls", true),
        ] {
            assert_eq!(overlaps(a, b), want, "{a} {b}");
            assert_eq!(overlaps(b, a), want, "{b} {a}");
        }
    }

    #[test]
    fn file_values() {
        let refs = |v: &str| -> Vec<String> {
            parse_file_value(v)
                .expect(v)
                .references()
                .map(|r| r.to_string())
                .collect()
        };
        assert_eq!(refs("tls#cert"), ["akv:tls#cert"]);
        assert_eq!(refs(" akv:tls#pfx "), ["akv:tls#pfx"]);
        assert_eq!(refs("user=${akv:cfg#json:user}\n"), ["akv:cfg#json:user"]);
        assert_eq!(
            parse_file_value("tls#p12").expect_err("bad").to_string(),
            "unknown part '#p12': use #value, #cert, #key, #chain, #pubkey, #pfx, #base64 or #json:FIELD"
        );
    }
}
