//! A small HTTP/1.1 server that runs `git http-backend` as a CGI program: git's own smart HTTP
//! server, as forges and `git instaweb` deploy it, without a web server to install.
//!
//! Bodies are streamed both ways (request body into the CGI's stdin, its stdout back to the
//! client), so a clone of any size runs in constant memory. Chunked request bodies are decoded
//! by hyper; gzip request bodies are passed through with `HTTP_CONTENT_ENCODING`, and
//! http-backend inflates them itself.

use std::convert::Infallible;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::task::{JoinHandle, JoinSet};

use crate::repo::{clean_git_env, git_exec_path};

/// The most a CGI response's header block may take.
const MAX_CGI_HEADER: usize = 64 * 1024;
/// Read size for streaming the CGI's stdout.
const CHUNK: usize = 64 * 1024;

/// An HTTP server on 127.0.0.1 that serves the repositories under a root directory with
/// `git http-backend` (fetch and push; protocol v0, v1 and v2), optionally behind basic auth.
/// Stopped on drop, with the connections it is serving.
pub struct HttpGitServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

struct Shared {
    root: PathBuf,
    backend: PathBuf,
    auth: Option<Auth>,
    requests: AtomicU64,
    log: Mutex<Vec<RequestRecord>>,
}

struct Auth {
    user: String,
    /// `user:password`, as a basic `Authorization` header carries it once decoded.
    expected: Vec<u8>,
}

impl HttpGitServer {
    /// Starts serving the repositories under `root` on a free port of 127.0.0.1. With `auth`
    /// (`(user, password)`), a request without exactly these basic credentials gets `401` and
    /// `WWW-Authenticate: Basic realm="git"`. Must be called inside a tokio runtime, which runs
    /// the server. Panics if it cannot start.
    pub async fn start(root: &Path, auth: Option<(String, String)>) -> HttpGitServer {
        let root = root
            .canonicalize()
            .unwrap_or_else(|e| panic!("root {}: {e}", root.display()));
        let backend = git_exec_path().join("git-http-backend");
        assert!(
            backend.is_file(),
            "no git-http-backend at {}",
            backend.display()
        );
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            root,
            backend,
            auth: auth.map(|(user, password)| Auth {
                expected: format!("{user}:{password}").into_bytes(),
                user,
            }),
            requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        HttpGitServer {
            addr,
            shared,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT/<repo>`, `repo` relative to the root.
    pub fn url(&self, repo: &str) -> String {
        format!("http://{}/{}", self.addr, repo.trim_start_matches('/'))
    }

    /// Like [`url`](Self::url) with credentials in it (`http://user:password@…`), for git
    /// clients in tests. Both must be URL-safe as they are: they are not percent-encoded.
    pub fn url_with_credentials(&self, repo: &str, user: &str, password: &str) -> String {
        format!(
            "http://{user}:{password}@{}/{}",
            self.addr,
            repo.trim_start_matches('/')
        )
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests arrived since the start, including refused ones.
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The requests answered so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.lock().expect("request log").clone()
    }

    /// Forgets the requests counted and logged so far.
    pub fn reset_requests(&self) {
        let mut log = self.shared.log.lock().expect("request log");
        log.clear();
        self.shared.requests.store(0, Ordering::SeqCst);
    }
}

impl Drop for HttpGitServer {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection task; their
        // CGI processes are killed when their bodies drop.
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, Arc::clone(&shared)));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(request, peer, &shared).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
) -> Response<ResponseBody> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let response = match authorize(&request, shared) {
        Err(refusal) => refusal,
        Ok(remote_user) => match run_backend(request, peer, remote_user, shared).await {
            Ok(response) => response,
            Err(e) => text(
                StatusCode::BAD_GATEWAY,
                format!("git http-backend failed: {e}\n"),
            ),
        },
    };
    shared.log.lock().expect("request log").push(RequestRecord {
        method,
        path,
        query,
        status: response.status().as_u16(),
    });
    response
}

/// `Ok(user)` when the request may go on (`None`: no auth configured), else the 401 to send.
#[allow(clippy::result_large_err)]
fn authorize(
    request: &Request<Incoming>,
    shared: &Shared,
) -> Result<Option<String>, Response<ResponseBody>> {
    let Some(auth) = &shared.auth else {
        return Ok(None);
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| BASE64.decode(encoded.trim()).ok());
    if presented.as_deref() == Some(auth.expected.as_slice()) {
        return Ok(Some(auth.user.clone()));
    }
    let mut refusal = text(StatusCode::UNAUTHORIZED, "authentication required\n");
    refusal.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"git\""),
    );
    Err(refusal)
}

async fn run_backend(
    request: Request<Incoming>,
    peer: SocketAddr,
    remote_user: Option<String>,
    shared: &Shared,
) -> io::Result<Response<ResponseBody>> {
    let (parts, body) = request.into_parts();
    let mut cmd = std::process::Command::new(&shared.backend);
    clean_git_env(&mut cmd);
    cmd.env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        // Pushes are allowed without authentication too: these are test servers.
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.receivepack")
        .env("GIT_CONFIG_VALUE_0", "true")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("REMOTE_ADDR", peer.ip().to_string());
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    for (header, variable) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-length", "CONTENT_LENGTH"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = header_text(header) {
            cmd.env(variable, value);
        }
    }
    if let Some(user) = remote_user {
        cmd.env("REMOTE_USER", user);
    }
    cmd.current_dir(&shared.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    tokio::spawn(pump_body(body, stdin));

    let (status, headers, rest) = read_cgi_headers(&mut stdout).await?;
    let mut response = Response::new(ResponseBody::Cgi(Box::new(CgiBody {
        pending: Some(rest),
        stdout,
        child: Some(child),
        buf: vec![0; CHUNK],
        done: false,
    })));
    *response.status_mut() = status;
    response.headers_mut().extend(headers);
    Ok(response)
}

/// Copies the request body into the CGI's stdin, then closes it.
async fn pump_body(mut body: Incoming, mut stdin: ChildStdin) {
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(frame) = frame else { return };
        if let Ok(data) = frame.into_data() {
            if stdin.write_all(&data).await.is_err() {
                return;
            }
        }
    }
    let _ = stdin.shutdown().await;
}

type CgiHeaders = Vec<(Option<HeaderName>, HeaderValue)>;
type CgiHead = (StatusCode, CgiHeaders, Bytes);

/// Reads the CGI header block: the status (from `Status:`, 200 without), the other headers, and
/// the bytes of body read past the block.
async fn read_cgi_headers(stdout: &mut ChildStdout) -> io::Result<CgiHead> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((end, body_start)) = header_end(&buf) {
            let (status, headers) = parse_cgi_headers(&buf[..end])?;
            return Ok((status, headers, Bytes::copy_from_slice(&buf[body_start..])));
        }
        if buf.len() > MAX_CGI_HEADER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "CGI header block too large",
            ));
        }
        let n = stdout.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "git http-backend ended before its headers",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Where the header block ends (a blank line, CRLF or LF) and where the body starts.
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_cgi_headers(block: &[u8]) -> io::Result<(StatusCode, CgiHeaders)> {
    let invalid = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad CGI header: {what}"),
        )
    };
    let mut status = StatusCode::OK;
    let mut headers = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| invalid("no colon"))?;
        let name = std::str::from_utf8(&line[..colon])
            .map_err(|_| invalid("name"))?
            .trim();
        let value = std::str::from_utf8(&line[colon + 1..])
            .map_err(|_| invalid("value"))?
            .trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or_default();
            status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| invalid(value))?;
            continue;
        }
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(name))?;
        // Framing is hyper's business.
        if name == header::TRANSFER_ENCODING || name == header::CONNECTION {
            continue;
        }
        headers.push((
            Some(name),
            HeaderValue::from_str(value).map_err(|_| invalid(value))?,
        ));
    }
    Ok((status, headers))
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Full(Some(Bytes::from(body.into()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A response body: a short text, or the CGI's stdout streamed as it comes.
pub(crate) enum ResponseBody {
    Full(Option<Bytes>),
    Cgi(Box<CgiBody>),
}

pub(crate) struct CgiBody {
    /// Body bytes read together with the headers.
    pending: Option<Bytes>,
    stdout: ChildStdout,
    /// Killed if the client goes away mid-response; reaped in the background once done.
    child: Option<Child>,
    buf: Vec<u8>,
    done: bool,
}

impl CgiBody {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if let Some(pending) = self.pending.take().filter(|p| !p.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(pending))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let mut read = ReadBuf::new(&mut self.buf);
        match Pin::new(&mut self.stdout).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                self.done = true;
                // The output is complete: let the process finish on its own (a push may still
                // be tidying up) instead of killing it when this body drops.
                if let Some(mut child) = self.child.take() {
                    tokio::spawn(async move {
                        let _ = child.wait().await;
                    });
                }
                Poll::Ready(None)
            }
            Poll::Ready(Ok(())) => {
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(read.filled())))))
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ResponseBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResponseBody::Cgi(cgi) => cgi.poll_next(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(data) => data.is_none(),
            ResponseBody::Cgi(cgi) => cgi.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(Some(data)) => SizeHint::with_exact(data.len() as u64),
            ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Cgi(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_headers_are_parsed_with_crlf_or_lf() {
        let out = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nbody";
        let (end, start) = header_end(out).unwrap();
        assert_eq!(&out[start..], b"body");
        let (status, headers) = parse_cgi_headers(&out[..end]).unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers.len(), 1);

        let out = b"Content-Type: application/x-git-upload-pack-result\n\nPACK";
        let (end, start) = header_end(out).unwrap();
        assert_eq!(&out[start..], b"PACK");
        let (status, headers) = parse_cgi_headers(&out[..end]).unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[0].1, "application/x-git-upload-pack-result");
    }

    #[test]
    fn a_header_block_without_an_end_is_incomplete() {
        assert_eq!(header_end(b"Content-Type: text/plain\r\n"), None);
    }
}
