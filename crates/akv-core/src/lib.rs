//! What `akv-webhook` and `akv-env` must agree on: the reference grammar, how a value
//! holds references, where a vault lives, the settings passed down to the pod, and the
//! workload identity both read from the standard `AZURE_*` variables.
#![forbid(unsafe_code)]

pub mod auth;
pub mod error_chain;
pub mod files;
pub mod identity;
pub mod json_path;
pub mod pod_settings;
pub mod reference;
pub mod refresh;
pub mod roles;
pub mod settings;
pub mod template;
pub mod vault;

pub use auth::{AuthKind, IdentitySettings, IdentitySettingsError};
pub use error_chain::error_chain;
pub use identity::{AzureVars, VarError, WorkloadIdentity};
pub use pod_settings::{PodSettings, PodSettingsError};
pub use reference::{JsonPath, ObjectKind, Part, Reference, ReferenceError, VaultRef};
pub use template::{Segment, Template};
pub use vault::{HostPolicy, VaultError, VaultUrl};
