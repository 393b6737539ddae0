//! The annotation parser: any map of annotations is read or refused, never a panic; what
//! it accepts is written for akv-env in a form akv-env reads back unchanged.
#![no_main]

use std::collections::BTreeMap;

use akv_core::PodSettings;
use akv_webhook::inject::PodConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lines "key=value"; keys without the prefix get it, so most inputs are ours.
    let mut annotations = BTreeMap::new();
    for line in text.lines() {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let key = if key.contains('/') {
            key.to_string()
        } else {
            format!("akv-injector.io/{key}")
        };
        annotations.insert(key, value.to_string());
    }
    if let Ok(config) = PodConfig::parse(&annotations) {
        let read = PodSettings::from_pairs(&config.settings.to_env());
        assert_eq!(read.as_ref(), Ok(&config.settings));
    }
});
