//! Where things go on the screen and how many rows they take. Pure.
//!
//! The model and the view both need these answers: the view to draw, the model to know
//! how far a page scrolls and how many rows an entry spans. Keeping them here, apart
//! from both, means the two can never disagree, and the model does not depend on the
//! view.

use ratatui::layout::{Constraint, Layout, Rect};

use super::{Entry, Kind};
use crate::text;

/// The most lines the input box grows to before it scrolls.
pub const INPUT_MAX_ROWS: u16 = 5;

/// The width of the time column, `HH:MM `.
pub const TIME_WIDTH: usize = 6;

/// Columns the input box's border and padding take from the screen's width.
const INPUT_FRAME: usize = 4;

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub messages: Rect,
    /// The list of who is in the room, right of the messages (empty when hidden).
    pub nicks: Rect,
    pub input: Rect,
    pub status: Rect,
}

/// The screen's layout for a terminal of `width`×`height` with `input_rows` rows of
/// text in the input box, and a list of names `nicks` columns wide beside the messages
/// (0: none).
pub fn areas(width: u16, height: u16, input_rows: u16, nicks: u16) -> Areas {
    let area = Rect::new(0, 0, width, height);
    let [top, input, status] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(input_rows + 2),
        Constraint::Length(1),
    ])
    .areas(area);
    let [messages, nicks] =
        Layout::horizontal([Constraint::Min(1), Constraint::Length(nicks)]).areas(top);
    Areas {
        messages,
        nicks,
        input,
        status,
    }
}

/// Columns the list of names takes beside the messages on a screen `width` wide: none
/// unless `shown` (F2), and none on a terminal too narrow to spare them; else the
/// widest name with a rule and a space each side, at most a quarter of the screen.
pub fn nick_list_width<'a>(shown: bool, width: u16, names: impl Iterator<Item = &'a str>) -> u16 {
    if !shown || width < 40 {
        return 0;
    }
    let widest = names.map(text::width).max().unwrap_or(0);
    u16::try_from(widest + 3)
        .unwrap_or(u16::MAX)
        .clamp(8, width / 4)
}

/// Rows the input box's text takes on a screen `width` wide (the box adds its border),
/// with the cursor at (`row`, `col`) (a char offset): the box wraps at any grapheme, and
/// a cursor after a full row needs the row below.
pub fn input_rows(lines: &[String], cursor: (usize, usize), width: u16) -> u16 {
    let w = usize::from(width).saturating_sub(INPUT_FRAME).max(1);
    let rows: usize = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let at_end = i == cursor.0 && cursor.1 == l.chars().count();
            text::glyph_rows(l, w, at_end)
        })
        .sum();
    rows.clamp(1, usize::from(INPUT_MAX_ROWS)) as u16
}

/// Rows one PgUp/PgDn moves in a pane `height` rows tall: the pane, less the row the
/// scrolled-back marker covers and one row kept from the last page, so the eye finds
/// its place.
pub fn page(height: usize) -> usize {
    height.saturating_sub(2).max(1)
}

/// What stands before an entry's text.
pub fn label(kind: &Kind) -> String {
    match kind {
        Kind::Message { from, .. } | Kind::Text { from } => format!("{from}: "),
        Kind::Action { from, .. } => format!("* {from} "),
        Kind::Private { from, to, .. } => format!("[private] {from} → {to}: "),
        Kind::Notice => "* ".to_owned(),
        Kind::Error => "! ".to_owned(),
    }
}

/// How an entry's text is laid out in a pane `width` columns wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// Columns the first row leaves for text, after the time and the label.
    pub first: usize,
    /// Columns the rows after it have.
    pub rest: usize,
    /// Where the rows after the first start: under the text when the label is short,
    /// at the left edge when not.
    pub indent: usize,
    /// Columns a row at the left edge has (the pane's width): for a word too long for
    /// an indented row (see [`text::Row::flush`]).
    pub full: usize,
}

impl Columns {
    /// The widths [`text::wrap`] takes.
    pub fn widths(&self) -> (usize, usize, usize) {
        (self.first, self.rest, self.full)
    }
}

/// Columns [`label`] takes, without making it.
fn label_width(kind: &Kind) -> usize {
    match kind {
        Kind::Message { from, .. } | Kind::Text { from } => text::width(from) + 2,
        Kind::Action { from, .. } => text::width(from) + 3,
        // `[private] ` and ` → ` and `: `.
        Kind::Private { from, to, .. } => text::width(from) + text::width(to) + 15,
        Kind::Notice | Kind::Error => 2,
    }
}

/// The columns of `kind`'s entry in a pane `width` wide.
pub fn columns(kind: &Kind, width: usize) -> Columns {
    let prefix = TIME_WIDTH + label_width(kind);
    let indent = if prefix * 2 <= width { prefix } else { 0 };
    Columns {
        first: width.saturating_sub(prefix).max(1),
        rest: width.saturating_sub(indent).max(1),
        indent,
        full: width.max(1),
    }
}

/// How many rows `entry` takes in a pane `width` columns wide.
pub fn entry_rows(entry: &Entry, width: usize) -> usize {
    let c = columns(&entry.kind, width);
    entry.wrapped.with_rows(&entry.text, c.widths(), <[_]>::len)
}

/// `s` cut to at most `width` columns, with `…` where it was cut.
pub fn fit(s: &str, width: usize) -> String {
    if text::width(s) <= width {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for g in unicode_segmentation::UnicodeSegmentation::graphemes(s, true) {
        let w = text::width(g);
        if used + w + 1 > width {
            break;
        }
        out.push_str(g);
        used += w;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_label_indents_the_rows_under_the_text() {
        let kind = Kind::Message {
            from: "bob".into(),
            own: false,
            state: super::super::Delivery::Delivered,
        };
        // `12:01 bob: ` is 11 columns.
        let c = columns(&kind, 40);
        assert_eq!((c.first, c.rest, c.indent, c.full), (29, 29, 11, 40));
        // Where the label would take more than half the pane, rows start at the edge.
        let c = columns(&kind, 20);
        assert_eq!((c.first, c.rest, c.indent), (9, 20, 0));
    }

    #[test]
    fn the_label_is_as_wide_as_it_is_measured() {
        use super::super::Delivery;
        let kinds = [
            Kind::Message {
                from: "bob".into(),
                own: false,
                state: Delivery::Delivered,
            },
            Kind::Text {
                from: "10.0.0.2:7878".into(),
            },
            Kind::Action {
                from: "李雷".into(),
                own: true,
                held: false,
            },
            Kind::Private {
                from: "ann".into(),
                to: "李雷".into(),
                own: false,
            },
            Kind::Notice,
            Kind::Error,
        ];
        for kind in kinds {
            assert_eq!(label_width(&kind), text::width(&label(&kind)), "{kind:?}");
        }
    }

    #[test]
    fn the_input_box_grows_with_wide_text_and_stops_at_its_most() {
        let one = vec!["你好".repeat(8)]; // 32 columns
        // 36 wide leaves 32 for text: full, and the cursor at the end needs a row.
        assert_eq!(input_rows(&one, (0, 16), 36), 2);
        assert_eq!(input_rows(&one, (0, 0), 36), 1);
        let many: Vec<String> = (0..9).map(|i| i.to_string()).collect();
        assert_eq!(input_rows(&many, (0, 0), 80), INPUT_MAX_ROWS);
    }

    #[test]
    fn the_name_list_is_a_quarter_at_most_and_none_when_narrow() {
        let names = ["alice", "a-rather-long-name-indeed"];
        assert_eq!(nick_list_width(false, 100, names.into_iter()), 0);
        assert_eq!(nick_list_width(true, 39, names.into_iter()), 0);
        assert_eq!(nick_list_width(true, 100, names.into_iter()), 25);
        assert_eq!(nick_list_width(true, 100, ["al"].into_iter()), 8);
    }

    #[test]
    fn fit_cuts_by_columns_and_marks_the_cut() {
        assert_eq!(fit("hello", 5), "hello");
        assert_eq!(fit("hello", 4), "hel…");
        assert_eq!(fit("你好世界", 5), "你好…");
    }
}
