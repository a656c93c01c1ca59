//! The comment bot end to end: the real binary, GitHub's real `issue_comment` payload (from
//! `fixtures/webhooks`, its repository and comment set to the test's), delivered signed to
//! `/hooks/github`; GitHub's REST API played by a local server that records every call and
//! forwards git traffic to a real `git http-backend`, so API and repositories share one host
//! as on a real forge. Each test runs on SQLite, and on PostgreSQL when
//! `MIRRORHUB_TEST_POSTGRES_URL` names a server.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Db, Hub, TestDb, SECRET_KEY};
use hmac::{Hmac, Mac};
use mirrorhub_testkit::{git, init_bare, ForgeApiServer, HttpGitServer, RecordedRequest, Scratch};
use serde_json::{json, Value};
use sha2::Sha256;

on_both_databases!(
    mirror_sync_and_status_from_comments,
    who_may_not_command_is_told_and_nothing_happens,
    gitlab_and_gitea_comments_mirror_too,
    owners_mirror_their_whole_organization_from_a_comment,
);

const SECRET: &str = "org-webhook-secret";
const BOT_TOKEN: &str = "ghp_bot0123456789";
const API: &str = "/api/v3";

/// A GitHub Enterprise host: its API answers the bot's calls, its repositories are real.
struct Forge {
    api: ForgeApiServer,
    _git: HttpGitServer,
    _root: tempfile::TempDir,
    upstream: PathBuf,
    work: Scratch,
}

impl Forge {
    async fn start() -> Forge {
        let root = tempfile::tempdir().unwrap();
        let upstream = root.path().join("octo/app.git");
        std::fs::create_dir_all(upstream.parent().unwrap()).unwrap();
        init_bare(&upstream);
        let work = Scratch::new();
        work.commit_file("README.md", "hello\n", "first");
        work.branch("dev")
            .commit_file("dev.txt", "dev\n", "dev work");
        work.checkout("main");
        work.tag("v1");
        work.push_mirror(upstream.to_str().unwrap());
        git(&upstream, ["symbolic-ref", "HEAD", "refs/heads/main"]);
        let git_server = HttpGitServer::start(root.path(), None).await;
        let api = ForgeApiServer::start().await;
        api.forward_unmatched_to(&git_server.url(""));
        let repo = format!("{API}/repos/octo/app");
        api.respond(
            "POST",
            &format!("{repo}/issues/comments/"),
            201,
            json!({"id": 1, "content": "eyes"}),
        );
        api.respond(
            "POST",
            &format!("{repo}/issues/2/comments"),
            201,
            json!({"id": 9001}),
        );
        api.respond(
            "PATCH",
            &format!("{repo}/issues/comments/9001"),
            200,
            json!({"id": 9001}),
        );
        api.respond("POST", &format!("{repo}/hooks"), 201, json!({"id": 77}));
        api.respond(
            "GET",
            &format!("{repo}/collaborators/"),
            200,
            json!({"permission": "read"}),
        );
        Forge {
            api,
            _git: git_server,
            _root: root,
            upstream,
            work,
        }
    }

    fn base(&self) -> String {
        self.api.url()
    }

    /// The bot's calls to the API so far (not the forwarded git traffic).
    fn calls(&self) -> Vec<RecordedRequest> {
        self.api
            .recorded()
            .into_iter()
            .filter(|r| r.path_only().starts_with(API))
            .collect()
    }

    /// Waits until a call matching `what` was made; returns it.
    async fn wait_for(&self, what: impl Fn(&RecordedRequest) -> bool) -> RecordedRequest {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(found) = self.calls().into_iter().find(|r| what(r)) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no such call; calls: {:#?}",
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn start_hub(db: &TestDb, forge: &Forge) -> Hub {
    let api = format!("{}{API}", forge.base());
    Hub::start(
        db,
        &[
            ("MIRRORHUB_GITHUB_WEBHOOK_SECRET", SECRET),
            ("MIRRORHUB_GITHUB_API_URL", &api),
            ("MIRRORHUB_GITHUB_TOKEN", BOT_TOKEN),
            ("MIRRORHUB_BOT_USERNAMES", "mirrorhub-bot"),
            ("MIRRORHUB_BOT_OWNER_MAP", "octo=team"),
            ("MIRRORHUB_SECRET_KEY", SECRET_KEY),
        ],
    )
    .await
}

/// GitHub's `issue_comment` fixture, as GitHub would send it for a comment in octo/app.
fn comment_event(forge: &Forge, id: u64, author: &str, association: &str, body: &str) -> Value {
    let fixture = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/webhooks/github/issue-comment.json"),
    )
    .unwrap();
    let mut event: Value = serde_json::from_slice(&fixture).unwrap();
    let web = format!("{}/octo/app", forge.base());
    event["repository"]["full_name"] = json!("octo/app");
    event["repository"]["name"] = json!("app");
    event["repository"]["owner"]["login"] = json!("octo");
    event["repository"]["clone_url"] = json!(format!("{web}.git"));
    event["repository"]["html_url"] = json!(web);
    event["repository"]["git_url"] = json!(format!("{web}.git").replacen("http", "git", 1));
    event["comment"]["id"] = json!(id);
    event["comment"]["body"] = json!(body);
    event["comment"]["user"]["login"] = json!(author);
    event["comment"]["user"]["type"] = json!("User");
    event["comment"]["author_association"] = json!(association);
    event
}

/// Sends an event to `/hooks/github`, signed as GitHub signs; returns the status.
async fn deliver(hub: &Hub, event: &Value, delivery: &str) -> u16 {
    let body = serde_json::to_vec(event).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let headers = [
        ("content-type", "application/json"),
        ("x-github-event", "issue_comment"),
        ("x-github-delivery", delivery),
        ("x-hub-signature-256", signature.as_str()),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    hub.post_raw("/hooks/github", &headers, &body).await.0
}

fn body_of(call: &RecordedRequest) -> String {
    call.json()["body"].as_str().unwrap_or_default().to_owned()
}

/// No line of a reply may start with a command: the bot must never trigger itself.
fn assert_defused(text: &str) {
    for line in text.lines() {
        let line = line.trim_start();
        assert!(
            !(line.starts_with('/') && line[1..].starts_with(|c: char| c.is_ascii_alphabetic())),
            "a reply line starts with a command: {line:?}\n{text}"
        );
    }
}

async fn mirror_sync_and_status_from_comments(db: TestDb) {
    let forge = Forge::start().await;
    let hub = start_hub(&db, &forge).await;

    // An owner of octo/app types /mirror in issue #2.
    let event = comment_event(
        &forge,
        501,
        "alice",
        "OWNER",
        "Please keep a copy.\r\n\r\n/mirror --public\r\n",
    );
    assert_eq!(deliver(&hub, &event, "d-1").await, 202);

    let reaction = forge
        .wait_for(|r| {
            r.method == "POST" && r.path_only().ends_with("/issues/comments/501/reactions")
        })
        .await;
    assert_eq!(reaction.json(), json!({"content": "eyes"}));
    assert_eq!(
        reaction.header("authorization"),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    let working = forge
        .wait_for(|r| {
            r.method == "POST" && r.path_only() == format!("{API}/repos/octo/app/issues/2/comments")
        })
        .await;
    assert!(body_of(&working).contains('⏳'), "{}", body_of(&working));
    assert_defused(&body_of(&working));
    let done = forge
        .wait_for(|r| {
            r.method == "PATCH"
                && r.path_only() == format!("{API}/repos/octo/app/issues/comments/9001")
        })
        .await;
    let text = body_of(&done);
    assert!(text.contains('✅'), "{text}");
    assert!(
        text.contains(&format!("{}/team/app.git", hub.base)),
        "clone URL: {text}"
    );
    assert!(
        text.contains("2 branches") || text.contains("branches: 2"),
        "counts: {text}"
    );
    assert_defused(&text);

    // The repository exists, public, under the mapped owner, with its webhook on the forge.
    let (status, repo) = hub.get("/api/v1/repos/team/app").await;
    assert_eq!(status, 200, "{repo}");
    assert_eq!(repo["state"], "ready");
    assert_eq!(repo["visibility"], "public");
    assert_eq!(repo["branches"], 2);
    assert_eq!(repo["webhook"]["registration"], "registered", "{repo}");

    // Redelivered, or sent again under another delivery id: nothing more happens.
    let before = forge.calls().len();
    assert_eq!(deliver(&hub, &event, "d-1").await, 200);
    assert_eq!(deliver(&hub, &event, "d-1-again").await, 202);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(forge.calls().len(), before, "{:#?}", forge.calls());

    // The comment edited to add /sync: only /sync runs.
    forge.api.clear_recorded();
    let commit = forge
        .work
        .commit_file("new.txt", "new\n", "after the mirror");
    forge.work.push(forge.upstream.to_str().unwrap(), &["main"]);
    let mut edited = comment_event(
        &forge,
        501,
        "alice",
        "OWNER",
        "Please keep a copy.\n\n/mirror --public\n/sync\n",
    );
    edited["action"] = json!("edited");
    edited["changes"] =
        json!({"body": {"from": "Please keep a copy.\r\n\r\n/mirror --public\r\n"}});
    assert_eq!(deliver(&hub, &edited, "d-2").await, 202);
    let synced = forge.wait_for(|r| r.method == "PATCH").await;
    let text = body_of(&synced);
    assert!(text.contains('✅'), "{text}");
    assert_defused(&text);
    let posts: Vec<_> = forge
        .calls()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path_only().ends_with("/issues/2/comments"))
        .collect();
    assert_eq!(posts.len(), 1, "one reply, for /sync only: {posts:#?}");
    let main = mirrorhub_testkit::try_git(
        &hub.data_dir.join("repos/1.git"),
        ["rev-parse", "refs/heads/main"],
    );
    assert_eq!(String::from_utf8_lossy(&main.stdout).trim(), commit);
    let (_, runs) = hub.get("/api/v1/repos/team/app/syncs?limit=1").await;
    assert_eq!(runs[0]["trigger"], "bot");

    // /status of the comment's repository, and bad arguments get the usage.
    forge.api.clear_recorded();
    let event = comment_event(
        &forge,
        502,
        "alice",
        "OWNER",
        "/status\n/mirror as only-one-part\n",
    );
    assert_eq!(deliver(&hub, &event, "d-3").await, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let replies = loop {
        let replies: Vec<String> = forge
            .calls()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path_only().ends_with("/issues/2/comments"))
            .map(|r| body_of(&r))
            .collect();
        if replies.len() >= 2 || Instant::now() > deadline {
            break replies;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(replies.len(), 2, "{replies:#?}");
    assert!(
        replies[0].contains("team/app") && replies[0].contains("`synced`"),
        "{}",
        replies[0]
    );
    assert!(
        replies[1].to_lowercase().contains("usage"),
        "{}",
        replies[1]
    );
    for reply in &replies {
        assert_defused(reply);
    }

    // The bot's own comments (quoting commands) are never read.
    forge.api.clear_recorded();
    let own = comment_event(&forge, 503, "mirrorhub-bot", "NONE", "/sync");
    assert_eq!(deliver(&hub, &own, "d-4").await, 202);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(forge.calls().is_empty(), "{:#?}", forge.calls());
    assert!(!hub.log_text().contains(BOT_TOKEN));
}

async fn who_may_not_command_is_told_and_nothing_happens(db: TestDb) {
    let forge = Forge::start().await;
    let hub = start_hub(&db, &forge).await;
    let event = comment_event(&forge, 601, "mallory", "NONE", "/mirror as mallory/app");
    assert_eq!(deliver(&hub, &event, "x-1").await, 202);
    let permission = forge
        .wait_for(|r| {
            r.method == "GET" && r.path_only().ends_with("/collaborators/mallory/permission")
        })
        .await;
    assert_eq!(
        permission.header("authorization"),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    let denied = forge
        .wait_for(|r| r.method == "POST" && r.path_only().ends_with("/issues/2/comments"))
        .await;
    let text = body_of(&denied);
    assert!(text.contains("mallory") && text.contains("write"), "{text}");
    assert_defused(&text);
    let (_, repos) = hub.get("/api/v1/repos").await;
    assert_eq!(repos, json!([]), "nothing created");
    drop(hub);

    // The operator's allowlist widens (mallory may) or narrows (only mallory may) the rule.
    let api = format!("{}{API}", forge.base());
    let common_env = [
        ("MIRRORHUB_GITHUB_WEBHOOK_SECRET", SECRET),
        ("MIRRORHUB_GITHUB_API_URL", api.as_str()),
        ("MIRRORHUB_GITHUB_TOKEN", BOT_TOKEN),
        ("MIRRORHUB_BOT_ALLOWED_USERS", "Mallory"),
        ("MIRRORHUB_SECRET_KEY", SECRET_KEY),
    ];
    let widened = Hub::start(&db, &common_env).await;
    forge.api.clear_recorded();
    let event = comment_event(&forge, 602, "mallory", "NONE", "/status octo/nothing");
    assert_eq!(deliver(&widened, &event, "x-2").await, 202);
    let reply = forge
        .wait_for(|r| r.method == "POST" && r.path_only().ends_with("/issues/2/comments"))
        .await;
    assert!(
        body_of(&reply).contains("repo_not_found"),
        "allowed, and told: {}",
        body_of(&reply)
    );
    assert!(
        forge
            .calls()
            .iter()
            .all(|r| !r.path_only().contains("/permission")),
        "no permission check needed"
    );
    drop(widened);

    let mut narrowed_env = common_env.to_vec();
    narrowed_env.push(("MIRRORHUB_BOT_ONLY_ALLOWED", "true"));
    let narrowed = Hub::start(&db, &narrowed_env).await;
    forge.api.clear_recorded();
    let event = comment_event(&forge, 603, "alice", "OWNER", "/status octo/nothing");
    assert_eq!(deliver(&narrowed, &event, "x-3").await, 202);
    let reply = forge
        .wait_for(|r| r.method == "POST" && r.path_only().ends_with("/issues/2/comments"))
        .await;
    assert!(
        body_of(&reply).contains("only these people") && body_of(&reply).contains("Mallory"),
        "{}",
        body_of(&reply)
    );
}

/// A GitLab and a Gitea host, each with `group/app.git` (GitLab project 42) or `example/app.git`.
async fn gitlab_and_gitea_comments_mirror_too(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    for path in ["group/app.git", "example/app.git"] {
        let upstream = root.path().join(path);
        std::fs::create_dir_all(upstream.parent().unwrap()).unwrap();
        init_bare(&upstream);
        let work = Scratch::new();
        work.commit_file("README.md", "hello\n", "first");
        work.push_mirror(upstream.to_str().unwrap());
        git(&upstream, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    }
    let git_server = HttpGitServer::start(root.path(), None).await;
    let gitlab = ForgeApiServer::start().await;
    gitlab.forward_unmatched_to(&git_server.url(""));
    gitlab.respond(
        "GET",
        "/api/v4/projects/42/members/all",
        200,
        json!([{"id": 7, "username": "dev", "access_level": 30}]),
    );
    gitlab.respond(
        "POST",
        "/api/v4/projects/42/issues/17/notes/1241/award_emoji",
        201,
        json!({"id": 1, "name": "eyes"}),
    );
    gitlab.respond(
        "POST",
        "/api/v4/projects/42/issues/17/notes",
        201,
        json!({"id": 3002}),
    );
    gitlab.respond(
        "PUT",
        "/api/v4/projects/42/issues/17/notes/3002",
        200,
        json!({"id": 3002}),
    );
    gitlab.respond(
        "POST",
        "/api/v4/projects/group%2Fapp/hooks",
        201,
        json!({"id": 11}),
    );
    let gitea = ForgeApiServer::start().await;
    gitea.forward_unmatched_to(&git_server.url(""));
    gitea.respond(
        "GET",
        "/api/v1/repos/example/app/collaborators/example/permission",
        200,
        json!({"permission": "write"}),
    );
    gitea.respond(
        "POST",
        "/api/v1/repos/example/app/issues/comments/2/reactions",
        201,
        json!({"content": "eyes"}),
    );
    gitea.respond(
        "POST",
        "/api/v1/repos/example/app/issues/1/comments",
        201,
        json!({"id": 5002}),
    );
    gitea.respond(
        "PATCH",
        "/api/v1/repos/example/app/issues/comments/5002",
        200,
        json!({"id": 5002}),
    );
    gitea.respond(
        "POST",
        "/api/v1/repos/example/app/hooks",
        201,
        json!({"id": 3}),
    );

    let (gitlab_url, gitea_url) = (gitlab.url(), gitea.url());
    let hub = Hub::start(
        &db,
        &[
            ("MIRRORHUB_GITLAB_WEBHOOK_TOKEN", SECRET),
            ("MIRRORHUB_GITEA_WEBHOOK_SECRET", SECRET),
            ("MIRRORHUB_GITLAB_URL", &gitlab_url),
            ("MIRRORHUB_GITEA_URL", &gitea_url),
            ("MIRRORHUB_GITLAB_TOKEN", "glpat-bot-token"),
            ("MIRRORHUB_GITEA_TOKEN", "gitea-bot-token"),
            ("MIRRORHUB_BOT_OWNER_MAP", "group=team,example=team"),
        ],
    )
    .await;
    let fixture = |path: &str| -> Value {
        serde_json::from_slice(
            &std::fs::read(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("fixtures/webhooks")
                    .join(path),
            )
            .unwrap(),
        )
        .unwrap()
    };

    // GitLab's Note Hook on issue #17 of project 42, by a Developer.
    let mut note = fixture("gitlab/note-issue.json");
    let web = format!("{gitlab_url}/group/app");
    note["project"]["id"] = json!(42);
    note["project_id"] = json!(42);
    note["project"]["path_with_namespace"] = json!("group/app");
    note["project"]["git_http_url"] = json!(format!("{web}.git"));
    note["project"]["http_url"] = json!(format!("{web}.git"));
    note["project"]["web_url"] = json!(web);
    note["user"]["username"] = json!("dev");
    note["object_attributes"]["note"] = json!("/mirror as team/from-gitlab");
    let body = serde_json::to_vec(&note).unwrap();
    let headers = [
        ("content-type", "application/json"),
        ("x-gitlab-event", "Note Hook"),
        ("x-gitlab-event-uuid", "gl-1"),
        ("x-gitlab-token", SECRET),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    assert_eq!(hub.post_raw("/hooks/gitlab", &headers, &body).await.0, 202);
    let calls = |api: &ForgeApiServer| -> Vec<RecordedRequest> {
        api.recorded()
            .into_iter()
            .filter(|r| r.path_only().starts_with("/api/"))
            .collect()
    };
    let wait = |api: &ForgeApiServer, method: &'static str| {
        let api_calls = calls(api);
        api_calls.into_iter().find(|r| r.method == method)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let edit = loop {
        if let Some(edit) = wait(&gitlab, "PUT") {
            break edit;
        }
        assert!(Instant::now() < deadline, "{:#?}", calls(&gitlab));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(edit.header("private-token"), Some("glpat-bot-token"));
    // GitLab's API takes form fields.
    let text = edit
        .form()
        .into_iter()
        .find(|(k, _)| k == "body")
        .map(|(_, v)| v)
        .unwrap_or_default();
    assert!(text.contains('✅'), "{text}");
    assert_defused(&text);
    let paths: Vec<String> = calls(&gitlab)
        .iter()
        .map(|r| format!("{} {}", r.method, r.path_only()))
        .collect();
    for expected in [
        "GET /api/v4/projects/42/members/all",
        "POST /api/v4/projects/42/issues/17/notes/1241/award_emoji",
        "POST /api/v4/projects/42/issues/17/notes",
        "POST /api/v4/projects/group%2Fapp/hooks",
        "PUT /api/v4/projects/42/issues/17/notes/3002",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not in {paths:#?}"
        );
    }
    let (_, repo) = hub.get("/api/v1/repos/team/from-gitlab").await;
    assert_eq!(repo["state"], "ready", "{repo}");

    // Gitea's issue_comment on issue #1 of example/app, by a writer.
    let mut comment = fixture("gitea/issue-comment.json");
    let web = format!("{gitea_url}/example/app");
    comment["repository"]["full_name"] = json!("example/app");
    comment["repository"]["name"] = json!("app");
    comment["repository"]["clone_url"] = json!(format!("{web}.git"));
    comment["repository"]["html_url"] = json!(web);
    comment["repository"]["ssh_url"] = json!("");
    comment["comment"]["body"] = json!("/mirror as team/from-gitea");
    let body = serde_json::to_vec(&comment).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = hex::encode(mac.finalize().into_bytes());
    let headers = [
        ("content-type", "application/json"),
        ("x-gitea-event", "issue_comment"),
        ("x-gitea-delivery", "gt-1"),
        ("x-gitea-signature", signature.as_str()),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    assert_eq!(hub.post_raw("/hooks/gitea", &headers, &body).await.0, 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    let edit = loop {
        if let Some(edit) = wait(&gitea, "PATCH") {
            break edit;
        }
        assert!(Instant::now() < deadline, "{:#?}", calls(&gitea));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(edit.header("authorization"), Some("token gitea-bot-token"));
    assert!(body_of(&edit).contains('✅'), "{}", body_of(&edit));
    let paths: Vec<String> = calls(&gitea)
        .iter()
        .map(|r| format!("{} {}", r.method, r.path_only()))
        .collect();
    for expected in [
        "GET /api/v1/repos/example/app/collaborators/example/permission",
        "POST /api/v1/repos/example/app/issues/comments/2/reactions",
        "POST /api/v1/repos/example/app/issues/1/comments",
        "POST /api/v1/repos/example/app/hooks",
        "PATCH /api/v1/repos/example/app/issues/comments/5002",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not in {paths:#?}"
        );
    }
    let (_, repo) = hub.get("/api/v1/repos/team/from-gitea").await;
    assert_eq!(repo["state"], "ready", "{repo}");
    assert!(!hub.log_text().contains("glpat-bot-token"));
    assert!(!hub.log_text().contains("gitea-bot-token"));
}

async fn owners_mirror_their_whole_organization_from_a_comment(db: TestDb) {
    let forge = Forge::start().await;
    // The organization's owners and members, and its one repository, as GitHub lists them.
    forge.api.respond(
        "GET",
        &format!("{API}/orgs/octo/memberships/alice"),
        200,
        json!({"state": "active", "role": "admin", "user": {"login": "alice"}}),
    );
    forge.api.respond(
        "GET",
        &format!("{API}/orgs/octo/memberships/bob"),
        200,
        json!({"state": "active", "role": "member", "user": {"login": "bob"}}),
    );
    forge.api.respond(
        "GET",
        &format!("{API}/orgs/octo/repos"),
        200,
        json!([{"id": 4242, "name": "app", "full_name": "octo/app",
                "clone_url": format!("{}/octo/app.git", forge.base()),
                "description": "the app", "private": false, "archived": false, "fork": false}]),
    );
    let hub = start_hub(&db, &forge).await;
    let replies = |forge: &Forge| -> Vec<RecordedRequest> {
        forge
            .calls()
            .into_iter()
            .filter(|r| {
                (r.method == "POST" && r.path_only().ends_with("/issues/2/comments"))
                    || r.method == "PATCH"
            })
            .collect()
    };

    // A member who may write to the repository, but does not own the organization: refused,
    // and nothing is made.
    let event = comment_event(&forge, 601, "bob", "MEMBER", "/mirror-org");
    assert_eq!(deliver(&hub, &event, "o-1").await, 202);
    let denied = forge
        .wait_for(|r| r.method == "POST" && r.path_only().ends_with("/issues/2/comments"))
        .await;
    let text = body_of(&denied);
    assert!(
        text.contains('🚫') && text.contains("owners of octo"),
        "{text}"
    );
    assert_defused(&text);
    let (_, sets) = hub.get("/api/v1/mirror-sets").await;
    assert_eq!(sets.as_array().map(Vec::len), Some(0), "{sets}");

    // An owner: the organization becomes a mirror set under the mapped hub owner, listed with
    // the bot's token, and its repository is mirrored.
    forge.api.clear_recorded();
    let event = comment_event(&forge, 602, "alice", "MEMBER", "/mirror-org octo");
    assert_eq!(deliver(&hub, &event, "o-2").await, 202);
    let done = forge.wait_for(|r| r.method == "PATCH").await;
    let text = body_of(&done);
    assert!(
        text.contains('✅') && text.contains("`octo`") && text.contains("`team`"),
        "{text}"
    );
    assert!(text.contains(&format!("{}/-/sets/", hub.base)), "{text}");
    assert_defused(&text);
    assert_eq!(
        replies(&forge).len(),
        2,
        "one reply, edited once: {:#?}",
        replies(&forge)
    );
    let listing = forge
        .wait_for(|r| r.path_only() == format!("{API}/orgs/octo/repos"))
        .await;
    assert_eq!(
        listing.header("authorization"),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    let (_, sets) = hub.get("/api/v1/mirror-sets").await;
    assert_eq!(sets[0]["namespace"], "octo", "{sets}");
    assert_eq!(sets[0]["owner"], "team", "{sets}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, repo) = hub.get("/api/v1/repos/team/app").await;
        if status == 200 && repo["state"] == "ready" {
            assert_eq!(repo["description"], "the app");
            break;
        }
        assert!(Instant::now() < deadline, "never mirrored: {repo}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Asked again: the set exists; told so, nothing doubled.
    forge.api.clear_recorded();
    let event = comment_event(&forge, 603, "alice", "MEMBER", "/mirror-org");
    assert_eq!(deliver(&hub, &event, "o-3").await, 202);
    let again = forge.wait_for(|r| r.method == "PATCH").await;
    let text = body_of(&again);
    assert!(text.contains("mirror_set_exists"), "{text}");
    let (_, sets) = hub.get("/api/v1/mirror-sets").await;
    assert_eq!(sets.as_array().map(Vec::len), Some(1), "{sets}");
    assert!(!hub.log_text().contains(BOT_TOKEN));
}
