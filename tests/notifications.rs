//! Notifications end to end: the real binary, real git servers, a local HTTP receiver that
//! plays the webhook and Slack endpoints, a local SMTP server, and both databases. A mirror
//! whose upstream starts refusing its credentials notifies each target once however many
//! runs fail, and once more when it recovers; a dead target is retried and recorded while
//! syncs go on; targets are scoped, checked and guarded.

#[macro_use]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Db, Hub, TestDb};
use hmac::{Hmac, Mac};
use mirrorhub_testkit::{
    git, init_bare, ForgeApiServer, HttpGitServer, RecordedRequest, Reply, Scratch, SmtpServer,
};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

on_both_databases!(
    a_failure_is_told_once_and_its_recovery_once,
    a_dead_target_is_retried_and_recorded_while_syncs_go_on,
    a_stale_mirror_is_told_once,
    targets_are_scoped_checked_and_guarded,
    the_cli_adds_tests_and_removes_targets,
);

const WEBHOOK_SECRET: &str = "webhook-secret-for-tests-0123456789";
/// The token part of a Slack incoming-webhook URL: a credential, never to be shown or logged.
const SLACK_TOKEN: &str = "T0000/B0000/slack-token-never-shown";

/// A bare upstream `<root>/<name>.git` with one commit on main.
fn upstream(root: &Path, name: &str) {
    let path = root.join(format!("{name}.git"));
    init_bare(&path);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first");
    work.push(path.to_str().unwrap(), &["main"]);
    git(&path, ["symbolic-ref", "HEAD", "refs/heads/main"]);
}

/// The upstream's git server behind a front that can be told to refuse every login (as a
/// forge does when a mirror's token is revoked).
struct Upstream {
    _root: tempfile::TempDir,
    _server: HttpGitServer,
    front: ForgeApiServer,
}

impl Upstream {
    async fn start(names: &[&str]) -> Upstream {
        let root = tempfile::tempdir().unwrap();
        for name in names {
            upstream(root.path(), name);
        }
        let server = HttpGitServer::start(root.path(), None).await;
        let front = ForgeApiServer::start().await;
        front.forward_unmatched_to(&format!("http://{}", server.addr()));
        Upstream {
            _root: root,
            _server: server,
            front,
        }
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}.git", self.front.url())
    }

    /// Every git request gets `401` from now on: the mirror's credentials are refused.
    fn refuse_logins(&self) {
        self.front.on(
            "GET",
            "/",
            Reply::empty(401).with_header("WWW-Authenticate", "Basic realm=\"git\""),
        );
        self.front.on(
            "POST",
            "/",
            Reply::empty(401).with_header("WWW-Authenticate", "Basic realm=\"git\""),
        );
    }

    fn accept_logins(&self) {
        self.front.clear_routes();
    }
}

/// The webhook and Slack endpoints: answers 200 to any POST under `/`.
async fn receiver() -> ForgeApiServer {
    let receiver = ForgeApiServer::start().await;
    receiver.on("POST", "/", Reply::json(200, json!({"ok": true})));
    receiver
}

fn posts_to(receiver: &ForgeApiServer, path: &str) -> Vec<RecordedRequest> {
    receiver
        .recorded()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path_only() == path)
        .collect()
}

/// Waits (bounded) until the target's deliveries (newest first) satisfy `done`.
async fn wait_deliveries(
    hub: &Hub,
    target: &Value,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = deliveries(hub, target).await;
        if done(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: {list:?}\nlog:\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until the receiver got `n` POSTs to `path`; returns them.
async fn wait_posts(
    hub: &Hub,
    receiver: &ForgeApiServer,
    path: &str,
    n: usize,
) -> Vec<RecordedRequest> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let posts = posts_to(receiver, path);
        if posts.len() >= n {
            return posts;
        }
        assert!(
            Instant::now() < deadline,
            "never {n} POSTs to {path}: {posts:?}\nlog:\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_target(hub: &Hub, body: Value) -> Value {
    let (status, target) = hub.post("/api/v1/notifications/targets", body).await;
    assert_eq!(status, 201, "{target}");
    target
}

async fn deliveries(hub: &Hub, target: &Value) -> Vec<Value> {
    let (status, list) = hub
        .get(&format!(
            "/api/v1/notifications/targets/{}/deliveries",
            target["id"]
        ))
        .await;
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().clone()
}

/// Waits until none of the target's deliveries is pending; returns them (newest first).
async fn settled(hub: &Hub, target: &Value, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = deliveries(hub, target).await;
        if list.len() >= count && list.iter().all(|d| d["status"] != "pending") {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries of target {} never settled: {list:?}\n{}",
            target["id"],
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Syncs now and waits for that run; returns it.
async fn sync(hub: &Hub, repo: &str) -> Value {
    let before = hub.latest_run_id(repo).await;
    let (status, body) = hub
        .post(&format!("/api/v1/repos/{repo}/sync"), json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    hub.wait_for_run(repo, before).await.1
}

async fn mirror(hub: &Hub, url: &str, owner: &str, name: &str) {
    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            json!({"url": url, "owner": owner, "name": name, "mode": "mirror"}),
        )
        .await;
    assert_eq!(status, 202, "{repo}");
    let (_, run) = hub.wait_for_run(&format!("{owner}/{name}"), None).await;
    assert_eq!(run["outcome"], "success", "{run}");
}

fn verify_signature(request: &RecordedRequest) {
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        request.header("x-mirrorhub-signature-256"),
        Some(expected.as_str()),
        "the webhook's signature must be HMAC-SHA256 of its raw body"
    );
}

async fn a_failure_is_told_once_and_its_recovery_once(db: TestDb) {
    let upstream = Upstream::start(&["project"]).await;
    let receiver = receiver().await;
    let smtp = SmtpServer::start().await;
    let smtp_url = smtp.url();
    let hub = Hub::start(
        &db,
        &[
            ("MIRRORHUB_SMTP_URL", smtp_url.as_str()),
            ("MIRRORHUB_SMTP_FROM", "mirrorhub <hub@example.org>"),
            ("MIRRORHUB_PAUSE_AFTER", "100"),
        ],
    )
    .await;

    let webhook = create_target(
        &hub,
        json!({"kind": "webhook", "url": format!("{}/hooks/mirrorhub?team=ops", receiver.url()),
               "secret": WEBHOOK_SECRET, "description": "ops receiver"}),
    )
    .await;
    assert_eq!(webhook["kind"], "webhook");
    assert_eq!(webhook["url_origin"], receiver.url());
    assert_eq!(webhook["has_secret"], true);
    assert!(
        webhook.get("url").is_none() && webhook.get("secret").is_none(),
        "{webhook}"
    );
    let slack = create_target(
        &hub,
        json!({"kind": "slack", "url": format!("{}/services/{SLACK_TOKEN}", receiver.url())}),
    )
    .await;
    assert!(!slack.to_string().contains(SLACK_TOKEN), "{slack}");
    let email = create_target(&hub, json!({"kind": "email", "to": "ops@example.org"})).await;
    assert_eq!(email["to"], json!(["ops@example.org"]));

    mirror(&hub, &upstream.url("project"), "team", "project").await;
    assert!(deliveries(&hub, &webhook).await.is_empty());

    // The upstream refuses the mirror's credentials: every run fails, one notification each.
    upstream.refuse_logins();
    for _ in 0..3 {
        let run = sync(&hub, "team/project").await;
        assert_eq!(run["outcome"], "failed", "{run}");
        assert_eq!(run["error"]["code"], "upstream_auth_failed", "{run}");
    }
    for target in [&webhook, &slack, &email] {
        let list = settled(&hub, target, 1).await;
        assert_eq!(list.len(), 1, "one delivery per episode: {list:?}");
        assert_eq!(list[0]["event"], "sync_failed");
        assert_eq!(list[0]["status"], "delivered", "{:?}", list[0]);
        assert_eq!(list[0]["attempts"], 1);
        assert_eq!(list[0]["repository"], "team/project");
        assert_eq!(list[0]["error_code"], "upstream_auth_failed");
    }
    let hooks = posts_to(&receiver, "/hooks/mirrorhub");
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let hook = &hooks[0];
    verify_signature(hook);
    assert_eq!(hook.path, "/hooks/mirrorhub?team=ops");
    assert_eq!(hook.header("x-mirrorhub-event"), Some("sync_failed"));
    assert_eq!(hook.header("content-type"), Some("application/json"));
    let body = hook.json();
    assert_eq!(
        hook.header("x-mirrorhub-delivery"),
        Some(body["delivery_id"].to_string().as_str())
    );
    assert_eq!(body["event"], "sync_failed");
    assert_eq!(body["repository"]["full_name"], "team/project");
    assert_eq!(
        body["repository"]["url"],
        format!("{}/team/project", hub.base)
    );
    assert_eq!(body["subject"]["kind"], "sync");
    assert_eq!(body["error"]["code"], "upstream_auth_failed");
    assert!(body["occurred_at"].is_string());

    let slacks = posts_to(&receiver, &format!("/services/{SLACK_TOKEN}"));
    assert_eq!(slacks.len(), 1);
    assert!(slacks[0].header("x-mirrorhub-signature-256").is_none());
    let text = slacks[0].json()["text"].as_str().unwrap().to_owned();
    assert!(
        text.contains("team/project: sync failed") && text.contains("upstream_auth_failed"),
        "{text}"
    );

    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, vec!["ops@example.org".to_owned()]);
    assert_eq!(mails[0].from, "hub@example.org");
    assert_eq!(
        mails[0].header("subject").as_deref(),
        Some("[mirrorhub] team/project: sync failed")
    );
    assert!(
        mails[0].body().contains("upstream_auth_failed"),
        "{}",
        mails[0].data
    );

    // Fixed: one recovery, then nothing for further successes.
    upstream.accept_logins();
    let run = sync(&hub, "team/project").await;
    assert_eq!(run["outcome"], "unchanged", "{run}");
    for target in [&webhook, &slack, &email] {
        let list = settled(&hub, target, 2).await;
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(list[0]["event"], "sync_recovered");
        assert_eq!(list[0]["status"], "delivered");
        assert!(list[0]["error_code"].is_null());
    }
    sync(&hub, "team/project").await;
    sync(&hub, "team/project").await;
    let hooks = posts_to(&receiver, "/hooks/mirrorhub");
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    verify_signature(&hooks[1]);
    let body = hooks[1].json();
    assert_eq!(body["event"], "sync_recovered");
    assert!(body["error"].is_null() && body["episode_started_at"].is_string());
    assert_eq!(
        posts_to(&receiver, &format!("/services/{SLACK_TOKEN}")).len(),
        2
    );
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2);
    assert_eq!(
        mails[1].header("subject").as_deref(),
        Some("[mirrorhub] team/project: sync recovered")
    );
    for target in [&webhook, &slack, &email] {
        assert_eq!(deliveries(&hub, target).await.len(), 2);
    }

    // The Slack URL's token and the webhook secret are never logged.
    let log = hub.log_text();
    assert!(!log.contains(SLACK_TOKEN) && !log.contains(WEBHOOK_SECRET));
}

async fn a_dead_target_is_retried_and_recorded_while_syncs_go_on(db: TestDb) {
    let upstream = Upstream::start(&["project"]).await;
    // Nothing listens there: every attempt is refused at once.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    // This one takes the request and never answers in time.
    let stalled = ForgeApiServer::start().await;
    stalled.on(
        "POST",
        "/",
        Reply::empty(200).delayed(Duration::from_secs(120)),
    );
    let hub = Hub::start(
        &db,
        &[
            ("MIRRORHUB_PAUSE_AFTER", "100"),
            ("MIRRORHUB_NOTIFY_RETRY_BASE", "1s"),
            ("MIRRORHUB_NOTIFY_GIVE_UP_AFTER", "4s"),
            ("MIRRORHUB_NOTIFY_TIMEOUT", "1s"),
        ],
    )
    .await;
    let refused = create_target(
        &hub,
        json!({"kind": "webhook", "url": format!("http://{dead}/hook")}),
    )
    .await;
    let slow = create_target(
        &hub,
        json!({"kind": "slack", "url": format!("{}/slow", stalled.url())}),
    )
    .await;
    mirror(&hub, &upstream.url("project"), "team", "project").await;

    upstream.refuse_logins();
    let run = sync(&hub, "team/project").await;
    assert_eq!(run["outcome"], "failed");
    // Retried while it fails, each attempt recorded with its answer; meanwhile syncs run.
    let list = wait_deliveries(&hub, &refused, "a second attempt", |l| {
        l.first().is_some_and(|d| d["attempts"].as_i64() >= Some(2))
    })
    .await;
    let d = &list[0];
    assert_eq!(d["event"], "sync_failed");
    assert!(d["last_status"].is_null(), "{d}");
    assert!(
        d["last_answer"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{d}"
    );
    for _ in 0..2 {
        let run = sync(&hub, "team/project").await;
        assert_eq!(run["outcome"], "failed", "{run}");
    }
    // Given up once the retry window has passed.
    let list = wait_deliveries(&hub, &refused, "given up", |l| {
        l.first().is_some_and(|d| d["status"] == "failed")
    })
    .await;
    assert_eq!(list.len(), 1, "still one episode: {list:?}");
    let answer = list[0]["last_answer"].as_str().unwrap();
    assert!(answer.contains("given up after"), "{answer}");
    assert!(list[0]["next_attempt_at"].is_null());

    // The stalled target costs its sender the timeout, no more.
    let list = wait_deliveries(&hub, &slow, "a timed-out attempt", |l| {
        l.first().is_some_and(|d| d["last_answer"].is_string())
    })
    .await;
    let answer = list[0]["last_answer"].as_str().unwrap();
    assert!(answer.contains("timeout: no answer within 1s"), "{answer}");
    assert!(!posts_to(&stalled, "/slow").is_empty());

    // The mirror recovers regardless.
    upstream.accept_logins();
    let run = sync(&hub, "team/project").await;
    assert_eq!(run["outcome"], "unchanged", "{run}");
    wait_deliveries(&hub, &refused, "the recovery queued", |l| {
        l.first().is_some_and(|d| d["event"] == "sync_recovered")
    })
    .await;
}

async fn a_stale_mirror_is_told_once(db: TestDb) {
    let upstream = Upstream::start(&["project"]).await;
    let receiver = receiver().await;
    let hub = Hub::start(
        &db,
        &[
            ("MIRRORHUB_MIN_SYNC_INTERVAL", "1s"),
            ("MIRRORHUB_STALE_GRACE", "1s"),
            ("MIRRORHUB_PAUSE_AFTER", "1"),
        ],
    )
    .await;
    let stale_only = create_target(
        &hub,
        json!({"kind": "webhook", "url": format!("{}/stale", receiver.url()), "events": ["stale"]}),
    )
    .await;
    assert_eq!(stale_only["events"], json!(["stale"]));
    let all = create_target(
        &hub,
        json!({"kind": "webhook", "url": format!("{}/all", receiver.url())}),
    )
    .await;
    assert!(all["events"].is_null());
    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            json!({"url": upstream.url("project"), "owner": "team", "name": "project",
                   "mode": "mirror", "sync_interval": "2s"}),
        )
        .await;
    assert_eq!(status, 202, "{repo}");
    hub.wait_for_run("team/project", None).await;

    // The first failure pauses it (MIRRORHUB_PAUSE_AFTER=1): nothing syncs it any more, and it
    // goes stale after its interval and the grace.
    upstream.refuse_logins();
    let run = sync(&hub, "team/project").await;
    assert_eq!(run["outcome"], "failed");
    let stale = wait_posts(&hub, &receiver, "/stale", 1).await;
    let body = stale[0].json();
    assert_eq!(body["event"], "stale");
    assert_eq!(body["error"]["code"], "upstream_auth_failed", "{body}");
    // The target of every event got the pause (the most specific event of the first
    // failure) and the staleness.
    let list = wait_deliveries(&hub, &all, "paused and stale", |l| l.len() >= 2).await;
    let events: Vec<&str> = list
        .iter()
        .rev()
        .map(|d| d["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["paused", "stale"]);

    // A person syncs it (which resumes it): one recovery, and staleness was told once.
    upstream.accept_logins();
    let run = sync(&hub, "team/project").await;
    assert_eq!(run["outcome"], "unchanged", "{run}");
    let list = wait_deliveries(&hub, &all, "the recovery", |l| l.len() >= 3).await;
    assert_eq!(list[0]["event"], "sync_recovered");
    settled(&hub, &all, 3).await;
    assert_eq!(posts_to(&receiver, "/stale").len(), 1);
    assert_eq!(deliveries(&hub, &stale_only).await.len(), 1);
}

async fn targets_are_scoped_checked_and_guarded(db: TestDb) {
    let upstream = Upstream::start(&["one", "two"]).await;
    let receiver = receiver().await;
    let hub = Hub::start(&db, &[("MIRRORHUB_PAUSE_AFTER", "100")]).await;
    mirror(&hub, &upstream.url("one"), "alpha", "one").await;
    mirror(&hub, &upstream.url("two"), "beta", "two").await;

    // Scoped to alpha: nothing of beta's repositories.
    let alpha = create_target(
        &hub,
        json!({"kind": "webhook", "url": format!("{}/alpha", receiver.url()),
               "owner": "alpha", "secret": WEBHOOK_SECRET}),
    )
    .await;
    assert_eq!(alpha["owner"], "alpha");
    let everyone = create_target(
        &hub,
        json!({"kind": "webhook", "url": format!("{}/all", receiver.url()),
               "events": ["sync_failed"]}),
    )
    .await;
    // No secret given: one is generated and shown this once.
    let generated = everyone["secret"].as_str().unwrap().to_owned();
    assert_eq!(generated.len(), 64, "{everyone}");
    let (_, shown) = hub
        .get(&format!("/api/v1/notifications/targets/{}", everyone["id"]))
        .await;
    assert!(
        shown.get("secret").is_none() && shown["has_secret"] == true,
        "{shown}"
    );

    upstream.refuse_logins();
    for repo in ["alpha/one", "beta/two", "alpha/one", "beta/two"] {
        assert_eq!(sync(&hub, repo).await["outcome"], "failed");
    }
    upstream.accept_logins();
    for repo in ["alpha/one", "beta/two"] {
        assert_eq!(sync(&hub, repo).await["outcome"], "unchanged");
    }
    let list = settled(&hub, &alpha, 2).await;
    let seen: Vec<(String, String)> = list
        .iter()
        .map(|d| {
            (
                d["repository"].as_str().unwrap().to_owned(),
                d["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("alpha/one".to_owned(), "sync_recovered".to_owned()),
            ("alpha/one".to_owned(), "sync_failed".to_owned())
        ]
    );
    // Subscribed to sync_failed only: one per repository, no recoveries.
    let list = settled(&hub, &everyone, 2).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|d| d["event"] == "sync_failed"));
    let posts = wait_posts(&hub, &receiver, "/alpha", 2).await;
    assert!(posts
        .iter()
        .all(|p| p.json()["repository"]["owner"] == "alpha"));

    // The test button: a signed `test` event, also to a target filtered to other events.
    let (status, queued) = hub
        .post(
            &format!("/api/v1/notifications/targets/{}/test", everyone["id"]),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(
        (queued["event"].as_str(), queued["status"].as_str()),
        (Some("test"), Some("pending"))
    );
    let list = wait_deliveries(&hub, &everyone, "the test delivered", |l| {
        l.first()
            .is_some_and(|d| d["event"] == "test" && d["status"] == "delivered")
    })
    .await;
    assert_eq!(list[0]["last_status"], 200);
    let tests: Vec<RecordedRequest> = posts_to(&receiver, "/all")
        .into_iter()
        .filter(|p| p.header("x-mirrorhub-event") == Some("test"))
        .collect();
    assert_eq!(tests.len(), 1);
    let mut mac = Hmac::<Sha256>::new_from_slice(generated.as_bytes()).unwrap();
    mac.update(&tests[0].body);
    assert_eq!(
        tests[0].header("x-mirrorhub-signature-256").unwrap(),
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );
    assert!(tests[0].json()["repository"].is_null());

    // Bad input: field-level errors, nothing recorded.
    let bad: &[(Value, u16, &str, &str)] = &[
        (
            json!({"kind": "webhook", "url": "http://169.254.169.254/latest"}),
            422,
            "url_not_allowed",
            "url",
        ),
        (
            json!({"kind": "slack", "url": "http://10.1.2.3/hook"}),
            422,
            "url_not_allowed",
            "url",
        ),
        (
            json!({"kind": "pager", "url": "https://example.org/"}),
            400,
            "invalid_request",
            "kind",
        ),
        (json!({"kind": "webhook"}), 400, "invalid_request", "url"),
        (
            json!({"kind": "webhook", "url": "ftp://example.org/x"}),
            400,
            "unsupported_scheme",
            "url",
        ),
        (
            json!({"kind": "webhook", "url": "not a url"}),
            400,
            "invalid_url",
            "url",
        ),
        (
            json!({"kind": "webhook", "url": format!("{}/x", receiver.url()), "events": ["sync_broke"]}),
            400,
            "invalid_request",
            "events",
        ),
        (
            json!({"kind": "email", "to": "ops@example.org"}),
            400,
            "invalid_request",
            "kind",
        ),
        (
            json!({"kind": "slack", "url": format!("{}/x", receiver.url()), "secret": "s"}),
            400,
            "invalid_request",
            "secret",
        ),
        (
            json!({"kind": "webhook", "url": format!("{}/x", receiver.url()), "owner": "nobody"}),
            404,
            "account_not_found",
            "owner",
        ),
    ];
    for (body, status, code, field) in bad {
        let (got, answer) = hub
            .post("/api/v1/notifications/targets", body.clone())
            .await;
        assert_eq!(got, *status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], *code, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], *field, "{body}: {answer}");
    }
    let (_, listed) = hub.get("/api/v1/notifications/targets").await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    // Who may manage what: a user manages targets of their own name, not the operator's.
    let (status, _) = hub.post("/api/v1/users", json!({"username": "ana"})).await;
    assert_eq!(status, 201);
    let (status, made) = hub
        .post(
            "/api/v1/users/ana/tokens",
            json!({"name": "cli", "scopes": ["admin"]}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let ana = made["token"].as_str().unwrap().to_owned();
    let hub_ref = &hub;
    let as_ana = move |method: Method, path: String, body: Option<Value>| {
        let ana = ana.clone();
        async move {
            hub_ref
                .call_with_token(method, &path, body, Some(&ana))
                .await
        }
    };
    let hook = json!({"kind": "webhook", "url": format!("{}/ana", receiver.url())});
    let (status, answer) = as_ana(
        Method::POST,
        "/api/v1/notifications/targets".into(),
        Some(hook.clone()),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{answer}"
    );
    let mut for_alpha = hook.clone();
    for_alpha["owner"] = json!("alpha");
    let (status, _) = as_ana(
        Method::POST,
        "/api/v1/notifications/targets".into(),
        Some(for_alpha),
    )
    .await;
    assert_eq!(status, 403);
    let mut own = hook.clone();
    own["owner"] = json!("ana");
    let (status, mine) = as_ana(
        Method::POST,
        "/api/v1/notifications/targets".into(),
        Some(own),
    )
    .await;
    assert_eq!(status, 201, "{mine}");
    let (_, listed) = as_ana(Method::GET, "/api/v1/notifications/targets".into(), None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], mine["id"]);
    let (status, answer) = as_ana(
        Method::GET,
        format!("/api/v1/notifications/targets/{}", alpha["id"]),
        None,
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("notification_target_not_found"))
    );
    let (status, _) = as_ana(
        Method::GET,
        format!("/api/v1/notifications/targets/{}/deliveries", alpha["id"]),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = hub
        .call_with_token(Method::GET, "/api/v1/notifications/targets", None, None)
        .await;
    assert_eq!(status, 401);

    // Change and delete.
    let (status, changed) = as_ana(
        Method::PATCH,
        format!("/api/v1/notifications/targets/{}", mine["id"]),
        Some(json!({"enabled": false, "events": ["paused", "stale"], "description": "ana's"})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            changed["enabled"].as_bool(),
            changed["description"].as_str()
        ),
        (Some(false), Some("ana's"))
    );
    assert_eq!(changed["events"], json!(["paused", "stale"]));
    let (status, answer) = as_ana(
        Method::PATCH,
        format!("/api/v1/notifications/targets/{}", mine["id"]),
        Some(json!({"url": "http://127.0.0.2:1/x"})),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("url_not_allowed")),
        "{answer}"
    );
    let (status, _) = as_ana(
        Method::DELETE,
        format!("/api/v1/notifications/targets/{}", mine["id"]),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = hub
        .get(&format!("/api/v1/notifications/targets/{}", mine["id"]))
        .await;
    assert_eq!(status, 404);

    // Secrets are sealed at rest.
    match db.url() {
        None => {
            for file in ["mirrorhub.db", "mirrorhub.db-wal"] {
                let bytes = std::fs::read(hub.data_dir.join(file)).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains(WEBHOOK_SECRET) && !text.contains(&generated),
                    "{file}"
                );
            }
        }
        Some(_) => {
            let found = db.query(&format!(
                "SELECT count(*) FROM notification_targets WHERE position(convert_to('{WEBHOOK_SECRET}', 'UTF8') in secret) > 0 \
                 OR position(convert_to('/alpha', 'UTF8') in url) > 0"
            ));
            assert_eq!(found.trim(), "0");
        }
    }
}

async fn the_cli_adds_tests_and_removes_targets(db: TestDb) {
    let hub = Hub::start(&db, &[]).await;
    let receiver = receiver().await;
    let cli = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorhub"))
            .args(["notify"])
            .args(args)
            .env("MIRRORHUB_URL", &hub.base)
            .env("MIRRORHUB_TOKEN", common::TOKEN)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };

    // A Slack URL is a credential: taken from standard input only, never shown back.
    let slack_url = format!("{}/services/{SLACK_TOKEN}", receiver.url());
    let (ok, _, err) = cli(&["create", "slack", "--url", &slack_url], None);
    assert!(!ok && err.contains("standard input"), "{err}");
    let (ok, out, err) = cli(
        &[
            "create",
            "slack",
            "--description",
            "#mirrors",
            "--event",
            "sync_failed",
        ],
        Some(&format!("{slack_url}\n")),
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("slack") && out.contains("sync_failed"),
        "{out}"
    );
    assert!(!out.contains(SLACK_TOKEN), "{out}");
    let (ok, out, err) = cli(&["list", "--json"], None);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert!(!out.contains(SLACK_TOKEN), "{out}");
    let id = listed[0]["id"].to_string();

    // The test button from the command line reaches the receiver, and its answer is listed.
    let (ok, _, err) = cli(&["test", &id], None);
    assert!(ok, "{err}");
    let path = format!("/services/{SLACK_TOKEN}");
    let posts = wait_posts(&hub, &receiver, &path, 1).await;
    assert!(
        posts[0].json()["text"].as_str().unwrap().contains("test"),
        "{posts:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out, err) = cli(&["deliveries", &id], None);
        assert!(ok, "{err}");
        if out.contains("delivered") {
            assert!(out.contains("test"), "{out}");
            break;
        }
        assert!(Instant::now() < deadline, "never delivered: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Off, then gone; an unknown id is a clear error.
    let (ok, out, err) = cli(&["enable", &id, "--off"], None);
    assert!(ok && out.contains("disabled"), "{out}{err}");
    let (ok, _, err) = cli(&["delete", &id], None);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["delete", &id], None);
    assert!(
        !ok && err.contains("notification_target_not_found"),
        "{err}"
    );
    let (ok, _, err) = cli(&["create", "email"], None);
    assert!(!ok && err.contains("--to"), "{err}");
    assert!(!hub.log_text().contains(SLACK_TOKEN));
}
