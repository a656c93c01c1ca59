//! `mirrorhub ssh-key …` and `mirrorhub host-keys`: deploy keys for SSH upstreams and an SSH
//! server's host keys, through a running hub's REST API.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::cli::{Client, HubArgs};

type Exit = anyhow::Result<std::process::ExitCode>;
const OK: std::process::ExitCode = std::process::ExitCode::SUCCESS;

#[derive(Subcommand)]
pub enum SshKeyCommand {
    /// Make an Ed25519 deploy key for an owner; prints the public key to add to the upstream.
    Create {
        /// The hub owner (user or organization) whose repositories will use the key.
        owner: String,
        /// A label, e.g. "gerrit deploy key".
        #[arg(long)]
        title: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List an owner's SSH keys.
    List {
        owner: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Delete an SSH key (refused while a repository uses it).
    Delete {
        /// The key's id (see `mirrorhub ssh-key list`).
        id: i64,
        #[command(flatten)]
        hub: HubArgs,
    },
}

pub async fn ssh_key(cmd: SshKeyCommand) -> Exit {
    match cmd {
        SshKeyCommand::Create { owner, title, hub } => {
            let client = Client::new(&hub)?;
            let key = client
                .post("/ssh-keys", json!({"owner": owner, "title": title}))
                .await?;
            if hub.json {
                return print_json(&key);
            }
            // The public key alone on standard output, ready to paste or pipe.
            println!("{}", key["public_key"].as_str().unwrap_or_default());
            eprintln!(
                "SSH key {} for {owner} ({}): add the line above to the upstream as a read-only deploy key, then `mirrorhub repo create URL --as {owner} --ssh-key {}`",
                key["id"],
                key["fingerprint"].as_str().unwrap_or_default(),
                key["id"],
            );
            Ok(OK)
        }
        SshKeyCommand::List { owner, hub } => {
            let client = Client::new(&hub)?;
            let keys = client
                .get(&format!("/ssh-keys?owner={}", query_value(&owner)))
                .await?;
            if hub.json {
                return print_json(&keys);
            }
            for k in keys.as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}",
                    k["id"],
                    k["fingerprint"].as_str().unwrap_or_default(),
                    k["title"].as_str().unwrap_or_default(),
                    k["created_at"].as_str().unwrap_or_default()
                );
            }
            Ok(OK)
        }
        SshKeyCommand::Delete { id, hub } => {
            let client = Client::new(&hub)?;
            client
                .call(reqwest::Method::DELETE, &format!("/ssh-keys/{id}"), None)
                .await?;
            eprintln!("deleted SSH key {id}");
            Ok(OK)
        }
    }
}

/// `mirrorhub host-keys URL`: what the server offers, to compare with its published
/// fingerprints before pinning.
pub async fn host_keys(url: String, hub: HubArgs) -> Exit {
    let client = Client::new(&hub)?;
    let keys = client.post("/ssh/host-keys", json!({"url": url})).await?;
    if hub.json {
        return print_json(&keys);
    }
    print_host_keys(&keys);
    Ok(OK)
}

/// One line per key: fingerprint, then the `type key` line known_hosts takes.
pub fn print_host_keys(keys: &Value) {
    for k in keys.as_array().into_iter().flatten() {
        println!(
            "{}\t{}",
            k["fingerprint"].as_str().unwrap_or_default(),
            k["key"].as_str().unwrap_or_default()
        );
    }
}

/// An owner name as a query value (names are `[A-Za-z0-9._-]`; anything else is escaped so
/// the hub answers with its own error about the name).
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_json(v: &Value) -> Exit {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(OK)
}
