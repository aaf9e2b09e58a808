//! The wire, with no I/O: how bytes become lines, and how lines become messages.
//!
//! Everything on a tchat socket is a line of UTF-8 text ending in `\n` (a `\r` before
//! the `\n` is dropped). Two dialects share that framing:
//!
//! * **plain** — what `nc`, `telnet` or a Python socket script speak. Each line a peer
//!   sends is its message (or a `/command`); each line it receives is readable text
//!   (`alice: hello`, `* bob joined`).
//! * **structured** (`tchat/1`) — one JSON object per line, agreed on by a handshake:
//!   the host greets every connection with a [`banner`] line, and a tchat client that
//!   recognises it answers with [`ClientMsg::Hello`]. See `docs/PROTOCOL.md`.
//!
//! [`LineDecoder`] is the framing: a `tokio_util` codec that never fails, so one bad line
//! (too long, invalid UTF-8) never ends the stream it came from.

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Decoder};

/// The version of the structured dialect this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The default port a host listens on.
pub const DEFAULT_PORT: u16 = 7878;

/// The default longest message, in bytes of UTF-8 text, that a host relays.
pub const DEFAULT_MAX_LINE: usize = 8 * 1024;

/// The framing limit for a room whose messages may be `max_line` bytes: a structured
/// line carries the text JSON-escaped (up to six bytes for one) plus a few fields. The
/// room checks the text itself against `max_line`; this only bounds memory.
pub fn frame_limit(max_line: usize) -> usize {
    max_line.saturating_mul(6).saturating_add(1024)
}

/// How long a peer may pause in the middle of a line before the text it has sent so
/// far is taken as a whole line. This is what lets the classic `s.send(b"hello")`
/// (no newline) work: the text shows once the sender pauses.
pub const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(150);

/// The prefix of the first line a host sends to every connection. A tchat client that
/// sees it knows it may switch to the structured dialect; to anyone else it reads as a
/// greeting.
pub const BANNER_PREFIX: &str = "* tchat/";

/// The greeting line a host sends on accept (without the trailing newline).
pub fn banner(room_addr: &str) -> String {
    format!(
        "{BANNER_PREFIX}{PROTOCOL_VERSION} welcome to the room at {room_addr}. \
         Type to talk; a line \"exit\" leaves."
    )
}

/// The word after the version in the greeting of a host that takes TLS on its port.
pub const BANNER_TLS: &str = "tls";

/// A host's greeting that says it takes TLS: `* tchat/1 tls welcome to …`. Older
/// clients read the version and ignore the word.
pub fn banner_with_tls(room_addr: &str) -> String {
    let plain = banner(room_addr);
    let version = format!("{BANNER_PREFIX}{PROTOCOL_VERSION}");
    format!("{version} {BANNER_TLS}{}", &plain[version.len()..])
}

/// Whether `line` is a host's greeting that offers TLS on the same connection.
pub fn banner_offers_tls(line: &str) -> bool {
    parse_banner(line).is_some() && line.split(' ').nth(2) == Some(BANNER_TLS)
}

/// If `line` is a host's greeting, the protocol version it offers.
pub fn parse_banner(line: &str) -> Option<u32> {
    let rest = line.strip_prefix(BANNER_PREFIX)?;
    let digits: &str = rest.split(' ').next()?;
    digits.parse().ok()
}

pub use crate::names::MAX_NAME_CHARS;

/// What to tell a person who asked for the name `asked` and got `name`: either the name
/// was taken (or looks too like a member's), or it was not a usable name, and why.
pub fn rename_note(asked: &str, name: &str) -> String {
    let note = match crate::names::check(asked) {
        Err(why) => format!("\"{asked}\" is not a usable name: {why}; you are {name}"),
        Ok(_) => format!("the name {asked} is taken; you are {name}"),
    };
    crate::sanitize::line(&note)
}

/// The longest `cid` (a client's id for one of its lines) and `session` the host keeps,
/// in bytes: tchat's own are 16 to 24. Longer ones would let one peer make the host
/// hold far more per message than the message itself.
pub const MAX_ID_BYTES: usize = 64;

/// How a plain peer tells the room's own notices (`*** bob joined`) from what people
/// say and do (`* bob waves`, `bob: hi`): no one can make a line that starts this way.
pub const NOTICE_PREFIX: &str = "*** ";

/// One framed unit from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, `\r\n`/`\n` removed, invalid UTF-8 replaced by U+FFFD.
    Line(String),
    /// A line longer than the limit arrived; it was dropped (and the rest of it up to the
    /// next newline is being skipped without being buffered).
    TooLong,
}

/// Line framing with a hard memory bound, built on `tokio_util`'s delimiter codec.
///
/// Unlike a bare `LinesCodec`, it never returns an error: `Framed` ends the stream after a
/// decoder error, and neither an over-long line nor bad UTF-8 should cost a peer its
/// connection. It can also hand out a partial line (see [`LineDecoder::take_partial`]),
/// for peers that send text without a newline and then wait.
#[derive(Debug)]
pub struct LineDecoder {
    inner: AnyDelimiterCodec,
    max_len: usize,
}

impl LineDecoder {
    /// A decoder that drops lines longer than `max_len` bytes (not counting the `\n`).
    pub fn new(max_len: usize) -> Self {
        LineDecoder {
            inner: lines_codec(max_len),
            max_len,
        }
    }

    /// Take whatever text is buffered without a newline as a line, as if the newline had
    /// come. A UTF-8 sequence cut off at the end of the buffer stays behind to be
    /// completed by the next read. Returns `None` when there is nothing to take.
    pub fn take_partial(&mut self, buf: &mut BytesMut) -> Option<String> {
        let keep = incomplete_utf8_tail(buf);
        if buf.len() == keep {
            return None;
        }
        let chunk = buf.split_to(buf.len() - keep);
        // The delimiter codec remembers how far it searched; the buffer changed under it.
        self.inner = lines_codec(self.max_len);
        Some(to_text(&chunk))
    }
}

impl Decoder for LineDecoder {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        lift(self.inner.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        lift(self.inner.decode_eof(buf))
    }
}

/// The delimiter codec underneath: split at `\n`, keep no delimiter, cap the length.
fn lines_codec(max_len: usize) -> AnyDelimiterCodec {
    AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), max_len)
}

fn lift(r: Result<Option<bytes::Bytes>, AnyDelimiterCodecError>) -> std::io::Result<Option<Frame>> {
    match r {
        Ok(Some(line)) => Ok(Some(Frame::Line(to_text(&line)))),
        Ok(None) => Ok(None),
        Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => Ok(Some(Frame::TooLong)),
        Err(AnyDelimiterCodecError::Io(e)) => Err(e),
    }
}

/// Bytes of a line to text: drop one trailing `\r`, replace invalid UTF-8 with U+FFFD.
fn to_text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

/// How many bytes at the end of `buf` are the start of a UTF-8 sequence that more bytes
/// could still complete (0 to 3).
fn incomplete_utf8_tail(buf: &[u8]) -> usize {
    let start = buf.len().saturating_sub(3);
    for i in (start..buf.len()).rev() {
        let b = buf[i];
        let need = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            0x80..=0xBF => continue, // a continuation byte: look further back
            _ => return 0,
        };
        let have = buf.len() - i;
        return if have < need { have } else { 0 };
    }
    0
}

/// A room event as the host describes it to a structured peer.
///
/// `id` numbers the events of one room (`room` tells rooms, and restarts of a room,
/// apart); `ts` is the host's clock in milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The answer to `hello`: you are in, under this name.
    Welcome {
        v: u32,
        room: String,
        name: String,
        /// Set when the name asked for was taken or not allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asked: Option<String>,
        members: Vec<String>,
        max_line: usize,
        /// The flood limit a client's lines are held to, so that it can send what
        /// waited while it was offline no faster than the room takes it. Absent: none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pace: Option<Pace>,
        /// The host's clock now, so that a client can put its own notices on the same
        /// clock as the room's events (a log read later keeps their order).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ts: Option<i64>,
        /// The room's topic, if one is set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
    /// Someone said something. `cid` is the sender's own id for it, echoed back so the
    /// sender can match its pending line.
    Msg {
        id: u64,
        ts: i64,
        from: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
        /// See [`ServerMsg::held`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        held: Option<String>,
    },
    /// Someone did something: `/me waves` reads `* alice waves`.
    Me {
        id: u64,
        ts: i64,
        from: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
        /// See [`ServerMsg::held`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        held: Option<String>,
    },
    /// A private message (`/msg`): only `from` and `to` get it.
    Private {
        id: u64,
        ts: i64,
        from: String,
        to: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
    },
    /// Someone set the room's topic (`/topic`). `cid` on the setter's own copy.
    Topic {
        id: u64,
        ts: i64,
        by: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
    },
    /// Someone took another name (`/nick`).
    Nick {
        id: u64,
        ts: i64,
        old: String,
        new: String,
        /// On the renamed person's own copy: the `cid` of their `/nick`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
    },
    /// Sent right after `welcome` to someone who just came in: the next `count` events
    /// are the room's recent messages, from before they joined.
    History { count: u64 },
    /// Someone came in.
    Join { id: u64, ts: i64, name: String },
    /// Someone left (`reason` says why when it was not by choice).
    Leave {
        id: u64,
        ts: i64,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Many came and went at once: told as one event instead of one each, so that a
    /// crowd arriving (a class, a script, an attack) cannot bury the conversation.
    /// `left` happened before `joined` (a name can be in both: someone left, and
    /// someone else came in under that name).
    Crowd {
        id: u64,
        ts: i64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        joined: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        left: Vec<String>,
    },
    /// Something only you are told. With `cid`, it is about that line of yours, which
    /// was not relayed (too long, over the flood limit).
    Notice {
        ts: i64,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
    },
    /// Sent right after `welcome` to a client that rejoined with `since`: the next
    /// `count` events are the ones it missed, replayed from the host's history; `lost`
    /// more before them are no longer kept.
    Catchup {
        count: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        lost: u64,
    },
    /// Are you still there? A structured peer answers with `pong`.
    Ping,
    /// The answer to a client's `ping`.
    Pong,
    /// A line the client sent again (after a rejoin) was relayed before, as event `id`,
    /// and is no longer in the history to be echoed: it is delivered; not relayed again.
    Ack { cid: String, id: u64 },
    /// The host is going away; the connection closes after this.
    Closing { ts: i64, reason: String },
}

/// The held lines a client remembers having shown (see [`ServerMsg::held`]), to settle
/// when their numbered copies come: more than a host holds while its log is away.
pub const HELD_SHOWN: usize = 8192;

/// A flood limit: `burst` lines at once, then `rate` a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pace {
    pub burst: u32,
    pub rate: u32,
}

/// What a structured peer sends to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Switch this connection to the structured dialect and join under `name`.
    ///
    /// `session` is the client's own random id, the same across its reconnects; `since`
    /// asks for the events after the last one it saw (see `docs/PROTOCOL.md`).
    Hello {
        v: u32,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Since>,
    },
    /// Say `text` to the room. `cid` is the client's own id for the line.
    Say {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cid: Option<String>,
    },
    /// Leave the room.
    Bye,
    /// The answer to `ping`.
    Pong,
    /// Are you still there? The host answers with `pong` (a client that has heard
    /// nothing for a while asks, so that a dead host is noticed).
    Ping,
}

/// Where a rejoining client left off: the last event `id` it saw in room epoch `room`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Since {
    pub room: String,
    pub id: u64,
}

/// What a `hello` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    pub v: u32,
    pub name: String,
    pub session: Option<String>,
    pub since: Option<Since>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a structured line could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a tchat/{PROTOCOL_VERSION} message: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

impl ServerMsg {
    /// The `cid` of the sender's line this event answers: its echo, the event its
    /// command made, a notice about it, an ack of its resend.
    pub fn cid(&self) -> Option<&str> {
        match self {
            ServerMsg::Msg { cid: Some(c), .. }
            | ServerMsg::Me { cid: Some(c), .. }
            | ServerMsg::Private { cid: Some(c), .. }
            | ServerMsg::Nick { cid: Some(c), .. }
            | ServerMsg::Topic { cid: Some(c), .. }
            | ServerMsg::Notice { cid: Some(c), .. }
            | ServerMsg::Ack { cid: c, .. } => Some(c),
            _ => None,
        }
    }

    /// The same event carrying `cid` (for the copy that goes back to its sender), when
    /// it is one that can.
    pub fn with_cid(mut self, new: Option<String>) -> Self {
        match &mut self {
            ServerMsg::Msg { cid, .. }
            | ServerMsg::Me { cid, .. }
            | ServerMsg::Private { cid, .. }
            | ServerMsg::Nick { cid, .. }
            | ServerMsg::Topic { cid, .. }
            | ServerMsg::Notice { cid, .. } => *cid = new,
            _ => {}
        }
        self
    }

    /// The host's time for this event, for the events that carry one.
    pub fn ts(&self) -> Option<i64> {
        match self {
            ServerMsg::Msg { ts, .. }
            | ServerMsg::Me { ts, .. }
            | ServerMsg::Private { ts, .. }
            | ServerMsg::Nick { ts, .. }
            | ServerMsg::Topic { ts, .. }
            | ServerMsg::Join { ts, .. }
            | ServerMsg::Leave { ts, .. }
            | ServerMsg::Crowd { ts, .. }
            | ServerMsg::Notice { ts, .. }
            | ServerMsg::Closing { ts, .. } => Some(*ts),
            _ => None,
        }
    }

    /// A line said on one host of a clustered room while the room's log could not be
    /// reached: that host shows it to its own people at once, as a copy numbered 0
    /// carrying this key, and the numbered copy the log hands back later carries the
    /// same key, so that a client that was shown the first shows the line once.
    pub fn held(&self) -> Option<&str> {
        match self {
            ServerMsg::Msg { held: Some(h), .. } | ServerMsg::Me { held: Some(h), .. } => Some(h),
            _ => None,
        }
    }

    /// The copy of a held line shown before the log has numbered it (see
    /// [`ServerMsg::held`]): it stands for no place in the room's order, and has no
    /// [`ServerMsg::id`].
    pub fn is_held_copy(&self) -> bool {
        matches!(
            self,
            ServerMsg::Msg {
                id: 0,
                held: Some(_),
                ..
            } | ServerMsg::Me {
                id: 0,
                held: Some(_),
                ..
            }
        )
    }

    /// Give this event the held key `new`, when it is one that can carry one.
    pub fn set_held(&mut self, new: Option<String>) {
        if let ServerMsg::Msg { held, .. } | ServerMsg::Me { held, .. } = self {
            *held = new;
        }
    }

    /// The same event carrying the held key `new`, when it is one that can.
    pub fn with_held(mut self, new: Option<String>) -> Self {
        self.set_held(new);
        self
    }

    /// The room's number for this event, for the events that have one (a held line's
    /// first copy has none yet).
    pub fn id(&self) -> Option<u64> {
        if self.is_held_copy() {
            return None;
        }
        match self {
            ServerMsg::Msg { id, .. }
            | ServerMsg::Me { id, .. }
            | ServerMsg::Private { id, .. }
            | ServerMsg::Nick { id, .. }
            | ServerMsg::Topic { id, .. }
            | ServerMsg::Join { id, .. }
            | ServerMsg::Leave { id, .. }
            | ServerMsg::Crowd { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// The same event numbered `new` (the log's number for it), for the events that
    /// have one.
    pub fn with_id(mut self, new: u64) -> Self {
        match &mut self {
            ServerMsg::Msg { id, .. }
            | ServerMsg::Me { id, .. }
            | ServerMsg::Private { id, .. }
            | ServerMsg::Nick { id, .. }
            | ServerMsg::Topic { id, .. }
            | ServerMsg::Join { id, .. }
            | ServerMsg::Leave { id, .. }
            | ServerMsg::Crowd { id, .. } => *id = new,
            _ => {}
        }
        self
    }

    /// One JSON line, with its `\n`.
    pub fn encode(&self) -> String {
        encode_json(self)
    }

    /// Parse one line (without its `\n`).
    pub fn decode(line: &str) -> Result<Self, DecodeError> {
        Ok(serde_json::from_str(line)?)
    }

    /// The same event as readable text for a plain peer (`nc`): one or more lines, each
    /// ending in `\n`. A message of several lines repeats the sender on each, so that
    /// every line a plain peer sees says who wrote it.
    pub fn to_plain(&self) -> String {
        let n = NOTICE_PREFIX;
        let mut out = String::new();
        match self {
            ServerMsg::Welcome {
                name,
                asked,
                members,
                topic,
                ..
            } => {
                match asked {
                    Some(asked) => out.push_str(&format!("{n}{}.", rename_note(asked, name))),
                    None => out.push_str(&format!("{n}you are {name}.")),
                }
                out.push_str(&format!(" In the room: {}\n", some_names(members)));
                if let Some(topic) = topic {
                    out.push_str(&format!("{n}the topic is: {topic}\n"));
                }
            }
            ServerMsg::Msg { from, text, .. } => {
                for line in text.split('\n') {
                    out.push_str(&format!("{from}: {line}\n"));
                }
            }
            ServerMsg::Me { from, text, .. } => {
                for line in text.split('\n') {
                    out.push_str(&format!("* {from} {line}\n"));
                }
            }
            ServerMsg::Private { from, to, text, .. } => {
                for line in text.split('\n') {
                    out.push_str(&format!("[private] {from} → {to}: {line}\n"));
                }
            }
            ServerMsg::Nick { old, new, .. } => {
                out.push_str(&format!("{n}{old} is now known as {new}\n"))
            }
            ServerMsg::Topic { by, text, .. } => {
                out.push_str(&format!("{n}{}\n", topic_note(by, text)))
            }
            ServerMsg::History { count } => out.push_str(&format!(
                "{n}{}\n",
                match count {
                    1 => "the last message before you came:".to_owned(),
                    n => format!("the last {n} messages before you came:"),
                }
            )),
            ServerMsg::Join { name, .. } => out.push_str(&format!("{n}{name} joined\n")),
            ServerMsg::Leave { name, reason, .. } => match reason {
                Some(r) => out.push_str(&format!("{n}{name} left ({r})\n")),
                None => out.push_str(&format!("{n}{name} left\n")),
            },
            ServerMsg::Crowd { left, joined, .. } => {
                for (names, did) in [(left, "left"), (joined, "joined")] {
                    if !names.is_empty() {
                        out.push_str(&format!("{n}{}\n", crowd_note(names, did)));
                    }
                }
            }
            ServerMsg::Notice { text, .. } | ServerMsg::Closing { reason: text, .. } => {
                for line in text.split('\n') {
                    out.push_str(&format!("{n}{line}\n"));
                }
            }
            ServerMsg::Catchup { count, lost } => {
                out.push_str(&format!("{n}{}\n", catchup_note(*count, *lost)))
            }
            // Plain peers are never pinged: the host relies on TCP keepalive for them.
            // Nor are they sent what only a tchat client asks for.
            ServerMsg::Ping | ServerMsg::Pong | ServerMsg::Ack { .. } => {}
        }
        out
    }
}

/// `bob set the topic: …`, or that they cleared it.
pub fn topic_note(by: &str, text: &str) -> String {
    if text.is_empty() {
        format!("{by} cleared the topic")
    } else {
        format!("{by} set the topic: {text}")
    }
}

/// How many names a line that lists people shows before it says how many more.
pub const NAMES_SHOWN: usize = 10;

/// `names` for a line of text: all of them, or the first [`NAMES_SHOWN`] and how many
/// more, so that a line about a crowd stays a line.
pub fn some_names(names: &[String]) -> String {
    if names.len() <= NAMES_SHOWN {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..NAMES_SHOWN].join(", "),
        names.len() - NAMES_SHOWN
    )
}

/// "bob joined", "3 people joined: a, b, c": one line for a crowd that came or went.
pub fn crowd_note(names: &[String], did: &str) -> String {
    match names {
        [one] => format!("{one} {did}"),
        _ => format!("{} people {did}: {}", names.len(), some_names(names)),
    }
}

impl ClientMsg {
    /// One JSON line, with its `\n`.
    pub fn encode(&self) -> String {
        encode_json(self)
    }

    /// Parse one line (without its `\n`).
    pub fn decode(line: &str) -> Result<Self, DecodeError> {
        Ok(serde_json::from_str(line)?)
    }

    /// If `line` is a structured `hello`, what it asks for. Anything else from a peer
    /// that has not said hello is plain text.
    pub fn parse_hello(line: &str) -> Option<Hello> {
        if !line.starts_with('{') {
            return None;
        }
        match Self::decode(line) {
            Ok(ClientMsg::Hello {
                v,
                name,
                session,
                since,
                ..
            }) => Some(Hello {
                v,
                name,
                session,
                since,
            }),
            _ => None,
        }
    }
}

/// What a line typed in the input box (or by a plain peer) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// An ordinary message (`//text` sends `/text`).
    Say(&'a str),
    Nick(&'a str),
    Who,
    Me(&'a str),
    Msg {
        to: &'a str,
        text: &'a str,
    },
    Help,
    Quit,
    /// `/topic` alone asks what the topic is; with text, sets it.
    Topic(&'a str),
    /// `/away MSG` marks you away with that message; `/away` alone, back.
    Away(&'a str),
    /// `/whois NAME`: what the room can say of someone.
    Whois(&'a str),
    /// `/something` tchat does not know (the word, without its `/`).
    Unknown(&'a str),
}

/// The commands, for `/help` and Tab.
pub const COMMANDS: [&str; 9] = [
    "/away", "/help", "/me", "/msg", "/nick", "/quit", "/topic", "/who", "/whois",
];

/// The commands in a few lines, for `/help`.
pub const COMMAND_HELP: &str = "\
/nick NAME        take another name
/who              who is in the room
/me ACTION        say what you do: /me waves reads \"* alice waves\"
/msg NAME TEXT    a private message to NAME alone
/topic [TEXT]     set the room's topic (alone: say what it is)
/away [MESSAGE]   mark yourself away (alone: back); a /msg to you gets MESSAGE back
/whois NAME       what the room can say of NAME
/quit             leave (so does a line \"exit\")
//text            send a line that begins with /";

/// Read a line (or a message of several lines) as a command. Only a message of one
/// line that starts with `/` is one; anything else is said as it is.
pub fn parse_command(text: &str) -> Command<'_> {
    let t = text.trim();
    if t.starts_with("//") {
        return Command::Say(&text.trim_start()[1..]);
    }
    let Some(rest) = t.strip_prefix('/') else {
        return Command::Say(text);
    };
    if t.contains('\n') || rest.is_empty() || rest.starts_with(char::is_whitespace) {
        return Command::Say(text);
    }
    let (word, arg) = match rest.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (rest, ""),
    };
    match word.to_lowercase().as_str() {
        "nick" | "name" => Command::Nick(arg),
        "who" | "names" => Command::Who,
        "topic" => Command::Topic(arg),
        "away" => Command::Away(arg),
        "whois" => Command::Whois(arg),
        "me" => Command::Me(arg),
        "msg" | "query" | "tell" => match arg.split_once(char::is_whitespace) {
            Some((to, text)) => Command::Msg {
                to,
                text: text.trim_start(),
            },
            None => Command::Msg { to: arg, text: "" },
        },
        "help" | "?" => Command::Help,
        "quit" | "exit" | "leave" => Command::Quit,
        _ => Command::Unknown(word),
    }
}

/// What a rejoining person is told about what they missed.
pub fn catchup_note(count: u64, lost: u64) -> String {
    let missed = match count {
        0 => "nothing was missed".to_owned(),
        1 => "1 missed event follows".to_owned(),
        n => format!("{n} missed events follow"),
    };
    if lost == 0 {
        format!("back in the room; {missed}")
    } else {
        format!(
            "back in the room; {lost} earlier events are lost (the host keeps only the most recent), {missed}"
        )
    }
}

/// If the first line from a connection shows it is not a chat peer at all (a TLS
/// handshake, a web browser), what to tell it before closing.
pub fn foreign_protocol(first_line: &str) -> Option<&'static str> {
    let mut c = first_line.chars();
    // A TLS record: content type 22 (handshake), version 3.x.
    if c.next() == Some('\u{16}') && c.next() == Some('\u{3}') {
        return Some(
            "this is a tchat room speaking plain text, not TLS: connect without TLS (tchat --join, nc or telnet)",
        );
    }
    let http = ["GET ", "POST ", "HEAD ", "PUT ", "OPTIONS ", "CONNECT "];
    if http.iter().any(|m| first_line.starts_with(m))
        && first_line
            .trim_end()
            .rsplit(' ')
            .next()
            .is_some_and(|v| v.starts_with("HTTP/"))
    {
        return Some(
            "this is a tchat room, not a web server: join with tchat --join, nc or telnet",
        );
    }
    None
}

/// The line a host sends, instead of its greeting, to a connection it has no room for.
pub fn room_full_line(max_peers: usize) -> String {
    refusal_line(&format!(
        "room full: it holds {max_peers} people; try again later"
    ))
}

/// The line a host sends, instead of its greeting, to a connection it turns away
/// (`why` starts with what went wrong: "room full: …", "busy: …", "slow down: …").
pub fn refusal_line(why: &str) -> String {
    format!("{BANNER_PREFIX}{PROTOCOL_VERSION} {why}\n")
}

/// If a host's first line turns the connection away (room full, too many connections
/// from one address), the reason to show. A greeting is not a refusal.
pub fn parse_refusal(line: &str) -> Option<String> {
    parse_banner(line)?;
    let rest = line.strip_prefix(BANNER_PREFIX)?;
    let (_version, text) = rest.split_once(' ')?;
    let greeting = text
        .strip_prefix(BANNER_TLS)
        .map_or(text, str::trim_start)
        .starts_with("welcome");
    (!greeting).then(|| crate::sanitize::line(text))
}

fn encode_json<T: Serialize>(value: &T) -> String {
    // Serialising these plain enums of strings and numbers cannot fail.
    let mut s = serde_json::to_string(value).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(dec: &mut LineDecoder, input: &[u8]) -> Vec<Frame> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            out.push(f);
        }
        while let Some(f) = dec.decode_eof(&mut buf).unwrap() {
            out.push(f);
        }
        out
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.to_string())
    }

    #[test]
    fn lines_split_on_newline_and_drop_cr() {
        let mut d = LineDecoder::new(100);
        assert_eq!(
            decode_all(&mut d, b"hello\r\nworld\n\nlast"),
            vec![line("hello"), line("world"), line(""), line("last")]
        );
    }

    #[test]
    fn a_held_lines_first_copy_has_no_id_and_its_numbered_copy_has_one() {
        let copy = |id| ServerMsg::Msg {
            id,
            ts: 0,
            from: "bob".into(),
            text: "hi".into(),
            cid: None,
            held: Some("h1.1".into()),
        };
        assert!(copy(0).is_held_copy());
        assert_eq!(copy(0).id(), None, "no place in the room's order yet");
        assert!(!copy(7).is_held_copy());
        assert_eq!(copy(7).id(), Some(7));
        assert_eq!(copy(7).held(), Some("h1.1"));
    }

    #[test]
    fn invalid_utf8_becomes_replacement_char() {
        let mut d = LineDecoder::new(100);
        assert_eq!(decode_all(&mut d, b"a\xffb\n"), vec![line("a\u{fffd}b")]);
    }

    #[test]
    fn too_long_line_is_reported_once_and_the_next_line_survives() {
        let mut d = LineDecoder::new(8);
        let mut input = vec![b'x'; 50];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(decode_all(&mut d, &input), vec![Frame::TooLong, line("ok")]);
    }

    #[test]
    fn endless_line_keeps_the_buffer_bounded() {
        let mut d = LineDecoder::new(64);
        let mut buf = BytesMut::new();
        let mut reports = 0;
        for _ in 0..1000 {
            buf.extend_from_slice(&[b'a'; 100]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                assert_eq!(f, Frame::TooLong);
                reports += 1;
            }
            assert!(buf.len() <= 65, "buffer grew to {}", buf.len());
        }
        assert_eq!(reports, 1);
    }

    #[test]
    fn partial_line_is_taken_but_a_split_character_waits() {
        let mut d = LineDecoder::new(100);
        let snow = "héllo ☃".as_bytes();
        let mut buf = BytesMut::from(&snow[..snow.len() - 1]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert_eq!(d.take_partial(&mut buf).as_deref(), Some("héllo "));
        assert_eq!(buf.len(), 2, "the first two bytes of ☃ wait for the third");
        buf.extend_from_slice(&snow[snow.len() - 1..]);
        buf.extend_from_slice(b"!\n");
        assert_eq!(d.decode(&mut buf).unwrap(), Some(line("☃!")));
        assert_eq!(d.take_partial(&mut buf), None);
    }

    #[test]
    fn incomplete_tail_lengths() {
        assert_eq!(incomplete_utf8_tail(b"abc"), 0);
        assert_eq!(incomplete_utf8_tail(b"ab\xe2"), 1);
        assert_eq!(incomplete_utf8_tail(b"ab\xe2\x98"), 2);
        assert_eq!(incomplete_utf8_tail("ab☃".as_bytes()), 0);
        assert_eq!(incomplete_utf8_tail(b"\xf0\x9f\x98"), 3);
        assert_eq!(incomplete_utf8_tail(b"\xff"), 0);
    }

    #[test]
    fn banner_round_trip() {
        let t = banner_with_tls("10.0.0.2:7878");
        assert!(
            t.starts_with("* tchat/1 tls welcome to the room at 10.0.0.2:7878."),
            "{t}"
        );
        assert_eq!(parse_banner(&t), Some(PROTOCOL_VERSION));
        assert!(banner_offers_tls(&t));
        assert!(!banner_offers_tls(&banner("10.0.0.2:7878")));
        assert!(!banner_offers_tls("* someone tls"));
        assert_eq!(parse_refusal(&t), None, "a greeting with tls is no refusal");
        let b = banner("10.0.0.2:7878");
        assert_eq!(parse_banner(&b), Some(PROTOCOL_VERSION));
        assert_eq!(parse_banner("alice: * tchat/1 hi"), None);
        assert_eq!(parse_banner("hello"), None);
    }

    #[test]
    fn structured_messages_round_trip() {
        let msgs = vec![
            ServerMsg::Welcome {
                v: 1,
                room: "r1".into(),
                name: "alice2".into(),
                asked: Some("alice".into()),
                members: vec!["alice".into(), "alice2".into()],
                max_line: 8192,
                pace: None,
                ts: None,
                topic: None,
            },
            ServerMsg::Msg {
                id: 7,
                ts: 1_700_000_000_000,
                from: "bob".into(),
                text: "hi \u{1b}[2J 世界".into(),
                cid: Some("c1".into()),
                held: None,
            },
            ServerMsg::Leave {
                id: 8,
                ts: 1,
                name: "bob".into(),
                reason: None,
            },
            ServerMsg::Closing {
                ts: 2,
                reason: "the host left".into(),
            },
        ];
        for m in msgs {
            let line = m.encode();
            assert!(line.ends_with('\n'));
            assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
            assert_eq!(ServerMsg::decode(line.trim_end()).unwrap(), m);
        }
        let say = ClientMsg::Say {
            text: "a\nb".into(),
            cid: None,
        };
        assert_eq!(ClientMsg::decode(say.encode().trim_end()).unwrap(), say);
    }

    #[test]
    fn hello_is_recognised_only_as_json() {
        let hello = ClientMsg::Hello {
            v: 1,
            name: "alice".into(),
            client: None,
            session: Some("s1".into()),
            since: Some(Since {
                room: "r1".into(),
                id: 41,
            }),
        }
        .encode();
        let parsed = ClientMsg::parse_hello(hello.trim_end()).unwrap();
        assert_eq!((parsed.v, parsed.name.as_str()), (1, "alice"));
        assert_eq!(parsed.session.as_deref(), Some("s1"));
        assert_eq!(parsed.since.map(|s| s.id), Some(41));
        // A tchat/1 hello without the later fields still reads.
        let old = ClientMsg::parse_hello(r#"{"t":"hello","v":1,"name":"bob"}"#).unwrap();
        assert_eq!((old.session, old.since), (None, None));
        assert_eq!(ClientMsg::parse_hello("hello"), None);
        assert_eq!(ClientMsg::parse_hello("{not json"), None);
        assert_eq!(ClientMsg::parse_hello(r#"{"t":"say","text":"x"}"#), None);
    }

    #[test]
    fn keepalive_and_catchup_messages_round_trip() {
        assert_eq!(ServerMsg::Ping.encode(), "{\"t\":\"ping\"}\n");
        assert_eq!(
            ServerMsg::Ping.to_plain(),
            "",
            "plain peers are never pinged"
        );
        assert_eq!(
            ClientMsg::decode(r#"{"t":"pong"}"#).unwrap(),
            ClientMsg::Pong
        );
        let c = ServerMsg::Catchup { count: 3, lost: 0 };
        assert_eq!(c.encode(), "{\"t\":\"catchup\",\"count\":3}\n");
        assert_eq!(ServerMsg::decode(c.encode().trim_end()).unwrap(), c);
        assert!(catchup_note(2, 0).contains("2 missed events follow"));
        assert!(catchup_note(0, 5).contains("5 earlier events are lost"));
        let refused = ServerMsg::Notice {
            ts: 1,
            text: "slow down".into(),
            cid: Some("c9".into()),
        };
        assert_eq!(
            ServerMsg::decode(refused.encode().trim_end()).unwrap(),
            refused
        );
    }

    #[test]
    fn tls_and_http_are_recognised_as_foreign() {
        // The start of a TLS 1.2 ClientHello, read as (lossy) text.
        let hello = String::from_utf8_lossy(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
        assert!(foreign_protocol(&hello).unwrap().contains("not TLS"));
        assert!(
            foreign_protocol("GET / HTTP/1.1")
                .unwrap()
                .contains("web server")
        );
        assert_eq!(foreign_protocol("GET me a coffee"), None);
        assert_eq!(foreign_protocol("hello"), None);
        assert_eq!(foreign_protocol(""), None);
    }

    #[test]
    fn room_full_is_told_apart_from_a_greeting() {
        let line = room_full_line(1000);
        let line = line.trim_end();
        assert!(parse_refusal(line).unwrap().contains("1000"));
        assert_eq!(parse_refusal(&banner("h:1")), None);
        let busy = refusal_line("busy: 8 connections from your address already");
        assert!(parse_refusal(busy.trim_end()).unwrap().starts_with("busy"));
        assert_eq!(parse_refusal("* tchat/x room full"), None);
    }

    #[test]
    fn commands_are_read_from_one_line_starting_with_a_slash() {
        assert_eq!(parse_command("/nick bob"), Command::Nick("bob"));
        assert_eq!(parse_command("  /NICK   bob  "), Command::Nick("bob"));
        assert_eq!(parse_command("/who"), Command::Who);
        assert_eq!(parse_command("/me waves hello"), Command::Me("waves hello"));
        assert_eq!(
            parse_command("/msg bob  hi there"),
            Command::Msg {
                to: "bob",
                text: "hi there"
            }
        );
        assert_eq!(
            parse_command("/msg bob"),
            Command::Msg {
                to: "bob",
                text: ""
            }
        );
        assert_eq!(parse_command("/help"), Command::Help);
        assert_eq!(parse_command("/quit"), Command::Quit);
        assert_eq!(
            parse_command("/frobnicate x"),
            Command::Unknown("frobnicate")
        );
        // Not commands: said as they are.
        assert_eq!(parse_command("hello /who"), Command::Say("hello /who"));
        assert_eq!(parse_command("//who"), Command::Say("/who"));
        assert_eq!(parse_command("/ spaced"), Command::Say("/ spaced"));
        assert_eq!(parse_command("/"), Command::Say("/"));
        assert_eq!(
            parse_command("/usr/bin\nline two"),
            Command::Say("/usr/bin\nline two")
        );
    }

    #[test]
    fn new_events_read_plainly() {
        let me = ServerMsg::Me {
            id: 1,
            ts: 0,
            from: "alice".into(),
            text: "waves".into(),
            cid: None,
            held: None,
        };
        assert_eq!(me.to_plain(), "* alice waves\n");
        let p = ServerMsg::Private {
            id: 2,
            ts: 0,
            from: "alice".into(),
            to: "bob".into(),
            text: "psst".into(),
            cid: None,
        };
        assert_eq!(p.to_plain(), "[private] alice → bob: psst\n");
        let n = ServerMsg::Nick {
            id: 3,
            ts: 0,
            old: "alice".into(),
            new: "alicia".into(),
            cid: None,
        };
        assert_eq!(n.to_plain(), "*** alice is now known as alicia\n");
        for m in [me, p, n, ServerMsg::History { count: 2 }] {
            assert_eq!(ServerMsg::decode(m.encode().trim_end()).unwrap(), m);
        }
        let help = ServerMsg::Notice {
            ts: 0,
            text: "a\nb".into(),
            cid: None,
        };
        assert_eq!(help.to_plain(), "*** a\n*** b\n");
        let crowd = ServerMsg::Crowd {
            id: 4,
            ts: 0,
            joined: (0..12).map(|i| format!("g{i}")).collect(),
            left: vec!["bob".into()],
        };
        assert_eq!(
            crowd.to_plain(),
            "*** bob left\n*** 12 people joined: g0, g1, g2, g3, g4, g5, g6, g7, g8, g9 and 2 more\n"
        );
        assert_eq!(ServerMsg::decode(crowd.encode().trim_end()).unwrap(), crowd);
    }
}
