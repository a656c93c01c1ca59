//! The testkit's sshd is a real OpenSSH server: git clones and pushes over it with an
//! authorized key, other keys and non-git commands are refused, and a replaced host key is
//! what a strict client sees as a changed host.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mirrorhub_testkit::{for_each_ref, git_command, init_bare, Scratch, SshKeyPair, SshServer};
use tempfile::TempDir;

/// A bare `project.git` under `root` with one commit on `main`.
fn upstream(root: &Path) -> PathBuf {
    let repo = root.join("project.git");
    init_bare(&repo);
    let scratch = Scratch::new();
    scratch.commit_file("README.md", "hello\n", "first");
    scratch.push(repo.to_str().unwrap(), &["main"]);
    repo
}

/// Runs git in `dir` (clean environment) with `ssh_command` as its `GIT_SSH_COMMAND`.
fn git_ssh(dir: &Path, ssh_command: &str, args: &[&str]) -> Output {
    git_command(dir)
        .env("GIT_SSH_COMMAND", ssh_command)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run git")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "failed ({}): {}",
        output.status,
        stderr(output)
    );
}

/// The ssh client with nothing of the user's `~/.ssh`, authenticating with `key` only.
fn ssh(key: &SshKeyPair) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-i"])
        .arg(key.path())
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .stdin(Stdio::null());
    cmd
}

/// A `GIT_SSH_COMMAND` that trusts only the host keys in `known_hosts`.
fn strict_ssh_command(key: &SshKeyPair, known_hosts: &Path) -> String {
    format!(
        "ssh -F /dev/null -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes \
         -o StrictHostKeyChecking=yes -o UserKnownHostsFile='{}' \
         -o GlobalKnownHostsFile=/dev/null",
        key.path().display(),
        known_hosts.display()
    )
}

/// `ssh-keyscan`'s line for the server's Ed25519 host key, and its fingerprint.
fn keyscan(server: &SshServer) -> (String, String) {
    let output = Command::new("ssh-keyscan")
        .args([
            "-t",
            "ed25519",
            "-p",
            &server.port().to_string(),
            "127.0.0.1",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keyscan");
    assert_ok(&output);
    let line = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .find(|line| !line.starts_with('#'))
        .expect("a host key line from ssh-keyscan")
        .to_owned();
    let mut keygen = Command::new("ssh-keygen")
        .args(["-lf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run ssh-keygen");
    std::io::Write::write_all(&mut keygen.stdin.take().unwrap(), line.as_bytes()).unwrap();
    let output = keygen.wait_with_output().unwrap();
    assert_ok(&output);
    let fingerprint = String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .to_owned();
    (line, fingerprint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_key_lists_clones_and_pushes() {
    let root = TempDir::new().unwrap();
    let repo = upstream(root.path());
    let server = SshServer::start(root.path()).await;
    let key = SshKeyPair::generate("client@mirrorhub-test");
    server.authorize(&key.public_key);
    let url = server.url("project.git");
    assert_eq!(
        url,
        format!(
            "ssh://{}@127.0.0.1:{}{}/project.git",
            server.user(),
            server.port(),
            server.root().display()
        )
    );
    let work = TempDir::new().unwrap();
    let ssh_command = server.git_ssh_command(&key);

    let listed = git_ssh(work.path(), &ssh_command, &["ls-remote", &url]);
    assert_ok(&listed);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains("refs/heads/main"), "{listed}");
    assert!(
        server.log().contains("Accepted publickey for"),
        "{}",
        server.log()
    );

    let mirror = work.path().join("mirror.git");
    let cloned = git_ssh(
        work.path(),
        &ssh_command,
        &[
            "clone",
            "--quiet",
            "--mirror",
            &url,
            mirror.to_str().unwrap(),
        ],
    );
    assert_ok(&cloned);
    assert_eq!(for_each_ref(&mirror), for_each_ref(&repo));

    // receive-pack goes through git-shell too.
    let main = Scratch::new();
    main.commit_file("pushed.txt", "pushed\n", "pushed over ssh");
    let pushed = git_ssh(
        main.path(),
        &ssh_command,
        &["push", "--quiet", &url, "main:refs/heads/pushed"],
    );
    assert_ok(&pushed);
    assert!(for_each_ref(&repo).contains("refs/heads/pushed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_not_authorized_are_refused() {
    let root = TempDir::new().unwrap();
    upstream(root.path());
    let server = SshServer::start(root.path()).await;
    let allowed = SshKeyPair::generate("allowed");
    let stranger = SshKeyPair::generate("stranger");
    server.authorize(&allowed.public_key);
    let url = server.url("project.git");
    let work = TempDir::new().unwrap();

    let refused = git_ssh(
        work.path(),
        &server.git_ssh_command(&stranger),
        &["ls-remote", &url],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("Permission denied"),
        "{}",
        stderr(&refused)
    );
    assert_ok(&git_ssh(
        work.path(),
        &server.git_ssh_command(&allowed),
        &["ls-remote", &url],
    ));

    server.clear_authorized();
    let revoked = git_ssh(
        work.path(),
        &server.git_ssh_command(&allowed),
        &["ls-remote", &url],
    );
    assert!(!revoked.status.success());
    assert!(
        stderr(&revoked).contains("Permission denied"),
        "{}",
        stderr(&revoked)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_git_commands_run() {
    let root = TempDir::new().unwrap();
    let server = SshServer::start(root.path()).await;
    let key = SshKeyPair::generate("client");
    server.authorize(&key.public_key);
    let output = ssh(&key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-p",
            &server.port().to_string(),
            &format!("{}@127.0.0.1", server.user()),
            "id",
        ])
        .output()
        .expect("run ssh");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "id ran: {:?}", output.stdout);
    assert!(
        stderr(&output).contains("unrecognized command 'id'"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_host_key_fails_strict_host_key_checking() {
    let root = TempDir::new().unwrap();
    upstream(root.path());
    let mut server = SshServer::start(root.path()).await;
    let key = SshKeyPair::generate("client");
    server.authorize(&key.public_key);
    let url = server.url("project.git");
    let work = TempDir::new().unwrap();
    let known_hosts = work.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("{}\n", server.known_hosts_line())).unwrap();
    let strict = strict_ssh_command(&key, &known_hosts);

    let (line, fingerprint) = keyscan(&server);
    assert_eq!(line, server.known_hosts_line());
    assert_eq!(fingerprint, server.host_key_fingerprint());
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    assert!(server.host_public_key().starts_with("ssh-ed25519 AAAA"));
    assert_ok(&git_ssh(work.path(), &strict, &["ls-remote", &url]));

    let port = server.port();
    server.replace_host_key().await;
    assert_eq!(server.port(), port);
    let (new_line, new_fingerprint) = keyscan(&server);
    assert_ne!(new_fingerprint, fingerprint);
    assert_eq!(new_fingerprint, server.host_key_fingerprint());
    assert_eq!(new_line, server.known_hosts_line());

    let refused = git_ssh(work.path(), &strict, &["ls-remote", &url]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || message.contains("Host key verification failed"),
        "{message}"
    );
    // The server itself works with its new key.
    assert_ok(&git_ssh(
        work.path(),
        &server.git_ssh_command(&key),
        &["ls-remote", &url],
    ));
}

#[test]
fn key_pairs_are_real_openssh_keys() {
    let plain = SshKeyPair::generate("plain@test");
    assert!(plain.public_key.starts_with("ssh-ed25519 AAAA"));
    assert!(plain.public_key.ends_with(" plain@test"));
    assert!(!plain.public_key.contains('\n'));
    assert!(plain
        .private_key
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert_eq!(
        std::fs::read_to_string(plain.path()).unwrap(),
        plain.private_key
    );
    assert_eq!(
        std::fs::metadata(plain.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let derived = public_of(plain.path(), "");
    assert_ok(&derived);
    assert!(plain
        .public_key
        .starts_with(String::from_utf8(derived.stdout).unwrap().trim()));

    let locked = SshKeyPair::generate_with_passphrase("locked@test", "correct horse");
    assert_eq!(
        std::fs::metadata(locked.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(locked
        .private_key
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert_ne!(locked.private_key, plain.private_key);
    assert!(!public_of(locked.path(), "").status.success());
    assert!(!public_of(locked.path(), "wrong").status.success());
    let derived = public_of(locked.path(), "correct horse");
    assert_ok(&derived);
    assert!(locked
        .public_key
        .starts_with(String::from_utf8(derived.stdout).unwrap().trim()));
}

/// `ssh-keygen -y`: the public key of a private key file, decrypted with `passphrase`.
fn public_of(private: &Path, passphrase: &str) -> Output {
    Command::new("ssh-keygen")
        .args(["-y", "-P", passphrase, "-f"])
        .arg(private)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_server_ends_open_connections() {
    let root = TempDir::new().unwrap();
    let repo = upstream(root.path());
    let server = SshServer::start(root.path()).await;
    let key = SshKeyPair::generate("client");
    server.authorize(&key.public_key);
    // An upload-pack session that waits for the client's wants: stdin stays open.
    let mut client = ssh(&key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-p",
            &server.port().to_string(),
            &format!("{}@127.0.0.1", server.user()),
            &format!("git-upload-pack '{}'", repo.display()),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ssh");
    let mut advertisement = [0u8; 4];
    std::io::Read::read_exact(client.stdout.as_mut().unwrap(), &mut advertisement)
        .expect("the ref advertisement starts");
    assert!(client.try_wait().unwrap().is_none());

    let port = server.port();
    drop(server);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // sshd runs each connection in a session of its own: only if those are killed too does
    // the client see the connection end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection outlived the server"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
