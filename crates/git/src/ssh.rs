//! SSH upstreams: git runs `ssh` with nothing of the machine's (no `~/.ssh`, no agent, no
//! config), the repository's own pinned host keys as the only trusted ones, the private key
//! from a file readable only by the hub that lives as long as the run, and the address the
//! engine resolved and checked itself (the host name survives only as `HostKeyAlias`).
//!
//! One connection serves many runs: the first ssh to a server becomes the master of a
//! multiplexed connection (`ControlMaster=auto`) that stays up a while (60 s by default,
//! `EngineConfig::ssh_connection_reuse`) after its last session, and later runs with the same login, address, key and pinned host keys open
//! sessions on it instead of a new handshake (~0.3 s and most of the CPU of a short run). Its
//! socket lives in the engine's private 0700 directory under a SHA-256 of everything that
//! authenticated it, so a run can only ever use a connection made with its own key to a
//! server with its own pinned keys.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mirrorhub_core::{HostKey, UpstreamUrl};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::GitError;

/// How the hub logs in to an SSH upstream and which server it trusts.
#[derive(Debug, Clone, Copy)]
pub struct SshAccess<'a> {
    /// An OpenSSH private key (unencrypted text). Without one, ssh offers no key.
    pub key: Option<&'a SecretString>,
    /// The host keys pinned for the repository: the only ones ssh accepts.
    pub known_hosts: &'a [HostKey],
}

/// The files of one ssh run in a 0700 directory of their own, removed when dropped (after
/// git and ssh have exited).
pub(crate) struct SshFiles {
    dir: PathBuf,
    key: Option<PathBuf>,
    known_hosts: PathBuf,
    /// The socket of the connection shared by runs that authenticate exactly alike.
    control: PathBuf,
}

impl Drop for SshFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The name ssh checks the pinned keys under: the URL's host, whatever address is dialled.
pub(crate) fn host_alias(url: &UpstreamUrl) -> String {
    url.host().to_owned()
}

/// `user@address:port`: who logs in where, as dialled.
pub(crate) fn login(url: &UpstreamUrl, addr: std::net::SocketAddr) -> String {
    format!(
        "{}@{}:{}",
        url.user().unwrap_or_default(),
        addr.ip(),
        url.port()
    )
}

/// Writes the key (0600) and the known_hosts file of one run under `root` (the engine's
/// private `ssh` directory). `login` is `user@address:port`, as dialled.
pub(crate) fn write_files(
    root: &Path,
    access: &SshAccess<'_>,
    alias: &str,
    login: &str,
) -> std::io::Result<SshFiles> {
    let shared = root.join("mux");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&shared)?;
    let dir = root.join(crate::transport::random_hex(8));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let mut pinned = String::new();
    for key in access.known_hosts {
        let _ = writeln!(pinned, "{alias} {} {}", key.key_type, key.key);
    }
    let mut hash = Sha256::new();
    for part in [
        login,
        pinned.as_str(),
        access.key.map_or("", |k| k.expose_secret()),
    ] {
        hash.update(part.len().to_le_bytes());
        hash.update(part.as_bytes());
    }
    // 32 hex digits: well inside the 108 bytes of a socket path.
    let name: String = hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut files = SshFiles {
        key: None,
        known_hosts: dir.join("known_hosts"),
        control: shared.join(name),
        dir,
    };
    write_private(&files.known_hosts, pinned.as_bytes())?;
    if let Some(secret) = access.key {
        let path = files.dir.join("id");
        let mut text = secret.expose_secret().trim_end().to_owned();
        text.push('\n');
        write_private(&path, text.as_bytes())?;
        files.key = Some(path);
    }
    Ok(files)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The options of every ssh run the hub makes: nothing of the machine's (`-F /dev/null`), the
/// run's key and pinned host keys only, no agent, forwarding or prompts; the connection shared
/// only with runs that authenticate alike (see the module's comment).
/// `reuse`: how long the connection outlives its last session; zero, not shared.
pub(crate) fn ssh_options(
    files: &SshFiles,
    alias: &str,
    connect_timeout: Duration,
    reuse: Duration,
) -> Vec<String> {
    let identity = files
        .key
        .as_deref()
        .map_or_else(|| "none".to_owned(), |p| p.to_string_lossy().into_owned());
    let options = [
        "BatchMode=yes".to_owned(),
        "IdentitiesOnly=yes".to_owned(),
        "IdentityAgent=none".to_owned(),
        format!("IdentityFile={identity}"),
        format!("UserKnownHostsFile={}", files.known_hosts.to_string_lossy()),
        "GlobalKnownHostsFile=/dev/null".to_owned(),
        "StrictHostKeyChecking=yes".to_owned(),
        format!("HostKeyAlias={alias}"),
        "CheckHostIP=no".to_owned(),
        "UpdateHostKeys=no".to_owned(),
        "ForwardAgent=no".to_owned(),
        "ForwardX11=no".to_owned(),
        "ClearAllForwardings=yes".to_owned(),
        "PermitLocalCommand=no".to_owned(),
        "PasswordAuthentication=no".to_owned(),
        "KbdInteractiveAuthentication=no".to_owned(),
        "PreferredAuthentications=publickey".to_owned(),
        format!("ConnectTimeout={}", connect_timeout.as_secs().max(1)),
        "ServerAliveInterval=15".to_owned(),
        "ServerAliveCountMax=4".to_owned(),
    ];
    let reuse = reuse.as_secs();
    let sharing = if reuse == 0 {
        vec!["ControlMaster=no".to_owned(), "ControlPath=none".to_owned()]
    } else {
        vec![
            "ControlMaster=auto".to_owned(),
            format!("ControlPath={}", files.control.to_string_lossy()),
            format!("ControlPersist={reuse}"),
        ]
    };
    let mut args = vec!["-F".to_owned(), "/dev/null".to_owned()];
    for option in options.into_iter().chain(sharing) {
        args.push("-o".to_owned());
        args.push(option);
    }
    args
}

/// `GIT_SSH_COMMAND`: git appends `[-p port] user@address 'git-upload-pack …'`.
pub(crate) fn ssh_command(program: &Path, options: &[String]) -> String {
    let mut cmd = shell_quote(&program.to_string_lossy());
    for arg in options {
        cmd.push(' ');
        cmd.push_str(&shell_quote(arg));
    }
    cmd
}

/// The rest of the ssh command line git would run for `url` dialled at `addr`: the port, the
/// login at the address, and the remote command (the path as git sends it, quoted for the
/// server's shell).
pub(crate) fn upload_pack_args(url: &UpstreamUrl, addr: std::net::SocketAddr) -> Vec<String> {
    let mut args = Vec::new();
    if url.port() != mirrorhub_core::Scheme::Ssh.default_port() {
        args.push("-p".to_owned());
        args.push(url.port().to_string());
    }
    let login = url.user().map(|u| format!("{u}@")).unwrap_or_default();
    args.push(format!("{login}{}", addr.ip()));
    // git's own rule (connect.c), kept to the letter so that listing and fetch ask for the same
    // repository: a second character `~` drops the first (`/~user/repo` is under a home).
    let path = url.path();
    let path = if path.as_bytes().get(1) == Some(&b'~') {
        &path[1..]
    } else {
        path
    };
    args.push(format!("git-upload-pack {}", shell_quote(path)));
    args
}

/// One word for `sh`, whatever it holds.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `ssh-keyscan` beside the configured ssh (or from PATH).
pub(crate) fn keyscan_program(ssh: &Path) -> PathBuf {
    match ssh.parent().filter(|d| d.is_absolute()) {
        Some(dir) => dir.join("ssh-keyscan"),
        None => PathBuf::from("ssh-keyscan"),
    }
}

/// The host keys in `ssh-keyscan` output (`host type key` lines; `#` lines are its banners).
pub(crate) fn parse_keyscan(stdout: &[u8]) -> Vec<HostKey> {
    let mut keys: Vec<HostKey> = Vec::new();
    for line in String::from_utf8_lossy(stdout).lines() {
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, key_type, key, ..] = fields.as_slice() {
            if let Ok(key) = HostKey::new(key_type, key) {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
    }
    keys
}

/// The fingerprint ssh reports for the key a server sent when it was not the pinned one.
pub(crate) fn seen_fingerprint(stderr: &str) -> Option<String> {
    let at = stderr.find("sent by the remote host is")?;
    stderr[at..]
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(|w| w.trim_end_matches('.').to_owned())
}

/// What an ssh failure means, when it is ssh's own (not git's or the server's repository).
pub(crate) fn classify(stderr: &str, url: &UpstreamUrl, pinned: &[HostKey]) -> Option<GitError> {
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("host key verification failed")
        || lower.contains("remote host identification has changed")
    {
        return Some(GitError::HostKeyMismatch {
            host: url.known_hosts_name(),
            expected: pinned.iter().map(HostKey::fingerprint).collect(),
            seen: seen_fingerprint(stderr),
        });
    }
    if lower.contains("permission denied (publickey")
        || lower.contains("too many authentication failures")
        || lower.contains("no supported authentication methods")
    {
        return Some(GitError::SshAuthFailed);
    }
    if lower.contains("kex_exchange_identification")
        || lower.contains("connection closed by remote host")
    {
        return Some(GitError::Unreachable {
            detail: crate::error::summarize(stderr),
        });
    }
    None
}

/// Removes the `ssh` directories (private keys of runs in flight) that engines of processes
/// which no longer run left behind under `tmp` (a hub killed mid-sync cannot clean up).
pub(crate) fn sweep_dead_engines(tmp: &Path, own: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_engine = entry
            .file_name()
            .to_string_lossy()
            .starts_with("mirrorhub-git-");
        if !is_engine || dir == own {
            continue;
        }
        let Ok(pid) = std::fs::read_to_string(dir.join("pid")) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.trim()).exists();
        if !alive && dir.join("ssh").exists() {
            tracing::info!(dir = %dir.display(), "removing key files a stopped hub left behind");
            let _ = std::fs::remove_dir_all(dir.join("ssh"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keyscan_output_and_mismatch_messages() {
        let out = b"# 127.0.0.1:2222 SSH-2.0-OpenSSH_9.2p1\n\
            [127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINqeyDcGitYM8QqtA2hLakEmu3jRJCYE5lMAhyzaNH+n\n\
            [127.0.0.1]:2222 ssh-rsa not-a-key\n";
        let keys = parse_keyscan(out);
        assert_eq!(keys.len(), 1);
        assert_eq!(
            keys[0].fingerprint(),
            "SHA256:vAJW/5K3l9e0gLBAHc3KYmOPZLXhMFHBvngkmFO2EdM"
        );
        let stderr = "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
            The fingerprint for the ED25519 key sent by the remote host is\nSHA256:abcDEF+/12.\n\
            Host key verification failed.";
        assert_eq!(
            seen_fingerprint(stderr).as_deref(),
            Some("SHA256:abcDEF+/12")
        );
        let url = mirrorhub_core::UpstreamUrl::parse("ssh://git@h.org:2222/r")
            .unwrap()
            .0;
        match classify(stderr, &url, &keys) {
            Some(GitError::HostKeyMismatch {
                host,
                expected,
                seen,
            }) => {
                assert_eq!(host, "[h.org]:2222");
                assert_eq!(expected, vec![keys[0].fingerprint()]);
                assert_eq!(seen.as_deref(), Some("SHA256:abcDEF+/12"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify("git@h.org: Permission denied (publickey).", &url, &keys),
            Some(GitError::SshAuthFailed)
        ));
        assert!(classify("fatal: repository not found", &url, &keys).is_none());
    }

    #[test]
    fn asks_for_the_path_git_asks_for() {
        let addr: std::net::SocketAddr = "192.0.2.7:22".parse().unwrap();
        let args = |u: &str| upload_pack_args(&UpstreamUrl::parse(u).unwrap().0, addr);
        assert_eq!(
            args("ssh://git@h.org/o/r.git"),
            ["git@192.0.2.7", "git-upload-pack '/o/r.git'"]
        );
        assert_eq!(
            args("ssh://git@h.org:2222/~me/r.git"),
            ["-p", "2222", "git@192.0.2.7", "git-upload-pack '~me/r.git'"]
        );
        assert_eq!(
            args("git@h.org:o/r.git"),
            ["git@192.0.2.7", "git-upload-pack 'o/r.git'"]
        );
        assert_eq!(
            args("h.org:/~me/r.git"),
            ["192.0.2.7", "git-upload-pack '~me/r.git'"]
        );
    }

    #[test]
    fn quotes_every_word_for_the_shell() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        let root = tempfile::tempdir().unwrap();
        let secret = SecretString::from(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----".to_owned(),
        );
        let keys = parse_keyscan(
            b"h ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINqeyDcGitYM8QqtA2hLakEmu3jRJCYE5lMAhyzaNH+n\n",
        );
        let access = SshAccess {
            key: Some(&secret),
            known_hosts: &keys,
        };
        let files = write_files(
            &root.path().join("ssh"),
            &access,
            "h.org",
            "git@192.0.2.7:22",
        )
        .unwrap();
        let key = files.key.clone().unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(std::fs::read_to_string(&key)
            .unwrap()
            .ends_with("KEY-----\n"));
        let pinned = std::fs::read_to_string(&files.known_hosts).unwrap();
        assert!(pinned.starts_with("h.org ssh-ed25519 "), "{pinned}");
        let minute = Duration::from_secs(60);
        let cmd = ssh_command(
            Path::new("ssh"),
            &ssh_options(&files, "h.org", minute, minute),
        );
        assert!(
            cmd.contains("'StrictHostKeyChecking=yes'") && cmd.contains("'-F' '/dev/null'"),
            "{cmd}"
        );
        assert!(
            !cmd.contains("BEGIN"),
            "the key itself never goes into the command"
        );
        // Runs that authenticate alike share a connection; any difference parts them.
        let again = write_files(
            &root.path().join("ssh"),
            &access,
            "h.org",
            "git@192.0.2.7:22",
        )
        .unwrap();
        assert_eq!(again.control, files.control);
        let other = SecretString::from("another key".to_owned());
        let parted = [
            write_files(
                &root.path().join("ssh"),
                &access,
                "h.org",
                "git@192.0.2.7:2222",
            ),
            write_files(
                &root.path().join("ssh"),
                &SshAccess {
                    key: Some(&other),
                    known_hosts: &keys,
                },
                "h.org",
                "git@192.0.2.7:22",
            ),
            write_files(
                &root.path().join("ssh"),
                &SshAccess {
                    key: Some(&secret),
                    known_hosts: &[],
                },
                "h.org",
                "git@192.0.2.7:22",
            ),
        ];
        for p in parted {
            assert_ne!(p.unwrap().control, files.control);
        }
        assert!(
            cmd.contains("'ControlMaster=auto'") && cmd.contains("'ControlPersist=60'"),
            "{cmd}"
        );
        let alone = ssh_command(
            Path::new("ssh"),
            &ssh_options(&files, "h.org", minute, Duration::ZERO),
        );
        assert!(
            alone.contains("'ControlMaster=no'") && alone.contains("'ControlPath=none'"),
            "{alone}"
        );
        assert!(!alone.contains("''"), "no empty option: {alone}");
        let dir = files.dir.clone();
        drop(files);
        assert!(!dir.exists(), "the run's files are removed with it");
    }
}
