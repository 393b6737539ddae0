//! Command-line flags of `akv-webhook`; each is also read from `AKV_WEBHOOK_<FLAG>`.
//!
//! Flags that configure one thing together are a group (`#[command(flatten)]`), and
//! [`Args::run`] takes every field apart by name: a flag added here and not wired in does
//! not compile. The registry group, the largest, has a file of its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Parser, ValueEnum};

use crate::server::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_STREAMS};
use crate::tls::TlsSource;

mod registry;
pub use registry::RegistryFlags;

/// The default `--env-image`: the image of this very release.
const DEFAULT_ENV_IMAGE: &str = concat!("akv-injector:", env!("CARGO_PKG_VERSION"));

/// Mutating admission webhook that injects Azure Key Vault references into pods.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "akv-webhook", version, about, long_about = None)]
pub struct Args {
    /// Address of the HTTPS listener (POST /mutate, GET /healthz, GET /readyz).
    #[arg(long, env = "AKV_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    // The serving certificate; `None` for a self-signed one.
    #[command(flatten)]
    pub tls: Option<TlsFlags>,

    /// Image of the init container that installs akv-env into injected pods.
    #[arg(long, env = "AKV_WEBHOOK_ENV_IMAGE", default_value = DEFAULT_ENV_IMAGE)]
    pub env_image: String,

    #[command(flatten)]
    pub metrics: MetricsFlags,

    /// Log format. The level comes from RUST_LOG (default: info).
    #[arg(long, env = "AKV_WEBHOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub connections: ConnectionFlags,

    /// A vault host that akv-env may talk to besides the Key Vault DNS suffixes:
    /// kv.example.com, or .example.com for every host under it. Repeatable; the
    /// environment variable takes a comma-separated list.
    #[arg(long, env = "AKV_WEBHOOK_ALLOW_VAULT_HOST", value_name = "HOST", value_delimiter = ',', value_parser = parse_vault_host)]
    pub allow_vault_host: Vec<String>,

    /// Let pods use the node's managed identity (akv-injector.io/auth: managed-identity).
    /// Every pod on a node can use that identity, so it is refused unless this is set, and
    /// every such pod still gets a warning.
    #[arg(long, env = "AKV_WEBHOOK_ALLOW_MANAGED_IDENTITY")]
    pub allow_managed_identity: bool,

    #[command(flatten)]
    pub registry: RegistryFlags,

    /// Without a command, akv-webhook serves.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What akv-webhook can do besides serving.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Check manifests offline: print what admission would refuse or warn about in their
    /// pod templates (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
    /// List). Exit 0 when nothing is refused, 1 when something is, 2 on unreadable input.
    Check(crate::check::CheckArgs),
}

/// `--tls-cert` and `--tls-key`: both or neither (clap refuses one alone).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TlsFlags {
    /// PEM certificate chain to serve (leaf first); reloaded when it changes, Kubernetes
    /// Secret volume updates included. Needs --tls-key. Without both, a self-signed
    /// certificate for localhost and 127.0.0.1 is made at start (for local use only).
    #[arg(
        long,
        env = "AKV_WEBHOOK_TLS_CERT",
        value_name = "PEM_FILE",
        required = false,
        requires = "tls_key"
    )]
    pub tls_cert: PathBuf,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert; reloaded with it.
    #[arg(
        long,
        env = "AKV_WEBHOOK_TLS_KEY",
        value_name = "PEM_FILE",
        required = false,
        requires = "tls_cert"
    )]
    pub tls_key: PathBuf,
}

impl From<TlsFlags> for TlsSource {
    fn from(flags: TlsFlags) -> Self {
        let TlsFlags { tls_cert, tls_key } = flags;
        TlsSource::Files {
            cert: tls_cert,
            key: tls_key,
        }
    }
}

/// The metrics listener.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct MetricsFlags {
    /// Address of the plain-HTTP metrics listener (GET /metrics, /healthz, /readyz).
    #[arg(
        long,
        env = "AKV_WEBHOOK_METRICS_LISTEN",
        default_value = "0.0.0.0:9090"
    )]
    pub metrics_listen: SocketAddr,
}

/// Connection limits of the HTTPS listener (`server::connections`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ConnectionFlags {
    /// Most client connections open at once on the HTTPS listener. When it is reached, the
    /// connection idle the longest is closed to make room, so idle clients cannot lock out
    /// the API server. Lowered at start to fit the open-file limit.
    #[arg(long, env = "AKV_WEBHOOK_MAX_CONNECTIONS", value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,

    /// A connection with no request in flight for this long is closed (HTTP/2 with a
    /// GOAWAY), e.g. 30s, 2m.
    #[arg(long, env = "AKV_WEBHOOK_IDLE_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Most concurrent HTTP/2 streams (requests) per connection; more are refused with
    /// REFUSED_STREAM, and clients open another connection.
    #[arg(long, env = "AKV_WEBHOOK_MAX_STREAMS_PER_CONNECTION", value_name = "N", default_value_t = DEFAULT_MAX_STREAMS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_connection: u32,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// A duration of more than zero: `3s`, `1500ms`, `2m`.
fn parse_duration(value: &str) -> Result<Duration, String> {
    match akv_core::settings::parse_duration(value) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than zero".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Refuses a bad `--allow-vault-host` entry while parsing, so the error names the flag.
fn parse_vault_host(value: &str) -> Result<String, akv_core::VaultError> {
    akv_core::HostPolicy::new([value])?;
    Ok(value.trim().to_string())
}

/// Test helpers shared by this module's tests and [`registry`]'s.
#[cfg(test)]
mod testing {
    use super::Args;
    use clap::Parser as _;

    /// The flags parsed from `flags` (after the program name).
    pub fn parse(flags: &[&str]) -> Args {
        let argv = std::iter::once("akv-webhook").chain(flags.iter().copied());
        Args::try_parse_from(argv).expect("parses")
    }

    /// Asserts that each of `bad` (`--flag=value`) is refused with an error naming the flag.
    pub fn refused_naming_flag(bad: &[&str]) {
        for bad in bad {
            let err = Args::try_parse_from(["akv-webhook", bad]).expect_err(bad);
            let flag = bad.split('=').next().unwrap_or_default();
            assert!(err.to_string().contains(flag), "{bad}: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{parse, refused_naming_flag};
    use super::*;
    use crate::server::DEFAULT_IDLE_TIMEOUT;
    use clap::CommandFactory;

    #[test]
    fn definition_is_valid() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let args = parse(&[]);
        assert_eq!(args.listen, "0.0.0.0:8443".parse().expect("addr"));
        assert_eq!(
            args.metrics.metrics_listen,
            "0.0.0.0:9090".parse().expect("addr")
        );
        assert_eq!(args.tls, None);
        assert_eq!(
            args.env_image,
            format!("akv-injector:{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(args.log_format, LogFormat::Text);
        assert!(args.allow_vault_host.is_empty());
        assert!(!args.allow_managed_identity);
        assert!(parse(&["--allow-managed-identity"]).allow_managed_identity);
    }

    #[test]
    fn flags() {
        let args = parse(&[
            "--listen=127.0.0.1:1",
            "--metrics-listen=127.0.0.1:2",
            "--tls-cert=/c",
            "--tls-key=/k",
            "--env-image=reg.example/akv:1",
            "--log-format=json",
            "--allow-vault-host=kv.example.com",
            "--allow-vault-host",
            ".corp.internal,other.example",
        ]);
        assert_eq!(
            args.tls.map(TlsSource::from),
            Some(TlsSource::Files {
                cert: PathBuf::from("/c"),
                key: PathBuf::from("/k"),
            })
        );
        assert_eq!(args.env_image, "reg.example/akv:1");
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(
            args.allow_vault_host,
            ["kv.example.com", ".corp.internal", "other.example"]
        );
    }

    #[test]
    fn connection_limit_flags() {
        assert_eq!(
            parse(&[]).connections,
            ConnectionFlags {
                max_connections: DEFAULT_MAX_CONNECTIONS,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                max_streams_per_connection: DEFAULT_MAX_STREAMS,
            }
        );
        assert_eq!(
            (
                DEFAULT_MAX_CONNECTIONS,
                DEFAULT_IDLE_TIMEOUT,
                DEFAULT_MAX_STREAMS
            ),
            (1024, Duration::from_secs(30), 100)
        );
        let args = parse(&[
            "--max-connections=16",
            "--idle-timeout=1500ms",
            "--max-streams-per-connection=8",
        ]);
        assert_eq!(
            args.connections,
            ConnectionFlags {
                max_connections: 16,
                idle_timeout: Duration::from_millis(1500),
                max_streams_per_connection: 8,
            }
        );
        refused_naming_flag(&[
            "--max-connections=0",
            "--max-connections=-1",
            "--max-connections=many",
            "--idle-timeout=0s",
            "--idle-timeout=30",
            "--max-streams-per-connection=0",
            "--max-streams-per-connection=4294967296",
        ]);
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
