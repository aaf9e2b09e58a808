//! `Room` driven by a sequence of connection events decoded from the input: peers 0-3
//! connect, say raw lines, `/commands` and structured `hello`/`say`/`bye`/`pong`, go
//! quiet, get cut off, disconnect; the clock moves (and sometimes steps back).
//!
//! Checked after every call: no panic; every event renders for a plain peer without a
//! forbidden character (other than the newlines between its lines) and survives a JSON
//! round trip; raw lines are single clean lines; names stay unique ignoring case and are
//! usable names; events to the room are numbered in increasing order; a closed peer is
//! no longer in the room, and a peer addressed by `Target::One` is (or is closed in the
//! same batch).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tchat::protocol::{ClientMsg, Frame, MAX_NAME_CHARS, ServerMsg, Since};
use tchat::sanitize::is_forbidden;
use tchat::server::room::{Action, Outgoing, PeerId, Room, Rules, Target};

const EPOCH: &str = "e1";

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[usize::from(self.byte()) % from.len()]
    }

    /// Up to 63 bytes of input as text (invalid UTF-8 as U+FFFD, as the decoder does).
    fn text(&mut self) -> String {
        let n = usize::from(self.byte() & 0x3F).min(self.0.len());
        let (raw, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(raw).into_owned()
    }

    /// Text, or (half the time) one of a few names that collide with each other.
    fn name(&mut self) -> String {
        const NAMES: &[&str] = &[
            "alice", "ALICE", "bob", "Bob2", "guest", "GUEST2", "*star", " spaced name ",
            "\u{7}", "İ", "i\u{307}", "ß", "SS", "abcdefghijklmnopqrstuvwxyz0123",
            "\u{202E}evil", "",
        ];
        if self.byte() & 1 == 0 {
            self.pick(NAMES).to_owned()
        } else {
            self.text()
        }
    }
}

fn json(msg: &ClientMsg) -> Frame {
    Frame::Line(msg.encode().trim_end_matches('\n').to_owned())
}

/// Everything checked about one batch of actions.
struct Checker {
    last_room_id: u64,
    history: usize,
}

impl Checker {
    fn check(&mut self, room: &Room, actions: &[Action]) {
        // A peer told something and then closed in the same batch (a first line "/quit"
        // joins and leaves at once) is no longer in the room afterwards.
        let here = |p: &PeerId| {
            room.dialect(*p).is_some() || actions.contains(&Action::Close(*p))
        };
        for a in actions {
            match a {
                Action::Send(to, Outgoing::Event(m)) => {
                    let plain = m.to_plain();
                    if let Some(c) = plain.chars().find(|&c| is_forbidden(c) && c != '\n') {
                        panic!("{c:?} reaches a plain peer in {plain:?} from {m:?}");
                    }
                    if *m != ServerMsg::Ping {
                        assert!(plain.ends_with('\n'), "{plain:?} does not end its line");
                    }
                    let wire = m.encode();
                    let body = wire.strip_suffix('\n').expect("encode ends with a newline");
                    assert!(!body.contains('\n'), "more than one line: {wire:?}");
                    assert_eq!(&ServerMsg::decode(body).expect("decodes"), m);
                    if let ServerMsg::Welcome { name, members, .. } = m {
                        assert!(members.contains(name), "{name} not among {members:?}");
                    }
                    if let Target::Room | Target::RoomExcept(_) = to {
                        let id = m.id().unwrap_or_else(|| panic!("{m:?} to the room has no id"));
                        assert!(id > self.last_room_id, "id {id} after {}", self.last_room_id);
                        self.last_room_id = id;
                    }
                    if let Target::One(p) = to {
                        assert!(here(p), "{m:?} to {p}, not in the room");
                    }
                }
                Action::Send(to, Outgoing::Raw(line)) => {
                    assert!(!line.chars().any(is_forbidden), "raw line {line:?}");
                    if let Target::One(p) = to {
                        assert!(here(p), "{line:?} to {p}, not in the room");
                    }
                }
                Action::Close(p) => {
                    assert!(room.dialect(*p).is_none(), "{p} closed but still in the room");
                }
            }
        }
        let names = room.names();
        let mut folded: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
        folded.sort();
        folded.dedup();
        assert_eq!(folded.len(), names.len(), "names not unique ignoring case: {names:?}");
        assert_eq!(room.len(), names.len());
        for n in &names {
            assert!(!n.is_empty() && n.chars().count() <= MAX_NAME_CHARS, "name {n:?}");
            assert!(!n.chars().any(is_forbidden), "name {n:?}");
            assert!(!n.starts_with('*'), "name {n:?} reads like a notice");
        }
        assert!(room.history_len() <= self.history);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let b = input.byte();
    let max_line = match b & 3 {
        0 => tchat::protocol::DEFAULT_MAX_LINE,
        1 => usize::from(b >> 2),
        2 => 16,
        _ => 0,
    };
    let b = input.byte();
    let rules = Rules {
        max_line,
        burst: u32::from(b & 3),
        rate: u32::from((b >> 2) & 3),
        history: if b & 0x80 != 0 { 1000 } else { usize::from((b >> 4) & 7) },
    };
    let mut checker = Checker {
        last_room_id: 0,
        history: rules.history,
    };
    let mut room = Room::new(EPOCH.into(), "127.0.0.1:7878".into(), rules);
    let mut now: i64 = 0;

    let mut steps = 0;
    while !input.0.is_empty() && steps < 400 {
        steps += 1;
        let op = input.byte();
        let peer = PeerId::from(input.byte() % 4);
        let actions = match op % 16 {
            0 | 1 => {
                // The server numbers connections afresh; an id is reused only once the
                // room has let go of it.
                if room.dialect(peer).is_some() {
                    continue;
                }
                room.connect(peer, now)
            }
            2 => room.settle(peer, now),
            3 => room.quiet(peer, now),
            4 => {
                // A line as the decoder hands it over: anything but a newline.
                let line = input.text().replace('\n', "");
                room.receive(peer, Frame::Line(line), now)
            }
            5 | 14 => {
                const HEADS: &[&str] = &[
                    "/nick ", "/NICK ", "/name ", "/msg ", "/tell ", "/me ", "/who", "/help",
                    "/quit", "exit", " exit ", "//", "/frob", "/msg alice ", "/msg BOB ",
                    "/me", "",
                ];
                let mut line = input.pick(HEADS).to_owned();
                // Often about someone who is here.
                let names = room.names();
                if input.byte() & 1 == 0 && !names.is_empty() {
                    let n = &names[usize::from(input.byte()) % names.len()];
                    line.push_str(&if input.byte() & 1 == 0 { n.to_uppercase() } else { n.clone() });
                    line.push(' ');
                }
                line.push_str(&input.text());
                if op % 16 == 5 {
                    room.receive(peer, Frame::Line(line.replace('\n', "")), now)
                } else {
                    let cid = input.pick(&["", "c0", "c1"]);
                    let cid = (!cid.is_empty()).then(|| cid.to_owned());
                    room.receive(peer, json(&ClientMsg::Say { text: line, cid }), now)
                }
            }
            6 => {
                let name = input.name();
                let session = match input.pick(&["-", "s0", "s1", "s2", "", "long"]) {
                    "-" => None,
                    "long" => Some("s".repeat(65)),
                    s => Some(s.to_owned()),
                };
                let since = match input.byte() % 3 {
                    0 => None,
                    r => Some(Since {
                        room: if r == 1 { EPOCH.into() } else { "old".into() },
                        id: u64::from(input.byte()),
                    }),
                };
                let hello = ClientMsg::Hello {
                    v: u32::from(input.byte() % 3),
                    name,
                    client: None,
                    session,
                    since,
                };
                room.receive(peer, json(&hello), now)
            }
            7 => {
                let text = input.text();
                let cid = input.pick(&["", "c0", "c1", "c2"]);
                let cid = (!cid.is_empty()).then(|| cid.to_owned());
                room.receive(peer, json(&ClientMsg::Say { text, cid }), now)
            }
            8 => room.receive(peer, json(&ClientMsg::Bye), now),
            9 => room.receive(peer, json(&ClientMsg::Pong), now),
            10 => room.receive(peer, Frame::TooLong, now),
            11 => {
                let tell = "closing this connection: more than 8 bytes arrived without a newline";
                room.cut(peer, tell, "sent too much without a newline", now)
            }
            12 => {
                let reason = input.pick(&["-", "connection lost", "too slow to keep up"]);
                room.disconnect(peer, (reason != "-").then_some(reason), now)
            }
            13 => {
                let d = input.byte();
                now = match d {
                    0 => i64::MIN,
                    255 => i64::MAX,
                    d if d & 0x80 != 0 => now.saturating_sub(i64::from(d & 0x7F)),
                    d => now.saturating_add(i64::from(d) * 37),
                };
                continue;
            }
            _ => {
                // Structured-looking junk: parse errors, wrong shapes, a `hello` twice.
                let mut line = input
                    .pick(&["{", "{\"t\":\"say\",\"text\":", "{\"t\":\"hello\",\"v\":1,\"name\":\"", "[", ""])
                    .to_owned();
                line.push_str(&input.text().replace('\n', ""));
                room.receive(peer, Frame::Line(line), now)
            }
        };
        checker.check(&room, &actions);
    }
    let actions = room.shutdown("the host left; the room is closed", now);
    for a in &actions {
        if let Action::Send(_, Outgoing::Event(m)) = a {
            assert!(!m.to_plain().chars().any(|c| is_forbidden(c) && c != '\n'));
        }
    }
});
