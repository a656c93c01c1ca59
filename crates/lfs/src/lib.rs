//! Git LFS for mirrorhub.
//!
//! - [`Pointer`]s are read out of the blobs a sync brought ([`scan`]): only blobs of new
//!   commits, found with git's own object walk.
//! - [`ObjectStore`] keeps every object once, content-addressed, written only after its
//!   SHA-256 and size were checked.
//! - [`Fetcher`] downloads the objects a mirror lacks from its upstream's batch API (basic
//!   transfer), every connection through the hub's egress proxy (the address policy, checked
//!   on the address actually connected to, redirects included), the mirror's credentials only
//!   to the upstream's own origin.
//! - [`batch`] is the wire format, with the checks an upstream's answer must pass.
//! - [`ActionSigner`] makes the short-lived tokens the hub's own batch answers hand to
//!   clients for object downloads and uploads.

#![forbid(unsafe_code)]

pub mod batch;
mod client;
mod endpoint;
mod objects;
mod pointer;
pub mod scan;
mod token;

use mirrorhub_core::ErrorCode;

pub use client::{
    Egress, EgressPass, FetchOptions, FetchOutcome, Fetcher, ObjectFailure, Upstream,
};
pub use endpoint::{default_endpoint, same_origin};
pub use objects::{ObjectStore, ObjectWriter};
pub use pointer::{Oid, Pointer, MAX_POINTER_SIZE, POINTER_PREFIX};
pub use token::ActionSigner;

/// What went wrong with LFS. Each has an [`ErrorCode`] a user sees.
#[derive(Debug, thiserror::Error)]
pub enum LfsError {
    /// The content does not match the object's id or size: refused, never stored.
    #[error("LFS object {oid} failed verification: {detail}")]
    ObjectInvalid { oid: Oid, detail: String },
    #[error("LFS object {oid} has {size} bytes, over the hub's limit of {limit} (MIRRORHUB_LFS_MAX_OBJECT_BYTES)")]
    TooLarge { oid: Oid, size: u64, limit: u64 },
    /// The upstream's batch answer cannot be used.
    #[error("{0}")]
    BatchInvalid(String),
    /// The upstream does not have the object (its per-object error, or 404 on download).
    #[error("the upstream's LFS server does not have object {oid}: {message}")]
    ObjectMissing { oid: Oid, message: String },
    #[error("{0}")]
    AuthFailed(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("the hub could not write an LFS object")]
    Io(#[from] std::io::Error),
}

impl LfsError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::ObjectInvalid { .. } => ErrorCode::LfsObjectInvalid,
            Self::TooLarge { .. } => ErrorCode::LfsObjectTooLarge,
            Self::BatchInvalid(_) => ErrorCode::LfsBatchInvalid,
            Self::ObjectMissing { .. } => ErrorCode::LfsObjectMissing,
            Self::AuthFailed(_) => ErrorCode::UpstreamAuthFailed,
            Self::NotFound(_) => ErrorCode::UpstreamNotFound,
            Self::Refused(_) => ErrorCode::UrlNotAllowed,
            Self::Unreachable(_) => ErrorCode::UpstreamUnreachable,
            Self::Timeout(_) => ErrorCode::Timeout,
            Self::Io(_) => ErrorCode::Internal,
        }
    }
}
