//! What a participant's name may be, and when two names are too alike to share a room.
//!
//! A name is the only thing that tells people apart, so it must not be usable to pose as
//! someone else. Two tricks do that: an *invisible* difference (`alice` with a zero-width
//! space U+200B inside, a trailing byte-order mark, a soft hyphen, a bidi control that
//! reorders what is shown) and a *look-alike* (`аlice` with a Cyrillic `а`, `aIice` with a
//! capital `I`), put next to a real member's name.
//! [`check`] refuses the first kind outright, with a reason a person can act on;
//! [`fold`] gives the key under which the second kind clashes, so the room can refuse a
//! name that looks like a member's.
//!
//! Everything here is pure: no I/O, no state, and the same answer every time (the tables
//! are those of the `unicode-normalization`, `unicode-properties` and `unicode-security`
//! crates, plus a short list of blank characters that are not format characters).

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::{is_combining_mark, is_public_assigned};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_security::skeleton;

/// The most characters (`char`s, counted after NFC) a name may have: enough for a real
/// name or handle, few enough that a name never crowds a line of the screen.
pub const MAX_NAME_CHARS: usize = 24;

/// Why a name was refused. One variant per reason, so the room can tell them apart; the
/// [`Display`](fmt::Display) text is a short lower-case phrase that fits in a sentence
/// ("… is not a usable name: a name has no spaces") and quotes the offending code point as
/// `U+XXXX`, never the raw character (it may be a control or invisible).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Nothing left after trimming: a name must show something.
    Empty,
    /// More than [`MAX_NAME_CHARS`] characters (the count is after NFC).
    TooLong {
        /// How many characters the name had.
        chars: usize,
    },
    /// A C0 or C1 control or DEL: it would act on a terminal instead of being shown.
    Control(char),
    /// Whitespace inside the name: names are single words so that `/msg bob …` and
    /// Tab completion can find where a name ends.
    Whitespace(char),
    /// A character that shows nothing (format characters such as zero-width spaces, the
    /// byte-order mark, soft hyphen and bidi controls; Hangul fillers; the Braille blank):
    /// it would make a name that looks like another one but is not equal to it.
    Invisible(char),
    /// A private-use character: it has no agreed look, so each terminal may show
    /// something different (or a box).
    PrivateUse(char),
    /// A code point Unicode has not assigned (or a noncharacter): no one can see it the
    /// same way, and a later Unicode might give it any meaning.
    Unassigned(char),
    /// The name starts with a combining mark or variation selector, which has nothing
    /// visible before it to attach to (and would attach to whatever precedes the name).
    StartsWithMark(char),
    /// The name starts with `*` or a look-alike of it (`＊`, `∗`, `⁎`, …): a line from
    /// it would look like a room notice (`*** bob joined`) or an action (`* bob waves`).
    StartsWithStar(char),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = MAX_NAME_CHARS;
        match self {
            NameError::Empty => write!(f, "a name is 1-{max} characters"),
            NameError::TooLong { chars } => {
                write!(f, "a name is 1-{max} characters, not {chars}")
            }
            NameError::Control(c) | NameError::Invisible(c) => write!(
                f,
                "a name has no invisible or control characters ({})",
                code_point(*c)
            ),
            NameError::Whitespace(' ') => write!(f, "a name has no spaces"),
            NameError::Whitespace(c) => write!(f, "a name has no spaces ({})", code_point(*c)),
            NameError::PrivateUse(c) => {
                write!(
                    f,
                    "a name has no private-use characters ({})",
                    code_point(*c)
                )
            }
            NameError::Unassigned(c) => {
                write!(
                    f,
                    "a name has no unassigned code points ({})",
                    code_point(*c)
                )
            }
            NameError::StartsWithMark(c) => write!(
                f,
                "a name cannot start with a combining mark or variation selector ({})",
                code_point(*c)
            ),
            NameError::StartsWithStar('*') => write!(f, "a name cannot start with *"),
            NameError::StartsWithStar(c) => write!(
                f,
                "a name cannot start with * or a look-alike of it ({})",
                code_point(*c)
            ),
        }
    }
}

/// A [`NameError`] is an ordinary error, so callers can `?` it into `anyhow` and friends.
impl std::error::Error for NameError {}

/// `U+XXXX` (at least four hex digits), the way a person can look a character up.
fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// The name as it will be used: surrounding whitespace trimmed, NFC-normalised, then
/// checked.
///
/// NFC first, so that `e` + U+0301 and `é` are the same name and count as one character.
/// Then, in this order (the first failure is the one reported):
///
/// - 1 to [`MAX_NAME_CHARS`] characters;
/// - no control characters (C0, DEL, C1), no whitespace, nothing invisible (every
///   format character, general category Cf, including U+200D ZERO WIDTH JOINER; the
///   assigned default-ignorable code points that are not variation selectors, such as
///   the combining grapheme joiner and the Hangul fillers; U+2800 BRAILLE PATTERN
///   BLANK), no private-use or unassigned code points;
/// - it does not start with a combining mark or a variation selector;
/// - it does not start with `*` or something that looks like it.
///
/// Refusing U+200D means emoji ZWJ sequences (a family, a rainbow flag: several emoji
/// joined by U+200D) cannot be part of a name: a deliberate trade for having no
/// invisible characters at all. Single emoji (🦀), and a variation selector after
/// something visible (❤ + U+FE0F), are fine.
///
/// Whatever this returns `Ok` is accepted again, unchanged.
pub fn check(asked: &str) -> Result<String, NameError> {
    let name: String = asked.trim().nfc().collect();
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err(NameError::Empty);
    };
    let count = 1 + chars.count();
    if count > MAX_NAME_CHARS {
        return Err(NameError::TooLong { chars: count });
    }
    for c in name.chars() {
        if c.is_control() {
            return Err(NameError::Control(c));
        }
        if c.is_whitespace() {
            return Err(NameError::Whitespace(c));
        }
        if is_invisible(c) {
            return Err(NameError::Invisible(c));
        }
        if is_private_use(c) {
            return Err(NameError::PrivateUse(c));
        }
        if !is_public_assigned(c) {
            return Err(NameError::Unassigned(c));
        }
    }
    if is_combining_mark(first) || is_variation_selector(first) {
        return Err(NameError::StartsWithMark(first));
    }
    // The skeleton maps every look-alike of `*` (fullwidth, asterisk operator, low
    // asterisk, Arabic five-pointed star, …) to `*` itself.
    if skeleton(&name).next() == Some('*') {
        return Err(NameError::StartsWithStar(first));
    }
    Ok(name)
}

/// The key under which two names clash in a room: two names whose keys are equal may not
/// both be in the room at once, because one could pass for the other.
///
/// It folds both case and look-alikes (the confusable *skeleton* of Unicode TR39, via
/// [`unicode_security::skeleton`]), so `alice`, `Alice`, `ALICE`, `аlice` (Cyrillic `а`),
/// `aIice` (capital `I`) and `a1ice` all have one key. The steps are skeleton, upper
/// case, skeleton, lower case, skeleton:
///
/// - the skeleton comes first so that a look-alike is caught in the case it is written
///   in: Greek capital `Ν` looks like `N` (and `Νick` clashes with `Nick`) although small
///   `ν` looks like `v`;
/// - upper then lower case folds case: `I` and `i` meet, and since `I` looks like `l`,
///   so do `i` and `l` (`ian` clashes with `lan`). That is forced: `aIice` must clash
///   with `alice` (look-alike) and with `aiice` (case);
/// - the last skeleton catches what only looks alike in small letters (`rn` and `m`).
///
/// The one gap: letters whose capital and small forms look like *different* Latin letters
/// (Greek `Ν`/`ν`, Cyrillic `Г`/`г`, …) keep what they look like, so `Νίκος` and `νίκος`
/// do not clash. They do not look alike either, and folding them together would make
/// `nick` clash with `vick`.
///
/// Variation selectors and other default-ignorable code points are dropped, so `❤` +
/// U+FE0F and `❤` clash. Equal keys are a plain equivalence (string equality of a deterministic
/// function); `fold(fold(x)) == fold(x)` is not promised. Meant for names that passed
/// [`check`], but any string is safe to fold.
pub fn fold(name: &str) -> String {
    let shown: String = skeleton(name).collect();
    let upper: String = skeleton(&shown.to_uppercase()).collect();
    skeleton(&upper.to_lowercase()).collect()
}

/// Characters that show nothing but are not format characters: the default-ignorable
/// code points other than Cf and the variation selectors (combining grapheme joiner,
/// Hangul fillers, Khmer inherent vowels), and the Braille blank, which looks like a space
/// but is a symbol.
const BLANK: &[char] = &[
    '\u{034F}', // combining grapheme joiner
    '\u{115F}', // Hangul choseong filler
    '\u{1160}', // Hangul jungseong filler
    '\u{17B4}', // Khmer vowel inherent aq
    '\u{17B5}', // Khmer vowel inherent aa
    '\u{2800}', // Braille pattern blank
    '\u{3164}', // Hangul filler
    '\u{FFA0}', // halfwidth Hangul filler
];

/// Whether `c` shows nothing by itself: a format character (general category Cf) or one
/// of [`BLANK`]. Variation selectors are not counted: after a visible character they
/// choose how it is shown (❤️), and [`fold`] ignores them, so they cannot make a
/// look-alike.
fn is_invisible(c: char) -> bool {
    c.general_category() == GeneralCategory::Format || BLANK.contains(&c)
}

/// The variation selectors, including the Mongolian free variation selectors. All are
/// combining marks too; named here because the rule is about them.
fn is_variation_selector(c: char) -> bool {
    matches!(
        c,
        '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}' | '\u{180B}'..='\u{180D}' | '\u{180F}'
    )
}

/// The private-use areas (general category Co).
fn is_private_use(c: char) -> bool {
    c.general_category() == GeneralCategory::PrivateUse
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> String {
        check(s).unwrap_or_else(|e| panic!("{s:?} refused: {e}"))
    }

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "alice",
            "bob_2",
            "世界",
            "🦀crab",
            "Zoë",
            "42",
            "❤\u{FE0F}",
            "a-b.c",
        ] {
            assert_eq!(ok(name), name);
        }
        assert_eq!(
            ok("  alice\t"),
            "alice",
            "surrounding whitespace is trimmed"
        );
        // Cyrillic on its own is a fine name; it is fold() that makes it clash.
        assert_eq!(ok("\u{430}lice"), "\u{430}lice");
        assert_eq!(ok("Алиса"), "Алиса");
        assert_eq!(ok(&"x".repeat(MAX_NAME_CHARS)), "x".repeat(MAX_NAME_CHARS));
    }

    #[test]
    fn normalises_to_nfc_before_counting() {
        let e = ok("e\u{0301}");
        assert_eq!(e, "\u{00E9}");
        assert_eq!(e.chars().count(), 1);
        // 24 composed characters typed as 48 fit.
        let long = "e\u{0301}".repeat(MAX_NAME_CHARS);
        assert_eq!(ok(&long).chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn length() {
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(check("   "), Err(NameError::Empty));
        assert_eq!(
            check("\u{3000}"),
            Err(NameError::Empty),
            "ideographic space trims"
        );
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(check(&long), Err(NameError::TooLong { chars: 25 }));
        assert_eq!(
            NameError::TooLong { chars: 25 }.to_string(),
            "a name is 1-24 characters, not 25"
        );
        assert_eq!(NameError::Empty.to_string(), "a name is 1-24 characters");
    }

    #[test]
    fn refuses_whitespace_inside() {
        assert_eq!(check("has space"), Err(NameError::Whitespace(' ')));
        assert_eq!(check("a\u{3000}b"), Err(NameError::Whitespace('\u{3000}')));
        assert_eq!(check("a\u{00A0}b"), Err(NameError::Whitespace('\u{00A0}')));
        assert_eq!(check("a\u{2028}b"), Err(NameError::Whitespace('\u{2028}')));
        assert_eq!(
            NameError::Whitespace(' ').to_string(),
            "a name has no spaces"
        );
        assert_eq!(
            NameError::Whitespace('\u{3000}').to_string(),
            "a name has no spaces (U+3000)"
        );
    }

    #[test]
    fn refuses_controls() {
        assert_eq!(check("\u{1b}[31m"), Err(NameError::Control('\u{1b}')));
        assert_eq!(check("a\u{7f}"), Err(NameError::Control('\u{7f}')));
        assert_eq!(check("a\u{9b}31m"), Err(NameError::Control('\u{9b}')));
        assert_eq!(check("a\tb"), Err(NameError::Control('\t')));
        assert_eq!(check("a\rb"), Err(NameError::Control('\r')));
        assert_eq!(
            NameError::Control('\u{1b}').to_string(),
            "a name has no invisible or control characters (U+001B)"
        );
    }

    #[test]
    fn refuses_invisible_characters() {
        let cases = [
            "al\u{200B}ice",
            "alice\u{FEFF}",
            "a\u{00AD}lice",
            "\u{3164}",
            "\u{200B}",
            "\u{2800}",
            "a\u{200D}b",   // ZWJ
            "👩\u{200D}💻", // so no emoji ZWJ sequences
            "bob\u{202E}",  // right-to-left override
            "bob\u{2067}",  // right-to-left isolate
            "bob\u{061C}",  // Arabic letter mark
            "bob\u{2060}",  // word joiner
            "bob\u{2064}",  // invisible plus
            "bob\u{E0041}", // tag A
            "bob\u{115F}",  // Hangul fillers
            "bob\u{1160}",
            "bob\u{FFA0}",
            "bob\u{034F}",  // combining grapheme joiner
            "bob\u{180E}",  // Mongolian vowel separator
            "bob\u{1D173}", // musical format control
        ];
        for name in cases {
            let c = name.chars().find(|&c| is_invisible(c)).unwrap();
            assert_eq!(check(name), Err(NameError::Invisible(c)), "{name:?}");
        }
        assert_eq!(
            NameError::Invisible('\u{200B}').to_string(),
            "a name has no invisible or control characters (U+200B)"
        );
    }

    #[test]
    fn refuses_private_use_and_unassigned() {
        assert_eq!(check("a\u{E000}"), Err(NameError::PrivateUse('\u{E000}')));
        assert_eq!(check("a\u{F8FF}"), Err(NameError::PrivateUse('\u{F8FF}')));
        assert_eq!(
            check("a\u{10FFFD}"),
            Err(NameError::PrivateUse('\u{10FFFD}'))
        );
        assert_eq!(check("a\u{0378}"), Err(NameError::Unassigned('\u{0378}')));
        assert_eq!(check("a\u{FFFF}"), Err(NameError::Unassigned('\u{FFFF}')));
        assert_eq!(check("a\u{FDD0}"), Err(NameError::Unassigned('\u{FDD0}')));
        assert_eq!(
            check("a\u{E0100}\u{2065}"),
            Err(NameError::Unassigned('\u{2065}'))
        );
        assert_eq!(
            NameError::PrivateUse('\u{E000}').to_string(),
            "a name has no private-use characters (U+E000)"
        );
        assert_eq!(
            NameError::Unassigned('\u{10FFFF}').to_string(),
            "a name has no unassigned code points (U+10FFFF)"
        );
    }

    #[test]
    fn refuses_a_mark_or_selector_with_nothing_before_it() {
        for c in [
            '\u{FE0F}',
            '\u{FE00}',
            '\u{E0100}',
            '\u{0301}',
            '\u{093E}',
            '\u{20DD}',
            '\u{180B}',
        ] {
            assert_eq!(
                check(&format!("{c}bob")),
                Err(NameError::StartsWithMark(c)),
                "{c:?}"
            );
        }
        assert_eq!(
            check("\u{FE0F}"),
            Err(NameError::StartsWithMark('\u{FE0F}'))
        );
        // Trimming cannot hide one: the mark is what comes first.
        assert_eq!(
            check(" \u{0301}a"),
            Err(NameError::StartsWithMark('\u{0301}'))
        );
        // After something visible they are fine.
        assert_eq!(ok("bob\u{0336}"), "bob\u{0336}");
        assert_eq!(
            NameError::StartsWithMark('\u{0301}').to_string(),
            "a name cannot start with a combining mark or variation selector (U+0301)"
        );
    }

    #[test]
    fn refuses_a_star_first() {
        assert_eq!(check("*bob"), Err(NameError::StartsWithStar('*')));
        assert_eq!(check(" **"), Err(NameError::StartsWithStar('*')));
        for c in ['\u{FF0A}', '\u{2217}', '\u{204E}', '\u{066D}', '\u{FE61}'] {
            assert_eq!(
                check(&format!("{c}bob")),
                Err(NameError::StartsWithStar(c)),
                "{c:?}"
            );
        }
        assert_eq!(ok("bob*"), "bob*");
        assert_eq!(
            NameError::StartsWithStar('*').to_string(),
            "a name cannot start with *"
        );
        assert_eq!(
            NameError::StartsWithStar('\u{FF0A}').to_string(),
            "a name cannot start with * or a look-alike of it (U+FF0A)"
        );
    }

    #[test]
    fn every_format_character_is_refused() {
        let format = (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|c| c.general_category() == GeneralCategory::Format);
        let mut n = 0;
        for c in format {
            assert_eq!(
                check(&format!("a{c}")),
                Err(NameError::Invisible(c)),
                "{c:?}"
            );
            n += 1;
        }
        assert!(n > 150, "only {n} format characters: the wrong table?");
    }

    #[test]
    fn messages_never_hold_the_raw_character() {
        for bad in [
            "\u{1b}x",
            "a\u{200B}",
            "a\u{9b}",
            "\u{FE0F}",
            "a\u{E000}",
            "a\u{0378}",
        ] {
            let e = check(bad).unwrap_err().to_string();
            let c = bad.chars().find(|c| !c.is_ascii_alphanumeric()).unwrap();
            assert!(!e.contains(c), "{e:?}");
            assert!(e.contains(&code_point(c)), "{e:?}");
        }
    }

    #[test]
    fn look_alikes_and_case_fold_together() {
        let alice = fold("alice");
        for same in [
            "Alice",
            "ALICE",
            "\u{430}lice",
            "aIice",
            "a1ice",
            "al\u{456}ce",
            "AL\u{406}CE",
        ] {
            assert_eq!(fold(same), alice, "{same:?}");
        }
        assert_eq!(fold("\u{39D}ick"), fold("Nick"), "Greek capital nu");
        assert_eq!(fold("\u{3BD}icky"), fold("vicky"), "Greek small nu");
        assert_eq!(fold("rn"), fold("m"));
        assert_eq!(fold("0scar"), fold("Oscar"));
        assert_eq!(fold("р\u{430}yp\u{430}l"), fold("PayPal"));
        assert_eq!(fold("❤\u{FE0F}"), fold("❤"));
        assert_eq!(fold(&ok("e\u{0301}")), fold("é"));
        assert_eq!(fold("Ｂｏｂ"), fold("bob"), "fullwidth");
    }

    #[test]
    fn different_names_stay_apart() {
        for (a, b) in [
            ("alice", "bob"),
            ("alice", "alicia"),
            ("世界", "世"),
            ("nick", "vick"),
            ("bob", "bob_"),
            ("🦀", "🦞"),
        ] {
            assert_ne!(fold(a), fold(b), "{a:?} {b:?}");
        }
    }

    /// A name from a small alphabet of troublemakers (so each rule is hit often), from a
    /// mostly good one (so many pass), any printable text, or anything at all.
    fn any_name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[aAIl1_*é\u{0301}\u{FE0F}\u{430}世🦀]{1,26}",
            concat!(
                "[aAIl1*é\u{0301}\u{FE0F}\u{200B}\u{200D}\u{00AD}\u{3164}\u{2800}",
                "\u{430} \t\u{1b}\u{9b}\u{E000}\u{0378}世🦀]{0,30}",
            ),
            "\\PC{0,30}",
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn check_gives_a_name_that_checks_again(asked in any_name()) {
            if let Ok(name) = check(&asked) {
                prop_assert_eq!(check(&name), Ok(name.clone()));
                let n = name.chars().count();
                prop_assert!((1..=MAX_NAME_CHARS).contains(&n), "{} chars", n);
                for c in name.chars() {
                    prop_assert!(!c.is_control() && !c.is_whitespace(), "{:?}", c);
                    prop_assert!(!is_invisible(c) && is_public_assigned(c), "{:?}", c);
                }
                let first = name.chars().next().unwrap();
                prop_assert!(!is_combining_mark(first) && first != '*');
                prop_assert!(!fold(&name).is_empty());
            }
        }

        #[test]
        fn errors_show_no_controls(asked in any_name()) {
            if let Err(e) = check(&asked) {
                let text = e.to_string();
                prop_assert!(text.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{:?}", text);
            }
        }

        #[test]
        fn fold_does_not_depend_on_how_a_name_is_composed(name in any_name()) {
            use unicode_normalization::UnicodeNormalization;
            let composed: String = name.nfc().collect();
            let decomposed: String = name.nfd().collect();
            prop_assert_eq!(fold(&composed), fold(&decomposed));
        }

        #[test]
        fn fold_ignores_ascii_case(name in "[a-zA-Z0-9_]{1,24}") {
            prop_assert_eq!(fold(&name.to_ascii_uppercase()), fold(&name.to_ascii_lowercase()));
            prop_assert_eq!(fold(&name), fold(&name.to_ascii_lowercase()));
        }
    }
}
