//! `mirrorhub whoami | user | token | org …`: users, organizations and access tokens on a
//! running hub, through its REST API.

use clap::Subcommand;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::cli::{read_stdin_secret, Client, HubArgs};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (site admins).
    Create {
        username: String,
        /// Read a password for the user from standard input (lets them create their own
        /// tokens with `mirrorhub token create --password-stdin`).
        #[arg(long)]
        password_stdin: bool,
        /// Make the user a site admin.
        #[arg(long)]
        site_admin: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List users and organizations (site admins).
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Set a user's password, read from standard input (yourself, or anyone as a site admin).
    Passwd {
        username: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Delete a user with their tokens and memberships (site admins; refused while they own
    /// repositories).
    Delete {
        username: String,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a personal access token and print it (shown only now).
    Create {
        /// The user the token is for (default: the user of MIRRORHUB_TOKEN).
        #[arg(long)]
        user: Option<String>,
        /// What the token is for, e.g. laptop or ci.
        #[arg(long)]
        name: String,
        /// read, write or admin (each includes the ones before).
        #[arg(long, default_value = "read")]
        scope: String,
        /// The token stops working after this long, e.g. 30d, 12h.
        #[arg(long)]
        expires_in: Option<String>,
        /// Prove who you are with your password (read from standard input) instead of a token:
        /// how a user gets a first token.
        #[arg(long, requires = "user")]
        password_stdin: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List a user's tokens (never their secrets).
    List {
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Revoke a token by its id.
    Revoke {
        id: i64,
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization; you become its admin.
    Create {
        name: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Delete an organization (its admins; refused while it owns repositories).
    Delete {
        name: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List an organization's members.
    Members {
        org: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Add a member, or change their role.
    AddMember {
        org: String,
        username: String,
        /// read, write or admin.
        #[arg(long, default_value = "write")]
        role: String,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Remove a member.
    RemoveMember {
        org: String,
        username: String,
        #[command(flatten)]
        hub: HubArgs,
    },
}

type Exit = anyhow::Result<std::process::ExitCode>;
const OK: std::process::ExitCode = std::process::ExitCode::SUCCESS;

pub async fn whoami(hub: HubArgs) -> Exit {
    let me = Client::new(&hub)?.get("/user").await?;
    if hub.json {
        return print_json(&me);
    }
    let scopes = join(&me["scopes"]);
    match me["username"].as_str() {
        Some(name) => println!("{name} (scopes: {scopes})"),
        None => println!("the hub's admin token (scopes: {scopes})"),
    }
    if me["site_admin"] == true {
        println!("  site admin");
    }
    for org in me["organizations"].as_array().into_iter().flatten() {
        println!(
            "  {}: {}",
            org["org"].as_str().unwrap_or_default(),
            org["role"].as_str().unwrap_or_default()
        );
    }
    Ok(OK)
}

pub async fn user(cmd: UserCommand) -> Exit {
    match cmd {
        UserCommand::Create {
            username,
            password_stdin,
            site_admin,
            hub,
        } => {
            let password = password_stdin
                .then(|| read_stdin_secret("the password"))
                .transpose()?
                .map(|p| p.expose_secret().to_owned());
            let body =
                json!({"username": username, "password": password, "site_admin": site_admin});
            let user = Client::new(&hub)?.post("/users", body).await?;
            if hub.json {
                return print_json(&user);
            }
            eprintln!(
                "created user {}; give them a token: mirrorhub token create --user {} --name <what for> --scope write",
                user["name"].as_str().unwrap_or_default(),
                user["name"].as_str().unwrap_or_default()
            );
            Ok(OK)
        }
        UserCommand::List { hub } => {
            let accounts = Client::new(&hub)?.get("/users").await?;
            if hub.json {
                return print_json(&accounts);
            }
            for a in accounts.as_array().into_iter().flatten() {
                let admin = if a["site_admin"] == true {
                    "\tsite admin"
                } else {
                    ""
                };
                println!(
                    "{}\t{}{admin}",
                    a["name"].as_str().unwrap_or_default(),
                    a["kind"].as_str().unwrap_or_default()
                );
            }
            Ok(OK)
        }
        UserCommand::Passwd { username, hub } => {
            let password = read_stdin_secret("the new password")?;
            Client::new(&hub)?
                .call(
                    reqwest::Method::PATCH,
                    &format!("/users/{username}"),
                    Some(json!({"password": password.expose_secret()})),
                )
                .await?;
            eprintln!("the password of {username} is changed");
            Ok(OK)
        }
        UserCommand::Delete { username, hub } => {
            delete(&hub, &format!("/users/{username}")).await?;
            eprintln!("deleted user {username}");
            Ok(OK)
        }
    }
}

async fn delete(hub: &HubArgs, path: &str) -> anyhow::Result<()> {
    Client::new(hub)?
        .call(reqwest::Method::DELETE, path, None)
        .await?;
    Ok(())
}

pub async fn token(cmd: TokenCommand) -> Exit {
    match cmd {
        TokenCommand::Create {
            user,
            name,
            scope,
            expires_in,
            password_stdin,
            hub,
        } => {
            let mut client = Client::new(&hub)?;
            if password_stdin {
                let password = read_stdin_secret("the password")?;
                client = client.with_password(user.clone().unwrap_or_default(), password);
            }
            let user = match user {
                Some(u) => u,
                None => me(&client).await?,
            };
            let body = json!({"name": name, "scopes": [scope], "expires_in": expires_in});
            let made = client.post(&format!("/users/{user}/tokens"), body).await?;
            if hub.json {
                return print_json(&made);
            }
            // The secret alone on standard output, so `$(mirrorhub token create …)` works.
            println!("{}", made["token"].as_str().unwrap_or_default());
            eprintln!(
                "token {} (id {}) for {user}, scopes {}{}: shown only now; store it safely",
                made["name"].as_str().unwrap_or_default(),
                made["id"],
                join(&made["scopes"]),
                made["expires_at"]
                    .as_str()
                    .map(|at| format!(", expires {at}"))
                    .unwrap_or_default()
            );
            Ok(OK)
        }
        TokenCommand::List { user, hub } => {
            let client = Client::new(&hub)?;
            let user = match user {
                Some(u) => u,
                None => me(&client).await?,
            };
            let tokens = client.get(&format!("/users/{user}/tokens")).await?;
            if hub.json {
                return print_json(&tokens);
            }
            for t in tokens.as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}\tlast used {}",
                    t["id"],
                    t["name"].as_str().unwrap_or_default(),
                    join(&t["scopes"]),
                    t["state"].as_str().unwrap_or_default(),
                    t["last_used_at"].as_str().unwrap_or("never")
                );
            }
            Ok(OK)
        }
        TokenCommand::Revoke { id, user, hub } => {
            let client = Client::new(&hub)?;
            let user = match user {
                Some(u) => u,
                None => me(&client).await?,
            };
            client
                .call(
                    reqwest::Method::DELETE,
                    &format!("/users/{user}/tokens/{id}"),
                    None,
                )
                .await?;
            eprintln!("revoked token {id} of {user}");
            Ok(OK)
        }
    }
}

pub async fn org(cmd: OrgCommand) -> Exit {
    match cmd {
        OrgCommand::Create { name, hub } => {
            let org = Client::new(&hub)?
                .post("/orgs", json!({"name": name}))
                .await?;
            if hub.json {
                return print_json(&org);
            }
            eprintln!(
                "created organization {}",
                org["name"].as_str().unwrap_or_default()
            );
            Ok(OK)
        }
        OrgCommand::Delete { name, hub } => {
            delete(&hub, &format!("/orgs/{name}")).await?;
            eprintln!("deleted organization {name}");
            Ok(OK)
        }
        OrgCommand::Members { org, hub } => {
            let members = Client::new(&hub)?
                .get(&format!("/orgs/{org}/members"))
                .await?;
            if hub.json {
                return print_json(&members);
            }
            for m in members.as_array().into_iter().flatten() {
                println!(
                    "{}\t{}",
                    m["username"].as_str().unwrap_or_default(),
                    m["role"].as_str().unwrap_or_default()
                );
            }
            Ok(OK)
        }
        OrgCommand::AddMember {
            org,
            username,
            role,
            hub,
        } => {
            Client::new(&hub)?
                .call(
                    reqwest::Method::PUT,
                    &format!("/orgs/{org}/members/{username}"),
                    Some(json!({"role": role})),
                )
                .await?;
            eprintln!("{username} is a member of {org} with the {role} role");
            Ok(OK)
        }
        OrgCommand::RemoveMember { org, username, hub } => {
            Client::new(&hub)?
                .call(
                    reqwest::Method::DELETE,
                    &format!("/orgs/{org}/members/{username}"),
                    None,
                )
                .await?;
            eprintln!("{username} is no longer a member of {org}");
            Ok(OK)
        }
    }
}

/// The user the client's token belongs to.
async fn me(client: &Client) -> anyhow::Result<String> {
    let me = client.get("/user").await?;
    me["username"].as_str().map(str::to_owned).ok_or_else(|| {
        anyhow::anyhow!("the hub's admin token belongs to no user: say which with --user")
    })
}

fn join(list: &Value) -> String {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn print_json(v: &Value) -> Exit {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(OK)
}
