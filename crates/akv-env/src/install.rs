//! `akv-env install DIR`: copies this executable to `DIR/akv-env`, atomically (a temporary
//! file in DIR, then a rename), mode 0555. Writes nothing outside DIR, so it works on a
//! read-only root filesystem and as any user that may write DIR.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const INSTALLED_NAME: &str = "akv-env";

/// Installs `source` (normally `std::env::current_exe()`) as `DIR/akv-env`.
pub fn install(source: &Path, dir: &Path) -> io::Result<PathBuf> {
    let target = dir.join(INSTALLED_NAME);
    let tmp = dir.join(format!(".{INSTALLED_NAME}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut from = File::open(source)?;
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&tmp)?;
        io::copy(&mut from, &mut to)?;
        to.set_permissions(fs::Permissions::from_mode(0o555))?;
        to.sync_all()?;
        drop(to);
        fs::rename(&tmp, &target)?;
        // Make the rename durable; a directory that cannot be opened or synced is no error.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(target.clone())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("akv-env-install-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("create temp dir");
        d
    }

    #[test]
    fn installs_atomically_with_mode_0555() {
        let dir = tempdir("ok");
        let src = dir.join("src-binary");
        fs::write(&src, b"#!/bin/sh\necho hi\n").expect("write");
        let dest = dir.join("dest");
        fs::create_dir(&dest).expect("mkdir");
        for _ in 0..2 {
            // The second run replaces a read-only file already there.
            let target = install(&src, &dest).expect("install");
            assert_eq!(target, dest.join("akv-env"));
            assert_eq!(
                fs::read(&target).expect("read"),
                fs::read(&src).expect("read")
            );
            assert_eq!(
                fs::metadata(&target).expect("stat").permissions().mode() & 0o7777,
                0o555
            );
        }
        let names: Vec<_> = fs::read_dir(&dest)
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("akv-env")]);
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn missing_dir_fails_cleanly() {
        let dir = tempdir("missing");
        let err = install(Path::new("/proc/self/exe"), &dir.join("nope")).expect_err("no dir");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
