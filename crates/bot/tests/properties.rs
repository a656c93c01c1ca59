//! Property tests: the parser never panics and is deterministic, `defuse` always leaves
//! nothing to read, replies are inert whatever they hold, and the grammar reads back every
//! command it can express, wherever it stands.

use std::time::Duration;

use mirrorhub_bot::{
    defuse, new_commands, parse_comment, reply_denied, reply_done, reply_failed, reply_status,
    reply_synced, reply_working, Command, RepoSummary, StatusView, Target, Visibility, WebhookNote,
    MAX_COMMANDS,
};
use proptest::prelude::*;
use proptest::sample::select;

/// Pieces of Markdown that make lines, blocks, quotes, code, HTML, escapes and commands.
const FRAGMENTS: &[&str] = &[
    "/mirror",
    "/sync",
    "/Status",
    "/help",
    "/x",
    "/",
    "/é",
    "/1",
    " ",
    "  ",
    "   ",
    "    ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    "> ",
    ">",
    "- ",
    "* ",
    "+ ",
    "1. ",
    "2) ",
    "# ",
    "## ",
    "---",
    "===",
    "```",
    "````",
    "~~~",
    "`",
    "``",
    "<!--",
    "-->",
    "<div>",
    "</div>",
    "<details>",
    "<span>",
    "\"",
    "'",
    "as",
    "team/app",
    "https://x/y",
    "--private",
    "--public",
    "--interval",
    "=",
    "90m",
    "&#47;",
    "&sol;",
    "&amp;",
    "\\",
    "*",
    "**",
    "_",
    "~~",
    "[",
    "]",
    "](",
    "(",
    ")",
    "<",
    "!",
    "|",
    "| --- |",
    "[ ] ",
    "[^1]",
    "[^1]: ",
    "\u{200b}",
    "\u{a0}",
    "\u{2028}",
    "é",
    "🎉",
    "ع",
    "a",
    "text",
    "x",
];

fn markdownish() -> impl Strategy<Value = String> {
    prop::collection::vec(select(FRAGMENTS), 0..60).prop_map(|parts| parts.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        markdownish(),
        "[/`>\\-\\n\\r #*_a-z<!\\[\\]&;0-9]{0,80}"
    ]
}

fn raw_lines_safe(text: &str) -> bool {
    text.split(['\n', '\r']).all(|line| {
        let mut chars = line.trim_start_matches([' ', '\t']).chars();
        !(chars.next() == Some('/') && chars.next().is_some_and(char::is_alphabetic))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn parse_never_panics_and_is_deterministic(md in any_text()) {
        let parsed = parse_comment(&md);
        prop_assert!(parsed.commands.len() <= MAX_COMMANDS);
        prop_assert!(!parsed.truncated || parsed.commands.len() == MAX_COMMANDS);
        for found in &parsed.commands {
            prop_assert!(found.line.starts_with('/'), "{:?}", found.line);
            prop_assert!(found.key().starts_with('/'), "{:?}", found.key());
        }
        prop_assert_eq!(&parsed, &parse_comment(&md));
    }

    #[test]
    fn defused_text_holds_no_command(s in any_text()) {
        let safe = defuse(&s);
        let parsed = parse_comment(&safe);
        prop_assert!(parsed.commands.is_empty(), "{:?} -> {:?}: {:?}", s, safe, parsed);
        prop_assert!(raw_lines_safe(&safe), "{:?} -> {:?}", s, safe);
        prop_assert_eq!(defuse(&safe), safe);
    }

    #[test]
    fn new_commands_against_itself_and_nothing(md in markdownish()) {
        prop_assert!(new_commands(&md, &md).commands.is_empty());
        prop_assert_eq!(new_commands("", &md), parse_comment(&md));
    }

    #[test]
    fn replies_are_inert(a in any_text(), b in any_text(), c in any_text(), n in 0usize..3) {
        let summary = RepoSummary {
            full_name: a.clone(),
            web_url: format!("https://hub.example/{b}"),
            clone_url: c.clone(),
            branches: 1,
            tags: 2,
            duration: Duration::from_millis(1234),
            mode: b.clone(),
            webhook: match n {
                0 => WebhookNote::Failed(c.clone()),
                1 => WebhookNote::Manual { url: a.clone() },
                _ => WebhookNote::Registered,
            },
        };
        let status = StatusView {
            full_name: a.clone(),
            web_url: b.clone(),
            mode: c.clone(),
            status: a.clone(),
            last_success: Some(b.clone()),
            last_error: Some((c.clone(), a.clone())),
            branches: 0,
            tags: 0,
            next_sync: Some(c.clone()),
            paused_reason: (n == 0).then(|| b.clone()),
            stale: n == 1,
        };
        for reply in [
            reply_working(&a, &b),
            reply_done(&c, &summary),
            reply_synced(&a, &summary, n),
            reply_failed(&a, &b, &c),
            reply_status(&b, &status),
            reply_denied(&c, &a, &b),
        ] {
            prop_assert!(parse_comment(&reply).commands.is_empty(), "{}", reply);
            prop_assert!(raw_lines_safe(&reply), "{}", reply);
        }
    }
}

// ---- The grammar reads back what it can express ----

#[derive(Debug, Clone, Copy)]
enum Quote {
    Bare,
    Double,
    Single,
    Code,
}

fn quote(s: &str, q: Quote) -> String {
    match q {
        Quote::Bare => s.to_owned(),
        Quote::Double => format!("\"{s}\""),
        Quote::Single => format!("'{s}'"),
        Quote::Code => format!("`{s}`"),
    }
}

fn arb_quote() -> impl Strategy<Value = Quote> {
    select(vec![Quote::Bare, Quote::Double, Quote::Single, Quote::Code])
}

fn arb_target() -> impl Strategy<Value = Option<(Target, Quote)>> {
    proptest::option::of((
        "[A-Za-z0-9][A-Za-z0-9.-]{0,8}",
        "[A-Za-z0-9][A-Za-z0-9.-]{0,8}",
        arb_quote(),
    ))
    .prop_map(|t| t.map(|(owner, name, q)| (Target { owner, name }, q)))
}

fn arb_url() -> impl Strategy<Value = Option<(String, Quote)>> {
    proptest::option::of((
        "https://[a-z]{1,8}\\.example/[a-z0-9./-]{0,12}",
        arb_quote(),
    ))
}

fn arb_visibility() -> impl Strategy<Value = Option<Visibility>> {
    proptest::option::of(select(vec![Visibility::Public, Visibility::Private]))
}

fn arb_interval() -> impl Strategy<Value = Option<(String, usize)>> {
    proptest::option::of(("[0-9]{1,3}[smhd]", 0usize..4))
}

/// A command and the words that express it (after the command word), in canonical order.
fn arb_command() -> impl Strategy<Value = (Command, &'static str, Vec<String>)> {
    let target_words = |t: &Option<(Target, Quote)>| {
        t.as_ref()
            .map(|(t, q)| quote(&t.to_string(), *q))
            .into_iter()
            .collect::<Vec<_>>()
    };
    prop_oneof![
        (arb_url(), arb_target(), arb_visibility(), arb_interval()).prop_map(
            move |(url, target, visibility, interval)| {
                let mut words = Vec::new();
                words.extend(url.as_ref().map(|(u, q)| quote(u, *q)));
                words.extend(
                    target
                        .as_ref()
                        .map(|(t, q)| format!("as {}", quote(&t.to_string(), *q))),
                );
                words.extend(visibility.map(|v| match v {
                    Visibility::Public => "--public".to_owned(),
                    Visibility::Private => "--private".to_owned(),
                }));
                words.extend(interval.as_ref().map(|(d, form)| match form {
                    0 => format!("--interval {d}"),
                    1 => format!("--interval={d}"),
                    2 => format!("--interval '{d}'"),
                    _ => format!("--interval=\"{d}\""),
                }));
                let command = Command::Mirror {
                    url: url.map(|(u, _)| u),
                    target: target.map(|(t, _)| t),
                    visibility,
                    interval: interval.map(|(d, _)| d),
                };
                (command, "mirror", words)
            }
        ),
        (arb_url(), arb_target(), arb_visibility()).prop_map(|(url, target, visibility)| {
            let mut words = Vec::new();
            words.extend(url.as_ref().map(|(u, q)| quote(u, *q)));
            words.extend(
                target
                    .as_ref()
                    .map(|(t, q)| format!("as {}", quote(&t.to_string(), *q))),
            );
            words.extend(visibility.map(|v| match v {
                Visibility::Public => "--public".to_owned(),
                Visibility::Private => "--private".to_owned(),
            }));
            let command = Command::Migrate {
                url: url.map(|(u, _)| u),
                target: target.map(|(t, _)| t),
                visibility,
            };
            (command, "migrate", words)
        }),
        arb_target().prop_map(move |t| {
            let words = target_words(&t);
            (
                Command::Sync {
                    target: t.map(|(t, _)| t),
                },
                "sync",
                words,
            )
        }),
        arb_target().prop_map(move |t| {
            let words = target_words(&t);
            (
                Command::Status {
                    target: t.map(|(t, _)| t),
                },
                "status",
                words,
            )
        }),
        Just((Command::Help, "help", Vec::new())),
    ]
}

/// The command written out: word in some case, words in any order, some whitespace.
fn arb_written() -> impl Strategy<Value = (Command, String)> {
    (
        arb_command(),
        0usize..3,
        select(vec![" ", "  ", "\t", " \u{a0}"]),
    )
        .prop_flat_map(|((command, word, words), case, space)| {
            let word = match case {
                0 => word.to_owned(),
                1 => word.to_uppercase(),
                _ => format!("{}{}", word[..1].to_uppercase(), &word[1..]),
            };
            (
                Just(command),
                Just(word),
                Just(words).prop_shuffle(),
                Just(space),
            )
        })
        .prop_map(|(command, word, words, space)| {
            let mut line = format!("/{word}");
            for w in words {
                line.push_str(space);
                line.push_str(&w);
            }
            (command, line)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn the_grammar_reads_back_what_it_expresses(
        (command, line) in arb_written(),
        before in select(vec!["", "   ", "- ", "1. ", "# ", "Hello!\n", "> quote\n\n", "```\n/sync\n```\n", "<!-- note -->\n"]),
        after in select(vec!["", "\n", "\r\n", "\n\nThanks!", "  \nnext line", "\n- /usr/bin"]),
    ) {
        let md = format!("{before}{line}{after}");
        let parsed = parse_comment(&md);
        prop_assert_eq!(parsed.commands.len(), 1, "{:?}: {:?}", md, parsed);
        prop_assert_eq!(&parsed.commands[0].result, &Ok(command), "{:?}", md);
        // And the same line is never new against itself, whatever moves around it.
        prop_assert!(new_commands(&line, &md).commands.is_empty(), "{:?}", md);
    }
}
