//! `mirrorhub set …`: mirror sets (a whole organization, group or account) on a running hub,
//! through its API.

use clap::Subcommand;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::cli::{read_stdin_secret, Client, HubArgs};

// Parsed once per run; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum SetCommand {
    /// Mirror every repository of a namespace, and the new ones as they appear.
    Create {
        /// `github`, `gitlab`, `gitea` (Forgejo too) or `bitbucket`.
        forge: String,
        /// The organization, user, workspace, or GitLab group path (`acme/platform`).
        namespace: String,
        /// The hub owner to create the mirrors under.
        #[arg(long = "as", value_name = "OWNER")]
        owner: String,
        /// The forge's API when it is not the public service (GitHub Enterprise
        /// `https://HOST/api/v3`, a GitLab or Gitea base URL).
        #[arg(long)]
        api_url: Option<String>,
        /// Read the forge token from standard input (never give it as an argument).
        /// Without it, MIRRORHUB_UPSTREAM_TOKEN is used when set.
        #[arg(long)]
        token_stdin: bool,
        /// Username to clone with, when the forge needs one with the token.
        #[arg(long)]
        username: Option<String>,
        /// Only names matching this glob (repeatable).
        #[arg(long, value_name = "GLOB")]
        include: Vec<String>,
        /// Leave out names matching this glob (repeatable).
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Mirror archived repositories too.
        #[arg(long)]
        archived: bool,
        /// Mirror forks too.
        #[arg(long)]
        forks: bool,
        /// `as-upstream` (default), `private` or `public`.
        #[arg(long)]
        visibility: Option<String>,
        /// `mirror` (default) or `migrate`.
        #[arg(long)]
        mode: Option<String>,
        /// The mirrors' sync interval, e.g. 24h.
        #[arg(long)]
        interval: Option<String>,
        /// How often the namespace is listed again, e.g. 1h (default).
        #[arg(long)]
        list_interval: Option<String>,
        /// Rename mirrors on the hub when their upstream is renamed.
        #[arg(long)]
        follow_renames: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List mirror sets with their counts.
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show a set and every repository of its namespace.
    Show {
        id: i64,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List the namespace again now.
    Sync {
        id: i64,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Delete a set; its mirrors are kept unless --delete-mirrors.
    Delete {
        id: i64,
        /// Delete the set's mirrors too.
        #[arg(long)]
        delete_mirrors: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
}

pub async fn run(cmd: SetCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        SetCommand::Create {
            forge,
            namespace,
            owner,
            api_url,
            token_stdin,
            username,
            include,
            exclude,
            archived,
            forks,
            visibility,
            mode,
            interval,
            list_interval,
            follow_renames,
            hub,
        } => {
            let client = Client::new(&hub)?;
            let token = if token_stdin {
                Some(read_stdin_secret("the token")?.expose_secret().to_owned())
            } else {
                std::env::var("MIRRORHUB_UPSTREAM_TOKEN").ok()
            };
            let body = json!({
                "forge": forge, "namespace": namespace, "owner": owner, "api_url": api_url,
                "token": token, "username": username, "include": include, "exclude": exclude,
                "archived": archived, "forks": forks, "visibility": visibility, "mode": mode,
                "sync_interval": interval, "list_interval": list_interval,
                "follow_renames": follow_renames,
            });
            let set = client.post("/mirror-sets", body).await?;
            print_set(&set, hub.json)?;
            if !hub.json {
                eprintln!(
                    "listing in the background; `mirrorhub set show {}` shows the repositories",
                    set["id"]
                );
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        SetCommand::List { hub } => {
            let client = Client::new(&hub)?;
            let sets = client.get("/mirror-sets").await?;
            if hub.json {
                println!("{}", serde_json::to_string_pretty(&sets)?);
            } else {
                for s in sets.as_array().into_iter().flatten() {
                    println!(
                        "#{}\t{} {}\t→ {}\t{}",
                        s["id"],
                        s["forge"].as_str().unwrap_or_default(),
                        s["namespace"].as_str().unwrap_or_default(),
                        s["owner"].as_str().unwrap_or_default(),
                        counts(s)
                    );
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        SetCommand::Show { id, hub } => {
            let client = Client::new(&hub)?;
            let set = client.get(&format!("/mirror-sets/{id}")).await?;
            let repos = client.get(&format!("/mirror-sets/{id}/repos")).await?;
            if hub.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"set": set, "repos": repos}))?
                );
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let code = print_set(&set, false)?;
            for r in repos.as_array().into_iter().flatten() {
                println!(
                    "  {:<40} {:<10} {:<24} {}",
                    r["path"].as_str().unwrap_or_default(),
                    r["state"].as_str().unwrap_or_default(),
                    r["repository"].as_str().unwrap_or("-"),
                    r["status"]
                        .as_str()
                        .or(r["detail"].as_str())
                        .unwrap_or_default()
                );
            }
            Ok(code)
        }
        SetCommand::Sync { id, hub } => {
            let client = Client::new(&hub)?;
            client
                .call(
                    reqwest::Method::POST,
                    &format!("/mirror-sets/{id}/sync"),
                    None,
                )
                .await?;
            eprintln!("mirror set {id}: listing queued");
            Ok(std::process::ExitCode::SUCCESS)
        }
        SetCommand::Delete {
            id,
            delete_mirrors,
            hub,
        } => {
            let client = Client::new(&hub)?;
            client
                .call(
                    reqwest::Method::DELETE,
                    &format!("/mirror-sets/{id}?delete_mirrors={delete_mirrors}"),
                    None,
                )
                .await?;
            if delete_mirrors {
                eprintln!("deleted mirror set {id} and its mirrors");
            } else {
                eprintln!("deleted mirror set {id}; its mirrors are kept");
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn counts(s: &Value) -> String {
    let c = &s["counts"];
    format!(
        "{} listed: {} mirrored, {} cloning, {} failed, {} skipped, {} gone",
        c["listed"], c["mirrored"], c["cloning"], c["failed"], c["skipped"], c["gone"]
    )
}

fn print_set(s: &Value, as_json: bool) -> anyhow::Result<std::process::ExitCode> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let t = |k: &str| s[k].as_str().unwrap_or("-").to_owned();
    println!(
        "mirror set #{}: {} {} ({}) → {}",
        s["id"],
        t("forge"),
        t("namespace"),
        t("api_url"),
        t("owner")
    );
    println!("  {}", counts(s));
    println!(
        "  last listed: {}  next: {}  every {}",
        t("last_listed_at"),
        t("next_list_at"),
        t("list_interval")
    );
    if !s["last_error"].is_null() {
        println!(
            "  last error:  {}: {}",
            s["last_error"]["code"].as_str().unwrap_or_default(),
            s["last_error"]["message"].as_str().unwrap_or_default()
        );
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}
