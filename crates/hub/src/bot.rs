//! The comment bot: `/mirror`, `/migrate`, `/sync`, `/status` and `/help` typed in an issue or
//! merge-request comment on GitHub, GitLab or Gitea. A comment arrives as a webhook delivery
//! (already authenticated and recorded once); this module decides who may command the hub,
//! runs each command through the same services as the API, and answers in the thread: a 👀
//! at once, then one reply that is edited in place when the work ends.
//!
//! Each command line of a comment is taken once (`Store::take_bot_command`), so a redelivered
//! event or an edit that keeps a command never runs it twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use mirrorhub_bot::{Command, CommandError, Found, RepoSummary, StatusView, Target, WebhookNote};
use mirrorhub_core::repo_key::repo_match_keys;
use mirrorhub_core::{ErrorCode, Mode, Outcome, RepoState, Trigger};
use mirrorhub_forges::{CommentThread, ForgeKind, ForgeRepo};
use mirrorhub_store::{Repo, WebhookHook};
use mirrorhub_webhooks::{Comment, CommentAction, Forge, Thread};
use secrecy::ExposeSecret;

use crate::{CreateMirrorSet, CreateRepo, Hub, HubError};

/// The operator's settings of the bot.
#[derive(Debug, Clone, Default)]
pub struct BotConfig {
    /// The bot's own accounts on the forges: their comments are never read.
    pub usernames: Vec<String>,
    /// People who may use the bot whatever their rights on the repository.
    pub allowed_users: Vec<String>,
    /// Only `allowed_users` may use the bot (the repository's writers may not).
    pub only_allowed: bool,
    /// Forge namespace (organization, group, user; lower case) -> hub owner.
    pub owner_map: Vec<(String, String)>,
}

/// How long the bot waits for a sync it started before it says it is still running.
const WAIT_FOR_SYNC: Duration = Duration::from_secs(3600);

impl Hub {
    /// Runs the commands of a comment, in the background of the delivery that carried it.
    pub(crate) fn spawn_comment(self: &Arc<Self>, forge: Forge, comment: Comment) {
        let Some(kind) = forge_kind(forge) else {
            tracing::debug!(
                forge = forge.as_str(),
                "comment ignored: the bot answers on GitHub, GitLab and Gitea"
            );
            return;
        };
        if !self.forges.bot_enabled(kind) {
            tracing::debug!(
                forge = forge.as_str(),
                "comment ignored: no bot credentials for this forge"
            );
            return;
        }
        let hub = Arc::clone(self);
        tokio::spawn(async move { hub.handle_comment(forge, kind, comment).await });
    }

    async fn handle_comment(&self, forge: Forge, kind: ForgeKind, comment: Comment) {
        let parsed = match comment.action {
            CommentAction::Deleted => return,
            CommentAction::Created => mirrorhub_bot::parse_comment(&comment.body),
            CommentAction::Edited => match &comment.previous_body {
                Some(previous) => mirrorhub_bot::new_commands(previous, &comment.body),
                // Without the old text the per-comment record still keeps old commands from
                // running again.
                None => mirrorhub_bot::parse_comment(&comment.body),
            },
        };
        if parsed.commands.is_empty() {
            return;
        }
        if comment.author_is_bot || self.is_own_account(&comment.author) {
            tracing::debug!(author = %comment.author, "comment by a bot ignored");
            return;
        }
        let scope = format!("{}#{}", comment.repo_full_name, comment.comment_id);
        let mut taken = Vec::new();
        for found in parsed.commands {
            match self
                .store
                .take_bot_command(forge.as_str(), &scope, &found.key(), Utc::now())
                .await
            {
                Ok(true) => taken.push(found),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "could not record a bot command; it is not run")
                }
            }
        }
        if taken.is_empty() {
            return;
        }
        let thread = CommentThread {
            repo: ForgeRepo {
                kind,
                path: comment.repo_full_name.clone(),
            },
            number: match comment.thread {
                Thread::Issue { number } | Thread::PullRequest { number } => number,
            },
            merge_request: matches!(comment.thread, Thread::PullRequest { .. }),
            project_id: comment.project_id,
        };
        if let Err(e) = self.forges.react(&thread, &comment.comment_id).await {
            tracing::warn!(error = %e, "could not acknowledge the comment");
        }
        if !self.may_command(&thread, &comment).await {
            let rule = self.permission_rule();
            let line = &taken[0].line;
            self.post(
                &thread,
                mirrorhub_bot::reply_denied(line, &comment.author, &rule),
            )
            .await;
            return;
        }
        for found in taken {
            self.run_command(&thread, &comment, found).await;
        }
    }

    fn is_own_account(&self, author: &str) -> bool {
        self.config
            .bot
            .usernames
            .iter()
            .any(|u| u.eq_ignore_ascii_case(author))
    }

    /// Writers of the repository (GitHub's author association, else the forge's permission
    /// API), widened or narrowed by the operator's allowlist.
    async fn may_command(&self, thread: &CommentThread, comment: &Comment) -> bool {
        let bot = &self.config.bot;
        if bot
            .allowed_users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&comment.author))
        {
            return true;
        }
        if bot.only_allowed {
            return false;
        }
        if matches!(
            comment.author_association.as_deref(),
            Some("OWNER" | "MEMBER" | "COLLABORATOR")
        ) {
            return true;
        }
        match self
            .forges
            .may_write(&thread.repo, thread.project_id, &comment.author)
            .await
        {
            Ok(may) => may,
            Err(e) => {
                tracing::warn!(error = %e, "could not check the commenter's permission; refused");
                false
            }
        }
    }

    fn permission_rule(&self) -> String {
        let bot = &self.config.bot;
        let listed = bot.allowed_users.join(", ");
        match (bot.only_allowed, listed.is_empty()) {
            (true, _) => format!("only these people may use it on this hub: {listed}"),
            (false, true) => {
                "people who may write to this repository (Developer or more on GitLab)".to_owned()
            }
            (false, false) => format!(
                "people who may write to this repository (Developer or more on GitLab), and {listed}"
            ),
        }
    }

    async fn run_command(&self, thread: &CommentThread, comment: &Comment, found: Found) {
        let line = found.line.clone();
        let command = match found.result {
            Ok(command) => command,
            // Other bots' and the forges' own slash commands (GitLab's `/assign`, `/close`…)
            // are not ours: only near-misses of our words get an answer.
            Err(CommandError::Unknown { word }) if !is_typo_of_ours(&word) => {
                tracing::debug!(%word, "not a command of ours; ignored");
                return;
            }
            Err(e) => {
                self.post(thread, mirrorhub_bot::reply_usage_for(&line, &e))
                    .await;
                return;
            }
        };
        tracing::info!(command = %line, author = %comment.author, repo = %comment.repo_full_name, "bot command");
        match command {
            Command::Help => {
                self.post(thread, mirrorhub_bot::reply_help(&line)).await;
            }
            Command::Status { target } => match self.resolve(comment, target).await {
                Ok(repo) => {
                    let view = match self.statuses().await {
                        Ok(statuses) => self.status_view(&repo, &statuses),
                        Err(e) => {
                            self.post(thread, failed(&line, &e)).await;
                            return;
                        }
                    };
                    self.post(thread, mirrorhub_bot::reply_status(&line, &view))
                        .await;
                }
                Err(e) => {
                    self.post(thread, failed(&line, &e)).await;
                }
            },
            Command::Sync { target } => self.bot_sync(thread, comment, &line, target).await,
            Command::MirrorOrg { namespace, owner } => {
                self.bot_mirror_org(thread, comment, &line, namespace, owner)
                    .await
            }
            Command::Mirror {
                url,
                target,
                visibility,
                interval,
            } => {
                self.bot_create(
                    thread,
                    comment,
                    &line,
                    Mode::Mirror,
                    (url, target, visibility, interval),
                )
                .await
            }
            Command::Migrate {
                url,
                target,
                visibility,
            } => {
                self.bot_create(
                    thread,
                    comment,
                    &line,
                    Mode::Migrate,
                    (url, target, visibility, None),
                )
                .await
            }
        }
    }

    async fn bot_create(
        &self,
        thread: &CommentThread,
        comment: &Comment,
        line: &str,
        mode: Mode,
        (url, target, visibility, interval): (
            Option<String>,
            Option<Target>,
            Option<mirrorhub_bot::Visibility>,
            Option<String>,
        ),
    ) {
        let Some(url) = url.or_else(|| clone_url(comment)) else {
            self.post(
                thread,
                mirrorhub_bot::reply_failed(
                    line,
                    "invalid_url",
                    "the comment's repository has no clone URL in the event: give one, e.g. `/mirror https://host/group/project.git`",
                ),
            )
            .await;
            return;
        };
        let (owner, name) = match target {
            Some(t) => (t.owner, Some(t.name)),
            None => (self.hub_owner_for(&comment.repo_full_name), None),
        };
        let verb = if mode == Mode::Mirror {
            "Mirroring"
        } else {
            "Migrating"
        };
        let shown_target = format!(
            "{owner}/{}",
            name.clone().unwrap_or_else(|| last_segment(&url))
        );
        let reply_id = self
            .post(
                thread,
                mirrorhub_bot::reply_working(line, &format!("{verb} {url} into {shown_target}")),
            )
            .await;
        let is_ssh = mirrorhub_core::UpstreamUrl::parse(&url)
            .is_ok_and(|(u, _)| u.scheme() == mirrorhub_core::Scheme::Ssh);
        // The bot's own token reads private repositories on its forge; SSH upstreams are
        // reached with the owner's newest deploy key instead (a comment cannot carry a key).
        let token = match url::Url::parse(&url)
            .ok()
            .filter(|_| !is_ssh)
            .and_then(|u| self.forges.forge_for(&u))
        {
            Some(repo) if repo.kind == thread.repo.kind => {
                self.forges.bot_token(&repo).await.ok().flatten()
            }
            _ => None,
        };
        let ssh_key_id = if is_ssh {
            self.list_ssh_keys(&owner)
                .await
                .ok()
                .and_then(|keys| keys.last().map(|k| k.id))
        } else {
            None
        };
        let started = Instant::now();
        let request = CreateRepo {
            url: url.clone(),
            username: None,
            token: token.map(|t| t.expose_secret().to_owned()),
            owner,
            name,
            visibility: visibility.map(|v| match v {
                mirrorhub_bot::Visibility::Public => "public".to_owned(),
                mirrorhub_bot::Visibility::Private => "private".to_owned(),
            }),
            description: Some(format!(
                "{} by request of @{} in {}",
                if mode == Mode::Mirror {
                    "Mirrored"
                } else {
                    "Migrated"
                },
                comment.author,
                comment.repo_full_name
            )),
            mode: Some(mode.as_str().to_owned()),
            sync_interval: interval,
            ssh_key_id,
            ..CreateRepo::default()
        };
        let result = match self.create_repo(request).await {
            Ok(repo) => self.wait_for_sync(repo.id, None).await,
            Err(e) => Err(e),
        };
        let body = match result {
            Ok(repo) if repo.state == RepoState::Ready => {
                mirrorhub_bot::reply_done(line, &self.summary(&repo, started.elapsed()))
            }
            Ok(repo) => mirrorhub_bot::reply_failed(
                line,
                repo.last_error_code.as_deref().unwrap_or("git_failed"),
                repo.last_error_message
                    .as_deref()
                    .unwrap_or("the copy failed"),
            ),
            Err(e) => failed(line, &e),
        };
        self.finish_reply(thread, reply_id, body).await;
    }

    /// `/mirror-org`: a mirror set of the namespace, listed with the bot's token on the forge
    /// the comment came from. Only the namespace's owners (and the operator's allowlist) may:
    /// it mirrors every repository, not the one the command was typed in.
    async fn bot_mirror_org(
        &self,
        thread: &CommentThread,
        comment: &Comment,
        line: &str,
        namespace: Option<String>,
        owner: Option<String>,
    ) {
        let namespace = namespace.unwrap_or_else(|| {
            comment
                .repo_full_name
                .rsplit_once('/')
                .map_or(comment.repo_full_name.as_str(), |(ns, _)| ns)
                .to_owned()
        });
        if self.forges.is_github_app() && thread.repo.kind == ForgeKind::GitHub {
            // An App's tokens last an hour: its sets are made by its installations, with
            // tokens minted as they are needed.
            self.post(
                thread,
                mirrorhub_bot::reply_failed(
                    line,
                    ErrorCode::InvalidRequest.as_str(),
                    &format!("this hub's bot is a GitHub App: install it on {namespace} (all repositories, or the ones to mirror) and every repository it is given is mirrored, the new ones too"),
                ),
            )
            .await;
            return;
        }
        let listed_user = self
            .config
            .bot
            .allowed_users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&comment.author));
        if !listed_user {
            match self
                .forges
                .owns_namespace(&thread.repo, &namespace, &comment.author)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    let rule = format!(
                        "owners of {namespace} (an organization's owners, a group's Owners, or the account itself)"
                    );
                    self.post(
                        thread,
                        mirrorhub_bot::reply_denied(line, &comment.author, &rule),
                    )
                    .await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, %namespace, "could not check who owns the namespace; refused");
                    self.post(
                        thread,
                        mirrorhub_bot::reply_failed(
                            line,
                            ErrorCode::ForgeApiFailed.as_str(),
                            &format!("could not check who owns {namespace}: {e}"),
                        ),
                    )
                    .await;
                    return;
                }
            }
        }
        let apis = self.forges.apis();
        let (forge, api_url) = match thread.repo.kind {
            ForgeKind::GitHub => ("github", apis.github_api.as_str()),
            ForgeKind::GitLab => ("gitlab", apis.gitlab.as_str()),
            ForgeKind::Gitea => ("gitea", apis.gitea.as_ref().map_or("", |u| u.as_str())),
        };
        let token = match self.forges.bot_token(&thread.repo).await {
            Ok(token) => token,
            Err(e) => {
                self.post(thread, failed_forge(line, &e)).await;
                return;
            }
        };
        let owner = owner.unwrap_or_else(|| self.hub_owner_for(&format!("{namespace}/-")));
        let reply_id = self
            .post(
                thread,
                mirrorhub_bot::reply_working(
                    line,
                    &format!("Mirroring every repository of {namespace} into {owner}"),
                ),
            )
            .await;
        let request = CreateMirrorSet {
            forge: forge.to_owned(),
            api_url: Some(api_url.to_owned()),
            namespace: namespace.clone(),
            owner,
            token: token.map(|t| t.expose_secret().to_owned()),
            ..CreateMirrorSet::default()
        };
        let body = match self.create_mirror_set(request).await {
            Ok(set) => mirrorhub_bot::reply_set_created(
                line,
                &mirrorhub_bot::SetSummary {
                    namespace,
                    owner: set.owner.clone(),
                    web_url: format!("{}/-/sets/{}", self.config.public_url, set.id),
                },
            ),
            Err(e) => failed(line, &e),
        };
        self.finish_reply(thread, reply_id, body).await;
    }

    async fn bot_sync(
        &self,
        thread: &CommentThread,
        comment: &Comment,
        line: &str,
        target: Option<Target>,
    ) {
        let repo = match self.resolve(comment, target).await {
            Ok(repo) => repo,
            Err(e) => {
                self.post(thread, failed(line, &e)).await;
                return;
            }
        };
        let full_name = format!("{}/{}", repo.owner, repo.name);
        let reply_id = self
            .post(
                thread,
                mirrorhub_bot::reply_working(line, &format!("Syncing {full_name}")),
            )
            .await;
        let started = Instant::now();
        let before = self
            .store
            .list_runs(repo.id, 1)
            .await
            .ok()
            .and_then(|runs| runs.first().map(|r| r.id));
        let result = match self
            .request_sync(&repo.owner, &repo.name, Trigger::Bot)
            .await
        {
            Ok(_) => self.wait_for_sync(repo.id, before).await,
            Err(e) => Err(e),
        };
        let latest_run = match &result {
            Ok(_) => self
                .store
                .list_runs(repo.id, 1)
                .await
                .ok()
                .and_then(|runs| runs.into_iter().next()),
            Err(_) => None,
        };
        let body = match (result, latest_run) {
            (Err(e), _) => failed(line, &e),
            (Ok(after), Some(run)) if run.outcome == Outcome::Failed => {
                mirrorhub_bot::reply_failed(
                    line,
                    run.error_code.as_deref().unwrap_or("git_failed"),
                    run.error_message
                        .as_deref()
                        .or(after.last_error_message.as_deref())
                        .unwrap_or("the sync failed"),
                )
            }
            (Ok(after), run) => mirrorhub_bot::reply_synced(
                line,
                &self.summary(&after, started.elapsed()),
                run.map_or(0, |r| r.ref_changes.len()),
            ),
        };
        self.finish_reply(thread, reply_id, body).await;
    }

    /// The repository a `/sync` or `/status` means: the one named, else the hub's mirror of
    /// the repository the comment was written in.
    async fn resolve(&self, comment: &Comment, target: Option<Target>) -> Result<Repo, HubError> {
        if let Some(t) = target {
            return self.get_repo(&t.owner, &t.name).await;
        }
        let repos = self
            .store
            .repos_by_match_keys(&repo_match_keys(&comment.repo_urls))
            .await?;
        repos.into_iter().next().ok_or_else(|| {
            HubError::NotFound(format!(
                "(no mirror of {} on this hub: `/mirror` creates one)",
                comment.repo_full_name
            ))
        })
    }

    /// Waits until the repository's newest run is newer than `after_run` and finished; the
    /// repository as it is then. Gives up after [`WAIT_FOR_SYNC`] and returns it as it is.
    async fn wait_for_sync(&self, repo_id: i64, after_run: Option<i64>) -> Result<Repo, HubError> {
        let deadline = Instant::now() + WAIT_FOR_SYNC;
        loop {
            let runs = self.store.list_runs(repo_id, 1).await?;
            let done = runs
                .first()
                .is_some_and(|r| Some(r.id) > after_run && r.finished_at.is_some());
            let repo = self
                .store
                .get_repo_by_id(repo_id)
                .await?
                .ok_or_else(|| HubError::NotFound(format!("#{repo_id} (deleted meanwhile)")))?;
            if (done && repo.state != RepoState::Cloning) || Instant::now() > deadline {
                return Ok(repo);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn summary(&self, repo: &Repo, duration: Duration) -> RepoSummary {
        let full_name = format!("{}/{}", repo.owner, repo.name);
        RepoSummary {
            web_url: format!("{}/{full_name}", self.config.public_url),
            clone_url: format!("{}/{full_name}.git", self.config.public_url),
            full_name,
            branches: repo.branches,
            tags: repo.tags,
            duration,
            mode: repo.mode.as_str().to_owned(),
            webhook: match (&repo.webhook.hook, repo.mode) {
                (_, Mode::Migrate) => WebhookNote::NotApplicable,
                (WebhookHook::Registered { .. }, _) => WebhookNote::Registered,
                (WebhookHook::Failed(reason), _) => WebhookNote::Failed(reason.clone()),
                (WebhookHook::None, _) => WebhookNote::Manual {
                    url: self.webhook_url(repo),
                },
            },
        }
    }

    fn status_view(&self, repo: &Repo, statuses: &crate::Statuses) -> StatusView {
        let full_name = format!("{}/{}", repo.owner, repo.name);
        StatusView {
            web_url: format!("{}/{full_name}", self.config.public_url),
            full_name,
            mode: repo.mode.as_str().to_owned(),
            status: statuses.of(repo).as_str().to_owned(),
            last_success: repo.last_success_at.map(|t| t.to_rfc3339()),
            last_error: repo
                .last_error_code
                .clone()
                .map(|c| (c, repo.last_error_message.clone().unwrap_or_default())),
            branches: repo.branches,
            tags: repo.tags,
            next_sync: repo.next_sync_at.map(|t| t.to_rfc3339()),
            paused_reason: repo.paused_reason.clone(),
            stale: statuses.is_stale(repo),
        }
    }

    /// The hub owner for a forge repository `namespace/…/name`: the operator's mapping of its
    /// namespace (or of its first segment), else the first segment as it is.
    fn hub_owner_for(&self, forge_path: &str) -> String {
        let namespace = forge_path
            .rsplit_once('/')
            .map_or(forge_path, |(ns, _)| ns)
            .to_ascii_lowercase();
        let first = namespace.split('/').next().unwrap_or_default().to_owned();
        let map = &self.config.bot.owner_map;
        map.iter()
            .find(|(from, _)| *from == namespace)
            .or_else(|| map.iter().find(|(from, _)| *from == first))
            .map(|(_, to)| to.clone())
            .unwrap_or(first)
    }

    /// Posts a reply; its id, or `None` when the forge refused (logged).
    async fn post(&self, thread: &CommentThread, body: String) -> Option<String> {
        match self.forges.reply(thread, &body).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(error = %e, repo = %thread.repo.path, "could not reply in the thread");
                None
            }
        }
    }

    /// Edits the working reply into its final text, or posts the text when there is none.
    async fn finish_reply(&self, thread: &CommentThread, reply_id: Option<String>, body: String) {
        match reply_id {
            Some(id) => {
                if let Err(e) = self.forges.edit_reply(thread, &id, &body).await {
                    tracing::warn!(error = %e, "could not edit the bot's reply; posting a new one");
                    self.post(thread, body).await;
                }
            }
            None => {
                self.post(thread, body).await;
            }
        }
    }
}

/// Whether an unknown command word is one edit (or a plural) away from one of ours.
fn is_typo_of_ours(word: &str) -> bool {
    let word = word.trim_start_matches('/').to_ascii_lowercase();
    ["mirror", "migrate", "sync", "status", "mirror-org", "help"]
        .iter()
        .any(|ours| edit_distance(&word, ours) <= 1 || word.strip_suffix('s') == Some(ours))
}

/// Levenshtein distance of two short ASCII words.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<u8> = b.bytes().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (previous + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            previous = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn forge_kind(forge: Forge) -> Option<ForgeKind> {
    match forge {
        Forge::GitHub => Some(ForgeKind::GitHub),
        Forge::GitLab => Some(ForgeKind::GitLab),
        Forge::Gitea | Forge::Forgejo => Some(ForgeKind::Gitea),
        _ => None,
    }
}

/// The comment's repository's http(s) clone URL, preferring one ending in `.git`.
fn clone_url(comment: &Comment) -> Option<String> {
    let http = |u: &&String| u.starts_with("https://") || u.starts_with("http://");
    comment
        .repo_urls
        .iter()
        .filter(http)
        .find(|u| u.ends_with(".git"))
        .or_else(|| comment.repo_urls.iter().find(http))
        .cloned()
}

fn last_segment(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
    last.strip_suffix(".git").unwrap_or(last).to_owned()
}

/// The ❌ reply for a forge's refusal of the bot's own credentials.
fn failed_forge(line: &str, e: &mirrorhub_forges::ForgeError) -> String {
    mirrorhub_bot::reply_failed(line, ErrorCode::ForgeApiFailed.as_str(), &e.to_string())
}

/// The ❌ reply for a service error: the API's code and message; our own trouble in general
/// words (the detail is in the log).
fn failed(line: &str, e: &HubError) -> String {
    if e.is_internal() {
        tracing::error!(error = ?e, "bot command failed on the hub's side");
        return mirrorhub_bot::reply_failed(
            line,
            e.code().as_str(),
            "the hub failed to do this; the operator can find the cause in its log",
        );
    }
    mirrorhub_bot::reply_failed(line, e.code().as_str(), &e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_ours_and_other_bots_words_are_not() {
        for ours in ["/mirrors", "miror", "/synk", "/Status", "/halp", "/migrat"] {
            assert!(is_typo_of_ours(ours), "{ours}");
        }
        for theirs in [
            "/assign",
            "/close",
            "/label",
            "/shrug",
            "/rebase",
            "/merge",
            "/estimate",
        ] {
            assert!(!is_typo_of_ours(theirs), "{theirs}");
        }
    }
}
