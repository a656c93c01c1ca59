//! Test helpers for the engine: a rich upstream fixture, and the misbehaving servers the
//! testkit does not have (stalling, redirecting, non-git, throttling). The real git servers
//! (`GitDaemon`, `HttpGitServer`) come from `mirrorhub-testkit`. Each helper is independent of
//! this crate: another crate's tests can copy this file.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mirrorhub_core::{AddressPolicy, UpstreamUrl};
use mirrorhub_git::{EngineConfig, GitEngine};
use mirrorhub_testkit::{git, init_bare, Scratch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Parses a URL that must be valid.
pub fn url(s: &str) -> UpstreamUrl {
    UpstreamUrl::parse(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .0
}

/// The policy tests use for their loopback servers.
pub fn loopback() -> AddressPolicy {
    AddressPolicy::parse_list("127.0.0.1").unwrap()
}

/// An engine with `policy` and otherwise default settings.
pub async fn engine(policy: AddressPolicy) -> GitEngine {
    engine_with(EngineConfig {
        policy,
        ..EngineConfig::default()
    })
    .await
}

pub async fn engine_with(config: EngineConfig) -> GitEngine {
    GitEngine::start(config).await.expect("start the engine")
}

/// An engine whose git is a wrapper that writes each invocation's arguments to a log first.
pub async fn counting_engine(dir: &Path) -> (GitEngine, PathBuf) {
    wrapped_engine(dir, "").await
}

/// Like [`counting_engine`], the wrapper running the shell lines `prelude` before git.
pub async fn wrapped_engine(dir: &Path, prelude: &str) -> (GitEngine, PathBuf) {
    let log = dir.join("git-calls.log");
    let wrapper = dir.join("git-wrapper");
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n{prelude}\nexec '{}' \"$@\"\n",
            log.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let engine = GitEngine::start(EngineConfig {
        git_program: wrapper,
        policy: loopback(),
        ..EngineConfig::default()
    })
    .await
    .unwrap();
    (engine, log)
}

pub fn calls(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// A server task that stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                Ok((stream, _)) = listener.accept() => { conns.spawn(handler(stream)); }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    Server { addr, task }
}

/// Reads an HTTP request head; returns the request target.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    text.split(' ').nth(1).map(str::to_owned)
}

/// Accepts connections and never says anything.
pub async fn stalling_tcp() -> Server {
    serve(|mut s| async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
}

/// Answers every request with the headers of a git advertisement, then sends nothing more.
pub async fn stalling_http() -> Server {
    serve(|mut s| async move {
        if read_request(&mut s).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    })
    .await
}

/// A web server that is not a git server: every path is a small HTML page. It answers as
/// soon as anything arrives, as a web server answers garbage with an error page.
pub async fn plain_http() -> Server {
    serve(|mut s| async move {
        let mut first = [0u8; 1];
        if matches!(s.read(&mut first).await, Ok(1)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let body = "<html><body>hello</body></html>";
            let msg = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(msg.as_bytes()).await;
        }
    })
    .await
}

/// Redirects every request to the same path under `base` (e.g. `http://127.0.0.1:1234`).
pub async fn redirecting_http(base: String) -> Server {
    let base = Arc::new(base);
    serve(move |mut s| {
        let base = Arc::clone(&base);
        async move {
            if let Some(target) = read_request(&mut s).await {
                // Absolute-form or origin-form: keep the path and query.
                let path = match target.find("://") {
                    Some(i) => target[i + 3..].find('/').map_or("/".to_owned(), |p| target[i + 3 + p..].to_owned()),
                    None => target,
                };
                let msg = format!(
                    "HTTP/1.1 301 Moved Permanently\r\nLocation: {base}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = s.write_all(msg.as_bytes()).await;
            }
        }
    })
    .await
}

/// A TCP relay to `target` whose downstream rate (bytes per second, 0 for unlimited) can be
/// changed while it runs: makes transfers slow enough to interrupt.
pub async fn throttled_relay(target: SocketAddr, rate: Arc<AtomicU64>) -> Server {
    serve(move |mut client| {
        let rate = Arc::clone(&rate);
        async move {
            let Ok(mut upstream) = TcpStream::connect(target).await else {
                return;
            };
            let (mut cr, mut cw) = client.split();
            let (mut ur, mut uw) = upstream.split();
            let up = tokio::io::copy(&mut cr, &mut uw);
            let down = async {
                let mut buf = vec![0u8; 8 * 1024];
                loop {
                    let limit = rate.load(Ordering::SeqCst);
                    let max = if limit == 0 {
                        buf.len()
                    } else {
                        buf.len().min(limit as usize / 10 + 1)
                    };
                    let n = match ur.read(&mut buf[..max]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    if limit > 0 {
                        tokio::time::sleep(Duration::from_secs_f64(n as f64 / limit as f64)).await;
                    }
                }
                let _ = cw.shutdown().await;
            };
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
        }
    })
    .await
}

/// A bare upstream at `<root>/<name>` with the scratch repository that feeds it.
pub struct Upstream {
    pub path: PathBuf,
    pub scratch: Scratch,
}

impl Upstream {
    /// An empty bare repository (HEAD: refs/heads/main).
    pub fn empty(root: &Path, name: &str) -> Self {
        let path = root.join(name);
        init_bare(&path);
        Self {
            path,
            scratch: Scratch::new(),
        }
    }

    /// Branches main, dev and feature; a lightweight tag, an annotated tag, a tag on a blob, an
    /// annotated tag on a blob and a tag on a tree; and a pull-request ref that must never be
    /// mirrored.
    pub fn rich(root: &Path, name: &str) -> Self {
        let up = Self::empty(root, name);
        let s = &up.scratch;
        s.commit_file("README.md", "one\n", "c1");
        s.tag("v1");
        s.commit_file("src/a.txt", "two\n", "c2");
        s.branch("dev");
        s.checkout("main");
        s.branch("feature");
        s.commit_file("feature.txt", "f\n", "feature work");
        s.checkout("main");
        s.commit_file("src/b.txt", "three\n", "c3");
        s.tag_annotated("v2", "release two");
        let blob = s.git(["rev-parse", "HEAD:README.md"]).trim().to_owned();
        let tree = s.git(["rev-parse", "HEAD^{tree}"]).trim().to_owned();
        s.git(["tag", "blobtag", &blob]);
        s.git(["tag", "-a", "-m", "annotated blob", "blobann", &blob]);
        s.git(["tag", "treetag", &tree]);
        up.push();
        let dev = s.git(["rev-parse", "dev"]).trim().to_owned();
        up.git(&["update-ref", "refs/pull/1/head", &dev]);
        up
    }

    /// Makes the upstream's branches and tags exactly the scratch repository's.
    pub fn push(&self) {
        self.scratch.push_mirror(self.path.to_str().unwrap());
    }

    /// Runs git in the bare upstream.
    pub fn git(&self, args: &[&str]) -> String {
        git(&self.path, args)
    }

    pub fn rev(&self, rev: &str) -> String {
        self.git(&["rev-parse", rev]).trim().to_owned()
    }

    /// Adds a commit with `bytes` of incompressible data on main, so a transfer takes a while.
    pub fn add_bulk(&self, bytes: usize) {
        let mut data = vec![0u8; bytes];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ bytes as u64;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        self.scratch.checkout("main");
        self.scratch
            .commit_file(&format!("bulk-{bytes}.bin"), data, "bulk data");
        self.push();
    }
}

/// `git for-each-ref` of branches and tags with object names: equal on both sides means equal.
pub fn refs_of(repo: &Path) -> String {
    mirrorhub_testkit::for_each_ref(repo)
}

pub fn head_of(repo: &Path) -> String {
    git(repo, ["symbolic-ref", "HEAD"]).trim().to_owned()
}

/// Names of processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(text);
            }
        }
    }
    found
}
