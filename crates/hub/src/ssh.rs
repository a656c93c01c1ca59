//! SSH upstreams in the hub: deploy keys (made here, or uploaded and opened here), host keys
//! detected and pinned, and what a repository's syncs log in with.

use chrono::Utc;
use mirrorhub_core::{Credentials, ErrorCode, HostKey, OwnerName, Scheme, UpstreamUrl};
use mirrorhub_git::{Auth, SshAccess};
use mirrorhub_store::{NewSshKey, Repo, SshKey, SshKeyDeletion};
use secrecy::SecretString;

use crate::{Hub, HubError};

/// The longest title a key may have.
const MAX_TITLE: usize = 200;
/// The largest private key text accepted (an RSA-16384 key is about 12 KiB).
const MAX_PRIVATE_KEY: usize = 32 * 1024;

/// A key pair ready to be stored: the private half as OpenSSH text, never encrypted with a
/// passphrase (it is sealed at rest instead).
#[derive(Debug)] // SecretString prints as redacted
pub(crate) struct KeyMaterial {
    pub public_key: String,
    pub fingerprint: String,
    pub private_key: SecretString,
}

/// A new Ed25519 key pair.
pub(crate) fn generate_key(comment: &str) -> Result<KeyMaterial, HubError> {
    let mut key = ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
        .map_err(|e| HubError::Io(std::io::Error::other(format!("generating a key: {e}"))))?;
    key.set_comment(comment);
    material(&key)
}

/// An uploaded OpenSSH private key, opened with its passphrase when it has one.
pub(crate) fn import_key(text: &str, passphrase: Option<&str>) -> Result<KeyMaterial, HubError> {
    let bad = |message: &str| {
        HubError::invalid(
            ErrorCode::InvalidRequest,
            "ssh_private_key",
            message.to_owned(),
        )
    };
    if text.len() > MAX_PRIVATE_KEY {
        return Err(bad("the private key is too long to be an SSH key"));
    }
    let key = ssh_key::PrivateKey::from_openssh(text.trim()).map_err(|_| {
        bad("this is not an OpenSSH private key: paste the whole file, from -----BEGIN OPENSSH PRIVATE KEY----- to its END line (convert a PEM key with `ssh-keygen -p -f FILE`)")
    })?;
    let key = if key.is_encrypted() {
        let Some(passphrase) = passphrase.filter(|p| !p.is_empty()) else {
            return Err(HubError::invalid(
                ErrorCode::InvalidRequest,
                "ssh_key_passphrase",
                "the private key is protected by a passphrase: give it as ssh_key_passphrase",
            ));
        };
        key.decrypt(passphrase).map_err(|_| {
            HubError::invalid(
                ErrorCode::InvalidRequest,
                "ssh_key_passphrase",
                "the passphrase does not open this private key: check it and try again",
            )
        })?
    } else {
        key
    };
    material(&key)
}

fn material(key: &ssh_key::PrivateKey) -> Result<KeyMaterial, HubError> {
    let failed =
        |e: ssh_key::Error| HubError::Io(std::io::Error::other(format!("encoding a key: {e}")));
    let private = key.to_openssh(ssh_key::LineEnding::LF).map_err(failed)?;
    let public = key.public_key().to_openssh().map_err(failed)?;
    Ok(KeyMaterial {
        public_key: public,
        fingerprint: key
            .public_key()
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string(),
        private_key: SecretString::from(private.as_str().to_owned()),
    })
}

/// What a repository's transfers log in with, loaded for one operation.
#[derive(Default)]
pub(crate) struct UpstreamLogin {
    basic: Option<Credentials>,
    key: Option<SecretString>,
    known_hosts: Vec<HostKey>,
    ssh: bool,
}

impl UpstreamLogin {
    pub(crate) fn basic(credentials: Option<Credentials>) -> Self {
        Self {
            basic: credentials,
            ..Self::default()
        }
    }

    pub(crate) fn ssh(key: Option<SecretString>, known_hosts: Vec<HostKey>) -> Self {
        Self {
            key,
            known_hosts,
            ssh: true,
            ..Self::default()
        }
    }

    pub(crate) fn auth(&self) -> Auth<'_> {
        if self.ssh {
            Auth::from(SshAccess {
                key: self.key.as_ref(),
                known_hosts: &self.known_hosts,
            })
        } else {
            Auth::from(self.basic.as_ref())
        }
    }
}

/// An SSH upstream's key, checked against the server.
pub(crate) enum CheckedKey {
    None,
    Stored(i64),
    /// Uploaded with the request: stored once the repository is.
    Upload(KeyMaterial),
}

/// SSH settings that worked against the server.
pub(crate) struct CheckedSsh {
    pub key: CheckedKey,
    pub known_hosts: Vec<HostKey>,
}

/// The pinned keys stored for a repository, as the API shows them.
pub fn pinned_host_keys(repo: &Repo) -> Vec<HostKey> {
    let (Some(text), Ok((url, _))) = (&repo.known_hosts, UpstreamUrl::parse(&repo.upstream_url))
    else {
        return Vec::new();
    };
    mirrorhub_core::parse_known_hosts(text, &url).unwrap_or_default()
}

impl Hub {
    /// What the syncs of `repo` log in with: its credentials, or its SSH key and pinned keys.
    pub(crate) async fn login_for(&self, repo: &Repo) -> Result<UpstreamLogin, HubError> {
        let installation = if repo.credentials.is_none() {
            self.store
                .sync_context(repo.id)
                .await?
                .and_then(|c| c.set_installation)
        } else {
            None
        };
        self.login_with(repo, installation).await
    }

    /// [`Hub::login_for`] when the repository's set installation is known already (see
    /// `Store::sync_context`).
    pub(crate) async fn login_with(
        &self,
        repo: &Repo,
        set_installation: Option<i64>,
    ) -> Result<UpstreamLogin, HubError> {
        let is_ssh =
            UpstreamUrl::parse(&repo.upstream_url).is_ok_and(|(u, _)| u.scheme() == Scheme::Ssh);
        if !is_ssh {
            // A GitHub App's set mirror stores no token: its installation makes one per run.
            if let Some(installation) = set_installation.filter(|_| repo.credentials.is_none()) {
                let token = self.installation_credentials(installation).await?;
                return Ok(UpstreamLogin::basic(Some(token)));
            }
            return Ok(UpstreamLogin::basic(repo.credentials.clone()));
        }
        let key = match repo.ssh_key_id {
            Some(id) => self.store.ssh_private_key(id).await?,
            None => None,
        };
        Ok(UpstreamLogin::ssh(key, pinned_host_keys(repo)))
    }

    /// Checks SSH settings against the server: the host keys to pin (the request's, or those
    /// the server shows now), the key (an owner's stored one, or the uploaded one) logging in.
    pub(crate) async fn check_ssh(
        &self,
        url: &UpstreamUrl,
        owner: &str,
        ssh: crate::request::ValidSsh,
    ) -> Result<(CheckedSsh, mirrorhub_git::RemoteInfo), HubError> {
        let known_hosts = match ssh.known_hosts {
            Some(keys) => keys,
            None => self.engine.scan_host_keys(url).await?,
        };
        let (secret, key) = match ssh.key {
            crate::request::SshKeyChoice::None => (None, CheckedKey::None),
            crate::request::SshKeyChoice::Existing(id) => {
                if let Err(e) = self.owned_ssh_key(owner, id).await {
                    return Err(HubError::invalid(
                        ErrorCode::SshKeyNotFound,
                        "ssh_key_id",
                        e.to_string(),
                    ));
                }
                (
                    self.store.ssh_private_key(id).await?,
                    CheckedKey::Stored(id),
                )
            }
            crate::request::SshKeyChoice::Upload(material) => (
                Some(material.private_key.clone()),
                CheckedKey::Upload(material),
            ),
        };
        let access = SshAccess {
            key: secret.as_ref(),
            known_hosts: &known_hosts,
        };
        let info = self.engine.probe(url, access).await?;
        Ok((CheckedSsh { key, known_hosts }, info))
    }

    /// Applies a settings change's SSH fields: a new key or new pinned host keys are checked
    /// against the server together (for repositories that still sync) before they are stored.
    pub(crate) async fn update_ssh(
        &self,
        repo: &Repo,
        change: &crate::UpdateRepo,
        update: &mut mirrorhub_store::RepoUpdate,
    ) -> Result<(), HubError> {
        let Ok((url, _)) = UpstreamUrl::parse(&repo.upstream_url) else {
            return Ok(());
        };
        let fields = crate::request::SshFields {
            key_id: change.ssh_key_id,
            private_key: change.ssh_private_key.as_deref(),
            passphrase: change.ssh_key_passphrase.as_deref(),
            known_hosts: change.known_hosts.as_deref(),
        };
        let Some(ssh) = crate::request::ssh_settings(&url, &fields)? else {
            return Ok(());
        };
        let key_changed = !matches!(ssh.key, crate::request::SshKeyChoice::None);
        if !key_changed && ssh.known_hosts.is_none() {
            return Ok(());
        }
        // What is not changed stays as it is.
        let key = match ssh.key {
            crate::request::SshKeyChoice::None => match repo.ssh_key_id {
                Some(id) => crate::request::SshKeyChoice::Existing(id),
                None => crate::request::SshKeyChoice::None,
            },
            other => other,
        };
        let pins_changed = ssh.known_hosts.is_some();
        let known_hosts = ssh
            .known_hosts
            .or_else(|| Some(pinned_host_keys(repo)).filter(|k| !k.is_empty()));
        let syncs = repo.mode == mirrorhub_core::Mode::Mirror
            || repo.state != mirrorhub_core::RepoState::Ready;
        let checked = if syncs {
            let request = crate::request::ValidSsh { key, known_hosts };
            self.check_ssh(&url, &repo.owner, request).await?.0
        } else {
            let key = match key {
                crate::request::SshKeyChoice::None => CheckedKey::None,
                crate::request::SshKeyChoice::Existing(id) => {
                    if let Err(e) = self.owned_ssh_key(&repo.owner, id).await {
                        return Err(HubError::invalid(
                            ErrorCode::SshKeyNotFound,
                            "ssh_key_id",
                            e.to_string(),
                        ));
                    }
                    CheckedKey::Stored(id)
                }
                crate::request::SshKeyChoice::Upload(m) => CheckedKey::Upload(m),
            };
            CheckedSsh {
                key,
                known_hosts: known_hosts.unwrap_or_default(),
            }
        };
        if pins_changed {
            update.known_hosts = Some(Some(mirrorhub_core::known_hosts_text(&checked.known_hosts)));
            tracing::info!(repo_id = repo.id, keys = ?checked.known_hosts.iter().map(HostKey::fingerprint).collect::<Vec<_>>(), "pinned SSH host keys replaced");
        }
        if key_changed {
            update.ssh_key_id = Some(match checked.key {
                CheckedKey::None => None,
                CheckedKey::Stored(id) => Some(id),
                CheckedKey::Upload(material) => {
                    let owner = OwnerName::parse(&repo.owner).map_err(|e| {
                        HubError::invalid(ErrorCode::InvalidName, "owner", e.to_string())
                    })?;
                    let title = format!("uploaded for {}/{}", repo.owner, repo.name);
                    Some(self.store_key(&owner, title, material).await?.id)
                }
            });
        }
        Ok(())
    }

    /// "Test connection" for an SSH upstream: what the server shows and whether the key gets
    /// in, recording nothing. The host keys come back even when the login fails.
    pub async fn check_ssh_upstream(
        &self,
        url: &str,
        owner: &str,
        key_id: Option<i64>,
        private_key: Option<&str>,
        passphrase: Option<&str>,
        known_hosts: Option<&str>,
    ) -> (Vec<HostKey>, Result<mirrorhub_git::RemoteInfo, HubError>) {
        let url = match ssh_url(url) {
            Ok(u) => u,
            Err(e) => return (Vec::new(), Err(e)),
        };
        let fields = crate::request::SshFields {
            key_id,
            private_key,
            passphrase,
            known_hosts,
        };
        let ssh = match crate::request::ssh_settings(&url, &fields) {
            Ok(Some(ssh)) => ssh,
            Ok(None) => {
                return (
                    Vec::new(),
                    Err(HubError::invalid(
                        ErrorCode::InvalidUrl,
                        "url",
                        "not an SSH URL",
                    )),
                )
            }
            Err(e) => return (Vec::new(), Err(e)),
        };
        let keys = match ssh.known_hosts.clone() {
            Some(k) => k,
            None => match self.engine.scan_host_keys(&url).await {
                Ok(k) => k,
                Err(e) => return (Vec::new(), Err(e.into())),
            },
        };
        let ssh = crate::request::ValidSsh {
            key: ssh.key,
            known_hosts: Some(keys.clone()),
        };
        let result = self.check_ssh(&url, owner, ssh).await.map(|(_, info)| info);
        (keys, result)
    }

    /// Makes a deploy key for `owner` (created as an organization if the admin token names
    /// it first). The private key is stored sealed and never shown.
    pub async fn create_ssh_key(
        &self,
        owner: &str,
        title: Option<&str>,
    ) -> Result<SshKey, HubError> {
        let owner = OwnerName::parse(owner.trim())
            .map_err(|e| HubError::invalid(ErrorCode::InvalidName, "owner", e.to_string()))?;
        let title = check_title(title, &format!("mirrorhub deploy key for {owner}"))?;
        let material = generate_key(&format!("mirrorhub {owner}"))?;
        self.store_key(&owner, title, material).await
    }

    pub(crate) async fn store_key(
        &self,
        owner: &OwnerName,
        title: String,
        material: KeyMaterial,
    ) -> Result<SshKey, HubError> {
        self.ensure_owner(owner).await?;
        let account = self
            .store
            .get_account(owner.as_str())
            .await?
            .ok_or_else(|| {
                HubError::AccountNotFound(format!("no user or organization is named {owner}"))
            })?;
        let key = self
            .store
            .create_ssh_key(
                NewSshKey {
                    owner_id: account.id,
                    title,
                    public_key: material.public_key,
                    fingerprint: material.fingerprint,
                    private_key: material.private_key,
                },
                Utc::now(),
            )
            .await?;
        tracing::info!(key_id = key.id, owner = %owner, fingerprint = %key.fingerprint, "SSH key stored");
        Ok(key)
    }

    /// An owner's SSH keys, oldest first (none for an owner that does not exist yet).
    pub async fn list_ssh_keys(&self, owner: &str) -> Result<Vec<SshKey>, HubError> {
        match self.store.get_account(owner).await? {
            Some(account) => Ok(self.store.list_ssh_keys(account.id).await?),
            None => Ok(Vec::new()),
        }
    }

    /// One SSH key, if it belongs to `owner` (another owner's key looks missing).
    pub async fn owned_ssh_key(&self, owner: &str, id: i64) -> Result<SshKey, HubError> {
        match self.store.get_ssh_key(id).await? {
            Some(key) if key.owner.eq_ignore_ascii_case(owner) => Ok(key),
            _ => Err(HubError::SshKeyNotFound(format!(
                "{owner} has no SSH key with id {id}: list them with GET /api/v1/ssh-keys?owner={owner}"
            ))),
        }
    }

    /// The owner of an SSH key, for authorization before anything else is said about it.
    pub async fn ssh_key_owner(&self, id: i64) -> Result<Option<String>, HubError> {
        Ok(self.store.get_ssh_key(id).await?.map(|k| k.owner))
    }

    /// Deletes a key; refused while a repository uses it.
    pub async fn delete_ssh_key(&self, id: i64) -> Result<(), HubError> {
        match self.store.delete_ssh_key(id).await? {
            SshKeyDeletion::Deleted => {
                tracing::info!(key_id = id, "SSH key deleted");
                Ok(())
            }
            SshKeyDeletion::NotFound => Err(HubError::SshKeyNotFound(format!("there is no SSH key with id {id}"))),
            SshKeyDeletion::InUse { repos } => Err(HubError::SshKeyInUse(format!(
                "SSH key {id} is used by {}: give those repositories and push mirrors another key (PATCH ssh_key_id) or delete them first",
                repos.join(", ")
            ))),
        }
    }

    /// "Detect host keys": the host keys the SSH server of `url` offers, read from the address
    /// the policy allows. Trusts and records nothing.
    pub async fn detect_host_keys(
        &self,
        actor: &mirrorhub_core::Actor,
        url: &str,
    ) -> Result<Vec<HostKey>, HubError> {
        // It connects out on the caller's behalf: not for anonymous callers.
        if *actor == mirrorhub_core::Actor::Anonymous {
            return Err(HubError::Unauthorized(crate::accounts::NEED_TOKEN.into()));
        }
        let url = ssh_url(url)?;
        Ok(self.engine.scan_host_keys(&url).await?)
    }
}

/// Parses a URL that must be an SSH one.
pub(crate) fn ssh_url(url: &str) -> Result<UpstreamUrl, HubError> {
    let (url, _) = crate::request::upstream(url, None, None)?;
    if url.scheme() != Scheme::Ssh {
        return Err(HubError::invalid(
            ErrorCode::InvalidUrl,
            "url",
            "host keys are an SSH matter: give an ssh:// or user@host:path URL",
        ));
    }
    Ok(url)
}

fn check_title(title: Option<&str>, default: &str) -> Result<String, HubError> {
    let title = title
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(default);
    if title.chars().count() > MAX_TITLE || title.chars().any(char::is_control) {
        return Err(HubError::invalid(
            ErrorCode::InvalidRequest,
            "title",
            format!("the title must be one line of at most {MAX_TITLE} characters"),
        ));
    }
    Ok(title.to_owned())
}

/// The private key text, for tests that check it never leaks.
#[cfg(test)]
fn private_text(m: &KeyMaterial) -> &str {
    secrecy::ExposeSecret::expose_secret(&m.private_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_ed25519_openssh() {
        let m = generate_key("mirrorhub team").unwrap();
        assert!(
            m.public_key.starts_with("ssh-ed25519 AAAA"),
            "{}",
            m.public_key
        );
        assert!(m.public_key.ends_with(" mirrorhub team"));
        assert!(m.fingerprint.starts_with("SHA256:"));
        assert!(private_text(&m).starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let again = import_key(private_text(&m), None).unwrap();
        assert_eq!(again.fingerprint, m.fingerprint);
    }

    #[test]
    fn uploaded_keys_are_opened_or_refused_by_field() {
        let e = import_key("not a key", None).unwrap_err();
        assert_eq!(e.field(), Some("ssh_private_key"));
        let plain = generate_key("x").unwrap();
        let locked = ssh_key::PrivateKey::from_openssh(private_text(&plain))
            .unwrap()
            .encrypt(&mut rand::rngs::OsRng, "s3cret")
            .unwrap()
            .to_openssh(ssh_key::LineEnding::LF)
            .unwrap();
        assert_eq!(
            import_key(&locked, None).unwrap_err().field(),
            Some("ssh_key_passphrase")
        );
        assert_eq!(
            import_key(&locked, Some("wrong")).unwrap_err().field(),
            Some("ssh_key_passphrase")
        );
        let opened = import_key(&locked, Some("s3cret")).unwrap();
        assert_eq!(opened.fingerprint, plain.fingerprint);
        assert!(
            !private_text(&opened).contains("aes256"),
            "stored without the passphrase"
        );
    }
}
