//! Display width and wrapping. Pure.
//!
//! Widths are per grapheme cluster (`unicode-segmentation` + `unicode-width`), which is
//! how ratatui lays text into cells: CJK and emoji take two columns, combining marks
//! none. The wrapper is written here rather than taken from `textwrap` because
//! `textwrap` measures one `char` at a time, which disagrees with ratatui on clusters
//! such as `❤️` (a heart plus a variation selector: two columns) and would let such a row
//! overflow the pane; a view that wraps with one measure and draws with another cuts
//! characters.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Columns `s` takes on screen.
pub fn width(s: &str) -> usize {
    s.graphemes(true).map(grapheme_width).sum()
}

/// Columns one grapheme cluster takes on this terminal: as Unicode says (what ratatui
/// assumes), except for the kinds of emoji sequence this terminal was measured to draw
/// one part at a time (see [`Measure`]).
pub fn grapheme_width(g: &str) -> usize {
    let standard = UnicodeWidthStr::width(g);
    // One char (at most 4 bytes) is never a sequence: the common case stops here.
    if g.len() <= 4 {
        return standard;
    }
    match Sequence::of(g) {
        Some(kind) if measure().parts(kind) => parts_width(g),
        _ => standard,
    }
}

/// The width of a cluster drawn one char at a time, as terminals that do not know the
/// sequence draw it: a skin-toned thumb as a thumb and a swatch (4), a family as its
/// people (6), `❤️` as a text heart (1).
fn parts_width(g: &str) -> usize {
    g.chars()
        .map(|c| UnicodeWidthChar::width(c).unwrap_or(0))
        .sum::<usize>()
        .max(1)
}

/// The kinds of emoji sequence terminals disagree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    /// Joined with ZERO WIDTH JOINER: families, professions (`👩‍👩‍👧`).
    Zwj,
    /// With a skin tone (`👍🏽`).
    Modifier,
    /// A flag: two regional indicators (`🇯🇵`).
    Flag,
    /// A text character asked to be emoji with VARIATION SELECTOR-16 (`❤️`), keycaps.
    Emoji,
}

impl Sequence {
    /// Every kind, each with a sequence to measure it by.
    pub const PROBES: [(Sequence, &'static str); 4] = [
        (Sequence::Zwj, "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}"),
        (Sequence::Modifier, "\u{1F44D}\u{1F3FD}"),
        (Sequence::Flag, "\u{1F1EF}\u{1F1F5}"),
        (Sequence::Emoji, "\u{2764}\u{FE0F}"),
    ];

    /// Which kind of sequence the cluster `g` is, if any.
    pub fn of(g: &str) -> Option<Sequence> {
        let mut chars = g.chars();
        let first = chars.next()?;
        if g.contains('\u{200D}') {
            Some(Sequence::Zwj)
        } else if g.chars().any(|c| ('\u{1F3FB}'..='\u{1F3FF}').contains(&c)) {
            Some(Sequence::Modifier)
        } else if ('\u{1F1E6}'..='\u{1F1FF}').contains(&first) && chars.next().is_some() {
            Some(Sequence::Flag)
        } else if g.contains('\u{FE0F}') {
            Some(Sequence::Emoji)
        } else {
            None
        }
    }
}

/// How this terminal draws each kind of emoji sequence: whole, as Unicode says
/// (`false`), or one part at a time (`true`). Measured once at start (the terminal
/// reports where its cursor went after each probe), and the same for the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measure {
    parts: [bool; 4],
}

impl Measure {
    /// What the columns the terminal moved for each probe of [`Sequence::PROBES`] say;
    /// a kind whose probe went unanswered, or moved neither as Unicode says nor part by
    /// part, is taken as Unicode says.
    pub fn from_probes(moved: &[(Sequence, Option<usize>)]) -> Measure {
        let mut m = Measure::default();
        for (kind, cols) in moved {
            let Some(probe) = Sequence::PROBES
                .iter()
                .find(|(k, _)| k == kind)
                .map(|p| p.1)
            else {
                continue;
            };
            let parts = parts_width(probe);
            if *cols == Some(parts) && parts != UnicodeWidthStr::width(probe) {
                m.parts[*kind as usize] = true;
            }
        }
        m
    }

    /// Whether sequences of `kind` are drawn part by part.
    pub fn parts(&self, kind: Sequence) -> bool {
        self.parts[kind as usize]
    }
}

static MEASURE: std::sync::OnceLock<Measure> = std::sync::OnceLock::new();

/// Take `m` as how this terminal measures, for the rest of the run (the first call
/// counts). Until then, and without it, widths are as Unicode says.
pub fn set_measure(m: Measure) {
    let _ = MEASURE.set(m);
}

fn measure() -> Measure {
    MEASURE.get().copied().unwrap_or_default()
}

/// One row of wrapped text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The row's text, as a byte range of the wrapped text.
    pub bytes: Range<usize>,
    /// The row starts at the left edge, `full` columns wide, instead of under the
    /// text: it holds a link too long for an indented row (or the rest of a word cut
    /// at the edge), so that the link is not broken by indent spaces when copied, and
    /// is broken as little as the pane allows.
    pub flush: bool,
}

/// Split `text` into rows: the first at most `first` columns wide, the others at most
/// `rest`, and a row that holds a link longer than `rest` at most `full` (see
/// [`Row::flush`]; with `full` no wider than `rest` there are none). Breaks at spaces
/// where it can, inside a word only when the word is longer than a row, and never
/// inside a grapheme cluster. `\n` always starts a new row. The space a row was broken
/// at belongs to neither row. A row is never empty of content unless its paragraph is
/// (or it is the first, left to the label when a long link goes to a flush row), so
/// even a one-column pane terminates: a two-column character then gets a row of its
/// own.
pub fn wrap(text: &str, first: usize, rest: usize, full: usize) -> Vec<Row> {
    let (first, rest) = (first.max(1), rest.max(1));
    let full = full.max(rest);
    let mut rows: Vec<Row> = Vec::new();
    let mut para_start = 0;
    for para in text.split('\n') {
        let para_end = para_start + para.len();
        let graphemes: Vec<(usize, &str)> = para
            .grapheme_indices(true)
            .map(|(i, g)| (para_start + i, g))
            .collect();
        let is_space = |g: &str| g.chars().all(char::is_whitespace);
        let mut start = para_start;
        let mut col = 0;
        let mut flush = false;
        // The last space in this row: (its grapheme's index, its byte offset).
        let mut brk: Option<(usize, usize)> = None;
        let mut i = 0;
        while let Some(&(at, g)) = graphemes.get(i) {
            let w = grapheme_width(g);
            let space = is_space(g);
            let limit = if rows.is_empty() {
                first
            } else if flush {
                full
            } else {
                rest
            };
            let word_starts = !space && (i == 0 || is_space(graphemes[i - 1].1));
            if word_starts && !flush && full > rest {
                let word = graphemes[i..].iter().take_while(|(_, g)| !is_space(g));
                let (cols, end) = word.fold((0, at), |(cols, _), (gat, g)| {
                    (cols + grapheme_width(g), gat + g.len())
                });
                if cols > rest && col + cols > limit && looks_like_a_link(&text[at..end]) {
                    // Too long for any indented row: it goes to a row at the left edge.
                    if at > start {
                        let end = brk.map_or(at, |(_, bat)| bat);
                        rows.push(Row {
                            bytes: start..end,
                            flush: false,
                        });
                        start = at;
                    } else if rows.is_empty() {
                        // The first row keeps the label alone.
                        rows.push(Row {
                            bytes: start..start,
                            flush: false,
                        });
                    }
                    col = 0;
                    brk = None;
                    flush = true;
                    continue;
                }
            }
            if space && flush && at > start && !rows.is_empty() {
                // The long word is over: what follows goes back under the text.
                rows.push(Row {
                    bytes: start..at,
                    flush: true,
                });
                start = at + g.len();
                i += 1;
                flush = false;
                col = 0;
                brk = None;
                continue;
            }
            if col + w > limit && at > start {
                let row_flush = flush && !rows.is_empty();
                if space {
                    // Break at this space; it is not part of either row.
                    rows.push(Row {
                        bytes: start..at,
                        flush: row_flush,
                    });
                    start = at + g.len();
                    i += 1;
                    flush = false;
                } else if let Some((bi, bat)) = brk {
                    // Break at the last space, and lay out the word after it again.
                    rows.push(Row {
                        bytes: start..bat,
                        flush: row_flush,
                    });
                    start = bat + graphemes[bi].1.len();
                    i = bi + 1;
                    flush = false;
                } else {
                    // A word longer than the row: cut it here; it goes on in a row
                    // like this one (at the edge if this one is).
                    rows.push(Row {
                        bytes: start..at,
                        flush: row_flush,
                    });
                    start = at;
                    flush = row_flush;
                }
                col = 0;
                brk = None;
                continue;
            }
            col += w;
            if space {
                brk = Some((i, at));
            }
            i += 1;
        }
        let row_flush = flush && !rows.is_empty();
        rows.push(Row {
            bytes: start..para_end,
            flush: row_flush,
        });
        para_start = para_end + 1;
    }
    rows
}

/// Whether `word` is worth keeping whole for copying: a link (`scheme://…`) or a
/// room's invitation (see [`crate::invite`]). Other long runs without spaces (a
/// sentence in Chinese, a row of emoji) wrap where they reach the edge, as text does.
fn looks_like_a_link(word: &str) -> bool {
    word.contains("://")
        || (crate::invite::Invitation::looks_like(word)
            && crate::invite::Invitation::parse(word).is_ok())
}

/// One text's rows at one set of widths, kept so that a text drawn again (every frame
/// while it is on screen, every step of a scroll) is not measured again. Wrapping walks
/// every grapheme of the text and was the largest part of drawing a frame.
///
/// Only `update` keeps rows ([`Wrapped::settle`], for the entries on screen after each
/// change); drawing only reads them, and lays out afresh, without keeping, a text whose
/// kept rows are for other widths. Whoever changes the text calls [`Wrapped::forget`].
/// It is not part of the value: two texts compare equal whatever either has kept.
#[derive(Default, Clone)]
pub struct Wrapped(Option<Box<Kept>>);

#[derive(Clone)]
struct Kept {
    widths: (usize, usize, usize),
    /// The length of the text laid out: a guard, should a change forget to `forget`.
    len: usize,
    rows: Vec<Row>,
}

impl Wrapped {
    /// The kept rows, if they are for `text` at these widths.
    fn kept(&self, text: &str, widths: (usize, usize, usize)) -> Option<&[Row]> {
        self.0
            .as_deref()
            .filter(|k| k.widths == widths && k.len == text.len())
            .map(|k| k.rows.as_slice())
    }

    /// `f` of the rows of `text` at `widths` (`(first, rest, full)`, as [`wrap`] takes
    /// them): the kept ones, or else laid out now and not kept.
    pub fn with_rows<T>(
        &self,
        text: &str,
        widths: (usize, usize, usize),
        f: impl FnOnce(&[Row]) -> T,
    ) -> T {
        match self.kept(text, widths) {
            Some(rows) => f(rows),
            None => f(&wrap(text, widths.0, widths.1, widths.2)),
        }
    }

    /// Keep the rows of `text` at `widths`, unless they are kept already. How many.
    pub fn settle(&mut self, text: &str, widths: (usize, usize, usize)) -> usize {
        if let Some(rows) = self.kept(text, widths) {
            return rows.len();
        }
        let rows = wrap(text, widths.0, widths.1, widths.2);
        let n = rows.len();
        self.0 = Some(Box::new(Kept {
            widths,
            len: text.len(),
            rows,
        }));
        n
    }

    /// Whether rows for `text` at `widths` are kept.
    pub fn is_settled(&self, text: &str, widths: (usize, usize, usize)) -> bool {
        self.kept(text, widths).is_some()
    }

    /// The text changed: what was kept no longer fits it.
    pub fn forget(&mut self) {
        self.0 = None;
    }
}

impl PartialEq for Wrapped {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Wrapped {}

impl std::fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wrapped")
    }
}

/// `line` wrapped at any grapheme in rows `width` columns wide (a character that does
/// not fit starts the next row), as byte ranges: how the input box lays out its text.
pub fn glyph_wrap(line: &str, width: usize) -> Vec<Range<usize>> {
    let width = width.max(1);
    let mut rows = Vec::new();
    let (mut start, mut col) = (0, 0);
    for (at, g) in line.grapheme_indices(true) {
        let w = grapheme_width(g);
        if col + w > width && col > 0 {
            rows.push(start..at);
            start = at;
            col = 0;
        }
        col += w;
    }
    rows.push(start..line.len());
    rows
}

/// Rows `line` takes when wrapped at any grapheme in `width` columns (a character that
/// does not fit starts the next row). With `cursor_after`, a line that ends exactly at
/// the edge gets one more row, for the cursor to stand in.
pub fn glyph_rows(line: &str, width: usize, cursor_after: bool) -> usize {
    let width = width.max(1);
    let mut rows = 1;
    let mut col = 0;
    for g in line.graphemes(true) {
        let w = grapheme_width(g);
        if col + w > width && col > 0 {
            rows += 1;
            col = 0;
        }
        col += w;
    }
    if cursor_after && col >= width {
        rows += 1;
    }
    rows
}

/// The char offset of the grapheme boundary before `col` (a char offset) in `line`: where
/// Left and Backspace go, so that an accent, a flag or a family emoji moves and goes
/// whole. 0 at the start.
pub fn prev_boundary(line: &str, col: usize) -> usize {
    let mut at = 0;
    let mut prev = 0;
    for g in line.graphemes(true) {
        if at >= col {
            break;
        }
        prev = at;
        at += g.chars().count();
    }
    if at < col { at } else { prev }
}

/// The char offset of the grapheme boundary after `col` in `line` (its length in chars
/// at the end).
pub fn next_boundary(line: &str, col: usize) -> usize {
    let mut at = 0;
    for g in line.graphemes(true) {
        at += g.chars().count();
        if at > col {
            return at;
        }
    }
    at
}

/// `col` if it falls between two graphemes of `line`, else the boundary before it.
pub fn snap_to_boundary(line: &str, col: usize) -> usize {
    let mut at = 0;
    for g in line.graphemes(true) {
        let next = at + g.chars().count();
        if next > col {
            return at;
        }
        at = next;
    }
    at
}

/// Where the cursor stands, as (row, column) within `line` wrapped at any grapheme in
/// rows `width` columns wide (as the input box wraps), when it is before char `col`.
/// The column counts what is drawn before it, so a cursor after a ZWJ family or a
/// skin-toned emoji stands two columns on, as the terminal draws them.
pub fn cursor_cell(line: &str, col: usize, width: usize) -> (usize, usize) {
    let width = width.max(1);
    let (mut row, mut x, mut chars) = (0, 0, 0);
    for g in line.graphemes(true) {
        if chars >= col {
            break;
        }
        let w = grapheme_width(g);
        if x + w > width && x > 0 {
            row += 1;
            x = 0;
        }
        x += w;
        chars += g.chars().count();
    }
    (row, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_step_over_whole_graphemes() {
        // e + combining acute, a flag, a ZWJ family, a skin-toned thumb.
        let line = "cafe\u{301}🇯🇵👩\u{200d}👩\u{200d}👧\u{200d}👦👍🏽!";
        let stops: Vec<usize> = {
            let mut v = vec![0];
            let mut at = 0;
            while at < line.chars().count() {
                at = next_boundary(line, at);
                v.push(at);
            }
            v
        };
        // c a f é 🇯🇵 family 👍🏽 !
        assert_eq!(stops, [0, 1, 2, 3, 5, 7, 14, 16, 17]);
        for w in stops.windows(2) {
            assert_eq!(prev_boundary(line, w[1]), w[0]);
        }
        assert_eq!(prev_boundary(line, 0), 0);
        // Inside a cluster, snap back to its start.
        assert_eq!(snap_to_boundary(line, 4), 3);
        assert_eq!(snap_to_boundary(line, 10), 7);
        assert_eq!(snap_to_boundary(line, 14), 14);
    }

    #[test]
    fn the_cursor_stands_after_what_is_drawn() {
        let family = "👩\u{200d}👩\u{200d}👧\u{200d}👦";
        let line = format!("a{family}b");
        assert_eq!(cursor_cell(&line, 1, 80), (0, 1));
        assert_eq!(
            cursor_cell(&line, 8, 80),
            (0, 3),
            "the family is two columns"
        );
        assert_eq!(cursor_cell(&line, 9, 80), (0, 4));
        // Wrapped at 4 columns: 你好 fills the first row, 世 starts the second.
        assert_eq!(cursor_cell("你好世界", 2, 4), (0, 4));
        assert_eq!(cursor_cell("你好世界", 3, 4), (1, 2));
    }

    fn rows(text: &str, first: usize, rest: usize) -> Vec<&str> {
        wrap(text, first, rest, rest)
            .into_iter()
            .map(|r| &text[r.bytes])
            .collect()
    }

    /// Rows with a full width: each as its text, `|` before a flush one.
    fn flush_rows(text: &str, first: usize, rest: usize, full: usize) -> Vec<String> {
        wrap(text, first, rest, full)
            .into_iter()
            .map(|r| format!("{}{}", if r.flush { "|" } else { "" }, &text[r.bytes]))
            .collect()
    }

    #[test]
    fn a_word_too_long_for_an_indented_row_goes_to_the_edge_whole() {
        let url = "https://example.com/a/rather/long/path";
        // 20 columns of pane, rows indented by 6 (14 for text): the link (38) gets rows
        // of its own at the edge, cut only at the pane's width.
        let text = format!("see {url} now");
        assert_eq!(
            flush_rows(&text, 14, 14, 20),
            vec!["see", "|https://example.com/", "|a/rather/long/path", "now"]
        );
        // An invitation is kept whole the same way.
        let token = "192.0.2.2:7990,127.0.0.1:7990/0653f82873602ceb54d78041bd8c92bd";
        let text = format!("join with: {token} (or nc)");
        let rows = flush_rows(&text, 30, 30, 80);
        assert_eq!(rows[1], format!("|{token}"), "{rows:?}");
        // One that fits the full width is not cut at all.
        let text = "read https://ex.com/abcdefghij ok";
        assert_eq!(
            flush_rows(text, 14, 14, 30),
            vec!["read", "|https://ex.com/abcdefghij", "ok"]
        );
        // A message that is only the link leaves the first row to the label.
        assert_eq!(
            flush_rows("https://ex.com/abcdefghij", 14, 14, 30),
            vec!["", "|https://ex.com/abcdefghij"]
        );
        // Short words, long words that are not links and an unindented pane are
        // laid out as ever.
        assert_eq!(flush_rows("a b c", 2, 2, 10), vec!["a", "b", "c"]);
        assert_eq!(
            flush_rows("一二三四五六七八九十", 8, 8, 20),
            vec!["一二三四", "五六七八", "九十"]
        );
        assert_eq!(
            flush_rows("abcdefghij", 4, 4, 4),
            vec!["abcd", "efgh", "ij"]
        );
    }

    #[test]
    fn glyph_wrap_cuts_anywhere_between_clusters() {
        let line = "ab你好c";
        let rows: Vec<&str> = glyph_wrap(line, 3).into_iter().map(|r| &line[r]).collect();
        assert_eq!(rows, ["ab", "你", "好c"]);
        assert_eq!(glyph_wrap("", 3), vec![Range { start: 0, end: 0 }]);
        for (w, line) in [(3, "ab你好c"), (1, "世界"), (4, "abcd")] {
            assert_eq!(glyph_wrap(line, w).len(), glyph_rows(line, w, false));
        }
    }

    #[test]
    fn glyph_rows_count_wide_characters_and_the_cursor() {
        assert_eq!(glyph_rows("", 10, true), 1);
        assert_eq!(glyph_rows("abcd", 4, false), 1);
        assert_eq!(glyph_rows("abcd", 4, true), 2);
        assert_eq!(glyph_rows("abcde", 4, true), 2);
        // 世界世 in 5 columns: two fit (4), the third starts row 2.
        assert_eq!(glyph_rows("世界世", 5, false), 2);
    }

    #[test]
    fn sequences_are_told_apart() {
        assert_eq!(Sequence::of("👩\u{200d}💻"), Some(Sequence::Zwj));
        assert_eq!(Sequence::of("👋🏿"), Some(Sequence::Modifier));
        assert_eq!(Sequence::of("🇫🇷"), Some(Sequence::Flag));
        assert_eq!(Sequence::of("1\u{fe0f}\u{20e3}"), Some(Sequence::Emoji));
        assert_eq!(Sequence::of("é"), None);
        assert_eq!(
            Sequence::of("🇫"),
            None,
            "a lone regional indicator is no flag"
        );
    }

    #[test]
    fn a_terminal_that_draws_part_by_part_is_measured_so() {
        // As the emulator in the end-to-end tests draws them: a thumb and its tone, each
        // person of a family, a text heart; flags whole.
        let m = Measure::from_probes(&[
            (Sequence::Zwj, Some(6)),
            (Sequence::Modifier, Some(4)),
            (Sequence::Flag, Some(2)),
            (Sequence::Emoji, Some(1)),
        ]);
        assert!(m.parts(Sequence::Zwj) && m.parts(Sequence::Modifier) && m.parts(Sequence::Emoji));
        assert!(
            !m.parts(Sequence::Flag),
            "whole and part by part agree on flags"
        );
        // As Unicode says, as the answers say nothing, or something else again (tmux
        // draws a toned thumb in 2 and drops the tone): Unicode's widths.
        let whole = [2, 2, 2, 2].map(Some);
        let unsure = [None, Some(3), Some(7), Some(0)];
        for moved in [whole, unsure] {
            let probes: Vec<(Sequence, Option<usize>)> =
                Sequence::PROBES.iter().map(|p| p.0).zip(moved).collect();
            assert_eq!(Measure::from_probes(&probes), Measure::default());
        }
        assert_eq!(parts_width("👍🏽"), 4);
        assert_eq!(parts_width("👩\u{200d}👩\u{200d}👧"), 6);
        assert_eq!(parts_width("❤\u{fe0f}"), 1);
    }

    #[test]
    fn widths() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("世界"), 4);
        assert_eq!(width("🎉"), 2);
        assert_eq!(width("❤️"), 2);
        assert_eq!(width("e\u{301}"), 1);
    }

    #[test]
    fn breaks_at_spaces() {
        assert_eq!(
            rows("hello brave new world", 11, 11),
            vec!["hello brave", "new world"]
        );
        assert_eq!(rows("hello world", 5, 5), vec!["hello", "world"]);
    }

    #[test]
    fn long_words_are_cut_at_the_width() {
        assert_eq!(rows("abcdefghij", 4, 4), vec!["abcd", "efgh", "ij"]);
    }

    #[test]
    fn cjk_wraps_whole_characters() {
        // 5 characters of 2 columns in 7 columns: 3 fit (6 columns), never 3.5.
        assert_eq!(rows("一二三四五", 7, 7), vec!["一二三", "四五"]);
        for r in wrap("日本語のテキストです", 5, 5, 5) {
            assert!(width(&"日本語のテキストです"[r.bytes]) <= 5);
        }
    }

    #[test]
    fn first_row_can_be_narrower() {
        assert_eq!(rows("aaa bbb ccc", 3, 7), vec!["aaa", "bbb ccc"]);
    }

    #[test]
    fn newlines_start_rows_and_empty_paragraphs_stay() {
        assert_eq!(rows("a\n\nb", 10, 10), vec!["a", "", "b"]);
        assert_eq!(rows("", 10, 10), vec![""]);
    }

    #[test]
    fn a_wide_char_in_a_one_column_pane_gets_its_own_row() {
        assert_eq!(rows("世界", 1, 1), vec!["世", "界"]);
    }

    #[test]
    fn kept_rows_are_the_wrapped_rows_and_follow_the_widths() {
        let text = "hello brave new world";
        let mut kept = Wrapped::default();
        let at = |first, rest| (first, rest, rest);
        assert!(!kept.is_settled(text, at(11, 11)));
        // Read before anything is kept: laid out, and still not kept.
        let rows = kept.with_rows(text, at(11, 11), <[_]>::to_vec);
        assert_eq!(rows, wrap(text, 11, 11, 11));
        assert!(!kept.is_settled(text, at(11, 11)));
        assert_eq!(kept.settle(text, at(11, 11)), 2);
        assert!(kept.is_settled(text, at(11, 11)));
        assert_eq!(kept.with_rows(text, at(11, 11), <[_]>::to_vec), rows);
        // At other widths: laid out for them, not the rows kept for the old ones.
        assert!(!kept.is_settled(text, at(5, 21)));
        let other = kept.with_rows(text, at(5, 21), <[_]>::to_vec);
        assert_eq!(other, wrap(text, 5, 21, 21));
        assert_ne!(other, rows);
    }

    #[test]
    fn forgotten_rows_are_wrapped_again_for_the_new_text() {
        let mut kept = Wrapped::default();
        assert_eq!(kept.settle("a b", (1, 1, 1)), 2);
        kept.forget();
        assert!(!kept.is_settled("abc def ghi", (1, 1, 1)));
        assert_eq!(kept.settle("abc def ghi", (1, 1, 1)), 9);
    }

    #[test]
    fn clusters_are_never_split() {
        let text = "👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧";
        let got = rows(text, 2, 2);
        assert_eq!(got, vec!["👨‍👩‍👧", "👨‍👩‍👧", "👨‍👩‍👧"]);
    }
}
