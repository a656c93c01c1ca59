//! Every setting, read once from flags or the environment (and `.env`). `.env.example`
//! documents each with its default.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use mirrorhub_core::duration::parse_duration;
use mirrorhub_core::{AddressPolicy, SyncInterval};
use mirrorhub_git::CopyEngine;
use secrecy::{ExposeSecret, SecretString};

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MIRRORHUB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Directory for the SQLite database, the encryption key and the bare repositories.
    #[arg(long, env = "MIRRORHUB_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// Base URL users reach the hub at (clone and webhook URLs); defaults to http://<listen>.
    #[arg(long, env = "MIRRORHUB_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The admin API token. When unset, one is generated on first start, stored hashed and printed once.
    #[arg(long, env = "MIRRORHUB_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<SecretString>,
    /// Base64 of 32 random bytes that encrypt upstream credentials at rest. When unset, a key
    /// is generated into <data dir>/secret.key.
    #[arg(long, env = "MIRRORHUB_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<SecretString>,
    /// Hosts (host or host:port) and networks (CIDR) the hub may reach although they are
    /// loopback, private or link-local. Comma-separated.
    #[arg(long, env = "MIRRORHUB_ALLOWED_HOSTS", default_value = "", value_parser = parse_policy)]
    pub allowed_hosts: AddressPolicy,
    /// The git program used for transfers.
    #[arg(long, env = "MIRRORHUB_GIT", default_value = "git")]
    pub git: PathBuf,
    /// The OpenSSH client used for ssh:// upstreams (it never reads ~/.ssh: the hub gives it
    /// its own key and known_hosts files for each run).
    #[arg(long, env = "MIRRORHUB_SSH", default_value = "ssh")]
    pub ssh: PathBuf,
    /// How long an SSH connection stays up after its last run, for the next run to the same
    /// server with the same key and pinned host keys; `off` connects anew for every run.
    #[arg(long, env = "MIRRORHUB_SSH_CONNECTION_REUSE", default_value = "60s", value_parser = parse_duration_or_off)]
    pub ssh_connection_reuse: Duration,
    /// Longest a clone or sync may take before it is stopped with `timeout`.
    #[arg(long, env = "MIRRORHUB_SYNC_TIMEOUT", default_value = "1h", value_parser = parse_duration)]
    pub sync_timeout: Duration,
    /// Longest the upstream check at creation may take.
    #[arg(long, env = "MIRRORHUB_PROBE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub probe_timeout: Duration,
    /// A transfer slower than this many bytes per second for MIRRORHUB_LOW_SPEED_TIME is stalled.
    #[arg(long, env = "MIRRORHUB_LOW_SPEED_LIMIT", default_value_t = 1000)]
    pub low_speed_limit: u32,
    #[arg(long, env = "MIRRORHUB_LOW_SPEED_TIME", default_value = "60s", value_parser = parse_duration)]
    pub low_speed_time: Duration,
    /// What makes a repository's first copy: `gix` (multi-threaded indexing, 1.4-2.6x as fast;
    /// `git clone` takes over whenever gix cannot be sure of an exact copy) or `git`.
    #[arg(long, env = "MIRRORHUB_FIRST_COPY", default_value = "gix", value_parser = parse_copy_engine)]
    pub first_copy: CopyEngine,
    /// Sync interval of new mirrors when none is given.
    #[arg(long, env = "MIRRORHUB_DEFAULT_SYNC_INTERVAL", default_value = "24h")]
    pub default_sync_interval: SyncInterval,
    /// Shortest sync interval a user may choose.
    #[arg(long, env = "MIRRORHUB_MIN_SYNC_INTERVAL", default_value = "5m")]
    pub min_sync_interval: SyncInterval,
    /// Syncs that run at once in this process.
    #[arg(long, env = "MIRRORHUB_WORKERS", default_value_t = 4)]
    pub workers: usize,
    /// How many push mirror runs run at once in this process.
    #[arg(long, env = "MIRRORHUB_PUSH_WORKERS", default_value_t = 4)]
    pub push_workers: usize,
    /// How long a claimed sync stays owned without renewal (another replica takes it over after).
    #[arg(long, env = "MIRRORHUB_SYNC_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub sync_lease: Duration,
    /// How often the scheduler looks for due mirrors, and idle workers for queued work.
    #[arg(long, env = "MIRRORHUB_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Syncs of one upstream host running at once in this process.
    #[arg(long, env = "MIRRORHUB_PER_HOST_SYNCS", default_value_t = 2)]
    pub per_host_syncs: usize,
    /// Consecutive permanent failures (authentication, not found, URL refused) after which a
    /// mirror is paused until someone syncs it by hand or changes its settings.
    #[arg(long, env = "MIRRORHUB_PAUSE_AFTER", default_value_t = 5)]
    pub pause_after: u32,
    /// A mirror is reported stale when its last success is older than its interval plus this.
    /// The default covers a 6-hour outage plus the paced catch-up after it.
    #[arg(long, env = "MIRRORHUB_STALE_GRACE", default_value = "8h", value_parser = parse_duration)]
    pub stale_grace: Duration,
    /// Largest API request body, in bytes.
    #[arg(long, env = "MIRRORHUB_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Largest webhook delivery, in bytes (forges send up to 25 MB).
    #[arg(long, env = "MIRRORHUB_WEBHOOK_MAX_BODY_BYTES", default_value_t = 25 << 20)]
    pub webhook_max_body_bytes: usize,
    /// How long a sign-in to the web UI lasts.
    #[arg(long, env = "MIRRORHUB_WEB_SESSION_TTL", default_value = "12h", value_parser = parse_duration)]
    pub web_session_ttl: Duration,
    /// `git clone`/`fetch` pack generations (`git upload-pack`) served at once by this
    /// process; further requests wait for a slot.
    #[arg(long, env = "MIRRORHUB_MAX_UPLOAD_PACKS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_upload_packs: u32,
    /// Git LFS downloads from an upstream at once, per sync.
    #[arg(long, env = "MIRRORHUB_LFS_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub lfs_concurrency: u32,
    /// How long a backup of a tip a sync overwrote or deleted is kept (then removed by
    /// housekeeping).
    #[arg(long, env = "MIRRORHUB_BACKUP_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub backup_retention: Duration,
    /// How often the upstream of a mirror whose webhook is connected is listed (cheaply) to
    /// notice a silent webhook; a silent one is polled at this interval.
    #[arg(long, env = "MIRRORHUB_SILENCE_CHECK", default_value = "1h", value_parser = parse_duration)]
    pub silence_check: Duration,
    /// The largest Git LFS object the hub fetches or accepts, in bytes.
    #[arg(long, env = "MIRRORHUB_LFS_MAX_OBJECT_BYTES", default_value_t = 10 << 30)]
    pub lfs_max_object_bytes: u64,
    /// A git client whose clone, fetch or push moves no data for this long is cut off, and its
    /// git stopped (freeing its pack slot or push lock).
    #[arg(long, env = "MIRRORHUB_GIT_IDLE_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub git_idle_timeout: Duration,
    /// Secret of `/hooks/github` (organization or instance webhooks); comma-separated to
    /// accept several while rotating.
    #[arg(long, env = "MIRRORHUB_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<SecretString>,
    /// Secret token of `/hooks/gitlab` (group or system hooks); comma-separated for rotation.
    #[arg(long, env = "MIRRORHUB_GITLAB_WEBHOOK_TOKEN", hide_env_values = true)]
    pub gitlab_webhook_token: Option<SecretString>,
    /// Secret of `/hooks/gitea` (Gitea and Forgejo organization or system hooks).
    #[arg(long, env = "MIRRORHUB_GITEA_WEBHOOK_SECRET", hide_env_values = true)]
    pub gitea_webhook_secret: Option<SecretString>,
    /// Secret of `/hooks/bitbucket` (Bitbucket Cloud workspace and Server/Data Center hooks).
    #[arg(
        long,
        env = "MIRRORHUB_BITBUCKET_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub bitbucket_webhook_secret: Option<SecretString>,
    /// Secret of `/hooks/generic`, for any server that can only POST.
    #[arg(long, env = "MIRRORHUB_GENERIC_WEBHOOK_SECRET", hide_env_values = true)]
    pub generic_webhook_secret: Option<SecretString>,
    /// No longer used: a push syncs at once, and one arriving while a sync runs makes one
    /// follow-up that starts when it ends. Accepted (with a warning) for one release.
    #[arg(long, env = "MIRRORHUB_WEBHOOK_SYNC_SPACING", hide = true, value_parser = parse_duration)]
    pub webhook_sync_spacing: Option<Duration>,
    /// Create push webhooks on GitHub, GitLab and Gitea upstreams with the mirror's token.
    #[arg(long, env = "MIRRORHUB_WEBHOOK_AUTO_REGISTER", default_value_t = true, action = clap::ArgAction::Set)]
    pub webhook_auto_register: bool,
    /// GitHub's REST API (GitHub Enterprise: https://HOST/api/v3).
    #[arg(
        long,
        env = "MIRRORHUB_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: url::Url,
    /// GitLab's base URL (self-managed: https://gitlab.example.org).
    #[arg(
        long,
        env = "MIRRORHUB_GITLAB_URL",
        default_value = "https://gitlab.com"
    )]
    pub gitlab_url: url::Url,
    /// A Gitea or Forgejo instance's base URL, e.g. https://codeberg.org.
    #[arg(long, env = "MIRRORHUB_GITEA_URL")]
    pub gitea_url: Option<url::Url>,
    /// The comment bot as a GitHub App: its id, with its private key (PEM) in
    /// MIRRORHUB_GITHUB_APP_PRIVATE_KEY or the file MIRRORHUB_GITHUB_APP_PRIVATE_KEY_FILE.
    #[arg(long, env = "MIRRORHUB_GITHUB_APP_ID")]
    pub github_app_id: Option<u64>,
    #[arg(long, env = "MIRRORHUB_GITHUB_APP_PRIVATE_KEY", hide_env_values = true)]
    pub github_app_private_key: Option<SecretString>,
    #[arg(long, env = "MIRRORHUB_GITHUB_APP_PRIVATE_KEY_FILE")]
    pub github_app_private_key_file: Option<PathBuf>,
    /// The comment bot on GitHub with a personal or machine account's token (instead of an App).
    #[arg(long, env = "MIRRORHUB_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<SecretString>,
    /// The comment bot's token on GitLab (scope `api`).
    #[arg(long, env = "MIRRORHUB_GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Option<SecretString>,
    /// The comment bot's token on Gitea or Forgejo.
    #[arg(long, env = "MIRRORHUB_GITEA_TOKEN", hide_env_values = true)]
    pub gitea_token: Option<SecretString>,
    /// The bot's own account names on the forges (comma-separated): their comments are ignored.
    #[arg(long, env = "MIRRORHUB_BOT_USERNAMES", default_value = "", value_parser = parse_list)]
    pub bot_usernames: NameList,
    /// People who may use the bot whatever their rights on the repository (comma-separated).
    #[arg(long, env = "MIRRORHUB_BOT_ALLOWED_USERS", default_value = "", value_parser = parse_list)]
    pub bot_allowed_users: NameList,
    /// Only MIRRORHUB_BOT_ALLOWED_USERS may use the bot, not every writer of the repository.
    #[arg(long, env = "MIRRORHUB_BOT_ONLY_ALLOWED", default_value_t = false, action = clap::ArgAction::Set)]
    pub bot_only_allowed: bool,
    /// Forge namespace to hub owner, e.g. `acme-corp=acme,gitlab-group/sub=platform`.
    #[arg(long, env = "MIRRORHUB_BOT_OWNER_MAP", default_value = "", value_parser = parse_owner_map)]
    pub bot_owner_map: OwnerMap,
    /// Notification deliveries (webhook, Slack, e-mail) sent at once by this process.
    #[arg(long, env = "MIRRORHUB_NOTIFY_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub notify_concurrency: u32,
    /// The longest one notification attempt (an HTTP request, an SMTP conversation) may take.
    #[arg(long, env = "MIRRORHUB_NOTIFY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub notify_timeout: Duration,
    /// The wait before a failed notification is tried again; it doubles each time, up to 1h.
    #[arg(long, env = "MIRRORHUB_NOTIFY_RETRY_BASE", default_value = "10s", value_parser = parse_duration)]
    pub notify_retry_base: Duration,
    /// A notification still not delivered this long after it was queued is given up.
    #[arg(long, env = "MIRRORHUB_NOTIFY_GIVE_UP_AFTER", default_value = "24h", value_parser = parse_duration)]
    pub notify_give_up_after: Duration,
    /// The SMTP server for e-mail notifications: smtp://user:password@host:587 (STARTTLS,
    /// required), smtps://user:password@host:465 (implicit TLS), or smtp://host:port?tls=none
    /// (plain: a relay on this machine or a trusted local network only).
    #[arg(long, env = "MIRRORHUB_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,
    /// The sender of notification e-mail, e.g. `mirrorhub <hub@example.org>`.
    #[arg(long, env = "MIRRORHUB_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// On SIGTERM, how long requests and running syncs get to finish.
    #[arg(long, env = "MIRRORHUB_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// `text` or `json` log lines (filter with RUST_LOG, default `info`).
    #[arg(long, env = "MIRRORHUB_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// A comma-separated list of secrets (several are valid at once while one is rotated).
pub fn secret_list(value: Option<&SecretString>) -> Vec<SecretString> {
    value
        .map(|v| {
            v.expose_secret()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| SecretString::from(s.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A comma-separated list of names, in one setting.
#[derive(Debug, Clone, Default)]
pub struct NameList(pub Vec<String>);

fn parse_list(s: &str) -> Result<NameList, String> {
    Ok(NameList(
        s.split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect(),
    ))
}

/// `from=to` pairs, comma-separated; `from` is lower-cased (forge namespaces are matched
/// regardless of case).
#[derive(Debug, Clone, Default)]
pub struct OwnerMap(pub Vec<(String, String)>);

fn parse_owner_map(s: &str) -> Result<OwnerMap, String> {
    let mut pairs = Vec::new();
    for item in s.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let (from, to) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not FORGE_NAMESPACE=HUB_OWNER"))?;
        let (from, to) = (from.trim(), to.trim());
        if from.is_empty() || to.is_empty() {
            return Err(format!("{item:?}: both sides of '=' must be given"));
        }
        pairs.push((from.to_ascii_lowercase(), to.to_owned()));
    }
    Ok(OwnerMap(pairs))
}

fn parse_policy(s: &str) -> Result<AddressPolicy, String> {
    AddressPolicy::parse_list(s)
}

/// A duration, or `off` (zero).
fn parse_duration_or_off(input: &str) -> Result<Duration, String> {
    if input.trim().eq_ignore_ascii_case("off") {
        return Ok(Duration::ZERO);
    }
    parse_duration(input).map_err(|e| format!("{e}, or `off`"))
}

fn parse_copy_engine(value: &str) -> Result<CopyEngine, String> {
    match value {
        "gix" => Ok(CopyEngine::Gix),
        "git" => Ok(CopyEngine::Git),
        other => Err(format!(
            "{other:?} is not a first-copy engine: use gix or git"
        )),
    }
}
