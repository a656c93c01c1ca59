//! The replies: what they say, and that none of them can be read as a command, whatever the
//! hub or a user put in them.

use std::time::Duration;

use mirrorhub_bot::{
    defuse, help, parse_comment, reply_denied, reply_done, reply_failed, reply_help, reply_status,
    reply_synced, reply_usage, reply_usage_for, reply_working, usage, RepoSummary, StatusView,
    WebhookNote,
};

fn summary(webhook: WebhookNote) -> RepoSummary {
    RepoSummary {
        full_name: "team/app".into(),
        web_url: "https://hub.example/team/app".into(),
        clone_url: "https://hub.example/team/app.git".into(),
        branches: 12,
        tags: 1,
        duration: Duration::from_millis(4_200),
        mode: "mirror".into(),
        webhook,
    }
}

fn status() -> StatusView {
    StatusView {
        full_name: "team/app".into(),
        web_url: "https://hub.example/team/app".into(),
        mode: "mirror".into(),
        status: "synced".into(),
        last_success: Some("2026-11-23T10:00:00Z".into()),
        last_error: None,
        branches: 3,
        tags: 0,
        next_sync: Some("2026-11-24T10:00:00Z".into()),
        paused_reason: None,
        stale: false,
    }
}

/// No raw line starts, after spaces and tabs, with `/` and a letter.
fn raw_lines_safe(text: &str) -> bool {
    text.split(['\n', '\r']).all(|line| {
        let mut chars = line.trim_start_matches([' ', '\t']).chars();
        !(chars.next() == Some('/') && chars.next().is_some_and(char::is_alphabetic))
    })
}

#[track_caller]
fn assert_inert(reply: &str) {
    let parsed = parse_comment(reply);
    assert!(parsed.commands.is_empty(), "{reply}\n{parsed:?}");
    assert!(raw_lines_safe(reply), "{reply}");
}

#[test]
fn done() {
    let reply = reply_done(
        "/mirror https://github.com/a/b as team/app",
        &summary(WebhookNote::Registered),
    );
    assert_eq!(
        reply,
        "> `/mirror https://github.com/a/b as team/app`\n\
         \n\
         ✅ Mirrored into **[team/app](<https://hub.example/team/app>)** in 4.2 s.\n\
         \n\
         - Clone: `https://hub.example/team/app.git`\n\
         - 12 branches, 1 tag\n\
         - Push webhook registered upstream: it syncs on every push from now on.\n"
    );
    assert_inert(&reply);
}

#[test]
fn done_tells_how_the_webhook_went() {
    let failed = reply_done(
        "/mirror",
        &summary(WebhookNote::Failed("403 Forbidden".into())),
    );
    assert!(
        failed.contains("could not be registered upstream (403 Forbidden)"),
        "{failed}"
    );
    assert!(failed.contains("at least daily"), "{failed}");

    let manual = reply_done(
        "/mirror",
        &summary(WebhookNote::Manual {
            url: "https://hub.example/hooks/repos/team/app".into(),
        }),
    );
    assert!(
        manual.contains("add a webhook upstream that sends push events to `https://hub.example/hooks/repos/team/app`"),
        "{manual}"
    );

    let none = reply_done("/mirror", &summary(WebhookNote::NotApplicable));
    assert!(!none.to_lowercase().contains("webhook"), "{none}");

    let mut migrated = summary(WebhookNote::NotApplicable);
    migrated.mode = "migrate".into();
    migrated.duration = Duration::from_secs(185);
    let reply = reply_done("/migrate https://github.com/a/b", &migrated);
    assert!(reply.contains("✅ Migrated into"), "{reply}");
    assert!(reply.contains("in 3 min 5 s."), "{reply}");
    assert!(reply.contains("never synced again"), "{reply}");
    for r in [failed, manual, none, reply] {
        assert_inert(&r);
    }
}

#[test]
fn working_and_synced() {
    let reply = reply_working("/sync", "Syncing team/app");
    assert_eq!(reply, "> `/sync`\n\n⏳ Syncing team/app…\n");

    for (changes, says) in [
        (0, "already up to date"),
        (1, "1 ref changed"),
        (7, "7 refs changed"),
    ] {
        let reply = reply_synced("/sync", &summary(WebhookNote::NotApplicable), changes);
        assert!(
            reply.starts_with("> `/sync`\n\n✅ Synced **[team/app]"),
            "{reply}"
        );
        assert!(reply.contains(&format!("in 4.2 s: {says}.")), "{reply}");
        assert!(reply.contains("- 12 branches, 1 tag\n"), "{reply}");
        assert_inert(&reply);
    }
}

#[test]
fn failed() {
    let reply = reply_failed(
        "/mirror https://x",
        "upstream_auth_failed",
        "authentication failed",
    );
    assert_eq!(
        reply,
        "> `/mirror https://x`\n\n❌ `upstream_auth_failed`: authentication failed\n\n\
         The upstream refused access: a private repository needs credentials, which an administrator of the hub can add.\n"
    );
    let unknown = reply_failed("/sync", "something_new", "odd");
    assert!(unknown.contains("Try again, or see `/help`"), "{unknown}");
    for code in [
        "invalid_url",
        "unsupported_scheme",
        "url_not_allowed",
        "invalid_name",
        "repo_exists",
        "repo_not_found",
        "upstream_unreachable",
        "upstream_not_found",
        "not_a_git_repository",
        "timeout",
        "git_failed",
        "invalid_state",
        "unauthorized",
        "forbidden",
        "unavailable",
        "internal",
    ] {
        let reply = reply_failed("/sync", code, "m");
        assert!(!reply.contains("Try again, or see"), "{code}: {reply}");
        assert_inert(&reply);
    }
}

#[test]
fn status_says_everything() {
    let reply = reply_status("/status", &status());
    assert_eq!(
        reply,
        "> `/status`\n\n📊 [team/app](<https://hub.example/team/app>) · mirror · `synced`\n\n\
         - Last successful sync: 2026-11-23T10:00:00Z\n\
         - 3 branches, 0 tags\n\
         - Next sync: 2026-11-24T10:00:00Z\n"
    );

    let mut troubled = status();
    troubled.status = "failed".into();
    troubled.last_success = None;
    troubled.last_error = Some(("timeout".into(), "no data for 60 s".into()));
    troubled.paused_reason = Some("failed 5 times in a row".into());
    troubled.next_sync = None;
    troubled.stale = true;
    let reply = reply_status("/status team/app", &troubled);
    for part in [
        "`failed`",
        "- Last successful sync: never\n",
        "- Last error: `timeout`: no data for 60 s\n",
        "- ⏸️ Paused: failed 5 times in a row. A `/sync` resumes it.\n",
        "- ⚠️ Stale:",
    ] {
        assert!(reply.contains(part), "{part}\n{reply}");
    }
    assert!(!reply.contains("Next sync"), "{reply}");

    let mut migrated = status();
    migrated.mode = "migrate".into();
    migrated.next_sync = None;
    let reply = reply_status("/status", &migrated);
    assert!(
        reply.contains("Next sync: none (a migration is never synced again)"),
        "{reply}"
    );
}

#[test]
fn denied_says_who_may() {
    let reply = reply_denied(
        "/sync",
        "eve",
        "members with write access to this repository",
    );
    assert_eq!(
        reply,
        "> `/sync`\n\n🚫 Sorry, eve may not use this bot here. Who may: members with write access to this repository.\n"
    );
}

#[test]
fn usage_replies() {
    let found = &parse_comment("/mirror --private --public").commands[0];
    let error = found.result.as_ref().unwrap_err();
    let reply = reply_usage_for(&found.line, error);
    assert_eq!(
        reply,
        "> `/mirror --private --public`\n\n❓ `--private` and `--public` together.\n\n\
         Usage: `/mirror [<url>] [as <owner>/<name>] [--private | --public] [--interval <duration>]`\n"
    );
    assert!(reply_usage(error).starts_with("> `/mirror`\n\n❓ `--private`"));

    let found = &parse_comment("/mirrors now").commands[0];
    let reply = reply_usage(found.result.as_ref().unwrap_err());
    assert!(
        reply.starts_with("> `/mirrors`\n\n❓ `/mirrors` is not a command I know."),
        "{reply}"
    );
    assert!(reply.contains(&help()), "{reply}");
    assert_inert(&reply);
}

#[test]
fn help_lists_the_six_commands() {
    let help = help();
    for command in ["mirror", "migrate", "sync", "status", "mirror-org", "help"] {
        let usage = usage(command).unwrap();
        assert!(help.contains(&format!("- `{usage}` ")), "{usage}\n{help}");
    }
    assert_eq!(help.lines().filter(|l| l.starts_with("- `/")).count(), 6);
    assert_inert(&help);
    let reply = reply_help("/help");
    assert!(reply.starts_with("> `/help`\n\n**Commands**"), "{reply}");
    assert_inert(&reply);
}

#[test]
fn usage_lines() {
    assert_eq!(usage("sync"), Some("/sync [<owner>/<name>]"));
    assert_eq!(usage("/Sync"), Some("/sync [<owner>/<name>]"));
    assert_eq!(
        usage("/migrate"),
        Some("/migrate [<url>] [as <owner>/<name>] [--private | --public]")
    );
    assert_eq!(usage("/help"), Some("/help"));
    assert_eq!(usage("mirrors"), None);
    assert_eq!(usage(""), None);
}

/// Text users control, trying every way to make a line of a reply start with a command.
const INJECTIONS: &[&str] = &[
    "x\n/mirror evil",
    "x\r\n/mirror evil",
    "x\r/mirror evil",
    "/mirror evil",
    "  /sync",
    "x\n    /sync",
    "x\n- /sync",
    "x\n1. /sync",
    "x\n# /sync",
    "x\n\n/sync\n---",
    "x\n\\/sync",
    "x\n&#47;sync",
    "x\n&sol;sync",
    "x`\n/sync`",
    "`` x\n/sync ``",
    "```\n/sync\n```",
    "~~~\n/sync",
    "x <!--\n/sync\n-->",
    "-->\n/sync",
    "x\n> y\n\n/sync",
    "</details>\n\n/sync",
    "<div>\n\n/sync",
    "](\n/sync",
    "x\u{2028}/sync",
    "x  \n/sync",
    "x\\\n/sync",
    "`x`\n/sync `y`",
];

#[test]
fn no_reply_can_be_read_as_a_command() {
    for &evil in INJECTIONS {
        let mut s = summary(WebhookNote::Failed(evil.into()));
        s.full_name = evil.into();
        s.web_url = format!("https://hub.example/{evil}");
        s.clone_url = evil.into();
        s.mode = evil.into();
        let mut manual = s.clone();
        manual.webhook = WebhookNote::Manual { url: evil.into() };
        let mut st = status();
        st.full_name = evil.into();
        st.web_url = evil.into();
        st.mode = evil.into();
        st.status = evil.into();
        st.last_success = Some(evil.into());
        st.last_error = Some((evil.into(), evil.into()));
        st.next_sync = Some(evil.into());
        let mut paused = st.clone();
        paused.paused_reason = Some(evil.into());
        paused.stale = true;

        let replies = [
            reply_working(evil, evil),
            reply_done(evil, &s),
            reply_done(evil, &manual),
            reply_synced(evil, &s, 3),
            reply_failed(evil, evil, evil),
            reply_status(evil, &st),
            reply_status(evil, &paused),
            reply_denied(evil, evil, evil),
            reply_help(evil),
        ];
        assert_inert(&defuse(evil));
        for reply in replies {
            assert_inert(&reply);
            assert!(
                !reply.starts_with("```"),
                "fell back to a code block:\n{reply}"
            );
        }
        // Commands whose arguments carry the injection (inside quotes or inline code).
        for md in [
            format!("/mirror '{evil}'"),
            format!("/sync `{evil}`"),
            format!("/mirror --private --public {evil}"),
            format!("/{}", evil.replace(|c: char| !c.is_ascii_alphabetic(), "")),
        ] {
            for found in parse_comment(&md).commands {
                assert_inert(&reply_usage_for(
                    &found.line,
                    found
                        .result
                        .as_ref()
                        .err()
                        .unwrap_or(&mirrorhub_bot::CommandError::Unknown { word: "x".into() }),
                ));
                if let Err(e) = &found.result {
                    assert_inert(&reply_usage(e));
                }
            }
        }
    }
}

#[test]
fn defuse_leaves_safe_text_alone() {
    for text in [
        "",
        "plain text",
        "a /path mid-line\n`/sync` in code",
        "> /sync in a quote",
        "- `/sync` as code",
        "/1 is not a word",
    ] {
        assert_eq!(defuse(text), text);
    }
}

#[test]
fn defuse_prefers_inline_code() {
    assert_eq!(defuse("run\n/sync a/b\nnow"), "run\n`/sync a/b`\nnow");
    assert_eq!(defuse("- /sync"), "- `/sync`");
    assert_eq!(defuse("x\r\n  /sync  \r\n"), "x\r\n  `/sync`  \r\n");
    assert_eq!(defuse("/a `b`"), "`` /a `b` ``");
}
