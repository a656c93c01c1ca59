//! The HTTP edge of mirrorhub: the web UI, the REST API under `/api/v1` (with its OpenAPI
//! document and a Swagger UI), webhook receivers, Git's smart HTTP, health checks, and one
//! mapping of every API error to a JSON body with a stable code. Handlers call the application layer ([`mirrorhub_hub::Hub`]), never the store.

mod api;
mod auth;
mod errors;
mod git_http;
mod health;
mod hooks;
mod lfs_http;
mod web;

use std::sync::Arc;
use std::time::Duration;

use mirrorhub_hub::Hub;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::{EndpointExt, Route, Server};
use poem_openapi::OpenApiService;

pub use auth::{hash_token, AdminAuth};
pub use git_http::GitServeConfig;
pub use web::WebConfig;

/// Settings of the HTTP edge, read once by the binary.
#[derive(Clone)]
pub struct ServerConfig {
    /// Base of clone URLs shown to users, without a trailing slash.
    pub public_url: String,
    pub admin: AdminAuth,
    /// Largest request body accepted by the API.
    pub max_body_bytes: usize,
    /// Largest webhook delivery accepted under `/hooks`.
    pub webhook_max_body_bytes: usize,
    /// Serving repositories over Git's smart HTTP protocol (`/{owner}/{name}.git`).
    pub git: GitServeConfig,
    /// The web UI's sessions.
    pub web: WebConfig,
}

/// Builds the whole application. Tests and the binary serve the same thing.
pub fn app(hub: Arc<Hub>, config: ServerConfig) -> impl poem::Endpoint + 'static {
    let api = (
        api::ReposApi {
            hub: hub.clone(),
            public_url: config.public_url.clone(),
        },
        api::AccountsApi { hub: hub.clone() },
        api::SshApi { hub: hub.clone() },
        api::MirrorSetsApi { hub: hub.clone() },
        api::PushMirrorsApi { hub: hub.clone() },
        api::NotificationsApi { hub: hub.clone() },
        api::BackupsApi { hub: hub.clone() },
    );
    let service = OpenApiService::new(api, "mirrorhub", env!("CARGO_PKG_VERSION"))
        .description(
            "Mirror or migrate Git repositories from any Git server, and keep mirrors in sync.",
        )
        .server("/api/v1");
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let api_limit = errors::BodyLimit(config.max_body_bytes);
    let git = Arc::new(git_http::GitService::new(config.git.clone()));
    let routes = web::mount(
        lfs_http::mount(git_http::mount(Route::new())),
        config.max_body_bytes,
    );
    routes
        .nest("/api/v1", service.with(api_limit))
        .at("/api/v1/openapi.json", spec)
        .nest("/api/v1/docs", docs)
        .nest(
            "/hooks",
            hooks::routes().with(errors::BodyLimit(config.webhook_max_body_bytes)),
        )
        .at("/healthz", poem::get(health::healthz))
        .at("/readyz", poem::get(health::readyz))
        .at("/metrics", poem::get(health::metrics))
        .data(hub)
        .data(git)
        .data(Arc::new(config.admin.clone()))
        .data(Arc::new(config))
        .with(poem::middleware::CookieJarManager::new())
        .around(errors::json_errors)
}

/// Serves `app` on an already bound listener until `shutdown` resolves, then gives requests
/// in flight `grace` to finish.
pub async fn serve(
    acceptor: TcpAcceptor,
    app: impl poem::Endpoint + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send,
    grace: Duration,
) -> std::io::Result<()> {
    let addr = acceptor.local_addr().into_iter().next();
    tracing::info!(addr = ?addr.map(|a| a.to_string()), "listening");
    Server::new_with_acceptor(NoDelay(acceptor))
        .run_with_graceful_shutdown(app, shutdown, Some(grace))
        .await
}

/// Accepts connections with Nagle's algorithm off. Responses are written in pieces (headers,
/// then streamed body chunks); with Nagle on, a small piece waits for the client's delayed
/// ACK, adding about 40 ms to each git round trip.
struct NoDelay(TcpAcceptor);

impl Acceptor for NoDelay {
    type Io = <TcpAcceptor as Acceptor>::Io;

    fn local_addr(&self) -> Vec<poem::web::LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> std::io::Result<(
        Self::Io,
        poem::web::LocalAddr,
        poem::web::RemoteAddr,
        poem::http::uri::Scheme,
    )> {
        let accepted = self.0.accept().await?;
        if let Err(e) = accepted.0.set_nodelay(true) {
            tracing::debug!(error = %e, "could not turn Nagle's algorithm off for a connection");
        }
        Ok(accepted)
    }
}
