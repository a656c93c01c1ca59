//! A stand-in for a forge's REST API (GitHub, GitLab, Gitea/Forgejo) on 127.0.0.1: it records
//! every request it gets and answers from a table the test programs, so a client can be driven
//! over real HTTP and its requests asserted byte for byte.
//!
//! ```no_run
//! # async fn demo() {
//! use mirrorhub_testkit::{ForgeApiServer, Reply};
//! let server = ForgeApiServer::start().await;
//! server.on("POST", "/repos/o/r/hooks", Reply::json(201, serde_json::json!({"id": 7})));
//! // … point the client at server.url() …
//! let requests = server.recorded();
//! assert_eq!(requests[0].header("authorization"), Some("Bearer t"));
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// One request the server received, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path with its query, as sent: `/api/v4/projects/a%2Fb/hooks?x=1`.
    pub path: String,
    /// Every header in arrival order, names lower-cased, values as (lossy) text. A name sent
    /// twice appears twice.
    pub headers: Vec<(String, String)>,
    /// The body bytes (after hyper's chunked decoding; no content decoding).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The record of a request with these `parts` and `body`.
    pub(crate) fn new(parts: &hyper::http::request::Parts, body: Vec<u8>) -> RecordedRequest {
        RecordedRequest {
            method: parts.method.as_str().to_owned(),
            path: parts
                .uri
                .path_and_query()
                .map(|pq| pq.as_str().to_owned())
                .unwrap_or_else(|| parts.uri.path().to_owned()),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        }
    }

    /// The first value of a header (`name` in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }

    /// Every value of a header (`name` in any case), in arrival order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// The body parsed as JSON. Panics if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: body is not JSON ({e}): {:?}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body decoded as `application/x-www-form-urlencoded` pairs, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// Every text the request carried (path, header values, body), for "this secret was never
    /// sent here" checks.
    pub fn contains(&self, needle: &str) -> bool {
        self.path.contains(needle)
            || self.headers.iter().any(|(_, v)| v.contains(needle))
            || String::from_utf8_lossy(&self.body).contains(needle)
    }
}

/// How the server answers a matching request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Sent as `application/json`; `None` sends no body.
    pub body: Option<serde_json::Value>,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering (for client timeouts).
    pub delay: Duration,
}

impl Reply {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// `status` with no body (`204 No Content` and the like).
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answers only after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

struct Route {
    method: String,
    prefix: String,
    reply: Reply,
}

#[derive(Default)]
struct Shared {
    routes: Mutex<Vec<Route>>,
    log: Mutex<Vec<RecordedRequest>>,
    /// Where requests that match no route go instead of a 404 (see `forward_unmatched_to`).
    fallback: Mutex<Option<String>>,
}

impl Shared {
    /// The route with the longest prefix of `path` (without query) for `method`; among equals,
    /// the one added last.
    fn reply_for(&self, method: &str, path: &str) -> Option<Reply> {
        let routes = self.routes.lock().expect("routes");
        routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.method.eq_ignore_ascii_case(method) && path.starts_with(&r.prefix))
            .max_by_key(|(i, r)| (r.prefix.len(), *i))
            .map(|(_, r)| r.reply.clone())
    }
}

/// A forge REST API stand-in on a free port of 127.0.0.1. Requests that match no route get
/// `404 {"message":"Not Found"}` (and are recorded too). Stopped on drop.
pub struct ForgeApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl ForgeApiServer {
    /// Starts the server. Must be called inside a tokio runtime, which runs it.
    pub async fn start() -> ForgeApiServer {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(serve(
            listener,
            Arc::clone(&shared),
            |request, shared: Arc<Shared>| async move { handle(request, &shared).await },
        ));
        ForgeApiServer {
            addr,
            shared,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `method` requests whose path (without query) starts with `path_prefix` with
    /// `reply`. The longest matching prefix wins; a route added later replaces an equal one.
    pub fn on(&self, method: &str, path_prefix: &str, reply: Reply) {
        self.shared.routes.lock().expect("routes").push(Route {
            method: method.to_owned(),
            prefix: path_prefix.to_owned(),
            reply,
        });
    }

    /// Shorthand for [`on`](Self::on) with [`Reply::json`]; a `null` body sends no body.
    pub fn respond(&self, method: &str, path_prefix: &str, status: u16, body: serde_json::Value) {
        let reply = if body.is_null() {
            Reply::empty(status)
        } else {
            Reply::json(status, body)
        };
        self.on(method, path_prefix, reply);
    }

    /// Sends requests that match no route to `base` (e.g. an [`HttpGitServer`](crate::HttpGitServer)'s
    /// URL) and answers with its answer, unrecorded: one host:port then serves a forge's API
    /// and its Git repositories, as a real forge does.
    pub fn forward_unmatched_to(&self, base: &str) {
        *self.shared.fallback.lock().expect("fallback") =
            Some(base.trim_end_matches('/').to_owned());
    }

    /// The requests received so far, oldest first.
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().expect("request log").clone()
    }

    /// Forgets every route (the recorded requests stay): requests go to the fallback again,
    /// or get 404.
    pub fn clear_routes(&self) {
        self.shared.routes.lock().expect("routes").clear();
    }

    /// Forgets the requests recorded so far (the routes stay).
    pub fn clear_recorded(&self) {
        self.shared.log.lock().expect("request log").clear();
    }
}

impl Drop for ForgeApiServer {
    fn drop(&mut self) {
        // The accept task owns the JoinSet of connections: aborting it aborts them all.
        self.accept.abort();
    }
}

/// Serves HTTP/1.1 on `listener`, answering each request with `handle(request, state)`, until
/// the task is aborted (its connections with it). The forge stand-ins' server loop.
pub(crate) async fn serve<S, F, Fut>(listener: TcpListener, state: Arc<S>, handle: F)
where
    S: Send + Sync + 'static,
    F: Fn(Request<Incoming>, Arc<S>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&state), handle));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve_connection<S, F, Fut>(stream: TcpStream, state: Arc<S>, handle: F)
where
    S: Send + Sync + 'static,
    F: Fn(Request<Incoming>, Arc<S>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let answer = handle(request, Arc::clone(&state));
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(request: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(e) => return status_only(StatusCode::BAD_REQUEST, &format!("body: {e}")),
    };
    let record = RecordedRequest::new(&parts, body);
    let reply = shared.reply_for(&record.method, record.path_only());
    let fallback = shared.fallback.lock().expect("fallback").clone();
    if let (None, Some(base)) = (&reply, fallback) {
        return forward(&base, &parts, record.path.clone(), record.body).await;
    }
    shared.log.lock().expect("request log").push(record);

    let Some(reply) = reply else {
        return status_only(StatusCode::NOT_FOUND, "Not Found");
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).expect("reply status is a valid HTTP status");
    let mut response = match &reply.body {
        Some(json) => {
            let mut response = Response::new(Full::new(Bytes::from(json.to_string())));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        None => Response::new(Full::new(Bytes::new())),
    };
    *response.status_mut() = status;
    for (name, value) in &reply.headers {
        response.headers_mut().append(
            HeaderName::try_from(name.as_str()).expect("reply header name"),
            HeaderValue::try_from(value.as_str()).expect("reply header value"),
        );
    }
    response
}

/// Replays a request against `base` and returns its answer (bodies buffered: test traffic).
pub(crate) async fn forward(
    base: &str,
    parts: &hyper::http::request::Parts,
    path: String,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let client = reqwest::Client::new();
    let mut request = client.request(parts.method.clone(), format!("{base}{path}"));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST {
            request = request.header(name, value);
        }
    }
    let answer = match request.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => return status_only(StatusCode::BAD_GATEWAY, &format!("forward: {e}")),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != hyper::header::CONTENT_LENGTH && name != hyper::header::TRANSFER_ENCODING {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

fn status_only(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
