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

impl ForgeKind {
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

fn not_found(forge: ForgeKind, repo: &str, hook_id: Option<&str>) -> String {
    match hook_id {
        None => format!("{forge} has no repository {repo} that the token can see"),
        Some(id) => format!(
            "{forge} has no webhook {id} on {repo} (or the token cannot see the repository)"
        ),
    }
}

/// `outer: inner: innermost`, skipping a cause whose text its parent already shows.
fn cause_chain(error: &(dyn StdError + 'static)) -> String {
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
fn scrub(text: String, token: &SecretString) -> String {
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
}
