//! The web UI in a real headless Chromium (Debian's `chromium`, driven through `chromedriver`),
//! as a new user meets it: sign in, import a repository from a real upstream through the form,
//! watch it become synced, push upstream, press the sync button, see the new commit. Errors
//! appear next to the field they concern. Screenshots of each page are saved under
//! `target/tmp/ui-screenshots/`.
//!
//! Runs when `MIRRORHUB_TEST_CHROMEDRIVER` names chromedriver (`.ci/run` installs Debian's
//! `chromium` and `chromium-driver` and sets it); `MIRRORHUB_TEST_CHROMIUM` may name the
//! browser (default `/usr/bin/chromium`). Without it the tests say so and do nothing.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Db, Hub, TestDb, TOKEN};
use fantoccini::{Client, ClientBuilder, Locator};
use mirrorhub_testkit::{git, init_bare, HttpGitServer, Scratch, SshServer};
use serde_json::{json, Value};

/// Long enough for a first copy on a loaded CI machine; a broken page fails well before.
const WAIT: Duration = Duration::from_secs(60);

struct Browser {
    client: Client,
    driver_url: String,
    base: String,
    test: &'static str,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A fresh browser (own chromedriver, own profile) for `test`, or `None` when the
    /// environment names no chromedriver.
    async fn start(test: &'static str, hub: &Hub) -> Option<Browser> {
        let Ok(driver) = std::env::var("MIRRORHUB_TEST_CHROMEDRIVER") else {
            eprintln!(
                "MIRRORHUB_TEST_CHROMEDRIVER is not set: the browser test {test} does not run here"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {driver}: {e}"));
        let driver_url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let chromium = std::env::var("MIRRORHUB_TEST_CHROMIUM")
            .unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1100,900", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .expect("a chromium session");
        Some(Browser {
            client,
            driver_url,
            base: hub.base.clone(),
            test,
            _driver: child,
            _profile: profile,
        })
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn fill(&self, id: &str, text: &str) {
        let field = self.client.find(Locator::Id(id)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, id: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn value(&self, id: &str) -> String {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Waits until the element `css` exists and its text contains `needle`; returns the text.
    async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if let Ok(text) = el.text().await {
                    if text.contains(needle) {
                        return text;
                    }
                }
            }
            if Instant::now() > deadline {
                let shown = self.client.source().await.unwrap_or_default();
                panic!("{css} never contained {needle:?}; the page:\n{shown}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screenshot of the page as `<test>-<name>.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let file: PathBuf = dir.join(format!("{}-{name}.png", self.test));
        std::fs::write(&file, png).unwrap();
    }

    /// The browser's console messages of level SEVERE (script errors, CSP violations, failed
    /// loads), through chromedriver's log endpoint.
    async fn console_errors(&self) -> Vec<String> {
        let session = self.client.session_id().await.unwrap().unwrap();
        let resp: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver_url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        resp["value"]
            .as_array()
            .unwrap_or_else(|| panic!("no browser log: {resp}"))
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Whether the element with `id` is displayed (present, and not `hidden`).
    async fn shown(&self, id: &str) -> bool {
        match self.client.find(Locator::Id(id)).await {
            Ok(el) => el.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn sign_in(&self) {
        self.goto("/").await;
        assert!(self.path().await.starts_with("/-/login"));
        self.fill("token", TOKEN).await;
        self.click("sign-in").await;
        self.wait_text("h1", "Repositories").await;
    }

    async fn close(self) {
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "console errors: {errors:#?}");
        self.client.close().await.unwrap();
    }
}

on_both_databases!(
    import_sync_and_see_the_new_commit,
    errors_appear_next_to_their_field,
    import_over_ssh_with_a_deploy_key_made_in_the_form
);

/// An upstream behind `git http-backend`, with `main` as its default branch.
async fn upstream(root: &Path, auth: Option<(&str, &str)>) -> (HttpGitServer, Scratch, String) {
    let bare = root.join("project.git");
    init_bare(&bare);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first commit");
    work.tag("v1");
    work.push_mirror(bare.to_str().unwrap());
    git(&bare, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    let server = HttpGitServer::start(root, auth.map(|(u, p)| (u.to_owned(), p.to_owned()))).await;
    let url = server.url("project.git");
    (server, work, url)
}

async fn import_sync_and_see_the_new_commit(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (_server, work, url) = upstream(root.path(), None).await;
    let hub = Hub::start(&db, &[]).await;
    let Some(b) = Browser::start("journey", &hub).await else {
        return;
    };

    // Signed out, every page leads to the sign-in form; a wrong token is said next to it.
    b.goto("/").await;
    assert_eq!(b.path().await, "/-/login?next=%2F");
    b.fill("token", "not-the-token").await;
    b.click("sign-in").await;
    b.wait_text("#token-error", "not the admin token").await;
    b.screenshot("sign-in-error").await;
    b.fill("token", TOKEN).await;
    b.click("sign-in").await;
    b.wait_text(".empty", "No repositories yet").await;
    b.screenshot("empty-list").await;

    // Create + → New repository → Import repository.
    b.click("create").await;
    b.wait_text("h2", "Import repository").await;
    b.fill("url", &url).await;
    assert_eq!(
        b.value("name").await,
        "project",
        "the name follows the address"
    );
    b.fill("owner", "team").await;
    b.click("test-connection").await;
    b.wait_text(
        "#test-result",
        "Connected: 1 branch, 1 tag, default branch main.",
    )
    .await;
    assert_eq!(b.value("url").await, url, "the form keeps what was typed");
    b.screenshot("import-form").await;
    b.click("mode-mirror").await;
    b.click("launch").await;

    // The repository page follows the first copy without a reload.
    b.wait_text("#notice", "Import started").await;
    assert_eq!(b.path().await, "/team/project?notice=created");
    b.wait_text("#status", "synced").await;
    b.wait_text("#commits", "first commit").await;
    b.wait_text("#branches", "main").await;
    b.wait_text("#tags", "v1").await;
    assert_eq!(
        b.value("clone-url").await,
        format!("{}/team/project.git", hub.base)
    );
    b.screenshot("repository").await;

    // Push upstream, press the sync button next to the project's name, see the new commit.
    work.commit_file("CHANGES.md", "more\n", "second commit, pushed upstream");
    work.push_mirror(&root.path().join("project.git").display().to_string());
    b.goto("/").await;
    b.wait_text("#repo-team-project", "synced").await;
    b.screenshot("list").await;
    b.click("sync-team-project").await;
    b.wait_text("#notice", "Sync queued").await;
    b.click("repo-team-project-link").await;
    b.wait_text("#commits", "second commit, pushed upstream")
        .await;
    b.wait_text("#runs", "sync button or API").await;
    let history = b.wait_text("#runs", "refs/heads/main").await;
    assert!(history.contains("fast-forward"), "{history}");
    b.screenshot("repository-after-sync").await;

    // Promote to primary: refused without the confirmation, then done after a final sync.
    b.click("promote-button").await;
    b.wait_text("#promote-error", "tick the box").await;
    b.click("promote-confirm").await;
    b.click("promote-button").await;
    b.wait_text("#notice", "Promotion started").await;
    b.wait_text("#runs", "promotion to primary").await;
    b.wait_text(".heading", "primary").await;
    assert!(
        b.client.find(Locator::Id("sync-now")).await.is_err(),
        "a primary has no sync button"
    );
    b.screenshot("promoted").await;
    b.close().await;
}

async fn errors_appear_next_to_their_field(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let (_server, _work, url) = upstream(root.path(), Some(("alice", "s3cret"))).await;
    let hub = Hub::start(&db, &[]).await;
    let Some(b) = Browser::start("errors", &hub).await else {
        return;
    };
    b.sign_in().await;
    b.goto("/-/new").await;

    // A wrong token: said next to the token field, nothing created.
    b.fill("url", &url).await;
    b.fill("username", "alice").await;
    b.fill("token", "wrong").await;
    b.fill("owner", "team").await;
    b.click("launch").await;
    b.wait_text("#token-error", "refused the credentials").await;
    let invalid = b
        .client
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .attr("aria-invalid")
        .await
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    b.screenshot("wrong-token").await;
    let (_, repos) = hub.get("/api/v1/repos").await;
    assert_eq!(repos, json!([]));

    // A refused address: why, next to the address field.
    b.fill("url", "http://10.20.30.40/team/project.git").await;
    b.fill("token", "").await;
    b.fill("username", "").await;
    b.click("launch").await;
    b.wait_text("#url-error", "MIRRORHUB_ALLOWED_HOSTS").await;
    b.screenshot("refused-url").await;
    b.fill("url", "file:///etc/passwd").await;
    b.click("test-connection").await;
    b.wait_text("#url-error", "file:// URLs are not accepted")
        .await;

    // The right token works.
    b.fill("url", &url).await;
    b.fill("username", "alice").await;
    b.fill("token", "s3cret").await;
    b.click("launch").await;
    b.wait_text("#status", "synced").await;
    b.close().await;
}

async fn import_over_ssh_with_a_deploy_key_made_in_the_form(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("project.git");
    init_bare(&bare);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first commit over ssh");
    work.push_mirror(bare.to_str().unwrap());
    git(&bare, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    let server = SshServer::start(root.path()).await;
    let url = server.url("project.git");
    let hub = Hub::start(&db, &[]).await;
    let Some(b) = Browser::start("ssh", &hub).await else {
        return;
    };
    b.sign_in().await;
    b.click("create").await;
    b.wait_text("h2", "Import repository").await;

    // An https address asks for a token; an SSH address for a key and host keys instead.
    b.fill("url", "https://git.example.org/team/project.git")
        .await;
    assert!(b.shown("token").await && !b.shown("generate-key").await);
    b.fill("url", &url).await;
    assert!(!b.shown("token").await, "no token for an SSH address");
    assert!(b.shown("generate-key").await && b.shown("detect-host-keys").await);
    b.fill("owner", "team").await;

    // Generate a deploy key: its public line to copy, and where to add it.
    b.click("generate-key").await;
    b.wait_text("#key-generated", "Deploy key created").await;
    let public_key = b.value("ssh-public-key").await;
    assert!(public_key.starts_with("ssh-ed25519 AAAA"), "{public_key}");
    b.wait_text("#deploy-key", "read-only").await;
    assert_eq!(b.value("url").await, url, "the form keeps what was typed");
    assert!(!b.shown("token").await);
    b.screenshot("deploy-key").await;
    // The user adds it to the upstream.
    server.authorize(&public_key);

    // Detect host keys: the server's fingerprint, to confirm.
    b.click("detect-host-keys").await;
    b.wait_text("#host-keys", &server.host_key_fingerprint())
        .await;
    b.wait_text("#host-keys", "ssh-ed25519").await;
    assert_eq!(
        b.value("ssh-public-key").await,
        public_key,
        "the key stays chosen"
    );
    // Importing without confirming them is refused next to them.
    b.click("launch").await;
    b.wait_text("#known_hosts-error", "tick the box").await;
    b.click("trust-host-keys").await;
    b.screenshot("host-keys").await;
    b.click("launch").await;

    // The repository page follows the first copy and shows the key and the pinned host key.
    b.wait_text("#notice", "Import started").await;
    b.wait_text("#status", "synced").await;
    b.wait_text("#commits", "first commit over ssh").await;
    let fingerprint = b.wait_text("#ssh-deploy-key", "SHA256:").await;
    let (_, keys) = hub.get("/api/v1/ssh-keys?owner=team").await;
    assert!(fingerprint.contains(keys[0]["fingerprint"].as_str().unwrap()));
    b.wait_text("#pinned-host-keys", &server.host_key_fingerprint())
        .await;
    b.screenshot("ssh-repository").await;
    b.close().await;
}
