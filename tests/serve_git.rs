//! Serving repositories over Git's smart HTTP protocol, read-only, to real git clients: the
//! real binary, a real upstream behind `git http-backend`, the `git` command line as the
//! client. Each test runs on SQLite, and on PostgreSQL when `MIRRORHUB_TEST_POSTGRES_URL`
//! names a server.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{fsck, git_client, ok, processes_under, refs, stderr, Db, Hub, TestDb, TOKEN};
use mirrorhub_testkit::{git, git_command, init_bare, HttpGitServer, Scratch, Spec};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_databases!(
    public_mirror_clones_fetches_and_lists_anonymously,
    private_mirror_needs_the_admin_token,
    pushes_go_to_primaries_with_the_token,
    names_from_the_url_never_reach_the_disk,
    parallel_clones_wait_for_a_pack_slot,
    clients_that_stall_or_go_away_leave_no_git_behind,
    a_push_cut_off_midway_changes_nothing
);

/// An upstream with branches and both kinds of tags.
fn small_upstream(root: &Path) -> (PathBuf, Scratch) {
    let upstream = root.join("project.git");
    init_bare(&upstream);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first");
    work.tag("v1");
    work.commit_file("src/lib.rs", "pub fn a() {}\n", "second");
    work.tag_annotated("v2", "release 2");
    work.branch("dev")
        .commit_file("dev.txt", "dev\n", "dev work");
    work.checkout("main");
    work.push_mirror(upstream.to_str().unwrap());
    git(&upstream, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    (upstream, work)
}

/// Mirrors `url` as `team/<name>` with the given visibility and waits for the first copy.
async fn mirror(hub: &Hub, url: &str, name: &str, visibility: &str, mode: &str) {
    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "owner": "team", "name": name, "mode": mode, "visibility": visibility}),
        )
        .await;
    assert_eq!(status, 202, "{repo}");
    let (repo, run) = hub.wait_for_run(&format!("team/{name}"), None).await;
    assert_eq!(repo["state"], "ready", "{repo} {run}");
}

/// `ref -> object` of the branches and tags of `repo` under `prefix` (`refs/heads/` as
/// `refs/remotes/origin/` in a clone).
fn branches(repo: &Path, prefix: &str) -> BTreeMap<String, String> {
    git(
        repo,
        ["for-each-ref", "--format=%(refname) %(objectname)", prefix],
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .filter(|(r, _)| !r.ends_with("/HEAD"))
    .map(|(r, o)| (r.strip_prefix(prefix).unwrap().to_owned(), o.to_owned()))
    .collect()
}

/// Waits until the commit-graph chain of the hub's repository differs from `before` (`""`: none
/// yet), checks the graph against the repository, and returns the new chain.
async fn commit_graph_changed(hub: &Hub, repo: &Path, before: &str) -> String {
    let chain = repo.join("objects/info/commit-graphs/commit-graph-chain");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = std::fs::read_to_string(&chain).unwrap_or_default();
        if !now.is_empty() && now != before {
            git(repo, ["commit-graph", "verify", "--no-progress"]);
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the commit-graph was not written; log:\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn public_mirror_clones_fetches_and_lists_anonymously(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, work) = small_upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    mirror(
        &hub,
        &server.url("project.git"),
        "project",
        "public",
        "mirror",
    )
    .await;
    // After the first copy the hub writes reachability bitmaps, so clones need not walk the
    // whole history to count objects.
    let pack_dir = hub.repo_dir(1).join("objects/pack");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_dir(&pack_dir).unwrap().flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.starts_with("multi-pack-index-") && name.ends_with(".bitmap")
    }) {
        assert!(
            Instant::now() < deadline,
            "no bitmap; log:\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And a commit-graph, which every later sync extends.
    let repo_dir = hub.repo_dir(1);
    let first_graph = commit_graph_changed(&hub, &repo_dir, "").await;
    let url = format!("{}/team/project.git", hub.base);
    let clients = tempfile::tempdir().unwrap();

    // Protocol v0: the service line, then the refs.
    let v0 = git_client(
        clients.path(),
        &["-c", "protocol.version=0", "clone", &url, "v0"],
        &[("GIT_TRACE_PACKET", "1")],
    )
    .await;
    ok(&v0);
    assert!(stderr(&v0).contains("# service=git-upload-pack"));
    assert!(!stderr(&v0).contains("git< version 2"));
    let v0 = clients.path().join("v0");
    assert_eq!(
        branches(&v0, "refs/remotes/origin/"),
        branches(&upstream, "refs/heads/")
    );
    assert_eq!(
        branches(&v0, "refs/tags/"),
        branches(&upstream, "refs/tags/")
    );
    fsck(&v0);

    // Protocol v2 (the hub passes Git-Protocol on as GIT_PROTOCOL): an exact mirror clone.
    let v2 = git_client(
        clients.path(),
        &[
            "-c",
            "protocol.version=2",
            "clone",
            "--mirror",
            &url,
            "v2.git",
        ],
        &[("GIT_TRACE_PACKET", "1")],
    )
    .await;
    ok(&v2);
    assert!(stderr(&v2).contains("git< version 2"), "{}", stderr(&v2));
    assert!(stderr(&v2).contains("command=ls-refs"), "{}", stderr(&v2));
    assert!(stderr(&v2).contains("command=fetch"), "{}", stderr(&v2));
    assert_eq!(refs(&clients.path().join("v2.git")), refs(&upstream));

    // The URL without `.git` works too, as on forges.
    ok(&git_client(
        clients.path(),
        &[
            "clone",
            "--bare",
            &format!("{}/team/project", hub.base),
            "plain.git",
        ],
        &[],
    )
    .await);

    // ls-remote lists exactly the upstream's branches and tags.
    let listed = ok(&git_client(
        clients.path(),
        &["ls-remote", "--heads", "--tags", &url],
        &[],
    )
    .await);
    let expected = git(
        root.path(),
        ["ls-remote", "--heads", "--tags", upstream.to_str().unwrap()],
    );
    assert_eq!(listed, expected);

    // The upstream moves, the hub syncs, a fetch gets the new commit (both protocols).
    let new_main = work.commit_file("README.md", "hello again\n", "third");
    work.push_mirror(upstream.to_str().unwrap());
    let before = hub.latest_run_id("team/project").await;
    let (status, _) = hub.post("/api/v1/repos/team/project/sync", json!({})).await;
    assert_eq!(status, 202);
    let (_, run) = hub.wait_for_run("team/project", before).await;
    assert_eq!(run["outcome"], "success", "{run}");
    commit_graph_changed(&hub, &repo_dir, &first_graph).await;
    for version in ["0", "2"] {
        ok(&git_client(
            &v0,
            &[
                "-c",
                &format!("protocol.version={version}"),
                "fetch",
                "origin",
            ],
            &[],
        )
        .await);
        assert_eq!(
            git(&v0, ["rev-parse", "refs/remotes/origin/main"]).trim(),
            new_main
        );
    }
    fsck(&v0);
}

async fn private_mirror_needs_the_admin_token(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, _work) = small_upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    mirror(
        &hub,
        &server.url("project.git"),
        "secret",
        "private",
        "mirror",
    )
    .await;
    let host = hub.base.trim_start_matches("http://");
    let url = format!("{}/team/secret.git", hub.base);
    let clients = tempfile::tempdir().unwrap();

    // Anonymous: git is asked for credentials (and may not prompt).
    let anon = git_client(clients.path(), &["clone", "--bare", &url, "anon.git"], &[]).await;
    assert!(!anon.status.success());
    assert!(
        stderr(&anon).contains("could not read Username"),
        "{}",
        stderr(&anon)
    );
    assert!(!clients.path().join("anon.git").exists());

    // A wrong token.
    let wrong = git_client(
        clients.path(),
        &[
            "clone",
            "--bare",
            &format!("http://x:wrong-token@{host}/team/secret.git"),
            "wrong.git",
        ],
        &[],
    )
    .await;
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("Authentication failed"),
        "{}",
        stderr(&wrong)
    );

    // The admin token as the password (any user name).
    ok(&git_client(
        clients.path(),
        &[
            "clone",
            "--mirror",
            &format!("http://anyone:{TOKEN}@{host}/team/secret.git"),
            "basic.git",
        ],
        &[],
    )
    .await);
    assert_eq!(refs(&clients.path().join("basic.git")), refs(&upstream));

    // As a bearer token.
    ok(&git_client(
        clients.path(),
        &[
            "-c",
            &format!("http.extraHeader=Authorization: Bearer {TOKEN}"),
            "clone",
            "--mirror",
            &url,
            "bearer.git",
        ],
        &[],
    )
    .await);
    assert_eq!(refs(&clients.path().join("bearer.git")), refs(&upstream));

    // To an anonymous caller a private repository and a missing one answer the same; with the
    // token, a missing one is a 404 git shows.
    let private = raw_get(&hub, "/team/secret.git/info/refs?service=git-upload-pack").await;
    let missing = raw_get(&hub, "/team/nothing.git/info/refs?service=git-upload-pack").await;
    assert!(private.starts_with("HTTP/1.1 401"), "{private}");
    assert_eq!(body_of(&private), body_of(&missing));
    assert_eq!(status_line(&missing), status_line(&private));
    assert!(private
        .to_ascii_lowercase()
        .contains("www-authenticate: basic realm=\"mirrorhub\""));
    let none = git_client(
        clients.path(),
        &[
            "ls-remote",
            &format!("http://x:{TOKEN}@{host}/team/nothing.git"),
        ],
        &[],
    )
    .await;
    assert!(!none.status.success());
    assert!(
        stderr(&none).contains("remote: repository team/nothing does not exist on this hub"),
        "{}",
        stderr(&none)
    );
}

async fn pushes_go_to_primaries_with_the_token(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream, work) = small_upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    let upstream_url = server.url("project.git");
    mirror(&hub, &upstream_url, "project", "public", "mirror").await;
    mirror(&hub, &upstream_url, "moved", "public", "migrate").await;
    let before = refs(&hub.repo_dir(1));
    let head = work.commit_file("new.txt", "new\n", "for the primary");
    let bearer = format!("http.extraHeader=Authorization: Bearer {TOKEN}");

    // A mirror: refused with what to do, token or not.
    for auth in [&[][..], &["-c", bearer.as_str()][..]] {
        let mut args = auth.to_vec();
        let url = format!("{}/team/project.git", hub.base);
        args.extend(["push", url.as_str(), "main"]);
        let push = git_client(work.path(), &args, &[]).await;
        assert!(!push.status.success());
        assert!(
            stderr(&push).contains(&format!(
                "remote: this repository is a mirror of {upstream_url}; push to the upstream, or promote the mirror to primary to push here"
            )),
            "{}",
            stderr(&push)
        );
    }
    let resp = raw_request(
        &hub,
        "POST",
        "/team/project.git/git-receive-pack",
        &["Content-Type: application/x-git-receive-pack-request"],
        "0000",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    assert!(resp.contains("text/plain"), "{resp}");
    assert_eq!(refs(&hub.repo_dir(1)), before);

    // A primary: not without the token.
    let moved = format!("{}/team/moved.git", hub.base);
    let push = git_client(work.path(), &["push", &moved, "main"], &[]).await;
    assert!(!push.status.success(), "{}", stderr(&push));
    assert_eq!(refs(&hub.repo_dir(2)), before);

    // With it: the push lands, atomically with a new branch and tag, and is recorded.
    let graph = commit_graph_changed(&hub, &hub.repo_dir(2), "").await;
    work.branch("topic")
        .commit_file("t.txt", "t\n", "topic work");
    work.checkout("main");
    work.tag("v3");
    let push = git_client(
        work.path(),
        &[
            "-c", &bearer, "push", "--atomic", &moved, "main", "topic", "v3",
        ],
        &[],
    )
    .await;
    assert!(push.status.success(), "{}", stderr(&push));
    let hub_refs = refs(&hub.repo_dir(2));
    assert!(
        hub_refs.contains(&format!("{head} commit refs/heads/main")),
        "{hub_refs}"
    );
    assert!(
        hub_refs.contains("refs/heads/topic") && hub_refs.contains("refs/tags/v3"),
        "{hub_refs}"
    );
    fsck(&hub.repo_dir(2));
    let run = wait_for_push_run(&hub, "team/moved", 1).await;
    // The pushed commits are in the commit-graph, which still verifies.
    commit_graph_changed(&hub, &hub.repo_dir(2), &graph).await;
    let changes: Vec<(String, String)> = run["ref_changes"]
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
    assert_eq!(
        changes,
        [
            ("refs/heads/main".to_owned(), "fast_forward".to_owned()),
            ("refs/heads/topic".to_owned(), "created".to_owned()),
            ("refs/tags/v3".to_owned(), "created".to_owned()),
        ]
    );
    let (_, repo) = hub.get("/api/v1/repos/team/moved").await;
    assert_eq!(
        (repo["branches"].as_i64(), repo["tags"].as_i64()),
        (Some(3), Some(3)),
        "{repo}"
    );

    // Deleting a branch is a push too; the upstream never saw any of it.
    let push = git_client(work.path(), &["-c", &bearer, "push", &moved, ":topic"], &[]).await;
    assert!(push.status.success(), "{}", stderr(&push));
    let run = wait_for_push_run(&hub, "team/moved", 2).await;
    assert_eq!(run["ref_changes"][0]["kind"], "deleted", "{run}");
    assert!(!refs(&upstream).contains(&head));
}

/// Waits for the repository's `n`th finished push run (they are recorded when git is done).
async fn wait_for_push_run(hub: &Hub, repo: &str, n: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, runs) = hub.get(&format!("/api/v1/repos/{repo}/syncs")).await;
        let pushes: Vec<_> = runs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["trigger"] == "push" && !r["finished_at"].is_null())
            .cloned()
            .collect();
        if pushes.len() >= n {
            return pushes[0].clone();
        }
        assert!(Instant::now() < deadline, "no push run {n}: {runs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn names_from_the_url_never_reach_the_disk(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (_upstream, _work) = small_upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    mirror(
        &hub,
        &server.url("project.git"),
        "project",
        "public",
        "mirror",
    )
    .await;
    // Bare repositories outside the repos directory, and one named like a name in a URL.
    let data = hub.data_dir.canonicalize().unwrap();
    for secret in [
        data.join("secret.git"),
        data.join("repos").join("secret.git"),
    ] {
        init_bare(&secret);
    }
    let abs = data.join("secret.git");
    let abs = abs.to_str().unwrap();
    let encoded_abs = abs.replace('/', "%2F");
    let attacks = [
        "/team/../secret.git".to_owned(),
        "/team/../../secret.git".to_owned(),
        "/../secret.git".to_owned(),
        "/team/%2e%2e".to_owned(),
        "/%2e%2e/secret.git".to_owned(),
        "/team/%2e%2e%2Fsecret.git".to_owned(),
        "/team/..%2F..%2Fsecret.git".to_owned(),
        "/team%2F..%2F..%2Fsecret.git".to_owned(),
        format!("/team/{encoded_abs}"),
        format!("/team{abs}"),
        format!("/{}", abs.trim_start_matches('/')),
        "/team/pr%D0%BEject.git".to_owned(),
        "/team/pr\u{43e}ject.git".to_owned(),
        "/team/project.git.git".to_owned(),
        "/team/.git".to_owned(),
        "/team/secret.git".to_owned(),
        "/team/1.git".to_owned(),
        "/repos/secret.git".to_owned(),
        "/team/project.git%00".to_owned(),
        "/team/.%2e/secret.git".to_owned(),
    ];
    for attack in &attacks {
        for (method, suffix, body) in [
            ("GET", "/info/refs?service=git-upload-pack", ""),
            ("POST", "/git-upload-pack", "0000"),
        ] {
            let resp = raw_request(
                &hub,
                method,
                &format!("{attack}{suffix}"),
                &["Content-Type: application/x-git-upload-pack-request"],
                body,
            )
            .await;
            let status: u16 = status_line(&resp)
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            assert!(
                (400..500).contains(&status),
                "{method} {attack}{suffix} answered {resp}"
            );
            assert!(
                !resp.contains("service=git-upload-pack\n"),
                "{attack}: {resp}"
            );
        }
    }
    // The git client, too.
    let clients = tempfile::tempdir().unwrap();
    for path in [
        "team/..%2Fsecret.git",
        "team/project.git.git",
        "team/%2e%2e",
        "team/secret.git",
    ] {
        let out = git_client(
            clients.path(),
            &[
                "ls-remote",
                &format!(
                    "http://x:{TOKEN}@{}/{path}",
                    hub.base.trim_start_matches("http://")
                ),
            ],
            &[],
        )
        .await;
        assert!(
            !out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // The one real repository still answers.
    let resp = raw_get(&hub, "/team/project.git/info/refs?service=git-upload-pack").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // The API's errors are still JSON.
    let (status, body) = hub.get("/api/v1/repos/team/nothing").await;
    assert_eq!(status, 404);
    assert!(body["error"]["code"].is_string(), "{body}");
}

async fn parallel_clones_wait_for_a_pack_slot(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let upstream = root.path().join("synthetic.git");
    {
        let u = upstream.clone();
        tokio::task::spawn_blocking(move || {
            mirrorhub_testkit::synthetic_upstream(&u, Spec::small())
        })
        .await
        .unwrap();
    }
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[("MIRRORHUB_MAX_UPLOAD_PACKS", "2")]).await;
    mirror(
        &hub,
        &server.url("synthetic.git"),
        "synthetic",
        "public",
        "mirror",
    )
    .await;
    let url = format!("{}/team/synthetic.git", hub.base);
    let clients = tempfile::tempdir().unwrap();

    let mut runs = Vec::new();
    for i in 0..50 {
        let (dir, url) = (clients.path().to_owned(), url.clone());
        let version = if i % 2 == 0 { "2" } else { "0" };
        runs.push(tokio::spawn(async move {
            git_client(
                &dir,
                &[
                    "-c",
                    &format!("protocol.version={version}"),
                    "clone",
                    "--mirror",
                    &url,
                    &format!("c{i}.git"),
                ],
                &[("GIT_TRACE_CURL", "1"), ("GIT_TRACE_CURL_NO_DATA", "1")],
            )
            .await
        }));
    }
    // Meanwhile, never more than two pack generations run in the hub.
    let repos = hub.data_dir.join("repos");
    let mut most = 0;
    while runs.iter().any(|r| !r.is_finished()) {
        // A scan of /proc is no snapshot: count those still running after it, and only the
        // hub's own children (a fork of upload-pack about to run pack-objects shows
        // upload-pack's command line for a moment).
        let packs = processes_under(&repos)
            .into_iter()
            .filter(|(_, _, cmd)| cmd.contains("upload-pack") && !cmd.contains("--advertise-refs"))
            .filter(|(pid, _, _)| common::process_alive(*pid))
            .filter(|(_, parent, _)| Some(*parent) == hub.pid())
            .count();
        most = most.max(packs);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(most <= 2, "{most} upload-packs ran at once");
    let mut gzipped = false;
    for (i, run) in runs.into_iter().enumerate() {
        let out = run.await.unwrap();
        assert!(out.status.success(), "clone {i}: {}", stderr(&out));
        gzipped |= stderr(&out).contains("Content-Encoding: gzip");
        assert_eq!(
            refs(&clients.path().join(format!("c{i}.git"))),
            refs(&upstream)
        );
    }
    // The negotiation of this many refs is over 1 KiB, which git sends gzipped.
    assert!(gzipped, "no clone sent a gzip request body");
}

/// A bare repository at `path` whose pack is some 15 MB: more than the socket buffers and pipes
/// between a client that stopped and the hub hold.
async fn big_repository(path: &Path) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        mirrorhub_testkit::synthetic_upstream(
            &path,
            Spec {
                commits: 2000,
                dirs: 32,
                files_per_dir: 64,
                lines_per_file: 256,
                ..Spec::small()
            },
        )
    })
    .await
    .unwrap();
}

async fn clients_that_stall_or_go_away_leave_no_git_behind(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    big_repository(&root.path().join("big.git")).await;
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[("MIRRORHUB_GIT_IDLE_TIMEOUT", "2s")]).await;
    mirror(&hub, &server.url("big.git"), "big", "public", "mirror").await;
    let url = format!("{}/team/big.git", hub.base);
    let clients = tempfile::tempdir().unwrap();
    let repos = hub.data_dir.join("repos");
    // The housekeeping after the first copy (writing bitmaps) finishes first.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_under(&repos).is_empty() {
        assert!(
            Instant::now() < deadline,
            "git still running: {:?}",
            processes_under(&repos)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A client that stops reading (stopped, its connection open): cut off after the idle
    // timeout, its git stopped.
    let stalled = StoppedGit::start(clients.path(), &url, "stalled.git", &repos).await;
    wait_until_clean(
        &hub,
        &repos,
        "the client moved no data for too long; git stopped",
    )
    .await;
    stalled.kill();

    // A client that stops reading, then dies: git stopped at once.
    let gone = StoppedGit::start(clients.path(), &url, "gone.git", &repos).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mid_transfer = processes_under(&repos);
    gone.kill();
    assert!(
        !mid_transfer.is_empty(),
        "the hub's git finished before the client went away: the test proves nothing"
    );
    wait_until_clean(&hub, &repos, "the client went away; git stopped").await;

    // And the hub serves the next clone.
    ok(&git_client(clients.path(), &["clone", "--bare", &url, "again.git"], &[]).await);
}

async fn a_push_cut_off_midway_changes_nothing(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (_upstream, work) = small_upstream(root.path());
    let big = root.path().join("big.git");
    big_repository(&big).await;
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    mirror(
        &hub,
        &server.url("project.git"),
        "moved",
        "public",
        "migrate",
    )
    .await;
    let repos = hub.data_dir.join("repos");
    wait_until_clean(&hub, &repos, "").await;
    let before = refs(&hub.repo_dir(1));
    let host = hub.base.trim_start_matches("http://");
    let url = format!("http://x:{TOKEN}@{host}/team/moved.git");

    // The push stops (SIGSTOP) once the hub's git is taking its pack, then dies.
    let push = {
        use std::os::unix::process::CommandExt;
        let mut cmd = git_command(&big);
        cmd.args(["push", &url, "main:refs/heads/huge"])
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        cmd.spawn().unwrap()
    };
    let stopped = StoppedGit::after(push, &repos, "index-pack").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mid_transfer = processes_under(&repos);
    stopped.kill();
    assert!(
        mid_transfer
            .iter()
            .any(|(_, _, cmd)| cmd.contains("receive-pack")),
        "the push finished before the client went away: the test proves nothing: {mid_transfer:?}"
    );
    wait_until_clean(&hub, &repos, "the client went away; git stopped").await;
    assert_eq!(refs(&hub.repo_dir(1)), before, "no ref moved");
    fsck(&hub.repo_dir(1));

    // The repository takes the next push.
    work.commit_file("after.txt", "after\n", "after the cut");
    ok(&git_client(work.path(), &["push", &url, "main"], &[]).await);
    assert_ne!(refs(&hub.repo_dir(1)), before);
}

/// A git client stopped (SIGSTOP, its connection open) mid-transfer.
struct StoppedGit {
    child: std::process::Child,
}

impl StoppedGit {
    async fn start(dir: &Path, url: &str, into: &str, repos: &Path) -> Self {
        use std::os::unix::process::CommandExt;
        let mut cmd = git_command(dir);
        cmd.args(["clone", "--bare", url, into])
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        Self::after(cmd.spawn().unwrap(), repos, "pack-objects").await
    }

    /// Stops `child` (the leader of its own process group) once a process of the hub whose
    /// command line contains `seen` runs in `repos`.
    async fn after(child: std::process::Child, repos: &Path, seen: &str) -> Self {
        let mut clone = Self { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !processes_under(repos)
            .iter()
            .any(|(_, _, cmd)| cmd.contains(seen))
        {
            assert!(
                clone.child.try_wait().unwrap().is_none(),
                "git finished before the hub's {seen} was seen"
            );
            assert!(Instant::now() < deadline, "the hub never ran {seen}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        clone.signal("-STOP");
        clone
    }

    fn signal(&self, sig: &str) {
        std::process::Command::new("kill")
            .args([sig, "--", &format!("-{}", self.child.id())])
            .status()
            .unwrap();
    }

    fn kill(mut self) {
        self.signal("-KILL");
        self.child.wait().unwrap();
    }
}

/// Waits (a bounded time) until nothing of the hub's runs in its repositories and its log
/// says `why` (the line follows reaping, which follows the processes' exit).
async fn wait_until_clean(hub: &Hub, repos: &Path, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = processes_under(repos);
        if left.is_empty() && hub.log_text().contains(why) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still running, or not said ({why}): {left:?}\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends one raw HTTP/1.1 request and returns the whole answer as text: the path goes out
/// exactly as written (no client normalises it).
async fn raw_request(hub: &Hub, method: &str, path: &str, headers: &[&str], body: &str) -> String {
    let addr = hub.base.trim_start_matches("http://");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out))
        .await
        .expect("the hub answered within 20 s")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

async fn raw_get(hub: &Hub, path: &str) -> String {
    raw_request(hub, "GET", path, &[], "").await
}

fn status_line(resp: &str) -> &str {
    resp.lines().next().unwrap_or_default()
}

fn body_of(resp: &str) -> &str {
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default()
}
