//! akv-env's build: for a Linux binary of the release profiles (`release`, `dist`,
//! `release-size`, all with `panic = "abort"`; tests and `cargo build` keep unwinding),
//! link without unwind tables (link/no-unwind-tables.ld says why). Cargo names every
//! profile but `dev` "release" here, and tells a build script nothing of `panic`.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=link/no-unwind-tables.ld");
    let linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    if !(linux && release) {
        return;
    }
    let Some(dir) = env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let script = PathBuf::from(dir).join("link/no-unwind-tables.ld");
    println!(
        "cargo::rustc-link-arg-bin=akv-env=-Wl,-T,{}",
        script.display()
    );
}
