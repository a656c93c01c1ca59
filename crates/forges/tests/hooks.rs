//! Webhook creation and deletion against a real HTTP server that plays each forge's REST API
//! (`mirrorhub_testkit::ForgeApiServer`): the exact requests on the wire, and what each refusal
//! becomes.

use std::time::Duration;

use mirrorhub_forges::{ForgeApis, ForgeError, ForgeKind, ForgeRepo, Forges};
use mirrorhub_testkit::{ForgeApiServer, RecordedRequest, Reply};
use secrecy::SecretString;
use serde_json::json;
use url::Url;

const TOKEN: &str = "tok_9f8e7d6c5b4a-very-secret";
const SECRET: &str = "hook-signing-secret-1234";
const HOOK_URL: &str = "https://hub.example.com/api/v1/webhooks/push/42";

fn token() -> SecretString {
    SecretString::from(TOKEN)
}

fn secret() -> SecretString {
    SecretString::from(SECRET)
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

/// Every forge's API on `server`, GitHub at `github_path`, GitLab at `gitlab_path`, Gitea at
/// `gitea_path` (each `""` for the root or `/sub`).
fn apis(
    server: &ForgeApiServer,
    github_path: &str,
    gitlab_path: &str,
    gitea_path: &str,
) -> ForgeApis {
    ForgeApis {
        github_api: url(&format!("{}{github_path}", server.url())),
        gitlab: url(&format!("{}{gitlab_path}", server.url())),
        gitea: Some(url(&format!("{}{gitea_path}", server.url()))),
    }
}

fn repo(kind: ForgeKind, path: &str) -> ForgeRepo {
    ForgeRepo {
        kind,
        path: path.to_owned(),
    }
}

/// Neither the token nor the hook secret shows in the error, whichever way it is printed.
fn assert_no_secrets(error: &ForgeError) {
    for text in [
        error.to_string(),
        format!("{error:?}"),
        format!("{error:#?}"),
    ] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
        assert!(!text.contains(SECRET), "hook secret leaked: {text}");
    }
}

fn only_request(server: &ForgeApiServer) -> RecordedRequest {
    let recorded = server.recorded();
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    recorded.into_iter().next().unwrap()
}

#[tokio::test]
async fn github_enterprise_create_and_delete() {
    let server = ForgeApiServer::start().await;
    server.on(
        "POST",
        "/api/v3/repos/octo-org/hello.world/hooks",
        Reply::json(
            201,
            json!({"type": "Repository", "id": 12345678, "name": "web", "active": true,
                   "events": ["push", "issue_comment"],
                   "config": {"url": HOOK_URL, "content_type": "json", "insecure_ssl": "0"}}),
        ),
    );
    server.on(
        "DELETE",
        "/api/v3/repos/octo-org/hello.world/hooks/12345678",
        Reply::empty(204),
    );
    let forges = Forges::new(apis(&server, "/api/v3", "", ""));
    let repo = repo(ForgeKind::GitHub, "octo-org/hello.world");

    let id = forges
        .create_push_hook(&repo, &token(), HOOK_URL, &secret())
        .await
        .unwrap();
    assert_eq!(id, "12345678");
    forges.delete_hook(&repo, &token(), &id).await.unwrap();

    let recorded = server.recorded();
    assert_eq!(recorded.len(), 2, "{recorded:#?}");
    let create = &recorded[0];
    assert_eq!(create.method, "POST");
    assert_eq!(create.path, "/api/v3/repos/octo-org/hello.world/hooks");
    assert_eq!(
        create.header_values("authorization"),
        [format!("Bearer {TOKEN}")]
    );
    assert_eq!(create.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(create.header("content-type"), Some("application/json"));
    assert_eq!(create.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(create.header_values("user-agent"), ["octocrab"]);
    let body = create.json();
    assert_eq!(body["name"], "web");
    assert_eq!(body["active"], true);
    assert_eq!(body["events"], json!(["push", "issue_comment"]));
    assert_eq!(body["config"]["url"], HOOK_URL);
    assert_eq!(body["config"]["content_type"], "json");
    assert_eq!(body["config"]["secret"], SECRET);
    assert_eq!(body["config"]["insecure_ssl"], "0");
    // Nothing else: no `id`, `type` or other model fields.
    assert_eq!(
        body,
        json!({"name": "web", "active": true, "events": ["push", "issue_comment"],
               "config": {"url": HOOK_URL, "content_type": "json", "secret": SECRET,
                          "insecure_ssl": "0"}})
    );

    let delete = &recorded[1];
    assert_eq!(delete.method, "DELETE");
    assert_eq!(
        delete.path,
        "/api/v3/repos/octo-org/hello.world/hooks/12345678"
    );
    assert_eq!(
        delete.header_values("authorization"),
        [format!("Bearer {TOKEN}")]
    );
    assert_eq!(delete.header("accept"), Some("application/vnd.github+json"));
    assert!(delete.body.is_empty());
    assert!(!delete.contains(SECRET));
}

#[tokio::test]
async fn github_at_the_api_root_through_forge_apis() {
    // api.github.com serves the API at its root; the ForgeApis conveniences make their own client.
    let server = ForgeApiServer::start().await;
    server.respond("POST", "/repos/o/r/hooks", 201, json!({"id": 1}));
    server.respond("DELETE", "/repos/o/r/hooks/1", 204, json!(null));
    let apis = apis(&server, "", "", "");
    let repo = repo(ForgeKind::GitHub, "o/r");
    let id = apis
        .create_push_hook(&repo, &token(), HOOK_URL, &secret())
        .await
        .unwrap();
    apis.delete_hook(&repo, &token(), &id).await.unwrap();
    let paths: Vec<_> = server
        .recorded()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        paths,
        [
            ("POST".to_owned(), "/repos/o/r/hooks".to_owned()),
            ("DELETE".to_owned(), "/repos/o/r/hooks/1".to_owned())
        ]
    );
}

#[tokio::test]
async fn gitlab_create_and_delete() {
    let server = ForgeApiServer::start().await;
    let project = "/api/v4/projects/group%2Fsub%2Fproject";
    server.on(
        "POST",
        &format!("{project}/hooks"),
        Reply::json(
            201,
            json!({"id": 77, "url": HOOK_URL, "project_id": 3, "push_events": true,
                   "tag_push_events": true, "note_events": true,
                   "enable_ssl_verification": true}),
        ),
    );
    server.on("DELETE", &format!("{project}/hooks/77"), Reply::empty(204));
    let forges = Forges::new(apis(&server, "", "", ""));
    let repo = repo(ForgeKind::GitLab, "group/sub/project");

    let id = forges
        .create_push_hook(&repo, &token(), HOOK_URL, &secret())
        .await
        .unwrap();
    assert_eq!(id, "77");
    forges.delete_hook(&repo, &token(), &id).await.unwrap();

    let recorded = server.recorded();
    assert_eq!(
        recorded.len(),
        2,
        "no token check or other extra call: {recorded:#?}"
    );
    let create = &recorded[0];
    assert_eq!(create.method, "POST");
    assert_eq!(create.path, "/api/v4/projects/group%2Fsub%2Fproject/hooks");
    assert_eq!(create.header_values("private-token"), [TOKEN]);
    assert_eq!(create.header("authorization"), None);
    assert_eq!(
        create.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        create.header("user-agent"),
        Some(concat!("mirrorhub/", env!("CARGO_PKG_VERSION")))
    );
    let form = create.form();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("url"), Some(HOOK_URL));
    assert_eq!(field("token"), Some(SECRET));
    assert_eq!(field("push_events"), Some("true"));
    assert_eq!(field("tag_push_events"), Some("true"));
    assert_eq!(field("note_events"), Some("true"));
    assert_eq!(field("enable_ssl_verification"), Some("true"));
    let mut names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "enable_ssl_verification",
            "note_events",
            "push_events",
            "tag_push_events",
            "token",
            "url"
        ]
    );

    let delete = &recorded[1];
    assert_eq!(delete.method, "DELETE");
    assert_eq!(
        delete.path,
        "/api/v4/projects/group%2Fsub%2Fproject/hooks/77"
    );
    assert_eq!(delete.header_values("private-token"), [TOKEN]);
    assert!(delete.body.is_empty());
}

#[tokio::test]
async fn gitlab_under_a_relative_url_root() {
    let server = ForgeApiServer::start().await;
    server.respond(
        "POST",
        "/gitlab/api/v4/projects/g%2Fp/hooks",
        201,
        json!({"id": 5}),
    );
    let forges = Forges::new(apis(&server, "", "/gitlab/", ""));
    let id = forges
        .create_push_hook(
            &repo(ForgeKind::GitLab, "g/p"),
            &token(),
            HOOK_URL,
            &secret(),
        )
        .await
        .unwrap();
    assert_eq!(id, "5");
    assert_eq!(
        only_request(&server).path,
        "/gitlab/api/v4/projects/g%2Fp/hooks"
    );
}

#[tokio::test]
async fn gitea_under_a_sub_path_create_and_delete() {
    let server = ForgeApiServer::start().await;
    server.on(
        "POST",
        "/gitea/api/v1/repos/alice/dotfiles/hooks",
        Reply::json(
            201,
            json!({"id": 9, "type": "gitea", "active": true,
                   "events": ["push", "issue_comment"],
                   "config": {"url": HOOK_URL, "content_type": "json"}}),
        ),
    );
    server.on(
        "DELETE",
        "/gitea/api/v1/repos/alice/dotfiles/hooks/9",
        Reply::empty(204),
    );
    let forges = Forges::new(apis(&server, "", "", "/gitea"));
    let repo = repo(ForgeKind::Gitea, "alice/dotfiles");

    let id = forges
        .create_push_hook(&repo, &token(), HOOK_URL, &secret())
        .await
        .unwrap();
    assert_eq!(id, "9");
    forges.delete_hook(&repo, &token(), &id).await.unwrap();

    let recorded = server.recorded();
    assert_eq!(recorded.len(), 2, "{recorded:#?}");
    let create = &recorded[0];
    assert_eq!(create.method, "POST");
    assert_eq!(create.path, "/gitea/api/v1/repos/alice/dotfiles/hooks");
    assert_eq!(
        create.header_values("authorization"),
        [format!("token {TOKEN}")]
    );
    assert_eq!(create.header("content-type"), Some("application/json"));
    assert_eq!(create.header("accept"), Some("application/json"));
    let body = create.json();
    assert_eq!(body["type"], "gitea");
    assert_eq!(body["active"], true);
    assert_eq!(body["events"], json!(["push", "issue_comment"]));
    assert_eq!(body["config"]["url"], HOOK_URL);
    assert_eq!(body["config"]["content_type"], "json");
    assert_eq!(body["config"]["secret"], SECRET);
    assert_eq!(
        body,
        json!({"type": "gitea", "active": true, "events": ["push", "issue_comment"],
               "config": {"url": HOOK_URL, "content_type": "json", "secret": SECRET}})
    );

    let delete = &recorded[1];
    assert_eq!(delete.method, "DELETE");
    assert_eq!(delete.path, "/gitea/api/v1/repos/alice/dotfiles/hooks/9");
    assert_eq!(
        delete.header_values("authorization"),
        [format!("token {TOKEN}")]
    );
    assert!(delete.body.is_empty());
}

/// For each forge: the repository, and the prefix of its hooks' API paths on the test server.
fn every_forge() -> [(ForgeRepo, &'static str); 3] {
    [
        (repo(ForgeKind::GitHub, "o/r"), "/repos/o/r/hooks"),
        (
            repo(ForgeKind::GitLab, "g/p"),
            "/api/v4/projects/g%2Fp/hooks",
        ),
        (repo(ForgeKind::Gitea, "o/r"), "/api/v1/repos/o/r/hooks"),
    ]
}

#[tokio::test]
async fn refusals_become_actionable_errors() {
    for (repo, hooks) in every_forge() {
        let forge = repo.kind;
        for status in [401, 403, 404, 422, 500] {
            let server = ForgeApiServer::start().await;
            server.respond("POST", hooks, status, json!({"message": "no"}));
            server.respond("DELETE", hooks, status, json!({"message": "no"}));
            let forges = Forges::new(apis(&server, "", "", ""));

            let create = forges
                .create_push_hook(&repo, &token(), HOOK_URL, &secret())
                .await
                .unwrap_err();
            let delete = forges.delete_hook(&repo, &token(), "31").await.unwrap_err();
            let context = format!("{forge} {status}: {create:?} / {delete:?}");
            assert_no_secrets(&create);
            assert_no_secrets(&delete);
            match status {
                401 => {
                    assert!(
                        matches!(create, ForgeError::Unauthorized { forge: f } if f == forge),
                        "{context}"
                    );
                    assert!(
                        matches!(delete, ForgeError::Unauthorized { .. }),
                        "{context}"
                    );
                    assert_eq!(
                        create.to_string(),
                        format!("the token was refused by {forge}: check it is valid")
                    );
                }
                403 => {
                    assert!(
                        matches!(&create, ForgeError::Forbidden { forge: f, repo: r }
                            if *f == forge && *r == repo.path),
                        "{context}"
                    );
                    assert!(matches!(delete, ForgeError::Forbidden { .. }), "{context}");
                    assert!(
                        create.to_string().starts_with(&format!(
                            "the token may not manage webhooks of {}: it needs ",
                            repo.path
                        )),
                        "{create}"
                    );
                }
                404 => {
                    assert!(
                        matches!(&create, ForgeError::NotFound { hook_id: None, .. }),
                        "{context}"
                    );
                    assert!(
                        matches!(&delete, ForgeError::NotFound { hook_id: Some(id), .. } if id == "31"),
                        "{context}"
                    );
                }
                status => {
                    assert!(
                        matches!(create, ForgeError::Unexpected { forge: f, status: s } if f == forge && s == status),
                        "{context}"
                    );
                    assert!(
                        matches!(delete, ForgeError::Unexpected { status: s, .. } if s == status),
                        "{context}"
                    );
                }
            }
            let recorded = server.recorded();
            assert_eq!(recorded.len(), 2, "{context}: {recorded:#?}");
            assert_eq!(recorded[1].path, format!("{hooks}/31"), "{context}");
        }
    }
}

#[tokio::test]
async fn connection_refused_is_unreachable() {
    // A port that was just free: nothing listens on it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = url(&format!("http://127.0.0.1:{port}"));
    let forges = Forges::new(ForgeApis {
        github_api: base.clone(),
        gitlab: base.clone(),
        gitea: Some(base),
    });
    for (repo, _) in every_forge() {
        let create = forges
            .create_push_hook(&repo, &token(), HOOK_URL, &secret())
            .await
            .unwrap_err();
        let delete = forges.delete_hook(&repo, &token(), "1").await.unwrap_err();
        for error in [&create, &delete] {
            assert!(
                matches!(error, ForgeError::Unreachable { forge, .. } if *forge == repo.kind),
                "{error:?}"
            );
            assert!(
                error.to_string().to_lowercase().contains("refused"),
                "the cause is shown: {error}"
            );
            assert_no_secrets(error);
        }
    }
}

#[tokio::test]
async fn a_forge_that_does_not_answer_in_time_is_unreachable() {
    let server = ForgeApiServer::start().await;
    for (_, hooks) in every_forge() {
        server.on(
            "POST",
            hooks,
            Reply::json(201, json!({"id": 1})).delayed(Duration::from_secs(30)),
        );
    }
    let forges = Forges::new(apis(&server, "", "", "")).with_timeout(Duration::from_millis(300));
    for (repo, _) in every_forge() {
        let started = std::time::Instant::now();
        let error = forges
            .create_push_hook(&repo, &token(), HOOK_URL, &secret())
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(&error, ForgeError::Unreachable { forge, .. } if *forge == repo.kind),
            "{error:?}"
        );
        assert_no_secrets(&error);
    }
    assert_eq!(Forges::DEFAULT_TIMEOUT, Duration::from_secs(10));
}

#[tokio::test]
async fn unreadable_success_and_bad_hook_ids() {
    let server = ForgeApiServer::start().await;
    for (_, hooks) in every_forge() {
        server.respond("POST", hooks, 201, json!({"no_id": true}));
    }
    let forges = Forges::new(apis(&server, "", "", ""));
    for (repo, _) in every_forge() {
        let error = forges
            .create_push_hook(&repo, &token(), HOOK_URL, &secret())
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ForgeError::InvalidResponse { forge, .. } if *forge == repo.kind),
            "{error:?}"
        );
        assert_no_secrets(&error);

        // A hook id that is no number names no hook, and is never put in a URL.
        server.clear_recorded();
        for bad in ["", "abc", "1/../../x", "-1", "+1"] {
            let error = forges.delete_hook(&repo, &token(), bad).await.unwrap_err();
            assert!(
                matches!(error, ForgeError::NotFound { .. }),
                "{bad}: {error:?}"
            );
        }
        assert!(server.recorded().is_empty());
    }
}

#[tokio::test]
async fn gitea_without_a_base_url_and_malformed_repos() {
    let server = ForgeApiServer::start().await;
    let mut apis = apis(&server, "", "", "");
    apis.gitea = None;
    let forges = Forges::new(apis);
    let error = forges
        .create_push_hook(
            &repo(ForgeKind::Gitea, "o/r"),
            &token(),
            HOOK_URL,
            &secret(),
        )
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
    for bad in [
        repo(ForgeKind::GitHub, "o/r/x"),
        repo(ForgeKind::GitHub, "../x"),
        repo(ForgeKind::GitLab, "single"),
    ] {
        let error = forges
            .create_push_hook(&bad, &token(), HOOK_URL, &secret())
            .await
            .unwrap_err();
        assert!(
            matches!(error, ForgeError::NotFound { .. }),
            "{bad:?}: {error:?}"
        );
    }
    assert!(server.recorded().is_empty());
}

#[tokio::test]
async fn a_token_that_is_no_header_value_is_refused_without_a_request() {
    let server = ForgeApiServer::start().await;
    let forges = Forges::new(apis(&server, "", "", ""));
    let bad = SecretString::from("line\nbreak");
    for (repo, _) in every_forge() {
        let error = forges
            .create_push_hook(&repo, &bad, HOOK_URL, &secret())
            .await
            .unwrap_err();
        assert!(
            matches!(error, ForgeError::Unauthorized { .. }),
            "{error:?}"
        );
        assert!(!format!("{error:?}").contains("line"));
    }
    assert!(server.recorded().is_empty());
}

#[test]
fn debug_of_the_configuration_holds_no_secret() {
    let forges = Forges::new(ForgeApis::default());
    let text = format!("{forges:?}");
    assert!(text.contains("api.github.com"), "{text}");
    assert!(!text.contains(TOKEN));
}
