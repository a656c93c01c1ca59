//! The API's resources. Field names are the published contract.

use chrono::{DateTime, Utc};
use mirrorhub_core::SyncInterval;
use mirrorhub_hub::{CreateRepo, Statuses, UpdateRepo};
use mirrorhub_store::{Delivery, Repo, SyncRun, WebhookHook};
use poem_openapi::Object;
use secrecy::ExposeSecret;

/// What the seed's import form asks for.
#[derive(Object)]
pub struct CreateRepoBody {
    /// The Git server address: an http://, https://, git:// or ssh:// URL, or scp-like
    /// `user@host:path`.
    pub url: String,
    /// Username for the upstream, when it needs one (defaults to `git` when only a token is given).
    pub username: Option<String>,
    /// Token or password for the upstream. Stored encrypted; never shown again.
    pub token: Option<String>,
    /// The hub owner (user or organization) the repository is created under.
    pub owner: String,
    /// The repository's name on the hub; defaults to the last segment of the URL's path.
    pub name: Option<String>,
    /// `public` or `private` (default).
    pub visibility: Option<String>,
    pub description: Option<String>,
    /// `mirror` (keep following the upstream) or `migrate` (copy once; the hub becomes the primary).
    pub mode: Option<String>,
    /// How often the scheduler syncs a mirror, e.g. `24h` (default), `90m`.
    pub sync_interval: Option<String>,
    /// SSH upstreams: a deploy key of the owner's, made with `POST /api/v1/ssh-keys`.
    pub ssh_key_id: Option<i64>,
    /// SSH upstreams: an OpenSSH private key to store for this repository (encrypted; never
    /// shown again).
    pub ssh_private_key: Option<String>,
    /// The uploaded private key's passphrase, when it has one (used once, never stored).
    pub ssh_key_passphrase: Option<String>,
    /// SSH upstreams: the host keys to pin, as OpenSSH known_hosts lines. Without it, the keys
    /// the server shows at creation are pinned and returned in `host_keys`.
    pub known_hosts: Option<String>,
    /// Mirror the upstream's Git LFS objects (default true); `false` copies pointer files only.
    pub lfs: Option<bool>,
    /// The upstream's LFS endpoint (`…/info/lfs`), when it is not where git-lfs would find it
    /// (the `.lfsconfig` of the default branch, else `<url>/info/lfs`).
    pub lfs_url: Option<String>,
    /// Which branches and tags to mirror (default: all of them).
    pub refs: Option<RefFilterBody>,
}

/// Which branches and tags a mirror keeps. A ref is kept when it matches an `include`
/// pattern (or there are none) and no `exclude` pattern. Patterns are globs (`main`,
/// `release/*`; `*` stops at `/`, `**` does not) matched against the short name (`main` for
/// `refs/heads/main` or `refs/tags/main`), or against the full name when they start with
/// `refs/` (`refs/tags/tmp/*`); or regular expressions prefixed `re:` (`re:v[0-9]+`), which
/// must match a whole name. Refs outside the filter are never fetched, and removed from the
/// mirror when the filter narrows.
#[derive(Object, Default)]
pub struct RefFilterBody {
    #[oai(default)]
    pub include: Vec<String>,
    #[oai(default)]
    pub exclude: Vec<String>,
}

impl From<RefFilterBody> for mirrorhub_core::RefFilterSpec {
    fn from(b: RefFilterBody) -> Self {
        Self {
            include: b.include,
            exclude: b.exclude,
        }
    }
}

impl From<mirrorhub_core::RefFilterSpec> for RefFilterBody {
    fn from(s: mirrorhub_core::RefFilterSpec) -> Self {
        Self {
            include: s.include,
            exclude: s.exclude,
        }
    }
}

/// How far a mirror is behind its upstream, as last seen.
#[derive(Object)]
pub struct BehindResource {
    /// Branches and tags that differ from the upstream's (a default branch to follow counts
    /// as one); 0: in sync.
    pub refs: i64,
    /// When that was seen: the upstream's listing, or the end of the last successful sync.
    pub checked_at: DateTime<Utc>,
    /// The first check that found it behind, while it still is (null when in sync).
    pub since: Option<DateTime<Utc>>,
}

impl From<mirrorhub_hub::Behind> for BehindResource {
    fn from(b: mirrorhub_hub::Behind) -> Self {
        Self {
            refs: b.refs,
            checked_at: b.checked_at,
            since: b.since,
        }
    }
}

impl From<CreateRepoBody> for CreateRepo {
    fn from(b: CreateRepoBody) -> Self {
        CreateRepo {
            url: b.url,
            username: b.username,
            token: b.token,
            owner: b.owner,
            name: b.name,
            visibility: b.visibility,
            description: b.description,
            mode: b.mode,
            sync_interval: b.sync_interval,
            ssh_key_id: b.ssh_key_id,
            ssh_private_key: b.ssh_private_key,
            ssh_key_passphrase: b.ssh_key_passphrase,
            known_hosts: b.known_hosts,
            lfs: b.lfs,
            lfs_url: b.lfs_url,
            refs: b.refs.map(Into::into),
        }
    }
}

/// A change of settings; absent fields stay as they are. Any change resumes a paused mirror.
#[derive(Object)]
pub struct UpdateRepoBody {
    /// Username for new upstream credentials.
    pub username: Option<String>,
    /// New token or password for the upstream; checked against it before it is stored.
    pub token: Option<String>,
    /// Forget the stored upstream credentials.
    #[oai(default)]
    pub remove_credentials: bool,
    /// e.g. `24h`, `90m`.
    pub sync_interval: Option<String>,
    pub description: Option<String>,
    /// `public` or `private`.
    pub visibility: Option<String>,
    /// SSH upstreams: reach the upstream with this deploy key of the owner's from now on.
    pub ssh_key_id: Option<i64>,
    /// SSH upstreams: store this OpenSSH private key and use it from now on.
    pub ssh_private_key: Option<String>,
    pub ssh_key_passphrase: Option<String>,
    /// SSH upstreams: pin these host keys (known_hosts lines) instead, e.g. to accept a server's
    /// new key after `host_key_mismatch`. Resumes a mirror paused for it.
    pub known_hosts: Option<String>,
    /// Turn LFS mirroring on or off.
    pub lfs: Option<bool>,
    /// The upstream's LFS endpoint; an empty string goes back to finding it.
    pub lfs_url: Option<String>,
    /// A new ref filter (replaces the old one; `{}` mirrors every branch and tag again). A
    /// narrower filter removes the refs it leaves out at the sync it queues.
    pub refs: Option<RefFilterBody>,
}

impl From<UpdateRepoBody> for UpdateRepo {
    fn from(b: UpdateRepoBody) -> Self {
        UpdateRepo {
            username: b.username,
            token: b.token,
            remove_credentials: b.remove_credentials,
            sync_interval: b.sync_interval,
            description: b.description,
            visibility: b.visibility,
            ssh_key_id: b.ssh_key_id,
            ssh_private_key: b.ssh_private_key,
            ssh_key_passphrase: b.ssh_key_passphrase,
            known_hosts: b.known_hosts,
            lfs: b.lfs,
            lfs_url: b.lfs_url,
            refs: b.refs.map(Into::into),
        }
    }
}

#[derive(Object)]
pub struct ProgressResource {
    /// What git is doing, e.g. `receiving objects`.
    pub phase: String,
    pub percent: i32,
}

#[derive(Object)]
pub struct LastError {
    pub code: String,
    pub message: String,
}

/// A mirrored or migrated repository.
#[derive(Object)]
pub struct RepoResource {
    pub owner: String,
    pub name: String,
    /// `mirror` or `migrate`.
    pub mode: String,
    /// `public` or `private`.
    pub visibility: String,
    pub description: String,
    /// The upstream's address, never with credentials.
    pub upstream_url: String,
    /// Whether credentials for the upstream are stored (they are never shown).
    pub has_credentials: bool,
    /// SSH upstreams: the deploy key the hub connects with (`/api/v1/ssh-keys/{id}`), or null.
    pub ssh_key_id: Option<i64>,
    /// SSH upstreams: the pinned host keys. Every connection checks the server against these
    /// only; a server showing another key fails with `host_key_mismatch` until a PATCH of
    /// `known_hosts` accepts it. Empty for other upstreams.
    pub host_keys: Vec<super::ssh::HostKeyResource>,
    /// Where to clone the repository from the hub.
    pub clone_url: String,
    /// What the repository is doing now, the same word the web UI, the CLI, the bot and the
    /// metrics say: `cloning` (the first copy is queued or running), `syncing` (a later sync is
    /// running), `synced` (the last sync succeeded within the interval; a primary once copied),
    /// `stale` (the last success is older than the interval plus the operator's grace),
    /// `failed` (the last sync failed; retries are coming) or `paused` (scheduled syncs stopped
    /// after repeated permanent failures; `paused_reason` says why). Filter lists with
    /// `?status=`.
    pub status: String,
    /// The first copy's state: `cloning`, `ready` (a full copy exists) or `failed` (the first
    /// copy failed). It stays `ready` when later syncs fail or the mirror is paused: watch
    /// `status` for that.
    pub state: String,
    /// Progress of the running initial copy, or null.
    pub progress: Option<ProgressResource>,
    /// The default branch, e.g. `refs/heads/main`.
    pub head: Option<String>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// When the scheduler syncs it next (null for migrated repositories).
    pub next_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<LastError>,
    pub consecutive_failures: i32,
    pub branches: i64,
    pub tags: i64,
    /// e.g. `24h`.
    pub sync_interval: String,
    /// True when a mirror's last success is older than its interval plus the operator's grace period.
    pub stale: bool,
    /// Why scheduled syncs stopped (repeated permanent failures), or null. A manual sync or a
    /// settings change resumes them.
    pub paused_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Where the upstream sends push webhooks for this repository, and with which secret.
    pub webhook: WebhookResource,
    /// Git LFS objects of the repository.
    pub lfs: LfsResource,
    /// Which branches and tags are mirrored (empty lists: all of them).
    pub refs: RefFilterBody,
    /// How far a mirror is behind its upstream, as the last listing (or successful sync) saw
    /// it; null for primaries and mirrors not copied yet.
    pub behind: Option<BehindResource>,
}

/// A repository's Git LFS objects.
#[derive(Object)]
pub struct LfsResource {
    /// Whether syncs mirror LFS objects.
    pub enabled: bool,
    /// The upstream LFS endpoint set for this repository, or null (found from the upstream).
    pub url: Option<String>,
    /// Objects the repository's refs point to.
    pub objects: i64,
    /// Bytes of those the hub holds.
    pub bytes: i64,
    /// Objects the hub could not fetch yet (retried by every sync); clones get a 404 for each.
    pub missing: i64,
    /// Why objects are missing, or null.
    pub last_error: Option<String>,
}

impl LfsResource {
    pub fn new(r: &Repo, counts: mirrorhub_store::LfsCounts) -> Self {
        Self {
            enabled: r.lfs.enabled,
            url: r.lfs.url.clone(),
            objects: counts.objects,
            bytes: counts.bytes,
            missing: counts.missing,
            last_error: r.lfs.last_error.clone(),
        }
    }
}

/// A repository's push webhook.
#[derive(Object)]
pub struct WebhookResource {
    /// Paste into the upstream's webhook settings (payload URL). Any forge's format works.
    pub url: String,
    /// The webhook secret (GitLab: the secret token). Shown only to whoever administers the
    /// repository (admin role or owner, with an admin-scoped token).
    pub secret: Option<String>,
    /// Whether a delivery (a ping or a push) has arrived and passed verification.
    pub connected: bool,
    pub last_delivery_at: Option<DateTime<Utc>>,
    /// The forge that sent the last delivery, e.g. `github`, `gitlab`, `gitea`, `forgejo`,
    /// `bitbucket-cloud`, `bitbucket-server`, `generic`.
    pub last_forge: Option<String>,
    /// `registered` (the hub created it on the upstream), `failed` (it tried; see
    /// `registration_error`) or `manual` (add it by hand).
    pub registration: String,
    /// Why the hub could not create the webhook on the upstream.
    pub registration_error: Option<String>,
    /// The upstream changed without a delivery: the webhook seems broken, and the hub polls
    /// every `MIRRORHUB_SILENCE_CHECK` until a delivery arrives again.
    pub silent: bool,
    /// Since when it is silent.
    pub silent_since: Option<DateTime<Utc>>,
}

impl WebhookResource {
    fn new(r: &Repo, url: String, show_secret: bool) -> Self {
        let (registration, registration_error) = match &r.webhook.hook {
            WebhookHook::None => ("manual", None),
            WebhookHook::Registered { .. } => ("registered", None),
            WebhookHook::Failed(e) => ("failed", Some(e.clone())),
        };
        WebhookResource {
            url,
            secret: r
                .webhook_secret
                .as_ref()
                .filter(|_| show_secret)
                .map(|s| s.expose_secret().to_owned()),
            connected: r.webhook.last_delivery_at.is_some(),
            last_delivery_at: r.webhook.last_delivery_at,
            last_forge: r.webhook.last_forge.clone(),
            registration: registration.to_owned(),
            registration_error,
            silent: false,
            silent_since: None,
        }
    }
}

/// One webhook delivery as the hub handled it.
#[derive(Object)]
pub struct DeliveryResource {
    pub received_at: DateTime<Utc>,
    pub forge: String,
    /// The forge's event name, e.g. `push`, `Push Hook`, `repo:refs_changed`, `ping`.
    pub event: String,
    pub delivery_id: Option<String>,
    /// What was done, e.g. `sync queued`, `connected`, `ignored: ...`.
    pub result: String,
}

impl From<Delivery> for DeliveryResource {
    fn from(d: Delivery) -> Self {
        DeliveryResource {
            received_at: d.received_at,
            forge: d.forge,
            event: d.event,
            delivery_id: d.delivery_id,
            result: d.result,
        }
    }
}

impl RepoResource {
    /// `show_secret`: whether the caller administers the repository (only they see its webhook
    /// secret).
    pub fn new(
        r: &Repo,
        public_url: &str,
        webhook_url: String,
        statuses: &Statuses,
        show_secret: bool,
    ) -> Self {
        let progress = match (&r.progress_phase, r.progress_percent) {
            (Some(phase), Some(percent)) => Some(ProgressResource {
                phase: phase.clone(),
                percent,
            }),
            _ => None,
        };
        let last_error = match (&r.last_error_code, &r.last_error_message) {
            (Some(code), message) => Some(LastError {
                code: code.clone(),
                message: message.clone().unwrap_or_default(),
            }),
            _ => None,
        };
        let sync_interval = SyncInterval::from_secs(r.sync_interval_secs.max(1) as u64)
            .unwrap_or(SyncInterval::DEFAULT)
            .to_string();
        RepoResource {
            owner: r.owner.clone(),
            name: r.name.clone(),
            mode: r.mode.to_string(),
            visibility: r.visibility.to_string(),
            description: r.description.clone(),
            upstream_url: r.upstream_url.clone(),
            has_credentials: r.credentials.is_some(),
            ssh_key_id: r.ssh_key_id,
            host_keys: mirrorhub_hub::pinned_host_keys(r)
                .iter()
                .map(super::ssh::HostKeyResource::from)
                .collect(),
            clone_url: format!("{public_url}/{}/{}.git", r.owner, r.name),
            status: statuses.of(r).to_string(),
            state: r.state.to_string(),
            progress,
            head: r.head_ref.clone(),
            last_sync_at: r.last_sync_at,
            last_success_at: r.last_success_at,
            next_sync_at: r.next_sync_at,
            last_error,
            consecutive_failures: r.consecutive_failures,
            branches: r.branches,
            tags: r.tags,
            sync_interval,
            stale: statuses.is_stale(r),
            paused_reason: r.paused_reason.clone(),
            created_at: r.created_at,
            webhook: WebhookResource::new(r, webhook_url, show_secret),
            lfs: LfsResource::new(r, mirrorhub_store::LfsCounts::default()),
            refs: RefFilterBody::default(),
            behind: None,
        }
    }
}

#[derive(Object)]
pub struct RefChangeResource {
    /// Full ref name, e.g. `refs/heads/main`.
    #[oai(rename = "ref")]
    pub ref_name: String,
    /// Object id before (null when created).
    pub old: Option<String>,
    /// Object id after (null when deleted).
    pub new: Option<String>,
    /// `created`, `deleted`, `fast_forward` or `forced`.
    pub kind: String,
    /// For a forced or deleted ref: the backup that keeps the old tip
    /// (`GET …/backups`, `POST …/backups/{id}/restore`, `GET …/backups/{id}/bundle`).
    pub backup_id: Option<i64>,
}

/// One sync run and its journal.
#[derive(Object)]
pub struct SyncRunResource {
    pub id: i64,
    /// `create`, `manual`, `schedule`, `webhook`, `bot` or `recovery`.
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `success`, `unchanged` or `failed`.
    pub outcome: String,
    pub error: Option<LastError>,
    pub ref_changes: Vec<RefChangeResource>,
    /// What went wrong beside a successful run, e.g. `lfs_missing: 2 (first: <oid>
    /// (lfs_object_invalid), …)`: LFS objects that could not be fetched yet.
    pub warnings: Option<String>,
}

impl From<SyncRun> for SyncRunResource {
    fn from(run: SyncRun) -> Self {
        let error = run.error_code.map(|code| LastError {
            code,
            message: run.error_message.unwrap_or_default(),
        });
        SyncRunResource {
            id: run.id,
            trigger: run.trigger.to_string(),
            started_at: run.started_at,
            finished_at: run.finished_at,
            outcome: run.outcome.to_string(),
            error,
            warnings: run.warnings,
            ref_changes: run
                .ref_changes
                .into_iter()
                .map(|c| RefChangeResource {
                    ref_name: c.name,
                    old: c.old,
                    new: c.new,
                    kind: c.kind.to_string(),
                    backup_id: None,
                })
                .collect(),
        }
    }
}
