//! mirrorhub's domain: repository URLs and the address policy, names, modes, durations and
//! the stable error codes. This crate does no I/O (no network, no files, no database), so
//! every rule here can be tested as plain data.

#[macro_use]
pub mod model;
pub mod access;
pub mod duration;
pub mod error;
pub mod names;
pub mod notify;
pub mod policy;
pub mod push_mirror;
pub mod ref_filter;
pub mod repo_key;
pub mod schedule;
pub mod ssh;
pub mod url;

pub use access::{Access, AccountKind, Actor};
pub use duration::SyncInterval;
pub use error::ErrorCode;
pub use model::{
    Mode, Outcome, RefChange, RefChangeKind, RepoState, RepoStatus, Trigger, Visibility,
};
pub use names::{NameError, OwnerName, RepoName};
pub use policy::{AddressPolicy, AllowEntry, Refusal};
pub use ref_filter::{RefFilter, RefFilterError, RefFilterSpec};
pub use ssh::{known_hosts_text, parse_known_hosts, HostKey, KnownHostsError};
pub use url::{Credentials, Scheme, UpstreamUrl, UrlError};
