//! Command-line flags of `akv-webhook`; each is also read from `AKV_WEBHOOK_<FLAG>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use ipnet::IpNet;

use crate::registry::{HostPattern, Platform};

/// The default `--env-image`: the image of this very release.
pub const DEFAULT_ENV_IMAGE: &str = concat!("akv-injector:", env!("CARGO_PKG_VERSION"));

/// Mutating admission webhook that injects Azure Key Vault references into pods.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "akv-webhook", version, about, long_about = None)]
pub struct Args {
    /// Address of the HTTPS listener (POST /mutate, GET /healthz, GET /readyz).
    #[arg(long, env = "AKV_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// PEM certificate chain to serve (leaf first); reloaded when it changes, Kubernetes
    /// Secret volume updates included. Needs --tls-key. Without both, a self-signed
    /// certificate for localhost and 127.0.0.1 is made at start (for local use only).
    #[arg(
        long,
        env = "AKV_WEBHOOK_TLS_CERT",
        value_name = "PEM_FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert; reloaded with it.
    #[arg(
        long,
        env = "AKV_WEBHOOK_TLS_KEY",
        value_name = "PEM_FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Image of the init container that installs akv-env into injected pods.
    #[arg(long, env = "AKV_WEBHOOK_ENV_IMAGE", default_value = DEFAULT_ENV_IMAGE)]
    pub env_image: String,

    /// Address of the plain-HTTP metrics listener (GET /metrics, /healthz, /readyz).
    #[arg(
        long,
        env = "AKV_WEBHOOK_METRICS_LISTEN",
        default_value = "0.0.0.0:9090"
    )]
    pub metrics_listen: SocketAddr,

    /// Log format. The level comes from RUST_LOG (default: info).
    #[arg(long, env = "AKV_WEBHOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    // ---- connection limits (server::connections)
    /// Most client connections open at once on the HTTPS listener. When it is reached, the
    /// connection idle the longest is closed to make room, so idle clients cannot lock out
    /// the API server. Lowered at start to fit the open-file limit.
    #[arg(
        long,
        env = "AKV_WEBHOOK_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = crate::server::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub max_connections: usize,

    /// A connection with no request in flight for this long is closed (HTTP/2 with a
    /// GOAWAY), e.g. 30s, 2m.
    #[arg(
        long,
        env = "AKV_WEBHOOK_IDLE_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = parse_duration
    )]
    pub idle_timeout: Duration,

    /// Most concurrent HTTP/2 streams (requests) per connection; more are refused with
    /// REFUSED_STREAM, and clients open another connection.
    #[arg(
        long,
        env = "AKV_WEBHOOK_MAX_STREAMS_PER_CONNECTION",
        value_name = "N",
        default_value_t = crate::server::DEFAULT_MAX_STREAMS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_streams_per_connection: u32,
    // ---- end of connection limits
    /// A vault host that akv-env may talk to besides the Key Vault DNS suffixes:
    /// kv.example.com, or .example.com for every host under it. Repeatable; the
    /// environment variable takes a comma-separated list.
    #[arg(
        long = "allow-vault-host",
        env = "AKV_WEBHOOK_ALLOW_VAULT_HOST",
        value_name = "HOST",
        value_delimiter = ',',
        value_parser = parse_vault_host
    )]
    pub allow_vault_host: Vec<String>,

    /// Read the ENTRYPOINT/CMD of a container that has no `command` from its image's
    /// registry (true), or deny such pods with a message that says to set `command` (false).
    #[arg(
        long,
        env = "AKV_WEBHOOK_REGISTRY_LOOKUP",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
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
        default_value = "linux/amd64",
        value_parser = parse_platform
    )]
    pub default_platform: Platform,

    /// Longest time one review may spend on registry lookups (e.g. 3s, 1500ms); past it the
    /// pod is denied. Keep it well inside the webhook's timeoutSeconds (5s).
    #[arg(
        long,
        env = "AKV_WEBHOOK_REGISTRY_TIMEOUT",
        value_name = "DURATION",
        default_value = "3s",
        value_parser = parse_duration
    )]
    pub registry_timeout: Duration,

    /// How long a tag's digest is reused before the registry is asked again (image
    /// configs themselves are cached by digest, which never changes).
    #[arg(
        long,
        env = "AKV_WEBHOOK_REGISTRY_TAG_TTL",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = parse_duration
    )]
    pub registry_tag_ttl: Duration,

    /// A registry host that lookups may contact even though it is, or resolves to, an
    /// address they refuse (loopback, link-local, unspecified, --registry-deny-cidr): a
    /// private registry that lives there. A DNS name, `.corp.example` for every host under
    /// it, or an IP address; any port. Also allowed as a redirect or token-realm target.
    /// Repeatable; the environment variable takes a comma-separated list.
    #[arg(
        long = "registry-allow-host",
        env = "AKV_WEBHOOK_REGISTRY_ALLOW_HOST",
        value_name = "HOST",
        value_delimiter = ',',
        value_parser = parse_host_pattern
    )]
    pub registry_allow_host: Vec<HostPattern>,

    /// A network that registry lookups never contact, e.g. the cluster's service and pod
    /// CIDRs (10.96.0.0/12), besides loopback, link-local and unspecified addresses,
    /// which are always refused. Repeatable; the environment variable takes a
    /// comma-separated list.
    #[arg(
        long = "registry-deny-cidr",
        env = "AKV_WEBHOOK_REGISTRY_DENY_CIDR",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub registry_deny_cidr: Vec<IpNet>,

    /// A host that registries may redirect to (blob storage) or name as their token
    /// service (realm), besides their own host and the built-in ones of public registries
    /// (Docker Hub, GHCR, ACR, MCR, ECR, GCR/Artifact Registry, Quay). A DNS name or
    /// `.example.com` for every host under it. Repeatable; the environment variable takes a
    /// comma-separated list.
    #[arg(
        long = "registry-redirect-host",
        env = "AKV_WEBHOOK_REGISTRY_REDIRECT_HOST",
        value_name = "HOST",
        value_delimiter = ',',
        value_parser = parse_host_pattern
    )]
    pub registry_redirect_host: Vec<HostPattern>,
}

fn parse_host_pattern(value: &str) -> Result<HostPattern, String> {
    HostPattern::parse(value)
}

fn parse_cidr(value: &str) -> Result<IpNet, String> {
    crate::registry::hosts::parse_cidr(value)
}

fn parse_platform(value: &str) -> Result<Platform, String> {
    value.parse()
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    match akv_core::settings::parse_duration(value) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than zero".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Refuses a bad `--allow-vault-host` entry while parsing, so the error names the flag.
fn parse_vault_host(value: &str) -> Result<String, akv_core::VaultError> {
    akv_core::HostPolicy::new([value])?;
    Ok(value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_valid() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let args = Args::try_parse_from(["akv-webhook"]).expect("parses");
        assert_eq!(args.listen, "0.0.0.0:8443".parse().expect("addr"));
        assert_eq!(args.metrics_listen, "0.0.0.0:9090".parse().expect("addr"));
        assert_eq!(args.tls_cert, None);
        assert_eq!(args.tls_key, None);
        assert_eq!(
            args.env_image,
            format!("akv-injector:{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(args.log_format, LogFormat::Text);
        assert!(args.allow_vault_host.is_empty());
        assert!(args.registry_lookup);
        assert_eq!(args.registry_ca_file, None);
        assert_eq!(args.default_platform.to_string(), "linux/amd64");
        assert_eq!(args.registry_timeout, Duration::from_secs(3));
        assert_eq!(args.registry_tag_ttl, Duration::from_secs(60));
        assert!(args.registry_allow_host.is_empty());
        assert!(args.registry_deny_cidr.is_empty());
        assert!(args.registry_redirect_host.is_empty());
    }

    #[test]
    fn registry_host_flags() {
        let args = Args::try_parse_from([
            "akv-webhook",
            "--registry-allow-host=127.0.0.1",
            "--registry-allow-host",
            "registry.corp,.internal.example",
            "--registry-deny-cidr=10.96.0.0/12",
            "--registry-deny-cidr",
            "10.244.0.0/16,fd00::/8",
            "--registry-redirect-host=blobs.corp",
        ])
        .expect("parses");
        assert_eq!(
            args.registry_allow_host,
            [
                HostPattern::Ip("127.0.0.1".parse().expect("ip")),
                HostPattern::Exact("registry.corp".into()),
                HostPattern::Suffix(".internal.example".into()),
            ]
        );
        let cidrs: Vec<String> = args
            .registry_deny_cidr
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(cidrs, ["10.96.0.0/12", "10.244.0.0/16", "fd00::/8"]);
        assert_eq!(
            args.registry_redirect_host,
            [HostPattern::Exact("blobs.corp".into())]
        );
        for bad in [
            "--registry-deny-cidr=10.96.0.0/40",
            "--registry-deny-cidr=cluster",
            "--registry-allow-host=https://registry.corp",
            "--registry-allow-host=registry.corp:5000",
            "--registry-redirect-host=a/b",
        ] {
            let err = Args::try_parse_from(["akv-webhook", bad]).expect_err(bad);
            let flag = bad.split('=').next().unwrap_or_default();
            assert!(err.to_string().contains(flag), "{bad}: {err}");
        }
    }

    #[test]
    fn registry_flags() {
        let args = Args::try_parse_from([
            "akv-webhook",
            "--registry-lookup=false",
            "--registry-ca-file=/ca.pem",
            "--default-platform=linux/arm64",
            "--registry-timeout=1500ms",
            "--registry-tag-ttl=10s",
        ])
        .expect("parses");
        assert!(!args.registry_lookup);
        assert_eq!(args.registry_ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(args.default_platform.to_string(), "linux/arm64");
        assert_eq!(args.registry_timeout, Duration::from_millis(1500));
        assert_eq!(args.registry_tag_ttl, Duration::from_secs(10));
        for bad in [
            "--default-platform=amd64",
            "--registry-timeout=0s",
            "--registry-timeout=3",
        ] {
            assert!(Args::try_parse_from(["akv-webhook", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags() {
        let args = Args::try_parse_from([
            "akv-webhook",
            "--listen=127.0.0.1:1",
            "--metrics-listen=127.0.0.1:2",
            "--tls-cert=/c",
            "--tls-key=/k",
            "--env-image=reg.example/akv:1",
            "--log-format=json",
            "--allow-vault-host=kv.example.com",
            "--allow-vault-host",
            ".corp.internal,other.example",
        ])
        .expect("parses");
        assert_eq!(args.tls_cert, Some(PathBuf::from("/c")));
        assert_eq!(args.tls_key, Some(PathBuf::from("/k")));
        assert_eq!(args.env_image, "reg.example/akv:1");
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(
            args.allow_vault_host,
            ["kv.example.com", ".corp.internal", "other.example"]
        );
    }

    #[test]
    fn connection_limit_flags() {
        let defaults = Args::try_parse_from(["akv-webhook"]).expect("parses");
        let tuning = crate::server::Tuning::default();
        assert_eq!(defaults.max_connections, tuning.max_connections);
        assert_eq!(defaults.idle_timeout, tuning.idle_timeout);
        assert_eq!(
            defaults.max_streams_per_connection,
            tuning.max_streams_per_connection
        );
        assert_eq!(
            (
                defaults.max_connections,
                defaults.idle_timeout,
                defaults.max_streams_per_connection
            ),
            (1024, Duration::from_secs(30), 100)
        );
        let args = Args::try_parse_from([
            "akv-webhook",
            "--max-connections=16",
            "--idle-timeout=1500ms",
            "--max-streams-per-connection=8",
        ])
        .expect("parses");
        assert_eq!(
            (
                args.max_connections,
                args.idle_timeout,
                args.max_streams_per_connection
            ),
            (16, Duration::from_millis(1500), 8)
        );
        for bad in [
            "--max-connections=0",
            "--max-connections=-1",
            "--max-connections=many",
            "--idle-timeout=0s",
            "--idle-timeout=30",
            "--max-streams-per-connection=0",
            "--max-streams-per-connection=4294967296",
        ] {
            let err = Args::try_parse_from(["akv-webhook", bad]).expect_err(bad);
            let flag = bad.split('=').next().unwrap_or_default();
            assert!(err.to_string().contains(flag), "{bad}: {err}");
        }
    }

    #[test]
    fn cert_and_key_go_together() {
        for flag in ["--tls-cert=/c", "--tls-key=/k"] {
            let err = Args::try_parse_from(["akv-webhook", flag]).expect_err(flag);
            assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        }
    }

    #[test]
    fn bad_vault_host_is_refused() {
        let err = Args::try_parse_from(["akv-webhook", "--allow-vault-host=https://x:1"])
            .expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("--allow-vault-host"), "{text}");
        assert!(text.contains("not an allowed vault host"), "{text}");
    }
}
