//! A Git LFS server on 127.0.0.1 for tests and benchmarks, written from the Git LFS API
//! documents (batch API, basic transfer, the locking API answered as unsupported), that the
//! real `git-lfs` client talks to, and that misbehaves on request ([`LfsFault`]).
//!
//! - `POST /{repo}/info/lfs/objects/batch`: download and upload actions (basic transfer) for
//!   one object store shared by every repository path. Per-object errors as the spec shows
//!   (`404` for an object it lacks, `422` for a malformed oid or a size that does not match);
//!   `406` without `Accept: application/vnd.git-lfs+json`, `422` for a body that is not a batch
//!   request or offers no `basic` transfer, `409` for a `hash_algo` other than `sha256`.
//! - Objects are files on disk in a temporary directory: a download streams from its file, an
//!   upload streams to a temporary file, is checked against its SHA-256 id and size, then
//!   renamed into place. No object is ever held whole in memory. Their `href`s:
//!   `{url}/{repo}/info/lfs/objects/{oid}` (GET, PUT; no `header`: the basic credentials), or
//!   `{storage_url}/objects/{oid}` with separate storage.
//! - `POST /{repo}/info/lfs/verify`: the verify action (`200` when the object is stored with
//!   that size, `404` when not).
//! - `/{repo}/info/lfs/locks…`: `404` (no locking; git-lfs warns and pushes anyway).
//! - Every other path (not containing `/info/lfs/`) is forwarded, streaming, to a git server
//!   ([`LfsOptions::forward_git_to`]), so git and LFS share one origin as on a forge.
//! - With [`LfsOptions::separate_storage`], object `href`s point to a second listener (another
//!   origin, like object storage on another host) that wants the per-action `header` of the
//!   batch answer instead of the basic credentials.
//!
//! ```no_run
//! # async fn demo() {
//! use mirrorhub_testkit::{LfsFault, LfsOptions, LfsServer};
//! let lfs = LfsServer::start(LfsOptions::default()).await;
//! let oid = lfs.insert(b"model weights");
//! lfs.set_fault(LfsFault::CorruptContent(oid.clone()));
//! // … point a client at lfs.endpoint("up.git") …
//! assert!(lfs.requests().iter().all(|r| r.listener == "api"));
//! # }
//! ```

use std::convert::Infallible;
use std::fs;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// The media type of every LFS API request and answer.
pub const LFS_MEDIA_TYPE: &str = "application/vnd.git-lfs+json";
/// `expires_in` of every action the batch answer gives.
const EXPIRES_IN: u64 = 3600;
/// The most a batch or verify request body may take.
const MAX_API_BODY: usize = 16 * 1024 * 1024;
/// Read size when streaming objects.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between a file reader and a connection.
const CHANNEL_DEPTH: usize = 4;

/// How the server is set up; [`Default`]: no auth, no git forwarding, objects on the API
/// listener.
#[derive(Debug, Clone, Default)]
pub struct LfsOptions {
    /// Basic credentials every batch/object request must carry (401 + WWW-Authenticate: Basic
    /// otherwise).
    pub auth: Option<(String, String)>,
    /// Base URL (e.g. an HttpGitServer's "http://127.0.0.1:PORT") to which every request that is
    /// not LFS (paths not containing "/info/lfs/") is forwarded byte for byte, streaming, so git
    /// and LFS share one origin: `git clone http://127.0.0.1:LFSPORT/up.git` works and git-lfs
    /// finds `<url>/info/lfs` by itself. None: such requests get 404.
    pub forward_git_to: Option<String>,
    /// Object hrefs point to a second listener (another origin: a different port), like object
    /// storage on another host. Its requests need no basic auth but must carry the per-action
    /// `header` the batch answer gave (`Authorization: RemoteAuth <random>`), else 403.
    pub separate_storage: bool,
}

/// A misbehaviour the server shows until another one replaces it ([`LfsServer::set_fault`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LfsFault {
    #[default]
    None,
    /// Serves other bytes of the same size for this oid (content no longer matches its id):
    /// every byte XOR 0x5A.
    CorruptContent(String),
    /// Serves a truncated body for this oid: the first half of the object, as a complete
    /// response (its `Content-Length` says the truncated size).
    ShortContent(String),
    /// The batch answer gives a different size (one more) for every object.
    WrongSizeInBatch,
    /// Objects in the batch answer have neither actions nor error.
    MissingActions,
    /// The batch answer is a valid JSON document of this many bytes (a `padding` field before
    /// the others, streamed: never built in memory) — for limits. A document that needs more
    /// bytes than this gets an empty padding.
    HugeBatch(usize),
    /// Every download href has "\r\nX-Evil: 1" appended (e.g.
    /// "http://127.0.0.1:P/up.git/info/lfs/objects/OID\r\nX-Evil: 1").
    CrLfHref,
    /// Every download href points to this URL instead (e.g.
    /// "http://169.254.169.254/latest/meta-data/").
    HrefTo(String),
    /// The batch answer says 404 for this oid (per-object error, as the spec shows), though the
    /// object is stored.
    ObjectError(String),
    /// Batch answers 503 with Retry-After: 1 this many times, then normally (the fault then
    /// clears itself). git-lfs 3.3 itself takes a 503 from the batch API as fatal: it does not
    /// wait and retry.
    Unavailable(u32),
    /// Object downloads stall after sending this many bytes (the connection stays open and
    /// nothing more is sent until the client leaves or the server is dropped).
    StallAfter(u64),
}

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfsRequest {
    /// `"api"` (the LFS API and, without separate storage, objects), `"storage"` (the second
    /// listener) or `"git"` (forwarded to the git server).
    pub listener: &'static str,
    pub method: String,
    /// The path, without query.
    pub path: String,
    /// The `Authorization` header as sent, if any.
    pub authorization: Option<String>,
    /// The status answered (for a forwarded request, the git server's).
    pub status: u16,
}

/// A Git LFS server on a free port of 127.0.0.1 (and a second one for object storage with
/// [`LfsOptions::separate_storage`]). Stopped on drop, with the connections it is serving.
pub struct LfsServer {
    api_addr: SocketAddr,
    storage_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    _dir: TempDir,
}

struct Shared {
    objects: PathBuf,
    tmp: PathBuf,
    api_url: String,
    storage_url: Option<String>,
    /// `user:password`, as a basic `Authorization` header carries it once decoded.
    auth: Option<Vec<u8>>,
    /// The `Authorization` value object requests on the storage listener must carry.
    storage_authorization: String,
    forward: Option<Forward>,
    fault: Mutex<LfsFault>,
    log: Mutex<Vec<LfsRequest>>,
    temp_names: AtomicU64,
}

/// Where non-LFS requests go.
struct Forward {
    /// `host:port` to connect to.
    authority: String,
    /// The base URL's path, without a trailing slash ("" for a bare origin).
    path: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Listener {
    Api,
    Storage,
}

impl LfsServer {
    /// Starts the server (and its storage listener). Must be called inside a tokio runtime,
    /// which runs it. Panics if it cannot start or `forward_git_to` is not an `http://` URL.
    pub async fn start(options: LfsOptions) -> LfsServer {
        let dir = tempfile::Builder::new()
            .prefix("mirrorhub-lfs")
            .tempdir()
            .expect("create LFS store dir");
        let objects = dir.path().join("objects");
        let tmp = dir.path().join("tmp");
        fs::create_dir_all(&objects).expect("create objects dir");
        fs::create_dir_all(&tmp).expect("create tmp dir");

        let api = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let api_addr = api.local_addr().expect("local addr");
        let storage = if options.separate_storage {
            Some(
                TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .expect("bind 127.0.0.1:0"),
            )
        } else {
            None
        };
        let storage_addr = storage
            .as_ref()
            .map(|listener| listener.local_addr().expect("local addr"));

        let forward = options.forward_git_to.as_deref().map(parse_forward);
        let shared = Arc::new(Shared {
            objects,
            tmp,
            api_url: format!("http://{api_addr}"),
            storage_url: storage_addr.map(|addr| format!("http://{addr}")),
            auth: options
                .auth
                .map(|(user, password)| format!("{user}:{password}").into_bytes()),
            storage_authorization: format!("RemoteAuth {}", random_token()),
            forward,
            fault: Mutex::new(LfsFault::None),
            log: Mutex::new(Vec::new()),
            temp_names: AtomicU64::new(0),
        });
        let mut tasks = vec![tokio::spawn(accept_loop(
            api,
            Listener::Api,
            Arc::clone(&shared),
        ))];
        if let Some(storage) = storage {
            tasks.push(tokio::spawn(accept_loop(
                storage,
                Listener::Storage,
                Arc::clone(&shared),
            )));
        }
        LfsServer {
            api_addr,
            storage_addr,
            shared,
            tasks,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared.api_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The LFS endpoint of a repository path: `{url}/{repo}/info/lfs`, `repo` like `up.git`.
    pub fn endpoint(&self, repo: &str) -> String {
        format!("{}/{}/info/lfs", self.url(), repo.trim_matches('/'))
    }

    /// `http://127.0.0.1:PORT` of the storage listener, when [`LfsOptions::separate_storage`].
    pub fn storage_url(&self) -> Option<String> {
        self.shared.storage_url.clone()
    }

    pub fn storage_addr(&self) -> Option<SocketAddr> {
        self.storage_addr
    }

    /// The `Authorization` value the storage listener wants (what the batch answer's action
    /// `header` carries): for tests that check where it was sent.
    pub fn storage_authorization(&self) -> String {
        self.shared.storage_authorization.clone()
    }

    /// Stores an object directly and returns its oid (SHA-256, lower-case hex).
    pub fn insert(&self, content: &[u8]) -> String {
        let (oid, _) = self
            .shared
            .store_from(&mut &content[..])
            .unwrap_or_else(|e| panic!("store LFS object: {e}"));
        oid
    }

    /// Streams a file into the store (for large objects); returns its oid and size.
    pub fn insert_file(&self, path: &Path) -> (String, u64) {
        let mut file =
            fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        self.shared
            .store_from(&mut file)
            .unwrap_or_else(|e| panic!("store LFS object from {}: {e}", path.display()))
    }

    /// Whether the object is stored.
    pub fn has(&self, oid: &str) -> bool {
        self.object_path(oid).is_some()
    }

    /// Where the object is stored, if it is.
    pub fn object_path(&self, oid: &str) -> Option<PathBuf> {
        valid_oid(oid)
            .then(|| self.shared.path_of(oid))
            .filter(|path| path.is_file())
    }

    /// Deletes the object from the store (nothing if it is not there).
    pub fn remove(&self, oid: &str) {
        if let Some(path) = self.object_path(oid) {
            fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        }
    }

    /// Replaces the current fault; [`LfsFault::None`] clears it.
    pub fn set_fault(&self, fault: LfsFault) {
        *self.shared.fault.lock().expect("fault") = fault;
    }

    /// Every request answered on both listeners (and forwarded to git), oldest first.
    pub fn requests(&self) -> Vec<LfsRequest> {
        self.shared.log.lock().expect("request log").clone()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        self.shared.log.lock().expect("request log").clear();
    }
}

impl Drop for LfsServer {
    fn drop(&mut self) {
        // Each accept task owns the JoinSet of its connections: aborting it aborts them all,
        // which drops their bodies and so ends the tasks feeding them.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    fn path_of(&self, oid: &str) -> PathBuf {
        self.objects.join(&oid[0..2]).join(&oid[2..4]).join(oid)
    }

    fn temp_path(&self) -> PathBuf {
        let n = self.temp_names.fetch_add(1, Ordering::SeqCst);
        self.tmp.join(format!("incoming-{n}"))
    }

    fn stored_size(&self, oid: &str) -> Option<u64> {
        fs::metadata(self.path_of(oid))
            .ok()
            .filter(|meta| meta.is_file())
            .map(|meta| meta.len())
    }

    /// Copies `reader` into a temporary file while hashing it, then renames it into place.
    fn store_from(&self, reader: &mut dyn Read) -> io::Result<(String, u64)> {
        let temp = self.temp_path();
        let result = (|| {
            let mut file = fs::File::create(&temp)?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])?;
                size += n as u64;
            }
            file.sync_all()?;
            let oid = hex::encode(hasher.finalize());
            self.place(&temp, &oid)?;
            Ok((oid, size))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// Renames a checked temporary file to the object's place.
    fn place(&self, temp: &Path, oid: &str) -> io::Result<()> {
        let path = self.path_of(oid);
        fs::create_dir_all(path.parent().expect("object path has a parent"))?;
        fs::rename(temp, &path)
    }

    fn fault(&self) -> LfsFault {
        self.fault.lock().expect("fault").clone()
    }

    /// Takes one of the `Unavailable` answers left, if any.
    fn take_unavailable(&self) -> bool {
        let mut fault = self.fault.lock().expect("fault");
        match &mut *fault {
            LfsFault::Unavailable(left) if *left > 0 => {
                *left -= 1;
                if *left == 0 {
                    *fault = LfsFault::None;
                }
                true
            }
            _ => false,
        }
    }

    fn basic_auth_ok(&self, request: &Request<Incoming>) -> bool {
        let Some(expected) = &self.auth else {
            return true;
        };
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, encoded)| BASE64.decode(encoded.trim()).ok())
            .is_some_and(|presented| presented == *expected)
    }

    fn storage_auth_ok(&self, request: &Request<Incoming>) -> bool {
        request
            .headers()
            .get(header::AUTHORIZATION)
            .is_some_and(|value| value.as_bytes() == self.storage_authorization.as_bytes())
    }

    /// Where an object's bytes are fetched and sent, and the header that must go with them.
    fn object_href(&self, repo: &str, oid: &str) -> (String, Option<Value>) {
        match &self.storage_url {
            Some(storage) => (
                format!("{storage}/objects/{oid}"),
                Some(json!({ "Authorization": self.storage_authorization })),
            ),
            None => (
                format!("{}/{repo}/info/lfs/objects/{oid}", self.api_url),
                None,
            ),
        }
    }
}

fn parse_forward(base: &str) -> Forward {
    let url = url::Url::parse(base)
        .unwrap_or_else(|e| panic!("forward_git_to {base:?} is not a URL: {e}"));
    assert_eq!(
        url.scheme(),
        "http",
        "forward_git_to {base:?}: only http:// is supported"
    );
    let host = url.host_str().expect("forward_git_to has a host");
    let port = url.port_or_known_default().expect("http has a port");
    Forward {
        authority: format!("{host}:{port}"),
        path: url.path().trim_end_matches('/').to_owned(),
    }
}

/// 128 random bits, hex: the storage listener's token.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    hex::encode(bytes)
}

/// A SHA-256 oid as LFS writes them: 64 lower-case hex digits.
fn valid_oid(oid: &str) -> bool {
    oid.len() == 64 && oid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

async fn accept_loop(listener: TcpListener, which: Listener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, which, Arc::clone(&shared)));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, which: Listener, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(request, which, &shared).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(request: Request<Incoming>, which: Listener, shared: &Shared) -> Response<LfsBody> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let (listener, response) = match which {
        Listener::Storage => ("storage", storage_request(request, shared).await),
        Listener::Api => match path.find("/info/lfs/") {
            Some(at) => {
                let repo = path[1.min(at)..at].to_owned();
                let rest = path[at + "/info/lfs/".len()..].to_owned();
                ("api", api_request(request, &repo, &rest, shared).await)
            }
            None => ("git", forward_request(request, shared).await),
        },
    };
    shared.log.lock().expect("request log").push(LfsRequest {
        listener,
        method,
        path,
        authorization,
        status: response.status().as_u16(),
    });
    response
}

async fn storage_request(request: Request<Incoming>, shared: &Shared) -> Response<LfsBody> {
    let Some(oid) = request.uri().path().strip_prefix("/objects/") else {
        return message(StatusCode::NOT_FOUND, "no such path on this object storage");
    };
    let oid = oid.to_owned();
    if !shared.storage_auth_ok(&request) {
        return message(
            StatusCode::FORBIDDEN,
            "object storage wants the Authorization header the batch answer gave for this action",
        );
    }
    object_request(request, &oid, shared).await
}

async fn api_request(
    request: Request<Incoming>,
    repo: &str,
    rest: &str,
    shared: &Shared,
) -> Response<LfsBody> {
    if !shared.basic_auth_ok(&request) {
        let mut refusal = message(StatusCode::UNAUTHORIZED, "credentials needed");
        for name in [
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("lfs-authenticate"),
        ] {
            refusal
                .headers_mut()
                .insert(name, HeaderValue::from_static("Basic realm=\"lfs\""));
        }
        return refusal;
    }
    if repo.is_empty() {
        return message(StatusCode::NOT_FOUND, "no repository in the path");
    }
    if rest == "locks" || rest.starts_with("locks/") {
        return message(
            StatusCode::NOT_FOUND,
            "this server does not support the Git LFS locking API",
        );
    }
    match rest {
        "objects/batch" if request.method() == Method::POST => batch(request, repo, shared).await,
        "verify" if request.method() == Method::POST => verify(request, shared).await,
        "objects/batch" | "verify" => message(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
        _ => match rest.strip_prefix("objects/") {
            Some(oid) if shared.storage_url.is_none() => {
                let oid = oid.to_owned();
                object_request(request, &oid, shared).await
            }
            _ => message(StatusCode::NOT_FOUND, "no such LFS path"),
        },
    }
}

/// `GET` or `PUT` of one object.
async fn object_request(
    request: Request<Incoming>,
    oid: &str,
    shared: &Shared,
) -> Response<LfsBody> {
    if !valid_oid(oid) {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "an oid is 64 lower-case hex digits (SHA-256)",
        );
    }
    match *request.method() {
        Method::GET => download(oid, shared).await,
        Method::PUT => upload(request, oid, shared).await,
        _ => message(StatusCode::METHOD_NOT_ALLOWED, "use GET or PUT"),
    }
}

#[derive(Deserialize)]
struct BatchRequest {
    operation: String,
    #[serde(default)]
    transfers: Option<Vec<String>>,
    objects: Vec<BatchObject>,
    #[serde(default)]
    hash_algo: Option<String>,
}

#[derive(Deserialize)]
struct BatchObject {
    oid: String,
    size: u64,
}

async fn read_api_body(request: Request<Incoming>) -> Result<Bytes, Response<LfsBody>> {
    match Limited::new(request.into_body(), MAX_API_BODY)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large or broken",
        )),
    }
}

async fn batch(request: Request<Incoming>, repo: &str, shared: &Shared) -> Response<LfsBody> {
    let accepts = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains(LFS_MEDIA_TYPE));
    if !accepts {
        return message(
            StatusCode::NOT_ACCEPTABLE,
            "the batch API wants Accept: application/vnd.git-lfs+json",
        );
    }
    let body = match read_api_body(request).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(e) => {
            return message(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("not a batch request: {e}"),
            )
        }
    };
    let upload = match batch.operation.as_str() {
        "download" => false,
        "upload" => true,
        other => {
            return message(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("operation {other:?} is neither download nor upload"),
            )
        }
    };
    if let Some(transfers) = &batch.transfers {
        if !transfers.iter().any(|t| t == "basic") {
            return message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this server only has the basic transfer adapter",
            );
        }
    }
    if let Some(algo) = batch.hash_algo.as_deref().filter(|a| *a != "sha256") {
        return message(
            StatusCode::CONFLICT,
            &format!("hash algorithm {algo:?} is not supported; this server uses sha256"),
        );
    }
    if shared.take_unavailable() {
        let mut refusal = message(StatusCode::SERVICE_UNAVAILABLE, "try again shortly");
        refusal
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return refusal;
    }

    let fault = shared.fault();
    let objects: Vec<Value> = batch
        .objects
        .iter()
        .map(|object| batch_object(object, upload, repo, &fault, shared))
        .collect();
    let answer = json!({
        "transfer": "basic",
        "objects": objects,
        "hash_algo": "sha256",
    });
    let document = answer.to_string();
    let body = match fault {
        LfsFault::HugeBatch(total) => padded_document(document, total),
        _ => LfsBody::full(document),
    };
    lfs_json(StatusCode::OK, body)
}

fn batch_object(
    object: &BatchObject,
    upload: bool,
    repo: &str,
    fault: &LfsFault,
    shared: &Shared,
) -> Value {
    let oid = object.oid.as_str();
    let size = match fault {
        LfsFault::WrongSizeInBatch => object.size + 1,
        _ => object.size,
    };
    let mut answer = json!({ "oid": oid, "size": size });
    if *fault == LfsFault::MissingActions {
        return answer;
    }
    let error = |code: u16, text: String| json!({ "code": code, "message": text });
    if !valid_oid(oid) {
        answer["error"] = error(
            422,
            "an oid is 64 lower-case hex digits (SHA-256)".to_owned(),
        );
        return answer;
    }
    let stored = shared.stored_size(oid);
    if let Some(stored) = stored.filter(|stored| *stored != object.size) {
        answer["error"] = error(
            422,
            format!("object {oid} has {stored} bytes here, not {}", object.size),
        );
        return answer;
    }
    let (href, header) = shared.object_href(repo, oid);
    let action = |href: String, header: &Option<Value>| {
        let mut action = json!({ "href": href, "expires_in": EXPIRES_IN });
        if let Some(header) = header {
            action["header"] = header.clone();
        }
        action
    };
    if upload {
        if stored.is_none() {
            answer["actions"] = json!({
                "upload": action(href, &header),
                "verify": action(format!("{}/{repo}/info/lfs/verify", shared.api_url), &None),
            });
        }
        return answer;
    }
    let refused = matches!(fault, LfsFault::ObjectError(o) if o == oid);
    if stored.is_none() || refused {
        answer["error"] = error(404, format!("object {oid} does not exist"));
        return answer;
    }
    let href = match fault {
        LfsFault::CrLfHref => format!("{href}\r\nX-Evil: 1"),
        LfsFault::HrefTo(url) => url.clone(),
        _ => href,
    };
    answer["actions"] = json!({ "download": action(href, &header) });
    answer
}

/// `document` (a JSON object) with a `padding` field first, so that it takes `total` bytes;
/// streamed.
fn padded_document(document: String, total: usize) -> LfsBody {
    const HEAD: &str = "{\"padding\":\"";
    const TAIL: &str = "\",";
    let rest = &document[1..]; // after the opening brace
    let fixed = HEAD.len() + TAIL.len() + rest.len();
    let pad = total.saturating_sub(fixed);
    let length = (fixed + pad) as u64;
    let rest = Bytes::from(rest.to_owned());
    LfsBody::produced(length, move |tx| async move {
        send(&tx, Bytes::from_static(HEAD.as_bytes())).await?;
        let filler = Bytes::from(vec![b'x'; CHUNK]);
        let mut left = pad;
        while left > 0 {
            let n = left.min(CHUNK);
            send(&tx, filler.slice(..n)).await?;
            left -= n;
        }
        send(&tx, Bytes::from_static(TAIL.as_bytes())).await?;
        send(&tx, rest).await
    })
}

async fn verify(request: Request<Incoming>, shared: &Shared) -> Response<LfsBody> {
    let body = match read_api_body(request).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let object: BatchObject = match serde_json::from_slice(&body) {
        Ok(object) => object,
        Err(e) => {
            return message(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("not a verify request: {e}"),
            )
        }
    };
    if !valid_oid(&object.oid) {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "an oid is 64 lower-case hex digits (SHA-256)",
        );
    }
    match shared.stored_size(&object.oid) {
        Some(size) if size == object.size => lfs_json(StatusCode::OK, LfsBody::full("{}")),
        Some(size) => message(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "object {} has {size} bytes here, not {}",
                object.oid, object.size
            ),
        ),
        None => message(
            StatusCode::NOT_FOUND,
            &format!("object {} does not exist", object.oid),
        ),
    }
}

async fn download(oid: &str, shared: &Shared) -> Response<LfsBody> {
    let path = shared.path_of(oid);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(_) => {
            return message(
                StatusCode::NOT_FOUND,
                &format!("object {oid} does not exist"),
            )
        }
    };
    let size = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(e) => {
            return message(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("stat object: {e}"),
            )
        }
    };
    let fault = shared.fault();
    let corrupt = matches!(&fault, LfsFault::CorruptContent(o) if o == oid);
    let length = match &fault {
        LfsFault::ShortContent(o) if o == oid => size / 2,
        _ => size,
    };
    let stall_after = match fault {
        LfsFault::StallAfter(n) if n < length => Some(n),
        _ => None,
    };
    let body = LfsBody::produced(length, move |tx| async move {
        let mut file = file;
        let mut sent = 0u64;
        let limit = stall_after.unwrap_or(length);
        let mut buf = vec![0u8; CHUNK];
        while sent < limit {
            let want = (limit - sent).min(CHUNK as u64) as usize;
            let n = file.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object file shorter than its size",
                ));
            }
            let mut chunk = buf[..n].to_vec();
            if corrupt {
                chunk.iter_mut().for_each(|b| *b ^= 0x5A);
            }
            send(&tx, Bytes::from(chunk)).await?;
            sent += n as u64;
        }
        if stall_after.is_some() {
            // Hold the response open, sending nothing, until the client goes away.
            tx.closed().await;
        }
        Ok(())
    });
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

async fn upload(request: Request<Incoming>, oid: &str, shared: &Shared) -> Response<LfsBody> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let temp = shared.temp_path();
    let outcome = receive(request.into_body(), &temp).await;
    let refusal = match outcome {
        Err(e) => Some(message(
            StatusCode::BAD_REQUEST,
            &format!("the upload broke off: {e}"),
        )),
        Ok((_, size)) if declared.is_some_and(|declared| declared != size) => Some(message(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "received {size} bytes, Content-Length said {}",
                declared.unwrap_or_default()
            ),
        )),
        Ok((actual, size)) if actual != oid => Some(message(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("the {size} bytes received have SHA-256 {actual}, not {oid}"),
        )),
        Ok(_) => match shared.place(&temp, oid) {
            Ok(()) => None,
            Err(e) => Some(message(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("store object: {e}"),
            )),
        },
    };
    match refusal {
        Some(refusal) => {
            let _ = tokio::fs::remove_file(&temp).await;
            refusal
        }
        None => lfs_json(StatusCode::OK, LfsBody::full("{}")),
    }
}

/// Streams a request body into `temp`, hashing it; returns its oid and size.
async fn receive(mut body: Incoming, temp: &Path) -> io::Result<(String, u64)> {
    let mut file = tokio::fs::File::create(temp).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(io::Error::other)?;
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
            file.write_all(&data).await?;
            size += data.len() as u64;
        }
    }
    file.sync_all().await?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// Sends a request that is not LFS to the git server, streaming both ways.
async fn forward_request(request: Request<Incoming>, shared: &Shared) -> Response<LfsBody> {
    let Some(forward) = &shared.forward else {
        return message(StatusCode::NOT_FOUND, "this server only serves Git LFS");
    };
    match forward_to(forward, request).await {
        Ok(response) => response.map(LfsBody::Forwarded),
        Err(e) => message(
            StatusCode::BAD_GATEWAY,
            &format!("forwarding to the git server failed: {e}"),
        ),
    }
}

async fn forward_to(
    forward: &Forward,
    request: Request<Incoming>,
) -> Result<Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(&forward.authority).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    parts.uri = format!("{}{path}", forward.path).parse()?;
    for hop in ["connection", "keep-alive", "proxy-connection", "upgrade"] {
        parts.headers.remove(hop);
    }
    parts
        .headers
        .insert(header::HOST, HeaderValue::from_str(&forward.authority)?);
    let mut response = sender
        .send_request(Request::from_parts(parts, body))
        .await?;
    response.headers_mut().remove(header::CONNECTION);
    Ok(response)
}

/// Sends one chunk; an error when the client went away.
async fn send(tx: &mpsc::Sender<io::Result<Bytes>>, chunk: Bytes) -> io::Result<()> {
    tx.send(Ok(chunk))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
}

/// An answer with a `{"message": …}` body, as the LFS API answers errors.
fn message(status: StatusCode, text: &str) -> Response<LfsBody> {
    lfs_json(
        status,
        LfsBody::full(json!({ "message": text }).to_string()),
    )
}

fn lfs_json(status: StatusCode, body: LfsBody) -> Response<LfsBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(LFS_MEDIA_TYPE),
    );
    response
}

/// A response body: a short document, chunks produced by a task (objects, padded documents),
/// or the git server's answer passed through.
pub(crate) enum LfsBody {
    Full(Option<Bytes>),
    Produced {
        rx: mpsc::Receiver<io::Result<Bytes>>,
        /// Bytes still to come: the body is exactly this long.
        left: u64,
    },
    Forwarded(Incoming),
}

impl LfsBody {
    fn full(text: impl Into<Bytes>) -> LfsBody {
        LfsBody::Full(Some(text.into()))
    }

    /// A body of exactly `length` bytes that `produce` sends through a channel (its end, or
    /// the error it returns, ends the body). It runs on its own task, which ends when the
    /// client goes away (its sends fail).
    fn produced<F, Fut>(length: u64, produce: F) -> LfsBody
    where
        F: FnOnce(mpsc::Sender<io::Result<Bytes>>) -> Fut,
        Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let error_tx = tx.clone();
        let work = produce(tx);
        tokio::spawn(async move {
            if let Err(e) = work.await {
                let _ = error_tx.send(Err(e)).await;
            }
        });
        LfsBody::Produced { rx, left: length }
    }
}

impl Body for LfsBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            LfsBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            LfsBody::Produced { rx, left } => {
                if *left == 0 {
                    return Poll::Ready(None);
                }
                match rx.poll_recv(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(Ok(chunk))) => {
                        *left = left.saturating_sub(chunk.len() as u64);
                        Poll::Ready(Some(Ok(Frame::data(chunk))))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "body ended before its length",
                    )))),
                }
            }
            LfsBody::Forwarded(body) => Pin::new(body).poll_frame(cx).map_err(io::Error::other),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            LfsBody::Full(data) => data.is_none(),
            LfsBody::Produced { left, .. } => *left == 0,
            LfsBody::Forwarded(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            LfsBody::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            LfsBody::Full(None) => SizeHint::with_exact(0),
            LfsBody::Produced { left, .. } => SizeHint::with_exact(*left),
            LfsBody::Forwarded(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_are_64_lower_case_hex_digits() {
        assert!(valid_oid(&"a".repeat(64)));
        assert!(valid_oid(
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        ));
        assert!(!valid_oid(&"A".repeat(64)));
        assert!(!valid_oid(&"a".repeat(63)));
        assert!(!valid_oid(&"a".repeat(65)));
        assert!(!valid_oid(&format!("{}g", "a".repeat(63))));
        assert!(!valid_oid("../../../../etc/passwd"));
        assert!(!valid_oid(""));
    }

    #[tokio::test]
    async fn a_padded_document_is_json_of_exactly_the_size_asked() {
        let document = json!({"transfer": "basic", "objects": []}).to_string();
        for total in [0, 10, 100, 200_000] {
            let mut body = padded_document(document.clone(), total);
            let mut bytes = Vec::new();
            while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                bytes.extend_from_slice(&frame.unwrap().into_data().unwrap());
            }
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(value["transfer"], "basic");
            assert!(value["padding"].is_string());
            assert_eq!(bytes.len(), total.max(document.len() + 13), "total {total}");
        }
    }
}
