//! Files (`akv-injector.io/file.<FILENAME>`): which files to write, read from the
//! `AKV_INJECTOR_FILES_PATH` and `AKV_INJECTOR_FILE_<FILENAME>` variables the webhook
//! sets, and writing them before the application starts.
//!
//! Each file is written to a temporary name in the same directory (mode 0400, created by
//! akv-env, so owned by the container's user) and renamed into place: the application
//! never sees a partial file. Afterwards the directory holds exactly the declared files;
//! anything else (a previous start's leftovers) is removed. A restarted container
//! rewrites them with the values it fetched at its start.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use akv_core::files::{parse_file_value, parse_files_path, FileError, FileName};
use akv_core::files::{DEFAULT_FILES_PATH, ENV_FILES_PATH, ENV_FILE_PREFIX};
use akv_core::{HostPolicy, ReferenceError, Template, VaultUrl};

use crate::error::{PlanError, Site, Sites};
use crate::plan::{object_of, Plan};
use crate::resolve::Values;

/// The files to write: the directory, and each file's name and template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePlan {
    pub dir: PathBuf,
    pub files: Vec<(FileName, Template)>,
}

/// Why files cannot be planned or written. Never holds a value.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{var}: {source}")]
    Name { var: String, source: FileError },
    #[error("{ENV_FILES_PATH}: {0}")]
    Path(FileError),
    #[error("{var}: {source}")]
    Reference { var: String, source: ReferenceError },
    #[error("{var} is not UTF-8 text")]
    NotUtf8 { var: String },
    #[error("cannot write file {path}: {source}. Hint: check that the volume akv-injector-files is mounted writable at {dir} (the webhook adds it) and is not full (16Mi)")]
    Write {
        path: PathBuf,
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Where a file's references are, for messages.
pub fn site(name: &FileName) -> Site {
    Site::File(name.to_string())
}

impl FilePlan {
    /// Reads the file variables; `None` when there are none.
    pub fn from_env(env: &[(OsString, OsString)]) -> Result<Option<FilePlan>, FilesError> {
        let mut files = Vec::new();
        let mut dir = None;
        for (key, value) in env {
            let Some(key) = key.to_str() else { continue };
            let text = || {
                value.to_str().ok_or_else(|| FilesError::NotUtf8 {
                    var: key.to_string(),
                })
            };
            if key == ENV_FILES_PATH {
                dir = Some(text()?.to_string());
            } else if let Some(name) = key.strip_prefix(ENV_FILE_PREFIX) {
                let name = FileName::parse(name).map_err(|source| FilesError::Name {
                    var: key.to_string(),
                    source,
                })?;
                let template =
                    parse_file_value(text()?).map_err(|source| FilesError::Reference {
                        var: key.to_string(),
                        source,
                    })?;
                files.retain(|(n, _)| *n != name);
                files.push((name, template));
            }
        }
        if files.is_empty() {
            return Ok(None);
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let dir = parse_files_path(dir.as_deref().unwrap_or(DEFAULT_FILES_PATH))
            .map_err(FilesError::Path)?;
        Ok(Some(FilePlan {
            dir: PathBuf::from(dir),
            files,
        }))
    }

    /// Adds the objects the files read to the plan, each vault checked against the
    /// operator's allowlist as the env's are.
    pub fn add_to(
        &self,
        plan: &mut Plan,
        default_vault: Option<&VaultUrl>,
        hosts: &HostPolicy,
    ) -> Result<(), PlanError> {
        for (name, template) in &self.files {
            plan.add(template, site(name), default_vault)?;
            for r in template.references() {
                if let Some(id) = object_of(r, default_vault) {
                    hosts
                        .check(&id.vault)
                        .map_err(|source| PlanError::HostNotAllowed {
                            sites: Sites(vec![site(name)]),
                            source,
                        })?;
                }
            }
        }
        Ok(())
    }

    /// Renders and writes every file, then removes what else the directory holds.
    pub fn write(
        &self,
        values: &Values,
        default_vault: Option<&VaultUrl>,
    ) -> Result<(), FilesError> {
        let contents: Vec<(&FileName, Vec<u8>)> = self
            .files
            .iter()
            .map(|(name, t)| (name, t.render_bytes(|r| values.bytes(r, default_vault))))
            .collect();
        write_all(&self.dir, &contents)
    }
}

/// Writes each file through a temporary name and a rename; then removes every other
/// entry of `dir`.
pub fn write_all(dir: &Path, files: &[(&FileName, Vec<u8>)]) -> Result<(), FilesError> {
    let error = |path: &Path| {
        let (path, dir) = (path.to_path_buf(), dir.to_path_buf());
        move |source| FilesError::Write { path, dir, source }
    };
    std::fs::create_dir_all(dir).map_err(error(dir))?;
    for (name, content) in files {
        let path = dir.join(name.as_str());
        let temp = dir.join(format!(".{}.akv-tmp-{}", name, std::process::id()));
        let _ = std::fs::remove_file(&temp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&temp)
            .and_then(|mut f| {
                f.write_all(content)?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&temp, &path));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(error(&path)(source));
        }
    }
    let keep: std::collections::HashSet<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for entry in std::fs::read_dir(dir).map_err(error(dir))? {
        let entry = entry.map_err(error(dir))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| keep.contains(n)) {
            continue;
        }
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        removed.map_err(error(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use crate::config::test_env as env;

    fn name(s: &str) -> FileName {
        FileName::parse(s).expect(s)
    }

    #[test]
    fn plans_from_the_variables() {
        assert_eq!(
            FilePlan::from_env(&env(&[("A", "akv:x")])).expect("ok"),
            None
        );
        let plan = FilePlan::from_env(&env(&[
            ("AKV_INJECTOR_FILE_tls.key", "akv:tls#key"),
            ("AKV_INJECTOR_FILE_tls.crt", "tls#cert"),
            ("AKV_INJECTOR_FILES_PATH", "/etc/tls/"),
        ]))
        .expect("ok")
        .expect("files");
        assert_eq!(plan.dir, PathBuf::from("/etc/tls"));
        let names: Vec<&str> = plan.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["tls.crt", "tls.key"]);
        let plan = FilePlan::from_env(&env(&[("AKV_INJECTOR_FILE_a", "akv:x")]))
            .expect("ok")
            .expect("files");
        assert_eq!(plan.dir, PathBuf::from(DEFAULT_FILES_PATH));
    }

    #[test]
    fn refuses_bad_variables() {
        for (pairs, want) in [
            (&[("AKV_INJECTOR_FILE_a/b", "akv:x")][..], "AKV_INJECTOR_FILE_a/b: file name 'a/b' contains '/'; a file name uses only letters, digits, '.', '_' and '-'"),
            (&[("AKV_INJECTOR_FILE_..", "akv:x")][..], "AKV_INJECTOR_FILE_..: '..' is not a file name: a file name is not '.' or '..'"),
            (&[("AKV_INJECTOR_FILE_a", "akv:x#p12")][..], "AKV_INJECTOR_FILE_a: unknown part '#p12': use #value, #cert, #key, #chain, #pubkey, #pfx, #base64 or #json:FIELD"),
            (&[("AKV_INJECTOR_FILE_a", "akv:x"), ("AKV_INJECTOR_FILES_PATH", "rel")][..], "AKV_INJECTOR_FILES_PATH: 'rel' cannot be the files path: it is not absolute; write an absolute directory such as /var/run/secrets/akv-injector"),
        ] {
            let err = FilePlan::from_env(&env(pairs)).expect_err(want).to_string();
            assert_eq!(err, want);
        }
    }

    #[test]
    fn writes_exactly_the_declared_files() {
        let dir = std::env::temp_dir().join(format!("akv-files-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("stale-dir")).expect("mkdir");
        std::fs::write(dir.join("old.txt"), "old").expect("write");
        std::fs::write(dir.join("b.bin"), "previous start").expect("write");
        let files = [
            (&name("a.txt"), b"hello".to_vec()),
            (&name("b.bin"), vec![0, 0xff, 0]),
        ];
        write_all(&dir, &files[..]).expect("writes");
        let mut listing: Vec<String> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        listing.sort();
        assert_eq!(listing, ["a.txt", "b.bin"]);
        assert_eq!(
            std::fs::read(dir.join("b.bin")).expect("read"),
            [0, 0xff, 0]
        );
        let meta = std::fs::metadata(dir.join("a.txt")).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o777, 0o400);
        // SAFETY-free way to know our uid: the directory we just created is ours.
        assert_eq!(meta.uid(), std::fs::metadata(&dir).expect("stat").uid());
        // A second start rewrites over the read-only files.
        write_all(&dir, &[(&name("a.txt"), b"again".to_vec())]).expect("rewrites");
        assert_eq!(std::fs::read(dir.join("a.txt")).expect("read"), b"again");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_failed_write_names_the_file() {
        let dir = std::env::temp_dir().join(format!("akv-files-ro-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        // A directory where the file should go makes the rename fail, even as root.
        std::fs::create_dir_all(dir.join("tls.crt").join("x")).expect("mkdir");
        let err = write_all(&dir, &[(&name("tls.crt"), b"x".to_vec())])
            .expect_err("cannot rename over a directory")
            .to_string();
        assert!(
            err.starts_with(&format!("cannot write file {}/tls.crt: ", dir.display())),
            "{err}"
        );
        assert!(err.contains("akv-injector-files"), "{err}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).expect("list").collect();
        assert_eq!(leftovers.len(), 1, "the temporary file is removed");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
