//! `mirrorhub serve` and `mirrorhub admin`: everything that opens the database directly.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Subcommand;
use mirrorhub_forges::{BotCredentials, ForgeApis, GitHubAuth};
use mirrorhub_git::{EngineConfig, GitEngine};
use mirrorhub_hub::{
    BotConfig, FidelityConfig, Hub, HubConfig, LfsConfig, NotifyConfig, SmtpConfig, WebhookConfig,
};
use mirrorhub_server::{AdminAuth, ServerConfig, WebConfig};
use mirrorhub_store::{SecretKey, Store};
use poem::listener::{Acceptor, Listener, TcpListener};
use rand::RngCore;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::config::{secret_list, ServeArgs};

const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

pub async fn run(args: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    init_tracing(&args.log_format);
    let repos_dir = args.data_dir.join("repos");
    std::fs::create_dir_all(&repos_dir).with_context(|| {
        format!(
            "could not create the data directory {}",
            repos_dir.display()
        )
    })?;
    let store = open_store(&args).await?;
    let lfs_dir = args.data_dir.join("lfs");
    let lfs_objects = mirrorhub_lfs::ObjectStore::open(&lfs_dir, args.lfs_max_object_bytes)
        .with_context(|| format!("could not open the LFS object store {}", lfs_dir.display()))?;
    let admin = admin_auth(&args, store.as_ref()).await?;

    let engine = GitEngine::start(EngineConfig {
        git_program: args.git.clone(),
        policy: args.allowed_hosts.clone(),
        timeout: args.sync_timeout,
        probe_timeout: args.probe_timeout,
        low_speed_limit: args.low_speed_limit,
        low_speed_time: args.low_speed_time,
        first_copy: args.first_copy,
        ssh_program: args.ssh.clone(),
        ssh_connection_reuse: args.ssh_connection_reuse,
    })
    .await
    .context("could not start the git engine")?;
    let acceptor = TcpListener::bind(args.listen.as_str())
        .into_acceptor()
        .await
        .with_context(|| format!("could not listen on {}", args.listen))?;
    let local = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied())
        .context("the listener has no address")?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"))
        .trim_end_matches('/')
        .to_owned();
    let git_serve = mirrorhub_server::GitServeConfig {
        engine: engine.clone(),
        max_upload_packs: args.max_upload_packs as usize,
        idle_timeout: args.git_idle_timeout,
    };
    let hub = Arc::new(Hub::new(
        store,
        engine,
        HubConfig {
            repos_dir,
            default_sync_interval: args.default_sync_interval,
            min_sync_interval: args.min_sync_interval,
            workers: args.workers,
            push_workers: args.push_workers,
            lease: args.sync_lease,
            poll_interval: args.poll_interval,
            schedule_tick: args.poll_interval,
            per_host_syncs: args.per_host_syncs,
            pause_after: args.pause_after,
            stale_grace: args.stale_grace,
            public_url: public_url.clone(),
            webhooks: WebhookConfig {
                github_secrets: secret_list(args.github_webhook_secret.as_ref()),
                gitlab_tokens: secret_list(args.gitlab_webhook_token.as_ref()),
                gitea_secrets: secret_list(args.gitea_webhook_secret.as_ref()),
                bitbucket_secrets: secret_list(args.bitbucket_webhook_secret.as_ref()),
                generic_secrets: secret_list(args.generic_webhook_secret.as_ref()),
                auto_register: args.webhook_auto_register,
                forges: ForgeApis {
                    github_api: args.github_api_url.clone(),
                    gitlab: args.gitlab_url.clone(),
                    gitea: args.gitea_url.clone(),
                },
            },
            bot: BotConfig {
                usernames: args.bot_usernames.0.clone(),
                allowed_users: args.bot_allowed_users.0.clone(),
                only_allowed: args.bot_only_allowed,
                owner_map: args.bot_owner_map.0.clone(),
            },
            bot_credentials: bot_credentials(&args)?,
            lfs: LfsConfig {
                objects: lfs_objects,
                concurrency: args.lfs_concurrency as usize,
            },
            notifications: notify_config(&args, &public_url)?,
            fidelity: FidelityConfig {
                backup_retention: args.backup_retention,
                silence_check: args.silence_check,
            },
        },
    ));
    hub.recover()
        .await
        .context("could not recover interrupted work")?;

    // The one line scripts and tests wait for.
    println!("mirrorhub listening on http://{local} (public URL {public_url})");

    let shutdown = CancellationToken::new();
    let mut workers = mirrorhub_hub::worker::spawn(hub.clone(), shutdown.clone());
    if args.webhook_sync_spacing.is_some() {
        tracing::warn!("MIRRORHUB_WEBHOOK_SYNC_SPACING is no longer used and is ignored: a push syncs at once, and pushes arriving while a sync runs merge into one follow-up that starts when it ends; remove the setting");
    }
    let web = WebConfig::for_public_url(&public_url, args.web_session_ttl);
    if !web.secure_cookies {
        tracing::warn!(public_url = %public_url, "MIRRORHUB_PUBLIC_URL is plain http on another host: web UI session cookies cannot be marked Secure; serve the hub behind TLS (https) for the web UI");
    }
    let app = mirrorhub_server::app(
        hub.clone(),
        ServerConfig {
            web,
            public_url,
            admin,
            max_body_bytes: args.max_body_bytes,
            webhook_max_body_bytes: args.webhook_max_body_bytes,
            git: git_serve,
        },
    );
    let signal = {
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("shutting down: no new syncs are claimed; running ones may finish");
            shutdown.cancel();
        }
    };
    mirrorhub_server::serve(acceptor, app, signal, args.shutdown_grace)
        .await
        .context("the HTTP server failed")?;
    shutdown.cancel();
    if tokio::time::timeout(args.shutdown_grace, async {
        while workers.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("running syncs did not finish in time; they are stopped and will run again after the restart");
        workers.abort_all();
        while workers.join_next().await.is_some() {}
    }
    hub.release_held_jobs().await;
    Ok(std::process::ExitCode::SUCCESS)
}

/// The notification outbox's settings; the SMTP server only when both its settings are given.
fn notify_config(args: &ServeArgs, public_url: &str) -> anyhow::Result<NotifyConfig> {
    let smtp = match (&args.smtp_url, args.smtp_from.as_deref()) {
        (Some(url), Some(from)) => {
            // EHLO with the hub's public host name unless the URL names one.
            let hello = url::Url::parse(public_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned));
            let smtp = SmtpConfig::parse(url, from)
                .map_err(anyhow::Error::msg)?
                .with_default_hello(hello);
            tracing::info!(smtp = %smtp.describe(), "e-mail notifications go through this SMTP server");
            Some(smtp)
        }
        (None, None) => None,
        (Some(_), None) => bail!("MIRRORHUB_SMTP_URL is set but MIRRORHUB_SMTP_FROM is not: name the sender of notification e-mail, e.g. `mirrorhub <hub@example.org>`"),
        (None, Some(_)) => bail!("MIRRORHUB_SMTP_FROM is set but MIRRORHUB_SMTP_URL is not: name the SMTP server, e.g. smtp://user:password@mail.example.org:587"),
    };
    Ok(NotifyConfig {
        concurrency: args.notify_concurrency as usize,
        timeout: args.notify_timeout,
        retry_base: args.notify_retry_base,
        give_up_after: args.notify_give_up_after,
        smtp,
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open_store(args: &ServeArgs) -> anyhow::Result<Arc<dyn Store>> {
    let key = secret_key(args)?;
    let url = match &args.database_url {
        Some(url) => url.expose_secret().to_owned(),
        None => format!(
            "sqlite://{}?mode=rwc",
            args.data_dir.join("mirrorhub.db").display()
        ),
    };
    let backend = url.split(':').next().unwrap_or_default().to_owned();
    mirrorhub_store::connect(&url, key)
        .await
        .with_context(|| format!("could not open the {backend} database (DATABASE_URL)"))
}

/// The key that encrypts upstream credentials: from the environment, or generated once into
/// the data directory (readable by the hub's user only).
fn secret_key(args: &ServeArgs) -> anyhow::Result<SecretKey> {
    if let Some(key) = &args.secret_key {
        return SecretKey::from_base64(key.expose_secret().trim())
            .map_err(|_| anyhow::anyhow!("MIRRORHUB_SECRET_KEY must be the base64 of 32 bytes (generate one with `openssl rand -base64 32`)"));
    }
    let path = args.data_dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => SecretKey::from_base64(text.trim()).map_err(|_| {
            anyhow::anyhow!(
                "{} is not a valid key (base64 of 32 bytes); restore it from a backup",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate();
            write_private(&path, &key.to_base64())?;
            tracing::warn!(
                path = %path.display(),
                "MIRRORHUB_SECRET_KEY is not set: generated a key that encrypts upstream credentials; back it up, without it stored credentials cannot be read"
            );
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("could not read {}", path.display())),
    }
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The admin token from the environment, or the stored hash of a generated one. A token is
/// generated (and printed once, to the terminal, never to the log) only on the first start.
async fn admin_auth(args: &ServeArgs, store: &dyn Store) -> anyhow::Result<AdminAuth> {
    if let Some(token) = &args.admin_token {
        let token = token.expose_secret();
        if token.len() < 16 {
            bail!("MIRRORHUB_ADMIN_TOKEN is too short: use at least 16 random characters");
        }
        return Ok(AdminAuth::from_token(token));
    }
    if let Some(hash) = store.get_setting(ADMIN_TOKEN_SETTING).await? {
        return parse_hash(&hash);
    }
    let token = generate_token();
    let hash = hex(&mirrorhub_server::hash_token(&token));
    if store
        .put_setting_if_absent(ADMIN_TOKEN_SETTING, &hash)
        .await?
    {
        print_token_once(&token);
        Ok(AdminAuth::from_token(&token))
    } else {
        // Another replica generated one at the same moment: use its token.
        let stored = store
            .get_setting(ADMIN_TOKEN_SETTING)
            .await?
            .context("the admin token setting vanished")?;
        parse_hash(&stored)
    }
}

fn print_token_once(token: &str) {
    eprintln!(
        "\n  mirrorhub generated an admin API token (shown only now; only its hash is stored):\n\n      {token}\n\n  Use it as `Authorization: Bearer <token>` (or MIRRORHUB_TOKEN for the CLI).\n  Lost it? Run `mirrorhub admin reset-token`.\n"
    );
}

fn parse_hash(hex_text: &str) -> anyhow::Result<AdminAuth> {
    let bytes: Vec<u8> = (0..hex_text.len())
        .step_by(2)
        .map(|i| {
            hex_text
                .get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<_>>()
        .context("the stored admin token hash is corrupt; run `mirrorhub admin reset-token`")?;
    let hash: [u8; 32] = bytes.try_into().map_err(|_| {
        anyhow::anyhow!(
            "the stored admin token hash has the wrong length; run `mirrorhub admin reset-token`"
        )
    })?;
    Ok(AdminAuth::from_hash(hash))
}

fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("mh_{}", hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Replace the stored admin token with a new one and print it once.
    ResetToken(Box<ServeArgs>),
    /// Run the database migrations and exit.
    Migrate(Box<ServeArgs>),
    /// Create a user with a first access token (admin scope), printed once: the way to the
    /// first user of a hub without an API call.
    CreateUser {
        username: String,
        /// Make the user a site admin (may do everything, like the admin token).
        #[arg(long)]
        site_admin: bool,
        #[command(flatten)]
        args: Box<ServeArgs>,
    },
    /// Remove the backups of overwritten or deleted refs older than
    /// MIRRORHUB_BACKUP_RETENTION now (the running hub's housekeeping does this every hour).
    ExpireBackups {
        /// Expire as of this moment instead of the current time (RFC 3339), e.g. to see what
        /// a later housekeeping run removes.
        #[arg(long, value_name = "TIME")]
        now: Option<chrono::DateTime<chrono::Utc>>,
        #[command(flatten)]
        args: Box<ServeArgs>,
    },
}

pub async fn admin(cmd: AdminCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        AdminCommand::ResetToken(args) => {
            std::fs::create_dir_all(&args.data_dir)?;
            let store = open_store(&args).await?;
            let token = generate_token();
            store
                .put_setting(
                    ADMIN_TOKEN_SETTING,
                    &hex(&mirrorhub_server::hash_token(&token)),
                )
                .await?;
            print_token_once(&token);
            if args.admin_token.is_some() {
                eprintln!("  note: MIRRORHUB_ADMIN_TOKEN is set, and while it is, it is the token the hub accepts.");
            }
        }
        AdminCommand::CreateUser {
            username,
            site_admin,
            args,
        } => {
            std::fs::create_dir_all(&args.data_dir)?;
            let store = open_store(&args).await?;
            let (user, token) =
                mirrorhub_hub::bootstrap_user(store.as_ref(), &username, site_admin)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            // The secret alone on standard output, so scripts can capture it.
            println!("{}", token.secret);
            eprintln!(
                "created user {}{} with a token of the admin scope (shown only now). Use it as MIRRORHUB_TOKEN, or as the password for git.",
                user.name,
                if site_admin { ", a site admin," } else { "" }
            );
        }
        AdminCommand::ExpireBackups { now, args } => {
            std::fs::create_dir_all(&args.data_dir)?;
            let store = open_store(&args).await?;
            let engine = GitEngine::start(EngineConfig {
                git_program: args.git.clone(),
                ..EngineConfig::default()
            })
            .await
            .context("could not start the git engine")?;
            let removed = mirrorhub_hub::expire_backups(
                store.as_ref(),
                &engine,
                &args.data_dir.join("repos"),
                args.backup_retention,
                now.unwrap_or_else(chrono::Utc::now),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("removed {removed} expired backup(s)");
        }
        AdminCommand::Migrate(args) => {
            std::fs::create_dir_all(&args.data_dir)?;
            open_store(&args).await?;
            eprintln!("the database is up to date");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The comment bot's credentials on each forge. A GitHub App wins over a GitHub token.
fn bot_credentials(args: &ServeArgs) -> anyhow::Result<BotCredentials> {
    let app_key = match (
        &args.github_app_private_key,
        &args.github_app_private_key_file,
    ) {
        (Some(key), _) => Some(key.clone()),
        (None, Some(path)) => Some(secrecy::SecretString::from(
            std::fs::read_to_string(path).with_context(|| {
                format!(
                    "could not read MIRRORHUB_GITHUB_APP_PRIVATE_KEY_FILE {}",
                    path.display()
                )
            })?,
        )),
        (None, None) => None,
    };
    let github = match (args.github_app_id, app_key) {
        (Some(app_id), Some(private_key)) => Some(GitHubAuth::App {
            app_id,
            private_key,
        }),
        (Some(_), None) => bail!(
            "MIRRORHUB_GITHUB_APP_ID is set without its private key: set MIRRORHUB_GITHUB_APP_PRIVATE_KEY or MIRRORHUB_GITHUB_APP_PRIVATE_KEY_FILE"
        ),
        (None, Some(_)) => bail!(
            "a GitHub App private key is set without MIRRORHUB_GITHUB_APP_ID: set the App's id"
        ),
        (None, None) => args.github_token.clone().map(GitHubAuth::Token),
    };
    Ok(BotCredentials {
        github,
        gitlab_token: args.gitlab_token.clone(),
        gitea_token: args.gitea_token.clone(),
    })
}
