//! `parse_comment` and `new_commands` on any text: no panic, at most ten commands, and the
//! same answer twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorhub_bot::{new_commands, parse_comment, MAX_COMMANDS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_comment(text);
    assert!(parsed.commands.len() <= MAX_COMMANDS);
    assert_eq!(parsed, parse_comment(text));
    let (a, b) = text.split_at(
        text.char_indices()
            .nth(text.chars().count() / 2)
            .map_or(text.len(), |(i, _)| i),
    );
    let _ = new_commands(a, b);
});
