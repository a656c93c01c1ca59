//! Forge webhooks, from bytes to typed values: which forge sent a delivery ([`detect`]), is it
//! authentic ([`verify`], over the raw body, before anything is parsed), its delivery id and
//! event name, and what it says ([`parse`]: a push, a ping, a comment, or something ignored).
//!
//! Everything here is a pure function of (headers, raw body, secrets): no network, no clock,
//! no database. The HTTP layer reads the request, calls these in the order
//! `detect` → `verify` → `delivery_id` (replay check) → `parse`, and answers.
//!
//! Real payloads of every forge are in `fixtures/webhooks/` (at the repository root) and tested in
//! `tests/fixtures.rs`.

#![forbid(unsafe_code)]

mod detect;
mod json;
mod parse;
mod tip;
mod verify;

use std::fmt;

pub use detect::{delivery_id, detect, event_name};
pub use parse::parse;
pub use tip::{pushed_tip, PushedTip};
pub use verify::verify;

/// Which forge sent a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forge {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
    BitbucketCloud,
    BitbucketServer,
    /// Anything that is not one of the forges above: a script, a CI job, `curl`.
    Generic,
}

impl Forge {
    pub const ALL: &'static [Forge] = &[
        Forge::GitHub,
        Forge::GitLab,
        Forge::Gitea,
        Forge::Forgejo,
        Forge::BitbucketCloud,
        Forge::BitbucketServer,
        Forge::Generic,
    ];

    /// The stable name used in URLs, logs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
            Forge::Forgejo => "forgejo",
            Forge::BitbucketCloud => "bitbucket-cloud",
            Forge::BitbucketServer => "bitbucket-server",
            Forge::Generic => "generic",
        }
    }

    /// The inverse of [`Forge::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|f| f.as_str() == s)
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which URL a delivery came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    GitHub,
    GitLab,
    /// Gitea and Forgejo.
    Gitea,
    /// Bitbucket Cloud and Bitbucket Server / Data Center.
    Bitbucket,
    Generic,
    /// A per-repository URL: any forge, detected from the headers.
    Repository,
}

impl Endpoint {
    /// The endpoint named by the last segment of a `/hooks/{segment}` path: `github`, `gitlab`,
    /// `gitea` (also `forgejo`), `bitbucket`, `generic`. The per-repository endpoint has its own
    /// route and is not named by a segment.
    pub fn from_path_segment(segment: &str) -> Option<Self> {
        match segment {
            "github" => Some(Endpoint::GitHub),
            "gitlab" => Some(Endpoint::GitLab),
            "gitea" | "forgejo" => Some(Endpoint::Gitea),
            "bitbucket" => Some(Endpoint::Bitbucket),
            "generic" => Some(Endpoint::Generic),
            _ => None,
        }
    }
}

/// What an authenticated delivery says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Ref updates (branch/tag push, creation, deletion, force push, several refs at once).
    Push {
        /// Every URL form of the pushed repository the payload carries (clone, SSH, git://,
        /// web page…), in payload order without duplicates. Match them with
        /// [`mirrorhub_core::repo_key::repo_match_key`] (or [`Event::repo_keys`]); some forms
        /// name the repository differently (Bitbucket Server's `/scm/` clone path, an SSH port),
        /// so match on any of them, never on the first only.
        repo_urls: Vec<String>,
        /// Full ref names (`refs/heads/main`, `refs/tags/v1`) the payload names. May be empty:
        /// GitLab omits per-ref detail for pushes of more than three refs, so never rely on this
        /// list to decide what to fetch.
        refs: Vec<String>,
    },
    /// A ping or test delivery: GitHub `ping`, Bitbucket Server `diagnostics:ping`.
    Ping {
        /// As far as the payload tells (a GitHub App's ping names no repository).
        repo_urls: Vec<String>,
    },
    /// A comment on an issue or a merge/pull request.
    Comment(Comment),
    /// A repository of an organization, group or account was created, renamed, transferred,
    /// archived or deleted (GitHub `repository`, GitLab system and group hooks' `project_*`,
    /// Gitea `repository`): what mirror sets of that namespace listen to.
    Namespace(NamespaceEvent),
    /// A GitHub App was installed, uninstalled or given other repositories (`installation`,
    /// `installation_repositories`).
    Installation(InstallationEvent),
    /// Anything else: answered and ignored. `event` is the forge's event name.
    Ignored { event: String },
}

/// A change to the repositories of a namespace, as the forge tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceEvent {
    /// The forge's word: `created`, `deleted`, `renamed`, `archived`, `transferred`,
    /// `project_create`, `project_rename`, `project_destroy`, …
    pub action: String,
    /// The repository's full path now: `acme/api`, `acme/platform/api`.
    pub path: String,
    /// Its path before a rename or transfer, where the forge sends it.
    pub old_path: Option<String>,
}

/// A GitHub App installation event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationEvent {
    /// `created`, `deleted`, `suspend`, `unsuspend`, `added`, `removed`, …
    pub action: String,
    pub installation_id: u64,
    /// The account (organization or user) the App is installed on.
    pub account: String,
}

impl Event {
    /// The repository URLs the event carries (empty for [`Event::Ignored`]).
    pub fn repo_urls(&self) -> &[String] {
        match self {
            Event::Push { repo_urls, .. } | Event::Ping { repo_urls } => repo_urls,
            Event::Comment(c) => &c.repo_urls,
            Event::Namespace(_) | Event::Installation(_) | Event::Ignored { .. } => &[],
        }
    }

    /// The distinct match keys of [`Event::repo_urls`], for looking up mirrors by upstream.
    pub fn repo_keys(&self) -> Vec<String> {
        mirrorhub_core::repo_key::repo_match_keys(self.repo_urls())
    }
}

/// A comment on an issue or a merge/pull request, for the comment bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub action: CommentAction,
    /// The comment's text as written (Markdown source).
    pub body: String,
    /// The text before an edit, where the forge sends it (GitHub and Gitea `changes.body.from`,
    /// Bitbucket Server `previousComment`).
    pub previous_body: Option<String>,
    /// The forge's id of the comment, as text.
    pub comment_id: String,
    /// The author's login / username.
    pub author: String,
    /// Whether the author is a bot or service account, as far as the forge tells (GitHub
    /// `type: Bot`, Bitbucket Cloud `app_user`, Bitbucket Server `SERVICE`, GitLab's project and
    /// group access-token bots by their user name). Gitea says nothing: always false there.
    pub author_is_bot: bool,
    /// GitHub's `author_association` (OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE…).
    pub author_association: Option<String>,
    /// `owner/name` on the forge (GitLab `path_with_namespace`, Bitbucket Server
    /// `PROJECT/slug`).
    pub repo_full_name: String,
    pub repo_urls: Vec<String>,
    /// GitLab's project id.
    pub project_id: Option<u64>,
    pub thread: Thread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommentAction {
    Created,
    Edited,
    Deleted,
}

/// Where a comment was made. Numbers are what users see (GitLab `iid`, GitHub/Gitea `number`,
/// Bitbucket `id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Thread {
    Issue { number: u64 },
    PullRequest { number: u64 },
}

/// Why a delivery could not be taken. Messages say what was wrong and never echo the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("this endpoint takes deliveries from {expected}; the request has none of its headers")]
    UnknownForge {
        /// The forges the endpoint takes and the headers that tell them.
        expected: &'static str,
    },
    #[error("the delivery has no {0} header naming its event")]
    MissingEventHeader(&'static str),
    #[error("the body is not a JSON object: {detail}")]
    MalformedJson { detail: String },
    #[error("the payload has no {0}, or it is not of the expected type")]
    MissingField(&'static str),
}

/// The delivery is not authenticated. The caller answers 401 and says nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("the webhook signature or token is missing or wrong")]
pub struct Unauthorized;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forge_names_round_trip() {
        for forge in Forge::ALL {
            assert_eq!(Forge::parse(forge.as_str()), Some(*forge));
            assert_eq!(forge.to_string(), forge.as_str());
        }
        assert_eq!(Forge::parse("bitbucket"), None);
        assert_eq!(Forge::parse("GitHub"), None);
        let names: Vec<_> = Forge::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "github",
                "gitlab",
                "gitea",
                "forgejo",
                "bitbucket-cloud",
                "bitbucket-server",
                "generic"
            ]
        );
    }

    #[test]
    fn endpoints_from_path_segments() {
        let table = [
            ("github", Some(Endpoint::GitHub)),
            ("gitlab", Some(Endpoint::GitLab)),
            ("gitea", Some(Endpoint::Gitea)),
            ("forgejo", Some(Endpoint::Gitea)),
            ("bitbucket", Some(Endpoint::Bitbucket)),
            ("generic", Some(Endpoint::Generic)),
            ("GitHub", None),
            ("", None),
            ("repository", None),
        ];
        for (segment, endpoint) in table {
            assert_eq!(Endpoint::from_path_segment(segment), endpoint, "{segment}");
        }
    }

    #[test]
    fn error_messages_say_what_was_wrong() {
        assert_eq!(
            Unauthorized.to_string(),
            "the webhook signature or token is missing or wrong"
        );
        assert_eq!(
            WebhookError::MissingField("comment.body").to_string(),
            "the payload has no comment.body, or it is not of the expected type"
        );
    }

    #[test]
    fn repo_keys_are_distinct_and_skip_garbage() {
        let event = Event::Push {
            repo_urls: vec![
                "https://github.com/o/r.git".into(),
                "git@github.com:o/r.git".into(),
                "not a url".into(),
                "https://github.com:8443/o/r".into(),
            ],
            refs: vec![],
        };
        assert_eq!(event.repo_keys(), ["github.com/o/r", "github.com:8443/o/r"]);
        assert!(Event::Ignored { event: "x".into() }.repo_keys().is_empty());
    }
}
