//! Mirror sets: every repository of a namespace on a forge, and the new ones as they appear.
//!
//! A set is recorded after its first page was listed with its token (so a wrong token or
//! namespace is the creator's error at once, not a set that fails later). A listing loop in
//! every process then claims due sets with a lease (like sync jobs), reads the namespace page
//! by page through the egress proxy, and reconciles each repository with what the set knows of
//! it by the forge's stable id: new ones are created through the same service as a single
//! create (same validation, same queue), renamed ones follow, archived or vanished ones are
//! paused and never deleted, reappearing ones resume. Listing failures are recorded on the set
//! and retried with backoff; they never touch a mirror.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mirrorhub_core::{Credentials, ErrorCode, Mode, OwnerName, RepoStatus};
use mirrorhub_forges::{
    ListedRepo, ListingAuth, ListingError, ListingForge, NamespaceQuery, PageCursor,
};
use mirrorhub_store::{MemberState, MirrorSet, NewMirrorSet, Repo, SetMember, StoreError};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wildmatch::WildMatch;

use crate::request::{check_description, parse_interval};
use crate::{CreateRepo, Hub, HubError};

/// How often a set is listed again when it says nothing else.
pub const DEFAULT_LIST_INTERVAL: Duration = Duration::from_secs(3600);
/// The shortest listing interval a set may ask for: a listing costs the forge API requests.
pub const MIN_LIST_INTERVAL: Duration = Duration::from_secs(300);
/// One page request to a forge's API, at most.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a listing holds its set without renewing (renewed every third of it).
const LISTING_LEASE: Duration = Duration::from_secs(120);
/// A rate limit this short is waited out inside the listing; a longer one ends it (recorded),
/// and the set is listed again when the limit has passed.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Globs per list, at most, and characters per glob.
const MAX_GLOBS: usize = 100;
const MAX_GLOB_LEN: usize = 200;

/// A mirror set as it arrives from an edge (API, CLI, bot). Its `Debug` hides the token.
#[derive(Clone, Default)]
pub struct CreateMirrorSet {
    pub forge: String,
    pub api_url: Option<String>,
    pub namespace: String,
    pub owner: String,
    pub username: Option<String>,
    pub token: Option<String>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub archived: Option<bool>,
    pub forks: Option<bool>,
    pub visibility: Option<String>,
    pub mode: Option<String>,
    pub sync_interval: Option<String>,
    pub list_interval: Option<String>,
    pub follow_renames: Option<bool>,
}

impl std::fmt::Debug for CreateMirrorSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateMirrorSet")
            .field("forge", &self.forge)
            .field("api_url", &self.api_url)
            .field("namespace", &self.namespace)
            .field("owner", &self.owner)
            .field("has_token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

/// A set with what its repositories amount to, for its resource.
#[derive(Debug, Clone)]
pub struct MirrorSetView {
    pub set: MirrorSet,
    pub counts: SetCounts,
}

/// How a set's repositories stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetCounts {
    /// Every repository the listing named.
    pub listed: i64,
    /// Mirrors that have their first copy.
    pub mirrored: i64,
    /// Mirrors still making their first copy.
    pub cloning: i64,
    /// Repositories that could not be mirrored (name taken, create failed) and mirrors whose
    /// syncs fail.
    pub failed: i64,
    /// Left out by the set's filters.
    pub skipped: i64,
    /// Deleted, moved away or archived upstream: their mirrors are kept, paused.
    pub gone: i64,
}

/// One repository of a set, for `GET …/repos`.
#[derive(Debug, Clone)]
pub struct SetRepoView {
    pub member: SetMember,
    /// The hub repository, when there is one.
    pub repo: Option<Repo>,
    pub status: Option<RepoStatus>,
}

impl Hub {
    /// Validates a set, lists its first page with its token (so a wrong token, namespace or
    /// address is refused now), records it and wakes the listing loop. Returns at once; the
    /// mirrors are created by the listing in the background.
    #[tracing::instrument(skip_all, fields(forge = %request.forge, namespace = %request.namespace))]
    pub async fn create_mirror_set(&self, request: CreateMirrorSet) -> Result<MirrorSet, HubError> {
        let new = self.validate_set(request)?;
        let owner = OwnerName::parse(&new.owner)
            .map_err(|e| HubError::invalid(ErrorCode::InvalidName, "owner", e.to_string()))?;
        let query = self.namespace_query(&new, new.credentials.as_ref()).await?;
        match self.list_one_page(&query, None).await {
            Ok(_) => {}
            Err(e) => return Err(listing_refusal(&e)),
        }
        self.ensure_owner(&owner).await?;
        let set = self
            .store
            .create_mirror_set(&new, Utc::now())
            .await
            .map_err(|e| match e {
                StoreError::Conflict => HubError::invalid(
                    ErrorCode::MirrorSetExists,
                    "namespace",
                    format!(
                        "{} has a mirror set of {} on this {} already: list it again (POST /api/v1/mirror-sets/{{id}}/sync) or delete it first",
                        new.owner, new.namespace, query.forge
                    ),
                ),
                other => other.into(),
            })?;
        self.set_wake.notify_one();
        tracing::info!(set_id = set.id, "mirror set created");
        Ok(set)
    }

    pub async fn get_mirror_set(&self, id: i64) -> Result<MirrorSet, HubError> {
        self.store
            .get_mirror_set(id)
            .await?
            .ok_or_else(|| set_not_found(id))
    }

    pub async fn list_mirror_sets(&self) -> Result<Vec<MirrorSet>, HubError> {
        Ok(self.store.list_mirror_sets().await?)
    }

    /// The set with the counts of its repositories.
    pub async fn mirror_set_view(&self, set: MirrorSet) -> Result<MirrorSetView, HubError> {
        let repos = self.mirror_set_repos(set.id).await?;
        let mut counts = SetCounts::default();
        for r in &repos {
            counts.listed += 1;
            match (r.member.state, r.status) {
                (MemberState::Skipped, _) => counts.skipped += 1,
                (MemberState::Gone | MemberState::Archived, _) => counts.gone += 1,
                (MemberState::Collision | MemberState::Failed, _) => counts.failed += 1,
                (MemberState::Mirrored, Some(RepoStatus::Cloning)) => counts.cloning += 1,
                (MemberState::Mirrored, Some(RepoStatus::Failed | RepoStatus::Paused)) => {
                    counts.failed += 1
                }
                (MemberState::Mirrored, Some(_)) => counts.mirrored += 1,
                // Deleted on the hub since: made again by the next listing.
                (MemberState::Mirrored, None) => counts.cloning += 1,
            }
        }
        Ok(MirrorSetView { set, counts })
    }

    /// Every repository the set knows, with its hub repository and status.
    pub async fn mirror_set_repos(&self, set_id: i64) -> Result<Vec<SetRepoView>, HubError> {
        let members = self.store.mirror_set_members(set_id).await?;
        let statuses = self.statuses().await?;
        // One query for every member's repository, not one per member: a set of thousands is
        // read for every view of it.
        let ids: Vec<i64> = members.iter().filter_map(|m| m.repo_id).collect();
        let mut repos: HashMap<i64, Repo> = self
            .store
            .get_repos_by_ids(&ids)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        let mut out = Vec::with_capacity(members.len());
        for member in members {
            let repo = member.repo_id.and_then(|id| repos.remove(&id));
            let status = repo.as_ref().map(|r| statuses.of(r));
            out.push(SetRepoView {
                member,
                repo,
                status,
            });
        }
        Ok(out)
    }

    /// Lists the set again now (coalesced with a listing already due).
    pub async fn request_set_listing(&self, id: i64) -> Result<MirrorSet, HubError> {
        if !self
            .store
            .request_mirror_set_listing(id, Utc::now())
            .await?
        {
            return Err(set_not_found(id));
        }
        self.set_wake.notify_one();
        self.get_mirror_set(id).await
    }

    /// Deletes a set. Its mirrors stay (they become ordinary mirrors) unless
    /// `delete_mirrors`, which deletes every hub repository the set made.
    pub async fn delete_mirror_set(&self, id: i64, delete_mirrors: bool) -> Result<(), HubError> {
        let members = self.store.mirror_set_members(id).await?;
        if !self.store.delete_mirror_set(id).await? {
            return Err(set_not_found(id));
        }
        if delete_mirrors {
            for repo_id in members.iter().filter_map(|m| m.repo_id) {
                if let Some(repo) = self.store.get_repo_by_id(repo_id).await? {
                    // Shared by another set: that set keeps it.
                    if !self.store.mirror_sets_of_repo(repo_id).await?.is_empty() {
                        continue;
                    }
                    if let Err(e) = self.delete_repo(&repo.owner, &repo.name).await {
                        tracing::warn!(repo_id, error = %e, "a mirror of a deleted set could not be deleted");
                    }
                }
            }
        }
        tracing::info!(set_id = id, delete_mirrors, "mirror set deleted");
        Ok(())
    }

    /// The sets a forge's organization event concerns (its namespace, or a parent group of
    /// it on GitLab) are listed again now. Returns how many.
    pub(crate) async fn namespace_changed(&self, forge: ListingForge, path: &str) -> usize {
        let sets = match self.store.list_mirror_sets().await {
            Ok(sets) => sets,
            Err(e) => {
                tracing::warn!(error = %e, "could not read mirror sets for a namespace event");
                return 0;
            }
        };
        let path = path.to_ascii_lowercase();
        let now = Utc::now();
        let mut n = 0;
        for set in sets
            .iter()
            .filter(|s| s.forge == forge.as_str())
            .filter(|s| within_namespace(&path, &s.namespace.to_ascii_lowercase()))
        {
            if let Err(e) = self.store.request_mirror_set_listing(set.id, now).await {
                tracing::warn!(set_id = set.id, error = %e, "could not queue a mirror set listing");
            } else {
                n += 1;
            }
        }
        if n > 0 {
            self.set_wake.notify_one();
        }
        n
    }

    /// A GitHub App installation event: the installation's set is listed again, or made
    /// when the App was just installed (under the hub owner named like the account, with
    /// the hub's defaults). Failures are logged; the forge does not wait for them.
    pub(crate) async fn installation_changed(&self, event: &mirrorhub_webhooks::InstallationEvent) {
        let id = i64::try_from(event.installation_id).unwrap_or(i64::MAX);
        let sets = match self.store.list_mirror_sets().await {
            Ok(sets) => sets,
            Err(e) => {
                tracing::warn!(error = %e, "could not read mirror sets for an installation event");
                return;
            }
        };
        let mine: Vec<&MirrorSet> = sets
            .iter()
            .filter(|s| s.installation_id == Some(id))
            .collect();
        if !mine.is_empty() {
            for set in mine {
                let _ = self
                    .store
                    .request_mirror_set_listing(set.id, Utc::now())
                    .await;
            }
            self.set_wake.notify_one();
            tracing::info!(installation = id, action = %event.action, "GitHub App installation changed: its mirror set is listed again");
            return;
        }
        if event.action == "deleted" || event.action == "suspend" {
            return;
        }
        let owner = match OwnerName::parse(&event.account) {
            Ok(owner) => owner,
            Err(e) => {
                tracing::warn!(account = %event.account, error = %e, "a GitHub App installation's account is not a valid hub owner name; no mirror set made");
                return;
            }
        };
        let new = NewMirrorSet {
            forge: ListingForge::GitHub.as_str().to_owned(),
            api_url: self
                .forges
                .apis()
                .github_api
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            namespace: event.account.clone(),
            owner: owner.as_str().to_owned(),
            credentials: None,
            installation_id: Some(id),
            include: vec![],
            exclude: vec![],
            archived: false,
            forks: false,
            visibility: "as-upstream".into(),
            mode: Mode::Mirror,
            sync_interval_secs: None,
            list_interval_secs: DEFAULT_LIST_INTERVAL.as_secs() as i64,
            follow_renames: false,
        };
        let made = async {
            self.ensure_owner(&owner).await?;
            Ok::<_, HubError>(self.store.create_mirror_set(&new, Utc::now()).await?)
        }
        .await;
        match made {
            Ok(set) => {
                self.set_wake.notify_one();
                tracing::info!(installation = id, set_id = set.id, account = %event.account, "GitHub App installed: mirror set made");
            }
            Err(e) => {
                tracing::warn!(installation = id, error = %e, "could not make the mirror set of a GitHub App installation")
            }
        }
    }

    /// Checks and types a set request.
    fn validate_set(&self, r: CreateMirrorSet) -> Result<NewMirrorSet, HubError> {
        let forge = ListingForge::parse(&r.forge.trim().to_ascii_lowercase()).ok_or_else(|| {
            HubError::invalid(
                ErrorCode::InvalidRequest,
                "forge",
                format!(
                    "forge {:?} is not known: use one of {}",
                    r.forge.chars().take(40).collect::<String>(),
                    ListingForge::ALL.map(|f| f.as_str()).join(", ")
                ),
            )
        })?;
        let api_url = match r.api_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            Some(text) => parse_api_url(text)?,
            None => forge.default_api_url().ok_or_else(|| {
                HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "api_url",
                    format!("{forge} has no public service: give api_url, the instance's base URL (https://gitea.example.com)"),
                )
            })?,
        };
        let namespace = check_namespace(forge, r.namespace.trim())?;
        let owner = r.owner.trim().to_owned();
        OwnerName::parse(&owner)
            .map_err(|e| HubError::invalid(ErrorCode::InvalidName, "owner", e.to_string()))?;
        let credentials = match r.token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => Some(set_credentials(forge, r.username.as_deref(), token)?),
            None => None,
        };
        let include = check_globs("include", r.include)?;
        let exclude = check_globs("exclude", r.exclude)?;
        let visibility = match r.visibility.as_deref().map(str::trim) {
            None | Some("") => "as-upstream".to_owned(),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                w @ ("as-upstream" | "private" | "public") => w.to_owned(),
                _ => {
                    return Err(HubError::invalid(
                        ErrorCode::InvalidRequest,
                        "visibility",
                        format!("visibility {v:?} is not known: use \"as-upstream\" (default), \"private\" or \"public\""),
                    ))
                }
            },
        };
        let mode = match r.mode.as_deref().map(str::trim) {
            None | Some("") => Mode::Mirror,
            Some(m) => Mode::parse(&m.to_ascii_lowercase()).ok_or_else(|| {
                HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "mode",
                    format!("mode {m:?} is not known: use \"mirror\" (default) or \"migrate\""),
                )
            })?,
        };
        let sync_interval_secs = match r.sync_interval.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                Some(parse_interval(text, self.config.min_sync_interval)?.as_secs() as i64)
            }
        };
        let list_interval = match r.list_interval.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_LIST_INTERVAL,
            Some(text) => {
                let interval = mirrorhub_core::SyncInterval::parse(text)
                    .map_err(|e| {
                        HubError::invalid(ErrorCode::InvalidRequest, "list_interval", e.to_string())
                    })?
                    .as_duration();
                if interval < MIN_LIST_INTERVAL {
                    return Err(HubError::invalid(
                        ErrorCode::InvalidRequest,
                        "list_interval",
                        "the listing interval must be at least 5m: each listing costs the forge API requests (its organization events list a set at once anyway)",
                    ));
                }
                interval
            }
        };
        Ok(NewMirrorSet {
            forge: forge.as_str().to_owned(),
            api_url: api_url.as_str().trim_end_matches('/').to_owned(),
            namespace,
            owner,
            credentials,
            installation_id: None,
            include,
            exclude,
            archived: r.archived.unwrap_or(false),
            forks: r.forks.unwrap_or(false),
            visibility,
            mode,
            sync_interval_secs,
            list_interval_secs: list_interval.as_secs() as i64,
            follow_renames: r.follow_renames.unwrap_or(false),
        })
    }

    /// What the listing of `set` asks the forge, with its credentials.
    async fn namespace_query(
        &self,
        set: &NewMirrorSet,
        credentials: Option<&Credentials>,
    ) -> Result<NamespaceQuery, HubError> {
        let forge = ListingForge::parse(&set.forge)
            .ok_or_else(|| HubError::InvalidState(format!("unknown forge {:?}", set.forge)))?;
        let api_url = url::Url::parse(&set.api_url).map_err(|_| {
            HubError::invalid(ErrorCode::InvalidUrl, "api_url", "the API URL is not a URL")
        })?;
        let auth = match (set.installation_id, credentials) {
            (Some(installation), _) => {
                let token = self
                    .forges
                    .installation_token(installation.max(0) as u64)
                    .await
                    .map_err(|e| {
                        HubError::invalid(ErrorCode::ForgeApiFailed, "installation", e.to_string())
                    })?;
                ListingAuth::GitHubInstallation(token)
            }
            (None, Some(c)) => ListingAuth::Token(listing_token(forge, c)),
            (None, None) => ListingAuth::None,
        };
        Ok(NamespaceQuery {
            forge,
            api_url,
            namespace: set.namespace.clone(),
            auth,
        })
    }

    /// One page through the egress proxy; a connection the address policy refused is told
    /// apart from an unreachable forge.
    async fn list_one_page(
        &self,
        query: &NamespaceQuery,
        cursor: Option<&PageCursor>,
    ) -> Result<mirrorhub_forges::ListedPage, ListingError> {
        let pass = self.engine.egress_pass();
        let result =
            mirrorhub_forges::list_page(query, cursor, Some(pass.proxy_url()), PAGE_TIMEOUT).await;
        // Whatever the client made of a refused connection (unreachable, a proxy's error page
        // read as a forge error), the refusal is the real cause and the one to tell.
        match (result, pass.refused()) {
            (Err(_), Some(reason)) => Err(ListingError::NotAllowed { reason }),
            (other, _) => other,
        }
    }

    /// Lists a claimed set through to its last page and reconciles every repository. Stops
    /// at the first error (recorded by the caller); what was reconciled before it stays, and
    /// nothing is marked gone unless the listing ran to its end.
    async fn list_set(
        &self,
        set: &MirrorSet,
        stop: &CancellationToken,
    ) -> Result<ListingSummary, ListingStop> {
        let new = NewMirrorSet {
            forge: set.forge.clone(),
            api_url: set.api_url.clone(),
            namespace: set.namespace.clone(),
            owner: set.owner.clone(),
            credentials: None,
            installation_id: set.installation_id,
            include: set.include.clone(),
            exclude: set.exclude.clone(),
            archived: set.archived,
            forks: set.forks,
            visibility: set.visibility.clone(),
            mode: set.mode,
            sync_interval_secs: set.sync_interval_secs,
            list_interval_secs: set.list_interval_secs,
            follow_renames: set.follow_renames,
        };
        let credentials = self.store.mirror_set_credentials(set.id).await?;
        let query = self
            .namespace_query(&new, credentials.as_ref())
            .await
            .map_err(ListingStop::Settings)?;
        let filters = Filters::new(set);
        let mut members: HashMap<String, SetMember> = self
            .store
            .mirror_set_members(set.id)
            .await?
            .into_iter()
            .map(|m| (m.forge_id.clone(), m))
            .collect();
        let mut summary = ListingSummary::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut cursor: Option<PageCursor> = None;
        let mut skipped_entries = 0usize;
        loop {
            let page = loop {
                if stop.is_cancelled() {
                    return Err(ListingStop::Stopped);
                }
                // A page the forge is slow to give must not hold up shutdown.
                let listed = tokio::select! {
                    listed = self.list_one_page(&query, cursor.as_ref()) => listed,
                    _ = stop.cancelled() => return Err(ListingStop::Stopped),
                };
                match listed {
                    Err(ListingError::RateLimited { retry_after, .. })
                        if retry_after <= MAX_RATE_LIMIT_WAIT =>
                    {
                        tracing::info!(
                            set_id = set.id,
                            wait_s = retry_after.as_secs(),
                            "rate-limited by the forge; waiting"
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(retry_after) => {}
                            _ = stop.cancelled() => {}
                        }
                    }
                    other => break other?,
                }
            };
            summary.pages += 1;
            skipped_entries += page.skipped;
            // The hub repositories of the page's known members, in one query (an unchanged
            // namespace of thousands is then a few reads a page, and no writes).
            let ids: Vec<i64> = page
                .repos
                .iter()
                .filter_map(|l| members.get(&l.id).and_then(|m| m.repo_id))
                .collect();
            let repos: HashMap<i64, Repo> = self
                .store
                .get_repos_by_ids(&ids)
                .await?
                .into_iter()
                .map(|r| (r.id, r))
                .collect();
            for listed in page.repos {
                if !seen.insert(listed.id.clone()) {
                    continue;
                }
                let known = members.remove(&listed.id);
                let repo = known
                    .as_ref()
                    .and_then(|m| m.repo_id)
                    .and_then(|id| repos.get(&id).cloned());
                let changed = self
                    .reconcile(set, credentials.as_ref(), &filters, known, repo, &listed)
                    .await?;
                summary.listed += 1;
                if changed {
                    summary.changed += 1;
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        // An entry the forge sent but that was unreadable may be a member: none is marked gone
        // on an incomplete listing, a wrong guess would pause a live mirror.
        if skipped_entries > 0 {
            tracing::warn!(
                set_id = set.id,
                skipped = skipped_entries,
                "the listing skipped unreadable entries; no member is marked gone this time"
            );
            return Ok(summary);
        }
        // The whole namespace was listed: what it no longer names is gone upstream.
        let now = Utc::now();
        for (_, member) in members {
            if member.state == MemberState::Gone {
                continue;
            }
            let detail = format!(
                "not listed by {} since {}: deleted, or moved out of {}",
                query.forge,
                now.format("%Y-%m-%d %H:%M UTC"),
                set.namespace
            );
            if let Some(repo_id) = member.repo_id {
                self.store
                    .pause_repo(repo_id, &format!("upstream_gone: {detail}. The mirror is kept; it resumes if the repository is listed again"))
                    .await?;
            }
            self.store
                .put_mirror_set_member(&SetMember {
                    state: MemberState::Gone,
                    detail: Some(detail),
                    changed_at: now,
                    ..member
                })
                .await?;
            summary.gone += 1;
        }
        Ok(summary)
    }

    /// Brings one listed repository's place in the set up to date. `repo` is the hub
    /// repository of `known`, read with the rest of its page. Returns whether anything was
    /// written (an unchanged namespace writes nothing).
    async fn reconcile(
        &self,
        set: &MirrorSet,
        credentials: Option<&Credentials>,
        filters: &Filters,
        known: Option<SetMember>,
        repo: Option<Repo>,
        listed: &ListedRepo,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let member = |state, repo_id, detail: Option<String>| SetMember {
            set_id: set.id,
            forge_id: listed.id.clone(),
            path: listed.path.clone(),
            repo_id,
            state,
            detail,
            changed_at: now,
        };
        let clone_url = match listed_clone_url(&set.api_url, &listed.clone_url) {
            Ok(url) => url,
            Err(why) => {
                if known
                    .as_ref()
                    .is_some_and(|m| m.detail.as_deref() == Some(why.as_str()))
                {
                    return Ok(false);
                }
                let repo_id = known.as_ref().and_then(|m| m.repo_id);
                self.store
                    .put_mirror_set_member(&member(MemberState::Failed, repo_id, Some(why)))
                    .await?;
                return Ok(true);
            }
        };
        let Some(repo) = repo else {
            // Not mirrored (new, left out, failed, or deleted on the hub).
            let wanted = filters.skip_reason(set, listed);
            if let Some(reason) = wanted {
                if known.as_ref().is_some_and(|m| {
                    m.state == MemberState::Skipped
                        && m.path == listed.path
                        && m.detail.as_deref() == Some(reason.as_str())
                }) {
                    return Ok(false);
                }
                self.store
                    .put_mirror_set_member(&member(MemberState::Skipped, None, Some(reason)))
                    .await?;
                return Ok(true);
            }
            let made = self
                .create_set_mirror(set, credentials, listed, &clone_url)
                .await;
            let row = match made {
                Ok(repo) => {
                    tracing::info!(set_id = set.id, repo_id = repo.id, path = %listed.path, "mirror set: new repository mirrored");
                    member(MemberState::Mirrored, Some(repo.id), None)
                }
                Err(HubError::Exists(name)) => member(
                    MemberState::Collision,
                    None,
                    Some(format!("{name} exists on the hub and is not this set's: rename or delete it, or exclude this repository")),
                ),
                Err(e) if e.is_internal() => {
                    tracing::error!(error = ?e, path = %listed.path, "mirror set: could not create a mirror");
                    member(
                        MemberState::Failed,
                        None,
                        Some("the hub failed to create the mirror; the operator's log has the cause. Tried again at the next listing".into()),
                    )
                }
                Err(e) => member(MemberState::Failed, None, Some(format!("{} ({})", e, e.code().as_str()))),
            };
            if known.as_ref().is_some_and(|m| {
                m.state == row.state && m.detail == row.detail && m.path == row.path
            }) {
                return Ok(false);
            }
            self.store.put_mirror_set_member(&row).await?;
            return Ok(true);
        };

        let mut changed = false;
        let known = known.unwrap_or_else(|| member(MemberState::Mirrored, Some(repo.id), None));
        // Renamed or transferred upstream: the mirror follows its upstream's new address.
        if known.path != listed.path || repo.upstream_url != clone_url {
            let new_name = set
                .follow_renames
                .then(|| listed.name.clone())
                .filter(|n| !n.eq_ignore_ascii_case(&repo.name))
                .filter(|n| mirrorhub_core::RepoName::parse(n).is_ok());
            let moved = match self
                .store
                .move_repo_upstream(repo.id, &clone_url, new_name.as_deref())
                .await
            {
                Err(StoreError::Conflict) => {
                    // The new name is taken: follow the address, keep the name.
                    self.store
                        .move_repo_upstream(repo.id, &clone_url, None)
                        .await?
                }
                other => other?,
            };
            if moved {
                tracing::info!(set_id = set.id, repo_id = repo.id, from = %known.path, to = %listed.path, "mirror set: upstream renamed; the mirror follows");
            }
            changed = true;
        }
        let archived = listed.archived && !set.archived;
        let state = if archived {
            MemberState::Archived
        } else {
            MemberState::Mirrored
        };
        match (known.state, state) {
            (MemberState::Archived, MemberState::Archived)
            | (MemberState::Mirrored, MemberState::Mirrored) => {}
            (_, MemberState::Archived) => {
                self.store
                    .pause_repo(repo.id, &format!("upstream_archived: {} was archived upstream on or before {}. The mirror is kept; it resumes if the repository is unarchived", listed.path, now.format("%Y-%m-%d")))
                    .await?;
                changed = true;
            }
            (_, _) => {
                // Back: listed again, or unarchived.
                if repo.paused_reason.as_deref().is_some_and(|r| {
                    r.starts_with("upstream_gone:") || r.starts_with("upstream_archived:")
                }) {
                    self.store.resume_repo(repo.id, now).await?;
                    self.wake.notify_one();
                }
                changed = true;
            }
        }
        if changed || known.path != listed.path {
            let detail = (state == MemberState::Archived).then(|| {
                format!(
                    "archived upstream; the mirror is paused since {}",
                    now.format("%Y-%m-%d")
                )
            });
            let detail =
                if state == known.state && known.detail.is_some() && state == MemberState::Archived
                {
                    known.detail.clone()
                } else {
                    detail
                };
            self.store
                .put_mirror_set_member(&member(state, Some(repo.id), detail))
                .await?;
            changed = true;
        }
        Ok(changed)
    }

    /// Creates the mirror of a listed repository through the same service as a single create.
    async fn create_set_mirror(
        &self,
        set: &MirrorSet,
        credentials: Option<&Credentials>,
        listed: &ListedRepo,
        clone_url: &str,
    ) -> Result<Repo, HubError> {
        let visibility = match set.visibility.as_str() {
            "as-upstream" if listed.private => "private",
            "as-upstream" => "public",
            other => other,
        };
        let description: String = listed
            .description
            .chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .take(crate::request::MAX_DESCRIPTION)
            .collect();
        let description = check_description(description).unwrap_or_default();
        let request = CreateRepo {
            url: clone_url.to_owned(),
            username: credentials.map(|c| c.username.clone()),
            token: credentials.map(|c| c.secret.expose_secret().to_owned()),
            owner: set.owner.clone(),
            name: Some(listed.name.clone()),
            visibility: Some(visibility.to_owned()),
            description: Some(description),
            mode: Some(set.mode.as_str().to_owned()),
            sync_interval: set
                .sync_interval_secs
                .and_then(|s| mirrorhub_core::SyncInterval::from_secs(s.max(1) as u64))
                .map(|i| i.to_string()),
            ..CreateRepo::default()
        };
        self.create_repo_probed(request, false).await
    }

    /// The credentials a sync of a GitHub App set's mirror logs in with: a token of the
    /// installation, made for the run.
    pub(crate) async fn installation_credentials(
        &self,
        installation: i64,
    ) -> Result<Credentials, HubError> {
        let token = self
            .forges
            .installation_token(installation.max(0) as u64)
            .await
            .map_err(|e| HubError::InvalidState(e.to_string()))?;
        Ok(Credentials {
            username: "x-access-token".into(),
            secret: token,
        })
    }
}

/// Why a listing stopped before its end.
#[derive(Debug)]
enum ListingStop {
    /// The forge (or the address policy) refused or failed.
    Forge(ListingError),
    /// The set's settings cannot be used (an installation token could not be made).
    Settings(HubError),
    Store(StoreError),
    /// Shutdown, or another process took the set over.
    Stopped,
}

impl From<ListingError> for ListingStop {
    fn from(e: ListingError) -> Self {
        ListingStop::Forge(e)
    }
}

impl From<StoreError> for ListingStop {
    fn from(e: StoreError) -> Self {
        ListingStop::Store(e)
    }
}

/// What one listing did, for the log.
#[derive(Debug, Default)]
struct ListingSummary {
    pages: usize,
    listed: usize,
    changed: usize,
    gone: usize,
}

/// The listing loop: claims due sets with a lease and lists them, one at a time per process.
pub(crate) async fn listing_loop(hub: Arc<Hub>, worker_id: String, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match hub
            .store
            .claim_mirror_set_listing(&worker_id, Utc::now(), LISTING_LEASE)
            .await
        {
            Ok(Some(set)) => {
                run_listing(&hub, &worker_id, set, &shutdown).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = hub.set_wake.notified() => {}
                    _ = tokio::time::sleep(hub.config.schedule_tick.max(Duration::from_millis(100))) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not claim a mirror set listing; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(hub.config.poll_interval * 5) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

async fn run_listing(
    hub: &Arc<Hub>,
    worker_id: &str,
    set: MirrorSet,
    shutdown: &CancellationToken,
) {
    let span = tracing::info_span!("mirror_set_listing", set_id = set.id, forge = %set.forge, namespace = %set.namespace);
    run_listing_in_span(hub, worker_id, set, shutdown)
        .instrument(span)
        .await
}

async fn run_listing_in_span(
    hub: &Arc<Hub>,
    worker_id: &str,
    set: MirrorSet,
    shutdown: &CancellationToken,
) {
    let stop = shutdown.child_token();
    let keeper = {
        let hub = hub.clone();
        let worker = worker_id.to_owned();
        let stop = stop.clone();
        let id = set.id;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LISTING_LEASE / 3).await;
                match hub
                    .store
                    .renew_mirror_set_listing(id, &worker, Utc::now(), LISTING_LEASE)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        stop.cancel();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not renew a mirror set listing's lease")
                    }
                }
            }
        })
    };
    let started = std::time::Instant::now();
    let result = hub.list_set(&set, &stop).await;
    keeper.abort();
    let now = Utc::now();
    let interval = Duration::from_secs(set.list_interval_secs.max(1) as u64);
    let (error, next) = match &result {
        Ok(summary) => {
            tracing::info!(
                set_id = set.id,
                pages = summary.pages,
                listed = summary.listed,
                changed = summary.changed,
                gone = summary.gone,
                duration_ms = started.elapsed().as_millis() as u64,
                "mirror set listed"
            );
            (
                None,
                now + chrono::Duration::from_std(interval).unwrap_or_default(),
            )
        }
        Err(stop) => {
            let backoff = retry_backoff(set.list_failures.max(0) as u32, interval);
            let (code, message, wait) = match stop {
                // Shutdown: the set is given back, so another process (or this one restarted)
                // lists it at once rather than after the lease. Or another process holds the
                // set now and records its own outcome.
                ListingStop::Stopped => {
                    if shutdown.is_cancelled() {
                        if let Err(e) = hub
                            .store
                            .release_mirror_set_listing(set.id, worker_id)
                            .await
                        {
                            tracing::warn!(error = %e, "could not give a mirror set listing back at shutdown; its lease will expire");
                        }
                    }
                    return;
                }
                ListingStop::Forge(e) => {
                    let (code, message) = listing_error(e);
                    let wait = match e {
                        ListingError::RateLimited { retry_after, .. } => *retry_after,
                        _ => backoff,
                    };
                    (code, message, wait)
                }
                ListingStop::Settings(e) => (e.code(), e.to_string(), backoff),
                ListingStop::Store(e) => {
                    tracing::error!(error = ?e, "mirror set listing: the database failed");
                    (
                        ErrorCode::Internal,
                        "the hub's database failed during the listing; the operator's log has the cause".to_owned(),
                        backoff,
                    )
                }
            };
            tracing::warn!(set_id = set.id, %code, error = %message, "mirror set listing failed; existing mirrors are untouched");
            (
                Some((code, message)),
                now + chrono::Duration::from_std(wait).unwrap_or_default(),
            )
        }
    };
    let error_ref = error.as_ref().map(|(c, m)| (c.as_str(), m.as_str()));
    if let Err(e) = hub
        .store
        .finish_mirror_set_listing(set.id, worker_id, now, error_ref, next)
        .await
    {
        tracing::error!(error = %e, "could not record a mirror set listing; its lease will expire");
    }
}

/// Capped exponential backoff after failed listings: 1 min, 2, 4, … up to the set's interval.
fn retry_backoff(failures_before: u32, interval: Duration) -> Duration {
    let base = Duration::from_secs(60);
    let factor = 1u32 << failures_before.min(10);
    (base * factor).min(interval.max(base))
}

/// A listing error's code and message, as the set records them.
fn listing_error(e: &ListingError) -> (ErrorCode, String) {
    let code = match e {
        ListingError::Unauthorized { .. } => ErrorCode::UpstreamAuthFailed,
        ListingError::NamespaceNotFound { .. } => ErrorCode::UpstreamNotFound,
        ListingError::NotAllowed { .. } => ErrorCode::UrlNotAllowed,
        ListingError::Unreachable { .. } => ErrorCode::UpstreamUnreachable,
        _ => ErrorCode::ForgeApiFailed,
    };
    (code, e.to_string())
}

/// A listing error at creation, as the creator's error (naming the field to fix).
fn listing_refusal(e: &ListingError) -> HubError {
    let (code, message) = listing_error(e);
    let field = match e {
        ListingError::Unauthorized { .. } | ListingError::Forbidden { .. } => "token",
        ListingError::NamespaceNotFound { .. } => "namespace",
        _ => "api_url",
    };
    HubError::invalid(code, field, message)
}

fn set_not_found(id: i64) -> HubError {
    HubError::invalid(
        ErrorCode::MirrorSetNotFound,
        "id",
        format!("there is no mirror set {id} (GET /api/v1/mirror-sets lists them)"),
    )
}

/// The include/exclude globs and the archived/forks choices of a set.
struct Filters {
    include: Vec<WildMatch>,
    exclude: Vec<(String, WildMatch)>,
}

impl Filters {
    fn new(set: &MirrorSet) -> Filters {
        Filters {
            include: set
                .include
                .iter()
                .map(|g| WildMatch::new_case_insensitive(g))
                .collect(),
            exclude: set
                .exclude
                .iter()
                .map(|g| (g.clone(), WildMatch::new_case_insensitive(g)))
                .collect(),
        }
    }

    /// Why the set leaves a repository out, or `None` to mirror it.
    fn skip_reason(&self, set: &MirrorSet, repo: &ListedRepo) -> Option<String> {
        if !self.include.is_empty() && !self.include.iter().any(|g| g.matches(&repo.name)) {
            return Some("not matched by the set's include globs".into());
        }
        if let Some((glob, _)) = self.exclude.iter().find(|(_, g)| g.matches(&repo.name)) {
            return Some(format!("matched by the exclude glob {glob:?}"));
        }
        if repo.fork && !set.forks {
            return Some("a fork (the set was made with \"forks\": false)".into());
        }
        if repo.archived && !set.archived {
            return Some("archived upstream (the set was made with \"archived\": false)".into());
        }
        None
    }
}

/// A listed clone URL as the hub records upstreams (normalised), when it is on the forge's own
/// host: the API's host, or the host the API's `api.` name serves (api.github.com →
/// github.com, api.bitbucket.org → bitbucket.org). The set's token goes to that host with
/// every sync, so a clone URL anywhere else (a hostile or broken listing) is refused.
fn listed_clone_url(api_url: &str, clone_url: &str) -> Result<String, String> {
    let api_host = url::Url::parse(api_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let (url, credentials) = mirrorhub_core::UpstreamUrl::parse(clone_url)
        .map_err(|e| format!("the forge gave a clone URL the hub cannot use: {e}"))?;
    if credentials.is_some()
        || !matches!(
            url.scheme(),
            mirrorhub_core::Scheme::Http | mirrorhub_core::Scheme::Https
        )
    {
        return Err("the forge gave a clone URL that is not a plain http(s) address".into());
    }
    let host = url.host().to_ascii_lowercase();
    let same_forge = host == api_host || api_host.strip_prefix("api.") == Some(host.as_str());
    if !same_forge {
        return Err(format!(
            "the forge gave a clone URL on another host ({host}, not {api_host}): not followed, so the set's token never leaves the forge"
        ));
    }
    Ok(url.to_string())
}

/// Whether an event about `path` (`acme/api`, `acme/platform/api`) concerns a set of
/// `namespace` (`acme`, `acme/platform`): the namespace is a leading run of its segments.
fn within_namespace(path: &str, namespace: &str) -> bool {
    path == namespace
        || path
            .strip_prefix(namespace)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn parse_api_url(text: &str) -> Result<url::Url, HubError> {
    let url = url::Url::parse(text).map_err(|_| {
        HubError::invalid(
            ErrorCode::InvalidUrl,
            "api_url",
            "api_url is not a URL: give the forge's API address, e.g. https://github.example.com/api/v3 or https://gitlab.example.com",
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(HubError::invalid(
            ErrorCode::InvalidUrl,
            "api_url",
            "api_url must be an http(s) address with a host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(HubError::invalid(
            ErrorCode::InvalidUrl,
            "api_url",
            "api_url must not carry credentials: give them as token (and username)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(HubError::invalid(
            ErrorCode::InvalidUrl,
            "api_url",
            "api_url must not have a query or fragment",
        ));
    }
    Ok(url)
}

/// A namespace: one safe segment, or several (`acme/platform`) on GitLab.
fn check_namespace(forge: ListingForge, text: &str) -> Result<String, HubError> {
    let text = text.trim_matches('/');
    let segments: Vec<&str> = text.split('/').collect();
    let safe = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let many = forge == ListingForge::GitLab;
    if text.is_empty()
        || !segments.iter().all(|s| safe(s))
        || (!many && segments.len() > 1)
        || segments.len() > 20
    {
        return Err(HubError::invalid(
            ErrorCode::InvalidRequest,
            "namespace",
            if many {
                "give the group or user path, e.g. \"acme\" or \"acme/platform\" (letters, digits, '-', '_', '.')"
            } else {
                "give the organization or user name, e.g. \"acme\" (letters, digits, '-', '_', '.')"
            },
        ));
    }
    Ok(text.to_owned())
}

fn check_globs(field: &'static str, globs: Vec<String>) -> Result<Vec<String>, HubError> {
    if globs.len() > MAX_GLOBS {
        return Err(HubError::invalid(
            ErrorCode::InvalidRequest,
            field,
            format!("give at most {MAX_GLOBS} globs"),
        ));
    }
    let mut out = Vec::with_capacity(globs.len());
    for glob in globs {
        let glob = glob.trim().to_owned();
        if glob.is_empty()
            || glob.chars().count() > MAX_GLOB_LEN
            || glob.chars().any(char::is_control)
        {
            return Err(HubError::invalid(
                ErrorCode::InvalidRequest,
                field,
                format!("each glob must be 1-{MAX_GLOB_LEN} characters without control characters, e.g. \"api-*\" ('*' any run, '?' one character)"),
            ));
        }
        out.push(glob);
    }
    Ok(out)
}

/// The credentials a set's mirrors clone with: the username each forge takes with a bare
/// token, unless one is given.
fn set_credentials(
    forge: ListingForge,
    username: Option<&str>,
    token: &str,
) -> Result<Credentials, HubError> {
    let default_user = match forge {
        ListingForge::GitHub => "x-access-token",
        ListingForge::GitLab | ListingForge::Gitea => "oauth2",
        ListingForge::Bitbucket => "x-token-auth",
    };
    let username = username
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or(default_user);
    Credentials::new(Some(username), token)
        .map_err(|e| HubError::invalid(ErrorCode::InvalidRequest, "token", e.to_string()))
}

/// The token the listing sends: Bitbucket app passwords go with their user name as Basic.
fn listing_token(forge: ListingForge, c: &Credentials) -> SecretString {
    if forge == ListingForge::Bitbucket && c.username != "x-token-auth" {
        SecretString::from(format!("{}:{}", c.username, c.secret.expose_secret()))
    } else {
        c.secret.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> MirrorSet {
        MirrorSet {
            id: 1,
            forge: "github".into(),
            api_url: "https://api.github.com".into(),
            namespace: "acme".into(),
            owner: "acme".into(),
            has_credentials: true,
            installation_id: None,
            include: vec![],
            exclude: vec![],
            archived: false,
            forks: false,
            visibility: "as-upstream".into(),
            mode: Mode::Mirror,
            sync_interval_secs: None,
            list_interval_secs: 3600,
            follow_renames: false,
            next_list_at: Utc::now(),
            listing: false,
            last_listed_at: None,
            last_list_error_code: None,
            last_list_error_message: None,
            list_failures: 0,
            created_at: Utc::now(),
        }
    }

    fn listed(name: &str) -> ListedRepo {
        ListedRepo {
            id: name.into(),
            name: name.into(),
            path: format!("acme/{name}"),
            clone_url: format!("https://github.com/acme/{name}.git"),
            description: String::new(),
            private: false,
            archived: false,
            fork: false,
        }
    }

    #[test]
    fn filters_take_include_then_exclude_then_forks_and_archived() {
        let mut s = set();
        s.include = vec!["api-*".into(), "web".into()];
        s.exclude = vec!["*-old".into()];
        let f = Filters::new(&s);
        assert_eq!(f.skip_reason(&s, &listed("api-core")), None);
        assert_eq!(
            f.skip_reason(&s, &listed("API-Core")),
            None,
            "case-insensitive"
        );
        assert_eq!(f.skip_reason(&s, &listed("WEB")), None);
        assert!(f
            .skip_reason(&s, &listed("docs"))
            .unwrap()
            .contains("include"));
        assert!(f
            .skip_reason(&s, &listed("api-old"))
            .unwrap()
            .contains("\"*-old\""));
        let mut fork = listed("api-fork");
        fork.fork = true;
        assert!(f.skip_reason(&s, &fork).unwrap().contains("fork"));
        s.forks = true;
        assert_eq!(Filters::new(&s).skip_reason(&s, &fork), None);
        let mut archived = listed("api-arch");
        archived.archived = true;
        assert!(f.skip_reason(&s, &archived).unwrap().contains("archived"));
    }

    #[test]
    fn events_concern_their_namespace_and_its_parents_only() {
        assert!(within_namespace("acme/api", "acme"));
        assert!(within_namespace("acme/platform/api", "acme"));
        assert!(within_namespace("acme/platform/api", "acme/platform"));
        assert!(!within_namespace("acme-labs/api", "acme"));
        assert!(!within_namespace("acme/api", "acme/platform"));
    }

    #[test]
    fn namespaces_are_safe_segments_and_subgroups_only_on_gitlab() {
        assert_eq!(
            check_namespace(ListingForge::GitHub, "acme").unwrap(),
            "acme"
        );
        assert!(check_namespace(ListingForge::GitHub, "acme/platform").is_err());
        assert_eq!(
            check_namespace(ListingForge::GitLab, "/acme/platform/").unwrap(),
            "acme/platform"
        );
        for bad in ["", "..", "a b", "acme/../x", "a%2Fb", "acme?x=1"] {
            assert!(check_namespace(ListingForge::GitLab, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_urls_are_http_without_credentials() {
        assert!(parse_api_url("https://gitlab.example.com").is_ok());
        for bad in [
            "gitlab.example.com",
            "ftp://x",
            "https://u:p@x.example",
            "https://x.example/?a=1",
        ] {
            assert!(parse_api_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clone_urls_must_be_on_the_forges_own_host() {
        let ok = |api: &str, clone: &str| listed_clone_url(api, clone).is_ok();
        assert!(ok(
            "https://api.github.com",
            "https://github.com/acme/api.git"
        ));
        assert!(ok(
            "https://api.bitbucket.org",
            "https://bitbucket.org/acme/api.git"
        ));
        assert!(ok(
            "https://gitlab.example.com",
            "https://gitlab.example.com/acme/x/api.git"
        ));
        assert!(ok(
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/acme/api.git"
        ));
        assert!(!ok(
            "https://api.github.com",
            "https://evil.example/acme/api.git"
        ));
        assert!(!ok(
            "https://gitlab.example.com",
            "https://u:p@gitlab.example.com/a/b.git"
        ));
        assert!(!ok(
            "https://gitlab.example.com",
            "git://gitlab.example.com/a/b.git"
        ));
        assert!(!ok("https://gitlab.example.com", "not a url"));
    }

    #[test]
    fn listing_backs_off_up_to_the_interval() {
        let hour = Duration::from_secs(3600);
        assert_eq!(retry_backoff(0, hour), Duration::from_secs(60));
        assert_eq!(retry_backoff(1, hour), Duration::from_secs(120));
        assert_eq!(retry_backoff(30, hour), hour);
    }

    #[test]
    fn bitbucket_app_passwords_list_with_their_user() {
        let c = set_credentials(ListingForge::Bitbucket, Some("alice"), "app-pass").unwrap();
        assert_eq!(
            listing_token(ListingForge::Bitbucket, &c).expose_secret(),
            "alice:app-pass"
        );
        let c = set_credentials(ListingForge::Bitbucket, None, "tok").unwrap();
        assert_eq!(
            listing_token(ListingForge::Bitbucket, &c).expose_secret(),
            "tok"
        );
        let c = set_credentials(ListingForge::GitHub, None, "tok").unwrap();
        assert_eq!(c.username, "x-access-token");
    }
}
