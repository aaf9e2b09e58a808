//! What from the network may reach a terminal. Pure functions, no I/O.
//!
//! Text from a peer is shown to other people's terminals, so nothing in it may be a
//! command to the terminal: ESC and every other C0/C1 control, DEL, and the Unicode bidi
//! overrides (which can make text read differently from what it is). Controls become the
//! visible "control pictures" (`␛`, `␇`, …) so that a person can see something odd was
//! sent; bidi controls are removed outright because they are invisible by design.

/// Make `text` safe to show: see the module docs. A newline (`\n`) is kept, since a
/// message may hold several lines; a tab becomes a space, since its width depends on the
/// terminal.
pub fn text(input: &str) -> String {
    clean(input, true)
}

/// Like [`text`], for something that must stay on one line (a name, a notice): a
/// newline becomes a visible `␊` too.
pub fn line(input: &str) -> String {
    clean(input, false)
}

/// True when `c` could change what a terminal does or how text around it reads.
pub fn is_forbidden(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// The explicit bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069),
/// and the Arabic letter mark, which acts like one.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
}

fn clean(input: &str, keep_newline: bool) -> String {
    if !input.chars().any(is_forbidden) {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '\n' if keep_newline => out.push('\n'),
            '\t' => out.push(' '),
            c if is_bidi_control(c) => {}
            c if c.is_control() => out.push(picture(c)),
            c => out.push(c),
        }
    }
    out
}

/// The visible stand-in for a control character.
fn picture(c: char) -> char {
    match c as u32 {
        // U+2400.. "SYMBOL FOR NULL" and on, one per C0 control.
        n @ 0x00..=0x1F => char::from_u32(0x2400 + n).unwrap_or('\u{FFFD}'),
        0x7F => '\u{2421}', // SYMBOL FOR DELETE
        _ => '\u{FFFD}',    // C1 controls have no pictures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_become_visible() {
        assert_eq!(text("a\u{1b}[2Jb"), "a␛[2Jb");
        assert_eq!(text("bell\u{7}"), "bell␇");
        assert_eq!(text("del\u{7f}"), "del␡");
        assert_eq!(text("csi\u{9b}31m"), "csi\u{fffd}31m");
        assert_eq!(text("cr\rlf"), "cr␍lf");
    }

    #[test]
    fn bidi_overrides_are_removed() {
        assert_eq!(text("abc\u{202E}fed\u{202C}"), "abcfed");
        assert_eq!(text("\u{2066}x\u{2069}"), "x");
    }

    #[test]
    fn newline_kept_in_text_not_in_line() {
        assert_eq!(text("one\ntwo"), "one\ntwo");
        assert_eq!(line("one\ntwo"), "one␊two");
        assert_eq!(text("tab\there"), "tab here");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for s in ["hello", "世界 🎉", "مرحبا", "naïve café", ""] {
            assert_eq!(text(s), s);
        }
    }
}
