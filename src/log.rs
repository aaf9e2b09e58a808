//! `--log FILE`: the conversation as plain text, appended to a file.
//!
//! One line per message line or notice, each stamped with the local time:
//!
//! ```text
//! 2026-11-26 20:41:05 alice: hello
//! 2026-11-26 20:41:09 * bob joined
//! ```
//!
//! The words are those of line mode ([`ServerMsg::to_plain`]), sanitised as line mode's
//! are, one line at a time, so that no escape byte or other control reaches the file.
//! Events from the room are stamped with the room's own time for them (so history
//! replayed on joining keeps its times); the rest with the time they arrived, moved to
//! the host's clock (as its last `welcome` told it), so that a joiner whose clock is off
//! does not log its own notices out of order with the room's.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, FixedOffset, Local, TimeZone, Utc};

use crate::client::NetEvent;
use crate::config::shown;
use crate::protocol::ServerMsg;
use crate::sanitize;

/// A conversation log: where it goes and what it has seen so far.
pub struct Log<W: Write = File> {
    out: W,
    /// What a plain far side's lines are attributed to (its address).
    far_side: String,
    /// A fixed UTC offset in seconds; `None` for the local time zone.
    utc_offset: Option<i32>,
    /// The room (epoch) last welcomed into, to tell a restarted host.
    room: Option<String>,
    /// The reason the host gave for closing, which the end of the connection repeats.
    closing: Option<String>,
    /// The first write that failed; nothing more is written after it.
    error: Option<String>,
    /// The host's clock minus ours, in ms, as of its last `welcome`.
    host_offset: i64,
}

impl Log<File> {
    /// Open `path` for appending, creating it if need be. The error is one line.
    pub fn open(path: &Path) -> Result<Log, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("log {}: {}", shown(path), crate::client::plain_io_error(&e)))?;
        Ok(Log::new(file))
    }
}

impl<W: Write> Log<W> {
    /// A log written to `out`, in local time.
    pub fn new(out: W) -> Self {
        Log {
            out,
            far_side: "peer".to_owned(),
            utc_offset: None,
            room: None,
            closing: None,
            error: None,
            host_offset: 0,
        }
    }

    /// Attribute a plain far side's text to `name` (say, the address joined).
    pub fn far_side(mut self, name: &str) -> Self {
        self.far_side = sanitize::line(name);
        self
    }

    /// Stamp lines in this fixed offset from UTC (in seconds) instead of local time.
    pub fn utc_offset(mut self, seconds: i32) -> Self {
        self.utc_offset = Some(seconds);
        self
    }

    /// Write `ev` down, if it says anything; `ts_ms` is when it arrived (ms since the
    /// epoch). A failed write is kept for [`Log::error`], and ends the log.
    pub fn record(&mut self, ts_ms: i64, ev: &NetEvent) {
        if self.error.is_some() {
            return;
        }
        // A line shown before the room's log numbered it is written once it is
        // numbered, in the room's order.
        if matches!(ev, NetEvent::Server(m) if m.is_held_copy()) {
            return;
        }
        let (ts, text) = self.words(ts_ms, ev);
        if text.is_empty() {
            return;
        }
        let stamp = self.stamp(ts);
        let mut out = String::with_capacity(text.len() + 32);
        for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
            out.push_str(&stamp);
            out.push(' ');
            out.push_str(&sanitize::line(line));
            out.push('\n');
        }
        // One write per event, so that lines of a message stay together.
        if let Err(e) = self
            .out
            .write_all(out.as_bytes())
            .and_then(|()| self.out.flush())
        {
            self.error = Some(crate::client::plain_io_error(&e));
        }
    }

    /// Why writing stopped, if it did.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The writer, back.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// The time to stamp `ev` with, and its words: lines, each ending in `\n`, or none.
    fn words(&mut self, arrived: i64, ev: &NetEvent) -> (i64, String) {
        if let NetEvent::Server(ServerMsg::Welcome { ts: Some(ts), .. }) = ev {
            self.host_offset = ts.saturating_sub(arrived);
        }
        let arrived = arrived.saturating_add(self.host_offset);
        match ev {
            NetEvent::Plain => (
                arrived,
                format!(
                    "* {} is not a tchat room: plain text from here on\n",
                    self.far_side
                ),
            ),
            NetEvent::Text { ts, text } => {
                let lines: String = text
                    .split('\n')
                    .map(|l| format!("{}: {l}\n", self.far_side))
                    .collect();
                (*ts, lines)
            }
            NetEvent::Server(msg) => {
                let mut text = msg.to_plain();
                let restarted = match msg {
                    ServerMsg::Welcome { room, .. } => {
                        self.room.replace(room.clone()).is_some_and(|r| r != *room)
                    }
                    _ => false,
                };
                if restarted {
                    text = format!("* the host restarted the room: history starts again\n{text}");
                }
                if let ServerMsg::Closing { reason, .. } = msg {
                    self.closing = Some(reason.clone());
                }
                (msg.ts().unwrap_or(arrived), text)
            }
            NetEvent::Lost { reason, retry_in } => (
                arrived,
                format!(
                    "* {reason}; trying again in {} s\n",
                    retry_in.as_secs_f64().ceil()
                ),
            ),
            NetEvent::Reconnecting { attempt } => {
                (arrived, format!("* trying to rejoin (attempt {attempt})\n"))
            }
            NetEvent::Closed { reason } => {
                // The host's own words came just before; don't say them twice.
                if self.closing.take().as_ref() == Some(reason) {
                    (arrived, String::new())
                } else {
                    (arrived, format!("* {reason}\n"))
                }
            }
        }
    }

    fn stamp(&self, ts_ms: i64) -> String {
        const FORMAT: &str = "%Y-%m-%d %H:%M:%S";
        let Some(utc) = DateTime::<Utc>::from_timestamp_millis(ts_ms) else {
            return "????-??-?? ??:??:??".to_owned();
        };
        match self.utc_offset.and_then(FixedOffset::east_opt) {
            Some(tz) => tz.from_utc_datetime(&utc.naive_utc()).format(FORMAT),
            None => Local.from_utc_datetime(&utc.naive_utc()).format(FORMAT),
        }
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// 2024-01-01 12:01:00 UTC.
    const T0: i64 = 1_704_110_460_000;

    fn log() -> Log<Vec<u8>> {
        Log::new(Vec::new()).utc_offset(0).far_side("10.0.0.2:7878")
    }

    fn text(log: Log<Vec<u8>>) -> String {
        String::from_utf8(log.into_inner()).expect("UTF-8")
    }

    fn msg(from: &str, text: &str, ts: i64) -> NetEvent {
        NetEvent::Server(ServerMsg::Msg {
            id: 1,
            ts,
            from: from.into(),
            text: text.into(),
            cid: None,
            held: None,
        })
    }

    #[test]
    fn a_conversation_as_lines() {
        let mut l = log();
        l.record(
            T0,
            &NetEvent::Server(ServerMsg::Join {
                id: 1,
                ts: T0,
                name: "bob".into(),
            }),
        );
        l.record(T0 + 5_000, &msg("alice", "hello", T0 + 1_000));
        l.record(T0, &NetEvent::Server(ServerMsg::Ping));
        l.record(T0 + 2_000, &msg("bob", "one\ntwo", T0 + 2_000));
        assert_eq!(
            text(l),
            "2024-01-01 12:01:00 *** bob joined\n\
             2024-01-01 12:01:01 alice: hello\n\
             2024-01-01 12:01:02 bob: one\n\
             2024-01-01 12:01:02 bob: two\n"
        );
    }

    #[test]
    fn notices_are_put_on_the_hosts_clock() {
        let mut l = log();
        // Our clock is 10 minutes ahead of the host's.
        let ahead = 600_000;
        l.record(
            T0 + ahead,
            &NetEvent::Server(ServerMsg::Welcome {
                v: 1,
                room: "r1".into(),
                name: "alice".into(),
                asked: None,
                members: vec!["alice".into()],
                max_line: 8192,
                pace: None,
                ts: Some(T0),
                topic: None,
            }),
        );
        l.record(T0 + ahead + 1_000, &msg("bob", "hi", T0 + 1_000));
        l.record(
            T0 + ahead + 2_000,
            &NetEvent::Lost {
                reason: "connection lost".into(),
                retry_in: Duration::from_secs(1),
            },
        );
        assert_eq!(
            text(l),
            "2024-01-01 12:01:00 *** you are alice. In the room: alice\n\
             2024-01-01 12:01:01 bob: hi\n\
             2024-01-01 12:01:02 * connection lost; trying again in 1 s\n"
        );
    }

    #[test]
    fn no_escape_reaches_the_file() {
        let mut l = log();
        l.record(T0, &msg("guest", "hi \u{1b}[31mred\r\u{7}\u{202E}x", T0));
        l.record(
            T0,
            &NetEvent::Text {
                ts: T0,
                text: "\u{1b}]0;title\u{7}".into(),
            },
        );
        assert_eq!(
            text(l),
            "2024-01-01 12:01:00 guest: hi ␛[31mred␍␇x\n\
             2024-01-01 12:01:00 10.0.0.2:7878: ␛]0;title␇\n"
        );
    }

    #[test]
    fn the_connection_as_notices() {
        let mut l = log().utc_offset(3600);
        let welcome = |room: &str| {
            NetEvent::Server(ServerMsg::Welcome {
                v: 1,
                room: room.into(),
                name: "alice".into(),
                asked: None,
                members: vec!["alice".into()],
                max_line: 8192,
                pace: None,
                ts: None,
                topic: None,
            })
        };
        l.record(T0, &welcome("r1"));
        l.record(
            T0,
            &NetEvent::Lost {
                reason: "connection lost".into(),
                retry_in: Duration::from_secs(1),
            },
        );
        l.record(T0, &NetEvent::Reconnecting { attempt: 1 });
        l.record(T0, &welcome("r2"));
        l.record(
            T0,
            &NetEvent::Server(ServerMsg::Closing {
                ts: T0,
                reason: "the host left; the room is closed".into(),
            }),
        );
        l.record(
            T0,
            &NetEvent::Closed {
                reason: "the host left; the room is closed".into(),
            },
        );
        l.record(T0, &NetEvent::Plain);
        assert_eq!(
            text(l),
            "2024-01-01 13:01:00 *** you are alice. In the room: alice\n\
             2024-01-01 13:01:00 * connection lost; trying again in 1 s\n\
             2024-01-01 13:01:00 * trying to rejoin (attempt 1)\n\
             2024-01-01 13:01:00 * the host restarted the room: history starts again\n\
             2024-01-01 13:01:00 *** you are alice. In the room: alice\n\
             2024-01-01 13:01:00 *** the host left; the room is closed\n\
             2024-01-01 13:01:00 * 10.0.0.2:7878 is not a tchat room: plain text from here on\n"
        );
    }

    #[test]
    fn a_failed_write_is_kept_and_ends_the_log() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut l = Log::new(Full);
        l.record(T0, &msg("a", "b", T0));
        assert!(l.error().is_some());
    }

    #[test]
    fn opening_fails_in_one_line() {
        let dir = std::env::temp_dir().join(format!("tchat-no-such-dir-{}", std::process::id()));
        let path = dir.join("chat.log");
        let e = Log::open(&path).err().expect("no such directory");
        assert!(e.starts_with(&format!("log {}: ", path.display())), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
