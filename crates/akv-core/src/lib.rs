//! What `akv-webhook` and `akv-env` must agree on: the reference grammar, how a value
//! holds references, where a vault lives, and the settings passed down to the pod.
#![forbid(unsafe_code)]

pub mod pod_settings;
pub mod reference;
pub mod roles;
pub mod settings;
pub mod template;
pub mod vault;

pub use pod_settings::{PodSettings, PodSettingsError};
pub use reference::{ObjectKind, Part, Reference, ReferenceError, VaultRef};
pub use template::{Segment, Template};
pub use vault::{HostPolicy, VaultError, VaultUrl};
