//! The Git LFS API of every repository, at `{public_url}/{owner}/{name}.git/info/lfs`, so
//! `git lfs` clients clone real files from the hub alone and push them to primaries:
//!
//! - `POST …/objects/batch`: who may read the repository (as for git) may download, writers
//!   of primaries may upload; a mirror refuses uploads saying why. Hrefs point back to the
//!   hub, with a signed, short-lived `Authorization` of their own.
//! - `GET`/`PUT …/objects/{oid}` and `POST …/objects/{oid}/verify`: the basic transfer, with
//!   that signed authorization (or the caller's own token). Bodies stream both ways; an
//!   upload is checked against its id and size before it is stored.
//! - The locking API answers `501 Not Implemented`, which git-lfs takes for "this server has
//!   no locking" (pushes go on).
//!
//! Answers are `application/vnd.git-lfs+json` with a `message`, as git-lfs shows them.

use std::sync::Arc;

use mirrorhub_core::{Access, OwnerName, RepoName};
use mirrorhub_hub::{Hub, HubError, LfsBatchRequest};
use mirrorhub_lfs::batch::{BatchRequest, ErrorBody, Operation, MEDIA_TYPE};
use mirrorhub_lfs::{Oid, Pointer};
use mirrorhub_store::Repo;
use poem::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Body, Request, Response};

use crate::auth::AdminAuth;
use crate::errors::PassThrough;
use crate::git_http::{authorized_repo, Refusal};
use crate::ServerConfig;

/// Read size for sending an object: each read of a file is a trip to the blocking pool, so
/// poem's default (4 KiB) made downloads several times slower than the disk.
const OBJECT_CHUNK: usize = 256 * 1024;

/// The largest batch request read (git-lfs sends 100 objects, a few KiB).
const MAX_BATCH_REQUEST: usize = 1 << 20;

/// Adds the LFS routes to `route`.
pub(crate) fn mount(route: poem::Route) -> poem::Route {
    route
        .at("/:owner/:repo/info/lfs/objects/batch", poem::post(batch))
        .at(
            "/:owner/:repo/info/lfs/objects/:oid",
            poem::get(download).put(upload),
        )
        .at(
            "/:owner/:repo/info/lfs/objects/:oid/verify",
            poem::post(verify),
        )
        .at(
            "/:owner/:repo/info/lfs/locks",
            poem::get(no_locks).post(no_locks),
        )
        .at(
            "/:owner/:repo/info/lfs/locks/*rest",
            poem::get(no_locks).post(no_locks),
        )
}

fn lfs_json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let mut resp = Response::builder()
        .status(status)
        .content_type(MEDIA_TYPE)
        .header(CACHE_CONTROL, "no-store")
        .body(serde_json::to_vec(body).unwrap_or_default());
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            "www-authenticate",
            poem::http::HeaderValue::from_static("Basic realm=\"mirrorhub\""),
        );
    }
    resp.extensions_mut().insert(PassThrough);
    resp
}

fn message(status: StatusCode, text: impl Into<String>) -> Response {
    lfs_json(
        status,
        &ErrorBody {
            message: text.into(),
            request_id: None,
            documentation_url: None,
        },
    )
}

fn from_refusal(r: Refusal) -> Response {
    message(r.status, r.message)
}

fn from_hub(e: HubError) -> Response {
    if e.is_internal() {
        tracing::error!(error = ?e, "an LFS request failed on the hub's side");
        return message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the hub failed to handle this LFS request; the operator's log has the cause",
        );
    }
    let status = match &e {
        HubError::Forbidden(_) => StatusCode::FORBIDDEN,
        HubError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        HubError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => crate::errors::status_of(e.code()),
    };
    message(status, e.to_string())
}

#[handler]
async fn batch(
    req: &Request,
    body: Body,
    Data(hub): Data<&Arc<Hub>>,
    Data(admin): Data<&Arc<AdminAuth>>,
    Data(config): Data<&Arc<ServerConfig>>,
) -> Response {
    let bytes =
        match body.into_bytes_limit(MAX_BATCH_REQUEST).await {
            Ok(b) => b,
            Err(_) => return message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the batch request is over 1 MiB: send at most a few hundred objects per request",
            ),
        };
    let request: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return message(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a Git LFS batch request: {e}"),
            )
        }
    };
    if !request.transfers.is_empty() && !request.transfers.iter().any(|t| t == "basic") {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the hub speaks only the \"basic\" transfer adapter",
        );
    }
    if request.hash_algo.as_deref().is_some_and(|a| a != "sha256") {
        return message(
            StatusCode::CONFLICT,
            "the hub stores objects by SHA-256 only (hash_algo \"sha256\")",
        );
    }
    let need = match request.operation {
        Operation::Download => Access::Read,
        Operation::Upload => Access::Write,
    };
    let repo = match authorized_repo(req, hub, admin, need).await {
        Ok(r) => r,
        Err(r) => return from_refusal(r),
    };
    let objects_url = format!(
        "{}/{}/{}.git/info/lfs/objects",
        config.public_url, repo.owner, repo.name
    );
    match hub
        .lfs_batch(
            &repo,
            LfsBatchRequest {
                operation: request.operation,
                objects: request.objects,
                objects_url,
            },
        )
        .await
    {
        Ok(answer) => lfs_json(StatusCode::OK, &answer),
        Err(e) => from_hub(e),
    }
}

/// The repository and object of an object request, if the caller may do `op` with it: with
/// the hub's signed href authorization, or a token as for git.
async fn object_request(
    req: &Request,
    hub: &Hub,
    admin: &AdminAuth,
    op: Operation,
) -> Result<(Repo, Oid), Response> {
    let oid = req
        .raw_path_param("oid")
        .and_then(Oid::parse)
        .ok_or_else(|| {
            message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not an object id: 64 lowercase hex digits of the content's SHA-256",
            )
        })?;
    let signed = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.split_once(' ')
                .is_some_and(|(s, _)| s.eq_ignore_ascii_case(mirrorhub_lfs::ActionSigner::SCHEME))
        });
    let Some(signed) = signed else {
        let need = match op {
            Operation::Download => Access::Read,
            Operation::Upload => Access::Write,
        };
        let repo = authorized_repo(req, hub, admin, need)
            .await
            .map_err(from_refusal)?;
        return Ok((repo, oid));
    };
    let owner = req.raw_path_param("owner").unwrap_or_default();
    let name = req.raw_path_param("repo").unwrap_or_default();
    let name = name.strip_suffix(".git").unwrap_or(name);
    let denied = || {
        message(
            StatusCode::UNAUTHORIZED,
            "this object link has expired or is not for this object: ask the batch API again",
        )
    };
    let (Ok(owner), Ok(name)) = (OwnerName::parse(owner), RepoName::parse(name)) else {
        return Err(denied());
    };
    let repo = match hub.get_repo(owner.as_str(), name.as_str()).await {
        Ok(r) => r,
        Err(HubError::NotFound(_)) => return Err(denied()),
        Err(e) => return Err(from_hub(e)),
    };
    match hub.lfs_action_allowed(&repo, op, &oid, signed).await {
        Ok(true) => Ok((repo, oid)),
        Ok(false) => Err(denied()),
        Err(e) => Err(from_hub(e)),
    }
}

#[handler]
async fn download(
    req: &Request,
    Data(hub): Data<&Arc<Hub>>,
    Data(admin): Data<&Arc<AdminAuth>>,
) -> Response {
    let (repo, oid) = match object_request(req, hub, admin, Operation::Download).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    match hub.lfs_open(&repo, &oid).await {
        Ok((file, len)) => {
            let mut resp = Response::builder()
                .status(StatusCode::OK)
                .content_type("application/octet-stream")
                .header(CONTENT_LENGTH, len)
                .header(CACHE_CONTROL, "no-store")
                .body(Body::from_bytes_stream(
                    tokio_util::io::ReaderStream::with_capacity(file, OBJECT_CHUNK),
                ));
            resp.extensions_mut().insert(PassThrough);
            resp
        }
        Err(e) => from_hub(e),
    }
}

#[handler]
async fn upload(
    req: &Request,
    body: Body,
    Data(hub): Data<&Arc<Hub>>,
    Data(admin): Data<&Arc<AdminAuth>>,
) -> Response {
    let (repo, oid) = match object_request(req, hub, admin, Operation::Upload).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let Some(size) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return message(
            StatusCode::LENGTH_REQUIRED,
            "an upload needs its Content-Length: the object's size",
        );
    };
    match hub
        .lfs_upload(&repo, Pointer { oid, size }, body.into_async_read())
        .await
    {
        Ok(()) => lfs_json(StatusCode::OK, &serde_json::json!({})),
        Err(e) => from_hub(e),
    }
}

#[handler]
async fn verify(
    req: &Request,
    body: Body,
    Data(hub): Data<&Arc<Hub>>,
    Data(admin): Data<&Arc<AdminAuth>>,
) -> Response {
    let (repo, oid) = match object_request(req, hub, admin, Operation::Upload).await {
        Ok(found) => found,
        Err(resp) => return resp,
    };
    let spec: mirrorhub_lfs::batch::ObjectSpec = match body
        .into_bytes_limit(64 * 1024)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(s) => s,
        None => {
            return message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "a verify request is {\"oid\", \"size\"}",
            )
        }
    };
    if spec.oid != oid.as_str() {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body names another object than the address",
        );
    }
    match hub
        .lfs_has(
            &repo,
            &Pointer {
                oid,
                size: spec.size,
            },
        )
        .await
    {
        Ok(true) => lfs_json(StatusCode::OK, &serde_json::json!({})),
        Ok(false) => message(
            StatusCode::NOT_FOUND,
            "the hub does not have this object with this size: upload it again",
        ),
        Err(e) => from_hub(e),
    }
}

#[handler]
async fn no_locks() -> Response {
    message(
        StatusCode::NOT_IMPLEMENTED,
        "this hub does not support the Git LFS locking API",
    )
}
