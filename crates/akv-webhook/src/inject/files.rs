//! Files: the `akv-injector.io/file.<FILENAME>` and `akv-injector.io/files-path`
//! annotations, checked with akv-core's rules (the ones akv-env applies), and what the
//! patch adds for them: the `akv-injector-files` in-memory volume, its writable mount at
//! the files path in each container that receives files, and the variables that carry
//! the files down to akv-env.
//!
//! Each container mounts its own subdirectory of the volume (`subPath`: the container's
//! name), so that containers running as different users never share, overwrite or clean
//! up each other's files.

use akv_core::files::{
    overlaps, parse_file_value, parse_files_path, FileName, DEFAULT_FILES_PATH, ENV_FILES_PATH,
    ENV_FILE_PREFIX, FILES_VOLUME,
};
use akv_core::Template;
use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::annotations::{AnnotationError, FILES_PATH, FILE_PREFIX};
use super::denial::Denial;
use super::plan::ContainerId;

/// The pod's files, as its annotations declare them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesConfig {
    /// `files-path`, checked and without a trailing `/`.
    pub path: Option<String>,
    /// One per `file.<FILENAME>` annotation, ordered by name.
    pub files: Vec<AnnotatedFile>,
}

/// One `akv-injector.io/file.<FILENAME>` annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotatedFile {
    pub name: FileName,
    /// The annotation's value, passed down as it is (akv-env parses it the same way).
    pub value: String,
    pub template: Template,
}

impl FilesConfig {
    pub(super) fn set_path(&mut self, key: &str, value: &str) -> Result<(), AnnotationError> {
        let path = parse_files_path(value).map_err(|reason| AnnotationError::File {
            key: key.to_string(),
            reason,
        })?;
        self.path = Some(path);
        Ok(())
    }

    pub(super) fn add(
        &mut self,
        key: &str,
        name: &str,
        value: &str,
    ) -> Result<(), AnnotationError> {
        let name = FileName::parse(name).map_err(|reason| AnnotationError::File {
            key: key.to_string(),
            reason,
        })?;
        let template = parse_file_value(value).map_err(|reason| AnnotationError::Reference {
            key: key.to_string(),
            reason,
        })?;
        self.files.push(AnnotatedFile {
            name,
            value: value.to_string(),
            template,
        });
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Where the files go.
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or(DEFAULT_FILES_PATH)
    }

    /// The variables that carry the files to akv-env: the path, then one per file.
    pub fn env(&self) -> Vec<(String, String)> {
        if self.is_empty() {
            return Vec::new();
        }
        std::iter::once((ENV_FILES_PATH.to_string(), self.path().to_string()))
            .chain(
                self.files
                    .iter()
                    .map(|f| (format!("{ENV_FILE_PREFIX}{}", f.name), f.value.clone())),
            )
            .collect()
    }

    /// The annotation a file's references are checked under, for messages.
    pub fn place(file: &AnnotatedFile) -> String {
        format!("annotation {FILE_PREFIX}{}", file.name)
    }

    /// A container's own mount at or around the files path is a denial.
    pub fn check_container(&self, id: &ContainerId, container: &Container) -> Result<(), Denial> {
        if self.is_empty() {
            return Ok(());
        }
        let path = self.path();
        match container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| overlaps(&m.mount_path, path))
        {
            Some(m) => Err(Denial::FilesPathTaken {
                container: id.to_string(),
                volume: m.name.clone(),
                mount_path: m.mount_path.clone(),
                files_path: path.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// The writable mount of a container that receives files.
    pub fn mount(&self, container: &str) -> VolumeMount {
        VolumeMount {
            name: FILES_VOLUME.to_string(),
            mount_path: self.path().to_string(),
            sub_path: Some(container.to_string()),
            ..Default::default()
        }
    }
}

/// The in-memory volume the files live in.
pub fn volume() -> Volume {
    Volume {
        name: FILES_VOLUME.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_string()),
            size_limit: Some(Quantity("16Mi".to_string())),
        }),
        ..Default::default()
    }
}

/// The annotation named by denials about the files path.
pub const PATH_ANNOTATION: &str = FILES_PATH;

#[cfg(test)]
mod tests {
    use super::super::annotations::PodConfig;
    use super::*;
    use std::collections::BTreeMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<PodConfig, String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PodConfig::parse(&map).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_file_annotations() {
        let config = parse(&[
            ("akv-injector.io/file.tls.crt", "tls#cert"),
            ("akv-injector.io/file.tls.key", "akv:tls#key"),
            ("akv-injector.io/files-path", "/etc/nginx/tls/"),
        ])
        .expect("valid");
        assert!(config.has_env());
        assert_eq!(config.files.path(), "/etc/nginx/tls");
        assert_eq!(
            config.files.env(),
            [
                (
                    "AKV_INJECTOR_FILES_PATH".to_string(),
                    "/etc/nginx/tls".to_string()
                ),
                (
                    "AKV_INJECTOR_FILE_tls.crt".to_string(),
                    "tls#cert".to_string()
                ),
                (
                    "AKV_INJECTOR_FILE_tls.key".to_string(),
                    "akv:tls#key".to_string()
                ),
            ]
        );
        let config = parse(&[("akv-injector.io/file.a", "x")]).expect("valid");
        assert_eq!(config.files.path(), DEFAULT_FILES_PATH);
        let config = parse(&[("akv-injector.io/files-path", "/x")]).expect("valid");
        assert!(!config.has_env(), "a path without files injects nothing");
    }

    #[test]
    fn denials_name_the_annotation() {
        for (pairs, want) in [
            (&[("akv-injector.io/file.", "x")][..], "annotation akv-injector.io/file.: the file name is empty: write akv-injector.io/file.<FILENAME>, e.g. akv-injector.io/file.tls.crt"),
            (&[("akv-injector.io/file...", "x")][..], "annotation akv-injector.io/file...: '..' is not a file name: a file name is not '.' or '..'"),
            (&[("akv-injector.io/file.a/b", "x")][..], "annotation akv-injector.io/file.a/b: file name 'a/b' contains '/'; a file name uses only letters, digits, '.', '_' and '-'"),
            (&[("akv-injector.io/file.a", "x#p12")][..], "annotation akv-injector.io/file.a: unknown part '#p12': use #value, #cert, #key, #chain, #pubkey, #pfx, #base64 or #json:FIELD"),
            (&[("akv-injector.io/file.a", "x#json:")][..], "annotation akv-injector.io/file.a: #json needs a path: write #json:FIELD or #json:FIELD.FIELD, e.g. akv:db-config#json:password"),
            (&[("akv-injector.io/files-path", "tls")][..], "annotation akv-injector.io/files-path: 'tls' cannot be the files path: it is not absolute; write an absolute directory such as /var/run/secrets/akv-injector"),
            (&[("akv-injector.io/files-path", "/akv-injector/tls")][..], "annotation akv-injector.io/files-path: '/akv-injector/tls' cannot be the files path: it is /akv-injector or under it, where akv-env lives; write an absolute directory such as /var/run/secrets/akv-injector"),
        ] {
            assert_eq!(parse(pairs).expect_err(want), want);
        }
    }
}
