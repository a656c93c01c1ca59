//! What the pages show, computed once from the hub's records: labels, relative times, short
//! object ids. Templates only lay these out.

use chrono::{DateTime, Utc};
use mirrorhub_core::{Mode, Outcome, RepoState, RepoStatus, SyncInterval};
use mirrorhub_git::{CommitEntry, RefEntry, RepoContents};
use mirrorhub_hub::HubError;
use mirrorhub_store::{Repo, SyncRun, WebhookHook};
use secrecy::ExposeSecret;

/// The parts of the page frame that change: the signed-in user's CSRF token (`None` when
/// signed out) and a one-line notice after an action.
#[derive(Default)]
pub struct Layout {
    pub csrf: Option<String>,
    pub notice: Option<&'static str>,
    /// Who is signed in, as the header shows it.
    pub who: Option<String>,
}

/// Error messages by form field, shown next to the field.
#[derive(Default)]
pub struct FieldErrors(Vec<(&'static str, String)>);

impl FieldErrors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    /// Puts a hub error next to its field when it names one of `fields`; otherwise returns
    /// the message for the top of the form.
    pub fn from_error(error: &HubError, fields: &[&'static str]) -> (Self, Option<String>) {
        let message = user_message(error);
        // A path into the body (`refs.include[1]`) goes next to its field (`refs`).
        let field = error.field().and_then(|f| {
            fields
                .iter()
                .find(|known| {
                    **known == f
                        || f.strip_prefix(**known)
                            .is_some_and(|rest| rest.starts_with('.'))
                })
                .copied()
        });
        match field {
            Some(field) => (Self(vec![(field, message)]), None),
            None => (Self::default(), Some(message)),
        }
    }
}

/// What a person reads for a hub error: its message, or a generic line when the cause is on
/// the hub's side (logged, never shown).
pub fn user_message(error: &HubError) -> String {
    if error.is_internal() {
        tracing::error!(error = ?error, "a page request failed on the hub's side");
        "The hub failed to do this; the operator can find the cause in its log. Try again in a moment.".to_owned()
    } else {
        error.to_string()
    }
}

/// A point in time, as a person reads it and as a machine does.
pub struct When {
    pub iso: String,
    /// e.g. `3 minutes ago`, `in 5 hours`.
    pub relative: String,
}

impl When {
    pub fn new(t: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        Self {
            iso: t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            relative: relative(t, now),
        }
    }

    fn opt(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<Self> {
        t.map(|t| Self::new(t, now))
    }
}

/// "just now", "3 minutes ago", "in 2 hours", "5 days ago".
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let (future, secs) = (secs < 0, secs.unsigned_abs());
    if secs < 45 {
        return if future { "in a moment" } else { "just now" }.to_owned();
    }
    let (n, unit) = match secs {
        s if s < 3_600 => ((s + 30) / 60, "minute"),
        s if s < 86_400 => ((s + 1_800) / 3_600, "hour"),
        s if s < 86_400 * 60 => ((s + 43_200) / 86_400, "day"),
        s if s < 86_400 * 730 => ((s + 86_400 * 15) / (86_400 * 30), "month"),
        s => ((s + 86_400 * 182) / (86_400 * 365), "year"),
    };
    let n = n.max(1);
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

pub struct Progress {
    pub phase: String,
    pub percent: i32,
}

/// A repository's status as the list and the page show it.
pub struct StateView {
    /// CSS class suffix: the status word (`cloning`, `syncing`, `synced`, `stale`, `failed`,
    /// `paused`).
    pub key: &'static str,
    /// The status word, as the API, the CLI and the bot say it.
    pub label: String,
    /// The tooltip: why, in a few words.
    pub detail: String,
    pub progress: Option<Progress>,
}

/// The hub's status word (`Hub::statuses`), with a few words on why.
fn state_of(repo: &Repo, status: RepoStatus) -> StateView {
    let detail = match status {
        RepoStatus::Cloning => "the first copy is queued or running".to_owned(),
        RepoStatus::Syncing => "a sync is running".to_owned(),
        RepoStatus::Synced if repo.mode == Mode::Migrate => {
            "the hub is the primary: it is never synced from an upstream".to_owned()
        }
        RepoStatus::Synced => "equal to the upstream at the last sync".to_owned(),
        RepoStatus::Stale => "no successful sync within its interval".to_owned(),
        RepoStatus::Failed if repo.state == RepoState::Failed => {
            repo.last_error_message.clone().unwrap_or_default()
        }
        RepoStatus::Failed => format!(
            "the last sync failed: {}",
            repo.last_error_message.as_deref().unwrap_or_default()
        ),
        RepoStatus::Paused => repo.paused_reason.clone().unwrap_or_default(),
    };
    StateView {
        key: status.as_str(),
        label: status.as_str().to_owned(),
        detail,
        progress: repo
            .progress_percent
            .filter(|_| status == RepoStatus::Cloning)
            .map(|percent| Progress {
                phase: repo.progress_phase.clone().unwrap_or_default(),
                percent,
            }),
    }
}

/// A row of the repository list.
pub struct RepoRow {
    pub owner: String,
    pub name: String,
    /// `/{owner}/{name}`.
    pub path: String,
    pub mode_key: &'static str,
    pub mode_label: &'static str,
    pub state: StateView,
    pub last_sync: Option<When>,
    pub branches: i64,
    pub tags: i64,
    pub can_sync: bool,
    /// A mirror's freshness: in sync, or behind by how many refs since when.
    pub freshness: Option<super::fidelity::FreshnessView>,
}

fn mode_view(mode: Mode) -> (&'static str, &'static str) {
    match mode {
        Mode::Mirror => ("mirror", "mirror"),
        Mode::Migrate => ("primary", "primary"),
    }
}

impl RepoRow {
    pub fn new(repo: &Repo, status: RepoStatus, now: DateTime<Utc>) -> Self {
        let (mode_key, mode_label) = mode_view(repo.mode);
        Self {
            owner: repo.owner.clone(),
            name: repo.name.clone(),
            path: format!("/{}/{}", repo.owner, repo.name),
            mode_key,
            mode_label,
            state: state_of(repo, status),
            last_sync: When::opt(repo.last_sync_at, now),
            branches: repo.branches,
            tags: repo.tags,
            can_sync: repo.mode == Mode::Mirror,
            freshness: None,
        }
    }
}

/// Everything the repository page shows about the repository itself.
pub struct RepoView {
    pub owner: String,
    pub name: String,
    pub path: String,
    pub mode_key: &'static str,
    pub mode_label: &'static str,
    pub is_mirror: bool,
    pub can_sync: bool,
    pub visibility: &'static str,
    pub description: String,
    pub clone_url: String,
    pub upstream_url: String,
    pub has_credentials: bool,
    pub state: StateView,
    pub last_sync: Option<When>,
    pub last_success: Option<When>,
    pub next_sync: Option<When>,
    pub sync_interval: String,
    pub branches: i64,
    pub tags: i64,
    /// (code, message)
    pub last_error: Option<(String, String)>,
    pub paused_reason: Option<String>,
    pub webhook_url: String,
    pub webhook_secret: Option<String>,
    pub webhook_connected: bool,
    pub webhook_last_delivery: Option<When>,
    /// A sentence on the webhook the hub created on the upstream itself, if it tried.
    pub webhook_registration: Option<String>,
    /// The hub created the webhook on the upstream itself.
    pub webhook_registered: bool,
    /// Git LFS objects, when LFS is on or the repository has any.
    pub lfs: Option<LfsView>,
    /// A mirror's freshness: in sync, or behind by how many refs since when.
    pub freshness: Option<super::fidelity::FreshnessView>,
    /// Since when the webhook is silent (the upstream changed without a delivery).
    pub webhook_silent: Option<When>,
    /// The ref filter, one pattern per line (empty: every branch and tag).
    pub ref_include: String,
    pub ref_exclude: String,
}

/// A repository's Git LFS objects, as the page shows them.
pub struct LfsView {
    pub enabled: bool,
    pub objects: i64,
    /// e.g. `4.2 MB`.
    pub size: String,
    pub missing: i64,
    pub last_error: Option<String>,
}

impl LfsView {
    pub fn new(repo: &Repo, counts: mirrorhub_store::LfsCounts) -> Option<Self> {
        (repo.lfs.enabled || counts.objects > 0).then(|| Self {
            enabled: repo.lfs.enabled,
            objects: counts.objects,
            size: bytes_text(counts.bytes),
            missing: counts.missing,
            last_error: repo.lfs.last_error.clone(),
        })
    }
}

/// A byte count as people read it: `812 bytes`, `4.2 MB`, `1.3 GB`.
pub fn bytes_text(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b < 1000.0 {
        format!("{bytes} bytes")
    } else if b < 1e6 {
        format!("{:.1} kB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} GB", b / 1e9)
    }
}

pub struct RepoViewInput<'a> {
    pub repo: &'a Repo,
    /// The hub's status word for it.
    pub status: RepoStatus,
    pub public_url: &'a str,
    pub webhook_url: String,
    pub now: DateTime<Utc>,
}

impl RepoView {
    pub fn new(input: RepoViewInput<'_>) -> Self {
        let RepoViewInput {
            repo,
            status,
            public_url,
            webhook_url,
            now,
        } = input;
        let row = RepoRow::new(repo, status, now);
        let is_mirror = repo.mode == Mode::Mirror;
        Self {
            clone_url: format!("{public_url}{}.git", row.path),
            owner: row.owner,
            name: row.name,
            path: row.path,
            mode_key: row.mode_key,
            mode_label: row.mode_label,
            is_mirror,
            can_sync: row.can_sync,
            visibility: repo.visibility.as_str(),
            description: repo.description.clone(),
            upstream_url: repo.upstream_url.clone(),
            has_credentials: repo.credentials.is_some(),
            state: row.state,
            last_sync: row.last_sync,
            last_success: When::opt(repo.last_success_at, now),
            next_sync: When::opt(repo.next_sync_at.filter(|_| is_mirror), now),
            sync_interval: interval_text(repo.sync_interval_secs),
            branches: repo.branches,
            tags: repo.tags,
            last_error: repo
                .last_error_code
                .clone()
                .zip(repo.last_error_message.clone())
                .filter(|_| repo.consecutive_failures > 0 || repo.state == RepoState::Failed),
            paused_reason: repo.paused_reason.clone(),
            webhook_url,
            webhook_secret: repo
                .webhook_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            webhook_connected: repo.webhook.last_delivery_at.is_some(),
            webhook_last_delivery: When::opt(repo.webhook.last_delivery_at, now),
            webhook_registered: matches!(repo.webhook.hook, WebhookHook::Registered { .. }),
            webhook_registration: match &repo.webhook.hook {
                WebhookHook::None => None,
                WebhookHook::Registered { forge, .. } => Some(format!(
                    "The hub added this webhook on {forge} itself when the repository was created: nothing to do."
                )),
                WebhookHook::Failed(why) => Some(format!(
                    "The hub could not add it on the upstream itself ({why}): add it by hand as below."
                )),
            },
            lfs: None,
            freshness: None,
            webhook_silent: None,
            ref_include: String::new(),
            ref_exclude: String::new(),
        }
    }
}

pub struct CommitView {
    pub id: String,
    pub short_id: String,
    pub summary: String,
    pub author: String,
    pub time: When,
}

impl CommitView {
    fn new(c: &CommitEntry, now: DateTime<Utc>) -> Self {
        Self {
            short_id: short(&c.id),
            id: c.id.clone(),
            summary: c.summary.clone(),
            author: c.author.clone(),
            time: When::new(c.time, now),
        }
    }
}

pub struct RefView {
    pub name: String,
    pub is_default: bool,
    pub time: Option<When>,
}

pub struct ContentsView {
    pub default_branch: Option<String>,
    pub branches: Vec<RefView>,
    pub tags: Vec<RefView>,
    pub branch_count: usize,
    pub tag_count: usize,
    pub commits: Vec<CommitView>,
}

impl ContentsView {
    pub fn new(c: &RepoContents, now: DateTime<Utc>) -> Self {
        let refs = |list: &[RefEntry]| -> Vec<RefView> {
            list.iter()
                .map(|r| RefView {
                    is_default: c.default_branch.as_deref() == Some(r.name.as_str()),
                    name: r.name.clone(),
                    time: r.commit.as_ref().map(|c| When::new(c.time, now)),
                })
                .collect()
        };
        Self {
            default_branch: c.default_branch.clone(),
            branches: refs(&c.branches),
            tags: refs(&c.tags),
            branch_count: c.branch_count,
            tag_count: c.tag_count,
            commits: c.commits.iter().map(|x| CommitView::new(x, now)).collect(),
        }
    }
}

pub struct RefChangeView {
    pub name: String,
    pub kind: String,
    pub old: String,
    pub old_short: String,
    pub new: String,
    pub new_short: String,
}

pub struct RunView {
    pub id: i64,
    pub outcome: &'static str,
    pub outcome_key: &'static str,
    pub trigger: &'static str,
    pub started: When,
    pub duration: Option<String>,
    pub error: Option<(String, String)>,
    /// What went wrong beside a successful run (LFS objects not fetched yet).
    pub warnings: Option<String>,
    pub changes: Vec<RefChangeView>,
}

impl RunView {
    pub fn new(run: &SyncRun, now: DateTime<Utc>) -> Self {
        let id = |oid: &Option<String>| oid.clone().unwrap_or_else(|| "-".to_owned());
        Self {
            id: run.id,
            outcome: match run.outcome {
                Outcome::Unchanged => "up to date",
                other => other.as_str(),
            },
            outcome_key: run.outcome.as_str(),
            trigger: match run.trigger {
                mirrorhub_core::Trigger::Create => "first copy",
                mirrorhub_core::Trigger::Manual => "sync button or API",
                mirrorhub_core::Trigger::Schedule => "scheduled",
                mirrorhub_core::Trigger::Webhook => "push webhook",
                mirrorhub_core::Trigger::Bot => "comment command",
                mirrorhub_core::Trigger::Recovery => "resumed after a restart",
                mirrorhub_core::Trigger::Promote => "promotion to primary",
                mirrorhub_core::Trigger::Push => "git push",
            },
            started: When::new(run.started_at, now),
            duration: run.finished_at.map(|f| {
                let ms = (f - run.started_at).num_milliseconds().max(0);
                if ms < 1000 {
                    format!("{ms} ms")
                } else {
                    format!("{:.1} s", ms as f64 / 1000.0)
                }
            }),
            error: run.error_code.clone().zip(run.error_message.clone()),
            warnings: run.warnings.clone(),
            changes: run
                .ref_changes
                .iter()
                .map(|c| RefChangeView {
                    name: c.name.clone(),
                    kind: c.kind.as_str().replace('_', "-"),
                    old_short: c.old.as_deref().map(short).unwrap_or_else(|| "-".into()),
                    new_short: c.new.as_deref().map(short).unwrap_or_else(|| "-".into()),
                    old: id(&c.old),
                    new: id(&c.new),
                })
                .collect(),
        }
    }
}

/// A sync interval as people type it: `24h`, `90m`.
pub fn interval_text(secs: i64) -> String {
    SyncInterval::from_secs(secs.max(0) as u64)
        .map(|i| i.to_string())
        .unwrap_or_else(|| format!("{secs}s"))
}

fn short(id: &str) -> String {
    id.chars().take(10).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let ago = |s: i64| relative(now - chrono::TimeDelta::seconds(s), now);
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(60), "1 minute ago");
        assert_eq!(ago(180), "3 minutes ago");
        assert_eq!(ago(3 * 3600), "3 hours ago");
        assert_eq!(ago(86_400), "1 day ago");
        assert_eq!(ago(-7200), "in 2 hours");
        assert_eq!(ago(-10), "in a moment");
        assert_eq!(ago(86_400 * 90), "3 months ago");
        assert_eq!(ago(86_400 * 1200), "3 years ago");
    }
}
