//! mirrorhub's sync engine: exact mirrors of Git repositories.
//!
//! - Transfers run the git command line ([`transport`]): exact on every transport, protocol v2,
//!   the fastest syncs measured. The first copy of a repository is made with gix
//!   ([`first_copy`]), whose multi-threaded pack indexing is 1.4-2.6x as fast, whenever it
//!   can be sure of an exact copy; otherwise with `git clone`. git2 only reads local
//!   repositories ([`refs`]): before/after snapshots, the journal of ref changes, counts and
//!   HEAD.
//! - Every git process gets a hardened environment (nothing inherited, no prompts, credentials
//!   only through a helper scoped to the upstream's origin) and runs in its own process group
//!   under a deadline.
//! - Every http(s) connection goes through an in-process egress proxy ([`proxy`]) that applies
//!   the [`AddressPolicy`] to the address actually connected to, redirects included; git://
//!   addresses are resolved, checked and pinned before git runs.
//!
//! A sync first reads the upstream's ref advertisement in process ([`listing`]: smart HTTP
//! and git://, no process spawned) and compares it with the mirror's refs ([`freshness`]):
//! equal, the sync is a no-op and nothing else runs. Otherwise it is one `git fetch`: the
//! fetch's own ref advertisement, read back from git's packet trace ([`advert`]), gives the
//! upstream's HEAD, which the mirror follows. The upstream is listed by git only when that
//! fetch fails for a reason a listing can explain (every ref deleted upstream, a ref in the
//! way of a new one, no HEAD). A listing never moves a ref. Tips a sync overwrites
//! non-fast-forward or deletes are kept under backup refs ([`backup`]).

mod advert;
mod backup;
mod browse;
mod command;
mod error;
mod first_copy;
mod freshness;
mod listing;
mod pkt;
mod progress;
mod proxy;
mod push;
mod refs;
mod ssh;
mod transport;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mirrorhub_core::{
    AddressPolicy, Credentials, HostKey, RefChange, RefChangeKind, RefFilter, UpstreamUrl,
};
use rand::RngCore;
use tokio::time::Instant;

pub use backup::{BackupRef, BACKUP_PREFIX};
pub use browse::{CommitEntry, RefEntry, RepoContents};
pub use command::ProcessGroup;
pub use error::GitError;
pub use progress::{no_progress, Progress, ProgressFn};
pub use push::PushReport;
pub use ssh::SshAccess;

use advert::AdvertisedHead;
use first_copy::{Attempt, GixCopier};
use listing::ListingError;
use pkt::Advertised;
use proxy::EgressProxy;
use refs::{LocalState, RefMap};
use transport::{FetchOptions, GitCli, Remote, RemoteRefs, Transport};

/// How the engine runs git.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The git program: a name looked up in the standard PATH, or an absolute path.
    pub git_program: PathBuf,
    /// Which addresses the hub may connect to on a user's behalf.
    pub policy: AddressPolicy,
    /// The longest a whole clone or sync may take.
    pub timeout: Duration,
    /// The longest a ref listing (a probe, or a sync's listing after a failed fetch) may take.
    pub probe_timeout: Duration,
    /// An http(s) transfer slower than this many bytes per second for `low_speed_time` is
    /// aborted as stalled. 0 turns the check off.
    pub low_speed_limit: u32,
    /// Rounded to whole seconds (at least one).
    pub low_speed_time: Duration,
    /// Which program makes the first copy of a repository.
    pub first_copy: CopyEngine,
    /// The OpenSSH client for ssh:// upstreams (`ssh-keyscan` is looked up beside it).
    pub ssh_program: PathBuf,
    /// How long an SSH connection stays up after its last session for the next run that
    /// authenticates alike; zero connects anew for every run.
    pub ssh_connection_reuse: Duration,
}

/// What the engine logs in to an upstream with: http(s) credentials, or for ssh:// a key and
/// the pinned host keys. Each is used only with its own kind of URL.
#[derive(Debug, Clone, Copy, Default)]
pub struct Auth<'a> {
    pub basic: Option<&'a Credentials>,
    pub ssh: Option<SshAccess<'a>>,
}

impl<'a> From<Option<&'a Credentials>> for Auth<'a> {
    fn from(basic: Option<&'a Credentials>) -> Self {
        Self { basic, ssh: None }
    }
}

impl<'a> From<SshAccess<'a>> for Auth<'a> {
    fn from(ssh: SshAccess<'a>) -> Self {
        Self {
            basic: None,
            ssh: Some(ssh),
        }
    }
}

/// What makes a repository's first copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyEngine {
    /// gix when it can be sure of an exact copy, `git clone` otherwise.
    #[default]
    Gix,
    /// Always `git clone`.
    Git,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            git_program: PathBuf::from("git"),
            policy: AddressPolicy::default(),
            timeout: Duration::from_secs(3600),
            probe_timeout: Duration::from_secs(30),
            low_speed_limit: 1000,
            low_speed_time: Duration::from_secs(60),
            first_copy: CopyEngine::default(),
            ssh_program: PathBuf::from("ssh"),
            ssh_connection_reuse: Duration::from_secs(60),
        }
    }
}

/// What a probe found at an upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteInfo {
    /// The upstream's default branch, e.g. `refs/heads/main`, when it advertises one.
    pub head: Option<String>,
    pub branches: usize,
    pub tags: usize,
}

/// The branches, tags and HEAD of a local bare repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSummary {
    pub branches: usize,
    pub tags: usize,
    /// HEAD's target, e.g. `refs/heads/main` (the branch need not exist in an empty repo).
    pub head: Option<String>,
}

/// The branches and tags of a local repository at one moment, to compare a later state with
/// ([`GitEngine::changes_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefSnapshot(LocalState);

/// The outcome of a clone or sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Every ref that changed, in ref name order (all `created` for a clone).
    pub changes: Vec<RefChange>,
    pub branches: usize,
    pub tags: usize,
    pub head: Option<String>,
    /// What made the copy (a sync is always `git fetch`).
    pub engine: CopyEngine,
    /// The upstream was listed and equalled the mirror: nothing was fetched or written.
    pub noop: bool,
    /// How many refs differed from the upstream's when it was listed before the fetch (a
    /// HEAD to follow counts as one); `None` when the listing failed and git fetched as before.
    pub listed_behind: Option<usize>,
    /// Tips this sync overwrote non-fast-forward or deleted, kept under backup refs.
    pub backups: Vec<BackupRef>,
}

/// How a sync treats a mirror beyond making it equal to the upstream.
#[derive(Clone, Default)]
pub struct SyncOptions {
    /// Which branches and tags the mirror keeps; the rest are never fetched, and removed.
    pub filter: RefFilter,
    /// Keep the tips the sync overwrites non-fast-forward or deletes under backup refs.
    pub backups: bool,
    /// Told how many refs differ (see [`SyncReport::listed_behind`]) as soon as the upstream
    /// has been listed, also when the fetch then fails.
    pub on_listing: Option<Arc<dyn Fn(usize) + Send + Sync>>,
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("filter", &self.filter)
            .field("backups", &self.backups)
            .finish_non_exhaustive()
    }
}

/// A mirror's refs and how they compare with the upstream's: the first half of a sync
/// ([`GitEngine::list_for_sync`]). Nothing has been written.
pub struct SyncListing {
    repo: PathBuf,
    deadline: Instant,
    before: LocalState,
    /// `None` when the upstream could not be listed in process (git fetches as before).
    listed: Option<Advertised>,
    comparison: Option<freshness::Comparison>,
}

impl SyncListing {
    /// The sync's report when the upstream advertises exactly the mirror's refs and HEAD:
    /// there is nothing to fetch or write. `None` when anything differs, or the upstream
    /// could not be listed in process.
    pub fn unchanged(&self) -> Option<SyncReport> {
        self.comparison
            .as_ref()
            .filter(|c| c.is_empty())
            .map(|_| SyncReport {
                changes: Vec::new(),
                branches: self.before.branches(),
                tags: self.before.tags(),
                head: self.before.head.clone(),
                engine: CopyEngine::Git,
                noop: true,
                listed_behind: Some(0),
                backups: Vec::new(),
            })
    }
}

/// One request's credential of the engine's egress proxy. Its connections end when it drops.
pub struct EgressPass(proxy::Ticket);

impl EgressPass {
    /// `http://mirrorhub:<token>@127.0.0.1:<port>`: the proxy for one request.
    pub fn proxy_url(&self) -> &str {
        self.0.proxy_url()
    }

    /// Why the policy refused a connection made under this pass (a user-facing sentence).
    pub fn refused(&self) -> Option<String> {
        self.0.log().refused.map(|r| GitError::from(r).to_string())
    }

    /// Why the proxy could not connect under this pass (resolution or connection failure),
    /// when it answered a request with `502` itself: the target was never reached.
    pub fn unreachable(&self) -> Option<String> {
        self.0.log().unreachable
    }
}

/// The sync engine. Cheap to clone; the egress proxy stops when the last clone is dropped.
#[derive(Clone)]
pub struct GitEngine {
    inner: Arc<Inner>,
}

struct Inner {
    config: EngineConfig,
    cli: Arc<GitCli>,
    transport: Arc<dyn Transport>,
    /// Makes first copies when [`EngineConfig::first_copy`] asks for gix.
    gix: Option<GixCopier>,
    /// Keeps the private HOME and template directories alive.
    _private: tempfile::TempDir,
}

impl std::fmt::Debug for GitEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitEngine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl GitEngine {
    /// Starts the egress proxy and checks that git runs.
    pub async fn start(config: EngineConfig) -> Result<Self, GitError> {
        let private = tempfile::Builder::new()
            .prefix("mirrorhub-git-")
            .tempdir()?;
        transport::ensure_private_dirs(private.path())?;
        // Marks the directory as this process's, so a later engine can tell it from the
        // leftovers of a killed one (whose ssh key files it removes).
        std::fs::write(private.path().join("pid"), std::process::id().to_string())?;
        if let Some(tmp) = private.path().parent() {
            ssh::sweep_dead_engines(tmp, private.path());
        }
        let proxy = EgressProxy::start(config.policy.clone(), config.probe_timeout).await?;
        let cli = Arc::new(GitCli {
            program: config.git_program.clone(),
            policy: config.policy.clone(),
            proxy: Arc::new(proxy),
            private: private.path().to_path_buf(),
            probe_timeout: config.probe_timeout,
            low_speed_limit: config.low_speed_limit,
            low_speed_time: config.low_speed_time,
            ssh_program: config.ssh_program.clone(),
            ssh_connection_reuse: config.ssh_connection_reuse,
            http_capabilities: Default::default(),
        });
        let version = cli.version().await?;
        tracing::info!(git = %version, "git engine started");
        let transport: Arc<dyn Transport> = Arc::clone(&cli) as Arc<dyn Transport>;
        let gix = (config.first_copy == CopyEngine::Gix).then(|| GixCopier {
            cli: Arc::clone(&cli),
        });
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                cli,
                transport,
                gix,
                _private: private,
            }),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// A git command run on the local repository `repo` (its working directory), for serving
    /// it to a client (`upload-pack`): the hardened environment of every git run of the engine
    /// (nothing inherited, no user or system configuration, no hooks, no prompts, no network
    /// protocol allowed), in a process group of its own (hold a [`ProcessGroup`] of the
    /// spawned child to kill git and its helpers together), killed on drop. Add the arguments
    /// and stdio, then spawn.
    pub fn local_command(&self, repo: &Path) -> tokio::process::Command {
        let cli = &self.inner.cli;
        let mut cmd = tokio::process::Command::new(&cli.program);
        cmd.env_clear()
            .envs(cli.local_env())
            .current_dir(repo)
            .process_group(0)
            .kill_on_drop(true);
        cmd
    }

    fn remote<'a>(&self, url: &'a UpstreamUrl, auth: Auth<'a>, timeout: Duration) -> Remote<'a> {
        Remote {
            url,
            creds: auth.basic,
            ssh: auth.ssh,
            deadline: Instant::now() + timeout,
            timeout,
        }
    }

    /// Can we reach it, do the credentials work, is it a Git repository? No writes anywhere.
    #[tracing::instrument(skip_all, fields(url = %url))]
    pub async fn probe<'a>(
        &self,
        url: &'a UpstreamUrl,
        auth: impl Into<Auth<'a>>,
    ) -> Result<RemoteInfo, GitError> {
        let remote = self.remote(url, auth.into(), self.inner.config.probe_timeout);
        let listed = self.inner.transport.list(&remote).await?;
        if !listed.smart {
            // No refs, from a server that does not speak git's protocol: a web page.
            return Err(GitError::NotARepository);
        }
        let summary = LocalState {
            refs: listed.refs,
            head: listed.head,
        };
        Ok(RemoteInfo {
            branches: summary.branches(),
            tags: summary.tags(),
            head: summary.head,
        })
    }

    /// The host keys the SSH server of an `ssh://` URL offers ("detect host keys"), read from
    /// the address the policy allows. Trusts nothing and writes nothing.
    #[tracing::instrument(skip_all, fields(url = %url))]
    pub async fn scan_host_keys(&self, url: &UpstreamUrl) -> Result<Vec<HostKey>, GitError> {
        let remote = self.remote(url, Auth::default(), self.inner.config.probe_timeout);
        self.inner.cli.scan_host_keys(&remote).await
    }

    /// Initial full copy. `dest` must not exist. The clone is made in a temporary sibling
    /// directory (`<dest>.tmp-<random>`) and renamed into place only when complete, so a crash
    /// or a cancelled future never leaves a half repository at `dest`; leftovers of earlier
    /// attempts for the same `dest` are removed first.
    pub async fn clone_mirror<'a>(
        &self,
        url: &'a UpstreamUrl,
        auth: impl Into<Auth<'a>>,
        dest: &Path,
        progress: ProgressFn,
    ) -> Result<SyncReport, GitError> {
        self.clone_mirror_with(url, auth, dest, progress, &RefFilter::default())
            .await
    }

    /// [`GitEngine::clone_mirror`] of the branches and tags `filter` keeps only: the others
    /// are never fetched.
    #[tracing::instrument(skip_all, fields(url = %url, dest = %dest.display()))]
    pub async fn clone_mirror_with<'a>(
        &self,
        url: &'a UpstreamUrl,
        auth: impl Into<Auth<'a>>,
        dest: &Path,
        progress: ProgressFn,
        filter: &RefFilter,
    ) -> Result<SyncReport, GitError> {
        let remote = self.remote(url, auth.into(), self.inner.config.timeout);
        let dest = std::path::absolute(dest)?;
        let tmp = blocking({
            let dest = dest.clone();
            move || prepare_clone_dir(&dest)
        })
        .await?;
        let transport = &self.inner.transport;
        let copied = if filter.is_all() {
            self.copy(&remote, &tmp, progress).await
        } else {
            self.copy_filtered(&remote, &tmp, progress, filter).await
        };
        let checked = match copied {
            Err(e) => Err(e),
            Ok(engine) => {
                let tmp = tmp.clone();
                match blocking(move || refs::read_state(&tmp)).await {
                    // An empty clone: an empty repository (which speaks git's protocol), or a
                    // web page git took for an empty "dumb" one. Only a listing tells.
                    Ok(state) if state.refs.is_empty() => match transport.list(&remote).await {
                        Ok(l) if l.smart => Ok(engine),
                        Ok(_) => Err(GitError::NotARepository),
                        Err(e) => Err(e),
                    },
                    Ok(_) => Ok(engine),
                    Err(e) => Err(e),
                }
            }
        };
        let engine = match checked {
            Ok(engine) => engine,
            Err(e) => {
                let _ = blocking({
                    let tmp = tmp.clone();
                    move || remove_dir_if_exists(&tmp).map_err(GitError::from)
                })
                .await;
                return Err(e);
            }
        };
        let state = blocking(move || {
            refs::forget_origin(&tmp)?;
            let state = refs::read_state(&tmp)?;
            if dest.exists() {
                remove_dir_if_exists(&tmp)?;
                return Err(GitError::Io(already_exists(&dest)));
            }
            std::fs::rename(&tmp, &dest)?;
            if let Some(parent) = dest.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(state)
        })
        .await?;
        let changes = state
            .refs
            .iter()
            .map(|(name, oid)| RefChange {
                name: name.clone(),
                old: None,
                new: Some(oid.clone()),
                kind: RefChangeKind::Created,
            })
            .collect();
        tracing::info!(engine = ?engine, refs = state.refs.len(), "first copy made");
        Ok(SyncReport {
            changes,
            branches: state.branches(),
            tags: state.tags(),
            head: state.head,
            engine,
            noop: false,
            listed_behind: None,
            backups: Vec::new(),
        })
    }

    /// Makes the first copy of the refs `filter` keeps at `tmp` (which must not exist): an
    /// empty repository, then the filtered fetch of a sync.
    async fn copy_filtered(
        &self,
        remote: &Remote<'_>,
        tmp: &Path,
        progress: ProgressFn,
        filter: &RefFilter,
    ) -> Result<CopyEngine, GitError> {
        blocking({
            let tmp = tmp.to_path_buf();
            move || {
                git2::Repository::init_bare(&tmp)?;
                Ok(())
            }
        })
        .await?;
        let listed = match listing::list(&self.inner.cli, remote).await {
            Ok(advertised) => Some(advertised),
            Err(ListingError::Refused(e)) => return Err(e),
            Err(_) => None,
        };
        let head = self
            .fetch_filtered(
                remote,
                tmp,
                &LocalState::default(),
                listed,
                filter,
                progress,
            )
            .await?;
        if let Some(head) = head.filter(|h| h.starts_with("refs/heads/")) {
            let tmp = tmp.to_path_buf();
            blocking(move || refs::set_head(&tmp, &head)).await?;
        }
        Ok(CopyEngine::Git)
    }

    /// Makes the first copy at `tmp` (which must not exist): with gix when configured and it
    /// can, else with `git clone`.
    async fn copy(
        &self,
        remote: &Remote<'_>,
        tmp: &Path,
        progress: ProgressFn,
    ) -> Result<CopyEngine, GitError> {
        if let Some(gix) = &self.inner.gix {
            match gix.clone_bare(remote, tmp, Arc::clone(&progress)).await? {
                Attempt::Copied => return Ok(CopyEngine::Gix),
                Attempt::Fallback(why) => {
                    tracing::info!(why = %why, "gix could not make the first copy; using git clone");
                    blocking({
                        let tmp = tmp.to_path_buf();
                        move || remove_dir_if_exists(&tmp).map_err(GitError::from)
                    })
                    .await?;
                }
            }
        }
        self.inner
            .transport
            .clone_bare(remote, tmp, progress)
            .await?;
        Ok(CopyEngine::Git)
    }

    /// Makes `repo` exactly equal to the upstream: branches and tags created, moved and pruned
    /// as upstream, HEAD following the upstream's default branch. Requires that nothing else
    /// writes to `repo` meanwhile (the sync queue runs one sync per repository). Tips it
    /// overwrites non-fast-forward or deletes are kept under backup refs.
    pub async fn sync_mirror<'a>(
        &self,
        url: &'a UpstreamUrl,
        auth: impl Into<Auth<'a>>,
        repo: &Path,
        progress: ProgressFn,
    ) -> Result<SyncReport, GitError> {
        let options = SyncOptions {
            backups: true,
            ..SyncOptions::default()
        };
        self.sync_mirror_with(url, auth, repo, progress, &options)
            .await
    }

    /// [`GitEngine::sync_mirror`] with a ref filter, backups on or off, and a word as soon as
    /// the upstream has been listed.
    #[tracing::instrument(skip_all, fields(url = %url, repo = %repo.display()))]
    pub async fn sync_mirror_with<'a>(
        &self,
        url: &'a UpstreamUrl,
        auth: impl Into<Auth<'a>>,
        repo: &Path,
        progress: ProgressFn,
        options: &SyncOptions,
    ) -> Result<SyncReport, GitError> {
        let auth = auth.into();
        let listing = self.list_for_sync(url, auth, repo, options).await?;
        self.sync_listed(url, auth, listing, progress, options)
            .await
    }

    /// The first half of a sync, which writes nothing: the mirror's refs, and the upstream's
    /// advertisement read in process (over ssh:// by the one ssh process) to compare them with.
    /// [`SyncListing::unchanged`] then says whether there is anything to do at all;
    /// [`GitEngine::sync_listed`] does the rest. The sync's time limit starts here.
    pub async fn list_for_sync<'a>(
        &self,
        url: &'a UpstreamUrl,
        auth: impl Into<Auth<'a>>,
        repo: &Path,
        options: &SyncOptions,
    ) -> Result<SyncListing, GitError> {
        let remote = self.remote(url, auth.into(), self.inner.config.timeout);
        let repo = std::path::absolute(repo)?;
        let before = blocking({
            let repo = repo.clone();
            move || refs::read_state(&repo)
        })
        .await?;
        let listed = match listing::list(&self.inner.cli, &remote).await {
            Ok(advertised) => Some(advertised),
            Err(ListingError::Refused(e)) => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "the upstream could not be listed in process; fetching");
                None
            }
        };
        let comparison = listed
            .as_ref()
            .map(|advertised| freshness::compare(&before, advertised, &options.filter));
        if let (Some(comparison), Some(tell)) = (&comparison, &options.on_listing) {
            tell(comparison.behind());
        }
        Ok(SyncListing {
            repo,
            deadline: remote.deadline,
            before,
            listed,
            comparison,
        })
    }

    /// The rest of a sync after [`GitEngine::list_for_sync`]: nothing when the upstream
    /// equalled the mirror, HEAD followed when only it moved, otherwise git fetches (just the
    /// changed refs when the listing allows).
    #[tracing::instrument(skip_all, fields(url = %url, repo = %listing.repo.display()))]
    pub async fn sync_listed<'a>(
        &self,
        url: &'a UpstreamUrl,
        auth: impl Into<Auth<'a>>,
        listing: SyncListing,
        progress: ProgressFn,
        options: &SyncOptions,
    ) -> Result<SyncReport, GitError> {
        if let Some(report) = listing.unchanged() {
            return Ok(report);
        }
        let SyncListing {
            repo,
            deadline,
            before,
            listed,
            comparison,
        } = listing;
        let mut remote = self.remote(url, auth.into(), self.inner.config.timeout);
        remote.deadline = deadline;
        if let Some(comparison) = comparison.as_ref().filter(|c| c.differing.is_empty()) {
            // Only HEAD moved upstream: follow it, nothing to fetch.
            let head = comparison.head.clone();
            blocking({
                let repo = repo.clone();
                let head = head.clone();
                move || head.map_or(Ok(()), |h| refs::set_head(&repo, &h))
            })
            .await?;
            return Ok(SyncReport {
                changes: Vec::new(),
                branches: before.branches(),
                tags: before.tags(),
                head: head.or(before.head),
                engine: CopyEngine::Git,
                noop: false,
                listed_behind: Some(comparison.behind()),
                backups: Vec::new(),
            });
        }
        let listed_behind = comparison.as_ref().map(freshness::Comparison::behind);

        // The tips the listing says will be overwritten or deleted are saved before git
        // moves them, so a crash in between loses none; what the fetch really did settles
        // them afterwards.
        let now = chrono::Utc::now().timestamp();
        let (foretold, stamp) = blocking({
            let repo = repo.clone();
            let wanted = match (&listed, options.backups) {
                (Some(advertised), true) => {
                    Some(freshness::wanted(&advertised.refs, &options.filter))
                }
                _ => None,
            };
            let before = before.refs.clone();
            move || {
                refs::remove_leftovers(&repo)?;
                let foretold = match wanted {
                    Some(wanted) => refs::foretell_backups(&repo, &before, &wanted, now)?,
                    None => Vec::new(),
                };
                Ok((foretold, refs::stamp(&repo)?))
            }
        })
        .await?;

        // Only new and moved refs: fetch exactly those (git then lists just them, updates
        // just them, and HEAD comes from the listing). Deletions keep to `--prune`'s path.
        let narrow = listed
            .as_ref()
            .zip(comparison.as_ref())
            .is_some_and(|(a, c)| c.differing.iter().all(|name| a.refs.contains_key(name)));
        let fetched = if options.filter.is_all() && narrow {
            match self
                .fetch_filtered(
                    &remote,
                    &repo,
                    &before,
                    listed,
                    &options.filter,
                    Arc::clone(&progress),
                )
                .await
            {
                // A ref deleted upstream since the listing: git fetches it all as before.
                Err(e @ (GitError::Failed { .. } | GitError::NotARepository)) => {
                    tracing::debug!(error = %e, "the fetch of the changed refs failed; fetching every ref");
                    self.fetch_all(&remote, &repo, &before.refs, progress).await
                }
                fetched => fetched,
            }
        } else if options.filter.is_all() {
            self.fetch_all(&remote, &repo, &before.refs, progress).await
        } else {
            self.fetch_filtered(&remote, &repo, &before, listed, &options.filter, progress)
                .await
        };
        let head = match fetched {
            Ok(head) => head,
            Err(e) => {
                if !foretold.is_empty() {
                    // Keep only the backups of refs the failed run did move.
                    let _ = blocking({
                        let repo = repo.clone();
                        move || refs::drop_unneeded_backups(&repo, &foretold)
                    })
                    .await;
                }
                return Err(e);
            }
        };

        let head = head.filter(|h| h.starts_with("refs/heads/"));
        let read = blocking({
            let repo = repo.clone();
            let head = head.clone();
            move || {
                if let Some(head) = head {
                    refs::set_head(&repo, &head)?;
                }
                // git writes every ref update by renaming a new file into place: an unchanged
                // stamp means the refs read before are still the refs.
                if refs::stamp(&repo)? == stamp {
                    return Ok(None);
                }
                refs::read_state(&repo).map(Some)
            }
        })
        .await?;
        let after = match read {
            Some(state) => state,
            None => LocalState {
                refs: before.refs.clone(),
                head: head.or(before.head),
            },
        };
        let (changes, backups) = if after.refs == before.refs && foretold.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            blocking({
                let repo = repo.clone();
                let (old, new) = (before.refs, after.refs.clone());
                let keep_backups = options.backups;
                move || {
                    let changes = refs::journal(&repo, &old, &new)?;
                    let backups = if keep_backups {
                        refs::settle_backups(&repo, foretold, &changes, now)?
                    } else {
                        Vec::new()
                    };
                    Ok((changes, backups))
                }
            })
            .await?
        };
        Ok(SyncReport {
            changes,
            branches: after.branches(),
            tags: after.tags(),
            head: after.head,
            engine: CopyEngine::Git,
            noop: false,
            listed_behind,
            backups,
        })
    }

    /// Every branch and tag, in one `git fetch --prune` as git makes it; its own ref
    /// advertisement says where the upstream's HEAD points. Only when it fails for a reason
    /// a listing can explain (an emptied upstream, a ref in the way of a new one, no HEAD) is
    /// the upstream listed by git. Returns the upstream's HEAD.
    async fn fetch_all(
        &self,
        remote: &Remote<'_>,
        repo: &Path,
        before: &RefMap,
        progress: ProgressFn,
    ) -> Result<Option<String>, GitError> {
        let transport = &self.inner.transport;
        let options = FetchOptions {
            // A fetch that asks for HEAD fails before touching a ref when the advertisement
            // has no HEAD, and an empty advertisement never has one: a git server's (smart) or
            // a web page's (git cannot read one). Only a "dumb" HTTP server with a detached
            // HEAD and no refs would empty the mirror here, which is then what it advertises.
            // So the keep-nonempty hook, which git runs twice per fetch, is left to the
            // careful path.
            keep_nonempty: 0,
            follow_head: true,
            only: Vec::new(),
        };
        match transport
            .fetch(remote, repo, Arc::clone(&progress), options)
            .await
        {
            Ok(fetched) => Ok(match fetched.head {
                AdvertisedHead::Symref(target) => Some(target),
                AdvertisedHead::Detached => None,
                AdvertisedHead::NotSeen => transport.list(remote).await?.head,
            }),
            Err(e @ (GitError::Failed { .. } | GitError::NotARepository)) => {
                tracing::debug!(error = %e, "the fetch failed; listing the upstream to see why");
                self.sync_by_listing(remote, repo, before, progress).await
            }
            Err(e) => Err(e),
        }
    }

    /// The refs a filter keeps: refs the mirror must no longer hold (deleted upstream, or
    /// outside the filter) are deleted first, in one transaction; then exactly the wanted
    /// refs that differ are fetched, in another. Refs outside the filter are never fetched.
    /// Also the fetch of an unfiltered mirror whose listing shows only new and moved refs
    /// (nothing to delete then). Returns the upstream's HEAD.
    async fn fetch_filtered(
        &self,
        remote: &Remote<'_>,
        repo: &Path,
        before: &LocalState,
        listed: Option<Advertised>,
        filter: &RefFilter,
        progress: ProgressFn,
    ) -> Result<Option<String>, GitError> {
        let transport = &self.inner.transport;
        let (refs, head, smart) = match listed {
            Some(advertised) => {
                let head = match advertised.head {
                    // Not a dangling one (see `freshness::compare`).
                    AdvertisedHead::Symref(target) if advertised.refs.contains_key(&target) => {
                        Some(target)
                    }
                    _ => None,
                };
                (advertised.refs, head, true)
            }
            None => {
                let listed = transport.list(remote).await?;
                (listed.refs, listed.head, listed.smart)
            }
        };
        if refs.is_empty() && !before.refs.is_empty() && !smart {
            // A web page at the repository's URL lists nothing: never empty a mirror on that.
            return Err(GitError::NotARepository);
        }
        let wanted = freshness::wanted(&refs, filter);
        let gone: Vec<(String, String)> = before
            .refs
            .iter()
            .filter(|(name, _)| !wanted.contains_key(*name))
            .map(|(n, o)| (n.clone(), o.clone()))
            .collect();
        if !gone.is_empty() {
            self.inner.cli.delete_refs(repo, &gone).await?;
        }
        let only: Vec<String> = wanted
            .iter()
            .filter(|(name, oid)| before.refs.get(*name) != Some(*oid))
            .map(|(name, _)| name.clone())
            .collect();
        if !only.is_empty() {
            let options = FetchOptions {
                keep_nonempty: 0,
                follow_head: false,
                only,
            };
            transport.fetch(remote, repo, progress, options).await?;
        }
        Ok(head)
    }

    /// The careful sync, after a plain fetch failed: list the upstream first, then do what the
    /// listing calls for. Returns the upstream's HEAD.
    async fn sync_by_listing(
        &self,
        remote: &Remote<'_>,
        repo: &Path,
        before: &RefMap,
        progress: ProgressFn,
    ) -> Result<Option<String>, GitError> {
        let transport = &self.inner.transport;
        let listed: RemoteRefs = transport.list(remote).await?;
        blocking({
            let repo = repo.to_path_buf();
            move || Ok(refs::remove_leftovers(&repo)?)
        })
        .await?;
        let emptied = listed.refs.is_empty() && !before.is_empty();
        let conflicts = refs::df_conflicts(before, &listed.refs);
        if listed.refs == *before {
            // Nothing to fetch (the upstream's HEAD is unborn or detached, say).
        } else if emptied && !listed.smart {
            // An empty listing from a server that does not speak git's protocol is what a web
            // page at the repository's URL looks like: never empty a mirror on that.
            return Err(GitError::NotARepository);
        } else if emptied {
            // Every branch and tag deleted upstream, as a git server says.
            tracing::info!(
                refs = before.len(),
                "the upstream is empty: emptying the mirror"
            );
            let all: Vec<(String, String)> = before.clone().into_iter().collect();
            self.inner.cli.delete_refs(repo, &all).await?;
        } else {
            // A ref that must go is in the way of a new one (`a` against `a/b`): git cannot do
            // both in one transaction, so those refs (deleted upstream anyway) go first.
            let keep_nonempty = if conflicts.is_empty() {
                before.len()
            } else {
                tracing::info!(
                    refs = conflicts.len(),
                    "deleting refs that block new upstream refs"
                );
                self.inner.cli.delete_refs(repo, &conflicts).await?;
                0
            };
            let options = FetchOptions {
                keep_nonempty,
                follow_head: false,
                only: Vec::new(),
            };
            transport.fetch(remote, repo, progress, options).await?;
        }
        Ok(listed.head)
    }

    /// A credential of the egress proxy for one HTTP request the hub makes itself (Git LFS):
    /// a client using [`EgressPass::proxy_url`] as its proxy reaches only addresses the policy
    /// allows, checked where it connects, redirects included.
    pub fn egress_pass(&self) -> EgressPass {
        EgressPass(self.inner.cli.proxy.ticket())
    }

    /// Stops every git process still working in `repo`: after a hub was killed mid-sync, its
    /// git (in its own process group) outlives it and would write the repository beside the
    /// next sync. Call before syncing a repository whose previous sync was interrupted. Reads
    /// `/proc`; does nothing where there is none.
    pub async fn stop_stray_git(&self, repo: &Path) {
        let repo = repo.to_path_buf();
        let _ = tokio::task::spawn_blocking(move || refs::stop_stray_git(&repo)).await;
    }

    /// Writes reachability bitmaps for the local repository at `repo` (a multi-pack index with
    /// a bitmap, over the packs it has; nothing is repacked). A copy made by a fetch has none,
    /// and without them every clone from the hub walks the whole history to count objects.
    /// Call it with no other job on the repository (a killed earlier run's lock is removed).
    pub async fn write_bitmaps(&self, repo: &Path) -> Result<(), GitError> {
        match std::fs::remove_file(repo.join("objects/pack/multi-pack-index.lock")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        self.run_local(repo, &["multi-pack-index", "write", "--bitmap"])
            .await
    }

    /// Writes the commits of the local repository at `repo` that its commit-graph lacks into a
    /// new layer of it (`commit-graph write --reachable --split`): after a sync, milliseconds;
    /// git merges layers as the chain grows. With a commit-graph, git reads commits from one
    /// indexed file instead of parsing objects, which makes every later fetch (its
    /// negotiation and connectivity check) and every clone from the hub cheaper. Safe beside
    /// readers and a running sync (git renames finished files into place); a lock left by a
    /// crash is removed once it is an hour old.
    pub async fn write_commit_graph(&self, repo: &Path) -> Result<(), GitError> {
        let lock = repo.join("objects/info/commit-graphs/commit-graph-chain.lock");
        let stale = std::fs::metadata(&lock)
            .and_then(|m| m.modified())
            .is_ok_and(|at| at.elapsed().unwrap_or_default() > Duration::from_secs(3600));
        if stale {
            tracing::warn!(lock = %lock.display(), "removing a commit-graph lock left by a crash");
            match std::fs::remove_file(&lock) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        self.run_local(
            repo,
            &[
                "commit-graph",
                "write",
                "--reachable",
                "--split",
                "--no-progress",
            ],
        )
        .await
    }

    /// Runs a local git command on `repo` to completion (killed with its helpers after the
    /// engine's timeout).
    async fn run_local(&self, repo: &Path, args: &[&str]) -> Result<(), GitError> {
        let mut cmd = self.local_command(repo);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn()?;
        let mut group = ProcessGroup::of(&child);
        let after = self.inner.config.timeout;
        let out = tokio::time::timeout(after, child.wait_with_output())
            .await
            .map_err(|_| GitError::Timeout { after })??;
        group.disarm();
        if out.status.success() {
            Ok(())
        } else {
            Err(GitError::Failed {
                detail: format!(
                    "git {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            })
        }
    }

    /// Whether the local repository at `repo` has the ref `name` pointing at `target` (`None`:
    /// has no such ref). False when the repository cannot be read (not copied yet).
    pub async fn has_ref_at(&self, repo: &Path, name: &str, target: Option<&str>) -> bool {
        let (repo, name, target) = (
            repo.to_path_buf(),
            name.to_owned(),
            target.map(str::to_owned),
        );
        blocking(move || {
            let repo = refs::open(&repo)?;
            let found = match repo.find_reference(&name) {
                Ok(r) => r.target().map(|id| id.to_string()),
                Err(e) if e.code() == git2::ErrorCode::NotFound => None,
                Err(e) => return Err(GitError::from(e)),
            };
            Ok(found == target)
        })
        .await
        .unwrap_or(false)
    }

    /// Reads the branches and tags of the local repository at `repo` now.
    pub async fn snapshot(&self, repo: &Path) -> Result<RefSnapshot, GitError> {
        let repo = repo.to_path_buf();
        Ok(RefSnapshot(
            blocking(move || refs::read_state(&repo)).await?,
        ))
    }

    /// What changed in the local repository at `repo` since `before` (a push to it): the ref
    /// changes in ref name order, and its branches, tags and HEAD now.
    pub async fn changes_since(
        &self,
        repo: &Path,
        before: &RefSnapshot,
    ) -> Result<(Vec<RefChange>, RepoSummary), GitError> {
        let repo = repo.to_path_buf();
        let before = before.0.refs.clone();
        blocking(move || {
            let after = refs::read_state(&repo)?;
            let changes = refs::journal(&repo, &before, &after.refs)?;
            let summary = RepoSummary {
                branches: after.branches(),
                tags: after.tags(),
                head: after.head,
            };
            Ok((changes, summary))
        })
        .await
    }

    /// The branches and tags (full names, sorted) whose object differs between the upstream
    /// and the local bare repository at `repo`, or that exist on one side only, counting only
    /// the upstream's refs that `filter` keeps. Empty when the mirror equals the upstream.
    /// Reads the upstream's listing only: no transfer.
    #[tracing::instrument(skip_all, fields(url = %url))]
    pub async fn differences<'a>(
        &self,
        url: &'a UpstreamUrl,
        auth: impl Into<Auth<'a>>,
        repo: &Path,
        filter: &RefFilter,
    ) -> Result<Vec<String>, GitError> {
        let remote = self.remote(url, auth.into(), self.inner.config.probe_timeout);
        let listed = self.list_upstream(&remote).await?;
        let repo = repo.to_path_buf();
        let local = blocking(move || refs::read_state(&repo)).await?;
        Ok(freshness::compare(&local, &listed, filter).differing)
    }

    /// The scheduler's cheap check: lists the upstream (in process for http(s) and git://, no
    /// transfer) and counts the refs of the mirror at `repo` that a sync would change (a HEAD
    /// to follow counts as one). Writes nothing.
    #[tracing::instrument(skip_all, fields(url = %url))]
    pub async fn behind<'a>(
        &self,
        url: &'a UpstreamUrl,
        auth: impl Into<Auth<'a>>,
        repo: &Path,
        filter: &RefFilter,
    ) -> Result<usize, GitError> {
        let remote = self.remote(url, auth.into(), self.inner.config.probe_timeout);
        let listed = self.list_upstream(&remote).await?;
        let repo = repo.to_path_buf();
        let local = blocking(move || refs::read_state(&repo)).await?;
        Ok(freshness::compare(&local, &listed, filter).behind())
    }

    /// The upstream's branches, tags and HEAD: in process where the scheme allows, else (and
    /// when that fails for any reason but the address policy) by git, whose errors say best
    /// what is wrong with an upstream.
    async fn list_upstream(&self, remote: &Remote<'_>) -> Result<Advertised, GitError> {
        match listing::list(&self.inner.cli, remote).await {
            Ok(advertised) => return Ok(advertised),
            Err(ListingError::Refused(e)) => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "the upstream could not be listed in process; asking git")
            }
        }
        let listed = self.inner.transport.list(remote).await?;
        if !listed.smart {
            return Err(GitError::NotARepository);
        }
        Ok(Advertised {
            refs: listed.refs,
            head: listed
                .head
                .map_or(AdvertisedHead::NotSeen, AdvertisedHead::Symref),
        })
    }

    /// The backup refs of the local repository at `repo` (see [`BackupRef`]).
    pub async fn backup_refs(&self, repo: &Path) -> Result<Vec<BackupRef>, GitError> {
        let repo = repo.to_path_buf();
        blocking(move || backup::list(&refs::open(&repo)?)).await
    }

    /// Removes a backup ref of the local repository at `repo`, if it still points at `old`.
    pub async fn delete_backup_ref(
        &self,
        repo: &Path,
        backup_ref: &str,
        old: &str,
    ) -> Result<(), GitError> {
        let (repo, backup_ref, old) = (repo.to_path_buf(), backup_ref.to_owned(), old.to_owned());
        blocking(move || backup::remove(&refs::open(&repo)?, &backup_ref, &old)).await
    }

    /// Creates the branch `refs/heads/<branch>` at `oid` in the local repository at `repo`;
    /// `Ok(false)` when a branch of that name exists (nothing is changed). The name must be
    /// one git accepts.
    pub async fn create_branch(
        &self,
        repo: &Path,
        branch: &str,
        oid: &str,
    ) -> Result<bool, GitError> {
        let name = format!("refs/heads/{branch}");
        if !git2::Reference::is_valid_name(&name) {
            return Err(GitError::failed(format!(
                "{branch:?} is not a valid branch name"
            )));
        }
        let (repo, oid) = (repo.to_path_buf(), oid.to_owned());
        blocking(move || {
            let handle = refs::open(&repo)?;
            let oid = git2::Oid::from_str(&oid)?;
            let created =
                match handle.reference(&name, oid, false, "mirrorhub: restored from a backup") {
                    Ok(_) => Ok(true),
                    Err(e) if e.code() == git2::ErrorCode::Exists => Ok(false),
                    Err(e) => Err(e.into()),
                };
            created
        })
        .await
    }

    /// `git bundle create - <backup_ref>` in the local repository at `repo`, in the engine's
    /// hardened environment (see [`GitEngine::local_command`]): its stdout is a bundle of
    /// the backup ref's history, to stream to whoever asked.
    pub fn bundle_command(&self, repo: &Path, backup_ref: &str) -> tokio::process::Command {
        let mut cmd = self.local_command(repo);
        cmd.args(["bundle", "create", "--quiet", "-", backup_ref]);
        cmd
    }

    /// What a repository page shows: at most `max_refs` branches and tags (most recently
    /// committed first) and `max_commits` commits of the default branch.
    pub async fn contents(
        &self,
        repo: &Path,
        max_refs: usize,
        max_commits: usize,
    ) -> Result<RepoContents, GitError> {
        let repo = repo.to_path_buf();
        blocking(move || browse::read_contents(&repo, max_refs, max_commits)).await
    }

    /// Reads branch/tag counts and HEAD of a local bare repository.
    pub async fn inspect(&self, repo: &Path) -> Result<RepoSummary, GitError> {
        let repo = repo.to_path_buf();
        let state = blocking(move || refs::read_state(&repo)).await?;
        Ok(RepoSummary {
            branches: state.branches(),
            tags: state.tags(),
            head: state.head,
        })
    }
}

async fn blocking<T, F>(f: F) -> Result<T, GitError>
where
    F: FnOnce() -> Result<T, GitError> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| {
            GitError::Io(std::io::Error::other(format!(
                "a background task failed: {e}"
            )))
        })?
}

fn already_exists(dest: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!(
            "{} exists already: a clone needs a new path",
            dest.display()
        ),
    )
}

fn remove_dir_if_exists(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The temporary clone directory's name prefix for `dest`: `<file name>.tmp-`.
fn tmp_prefix(dest: &Path) -> Result<String, GitError> {
    let name = dest.file_name().ok_or_else(|| {
        GitError::Io(std::io::Error::other(format!(
            "{} names no directory",
            dest.display()
        )))
    })?;
    Ok(format!("{}.tmp-", name.to_string_lossy()))
}

/// Checks `dest`, creates its parent, removes leftovers of earlier attempts and returns a fresh
/// temporary path next to it.
fn prepare_clone_dir(dest: &Path) -> Result<PathBuf, GitError> {
    if dest.exists() {
        return Err(GitError::Io(already_exists(dest)));
    }
    let parent = dest
        .parent()
        .ok_or_else(|| GitError::Io(already_exists(dest)))?;
    std::fs::create_dir_all(parent)?;
    let prefix = tmp_prefix(dest)?;
    for entry in std::fs::read_dir(parent)?.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(&prefix) {
            tracing::info!(path = %entry.path().display(), "removing the leftover of an interrupted clone");
            // A git of a hub that was killed may still be writing there: the new clone goes to
            // a fresh path anyway, so a leftover that cannot be removed yet waits for next time.
            if let Err(e) = remove_dir_if_exists(&entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "the leftover of an interrupted clone could not be removed yet");
            }
        }
    }
    let mut bytes = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(parent.join(format!("{prefix}{suffix}")))
}
