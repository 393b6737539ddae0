//! akv-env's integration test bed (`akv_testkit::keyvault_bed`: the Key Vault harness,
//! pods, openssl) with this crate's binary.

pub use akv_testkit::keyvault_bed::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_akv-env");

/// The shared test bed, running the akv-env binary built for these tests; panics (never
/// skips) when it cannot be had.
pub fn testbed() -> &'static Testbed {
    Testbed::shared(BIN)
}
