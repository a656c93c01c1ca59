//! SSH host keys as data: what a known_hosts text pins for an upstream, and fingerprints as
//! OpenSSH prints them (`SHA256:` and the unpadded base64 of the key blob's SHA-256).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::url::UpstreamUrl;

/// Key types OpenSSH offers as host keys.
const HOST_KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// The most lines and bytes a known_hosts text may have.
const MAX_LINES: usize = 64;
const MAX_BYTES: usize = 64 * 1024;

/// One public host key of an SSH server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostKey {
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`...
    pub key_type: String,
    /// The key blob, base64 as in known_hosts.
    pub key: String,
}

impl HostKey {
    /// Checks a key type and base64 blob: the blob must decode and name the same type.
    pub fn new(key_type: &str, key: &str) -> Result<Self, KnownHostsError> {
        if !HOST_KEY_TYPES.contains(&key_type) {
            return Err(KnownHostsError::UnknownType(
                key_type.chars().take(40).collect(),
            ));
        }
        let blob = STANDARD
            .decode(key)
            .map_err(|_| KnownHostsError::BadKey(key_type.to_owned()))?;
        if blob_type(&blob) != Some(key_type.as_bytes()) {
            return Err(KnownHostsError::BadKey(key_type.to_owned()));
        }
        Ok(Self {
            key_type: key_type.to_owned(),
            key: key.to_owned(),
        })
    }

    /// `SHA256:…`, as `ssh-keygen -l` and ssh's own messages print it.
    pub fn fingerprint(&self) -> String {
        let blob = STANDARD.decode(&self.key).unwrap_or_default();
        format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
    }

    /// `type key`, one known_hosts line without a host.
    pub fn line(&self) -> String {
        format!("{} {}", self.key_type, self.key)
    }
}

/// The type string at the start of an SSH key blob (a u32 length, then the name).
fn blob_type(blob: &[u8]) -> Option<&[u8]> {
    let (len, rest) = blob.split_first_chunk::<4>()?;
    rest.get(..u32::from_be_bytes(*len) as usize)
}

/// Why a known_hosts text was refused. Every message says what to give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnownHostsError {
    #[error("the known_hosts text is too long: give at most {MAX_LINES} lines of host keys")]
    TooLong,
    #[error("known_hosts line {0} is not `host key-type base64-key`: paste lines as ssh-keyscan prints them")]
    Malformed(usize),
    #[error("{0:?} is not an SSH host key type: use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa")]
    UnknownType(String),
    #[error("the {0} key is not valid base64 of a key of that type: paste it again as ssh-keyscan prints it")]
    BadKey(String),
    #[error("known_hosts line {0} has a marker (@cert-authority, @revoked): give the server's own host keys")]
    Marker(usize),
    #[error("known_hosts line {0} is hashed (|1|…), which cannot be matched to the host: print it with ssh-keyscan without -H")]
    Hashed(usize),
    #[error("the known_hosts text has no key for {0}: give lines for this host (or lines of just `key-type base64-key`)")]
    NoKeyForHost(String),
}

/// The host keys a known_hosts text pins for `url`'s server: lines naming the host (as
/// `host`, `[host]:port`, or in a comma-separated list) or naming none (`type key`). Lines for
/// other hosts are left out; comments and blank lines are skipped. At least one key is
/// required. Duplicates are dropped; the order is kept.
pub fn parse_known_hosts(text: &str, url: &UpstreamUrl) -> Result<Vec<HostKey>, KnownHostsError> {
    if text.len() > MAX_BYTES {
        return Err(KnownHostsError::TooLong);
    }
    let names = [
        url.known_hosts_name().to_ascii_lowercase(),
        url.host().to_ascii_lowercase(),
    ];
    let wanted = |hosts: &str| {
        hosts.split(',').any(|h| {
            let h = h.to_ascii_lowercase();
            // `host` alone only matches port 22, as in OpenSSH.
            h == names[0] || (url.port() == 22 && h == names[1])
        })
    };
    let mut keys: Vec<HostKey> = Vec::new();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if lines.len() > MAX_LINES {
        return Err(KnownHostsError::TooLong);
    }
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields[0].starts_with('@') {
            return Err(KnownHostsError::Marker(n));
        }
        let (hosts, key_type, key) = if HOST_KEY_TYPES.contains(&fields[0]) {
            match fields.as_slice() {
                [t, k, ..] => (None, *t, *k),
                _ => return Err(KnownHostsError::Malformed(n)),
            }
        } else {
            match fields.as_slice() {
                [h, t, k, ..] => (Some(*h), *t, *k),
                _ => return Err(KnownHostsError::Malformed(n)),
            }
        };
        if hosts.is_some_and(|h| h.starts_with('|')) {
            return Err(KnownHostsError::Hashed(n));
        }
        let key = HostKey::new(key_type, key)?;
        if hosts.is_none_or(wanted) && !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(KnownHostsError::NoKeyForHost(url.known_hosts_name()));
    }
    Ok(keys)
}

/// The stored form of pinned keys: one `type key` line each.
pub fn known_hosts_text(keys: &[HostKey]) -> String {
    keys.iter().map(|k| k.line() + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // ssh-keygen -t ed25519; the fingerprint as `ssh-keygen -lf` prints it.
    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAINqeyDcGitYM8QqtA2hLakEmu3jRJCYE5lMAhyzaNH+n";

    fn url(s: &str) -> UpstreamUrl {
        UpstreamUrl::parse(s).unwrap().0
    }

    #[test]
    fn fingerprints_as_openssh_does() {
        let key = HostKey::new("ssh-ed25519", ED25519).unwrap();
        assert_eq!(
            key.fingerprint(),
            "SHA256:vAJW/5K3l9e0gLBAHc3KYmOPZLXhMFHBvngkmFO2EdM"
        );
        assert!(!key.fingerprint().ends_with('='));
        assert_eq!(
            HostKey::new("ssh-rsa", ED25519).unwrap_err(),
            KnownHostsError::BadKey("ssh-rsa".into())
        );
        assert!(matches!(
            HostKey::new("ssh-ed25519", "not base64!").unwrap_err(),
            KnownHostsError::BadKey(_)
        ));
        assert!(matches!(
            HostKey::new("x509v3-sign-rsa", ED25519).unwrap_err(),
            KnownHostsError::UnknownType(_)
        ));
    }

    #[test]
    fn keeps_the_lines_for_the_host() {
        let u = url("ssh://git@git.example.org:2222/r.git");
        let text = format!(
            "# scanned\n[git.example.org]:2222 ssh-ed25519 {ED25519}\n\
             other.example.org ssh-ed25519 {ED25519}\n\
             git.example.org,[git.example.org]:2222 ssh-ed25519 {ED25519} comment\n"
        );
        let keys = parse_known_hosts(&text, &u).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(known_hosts_text(&keys), format!("ssh-ed25519 {ED25519}\n"));
        // A bare `type key` line applies to the URL's host.
        assert_eq!(
            parse_known_hosts(&format!("ssh-ed25519 {ED25519}"), &u)
                .unwrap()
                .len(),
            1
        );
        // The host without a port is port 22 only.
        assert_eq!(
            parse_known_hosts(&format!("git.example.org ssh-ed25519 {ED25519}"), &u).unwrap_err(),
            KnownHostsError::NoKeyForHost("[git.example.org]:2222".into())
        );
        let on22 = url("git@git.example.org:r.git");
        assert!(
            parse_known_hosts(&format!("git.example.org ssh-ed25519 {ED25519}"), &on22).is_ok()
        );
    }

    #[test]
    fn refuses_what_cannot_be_pinned() {
        let u = url("git@h.org:r");
        assert_eq!(
            parse_known_hosts("", &u).unwrap_err(),
            KnownHostsError::NoKeyForHost("h.org".into())
        );
        assert_eq!(
            parse_known_hosts(&format!("@revoked h.org ssh-ed25519 {ED25519}"), &u).unwrap_err(),
            KnownHostsError::Marker(1)
        );
        assert_eq!(
            parse_known_hosts(&format!("|1|abc=|def= ssh-ed25519 {ED25519}"), &u).unwrap_err(),
            KnownHostsError::Hashed(1)
        );
        assert_eq!(
            parse_known_hosts("h.org ssh-ed25519", &u).unwrap_err(),
            KnownHostsError::Malformed(1)
        );
        let long = format!("ssh-ed25519 {ED25519}\n").repeat(MAX_LINES + 1);
        assert_eq!(
            parse_known_hosts(&long, &u).unwrap_err(),
            KnownHostsError::TooLong
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = parse_known_hosts(&s, &url("git@h.org:r"));
        }
    }
}
