//! Where image configs come from, for containers that have no `command`.
//!
//! The admission path calls an [`ImageConfigSource`] between planning and mutating.
//! [`RegistrySource`] reads the image's config from its registry (OCI distribution API),
//! with the pod's pull secrets, and caches it; [`NoLookup`] (`--registry-lookup=false`)
//! denies such pods with a message that says to set `command`.
//!
//! - [`reference`]: image reference forms and Docker Hub normalisation;
//! - [`platform`]: which entry of a multi-arch index the pod runs;
//! - [`credentials`]: pull secrets of the pod and its service account;
//! - [`acr`]: Azure Container Registry with the webhook's workload identity;
//! - [`hosts`]: which hosts and addresses are contacted, redirected to, and resolved;
//! - [`http`]: the bounded OCI distribution requests on one shared client;
//! - [`flight`]: single flight that is cancelled with its last waiter;
//! - [`oci`]: the lookup itself: its caches, the OCI protocol and its errors (its metrics
//!   are in [`crate::metrics`]).

pub mod acr;
mod bounded;
pub mod credentials;
pub mod flight;
pub mod hosts;
pub mod http;
pub mod oci;
pub mod platform;
pub mod reference;

pub use acr::{AcrTokenSource, WorkloadIdentity, WorkloadIdentityAcr};
pub use credentials::{KubePullSecrets, NoPullSecrets, PullSecretRefs, PullSecretSource};
pub use hosts::{HostPattern, HostRules};
pub use oci::{RegistryOptions, RegistrySetupError, RegistrySource};
pub use platform::Platform;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use thiserror::Error;

use crate::inject::ImageConfig;

/// Why an image's config could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LookupError {
    #[error("image registry lookup is turned off in this webhook")]
    Disabled,
    #[error("{0}")]
    Failed(String),
    /// The review names no namespace to read the pod's pull secrets in.
    #[error("the review names no namespace, so the pod's pull secrets cannot be found")]
    NoNamespace,
    /// The review's deadline for all its lookups passed first.
    #[error("timeout: the registry did not answer within {} (the webhook's --registry-timeout)", akv_core::settings::format_duration(*.0))]
    Timeout(std::time::Duration),
}

/// Reads the ENTRYPOINT and CMD of an image, with the pod's credentials where it has any.
#[async_trait]
pub trait ImageConfigSource: Send + Sync {
    /// `namespace` is the admission request's namespace: every Kubernetes read for the
    /// pod's credentials happens there, never in the object's own `metadata.namespace`.
    /// Dropping the future cancels the lookup.
    async fn image_config(
        &self,
        image: &str,
        pod: &Pod,
        namespace: &str,
    ) -> Result<ImageConfig, LookupError>;
}

/// A source that never looks anything up.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLookup;

#[async_trait]
impl ImageConfigSource for NoLookup {
    async fn image_config(
        &self,
        _image: &str,
        _pod: &Pod,
        _namespace: &str,
    ) -> Result<ImageConfig, LookupError> {
        Err(LookupError::Disabled)
    }
}
