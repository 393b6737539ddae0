//! Why a pod is refused. Each message names what is wrong, where, and what to do.

use akv_core::{ReferenceError, VaultError};
use thiserror::Error;

use super::annotations::AnnotationError;
use crate::registry::LookupError;

/// A reason to refuse a pod, shown to the user by `kubectl`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Denial {
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    #[error("{place}: {source}")]
    BadReference {
        place: String,
        source: ReferenceError,
    },
    #[error("{place}: '{reference}' names no vault and the pod has no akv-injector.io/vault annotation: write akv://VAULT/NAME or add the annotation")]
    NoVault { place: String, reference: String },
    #[error("{place}: {source}")]
    VaultNotAllowed { place: String, source: VaultError },
    #[error("annotation akv-injector.io/vault: {0}")]
    DefaultVaultNotAllowed(VaultError),
    #[error("this pod runs on Windows ({0}), and akv-injector supports only Linux containers so far: its in-pod binary is a static Linux program. Keep Key Vault references out of Windows pods, or opt the pod out with the label akv-injector.io/inject: \"false\"")]
    Windows(&'static str),
    #[error("annotation akv-injector.io/refresh: the pod has restartPolicy: Never, so a container that akv-env stops after a rotation would never start again with the new values. Use refresh only in pods that are restarted (Deployments, StatefulSets, DaemonSets; restartPolicy Always or OnFailure), or remove the annotation")]
    RefreshNeverRestarts,
    #[error("annotation akv-injector.io/refresh: init container '{container}' is injected, and refresh applies only to app containers (an init container runs to completion once). Leave it out of akv-injector.io/containers or remove the annotation")]
    RefreshInitContainer { container: String },
    #[error("annotation akv-injector.io/containers names '{name}', which is not a container of this pod (it has: {available})")]
    UnknownContainer { name: String, available: String },
    #[error("container '{container}' sets {var} itself; AKV_INJECTOR_* variables are set by the webhook from the pod's akv-injector.io/* annotations: remove it and use the annotations")]
    ReservedEnv { container: String, var: String },
    #[error("annotation {}: {container} already mounts volume '{volume}' at {mount_path}, which overlaps the files path {files_path} where akv-injector mounts its writable volume akv-injector-files: set akv-injector.io/files-path to a directory the container does not mount", super::files::PATH_ANNOTATION)]
    FilesPathTaken {
        container: String,
        volume: String,
        mount_path: String,
        files_path: String,
    },
    #[error("the pod already has {what}, which akv-injector needs for itself: rename it")]
    NameTaken { what: String },
    #[error("container '{container}' has no command, and the entrypoint of image '{image}' could not be read from its registry: {reason}. Set `command` in the container spec to avoid the registry lookup")]
    NoEntrypoint {
        container: String,
        image: String,
        reason: LookupError,
    },
    #[error("container '{container}' has no command, and the entrypoint of image '' could not be read from its registry: the container has no image. Set `command` in the container spec to avoid the registry lookup")]
    NoImage { container: String },
    #[error("container '{container}' has no command, and image '{image}' has neither ENTRYPOINT nor CMD: set `command` in the container spec")]
    EmptyImageArgv { container: String, image: String },
    #[error("annotation akv-injector.io/auth: service-principal, but no injected container can have the service principal's variables: set AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH to a mounted certificate), AZURE_CLIENT_ID and AZURE_TENANT_ID in the container's env (valueFrom.secretKeyRef from your Secret), or take them with envFrom; the client and tenant ids may also come from the akv-injector.io/client-id and akv-injector.io/tenant-id annotations")]
    NoServicePrincipalCredentials,
    #[error("annotations akv-injector.io/client-id.<VAULT> need akv-injector.io/auth: workload-identity or managed-identity: a service principal's secret or certificate belongs to one app registration")]
    PerVaultServicePrincipal,
    #[error("annotation akv-injector.io/auth: managed-identity is not allowed by this webhook: every pod on a node can use the node's managed identity. Use workload identity, or ask the operator to start akv-webhook with --allow-managed-identity (AKV_WEBHOOK_ALLOW_MANAGED_IDENTITY=true)")]
    ManagedIdentityNotAllowed,
    #[error("injecting this pod would make it larger than Kubernetes can store: the pod's review is {object_bytes} bytes and the patch would add up to {patch_bytes} bytes ({containers} injected containers, {env} akv-injector.io/env.* annotations), over etcd's limit of {max} bytes (1.5 MiB) per object. Inject fewer containers (akv-injector.io/containers) or declare fewer env.* annotations", max = super::cost::MAX_OBJECT_BYTES)]
    TooLarge {
        object_bytes: usize,
        patch_bytes: usize,
        containers: usize,
        env: usize,
    },
}
