//! The bot's replies, as Markdown. Each begins by quoting the command it answers (a block
//! quote holding the command in inline code), takes every string it is given as plain text
//! (escaped, or in inline code), and passes through [`defuse`] last, so no reply can ever be
//! read as a command.

use std::time::Duration;

use crate::command::{help, CommandError};
use crate::defuse;
use crate::text::{code_span, escape_text, link, shorten};

/// What the hub tells about a repository it has just created or synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSummary {
    /// `owner/name` on the hub.
    pub full_name: String,
    pub web_url: String,
    pub clone_url: String,
    pub branches: i64,
    pub tags: i64,
    /// How long the clone or sync took.
    pub duration: Duration,
    /// `mirror` or `migrate`.
    pub mode: String,
    pub webhook: WebhookNote,
}

/// Whether the upstream pushes to the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookNote {
    /// The hub created a push webhook on the upstream.
    Registered,
    /// Creating it failed, for this reason (shown to the user).
    Failed(String),
    /// The hub cannot create one here; someone with access to the upstream can add one
    /// sending push events to `url`.
    Manual { url: String },
    /// Nothing to say (a migration, or a sync).
    NotApplicable,
}

/// A repository's state, as the hub shows it for `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    pub full_name: String,
    pub web_url: String,
    /// `mirror` or `migrate`.
    pub mode: String,
    /// The hub's status word: `cloning`, `syncing`, `synced`, `stale`, `failed` or `paused`.
    pub status: String,
    /// RFC 3339.
    pub last_success: Option<String>,
    /// (code, message).
    pub last_error: Option<(String, String)>,
    pub branches: i64,
    pub tags: i64,
    /// RFC 3339.
    pub next_sync: Option<String>,
    pub paused_reason: Option<String>,
    pub stale: bool,
}

/// The first line of every reply: the command, quoted, in inline code, at most 200 characters.
fn header(command_line: &str) -> String {
    let line = command_line.trim();
    if line.is_empty() {
        "> (no command)\n\n".to_owned()
    } else {
        format!("> {}\n\n", code_span(&shorten(line, 200)))
    }
}

fn finish(command_line: &str, body: &str) -> String {
    defuse(&format!("{}{}\n", header(command_line), body.trim_end()))
}

/// "⏳ …": the command was taken and is running. `what` is plain text written by the hub
/// ("Mirroring https://… into team/app"); it is shown escaped, on one line.
pub fn reply_working(command_line: &str, what: &str) -> String {
    finish(command_line, &format!("⏳ {}…", escape_text(what)))
}

/// "✅ …" for a new mirror or migration: link, clone URL, branches and tags, how long it took,
/// and whether pushes upstream will be followed at once.
pub fn reply_done(command_line: &str, summary: &RepoSummary) -> String {
    let migrated = summary.mode.eq_ignore_ascii_case("migrate");
    let mut body = format!(
        "✅ {} into {} in {}.",
        if migrated { "Migrated" } else { "Mirrored" },
        repo_link(summary),
        human_duration(summary.duration)
    );
    if migrated {
        body.push_str(" This copy is the primary from now on; it is never synced again.");
    }
    body.push_str("\n\n");
    body.push_str(&format!("- Clone: {}\n", code_span(&summary.clone_url)));
    body.push_str(&format!("- {}\n", counts(summary.branches, summary.tags)));
    if let Some(note) = webhook_line(&summary.webhook) {
        body.push_str(&format!("- {note}\n"));
    }
    finish(command_line, &body)
}

/// "✅ Synced …": how many refs changed, branches and tags, how long it took.
pub fn reply_synced(command_line: &str, summary: &RepoSummary, changes: usize) -> String {
    let changed = match changes {
        0 => "already up to date".to_owned(),
        1 => "1 ref changed".to_owned(),
        n => format!("{n} refs changed"),
    };
    let mut body = format!(
        "✅ Synced {} in {}: {changed}.\n\n- {}\n",
        repo_link(summary),
        human_duration(summary.duration),
        counts(summary.branches, summary.tags)
    );
    if let Some(note) = webhook_line(&summary.webhook) {
        body.push_str(&format!("- {note}\n"));
    }
    finish(command_line, &body)
}

/// "❌ `code`: message", and what to do about it (by error code; something generic for codes
/// it does not know).
pub fn reply_failed(command_line: &str, code: &str, message: &str) -> String {
    let body = format!(
        "❌ {}: {}\n\n{}",
        code_span(code),
        escape_text(message),
        advice(code)
    );
    finish(command_line, &body)
}

fn advice(code: &str) -> &'static str {
    match code {
        "invalid_url" | "unsupported_scheme" => {
            "Check the URL: it must be an `https://`, `http://` or `git://` URL of a Git repository."
        }
        "mirror_set_exists" => {
            "This namespace is mirrored into that owner already: its set lists every repository, and the new ones are added as they appear."
        }
        "forge_api_failed" => {
            "The forge's API failed or refused the bot's token; try again later, or ask an administrator of the hub to check the bot's token."
        }
        "url_not_allowed" => {
            "This hub may not connect to that address (a private, loopback or otherwise refused network); use a public URL."
        }
        "invalid_name" => "Choose another name with `as <owner>/<name>`.",
        "repo_exists" => {
            "A repository of that name exists already: choose another name with `as <owner>/<name>`, or ask for `/sync <owner>/<name>` to update it."
        }
        "repo_not_found" => {
            "Check the name; `/status` without a name shows this repository's mirror."
        }
        "upstream_unreachable" => {
            "Check the host name; if the upstream is down, try again later with `/sync`."
        }
        "upstream_auth_failed" => {
            "The upstream refused access: a private repository needs credentials, which an administrator of the hub can add."
        }
        "upstream_not_found" => "There is no repository at that path upstream: check the URL.",
        "not_a_git_repository" => {
            "The URL answered, but not as a Git server: use the repository's clone URL."
        }
        "timeout" => "The upstream was too slow; try again later with `/sync`.",
        "git_failed" => {
            "Try again with `/sync`; if it keeps failing, an administrator can find the details in the hub's sync runs."
        }
        "invalid_state" => {
            "This does not apply to the repository as it is now; `/status` shows its state."
        }
        "unauthorized" | "forbidden" => "You may not do this here.",
        "unavailable" => "The hub is busy or restarting; try again in a few minutes.",
        "internal" => {
            "Something broke on our side; an administrator can find the details in the hub's logs."
        }
        _ => "Try again, or see `/help` for the commands.",
    }
}

/// What the hub tells about the mirror set it has just made for `/mirror-org`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSummary {
    /// The forge namespace: `acme`, `acme/platform`.
    pub namespace: String,
    /// The hub owner the mirrors are made under.
    pub owner: String,
    /// The set's page on the hub.
    pub web_url: String,
}

/// "✅ …" for a new mirror set: what it mirrors, where, and where to follow it. Its
/// repositories are copied in the background, a few at a time; the reply does not wait.
pub fn reply_set_created(command_line: &str, s: &SetSummary) -> String {
    let body = format!(
        "✅ Every repository of {} is being mirrored under {}, and the new ones as they appear: {}.\n\n\
         - The repositories are copied a few at a time; the set's page shows each one's state.\n\
         - Renamed repositories keep their mirror; deleted or archived ones are kept and paused, never deleted.\n",
        code_span(&s.namespace),
        code_span(&s.owner),
        link("the mirror set", &s.web_url),
    );
    finish(command_line, &body)
}

/// The state of a repository: its status word, last successful sync, last error, branches and tags,
/// next sync, and whether it is paused or stale.
pub fn reply_status(command_line: &str, s: &StatusView) -> String {
    let migrated = s.mode.eq_ignore_ascii_case("migrate");
    let mut body = format!(
        "📊 {} · {} · {}\n\n",
        link(&s.full_name, &s.web_url),
        escape_text(&s.mode),
        code_span(&s.status)
    );
    let line = |body: &mut String, text: String| {
        body.push_str("- ");
        body.push_str(&text);
        body.push('\n');
    };
    line(
        &mut body,
        format!(
            "Last successful sync: {}",
            s.last_success
                .as_deref()
                .map_or("never".to_owned(), escape_text)
        ),
    );
    if let Some((code, message)) = &s.last_error {
        line(
            &mut body,
            format!("Last error: {}: {}", code_span(code), escape_text(message)),
        );
    }
    line(&mut body, counts(s.branches, s.tags));
    match (&s.paused_reason, &s.next_sync) {
        (Some(reason), _) => line(
            &mut body,
            format!(
                "⏸️ Paused: {}. A `/sync` resumes it.",
                escape_text(reason).trim_end_matches('.')
            ),
        ),
        (None, Some(next)) => line(&mut body, format!("Next sync: {}", escape_text(next))),
        (None, None) if migrated => line(
            &mut body,
            "Next sync: none (a migration is never synced again)".to_owned(),
        ),
        (None, None) => line(&mut body, "Next sync: not scheduled".to_owned()),
    }
    if s.stale {
        line(
            &mut body,
            "⚠️ Stale: it has not synced successfully for longer than it should have; `/sync` tries now.".to_owned(),
        );
    }
    finish(command_line, &body)
}

/// "🚫 …": `who` may not use the bot here; `rule` (plain text from the hub's configuration)
/// says who may.
pub fn reply_denied(command_line: &str, who: &str, rule: &str) -> String {
    let body = format!(
        "🚫 Sorry, {} may not use this bot here. Who may: {}.",
        escape_text(who),
        escape_text(rule).trim_end_matches('.')
    );
    finish(command_line, &body)
}

/// The answer to an invalid command: what was wrong and the usage of the command (or the list
/// of commands for an unknown one). Quotes the command word only; use [`reply_usage_for`] to
/// quote the whole line.
pub fn reply_usage(error: &CommandError) -> String {
    let word = match error {
        CommandError::Unknown { word } => format!("/{}", shorten(word, 40)),
        CommandError::Usage { command, .. } => format!("/{command}"),
    };
    reply_usage_for(&word, error)
}

/// [`reply_usage`] quoting the command line as typed ([`crate::Found::line`]).
pub fn reply_usage_for(command_line: &str, error: &CommandError) -> String {
    let body = match error {
        CommandError::Unknown { word } => format!(
            "❓ {} is not a command I know.\n\n{}",
            code_span(&format!("/{}", shorten(word, 40))),
            help()
        ),
        // `problem` is our Markdown: user text in it is in inline code already.
        CommandError::Usage { command, problem } => format!(
            "❓ {problem}.\n\nUsage: {}",
            code_span(crate::usage(command).unwrap_or_default())
        ),
    };
    finish(command_line, &body)
}

/// The answer to `/help`: [`help`] under the quoted command.
pub fn reply_help(command_line: &str) -> String {
    finish(command_line, &help())
}

fn repo_link(summary: &RepoSummary) -> String {
    format!("**{}**", link(&summary.full_name, &summary.web_url))
}

fn counts(branches: i64, tags: i64) -> String {
    let plural = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{}, {}",
        plural(branches, "branch", "branches"),
        plural(tags, "tag", "tags")
    )
}

fn webhook_line(note: &WebhookNote) -> Option<String> {
    match note {
        WebhookNote::Registered => Some(
            "Push webhook registered upstream: it syncs on every push from now on.".to_owned(),
        ),
        WebhookNote::Failed(reason) => Some(format!(
            "The push webhook could not be registered upstream ({}); it syncs at least daily instead.",
            escape_text(reason)
        )),
        WebhookNote::Manual { url } => Some(format!(
            "To sync on every push, add a webhook upstream that sends push events to {}; until then it syncs at least daily.",
            code_span(url)
        )),
        WebhookNote::NotApplicable => None,
    }
}

/// A duration as people say it: `350 ms`, `4.2 s`, `3 min 5 s`, `2 h 5 min`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        return format!("{ms} ms");
    }
    let tenths = (ms + 50) / 100;
    if tenths < 600 {
        return format!("{}.{} s", tenths / 10, tenths % 10);
    }
    let secs = (ms + 500) / 1_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m, s) {
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        let cases = [
            (0, "0 ms"),
            (350, "350 ms"),
            (999, "999 ms"),
            (1_000, "1.0 s"),
            (4_200, "4.2 s"),
            (4_249, "4.2 s"),
            (59_940, "59.9 s"),
            (59_960, "1 min"),
            (185_000, "3 min 5 s"),
            (180_000, "3 min"),
            (3_600_000, "1 h"),
            (7_500_000, "2 h 5 min"),
        ];
        for (ms, want) in cases {
            assert_eq!(human_duration(Duration::from_millis(ms)), want, "{ms} ms");
        }
    }
}
