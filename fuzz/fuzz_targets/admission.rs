//! The whole admission path: request bytes in, through the same function the HTTP handler
//! calls, answer out. Never a panic; every answer is JSON.
#![no_main]

use std::sync::{Arc, OnceLock};

use akv_core::HostPolicy;
use akv_webhook::admission::{Admission, InjectSettings};
use akv_webhook::registry::NoLookup;
use libfuzzer_sys::fuzz_target;

fn admission() -> &'static (Admission, tokio::runtime::Runtime) {
    static ADMISSION: OnceLock<(Admission, tokio::runtime::Runtime)> = OnceLock::new();
    ADMISSION.get_or_init(|| {
        let settings = InjectSettings {
            env_image: "akv-injector:fuzz".to_string(),
            allow_vault_hosts: HostPolicy::default(),
            // On: the managed-identity path is one more the inputs can reach.
            allow_managed_identity: true,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        (Admission::new(settings, Arc::new(NoLookup)), runtime)
    })
}

fuzz_target!(|data: &[u8]| {
    let (admission, runtime) = admission();
    if let Ok(reviewed) = runtime.block_on(admission.review(data)) {
        let answer: serde_json::Value =
            serde_json::from_slice(&reviewed.body).expect("the answer is JSON");
        assert!(answer["response"]["allowed"].is_boolean(), "{answer}");
    }
});
