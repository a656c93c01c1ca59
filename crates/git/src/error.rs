//! The engine's errors: each says what went wrong and what to do, carries a stable code, and
//! never contains a secret (git's stderr is redacted and cut to a short tail before it is
//! quoted).

use std::net::IpAddr;
use std::time::Duration;

use mirrorhub_core::{ErrorCode, Refusal};

/// Why a probe, clone or sync failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(
        "the upstream host {host} resolves to {addr}, {}, which this hub may not connect to: \
         use the repository's public address, or ask the operator to allow this host \
         (MIRRORHUB_ALLOWED_HOSTS)",
        refusal.describe()
    )]
    UrlRefused {
        host: String,
        addr: IpAddr,
        refusal: Refusal,
    },
    #[error(
        "could not reach the upstream ({detail}): check the host name and port in the URL, and \
         that the server is up and reachable from the hub; this is retried automatically"
    )]
    Unreachable { detail: String },
    #[error(
        "the upstream refused the credentials, or requires some: check the username and token, \
         and that the token may read the repository"
    )]
    AuthFailed,
    #[error(
        "the SSH server refused the hub's key: add the deploy key's public key to the \
         repository on the server (read access is enough for a mirror), or check the uploaded \
         private key"
    )]
    SshAuthFailed,
    #[error(
        "the SSH server {host} did not show the host key pinned for this repository (expected \
         {}; the server sent {}). This happens when the server was reinstalled or moved, or \
         when someone is in between: confirm the new key with the server's administrators, \
         then accept it by giving it as `known_hosts` (PATCH the repository). The mirror is \
         paused until then",
        expected.join(" or "),
        seen.as_deref().unwrap_or("a key of another type")
    )]
    HostKeyMismatch {
        host: String,
        expected: Vec<String>,
        seen: Option<String>,
    },
    #[error(
        "the upstream has no repository at this address: check the URL's path (owner and \
         repository name); a private repository can also look missing without valid credentials"
    )]
    NotFound,
    #[error(
        "the upstream answered, but not as a Git server: check that the URL is the repository's \
         clone URL (it often ends in .git)"
    )]
    NotARepository,
    #[error(
        "the upstream stalled, or the operation took longer than {}: try again later, or ask \
         the operator to raise the timeout for very large repositories",
        humantime::format_duration(*after)
    )]
    Timeout { after: Duration },
    #[error(
        "git failed: {detail}. This may be temporary and is retried; report it if it persists"
    )]
    Failed { detail: String },
    #[error(
        "a file operation on the hub failed ({0}): check the free disk space and the \
         permissions of the data directory"
    )]
    Io(#[from] std::io::Error),
}

impl GitError {
    pub fn code(&self) -> ErrorCode {
        match self {
            GitError::UrlRefused { .. } => ErrorCode::UrlNotAllowed,
            GitError::Unreachable { .. } => ErrorCode::UpstreamUnreachable,
            GitError::AuthFailed | GitError::SshAuthFailed => ErrorCode::UpstreamAuthFailed,
            GitError::HostKeyMismatch { .. } => ErrorCode::HostKeyMismatch,
            GitError::NotFound => ErrorCode::UpstreamNotFound,
            GitError::NotARepository => ErrorCode::NotAGitRepository,
            GitError::Timeout { .. } => ErrorCode::Timeout,
            GitError::Failed { .. } => ErrorCode::GitFailed,
            GitError::Io(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn failed(detail: impl Into<String>) -> Self {
        GitError::Failed {
            detail: detail.into(),
        }
    }
}

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> Self {
        GitError::Failed {
            detail: format!("reading the local repository: {}", e.message()),
        }
    }
}

/// Classifies a failed git run from its (already redacted) stderr. `low_speed_time` is what a
/// curl "too slow" abort is reported as.
pub(crate) fn classify_stderr(stderr: &str, low_speed_time: Duration) -> GitError {
    let lower = stderr.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));

    if has(&[
        "operation too slow",
        "operation timed out",
        "timeout was reached",
    ]) {
        return GitError::Timeout {
            after: low_speed_time,
        };
    }
    if has(&[
        "authentication failed",
        "could not read username",
        "could not read password",
        "terminal prompts disabled",
        "unable to get password",
        "unable to get username",
        "unable to read askpass",
        "returned error: 401",
        "returned error: 403",
        "http basic: access denied",
        "invalid username or password",
    ]) {
        return GitError::AuthFailed;
    }
    if has(&[
        "returned error: 404",
        "returned error: 410",
        "repository not found",
        "no such repository",
        "not exported",
        "does not appear to be a git repository",
        "could not be found",
    ]) || (lower.contains("repository '") && lower.contains("' not found"))
    {
        return GitError::NotFound;
    }
    if has(&[
        "is this a git repository",
        "bad line length",
        "invalid server response",
        "expected flush after ref listing",
        "unexpected content-type",
        "protocol error",
        "bad pack header",
        "invalid packet",
    ]) {
        return GitError::NotARepository;
    }
    if has(&[
        "could not resolve",
        "couldn't resolve",
        "unable to look up",
        "name or service not known",
        "failed to connect",
        "connection refused",
        "unable to connect",
        "network is unreachable",
        "no route to host",
        "connection reset",
        "connection timed out",
        "remote end hung up",
        "received http code 502 from proxy",
        "received http code 503 from proxy",
        "returned error: 502",
        "returned error: 503",
        "returned error: 504",
    ]) {
        return GitError::Unreachable {
            detail: summarize(stderr),
        };
    }
    if has(&["ssl", "tls", "certificate", "gnutls"]) {
        return GitError::Unreachable {
            detail: format!("TLS failed: {}", summarize(stderr)),
        };
    }
    GitError::Failed {
        detail: summarize(stderr),
    }
}

/// The last meaningful lines of git's stderr, without progress, hints and prefixes, cut to a
/// length that fits in a status line.
pub(crate) fn summarize(stderr: &str) -> String {
    const MAX: usize = 400;
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:") && !l.starts_with("warning:"))
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    let mut text = tail
        .iter()
        .map(|l| {
            l.trim_start_matches("fatal: ")
                .trim_start_matches("error: ")
        })
        .collect::<Vec<_>>()
        .join("; ");
    if text.is_empty() {
        text = "git exited without saying why".into();
    }
    if text.len() > MAX {
        let mut cut = text.len() - MAX;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text = format!("…{}", &text[cut..]);
    }
    text
}

/// Removes secrets from text git printed: every given secret (token, proxy ticket), and any
/// `user:password@` written inside a URL.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if secret.len() >= 3 {
            out = out.replace(secret, "[redacted]");
        }
    }
    redact_userinfo(&out)
}

fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("[redacted]@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_git_messages() {
        let slow = Duration::from_secs(60);
        let table: &[(&str, ErrorCode)] = &[
            ("fatal: Authentication failed for 'http://h/r.git/'", ErrorCode::UpstreamAuthFailed),
            (
                "fatal: could not read Username for 'http://h': terminal prompts disabled",
                ErrorCode::UpstreamAuthFailed,
            ),
            ("fatal: repository 'http://h/x.git/' not found", ErrorCode::UpstreamNotFound),
            ("fatal: remote error: access denied or repository not exported: /x", ErrorCode::UpstreamNotFound),
            ("fatal: remote error: no such repository: /x.git", ErrorCode::UpstreamNotFound),
            ("fatal: http://h/info/refs not valid: is this a git repository?", ErrorCode::NotAGitRepository),
            ("fatal: protocol error: bad line length character: HTTP", ErrorCode::NotAGitRepository),
            ("fatal: unable to access 'http://h/': Could not resolve host: h", ErrorCode::UpstreamUnreachable),
            ("fatal: unable to connect to 1.2.3.4:\n1.2.3.4[0: 1.2.3.4]: errno=Connection refused", ErrorCode::UpstreamUnreachable),
            (
                "error: RPC failed; curl 28 Operation too slow. Less than 1000 bytes/sec transferred the last 2 seconds",
                ErrorCode::Timeout,
            ),
            ("fatal: something else entirely", ErrorCode::GitFailed),
        ];
        for (stderr, code) in table {
            assert_eq!(classify_stderr(stderr, slow).code(), *code, "{stderr}");
        }
    }

    #[test]
    fn redacts_secrets_and_userinfo() {
        let text = "fatal: unable to access 'http://alice:hunter22@h/r.git/': token hunter22 bad; proxy http://mh:abcdef@127.0.0.1:9";
        let out = redact(text, &["hunter22", "abcdef"]);
        assert!(!out.contains("hunter22"), "{out}");
        assert!(!out.contains("abcdef"), "{out}");
        assert!(!out.contains("alice"), "{out}");
        assert!(out.contains("http://[redacted]@h/r.git/"), "{out}");
    }

    #[test]
    fn summary_is_short_and_skips_noise() {
        let s = summarize("hint: do this\nwarning: meh\nerror: one\nfatal: two\n");
        assert_eq!(s, "one; two");
        let long = "x".repeat(2000);
        assert!(summarize(&long).len() < 420);
    }

    #[test]
    fn every_message_says_what_to_do() {
        let errors = [
            GitError::UrlRefused {
                host: "h".into(),
                addr: "127.0.0.1".parse().unwrap(),
                refusal: Refusal::Loopback,
            },
            GitError::Unreachable { detail: "x".into() },
            GitError::AuthFailed,
            GitError::NotFound,
            GitError::NotARepository,
            GitError::Timeout {
                after: Duration::from_secs(90),
            },
            GitError::Failed { detail: "x".into() },
            GitError::Io(std::io::Error::other("disk full")),
        ];
        for e in errors {
            let text = e.to_string();
            assert!(text.contains(':') && text.len() > 60, "{text}");
        }
    }
}
