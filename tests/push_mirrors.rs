//! Push mirrors with the real binary and real downstream git servers on 127.0.0.1
//! (`git http-backend` behind basic auth, `git daemon` with receive-pack): a push to a
//! primary is pushed on at once, a mirror's sync is pushed on (chains), `only_branches`,
//! prune, a downstream ref moved by someone else is left alone and reported with
//! `force: false`, wrong credentials fail the run (told once, and its repair once), and a hub killed during a run finishes it
//! after the restart. Each test on SQLite, and on PostgreSQL when
//! `MIRRORHUB_TEST_POSTGRES_URL` names a server.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{git_client, ok, refs, Db, Hub, TestDb, TOKEN};
use mirrorhub_testkit::{
    git, init_bare, ForgeApiServer, GateProxy, GitDaemon, HttpGitServer, Scratch,
};
use serde_json::{json, Value};

on_both_databases!(
    a_push_to_a_primary_is_pushed_on_at_once,
    a_mirror_sync_is_pushed_on_with_only_the_chosen_branches,
    without_force_a_ref_moved_downstream_is_left_alone_and_reported,
    wrong_credentials_fail_the_run_and_new_ones_repair_it,
    bad_requests_are_refused_by_field,
    a_hub_killed_during_a_push_finishes_it_after_the_restart,
);

const USER: &str = "pusher";
const PASSWORD: &str = "s3cret-downstream-token";

/// A repository to start from, served over HTTP: `main` with a commit, a tag, and `feature`.
fn upstream(root: &Path) -> (Scratch, PathBuf) {
    let bare = root.join("src.git");
    init_bare(&bare);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first");
    work.tag_annotated("v1", "release 1");
    work.branch("feature")
        .commit_file("f.txt", "f\n", "feature work");
    work.checkout("main");
    work.push_mirror(bare.to_str().unwrap());
    git(&bare, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    (work, bare)
}

async fn create_repo(hub: &Hub, url: &str, name: &str, mode: &str) {
    let (status, body) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "owner": "team", "name": name, "mode": mode}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (repo, _) = hub.wait_for_run(&format!("team/{name}"), None).await;
    assert_eq!(repo["state"], "ready", "{repo}");
}

async fn add_push_mirror(hub: &Hub, repo: &str, body: Value) -> Value {
    let (status, mirror) = hub
        .post(&format!("/api/v1/repos/{repo}/push-mirrors"), body)
        .await;
    assert_eq!(status, 201, "{mirror}");
    mirror
}

/// Waits for a finished run of the push mirror newer than `after`; returns it.
async fn wait_push_run(hub: &Hub, repo: &str, id: i64, after: Option<i64>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, runs) = hub
            .get(&format!(
                "/api/v1/repos/{repo}/push-mirrors/{id}/runs?limit=1"
            ))
            .await;
        assert_eq!(status, 200, "{runs}");
        if let Some(run) = runs.as_array().and_then(|r| r.first()) {
            if run["id"].as_i64() > after && !run["finished_at"].is_null() {
                return run.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no finished push run of {repo} #{id}; log:\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks for a run of push mirror `id` now (`202`) and waits for it to finish after `after`.
async fn sync_push_mirror(hub: &Hub, repo: &str, id: i64, after: Option<i64>) -> Value {
    let (status, body) = hub
        .post(
            &format!("/api/v1/repos/{repo}/push-mirrors/{id}/sync"),
            json!(null),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    wait_push_run(hub, repo, id, after).await
}

/// Waits until `check` holds for the downstream's refs; returns how long it took.
async fn wait_refs(repo: &Path, what: &str, check: impl Fn(&str) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let now = refs(repo);
        if check(&now) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the downstream never {what}:\n{now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["ref"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn push_to_hub(hub: &Hub, work: &Scratch, repo: &str, args: &[&str]) {
    let bearer = format!("http.extraHeader=Authorization: Bearer {TOKEN}");
    let url = format!("{}/{repo}.git", hub.base);
    let mut all = vec!["-c", bearer.as_str(), "push", url.as_str()];
    all.extend_from_slice(args);
    ok(&git_client(work.path(), &all, &[]).await);
}

async fn a_push_to_a_primary_is_pushed_on_at_once(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (work, _) = upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let down_root = tempfile::tempdir().unwrap();
    let down = down_root.path().join("backup.git");
    init_bare(&down);
    let downstream = HttpGitServer::start(
        down_root.path(),
        Some((USER.to_owned(), PASSWORD.to_owned())),
    )
    .await;
    let hub = Hub::start(&db, &[]).await;
    create_repo(&hub, &server.url("src.git"), "app", "migrate").await;
    // A hidden ref of the hub's own: never pushed anywhere.
    let hub_repo = hub.repo_dir(1);
    let main = git(&hub_repo, ["rev-parse", "refs/heads/main"]);
    git(
        &hub_repo,
        ["update-ref", "refs/mirrorhub/backup/main", main.trim()],
    );

    let mirror = add_push_mirror(
        &hub,
        "team/app",
        json!({"url": downstream.url("backup.git"), "username": USER, "token": PASSWORD}),
    )
    .await;
    let id = mirror["id"].as_i64().unwrap();
    assert_eq!(mirror["has_credentials"], true, "{mirror}");
    assert!(!mirror.to_string().contains(PASSWORD), "{mirror}");
    assert_eq!(mirror["prune"], true);
    assert_eq!(mirror["force"], true);
    assert_eq!(mirror["tags"], true);
    assert_eq!(mirror["sync_interval"], "24h");
    let first = wait_push_run(&hub, "team/app", id, None).await;
    assert_eq!(first["trigger"], "create", "{first}");
    assert_eq!(first["outcome"], "success", "{first}");
    assert_eq!(refs(&down), refs(&hub_repo));
    let every_ref = git(&down, ["for-each-ref", "--format=%(refname)"]);
    assert!(!every_ref.contains("refs/mirrorhub"), "{every_ref}");

    // A push to the primary: a new commit, a new branch and a tag, pushed on at once.
    let head = work.commit_file("new.txt", "new\n", "after the move");
    work.branch("topic").commit_file("t.txt", "t\n", "topic");
    work.checkout("main");
    work.tag("v2");
    push_to_hub(&hub, &work, "team/app", &["main", "topic", "v2"]).await;
    let took = wait_refs(&down, "got the push", |r| {
        r.contains(&format!("{head} commit refs/heads/main"))
            && r.contains("refs/heads/topic")
            && r.contains("refs/tags/v2")
    })
    .await;
    eprintln!("push to the primary reached the downstream after {took:?}");
    let run = wait_push_run(&hub, "team/app", id, first["id"].as_i64()).await;
    assert_eq!(run["trigger"], "push", "{run}");
    assert_eq!(
        names(&run["pushed"]),
        ["refs/heads/main", "refs/heads/topic", "refs/tags/v2"],
        "{run}"
    );

    // A branch deleted here is deleted there (prune).
    push_to_hub(&hub, &work, "team/app", &[":topic"]).await;
    wait_refs(&down, "pruned topic", |r| !r.contains("refs/heads/topic")).await;
    let run = wait_push_run(&hub, "team/app", id, run["id"].as_i64()).await;
    assert_eq!(names(&run["deleted"]), ["refs/heads/topic"], "{run}");

    let (_, mirror) = hub
        .get(&format!("/api/v1/repos/team/app/push-mirrors/{id}"))
        .await;
    assert!(!mirror["last_success_at"].is_null(), "{mirror}");
    assert!(mirror["last_error"].is_null(), "{mirror}");
    assert_eq!(mirror["diverged"], json!([]));
    assert!(
        !hub.log_text().contains(PASSWORD),
        "the token is in the log"
    );
}

async fn a_mirror_sync_is_pushed_on_with_only_the_chosen_branches(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (work, bare) = upstream(root.path());
    let daemon = GitDaemon::start(root.path()).await;
    init_bare(&root.path().join("down.git"));
    let hub = Hub::start(&db, &[]).await;
    create_repo(&hub, &daemon.url("src.git"), "mirror", "mirror").await;
    let mirror = add_push_mirror(
        &hub,
        "team/mirror",
        json!({"url": daemon.url("down.git"), "only_branches": ["main", "release/*"], "tags": false}),
    )
    .await;
    let id = mirror["id"].as_i64().unwrap();
    assert_eq!(mirror["only_branches"], json!(["main", "release/*"]));
    let first = wait_push_run(&hub, "team/mirror", id, None).await;
    assert_eq!(first["outcome"], "success", "{first}");
    let down = root.path().join("down.git");
    assert_eq!(
        refs(&down)
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ["refs/heads/main"]
    );

    // The upstream moves; the mirror's sync moves the hub, which pushes on.
    let head = work.commit_file("up.txt", "up\n", "upstream work");
    work.branch("release/1.0")
        .commit_file("r.txt", "r\n", "release");
    work.branch("release/2.0/hotfix")
        .commit_file("h.txt", "h\n", "nested");
    work.checkout("main");
    work.tag("v2");
    work.push_mirror(bare.to_str().unwrap());
    let (status, body) = hub
        .post("/api/v1/repos/team/mirror/sync", json!(null))
        .await;
    assert_eq!(status, 202, "{body}");
    wait_refs(&down, "got the sync", |r| {
        r.contains(&format!("{head} commit refs/heads/main"))
            && r.contains("refs/heads/release/1.0")
    })
    .await;
    let run = wait_push_run(&hub, "team/mirror", id, first["id"].as_i64()).await;
    assert_eq!(run["trigger"], "sync", "{run}");
    let now = refs(&down);
    assert!(!now.contains("refs/heads/feature"), "{now}");
    assert!(!now.contains("release/2.0/hotfix"), "{now}");
    assert!(!now.contains("refs/tags"), "{now}");

    // Branches outside the filter that exist downstream are never pruned.
    git(&down, ["update-ref", "refs/heads/theirs", head.trim()]);
    let run = sync_push_mirror(&hub, "team/mirror", id, run["id"].as_i64()).await;
    assert_eq!(run["trigger"], "manual", "{run}");
    assert_eq!(run["outcome"], "unchanged", "{run}");
    assert!(refs(&down).contains("refs/heads/theirs"));
}

async fn without_force_a_ref_moved_downstream_is_left_alone_and_reported(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (work, _) = upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let down_root = tempfile::tempdir().unwrap();
    let down = down_root.path().join("backup.git");
    init_bare(&down);
    let daemon = GitDaemon::start(down_root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    create_repo(&hub, &server.url("src.git"), "app", "migrate").await;
    let mirror = add_push_mirror(
        &hub,
        "team/app",
        json!({"url": daemon.url("backup.git"), "force": false}),
    )
    .await;
    let id = mirror["id"].as_i64().unwrap();
    let first = wait_push_run(&hub, "team/app", id, None).await;
    assert_eq!(first["outcome"], "success", "{first}");

    // Someone pushes to the downstream's main on their own.
    let other = Scratch::new();
    other.git(["fetch", "--quiet", down.to_str().unwrap(), "main"]);
    other.git(["reset", "--quiet", "--hard", "FETCH_HEAD"]);
    let theirs = other.commit_file("theirs.txt", "theirs\n", "written downstream");
    other.push(down.to_str().unwrap(), &["main"]);

    // The hub moves main (their commit is not in ours) and rewrites feature.
    let ours = work.commit_file("ours.txt", "ours\n", "written on the hub");
    work.checkout("feature");
    work.git([
        "commit",
        "--quiet",
        "--amend",
        "-m",
        "feature work, reworded",
    ]);
    let feature = work.head();
    work.checkout("main");
    push_to_hub(&hub, &work, "team/app", &["main", "+feature"]).await;
    let run = wait_push_run(&hub, "team/app", id, first["id"].as_i64()).await;
    assert_eq!(run["outcome"], "success", "{run}");
    assert_eq!(names(&run["diverged"]), ["refs/heads/main"], "{run}");
    assert_eq!(run["diverged"][0]["old"], theirs.trim(), "{run}");
    assert_eq!(run["diverged"][0]["new"], ours.trim(), "{run}");
    // feature did not move downstream on its own: it follows the hub's rewrite.
    assert_eq!(names(&run["pushed"]), ["refs/heads/feature"], "{run}");
    assert_eq!(run["pushed"][0]["kind"], "forced", "{run}");
    let now = refs(&down);
    assert!(
        now.contains(&format!("{} commit refs/heads/main", theirs.trim())),
        "untouched: {now}"
    );
    assert!(
        now.contains(&format!("{} commit refs/heads/feature", feature.trim())),
        "{now}"
    );
    let (_, status) = hub
        .get(&format!("/api/v1/repos/team/app/push-mirrors/{id}"))
        .await;
    assert_eq!(status["diverged"], json!(["refs/heads/main"]), "{status}");

    // A branch created downstream is theirs too: never pruned without force.
    git(&down, ["update-ref", "refs/heads/extra", theirs.trim()]);
    let run = sync_push_mirror(&hub, "team/app", id, run["id"].as_i64()).await;
    assert_eq!(
        names(&run["diverged"]),
        ["refs/heads/extra", "refs/heads/main"],
        "{run}"
    );
    assert!(refs(&down).contains("refs/heads/extra"));

    // With force, the downstream follows the hub again.
    let (status, body) = hub
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/repos/team/app/push-mirrors/{id}"),
            Some(json!({"force": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let run = wait_push_run(&hub, "team/app", id, run["id"].as_i64()).await;
    assert_eq!(run["outcome"], "success", "{run}");
    wait_refs(&down, "followed the hub", |r| {
        r.contains(&format!("{} commit refs/heads/main", ours.trim()))
            && !r.contains("refs/heads/extra")
    })
    .await;
    let (_, status) = hub
        .get(&format!("/api/v1/repos/team/app/push-mirrors/{id}"))
        .await;
    assert_eq!(status["diverged"], json!([]), "{status}");
}

async fn wrong_credentials_fail_the_run_and_new_ones_repair_it(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (_work, _) = upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let down_root = tempfile::tempdir().unwrap();
    let down = down_root.path().join("backup.git");
    init_bare(&down);
    let downstream = HttpGitServer::start(
        down_root.path(),
        Some((USER.to_owned(), PASSWORD.to_owned())),
    )
    .await;
    let hub = Hub::start(&db, &[]).await;
    // Someone listens for push mirror trouble.
    let receiver = ForgeApiServer::start().await;
    receiver.respond("POST", "/ops", 200, json!({"ok": true}));
    let (status, target) = hub
        .post(
            "/api/v1/notifications/targets",
            json!({"kind": "webhook", "url": format!("{}/ops", receiver.url()),
                   "events": ["push_mirror_failed", "push_mirror_recovered"]}),
        )
        .await;
    assert_eq!(status, 201, "{target}");
    create_repo(&hub, &server.url("src.git"), "app", "migrate").await;
    let wrong = "not-the-right-token";
    let mirror = add_push_mirror(
        &hub,
        "team/app",
        json!({"url": downstream.url("backup.git"), "username": USER, "token": wrong}),
    )
    .await;
    let id = mirror["id"].as_i64().unwrap();
    let run = wait_push_run(&hub, "team/app", id, None).await;
    assert_eq!(run["outcome"], "failed", "{run}");
    assert_eq!(run["error"]["code"], "upstream_auth_failed", "{run}");
    assert!(
        run["error"]["message"].as_str().unwrap().contains("push"),
        "{run}"
    );
    let (_, status) = hub
        .get(&format!("/api/v1/repos/team/app/push-mirrors/{id}"))
        .await;
    assert_eq!(
        status["last_error"]["code"], "upstream_auth_failed",
        "{status}"
    );
    assert!(status["last_success_at"].is_null());
    assert_eq!(refs(&down), "");
    // The run is retried with backoff: the next one is due soon, not in a day.
    let next: chrono::DateTime<chrono::Utc> =
        status["next_push_at"].as_str().unwrap().parse().unwrap();
    assert!(
        next < chrono::Utc::now() + chrono::Duration::hours(1),
        "{status}"
    );
    // Tried again (asked for now): failed again, and told once for both.
    let run = sync_push_mirror(&hub, "team/app", id, run["id"].as_i64()).await;
    assert_eq!(run["outcome"], "failed", "{run}");
    wait_told(&hub, &receiver, 1).await;

    let (status, body) = hub
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/repos/team/app/push-mirrors/{id}"),
            Some(json!({"username": USER, "token": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let run = wait_push_run(&hub, "team/app", id, run["id"].as_i64()).await;
    assert_eq!(run["outcome"], "success", "{run}");
    assert_eq!(refs(&down), refs(&hub.repo_dir(1)));
    let (_, status) = hub
        .get(&format!("/api/v1/repos/team/app/push-mirrors/{id}"))
        .await;
    assert!(status["last_error"].is_null(), "{status}");
    wait_told(&hub, &receiver, 2).await;
    assert_eq!(
        told(&receiver),
        ["push_mirror_failed", "push_mirror_recovered"],
        "one failure for the two failed runs, then one recovery"
    );
    let log = hub.log_text();
    assert!(
        !log.contains(PASSWORD) && !log.contains(wrong),
        "a token is in the log"
    );
}

/// The events a notification receiver got, in order.
fn told(receiver: &ForgeApiServer) -> Vec<String> {
    receiver
        .recorded()
        .iter()
        .filter(|r| r.method == "POST" && r.path_only() == "/ops")
        .map(|r| r.json()["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn wait_told(hub: &Hub, receiver: &ForgeApiServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while told(receiver).len() < n {
        assert!(
            Instant::now() < deadline,
            "told: {:?}\n{}",
            told(receiver),
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bad_requests_are_refused_by_field(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (_work, _) = upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    create_repo(&hub, &server.url("src.git"), "app", "migrate").await;
    let path = "/api/v1/repos/team/app/push-mirrors";
    let cases = [
        (
            json!({"url": server.url("x.git"), "only_branches": ["main", "/(/"]}),
            400,
            "invalid_request",
            "only_branches",
        ),
        (
            json!({"url": server.url("x.git"), "only_branches": []}),
            400,
            "invalid_request",
            "only_branches",
        ),
        (
            json!({"url": "http://10.1.2.3/x.git"}),
            422,
            "url_not_allowed",
            "url",
        ),
        (
            json!({"url": "file:///etc"}),
            400,
            "unsupported_scheme",
            "url",
        ),
        (json!({"url": "not a url"}), 400, "invalid_url", "url"),
        (
            json!({"url": server.url("x.git"), "sync_interval": "1s"}),
            400,
            "invalid_request",
            "sync_interval",
        ),
        (
            json!({"url": server.url("x.git"), "username": "u"}),
            400,
            "invalid_request",
            "token",
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, answer) = hub.post(path, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    assert!(hub
        .post(
            path,
            json!({"url": server.url("x.git"), "only_branches": ["/(/"]})
        )
        .await
        .1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/(/"));
    let (_, list) = hub.get(path).await;
    assert_eq!(list, json!([]), "nothing was recorded");
    for (method, p) in [
        (reqwest::Method::GET, format!("{path}/999")),
        (reqwest::Method::DELETE, format!("{path}/999")),
        (reqwest::Method::POST, format!("{path}/999/sync")),
        (reqwest::Method::GET, format!("{path}/999/runs")),
    ] {
        let (status, answer) = hub.call(method, &p, None).await;
        assert_eq!(status, 404, "{p}: {answer}");
        assert_eq!(answer["error"]["code"], "push_mirror_not_found", "{answer}");
    }
    let (status, _) = hub
        .call_with_token(reqwest::Method::GET, path, None, None)
        .await;
    assert_eq!(status, 401);

    // Delete: gone with its history.
    let m = add_push_mirror(
        &hub,
        "team/app",
        json!({"url": server.url("x.git"), "enabled": false}),
    )
    .await;
    assert_eq!(m["next_push_at"], Value::Null, "{m}");
    let (status, _) = hub
        .call(
            reqwest::Method::DELETE,
            &format!("{path}/{}", m["id"]),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, list) = hub.get(path).await;
    assert_eq!(list, json!([]));
}

async fn a_hub_killed_during_a_push_finishes_it_after_the_restart(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (work, _) = upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let down_root = tempfile::tempdir().unwrap();
    let down = down_root.path().join("backup.git");
    init_bare(&down);
    let downstream = HttpGitServer::start(down_root.path(), None).await;
    let gate = GateProxy::start(downstream.addr()).await;
    let mut hub = Hub::start(&db, &[("MIRRORHUB_SYNC_LEASE", "3s")]).await;
    create_repo(&hub, &server.url("src.git"), "app", "migrate").await;
    work.commit_file("more.txt", "more\n", "more");
    push_to_hub(&hub, &work, "team/app", &["main"]).await;

    gate.close();
    let mirror = add_push_mirror(
        &hub,
        "team/app",
        json!({"url": gate.http_url("backup.git")}),
    )
    .await;
    let id = mirror["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while gate.held() == 0 {
        assert!(
            Instant::now() < deadline,
            "the run never reached the downstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hub.kill9();
    gate.open();
    hub.spawn();
    let deadline = Instant::now() + Duration::from_secs(90);
    let runs = loop {
        let (_, runs) = hub
            .get(&format!("/api/v1/repos/team/app/push-mirrors/{id}/runs"))
            .await;
        // The recovery run; a run the earlier push to the hub queued meanwhile may follow it.
        let done = runs.as_array().unwrap().iter().any(|r| {
            r["trigger"] == "recovery" && (r["outcome"] == "success" || r["outcome"] == "unchanged")
        });
        if done {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "no run finished after the restart: {runs}\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let runs = runs.as_array().unwrap();
    let interrupted = runs.last().unwrap();
    assert_eq!(interrupted["outcome"], "failed", "{runs:?}");
    assert_eq!(interrupted["error"]["code"], "interrupted", "{runs:?}");
    assert_eq!(refs(&down), refs(&hub.repo_dir(1)));
    common::fsck(&down);
}
