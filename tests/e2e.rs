//! End-to-end tests: the real `tchat` binary in pseudo-terminals, typed at as a person
//! would, its screen read back through a terminal emulator (`vt100`).
//!
//! Every wait is a condition polled against the parsed screen with a deadline; a timeout
//! panics with the whole screen. Every process is killed when its guard drops, so a
//! failing test cleans up after itself. Only loopback addresses are used.

mod common;

use common::lines_of;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};
use unicode_width::UnicodeWidthStr;

const BIN: &str = env!("CARGO_BIN_EXE_tchat");

/// How long any one condition may take to come true.
const DEADLINE: Duration = Duration::from_secs(10);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(20);

const ENTER: &str = "\r";
const ESC: &str = "\x1b";
const CTRL_C: &str = "\x03";
const CTRL_Z: &str = "\x1a";
const BACKSPACE: &str = "\x7f";
const LEFT: &str = "\x1b[D";
const HOME: &str = "\x1b[H";
const END: &str = "\x1b[F";
const PAGE_UP: &str = "\x1b[5~";

/// The title of the input box, which tells that the full screen is up.
const BOX_TITLE: &str = "Enter sends · Esc leaves · PgUp/PgDn scroll";

/// The terminal's termios flags as raw bits: raw mode changes them (ICANON, ECHO, ISIG,
/// ICRNL, OPOST...), so leaving must put back exactly what was there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Modes {
    local: u64,
    input: u64,
    output: u64,
}

/// One `tchat` in a pseudo-terminal, with a terminal emulator reading its output.
struct Term {
    name: String,
    parser: Arc<Mutex<vt100::Parser>>,
    /// Every byte the program wrote, for what the emulator keeps no record of (the
    /// window titles it was given).
    raw: Arc<Mutex<Vec<u8>>>,
    /// Set by the reader thread once the terminal has no writer left (the child is gone
    /// and all it wrote has been parsed).
    eof: Arc<AtomicBool>,
    master: Box<dyn MasterPty + Send>,
    /// The keyboard; the reader thread answers the program's questions on it too.
    writer: Arc<Mutex<Box<dyn Write + Send>>>,
    child: Box<dyn Child + Send + Sync>,
    exited: Option<portable_pty::ExitStatus>,
    /// The terminal's modes before tchat started.
    modes_before: Option<Modes>,
}

impl Term {
    /// Start `tchat ARGS` in a `cols`×`rows` terminal.
    fn spawn(name: &str, args: &[&str], cols: u16, rows: u16) -> Term {
        Term::spawn_term(name, args, cols, rows, "xterm-256color")
    }

    /// [`Term::spawn`] with another `TERM`.
    fn spawn_term(name: &str, args: &[&str], cols: u16, rows: u16, term: &str) -> Term {
        Term::spawn_env(name, args, cols, rows, &[("TERM", term)])
    }

    /// [`Term::spawn`] with these environment variables set.
    fn spawn_env(name: &str, args: &[&str], cols: u16, rows: u16, env: &[(&str, &str)]) -> Term {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = CommandBuilder::new(BIN);
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env("LANG", "C.UTF-8");
        cmd.env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        // An empty config file: a developer's own settings must not change the test.
        cmd.env("TCHAT_CONFIG", "/dev/null");
        cmd.env("XDG_CONFIG_HOME", common::CONFIG_HOME);
        cmd.cwd(env!("CARGO_MANIFEST_DIR"));
        let modes_before = modes(&*pair.master);
        let child = pair.slave.spawn_command(cmd).expect("spawn tchat");
        // Only the child holds the slave now, so reads end when it does.
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let writer = Arc::new(Mutex::new(pair.master.take_writer().expect("pty writer")));
        let parser = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let eof = Arc::new(AtomicBool::new(false));
        {
            let parser = Arc::clone(&parser);
            let raw = Arc::clone(&raw);
            let eof = Arc::clone(&eof);
            let answer = Arc::clone(&writer);
            thread::Builder::new()
                .name(format!("pty-{name}"))
                .spawn(move || {
                    let mut buf = [0u8; 8192];
                    loop {
                        match reader.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                raw.lock().unwrap().extend_from_slice(&buf[..n]);
                                // As a terminal does, answer "where is the cursor?"
                                // (CSI 6n) with where the emulator put it, after
                                // drawing what came before the question.
                                let mut chunk = &buf[..n];
                                while let Some(at) = chunk.windows(4).position(|w| w == b"\x1b[6n")
                                {
                                    lock(&parser).process(&chunk[..at]);
                                    let (row, col) = lock(&parser).screen().cursor_position();
                                    let report = format!("\x1b[{};{}R", row + 1, col + 1);
                                    let mut w = answer.lock().unwrap();
                                    let _ = w.write_all(report.as_bytes()).and_then(|()| w.flush());
                                    chunk = &chunk[at + 4..];
                                }
                                lock(&parser).process(chunk);
                            }
                        }
                    }
                    eof.store(true, Ordering::SeqCst);
                })
                .expect("reader thread");
        }
        Term {
            name: name.to_owned(),
            parser,
            raw,
            eof,
            master: pair.master,
            writer,
            child,
            exited: None,
            modes_before,
        }
    }

    /// A host on loopback, a free port, in an 80×24 terminal; returns once its screen is
    /// up, with the port it got.
    fn host(name: &str) -> (Term, u16) {
        let host = Term::spawn(
            name,
            &[
                "--host",
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--name",
                name,
            ],
            80,
            24,
        );
        host.wait_for("the host's screen with its port", |s| {
            let status = last_row(s);
            s.contents().contains(BOX_TITLE)
                && (status.contains("connected") || status.contains("encrypted"))
                && port_in(&status).is_some()
        });
        let port = port_in(&last_row(&host.screen())).expect("port on the status line");
        (host, port)
    }

    /// A joiner of the room at `port`, 80×24; returns once it is in the room.
    fn join(name: &str, port: u16) -> Term {
        Term::join_sized(name, port, 80, 24)
    }

    fn join_sized(name: &str, port: u16, cols: u16, rows: u16) -> Term {
        let addr = format!("127.0.0.1:{port}");
        let t = Term::spawn(name, &["--join", &addr, "--name", name], cols, rows);
        let room = format!("room {addr}");
        t.wait_for("the joiner to be in the room", |s| {
            let status = last_row(s);
            let up = status.contains("connected") || status.contains("encrypted");
            status.contains(&room) && up && status.contains(name)
        });
        t
    }

    fn screen(&self) -> vt100::Screen {
        lock(&self.parser).screen().clone()
    }

    /// The screen as text, one line a row, numbered, with the cursor: for failures.
    fn dump(&self) -> String {
        let p = lock(&self.parser);
        dump_screen(&self.name, p.screen())
    }

    /// Poll until `cond` holds on the parsed screen; panic with the screen if it does not
    /// within the deadline.
    fn wait_for(&self, what: &str, cond: impl FnMut(&vt100::Screen) -> bool) {
        self.wait_for_within(what, DEADLINE, cond);
    }

    fn wait_for_within(
        &self,
        what: &str,
        within: Duration,
        mut cond: impl FnMut(&vt100::Screen) -> bool,
    ) {
        let deadline = Instant::now() + within;
        loop {
            if cond(lock(&self.parser).screen()) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {within:?} waiting on {}'s screen for {what}\n{}",
                    self.name,
                    self.dump()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Wait until `needle` shows anywhere on the screen.
    fn wait_text(&self, needle: &str) {
        self.wait_for(&format!("{needle:?}"), |s| s.contents().contains(needle));
    }

    /// Send bytes as typed keys.
    fn send(&mut self, keys: &str) {
        let mut w = self.writer.lock().unwrap();
        w.write_all(keys.as_bytes())
            .and_then(|()| w.flush())
            .unwrap_or_else(|e| panic!("typing at {}: {e}", self.name));
    }

    /// Type a string one character at a time, as a person would.
    fn type_slowly(&mut self, text: &str) {
        let mut b = [0u8; 4];
        for c in text.chars() {
            self.send(c.encode_utf8(&mut b));
        }
    }

    /// Resize the terminal: the emulator first, then the pty (which signals tchat), so
    /// that everything drawn for the new size is parsed at the new size.
    fn resize(&mut self, cols: u16, rows: u16) {
        let mut p = lock(&self.parser);
        p.screen_mut().set_size(rows, cols);
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resize pty");
    }

    /// Wait for the program to end; returns its exit code, and then waits until all it
    /// wrote has been parsed.
    fn wait_exit(&mut self) -> u32 {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                Ok(None) => panic!(
                    "{} did not exit within {DEADLINE:?}\n{}",
                    self.name,
                    self.dump()
                ),
                Err(e) => panic!("waiting for {}: {e}", self.name),
            }
        };
        self.exited = Some(status.clone());
        while !self.eof.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline + DEADLINE,
                "{}'s terminal output never ended",
                self.name
            );
            thread::sleep(POLL);
        }
        status.exit_code()
    }

    /// Assert that the program left the terminal as it found it.
    fn assert_restored(&self) {
        let s = self.screen();
        let dump = dump_screen(&self.name, &s);
        assert!(
            !s.alternate_screen(),
            "still on the alternate screen\n{dump}"
        );
        assert!(!s.hide_cursor(), "the cursor is still hidden\n{dump}");
        assert!(!s.bracketed_paste(), "bracketed paste was left on\n{dump}");
        assert_eq!(
            s.mouse_protocol_mode(),
            vt100::MouseProtocolMode::None,
            "mouse reporting was left on\n{dump}"
        );
        if let (Some(before), Some(after)) = (self.modes_before, modes(&*self.master)) {
            assert_eq!(
                before, after,
                "the terminal's modes (raw mode) were not restored"
            );
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // SIGHUP, then SIGKILL after a short grace; then reap.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn lock(p: &Mutex<vt100::Parser>) -> MutexGuard<'_, vt100::Parser> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

fn modes(master: &dyn MasterPty) -> Option<Modes> {
    let t = master.get_termios()?;
    Some(Modes {
        local: u64::from(t.local_flags.bits()),
        input: u64::from(t.input_flags.bits()),
        output: u64::from(t.output_flags.bits()),
    })
}

fn dump_screen(name: &str, s: &vt100::Screen) -> String {
    let (rows, cols) = s.size();
    let (cr, cc) = s.cursor_position();
    let mut out = format!(
        "--- {name}: {cols}x{rows}, cursor at row {cr} col {cc}{}{} ---\n",
        if s.alternate_screen() {
            ", alternate screen"
        } else {
            ""
        },
        if s.hide_cursor() {
            ", cursor hidden"
        } else {
            ""
        },
    );
    for (i, row) in s.rows(0, cols).enumerate() {
        out.push_str(&format!("{i:2}|{row}\n"));
    }
    out.push_str("---");
    out
}

/// The rows of the screen as text, trailing blanks removed.
fn rows(s: &vt100::Screen) -> Vec<String> {
    let cols = s.size().1;
    s.rows(0, cols).map(|r| r.trim_end().to_owned()).collect()
}

fn last_row(s: &vt100::Screen) -> String {
    rows(s).pop().unwrap_or_default()
}

/// The port in `127.0.0.1:PORT`.
fn port_in(text: &str) -> Option<u16> {
    let at = text.find("127.0.0.1:")? + "127.0.0.1:".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|p| *p != 0)
}

/// The text row of a one-line input box: the row above the box's bottom border, which
/// is the row above the status line.
fn input_row(s: &vt100::Screen) -> u16 {
    s.size().0 - 3
}

/// The column where the input box's text starts: after the border and one column of
/// padding.
const TEXT_COL: u16 = 2;

/// What the one-line input box holds, between its borders, trailing blanks removed.
fn input_text(s: &vt100::Screen) -> String {
    let row = rows(s)[usize::from(input_row(s))].clone();
    let inner = row.strip_prefix("│ ").unwrap_or(&row);
    inner.trim_end().trim_end_matches('│').trim_end().to_owned()
}

/// The index of the first row containing `needle`.
fn find_row(s: &vt100::Screen, needle: &str) -> Option<usize> {
    rows(s).iter().position(|r| r.contains(needle))
}

/// A message as its rows show it: starting at the row where `label` (e.g. `alice: `)
/// stands followed by text, take the text after the label, then every following row
/// indented by exactly `indent` columns. Returns the rows' texts.
fn message_rows(s: &vt100::Screen, label: &str, starts_with: &str) -> Vec<String> {
    let all = rows(s);
    let needle = format!("{label}{starts_with}");
    let Some(first) = all.iter().position(|r| r.contains(&needle)) else {
        return Vec::new();
    };
    let head = &all[first];
    let at = head.find(label).expect("label") + label.len();
    let indent = UnicodeWidthStr::width(&head[..at]);
    let mut out = vec![head[at..].to_owned()];
    let pad = " ".repeat(indent);
    for r in &all[first + 1..] {
        match r.strip_prefix(&pad) {
            Some(rest) if !rest.is_empty() && !rest.starts_with(' ') => out.push(rest.to_owned()),
            _ => break,
        }
    }
    out
}

// ---------------------------------------------------------------------------------------

#[test]
fn host_and_two_joiners_see_joins_and_wide_text_wraps_whole() {
    let (host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    host.wait_text("* alice joined");
    let bob = Term::join("bob", port);
    for t in [&host, &alice] {
        t.wait_text("* bob joined");
    }
    for t in [&host, &alice, &bob] {
        t.wait_for("3 here on the status line", |s| {
            last_row(s).contains("3 here")
        });
    }
    // Everyone's notice has the HH:MM time in front.
    let s = host.screen();
    let row = &rows(&s)[find_row(&s, "* alice joined").expect("join notice")];
    let time = &row[..5];
    assert!(
        time.as_bytes()[2] == b':' && time.chars().filter(char::is_ascii_digit).count() == 4,
        "no HH:MM before the notice: {row:?}"
    );

    let hello = "你好 世界 🎉";
    alice.send(hello);
    alice.wait_for("the line in alice's input box", |s| input_text(s) == hello);
    alice.send(ENTER);
    for t in [&host, &bob, &alice] {
        t.wait_text(&format!("alice: {hello}"));
    }
    alice.wait_for("alice's input box to be empty again", |s| {
        input_text(s).is_empty()
    });

    // 200 columns of two-column characters, no spaces: the pane's text column after
    // `HH:MM alice: ` is 67 columns, an odd number, so a wrapper counting characters or
    // bytes would split one.
    let long: String = "一二三四五六七八九十".repeat(10);
    alice.send(&long);
    alice.send(ENTER);
    for t in [&host, &bob] {
        t.wait_for("the long line, all of it", |s| {
            message_rows(s, "alice: ", "一二三").concat() == long
        });
        let s = t.screen();
        let cols = usize::from(s.size().1);
        let got = message_rows(&s, "alice: ", "一二三");
        assert!(
            got.len() >= 3,
            "200 columns should take 3 or more rows of 67\n{}",
            t.dump()
        );
        for r in rows(&s) {
            assert!(
                UnicodeWidthStr::width(r.as_str()) <= cols,
                "a row wider than the terminal: {r:?}\n{}",
                t.dump()
            );
        }
        // No wide character may start in the last column (it would be cut in half).
        let (nrows, ncols) = s.size();
        for row in 0..nrows {
            let cell = s.cell(row, ncols - 1).expect("cell");
            assert!(
                !cell.is_wide(),
                "a wide character cut at the right edge on row {row}\n{}",
                t.dump()
            );
        }
        // The continuation rows stand under the text, not under the time.
        let first = find_row(&s, "alice: 一二三").expect("first row");
        let second = &rows(&s)[first + 1];
        let indent = second.len() - second.trim_start().len();
        assert_eq!(
            indent,
            UnicodeWidthStr::width("00:00 alice: "),
            "wrapped row not indented under the text\n{}",
            t.dump()
        );
    }
}

#[test]
fn typing_is_not_disturbed_by_arriving_messages() {
    let (host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    let mut bob = Term::join("bob", port);
    alice.wait_text("* bob joined");

    let half = "half a line, 半分";
    bob.type_slowly(half);
    bob.wait_for("bob's half line in his box", |s| input_text(s) == half);

    alice.send("hello from alice");
    alice.send(ENTER);
    // The cursor is the last thing a frame moves: wait for it too.
    let col = TEXT_COL + UnicodeWidthStr::width(half) as u16;
    bob.wait_for(
        "alice's message, and the cursor right after bob's text",
        |s| {
            s.contents().contains("alice: hello from alice")
                && s.cursor_position() == (input_row(s), col)
        },
    );
    assert_eq!(
        input_text(&bob.screen()),
        half,
        "bob's input changed\n{}",
        bob.dump()
    );

    // More messages arrive while bob types the rest, key by key.
    let rest = " and the rest 完了";
    let mut last = String::new();
    for (i, c) in rest.chars().enumerate() {
        if i % 4 == 0 {
            last = format!("alice: interruption {i}");
            alice.send(&format!("interruption {i}{ENTER}"));
        }
        bob.send(&c.to_string());
    }
    let whole = format!("{half}{rest}");
    let col = TEXT_COL + UnicodeWidthStr::width(whole.as_str()) as u16;
    bob.wait_for(
        "the last interruption, bob's whole line in his box and the cursor after it",
        |s| {
            s.contents().contains(&last)
                && input_text(s) == whole
                && s.cursor_position() == (input_row(s), col)
        },
    );
    bob.send(ENTER);
    for t in [&alice, &host] {
        t.wait_text(&format!("bob: {whole}"));
    }
    bob.wait_for("bob's box to be empty and his cursor home", |s| {
        input_text(s).is_empty() && s.cursor_position() == (input_row(s), TEXT_COL)
    });
}

#[test]
fn cursor_stands_after_wide_characters() {
    let (mut host, _port) = Term::host("hostie");
    host.wait_for("the cursor in the empty box", |s| {
        s.cursor_position() == (input_row(s), TEXT_COL)
    });
    let row = input_row(&host.screen());
    // Each step: keys, what the box then holds, where the cursor then stands.
    let steps: [(&str, &str, u16); 7] = [
        ("你好", "你好", TEXT_COL + 4),
        (LEFT, "你好", TEXT_COL + 2),
        (HOME, "你好", TEXT_COL),
        (END, "你好", TEXT_COL + 4),
        ("a", "你好a", TEXT_COL + 5),
        (BACKSPACE, "你好", TEXT_COL + 4),
        (BACKSPACE, "你", TEXT_COL + 2),
    ];
    for (keys, text, col) in steps {
        host.send(keys);
        host.wait_for(
            &format!("after {keys:?}: box {text:?}, cursor at column {col}"),
            |s| input_text(s) == text && s.cursor_position() == (row, col),
        );
    }
    host.send(BACKSPACE);
    host.wait_for("an empty box, cursor at the start", |s| {
        input_text(s).is_empty() && s.cursor_position() == (row, TEXT_COL)
    });
}

#[test]
fn a_paste_goes_into_the_box_and_is_sent_on_enter() {
    let (host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    host.wait_text("* alice joined");
    // A terminal sends a pasted line break as CR, which typed would be Enter.
    alice.send("\x1b[200~first pasted line\rsecond pasted line\x1b[201~");
    let col = TEXT_COL + "second pasted line".len() as u16;
    alice.wait_for(
        "both pasted lines in the input box, the cursor after them",
        |s| {
            let all = rows(s);
            let n = all.len();
            all[n - 4].contains("│ first pasted line")
                && all[n - 3].contains("│ second pasted line")
                && s.cursor_position() == (s.size().0 - 3, col)
        },
    );
    assert!(
        !alice.screen().contents().contains("alice: first"),
        "the paste was sent as keystrokes\n{}",
        alice.dump()
    );
    alice.send(ENTER);
    for t in [&host, &alice] {
        t.wait_for("the pasted message, both lines", |s| {
            message_rows(s, "alice: ", "first") == ["first pasted line", "second pasted line"]
        });
    }
}

#[test]
fn resize_relayouts_and_rewraps() {
    let (mut host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    host.wait_text("* alice joined");
    let words: Vec<String> = (1..=24).map(|i| format!("word{i:02}")).collect();
    let text = words.join(" ");
    host.send(&text);
    host.send(ENTER);
    alice.wait_for("the long line", |s| {
        message_rows(s, "hostie: ", "word01").join(" ") == text
    });
    let rows_at_80 = message_rows(&alice.screen(), "hostie: ", "word01").len();

    for (cols, nrows) in [(60u16, 16u16), (100, 30)] {
        alice.resize(cols, nrows);
        alice.wait_for(
            &format!(
                "the status line on row {} and the text rewrapped",
                nrows - 1
            ),
            |s| {
                let all = rows(s);
                let last = &all[usize::from(nrows) - 1];
                let got = message_rows(s, "hostie: ", "word01");
                last.contains(&format!("room 127.0.0.1:{port}"))
                    && last.contains("alice")
                    && all[usize::from(nrows) - 4].starts_with('╭')
                    && all[usize::from(nrows) - 2].starts_with('╰')
                    && got.join(" ") == text
                    && got.iter().all(|r| {
                        UnicodeWidthStr::width(r.as_str()) + "00:00 hostie: ".len()
                            <= usize::from(cols)
                    })
            },
        );
        let s = alice.screen();
        let got = message_rows(&s, "hostie: ", "word01");
        if cols < 80 {
            assert!(
                got.len() > rows_at_80,
                "narrower, yet not more rows ({} at 80 columns)\n{}",
                rows_at_80,
                alice.dump()
            );
        } else {
            assert!(
                got.len() <= rows_at_80,
                "wider, yet more rows ({} at 80 columns)\n{}",
                rows_at_80,
                alice.dump()
            );
        }
        // The box spans the new width.
        let all = rows(&s);
        let top = &all[usize::from(nrows) - 4];
        assert_eq!(
            UnicodeWidthStr::width(top.as_str()),
            usize::from(cols),
            "the input box does not span the terminal\n{}",
            alice.dump()
        );
    }
    // The room still works at the new size.
    alice.send("still here");
    alice.send(ENTER);
    host.wait_text("alice: still here");
}

#[test]
fn esc_leaves_and_restores_the_terminal() {
    let (host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    host.wait_for("2 here", |s| last_row(s).contains("2 here"));
    alice.send(ESC);
    assert_eq!(alice.wait_exit(), 0, "Esc: exit status\n{}", alice.dump());
    alice.assert_restored();
    host.wait_text("* alice left");
    host.wait_for("1 here", |s| last_row(s).contains("1 here"));
}

#[test]
fn ctrl_c_leaves_with_status_0() {
    let (mut host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    host.wait_text("* alice joined");
    alice.send("some half-typed text");
    alice.wait_for("the text in the box", |s| {
        input_text(s) == "some half-typed text"
    });
    alice.send(CTRL_C);
    assert_eq!(
        alice.wait_exit(),
        0,
        "Ctrl-C: exit status\n{}",
        alice.dump()
    );
    alice.assert_restored();
    host.wait_text("* alice left");
    host.send(CTRL_C);
    assert_eq!(host.wait_exit(), 0, "Ctrl-C: exit status\n{}", host.dump());
    host.assert_restored();
}

impl Term {
    fn pid(&self) -> u32 {
        self.child.process_id().expect("the child's pid")
    }

    fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig}");
    }

    /// The window title the program set last (OSC 0 or 2), if any.
    fn title(&self) -> Option<String> {
        let raw = self.raw.lock().unwrap();
        let text = String::from_utf8_lossy(&raw);
        let mut last = None;
        for start in ["\x1b]0;", "\x1b]2;"] {
            for (at, _) in text.match_indices(start) {
                let rest = &text[at + start.len()..];
                if let Some(end) = rest.find(['\x07', '\x1b']) {
                    let candidate = (at, rest[..end].to_owned());
                    if last.as_ref().is_none_or(|(a, _)| *a < at) {
                        last = Some(candidate);
                    }
                }
            }
        }
        last.map(|(_, t)| t)
    }

    /// Wait (with the deadline) until the window title is `want`.
    fn wait_title(&self, want: &str) {
        let deadline = Instant::now() + DEADLINE;
        while self.title().as_deref() != Some(want) {
            assert!(
                Instant::now() < deadline,
                "{}: title {:?}, not {want:?}\n{}",
                self.name,
                self.title(),
                self.dump()
            );
            thread::sleep(POLL);
        }
    }

    /// The terminal reports that the window lost focus (CSI O); returns once the
    /// program has taken that in: a key typed after it shows in the box (keys are read
    /// in order), and is taken out again.
    fn lose_focus(&mut self) {
        self.wait_for("the screen up", |s| last_row(s).contains("here"));
        self.send("\x1b[O");
        self.send("§");
        self.wait_for("the focus report read", |s| input_text(s).ends_with('§'));
        self.send(BACKSPACE);
        self.wait_for("the box as it was", |s| !input_text(s).ends_with('§'));
    }

    /// Wait until the process is (or is no longer) stopped.
    fn wait_stopped(&self, stopped: bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
            if (state == Some('T')) == stopped {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: stopped should be {stopped}, state {state:?}\n{}",
                self.name,
                self.dump()
            );
            thread::sleep(POLL);
        }
    }
}

#[test]
fn sigterm_and_sighup_leave_with_the_terminal_restored_and_a_goodbye() {
    let (host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    host.wait_text("* alice joined");
    alice.signal("TERM");
    assert_eq!(
        alice.wait_exit(),
        0,
        "SIGTERM: exit status\n{}",
        alice.dump()
    );
    alice.assert_restored();
    host.wait_text("* alice left");
    let mut bob = Term::join("bob", port);
    host.wait_text("* bob joined");
    bob.signal("HUP");
    bob.wait_exit();
    host.wait_text("* bob left");
    // Both said goodbye: neither was lost without one.
    let screen = host.dump();
    assert!(!screen.contains("without a goodbye"), "{screen}");
    assert!(!screen.contains("connection lost"), "{screen}");
}

#[test]
fn ctrl_z_suspends_and_continuing_redraws_the_screen() {
    let (host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    host.wait_text("* alice joined");
    alice.send("a draft");
    alice.wait_for("the draft in the box", |s| input_text(s) == "a draft");
    alice.send(CTRL_Z);
    alice.wait_stopped(true);
    alice.wait_for("the main screen back", |s| !s.alternate_screen());
    alice.assert_restored();
    // The shell's `fg` continues it: the screen comes back whole, draft and all.
    alice.signal("CONT");
    alice.wait_stopped(false);
    alice.wait_for("the screen redrawn", |s| {
        s.alternate_screen() && input_text(s) == "a draft" && last_row(s).contains("here")
    });
    // And it is live: typing still goes into the box.
    alice.send(" and more");
    alice.wait_for("typing after fg", |s| input_text(s) == "a draft and more");
    // The same when something other than Ctrl-Z stops it (kill -TSTP, then fg).
    alice.signal("TSTP");
    alice.wait_stopped(true);
    alice.wait_for("the main screen back", |s| !s.alternate_screen());
    alice.signal("CONT");
    alice.wait_for("the screen redrawn", |s| {
        s.alternate_screen() && input_text(s) == "a draft and more"
    });
    // Ctrl-L repaints without asking the terminal anything (this one never answers a
    // cursor-position query; asking used to end the program).
    alice.send("\x0c");
    alice.send("!");
    alice.wait_for("typing after Ctrl-L", |s| {
        input_text(s) == "a draft and more!"
    });
    alice.send(ESC);
    assert_eq!(alice.wait_exit(), 0, "{}", alice.dump());
    alice.assert_restored();
}

/// More than 1 KiB typed at once (a burst of keys, not a paste: a typing tool, a slow
/// link that delivers keystrokes together) all reaches the box without another key.
#[test]
fn a_burst_of_typed_keys_over_1_kib_arrives_whole() {
    let (_host, port) = Term::host("hostie");
    let mut alice = Term::join_sized("alice", port, 120, 40);
    alice.wait_for("alice in", |s| last_row(s).contains("here"));
    let mut burst: String = (0..3000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    burst.push_str("THE-END");
    alice.send(&burst);
    alice.send(ENTER);
    // Sent (the box is empty again) and shown, to its last key.
    alice.wait_for("the whole burst sent", |s| {
        input_text(s).is_empty() && rows(s).iter().any(|r| r.contains("THE-END"))
    });
}

/// The mouse stays with the terminal (select, copy) unless the config takes it.
#[test]
fn the_mouse_is_left_to_the_terminal_unless_the_config_takes_it() {
    let (_host, port) = Term::host("hostie");
    let alice = Term::join("alice", port);
    alice.wait_for("alice in", |s| last_row(s).contains("here"));
    assert_eq!(
        alice.screen().mouse_protocol_mode(),
        vt100::MouseProtocolMode::None,
        "the mouse was taken\n{}",
        alice.dump()
    );
    let dir = std::env::temp_dir().join(format!("tchat-e2e-mouse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, "mouse = true\n").unwrap();
    let addr = format!("127.0.0.1:{port}");
    let config_arg = config.display().to_string();
    let bob = Term::spawn(
        "bob",
        &["--config", &config_arg, "--join", &addr, "--name", "bob"],
        80,
        24,
    );
    bob.wait_for("bob in", |s| last_row(s).contains("here"));
    assert_ne!(
        bob.screen().mouse_protocol_mode(),
        vt100::MouseProtocolMode::None,
        "mouse = true takes it\n{}",
        bob.dump()
    );
    drop(bob);
    let _ = std::fs::remove_dir_all(&dir);
}

/// NO_COLOR takes colour away, not reverse video or bold: the status line stays a bar.
#[test]
fn no_color_keeps_reverse_video_and_bold() {
    let (host, port) = Term::host("hostie");
    let addr = format!("127.0.0.1:{port}");
    let alice = Term::spawn_env(
        "alice",
        &["--join", &addr, "--name", "alice"],
        80,
        24,
        &[("NO_COLOR", "1")],
    );
    alice.wait_for("alice in", |s| last_row(s).contains("here"));
    host.wait_text("* alice joined");
    let mut host = host;
    host.send("hello there\r");
    alice.wait_text("hostie: hello there");
    let s = alice.screen();
    let status = s.size().0 - 1;
    for col in 0..20 {
        let cell = s.cell(status, col).unwrap();
        assert!(
            cell.inverse(),
            "status line cell {col} is not reversed\n{}",
            alice.dump()
        );
        assert_eq!(cell.fgcolor(), vt100::Color::Default);
        assert_eq!(cell.bgcolor(), vt100::Color::Default);
    }
    let row = find_row(&s, "hostie: hello there").unwrap() as u16;
    let col = rows(&s)[row as usize].find("hostie").unwrap() as u16;
    let name = s.cell(row, col).unwrap();
    assert!(name.bold(), "the name is bold\n{}", alice.dump());
    assert_eq!(name.fgcolor(), vt100::Color::Default, "and has no colour");
}

/// The window title counts the lines naming you that came while the terminal had no
/// focus; it is given back on leaving.
#[test]
fn the_title_counts_unread_mentions_and_is_given_back() {
    let (host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    host.wait_text("* alice joined");
    alice.wait_title("tchat");
    // The terminal reports that its window lost focus (CSI O), then gained it (CSI I).
    alice.lose_focus();
    let mut host = host;
    host.send("alice: the build is green\r");
    alice.wait_text("the build is green");
    alice.wait_title("(1) tchat");
    alice.send("\x1b[I");
    alice.wait_title("tchat");
    alice.send(ESC);
    assert_eq!(alice.wait_exit(), 0, "{}", alice.dump());
    alice.assert_restored();
    // The title it found was saved on entering and given back on leaving.
    let raw = String::from_utf8_lossy(&alice.raw.lock().unwrap()).into_owned();
    let (push, pop) = (raw.find("\x1b[22;0t"), raw.rfind("\x1b[23;0t"));
    assert!(
        matches!((push, pop), (Some(a), Some(b)) if a < b),
        "title saved and restored"
    );
}

/// With `notify = "osc777"`, a mention while the window has no focus asks the terminal
/// for a desktop notification.
#[test]
fn a_mention_while_unfocused_asks_the_terminal_to_notify() {
    let (host, port) = Term::host("hostie");
    let dir = std::env::temp_dir().join(format!("tchat-e2e-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, "notify = \"osc777\"\n").unwrap();
    let (addr, config_arg) = (format!("127.0.0.1:{port}"), config.display().to_string());
    let mut alice = Term::spawn(
        "alice",
        &["--config", &config_arg, "--join", &addr, "--name", "alice"],
        80,
        24,
    );
    host.wait_text("* alice joined");
    alice.lose_focus();
    let mut host = host;
    host.send("alice: the build; is green\r");
    alice.wait_text("the build; is green");
    let want = "\x1b]777;notify;tchat: hostie;alice: the build, is green\x07";
    let deadline = Instant::now() + DEADLINE;
    while !String::from_utf8_lossy(&alice.raw.lock().unwrap()).contains(want) {
        assert!(
            Instant::now() < deadline,
            "no notification\n{}",
            alice.dump()
        );
        thread::sleep(POLL);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A terminal that cannot place a cursor gets line mode, not a full screen.
#[test]
fn term_dumb_gets_line_mode() {
    let (host, port) = Term::host("hostie");
    let addr = format!("127.0.0.1:{port}");
    let mut dumb = Term::spawn_term("dumb", &["--join", &addr, "--name", "dumb"], 80, 24, "dumb");
    dumb.wait_text("*** you are dumb.");
    assert!(!dumb.screen().alternate_screen(), "{}", dumb.dump());
    dumb.send("hello from a dumb terminal\r");
    host.wait_text("dumb: hello from a dumb terminal");
    dumb.send("exit\r");
    assert_eq!(dumb.wait_exit(), 0, "{}", dumb.dump());
}

#[test]
fn a_host_with_people_in_its_room_is_not_suspended_but_told_why() {
    let (host, port) = Term::host("hostie");
    let _alice = Term::join("alice", port);
    host.wait_text("* alice joined");
    let mut host = host;
    host.send(CTRL_Z);
    host.wait_text("not suspended");
    host.wait_stopped(false);
    assert!(host.screen().alternate_screen());
}

#[test]
fn when_the_host_leaves_joiners_are_told_at_once() {
    let (mut host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    host.wait_text("* alice joined");
    // With someone in its room, the host is asked first; a second Esc closes it.
    host.send(ESC);
    host.wait_text("Esc again closes the room for the 1 person in it");
    host.send(ESC);
    assert_eq!(
        host.wait_exit(),
        0,
        "host Esc: exit status\n{}",
        host.dump()
    );
    host.assert_restored();
    // "At once": well under the general deadline. The joiner is told why (the room's
    // goodbye, not just a dropped connection) and waits for the host to come back.
    alice.wait_for_within(
        "the line `the host left; the room is closed`",
        Duration::from_secs(3),
        |s| s.contents().contains("the host left; the room is closed"),
    );
    alice.wait_for_within(
        "`offline` on the status line",
        Duration::from_secs(3),
        |s| last_row(s).contains("offline · retry in") || last_row(s).contains("reconnecting"),
    );
    assert!(alice.screen().contents().contains("will rejoin by itself"));
    alice.send(ESC);
    assert_eq!(alice.wait_exit(), 0, "Esc: exit status\n{}", alice.dump());
    alice.assert_restored();
}

#[test]
fn exit_typed_alone_leaves() {
    let (host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    host.wait_text("* alice joined");
    alice.send("exit");
    alice.wait_for("`exit` in the box", |s| input_text(s) == "exit");
    alice.send(ENTER);
    assert_eq!(alice.wait_exit(), 0, "exit: exit status\n{}", alice.dump());
    alice.assert_restored();
    host.wait_text("* alice left");
    let s = host.screen();
    assert!(
        !s.contents().contains("alice: exit"),
        "`exit` was sent as a message\n{}",
        host.dump()
    );
}

#[test]
fn new_messages_while_scrolled_back_are_marked() {
    let (mut host, port) = Term::host("hostie");
    // A short terminal: an 8-row pane, so a few lines fill more than a page.
    let mut alice = Term::join_sized("alice", port, 80, 12);
    host.wait_text("* alice joined");
    for i in 1..=12 {
        host.send(&format!("line {i:02}{ENTER}"));
    }
    alice.wait_text("hostie: line 12");
    alice.send(PAGE_UP);
    alice.wait_for("the view scrolled back", |s| {
        !s.contents().contains("hostie: line 12") && s.contents().contains("scrolled back")
    });
    let before = rows(&alice.screen());
    host.send(&format!("arrived while away{ENTER}"));
    alice.wait_for("the new-message marker", |s| {
        s.contents().contains("new message")
    });
    let s = alice.screen();
    assert!(
        !s.contents().contains("arrived while away"),
        "the view moved to a new message while scrolled back\n{}",
        alice.dump()
    );
    // The rows above the marker did not move.
    let pane = usize::from(input_row(&s)) - 2;
    let marker = rows(&s)[pane].clone();
    assert!(
        marker.contains("new message"),
        "marker not at the bottom of the pane\n{}",
        alice.dump()
    );
    // The marker's row shows the marker alone, not leftovers of the message under it.
    assert_eq!(
        marker.trim(),
        "↓ 1 new message below · End returns to live",
        "the marker row is not clean\n{}",
        alice.dump()
    );
    assert_eq!(
        rows(&s)[..pane],
        before[..pane],
        "the held view moved\n{}",
        alice.dump()
    );
    alice.send(END);
    alice.wait_for("live again", |s| {
        s.contents().contains("hostie: arrived while away") && !s.contents().contains("new message")
    });
}

// ---------------------------------------------------------------------------------------
// Line mode, through pipes.

/// A child process killed and reaped on drop.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Proc {
    fn wait_exit(&mut self, what: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.0.try_wait().expect("try_wait") {
                Some(status) => return status,
                None if Instant::now() < deadline => thread::sleep(POLL),
                None => panic!("{what} did not exit within {DEADLINE:?}"),
            }
        }
    }
}

/// Receive lines (appending them to `seen`) until one satisfies `pred`.
fn wait_line(
    rx: &mpsc::Receiver<Vec<u8>>,
    seen: &mut Vec<Vec<u8>>,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let text = String::from_utf8_lossy(&line).into_owned();
                seen.push(line);
                if pred(&text) {
                    return text;
                }
            }
            Err(_) => panic!(
                "no line with {what} within {DEADLINE:?}; got: {:?}",
                seen.iter()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .collect::<Vec<_>>()
            ),
        }
    }
}

/// A host in line mode on loopback, its stdout read line by line; returns it with its
/// port.
fn plain_host() -> (Proc, mpsc::Receiver<Vec<u8>>, u16) {
    let mut host = Proc(
        common::isolated(BIN)
            .args([
                "--host",
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--plain",
                "--name",
                "h",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn host"),
    );
    let out = lines_of(host.0.stdout.take().expect("stdout"));
    let err = lines_of(host.0.stderr.take().expect("stderr"));
    let hosting = wait_line(&err, &mut Vec::new(), "the room's address", |l| {
        l.starts_with("tchat: hosting a room at ") && port_in(l).is_some()
    });
    let port = port_in(&hosting).expect("port");
    (host, out, port)
}

/// `tchat --join` with pipes for stdin, stdout and stderr; `input` is written to its
/// stdin, which is then closed.
fn plain_joiner(name: &str, port: u16, input: &[u8]) -> Proc {
    let mut p = Proc(
        common::isolated(BIN)
            .args(["--join", &format!("127.0.0.1:{port}"), "--name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn joiner"),
    );
    let mut stdin = p.0.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write to joiner");
    p
}

#[test]
fn line_mode_works_through_pipes() {
    let (mut host, host_out, port) = plain_host();
    let mut bot = plain_joiner("bot", port, b"hi\n");
    let bot_out = lines_of(bot.0.stdout.take().expect("stdout"));
    let bot_err = lines_of(bot.0.stderr.take().expect("stderr"));
    let mut host_seen = Vec::new();
    let bot_said = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_line(&host_out, &mut host_seen, "`bot: hi`", |l| {
            l.trim_end() == "bot: hi"
        })
    }));
    if bot_said.is_err() {
        let said: Vec<String> = bot_err
            .try_iter()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .collect();
        panic!("the host never showed the bot's line; the bot's stderr: {said:?}");
    }
    let status = bot.wait_exit("the bot");
    let bot_stderr: Vec<String> = bot_err
        .try_iter()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .collect();
    assert!(
        status.success(),
        "bot exit status {status:?}, stderr {bot_stderr:?}"
    );
    wait_line(&host_out, &mut host_seen, "the bot leaving", |l| {
        l.contains("bot left")
    });

    // End the host by ending its stdin.
    drop(host.0.stdin.take());
    let status = host.wait_exit("the host");
    assert!(status.success(), "host exit status {status:?}");

    let bot_seen: Vec<Vec<u8>> = bot_out.iter().collect();
    host_seen.extend(host_out.iter());
    for (who, lines) in [("host", &host_seen), ("bot", &bot_seen)] {
        for l in lines {
            assert!(
                !l.contains(&0x1b),
                "an ESC byte in the {who}'s stdout: {:?}",
                String::from_utf8_lossy(l)
            );
        }
    }
}

/// Scripts that say one line and end at once (`echo hi | tchat --join ...`), many at the
/// same time: every line reaches the room, whatever else arrives while they leave.
#[test]
fn line_mode_bots_that_leave_at_once_lose_nothing() {
    const BOTS: usize = 12;
    let (_host, host_out, port) = plain_host();
    let mut bots: Vec<Proc> = (0..BOTS)
        .map(|i| {
            plain_joiner(
                &format!("bot{i}"),
                port,
                format!("hi from {i}\n").as_bytes(),
            )
        })
        .collect();
    for (i, bot) in bots.iter_mut().enumerate() {
        let status = bot.wait_exit(&format!("bot{i}"));
        assert!(status.success(), "bot{i} exit status {status:?}");
    }
    let mut want: std::collections::BTreeSet<String> =
        (0..BOTS).map(|i| format!("bot{i}: hi from {i}")).collect();
    let mut seen = Vec::new();
    // Every bot has left by now: its line has long been in the room.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !want.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match host_out.recv_timeout(left) {
            Ok(line) => {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                want.remove(&text);
                seen.push(text);
            }
            Err(_) => panic!("lines never reached the room: {want:?}\nthe host saw: {seen:#?}"),
        }
    }
}

#[test]
fn commands_tab_and_mentions_as_a_person_uses_them() {
    let (mut host, port) = Term::host("hostie");
    let mut alice = Term::join("alice", port);
    host.wait_text("* alice joined");
    // Tab completes a name at the start of the line, addressed IRC-style.
    alice.type_slowly("ho");
    alice.send("\t");
    alice.wait_for("the completed name", |s| input_text(s) == "hostie:");
    alice.type_slowly("/me is here");
    alice.wait_for("the text typed after it", |s| {
        input_text(s) == "hostie: /me is here"
    });
    // Not a command when it is not at the start: a plain message.
    alice.send(ENTER);
    host.wait_text("alice: hostie: /me is here");
    // It named the host: highlighted there, with the time marked.
    let s = host.screen();
    let row = find_row(&s, "alice: hostie:").expect("the line") as u16;
    assert_eq!(
        s.cell(row, 0).map(vt100::Cell::bgcolor),
        Some(vt100::Color::Idx(3)),
        "the time of a line that names you is marked\n{}",
        host.dump()
    );
    // /me, /msg and /who from the screen.
    alice.type_slowly("/me waves");
    alice.send(ENTER);
    host.wait_text("* alice waves");
    host.type_slowly("/msg alice just us");
    host.send(ENTER);
    alice.wait_text("[private] hostie → alice: just us");
    host.wait_text("[private] hostie → alice: just us");
    alice.type_slowly("/who");
    alice.send(ENTER);
    alice.wait_text("* in the room (2): alice, hostie");
    // /nick, seen by both, and the status line follows.
    alice.type_slowly("/nick alicia");
    alice.send(ENTER);
    host.wait_text("* alice is now known as alicia");
    alice.wait_for("the new name on the status line", |s| {
        last_row(s).contains("alicia")
    });
    // An unknown command is answered, not sent.
    alice.type_slowly("/dance");
    alice.send(ENTER);
    alice.wait_text("there is no command /dance");
    assert!(!host.screen().contents().contains("/dance"));
    // /quit leaves like exit.
    alice.type_slowly("/quit");
    alice.send(ENTER);
    assert_eq!(alice.wait_exit(), 0, "/quit: exit status\n{}", alice.dump());
    alice.assert_restored();
    host.wait_text("* alicia left");
}

/// A link someone sends reaches the terminal as a hyperlink (OSC 8) to the whole
/// link, and the screen shows its text intact, its second row at the left edge.
#[test]
fn a_link_is_a_hyperlink_and_shows_whole() {
    let (mut host, port) = Term::host("hostie");
    let bob = Term::join_sized("bob", port, 60, 16);
    host.wait_text("* bob joined");
    // 47 columns: too long for a row under the text (46), so it gets a row of its own
    // at the left edge, whole.
    let url = "https://example.com/releases/tchat/v1.2.3/notes";
    host.send(&format!("look {url} now\r"));
    bob.wait_text("now");
    let s = bob.screen();
    let first = find_row(&s, "hostie: look").expect("the line with the link");
    let rows = rows(&s);
    assert_eq!(rows[first + 1].trim_end(), url, "{}", bob.dump());
    assert!(
        rows[first + 2].trim_start().starts_with("now"),
        "{}",
        bob.dump()
    );
    let raw = String::from_utf8_lossy(&bob.raw.lock().unwrap()).into_owned();
    assert!(
        raw.contains(&format!(";{url}\x1b\\{url}\x1b]8;;\x1b\\")),
        "the link's row is one hyperlink to it, opened and closed together"
    );
}

/// The emulator here draws emoji sequences one part at a time, as many terminals do
/// (a toned thumb in 4 columns, a family of three in 6, `❤️` in 1), where Unicode and
/// ratatui say 2. tchat asks it at start, and lays out and draws by its answer: the
/// screen holds every sequence whole, nothing after them is drawn over, and the
/// cursor stands where the terminal put the text.
#[test]
fn emoji_sequences_are_laid_out_as_this_terminal_draws_them() {
    let (mut host, port) = Term::host("hostie");
    let bob = Term::join("bob", port);
    host.wait_text("* bob joined");
    let family = "👩\u{200d}👩\u{200d}👧";
    let line = format!("a👍🏽b {family}c ❤\u{fe0f}d the-end");
    host.send(&format!("{line}\r"));
    bob.wait_text("the-end");
    let s = bob.screen();
    let at = find_row(&s, "hostie: ").unwrap_or_else(|| panic!("the line\n{}", bob.dump()));
    let shown = rows(&s)[at].clone();
    assert!(
        shown.trim_end().ends_with(&format!("hostie: {line}")),
        "{}",
        bob.dump()
    );
    // Lines that follow move it up a row at a time: no piece of a sequence (the tone,
    // a person) is left behind in a row that now shows something else.
    host.send(&format!("far out on the row {family} and 👍🏽\r"));
    bob.wait_text("far out on the row");
    for i in 0..3 {
        host.send(&format!("l{i}\r"));
        bob.wait_text(&format!("hostie: l{i}"));
    }
    let s = bob.screen();
    for (i, row) in rows(&s).iter().enumerate() {
        if !row.contains("hostie: a") && !row.contains("far out") {
            assert!(
                !row.contains('\u{1F3FD}') && !row.contains('\u{1F467}'),
                "row {i} keeps a piece of an emoji: {row:?}\n{}",
                bob.dump()
            );
        }
    }
    // Typed into the box: the cursor after what the terminal drew.
    host.send("👍🏽x");
    host.wait_for("the cursor after the thumb, its tone and x", |s| {
        input_text(s) == "👍🏽x" && s.cursor_position() == (input_row(s), TEXT_COL + 5)
    });
}
