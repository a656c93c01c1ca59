use std::sync::Arc;

use mirrorhub_hub::Hub;
use poem::http::StatusCode;
use poem::web::{Data, Html, Json};
use poem::{handler, IntoResponse};

#[handler]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers.
#[handler]
pub async fn readyz(hub: Data<&Arc<Hub>>) -> poem::Response {
    match hub.store().ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: the database does not answer");
            let body = serde_json::json!({"error": {"code": "unavailable", "message": "the database does not answer"}});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

#[handler]
pub async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mirrorhub</title></head>",
        "<body><h1>mirrorhub</h1><p>The hub is running. The REST API is described at ",
        "<a href=\"/api/v1/docs\">/api/v1/docs</a> (OpenAPI document: ",
        "<a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>).</p></body></html>"
    ))
}
