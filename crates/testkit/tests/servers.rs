//! The testkit's servers serve real clones and pushes, and auth refuses what it should.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mirrorhub_testkit::{for_each_ref, git, init_bare, try_git, GitDaemon, HttpGitServer, Scratch};
use tempfile::TempDir;

/// A bare `project.git` under `base` with two branches, an annotated and a lightweight tag.
fn upstream(base: &Path) -> PathBuf {
    let repo = base.join("project.git");
    init_bare(&repo);
    let scratch = Scratch::new();
    scratch.commit_file("README.md", "hello\n", "first");
    scratch.tag_annotated("v1", "version 1");
    scratch
        .branch("topic")
        .commit_file("a.txt", "a\n", "topic work");
    scratch.tag("lightweight");
    scratch
        .checkout("main")
        .commit_file("b.txt", "b\n", "second");
    scratch.push_mirror(repo.to_str().unwrap());
    repo
}

/// Runs blocking git work off the runtime that serves HTTP.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

fn mirror_clone(url: &str, dest: &Path) -> std::process::Output {
    try_git(
        dest.parent().unwrap(),
        ["clone", "--quiet", "--mirror", url, dest.to_str().unwrap()],
    )
}

fn assert_ok(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "git failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Pushes a new commit to `url` as branch `pushed`.
fn push_new_branch(url: String) {
    let scratch = Scratch::new();
    scratch.commit_file("pushed.txt", "pushed\n", "pushed over the wire");
    scratch.push(&url, &["main:refs/heads/pushed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_daemon_serves_mirror_clones_and_pushes() {
    let base = TempDir::new().unwrap();
    let repo = upstream(base.path());
    let daemon = GitDaemon::start(base.path()).await;
    assert_eq!(
        daemon.url("project.git"),
        format!("git://127.0.0.1:{}/project.git", daemon.port())
    );

    let work = TempDir::new().unwrap();
    let mirror = work.path().join("mirror.git");
    let (url, dest) = (daemon.url("project.git"), mirror.clone());
    assert_ok(&blocking(move || mirror_clone(&url, &dest)).await);
    assert_eq!(for_each_ref(&mirror), for_each_ref(&repo));
    assert_eq!(for_each_ref(&repo).lines().count(), 4);

    blocking({
        let url = daemon.url("project.git");
        move || push_new_branch(url)
    })
    .await;
    assert!(for_each_ref(&repo).contains("refs/heads/pushed"));

    let missing = work.path().join("missing.git");
    let url = daemon.url("nothing-here.git");
    let output = blocking(move || mirror_clone(&url, &missing)).await;
    assert!(!output.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_daemon_is_gone_after_drop() {
    let base = TempDir::new().unwrap();
    upstream(base.path());
    let daemon = GitDaemon::start(base.path()).await;
    let port = daemon.port();
    drop(daemon);
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_backend_serves_clones_over_each_protocol_version_and_pushes() {
    let base = TempDir::new().unwrap();
    let repo = upstream(base.path());
    // Enough tags that the clients' requests get big enough to be gzipped.
    let scratch = Scratch::new();
    scratch.commit("tagged");
    for i in 0..120 {
        scratch.tag(&format!("release/{i:04}"));
    }
    scratch.push(repo.to_str().unwrap(), &["refs/tags/*:refs/tags/*"]);
    let server = HttpGitServer::start(base.path(), None).await;

    let work = TempDir::new().unwrap();
    for version in ["0", "1", "2"] {
        let mirror = work.path().join(format!("v{version}.git"));
        let url = server.url("project.git");
        let dest = mirror.clone();
        let output = blocking(move || {
            try_git(
                dest.parent().unwrap(),
                [
                    "-c",
                    &format!("protocol.version={version}"),
                    "clone",
                    "--quiet",
                    "--mirror",
                    &url,
                    dest.to_str().unwrap(),
                ],
            )
        })
        .await;
        assert_ok(&output);
        assert_eq!(
            for_each_ref(&mirror),
            for_each_ref(&repo),
            "protocol v{version}"
        );
    }
    let requests = server.requests();
    assert_eq!(server.request_count(), requests.len() as u64);
    assert!(requests
        .iter()
        .any(|r| r.method == "GET" && r.path == "/project.git/info/refs" && r.status == 200));
    assert!(requests.iter().any(|r| r.method == "POST"
        && r.path == "/project.git/git-upload-pack"
        && r.status == 200));

    blocking({
        let url = server.url("project.git");
        move || push_new_branch(url)
    })
    .await;
    assert!(for_each_ref(&repo).contains("refs/heads/pushed"));

    server.reset_requests();
    assert_eq!(server.request_count(), 0);
    let missing = work.path().join("missing.git");
    let url = server.url("nothing-here.git");
    let output = blocking(move || mirror_clone(&url, &missing)).await;
    assert!(!output.status.success());
    assert!(
        server.requests().iter().all(|r| r.status == 404),
        "{:?}",
        server.requests()
    );
}

/// A push big enough to be sent chunked, and a clone of it back: bodies stream both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_backend_streams_large_pushes_and_clones() {
    let base = TempDir::new().unwrap();
    let repo = base.path().join("big.git");
    init_bare(&repo);
    let server = HttpGitServer::start(base.path(), None).await;

    // 24 MiB that do not compress.
    let mut state = 0x1234_5678_u64;
    let noise: Vec<u8> = (0..24 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let url = server.url("big.git");
    blocking(move || {
        let scratch = Scratch::new();
        scratch.commit_file("noise.bin", noise, "big");
        scratch.push(&url, &["main"]);
    })
    .await;
    assert!(server
        .requests()
        .iter()
        .any(|r| r.path == "/big.git/git-receive-pack" && r.status == 200));

    let work = TempDir::new().unwrap();
    let mirror = work.path().join("big.git");
    let (url, dest) = (server.url("big.git"), mirror.clone());
    assert_ok(&blocking(move || mirror_clone(&url, &dest)).await);
    assert_eq!(for_each_ref(&mirror), for_each_ref(&repo));
    git(&mirror, ["fsck", "--no-progress"]);
}

/// One plain HTTP/1.1 GET; the whole response as text.
fn raw_get(addr: SocketAddr, path: &str, authorization: Option<&str>) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_refuses_missing_and_wrong_credentials() {
    let base = TempDir::new().unwrap();
    let repo = upstream(base.path());
    let server = HttpGitServer::start(base.path(), Some(("alice".into(), "s3cret".into()))).await;
    let work = TempDir::new().unwrap();

    for (name, url) in [
        ("anonymous", server.url("project.git")),
        (
            "wrong-password",
            server.url_with_credentials("project.git", "alice", "nope"),
        ),
        (
            "wrong-user",
            server.url_with_credentials("project.git", "bob", "s3cret"),
        ),
    ] {
        let dest = work.path().join(format!("{name}.git"));
        let output = blocking(move || mirror_clone(&url, &dest)).await;
        assert!(!output.status.success(), "{name} was let in");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("Authentication failed") || stderr.contains("could not read Username"),
            "{name}: {stderr}"
        );
    }
    assert!(server.request_count() >= 3);
    assert!(server.requests().iter().all(|r| r.status == 401));

    let mirror = work.path().join("alice.git");
    let (url, dest) = (
        server.url_with_credentials("project.git", "alice", "s3cret"),
        mirror.clone(),
    );
    assert_ok(&blocking(move || mirror_clone(&url, &dest)).await);
    assert_eq!(for_each_ref(&mirror), for_each_ref(&repo));

    let path = "/project.git/info/refs?service=git-upload-pack";
    let addr = server.addr();
    let refused = blocking(move || raw_get(addr, path, None)).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"git\""),
        "{refused}"
    );

    // "alice:s3cret" and "alice:nope", base64.
    let accepted = blocking(move || raw_get(addr, path, Some("Basic YWxpY2U6czNjcmV0"))).await;
    assert!(accepted.starts_with("HTTP/1.1 200"), "{accepted}");
    assert!(
        accepted.contains("application/x-git-upload-pack-advertisement"),
        "{accepted}"
    );
    let refused = blocking(move || raw_get(addr, path, Some("Basic YWxpY2U6bm9wZQ=="))).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
}
