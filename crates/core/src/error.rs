//! Stable error codes shared by the API, the CLI, the UI and the bot's replies.

use serde::Serialize;

/// A code a user sees next to a message. The string form never changes once published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request body or a field is malformed.
    InvalidRequest,
    /// The upstream URL cannot be parsed or uses a form we never accept.
    InvalidUrl,
    /// The URL's scheme is not http, https or git.
    UnsupportedScheme,
    /// The URL points at an address the policy refuses (loopback, private, metadata...).
    UrlNotAllowed,
    /// The owner or repository name is not a valid name.
    InvalidName,
    /// A repository with this owner/name exists already.
    RepoExists,
    /// No such repository (or the caller may not see it).
    RepoNotFound,
    /// No user or organization has this name (or the caller may not see it).
    AccountNotFound,
    /// A user or organization with this name exists already.
    AccountExists,
    /// The user has no access token with this id.
    TokenNotFound,
    /// The upstream host could not be resolved or connected to.
    UpstreamUnreachable,
    /// The upstream refused the credentials (or needs some and none were given).
    UpstreamAuthFailed,
    /// The upstream answered, but there is no repository at that path.
    UpstreamNotFound,
    /// The upstream answered, but not as a Git server.
    NotAGitRepository,
    /// The upstream stalled or the transfer took longer than allowed.
    Timeout,
    /// git failed in a way not classified above.
    GitFailed,
    /// The operation does not apply to this repository in its current mode or state.
    InvalidState,
    /// Missing or wrong API token.
    Unauthorized,
    /// The token is valid but may not do this.
    Forbidden,
    /// Something broke on our side; the message carries a request id.
    Internal,
    /// The hub is shutting down or a dependency (database) is unavailable.
    Unavailable,
    /// A webhook delivery's body is not what its forge sends (not JSON, missing fields).
    MalformedPayload,
    /// A webhook endpoint the operator has not configured a secret for.
    WebhookNotEnabled,
    /// The SSH server's host key is not the one pinned for the repository.
    HostKeyMismatch,
    /// No SSH key with this id (for this owner, or the caller may not see it).
    SshKeyNotFound,
    /// The SSH key is still used by a repository.
    SshKeyInUse,
    /// An LFS object's content does not match its id or size: refused, never stored or served.
    LfsObjectInvalid,
    /// An LFS object is over the hub's size limit.
    LfsObjectTooLarge,
    /// An upstream's LFS batch answer cannot be used (malformed, hostile, unsupported).
    LfsBatchInvalid,
    /// The upstream's (or the hub's) LFS server does not have the object.
    LfsObjectMissing,
    /// No mirror set with this id (or the caller may not see it).
    MirrorSetNotFound,
    /// A mirror set of the same namespace on the same forge exists already for this owner.
    MirrorSetExists,
    /// The forge's API refused or failed a namespace listing (token, namespace, rate limit).
    ForgeApiFailed,
    /// No push mirror with this id on the repository.
    PushMirrorNotFound,
    /// A push mirror's downstream refused some of the refs pushed to it (a hook, a protected
    /// branch).
    PushRejected,
    /// No notification target with this id (or the caller may not manage it).
    NotificationTargetNotFound,
    /// The repository has no backup with this id (expired, or never made).
    BackupNotFound,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidUrl => "invalid_url",
            Self::UnsupportedScheme => "unsupported_scheme",
            Self::UrlNotAllowed => "url_not_allowed",
            Self::InvalidName => "invalid_name",
            Self::RepoExists => "repo_exists",
            Self::RepoNotFound => "repo_not_found",
            Self::AccountNotFound => "account_not_found",
            Self::AccountExists => "account_exists",
            Self::TokenNotFound => "token_not_found",
            Self::UpstreamUnreachable => "upstream_unreachable",
            Self::UpstreamAuthFailed => "upstream_auth_failed",
            Self::UpstreamNotFound => "upstream_not_found",
            Self::NotAGitRepository => "not_a_git_repository",
            Self::Timeout => "timeout",
            Self::GitFailed => "git_failed",
            Self::InvalidState => "invalid_state",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::MalformedPayload => "malformed_payload",
            Self::WebhookNotEnabled => "webhook_not_enabled",
            Self::HostKeyMismatch => "host_key_mismatch",
            Self::SshKeyNotFound => "ssh_key_not_found",
            Self::SshKeyInUse => "ssh_key_in_use",
            Self::LfsObjectInvalid => "lfs_object_invalid",
            Self::LfsObjectTooLarge => "lfs_object_too_large",
            Self::LfsBatchInvalid => "lfs_batch_invalid",
            Self::LfsObjectMissing => "lfs_object_missing",
            Self::MirrorSetNotFound => "mirror_set_not_found",
            Self::MirrorSetExists => "mirror_set_exists",
            Self::ForgeApiFailed => "forge_api_failed",
            Self::PushMirrorNotFound => "push_mirror_not_found",
            Self::PushRejected => "push_rejected",
            Self::NotificationTargetNotFound => "notification_target_not_found",
            Self::BackupNotFound => "backup_not_found",
        }
    }

    /// Whether retrying the same thing later can succeed without anyone changing anything.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Self::UpstreamUnreachable
                | Self::Timeout
                | Self::GitFailed
                | Self::Internal
                | Self::Unavailable
        )
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

const ALL: [ErrorCode; 37] = [
    ErrorCode::InvalidRequest,
    ErrorCode::InvalidUrl,
    ErrorCode::UnsupportedScheme,
    ErrorCode::UrlNotAllowed,
    ErrorCode::InvalidName,
    ErrorCode::RepoExists,
    ErrorCode::RepoNotFound,
    ErrorCode::AccountNotFound,
    ErrorCode::AccountExists,
    ErrorCode::TokenNotFound,
    ErrorCode::UpstreamUnreachable,
    ErrorCode::UpstreamAuthFailed,
    ErrorCode::UpstreamNotFound,
    ErrorCode::NotAGitRepository,
    ErrorCode::Timeout,
    ErrorCode::GitFailed,
    ErrorCode::InvalidState,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
    ErrorCode::MalformedPayload,
    ErrorCode::WebhookNotEnabled,
    ErrorCode::HostKeyMismatch,
    ErrorCode::SshKeyNotFound,
    ErrorCode::SshKeyInUse,
    ErrorCode::LfsObjectInvalid,
    ErrorCode::LfsObjectTooLarge,
    ErrorCode::LfsBatchInvalid,
    ErrorCode::LfsObjectMissing,
    ErrorCode::MirrorSetNotFound,
    ErrorCode::MirrorSetExists,
    ErrorCode::ForgeApiFailed,
    ErrorCode::PushMirrorNotFound,
    ErrorCode::PushRejected,
    ErrorCode::NotificationTargetNotFound,
    ErrorCode::BackupNotFound,
];

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string() {
        for code in ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }
}
