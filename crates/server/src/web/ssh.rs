//! SSH upstreams in the pages: which login the import form offers for an address, the deploy
//! keys and detected host keys it shows, a repository's key and pinned host keys, and the
//! form that replaces them (`/{owner}/{name}/-/host-keys`). The hub does the work, through the
//! same methods as `/api/v1/ssh-keys`, `/api/v1/ssh/host-keys` and `PATCH known_hosts`.

use std::sync::Arc;

use mirrorhub_core::{HostKey, Mode, Scheme, Trigger, UpstreamUrl};
use mirrorhub_hub::{Hub, UpdateRepo};
use mirrorhub_store::{Repo, SshKey};
use poem::web::{Data, Form, Path};
use poem::{handler, Response};
use serde::Deserialize;

use super::pages::{self, RepoPageExtras};
use super::redirect;
use super::session::SignedIn;
use super::view::user_message;
use crate::ServerConfig;

/// Which login an address takes: `Some(true)` SSH, `Some(false)` a username and token, `None`
/// when it cannot be told yet (empty, or not an address the hub accepts).
pub(super) fn is_ssh_address(address: &str) -> Option<bool> {
    match UpstreamUrl::parse(address) {
        Ok((url, _)) => Some(url.scheme() == Scheme::Ssh),
        Err(_) => None,
    }
}

/// One host key as the pages show it.
pub(super) struct HostKeyView {
    pub key_type: String,
    pub fingerprint: String,
}

impl HostKeyView {
    fn new(key: &HostKey) -> Self {
        Self {
            key_type: key.key_type.clone(),
            fingerprint: key.fingerprint(),
        }
    }
}

pub(super) fn host_key_views(keys: &[HostKey]) -> Vec<HostKeyView> {
    keys.iter().map(HostKeyView::new).collect()
}

/// known_hosts lines for `keys` under the name `url`'s host is checked by, so keys detected
/// for one server are refused if the address changes to another one before the create.
pub(super) fn known_hosts_lines(url: &UpstreamUrl, keys: &[HostKey]) -> String {
    let name = url.known_hosts_name();
    keys.iter()
        .map(|k| format!("{name} {}\n", k.line()))
        .collect()
}

/// The host keys a form carries (its hidden known_hosts lines), for showing them again. Lines
/// that do not parse show nothing: the hub refuses them with a message when they are used.
pub(super) fn carried_host_keys(address: &str, known_hosts: &str) -> Vec<HostKey> {
    if known_hosts.trim().is_empty() {
        return Vec::new();
    }
    match UpstreamUrl::parse(address) {
        Ok((url, _)) => mirrorhub_core::parse_known_hosts(known_hosts, &url).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// A deploy key as the pages list it.
#[derive(Clone)]
pub(super) struct KeyView {
    pub id: i64,
    pub title: String,
    pub fingerprint: String,
    /// One OpenSSH line, to paste into the upstream.
    pub public_key: String,
    pub selected: bool,
}

impl KeyView {
    pub fn new(key: &SshKey, selected: bool) -> Self {
        Self {
            id: key.id,
            title: key.title.clone(),
            fingerprint: key.fingerprint.clone(),
            public_key: key.public_key.clone(),
            selected,
        }
    }
}

/// The import form's SSH part, as shown.
#[derive(Default)]
pub(super) struct ImportSsh {
    /// Show the username and token fields.
    pub show_http: bool,
    /// Show the SSH login (deploy key, host keys).
    pub show_ssh: bool,
    /// The owner's deploy keys.
    pub keys: Vec<KeyView>,
    /// Why no keys are listed, when none are.
    pub keys_hint: String,
    /// The chosen deploy key, with its public line to copy.
    pub chosen: Option<KeyView>,
    /// The chosen key was just made.
    pub generated: bool,
    pub upload_selected: bool,
    /// A private key was typed: it is not sent back, so the page asks for it again.
    pub ask_key_again: bool,
    /// The detected host keys the form carries, for the user to confirm.
    pub host_keys: Vec<HostKeyView>,
    pub trust_host_keys: bool,
}

/// Fields of the import form that belong to the SSH login.
pub(super) const SSH_FIELDS: &[&str] = &[
    "ssh_key_id",
    "ssh_private_key",
    "ssh_key_passphrase",
    "known_hosts",
];

/// What a repository's page shows about its SSH login.
pub(super) struct RepoSsh {
    /// (title, fingerprint) of the deploy key, if it has one.
    pub key: Option<(String, String)>,
    pub pinned: Vec<HostKeyView>,
    /// The pinned keys as known_hosts lines, for the replace form.
    pub pinned_text: String,
    /// Set while the mirror fails or is paused because the server showed another host key.
    pub mismatch: Option<Mismatch>,
}

/// A server that showed another host key than the pinned ones.
pub(super) struct Mismatch {
    pub expected: Vec<String>,
    /// From the error message: the fingerprint the server showed (ssh-keyscan of the same
    /// address), when it was read.
    pub seen: Option<String>,
}

impl RepoSsh {
    /// `None` for upstreams that are not SSH.
    pub async fn of(hub: &Hub, repo: &Repo) -> Option<Self> {
        let (url, _) = UpstreamUrl::parse(&repo.upstream_url).ok()?;
        if url.scheme() != Scheme::Ssh {
            return None;
        }
        let key = match repo.ssh_key_id {
            Some(id) => match hub.owned_ssh_key(&repo.owner, id).await {
                Ok(k) => Some((k.title, k.fingerprint)),
                Err(e) => {
                    tracing::warn!(error = %e, repo_id = repo.id, "the repository's deploy key could not be read");
                    None
                }
            },
            None => None,
        };
        let pinned = mirrorhub_hub::pinned_host_keys(repo);
        let expected: Vec<String> = pinned.iter().map(HostKey::fingerprint).collect();
        let failing = repo.paused_reason.is_some() || repo.consecutive_failures > 0;
        let mismatch = (failing && repo.last_error_code.as_deref() == Some("host_key_mismatch"))
            .then(|| Mismatch {
                seen: repo
                    .last_error_message
                    .as_deref()
                    .and_then(|m| seen_fingerprint(m, &expected)),
                expected: expected.clone(),
            });
        Some(Self {
            key,
            pinned_text: pinned.iter().map(|k| format!("{}\n", k.line())).collect(),
            pinned: host_key_views(&pinned),
            mismatch,
        })
    }
}

/// The first `SHA256:` fingerprint in a `host_key_mismatch` message that is not one of the
/// pinned ones: the key the server showed.
fn seen_fingerprint(message: &str, pinned: &[String]) -> Option<String> {
    message
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | ',' | ')' | '(' | '`'))
        .map(|w| w.trim_end_matches(['.', ':']))
        .filter(|w| w.starts_with("SHA256:") && w.len() > "SHA256:".len())
        .find(|w| !pinned.iter().any(|p| p == w))
        .map(str::to_owned)
}

/// The host keys form on a repository's page, as shown again after an action.
#[derive(Default)]
pub(super) struct HostKeysForm {
    /// The textarea's text.
    pub text: Option<String>,
    /// Keys the server offers now, shown for confirmation.
    pub detected: Vec<HostKeyView>,
    /// The detected keys as known_hosts lines, carried by the confirmation form.
    pub detected_text: String,
    pub error: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct HostKeysPost {
    csrf: String,
    /// `detect`: show what the server offers now; `save`: pin `known_hosts`.
    action: String,
    known_hosts: String,
}

/// Replaces a repository's pinned host keys (what `PATCH known_hosts` does), or first shows
/// the keys the server offers now for the user to confirm.
#[handler]
pub(super) async fn host_keys(
    hub: Data<&Arc<Hub>>,
    config: Data<&Arc<ServerConfig>>,
    user: SignedIn,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<HostKeysPost>,
) -> poem::Result<Response> {
    let name = pages::repo_name(&name);
    let (repo, access) = match pages::acted_on(&hub, &user, &form.csrf, &owner, name).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let shown = if form.action == "detect" {
        match hub.detect_host_keys(&user.actor, &repo.upstream_url).await {
            Ok(keys) => {
                let lines = UpstreamUrl::parse(&repo.upstream_url)
                    .map(|(url, _)| known_hosts_lines(&url, &keys))
                    .unwrap_or_default();
                HostKeysForm {
                    detected: host_key_views(&keys),
                    detected_text: lines,
                    ..Default::default()
                }
            }
            Err(e) => HostKeysForm {
                error: Some(user_message(&e)),
                ..Default::default()
            },
        }
    } else {
        let update = UpdateRepo {
            known_hosts: Some(form.known_hosts.clone()),
            ..UpdateRepo::default()
        };
        let error = if form.known_hosts.trim().is_empty() {
            "Nothing was changed: give at least one host key (a known_hosts line), or detect the keys the server offers now.".to_owned()
        } else {
            match hub.update_repo(&owner, name, update).await {
                Ok(repo) => {
                    if repo.mode == Mode::Mirror {
                        if let Err(e) = hub
                            .request_sync(&repo.owner, &repo.name, Trigger::Manual)
                            .await
                        {
                            tracing::warn!(error = %e, repo_id = repo.id, "no sync could be queued after new host keys were pinned");
                        }
                    }
                    return Ok(redirect(&format!(
                        "/{}/{}?notice=host-keys-saved#status",
                        repo.owner, repo.name
                    )));
                }
                Err(e) => user_message(&e),
            }
        };
        HostKeysForm {
            text: Some(form.known_hosts),
            error: Some(error),
            ..Default::default()
        }
    };
    let settings = pages::settings_of(&repo);
    Ok(pages::repo_page_with(
        &hub,
        &config,
        &user,
        (repo, access),
        RepoPageExtras {
            settings,
            host_keys: shown,
            ..Default::default()
        },
    )
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_told_apart() {
        for ssh in [
            "ssh://git@example.org/a.git",
            "git+ssh://git@example.org:2222/a.git",
            "git@example.org:team/a.git",
        ] {
            assert_eq!(is_ssh_address(ssh), Some(true), "{ssh}");
        }
        for http in ["https://example.org/a.git", "git://example.org/a.git"] {
            assert_eq!(is_ssh_address(http), Some(false), "{http}");
        }
        assert_eq!(is_ssh_address(""), None);
        assert_eq!(is_ssh_address("file:///etc"), None);
    }

    #[test]
    fn the_seen_fingerprint_is_read_from_the_message() {
        let pinned = vec!["SHA256:old".to_owned()];
        let message = "the SSH server h did not show the host key pinned for this repository (expected SHA256:old; the server sent SHA256:new). This happens";
        assert_eq!(
            seen_fingerprint(message, &pinned).as_deref(),
            Some("SHA256:new")
        );
        let other = "(expected SHA256:old; the server sent a key of another type)";
        assert_eq!(seen_fingerprint(other, &pinned), None);
    }
}
