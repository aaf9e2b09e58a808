//! What `names::check` accepts is a usable name, accepted again unchanged, whose key
//! (`names::fold`) does not depend on how its accents were typed; `fold` never fails.

#![no_main]

use libfuzzer_sys::fuzz_target;
use unicode_normalization::UnicodeNormalization;
use tchat::names::{self, MAX_NAME_CHARS};

/// A few characters that show nothing, listed here independently of `names`.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

fuzz_target!(|data: &[u8]| {
    let asked = String::from_utf8_lossy(data);

    match names::check(&asked) {
        Ok(name) => {
            assert_eq!(names::check(&name), Ok(name.clone()), "not accepted again");
            let n = name.chars().count();
            assert!((1..=MAX_NAME_CHARS).contains(&n), "{n} chars: {name:?}");
            if let Some(c) = name
                .chars()
                .find(|&c| c.is_control() || c.is_whitespace() || invisible(c))
            {
                panic!("kept {c:?}: {name:?}");
            }
            assert!(!name.starts_with('*'), "{name:?}");
            // What is allowed is allowed anywhere after the first character.
            for c in name.chars() {
                assert!(names::check(&format!("x{c}")).is_ok(), "{c:?} of {name:?}");
            }
            // Every name has a key, whichever way its accents were typed.
            let key = names::fold(&name);
            assert!(!key.is_empty(), "{name:?} folds to nothing");
            let decomposed: String = name.nfd().collect();
            assert_eq!(names::fold(&decomposed), key, "{name:?} and its NFD differ");
        }
        Err(why) => {
            // The reason is plain text: it quotes code points, never the characters.
            let text = why.to_string();
            assert!(
                text.chars().all(|c| c.is_ascii_graphic() || c == ' '),
                "{text:?}"
            );
        }
    }

    // Any text at all folds without panicking.
    let _ = names::fold(&asked);
});
