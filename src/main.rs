//! The `mirrorhub` binary: reads the configuration once, picks the store, and wires the
//! server and the workers together (`serve`); the other subcommands script a running hub
//! over its REST API, or administer the database directly.

mod accounts_cli;
mod cli;
mod config;
mod fidelity_cli;
mod notify_cli;
mod push_mirror_cli;
mod serve;
mod set_cli;
mod ssh_cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mirrorhub",
    version,
    about = "Mirror or migrate Git repositories from any Git server, and keep mirrors in sync"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Start the hub: HTTP API, sync workers and scheduler.
    Serve(Box<config::ServeArgs>),
    /// Create, list, show, sync and delete repositories on a running hub (through its API).
    #[command(subcommand)]
    Repo(cli::RepoCommand),
    /// Mirror whole organizations, groups or accounts (mirror sets) on a running hub.
    #[command(subcommand)]
    Set(set_cli::SetCommand),
    /// Show who the token belongs to and what it may do.
    Whoami(cli::HubArgs),
    /// Create and list users (through the API; site admins).
    #[command(subcommand)]
    User(accounts_cli::UserCommand),
    /// Create, list and revoke personal access tokens (through the API).
    #[command(subcommand)]
    Token(accounts_cli::TokenCommand),
    /// Create organizations and manage their members (through the API).
    #[command(subcommand)]
    Org(accounts_cli::OrgCommand),
    /// Add, list, test and delete notification targets: webhook, Slack, e-mail (through the
    /// API).
    #[command(subcommand)]
    Notify(notify_cli::NotifyCommand),
    /// Make, list and delete deploy keys for SSH upstreams (through the API).
    #[command(subcommand, name = "ssh-key")]
    SshKey(ssh_cli::SshKeyCommand),
    /// Show the host keys an SSH server offers (fetched by the hub, through its address policy).
    HostKeys {
        /// ssh://user@host[:port]/path or user@host:path
        url: String,
        #[command(flatten)]
        hub: cli::HubArgs,
    },
    /// Administer the hub's database directly (run on the hub's machine).
    #[command(subcommand)]
    Admin(serve::AdminCommand),
}

fn main() -> std::process::ExitCode {
    // `.env` is optional; real environment variables win over it.
    let _ = dotenvy::dotenv();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match args.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Repo(cmd) => cli::run(cmd).await,
            Command::Set(cmd) => set_cli::run(cmd).await,
            Command::Whoami(hub) => accounts_cli::whoami(hub).await,
            Command::User(cmd) => accounts_cli::user(cmd).await,
            Command::Token(cmd) => accounts_cli::token(cmd).await,
            Command::Org(cmd) => accounts_cli::org(cmd).await,
            Command::Notify(cmd) => notify_cli::run(cmd).await,
            Command::SshKey(cmd) => ssh_cli::ssh_key(cmd).await,
            Command::HostKeys { url, hub } => ssh_cli::host_keys(url, hub).await,
            Command::Admin(cmd) => serve::admin(cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
