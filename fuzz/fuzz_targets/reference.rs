//! The reference grammar and value templates: parsing never panics, and whatever parses
//! prints in a form that parses back to the same reference.
#![no_main]

use akv_core::{Reference, Template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(reference) = text.parse::<Reference>() {
        let printed = reference.to_string();
        let again: Reference = printed
            .parse()
            .unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e}"));
        assert_eq!(again, reference, "{printed:?}");
    }
    if let Ok(Some(template)) = Template::scan(text) {
        // Rendering with every reference replaced must not panic either.
        let _ = template.render(|_| "");
    }
    let _ = akv_core::VaultUrl::parse_spec(text);
    let _ = akv_core::settings::parse_duration(text).map(|d| {
        let printed = akv_core::settings::format_duration(d);
        assert_eq!(
            akv_core::settings::parse_duration(&printed).ok(),
            Some(d),
            "{printed:?}"
        );
    });
});
