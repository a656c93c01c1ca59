//! What an edited comment adds.

use mirrorhub_bot::{new_commands, parse_comment};

fn new_lines(previous: &str, current: &str) -> Vec<String> {
    new_commands(previous, current)
        .commands
        .into_iter()
        .map(|f| f.line)
        .collect()
}

#[test]
fn only_what_the_edit_adds() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("new comment", "", "/sync", &["/sync"]),
        ("unchanged", "/sync", "/sync", &[]),
        (
            "text edited around",
            "/sync a/b",
            "Thanks!\n\n/sync a/b\n\nCheers",
            &[],
        ),
        ("added line", "/sync", "/sync\n/status", &["/status"]),
        (
            "added in the middle",
            "/sync\n/help",
            "/sync\n/status\n/help",
            &["/status"],
        ),
        (
            "changed args",
            "/mirror https://a",
            "/mirror https://b",
            &["/mirror https://b"],
        ),
        (
            "flag added",
            "/mirror https://a",
            "/mirror https://a --private",
            &["/mirror https://a --private"],
        ),
        ("repeated once more", "/sync", "/sync\n/sync", &["/sync"]),
        ("repeated as often", "/sync\n/sync", "/sync\n/sync", &[]),
        ("repeated less", "/sync\n/sync", "/sync", &[]),
        ("removed", "/sync\n/status", "/status", &[]),
        ("all removed", "/sync\n/status", "never mind", &[]),
        (
            "reordered",
            "/sync\n/status\n/help",
            "/help\n/sync\n/status",
            &[],
        ),
        ("whitespace and case", "/sync   a/b", "/SYNC a/b", &[]),
        (
            "argument case matters",
            "/sync a/b",
            "/sync A/b",
            &["/sync A/b"],
        ),
        (
            "markup that shows the same",
            "/sync *a/b*",
            "/sync a/b",
            &[],
        ),
        ("moved out of code", "`/sync`", "/sync", &["/sync"]),
        ("moved into code", "/sync", "`/sync`", &[]),
        ("moved into a quote", "/sync", "> /sync", &[]),
        (
            "error fixed",
            "/mirror --bogus",
            "/mirror --private",
            &["/mirror --private"],
        ),
        ("unknown fixed", "/snyc", "/sync", &["/sync"]),
        (
            "both new, in order",
            "",
            "/status\n/sync",
            &["/status", "/sync"],
        ),
    ];
    for (name, previous, current, want) in cases {
        assert_eq!(&new_lines(previous, current), want, "{name}");
    }
}

#[test]
fn results_are_parsed_like_parse_comment() {
    let got = new_commands("/sync", "/sync\n/mirror --private --public");
    assert_eq!(
        got.commands,
        parse_comment("/mirror --private --public").commands
    );
}

#[test]
fn ten_commands_per_comment_at_most() {
    let ten: String = (0..10).map(|i| format!("/sync o/r{i}\n")).collect();
    let eleven = format!("{ten}/sync o/r10\n");
    // The eleventh is past the limit in both: never read, so never new.
    let got = new_commands(&ten, &eleven);
    assert!(got.commands.is_empty());
    assert!(got.truncated);
    let got = new_commands("", &eleven);
    assert_eq!(got.commands.len(), 10);
    assert!(got.truncated);
    let got = new_commands(&eleven, &ten);
    assert!(got.commands.is_empty());
    assert!(!got.truncated);
}
