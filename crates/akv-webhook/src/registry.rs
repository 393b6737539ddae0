//! Where image configs come from, for containers that have no `command`.
//!
//! The admission path calls an [`ImageConfigSource`] between planning and mutating. This
//! build ships [`NoLookup`], which denies such pods with a message that says to set
//! `command`; a registry-backed source plugs in behind the same trait.

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
}

/// Reads the ENTRYPOINT and CMD of an image, with the pod's credentials where it has any.
#[async_trait]
pub trait ImageConfigSource: Send + Sync {
    async fn image_config(&self, image: &str, pod: &Pod) -> Result<ImageConfig, LookupError>;
}

/// A source that never looks anything up.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLookup;

#[async_trait]
impl ImageConfigSource for NoLookup {
    async fn image_config(&self, _image: &str, _pod: &Pod) -> Result<ImageConfig, LookupError> {
        Err(LookupError::Disabled)
    }
}
