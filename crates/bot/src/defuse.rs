//! Making text safe to post: no line of it can be read as a command, by us or another bot.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use crate::markdown::{slash_lines, Piece, SlashLine};
use crate::text::code_span_with;

/// How many times the Markdown pass may run before [`defuse`] gives up on keeping the
/// formatting and fences the whole text as code. Each pass puts every line it finds in inline
/// code, so one pass suffices for everything but contrived input.
const PASSES: usize = 3;

/// Makes `text` safe to post as a reply: afterwards no line starts with `/` followed by a
/// letter, neither in the raw text (after any spaces and tabs, so naive bots see nothing) nor as
/// a line of text of the rendered Markdown (which [`crate::parse_comment`] reads: list items,
/// headings, escapes like `\/` and `&#47;` included), so the bot can never trigger itself or
/// another bot.
///
/// Such a line is put in inline code, from its `/` to its end: `` `/mirror x` ``. The fence is
/// a run of backticks found nowhere else in the text, so it can pair with nothing else. The
/// result is read back; if a contrived input still holds a command line after a few rounds,
/// the whole text is returned as a fenced code block instead. No zero-width characters are
/// used. Text without such lines comes back unchanged.
pub fn defuse(text: &str) -> String {
    let mut s = raw_pass(text);
    for _ in 0..PASSES {
        let spots = markdown_spots(&s);
        if spots.is_empty() {
            return s;
        }
        s = raw_pass(&wrap_spots(&s, &spots));
    }
    fenced(text)
}

/// Does this (rendered or raw) line start with `/` and a letter?
fn starts_like_a_command(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('/') && chars.next().is_some_and(char::is_alphabetic)
}

fn line_is_dangerous(line: &SlashLine) -> bool {
    matches!(line.pieces.first(), Some(Piece::Text(t)) if starts_like_a_command(t))
}

/// Source offsets of the lines of text that start like a command.
fn markdown_spots(s: &str) -> Vec<usize> {
    let mut spots = Vec::new();
    slash_lines(s, |line| {
        if line_is_dangerous(&line) {
            spots.push(line.source_start);
        }
        ControlFlow::Continue(())
    });
    spots
}

/// Lengths of the runs of backticks in `s`.
fn backtick_runs(s: &str) -> BTreeSet<usize> {
    let mut runs = BTreeSet::new();
    let mut run = 0;
    for b in s.bytes().chain(std::iter::once(b'\n')) {
        if b == b'`' {
            run += 1;
        } else if run > 0 {
            runs.insert(run);
            run = 0;
        }
    }
    runs
}

/// A fence for a code span holding `content` in `doc`: longer than any run inside `content`,
/// and of a length no run in `doc` has, so no other backticks can pair with it.
fn fence_for(content: &str, doc_runs: &BTreeSet<usize>) -> usize {
    let mut fence = crate::text::longest_backtick_run(content) + 1;
    while doc_runs.contains(&fence) {
        fence += 1;
    }
    fence
}

fn line_end(s: &str, from: usize) -> usize {
    s[from..].find(['\n', '\r']).map_or(s.len(), |i| from + i)
}

/// Puts each line found by the Markdown pass in inline code, from its start to the end of its
/// source line.
fn wrap_spots(s: &str, spots: &[usize]) -> String {
    let runs = backtick_runs(s);
    let mut out = String::with_capacity(s.len() + spots.len() * 4);
    let mut cursor = 0;
    for &spot in spots {
        if spot < cursor || spot > s.len() || !s.is_char_boundary(spot) {
            continue; // the next pass sees it again
        }
        // An escaped slash (`\/`): its text starts after the backslash; take the backslash too.
        let start = if spot > cursor && s[..spot].ends_with('\\') && s[spot..].starts_with('/') {
            spot - 1
        } else {
            spot
        };
        let end = line_end(s, spot);
        let content = s[start..end].trim_end();
        out.push_str(&s[cursor..start]);
        out.push_str(&code_span_with(content, fence_for(content, &runs)));
        cursor = start + content.len();
    }
    out.push_str(&s[cursor..]);
    out
}

/// Puts every raw line that starts (after spaces and tabs) with `/` and a letter in inline code.
fn raw_pass(s: &str) -> String {
    let mut runs = None;
    let mut out = String::new();
    let mut cursor = 0;
    let mut line_start = 0;
    while line_start <= s.len() {
        let end = line_end(s, line_start);
        let line = &s[line_start..end];
        let content = line.trim_start_matches([' ', '\t']);
        if starts_like_a_command(content) {
            let start = end - content.len();
            let content = content.trim_end();
            let runs = runs.get_or_insert_with(|| backtick_runs(s));
            out.push_str(&s[cursor..start]);
            out.push_str(&code_span_with(content, fence_for(content, runs)));
            cursor = start + content.len();
        }
        if end == s.len() {
            break;
        }
        line_start = if s[end..].starts_with("\r\n") {
            end + 2
        } else {
            end + 1
        };
    }
    if cursor == 0 {
        return s.to_owned();
    }
    out.push_str(&s[cursor..]);
    out
}

/// The last resort: the whole text as a fenced code block (whose lines were defused raw).
fn fenced(text: &str) -> String {
    let content = raw_pass(text);
    let fence = "`".repeat((crate::text::longest_backtick_run(&content) + 1).max(3));
    format!("{fence}\n{content}\n{fence}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_comment;

    #[test]
    fn raw_lines_go_in_code() {
        assert_eq!(raw_pass("a\n  /mirror x  \r\nb"), "a\n  `/mirror x`  \r\nb");
        assert_eq!(raw_pass("/a\r/b"), "`/a`\r`/b`");
        assert_eq!(raw_pass("a /b\n/1"), "a /b\n/1");
    }

    #[test]
    fn the_fence_pairs_with_nothing_else() {
        // A lone `` earlier must not be closed by our fence.
        let s = defuse("`` a\n/mirror ` x");
        assert!(parse_comment(&s).commands.is_empty(), "{s}");
        assert!(s.contains("```/mirror ` x```"), "{s}");
    }

    #[test]
    fn markdown_lines_go_in_code() {
        assert_eq!(defuse("- /sync"), "- `/sync`");
        assert_eq!(defuse("# /sync #"), "# `/sync #`");
        assert_eq!(defuse("a\n\\/sync"), "a\n`\\/sync`");
        assert_eq!(defuse("a\n&#47;sync"), "a\n`&#47;sync`");
    }

    #[test]
    fn fenced_fallback_is_safe() {
        let s = fenced("/mirror x\n````\n- /sync");
        assert!(parse_comment(&s).commands.is_empty(), "{s}");
        assert!(s.starts_with("`````\n"), "{s}");
    }
}
