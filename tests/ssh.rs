//! SSH upstreams end to end: the real binary, a real OpenSSH server on 127.0.0.1 (started by
//! the test on a free port with its own host key), real git, both databases.

#[macro_use]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{fsck, refs, Db, Hub, TestDb};
use mirrorhub_testkit::{git, init_bare, Scratch, SshKeyPair, SshServer};
use serde_json::{json, Value};

on_both_databases!(
    a_deploy_key_made_by_the_hub_mirrors_and_syncs,
    an_uploaded_key_with_a_passphrase_and_given_known_hosts,
    a_key_the_server_refuses_creates_nothing,
    a_changed_host_key_pauses_until_a_user_accepts_it,
    the_address_policy_and_hostile_urls
);

/// A bare upstream `project.git` under `root` with two branches and a tag.
fn upstream(root: &Path) -> (std::path::PathBuf, Scratch) {
    let upstream = root.join("project.git");
    init_bare(&upstream);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first");
    work.tag("v1");
    work.branch("dev")
        .commit_file("dev.txt", "dev\n", "dev work");
    work.checkout("main");
    work.push_mirror(upstream.to_str().unwrap());
    git(&upstream, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    (upstream, work)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Everything under `dir` as lossy text, to search for a secret that must not be there.
fn all_text_under(dir: &Path) -> String {
    let mut text = String::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    text
}

/// The base64 body of an OpenSSH private key: what would show if it leaked anywhere.
fn private_key_body(private_key: &str) -> String {
    private_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

async fn wait_until(hub: &Hub, repo: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, r) = hub.get(&format!("/api/v1/repos/{repo}")).await;
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{repo}: never {what}: {r}\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_deploy_key_made_by_the_hub_mirrors_and_syncs(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, work) = upstream(root.path());
    let server = SshServer::start(root.path()).await;
    let hub = Hub::start(&db, &[]).await;

    // A deploy key for the owner: 201 with the public half only.
    let (status, key) = hub
        .post(
            "/api/v1/ssh-keys",
            json!({"owner": "team", "title": "gerrit"}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let public_key = key["public_key"].as_str().unwrap();
    assert!(public_key.starts_with("ssh-ed25519 AAAA"), "{key}");
    assert!(key["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    assert_eq!(key["title"], "gerrit");
    assert!(key["created_at"].is_string());
    assert_eq!(
        key.as_object().unwrap().len(),
        6,
        "id, owner, title, public_key, fingerprint, created_at only: {key}"
    );
    let key_id = key["id"].as_i64().unwrap();
    let (status, listed) = hub.get("/api/v1/ssh-keys?owner=team").await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["fingerprint"], key["fingerprint"]);
    // The user pastes the public key into the upstream.
    server.authorize(public_key);

    // Detect host keys: what the server offers, SHA256 fingerprints.
    let url = server.url("project.git");
    let (status, host_keys) = hub.post("/api/v1/ssh/host-keys", json!({"url": url})).await;
    assert_eq!(status, 200, "{host_keys}");
    let fingerprints: Vec<&str> = host_keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["fingerprint"].as_str().unwrap())
        .collect();
    assert_eq!(fingerprints, [server.host_key_fingerprint().as_str()]);
    assert_eq!(host_keys[0]["type"], "ssh-ed25519");
    assert_eq!(host_keys[0]["key"], server.host_public_key());

    // Created with the key and no known_hosts: the keys seen now are pinned and answered.
    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "mode": "mirror", "owner": "team", "name": "project", "ssh_key_id": key_id}),
        )
        .await;
    assert_eq!(status, 202, "{repo}\n{}", hub.log_text());
    assert_eq!(repo["ssh_key_id"], key_id);
    assert_eq!(
        repo["host_keys"][0]["fingerprint"],
        server.host_key_fingerprint()
    );
    assert_eq!(repo["has_credentials"], false);
    let (_, run) = hub.wait_for_run("team/project", None).await;
    assert_eq!(run["outcome"], "success", "{run}\n{}", hub.log_text());
    let mirror = hub.repo_dir(repo_id(&hub, "team/project").await);
    assert_eq!(refs(&mirror), refs(&upstream));
    fsck(&mirror);

    // Upstream changes: a new commit, a force-push, a deleted branch, a new tag.
    work.commit_file("b.txt", "b\n", "second");
    work.git(["branch", "-D", "dev"]);
    work.tag("v2");
    work.push_mirror(upstream.to_str().unwrap());
    let before = hub.latest_run_id("team/project").await;
    assert_eq!(
        hub.post("/api/v1/repos/team/project/sync", json!({}))
            .await
            .0,
        202
    );
    let (_, run) = hub.wait_for_run("team/project", before).await;
    assert_eq!(run["outcome"], "success", "{run}");
    assert_eq!(refs(&mirror), refs(&upstream));

    // The same key pushes the mirror on to another repository over SSH (a push mirror, which
    // trusts only the host keys it is given).
    let backup = root.path().join("backup.git");
    init_bare(&backup);
    let (status, pushing) = hub
        .post(
            "/api/v1/repos/team/project/push-mirrors",
            json!({"url": server.url("backup.git"), "ssh_key_id": key_id,
                   "known_hosts": server.known_hosts_line()}),
        )
        .await;
    assert_eq!(status, 201, "{pushing}\n{}", hub.log_text());
    let push_id = pushing["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while refs(&backup) != refs(&upstream) {
        assert!(
            Instant::now() < deadline,
            "never pushed over SSH: {:?}\n{}",
            refs(&backup),
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A key in use is not deleted; the answer says which repository and push mirror hold it.
    let (status, err) = hub
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/ssh-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!((status, error_code(&err)), (409, "ssh_key_in_use"), "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("team/project"), "{err}");
    assert!(
        message.contains(&format!("team/project (push mirror {push_id})")),
        "{err}"
    );
    // Keys are not for anonymous callers.
    let (status, _) = hub
        .call_with_token(
            reqwest::Method::DELETE,
            &format!("/api/v1/ssh-keys/{key_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);

    // Once the repository is gone, the key may go.
    assert_eq!(
        hub.call(reqwest::Method::DELETE, "/api/v1/repos/team/project", None)
            .await
            .0,
        204
    );
    let (status, _) = hub
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/ssh-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, err) = hub.get(&format!("/api/v1/ssh-keys/{key_id}")).await;
    assert_eq!((status, error_code(&err)), (404, "ssh_key_not_found"));

    // The private key never left the hub in plain text: not in the log, not on disk.
    let log = hub.log_text();
    assert!(!log.contains("BEGIN OPENSSH PRIVATE KEY"), "{log}");
    assert!(!all_text_under(&hub.data_dir).contains("BEGIN OPENSSH PRIVATE KEY"));
}

async fn an_uploaded_key_with_a_passphrase_and_given_known_hosts(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, _work) = upstream(root.path());
    let server = SshServer::start(root.path()).await;
    let key = SshKeyPair::generate_with_passphrase("uploaded", "correct horse battery");
    server.authorize(&key.public_key);
    let hub = Hub::start(&db, &[]).await;
    let url = server.url("project.git");

    // A wrong passphrase is an error on that field, and nothing is created.
    let (status, err) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "mode": "mirror", "owner": "team", "name": "up", "ssh_private_key": key.private_key,
                   "ssh_key_passphrase": "wrong", "known_hosts": server.known_hosts_line()}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "ssh_key_passphrase", "{err}");
    // Not a key at all.
    let (status, err) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "mode": "mirror", "owner": "team", "name": "up", "ssh_private_key": "hello"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("ssh_private_key")),
        "{err}"
    );
    // Known hosts that are not known_hosts lines.
    let (status, err) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "mode": "mirror", "owner": "team", "name": "up", "ssh_private_key": key.private_key,
                   "ssh_key_passphrase": "correct horse battery", "known_hosts": "|1|hashed ssh-ed25519 AAAA"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("known_hosts")),
        "{err}"
    );
    assert_eq!(hub.get("/api/v1/repos").await.1, json!([]));

    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "mode": "mirror", "owner": "team", "name": "up", "ssh_private_key": key.private_key,
                   "ssh_key_passphrase": "correct horse battery",
                   "known_hosts": format!("# pinned by hand\n{}\n", server.known_hosts_line())}),
        )
        .await;
    assert_eq!(status, 202, "{repo}\n{}", hub.log_text());
    assert!(
        repo["ssh_key_id"].is_i64(),
        "the upload is stored as a key: {repo}"
    );
    assert_eq!(repo["host_keys"].as_array().unwrap().len(), 1);
    let (_, run) = hub.wait_for_run("team/up", None).await;
    assert_eq!(run["outcome"], "success", "{run}\n{}", hub.log_text());
    let (_, keys) = hub.get("/api/v1/ssh-keys?owner=team").await;
    assert_eq!(
        keys[0]["public_key"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .nth(1),
        key.public_key.split_whitespace().nth(1),
        "{keys}"
    );
    let mirror = hub.repo_dir(repo_id(&hub, "team/up").await);
    assert_eq!(refs(&mirror), refs(&upstream));

    // Neither the key nor its passphrase is anywhere the hub writes in plain text.
    let body = private_key_body(&key.private_key);
    let written = all_text_under(&hub.data_dir) + &hub.log_text();
    assert!(!written.contains(&body[..40]), "the private key leaked");
    assert!(
        !written.contains("correct horse battery"),
        "the passphrase leaked"
    );
    let (_, shown) = hub.get("/api/v1/repos/team/up").await;
    assert!(!shown.to_string().contains(&body[..40]));
}

/// The repository's id, as the hub's data directory names it.
async fn repo_id(hub: &Hub, repo: &str) -> i64 {
    let (_, r) = hub.get(&format!("/api/v1/repos/{repo}")).await;
    if let Some(id) = r["id"].as_i64() {
        return id;
    }
    // The resource has no id: find the one bare repository under repos/.
    let dirs: Vec<_> = std::fs::read_dir(hub.data_dir.join("repos"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".git")?
                .parse::<i64>()
                .ok()
        })
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0]
}

async fn a_key_the_server_refuses_creates_nothing(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    upstream(root.path());
    let server = SshServer::start(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    let (_, key) = hub.post("/api/v1/ssh-keys", json!({"owner": "team"})).await;
    // The key is never added to the server.
    let (status, err) = hub
        .post(
            "/api/v1/repos",
            json!({"url": server.url("project.git"), "mode": "mirror", "owner": "team", "ssh_key_id": key["id"]}),
        )
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (422, "upstream_auth_failed"),
        "{err}"
    );
    assert_eq!(err["error"]["field"], "ssh_key_id", "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("deploy key"), "{message}");
    assert_eq!(hub.get("/api/v1/repos").await.1, json!([]));

    // A key id of another owner, or none at all, is refused by name.
    let (status, err) = hub
        .post(
            "/api/v1/repos",
            json!({"url": server.url("project.git"), "mode": "mirror", "owner": "other", "ssh_key_id": key["id"]}),
        )
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (404, "ssh_key_not_found"),
        "{err}"
    );
    // A token makes no sense for SSH: the field says so.
    let (status, err) = hub
        .post(
            "/api/v1/repos",
            json!({"url": server.url("project.git"), "mode": "mirror", "owner": "team", "token": "t0ken"}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["field"], "token", "{err}");
}

async fn a_changed_host_key_pauses_until_a_user_accepts_it(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, work) = upstream(root.path());
    let mut server = SshServer::start(root.path()).await;
    let hub = Hub::start(&db, &[("MIRRORHUB_MIN_SYNC_INTERVAL", "1s")]).await;
    let (_, key) = hub.post("/api/v1/ssh-keys", json!({"owner": "team"})).await;
    server.authorize(key["public_key"].as_str().unwrap());
    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            json!({"url": server.url("project.git"), "mode": "mirror", "owner": "team", "name": "p",
                   "ssh_key_id": key["id"], "sync_interval": "1s"}),
        )
        .await;
    assert_eq!(status, 202, "{repo}");
    let (_, run) = hub.wait_for_run("team/p", None).await;
    assert_eq!(run["outcome"], "success", "{run}");
    let old_fingerprint = server.host_key_fingerprint();
    let mirror = hub.repo_dir(repo_id(&hub, "team/p").await);
    let refs_before = refs(&mirror);

    // The server is reinstalled (or someone is in the middle), and the upstream moves on.
    server.replace_host_key().await;
    let new_fingerprint = server.host_key_fingerprint();
    assert_ne!(old_fingerprint, new_fingerprint);
    work.commit_file("c.txt", "c\n", "after the new key");
    work.push_mirror(upstream.to_str().unwrap());

    // The scheduler's next sync fails with both fingerprints and pauses at once.
    let repo = wait_until(&hub, "team/p", "paused", |r| r["paused_reason"].is_string()).await;
    assert_eq!(repo["last_error"]["code"], "host_key_mismatch", "{repo}");
    let message = repo["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&old_fingerprint) && message.contains(&new_fingerprint),
        "{message}"
    );
    assert_eq!(repo["consecutive_failures"], 1, "no retry storm: {repo}");
    assert!(repo["next_sync_at"].is_null());
    assert_eq!(refs(&mirror), refs_before, "a failed sync touches nothing");

    // A manual sync does not "fix" it: the pinned key still decides.
    let before = hub.latest_run_id("team/p").await;
    hub.post("/api/v1/repos/team/p/sync", json!({})).await;
    let (repo, run) = hub.wait_for_run("team/p", before).await;
    assert_eq!(run["error"]["code"], "host_key_mismatch", "{run}");
    assert!(repo["paused_reason"].is_string(), "{repo}");
    assert_eq!(refs(&mirror), refs_before);
    assert_eq!(
        repo["host_keys"][0]["fingerprint"], old_fingerprint,
        "the pinned key is not replaced by what the server showed"
    );

    // The user checks the new fingerprint and accepts the key: the mirror resumes.
    let before = hub.latest_run_id("team/p").await;
    let (status, repo) = hub
        .call(
            reqwest::Method::PATCH,
            "/api/v1/repos/team/p",
            Some(json!({"known_hosts": server.known_hosts_line()})),
        )
        .await;
    assert_eq!(status, 200, "{repo}");
    assert_eq!(repo["host_keys"][0]["fingerprint"], new_fingerprint);
    assert!(repo["paused_reason"].is_null(), "{repo}");
    hub.post("/api/v1/repos/team/p/sync", json!({})).await;
    let (_, run) = hub.wait_for_run("team/p", before).await;
    assert_eq!(run["outcome"], "success", "{run}\n{}", hub.log_text());
    assert_eq!(refs(&mirror), refs(&upstream));
}

async fn the_address_policy_and_hostile_urls(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    upstream(root.path());
    let server = SshServer::start(root.path()).await;
    // This hub may not reach loopback.
    let hub = Hub::start(&db, &[("MIRRORHUB_ALLOWED_HOSTS", "")]).await;
    let url = server.url("project.git");
    let log_before = server.log();

    let (status, err) = hub.post("/api/v1/ssh/host-keys", json!({"url": url})).await;
    assert_eq!(
        (status, error_code(&err)),
        (422, "url_not_allowed"),
        "{err}"
    );
    let (status, err) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "mode": "mirror", "owner": "team"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&err)),
        (422, "url_not_allowed"),
        "{err}"
    );
    // Loopback by another name, and IPv4 mapped into IPv6.
    for url in [
        format!("ssh://git@localhost:{}/x.git", server.port()),
        format!("ssh://git@[::ffff:127.0.0.1]:{}/x.git", server.port()),
        "git@[::1]:x.git".to_owned(),
    ] {
        let (status, err) = hub.post("/api/v1/ssh/host-keys", json!({"url": url})).await;
        assert_eq!(
            (status, error_code(&err)),
            (422, "url_not_allowed"),
            "{url}: {err}"
        );
    }
    assert_eq!(
        server.log().len(),
        log_before.len(),
        "no connection reached the server"
    );

    // Option injection and shell metacharacters never reach ssh.
    let marker = root.path().join("pwned");
    for url in [
        format!("ssh://-oProxyCommand=touch {}/x", marker.display()),
        format!("-oProxyCommand=touch {}:x", marker.display()),
        "ssh://git@-oProxyCommand=id/x".to_owned(),
        "ssh://-lroot@example.com/x".to_owned(),
        "git@example.com:-uhack".to_owned(),
        "ssh://git@example.com/x;id".to_owned(),
        "ssh://git@example.com/$(id)".to_owned(),
        "ssh://git:hunter2@example.com/x".to_owned(),
    ] {
        let (status, err) = hub
            .post(
                "/api/v1/repos",
                json!({"url": url, "mode": "mirror", "owner": "team"}),
            )
            .await;
        assert_eq!(
            (status, error_code(&err)),
            (400, "invalid_url"),
            "{url}: {err}"
        );
        assert!(
            !err.to_string().contains("hunter2"),
            "a password is never echoed: {err}"
        );
    }
    assert!(!marker.exists(), "a ProxyCommand ran");
    // Anonymous callers may not make the hub connect anywhere.
    let (status, _) = hub
        .call_with_token(
            reqwest::Method::POST,
            "/api/v1/ssh/host-keys",
            Some(json!({"url": "ssh://git@example.com/x"})),
            None,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(hub.get("/api/v1/repos").await.1, json!([]));
}
