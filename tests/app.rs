//! The app state as a person uses it: typing, sending, recalling, pasting, scrolling,
//! and the room's events arriving meanwhile. Driven only through `update`, with a fixed
//! clock and a UTC offset of 0.

mod common;

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers, MouseEvent, MouseEventKind,
};
use proptest::prelude::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::time::Duration;

use common::{T0, host, joiner, key, type_str};
use tchat::app::{
    App, Bell, Conn, Delivery, Effect, Kind, Msg, Net, Scroll, Settings, mentions, update,
};
use tchat::protocol::ServerMsg;
use tchat::sanitize::is_forbidden;

// ---------------------------------------------------------------------------------------
// Helpers

fn key_with(code: KeyCode, modifiers: KeyModifiers) -> Msg {
    Msg::Key(KeyEvent::new(code, modifiers))
}

fn ctrl(c: char) -> Msg {
    key_with(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn alt(c: char) -> Msg {
    key_with(KeyCode::Char(c), KeyModifiers::ALT)
}

fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    update(app, key(code), T0)
}

fn press_ctrl(app: &mut App, c: char) -> Vec<Effect> {
    update(app, ctrl(c), T0)
}

/// Type `s` and press Enter; the effects of the Enter.
fn say(app: &mut App, s: &str) -> Vec<Effect> {
    type_str(app, s);
    press(app, KeyCode::Enter)
}

/// A network event; it asks nothing of the world but (perhaps) the bell.
fn net(app: &mut App, ev: Net) {
    let fx = update(app, Msg::Net(ev), T0);
    assert!(
        fx.iter().all(|e| *e == Effect::Bell),
        "a network event gave {fx:?}"
    );
}

fn server(app: &mut App, msg: ServerMsg) {
    net(app, Net::Server(msg));
}

fn welcome(app: &mut App, name: &str, asked: Option<&str>, members: &[&str]) {
    server(
        app,
        ServerMsg::Welcome {
            v: 1,
            room: "room".into(),
            name: name.into(),
            asked: asked.map(str::to_owned),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            max_line: 8192,
            pace: None,
            ts: None,
            topic: None,
        },
    );
}

fn msg(app: &mut App, id: u64, from: &str, text: &str) {
    server(app, message(id, from, text));
}

/// A message from `from`, as the room sends it (its time follows its id).
fn message(id: u64, from: &str, text: &str) -> ServerMsg {
    ServerMsg::Msg {
        id,
        ts: T0 + id as i64 * 1000,
        from: from.into(),
        text: text.into(),
        cid: None,
        held: None,
    }
}

/// [`message`] as the update that brings it, for tests that look at its effects.
fn msg_event(id: u64, from: &str, text: &str) -> Msg {
    Msg::Net(Net::Server(message(id, from, text)))
}

fn echo(app: &mut App, id: u64, from: &str, text: &str, cid: &str) {
    server(
        app,
        ServerMsg::Msg {
            id,
            ts: T0 + 5_000,
            from: from.into(),
            text: text.into(),
            cid: Some(cid.into()),
            held: None,
        },
    );
}

/// The single `Send` in `fx`.
fn sent(fx: &[Effect]) -> (String, String) {
    match fx {
        [Effect::Send { text, cid }] => (text.clone(), cid.clone()),
        other => panic!("expected one Send, got {other:?}"),
    }
}

fn last_kind(app: &App) -> Kind {
    app.entries().last().expect("an entry").1.kind.clone()
}

fn last_text(app: &App) -> String {
    app.entries().last().expect("an entry").1.text.clone()
}

/// Someone else's message, in `state`.
fn theirs(from: &str, state: Delivery) -> Kind {
    Kind::Message {
        from: from.into(),
        own: false,
        state,
    }
}

fn own(from: &str, state: Delivery) -> Kind {
    Kind::Message {
        from: from.into(),
        own: true,
        state,
    }
}

fn texts(app: &App) -> Vec<String> {
    app.entries().map(|(_, e)| e.text.clone()).collect()
}

/// The text rows the message pane shows (as `ui` lays them out), top to bottom.
fn pane_rows(app: &App) -> Vec<String> {
    let areas = app.areas();
    tchat::ui::visible_lines(
        app,
        areas.messages.width as usize,
        areas.messages.height as usize,
    )
    .iter()
    .map(|l| l.to_string())
    .collect()
}

fn in_room(w: u16, h: u16) -> App {
    let mut app = joiner(w, h);
    welcome(&mut app, "alice", None, &["alice", "bob"]);
    app
}

/// An app at `w`×`h` with `n` one-row messages `m0`..`m{n-1}` from bob.
fn with_messages(w: u16, h: u16, n: u64) -> App {
    let mut app = in_room(w, h);
    for i in 0..n {
        msg(&mut app, i, "bob", &format!("m{i}"));
    }
    app
}

fn wheel(kind: MouseEventKind) -> Msg {
    Msg::Mouse(MouseEvent {
        kind,
        column: 5,
        row: 2,
        modifiers: KeyModifiers::NONE,
    })
}

// ---------------------------------------------------------------------------------------
// Sending

#[test]
fn enter_sends_and_shows_the_line_pending_at_once() {
    let mut app = in_room(80, 24);
    let before = app.entries().len();
    let fx = say(&mut app, "hello room");
    let (text, cid) = sent(&fx);
    assert_eq!(text, "hello room");
    assert!(!cid.is_empty());
    assert_eq!(app.entries().len(), before + 1);
    assert_eq!(last_text(&app), "hello room");
    assert_eq!(last_kind(&app), own("alice", Delivery::Pending));
    assert_eq!(app.input_text(), "", "the box is emptied after sending");
}

#[test]
fn the_rooms_echo_confirms_the_pending_line_without_showing_it_twice() {
    let mut app = in_room(80, 24);
    let (text, cid) = sent(&say(&mut app, "hello"));
    msg(&mut app, 1, "bob", "hi alice");
    let n = app.entries().len();
    echo(&mut app, 2, "alice", &text, &cid);
    assert_eq!(app.entries().len(), n, "the echo is not a new line");
    let hellos: Vec<_> = app
        .entries()
        .filter(|(_, e)| e.text == "hello")
        .map(|(_, e)| e.clone())
        .collect();
    assert_eq!(hellos.len(), 1);
    assert_eq!(hellos[0].kind, own("alice", Delivery::Delivered));
    assert_eq!(hellos[0].ts, T0 + 5_000, "the room's time is taken");
}

#[test]
fn an_echo_after_a_burst_of_other_messages_still_confirms_the_line() {
    let mut app = in_room(80, 24);
    let (text, cid) = sent(&say(&mut app, "mine"));
    for i in 0..1000 {
        msg(&mut app, i, "bob", "busy");
    }
    let n = app.entries().len();
    echo(&mut app, 5000, "alice", &text, &cid);
    assert_eq!(app.entries().len(), n, "shown twice");
    let mine = app.entries().find(|(_, e)| e.text == "mine").unwrap().1;
    assert_eq!(mine.kind, own("alice", Delivery::Delivered));
}

#[test]
fn each_line_gets_its_own_cid_and_echoes_confirm_the_right_one() {
    let mut app = in_room(80, 24);
    let (_, c1) = sent(&say(&mut app, "one"));
    let (_, c2) = sent(&say(&mut app, "two"));
    assert_ne!(c1, c2);
    echo(&mut app, 1, "alice", "two", &c2);
    let state = |app: &App, t: &str| {
        app.entries()
            .find(|(_, e)| e.text == t)
            .map(|(_, e)| e.kind.clone())
            .unwrap()
    };
    assert_eq!(state(&app, "one"), own("alice", Delivery::Pending));
    assert_eq!(state(&app, "two"), own("alice", Delivery::Delivered));
    echo(&mut app, 2, "alice", "one", &c1);
    assert_eq!(state(&app, "one"), own("alice", Delivery::Delivered));
}

#[test]
fn an_echo_with_an_unknown_cid_is_an_ordinary_message() {
    let mut app = in_room(80, 24);
    let n = app.entries().len();
    echo(&mut app, 1, "bob", "from bob's other seat", "ffffffff-1");
    assert_eq!(app.entries().len(), n + 1);
    assert_eq!(last_kind(&app), theirs("bob", Delivery::Delivered));
}

#[test]
fn in_plain_mode_own_lines_are_delivered_at_once() {
    let mut app = joiner(80, 24);
    net(&mut app, Net::Plain);
    assert_eq!(*app.conn(), Conn::Plain);
    let (text, _) = sent(&say(&mut app, "hello socket"));
    assert_eq!(text, "hello socket");
    assert_eq!(last_kind(&app), own("alice", Delivery::Delivered));
    // What the far side says is shown, labelled with where it came from.
    net(
        &mut app,
        Net::Text {
            ts: T0,
            text: "hi from nc".into(),
        },
    );
    assert_eq!(
        last_kind(&app),
        Kind::Text {
            from: "10.0.0.2:7878".into()
        }
    );
    assert_eq!(last_text(&app), "hi from nc");
}

#[test]
fn lines_typed_before_the_far_side_turned_out_plain_become_delivered() {
    let mut app = joiner(80, 24);
    sent(&say(&mut app, "early"));
    assert_eq!(last_kind(&app), own("alice", Delivery::Pending));
    net(&mut app, Net::Plain);
    let early = app.entries().find(|(_, e)| e.text == "early").unwrap().1;
    assert_eq!(early.kind, own("alice", Delivery::Delivered));
}

#[test]
fn after_the_connection_closes_pending_lines_are_not_sent_and_new_lines_are_refused() {
    let mut app = in_room(80, 24);
    let (_, c1) = sent(&say(&mut app, "confirmed"));
    echo(&mut app, 1, "alice", "confirmed", &c1);
    sent(&say(&mut app, "in flight"));
    net(
        &mut app,
        Net::Closed {
            reason: "connection lost: reset".into(),
        },
    );
    assert_eq!(*app.conn(), Conn::Closed("connection lost: reset".into()));
    let kind_of = |app: &App, t: &str| {
        app.entries()
            .find(|(_, e)| e.text == t)
            .unwrap()
            .1
            .kind
            .clone()
    };
    assert_eq!(kind_of(&app, "in flight"), own("alice", Delivery::NotSent));
    assert_eq!(
        kind_of(&app, "confirmed"),
        own("alice", Delivery::Delivered)
    );
    assert_eq!(last_kind(&app), Kind::Error);
    assert!(last_text(&app).contains("connection lost"));

    let n = app.entries().len();
    let fx = say(&mut app, "anyone there?");
    assert!(
        fx.is_empty(),
        "nothing is sent on a closed connection: {fx:?}"
    );
    assert_eq!(app.entries().len(), n + 1);
    assert_eq!(last_kind(&app), Kind::Error);
    assert!(last_text(&app).contains("not sent"), "{}", last_text(&app));
    // The line is not lost: Up brings it back.
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "anyone there?");
}

#[test]
fn a_second_close_adds_no_second_error() {
    let mut app = in_room(80, 24);
    server(
        &mut app,
        ServerMsg::Closing {
            ts: T0,
            reason: "the host left".into(),
        },
    );
    assert_eq!(*app.conn(), Conn::Closed("the host left".into()));
    let n = app.entries().len();
    net(
        &mut app,
        Net::Closed {
            reason: "the host left".into(),
        },
    );
    assert_eq!(app.entries().len(), n);
    assert!(matches!(*app.conn(), Conn::Closed(_)));
}

#[test]
fn a_line_over_the_rooms_limit_is_kept_in_the_box_and_not_sent() {
    let mut app = joiner(80, 24);
    server(
        &mut app,
        ServerMsg::Welcome {
            v: 1,
            room: "room".into(),
            name: "alice".into(),
            asked: None,
            members: vec!["alice".into()],
            max_line: 10,
            pace: None,
            ts: None,
            topic: None,
        },
    );
    let fx = say(&mut app, "this is far too long");
    assert!(fx.is_empty());
    assert_eq!(last_kind(&app), Kind::Error);
    assert_eq!(app.input_text(), "this is far too long");
}

// ---------------------------------------------------------------------------------------
// Leaving, blank lines

#[test]
fn esc_ctrl_c_and_exit_quit() {
    let mut app = in_room(80, 24);
    assert_eq!(press(&mut app, KeyCode::Esc), vec![Effect::Quit]);
    assert_eq!(press_ctrl(&mut app, 'c'), vec![Effect::Quit]);
    for line in ["exit", "  exit  ", "\texit"] {
        let mut app = in_room(80, 24);
        let n = app.entries().len();
        if line.starts_with('\t') {
            update(&mut app, Msg::Paste(line.into()), T0);
        } else {
            type_str(&mut app, line);
        }
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            vec![Effect::Quit],
            "{line:?}"
        );
        assert_eq!(app.entries().len(), n, "`exit` is not shown as a message");
    }
}

#[test]
fn typing_c_without_ctrl_is_just_a_letter() {
    let mut app = in_room(80, 24);
    assert!(press(&mut app, KeyCode::Char('c')).is_empty());
    assert_eq!(app.input_text(), "c");
}

#[test]
fn exit_as_part_of_a_sentence_is_sent() {
    let mut app = in_room(80, 24);
    let (text, _) = sent(&say(&mut app, "exit is the word"));
    assert_eq!(text, "exit is the word");
}

#[test]
fn blank_lines_send_nothing() {
    let mut app = in_room(80, 24);
    let n = app.entries().len();
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert!(say(&mut app, "    ").is_empty());
    update(&mut app, Msg::Paste("\n\n  \n".into()), T0);
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.entries().len(), n);
}

#[test]
fn trailing_spaces_are_trimmed_leading_kept() {
    let mut app = in_room(80, 24);
    let (text, _) = sent(&say(&mut app, "  indented   "));
    assert_eq!(text, "  indented");
}

#[test]
fn key_releases_do_nothing() {
    let mut app = in_room(80, 24);
    let release = |code| {
        Msg::Key(KeyEvent {
            code,
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Release,
            state: KeyEventState::NONE,
        })
    };
    assert!(update(&mut app, release(KeyCode::Char('x')), T0).is_empty());
    assert!(update(&mut app, release(KeyCode::Esc), T0).is_empty());
    assert_eq!(app.input_text(), "");
}

#[test]
fn shifted_letters_are_typed() {
    let mut app = in_room(80, 24);
    update(
        &mut app,
        key_with(KeyCode::Char('H'), KeyModifiers::SHIFT),
        T0,
    );
    type_str(&mut app, "i");
    assert_eq!(app.input_text(), "Hi");
}

#[test]
fn ctrl_l_asks_for_a_redraw() {
    let mut app = in_room(80, 24);
    assert_eq!(press_ctrl(&mut app, 'l'), vec![Effect::Redraw]);
}

// ---------------------------------------------------------------------------------------
// Line editing

#[test]
fn line_editing_with_cjk_and_emoji() {
    let mut app = in_room(80, 24);
    type_str(&mut app, "你好🎉ab");
    assert_eq!(app.input_text(), "你好🎉ab");
    assert_eq!(app.composer().cursor(), (0, 5));

    press(&mut app, KeyCode::Left);
    press(&mut app, KeyCode::Left);
    assert_eq!(app.composer().cursor(), (0, 3));
    type_str(&mut app, "世");
    assert_eq!(app.input_text(), "你好🎉世ab");

    press(&mut app, KeyCode::Backspace);
    assert_eq!(app.input_text(), "你好🎉ab");
    press(&mut app, KeyCode::Backspace);
    assert_eq!(
        app.input_text(),
        "你好ab",
        "Backspace removes the whole emoji"
    );

    press(&mut app, KeyCode::Delete);
    assert_eq!(app.input_text(), "你好b");

    press(&mut app, KeyCode::Home);
    assert_eq!(app.composer().cursor(), (0, 0));
    press(&mut app, KeyCode::Delete);
    assert_eq!(app.input_text(), "好b");
    press(&mut app, KeyCode::Right);
    type_str(&mut app, "😀");
    assert_eq!(app.input_text(), "好😀b");

    press(&mut app, KeyCode::End);
    assert_eq!(app.composer().cursor(), (0, 3));
    type_str(&mut app, "!");
    assert_eq!(app.input_text(), "好😀b!");

    // Right at the end and Left at the start stay put.
    press(&mut app, KeyCode::Right);
    assert_eq!(app.composer().cursor(), (0, 4));
    press(&mut app, KeyCode::Home);
    press(&mut app, KeyCode::Left);
    assert_eq!(app.composer().cursor(), (0, 0));
    press(&mut app, KeyCode::Backspace);
    assert_eq!(
        app.input_text(),
        "好😀b!",
        "Backspace at the start removes nothing"
    );
}

#[test]
fn emacs_keys() {
    let mut app = in_room(80, 24);
    type_str(&mut app, "日本語 text 🎉🎉");
    press_ctrl(&mut app, 'a');
    assert_eq!(app.composer().cursor(), (0, 0));
    press_ctrl(&mut app, 'e');
    assert_eq!(app.composer().cursor(), (0, 11));

    // Ctrl-W deletes the word before the cursor.
    press_ctrl(&mut app, 'w');
    assert_eq!(app.input_text(), "日本語 text ");
    press_ctrl(&mut app, 'w');
    assert_eq!(app.input_text(), "日本語 ");

    type_str(&mut app, "と世界");
    assert_eq!(app.input_text(), "日本語 と世界");
    // Ctrl-U deletes to the start, Ctrl-K to the end.
    press(&mut app, KeyCode::Left);
    press(&mut app, KeyCode::Left);
    assert_eq!(app.composer().cursor(), (0, 5));
    press_ctrl(&mut app, 'k');
    assert_eq!(app.input_text(), "日本語 と");
    press(&mut app, KeyCode::Left);
    press_ctrl(&mut app, 'u');
    assert_eq!(app.input_text(), "と");
    assert_eq!(app.composer().cursor(), (0, 0));

    // Ctrl-Y puts back what was cut.
    press_ctrl(&mut app, 'e');
    press_ctrl(&mut app, 'y');
    assert_eq!(app.input_text(), "と日本語 ");

    // Ctrl-B / Ctrl-F move by one character, Ctrl-D deletes forward, Ctrl-H back.
    press_ctrl(&mut app, 'a');
    press_ctrl(&mut app, 'f');
    assert_eq!(app.composer().cursor(), (0, 1));
    press_ctrl(&mut app, 'd');
    assert_eq!(app.input_text(), "と本語 ");
    press_ctrl(&mut app, 'h');
    assert_eq!(app.input_text(), "本語 ");
    press_ctrl(&mut app, 'f');
    press_ctrl(&mut app, 'b');
    assert_eq!(app.composer().cursor(), (0, 0));
}

#[test]
fn ctrl_letters_are_not_typed() {
    let mut app = in_room(80, 24);
    for c in ['x', 'z', 'q', 'g', 'o'] {
        press_ctrl(&mut app, c);
    }
    update(
        &mut app,
        key_with(KeyCode::Char('x'), KeyModifiers::ALT),
        T0,
    );
    assert_eq!(app.input_text(), "");
}

#[test]
fn word_movement_and_word_deletion() {
    let mut app = in_room(80, 24);
    type_str(&mut app, "one two three");
    update(&mut app, key_with(KeyCode::Left, KeyModifiers::CONTROL), T0);
    assert_eq!(app.composer().cursor(), (0, 8));
    update(&mut app, key_with(KeyCode::Left, KeyModifiers::ALT), T0);
    assert_eq!(app.composer().cursor(), (0, 4));
    update(
        &mut app,
        key_with(KeyCode::Right, KeyModifiers::CONTROL),
        T0,
    );
    assert_eq!(app.composer().cursor(), (0, 8));
    press_ctrl(&mut app, 'e');
    update(
        &mut app,
        key_with(KeyCode::Backspace, KeyModifiers::ALT),
        T0,
    );
    assert_eq!(app.input_text(), "one two ");
}

#[test]
fn alt_enter_makes_a_second_line_and_enter_sends_both() {
    let mut app = in_room(80, 24);
    type_str(&mut app, "first");
    update(&mut app, key_with(KeyCode::Enter, KeyModifiers::ALT), T0);
    type_str(&mut app, "second");
    assert_eq!(app.input_text(), "first\nsecond");
    assert_eq!(app.composer().cursor(), (1, 6));
    let (text, _) = sent(&press(&mut app, KeyCode::Enter));
    assert_eq!(text, "first\nsecond");
    assert_eq!(last_text(&app), "first\nsecond");
}

// ---------------------------------------------------------------------------------------
// History

#[test]
fn up_and_down_recall_sent_lines_and_restore_the_draft() {
    let mut app = in_room(80, 24);
    for line in ["one", "two", "two", "three"] {
        sent(&say(&mut app, line));
    }
    type_str(&mut app, "draft 草稿");

    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "three");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "two");
    press(&mut app, KeyCode::Up);
    assert_eq!(
        app.input_text(),
        "one",
        "the repeated `two` is remembered once"
    );
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "one", "Up at the oldest stays there");

    press(&mut app, KeyCode::Down);
    assert_eq!(app.input_text(), "two");
    press(&mut app, KeyCode::Down);
    assert_eq!(app.input_text(), "three");
    press(&mut app, KeyCode::Down);
    assert_eq!(app.input_text(), "draft 草稿", "the draft comes back");
    assert_eq!(app.composer().cursor(), (0, 8));
    press(&mut app, KeyCode::Down);
    assert_eq!(
        app.input_text(),
        "draft 草稿",
        "Down past the draft changes nothing"
    );
}

#[test]
fn a_recalled_line_can_be_edited_and_sent() {
    let mut app = in_room(80, 24);
    sent(&say(&mut app, "helo"));
    press(&mut app, KeyCode::Up);
    assert_eq!(
        app.composer().cursor(),
        (0, 4),
        "the cursor stands at the end"
    );
    press(&mut app, KeyCode::Left);
    type_str(&mut app, "l");
    let (text, _) = sent(&press(&mut app, KeyCode::Enter));
    assert_eq!(text, "hello");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "hello");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "helo");
}

#[test]
fn up_with_no_history_changes_nothing() {
    let mut app = in_room(80, 24);
    type_str(&mut app, "typing");
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Down);
    assert_eq!(app.input_text(), "typing");
}

#[test]
fn up_and_down_move_inside_a_multi_line_box_before_recalling() {
    let mut app = in_room(80, 24);
    sent(&say(&mut app, "older"));
    update(&mut app, Msg::Paste("line one\nline two".into()), T0);
    assert_eq!(app.composer().cursor(), (1, 8));
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "line one\nline two");
    assert_eq!(app.composer().cursor().0, 0);
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "older");
    press(&mut app, KeyCode::Down);
    assert_eq!(app.input_text(), "line one\nline two");
}

// ---------------------------------------------------------------------------------------
// Paste

#[test]
fn a_paste_keeps_its_line_breaks_and_is_not_sent_until_enter() {
    let mut app = in_room(80, 24);
    let n = app.entries().len();
    let fx = update(&mut app, Msg::Paste("one\r\ntwo\rthree\nfour".into()), T0);
    assert!(fx.is_empty());
    assert_eq!(app.input_text(), "one\ntwo\nthree\nfour");
    assert_eq!(app.entries().len(), n, "a paste is not sent");
    let (text, _) = sent(&press(&mut app, KeyCode::Enter));
    assert_eq!(text, "one\ntwo\nthree\nfour");
}

#[test]
fn a_paste_goes_where_the_cursor_is() {
    let mut app = in_room(80, 24);
    type_str(&mut app, "ab");
    press(&mut app, KeyCode::Left);
    update(&mut app, Msg::Paste("世界".into()), T0);
    assert_eq!(app.input_text(), "a世界b");
    assert_eq!(app.composer().cursor(), (0, 3));
}

#[test]
fn control_characters_in_a_paste_are_dropped() {
    let mut app = in_room(80, 24);
    update(
        &mut app,
        Msg::Paste("red\u{1b}[31m\u{7}x\u{0}\u{7f}\u{9b}y\u{202e}z\ttab".into()),
        T0,
    );
    assert_eq!(app.input_text(), "red[31mxyz tab");
    assert!(
        !app.input_text()
            .chars()
            .any(|c| c != '\n' && is_forbidden(c))
    );
}

// ---------------------------------------------------------------------------------------
// Typing while messages arrive

#[test]
fn arriving_messages_never_disturb_what_is_being_typed() {
    let mut app = in_room(40, 10);
    type_str(&mut app, "half a thought 思考");
    update(&mut app, Msg::Paste("\nsecond line".into()), T0);
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Left);
    let text = app.input_text();
    let cursor = app.composer().cursor();
    for i in 0..500 {
        match i % 5 {
            0 => msg(
                &mut app,
                i,
                "bob",
                "a message that is long enough to wrap in a narrow pane",
            ),
            1 => server(
                &mut app,
                ServerMsg::Join {
                    id: i,
                    ts: T0,
                    name: format!("p{i}"),
                },
            ),
            2 => server(
                &mut app,
                ServerMsg::Leave {
                    id: i,
                    ts: T0,
                    name: format!("p{}", i - 1),
                    reason: None,
                },
            ),
            3 => server(
                &mut app,
                ServerMsg::Notice {
                    ts: T0,
                    text: "notice".into(),
                    cid: None,
                },
            ),
            _ => net(
                &mut app,
                Net::Text {
                    ts: T0,
                    text: "plain".into(),
                },
            ),
        }
        assert_eq!(app.input_text(), text);
        assert_eq!(app.composer().cursor(), cursor);
    }
    net(
        &mut app,
        Net::Closed {
            reason: "gone".into(),
        },
    );
    assert_eq!(app.input_text(), text);
    assert_eq!(app.composer().cursor(), cursor);
}

// ---------------------------------------------------------------------------------------
// Scrollback

#[test]
fn page_up_holds_the_view_and_counts_what_arrives_below() {
    // 40x10: status 1 row, input box 3, message pane 6; a page is 4 rows (the
    // scrolled-back marker covers the pane's last row, and one row is kept).
    let mut app = with_messages(40, 10, 30);
    assert_eq!(app.scroll(), Scroll::Live);
    let live = pane_rows(&app);
    assert!(live[5].ends_with("bob: m29"), "{live:?}");

    press(&mut app, KeyCode::PageUp);
    let Scroll::Back { bottom, skip } = app.scroll() else {
        panic!("PageUp did not scroll back: {:?}", app.scroll())
    };
    assert_eq!(skip, 0);
    let held = pane_rows(&app);
    assert_eq!(
        held[4], live[0],
        "a page keeps one row of context, above the marker's row"
    );
    assert!(held[4].ends_with("bob: m24"), "{held:?}");

    for i in 30..37 {
        msg(&mut app, i, "bob", &format!("m{i}"));
    }
    assert_eq!(app.scrollback().unseen(), 7);
    assert_eq!(app.scroll(), Scroll::Back { bottom, skip });
    assert_eq!(pane_rows(&app), held, "arrivals do not move the view");

    // Notices (joins) are not counted as new messages, but do not move the view either.
    server(
        &mut app,
        ServerMsg::Join {
            id: 99,
            ts: T0,
            name: "carol".into(),
        },
    );
    assert_eq!(app.scrollback().unseen(), 7);
    assert_eq!(pane_rows(&app), held);

    // PageDown all the way returns to live.
    for _ in 0..20 {
        press(&mut app, KeyCode::PageDown);
        if app.scroll() == Scroll::Live {
            break;
        }
    }
    assert_eq!(app.scroll(), Scroll::Live);
    assert_eq!(app.scrollback().unseen(), 0);
}

#[test]
fn page_down_from_one_page_up_is_live_again() {
    let mut app = with_messages(40, 10, 30);
    press(&mut app, KeyCode::PageUp);
    msg(&mut app, 30, "bob", "new");
    assert_eq!(app.scrollback().unseen(), 1);
    press(&mut app, KeyCode::PageDown);
    // Four rows down from m24 is m28; m29 and m30 are below.
    assert!(matches!(app.scroll(), Scroll::Back { .. }));
    press(&mut app, KeyCode::PageDown);
    assert_eq!(app.scroll(), Scroll::Live);
    assert_eq!(app.scrollback().unseen(), 0);
    assert!(pane_rows(&app)[5].ends_with("bob: new"));
}

#[test]
fn end_and_ctrl_end_return_to_live() {
    for end in [
        key(KeyCode::End),
        key_with(KeyCode::End, KeyModifiers::CONTROL),
    ] {
        let mut app = with_messages(40, 10, 30);
        type_str(&mut app, "draft");
        press(&mut app, KeyCode::Home);
        press(&mut app, KeyCode::PageUp);
        press(&mut app, KeyCode::PageUp);
        msg(&mut app, 30, "bob", "new");
        assert_eq!(app.scrollback().unseen(), 1);
        update(&mut app, end, T0);
        assert_eq!(app.scroll(), Scroll::Live);
        assert_eq!(app.scrollback().unseen(), 0);
        assert_eq!(app.input_text(), "draft");
    }
}

#[test]
fn end_when_live_moves_the_input_cursor() {
    let mut app = with_messages(40, 10, 30);
    type_str(&mut app, "draft");
    press(&mut app, KeyCode::Home);
    press(&mut app, KeyCode::End);
    assert_eq!(app.composer().cursor(), (0, 5));
    assert_eq!(app.scroll(), Scroll::Live);
}

#[test]
fn sending_returns_to_live() {
    let mut app = with_messages(40, 10, 30);
    press(&mut app, KeyCode::PageUp);
    msg(&mut app, 30, "bob", "new");
    sent(&say(&mut app, "back"));
    assert_eq!(app.scroll(), Scroll::Live);
    assert_eq!(app.scrollback().unseen(), 0);
}

#[test]
fn page_up_at_the_top_stays_at_the_top() {
    let mut app = with_messages(40, 10, 30);
    let mut last = app.scroll();
    for _ in 0..20 {
        press(&mut app, KeyCode::PageUp);
        last = app.scroll();
    }
    let rows = pane_rows(&app);
    // The welcome notice is the oldest entry; it shows at the top, the pane is full.
    assert!(rows[0].contains("you joined as alice"), "{rows:?}");
    assert!(rows.iter().all(|r| !r.is_empty()), "{rows:?}");
    press(&mut app, KeyCode::PageUp);
    assert_eq!(app.scroll(), last, "PageUp at the top changes nothing");
    // Ctrl-Home goes to the same place.
    let mut other = with_messages(40, 10, 30);
    update(
        &mut other,
        key_with(KeyCode::Home, KeyModifiers::CONTROL),
        T0,
    );
    assert_eq!(other.scroll(), last);
}

/// Where `view` sits in `all` (every row of the scrollback, top to bottom).
fn offset_in(all: &[String], view: &[String]) -> usize {
    let hits: Vec<usize> = all
        .windows(view.len())
        .enumerate()
        .filter(|(_, w)| *w == view)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "view {view:?} found at {hits:?}");
    hits[0]
}

#[test]
fn paging_up_and_down_shows_every_row_once_even_with_wrapped_messages() {
    let mut app = in_room(30, 10); // pane: 30x6, a page is 5 rows
    let words = [
        "short",
        "a somewhat longer line that wraps",
        "四五六七八九十一二三四五六七八九十一二三",
        "x",
    ];
    for i in 0..25u64 {
        let text = format!("{i} {}", words[i as usize % words.len()]);
        msg(&mut app, i, "bob", &text);
    }
    // Every row there is, as a very tall pane would show them.
    let mut all = tchat::ui::visible_lines(&app, 30, 10_000)
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>();
    all.retain(|r| !r.is_empty());
    assert!(all.len() > 40);

    // Page up to the top: each page moves exactly four rows, until the oldest row is at
    // the top of the pane.
    let mut at = offset_in(&all, &pane_rows(&app));
    assert_eq!(at, all.len() - 6, "live shows the newest rows");
    let mut ups = 0;
    loop {
        let before = app.scroll();
        press(&mut app, KeyCode::PageUp);
        if app.scroll() == before {
            break;
        }
        ups += 1;
        let now = offset_in(&all, &pane_rows(&app));
        if now == 0 {
            assert!(at - now <= 4, "{at} -> {now}");
        } else {
            assert_eq!(at - now, 4, "PageUp from row {at} went to {now}");
        }
        at = now;
        assert!(ups < 50);
    }
    assert_eq!(at, 0, "PageUp stops with the oldest row at the top");

    // And back down: five rows at a time, to live.
    while app.scroll() != Scroll::Live {
        press(&mut app, KeyCode::PageDown);
        let now = offset_in(&all, &pane_rows(&app));
        if app.scroll() == Scroll::Live {
            assert!(now - at <= 4, "{at} -> {now}");
        } else {
            assert_eq!(now - at, 4, "PageDown from row {at} went to {now}");
        }
        at = now;
    }
    assert_eq!(at, all.len() - 6);
}

#[test]
fn with_fewer_messages_than_fit_page_up_stays_live() {
    let mut app = with_messages(40, 10, 3);
    press(&mut app, KeyCode::PageUp);
    assert_eq!(app.scroll(), Scroll::Live);
    update(&mut app, wheel(MouseEventKind::ScrollUp), T0);
    assert_eq!(app.scroll(), Scroll::Live);
    msg(&mut app, 3, "bob", "new");
    assert_eq!(app.scrollback().unseen(), 0);
    // Exactly a paneful: still nothing to scroll to.
    let mut app = joiner(40, 10);
    for i in 0..6 {
        msg(&mut app, i, "bob", &format!("m{i}"));
    }
    press(&mut app, KeyCode::PageUp);
    assert_eq!(app.scroll(), Scroll::Live);
    // Nothing at all: no panic, live.
    let mut empty = joiner(40, 10);
    press(&mut empty, KeyCode::PageUp);
    press(&mut empty, KeyCode::PageDown);
    update(
        &mut empty,
        key_with(KeyCode::Home, KeyModifiers::CONTROL),
        T0,
    );
    assert_eq!(empty.scroll(), Scroll::Live);
}

#[test]
fn the_mouse_wheel_scrolls_three_rows() {
    let mut app = with_messages(40, 10, 30);
    update(&mut app, wheel(MouseEventKind::ScrollUp), T0);
    assert!(matches!(app.scroll(), Scroll::Back { .. }));
    assert!(
        pane_rows(&app)[5].ends_with("bob: m26"),
        "{:?}",
        pane_rows(&app)
    );
    update(&mut app, wheel(MouseEventKind::ScrollUp), T0);
    assert!(pane_rows(&app)[5].ends_with("bob: m23"));
    msg(&mut app, 30, "bob", "new");
    assert_eq!(app.scrollback().unseen(), 1);
    update(&mut app, wheel(MouseEventKind::ScrollDown), T0);
    assert!(pane_rows(&app)[5].ends_with("bob: m26"));
    update(&mut app, wheel(MouseEventKind::ScrollDown), T0);
    update(&mut app, wheel(MouseEventKind::ScrollDown), T0);
    assert_eq!(app.scroll(), Scroll::Live);
    assert_eq!(app.scrollback().unseen(), 0);
    // Clicks and moves change nothing.
    for kind in [
        MouseEventKind::Moved,
        MouseEventKind::Down(crossterm::event::MouseButton::Left),
        MouseEventKind::ScrollLeft,
    ] {
        update(&mut app, wheel(kind), T0);
        assert_eq!(app.scroll(), Scroll::Live);
    }
}

#[test]
fn a_message_taller_than_the_pane_can_be_read_row_by_row() {
    let mut app = in_room(20, 8); // pane: 8 - 1 - 3 = 4 rows, 20 columns
    let long: String = (0..30).map(|i| format!("w{i} ")).collect();
    msg(&mut app, 1, "bob", long.trim_end());
    msg(&mut app, 2, "bob", "after");
    // Scroll to the very top: the first row of the long message is shown.
    for _ in 0..30 {
        press(&mut app, KeyCode::PageUp);
    }
    let rows = pane_rows(&app);
    assert!(rows[0].contains("you joined"), "{rows:?}");
    // Wheel down row by row: the views go through every row of the long message.
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen.extend(pane_rows(&app));
        update(&mut app, wheel(MouseEventKind::ScrollDown), T0);
        if app.scroll() == Scroll::Live {
            break;
        }
    }
    assert_eq!(app.scroll(), Scroll::Live);
    seen.extend(pane_rows(&app));
    let all = seen.join(" ");
    for i in 0..30 {
        assert!(all.contains(&format!("w{i}")), "w{i} never shown");
    }
}

#[test]
fn resize_changes_the_layout_and_the_page_follows() {
    let mut app = with_messages(40, 10, 60);
    update(&mut app, Msg::Resize(60, 20), T0);
    assert_eq!(app.size(), (60, 20));
    // 20 rows: pane 16, page 14.
    press(&mut app, KeyCode::PageUp);
    let rows = pane_rows(&app);
    assert_eq!(rows.len(), 16);
    assert!(rows[15].ends_with("bob: m45"), "{rows:?}");
    update(&mut app, Msg::Resize(40, 10), T0);
    assert_eq!(app.size(), (40, 10));
    press(&mut app, KeyCode::PageUp);
    let rows = pane_rows(&app);
    assert_eq!(rows.len(), 6);
    assert!(rows[5].ends_with("bob: m41"), "{rows:?}");
}

#[test]
fn scrolling_up_after_widening_the_terminal_does_not_panic() {
    // A host on a narrow terminal reads back to the top: the long welcome notice is the
    // oldest entry and takes many rows, part of it held below the pane.
    let mut app = host(24, 8);
    welcome(&mut app, "alice", None, &["alice"]);
    for i in 0..3 {
        msg(&mut app, i, "bob", &format!("m{i}"));
    }
    update(&mut app, key_with(KeyCode::Home, KeyModifiers::CONTROL), T0);
    assert!(
        matches!(app.scroll(), Scroll::Back { skip, .. } if skip > 0),
        "{:?}",
        app.scroll()
    );
    // The window is made wider, and the person pages up once more.
    update(&mut app, Msg::Resize(120, 8), T0);
    press(&mut app, KeyCode::PageUp);
    assert!(pane_rows(&app)[0].contains("you are hosting"));
}

#[test]
fn tiny_sizes_do_not_stop_scrolling() {
    let mut app = with_messages(40, 10, 30);
    for (w, h) in [(0, 0), (1, 1), (0, 10), (10, 0), (3, 4), (1, 200)] {
        update(&mut app, Msg::Resize(w, h), T0);
        for code in [KeyCode::PageUp, KeyCode::PageDown, KeyCode::PageUp] {
            press(&mut app, code);
        }
        update(&mut app, wheel(MouseEventKind::ScrollUp), T0);
        update(&mut app, wheel(MouseEventKind::ScrollDown), T0);
        press(&mut app, KeyCode::End);
        assert_eq!(app.scroll(), Scroll::Live);
    }
}

// ---------------------------------------------------------------------------------------
// The room

#[test]
fn welcome_puts_us_in_the_room() {
    let mut app = joiner(80, 24);
    assert_eq!(*app.conn(), Conn::Connecting);
    welcome(&mut app, "alice", None, &["bob", "alice", "carol"]);
    assert_eq!(*app.conn(), Conn::InRoom);
    assert_eq!(app.me(), "alice");
    assert_eq!(app.members(), vec!["bob", "alice", "carol"]);
    assert_eq!(last_kind(&app), Kind::Notice);
    assert_eq!(last_text(&app), "you joined as alice; here: bob, carol");
}

#[test]
fn welcome_alone_says_nobody_else_is_here() {
    let mut app = host(80, 24);
    welcome(&mut app, "alice", None, &["alice"]);
    assert_eq!(
        last_text(&app),
        "you are hosting as alice; nobody else is here yet. Others join with: \
         tchat --join 192.168.1.5:7878  (or: nc 192.168.1.5 7878)"
    );
}

#[test]
fn a_taken_name_is_told() {
    let mut app = joiner(80, 24);
    welcome(&mut app, "alice2", Some("alice"), &["alice", "alice2"]);
    assert_eq!(app.me(), "alice2");
    let all = texts(&app);
    assert!(
        all.iter()
            .any(|t| t.contains("alice is taken") && t.contains("alice2")),
        "{all:?}"
    );
    // Our own lines now carry the new name.
    sent(&say(&mut app, "hi"));
    assert_eq!(last_kind(&app), own("alice2", Delivery::Pending));
}

#[test]

fn a_line_typed_before_the_welcome_takes_the_name_the_room_gave() {
    let mut app = joiner(80, 24);
    let (text, cid) = sent(&say(&mut app, "early"));
    welcome(&mut app, "alice2", Some("alice"), &["alice", "alice2"]);
    echo(&mut app, 1, "alice2", &text, &cid);
    let early = app.entries().find(|(_, e)| e.text == "early").unwrap().1;
    assert_eq!(early.kind, own("alice2", Delivery::Delivered));
}

#[test]
fn joins_and_leaves_keep_the_member_list() {
    let mut app = in_room(80, 24);
    assert_eq!(app.members(), vec!["alice", "bob"]);
    let join = |app: &mut App, id, name: &str| {
        server(
            app,
            ServerMsg::Join {
                id,
                ts: T0,
                name: name.into(),
            },
        )
    };
    let leave = |app: &mut App, id, name: &str, reason: Option<&str>| {
        server(
            app,
            ServerMsg::Leave {
                id,
                ts: T0,
                name: name.into(),
                reason: reason.map(str::to_owned),
            },
        )
    };
    join(&mut app, 1, "carol");
    assert_eq!(last_text(&app), "carol joined");
    assert_eq!(last_kind(&app), Kind::Notice);
    assert_eq!(app.members().len(), 3);
    join(&mut app, 2, "carol");
    assert_eq!(
        app.members().len(),
        3,
        "a repeated join is not counted twice"
    );
    join(&mut app, 3, "Dave");
    assert_eq!(app.members(), vec!["alice", "bob", "carol", "Dave"]);
    leave(&mut app, 4, "bob", None);
    assert_eq!(last_text(&app), "bob left");
    assert_eq!(app.members(), vec!["alice", "carol", "Dave"]);
    leave(&mut app, 5, "carol", Some("timed out"));
    assert_eq!(last_text(&app), "carol left (timed out)");
    leave(&mut app, 6, "nobody", None);
    assert_eq!(app.members(), vec!["alice", "Dave"]);
}

#[test]
fn a_crowd_is_one_line_each_way_and_keeps_the_member_list() {
    let mut app = in_room(80, 24);
    let before = texts(&app).len();
    let joined: Vec<String> = (0..12).map(|i| format!("g{i}")).collect();
    server(
        &mut app,
        ServerMsg::Crowd {
            id: 1,
            ts: T0,
            joined,
            left: vec!["bob".into(), "nobody".into()],
        },
    );
    let shown = texts(&app);
    assert_eq!(
        shown[before..],
        [
            "2 people left: bob, nobody",
            "12 people joined: g0, g1, g2, g3, g4, g5, g6, g7, g8, g9 and 2 more"
        ]
    );
    assert_eq!(last_kind(&app), Kind::Notice);
    assert_eq!(app.members().len(), 13, "{:?}", app.members());
    assert!(
        !app.members().contains(&"bob".to_owned()) && app.members().contains(&"g11".to_owned())
    );
    // Someone who left, and someone else under that name who joined, in one crowd.
    server(
        &mut app,
        ServerMsg::Crowd {
            id: 2,
            ts: T0,
            joined: vec!["g0".into()],
            left: vec!["g0".into()],
        },
    );
    assert_eq!(app.members().iter().filter(|m| *m == "g0").count(), 1);
}

#[test]
fn closing_says_why_and_closes() {
    let mut app = in_room(80, 24);
    server(
        &mut app,
        ServerMsg::Closing {
            ts: T0,
            reason: "the host left".into(),
        },
    );
    assert_eq!(*app.conn(), Conn::Closed("the host left".into()));
    assert_eq!(last_kind(&app), Kind::Error);
    assert_eq!(last_text(&app), "the host left. Press Esc to leave.");
    assert_eq!(press(&mut app, KeyCode::Esc), vec![Effect::Quit]);
}

#[test]
fn a_room_notice_is_shown_as_a_notice() {
    let mut app = in_room(80, 24);
    server(
        &mut app,
        ServerMsg::Notice {
            ts: T0,
            text: "line refused: over 8192 bytes".into(),
            cid: None,
        },
    );
    assert_eq!(last_kind(&app), Kind::Notice);
    assert_eq!(last_text(&app), "line refused: over 8192 bytes");
}

#[test]
fn a_message_under_our_own_name_without_cid_is_marked_own() {
    let mut app = in_room(80, 24);
    msg(&mut app, 1, "alice", "from history");
    assert_eq!(last_kind(&app), own("alice", Delivery::Delivered));
}

#[test]
fn text_from_a_plain_peer_on_the_host_is_labelled_peer() {
    let mut app = host(80, 24);
    net(
        &mut app,
        Net::Text {
            ts: T0,
            text: "raw".into(),
        },
    );
    assert_eq!(
        last_kind(&app),
        Kind::Text {
            from: "peer".into()
        }
    );
}

// ---------------------------------------------------------------------------------------
// Losing the host and rejoining

fn lost(app: &mut App, reason: &str, retry_in: Duration) {
    net(
        app,
        Net::Lost {
            reason: reason.into(),
            retry_in,
        },
    );
}

/// The welcome of a rejoin: into room epoch `room` (the same as `in_room`'s, "room",
/// when the host kept running), as alice.
fn rejoin(app: &mut App, room: &str, members: &[&str]) {
    server(
        app,
        ServerMsg::Welcome {
            v: 1,
            room: room.into(),
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

fn catchup(app: &mut App, count: u64, lost: u64) {
    server(app, ServerMsg::Catchup { count, lost });
}

fn notice_about(app: &mut App, text: &str, cid: &str) {
    server(
        app,
        ServerMsg::Notice {
            ts: T0,
            text: text.into(),
            cid: Some(cid.into()),
        },
    );
}

/// The kind of the one entry whose text is `t`.
fn kind_of(app: &App, t: &str) -> Kind {
    let found: Vec<Kind> = app
        .entries()
        .filter(|(_, e)| e.text == t)
        .map(|(_, e)| e.kind.clone())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{t:?} should be shown once: {:?}",
        texts(app)
    );
    found[0].clone()
}

fn kinds(app: &App) -> Vec<Kind> {
    app.entries().map(|(_, e)| e.kind.clone()).collect()
}

#[test]
fn losing_the_host_says_once_that_it_rejoins_by_itself() {
    let mut app = in_room(80, 24);
    let n = app.entries().len();
    lost(
        &mut app,
        "lost the host: the connection closed without a goodbye",
        Duration::from_millis(1500),
    );
    assert_eq!(app.entries().len(), n + 1);
    assert_eq!(last_kind(&app), Kind::Error);
    let said = last_text(&app);
    assert!(
        said.starts_with("lost the host: the connection closed without a goodbye")
            && said.contains("Rejoining by itself"),
        "{said:?}"
    );
    assert_eq!(
        *app.conn(),
        Conn::Reconnecting {
            attempt: 0,
            retry_in: Some(2)
        },
        "1.5 s shows as 2: the wait is rounded up to whole seconds"
    );

    net(&mut app, Net::Reconnecting { attempt: 1 });
    assert_eq!(
        *app.conn(),
        Conn::Reconnecting {
            attempt: 1,
            retry_in: None
        }
    );
    // The try failed: the next wait is shown, and the screen is not filled with errors.
    lost(
        &mut app,
        "cannot connect to 10.0.0.2:7878: connection refused",
        Duration::from_secs(2),
    );
    assert_eq!(app.entries().len(), n + 1, "{:?}", texts(&app));
    assert_eq!(
        *app.conn(),
        Conn::Reconnecting {
            attempt: 1,
            retry_in: Some(2)
        }
    );
    net(&mut app, Net::Reconnecting { attempt: 2 });
    lost(&mut app, "refused", Duration::from_millis(3001));
    assert_eq!(
        *app.conn(),
        Conn::Reconnecting {
            attempt: 2,
            retry_in: Some(4)
        }
    );
    assert_eq!(app.entries().len(), n + 1);
}

#[test]
fn a_line_typed_while_offline_is_sent_at_once_and_confirmed_once_after_the_rejoin() {
    let mut app = in_room(80, 24);
    lost(&mut app, "connection lost", Duration::from_secs(1));
    let n = app.entries().len();
    let fx = say(&mut app, "still there?");
    let (text, cid) = sent(&fx);
    assert_eq!(text, "still there?");
    assert_eq!(app.entries().len(), n + 1);
    assert_eq!(last_kind(&app), own("alice", Delivery::Pending));
    assert_eq!(app.input_text(), "");

    net(&mut app, Net::Reconnecting { attempt: 1 });
    rejoin(&mut app, "room", &["alice", "bob"]);
    assert_eq!(*app.conn(), Conn::InRoom);
    catchup(&mut app, 1, 0);
    msg(&mut app, 7, "bob", "said while you were away");
    assert_eq!(
        kind_of(&app, "still there?"),
        own("alice", Delivery::Pending)
    );
    echo(&mut app, 8, "alice", &text, &cid);
    assert_eq!(
        kind_of(&app, "still there?"),
        own("alice", Delivery::Delivered)
    );
}

#[test]
fn a_rejoin_to_the_same_room_catches_up_without_a_second_welcome() {
    let mut app = in_room(80, 24);
    msg(&mut app, 1, "bob", "before");
    lost(&mut app, "connection lost", Duration::from_secs(1));
    net(&mut app, Net::Reconnecting { attempt: 1 });
    let n = app.entries().len();
    rejoin(&mut app, "room", &["alice", "bob", "carol"]);
    assert_eq!(app.entries().len(), n, "{:?}", texts(&app));
    assert_eq!(*app.conn(), Conn::InRoom);
    assert_eq!(app.members(), vec!["alice", "bob", "carol"]);
    let welcomes = texts(&app)
        .iter()
        .filter(|t| t.starts_with("you joined as"))
        .count();
    assert_eq!(welcomes, 1);

    catchup(&mut app, 3, 0);
    assert_eq!(last_kind(&app), Kind::Notice);
    assert_eq!(last_text(&app), "back in the room; 3 missed events follow");
    server(
        &mut app,
        ServerMsg::Join {
            id: 2,
            ts: T0,
            name: "carol".into(),
        },
    );
    msg(&mut app, 3, "carol", "first");
    msg(&mut app, 4, "bob", "second");
    let all = texts(&app);
    assert_eq!(
        all[n..],
        [
            "back in the room; 3 missed events follow",
            "carol joined",
            "first",
            "second"
        ],
        "{all:?}"
    );
}

#[test]
fn a_catchup_that_lost_events_says_how_many() {
    let mut app = in_room(80, 24);
    lost(&mut app, "connection lost", Duration::from_secs(1));
    rejoin(&mut app, "room", &["alice", "bob"]);
    catchup(&mut app, 1, 5);
    assert_eq!(
        last_text(&app),
        "back in the room; 5 earlier events are lost (the host keeps only the most recent), \
         1 missed event follows"
    );
    catchup(&mut app, 0, 0);
    assert_eq!(last_text(&app), "back in the room; nothing was missed");
}

#[test]
fn a_rejoin_after_the_host_restarted_says_so() {
    let mut app = in_room(80, 24);
    lost(
        &mut app,
        "lost the host: the connection closed without a goodbye",
        Duration::from_secs(1),
    );
    let (text, cid) = sent(&say(&mut app, "hello again"));
    let n = app.entries().len();
    rejoin(&mut app, "room-after-restart", &["alice"]);
    assert_eq!(*app.conn(), Conn::InRoom);
    let all = texts(&app);
    let new = &all[n..];
    assert!(
        new.iter().any(|t| t.contains("restarted")),
        "a restart should be told: {new:?}"
    );
    let restarted = app
        .entries()
        .find(|(_, e)| e.text.contains("restarted"))
        .unwrap()
        .1;
    assert_eq!(restarted.kind, Kind::Notice);
    // The line kept while away goes to the new room and is confirmed there.
    echo(&mut app, 1, "alice", &text, &cid);
    assert_eq!(
        kind_of(&app, "hello again"),
        own("alice", Delivery::Delivered)
    );
    // A later rejoin to this run of the room is a plain rejoin again.
    lost(&mut app, "connection lost", Duration::from_secs(1));
    let n = app.entries().len();
    rejoin(&mut app, "room-after-restart", &["alice"]);
    assert_eq!(app.entries().len(), n, "{:?}", texts(&app));
}

#[test]
fn a_refused_line_is_marked_not_sent_and_the_reason_shown() {
    let mut app = in_room(80, 24);
    let (_, c1) = sent(&say(&mut app, "one"));
    let (_, c2) = sent(&say(&mut app, "two"));
    let reason = "slow down: that line was not sent, over the flood limit (20 lines at once, then 5 a second)";
    notice_about(&mut app, reason, &c1);
    assert_eq!(kind_of(&app, "one"), own("alice", Delivery::NotSent));
    assert_eq!(kind_of(&app, "two"), own("alice", Delivery::Pending));
    assert_eq!(last_kind(&app), Kind::Notice);
    assert_eq!(last_text(&app), reason);

    // About a line that is not ours (or no longer pending): shown, and nothing else.
    let before = kinds(&app);
    notice_about(&mut app, "your line was not sent", "ffffffff-9");
    let after = kinds(&app);
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(last_text(&app), "your line was not sent");
    notice_about(&mut app, "again about one", &c1);
    assert_eq!(kind_of(&app, "one"), own("alice", Delivery::NotSent));
    assert_eq!(kind_of(&app, "two"), own("alice", Delivery::Pending));

    // The other line is still confirmed by its echo.
    echo(&mut app, 1, "alice", "two", &c2);
    assert_eq!(kind_of(&app, "two"), own("alice", Delivery::Delivered));
}

#[test]
fn after_the_room_closed_a_lost_host_is_waited_for_then_pending_lines_are_not_sent() {
    let mut app = in_room(80, 24);
    sent(&say(&mut app, "in flight"));
    server(
        &mut app,
        ServerMsg::Closing {
            ts: T0,
            reason: "the host left; the room is closed".into(),
        },
    );
    assert_eq!(
        last_text(&app),
        "the host left; the room is closed. Press Esc to leave."
    );
    assert_eq!(last_kind(&app), Kind::Error);
    let n = app.entries().len();
    lost(
        &mut app,
        "the host left; the room is closed",
        Duration::from_secs(1),
    );
    assert_eq!(app.entries().len(), n + 1, "{:?}", texts(&app));
    assert_eq!(last_kind(&app), Kind::Notice);
    assert!(
        last_text(&app).contains("will rejoin by itself if the host comes back"),
        "{}",
        last_text(&app)
    );
    assert_eq!(
        *app.conn(),
        Conn::Reconnecting {
            attempt: 0,
            retry_in: Some(1)
        }
    );
    assert_eq!(kind_of(&app, "in flight"), own("alice", Delivery::Pending));
    // Waiting for the host, lines can still be typed and kept.
    sent(&say(&mut app, "typed while waiting"));
    assert_eq!(last_kind(&app), own("alice", Delivery::Pending));

    // The end: whatever is still pending was not sent.
    net(
        &mut app,
        Net::Closed {
            reason: "the host left; the room is closed".into(),
        },
    );
    assert!(matches!(*app.conn(), Conn::Closed(_)), "{:?}", *app.conn());
    assert_eq!(kind_of(&app, "in flight"), own("alice", Delivery::NotSent));
    assert_eq!(
        kind_of(&app, "typed while waiting"),
        own("alice", Delivery::NotSent)
    );
    assert!(say(&mut app, "and now?").is_empty());
}

#[test]
fn a_ping_changes_nothing_visible() {
    let mut app = in_room(80, 24);
    msg(&mut app, 1, "bob", "hello");
    type_str(&mut app, "half typed");
    let (n, rows, conn) = (app.entries().len(), pane_rows(&app), app.conn().clone());
    server(&mut app, ServerMsg::Ping);
    assert_eq!(app.entries().len(), n);
    assert_eq!(pane_rows(&app), rows);
    assert_eq!(*app.conn(), conn);
    assert_eq!(app.input_text(), "half typed");
}

// ---------------------------------------------------------------------------------------
// Hostile input

/// True when no entry's text or sender, nor our name or the members, hold anything that
/// could drive a terminal. A message's text may hold line breaks (`\n`): they are how a
/// message of several lines is kept, and the view lays each out as a row of its own.
fn all_clean(app: &App) -> Result<(), String> {
    let bad_text = |s: &str| s.chars().any(|c| c != '\n' && is_forbidden(c));
    let bad_line = |s: &str| s.chars().any(is_forbidden);
    for (seq, e) in app.entries() {
        if bad_text(&e.text) {
            return Err(format!("entry {seq} text {:?}", e.text));
        }
        if let Kind::Message { from, .. } | Kind::Text { from } = &e.kind
            && bad_line(from)
        {
            return Err(format!("entry {seq} sender {from:?}"));
        }
    }
    if bad_line(app.me()) {
        return Err(format!("me {:?}", app.me()));
    }
    if let Some(m) = app.members().iter().find(|m| bad_line(m)) {
        return Err(format!("member {m:?}"));
    }
    if let Conn::Closed(r) = app.conn()
        && bad_line(r)
    {
        return Err(format!("close reason {r:?}"));
    }
    Ok(())
}

#[test]
fn escapes_and_bidi_overrides_from_the_network_are_stored_sanitized() {
    let evil =
        "a\u{1b}[2J\u{1b}]0;pwned\u{7}b\u{202e}cba\u{202c}\u{2066}x\u{2069}\u{9b}1m\u{7f}\r\n";
    let mut app = joiner(80, 24);
    server(
        &mut app,
        ServerMsg::Welcome {
            v: 1,
            room: evil.into(),
            name: format!("me{evil}"),
            asked: Some(format!("asked{evil}")),
            members: vec![format!("m{evil}"), "bob".into()],
            max_line: 8192,
            pace: None,
            ts: None,
            topic: None,
        },
    );
    server(
        &mut app,
        ServerMsg::Msg {
            id: 1,
            ts: T0,
            from: format!("ev{evil}il"),
            text: format!("hi{evil}there"),
            cid: Some("not-ours".into()),
            held: None,
        },
    );
    server(
        &mut app,
        ServerMsg::Join {
            id: 2,
            ts: T0,
            name: format!("j{evil}"),
        },
    );
    server(
        &mut app,
        ServerMsg::Leave {
            id: 3,
            ts: T0,
            name: format!("l{evil}"),
            reason: Some(format!("r{evil}")),
        },
    );
    server(
        &mut app,
        ServerMsg::Notice {
            ts: T0,
            text: format!("n{evil}"),
            cid: None,
        },
    );
    net(
        &mut app,
        Net::Text {
            ts: T0,
            text: format!("t{evil}"),
        },
    );
    server(
        &mut app,
        ServerMsg::Closing {
            ts: T0,
            reason: format!("c{evil}"),
        },
    );
    net(
        &mut app,
        Net::Closed {
            reason: format!("d{evil}"),
        },
    );
    all_clean(&app).unwrap();
    // The escape is visible rather than gone, so a person sees something odd was sent.
    let m = app
        .entries()
        .find(|(_, e)| e.text.starts_with("hi"))
        .unwrap()
        .1;
    assert!(m.text.contains('␛'), "{:?}", m.text);
    assert!(!m.text.contains('\u{202e}'));
}

// ---------------------------------------------------------------------------------------
// Whatever happens, nothing panics

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z ]{0,20}",
        "[\u{4e00}-\u{4e20}🎉👨‍👩‍👧❤️ é]{0,30}",
        "(exit| exit |\n|\r\n|\r|\u{1b}\\[2J|\u{202e}|\t|x{80})*",
    ]
}

fn arb_modifiers() -> impl Strategy<Value = KeyModifiers> {
    (0u8..16).prop_map(|b| {
        let mut m = KeyModifiers::NONE;
        if b & 1 != 0 {
            m |= KeyModifiers::SHIFT;
        }
        if b & 2 != 0 {
            m |= KeyModifiers::CONTROL;
        }
        if b & 4 != 0 {
            m |= KeyModifiers::ALT;
        }
        if b & 8 != 0 {
            m |= KeyModifiers::SUPER;
        }
        m
    })
}

fn arb_key_code() -> impl Strategy<Value = KeyCode> {
    prop_oneof![
        4 => any::<char>().prop_map(KeyCode::Char),
        4 => prop::sample::select(vec!['a', 'e', 'u', 'k', 'w', 'y', 'b', 'f', 'd', 'h', ' ', '世', '🎉'])
            .prop_map(KeyCode::Char),
        6 => prop::sample::select(vec![
            KeyCode::Enter,
            KeyCode::Backspace,
            KeyCode::Delete,
            KeyCode::Left,
            KeyCode::Right,
            KeyCode::Up,
            KeyCode::Down,
            KeyCode::Home,
            KeyCode::End,
            KeyCode::PageUp,
            KeyCode::PageDown,
            KeyCode::Tab,
            KeyCode::BackTab,
            KeyCode::Insert,
            KeyCode::F(1),
            KeyCode::Null,
        ]),
    ]
}

fn arb_key() -> impl Strategy<Value = Msg> {
    (
        arb_key_code(),
        arb_modifiers(),
        prop::sample::select(vec![
            KeyEventKind::Press,
            KeyEventKind::Press,
            KeyEventKind::Repeat,
            KeyEventKind::Release,
        ]),
    )
        .prop_filter("Esc and Ctrl-C only quit", |(code, m, _)| {
            // They are harmless, but the run would have nothing more to show after them.
            !(matches!(code, KeyCode::Esc)
                || (matches!(code, KeyCode::Char('c')) && m.contains(KeyModifiers::CONTROL)))
        })
        .prop_map(|(code, modifiers, kind)| {
            Msg::Key(KeyEvent {
                code,
                modifiers,
                kind,
                state: KeyEventState::NONE,
            })
        })
}

fn arb_server() -> impl Strategy<Value = ServerMsg> {
    prop_oneof![
        (
            arb_string(),
            prop::option::of(arb_string()),
            prop::collection::vec(arb_string(), 0..4),
            0usize..100
        )
            .prop_map(|(name, asked, members, max_line)| ServerMsg::Welcome {
                v: 1,
                room: "r".into(),
                name,
                asked,
                members,
                max_line,
                pace: None,
                ts: None,
                topic: None,
            }),
        (
            any::<u64>(),
            any::<i64>(),
            arb_string(),
            arb_string(),
            prop::option::of(arb_string())
        )
            .prop_map(|(id, ts, from, text, cid)| ServerMsg::Msg {
                id,
                ts,
                from,
                text,
                cid,
                held: None,
            }),
        (any::<i64>(), arb_string()).prop_map(|(ts, name)| ServerMsg::Join { id: 0, ts, name }),
        (any::<i64>(), arb_string(), prop::option::of(arb_string())).prop_map(
            |(ts, name, reason)| {
                ServerMsg::Leave {
                    id: 0,
                    ts,
                    name,
                    reason,
                }
            }
        ),
        (any::<i64>(), arb_string(), prop::option::of(arb_string()))
            .prop_map(|(ts, text, cid)| ServerMsg::Notice { ts, text, cid }),
        (any::<i64>(), arb_string()).prop_map(|(ts, reason)| ServerMsg::Closing { ts, reason }),
        (any::<u64>(), any::<u64>()).prop_map(|(count, lost)| ServerMsg::Catchup { count, lost }),
        Just(ServerMsg::Ping),
    ]
}

fn arb_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        10 => arb_key(),
        2 => arb_string().prop_map(Msg::Paste),
        2 => (
            prop::sample::select(vec![
                MouseEventKind::ScrollUp,
                MouseEventKind::ScrollDown,
                MouseEventKind::Moved,
                MouseEventKind::Down(crossterm::event::MouseButton::Left),
            ]),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(kind, column, row)| Msg::Mouse(MouseEvent {
                kind,
                column,
                row,
                modifiers: KeyModifiers::NONE,
            })),
        2 => (
            prop_oneof![Just(0u16), Just(1), Just(2), 0u16..120],
            prop_oneof![Just(0u16), Just(1), Just(2), Just(3), 0u16..50],
        )
            .prop_map(|(w, h)| Msg::Resize(w, h)),
        6 => arb_server().prop_map(|m| Msg::Net(Net::Server(m))),
        1 => Just(Msg::Net(Net::Plain)),
        2 => (any::<i64>(), arb_string()).prop_map(|(ts, text)| Msg::Net(Net::Text { ts, text })),
        1 => arb_string().prop_map(|reason| Msg::Net(Net::Closed { reason })),
        1 => (arb_string(), any::<u64>(), 0u32..1_000_000_000).prop_map(|(reason, s, ns)| {
            Msg::Net(Net::Lost { reason, retry_in: Duration::new(s, ns) })
        }),
        1 => any::<u32>().prop_map(|attempt| Msg::Net(Net::Reconnecting { attempt })),
    ]
}

fn draw(app: &App) {
    let mut terminal = Terminal::new(TestBackend::new(app.size().0, app.size().1)).unwrap();
    terminal.draw(|f| tchat::ui::render(app, f)).unwrap();
}

/// One run: apply `msgs` to a fresh app, drawing after every step.
fn run(start: (u16, u16), msgs: Vec<Msg>) -> Result<(), TestCaseError> {
    let mut app = joiner(start.0, start.1);
    draw(&app);
    for (i, m) in msgs.into_iter().enumerate() {
        let now = T0 + i as i64;
        let fx = update(&mut app, m, now);
        for f in &fx {
            if let Effect::Send { text, .. } = f {
                prop_assert!(!text.trim().is_empty());
                prop_assert_ne!(text.trim(), "exit");
            }
        }
        if let Err(e) = all_clean(&app) {
            prop_assert!(false, "unsafe text stored: {}", e);
        }
        if app.scroll() == Scroll::Live {
            prop_assert_eq!(app.scrollback().unseen(), 0);
        }
        draw(&app);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any keys, pastes, resizes (also while scrolled back) and network events, drawn
    /// after every step: no panic, nothing unsafe stored, nothing blank or `exit` sent.
    #[test]
    fn any_sequence_of_events_never_panics(
        start in (0u16..100, 0u16..40),
        msgs in prop::collection::vec(arb_msg(), 0..60),
    ) {
        run(start, msgs)?;
    }
}

// ---------------------------------------------------------------------------------------
// Commands, history and attention

fn me(app: &mut App, id: u64, from: &str, text: &str) {
    server(
        app,
        ServerMsg::Me {
            id,
            ts: T0,
            from: from.into(),
            text: text.into(),
            cid: None,
            held: None,
        },
    );
}

#[test]
fn quit_and_help_are_handled_here_and_other_commands_go_to_the_room_without_a_pending_line() {
    let mut app = in_room(80, 24);
    let n = app.entries().len();
    assert_eq!(say(&mut app, "/quit"), vec![Effect::Quit]);
    let mut app = in_room(80, 24);
    assert!(
        say(&mut app, "/help").is_empty(),
        "nothing goes to the room"
    );
    let help = &app.entries().last().unwrap().1.text;
    assert!(
        help.contains("/nick NAME") && help.contains("Tab"),
        "{help}"
    );
    let fx = say(&mut app, "/nick bob");
    let (text, _) = sent(&fx);
    assert_eq!(text, "/nick bob");
    assert_eq!(
        app.entries().len(),
        n + 1,
        "only the help was added; no pending line"
    );
    // A line starting with // is a message: shown pending, as the room will relay it.
    let fx = say(&mut app, "//usr is a path");
    let (text, cid) = sent(&fx);
    assert_eq!(text, "//usr is a path");
    echo(&mut app, 9, "alice", "/usr is a path", &cid);
    let (_, e) = app.entries().last().unwrap();
    assert_eq!(e.text, "/usr is a path", "shown as the room has it");
    assert_eq!(e.kind, own("alice", Delivery::Delivered));
}

#[test]
fn me_private_and_nick_events_show_as_people_expect() {
    let mut app = in_room(80, 24);
    me(&mut app, 1, "bob", "waves");
    assert_eq!(
        last_kind(&app),
        Kind::Action {
            from: "bob".into(),
            own: false,
            held: false
        }
    );
    server(
        &mut app,
        ServerMsg::Private {
            id: 2,
            ts: T0,
            from: "bob".into(),
            to: "alice".into(),
            text: "psst".into(),
            cid: None,
        },
    );
    let (_, e) = app.entries().last().unwrap();
    assert!(
        matches!(&e.kind, Kind::Private { from, to, own: false } if from == "bob" && to == "alice")
    );
    assert!(e.mention, "a private line to you counts as a mention");
    server(
        &mut app,
        ServerMsg::Nick {
            id: 3,
            ts: T0,
            old: "bob".into(),
            new: "robert".into(),
            cid: None,
        },
    );
    assert_eq!(
        app.entries().last().unwrap().1.text,
        "bob is now known as robert"
    );
    assert!(app.members().contains(&"robert".to_string()));
    assert!(!app.members().contains(&"bob".to_string()));
    server(
        &mut app,
        ServerMsg::Nick {
            id: 4,
            ts: T0,
            old: "alice".into(),
            new: "alicia".into(),
            cid: Some("c".into()),
        },
    );
    assert_eq!(app.me(), "alicia");
    assert_eq!(
        app.entries().last().unwrap().1.text,
        "you are now known as alicia"
    );
}

#[test]
fn a_line_that_names_you_is_marked_and_rings_as_the_bell_setting_says() {
    let ring = |bell: Bell, from: &str, text: &str| {
        let mut app = in_room(80, 24).with(Settings {
            bell,
            ..Settings::default()
        });
        let fx = update(
            &mut app,
            Msg::Net(Net::Server(ServerMsg::Msg {
                id: 50,
                ts: T0,
                from: from.into(),
                text: text.into(),
                cid: None,
                held: None,
            })),
            T0,
        );
        (
            fx == vec![Effect::Bell],
            app.entries().last().unwrap().1.mention,
        )
    };
    assert_eq!(ring(Bell::Mention, "bob", "hey Alice, look"), (true, true));
    assert_eq!(ring(Bell::Mention, "bob", "thanks @alice!"), (true, true));
    assert_eq!(
        ring(Bell::Mention, "bob", "malice aforethought"),
        (false, false)
    );
    assert_eq!(ring(Bell::Mention, "bob", "no one"), (false, false));
    assert_eq!(ring(Bell::All, "bob", "no one"), (true, false));
    assert_eq!(ring(Bell::Never, "bob", "alice!"), (false, true));
    // Your own lines never ring.
    assert_eq!(ring(Bell::All, "alice", "alice here"), (false, false));
}

#[test]
fn scrolled_back_the_marker_counts_mentions_apart() {
    let mut app = in_room(80, 12);
    for i in 0..30 {
        msg(&mut app, i, "bob", &format!("filler {i}"));
    }
    press(&mut app, KeyCode::PageUp);
    msg(&mut app, 100, "bob", "alice: are you there?");
    msg(&mut app, 101, "bob", "anyone?");
    assert_eq!(
        (
            app.scrollback().unseen(),
            app.scrollback().unseen_mentions()
        ),
        (2, 1)
    );
    press(&mut app, KeyCode::End);
    assert_eq!(
        (
            app.scrollback().unseen(),
            app.scrollback().unseen_mentions()
        ),
        (0, 0)
    );
}

#[test]
fn history_on_joining_is_marked_and_neither_rings_nor_counts_as_new() {
    let mut app = in_room(80, 24).with(Settings {
        bell: Bell::All,
        ..Settings::default()
    });
    let fx = update(
        &mut app,
        Msg::Net(Net::Server(ServerMsg::History { count: 2 })),
        T0,
    );
    assert!(fx.is_empty());
    assert!(
        app.entries()
            .last()
            .unwrap()
            .1
            .text
            .contains("the last 2 messages")
    );
    for (id, text) in [(1, "old one, alice"), (2, "old two")] {
        let fx = update(
            &mut app,
            Msg::Net(Net::Server(ServerMsg::Msg {
                id,
                ts: T0,
                from: "bob".into(),
                text: text.into(),
                cid: None,
                held: None,
            })),
            T0,
        );
        assert!(fx.is_empty(), "history does not ring: {fx:?}");
    }
    assert_eq!(
        app.entries().last().unwrap().1.text,
        "end of history; now live"
    );
    let fx = update(
        &mut app,
        Msg::Net(Net::Server(ServerMsg::Msg {
            id: 3,
            ts: T0,
            from: "bob".into(),
            text: "live".into(),
            cid: None,
            held: None,
        })),
        T0,
    );
    assert_eq!(fx, vec![Effect::Bell]);
}

#[test]
fn mentions_are_whole_words_in_any_case_and_script() {
    assert!(mentions("hi alice", "alice"));
    assert!(mentions("ALICE: hi", "alice"));
    assert!(mentions("(alice)", "alice"));
    assert!(!mentions("alice2 is here", "alice"));
    assert!(!mentions("palice", "alice"));
    assert!(mentions("你好 世界 ok", "世界"));
    assert!(!mentions("", "alice"));
    assert!(!mentions("alice", ""));
}

#[test]
fn tab_completes_names_and_commands_and_cycles() {
    let mut app = joiner(80, 24);
    welcome(&mut app, "alice", None, &["alice", "bea", "Bob", "carol"]);
    type_str(&mut app, "b");
    press(&mut app, KeyCode::Tab);
    assert_eq!(
        app.input_text(),
        "bea: ",
        "a name at the start is addressed"
    );
    press(&mut app, KeyCode::Tab);
    assert_eq!(
        app.input_text(),
        "Bob: ",
        "Tab again: the next, in its own case"
    );
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input_text(), "bea: ", "and round again");
    type_str(&mut app, "hi c");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input_text(), "bea: hi carol ");
    // Nothing matches: nothing changes.
    type_str(&mut app, "zz");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input_text(), "bea: hi carol zz");

    let mut app = in_room(80, 24);
    type_str(&mut app, "/ni");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input_text(), "/nick ");
    // The cursor is after the completion: typing goes on from there.
    type_str(&mut app, "x");
    assert_eq!(app.input_text(), "/nick x");
}

#[test]
fn ctrl_z_suspends_a_joiner_or_a_lone_host_but_not_a_host_with_people() {
    let mut joiner = joiner(80, 24);
    welcome(&mut joiner, "alice", None, &["alice", "bob"]);
    assert_eq!(press_ctrl(&mut joiner, 'z'), vec![Effect::Suspend]);
    let mut host = host(80, 24);
    welcome(&mut host, "host", None, &["host"]);
    assert_eq!(press_ctrl(&mut host, 'z'), vec![Effect::Suspend]);
    welcome(&mut host, "host", None, &["bob", "carol", "host"]);
    assert!(press_ctrl(&mut host, 'z').is_empty());
    let shown = host
        .entries()
        .last()
        .map(|(_, e)| e.text.clone())
        .unwrap_or_default();
    assert!(shown.contains("not suspended"), "{shown}");
    assert!(shown.contains("the 2 people in it"), "{shown}");
}

#[test]
fn editing_moves_and_deletes_whole_characters_as_people_see_them() {
    // café typed with a combining accent, then s: Left, Left, Backspace takes the f.
    let mut app = joiner(80, 24);
    type_str(&mut app, "cafe\u{301}s");
    for k in [KeyCode::Left, KeyCode::Left, KeyCode::Backspace] {
        update(&mut app, key(k), T0);
    }
    assert_eq!(app.input_text(), "cae\u{301}s", "the accent stays on its e");
    // Backspace takes a whole family, not just its last member.
    let mut app = joiner(80, 24);
    type_str(&mut app, "hi 👩\u{200d}👩\u{200d}👧\u{200d}👦");
    update(&mut app, key(KeyCode::Backspace), T0);
    assert_eq!(app.input_text(), "hi ");
    // Left steps over a flag whole; Delete takes it whole.
    let mut app = joiner(80, 24);
    type_str(&mut app, "🇯🇵x");
    for k in [KeyCode::Left, KeyCode::Left] {
        update(&mut app, key(k), T0);
    }
    type_str(&mut app, "a");
    assert_eq!(app.input_text(), "a🇯🇵x");
    update(&mut app, key(KeyCode::Delete), T0);
    assert_eq!(app.input_text(), "ax");
    // Right steps over a skin-toned thumb; Ctrl-H and Ctrl-D do as Backspace and Delete.
    let mut app = joiner(80, 24);
    type_str(&mut app, "👍🏽👍🏽");
    update(&mut app, key(KeyCode::Home), T0);
    update(&mut app, key(KeyCode::Right), T0);
    type_str(&mut app, "|");
    assert_eq!(app.input_text(), "👍🏽|👍🏽");
    update(&mut app, ctrl('d'), T0);
    assert_eq!(app.input_text(), "👍🏽|");
    update(&mut app, ctrl('h'), T0);
    update(&mut app, ctrl('h'), T0);
    assert_eq!(app.input_text(), "");
}

#[test]
fn esc_goes_back_to_live_and_asks_before_it_costs_a_room_or_unsent_lines() {
    // Scrolled back, Esc returns to live and stays.
    let mut app = in_room(80, 10);
    for i in 1..=30 {
        msg(&mut app, i, "bob", &format!("line {i}"));
    }
    press(&mut app, KeyCode::PageUp);
    assert_ne!(app.scroll(), Scroll::Live);
    assert!(press(&mut app, KeyCode::Esc).is_empty());
    assert_eq!(app.scroll(), Scroll::Live);
    assert_eq!(press(&mut app, KeyCode::Esc), vec![Effect::Quit]);

    // A line typed and not yet echoed: asked; another key stays; Esc twice leaves.
    let mut app = in_room(80, 24);
    type_str(&mut app, "still on its way");
    assert!(!press(&mut app, KeyCode::Enter).is_empty());
    assert!(press(&mut app, KeyCode::Esc).is_empty());
    assert!(
        last_text(&app).contains("1 line you typed is not sent yet"),
        "{}",
        last_text(&app)
    );
    type_str(&mut app, "x");
    assert!(
        press(&mut app, KeyCode::Esc).is_empty(),
        "asked again after another key"
    );
    assert_eq!(press(&mut app, KeyCode::Esc), vec![Effect::Quit]);

    // A host alone leaves at once; with people in its room, it is asked.
    let mut app = host(80, 24);
    welcome(&mut app, "host", None, &["host"]);
    assert_eq!(press(&mut app, KeyCode::Esc), vec![Effect::Quit]);
    let mut app = host(80, 24);
    welcome(&mut app, "host", None, &["alice", "bob", "host"]);
    assert!(press(&mut app, KeyCode::Esc).is_empty());
    assert!(
        last_text(&app).contains("closes the room for the 2 people"),
        "{}",
        last_text(&app)
    );
    assert_eq!(press(&mut app, KeyCode::Esc), vec![Effect::Quit]);
    // Ctrl-C still leaves at once.
    let mut app = host(80, 24);
    welcome(&mut app, "host", None, &["alice", "host"]);
    assert_eq!(press_ctrl(&mut app, 'c'), vec![Effect::Quit]);
}

#[test]
fn alt_d_deletes_the_next_word_and_ctrl_t_swaps_two_characters() {
    let mut app = joiner(80, 24);
    type_str(&mut app, "hello cruel world");
    update(&mut app, key(KeyCode::Home), T0);
    // Alt-F stands at the next word's start; Alt-D takes that word.
    update(&mut app, alt('f'), T0);
    update(&mut app, alt('d'), T0);
    assert_eq!(app.input_text(), "hello  world");
    // Ctrl-T in the middle swaps around the cursor; at the end, the last two.
    let mut app = joiner(80, 24);
    type_str(&mut app, "teh");
    update(&mut app, ctrl('t'), T0);
    assert_eq!(app.input_text(), "the");
    let mut app = joiner(80, 24);
    type_str(&mut app, "ab你");
    update(&mut app, key(KeyCode::Left), T0);
    update(&mut app, ctrl('t'), T0);
    assert_eq!(app.input_text(), "a你b");
    // Whole graphemes: a flag and an accented letter trade places intact.
    let mut app = joiner(80, 24);
    type_str(&mut app, "e\u{301}🇯🇵");
    update(&mut app, ctrl('t'), T0);
    assert_eq!(app.input_text(), "🇯🇵e\u{301}");
}

#[test]
fn offline_the_countdown_counts_and_enter_or_reconnect_tries_now() {
    let mut app = in_room(80, 24);
    assert!(!app.ticking(), "a connected screen needs no ticks");
    update(
        &mut app,
        Msg::Net(Net::Lost {
            reason: "connection lost".into(),
            retry_in: Duration::from_secs(16),
        }),
        T0,
    );
    assert!(app.ticking());
    assert_eq!(
        *app.conn(),
        Conn::Reconnecting {
            attempt: 0,
            retry_in: Some(16)
        }
    );
    update(&mut app, Msg::Tick, T0 + 5_000);
    assert_eq!(
        *app.conn(),
        Conn::Reconnecting {
            attempt: 0,
            retry_in: Some(11)
        }
    );
    update(&mut app, Msg::Tick, T0 + 15_200);
    assert_eq!(
        *app.conn(),
        Conn::Reconnecting {
            attempt: 0,
            retry_in: Some(1)
        }
    );
    // Enter on an empty line: try now.
    assert_eq!(press(&mut app, KeyCode::Enter), vec![Effect::Reconnect]);
    assert_eq!(
        *app.conn(),
        Conn::Reconnecting {
            attempt: 0,
            retry_in: None
        }
    );
    assert!(!app.ticking());
    // /reconnect does the same once the next wait is on.
    update(
        &mut app,
        Msg::Net(Net::Lost {
            reason: "refused".into(),
            retry_in: Duration::from_secs(4),
        }),
        T0 + 16_000,
    );
    type_str(&mut app, "/reconnect");
    assert_eq!(press(&mut app, KeyCode::Enter), vec![Effect::Reconnect]);
    assert_eq!(app.input_text(), "", "not sent to the room");
    // Connected, /reconnect only says why not.
    let mut app = in_room(80, 24);
    type_str(&mut app, "/reconnect");
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert!(
        last_text(&app).contains("this connection is up"),
        "{}",
        last_text(&app)
    );
}

#[test]
fn clear_and_ignore_are_this_screens_alone() {
    let mut app = in_room(80, 24);
    msg(&mut app, 1, "bob", "one");
    msg(&mut app, 2, "carol", "two");
    // /clear empties the scrollback and sends nothing.
    type_str(&mut app, "/clear");
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.entries().len(), 0, "{:?}", texts(&app));
    // /ignore hides a name's messages here, and nothing is sent.
    type_str(&mut app, "/ignore Bob");
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert!(last_text(&app).contains("Bob's messages are not shown here"));
    msg(&mut app, 3, "bob", "still talking");
    msg(&mut app, 4, "carol", "hello");
    let shown = texts(&app);
    assert!(
        !shown.iter().any(|t| t.contains("still talking")),
        "{shown:?}"
    );
    assert!(shown.iter().any(|t| t.contains("hello")), "{shown:?}");
    type_str(&mut app, "/ignore");
    press(&mut app, KeyCode::Enter);
    assert_eq!(last_text(&app), "ignored here: bob");
    type_str(&mut app, "/unignore bob");
    press(&mut app, KeyCode::Enter);
    msg(&mut app, 5, "bob", "back");
    assert!(texts(&app).iter().any(|t| t.contains("back")));
    // Tab offers them.
    type_str(&mut app, "/ig");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input_text(), "/ignore ");
}

#[test]
fn the_title_counts_mentions_that_came_while_you_were_not_looking() {
    let mut app = in_room(80, 24);
    assert_eq!(app.title(), "tchat");
    msg(&mut app, 1, "bob", "alice: are you there?");
    assert_eq!(app.title(), "tchat", "seen as it came");
    update(&mut app, Msg::Focus(false), T0);
    msg(&mut app, 2, "bob", "alice?");
    msg(&mut app, 3, "bob", "lunch, anyone");
    msg(&mut app, 4, "carol", "ALICE!");
    assert_eq!(app.title(), "(2) tchat", "mentions only");
    update(&mut app, Msg::Focus(true), T0);
    assert_eq!(app.title(), "tchat");
    // Scrolled back, a mention is unread too, until back to live.
    for i in 5..40 {
        msg(&mut app, i, "bob", &format!("filler {i}"));
    }
    press(&mut app, KeyCode::PageUp);
    msg(&mut app, 40, "bob", "alice, look");
    assert_eq!(app.title(), "(1) tchat");
    press(&mut app, KeyCode::End);
    assert_eq!(app.title(), "tchat");
}

#[test]
fn a_read_marker_stands_before_what_came_while_you_were_away() {
    let mut app = in_room(80, 24);
    msg(&mut app, 1, "bob", "seen");
    update(&mut app, Msg::Focus(false), T0);
    msg(&mut app, 2, "bob", "while away 1");
    msg(&mut app, 3, "bob", "while away 2");
    update(&mut app, Msg::Focus(true), T0);
    let t = texts(&app);
    let marker = t
        .iter()
        .position(|x| x.contains(tchat::app::READ_MARKER))
        .unwrap();
    assert!(
        t[marker - 1].contains("seen") && t[marker + 1].contains("while away 1"),
        "{t:?}"
    );
    assert_eq!(
        t.iter()
            .filter(|x| x.contains(tchat::app::READ_MARKER))
            .count(),
        1,
        "one marker for one absence"
    );
    // Looking again, and back before anything came: no marker.
    update(&mut app, Msg::Focus(false), T0);
    update(&mut app, Msg::Focus(true), T0);
    msg(&mut app, 4, "bob", "while here");
    assert_eq!(
        texts(&app)
            .iter()
            .filter(|x| x.contains(tchat::app::READ_MARKER))
            .count(),
        1
    );
    // Scrolled back counts as away too.
    for i in 5..40 {
        msg(&mut app, i, "bob", &format!("filler {i}"));
    }
    press(&mut app, KeyCode::PageUp);
    msg(&mut app, 40, "bob", "below");
    press(&mut app, KeyCode::End);
    let t = texts(&app);
    assert!(t[t.len() - 2].contains(tchat::app::READ_MARKER), "{t:?}");
    assert!(t[t.len() - 1].contains("below"));
}

#[test]
fn a_mention_while_the_window_has_no_focus_asks_for_a_notification_if_wanted() {
    use tchat::app::Notify;
    let notifying = |how| {
        in_room(80, 24).with(Settings {
            notify: how,
            ..Settings::default()
        })
    };
    let mut app = notifying(Notify::Osc9);
    // Focused: the screen shows it; no notification.
    let e = update(&mut app, msg_event(1, "bob", "alice: lunch?"), T0);
    assert!(
        !e.iter().any(|e| matches!(e, Effect::Notify { .. })),
        "{e:?}"
    );
    update(&mut app, Msg::Focus(false), T0);
    let e = update(
        &mut app,
        msg_event(2, "bob", "alice: lunch?\nsecond line"),
        T0,
    );
    assert!(
        e.contains(&Effect::Notify {
            how: Notify::Osc9,
            title: "tchat: bob".into(),
            body: "alice: lunch?".into(),
        }),
        "{e:?}"
    );
    // Not for a line that does not name you; never when off.
    let e = update(&mut app, msg_event(3, "bob", "anyone?"), T0);
    assert!(!e.iter().any(|e| matches!(e, Effect::Notify { .. })));
    let mut app = notifying(Notify::Off);
    update(&mut app, Msg::Focus(false), T0);
    let e = update(&mut app, msg_event(4, "bob", "alice!"), T0);
    assert!(!e.iter().any(|e| matches!(e, Effect::Notify { .. })));
}

#[test]
fn ctrl_y_yanks_the_last_kill_and_alt_y_goes_back_through_the_ring() {
    let mut app = joiner(80, 24);
    type_str(&mut app, "first");
    update(&mut app, ctrl('u'), T0);
    type_str(&mut app, "second");
    update(&mut app, ctrl('u'), T0);
    type_str(&mut app, "third words");
    update(&mut app, ctrl('w'), T0);
    assert_eq!(app.input_text(), "third ");
    update(&mut app, ctrl('y'), T0);
    assert_eq!(app.input_text(), "third words");
    update(&mut app, alt('y'), T0);
    assert_eq!(app.input_text(), "third second");
    update(&mut app, alt('y'), T0);
    assert_eq!(app.input_text(), "third first");
    update(&mut app, alt('y'), T0);
    assert_eq!(app.input_text(), "third words", "round the ring");
    // Alt-Y after anything but a yank does nothing.
    type_str(&mut app, "!");
    update(&mut app, alt('y'), T0);
    assert_eq!(app.input_text(), "third words!");
    // A kill that kills nothing adds nothing.
    let mut app = joiner(80, 24);
    update(&mut app, ctrl('k'), T0);
    update(&mut app, ctrl('y'), T0);
    assert_eq!(app.input_text(), "");
}

#[test]
fn one_absence_gets_one_read_marker_however_you_looked_away() {
    let mut app = in_room(80, 10);
    for i in 1..40 {
        msg(&mut app, i, "bob", &format!("filler {i}"));
    }
    // Scrolled back, a line comes (the marker); then the window loses focus too, and
    // another comes: still one absence.
    press(&mut app, KeyCode::PageUp);
    msg(&mut app, 40, "bob", "first while away");
    update(&mut app, Msg::Focus(false), T0);
    msg(&mut app, 41, "bob", "second while away");
    let markers = texts(&app)
        .iter()
        .filter(|t| t.contains(tchat::app::READ_MARKER))
        .count();
    assert_eq!(markers, 1, "{:?}", texts(&app));
}

#[test]
fn a_kill_that_takes_only_a_line_break_leaves_the_ring_as_it_was() {
    let mut app = joiner(80, 24);
    // Backspace deletes a character (the widget keeps it as its yank text)...
    type_str(&mut app, "ab");
    press(&mut app, KeyCode::Backspace);
    // ...then Ctrl-U at the start of a second line only joins the lines.
    update(&mut app, key_with(KeyCode::Enter, KeyModifiers::ALT), T0);
    type_str(&mut app, "c");
    press(&mut app, KeyCode::Home);
    press_ctrl(&mut app, 'u');
    assert_eq!(app.input_text(), "ac");
    press_ctrl(&mut app, 'y');
    assert_eq!(
        app.input_text(),
        "ac",
        "nothing was killed, so nothing to yank"
    );
}

#[test]
fn alt_y_after_a_paste_leaves_the_paste_alone() {
    let mut app = joiner(80, 24);
    type_str(&mut app, "one two");
    press_ctrl(&mut app, 'w');
    type_str(&mut app, "three four");
    press_ctrl(&mut app, 'w');
    press_ctrl(&mut app, 'y');
    update(&mut app, Msg::Paste(" pasted".into()), T0);
    update(&mut app, alt('y'), T0);
    assert_eq!(app.input_text(), "one three four pasted");
}

#[test]
fn settling_lays_out_what_the_pane_shows_and_drawing_only_reads() {
    use tchat::app::layout;
    let mut app = in_room(40, 10);
    for i in 0..500 {
        let text = format!("message {i} is long enough to wrap in a pane forty columns wide");
        update(&mut app, msg_event(i, "bob", &text), T0);
    }
    app.settle();
    let settled = |app: &App, seq: u64| {
        let e = app.entry(seq).unwrap();
        let width = usize::from(app.areas().messages.width);
        e.wrapped
            .is_settled(&e.text, layout::columns(&e.kind, width).widths())
    };
    let last = app.last_seq().unwrap();
    assert!(settled(&app, last) && settled(&app, last - 1));
    update(&mut app, Msg::Resize(30, 10), T0);
    assert!(
        !settled(&app, last),
        "laid out before the frame, not on each update"
    );
    app.settle();
    assert!(settled(&app, last), "laid out again for the new width");
    // Only what shows: the oldest lines are laid out when they come into view.
    let first = app.scrollback().first_seq();
    assert!(!settled(&app, first));
    update(&mut app, key_with(KeyCode::Home, KeyModifiers::CONTROL), T0);
    app.settle();
    assert!(
        settled(&app, first),
        "scrolled to the top: the oldest line shows"
    );
}

#[test]
fn the_host_is_shown_the_invitation_and_invite_shows_it_again() {
    let token = "192.168.1.5:7878/3f2a91bc0d4e77a15c20aa00bb11cc22";
    let mut app = host(120, 24).invite(token.into());
    welcome(&mut app, "alice", None, &["alice"]);
    let want = format!("tchat --join {token}");
    assert!(
        texts(&app).iter().any(|t| t.contains(&want)),
        "{:?}",
        texts(&app)
    );
    let before = app.entries().len();
    type_str(&mut app, "/invite");
    let fx = press(&mut app, KeyCode::Enter);
    assert!(fx.is_empty(), "never sent to the room: {fx:?}");
    assert_eq!(app.entries().len(), before + 1);
    assert!(texts(&app).last().unwrap().contains(&want));
    // A private room's invitation holds its code; `nc` gets nowhere there.
    let private = format!("{token}/4821-tiger-piano");
    let mut app = host(120, 24).invite(private.clone());
    welcome(&mut app, "alice", None, &["alice"]);
    let notice = texts(&app)
        .into_iter()
        .find(|t| t.contains(&private))
        .unwrap();
    assert!(
        notice.contains("a private room") && !notice.contains("nc "),
        "{notice}"
    );
    // A joiner has none to give.
    let mut j = in_room(80, 24);
    type_str(&mut j, "/invite");
    assert!(press(&mut j, KeyCode::Enter).is_empty());
    assert!(
        texts(&j).last().unwrap().contains("ask the host"),
        "{:?}",
        texts(&j)
    );
}

#[test]
fn scrolling_to_the_oldest_line_counts_as_looking_away_too() {
    let mut app = in_room(80, 24);
    for i in 1..60 {
        msg(&mut app, i, "bob", &format!("line {i}"));
    }
    update(&mut app, key_with(KeyCode::Home, KeyModifiers::CONTROL), T0);
    msg(&mut app, 60, "bob", "came while you read the start");
    update(&mut app, key_with(KeyCode::End, KeyModifiers::CONTROL), T0);
    let t = texts(&app);
    assert!(t[t.len() - 2].contains(tchat::app::READ_MARKER), "{t:?}");
}

/// A line from `from` said on a clustered host whose log is away: its held copy
/// (numbered 0) or, with `id`, its numbered copy.
fn held(id: u64, from: &str, text: &str, key: &str) -> ServerMsg {
    ServerMsg::Msg {
        id,
        ts: T0 + 500 + id as i64,
        from: from.into(),
        text: text.into(),
        cid: None,
        held: Some(key.into()),
    }
}

#[test]
fn a_line_shown_held_is_grey_until_the_room_has_it_and_is_shown_once() {
    let mut app = in_room(80, 24);
    msg(&mut app, 1, "bob", "before");
    server(&mut app, held(0, "bob", "while away", "h1.7"));
    assert_eq!(last_text(&app), "while away");
    assert_eq!(last_kind(&app), theirs("bob", Delivery::Pending));
    msg(&mut app, 2, "carol", "from another host");
    // The log is back: the numbered copy is that line, now in the room.
    server(&mut app, held(3, "bob", "while away", "h1.7"));
    assert_eq!(
        texts(&app).iter().filter(|t| *t == "while away").count(),
        1,
        "{:?}",
        texts(&app)
    );
    let (_, line) = app
        .entries()
        .find(|(_, e)| e.text == "while away")
        .expect("the line");
    assert_eq!(line.kind, theirs("bob", Delivery::Delivered));
    assert_eq!(line.ts, T0 + 503, "at the room's time");
    // A numbered copy never shown held (on another host, or after /clear) is shown.
    server(&mut app, held(4, "dan", "from elsewhere", "h2.1"));
    assert_eq!(last_text(&app), "from elsewhere");
    assert_eq!(last_kind(&app), theirs("dan", Delivery::Delivered));
}

#[test]
fn a_held_line_from_someone_ignored_settles_nothing_else() {
    let mut app = in_room(80, 24);
    type_str(&mut app, "/ignore bob");
    press(&mut app, KeyCode::Enter);
    msg(&mut app, 1, "carol", "carol's line");
    server(&mut app, held(0, "bob", "hidden", "h1.1"));
    server(&mut app, held(2, "bob", "hidden again", "h1.1"));
    let shown = texts(&app);
    assert!(shown.contains(&"carol's line".to_owned()), "{shown:?}");
    assert!(!shown.iter().any(|t| t.contains("hidden")), "{shown:?}");
}

#[test]
fn a_held_me_is_grey_until_the_room_has_it() {
    let mut app = in_room(80, 24);
    let waves = |id: u64| ServerMsg::Me {
        id,
        ts: T0 + 900,
        from: "bob".into(),
        text: "waves".into(),
        cid: None,
        held: Some("h1.3".into()),
    };
    server(&mut app, waves(0));
    let held = Kind::Action {
        from: "bob".into(),
        own: false,
        held: true,
    };
    assert_eq!(last_kind(&app), held);
    server(&mut app, waves(5));
    assert_eq!(texts(&app).iter().filter(|t| *t == "waves").count(), 1);
    assert_eq!(
        last_kind(&app),
        Kind::Action {
            from: "bob".into(),
            own: false,
            held: false
        }
    );
}
