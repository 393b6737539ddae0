//! The pod's federated token file (`AZURE_FEDERATED_TOKEN_FILE`), read within limits: a
//! regular file only (a FIFO or a device such as /dev/zero is refused at once, without
//! opening it), at most [`MAX_TOKEN_FILE`] bytes, inside a time limit.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use azure_core::error::{Error, ErrorKind};
use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;

/// A projected service-account token is about 1 KiB.
pub const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// Kubernetes refreshes the projected token well before it expires; akv-env reads it again
/// when its copy is older than this.
const REREAD_AFTER: Duration = Duration::from_secs(300);

/// Why the token file could not be used; shown after "cannot read the federated token file PATH".
fn refuse(what: String) -> std::io::Error {
    std::io::Error::other(what)
}

fn kind_of(meta: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_dir() {
        Some("a directory")
    } else {
        Some("not a file")
    }
}

fn read_now(path: &Path) -> std::io::Result<String> {
    // stat, not open: opening a FIFO would wait for a writer.
    let meta = std::fs::metadata(path)?;
    if let Some(kind) = kind_of(&meta) {
        return Err(refuse(format!(
            "it is {kind}, not a regular file holding a service account token"
        )));
    }
    if meta.len() > MAX_TOKEN_FILE {
        return Err(refuse(format!(
            "it holds {} bytes, more than the {} KiB a service account token can take",
            meta.len(),
            MAX_TOKEN_FILE / 1024
        )));
    }
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_TOKEN_FILE {
        return Err(refuse(format!(
            "it holds more than the {} KiB a service account token can take",
            MAX_TOKEN_FILE / 1024
        )));
    }
    String::from_utf8(buf).map_err(|_| refuse("it is not UTF-8 text (a JWT)".into()))
}

/// Reads the token file on a helper thread; gives up after `limit`.
pub fn read(path: &Path, limit: Duration) -> std::io::Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("token-file".into())
        .spawn(move || {
            let _ = tx.send(read_now(&owned));
        })?;
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => Err(refuse(format!(
            "reading it took longer than {}",
            akv_core::settings::format_duration(limit)
        ))),
    }
}

/// The client assertion for the token exchange: the token file's content, read again when
/// older than [`REREAD_AFTER`].
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    limit: Duration,
    cached: Mutex<(String, Instant)>,
}

impl TokenFile {
    /// `first` is the content already read (and checked) by the caller.
    pub fn new(path: PathBuf, first: &str, limit: Duration) -> Self {
        TokenFile {
            path,
            limit,
            cached: Mutex::new((first.trim().to_string(), Instant::now())),
        }
    }
}

#[async_trait::async_trait]
impl ClientAssertion for TokenFile {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let fresh = {
            let cached = self.cached.lock().map_err(|_| {
                Error::with_message(ErrorKind::Credential, "the token file cache is poisoned")
            })?;
            (cached.1.elapsed() < REREAD_AFTER).then(|| cached.0.clone())
        };
        if let Some(token) = fresh {
            return Ok(token);
        }
        let (path, limit) = (self.path.clone(), self.limit);
        let token = tokio::task::spawn_blocking(move || read(&path, limit))
            .await
            .map_err(|e| Error::new(ErrorKind::Credential, e))?
            .map_err(|e| {
                Error::with_error(
                    ErrorKind::Credential,
                    e,
                    format!(
                        "cannot read the federated token file {}",
                        self.path.display()
                    ),
                )
            })?;
        let token = token.trim().to_string();
        if let Ok(mut cached) = self.cached.lock() {
            *cached = (token.clone(), Instant::now());
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "akv-env-token-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    #[test]
    fn limits() {
        let d = dir();
        let ok = d.join("ok");
        std::fs::write(&ok, "eyJ.x.y").expect("write");
        assert_eq!(read(&ok, Duration::from_secs(5)).expect("read"), "eyJ.x.y");
        let big = d.join("big");
        std::fs::write(&big, vec![b'a'; 64 * 1024 + 1]).expect("write");
        let cases = [
            (big, "it holds 65537 bytes, more than the 64 KiB"),
            (
                PathBuf::from("/dev/zero"),
                "it is a character device, not a regular file",
            ),
            (d.clone(), "it is a directory, not a regular file"),
        ];
        for (path, want) in cases {
            let started = Instant::now();
            let err = read(&path, Duration::from_secs(5))
                .expect_err(want)
                .to_string();
            assert!(err.starts_with(want), "{}: {err}", path.display());
            assert!(started.elapsed() < Duration::from_secs(1));
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
