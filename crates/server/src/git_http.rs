//! Git's smart HTTP protocol: `git clone`, `git fetch` and `git ls-remote` of
//! `{public_url}/{owner}/{name}.git` (the `.git` may be left out, as on forges), and `git push`
//! to primary (migrated or promoted) repositories.
//!
//! The hub runs `git upload-pack --stateless-rpc` (and `receive-pack` for pushes) itself rather
//! than `git http-backend` as a CGI: only the services it allows are ever started, for the
//! repositories it allows them on (no dumb protocol serving files by their path), the repository directory is the hub's own
//! (`Hub::repo_path`, never a path made from the URL), and there is no CGI header block to
//! parse. Both directions stream: the request body (gunzipped when git compressed it) goes into
//! upload-pack's stdin as it arrives, and its stdout is the response body.
//!
//! Who may read: a `public` repository anyone; a `private` one only a caller with the hub's admin
//! token (HTTP basic with any user name and the token as password, or `Authorization: Bearer`).
//! To an anonymous caller a private repository and a missing one look the same: both answer
//! `401` with `WWW-Authenticate`, so git asks for credentials and nothing tells them apart. An
//! authenticated caller gets `404` for a missing one.
//!
//! Who may push: the admin token holder, to a primary repository. A push to a mirror is
//! refused with `403` and a message git shows (promote it first). Pushes to one repository run
//! one at a time; each is recorded as a run (trigger `push`) with its ref changes.
//!
//! Every refusal is a one-line `text/plain` body, which git prints after `remote:`; the
//! response carries [`PassThrough`] so the API's JSON error middleware leaves it as it is.

use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use mirrorhub_core::{Access, Actor, Mode, OwnerName, RepoName, RepoState};
use mirrorhub_git::{GitEngine, ProcessGroup};
use mirrorhub_hub::{Hub, HubError};
use mirrorhub_store::Repo;
use poem::http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Body, IntoResponse, Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::auth::{actor_for, presented_secret, AdminAuth};
use crate::errors::PassThrough;

/// How the hub serves repositories over Git's smart HTTP protocol.
#[derive(Clone)]
pub struct GitServeConfig {
    /// Runs `git upload-pack` in the engine's hardened environment.
    pub engine: GitEngine,
    /// Most `upload-pack` runs (pack generations) at once in this process; further requests
    /// wait for a slot.
    pub max_upload_packs: usize,
    /// A client whose transfer moves no data for this long is cut off and its git stopped.
    pub idle_timeout: Duration,
}

/// Shared by the git routes.
pub(crate) struct GitService {
    engine: GitEngine,
    packs: Arc<Semaphore>,
    idle_timeout: Duration,
    /// One push at a time per repository (by id), so that each push's journal is its own.
    pushes: std::sync::Mutex<std::collections::HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl GitService {
    pub(crate) fn new(config: GitServeConfig) -> Self {
        Self {
            engine: config.engine,
            packs: Arc::new(Semaphore::new(config.max_upload_packs.max(1))),
            idle_timeout: config.idle_timeout,
            pushes: Default::default(),
        }
    }

    fn push_lock(&self, repo_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.pushes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(repo_id)
            .or_default()
            .clone()
    }
}

/// What a git run holds until git has exited, and what to do then.
#[derive(Default)]
struct Held {
    permit: Option<OwnedSemaphorePermit>,
    push_lock: Option<tokio::sync::OwnedMutexGuard<()>>,
    after: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

/// Adds the git routes (at the root: `/{owner}/{name}.git/…`) to `route`.
pub(crate) fn mount(route: poem::Route) -> poem::Route {
    route
        .at("/:owner/:repo/info/refs", poem::get(info_refs))
        .at("/:owner/:repo/git-upload-pack", poem::post(upload_pack))
        .at("/:owner/:repo/git-receive-pack", poem::post(receive_pack))
}

const UPLOAD_PACK: &str = "git-upload-pack";
const RECEIVE_PACK: &str = "git-receive-pack";

/// A refusal git shows to its user: a one-line `text/plain` body, and for `401` the
/// `WWW-Authenticate` that makes git ask for credentials.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

pub(crate) fn refusal(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

fn ask_credentials(message: &str) -> Refusal {
    refusal(StatusCode::UNAUTHORIZED, message)
}

impl poem::IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut resp = Response::builder()
            .status(self.status)
            .content_type("text/plain; charset=utf-8")
            .header(CACHE_CONTROL, "no-cache")
            .body(format!("{}\n", self.message));
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                "www-authenticate",
                poem::http::HeaderValue::from_static("Basic realm=\"mirrorhub\""),
            );
        }
        resp.extensions_mut().insert(PassThrough);
        resp
    }
}

const NEED_TOKEN: &str = "authentication required: this repository does not exist or is private; \
     give a personal access token (or the hub's admin token) as the password (any user name) or as `Authorization: Bearer <token>`";

/// Who is asking, from `Authorization`. Credentials that are present and wrong (or expired,
/// or revoked) are refused outright, with the reason.
async fn caller(req: &Request, hub: &Hub, admin: &AdminAuth) -> Result<Actor, Refusal> {
    let secret = presented_secret(req).map_err(|()| {
        ask_credentials("authentication failed: give a personal access token as the password (any user name) or as `Authorization: Bearer <token>`")
    })?;
    let Some(secret) = secret else {
        return Ok(Actor::Anonymous);
    };
    actor_for(admin, hub, &secret).await.map_err(|e| match e {
        HubError::Unauthorized(why) => ask_credentials(&format!("authentication failed: {why}")),
        e => unavailable(&e),
    })
}

fn unavailable(e: &HubError) -> Refusal {
    tracing::error!(error = ?e, "checking a git client's access failed");
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "the hub cannot look up repositories right now; try again in a moment",
    )
}

/// The repository named by the URL, if the caller may do `need` with it; otherwise the answer
/// to give. A repository the caller may not read looks exactly like a missing one.
pub(crate) async fn authorized_repo(
    req: &Request,
    hub: &Hub,
    admin: &AdminAuth,
    need: Access,
) -> Result<Repo, Refusal> {
    // Names first, before anything else looks at them: the raw (still percent-encoded) path
    // segments, so an encoded '/', '.' or non-ASCII character is refused as such.
    let owner = req.raw_path_param("owner").unwrap_or_default();
    let repo = req.raw_path_param("repo").unwrap_or_default();
    let name = repo.strip_suffix(".git").unwrap_or(repo);
    let (owner, name) = match (OwnerName::parse(owner), RepoName::parse(name)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                format!("not a repository address: {e}; clone {{hub}}/{{owner}}/{{name}}.git"),
            ))
        }
    };
    let actor = caller(req, hub, admin).await?;
    // Reading first: whoever may read a mirror may learn it is one, and where to push instead.
    let (repo, access) = match hub
        .authorize_repo(&actor, owner.as_str(), name.as_str(), Access::Read)
        .await
    {
        Ok(found) => found,
        Err(HubError::Unauthorized(_)) => return Err(ask_credentials(NEED_TOKEN)),
        Err(HubError::NotFound(_)) if actor == Actor::Anonymous => {
            return Err(ask_credentials(NEED_TOKEN))
        }
        Err(HubError::NotFound(_)) => {
            return Err(refusal(
                StatusCode::NOT_FOUND,
                format!("repository {owner}/{name} does not exist on this hub"),
            ))
        }
        Err(e) => return Err(unavailable(&e)),
    };
    if need == Access::Read {
        return Ok(repo);
    }
    if repo.mode == Mode::Mirror {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            format!(
                "this repository is a mirror of {}; push to the upstream, or promote the mirror to primary to push here",
                repo.upstream_url
            ),
        ));
    }
    if access.includes(need) {
        return Ok(repo);
    }
    if actor == Actor::Anonymous {
        return Err(ask_credentials(
            "pushing needs a token that may write: give a personal access token as the password (any user name) or as `Authorization: Bearer <token>`",
        ));
    }
    match hub
        .authorize_repo(&actor, owner.as_str(), name.as_str(), need)
        .await
    {
        Ok((repo, _)) => Ok(repo),
        Err(HubError::Forbidden(why)) => Err(refusal(StatusCode::FORBIDDEN, why)),
        Err(e) => Err(unavailable(&e)),
    }
}

async fn readable_repo(req: &Request, hub: &Hub, admin: &AdminAuth) -> Result<Repo, Refusal> {
    authorized_repo(req, hub, admin, Access::Read).await
}

async fn writable_repo(req: &Request, hub: &Hub, admin: &AdminAuth) -> Result<Repo, Refusal> {
    authorized_repo(req, hub, admin, Access::Write).await
}

/// The bare repository on disk, when there is one to serve.
fn repo_dir(hub: &Hub, repo: &Repo) -> Result<PathBuf, Refusal> {
    let dir = hub.repo_path(repo.id);
    if repo.state != RepoState::Cloning && dir.is_dir() {
        return Ok(dir);
    }
    let why = match repo.state {
        RepoState::Cloning => "its first copy from the upstream is still running; try again when it is ready",
        _ => "its first copy from the upstream failed; see the repository's last error in the API and sync it again",
    };
    Err(refusal(
        StatusCode::NOT_FOUND,
        format!(
            "repository {}/{} has no content yet: {why}",
            repo.owner, repo.name
        ),
    ))
}

/// The client's `Git-Protocol` header as `GIT_PROTOCOL`, when it is plain `key=value:…` text.
fn git_protocol(req: &Request) -> Option<String> {
    let value = req.headers().get("git-protocol")?.to_str().ok()?;
    let plain = value.len() <= 256
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=:._-".contains(&b));
    plain.then(|| value.to_owned())
}

fn is_v2(protocol: Option<&str>) -> bool {
    protocol.is_some_and(|p| p.split(':').any(|kv| kv == "version=2"))
}

#[handler]
async fn info_refs(
    req: &Request,
    Data(hub): Data<&Arc<Hub>>,
    Data(admin): Data<&Arc<AdminAuth>>,
    Data(git): Data<&Arc<GitService>>,
) -> Response {
    advertise(req, hub, admin, git)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[handler]
async fn upload_pack(
    req: &Request,
    body: Body,
    Data(hub): Data<&Arc<Hub>>,
    Data(admin): Data<&Arc<AdminAuth>>,
    Data(git): Data<&Arc<GitService>>,
) -> Response {
    serve_pack(req, body, hub, admin, git)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[handler]
async fn receive_pack(
    req: &Request,
    body: Body,
    Data(hub): Data<&Arc<Hub>>,
    Data(admin): Data<&Arc<AdminAuth>>,
    Data(git): Data<&Arc<GitService>>,
) -> Response {
    take_push(req, body, hub, admin, git)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET info/refs?service=git-upload-pack`: the ref advertisement (v0), or the capabilities
/// (v2).
async fn advertise(
    req: &Request,
    hub: &Hub,
    admin: &AdminAuth,
    git: &GitService,
) -> Result<Response, Refusal> {
    let service = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("service="))
        .map(str::to_owned);
    let (repo, service) = match service.as_deref() {
        Some(UPLOAD_PACK) => (readable_repo(req, hub, admin).await?, UPLOAD_PACK),
        Some(RECEIVE_PACK) => (writable_repo(req, hub, admin).await?, RECEIVE_PACK),
        _ => {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "the hub speaks git's smart HTTP protocol only; use git 1.6.6 or newer",
            ))
        }
    };
    let dir = repo_dir(hub, &repo)?;
    // receive-pack speaks v0 only; for it the client's protocol wish is not passed on.
    let protocol = git_protocol(req).filter(|_| service == UPLOAD_PACK);
    let prefix = if is_v2(protocol.as_deref()) {
        Vec::new()
    } else {
        // Protocol v0/v1 over HTTP starts with the service line and a flush packet.
        let line = format!("# service={service}\n");
        format!("{:04x}{line}0000", line.len() + 4).into_bytes()
    };
    let (args, content_type): (&[&str], _) = if service == UPLOAD_PACK {
        (
            &[
                "upload-pack",
                "--stateless-rpc",
                "--advertise-refs",
                "--strict",
            ],
            "application/x-git-upload-pack-advertisement",
        )
    } else {
        (
            &["receive-pack", "--stateless-rpc", "--advertise-refs"],
            "application/x-git-receive-pack-advertisement",
        )
    };
    let out = start(git, &dir, args, protocol.as_deref(), None, Held::default())?;
    Ok(git_output(
        content_type,
        Body::from_async_read(std::io::Cursor::new(prefix).chain(out)),
    ))
}

/// The request body's encoding: `Ok(true)` for gzip.
fn body_is_gzip(req: &Request) -> Result<bool, Refusal> {
    match req
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None => Ok(false),
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => Ok(true),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(false),
        Some(_) => Err(refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be plain or gzip-compressed",
        )),
    }
}

fn expect_content_type(req: &Request, expected: &str, what: &str) -> Result<(), Refusal> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type == Some(expected) {
        Ok(())
    } else {
        Err(refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected a {what} request (Content-Type: {expected})"),
        ))
    }
}

/// `POST git-receive-pack`: a push to a primary repository. Pushes to one repository wait for
/// each other; when git is done, the ref changes are recorded as a run.
async fn take_push(
    req: &Request,
    body: Body,
    hub: &Arc<Hub>,
    admin: &AdminAuth,
    git: &GitService,
) -> Result<Response, Refusal> {
    let repo = writable_repo(req, hub, admin).await?;
    expect_content_type(req, "application/x-git-receive-pack-request", RECEIVE_PACK)?;
    let gzip = body_is_gzip(req)?;
    let dir = repo_dir(hub, &repo)?;
    let push_lock = git.push_lock(repo.id).lock_owned().await;
    let started_at = chrono::Utc::now();
    let before = git.engine.snapshot(&dir).await.map_err(|e| {
        tracing::error!(error = %e, "could not read the repository before a push");
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the hub could not read this repository; try again later",
        )
    })?;
    let after = {
        let hub = Arc::clone(hub);
        Box::pin(async move {
            if let Err(e) = hub.record_push(&repo, &before, started_at).await {
                tracing::error!(error = ?e, repo_id = repo.id, "a push could not be recorded");
            }
        })
    };
    let held = Held {
        push_lock: Some(push_lock),
        after: Some(after),
        ..Held::default()
    };
    let input = Input { body, gzip };
    let out = start(
        git,
        &dir,
        // Objects are checked as they arrive: a push cannot store a corrupt or malformed object.
        &[
            "-c",
            "receive.fsckObjects=true",
            "receive-pack",
            "--stateless-rpc",
        ],
        None,
        Some(input),
        held,
    )?;
    Ok(git_output(
        "application/x-git-receive-pack-result",
        Body::from_async_read(out),
    ))
}

/// `POST git-upload-pack`: one round of the negotiation, or the pack.
async fn serve_pack(
    req: &Request,
    body: Body,
    hub: &Hub,
    admin: &AdminAuth,
    git: &GitService,
) -> Result<Response, Refusal> {
    let repo = readable_repo(req, hub, admin).await?;
    expect_content_type(req, "application/x-git-upload-pack-request", UPLOAD_PACK)?;
    let gzip = body_is_gzip(req)?;
    let dir = repo_dir(hub, &repo)?;
    // Pack generation is the expensive part: at most `max_upload_packs` at once; the others
    // wait here for a slot.
    let permit = Arc::clone(&git.packs)
        .acquire_owned()
        .await
        .map_err(|_| refusal(StatusCode::SERVICE_UNAVAILABLE, "the hub is shutting down"))?;
    let protocol = git_protocol(req);
    let args = ["upload-pack", "--stateless-rpc", "--strict"];
    let input = Input { body, gzip };
    let held = Held {
        permit: Some(permit),
        ..Held::default()
    };
    let out = start(git, &dir, &args, protocol.as_deref(), Some(input), held)?;
    Ok(git_output(
        "application/x-git-upload-pack-result",
        Body::from_async_read(out),
    ))
}

fn git_output(content_type: &'static str, body: Body) -> Response {
    let mut resp = Response::builder()
        .content_type(content_type)
        .header(CACHE_CONTROL, "no-cache, max-age=0, must-revalidate")
        .header("pragma", "no-cache")
        .header("expires", "Fri, 01 Jan 1980 00:00:00 GMT")
        .body(body);
    resp.extensions_mut().insert(PassThrough);
    resp
}

/// The request body for upload-pack's stdin.
struct Input {
    body: Body,
    gzip: bool,
}

/// Starts `git <args> <dir>` and returns its stdout. A supervising task owns the child: it
/// feeds stdin, reaps the child, and kills its whole process group when the response body is
/// dropped before the end (the client went away) or the request body breaks off.
fn start(
    git: &GitService,
    dir: &std::path::Path,
    args: &[&str],
    protocol: Option<&str>,
    input: Option<Input>,
    held: Held,
) -> Result<GitStdout, Refusal> {
    let mut cmd = git.engine.local_command(dir);
    cmd.args(args)
        .arg(dir)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = protocol {
        cmd.env("GIT_PROTOCOL", p);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(error = %e, "could not start git to serve a repository");
            return Err(refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hub could not start git to serve this repository; try again later",
            ));
        }
    };
    let group = ProcessGroup::of(&child);
    let stdout = child.stdout.take().expect("stdout is piped");
    let stdin = child.stdin.take();
    let stderr = child.stderr.take().expect("stderr is piped");
    let abort = CancellationToken::new();
    let moved = LastMoved::new();
    if let (Some(input), Some(stdin)) = (input, stdin) {
        tokio::spawn(feed(input, stdin, abort.clone(), moved.clone()));
    }
    let watch = Watch {
        abort: abort.clone(),
        moved: moved.clone(),
        idle_timeout: git.idle_timeout,
    };
    tokio::spawn(supervise(child, group, stderr, watch, held));
    Ok(GitStdout {
        out: stdout,
        abort: Some(abort.drop_guard()),
        moved,
    })
}

/// Copies the request body into stdin, gunzipping it on the way when asked. A body that breaks
/// off (the client went away) aborts the run.
async fn feed(input: Input, mut stdin: ChildStdin, abort: CancellationToken, moved: LastMoved) {
    let mut body = input.body.into_async_read();
    let mut gunzip = input
        .gzip
        .then(|| flate2::write::GzDecoder::new(Vec::new()));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = body.read(&mut buf) => match read {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "the request body broke off; stopping upload-pack");
                    abort.cancel();
                    return;
                }
            },
            () = abort.cancelled() => return,
        };
        let chunk: &[u8] = match gunzip.as_mut() {
            None if n == 0 => break,
            None => &buf[..n],
            Some(gz) => {
                let step = if n == 0 {
                    gz.try_finish()
                } else {
                    gz.write_all(&buf[..n])
                };
                if let Err(e) = step {
                    tracing::debug!(error = %e, "a gzip request body is corrupt");
                    abort.cancel();
                    return;
                }
                if n == 0 && gz.get_ref().is_empty() {
                    break;
                }
                gz.get_mut().as_slice()
            }
        };
        // upload-pack may stop reading early (it answered, or it failed): nothing more to do.
        if stdin.write_all(chunk).await.is_err() {
            return;
        }
        moved.touch();
        if let Some(gz) = gunzip.as_mut() {
            gz.get_mut().clear();
        }
        if n == 0 {
            break;
        }
    }
    let _ = stdin.shutdown().await;
}

/// Reaps the child, killing its process group first if the run is aborted. Holds what `held`
/// holds (the pack-generation slot, the push lock) until git is gone, then runs its `after`
/// (a push is recorded even when the client went away: some refs may have moved).
async fn supervise(
    mut child: Child,
    mut group: ProcessGroup,
    stderr: tokio::process::ChildStderr,
    watch: Watch,
    held: Held,
) {
    let Watch {
        abort,
        moved,
        idle_timeout,
    } = watch;
    let Held {
        permit: _permit,
        push_lock: _push_lock,
        after,
    } = held;
    // Read to the end (git must never block on a full pipe), keeping the first 8 KiB.
    let errors = tokio::spawn(async move {
        let mut stderr = stderr;
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf).await {
            let room = (8 * 1024usize).saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    });
    // The abort is checked first: when the client goes away git may die of the closed pipe at
    // the same moment, and that is the client's doing, not git's failure.
    let mut stalled = false;
    let status = tokio::select! {
        biased;
        () = abort.cancelled() => None,
        () = moved.idle_for(idle_timeout) => {
            stalled = true;
            abort.cancel();
            None
        }
        status = child.wait() => Some(status),
    };
    match status {
        None => {
            // Killed while the leader is still unreaped, so the group id cannot be reused yet.
            group.kill();
            let _ = child.wait().await;
            group.disarm();
            if stalled {
                tracing::info!(timeout = ?idle_timeout, "the client moved no data for too long; git stopped");
            } else {
                tracing::info!("the client went away; git stopped");
            }
        }
        Some(status) => {
            group.disarm();
            match status {
                _ if abort.is_cancelled() => {
                    tracing::info!("the client went away; git stopped");
                }
                Ok(status) if !status.success() => {
                    let tail = errors.await.unwrap_or_default();
                    tracing::warn!(%status, stderr = %String::from_utf8_lossy(&tail).trim(), "git failed while serving a repository");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "waiting for git failed"),
            }
        }
    }
    if let Some(after) = after {
        after.await;
    }
}

/// upload-pack's stdout as a response body. Dropped before its end (the client went away), it
/// aborts the run.
struct GitStdout {
    // Declared first so it is dropped first: the abort is signalled before the pipe closes.
    abort: Option<DropGuard>,
    out: tokio::process::ChildStdout,
    moved: LastMoved,
}

/// What the supervisor of a git run watches: the abort, and whether data still moves.
struct Watch {
    abort: CancellationToken,
    moved: LastMoved,
    idle_timeout: Duration,
}

/// When data last moved between the client and git (either way).
#[derive(Clone)]
struct LastMoved {
    origin: tokio::time::Instant,
    /// Milliseconds after `origin`.
    at_ms: Arc<AtomicU64>,
}

impl LastMoved {
    fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            at_ms: Arc::default(),
        }
    }

    fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.at_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.origin + Duration::from_millis(self.at_ms.load(Ordering::Relaxed));
            if last.elapsed() >= limit {
                return;
            }
            tokio::time::sleep_until(last + limit).await;
        }
    }
}

impl AsyncRead for GitStdout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = Pin::new(&mut this.out).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.moved.touch();
            if buf.filled().len() == before && buf.remaining() > 0 {
                // The end: git wrote everything; let it exit on its own.
                if let Some(guard) = this.abort.take() {
                    guard.disarm();
                }
            }
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_header_is_passed_only_when_plain() {
        let req = |v: &str| Request::builder().header("git-protocol", v).finish();
        assert_eq!(
            git_protocol(&req("version=2")).as_deref(),
            Some("version=2")
        );
        assert_eq!(git_protocol(&req("version=2\nx")), None);
        assert_eq!(git_protocol(&req("a b")), None);
        assert!(is_v2(Some("object-format=sha1:version=2")));
        assert!(!is_v2(Some("version=1")));
        assert!(!is_v2(None));
    }
}
