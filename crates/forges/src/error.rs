use std::error::Error as StdError;

use secrecy::{ExposeSecret, SecretString};

use crate::{ForgeKind, ForgeRepo};

/// What went wrong calling a forge, in terms a user can act on. Never carries the token: the
/// free-text fields are built from transport errors (no headers in them) and scrubbed of the
/// token besides.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// 401: the token is unknown, expired or revoked (or not even a valid header value).
    #[error("the token was refused by {forge}: check it is valid")]
    Unauthorized { forge: ForgeKind },
    /// 403: the token is valid but lacks the rights.
    #[error(
        "the token may not manage webhooks of {repo}: it needs {}",
        forge.hook_rights()
    )]
    Forbidden { forge: ForgeKind, repo: String },
    /// 404: no such repository (or hook) that the token can see. Forges answer 404 rather than
    /// 403 for private repositories the token may not read.
    #[error("{}", not_found(*forge, repo, hook_id.as_deref()))]
    NotFound {
        forge: ForgeKind,
        repo: String,
        hook_id: Option<String>,
    },
    /// No connection, TLS failure, or no answer within the timeout.
    #[error("{forge} could not be reached: {reason}")]
    Unreachable { forge: ForgeKind, reason: String },
    /// Any other status: 3xx, 422 (GitHub: the hook exists already), 429, 5xx, …
    #[error("{forge} answered HTTP {status}, which mirrorhub does not handle")]
    Unexpected { forge: ForgeKind, status: u16 },
    /// A success whose body is not what the forge's API documents.
    #[error("{forge} answered with a body mirrorhub cannot read: {detail}")]
    InvalidResponse { forge: ForgeKind, detail: String },
    /// The repository is on a forge whose API is not configured (Gitea without a base URL).
    #[error("no {forge} API is configured")]
    NotConfigured { forge: ForgeKind },

    // The comment bot's calls (`react`, `reply`, `edit_reply`, `may_write`, `bot_token`).
    /// The bot has no credentials for this forge (see `Forges::bot_enabled`).
    #[error("the comment bot has no {forge} credentials: set {}", forge.bot_settings())]
    NoBotCredentials { forge: ForgeKind },
    /// 403 on a bot call: the bot's credentials lack the rights.
    #[error(
        "the comment bot's {forge} credentials may not do this in {repo}: they need {}",
        forge.bot_rights()
    )]
    BotForbidden { forge: ForgeKind, repo: String },
    /// 404 on a comment the bot reacts to or edits: deleted, or in a repository the bot cannot
    /// see.
    #[error("{forge} has no comment {comment_id} in {repo} that the comment bot can see")]
    CommentNotFound {
        forge: ForgeKind,
        repo: String,
        comment_id: String,
    },
    /// 404 on the issue or merge/pull request the bot replies in (or on its repository).
    #[error(
        "{forge} has no {} in {repo} that the comment bot can see",
        thread_name(*forge, *number, *merge_request)
    )]
    ThreadNotFound {
        forge: ForgeKind,
        repo: String,
        number: u64,
        merge_request: bool,
    },
    /// `MIRRORHUB_GITHUB_APP_PRIVATE_KEY` is not an RSA private key in PEM form, or signing
    /// with it failed.
    #[error(
        "the GitHub App private key is not a usable RSA private key (PEM, as GitHub issues it)"
    )]
    InvalidAppKey,
    /// GitHub refused the App's JWT (401): wrong App id, a key that is not the App's, or a
    /// clock far off.
    #[error("GitHub refused the GitHub App's credentials: check the App id, its private key and this host's clock")]
    AppRefused,
    /// The GitHub App is not installed on the repository (404 on its installation).
    #[error("the GitHub App is not installed on {repo} (or not given access to it)")]
    AppNotInstalled { repo: String },
    /// GitHub will not make a token for the installation named by id: uninstalled (404) or
    /// suspended (403).
    #[error("the GitHub App's installation {installation_id} is gone or suspended (HTTP {status}): install the App again and use its new installation")]
    InstallationUnavailable { installation_id: u64, status: u16 },
}

impl ForgeError {
    /// The error for a non-success `status` of a call about `repo` (and `hook_id`).
    pub(crate) fn from_status(status: u16, repo: &ForgeRepo, hook_id: Option<u64>) -> ForgeError {
        let forge = repo.kind;
        match status {
            401 => ForgeError::Unauthorized { forge },
            403 => ForgeError::Forbidden {
                forge,
                repo: repo.path.clone(),
            },
            404 => ForgeError::NotFound {
                forge,
                repo: repo.path.clone(),
                hook_id: hook_id.map(|id| id.to_string()),
            },
            status => ForgeError::Unexpected { forge, status },
        }
    }

    /// The error for a non-success `status` of a comment bot's call about `target` in `repo`.
    pub(crate) fn from_bot_status(status: u16, repo: &ForgeRepo, target: BotTarget) -> ForgeError {
        let forge = repo.kind;
        let repo = repo.path.clone();
        match (status, target) {
            (401, _) => ForgeError::Unauthorized { forge },
            (403, _) => ForgeError::BotForbidden { forge, repo },
            (404, BotTarget::Comment(comment_id)) => ForgeError::CommentNotFound {
                forge,
                repo,
                comment_id: comment_id.to_string(),
            },
            (
                404,
                BotTarget::Thread {
                    number,
                    merge_request,
                },
            ) => ForgeError::ThreadNotFound {
                forge,
                repo,
                number,
                merge_request,
            },
            (404, BotTarget::Repo) => ForgeError::NotFound {
                forge,
                repo,
                hook_id: None,
            },
            (status, _) => ForgeError::Unexpected { forge, status },
        }
    }

    /// `Unreachable` with the cause chain of a transport error, scrubbed of the token.
    pub(crate) fn unreachable(
        forge: ForgeKind,
        cause: &(dyn StdError + 'static),
        token: &SecretString,
    ) -> ForgeError {
        ForgeError::Unreachable {
            forge,
            reason: scrub(cause_chain(cause), token),
        }
    }

    /// `Unreachable` for a call made with no token of ours (the GitHub App's own calls, whose
    /// JWT lives in a header, which transport errors do not show).
    pub(crate) fn unreachable_no_token(
        forge: ForgeKind,
        cause: &(dyn StdError + 'static),
    ) -> ForgeError {
        ForgeError::Unreachable {
            forge,
            reason: cause_chain(cause),
        }
    }

    /// `InvalidResponse` for a call made with no token of ours.
    pub(crate) fn invalid_response_no_token(
        forge: ForgeKind,
        cause: &(dyn StdError + 'static),
    ) -> ForgeError {
        ForgeError::InvalidResponse {
            forge,
            detail: cause_chain(cause),
        }
    }

    /// `InvalidResponse` with the cause chain of a decoding error, scrubbed of the token.
    pub(crate) fn invalid_response(
        forge: ForgeKind,
        cause: &(dyn StdError + 'static),
        token: &SecretString,
    ) -> ForgeError {
        ForgeError::InvalidResponse {
            forge,
            detail: scrub(cause_chain(cause), token),
        }
    }
}

/// What a comment bot's call was about: it says what a 404 means.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BotTarget {
    /// A comment (note) by its id: the one reacted to, or the bot's reply being edited.
    Comment(u64),
    /// The issue or merge/pull request replied in.
    Thread { number: u64, merge_request: bool },
    /// The repository itself (permission look-ups).
    Repo,
}

impl ForgeKind {
    /// The settings that give the comment bot credentials for this forge.
    fn bot_settings(self) -> &'static str {
        match self {
            ForgeKind::GitHub => {
                "MIRRORHUB_GITHUB_APP_ID and MIRRORHUB_GITHUB_APP_PRIVATE_KEY, or MIRRORHUB_GITHUB_TOKEN"
            }
            ForgeKind::GitLab => "MIRRORHUB_GITLAB_TOKEN",
            ForgeKind::Gitea => "MIRRORHUB_GITEA_TOKEN",
        }
    }

    /// What the comment bot's credentials need, in the forge's own words.
    fn bot_rights(self) -> &'static str {
        match self {
            ForgeKind::GitHub => {
                "Issues and Pull requests read and write, Metadata and Contents read (GitHub App or fine-grained token), or the repo scope (classic token)"
            }
            ForgeKind::GitLab => "the api scope and at least the Reporter role in the project",
            ForgeKind::Gitea => {
                "write access to issues and pull requests, and admin rights on the repository to read other users' permissions"
            }
        }
    }

    /// What a token needs to manage a repository's webhooks, in the forge's own words.
    fn hook_rights(self) -> &'static str {
        match self {
            ForgeKind::GitHub => {
                "the admin:repo_hook scope (classic token) or Webhooks read and write (fine-grained token), as an admin of the repository"
            }
            ForgeKind::GitLab => "the api scope and the Maintainer role in the project",
            ForgeKind::Gitea => "admin rights on the repository",
        }
    }
}

/// An issue or merge/pull request as the forge's users write it: `issue #7`, `pull request
/// #8`, GitLab's `merge request !9`.
fn thread_name(forge: ForgeKind, number: u64, merge_request: bool) -> String {
    match (forge, merge_request) {
        (_, false) => format!("issue #{number}"),
        (ForgeKind::GitLab, true) => format!("merge request !{number}"),
        (_, true) => format!("pull request #{number}"),
    }
}

fn not_found(forge: ForgeKind, repo: &str, hook_id: Option<&str>) -> String {
    match hook_id {
        None => format!("{forge} has no repository {repo} that the token can see"),
        Some(id) => format!(
            "{forge} has no webhook {id} on {repo} (or the token cannot see the repository)"
        ),
    }
}

/// `outer: inner: innermost`, skipping a cause whose text its parent already shows.
pub(crate) fn cause_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// Belt and braces: no transport error should hold the token, but if one ever did, it does not
/// leave this crate.
pub(crate) fn scrub(text: String, token: &SecretString) -> String {
    let token = token.expose_secret();
    if token.len() >= 4 && text.contains(token) {
        text.replace(token, "[redacted]")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_the_token() {
        let token = SecretString::from("s3cr3t-token");
        assert_eq!(
            scrub("bad header s3cr3t-token here".into(), &token),
            "bad header [redacted] here"
        );
        assert_eq!(scrub("nothing".into(), &token), "nothing");
    }

    #[test]
    fn statuses_map_to_actionable_errors() {
        let repo = ForgeRepo {
            kind: ForgeKind::GitLab,
            path: "g/p".into(),
        };
        assert!(matches!(
            ForgeError::from_status(401, &repo, None),
            ForgeError::Unauthorized {
                forge: ForgeKind::GitLab
            }
        ));
        assert_eq!(
            ForgeError::from_status(403, &repo, None).to_string(),
            "the token may not manage webhooks of g/p: it needs the api scope and the Maintainer role in the project"
        );
        assert_eq!(
            ForgeError::from_status(404, &repo, Some(9)).to_string(),
            "GitLab has no webhook 9 on g/p (or the token cannot see the repository)"
        );
        assert!(matches!(
            ForgeError::from_status(502, &repo, None),
            ForgeError::Unexpected { status: 502, .. }
        ));
    }

    #[test]
    fn bot_statuses_map_to_actionable_errors() {
        let gitlab = ForgeRepo {
            kind: ForgeKind::GitLab,
            path: "g/p".into(),
        };
        let github = ForgeRepo {
            kind: ForgeKind::GitHub,
            path: "o/r".into(),
        };
        let mr = BotTarget::Thread {
            number: 9,
            merge_request: true,
        };
        let issue = BotTarget::Thread {
            number: 7,
            merge_request: false,
        };
        assert_eq!(
            ForgeError::from_bot_status(404, &gitlab, mr).to_string(),
            "GitLab has no merge request !9 in g/p that the comment bot can see"
        );
        assert_eq!(
            ForgeError::from_bot_status(404, &github, mr).to_string(),
            "GitHub has no pull request #9 in o/r that the comment bot can see"
        );
        assert_eq!(
            ForgeError::from_bot_status(404, &github, issue).to_string(),
            "GitHub has no issue #7 in o/r that the comment bot can see"
        );
        assert_eq!(
            ForgeError::from_bot_status(404, &github, BotTarget::Comment(5)).to_string(),
            "GitHub has no comment 5 in o/r that the comment bot can see"
        );
        assert_eq!(
            ForgeError::from_bot_status(403, &gitlab, BotTarget::Repo).to_string(),
            "the comment bot's GitLab credentials may not do this in g/p: they need the api scope and at least the Reporter role in the project"
        );
        assert!(matches!(
            ForgeError::from_bot_status(401, &gitlab, BotTarget::Repo),
            ForgeError::Unauthorized {
                forge: ForgeKind::GitLab
            }
        ));
        assert!(matches!(
            ForgeError::from_bot_status(429, &gitlab, BotTarget::Repo),
            ForgeError::Unexpected { status: 429, .. }
        ));
        assert_eq!(
            ForgeError::NoBotCredentials {
                forge: ForgeKind::GitHub
            }
            .to_string(),
            "the comment bot has no GitHub credentials: set MIRRORHUB_GITHUB_APP_ID and MIRRORHUB_GITHUB_APP_PRIVATE_KEY, or MIRRORHUB_GITHUB_TOKEN"
        );
    }
}
