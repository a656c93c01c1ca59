//! Listing a namespace's repositories (`list_page`) against real HTTP servers that answer as
//! GitHub, GitLab, Gitea and Bitbucket do (`mirrorhub_testkit::NamespaceServer`), and hostile
//! ones (`ForgeApiServer`): every page, each forge's pagination, the fields, the fallbacks, what
//! each refusal becomes, and that the token goes nowhere else. Installation tokens of a GitHub
//! App are made for an installation id with a key made for the run.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use mirrorhub_forges::{
    list_page, BotCredentials, ForgeApis, ForgeError, ForgeKind, Forges, GitHubAuth, ListedPage,
    ListedRepo, ListingAuth, ListingError, ListingForge, NamespaceQuery, PageCursor,
};
use mirrorhub_testkit::{
    git, tiny_repo_aliases, tiny_repos, Fault, ForgeApiServer, HttpGitServer, NamespaceForge,
    NamespaceServer, RecordedRequest, Reply, RepoSpec,
};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
use rsa::RsaPrivateKey;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use url::Url;

const TOKEN: &str = "listing-token-5f3c9a1e";
const BITBUCKET_TOKEN: &str = "mirror-bot:app-password-77aa";
const APP_ID: u64 = 31337;
const TIMEOUT: Duration = Duration::from_secs(20);
/// No listing in these tests takes more pages than this: a loop is a bug.
const MAX_PAGES: usize = 200;

fn testkit_forge(forge: ListingForge) -> NamespaceForge {
    match forge {
        ListingForge::GitHub => NamespaceForge::GitHub,
        ListingForge::GitLab => NamespaceForge::GitLab,
        ListingForge::Gitea => NamespaceForge::Gitea,
        ListingForge::Bitbucket => NamespaceForge::Bitbucket,
    }
}

fn token_of(forge: ListingForge) -> &'static str {
    match forge {
        ListingForge::Bitbucket => BITBUCKET_TOKEN,
        _ => TOKEN,
    }
}

fn token_auth(forge: ListingForge) -> ListingAuth {
    ListingAuth::Token(SecretString::from(token_of(forge)))
}

fn query(api: &str, forge: ListingForge, namespace: &str, auth: ListingAuth) -> NamespaceQuery {
    NamespaceQuery {
        forge,
        api_url: Url::parse(api).unwrap(),
        namespace: namespace.to_owned(),
        auth,
    }
}

async fn start(forge: ListingForge) -> NamespaceServer {
    let server = NamespaceServer::start(testkit_forge(forge)).await;
    server.set_token(token_of(forge));
    server
}

async fn page(query: &NamespaceQuery, cursor: Option<&PageCursor>) -> ListedPage {
    list_page(query, cursor, None, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{} {}: {e}", query.forge, query.namespace))
}

/// Every page of a listing: the repositories in order, and the pages' sizes.
async fn list_all(query: &NamespaceQuery) -> (Vec<ListedRepo>, Vec<usize>) {
    let mut repos = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = page(query, cursor.as_ref()).await;
        assert_eq!(page.skipped, 0, "{page:?}");
        sizes.push(page.repos.len());
        repos.extend(page.repos);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (repos, sizes),
        }
    }
    panic!("more than {MAX_PAGES} pages");
}

async fn list_error(query: &NamespaceQuery, cursor: Option<&PageCursor>) -> ListingError {
    match list_page(query, cursor, None, TIMEOUT).await {
        Ok(page) => panic!("{} listed {page:?}", query.forge),
        Err(e) => e,
    }
}

/// The token shows in no error, however printed.
fn assert_no_token(error: &ListingError) {
    for text in [
        error.to_string(),
        format!("{error:?}"),
        format!("{error:#?}"),
    ] {
        for token in [TOKEN, BITBUCKET_TOKEN, "app-password-77aa"] {
            assert!(!text.contains(token), "token leaked: {text}");
        }
    }
}

/// 120 repositories, one of them private, archived, a fork, described: what each forge's
/// listing must give back field for field.
fn add_acme(server: &NamespaceServer) -> Vec<String> {
    let mut paths = Vec::new();
    for i in 0..120 {
        let name = format!("repo-{i:03}");
        let mut spec = RepoSpec::new(&name);
        match i {
            7 => spec = spec.private().description("Secret things\nin two lines"),
            8 => spec = spec.archived(),
            9 => spec = spec.fork(),
            _ => {}
        }
        server.add_repo("acme", spec);
        paths.push(format!("acme/{name}"));
    }
    paths
}

#[tokio::test]
async fn every_forge_lists_120_repositories_over_three_pages_with_their_fields() {
    for forge in ListingForge::ALL {
        let server = start(forge).await;
        server.set_page_size(40);
        let paths = add_acme(&server);
        let query = query(&server.api_url(), forge, "acme", token_auth(forge));

        let (repos, sizes) = list_all(&query).await;
        assert_eq!(sizes, [40, 40, 40], "{forge}");
        let listed: Vec<&str> = repos.iter().map(|r| r.path.as_str()).collect();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(sorted, paths, "{forge}: every repository once");
        let ids: BTreeSet<&str> = repos.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), 120, "{forge}: ids are distinct");

        for repo in &repos {
            assert_eq!(repo.clone_url, server.clone_url(&repo.path), "{forge}");
            assert_eq!(
                repo.name,
                repo.path.strip_prefix("acme/").unwrap(),
                "{forge}"
            );
            if forge != ListingForge::Bitbucket {
                let id = server.repo_id(&repo.path).unwrap();
                assert_eq!(repo.id, id.to_string(), "{forge}");
            }
        }
        let find = |name: &str| repos.iter().find(|r| r.name == name).unwrap();
        let secret = find("repo-007");
        assert!(
            secret.private && !secret.archived && !secret.fork,
            "{forge}"
        );
        assert_eq!(secret.description, "Secret things\nin two lines");
        let archived = find("repo-008");
        assert_eq!(
            archived.archived,
            forge != ListingForge::Bitbucket,
            "{forge}: Bitbucket has no archived flag"
        );
        assert!(find("repo-009").fork, "{forge}");
        let plain = find("repo-010");
        assert!(!plain.private && !plain.archived && !plain.fork && plain.description.is_empty());

        let recorded = server.recorded();
        assert_eq!(
            recorded.len(),
            3,
            "{forge}: one request a page: {recorded:#?}"
        );
        assert_first_request(forge, &recorded[0]);
        for request in &recorded {
            assert_auth(forge, request);
        }
    }
}

/// The documented request of each forge's first page.
fn assert_first_request(forge: ListingForge, request: &RecordedRequest) {
    assert_eq!(request.method, "GET");
    let expected = match forge {
        ListingForge::GitHub => "/orgs/acme/repos?per_page=100&type=all",
        ListingForge::GitLab => {
            "/api/v4/groups/acme/projects?order_by=id&sort=asc&with_shared=false&include_subgroups=true&pagination=keyset&per_page=100"
        }
        ListingForge::Gitea => "/api/v1/orgs/acme/repos?limit=50&page=1",
        ListingForge::Bitbucket => "/2.0/repositories/acme?pagelen=100",
    };
    assert_eq!(request.path, expected, "{forge}");
    let accept = match forge {
        ListingForge::GitHub => "application/vnd.github+json",
        _ => "application/json",
    };
    assert_eq!(request.header("accept"), Some(accept), "{forge}");
    assert!(request
        .header("user-agent")
        .is_some_and(|a| a.starts_with("mirrorhub/")));
}

fn assert_auth(forge: ListingForge, request: &RecordedRequest) {
    match forge {
        ListingForge::GitHub => {
            assert_eq!(
                request.header("authorization"),
                Some(format!("Bearer {TOKEN}").as_str())
            );
            assert_eq!(request.header("x-github-api-version"), Some("2022-11-28"));
        }
        ListingForge::GitLab => {
            assert_eq!(request.header("private-token"), Some(TOKEN));
            assert_eq!(request.header("authorization"), None);
        }
        ListingForge::Gitea => assert_eq!(
            request.header("authorization"),
            Some(format!("token {TOKEN}").as_str())
        ),
        ListingForge::Bitbucket => {
            use base64::Engine as _;
            let basic = base64::engine::general_purpose::STANDARD.encode(BITBUCKET_TOKEN);
            assert_eq!(
                request.header("authorization"),
                Some(format!("Basic {basic}").as_str())
            );
        }
    }
}

#[tokio::test]
async fn without_a_token_only_public_repositories_are_listed() {
    for forge in ListingForge::ALL {
        let server = start(forge).await;
        add_acme(&server);
        let query = query(&server.api_url(), forge, "acme", ListingAuth::None);
        let (repos, _) = list_all(&query).await;
        assert_eq!(repos.len(), 119, "{forge}");
        assert!(repos.iter().all(|r| !r.private), "{forge}");
        for request in server.recorded() {
            assert_eq!(request.header("authorization"), None);
            assert_eq!(request.header("private-token"), None);
        }
    }
}

#[tokio::test]
async fn a_bitbucket_access_token_is_a_bearer_token() {
    let server = NamespaceServer::start(NamespaceForge::Bitbucket).await;
    server.set_token(TOKEN);
    server.add_repo("ws", RepoSpec::new("api").private());
    let query = query(
        &server.api_url(),
        ListingForge::Bitbucket,
        "ws",
        ListingAuth::Token(SecretString::from(TOKEN)),
    );
    let (repos, _) = list_all(&query).await;
    assert_eq!(repos.len(), 1);
    assert!(repos[0].private);
    assert_eq!(repos[0].id, "{000003e9-0000-4000-8000-0000000003e9}");
    assert_eq!(
        server.recorded()[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn github_and_gitea_fall_back_to_a_user_account() {
    for forge in [ListingForge::GitHub, ListingForge::Gitea] {
        let server = start(forge).await;
        server.add_user("alice");
        server.add_repo("alice", RepoSpec::new("dotfiles"));
        server.add_repo("alice", RepoSpec::new("notes").description("mine"));
        let query = query(&server.api_url(), forge, "alice", token_auth(forge));
        let (repos, _) = list_all(&query).await;
        let paths: Vec<&str> = repos.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["alice/dotfiles", "alice/notes"], "{forge}");
        assert_eq!(repos[1].description, "mine");

        let recorded: Vec<String> = server.recorded().into_iter().map(|r| r.path).collect();
        let expected = match forge {
            ListingForge::GitHub => [
                "/orgs/alice/repos?per_page=100&type=all",
                "/users/alice/repos?per_page=100&type=owner",
            ],
            _ => [
                "/api/v1/orgs/alice/repos?limit=50&page=1",
                "/api/v1/users/alice/repos?limit=50&page=1",
            ],
        };
        assert_eq!(recorded, expected, "{forge}");

        // Neither an organization nor a user: the namespace is not found.
        let missing = self::query(&server.api_url(), forge, "nobody", token_auth(forge));
        let error = list_error(&missing, None).await;
        assert!(
            matches!(&error, ListingError::NamespaceNotFound { namespace, .. } if namespace == "nobody"),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn a_gitlab_group_is_listed_with_its_subgroups_and_a_user_as_a_fallback() {
    let server = start(ListingForge::GitLab).await;
    server.set_page_size(2);
    server.add_repo("acme", RepoSpec::new("web"));
    server.add_repo("acme/platform", RepoSpec::new("api").archived());
    server.add_repo("acme/platform/infra", RepoSpec::new("db").private());
    server.add_repo("acme-other", RepoSpec::new("not-ours"));
    server.add_repo("other", RepoSpec::new("elsewhere"));

    let forge = ListingForge::GitLab;
    let whole = query(&server.api_url(), forge, "acme", token_auth(forge));
    let (repos, sizes) = list_all(&whole).await;
    let paths: Vec<&str> = repos.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["acme/web", "acme/platform/api", "acme/platform/infra/db"]
    );
    assert_eq!(sizes, [2, 1]);
    let db = &repos[2];
    assert_eq!(db.name, "db");
    assert!(db.private);
    assert!(repos[1].archived, "archived projects are listed too");

    let recorded = server.recorded();
    assert!(
        recorded[1].path.contains("id_after="),
        "keyset: {recorded:#?}"
    );

    server.clear_recorded();
    let subgroup = query(&server.api_url(), forge, "acme/platform", token_auth(forge));
    let (repos, _) = list_all(&subgroup).await;
    let paths: Vec<&str> = repos.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["acme/platform/api", "acme/platform/infra/db"]);
    assert!(server.recorded()[0]
        .path
        .starts_with("/api/v4/groups/acme%2Fplatform/projects?"));

    // A user: no such group, then the user's projects.
    server.add_user("bob");
    server.add_repo("bob", RepoSpec::new("scratch"));
    server.clear_recorded();
    let user = query(&server.api_url(), forge, "bob", token_auth(forge));
    let (repos, _) = list_all(&user).await;
    assert_eq!(repos[0].path, "bob/scratch");
    let recorded: Vec<String> = server.recorded().into_iter().map(|r| r.path).collect();
    assert_eq!(
        recorded,
        [
            "/api/v4/groups/bob/projects?order_by=id&sort=asc&with_shared=false&include_subgroups=true&pagination=keyset&per_page=100",
            "/api/v4/users/bob/projects?order_by=id&sort=asc&pagination=keyset&per_page=100",
        ]
    );
}

#[tokio::test]
async fn gitlab_without_keyset_pagination_pages_by_number() {
    let server = start(ListingForge::GitLab).await;
    server.set_page_size(40);
    server.set_gitlab_keyset(false);
    add_acme(&server);
    let forge = ListingForge::GitLab;
    let query = query(&server.api_url(), forge, "acme", token_auth(forge));

    // With `Link` headers, then by `X-Next-Page` alone.
    for links in [true, false] {
        server.set_link_headers(links);
        server.clear_recorded();
        let (repos, sizes) = list_all(&query).await;
        assert_eq!(sizes, [40, 40, 40]);
        assert_eq!(repos.len(), 120);
        let recorded: Vec<String> = server.recorded().into_iter().map(|r| r.path).collect();
        assert_eq!(recorded.len(), 4, "405, then three pages: {recorded:#?}");
        assert!(recorded[0].contains("pagination=keyset"));
        assert!(
            recorded[1].ends_with("&per_page=100&page=1"),
            "{}",
            recorded[1]
        );
        assert!(recorded[3].contains("page=3"), "{}", recorded[3]);
    }
}

#[tokio::test]
async fn gitea_without_link_headers_stops_after_a_short_page() {
    let server = start(ListingForge::Gitea).await;
    server.set_link_headers(false);
    add_acme(&server);
    let forge = ListingForge::Gitea;
    let query = query(&server.api_url(), forge, "acme", token_auth(forge));
    let (repos, sizes) = list_all(&query).await;
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(repos.len(), 120);
}

#[tokio::test]
async fn five_thousand_repositories_are_listed() {
    for forge in [ListingForge::GitHub, ListingForge::GitLab] {
        let server = start(forge).await;
        let paths = server.add_repos("big", "r", 5000);
        let query = query(&server.api_url(), forge, "big", token_auth(forge));
        let (repos, sizes) = list_all(&query).await;
        assert_eq!(sizes.len(), 50, "{forge}");
        let listed: Vec<String> = repos.into_iter().map(|r| r.path).collect();
        assert_eq!(listed, paths, "{forge}");
    }
}

#[tokio::test]
async fn changes_between_listings_are_seen_and_ids_survive_a_rename() {
    let server = start(ListingForge::GitHub).await;
    let forge = ListingForge::GitHub;
    server.add_repo("acme", RepoSpec::new("api"));
    server.add_repo("acme", RepoSpec::new("web"));
    server.add_repo("acme", RepoSpec::new("old"));
    let query = query(&server.api_url(), forge, "acme", token_auth(forge));
    let (before, _) = list_all(&query).await;

    server.rename("acme/api", "api-v2");
    server.archive("acme/web");
    server.remove("acme/old");
    server.add_repo("acme", RepoSpec::new("new"));
    let (after, _) = list_all(&query).await;
    let paths: Vec<&str> = after.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["acme/api-v2", "acme/web", "acme/new"]);
    assert_eq!(after[0].id, before[0].id, "the id survives the rename");
    assert!(after[1].archived);
}

#[tokio::test]
async fn rate_limits_say_how_long_to_wait_and_the_same_cursor_works_after() {
    for forge in ListingForge::ALL {
        let server = start(forge).await;
        server.set_page_size(40);
        add_acme(&server);
        let query = query(&server.api_url(), forge, "acme", token_auth(forge));
        let first = page(&query, None).await;
        let cursor = first.next.clone().unwrap();

        server.fail_next(1, Fault::TooManyRequests);
        let error = list_error(&query, Some(&cursor)).await;
        assert!(
            matches!(error, ListingError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(1)),
            "{forge}: {error:?}"
        );
        assert!(error.is_transient());
        assert_no_token(&error);

        server.fail_next(
            1,
            Fault::RateLimitSpent {
                reset_in: Duration::from_secs(120),
            },
        );
        let error = list_error(&query, Some(&cursor)).await;
        let ListingError::RateLimited { retry_after, .. } = error else {
            panic!("{forge}: {error:?}");
        };
        if forge == ListingForge::Bitbucket {
            // A bare 429: a minute.
            assert_eq!(retry_after, Duration::from_secs(60));
        } else {
            // From the reset time: 120 s from when the server answered, a second or two ago.
            assert!(
                (Duration::from_secs(115)..=Duration::from_secs(120)).contains(&retry_after),
                "{forge}: {retry_after:?}"
            );
        }

        // The limit passed: the same cursor reads the page it names.
        let second = page(&query, Some(&cursor)).await;
        assert_eq!(second.repos.len(), 40);
        assert_ne!(second.repos[0].id, first.repos[0].id);
    }
}

#[tokio::test]
async fn refusals_are_told_apart() {
    for forge in ListingForge::ALL {
        let server = start(forge).await;
        add_acme(&server);

        let wrong = query(
            &server.api_url(),
            forge,
            "acme",
            ListingAuth::Token(SecretString::from("not-the-token-9z9z")),
        );
        let error = list_error(&wrong, None).await;
        assert!(
            matches!(error, ListingError::Unauthorized { forge: f } if f == forge),
            "{forge}: {error:?}"
        );
        assert!(!error.is_transient());
        assert!(!error.to_string().contains("not-the-token-9z9z"));

        let missing = query(&server.api_url(), forge, "ghost", token_auth(forge));
        let error = list_error(&missing, None).await;
        assert!(
            matches!(error, ListingError::NamespaceNotFound { .. }),
            "{forge}: {error:?}"
        );
        assert_no_token(&error);

        let good = query(&server.api_url(), forge, "acme", token_auth(forge));
        server.fail_next(1, Fault::Unavailable);
        let error = list_error(&good, None).await;
        assert!(
            matches!(error, ListingError::Unexpected { status: 503, .. }),
            "{forge}: {error:?}"
        );
        assert!(error.is_transient());

        // Not a name any forge has: refused without a request.
        server.clear_recorded();
        let hostile = query(&server.api_url(), forge, "../etc", token_auth(forge));
        let error = list_error(&hostile, None).await;
        assert!(
            matches!(error, ListingError::NamespaceNotFound { .. }),
            "{forge}: {error:?}"
        );
        assert!(server.recorded().is_empty());
    }

    // A 403 that is no rate limit: the token lacks the rights.
    let api = ForgeApiServer::start().await;
    api.respond(
        "GET",
        "/orgs/acme/repos",
        403,
        json!({"message": "Resource not accessible by personal access token"}),
    );
    let forge = ListingForge::GitHub;
    let error = list_error(&query(&api.url(), forge, "acme", token_auth(forge)), None).await;
    assert!(matches!(error, ListingError::Forbidden { .. }), "{error:?}");
    assert_no_token(&error);
}

/// A forge whose next link points elsewhere: the cursor is refused, and the other server gets
/// nothing (no token). Same for a redirect.
#[tokio::test]
async fn a_next_link_or_redirect_to_another_origin_is_not_followed() {
    let elsewhere = ForgeApiServer::start().await;
    elsewhere.respond("GET", "/", 200, json!([]));
    let api = ForgeApiServer::start().await;
    let foreign = format!("{}/orgs/acme/repos?page=2", elsewhere.url());
    api.on(
        "GET",
        "/orgs/acme/repos",
        Reply::json(200, json!([])).with_header("link", &format!("<{foreign}>; rel=\"next\"")),
    );
    api.respond(
        "GET",
        "/2.0/repositories/acme",
        200,
        json!({"values": [], "next": format!("{}/2.0/repositories/acme?page=2", elsewhere.url())}),
    );
    for forge in [ListingForge::GitHub, ListingForge::Bitbucket] {
        let query = query(&api.url(), forge, "acme", token_auth(forge));
        let first = page(&query, None).await;
        let cursor = first.next.expect("a next cursor");
        let error = list_error(&query, Some(&cursor)).await;
        assert!(
            matches!(&error, ListingError::InvalidResponse { detail, .. } if detail.contains("origin")),
            "{forge}: {error:?}"
        );
        assert_no_token(&error);
    }
    // A cursor on the same host but another port, or with credentials, is another origin too.
    let query = query(
        &api.url(),
        ListingForge::GitHub,
        "acme",
        token_auth(ListingForge::GitHub),
    );
    let port = api.addr().port();
    for cursor in [
        format!("http://127.0.0.1:{}/orgs/acme/repos", port.wrapping_add(1)),
        format!("https://127.0.0.1:{port}/orgs/acme/repos"),
        format!("http://user:pw@127.0.0.1:{port}/orgs/acme/repos"),
        "not a url".to_owned(),
    ] {
        let error = list_error(&query, Some(&PageCursor(cursor.clone()))).await;
        assert!(
            matches!(error, ListingError::InvalidResponse { .. }),
            "{cursor}: {error:?}"
        );
    }

    // A redirect off the API's origin is not followed either.
    api.on(
        "GET",
        "/orgs/moved/repos",
        Reply::empty(302).with_header("location", &foreign),
    );
    let moved = self::query(
        &api.url(),
        ListingForge::GitHub,
        "moved",
        token_auth(ListingForge::GitHub),
    );
    let error = list_error(&moved, None).await;
    assert!(
        matches!(error, ListingError::Unexpected { status: 302, .. }),
        "{error:?}"
    );
    assert!(
        elsewhere.recorded().is_empty(),
        "{:#?}",
        elsewhere.recorded()
    );

    // On the same origin, a redirect (a renamed organization) is followed.
    api.on(
        "GET",
        "/orgs/renamed/repos",
        Reply::empty(301).with_header("location", "/orgs/acme/repos?per_page=100"),
    );
    let renamed = self::query(
        &api.url(),
        ListingForge::GitHub,
        "renamed",
        token_auth(ListingForge::GitHub),
    );
    assert!(page(&renamed, None).await.repos.is_empty());
}

fn github_entry(id: u64, name: &str, clone_url: &str) -> Value {
    json!({"id": id, "name": name, "full_name": format!("acme/{name}"), "clone_url": clone_url,
           "description": null, "private": false, "archived": false, "fork": false,
           "url": "http://x/", "owner": {"login": "acme"}})
}

#[tokio::test]
async fn hostile_pages_are_refused_or_their_bad_entries_skipped() {
    let api = ForgeApiServer::start().await;
    let forge = ListingForge::GitHub;

    // Entries with unsafe names or clone URLs are skipped, the rest kept.
    api.respond(
        "GET",
        "/orgs/acme/repos",
        200,
        json!([
            github_entry(1, "good", "https://example.com/acme/good.git"),
            github_entry(2, "..", "https://example.com/acme/x.git"),
            github_entry(3, "a b", "https://example.com/acme/x.git"),
            github_entry(4, "evil", "file:///etc/passwd"),
            github_entry(5, "evil2", "ext::sh -c touch% /tmp/pwned"),
            {"id": 6},
            "not an object",
            github_entry(7, "also-good", "http://example.com/acme/also-good.git"),
        ]),
    );
    let query = query(&api.url(), forge, "acme", token_auth(forge));
    let listed = page(&query, None).await;
    let names: Vec<&str> = listed.repos.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["good", "also-good"]);
    assert_eq!(listed.skipped, 6);

    // More than 8 MiB: refused before it is all read.
    let huge = "x".repeat(9 << 20);
    api.respond(
        "GET",
        "/orgs/huge/repos",
        200,
        json!([{"id": 1, "name": "a", "description": huge}]),
    );
    // More than 1000 entries in one page.
    let many: Vec<Value> = (0..1001)
        .map(|i| github_entry(i, &format!("r{i}"), "https://example.com/r.git"))
        .collect();
    api.respond("GET", "/orgs/many/repos", 200, Value::Array(many));
    // Not the listing's JSON at all.
    api.respond("GET", "/orgs/odd/repos", 200, json!({"repositories": []}));
    for namespace in ["huge", "many", "odd"] {
        let query = self::query(&api.url(), forge, namespace, token_auth(forge));
        let error = list_error(&query, None).await;
        assert!(
            matches!(error, ListingError::InvalidResponse { .. }),
            "{namespace}: {error:?}"
        );
        assert_no_token(&error);
    }

    // A next link that names the page itself would list forever.
    let own = format!("{}/orgs/loop/repos?per_page=100&type=all", api.url());
    api.on(
        "GET",
        "/orgs/loop/repos",
        Reply::json(200, json!([])).with_header("link", &format!("<{own}>; rel=\"next\"")),
    );
    let looping = self::query(&api.url(), forge, "loop", token_auth(forge));
    let error = list_error(&looping, None).await;
    assert!(
        matches!(error, ListingError::InvalidResponse { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn every_request_goes_through_the_proxy_it_is_given() {
    // The API's host does not resolve: only the proxy can answer. A plain-http target goes to
    // the proxy in absolute form, which the stand-in answers as if it were the API.
    let proxy = ForgeApiServer::start().await;
    proxy.respond(
        "GET",
        "/orgs/acme/repos",
        200,
        json!([github_entry(1, "api", "https://example.com/acme/api.git")]),
    );
    let forge = ListingForge::GitHub;
    let query = query("http://api.forge.invalid", forge, "acme", token_auth(forge));
    let proxy_url = format!("http://mirrorhub:pass-1234@{}", proxy.addr());
    let listed = list_page(&query, None, Some(&proxy_url), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(listed.repos.len(), 1);
    let recorded = proxy.recorded();
    assert_eq!(recorded.len(), 1);
    use base64::Engine as _;
    let credentials = base64::engine::general_purpose::STANDARD.encode("mirrorhub:pass-1234");
    assert_eq!(
        recorded[0].header("proxy-authorization"),
        Some(format!("Basic {credentials}").as_str())
    );
    assert_eq!(recorded[0].header("host"), Some("api.forge.invalid"));

    // No proxy: the host does not resolve.
    let error = list_error(&query, None).await;
    assert!(
        matches!(error, ListingError::Unreachable { .. }),
        "{error:?}"
    );
    assert_no_token(&error);
}

#[tokio::test]
async fn a_listing_is_bounded_by_its_timeout() {
    let api = ForgeApiServer::start().await;
    api.on(
        "GET",
        "/orgs/slow/repos",
        Reply::json(200, json!([])).delayed(Duration::from_secs(30)),
    );
    let forge = ListingForge::GitHub;
    let query = query(&api.url(), forge, "slow", token_auth(forge));
    let error = list_page(&query, None, None, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ListingError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn listed_clone_urls_clone() {
    let root = tempfile::tempdir().unwrap();
    let paths = [
        "acme/api",
        "acme/web",
        "acme/docs",
        "acme/alias-1",
        "acme/alias-2",
    ];
    let commit = tiny_repos(root.path(), &paths[..3]);
    // The cheaper kind: two paths, one repository.
    assert_eq!(tiny_repo_aliases(root.path(), &paths[3..]), commit);
    let git_server = HttpGitServer::start(root.path(), None).await;
    let server = start(ListingForge::Gitea).await;
    server.forward_git_to(&git_server.url(""));
    for path in paths {
        let name = path.rsplit('/').next().unwrap();
        server.add_repo("acme", RepoSpec::new(name));
    }
    let forge = ListingForge::Gitea;
    let query = query(&server.api_url(), forge, "acme", token_auth(forge));
    let (repos, _) = list_all(&query).await;
    assert_eq!(repos.len(), 5);
    let work = tempfile::tempdir().unwrap();
    for repo in &repos {
        let url = repo.clone_url.clone();
        let dest = work.path().join(&repo.name);
        let dest_text = dest.to_str().unwrap().to_owned();
        tokio::task::spawn_blocking(move || {
            git(
                std::path::Path::new("/"),
                ["clone", "--quiet", "--bare", &url, &dest_text],
            )
        })
        .await
        .unwrap();
        let head = git(&dest, ["rev-parse", "refs/heads/main"]);
        assert_eq!(head.trim(), commit);
    }
    // Each is a repository of its own.
    assert_ne!(
        std::fs::canonicalize(root.path().join("acme/api.git")).unwrap(),
        std::fs::canonicalize(root.path().join("acme/web.git")).unwrap()
    );
}

/// A throwaway RSA key for this run: the App's private key (PKCS#1 PEM, as GitHub issues it)
/// and the public half the stand-in checks JWTs with.
fn test_key() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key");
        (
            key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
            key.to_public_key().to_pkcs1_pem(LineEnding::LF).unwrap(),
        )
    })
}

fn app_forges(api: &str) -> Forges {
    let apis = ForgeApis {
        github_api: Url::parse(api).unwrap(),
        ..ForgeApis::default()
    };
    Forges::new(apis).with_bot(BotCredentials {
        github: Some(GitHubAuth::App {
            app_id: APP_ID,
            private_key: SecretString::from(test_key().0.clone()),
        }),
        ..BotCredentials::default()
    })
}

#[tokio::test]
async fn an_installation_token_is_made_cached_and_lists_the_installation() {
    let server = NamespaceServer::start(NamespaceForge::GitHub).await;
    server.set_github_app(APP_ID, &test_key().1);
    server.add_installation(77, &["acme", "tools"]);
    server.add_repo("acme", RepoSpec::new("api").private());
    server.add_repo("tools", RepoSpec::new("lint"));
    server.add_repo("unrelated", RepoSpec::new("other"));
    let forges = app_forges(&server.api_url());

    let token = forges.installation_token(77).await.unwrap();
    assert_eq!(
        server.installation_tokens(),
        [token.expose_secret().to_owned()]
    );
    // Cached: no second token, also for a clone of the Forges.
    let again = forges.clone().installation_token(77).await.unwrap();
    assert_eq!(again.expose_secret(), token.expose_secret());
    let mints: Vec<RecordedRequest> = server
        .recorded()
        .into_iter()
        .filter(|r| r.path == "/app/installations/77/access_tokens")
        .collect();
    assert_eq!(mints.len(), 1);
    assert_eq!(mints[0].method, "POST");
    assert!(mints[0]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer eyJ")));

    let forge = ListingForge::GitHub;
    let query = query(
        &server.api_url(),
        forge,
        "acme",
        ListingAuth::GitHubInstallation(token.clone()),
    );
    server.clear_recorded();
    let (repos, _) = list_all(&query).await;
    let paths: Vec<&str> = repos.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["acme/api", "tools/lint"]);
    assert!(repos[0].private);
    let recorded = server.recorded();
    assert_eq!(recorded[0].path, "/installation/repositories?per_page=100");
    assert_eq!(
        recorded[0].header("authorization"),
        Some(format!("Bearer {}", token.expose_secret()).as_str())
    );

    // After a 401 the next call makes a new token.
    forges.forget_installation_token(77).await;
    let renewed = forges.installation_token(77).await.unwrap();
    assert_ne!(renewed.expose_secret(), token.expose_secret());

    // An installation GitHub does not know, or one suspended.
    let error = forges.installation_token(78).await.unwrap_err();
    assert!(
        matches!(
            error,
            ForgeError::InstallationUnavailable {
                installation_id: 78,
                status: 404
            }
        ),
        "{error:?}"
    );
    server.add_installation(79, &["acme"]);
    server.suspend_installation(79);
    let error = forges.installation_token(79).await.unwrap_err();
    assert!(
        matches!(
            error,
            ForgeError::InstallationUnavailable {
                installation_id: 79,
                status: 403
            }
        ),
        "{error:?}"
    );
    // An installation token is GitHub's: never sent to another forge.
    let gitlab = self::query(
        &server.api_url(),
        ListingForge::GitLab,
        "acme",
        ListingAuth::GitHubInstallation(token.clone()),
    );
    server.clear_recorded();
    let error = list_error(&gitlab, None).await;
    assert!(
        matches!(error, ListingError::Unauthorized { .. }),
        "{error:?}"
    );
    assert!(server.recorded().is_empty());
    assert!(!format!("{error:?} {gitlab:?}").contains(token.expose_secret()));
}

#[tokio::test]
async fn installation_tokens_need_the_app() {
    let server = NamespaceServer::start(NamespaceForge::GitHub).await;
    server.add_installation(77, &["acme"]);
    // The hub is no GitHub App: no request at all.
    let plain = Forges::new(ForgeApis {
        github_api: Url::parse(&server.api_url()).unwrap(),
        ..ForgeApis::default()
    });
    let error = plain.installation_token(77).await.unwrap_err();
    assert!(
        matches!(
            error,
            ForgeError::NoBotCredentials {
                forge: ForgeKind::GitHub
            }
        ),
        "{error:?}"
    );
    // The stand-in knows another key: the JWT is refused.
    let other = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    server.set_github_app(
        APP_ID,
        &other.to_public_key().to_pkcs1_pem(LineEnding::LF).unwrap(),
    );
    let error = app_forges(&server.api_url())
        .installation_token(77)
        .await
        .unwrap_err();
    assert!(matches!(error, ForgeError::AppRefused), "{error:?}");
    assert!(server.installation_tokens().is_empty());
}

#[tokio::test]
async fn a_github_enterprise_api_root_keeps_its_path() {
    let server = start(ListingForge::GitHub).await;
    server.set_page_size(2);
    server.add_repos("acme", "r", 3);
    let forge = ListingForge::GitHub;
    let api = format!("{}/api/v3/", server.api_url());
    let query = query(&api, forge, "acme", token_auth(forge));
    let (repos, sizes) = list_all(&query).await;
    assert_eq!(repos.len(), 3);
    assert_eq!(sizes, [2, 1]);
    let recorded: Vec<String> = server.recorded().into_iter().map(|r| r.path).collect();
    assert_eq!(recorded[0], "/api/v3/orgs/acme/repos?per_page=100&type=all");
    assert!(
        recorded[1].starts_with("/api/v3/orgs/acme/repos?"),
        "{recorded:?}"
    );
}
