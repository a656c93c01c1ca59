//! A real `git daemon` serving a directory of repositories over git://.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::repo::{clean_git_env, git_exec_path};

/// `git daemon` on 127.0.0.1, exporting every repository under its base path, with push
/// (`receive-pack`) enabled. It runs in its own process group, killed with its children on drop.
pub struct GitDaemon {
    child: Child,
    /// The daemon's stderr (it logs nothing but errors without `--verbose`, and clients get
    /// theirs through `--informative-errors`).
    log: tempfile::NamedTempFile,
    port: u16,
    base: PathBuf,
}

impl GitDaemon {
    /// Starts the daemon for the repositories under `base` and waits until it accepts
    /// connections. Panics if it cannot be started.
    pub async fn start(base: &Path) -> GitDaemon {
        let base = base
            .canonicalize()
            .unwrap_or_else(|e| panic!("base path {}: {e}", base.display()));
        // git-daemon itself, not `git daemon`: the wrapper would run it as a child, and killing
        // the wrapper would not mean the listening socket is closed yet.
        let program = git_exec_path().join("git-daemon");
        let mut last_error = String::new();
        // A port found free can be taken by someone else before the daemon binds it: retry.
        for _ in 0..5 {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().expect("create the daemon log");
            let mut cmd = Command::new(&program);
            clean_git_env(&mut cmd);
            cmd.arg("--export-all")
                .arg(format!("--base-path={}", base.display()))
                .arg("--reuseaddr")
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg("--enable=receive-pack")
                .arg("--informative-errors")
                .current_dir(&base)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log.reopen().expect("reopen the daemon log"));
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
            let child = cmd.spawn().expect("spawn git daemon");
            let mut daemon = GitDaemon {
                child,
                log,
                port,
                base: base.clone(),
            };
            match daemon.wait_ready().await {
                Ok(()) => return daemon,
                Err(e) => last_error = format!("{e}: {}", daemon.log()),
            }
        }
        panic!("git daemon did not start: {last_error}");
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("exited with {status}"));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("not accepting connections after 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the daemon wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// `git://127.0.0.1:PORT/<repo>`, `repo` relative to the base path.
    pub fn url(&self, repo: &str) -> String {
        format!(
            "git://127.0.0.1:{}/{}",
            self.port,
            repo.trim_start_matches('/')
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory served (canonicalised).
    pub fn base(&self) -> &Path {
        &self.base
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // The daemon runs a child per connection, and the children inherit its listening
            // socket: kill the whole group.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A child may hold the socket for a moment after the daemon is gone: wait until the
        // port is closed, so a test that drops the daemon sees it down.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}
