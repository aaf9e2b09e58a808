//! What `sanitize::text` and `sanitize::line` let through to a terminal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tchat::sanitize::{self, is_bidi_control, is_forbidden};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);

    let text = sanitize::text(&input);
    let line = sanitize::line(&input);

    // Nothing forbidden survives, except the newlines `text` keeps.
    if let Some(c) = text.chars().find(|&c| is_forbidden(c) && c != '\n') {
        panic!("text kept {c:?}: {text:?}");
    }
    if let Some(c) = line.chars().find(|&c| is_forbidden(c)) {
        panic!("line kept {c:?}: {line:?}");
    }
    // `text` keeps every newline, and adds none.
    assert_eq!(text.matches('\n').count(), input.matches('\n').count());

    // Bidi controls are removed; every other character stays in place, changed only if
    // it is forbidden.
    for out in [&text, &line] {
        let kept: Vec<char> = input.chars().filter(|&c| !is_bidi_control(c)).collect();
        let got: Vec<char> = out.chars().collect();
        assert_eq!(got.len(), kept.len(), "characters lost or added: {out:?}");
        for (a, b) in kept.iter().zip(&got) {
            if !is_forbidden(*a) {
                assert_eq!(a, b, "an allowed character changed: {out:?}");
            }
        }
    }

    // Sanitising is idempotent, and the two agree with each other.
    assert_eq!(sanitize::text(&text), text, "text is not idempotent");
    assert_eq!(sanitize::line(&line), line, "line is not idempotent");
    assert_eq!(sanitize::line(&text), line, "line(text(s)) != line(s)");
    assert_eq!(sanitize::text(&line), line, "text(line(s)) != line(s)");
});
