//! The view as a person sees it: an `App` driven through `update`, drawn with
//! `tchat::ui::render` into a `TestBackend`, and read back cell by cell.

mod common;

use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Position;
use ratatui::style::{Color, Modifier};
use std::time::Duration;
use unicode_width::UnicodeWidthStr;

use common::{T0, host, joiner, key, type_str};
use tchat::app::{App, Msg, Net, Role, Scroll, Settings, update};
use tchat::protocol::ServerMsg;
use tchat::ui::name_color;

const MINUTE: i64 = 60_000;

// ---------------------------------------------------------------------------------------
// Helpers

fn server(app: &mut App, msg: ServerMsg) {
    update(app, Msg::Net(Net::Server(msg)), T0);
}

fn welcome(app: &mut App, members: &[&str]) {
    server(
        app,
        ServerMsg::Welcome {
            v: 1,
            room: "room".into(),
            name: "alice".into(),
            asked: None,
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            max_line: 8192,
            pace: None,
            ts: None,
            topic: None,
        },
    );
}

fn msg_at(app: &mut App, ts: i64, from: &str, text: &str) {
    server(
        app,
        ServerMsg::Msg {
            id: 0,
            ts,
            from: from.into(),
            text: text.into(),
            cid: None,
            held: None,
        },
    );
}

fn msg(app: &mut App, from: &str, text: &str) {
    msg_at(app, T0, from, text);
}

fn in_room(w: u16, h: u16) -> App {
    let mut app = joiner(w, h);
    welcome(&mut app, &["alice", "bob", "carol"]);
    app
}

fn draw(app: &App) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(app.size().0, app.size().1)).unwrap();
    terminal.draw(|f| tchat::ui::render(app, f)).unwrap();
    terminal
}

/// The rows of the screen as text: one string per row, a wide character once (the cell
/// after it, which it covers, is skipped), trailing spaces trimmed.
fn rows(buf: &Buffer) -> Vec<String> {
    let area = buf.area;
    (area.top()..area.bottom())
        .map(|y| {
            let mut row = String::new();
            let mut x = area.left();
            while x < area.right() {
                let sym = buf[(x, y)].symbol();
                row.push_str(sym);
                x += UnicodeWidthStr::width(sym).max(1) as u16;
            }
            row.trim_end().to_owned()
        })
        .collect()
}

fn screen(app: &App) -> String {
    rows(draw(app).backend().buffer()).join("\n")
}

/// Where `needle` starts on screen: (column, row).
fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    let first = needle.chars().next()?.to_string();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            if buf[(x, y)].symbol() != first {
                continue;
            }
            // Read on from here, skipping covered cells.
            let mut s = String::new();
            let mut cx = x;
            while cx < buf.area.width && s.len() < needle.len() {
                let sym = buf[(cx, y)].symbol();
                s.push_str(sym);
                cx += UnicodeWidthStr::width(sym).max(1) as u16;
            }
            if s.starts_with(needle) {
                return Some((x, y));
            }
        }
    }
    None
}

/// The parts of the status line, between its separators.
fn status_parts(app: &App) -> Vec<String> {
    let screen = rows(draw(app).backend().buffer());
    screen
        .last()
        .unwrap()
        .split('│')
        .map(|p| p.trim().to_owned())
        .collect()
}

fn cursor(terminal: &mut Terminal<TestBackend>) -> Position {
    terminal.get_cursor_position().unwrap()
}

// ---------------------------------------------------------------------------------------
// Status line

#[test]
fn the_status_line_says_where_who_how_many_and_whether_connected() {
    let app = in_room(80, 12);
    assert_eq!(
        status_parts(&app),
        [
            "tchat",
            "room 10.0.0.2:7878",
            "alice",
            "3 here",
            "connected"
        ]
    );
    // It is a bar across the whole width.
    let t = draw(&app);
    let buf = t.backend().buffer();
    for x in 0..80 {
        assert!(
            buf[(x, 11)].modifier.contains(Modifier::REVERSED),
            "column {x} of the status bar is not reversed"
        );
    }
}

#[test]
fn the_host_sees_every_address_people_can_join() {
    let mut app = host(80, 12);
    welcome(&mut app, &["alice"]);
    assert_eq!(
        status_parts(&app),
        [
            "tchat",
            "hosting 192.168.1.5:7878 · [fe80::1]:7878",
            "alice",
            "1 here",
            "connected"
        ]
    );
}

#[test]
fn the_connection_state_stays_visible_when_the_status_line_is_long() {
    let mut app = App::new(
        Role::Host {
            addresses: vec![
                "192.168.1.5:7878".into(),
                "10.8.0.2:7878".into(),
                "[fd00::5]:7878".into(),
            ],
        },
        "alice".into(),
        80,
        12,
        0,
    );
    welcome(&mut app, &["alice"]);
    update(
        &mut app,
        Msg::Net(Net::Closed {
            reason: "the room closed".into(),
        }),
        T0,
    );
    assert!(screen(&app).contains("disconnected"), "{}", screen(&app));
    let mut joiner = in_room(50, 12);
    update(
        &mut joiner,
        Msg::Net(Net::Closed {
            reason: "connection lost".into(),
        }),
        T0,
    );
    assert!(
        screen(&joiner).contains("disconnected"),
        "{}",
        screen(&joiner)
    );
}

#[test]
fn the_status_line_follows_the_connection() {
    let mut app = joiner(80, 12);
    assert_eq!(
        status_parts(&app),
        ["tchat", "room 10.0.0.2:7878", "alice", "connecting…"]
    );
    welcome(&mut app, &["alice", "bob"]);
    assert!(rows(draw(&app).backend().buffer())[11].ends_with("│ 2 here │ connected"));
    server(
        &mut app,
        ServerMsg::Join {
            id: 1,
            ts: T0,
            name: "carol".into(),
        },
    );
    assert!(rows(draw(&app).backend().buffer())[11].contains("│ 3 here │"));
    update(
        &mut app,
        Msg::Net(Net::Closed {
            reason: "the host left".into(),
        }),
        T0,
    );
    let t = draw(&app);
    let status = &rows(t.backend().buffer())[11];
    assert!(status.ends_with("│ disconnected"), "{status}");
    let (x, y) = find(t.backend().buffer(), "disconnected").unwrap();
    assert_eq!(t.backend().buffer()[(x, y)].fg, Color::Red);

    let mut plain = joiner(80, 12);
    update(&mut plain, Msg::Net(Net::Plain), T0);
    assert_eq!(
        status_parts(&plain),
        ["tchat", "room 10.0.0.2:7878", "alice", "plain text peer"]
    );
}

#[test]
fn the_status_line_says_offline_and_when_it_tries_again() {
    let mut app = in_room(80, 12);
    update(
        &mut app,
        Msg::Net(Net::Lost {
            reason: "lost the host: the connection closed without a goodbye".into(),
            retry_in: Duration::from_millis(3500),
        }),
        T0,
    );
    assert_eq!(
        status_parts(&app),
        [
            "tchat",
            "room 10.0.0.2:7878",
            "alice",
            "offline · retry in 4 s"
        ]
    );
    let t = draw(&app);
    let buf = t.backend().buffer();
    assert!(
        rows(buf)[11].ends_with("│ alice │ offline · retry in 4 s"),
        "the count of who is here is not shown while away: {:?}",
        rows(buf)[11]
    );
    let (x, y) = find(buf, "offline").unwrap();
    assert_eq!(y, 11);
    assert_eq!(buf[(x, y)].fg, Color::Yellow);
    assert!(buf[(x, y)].modifier.contains(Modifier::BOLD));
    // The error line in the pane says what happened and that it rejoins by itself.
    let shown = rows(buf).join("\n");
    assert!(
        shown.contains("! lost the host: the connection closed without a goodbye. Rejoining by"),
        "{shown}"
    );

    update(&mut app, Msg::Net(Net::Reconnecting { attempt: 3 }), T0);
    assert_eq!(
        status_parts(&app),
        [
            "tchat",
            "room 10.0.0.2:7878",
            "alice",
            "reconnecting… (try 3)"
        ]
    );
    let t = draw(&app);
    let (x, y) = find(t.backend().buffer(), "reconnecting").unwrap();
    assert_eq!(y, 11);
    assert_eq!(t.backend().buffer()[(x, y)].fg, Color::Yellow);

    // Back in: connected, with the count again.
    welcome(&mut app, &["alice", "bob", "carol"]);
    assert!(
        rows(draw(&app).backend().buffer())[11].ends_with("│ alice │ 3 here │ connected"),
        "{}",
        screen(&app)
    );
}

#[test]
fn the_offline_state_stays_visible_on_a_narrow_terminal() {
    let mut app = in_room(40, 12);
    update(
        &mut app,
        Msg::Net(Net::Lost {
            reason: "connection lost".into(),
            retry_in: Duration::from_secs(30),
        }),
        T0,
    );
    let status = rows(draw(&app).backend().buffer())[11].clone();
    assert!(status.ends_with("offline · retry in 30 s"), "{status:?}");
    assert!(status.contains("alice"), "{status:?}");
    update(&mut app, Msg::Net(Net::Reconnecting { attempt: 12 }), T0);
    let status = rows(draw(&app).backend().buffer())[11].clone();
    assert!(status.ends_with("reconnecting… (try 12)"), "{status:?}");
}

// ---------------------------------------------------------------------------------------
// Messages

#[test]
fn a_message_shows_time_sender_and_text_with_the_newest_at_the_bottom() {
    let mut app = in_room(50, 12);
    msg_at(&mut app, T0, "bob", "hello");
    msg_at(&mut app, T0 + 62 * MINUTE, "carol", "an hour later");
    let screen = rows(draw(&app).backend().buffer());
    // Pane: rows 0..8; input box 8..11; status 11.
    assert_eq!(screen[7], "13:03 carol: an hour later");
    assert_eq!(screen[6], "12:01 bob: hello");
    assert!(screen[5].contains("you joined as alice"));
    assert!(
        screen[8].starts_with("╭"),
        "the input box follows: {:?}",
        screen[8]
    );
    assert!(screen[..4].iter().all(String::is_empty), "{screen:#?}");
}

#[test]
fn the_time_is_local() {
    let mut app = App::new(
        Role::Joiner {
            address: "h:1".into(),
        },
        "alice".into(),
        40,
        8,
        -5 * 3600,
    );
    msg_at(&mut app, T0, "bob", "hi");
    assert!(screen(&app).contains("07:01 bob: hi"));
}

#[test]
fn names_have_stable_colours_and_own_lines_look_different() {
    let mut app = in_room(50, 12);
    msg(&mut app, "bob", "one");
    msg(&mut app, "carol", "two");
    update(&mut app, key(KeyCode::Char('x')), T0);
    update(&mut app, key(KeyCode::Enter), T0);
    msg(&mut app, "bob", "three");

    for _ in 0..3 {
        let t = draw(&app);
        let buf = t.backend().buffer();
        let rows = rows(buf);
        for (name, text) in [("bob", "one"), ("carol", "two"), ("bob", "three")] {
            let line = format!("{name}: {text}");
            let y = rows.iter().position(|r| r.ends_with(&line)).unwrap() as u16;
            let cell = &buf[(6, y)];
            assert_eq!(cell.fg, name_color(name, false), "{name}'s colour");
            assert!(cell.modifier.contains(Modifier::BOLD));
            assert!(!cell.modifier.contains(Modifier::UNDERLINED));
        }
        // Our own line: the name underlined, the text grey until the room confirms it.
        let y = rows.iter().position(|r| r.ends_with("alice: x")).unwrap() as u16;
        assert_eq!(buf[(6, y)].fg, name_color("alice", false));
        assert!(buf[(6, y)].modifier.contains(Modifier::UNDERLINED));
        assert_eq!(buf[(13, y)].symbol(), "x");
        assert_eq!(buf[(13, y)].fg, Color::DarkGray, "pending text is grey");
    }
    assert_eq!(name_color("bob", false), name_color("bob", false));
    assert_eq!(
        name_color("bob", true),
        name_color(&String::from("bob"), true)
    );
    // Red is for errors: no name gets it.
    for n in ["a", "bob", "carol", "dave", "eve", "mallory", "世界", "🎉"] {
        assert_ne!(name_color(n, false), Color::Red, "{n}");
    }
}

#[test]
fn a_line_that_was_not_sent_is_struck_through_in_red() {
    let mut app = in_room(50, 12);
    type_str(&mut app, "lost");
    update(&mut app, key(KeyCode::Enter), T0);
    update(
        &mut app,
        Msg::Net(Net::Closed {
            reason: "connection lost".into(),
        }),
        T0,
    );
    let t = draw(&app);
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "lost").unwrap();
    assert_eq!(buf[(x, y)].fg, Color::Red);
    assert!(buf[(x, y)].modifier.contains(Modifier::CROSSED_OUT));
    assert!(rows(buf)[y as usize + 1].contains("! connection lost. Press Esc to leave."));
}

#[test]
fn notices_and_errors_are_marked() {
    let mut app = in_room(50, 12);
    server(
        &mut app,
        ServerMsg::Join {
            id: 1,
            ts: T0,
            name: "dave".into(),
        },
    );
    server(
        &mut app,
        ServerMsg::Leave {
            id: 2,
            ts: T0,
            name: "bob".into(),
            reason: None,
        },
    );
    let screen = rows(draw(&app).backend().buffer());
    assert_eq!(screen[6], "12:01 * dave joined");
    assert_eq!(screen[7], "12:01 * bob left");
}

/// Each row of the pane (`0..pane_h`) holds only whole characters: a wide character's
/// two cells are on one row, inside the pane.
fn assert_no_cut_characters(buf: &Buffer, pane_h: u16) {
    for y in 0..pane_h {
        let mut x = 0;
        while x < buf.area.width {
            let sym = buf[(x, y)].symbol();
            let w = UnicodeWidthStr::width(sym).max(1) as u16;
            assert!(
                x + w <= buf.area.width,
                "{sym:?} at column {x} of row {y} does not fit in {} columns",
                buf.area.width
            );
            x += w;
        }
    }
}

#[test]
fn a_long_cjk_message_wraps_at_the_pane_width_without_cutting_a_character() {
    // 31 columns, odd, so that a wrong wrap would have to split a character.
    let mut app = in_room(31, 14);
    let text: String = "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏闰余成岁律吕调阳".into();
    msg(&mut app, "bob", &text);
    let t = draw(&app);
    let buf = t.backend().buffer();
    let screen = rows(buf);
    // Pane rows 0..10.
    assert_no_cut_characters(buf, 10);
    let first = screen
        .iter()
        .position(|r| r.starts_with("12:01 bob: "))
        .unwrap();
    assert_eq!(
        first,
        10 - 4,
        "the message takes the four rows above the input box"
    );
    // "12:01 bob: " is 11 columns; 20 columns are left: ten characters a row.
    assert_eq!(screen[first], "12:01 bob: 天地玄黄宇宙洪荒日月");
    let mut joined: String = screen[first]["12:01 bob: ".len()..].to_owned();
    for row in &screen[first + 1..10] {
        // Continuation rows are indented under the text column.
        assert!(row.starts_with(&" ".repeat(11)), "{row:?}");
        assert!(!row[11..].starts_with(' '), "{row:?}");
        assert!(UnicodeWidthStr::width(row.as_str()) <= 31);
        joined.push_str(&row[11..]);
    }
    assert_eq!(joined, text, "nothing lost, nothing repeated");
}

#[test]
fn mixed_width_text_wraps_at_words_and_never_overflows() {
    let mut app = in_room(33, 14);
    msg(
        &mut app,
        "bob",
        "mixed text 混合 with 幅の広い文字 and emoji 🎉🎉 and ❤️ hearts 👨‍👩‍👧 family",
    );
    let t = draw(&app);
    let buf = t.backend().buffer();
    assert_no_cut_characters(buf, 10);
    let screen = rows(buf);
    let first = screen
        .iter()
        .position(|r| r.starts_with("12:01 bob:"))
        .unwrap();
    let body: Vec<&str> = screen[first..10]
        .iter()
        .map(|r| r.trim_start_matches("12:01 bob:").trim())
        .collect();
    assert_eq!(
        body.join(" "),
        "mixed text 混合 with 幅の広い文字 and emoji 🎉🎉 and ❤️ hearts 👨‍👩‍👧 family"
    );
}

#[test]
fn emoji_take_two_columns() {
    let mut app = in_room(40, 10);
    msg(&mut app, "bob", "🎉👍 ok");
    let t = draw(&app);
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "🎉").unwrap();
    assert_eq!(x, 11);
    assert_eq!(buf[(x + 2, y)].symbol(), "👍");
    assert_eq!(buf[(x + 5, y)].symbol(), "o");
}

#[test]
fn a_message_with_escapes_reaches_the_screen_only_as_visible_text() {
    let mut app = in_room(60, 10);
    msg(
        &mut app,
        "ev\u{1b}[31mil",
        "clear\u{1b}[2J\u{202e}drow\u{7}",
    );
    let t = draw(&app);
    let buf = t.backend().buffer();
    for cell in buf.content() {
        assert!(
            !cell.symbol().chars().any(tchat::sanitize::is_forbidden),
            "{:?}",
            cell.symbol()
        );
    }
    assert!(
        rows(buf)[5].ends_with("ev␛[31mil: clear␛[2Jdrow␇"),
        "{:?}",
        rows(buf)[5]
    );
}

// ---------------------------------------------------------------------------------------
// Scrollback

#[test]
fn scrolled_back_the_pane_says_how_many_new_messages_are_below() {
    let mut app = in_room(60, 10);
    for i in 0..20 {
        msg(&mut app, "bob", &format!("m{i}"));
    }
    update(&mut app, key(KeyCode::PageUp), T0);
    let before = screen(&app);
    assert!(
        before.contains("↑ scrolled back · End returns to live"),
        "{before}"
    );
    for i in 20..23 {
        msg(&mut app, "bob", &format!("m{i}"));
    }
    let after = rows(draw(&app).backend().buffer());
    // The marker takes the pane's last row, over the held lines.
    assert!(
        after[5].contains("↓ 3 new messages below · End returns to live"),
        "{after:#?}"
    );
    // What was shown above it stays put.
    assert_eq!(
        before.lines().take(5).collect::<Vec<_>>(),
        after[..5].iter().map(String::as_str).collect::<Vec<_>>()
    );
    msg(&mut app, "carol", "one more");
    assert!(screen(&app).contains("↓ 4 new messages below"));

    update(&mut app, key(KeyCode::End), T0);
    assert_eq!(app.scroll(), Scroll::Live);
    let live = screen(&app);
    assert!(!live.contains("new message"));
    assert!(live.lines().nth(5).unwrap().ends_with("carol: one more"));
}

#[test]
fn the_marker_counts_one_message_in_the_singular() {
    let mut app = in_room(60, 10);
    for i in 0..20 {
        msg(&mut app, "bob", &format!("m{i}"));
    }
    update(&mut app, key(KeyCode::PageUp), T0);
    msg(&mut app, "bob", "new");
    assert!(screen(&app).contains("↓ 1 new message below"));
}

#[test]
fn the_marker_keeps_its_count_on_a_narrow_terminal() {
    let mut app = in_room(22, 10);
    for i in 0..20 {
        msg(&mut app, "bob", &format!("m{i}"));
    }
    update(&mut app, key(KeyCode::PageUp), T0);
    for i in 0..3 {
        msg(&mut app, "bob", &format!("n{i}"));
    }
    let screen = rows(draw(&app).backend().buffer());
    assert!(screen[5].contains("3 new"), "{:?}", screen[5]);
}

// ---------------------------------------------------------------------------------------
// The input box

#[test]
fn the_cursor_stands_after_what_was_typed_also_after_wide_characters() {
    let mut app = in_room(40, 10);
    // Input box rows 6..9; its text starts at column 2 (border and padding), row 7.
    let mut t = draw(&app);
    assert_eq!(cursor(&mut t), Position::new(2, 7));
    type_str(&mut app, "ab");
    assert_eq!(cursor(&mut draw(&app)), Position::new(4, 7));
    type_str(&mut app, "你好");
    assert_eq!(cursor(&mut draw(&app)), Position::new(8, 7));
    type_str(&mut app, "🎉");
    assert_eq!(cursor(&mut draw(&app)), Position::new(10, 7));
    update(&mut app, key(KeyCode::Left), T0);
    assert_eq!(cursor(&mut draw(&app)), Position::new(8, 7));
    update(&mut app, key(KeyCode::Left), T0);
    update(&mut app, key(KeyCode::Left), T0);
    assert_eq!(cursor(&mut draw(&app)), Position::new(4, 7));
    let t = draw(&app);
    let screen = rows(t.backend().buffer());
    assert_eq!(screen[7], "│ ab你好🎉                             │");
}

#[test]
fn the_input_box_grows_to_five_rows_then_scrolls() {
    let mut app = in_room(40, 16);
    let box_top = |app: &App| {
        rows(draw(app).backend().buffer())
            .iter()
            .position(|r| r.starts_with('╭'))
            .unwrap()
    };
    assert_eq!(box_top(&app), 12);
    update(&mut app, Msg::Paste("one\ntwo".into()), T0);
    assert_eq!(app.input_rows(), 2);
    assert_eq!(box_top(&app), 11);
    update(&mut app, Msg::Paste("\nthree\nfour\nfive".into()), T0);
    assert_eq!(app.input_rows(), 5);
    assert_eq!(box_top(&app), 8);
    let mut t = draw(&app);
    assert_eq!(
        cursor(&mut t),
        Position::new(6, 13),
        "after `five`, on the last row"
    );
    update(&mut app, Msg::Paste("\nsix\nseven".into()), T0);
    assert_eq!(app.input_rows(), 5, "no more than five rows");
    assert_eq!(box_top(&app), 8);
    let mut t = draw(&app);
    let screen = rows(t.backend().buffer());
    assert!(
        screen[13].contains("seven"),
        "the cursor's row is shown: {screen:#?}"
    );
    assert_eq!(cursor(&mut t), Position::new(7, 13));
    // A long line wraps inside the box and counts as rows too.
    let mut app = in_room(20, 16);
    type_str(&mut app, &"word ".repeat(8));
    assert!(app.input_rows() >= 3, "{}", app.input_rows());
    let mut t = draw(&app);
    let c = cursor(&mut t);
    assert!(
        c.y < 15 && c.x < 19,
        "the cursor stays inside the box: {c:?}"
    );
}

/// The rows of the input box's text, as drawn.
fn box_rows(screen: &[String]) -> Vec<String> {
    let top = screen.iter().position(|r| r.starts_with('╭')).unwrap();
    let bottom = screen.iter().position(|r| r.starts_with('╰')).unwrap();
    screen[top + 1..bottom].to_vec()
}

#[test]
fn the_start_of_a_message_being_typed_stays_in_view_while_the_box_can_grow() {
    let text = "Hi everyone, thanks for joining today. I wanted to ask whether we could move the \
                meeting on Thursday to a later time, because I have a dentist appointment in the \
                morning and will not be back before eleven.";
    let mut app = in_room(80, 24);
    for c in text.chars() {
        type_str(&mut app, &c.to_string());
        let screen = rows(draw(&app).backend().buffer());
        let shown = box_rows(&screen);
        if app.input_rows() < 5 {
            let start: String = app.input_text().chars().take(11).collect();
            assert!(
                shown[0].starts_with(&format!("│ {start}")),
                "after typing {:?} the box shows {shown:#?}",
                app.input_text()
            );
        }
    }
}

#[test]
fn the_cursor_is_not_drawn_over_the_last_character_of_a_full_row() {
    // 20 columns: the box's text is 16 columns wide, from column 2.
    for text in ["abcdefghijklmnop", "你好你好你好你好"] {
        let mut app = in_room(20, 10);
        type_str(&mut app, text);
        let mut t = draw(&app);
        let c = cursor(&mut t);
        let last = if text.is_ascii() { 17 } else { 16 };
        assert!(
            !(c.y == 7 && c.x >= last),
            "{text:?}: the cursor {c:?} stands on the last character"
        );
    }
}

#[test]
fn tiny_terminals_do_not_panic() {
    for (w, h) in [
        (1, 1),
        (10, 3),
        (0, 10),
        (10, 0),
        (0, 0),
        (1, 5),
        (2, 2),
        (3, 6),
        (4, 8),
        (5, 1),
    ] {
        let mut app = in_room(w, h);
        for i in 0..5 {
            msg(&mut app, "bob", &format!("message {i} 世界🎉"));
        }
        type_str(&mut app, "typing 你好");
        update(&mut app, Msg::Paste("\nmore\nlines".into()), T0);
        let _ = screen(&app);
        update(&mut app, key(KeyCode::PageUp), T0);
        msg(&mut app, "carol", "while scrolled");
        let _ = screen(&app);
        // The terminal and the app disagreeing about the size is no reason to panic.
        let mut t = Terminal::new(TestBackend::new(w.saturating_add(3), h / 2)).unwrap();
        t.draw(|f| tchat::ui::render(&app, f)).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Snapshots

#[test]
fn snapshot_a_conversation() {
    let mut app = in_room(60, 14);
    server(
        &mut app,
        ServerMsg::Join {
            id: 1,
            ts: T0,
            name: "dave".into(),
        },
    );
    msg_at(&mut app, T0 + MINUTE, "bob", "hi everyone 👋");
    msg_at(
        &mut app,
        T0 + MINUTE,
        "carol",
        "你好！今天的会议改到下午三点，请大家准时参加。",
    );
    type_str(&mut app, "sounds good");
    update(&mut app, key(KeyCode::Enter), T0 + 2 * MINUTE);
    server(
        &mut app,
        ServerMsg::Leave {
            id: 2,
            ts: T0 + 3 * MINUTE,
            name: "dave".into(),
            reason: None,
        },
    );
    type_str(&mut app, "see you 🎉");
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn snapshot_the_host_scrolled_back() {
    let mut app = host(60, 12);
    welcome(&mut app, &["alice", "bob"]);
    for i in 0..12 {
        msg_at(&mut app, T0 + i * MINUTE, "bob", &format!("line {i}"));
    }
    update(&mut app, key(KeyCode::PageUp), T0);
    for i in 12..14 {
        msg_at(&mut app, T0 + i * MINUTE, "bob", &format!("line {i}"));
    }
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn snapshot_a_multi_line_draft() {
    let mut app = in_room(40, 14);
    msg(&mut app, "bob", "paste the log?");
    update(
        &mut app,
        Msg::Paste("error: build failed\r\n  --> src/main.rs:3\r\n  |\r\n3 | fn main() {".into()),
        T0,
    );
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn snapshot_cjk_wrapping_in_a_narrow_pane() {
    let mut app = in_room(30, 12);
    msg(
        &mut app,
        "李",
        "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
    );
    msg(
        &mut app,
        "bob",
        "a line of words long enough to wrap at spaces",
    );
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn snapshot_offline_with_a_line_waiting() {
    let mut app = in_room(60, 12);
    msg_at(&mut app, T0 + MINUTE, "bob", "back in five");
    update(
        &mut app,
        Msg::Net(Net::Lost {
            reason: "lost the host: the connection closed without a goodbye".into(),
            retry_in: Duration::from_secs(4),
        }),
        T0 + 2 * MINUTE,
    );
    type_str(&mut app, "are you still there?");
    update(&mut app, key(KeyCode::Enter), T0 + 3 * MINUTE);
    insta::assert_snapshot!(screen(&app));
}

// ---------------------------------------------------------------------------------------
// Commands and attention

fn conversation_with_commands(w: u16, h: u16) -> App {
    let mut app = in_room(w, h);
    msg(&mut app, "bob", "morning all");
    server(
        &mut app,
        ServerMsg::Me {
            id: 2,
            ts: T0,
            from: "carol".into(),
            text: "waves from the train".into(),
            cid: None,
            held: None,
        },
    );
    server(
        &mut app,
        ServerMsg::Private {
            id: 3,
            ts: T0,
            from: "bob".into(),
            to: "alice".into(),
            text: "lunch later?".into(),
            cid: None,
        },
    );
    msg(&mut app, "carol", "alice: did you see the build?");
    server(
        &mut app,
        ServerMsg::Nick {
            id: 5,
            ts: T0,
            old: "carol".into(),
            new: "caro".into(),
            cid: None,
        },
    );
    app
}

#[test]
fn snapshot_actions_private_lines_mentions_and_renames() {
    let app = conversation_with_commands(60, 10);
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn a_mention_is_marked_and_private_lines_are_tagged() {
    let app = conversation_with_commands(60, 10);
    let t = draw(&app);
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "did you see the build").unwrap();
    assert!(
        buf[(x, y)].modifier.contains(Modifier::BOLD),
        "the text is bold"
    );
    assert_eq!(buf[(0, y)].bg, Color::Yellow, "the time is marked");
    let (x, y) = find(buf, "[private]").unwrap();
    assert_eq!(buf[(x, y)].fg, Color::Magenta);
    let (x, y) = find(buf, "* carol waves").unwrap();
    assert!(buf[(x + 2, y)].modifier.contains(Modifier::ITALIC));
    let (_, y2) = find(buf, "morning all").unwrap();
    assert_ne!(buf[(0, y2)].bg, Color::Yellow, "only mentions are marked");
}

#[test]
fn no_color_draws_names_and_marks_in_the_terminals_own_colours() {
    let app = conversation_with_commands(60, 10).with(Settings {
        color: false,
        ..Settings::default()
    });
    let t = draw(&app);
    let buf = t.backend().buffer();
    let pane_rows = 10 - 4;
    for y in 0..pane_rows {
        for x in 0..60 {
            let c = &buf[(x, y)];
            // Greys for times and notices are attributes of the palette's own "dim"
            // colours; no name or tag gets a colour of its own.
            assert!(
                matches!(c.fg, Color::Reset | Color::DarkGray),
                "cell {x},{y} {:?} has colour {:?}",
                c.symbol(),
                c.fg
            );
        }
    }
    let (_, y) = find(buf, "did you see the build").unwrap();
    assert!(
        buf[(0, y)].modifier.contains(Modifier::REVERSED),
        "still marked"
    );
}

#[test]
fn the_marker_counts_mentions_apart() {
    let mut app = in_room(70, 10);
    for i in 0..20 {
        msg(&mut app, "bob", &format!("filler {i}"));
    }
    update(&mut app, tchat::app::Msg::Key(KeyCode::PageUp.into()), T0);
    msg(&mut app, "bob", "alice?");
    msg(&mut app, "bob", "anyone");
    let t = draw(&app);
    let shown = rows(t.backend().buffer()).join("\n");
    assert!(
        shown.contains("2 new messages below (1 mentions you)"),
        "{shown}"
    );
}

/// The rows drawn for a line are kept between frames; when the room's echo changes the
/// line (`//usr` is relayed as `/usr`), the next frame lays out the new text, not the
/// rows kept for the old one.
#[test]
fn an_echo_that_changes_a_drawn_line_is_laid_out_again() {
    let mut app = in_room(40, 8);
    type_str(&mut app, "//usr/local/share/a-long-path is where");
    let fx = update(&mut app, key(KeyCode::Enter), T0);
    let cid = fx
        .iter()
        .find_map(|e| match e {
            tchat::app::Effect::Send { cid, .. } => Some(cid.clone()),
            _ => None,
        })
        .expect("the line is sent");
    let before = screen(&app);
    assert!(before.contains("//usr/local"), "{before}");
    server(
        &mut app,
        ServerMsg::Msg {
            id: 1,
            ts: T0,
            from: "alice".into(),
            text: "/usr/local/share/a-long-path is where".into(),
            cid: Some(cid),
            held: None,
        },
    );
    let after = screen(&app);
    assert!(!after.contains("//usr"), "{after}");
    // The whole new text shows, in rows of its own: nothing cut at the old rows' byte
    // offsets, nothing lost off the end.
    let squeezed: String = after.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        squeezed.contains("alice:/usr/local/share/a-long-pathiswhere"),
        "{after}"
    );
    assert!(after.contains("h is where"), "{after}");
}

#[test]
fn the_cursor_stands_after_skin_tones_zwj_families_and_flags() {
    let mut app = in_room(40, 10);
    let family = "👩\u{200d}👩\u{200d}👧\u{200d}👦";
    type_str(&mut app, "a");
    let mut t = draw(&app);
    let start = cursor(&mut t).x - 1;
    // Each of these is drawn two columns wide, whatever its code points.
    for (typed, drawn) in [("👍🏽", 3), (family, 5), ("🇯🇵", 7), ("e\u{301}", 8)] {
        type_str(&mut app, typed);
        let mut t = draw(&app);
        assert_eq!(
            cursor(&mut t).x - start,
            drawn,
            "after {typed:?}: {:?}",
            app.input_text()
        );
    }
}

#[test]
fn page_up_keeps_one_line_of_the_last_page_in_view() {
    let mut app = in_room(40, 12);
    for i in 1..=60 {
        msg(&mut app, "bob", &format!("line {i}"));
    }
    let before = screen(&app);
    let top = before
        .lines()
        .find(|l| l.contains("line "))
        .map(|l| l.split("line ").nth(1).unwrap().trim().to_owned())
        .unwrap();
    update(&mut app, key(KeyCode::PageUp), T0);
    let after = screen(&app);
    let shown: Vec<&str> = after.lines().filter(|l| l.contains("bob")).collect();
    let last = shown.last().unwrap();
    assert!(
        last.ends_with(&format!("line {top}")),
        "the line that was at the top is still in view, at the bottom:\n{before}\n---\n{after}"
    );
}

#[test]
fn a_terminal_with_256_colours_tells_ten_names_apart_better() {
    let names = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    ];
    let distinct = |many: bool| {
        names
            .iter()
            .map(|n| format!("{:?}", name_color(n, many)))
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    assert!(
        distinct(true) > distinct(false),
        "{} vs {}",
        distinct(true),
        distinct(false)
    );
    assert!(distinct(true) >= 8, "{}", distinct(true));
    // Drawn in the wider set when the app is told the terminal has it.
    let mut app = in_room(40, 8).with(Settings {
        many_colors: true,
        ..Settings::default()
    });
    msg(&mut app, "bob", "hi");
    let t = draw(&app);
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "bob: hi").unwrap();
    assert_eq!(buf[(x, y)].fg, name_color("bob", true));
    assert!(matches!(buf[(x, y)].fg, Color::Indexed(_)));
}

#[test]
fn the_topic_is_on_the_status_line() {
    let mut app = in_room(100, 10);
    update(
        &mut app,
        Msg::Net(Net::Server(ServerMsg::Topic {
            id: 50,
            ts: T0,
            by: "bob".into(),
            text: "release on Friday".into(),
            cid: None,
        })),
        T0,
    );
    let parts = status_parts(&app);
    assert!(
        parts.iter().any(|p| p.starts_with("release on Friday")),
        "{parts:?}"
    );
    assert!(screen(&app).contains("bob set the topic: release on Friday"));
}

#[test]
fn f2_shows_who_is_in_the_room_beside_the_messages() {
    let mut app = in_room(60, 10);
    msg(
        &mut app,
        "bob",
        "a message long enough to reach the right edge of the pane",
    );
    let before = screen(&app);
    assert!(!before.contains("│ carol"), "{before}");
    update(&mut app, key(KeyCode::F(2)), T0);
    let t = draw(&app);
    let buf = t.backend().buffer();
    for name in ["alice", "bob", "carol"] {
        let (x, _) = find(buf, name).unwrap_or_else(|| panic!("{name} not on screen"));
        assert!(x >= 60 - app.nick_list_width(), "{name} at column {x}");
    }
    // The messages make room: they wrap before the list's rule.
    let rows = rows(buf);
    let line = rows
        .iter()
        .find(|r| r.contains("bob: a message"))
        .unwrap_or_else(|| panic!("{rows:#?}"));
    let rule = line.find('│').unwrap_or_else(|| panic!("{line:?}"));
    assert!(line.find("bob: a message").unwrap() < rule, "{line:?}");
    assert!(
        line[rule..].trim_start_matches('│').trim().is_empty(),
        "{line:?}"
    );
    update(&mut app, key(KeyCode::F(2)), T0);
    assert_eq!(screen(&app), before, "F2 again hides it");
    // Too narrow a terminal has no room for it.
    let mut narrow = in_room(30, 10);
    update(&mut narrow, key(KeyCode::F(2)), T0);
    assert_eq!(narrow.nick_list_width(), 0);
}

#[test]
fn a_name_too_long_for_the_list_is_cut_with_an_ellipsis_inside_it() {
    let mut app = in_room(60, 10);
    update(
        &mut app,
        Msg::Net(Net::Server(ServerMsg::Join {
            id: 90,
            ts: T0,
            name: "bartholomew_the_long".into(),
        })),
        T0,
    );
    update(&mut app, key(KeyCode::F(2)), T0);
    let shown = rows(draw(&app).backend().buffer());
    let row = shown
        .iter()
        .find(|r| r.contains("bartho"))
        .unwrap_or_else(|| panic!("{shown:#?}"));
    assert!(row.trim_end().ends_with('…'), "{row:?}");
}

/// What a cell shows, without the hyperlink (OSC 8) around it; and the link's target.
fn shown(sym: &str) -> (&str, Option<&str>) {
    let Some(rest) = sym.strip_prefix("\x1b]8;") else {
        return (sym, None);
    };
    let (params_url, rest) = rest.split_once("\x1b\\").expect("an OSC 8 is ended by ST");
    let (_, url) = params_url.split_once(';').expect("OSC 8 params;url");
    let text = rest
        .strip_suffix("\x1b]8;;\x1b\\")
        .expect("the link closes in the same cell");
    (text, Some(url))
}

#[test]
fn a_long_link_is_one_hyperlink_and_its_rows_start_at_the_left_edge() {
    let url = "https://example.com/a/really/long/path/to/some/thing?q=1";
    let mut app = in_room(40, 10);
    msg(&mut app, "bob", &format!("see {url} ok"));
    let t = draw(&app);
    let buf = t.backend().buffer();
    let mut linked = String::new();
    let mut rows_with_link = Vec::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let (text, target) = shown(buf[(x, y)].symbol());
            if let Some(target) = target {
                assert_eq!(target, url, "every cell of the link goes to the whole link");
                linked.push_str(text);
                if !rows_with_link.contains(&y) {
                    rows_with_link.push(y);
                    // Not after indent spaces: a row of the link starts at the edge.
                    assert_eq!(x, 0, "row {y} of the link starts at column {x}");
                }
            }
        }
    }
    assert_eq!(linked, url, "the link is shown whole, in order");
    assert_eq!(
        rows_with_link.len(),
        2,
        "{} columns of link in 40",
        url.len()
    );
    // The words around it stay under the text.
    let screen: Vec<String> = (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| shown(buf[(x, y)].symbol()).0)
                .collect::<String>()
        })
        .collect();
    let see = screen.iter().position(|r| r.contains("bob: see")).unwrap();
    assert_eq!(screen[see + 3].trim_end(), format!("{}ok", " ".repeat(11)));
}

#[test]
fn only_web_links_are_linked_and_links_can_be_turned_off() {
    let text = "file:///etc/passwd javascript:alert(1) ssh://host https://ok.example/x";
    let mut app = in_room(80, 10);
    msg(&mut app, "bob", text);
    let t = draw(&app);
    let buf = t.backend().buffer();
    let targets: std::collections::BTreeSet<&str> = buf
        .content
        .iter()
        .filter_map(|c| shown(c.symbol()).1)
        .collect();
    assert_eq!(
        targets.into_iter().collect::<Vec<_>>(),
        ["https://ok.example/x"]
    );

    let mut plain = in_room(80, 10).with(Settings {
        links: false,
        ..Settings::default()
    });
    msg(&mut plain, "bob", text);
    let t = draw(&plain);
    assert!(
        !t.backend()
            .buffer()
            .content
            .iter()
            .any(|c| c.symbol().contains('\x1b')),
        "links = false draws no escape at all"
    );
    assert!(screen(&plain).contains("https://ok.example/x"));
}

#[test]
fn a_link_under_the_scrolled_back_marker_is_not_linked_there() {
    let mut app = in_room(60, 8);
    for i in 0..20 {
        msg(
            &mut app,
            "bob",
            &format!("line {i} https://example.com/{i}"),
        );
    }
    update(&mut app, key(KeyCode::PageUp), T0);
    let t = draw(&app);
    let buf = t.backend().buffer();
    let pane_bottom = 8 - 4 - 1; // status, input box (3), then the marker's row
    for x in 0..buf.area.width {
        let sym = buf[(x, pane_bottom)].symbol();
        assert!(!sym.contains('\x1b'), "the marker's row holds {sym:?}");
    }
    assert!(
        buf.content.iter().any(|c| shown(c.symbol()).1.is_some()),
        "rows above the marker keep their links"
    );
}

#[test]
fn links_are_found_whatever_surrounds_them() {
    use tchat::ui::links;
    let found =
        |t: &str| -> Vec<String> { links(t).into_iter().map(|r| t[r].to_owned()).collect() };
    assert_eq!(
        found("see HTTPS://Example.com/x."),
        ["HTTPS://Example.com/x"]
    );
    assert_eq!(
        found("日本語://例え http://例え.jp/パス"),
        ["http://例え.jp/パス"]
    );
    assert!(found("ftp://x.org mailto:a@b.c é://x").is_empty());
}

#[test]
fn a_link_with_wide_characters_is_sent_whole_and_its_target_in_ascii() {
    let url = "http://例え.jp/パス";
    let mut app = in_room(60, 8);
    msg(&mut app, "bob", &format!("見て {url} ok"));
    let t = draw(&app);
    let buf = t.backend().buffer();
    let linked: Vec<(&str, &str)> = buf
        .content
        .iter()
        .filter_map(|c| {
            let (text, target) = shown(c.symbol());
            target.map(|t| (text, t))
        })
        .collect();
    assert_eq!(linked.len(), 1, "one row, one run: {linked:?}");
    let (text, target) = linked[0];
    assert_eq!(text, url, "the run's text, no cell it covers counted twice");
    assert_eq!(target, "http://%E4%BE%8B%E3%81%88.jp/%E3%83%91%E3%82%B9");
}

#[test]
fn the_status_line_says_whether_the_room_is_encrypted_and_by_which_key() {
    use tchat::app::Lock;
    let mut app = joiner(100, 8).secured(Lock::Encrypted("3f2a 91bc 0d4e 77a1 5c20".into()));
    welcome(&mut app, &["alice", "bob"]);
    let status = rows(draw(&app).backend().buffer())[7].clone();
    assert!(
        status.contains("room 10.0.0.2:7878 · key 3f2a 91bc 0d4e 77a1 5c20"),
        "{status}"
    );
    assert!(status.ends_with("│ encrypted"), "{status}");

    let mut app = joiner(100, 8).secured(Lock::Plain);
    welcome(&mut app, &["alice", "bob"]);
    let t = draw(&app);
    let status = rows(t.backend().buffer())[7].clone();
    assert!(status.ends_with("│ not encrypted"), "{status}");
    let (x, y) = find(t.backend().buffer(), "not encrypted").unwrap();
    assert_eq!(
        t.backend().buffer()[(x, y)].fg,
        Color::Yellow,
        "a warning's colour"
    );
    // Narrow: the address gives way; whether it is encrypted stays.
    let mut app = joiner(40, 8).secured(Lock::Plain);
    welcome(&mut app, &["alice", "bob"]);
    let status = rows(draw(&app).backend().buffer())[7].clone();
    assert!(status.ends_with("not encrypted"), "{status}");
}

#[test]
fn a_line_shown_held_is_drawn_grey_and_white_once_the_room_has_it() {
    let mut app = in_room(50, 12);
    let line = |id: u64| ServerMsg::Msg {
        id,
        ts: T0,
        from: "bob".into(),
        text: "while away".into(),
        cid: None,
        held: Some("h1.1".into()),
    };
    let act = |id: u64| ServerMsg::Me {
        id,
        ts: T0,
        from: "bob".into(),
        text: "waits".into(),
        cid: None,
        held: Some("h1.2".into()),
    };
    server(&mut app, line(0));
    server(&mut app, act(0));
    // The first letter of each text, wherever it is drawn.
    let text_fg = |app: &App, text: &str| {
        let t = draw(app);
        let buf = t.backend().buffer();
        let rows = rows(buf);
        let y = rows.iter().position(|r| r.contains(text)).expect("drawn");
        let x = rows[y].find(text).expect("in the row");
        // Columns, not bytes: the rows here are ASCII up to the text.
        buf[(x as u16, y as u16)].fg
    };
    assert_eq!(text_fg(&app, "while away"), Color::DarkGray);
    assert_eq!(text_fg(&app, "waits"), Color::DarkGray);
    server(&mut app, line(7));
    server(&mut app, act(8));
    assert_eq!(screen(&app).matches("while away").count(), 1);
    assert_ne!(text_fg(&app, "while away"), Color::DarkGray);
    assert_ne!(text_fg(&app, "waits"), Color::DarkGray);
}
