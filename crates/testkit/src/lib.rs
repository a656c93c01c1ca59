//! Real git servers and repositories for mirrorhub's end-to-end tests and benchmarks.
//!
//! - [`GitDaemon`]: `git daemon` serving a directory over git://.
//! - [`HttpGitServer`]: `git http-backend` behind a small HTTP/1.1 server, optionally with basic
//!   auth (git's smart HTTP, as forges serve it).
//! - [`NamespaceServer`]: the repository listings of an organization, group, user or workspace
//!   as GitHub, GitLab, Gitea and Bitbucket answer them (each one's pagination, tokens, rate
//!   limits, GitHub App installation tokens), from a table the test changes; [`tiny_repos`]
//!   and [`tiny_repo_aliases`] make thousands of tiny real repositories for its clone URLs.
//! - [`GateProxy`]: a TCP proxy that holds new connections while its gate is closed (an
//!   upstream exactly as slow as a test needs).
//! - [`SshServer`]: a real OpenSSH `sshd` serving a directory over ssh:// (git only, through
//!   `git-shell`), with its own host key and `authorized_keys`; [`SshKeyPair`]: client keys.
//! - [`LfsServer`]: a Git LFS server (batch API, basic transfer) that the real `git-lfs` client
//!   uses, optionally in front of a git server, with separate object storage, and with faults
//!   on request ([`LfsFault`]); [`LfsHome`] and [`lfs_git_command`]: git-lfs isolated from the
//!   machine's config.
//! - [`SmtpServer`]: a plain SMTP server that records the messages it accepts (and can refuse
//!   recipients), for the hub's notification e-mail.
//! - [`git`], [`init_bare`], [`Scratch`], [`for_each_ref`], [`RefSnapshot`]: building and
//!   comparing repositories with a clean, deterministic git environment.
//! - [`synthetic_upstream`]: a large deterministic repository for benchmarks, and the upstream
//!   changes ([`add_commit`], [`rewrite_branch`], [`delete_branch`], [`delete_tag`]) a sync
//!   benchmark measures.
//!
//! Everything here panics on failure: it is for tests.

mod daemon;
pub mod forge_api;
pub mod forge_namespace;
mod gate;
mod http;
mod lfs;
mod repo;
mod smtp;
mod ssh;
mod synthetic;

pub use daemon::GitDaemon;
pub use forge_api::{ForgeApiServer, RecordedRequest, Reply};
pub use forge_namespace::{Fault, NamespaceForge, NamespaceServer, RepoSpec};
pub use gate::GateProxy;
pub use http::{HttpGitServer, RequestRecord};
pub use lfs::{LfsFault, LfsOptions, LfsRequest, LfsServer, LFS_MEDIA_TYPE};
pub use repo::{
    clean_git_env, for_each_ref, git, git_command, git_with_stdin, init_bare, lfs_git_command,
    noise, tiny_repo_aliases, tiny_repos, try_git, LfsHome, RefSnapshot, Scratch, AUTHOR_EMAIL,
    AUTHOR_NAME, FIXED_DATE,
};
pub use smtp::{SmtpMessage, SmtpServer};
pub use ssh::{SshKeyPair, SshServer};
pub use synthetic::{
    add_commit, delete_branch, delete_tag, rewrite_branch, synthetic_upstream, Spec, Synthetic,
    MUTATION_FILE,
};
