//! The upstream's ref advertisement, read in process: no git is spawned. A sync lists the
//! upstream this way first and fetches only when the listing differs from the mirror (most
//! scheduled syncs find nothing new), and the scheduler's cheap checks are one listing each.
//!
//! - Smart HTTP: `GET …/info/refs?service=git-upload-pack` asking for protocol v2; a v2
//!   server's `ls-refs` (HEAD, `refs/heads/`, `refs/tags/`) is then one `POST
//!   …/git-upload-pack`; a v0 server has listed every ref already. The v2 capabilities of
//!   each origin are remembered ([`HttpCapabilities`]), so later listings of that origin are
//!   the `POST` alone, one request; any trouble with it forgets them and lists from the
//!   start. reqwest goes through the engine's egress proxy under a ticket of its own (the
//!   address policy applies where it connects, redirects included); credentials go only to
//!   the upstream's own origin.
//! - git://: one TCP connection to the address the policy checked (as git is given), asking
//!   for protocol v0: the daemon answers with its advertisement at once (v2's second round
//!   trip stalls on delayed ACKs). A v2 greeting is still read, should a daemon send one.
//! - ssh://: the OpenSSH client git itself would run (the same options, pinned host keys and
//!   key files, the checked address) runs `git-upload-pack` on the server, asking for
//!   protocol v0, with a flush already on its stdin: the server advertises, reads that nothing
//!   is wanted and exits. One process (ssh) instead of git's two (git, then ssh).
//!
//! Every answer is read strictly ([`crate::pkt`]) and bounded in bytes, refs and time. A
//! listing writes nothing anywhere.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mirrorhub_core::Scheme;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::command::{self, Invocation};
use crate::error::GitError;
use crate::pkt::{self, Advertised, Greeting, Limits, Pkt, PktCursor, PktError};
use crate::ssh;
use crate::transport::{GitCli, Remote};

/// The `agent=` the hub announces in git's protocol.
const AGENT: &str = concat!("mirrorhub/", env!("CARGO_PKG_VERSION"));
/// The User-Agent of HTTP listings: some servers serve git's smart protocol only to `git/…`.
const USER_AGENT: &str = concat!("git/2 (mirrorhub/", env!("CARGO_PKG_VERSION"), ")");
/// Redirects followed by the first request (as git's `http.followRedirects=initial`).
const MAX_REDIRECTS: usize = 5;

/// Why the upstream could not be listed in process. The sync then runs git as before, which
/// reports the upstream's trouble in git's terms; only a refused address is final.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListingError {
    #[error(transparent)]
    Refused(GitError),
    #[error("the server does not speak git's smart protocol ({0})")]
    NotSmart(String),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    #[error(transparent)]
    Protocol(#[from] PktError),
    #[error("the listing failed: {0}")]
    Transfer(String),
    #[error("the listing took longer than {0:?}")]
    Timeout(Duration),
}

/// Lists the upstream of `remote`: its branches, tags and HEAD.
pub(crate) async fn list(cli: &GitCli, remote: &Remote<'_>) -> Result<Advertised, ListingError> {
    let timeout = cli
        .probe_timeout
        .min(remote.deadline.saturating_duration_since(Instant::now()));
    let limits = Limits::default();
    let work = async {
        match remote.url.scheme() {
            Scheme::Http | Scheme::Https => list_http(cli, remote, timeout, limits).await,
            Scheme::Git => list_git(cli, remote, limits).await,
            Scheme::Ssh => list_ssh(cli, remote, timeout, limits).await,
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ListingError::Timeout(timeout))?
}

/// Reads one answer of `what` from a stream up to its first flush, within the byte budget.
async fn read_to_flush<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut Vec<u8>,
    start: usize,
    budget: &mut usize,
) -> Result<usize, ListingError> {
    let mut pos = start;
    loop {
        while let Some((pkt, used)) = pkt::next_pkt(&buf[pos..])? {
            pos += used;
            if pkt == Pkt::Flush {
                return Ok(pos);
            }
        }
        let before = buf.len();
        let room = (*budget).min(64 * 1024);
        if room == 0 {
            return Err(PktError::TooLarge("the answer exceeds the byte limit".into()).into());
        }
        buf.resize(before + room, 0);
        let n = stream
            .read(&mut buf[before..])
            .await
            .map_err(|e| ListingError::Transfer(e.to_string()))?;
        buf.truncate(before + n);
        if n == 0 {
            return Err(PktError::Truncated.into());
        }
        *budget -= n;
    }
}

/// A refused address is final; anything else git's own run reports better.
fn from_git(e: GitError) -> ListingError {
    match e {
        e @ GitError::UrlRefused { .. } => ListingError::Refused(e),
        e => ListingError::Transfer(e.to_string()),
    }
}

async fn list_git(
    cli: &GitCli,
    remote: &Remote<'_>,
    limits: Limits,
) -> Result<Advertised, ListingError> {
    let url = remote.url;
    // Resolved and checked against the policy here, as for git (a refusal is final).
    let addr = cli.pin_git_address(remote).await.map_err(from_git)?;
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| ListingError::Transfer(format!("connecting to {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    // The host git would send for the pinned URL it is given: the checked address.
    let ip = match addr.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    let host = if url.port() == Scheme::Git.default_port() {
        ip
    } else {
        format!("{ip}:{}", url.port())
    };
    // Protocol v0: the advertisement comes at once, in answer to the request. With v2 the
    // `ls-refs` answer that follows the greeting stalls ~40 ms on `git daemon` (its small
    // writes wait on this side's delayed ACK), most of a no-op sync's time. Both list the
    // same branches, tags and HEAD.
    let mut request = Vec::new();
    pkt::encode(
        &mut request,
        format!("git-upload-pack {}\0host={host}\0", url.path()).as_bytes(),
    );
    stream
        .write_all(&request)
        .await
        .map_err(|e| ListingError::Transfer(e.to_string()))?;
    let mut budget = limits.max_bytes;
    let mut buf = Vec::new();
    let end = read_to_flush(&mut stream, &mut buf, 0, &mut budget).await?;
    let greeting = pkt::read_greeting(&mut PktCursor::new(&buf[..end]), limits)?;
    let advertised = match greeting {
        Greeting::V0(advertised) => advertised,
        Greeting::V2 { capabilities } => {
            if !pkt::offers_ls_refs(&capabilities) {
                return Err(PktError::Malformed("a v2 server without ls-refs".into()).into());
            }
            stream
                .write_all(&pkt::ls_refs_request(&capabilities, AGENT))
                .await
                .map_err(|e| ListingError::Transfer(e.to_string()))?;
            let answer_end = read_to_flush(&mut stream, &mut buf, end, &mut budget).await?;
            pkt::read_ls_refs(&mut PktCursor::new(&buf[end..answer_end]), limits)?
        }
    };
    // Nothing wanted: a flush ends the session cleanly in both versions.
    let _ = stream.write_all(pkt::FLUSH).await;
    let _ = stream.shutdown().await;
    Ok(advertised)
}

async fn list_ssh(
    cli: &GitCli,
    remote: &Remote<'_>,
    timeout: Duration,
    limits: Limits,
) -> Result<Advertised, ListingError> {
    // A missing pin or an unwritable file: git's path says what to do about it.
    crate::transport::ensure_private_dirs(&cli.private).map_err(|e| from_git(e.into()))?;
    let session = cli.ssh_run(remote).await.map_err(from_git)?;
    let mut args: Vec<std::ffi::OsString> = cli
        .ssh_options(&session)
        .into_iter()
        .map(Into::into)
        .collect();
    args.extend(
        ssh::upload_pack_args(remote.url, session.addr)
            .into_iter()
            .map(Into::into),
    );
    let run = Invocation {
        program: cli.ssh_program.clone(),
        args,
        env: cli.local_env(),
        cwd: cli.home(),
        // One byte over the listing's limit tells an answer that exceeds it.
        stdout_cap: Some(limits.max_bytes + 1),
        // No GIT_PROTOCOL is sent, so the server speaks v0: its advertisement, then this
        // flush (nothing wanted) ends the session.
        stdin: Some(pkt::FLUSH.to_vec()),
    };
    let finished = command::run(run, Instant::now() + timeout, None)
        .await
        .map_err(|e| ListingError::Transfer(e.to_string()))?;
    drop(session);
    if finished.timed_out {
        return Err(ListingError::Timeout(timeout));
    }
    if !finished.success {
        return Err(ListingError::Transfer(crate::error::summarize(
            &finished.stderr_tail,
        )));
    }
    if finished.stdout.len() > limits.max_bytes {
        return Err(PktError::TooLarge("the answer exceeds the byte limit".into()).into());
    }
    match pkt::read_greeting(&mut PktCursor::new(&finished.stdout), limits)? {
        Greeting::V0(advertised) => Ok(advertised),
        Greeting::V2 { .. } => {
            Err(PktError::Malformed("a v2 greeting to a v0 request".into()).into())
        }
    }
}

async fn list_http(
    cli: &GitCli,
    remote: &Remote<'_>,
    timeout: Duration,
    limits: Limits,
) -> Result<Advertised, ListingError> {
    let ticket = cli.proxy.ticket();
    let refused = |e: ListingError| match ticket.log().refused {
        Some(r) => ListingError::Refused(r.into()),
        None => e,
    };
    let upstream = url::Url::parse(&remote.url.to_string())
        .map_err(|e| ListingError::Transfer(format!("the URL does not parse: {e}")))?;
    let base = upstream.as_str().trim_end_matches('/').to_owned();
    let client = client(ticket.proxy_url(), timeout)?;
    let creds = remote.creds;
    let with_creds = |request: reqwest::RequestBuilder, to: &url::Url| match creds {
        Some(c) if same_origin(to, &upstream) => {
            request.basic_auth(&c.username, Some(c.expose_secret()))
        }
        _ => request,
    };
    let parse = |text: String| {
        url::Url::parse(&text)
            .map_err(|e| ListingError::Transfer(format!("the URL does not parse: {e}")))
    };

    // An origin listed before: its capabilities are known, `ls-refs` is the one request.
    let origin = origin_of(&upstream);
    if let Some(capabilities) = cli.http_capabilities.get(&origin) {
        let service = parse(format!("{base}/git-upload-pack"))?;
        let request = with_creds(client.post(service.clone()), &service);
        match ls_refs(request, &capabilities, limits)
            .await
            .map_err(&refused)
        {
            Ok(advertised) => return Ok(advertised),
            Err(e @ ListingError::Refused(_)) => return Err(e),
            Err(e) => {
                // Moved, upgraded, or down: list from the start, as the first time.
                tracing::debug!(error = %e, "ls-refs with the origin's known capabilities failed; listing from the start");
                cli.http_capabilities.forget(&origin);
            }
        }
    }

    let info_refs = parse(format!("{base}/info/refs?service=git-upload-pack"))?;
    // Redirects of this first request move the repository, as for git
    // (`http.followRedirects=initial`). They are followed here, not by reqwest, which would
    // drop the proxy ticket from a request sent on to another origin.
    let mut final_url = info_refs.clone();
    let mut redirects = 0;
    let response = loop {
        let request = client
            .get(final_url.clone())
            .header("Git-Protocol", "version=2")
            .header(reqwest::header::ACCEPT, "*/*");
        let response = with_creds(request, &final_url)
            .send()
            .await
            .map_err(|e| refused(transfer(e)))?;
        let Some(next) = redirect_target(&response, &final_url) else {
            break response;
        };
        let downgrade = info_refs.scheme() == "https" && next.scheme() != "https";
        if redirects == MAX_REDIRECTS || downgrade || !next.path().ends_with("/info/refs") {
            break response;
        }
        redirects += 1;
        final_url = next;
    };
    let status = response.status();
    if !status.is_success() {
        return Err(refused(ListingError::Status(status.as_u16())));
    }
    let kind = content_type(&response);
    if kind != "application/x-git-upload-pack-advertisement" {
        return Err(ListingError::NotSmart(format!("Content-Type {kind:?}")));
    }
    let body = read_body(response, limits.max_bytes)
        .await
        .map_err(&refused)?;
    match pkt::read_greeting(&mut PktCursor::new(&body), limits)? {
        Greeting::V0(advertised) => Ok(advertised),
        Greeting::V2 { capabilities } => {
            if !pkt::offers_ls_refs(&capabilities) {
                return Err(PktError::Malformed("a v2 server without ls-refs".into()).into());
            }
            let mut service = final_url.clone();
            service.set_query(None);
            let path = service.path().trim_end_matches("/info/refs").to_owned();
            service.set_path(&format!("{path}/git-upload-pack"));
            let request = with_creds(client.post(service.clone()), &service);
            let advertised = ls_refs(request, &capabilities, limits)
                .await
                .map_err(&refused)?;
            // Only where the upstream's own URL answered: a redirect is followed each time.
            if final_url == info_refs {
                cli.http_capabilities.remember(origin, capabilities);
            }
            Ok(advertised)
        }
    }
}

/// Protocol v2's `ls-refs` of HEAD, branches and tags, as one `POST` to the service URL.
async fn ls_refs(
    request: reqwest::RequestBuilder,
    capabilities: &[String],
    limits: Limits,
) -> Result<Advertised, ListingError> {
    let response = request
        .header("Git-Protocol", "version=2")
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-git-upload-pack-request",
        )
        .header(
            reqwest::header::ACCEPT,
            "application/x-git-upload-pack-result",
        )
        .body(pkt::ls_refs_request(capabilities, AGENT))
        .send()
        .await
        .map_err(transfer)?;
    let status = response.status();
    if !status.is_success() {
        return Err(ListingError::Status(status.as_u16()));
    }
    let kind = content_type(&response);
    if kind != "application/x-git-upload-pack-result" {
        return Err(ListingError::NotSmart(format!(
            "Content-Type {kind:?} for ls-refs"
        )));
    }
    let body = read_body(response, limits.max_bytes).await?;
    Ok(pkt::read_ls_refs(&mut PktCursor::new(&body), limits)?)
}

/// The protocol v2 capabilities each http(s) origin announced last, so that a listing of an
/// origin seen before is one request (`ls-refs`) rather than two. Servers answer every
/// request on its own (that is what smart HTTP's statelessness means), and a forge announces
/// the same capabilities for all its repositories; should they change, the `ls-refs` fails,
/// and the listing starts over and learns them again.
#[derive(Debug, Default)]
pub(crate) struct HttpCapabilities(std::sync::Mutex<HashMap<String, Arc<[String]>>>);

impl HttpCapabilities {
    /// Origins remembered at most (a few hundred bytes each); past that the memory starts over.
    const MAX_ORIGINS: usize = 4096;

    fn get(&self, origin: &str) -> Option<Arc<[String]>> {
        self.lock().get(origin).cloned()
    }

    fn remember(&self, origin: String, capabilities: Vec<String>) {
        let mut known = self.lock();
        if known.len() >= Self::MAX_ORIGINS && !known.contains_key(&origin) {
            known.clear();
        }
        known.insert(origin, capabilities.into());
    }

    fn forget(&self, origin: &str) {
        self.lock().remove(origin);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<[String]>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `scheme://host:port`, the key of [`HttpCapabilities`].
fn origin_of(url: &url::Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// A client for one listing: through the egress proxy under its ticket. It follows no
/// redirect itself (see [`redirect_target`]).
fn client(proxy_url: &str, timeout: Duration) -> Result<reqwest::Client, ListingError> {
    let proxy = reqwest::Proxy::all(proxy_url).map_err(|e| transfer(e.without_url()))?;
    reqwest::Client::builder()
        .proxy(proxy)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| transfer(e.without_url()))
}

/// Where a redirect answer to a request for `from` points, if it is one.
fn redirect_target(response: &reqwest::Response, from: &url::Url) -> Option<url::Url> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    from.join(location).ok()
}

fn transfer(e: reqwest::Error) -> ListingError {
    // Never the URL: it is the upstream's, and errors end up in logs.
    ListingError::Transfer(e.without_url().to_string())
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

async fn read_body(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, ListingError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transfer)? {
        if body.len() + chunk.len() > max {
            return Err(PktError::TooLarge(format!("an answer over {max} bytes")).into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}
