//! Security and failure handling: credentials, the address policy at connect time, error
//! classification, stalls, and interrupted clones and syncs.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirrorhub_core::{AddressPolicy, Credentials, ErrorCode, Refusal};
use mirrorhub_git::{no_progress, CopyEngine, EngineConfig, GitError, ProgressFn};
use mirrorhub_testkit::{git, try_git, GitDaemon, HttpGitServer};
use support::{engine, engine_with, loopback, processes_mentioning, refs_of, url, Upstream};

const USER: &str = "alice";
const TOKEN: &str = "s3cret-token-4242";

fn creds(token: &str) -> Credentials {
    Credentials::new(Some(USER), token).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_http_upstream_needs_the_right_credentials() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::rich(root.path(), "private.git");
    let http = HttpGitServer::start(root.path(), Some((USER.into(), TOKEN.into()))).await;
    let engine = engine(loopback()).await;
    let u = url(&http.url("private.git"));
    let data = tempfile::tempdir().unwrap();
    let mirror = data.path().join("private.git");

    let info = engine.probe(&u, Some(&creds(TOKEN))).await.unwrap();
    assert_eq!(info.branches, 3);
    let report = engine
        .clone_mirror(&u, Some(&creds(TOKEN)), &mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(report.engine, CopyEngine::Gix, "gix gave the credentials");
    assert_eq!(refs_of(&mirror), refs_of(&up.path));
    up.scratch.commit_file("new.txt", "n\n", "new");
    up.push();
    let report = engine
        .sync_mirror(&u, Some(&creds(TOKEN)), &mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!(refs_of(&mirror), refs_of(&up.path));

    // The secret is nowhere in the mirror: not in its config, not in any file.
    let config = git(&mirror, ["config", "-l"]);
    assert!(
        !config.contains(TOKEN) && !config.contains("credential"),
        "{config}"
    );
    let out = std::process::Command::new("grep")
        .args(["-r", "-l", TOKEN])
        .arg(&mirror)
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "secret found in {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Wrong token, missing credentials: auth failed, without the secret in the message.
    let wrong = "wrong-token-9999";
    for c in [Some(creds(wrong)), None] {
        let err = engine.probe(&u, c.as_ref()).await.unwrap_err();
        assert!(matches!(err, GitError::AuthFailed), "{err:?}");
        assert_eq!(err.code(), ErrorCode::UpstreamAuthFailed);
        let err = engine
            .sync_mirror(&u, c.as_ref(), &mirror, no_progress())
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::UpstreamAuthFailed, "{err}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains(wrong) && !text.contains(TOKEN), "{text}");
        let dest = data.path().join("never.git");
        let err = engine
            .clone_mirror(&u, c.as_ref(), &dest, no_progress())
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::UpstreamAuthFailed, "{err}");
        assert!(!dest.exists());
    }
    assert_eq!(
        refs_of(&mirror),
        refs_of(&up.path),
        "a failed sync changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn classifies_missing_and_non_git_upstreams() {
    let root = tempfile::tempdir().unwrap();
    Upstream::rich(root.path(), "here.git");
    let http = HttpGitServer::start(root.path(), None).await;
    let daemon = GitDaemon::start(root.path()).await;
    let web = support::plain_http().await;
    let engine = engine(loopback()).await;

    for missing in [http.url("missing.git"), daemon.url("missing.git")] {
        let err = engine.probe(&url(&missing), None).await.unwrap_err();
        assert!(matches!(err, GitError::NotFound), "{missing}: {err:?}");
        assert_eq!(err.code(), ErrorCode::UpstreamNotFound);
    }
    let err = engine
        .probe(&url(&web.url("http", "repo.git")), None)
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::NotARepository), "{err:?}");
    assert_eq!(err.code(), ErrorCode::NotAGitRepository);
    // A git:// URL pointed at a web server.
    let err = engine
        .probe(&url(&web.url("git", "repo.git")), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotAGitRepository, "{err:?}");

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for u in [
        format!("http://127.0.0.1:{closed}/r.git"),
        format!("git://127.0.0.1:{closed}/r.git"),
    ] {
        let err = engine.probe(&url(&u), None).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::UpstreamUnreachable, "{u}: {err:?}");
    }
    // A name that does not resolve.
    let err = engine
        .probe(&url("http://no-such-host.invalid/r.git"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::UpstreamUnreachable, "{err:?}");
}

fn assert_refused(err: &GitError, host: &str) {
    match err {
        GitError::UrlRefused {
            host: h, refusal, ..
        } => {
            assert_eq!(h, host);
            assert_eq!(*refusal, Refusal::Loopback);
        }
        other => panic!("expected UrlRefused for {host}, got {other:?}"),
    }
    assert_eq!(err.code(), ErrorCode::UrlNotAllowed);
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_address_policy_applies_at_connect_time() {
    let root = tempfile::tempdir().unwrap();
    Upstream::rich(root.path(), "r.git");
    let http = HttpGitServer::start(root.path(), None).await;
    let daemon = GitDaemon::start(root.path()).await;
    let data = tempfile::tempdir().unwrap();

    // Default policy: loopback refused, by address and by name, on every transport.
    let strict = engine(AddressPolicy::default()).await;
    let http_url = url(&http.url("r.git"));
    let git_url = url(&daemon.url("r.git"));
    let http_by_name = url(&format!("http://localhost:{}/r.git", http.addr().port()));
    let git_by_name = url(&format!("git://localhost:{}/r.git", daemon.port()));
    for (u, host) in [
        (&http_url, "127.0.0.1"),
        (&git_url, "127.0.0.1"),
        (&http_by_name, "localhost"),
        (&git_by_name, "localhost"),
    ] {
        assert_refused(&strict.probe(u, None).await.unwrap_err(), host);
        let dest = data.path().join("refused.git");
        assert_refused(
            &strict
                .clone_mirror(u, None, &dest, no_progress())
                .await
                .unwrap_err(),
            host,
        );
        assert!(!dest.exists());
    }
    assert_eq!(http.request_count(), 0, "nothing reached the server");

    // Allowed explicitly: by address, or by name.
    let by_addr = engine(loopback()).await;
    by_addr.probe(&http_url, None).await.unwrap();
    by_addr.probe(&git_url, None).await.unwrap();
    assert_refused(
        &by_addr.probe(&http_by_name, None).await.unwrap_err(),
        "localhost",
    );
    let by_name = engine(AddressPolicy::parse_list("localhost").unwrap()).await;
    by_name.probe(&http_by_name, None).await.unwrap();
    by_name.probe(&git_by_name, None).await.unwrap();
    let mirror = data.path().join("by-name.git");
    by_name
        .clone_mirror(&http_by_name, None, &mirror, no_progress())
        .await
        .unwrap();
    assert_refused(
        &by_name
            .sync_mirror(&http_url, None, &mirror, no_progress())
            .await
            .unwrap_err(),
        "127.0.0.1",
    );

    // An allowed server that redirects to a refused one: refused, and the target never hears
    // of it.
    let redirect =
        support::redirecting_http(format!("http://127.0.0.1:{}", http.addr().port())).await;
    let only_redirector =
        engine(AddressPolicy::parse_list(&format!("127.0.0.1:{}", redirect.port())).unwrap()).await;
    http.reset_requests();
    let err = only_redirector
        .probe(&url(&redirect.url("http", "r.git")), Some(&creds(TOKEN)))
        .await
        .unwrap_err();
    assert_refused(&err, "127.0.0.1");
    assert_eq!(http.request_count(), 0);
    assert!(!err.to_string().contains(TOKEN));
    // The first copy (gix) follows the same rule.
    let dest = data.path().join("redirected.git");
    let err = only_redirector
        .clone_mirror(
            &url(&redirect.url("http", "r.git")),
            Some(&creds(TOKEN)),
            &dest,
            no_progress(),
        )
        .await
        .unwrap_err();
    assert_refused(&err, "127.0.0.1");
    assert_eq!(http.request_count(), 0);
    assert!(!format!("{err} {err:?}").contains(TOKEN));
    assert!(!dest.exists());
    // The same redirect is followed when its target is allowed too.
    let both = engine(loopback()).await;
    let info = both
        .probe(&url(&redirect.url("http", "r.git")), None)
        .await
        .unwrap();
    assert_eq!(info.branches, 3);
    let report = both
        .clone_mirror(
            &url(&redirect.url("http", "r.git")),
            None,
            &dest,
            no_progress(),
        )
        .await
        .unwrap();
    assert_eq!(report.engine, CopyEngine::Gix);
    assert_eq!(report.branches, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_upstreams_time_out() {
    let tcp = support::stalling_tcp().await;
    let http = support::stalling_http().await;
    let data = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        policy: loopback(),
        timeout: Duration::from_secs(3),
        probe_timeout: Duration::from_secs(2),
        low_speed_limit: 1000,
        low_speed_time: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    let engine = engine_with(config).await;

    // git:// that accepts and never answers: the deadline kills git.
    let u = url(&tcp.url("git", "r.git"));
    let started = Instant::now();
    let err = engine.probe(&u, None).await.unwrap_err();
    assert!(
        matches!(err, GitError::Timeout { after } if after == Duration::from_secs(2)),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let dest = data.path().join("stalled.git");
    let err = engine
        .clone_mirror(&u, None, &dest, no_progress())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert!(!dest.exists());

    // HTTP that sends headers and stalls: curl's low-speed limit ends it first.
    let u = url(&http.url("http", "r.git"));
    let started = Instant::now();
    let err = engine
        .clone_mirror(&u, None, &dest, no_progress())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout, "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert!(!dest.exists());
}

/// Calls `notify` once receiving objects has started.
fn on_receiving(notify: Arc<tokio::sync::Notify>) -> ProgressFn {
    Arc::new(move |p| {
        // Small fetches unpack objects instead of indexing a pack.
        if (p.phase == "receiving objects" || p.phase == "unpacking objects") && p.percent >= 1 {
            notify.notify_one();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_clone_leaves_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::rich(root.path(), "big.git");
    up.add_bulk(3 * 1024 * 1024);
    let http = HttpGitServer::start(root.path(), None).await;
    let rate = Arc::new(AtomicU64::new(200 * 1024));
    let relay = support::throttled_relay(http.addr(), Arc::clone(&rate)).await;
    let engine = engine(loopback()).await;
    let u = url(&relay.url("http", "big.git"));
    let data = tempfile::tempdir().unwrap();
    let dest = data.path().join("big.git");

    let receiving = Arc::new(tokio::sync::Notify::new());
    let clone = engine.clone_mirror(&u, None, &dest, on_receiving(Arc::clone(&receiving)));
    tokio::select! {
        r = clone => panic!("the throttled clone should still be running: {r:?}"),
        _ = receiving.notified() => {}
    }
    // The future is dropped: git and its helpers are killed, and no half repository is at dest.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!dest.exists());
    assert!(
        processes_mentioning("big.git.tmp-").is_empty(),
        "{:?}",
        processes_mentioning("big.git.tmp-")
    );
    let leftovers: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "the interrupted clone's temporary directory: {leftovers:?}"
    );

    // The next attempt succeeds and removes the leftover.
    rate.store(0, Ordering::SeqCst);
    engine
        .clone_mirror(&u, None, &dest, no_progress())
        .await
        .unwrap();
    assert_eq!(refs_of(&dest), refs_of(&up.path));
    let names: Vec<_> = std::fs::read_dir(data.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("big.git")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_sync_leaves_all_refs_old_or_all_new() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::rich(root.path(), "s.git");
    let daemon = GitDaemon::start(root.path()).await;
    let rate = Arc::new(AtomicU64::new(0));
    let relay = support::throttled_relay(daemon_addr(&daemon), Arc::clone(&rate)).await;
    let engine = engine(loopback()).await;
    let u = url(&relay.url("git", "s.git"));
    let data = tempfile::tempdir().unwrap();
    let mirror = data.path().join("s.git");
    engine
        .clone_mirror(&u, None, &mirror, no_progress())
        .await
        .unwrap();
    let old = refs_of(&mirror);

    // Many refs change at once, with enough data to interrupt the transfer.
    let s = &up.scratch;
    s.git(["branch", "-D", "dev"]);
    s.git(["tag", "-d", "v1"]);
    s.git(["tag", "v9"]);
    up.add_bulk(2 * 1024 * 1024);
    let new = refs_of(&up.path);

    // Cancelled while receiving objects: 2 MiB at 150 KiB/s take over 10 s. (A small fetch
    // unpacks objects with progress delayed by 2 s, so progress is no signal here.)
    rate.store(150 * 1024, Ordering::SeqCst);
    let sync = engine.sync_mirror(&u, None, &mirror, no_progress());
    let r = tokio::time::timeout(Duration::from_millis(1500), sync).await;
    assert!(
        r.is_err(),
        "the throttled sync should still be running: {r:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(refs_of(&mirror), old);
    assert!(try_git(&mirror, ["fsck", "--no-progress", "--no-dangling"])
        .status
        .success());

    // Cancelled at many points of an unthrottled sync: always all old or all new, never broken.
    rate.store(0, Ordering::SeqCst);
    for delay_ms in [0u64, 2, 5, 10, 20, 30, 45, 60, 80, 120, 200] {
        let sync = engine.sync_mirror(&u, None, &mirror, no_progress());
        let _ = tokio::time::timeout(Duration::from_millis(delay_ms), sync).await;
        let now = refs_of(&mirror);
        assert!(
            now == old || now == new,
            "after {delay_ms} ms: a half-updated mirror:\n{now}"
        );
        let fsck = try_git(&mirror, ["fsck", "--no-progress", "--no-dangling"]);
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stderr)
        );
        if now == new {
            // Put the old refs back (their objects are all there) and try again.
            mirrorhub_testkit::RefSnapshot::parse(
                &old.lines()
                    .map(|l| {
                        let p: Vec<&str> = l.split(' ').collect();
                        format!("{} {}\n", p[0], p[2])
                    })
                    .collect::<String>(),
            )
            .restore(&mirror);
        }
    }
    let report = engine
        .sync_mirror(&u, None, &mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(refs_of(&mirror), new);
    assert!(!report.changes.is_empty());
}

fn daemon_addr(daemon: &GitDaemon) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], daemon.port()))
}

/// git takes a web page for an empty "dumb" repository, and a plain `git fetch --prune` would
/// then delete every ref of the mirror. The engine refuses, and the mirror keeps its refs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_web_page_at_the_upstream_url_never_empties_the_mirror() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::rich(root.path(), "r.git");
    let http = HttpGitServer::start(root.path(), None).await;
    let web = support::plain_http().await;
    let engine = engine(loopback()).await;
    let data = tempfile::tempdir().unwrap();
    let mirror = data.path().join("r.git");
    engine
        .clone_mirror(&url(&http.url("r.git")), None, &mirror, no_progress())
        .await
        .unwrap();
    let web_url = url(&web.url("http", "r.git"));
    for _ in 0..5 {
        let err = engine
            .sync_mirror(&web_url, None, &mirror, no_progress())
            .await
            .unwrap_err();
        assert!(matches!(err, GitError::NotARepository), "{err:?}");
        assert_eq!(refs_of(&mirror), refs_of(&up.path));
    }
    let dest = data.path().join("web.git");
    let err = engine
        .clone_mirror(&web_url, None, &dest, no_progress())
        .await
        .unwrap_err();
    assert!(matches!(err, GitError::NotARepository), "{err:?}");
    assert!(!dest.exists());
}
