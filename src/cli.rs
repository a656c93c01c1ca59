//! `mirrorhub repo …`: a client of a running hub's REST API, for people and scripts.

use std::io::Read;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

#[derive(Args, Clone)]
pub struct HubArgs {
    /// The hub's base URL.
    #[arg(long, env = "MIRRORHUB_URL", default_value = "http://127.0.0.1:8080")]
    hub: String,
    /// A personal access token (or the hub's admin token).
    #[arg(long, env = "MIRRORHUB_TOKEN", hide_env_values = true)]
    token: Option<SecretString>,
    /// Print the API's JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

// Parsed once per run: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum RepoCommand {
    /// Mirror or migrate a repository from a Git server.
    Create {
        /// The Git server address (http://, https://, git://, ssh:// or user@host:path).
        url: String,
        /// `owner/name` on the hub; the name defaults to the URL's last segment.
        #[arg(long = "as", value_name = "OWNER[/NAME]")]
        target: String,
        /// `mirror` (keep following the upstream) or `migrate` (copy once, then the hub is primary).
        #[arg(long, default_value = "mirror")]
        mode: String,
        /// Username for the upstream.
        #[arg(long)]
        username: Option<String>,
        /// Read the upstream token or password from standard input (never give it as an argument).
        #[arg(long)]
        token_stdin: bool,
        /// `public` or `private`.
        #[arg(long)]
        visibility: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// e.g. 24h, 90m.
        #[arg(long)]
        interval: Option<String>,
        /// SSH upstreams: connect with this deploy key (`mirrorhub ssh-key create`).
        #[arg(long, value_name = "ID")]
        ssh_key: Option<i64>,
        /// SSH upstreams: store this OpenSSH private key file for the repository instead
        /// (a passphrase, if it has one, from MIRRORHUB_SSH_KEY_PASSPHRASE).
        #[arg(long, value_name = "FILE", conflicts_with = "ssh_key")]
        ssh_private_key_file: Option<std::path::PathBuf>,
        /// SSH upstreams: pin the host keys in this known_hosts file (`-`: standard input).
        /// Without it, the keys the server shows now are pinned and printed.
        #[arg(long, value_name = "FILE")]
        known_hosts: Option<std::path::PathBuf>,
        /// Mirror only the branches and tags matching this pattern (repeat it; a name,
        /// `release/*`, `refs/tags/v*` or `re:REGEX`).
        #[arg(long, value_name = "PATTERN")]
        include: Vec<String>,
        /// Leave out the branches and tags matching this pattern (repeat it).
        #[arg(long, value_name = "PATTERN")]
        exclude: Vec<String>,
        /// Wait until the initial copy is done and print the result.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show a mirror's ref filter, or set it with --include/--exclude (replacing it) or --all.
    Refs {
        /// owner/name
        repo: String,
        #[arg(long, value_name = "PATTERN")]
        include: Vec<String>,
        #[arg(long, value_name = "PATTERN")]
        exclude: Vec<String>,
        /// Mirror every branch and tag again.
        #[arg(long, conflicts_with_all = ["include", "exclude"])]
        all: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List the backups of branches and tags that syncs overwrote or deleted.
    Backups {
        /// owner/name
        repo: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Restore a backup as a new branch (primaries only; a mirror: `repo bundle`).
    Restore {
        /// owner/name
        repo: String,
        /// The backup's id (`repo backups`).
        id: i64,
        /// The new branch's name (default `restored/<name>-<time>`).
        #[arg(long)]
        branch: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Download a backup as a git bundle.
    Bundle {
        /// owner/name
        repo: String,
        /// The backup's id (`repo backups`).
        id: i64,
        /// Where to write it.
        #[arg(long, short, value_name = "FILE", default_value = "backup.bundle")]
        output: std::path::PathBuf,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show an SSH mirror's pinned host keys, or accept new ones (after `host_key_mismatch`:
    /// check the new fingerprints with the server's administrator first).
    HostKeys {
        /// owner/name
        repo: String,
        /// Pin the host keys in this known_hosts file instead (`-`: standard input); resumes
        /// a mirror paused for a changed host key.
        #[arg(long, value_name = "FILE")]
        accept: Option<std::path::PathBuf>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List repositories with their status (cloning, syncing, synced, stale, failed, paused).
    List {
        /// Only repositories with one of these statuses, e.g. `failed,paused`.
        #[arg(long, value_name = "STATUS[,STATUS...]")]
        status: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show a repository's status.
    Show {
        /// owner/name
        repo: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Sync a mirror now.
    Sync {
        /// owner/name
        repo: String,
        /// Wait until the sync is done and print its ref changes.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show the sync history and ref changes.
    Syncs {
        /// owner/name
        repo: String,
        #[arg(long, default_value_t = 10)]
        limit: i64,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Promote a mirror to primary: a final sync, a check that every branch and tag equals the
    /// upstream's, then the hub is the primary and never syncs it again.
    Promote {
        /// owner/name
        repo: String,
        /// Promote now, without a final sync: for an upstream that is gone.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Push mirrors: downstream servers the repository is pushed to after every change.
    #[command(subcommand, name = "push-mirror")]
    PushMirror(crate::push_mirror_cli::PushMirrorCommand),
    /// Delete a repository and its copy on the hub.
    Delete {
        /// owner/name
        repo: String,
        #[command(flatten)]
        hub: HubArgs,
    },
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<SecretString>,
    /// A user name and password, used instead of the token when set.
    password: Option<(String, SecretString)>,
}

impl Client {
    pub fn new(args: &HubArgs) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Self {
            http,
            base: args.hub.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
            password: None,
        })
    }

    /// Signs in with a user name and password (HTTP basic) instead of a token.
    pub fn with_password(self, username: String, password: SecretString) -> Self {
        Self {
            password: Some((username, password)),
            ..self
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Option<Value>> {
        let req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        let mut req = match (&self.password, &self.token) {
            (Some((user, password)), _) => req.basic_auth(user, Some(password.expose_secret())),
            (None, Some(token)) => req.bearer_auth(token.expose_secret()),
            (None, None) => anyhow::bail!(
                "no API token: set MIRRORHUB_TOKEN (or pass --token) to your personal access token or the hub's admin token"
            ),
        };
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("could not reach the hub at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(if text.is_empty() {
                None
            } else {
                Some(serde_json::from_str(&text).context("the hub answered with invalid JSON")?)
            });
        }
        let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = parsed["error"]["code"].as_str().unwrap_or("error");
        let message = parsed["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {status}"));
        anyhow::bail!("{code}: {message}")
    }
}

impl Client {
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .call(reqwest::Method::GET, path, None)
            .await?
            .unwrap_or_default())
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        Ok(self
            .call(reqwest::Method::POST, path, Some(body))
            .await?
            .unwrap_or_default())
    }

    /// A response body as bytes (a download).
    pub async fn download(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let req = self
            .http
            .get(format!("{}/api/v1{path}", self.base))
            .timeout(Duration::from_secs(3600));
        let req = match (&self.password, &self.token) {
            (Some((user, password)), _) => req.basic_auth(user, Some(password.expose_secret())),
            (None, Some(token)) => req.bearer_auth(token.expose_secret()),
            (None, None) => anyhow::bail!("no API token: set MIRRORHUB_TOKEN (or pass --token)"),
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("could not reach the hub at {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let parsed: Value =
                serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or_default();
            anyhow::bail!(
                "{}: {}",
                parsed["error"]["code"].as_str().unwrap_or("error"),
                parsed["error"]["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("HTTP {status}"))
            );
        }
        Ok(resp.bytes().await?.to_vec())
    }

    /// The newest `limit` sync runs of `repo` (owner/name).
    async fn runs(&self, repo: &str, limit: i64) -> anyhow::Result<Value> {
        self.get(&format!("/repos/{repo}/syncs?limit={limit}"))
            .await
    }
}

/// A secret read from standard input (one line; the newline is not part of it).
pub fn read_stdin_secret(what: &str) -> anyhow::Result<SecretString> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("could not read {what} from standard input"))?;
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// A file's text, or standard input's for `-`.
pub(crate) fn read_text(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .with_context(|| format!("could not read {what} from standard input"))?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("could not read {what} from {}", path.display()))
}

pub(crate) fn split_repo(repo: &str) -> anyhow::Result<(&str, &str)> {
    repo.split_once('/')
        .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| anyhow::anyhow!("write the repository as owner/name, e.g. team/project"))
}

pub async fn run(cmd: RepoCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        RepoCommand::Create {
            url,
            target,
            mode,
            username,
            token_stdin,
            visibility,
            description,
            interval,
            ssh_key,
            ssh_private_key_file,
            known_hosts,
            include,
            exclude,
            wait,
            hub,
        } => {
            let client = Client::new(&hub)?;
            let (owner, name) = match target.split_once('/') {
                Some((o, n)) => (o.to_owned(), Some(n.to_owned())),
                None => (target.clone(), None),
            };
            let token = if token_stdin {
                Some(read_stdin_secret("the token")?.expose_secret().to_owned())
            } else {
                std::env::var("MIRRORHUB_UPSTREAM_TOKEN").ok()
            };
            let ssh_private_key = ssh_private_key_file
                .as_deref()
                .map(|path| read_text(path, "the private key"))
                .transpose()?;
            let ssh_key_passphrase = ssh_private_key
                .as_ref()
                .and_then(|_| std::env::var("MIRRORHUB_SSH_KEY_PASSPHRASE").ok());
            let known_hosts = known_hosts
                .as_deref()
                .map(|path| read_text(path, "the known_hosts file"))
                .transpose()?;
            let body = json!({
                "url": url, "owner": owner, "name": name, "mode": mode, "username": username, "token": token,
                "visibility": visibility, "description": description, "sync_interval": interval,
                "ssh_key_id": ssh_key, "ssh_private_key": ssh_private_key,
                "ssh_key_passphrase": ssh_key_passphrase, "known_hosts": known_hosts,
                "refs": crate::fidelity_cli::filter_body(&include, &exclude),
            });
            let repo = client
                .call(reqwest::Method::POST, "/repos", Some(body))
                .await?
                .unwrap_or_default();
            let full = format!(
                "{}/{}",
                repo["owner"].as_str().unwrap_or_default(),
                repo["name"].as_str().unwrap_or_default()
            );
            if wait {
                let repo = wait_until_done(&client, &full, None).await?;
                return print_repo(&repo, hub.json);
            }
            print_repo(&repo, hub.json)
        }
        RepoCommand::Refs {
            repo,
            include,
            exclude,
            all,
            hub,
        } => crate::fidelity_cli::refs(&repo, &include, &exclude, all, &hub).await,
        RepoCommand::Backups { repo, hub } => crate::fidelity_cli::backups(&repo, &hub).await,
        RepoCommand::Restore {
            repo,
            id,
            branch,
            hub,
        } => crate::fidelity_cli::restore(&repo, id, branch, &hub).await,
        RepoCommand::Bundle {
            repo,
            id,
            output,
            hub,
        } => crate::fidelity_cli::bundle(&repo, id, &output, &hub).await,
        RepoCommand::HostKeys { repo, accept, hub } => {
            let (owner, name) = split_repo(&repo)?;
            let client = Client::new(&hub)?;
            let r = match accept {
                Some(path) => {
                    let known_hosts = read_text(&path, "the known_hosts file")?;
                    client
                        .call(
                            reqwest::Method::PATCH,
                            &format!("/repos/{owner}/{name}"),
                            Some(json!({"known_hosts": known_hosts})),
                        )
                        .await?
                        .unwrap_or_default()
                }
                None => client.get(&format!("/repos/{owner}/{name}")).await?,
            };
            if hub.json {
                println!("{}", serde_json::to_string_pretty(&r["host_keys"])?);
            } else {
                crate::ssh_cli::print_host_keys(&r["host_keys"]);
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        RepoCommand::List { status, hub } => {
            let client = Client::new(&hub)?;
            let path = match status {
                Some(words) => format!(
                    "/repos?{}",
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("status", &words)
                        .finish()
                ),
                None => "/repos".to_owned(),
            };
            let repos = client.get(&path).await?;
            if hub.json {
                println!("{}", serde_json::to_string_pretty(&repos)?);
            } else {
                for r in repos.as_array().into_iter().flatten() {
                    println!(
                        "{}/{}\t{}\t{}\t{}",
                        r["owner"].as_str().unwrap_or_default(),
                        r["name"].as_str().unwrap_or_default(),
                        r["mode"].as_str().unwrap_or_default(),
                        r["status"].as_str().unwrap_or_default(),
                        r["upstream_url"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        RepoCommand::Show { repo, hub } => {
            let (owner, name) = split_repo(&repo)?;
            let client = Client::new(&hub)?;
            let r = client.get(&format!("/repos/{owner}/{name}")).await?;
            print_repo(&r, hub.json)
        }
        RepoCommand::Sync { repo, wait, hub } => {
            let (owner, name) = split_repo(&repo)?;
            let client = Client::new(&hub)?;
            let before = latest_run_id(&client, &repo).await?;
            client
                .call(
                    reqwest::Method::POST,
                    &format!("/repos/{owner}/{name}/sync"),
                    None,
                )
                .await?;
            if !wait {
                eprintln!("sync of {repo} queued");
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let r = wait_until_done(&client, &repo, before).await?;
            let runs = client.runs(&repo, 1).await?;
            print_runs(&runs, hub.json)?;
            Ok(if r["last_error"].is_null() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        RepoCommand::Syncs { repo, limit, hub } => {
            split_repo(&repo)?;
            let client = Client::new(&hub)?;
            let runs = client.runs(&repo, limit).await?;
            print_runs(&runs, hub.json)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        RepoCommand::Promote { repo, force, hub } => {
            let (owner, name) = split_repo(&repo)?;
            let client = Client::new(&hub)?;
            let before = latest_run_id(&client, &repo).await?;
            client
                .call(
                    reqwest::Method::POST,
                    &format!("/repos/{owner}/{name}/promote?force={force}"),
                    None,
                )
                .await?;
            if !force {
                eprintln!("{repo}: final sync queued; waiting for the promotion");
                wait_until_done(&client, &repo, before).await?;
            }
            let r = client.get(&format!("/repos/{owner}/{name}")).await?;
            let runs = client.runs(&repo, 1).await?;
            print_runs(&runs, hub.json)?;
            if r["mode"] == "migrate" {
                eprintln!("{repo} is now the primary");
                Ok(std::process::ExitCode::SUCCESS)
            } else {
                eprintln!("{repo} was not promoted (see the run above)");
                Ok(std::process::ExitCode::FAILURE)
            }
        }
        RepoCommand::PushMirror(cmd) => crate::push_mirror_cli::run(cmd).await,
        RepoCommand::Delete { repo, hub } => {
            let (owner, name) = split_repo(&repo)?;
            let client = Client::new(&hub)?;
            client
                .call(
                    reqwest::Method::DELETE,
                    &format!("/repos/{owner}/{name}"),
                    None,
                )
                .await?;
            eprintln!("deleted {repo}");
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

async fn latest_run_id(client: &Client, repo: &str) -> anyhow::Result<Option<i64>> {
    let runs = client.runs(repo, 1).await?;
    Ok(runs[0]["id"].as_i64())
}

/// Polls until a run newer than `after` has finished (or the initial copy is done).
async fn wait_until_done(client: &Client, repo: &str, after: Option<i64>) -> anyhow::Result<Value> {
    loop {
        let runs = client.runs(repo, 1).await?;
        let latest = &runs[0];
        let newer = latest["id"].as_i64().is_some_and(|id| Some(id) > after);
        if newer && !latest["finished_at"].is_null() {
            return client.get(&format!("/repos/{repo}")).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn print_repo(r: &Value, as_json: bool) -> anyhow::Result<std::process::ExitCode> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
    println!(
        "{}/{} ({}, {})",
        s("owner"),
        s("name"),
        s("mode"),
        s("visibility")
    );
    println!("  upstream:     {}", s("upstream_url"));
    for k in r["host_keys"].as_array().into_iter().flatten() {
        println!(
            "  host key:     {} {}",
            k["type"].as_str().unwrap_or_default(),
            k["fingerprint"].as_str().unwrap_or_default()
        );
    }
    println!("  clone:        {}", s("clone_url"));
    let progress = match &r["progress"] {
        Value::Null => String::new(),
        p => format!(
            " ({} {}%)",
            p["phase"].as_str().unwrap_or_default(),
            p["percent"]
        ),
    };
    println!("  status:       {}{progress}", s("status"));
    println!("  first copy:   {}", s("state"));
    println!(
        "  branches:     {}, tags: {}, head: {}",
        r["branches"],
        r["tags"],
        s("head")
    );
    println!(
        "  last sync:    {}  last success: {}  next: {}",
        s("last_sync_at"),
        s("last_success_at"),
        s("next_sync_at")
    );
    if r["mode"] == "mirror" {
        crate::fidelity_cli::print_filter(&r["refs"]);
        crate::fidelity_cli::print_freshness(r);
    }
    if let Some(reason) = r["paused_reason"].as_str() {
        println!("  paused:       {reason} (a sync or a settings change resumes it)");
    }
    if !r["last_error"].is_null() {
        println!(
            "  last error:   {}: {}",
            r["last_error"]["code"].as_str().unwrap_or_default(),
            r["last_error"]["message"].as_str().unwrap_or_default()
        );
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_runs(runs: &Value, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(runs)?);
        return Ok(());
    }
    for run in runs.as_array().into_iter().flatten() {
        let error = match &run["error"] {
            Value::Null => String::new(),
            e => format!(
                " {}: {}",
                e["code"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            ),
        };
        println!(
            "#{} {} {} {}{}",
            run["id"],
            run["started_at"].as_str().unwrap_or_default(),
            run["trigger"].as_str().unwrap_or_default(),
            run["outcome"].as_str().unwrap_or_default(),
            error
        );
        for c in run["ref_changes"].as_array().into_iter().flatten() {
            let short = |v: &Value| {
                v.as_str()
                    .map(|s| s[..s.len().min(12)].to_owned())
                    .unwrap_or_else(|| "-".into())
            };
            let backup = c["backup_id"]
                .as_i64()
                .map(|id| format!(" (old tip kept: backup #{id})"))
                .unwrap_or_default();
            println!(
                "  {:<12} {} {} -> {}{backup}",
                c["kind"].as_str().unwrap_or_default(),
                c["ref"].as_str().unwrap_or_default(),
                short(&c["old"]),
                short(&c["new"])
            );
        }
    }
    Ok(())
}
