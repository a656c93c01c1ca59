//! Git LFS in the hub.
//!
//! - **Mirroring**: after a first copy or a sync of a mirror, [`Hub::mirror_lfs`] reads the
//!   pointers of the commits the run brought (the whole history on a first copy, only new
//!   commits later), records them as needed by the repository, and fetches the ones the hub
//!   lacks from the upstream's LFS server. What could not be fetched stays recorded as missing,
//!   is retried by every later sync (also a no-op one), and is reported as the run's warning and
//!   the repository's `lfs.last_error`: it never fails the sync of the refs.
//! - **Serving**: the hub's own batch API ([`Hub::lfs_batch`]) answers only for objects the
//!   repository references and the hub holds, with short-lived signed hrefs back to the hub;
//!   uploads go to primaries only, each verified before it is stored.
//! - **Storage**: one content-addressed [`ObjectStore`] for all repositories; an object's file
//!   is removed when the last repository referencing it is deleted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mirrorhub_core::{ErrorCode, Mode, RepoState};
use mirrorhub_git::{GitEngine, SyncReport};
use mirrorhub_lfs::batch::{
    Action, Actions, BatchAnswer, ObjectAnswer, ObjectError, ObjectSpec, Operation,
};
use mirrorhub_lfs::{
    ActionSigner, Egress, EgressPass, FetchOptions, Fetcher, ObjectStore, Oid, Pointer, Upstream,
};
use mirrorhub_store::Repo;
use rand::RngCore;

use crate::{Hub, HubError};

/// The hub's LFS settings, read once by the binary.
#[derive(Debug, Clone)]
pub struct LfsConfig {
    /// Where objects live (`<data dir>/lfs`), with the per-object size limit.
    pub objects: ObjectStore,
    /// Downloads from an upstream at once, per sync.
    pub concurrency: usize,
}

/// How long an href of the hub's own batch answers stays good.
const ACTION_TTL_SECS: i64 = 3600;
/// The setting that holds the key signing those hrefs: one key for every replica.
const SIGNING_KEY_SETTING: &str = "lfs_action_key";
/// Oids named in a run's warning, at most.
const WARNING_OIDS: usize = 5;
/// Missing objects fetched in one run, at most (the rest on the next).
const FETCH_LIMIT: i64 = 100_000;

/// The engine's egress proxy, as the LFS client asks for it.
struct EngineEgress(GitEngine);

struct Pass(mirrorhub_git::EgressPass);

impl EgressPass for Pass {
    fn proxy_url(&self) -> &str {
        self.0.proxy_url()
    }

    fn refused(&self) -> Option<String> {
        self.0.refused()
    }
}

impl Egress for EngineEgress {
    fn pass(&self) -> Box<dyn EgressPass> {
        Box::new(Pass(self.0.egress_pass()))
    }
}

/// What the LFS step of a run left: the run's warning, and whether what is missing may come
/// with a retry (the network, a timeout) rather than only with a change upstream.
#[derive(Debug, Default)]
pub(crate) struct LfsRun {
    pub warning: Option<String>,
    pub transient: Option<ErrorCode>,
}

/// What the hub's batch API was asked, once the caller's right to ask was checked.
pub struct LfsBatchRequest {
    pub operation: Operation,
    pub objects: Vec<ObjectSpec>,
    /// `{public_url}/{owner}/{name}.git/info/lfs/objects`: where hrefs point.
    pub objects_url: String,
}

impl Hub {
    pub(crate) fn lfs_fetcher(&self) -> Fetcher {
        let engine = self.engine.config();
        Fetcher::new(
            Arc::new(EngineEgress(self.engine.clone())),
            self.config.lfs.objects.clone(),
            FetchOptions {
                concurrency: self.config.lfs.concurrency.max(1),
                connect_timeout: engine.probe_timeout,
                read_timeout: engine.low_speed_time.max(Duration::from_secs(1)),
            },
        )
    }

    /// A repository's LFS counts; zeros (logged) when the database cannot tell.
    pub async fn lfs_counts(&self, repo_id: i64) -> mirrorhub_store::LfsCounts {
        self.store.lfs_counts(repo_id).await.unwrap_or_else(|e| {
            tracing::warn!(repo_id, error = %e, "could not count LFS objects");
            mirrorhub_store::LfsCounts::default()
        })
    }

    pub fn lfs_objects(&self) -> &ObjectStore {
        &self.config.lfs.objects
    }

    /// The key the hub's LFS hrefs are signed with, made once and shared through the database.
    async fn lfs_signer(&self) -> Result<&ActionSigner, HubError> {
        self.lfs_signer
            .get_or_try_init(|| async {
                if let Some(key) = self.store.get_setting(SIGNING_KEY_SETTING).await? {
                    if let Ok(bytes) = hex::decode(key.trim()) {
                        if bytes.len() >= 32 {
                            return Ok(ActionSigner::new(&bytes));
                        }
                    }
                }
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                self.store
                    .put_setting_if_absent(SIGNING_KEY_SETTING, &hex::encode(key))
                    .await?;
                // Another replica may have been first: use whichever key is stored.
                let stored = self
                    .store
                    .get_setting(SIGNING_KEY_SETTING)
                    .await?
                    .and_then(|k| hex::decode(k.trim()).ok())
                    .filter(|k| k.len() >= 32)
                    .ok_or_else(|| {
                        HubError::Io(std::io::Error::other("the LFS signing key is unreadable"))
                    })?;
                Ok(ActionSigner::new(&stored))
            })
            .await
    }

    /// After a run that brought `report`: records the LFS objects its new commits need and
    /// fetches those the hub lacks. Returns the run's warning when objects are still missing.
    /// Never fails the run: LFS trouble is reported, and retried by the next sync.
    pub(crate) async fn mirror_lfs(&self, repo: &Repo, report: &SyncReport) -> LfsRun {
        if !repo.lfs.enabled {
            return LfsRun::default();
        }
        let deadline = self.engine.config().timeout;
        match tokio::time::timeout(deadline, self.try_mirror_lfs(repo, report)).await {
            Ok(Ok(run)) => run,
            Ok(Err(e)) => {
                tracing::error!(error = ?e, "LFS objects could not be mirrored");
                let message = if e.is_internal() {
                    "LFS objects could not be mirrored: the hub failed on its side; the operator's log has the cause".to_owned()
                } else {
                    e.to_string()
                };
                let _ = self.store.lfs_set_error(repo.id, Some(&message)).await;
                LfsRun {
                    warning: Some(format!("lfs: {message}")),
                    transient: Some(e.code()).filter(|c| c.is_transient()),
                }
            }
            Err(_) => {
                let message = format!(
                    "fetching LFS objects took longer than the sync timeout ({}s); the rest is fetched by the next sync",
                    deadline.as_secs()
                );
                let _ = self.store.lfs_set_error(repo.id, Some(&message)).await;
                LfsRun {
                    warning: Some(format!("lfs: {message}")),
                    transient: Some(ErrorCode::Timeout),
                }
            }
        }
    }

    async fn try_mirror_lfs(&self, repo: &Repo, report: &SyncReport) -> Result<LfsRun, HubError> {
        let path = self.repo_path(repo.id);
        // Until a run has succeeded, every ref is read: a first copy whose run was cut short
        // (the hub killed after the copy was in place) is found again by a later no-op sync.
        let whole = repo.last_success_at.is_none();
        if whole || !report.changes.is_empty() {
            let started = std::time::Instant::now();
            let (tips, exclude) = self.walk_bounds(&path, report, whole).await?;
            let git = || self.engine.local_command(&path);
            let pointers = mirrorhub_lfs::scan::pointers(git, &tips, &exclude).await?;
            let objects: Vec<(String, i64)> = pointers
                .iter()
                .map(|p| (p.oid.to_string(), p.size as i64))
                .collect();
            let added = self.store.lfs_need(repo.id, &objects, Utc::now()).await?;
            tracing::debug!(
                pointers = objects.len(),
                new = added,
                duration_ms = started.elapsed().as_millis() as u64,
                "LFS pointers read"
            );
        }
        let missing = self.store.lfs_missing(repo.id, FETCH_LIMIT).await?;
        if missing.is_empty() {
            if repo.lfs.last_error.is_some() {
                self.store.lfs_set_error(repo.id, None).await?;
            }
            return Ok(LfsRun::default());
        }
        // Every missing object is downloaded, also one another repository brought already:
        // only bytes that hash to the id prove the upstream has the object, and a pointer
        // alone must never open another repository's object to this one's readers. The
        // store still keeps one copy.
        let wanted: Vec<Pointer> = missing
            .into_iter()
            .filter_map(|(oid, size)| {
                Some(Pointer {
                    oid: Oid::parse(&oid)?,
                    size: size.max(0) as u64,
                })
            })
            .collect();
        let upstream = self.lfs_upstream(repo, &path).await?;
        let total = wanted.len();
        let started = std::time::Instant::now();
        let outcome = self.lfs_fetcher().fetch(&upstream, wanted).await;
        let fetched: Vec<(String, i64)> = outcome
            .fetched
            .iter()
            .map(|p| (p.oid.to_string(), p.size as i64))
            .collect();
        self.store
            .lfs_mark_present(repo.id, &fetched, Utc::now())
            .await?;
        tracing::info!(
            fetched = fetched.len(),
            failed = outcome.failed.len(),
            wanted = total,
            duration_ms = started.elapsed().as_millis() as u64,
            endpoint = %upstream.endpoint,
            "LFS objects fetched"
        );
        if outcome.failed.is_empty() {
            self.store.lfs_set_error(repo.id, None).await?;
            return Ok(LfsRun::default());
        }
        for f in outcome.failed.iter().take(WARNING_OIDS) {
            tracing::warn!(oid = %f.pointer.oid, code = %f.code, error = %f.message, "LFS object not fetched");
        }
        let first = &outcome.failed[0];
        self.store
            .lfs_set_error(
                repo.id,
                Some(&format!("{} ({})", first.message, first.code)),
            )
            .await?;
        let named: Vec<String> = outcome
            .failed
            .iter()
            .take(WARNING_OIDS)
            .map(|f| format!("{} ({})", f.pointer.oid, f.code))
            .collect();
        Ok(LfsRun {
            warning: Some(format!(
                "lfs_missing: {} (first: {}); {} They are fetched again by the next sync.",
                outcome.failed.len(),
                named.join(", "),
                first.message
            )),
            transient: outcome
                .failed
                .iter()
                .map(|f| f.code)
                .find(|c| c.is_transient()),
        })
    }

    /// The commits to walk after a run: every ref's new tip, minus what the repository had
    /// before (the changed refs' old tips and every unchanged ref); with `whole`, every ref.
    async fn walk_bounds(
        &self,
        path: &std::path::Path,
        report: &SyncReport,
        whole: bool,
    ) -> Result<(Vec<String>, Vec<String>), HubError> {
        let changed: BTreeSet<&str> = report.changes.iter().map(|c| c.name.as_str()).collect();
        let mut tips: Vec<String> = report
            .changes
            .iter()
            .filter_map(|c| c.new.clone())
            .collect();
        let mut exclude: Vec<String> = report
            .changes
            .iter()
            .filter_map(|c| c.old.clone())
            .collect();
        if whole {
            exclude.clear();
        }
        let out = self
            .engine
            .local_command(path)
            .args(["for-each-ref", "--format=%(objectname) %(refname)"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .await?;
        if out.status.success() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((id, name)) = line.split_once(' ') {
                    if whole {
                        tips.push(id.to_owned());
                    } else if !changed.contains(name) {
                        exclude.push(id.to_owned());
                    }
                }
            }
        }
        Ok((tips, exclude))
    }

    /// The upstream's LFS server: the repository's `lfs_url`, else `lfs.url` of the
    /// `.lfsconfig` on the default branch, else `<upstream>/info/lfs`. The mirror's
    /// credentials go with it only to the upstream's own origin.
    async fn lfs_upstream(
        &self,
        repo: &Repo,
        path: &std::path::Path,
    ) -> Result<Upstream, HubError> {
        let configured = match &repo.lfs.url {
            Some(url) => Some(url.clone()),
            None => {
                let git = || self.engine.local_command(path);
                mirrorhub_lfs::scan::lfsconfig_url(git, "HEAD").await
            }
        };
        let endpoint = match configured {
            Some(url) => mirrorhub_lfs::batch::parse_href(&url).map_err(|why| {
                HubError::invalid(
                    ErrorCode::InvalidUrl,
                    "lfs_url",
                    format!("the LFS endpoint {url:?} cannot be used: {why}"),
                )
            })?,
            None => mirrorhub_lfs::default_endpoint(&repo.upstream_url).ok_or_else(|| {
                HubError::invalid(
                    ErrorCode::InvalidUrl,
                    "lfs_url",
                    "a git:// upstream has no LFS server of its own: set the repository's lfs_url, or turn LFS off with \"lfs\": false",
                )
            })?,
        };
        let login = self.login_for(repo).await?;
        let credentials = login.auth().basic.cloned().filter(|_| {
            url::Url::parse(&repo.upstream_url)
                .is_ok_and(|u| mirrorhub_lfs::same_origin(&u, &endpoint))
        });
        Ok(Upstream {
            endpoint,
            credentials,
        })
    }

    /// The hub's batch API: for downloads, an href per object the repository references and
    /// the hub holds; for uploads (the caller was checked to be a writer of a primary), an
    /// upload href per object the hub lacks.
    pub async fn lfs_batch(
        &self,
        repo: &Repo,
        request: LfsBatchRequest,
    ) -> Result<BatchAnswer, HubError> {
        if request.operation == Operation::Upload && !accepts_pushes(repo) {
            return Err(HubError::Forbidden(format!(
                "{}/{} is a mirror: its LFS objects come from its upstream. Push to the upstream, or promote the mirror to make the hub the primary",
                repo.owner, repo.name
            )));
        }
        let signer = self.lfs_signer().await?.clone();
        let expires_at = Utc::now().timestamp() + ACTION_TTL_SECS;
        let mut objects = Vec::with_capacity(request.objects.len());
        for spec in request.objects {
            let Some(pointer) = mirrorhub_lfs::batch::pointer_of(&spec) else {
                objects.push(object_error(
                    spec,
                    422,
                    "not a valid object id: 64 lowercase hex digits of the content's SHA-256",
                ));
                continue;
            };
            let href = format!("{}/{}", request.objects_url, pointer.oid);
            let auth = |op| {
                [(
                    "Authorization".to_owned(),
                    signer.header(repo.id, op, &pointer.oid, expires_at),
                )]
                .into_iter()
                .collect()
            };
            let known = self.store.lfs_object(repo.id, pointer.oid.as_str()).await?;
            match request.operation {
                Operation::Download => match known {
                    Some((size, true))
                        if self
                            .config
                            .lfs
                            .objects
                            .contains(&Pointer {
                                size: size as u64,
                                ..pointer.clone()
                            })
                            .await =>
                    {
                        objects.push(ObjectAnswer {
                            oid: spec.oid,
                            size: size as u64,
                            authenticated: Some(true),
                            actions: Some(Actions {
                                download: Some(Action {
                                    href,
                                    header: auth(Operation::Download),
                                    expires_in: Some(ACTION_TTL_SECS),
                                }),
                                ..Actions::default()
                            }),
                            error: None,
                        });
                    }
                    Some((_, present)) => {
                        if present {
                            self.lost_lfs_object(repo, &pointer.oid).await?;
                        }
                        objects.push(object_error(spec, 404, &format!(
                            "{}/{} does not have this LFS object yet: its upstream has not delivered it (see the repository's lfs.last_error); every sync tries again",
                            repo.owner, repo.name
                        )));
                    }
                    None => objects.push(object_error(
                        spec,
                        404,
                        "no such LFS object in this repository",
                    )),
                },
                Operation::Upload => {
                    // Skipped only when this repository holds it already: an object of another
                    // repository is never linked here on its id alone (the client must send
                    // the bytes, which are checked against the id).
                    if matches!(known, Some((size, true)) if size as u64 == pointer.size)
                        && self.config.lfs.objects.contains(&pointer).await
                    {
                        objects.push(ObjectAnswer {
                            oid: spec.oid,
                            size: spec.size,
                            authenticated: Some(true),
                            actions: None,
                            error: None,
                        });
                    } else if pointer.size > self.config.lfs.objects.max_object_bytes() {
                        objects.push(object_error(spec, 422, &format!(
                            "the object has {} bytes, over this hub's limit of {} (MIRRORHUB_LFS_MAX_OBJECT_BYTES)",
                            pointer.size, self.config.lfs.objects.max_object_bytes()
                        )));
                    } else {
                        objects.push(ObjectAnswer {
                            oid: spec.oid,
                            size: spec.size,
                            authenticated: Some(true),
                            actions: Some(Actions {
                                upload: Some(Action {
                                    href: href.clone(),
                                    header: auth(Operation::Upload),
                                    expires_in: Some(ACTION_TTL_SECS),
                                }),
                                verify: Some(Action {
                                    href: format!("{href}/verify"),
                                    header: auth(Operation::Upload),
                                    expires_in: Some(ACTION_TTL_SECS),
                                }),
                                download: None,
                            }),
                            error: None,
                        });
                    }
                }
            }
        }
        Ok(BatchAnswer {
            transfer: Some("basic".into()),
            objects,
            hash_algo: Some("sha256".into()),
        })
    }

    /// Whether `authorization` is a signed href authorization of the hub's for this request.
    pub async fn lfs_action_allowed(
        &self,
        repo: &Repo,
        operation: Operation,
        oid: &Oid,
        authorization: &str,
    ) -> Result<bool, HubError> {
        let signer = self.lfs_signer().await?;
        Ok(signer.verify(
            authorization,
            repo.id,
            operation,
            oid,
            Utc::now().timestamp(),
        ))
    }

    /// Opens an object of the repository for a download: only one it references and the hub
    /// holds.
    pub async fn lfs_open(
        &self,
        repo: &Repo,
        oid: &Oid,
    ) -> Result<(tokio::fs::File, u64), HubError> {
        let missing = || {
            HubError::invalid(
                ErrorCode::LfsObjectMissing,
                "oid",
                format!("{}/{} has no LFS object {oid}", repo.owner, repo.name),
            )
        };
        match self.store.lfs_object(repo.id, oid.as_str()).await? {
            Some((_, true)) => {}
            _ => return Err(missing()),
        }
        match self.config.lfs.objects.open_object(oid).await {
            Ok(found) => Ok(found),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.lost_lfs_object(repo, oid).await?;
                Err(missing())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A file the rows say the hub holds is gone (removed with the last repository that
    /// referenced it while another one took it up): recorded as missing, so the next sync
    /// fetches it again.
    async fn lost_lfs_object(&self, repo: &Repo, oid: &Oid) -> Result<(), HubError> {
        tracing::warn!(repo_id = repo.id, %oid, "an LFS object the repository holds has no file; it is fetched again by the next sync");
        self.store.lfs_mark_missing(repo.id, oid.as_str()).await?;
        Ok(())
    }

    /// Stores an uploaded object of a primary after checking it against its id and size.
    pub async fn lfs_upload(
        &self,
        repo: &Repo,
        pointer: Pointer,
        mut body: impl tokio::io::AsyncRead + Unpin,
    ) -> Result<(), HubError> {
        use tokio::io::AsyncReadExt;
        if !accepts_pushes(repo) {
            return Err(HubError::Forbidden(format!(
                "{}/{} is a mirror: it accepts no LFS uploads",
                repo.owner, repo.name
            )));
        }
        // Written and checked even when the store has these bytes already (from another
        // repository): the upload must prove the content.
        {
            let mut writer = self.config.lfs.objects.writer(&pointer).await?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = body.read(&mut buf).await.map_err(|e| {
                    HubError::invalid(
                        ErrorCode::InvalidRequest,
                        "body",
                        format!("the upload broke off: {e}"),
                    )
                })?;
                if n == 0 {
                    break;
                }
                writer.write(&buf[..n]).await?;
            }
            writer.finish().await?;
        }
        self.store
            .lfs_mark_present(
                repo.id,
                &[(pointer.oid.to_string(), pointer.size as i64)],
                Utc::now(),
            )
            .await?;
        tracing::info!(repo_id = repo.id, oid = %pointer.oid, size = pointer.size, "LFS object uploaded");
        Ok(())
    }

    /// Whether the repository holds this object (the verify action after an upload).
    pub async fn lfs_has(&self, repo: &Repo, pointer: &Pointer) -> Result<bool, HubError> {
        Ok(
            matches!(self.store.lfs_object(repo.id, pointer.oid.as_str()).await?, Some((size, true)) if size as u64 == pointer.size)
                && self.config.lfs.objects.contains(pointer).await,
        )
    }

    /// Removes the object files only the deleted repository referenced.
    pub(crate) async fn release_lfs(&self, oids: Vec<String>) {
        if oids.is_empty() {
            return;
        }
        match self.store.lfs_unreferenced(&oids).await {
            Ok(gone) => {
                for oid in gone.iter().filter_map(|o| Oid::parse(o)) {
                    if let Err(e) = self.config.lfs.objects.remove(&oid).await {
                        tracing::warn!(%oid, error = %e, "an unreferenced LFS object could not be removed");
                    }
                }
                if !gone.is_empty() {
                    tracing::info!(
                        removed = gone.len(),
                        "LFS objects no repository references were removed"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not tell which LFS objects are unreferenced")
            }
        }
    }
}

/// Primaries (migrated, or promoted and copied) take pushes; mirrors never.
fn accepts_pushes(repo: &Repo) -> bool {
    repo.mode == Mode::Migrate && repo.state == RepoState::Ready
}

fn object_error(spec: ObjectSpec, code: i64, message: &str) -> ObjectAnswer {
    ObjectAnswer {
        oid: spec.oid,
        size: spec.size,
        authenticated: None,
        actions: None,
        error: Some(ObjectError {
            code,
            message: message.to_owned(),
        }),
    }
}
