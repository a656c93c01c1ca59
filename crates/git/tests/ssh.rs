//! SSH upstreams against a real OpenSSH server on 127.0.0.1: deploy keys, pinned host keys,
//! the address policy, and exact syncs.

mod support;

use mirrorhub_core::{AddressPolicy, ErrorCode, HostKey, UpstreamUrl};
use mirrorhub_git::{no_progress, GitEngine, GitError, SshAccess};
use mirrorhub_testkit::{SshKeyPair, SshServer};
use secrecy::SecretString;
use support::{calls, counting_engine, engine, head_of, loopback, refs_of, url, Upstream};

/// An upstream served by sshd, a key it accepts, and an engine allowed to reach it. Fields
/// drop in order: the server stops before its directory goes.
struct Case {
    up: Upstream,
    server: SshServer,
    /// The private key sshd accepts, and the host key it had at the start, pinned.
    secret: SecretString,
    pins: Vec<HostKey>,
    engine: GitEngine,
    url: UpstreamUrl,
    mirror: std::path::PathBuf,
    _data: tempfile::TempDir,
    _root: tempfile::TempDir,
}

impl Case {
    async fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let up = Upstream::rich(root.path(), "r.git");
        let server = SshServer::start(root.path()).await;
        let key = SshKeyPair::generate("mirrorhub test");
        server.authorize(&key.public_key);
        let data = tempfile::tempdir().unwrap();
        Case {
            url: url(&server.url("r.git")),
            up,
            secret: SecretString::from(key.private_key.clone()),
            pins: pinned(&server),
            server,
            engine: engine(loopback()).await,
            mirror: data.path().join("m.git"),
            _data: data,
            _root: root,
        }
    }

    /// The authorised key, trusting the host key pinned at the start.
    fn access(&self) -> SshAccess<'_> {
        SshAccess {
            key: Some(&self.secret),
            known_hosts: &self.pins,
        }
    }

    /// Makes the case's mirror with `engine`, logging in with the authorised key.
    async fn clone_by(&self, engine: &GitEngine) {
        engine
            .clone_mirror(&self.url, self.access(), &self.mirror, no_progress())
            .await
            .unwrap();
    }

    /// How many logins sshd has accepted so far.
    fn logins(&self) -> usize {
        self.server.log().matches("Accepted publickey").count()
    }
}

fn pinned(server: &SshServer) -> Vec<HostKey> {
    let line = server.host_public_key();
    let (t, k) = line.split_once(' ').unwrap();
    vec![HostKey::new(t, k.trim()).unwrap()]
}

#[tokio::test]
async fn mirrors_and_syncs_over_ssh_with_a_deploy_key() {
    let case = Case::new().await;
    let keys = case.engine.scan_host_keys(&case.url).await.unwrap();
    assert!(
        keys.iter()
            .any(|k| k.fingerprint() == case.server.host_key_fingerprint()),
        "{keys:?}"
    );
    let access = SshAccess {
        key: Some(&case.secret),
        known_hosts: &keys,
    };
    let info = case.engine.probe(&case.url, access).await.unwrap();
    assert_eq!(info.head.as_deref(), Some("refs/heads/main"));
    case.engine
        .clone_mirror(&case.url, access, &case.mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(refs_of(&case.mirror), refs_of(&case.up.path));

    // A new commit, a force-push, a deleted branch and tag.
    let s = &case.up.scratch;
    s.commit_file("new.txt", "n\n", "new on main");
    s.checkout("feature");
    s.git(["reset", "--hard", "HEAD~1"]);
    s.commit_file("feature2.txt", "g\n", "rewritten feature");
    s.checkout("main");
    s.git(["branch", "-D", "dev"]);
    s.git(["tag", "-d", "v1"]);
    case.up.push();
    let report = case
        .engine
        .sync_mirror(&case.url, access, &case.mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(refs_of(&case.mirror), refs_of(&case.up.path));
    assert_eq!(report.changes.len(), 4, "{:?}", report.changes);
    let noop = case
        .engine
        .sync_mirror(&case.url, access, &case.mirror, no_progress())
        .await
        .unwrap();
    assert!(noop.changes.is_empty());
    // git ran with the address, never the machine's ssh config or the key in its config.
    let config = std::fs::read_to_string(case.mirror.join("config")).unwrap();
    assert!(
        !config.contains("ssh") && !config.contains("BEGIN"),
        "{config}"
    );
}

#[tokio::test]
async fn a_no_op_sync_over_ssh_runs_no_git_and_every_change_is_seen() {
    let case = Case::new().await;
    let tools = tempfile::tempdir().unwrap();
    let (engine, log) = counting_engine(tools.path()).await;
    case.clone_by(&engine).await;
    let access = case.access();
    let sync = || engine.sync_mirror(&case.url, access, &case.mirror, no_progress());
    let up = &case.up;

    // Equal (the pull-request ref ignored): ssh alone, no git.
    let before = calls(&log);
    let report = sync().await.unwrap();
    assert!(report.noop && report.changes.is_empty(), "{report:?}");
    assert_eq!(report.listed_behind, Some(0));
    assert_eq!(calls(&log), before, "a no-op sync over ssh ran git");
    up.git(&["update-ref", "refs/pull/2/head", &up.rev("main")]);
    assert!(sync().await.unwrap().noop);

    // HEAD only.
    up.git(&["symbolic-ref", "HEAD", "refs/heads/dev"]);
    let report = sync().await.unwrap();
    assert!(!report.noop, "HEAD moved");
    assert_eq!(head_of(&case.mirror), "refs/heads/dev");
    up.git(&["symbolic-ref", "HEAD", "refs/heads/main"]);
    sync().await.unwrap();

    // A new tag only, then its deletion: each seen, counted and fetched.
    up.git(&["tag", "new", "dev"]);
    let all = mirrorhub_core::RefFilter::default();
    let before = calls(&log);
    assert_eq!(
        engine
            .behind(&case.url, access, &case.mirror, &all)
            .await
            .unwrap(),
        1
    );
    assert_eq!(calls(&log), before, "counting ran git");
    let report = sync().await.unwrap();
    assert_eq!(report.listed_behind, Some(1));
    assert_eq!(report.changes.len(), 1, "{report:?}");
    up.git(&["tag", "-d", "new"]);
    let report = sync().await.unwrap();
    assert_eq!(report.changes.len(), 1, "{report:?}");
    assert_eq!(refs_of(&case.mirror), refs_of(&up.path));
    assert!(sync().await.unwrap().noop);

    // All of it over the one connection the clone made: no other login.
    assert_eq!(case.logins(), 1, "{}", case.server.log());
}

#[tokio::test]
async fn with_connection_reuse_off_every_run_logs_in_anew() {
    let case = Case::new().await;
    let engine = support::engine_with(mirrorhub_git::EngineConfig {
        policy: loopback(),
        ssh_connection_reuse: std::time::Duration::ZERO,
        ..mirrorhub_git::EngineConfig::default()
    })
    .await;
    case.clone_by(&engine).await;
    let access = case.access();
    let report = engine
        .sync_mirror(&case.url, access, &case.mirror, no_progress())
        .await
        .unwrap();
    assert!(report.noop);
    assert_eq!(case.logins(), 2, "{}", case.server.log());
}

#[tokio::test]
async fn runs_that_start_together_all_get_through() {
    // None has a connection to share yet: each may try to become its master at once.
    let case = Case::new().await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (engine, url) = (case.engine.clone(), case.url.clone());
        let (secret, keys) = (case.secret.clone(), case.pins.clone());
        set.spawn(async move {
            let access = SshAccess {
                key: Some(&secret),
                known_hosts: &keys,
            };
            engine.probe(&url, access).await
        });
    }
    while let Some(done) = set.join_next().await {
        let info = done.unwrap().unwrap();
        assert_eq!(info.head.as_deref(), Some("refs/heads/main"));
    }
}

#[tokio::test]
async fn a_key_the_server_does_not_know_is_refused_as_auth_failed() {
    let case = Case::new().await;
    let stranger = SshKeyPair::generate("not authorized");
    let secret = SecretString::from(stranger.private_key.clone());
    let access = SshAccess {
        key: Some(&secret),
        known_hosts: &case.pins,
    };
    let e = case.engine.probe(&case.url, access).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UpstreamAuthFailed, "{e}");
    assert!(e.to_string().contains("deploy key"), "{e}");
    // No key at all: the same.
    let none = SshAccess {
        key: None,
        known_hosts: &case.pins,
    };
    let e = case.engine.probe(&case.url, none).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UpstreamAuthFailed, "{e}");
    assert!(!e.to_string().contains("BEGIN"));
}

#[tokio::test]
async fn a_changed_host_key_fails_with_both_fingerprints_and_touches_nothing() {
    let mut case = Case::new().await;
    case.clone_by(&case.engine).await;
    let before = refs_of(&case.mirror);
    case.server.replace_host_key().await;
    case.up
        .scratch
        .commit_file("x.txt", "x\n", "after the key change");
    case.up.push();
    let e = case
        .engine
        .sync_mirror(&case.url, case.access(), &case.mirror, no_progress())
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::HostKeyMismatch, "{e}");
    match &e {
        GitError::HostKeyMismatch { expected, seen, .. } => {
            assert_eq!(expected, &vec![case.pins[0].fingerprint()]);
            assert_eq!(
                seen.as_deref(),
                Some(case.server.host_key_fingerprint().as_str())
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(&case.pins[0].fingerprint()), "{e}");
    assert_eq!(refs_of(&case.mirror), before, "refs untouched");
}

#[tokio::test]
async fn the_address_policy_holds_for_ssh() {
    let case = Case::new().await;
    let strict = engine(AddressPolicy::default()).await;
    let e = strict.scan_host_keys(&case.url).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UrlNotAllowed, "{e}");
    let access = case.access();
    let e = strict.probe(&case.url, access).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UrlNotAllowed, "{e}");
    // A name that resolves to loopback is refused as well: the resolved address is checked.
    let by_name = url(&case.url.to_string().replace("127.0.0.1", "localhost"));
    let e = strict.probe(&by_name, access).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::UrlNotAllowed, "{e}");
    // Allowed by the operator: it works.
    assert!(case.engine.probe(&case.url, access).await.is_ok());
}
