//! A real OpenSSH server serving git repositories over ssh://, and client key pairs for it.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::io::AsyncBufReadExt;

use crate::repo::git_exec_path;

/// How long the server gets to accept connections and greet with its banner.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// `sshd` on 127.0.0.1 with its own host key, config and `authorized_keys`, logging in only the
/// current user, by public key only, and running nothing but git (a forced command hands the
/// client's command to `git-shell`, which runs `git-upload-pack`, `git-receive-pack` and
/// `git-upload-archive` and refuses anything else). Repository paths in its URLs are absolute
/// filesystem paths, as on a plain ssh host.
///
/// The server runs in its own process group; on drop it is killed with every process it
/// started (sshd puts each connection in a session of its own, so killing the group alone
/// would leave running connections behind).
pub struct SshServer {
    child: Child,
    /// Host key, config, `authorized_keys`, forced command, pid file and log.
    dir: TempDir,
    port: u16,
    user: String,
    root: PathBuf,
    /// sshd's absolute path: it refuses to start otherwise (it re-executes itself per
    /// connection).
    sshd: PathBuf,
}

impl SshServer {
    /// Starts sshd serving the repositories under `root` and waits until it greets clients
    /// with its SSH banner. Panics if it cannot be started.
    pub async fn start(root: &Path) -> SshServer {
        let root = root
            .canonicalize()
            .unwrap_or_else(|e| panic!("root path {}: {e}", root.display()));
        let sshd = find_sshd();
        let user = run_text(Command::new("id").arg("-un")).trim().to_owned();
        if run_text(Command::new("id").arg("-u")).trim() == "0" {
            // As root, sshd drops its pre-auth child's privileges into an empty chroot and
            // refuses to start without it ("Missing privilege separation directory").
            std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
            // Without PAM (whose session modules fail in containers), sshd running as root
            // refuses accounts whose password field starts with `!` ("account is locked"),
            // even for key logins: say so here rather than as a puzzling "Permission denied".
            let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
            let prefix = format!("{user}:!");
            assert!(
                !shadow.lines().any(|line| line.starts_with(&prefix)),
                "sshd would refuse {user}: its account is locked in /etc/shadow \
                 (`usermod -p '*' {user}` unlocks it for key logins only)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("mirrorhub-sshd")
            .tempdir()
            .expect("create the sshd dir");
        generate_key(&dir.path().join("host_key"), "", "mirrorhub-testkit-host");
        std::fs::write(dir.path().join("authorized_keys"), "").expect("create authorized_keys");
        write_forced_command(&dir.path().join("git-only.sh"));

        let mut last_error = String::new();
        // A port found free can be taken by someone else before sshd binds it: retry.
        for _ in 0..5 {
            let port = free_port();
            write_config(&sshd, dir.path(), port, &user);
            let log_start = read_log(dir.path()).len();
            let mut child = spawn_sshd(&sshd, dir.path());
            match wait_ready(&mut child, port, dir.path(), log_start).await {
                Ok(()) => {
                    return SshServer {
                        child,
                        dir,
                        port,
                        user,
                        root,
                        sshd,
                    }
                }
                Err(e) => {
                    last_error = format!("{e}: {}", read_log(dir.path()));
                    stop(&mut child, port);
                }
            }
        }
        panic!("sshd did not start: {last_error}");
    }

    /// `ssh://USER@127.0.0.1:PORT/ROOT/<repo>`, `repo` relative to the root.
    pub fn url(&self, repo: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}/{}",
            self.user,
            self.port,
            self.root.display(),
            repo.trim_start_matches('/')
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The one user that can log in: the one running the tests.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The directory served (canonicalised).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What sshd logged so far (`LogLevel VERBOSE`: connections, accepted and refused keys,
    /// sessions), across host key replacements.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Lets the key of `public_key_line` (`ssh-ed25519 AAAA... comment`) log in. sshd reads
    /// the file at each login, so this applies to the next connection.
    pub fn authorize(&self, public_key_line: &str) {
        let path = self.dir.path().join("authorized_keys");
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        writeln!(file, "{}", public_key_line.trim()).expect("append to authorized_keys");
    }

    /// Revokes every key [`authorize`](Self::authorize) added.
    pub fn clear_authorized(&self) {
        std::fs::write(self.dir.path().join("authorized_keys"), "")
            .expect("truncate authorized_keys");
    }

    /// The host key's public half, `ssh-ed25519 AAAA...` (no comment).
    pub fn host_public_key(&self) -> String {
        let path = self.dir.path().join("host_key.pub");
        let line = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The host key's fingerprint, `SHA256:...`, as ssh prints it when it asks to trust a host.
    pub fn host_key_fingerprint(&self) -> String {
        let out = run_text(
            Command::new("ssh-keygen")
                .arg("-lf")
                .arg(self.dir.path().join("host_key.pub")),
        );
        out.split_whitespace()
            .find(|token| token.starts_with("SHA256:"))
            .unwrap_or_else(|| panic!("no SHA256 fingerprint in {out:?}"))
            .to_owned()
    }

    /// A `known_hosts` line for this server: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_public_key())
    }

    /// Restarts the server on the same port with a newly generated host key, as a host that
    /// was reinstalled (or an attacker in the middle) looks to clients that knew the old one.
    pub async fn replace_host_key(&mut self) {
        assert!(
            stop(&mut self.child, self.port),
            "port {} still open 5 s after sshd was killed",
            self.port
        );
        let key = self.dir.path().join("host_key");
        for path in [key.clone(), key.with_extension("pub")] {
            std::fs::remove_file(&path)
                .unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        }
        generate_key(&key, "", "mirrorhub-testkit-host");
        let log_start = self.log().len();
        self.child = spawn_sshd(&self.sshd, self.dir.path());
        if let Err(e) = wait_ready(&mut self.child, self.port, self.dir.path(), log_start).await {
            panic!(
                "sshd did not restart on port {}: {e}: {}",
                self.port,
                self.log()
            );
        }
    }

    /// A `GIT_SSH_COMMAND` for the real git client authenticating with `key`: no user or
    /// system ssh config (`-F /dev/null`, so `~/.ssh` is never read), only that key, never a
    /// prompt, and any host key accepted and remembered nowhere.
    pub fn git_ssh_command(&self, key: &SshKeyPair) -> String {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            shell_quote(&key.path().display().to_string())
        )
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        // No panic when the port stays open: a panic in drop during a failing test aborts.
        stop(&mut self.child, self.port);
    }
}

/// Waits until the sshd just started on `port` greets with its SSH banner. Listening is not
/// enough: the banner says it loaded its host key and config. And a banner is not enough: when
/// another server took the port, this sshd fails to bind and exits, but maybe only after the
/// other's banner was read, so its own log must say it listens (past `log_start`, where its
/// log begins).
async fn wait_ready(
    child: &mut Child,
    port: u16,
    dir: &Path,
    log_start: usize,
) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let listening = format!("Server listening on 127.0.0.1 port {port}.");
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited with {status}"));
        }
        let bound = read_log(dir)
            .get(log_start..)
            .is_some_and(|log| log.contains(&listening));
        if bound {
            if let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                let mut banner = String::new();
                let mut reader = tokio::io::BufReader::new(stream);
                let read = reader.read_line(&mut banner);
                let left = deadline.saturating_duration_since(Instant::now());
                if let Ok(Ok(_)) = tokio::time::timeout(left, read).await {
                    if banner.starts_with("SSH-2.0-") {
                        return Ok(());
                    }
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no SSH banner after {} s", READY_TIMEOUT.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills sshd and everything it started, reaps it, and waits (bounded) until `port` is
/// closed, so a test that stops the server sees it down. Returns whether the port closed.
fn stop(child: &mut Child, port: u16) -> bool {
    if let (Ok(pid), Ok(None)) = (i32::try_from(child.id()), child.try_wait()) {
        kill_tree(pid);
    }
    let _ = child.kill();
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
}

/// An Ed25519 client key pair, as `ssh-keygen` makes it, in a temporary directory that lives as
/// long as the value.
pub struct SshKeyPair {
    /// The OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----...`), unencrypted unless
    /// made by [`generate_with_passphrase`](Self::generate_with_passphrase).
    pub private_key: String,
    /// One line: `ssh-ed25519 AAAA... comment`.
    pub public_key: String,
    path: PathBuf,
    _dir: TempDir,
}

impl SshKeyPair {
    /// A new key pair with an unencrypted private key.
    pub fn generate(comment: &str) -> SshKeyPair {
        Self::generate_with_passphrase(comment, "")
    }

    /// A new key pair whose private key is encrypted with `passphrase` (none when empty).
    pub fn generate_with_passphrase(comment: &str, passphrase: &str) -> SshKeyPair {
        let dir = tempfile::Builder::new()
            .prefix("mirrorhub-sshkey")
            .tempdir()
            .expect("create the key dir");
        let path = dir.path().join("id_ed25519");
        generate_key(&path, passphrase, comment);
        // ssh refuses a private key that others can read; ssh-keygen makes it 0600, but say so.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the private key");
        let private_key = std::fs::read_to_string(&path).expect("read the private key");
        let public_key = std::fs::read_to_string(path.with_extension("pub"))
            .expect("read the public key")
            .trim()
            .to_owned();
        SshKeyPair {
            private_key,
            public_key,
            path,
            _dir: dir,
        }
    }

    /// The private key file (mode 0600), for `ssh -i`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `ssh-keygen -t ed25519` into `path` (and `path.pub`).
fn generate_key(path: &Path, passphrase: &str, comment: &str) {
    run_text(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f"])
            .arg(path),
    );
}

/// The forced command of every session: git-shell with the client's command, so the server
/// runs git and nothing else. sshd runs it with a fresh environment (its own PATH), so the
/// script brings the tests' PATH (the same git) and makes the server's git ignore the
/// machine's config, as [`clean_git_env`](crate::clean_git_env) does for the client.
fn write_forced_command(path: &Path) {
    let exec_path_shell = git_exec_path().join("git-shell");
    let git_shell = if exec_path_shell.exists() {
        exec_path_shell.display().to_string()
    } else {
        "git-shell".to_owned()
    };
    let path_var = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let script = format!(
        "#!/bin/sh\n\
         export PATH={}\n\
         export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null LC_ALL=C\n\
         exec {} -c \"$SSH_ORIGINAL_COMMAND\"\n",
        shell_quote(&path_var),
        shell_quote(&git_shell)
    );
    std::fs::write(path, script).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .expect("chmod the forced command");
}

/// Writes `sshd_config` in `dir` from scratch: nothing of the machine's `/etc/ssh` applies.
fn write_config(sshd: &Path, dir: &Path, port: u16, user: &str) {
    let quoted = |name: &str| format!("\"{}\"", dir.join(name).display());
    let mut config = format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {host_key}\n\
         AuthorizedKeysFile {authorized_keys}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         # The temp dir's parents (/tmp) are writable by others: StrictModes would refuse the keys.\n\
         StrictModes no\n\
         PidFile {pid_file}\n\
         AllowUsers {user}\n\
         # Tests run as root in CI: keys only.\n\
         PermitRootLogin prohibit-password\n\
         AllowTcpForwarding no\n\
         AllowAgentForwarding no\n\
         X11Forwarding no\n\
         PermitTTY no\n\
         PermitUserRC no\n\
         ForceCommand {forced}\n\
         LogLevel VERBOSE\n\
         # Tests open many connections at once.\n\
         MaxStartups 100:30:200\n",
        host_key = quoted("host_key"),
        authorized_keys = quoted("authorized_keys"),
        pid_file = quoted("sshd.pid"),
        forced = shell_quote(&dir.join("git-only.sh").display().to_string()),
    );
    let path = dir.join("sshd_config");
    std::fs::write(&path, &config).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    // OpenSSH 9.8 penalises sources with failed logins by refusing their connections for a
    // while: tests that check refusals would lock the next tests out. Older sshd (Debian 12's
    // 9.2) rejects the option, so it is only added when `sshd -t` accepts it.
    let supported = Command::new(sshd)
        .arg("-t")
        .arg("-f")
        .arg(&path)
        .args(["-o", "PerSourcePenalties=no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if supported {
        config.push_str("PerSourcePenalties no\n");
        std::fs::write(&path, &config).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// `sshd -D -e` (foreground, log to stderr) in its own process group, appending to the log.
fn spawn_sshd(sshd: &Path, dir: &Path) -> Child {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sshd.log"))
        .expect("open the sshd log");
    let mut cmd = Command::new(sshd);
    cmd.arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", sshd.display()))
}

/// sshd by absolute path (it will not start otherwise): the usual places, then `PATH`.
fn find_sshd() -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    ["/usr/sbin", "/usr/local/sbin"]
        .into_iter()
        .map(PathBuf::from)
        .chain(path_dirs)
        .map(|dir| dir.join("sshd"))
        .find(|path| path.is_absolute() && path.is_file())
        .expect("no sshd (openssh-server) in /usr/sbin, /usr/local/sbin or PATH")
}

/// Kills the process `pid` and all its descendants. sshd starts each connection in a new
/// session, and the session's command in another, so neither the process group nor the
/// session reaches them: walk `/proc` for the tree. Everything is stopped first (a stopped
/// process cannot fork or exit, so the tree stays put), then killed.
fn kill_tree(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
    let mut frozen = HashSet::new();
    for _ in 0..100 {
        let new: Vec<i32> = descendants(pid)
            .into_iter()
            .filter(|p| !frozen.contains(p))
            .collect();
        if new.is_empty() {
            break;
        }
        for p in new {
            let _ = kill(Pid::from_raw(p), Signal::SIGSTOP);
            frozen.insert(p);
        }
    }
    for p in frozen {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Every live descendant of `pid`, from the parent ids in `/proc/*/stat`.
fn descendants(pid: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        children.entry(ppid).or_default().push(child);
    }
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        for &child in children.get(&parent).into_iter().flatten() {
            found.push(child);
            queue.push(child);
        }
    }
    found
}

/// Runs `cmd` and returns its stdout; panics with its stderr when it fails.
fn run_text(cmd: &mut Command) -> String {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("non-UTF-8 output")
}

/// `s` as one POSIX shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}
