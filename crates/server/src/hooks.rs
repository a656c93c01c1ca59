//! `/hooks`: where forges deliver webhooks. The raw body is handed to the hub as received,
//! because signatures are computed over its exact bytes.
//!
//! Answers are chosen for the senders: 202 for an accepted delivery (matched or not: the
//! answer never tells which repositories exist), 200 for a ping or a redelivery, 401 with no
//! detail for a wrong signature, 400 for a malformed body, and 503 for our own trouble so
//! the forge retries (GitLab disables a hook after 4xx answers; it never gets one for ours).

use std::sync::Arc;

use mirrorhub_core::ErrorCode;
use mirrorhub_hub::{Hub, IncomingWebhook, WebhookReceipt, WebhookRefusal};
use mirrorhub_webhooks::Endpoint;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Body, IntoResponse, Request, Response, Route};

use crate::errors::json_response;

pub fn routes() -> Route {
    Route::new()
        .at("/repos/:owner/:name", poem::post(repository_hook))
        .at("/:forge", poem::post(organization_hook))
}

#[handler]
async fn organization_hook(
    Path(forge): Path<String>,
    req: &Request,
    body: Body,
    hub: Data<&Arc<Hub>>,
) -> poem::Result<Response> {
    let Some(endpoint) = Endpoint::from_path_segment(&forge) else {
        return Ok(json_response(
            StatusCode::NOT_FOUND,
            ErrorCode::WebhookNotEnabled,
            format!("there is no webhook endpoint for {forge:?}: use /hooks/github, /hooks/gitlab, /hooks/gitea (Gitea and Forgejo), /hooks/bitbucket (Cloud and Server) or /hooks/generic"),
        ));
    };
    receive(&hub, endpoint, None, req, body).await
}

#[handler]
async fn repository_hook(
    Path((owner, name)): Path<(String, String)>,
    req: &Request,
    body: Body,
    hub: Data<&Arc<Hub>>,
) -> poem::Result<Response> {
    let name = name.strip_suffix(".git").unwrap_or(&name);
    receive(&hub, Endpoint::Repository, Some((&owner, name)), req, body).await
}

async fn receive(
    hub: &Arc<Hub>,
    endpoint: Endpoint,
    repo: Option<(&str, &str)>,
    req: &Request,
    body: Body,
) -> poem::Result<Response> {
    let body = body.into_bytes().await?;
    let incoming = IncomingWebhook {
        endpoint,
        repo,
        headers: req.headers(),
        body: &body,
    };
    Ok(match hub.receive_webhook(incoming).await {
        Ok(WebhookReceipt::Accepted) => status(StatusCode::ACCEPTED, "accepted"),
        Ok(WebhookReceipt::Pong) => status(StatusCode::OK, "pong"),
        Ok(WebhookReceipt::Duplicate) => status(StatusCode::OK, "duplicate"),
        Err(refusal) => refused(refusal),
    })
}

fn status(code: StatusCode, status: &str) -> Response {
    (
        code,
        poem::web::Json(serde_json::json!({ "status": status })),
    )
        .into_response()
}

fn refused(refusal: WebhookRefusal) -> Response {
    let message = refusal.to_string();
    match refusal {
        WebhookRefusal::Unauthorized => {
            json_response(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
        }
        WebhookRefusal::NotEnabled(_) => {
            json_response(StatusCode::NOT_FOUND, ErrorCode::WebhookNotEnabled, message)
        }
        WebhookRefusal::Malformed(_) => json_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedPayload,
            message,
        ),
        WebhookRefusal::Unavailable(e) => {
            tracing::error!(error = ?e, "webhook delivery not recorded; the sender will retry");
            let mut resp = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                message,
            );
            resp.headers_mut().insert(
                poem::http::header::RETRY_AFTER,
                poem::http::HeaderValue::from_static("10"),
            );
            resp
        }
    }
}
