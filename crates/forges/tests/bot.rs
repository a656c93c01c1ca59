//! The comment bot's calls (react, reply, edit the reply, may the author write, the token to
//! clone with) against a real HTTP server that plays each forge's REST API
//! (`mirrorhub_testkit::ForgeApiServer`): the exact requests on the wire, what each refusal
//! becomes, and the GitHub App's installation tokens (JWT, cache, refresh before expiry).

use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use mirrorhub_forges::{
    BotCredentials, CommentThread, ForgeApis, ForgeError, ForgeKind, ForgeRepo, Forges, GitHubAuth,
};
use mirrorhub_testkit::{ForgeApiServer, RecordedRequest, Reply};
use octocrab::jsonwebtoken::{self, Algorithm, DecodingKey, Validation};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
use rsa::RsaPrivateKey;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use url::Url;

const GITHUB_TOKEN: &str = "ghp_bot-token-1234567890";
const GITLAB_TOKEN: &str = "glpat-bot-token-abcdef";
const GITEA_TOKEN: &str = "gitea-bot-token-0a1b2c3d";
const APP_ID: u64 = 123456;
const INSTALLATION_TOKEN: &str = "ghs_installation-token-first";
const RENEWED_TOKEN: &str = "ghs_installation-token-renewed";
const REPLY: &str = "Syncing `octo-org/hello` now… 👀\n\n| ref | old | new |";
const EDITED: &str = "Synced: 3 refs updated ✅";
const USER_AGENT: &str = concat!("mirrorhub/", env!("CARGO_PKG_VERSION"));

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

/// Every forge's API on `server`: GitHub and GitLab at the root, Gitea under `/gitea`.
fn apis(server: &ForgeApiServer) -> ForgeApis {
    ForgeApis {
        github_api: url(&server.url()),
        gitlab: url(&server.url()),
        gitea: Some(url(&format!("{}/gitea", server.url()))),
    }
}

/// The bot with a token on each forge.
fn token_bot(server: &ForgeApiServer) -> Forges {
    Forges::new(apis(server)).with_bot(BotCredentials {
        github: Some(GitHubAuth::Token(secret(GITHUB_TOKEN))),
        gitlab_token: Some(secret(GITLAB_TOKEN)),
        gitea_token: Some(secret(GITEA_TOKEN)),
    })
}

/// The bot as the GitHub App `APP_ID` with the test key.
fn app_bot(server: &ForgeApiServer) -> Forges {
    Forges::new(apis(server)).with_bot(BotCredentials {
        github: Some(GitHubAuth::App {
            app_id: APP_ID,
            private_key: secret(&test_key().private_pem),
        }),
        ..BotCredentials::default()
    })
}

fn repo(kind: ForgeKind, path: &str) -> ForgeRepo {
    ForgeRepo {
        kind,
        path: path.to_owned(),
    }
}

fn thread(kind: ForgeKind, path: &str, number: u64, merge_request: bool) -> CommentThread {
    CommentThread {
        repo: repo(kind, path),
        number,
        merge_request,
        project_id: None,
    }
}

/// A throwaway RSA key made for this test run: the GitHub App's private key (PKCS#1 PEM, as
/// GitHub issues it) and the public half to check the JWTs' signatures with.
struct TestKey {
    private_pem: String,
    public_pem: String,
}

fn test_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key");
        TestKey {
            private_pem: key
                .to_pkcs1_pem(LineEnding::LF)
                .expect("PKCS#1 PEM")
                .to_string(),
            public_pem: key
                .to_public_key()
                .to_pkcs1_pem(LineEnding::LF)
                .expect("public PEM"),
        }
    })
}

/// No token, installation token, private key (or any line of it) or JWT shows in the error,
/// whichever way it is printed.
fn assert_no_secrets(error: &ForgeError) {
    for text in [
        error.to_string(),
        format!("{error:?}"),
        format!("{error:#?}"),
    ] {
        for token in [
            GITHUB_TOKEN,
            GITLAB_TOKEN,
            GITEA_TOKEN,
            INSTALLATION_TOKEN,
            RENEWED_TOKEN,
        ] {
            assert!(!text.contains(token), "token leaked: {text}");
        }
        assert!(!text.contains("PRIVATE KEY"), "key leaked: {text}");
        assert!(!text.contains("eyJ"), "a JWT leaked: {text}");
        let key_line = test_key().private_pem.lines().nth(1).unwrap();
        assert!(!text.contains(key_line), "key leaked: {text}");
    }
}

fn take_recorded(server: &ForgeApiServer) -> Vec<RecordedRequest> {
    let recorded = server.recorded();
    server.clear_recorded();
    recorded
}

fn form_of(request: &RecordedRequest) -> Vec<(String, String)> {
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded"),
        "{request:?}"
    );
    request.form()
}

/// A GitHub request: the bot's token, octocrab's headers.
fn assert_github(request: &RecordedRequest, method: &str, path: &str, token: &str) {
    assert_eq!(request.method, method, "{request:?}");
    assert_eq!(request.path, path, "{request:?}");
    assert_eq!(
        request.header_values("authorization"),
        [format!("Bearer {token}")],
        "{request:?}"
    );
    assert_eq!(
        request.header("accept"),
        Some("application/vnd.github+json")
    );
    assert_eq!(request.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(request.header_values("user-agent"), ["octocrab"]);
}

/// A GitLab request: the bot's token in `PRIVATE-TOKEN`, nothing in `Authorization`.
fn assert_gitlab(request: &RecordedRequest, method: &str, path: &str) {
    assert_eq!(request.method, method, "{request:?}");
    assert_eq!(request.path, path, "{request:?}");
    assert_eq!(request.header_values("private-token"), [GITLAB_TOKEN]);
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.header("user-agent"), Some(USER_AGENT));
}

/// A Gitea request: `Authorization: token …`, JSON accepted.
fn assert_gitea(request: &RecordedRequest, method: &str, path: &str) {
    assert_eq!(request.method, method, "{request:?}");
    assert_eq!(request.path, path, "{request:?}");
    assert_eq!(
        request.header_values("authorization"),
        [format!("token {GITEA_TOKEN}")]
    );
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(request.header("user-agent"), Some(USER_AGENT));
}

// --- GitHub with a token ---------------------------------------------------------------------

#[tokio::test]
async fn github_token_react_reply_edit() {
    let server = ForgeApiServer::start().await;
    server.respond(
        "POST",
        "/repos/octo-org/hello/issues/comments/1001/reactions",
        201,
        json!({"id": 1, "content": "eyes"}),
    );
    server.respond(
        "POST",
        "/repos/octo-org/hello/issues/7/comments",
        201,
        json!({"id": 2002, "body": REPLY}),
    );
    server.respond(
        "POST",
        "/repos/octo-org/hello/issues/8/comments",
        201,
        json!({"id": 2003, "body": REPLY}),
    );
    server.respond(
        "PATCH",
        "/repos/octo-org/hello/issues/comments/2002",
        200,
        json!({"id": 2002, "body": EDITED}),
    );
    let forges = token_bot(&server);
    let issue = thread(ForgeKind::GitHub, "octo-org/hello", 7, false);
    let pull = thread(ForgeKind::GitHub, "octo-org/hello", 8, true);

    forges.react(&issue, "1001").await.unwrap();
    let id = forges.reply(&issue, REPLY).await.unwrap();
    assert_eq!(id, "2002");
    forges.edit_reply(&issue, &id, EDITED).await.unwrap();
    // A pull request's conversation is its issue's: same API.
    assert_eq!(forges.reply(&pull, REPLY).await.unwrap(), "2003");

    let recorded = take_recorded(&server);
    assert_eq!(recorded.len(), 4, "{recorded:#?}");
    let react = &recorded[0];
    assert_github(
        react,
        "POST",
        "/repos/octo-org/hello/issues/comments/1001/reactions",
        GITHUB_TOKEN,
    );
    assert_eq!(react.header("content-type"), Some("application/json"));
    assert_eq!(react.json(), json!({"content": "eyes"}));

    let reply = &recorded[1];
    assert_github(
        reply,
        "POST",
        "/repos/octo-org/hello/issues/7/comments",
        GITHUB_TOKEN,
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json()["body"], REPLY);
    assert_eq!(reply.json(), json!({"body": REPLY}));

    let edit = &recorded[2];
    assert_github(
        edit,
        "PATCH",
        "/repos/octo-org/hello/issues/comments/2002",
        GITHUB_TOKEN,
    );
    assert_eq!(edit.header("content-type"), Some("application/json"));
    assert_eq!(edit.json(), json!({"body": EDITED}));

    assert_github(
        &recorded[3],
        "POST",
        "/repos/octo-org/hello/issues/8/comments",
        GITHUB_TOKEN,
    );
}

#[tokio::test]
async fn github_reacting_twice_is_no_error() {
    // GitHub answers 200 (not 201) when the reaction is there already.
    let server = ForgeApiServer::start().await;
    server.respond(
        "POST",
        "/repos/o/r/issues/comments/5/reactions",
        200,
        json!({"id": 1, "content": "eyes"}),
    );
    let forges = token_bot(&server);
    forges
        .react(&thread(ForgeKind::GitHub, "o/r", 1, false), "5")
        .await
        .unwrap();
}

#[tokio::test]
async fn github_may_write() {
    let server = ForgeApiServer::start().await;
    let permission = |permission: &str, role: &str, login: &str| {
        json!({"permission": permission, "role_name": role,
               "user": {"login": login, "id": 1, "type": "User"}})
    };
    let base = "/repos/octo-org/hello/collaborators";
    for (user, answer) in [
        ("boss", permission("admin", "admin", "boss")),
        ("dev", permission("write", "write", "dev")),
        // maintain is reported as permission "write"; trust role_name even if it were not.
        ("keeper", permission("read", "maintain", "keeper")),
        ("triager", permission("read", "triage", "triager")),
        ("reader", permission("read", "read", "reader")),
        ("stranger", permission("none", "none", "stranger")),
    ] {
        server.respond("GET", &format!("{base}/{user}/permission"), 200, answer);
    }
    server.respond(
        "GET",
        &format!("{base}/ghost/permission"),
        404,
        json!({"message": "Not Found"}),
    );
    let forges = token_bot(&server);
    let repo = repo(ForgeKind::GitHub, "octo-org/hello");
    for (user, expected) in [
        ("boss", true),
        ("dev", true),
        ("keeper", true),
        ("triager", false),
        ("reader", false),
        ("stranger", false),
        ("ghost", false),
    ] {
        assert_eq!(
            forges.may_write(&repo, None, user).await.unwrap(),
            expected,
            "{user}"
        );
    }
    let recorded = take_recorded(&server);
    assert_eq!(recorded.len(), 7, "{recorded:#?}");
    let first = &recorded[0];
    assert_github(
        first,
        "GET",
        "/repos/octo-org/hello/collaborators/boss/permission",
        GITHUB_TOKEN,
    );
    assert!(first.body.is_empty());
    assert_eq!(
        recorded[6].path,
        "/repos/octo-org/hello/collaborators/ghost/permission"
    );
}

// --- GitLab ----------------------------------------------------------------------------------

#[tokio::test]
async fn gitlab_by_project_id_on_an_issue() {
    let server = ForgeApiServer::start().await;
    let project = "/api/v4/projects/42";
    server.respond(
        "POST",
        &format!("{project}/issues/5/notes/3001/award_emoji"),
        201,
        json!({"id": 9, "name": "eyes", "awardable_id": 3001, "awardable_type": "Note"}),
    );
    server.respond(
        "POST",
        &format!("{project}/issues/5/notes"),
        201,
        json!({"id": 3002, "body": REPLY, "noteable_type": "Issue"}),
    );
    server.respond(
        "PUT",
        &format!("{project}/issues/5/notes/3002"),
        200,
        json!({"id": 3002, "body": EDITED}),
    );
    let forges = token_bot(&server);
    let issue = CommentThread {
        project_id: Some(42),
        ..thread(ForgeKind::GitLab, "group/sub/project", 5, false)
    };

    forges.react(&issue, "3001").await.unwrap();
    let id = forges.reply(&issue, REPLY).await.unwrap();
    assert_eq!(id, "3002");
    forges.edit_reply(&issue, &id, EDITED).await.unwrap();

    let recorded = take_recorded(&server);
    assert_eq!(recorded.len(), 3, "{recorded:#?}");
    let award = &recorded[0];
    assert_gitlab(
        award,
        "POST",
        "/api/v4/projects/42/issues/5/notes/3001/award_emoji",
    );
    assert_eq!(form_of(award), [("name".to_owned(), "eyes".to_owned())]);

    let reply = &recorded[1];
    assert_gitlab(reply, "POST", "/api/v4/projects/42/issues/5/notes");
    assert_eq!(form_of(reply), [("body".to_owned(), REPLY.to_owned())]);

    let edit = &recorded[2];
    assert_gitlab(edit, "PUT", "/api/v4/projects/42/issues/5/notes/3002");
    assert_eq!(form_of(edit), [("body".to_owned(), EDITED.to_owned())]);
}

#[tokio::test]
async fn gitlab_by_path_on_a_merge_request() {
    let server = ForgeApiServer::start().await;
    let project = "/api/v4/projects/group%2Fsub%2Fproject";
    server.respond(
        "POST",
        &format!("{project}/merge_requests/9/notes/4001/award_emoji"),
        201,
        json!({"id": 10, "name": "eyes"}),
    );
    server.respond(
        "POST",
        &format!("{project}/merge_requests/9/notes"),
        201,
        json!({"id": 4002, "body": REPLY, "noteable_type": "MergeRequest"}),
    );
    server.respond(
        "PUT",
        &format!("{project}/merge_requests/9/notes/4002"),
        200,
        json!({"id": 4002}),
    );
    let forges = token_bot(&server);
    let merge_request = thread(ForgeKind::GitLab, "group/sub/project", 9, true);

    forges.react(&merge_request, "4001").await.unwrap();
    let id = forges.reply(&merge_request, REPLY).await.unwrap();
    assert_eq!(id, "4002");
    forges
        .edit_reply(&merge_request, &id, EDITED)
        .await
        .unwrap();

    let recorded = take_recorded(&server);
    assert_eq!(recorded.len(), 3, "{recorded:#?}");
    assert_gitlab(
        &recorded[0],
        "POST",
        "/api/v4/projects/group%2Fsub%2Fproject/merge_requests/9/notes/4001/award_emoji",
    );
    assert_eq!(
        form_of(&recorded[0]),
        [("name".to_owned(), "eyes".to_owned())]
    );
    assert_gitlab(
        &recorded[1],
        "POST",
        "/api/v4/projects/group%2Fsub%2Fproject/merge_requests/9/notes",
    );
    assert_eq!(
        form_of(&recorded[1]),
        [("body".to_owned(), REPLY.to_owned())]
    );
    assert_gitlab(
        &recorded[2],
        "PUT",
        "/api/v4/projects/group%2Fsub%2Fproject/merge_requests/9/notes/4002",
    );
    assert_eq!(
        form_of(&recorded[2]),
        [("body".to_owned(), EDITED.to_owned())]
    );
}

#[tokio::test]
async fn gitlab_awarding_twice_is_no_error() {
    let server = ForgeApiServer::start().await;
    server.respond(
        "POST",
        "/api/v4/projects/7/issues/1/notes/2/award_emoji",
        404,
        json!({"message": "404 Award Emoji Name has already been taken Not Found"}),
    );
    let forges = token_bot(&server);
    let issue = CommentThread {
        project_id: Some(7),
        ..thread(ForgeKind::GitLab, "g/p", 1, false)
    };
    forges.react(&issue, "2").await.unwrap();

    // Any other 404 is a note that is gone.
    server.respond(
        "POST",
        "/api/v4/projects/7/issues/1/notes/2/award_emoji",
        404,
        json!({"message": "404 Not found"}),
    );
    let error = forges.react(&issue, "2").await.unwrap_err();
    assert!(
        matches!(&error, ForgeError::CommentNotFound { comment_id, .. } if comment_id == "2"),
        "{error:?}"
    );
}

#[tokio::test]
async fn gitlab_may_write() {
    let server = ForgeApiServer::start().await;
    let member = |username: &str, access_level: u64| {
        json!({"id": 1, "username": username, "name": username.to_uppercase(),
               "state": "active", "access_level": access_level})
    };
    // `query` matches names and usernames by substring: the stand-in answers every query with
    // the same list, and only an exact username counts.
    let members = json!([
        member("dev", 30),
        member("dev-lead", 40),
        member("devreporter", 20),
        member("owner", 50),
    ]);
    server.respond(
        "GET",
        "/api/v4/projects/42/members/all",
        200,
        members.clone(),
    );
    server.respond(
        "GET",
        "/api/v4/projects/group%2Fsub%2Fproject/members/all",
        200,
        members,
    );
    let forges = token_bot(&server);
    let repo = repo(ForgeKind::GitLab, "group/sub/project");
    for (user, expected) in [
        ("dev", true),
        ("dev-lead", true),
        ("owner", true),
        ("devreporter", false),
        ("de", false),
        ("nobody", false),
    ] {
        assert_eq!(
            forges.may_write(&repo, Some(42), user).await.unwrap(),
            expected,
            "{user}"
        );
    }
    let recorded = take_recorded(&server);
    assert_eq!(recorded.len(), 6, "{recorded:#?}");
    assert_gitlab(
        &recorded[0],
        "GET",
        "/api/v4/projects/42/members/all?query=dev&per_page=100&page=1",
    );
    assert!(recorded[0].body.is_empty());
    assert_eq!(
        recorded[5].path,
        "/api/v4/projects/42/members/all?query=nobody&per_page=100&page=1"
    );

    // Without a project id: the URL-encoded path.
    assert!(forges.may_write(&repo, None, "dev").await.unwrap());
    assert_gitlab(
        &recorded_one(&server),
        "GET",
        "/api/v4/projects/group%2Fsub%2Fproject/members/all?query=dev&per_page=100&page=1",
    );

    // A project that is not there (or hidden from the bot) is an error, not a "no".
    let error = forges.may_write(&repo, Some(404), "dev").await.unwrap_err();
    assert!(
        matches!(&error, ForgeError::NotFound { forge: ForgeKind::GitLab, repo, hook_id: None } if repo == "group/sub/project"),
        "{error:?}"
    );
}

fn recorded_one(server: &ForgeApiServer) -> RecordedRequest {
    let recorded = take_recorded(server);
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    recorded.into_iter().next().unwrap()
}

// --- Gitea -----------------------------------------------------------------------------------

#[tokio::test]
async fn gitea_react_reply_edit() {
    let server = ForgeApiServer::start().await;
    let base = "/gitea/api/v1/repos/alice/dots";
    server.respond(
        "POST",
        &format!("{base}/issues/comments/5001/reactions"),
        201,
        json!({"user": {"login": "mirrorhub-bot"}, "content": "eyes"}),
    );
    server.respond(
        "POST",
        &format!("{base}/issues/3/comments"),
        201,
        json!({"id": 5002, "body": REPLY}),
    );
    server.respond(
        "PATCH",
        &format!("{base}/issues/comments/5002"),
        200,
        json!({"id": 5002, "body": EDITED}),
    );
    let forges = token_bot(&server);
    let pull = thread(ForgeKind::Gitea, "alice/dots", 3, true);

    forges.react(&pull, "5001").await.unwrap();
    let id = forges.reply(&pull, REPLY).await.unwrap();
    assert_eq!(id, "5002");
    forges.edit_reply(&pull, &id, EDITED).await.unwrap();

    let recorded = take_recorded(&server);
    assert_eq!(recorded.len(), 3, "{recorded:#?}");
    let react = &recorded[0];
    assert_gitea(
        react,
        "POST",
        "/gitea/api/v1/repos/alice/dots/issues/comments/5001/reactions",
    );
    assert_eq!(react.header("content-type"), Some("application/json"));
    assert_eq!(react.json(), json!({"content": "eyes"}));

    let reply = &recorded[1];
    assert_gitea(
        reply,
        "POST",
        "/gitea/api/v1/repos/alice/dots/issues/3/comments",
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), json!({"body": REPLY}));

    let edit = &recorded[2];
    assert_gitea(
        edit,
        "PATCH",
        "/gitea/api/v1/repos/alice/dots/issues/comments/5002",
    );
    assert_eq!(edit.header("content-type"), Some("application/json"));
    assert_eq!(edit.json(), json!({"body": EDITED}));
}

#[tokio::test]
async fn gitea_may_write() {
    let server = ForgeApiServer::start().await;
    let base = "/gitea/api/v1/repos/alice/dots/collaborators";
    for (user, permission) in [
        ("alice", "owner"),
        ("admin", "admin"),
        ("bob", "write"),
        ("carol", "read"),
        ("dave", "none"),
    ] {
        server.respond(
            "GET",
            &format!("{base}/{user}/permission"),
            200,
            json!({"permission": permission, "role_name": permission,
                   "user": {"login": user}}),
        );
    }
    server.respond(
        "GET",
        &format!("{base}/ghost/permission"),
        404,
        json!({"message": "user does not exist [uid: 0, name: ghost]"}),
    );
    let forges = token_bot(&server);
    let repo = repo(ForgeKind::Gitea, "alice/dots");
    for (user, expected) in [
        ("alice", true),
        ("admin", true),
        ("bob", true),
        ("carol", false),
        ("dave", false),
        ("ghost", false),
    ] {
        assert_eq!(
            forges.may_write(&repo, None, user).await.unwrap(),
            expected,
            "{user}"
        );
    }
    let recorded = take_recorded(&server);
    assert_eq!(recorded.len(), 6, "{recorded:#?}");
    assert_gitea(
        &recorded[2],
        "GET",
        "/gitea/api/v1/repos/alice/dots/collaborators/bob/permission",
    );
    assert!(recorded[2].body.is_empty());

    // Gitea lets only repository admins read others' permissions: a 403 is the bot's rights.
    server.respond(
        "GET",
        &format!("{base}/bob/permission"),
        403,
        json!({"message": "Only admins can query all permissions, repo admins can query all repo permissions, collaborators can query only their own"}),
    );
    let error = forges.may_write(&repo, None, "bob").await.unwrap_err();
    assert!(
        matches!(&error, ForgeError::BotForbidden { forge: ForgeKind::Gitea, repo } if repo == "alice/dots"),
        "{error:?}"
    );
    assert!(error.to_string().contains("admin rights"), "{error}");
}

// --- Refusals, no credentials, bad input -----------------------------------------------------

/// For each forge: a thread, and the path prefix that all its bot calls share on the server.
fn every_forge() -> [(CommentThread, &'static str); 3] {
    [
        (thread(ForgeKind::GitHub, "o/r", 4, false), "/repos/o/r/"),
        (
            CommentThread {
                project_id: Some(77),
                ..thread(ForgeKind::GitLab, "g/p", 4, true)
            },
            "/api/v4/projects/77/",
        ),
        (
            thread(ForgeKind::Gitea, "o/r", 4, false),
            "/gitea/api/v1/repos/o/r/",
        ),
    ]
}

#[tokio::test]
async fn refusals_become_actionable_errors() {
    for (thread, prefix) in every_forge() {
        let forge = thread.repo.kind;
        for status in [401, 403, 404, 500] {
            let server = ForgeApiServer::start().await;
            for method in ["GET", "POST", "PUT", "PATCH"] {
                server.respond(method, prefix, status, json!({"message": "no"}));
            }
            let forges = token_bot(&server);
            let react = forges.react(&thread, "31").await.unwrap_err();
            let reply = forges.reply(&thread, REPLY).await.unwrap_err();
            let edit = forges.edit_reply(&thread, "32", EDITED).await.unwrap_err();
            let may_write = forges
                .may_write(&thread.repo, thread.project_id, "someone")
                .await;
            let context =
                format!("{forge} {status}: {react:?} / {reply:?} / {edit:?} / {may_write:?}");
            for error in [&react, &reply, &edit] {
                assert_no_secrets(error);
            }
            if let Err(error) = &may_write {
                assert_no_secrets(error);
            }
            match status {
                401 => {
                    for error in [&react, &reply, &edit] {
                        assert!(
                            matches!(error, ForgeError::Unauthorized { forge: f } if *f == forge),
                            "{context}"
                        );
                    }
                    assert!(
                        matches!(may_write, Err(ForgeError::Unauthorized { .. })),
                        "{context}"
                    );
                }
                403 => {
                    for error in [&react, &reply, &edit] {
                        assert!(
                            matches!(error, ForgeError::BotForbidden { forge: f, repo }
                                if *f == forge && *repo == thread.repo.path),
                            "{context}"
                        );
                    }
                    assert!(
                        matches!(may_write, Err(ForgeError::BotForbidden { .. })),
                        "{context}"
                    );
                    assert!(
                        react
                            .to_string()
                            .starts_with(&format!("the comment bot's {forge} credentials may not do this in {}: they need ", thread.repo.path)),
                        "{react}"
                    );
                }
                404 => {
                    assert!(
                        matches!(&react, ForgeError::CommentNotFound { comment_id, .. } if comment_id == "31"),
                        "{context}"
                    );
                    assert!(
                        matches!(&reply, ForgeError::ThreadNotFound { number: 4, merge_request, .. }
                            if *merge_request == thread.merge_request),
                        "{context}"
                    );
                    assert!(
                        matches!(&edit, ForgeError::CommentNotFound { comment_id, .. } if comment_id == "32"),
                        "{context}"
                    );
                    // GitHub and Gitea answer 404 for a user they know nothing of: a "no".
                    // GitLab's 404 is the project's.
                    match forge {
                        ForgeKind::GitLab => assert!(
                            matches!(may_write, Err(ForgeError::NotFound { .. })),
                            "{context}"
                        ),
                        _ => assert!(matches!(may_write, Ok(false)), "{context}"),
                    }
                }
                _ => {
                    for error in [&react, &reply, &edit] {
                        assert!(
                            matches!(error, ForgeError::Unexpected { forge: f, status: 500 } if *f == forge),
                            "{context}"
                        );
                    }
                    assert!(
                        matches!(may_write, Err(ForgeError::Unexpected { status: 500, .. })),
                        "{context}"
                    );
                }
            }
            assert_eq!(server.recorded().len(), 4, "{context}");
        }
    }
}

#[tokio::test]
async fn without_credentials_nothing_is_sent() {
    let server = ForgeApiServer::start().await;
    let forges = Forges::new(apis(&server));
    for (thread, _) in every_forge() {
        let forge = thread.repo.kind;
        assert!(!forges.bot_enabled(forge));
        assert!(forges.bot_token(&thread.repo).await.unwrap().is_none());
        for error in [
            forges.react(&thread, "1").await.unwrap_err(),
            forges.reply(&thread, REPLY).await.unwrap_err(),
            forges.edit_reply(&thread, "1", EDITED).await.unwrap_err(),
            forges
                .may_write(&thread.repo, thread.project_id, "u")
                .await
                .unwrap_err(),
        ] {
            assert!(
                matches!(error, ForgeError::NoBotCredentials { forge: f } if f == forge),
                "{error:?}"
            );
        }
    }
    assert_eq!(
        ForgeError::NoBotCredentials {
            forge: ForgeKind::GitLab
        }
        .to_string(),
        "the comment bot has no GitLab credentials: set MIRRORHUB_GITLAB_TOKEN"
    );
    assert!(server.recorded().is_empty());

    // Credentials for one forge enable that forge only; Gitea needs its API too.
    let gitlab_only = Forges::new(apis(&server)).with_bot(BotCredentials {
        gitlab_token: Some(secret(GITLAB_TOKEN)),
        ..BotCredentials::default()
    });
    assert!(gitlab_only.bot_enabled(ForgeKind::GitLab));
    assert!(!gitlab_only.bot_enabled(ForgeKind::GitHub));
    assert!(!gitlab_only.bot_enabled(ForgeKind::Gitea));
    let mut no_gitea_api = apis(&server);
    no_gitea_api.gitea = None;
    let gitea_token_only = Forges::new(no_gitea_api).with_bot(BotCredentials {
        gitea_token: Some(secret(GITEA_TOKEN)),
        ..BotCredentials::default()
    });
    assert!(!gitea_token_only.bot_enabled(ForgeKind::Gitea));
    let error = gitea_token_only
        .reply(&thread(ForgeKind::Gitea, "o/r", 1, false), REPLY)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ForgeError::NotConfigured {
                forge: ForgeKind::Gitea
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn token_bot_tokens_to_clone_with() {
    let server = ForgeApiServer::start().await;
    let forges = token_bot(&server);
    for (kind, path, expected) in [
        (ForgeKind::GitHub, "o/r", GITHUB_TOKEN),
        (ForgeKind::GitLab, "g/p", GITLAB_TOKEN),
        (ForgeKind::Gitea, "o/r", GITEA_TOKEN),
    ] {
        assert!(forges.bot_enabled(kind));
        let token = forges.bot_token(&repo(kind, path)).await.unwrap().unwrap();
        assert_eq!(token.expose_secret(), expected);
    }
    assert!(server.recorded().is_empty());
}

#[tokio::test]
async fn bad_ids_and_names_send_nothing() {
    let server = ForgeApiServer::start().await;
    let forges = token_bot(&server);
    for (thread, _) in every_forge() {
        for bad in ["", "abc", "1/../../x", "-1", "+1", "1?x=2", "１"] {
            let error = forges.react(&thread, bad).await.unwrap_err();
            assert!(
                matches!(&error, ForgeError::CommentNotFound { comment_id, .. } if comment_id == bad),
                "{bad}: {error:?}"
            );
            let error = forges.edit_reply(&thread, bad, EDITED).await.unwrap_err();
            assert!(
                matches!(error, ForgeError::CommentNotFound { .. }),
                "{bad}: {error:?}"
            );
        }
        // No forge allows these logins; GitHub's `app[bot]` accounts are no collaborators.
        for user in ["", "a/b", "..", "x?y=1", "dependabot[bot]", "a b", "%2e%2e"] {
            assert!(
                !forges
                    .may_write(&thread.repo, thread.project_id, user)
                    .await
                    .unwrap(),
                "{user}"
            );
        }
    }
    // Repositories that are no owner/name (or GitLab path without an id) never reach a URL.
    for bad in [
        thread(ForgeKind::GitHub, "o/r/x", 1, false),
        thread(ForgeKind::Gitea, "../x", 1, false),
        thread(ForgeKind::GitLab, "single", 1, false),
    ] {
        let error = forges.reply(&bad, REPLY).await.unwrap_err();
        assert!(
            matches!(error, ForgeError::NotFound { .. }),
            "{bad:?}: {error:?}"
        );
    }
    assert!(server.recorded().is_empty());
}

#[tokio::test]
async fn a_forge_that_does_not_answer_in_time_is_unreachable() {
    let server = ForgeApiServer::start().await;
    for (_, prefix) in every_forge() {
        server.on(
            "POST",
            prefix,
            Reply::json(201, json!({"id": 1})).delayed(Duration::from_secs(30)),
        );
    }
    let forges = token_bot(&server).with_timeout(Duration::from_millis(300));
    for (thread, _) in every_forge() {
        let started = std::time::Instant::now();
        let error = forges.reply(&thread, REPLY).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(&error, ForgeError::Unreachable { forge, .. } if *forge == thread.repo.kind),
            "{error:?}"
        );
        assert_no_secrets(&error);
    }
}

#[tokio::test]
async fn debug_shows_no_secret() {
    let server = ForgeApiServer::start().await;
    for forges in [token_bot(&server), app_bot(&server)] {
        let text = format!("{forges:?}");
        for token in [GITHUB_TOKEN, GITLAB_TOKEN, GITEA_TOKEN] {
            assert!(!text.contains(token), "{text}");
        }
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }
    let credentials = BotCredentials {
        github: Some(GitHubAuth::App {
            app_id: APP_ID,
            private_key: secret(&test_key().private_pem),
        }),
        gitlab_token: Some(secret(GITLAB_TOKEN)),
        gitea_token: Some(secret(GITEA_TOKEN)),
    };
    let text = format!("{credentials:?}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert!(!text.contains(GITLAB_TOKEN) && !text.contains(GITEA_TOKEN));
}

// --- GitHub App --------------------------------------------------------------------------------

/// `expires_at` as GitHub writes it, `minutes` from now.
fn expires_in(minutes: i64) -> String {
    (Utc::now() + chrono::TimeDelta::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn installation_token(token: &str, minutes: i64) -> Value {
    json!({"token": token, "expires_at": expires_in(minutes),
           "permissions": {"issues": "write", "pull_requests": "write", "metadata": "read",
                           "contents": "read"},
           "repository_selection": "all"})
}

/// The JWT of an App request: header and claims checked, signature verified with the public
/// key. Returns the claims.
fn assert_app_jwt(request: &RecordedRequest) -> Value {
    let authorization = request.header("authorization").expect("authorization");
    let jwt = authorization.strip_prefix("Bearer ").expect("a Bearer JWT");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, json!({"typ": "JWT", "alg": "RS256"}));
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], json!(APP_ID), "{claims}");
    let now = Utc::now().timestamp();
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    // Issued 60 s in the past against clock drift; expires 9 minutes ahead (GitHub allows 10).
    assert!(
        (now - 60 - 30..=now - 60).contains(&iat),
        "iat {iat}, now {now}"
    );
    assert!(
        (now + 540 - 30..=now + 540).contains(&exp),
        "exp {exp}, now {now}"
    );
    assert_eq!(exp - iat, 600);
    assert_eq!(
        claims.as_object().unwrap().len(),
        3,
        "only iss, iat, exp: {claims}"
    );

    let key = DecodingKey::from_rsa_pem(test_key().public_pem.as_bytes()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    // `iss` is the App id as a number (what octocrab sends, and GitHub takes), which
    // jsonwebtoken only checks as a string: checked above.
    validation.set_required_spec_claims(&["exp", "iat"]);
    let verified = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .expect("the JWT is signed with the App's key");
    assert_eq!(verified.claims, claims);
    claims
}

#[tokio::test]
async fn github_app_installation_token_is_made_cached_and_used() {
    let server = ForgeApiServer::start().await;
    server.respond(
        "GET",
        "/repos/octo-org/hello/installation",
        200,
        json!({"id": 4242, "app_id": APP_ID, "account": {"login": "octo-org"},
               "target_type": "Organization"}),
    );
    server.respond(
        "POST",
        "/app/installations/4242/access_tokens",
        201,
        installation_token(INSTALLATION_TOKEN, 60),
    );
    server.respond(
        "POST",
        "/repos/octo-org/hello/issues/comments/1001/reactions",
        201,
        json!({"id": 1, "content": "eyes"}),
    );
    server.respond(
        "GET",
        "/repos/octo-org/hello/collaborators/dev/permission",
        200,
        json!({"permission": "write", "role_name": "write"}),
    );
    let forges = app_bot(&server);
    assert!(forges.bot_enabled(ForgeKind::GitHub));
    assert!(!forges.bot_enabled(ForgeKind::GitLab));
    let repo = repo(ForgeKind::GitHub, "octo-org/hello");

    let token = forges.bot_token(&repo).await.unwrap().unwrap();
    assert_eq!(token.expose_secret(), INSTALLATION_TOKEN);
    let recorded = take_recorded(&server);
    assert_eq!(recorded.len(), 2, "{recorded:#?}");
    let lookup = &recorded[0];
    assert_eq!(lookup.method, "GET");
    assert_eq!(lookup.path, "/repos/octo-org/hello/installation");
    assert_eq!(lookup.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(lookup.header("x-github-api-version"), Some("2022-11-28"));
    assert_app_jwt(lookup);
    let mint = &recorded[1];
    assert_eq!(mint.method, "POST");
    assert_eq!(mint.path, "/app/installations/4242/access_tokens");
    assert_eq!(mint.header("accept"), Some("application/vnd.github+json"));
    assert!(
        mint.body.is_empty(),
        "no body: every repository of the installation"
    );
    assert_app_jwt(mint);

    // Within the token's life: no request for a token, the calls carry the installation token.
    forges
        .react(
            &thread(ForgeKind::GitHub, "octo-org/hello", 7, false),
            "1001",
        )
        .await
        .unwrap();
    assert!(forges.may_write(&repo, None, "dev").await.unwrap());
    let again = forges.bot_token(&repo).await.unwrap().unwrap();
    assert_eq!(again.expose_secret(), INSTALLATION_TOKEN);
    // A clone of the Forges shares the cache; names are case-insensitive on GitHub.
    let other_case = ForgeRepo {
        kind: ForgeKind::GitHub,
        path: "Octo-Org/Hello".into(),
    };
    let from_clone = forges
        .clone()
        .bot_token(&other_case)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from_clone.expose_secret(), INSTALLATION_TOKEN);
    let recorded = take_recorded(&server);
    assert_eq!(recorded.len(), 2, "{recorded:#?}");
    assert_github(
        &recorded[0],
        "POST",
        "/repos/octo-org/hello/issues/comments/1001/reactions",
        INSTALLATION_TOKEN,
    );
    assert_eq!(recorded[0].json(), json!({"content": "eyes"}));
    assert_github(
        &recorded[1],
        "GET",
        "/repos/octo-org/hello/collaborators/dev/permission",
        INSTALLATION_TOKEN,
    );
}

#[tokio::test]
async fn github_app_token_near_expiry_is_refreshed() {
    let server = ForgeApiServer::start().await;
    server.respond("GET", "/repos/o/r/installation", 200, json!({"id": 77}));
    // A token with 2 minutes left: under the 5-minute margin.
    server.respond(
        "POST",
        "/app/installations/77/access_tokens",
        201,
        installation_token(INSTALLATION_TOKEN, 2),
    );
    let forges = app_bot(&server);
    let repo = repo(ForgeKind::GitHub, "o/r");
    let first = forges.bot_token(&repo).await.unwrap().unwrap();
    assert_eq!(first.expose_secret(), INSTALLATION_TOKEN);
    assert_eq!(take_recorded(&server).len(), 2);

    server.respond(
        "POST",
        "/app/installations/77/access_tokens",
        201,
        installation_token(RENEWED_TOKEN, 60),
    );
    let renewed = forges.bot_token(&repo).await.unwrap().unwrap();
    assert_eq!(renewed.expose_secret(), RENEWED_TOKEN);
    // The installation is known: only a new token is asked for.
    let recorded_now = take_recorded(&server);
    assert_eq!(recorded_now.len(), 1, "{recorded_now:#?}");
    assert_eq!(recorded_now[0].method, "POST");
    assert_eq!(recorded_now[0].path, "/app/installations/77/access_tokens");
    assert_app_jwt(&recorded_now[0]);

    // The renewed token has an hour: it is kept.
    let kept = forges.bot_token(&repo).await.unwrap().unwrap();
    assert_eq!(kept.expose_secret(), RENEWED_TOKEN);
    assert!(server.recorded().is_empty());
}

#[tokio::test]
async fn github_app_token_serves_every_repository_of_its_installation() {
    let server = ForgeApiServer::start().await;
    for name in ["a", "b"] {
        server.respond(
            "GET",
            &format!("/repos/org/{name}/installation"),
            200,
            json!({"id": 5}),
        );
    }
    server.respond(
        "POST",
        "/app/installations/5/access_tokens",
        201,
        installation_token(INSTALLATION_TOKEN, 60),
    );
    let forges = app_bot(&server);
    for name in ["a", "b"] {
        let token = forges
            .bot_token(&repo(ForgeKind::GitHub, &format!("org/{name}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(token.expose_secret(), INSTALLATION_TOKEN);
    }
    let paths: Vec<_> = take_recorded(&server)
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        paths,
        [
            "GET /repos/org/a/installation",
            "POST /app/installations/5/access_tokens",
            "GET /repos/org/b/installation",
        ]
    );
}

#[tokio::test]
async fn github_app_refusals() {
    let server = ForgeApiServer::start().await;
    server.respond(
        "GET",
        "/repos/o/not-installed/installation",
        404,
        json!({"message": "Not Found"}),
    );
    server.respond(
        "GET",
        "/repos/o/wrong-key/installation",
        401,
        json!({"message": "A JSON web token could not be decoded"}),
    );
    server.respond(
        "GET",
        "/repos/o/suspended/installation",
        200,
        json!({"id": 9}),
    );
    server.respond(
        "POST",
        "/app/installations/9/access_tokens",
        403,
        json!({"message": "This installation has been suspended"}),
    );
    let forges = app_bot(&server);
    let thread_in = |name: &str| thread(ForgeKind::GitHub, &format!("o/{name}"), 1, false);

    let not_installed = forges
        .reply(&thread_in("not-installed"), REPLY)
        .await
        .unwrap_err();
    assert!(
        matches!(&not_installed, ForgeError::AppNotInstalled { repo } if repo == "o/not-installed"),
        "{not_installed:?}"
    );
    assert_eq!(
        not_installed.to_string(),
        "the GitHub App is not installed on o/not-installed (or not given access to it)"
    );
    let refused = forges
        .bot_token(&thread_in("wrong-key").repo)
        .await
        .unwrap_err();
    assert!(matches!(refused, ForgeError::AppRefused), "{refused:?}");
    let suspended = forges
        .react(&thread_in("suspended"), "3")
        .await
        .unwrap_err();
    assert!(
        matches!(
            &suspended,
            ForgeError::BotForbidden {
                forge: ForgeKind::GitHub,
                ..
            }
        ),
        "{suspended:?}"
    );
    for error in [&not_installed, &refused, &suspended] {
        assert_no_secrets(error);
    }
    // No call went out without a token.
    assert!(server
        .recorded()
        .iter()
        .all(|r| r.path.ends_with("/installation") || r.path.ends_with("/access_tokens")));
}

#[tokio::test]
async fn github_app_token_refused_later_is_made_anew() {
    let server = ForgeApiServer::start().await;
    server.respond("GET", "/repos/o/r/installation", 200, json!({"id": 11}));
    server.respond(
        "POST",
        "/app/installations/11/access_tokens",
        201,
        installation_token(INSTALLATION_TOKEN, 60),
    );
    // The token is revoked while cached.
    server.respond(
        "POST",
        "/repos/o/r/issues/1/comments",
        401,
        json!({"message": "Bad credentials"}),
    );
    let forges = app_bot(&server);
    let issue = thread(ForgeKind::GitHub, "o/r", 1, false);
    let error = forges.reply(&issue, REPLY).await.unwrap_err();
    assert!(
        matches!(error, ForgeError::Unauthorized { .. }),
        "{error:?}"
    );
    assert_no_secrets(&error);
    assert_eq!(take_recorded(&server).len(), 3);

    server.respond(
        "POST",
        "/app/installations/11/access_tokens",
        201,
        installation_token(RENEWED_TOKEN, 60),
    );
    server.respond(
        "POST",
        "/repos/o/r/issues/1/comments",
        201,
        json!({"id": 99}),
    );
    assert_eq!(forges.reply(&issue, REPLY).await.unwrap(), "99");
    let requests = take_recorded(&server);
    let paths: Vec<_> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        paths,
        [
            "GET /repos/o/r/installation",
            "POST /app/installations/11/access_tokens",
            "POST /repos/o/r/issues/1/comments",
        ]
    );
    assert_github(
        &requests[2],
        "POST",
        "/repos/o/r/issues/1/comments",
        RENEWED_TOKEN,
    );
}

#[tokio::test]
async fn github_app_with_a_key_that_is_no_rsa_pem() {
    let server = ForgeApiServer::start().await;
    for key in [
        "not a key".to_owned(),
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n".to_owned(),
    ] {
        let forges = Forges::new(apis(&server)).with_bot(BotCredentials {
            github: Some(GitHubAuth::App {
                app_id: APP_ID,
                private_key: secret(&key),
            }),
            ..BotCredentials::default()
        });
        assert!(forges.bot_enabled(ForgeKind::GitHub));
        let error = forges
            .bot_token(&repo(ForgeKind::GitHub, "o/r"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ForgeError::InvalidAppKey),
            "{key}: {error:?}"
        );
        assert!(!format!("{error:?}").contains("AAAA"));
    }
    // The garbage PEM parses but cannot sign: found when the JWT is made, before it is sent.
    assert!(server.recorded().is_empty());
}

#[tokio::test]
async fn github_app_malformed_token_answers() {
    let server = ForgeApiServer::start().await;
    server.respond("GET", "/repos/o/r/installation", 200, json!({"id": 3}));
    server.respond(
        "POST",
        "/app/installations/3/access_tokens",
        201,
        json!({"token": INSTALLATION_TOKEN, "expires_at": "in an hour"}),
    );
    let forges = app_bot(&server);
    let error = forges
        .bot_token(&repo(ForgeKind::GitHub, "o/r"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ForgeError::InvalidResponse {
                forge: ForgeKind::GitHub,
                ..
            }
        ),
        "{error:?}"
    );
    assert_no_secrets(&error);

    server.respond(
        "POST",
        "/app/installations/3/access_tokens",
        201,
        json!({"no_token": true}),
    );
    let error = forges
        .bot_token(&repo(ForgeKind::GitHub, "o/r"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ForgeError::InvalidResponse {
                forge: ForgeKind::GitHub,
                ..
            }
        ),
        "{error:?}"
    );
    assert_no_secrets(&error);
}
