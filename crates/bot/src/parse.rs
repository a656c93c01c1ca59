//! Finding the commands in a comment.

use std::collections::HashMap;
use std::ops::ControlFlow;

use crate::command::{parse_command, Command, CommandError};
use crate::markdown::{slash_lines, Piece, SlashLine};
use crate::text::code_span;

/// A comment holds at most this many commands; the rest are not read.
pub const MAX_COMMANDS: usize = 10;

/// One command attempt found in a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The line as the reader sees it, trimmed: Markdown escapes and entities resolved,
    /// emphasis markers dropped, inline code kept in backticks (`` /mirror `https://…` ``).
    pub line: String,
    pub result: Result<Command, CommandError>,
}

impl Found {
    /// The key the hub records per comment so a command runs once even when the event is
    /// redelivered or the comment edited: the line with whitespace collapsed to single spaces
    /// and the command word in lower case. Its length is the line's: store a hash of it if
    /// that matters.
    pub fn key(&self) -> String {
        normalise(&self.line)
    }
}

/// The commands of a comment, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// At most [`MAX_COMMANDS`].
    pub commands: Vec<Found>,
    /// The comment holds more command attempts than [`MAX_COMMANDS`]; those were not read.
    pub truncated: bool,
}

/// Finds the commands in a comment's Markdown.
///
/// A command attempt is a *line of text* (of a paragraph, a heading or a list item, cut at
/// line breaks; Markdown strips up to 3 leading spaces, 4 make indented code) whose first
/// piece is plain text `/` + ASCII letters, followed by whitespace or the end of the line.
/// Known words (any case) give a `Command` or a `CommandError::Usage`; other words give
/// `CommandError::Unknown`. `/usr/bin`, `/mirror:`, `/mirror,` are not attempts at all.
/// Lines in code (fenced, indented, inline), block quotes, HTML blocks and comments, tables,
/// footnotes, links, emphasis and images are never read. See the crate documentation for
/// every decision.
pub fn parse_comment(markdown: &str) -> Parsed {
    let mut parsed = Parsed::default();
    slash_lines(markdown, |line| {
        let Some(found) = found(&line) else {
            return ControlFlow::Continue(());
        };
        if parsed.commands.len() == MAX_COMMANDS {
            parsed.truncated = true;
            return ControlFlow::Break(());
        }
        parsed.commands.push(found);
        ControlFlow::Continue(())
    });
    parsed
}

fn found(line: &SlashLine) -> Option<Found> {
    let result = parse_command(&line.pieces)?;
    Some(Found {
        line: render(&line.pieces),
        result,
    })
}

fn render(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Code(c) => out.push_str(&code_span(c)),
            Piece::Gap => out.push(' '),
        }
    }
    out.trim().to_owned()
}

fn normalise(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for (i, word) in line.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        } else if let Some(rest) = word.strip_prefix('/') {
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            out.push('/');
            out.push_str(&rest[..letters].to_ascii_lowercase());
            out.push_str(&rest[letters..]);
            continue;
        }
        out.push_str(word);
    }
    out
}

/// For an edited comment: the commands `current` holds that `previous` did not, in order.
///
/// Both texts are read as [`parse_comment`] reads them (so at most [`MAX_COMMANDS`] each, and
/// `truncated` is `current`'s). Commands are compared by [`Found::key`] as a multiset: a command
/// repeated in `current` as often as in `previous` is not new, a third `/sync` where there were
/// two is; moving commands around adds nothing; a changed argument makes a new command.
pub fn new_commands(previous: &str, current: &str) -> Parsed {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for found in parse_comment(previous).commands {
        *seen.entry(found.key()).or_default() += 1;
    }
    let current = parse_comment(current);
    let commands = current
        .commands
        .into_iter()
        .filter(|found| match seen.get_mut(&found.key()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .collect();
    Parsed {
        commands,
        truncated: current.truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_space_and_the_command_word_only() {
        assert_eq!(normalise("/MiRror   A\tB "), "/mirror A B");
        assert_eq!(normalise("/Sync"), "/sync");
    }
}
