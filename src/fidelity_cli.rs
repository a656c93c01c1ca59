//! `mirrorhub repo refs|backups|restore|bundle`: a mirror's ref filter and the backups of the
//! tips its syncs overwrote, over the hub's REST API.

use std::io::Write;

use anyhow::Context;
use serde_json::{json, Value};

use crate::cli::{split_repo, Client, HubArgs};

/// The `refs` body of a create or PATCH from `--include`/`--exclude` (`None`: neither given).
pub fn filter_body(include: &[String], exclude: &[String]) -> Option<Value> {
    (!include.is_empty() || !exclude.is_empty())
        .then(|| json!({"include": include, "exclude": exclude}))
}

/// `repo refs`: shows the filter, or sets it (`--all` removes it).
pub async fn refs(
    repo: &str,
    include: &[String],
    exclude: &[String],
    all: bool,
    hub: &HubArgs,
) -> anyhow::Result<std::process::ExitCode> {
    let (owner, name) = split_repo(repo)?;
    let client = Client::new(hub)?;
    let body = if all {
        Some(json!({}))
    } else {
        filter_body(include, exclude)
    };
    let r = match body {
        Some(filter) => client
            .call(
                reqwest::Method::PATCH,
                &format!("/repos/{owner}/{name}"),
                Some(json!({ "refs": filter })),
            )
            .await?
            .unwrap_or_default(),
        None => client.get(&format!("/repos/{owner}/{name}")).await?,
    };
    if hub.json {
        println!("{}", serde_json::to_string_pretty(&r["refs"])?);
    } else {
        print_filter(&r["refs"]);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn print_filter(refs: &Value) {
    let list = |k: &str| -> Vec<String> {
        refs[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect()
    };
    let (include, exclude) = (list("include"), list("exclude"));
    if include.is_empty() && exclude.is_empty() {
        println!("  refs:         every branch and tag");
        return;
    }
    if !include.is_empty() {
        println!("  refs:         only {}", include.join(", "));
    }
    if !exclude.is_empty() {
        println!("  refs except:  {}", exclude.join(", "));
    }
}

/// The `behind` and webhook silence lines of `repo show`.
pub fn print_freshness(r: &Value) {
    let behind = &r["behind"];
    if let Some(n) = behind["refs"].as_i64() {
        let checked = behind["checked_at"].as_str().unwrap_or("-");
        match (n, behind["since"].as_str()) {
            (0, _) => println!("  upstream:     in sync (as of {checked})"),
            (n, since) => println!(
                "  upstream:     behind by {n} ref{} since {} (as of {checked})",
                if n == 1 { "" } else { "s" },
                since.unwrap_or(checked)
            ),
        }
    }
    if r["webhook"]["silent"] == true {
        println!(
            "  webhook:      silent since {}: the upstream changed without a delivery; polling until one arrives",
            r["webhook"]["silent_since"].as_str().unwrap_or("-")
        );
    }
}

pub async fn backups(repo: &str, hub: &HubArgs) -> anyhow::Result<std::process::ExitCode> {
    let (owner, name) = split_repo(repo)?;
    let client = Client::new(hub)?;
    let list = client
        .get(&format!("/repos/{owner}/{name}/backups"))
        .await?;
    if hub.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let items = list.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        eprintln!("{repo} has no backups");
    }
    for b in items {
        println!(
            "#{}\t{}\t{}\t{}\trun {}\texpires {}",
            b["id"],
            b["created_at"].as_str().unwrap_or_default(),
            b["ref"].as_str().unwrap_or_default(),
            b["old"]
                .as_str()
                .map(|o| &o[..o.len().min(12)])
                .unwrap_or_default(),
            b["run_id"],
            b["expires_at"].as_str().unwrap_or_default()
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub async fn restore(
    repo: &str,
    id: i64,
    branch: Option<String>,
    hub: &HubArgs,
) -> anyhow::Result<std::process::ExitCode> {
    let (owner, name) = split_repo(repo)?;
    let client = Client::new(hub)?;
    let restored = client
        .post(
            &format!("/repos/{owner}/{name}/backups/{id}/restore"),
            json!({ "branch": branch }),
        )
        .await?;
    if hub.json {
        println!("{}", serde_json::to_string_pretty(&restored)?);
    } else {
        println!(
            "restored {} at {}",
            restored["branch"].as_str().unwrap_or_default(),
            restored["target"].as_str().unwrap_or_default()
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub async fn bundle(
    repo: &str,
    id: i64,
    output: &std::path::Path,
    hub: &HubArgs,
) -> anyhow::Result<std::process::ExitCode> {
    let (owner, name) = split_repo(repo)?;
    let client = Client::new(hub)?;
    let backup = client
        .get(&format!("/repos/{owner}/{name}/backups"))
        .await?
        .as_array()
        .and_then(|all| all.iter().find(|b| b["id"] == id).cloned());
    let bytes = client
        .download(&format!("/repos/{owner}/{name}/backups/{id}/bundle"))
        .await?;
    let mut file = std::fs::File::create(output)
        .with_context(|| format!("could not create {}", output.display()))?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    eprintln!("wrote {} ({} bytes)", output.display(), bytes.len());
    if let Some(b) = backup {
        eprintln!(
            "bring it into a clone with: git fetch {} '{}:refs/heads/restored'",
            output.display(),
            b["backup_ref"].as_str().unwrap_or_default()
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
