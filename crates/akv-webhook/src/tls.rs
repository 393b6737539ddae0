//! The serving certificate: loaded from PEM files and reloaded when they change, or made
//! self-signed at start for local use.
//!
//! Reloading polls: every few seconds [`Reloader`] re-reads both files (following
//! symlinks, so a Kubernetes Secret volume update, which swaps the `..data` symlink, is
//! seen like any other change) and, when the bytes differ from what it last saw, parses
//! them and swaps the new pair into the [`CertResolver`] that every new TLS connection
//! asks. A bad new pair (unparseable, or a key that does not match the certificate) is
//! logged and counted, and the previous certificate stays in use.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::metrics::{Metrics, ReloadResult};

/// Names in the self-signed certificate made when no certificate is given.
pub const SELF_SIGNED_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// How often the certificate files are checked for changes.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {error}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("{}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: bad PEM certificate: {error}", path.display())]
    CertificatePem {
        path: PathBuf,
        error: rustls_pki_types::pem::Error,
    },
    #[error("{}: not a usable certificate: {error}", path.display())]
    Certificate { path: PathBuf, error: rustls::Error },
    #[error("{}: no PEM private key in it (expected PKCS#8, PKCS#1 or SEC1): {error}", path.display())]
    KeyPem {
        path: PathBuf,
        error: rustls_pki_types::pem::Error,
    },
    #[error("{}: unsupported private key: {error}", path.display())]
    Key { path: PathBuf, error: rustls::Error },
    #[error("the private key {} does not match the certificate {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot make the self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    #[error("cannot set up TLS: {0}")]
    Config(rustls::Error),
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files, watched for changes.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate for [`SELF_SIGNED_NAMES`], made at start.
    SelfSigned,
}

/// The crypto provider used for everything TLS here: `ring`.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes `ring` the process-wide default provider, unless one is installed already. The
/// server passes [`provider`] explicitly anyway; this is for any other rustls user in the
/// process, which would otherwise panic if two providers were compiled in.
pub fn install_default_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

/// A TLS 1.2+ server config that asks `resolver` for the certificate of each handshake and
/// offers HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Hands the current certificate to every handshake; swapped on reload.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn new(key: CertifiedKey) -> Self {
        CertResolver {
            current: ArcSwap::from_pointee(key),
        }
    }

    /// The certificate served now.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    fn set(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// When the leaf certificate of `key` expires (its notAfter), in seconds since the Unix
/// epoch; `None` when it cannot be decoded (rustls took it, so that is not expected).
pub fn expires_at(key: &CertifiedKey) -> Option<u64> {
    use x509_cert::der::Decode;
    let leaf = key.cert.first()?;
    let cert = x509_cert::Certificate::from_der(leaf.as_ref()).ok()?;
    Some(
        cert.tbs_certificate()
            .validity()
            .not_after
            .to_unix_duration()
            .as_secs(),
    )
}

/// A self-signed certificate for [`SELF_SIGNED_NAMES`], with a fresh key.
pub fn self_signed(provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let names = SELF_SIGNED_NAMES.map(String::from).to_vec();
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "akv-webhook self-signed (local use only)",
    );
    let key_pair = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key_pair)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(TlsError::Config)?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing_key))
}

/// Parses a PEM certificate chain and its PEM private key, and checks that they match.
pub fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    files: &CertFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::CertificatePem {
            path: files.cert.clone(),
            error,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|error| TlsError::KeyPem {
        path: files.key.clone(),
        error,
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsError::Key {
            path: files.key.clone(),
            error,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown`: the key cannot tell its public key; the handshake will tell.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        Err(error) => Err(TlsError::Certificate {
            path: files.cert.clone(),
            error,
        }),
    }
}

/// The certificate and key files given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What the reloader last read: only a change from it is acted on (and logged once).
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Pair { cert: Vec<u8>, key: Vec<u8> },
    ReadError(String),
}

/// What one check of the files found.
#[derive(Debug)]
enum Check {
    /// Same bytes as last time (or the same read error).
    Unchanged,
    /// A new pair is being served.
    Reloaded,
    /// The files changed but cannot be used; the previous certificate stays.
    Failed(TlsError),
}

/// Watches the certificate files and swaps a new, good pair into the resolver.
#[derive(Debug)]
pub struct Reloader {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    seen: Seen,
}

impl Reloader {
    /// Loads the pair for the first time: any problem is an error (the server cannot start).
    pub async fn load(files: CertFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let (cert, key) = read_pair(&files).await?;
        let certified = parse_pair(&cert, &key, &files, &provider)?;
        Ok(Reloader {
            resolver: Arc::new(CertResolver::new(certified)),
            files,
            provider,
            seen: Seen::Pair { cert, key },
        })
    }

    /// The resolver that this reloader keeps up to date.
    pub fn resolver(&self) -> Arc<CertResolver> {
        Arc::clone(&self.resolver)
    }

    /// Re-reads the files once and reloads if they changed.
    async fn check(&mut self) -> Check {
        let read = read_pair(&self.files).await;
        let now = match &read {
            Ok((cert, key)) => Seen::Pair {
                cert: cert.clone(),
                key: key.clone(),
            },
            Err(e) => Seen::ReadError(e.to_string()),
        };
        if now == self.seen {
            return Check::Unchanged;
        }
        self.seen = now;
        let parsed =
            read.and_then(|(cert, key)| parse_pair(&cert, &key, &self.files, &self.provider));
        match parsed {
            Ok(certified) => {
                self.resolver.set(certified);
                Check::Reloaded
            }
            Err(e) => Check::Failed(e),
        }
    }

    /// Checks every `interval` until `shutdown`, logging and counting each reload.
    pub async fn watch(
        mut self,
        interval: Duration,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate; the files were just loaded
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.cancelled() => return,
            }
            match self.check().await {
                Check::Unchanged => {}
                Check::Reloaded => {
                    metrics.tls_reload(ReloadResult::Ok);
                    metrics.certificate_in_use(expires_at(&self.resolver.current()));
                    info!(cert = %self.files.cert.display(), "reloaded the serving certificate");
                }
                Check::Failed(e) => {
                    metrics.tls_reload(ReloadResult::Error);
                    error!(error = %e, "the certificate files changed but cannot be used; still serving the previous certificate");
                }
            }
        }
    }
}

/// Reads both files, then the certificate again: if it changed meanwhile (a Secret volume
/// update in between), reads again, so that the pair is from one moment.
async fn read_pair(files: &CertFiles) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let mut cert = read("certificate", &files.cert).await?;
    for _ in 0..3 {
        let key = read("private key", &files.key).await?;
        let again = read("certificate", &files.cert).await?;
        if again == cert {
            return Ok((cert, key));
        }
        cert = again;
    }
    let key = read("private key", &files.key).await?;
    Ok((cert, key))
}

async fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    tokio::fs::read(path).await.map_err(|error| TlsError::Read {
        what,
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> CertFiles {
        CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn parse(cert: &str, key: &str) -> Result<CertifiedKey, TlsError> {
        parse_pair(
            cert.as_bytes(),
            key.as_bytes(),
            &files(Path::new("/x")),
            &provider(),
        )
    }

    #[test]
    fn good_pair() {
        let (cert, key) = pair("localhost");
        let certified = parse(&cert, &key).expect("parses");
        assert_eq!(certified.cert.len(), 1);
    }

    #[test]
    fn bad_pairs() {
        let (cert, key) = pair("a");
        let (_, other_key) = pair("b");
        let cases: [(&str, &str, &str); 5] = [
            (&cert, &other_key, "does not match"),
            ("", &key, "no PEM certificate"),
            (&key, &key, "no PEM certificate"),
            (&cert, &cert, "no PEM private key"),
            (
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                &key,
                "bad PEM certificate",
            ),
        ];
        for (cert, key, want) in cases {
            let err = parse(cert, key).expect_err(want);
            assert!(err.to_string().contains(want), "{err} (want {want})");
        }
    }

    #[test]
    fn self_signed_is_for_localhost() {
        let certified = self_signed(&provider()).expect("made");
        assert!(certified.keys_match().is_ok());
        // rcgen's default notAfter, 4096-01-01T00:00:00Z, read back by the expiry gauge.
        assert_eq!(expires_at(&certified), Some(67_090_118_400));
    }

    #[tokio::test]
    async fn reloads_only_on_change_and_keeps_the_old_pair_when_bad() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = files(dir.path());
        let (cert1, key1) = pair("one");
        std::fs::write(&files.cert, &cert1).expect("write");
        std::fs::write(&files.key, &key1).expect("write");
        let mut reloader = Reloader::load(files.clone(), provider())
            .await
            .expect("loads");
        let first = reloader.resolver().current();
        assert!(matches!(reloader.check().await, Check::Unchanged));

        let (cert2, key2) = pair("two");
        std::fs::write(&files.cert, &cert2).expect("write");
        std::fs::write(&files.key, &key2).expect("write");
        assert!(matches!(reloader.check().await, Check::Reloaded));
        let second = reloader.resolver().current();
        assert_ne!(first.cert, second.cert);

        std::fs::write(&files.key, &key1).expect("write");
        assert!(matches!(
            reloader.check().await,
            Check::Failed(TlsError::Mismatch { .. })
        ));
        assert!(
            matches!(reloader.check().await, Check::Unchanged),
            "a bad pair is reported once"
        );
        assert_eq!(reloader.resolver().current().cert, second.cert);

        std::fs::remove_file(&files.key).expect("remove");
        assert!(matches!(
            reloader.check().await,
            Check::Failed(TlsError::Read { .. })
        ));
        assert!(matches!(reloader.check().await, Check::Unchanged));

        std::fs::write(&files.key, &key2).expect("write");
        assert!(matches!(reloader.check().await, Check::Reloaded));
        assert_eq!(reloader.resolver().current().cert, second.cert);
    }

    #[tokio::test]
    async fn a_bad_pair_at_start_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = files(dir.path());
        let err = Reloader::load(files.clone(), provider())
            .await
            .expect_err("missing");
        assert!(err.to_string().contains("cannot read certificate"), "{err}");
    }
}
