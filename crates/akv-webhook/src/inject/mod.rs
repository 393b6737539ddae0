//! The pure part of injection: read a Pod, decide what to do, and build the JSONPatch.
//! No I/O happens here; image configs are looked up by the caller between [`plan`] and
//! [`mutate`].

mod annotations;
mod argv;
mod cost;
mod denial;
mod files;
mod identity;
mod patch;
mod plan;
mod platform;
mod refresh;

pub use annotations::{AnnotationError, PodConfig};
pub use argv::ImageConfig;
pub use cost::{Estimate, Warnings, MAX_OBJECT_BYTES, MAX_WARNINGS};
pub use denial::Denial;
pub use identity::IdentityConfig;
pub use patch::{add_metadata, mutate, Mutation};
pub use plan::{plan, ArgvSource, ContainerId, ContainerKind, Plan, Target};

/// Prefix of every annotation and label of ours.
pub const ANNOTATION_PREFIX: &str = "akv-injector.io/";
/// Written by the webhook; a pod carrying it with [`STATUS_INJECTED`] is left alone.
pub const STATUS_ANNOTATION: &str = "akv-injector.io/status";
/// The value of [`STATUS_ANNOTATION`] on an injected pod.
pub const STATUS_INJECTED: &str = "injected";
/// Pod label that opts a pod out (value `"false"`).
pub const OPT_OUT_LABEL: &str = "akv-injector.io/inject";
/// The in-memory volume that carries akv-env.
pub const VOLUME_NAME: &str = "akv-injector";
/// Where the volume is mounted in every injected container.
pub const MOUNT_PATH: &str = "/akv-injector";
/// The wrapper every injected container starts.
pub const ENV_BINARY: &str = "/akv-injector/akv-env";
/// Name of the init container that installs akv-env.
pub const INSTALL_CONTAINER: &str = "akv-injector-install";
/// Where akv-env lives in the injector image.
pub const IMAGE_BINARY: &str = "/usr/local/bin/akv-env";
/// The Azure Workload Identity label a pod needs to get its token file.
pub const WORKLOAD_IDENTITY_LABEL: &str = "azure.workload.identity/use";

/// Whether a pod is opted out (label [`OPT_OUT_LABEL`] `"false"`) or injected already
/// (annotation [`STATUS_ANNOTATION`]: reinvocation is a no-op): either way it is left as
/// it is.
pub fn is_left_alone(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    let metadata = &pod.metadata;
    let opted_out = metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(OPT_OUT_LABEL))
        .is_some_and(|v| v == "false");
    let injected = metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(STATUS_ANNOTATION))
        .is_some_and(|v| v == STATUS_INJECTED);
    opted_out || injected
}

/// Settings the operator gives the webhook that shape every patch.
#[derive(Debug, Clone)]
pub struct InjectSettings {
    /// Image of the init container that installs akv-env (`--env-image`).
    pub env_image: String,
    /// Extra vault hosts the operator allows (`--allow-vault-host`), passed down to akv-env.
    pub allow_vault_hosts: akv_core::HostPolicy,
    /// Pods may use the node's managed identity (`--allow-managed-identity`).
    pub allow_managed_identity: bool,
}
