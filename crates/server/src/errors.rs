//! One mapping from errors to HTTP answers. Every error a client sees is
//! `{"error": {"code", "message", "field"?}}`; a 500 never carries internal detail, only a
//! request id that finds the logged cause.

use mirrorhub_core::ErrorCode;
use mirrorhub_hub::HubError;
use poem::http::header::CONTENT_TYPE;
use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use tracing::Instrument;

#[derive(Debug, Object, serde::Serialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `upstream_auth_failed`.
    pub code: String,
    /// What was wrong and what to do, in plain words.
    pub message: String,
    /// The request field the error concerns, when there is one.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Object, serde::Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed; `field` says which part.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, wrong, expired or revoked token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The token is valid, but its scope or its user's role does not allow this.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such repository, user, organization or token (or the caller may not see it).
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The name is taken, or the repository is not in a state that allows this.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request is well-formed but the upstream refused it or cannot be used.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Something failed on the hub's side; the message carries a request id.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The hub cannot serve this now (database unavailable); retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn body(code: ErrorCode, message: String, field: Option<&str>) -> Json<ErrorBody> {
    Json(ErrorBody {
        error: ErrorDetail {
            code: code.as_str().to_owned(),
            message,
            field: field.map(str::to_owned),
        },
    })
}

pub(crate) fn json_response(status: StatusCode, code: ErrorCode, message: String) -> Response {
    (status, poem::web::Json(body(code, message, None).0)).into_response()
}

/// The HTTP status for a code, used for every error whatever its origin.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        InvalidRequest | InvalidUrl | UnsupportedScheme | InvalidName | MalformedPayload => {
            StatusCode::BAD_REQUEST
        }
        UrlNotAllowed | UpstreamUnreachable | UpstreamAuthFailed | UpstreamNotFound
        | NotAGitRepository | Timeout | GitFailed | HostKeyMismatch | LfsObjectInvalid
        | LfsObjectTooLarge | LfsBatchInvalid | ForgeApiFailed | PushRejected => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        RepoExists | AccountExists | InvalidState | SshKeyInUse | MirrorSetExists => {
            StatusCode::CONFLICT
        }
        RepoNotFound
        | AccountNotFound
        | TokenNotFound
        | WebhookNotEnabled
        | SshKeyNotFound
        | LfsObjectMissing
        | MirrorSetNotFound
        | PushMirrorNotFound
        | NotificationTargetNotFound
        | BackupNotFound => StatusCode::NOT_FOUND,
        Unauthorized => StatusCode::UNAUTHORIZED,
        Forbidden => StatusCode::FORBIDDEN,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        if e.is_internal() {
            // Logged once, here, inside the request's span (which carries the request id).
            tracing::error!(error = ?e, "request failed on the hub's side");
            return ApiError::Internal(body(
                ErrorCode::Internal,
                INTERNAL_MESSAGE.to_owned(),
                None,
            ));
        }
        let code = e.code();
        let b = body(code, e.to_string(), e.field());
        match status_of(code) {
            StatusCode::BAD_REQUEST => ApiError::BadRequest(b),
            StatusCode::NOT_FOUND => ApiError::NotFound(b),
            StatusCode::CONFLICT => ApiError::Conflict(b),
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized(b),
            StatusCode::FORBIDDEN => ApiError::Forbidden(b),
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable(b),
            StatusCode::INTERNAL_SERVER_ERROR => ApiError::Internal(b),
            _ => ApiError::Unprocessable(b),
        }
    }
}

const INTERNAL_MESSAGE: &str = "the hub failed to handle this request";

/// Marks a response whose status and body are meant for their client as they are: the
/// JSON error middleware ([`json_errors`]) leaves it alone. The git routes mark theirs.
#[derive(Clone, Copy)]
pub(crate) struct PassThrough;

/// Gives every request an id (echoed in `x-request-id` and in the log span) and turns every
/// error response that is not already our JSON (poem's own 400/401/404/405/413 answers,
/// panics caught as 500) into the common error body.
pub async fn json_errors<E: Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("request", request_id = %request_id, method = %req.method(), path = %req.uri().path());
    let mut resp = ep.get_response(req).instrument(span.clone()).await;
    let status = resp.status();
    // Responses meant for another kind of client as they are (the git routes answer git,
    // which shows a text/plain body to its user) carry `PassThrough`.
    let pass_through = resp.extensions().get::<PassThrough>().is_some();
    // Pages of the web UI render their own errors for people.
    let is_page = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if (status.is_client_error() || status.is_server_error()) && !pass_through && !is_page {
        let is_json = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            let message = format!("{INTERNAL_MESSAGE}; the operator can find the cause in the log under request id {request_id}");
            resp = json_response(status, ErrorCode::Internal, message);
        } else if !is_json {
            let text = resp.take_body().into_string().await.unwrap_or_default();
            let (code, message) = describe_foreign_error(status, &text);
            resp = json_response(status, code, message);
        }
    }
    resp.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_str(&request_id).expect("hex is a valid header value"),
    );
    Ok(resp)
}

/// Refuses request bodies larger than the limit (413), whether or not they announce their
/// length: a chunked body is read up to the limit and no further.
pub struct BodyLimit(pub usize);

impl<E: Endpoint> poem::Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: self.0,
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        use tokio::io::AsyncReadExt;
        let too_large = || poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE);
        let announced = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match announced {
            Some(n) if n > self.limit as u64 => return Err(too_large()),
            Some(_) => {}
            None if req
                .headers()
                .contains_key(poem::http::header::TRANSFER_ENCODING) =>
            {
                let mut buf = Vec::new();
                let read = req
                    .take_body()
                    .into_async_read()
                    .take(self.limit as u64 + 1)
                    .read_to_end(&mut buf)
                    .await;
                read.map_err(|_| poem::Error::from_status(StatusCode::BAD_REQUEST))?;
                if buf.len() > self.limit {
                    return Err(too_large());
                }
                req.set_body(buf);
            }
            None => {}
        }
        self.inner.call(req).await
    }
}

/// A message for an error poem produced itself, saying what to do.
fn describe_foreign_error(status: StatusCode, text: &str) -> (ErrorCode, String) {
    match status {
        StatusCode::UNAUTHORIZED => (
            ErrorCode::Unauthorized,
            "missing or wrong token: send the header `Authorization: Bearer <token>` with a personal access token or the hub's admin token".into(),
        ),
        StatusCode::NOT_FOUND => (ErrorCode::RepoNotFound, "nothing is here: check the path (the API lives under /api/v1)".into()),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::InvalidRequest, "this method is not allowed on this path; see /api/v1/docs".into()),
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::InvalidRequest, "the request body is too large".into()),
        StatusCode::FORBIDDEN => (ErrorCode::Forbidden, "this token may not do that".into()),
        _ => {
            let detail = text.trim();
            let message = if detail.is_empty() {
                "the request is not valid; see /api/v1/docs for its form".to_owned()
            } else {
                format!("the request is not valid: {detail}")
            };
            (ErrorCode::InvalidRequest, message)
        }
    }
}
