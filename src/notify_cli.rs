//! `mirrorhub notify …`: notification targets (webhook, Slack, e-mail) on a running hub,
//! through its API.

use clap::{Subcommand, ValueEnum};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::cli::{read_stdin_secret, Client, HubArgs};

#[derive(Clone, Copy, ValueEnum)]
pub enum TargetKind {
    /// JSON POSTs signed with HMAC-SHA256 (`X-Mirrorhub-Signature-256`).
    Webhook,
    /// A Slack (Mattermost, Rocket.Chat) incoming webhook.
    Slack,
    /// Mail through MIRRORHUB_SMTP_URL.
    Email,
}

// Parsed once per run; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Add a target. A Slack URL is a credential: it is read from standard input, as is a
    /// webhook's secret with --secret-stdin (without it the hub makes one, shown once).
    Create {
        kind: TargetKind,
        /// webhook: where to POST. slack: leave it out, the URL is read from standard input.
        #[arg(long)]
        url: Option<String>,
        /// email: a recipient (repeatable).
        #[arg(long, value_name = "ADDRESS")]
        to: Vec<String>,
        /// Only this owner's repositories (without it: every repository; the hub's admins).
        #[arg(long)]
        owner: Option<String>,
        /// Only this event (repeatable): sync_failed, sync_recovered, paused,
        /// host_key_changed, stale, lfs_failed, lfs_recovered, push_mirror_failed,
        /// push_mirror_recovered, webhook_silent, webhook_recovered. Without it: all.
        #[arg(long = "event", value_name = "EVENT")]
        events: Vec<String>,
        /// webhook: read the HMAC secret from standard input.
        #[arg(long)]
        secret_stdin: bool,
        /// A label for people, e.g. "#ops channel".
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List the targets the token may manage.
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Send a test notification now.
    Test {
        id: i64,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// A target's recent deliveries, newest first, with their attempts and answers.
    Deliveries {
        id: i64,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Turn a target off (its pending deliveries are given up) or on again.
    Enable {
        id: i64,
        /// `--off` disables.
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Delete a target.
    Delete {
        id: i64,
        #[command(flatten)]
        hub: HubArgs,
    },
}

pub async fn run(cmd: NotifyCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        NotifyCommand::Create {
            kind,
            url,
            to,
            owner,
            events,
            secret_stdin,
            description,
            hub,
        } => {
            let client = Client::new(&hub)?;
            let mut body = json!({
                "owner": owner, "description": description,
                "events": (!events.is_empty()).then_some(events),
            });
            match kind {
                TargetKind::Webhook => {
                    let Some(url) = url else {
                        anyhow::bail!("a webhook target needs --url (where to POST)");
                    };
                    body["kind"] = json!("webhook");
                    body["url"] = json!(url);
                    if secret_stdin {
                        let secret = read_stdin_secret("the webhook secret")?;
                        body["secret"] = json!(secret.expose_secret());
                    }
                }
                TargetKind::Slack => {
                    if url.is_some() {
                        anyhow::bail!(
                            "a Slack URL is a credential: give it on standard input, not as --url"
                        );
                    }
                    let url = read_stdin_secret("the Slack incoming-webhook URL")?;
                    body["kind"] = json!("slack");
                    body["url"] = json!(url.expose_secret());
                }
                TargetKind::Email => {
                    if to.is_empty() {
                        anyhow::bail!("an e-mail target needs at least one --to ADDRESS");
                    }
                    body["kind"] = json!("email");
                    body["to"] = json!(to);
                }
            }
            let target = client.post("/notifications/targets", body).await?;
            print_target(&target, hub.json)?;
            if let Some(secret) = target["secret"].as_str().filter(|_| !hub.json) {
                eprintln!("the webhook secret (shown once; verify X-Mirrorhub-Signature-256 with it): {secret}");
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        NotifyCommand::List { hub } => {
            let client = Client::new(&hub)?;
            let targets = client.get("/notifications/targets").await?;
            if hub.json {
                println!("{}", serde_json::to_string_pretty(&targets)?);
            } else {
                for t in targets.as_array().into_iter().flatten() {
                    print_target(t, false)?;
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        NotifyCommand::Test { id, hub } => {
            let client = Client::new(&hub)?;
            let delivery = client
                .post(&format!("/notifications/targets/{id}/test"), json!({}))
                .await?;
            if hub.json {
                println!("{}", serde_json::to_string_pretty(&delivery)?);
            } else {
                eprintln!(
                    "test notification queued (delivery #{}); `mirrorhub notify deliveries {id}` shows its answer",
                    delivery["id"]
                );
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        NotifyCommand::Deliveries { id, hub } => {
            let client = Client::new(&hub)?;
            let list = client
                .get(&format!("/notifications/targets/{id}/deliveries"))
                .await?;
            if hub.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for d in list.as_array().into_iter().flatten() {
                    print_delivery(d);
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        NotifyCommand::Enable { id, off, hub } => {
            let client = Client::new(&hub)?;
            let target = client
                .call(
                    reqwest::Method::PATCH,
                    &format!("/notifications/targets/{id}"),
                    Some(json!({"enabled": !off})),
                )
                .await?
                .unwrap_or_default();
            print_target(&target, hub.json)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        NotifyCommand::Delete { id, hub } => {
            let client = Client::new(&hub)?;
            client
                .call(
                    reqwest::Method::DELETE,
                    &format!("/notifications/targets/{id}"),
                    None,
                )
                .await?;
            eprintln!("deleted notification target {id}");
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn print_target(t: &Value, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(t)?);
        return Ok(());
    }
    let kind = t["kind"].as_str().unwrap_or_default();
    let to = match kind {
        "email" => t["to"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => t["url_origin"].as_str().unwrap_or("-").to_owned(),
    };
    let events = match t["events"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        _ => "all events".to_owned(),
    };
    println!(
        "#{}\t{kind}\t{to}\t{}\t{events}\t{}{}",
        t["id"],
        t["owner"].as_str().unwrap_or("every repository"),
        if t["enabled"] == false {
            "disabled"
        } else {
            "enabled"
        },
        t["description"]
            .as_str()
            .filter(|d| !d.is_empty())
            .map(|d| format!("\t{d}"))
            .unwrap_or_default()
    );
    Ok(())
}

fn print_delivery(d: &Value) {
    let s = |k: &str| d[k].as_str().unwrap_or("-").to_owned();
    println!(
        "#{}\t{}\t{}\t{}\t{} attempt(s)\t{}",
        d["id"],
        s("occurred_at"),
        s("event"),
        s("repository"),
        d["attempts"],
        s("status")
    );
    if let Some(error) = d["error_message"].as_str() {
        println!("  {}: {error}", s("error_code"));
    }
}
