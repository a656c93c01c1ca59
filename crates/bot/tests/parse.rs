//! Table tests of the command grammar and of where commands are read in Markdown.

use mirrorhub_bot::{
    parse_comment, Command, CommandError, Found, Target, Visibility, MAX_COMMANDS,
};

fn target(owner: &str, name: &str) -> Option<Target> {
    Some(Target {
        owner: owner.into(),
        name: name.into(),
    })
}

fn mirror(
    url: Option<&str>,
    target: Option<Target>,
    visibility: Option<Visibility>,
    interval: Option<&str>,
) -> Command {
    Command::Mirror {
        url: url.map(Into::into),
        target,
        visibility,
        interval: interval.map(Into::into),
    }
}

fn migrate(url: Option<&str>, target: Option<Target>, visibility: Option<Visibility>) -> Command {
    Command::Migrate {
        url: url.map(Into::into),
        target,
        visibility,
    }
}

/// The one command attempt in `md`.
fn only(md: &str) -> Found {
    let parsed = parse_comment(md);
    assert!(!parsed.truncated, "{md:?}");
    assert_eq!(parsed.commands.len(), 1, "{md:?}: {parsed:?}");
    parsed.commands.into_iter().next().unwrap()
}

fn results(md: &str) -> Vec<Result<Command, CommandError>> {
    parse_comment(md)
        .commands
        .into_iter()
        .map(|f| f.result)
        .collect()
}

const X: Option<&str> = Some("https://github.com/a/b");
const PRIVATE: Option<Visibility> = Some(Visibility::Private);
const PUBLIC: Option<Visibility> = Some(Visibility::Public);

#[test]
fn every_form_of_every_command() {
    let cases: Vec<(&str, Command)> = vec![
        ("/mirror", mirror(None, None, None, None)),
        (
            "/mirror https://github.com/a/b",
            mirror(X, None, None, None),
        ),
        (
            "/mirror https://github.com/a/b as team/app",
            mirror(X, target("team", "app"), None, None),
        ),
        (
            "/mirror as team/app https://github.com/a/b",
            mirror(X, target("team", "app"), None, None),
        ),
        (
            "/mirror as team/app",
            mirror(None, target("team", "app"), None, None),
        ),
        ("/mirror --private", mirror(None, None, PRIVATE, None)),
        (
            "/mirror --public https://github.com/a/b",
            mirror(X, None, PUBLIC, None),
        ),
        (
            "/mirror https://github.com/a/b --public as team/app --interval 90m",
            mirror(X, target("team", "app"), PUBLIC, Some("90m")),
        ),
        (
            "/mirror --interval=90m --private as team/app https://github.com/a/b",
            mirror(X, target("team", "app"), PRIVATE, Some("90m")),
        ),
        (
            "/mirror --interval 24h",
            mirror(None, None, None, Some("24h")),
        ),
        (
            "/mirror --interval '1h 30m'",
            mirror(None, None, None, Some("1h 30m")),
        ),
        (
            "/mirror --interval=\"2h\"",
            mirror(None, None, None, Some("2h")),
        ),
        (
            "/mirror --interval=`2h`",
            mirror(None, None, None, Some("2h")),
        ),
        // Quoted arguments.
        (
            "/mirror \"https://github.com/a/b\"",
            mirror(X, None, None, None),
        ),
        (
            "/mirror 'https://github.com/a/b' as 'team/app'",
            mirror(X, target("team", "app"), None, None),
        ),
        (
            "/mirror \"https://h/a b\"",
            mirror(Some("https://h/a b"), None, None, None),
        ),
        (
            "/mirror 'say \"hi\"'",
            mirror(Some("say \"hi\""), None, None, None),
        ),
        ("/mirror \"as\"", mirror(Some("as"), None, None, None)),
        ("/mirror it's", mirror(Some("it's"), None, None, None)),
        // Inline code passes text literally (Markdown would read `_*b*` as emphasis).
        (
            "/mirror `https://h/a_*b*`",
            mirror(Some("https://h/a_*b*"), None, None, None),
        ),
        (
            "/mirror `https://github.com/a/b` as `team/app`",
            mirror(X, target("team", "app"), None, None),
        ),
        (
            "/mirror https://h/a_b_c",
            mirror(Some("https://h/a_b_c"), None, None, None),
        ),
        (
            "/mirror <https://github.com/a/b>",
            mirror(X, None, None, None),
        ),
        (
            "/mirror https://github.com/a/b <!-- my note -->",
            mirror(X, None, None, None),
        ),
        (
            "/mirror https://h/a?x=1&amp;y=2",
            mirror(Some("https://h/a?x=1&y=2"), None, None, None),
        ),
        // Case and spacing.
        (
            "/Mirror https://github.com/a/b",
            mirror(X, None, None, None),
        ),
        (
            "/MIRROR https://github.com/a/b AS team/app --PRIVATE --Interval=1H",
            mirror(X, target("team", "app"), PRIVATE, Some("1H")),
        ),
        (
            "/mirror   https://github.com/a/b\tas  team/app  ",
            mirror(X, target("team", "app"), None, None),
        ),
        (
            "   /mirror https://github.com/a/b",
            mirror(X, None, None, None),
        ),
        // /migrate
        ("/migrate", migrate(None, None, None)),
        ("/migrate https://github.com/a/b", migrate(X, None, None)),
        (
            "/migrate --private as team/app https://github.com/a/b",
            migrate(X, target("team", "app"), PRIVATE),
        ),
        (
            "/Migrate 'https://github.com/a/b' --public",
            migrate(X, None, PUBLIC),
        ),
        // /sync and /status
        ("/sync", Command::Sync { target: None }),
        (
            "/sync team/app",
            Command::Sync {
                target: target("team", "app"),
            },
        ),
        (
            "/SYNC 'team/app'",
            Command::Sync {
                target: target("team", "app"),
            },
        ),
        (
            "/sync `team/app`",
            Command::Sync {
                target: target("team", "app"),
            },
        ),
        ("/status", Command::Status { target: None }),
        (
            "/status team/app",
            Command::Status {
                target: target("team", "app"),
            },
        ),
        (
            "/Status\tteam/app ",
            Command::Status {
                target: target("team", "app"),
            },
        ),
        (
            "/status 团队/应用",
            Command::Status {
                target: target("团队", "应用"),
            },
        ),
        (
            "/mirror-org",
            Command::MirrorOrg {
                namespace: None,
                owner: None,
            },
        ),
        (
            "/Mirror-Org acme/platform as team",
            Command::MirrorOrg {
                namespace: Some("acme/platform".to_owned()),
                owner: Some("team".to_owned()),
            },
        ),
        (
            "/mirror-org as team `acme`",
            Command::MirrorOrg {
                namespace: Some("acme".to_owned()),
                owner: Some("team".to_owned()),
            },
        ),
        // /help ignores what follows, even what would not parse.
        ("/help", Command::Help),
        ("/HELP", Command::Help),
        ("/help me please", Command::Help),
        ("/help --x 'unbalanced", Command::Help),
    ];
    for (md, want) in cases {
        assert_eq!(only(md).result, Ok(want), "{md:?}");
    }
}

#[test]
fn usage_errors_name_the_command_and_the_problem() {
    let cases = [
        ("/mirror https://a https://b", "mirror", "one URL at most"),
        ("/mirror as", "mirror", "`as` needs `<owner>/<name>`"),
        ("/mirror as --private", "mirror", "`as` needs"),
        (
            "/mirror as team",
            "mirror",
            "expected `<owner>/<name>`, got `team`",
        ),
        (
            "/mirror as team/app/x",
            "mirror",
            "expected `<owner>/<name>`",
        ),
        ("/mirror as /app", "mirror", "expected `<owner>/<name>`"),
        ("/mirror as team/", "mirror", "expected `<owner>/<name>`"),
        (
            "/mirror as 'team /app'",
            "mirror",
            "expected `<owner>/<name>`",
        ),
        ("/mirror as a/b as c/d", "mirror", "`as` given twice"),
        (
            "/mirror --private --public",
            "mirror",
            "`--private` and `--public` together",
        ),
        (
            "/mirror --public x --private",
            "mirror",
            "`--private` and `--public` together",
        ),
        (
            "/mirror --private --private",
            "mirror",
            "`--private` given twice",
        ),
        (
            "/mirror --interval",
            "mirror",
            "`--interval` needs a duration",
        ),
        (
            "/mirror --interval --private",
            "mirror",
            "`--interval` needs a duration",
        ),
        (
            "/mirror --interval=",
            "mirror",
            "`--interval` needs a duration",
        ),
        (
            "/mirror --interval ''",
            "mirror",
            "`--interval` needs a duration",
        ),
        (
            "/mirror --interval 1h --interval=2h",
            "mirror",
            "`--interval` given twice",
        ),
        ("/mirror --force", "mirror", "unknown option `--force`"),
        ("/mirror -p", "mirror", "unknown option `-p`"),
        ("/mirror --private=yes", "mirror", "unknown option"),
        ("/mirror \"https://a", "mirror", "never closed"),
        ("/mirror 'https://a", "mirror", "never closed"),
        ("/mirror --interval='1h", "mirror", "never closed"),
        (
            "/mirror \"https://a\"b",
            "mirror",
            "space after a closing quote",
        ),
        (
            "/mirror \"https://a\"`b`",
            "mirror",
            "space after a closing quote",
        ),
        ("/mirror \"\"", "mirror", "the URL is empty"),
        (
            "/mirror \"-c core.sshCommand=x\"",
            "mirror",
            "cannot start with `-`",
        ),
        (
            "/mirror `--upload-pack=x`",
            "mirror",
            "cannot start with `-`",
        ),
        ("/migrate --interval 1h", "migrate", "takes no `--interval`"),
        ("/migrate --interval=1h", "migrate", "takes no `--interval`"),
        ("/migrate a b", "migrate", "one URL at most"),
        ("/migrate --public --private", "migrate", "together"),
        (
            "/sync a/b c/d",
            "sync",
            "unexpected `c/d`: one `<owner>/<name>` at most",
        ),
        ("/sync team", "sync", "expected `<owner>/<name>`"),
        (
            "/sync https://github.com/a/b",
            "sync",
            "expected `<owner>/<name>`",
        ),
        ("/sync --all", "sync", "unknown option `--all`"),
        ("/sync 'a/b", "sync", "never closed"),
        (
            "/status a/b extra",
            "status",
            "one `<owner>/<name>` at most",
        ),
        (
            "/status a b",
            "status",
            "expected `<owner>/<name>`, got `a`",
        ),
    ];
    for (md, command, problem_part) in cases {
        match only(md).result {
            Err(CommandError::Usage {
                command: c,
                problem,
            }) => {
                assert_eq!(c, command, "{md:?}");
                assert!(problem.contains(problem_part), "{md:?}: {problem}");
            }
            other => panic!("{md:?}: {other:?}"),
        }
    }
}

#[test]
fn usage_error_display_is_the_problem_then_the_usage() {
    let err = only("/sync a b").result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected `<owner>/<name>`, got `a`\nusage: /sync [<owner>/<name>]"
    );
    assert_eq!(err.usage(), Some("/sync [<owner>/<name>]"));
    let err = only("/mirrors").result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown command `/mirrors`\ncommands: /mirror, /migrate, /sync, /status, /mirror-org, /help"
    );
    assert_eq!(err.usage(), None);
}

#[test]
fn long_user_text_is_shortened_in_problems() {
    let md = format!("/sync a/b {}", "x".repeat(10_000));
    let Err(CommandError::Usage { problem, .. }) = only(&md).result else {
        panic!()
    };
    assert!(problem.len() < 200, "{problem}");
}

#[test]
fn unknown_words_are_errors_only_when_they_look_like_commands() {
    for (md, word) in [
        ("/mirrors", "mirrors"),
        ("/Mirrors x", "Mirrors"),
        ("/shrug", "shrug"),
        ("/assign @me", "assign"),
        // Words joined by a hyphen are one word, as in `/mirror-org`.
        ("/mirror-all", "mirror-all"),
    ] {
        assert_eq!(
            only(md).result,
            Err(CommandError::Unknown { word: word.into() }),
            "{md:?}"
        );
    }
    // Not command attempts at all: `/` + letters not followed by whitespace or the end.
    for md in [
        "/mirror: please",
        "/mirror, please",
        "/mirror.",
        "/mirror-",
        "/usr/bin/git is missing",
        "/1",
        "/ mirror",
        "/",
        "//mirror",
        "/mirror`x`",
        "/mirror\u{200b} x",
        "/mirrör",
    ] {
        assert_eq!(parse_comment(md).commands, vec![], "{md:?}");
    }
}

#[test]
fn commands_are_found_on_lines_of_text() {
    let cases: &[(&str, &[&str])] = &[
        ("please run\n/sync a/b", &["/sync a/b"]),
        (
            "/sync a/b\n/status c/d\n\nSome text.\n\n/help",
            &["/sync a/b", "/status c/d", "/help"],
        ),
        ("hard break  \n/sync", &["/sync"]),
        ("hard break\\\n/sync", &["/sync"]),
        ("   /sync", &["/sync"]),
        ("a paragraph\n        /sync", &["/sync"]),
        // Headings are lines of text.
        ("# /sync", &["/sync"]),
        ("## /status team/app ##", &["/status team/app"]),
        ("/sync\n---", &["/sync"]),
        ("/sync\n===", &["/sync"]),
        // List items are lines of text.
        ("- /sync", &["/sync"]),
        ("* /sync\n* /status", &["/sync", "/status"]),
        ("1. /status", &["/status"]),
        ("- a\n  - /sync", &["/sync"]),
        ("- /sync\n\n- /status", &["/sync", "/status"]),
        // Escapes and entities are resolved first.
        ("\\/sync", &["/sync"]),
        ("&#47;sync", &["/sync"]),
        // A paragraph between HTML blocks is a paragraph.
        ("<details>\n\n/sync\n\n</details>", &["/sync"]),
        // Around ignored blocks.
        ("```\n/mirror x\n```\n/sync", &["/sync"]),
        ("/mirror x\n> /sync", &["/mirror x"]),
        ("> /sync\n\n/status", &["/status"]),
        ("<!-- /mirror x -->\n/sync", &["/sync"]),
    ];
    for (md, want) in cases {
        let lines: Vec<String> = parse_comment(md)
            .commands
            .into_iter()
            .map(|f| f.line)
            .collect();
        assert_eq!(&lines, want, "{md:?}");
    }
}

#[test]
fn traps_hold_no_command() {
    for md in [
        // Code.
        "```\n/mirror x\n```",
        "```text\n/mirror x\n```",
        "~~~\n/mirror x\n~~~",
        "````\n```\n/mirror x\n````",
        "```\n/mirror x",
        "`/mirror x`",
        "`` /mirror x ``",
        "see `/mirror x`",
        "    /mirror x",
        "\t/mirror x",
        "- a\n\n        /mirror x",
        // Block quotes.
        "> /mirror x",
        ">/mirror x",
        "> > /mirror x",
        "> quote\n/mirror x",
        "> > quote\n/mirror x",
        "> - /sync",
        "> ```\n> /sync\n> ```",
        // HTML.
        "<!-- /mirror x -->",
        "<!--\n/mirror x\n-->",
        "text <!--\n/mirror x\n-->",
        "text <!-- a -->/sync",
        "<div>\n/mirror x\n</div>",
        "<details>\n/sync\n</details>",
        "<span>/sync</span>",
        // Mid-sentence, markup, other containers.
        "Please /mirror x",
        "please run /sync now",
        "\u{200b}/mirror x",
        "\u{feff}/sync",
        "\u{200f}/sync",
        "*/mirror x*",
        "**/sync**",
        "~~/sync~~",
        "_/sync_",
        "[/sync](https://example.com)",
        "![/sync](x.png)",
        "- [ ] /sync",
        "- [x] /sync",
        "| a |\n| --- |\n| /sync |",
        "a [^1]\n\n[^1]: /sync",
        "[ref]: /sync",
        "",
        "\n\n\n",
        "/",
    ] {
        assert_eq!(parse_comment(md).commands, vec![], "{md:?}");
    }
}

#[test]
fn crlf_and_lone_cr_are_line_breaks() {
    let parsed =
        parse_comment("Hi!\r\n\r\n/mirror https://github.com/a/b as team/app\r\n/sync\r\n");
    assert_eq!(
        results("Hi!\r\n\r\n/mirror https://github.com/a/b as team/app\r\n/sync\r\n"),
        vec![
            Ok(mirror(X, target("team", "app"), None, None)),
            Ok(Command::Sync { target: None })
        ]
    );
    assert!(parsed.commands.iter().all(|f| !f.line.contains('\r')));
    assert_eq!(results("a\r/sync\r/status").len(), 2);
    assert_eq!(results("```\r\n/sync\r\n```\r\n").len(), 0);
}

#[test]
fn unicode_anywhere() {
    assert_eq!(
        results("🎉 Merci !\n/mirror https://example.com/ü/ñ as 团队/应用 --private"),
        vec![Ok(mirror(
            Some("https://example.com/ü/ñ"),
            target("团队", "应用"),
            PRIVATE,
            None
        ))]
    );
    // Right-to-left text.
    assert_eq!(
        results("مرحبا\n/status فريق/تطبيق"),
        vec![Ok(Command::Status {
            target: target("فريق", "تطبيق")
        })]
    );
    assert_eq!(
        results("/mirror https://example.com/🦀 as a/🦀"),
        vec![Ok(mirror(
            Some("https://example.com/🦀"),
            target("a", "🦀"),
            None,
            None
        ))]
    );
    // A no-break space separates words like a space.
    assert_eq!(
        results("/sync\u{a0}a/b"),
        vec![Ok(Command::Sync {
            target: target("a", "b")
        })]
    );
}

#[test]
fn the_line_is_what_the_reader_sees() {
    assert_eq!(only("   /Mirror   https://x  ").line, "/Mirror   https://x");
    assert_eq!(only("/mirror *https://x*").line, "/mirror https://x");
    assert_eq!(only("/mirror `https://x`").line, "/mirror `https://x`");
    assert_eq!(only("/sync a/b <!-- c -->").line, "/sync a/b");
    assert_eq!(only("- /sync a/b").line, "/sync a/b");
}

#[test]
fn keys_collapse_whitespace_and_lower_the_command_word() {
    assert_eq!(
        only("/MiRRor  https://X/Y\tAS  t/a").key(),
        "/mirror https://X/Y AS t/a"
    );
    assert_eq!(only("/SYNC").key(), "/sync");
    assert_eq!(only("/Shrug A").key(), "/shrug A");
}

#[test]
fn at_most_ten_commands() {
    let ten: String = (0..MAX_COMMANDS)
        .map(|i| format!("/sync o/r{i}\n"))
        .collect();
    let parsed = parse_comment(&ten);
    assert_eq!(parsed.commands.len(), 10);
    assert!(!parsed.truncated);

    let eleven = format!("{ten}/status o/last\n");
    let parsed = parse_comment(&eleven);
    assert_eq!(parsed.commands.len(), 10);
    assert!(parsed.truncated);
    assert_eq!(parsed.commands[0].line, "/sync o/r0");
    assert_eq!(parsed.commands[9].line, "/sync o/r9");

    // Errors count too; lines that are not attempts do not.
    let mixed: String = (0..11).map(|i| format!("/nope{i}\n/usr/bin\n")).collect();
    let mixed = mixed.replace(|c: char| c.is_ascii_digit(), "");
    let parsed = parse_comment(&mixed);
    assert_eq!(parsed.commands.len(), 10);
    assert!(parsed.truncated);
}

#[test]
fn a_one_megabyte_comment() {
    // Paragraphs, code blocks, quotes and lists, a megabyte of them, then a command.
    let chunk = "Some text with a /path and `code`.\n\n```\n/mirror x\n```\n\n> /sync\n\n- item\n- /usr/bin\n\n";
    let mut md = chunk.repeat(1_000_000 / chunk.len() + 1);
    md.push_str("/sync team/app\n");
    assert!(md.len() > 1_000_000);
    assert_eq!(
        results(&md),
        vec![Ok(Command::Sync {
            target: target("team", "app")
        })]
    );

    // One line of a megabyte.
    let url = format!("https://example.com/{}", "a".repeat(1_000_000));
    let found = only(&format!("/mirror {url} --private"));
    assert_eq!(found.result, Ok(mirror(Some(&url), None, PRIVATE, None)));

    // A megabyte of commands: the first ten, quickly.
    let many = "/sync a/b\n".repeat(100_000);
    let parsed = parse_comment(&many);
    assert_eq!(parsed.commands.len(), 10);
    assert!(parsed.truncated);

    // A megabyte without line breaks or structure.
    assert_eq!(results(&"/".repeat(1_000_000)), vec![]);
    assert_eq!(results(&"[`<*_".repeat(200_000)), vec![]);
}

#[test]
fn mirror_org_takes_one_namespace_and_one_owner() {
    for (md, problem) in [
        ("/mirror-org a b", "unexpected `b`: one namespace at most"),
        ("/mirror-org as", "`as` needs a hub `<owner>` after it"),
        (
            "/mirror-org as a/b",
            "expected a hub `<owner>` (one name, no `/`), got `a/b`",
        ),
        ("/mirror-org as x as y", "`as` given twice"),
        ("/mirror-org --all", "unknown option `--all`"),
        (
            "/mirror-org a//b",
            "expected a namespace such as `acme` or `acme/platform`, got `a//b`",
        ),
    ] {
        let Err(CommandError::Usage {
            command,
            problem: got,
        }) = only(md).result
        else {
            panic!("{md}: not a usage error");
        };
        assert_eq!(command, "mirror-org", "{md}");
        assert_eq!(got, problem, "{md}");
    }
    // A hyphen joins words of a command only: these are no command attempts.
    for md in ["/mirror-", "/mirror-org-", "/mirror--org", "/mirror-1"] {
        assert!(parse_comment(md).commands.is_empty(), "{md}");
    }
}
