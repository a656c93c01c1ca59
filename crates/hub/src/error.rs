use mirrorhub_core::ErrorCode;
use mirrorhub_git::GitError;
use mirrorhub_store::StoreError;

/// What can go wrong in a service call. The first variants are the caller's to fix; `Store`
/// and `Io` are ours, and their detail is logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A field is missing or malformed. `field` names it, for forms that show errors in place.
    #[error("{message}")]
    Invalid {
        code: ErrorCode,
        /// A name (`token`) or a path into the body (`refs.include[1]`).
        field: Option<std::borrow::Cow<'static, str>>,
        message: String,
    },
    #[error("repository {0} does not exist")]
    NotFound(String),
    #[error("a repository named {0} exists already: choose another owner or name, or delete the existing one")]
    Exists(String),
    #[error("{0}")]
    InvalidState(String),
    /// No credentials, or credentials that are wrong, expired or revoked; the message says
    /// which.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is known but may not do this; the message says what would allow it.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    AccountNotFound(String),
    #[error("the name {0} is taken by a user or an organization: choose another")]
    AccountExists(String),
    #[error("{0}")]
    TokenNotFound(String),
    #[error("{0}")]
    SshKeyNotFound(String),
    #[error("{0}")]
    SshKeyInUse(String),
    #[error("{0}")]
    PushMirrorNotFound(String),
    #[error("{0}")]
    NotificationTargetNotFound(String),
    #[error("{0}")]
    BackupNotFound(String),
    #[error(transparent)]
    Upstream(#[from] GitError),
    /// A promotion was refused because the upstream could not be checked.
    #[error("the mirror was not promoted: its upstream could not be checked ({0}). Promote with force (API ?force=true, CLI --force) to make the hub the primary without a final sync")]
    PromoteRefused(GitError),
    #[error("the database failed")]
    Store(#[from] StoreError),
    #[error("a file operation failed")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Lfs(mirrorhub_lfs::LfsError),
}

impl From<mirrorhub_lfs::LfsError> for HubError {
    fn from(e: mirrorhub_lfs::LfsError) -> Self {
        match e {
            mirrorhub_lfs::LfsError::Io(io) => Self::Io(io),
            other => Self::Lfs(other),
        }
    }
}

impl HubError {
    pub fn invalid(code: ErrorCode, field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// An invalid field whose name is made at run time, e.g. `refs.include[1]`.
    pub fn invalid_at(code: ErrorCode, field: String, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { code, .. } => *code,
            Self::NotFound(_) => ErrorCode::RepoNotFound,
            Self::Exists(_) => ErrorCode::RepoExists,
            Self::InvalidState(_) => ErrorCode::InvalidState,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::AccountNotFound(_) => ErrorCode::AccountNotFound,
            Self::AccountExists(_) => ErrorCode::AccountExists,
            Self::TokenNotFound(_) => ErrorCode::TokenNotFound,
            Self::SshKeyNotFound(_) => ErrorCode::SshKeyNotFound,
            Self::SshKeyInUse(_) => ErrorCode::SshKeyInUse,
            Self::PushMirrorNotFound(_) => ErrorCode::PushMirrorNotFound,
            Self::NotificationTargetNotFound(_) => ErrorCode::NotificationTargetNotFound,
            Self::BackupNotFound(_) => ErrorCode::BackupNotFound,
            Self::Upstream(e) | Self::PromoteRefused(e) => e.code(),
            Self::Store(_) | Self::Io(_) => ErrorCode::Internal,
            Self::Lfs(e) => e.code(),
        }
    }

    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => field.as_deref(),
            Self::Exists(_) => Some("name"),
            Self::Upstream(GitError::SshAuthFailed) => Some("ssh_key_id"),
            Self::Upstream(GitError::HostKeyMismatch { .. }) => Some("known_hosts"),
            Self::Upstream(e) => match e.code() {
                ErrorCode::UpstreamAuthFailed => Some("token"),
                _ => Some("url"),
            },
            _ => None,
        }
    }

    /// Whether the cause is on our side (log it; show a generic message).
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Io(_))
            || matches!(self, Self::Upstream(GitError::Io(_)))
    }

    /// A unique-key conflict on insert means another request took the name meanwhile.
    pub(crate) fn from_store_create(e: StoreError, full_name: String) -> Self {
        match e {
            StoreError::Conflict => Self::Exists(full_name),
            other => Self::Store(other),
        }
    }
}
