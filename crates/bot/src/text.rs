//! Small Markdown builders for text we do not control.

/// At most `max` characters of `s`, with `…` in place of the rest.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some(_) => {
            let cut = s
                .char_indices()
                .nth(max.saturating_sub(1))
                .map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..cut])
        }
    }
}

/// The longest run of backticks in `s`.
pub(crate) fn longest_backtick_run(s: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for b in s.bytes() {
        if b == b'`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// `s` as one inline code span, whatever it holds: line breaks become spaces, the fence is
/// longer than any run of backticks inside, and a space pads content that touches a backtick.
pub(crate) fn code_span(s: &str) -> String {
    code_span_with(s, longest_backtick_run(s) + 1)
}

/// Like [`code_span`] with a fence of `fence` backticks (longer than any run inside `s`).
pub(crate) fn code_span_with(s: &str, fence: usize) -> String {
    let content: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let fence = "`".repeat(fence);
    if content.is_empty() {
        return format!("{fence} {fence}");
    }
    let pad = if content.starts_with('`')
        || content.ends_with('`')
        || (content.starts_with(' ') && content.ends_with(' '))
    {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{content}{pad}{fence}")
}

/// `s` as inline Markdown text shown as written: line breaks become spaces and every character
/// Markdown could read as syntax inside a line is escaped.
pub(crate) fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut last_was_space = false;
    for c in s.chars() {
        if c == '\n' || c == '\r' {
            if !last_was_space {
                out.push(' ');
            }
            last_was_space = true;
            continue;
        }
        last_was_space = c == ' ';
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '&' | '~' | '|' | '!' | '#'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out.trim().to_owned()
}

/// A link to `url` labelled `label` when `url` is a plain http(s) URL; otherwise the label
/// followed by the URL in inline code (so nothing odd can hide in a link).
pub(crate) fn link(label: &str, url: &str) -> String {
    let plain = (url.starts_with("https://") || url.starts_with("http://"))
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '`'));
    if plain {
        format!("[{}](<{}>)", escape_text(label), url)
    } else if url.is_empty() {
        escape_text(label)
    } else {
        format!("{} ({})", escape_text(label), code_span(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_by_characters() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "ab…");
        assert_eq!(shorten("ééééé", 4), "ééé…");
    }

    #[test]
    fn code_spans_hold_anything() {
        assert_eq!(code_span("a"), "`a`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`a"), "`` `a ``");
        assert_eq!(code_span("a\nb"), "`a b`");
        assert_eq!(code_span(""), "` `");
    }

    #[test]
    fn escapes_inline_syntax() {
        assert_eq!(escape_text("a_b *c*\n/d"), "a\\_b \\*c\\* /d");
    }

    #[test]
    fn links_only_plain_urls() {
        assert_eq!(link("a/b", "https://h/a/b"), "[a/b](<https://h/a/b>)");
        assert_eq!(link("a", "javascript:x"), "a (`javascript:x`)");
        assert_eq!(link("a", "https://h/a b"), "a (`https://h/a b`)");
    }
}
