use std::sync::Arc;

use mirrorhub_hub::Hub;
use poem::http::StatusCode;
use poem::web::{Data, Json};
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

/// Prometheus text format: repository counts by kind, by status (the `status` word of the
/// API, one series per word, zeros included), and the older per-condition gauges.
#[handler]
pub async fn metrics(hub: Data<&Arc<Hub>>) -> poem::Response {
    let counts = match hub.stats().await {
        Ok(s) => hub.status_counts().await.map(|by_status| (s, by_status)),
        Err(e) => Err(e),
    };
    match counts {
        Ok((s, by_status)) => {
            let mut body = format!(
                "# HELP mirrorhub_repos Repositories on the hub.\n# TYPE mirrorhub_repos gauge\n\
                 mirrorhub_repos{{mode=\"mirror\"}} {}\nmirrorhub_repos{{mode=\"migrate\"}} {}\n\
                 # HELP mirrorhub_repos_cloning Repositories whose initial copy is queued or running.\n# TYPE mirrorhub_repos_cloning gauge\nmirrorhub_repos_cloning {}\n\
                 # HELP mirrorhub_repos_failed Repositories whose initial copy failed.\n# TYPE mirrorhub_repos_failed gauge\nmirrorhub_repos_failed {}\n\
                 # HELP mirrorhub_mirrors_stale Mirrors whose last success is older than their interval plus the grace period.\n# TYPE mirrorhub_mirrors_stale gauge\nmirrorhub_mirrors_stale {}\n\
                 # HELP mirrorhub_mirrors_paused Mirrors paused after repeated permanent failures.\n# TYPE mirrorhub_mirrors_paused gauge\nmirrorhub_mirrors_paused {}\n",
                s.mirrors, s.migrated, s.cloning, s.failed, s.stale, s.paused
            );
            body.push_str(
                "# HELP mirrorhub_repos_by_status Repositories by their status word (as the API's `status`).\n# TYPE mirrorhub_repos_by_status gauge\n",
            );
            for (status, n) in by_status {
                body.push_str(&format!(
                    "mirrorhub_repos_by_status{{status=\"{status}\"}} {n}\n"
                ));
            }
            poem::Response::builder()
                .content_type("text/plain; version=0.0.4")
                .body(body)
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database does not answer");
            let body = serde_json::json!({"error": {"code": "unavailable", "message": "the database does not answer"}});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}
