//! Draws the picture of tchat's screen used in the README: `assets/screenshot.svg`.
//!
//! ```text
//! cargo run --example screenshot
//! ```
//!
//! Nothing is mocked: a real [`App`] is driven only through [`update`] with the events a
//! room would send (and keys, for the line alice types), drawn by [`tchat::ui::render`]
//! into ratatui's `TestBackend`, and the resulting cells are written out as SVG, one
//! `<tspan>` per run of same-styled cells, each placed at its column. Every time is
//! fixed, so the file only changes when the UI does.

use std::fmt::Write as _;

use anyhow::Result;
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Position;
use ratatui::style::{Color, Modifier};
use tchat::app::{App, Effect, Lock, Msg, Net, Role, update};
use tchat::protocol::ServerMsg;

const WIDTH: u16 = 92;
const HEIGHT: u16 = 26;

/// 2026-11-26 14:02 UTC, in milliseconds since the Unix epoch.
const T0: i64 = 1_795_701_720_000;
const MINUTE: i64 = 60_000;

fn main() -> Result<()> {
    let app = conversation();
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT))?;
    terminal.draw(|f| tchat::ui::render(&app, f))?;
    let cursor = terminal.get_cursor_position()?;
    let backend = terminal.backend();
    let cursor = backend.cursor_visible().then_some(cursor);
    let svg = to_svg(backend.buffer(), cursor);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/screenshot.svg");
    std::fs::write(path, svg)?;
    println!("wrote {path}");
    Ok(())
}

/// Alice hosts; a few people come and talk; she answers and is typing her next line.
fn conversation() -> App {
    let role = Role::Host {
        addresses: vec!["192.168.1.20:7878".into(), "127.0.0.1:7878".into()],
    };
    let mut s = Scene {
        app: App::new(role, "alice".into(), WIDTH, HEIGHT, 0)
            .secured(Lock::Encrypted("3f2a 91bc 0d4e 77a1 5c20".into()))
            .invite("192.168.1.20:7878/3f2a91bc0d4e77a15c20aa00bb11cc22".into()),
        id: 0,
    };
    s.room(
        0,
        ServerMsg::Welcome {
            v: 1,
            room: "r1".into(),
            name: "alice".into(),
            asked: None,
            members: vec!["alice".into()],
            max_line: 8192,
            pace: None,
            ts: None,
            topic: None,
        },
    );
    // The list of who is in (F2), and a topic for the room.
    s.key(0, KeyCode::F(2));
    s.join(0, "bob");
    let topic = ServerMsg::Topic {
        id: s.next_id(),
        ts: at(0),
        by: "alice".into(),
        text: "tchat demo at 15:00".into(),
        cid: None,
    };
    s.room(0, topic);
    s.say(1, "bob", "hi alice! is this the new chat thing?");
    s.join(1, "李雷");
    s.say(2, "李雷", "你好！大家好 👋");
    // Alice answers by typing; her line shows at once and is confirmed by the echo.
    s.type_text(
        2,
        "yes: `tchat --host` here, `tchat --join 192.168.1.20` on your side",
    );
    for effect in s.key(2, KeyCode::Enter) {
        if let Effect::Send { text, cid } = effect {
            let echo = s.msg(2, "alice", &text, Some(cid));
            s.room(2, echo);
        }
    }
    s.join(3, "carol");
    s.say(3, "carol", "🎉🚀✨ it works!");
    s.say(
        4,
        "bob",
        "and nobody needs tchat installed to join: `nc 192.168.1.20 7878` talks plain text, \
         every line you type is a message and the word exit leaves. Long lines wrap under \
         the text, never through a 汉字.",
    );
    s.say(5, "李雷", "太好了，我用 nc 试试");
    s.say(6, "carol", "brb, coffee 🍩");
    let leave = ServerMsg::Leave {
        id: s.next_id(),
        ts: at(6),
        name: "carol".into(),
        reason: None,
    };
    s.room(6, leave);
    s.say(7, "bob", "PgUp scrolls back, End returns to live");
    // Alice looks away (her window loses focus) and comes back: what came meanwhile
    // starts after the read marker.
    update(&mut s.app, Msg::Focus(false), at(7));
    s.say(8, "李雷", "明白了 👍");
    s.join(9, "carol");
    s.say(9, "carol", "back! what did I miss?");
    s.say(10, "李雷", "欢迎回来 carol");
    s.say(10, "bob", "alice is showing it at the 15:00 demo");
    update(&mut s.app, Msg::Focus(true), at(11));
    // Half a line, still being typed.
    s.type_text(11, "come by, carol: bring the 李雷 laptop");
    s.app
}

/// The time `minute` minutes after [`T0`].
fn at(minute: i64) -> i64 {
    T0 + minute * MINUTE
}

/// The app, and the room's event numbering. Every change goes through [`update`].
struct Scene {
    app: App,
    id: u64,
}

impl Scene {
    fn next_id(&mut self) -> u64 {
        self.id += 1;
        self.id
    }

    fn room(&mut self, minute: i64, msg: ServerMsg) {
        update(&mut self.app, Msg::Net(Net::Server(msg)), at(minute));
    }

    fn msg(&mut self, minute: i64, from: &str, text: &str, cid: Option<String>) -> ServerMsg {
        ServerMsg::Msg {
            id: self.next_id(),
            ts: at(minute),
            from: from.into(),
            text: text.into(),
            cid,
            held: None,
        }
    }

    fn say(&mut self, minute: i64, from: &str, text: &str) {
        let msg = self.msg(minute, from, text, None);
        self.room(minute, msg);
    }

    fn join(&mut self, minute: i64, name: &str) {
        let id = self.next_id();
        let name = name.into();
        self.room(
            minute,
            ServerMsg::Join {
                id,
                ts: at(minute),
                name,
            },
        );
    }

    fn key(&mut self, minute: i64, code: KeyCode) -> Vec<Effect> {
        update(&mut self.app, Msg::Key(KeyEvent::from(code)), at(minute))
    }

    fn type_text(&mut self, minute: i64, text: &str) {
        for c in text.chars() {
            self.key(minute, KeyCode::Char(c));
        }
    }
}

/// Cell size in pixels for a 14px monospace font (DejaVu Sans Mono: advance 0.602 em,
/// ascent plus descent 1.164 em, so that box-drawing lines join from row to row).
const FONT_SIZE: f64 = 14.0;
const CELL_W: f64 = 8.43;
const CELL_H: f64 = 16.5;
/// Baseline below a row's top.
const ASCENT: f64 = 13.1;
/// Space around the terminal, and the window's title bar.
const PAD: f64 = 14.0;
const BAR: f64 = 28.0;

const DEFAULT_FG: &str = "#c8ccd4";
const DEFAULT_BG: &str = "#1e2127";

/// How a run of cells looks, with colours resolved and reverse video applied.
#[derive(PartialEq)]
struct Look {
    fg: String,
    bg: String,
    bold: bool,
    italic: bool,
    dim: bool,
    decoration: &'static str,
}

impl Look {
    fn of(fg: Color, bg: Color, m: Modifier, cursor: bool) -> Look {
        let (mut fg, mut bg) = (hex(fg, DEFAULT_FG), hex(bg, DEFAULT_BG));
        if m.contains(Modifier::REVERSED) != cursor {
            std::mem::swap(&mut fg, &mut bg);
        }
        let decoration = match (
            m.contains(Modifier::UNDERLINED),
            m.contains(Modifier::CROSSED_OUT),
        ) {
            (true, true) => "underline line-through",
            (true, false) => "underline",
            (false, true) => "line-through",
            (false, false) => "",
        };
        Look {
            fg,
            bg,
            bold: m.contains(Modifier::BOLD),
            italic: m.contains(Modifier::ITALIC),
            dim: m.contains(Modifier::DIM),
            decoration,
        }
    }

    fn attributes(&self) -> String {
        let mut a = format!(r#" fill="{}""#, self.fg);
        if self.bold {
            a.push_str(r#" font-weight="bold""#);
        }
        if self.italic {
            a.push_str(r#" font-style="italic""#);
        }
        if self.dim {
            a.push_str(r#" fill-opacity="0.6""#);
        }
        if !self.decoration.is_empty() {
            write!(a, r#" text-decoration="{}""#, self.decoration).unwrap();
        }
        a
    }
}

/// A terminal palette (One Dark, with the bright colours a little brighter).
fn hex(color: Color, default: &str) -> String {
    const ANSI: [&str; 16] = [
        "#3f4451", "#e06c75", "#98c379", "#e5c07b", "#4f8fdb", "#c678dd", "#56b6c2", "#c8ccd4",
        "#6b7280", "#ff7b86", "#b5e890", "#ffd68a", "#7cc4ff", "#e29cf5", "#6fd6e2", "#ffffff",
    ];
    let i = match color {
        Color::Reset => return default.to_owned(),
        Color::Rgb(r, g, b) => return format!("#{r:02x}{g:02x}{b:02x}"),
        Color::Indexed(n) if n >= 16 => return xterm_256(n),
        Color::Indexed(n) => n,
        Color::Black => 0,
        Color::Red => 1,
        Color::Green => 2,
        Color::Yellow => 3,
        Color::Blue => 4,
        Color::Magenta => 5,
        Color::Cyan => 6,
        Color::Gray => 7,
        Color::DarkGray => 8,
        Color::LightRed => 9,
        Color::LightGreen => 10,
        Color::LightYellow => 11,
        Color::LightBlue => 12,
        Color::LightMagenta => 13,
        Color::LightCyan => 14,
        Color::White => 15,
    };
    ANSI[usize::from(i)].to_owned()
}

/// The xterm colours 16–255: a 6×6×6 cube, then 24 greys.
fn xterm_256(n: u8) -> String {
    let level = |v: u8| if v == 0 { 0 } else { 55 + 40 * v };
    let (r, g, b) = if n >= 232 {
        let v = 8 + 10 * (n - 232);
        (v, v, v)
    } else {
        let c = n - 16;
        (level(c / 36), level(c / 6 % 6), level(c % 6))
    };
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The buffer as an SVG picture of a terminal window.
fn to_svg(buf: &Buffer, cursor: Option<Position>) -> String {
    let (cols, rows) = (buf.area.width, buf.area.height);
    let width = f64::from(cols) * CELL_W + 2.0 * PAD;
    let height = f64::from(rows) * CELL_H + 2.0 * PAD + BAR;
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}">
<rect width="100%" height="100%" rx="8" fill="{DEFAULT_BG}"/>
<circle cx="20" cy="16" r="6" fill="#ff5f57"/><circle cx="40" cy="16" r="6" fill="#febc2e"/><circle cx="60" cy="16" r="6" fill="#28c840"/>
<g transform="translate({PAD} {})" font-family="'DejaVu Sans Mono', Menlo, Consolas, monospace" font-size="{FONT_SIZE}">
"##,
        PAD + BAR - 8.0
    );
    for y in 0..rows {
        let top = f64::from(y) * CELL_H;
        let mut text = String::new();
        for run in runs(buf, y, cursor) {
            let left = f64::from(run.col) * CELL_W;
            if run.look.bg != DEFAULT_BG {
                writeln!(
                    svg,
                    r#"<rect x="{left:.1}" y="{top:.1}" width="{:.1}" height="{CELL_H}" fill="{}" shape-rendering="crispEdges"/>"#,
                    f64::from(run.cells) * CELL_W,
                    run.look.bg
                )
                .unwrap();
            }
            // Spaces need no glyphs; leading ones are left out, as some viewers drop them.
            let s = run.text.trim_start_matches(' ');
            let left = left + (run.text.len() - s.len()) as f64 * CELL_W;
            let s = s.trim_end();
            if s.is_empty() {
                continue;
            }
            // A wide character is centred on its two cells, whatever width the font
            // gives it.
            let (x, anchor) = if run.wide {
                (left + CELL_W, r#" text-anchor="middle""#)
            } else {
                (left, "")
            };
            let attributes = run.look.attributes();
            let s = escape(s);
            write!(text, r#"<tspan x="{x:.1}"{anchor}{attributes}>{s}</tspan>"#).unwrap();
        }
        if !text.is_empty() {
            let baseline = top + ASCENT;
            writeln!(svg, r#"<text y="{baseline:.1}">{text}</text>"#).unwrap();
        }
    }
    svg.push_str("</g>\n</svg>\n");
    svg
}

/// Cells of one row drawn as one `<tspan>`.
struct Run {
    col: u16,
    cells: u16,
    look: Look,
    text: String,
    /// One wide (CJK, emoji) character, which always has a run of its own.
    wide: bool,
}

/// Row `y` of `buf` as runs of cells that look the same.
fn runs(buf: &Buffer, y: u16, cursor: Option<Position>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut x = 0;
    while x < buf.area.width {
        let cell = &buf[(x, y)];
        // A stray empty symbol (not behind a wide one) still takes its column.
        let symbol = match cell.symbol() {
            "" => " ",
            s => s,
        };
        let at_cursor = cursor == Some(Position::new(x, y));
        let look = Look::of(cell.fg, cell.bg, cell.modifier, at_cursor);
        let w = tchat::text::width(symbol).max(1) as u16;
        let wide = w > 1;
        match runs.last_mut() {
            Some(run) if run.look == look && !run.wide && !wide => {
                run.text.push_str(symbol);
                run.cells += w;
            }
            _ => runs.push(Run {
                col: x,
                cells: w,
                look,
                text: symbol.to_owned(),
                wide,
            }),
        }
        // A wide symbol covers the cells after it; they hold nothing to draw.
        x += w;
    }
    runs
}

/// XML-escape `s`, with its spaces as no-break spaces: SVG viewers collapse runs of
/// ordinary spaces, and a terminal never does.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(' ', "\u{a0}")
}
