//! The first copy of a repository through gitoxide (gix). Its pack indexing resolves deltas on
//! every core, which makes a first copy 1.4-2.6x as fast as `git clone` in our measurements
//! (`shared/perf/git-engines.md`, and the README's bench table). Everything after the
//! first copy stays with the git command line ([`crate::transport`]), the exact engine.
//!
//! It keeps the command line's rules: http(s) goes through the egress proxy under a ticket of
//! its own, with git's low-speed limit; git:// connects to the address checked beforehand, with
//! read timeouts; credentials are given only to the upstream's own origin; no configuration or
//! environment is inherited. It copies only what it is sure of: an upstream with branches or
//! tags whose HEAD names one of its branches. Anything else, and any failure but a timeout or a
//! refused address, is handed back as [`Attempt::Fallback`] and the engine copies with
//! `git clone` instead, which also says precisely what went wrong.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gix::bstr::ByteSlice;
use gix::credentials::helper::Action;
use gix::progress::prodash::tree::Root;
use gix::protocol::handshake::Ref;
use gix::remote::Direction;
use mirrorhub_core::{Credentials, Scheme};
use tokio::time::Instant;

use crate::error::{classify_stderr, redact, GitError};
use crate::progress::{Progress, ProgressFn, Throttle};
use crate::proxy::Ticket;
use crate::refs::{is_mirrored, RefMap};
use crate::transport::{GitCli, Remote, MIRROR_REFSPECS};

/// Copies repositories with gix, under the command line's policy, proxy and limits.
pub(crate) struct GixCopier {
    pub cli: Arc<GitCli>,
}

/// How a copy attempt ended, when it did not fail for good.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// `dest` holds the copy: every branch and tag the upstream advertised, HEAD on its branch.
    Copied,
    /// Nothing usable was made (`dest` may hold a partial repository); copy another way.
    Fallback(String),
}

/// What the blocking part needs.
struct Job {
    dest: PathBuf,
    url: String,
    overrides: Vec<String>,
    creds: Option<Origin>,
    /// git:// only: the connected socket, and the `host=` to send.
    daemon: Option<(TcpStream, String, Option<u16>)>,
    root: Arc<Root>,
    interrupt: Arc<AtomicBool>,
}

/// Credentials and the one origin they may go to.
struct Origin {
    scheme: &'static str,
    host: String,
    port: u16,
    username: String,
    secret: String,
}

/// Ends a running copy: raises gix's interrupt flag and closes its connections, so that a read
/// blocked on a silent upstream returns at once.
struct Cutter {
    interrupt: Arc<AtomicBool>,
    ticket: Option<Ticket>,
    socket: Option<TcpStream>,
}

impl Cutter {
    fn cut(&self) {
        self.interrupt.store(true, Ordering::SeqCst);
        if let Some(t) = &self.ticket {
            t.cut();
        }
        if let Some(s) = &self.socket {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.cut();
    }
}

impl GixCopier {
    /// Copies the upstream's branches, tags and HEAD into a new bare repository at `dest`,
    /// which must not exist.
    pub(crate) async fn clone_bare(
        &self,
        remote: &Remote<'_>,
        dest: &Path,
        progress: ProgressFn,
    ) -> Result<Attempt, GitError> {
        let url = remote.url;
        let cli = &self.cli;
        let interrupt = Arc::new(AtomicBool::new(false));
        let mut overrides = vec![
            "protocol.version=2".to_owned(),
            "core.logAllRefUpdates=false".to_owned(),
            "committer.name=mirrorhub".to_owned(),
            "committer.email=mirrorhub@localhost".to_owned(),
            "gitoxide.credentials.terminalPrompt=false".to_owned(),
        ];
        let mut secrets = Vec::new();
        let mut cutter = Cutter {
            interrupt: Arc::clone(&interrupt),
            ticket: None,
            socket: None,
        };
        let (gix_url, daemon) = match url.scheme() {
            // ssh runs as git runs it (pinned keys, checked address): git clone.
            Scheme::Ssh => return Ok(Attempt::Fallback("an ssh:// upstream".to_owned())),
            Scheme::Git => {
                let addr = cli.pin_git_address(remote).await?;
                let socket = match self.connect(addr, remote).await {
                    Ok(s) => s,
                    Err(e) => return Ok(Attempt::Fallback(format!("connecting to {addr}: {e}"))),
                };
                cutter.socket = Some(socket.try_clone()?);
                let host = addr.ip().to_string();
                let explicit_port =
                    (url.port() != Scheme::Git.default_port()).then_some(url.port());
                (
                    url.with_host(&host).to_string(),
                    Some((socket, host, explicit_port)),
                )
            }
            Scheme::Http | Scheme::Https => {
                let ticket = cli.proxy.ticket();
                secrets.push(ticket.token().to_owned());
                overrides.extend(
                    cli.http_config(&ticket)
                        .into_iter()
                        .map(|(k, v)| format!("{k}={v}")),
                );
                overrides.extend([
                    // curl would otherwise read no_proxy from the hub's environment and go
                    // around the proxy for the hosts it names.
                    "gitoxide.http.noProxy=".to_owned(),
                    format!(
                        "gitoxide.http.connectTimeout={}",
                        cli.probe_timeout.as_millis()
                    ),
                ]);
                cutter.ticket = Some(ticket);
                (url.to_string(), None)
            }
        };
        let creds = remote.creds.map(|c: &Credentials| {
            secrets.push(c.expose_secret().to_owned());
            Origin {
                scheme: url.scheme().as_str(),
                host: url.host().to_ascii_lowercase(),
                port: url.port(),
                username: c.username.clone(),
                secret: c.expose_secret().to_owned(),
            }
        });
        let root = Root::new();
        let job = Job {
            dest: dest.to_path_buf(),
            url: gix_url,
            overrides,
            creds,
            daemon,
            root: Arc::clone(&root),
            interrupt,
        };

        let mut task = tokio::task::spawn_blocking(move || copy(job));
        let mut throttle = Throttle::new(Arc::clone(&progress));
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut timed_out = false;
        let joined = loop {
            tokio::select! {
                joined = &mut task => break joined,
                _ = tick.tick() => report_progress(&root, &mut throttle),
                () = tokio::time::sleep_until(remote.deadline), if !timed_out => {
                    timed_out = true;
                    cutter.cut();
                }
            }
        };
        let log = cutter.ticket.as_ref().map(Ticket::log).unwrap_or_default();
        drop(cutter);
        if timed_out {
            return Err(GitError::Timeout {
                after: remote.timeout,
            });
        }
        if let Some(r) = log.refused {
            return Err(r.into());
        }
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        match joined {
            Ok(Ok(())) => {
                for phase in ["receiving objects", "resolving deltas"] {
                    throttle.report(Progress {
                        phase: phase.to_owned(),
                        percent: 100,
                    });
                }
                Ok(Attempt::Copied)
            }
            Ok(Err(Failure::Stalled(detail))) => {
                tracing::debug!(detail = %redact(&detail, &secrets), "the first copy stalled");
                Err(GitError::Timeout {
                    after: cli.low_speed_time,
                })
            }
            Ok(Err(Failure::Other(detail))) => {
                let detail = redact(&detail, &secrets);
                match classify_stderr(&detail, cli.low_speed_time) {
                    e @ GitError::Timeout { .. } => Err(e),
                    _ => Ok(Attempt::Fallback(detail)),
                }
            }
            Err(e) => Ok(Attempt::Fallback(format!("the copy task ended: {e}"))),
        }
    }

    /// Connects to a checked git:// address, with the low-speed time as read and write timeout
    /// (a silent daemon is a stalled one).
    async fn connect(&self, addr: SocketAddr, remote: &Remote<'_>) -> io::Result<TcpStream> {
        let cli = &self.cli;
        let timeout = cli
            .probe_timeout
            .min(remote.deadline.saturating_duration_since(Instant::now()));
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"))??;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        let idle =
            (cli.low_speed_limit > 0).then_some(cli.low_speed_time.max(Duration::from_secs(1)));
        stream.set_read_timeout(idle)?;
        stream.set_write_timeout(idle)?;
        Ok(stream)
    }
}

/// Passes gix's progress on in git's terms: its pack indexing is git's "receiving objects",
/// its delta resolution git's "resolving deltas".
fn report_progress(root: &Root, throttle: &mut Throttle) {
    let mut tasks = Vec::new();
    root.sorted_snapshot(&mut tasks);
    for (_, task) in tasks {
        let phase = match task.name.as_str() {
            "indexing" => "receiving objects",
            "Resolving" => "resolving deltas",
            _ => continue,
        };
        let Some(value) = task.progress else { continue };
        let Some(done_at) = value.done_at.filter(|d| *d > 0) else {
            continue;
        };
        let step = value.step.load(Ordering::Relaxed).min(done_at);
        let percent = u8::try_from(step * 100 / done_at).unwrap_or(100);
        throttle.report(Progress {
            phase: phase.to_owned(),
            percent,
        });
    }
}

/// Why a copy did not come about.
enum Failure {
    /// A read or write on the upstream connection timed out.
    Stalled(String),
    Other(String),
}

impl<E: std::error::Error + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        let mut text = e.to_string();
        let mut stalled = false;
        let mut source = e.source();
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<io::Error>() {
                stalled |= matches!(
                    io.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                );
            }
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        if stalled {
            Failure::Stalled(text)
        } else {
            Failure::Other(text)
        }
    }
}

fn other(text: impl Into<String>) -> Failure {
    Failure::Other(text.into())
}

/// The blocking part: init, fetch, check, HEAD, make durable.
fn copy(job: Job) -> Result<(), Failure> {
    let Job {
        dest,
        url,
        overrides,
        creds,
        daemon,
        root,
        interrupt,
    } = job;
    let open = gix::open::Options::isolated().config_overrides(overrides);
    let repo = gix::ThreadSafeRepository::init_opts(
        &dest,
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        open,
    )?
    .to_thread_local();
    // gix's template (sample hooks, description): git's runs use an empty one.
    std::fs::remove_dir_all(dest.join("hooks"))?;
    std::fs::remove_dir_all(dest.join("info"))?;
    std::fs::remove_file(dest.join("description"))?;
    let remote = repo
        .remote_at(url.as_str())?
        .with_refspecs(MIRROR_REFSPECS, Direction::Fetch)?
        .with_fetch_tags(gix::remote::fetch::Tags::None);
    let head_spec =
        gix::refspec::parse("HEAD".into(), gix::refspec::parse::Operation::Fetch)?.to_owned();
    let options = gix::remote::ref_map::Options {
        extra_refspecs: vec![head_spec],
        ..Default::default()
    };
    let progress = root.add_child("first copy");
    // The result type is gix's, as its credential callback must return it.
    #[allow(clippy::result_large_err)]
    let authenticate = move |action: Action| -> gix::credentials::protocol::Result {
        let Action::Get(mut ctx) = action else {
            return Ok(None);
        };
        let Some(origin) = creds.as_ref() else {
            return Ok(None);
        };
        let Some(asked) = ctx
            .url
            .as_ref()
            .and_then(|u| gix::url::parse(u.as_bstr()).ok())
        else {
            return Ok(None);
        };
        let same_origin = asked.scheme.as_str() == origin.scheme
            && asked.host().map(str::to_ascii_lowercase).as_deref() == Some(origin.host.as_str())
            && asked.port_or_default() == Some(origin.port);
        if !same_origin {
            return Ok(None);
        }
        ctx.username = Some(origin.username.clone());
        ctx.password = Some(origin.secret.clone());
        Ok(Some(gix::credentials::protocol::Outcome {
            identity: gix::sec::identity::Account {
                username: origin.username.clone(),
                password: origin.secret.clone(),
                oauth_refresh_token: None,
            },
            next: ctx.into(),
        }))
    };
    let outcome = match daemon {
        None => fetch_all(
            remote.connect(Direction::Fetch)?,
            authenticate,
            progress,
            options,
            &interrupt,
        )?,
        Some((socket, host, port)) => {
            let path = remote
                .url(Direction::Fetch)
                .map(|u| u.path.clone())
                .unwrap_or_default();
            let transport = gix::protocol::transport::client::git::blocking_io::Connection::new(
                socket.try_clone()?,
                socket,
                gix::protocol::transport::Protocol::V2,
                path,
                Some((host, port)),
                gix::protocol::transport::client::git::ConnectMode::Daemon,
                false,
            );
            fetch_all(
                remote.to_connection_with_transport(transport),
                authenticate,
                progress,
                options,
                &interrupt,
            )?
        }
    };

    // What the upstream advertised, as git would store it.
    let mut advertised = RefMap::new();
    let mut head = None;
    for r in &outcome.ref_map.remote_refs {
        let (name, value) = match r {
            Ref::Symbolic {
                full_ref_name,
                target,
                ..
            } if full_ref_name == "HEAD" => {
                head = Some(target.to_str_lossy().into_owned());
                continue;
            }
            Ref::Direct {
                full_ref_name,
                object,
            } => (full_ref_name, object.to_string()),
            Ref::Peeled {
                full_ref_name, tag, ..
            } => (full_ref_name, tag.to_string()),
            Ref::Symbolic {
                full_ref_name,
                tag,
                object,
                ..
            } => (full_ref_name, tag.as_ref().unwrap_or(object).to_string()),
            Ref::Unborn { .. } => continue,
        };
        let name = name.to_str_lossy().into_owned();
        if is_mirrored(&name) {
            advertised.insert(name, value);
        }
    }
    if advertised.is_empty() {
        return Err(other("the upstream advertised no branches or tags"));
    }
    let head = head
        .filter(|h| advertised.contains_key(h) && h.starts_with("refs/heads/"))
        .ok_or_else(|| other("the upstream's HEAD is not one of its branches"))?;
    for (name, oid) in &advertised {
        let id = gix::ObjectId::from_hex(oid.as_bytes())?;
        if !repo.has_object(id) {
            return Err(other(format!("the pack lacks {name} ({oid})")));
        }
    }
    drop(repo);

    // HEAD and the refs as git reads them.
    crate::refs::set_head(&dest, &head).map_err(|e| other(e.to_string()))?;
    let state = crate::refs::read_state(&dest).map_err(|e| other(e.to_string()))?;
    if state.refs != advertised {
        return Err(other("the copied refs differ from the advertised ones"));
    }
    make_durable(&dest)?;
    Ok(())
}

/// Fetches what the remote's refspecs and `options` ask for over `connection`, refs written
/// packed (as `git clone` writes them).
fn fetch_all<T>(
    connection: gix::remote::Connection<'_, '_, T>,
    authenticate: impl FnMut(Action) -> gix::credentials::protocol::Result,
    mut progress: gix::progress::prodash::tree::Item,
    options: gix::remote::ref_map::Options,
    interrupt: &AtomicBool,
) -> Result<gix::remote::fetch::Outcome, Failure>
where
    T: gix::protocol::transport::client::blocking_io::Transport,
{
    Ok(connection
        .with_credentials(authenticate)
        .prepare_fetch(progress.add_child("refs"), options)?
        .with_write_packed_refs_only(true)
        .receive(progress, interrupt)?)
}

/// Packs read-only, as git makes them; data, then directory entries, on disk before the
/// engine renames the copy into place.
fn make_durable(dest: &Path) -> io::Result<()> {
    let pack_dir = dest.join("objects").join("pack");
    for entry in std::fs::read_dir(&pack_dir)? {
        let path = entry?.path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
        std::fs::File::open(&path)?.sync_all()?;
    }
    for file in ["packed-refs", "HEAD", "config"] {
        let path = dest.join(file);
        if path.exists() {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    for dir in [pack_dir.as_path(), &dest.join("objects"), dest] {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the pack")]
    struct Outer(#[source] io::Error);

    #[test]
    fn a_timed_out_read_anywhere_in_the_chain_is_a_stall() {
        for kind in [io::ErrorKind::TimedOut, io::ErrorKind::WouldBlock] {
            let failure = Failure::from(Outer(io::Error::new(kind, "no data")));
            assert!(
                matches!(&failure, Failure::Stalled(t) if t == "reading the pack: no data"),
                "{kind:?}"
            );
        }
        let failure = Failure::from(Outer(io::Error::other("HTTP 500")));
        assert!(matches!(failure, Failure::Other(t) if t.contains("HTTP 500")));
    }

    #[test]
    fn progress_is_reported_in_git_terms() {
        let root = Root::new();
        let mut top = root.add_child("first copy");
        let indexing = top.add_child("indexing");
        indexing.init(Some(200), None);
        indexing.set(50);
        let other = top.add_child("read pack");
        other.init(Some(10), None);
        other.set(10);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let mut throttle = Throttle::new(Arc::new(move |p| s.lock().unwrap().push(p)));
        report_progress(&root, &mut throttle);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![Progress {
                phase: "receiving objects".into(),
                percent: 25
            }]
        );
        drop(indexing);
        let resolving = top.add_child("Resolving");
        resolving.init(Some(4), None);
        resolving.set(4);
        report_progress(&root, &mut throttle);
        assert_eq!(
            seen.lock().unwrap().last(),
            Some(&Progress {
                phase: "resolving deltas".into(),
                percent: 100
            })
        );
        drop(other);
    }
}
