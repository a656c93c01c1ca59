//! End to end: the real binary, real git servers on 127.0.0.1, real databases. Each test
//! runs on SQLite, and on PostgreSQL when `MIRRORHUB_TEST_POSTGRES_URL` names a server.

#[macro_use]
mod common;

use std::path::Path;

use common::{fsck, refs, symbolic_head, Db, Hub, TestDb};
use mirrorhub_testkit::{git, init_bare, GitDaemon, HttpGitServer, Scratch};
use serde_json::{json, Value};

on_both_databases!(
    mirror_follows_every_kind_of_upstream_change,
    private_http_upstream_and_secrets,
    bad_input_is_refused_and_nothing_is_created,
    migrate_copies_once,
    kill9_during_clone_recovers,
    permanent_failures_pause_and_settings_resume,
    sigterm_lets_the_running_sync_finish
);

/// An upstream with branches, lightweight and annotated tags, and tags on a blob and a tree.
fn rich_upstream(root: &Path) -> (std::path::PathBuf, Scratch) {
    let upstream = root.join("project.git");
    init_bare(&upstream);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first");
    work.tag("v1");
    work.commit_file("src/lib.rs", "pub fn a() {}\n", "second");
    work.tag_annotated("v2", "release 2");
    work.branch("dev")
        .commit_file("dev.txt", "dev\n", "dev work");
    work.branch("feature")
        .commit_file("feature.txt", "f1\n", "feature work");
    work.checkout("main");
    let blob = work
        .git(["hash-object", "-w", "README.md"])
        .trim()
        .to_owned();
    work.git(["tag", "blob-tag", &blob]);
    let tree = work.git(["rev-parse", "HEAD^{tree}"]).trim().to_owned();
    work.git(["tag", "-a", "-m", "a tree", "tree-tag", &tree]);
    work.push_mirror(upstream.to_str().unwrap());
    git(&upstream, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    (upstream, work)
}

fn create_body(url: &str, owner: &str, name: &str) -> Value {
    json!({"url": url, "owner": owner, "name": name, "mode": "mirror", "visibility": "public", "description": "a test mirror"})
}

fn kinds(run: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = run["ref_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["ref"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

async fn mirror_follows_every_kind_of_upstream_change(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, work) = rich_upstream(root.path());
    let daemon = GitDaemon::start(root.path()).await;
    let hub = Hub::start(&db, &[]).await;

    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            create_body(&daemon.url("project.git"), "team", "project"),
        )
        .await;
    assert_eq!(status, 202, "{repo}");
    assert_eq!(repo["state"], "cloning");
    assert_eq!(repo["mode"], "mirror");
    assert_eq!(repo["clone_url"], format!("{}/team/project.git", hub.base));
    assert_eq!(repo["sync_interval"], "24h");

    let (repo, run) = hub.wait_for_run("team/project", None).await;
    assert_eq!(repo["state"], "ready", "{repo}");
    assert_eq!(run["trigger"], "create");
    assert_eq!(run["outcome"], "success");
    let mirror = hub.repo_dir(1);
    assert_eq!(refs(&mirror), refs(&upstream));
    assert_eq!(symbolic_head(&mirror), "refs/heads/main");
    assert_eq!(
        (repo["branches"].as_i64(), repo["tags"].as_i64()),
        (Some(3), Some(4))
    );
    assert!(repo["last_success_at"].is_string() && repo["next_sync_at"].is_string());
    assert!(repo["last_error"].is_null());

    // Every kind of change at once.
    let old_main = work.head();
    let new_main = work.commit_file("README.md", "hello again\n", "third");
    work.checkout("feature");
    work.git(["reset", "--hard", "HEAD~1"]);
    let new_feature = work.commit_file("feature.txt", "rewritten\n", "rewritten feature");
    work.checkout("main");
    work.git(["branch", "-D", "dev"]);
    work.git(["tag", "-d", "v1"]);
    work.tag_annotated("v3", "release 3");
    let blob2 = work
        .git(["hash-object", "-w", "src/lib.rs"])
        .trim()
        .to_owned();
    work.git(["tag", "-f", "blob-tag", &blob2]);
    work.branch("release").checkout("main");
    work.push_mirror(upstream.to_str().unwrap());
    git(&upstream, ["symbolic-ref", "HEAD", "refs/heads/release"]);

    let before = hub.latest_run_id("team/project").await;
    let (status, _) = hub.post("/api/v1/repos/team/project/sync", json!({})).await;
    assert_eq!(status, 202);
    let (repo, run) = hub.wait_for_run("team/project", before).await;
    assert_eq!(run["outcome"], "success", "{run}");
    assert_eq!(run["trigger"], "manual");
    assert_eq!(refs(&mirror), refs(&upstream));
    assert_eq!(symbolic_head(&mirror), "refs/heads/release");
    assert_eq!(
        kinds(&run),
        vec![
            ("refs/heads/dev".into(), "deleted".into()),
            ("refs/heads/feature".into(), "forced".into()),
            ("refs/heads/main".into(), "fast_forward".into()),
            ("refs/heads/release".into(), "created".into()),
            ("refs/tags/blob-tag".into(), "forced".into()),
            ("refs/tags/v1".into(), "deleted".into()),
            ("refs/tags/v3".into(), "created".into()),
        ]
    );
    let main = run["ref_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ref"] == "refs/heads/main")
        .unwrap();
    assert_eq!(
        (main["old"].as_str().unwrap(), main["new"].as_str().unwrap()),
        (old_main.as_str(), new_main.as_str())
    );
    let feature = run["ref_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ref"] == "refs/heads/feature")
        .unwrap();
    assert_eq!(feature["new"].as_str().unwrap(), new_feature);
    let dev = run["ref_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ref"] == "refs/heads/dev")
        .unwrap();
    assert!(dev["new"].is_null() && dev["old"].is_string());
    assert_eq!(repo["head"], "refs/heads/release");
    fsck(&mirror);

    // Nothing changed upstream: the run says so and records no changes.
    let before = hub.latest_run_id("team/project").await;
    hub.post("/api/v1/repos/team/project/sync", json!({})).await;
    let (_, run) = hub.wait_for_run("team/project", before).await;
    assert_eq!(run["outcome"], "unchanged", "{run}");
    assert!(run["ref_changes"].as_array().unwrap().is_empty());

    // History: newest first.
    let (_, runs) = hub.get("/api/v1/repos/team/project/syncs").await;
    let triggers: Vec<_> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["trigger"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(triggers, ["manual", "manual", "create"]);

    // `.git` suffix names the same repository; list shows it.
    assert_eq!(hub.get("/api/v1/repos/team/project.git").await.0, 200);
    let (_, list) = hub.get("/api/v1/repos").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Delete removes the record and the bare repository.
    let (status, _) = hub
        .call(reqwest::Method::DELETE, "/api/v1/repos/team/project", None)
        .await;
    assert_eq!(status, 204);
    assert!(!mirror.exists());
    let (status, body) = hub.get("/api/v1/repos/team/project").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("repo_not_found"))
    );
}

async fn private_http_upstream_and_secrets(db: TestDb) {
    const SECRET: &str = "s3cr3t-upstream-token-xyz";
    let root = tempfile::tempdir().unwrap();
    let (upstream, _work) = rich_upstream(root.path());
    let server = HttpGitServer::start(root.path(), Some(("alice".into(), SECRET.into()))).await;
    let hub = Hub::start(&db, &[]).await;
    let url = server.url("project.git");

    // Wrong token: refused before anything is created.
    let mut body = create_body(&url, "team", "private");
    body["username"] = json!("alice");
    body["token"] = json!("wrong-token");
    let (status, err) = hub.post("/api/v1/repos", body.clone()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("upstream_auth_failed")),
        "{err}"
    );
    assert_eq!(err["error"]["field"], "token");
    // No credentials at all.
    let (status, err) = hub
        .post("/api/v1/repos", create_body(&url, "team", "private"))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("upstream_auth_failed")),
        "{err}"
    );
    assert_eq!(hub.get("/api/v1/repos").await.1, json!([]));

    body["token"] = json!(SECRET);
    let (status, repo) = hub.post("/api/v1/repos", body).await;
    assert_eq!(status, 202, "{repo}");
    assert_eq!(repo["has_credentials"], true);
    let (repo, run) = hub.wait_for_run("team/private", None).await;
    assert_eq!(run["outcome"], "success", "{run}");
    let id = 1;
    assert_eq!(refs(&hub.repo_dir(id)), refs(&upstream));

    // Credentials also work inside the URL, and are taken out of it.
    let with_creds = server.url_with_credentials("project.git", "alice", SECRET);
    let (status, repo2) = hub
        .post(
            "/api/v1/repos",
            create_body(&with_creds, "team", "private2"),
        )
        .await;
    assert_eq!(status, 202, "{repo2}");
    assert_eq!(repo2["upstream_url"], url);
    hub.wait_for_run("team/private2", None).await;

    // The secret is nowhere: API answers, the repositories' git config, the log.
    let everything = format!(
        "{repo}{repo2}{}{}",
        hub.get("/api/v1/repos").await.1,
        hub.get("/api/v1/repos/team/private/syncs").await.1
    );
    assert!(!everything.contains(SECRET));
    for name in ["1.git", "2.git"] {
        let config =
            std::fs::read_to_string(hub.data_dir.join("repos").join(name).join("config")).unwrap();
        assert!(!config.contains(SECRET), "{config}");
    }
    assert!(!hub.log_text().contains(SECRET), "secret in the log");
    let db_file = hub.data_dir.join("mirrorhub.db");
    if db_file.exists() {
        let raw = std::fs::read(&db_file).unwrap();
        assert!(
            !raw.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "secret stored in plain text"
        );
    }
}

async fn bad_input_is_refused_and_nothing_is_created(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (_upstream, _work) = rich_upstream(root.path());
    std::fs::create_dir(root.path().join("not-a-repo")).unwrap();
    let daemon = GitDaemon::start(root.path()).await;
    let http = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    let good = daemon.url("project.git");

    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            json!({"url": "not a url", "owner": "team", "mode": "mirror"}),
            400,
            "invalid_url",
            Some("url"),
        ),
        (
            json!({"url": "file:///etc/passwd", "owner": "team", "mode": "mirror"}),
            400,
            "unsupported_scheme",
            Some("url"),
        ),
        (
            json!({"url": "ext::sh -c touch% /tmp/x", "owner": "team", "mode": "mirror"}),
            400,
            "unsupported_scheme",
            Some("url"),
        ),
        (
            json!({"url": "https://example.org/a\r\nb", "owner": "team", "mode": "mirror"}),
            400,
            "invalid_url",
            Some("url"),
        ),
        (
            json!({"url": "http://169.254.169.254/latest", "owner": "team", "mode": "mirror"}),
            422,
            "url_not_allowed",
            Some("url"),
        ),
        (
            json!({"url": format!("git://localhost:{}/project.git", daemon.port()), "owner": "team", "mode": "mirror"}),
            422,
            "url_not_allowed",
            Some("url"),
        ),
        (
            json!({"url": "http://[::ffff:127.0.0.2]/x.git", "owner": "team", "mode": "mirror"}),
            422,
            "url_not_allowed",
            Some("url"),
        ),
        (
            json!({"url": "git://127.0.0.1:1/project.git", "owner": "team", "mode": "mirror"}),
            422,
            "upstream_unreachable",
            Some("url"),
        ),
        (
            json!({"url": http.url("missing.git"), "owner": "team", "mode": "mirror"}),
            422,
            "upstream_not_found",
            Some("url"),
        ),
        (
            json!({"url": good, "owner": "../etc", "mode": "mirror"}),
            400,
            "invalid_name",
            Some("owner"),
        ),
        (
            json!({"url": good, "owner": "team", "name": "x.git", "mode": "mirror"}),
            400,
            "invalid_name",
            Some("name"),
        ),
        (
            json!({"url": good, "owner": "team"}),
            400,
            "invalid_request",
            Some("mode"),
        ),
        (
            json!({"url": good, "owner": "team", "mode": "mirror", "sync_interval": "1s"}),
            400,
            "invalid_request",
            Some("sync_interval"),
        ),
        (
            json!({"owner": "team", "mode": "mirror"}),
            400,
            "invalid_request",
            None,
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, err) = hub.post("/api/v1/repos", body.clone()).await;
        assert_eq!(
            (got, err["error"]["code"].as_str()),
            (status, Some(code)),
            "{body} -> {err}"
        );
        assert_eq!(err["error"]["field"].as_str(), field, "{body} -> {err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 10),
            "{err}"
        );
    }

    // Malformed JSON, no token, wrong token: JSON errors with codes.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/repos", hub.base))
        .bearer_auth(common::TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_request");
    let (status, err) = hub
        .call_with_token(reqwest::Method::GET, "/api/v1/repos", None, None)
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = hub
        .call_with_token(
            reqwest::Method::GET,
            "/api/v1/repos",
            None,
            Some("wrong-token-wrong-token"),
        )
        .await;
    assert_eq!(status, 401);

    // Nothing was created by any of it.
    assert_eq!(hub.get("/api/v1/repos").await.1, json!([]));
    assert_eq!(
        std::fs::read_dir(hub.data_dir.join("repos"))
            .unwrap()
            .count(),
        0
    );

    // A taken name.
    assert_eq!(
        hub.post("/api/v1/repos", create_body(&good, "team", "project"))
            .await
            .0,
        202
    );
    let (status, err) = hub
        .post("/api/v1/repos", create_body(&good, "Team", "Project"))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("repo_exists")),
        "{err}"
    );

    // Health and docs.
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{}/healthz", hub.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{}/readyz", hub.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let spec: Value = client
        .get(format!("{}/api/v1/openapi.json", hub.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        spec["paths"]["/repos/{owner}/{name}/sync"].is_object(),
        "{}",
        spec["paths"]
    );
    assert_eq!(
        client
            .get(format!("{}/api/v1/docs", hub.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn migrate_copies_once(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, _work) = rich_upstream(root.path());
    let daemon = GitDaemon::start(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    let mut body = create_body(&daemon.url("project.git"), "team", "moved");
    body["mode"] = json!("migrate");
    assert_eq!(hub.post("/api/v1/repos", body).await.0, 202);
    let (repo, run) = hub.wait_for_run("team/moved", None).await;
    assert_eq!(
        (repo["state"].as_str(), run["outcome"].as_str()),
        (Some("ready"), Some("success"))
    );
    assert_eq!(refs(&hub.repo_dir(1)), refs(&upstream));
    assert!(repo["next_sync_at"].is_null(), "{repo}");
    let (status, err) = hub.post("/api/v1/repos/team/moved/sync", json!({})).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("invalid_state")),
        "{err}"
    );
}

/// A hub on `db` (with `env`) whose initial clone of a sizeable upstream (`team/big`) is
/// under way when this returns: big enough that the clone is still running a moment later.
async fn clone_under_way(
    db: &TestDb,
    env: &[(&str, &str)],
) -> (tempfile::TempDir, std::path::PathBuf, GitDaemon, Hub) {
    let root = tempfile::tempdir().unwrap();
    let upstream = root.path().join("big.git");
    let spec = mirrorhub_testkit::Spec {
        commits: 4000,
        ..mirrorhub_testkit::Spec::small()
    };
    mirrorhub_testkit::synthetic_upstream(&upstream, spec);
    let daemon = GitDaemon::start(root.path()).await;
    let hub = Hub::start(db, env).await;
    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            create_body(&daemon.url("big.git"), "team", "big"),
        )
        .await;
    assert_eq!(status, 202, "{repo}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while hub
        .get("/api/v1/repos/team/big/syncs")
        .await
        .1
        .as_array()
        .is_none_or(|r| r.is_empty())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the clone did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (root, upstream, daemon, hub)
}

/// Waits (bounded) until no git process works in `repo`.
async fn wait_for_git_in(repo: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !common::processes_under(repo).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "git still running in {}: {:?}",
            repo.display(),
            common::processes_under(repo)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn kill9_during_clone_recovers(db: TestDb) {
    // A short lease: on PostgreSQL the killed process's claim is taken over when it expires.
    let (_root, upstream, _daemon, mut hub) =
        clone_under_way(&db, &[("MIRRORHUB_SYNC_LEASE", "3s")]).await;
    hub.kill9();
    // Never a half repository in place: either absent, or complete and consistent. (If the
    // copy was complete, the killed hub's housekeeping git may still be writing bitmaps in it,
    // as git does, atomically: let it finish before fsck reads the same files.)
    let mirror = hub.repo_dir(1);
    if mirror.exists() {
        wait_for_git_in(&mirror).await;
        fsck(&mirror);
    }
    hub.spawn();
    let (repo, run) = hub.wait_for_run("team/big", None).await;
    assert_eq!(repo["state"], "ready", "{repo}\n{}", hub.log_text());
    wait_for_git_in(&mirror).await;
    assert_eq!(refs(&mirror), refs(&upstream));
    fsck(&mirror);
    // On PostgreSQL a no-op recovery sync may still follow (see below): let it finish.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let runs = loop {
        let (_, runs) = hub.get("/api/v1/repos/team/big/syncs").await;
        if runs
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] != "running")
        {
            break runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a run never finished: {runs}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let runs = runs.as_array().unwrap();
    // The killed run is marked interrupted; the recovery finished the copy. (On PostgreSQL the
    // restart also queues a recovery sync beside the expired claim: at most one more no-op run.)
    let (oldest, newer) = runs.split_last().unwrap();
    assert!(!newer.is_empty() && newer.len() <= 2, "{runs:?}");
    assert_eq!(
        (oldest["outcome"].as_str(), oldest["error"]["code"].as_str()),
        (Some("failed"), Some("interrupted"))
    );
    assert!(
        newer
            .iter()
            .all(|r| r["trigger"] == "recovery" && r["outcome"] != "failed"),
        "{runs:?}"
    );
    assert_eq!(run["trigger"], "recovery");
    // No temporary clone left behind.
    let leftovers: Vec<_> = std::fs::read_dir(hub.data_dir.join("repos"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("1.git")],
        "{leftovers:?}"
    );
}

async fn permanent_failures_pause_and_settings_resume(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, _work) = rich_upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(
        &db,
        &[
            ("MIRRORHUB_MIN_SYNC_INTERVAL", "1s"),
            ("MIRRORHUB_PAUSE_AFTER", "2"),
        ],
    )
    .await;
    let mut body = create_body(&server.url("project.git"), "team", "fragile");
    body["sync_interval"] = json!("1s");
    assert_eq!(hub.post("/api/v1/repos", body).await.0, 202);
    let (repo, _) = hub.wait_for_run("team/fragile", None).await;
    assert_eq!(
        (repo["stale"].as_bool(), repo["sync_interval"].as_str()),
        (Some(false), Some("1s"))
    );

    // The upstream disappears: scheduled syncs fail permanently, twice, then it is paused.
    std::fs::rename(&upstream, root.path().join("moved.git")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let repo = loop {
        let (_, repo) = hub.get("/api/v1/repos/team/fragile").await;
        if repo["paused_reason"].is_string() {
            break repo;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never paused: {repo}\n{}",
            hub.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(repo["last_error"]["code"], "upstream_not_found", "{repo}");
    assert_eq!(repo["consecutive_failures"], 2);
    assert!(repo["next_sync_at"].is_null());
    let metrics = reqwest::get(format!("{}/metrics", hub.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("mirrorhub_mirrors_paused 1"), "{metrics}");
    let runs_when_paused = hub
        .get("/api/v1/repos/team/fragile/syncs")
        .await
        .1
        .as_array()
        .unwrap()
        .len();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let runs_later = hub
        .get("/api/v1/repos/team/fragile/syncs")
        .await
        .1
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        runs_when_paused, runs_later,
        "a paused mirror must not be synced by the scheduler"
    );

    // Settings change: validated, then the mirror is back in the schedule.
    let (status, err) = hub
        .call(
            reqwest::Method::PATCH,
            "/api/v1/repos/team/fragile",
            Some(json!({"sync_interval": "soon"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("sync_interval")),
        "{err}"
    );
    std::fs::rename(root.path().join("moved.git"), &upstream).unwrap();
    let (status, repo) = hub
        .call(
            reqwest::Method::PATCH,
            "/api/v1/repos/team/fragile",
            Some(json!({"sync_interval": "2s", "description": "back"})),
        )
        .await;
    assert_eq!(status, 200, "{repo}");
    assert!(repo["paused_reason"].is_null());
    assert_eq!(
        (repo["sync_interval"].as_str(), repo["description"].as_str()),
        (Some("2s"), Some("back"))
    );
    let before = hub.latest_run_id("team/fragile").await;
    let (repo, run) = hub.wait_for_run("team/fragile", before).await;
    assert_eq!(run["trigger"], "schedule", "{run}");
    assert_eq!(
        run["outcome"], "unchanged",
        "the upstream is back as it was: {run}"
    );
    assert_eq!(repo["consecutive_failures"], 0);
}

async fn sigterm_lets_the_running_sync_finish(db: TestDb) {
    let (_root, upstream, _daemon, mut hub) =
        clone_under_way(&db, &[("MIRRORHUB_SHUTDOWN_GRACE", "60s")]).await;
    hub.terminate(std::time::Duration::from_secs(60)).await;
    // The sync that was running when the signal came finished; nothing was interrupted.
    hub.spawn();
    let (_, runs) = hub.get("/api/v1/repos/team/big/syncs").await;
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0]["outcome"].as_str(), runs[0]["trigger"].as_str()),
        (Some("success"), Some("create")),
        "{runs:?}"
    );
    assert_eq!(refs(&hub.repo_dir(1)), refs(&upstream));
    assert!(
        hub.log_text().contains("shutting down"),
        "{}",
        hub.log_text()
    );
}
