//! The room's rules, with no I/O: who is in, under what name, and who is told what.
//!
//! [`Room`] is driven by the connection layer (`server::run`) with what happened — a
//! connection opened, a line arrived, a connection closed — and answers with
//! [`Action`]s: lines to send and connections to close. Time comes in as an argument, so
//! every rule can be tested without a socket or a clock.

use std::collections::HashMap;

use crate::protocol::{self, ClientMsg, Frame, PROTOCOL_VERSION, ServerMsg};
use crate::sanitize;

/// A connection, numbered by the server.
pub type PeerId = u64;

pub use crate::protocol::{MAX_NAME_CHARS, clean_name};

/// The name a peer gets when it did not ask for one (netcat) or asked for nothing usable.
pub const GUEST_NAME: &str = "guest";

/// Which dialect a connection speaks (see [`crate::protocol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Plain,
    Structured,
}

/// What goes out on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A line of text sent as is to any peer (the greeting).
    Raw(String),
    /// An event, shown to each peer in its own dialect.
    Event(ServerMsg),
}

/// Who a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    One(PeerId),
    /// Everyone who has joined.
    Room,
    /// Everyone who has joined but this one.
    RoomExcept(PeerId),
}

/// What the room asks the connection layer to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Target, Outgoing),
    /// Close this connection once what was sent to it is written.
    Close(PeerId),
}

#[derive(Debug)]
struct Peer {
    dialect: Dialect,
    /// `None` until the peer has joined: a fresh connection first gets the greeting, and
    /// joins when it says hello (tchat), says anything else, or has been quiet a moment
    /// (netcat). That way a tchat client is announced once, under its own name.
    name: Option<String>,
}

/// The room: its members, their names, and the numbering of its events.
#[derive(Debug)]
pub struct Room {
    /// Tells this room (and this run of it) apart from others; see `docs/PROTOCOL.md`.
    epoch: String,
    /// Where people can reach the room, for the greeting.
    address: String,
    max_line: usize,
    peers: HashMap<PeerId, Peer>,
    next_event: u64,
}

impl Room {
    /// An empty room. `epoch` should differ between runs of the host; `max_line` is the
    /// longest message text, in bytes, that is relayed.
    pub fn new(epoch: String, address: String, max_line: usize) -> Self {
        Room {
            epoch,
            address,
            max_line,
            peers: HashMap::new(),
            next_event: 1,
        }
    }

    /// How many have joined.
    pub fn len(&self) -> usize {
        self.peers.values().filter(|p| p.name.is_some()).count()
    }

    /// True when nobody has joined.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of those who have joined, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.peers.values().filter_map(|p| p.name.clone()).collect();
        names.sort_by_key(|n| n.to_lowercase());
        names
    }

    /// The dialect of a connection, if it is known to the room.
    pub fn dialect(&self, peer: PeerId) -> Option<Dialect> {
        self.peers.get(&peer).map(|p| p.dialect)
    }

    /// The peers a target names, with their dialects. An iterator, not a list: the
    /// room walks it once per event, for every event it relays.
    pub fn recipients(&self, target: Target) -> impl Iterator<Item = (PeerId, Dialect)> + '_ {
        let (one, room) = match target {
            Target::One(id) => (self.peers.get_key_value(&id), None),
            Target::Room | Target::RoomExcept(_) => (None, Some(self.peers.iter())),
        };
        let joined = room
            .into_iter()
            .flatten()
            .filter(move |(id, p)| p.name.is_some() && Target::RoomExcept(**id) != target);
        one.into_iter()
            .chain(joined)
            .map(|(id, p)| (*id, p.dialect))
    }

    /// A connection opened: greet it.
    pub fn connect(&mut self, peer: PeerId) -> Vec<Action> {
        self.peers.insert(
            peer,
            Peer {
                dialect: Dialect::Plain,
                name: None,
            },
        );
        vec![Action::Send(
            Target::One(peer),
            Outgoing::Raw(protocol::banner(&self.address)),
        )]
    }

    /// A connection has been quiet since it was greeted: if it has not joined yet, it is
    /// a plain peer (netcat) waiting for others to talk; let it in.
    pub fn settle(&mut self, peer: PeerId, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.is_pending(peer) {
            self.join(peer, Dialect::Plain, None, now, &mut out);
        }
        out
    }

    /// A line (or an over-long line) arrived from a connection.
    pub fn receive(&mut self, peer: PeerId, frame: Frame, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.peers.contains_key(&peer) {
            return out;
        }
        if self.is_pending(peer) {
            if let Frame::Line(line) = &frame
                && let Some((_v, name)) = ClientMsg::parse_hello(line)
            {
                self.join(peer, Dialect::Structured, Some(&name), now, &mut out);
                return out;
            }
            self.join(peer, Dialect::Plain, None, now, &mut out);
        }
        let line = match frame {
            Frame::TooLong => {
                self.too_long(peer, now, &mut out);
                return out;
            }
            Frame::Line(line) => line,
        };
        match self.dialect(peer) {
            Some(Dialect::Plain) => {
                if line.trim() == "exit" {
                    self.leave(peer, None, now, &mut out);
                } else if line.len() > self.max_line {
                    self.too_long(peer, now, &mut out);
                } else {
                    self.say(peer, &line, None, now, &mut out);
                }
            }
            Some(Dialect::Structured) => match ClientMsg::decode(&line) {
                Ok(ClientMsg::Say { text, cid }) => {
                    if text.len() > self.max_line {
                        self.too_long(peer, now, &mut out);
                    } else {
                        self.say(peer, &text, cid, now, &mut out);
                    }
                }
                Ok(ClientMsg::Bye) => self.leave(peer, None, now, &mut out),
                Ok(ClientMsg::Hello { .. }) => {
                    self.notice(peer, "you are already in", now, &mut out)
                }
                Err(e) => self.notice(peer, &format!("ignored a line: {e}"), now, &mut out),
            },
            None => {}
        }
        out
    }

    /// A connection closed (or was dropped by the server, with a reason).
    pub fn disconnect(&mut self, peer: PeerId, reason: Option<&str>, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(p) = self.peers.remove(&peer)
            && let Some(name) = p.name
        {
            let id = self.next_id();
            out.push(Action::Send(
                Target::Room,
                Outgoing::Event(ServerMsg::Leave {
                    id,
                    ts: now,
                    name,
                    reason: reason.map(str::to_owned),
                }),
            ));
        }
        out
    }

    /// The host is going away: tell everyone, then close every connection. The room
    /// keeps its peers so that the goodbyes can still be addressed; it is not used after.
    pub fn shutdown(&mut self, reason: &str, now: i64) -> Vec<Action> {
        let mut ids: Vec<PeerId> = self.peers.keys().copied().collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(ids.len() * 2);
        for &id in &ids {
            out.push(Action::Send(
                Target::One(id),
                Outgoing::Event(ServerMsg::Closing {
                    ts: now,
                    reason: reason.to_owned(),
                }),
            ));
        }
        out.extend(ids.into_iter().map(Action::Close));
        out
    }

    fn is_pending(&self, peer: PeerId) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.name.is_none())
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_event;
        self.next_event += 1;
        id
    }

    fn join(
        &mut self,
        peer: PeerId,
        dialect: Dialect,
        asked: Option<&str>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        let base = asked.and_then(clean_name);
        let name = self.unique_name(base.as_deref().unwrap_or(GUEST_NAME));
        // Tell the person when they did not get the name they asked for.
        let renamed = asked.filter(|a| *a != name).map(sanitize::line);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.dialect = dialect;
            p.name = Some(name.clone());
        }
        out.push(Action::Send(
            Target::One(peer),
            Outgoing::Event(ServerMsg::Welcome {
                v: PROTOCOL_VERSION,
                room: self.epoch.clone(),
                name: name.clone(),
                asked: renamed,
                members: self.names(),
                max_line: self.max_line,
            }),
        ));
        let id = self.next_id();
        out.push(Action::Send(
            Target::RoomExcept(peer),
            Outgoing::Event(ServerMsg::Join { id, ts: now, name }),
        ));
    }

    fn say(
        &mut self,
        peer: PeerId,
        text: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        let text = sanitize::text(text.trim_end());
        if text.trim().is_empty() {
            return;
        }
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let (Some(from), dialect) = (p.name.clone(), p.dialect) else {
            return;
        };
        let id = self.next_id();
        let msg = |cid| ServerMsg::Msg {
            id,
            ts: now,
            from: from.clone(),
            text: text.clone(),
            cid,
        };
        // A structured sender gets its own line back, with the room's id and time and its
        // own `cid`: that is how it knows the line was delivered. The `cid` is the
        // sender's business only. A plain sender already sees what it typed.
        if dialect == Dialect::Structured {
            out.push(Action::Send(Target::One(peer), Outgoing::Event(msg(cid))));
        }
        out.push(Action::Send(
            Target::RoomExcept(peer),
            Outgoing::Event(msg(None)),
        ));
    }

    fn leave(&mut self, peer: PeerId, reason: Option<&str>, now: i64, out: &mut Vec<Action>) {
        out.extend(self.disconnect(peer, reason, now));
        out.push(Action::Close(peer));
    }

    fn too_long(&mut self, peer: PeerId, now: i64, out: &mut Vec<Action>) {
        let text = format!(
            "your line was not sent: it is longer than {} bytes",
            self.max_line
        );
        self.notice(peer, &text, now, out);
    }

    fn notice(&mut self, peer: PeerId, text: &str, now: i64, out: &mut Vec<Action>) {
        out.push(Action::Send(
            Target::One(peer),
            Outgoing::Event(ServerMsg::Notice {
                ts: now,
                text: text.to_owned(),
            }),
        ));
    }

    fn unique_name(&self, base: &str) -> String {
        let taken = |n: &str| {
            self.peers
                .values()
                .filter_map(|p| p.name.as_deref())
                .any(|m| m.to_lowercase() == n.to_lowercase())
        };
        if !taken(base) {
            return base.to_owned();
        }
        (2u64..)
            .map(|i| {
                let suffix = i.to_string();
                let keep = MAX_NAME_CHARS - suffix.len();
                let stem: String = base.chars().take(keep).collect();
                stem + &suffix
            })
            .find(|n| !taken(n))
            .unwrap_or_else(|| GUEST_NAME.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(name: &str) -> Frame {
        Frame::Line(
            ClientMsg::Hello {
                v: 1,
                name: name.into(),
                client: None,
            }
            .encode()
            .trim_end()
            .to_owned(),
        )
    }

    fn say(text: &str) -> Frame {
        Frame::Line(
            ClientMsg::Say {
                text: text.into(),
                cid: Some("c1".into()),
            }
            .encode()
            .trim_end()
            .to_owned(),
        )
    }

    fn room() -> Room {
        Room::new("e1".into(), "127.0.0.1:7878".into(), 100)
    }

    fn joined(room: &mut Room, peer: PeerId, name: &str) -> Vec<Action> {
        room.connect(peer);
        room.receive(peer, hello(name), 0)
    }

    fn welcome_name(actions: &[Action]) -> (String, Option<String>) {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Send(_, Outgoing::Event(ServerMsg::Welcome { name, asked, .. })) => {
                    Some((name.clone(), asked.clone()))
                }
                _ => None,
            })
            .expect("a welcome")
    }

    #[test]
    fn connect_greets_with_banner_and_announces_nothing() {
        let mut r = room();
        let a = r.connect(1);
        assert_eq!(a.len(), 1);
        assert!(
            matches!(&a[0], Action::Send(Target::One(1), Outgoing::Raw(b)) if protocol::parse_banner(b).is_some())
        );
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn hello_joins_under_the_asked_name_and_others_are_told() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let a = joined(&mut r, 2, "bob");
        assert_eq!(welcome_name(&a), ("bob".into(), None));
        assert!(a.contains(&Action::Send(
            Target::RoomExcept(2),
            Outgoing::Event(ServerMsg::Join {
                id: 2,
                ts: 0,
                name: "bob".into()
            })
        )));
        assert_eq!(r.names(), vec!["alice", "bob"]);
        assert_eq!(
            r.recipients(Target::RoomExcept(2)).collect::<Vec<_>>(),
            vec![(1, Dialect::Structured)]
        );
    }

    #[test]
    fn a_taken_name_gets_a_suffix_and_the_person_is_told() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let a = joined(&mut r, 2, "Alice");
        assert_eq!(welcome_name(&a), ("Alice2".into(), Some("Alice".into())));
        let a = joined(&mut r, 3, "alice");
        assert_eq!(welcome_name(&a).0, "alice3");
    }

    #[test]
    fn suffixed_names_stay_within_the_limit() {
        let mut r = room();
        let long = "x".repeat(30);
        joined(&mut r, 1, &long);
        let a = joined(&mut r, 2, &long);
        let name = welcome_name(&a).0;
        assert_eq!(name.chars().count(), MAX_NAME_CHARS);
        assert!(name.ends_with('2'));
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  alice smith "), Some("alice_smith".into()));
        assert_eq!(clean_name("\u{1b}[31mred"), Some("[31mred".into()));
        assert_eq!(clean_name("ev\u{202E}il"), Some("evil".into()));
        assert_eq!(clean_name("** bob"), Some("_bob".into()));
        assert_eq!(clean_name("\u{7}\u{7}"), None);
        assert_eq!(clean_name(""), None);
        assert_eq!(clean_name("世界"), Some("世界".into()));
        assert_eq!(clean_name(&"é".repeat(40)).unwrap().chars().count(), 24);
    }

    #[test]
    fn a_plain_peer_joins_as_guest_on_its_first_line_and_is_not_echoed() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.connect(2);
        let a = r.receive(2, Frame::Line("hi there".into()), 5);
        assert_eq!(welcome_name(&a).0, "guest");
        let msg = a
            .iter()
            .find(|x| matches!(x, Action::Send(_, Outgoing::Event(ServerMsg::Msg { .. }))))
            .unwrap();
        assert_eq!(
            msg,
            &Action::Send(
                Target::RoomExcept(2),
                Outgoing::Event(ServerMsg::Msg {
                    id: 3,
                    ts: 5,
                    from: "guest".into(),
                    text: "hi there".into(),
                    cid: None
                })
            )
        );
    }

    #[test]
    fn a_quiet_plain_peer_joins_when_it_settles() {
        let mut r = room();
        r.connect(2);
        assert_eq!(r.len(), 0);
        let a = r.settle(2, 0);
        assert_eq!(welcome_name(&a).0, "guest");
        assert_eq!(r.len(), 1);
        assert!(r.settle(2, 0).is_empty(), "settling twice does nothing");
    }

    #[test]
    fn structured_say_is_echoed_to_the_sender_alone_with_its_cid() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let a = r.receive(1, say("hello"), 9);
        let msg = |cid: Option<&str>| ServerMsg::Msg {
            id: 2,
            ts: 9,
            from: "alice".into(),
            text: "hello".into(),
            cid: cid.map(str::to_owned),
        };
        assert_eq!(
            a,
            vec![
                Action::Send(Target::One(1), Outgoing::Event(msg(Some("c1")))),
                Action::Send(Target::RoomExcept(1), Outgoing::Event(msg(None))),
            ]
        );
    }

    #[test]
    fn hostile_text_is_sanitised_before_relay() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.connect(2);
        let a = r.receive(2, Frame::Line("\u{1b}]0;owned\u{7}x\u{202E}y".into()), 0);
        let text = a
            .iter()
            .find_map(|x| match x {
                Action::Send(_, Outgoing::Event(ServerMsg::Msg { text, .. })) => Some(text.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(text, "␛]0;owned␇xy");
    }

    #[test]
    fn blank_lines_are_not_relayed() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        assert!(r.receive(1, say("   "), 0).is_empty());
    }

    #[test]
    fn too_long_is_told_to_the_sender_only_and_the_connection_stays() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let a = r.receive(1, Frame::TooLong, 0);
        assert_eq!(a.len(), 1);
        assert!(
            matches!(&a[0], Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Notice { text, .. })) if text.contains("100 bytes"))
        );
        let a = r.receive(1, say(&"x".repeat(101)), 0);
        assert!(matches!(
            &a[0],
            Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Notice { .. }))
        ));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn exit_from_a_plain_peer_leaves_and_closes() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.connect(2);
        r.settle(2, 0);
        let a = r.receive(2, Frame::Line("exit\r".trim_end().into()), 0);
        assert_eq!(
            a,
            vec![
                Action::Send(
                    Target::Room,
                    Outgoing::Event(ServerMsg::Leave {
                        id: 3,
                        ts: 0,
                        name: "guest".into(),
                        reason: None
                    })
                ),
                Action::Close(2)
            ]
        );
        assert_eq!(r.names(), vec!["alice"]);
    }

    #[test]
    fn bye_leaves_and_a_dropped_connection_is_announced() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        let a = r.receive(2, Frame::Line(ClientMsg::Bye.encode().trim_end().into()), 0);
        assert!(a.contains(&Action::Close(2)));
        let a = r.disconnect(1, Some("connection lost"), 0);
        assert!(
            matches!(&a[0], Action::Send(Target::Room, Outgoing::Event(ServerMsg::Leave { name, reason: Some(_), .. })) if name == "alice")
        );
        assert!(r.is_empty());
        assert!(
            r.disconnect(1, None, 0).is_empty(),
            "a second close says nothing"
        );
    }

    #[test]
    fn a_pending_connection_that_closes_is_not_announced() {
        let mut r = room();
        r.connect(1);
        assert!(r.disconnect(1, None, 0).is_empty());
    }

    #[test]
    fn shutdown_tells_everyone_including_pending_then_closes_all() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.connect(2);
        let a = r.shutdown("the host left", 0);
        assert_eq!(a.len(), 4);
        assert!(a.contains(&Action::Close(1)) && a.contains(&Action::Close(2)));
        assert!(matches!(
            &a[0],
            Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Closing { .. }))
        ));
        assert_eq!(
            r.recipients(Target::One(2)).count(),
            1,
            "goodbyes can still be addressed"
        );
    }

    #[test]
    fn event_ids_increase() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        let ids: Vec<u64> = (0..3)
            .flat_map(|_| r.receive(1, say("x"), 0))
            .filter_map(|a| match a {
                Action::Send(Target::One(_), Outgoing::Event(ServerMsg::Msg { id, .. })) => {
                    Some(id)
                }
                _ => None,
            })
            .collect();
        assert_eq!(ids, vec![2, 3, 4]);
    }
}
