//! Push webhooks end to end: the real binary, the real forges' payloads (`fixtures/webhooks`,
//! byte for byte), signed here with an HMAC computed independently of the hub, and real git
//! servers on 127.0.0.1. Each test runs on SQLite, and on PostgreSQL when
//! `MIRRORHUB_TEST_POSTGRES_URL` names a server.

#[macro_use]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{refs, Db, Hub, TestDb, SECRET_KEY};
use hmac::{Hmac, Mac};
use mirrorhub_testkit::{git, init_bare, ForgeApiServer, HttpGitServer, Scratch};
use serde_json::{json, Value};
use sha2::Sha256;

on_both_databases!(
    every_fixture_is_authenticated_and_replays_do_nothing,
    a_push_on_every_forge_syncs_the_mirror,
    a_burst_of_deliveries_gives_at_most_two_syncs,
    pings_connect_and_migrated_repositories_ignore_pushes,
    bad_deliveries_get_clear_answers,
    the_hub_adds_and_removes_its_webhook_on_the_forge,
    a_database_outage_answers_503_so_the_forge_retries,
);

const GITHUB_SECRET: &str = "gh-org-secret";
const GITLAB_TOKEN: &str = "gl-org-token";
const GITEA_SECRET: &str = "gitea-org-secret";
const BITBUCKET_SECRET: &str = "bb-org-secret";
const GENERIC_SECRET: &str = "generic-org-secret";

/// Organization-level secrets; GitHub's has a second, older one being rotated out.
fn org_secrets() -> Vec<(&'static str, String)> {
    vec![
        (
            "MIRRORHUB_GITHUB_WEBHOOK_SECRET",
            format!("old-gh-secret, {GITHUB_SECRET}"),
        ),
        ("MIRRORHUB_GITLAB_WEBHOOK_TOKEN", GITLAB_TOKEN.into()),
        ("MIRRORHUB_GITEA_WEBHOOK_SECRET", GITEA_SECRET.into()),
        (
            "MIRRORHUB_BITBUCKET_WEBHOOK_SECRET",
            BITBUCKET_SECRET.into(),
        ),
        ("MIRRORHUB_GENERIC_WEBHOOK_SECRET", GENERIC_SECRET.into()),
        ("MIRRORHUB_SECRET_KEY", SECRET_KEY.into()),
    ]
}

async fn start_hub(db: &TestDb) -> Hub {
    let env = org_secrets();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Hub::start(db, &env).await
}

fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/webhooks")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Forge {
    GitHub,
    GitLab,
    Gitea,
    Forgejo,
    BitbucketCloud,
    BitbucketServer,
    Generic,
}

impl Forge {
    fn endpoint(self) -> &'static str {
        match self {
            Forge::GitHub => "/hooks/github",
            Forge::GitLab => "/hooks/gitlab",
            Forge::Gitea | Forge::Forgejo => "/hooks/gitea",
            Forge::BitbucketCloud | Forge::BitbucketServer => "/hooks/bitbucket",
            Forge::Generic => "/hooks/generic",
        }
    }

    fn org_secret(self) -> &'static str {
        match self {
            Forge::GitHub => GITHUB_SECRET,
            Forge::GitLab => GITLAB_TOKEN,
            Forge::Gitea | Forge::Forgejo => GITEA_SECRET,
            Forge::BitbucketCloud | Forge::BitbucketServer => BITBUCKET_SECRET,
            Forge::Generic => GENERIC_SECRET,
        }
    }
}

/// How a signature is attached to a delivery.
#[derive(Clone, Copy, PartialEq)]
enum Signing {
    Right,
    Wrong,
    Missing,
}

/// The headers each forge sends, as its documentation describes them.
fn headers(
    forge: Forge,
    event: &str,
    delivery: &str,
    secret: &str,
    body: &[u8],
    signing: Signing,
) -> Vec<(String, String)> {
    let secret = match signing {
        Signing::Wrong => "not-the-secret",
        _ => secret,
    };
    let sig = hmac_hex(secret, body);
    let mut h: Vec<(&str, String)> = vec![("content-type", "application/json".into())];
    let signature: (&str, String) = match forge {
        Forge::GitHub => {
            h.push(("x-github-event", event.into()));
            h.push(("x-github-delivery", delivery.into()));
            h.push(("user-agent", "GitHub-Hookshot/abc123".into()));
            ("x-hub-signature-256", format!("sha256={sig}"))
        }
        Forge::GitLab => {
            h.push(("x-gitlab-event", event.into()));
            h.push(("x-gitlab-event-uuid", delivery.into()));
            h.push(("idempotency-key", delivery.into()));
            ("x-gitlab-token", secret.into())
        }
        Forge::Gitea => {
            h.push(("x-gitea-event", event.into()));
            h.push(("x-gitea-delivery", delivery.into()));
            ("x-gitea-signature", sig)
        }
        Forge::Forgejo => {
            h.push(("x-forgejo-event", event.into()));
            h.push(("x-forgejo-delivery", delivery.into()));
            h.push(("x-gitea-event", event.into()));
            h.push(("x-gitea-delivery", delivery.into()));
            ("x-forgejo-signature", sig)
        }
        Forge::BitbucketCloud => {
            h.push(("x-event-key", event.into()));
            h.push(("x-request-uuid", delivery.into()));
            h.push(("x-attempt-number", "1".into()));
            h.push(("user-agent", "Bitbucket-Webhooks/2.0".into()));
            ("x-hub-signature", format!("sha256={sig}"))
        }
        Forge::BitbucketServer => {
            h.push(("x-event-key", event.into()));
            h.push(("x-request-id", delivery.into()));
            h.push((
                "user-agent",
                "Atlassian HttpClient 1.1.0 / Bitbucket-8.9.0".into(),
            ));
            ("x-hub-signature", format!("sha256={sig}"))
        }
        Forge::Generic => {
            h.push(("x-delivery-id", delivery.into()));
            ("x-hub-signature-256", format!("sha256={sig}"))
        }
    };
    if signing != Signing::Missing {
        h.push(signature);
    }
    h.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Every fixture of `fixtures/webhooks`, with the event header its forge sends.
fn all_fixtures() -> Vec<(Forge, &'static str, &'static str)> {
    vec![
        (Forge::GitHub, "push", "github/push.json"),
        (Forge::GitHub, "ping", "github/ping.json"),
        (Forge::GitHub, "issue_comment", "github/issue-comment.json"),
        (
            Forge::GitHub,
            "issue_comment",
            "github/pull-request-issue-comment.json",
        ),
        (Forge::GitLab, "Push Hook", "gitlab/push.json"),
        (Forge::GitLab, "Tag Push Hook", "gitlab/tag-push.json"),
        (Forge::GitLab, "Note Hook", "gitlab/note-issue.json"),
        (Forge::GitLab, "Note Hook", "gitlab/note-merge-request.json"),
        (Forge::Gitea, "push", "gitea/push.json"),
        (Forge::Forgejo, "push", "gitea/push.json"),
        (Forge::Gitea, "issue_comment", "gitea/issue-comment.json"),
        (
            Forge::Gitea,
            "issue_comment",
            "gitea/pull-request-comment.json",
        ),
        (
            Forge::BitbucketCloud,
            "repo:push",
            "bitbucket-cloud/repo-push.json",
        ),
        (
            Forge::BitbucketCloud,
            "issue:comment_created",
            "bitbucket-cloud/issue-comment-created.json",
        ),
        (
            Forge::BitbucketCloud,
            "pullrequest:comment_created",
            "bitbucket-cloud/pull-request-comment-created.json",
        ),
        (
            Forge::BitbucketServer,
            "repo:refs_changed",
            "bitbucket-server/repo-refs-changed.json",
        ),
        (
            Forge::BitbucketServer,
            "pr:comment:added",
            "bitbucket-server/pr-comment-added.json",
        ),
    ]
}

async fn every_fixture_is_authenticated_and_replays_do_nothing(db: TestDb) {
    let hub = start_hub(&db).await;
    for (i, (forge, event, file)) in all_fixtures().into_iter().enumerate() {
        let body = fixture(file);
        let id = format!("delivery-{i}");
        let secret = forge.org_secret();
        let what = format!("{file} as {forge:?}");

        for signing in [Signing::Wrong, Signing::Missing] {
            let (status, answer) = hub
                .post_raw(
                    forge.endpoint(),
                    &headers(forge, event, &id, secret, &body, signing),
                    &body,
                )
                .await;
            assert_eq!(status, 401, "{what}: {answer}");
            assert_eq!(answer["error"]["code"], "unauthorized", "{what}");
            assert_eq!(
                answer["error"]["message"], "the webhook signature or token is missing or wrong",
                "{what}: no detail"
            );
        }

        let signed = headers(forge, event, &id, secret, &body, Signing::Right);
        let (status, answer) = hub.post_raw(forge.endpoint(), &signed, &body).await;
        let expected = if event == "ping" {
            (200, "pong")
        } else {
            (202, "accepted")
        };
        assert_eq!(
            (status, answer["status"].as_str().unwrap_or("")),
            expected,
            "{what}: {answer}"
        );

        // The same delivery again: answered, and nothing is done.
        let (status, answer) = hub.post_raw(forge.endpoint(), &signed, &body).await;
        assert_eq!(
            (status, answer["status"].as_str().unwrap_or("")),
            (200, "duplicate"),
            "{what}: {answer}"
        );
    }
    // A rotated-out GitHub secret is still accepted while it is configured.
    let body = fixture("github/push.json");
    let old = headers(
        Forge::GitHub,
        "push",
        "old-secret",
        "old-gh-secret",
        &body,
        Signing::Right,
    );
    assert_eq!(hub.post_raw("/hooks/github", &old, &body).await.0, 202);
    // Secrets never reach the log.
    let log = hub.log_text();
    for secret in [
        GITHUB_SECRET,
        GITLAB_TOKEN,
        GITEA_SECRET,
        BITBUCKET_SECRET,
        "old-gh-secret",
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

/// A local upstream with one commit on main, and the work tree that pushes to it.
fn upstream(root: &Path) -> (std::path::PathBuf, Scratch) {
    let path = root.join("project.git");
    init_bare(&path);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first");
    work.push(path.to_str().unwrap(), &["main"]);
    git(&path, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    (path, work)
}

async fn create_mirror(hub: &Hub, url: &str, name: &str) -> Value {
    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "owner": "team", "name": name, "mode": "mirror", "visibility": "public"}),
        )
        .await;
    assert_eq!(status, 202, "{repo}");
    let (repo, run) = hub.wait_for_run(&format!("team/{name}"), None).await;
    assert_eq!(run["outcome"], "success", "{run}");
    repo
}

/// Waits until the mirror's main branch is `commit`; returns how long it took.
async fn wait_for_main(hub: &Hub, repo_id_dir: &Path, commit: &str) -> Duration {
    let start = Instant::now();
    loop {
        let main = mirrorhub_testkit::try_git(repo_id_dir, ["rev-parse", "refs/heads/main"]);
        if String::from_utf8_lossy(&main.stdout).trim() == commit {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the mirror never got {commit}; log:\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn repo_dir_of(hub: &Hub, name: &str) -> std::path::PathBuf {
    // Repositories are stored by id; ids start at 1 and are never reused.
    let dirs: Vec<_> = std::fs::read_dir(hub.data_dir.join("repos"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "git"))
        .collect();
    assert_eq!(dirs.len(), 1, "one repository ({name})");
    dirs[0].clone()
}

async fn a_push_on_every_forge_syncs_the_mirror(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream_path, work) = upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let url = server.url("project.git");
    let hub = start_hub(&db).await;
    let repo = create_mirror(&hub, &url, "project").await;
    let mirror = repo_dir_of(&hub, "project");
    let local = format!("127.0.0.1:{}/project", server.addr().port());

    // Each forge's push fixture, its repository's URLs rewritten to the local upstream.
    let cases: Vec<(Forge, &str, &str, &str)> = vec![
        (
            Forge::GitHub,
            "push",
            "github/push.json",
            "github.com/binkkatal/sample_app",
        ),
        (
            Forge::GitLab,
            "Push Hook",
            "gitlab/push.json",
            "example.com/mike/diaspora",
        ),
        (
            Forge::Gitea,
            "push",
            "gitea/push.json",
            "localhost:3000/example/example",
        ),
        (
            Forge::Forgejo,
            "push",
            "gitea/push.json",
            "localhost:3000/example/example",
        ),
        (
            Forge::BitbucketServer,
            "repo:refs_changed",
            "bitbucket-server/repo-refs-changed.json",
            "server.bitbucket.local/scm/~gopher/webhook-test",
        ),
        // The generic sender names the repository in its body (here in its ssh form).
        (Forge::Generic, "push", "", ""),
    ];
    for (i, (forge, event, file, identity)) in cases.into_iter().enumerate() {
        let body = if forge == Forge::Generic {
            json!({"repo_url": format!("ssh://git@{local}.git"), "ref": "refs/heads/main"})
                .to_string()
                .into_bytes()
        } else {
            String::from_utf8(fixture(file))
                .unwrap()
                .replace(identity, &local)
                .into_bytes()
        };
        let commit = work.commit_file("file.txt", format!("{i}\n"), &format!("push {i}"));
        work.push(upstream_path.to_str().unwrap(), &["main"]);
        let signed = headers(
            forge,
            event,
            &format!("push-{i}"),
            forge.org_secret(),
            &body,
            Signing::Right,
        );
        let (status, answer) = hub.post_raw(forge.endpoint(), &signed, &body).await;
        assert_eq!(status, 202, "{file}: {answer}");
        wait_for_main(&hub, &mirror, &commit).await;
    }

    // Bitbucket Cloud's push carries no clone URL of ours (it is always bitbucket.org), and the
    // generic sender carries none at all: the repository's own URL and secret.
    let webhook_url = repo["webhook"]["url"].as_str().unwrap().to_owned();
    let secret = repo["webhook"]["secret"].as_str().unwrap().to_owned();
    let path = webhook_url
        .strip_prefix(&hub.base)
        .expect("webhook URL on the hub");
    assert_eq!(path, "/hooks/repos/team/project");
    for (i, (forge, event, body)) in [
        (
            Forge::BitbucketCloud,
            "repo:push",
            fixture("bitbucket-cloud/repo-push.json"),
        ),
        (Forge::Generic, "push", b"{}".to_vec()),
        (Forge::GitHub, "push", fixture("github/push.json")),
    ]
    .into_iter()
    .enumerate()
    {
        let commit = work.commit_file("file.txt", format!("own {i}\n"), &format!("own {i}"));
        work.push(upstream_path.to_str().unwrap(), &["main"]);
        let signed = headers(
            forge,
            event,
            &format!("own-{i}"),
            &secret,
            &body,
            Signing::Right,
        );
        let (status, answer) = hub.post_raw(path, &signed, &body).await;
        assert_eq!(status, 202, "{forge:?}: {answer}");
        wait_for_main(&hub, &mirror, &commit).await;
        // The organization secret is not this repository's secret.
        let org = headers(
            forge,
            event,
            &format!("own-org-{i}"),
            forge.org_secret(),
            &body,
            Signing::Right,
        );
        assert_eq!(hub.post_raw(path, &org, &body).await.0, 401);
    }
    assert_eq!(refs(&mirror), refs(&upstream_path));

    // The delivery log shows each delivery; the runs say the webhook triggered them.
    let (status, log) = hub
        .get("/api/v1/repos/team/project/webhook/deliveries")
        .await;
    assert_eq!(status, 200, "{log}");
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 9, "{log:?}");
    assert!(log.iter().all(|d| d["result"] == "sync queued"), "{log:?}");
    assert_eq!(log[0]["forge"], "github");
    assert_eq!(log[0]["delivery_id"], "own-2");
    assert_eq!(log[1]["forge"], "generic");
    assert_eq!(log[2]["forge"], "bitbucket-cloud");
    assert_eq!(log[2]["event"], "repo:push");
    assert_eq!(log[3]["forge"], "generic");
    assert_eq!(log[4]["forge"], "bitbucket-server");
    assert_eq!(log[5]["forge"], "forgejo");
    let (_, runs) = hub.get("/api/v1/repos/team/project/syncs").await;
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["trigger"] == "webhook")
            .count()
            >= 9
    );
    let (_, repo) = hub.get("/api/v1/repos/team/project").await;
    assert_eq!(repo["webhook"]["connected"], true);
    assert_eq!(repo["webhook"]["last_forge"], "github");
    assert_eq!(repo["webhook"]["registration"], "manual");
}

async fn a_burst_of_deliveries_gives_at_most_two_syncs(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream_path, work) = upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = start_hub(&db).await;
    let repo = create_mirror(&hub, &server.url("project.git"), "project").await;
    let mirror = repo_dir_of(&hub, "project");
    let before = hub.latest_run_id("team/project").await;
    let secret = repo["webhook"]["secret"].as_str().unwrap().to_owned();

    let commit = work.commit_file("file.txt", "burst\n", "burst");
    work.push(upstream_path.to_str().unwrap(), &["main"]);
    // 200 deliveries of that push (as the forge sends it: its ref and new tip), 20 senders
    // at a time.
    let mut payload: Value = serde_json::from_slice(&fixture("gitlab/push.json")).unwrap();
    payload["ref"] = json!("refs/heads/main");
    payload["after"] = json!(commit);
    let body = serde_json::to_vec(&payload).unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/hooks/repos/team/project", hub.base);
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..20 {
        let (client, url, body, secret) =
            (client.clone(), url.clone(), body.clone(), secret.clone());
        senders.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..10 {
                let id = format!("burst-{sender}-{i}");
                let mut req = client.post(&url).body(body.clone());
                for (k, v) in headers(
                    Forge::GitLab,
                    "Push Hook",
                    &id,
                    &secret,
                    &body,
                    Signing::Right,
                ) {
                    req = req.header(k, v);
                }
                statuses.push(req.send().await.unwrap().status().as_u16());
            }
            statuses
        });
    }
    let started = Instant::now();
    let statuses: Vec<u16> = senders.join_all().await.concat();
    eprintln!("200 deliveries took {:?}", started.elapsed());
    assert_eq!(statuses.len(), 200);
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    wait_for_main(&hub, &mirror, &commit).await;
    // Let any follow-up run finish, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, runs) = hub.get("/api/v1/repos/team/project/syncs?limit=200").await;
    let webhook_runs: Vec<&Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"].as_i64() > before)
        .collect();
    assert!(
        (1..=2).contains(&webhook_runs.len()),
        "200 deliveries gave {} syncs",
        webhook_runs.len()
    );
    assert!(webhook_runs.iter().all(|r| r["trigger"] == "webhook"));
    let (_, log) = hub
        .get("/api/v1/repos/team/project/webhook/deliveries?limit=200")
        .await;
    assert_eq!(
        log.as_array().unwrap().len(),
        200,
        "every delivery is logged"
    );
}

async fn pings_connect_and_migrated_repositories_ignore_pushes(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (upstream_path, work) = upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let url = server.url("project.git");
    let hub = start_hub(&db).await;
    let repo = create_mirror(&hub, &url, "mirror").await;
    assert_eq!(repo["webhook"]["connected"], false);
    let secret = repo["webhook"]["secret"].as_str().unwrap().to_owned();

    // GitHub's ping on the repository's own URL: connected, no sync.
    let before = hub.latest_run_id("team/mirror").await;
    let body = fixture("github/ping.json");
    let signed = headers(
        Forge::GitHub,
        "ping",
        "ping-1",
        &secret,
        &body,
        Signing::Right,
    );
    let (status, answer) = hub
        .post_raw("/hooks/repos/team/mirror.git", &signed, &body)
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("pong")),
        "{answer}"
    );
    let (_, repo) = hub.get("/api/v1/repos/team/mirror").await;
    assert_eq!(repo["webhook"]["connected"], true);
    assert_eq!(repo["webhook"]["last_forge"], "github");
    let (_, log) = hub
        .get("/api/v1/repos/team/mirror/webhook/deliveries")
        .await;
    assert_eq!(log[0]["event"], "ping");
    assert_eq!(log[0]["result"], "connected");

    // A migrated repository of the same upstream: the organization push reaches both; only
    // the mirror syncs.
    let (status, migrated) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "owner": "team", "name": "moved", "mode": "migrate"}),
        )
        .await;
    assert_eq!(status, 202, "{migrated}");
    let (_, run) = hub.wait_for_run("team/moved", None).await;
    assert_eq!(run["outcome"], "success");
    let moved_run = hub.latest_run_id("team/moved").await;
    let commit = work.commit_file("file.txt", "x\n", "after the move");
    work.push(upstream_path.to_str().unwrap(), &["main"]);
    let local = format!("127.0.0.1:{}/project", server.addr().port());
    let body = String::from_utf8(fixture("github/push.json"))
        .unwrap()
        .replace("github.com/binkkatal/sample_app", &local)
        .into_bytes();
    let signed = headers(
        Forge::GitHub,
        "push",
        "push-both",
        GITHUB_SECRET,
        &body,
        Signing::Right,
    );
    assert_eq!(hub.post_raw("/hooks/github", &signed, &body).await.0, 202);
    let (_, run) = hub.wait_for_run("team/mirror", before).await;
    assert_eq!(run["trigger"], "webhook");
    assert!(run["ref_changes"].to_string().contains(&commit), "{run}");
    let (_, log) = hub.get("/api/v1/repos/team/moved/webhook/deliveries").await;
    assert_eq!(
        log[0]["result"], "ignored: the repository was migrated and is the primary now",
        "{log}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hub.latest_run_id("team/moved").await,
        moved_run,
        "no sync of the primary"
    );
    assert!(hub
        .log_text()
        .contains("push webhook for a migrated repository ignored"));
}

async fn bad_deliveries_get_clear_answers(db: TestDb) {
    let hub = start_hub(&db).await;
    // Malformed JSON, correctly signed: 400 with a code, after authentication.
    let body = b"{not json".to_vec();
    let signed = headers(
        Forge::GitHub,
        "push",
        "bad-1",
        GITHUB_SECRET,
        &body,
        Signing::Right,
    );
    let (status, answer) = hub.post_raw("/hooks/github", &signed, &body).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "malformed_payload");
    // The same bytes unsigned: 401, the body is never looked at.
    let unsigned = headers(
        Forge::GitHub,
        "push",
        "bad-2",
        GITHUB_SECRET,
        &body,
        Signing::Missing,
    );
    assert_eq!(hub.post_raw("/hooks/github", &unsigned, &body).await.0, 401);
    // A GitHub endpoint without GitHub's headers.
    let (status, answer) = hub
        .post_raw(
            "/hooks/github",
            &[("content-type".into(), "application/json".into())],
            b"{}",
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    // No such forge endpoint.
    let (status, answer) = hub.post_raw("/hooks/sourceforge", &[], b"{}").await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/hooks/github"));
    // A repository that does not exist answers like a wrong signature.
    let body = fixture("github/push.json");
    let signed = headers(
        Forge::GitHub,
        "push",
        "x",
        "anything",
        &body,
        Signing::Right,
    );
    let (status, answer) = hub
        .post_raw("/hooks/repos/nobody/nothing", &signed, &body)
        .await;
    assert_eq!(status, 401, "{answer}");
    // Larger than the limit (25 MB by default): 413 before the body is read.
    assert_eq!(announce_body(&hub, "/hooks/github", 26 << 20).await, 413);
    // GitHub's form encoding (payload=<json>) is understood; the signature covers the form.
    let form = format!(
        "payload={}",
        url_encode(&String::from_utf8(fixture("github/push.json")).unwrap())
    )
    .into_bytes();
    let mut signed = headers(
        Forge::GitHub,
        "push",
        "form-1",
        GITHUB_SECRET,
        &form,
        Signing::Right,
    );
    signed[0].1 = "application/x-www-form-urlencoded".into();
    let (status, answer) = hub.post_raw("/hooks/github", &signed, &form).await;
    assert_eq!(status, 202, "{answer}");

    // Endpoints without a configured secret are off, and say how to turn them on.
    let bare = Hub::start(&db, &[("MIRRORHUB_SECRET_KEY", SECRET_KEY)]).await;
    let body = fixture("gitlab/push.json");
    let signed = headers(
        Forge::GitLab,
        "Push Hook",
        "g-1",
        GITLAB_TOKEN,
        &body,
        Signing::Right,
    );
    let (status, answer) = bare.post_raw("/hooks/gitlab", &signed, &body).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"]["code"], "webhook_not_enabled");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("MIRRORHUB_GITLAB_WEBHOOK_TOKEN"));
}

/// Sends only the head of a POST announcing `length` bytes, and returns the status the hub
/// answers with before any of the body arrives.
async fn announce_body(hub: &Hub, path: &str, length: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = hub.base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("the hub answers without waiting for the body")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"))
}

fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A forge on one host:port, as a real one is: its REST API played by a local server that
/// records every call, its Git repositories served by `git http-backend` behind it.
async fn forge_host(git: &HttpGitServer) -> ForgeApiServer {
    let api = ForgeApiServer::start().await;
    api.forward_unmatched_to(&git.url(""));
    api
}

async fn the_hub_adds_and_removes_its_webhook_on_the_forge(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("octo")).unwrap();
    let (upstream_path, work) = upstream(&root.path().join("octo"));
    std::fs::rename(&upstream_path, root.path().join("octo/app.git")).unwrap();
    let upstream_path = root.path().join("octo/app.git");
    let git_server = HttpGitServer::start(root.path(), None).await;
    let github = forge_host(&git_server).await;
    github.respond(
        "POST",
        "/api/v3/repos/octo/app/hooks",
        201,
        json!({"id": 4242}),
    );
    github.respond(
        "DELETE",
        "/api/v3/repos/octo/app/hooks/4242",
        204,
        Value::Null,
    );
    let gitlab = forge_host(&git_server).await;
    gitlab.respond(
        "POST",
        "/api/v4/projects/",
        403,
        json!({"message": "403 Forbidden"}),
    );

    let github_api = format!("{}/api/v3", github.url());
    let gitlab_url = gitlab.url();
    let mut env = org_secrets();
    env.push(("MIRRORHUB_GITHUB_API_URL", github_api));
    env.push(("MIRRORHUB_GITLAB_URL", gitlab_url));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let hub = Hub::start(&db, &env).await;

    // GitHub (Enterprise at /api/v3): the token may manage hooks.
    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            json!({"url": format!("{}/octo/app.git", github.url()), "token": "ghp_0123456789abcdef",
                   "owner": "team", "name": "app", "mode": "mirror"}),
        )
        .await;
    assert_eq!(status, 202, "{repo}");
    assert_eq!(repo["webhook"]["registration"], "registered", "{repo}");
    let calls: Vec<_> = github
        .recorded()
        .into_iter()
        .filter(|r| r.path_only().starts_with("/api/"))
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let create = &calls[0];
    assert_eq!(create.method, "POST");
    assert_eq!(create.path_only(), "/api/v3/repos/octo/app/hooks");
    assert_eq!(
        create.header("authorization"),
        Some("Bearer ghp_0123456789abcdef")
    );
    assert_eq!(create.header("accept"), Some("application/vnd.github+json"));
    let body = create.json();
    assert_eq!(body["name"], "web");
    assert_eq!(body["active"], true);
    assert_eq!(body["events"], json!(["push", "issue_comment"]));
    assert_eq!(body["config"]["url"], repo["webhook"]["url"]);
    assert_eq!(
        body["config"]["url"],
        format!("{}/hooks/repos/team/app", hub.base)
    );
    assert_eq!(body["config"]["content_type"], "json");
    assert_eq!(body["config"]["secret"], repo["webhook"]["secret"]);
    assert_eq!(body["config"]["insecure_ssl"], "0");
    let (_, run) = hub.wait_for_run("team/app", None).await;
    assert_eq!(run["outcome"], "success", "{run}");

    // What GitHub then sends to that hook syncs the mirror.
    let secret = repo["webhook"]["secret"].as_str().unwrap().to_owned();
    let commit = work.commit_file("file.txt", "hooked\n", "hooked");
    work.push(upstream_path.to_str().unwrap(), &["main"]);
    let body = fixture("github/push.json");
    let signed = headers(
        Forge::GitHub,
        "push",
        "gh-1",
        &secret,
        &body,
        Signing::Right,
    );
    assert_eq!(
        hub.post_raw("/hooks/repos/team/app", &signed, &body)
            .await
            .0,
        202
    );
    let mirror = repo_dir_of(&hub, "app");
    wait_for_main(&hub, &mirror, &commit).await;

    // GitLab refuses (the token may not manage hooks): the mirror is created all the same,
    // and says why the webhook is missing.
    std::fs::create_dir_all(root.path().join("group")).unwrap();
    std::fs::rename(
        {
            let (p, _) = upstream(&root.path().join("group"));
            p
        },
        root.path().join("group/app.git"),
    )
    .unwrap();
    let (status, other) = hub
        .post(
            "/api/v1/repos",
            json!({"url": format!("{}/group/app.git", gitlab.url()), "token": "glpat-secret-token",
                   "owner": "team", "name": "gl-app", "mode": "mirror"}),
        )
        .await;
    assert_eq!(status, 202, "{other}");
    assert_eq!(other["webhook"]["registration"], "failed", "{other}");
    let error = other["webhook"]["registration_error"].as_str().unwrap();
    assert!(error.contains("webhooks"), "{error}");
    assert!(!error.contains("glpat-secret-token"), "{error}");
    let create = gitlab
        .recorded()
        .into_iter()
        .find(|r| r.path_only().starts_with("/api/"))
        .expect("a call to GitLab's API");
    assert_eq!(create.path_only(), "/api/v4/projects/group%2Fapp/hooks");
    assert_eq!(create.header("private-token"), Some("glpat-secret-token"));

    // Without a token nothing is tried: the user is shown the manual steps.
    let (status, manual) = hub
        .post(
            "/api/v1/repos",
            json!({"url": format!("{}/octo/app.git", github.url()), "owner": "team", "name": "no-token", "mode": "mirror"}),
        )
        .await;
    assert_eq!(status, 202, "{manual}");
    assert_eq!(manual["webhook"]["registration"], "manual");

    // Deleting the mirror removes its webhook from the forge.
    github.clear_recorded();
    let (status, _) = hub
        .call(reqwest::Method::DELETE, "/api/v1/repos/team/app", None)
        .await;
    assert_eq!(status, 204);
    let calls: Vec<_> = github
        .recorded()
        .into_iter()
        .filter(|r| r.path_only().starts_with("/api/"))
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, "DELETE");
    assert_eq!(calls[0].path_only(), "/api/v3/repos/octo/app/hooks/4242");
    assert_eq!(
        calls[0].header("authorization"),
        Some("Bearer ghp_0123456789abcdef")
    );
    assert!(!hub.log_text().contains("ghp_0123456789abcdef"));
    assert!(!hub.log_text().contains("glpat-secret-token"));
}

async fn a_database_outage_answers_503_so_the_forge_retries(db: TestDb) {
    if db.url().is_none() {
        eprintln!("SQLite is in the hub's own process: no outage to simulate");
        return;
    }
    let hub = start_hub(&db).await;
    let body = fixture("github/push.json");
    let signed = headers(
        Forge::GitHub,
        "push",
        "outage-1",
        GITHUB_SECRET,
        &body,
        Signing::Right,
    );
    db.allow_connections(false);
    let started = Instant::now();
    let (status, answer) = hub.post_raw("/hooks/github", &signed, &body).await;
    db.allow_connections(true);
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "GitHub waits 10 s: {:?}",
        started.elapsed()
    );
    // The forge's retry of the same delivery is then taken, not refused as a duplicate.
    let (status, answer) = hub.post_raw("/hooks/github", &signed, &body).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("accepted")),
        "{answer}"
    );
}
