//! Tab completion for the input box, the way IRC clients do it. Pure.
//!
//! The word before the cursor (back to whitespace or the start of the text) is
//! completed:
//!
//! - a word starting with `/` at the very start of the input completes a command, and a
//!   space follows it (`/wh` → `/who `);
//! - any other word completes a name in the room, matched case-insensitively but written
//!   in the name's own case. At the very start of the input the name is how a line is
//!   addressed, so `: ` follows it (`al` → `alice: `); elsewhere a space does
//!   (`hi al` → `hi alice `). When the text after the cursor already starts with
//!   whitespace, the trailing space is left out so as not to double it;
//! - an empty word completes nothing: Tab on an empty input, or after a space, does
//!   nothing.
//!
//! "The start of the input" is character 0 of the whole text, not the start of a later
//! line: that is where the room reads a command or an address.
//!
//! Candidates are sorted case-insensitively; our own name matches like any other but
//! comes last, so that `a` in a room with `alice` (us) and `anna` offers `anna` first
//! while `/nick` arguments and quoting ourselves still work.
//!
//! Pressing Tab again right after a completion cycles to the next candidate, wrapping
//! around, in place of the previous one. The caller keeps the [`Completion`] that
//! [`complete`] returned and hands it back on the next Tab; any other key should drop
//! it. As a safety net a state is only honoured when the text and cursor are exactly
//! what that completion left, so a stale one starts a fresh completion instead.
//!
//! Positions are **character indices** (not bytes) into the whole text, lines joined
//! with `\n`: that is how `ratatui_textarea` counts columns, and it keeps the caller
//! from ever slicing inside a character. [`flat_cursor`] and [`row_col`] convert from
//! and to the text area's `(row, column)`.

/// A completion in progress: what the caller keeps between two presses of Tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The text before the completed word, unchanged.
    before: String,
    /// The text after the cursor, unchanged.
    after: String,
    /// The matches, in the order Tab offers them (without the suffix).
    candidates: Vec<String>,
    /// Which candidate is in the text now.
    index: usize,
    /// What follows the candidate: `" "`, `": "`, `":"` or nothing.
    suffix: &'static str,
    /// The text and cursor this completion left, to tell a fresh Tab from the next one.
    text: String,
    cursor: usize,
}

impl Completion {
    /// The matches, in the order Tab offers them.
    pub fn candidates(&self) -> &[String] {
        &self.candidates
    }

    /// Which of [`Completion::candidates`] is in the text now.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The candidate in the text now.
    pub fn current(&self) -> &str {
        &self.candidates[self.index]
    }

    /// Whether `text` with the cursor at `cursor` is exactly what this completion left.
    fn continues(&self, text: &str, cursor: usize) -> bool {
        self.cursor == cursor && self.text == text
    }

    /// Put candidate `index` into the text, recording the result.
    fn apply(mut self, index: usize) -> Completed {
        self.index = index;
        let word = &self.candidates[index];
        let mut text = String::with_capacity(
            self.before.len() + word.len() + self.suffix.len() + self.after.len(),
        );
        text.push_str(&self.before);
        text.push_str(word);
        text.push_str(self.suffix);
        let cursor = text.chars().count();
        text.push_str(&self.after);
        self.text.clone_from(&text);
        self.cursor = cursor;
        Completed {
            text,
            cursor,
            state: self,
        }
    }
}

/// The outcome of one press of Tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The whole new text of the input box.
    pub text: String,
    /// The new cursor, a character index into `text` (just after the suffix).
    pub cursor: usize,
    /// Keep this and pass it to the next [`complete`] if the next key is Tab too.
    pub state: Completion,
}

/// Complete the word before `cursor` (a character index into `text`; past the end
/// counts as the end).
///
/// `state` is the [`Completed::state`] of the previous call when the previous key was
/// Tab: if `text` and `cursor` are still what that call returned, the next candidate
/// replaces the current one (wrapping around). Otherwise a fresh completion starts from
/// `names` (the room's members, any Unicode but no whitespace), `commands` (such as
/// `["/help", "/me"]`) and `me` (our own name, offered last).
///
/// Returns `None` when there is nothing to do: an empty word or no match. The text
/// after the cursor is always kept as it is.
pub fn complete(
    text: &str,
    cursor: usize,
    state: Option<&Completion>,
    names: &[String],
    commands: &[&str],
    me: &str,
) -> Option<Completed> {
    if let Some(s) = state.filter(|s| s.continues(text, cursor)) {
        let next = (s.index + 1) % s.candidates.len();
        return Some(s.clone().apply(next));
    }

    let split = byte_at(text, cursor);
    let (head, after) = text.split_at(split);
    let word_start = head
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let (before, word) = head.split_at(word_start);
    if word.is_empty() {
        return None;
    }
    let at_start = before.is_empty();
    let space_follows = after.starts_with(char::is_whitespace);

    let (candidates, suffix) = if at_start && word.starts_with('/') {
        let found = matching(word, commands.iter().copied(), "");
        (found, if space_follows { "" } else { " " })
    } else {
        let found = matching(word, names.iter().map(String::as_str), me);
        let suffix = match (at_start, space_follows) {
            (true, false) => ": ",
            (true, true) => ":",
            (false, false) => " ",
            (false, true) => "",
        };
        (found, suffix)
    };
    if candidates.is_empty() {
        return None;
    }
    let fresh = Completion {
        before: before.to_owned(),
        after: after.to_owned(),
        candidates,
        index: 0,
        suffix,
        text: String::new(),
        cursor: 0,
    };
    Some(fresh.apply(0))
}

/// The character index of `(row, col)` in the lines of a text area joined with `\n`.
/// A row or column past the end counts as the end of the text or of the row.
pub fn flat_cursor<S: AsRef<str>>(lines: &[S], row: usize, col: usize) -> usize {
    let mut at = 0;
    for (i, line) in lines.iter().enumerate() {
        let len = line.as_ref().chars().count();
        if i == row {
            return at + col.min(len);
        }
        at += len + 1;
    }
    at.saturating_sub(1)
}

/// The `(row, column)` of character index `cursor` in `text`, rows split at `\n`
/// (the inverse of [`flat_cursor`]). Past the end counts as the end.
pub fn row_col(text: &str, cursor: usize) -> (usize, usize) {
    let mut row = 0;
    let mut col = 0;
    for c in text.chars().take(cursor) {
        if c == '\n' {
            row += 1;
            col = 0;
        } else {
            col += 1;
        }
    }
    (row, col)
}

/// The byte offset of character index `chars` in `s`, or `s.len()` past the end.
fn byte_at(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i)
}

/// The words of `pool` that start with `word`, ignoring case, without duplicates,
/// sorted case-insensitively, with `last` (if it matches) moved to the end.
fn matching<'a>(word: &str, pool: impl Iterator<Item = &'a str>, last: &str) -> Vec<String> {
    let want = fold(word);
    let mut found: Vec<(String, &str)> = pool
        .filter(|w| !w.is_empty())
        .map(|w| (fold(w), w))
        .filter(|(key, _)| key.starts_with(&want))
        .collect();
    found.sort_by(|a, b| {
        let own = |w: &str| !last.is_empty() && w == last;
        (own(a.1), &a.0, a.1).cmp(&(own(b.1), &b.0, b.1))
    });
    found.dedup_by(|a, b| a.1 == b.1);
    found.into_iter().map(|(_, w)| w.to_owned()).collect()
}

/// `s` in lower case, for comparing without regard to case.
fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const COMMANDS: [&str; 6] = ["/help", "/me", "/msg", "/nick", "/quit", "/who"];

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Complete at the end of `text`, as a fresh Tab.
    fn tab(text: &str, room: &[&str], me: &str) -> Option<(String, usize)> {
        let cursor = text.chars().count();
        complete(text, cursor, None, &names(room), &COMMANDS, me).map(|c| (c.text, c.cursor))
    }

    /// Press Tab `n` times at `cursor` and return every text in turn.
    fn tabs(text: &str, cursor: usize, room: &[&str], me: &str, n: usize) -> Vec<String> {
        let room = names(room);
        let (mut text, mut cursor) = (text.to_string(), cursor);
        let mut state: Option<Completion> = None;
        let mut seen = Vec::new();
        for _ in 0..n {
            let done = complete(&text, cursor, state.as_ref(), &room, &COMMANDS, me).unwrap();
            text = done.text;
            cursor = done.cursor;
            state = Some(done.state);
            seen.push(text.clone());
        }
        seen
    }

    #[test]
    fn commands_complete_at_the_start_with_a_space() {
        assert_eq!(tab("/wh", &[], "me"), Some(("/who ".into(), 5)));
        assert_eq!(tab("/N", &[], "me"), Some(("/nick ".into(), 6)));
        assert_eq!(tabs("/m", 2, &[], "me", 3), vec!["/me ", "/msg ", "/me "]);
        assert_eq!(tabs("/", 1, &[], "me", 6).last().unwrap(), "/who ");
    }

    #[test]
    fn commands_are_only_completed_at_the_very_start() {
        // Mid-line, a slash word is looked up among names (and there is none).
        assert_eq!(tab("hi /wh", &["alice"], "me"), None);
        // `//` escapes a slash; no command starts so.
        assert_eq!(tab("//wh", &[], "me"), None);
    }

    #[test]
    fn command_arguments_complete_names() {
        assert_eq!(
            tab("/msg al", &["alice"], "me"),
            Some(("/msg alice ".into(), 11))
        );
    }

    #[test]
    fn names_at_the_start_get_a_colon() {
        assert_eq!(
            tab("al", &["bob", "alice"], "me"),
            Some(("alice: ".into(), 7))
        );
    }

    #[test]
    fn names_mid_line_get_a_space() {
        assert_eq!(
            tab("hello al", &["bob", "alice"], "me"),
            Some(("hello alice ".into(), 12))
        );
    }

    #[test]
    fn names_match_ignoring_case_and_keep_their_own() {
        assert_eq!(tab("AL", &["alice"], "me"), Some(("alice: ".into(), 7)));
        assert_eq!(tab("hi bo", &["BoB"], "me"), Some(("hi BoB ".into(), 7)));
        assert_eq!(tab("ém", &["Émile"], "me"), Some(("Émile: ".into(), 7)));
    }

    #[test]
    fn candidates_are_sorted_ignoring_case_and_cycle_around() {
        let room = ["anna", "Alice", "bob", "ALBERT"];
        assert_eq!(
            tabs("a", 1, &room, "me", 4),
            vec!["ALBERT: ", "Alice: ", "anna: ", "ALBERT: "]
        );
        assert_eq!(
            tabs("hi a", 4, &room, "me", 4),
            vec!["hi ALBERT ", "hi Alice ", "hi anna ", "hi ALBERT "]
        );
    }

    #[test]
    fn own_name_comes_last() {
        assert_eq!(
            tabs("a", 1, &["alice", "anna", "amy"], "alice", 3),
            vec!["amy: ", "anna: ", "alice: "]
        );
        assert_eq!(tab("al", &["alice"], "alice"), Some(("alice: ".into(), 7)));
    }

    #[test]
    fn duplicate_names_are_offered_once() {
        let room = names(&["anna", "anna"]);
        let done = complete("a", 1, None, &room, &COMMANDS, "me").unwrap();
        assert_eq!(done.state.candidates(), ["anna"]);
        // One candidate: Tab again leaves it.
        let again = complete(
            &done.text,
            done.cursor,
            Some(&done.state),
            &room,
            &COMMANDS,
            "me",
        );
        assert_eq!(again.unwrap().text, "anna: ");
    }

    #[test]
    fn no_match_and_empty_words_complete_nothing() {
        assert_eq!(tab("zed", &["alice"], "me"), None);
        assert_eq!(tab("/zap", &["alice"], "me"), None);
        assert_eq!(tab("", &["alice"], "me"), None);
        assert_eq!(tab("hello ", &["alice"], "me"), None);
        assert_eq!(tab("hello\n", &["alice"], "me"), None);
        assert_eq!(tab("al", &[], "me"), None);
    }

    #[test]
    fn only_the_text_before_the_cursor_is_the_word() {
        let room = names(&["alice", "alan"]);
        // hi al|ready there: the word is "al"; "ready there" stays.
        let done = complete("hi already there", 5, None, &room, &COMMANDS, "me").unwrap();
        assert_eq!(done.text, "hi alan ready there");
        assert_eq!(done.cursor, 8);
        let next = complete(
            &done.text,
            done.cursor,
            Some(&done.state),
            &room,
            &COMMANDS,
            "me",
        );
        let next = next.unwrap();
        assert_eq!(next.text, "hi alice ready there");
        assert_eq!(next.cursor, 9);
    }

    #[test]
    fn no_doubled_space_before_existing_whitespace() {
        let room = names(&["alice"]);
        let done = complete("hi al there", 5, None, &room, &COMMANDS, "me").unwrap();
        assert_eq!((done.text.as_str(), done.cursor), ("hi alice there", 8));
        let done = complete("al there", 2, None, &room, &COMMANDS, "me").unwrap();
        assert_eq!((done.text.as_str(), done.cursor), ("alice: there", 6));
        let done = complete("/wh x", 3, None, &room, &COMMANDS, "me").unwrap();
        assert_eq!((done.text.as_str(), done.cursor), ("/who x", 4));
    }

    #[test]
    fn any_other_edit_ends_the_cycle() {
        let room = names(&["anna", "amy"]);
        let first = complete("a", 1, None, &room, &COMMANDS, "me").unwrap();
        assert_eq!(first.text, "amy: ");
        // Typed something: the old state no longer fits and a new completion starts.
        let edited = "amy: an";
        let fresh = complete(edited, 7, Some(&first.state), &room, &COMMANDS, "me").unwrap();
        assert_eq!(fresh.text, "amy: anna ");
        assert_eq!(fresh.state.candidates(), ["anna"]);
        // Moved the cursor: likewise.
        assert_eq!(
            complete(&first.text, 4, Some(&first.state), &room, &COMMANDS, "me"),
            None
        );
    }

    #[test]
    fn multi_line_input() {
        let room = names(&["alice", "bob"]);
        // The start of a later line is not the start of the input: a space, not ": ".
        let done = complete("first line\nbo", 13, None, &room, &COMMANDS, "me").unwrap();
        assert_eq!(done.text, "first line\nbob ");
        assert_eq!(done.cursor, 15);
        // Cursor on the first line, text on the second kept.
        let done = complete("al\nsecond", 2, None, &room, &COMMANDS, "me").unwrap();
        assert_eq!(done.text, "alice:\nsecond");
        assert_eq!(done.cursor, 6);
        // A slash at the start of a later line is no command.
        assert_eq!(tab("x\n/wh", &[], "me"), None);
        assert_eq!(row_col("first line\nbob ", 15), (1, 4));
        assert_eq!(flat_cursor(&["first line", "bob "], 1, 4), 15);
    }

    #[test]
    fn cjk_and_other_unicode_names() {
        let room = ["王小明", "王芳", "田中", "Zoë"];
        assert_eq!(tab("田", &room, "me"), Some(("田中: ".into(), 4)));
        assert_eq!(
            tabs("你好 王", 4, &room, "me", 3),
            vec!["你好 王小明 ", "你好 王芳 ", "你好 王小明 "]
        );
        assert_eq!(tab("hey zo", &room, "me"), Some(("hey Zoë ".into(), 8)));
        // Cursor between CJK characters, text after it kept.
        let r = names(&room);
        let done = complete("田です", 1, None, &r, &COMMANDS, "me").unwrap();
        assert_eq!((done.text.as_str(), done.cursor), ("田中: です", 4));
        // Full-width space separates words too.
        assert_eq!(
            tab("你好\u{3000}田", &room, "me"),
            Some(("你好\u{3000}田中 ".into(), 6))
        );
    }

    #[test]
    fn cursor_past_the_end_counts_as_the_end() {
        let room = names(&["alice"]);
        let done = complete("al", 99, None, &room, &COMMANDS, "me").unwrap();
        assert_eq!((done.text.as_str(), done.cursor), ("alice: ", 7));
    }

    #[test]
    fn flat_cursor_and_row_col_agree() {
        let lines = ["ab", "", "世界x"];
        let text = lines.join("\n");
        for (row, line) in lines.iter().enumerate() {
            for col in 0..=line.chars().count() {
                let at = flat_cursor(&lines, row, col);
                assert_eq!(row_col(&text, at), (row, col));
            }
        }
        assert_eq!(flat_cursor(&lines, 9, 0), text.chars().count());
        assert_eq!(flat_cursor(&lines, 0, 9), 2);
        assert_eq!(flat_cursor::<&str>(&[], 0, 0), 0);
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_the_text_after_the_cursor(
            // A small alphabet makes matches likely; the wide one finds odd characters.
            text in prop_oneof!["[aAbBé世İ/ \n\u{3000}]{0,16}", "(?s).{0,40}"],
            cursor in 0usize..50,
            room in proptest::collection::vec(
                prop_oneof!["[aAbBé世İ/]{0,4}", "\\PC{0,8}"],
                0..6,
            ),
            me in prop_oneof!["[aAbBé世İ]{0,4}", "\\PC{0,8}"],
            presses in 1usize..5,
        ) {
            let split = byte_at(&text, cursor);
            let tail = &text[split..];
            let (mut now, mut at) = (text.clone(), cursor);
            let mut state: Option<Completion> = None;
            for _ in 0..presses {
                let Some(done) = complete(&now, at, state.as_ref(), &room, &COMMANDS, &me) else {
                    break;
                };
                prop_assert!(done.cursor <= done.text.chars().count());
                let b = byte_at(&done.text, done.cursor);
                prop_assert_eq!(&done.text[b..], tail);
                prop_assert!(done.text.starts_with(&done.state.before));
                prop_assert!(done.state.candidates().contains(&done.state.current().to_string()));
                now = done.text;
                at = done.cursor;
                state = Some(done.state);
            }
        }
    }
}
