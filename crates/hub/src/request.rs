//! A create request as it arrives from any edge (API, CLI, form, bot), and its validation
//! into typed values. All messages here are shown to users as they are.

use mirrorhub_core::{
    Credentials, ErrorCode, HostKey, Mode, OwnerName, RepoName, Scheme, SyncInterval, UpstreamUrl,
    UrlError, Visibility,
};
use mirrorhub_store::NewRepo;

use crate::HubError;

/// The seed's import form, field for field. Strings, because every edge sends text. Its
/// `Debug` shows whether a secret was given, never the secret.
#[derive(Clone, Default)]
pub struct CreateRepo {
    pub url: String,
    pub username: Option<String>,
    /// A token or password for the upstream. Never logged (`Debug` redacts it).
    pub token: Option<String>,
    pub owner: String,
    /// When absent, taken from the last segment of the upstream path.
    pub name: Option<String>,
    pub visibility: Option<String>,
    pub description: Option<String>,
    pub mode: Option<String>,
    pub sync_interval: Option<String>,
    /// SSH upstreams: a deploy key of the owner's (`POST /api/v1/ssh-keys`)...
    pub ssh_key_id: Option<i64>,
    /// ...or an OpenSSH private key to store for it (never logged).
    pub ssh_private_key: Option<String>,
    /// The uploaded key's passphrase, when it has one (used once to open it, never stored).
    pub ssh_key_passphrase: Option<String>,
    /// The host keys to pin, as known_hosts lines; without them, the keys the server shows at
    /// creation are pinned.
    pub known_hosts: Option<String>,
    /// Mirror Git LFS objects (default true).
    pub lfs: Option<bool>,
    /// The upstream's LFS endpoint, when git-lfs would not find it.
    pub lfs_url: Option<String>,
    /// Which branches and tags to mirror (default: all).
    pub refs: Option<mirrorhub_core::RefFilterSpec>,
}

/// A change of settings, as it arrives from an edge. `None` leaves a field as it is. Its
/// `Debug` redacts the secrets.
#[derive(Clone, Default)]
pub struct UpdateRepo {
    pub username: Option<String>,
    /// New token or password for the upstream (checked against it before it is stored).
    pub token: Option<String>,
    /// Forget the stored credentials.
    pub remove_credentials: bool,
    pub sync_interval: Option<String>,
    pub description: Option<String>,
    pub visibility: Option<String>,
    /// SSH upstreams: use this deploy key of the owner's from now on.
    pub ssh_key_id: Option<i64>,
    /// SSH upstreams: store this private key and use it from now on.
    pub ssh_private_key: Option<String>,
    pub ssh_key_passphrase: Option<String>,
    /// SSH upstreams: pin these host keys instead (accepting a changed server key).
    pub known_hosts: Option<String>,
    pub lfs: Option<bool>,
    /// An empty string forgets a set endpoint.
    pub lfs_url: Option<String>,
    /// A new ref filter; an empty one (no patterns) mirrors every branch and tag again.
    pub refs: Option<mirrorhub_core::RefFilterSpec>,
}

/// A user's LFS endpoint: http(s), a host, no credentials (they come from the repository's).
pub(crate) fn parse_lfs_url(text: &str) -> Result<Option<String>, HubError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    mirrorhub_lfs::batch::parse_href(text)
        .map(|u| Some(u.to_string().trim_end_matches('/').to_owned()))
        .map_err(|why| {
            HubError::invalid(
                ErrorCode::InvalidUrl,
                "lfs_url",
                format!("the LFS endpoint cannot be used: {why}; give the server's https://…/info/lfs address"),
            )
        })
}

/// A secret field as `Debug` shows it: whether it was given, never what.
pub(crate) struct Redacted<'a>(pub(crate) &'a Option<String>);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some([redacted])"),
            None => f.write_str("None"),
        }
    }
}

impl std::fmt::Debug for CreateRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateRepo")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("token", &Redacted(&self.token))
            .field("owner", &self.owner)
            .field("name", &self.name)
            .field("visibility", &self.visibility)
            .field("description", &self.description)
            .field("mode", &self.mode)
            .field("sync_interval", &self.sync_interval)
            .field("ssh_key_id", &self.ssh_key_id)
            .field("ssh_private_key", &Redacted(&self.ssh_private_key))
            .field("ssh_key_passphrase", &Redacted(&self.ssh_key_passphrase))
            .field("known_hosts", &self.known_hosts)
            .field("lfs", &self.lfs)
            .field("lfs_url", &self.lfs_url)
            .field("refs", &self.refs)
            .finish()
    }
}

impl std::fmt::Debug for UpdateRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateRepo")
            .field("username", &self.username)
            .field("token", &Redacted(&self.token))
            .field("remove_credentials", &self.remove_credentials)
            .field("sync_interval", &self.sync_interval)
            .field("description", &self.description)
            .field("visibility", &self.visibility)
            .field("ssh_key_id", &self.ssh_key_id)
            .field("ssh_private_key", &Redacted(&self.ssh_private_key))
            .field("ssh_key_passphrase", &Redacted(&self.ssh_key_passphrase))
            .field("known_hosts", &self.known_hosts)
            .field("lfs", &self.lfs)
            .field("lfs_url", &self.lfs_url)
            .field("refs", &self.refs)
            .finish()
    }
}

/// Which key an SSH upstream is reached with.
pub(crate) enum SshKeyChoice {
    /// None: the server must let the hub in without a key.
    None,
    /// A stored key of the owner's.
    Existing(i64),
    /// A key uploaded with the request, stored when the repository is created.
    Upload(crate::ssh::KeyMaterial),
}

impl std::fmt::Debug for SshKeyChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Existing(id) => write!(f, "Existing({id})"),
            Self::Upload(m) => write!(f, "Upload({})", m.fingerprint),
        }
    }
}

/// How a request reaches an SSH upstream.
#[derive(Debug)]
pub(crate) struct ValidSsh {
    pub key: SshKeyChoice,
    /// Pinned by the request; `None`: pin what the server shows now.
    pub known_hosts: Option<Vec<HostKey>>,
}

/// A request that passed every check that needs no network.
#[derive(Debug)]
pub struct ValidCreateRepo {
    pub url: UpstreamUrl,
    pub credentials: Option<Credentials>,
    pub owner: OwnerName,
    pub name: RepoName,
    pub visibility: Visibility,
    pub description: String,
    pub mode: Mode,
    pub sync_interval: SyncInterval,
    /// For SSH upstreams (and only for them).
    pub(crate) ssh: Option<ValidSsh>,
}

pub(crate) const MAX_DESCRIPTION: usize = 2000;

impl CreateRepo {
    pub fn validate(
        self,
        default_interval: SyncInterval,
        min_interval: SyncInterval,
    ) -> Result<ValidCreateRepo, HubError> {
        let (url, credentials) =
            upstream(&self.url, self.username.as_deref(), self.token.as_deref())?;
        let ssh = ssh_settings(
            &url,
            &SshFields {
                key_id: self.ssh_key_id,
                private_key: self.ssh_private_key.as_deref(),
                passphrase: self.ssh_key_passphrase.as_deref(),
                known_hosts: self.known_hosts.as_deref(),
            },
        )?;
        let owner = OwnerName::parse(self.owner.trim())
            .map_err(|e| HubError::invalid(ErrorCode::InvalidName, "owner", e.to_string()))?;
        let name = match self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(n) => RepoName::parse(n)
                .map_err(|e| HubError::invalid(ErrorCode::InvalidName, "name", e.to_string()))?,
            None => RepoName::suggest_from_path(url.path()).ok_or_else(|| {
                HubError::invalid(
                    ErrorCode::InvalidName,
                    "name",
                    "no repository name could be taken from the URL: give a name",
                )
            })?,
        };
        let mode = match self.mode.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(HubError::invalid(ErrorCode::InvalidRequest, "mode", "choose a mode: \"mirror\" (keep following the upstream) or \"migrate\" (copy once, then the hub is the primary)"));
            }
            Some(m) => Mode::parse(&m.to_ascii_lowercase()).ok_or_else(|| {
                HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "mode",
                    format!("mode {m:?} is not known: use \"mirror\" or \"migrate\""),
                )
            })?,
        };
        let visibility = match self.visibility.as_deref().map(str::trim) {
            None | Some("") => Visibility::Private,
            Some(v) => parse_visibility(v)?,
        };
        let description = check_description(self.description.unwrap_or_default())?;
        let sync_interval = match self.sync_interval.as_deref().map(str::trim) {
            None | Some("") => default_interval,
            Some(text) => parse_interval(text, min_interval)?,
        };
        Ok(ValidCreateRepo {
            url,
            credentials,
            owner,
            name,
            visibility,
            description,
            mode,
            sync_interval,
            ssh,
        })
    }
}

/// The SSH fields of a create or update request, as text.
pub(crate) struct SshFields<'a> {
    pub key_id: Option<i64>,
    pub private_key: Option<&'a str>,
    pub passphrase: Option<&'a str>,
    pub known_hosts: Option<&'a str>,
}

impl SshFields<'_> {
    fn any(&self) -> Option<&'static str> {
        if self.key_id.is_some() {
            Some("ssh_key_id")
        } else if self.private_key.is_some_and(|k| !k.trim().is_empty()) {
            Some("ssh_private_key")
        } else if self.passphrase.is_some_and(|p| !p.is_empty()) {
            Some("ssh_key_passphrase")
        } else if self.known_hosts.is_some_and(|k| !k.trim().is_empty()) {
            Some("known_hosts")
        } else {
            None
        }
    }
}

/// Checks that SSH settings come with SSH URLs only, and parses them. `None` for other URLs.
pub(crate) fn ssh_settings(
    url: &UpstreamUrl,
    fields: &SshFields<'_>,
) -> Result<Option<ValidSsh>, HubError> {
    if url.scheme() != Scheme::Ssh {
        if let Some(field) = fields.any() {
            return Err(HubError::invalid(
                ErrorCode::InvalidRequest,
                field,
                "SSH keys and host keys are for ssh:// (or user@host:path) upstreams: for an http(s) or git:// URL give a username and token instead",
            ));
        }
        return Ok(None);
    }
    let private_key = fields.private_key.filter(|k| !k.trim().is_empty());
    let key = match (fields.key_id, private_key) {
        (Some(_), Some(_)) => {
            return Err(HubError::invalid(
                ErrorCode::InvalidRequest,
                "ssh_private_key",
                "give either ssh_key_id (a stored deploy key) or ssh_private_key, not both",
            ))
        }
        (Some(id), None) => SshKeyChoice::Existing(id),
        (None, Some(text)) => {
            SshKeyChoice::Upload(crate::ssh::import_key(text, fields.passphrase)?)
        }
        (None, None) if fields.passphrase.is_some_and(|p| !p.is_empty()) => {
            return Err(HubError::invalid(
                ErrorCode::InvalidRequest,
                "ssh_key_passphrase",
                "a passphrase was given without ssh_private_key",
            ))
        }
        (None, None) => SshKeyChoice::None,
    };
    let known_hosts = match fields.known_hosts.filter(|k| !k.trim().is_empty()) {
        Some(text) => Some(mirrorhub_core::parse_known_hosts(text, url).map_err(|e| {
            HubError::invalid(ErrorCode::InvalidRequest, "known_hosts", e.to_string())
        })?),
        None => None,
    };
    Ok(Some(ValidSsh { key, known_hosts }))
}

impl ValidCreateRepo {
    pub fn into_new_repo(self) -> NewRepo {
        NewRepo {
            owner: self.owner,
            name: self.name,
            mode: self.mode,
            visibility: self.visibility,
            description: self.description,
            upstream_url: self.url.to_string(),
            credentials: self.credentials,
            sync_interval_secs: self.sync_interval.as_secs() as i64,
            ssh_key_id: None,
            known_hosts: None,
        }
    }
}

/// The upstream address and the credentials to use with it: the token field's, else those
/// written in the URL (which is returned without them).
pub(crate) fn upstream(
    url: &str,
    username: Option<&str>,
    token: Option<&str>,
) -> Result<(UpstreamUrl, Option<Credentials>), HubError> {
    let (url, url_credentials) = UpstreamUrl::parse(url).map_err(url_error)?;
    let token = token.filter(|t| !t.is_empty());
    let username = username.filter(|u| !u.trim().is_empty());
    if url.scheme() == Scheme::Ssh {
        if token.is_some() {
            return Err(HubError::invalid(ErrorCode::InvalidRequest, "token", "an SSH upstream logs in with a key, not a token: give ssh_key_id (a deploy key from POST /api/v1/ssh-keys) or ssh_private_key"));
        }
        if username.is_some() {
            return Err(HubError::invalid(ErrorCode::InvalidRequest, "username", "an SSH upstream's login is part of its URL (git@host:path): leave the username empty"));
        }
    }
    let credentials = match (token, url_credentials) {
        (Some(token), _) => Some(credentials(username, token)?),
        (None, Some(from_url)) => Some(from_url),
        (None, None) if username.is_some() => {
            return Err(HubError::invalid(ErrorCode::InvalidRequest, "token", "a username was given without a token or password: add the token, or leave the username empty"));
        }
        (None, None) => None,
    };
    Ok((url, credentials))
}

/// Credentials from a form's username and token fields (an empty username means none).
pub(crate) fn credentials(username: Option<&str>, token: &str) -> Result<Credentials, HubError> {
    Credentials::new(username.filter(|u| !u.trim().is_empty()), token).map_err(|_| {
        HubError::invalid(ErrorCode::InvalidRequest, "token", "the username or token contains a control character or the username contains ':'; paste them again without line breaks")
    })
}

pub(crate) fn parse_visibility(v: &str) -> Result<Visibility, HubError> {
    Visibility::parse(&v.trim().to_ascii_lowercase()).ok_or_else(|| {
        HubError::invalid(
            ErrorCode::InvalidRequest,
            "visibility",
            format!("visibility {v:?} is not known: use \"public\" or \"private\""),
        )
    })
}

pub(crate) fn check_description(description: String) -> Result<String, HubError> {
    let description = description.trim().to_owned();
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(HubError::invalid(
            ErrorCode::InvalidRequest,
            "description",
            format!("the description is longer than {MAX_DESCRIPTION} characters"),
        ));
    }
    if description.chars().any(|c| c.is_control() && c != '\n') {
        return Err(HubError::invalid(
            ErrorCode::InvalidRequest,
            "description",
            "the description contains control characters",
        ));
    }
    Ok(description)
}

pub(crate) fn parse_interval(
    text: &str,
    min_interval: SyncInterval,
) -> Result<SyncInterval, HubError> {
    let interval = SyncInterval::parse(text).map_err(|e| {
        HubError::invalid(ErrorCode::InvalidRequest, "sync_interval", e.to_string())
    })?;
    if interval < min_interval {
        return Err(HubError::invalid(
            ErrorCode::InvalidRequest,
            "sync_interval",
            format!("the sync interval must be at least {min_interval} (the operator's MIRRORHUB_MIN_SYNC_INTERVAL)"),
        ));
    }
    Ok(interval)
}

fn url_error(e: UrlError) -> HubError {
    let code = match e {
        UrlError::UnsupportedScheme { .. } | UrlError::LocalPath => ErrorCode::UnsupportedScheme,
        _ => ErrorCode::InvalidUrl,
    };
    HubError::invalid(code, "url", e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CreateRepo {
        CreateRepo {
            url: "https://example.org/group/project.git".into(),
            owner: "team".into(),
            mode: Some("mirror".into()),
            ..Default::default()
        }
    }

    fn validate(r: CreateRepo) -> Result<ValidCreateRepo, HubError> {
        r.validate(SyncInterval::DEFAULT, SyncInterval::parse("5m").unwrap())
    }

    #[test]
    fn fills_defaults() {
        let v = validate(request()).unwrap();
        assert_eq!(v.name.as_str(), "project");
        assert_eq!(v.visibility, Visibility::Private);
        assert_eq!(v.sync_interval, SyncInterval::DEFAULT);
        assert!(v.credentials.is_none());
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases: Vec<(CreateRepo, &str, ErrorCode)> = vec![
            (
                CreateRepo {
                    url: "file:///etc".into(),
                    ..request()
                },
                "url",
                ErrorCode::UnsupportedScheme,
            ),
            (
                CreateRepo {
                    url: "https://x".into(),
                    ..request()
                },
                "url",
                ErrorCode::InvalidUrl,
            ),
            (
                CreateRepo {
                    owner: "../x".into(),
                    ..request()
                },
                "owner",
                ErrorCode::InvalidName,
            ),
            (
                CreateRepo {
                    name: Some("a/b".into()),
                    ..request()
                },
                "name",
                ErrorCode::InvalidName,
            ),
            (
                CreateRepo {
                    mode: None,
                    ..request()
                },
                "mode",
                ErrorCode::InvalidRequest,
            ),
            (
                CreateRepo {
                    mode: Some("copy".into()),
                    ..request()
                },
                "mode",
                ErrorCode::InvalidRequest,
            ),
            (
                CreateRepo {
                    visibility: Some("secret".into()),
                    ..request()
                },
                "visibility",
                ErrorCode::InvalidRequest,
            ),
            (
                CreateRepo {
                    sync_interval: Some("1m".into()),
                    ..request()
                },
                "sync_interval",
                ErrorCode::InvalidRequest,
            ),
            (
                CreateRepo {
                    sync_interval: Some("soon".into()),
                    ..request()
                },
                "sync_interval",
                ErrorCode::InvalidRequest,
            ),
            (
                CreateRepo {
                    username: Some("bob".into()),
                    ..request()
                },
                "token",
                ErrorCode::InvalidRequest,
            ),
            (
                CreateRepo {
                    token: Some("a\nb".into()),
                    ..request()
                },
                "token",
                ErrorCode::InvalidRequest,
            ),
        ];
        for (r, field, code) in cases {
            let e = validate(r).unwrap_err();
            assert_eq!((e.field(), e.code()), (Some(field), code), "{e}");
        }
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let create = CreateRepo {
            token: Some("t0k-secret".into()),
            ssh_private_key: Some("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecret".into()),
            ssh_key_passphrase: Some("pass-secret".into()),
            ..request()
        };
        let update = UpdateRepo {
            token: Some("t0k-secret".into()),
            ssh_private_key: create.ssh_private_key.clone(),
            ssh_key_passphrase: Some("pass-secret".into()),
            ..UpdateRepo::default()
        };
        for shown in [format!("{create:?}"), format!("{update:?}")] {
            for secret in ["t0k-secret", "AAAAsecret", "pass-secret"] {
                assert!(!shown.contains(secret), "{shown}");
            }
            assert!(shown.contains("token: Some([redacted])"), "{shown}");
            assert!(
                shown.contains("ssh_private_key: Some([redacted])"),
                "{shown}"
            );
        }
        assert!(format!("{create:?}").contains("https://example.org/group/project.git"));
        assert!(format!("{:?}", request()).contains("token: None"));
    }

    #[test]
    fn explicit_token_wins_over_url_credentials() {
        let v = validate(CreateRepo {
            url: "https://u:inurl@example.org/a.git".into(),
            username: Some("bob".into()),
            token: Some("t0k".into()),
            ..request()
        })
        .unwrap();
        let c = v.credentials.unwrap();
        assert_eq!((c.username.as_str(), c.expose_secret()), ("bob", "t0k"));
        assert_eq!(v.url.to_string(), "https://example.org/a.git");
    }
}
