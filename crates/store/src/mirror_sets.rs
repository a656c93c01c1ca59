//! Mirror sets: a namespace on a forge whose repositories are all mirrored, and what the set
//! knows of each of them. The listing itself is the hub's; the store keeps the sets, leases a
//! due listing to one process at a time (like a sync job), and records each repository's
//! place in its set by the forge's stable id.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mirrorhub_core::{Credentials, Mode};

use crate::StoreError;

/// A set to record. Everything is validated by the hub before it gets here.
#[derive(Debug, Clone)]
pub struct NewMirrorSet {
    /// `github`, `gitlab`, `gitea`, `bitbucket`.
    pub forge: String,
    pub api_url: String,
    pub namespace: String,
    pub owner: String,
    /// Sealed at rest; never read back except by [`MirrorSetStore::mirror_set_credentials`].
    pub credentials: Option<Credentials>,
    pub installation_id: Option<i64>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub archived: bool,
    pub forks: bool,
    /// `as-upstream`, `private`, `public`.
    pub visibility: String,
    pub mode: Mode,
    pub sync_interval_secs: Option<i64>,
    pub list_interval_secs: i64,
    pub follow_renames: bool,
}

/// A recorded set. Carries whether it has credentials, never them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorSet {
    pub id: i64,
    pub forge: String,
    pub api_url: String,
    pub namespace: String,
    pub owner: String,
    pub has_credentials: bool,
    pub installation_id: Option<i64>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub archived: bool,
    pub forks: bool,
    pub visibility: String,
    pub mode: Mode,
    pub sync_interval_secs: Option<i64>,
    pub list_interval_secs: i64,
    pub follow_renames: bool,
    pub next_list_at: DateTime<Utc>,
    /// Whether a listing holds the set now (its lease is live).
    pub listing: bool,
    pub last_listed_at: Option<DateTime<Utc>>,
    pub last_list_error_code: Option<String>,
    pub last_list_error_message: Option<String>,
    /// Failed listings in a row (for backoff).
    pub list_failures: i32,
    pub created_at: DateTime<Utc>,
}

/// Where one repository of a namespace stands in its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// A hub repository mirrors it.
    Mirrored,
    /// Left out by the set's filters (include/exclude, archived, forks).
    Skipped,
    /// Its name is taken on the hub by a repository that is not this set's.
    Collision,
    /// Creating its mirror failed; tried again at the next listing.
    Failed,
    /// No longer listed (deleted or moved away): its mirror is kept, paused.
    Gone,
    /// Archived upstream: its mirror is kept, paused.
    Archived,
}

impl MemberState {
    pub const ALL: [MemberState; 6] = [
        MemberState::Mirrored,
        MemberState::Skipped,
        MemberState::Collision,
        MemberState::Failed,
        MemberState::Gone,
        MemberState::Archived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Mirrored => "mirrored",
            MemberState::Skipped => "skipped",
            MemberState::Collision => "collision",
            MemberState::Failed => "failed",
            MemberState::Gone => "gone",
            MemberState::Archived => "archived",
        }
    }

    pub fn parse(text: &str) -> Option<MemberState> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One repository of a set's namespace, by the forge's stable id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMember {
    pub set_id: i64,
    pub forge_id: String,
    /// The full path on the forge as last listed.
    pub path: String,
    pub repo_id: Option<i64>,
    pub state: MemberState,
    /// Why it is skipped, collided or failed, or since when it is gone, in words.
    pub detail: Option<String>,
    pub changed_at: DateTime<Utc>,
}

/// Storage of mirror sets; a supertrait of [`crate::Store`].
#[async_trait]
pub trait MirrorSetStore: Send + Sync {
    /// Records a set, due for listing at `now`. [`StoreError::Conflict`] when the owner has a
    /// set of the same namespace on the same forge and API.
    async fn create_mirror_set(
        &self,
        new: &NewMirrorSet,
        now: DateTime<Utc>,
    ) -> Result<MirrorSet, StoreError>;
    async fn get_mirror_set(&self, id: i64) -> Result<Option<MirrorSet>, StoreError>;
    /// Every set, oldest first.
    async fn list_mirror_sets(&self) -> Result<Vec<MirrorSet>, StoreError>;
    /// The set's credentials, opened.
    async fn mirror_set_credentials(&self, id: i64) -> Result<Option<Credentials>, StoreError>;
    /// Deletes the set and its member rows (the hub repositories stay unless the hub deletes
    /// them). `false` when there was no such set.
    async fn delete_mirror_set(&self, id: i64) -> Result<bool, StoreError>;

    /// Takes one due set whose listing no live lease holds, for `lease`. Sets due longest ago
    /// first.
    async fn claim_mirror_set_listing(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<MirrorSet>, StoreError>;
    /// Extends a held listing's lease; `false` when another process took it meanwhile.
    async fn renew_mirror_set_listing(
        &self,
        id: i64,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError>;
    /// Gives a held listing back unfinished (the process is stopping): any process may list the
    /// set at once, its outcome and schedule untouched. `false` when `worker` no longer held it.
    async fn release_mirror_set_listing(&self, id: i64, worker: &str) -> Result<bool, StoreError>;
    /// Ends a listing: its outcome (`error`: code and message, `None` on success) and when the
    /// next is due. Releases the lease.
    async fn finish_mirror_set_listing(
        &self,
        id: i64,
        worker: &str,
        now: DateTime<Utc>,
        error: Option<(&str, &str)>,
        next_list_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Makes the set due now (a person asked, or the forge told of a change). `false` when
    /// there is no such set.
    async fn request_mirror_set_listing(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// What the set knows of its namespace's repositories, by path.
    async fn mirror_set_members(&self, set_id: i64) -> Result<Vec<SetMember>, StoreError>;
    /// Records one member (insert or replace, by set and forge id).
    async fn put_mirror_set_member(&self, member: &SetMember) -> Result<(), StoreError>;
    /// The sets a hub repository belongs to.
    async fn mirror_sets_of_repo(&self, repo_id: i64) -> Result<Vec<i64>, StoreError>;

    /// Points a repository at its upstream's new address (a rename or transfer upstream),
    /// and renames it on the hub when `new_name` is given. [`StoreError::Conflict`] when the
    /// new name is taken.
    async fn move_repo_upstream(
        &self,
        repo_id: i64,
        upstream_url: &str,
        new_name: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Stops scheduling a repository, saying why (`paused_reason`), until a person syncs it,
    /// changes a setting, or the set finds its upstream back ([`crate::Store::resume_repo`]).
    async fn pause_repo(&self, repo_id: i64, reason: &str) -> Result<bool, StoreError>;
}

/// The globs as stored: one per line (the hub refuses control characters in them).
pub(crate) fn globs_to_text(globs: &[String]) -> String {
    globs.join("\n")
}

pub(crate) fn globs_from_text(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn parse_member_state(text: &str) -> Result<MemberState, StoreError> {
    MemberState::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown mirror set member state {text:?}")))
}
