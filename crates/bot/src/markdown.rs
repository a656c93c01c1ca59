//! The one walk over a comment's Markdown that both the command parser and [`crate::defuse`]
//! use, so that what one looks for is exactly what the other removes.
//!
//! A *line of text* is what a reader sees as a line: the text of a paragraph, a heading or a
//! list item, cut at soft and hard breaks. Only lines that are not inside a block quote, a code
//! block, an HTML block, a table or a footnote definition are looked at, and only those whose
//! first piece is plain text (not emphasised, not a link, not inline code or HTML, not an image
//! or a task-list box) starting with `/`: those are the only lines that can hold a command.

use std::ops::ControlFlow;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// A piece of a line of text as the reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Text after Markdown processing (escapes and entities resolved, emphasis markers gone).
    Text(String),
    /// The content of an inline code span: taken literally.
    Code(String),
    /// Something that shows no text of its own here (inline HTML, an image): separates words.
    Gap,
}

/// A line of text whose first piece is plain text starting with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlashLine {
    /// Adjacent text pieces are merged, so the first piece is one `Piece::Text` holding the
    /// command word and what follows it up to the first code span or gap.
    pub pieces: Vec<Piece>,
    /// Where in the Markdown source the line's first text event starts: the `/` itself, or the
    /// entity or escape that produced it (a backslash escape starts one byte later, at the `/`).
    pub source_start: usize,
}

/// The Markdown dialect: CommonMark with the GitHub extensions that change what is a line of
/// text (tables, task lists, strikethrough, footnotes). GitLab and Gitea speak the same.
fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
}

enum LineState {
    /// Nothing seen on this line yet.
    Empty,
    /// The line does not start with plain `/`: nothing on it matters.
    Dead,
    Live(SlashLine),
}

/// Calls `each` for every line of text that starts with plain `/`, in order, until it breaks.
pub(crate) fn slash_lines(markdown: &str, mut each: impl FnMut(SlashLine) -> ControlFlow<()>) {
    let mut ignored = 0usize; // depth inside block quotes, code, HTML blocks, tables, images…
    let mut markup = 0usize; // depth inside emphasis, links…
    let mut line = LineState::Empty;

    macro_rules! flush {
        () => {
            if let LineState::Live(l) = std::mem::replace(&mut line, LineState::Empty) {
                if each(l).is_break() {
                    return;
                }
            }
        };
    }

    for (event, range) in Parser::new_ext(markdown, options()).into_offset_iter() {
        if ignored > 0 {
            match event {
                Event::Start(tag) if ignores(&tag) => ignored += 1,
                Event::End(tag) if ignores_end(tag) => ignored -= 1,
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(Tag::Image { .. }) => {
                gap(&mut line);
                ignored += 1;
            }
            Event::Start(tag) if ignores(&tag) => {
                flush!();
                ignored += 1;
            }
            Event::Start(tag) if is_inline(&tag) => markup += 1,
            Event::End(tag) if is_inline_end(tag) => markup = markup.saturating_sub(1),
            Event::Start(_) | Event::End(_) => {
                // Paragraphs, headings, list items, lists: each starts and ends lines.
                flush!();
                markup = 0;
            }
            Event::SoftBreak | Event::HardBreak | Event::Rule => {
                flush!();
            }
            Event::Text(text) => match &mut line {
                LineState::Empty if text.is_empty() => {}
                LineState::Empty => {
                    line = if markup == 0 && text.starts_with('/') {
                        LineState::Live(SlashLine {
                            pieces: vec![Piece::Text(text.into_string())],
                            source_start: range.start,
                        })
                    } else {
                        LineState::Dead
                    };
                }
                LineState::Dead => {}
                LineState::Live(l) => match l.pieces.last_mut() {
                    Some(Piece::Text(last)) => last.push_str(&text),
                    _ => l.pieces.push(Piece::Text(text.into_string())),
                },
            },
            Event::Code(code) => match &mut line {
                LineState::Empty => line = LineState::Dead,
                LineState::Dead => {}
                LineState::Live(l) => l.pieces.push(Piece::Code(code.into_string())),
            },
            // Inline HTML (comments included), task-list boxes, footnote references, maths, and
            // block HTML outside an HTML block (it never is): no text of their own.
            _ => gap(&mut line),
        }
    }
    flush!();
}

fn gap(line: &mut LineState) {
    match line {
        LineState::Empty => *line = LineState::Dead,
        LineState::Dead => {}
        LineState::Live(l) => {
            if l.pieces.last() != Some(&Piece::Gap) {
                l.pieces.push(Piece::Gap);
            }
        }
    }
}

/// Containers whose text is never a command.
fn ignores(tag: &Tag<'_>) -> bool {
    matches!(
        tag,
        Tag::BlockQuote(_)
            | Tag::CodeBlock(_)
            | Tag::HtmlBlock
            | Tag::FootnoteDefinition(_)
            | Tag::Table(_)
            | Tag::MetadataBlock(_)
            | Tag::Image { .. }
            | Tag::DefinitionList
    )
}

fn ignores_end(tag: TagEnd) -> bool {
    matches!(
        tag,
        TagEnd::BlockQuote(_)
            | TagEnd::CodeBlock
            | TagEnd::HtmlBlock
            | TagEnd::FootnoteDefinition
            | TagEnd::Table
            | TagEnd::MetadataBlock(_)
            | TagEnd::Image
            | TagEnd::DefinitionList
    )
}

fn is_inline(tag: &Tag<'_>) -> bool {
    matches!(
        tag,
        Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::Link { .. }
    )
}

fn is_inline_end(tag: TagEnd) -> bool {
    matches!(
        tag,
        TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::Link
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(md: &str) -> Vec<SlashLine> {
        let mut out = Vec::new();
        slash_lines(md, |l| {
            out.push(l);
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn pieces_of_a_line() {
        let got = lines("/mirror *a*`b` <!-- c --> d\n");
        assert_eq!(
            got[0].pieces,
            vec![
                Piece::Text("/mirror a".into()),
                Piece::Code("b".into()),
                Piece::Text(" ".into()),
                Piece::Gap,
                Piece::Text(" d".into()),
            ]
        );
        assert_eq!(got[0].source_start, 0);
    }

    #[test]
    fn source_start_points_at_the_slash_or_its_escape() {
        let md = "hello\n\\/sync\n&#47;status\n";
        let got = lines(md);
        assert_eq!(got.len(), 2);
        assert_eq!(&md[got[0].source_start..got[0].source_start + 1], "/");
        assert_eq!(&md[got[0].source_start - 1..got[0].source_start], "\\");
        assert_eq!(&md[got[1].source_start..got[1].source_start + 5], "&#47;");
    }

    #[test]
    fn stops_when_asked() {
        let mut n = 0;
        slash_lines("/a\n/b\n/c\n", |_| {
            n += 1;
            if n == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(n, 2);
    }
}
