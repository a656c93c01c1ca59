//! The comment bot's language: the commands people type in issue and merge-request comments
//! on GitHub, GitLab or Gitea ([`parse_comment`], [`new_commands`]), and the Markdown the bot
//! answers with (`reply_*`, [`help`]), made safe by [`defuse`] so no reply is ever read as a
//! command, by this bot or another.
//!
//! Pure functions of strings: no I/O, no clock, no async. The hub decides who may run what,
//! validates names, URLs and durations, runs the commands and posts the replies.
//!
//! ```text
//! /mirror  [<url>] [as <owner>/<name>] [--private | --public] [--interval <duration>]
//! /migrate [<url>] [as <owner>/<name>] [--private | --public]
//! /sync    [<owner>/<name>]
//! /status  [<owner>/<name>]
//! /help
//! ```
//!
//! ```
//! use mirrorhub_bot::{parse_comment, reply_working, Command, Target, Visibility};
//!
//! let parsed = parse_comment(
//!     "Could you keep a copy?\n\n/mirror https://github.com/a/b as team/app --private\n\n```\n/sync\n```",
//! );
//! assert!(!parsed.truncated);
//! let [found] = &parsed.commands[..] else { panic!() };
//! assert_eq!(found.line, "/mirror https://github.com/a/b as team/app --private");
//! assert_eq!(
//!     found.result,
//!     Ok(Command::Mirror {
//!         url: Some("https://github.com/a/b".into()),
//!         target: Some(Target { owner: "team".into(), name: "app".into() }),
//!         visibility: Some(Visibility::Private),
//!         interval: None,
//!     })
//! );
//! let reply = reply_working(&found.line, "Mirroring https://github.com/a/b into team/app");
//! assert!(reply.starts_with("> `/mirror https://github.com/a/b as team/app --private`\n\n⏳ "));
//! assert!(parse_comment(&reply).commands.is_empty());
//! ```
//!
//! # Where commands are read
//!
//! The comment is parsed as Markdown (CommonMark with GitHub's tables, task lists,
//! strikethrough and footnotes) with pulldown-cmark. A command stands at the start of a *line
//! of text*: the text of a paragraph, a heading or a list item, cut at soft and hard breaks
//! (`\n`, `\r\n` and `\r` alike). Decisions:
//!
//! - **Indentation** is Markdown's: up to 3 spaces before a paragraph, 4 make indented code
//!   (ignored). A paragraph's continuation lines lose their indentation in Markdown, so
//!   `text\n        /sync` is a command on the second line of a paragraph (it is shown as one).
//! - **Headings count**: `# /sync` and a setext heading `/sync\n---` are lines of text
//!   (writing `---` under a command must not swallow it).
//! - **List items count**: `- /sync` and `1. /sync` are list items whose text starts with
//!   `/sync`. A task-list item `- [ ] /sync` does not (its line starts with the box).
//! - **Ignored**: fenced (```` ``` ````, `~~~`) and indented code blocks, block quotes (nested,
//!   and lazy continuation lines, which belong to the quote), HTML blocks, HTML comments (block
//!   or inline, over several lines too), tables, footnote definitions.
//! - **Plain text only starts a command**: a line whose first piece is inline code, a link,
//!   emphasis (`*/sync*`, `~~/sync~~`), inline HTML or an image is not a command, whatever
//!   follows. A command mid-sentence is not one either.
//! - **Invisible characters are characters**: a zero-width space (or any other character)
//!   before the `/` means the line does not start with `/`: not a command. Markdown escapes
//!   and entities are resolved first, so `\/sync` and `&#47;sync` are `/sync`.
//! - **What a command attempt is**: `/` then ASCII letters (any case: `/Mirror`; words may be
//!   joined by single hyphens: `/mirror-org`), then whitespace or the end of the line. Other lines starting with `/` are not attempts and are
//!   ignored silently: `/usr/bin/git`, `/mirror:`, `/mirror,`, `/1`. An attempt whose word is
//!   none of the six (`/mirrors`, `/shrug`, but also GitLab quick actions such as `/assign`)
//!   gives [`CommandError::Unknown`]: the hub decides whether such lines deserve an answer.
//! - **At most [`MAX_COMMANDS`] (10)** attempts per comment, valid or not, in order;
//!   [`Parsed::truncated`] says more were there (they are not read). Repeated commands are all
//!   reported; [`Found::key`] lets the hub run each line once.
//!
//! # Arguments
//!
//! Words separated by whitespace, after Markdown (so `*x*` is `x`; use inline code to pass
//! text literally: `` /mirror `https://h/a_*b*` ``). A `"` or `'` at the start of a word, or
//! right after the `=` of `--interval=`, opens a quoted value that ends at the same quote (no
//! escapes); a quote inside a word is an ordinary character (`it's`); text right after a
//! closing quote and an unclosed quote are usage errors. A quoted value, or one starting with
//! inline code, is never a keyword or a flag: `"as"` is a URL. `as` and the flags are matched
//! in any case and in any order; the URL may stand anywhere among them (at most one). Flags:
//! `--private`, `--public` (not both, neither twice), `--interval <d>` or `--interval=<d>`
//! (`/mirror` only, once). Any other word starting with `-` is an unknown option; a URL never
//! starts with `-`. `<owner>/<name>` is exactly two non-empty segments without whitespace.
//! `/help` ignores whatever follows it.

#![forbid(unsafe_code)]

mod command;
mod defuse;
mod markdown;
mod parse;
mod reply;
mod text;

pub use command::{help, usage, Command, CommandError, Target, Visibility};
pub use defuse::defuse;
pub use parse::{new_commands, parse_comment, Found, Parsed, MAX_COMMANDS};
pub use reply::{
    human_duration, reply_denied, reply_done, reply_failed, reply_help, reply_set_created,
    reply_status, reply_synced, reply_usage, reply_usage_for, reply_working, RepoSummary,
    SetSummary, StatusView, WebhookNote,
};
