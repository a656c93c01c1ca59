//! `mirrorhub repo push-mirror …`: a repository's push mirrors, through the API.

use std::time::Duration;

use clap::Subcommand;
use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};

use crate::cli::{read_stdin_secret, split_repo, Client, HubArgs};

#[derive(Subcommand)]
pub enum PushMirrorCommand {
    /// Push the repository to a downstream server after every change.
    Add {
        /// owner/name on the hub
        repo: String,
        /// The downstream repository (http://, https://, git:// or ssh:// URL).
        url: String,
        /// Username for the downstream.
        #[arg(long)]
        username: Option<String>,
        /// Read the downstream token or password from standard input (never give it as an
        /// argument).
        #[arg(long)]
        token_stdin: bool,
        /// SSH downstreams: log in with this deploy key (`mirrorhub ssh-key create`).
        #[arg(long, value_name = "ID")]
        ssh_key: Option<i64>,
        /// SSH downstreams: the server's host keys (a known_hosts file; `-`: standard input).
        #[arg(long, value_name = "FILE")]
        known_hosts: Option<std::path::PathBuf>,
        /// Push only these branches (repeatable): a glob (`release/*`) or `/regex/`.
        #[arg(long = "only-branch", value_name = "PATTERN")]
        only_branches: Vec<String>,
        /// Do not push tags.
        #[arg(long)]
        no_tags: bool,
        /// Never delete downstream refs that are gone here.
        #[arg(long)]
        no_prune: bool,
        /// Never overwrite a downstream ref that moved on its own (report it as diverged).
        #[arg(long)]
        no_force: bool,
        /// The fallback interval, e.g. 24h (default), 90m.
        #[arg(long)]
        interval: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List the repository's push mirrors with their status.
    List {
        /// owner/name
        repo: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Push now, and wait for the run's result.
    Sync {
        /// owner/name
        repo: String,
        /// The push mirror's id (from `list`).
        id: i64,
        /// Return as soon as the run is queued.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show a push mirror's runs: refs pushed, deleted, diverged, refused.
    Runs {
        /// owner/name
        repo: String,
        id: i64,
        #[arg(long, default_value_t = 10)]
        limit: i64,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Delete a push mirror (the downstream is left as it is).
    Rm {
        /// owner/name
        repo: String,
        id: i64,
        #[command(flatten)]
        hub: HubArgs,
    },
}

pub async fn run(cmd: PushMirrorCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        PushMirrorCommand::Add {
            repo,
            url,
            username,
            token_stdin,
            ssh_key,
            known_hosts,
            only_branches,
            no_tags,
            no_prune,
            no_force,
            interval,
            hub,
        } => {
            let (owner, name) = split_repo(&repo)?;
            let client = Client::new(&hub)?;
            let mut body = Map::new();
            body.insert("url".into(), json!(url));
            if let Some(u) = username {
                body.insert("username".into(), json!(u));
            }
            if token_stdin {
                let token = read_stdin_secret("the token")?;
                body.insert("token".into(), json!(token.expose_secret()));
            }
            if let Some(id) = ssh_key {
                body.insert("ssh_key_id".into(), json!(id));
            }
            if let Some(path) = known_hosts {
                body.insert(
                    "known_hosts".into(),
                    json!(crate::cli::read_text(&path, "the known_hosts file")?),
                );
            }
            if !only_branches.is_empty() {
                body.insert("only_branches".into(), json!(only_branches));
            }
            body.insert("tags".into(), json!(!no_tags));
            body.insert("prune".into(), json!(!no_prune));
            body.insert("force".into(), json!(!no_force));
            if let Some(i) = interval {
                body.insert("sync_interval".into(), json!(i));
            }
            let m = client
                .post(
                    &format!("/repos/{owner}/{name}/push-mirrors"),
                    Value::Object(body),
                )
                .await?;
            print_mirrors(&json!([m]), hub.json);
            eprintln!(
                "the first push is queued: `mirrorhub repo push-mirror runs {repo} {}`",
                m["id"]
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        PushMirrorCommand::List { repo, hub } => {
            let (owner, name) = split_repo(&repo)?;
            let client = Client::new(&hub)?;
            let list = client
                .get(&format!("/repos/{owner}/{name}/push-mirrors"))
                .await?;
            print_mirrors(&list, hub.json);
            Ok(std::process::ExitCode::SUCCESS)
        }
        PushMirrorCommand::Sync {
            repo,
            id,
            no_wait,
            hub,
        } => {
            let (owner, name) = split_repo(&repo)?;
            let client = Client::new(&hub)?;
            let base = format!("/repos/{owner}/{name}/push-mirrors/{id}");
            let before = client.get(&format!("{base}/runs?limit=1")).await?[0]["id"].as_i64();
            client.post(&format!("{base}/sync"), Value::Null).await?;
            if no_wait {
                eprintln!("push of {repo} to push mirror {id} queued");
                return Ok(std::process::ExitCode::SUCCESS);
            }
            let run = loop {
                let runs = client.get(&format!("{base}/runs?limit=1")).await?;
                let run = &runs[0];
                if run["id"].as_i64() > before && !run["finished_at"].is_null() {
                    break run.clone();
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            print_runs(&json!([run]), hub.json);
            Ok(if run["outcome"] == "failed" {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            })
        }
        PushMirrorCommand::Runs {
            repo,
            id,
            limit,
            hub,
        } => {
            let (owner, name) = split_repo(&repo)?;
            let client = Client::new(&hub)?;
            let runs = client
                .get(&format!(
                    "/repos/{owner}/{name}/push-mirrors/{id}/runs?limit={limit}"
                ))
                .await?;
            print_runs(&runs, hub.json);
            Ok(std::process::ExitCode::SUCCESS)
        }
        PushMirrorCommand::Rm { repo, id, hub } => {
            let (owner, name) = split_repo(&repo)?;
            let client = Client::new(&hub)?;
            client
                .call(
                    reqwest::Method::DELETE,
                    &format!("/repos/{owner}/{name}/push-mirrors/{id}"),
                    None,
                )
                .await?;
            eprintln!("deleted push mirror {id} of {repo}");
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn print_mirrors(list: &Value, as_json: bool) {
    if as_json {
        println!("{}", serde_json::to_string_pretty(list).unwrap_or_default());
        return;
    }
    for m in list.as_array().into_iter().flatten() {
        let status = match (&m["last_error"], &m["last_success_at"]) {
            (Value::Object(e), _) => format!(
                "failed: {} {}",
                e["code"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            ),
            (_, Value::String(at)) => format!("pushed {at}"),
            _ => "not pushed yet".to_owned(),
        };
        let mut options = Vec::new();
        if let Some(only) = m["only_branches"].as_array() {
            let only: Vec<&str> = only.iter().filter_map(Value::as_str).collect();
            options.push(format!("only {}", only.join(",")));
        }
        for (field, off) in [
            ("tags", "no tags"),
            ("prune", "no prune"),
            ("force", "no force"),
        ] {
            if m[field] == false {
                options.push(off.to_owned());
            }
        }
        if m["enabled"] == false {
            options.push("disabled".to_owned());
        }
        println!(
            "{}\t{}\t{}{}",
            m["id"],
            m["url"].as_str().unwrap_or_default(),
            status,
            if options.is_empty() {
                String::new()
            } else {
                format!("\t({})", options.join("; "))
            }
        );
        if let Some(diverged) = m["diverged"].as_array().filter(|d| !d.is_empty()) {
            let refs: Vec<&str> = diverged.iter().filter_map(Value::as_str).collect();
            println!("\tdiverged (left alone): {}", refs.join(" "));
        }
    }
}

fn print_runs(runs: &Value, as_json: bool) {
    if as_json {
        println!("{}", serde_json::to_string_pretty(runs).unwrap_or_default());
        return;
    }
    for run in runs.as_array().into_iter().flatten() {
        let error = match &run["error"] {
            Value::Object(e) => format!(
                "  {}: {}",
                e["code"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            ),
            _ => String::new(),
        };
        println!(
            "#{} {} {} {}{error}",
            run["id"],
            run["started_at"].as_str().unwrap_or_default(),
            run["trigger"].as_str().unwrap_or_default(),
            run["outcome"].as_str().unwrap_or_default(),
        );
        for (list, label) in [
            ("pushed", "pushed"),
            ("deleted", "deleted"),
            ("diverged", "diverged"),
            ("rejected", "refused"),
        ] {
            for r in run[list].as_array().into_iter().flatten() {
                let kind = r["kind"].as_str().unwrap_or_default();
                let reason = r["reason"]
                    .as_str()
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default();
                println!(
                    "  {label:<8} {} {kind}{reason}",
                    r["ref"].as_str().unwrap_or_default()
                );
            }
        }
    }
}
