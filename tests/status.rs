//! One honest `status` on the repository resource, end to end: the real binary, a real git
//! server behind a gate (so "a sync is running" lasts exactly as long as the test needs), real
//! databases. A mirror walks cloning → synced → syncing → synced → failed → paused → synced;
//! the list filter and the metrics say the same words; the CLI lists by status.

#[macro_use]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Db, Hub, TestDb, TOKEN};
use mirrorhub_testkit::{git, init_bare, GateProxy, HttpGitServer, Scratch};
use serde_json::{json, Value};

on_both_databases!(a_mirror_says_one_status_through_its_life);

const WORDS: [&str; 6] = ["cloning", "syncing", "synced", "stale", "failed", "paused"];

fn upstream(root: &Path) -> (std::path::PathBuf, Scratch) {
    let path = root.join("project.git");
    init_bare(&path);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first");
    work.push(path.to_str().unwrap(), &["main"]);
    git(&path, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    (path, work)
}

/// Waits (bounded) until the repository's resource satisfies `done`; returns it.
async fn wait_repo(hub: &Hub, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, repo) = hub.get("/api/v1/repos/team/project").await;
        assert_eq!(status, 200, "{repo}");
        if done(&repo) {
            return repo;
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: {repo}\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The names of the repositories `GET /api/v1/repos?status=<filter>` lists.
async fn listed(hub: &Hub, filter: &str) -> Vec<String> {
    let (status, list) = hub.get(&format!("/api/v1/repos?status={filter}")).await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["owner"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// `mirrorhub_repos_by_status{status=...}` of every word, from `/metrics`.
async fn metric_counts(hub: &Hub) -> Vec<(String, i64)> {
    let text = reqwest::get(format!("{}/metrics", hub.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    WORDS
        .iter()
        .map(|w| {
            let prefix = format!("mirrorhub_repos_by_status{{status=\"{w}\"}} ");
            let n = text
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no series for {w}: {text}"))
                .trim()
                .parse()
                .unwrap();
            (w.to_string(), n)
        })
        .collect()
}

/// What `/metrics` should say with the one mirror in `status`, and `others` synced mirrors.
fn expected_counts(status: &str, others: i64) -> Vec<(String, i64)> {
    WORDS
        .iter()
        .map(|w| {
            let mut n = i64::from(*w == status);
            if *w == "synced" {
                n += others;
            }
            (w.to_string(), n)
        })
        .collect()
}

async fn a_mirror_says_one_status_through_its_life(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, work) = upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let gate = GateProxy::start(server.addr()).await;
    let hub = Hub::start(&db, &[("MIRRORHUB_PAUSE_AFTER", "2")]).await;

    // A second mirror that stays synced throughout: filters must tell them apart.
    let (status, _) = hub
        .post(
            "/api/v1/repos",
            json!({"url": server.url("project.git"), "owner": "team", "name": "steady", "mode": "mirror"}),
        )
        .await;
    assert_eq!(status, 202);
    hub.wait_for_run("team/steady", None).await;

    // cloning: the answer to the create, before any sync finished.
    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            json!({"url": gate.http_url("project.git"), "owner": "team", "name": "project", "mode": "mirror"}),
        )
        .await;
    assert_eq!(status, 202, "{repo}");
    assert_eq!(
        (repo["status"].as_str(), repo["state"].as_str()),
        (Some("cloning"), Some("cloning")),
        "{repo}"
    );

    // synced after the first copy.
    let (repo, run) = hub.wait_for_run("team/project", None).await;
    assert_eq!(run["outcome"], "success", "{run}");
    assert_eq!(
        (repo["status"].as_str(), repo["state"].as_str()),
        (Some("synced"), Some("ready")),
        "{repo}"
    );
    assert_eq!(
        listed(&hub, "synced").await,
        ["team/project", "team/steady"]
    );
    assert!(listed(&hub, "failed,paused").await.is_empty());
    assert_eq!(metric_counts(&hub).await, expected_counts("synced", 1));

    // syncing: a sync held at the gate is running.
    gate.close();
    let commit = work.commit_file("b.txt", "b\n", "second");
    work.push(upstream.to_str().unwrap(), &["main"]);
    let before = hub.latest_run_id("team/project").await;
    assert_eq!(
        hub.post("/api/v1/repos/team/project/sync", json!({}))
            .await
            .0,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while gate.held() == 0 {
        assert!(
            Instant::now() < deadline,
            "the sync never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let repo = wait_repo(&hub, "syncing", |r| r["status"] == "syncing").await;
    assert_eq!(repo["state"], "ready");
    assert_eq!(listed(&hub, "syncing").await, ["team/project"]);
    assert_eq!(listed(&hub, "synced").await, ["team/steady"]);
    assert_eq!(metric_counts(&hub).await, expected_counts("syncing", 1));
    gate.open();
    let (repo, run) = hub.wait_for_run("team/project", before).await;
    assert_eq!(run["outcome"], "success", "{run}");
    assert_eq!(repo["status"], "synced", "{repo}");
    assert_eq!(repo["head"], "refs/heads/main");
    // Repositories are stored by id, in creation order: `team/steady` is 1.
    let mirrored = mirrorhub_testkit::try_git(&hub.repo_dir(2), ["rev-parse", "refs/heads/main"]);
    assert_eq!(String::from_utf8_lossy(&mirrored.stdout).trim(), commit);

    // failed: the upstream is gone; the first copy's state stays `ready`.
    std::fs::rename(&upstream, root.path().join("moved.git")).unwrap();
    let before = hub.latest_run_id("team/project").await;
    assert_eq!(
        hub.post("/api/v1/repos/team/project/sync", json!({}))
            .await
            .0,
        202
    );
    let (repo, run) = hub.wait_for_run("team/project", before).await;
    assert_eq!(run["outcome"], "failed", "{run}");
    assert_eq!(
        (
            repo["status"].as_str(),
            repo["state"].as_str(),
            repo["last_error"]["code"].as_str(),
            repo["paused_reason"].is_null()
        ),
        (
            Some("failed"),
            Some("ready"),
            Some("upstream_not_found"),
            true
        ),
        "{repo}"
    );
    assert_eq!(listed(&hub, "failed,paused").await, ["team/project"]);
    assert_eq!(listed(&hub, "paused").await, Vec::<String>::new());
    assert_eq!(metric_counts(&hub).await, expected_counts("failed", 1));

    // paused: after MIRRORHUB_PAUSE_AFTER (2) permanent failures.
    let before = hub.latest_run_id("team/project").await;
    assert_eq!(
        hub.post("/api/v1/repos/team/project/sync", json!({}))
            .await
            .0,
        202
    );
    let (repo, run) = hub.wait_for_run("team/project", before).await;
    assert_eq!(run["outcome"], "failed", "{run}");
    assert_eq!(
        (repo["status"].as_str(), repo["state"].as_str()),
        (Some("paused"), Some("ready")),
        "{repo}"
    );
    assert!(repo["paused_reason"].is_string(), "{repo}");
    assert_eq!(listed(&hub, "failed,paused").await, ["team/project"]);
    assert_eq!(listed(&hub, "PAUSED").await, ["team/project"]);
    assert_eq!(metric_counts(&hub).await, expected_counts("paused", 1));
    // The CLI lists by the same words.
    let cli = cli_list(&hub, "paused");
    assert_eq!(cli.lines().count(), 1, "{cli}");
    assert!(cli.starts_with("team/project\tmirror\tpaused\t"), "{cli}");

    // Fixed: a sync makes it synced again.
    std::fs::rename(root.path().join("moved.git"), &upstream).unwrap();
    let before = hub.latest_run_id("team/project").await;
    assert_eq!(
        hub.post("/api/v1/repos/team/project/sync", json!({}))
            .await
            .0,
        202
    );
    let (repo, run) = hub.wait_for_run("team/project", before).await;
    assert_eq!(run["outcome"], "unchanged", "{run}");
    assert_eq!(
        (
            repo["status"].as_str(),
            repo["paused_reason"].is_null(),
            repo["consecutive_failures"].as_i64()
        ),
        (Some("synced"), true, Some(0)),
        "{repo}"
    );
    assert_eq!(
        listed(&hub, "synced").await,
        ["team/project", "team/steady"]
    );
    assert_eq!(metric_counts(&hub).await, expected_counts("synced", 1));

    // An unknown word is refused, naming the field and the words.
    for bad in ["ready", "failed,nope", "", "synced,"] {
        let (status, err) = hub.get(&format!("/api/v1/repos?status={bad}")).await;
        assert_eq!(status, 400, "{bad:?}: {err}");
        assert_eq!(
            (
                err["error"]["code"].as_str(),
                err["error"]["field"].as_str()
            ),
            (Some("invalid_request"), Some("status")),
            "{err}"
        );
        let message = err["error"]["message"].as_str().unwrap();
        assert!(WORDS.iter().all(|w| message.contains(w)), "{message}");
    }
    // The old metric names still answer.
    let text = reqwest::get(format!("{}/metrics", hub.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "mirrorhub_repos{mode=\"mirror\"} 2",
        "mirrorhub_repos_cloning 0",
        "mirrorhub_mirrors_paused 0",
        "mirrorhub_mirrors_stale 0",
    ] {
        assert!(text.contains(name), "{name} missing: {text}");
    }
}

/// `mirrorhub repo list --status <filter>` against the hub; its standard output.
fn cli_list(hub: &Hub, filter: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorhub"))
        .args(["repo", "list", "--status", filter])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MIRRORHUB_URL", &hub.base)
        .env("MIRRORHUB_TOKEN", TOKEN)
        .output()
        .expect("run mirrorhub repo list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
