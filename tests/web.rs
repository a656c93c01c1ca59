//! The web UI over plain HTTP, as a hostile or careless client meets it: sign-in and sessions,
//! CSRF, escaping, security headers, redirects that stay on the hub. The real binary, real
//! upstreams; each test on SQLite, and on PostgreSQL when `MIRRORHUB_TEST_POSTGRES_URL` names
//! a server. The browser journeys are in `tests/ui.rs`.

#[macro_use]
mod common;

use common::{Db, Hub, TestDb, TOKEN};
use mirrorhub_testkit::{init_bare, GitDaemon, Scratch, SshKeyPair, SshServer};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

on_both_databases!(
    pages_need_a_session_and_sign_in_is_protected,
    forms_without_the_session_token_are_refused,
    sign_out_ends_the_session_everywhere,
    user_text_is_escaped_and_pages_are_locked_down,
    forms_show_errors_next_to_their_fields,
    settings_are_checked_and_saved,
    users_sign_in_with_a_password_and_see_what_they_may,
    an_ssh_mirror_from_the_form_and_a_changed_host_key_accepted_in_settings,
    ssh_fields_show_their_errors_and_never_echo_a_private_key,
    mirror_sets_are_made_shown_and_deleted_in_the_pages,
    push_mirrors_are_managed_on_the_repository_page
);

/// A cookie-keeping client that never follows redirects (they are asserted).
struct Visitor {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
    headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The value of the first `name="csrf"` hidden field.
    fn csrf(&self) -> String {
        hidden(&self.body, "csrf")
    }
}

fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in:\n{body}"))
        + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

impl Visitor {
    fn new(hub: &Hub) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: hub.base.clone(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header(COOKIE, self.cookie_header())
        };
        let resp = req.send().await.expect("request to the hub");
        for set in resp.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !attrs.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        Page {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get(LOCATION)
                .map(|l| l.to_str().unwrap().to_owned()),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// Signs in as a user with a password.
    async fn sign_in_as(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/-/login").await;
        self.post(
            "/-/login",
            &[
                ("csrf", &form.csrf()),
                ("username", username),
                ("token", password),
                ("next", "/"),
            ],
        )
        .await
    }

    async fn sign_in(&mut self) {
        let form = self.get("/-/login").await;
        let page = self
            .post(
                "/-/login",
                &[("csrf", &form.csrf()), ("token", TOKEN), ("next", "/")],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert!(self.cookie("mirrorhub_session").is_some());
    }
}

async fn upstream(daemon_root: &std::path::Path) -> GitDaemon {
    let upstream = daemon_root.join("project.git");
    init_bare(&upstream);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first commit");
    work.push_mirror(upstream.to_str().unwrap());
    mirrorhub_testkit::git(&upstream, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    GitDaemon::start(daemon_root).await
}

/// Mirrors the daemon's `project.git` as `team/app` (with `extra` fields in the create call)
/// and waits for the first copy.
async fn mirror_app(hub: &Hub, daemon: &GitDaemon, extra: serde_json::Value) {
    let mut body =
        json!({"url": daemon.url("project.git"), "owner": "team", "name": "app", "mode": "mirror"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, answer) = hub.post("/api/v1/repos", body).await;
    assert_eq!(status, 202, "{answer}");
    hub.wait_for_run("team/app", None).await;
}

async fn pages_need_a_session_and_sign_in_is_protected(db: TestDb) {
    let hub = Hub::start(&db, &[]).await;
    let mut v = Visitor::new(&hub);
    let page = v.get("/team/app").await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location.as_deref(),
        Some("/-/login?next=%2Fteam%2Fapp")
    );

    // The sign-in form sets its double-submit cookie; a post without it is refused.
    let form = v.get("/-/login?next=/team/app").await;
    assert_eq!(form.status, 200);
    assert_eq!(hidden(&form.body, "next"), "/team/app");
    let login_cookie = v.cookie("mirrorhub_login").expect("login cookie");
    let set = form.headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Secure"),
        "{set}"
    );
    let mut stranger = Visitor::new(&hub);
    let forged = stranger
        .post("/-/login", &[("csrf", &login_cookie), ("token", TOKEN)])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(forged.body.contains("Reload the page"), "{}", forged.body);

    // A wrong token: the error next to the token field, no session.
    let wrong = v
        .post(
            "/-/login",
            &[
                ("csrf", &form.csrf()),
                ("token", "nope"),
                ("next", "/team/app"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 200, "shown again, with the error");
    assert!(wrong.body.contains("id=\"token-error\""), "{}", wrong.body);
    assert!(wrong.body.contains("aria-invalid=\"true\""));
    assert!(v.cookie("mirrorhub_session").is_none());

    // The right one: back to where the visitor was going, never to another site.
    let ok = v
        .post(
            "/-/login",
            &[
                ("csrf", &form.csrf()),
                ("token", TOKEN),
                ("next", "//evil.example/x"),
            ],
        )
        .await;
    assert_eq!((ok.status, ok.location.as_deref()), (303, Some("/")));
    let session = ok
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("mirrorhub_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly")
            && session.contains("Secure")
            && session.contains("Max-Age=43200"),
        "{session}"
    );
    let list = v.get("/").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("No repositories yet"), "{}", list.body);
    // Signed in, the sign-in page sends the visitor on.
    assert_eq!(v.get("/-/login").await.status, 303);
    // A made-up session cookie is a visitor like any other.
    let mut forger = Visitor::new(&hub);
    forger
        .cookies
        .push(("mirrorhub_session".into(), "0".repeat(64)));
    assert_eq!(forger.get("/").await.status, 303);
}

async fn forms_without_the_session_token_are_refused(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let daemon = upstream(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    mirror_app(&hub, &daemon, json!({})).await;
    let first = hub.latest_run_id("team/app").await;

    let mut v = Visitor::new(&hub);
    v.sign_in().await;
    let page = v.get("/team/app").await;
    assert_eq!(page.status, 200);
    let csrf = page.csrf();
    // What a cross-site form could send: the browser adds the cookie, not the token.
    for (path, form) in [
        ("/team/app/-/sync", vec![("back", "/")]),
        ("/team/app/-/delete", vec![("confirm", "team/app")]),
        ("/team/app/-/settings", vec![("description", "owned")]),
        (
            "/-/new",
            vec![("url", "git://127.0.0.1/x.git"), ("owner", "evil")],
        ),
    ] {
        let mut with_wrong = form.clone();
        with_wrong.push(("csrf", "0000"));
        for attempt in [form, with_wrong] {
            let refused = v.post(path, &attempt).await;
            assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        }
    }
    let (_, repo) = hub.get("/api/v1/repos/team/app").await;
    assert_eq!(repo["description"], "", "nothing changed");
    assert_eq!(hub.latest_run_id("team/app").await, first, "no sync queued");

    // With the token, the sync button works and says so.
    let synced = v
        .post("/team/app/-/sync", &[("csrf", &csrf), ("back", "/")])
        .await;
    assert_eq!(
        (synced.status, synced.location.as_deref()),
        (303, Some("/?notice=sync-queued"))
    );
    let list = v.get("/?notice=sync-queued").await;
    assert!(list.body.contains("Sync queued"), "{}", list.body);
    hub.wait_for_run("team/app", first).await;
}

async fn sign_out_ends_the_session_everywhere(db: TestDb) {
    let hub = Hub::start(&db, &[]).await;
    let mut v = Visitor::new(&hub);
    v.sign_in().await;
    let copied = v.cookie("mirrorhub_session").unwrap();
    let page = v.get("/").await;
    let out = v.post("/-/logout", &[("csrf", &page.csrf())]).await;
    assert_eq!(
        (out.status, out.location.as_deref()),
        (303, Some("/-/login?notice=signed-out"))
    );
    assert!(
        v.cookie("mirrorhub_session").is_none(),
        "the browser forgets it"
    );
    let mut thief = Visitor::new(&hub);
    thief.cookies.push(("mirrorhub_session".into(), copied));
    assert_eq!(thief.get("/").await.status, 303, "the server forgot it too");
}

async fn user_text_is_escaped_and_pages_are_locked_down(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let daemon = upstream(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    let hostile = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    mirror_app(&hub, &daemon, json!({"description": hostile})).await;
    let mut v = Visitor::new(&hub);
    v.sign_in().await;
    let page = v.get("/team/app").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(!page.body.contains("<img src=x"), "{}", page.body);
    assert!(
        page.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("first commit"),
        "the commit list: {}",
        page.body
    );
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["cache-control"], "no-store");
    // The clone URL pasted into a browser leads to the page; unknown repositories are a page too.
    let pasted = v.get("/team/app.git").await;
    assert_eq!(
        (pasted.status, pasted.location.as_deref()),
        (303, Some("/team/app"))
    );
    let missing = v.get("/team/nothing").await;
    assert_eq!(missing.status, 404);
    assert!(missing.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        missing.body.contains("team/nothing does not exist"),
        "{}",
        missing.body
    );
    // The API keeps answering in JSON.
    let (status, body) = hub.get("/api/v1/repos/team/nothing").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("repo_not_found"))
    );
    // Assets are served from the binary.
    let css = v.get("/-/static/app.css").await;
    assert_eq!(css.status, 200);
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(v.get("/-/static/../Cargo.toml").await.status, 404);
}

type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

async fn forms_show_errors_next_to_their_fields(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let daemon = upstream(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    let mut v = Visitor::new(&hub);
    v.sign_in().await;
    let form = v.get("/-/new").await;
    assert_eq!(form.status, 200);
    let csrf = form.csrf();
    let url = daemon.url("project.git");
    // (form fields, id of the error element, what it must say)
    let cases: &[Case] = &[
        (
            &[("url", "file:///etc/passwd"), ("owner", "team")],
            "url-error",
            "file",
        ),
        (
            &[("url", "http://10.1.2.3/x.git"), ("owner", "team")],
            "url-error",
            "MIRRORHUB_ALLOWED_HOSTS",
        ),
        (&[("url", &url), ("owner", "../x")], "owner-error", "owner"),
        (
            &[("url", &url), ("owner", "team"), ("sync_interval", "soon")],
            "sync_interval-error",
            "",
        ),
    ];
    for (fields, error_id, needle) in cases {
        let mut body = vec![
            ("csrf", csrf.as_str()),
            ("action", "create"),
            ("mode", "mirror"),
        ];
        body.extend_from_slice(fields);
        let page = v.post("/-/new", &body).await;
        assert_eq!(page.status, 200, "{fields:?}: shown again, with the error");
        let start = page
            .body
            .find(&format!("id=\"{error_id}\""))
            .unwrap_or_else(|| panic!("{fields:?}: no {error_id} in\n{}", page.body));
        let shown = &page.body[start..start + 300];
        assert!(shown.contains(needle), "{fields:?}: {shown}");
        // What was typed stays in the form.
        assert!(
            page.body
                .contains(&format!("value=\"{}\"", fields[0].1.replace('&', "&amp;"))),
            "{}",
            page.body
        );
    }
    let (_, repos) = hub.get("/api/v1/repos").await;
    assert_eq!(repos.as_array().unwrap().len(), 0, "nothing half-created");

    // Test connection: a report, nothing created.
    let tested = v
        .post(
            "/-/new",
            &[
                ("csrf", &csrf),
                ("action", "test"),
                ("url", &url),
                ("owner", "team"),
            ],
        )
        .await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert!(
        tested
            .body
            .contains("Connected: 1 branch, 0 tags, default branch main."),
        "{}",
        tested.body
    );
    let (_, repos) = hub.get("/api/v1/repos").await;
    assert_eq!(repos.as_array().unwrap().len(), 0);

    // Launch: to the new repository's page.
    let created = v
        .post(
            "/-/new",
            &[
                ("csrf", &csrf),
                ("action", "create"),
                ("url", &url),
                ("owner", "team"),
                ("mode", "mirror"),
            ],
        )
        .await;
    assert_eq!(
        (created.status, created.location.as_deref()),
        (303, Some("/team/project?notice=created"))
    );
    hub.wait_for_run("team/project", None).await;
    // Deleting needs the exact name.
    let page = v.get("/team/project").await;
    let refused = v
        .post(
            "/team/project/-/delete",
            &[("csrf", &page.csrf()), ("confirm", "project")],
        )
        .await;
    assert_eq!(refused.status, 200);
    assert!(
        refused.body.contains("Nothing was deleted"),
        "{}",
        refused.body
    );
    let gone = v
        .post(
            "/team/project/-/delete",
            &[("csrf", &page.csrf()), ("confirm", "team/project")],
        )
        .await;
    assert_eq!(
        (gone.status, gone.location.as_deref()),
        (303, Some("/?notice=deleted"))
    );
    assert_eq!(hub.get("/api/v1/repos/team/project").await.0, 404);
}

async fn settings_are_checked_and_saved(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let daemon = upstream(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    mirror_app(&hub, &daemon, json!({})).await;
    let mut v = Visitor::new(&hub);
    v.sign_in().await;
    let page = v.get("/team/app").await;
    assert!(
        page.body.contains("value=\"24h\""),
        "the interval as typed: {}",
        page.body
    );
    let csrf = page.csrf();

    // A bad interval: said next to the field, nothing saved, the typed values kept.
    let bad = v
        .post(
            "/team/app/-/settings",
            &[
                ("csrf", &csrf),
                ("sync_interval", "1s"),
                ("description", "kept"),
                ("visibility", "public"),
            ],
        )
        .await;
    assert_eq!(bad.status, 200);
    let at = bad
        .body
        .find("id=\"set-sync_interval-error\"")
        .expect(&bad.body);
    assert!(
        bad.body[at..].contains("at least"),
        "{}",
        &bad.body[at..at + 200]
    );
    assert!(bad.body.contains(">kept</textarea>"));
    let (_, repo) = hub.get("/api/v1/repos/team/app").await;
    assert_eq!(
        (repo["sync_interval"].as_str(), repo["description"].as_str()),
        (Some("24h"), Some(""))
    );

    // Valid: saved, and back on the page with a notice.
    let saved = v
        .post(
            "/team/app/-/settings",
            &[
                ("csrf", &csrf),
                ("sync_interval", "2h"),
                ("description", "our app"),
                ("visibility", "public"),
            ],
        )
        .await;
    assert_eq!(
        (saved.status, saved.location.as_deref()),
        (303, Some("/team/app?notice=saved#settings"))
    );
    let (_, repo) = hub.get("/api/v1/repos/team/app").await;
    assert_eq!(repo["sync_interval"], "2h");
    assert_eq!(repo["description"], "our app");
    assert_eq!(repo["visibility"], "public");
    assert!(v
        .get("/team/app?notice=saved")
        .await
        .body
        .contains("Settings saved."));
}

async fn users_sign_in_with_a_password_and_see_what_they_may(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let daemon = upstream(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    mirror_app(&hub, &daemon, json!({"visibility": "private"})).await;
    for (user, role) in [("ana", "read"), ("bob", "admin"), ("carol", "")] {
        let (status, body) = hub
            .post(
                "/api/v1/users",
                json!({"username": user, "password": format!("{user}-password-long")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        if !role.is_empty() {
            let (status, body) = hub
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/v1/orgs/team/members/{user}"),
                    Some(json!({"role": role})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }

    // A wrong password: the form again, with what was typed and the reason.
    let mut ana = Visitor::new(&hub);
    let page = ana.sign_in_as("ana", "not-her-password").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Wrong username or password."),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"value="ana""#), "{}", page.body);
    assert!(ana.cookie("mirrorhub_session").is_none());

    // A reader: sees the repository and its history, but no sync, settings, secret or delete.
    let page = ana.sign_in_as("ana", "ana-password-long").await;
    assert_eq!(page.status, 303, "{}", page.body);
    let list = ana.get("/").await;
    assert!(list.body.contains(r#"id="who">ana<"#), "{}", list.body);
    assert!(list.body.contains("/team/app"), "{}", list.body);
    assert!(!list.body.contains("id=\"sync-team-app\""), "{}", list.body);
    let page = ana.get("/team/app").await;
    assert_eq!(page.status, 200);
    for hidden in [
        "id=\"sync-now\"",
        "id=\"settings\"",
        "id=\"delete\"",
        "id=\"webhook-secret\"",
        "id=\"promote\"",
    ] {
        assert!(!page.body.contains(hidden), "{hidden} shown to a reader");
    }
    let csrf = page.csrf();
    let refused = ana
        .post("/team/app/-/sync", &[("csrf", &csrf), ("back", "/")])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = ana
        .post(
            "/team/app/-/delete",
            &[("csrf", &csrf), ("confirm", "team/app")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let (status, _) = hub.get("/api/v1/repos/team/app").await;
    assert_eq!(status, 200, "still there");

    // An admin of the organization: everything.
    let mut bob = Visitor::new(&hub);
    assert_eq!(bob.sign_in_as("BOB", "bob-password-long").await.status, 303);
    let page = bob.get("/team/app").await;
    for shown in ["id=\"settings\"", "id=\"delete\""] {
        assert!(page.body.contains(shown), "{shown} not shown to an admin");
    }
    let synced = bob
        .post("/team/app/-/sync", &[("csrf", &page.csrf()), ("back", "/")])
        .await;
    assert_eq!(synced.status, 303, "{}", synced.body);

    // No member: the private repository does not exist, and is not listed.
    let mut carol = Visitor::new(&hub);
    assert_eq!(
        carol
            .sign_in_as("carol", "carol-password-long")
            .await
            .status,
        303
    );
    assert_eq!(carol.get("/team/app").await.status, 404);
    assert!(!carol.get("/").await.body.contains("/team/app"));
    // Nor may she create repositories under the organization.
    let form = carol.get("/-/new").await;
    let page = carol
        .post(
            "/-/new",
            &[
                ("csrf", &form.csrf()),
                ("url", &daemon.url("project.git")),
                ("owner", "team"),
                ("name", "mine"),
                ("mode", "mirror"),
                ("visibility", "private"),
            ],
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("you may not create repositories under team"),
        "{}",
        page.body
    );
}

/// `base` and then `extra`.
fn with<'a>(base: &[(&'a str, &'a str)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(extra).copied().collect()
}

/// The text of the element with `id`, from its start tag to the next `</`.
fn element(body: &str, id: &str) -> String {
    let start = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in:\n{body}"));
    let rest = &body[start..];
    rest[..rest.find("</").unwrap_or(rest.len())].to_owned()
}

/// The `value` of the input with `id`.
fn input_value(body: &str, id: &str) -> String {
    let at = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in:\n{body}"));
    let tag_start = body[..at].rfind('<').unwrap();
    let tag = &body[tag_start..tag_start + body[tag_start..].find('>').unwrap()];
    let start = tag.find("value=\"").expect(tag) + "value=\"".len();
    tag[start..].split('"').next().unwrap().to_owned()
}

/// A bare `project.git` under `root` with one commit on `main`, served by a real sshd.
async fn ssh_upstream(root: &std::path::Path) -> SshServer {
    let upstream = root.join("project.git");
    init_bare(&upstream);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first commit");
    work.push_mirror(upstream.to_str().unwrap());
    mirrorhub_testkit::git(&upstream, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    SshServer::start(root).await
}

async fn an_ssh_mirror_from_the_form_and_a_changed_host_key_accepted_in_settings(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let mut server = ssh_upstream(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    let mut v = Visitor::new(&hub);
    v.sign_in().await;
    let csrf = v.get("/-/new").await.csrf();
    let url = server.url("project.git");
    let base = [
        ("csrf", csrf.as_str()),
        ("url", url.as_str()),
        ("owner", "team"),
        ("mode", "mirror"),
    ];
    // An SSH address: the page offers the SSH login, not a token.
    let page = v
        .post("/-/new", &with(&base, &[("action", "detect_host_keys")]))
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("id=\"login-http\" data-login=\"http\" hidden"),
        "the token fields are put away for an SSH address"
    );
    assert!(!page
        .body
        .contains("id=\"login-ssh\" data-login=\"ssh\" hidden"));
    // Detect host keys: each key's type and fingerprint, carried by the form, not yet trusted.
    let table = &page.body[page.body.find("id=\"host-keys\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert!(table.contains(&server.host_key_fingerprint()), "{table}");
    assert!(table.contains("ssh-ed25519"), "{table}");
    let known_hosts = hidden(&page.body, "known_hosts");
    assert_eq!(known_hosts.trim(), server.known_hosts_line());
    assert!(!page.body.contains("id=\"trust-host-keys\" checked"));

    // Generate a deploy key: its public line to copy, its fingerprint, where to add it.
    let page = v
        .post(
            "/-/new",
            &with(
                &base,
                &[("action", "generate_key"), ("known_hosts", &known_hosts)],
            ),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let public_key = input_value(&page.body, "ssh-public-key");
    assert!(public_key.starts_with("ssh-ed25519 AAAA"), "{public_key}");
    assert!(page.body.contains("data-copy=\"ssh-public-key\""));
    let (_, keys) = hub.get("/api/v1/ssh-keys?owner=team").await;
    assert_eq!(keys[0]["public_key"], public_key.as_str(), "{keys}");
    let key_id = keys[0]["id"].as_i64().unwrap().to_string();
    assert!(element(&page.body, "ssh-key-fingerprint")
        .contains(keys[0]["fingerprint"].as_str().unwrap()));
    assert!(page.body.contains("read-only"));
    for forge in ["GitHub", "GitLab", "Gitea", "Bitbucket"] {
        assert!(page.body.contains(forge), "{forge}");
    }
    assert!(
        page.body.contains(&format!(
            "value=\"{key_id}\" id=\"ssh-key-{key_id}\" checked"
        )),
        "the new key is chosen"
    );
    assert_eq!(
        hidden(&page.body, "known_hosts").trim(),
        known_hosts.trim(),
        "the detected keys stay in the form"
    );

    // The key is not on the server yet: refused, next to the key; nothing created.
    let trusted = [
        ("action", "create"),
        ("ssh_key", key_id.as_str()),
        ("known_hosts", known_hosts.as_str()),
        ("trust_host_keys", "true"),
    ];
    let page = v.post("/-/new", &with(&base, &trusted)).await;
    assert_eq!(page.status, 200);
    assert!(
        element(&page.body, "ssh_key_id-error").contains("refused"),
        "{}",
        element(&page.body, "ssh_key_id-error")
    );
    assert_eq!(hub.get("/api/v1/repos").await.1, json!([]));

    // Added upstream; but the host keys must be confirmed first.
    server.authorize(&public_key);
    let page = v
        .post(
            "/-/new",
            &with(
                &base,
                &[
                    ("action", "create"),
                    ("ssh_key", key_id.as_str()),
                    ("known_hosts", known_hosts.as_str()),
                ],
            ),
        )
        .await;
    assert!(element(&page.body, "known_hosts-error").contains("tick the box"));
    assert_eq!(hub.get("/api/v1/repos").await.1, json!([]));

    // Test connection with the key: connected.
    let mut test = trusted.to_vec();
    test[0] = ("action", "test");
    let page = v.post("/-/new", &with(&base, &test)).await;
    assert!(
        element(&page.body, "test-result")
            .contains("Connected: 1 branch, 0 tags, default branch main."),
        "{}",
        page.body
    );

    // Confirmed: created with exactly the keys the user saw, and it syncs.
    let page = v.post("/-/new", &with(&base, &trusted)).await;
    assert_eq!(
        (page.status, page.location.as_deref()),
        (303, Some("/team/project?notice=created")),
        "{}",
        page.body
    );
    let (repo, run) = hub.wait_for_run("team/project", None).await;
    assert_eq!(run["outcome"], "success", "{run}\n{}", hub.log_text());
    assert_eq!(repo["ssh_key_id"].to_string(), key_id);
    assert_eq!(
        repo["host_keys"][0]["fingerprint"],
        server.host_key_fingerprint()
    );
    assert_eq!(repo["branches"], 1);

    // The repository's page: which deploy key, which host keys are pinned; no token fields.
    let page = v.get("/team/project").await;
    let login = element(&page.body, "ssh-deploy-key");
    assert!(
        login.contains(keys[0]["title"].as_str().unwrap())
            && login.contains(keys[0]["fingerprint"].as_str().unwrap()),
        "{login}"
    );
    let old_fingerprint = server.host_key_fingerprint();
    assert!(page.body.contains(&old_fingerprint));
    assert!(!page.body.contains("id=\"set-token\""), "no token for SSH");
    assert!(page.body.contains("id=\"known-hosts\""));

    // The server's host key changes: the sync fails and pauses, and the page says so, with
    // both fingerprints, pointing at the control that accepts the new key.
    server.replace_host_key().await;
    let new_fingerprint = server.host_key_fingerprint();
    let before = hub.latest_run_id("team/project").await;
    let csrf = page.csrf();
    v.post(
        "/team/project/-/sync",
        &[("csrf", &csrf), ("back", "/team/project")],
    )
    .await;
    let (repo, run) = hub.wait_for_run("team/project", before).await;
    assert_eq!(run["error"]["code"], "host_key_mismatch", "{run}");
    assert!(repo["paused_reason"].is_string(), "{repo}");
    let page = v.get("/team/project").await;
    let said = &page.body[page.body.find("id=\"host-key-mismatch\"").unwrap()..];
    let said = &said[..said.find("</div>").unwrap()];
    assert!(
        said.contains(&old_fingerprint) && said.contains(&new_fingerprint),
        "{said}"
    );
    assert!(said.contains("href=\"#host-keys\""), "{said}");

    // Detect what the server offers now: shown for confirmation, nothing changed yet.
    let page = v
        .post(
            "/team/project/-/host-keys",
            &[("csrf", &csrf), ("action", "detect")],
        )
        .await;
    assert_eq!(page.status, 200);
    let detected = &page.body[page.body.find("id=\"detected-host-keys\"").unwrap()..];
    assert!(detected[..detected.find("</table>").unwrap()].contains(&new_fingerprint));
    let (_, repo) = hub.get("/api/v1/repos/team/project").await;
    assert_eq!(repo["host_keys"][0]["fingerprint"], old_fingerprint);
    let offered = {
        let form = &page.body[page.body.find("id=\"accept-host-keys\"").unwrap()..];
        hidden(form, "known_hosts")
    };

    // Garbage is refused next to the textarea, and nothing changes.
    let bad = v
        .post(
            "/team/project/-/host-keys",
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("known_hosts", "not a key"),
            ],
        )
        .await;
    assert_eq!(bad.status, 200);
    assert!(element(&bad.body, "host-keys-error").contains("not an SSH host key type"));
    assert!(bad.body.contains(">not a key</textarea>"));

    // Accepted: pinned, the pause lifted, a sync queued, and it succeeds.
    let before = hub.latest_run_id("team/project").await;
    let accepted = v
        .post(
            "/team/project/-/host-keys",
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("known_hosts", &offered),
            ],
        )
        .await;
    assert_eq!(
        (accepted.status, accepted.location.as_deref()),
        (303, Some("/team/project?notice=host-keys-saved#status")),
        "{}",
        accepted.body
    );
    let (repo, run) = hub.wait_for_run("team/project", before).await;
    assert_eq!(
        run["outcome"],
        "unchanged",
        "the upstream did not move: {run}\n{}",
        hub.log_text()
    );
    assert!(repo["paused_reason"].is_null(), "{repo}");
    assert_eq!(repo["host_keys"][0]["fingerprint"], new_fingerprint);
    let page = v.get("/team/project").await;
    assert!(!page.body.contains("id=\"host-key-mismatch\""));
    let pinned = &page.body[page.body.find("id=\"pinned-host-keys\"").unwrap()..];
    let pinned = &pinned[..pinned.find("</dd>").unwrap()];
    assert!(
        pinned.contains(&new_fingerprint) && !pinned.contains(&old_fingerprint),
        "{pinned}"
    );

    // Without the session's token, no host keys are replaced.
    let forged = v
        .post(
            "/team/project/-/host-keys",
            &[
                ("csrf", "x"),
                ("action", "save"),
                ("known_hosts", &known_hosts),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
}

async fn ssh_fields_show_their_errors_and_never_echo_a_private_key(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let server = ssh_upstream(root.path()).await;
    let daemon = GitDaemon::start(root.path()).await;
    let hub = Hub::start(&db, &[]).await;
    let mut v = Visitor::new(&hub);
    v.sign_in().await;
    let csrf = v.get("/-/new").await.csrf();
    let url = server.url("project.git");
    let key = SshKeyPair::generate("mine");
    let key_body: String = key
        .private_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let other_host_key = SshKeyPair::generate("not the server");
    let wrong_pin = format!(
        "[127.0.0.1]:{} {}",
        server.port(),
        other_host_key
            .public_key
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let git_url = daemon.url("project.git");
    // (form fields, id of the error element, what it must say)
    let cases: &[Case] = &[
        // A token for an SSH address: under the token, which is shown again for it.
        (
            &[("url", &url), ("token", "t0k"), ("owner", "team")],
            "token-error",
            "key, not a token",
        ),
        // A key for a git:// address: under the key.
        (
            &[
                ("url", &git_url),
                ("ssh_private_key", &key.private_key),
                ("owner", "team"),
            ],
            "ssh_private_key-error",
            "ssh://",
        ),
        // An SSH address the policy refuses: under the address.
        (
            &[
                ("url", "ssh://git@10.20.30.40/team/x.git"),
                ("action", "detect_host_keys"),
                ("owner", "team"),
            ],
            "url-error",
            "MIRRORHUB_ALLOWED_HOSTS",
        ),
        // Option injection through the address: refused before anything runs.
        (
            &[
                ("url", "ssh://-oProxyCommand=touch@x/y.git"),
                ("action", "detect_host_keys"),
                ("owner", "team"),
            ],
            "url-error",
            "",
        ),
        // Not a private key.
        (
            &[
                ("url", &url),
                ("ssh_key", "upload"),
                ("ssh_private_key", "hello"),
                ("known_hosts", &wrong_pin),
                ("trust_host_keys", "true"),
                ("owner", "team"),
            ],
            "ssh_private_key-error",
            "OpenSSH private key",
        ),
        // Upload chosen, nothing pasted.
        (
            &[("url", &url), ("ssh_key", "upload"), ("owner", "team")],
            "ssh_private_key-error",
            "paste the private key",
        ),
        // A pinned key the server does not show: a host key mismatch, next to the host keys.
        (
            &[
                ("url", &url),
                ("ssh_key", "upload"),
                ("ssh_private_key", &key.private_key),
                ("known_hosts", &wrong_pin),
                ("trust_host_keys", "true"),
                ("owner", "team"),
            ],
            "known_hosts-error",
            "host key",
        ),
        // No host keys detected: asked for.
        (
            &[
                ("url", &url),
                ("ssh_key", "upload"),
                ("ssh_private_key", &key.private_key),
                ("owner", "team"),
            ],
            "known_hosts-error",
            "Detect host keys",
        ),
    ];
    for (fields, error_id, needle) in cases {
        let mut body = vec![
            ("csrf", csrf.as_str()),
            ("action", "create"),
            ("mode", "mirror"),
        ];
        body.extend_from_slice(fields);
        // A later "action" wins in the form: keep only the last one.
        if let Some(last) = body.iter().rposition(|(k, _)| *k == "action") {
            let action = body[last];
            body.retain(|(k, _)| *k != "action");
            body.push(action);
        }
        let page = v.post("/-/new", &body).await;
        assert_eq!(page.status, 200, "{fields:?}: shown again, with the error");
        let shown = element(&page.body, error_id);
        assert!(shown.contains(needle), "{fields:?}: {shown}");
        // The field is marked (host keys not detected yet have no field: the error is
        // next to the Detect button).
        assert!(
            page.body.contains("aria-invalid=\"true\"")
                || (*error_id == "known_hosts-error" && !page.body.contains("id=\"host-keys\"")),
            "{fields:?}: no field marked invalid"
        );
        // What was typed stays, except the private key.
        assert!(
            page.body
                .contains(&format!("value=\"{}\"", fields[0].1.replace('&', "&amp;"))),
            "{fields:?}"
        );
        assert!(
            !page.body.contains(&key_body[..40]),
            "{fields:?}: the private key was sent back"
        );
        if fields
            .iter()
            .any(|(k, v)| *k == "ssh_private_key" && v.len() > 10)
        {
            assert!(page.body.contains("id=\"ssh-key-again\""), "{fields:?}");
        }
    }
    assert_eq!(
        hub.get("/api/v1/repos").await.1,
        json!([]),
        "nothing created"
    );
    let log = hub.log_text();
    assert!(!log.contains(&key_body[..40]), "the private key was logged");
}

async fn mirror_sets_are_made_shown_and_deleted_in_the_pages(db: TestDb) {
    use mirrorhub_testkit::{tiny_repos, HttpGitServer, NamespaceForge, NamespaceServer, RepoSpec};
    let root = tempfile::tempdir().unwrap();
    tiny_repos(root.path(), &["acme/api"]);
    let git = HttpGitServer::start(root.path(), None).await;
    let api = NamespaceServer::start(NamespaceForge::Gitea).await;
    api.forward_git_to(&git.url(""));
    api.set_token("gitea-token");
    api.add_repo("acme", RepoSpec::new("api"));
    api.add_repo("acme", RepoSpec::new("tools"));
    let hub = Hub::start(&db, &[]).await;
    let mut v = Visitor::new(&hub);
    v.sign_in().await;

    let page = v.get("/-/sets").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"create-set\""), "{}", page.body);
    assert!(page.body.contains("id=\"no-sets\""));
    let csrf = page.csrf();
    let form = |token: &'static str, api_url: String| {
        vec![
            ("forge", "gitea".to_owned()),
            ("api_url", api_url),
            ("namespace", "acme".to_owned()),
            ("owner", "team".to_owned()),
            ("token", token.to_owned()),
            ("exclude", "tools, sandbox-*".to_owned()),
            ("visibility", "as-upstream".to_owned()),
            ("mode", "mirror".to_owned()),
        ]
    };
    // A wrong token is shown next to its field; the token is never written back.
    let refused = post_set(&mut v, form("wrong-token", api.api_url()), &csrf).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("id=\"token-error\""),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains("wrong-token"));
    assert_eq!(input_value(&refused.body, "exclude"), "tools, sandbox-*");
    // Without the session's CSRF token: refused.
    let forged = post_set(&mut v, form("gitea-token", api.api_url()), "nope").await;
    assert_eq!(forged.status, 403);

    let made = post_set(&mut v, form("gitea-token", api.api_url()), &csrf).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let location = made.location.unwrap();
    assert!(location.starts_with("/-/sets/") && location.ends_with("?notice=set-created"));
    let set_path = location.split('?').next().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let page = loop {
        let page = v.get(&set_path).await;
        assert_eq!(page.status, 200);
        if page.body.contains("team/api") && page.body.contains("synced") {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{}", page.body);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        page.body.contains("matched by the exclude glob"),
        "{}",
        page.body
    );
    let listed = v.get("/-/sets").await;
    assert!(listed.body.contains("gitea: acme"), "{}", listed.body);

    let again = v
        .post(&format!("{set_path}/sync"), &[("csrf", &csrf)])
        .await;
    assert_eq!(again.status, 303);
    assert!(again.location.unwrap().ends_with("notice=set-listing"));
    let deleted = v
        .post(&format!("{set_path}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(deleted.status, 303);
    assert_eq!(v.get(&set_path).await.status, 404);
    let (status, _) = hub.get("/api/v1/repos/team/api").await;
    assert_eq!(status, 200, "the set's mirrors are kept");
}

/// Posts the mirror set form with `csrf`.
async fn post_set(v: &mut Visitor, fields: Vec<(&'static str, String)>, csrf: &str) -> Page {
    let mut all: Vec<(&str, String)> = vec![("csrf", csrf.to_owned())];
    all.extend(fields);
    let req = v.http.post(format!("{}/-/sets", v.base)).form(&all);
    v.send(req).await
}

async fn push_mirrors_are_managed_on_the_repository_page(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let daemon = upstream(root.path()).await;
    let down = root.path().join("down.git");
    init_bare(&down);
    let hub = Hub::start(&db, &[]).await;
    mirror_app(&hub, &daemon, json!({})).await;
    let mut v = Visitor::new(&hub);
    v.sign_in().await;
    let page = v.get("/team/app").await;
    assert!(page.body.contains("id=\"push-mirrors\""), "{}", page.body);
    let csrf = page.csrf();
    let url = daemon.url("down.git");

    // Without the session's token: refused. A bad pattern: the page again, saying which.
    let forged = v
        .post(
            "/team/app/-/push-mirrors",
            &[("csrf", "0000"), ("url", &url)],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let refused = v
        .post(
            "/team/app/-/push-mirrors",
            &[
                ("csrf", &csrf),
                ("url", &url),
                ("only_branches", "main\n/(<b>/"),
                ("token", "t0k-secret"),
                ("username", "u"),
            ],
        )
        .await;
    assert_eq!(refused.status, 200, "{}", refused.body);
    assert!(
        refused.body.contains("id=\"push-mirror-error\""),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("/(&#60;b&#62;/") && !refused.body.contains("/(<b>/"),
        "the pattern, escaped: {}",
        refused.body
    );
    assert!(
        !refused.body.contains("t0k-secret"),
        "the token is never sent back"
    );
    assert!(refused.body.contains(&url), "the URL is kept");
    let (_, list) = hub.get("/api/v1/repos/team/app/push-mirrors").await;
    assert_eq!(list, json!([]));

    let added = v
        .post(
            "/team/app/-/push-mirrors",
            &[
                ("csrf", &csrf),
                ("url", &url),
                ("only_branches", "main"),
                ("prune", "true"),
                ("force", "true"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    assert!(added.location.unwrap().contains("notice=push-mirror-added"));
    let (_, list) = hub.get("/api/v1/repos/team/app/push-mirrors").await;
    assert_eq!(list[0]["tags"], false, "an unchecked box is off");
    assert_eq!(list[0]["only_branches"], json!(["main"]));
    let id = list[0]["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !common::refs(&down).contains("refs/heads/main") {
        assert!(std::time::Instant::now() < deadline, "never pushed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let page = v.get("/team/app").await;
    assert!(
        page.body.contains(&format!("id=\"push-now-{id}\"")),
        "{}",
        page.body
    );
    assert!(page.body.contains(&url));

    let queued = v
        .post(
            &format!("/team/app/-/push-mirrors/{id}/sync"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(queued.status, 303, "{}", queued.body);
    assert!(queued.location.unwrap().contains("notice=push-queued"));
    let deleted = v
        .post(
            &format!("/team/app/-/push-mirrors/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let (_, list) = hub.get("/api/v1/repos/team/app/push-mirrors").await;
    assert_eq!(list, json!([]));
    let missing = v
        .post(
            &format!("/team/app/-/push-mirrors/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
}
