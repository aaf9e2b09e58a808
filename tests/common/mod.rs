//! Helpers shared by the test crates: a fresh `App`, keys, typing, reading a pipe.

// Each test crate uses its own subset of these.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::thread;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tchat::app::{App, Msg, Role, update};

/// 2024-01-01 12:01:00 UTC.
pub const T0: i64 = 1_704_110_460_000;

/// A joiner's screen, `w`×`h`, in UTC.
pub fn joiner(w: u16, h: u16) -> App {
    App::new(
        Role::Joiner {
            address: "10.0.0.2:7878".into(),
        },
        "alice".into(),
        w,
        h,
        0,
    )
}

/// A host's screen, `w`×`h`, in UTC.
pub fn host(w: u16, h: u16) -> App {
    App::new(
        Role::Host {
            addresses: vec!["192.168.1.5:7878".into(), "[fe80::1]:7878".into()],
        },
        "alice".into(),
        w,
        h,
        0,
    )
}

/// A key press with no modifiers.
pub fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// Type `s` one character at a time; typing alone never asks anything of the world.
pub fn type_str(app: &mut App, s: &str) {
    for c in s.chars() {
        let fx = update(app, key(KeyCode::Char(c)), T0);
        assert!(fx.is_empty(), "typing {c:?} gave {fx:?}");
    }
}

/// Read `r` on a thread, line by line (bytes kept, `\n` included), into a channel that
/// ends when `r` does.
pub fn lines_of(r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut r = BufReader::new(r);
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}
