//! The room's rules, with no I/O: who is in, under what name, and who is told what.
//!
//! [`Room`] is driven by the connection layer (`server::run`) with what happened — a
//! connection opened, a line arrived, a connection closed — and answers with
//! [`Action`]s: lines to send and connections to close. Time comes in as an argument, so
//! every rule can be tested without a socket or a clock.

use std::collections::{HashMap, VecDeque};

use crate::protocol::{self, ClientMsg, Command, Frame, PROTOCOL_VERSION, ServerMsg};
use crate::sanitize;

/// A connection, numbered by the server.
pub type PeerId = u64;

pub use crate::protocol::{MAX_NAME_CHARS, clean_name};

/// How many recent messages someone who just came in is shown: a tchat screen, and a
/// plain peer (whose screen is a terminal scrolling by).
pub const HISTORY_FOR_TCHAT: usize = 100;
pub const HISTORY_FOR_PLAIN: usize = 20;

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
    /// A connection the room has already let go of, told one last thing before it is
    /// closed (why it was cut off).
    Last(PeerId, Dialect),
}

/// What the room asks the connection layer to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Target, Outgoing),
    /// Close this connection once what was sent to it is written.
    Close(PeerId),
}

/// The room's limits; each is a flag of `tchat --host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// The longest message text, in bytes, that is relayed.
    pub max_line: usize,
    /// Lines a peer may send in a burst before `rate` applies (0: no flood limit).
    pub burst: u32,
    /// Lines per second a peer may keep sending (0: no flood limit).
    pub rate: u32,
    /// Events kept for catching up clients that rejoin.
    pub history: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_line: protocol::DEFAULT_MAX_LINE,
            burst: 20,
            rate: 5,
            history: 1000,
        }
    }
}

/// A token bucket in thousandths of a line, refilled by the room's clock.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli: u64,
    at: i64,
}

impl Bucket {
    fn full(rules: &Rules, now: i64) -> Self {
        Bucket {
            milli: u64::from(rules.burst) * 1000,
            at: now,
        }
    }

    /// Take one line's worth, if there is one.
    fn take(&mut self, rules: &Rules, now: i64) -> bool {
        if rules.burst == 0 || rules.rate == 0 {
            return true;
        }
        // A clock that steps back refills nothing (and is not trusted to step forward
        // from the earlier reading either).
        let elapsed = u64::try_from(now.saturating_sub(self.at)).unwrap_or(0);
        self.at = self.at.max(now);
        let cap = u64::from(rules.burst) * 1000;
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(u64::from(rules.rate)))
            .min(cap);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Peer {
    dialect: Dialect,
    /// `None` until the peer has joined: a fresh connection first gets the greeting, and
    /// joins when it says hello (tchat), says anything else, or has been quiet a moment
    /// (netcat). That way a tchat client is announced once, under its own name.
    name: Option<String>,
    /// A tchat client's own id, the same across its reconnects.
    session: Option<String>,
    bucket: Bucket,
    /// A ping went out and nothing has come back since.
    pinged: bool,
    /// A plain peer over the flood limit has been told; it is not told again for every
    /// line until one gets through.
    warned: bool,
}

/// An event kept for catching up, with who sent it when it is a tchat client's message.
#[derive(Debug)]
struct Kept {
    id: u64,
    event: ServerMsg,
    /// `(session, cid)` of the line, for recognising a resend.
    origin: Option<(String, String)>,
}

/// The room: its members, their names, the numbering of its events, and its recent
/// history.
#[derive(Debug)]
pub struct Room {
    /// Tells this room (and this run of it) apart from others; see `docs/PROTOCOL.md`.
    epoch: String,
    /// Where people can reach the room, for the greeting.
    address: String,
    rules: Rules,
    /// Keyed by the host's own connection numbers (no one else picks them), so a fast
    /// hash serves: it is taken once per recipient of every line.
    peers: HashMap<PeerId, Peer, foldhash::fast::RandomState>,
    next_event: u64,
    history: VecDeque<Kept>,
    /// `(session, cid)` → event id, for the lines in `history`.
    seen: HashMap<(String, String), u64>,
}

impl Room {
    /// An empty room. `epoch` should differ between runs of the host.
    pub fn new(epoch: String, address: String, rules: Rules) -> Self {
        Room {
            epoch,
            address,
            rules,
            peers: HashMap::default(),
            next_event: 1,
            history: VecDeque::new(),
            seen: HashMap::new(),
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

    /// How many events are kept for catching up.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// The peers a target names, with their dialects. An iterator, not a list: the
    /// room walks it once per event, for every event it relays.
    pub fn recipients(&self, target: Target) -> impl Iterator<Item = (PeerId, Dialect)> + '_ {
        let (one, room) = match target {
            Target::One(id) => (self.peers.get(&id).map(|p| (id, p.dialect)), None),
            Target::Last(id, dialect) => (Some((id, dialect)), None),
            Target::Room | Target::RoomExcept(_) => (None, Some(self.peers.iter())),
        };
        let joined = room
            .into_iter()
            .flatten()
            .filter(move |(id, p)| p.name.is_some() && Target::RoomExcept(**id) != target)
            .map(|(id, p)| (*id, p.dialect));
        one.into_iter().chain(joined)
    }

    /// A connection opened: greet it.
    pub fn connect(&mut self, peer: PeerId, now: i64) -> Vec<Action> {
        self.peers.insert(
            peer,
            Peer {
                dialect: Dialect::Plain,
                name: None,
                session: None,
                bucket: Bucket::full(&self.rules, now),
                pinged: false,
                warned: false,
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
            self.recent(peer, Dialect::Plain, &mut out);
        }
        out
    }

    /// A connection has sent nothing for a while. One that has not joined yet joins (see
    /// [`Room::settle`]). A tchat client is pinged; if it is still silent the next time,
    /// it is gone without having said so (a half-open connection) and is removed. A plain
    /// peer may stay silent for ever: TCP keepalive finds it if it vanishes.
    pub fn quiet(&mut self, peer: PeerId, now: i64) -> Vec<Action> {
        if self.is_pending(peer) {
            return self.settle(peer, now);
        }
        let mut out = Vec::new();
        let Some(p) = self.peers.get_mut(&peer) else {
            return out;
        };
        if p.dialect != Dialect::Structured {
            return out;
        }
        if p.pinged {
            self.leave(peer, Some("timed out: no answer to a ping"), now, &mut out);
        } else {
            p.pinged = true;
            out.push(Action::Send(
                Target::One(peer),
                Outgoing::Event(ServerMsg::Ping),
            ));
        }
        out
    }

    /// Close a connection for misbehaving: tell it why (`tell`), tell the room (`reason`).
    pub fn cut(&mut self, peer: PeerId, tell: &str, reason: &str, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        match self.peers.get(&peer) {
            None => return out,
            Some(p) if p.name.is_none() => {
                self.peers.remove(&peer);
                out.push(Action::Send(
                    Target::Last(peer, Dialect::Plain),
                    Outgoing::Raw(format!("* {tell}")),
                ));
                out.push(Action::Close(peer));
            }
            Some(p) => {
                let last = Target::Last(peer, p.dialect);
                out.extend(self.disconnect(peer, Some(reason), now));
                // Told after the room has let go of it, before the close.
                let notice = ServerMsg::Notice {
                    ts: now,
                    text: sanitize::line(tell),
                    cid: None,
                };
                out.push(Action::Send(last, Outgoing::Event(notice)));
                out.push(Action::Close(peer));
            }
        }
        out
    }

    /// A line (or an over-long line) arrived from a connection.
    pub fn receive(&mut self, peer: PeerId, frame: Frame, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(p) = self.peers.get_mut(&peer) else {
            return out;
        };
        p.pinged = false;
        if self.is_pending(peer) {
            if let Frame::Line(line) = &frame {
                if let Some(hello) = ClientMsg::parse_hello(line) {
                    self.hello(peer, hello, now, &mut out);
                    return out;
                }
                if let Some(why) = protocol::foreign_protocol(line) {
                    return self.cut(peer, why, "not a chat client", now);
                }
                if line.trim() == "exit" || protocol::parse_command(line) == Command::Quit {
                    // Leaving before saying anything: no one was told it came, so no
                    // one is told it went.
                    self.peers.remove(&peer);
                    out.push(Action::Close(peer));
                    return out;
                }
            }
            self.join(peer, Dialect::Plain, None, now, &mut out);
            self.recent(peer, Dialect::Plain, &mut out);
        }
        let line = match frame {
            Frame::TooLong => {
                self.too_long(peer, None, now, &mut out);
                return out;
            }
            Frame::Line(line) => line,
        };
        match self.dialect(peer) {
            Some(Dialect::Plain) => {
                if line.trim() == "exit" {
                    self.leave(peer, None, now, &mut out);
                } else if line.len() > self.rules.max_line {
                    self.too_long(peer, None, now, &mut out);
                } else {
                    self.typed(peer, &line, None, now, &mut out);
                }
            }
            Some(Dialect::Structured) => match ClientMsg::decode(&line) {
                Ok(ClientMsg::Say { text, cid }) => {
                    if self.resent(peer, cid.as_deref(), &mut out) {
                    } else if text.len() > self.rules.max_line {
                        self.too_long(peer, cid, now, &mut out);
                    } else {
                        self.typed(peer, &text, cid, now, &mut out);
                    }
                }
                Ok(ClientMsg::Bye) => self.leave(peer, None, now, &mut out),
                Ok(ClientMsg::Pong) => {}
                Ok(ClientMsg::Hello { .. }) => {
                    self.notice(peer, "you are already in", None, now, &mut out)
                }
                Err(e) => self.notice(peer, &format!("ignored a line: {e}"), None, now, &mut out),
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
            let event = ServerMsg::Leave {
                id,
                ts: now,
                name,
                reason: reason.map(str::to_owned),
            };
            self.keep(id, event.clone(), None);
            out.push(Action::Send(Target::Room, Outgoing::Event(event)));
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

    /// Remember an event for catching up; forget the oldest beyond the limit.
    fn keep(&mut self, id: u64, event: ServerMsg, origin: Option<(String, String)>) {
        if self.rules.history == 0 {
            return;
        }
        if let Some(o) = &origin {
            self.seen.insert(o.clone(), id);
        }
        self.history.push_back(Kept { id, event, origin });
        while self.history.len() > self.rules.history {
            if let Some(old) = self.history.pop_front()
                && let Some(o) = old.origin
            {
                self.seen.remove(&o);
            }
        }
    }

    /// A tchat client says hello. If its session is still in the room on an older
    /// connection (one that broke without the host noticing yet), the new connection
    /// takes that seat over quietly: same name, nobody told of a leave and a join.
    fn hello(&mut self, peer: PeerId, hello: protocol::Hello, now: i64, out: &mut Vec<Action>) {
        let session = hello.session.filter(|s| !s.is_empty() && s.len() <= 64);
        let stale = session.as_ref().and_then(|s| {
            self.peers
                .iter()
                .find(|(id, p)| **id != peer && p.name.is_some() && p.session.as_ref() == Some(s))
                .map(|(id, _)| *id)
        });
        if let Some(p) = self.peers.get_mut(&peer) {
            p.session = session.clone();
        }
        // What was missed is worked out before this join, which is not part of it.
        let mut missed = Vec::new();
        if let Some(since) = &hello.since {
            self.replay(peer, since, session.as_deref(), &hello.name, &mut missed);
        }
        match stale.and_then(|old| self.peers.remove(&old).map(|p| (old, p))) {
            Some((old, old_peer)) => {
                out.push(Action::Close(old));
                let name = old_peer.name.unwrap_or_else(|| GUEST_NAME.to_owned());
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.dialect = Dialect::Structured;
                    p.name = Some(name.clone());
                    p.bucket = old_peer.bucket;
                }
                self.welcome(peer, &name, None, out);
                out.extend(missed);
            }
            None => {
                let name = self.seat(peer, Dialect::Structured, Some(&hello.name), out);
                out.extend(missed);
                self.announce(peer, name, now, out);
                if hello.since.is_none() {
                    self.recent(peer, Dialect::Structured, out);
                }
            }
        }
    }

    /// Send a rejoining client what it missed since `since`, if it was in this room.
    fn replay(
        &self,
        peer: PeerId,
        since: &protocol::Since,
        session: Option<&str>,
        viewer: &str,
        out: &mut Vec<Action>,
    ) {
        if since.room != self.epoch || since.id >= self.next_event {
            // Another room, or another run of this one: the client says so itself.
            return;
        }
        let first_kept = self.history.front().map_or(self.next_event, |k| k.id);
        let lost = first_kept.saturating_sub(since.id.saturating_add(1));
        // Private messages only for the two people they were between.
        let viewer = viewer.to_lowercase();
        let visible = |k: &&Kept| match &k.event {
            ServerMsg::Private { from, to, .. } => {
                from.to_lowercase() == viewer || to.to_lowercase() == viewer
            }
            _ => true,
        };
        let missed: Vec<&Kept> = self
            .history
            .iter()
            .filter(|k| k.id > since.id)
            .filter(visible)
            .collect();
        out.push(Action::Send(
            Target::One(peer),
            Outgoing::Event(ServerMsg::Catchup {
                count: missed.len() as u64,
                lost,
            }),
        ));
        for k in missed {
            out.push(Action::Send(
                Target::One(peer),
                Outgoing::Event(own_echo(k, session)),
            ));
        }
    }

    /// A line this session sent before (and the room relayed) came again after a
    /// reconnect: do not relay it twice; echo the original so the sender marks it
    /// delivered.
    fn resent(&self, peer: PeerId, cid: Option<&str>, out: &mut Vec<Action>) -> bool {
        let (Some(cid), Some(session)) = (
            cid,
            self.peers.get(&peer).and_then(|p| p.session.as_deref()),
        ) else {
            return false;
        };
        let Some(&id) = self.seen.get(&(session.to_owned(), cid.to_owned())) else {
            return false;
        };
        let first = self.history.front().map_or(0, |k| k.id);
        let Some(kept) = id
            .checked_sub(first)
            .and_then(|i| self.history.get(usize::try_from(i).ok()?))
        else {
            return false;
        };
        out.push(Action::Send(
            Target::One(peer),
            Outgoing::Event(own_echo(kept, Some(session))),
        ));
        true
    }

    /// The flood limit: may this peer send a line now? If not, tell it.
    fn admit(&mut self, peer: PeerId, cid: Option<&str>, now: i64, out: &mut Vec<Action>) -> bool {
        let rules = self.rules.clone();
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        if p.bucket.take(&rules, now) {
            p.warned = false;
            return true;
        }
        let limit = format!(
            "over the flood limit ({} lines at once, then {} a second)",
            rules.burst, rules.rate
        );
        match p.dialect {
            // A tchat client shows each refused line as not sent, so it hears of each.
            Dialect::Structured => {
                let text = format!("slow down: that line was not sent, {limit}");
                self.notice(peer, &text, cid.map(str::to_owned), now, out);
            }
            Dialect::Plain if !p.warned => {
                p.warned = true;
                let text = format!("slow down: {limit}; your lines are dropped until you do");
                self.notice(peer, &text, None, now, out);
            }
            Dialect::Plain => {}
        }
        false
    }

    fn join(
        &mut self,
        peer: PeerId,
        dialect: Dialect,
        asked: Option<&str>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        let name = self.seat(peer, dialect, asked, out);
        self.announce(peer, name, now, out);
    }

    /// Give a connection its name in the room and welcome it; the name.
    fn seat(
        &mut self,
        peer: PeerId,
        dialect: Dialect,
        asked: Option<&str>,
        out: &mut Vec<Action>,
    ) -> String {
        let base = asked.and_then(clean_name);
        let name = self.unique_name(base.as_deref().unwrap_or(GUEST_NAME));
        // Tell the person when they did not get the name they asked for.
        let renamed = asked.filter(|a| *a != name).map(sanitize::line);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.dialect = dialect;
            p.name = Some(name.clone());
        }
        self.welcome(peer, &name, renamed, out);
        name
    }

    /// Tell everyone else that `name` came in.
    fn announce(&mut self, peer: PeerId, name: String, now: i64, out: &mut Vec<Action>) {
        let id = self.next_id();
        let event = ServerMsg::Join { id, ts: now, name };
        self.keep(id, event.clone(), None);
        out.push(Action::Send(
            Target::RoomExcept(peer),
            Outgoing::Event(event),
        ));
    }

    fn welcome(&self, peer: PeerId, name: &str, asked: Option<String>, out: &mut Vec<Action>) {
        out.push(Action::Send(
            Target::One(peer),
            Outgoing::Event(ServerMsg::Welcome {
                v: PROTOCOL_VERSION,
                room: self.epoch.clone(),
                name: name.to_owned(),
                asked,
                members: self.names(),
                max_line: self.rules.max_line,
            }),
        ));
    }

    /// A line a person typed: a message, or a `/command`.
    fn typed(
        &mut self,
        peer: PeerId,
        text: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        if text.trim().is_empty() {
            return;
        }
        let command = protocol::parse_command(text);
        if command == Command::Quit {
            self.leave(peer, None, now, out);
            return;
        }
        if !self.admit(peer, cid.as_deref(), now, out) {
            return;
        }
        // Every answer to a command carries its `cid`, so that the client knows the
        // room has it (and does not send it again after a rejoin).
        let mut tell = |room: &mut Room, text: &str| room.notice(peer, text, cid.clone(), now, out);
        match command {
            Command::Say(text) => self.relay(peer, text, cid, now, out, |id, ts, from, text| {
                ServerMsg::Msg {
                    id,
                    ts,
                    from,
                    text,
                    cid: None,
                }
            }),
            Command::Me("") => tell(
                self,
                "say what you do: /me waves (shows as \"* you waves\")",
            ),
            Command::Me(action) => self.relay(peer, action, cid, now, out, |id, ts, from, text| {
                ServerMsg::Me {
                    id,
                    ts,
                    from,
                    text,
                    cid: None,
                }
            }),
            Command::Msg { to, text } if to.is_empty() || text.trim().is_empty() => {
                tell(self, "send a private message with: /msg NAME TEXT")
            }
            Command::Msg { to, text } => self.private(peer, to, text, cid, now, out),
            Command::Nick(asked) => self.nick(peer, asked, cid, now, out),
            Command::Who => {
                let names = self.names();
                tell(
                    self,
                    &format!("in the room ({}): {}", names.len(), names.join(", ")),
                )
            }
            Command::Help => tell(self, &format!("commands:\n{}", protocol::COMMAND_HELP)),
            Command::Unknown(word) => tell(
                self,
                &format!(
                    "there is no command /{word}: /help lists them (start a line with // to send it as it is)"
                ),
            ),
            Command::Quit => {}
        }
    }

    /// Relay a message (made by `make` from its id, time, sender and text) to everyone:
    /// the sender's own copy comes back with its `cid`.
    fn relay(
        &mut self,
        peer: PeerId,
        text: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
        make: impl Fn(u64, i64, String, String) -> ServerMsg,
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
        let origin = p.session.clone().zip(cid.clone());
        let id = self.next_id();
        let relayed = make(id, now, from, text);
        // A structured sender gets its own line back, with the room's id and time and its
        // own `cid`: that is how it knows the line was delivered. The `cid` is the
        // sender's business only. A plain sender already sees what it typed.
        if dialect == Dialect::Structured {
            let echo = relayed.clone().with_cid(cid);
            out.push(Action::Send(Target::One(peer), Outgoing::Event(echo)));
        }
        self.keep(id, relayed.clone(), origin);
        out.push(Action::Send(
            Target::RoomExcept(peer),
            Outgoing::Event(relayed),
        ));
    }

    /// `/msg NAME TEXT`: to that one person, and back to the sender.
    fn private(
        &mut self,
        peer: PeerId,
        to: &str,
        text: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        let target = self
            .peers
            .iter()
            .find(|(_, p)| {
                p.name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase() == to.to_lowercase())
            })
            .map(|(id, p)| (*id, p.name.clone().unwrap_or_default()));
        let Some((target, to_name)) = target else {
            let to = sanitize::line(to);
            let text = format!("nobody called {to} is here (/who lists who is)");
            self.notice(peer, &text, cid, now, out);
            return;
        };
        let text = sanitize::text(text.trim_end());
        let Some(from) = self.peers.get(&peer).and_then(|p| p.name.clone()) else {
            return;
        };
        let origin = self
            .peers
            .get(&peer)
            .and_then(|p| p.session.clone())
            .zip(cid.clone());
        let id = self.next_id();
        let event = ServerMsg::Private {
            id,
            ts: now,
            from,
            to: to_name,
            text,
            cid: None,
        };
        self.keep(id, event.clone(), origin);
        if target != peer {
            out.push(Action::Send(
                Target::One(target),
                Outgoing::Event(event.clone()),
            ));
        }
        // The sender sees it too (a plain sender, as a receipt of what went where).
        out.push(Action::Send(
            Target::One(peer),
            Outgoing::Event(event.with_cid(cid)),
        ));
    }

    /// `/nick NAME`.
    fn nick(
        &mut self,
        peer: PeerId,
        asked: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        let Some(old) = self.peers.get(&peer).and_then(|p| p.name.clone()) else {
            return;
        };
        let refuse = |room: &mut Room, text: String, out: &mut Vec<Action>| {
            room.notice(peer, &text, cid.clone(), now, out)
        };
        let Some(new) = clean_name(asked) else {
            let text = if asked.is_empty() {
                format!("take another name with: /nick NAME (you are {old})")
            } else {
                format!(
                    "\"{}\" is not a usable name (1-{MAX_NAME_CHARS} characters, no spaces or control characters); you are still {old}",
                    sanitize::line(asked)
                )
            };
            return refuse(self, text, out);
        };
        if new == old {
            return refuse(self, format!("you are already {old}"), out);
        }
        let taken = self.peers.iter().any(|(id, p)| {
            *id != peer
                && p.name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase() == new.to_lowercase())
        });
        if taken {
            return refuse(
                self,
                format!("the name {new} is taken; you are still {old}"),
                out,
            );
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.name = Some(new.clone());
        }
        let id = self.next_id();
        let event = ServerMsg::Nick {
            id,
            ts: now,
            old,
            new,
            cid: None,
        };
        self.keep(id, event.clone(), None);
        out.push(Action::Send(
            Target::RoomExcept(peer),
            Outgoing::Event(event.clone()),
        ));
        out.push(Action::Send(
            Target::One(peer),
            Outgoing::Event(event.with_cid(cid)),
        ));
    }

    /// The room's recent messages, for someone who just came in (not for a rejoin,
    /// which catches up instead).
    fn recent(&self, peer: PeerId, dialect: Dialect, out: &mut Vec<Action>) {
        let limit = match dialect {
            Dialect::Structured => HISTORY_FOR_TCHAT,
            Dialect::Plain => HISTORY_FOR_PLAIN,
        };
        let mut shown: Vec<&Kept> = self
            .history
            .iter()
            .rev()
            .filter(|k| matches!(k.event, ServerMsg::Msg { .. } | ServerMsg::Me { .. }))
            .take(limit)
            .collect();
        if shown.is_empty() {
            return;
        }
        shown.reverse();
        let to = Target::One(peer);
        let count = shown.len() as u64;
        out.push(Action::Send(
            to,
            Outgoing::Event(ServerMsg::History { count }),
        ));
        for k in shown {
            out.push(Action::Send(to, Outgoing::Event(k.event.clone())));
        }
        if dialect == Dialect::Plain {
            out.push(Action::Send(to, Outgoing::Raw("* end of history".into())));
        }
    }

    fn leave(&mut self, peer: PeerId, reason: Option<&str>, now: i64, out: &mut Vec<Action>) {
        out.extend(self.disconnect(peer, reason, now));
        out.push(Action::Close(peer));
    }

    fn too_long(&mut self, peer: PeerId, cid: Option<String>, now: i64, out: &mut Vec<Action>) {
        let text = format!(
            "your line was not sent: it is longer than {} bytes",
            self.rules.max_line
        );
        self.notice(peer, &text, cid, now, out);
    }

    fn notice(
        &mut self,
        peer: PeerId,
        text: &str,
        cid: Option<String>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Send(
            Target::One(peer),
            Outgoing::Event(ServerMsg::Notice {
                ts: now,
                // Parse errors may quote what the peer sent.
                text: sanitize::line(text),
                cid,
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

/// A kept event as a given session should see it again: its own lines carry their
/// `cid`, so that it can mark them delivered.
fn own_echo(kept: &Kept, session: Option<&str>) -> ServerMsg {
    match (&kept.origin, session) {
        (Some((s, cid)), Some(me)) if s == me => kept.event.clone().with_cid(Some(cid.clone())),
        _ => kept.event.clone(),
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
                session: None,
                since: None,
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
        Room::new(
            "e1".into(),
            "127.0.0.1:7878".into(),
            Rules {
                max_line: 100,
                ..Rules::default()
            },
        )
    }

    fn joined(room: &mut Room, peer: PeerId, name: &str) -> Vec<Action> {
        room.connect(peer, 0);
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
        let a = r.connect(1, 0);
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
        r.connect(2, 0);
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
        r.connect(2, 0);
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
        r.connect(2, 0);
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
    fn exit_as_a_first_word_closes_without_a_join_or_a_leave() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.connect(2, 0);
        let a = r.receive(2, Frame::Line("exit".into()), 0);
        assert_eq!(a, vec![Action::Close(2)]);
        assert_eq!(r.len(), 1);
        // Gone: anything later from that connection is ignored.
        assert!(r.receive(2, Frame::Line("hello".into()), 0).is_empty());
        // The same for /quit.
        r.connect(3, 0);
        let a = r.receive(3, Frame::Line("/quit".into()), 0);
        assert_eq!(a, vec![Action::Close(3)]);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn exit_from_a_plain_peer_leaves_and_closes() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.connect(2, 0);
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
        r.connect(1, 0);
        assert!(r.disconnect(1, None, 0).is_empty());
    }

    #[test]
    fn shutdown_tells_everyone_including_pending_then_closes_all() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.connect(2, 0);
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

    fn hello_again(name: &str, session: &str, since: Option<(&str, u64)>) -> Frame {
        Frame::Line(
            ClientMsg::Hello {
                v: 1,
                name: name.into(),
                client: None,
                session: Some(session.into()),
                since: since.map(|(room, id)| protocol::Since {
                    room: room.into(),
                    id,
                }),
            }
            .encode()
            .trim_end()
            .to_owned(),
        )
    }

    fn say_cid(text: &str, cid: &str) -> Frame {
        Frame::Line(
            ClientMsg::Say {
                text: text.into(),
                cid: Some(cid.into()),
            }
            .encode()
            .trim_end()
            .to_owned(),
        )
    }

    fn relayed(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(
                    Target::RoomExcept(_),
                    Outgoing::Event(ServerMsg::Msg { text, .. }),
                ) => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    fn notices(actions: &[Action]) -> Vec<(String, Option<String>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(_, Outgoing::Event(ServerMsg::Notice { text, cid, .. })) => {
                    Some((text.clone(), cid.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn limited(burst: u32, rate: u32) -> Room {
        Room::new(
            "e1".into(),
            "a".into(),
            Rules {
                burst,
                rate,
                ..Rules::default()
            },
        )
    }

    #[test]
    fn a_burst_passes_then_the_rate_applies_and_the_sender_is_told() {
        let mut r = limited(3, 2);
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        for i in 0..3 {
            assert_eq!(
                relayed(&r.receive(1, say_cid("x", &format!("c{i}")), 0)).len(),
                1
            );
        }
        let a = r.receive(1, say_cid("too many", "c3"), 0);
        assert!(relayed(&a).is_empty());
        let n = notices(&a);
        assert!(
            n[0].0.contains("flood limit") && n[0].0.contains("3 lines at once, then 2 a second")
        );
        assert_eq!(n[0].1.as_deref(), Some("c3"), "the refusal names the line");
        // Two lines a second: one more after half a second, not before.
        assert!(relayed(&r.receive(1, say_cid("x", "c4"), 499)).is_empty());
        assert_eq!(relayed(&r.receive(1, say_cid("x", "c5"), 500)).len(), 1);
        // Others are not slowed.
        assert_eq!(relayed(&r.receive(2, say_cid("bob", "b1"), 500)).len(), 1);
    }

    #[test]
    fn a_flooding_plain_peer_is_told_once_per_spell() {
        let mut r = limited(2, 1);
        r.connect(1, 0);
        r.settle(1, 0);
        let mut told = 0;
        let mut sent = 0;
        for _ in 0..10 {
            let a = r.receive(1, Frame::Line("spam".into()), 0);
            told += notices(&a).len();
            sent += relayed(&a).len();
        }
        assert_eq!((sent, told), (2, 1));
        // After a pause the peer may talk again, and a new spell is told again.
        assert_eq!(
            relayed(&r.receive(1, Frame::Line("ok".into()), 1000)).len(),
            1
        );
        let a = r.receive(1, Frame::Line("spam".into()), 1000);
        assert_eq!(notices(&a).len(), 1);
    }

    #[test]
    fn no_flood_limit_when_turned_off() {
        let mut r = limited(0, 5);
        joined(&mut r, 1, "alice");
        let n: usize = (0..1000)
            .map(|i| relayed(&r.receive(1, say_cid("x", &i.to_string()), 0)).len())
            .sum();
        assert_eq!(n, 1000);
    }

    #[test]
    fn a_silent_tchat_peer_is_pinged_then_dropped_but_a_plain_one_may_idle() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        r.connect(3, 0);
        r.settle(3, 0);
        let a = r.quiet(1, 0);
        assert_eq!(
            a,
            vec![Action::Send(
                Target::One(1),
                Outgoing::Event(ServerMsg::Ping)
            )]
        );
        // An answer (anything) clears it.
        r.receive(
            1,
            Frame::Line(ClientMsg::Pong.encode().trim_end().into()),
            0,
        );
        assert_eq!(r.quiet(1, 0).len(), 1, "pinged again, not dropped");
        let a = r.quiet(1, 0);
        assert!(a.contains(&Action::Close(1)));
        assert!(
            matches!(&a[0], Action::Send(Target::Room, Outgoing::Event(ServerMsg::Leave { reason: Some(r), .. })) if r.contains("timed out"))
        );
        assert!(r.quiet(3, 0).is_empty() && r.quiet(3, 0).is_empty());
        assert_eq!(r.names(), vec!["bob", "guest"]);
    }

    #[test]
    fn tls_and_http_are_turned_away_without_joining() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.connect(2, 0);
        let tls =
            String::from_utf8_lossy(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03").into_owned();
        let a = r.receive(2, Frame::Line(tls), 0);
        assert!(
            matches!(&a[0], Action::Send(Target::Last(2, Dialect::Plain), Outgoing::Raw(t)) if t.contains("not TLS"))
        );
        assert_eq!(a[1], Action::Close(2));
        r.connect(3, 0);
        let a = r.receive(3, Frame::Line("GET / HTTP/1.1".into()), 0);
        assert_eq!(a.len(), 2);
        assert_eq!(r.names(), vec!["alice"], "nobody joined, nobody was told");
    }

    #[test]
    fn a_cut_peer_is_told_why_after_the_room_lets_go() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        r.connect(2, 0);
        r.settle(2, 0);
        let a = r.cut(2, "too much", "flooding", 0);
        assert_eq!(a.len(), 3);
        assert!(matches!(
            &a[0],
            Action::Send(Target::Room, Outgoing::Event(ServerMsg::Leave { .. }))
        ));
        assert!(
            matches!(&a[1], Action::Send(Target::Last(2, Dialect::Plain), Outgoing::Event(ServerMsg::Notice { text, .. })) if text == "too much")
        );
        assert_eq!(a[2], Action::Close(2));
        assert_eq!(r.recipients(Target::Last(2, Dialect::Plain)).count(), 1);
    }

    /// Events a peer is sent, by id, in order.
    fn ids_to(actions: &[Action], peer: PeerId) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(
                    Target::One(p),
                    Outgoing::Event(
                        ServerMsg::Msg { id, .. }
                        | ServerMsg::Join { id, .. }
                        | ServerMsg::Leave { id, .. },
                    ),
                ) if *p == peer => Some(*id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_rejoin_catches_up_on_exactly_what_was_missed() {
        let mut r = room();
        r.connect(1, 0);
        r.receive(1, hello_again("alice", "s-a", None), 0); // join: id 1
        joined(&mut r, 2, "bob"); // id 2
        r.receive(1, say_cid("seen", "a1"), 0); // id 3
        r.disconnect(1, Some("connection lost"), 0); // id 4
        r.receive(2, say_cid("missed one", "b1"), 0); // id 5
        r.receive(2, say_cid("missed two", "b2"), 0); // id 6
        r.connect(3, 0);
        let a = r.receive(3, hello_again("alice", "s-a", Some(("e1", 3))), 0);
        assert_eq!(welcome_name(&a).0, "alice");
        assert!(a.contains(&Action::Send(
            Target::One(3),
            Outgoing::Event(ServerMsg::Catchup { count: 3, lost: 0 })
        )));
        assert_eq!(ids_to(&a, 3), vec![4, 5, 6]);
        // From another run of the room: nothing replayed, the client sees the new epoch.
        r.connect(4, 0);
        let a = r.receive(4, hello_again("carol", "s-c", Some(("old", 3))), 0);
        assert!(ids_to(&a, 4).is_empty());
        assert!(!a.iter().any(|x| matches!(
            x,
            Action::Send(_, Outgoing::Event(ServerMsg::Catchup { .. }))
        )));
    }

    #[test]
    fn a_gap_larger_than_the_history_is_counted() {
        let mut r = Room::new(
            "e1".into(),
            "a".into(),
            Rules {
                history: 5,
                burst: 0,
                ..Rules::default()
            },
        );
        joined(&mut r, 1, "bob"); // id 1
        for i in 0..10 {
            r.receive(1, say_cid("x", &i.to_string()), 0); // ids 2..=11
        }
        assert_eq!(r.history_len(), 5);
        r.connect(2, 0);
        let a = r.receive(2, hello_again("alice", "s", Some(("e1", 2))), 0);
        assert!(a.contains(&Action::Send(
            Target::One(2),
            Outgoing::Event(ServerMsg::Catchup { count: 5, lost: 4 })
        )));
        assert_eq!(ids_to(&a, 2), vec![7, 8, 9, 10, 11]);
    }

    #[test]
    fn a_resent_line_is_relayed_once_and_its_echo_repeated() {
        let mut r = room();
        r.connect(1, 0);
        r.receive(1, hello_again("alice", "s-a", None), 0);
        joined(&mut r, 2, "bob");
        let first = r.receive(1, say_cid("only once", "a1"), 0);
        assert_eq!(relayed(&first), vec!["only once"]);
        // The connection broke before the echo arrived; the client rejoins and resends.
        r.disconnect(1, None, 0);
        r.connect(3, 0);
        let a = r.receive(3, hello_again("alice", "s-a", Some(("e1", 2))), 0);
        // The catch-up carries the line with its cid, so the client marks it delivered…
        assert!(a.iter().any(|x| matches!(x, Action::Send(Target::One(3), Outgoing::Event(ServerMsg::Msg { cid: Some(c), .. })) if c == "a1")));
        // …and the resend is not relayed again.
        let again = r.receive(3, say_cid("only once", "a1"), 0);
        assert!(relayed(&again).is_empty());
        assert!(
            matches!(&again[..], [Action::Send(Target::One(3), Outgoing::Event(ServerMsg::Msg { cid: Some(c), id: 3, .. }))] if c == "a1")
        );
        // The same cid from another session is another line.
        r.connect(4, 0);
        r.receive(4, hello_again("carol", "s-c", None), 0);
        assert_eq!(
            relayed(&r.receive(4, say_cid("mine", "a1"), 0)),
            vec!["mine"]
        );
    }

    #[test]
    fn a_rejoin_over_a_stale_connection_takes_the_seat_quietly() {
        let mut r = room();
        r.connect(1, 0);
        r.receive(1, hello_again("alice", "s-a", None), 0);
        joined(&mut r, 2, "bob");
        // The old connection is half-open: the host has not noticed it is gone.
        r.connect(3, 0);
        let a = r.receive(3, hello_again("alice", "s-a", Some(("e1", 2))), 0);
        assert!(a.contains(&Action::Close(1)));
        assert_eq!(
            welcome_name(&a),
            ("alice".into(), None),
            "the same name, not alice2"
        );
        assert!(
            !a.iter()
                .any(|x| matches!(x, Action::Send(Target::Room | Target::RoomExcept(_), _))),
            "nobody is told of a leave and a join: {a:?}"
        );
        assert_eq!(r.names(), vec!["alice", "bob"]);
        assert!(
            r.disconnect(1, None, 0).is_empty(),
            "the old connection's close says nothing"
        );
    }

    fn plain_joined(r: &mut Room, peer: PeerId) {
        r.connect(peer, 0);
        r.settle(peer, 0);
    }

    fn plain_line(r: &mut Room, peer: PeerId, line: &str) -> Vec<Action> {
        r.receive(peer, Frame::Line(line.into()), 0)
    }

    /// Everything sent to `peer` as a plain peer would read it.
    fn plain_text(r: &Room, actions: &[Action], peer: PeerId) -> String {
        let mut out = String::new();
        for a in actions {
            if let Action::Send(t, o) = a {
                let to_peer = match t {
                    Target::One(p) | Target::Last(p, _) => *p == peer,
                    Target::Room => true,
                    Target::RoomExcept(p) => *p != peer,
                };
                if !to_peer {
                    continue;
                }
                match o {
                    Outgoing::Raw(l) => out.push_str(&format!("{l}\n")),
                    Outgoing::Event(m) => out.push_str(&m.to_plain()),
                }
            }
        }
        let _ = r;
        out
    }

    #[test]
    fn nick_renames_and_everyone_is_told_but_a_taken_name_is_refused() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        plain_joined(&mut r, 2);
        let a = plain_line(&mut r, 2, "/nick bob");
        assert!(plain_text(&r, &a, 1).contains("* guest is now known as bob"));
        assert!(plain_text(&r, &a, 2).contains("* guest is now known as bob"));
        assert_eq!(r.names(), vec!["alice", "bob"]);
        let a = r.receive(1, say_cid("/nick BOB", "n1"), 0);
        assert_eq!(
            notices(&a),
            vec![(
                "the name BOB is taken; you are still alice".into(),
                Some("n1".into())
            )]
        );
        let a = plain_line(&mut r, 2, "/nick \u{7}\u{7}");
        assert!(notices(&a)[0].0.contains("is not a usable name"), "{a:?}");
        assert!(notices(&a)[0].0.contains("you are still bob"), "{a:?}");
        let a = plain_line(&mut r, 2, "/nick");
        assert!(notices(&a)[0].0.contains("/nick NAME"));
        // The renamed person's own copy carries its cid.
        let a = r.receive(1, say_cid("/nick alicia", "n2"), 0);
        assert!(a.iter().any(|x| matches!(x, Action::Send(Target::One(1), Outgoing::Event(ServerMsg::Nick { cid: Some(c), new, .. })) if c == "n2" && new == "alicia")));
    }

    #[test]
    fn who_me_help_and_unknown_commands_from_any_peer() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        plain_joined(&mut r, 2);
        let a = plain_line(&mut r, 2, "/who");
        assert_eq!(plain_text(&r, &a, 2), "* in the room (2): alice, guest\n");
        assert!(plain_text(&r, &a, 1).is_empty(), "only the asker is told");
        let a = plain_line(&mut r, 2, "/me waves");
        assert_eq!(plain_text(&r, &a, 1), "* guest waves\n");
        let a = r.receive(1, say_cid("/me waves back", "m1"), 0);
        assert!(a.contains(&Action::Send(
            Target::One(1),
            Outgoing::Event(ServerMsg::Me {
                id: 4,
                ts: 0,
                from: "alice".into(),
                text: "waves back".into(),
                cid: Some("m1".into())
            })
        )));
        let a = plain_line(&mut r, 2, "/help");
        let help = plain_text(&r, &a, 2);
        assert!(
            help.contains("/nick NAME") && help.contains("/msg NAME TEXT"),
            "{help}"
        );
        assert!(help.lines().all(|l| l.starts_with("* ")), "{help}");
        let a = plain_line(&mut r, 2, "/frob");
        assert!(relayed(&a).is_empty());
        assert!(plain_text(&r, &a, 2).contains("there is no command /frob"));
        assert!(plain_text(&r, &a, 1).is_empty(), "never relayed");
        let a = plain_line(&mut r, 2, "//frob is a path");
        assert_eq!(relayed(&a), vec!["/frob is a path"]);
        let a = plain_line(&mut r, 2, "/quit");
        assert!(a.contains(&Action::Close(2)));
        assert_eq!(r.names(), vec!["alice"]);
    }

    #[test]
    fn a_private_message_reaches_only_the_two() {
        let mut r = room();
        joined(&mut r, 1, "alice");
        joined(&mut r, 2, "bob");
        plain_joined(&mut r, 3);
        let a = r.receive(1, say_cid("/msg BOB psst", "p1"), 0);
        let to: Vec<PeerId> = a
            .iter()
            .filter_map(|x| match x {
                Action::Send(Target::One(p), Outgoing::Event(ServerMsg::Private { .. })) => {
                    Some(*p)
                }
                Action::Send(t, _) => panic!("sent to {t:?}"),
                _ => None,
            })
            .collect();
        assert_eq!(to, vec![2, 1]);
        assert!(plain_text(&r, &a, 3).is_empty());
        let a = plain_line(&mut r, 3, "/msg alice hi from nc");
        assert!(plain_text(&r, &a, 1).contains("[private] guest → alice: hi from nc"));
        assert!(
            plain_text(&r, &a, 3).contains("[private] guest → alice: hi from nc"),
            "a receipt"
        );
        assert!(plain_text(&r, &a, 2).is_empty());
        let a = plain_line(&mut r, 3, "/msg carol hello");
        assert!(plain_text(&r, &a, 3).contains("nobody called carol is here"));
        let a = plain_line(&mut r, 3, "/msg alice");
        assert!(plain_text(&r, &a, 3).contains("/msg NAME TEXT"));
        // A third person catching up never sees it.
        r.connect(4, 0);
        let a = r.receive(4, hello_again("dave", "s-d", Some(("e1", 0))), 0);
        assert!(!a.iter().any(|x| matches!(
            x,
            Action::Send(_, Outgoing::Event(ServerMsg::Private { .. }))
        )));
    }

    #[test]
    fn someone_who_joins_late_sees_recent_messages_marked_as_history() {
        let mut r = limited(0, 0);
        joined(&mut r, 1, "alice");
        for i in 0..150 {
            r.receive(1, say_cid(&format!("m{i}"), &format!("c{i}")), 0);
        }
        r.receive(1, say_cid("/me is done", "me"), 0);
        // A tchat peer: the last 100, in order, after its welcome.
        let a = joined(&mut r, 2, "bob");
        let i = a
            .iter()
            .position(|x| {
                matches!(
                    x,
                    Action::Send(_, Outgoing::Event(ServerMsg::History { count: 100 }))
                )
            })
            .expect("a history marker");
        assert!(matches!(
            a[0],
            Action::Send(_, Outgoing::Event(ServerMsg::Welcome { .. }))
        ));
        let texts: Vec<String> = a[i + 1..]
            .iter()
            .filter_map(|x| match x {
                Action::Send(
                    Target::One(2),
                    Outgoing::Event(ServerMsg::Msg { text, .. } | ServerMsg::Me { text, .. }),
                ) => Some(text.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 100);
        assert_eq!(texts[0], "m51");
        assert_eq!(texts[99], "is done");
        // A plain peer: the last 20, between two marker lines.
        r.connect(3, 0);
        let a = r.settle(3, 0);
        let shown = plain_text(&r, &a, 3);
        assert!(
            shown.contains("* the last 20 messages before you came:\nalice: m131\n"),
            "{shown}"
        );
        assert!(
            shown.ends_with("* alice is done\n* end of history\n"),
            "{shown}"
        );
        // A rejoin catches up instead.
        r.connect(4, 0);
        let a = r.receive(4, hello_again("carol", "s-c", Some(("e1", 150))), 0);
        assert!(!a.iter().any(|x| matches!(
            x,
            Action::Send(_, Outgoing::Event(ServerMsg::History { .. }))
        )));
        // An empty room has no history to show.
        let mut empty = room();
        let a = joined(&mut empty, 1, "alice");
        assert_eq!(a.len(), 2, "{a:?}");
    }
}
