//! `defuse` on any text: nothing left that reads as a command, and defusing twice changes
//! nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorhub_bot::{defuse, parse_comment};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let safe = defuse(text);
    assert!(
        parse_comment(&safe).commands.is_empty(),
        "{text:?} -> {safe:?}"
    );
    for line in safe.split(['\n', '\r']) {
        let mut chars = line.trim_start_matches([' ', '\t']).chars();
        assert!(
            !(chars.next() == Some('/') && chars.next().is_some_and(char::is_alphabetic)),
            "{safe:?}"
        );
    }
    assert_eq!(defuse(&safe), safe);
});
