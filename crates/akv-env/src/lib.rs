//! akv-env
