//! Mirror sets end to end: the real binary against the forges' listing stand-in
//! (`NamespaceServer`, each forge's documented shapes and pagination), whose clone URLs are
//! forwarded to a real `git http-backend` holding a tiny real repository per path.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{Db, Hub, TestDb};
use hmac::{Hmac, Mac};
use mirrorhub_testkit::{
    tiny_repos, Fault, HttpGitServer, NamespaceForge, NamespaceServer, RepoSpec,
};
use serde_json::{json, Value};
use sha2::Sha256;

const FORGE_TOKEN: &str = "forge-token-7Hq2";
const HOOK_SECRET: &str = "org-hook-secret";

/// A forge stand-in for `forge` and the git server behind it, with the repositories at
/// `paths` (tiny real ones). Git wants the forge token as the password.
struct Forge {
    api: NamespaceServer,
    /// Kept alive: the API forwards git traffic to it.
    _git: HttpGitServer,
    root: tempfile::TempDir,
}

impl Forge {
    async fn start(forge: NamespaceForge, username: &str) -> Forge {
        let root = tempfile::tempdir().unwrap();
        let git = HttpGitServer::start(
            root.path(),
            Some((username.to_owned(), FORGE_TOKEN.to_owned())),
        )
        .await;
        let api = NamespaceServer::start(forge).await;
        api.set_token(FORGE_TOKEN);
        api.forward_git_to(&git.url(""));
        Forge {
            api,
            _git: git,
            root,
        }
    }

    /// Adds repositories to the listing and to the git server.
    fn add(&self, namespace: &str, specs: Vec<RepoSpec>) {
        let paths: Vec<String> = specs
            .iter()
            .map(|s| format!("{namespace}/{}", s.name))
            .collect();
        tiny_repos(self.root.path(), &paths);
        for spec in specs {
            self.api.add_repo(namespace, spec);
        }
    }

    /// Serves `path` from the git server too (after a rename upstream).
    fn serve(&self, path: &str) {
        tiny_repos(self.root.path(), &[path]);
    }
}

async fn start_hub(db: &TestDb, extra: &[(&str, &str)]) -> Hub {
    let mut env = vec![
        ("MIRRORHUB_GITHUB_WEBHOOK_SECRET", HOOK_SECRET),
        ("MIRRORHUB_GITLAB_WEBHOOK_TOKEN", HOOK_SECRET),
        ("MIRRORHUB_GITEA_WEBHOOK_SECRET", HOOK_SECRET),
        ("MIRRORHUB_WORKERS", "4"),
        ("MIRRORHUB_PER_HOST_SYNCS", "4"),
    ];
    env.extend_from_slice(extra);
    Hub::start(db, &env).await
}

/// Polls `GET path` until `done` says so; panics with the last answer and the hub's log after
/// `within`.
async fn wait_for(hub: &Hub, path: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = hub.get(path).await;
        if status == 200 && done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} never became as expected; last answer {status} {body}\nlog:\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create_set(hub: &Hub, body: Value) -> Value {
    let (status, set) = hub.post("/api/v1/mirror-sets", body).await;
    assert_eq!(status, 202, "{set}\n{}", hub.log_text());
    set
}

/// The set's repositories by path.
async fn members(hub: &Hub, id: i64) -> Vec<Value> {
    let (status, repos) = hub.get(&format!("/api/v1/mirror-sets/{id}/repos")).await;
    assert_eq!(status, 200, "{repos}");
    repos.as_array().unwrap().clone()
}

fn member<'a>(members: &'a [Value], path: &str) -> &'a Value {
    members
        .iter()
        .find(|m| m["path"] == path)
        .unwrap_or_else(|| panic!("no member {path} in {members:?}"))
}

/// A GitHub organization event as the forge sends it to `/hooks/github`, signed.
async fn github_event(hub: &Hub, event: &str, body: Value, delivery: &str) -> u16 {
    let bytes = body.to_string().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(&bytes);
    let sig = hex::encode(mac.finalize().into_bytes());
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("x-github-event".to_owned(), event.to_owned()),
        ("x-github-delivery".to_owned(), delivery.to_owned()),
        ("user-agent".to_owned(), "GitHub-Hookshot/abc123".to_owned()),
        ("x-hub-signature-256".to_owned(), format!("sha256={sig}")),
    ];
    hub.post_raw("/hooks/github", &headers, &bytes).await.0
}

async fn an_organization_is_mirrored_page_by_page_with_its_filters(db: TestDb) {
    let forge = Forge::start(NamespaceForge::GitHub, "x-access-token").await;
    forge.api.set_page_size(40);
    let mut specs: Vec<RepoSpec> = (0..117)
        .map(|i| RepoSpec::new(&format!("repo-{i:03}")))
        .collect();
    specs.push(
        RepoSpec::new("secret-plans")
            .private()
            .description("internal"),
    );
    specs.push(RepoSpec::new("sandbox-1"));
    specs.push(RepoSpec::new("a-fork").fork());
    specs.push(RepoSpec::new("old-stuff").archived());
    forge.add("acme", specs);
    let hub = start_hub(&db, &[]).await;

    // A wrong token, an unknown namespace and a bad field are refused before anything is
    // recorded, each naming its field.
    let base = json!({"forge": "github", "api_url": forge.api.api_url(), "namespace": "acme",
                      "owner": "mirrors", "token": FORGE_TOKEN, "exclude": ["sandbox-*"]});
    let mut wrong = base.clone();
    wrong["token"] = json!("not-the-token");
    let (status, body) = hub.post("/api/v1/mirror-sets", wrong).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "upstream_auth_failed");
    assert_eq!(body["error"]["field"], "token");
    assert!(!body.to_string().contains("not-the-token"));
    let mut missing = base.clone();
    missing["namespace"] = json!("nobody-here");
    let (status, body) = hub.post("/api/v1/mirror-sets", missing).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("upstream_not_found")),
        "{body}"
    );
    for (field, value) in [
        ("forge", json!("sourceforge")),
        ("namespace", json!("acme/../x")),
        ("visibility", json!("hidden")),
        ("list_interval", json!("1m")),
        ("api_url", json!("ftp://example.org")),
    ] {
        let mut bad = base.clone();
        bad[field] = value;
        let (status, body) = hub.post("/api/v1/mirror-sets", bad).await;
        assert!(status == 400 || status == 422, "{field}: {status} {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    assert_eq!(hub.get("/api/v1/mirror-sets").await.1, json!([]));

    let set = create_set(&hub, base.clone()).await;
    let id = set["id"].as_i64().unwrap();
    assert_eq!(set["has_token"], true);
    assert!(!set.to_string().contains(FORGE_TOKEN));
    // One set per namespace and owner.
    let (status, body) = hub.post("/api/v1/mirror-sets", base).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("mirror_set_exists")),
        "{body}"
    );

    let done = wait_for(
        &hub,
        &format!("/api/v1/mirror-sets/{id}"),
        Duration::from_secs(240),
        |s| s["counts"]["mirrored"] == 118,
    )
    .await;
    assert_eq!(
        done["counts"],
        json!({"listed": 121, "mirrored": 118, "cloning": 0, "failed": 0, "skipped": 3, "gone": 0})
    );
    assert!(done["last_error"].is_null() && !done["last_listed_at"].is_null());
    // Every page was read, following GitHub's Link headers.
    let pages = forge
        .api
        .recorded()
        .iter()
        .filter(|r| r.path_only() == "/orgs/acme/repos")
        .count();
    assert!(
        pages >= 4,
        "three pages at creation's check and after: {pages}"
    );

    let m = members(&hub, id).await;
    assert_eq!(member(&m, "acme/sandbox-1")["state"], "skipped");
    assert!(member(&m, "acme/sandbox-1")["detail"]
        .as_str()
        .unwrap()
        .contains("sandbox-*"));
    assert_eq!(member(&m, "acme/a-fork")["state"], "skipped");
    assert_eq!(member(&m, "acme/old-stuff")["state"], "skipped");
    assert_eq!(
        member(&m, "acme/repo-042")["repository"],
        "mirrors/repo-042"
    );
    let (_, repo) = hub.get("/api/v1/repos/mirrors/repo-042").await;
    assert_eq!(repo["upstream_url"], forge.api.clone_url("acme/repo-042"));
    assert_eq!(
        (repo["visibility"].as_str(), repo["status"].as_str()),
        (Some("public"), Some("synced"))
    );
    let (_, private) = hub.get("/api/v1/repos/mirrors/secret-plans").await;
    assert_eq!(private["visibility"], "private");
    assert_eq!(private["description"], "internal");

    // Listing an unchanged namespace again changes nothing.
    let before = hub.get("/api/v1/repos").await.1.as_array().unwrap().len();
    let listed = done["last_listed_at"].clone();
    let (status, _) = hub
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/mirror-sets/{id}/sync"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    wait_for(
        &hub,
        &format!("/api/v1/mirror-sets/{id}"),
        Duration::from_secs(60),
        |s| s["last_listed_at"] != listed && !s["listing"].as_bool().unwrap_or(true),
    )
    .await;
    assert_eq!(
        hub.get("/api/v1/repos").await.1.as_array().unwrap().len(),
        before
    );

    // Deleting the set keeps its mirrors.
    let (status, _) = hub
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/mirror-sets/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(hub.get(&format!("/api/v1/mirror-sets/{id}")).await.0, 404);
    assert_eq!(hub.get("/api/v1/repos/mirrors/repo-042").await.0, 200);
}

async fn new_renamed_archived_and_deleted_repositories_are_followed(db: TestDb) {
    let forge = Forge::start(NamespaceForge::GitHub, "x-access-token").await;
    forge.add(
        "acme",
        vec![
            RepoSpec::new("api"),
            RepoSpec::new("web"),
            RepoSpec::new("docs"),
        ],
    );
    let hub = start_hub(&db, &[]).await;
    let set = create_set(
        &hub,
        json!({"forge": "github", "api_url": forge.api.api_url(), "namespace": "acme",
               "owner": "acme", "token": FORGE_TOKEN}),
    )
    .await;
    let id = set["id"].as_i64().unwrap();
    let path = format!("/api/v1/mirror-sets/{id}");
    wait_for(&hub, &path, Duration::from_secs(120), |s| {
        s["counts"]["mirrored"] == 3
    })
    .await;
    let (_, web) = hub.get("/api/v1/repos/acme/web").await;

    // A repository created upstream: the organization's `repository` event lists the set at
    // once (the next scheduled listing is an hour away).
    forge.add("acme", vec![RepoSpec::new("brand-new")]);
    let created = json!({"action": "created", "repository": {"id": 9, "name": "brand-new",
                         "full_name": "acme/brand-new"}, "organization": {"login": "acme"}});
    assert_eq!(github_event(&hub, "repository", created, "d-1").await, 202);
    wait_for(
        &hub,
        "/api/v1/repos/acme/brand-new",
        Duration::from_secs(60),
        |r| r["status"] == "synced",
    )
    .await;

    // Renamed upstream: the same mirror follows the new address and keeps its name and history.
    forge.api.rename("acme/web", "website");
    forge.serve("acme/website");
    // Archived and deleted upstream: kept, paused, never deleted.
    forge.api.archive("acme/docs");
    forge.api.remove("acme/api");
    let renamed = json!({"action": "renamed", "changes": {"repository": {"name": {"from": "web"}}},
                         "repository": {"full_name": "acme/website"}});
    assert_eq!(github_event(&hub, "repository", renamed, "d-2").await, 202);
    wait_for(&hub, &path, Duration::from_secs(60), |s| {
        s["counts"]["gone"] == 2
    })
    .await;
    let (_, moved) = hub.get("/api/v1/repos/acme/web").await;
    assert_eq!(moved["upstream_url"], forge.api.clone_url("acme/website"));
    assert_eq!(
        moved["created_at"], web["created_at"],
        "the same repository"
    );
    let m = members(&hub, id).await;
    assert_eq!(member(&m, "acme/website")["repository"], "acme/web");
    assert_eq!(member(&m, "acme/docs")["state"], "archived");
    assert_eq!(member(&m, "acme/api")["state"], "gone");
    let (status, gone) = hub.get("/api/v1/repos/acme/api").await;
    assert_eq!(status, 200, "never deleted");
    assert!(
        gone["paused_reason"]
            .as_str()
            .unwrap()
            .starts_with("upstream_gone:"),
        "{gone}"
    );
    assert_eq!(gone["status"], "paused");
    let (_, archived) = hub.get("/api/v1/repos/acme/docs").await;
    assert!(archived["paused_reason"]
        .as_str()
        .unwrap()
        .starts_with("upstream_archived:"));
    // A renamed mirror still syncs from its new address.
    let before = hub.latest_run_id("acme/web").await;
    hub.call(reqwest::Method::POST, "/api/v1/repos/acme/web/sync", None)
        .await;
    let (_, run) = hub.wait_for_run("acme/web", before).await;
    assert!(run["error"].is_null(), "{run}");

    // The forge fails: recorded on the set, retried, and no mirror is touched.
    forge.api.fail_next(1, Fault::Unavailable);
    let listed = hub.get(&path).await.1["last_listed_at"].clone();
    hub.call(reqwest::Method::POST, &format!("{path}/sync"), None)
        .await;
    let failed = wait_for(&hub, &path, Duration::from_secs(60), |s| {
        !s["last_error"].is_null()
    })
    .await;
    assert_eq!(failed["last_error"]["code"], "forge_api_failed", "{failed}");
    assert_eq!(failed["last_listed_at"], listed);
    let (_, still) = hub.get("/api/v1/repos/acme/web").await;
    assert!(still["paused_reason"].is_null(), "{still}");
    assert_eq!(failed["counts"]["mirrored"], 2);
    // The next listing (asked for now) succeeds and clears the error.
    hub.call(reqwest::Method::POST, &format!("{path}/sync"), None)
        .await;
    wait_for(&hub, &path, Duration::from_secs(60), |s| {
        s["last_error"].is_null()
    })
    .await;

    // A listing with an unreadable entry is incomplete: what it does not name may be that
    // entry, so nothing is marked gone by it. Once the entry is gone, the listing is whole.
    forge.api.add_repo("acme", RepoSpec::new("not a name"));
    forge.api.remove("acme/brand-new");
    let listed = hub.get(&path).await.1["last_listed_at"].clone();
    hub.call(reqwest::Method::POST, &format!("{path}/sync"), None)
        .await;
    wait_for(&hub, &path, Duration::from_secs(60), |s| {
        s["last_listed_at"] != listed
    })
    .await;
    assert_eq!(
        member(&members(&hub, id).await, "acme/brand-new")["state"],
        "mirrored"
    );
    let (_, kept) = hub.get("/api/v1/repos/acme/brand-new").await;
    assert!(kept["paused_reason"].is_null(), "{kept}");
    forge.api.remove("acme/not a name");
    hub.call(reqwest::Method::POST, &format!("{path}/sync"), None)
        .await;
    wait_for(&hub, &path, Duration::from_secs(60), |s| {
        s["counts"]["gone"] == 3
    })
    .await;
    assert!(
        !hub.log_text().contains(FORGE_TOKEN),
        "the token never reaches the log"
    );
}

async fn gitlab_subgroups_gitea_and_bitbucket_are_listed(db: TestDb) {
    let hub = start_hub(&db, &[]).await;

    // GitLab: a group with subgroups; two projects with one name collide on the hub.
    let gitlab = Forge::start(NamespaceForge::GitLab, "oauth2").await;
    gitlab.api.set_page_size(2);
    gitlab.add("acme", vec![RepoSpec::new("tools")]);
    gitlab.add(
        "acme/platform",
        vec![RepoSpec::new("api"), RepoSpec::new("db")],
    );
    gitlab.add("acme/mobile", vec![RepoSpec::new("api")]);
    let set = create_set(
        &hub,
        json!({"forge": "gitlab", "api_url": gitlab.api.api_url(), "namespace": "acme",
               "owner": "gl", "token": FORGE_TOKEN}),
    )
    .await;
    let gl = set["id"].as_i64().unwrap();
    let done = wait_for(
        &hub,
        &format!("/api/v1/mirror-sets/{gl}"),
        Duration::from_secs(120),
        |s| s["counts"]["mirrored"] == 3 && s["counts"]["failed"] == 1,
    )
    .await;
    assert_eq!(done["counts"]["listed"], 4);
    let m = members(&hub, gl).await;
    let collided: Vec<&Value> = m.iter().filter(|r| r["state"] == "collision").collect();
    assert_eq!(collided.len(), 1, "{m:?}");
    assert!(collided[0]["detail"].as_str().unwrap().contains("gl/api"));
    assert_eq!(hub.get("/api/v1/repos/gl/db").await.1["status"], "synced");

    // Gitea (an API URL is required) and Bitbucket.
    let (status, body) = hub
        .post(
            "/api/v1/mirror-sets",
            json!({"forge": "gitea", "namespace": "acme", "owner": "gt", "token": FORGE_TOKEN}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("api_url")),
        "{body}"
    );
    for (kind, word, user, owner) in [
        (NamespaceForge::Gitea, "gitea", "oauth2", "gt"),
        (NamespaceForge::Bitbucket, "bitbucket", "x-token-auth", "bb"),
    ] {
        let forge = Forge::start(kind, user).await;
        forge.api.set_page_size(2);
        forge.add(
            "acme",
            vec![
                RepoSpec::new("one"),
                RepoSpec::new("two"),
                RepoSpec::new("three"),
            ],
        );
        let set = create_set(
            &hub,
            json!({"forge": word, "api_url": forge.api.api_url(), "namespace": "acme",
                   "owner": owner, "token": FORGE_TOKEN}),
        )
        .await;
        let id = set["id"].as_i64().unwrap();
        wait_for(
            &hub,
            &format!("/api/v1/mirror-sets/{id}"),
            Duration::from_secs(120),
            |s| s["counts"]["mirrored"] == 3,
        )
        .await;
        assert_eq!(
            hub.get(&format!("/api/v1/repos/{owner}/three")).await.1["status"],
            "synced",
            "{word}"
        );
    }
}

async fn installing_the_github_app_mirrors_what_it_was_given(db: TestDb) {
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let private_pem = key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string();
    let public_pem = key.to_public_key().to_pkcs1_pem(LineEnding::LF).unwrap();
    // Installation tokens change; the git server here takes any caller.
    let root = tempfile::tempdir().unwrap();
    let git = HttpGitServer::start(root.path(), None).await;
    let api = NamespaceServer::start(NamespaceForge::GitHub).await;
    api.forward_git_to(&git.url(""));
    api.set_github_app(4242, &public_pem);
    api.add_installation(77, &["acme"]);
    tiny_repos(root.path(), &["acme/app-one", "acme/app-two"]);
    api.add_repo("acme", RepoSpec::new("app-one").private());
    api.add_repo("acme", RepoSpec::new("app-two"));
    let hub = start_hub(
        &db,
        &[
            ("MIRRORHUB_GITHUB_APP_ID", "4242"),
            ("MIRRORHUB_GITHUB_APP_PRIVATE_KEY", &private_pem),
            ("MIRRORHUB_GITHUB_API_URL", &api.api_url()),
        ],
    )
    .await;

    let installed = json!({"action": "created",
        "installation": {"id": 77, "account": {"login": "acme", "type": "Organization"}},
        "repositories": [{"full_name": "acme/app-one"}, {"full_name": "acme/app-two"}]});
    assert_eq!(
        github_event(&hub, "installation", installed, "i-1").await,
        202
    );
    let sets = wait_for(&hub, "/api/v1/mirror-sets", Duration::from_secs(60), |s| {
        s[0]["counts"]["mirrored"] == 2
    })
    .await;
    assert_eq!(sets[0]["installation_id"], 77);
    assert_eq!(sets[0]["has_token"], false);
    let (_, one) = hub.get("/api/v1/repos/acme/app-one").await;
    assert_eq!(
        (one["visibility"].as_str(), one["status"].as_str()),
        (Some("private"), Some("synced"))
    );
    assert_eq!(
        one["has_credentials"], false,
        "installation tokens are made per run, never stored"
    );
    assert!(!api.installation_tokens().is_empty());
    // The listing read the installation's repositories with its token.
    assert!(api
        .recorded()
        .iter()
        .any(|r| r.path_only() == "/installation/repositories"));

    // A repository added to the installation is mirrored on the event.
    tiny_repos(root.path(), &["acme/app-three"]);
    api.add_repo("acme", RepoSpec::new("app-three"));
    let added = json!({"action": "added",
        "installation": {"id": 77, "account": {"login": "acme"}},
        "repositories_added": [{"full_name": "acme/app-three"}]});
    assert_eq!(
        github_event(&hub, "installation_repositories", added, "i-2").await,
        202
    );
    wait_for(
        &hub,
        "/api/v1/repos/acme/app-three",
        Duration::from_secs(60),
        |r| r["status"] == "synced",
    )
    .await;
    // A sync of an App mirror clones with a fresh installation token.
    let before = hub.latest_run_id("acme/app-one").await;
    hub.call(
        reqwest::Method::POST,
        "/api/v1/repos/acme/app-one/sync",
        None,
    )
    .await;
    let (_, run) = hub.wait_for_run("acme/app-one", before).await;
    assert!(run["error"].is_null(), "{run}");
    assert_eq!(
        hub.get("/api/v1/mirror-sets")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn a_listing_cut_short_by_shutdown_is_taken_up_at_once_by_the_next_start(db: TestDb) {
    let forge = Forge::start(NamespaceForge::GitHub, "x-access-token").await;
    forge.add("acme", vec![RepoSpec::new("one"), RepoSpec::new("two")]);
    let mut hub = start_hub(&db, &[]).await;
    let set = create_set(
        &hub,
        json!({"forge": "github", "api_url": forge.api.api_url(), "namespace": "acme",
               "owner": "mirrors", "token": FORGE_TOKEN}),
    )
    .await;
    let path = format!("/api/v1/mirror-sets/{}", set["id"]);
    wait_for(&hub, &path, Duration::from_secs(60), |s| {
        s["counts"]["mirrored"] == 2 && s["listing"] == false
    })
    .await;

    // The forge hangs on the next listing's page; the hub is stopped meanwhile.
    forge.api.fail_next(
        1,
        Fault::Slow {
            delay: Duration::from_secs(300),
        },
    );
    let asked = forge.api.recorded().len();
    let (status, _) = hub
        .call(reqwest::Method::POST, &format!("{path}/sync"), None)
        .await;
    assert_eq!(status, 202);
    wait_for(&hub, &path, Duration::from_secs(30), |s| {
        s["listing"] == true && forge.api.recorded().len() > asked
    })
    .await;
    // The hanging page does not hold the shutdown up.
    hub.terminate(Duration::from_secs(20)).await;

    // The next start lists the set at once, not after the dead process's lease (120 s).
    forge.add("acme", vec![RepoSpec::new("three")]);
    hub.spawn();
    wait_for(&hub, &path, Duration::from_secs(60), |s| {
        s["counts"]["mirrored"] == 3
    })
    .await;
}

on_both_databases!(
    a_listing_cut_short_by_shutdown_is_taken_up_at_once_by_the_next_start,
    installing_the_github_app_mirrors_what_it_was_given,
    an_organization_is_mirrored_page_by_page_with_its_filters,
    new_renamed_archived_and_deleted_repositories_are_followed,
    gitlab_subgroups_gitea_and_bitbucket_are_listed,
);
