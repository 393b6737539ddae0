//! The admission every server and registry test serves (server.rs, connections.rs,
//! registry.rs, registry_hostile.rs include this module; each uses all of it). Helpers
//! that do not need the webhook's types live in `akv_testkit`.

use std::sync::Arc;

use akv_core::HostPolicy;
use akv_webhook::admission::{Admission, InjectSettings};
use akv_webhook::registry::ImageConfigSource;

/// An admission with env image `akv-injector:test` and the default vault host policy,
/// reading image configs from `images`.
pub fn admission(images: Arc<dyn ImageConfigSource>) -> Admission {
    let settings = InjectSettings {
        env_image: "akv-injector:test".to_string(),
        allow_vault_hosts: HostPolicy::default(),
        allow_managed_identity: false,
    };
    Admission::new(settings, images)
}
