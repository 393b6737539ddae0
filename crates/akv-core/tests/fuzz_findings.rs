//! Regression tests for inputs found by fuzzing the reference grammar (issue 19). Each
//! file in `tests/data/fuzz/` is the minimal input as the fuzzer found it; the test says
//! what the contract requires of it.

use std::path::Path;

use akv_core::reference::VAULT_NAME_RULE;
use akv_core::settings::{format_duration, parse_duration};
use akv_core::{Reference, VaultRef, VaultUrl};

fn input(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `akak-` was accepted as a bare vault name while its URL form was refused. Azure never
/// names a vault like that: every form is refused, and each message states the rule.
#[test]
fn vault_name_with_a_trailing_hyphen_is_refused_in_every_form() {
    let name = input("reference-vault-trailing-hyphen.bin");
    assert_eq!(name, "akak-");
    let reference = format!("akv://{name}/db");
    let host = format!("{name}.vault.azure.net");
    let hsm = format!("{name}.managedhsm.azure.net");
    let messages = [
        VaultRef::parse(&name)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        VaultRef::parse(&host)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        VaultRef::parse(&hsm).map(|_| ()).map_err(|e| e.to_string()),
        reference
            .parse::<Reference>()
            .map(|_| ())
            .map_err(|e| e.to_string()),
        VaultUrl::parse_spec(&name)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        VaultUrl::parse_spec(&host)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        VaultUrl::parse_spec(&format!("https://{host}"))
            .map(|_| ())
            .map_err(|e| e.to_string()),
        VaultUrl::parse_spec(&format!("https://{hsm}/"))
            .map(|_| ())
            .map_err(|e| e.to_string()),
    ];
    for message in messages {
        let message = message.expect_err("akak- must be refused");
        assert!(message.contains(VAULT_NAME_RULE), "{message}");
        assert!(message.contains("akak-"), "{message}");
    }
}

/// `1ms66466646s` parsed, and printed as `66466646001ms`, which did not parse back.
#[test]
fn duration_prints_in_a_form_that_parses_back() {
    let text = input("reference-duration-roundtrip.bin");
    assert_eq!(text, "1ms66466646s");
    let parsed = parse_duration(&text).expect("the fuzz input is a valid duration");
    let shown = format_duration(parsed);
    assert_eq!(shown, "18462h57m26s1ms");
    assert_eq!(parse_duration(&shown), Ok(parsed));
}
