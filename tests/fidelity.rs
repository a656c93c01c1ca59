//! Issue 18 end to end: no-op syncs decided by an in-process listing (http and git://), every
//! kind of change still seen; backups of overwritten and deleted tips (listed, linked from the
//! journal, hidden from clients, bundled, restored on a primary, expired); ref filters;
//! `behind`; a silent webhook. The real binary, real git servers, SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{git_client, ok, refs, symbolic_head, Db, Hub, TestDb, TOKEN};
use mirrorhub_testkit::{
    git, init_bare, try_git, ForgeApiServer, GitDaemon, HttpGitServer, Scratch,
};
use serde_json::{json, Value};

on_both_databases!(
    noop_syncs_and_every_kind_of_change_on_both_transports,
    backups_of_force_pushes_and_deletions,
    ref_filters_fetch_only_what_they_keep,
    behind_counts_what_a_failed_sync_left,
    a_silent_webhook_is_noticed
);

/// An upstream `name` under `root` with main, dev, a tag and an annotated tag.
fn upstream(root: &Path, name: &str) -> (PathBuf, Scratch) {
    let path = root.join(name);
    init_bare(&path);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first");
    work.tag("v1");
    work.commit_file("lib.rs", "fn a() {}\n", "second");
    work.tag_annotated("v2", "release 2");
    work.branch("dev")
        .commit_file("dev.txt", "dev\n", "dev work");
    work.checkout("main");
    work.push_mirror(path.to_str().unwrap());
    git(&path, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    (path, work)
}

async fn create(hub: &Hub, url: &str, name: &str, extra: Value) -> Value {
    let mut body = json!({"url": url, "owner": "team", "name": name, "mode": "mirror"});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let (status, repo) = hub.post("/api/v1/repos", body).await;
    assert_eq!(status, 202, "{repo}");
    let (repo, run) = hub.wait_for_run(&format!("team/{name}"), None).await;
    assert_eq!(run["outcome"], "success", "{run}");
    repo
}

/// Queues a sync and waits for its run.
async fn sync(hub: &Hub, name: &str) -> (Value, Value) {
    let repo = format!("team/{name}");
    let before = hub.latest_run_id(&repo).await;
    let (status, body) = hub
        .post(&format!("/api/v1/repos/{repo}/sync"), json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    hub.wait_for_run(&repo, before).await
}

fn changes(run: &Value) -> Vec<(String, String)> {
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

/// "sync finished" lines of no-op syncs in the hub's log (ANSI colours taken out).
fn noop_lines(hub: &Hub) -> usize {
    let mut plain = String::new();
    let mut escape = false;
    for c in hub.log_text().chars() {
        match (escape, c) {
            (false, '\u{1b}') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    plain
        .lines()
        .filter(|l| l.contains("sync finished") && l.contains("noop=true"))
        .count()
}

async fn noop_syncs_and_every_kind_of_change_on_both_transports(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (over_http, http_work) = upstream(root.path(), "http.git");
    let (over_git, git_work) = upstream(root.path(), "daemon.git");
    let http = HttpGitServer::start(root.path(), None).await;
    let daemon = GitDaemon::start(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    let cases = [
        ("viahttp", http.url("http.git"), over_http, http_work, 1),
        ("viagit", daemon.url("daemon.git"), over_git, git_work, 2),
    ];
    for (name, url, _, _, _) in &cases {
        create(&hub, url, name, json!({})).await;
    }
    for (name, _, upstream, work, id) in &cases {
        let mirror = hub.repo_dir(*id);
        // Nothing new: a no-op, decided without git.
        let noops = noop_lines(&hub);
        let (repo, run) = sync(&hub, name).await;
        assert_eq!(run["outcome"], "unchanged", "{name}: {run}");
        assert_eq!(
            noop_lines(&hub),
            noops + 1,
            "{name}: the sync was not a no-op"
        );
        assert_eq!(repo["behind"]["refs"], 0, "{name}: {repo}");

        // HEAD moved only: followed.
        git(upstream, ["symbolic-ref", "HEAD", "refs/heads/dev"]);
        let (repo, run) = sync(&hub, name).await;
        assert_eq!(repo["head"], "refs/heads/dev", "{name}: {run}");
        assert_eq!(symbolic_head(&mirror), "refs/heads/dev");
        git(upstream, ["symbolic-ref", "HEAD", "refs/heads/main"]);
        sync(&hub, name).await;
        assert_eq!(symbolic_head(&mirror), "refs/heads/main");

        // A new tag only.
        work.tag("v3");
        work.push(upstream.to_str().unwrap(), &["refs/tags/v3"]);
        let (_, run) = sync(&hub, name).await;
        assert_eq!(changes(&run), [("refs/tags/v3".into(), "created".into())]);

        // A deleted ref only.
        git(upstream, ["update-ref", "-d", "refs/tags/v1"]);
        let (_, run) = sync(&hub, name).await;
        assert_eq!(changes(&run), [("refs/tags/v1".into(), "deleted".into())]);
        assert_eq!(refs(&mirror), refs(upstream), "{name}");

        // And nothing new again.
        let noops = noop_lines(&hub);
        let (_, run) = sync(&hub, name).await;
        assert_eq!(run["outcome"], "unchanged");
        assert_eq!(noop_lines(&hub), noops + 1);

        // A run a dead hub left `running` (its job gone): the next no-op closes it as
        // interrupted, and its own run says it recovered.
        let started = match db.url() {
            Some(_) => "now()".to_owned(),
            None => chrono::Utc::now().timestamp_millis().to_string(),
        };
        db.rows(
            &hub,
            &format!(
                "INSERT INTO sync_runs (repo_id, trigger, started_at, outcome, concurrent_at_start) \
                 VALUES ({id}, 'schedule', {started}, 'running', 0)"
            ),
        );
        let (_, run) = sync(&hub, name).await;
        assert_eq!(run["outcome"], "unchanged", "{name}: {run}");
        assert_eq!(run["trigger"], "recovery", "{name}: {run}");
        assert_eq!(noop_lines(&hub), noops + 2);
        let (_, runs) = hub
            .get(&format!("/api/v1/repos/team/{name}/syncs?limit=2"))
            .await;
        assert_eq!(runs[1]["error"]["code"], "interrupted", "{name}: {runs}");
        assert_eq!(refs(&mirror), refs(upstream), "{name}");
    }
}

async fn backups_of_force_pushes_and_deletions(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, work) = upstream(root.path(), "project.git");
    let http = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    create(&hub, &http.url("project.git"), "project", json!({})).await;
    let mirror = hub.repo_dir(1);

    // Force-push dev, delete the tag v1, move main forward (no backup for that).
    work.checkout("dev");
    let old_dev = work.head();
    work.git(["reset", "--hard", "HEAD~1"]);
    work.commit_file("dev.txt", "rewritten\n", "rewritten dev");
    work.checkout("main");
    let old_v1 = work.git(["rev-parse", "v1"]).trim().to_owned();
    work.git(["tag", "-d", "v1"]);
    work.commit_file("more.txt", "more\n", "more on main");
    work.push_mirror(upstream.to_str().unwrap());

    let (_, run) = sync(&hub, "project").await;
    let run_id = run["id"].as_i64().unwrap();
    let by_ref = |name: &str| {
        run["ref_changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["ref"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no change of {name} in {run}"))
    };
    assert_eq!(by_ref("refs/heads/dev")["kind"], "forced");
    assert_eq!(by_ref("refs/tags/v1")["kind"], "deleted");
    assert_eq!(by_ref("refs/heads/main")["kind"], "fast_forward");
    assert!(by_ref("refs/heads/main")["backup_id"].is_null());

    let (status, backups) = hub.get("/api/v1/repos/team/project/backups").await;
    assert_eq!(status, 200, "{backups}");
    let backups = backups.as_array().unwrap().clone();
    assert_eq!(backups.len(), 2, "{backups:?}");
    let dev = backups
        .iter()
        .find(|b| b["ref"] == "refs/heads/dev")
        .unwrap();
    let v1 = backups.iter().find(|b| b["ref"] == "refs/tags/v1").unwrap();
    assert_eq!(dev["old"], old_dev.as_str());
    assert_eq!(v1["old"], old_v1.as_str());
    assert_eq!(dev["run_id"], run_id);
    assert_eq!(by_ref("refs/heads/dev")["backup_id"], dev["id"]);
    assert_eq!(by_ref("refs/tags/v1")["backup_id"], v1["id"]);
    let dev_ref = dev["backup_ref"].as_str().unwrap().to_owned();
    assert!(dev_ref.starts_with("refs/mirrorhub/backup/") && dev_ref.ends_with("/refs/heads/dev"));
    assert_eq!(git(&mirror, ["rev-parse", &dev_ref]).trim(), old_dev);

    // Never shown to clients: ls-remote and a clone of the hub see branches and tags only.
    let client = tempfile::tempdir().unwrap();
    let clone_url = format!(
        "http://x:{TOKEN}@{}/team/project.git",
        hub.base.trim_start_matches("http://")
    );
    for protocol in ["0", "2"] {
        let listed = ok(&git_client(
            client.path(),
            &[
                "-c",
                &format!("protocol.version={protocol}"),
                "ls-remote",
                &clone_url,
            ],
            &[],
        )
        .await);
        assert!(!listed.contains("refs/mirrorhub"), "v{protocol}: {listed}");
        assert!(listed.contains("refs/heads/dev"));
    }
    // Fetching one by name is refused too.
    let fetched = git_client(
        client.path(),
        &["fetch", &clone_url, &format!("{dev_ref}:refs/heads/x")],
        &[],
    )
    .await;
    assert!(!fetched.status.success(), "a hidden ref was fetched");

    // A later sync (another force-push of dev) keeps the first backup and adds one.
    work.checkout("dev");
    work.git(["commit", "--amend", "-m", "rewritten again"]);
    work.checkout("main");
    work.push_mirror(upstream.to_str().unwrap());
    sync(&hub, "project").await;
    let (_, all) = hub.get("/api/v1/repos/team/project/backups").await;
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    assert_eq!(git(&mirror, ["rev-parse", &dev_ref]).trim(), old_dev);

    // The bundle brings the old tip into any repository.
    let id = dev["id"].as_i64().unwrap();
    let response = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/repos/team/project/backups/{id}/bundle",
            hub.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-git-bundle"
    );
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(".bundle"));
    let bytes = response.bytes().await.unwrap();
    let bundle = client.path().join("dev.bundle");
    std::fs::write(&bundle, &bytes).unwrap();
    let target = client.path().join("target");
    init_bare(&target);
    git(
        &target,
        [
            "fetch",
            bundle.to_str().unwrap(),
            &format!("{dev_ref}:refs/heads/restored"),
        ],
    );
    assert_eq!(
        git(&target, ["rev-parse", "refs/heads/restored"]).trim(),
        old_dev
    );

    // A mirror's branches follow the upstream: no restore there.
    let restore = format!("/api/v1/repos/team/project/backups/{id}/restore");
    let (status, e) = hub.post(&restore, json!({})).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("invalid_state")),
        "{e}"
    );
    let (status, e) = hub
        .post(
            "/api/v1/repos/team/project/backups/99999/restore",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("backup_not_found")),
        "{e}"
    );

    // On a primary it becomes a branch.
    let (status, e) = hub
        .post("/api/v1/repos/team/project/promote?force=true", json!({}))
        .await;
    assert_eq!(status, 202, "{e}");
    let (status, restored) = hub.post(&restore, json!({})).await;
    assert_eq!(status, 201, "{restored}");
    let branch = restored["branch"].as_str().unwrap().to_owned();
    assert!(branch.starts_with("refs/heads/restored/dev-"), "{branch}");
    assert_eq!(restored["target"], old_dev.as_str());
    assert_eq!(git(&mirror, ["rev-parse", &branch]).trim(), old_dev);
    let (status, e) = hub
        .post(
            &restore,
            json!({"branch": branch.trim_start_matches("refs/heads/")}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("invalid_state")),
        "{e}"
    );
    let (status, e) = hub.post(&restore, json!({"branch": "bad..name"})).await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("branch")),
        "{e}"
    );
    let (status, named) = hub.post(&restore, json!({"branch": "old-dev"})).await;
    assert_eq!(
        (status, named["branch"].as_str()),
        (201, Some("refs/heads/old-dev"))
    );

    // Expiry, as of a moment 31 days on (the default retention is 30 days): refs and rows go.
    let later = (chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339();
    let out = hub.admin(&db, &["expire-backups", "--now", &later]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, left) = hub.get("/api/v1/repos/team/project/backups").await;
    assert_eq!(left, json!([]));
    assert!(!try_git(&mirror, ["rev-parse", "--verify", &dev_ref])
        .status
        .success());
    // The restored branches stay.
    assert_eq!(
        git(&mirror, ["rev-parse", "refs/heads/old-dev"]).trim(),
        old_dev
    );
}

async fn ref_filters_fetch_only_what_they_keep(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, work) = upstream(root.path(), "project.git");
    work.branch("release/1.0")
        .commit_file("r.txt", "1.0\n", "release 1.0");
    work.branch("release/2.0")
        .commit_file("r.txt", "2.0\n", "release 2.0");
    work.tag("tmp/scratch");
    work.checkout("main");
    let feature = work
        .branch("feature")
        .commit_file("f.txt", "secret feature\n", "feature work");
    work.checkout("main");
    work.push_mirror(upstream.to_str().unwrap());
    let daemon = GitDaemon::start(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    let url = daemon.url("project.git");

    // Bad patterns are refused, naming the pattern, and nothing is created.
    let (status, e) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "owner": "team", "name": "bad", "refs": {"include": ["main", "re:(unclosed"]}}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["code"], "invalid_request");
    assert_eq!(e["error"]["field"], "refs.include[1]");
    let (status, _) = hub.get("/api/v1/repos/team/bad").await;
    assert_eq!(status, 404);

    let filter = json!({"include": ["main", "release/*", "v*"], "exclude": ["tmp/*"]});
    let repo = create(&hub, &url, "project", json!({ "refs": filter })).await;
    assert_eq!(repo["refs"], filter);
    let mirror = hub.repo_dir(1);
    let names = |repo: &Path| -> Vec<String> {
        git(
            repo,
            [
                "for-each-ref",
                "--format=%(refname)",
                "refs/heads",
                "refs/tags",
            ],
        )
        .lines()
        .map(str::to_owned)
        .collect()
    };
    assert_eq!(
        names(&mirror),
        [
            "refs/heads/main",
            "refs/heads/release/1.0",
            "refs/heads/release/2.0",
            "refs/tags/v1",
            "refs/tags/v2"
        ]
    );
    // Never fetched: the feature branch's commit is not in the mirror.
    assert!(!try_git(&mirror, ["cat-file", "-e", &feature])
        .status
        .success());
    let (_, run) = sync(&hub, "project").await;
    assert_eq!(
        run["outcome"], "unchanged",
        "a filtered mirror's no-op: {run}"
    );

    // A change outside the filter is no change; one inside is fetched.
    work.checkout("feature")
        .commit_file("f.txt", "more\n", "more feature");
    work.checkout("release/1.0")
        .commit_file("r.txt", "1.0.1\n", "1.0.1");
    work.checkout("main");
    work.push_mirror(upstream.to_str().unwrap());
    let (_, run) = sync(&hub, "project").await;
    assert_eq!(
        changes(&run),
        [("refs/heads/release/1.0".into(), "fast_forward".into())]
    );

    // Narrowing removes what the filter now leaves out (at the sync the change queues).
    let before = hub.latest_run_id("team/project").await;
    let (status, repo) = hub
        .call(
            reqwest::Method::PATCH,
            "/api/v1/repos/team/project",
            Some(json!({"refs": {"include": ["main"]}})),
        )
        .await;
    assert_eq!(status, 200, "{repo}");
    assert_eq!(repo["refs"], json!({"include": ["main"], "exclude": []}));
    let (_, run) = hub.wait_for_run("team/project", before).await;
    assert_eq!(names(&mirror), ["refs/heads/main"], "{run}");
    assert!(
        changes(&run).iter().all(|(_, kind)| kind == "deleted"),
        "{run}"
    );
    let (_, backups) = hub.get("/api/v1/repos/team/project/backups").await;
    assert_eq!(
        backups.as_array().unwrap().len(),
        4,
        "each removed ref is kept: {backups}"
    );

    // A bad PATCH changes nothing.
    let (status, e) = hub
        .call(
            reqwest::Method::PATCH,
            "/api/v1/repos/team/project",
            Some(json!({"refs": {"exclude": ["ok", "with space"]}})),
        )
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("refs.exclude[1]")),
        "{e}"
    );

    // No filter: everything again.
    let before = hub.latest_run_id("team/project").await;
    let (status, _) = hub
        .call(
            reqwest::Method::PATCH,
            "/api/v1/repos/team/project",
            Some(json!({"refs": {}})),
        )
        .await;
    assert_eq!(status, 200);
    hub.wait_for_run("team/project", before).await;
    assert_eq!(refs(&mirror), refs(&upstream));
}

async fn behind_counts_what_a_failed_sync_left(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, work) = upstream(root.path(), "project.git");
    let http = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    let repo = create(&hub, &http.url("project.git"), "project", json!({})).await;
    assert_eq!(repo["behind"]["refs"], 0, "{repo}");
    assert!(repo["behind"]["since"].is_null());

    // Two refs change upstream, but the new commit's object is lost there: the listing sees
    // the change, the fetch fails.
    let commit = work.commit_file("new.txt", "new\n", "new on main");
    work.tag("v3");
    work.push(
        upstream.to_str().unwrap(),
        &["refs/heads/main", "refs/tags/v3"],
    );
    let object = upstream
        .join("objects")
        .join(&commit[..2])
        .join(&commit[2..]);
    let aside = root.path().join("aside");
    std::fs::rename(&object, &aside).expect("the pushed commit is a loose object");
    let (repo, run) = sync(&hub, "project").await;
    assert_eq!(run["outcome"], "failed", "{run}");
    assert_eq!(repo["behind"]["refs"], 2, "{repo}");
    let since = repo["behind"]["since"].as_str().unwrap().to_owned();
    let (_, listed) = hub.get("/api/v1/repos").await;
    assert_eq!(listed[0]["behind"]["refs"], 2);

    // Still behind at the next failure: since stays.
    let (repo, _) = sync(&hub, "project").await;
    assert_eq!(repo["behind"]["since"], since.as_str());

    // The upstream is whole again: in sync.
    std::fs::rename(&aside, &object).unwrap();
    let (repo, run) = sync(&hub, "project").await;
    assert_eq!(run["outcome"], "success", "{run}");
    assert_eq!(repo["behind"]["refs"], 0, "{repo}");
    assert!(repo["behind"]["since"].is_null());
}

async fn a_silent_webhook_is_noticed(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, work) = upstream(root.path(), "project.git");
    let http = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[("MIRRORHUB_SILENCE_CHECK", "2s")]).await;
    // Someone listens for the webhook's silence and its end.
    let receiver = ForgeApiServer::start().await;
    receiver.respond("POST", "/silence", 200, json!({"ok": true}));
    let (status, target) = hub
        .post(
            "/api/v1/notifications/targets",
            json!({"kind": "webhook", "url": format!("{}/silence", receiver.url()),
                   "events": ["webhook_silent", "webhook_recovered"]}),
        )
        .await;
    assert_eq!(status, 201, "{target}");
    let told = |receiver: &ForgeApiServer| -> Vec<String> {
        receiver
            .recorded()
            .iter()
            .filter(|r| r.method == "POST" && r.path_only() == "/silence")
            .map(|r| r.json()["event"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let repo = create(&hub, &http.url("project.git"), "project", json!({})).await;
    let secret = repo["webhook"]["secret"].as_str().unwrap().to_owned();
    let deliver = || async {
        let (status, body) = hub
            .post_raw(
                "/hooks/repos/team/project",
                &[
                    ("Authorization".to_owned(), format!("Bearer {secret}")),
                    ("Content-Type".to_owned(), "application/json".to_owned()),
                ],
                b"{}",
            )
            .await;
        assert!(status == 200 || status == 202, "{status} {body}");
    };
    deliver().await;
    let delivered = chrono::Utc::now();
    let (_, repo) = hub.get("/api/v1/repos/team/project").await;
    assert_eq!(repo["webhook"]["connected"], true, "{repo}");
    assert_eq!(repo["webhook"]["silent"], false);
    // A first check, well after that delivery, finds the mirror in sync.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, repo) = hub.get("/api/v1/repos/team/project").await;
        let checked = repo["behind"]["checked_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if checked.is_some_and(|t| t > delivered + chrono::Duration::seconds(1)) {
            assert_eq!(repo["behind"]["refs"], 0, "{repo}");
            break;
        }
        assert!(Instant::now() < deadline, "no check: {repo}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A push upstream and no delivery: the cheap check notices, says so once, and syncs.
    let pushed = work.commit_file("quiet.txt", "quiet\n", "pushed without a webhook");
    work.push(upstream.to_str().unwrap(), &["refs/heads/main"]);
    let mirror = hub.repo_dir(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, repo) = hub.get("/api/v1/repos/team/project").await;
        let synced = git(&mirror, ["rev-parse", "refs/heads/main"]).trim() == pushed;
        if repo["webhook"]["silent"] == true && synced {
            assert!(repo["webhook"]["silent_since"].is_string(), "{repo}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not noticed: {repo}\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let said = |hub: &Hub| hub.log_text().matches("the webhook is silent").count();
    assert_eq!(said(&hub), 1);
    // Still silent, still said once, and still polled: another quiet push is fetched.
    let again = work.commit_file("quiet.txt", "quieter\n", "again without a webhook");
    work.push(upstream.to_str().unwrap(), &["refs/heads/main"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while git(&mirror, ["rev-parse", "refs/heads/main"]).trim() != again {
        assert!(Instant::now() < deadline, "not polled: {}", hub.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(said(&hub), 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while told(&receiver).is_empty() {
        assert!(Instant::now() < deadline, "never told: {}", hub.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(told(&receiver), ["webhook_silent"], "told once");

    // A delivery arrives again: no longer silent, and told so (at the next check).
    deliver().await;
    let (_, repo) = hub.get("/api/v1/repos/team/project").await;
    assert_eq!(repo["webhook"]["silent"], false, "{repo}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while told(&receiver).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "recovery never told: {}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(told(&receiver), ["webhook_silent", "webhook_recovered"]);
}
