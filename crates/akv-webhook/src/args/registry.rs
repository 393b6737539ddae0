//! The registry lookup flags (`--registry-*`, `--default-platform`) and the
//! [`RegistryOptions`] they make.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use tracing::info;

use super::parse_duration;
use crate::registry::hosts::parse_cidr;
use crate::registry::{HostPattern, HostRules, Platform, RegistryOptions};
use crate::server::ServerError;

/// How containers without `command` are looked up in their image's registry.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RegistryFlags {
    /// Read the ENTRYPOINT/CMD of a container that has no `command` from its image's
    /// registry (true), or deny such pods with a message that says to set `command` (false).
    #[arg(long, env = "AKV_WEBHOOK_REGISTRY_LOOKUP", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub registry_lookup: bool,

    /// PEM bundle of CA certificates that registries' certificates may chain to, besides
    /// the system's (private registries). Certificates are always verified.
    #[arg(long, env = "AKV_WEBHOOK_REGISTRY_CA_FILE", value_name = "PEM_FILE")]
    pub registry_ca_file: Option<PathBuf>,

    /// Platform (OS/ARCH[/VARIANT]) whose entry of a multi-arch image is read, for pods
    /// without a kubernetes.io/os or kubernetes.io/arch node selector or required affinity.
    #[arg(
        long,
        env = "AKV_WEBHOOK_DEFAULT_PLATFORM",
        value_name = "PLATFORM",
        default_value = "linux/amd64"
    )]
    pub default_platform: Platform,

    /// Longest time one review may spend on registry lookups (e.g. 3s, 1500ms); past it the
    /// pod is denied. Keep it well inside the webhook's timeoutSeconds (5s).
    #[arg(long, env = "AKV_WEBHOOK_REGISTRY_TIMEOUT", value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub registry_timeout: Duration,

    /// How long a tag's digest is reused before the registry is asked again (image
    /// configs themselves are cached by digest, which never changes).
    #[arg(long, env = "AKV_WEBHOOK_REGISTRY_TAG_TTL", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub registry_tag_ttl: Duration,

    /// A registry host that lookups may contact even though it is, or resolves to, an
    /// address they refuse (loopback, link-local, unspecified, --registry-deny-cidr): a
    /// private registry that lives there. A DNS name, `.corp.example` for every host under
    /// it, or an IP address; any port. Also allowed as a redirect or token-realm target.
    /// Repeatable; the environment variable takes a comma-separated list.
    #[arg(long, env = "AKV_WEBHOOK_REGISTRY_ALLOW_HOST", value_name = "HOST", value_delimiter = ',', value_parser = HostPattern::parse)]
    pub registry_allow_host: Vec<HostPattern>,

    /// A network that registry lookups never contact, e.g. the cluster's service and pod
    /// CIDRs (10.96.0.0/12), besides loopback, link-local and unspecified addresses,
    /// which are always refused. Repeatable; the environment variable takes a
    /// comma-separated list.
    #[arg(long, env = "AKV_WEBHOOK_REGISTRY_DENY_CIDR", value_name = "CIDR", value_delimiter = ',', value_parser = parse_cidr)]
    pub registry_deny_cidr: Vec<IpNet>,

    /// A host that registries may redirect to (blob storage) or name as their token
    /// service (realm), besides their own host and the built-in ones of public registries
    /// (Docker Hub, GHCR, ACR, MCR, ECR, GCR/Artifact Registry, Quay). A DNS name or
    /// `.example.com` for every host under it. Repeatable; the environment variable takes a
    /// comma-separated list.
    #[arg(long, env = "AKV_WEBHOOK_REGISTRY_REDIRECT_HOST", value_name = "HOST", value_delimiter = ',', value_parser = HostPattern::parse)]
    pub registry_redirect_host: Vec<HostPattern>,
}

impl RegistryFlags {
    /// The options of the registry lookups, with the bundle of `--registry-ca-file` read;
    /// `None` with `--registry-lookup=false`.
    pub async fn options(self) -> Result<Option<RegistryOptions>, ServerError> {
        let RegistryFlags {
            registry_lookup,
            registry_ca_file,
            default_platform,
            registry_timeout,
            registry_tag_ttl,
            registry_allow_host,
            registry_deny_cidr,
            registry_redirect_host,
        } = self;
        if !registry_lookup {
            info!("--registry-lookup=false: containers without `command` are denied");
            return Ok(None);
        }
        let ca_pem =
            match &registry_ca_file {
                Some(path) => Some(tokio::fs::read(path).await.map_err(|error| {
                    ServerError::RegistryCaFile {
                        path: path.clone(),
                        error,
                    }
                })?),
                None => None,
            };
        let hosts = HostRules {
            allow: registry_allow_host,
            deny: registry_deny_cidr,
            redirect: registry_redirect_host,
        };
        info!(
            allow_hosts = ?hosts.allow,
            deny_cidrs = ?hosts.deny.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            redirect_hosts = ?hosts.redirect,
            "registry lookups refuse loopback, link-local and unspecified addresses and the denied networks, except for the allowed hosts"
        );
        info!(
            default_platform = %default_platform,
            timeout = ?registry_timeout,
            tag_ttl = ?registry_tag_ttl,
            ca_file = ?registry_ca_file,
            "registry lookups for containers without `command` are on"
        );
        Ok(Some(RegistryOptions {
            default_platform,
            ca_pem,
            tag_ttl: registry_tag_ttl,
            // One lookup never takes longer than the review that waits for it.
            lookup_timeout: registry_timeout,
            hosts,
            ..RegistryOptions::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, refused_naming_flag};
    use super::*;

    async fn options(flags: &[&str]) -> Result<Option<RegistryOptions>, ServerError> {
        parse(flags).registry.options().await
    }

    #[tokio::test]
    async fn defaults() {
        let defaults = RegistryOptions::default();
        let options = options(&[]).await.expect("options").expect("lookups on");
        assert_eq!(options.default_platform.to_string(), "linux/amd64");
        assert_eq!(options.ca_pem, None);
        assert_eq!(options.lookup_timeout, Duration::from_secs(3));
        assert_eq!(options.tag_ttl, Duration::from_secs(60));
        assert!(options.hosts.allow.is_empty());
        assert!(options.hosts.deny.is_empty());
        assert!(options.hosts.redirect.is_empty());
        // What no flag sets keeps the registry's own defaults.
        assert_eq!(options.max_configs, defaults.max_configs);
        assert_eq!(options.connect_timeout, defaults.connect_timeout);
        assert_eq!(options.max_concurrent, defaults.max_concurrent);
    }

    #[tokio::test]
    async fn host_flags() {
        let options = options(&[
            "--registry-allow-host=127.0.0.1",
            "--registry-allow-host",
            "registry.corp,.internal.example",
            "--registry-deny-cidr=10.96.0.0/12",
            "--registry-deny-cidr",
            "10.244.0.0/16,fd00::/8",
            "--registry-redirect-host=blobs.corp",
        ])
        .await
        .expect("options")
        .expect("lookups on");
        assert_eq!(
            options.hosts.allow,
            [
                HostPattern::Ip("127.0.0.1".parse().expect("ip")),
                HostPattern::Exact("registry.corp".into()),
                HostPattern::Suffix(".internal.example".into()),
            ]
        );
        let cidrs: Vec<String> = options.hosts.deny.iter().map(|c| c.to_string()).collect();
        assert_eq!(cidrs, ["10.96.0.0/12", "10.244.0.0/16", "fd00::/8"]);
        assert_eq!(
            options.hosts.redirect,
            [HostPattern::Exact("blobs.corp".into())]
        );
        refused_naming_flag(&[
            "--registry-deny-cidr=10.96.0.0/40",
            "--registry-deny-cidr=cluster",
            "--registry-allow-host=https://registry.corp",
            "--registry-allow-host=registry.corp:5000",
            "--registry-redirect-host=a/b",
        ]);
    }

    #[tokio::test]
    async fn lookup_flags() {
        let ca = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(ca.path(), b"not checked here").expect("write");
        let ca_flag = format!("--registry-ca-file={}", ca.path().display());
        let options = options(&[
            &ca_flag,
            "--default-platform=linux/arm64",
            "--registry-timeout=1500ms",
            "--registry-tag-ttl=10s",
        ])
        .await
        .expect("options")
        .expect("lookups on");
        assert_eq!(options.ca_pem.as_deref(), Some(&b"not checked here"[..]));
        assert_eq!(options.default_platform.to_string(), "linux/arm64");
        assert_eq!(options.lookup_timeout, Duration::from_millis(1500));
        assert_eq!(options.tag_ttl, Duration::from_secs(10));
        refused_naming_flag(&[
            "--default-platform=amd64",
            "--registry-timeout=0s",
            "--registry-timeout=3",
        ]);
    }

    #[tokio::test]
    async fn lookup_off_and_missing_ca_file() {
        let off = options(&["--registry-lookup=false"])
            .await
            .expect("options");
        assert!(off.is_none());
        let missing = options(&["--registry-ca-file=/nonexistent/ca.pem"])
            .await
            .expect_err("unreadable");
        let text = missing.to_string();
        assert!(
            text.contains("--registry-ca-file /nonexistent/ca.pem"),
            "{text}"
        );
    }
}
