//! akv-webhook: the admission side of akv-injector.
#![forbid(unsafe_code)]
pub mod admission;
