//! Fetching the objects a mirror lacks from its upstream's LFS server: batch requests of up
//! to [`BATCH_SIZE`] objects, then basic-transfer downloads, several at once, each streamed
//! through the verifying [`ObjectWriter`](crate::ObjectWriter) (memory stays flat whatever
//! the object's size).
//!
//! Every request goes through the hub's egress proxy under a pass of its own, so the address
//! policy is applied to the address actually connected to (redirects and DNS rebinding
//! included), and a refusal is told apart from an upstream's own 403.

use std::sync::Arc;
use std::time::Duration;

use mirrorhub_core::{Credentials, ErrorCode};
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

use crate::batch::{self, Answer, BatchAnswer, BatchRequest, Download, ObjectSpec, Operation};
use crate::{same_origin, LfsError, ObjectStore, Pointer};

/// Objects per batch request (git-lfs sends 100).
pub const BATCH_SIZE: usize = 100;
/// The largest batch answer read; a sane one for 100 objects is a few tens of KiB.
const MAX_BATCH_ANSWER: usize = 4 << 20;
/// How often a batch request answered 429/503 is tried again, and the longest wait honoured.
const BATCH_RETRIES: u32 = 3;
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// How the fetcher reaches the network: a proxy credential per request.
pub trait Egress: Send + Sync {
    fn pass(&self) -> Box<dyn EgressPass>;
}

/// One request's proxy credential.
pub trait EgressPass: Send + Sync {
    /// `http://user:token@127.0.0.1:port`.
    fn proxy_url(&self) -> &str;
    /// Why the address policy refused a connection made under this pass, if it did.
    fn refused(&self) -> Option<String>;
}

/// An upstream's LFS server.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The batch API's base, `…/info/lfs`.
    pub endpoint: url::Url,
    /// Sent only to `endpoint`'s own origin.
    pub credentials: Option<Credentials>,
}

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Downloads at once.
    pub concurrency: usize,
    pub connect_timeout: Duration,
    /// A response that sends nothing for this long is abandoned.
    pub read_timeout: Duration,
}

/// One object that could not be fetched, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFailure {
    pub pointer: Pointer,
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct FetchOutcome {
    pub fetched: Vec<Pointer>,
    pub failed: Vec<ObjectFailure>,
}

#[derive(Clone)]
pub struct Fetcher {
    egress: Arc<dyn Egress>,
    store: ObjectStore,
    options: FetchOptions,
}

impl Fetcher {
    pub fn new(egress: Arc<dyn Egress>, store: ObjectStore, options: FetchOptions) -> Self {
        Self {
            egress,
            store,
            options,
        }
    }

    pub fn store(&self) -> &ObjectStore {
        &self.store
    }

    /// Downloads `wanted` from `upstream`, also objects the store holds already (for
    /// another repository): only bytes that hash to the id show that the upstream has the
    /// object. Never fails as a whole: each object is fetched or reported.
    pub async fn fetch(&self, upstream: &Upstream, wanted: Vec<Pointer>) -> FetchOutcome {
        let mut outcome = FetchOutcome::default();
        let slots = Arc::new(tokio::sync::Semaphore::new(self.options.concurrency.max(1)));
        let mut downloads = tokio::task::JoinSet::new();
        for chunk in wanted.chunks(BATCH_SIZE) {
            let answers = match self.batch(upstream, chunk).await {
                Ok(answers) => answers,
                Err(e) => {
                    outcome.failed.extend(chunk.iter().map(|p| failure(p, &e)));
                    continue;
                }
            };
            for (pointer, answer) in answers {
                let download = match answer {
                    Ok(Answer::Download(d)) => d,
                    Ok(Answer::Error { code, message }) => {
                        let e = if code == 404 || code == 410 {
                            LfsError::ObjectMissing {
                                oid: pointer.oid.clone(),
                                message,
                            }
                        } else {
                            LfsError::BatchInvalid(format!(
                                "the upstream's LFS server refused object {} ({code}): {message}",
                                pointer.oid
                            ))
                        };
                        outcome.failed.push(failure(&pointer, &e));
                        continue;
                    }
                    Err(e) => {
                        outcome.failed.push(failure(&pointer, &e));
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                    break;
                };
                let this = self.clone();
                let upstream = upstream.clone();
                downloads.spawn(async move {
                    let result = this.download(&upstream, &pointer, &download).await;
                    drop(permit);
                    (pointer, result)
                });
                // Collect finished downloads as we go, so the set stays small.
                while let Some(done) = downloads.try_join_next() {
                    record(&mut outcome, done);
                }
            }
        }
        while let Some(done) = downloads.join_next().await {
            record(&mut outcome, done);
        }
        outcome
    }

    fn client(&self, pass: &dyn EgressPass) -> Result<reqwest::Client, LfsError> {
        let proxy = reqwest::Proxy::all(pass.proxy_url())
            .map_err(|e| LfsError::Io(std::io::Error::other(e.without_url())))?;
        reqwest::Client::builder()
            .proxy(proxy)
            .connect_timeout(self.options.connect_timeout)
            .read_timeout(self.options.read_timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("mirrorhub/", env!("CARGO_PKG_VERSION"), " git-lfs"))
            .build()
            .map_err(|e| LfsError::Io(std::io::Error::other(e.without_url())))
    }

    async fn batch(
        &self,
        upstream: &Upstream,
        chunk: &[Pointer],
    ) -> Result<batch::CheckedAnswers, LfsError> {
        let url = format!(
            "{}/objects/batch",
            upstream.endpoint.as_str().trim_end_matches('/')
        );
        let body = BatchRequest {
            operation: Operation::Download,
            transfers: vec!["basic".into()],
            git_ref: None,
            objects: chunk
                .iter()
                .map(|p| ObjectSpec {
                    oid: p.oid.to_string(),
                    size: p.size,
                })
                .collect(),
            hash_algo: Some("sha256".into()),
        };
        let body = serde_json::to_vec(&body).map_err(|e| LfsError::Io(std::io::Error::other(e)))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pass = self.egress.pass();
            let client = self.client(pass.as_ref())?;
            let mut request = client
                .post(&url)
                .header(ACCEPT, batch::MEDIA_TYPE)
                .header(CONTENT_TYPE, batch::MEDIA_TYPE)
                .body(body.clone());
            if let Some(c) = &upstream.credentials {
                request = request.basic_auth(&c.username, Some(c.expose_secret()));
            }
            let response = request
                .send()
                .await
                .map_err(|e| transport_error(&e, pass.as_ref(), "the upstream's LFS server"))?;
            let status = response.status();
            let busy = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE;
            if busy && attempt <= BATCH_RETRIES {
                let wait = retry_after(&response).min(MAX_RETRY_AFTER);
                tokio::time::sleep(wait).await;
                continue;
            }
            if !status.is_success() {
                return Err(status_error(
                    status,
                    pass.as_ref(),
                    &upstream.endpoint,
                    None,
                ));
            }
            let bytes = read_limited(response, MAX_BATCH_ANSWER, pass.as_ref()).await?;
            let answer: BatchAnswer = serde_json::from_slice(&bytes).map_err(|e| {
                LfsError::BatchInvalid(format!(
                    "the upstream's LFS batch answer is not valid JSON of the batch API ({e})"
                ))
            })?;
            return batch::check_answer(chunk, answer);
        }
    }

    async fn download(
        &self,
        upstream: &Upstream,
        pointer: &Pointer,
        download: &Download,
    ) -> Result<(), LfsError> {
        let mut writer = self.store.writer(pointer).await?;
        let pass = self.egress.pass();
        let client = self.client(pass.as_ref())?;
        let mut request = client.get(download.href.clone());
        for (name, value) in &download.header {
            request = request.header(name, value);
        }
        if !download.has_authorization() && same_origin(&download.href, &upstream.endpoint) {
            if let Some(c) = &upstream.credentials {
                request = request.basic_auth(&c.username, Some(c.expose_secret()));
            }
        }
        let what = format!("the download of LFS object {}", pointer.oid);
        let mut response = request
            .send()
            .await
            .map_err(|e| transport_error(&e, pass.as_ref(), &what))?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(
                status,
                pass.as_ref(),
                &upstream.endpoint,
                Some(pointer),
            ));
        }
        if let Some(len) = response.content_length() {
            if len != pointer.size {
                return Err(LfsError::ObjectInvalid {
                    oid: pointer.oid.clone(),
                    detail: format!(
                        "the upstream sends {len} bytes where its pointer gives {}",
                        pointer.size
                    ),
                });
            }
        }
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(&e, pass.as_ref(), &what))?
        {
            writer.write(&chunk).await?;
        }
        writer.finish().await
    }
}

fn record(
    outcome: &mut FetchOutcome,
    done: Result<(Pointer, Result<(), LfsError>), tokio::task::JoinError>,
) {
    match done {
        Ok((pointer, Ok(()))) => outcome.fetched.push(pointer),
        Ok((pointer, Err(e))) => {
            if let LfsError::Io(io) = &e {
                tracing::error!(oid = %pointer.oid, error = %io, "could not store an LFS object");
            }
            outcome.failed.push(failure(&pointer, &e));
        }
        Err(e) => tracing::error!(error = %e, "an LFS download task failed"),
    }
}

fn failure(pointer: &Pointer, e: &LfsError) -> ObjectFailure {
    ObjectFailure {
        pointer: pointer.clone(),
        code: e.code(),
        message: e.to_string(),
    }
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
}

/// Reads a body of at most `limit` bytes.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    pass: &dyn EgressPass,
) -> Result<Vec<u8>, LfsError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_big(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(&e, pass, "the upstream's LFS server"))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_big(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_big(limit: usize) -> LfsError {
    LfsError::BatchInvalid(format!(
        "the upstream's LFS batch answer is larger than {} MiB",
        limit >> 20
    ))
}

/// A failed request, never with its URL (a storage href may carry a signature).
fn transport_error(e: &reqwest::Error, pass: &dyn EgressPass, what: &str) -> LfsError {
    if let Some(why) = pass.refused() {
        return LfsError::Refused(format!("{what} was refused: {why}"));
    }
    if e.is_timeout() {
        return LfsError::Timeout(format!("{what} stalled or timed out"));
    }
    let mut detail = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !detail.contains(&text) {
            if !detail.is_empty() {
                detail.push_str(": ");
            }
            detail.push_str(&text);
        }
        source = s.source();
    }
    let detail = detail.replace(e.url().map(|u| u.as_str()).unwrap_or("\u{0}"), "[address]");
    LfsError::Unreachable(format!("{what} failed: {detail}"))
}

fn status_error(
    status: StatusCode,
    pass: &dyn EgressPass,
    endpoint: &url::Url,
    object: Option<&Pointer>,
) -> LfsError {
    if let Some(why) = pass.refused() {
        return LfsError::Refused(format!("a connection was refused: {why}"));
    }
    let code = status.as_u16();
    match (code, object) {
        (401 | 403, _) => LfsError::AuthFailed(format!(
            "the upstream's LFS server at {endpoint} refused the mirror's credentials (HTTP {code}): check the username and token"
        )),
        (404 | 410, Some(p)) => LfsError::ObjectMissing {
            oid: p.oid.clone(),
            message: format!("HTTP {code} on download"),
        },
        (404, None) => LfsError::NotFound(format!(
            "no LFS server answers at {endpoint} (HTTP 404): set the repository's lfs_url, or turn LFS off with \"lfs\": false"
        )),
        (_, Some(p)) => LfsError::Unreachable(format!(
            "the download of LFS object {} failed with HTTP {code}",
            p.oid
        )),
        (_, None) => LfsError::Unreachable(format!(
            "the upstream's LFS server at {endpoint} answered HTTP {code}"
        )),
    }
}
