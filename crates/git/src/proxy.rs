//! The egress proxy: every http(s) connection git makes goes through it, and it connects only to
//! addresses the [`AddressPolicy`] allows, checked on the address it actually connects to. So
//! redirects, DNS answers that change between two lookups (rebinding) and host names that
//! resolve to internal addresses are all caught at connect time.
//!
//! It listens on 127.0.0.1 on a random port and speaks just enough HTTP/1.1 for curl:
//! `CONNECT host:port` (https, tunnelled byte for byte) and absolute-form plain-http requests
//! (rewritten to origin-form with `Connection: close`, then piped both ways). Each git
//! invocation gets its own [`Ticket`]: a random token that git sends as proxy credentials, under
//! which the proxy records why that invocation's connections were refused or failed, so the
//! engine can report "refused: loopback address" instead of git's generic "403". A ticket's
//! connections end when it is cut or dropped: an in-process client that hangs in a read is
//! freed that way.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use mirrorhub_core::{AddressPolicy, Refusal};

use crate::error::GitError;
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// The most a request or response header block may take.
const MAX_HEAD: usize = 64 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection the policy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefusedConnect {
    pub host: String,
    pub addr: IpAddr,
    pub refusal: Refusal,
}

impl From<RefusedConnect> for GitError {
    fn from(r: RefusedConnect) -> Self {
        GitError::UrlRefused {
            host: r.host,
            addr: r.addr,
            refusal: r.refusal,
        }
    }
}

/// What happened to one invocation's connections, as far as the engine needs to know.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectLog {
    /// The first connection refused by the policy.
    pub refused: Option<RefusedConnect>,
    /// The last connection that could not be made (resolution or connect failure).
    pub unreachable: Option<String>,
}

/// Why no allowed address could be found for a host.
#[derive(Debug)]
pub(crate) enum ResolveError {
    Refused(RefusedConnect),
    Unresolvable(String),
}

/// Resolves `host` and returns the addresses the policy allows, in resolver order; refuses when
/// there is none.
pub(crate) async fn resolve_allowed(
    policy: &AddressPolicy,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let candidates: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            match tokio::time::timeout(timeout, tokio::net::lookup_host((bare, port))).await {
                Ok(Ok(addrs)) => addrs.collect(),
                Ok(Err(e)) => {
                    return Err(ResolveError::Unresolvable(format!(
                        "could not resolve host {bare}: {e}"
                    )))
                }
                Err(_) => {
                    return Err(ResolveError::Unresolvable(format!(
                        "resolving host {bare} timed out"
                    )))
                }
            }
        }
    };
    if candidates.is_empty() {
        return Err(ResolveError::Unresolvable(format!(
            "host {bare} has no address"
        )));
    }
    let mut allowed = Vec::new();
    let mut first_refusal = None;
    for candidate in candidates {
        match policy.check(bare, port, candidate.ip()) {
            Ok(()) => allowed.push(candidate),
            Err(refusal) => {
                first_refusal.get_or_insert(RefusedConnect {
                    host: bare.to_owned(),
                    addr: candidate.ip(),
                    refusal,
                });
            }
        }
    }
    match (allowed.is_empty(), first_refusal) {
        (false, _) => Ok(allowed),
        (true, Some(refused)) => Err(ResolveError::Refused(refused)),
        (true, None) => Err(ResolveError::Unresolvable(format!(
            "host {bare} has no address"
        ))),
    }
}

struct Shared {
    policy: AddressPolicy,
    connect_timeout: Duration,
    tickets: Mutex<HashMap<String, Arc<TicketState>>>,
}

/// What the proxy keeps per ticket.
#[derive(Default)]
struct TicketState {
    log: Mutex<ConnectLog>,
    /// Ends every connection made under the ticket.
    cut: CancellationToken,
}

/// The running proxy. Stops (with every connection it carries) when dropped.
pub(crate) struct EgressProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl EgressProxy {
    pub(crate) async fn start(
        policy: AddressPolicy,
        connect_timeout: Duration,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            policy,
            connect_timeout,
            tickets: Mutex::new(HashMap::new()),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self { addr, shared, task })
    }

    /// A fresh credential for one git invocation. Its connections are refused once it drops.
    pub(crate) fn ticket(&self) -> Ticket {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let state = Arc::new(TicketState::default());
        lock(&self.shared.tickets).insert(token.clone(), Arc::clone(&state));
        let url = format!("http://mirrorhub:{token}@{}", self.addr);
        Ticket {
            token,
            url,
            state,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One invocation's proxy credential and connection log.
pub(crate) struct Ticket {
    token: String,
    url: String,
    state: Arc<TicketState>,
    shared: Arc<Shared>,
}

impl Ticket {
    /// `http://mirrorhub:<token>@127.0.0.1:<port>`, for git's `http.proxy`.
    pub(crate) fn proxy_url(&self) -> &str {
        &self.url
    }

    /// The token, to redact from anything git prints.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    pub(crate) fn log(&self) -> ConnectLog {
        lock(&self.state.log).clone()
    }

    /// Ends every connection made under this ticket, now and later.
    pub(crate) fn cut(&self) {
        self.state.cut.cancel();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock(&self.shared.tickets).remove(&self.token);
        self.state.cut.cancel();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connections live in the set, so stopping the proxy stops them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        if let Err(e) = serve(shared, stream).await {
                            tracing::debug!(error = %e, "egress proxy connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "egress proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

struct RequestHead {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
}

fn parse_head(head: &[u8]) -> Option<RequestHead> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    if first.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        version: version.to_owned(),
        headers,
    })
}

/// Reads up to the end of an HTTP header block; returns it (without the blank line) and any
/// bytes read past it.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            buf.truncate(end);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "header block too large",
            ));
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the header block ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn respond(client: &mut TcpStream, status: &str, extra: &str) -> io::Result<()> {
    let msg = format!("HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n");
    client.write_all(msg.as_bytes()).await?;
    client.shutdown().await
}

async fn serve(shared: Arc<Shared>, mut client: TcpStream) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    let (head, rest) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(r) => r?,
        Err(_) => return Ok(()),
    };
    let Some(req) = parse_head(&head) else {
        return respond(&mut client, "400 Bad Request", "").await;
    };
    let Some(ticket) = authenticate(&shared, &req) else {
        return respond(
            &mut client,
            "407 Proxy Authentication Required",
            "Proxy-Authenticate: Basic realm=\"mirrorhub\"\r\n",
        )
        .await;
    };
    let cut = ticket.cut.clone();
    tokio::select! {
        r = forward(&shared, &ticket.log, client, req, rest) => r,
        () = cut.cancelled() => Ok(()),
    }
}

/// Connects to the request's target, if the policy allows it, and relays the connection.
async fn forward(
    shared: &Shared,
    log: &Mutex<ConnectLog>,
    mut client: TcpStream,
    req: RequestHead,
    rest: Vec<u8>,
) -> io::Result<()> {
    let connect = req.method.eq_ignore_ascii_case("CONNECT");
    let (host, port, origin_form) = if connect {
        match split_authority(&req.target) {
            Some((h, p)) => (h, p, None),
            None => return respond(&mut client, "400 Bad Request", "").await,
        }
    } else {
        match url::Url::parse(&req.target) {
            Ok(u) if u.scheme() == "http" && u.host().is_some() => {
                let host = match u.host() {
                    Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
                    Some(url::Host::Ipv4(ip)) => ip.to_string(),
                    Some(url::Host::Ipv6(ip)) => ip.to_string(),
                    None => unreachable!("checked above"),
                };
                let mut origin = u.path().to_owned();
                if let Some(q) = u.query() {
                    origin.push('?');
                    origin.push_str(q);
                }
                (host, u.port_or_known_default().unwrap_or(80), Some(origin))
            }
            _ => return respond(&mut client, "400 Bad Request", "").await,
        }
    };

    let mut upstream = match connect_allowed(shared, &host, port).await {
        Ok(s) => s,
        Err(ResolveError::Refused(refused)) => {
            tracing::warn!(host = %refused.host, addr = %refused.addr, reason = refused.refusal.describe(), "egress refused by the address policy");
            lock(log).refused.get_or_insert(refused);
            return respond(&mut client, "403 Forbidden", "").await;
        }
        Err(ResolveError::Unresolvable(detail)) => {
            lock(log).unreachable = Some(detail);
            return respond(&mut client, "502 Bad Gateway", "").await;
        }
    };
    let _ = upstream.set_nodelay(true);

    match origin_form {
        None => {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?;
            upstream.write_all(&rest).await?;
            pipe(client, upstream, false).await
        }
        Some(origin) => {
            let mut out = format!("{} {} {}\r\n", req.method, origin, req.version);
            for (k, v) in &req.headers {
                let k_lower = k.to_ascii_lowercase();
                if matches!(
                    k_lower.as_str(),
                    "proxy-authorization" | "proxy-connection" | "connection" | "keep-alive"
                ) {
                    continue;
                }
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("Connection: close\r\n\r\n");
            upstream.write_all(out.as_bytes()).await?;
            upstream.write_all(&rest).await?;
            pipe(client, upstream, true).await
        }
    }
}

fn authenticate(shared: &Shared, req: &RequestHead) -> Option<Arc<TicketState>> {
    let value = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("proxy-authorization"))?
        .1
        .as_str();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (_, token) = decoded.split_once(':')?;
    lock(&shared.tickets).get(token).cloned()
}

/// `host:port` or `[v6]:port`.
fn split_authority(target: &str) -> Option<(String, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    let host = match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    };
    Some((host, port))
}

async fn connect_allowed(
    shared: &Shared,
    host: &str,
    port: u16,
) -> Result<TcpStream, ResolveError> {
    let addrs = resolve_allowed(&shared.policy, host, port, shared.connect_timeout).await?;
    let mut last = String::new();
    for addr in addrs {
        match tokio::time::timeout(shared.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = format!("could not connect to {host} port {port} ({addr}): {e}"),
            Err(_) => last = format!("connecting to {host} port {port} ({addr}) timed out"),
        }
    }
    Err(ResolveError::Unresolvable(last))
}

/// The read size for upstream responses.
const DOWNLOAD_BUFFER: usize = 256 * 1024;

/// Copies both ways until either side is done. With `rewrite_response`, the upstream's
/// response head gets `Connection: close`, so curl never tries to reuse the connection.
async fn pipe(
    mut client: TcpStream,
    mut upstream: TcpStream,
    rewrite_response: bool,
) -> io::Result<()> {
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let up = async {
        tokio::io::copy(&mut cr, &mut uw).await?;
        io::Result::Ok(())
    };
    let down = async {
        if rewrite_response {
            let (head, rest) = read_head(&mut ur).await?;
            let head = String::from_utf8_lossy(&head);
            let mut out = String::with_capacity(head.len() + 32);
            for (i, line) in head.split("\r\n").enumerate() {
                let name = line
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                if i > 0
                    && matches!(
                        name.as_str(),
                        "connection" | "keep-alive" | "proxy-connection"
                    )
                {
                    continue;
                }
                out.push_str(line);
                out.push_str("\r\n");
            }
            out.push_str("Connection: close\r\n\r\n");
            write_all(&mut cw, out.as_bytes()).await?;
            write_all(&mut cw, &rest).await?;
        }
        // A whole pack comes this way: large reads mean few wake-ups and system calls per
        // megabyte (tokio's `copy` moves 8 KiB at a time).
        let mut ur = tokio::io::BufReader::with_capacity(DOWNLOAD_BUFFER, ur);
        tokio::io::copy_buf(&mut ur, &mut cw).await?;
        cw.shutdown().await
    };
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}

async fn write_all<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn roundtrip(
        proxy: &EgressProxy,
        token: Option<&str>,
        request_line: &str,
    ) -> (String, TcpStream) {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        let auth = token
            .map(|t| {
                format!(
                    "Proxy-Authorization: Basic {}\r\n",
                    BASE64.encode(format!("mirrorhub:{t}"))
                )
            })
            .unwrap_or_default();
        s.write_all(format!("{request_line}\r\nHost: x\r\n{auth}\r\n").as_bytes())
            .await
            .unwrap();
        let (head, _) = read_head(&mut s).await.unwrap();
        (String::from_utf8(head).unwrap(), s)
    }

    #[tokio::test]
    async fn cutting_a_ticket_ends_its_connections() {
        // An upstream that accepts and never says anything.
        let silent = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = silent.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (s, _) = silent.accept().await.unwrap();
                held.push(s);
            }
        });
        let policy = AddressPolicy::parse_list(&format!("127.0.0.1:{port}")).unwrap();
        let proxy = EgressProxy::start(policy, Duration::from_secs(5))
            .await
            .unwrap();
        let ticket = proxy.ticket();
        let target = format!("CONNECT 127.0.0.1:{port} HTTP/1.1");
        let (head, mut cut_one) = roundtrip(&proxy, Some(ticket.token()), &target).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let other = proxy.ticket();
        let (_, mut other_one) = roundtrip(&proxy, Some(other.token()), &target).await;

        ticket.cut();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), cut_one.read(&mut buf))
            .await
            .expect("the cut connection ends at once")
            .unwrap_or(0);
        assert_eq!(n, 0);
        // Another ticket's connection is untouched, and the cut ticket gets no new ones.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), other_one.read(&mut buf))
                .await
                .is_err()
        );
        let mut again = TcpStream::connect(proxy.addr).await.unwrap();
        let auth = BASE64.encode(format!("mirrorhub:{}", ticket.token()));
        again
            .write_all(format!("{target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), again.read(&mut buf))
            .await
            .expect("a new connection under a cut ticket ends at once")
            .unwrap_or(0);
        assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    }

    #[tokio::test]
    async fn tunnels_only_with_a_valid_ticket_to_allowed_addresses() {
        let echo = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let policy = AddressPolicy::parse_list(&format!("127.0.0.1:{echo_port}")).unwrap();
        let proxy = EgressProxy::start(policy, Duration::from_secs(5))
            .await
            .unwrap();
        let ticket = proxy.ticket();

        let (head, _) = roundtrip(
            &proxy,
            None,
            &format!("CONNECT 127.0.0.1:{echo_port} HTTP/1.1"),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 407"), "{head}");
        let (head, _) = roundtrip(
            &proxy,
            Some("wrong"),
            &format!("CONNECT 127.0.0.1:{echo_port} HTTP/1.1"),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 407"), "{head}");

        let (head, mut s) = roundtrip(
            &proxy,
            Some(ticket.token()),
            &format!("CONNECT 127.0.0.1:{echo_port} HTTP/1.1"),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        assert!(ticket.log().refused.is_none());

        // Another port on loopback is not in the allow list.
        let (head, _) =
            roundtrip(&proxy, Some(ticket.token()), "CONNECT 127.0.0.1:9 HTTP/1.1").await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        let refused = ticket.log().refused.unwrap();
        assert_eq!(refused.refusal, Refusal::Loopback);
        assert_eq!(refused.addr, "127.0.0.1".parse::<IpAddr>().unwrap());

        // A dropped ticket no longer opens anything.
        let token = ticket.token().to_owned();
        drop(ticket);
        let (head, _) = roundtrip(
            &proxy,
            Some(&token),
            &format!("CONNECT 127.0.0.1:{echo_port} HTTP/1.1"),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 407"), "{head}");
    }

    #[tokio::test]
    async fn refuses_names_that_resolve_to_internal_addresses() {
        let proxy = EgressProxy::start(AddressPolicy::default(), Duration::from_secs(5))
            .await
            .unwrap();
        let ticket = proxy.ticket();
        let (head, _) = roundtrip(
            &proxy,
            Some(ticket.token()),
            "GET http://localhost:1/x HTTP/1.1",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        let refused = ticket.log().refused.unwrap();
        assert_eq!(refused.host, "localhost");
        assert_eq!(refused.refusal, Refusal::Loopback);
        let (head, _) = roundtrip(
            &proxy,
            Some(ticket.token()),
            "CONNECT [::ffff:169.254.169.254]:80 HTTP/1.1",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    }

    #[test]
    fn parses_authorities() {
        assert_eq!(
            split_authority("Example.org:443"),
            Some(("example.org".into(), 443))
        );
        assert_eq!(split_authority("[::1]:8443"), Some(("::1".into(), 8443)));
        assert_eq!(split_authority("nohost"), None);
        assert_eq!(split_authority(":80"), None);
    }
}
