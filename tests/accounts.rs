//! Users, organizations, members and personal access tokens, and what they allow: through the
//! REST API, the CLI and real git clients against the real binary, on SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::path::Path;
use std::time::Duration;

use common::{git_client, ok, refs, stderr, Db, Hub, TestDb};
use mirrorhub_testkit::{git, init_bare, HttpGitServer, Scratch};
use reqwest::Method;
use serde_json::{json, Value};

on_both_databases!(
    users_orgs_and_tokens_through_the_api,
    git_access_follows_tokens_and_roles
);

/// An upstream with one commit on main.
fn upstream(root: &Path) -> Scratch {
    let bare = root.join("project.git");
    init_bare(&bare);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first");
    work.push_mirror(bare.to_str().unwrap());
    git(&bare, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    work
}

async fn as_user(
    hub: &Hub,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    hub.call_with_token(method, path, body, Some(token)).await
}

/// Creates a token for `user` with the admin token; returns its secret.
async fn token_for(
    hub: &Hub,
    user: &str,
    name: &str,
    scope: &str,
    expires_in: Option<&str>,
) -> String {
    let (status, made) = hub
        .post(
            &format!("/api/v1/users/{user}/tokens"),
            json!({"name": name, "scopes": [scope], "expires_in": expires_in}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    made["token"].as_str().unwrap().to_owned()
}

async fn users_orgs_and_tokens_through_the_api(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let _work = upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    let http = reqwest::Client::new();
    let api = |p: &str| format!("{}/api/v1{p}", hub.base);

    // Users, made by the admin; only a site admin may.
    let (status, ana) = hub
        .post(
            "/api/v1/users",
            json!({"username": "ana", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(status, 201, "{ana}");
    assert_eq!(ana["kind"], "user");
    for name in ["bob", "carol"] {
        let (status, body) = hub.post("/api/v1/users", json!({"username": name})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = hub.post("/api/v1/users", json!({"username": "ANA"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("account_exists")),
        "{body}"
    );
    let (status, body) = hub
        .post(
            "/api/v1/users",
            json!({"username": "dan", "password": "short"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "password", "{body}");

    // Ana's first token, with her password; a wrong one gets nothing.
    let with_password = |password: &str| {
        http.post(api("/users/ana/tokens"))
            .basic_auth("ana", Some(password))
            .json(&json!({"name": "laptop", "scopes": ["admin"]}))
            .send()
    };
    let wrong = with_password("not her password").await.unwrap();
    assert_eq!(wrong.status(), 401);
    let made: Value = with_password("correct horse battery")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ana_token = made["token"].as_str().unwrap().to_owned();
    assert!(ana_token.starts_with("mhp_"), "{made}");
    assert_eq!(made["scopes"], json!(["read", "write", "admin"]));
    let (status, me) = as_user(&hub, &ana_token, Method::GET, "/api/v1/user", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["username"], "ana");
    let (_, me) = hub.get("/api/v1/user").await;
    assert!(me["username"].is_null() && me["site_admin"] == true, "{me}");
    // Ana is no site admin.
    let (status, body) = as_user(
        &hub,
        &ana_token,
        Method::POST,
        "/api/v1/users",
        Some(json!({"username": "eve"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // Ana makes an organization (she is its admin) and adds Bob as a writer.
    let (status, org) = as_user(
        &hub,
        &ana_token,
        Method::POST,
        "/api/v1/orgs",
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{org}");
    let (status, member) = as_user(
        &hub,
        &ana_token,
        Method::PUT,
        "/api/v1/orgs/acme/members/bob",
        Some(json!({"role": "write"})),
    )
    .await;
    assert_eq!(
        (status, member["role"].as_str()),
        (200, Some("write")),
        "{member}"
    );
    let (_, members) = as_user(
        &hub,
        &ana_token,
        Method::GET,
        "/api/v1/orgs/acme/members",
        None,
    )
    .await;
    assert_eq!(
        members,
        json!([{"username": "ana", "role": "admin"}, {"username": "bob", "role": "write"}])
    );

    // Ana mirrors a private repository under the organization; not under Bob, nor under a
    // name that is nobody's.
    let create = |owner: &str| json!({"url": server.url("project.git"), "owner": owner, "name": "project", "mode": "mirror", "visibility": "private"});
    let (status, repo) = as_user(
        &hub,
        &ana_token,
        Method::POST,
        "/api/v1/repos",
        Some(create("acme")),
    )
    .await;
    assert_eq!(status, 202, "{repo}");
    assert!(
        repo["webhook"]["secret"].is_string(),
        "the admin sees the secret: {repo}"
    );
    let (status, body) = as_user(
        &hub,
        &ana_token,
        Method::POST,
        "/api/v1/repos",
        Some(create("bob")),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = as_user(
        &hub,
        &ana_token,
        Method::POST,
        "/api/v1/repos",
        Some(create("nobody")),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("account_not_found")),
        "{body}"
    );
    hub.wait_for_run("acme/project", None).await;

    // Bob, with tokens of each scope.
    let bob_read = token_for(&hub, "bob", "read", "read", None).await;
    let bob_write = token_for(&hub, "bob", "write", "write", Some("30d")).await;
    let (status, repo) = as_user(
        &hub,
        &bob_read,
        Method::GET,
        "/api/v1/repos/acme/project",
        None,
    )
    .await;
    assert_eq!(status, 200, "{repo}");
    assert!(
        repo["webhook"]["secret"].is_null(),
        "a writer does not see the secret: {repo}"
    );
    let (status, body) = as_user(
        &hub,
        &bob_read,
        Method::POST,
        "/api/v1/repos/acme/project/sync",
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scope is read"),
        "{body}"
    );
    let (status, body) = as_user(
        &hub,
        &bob_write,
        Method::POST,
        "/api/v1/repos/acme/project/sync",
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = as_user(
        &hub,
        &bob_write,
        Method::DELETE,
        "/api/v1/repos/acme/project",
        None,
    )
    .await;
    assert_eq!(status, 403, "a writer may not delete: {body}");

    // Carol is no member: the private repository does not exist for her.
    let carol = token_for(&hub, "carol", "cli", "admin", None).await;
    let (status, body) = as_user(
        &hub,
        &carol,
        Method::GET,
        "/api/v1/repos/acme/project",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("repo_not_found")),
        "{body}"
    );
    let (status, body) = as_user(
        &hub,
        &carol,
        Method::POST,
        "/api/v1/repos/acme/project/sync",
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (_, listed) = as_user(&hub, &carol, Method::GET, "/api/v1/repos", None).await;
    assert_eq!(listed, json!([]));
    let (_, listed) = as_user(&hub, &bob_read, Method::GET, "/api/v1/repos", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // Nor may she manage Bob's tokens or the organization's members.
    let (status, _) = as_user(&hub, &carol, Method::GET, "/api/v1/users/bob/tokens", None).await;
    assert_eq!(status, 403);
    let (status, _) = as_user(
        &hub,
        &carol,
        Method::PUT,
        "/api/v1/orgs/acme/members/carol",
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 403);

    // Bob's tokens: listed with their last use (never a secret), then one revoked.
    let (status, tokens) = hub.get("/api/v1/users/bob/tokens").await;
    assert_eq!(status, 200, "{tokens}");
    let tokens = tokens.as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(tokens
        .iter()
        .all(|t| t["token"].is_null() && t["state"] == "active"));
    assert!(
        tokens.iter().all(|t| t["last_used_at"].is_string()),
        "{tokens:?}"
    );
    assert!(tokens.iter().any(|t| t["expires_at"].is_string()));
    let read_id = tokens.iter().find(|t| t["name"] == "read").unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, _) = hub
        .call(
            Method::DELETE,
            &format!("/api/v1/users/bob/tokens/{read_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = as_user(&hub, &bob_read, Method::GET, "/api/v1/user", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was revoked"),
        "{body}"
    );

    // A token that expired says so.
    let short = token_for(&hub, "bob", "short", "read", Some("1s")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = as_user(&hub, &short, Method::GET, "/api/v1/user", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );

    // Removed from the organization, Bob no longer sees its private repository.
    let (status, _) = as_user(
        &hub,
        &ana_token,
        Method::DELETE,
        "/api/v1/orgs/acme/members/bob",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = as_user(
        &hub,
        &bob_write,
        Method::GET,
        "/api/v1/repos/acme/project",
        None,
    )
    .await;
    assert_eq!(status, 404);

    // The CLI, as a new user would script it.
    let cli = |args: &[&str], token: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mirrorhub"))
            .args(args)
            .env("MIRRORHUB_URL", &hub.base)
            .env("MIRRORHUB_TOKEN", token)
            .output()
            .unwrap()
    };
    let whoami = cli(&["whoami"], &ana_token);
    assert!(
        whoami.status.success(),
        "{}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    let text = String::from_utf8_lossy(&whoami.stdout);
    assert!(
        text.contains("ana (scopes: read,write,admin)") && text.contains("acme: admin"),
        "{text}"
    );
    let made = cli(
        &["token", "create", "--name", "ci", "--scope", "write"],
        &ana_token,
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let ci = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    let (status, me) = as_user(&hub, &ci, Method::GET, "/api/v1/user", None).await;
    assert_eq!(
        (status, me["scopes"].clone()),
        (200, json!(["read", "write"])),
        "{me}"
    );

    // Ana changes her password with her own token; a write-scoped one may not.
    let change = Some(json!({"password": "a much better passphrase"}));
    let (status, _) = as_user(
        &hub,
        &ci,
        Method::PATCH,
        "/api/v1/users/ana",
        change.clone(),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) =
        as_user(&hub, &ana_token, Method::PATCH, "/api/v1/users/ana", change).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        with_password("correct horse battery")
            .await
            .unwrap()
            .status(),
        401
    );
    let again = http
        .post(api("/users/ana/tokens"))
        .basic_auth("ana", Some("a much better passphrase"))
        .json(&json!({"name": "desktop", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);

    // An organization that owns repositories is not deleted; a user is, with their tokens.
    let (status, body) = as_user(&hub, &ana_token, Method::DELETE, "/api/v1/orgs/acme", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("owns 1 repository"),
        "{body}"
    );
    let (status, _) = as_user(
        &hub,
        &ana_token,
        Method::DELETE,
        "/api/v1/users/carol",
        None,
    )
    .await;
    assert_eq!(status, 403, "only a site admin deletes users");
    let (status, _) = hub.call(Method::DELETE, "/api/v1/orgs/carol", None).await;
    assert_eq!(status, 404, "carol is no organization");
    let (status, _) = hub.call(Method::DELETE, "/api/v1/users/carol", None).await;
    assert_eq!(status, 204);
    let (status, _) = as_user(&hub, &carol, Method::GET, "/api/v1/user", None).await;
    assert_eq!(status, 401, "her token went with her");
}

async fn git_access_follows_tokens_and_roles(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let work = upstream(root.path());
    let server = HttpGitServer::start(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    for user in ["bob", "carol"] {
        let (status, body) = hub.post("/api/v1/users", json!({"username": user})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = hub.post("/api/v1/orgs", json!({"name": "acme"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = hub
        .call(
            Method::PUT,
            "/api/v1/orgs/acme/members/bob",
            Some(json!({"role": "write"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = hub
        .post(
            "/api/v1/repos",
            json!({"url": server.url("project.git"), "owner": "acme", "name": "moved", "mode": "migrate", "visibility": "private"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (repo, _) = hub.wait_for_run("acme/moved", None).await;
    assert_eq!(repo["state"], "ready", "{repo}");

    let bob_read = token_for(&hub, "bob", "read", "read", None).await;
    let bob_write = token_for(&hub, "bob", "write", "write", None).await;
    let carol = token_for(&hub, "carol", "all", "admin", None).await;
    let host = hub.base.trim_start_matches("http://");
    let url = |token: &str| format!("http://user:{token}@{host}/acme/moved.git");
    let clients = tempfile::tempdir().unwrap();

    // Bob reads with either token.
    ok(&git_client(
        clients.path(),
        &["clone", "--bare", &url(&bob_read), "bob.git"],
        &[],
    )
    .await);
    // Carol's token is valid, but the repository does not exist for her.
    let out = git_client(
        clients.path(),
        &["clone", "--bare", &url(&carol), "carol.git"],
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("repository acme/moved does not exist on this hub"),
        "{}",
        stderr(&out)
    );

    // Pushing needs the write scope, and the write role.
    let before = refs(&hub.repo_dir(1));
    work.commit_file("new.txt", "new\n", "second");
    let out = git_client(work.path(), &["push", &url(&bob_read), "main"], &[]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("this token's scope is read"),
        "{}",
        stderr(&out)
    );
    assert_eq!(refs(&hub.repo_dir(1)), before);
    let (status, _) = hub
        .call(
            Method::PUT,
            "/api/v1/orgs/acme/members/bob",
            Some(json!({"role": "read"})),
        )
        .await;
    assert_eq!(status, 200);
    let out = git_client(work.path(), &["push", &url(&bob_write), "main"], &[]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ask an admin of acme for the write role"),
        "{}",
        stderr(&out)
    );
    assert_eq!(refs(&hub.repo_dir(1)), before);
    hub.call(
        Method::PUT,
        "/api/v1/orgs/acme/members/bob",
        Some(json!({"role": "write"})),
    )
    .await;
    ok(&git_client(work.path(), &["push", &url(&bob_write), "main"], &[]).await);
    assert_ne!(refs(&hub.repo_dir(1)), before);

    // A revoked token is refused, with the reason git shows.
    let (_, tokens) = hub.get("/api/v1/users/bob/tokens").await;
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "write")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    hub.call(
        Method::DELETE,
        &format!("/api/v1/users/bob/tokens/{id}"),
        None,
    )
    .await;
    let out = git_client(clients.path(), &["ls-remote", &url(&bob_write)], &[]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("was revoked"), "{}", stderr(&out));
}
