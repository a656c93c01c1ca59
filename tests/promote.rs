//! Promoting a mirror to primary, with the real binary and real upstreams: a final sync and a
//! check before the switch, a refusal (saying how to force) when the upstream does not answer,
//! and a forced promotion for an upstream that is gone. Each test on SQLite, and on PostgreSQL
//! when `MIRRORHUB_TEST_POSTGRES_URL` names a server.

#[macro_use]
mod common;

use std::path::Path;

use common::{refs, Db, Hub, TestDb};
use mirrorhub_testkit::{git, init_bare, GitDaemon, HttpGitServer, Scratch};
use serde_json::json;

on_both_databases!(
    promotion_copies_the_last_changes_then_stops_syncing,
    promotion_is_refused_while_the_upstream_is_down_unless_forced
);

fn upstream(root: &Path) -> Scratch {
    let bare = root.join("project.git");
    init_bare(&bare);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first");
    work.tag_annotated("v1", "release 1");
    work.push_mirror(bare.to_str().unwrap());
    git(&bare, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    work
}

async fn mirror(hub: &Hub, url: &str) -> i64 {
    let (status, body) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "owner": "team", "name": "project", "mode": "mirror"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (repo, _) = hub.wait_for_run("team/project", None).await;
    assert_eq!(repo["state"], "ready", "{repo}");
    hub.latest_run_id("team/project").await.unwrap()
}

async fn promotion_copies_the_last_changes_then_stops_syncing(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let work = upstream(root.path());
    let bare = root.path().join("project.git");
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    let first = mirror(&hub, &server.url("project.git")).await;

    // Changes the mirror has not seen yet: the final sync brings them.
    work.commit_file("late.txt", "late\n", "pushed just before the move");
    work.branch("release")
        .commit_file("r.txt", "r\n", "release work");
    work.checkout("main");
    work.push_mirror(bare.to_str().unwrap());

    let (status, body) = hub
        .post("/api/v1/repos/team/project/promote", json!(null))
        .await;
    assert_eq!(status, 202, "{body}");
    let (repo, run) = hub.wait_for_run("team/project", Some(first)).await;
    assert_eq!(run["trigger"], "promote", "{run}");
    assert_eq!(run["outcome"], "success", "{run}");
    let changed: Vec<&str> = run["ref_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ref"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["refs/heads/main", "refs/heads/release"], "{run}");
    assert_eq!(repo["mode"], "migrate", "{repo}");
    assert!(repo["next_sync_at"].is_null(), "{repo}");
    assert_eq!(refs(&hub.repo_dir(1)), refs(&bare), "equal to the upstream");

    // The primary is never synced again, nor promoted twice.
    let (status, body) = hub
        .post("/api/v1/repos/team/project/sync", json!(null))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("invalid_state")),
        "{body}"
    );
    let (status, body) = hub
        .post("/api/v1/repos/team/project/promote", json!(null))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already the primary"),
        "{body}"
    );
    // Pushes upstream no longer reach it.
    work.commit_file("after.txt", "after\n", "after the move");
    work.push_mirror(bare.to_str().unwrap());
    let before = refs(&hub.repo_dir(1));
    let (status, _) = hub
        .post("/api/v1/repos/team/project/sync", json!(null))
        .await;
    assert_eq!(status, 409);
    assert_eq!(refs(&hub.repo_dir(1)), before);
}

async fn promotion_is_refused_while_the_upstream_is_down_unless_forced(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    upstream(root.path());
    let daemon = GitDaemon::start(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    let first = mirror(&hub, &daemon.url("project.git")).await;
    let before = refs(&hub.repo_dir(1));
    drop(daemon);

    let (status, body) = hub
        .post("/api/v1/repos/team/project/promote", json!(null))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unreachable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not promoted") && message.contains("force"),
        "{message}"
    );
    let (_, repo) = hub.get("/api/v1/repos/team/project").await;
    assert_eq!(repo["mode"], "mirror");
    assert_eq!(
        hub.latest_run_id("team/project").await,
        Some(first),
        "no run"
    );

    // Forced: at once, without a final sync, recorded in the history.
    let (status, body) = hub
        .post("/api/v1/repos/team/project/promote?force=true", json!(null))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["mode"], "migrate", "{body}");
    let (_, runs) = hub.get("/api/v1/repos/team/project/syncs?limit=1").await;
    assert_eq!(runs[0]["trigger"], "promote", "{runs}");
    assert_eq!(runs[0]["outcome"], "unchanged", "{runs}");
    assert_eq!(refs(&hub.repo_dir(1)), before, "the copy is untouched");
}
