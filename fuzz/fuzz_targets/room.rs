//! `Room` driven by a sequence of connection events decoded from the input, through the
//! handshake stage as the host does it (`session::greeted`): peers 0-3 connect from a
//! few addresses, say raw lines, `/commands` and structured `hello`/`say`/`bye`/`pong`
//! (the first frame of a connection settles its dialect), stay silent until seated, go
//! quiet, get cut off, disconnect; the clock moves (and sometimes steps back), and
//! crowds are told when due.
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
use tchat::server::room::{Action, Arrival, Outgoing, PeerId, Room, Rules, Target};
use tchat::server::session::{Greeted, greeted};

/// What the host does with a frame: a connection's first settles its handshake (a
/// plain peer's first line is then its first line in the room); later ones go to the
/// room. `pending` holds the connections still in their handshake, with their address
/// and the room's mark when they opened.
fn deliver(
    room: &mut Room,
    pending: &mut [Option<Arrival>; 4],
    peer: PeerId,
    frame: Option<Frame>,
    now: i64,
) -> Vec<Action> {
    let Some(arrival) = pending[peer as usize].take() else {
        return match frame {
            Some(f) => room.receive(peer, f, now),
            None => Vec::new(),
        };
    };
    match greeted(frame) {
        Greeted::Tchat(hello) => room.seat(peer, Arrival { hello: Some(hello), ..arrival }, now),
        Greeted::Plain(first) => {
            let mut a = room.seat(peer, arrival, now);
            if let Some(f) = first {
                a.extend(room.receive(peer, f, now));
            }
            a
        }
        Greeted::Refuse(_) | Greeted::Gone => Vec::new(),
    }
}

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
                    // What only a tchat client is sent has no plain text at all.
                    if !matches!(m, ServerMsg::Ping | ServerMsg::Pong | ServerMsg::Ack { .. }) {
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
        let mut folded: Vec<String> = names.iter().map(|n| tchat::names::fold(n)).collect();
        folded.sort();
        folded.dedup();
        assert_eq!(folded.len(), names.len(), "names not unique ignoring case and look-alikes: {names:?}");
        for n in &names {
            assert_eq!(tchat::names::check(n).as_deref(), Ok(n.as_str()), "name {n:?} is not a usable name");
        }
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
        max_lines: usize::from(b & 7),
        burst: u32::from(b & 3),
        rate: u32::from((b >> 2) & 3),
        addr_burst: u32::from((b >> 3) & 3),
        addr_rate: u32::from((b >> 5) & 1),
        history: if b & 0x80 != 0 { 1000 } else { usize::from((b >> 4) & 7) },
        max_catchup: if b & 0x40 != 0 { 1 << 20 } else { 300 },
        resend_memory: usize::from(b & 0x0f),
        resend_memory_ms: i64::from(b & 0x30) * 10,
    };
    let mut checker = Checker {
        last_room_id: 0,
        history: rules.history,
    };
    let mut room = Room::new(EPOCH.into(), rules);
    let mut pending: [Option<Arrival>; 4] = Default::default();
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
                if room.dialect(peer).is_some() || pending[peer as usize].is_some() {
                    continue;
                }
                let addr = match input.byte() % 3 {
                    0 => None,
                    1 => Some([10, 0, 0, 1].into()),
                    _ => Some([10, 0, 0, 2].into()),
                };
                pending[peer as usize] = Some(Arrival { hello: None, addr, mark: room.next_event() });
                continue;
            }
            // Silent through the whole wait: a plain peer.
            2 => deliver(&mut room, &mut pending, peer, None, now),
            3 => room.quiet(peer, now),
            4 => {
                // A line as the decoder hands it over: anything but a newline.
                let line = input.text().replace('\n', "");
                deliver(&mut room, &mut pending, peer, Some(Frame::Line(line)), now)
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
                    deliver(&mut room, &mut pending, peer, Some(Frame::Line(line.replace('\n', ""))), now)
                } else {
                    let cid = input.pick(&["", "c0", "c1"]);
                    let cid = (!cid.is_empty()).then(|| cid.to_owned());
                    deliver(&mut room, &mut pending, peer, Some(json(&ClientMsg::Say { text: line, cid })), now)
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
                deliver(&mut room, &mut pending, peer, Some(json(&hello)), now)
            }
            7 => {
                let text = input.text();
                let cid = input.pick(&["", "c0", "c1", "c2"]);
                let cid = (!cid.is_empty()).then(|| cid.to_owned());
                deliver(&mut room, &mut pending, peer, Some(json(&ClientMsg::Say { text, cid })), now)
            }
            8 => deliver(&mut room, &mut pending, peer, Some(json(&ClientMsg::Bye)), now),
            9 => deliver(&mut room, &mut pending, peer, Some(json(&ClientMsg::Pong)), now),
            10 => deliver(&mut room, &mut pending, peer, Some(Frame::TooLong), now),
            11 => {
                let tell = "closing this connection: more than 8 bytes arrived without a newline";
                room.cut(peer, tell, "sent too much without a newline", now)
            }
            12 => {
                pending[peer as usize] = None;
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
                room.tick(now)
            }
            _ => {
                // Structured-looking junk: parse errors, wrong shapes, a `hello` twice.
                let mut line = input
                    .pick(&["{", "{\"t\":\"say\",\"text\":", "{\"t\":\"hello\",\"v\":1,\"name\":\"", "[", ""])
                    .to_owned();
                line.push_str(&input.text().replace('\n', ""));
                deliver(&mut room, &mut pending, peer, Some(Frame::Line(line)), now)
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
