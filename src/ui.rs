//! The view: draws an [`App`] and changes nothing.
//!
//! ```text
//! 12:01 alice: hello                         <- message pane (only the rows that show
//! 12:01 * bob joined                            are laid out, however long the
//! 12:02 bob: 你好, a long line wraps under      scrollback is)
//!             the text column
//! ╭ Enter sends · Esc leaves ───────────────╮
//! │ what you are typing▏                    │ <- input box (grows to 5 rows)
//! ╰─────────────────────────────────────────╯
//!  tchat │ room 10.0.0.2:7878 │ alice │ 3 here │ connected   <- status line
//! ```

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Padding, Paragraph};

use crate::app::layout::{self, fit};
use crate::app::{App, Conn, Delivery, Entry, Kind, Lock, Role, Scroll};
use crate::text;

/// The list of names beside the messages: a rule, then one name a row, in its colour;
/// `+N more` when they do not all fit.
fn nick_list(app: &App, area: Rect, frame: &mut Frame) {
    if area.width < 3 || area.height == 0 {
        return;
    }
    let rows = usize::from(area.height);
    let names = app.members();
    let (shown, more) = if names.len() > rows {
        (rows.saturating_sub(1), names.len() - rows.saturating_sub(1))
    } else {
        (names.len(), 0)
    };
    // The rule and a column of padding each side.
    let room = usize::from(area.width) - 3;
    let mut lines: Vec<Line> = names
        .iter()
        .take(shown)
        .map(|n| {
            let mut style = Style::new();
            if app.settings().color {
                style = style.fg(name_color(n, app.settings().many_colors));
            }
            if *n == app.me() {
                style = style.add_modifier(Modifier::UNDERLINED);
            }
            Line::from(Span::styled(fit(n, room), style))
        })
        .collect();
    if more > 0 {
        lines.push(Line::from(Span::styled(
            fit(&format!("+{more} more"), room),
            Style::new().dark_gray(),
        )));
    }
    let block = Block::new()
        .borders(ratatui::widgets::Borders::LEFT)
        .border_style(Style::new().dark_gray())
        .padding(Padding::horizontal(1));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    for (y, line) in (inner.y..inner.bottom()).zip(&lines) {
        draw_line(frame.buffer_mut(), inner.x, y, inner.width, line);
    }
}

/// A stable colour for a name: from the terminal's own sixteen, or (`many`: a terminal
/// with 256 colours) from a wider set, so that a room of ten shows ten colours more
/// often than six.
pub fn name_color(name: &str, many: bool) -> Color {
    // Red is kept for errors, and dark blue reads poorly on many dark themes.
    const PALETTE: [Color; 9] = [
        Color::Green,
        Color::Yellow,
        Color::Magenta,
        Color::Cyan,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
    ];
    // Mid-bright hues of the 256-colour cube, around the wheel: no reds, no near-greys,
    // nothing too dark for a dark theme or too pale for a light one.
    const WIDE: [u8; 24] = [
        33, 38, 43, 48, 69, 74, 79, 84, 99, 105, 111, 114, 135, 141, 147, 150, 170, 176, 178, 172,
        208, 214, 220, 142,
    ];
    // FNV-1a: the same name gets the same colour on every screen and every run.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    if many {
        Color::Indexed(WIDE[(hash % WIDE.len() as u64) as usize])
    } else {
        PALETTE[(hash % PALETTE.len() as u64) as usize]
    }
}

/// Format a time as local `HH:MM`.
pub fn clock(ts: i64, utc_offset: i32) -> String {
    let secs = ts.div_euclid(1000) + i64::from(utc_offset);
    let minutes = secs.div_euclid(60);
    format!(
        "{:02}:{:02}",
        minutes.div_euclid(60).rem_euclid(24),
        minutes.rem_euclid(60)
    )
}

/// The rows of one entry, styled. `names`: colour names, from how many colours (`None`:
/// no colour at all).
/// With `with_links`, also where each row shows links.
fn entry_lines(
    entry: &Entry,
    width: usize,
    utc_offset: i32,
    names: Option<bool>,
    with_links: bool,
) -> Vec<(Line<'static>, Vec<LinkCells>)> {
    let color = names.is_some();
    // A name in its own colour (or, with NO_COLOR, in the terminal's own).
    let name_style = |name: &str, own: bool| {
        let mut style = Style::new().add_modifier(Modifier::BOLD);
        if let Some(many) = names {
            style = style.fg(name_color(name, many));
        }
        if own {
            style = style.add_modifier(Modifier::UNDERLINED);
        }
        style
    };
    let columns = layout::columns(&entry.kind, width);
    let indent = columns.indent;
    let label_text = layout::label(&entry.kind);
    let prefix = layout::TIME_WIDTH + text::width(&label_text);
    let time = Span::styled(
        format!("{} ", clock(entry.ts, utc_offset)),
        Style::new().dark_gray(),
    );
    let (label_span, body_style) = match &entry.kind {
        Kind::Message { from, own, state } => {
            let name = name_style(from, *own);
            let body = match state {
                Delivery::Delivered => Style::new(),
                Delivery::Pending => Style::new().dark_gray(),
                Delivery::NotSent => Style::new().red().add_modifier(Modifier::CROSSED_OUT),
            };
            (
                vec![Span::styled(from.clone(), name), Span::raw(": ")],
                body,
            )
        }
        Kind::Action { from, own, held } => (
            vec![
                Span::styled("* ", Style::new().italic()),
                Span::styled(from.clone(), name_style(from, *own).italic()),
                Span::raw(" "),
            ],
            if *held {
                Style::new().italic().dark_gray()
            } else {
                Style::new().italic()
            },
        ),
        Kind::Private { from, to, own } => {
            let tag = if color {
                Style::new().magenta().bold()
            } else {
                Style::new().bold()
            };
            (
                vec![
                    Span::styled("[private] ", tag),
                    Span::styled(from.clone(), name_style(from, *own)),
                    Span::raw(" → "),
                    Span::styled(to.clone(), name_style(to, false)),
                    Span::raw(": "),
                ],
                Style::new(),
            )
        }
        Kind::Text { .. } => (
            vec![Span::styled(label_text, Style::new().cyan())],
            Style::new(),
        ),
        Kind::Notice => (
            vec![Span::styled(label_text, Style::new().dark_gray())],
            Style::new().dark_gray().italic(),
        ),
        Kind::Error => (
            vec![Span::styled(label_text, Style::new().red().bold())],
            Style::new().red(),
        ),
    };
    // A line that names you stands out: bold, and marked in the time column.
    let (body_style, time) = if entry.mention {
        let mark = if color {
            Style::new().black().on_yellow()
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        };
        let time = Span::styled(time.content.clone(), mark);
        (body_style.add_modifier(Modifier::BOLD), time)
    } else {
        (body_style, time)
    };
    let links = if with_links {
        links(&entry.text)
    } else {
        Vec::new()
    };
    entry
        .wrapped
        .with_rows(&entry.text, columns.widths(), |rows| {
            let mut out = Vec::with_capacity(rows.len());
            for (i, row) in rows.iter().enumerate() {
                let bytes = row.bytes.clone();
                let body = Span::styled(entry.text[bytes.clone()].to_owned(), body_style);
                let (line, x) = if i == 0 {
                    let mut spans = vec![time.clone()];
                    spans.extend(label_span.iter().cloned());
                    spans.push(body);
                    (Line::from(spans), prefix)
                } else if row.flush {
                    (Line::from(vec![body]), 0)
                } else {
                    (
                        Line::from(vec![Span::raw(" ".repeat(indent)), body]),
                        indent,
                    )
                };
                // Where in this row each link shows.
                let mut cells = Vec::new();
                for link in &links {
                    let (from, to) = (link.start.max(bytes.start), link.end.min(bytes.end));
                    if from < to {
                        cells.push(LinkCells {
                            x: x + text::width(&entry.text[bytes.start..from]),
                            width: text::width(&entry.text[from..to]),
                            url: entry.text[link.clone()].to_owned(),
                        });
                    }
                }
                out.push((line, cells));
            }
            out
        })
}

/// The longest link made clickable (longer ones are shown, not linked). Its target is
/// sent with every row it spans, so a room full of long links must not make frames
/// heavy; real links are far shorter.
const LINK_MAX: usize = 512;

/// The web links in `text` (http and https only: a link is what it shows, and nothing
/// that opens a file or runs a program), as byte ranges.
pub fn links(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut finder = linkify::LinkFinder::new();
    finder.kinds(&[linkify::LinkKind::Url]);
    finder
        .links(text)
        .filter(|l| {
            let s = l.as_str();
            let web = ["http://", "https://"].iter().any(|p| {
                s.len() > p.len() && s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p))
            });
            web && s.len() <= LINK_MAX
        })
        .map(|l| l.start()..l.end())
        .collect()
}

/// Cells of one pane row that show (part of) a link.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkCells {
    /// The column the part starts at, from the pane's left edge.
    x: usize,
    /// Columns it takes.
    width: usize,
    /// Where it goes.
    url: String,
}

/// Make the cells of one row that show a link into a hyperlink (OSC 8) to it: the
/// run's text goes in its first cell between the link's start and end, the cell is told
/// the run's width, and the cells it covers are left empty. The link's start and end
/// thus always reach the terminal together (a start without its end would make what
/// follows a link too), and the target is sent once a row, not once a cell. Links are
/// made last, over rows nothing else is drawn on.
fn hyperlink(buf: &mut ratatui::buffer::Buffer, y: u16, x0: u16, right: u16, link: &LinkCells) {
    use ratatui::buffer::CellDiffOption;
    use std::hash::{Hash, Hasher};
    let to_u16 = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    let start = x0.saturating_add(to_u16(link.x));
    let end = start.saturating_add(to_u16(link.width)).min(right);
    if start >= end || y >= buf.area.bottom() {
        return;
    }
    let mut text = String::new();
    let mut x = start;
    while x < end {
        let symbol = buf[(x, y)].symbol();
        text.push_str(symbol);
        // A wide character covers the cells after it: step over them.
        x = x.saturating_add(u16::try_from(text::width(symbol).max(1)).unwrap_or(1));
    }
    let Some(width) = std::num::NonZeroU16::new(end - start) else {
        return;
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    link.url.hash(&mut h);
    let id = h.finish() as u32;
    let target = uri(&link.url);
    let style = buf[(start, y)].style();
    buf[(start, y)]
        .set_symbol(&format!(
            "\x1b]8;id={id:x};{target}\x1b\\{text}\x1b]8;;\x1b\\"
        ))
        .set_style(style)
        .set_diff_option(CellDiffOption::ForcedWidth(width));
    for x in start + 1..end {
        buf[(x, y)].set_symbol("");
    }
}

/// A link's target as OSC 8 wants it: printable ASCII, anything else percent-encoded
/// (the text shown stays as it is).
fn uri(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        if (0x21..0x7f).contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The rows that fill the message pane, top to bottom. Only entries that show are laid
/// out, so a frame costs the same with ten or a hundred thousand lines of scrollback.
pub fn visible_lines(app: &App, width: usize, height: usize) -> Vec<Line<'static>> {
    pane_rows(app, width, height, false)
        .into_iter()
        .map(|(line, _)| line)
        .collect()
}

/// The rows of the message pane, top to bottom, each with the links it shows (`links`:
/// look for them at all).
fn pane_rows(
    app: &App,
    width: usize,
    height: usize,
    links: bool,
) -> Vec<(Line<'static>, Vec<LinkCells>)> {
    let Some(last) = app.last_seq() else {
        return Vec::new();
    };
    let sb = app.scrollback();
    let (bottom, mut skip) = match sb.scroll() {
        Scroll::Live => (last, 0),
        Scroll::Back { bottom, skip } => (bottom.clamp(sb.first_seq(), last), skip),
    };
    let names = app.settings().color.then_some(app.settings().many_colors);
    let mut rows = Vec::with_capacity(height);
    let mut seq = bottom;
    loop {
        if let Some(entry) = app.entry(seq) {
            let lines = entry_lines(entry, width, app.utc_offset(), names, links);
            let keep = lines.len().saturating_sub(skip);
            rows.extend(lines.into_iter().take(keep).rev());
        }
        skip = 0;
        if rows.len() >= height || seq == sb.first_seq() {
            break;
        }
        seq -= 1;
    }
    rows.truncate(height);
    // Newest at the bottom, next to the input box, as in every chat: a short
    // conversation sits low in the pane with the empty space above it.
    rows.resize(height, (Line::default(), Vec::new()));
    rows.reverse();
    rows
}

/// Draw the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    draw(app, frame);
    if !app.settings().color {
        // No colour at all (NO_COLOR, `color = false`), whatever a widget chose; bold,
        // italic and reverse video are not colour, and stay.
        for cell in frame.buffer_mut().content.iter_mut() {
            cell.set_fg(Color::Reset).set_bg(Color::Reset);
        }
    }
}

fn draw(app: &App, frame: &mut Frame) {
    let size = frame.area();
    // The frame's size, which is the app's once the resize has reached it.
    let areas = layout::areas(
        size.width,
        size.height,
        app.input_rows(),
        app.nick_list_width(),
    );

    let pane = areas.messages;
    let links = app.settings().links;
    let rows = pane_rows(app, pane.width as usize, pane.height as usize, links);
    // Each row is already laid out to fit: drawn as it is, with no second pass of
    // wrapping or truncating over it (a `Paragraph` would re-measure every grapheme).
    for (y, (row, _)) in (pane.y..pane.bottom()).zip(&rows) {
        draw_line(frame.buffer_mut(), pane.x, y, pane.width, row);
    }
    let sb = app.scrollback();
    if !sb.is_live() && pane.height > 0 {
        let mentions = match sb.unseen_mentions() {
            0 => String::new(),
            1 => " (1 mentions you)".to_owned(),
            n => format!(" ({n} mention you)"),
        };
        let marker = match sb.unseen() {
            0 => " ↑ scrolled back · End returns to live ".to_owned(),
            1 => format!(" ↓ 1 new message below{mentions} · End returns to live "),
            n => format!(" ↓ {n} new messages below{mentions} · End returns to live "),
        };
        let at = Rect::new(pane.x, pane.bottom() - 1, pane.width, 1);
        frame.render_widget(Clear, at);
        frame.render_widget(
            Paragraph::new(Line::from(marker).centered()).style(Style::new().black().on_yellow()),
            at,
        );
    }
    // Links last, on the rows as drawn; not under the scrolled-back marker.
    let linked_rows = if app.scroll() == Scroll::Live {
        pane.height
    } else {
        pane.height.saturating_sub(1)
    };
    for (y, (_, cells)) in (pane.y..pane.y + linked_rows).zip(&rows) {
        for link in cells {
            hyperlink(frame.buffer_mut(), y, pane.x, pane.right(), link);
        }
    }

    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::new().dark_gray())
        .padding(Padding::horizontal(1))
        .title(" Enter sends · Esc leaves · PgUp/PgDn scroll ");
    let inner = block.inner(areas.input);
    frame.render_widget(block, areas.input);
    draw_input(app, inner, frame);

    nick_list(app, areas.nicks, frame);
    let status = areas.status;
    if status.height == 0 {
        return;
    }
    draw_line(
        frame.buffer_mut(),
        status.x,
        status.y,
        status.width,
        &status_line(app),
    );
}

/// The input box's text in `inner`, and the cursor in it. Laid out here by grapheme, at
/// the widths this terminal draws (the editing widget's own drawing counts a ZWJ
/// family or a skin-toned emoji one char at a time): wrapped at any cluster, and
/// scrolled so that the cursor's row shows.
fn draw_input(app: &App, inner: Rect, frame: &mut Frame) {
    if inner.width == 0 || inner.height == 0 {
        return;
    }
    let composer = app.composer();
    let lines = composer.lines();
    let w = usize::from(inner.width);
    let h = usize::from(inner.height);
    let rows: Vec<(usize, std::ops::Range<usize>)> = lines
        .iter()
        .enumerate()
        .flat_map(|(i, l)| text::glyph_wrap(l, w).into_iter().map(move |r| (i, r)))
        .collect();
    let (drow, dcol) = composer.cursor();
    let above = rows.iter().take_while(|(i, _)| *i < drow).count();
    let here = lines.get(drow).map_or("", String::as_str);
    let (sub, x) = text::cursor_cell(here, dcol, w);
    let (mut row, mut col) = (above + sub, x);
    if col >= w {
        // After a full row, the next character goes at the start of the next.
        row += 1;
        col = 0;
    }
    let top = (row + 1).saturating_sub(h);
    for (k, (i, r)) in rows.iter().skip(top).take(h).enumerate() {
        let y = inner.y + u16::try_from(k).unwrap_or(u16::MAX);
        let line = Line::raw(&lines[*i][r.clone()]);
        draw_line(frame.buffer_mut(), inner.x, y, inner.width, &line);
    }
    let to_u16 = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    let row = to_u16(row - top).min(inner.height - 1);
    let col = to_u16(col).min(inner.width - 1);
    frame.set_cursor_position(Position::new(inner.x + col, inner.y + row));
}

/// Draw `line` in row `y` from column `x`, in at most `width` columns: one cluster a
/// cell, each as wide as this terminal draws it ([`text::grapheme_width`]). Where that
/// is not what ratatui assumes, the cell is told its real width, so that the buffer
/// and the screen agree on where every later character stands and no fragment of an
/// older frame is left between them.
fn draw_line(buf: &mut ratatui::buffer::Buffer, x: u16, y: u16, width: u16, line: &Line) {
    use ratatui::buffer::CellDiffOption;
    use unicode_segmentation::UnicodeSegmentation;
    let area = buf.area;
    if y < area.top() || y >= area.bottom() || x < area.left() {
        return;
    }
    let right = x.saturating_add(width).min(area.right());
    let mut at = x;
    for span in &line.spans {
        let style = line.style.patch(span.style);
        for g in span.content.graphemes(true) {
            let w = text::grapheme_width(g);
            if w == 0 || g.contains(char::is_control) {
                continue;
            }
            let Ok(w16) = u16::try_from(w) else { return };
            if at.saturating_add(w16) > right {
                return;
            }
            let cell = &mut buf[(at, y)];
            cell.set_symbol(g).set_style(style);
            if w != unicode_width::UnicodeWidthStr::width(g)
                && let Some(n) = std::num::NonZeroU16::new(w16)
            {
                cell.set_diff_option(CellDiffOption::ForcedWidth(n));
            }
            for i in 1..w16 {
                let covered = &mut buf[(at + i, y)];
                covered.reset();
                if w != unicode_width::UnicodeWidthStr::width(g) {
                    // Covered by a cluster ratatui takes to be narrower: a blank drawn
                    // here next must count as a change, or the terminal keeps the rest
                    // of the cluster (a skin tone, a second person) on screen.
                    covered.set_symbol("");
                }
            }
            at += w16;
        }
    }
}

/// The status line: where the room is, who you are, how many are here, the connection.
/// When it does not fit, the room's address gives way first: the connection state is
/// what a person must always see.
pub fn status_line(app: &App) -> Line<'static> {
    // The terminal's own colours, reversed: readable on every theme.
    let bar = Style::new().add_modifier(Modifier::REVERSED);
    let sep = || Span::styled(" │ ", bar);
    let mut place = match app.role() {
        Role::Host { addresses } => format!("hosting {}", addresses.join(" · ")),
        Role::Joiner { address } => format!("room {address}"),
    };
    if let Lock::Encrypted(key) = app.lock() {
        place = format!("{place} · key {key}");
    }
    // The topic first: where the line is short, the address gives way.
    if let Some(topic) = app.topic() {
        place = format!("{topic} — {place}");
    }
    let mut tail = vec![sep(), Span::styled(app.me().to_owned(), bar.bold())];
    if *app.conn() == Conn::InRoom && !app.members().is_empty() {
        tail.push(sep());
        tail.push(Span::styled(format!("{} here", app.members().len()), bar));
    }
    tail.push(sep());
    let (state, style) = match app.conn() {
        Conn::Connecting => ("connecting…".to_owned(), bar),
        // Connected, and how: what a person needs to know of the link in one word.
        Conn::InRoom => match app.lock() {
            Lock::Encrypted(_) => ("encrypted".to_owned(), bar),
            Lock::Plain => ("not encrypted".to_owned(), bar.yellow().bold()),
            Lock::Unknown => ("connected".to_owned(), bar),
        },
        Conn::Plain if *app.lock() == Lock::Plain => (
            "plain text peer · not encrypted".to_owned(),
            bar.yellow().bold(),
        ),
        Conn::Plain => ("plain text peer".to_owned(), bar),
        Conn::Reconnecting {
            retry_in: Some(secs),
            ..
        } => (format!("offline · retry in {secs} s"), bar.yellow().bold()),
        Conn::Reconnecting {
            attempt,
            retry_in: None,
        } => (
            format!("reconnecting… (try {attempt})"),
            bar.yellow().bold(),
        ),
        Conn::Closed(_) => ("disconnected".to_owned(), bar.red().bold()),
    };
    tail.push(Span::styled(state, style));
    tail.push(Span::styled(" ", bar));

    let head = Span::styled(" tchat", bar.bold());
    let width = usize::from(app.size().0);
    let fixed =
        text::width(&head.content) + tail.iter().map(|s| text::width(&s.content)).sum::<usize>();
    let room_for_place = width.saturating_sub(fixed + 3);
    let mut spans = vec![head];
    if room_for_place >= 6 {
        spans.push(sep());
        spans.push(Span::styled(fit(&place, room_for_place), bar));
    }
    spans.extend(tail);
    let used: usize = spans.iter().map(|s| text::width(&s.content)).sum();
    spans.push(Span::styled(" ".repeat(width.saturating_sub(used)), bar));
    Line::from(spans)
}
