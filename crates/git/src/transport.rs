//! How bytes move between the upstream and a local repository. The engine decides what to do
//! (snapshots, journal, no-op detection, HEAD); a [`Transport`] only lists, clones and fetches,
//! so another implementation can be swapped in per operation. The only one is [`GitCli`]: the
//! git command line, exact on every transport and the fastest for syncs (see
//! `shared/perf/git-engines.md`).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mirrorhub_core::{AddressPolicy, Credentials, Scheme, UpstreamUrl};
use tokio::time::Instant;

use crate::advert::{head_from_trace, AdvertisedHead};
use crate::command::{self, Finished, Invocation};
use crate::error::{classify_stderr, redact, GitError};
use crate::progress::ProgressFn;
use crate::proxy::{resolve_allowed, EgressProxy, ResolveError, Ticket};
use crate::refs::{is_mirrored, RefMap};
use crate::ssh::{self, SshAccess, SshFiles};

/// The refspecs of a mirror: branches and tags, force-updated. Nothing else (no pull-request
/// refs, notes, or remote-tracking refs).
pub(crate) const MIRROR_REFSPECS: [&str; 2] =
    ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];

/// One upstream, for the duration of one engine operation.
pub(crate) struct Remote<'a> {
    pub url: &'a UpstreamUrl,
    pub creds: Option<&'a Credentials>,
    /// How to log in to an `ssh://` upstream and which host keys to trust.
    pub ssh: Option<SshAccess<'a>>,
    /// When the whole operation must have finished.
    pub deadline: Instant,
    /// What the deadline came from, for the error message.
    pub timeout: Duration,
}

/// What the upstream advertises.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RemoteRefs {
    /// Branches and tags only.
    pub refs: RefMap,
    /// The target of the upstream's HEAD when it is a symbolic ref (`refs/heads/main`).
    pub head: Option<String>,
    /// Whether the upstream spoke git's smart protocol. git takes any web page for an empty
    /// "dumb" repository, so an empty listing from a server that did not is no proof of
    /// anything.
    pub smart: bool,
}

#[async_trait]
pub(crate) trait Transport: Send + Sync {
    /// Lists the upstream's branches, tags and HEAD. Writes nothing.
    async fn list(&self, remote: &Remote<'_>) -> Result<RemoteRefs, GitError>;

    /// Copies the upstream's branches and tags (and HEAD) into a new bare repository at `dest`,
    /// which must not exist.
    async fn clone_bare(
        &self,
        remote: &Remote<'_>,
        dest: &Path,
        progress: ProgressFn,
    ) -> Result<(), GitError>;

    /// Makes the branches and tags of `repo` equal to the upstream's, in one ref transaction:
    /// dropping the future (or a crash) leaves every ref either as it was or updated. With
    /// `keep_nonempty` (the number of branches and tags in `repo`), a fetch that would delete
    /// all of them and add nothing fails instead: an empty advertisement must be confirmed
    /// before the mirror is emptied. With `follow_head`, the upstream must have a HEAD (the
    /// fetch fails otherwise) and the answer says where it points.
    async fn fetch(
        &self,
        remote: &Remote<'_>,
        repo: &Path,
        progress: ProgressFn,
        options: FetchOptions,
    ) -> Result<Fetched, GitError>;
}

/// What may hold a fetch back, and what it should find out.
#[derive(Default)]
pub(crate) struct FetchOptions {
    /// When non-zero, refuse a ref transaction that deletes this many branches and tags (all of
    /// them) and creates or updates none.
    pub keep_nonempty: usize,
    /// Learn the upstream's HEAD from the fetch's own ref advertisement.
    pub follow_head: bool,
    /// Fetch exactly these refs (`refs/heads/x`, each to the same name, forced) and prune
    /// nothing, instead of every branch and tag with `--prune`: a mirror with a ref filter.
    pub only: Vec<String>,
}

/// What a fetch learned besides the objects and refs it brought.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// [`AdvertisedHead::NotSeen`] unless [`FetchOptions::follow_head`] asked.
    pub head: AdvertisedHead,
}

/// The `reference-transaction` hook that enforces [`FetchOptions::keep_nonempty`].
pub(crate) const KEEP_NONEMPTY_HOOK: &str = r#"#!/bin/sh
# mirrorhub: refuse a ref transaction that would delete every branch and tag and add nothing.
[ "$1" = prepared ] || exit 0
[ -n "$MIRRORHUB_KEEP_NONEMPTY" ] || exit 0
del=0
other=0
while read -r old new ref; do
    case "$ref" in refs/heads/*|refs/tags/*) ;; *) continue ;; esac
    case "$new" in *[!0]*) other=$((other + 1)) ;; *) del=$((del + 1)) ;; esac
done
if [ "$other" -eq 0 ] && [ "$del" -ge "$MIRRORHUB_KEEP_NONEMPTY" ]; then
    echo "mirrorhub: refusing to delete every branch and tag on an empty advertisement" >&2
    exit 1
fi
exit 0
"#;

/// The git command line, run with a hardened environment: no inherited configuration or
/// environment, no prompts, credentials only through a helper scoped to the upstream's origin,
/// every http(s) connection through the egress proxy and every git:// connection to an address
/// checked beforehand.
pub(crate) struct GitCli {
    pub program: PathBuf,
    pub policy: AddressPolicy,
    pub proxy: Arc<EgressProxy>,
    /// A private, empty directory tree: HOME, the template directory, the working directory of
    /// git runs that have no repository.
    pub private: PathBuf,
    pub probe_timeout: Duration,
    pub low_speed_limit: u32,
    pub low_speed_time: Duration,
    /// The OpenSSH client for ssh:// upstreams.
    pub ssh_program: PathBuf,
    /// How long an SSH connection outlives its last session (zero: not shared).
    pub ssh_connection_reuse: Duration,
    /// What each http(s) origin's listings learnt: their next listing is one request.
    pub http_capabilities: crate::listing::HttpCapabilities,
}

/// How to run one git process against a remote.
struct RunHow<'a> {
    /// The repository to run in (`GIT_DIR`), if any.
    git_dir: Option<&'a Path>,
    deadline: Instant,
    capture_stdout: bool,
    progress: Option<ProgressFn>,
    /// Written to git's stdin, which is then closed.
    stdin: Option<Vec<u8>>,
}

/// One ssh run's address, files (removed when dropped) and the name its host keys are pinned
/// under.
pub(crate) struct SshRun {
    pub(crate) addr: SocketAddr,
    pub(crate) files: SshFiles,
    alias: String,
}

/// A git run prepared for one remote: the URL to give git, its environment, and what to
/// redact from its output.
pub(crate) struct Prepared {
    pub(crate) url: String,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) secrets: Vec<String>,
    ticket: Option<Ticket>,
    /// The key and known_hosts files of an ssh run, removed when the run is over.
    _ssh_files: Option<SshFiles>,
}

impl GitCli {
    pub(crate) fn home(&self) -> PathBuf {
        self.private.join("home")
    }

    fn templates(&self) -> PathBuf {
        self.private.join("templates")
    }

    /// The environment every git process gets, before any remote-specific settings.
    fn base_env(
        &self,
        allow_protocols: &str,
        config: &[(String, String)],
    ) -> Vec<(OsString, OsString)> {
        let mut path = OsString::new();
        if let Some(dir) = self.program.parent().filter(|d| d.is_absolute()) {
            path.push(dir.as_os_str());
            path.push(":");
        }
        path.push("/usr/local/bin:/usr/bin:/bin");
        let home = self.home();
        let mut env: Vec<(OsString, OsString)> = vec![
            ("PATH".into(), path),
            ("HOME".into(), home.clone().into()),
            ("XDG_CONFIG_HOME".into(), home.join(".config").into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("GIT_ASKPASS".into(), "/bin/false".into()),
            ("SSH_ASKPASS".into(), "/bin/false".into()),
            ("GIT_ALLOW_PROTOCOL".into(), allow_protocols.into()),
            (
                "GIT_CEILING_DIRECTORIES".into(),
                self.private.clone().into(),
            ),
            ("GIT_NO_REPLACE_OBJECTS".into(), "1".into()),
            ("LC_ALL".into(), "C".into()),
            ("LANG".into(), "C".into()),
        ];
        let mut all: Vec<(String, String)> = vec![
            ("protocol.version".into(), "2".into()),
            ("core.hooksPath".into(), "/dev/null".into()),
            (
                "init.templateDir".into(),
                self.templates().to_string_lossy().into_owned(),
            ),
            ("gc.auto".into(), "0".into()),
            ("maintenance.auto".into(), "false".into()),
            ("fetch.recurseSubmodules".into(), "false".into()),
            ("submodule.recurse".into(), "false".into()),
            ("advice.fetchShowForcedUpdates".into(), "false".into()),
            ("transfer.credentialsInUrl".into(), "die".into()),
        ];
        all.extend_from_slice(config);
        env.push(("GIT_CONFIG_COUNT".into(), all.len().to_string().into()));
        for (i, (k, v)) in all.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}").into(), k.into()));
            env.push((format!("GIT_CONFIG_VALUE_{i}").into(), v.into()));
        }
        env
    }

    /// Environment for a local-only git run (no network). The hub's own refs (backups of
    /// overwritten tips) are hidden from every client it serves and cannot be pushed to.
    pub(crate) fn local_env(&self) -> Vec<(OsString, OsString)> {
        self.base_env(
            "",
            &[(
                "transfer.hideRefs".to_owned(),
                crate::backup::HIDDEN_NAMESPACE.to_owned(),
            )],
        )
    }

    pub(crate) fn hooks(&self) -> PathBuf {
        self.private.join("hooks")
    }

    pub(crate) async fn prepare(
        &self,
        remote: &Remote<'_>,
        extra_config: &[(String, String)],
    ) -> Result<Prepared, GitError> {
        ensure_private_dirs(&self.private)?;
        let url = remote.url;
        let mut config: Vec<(String, String)> = extra_config.to_vec();
        let mut secrets = Vec::new();
        let mut extra_env: Vec<(OsString, OsString)> = Vec::new();
        let mut ssh_files = None;
        let (git_url, ticket, protocols) = match url.scheme() {
            Scheme::Ssh => {
                let run = self.ssh_run(remote).await?;
                extra_env.push((
                    "GIT_SSH_COMMAND".into(),
                    ssh::ssh_command(&self.ssh_program, &self.ssh_options(&run)).into(),
                ));
                extra_env.push(("GIT_SSH_VARIANT".into(), "ssh".into()));
                let git_url = url.with_host(&run.addr.ip().to_string()).to_string();
                ssh_files = Some(run.files);
                (git_url, None, "ssh")
            }
            Scheme::Git => {
                // git:// has no proxy support worth the name: resolve and check here, and give
                // git the checked address so it cannot resolve anything else.
                let addr = self.pin_git_address(remote).await?;
                (
                    url.with_host(&addr.ip().to_string()).to_string(),
                    None,
                    "git",
                )
            }
            scheme @ (Scheme::Http | Scheme::Https) => {
                let ticket = self.proxy.ticket();
                secrets.push(ticket.token().to_owned());
                config.extend(self.http_config(&ticket));
                // No helper from anywhere else, and ours only for the upstream's own origin: a
                // redirect to another host never gets the credentials.
                config.push(("credential.helper".into(), String::new()));
                config.push(("credential.interactive".into(), "false".into()));
                if let Some(creds) = remote.creds {
                    let origin = format!("{}://{}", scheme.as_str(), url.authority());
                    config.push((
                        format!("credential.{origin}.helper"),
                        "!f() { test \"$1\" = get || return 0; printf 'username=%s\\npassword=%s\\n' \
                         \"$MIRRORHUB_GIT_USERNAME\" \"$MIRRORHUB_GIT_PASSWORD\"; }; f"
                            .into(),
                    ));
                    extra_env.push((
                        "MIRRORHUB_GIT_USERNAME".into(),
                        creds.username.clone().into(),
                    ));
                    extra_env.push((
                        "MIRRORHUB_GIT_PASSWORD".into(),
                        creds.expose_secret().into(),
                    ));
                    secrets.push(creds.expose_secret().to_owned());
                }
                let protocols = if scheme == Scheme::Https {
                    "https"
                } else {
                    "http:https"
                };
                (url.to_string(), Some(ticket), protocols)
            }
        };
        let mut env = self.base_env(protocols, &config);
        env.extend(extra_env);
        Ok(Prepared {
            url: git_url,
            env,
            secrets,
            ticket,
            _ssh_files: ssh_files,
        })
    }

    /// Everything one ssh run to `remote` needs: the address resolved and checked here (ssh
    /// dials it and checks the pinned keys under the URL's host name), the run's key and
    /// known_hosts files. The caller has made the private directories
    /// ([`ensure_private_dirs`]).
    pub(crate) async fn ssh_run(&self, remote: &Remote<'_>) -> Result<SshRun, GitError> {
        let addr = self.pin_git_address(remote).await?;
        let access = remote.ssh.unwrap_or(SshAccess {
            key: None,
            known_hosts: &[],
        });
        if access.known_hosts.is_empty() {
            return Err(GitError::failed(
                "no host key is pinned for this SSH upstream: give its known_hosts",
            ));
        }
        let alias = ssh::host_alias(remote.url);
        let files = ssh::write_files(
            &self.private.join("ssh"),
            &access,
            &alias,
            &ssh::login(remote.url, addr),
        )?;
        Ok(SshRun { addr, files, alias })
    }

    /// ssh's options for `run` (before the destination and the remote command).
    pub(crate) fn ssh_options(&self, run: &SshRun) -> Vec<String> {
        ssh::ssh_options(
            &run.files,
            &run.alias,
            self.probe_timeout,
            self.ssh_connection_reuse,
        )
    }

    /// Resolves a git:// upstream's host and returns the address to connect to, checked against
    /// the policy.
    pub(crate) async fn pin_git_address(
        &self,
        remote: &Remote<'_>,
    ) -> Result<SocketAddr, GitError> {
        let url = remote.url;
        let timeout = self
            .probe_timeout
            .min(remote.deadline.saturating_duration_since(Instant::now()));
        let addrs = resolve_allowed(&self.policy, url.host(), url.port(), timeout)
            .await
            .map_err(|e| match e {
                ResolveError::Refused(r) => GitError::from(r),
                ResolveError::Unresolvable(detail) => GitError::Unreachable { detail },
            })?;
        Ok(pick_address(&addrs))
    }

    /// How a client reaches an http(s) upstream: through the egress proxy under `ticket`,
    /// following only the first request's redirects, with the low-speed limit. git's own
    /// configuration keys, which gix reads too.
    pub(crate) fn http_config(&self, ticket: &Ticket) -> Vec<(String, String)> {
        let mut config = vec![
            ("http.proxy".to_owned(), ticket.proxy_url().to_owned()),
            ("http.proxyAuthMethod".to_owned(), "basic".to_owned()),
            ("http.followRedirects".to_owned(), "initial".to_owned()),
        ];
        if self.low_speed_limit > 0 {
            config.push((
                "http.lowSpeedLimit".to_owned(),
                self.low_speed_limit.to_string(),
            ));
            config.push((
                "http.lowSpeedTime".to_owned(),
                self.low_speed_time.as_secs().max(1).to_string(),
            ));
        }
        config
    }

    /// Points git's trace `variable` at a new file in the private trace directory, and returns
    /// the file (the caller reads and removes it).
    fn trace_into(&self, prepared: &mut Prepared, variable: &str, extension: &str) -> PathBuf {
        let file = self
            .private
            .join("trace")
            .join(format!("{}.{extension}", random_hex(8)));
        prepared
            .env
            .push((variable.into(), file.clone().into_os_string()));
        file
    }

    async fn run_remote(
        &self,
        remote: &Remote<'_>,
        prepared: &Prepared,
        args: Vec<OsString>,
        how: RunHow<'_>,
    ) -> Result<Finished, GitError> {
        let RunHow {
            git_dir,
            deadline,
            capture_stdout,
            progress,
            stdin,
        } = how;
        let mut env = prepared.env.clone();
        let cwd = match git_dir {
            Some(dir) => {
                env.push(("GIT_DIR".into(), dir.into()));
                dir.to_path_buf()
            }
            None => self.home(),
        };
        let inv = Invocation {
            program: self.program.clone(),
            args,
            env,
            cwd,
            stdout_cap: capture_stdout.then_some(command::STDOUT_MAX),
            stdin,
        };
        let finished = command::run(inv, deadline, progress).await?;
        if finished.success {
            return Ok(finished);
        }
        match self.failure(remote, prepared, &finished, deadline) {
            GitError::HostKeyMismatch {
                host,
                expected,
                seen: None,
            } => {
                // ssh names the key it was sent only when it had one of that type pinned:
                // ask the server for the others.
                let seen = match self.scan_host_keys(remote).await {
                    Ok(keys) => keys
                        .iter()
                        .map(mirrorhub_core::HostKey::fingerprint)
                        .find(|f| !expected.contains(f)),
                    Err(_) => None,
                };
                Err(GitError::HostKeyMismatch {
                    host,
                    expected,
                    seen,
                })
            }
            e => Err(e),
        }
    }

    /// The host keys the SSH server at `remote` offers, read with `ssh-keyscan` from the
    /// address the policy allows (never through the machine's known_hosts).
    pub(crate) async fn scan_host_keys(
        &self,
        remote: &Remote<'_>,
    ) -> Result<Vec<mirrorhub_core::HostKey>, GitError> {
        ensure_private_dirs(&self.private)?;
        let addr = self.pin_git_address(remote).await?;
        let timeout = self
            .probe_timeout
            .min(remote.deadline.saturating_duration_since(Instant::now()));
        let inv = Invocation {
            program: ssh::keyscan_program(&self.ssh_program),
            args: vec![
                "-T".into(),
                timeout.as_secs().max(1).to_string().into(),
                "-p".into(),
                addr.port().to_string().into(),
                addr.ip().to_string().into(),
            ],
            env: self.local_env(),
            cwd: self.home(),
            stdout_cap: Some(command::STDOUT_MAX),
            stdin: None,
        };
        let finished =
            command::run(inv, Instant::now() + timeout + Duration::from_secs(5), None).await?;
        let keys = ssh::parse_keyscan(&finished.stdout);
        if keys.is_empty() {
            return Err(GitError::Unreachable {
                detail: format!(
                    "no SSH server answered at {} ({addr}) with a host key",
                    remote.url.known_hosts_name()
                ),
            });
        }
        Ok(keys)
    }

    pub(crate) fn failure(
        &self,
        remote: &Remote<'_>,
        prepared: &Prepared,
        finished: &Finished,
        deadline: Instant,
    ) -> GitError {
        let log = prepared
            .ticket
            .as_ref()
            .map(Ticket::log)
            .unwrap_or_default();
        if let Some(r) = log.refused {
            return r.into();
        }
        if finished.timed_out {
            let after = if deadline < remote.deadline {
                self.probe_timeout
            } else {
                remote.timeout
            };
            return GitError::Timeout { after };
        }
        let secrets: Vec<&str> = prepared.secrets.iter().map(String::as_str).collect();
        let stderr = redact(&finished.stderr_tail, &secrets);
        tracing::debug!(url = %remote.url, stderr = %stderr, "git failed");
        if remote.url.scheme() == Scheme::Ssh {
            let pinned = remote.ssh.map_or(&[][..], |a| a.known_hosts);
            if let Some(e) = ssh::classify(&stderr, remote.url, pinned) {
                return e;
            }
        }
        if let Some(detail) = log.unreachable {
            return GitError::Unreachable {
                detail: redact(&detail, &secrets),
            };
        }
        classify_stderr(&stderr, self.low_speed_time)
    }

    /// `git ls-remote --symref`, unfiltered: ls-remote cannot ask for HEAD and a ref prefix at
    /// once, and HEAD's symref is needed to follow the default branch.
    async fn ls_remote(&self, remote: &Remote<'_>, trace: bool) -> Result<RemoteRefs, GitError> {
        // Over HTTP, protocol v0 lists every ref (with HEAD's target) in the one GET of
        // info/refs; v2 needs a second request (ls-refs) for the same unfiltered listing. The
        // traced listing stays on v2: only its handshake records a negotiated version.
        let over_http = matches!(remote.url.scheme(), Scheme::Http | Scheme::Https);
        let config = if over_http && !trace {
            vec![("protocol.version".to_owned(), "0".to_owned())]
        } else {
            Vec::new()
        };
        let mut prepared = self.prepare(remote, &config).await?;
        let args = vec![
            "ls-remote".into(),
            "--symref".into(),
            "--".into(),
            prepared.url.clone().into(),
        ];
        let deadline = remote.deadline.min(Instant::now() + self.probe_timeout);
        let trace_file = trace.then(|| self.trace_into(&mut prepared, "GIT_TRACE2_EVENT", "json"));
        let how = RunHow {
            git_dir: None,
            deadline,
            capture_stdout: true,
            progress: None,
            stdin: None,
        };
        let result = self.run_remote(remote, &prepared, args, how).await;
        let mut negotiated = false;
        if let Some(file) = &trace_file {
            let text = tokio::fs::read_to_string(file).await.unwrap_or_default();
            negotiated = text.contains(r#""key":"negotiated-version""#);
            let _ = tokio::fs::remove_file(file).await;
        }
        let mut listed = parse_listing(&result?.stdout)?;
        listed.smart = !listed.refs.is_empty() || negotiated;
        Ok(listed)
    }

    /// Deletes refs of a local repository in one transaction, each only if it still has the
    /// given value.
    pub(crate) async fn delete_refs(
        &self,
        repo: &Path,
        refs: &[(String, String)],
    ) -> Result<(), GitError> {
        let mut input = String::new();
        for (name, old) in refs {
            input.push_str(&format!("delete {name} {old}\n"));
        }
        let mut env = self.local_env();
        env.push(("GIT_DIR".into(), repo.into()));
        let inv = Invocation {
            program: self.program.clone(),
            args: vec!["update-ref".into(), "--stdin".into()],
            env,
            cwd: repo.to_path_buf(),
            stdout_cap: None,
            stdin: Some(input.into_bytes()),
        };
        let finished = command::run(inv, Instant::now() + Duration::from_secs(60), None).await?;
        if finished.success {
            Ok(())
        } else {
            Err(GitError::failed(format!(
                "deleting refs in the mirror: {}",
                crate::error::summarize(&finished.stderr_tail)
            )))
        }
    }

    /// `git --version`, to fail early and clearly when git is missing.
    pub(crate) async fn version(&self) -> Result<String, GitError> {
        let inv = Invocation {
            program: self.program.clone(),
            args: vec!["--version".into()],
            env: self.local_env(),
            cwd: self.home(),
            stdout_cap: Some(command::STDOUT_MAX),
            stdin: None,
        };
        let finished = command::run(inv, Instant::now() + Duration::from_secs(30), None).await?;
        if !finished.success {
            return Err(GitError::failed(format!(
                "{} --version failed: {}",
                self.program.display(),
                crate::error::summarize(&finished.stderr_tail)
            )));
        }
        Ok(String::from_utf8_lossy(&finished.stdout).trim().to_owned())
    }
}

/// Creates (or re-creates, should a temp cleaner have removed them) the private directories
/// git runs with, and the guard hook.
pub(crate) fn ensure_private_dirs(private: &Path) -> std::io::Result<()> {
    for dir in ["home", "templates", "trace", "hooks"] {
        std::fs::create_dir_all(private.join(dir))?;
    }
    let hook = private.join("hooks").join("reference-transaction");
    if !hook.is_file() {
        std::fs::write(&hook, KEEP_NONEMPTY_HOOK)?;
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    Ok(())
}

pub(crate) fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// HEAD's advertisement from a fetch's packet trace. Only the start of the trace is read: the
/// advertisement comes first (HEAD leads it), and an old server's v0 advertisement of a
/// repository with very many refs can make the whole trace large.
async fn read_trace_head(file: &Path) -> AdvertisedHead {
    use tokio::io::AsyncReadExt;
    const MAX: u64 = 4 * 1024 * 1024;
    let Ok(trace) = tokio::fs::File::open(file).await else {
        return AdvertisedHead::NotSeen;
    };
    let mut bytes = Vec::new();
    if trace.take(MAX).read_to_end(&mut bytes).await.is_err() {
        return AdvertisedHead::NotSeen;
    }
    if bytes.len() as u64 == MAX {
        // Cut: the last line may be incomplete.
        let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(end);
    }
    head_from_trace(&String::from_utf8_lossy(&bytes))
}

/// IPv4 first: a host's IPv6 address is more often unroutable from a server than its IPv4 one.
fn pick_address(addrs: &[SocketAddr]) -> SocketAddr {
    *addrs.iter().find(|a| a.is_ipv4()).unwrap_or(&addrs[0])
}

/// Parses `git ls-remote --symref` output.
pub(crate) fn parse_listing(stdout: &[u8]) -> Result<RemoteRefs, GitError> {
    let text = std::str::from_utf8(stdout)
        .map_err(|_| GitError::failed("git ls-remote printed non-UTF-8 ref names"))?;
    let mut out = RemoteRefs::default();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("ref: ") {
            if let Some((target, "HEAD")) = rest.split_once('\t') {
                out.head = Some(target.to_owned());
            }
            continue;
        }
        let Some((oid, name)) = line.split_once('\t') else {
            return Err(GitError::failed(format!(
                "unexpected line from git ls-remote: {line:?}"
            )));
        };
        if !(oid.len() == 40 || oid.len() == 64) || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(GitError::failed(format!(
                "unexpected object id from git ls-remote: {oid:?}"
            )));
        }
        if is_mirrored(name) && !name.ends_with("^{}") {
            out.refs.insert(name.to_owned(), oid.to_ascii_lowercase());
        }
    }
    Ok(out)
}

#[async_trait]
impl Transport for GitCli {
    async fn list(&self, remote: &Remote<'_>) -> Result<RemoteRefs, GitError> {
        let listed = self.ls_remote(remote, false).await?;
        if !listed.refs.is_empty() {
            return Ok(listed);
        }
        // Nothing listed: an empty repository, or a web page git took for an empty "dumb"
        // one. Ask again, with trace2's documented event stream, which records whether a
        // protocol version was negotiated (only the smart protocol does).
        self.ls_remote(remote, true).await
    }

    async fn clone_bare(
        &self,
        remote: &Remote<'_>,
        dest: &Path,
        progress: ProgressFn,
    ) -> Result<(), GitError> {
        let prepared = self.prepare(remote, &[]).await?;
        // `clone --bare` takes exactly branches and tags (HEAD from the upstream's symref) and
        // skips the connectivity walk when the pack is self-contained: faster than init + fetch.
        let args = vec![
            "clone".into(),
            "--bare".into(),
            "--progress".into(),
            "--no-recurse-submodules".into(),
            "--".into(),
            prepared.url.clone().into(),
            dest.into(),
        ];
        let how = RunHow {
            git_dir: None,
            deadline: remote.deadline,
            capture_stdout: false,
            progress: Some(progress),
            stdin: None,
        };
        self.run_remote(remote, &prepared, args, how).await?;
        Ok(())
    }

    async fn fetch(
        &self,
        remote: &Remote<'_>,
        repo: &Path,
        progress: ProgressFn,
        options: FetchOptions,
    ) -> Result<Fetched, GitError> {
        let mut extra = Vec::new();
        if options.keep_nonempty > 0 {
            extra.push((
                "core.hooksPath".to_owned(),
                self.hooks().to_string_lossy().into_owned(),
            ));
        }
        let mut prepared = self.prepare(remote, &extra).await?;
        if options.keep_nonempty > 0 {
            prepared.env.push((
                "MIRRORHUB_KEEP_NONEMPTY".into(),
                options.keep_nonempty.to_string().into(),
            ));
        }
        let filtered = !options.only.is_empty();
        let mut args: Vec<OsString> = [
            "fetch",
            if filtered { "--stdin" } else { "--prune" },
            "--atomic",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-auto-gc",
            "--no-auto-maintenance",
            "--no-show-forced-updates",
            "--no-recurse-submodules",
            "--progress",
            "--",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        args.push(prepared.url.clone().into());
        // A filtered mirror names its refs on stdin (there may be many), each forced to the
        // same name; `--prune` would not know the refs the filter leaves out.
        let stdin = filtered.then(|| {
            let mut list = String::new();
            for name in &options.only {
                list.push_str(&format!("+{name}:{name}\n"));
            }
            list.into_bytes()
        });
        if !filtered {
            args.extend(MIRROR_REFSPECS.iter().map(OsString::from));
        }
        // HEAD as a refspec without a destination stores nothing, but puts HEAD (with its
        // symref target) into the advertisement the trace records. (A detached upstream HEAD
        // on a commit no branch holds would bring that commit along, unreferenced.)
        let trace_file = options.follow_head.then(|| {
            args.push("HEAD".into());
            self.trace_into(&mut prepared, "GIT_TRACE_PACKET", "packets")
        });
        let how = RunHow {
            git_dir: Some(repo),
            deadline: remote.deadline,
            capture_stdout: false,
            progress: Some(progress),
            stdin,
        };
        let result = self.run_remote(remote, &prepared, args, how).await;
        let head = match &trace_file {
            Some(file) => {
                let head = read_trace_head(file).await;
                let _ = tokio::fs::remove_file(file).await;
                head
            }
            None => AdvertisedHead::NotSeen,
        };
        result?;
        Ok(Fetched { head })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ls_remote_output() {
        let out = b"ref: refs/heads/main\tHEAD\n\
            1111111111111111111111111111111111111111\tHEAD\n\
            1111111111111111111111111111111111111111\trefs/heads/main\n\
            2222222222222222222222222222222222222222\trefs/pull/1/head\n\
            3333333333333333333333333333333333333333\trefs/tags/v1\n\
            1111111111111111111111111111111111111111\trefs/tags/v1^{}\n\
            ref: refs/heads/main\trefs/heads/alias\n\
            1111111111111111111111111111111111111111\trefs/heads/alias\n";
        let r = parse_listing(out).unwrap();
        assert_eq!(r.head.as_deref(), Some("refs/heads/main"));
        let names: Vec<&str> = r.refs.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["refs/heads/alias", "refs/heads/main", "refs/tags/v1"]
        );
        assert_eq!(
            r.refs["refs/tags/v1"],
            "3333333333333333333333333333333333333333"
        );
        assert!(parse_listing(b"garbage\n").is_err());
        assert_eq!(parse_listing(b"").unwrap(), RemoteRefs::default());
    }
}
